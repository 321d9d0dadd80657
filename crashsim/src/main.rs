//! `cargo run --release -p crashsim`: explore every built-in workload and print a verdict.

use std::io::IsTerminal;

// Crash images are large, short-lived buffers: an allocator that keeps freed memory avoids a
// page fault per byte of every image.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use crashsim::workloads::{Workload, builtin, by_name};
use crashsim::{Config, Outcome, Phases, Reproducer};
use indicatif::{ProgressBar, ProgressStyle};
use mappedpages::{CommitMode, SectorSize};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Sectors {
    #[value(name = "512")]
    S512,
    #[value(name = "4096")]
    S4096,
    Both,
}

/// Crash explorer for mappedpages: replays every sync prefix of each workload with torn and
/// early-written sectors, both file lengths, failed syncs and growths, and checks SPEC.md's
/// invariants on every recovered image.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Explore only these workloads (repeatable; see --list).
    #[arg(long = "workload", short = 'w')]
    workloads: Vec<String>,
    /// List the workloads and exit.
    #[arg(long)]
    list: bool,
    /// Budget of crash states over all workloads (split evenly, unused shares passed on).
    #[arg(long, default_value_t = 4_000_000)]
    max_states: u64,
    /// Commit modes every built-in workload runs in (comma-separated): flip, single-sync.
    /// Default: both (SPEC.md §3.2, §3.2.1).
    #[arg(long, value_delimiter = ',')]
    commit_modes: Vec<String>,
    /// Stop after this many seconds (the report says what was not explored).
    #[arg(long)]
    seconds: Option<u64>,
    /// Seed of the random mixes and of the sampling of large in-flight sets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of seeded random-mix workloads.
    #[arg(long, default_value_t = 80)]
    mixes: u64,
    /// Number of seeded protected-page mixes (`pmix-<seed>`, 1 KiB pages; `pmix-4k-<seed>` can
    /// be named with --workload).
    #[arg(long, default_value_t = 6)]
    protected_mixes: u64,
    /// Sector sizes to tear at.
    #[arg(long, value_enum, default_value_t = Sectors::Both)]
    sector: Sectors,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Rerun one crash state, given the JSON reproducer a violation printed.
    #[arg(long)]
    replay: Option<String>,
    /// Activate a deliberately broken protocol variant (needs `--features mutants`).
    #[arg(long)]
    mutant: Option<String>,
    /// Stop exploring a workload at its first violation.
    #[arg(long)]
    stop_at_first: bool,
    /// Phases to run (comma-separated): crashes, recovery-crashes, chains, failed-syncs,
    /// failed-growth, media, crash-media (damage to recovered crash images; explores the crash
    /// states it starts from). Default: all.
    #[arg(long, value_delimiter = ',')]
    phases: Vec<String>,
}

fn parse_phases(names: &[String]) -> Result<Phases, String> {
    if names.is_empty() {
        return Ok(Phases::all());
    }
    let mut phases = Phases::none();
    for name in names {
        match name.as_str() {
            "crashes" => phases.crashes = true,
            "recovery-crashes" => phases.recovery_crashes = true,
            "chains" => phases.chains = true,
            "failed-syncs" => phases.failed_syncs = true,
            "failed-growth" => phases.failed_growth = true,
            "media" => phases.media = true,
            "crash-media" => phases.crash_media = true,
            other => return Err(format!("unknown phase {other}")),
        }
    }
    Ok(phases)
}

fn parse_commit_modes(names: &[String]) -> Result<Vec<CommitMode>, String> {
    if names.is_empty() {
        return Ok(vec![CommitMode::Flip, CommitMode::SingleSync]);
    }
    names
        .iter()
        .map(|name| match name.as_str() {
            "flip" => Ok(CommitMode::Flip),
            "single-sync" => Ok(CommitMode::SingleSync),
            other => Err(format!(
                "unknown commit mode {other} (expected flip or single-sync)"
            )),
        })
        .collect()
}

