//! (This crate alone.) The cost of one single-page commit in a file of 2^10 pages and in one of
//! 2^24 pages: time per commit and bytes synced per commit (from `MmapStorage::sync_log`).
//!
//! Workload: every data page of the file is allocated, then a random 1/64 of them freed (so free
//! pages are spread over every bitmap group). Each measured operation is one durable single-page
//! commit, alternately `free` of a random allocated page and `alloc` (which takes the next free
//! page). The random frees touch random groups, so the metadata log fills and folds as in a long
//! running file.

use std::path::Path;

use mappedpages::{MmapStorage, PageId, Pager};

use crate::measure::{
    BenchResult, Row, Sample, Series, SplitMix64, Unit, alternate_runs, interleave_ops,
};
use crate::rows::Ctx;
use crate::rows::durable::describe_dir;

const SMALL_PAGE_COUNT: u64 = 1 << 10;
const LARGE_PAGE_COUNT: u64 = 1 << 24;

/// Data pages of a new (format 3) file of `page_count` pages of `PAGE_SIZE` bytes (SPEC.md
/// §2.1: group slots and group table pages are internal).
fn data_pages_for<const PAGE_SIZE: usize>(page_count: u64) -> u64 {
    mappedpages::format::Geometry::with_group_table(PAGE_SIZE).data_page_count(page_count)
}

/// Whether `dir` takes a sparse file of `len_bytes` (set_len succeeds, next to no blocks used).
pub fn sparse_file_fits(dir: &Path, len_bytes: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join("sparse-probe.bin");
    let fits = (|| -> std::io::Result<bool> {
        let file = std::fs::File::create(&path)?;
        file.set_len(len_bytes)?;
        Ok(file.metadata()?.blocks() < 1024)
    })()
    .unwrap_or(false);
    let _ = std::fs::remove_file(&path);
    fits
}

/// A file of `page_count` pages, reopened with the sync log on, and the pages it has allocated.
struct Prepared<const PAGE_SIZE: usize> {
    pager: Pager<PAGE_SIZE, MmapStorage>,
    allocated: Vec<PageId<PAGE_SIZE>>,
    rng: SplitMix64,
    max_bytes_per_commit: u64,
}

fn prepare<const PAGE_SIZE: usize>(
    path: &Path,
    page_count: u64,
) -> BenchResult<Prepared<PAGE_SIZE>> {
    let data_page_count = data_pages_for::<PAGE_SIZE>(page_count);
    let mut pager = Pager::<PAGE_SIZE>::create(path)?;
    // A sparse file of up to 2^24 pages: reserving its blocks would cost as much disk as it is
    // long (SPEC.md §3.3.1). The measured pager (reopened below) reserves as usual.
    pager.set_space_reservation(false);
    let mut allocated = pager.alloc_bulk(usize::try_from(data_page_count)?)?;
    if pager.page_count() != page_count {
        return Err(format!(
            "expected a file of {page_count} pages, got {}",
            pager.page_count()
        )
        .into());
    }
    let mut rng = SplitMix64::new(page_count);
    let mut freed = Vec::with_capacity(allocated.len() / 64);
    for _ in 0..allocated.len() / 64 {
        let index = rng.below(allocated.len() as u64) as usize;
        freed.push(allocated.swap_remove(index));
    }
    pager.free_bulk(freed)?;
    drop(pager);
    let mut storage = MmapStorage::open(path)?;
    storage.record_syncs();
    let pager = Pager::<PAGE_SIZE, MmapStorage>::open_in(storage)?;
    Ok(Prepared {
        pager,
        allocated,
        rng,
        max_bytes_per_commit: 0,
    })
}

/// Single-page commit number `index` (even: `free` of a random allocated page; odd: `alloc`),
/// keeping the largest number of bytes one commit synced.
fn commit_once<const PAGE_SIZE: usize>(
    prepared: &mut Prepared<PAGE_SIZE>,
    index: usize,
) -> BenchResult<()> {
    let log_before = prepared.pager.storage().sync_log().len();
    if index.is_multiple_of(2) {
        let victim = prepared.rng.below(prepared.allocated.len() as u64) as usize;
        let id = prepared.allocated.swap_remove(victim);
        prepared.pager.free(id)?;
    } else {
        let id = prepared.pager.alloc()?;
        prepared.allocated.push(id);
    }
    let commit_bytes = range_bytes(&prepared.pager.storage().sync_log()[log_before..]);
    prepared.max_bytes_per_commit = prepared.max_bytes_per_commit.max(commit_bytes);
    Ok(())
}

/// Fills in the barriers and bytes synced since `log_start` (the sync log's length before).
fn add_log_stats<const PAGE_SIZE: usize>(
    sample: &mut Sample,
    prepared: &Prepared<PAGE_SIZE>,
    log_start: usize,
) {
    let log = &prepared.pager.storage().sync_log()[log_start..];
    sample.barrier_count = Some(log.len() as u64);
    sample.bytes_synced = Some(range_bytes(log));
}

