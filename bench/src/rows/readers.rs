//! (This crate alone.) Reader latency through `SharedPager::page` while 4 threads make durable
//! 4 KiB records (`alloc_with`), against the same reader with no writer (issue 16, item 3). The
//! group's barriers run with the pager lock released (SPEC.md §3.10), so a reader waits at most
//! for a group's staging or publishing, never for a device flush. Each run times every read
//! separately and reports its p50, p99 and maximum; the table gives the median of each over the
//! repetitions. The busy and the idle reader alternate run by run, with a third, the control:
//! the same reader while 4 threads make durable writes with no pager at all (each changes and
//! `msync`s a page of a file of its own), which shows what the machine's scheduling and I/O
//! completions alone cost the reader (on 2 cores, 6 threads compete).

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mappedpages::SharedPager;

use crate::measure::{BenchResult, MultiRun, Row, Sample, Unit, alternate_runs, quantile};
use crate::rows::durable::describe_dir;
use crate::rows::reference::PhysicalLimit;
use crate::rows::{Ctx, OursMode, create_ours, remove};

const WRITERS: usize = 4;

/// Who runs beside the reader.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Nobody.
    Idle,
    /// [`WRITERS`] threads making durable records through the same `SharedPager`.
    Writers,
    /// [`WRITERS`] threads making durable writes to files of their own (bare `msync`), never
    /// touching the pager: the control.
    Control,
}

impl Load {
    fn key(self) -> String {
        match self {
            Load::Idle => "0w".to_string(),
            Load::Writers => format!("{WRITERS}w"),
            Load::Control => format!("{WRITERS}msync"),
        }
    }

    fn label(self) -> String {
        match self {
            Load::Idle => "no other thread".to_string(),
            Load::Writers => format!("{WRITERS} writer threads (durable 4 KiB records)"),
            Load::Control => {
                format!("control: {WRITERS} threads msync-ing files of their own, not the pager")
            }
        }
    }
}
/// Pages the reader reads, in turn (allocated before the run).
const READ_PAGES: usize = 64;

/// One run: `read_count` reads of `page()`, each timed, with `writers` threads making durable
/// records meanwhile. Samples: p50, p99, max (one "operation" each).
fn run(
    ctx: &mut Ctx,
    dir: &Path,
    (mode, load): (OursMode, Load),
    read_count: usize,
) -> BenchResult<Vec<Sample>> {
    let path = ctx.fresh_path(dir, &format!("ours-readers-{}-{}", mode.name(), load.key()));
    let writers = if load == Load::Idle { 0 } else { WRITERS };
    let control_paths: Vec<_> = (0..writers)
        .map(|index| ctx.fresh_path(dir, &format!("ours-readers-control-{index}")))
        .collect();
    let shared = SharedPager::new(create_ours(&path, mode)?);
    let pages = shared.alloc_bulk(READ_PAGES)?;
    let stop = AtomicBool::new(false);
    let mut latencies_ns: Vec<f64> = Vec::with_capacity(read_count);
    std::thread::scope(|scope| -> BenchResult<()> {
        let workers: Vec<_> = control_paths
            .iter()
            .map(|control_path| {
                let (shared, stop) = (shared.clone(), &stop);
                scope.spawn(move || -> Result<(), String> {
                    let text = |e: Box<dyn std::error::Error>| e.to_string();
                    if load == Load::Control {
                        let mut limit = PhysicalLimit::create(control_path).map_err(text)?;
                        let mut index = 0;
                        while !stop.load(Ordering::Relaxed) {
                            limit.op(index).map_err(text)?;
                            index += 1;
                        }
                        return limit.finish().map_err(text);
                    }
                    let mut index = 0u8;
                    while !stop.load(Ordering::Relaxed) {
                        index = index.wrapping_add(1);
                        black_box(
                            shared
                                .alloc_with(move |page| page.as_bytes_mut().fill(index))
                                .map_err(|e| e.to_string())?,
                        );
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
    let loads = [Load::Idle, Load::Writers, Load::Control];
    let contenders: Vec<(OursMode, Load)> = OursMode::ALL
        .iter()
        .flat_map(|&mode| loads.map(move |load| (mode, load)))
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
    for (triple, triple_series) in contenders.chunks(3).zip(series.chunks(3)) {
        let idle = &triple_series[0];
        let mode = triple[0].0;
        for (metric, name) in ["p50", "p99", "max"].iter().enumerate() {
            let over_idle = |series: &[crate::measure::Series]| {
                series[metric].median(Unit::TimePerOp) / idle[metric].median(Unit::TimePerOp)
            };
            let (busy, control) = (over_idle(&triple_series[1]), over_idle(&triple_series[2]));
            for (&(_, load), metrics) in triple.iter().zip(triple_series) {
                let key = format!("reader-{name}-{}-{}", load.key(), mode.name());
                let label = format!(
                    "SharedPager::page {name}, {} [{}] (ours alone)",
                    load.label(),
                    mode.name()
                );
                let note = format!(
                    "{read_count} reads 50 µs apart, each timed; {name} over the idle reader's: \
                     {busy:.2}× with {WRITERS} writers, {control:.2}× with the control's \
                     {WRITERS} msync threads; {}",
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
