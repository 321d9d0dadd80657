//! (This crate alone.) Reader latency through `SharedPager::page` while 4 threads make durable
//! 4 KiB records (`alloc_with`), against the same reader with no writer (issue 16, item 3). The
//! group's barriers run with the pager lock released (SPEC.md §3.10), so a reader waits at most
//! for a group's staging or publishing, never for a device flush. Each run times every read
//! separately and reports its p50, p99 and maximum; the table gives the median of each over the
//! repetitions. The busy and the idle reader alternate run by run.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mappedpages::SharedPager;

use crate::measure::{BenchResult, MultiRun, Row, Sample, Unit, alternate_runs, quantile};
use crate::rows::durable::describe_dir;
use crate::rows::{Ctx, OursMode, create_ours, remove};

const WRITERS: usize = 4;
/// Pages the reader reads, in turn (allocated before the run).
const READ_PAGES: usize = 64;

/// One run: `read_count` reads of `page()`, each timed, with `writers` threads making durable
/// records meanwhile. Samples: p50, p99, max (one "operation" each).
fn run(
    ctx: &mut Ctx,
    dir: &Path,
    (mode, writers): (OursMode, usize),
    read_count: usize,
) -> BenchResult<Vec<Sample>> {
    let path = ctx.fresh_path(dir, &format!("ours-readers-{}-{writers}", mode.name()));
    let shared = SharedPager::new(create_ours(&path, mode)?);
    let pages = shared.alloc_bulk(READ_PAGES)?;
    let stop = AtomicBool::new(false);
    let mut latencies_ns: Vec<f64> = Vec::with_capacity(read_count);
    std::thread::scope(|scope| -> BenchResult<()> {
        let workers: Vec<_> = (0..writers)
            .map(|_| {
                let (shared, stop) = (shared.clone(), &stop);
                scope.spawn(move || -> Result<(), mappedpages::MappedPageError> {
                    let mut index = 0u8;
                    while !stop.load(Ordering::Relaxed) {
                        index = index.wrapping_add(1);
                        black_box(shared.alloc_with(move |page| page.as_bytes_mut().fill(index))?);
                    }
                    Ok(())
                })
            })
            .collect();
        // Let the writers reach their steady state before the first timed read.
        std::thread::sleep(Duration::from_millis(if writers > 0 { 20 } else { 0 }));
        for read in 0..read_count {
            let id = pages[read % READ_PAGES];
            let start = Instant::now();
            let page = shared.page(id)?;
            black_box(page.as_bytes()[0]);
            drop(page);
            latencies_ns.push(start.elapsed().as_nanos() as f64);
            // A reader that looks now and then, not one that saturates the lock.
            std::thread::sleep(Duration::from_micros(50));
        }
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.join().map_err(|_| "a writer thread panicked")??;
        }
        Ok(())
    })?;
    drop(shared);
    remove(&path)?;
    latencies_ns.sort_by(f64::total_cmp);
    let max = latencies_ns.last().copied().unwrap_or(0.0);
    Ok([0.5, 0.99]
        .iter()
        .map(|&fraction| quantile(&latencies_ns, fraction))
        .chain([max])
        .map(|ns| Sample {
            elapsed: Duration::from_nanos(ns as u64),
            op_count: 1,
            ..Sample::default()
        })
        .collect())
}

/// Rows: p50, p99 and max of `SharedPager::page` with 0 and 4 writers, both commit modes.
pub fn reader_latency(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let read_count = ctx.size(4_000, 400);
    let dir = ctx.disk_dir.clone();
    let contenders: Vec<(OursMode, usize)> = OursMode::ALL
        .iter()
        .flat_map(|&mode| [0, WRITERS].map(move |writers| (mode, writers)))
        .collect();
    let mut runs: Vec<Box<MultiRun<'_, Ctx>>> = contenders
        .iter()
        .map(|&contender| {
            let dir = dir.clone();
            Box::new(move |ctx: &mut Ctx| run(ctx, &dir, contender, read_count))
                as Box<MultiRun<'_, Ctx>>
        })
        .collect();
    let mut borrowed: Vec<&mut MultiRun<'_, Ctx>> = runs.iter_mut().map(|run| &mut **run).collect();
    let repetitions = ctx.repetitions;
    let series = alternate_runs(ctx, repetitions, "reader-latency", &mut borrowed)?;
    drop(borrowed);
    drop(runs);
    let mut rows = Vec::new();
    for (pair, pair_series) in contenders.chunks(2).zip(series.chunks(2)) {
        let (idle, busy) = (&pair_series[0], &pair_series[1]);
        let mode = pair[0].0;
        for (metric, name) in ["p50", "p99", "max"].iter().enumerate() {
            let ratio = busy[metric].median(Unit::TimePerOp) / idle[metric].median(Unit::TimePerOp);
            for (&(_, writers), metrics) in pair.iter().zip([idle, busy]) {
                let key = format!("reader-{name}-{writers}w-{}", mode.name());
                let label = format!(
                    "SharedPager::page {name}, {writers} writer threads (durable 4 KiB records) [{}] (ours alone)",
                    mode.name()
                );
                let note = format!(
                    "{read_count} reads 50 µs apart, each timed; {name} with {WRITERS} writers / \
                     with none = {ratio:.2}×; {}",
                    describe_dir(&dir)
                );
                rows.push(
                    Row::new(&key, &label, Unit::TimePerOp)
                        .with_note(note)
                        .with_ours(metrics[metric].clone()),
                );
            }
        }
    }
    Ok(rows)
}