fn range_bytes(barriers: &[Vec<std::ops::Range<u64>>]) -> u64 {
    barriers
        .iter()
        .flatten()
        .map(|range| range.end - range.start)
        .sum()
}

fn rows_at<const PAGE_SIZE: usize>(
    ctx: &mut Ctx,
    dir: &Path,
    key: &str,
    where_label: &str,
) -> BenchResult<Vec<Row>> {
    let commit_count = ctx.size(400, 100);
    let small_path = ctx.fresh_path(dir, "ours-scale-small");
    let large_path = ctx.fresh_path(dir, "ours-scale-large");
    eprintln!(
        "  {key}: building files of 2^10 and 2^24 pages of {} KiB ({} GiB sparse)",
        PAGE_SIZE / 1024,
        (LARGE_PAGE_COUNT * PAGE_SIZE as u64) >> 30
    );
    let mut small = prepare::<PAGE_SIZE>(&small_path, SMALL_PAGE_COUNT)?;
    let mut large = prepare::<PAGE_SIZE>(&large_path, LARGE_PAGE_COUNT)?;
    let batch_len = if key.contains("tmpfs") { 20 } else { 1 };
    let mut round = |_: &mut Ctx| -> BenchResult<Vec<Sample>> {
        let small_log_start = small.pager.storage().sync_log().len();
        let large_log_start = large.pager.storage().sync_log().len();
        let mut samples = interleave_ops(
            commit_count,
            batch_len,
            &mut [&mut |index| commit_once(&mut small, index), &mut |index| {
                commit_once(&mut large, index)
            }],
        )?;
        add_log_stats(&mut samples[0], &small, small_log_start);
        add_log_stats(&mut samples[1], &large, large_log_start);
        Ok(samples)
    };
    let repetitions = ctx.repetitions;
    let mut series = alternate_runs(ctx, repetitions, key, &mut [&mut round])?
        .pop()
        .unwrap_or_default();
    let small_max_bytes = small.max_bytes_per_commit;
    let large_max_bytes = large.max_bytes_per_commit;
    drop(small);
    drop(large);
    super::remove(&small_path)?;
    super::remove(&large_path)?;
    let large_series: Series = series.pop().unwrap_or_default();
    let small_series: Series = series.pop().unwrap_or_default();
    let time_ratio = large_series.median(Unit::TimePerOp) / small_series.median(Unit::TimePerOp);
    let describe = |series: &Series, max_bytes: u64| {
        format!(
            "bytes synced per commit: mean {:.0}, max {max_bytes} ({:.2} barriers per commit)",
            series.bytes_synced_per_op().unwrap_or(f64::NAN),
            series.barriers_per_op().unwrap_or(f64::NAN),
        )
    };
    let page_size_label = format!("{} KiB pages", PAGE_SIZE / 1024);
    Ok(vec![
        Row::new(
            &format!("{key}-2^10"),
            &format!("commit ×1 at 2^10 pages, {where_label} (ours alone)"),
            Unit::TimePerOp,
        )
        .with_note(format!(
            "{page_size_label}; {}; {commit_count} commits per sample (free/alloc), the two \
             files interleaved in batches of {batch_len}; {}",
            describe(&small_series, small_max_bytes),
            describe_dir(dir)
        ))
        .with_ours(small_series),
        Row::new(
            &format!("{key}-2^24"),
            &format!("commit ×1 at 2^24 pages, {where_label} (ours alone)"),
            Unit::TimePerOp,
        )
        .with_note(format!(
            "{page_size_label}; {}; time ratio 2^24 / 2^10 = {time_ratio:.2}",
            describe(&large_series, large_max_bytes),
        ))
        .with_ours(large_series),
    ])
}

fn rows_in(ctx: &mut Ctx, dir: &Path, key: &str, where_label: &str) -> BenchResult<Vec<Row>> {
    if sparse_file_fits(dir, LARGE_PAGE_COUNT * 4096) {
        rows_at::<4096>(ctx, dir, key, where_label)
    } else {
        eprintln!("  {key}: a 64 GiB sparse file does not fit; using 1 KiB pages (16 GiB)");
        rows_at::<1024>(ctx, dir, key, where_label)
    }
}

/// Rows: single-page commit at 2^10 and 2^24 pages, on the benchmark directory and on tmpfs.
pub fn commit_scale(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let dir = ctx.disk_dir.clone();
    let mut rows = rows_in(ctx, &dir, "commit-scale", "durable")?;
    if let Some(mem_dir) = ctx.mem_dir.clone() {
        rows.extend(rows_in(ctx, &mem_dir, "commit-scale-tmpfs", "tmpfs")?);
    }
    Ok(rows)
}
