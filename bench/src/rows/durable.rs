//! Durable single-page operations: each call is one commit that must reach the disk.
//!
//! This crate runs in both commit modes (`flip`: two barriers, the default; `one-sync`: one
//! barrier); 0.2.0 has one mode. Each repetition creates a fresh file per contender, all in the
//! same directory, and runs the N operations of the contenders interleaved one by one
//! (`interleave_ops`), so that disk contention lands on all of them alike. The `alloc` row also
//! interleaves the reference contenders (physical limit, redb; see `reference.rs`).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use crate::measure::{
    BenchResult, Row, Sample, Series, SplitMix64, Unit, alternate_runs, interleave_ops,
};
use crate::rows::reference::{PhysicalLimit, RedbInsert};
use crate::rows::{Ctx, Ours, OursMode, Theirs, add_ours_stats, create_ours, remove};

/// One durable workload, written once for each crate: a set-up on a fresh pager (not timed)
/// that returns the state the operations need, and operation `i` (timed).
struct Workload<SO, ST> {
    setup_ours: fn(&mut Ours, usize) -> BenchResult<SO>,
    op_ours: fn(&mut Ours, &mut SO, usize) -> BenchResult<()>,
    setup_theirs: fn(&mut Theirs, usize) -> BenchResult<ST>,
    op_theirs: fn(&mut Theirs, &mut ST, usize) -> BenchResult<()>,
}

/// Runs `workload` on ours-flip, ours-one-sync and 0.2.0, `op_count` operations each, interleaved
/// in batches of `batch_len`, and builds one row per mode of ours (each compared with the same
/// series of 0.2.0). With `with_references`, the physical limit and redb run in the same
/// interleaving and get a row each.
#[allow(clippy::too_many_arguments)]
fn compare_in_both_modes<SO, ST>(
    ctx: &mut Ctx,
    dir: &Path,
    key: &str,
    label: &str,
    note: &str,
    op_count: usize,
    batch_len: usize,
    with_references: bool,
    workload: &Workload<SO, ST>,
) -> BenchResult<Vec<Row>> {
    let mut round = |ctx: &mut Ctx| -> BenchResult<Vec<Sample>> {
        let flip_path = ctx.fresh_path(dir, &format!("ours-flip-{key}"));
        let single_path = ctx.fresh_path(dir, &format!("ours-one-sync-{key}"));
        let theirs_path = ctx.fresh_path(dir, &format!("theirs-{key}"));
        let mut flip = create_ours(&flip_path, OursMode::Flip)?;
        let mut single = create_ours(&single_path, OursMode::SingleSync)?;
        let mut theirs = Theirs::create(&theirs_path)?;
        let mut flip_state = (workload.setup_ours)(&mut flip, op_count)?;
        let mut single_state = (workload.setup_ours)(&mut single, op_count)?;
        let mut theirs_state = (workload.setup_theirs)(&mut theirs, op_count)?;
        let unreserved_path = ctx.fresh_path(dir, &format!("ours-one-sync-unreserved-{key}"));
        let mut references = if with_references {
            let limit = PhysicalLimit::create(&ctx.fresh_path(dir, "ref-msync"))?;
            let redb = RedbInsert::create(&ctx.fresh_path(dir, "ref-redb"))?;
            // The cost of space reservation (SPEC.md §3.3.1): the same pager without it.
            let mut unreserved = create_ours(&unreserved_path, OursMode::SingleSync)?;
            unreserved.set_space_reservation(false);
            let unreserved_state = (workload.setup_ours)(&mut unreserved, op_count)?;
            Some((limit, redb, unreserved, unreserved_state))
        } else {
            None
        };
        let flip_before = flip.storage().stats();
        let single_before = single.storage().stats();
        let mut flip_op = |index| (workload.op_ours)(&mut flip, &mut flip_state, index);
        let mut single_op = |index| (workload.op_ours)(&mut single, &mut single_state, index);
        let mut theirs_op = |index| (workload.op_theirs)(&mut theirs, &mut theirs_state, index);
        let mut samples = match references.as_mut() {
            Some((limit, redb, unreserved, unreserved_state)) => interleave_ops(
                op_count,
                batch_len,
                &mut [
                    &mut flip_op,
                    &mut single_op,
                    &mut theirs_op,
                    &mut |index| limit.op(index),
                    &mut |index| redb.op(index),
                    &mut |index| (workload.op_ours)(unreserved, unreserved_state, index),
                ],
            )?,
            None => interleave_ops(
                op_count,
                batch_len,
                &mut [&mut flip_op, &mut single_op, &mut theirs_op],
            )?,
        };
        add_ours_stats(&mut samples[0], flip_before, flip.storage().stats());
        add_ours_stats(&mut samples[1], single_before, single.storage().stats());
        drop((flip, single, theirs));
        for path in [&flip_path, &single_path, &theirs_path] {
            remove(path)?;
        }
        if let Some((limit, redb, unreserved, _)) = references {
            limit.finish()?;
            redb.finish()?;
            drop(unreserved);
            remove(&unreserved_path)?;
        }
        Ok(samples)
    };
    let repetitions = ctx.repetitions;
    let mut series = alternate_runs(ctx, repetitions, key, &mut [&mut round])?
        .pop()
        .unwrap_or_default();
    let mut reference_rows = Vec::new();
    if with_references {
        let unreserved_series = series.pop().unwrap_or_default();
        let redb_series = series.pop().unwrap_or_default();
        let limit_series = series.pop().unwrap_or_default();
        reference_rows.push(
            Row::new("ref-msync", PhysicalLimit::label(), Unit::TimePerOp)
                .with_ours(limit_series)
                .with_note(format!(
                    "{}; {}",
                    PhysicalLimit::note(op_count),
                    describe_dir(dir)
                )),
        );
        reference_rows.push(
            Row::new("ref-redb", &RedbInsert::label(), Unit::TimePerOp)
                .with_ours(redb_series)
                .with_note(format!(
                    "{}; {}",
                    RedbInsert::note(op_count),
                    describe_dir(dir)
                )),
        );
        reference_rows.push(
            Row::new(
                &format!("{key}-one-sync-unreserved"),
                &format!("{label} [one-sync, space reservation off]"),
                Unit::TimePerOp,
            )
            .with_ours(unreserved_series)
            .with_note(format!(
                "the one-sync row's workload on a pager with set_space_reservation(false), \
                 interleaved op by op with it: the difference is what reservation costs; {}",
                describe_dir(dir)
            )),
        );
    }
    if series.len() != 3 {
        return Err(format!("{key}: expected three contenders").into());
    }
    let theirs_series: Series = series.pop().unwrap_or_default();
    let mut rows: Vec<Row> = OursMode::ALL
        .iter()
        .zip(series)
        .map(|(mode, ours_series)| {
            Row::new(
                &format!("{key}-{}", mode.name()),
                &format!("{label} [{}]", mode.name()),
                Unit::TimePerOp,
            )
            .with_ours(ours_series)
            .with_theirs(theirs_series.clone())
            .with_note(note)
        })
        .collect();
    rows.extend(reference_rows);
    Ok(rows)
}

