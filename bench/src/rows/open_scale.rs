//! (This crate alone; issue 15.) `open` of full files of 2^10, 2^20, 2^24 and (outside
//! `--quick`, where a 256 GiB sparse file fits) 2^28 pages of 1 KiB (sparse: data pages never
//! written; built with space reservation off) and of a 16-page file with a 16 GiB sparse tail past its
//! committed pages (what an interrupted growth leaves), with the page cache dropped before each
//! open (cold) and kept (warm), and the resident memory the open added.
//!
//! Cold opens need root: `sync` and `echo 3 > /proc/sys/vm/drop_caches` before each one. Where
//! that is refused the cold rows are left out and the note says so. Dropping the page cache
//! slows every other process on the machine for a moment; run this row alone.

use std::path::{Path, PathBuf};

use mappedpages::Pager;

use crate::measure::{BenchResult, Probe, Row, Sample, Series, Unit, alternate_runs};
use crate::rows::alloc_scale::build_full;
use crate::rows::durable::describe_dir;
use crate::rows::scale::sparse_file_fits;
use crate::rows::{Ctx, remove};

const PAGE_SIZE: usize = 1024;

/// Warm opens per sample.
const WARM_OPENS: usize = 5;

/// Drops the page cache (after writing back dirty pages); false where not permitted.
fn drop_page_cache() -> bool {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// The process's resident set (VmRSS) in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// One file of the row.
struct OpenCase {
    label: String,
    path: PathBuf,
    page_count: u64,
    file_len_bytes: u64,
    /// Resident KiB added by each cold open (or warm, where cold is not permitted).
    rss_added_kib: Vec<u64>,
}

/// A 16-page file whose length is then set to 16 GiB: committed pages 16, the rest a hole.
fn build_with_tail(path: &Path) -> BenchResult<u64> {
    let pager = Pager::<PAGE_SIZE>::create(path)?;
    let page_count = pager.page_count();
    drop(pager);
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(16 << 30)?;
    file.sync_all()?;
    Ok(page_count)
}

/// Times one open of `case` (cold: page cache dropped first) and notes the memory it added.
fn time_open(case: &mut OpenCase, cold: bool) -> BenchResult<Sample> {
    if cold && !drop_page_cache() {
        return Err("drop_caches refused".into());
    }
    let rss_before = rss_kib();
    let probe = Probe::start();
    let pager = Pager::<PAGE_SIZE>::open(&case.path)?;
    let sample = probe.stop(1);
    if cold {
        case.rss_added_kib
            .push(rss_kib().saturating_sub(rss_before));
    }
    drop(pager);
    Ok(sample)
}

fn build_cases(ctx: &mut Ctx, dir: &Path) -> BenchResult<Vec<OpenCase>> {
    let mut cases = Vec::new();
    let mut exponents = vec![10u32, 20, 24];
    if !ctx.quick && sparse_file_fits(dir, (1 << 28) * PAGE_SIZE as u64) {
        exponents.push(28);
    }
    for exponent in exponents {
        let path = ctx.fresh_path(dir, &format!("ours-open-scale-{exponent}"));
        eprintln!("  open-scale: building a full file of 2^{exponent} pages of 1 KiB");
        let page_count = build_full(&path, 1 << exponent)?.page_count();
        cases.push(OpenCase {
            label: format!("2^{exponent} pages, all allocated"),
            file_len_bytes: page_count * PAGE_SIZE as u64,
            path,
            page_count,
            rss_added_kib: Vec::new(),
        });
    }
    let path = ctx.fresh_path(dir, "ours-open-scale-tail");
    let page_count = build_with_tail(&path)?;
    cases.push(OpenCase {
        label: format!("{page_count} pages + 16 GiB sparse tail"),
        path,
        page_count,
        file_len_bytes: 16 << 30,
        rss_added_kib: Vec::new(),
    });
    Ok(cases)
}

/// Rows: cold and warm `open` of each file, cold ones as ratios to the 2^10 file's.
pub fn open_scale(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let dir = ctx.disk_dir.clone();
    let mut cases = build_cases(ctx, &dir)?;
    let cold = drop_page_cache();
    if !cold {
        eprintln!("  open-scale: cannot drop the page cache (not root?): warm opens only");
    }
    let mut round = |_: &mut Ctx| -> BenchResult<Vec<Sample>> {
        let mut samples = Vec::new();
        if cold {
            for case in cases.iter_mut() {
                samples.push(time_open(case, true)?);
            }
        }
        for case in cases.iter_mut() {
            // One untimed open first: the cold opens above dropped this file's pages.
            time_open(case, false)?;
            let mut total = Sample::default();
            for _ in 0..WARM_OPENS {
                total.accumulate(&time_open(case, false)?);
            }
            samples.push(total);
        }
        Ok(samples)
    };
    let repetitions = ctx.repetitions;
    let series = alternate_runs(ctx, repetitions, "open-scale", &mut [&mut round])?
        .pop()
        .unwrap_or_default();
    for case in &cases {
        remove(&case.path)?;
    }
    let (cold_series, warm_series) = series.split_at(if cold { cases.len() } else { 0 });
    let mut rows = Vec::new();
    let cold_base = cold_series.first().map(|s| s.median(Unit::TimePerOp));
    for (case, series) in cases.iter().zip(cold_series) {
        rows.push(open_row(case, series, "cold", cold_base, &dir));
    }
    let warm_base = warm_series.first().map(|s| s.median(Unit::TimePerOp));
    for (case, series) in cases.iter().zip(warm_series) {
        rows.push(open_row(case, series, "warm", warm_base, &dir));
    }
    Ok(rows)
}

fn open_row(case: &OpenCase, series: &Series, kind: &str, base_ns: Option<f64>, dir: &Path) -> Row {
    let ratio = series.median(Unit::TimePerOp) / base_ns.unwrap_or(f64::NAN);
    let mut rss = case.rss_added_kib.clone();
    rss.sort_unstable();
    let rss_note = match rss.get(rss.len() / 2) {
        Some(kib) if kind == "cold" => format!("; resident memory added by the open {kib} KiB"),
        _ => String::new(),
    };
    let key_suffix = case
        .label
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string();
    let key_suffix = if case.label.contains("tail") {
        "tail".to_string()
    } else {
        key_suffix
    };
    Row::new(
        &format!("open-scale-{kind}-{key_suffix}"),
        &format!("open ({kind} page cache), {} (ours alone)", case.label),
        Unit::TimePerOp,
    )
    .with_ours(series.clone())
    .with_note(format!(
        "time ratio to the 2^10 file, same run = {ratio:.2}; {} pages, file {} MiB (sparse){rss_note}; \
         {}; read-ahead {}",
        case.page_count,
        case.file_len_bytes >> 20,
        describe_dir(dir),
        read_ahead_kib(dir)
    ))
}

/// The read-ahead of the block device holding `dir`, from /sys (for the note).
fn read_ahead_kib(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = std::fs::metadata(dir) else {
        return "unknown".to_string();
    };
    let (major, minor) = (libc::major(metadata.dev()), libc::minor(metadata.dev()));
    std::fs::read_to_string(format!(
        "/sys/dev/block/{major}:{minor}/queue/read_ahead_kb"
    ))
    .or_else(|_| {
        std::fs::read_to_string(format!(
            "/sys/dev/block/{major}:{minor}/../queue/read_ahead_kb"
        ))
    })
    .map(|text| format!("{} KiB", text.trim()))
    .unwrap_or_else(|_| "unknown".to_string())
}
