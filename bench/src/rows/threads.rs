//! (This crate alone.) Durable single `alloc` from 1, 2, 4, 8 and 16 threads through one
//! `SharedPager`, whose group commit acknowledges every operation queued while a commit runs with
//! the next commit. The value is wall time per operation (its inverse is the throughput); compare
//! the 1-thread row with `alloc ×1, durable`, which has no locking. The `shared-record` rows do the
//! same with a durable new 4 KiB record per operation (`SharedPager::alloc_with`: the record in
//! the group's barrier, issue 16).

use std::hint::black_box;
use std::path::Path;

use mappedpages::{GroupCommitStats, SharedPager};

use crate::measure::{BenchResult, Probe, Row, Sample, SingleRun, Unit, alternate};
use crate::rows::durable::describe_dir;
use crate::rows::{Ctx, OursMode, add_ours_stats, create_ours, remove};

const THREAD_COUNTS: [usize; 5] = [1, 2, 4, 8, 16];

/// One run: `op_count` allocations (with `records`, `alloc_with` of a 4 KiB record) split evenly
/// over `thread_count` threads.
fn run(
    ctx: &mut Ctx,
    dir: &Path,
    (mode, thread_count, records): (OursMode, usize, bool),
    op_count: usize,
    group_totals: &mut GroupCommitStats,
) -> BenchResult<Sample> {
    let path = ctx.fresh_path(dir, &format!("ours-shared-{}-{thread_count}", mode.name()));
    let shared = SharedPager::new(create_ours(&path, mode)?);
    let stats_before = shared.read().storage().stats();
    let groups_before = shared.stats();
    let per_thread = op_count / thread_count;
    let probe = Probe::start();
    std::thread::scope(|scope| -> BenchResult<()> {
        let workers: Vec<_> = (0..thread_count)
            .map(|_| {
                let shared = shared.clone();
                scope.spawn(move || -> Result<(), mappedpages::MappedPageError> {
                    for index in 0..per_thread {
                        if records {
                            black_box(shared.alloc_with(move |page| {
                                page.as_bytes_mut().fill(index as u8);
                            })?);
                        } else {
                            black_box(shared.alloc()?);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "an alloc thread panicked")??;
        }
        Ok(())
    })?;
    let mut sample = probe.stop((per_thread * thread_count) as u64);
    add_ours_stats(&mut sample, stats_before, shared.read().storage().stats());
    let groups_after = shared.stats();
    group_totals.commits += groups_after.commits - groups_before.commits;
    group_totals.operations += groups_after.operations - groups_before.operations;
    drop(shared);
    remove(&path)?;
    Ok(sample)
}

/// Rows: durable alloc through `SharedPager` with 1–16 threads, in both commit modes.
pub fn shared_alloc_threads(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    shared_threads(ctx, false)
}

/// Rows: a durable new 4 KiB record (`alloc_with`) through `SharedPager` with 1–16 threads, in
/// both commit modes.
pub fn shared_record_threads(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    shared_threads(ctx, true)
}

fn shared_threads(ctx: &mut Ctx, records: bool) -> BenchResult<Vec<Row>> {
    let (group, what) = if records {
        ("shared-record", "new 4 KiB record (alloc_with) ×1")
    } else {
        ("shared-alloc", "alloc ×1")
    };
    // Divisible by every thread count.
    let op_count = ctx.size(2_000, 320);
    let dir = ctx.disk_dir.clone();
    let contenders: Vec<(OursMode, usize)> = OursMode::ALL
        .iter()
        .flat_map(|&mode| THREAD_COUNTS.iter().map(move |&threads| (mode, threads)))
        .collect();
    let mut group_totals = vec![GroupCommitStats::default(); contenders.len()];
    let mut runs: Vec<Box<SingleRun<'_, Ctx>>> = contenders
        .iter()
        .zip(group_totals.iter_mut())
        .map(|(&(mode, thread_count), totals)| {
            let dir = dir.clone();
            Box::new(move |ctx: &mut Ctx| {
                run(ctx, &dir, (mode, thread_count, records), op_count, totals)
            }) as Box<SingleRun<'_, Ctx>>
        })
        .collect();
    let mut borrowed: Vec<&mut SingleRun<'_, Ctx>> =
        runs.iter_mut().map(|run| &mut **run).collect();
    let repetitions = ctx.repetitions;
    let series = alternate(ctx, repetitions, group, &mut borrowed)?;
    drop(borrowed);
    drop(runs);
    let rows = contenders
        .iter()
        .zip(series)
        .zip(&group_totals)
        .map(|((&(mode, thread_count), series), totals)| {
            let group_size = totals.operations as f64 / totals.commits.max(1) as f64;
            let ops_per_second = 1e9 / series.median(Unit::TimePerOp);
            Row::new(
                &format!("{group}-{thread_count}t-{}", mode.name()),
                &format!(
                    "{what}, durable, SharedPager, {thread_count} thread{} [{}] (ours alone)",
                    if thread_count == 1 { "" } else { "s" },
                    mode.name()
                ),
                Unit::TimePerOp,
            )
            .with_note(format!(
                "wall time per op over {op_count} operations split across the threads = \
                 {ops_per_second:.0} ops/s; mean group size {group_size:.1} ops per commit; {}",
                describe_dir(&dir)
            ))
            .with_ours(series)
        })
        .collect();
    Ok(rows)
}