fn activate_mutant(name: &Option<String>) -> Result<(), String> {
    let Some(name) = name else { return Ok(()) };
    #[cfg(feature = "mutants")]
    {
        let mutant = mappedpages::mutants::Mutant::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = mappedpages::mutants::Mutant::ALL
                .iter()
                .map(|m| m.name())
                .collect();
            format!("unknown mutant {name}; known: {}", names.join(", "))
        })?;
        mappedpages::mutants::set_active(Some(mutant));
        Ok(())
    }
    #[cfg(not(feature = "mutants"))]
    {
        Err(format!(
            "--mutant {name} needs the mutants feature: cargo run --release -p crashsim --features mutants -- --mutant {name}"
        ))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = activate_mutant(&args.mutant) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let phases = match parse_phases(&args.phases) {
        Ok(phases) => phases,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let commit_modes = match parse_commit_modes(&args.commit_modes) {
        Ok(modes) => modes,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if let Some(json) = &args.replay {
        return replay(json);
    }
    let mut workloads: Vec<Box<dyn Workload>> =
        builtin(args.mixes, args.protected_mixes, args.seed, &commit_modes);
    if args.list {
        for workload in &workloads {
            println!("{} (page size {})", workload.name(), workload.page_size());
        }
        return ExitCode::SUCCESS;
    }
    if !args.workloads.is_empty() {
        let mut chosen = Vec::new();
        for name in &args.workloads {
            match by_name(name) {
                Some(workload) => chosen.push(workload),
                None => {
                    eprintln!("error: unknown workload {name}; see --list");
                    return ExitCode::from(2);
                }
            }
        }
        workloads = chosen;
    }
    let sector_sizes = match args.sector {
        Sectors::S512 => vec![SectorSize::S512],
        Sectors::S4096 => vec![SectorSize::S4096],
        Sectors::Both => vec![SectorSize::S512, SectorSize::S4096],
    };
    let started = Instant::now();
    let deadline = args.seconds.map(|s| started + Duration::from_secs(s));
    let counter = Arc::new(AtomicU64::new(0));
    let progress = spawn_progress(counter.clone(), args.max_states, args.json);

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut remaining = args.max_states;
    for (index, workload) in workloads.iter().enumerate() {
        let left = (workloads.len() - index) as u64;
        let config = Config {
            sector_sizes: sector_sizes.clone(),
            exhaustive_bits: 14,
            extra_samples: 256,
            seed: args.seed,
            max_states: (remaining / left).max(1),
            deadline,
            stop_at_first_violation: args.stop_at_first,
            phases,
            progress: Some(counter.clone()),
        };
        if let Some(bar) = &progress.bar {
            bar.set_message(workload.name());
        }
        let outcome = workload.explore(&config);
        remaining = remaining.saturating_sub(outcome.states);
        outcomes.push(outcome);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    progress.finish();
    let elapsed = started.elapsed();
    let skipped: Vec<String> = workloads
        .iter()
        .skip(outcomes.len())
        .map(|w| w.name())
        .collect();
    let violations: u64 = outcomes.iter().map(|o| o.violation_count).sum();
    if args.json {
        print_json(&outcomes, &skipped, elapsed, &args);
    } else {
        print_table(&outcomes, &skipped, elapsed);
    }
    if violations > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

struct Progress {
    bar: Option<ProgressBar>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn spawn_progress(counter: Arc<AtomicU64>, total: u64, json: bool) -> Progress {
    let done = Arc::new(AtomicBool::new(false));
    if json || !std::io::stderr().is_terminal() {
        return Progress {
            bar: None,
            done,
            thread: None,
        };
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} states ({per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let thread = {
        let bar = bar.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                bar.set_position(counter.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    Progress {
        bar: Some(bar),
        done,
        thread: Some(thread),
    }
}

fn rate(states: u64, elapsed: Duration) -> f64 {
    states as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn print_table(outcomes: &[Outcome], skipped: &[String], elapsed: Duration) {
    println!(
        "{:<16} {:>6} {:>10} {:>10} {:>9} {:>12}  verdict",
        "workload", "syncs", "states", "violations", "time s", "states/s"
    );
    for o in outcomes {
        let verdict = if o.violation_count > 0 {
            "VIOLATED"
        } else if o.truncated {
            "ok (budget)"
        } else {
            "ok"
        };
        println!(
            "{:<16} {:>6} {:>10} {:>10} {:>9.2} {:>12.0}  {verdict}",
            o.workload,
            o.syncs,
            o.states,
            o.violation_count,
            o.elapsed.as_secs_f64(),
            rate(o.states, o.elapsed)
        );
    }
    let states: u64 = outcomes.iter().map(|o| o.states).sum();
    let violations: u64 = outcomes.iter().map(|o| o.violation_count).sum();
    let syncs: u64 = outcomes.iter().map(|o| o.syncs).sum();
    println!(
        "{:<16} {:>6} {:>10} {:>10} {:>9.2} {:>12.0}",
        "total",
        syncs,
        states,
        violations,
        elapsed.as_secs_f64(),
        rate(states, elapsed)
    );
    if !skipped.is_empty() {
        println!("not explored (deadline): {}", skipped.join(", "));
    }
    let truncated: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.truncated)
        .map(|o| o.workload.as_str())
        .collect();
    if !truncated.is_empty() {
        println!(
            "explored within the state budget, not exhaustively: {}",
            truncated.join(", ")
        );
    }
    for o in outcomes {
        for v in &o.violations {
            println!("\n[{}] {v}", o.workload);
        }
    }
    println!(
        "\nverdict: {} ({} crash states, {} workloads, {} threads)",
        if violations == 0 { "PASS" } else { "FAIL" },
        states,
        outcomes.len(),
        rayon::current_num_threads()
    );
}

fn print_json(outcomes: &[Outcome], skipped: &[String], elapsed: Duration, args: &Args) {
    let states: u64 = outcomes.iter().map(|o| o.states).sum();
    let violations: u64 = outcomes.iter().map(|o| o.violation_count).sum();
    let report = serde_json::json!({
        "verdict": if violations == 0 { "pass" } else { "fail" },
        "states": states,
        "violations": violations,
        "elapsed_seconds": elapsed.as_secs_f64(),
        "states_per_second": rate(states, elapsed),
        "threads": rayon::current_num_threads(),
        "seed": args.seed,
        "mutant": args.mutant,
        "not_explored": skipped,
        "workloads": outcomes,
    });
    match serde_json::to_string_pretty(&report) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: cannot encode the report: {error}"),
    }
}

fn replay(json: &str) -> ExitCode {
    let repro: Reproducer = match serde_json::from_str(json) {
        Ok(repro) => repro,
        Err(error) => {
            eprintln!("error: --replay needs a reproducer printed by crashsim: {error}");
            return ExitCode::from(2);
        }
    };
    let Some(workload) = by_name(&repro.workload) else {
        eprintln!("error: unknown workload {}", repro.workload);
        return ExitCode::from(2);
    };
    println!(
        "replaying {} (seed {}): {:?}",
        repro.workload, repro.seed, repro.case
    );
    let violations = match workload.replay(&repro.case) {
        Ok(violations) => violations,
        Err(not_evaluated) => {
            eprintln!("error: {not_evaluated}");
            return ExitCode::from(2);
        }
    };
    if violations.is_empty() {
        println!("no violation");
        ExitCode::SUCCESS
    } else {
        for v in &violations {
            println!("{v}");
        }
        ExitCode::FAILURE
    }
}
