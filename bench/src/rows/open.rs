//! `open` of an existing file: 16,000 pages (both crates) and 2^20 pages (this crate alone).

use std::path::Path;

use crate::measure::{BenchResult, Probe, Row, Sample, Unit, alternate};
use crate::rows::durable::describe_dir;
use crate::rows::{Ctx, Ours, OursMode, Theirs, create_ours, remove};

/// Data pages to allocate so that this crate's file has exactly `page_count` pages at 4 KiB:
/// every group of `(4096 − 32) · 8` pages holds two bitmap pages, and pages 0–2 (superblock,
/// metadata) and 3–4 (group 0's slots) are internal (SPEC.md §2.1).
fn data_pages_for(page_count: u64) -> u64 {
    let group_page_count = (4096 - 32) * 8;
    let group_count = page_count.div_ceil(group_page_count);
    page_count - 5 - 2 * (group_count - 1)
}

/// Times `open` (not the drop that follows) `open_count` times.
fn time_opens<T>(
    open_count: usize,
    mut open: impl FnMut() -> BenchResult<T>,
) -> BenchResult<Sample> {
    let mut total = Sample::default();
    for _ in 0..open_count {
        let probe = Probe::start();
        let pager = open()?;
        total.accumulate(&probe.stop(1));
        drop(pager);
    }
    Ok(total)
}

fn build_ours(path: &Path, page_count: u64) -> BenchResult<u64> {
    let mut pager = create_ours(path, OursMode::Flip)?;
    // Up to 2^20 pages (4 GiB), left sparse: reservation off for the build (SPEC.md §3.3.1).
    pager.set_space_reservation(false);
    let data_page_count = usize::try_from(data_pages_for(page_count))?;
    drop(pager.alloc_bulk(data_page_count)?);
    Ok(pager.page_count())
}

/// Row: `open` of a file with 16,000 pages (15,995 allocated data pages).
pub fn open_16k(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let open_count = ctx.size(200, 20);
    let dir = ctx.disk_dir.clone();
    let ours_path = ctx.fresh_path(&dir, "ours-open16k");
    let ours_page_count = build_ours(&ours_path, 16_000)?;
    let theirs_path = ctx.fresh_path(&dir, "theirs-open16k");
    let mut theirs_pager = Theirs::create(&theirs_path)?;
    drop(theirs_pager.alloc_bulk(usize::try_from(data_pages_for(16_000))?)?);
    let theirs_page_count = theirs_pager.page_count();
    drop(theirs_pager);

    let mut ours = |_: &mut Ctx| time_opens(open_count, || Ok(Ours::open(&ours_path)?));
    let mut theirs = |_: &mut Ctx| time_opens(open_count, || Ok(Theirs::open(&theirs_path)?));
    let repetitions = ctx.repetitions;
    let mut series = alternate(ctx, repetitions, "open-16k", &mut [&mut ours, &mut theirs])?;
    remove(&ours_path)?;
    remove(&theirs_path)?;
    let theirs_series = series.pop().unwrap_or_default();
    let ours_series = series.pop().unwrap_or_default();
    Ok(vec![
        Row::new("open-16k", "open, 16,000-page file", Unit::TimePerOp)
            .with_ours(ours_series)
            .with_theirs(theirs_series)
            .with_note(format!(
                "{} data pages allocated; file: ours {ours_page_count} pages, theirs \
                 {theirs_page_count} (it grows by doubling); {open_count} opens per sample, \
                 page cache warm; {}",
                data_pages_for(16_000),
                describe_dir(&dir)
            )),
    ])
}

/// Row: `open` of a file with 2^20 pages (this crate alone: 0.2.0 holds 16,381 at 4 KiB).
pub fn open_1m(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let open_count = ctx.size(100, 10);
    let dir = ctx.disk_dir.clone();
    let path = ctx.fresh_path(&dir, "ours-open1m");
    eprintln!("  open-1m: building a 2^20-page file (4 GiB, sparse)");
    let page_count = build_ours(&path, 1 << 20)?;
    let mut ours = |_: &mut Ctx| time_opens(open_count, || Ok(Ours::open(&path)?));
    let repetitions = ctx.repetitions;
    let mut series = alternate(ctx, repetitions, "open-1m", &mut [&mut ours])?;
    remove(&path)?;
    Ok(vec![
        Row::new(
            "open-1m",
            "open, 2^20-page file (ours alone)",
            Unit::TimePerOp,
        )
        .with_ours(series.pop().unwrap_or_default())
        .with_note(format!(
            "{page_count} pages (4 GiB sparse), all data pages allocated; {open_count} opens \
                 per sample; {}",
            describe_dir(&dir)
        )),
    ])
}
