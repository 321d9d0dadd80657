//! Side-by-side benchmark of `mappedpages` (this workspace) and the published `mappedpages` 0.2.0.
//!
//! `cargo run --release -p mappedpages-bench` runs every row; progress goes to stderr, the
//! markdown table and the target check to stdout. See BENCHMARKS.md for how to read it.

mod measure;
mod report;
mod rows;
mod syscount;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;

use crate::rows::{Ctx, REGISTRY};

/// The redb version this harness is built against (kept in step with bench/Cargo.toml).
pub const REDB_VERSION: &str = "4.6";

/// Runs the same workloads on this crate and on mappedpages 0.2.0, alternating, and prints one
/// markdown table (median, spread, ratio ours/0.2.0, syncs per operation).
#[derive(Parser, Debug)]
#[command(name = "mappedpages-bench")]
struct Options {
    /// Smaller workloads and 3 repetitions: a smoke run of well under 30 s.
    #[arg(long)]
    quick: bool,

    /// Run only the rows whose key contains one of these (comma-separated); see --list.
    #[arg(long, value_delimiter = ',')]
    filter: Vec<String>,

    /// List the row keys and exit.
    #[arg(long)]
    list: bool,

    /// Directory for both crates' files (a fresh temporary directory is made inside it).
    /// Default: ./target under the current directory.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Memory-backed directory (tmpfs) for the CPU-cost rows. Default: /dev/shm if present.
    #[arg(long)]
    mem_dir: Option<PathBuf>,

    /// Skip the memory-backed rows.
    #[arg(long)]
    no_mem: bool,

    /// Repetitions per contender per row (default 11, or 3 with --quick).
    #[arg(long)]
    reps: Option<usize>,

    /// Also write every row, with all samples, as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The file system type of the mount holding `dir`, from /proc/mounts ("ext4", "tmpfs", …).
pub fn fs_kind(dir: &Path) -> String {
    let Ok(canonical) = dir.canonicalize() else {
        return "unknown fs".to_string();
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "unknown fs".to_string();
    };
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 {
            continue;
        }
        let mount_point = fields[1].replace("\\040", " ");
        if canonical.starts_with(&mount_point)
            && best
                .as_ref()
                .is_none_or(|(length, _)| mount_point.len() > *length)
        {
            best = Some((mount_point.len(), fields[2].to_string()));
        }
    }
    best.map(|(_, kind)| kind)
        .unwrap_or_else(|| "unknown fs".to_string())
}

/// The 1-minute load average, to show how busy the machine was (others may share it).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

fn make_run_dir(base: &Path) -> Result<tempfile::TempDir, Box<dyn Error>> {
    std::fs::create_dir_all(base)
        .map_err(|error| format!("cannot create {}: {error}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("mappedpages-bench-")
        .tempdir_in(base)
        .map_err(|error| format!("cannot make a directory in {}: {error}", base.display()))?;
    Ok(dir)
}

fn main() -> Result<(), Box<dyn Error>> {
    let options = Options::parse();
    if options.list {
        for spec in REGISTRY {
            println!("{}", spec.key);
        }
        return Ok(());
    }
    let started = Instant::now();
    let load_at_start = load_average();

    let disk_base = match &options.dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir()?.join("target"),
    };
    let disk_dir = make_run_dir(&disk_base)?;
    let mem_base = if options.no_mem {
        None
    } else {
        options
            .mem_dir
            .clone()
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|dir| dir.is_dir()))
    };
    let mem_dir = match &mem_base {
        Some(base) => Some(make_run_dir(base)?),
        None => None,
    };

    // Flush whatever the build (or anything before) left dirty, so that the first durable rows do
    // not pay for someone else's writeback.
    eprintln!("sync(2) before measuring");
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };

    let syscalls_counted = syscount::self_test(disk_dir.path())?;
    if !syscalls_counted {
        eprintln!("warning: msync/fsync counting is not in effect; syscall columns print n/a");
    }
    let repetitions = options
        .reps
        .unwrap_or(if options.quick { 3 } else { 11 })
        .max(1);
    let mut ctx = Ctx::new(
        disk_dir.path().to_path_buf(),
        mem_dir.as_ref().map(|dir| dir.path().to_path_buf()),
        repetitions,
        options.quick,
    );
    eprintln!(
        "bench directory: {} ({}); memory-backed: {}; {repetitions} repetitions{}",
        disk_dir.path().display(),
        fs_kind(disk_dir.path()),
        match &mem_dir {
            Some(dir) => format!("{} ({})", dir.path().display(), fs_kind(dir.path())),
            None => "none".to_string(),
        },
        if options.quick { ", quick" } else { "" }
    );

    let selected: Vec<_> = REGISTRY
        .iter()
        .filter(|spec| {
            options.filter.is_empty()
                || options
                    .filter
                    .iter()
                    .any(|wanted| spec.key.contains(wanted.as_str()))
        })
        .collect();
    if selected.is_empty() {
        return Err("--filter matched no row; see --list".into());
    }
    let mut rows = Vec::new();
    for (index, spec) in selected.iter().enumerate() {
        let row_started = Instant::now();
        eprintln!("[{}/{}] {}", index + 1, selected.len(), spec.key);
        let produced =
            (spec.run)(&mut ctx).map_err(|error| format!("row {} failed: {error}", spec.key))?;
        eprintln!("  done in {:.1} s", row_started.elapsed().as_secs_f64());
        rows.extend(produced);
    }
    // Reference rows last (stable: the others keep their order).
    rows.sort_by_key(|row| row.key.starts_with("ref-"));
    let wall_seconds = started.elapsed().as_secs_f64();

    println!(
        "mappedpages (this workspace) vs mappedpages 0.2.0 — {repetitions} repetitions per row, \
         alternating, after one discarded warm-up round; bench directory on {}, memory-backed \
         rows on {}; wall time {wall_seconds:.1} s; 1-minute load average {load_at_start} at \
         start, {} at the end{}\n",
        fs_kind(disk_dir.path()),
        match &mem_dir {
            Some(dir) => fs_kind(dir.path()),
            None => "(none)".to_string(),
        },
        load_average(),
        if options.quick { " (--quick)" } else { "" }
    );
    println!("{}", report::markdown_table(&rows, syscalls_counted));
    println!("{}\n", report::LEGEND);
    println!("Targets:\n\n{}", report::targets(&rows));
    if let Some(path) = &options.json {
        std::fs::write(path, report::json(&rows))
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        eprintln!("JSON written to {}", path.display());
    }
    eprintln!("total wall time {wall_seconds:.1} s");
    Ok(())
}
