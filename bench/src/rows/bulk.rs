//! `alloc_bulk(10_000)` and `free_bulk` of the same pages: on the disk directory, on tmpfs
//! (where the CPU cost shows) and, for this crate alone, on `SimStorage`.

use std::path::PathBuf;

use mappedpages::{Pager, SimStorage};

use crate::measure::{BenchResult, Probe, Row, Unit, alternate_runs};
use crate::rows::durable::{describe_dir, skipped};
use crate::rows::{Ctx, OursMode, PAGE_SIZE_BYTES, Theirs, add_ours_stats, create_ours, remove};

/// Pages per bulk call (the 10,000; within 0.2.0's 16,381-page capacity).
const BULK_PAGE_COUNT: usize = 10_000;

fn bulk_rows(ctx: &mut Ctx, dir: PathBuf, key: &str, where_label: &str) -> BenchResult<Vec<Row>> {
    let note = format!(
        "one call of {BULK_PAGE_COUNT} pages on a fresh 16-page file (growth included), then \
         free_bulk of the same ids; {}",
        describe_dir(&dir)
    );
    let ours_dir = dir.clone();
    let mut ours = move |ctx: &mut Ctx| -> BenchResult<Vec<crate::measure::Sample>> {
        let path = ctx.fresh_path(&ours_dir, "ours-bulk");
        let mut pager = create_ours(&path, OursMode::Flip)?;
        let before = pager.storage().stats();
        let probe = Probe::start();
        let ids = pager.alloc_bulk(BULK_PAGE_COUNT)?;
        let mut alloc_sample = probe.stop(1);
        let middle = pager.storage().stats();
        add_ours_stats(&mut alloc_sample, before, middle);
        let probe = Probe::start();
        pager.free_bulk(ids)?;
        let mut free_sample = probe.stop(1);
        add_ours_stats(&mut free_sample, middle, pager.storage().stats());
        drop(pager);
        remove(&path)?;
        Ok(vec![alloc_sample, free_sample])
    };
    let mut theirs = move |ctx: &mut Ctx| -> BenchResult<Vec<crate::measure::Sample>> {
        let path = ctx.fresh_path(&dir, "theirs-bulk");
        let mut pager = Theirs::create(&path)?;
        let probe = Probe::start();
        let ids = pager.alloc_bulk(BULK_PAGE_COUNT)?;
        let alloc_sample = probe.stop(1);
        let probe = Probe::start();
        pager.free_bulk(ids)?;
        let free_sample = probe.stop(1);
        drop(pager);
        remove(&path)?;
        Ok(vec![alloc_sample, free_sample])
    };
    let repetitions = ctx.repetitions.max(5);
    let mut series = alternate_runs(ctx, repetitions, key, &mut [&mut ours, &mut theirs])?;
    let mut theirs_series = series.pop().unwrap_or_default().into_iter();
    let mut ours_series = series.pop().unwrap_or_default().into_iter();
    let mut rows = Vec::new();
    for operation in ["alloc_bulk(10 000)", "free_bulk(10 000)"] {
        let (Some(ours_metric), Some(theirs_metric)) = (ours_series.next(), theirs_series.next())
        else {
            return Err("bulk run returned too few samples".into());
        };
        let name = operation.split('(').next().unwrap_or(operation);
        rows.push(
            Row::new(
                &format!("{key}-{name}"),
                &format!("{operation}, {where_label}"),
                Unit::TimePerOp,
            )
            .with_ours(ours_metric)
            .with_theirs(theirs_metric)
            .with_note(note.clone()),
        );
    }
    Ok(rows)
}

/// Rows: bulk calls on the benchmark directory.
pub fn bulk_disk(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let dir = ctx.disk_dir.clone();
    bulk_rows(ctx, dir, "bulk-disk", "durable")
}

/// Rows: bulk calls on tmpfs.
pub fn bulk_tmpfs(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let Some(dir) = ctx.mem_dir.clone() else {
        return Ok(vec![skipped("bulk-tmpfs", "alloc_bulk / free_bulk, tmpfs")]);
    };
    bulk_rows(ctx, dir, "bulk-tmpfs", "tmpfs (CPU cost)")
}

/// Rows: bulk calls on `SimStorage` (this crate alone; 0.2.0 has no storage abstraction).
pub fn bulk_sim(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let mut ours = |_: &mut Ctx| -> BenchResult<Vec<crate::measure::Sample>> {
        let mut pager = Pager::<PAGE_SIZE_BYTES, SimStorage>::create_in(SimStorage::new())?;
        let syncs_before = pager.storage().sync_count();
        let probe = Probe::start();
        let ids = pager.alloc_bulk(BULK_PAGE_COUNT)?;
        let mut alloc_sample = probe.stop(1);
        let syncs_middle = pager.storage().sync_count();
        alloc_sample.barrier_count = Some(syncs_middle - syncs_before);
        let probe = Probe::start();
        pager.free_bulk(ids)?;
        let mut free_sample = probe.stop(1);
        free_sample.barrier_count = Some(pager.storage().sync_count() - syncs_middle);
        Ok(vec![alloc_sample, free_sample])
    };
    let repetitions = ctx.repetitions.max(5);
    let mut series = alternate_runs(ctx, repetitions, "bulk-sim", &mut [&mut ours])?;
    let mut ours_series = series.pop().unwrap_or_default().into_iter();
    let mut rows = Vec::new();
    for (name, operation) in [
        ("alloc_bulk", "alloc_bulk(10 000)"),
        ("free_bulk", "free_bulk(10 000)"),
    ] {
        let Some(metric) = ours_series.next() else {
            return Err("bulk-sim run returned too few samples".into());
        };
        rows.push(
            Row::new(
                &format!("bulk-sim-{name}"),
                &format!("{operation}, SimStorage (ours alone)"),
                Unit::TimePerOp,
            )
            .with_ours(metric)
            .with_note(
                "in-memory SimStorage: no system calls; includes its durability bookkeeping",
            ),
        );
    }
    Ok(rows)
}
