//! The command-line front end: the `crashsim` binary over the built-in workloads
//! ([`builtin_main`]), and the same experience over your own scenarios in a small binary of
//! yours ([`main`]): a progress line, the table, `--json`, `--list`, `--workload`, `--replay` of
//! the reproducers it prints, `--seconds`/`--max-states` budgets whose cut-short runs are
//! reported PARTIAL (exit status 3) rather than passed.
//!
//! ```no_run
//! // src/bin/crash.rs of your engine (`cargo run --release --bin crash -- --help`)
//! # use crashsim::{Allowed, Finding, Matched, Recorder, Recovered, Scenario};
//! # use mappedpages::{Pager, SimStorage};
//! # struct MyScenario;
//! # impl Scenario<4096> for MyScenario {
//! #     type Model = ();
//! #     fn name(&self) -> String { "mine".into() }
//! #     fn initial_model(&self) {}
//! #     fn run(&self, pager: Pager<4096, SimStorage>, _: &mut Recorder<()>)
//! #         -> Result<Pager<4096, SimStorage>, Finding> { Ok(pager) }
//! #     fn check(&self, _: &Recovered<'_, 4096>, _: &Allowed<'_, ()>)
//! #         -> Result<Matched, Finding> { Ok(Matched::Acknowledged) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     crashsim::cli::main(vec![crashsim::workload(MyScenario)])
//! }
//! ```
//!
//! Exit status: 0 pass, 1 violations (or fewer crash states than `--min-states`), 2 a usage
//! error, 3 a run cut short by `--seconds` or `--max-states` (0 with `--allow-partial`).

mod args;
mod progress;
mod report;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use mappedpages::CommitMode;

use crate::workloads::{builtin, by_name};
use crate::{Config, Outcome, Reproducer, Workload, commit_mode_suffix};
use args::Args;
use progress::Progress;
use report::{Run, Verdict};

/// Runs the command line of this process (`std::env::args`) over `workloads`: your own
/// scenarios, each made a [`Workload`] with [`workload`](crate::workload). Returns the exit
/// status for `main` to return.
pub fn main(workloads: Vec<Box<dyn Workload>>) -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let program = argv.first().cloned().unwrap_or_else(|| "crash".to_string());
    run_with(
        &program,
        argv.get(1..).unwrap_or_default(),
        Source::Given(workloads),
    )
}

/// The `crashsim` binary: [`main`] over the built-in workloads of mappedpages (`--list`), with
/// the options that shape them (`--mixes`, `--protected-mixes`, `--seed`, `--commit-modes`).
pub fn builtin_main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    run_with(
        "crashsim",
        argv.get(1..).unwrap_or_default(),
        Source::Builtin,
    )
}

/// Where the workloads come from.
enum Source {
    /// mappedpages' own, generated from the options.
    Builtin,
    /// The caller's.
    Given(Vec<Box<dyn Workload>>),
}

fn usage_error(program: &str, message: &str) -> ExitCode {
    eprintln!("error: {message}\n(see {program} --help)");
    ExitCode::from(2)
}

fn run_with(program: &str, argv: &[String], source: Source) -> ExitCode {
    let builtin_source = matches!(source, Source::Builtin);
    let args = match args::parse(argv) {
        Ok(args) => args,
        Err(message) => return usage_error(program, &message),
    };
    if args.help {
        print!("{}", args::usage(program, builtin_source));
        return ExitCode::SUCCESS;
    }
    if args.version {
        println!("crashsim {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Err(message) = activate_mutant(args.mutant.as_deref()) {
        return usage_error(program, &message);
    }
    let replay_command = replay_command(program, builtin_source, args.mutant.is_some());
    let all = match source {
        Source::Builtin => builtin(
            args.mixes,
            args.protected_mixes,
            args.seed,
            &modes_or_both(&args),
        ),
        Source::Given(workloads) => match &args.commit_modes {
            Some(modes) => workloads
                .into_iter()
                .filter(|w| modes.contains(&w.commit_mode()))
                .collect(),
            None => workloads,
        },
    };
    if let Some(json) = &args.replay {
        return replay(program, json, &all, builtin_source);
    }
    if args.list {
        print_list(&all);
        return ExitCode::SUCCESS;
    }
    let chosen = match choose(&args, all, builtin_source) {
        Ok(chosen) => chosen,
        Err(message) => return usage_error(program, &message),
    };
    explore_all(&args, &chosen, replay_command)
}

fn modes_or_both(args: &Args) -> Vec<CommitMode> {
    args.commit_modes
        .clone()
        .unwrap_or_else(|| vec![CommitMode::Flip, CommitMode::SingleSync])
}

/// How this front end replays a reproducer: the built-in binary through cargo (with the
/// `mutants` feature when a mutant is active), a user's binary by its path.
fn replay_command(program: &str, builtin: bool, mutant: bool) -> String {
    match (builtin, mutant) {
        (true, true) => "cargo run --release -p crashsim --features mutants --".to_string(),
        (true, false) => "cargo run --release -p crashsim --".to_string(),
        (false, _) => program.to_string(),
    }
}

/// The workloads `--workload` names (all of them without it). A built-in base name runs in
/// every mode of `--commit-modes` (default both); a name with a mode suffix as named.
fn choose(
    args: &Args,
    all: Vec<Box<dyn Workload>>,
    builtin_source: bool,
) -> Result<Vec<Box<dyn Workload>>, String> {
    if args.workloads.is_empty() {
        return Ok(all);
    }
    let unknown = |name: &str| format!("unknown workload {name}; see --list");
    let mut chosen: Vec<Box<dyn Workload>> = Vec::new();
    let mut all: Vec<Option<Box<dyn Workload>>> = all.into_iter().map(Some).collect();
    for name in &args.workloads {
        if builtin_source {
            let suffix = commit_mode_suffix(CommitMode::SingleSync);
            let names: Vec<String> = if name.ends_with(suffix) {
                vec![name.clone()]
            } else {
                modes_or_both(args)
                    .into_iter()
                    .map(|mode| format!("{name}{}", commit_mode_suffix(mode)))
                    .collect()
            };
            for name in names {
                chosen.push(by_name(&name).ok_or_else(|| unknown(&name))?);
            }
        } else {
            let slot = all
                .iter_mut()
                .find(|slot| slot.as_ref().is_some_and(|w| &w.name() == name))
                .ok_or_else(|| unknown(name))?;
            chosen.extend(slot.take());
        }
    }
    Ok(chosen)
}

fn print_list(workloads: &[Box<dyn Workload>]) {
    let width = workloads
        .iter()
        .map(|w| w.name().chars().count())
        .max()
        .unwrap_or(0);
    for workload in workloads {
        let description = workload.description();
        let page = format!("{} B pages", workload.page_size());
        println!(
            "{:<width$}  {page:>12}  {}",
            workload.name(),
            if description.is_empty() {
                "-"
            } else {
                &description
            }
        );
    }
}

/// Activates the mutant `name` (none: nothing to do), or says why it cannot.
pub(crate) fn activate_mutant(name: Option<&str>) -> Result<(), String> {
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
            "mutant {name} needs crashsim's mutants feature (in this repository: cargo run \
             --release -p crashsim --features mutants -- ...)"
        ))
    }
}