fn no_setup<P>(_: &mut P, _: usize) -> BenchResult<()> {
    Ok(())
}

/// Durable single `alloc`, N times on a fresh file (growth included, as a user would see it).
fn alloc_rows(ctx: &mut Ctx, dir: PathBuf, key: &str, label: &str) -> BenchResult<Vec<Row>> {
    let op_count = ctx.size(2_000, 200);
    let on_tmpfs = key.contains("tmpfs");
    let batch_len = if on_tmpfs { 100 } else { 1 };
    let note = format!(
        "N = {op_count} calls on a fresh file each repetition, growth included; contenders \
         interleaved in batches of {batch_len}; {}",
        describe_dir(&dir)
    );
    let workload = Workload {
        setup_ours: no_setup::<Ours>,
        op_ours: |pager, _, _| {
            black_box(pager.alloc()?);
            Ok(())
        },
        setup_theirs: no_setup::<Theirs>,
        op_theirs: |pager, _, _| {
            black_box(pager.alloc()?);
            Ok(())
        },
    };
    // The reference rows run alongside the disk row only (on tmpfs they would measure nothing).
    let with_references = !on_tmpfs;
    compare_in_both_modes(
        ctx,
        &dir,
        key,
        label,
        &note,
        op_count,
        batch_len,
        with_references,
        &workload,
    )
}

/// Row: durable single `alloc` on the benchmark directory (a disk).
pub fn alloc_single(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let dir = ctx.disk_dir.clone();
    alloc_rows(ctx, dir, "alloc-durable", "alloc ×1, durable")
}

