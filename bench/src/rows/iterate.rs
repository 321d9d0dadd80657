//! (This crate alone; issue 15.) `iter_allocated_pages` over about 2^20 allocated pages against
//! a plain bit scan of a bitmap holding the same pages, measured side by side in one run: without
//! protected pages, with one, and with 1,000; and the file without protected pages reopened, so
//! that most of its groups are not loaded and are read from their pinned slots (SPEC.md §4.9).
//!
//! The plain scan is the floor any iterator over a bitmap pays: load a word, yield its set bits
//! with `trailing_zeros`. It runs over a `Vec<u64>` built (untimed) from the pages the iterator
//! yielded, so both walk the same bits; both sum the page numbers they see.

use std::hint::black_box;
use std::path::Path;

use crate::measure::{BenchResult, Probe, Row, Sample, Series, Unit, alternate};
use crate::rows::durable::describe_dir;
use crate::rows::{Ctx, Ours, OursMode, create_ours, remove};

/// Regular pages allocated in every file of this row.
const ALLOCATED_PAGES: usize = 1 << 20;

/// A file with `protected` protected pages (allocated first, so their pages lie among the
/// regular ones) and [`ALLOCATED_PAGES`] regular pages; reservation off (the file stays sparse).
fn build(path: &Path, protected: usize, allocated: usize) -> BenchResult<Ours> {
    let mut pager = create_ours(path, OursMode::Flip)?;
    pager.set_space_reservation(false);
    if protected > 0 {
        drop(pager.alloc_protected_bulk(protected)?);
    }
    drop(pager.alloc_bulk(allocated)?);
    Ok(pager)
}

/// Times one full `iter_allocated_pages`.
fn time_iter(pager: &Ours) -> Sample {
    let probe = Probe::start();
    let mut count = 0u64;
    let mut sum = 0u64;
    for id in pager.iter_allocated_pages() {
        count += 1;
        sum = sum.wrapping_add(id.raw());
    }
    black_box((sum, count));
    probe.stop(1)
}

/// Times one plain scan of `words`.
fn time_plain_scan(words: &[u64]) -> Sample {
    let probe = Probe::start();
    let mut count = 0u64;
    let mut sum = 0u64;
    for (index, &word) in black_box(words).iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            count += 1;
            sum = sum.wrapping_add(index as u64 * 64 + u64::from(bits.trailing_zeros()));
            bits &= bits - 1;
        }
    }
    black_box((sum, count));
    probe.stop(1)
}

/// The bitmap of the pages `pager` lists.
fn plain_bitmap(pager: &Ours) -> Vec<u64> {
    let mut words = vec![0u64; pager.page_count().div_ceil(64) as usize];
    for id in pager.iter_allocated_pages() {
        words[(id.raw() / 64) as usize] |= 1 << (id.raw() % 64);
    }
    words
}

/// Rows: time per full pass of `iter_allocated_pages` at 0, 1 and 1,000 protected pages, and
/// of the plain scan, with the ratios in the notes.
pub fn iter_scan(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let dir = ctx.mem_dir.clone().unwrap_or_else(|| ctx.disk_dir.clone());
    let allocated = ctx.size(ALLOCATED_PAGES, ALLOCATED_PAGES / 8);
    let protected_counts = [0usize, 1, 1000];
    let mut pagers = Vec::new();
    let mut paths = Vec::new();
    eprintln!("  iter-scan: building 3 files of {allocated} allocated 4 KiB pages (sparse)");
    for &protected in &protected_counts {
        let path = ctx.fresh_path(&dir, "ours-iter");
        pagers.push(build(&path, protected, allocated)?);
        paths.push(path);
    }
    let reopened_path = ctx.fresh_path(&dir, "ours-iter-reopened");
    drop(build(&reopened_path, 0, allocated)?);
    let reopened = Ours::open(&reopened_path)?;
    paths.push(reopened_path);
    let words = plain_bitmap(&pagers[0]);
    let mut plain = |_: &mut Ctx| Ok(time_plain_scan(&words));
    let [none, one, many] = &pagers[..] else {
        return Err("three files were built".into());
    };
    let mut iter_none = |_: &mut Ctx| Ok(time_iter(none));
    let mut iter_one = |_: &mut Ctx| Ok(time_iter(one));
    let mut iter_many = |_: &mut Ctx| Ok(time_iter(many));
    let mut iter_reopened = |_: &mut Ctx| Ok(time_iter(&reopened));
    let repetitions = ctx.repetitions;
    let series = alternate(
        ctx,
        repetitions,
        "iter-scan",
        &mut [
            &mut plain,
            &mut iter_none,
            &mut iter_one,
            &mut iter_many,
            &mut iter_reopened,
        ],
    )?;
    let page_counts: Vec<u64> = pagers.iter().map(|p| p.page_count()).collect();
    let reopened_pages = reopened.page_count();
    drop(pagers);
    drop(reopened);
    for path in &paths {
        remove(path)?;
    }
    let [plain_series, rest @ .., reopened_series] = &series[..] else {
        return Err("five series were measured".into());
    };
    let plain_ns = plain_series.median(Unit::TimePerOp);
    let mut rows = vec![
        Row::new(
            "iter-scan-plain",
            "plain bit scan, one full pass (ours alone: the reference)",
            Unit::TimePerOp,
        )
        .with_ours(plain_series.clone())
        .with_note(format!(
            "a Vec<u64> of the {allocated} pages the unprotected file lists; {}",
            describe_dir(&dir)
        )),
    ];
    for ((protected, series), page_count) in protected_counts.iter().zip(rest).zip(&page_counts) {
        rows.push(iter_row(*protected, series, plain_ns, *page_count));
    }
    let ratio = reopened_series.median(Unit::TimePerOp) / plain_ns;
    rows.push(
        Row::new(
            "iter-scan-reopened",
            "iter_allocated_pages, 0 protected pages, reopened: groups read from their slots (ours alone)",
            Unit::TimePerOp,
        )
        .with_ours(reopened_series.clone())
        .with_note(format!(
            "time ratio to the plain bit scan, same run = {ratio:.2}; file of {reopened_pages} pages, \
             reopened (format 3 loads a group on first use; reads take its bits from its pinned \
             slot, checked once)"
        )),
    );
    Ok(rows)
}

fn iter_row(protected: usize, series: &Series, plain_ns: f64, page_count: u64) -> Row {
    let ratio = series.median(Unit::TimePerOp) / plain_ns;
    Row::new(
        &format!("iter-scan-protected-{protected}"),
        &format!("iter_allocated_pages, {protected} protected pages, one full pass (ours alone)"),
        Unit::TimePerOp,
    )
    .with_ours(series.clone())
    .with_note(format!(
        "time ratio to the plain bit scan, same run = {ratio:.2}; file of {page_count} pages"
    ))
}