fn explore_all(args: &Args, workloads: &[Box<dyn Workload>], replay_command: String) -> ExitCode {
    let started = Instant::now();
    let deadline = args.seconds.map(|s| started + Duration::from_secs(s));
    let counter = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(
        counter.clone(),
        workloads.len() as u64,
        args.json,
        args.progress,
    );
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut remaining = args.max_states.unwrap_or(u64::MAX);
    for (index, workload) in workloads.iter().enumerate() {
        if remaining == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let left = (workloads.len() - index) as u64;
        let config = Config {
            sector_sizes: args.sectors.clone(),
            seed: args.seed,
            max_states: (remaining / left).max(1),
            deadline,
            stop_at_first_violation: args.stop_at_first,
            phases: args.phases,
            progress: Some(counter.clone()),
            ..Config::thorough()
        };
        progress.begin(&workload.name());
        let outcome = workload.explore(&config);
        progress.end();
        remaining = remaining.saturating_sub(outcome.states);
        outcomes.push(outcome);
    }
    progress.finish();
    let not_explored: Vec<String> = workloads
        .iter()
        .skip(outcomes.len())
        .map(|w| w.name())
        .collect();
    let limits = [
        args.seconds.map(|s| format!("--seconds {s}")),
        args.max_states.map(|n| format!("--max-states {n}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" / ");
    let run = Run {
        outcomes: &outcomes,
        not_explored: &not_explored,
        elapsed: started.elapsed(),
        min_states: args.min_states,
        seed: args.seed,
        mutant: args.mutant.as_deref(),
        limits,
        replay_command,
    };
    if args.json {
        report::print_json(&run);
    } else {
        report::print_table(&run);
    }
    exit_status(&run, args.allow_partial)
}

fn exit_status(run: &Run<'_>, allow_partial: bool) -> ExitCode {
    let states = run.states();
    if states < run.min_states {
        eprintln!(
            "error: explored {states} crash states, fewer than --min-states {}",
            run.min_states
        );
    }
    match run.verdict() {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Fail => ExitCode::FAILURE,
        Verdict::Partial if allow_partial => ExitCode::SUCCESS,
        Verdict::Partial => {
            eprintln!(
                "error: the run was cut short (PARTIAL); pass --allow-partial to accept that"
            );
            ExitCode::from(3)
        }
    }
}

fn replay(program: &str, json: &str, all: &[Box<dyn Workload>], builtin: bool) -> ExitCode {
    let repro: Reproducer = match serde_json::from_str(json) {
        Ok(repro) => repro,
        Err(error) => {
            return usage_error(
                program,
                &format!("--replay needs a reproducer this program printed: {error}"),
            );
        }
    };
    if let Some(mutant) = &repro.mutant
        && let Err(message) = activate_mutant(Some(mutant))
    {
        return usage_error(program, &message);
    }
    let found = if builtin {
        by_name(&repro.workload)
    } else {
        None
    };
    let workload = match found.as_deref() {
        Some(workload) => Some(workload),
        None => all
            .iter()
            .find(|w| w.name() == repro.workload)
            .map(|w| w.as_ref()),
    };
    let Some(workload) = workload else {
        return usage_error(
            program,
            &format!(
                "unknown workload {} (this program has: {})",
                repro.workload,
                all.iter().map(|w| w.name()).collect::<Vec<_>>().join(", ")
            ),
        );
    };
    println!(
        "replaying {} (seed {}{}): {:?}",
        repro.workload,
        repro.seed,
        repro
            .mutant
            .as_deref()
            .map(|m| format!(", mutant {m}"))
            .unwrap_or_default(),
        repro.case
    );
    match workload.replay(&repro.case) {
        Ok(violations) if violations.is_empty() => {
            println!("no violation");
            ExitCode::SUCCESS
        }
        Ok(_) => ExitCode::FAILURE,
        Err(not_evaluated) => {
            eprintln!("error: {not_evaluated}");
            ExitCode::from(2)
        }
    }
}