/// Row: durable single `alloc` on tmpfs, where `msync` costs next to nothing and the CPU cost of
/// a commit shows.
pub fn alloc_single_tmpfs(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let Some(dir) = ctx.mem_dir.clone() else {
        return Ok(vec![skipped("alloc-tmpfs", "alloc ×1, tmpfs")]);
    };
    alloc_rows(ctx, dir, "alloc-tmpfs", "alloc ×1, tmpfs (CPU cost)")
}

/// Row: durable single `free` of N pages allocated in one bulk call, in a shuffled order (the
/// same order for both crates).
pub fn free_single(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let op_count = ctx.size(2_000, 200);
    let dir = ctx.disk_dir.clone();
    let note = format!(
        "N = {op_count} pages from one alloc_bulk, freed one by one in a fixed shuffled order; \
         contenders interleaved op by op; {}",
        describe_dir(&dir)
    );
    let workload = Workload {
        setup_ours: |pager: &mut Ours, op_count| {
            let mut ids = pager.alloc_bulk(op_count)?;
            SplitMix64::new(7).shuffle(&mut ids);
            Ok(ids)
        },
        op_ours: |pager, ids, index| Ok(pager.free(ids[index])?),
        setup_theirs: |pager: &mut Theirs, op_count| {
            let mut ids = pager.alloc_bulk(op_count)?;
            SplitMix64::new(7).shuffle(&mut ids);
            Ok(ids)
        },
        op_theirs: |pager, ids, index| Ok(pager.free(ids[index])?),
    };
    compare_in_both_modes(
        ctx,
        &dir,
        "free-durable",
        "free ×1, durable",
        &note,
        op_count,
        1,
        false,
        &workload,
    )
}

/// Row: `alloc_protected`, N times on a fresh file.
pub fn alloc_protected(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let op_count = ctx.size(1_000, 100);
    let dir = ctx.disk_dir.clone();
    let note = format!(
        "N = {op_count} calls on a fresh file each repetition; contenders interleaved op by op; {}",
        describe_dir(&dir)
    );
    let workload = Workload {
        setup_ours: no_setup::<Ours>,
        op_ours: |pager, _, _| {
            black_box(pager.alloc_protected()?);
            Ok(())
        },
        setup_theirs: no_setup::<Theirs>,
        op_theirs: |pager, _, _| {
            black_box(pager.alloc_protected()?);
            Ok(())
        },
    };
    compare_in_both_modes(
        ctx,
        &dir,
        "alloc-protected",
        "alloc_protected ×1",
        &note,
        op_count,
        1,
        false,
        &workload,
    )
}

/// Row: protected commit (`get_mut`, change 8 bytes, `commit`), N times on one protected page.
pub fn protected_commit(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let op_count = ctx.size(1_000, 100);
    let dir = ctx.disk_dir.clone();
    let note = format!(
        "N = {op_count} commits of one protected page (get_mut, write 8 bytes, commit); \
         contenders interleaved op by op; {}",
        describe_dir(&dir)
    );
    let workload = Workload {
        setup_ours: |pager: &mut Ours, _| Ok(pager.alloc_protected()?),
        op_ours: |pager, id, index| {
            let mut writer = id.get_mut(pager)?;
            writer.page_mut().as_bytes_mut()[..8].copy_from_slice(&(index as u64).to_le_bytes());
            Ok(writer.commit()?)
        },
        setup_theirs: |pager: &mut Theirs, _| Ok(pager.alloc_protected()?),
        op_theirs: |pager, id, index| {
            let mut writer = id.get_mut(pager)?;
            writer.page_mut().as_bytes_mut()[..8].copy_from_slice(&(index as u64).to_le_bytes());
            Ok(writer.commit()?)
        },
    };
    compare_in_both_modes(
        ctx,
        &dir,
        "protected-commit",
        "protected commit ×1",
        &note,
        op_count,
        1,
        false,
        &workload,
    )
}

/// A row that could not run here, with the reason in its note.
pub fn skipped(key: &str, label: &str) -> Row {
    Row::new(key, label, Unit::TimePerOp)
        .with_note("skipped: no memory-backed directory (pass --mem-dir, e.g. /dev/shm)")
}

/// "on ext4" style description of a directory's file system, for notes.
pub fn describe_dir(dir: &Path) -> String {
    format!("on {}", crate::fs_kind(dir))
}
