//! Samples, repetitions and the statistics of one table row.

use std::time::{Duration, Instant};

use crate::syscount::SyscallCounts;

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// What one timed run of one contender measured.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Wall time of the timed region only (set-up and tear-down excluded).
    pub elapsed: Duration,
    /// Operations in the timed region.
    pub op_count: u64,
    /// Bytes copied in the timed region (throughput rows), else 0.
    pub bytes_moved: u64,
    /// `msync` + `fsync` + `fdatasync` system calls in the timed region (process-wide counter):
    /// each one a device cache flush on the bench's file systems.
    pub syscall_count: u64,
    /// `sync_file_range` system calls in the timed region (range writes without a flush).
    pub range_write_count: u64,
    /// Durability barriers reported by the crate itself (`MmapStorage::stats().barriers`,
    /// `SimStorage::sync_count()`); `None` where the crate cannot report them.
    pub barrier_count: Option<u64>,
    /// Bytes covered by the syncs, where the crate reports them (`MmapStorage` stats).
    pub bytes_synced: Option<u64>,
}

impl Sample {
    pub fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.op_count.max(1) as f64
    }

    pub fn bytes_per_second(&self) -> f64 {
        self.bytes_moved as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }

    /// Adds another timed region's figures to this one (for rows that time a piece of each loop).
    pub fn accumulate(&mut self, other: &Sample) {
        let was_empty = self.op_count == 0 && self.elapsed.is_zero();
        self.elapsed += other.elapsed;
        self.op_count += other.op_count;
        self.bytes_moved += other.bytes_moved;
        self.syscall_count += other.syscall_count;
        self.range_write_count += other.range_write_count;
        self.barrier_count = match (self.barrier_count, other.barrier_count) {
            (Some(a), Some(b)) => Some(a + b),
            (None, b) if was_empty => b,
            _ => None,
        };
        self.bytes_synced = match (self.bytes_synced, other.bytes_synced) {
            (Some(a), Some(b)) => Some(a + b),
            (None, b) if was_empty => b,
            _ => None,
        };
    }
}

/// Starts the clock and the syscall counter around a timed region.
pub struct Probe {
    started: Instant,
    syscalls_before: SyscallCounts,
}

impl Probe {
    pub fn start() -> Probe {
        let syscalls_before = SyscallCounts::now();
        Probe {
            started: Instant::now(),
            syscalls_before,
        }
    }

    /// Stops the clock; the sample still needs `barrier_count` / `bytes_synced` if known.
    pub fn stop(self, op_count: u64) -> Sample {
        let elapsed = self.started.elapsed();
        let counted = SyscallCounts::now().since(self.syscalls_before);
        Sample {
            elapsed,
            op_count,
            syscall_count: counted.total(),
            range_write_count: counted.sync_file_range_calls,
            ..Sample::default()
        }
    }
}

/// How a row's value is expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Time per operation; lower is better.
    TimePerOp,
    /// Bytes per second; higher is better.
    Throughput,
}

/// The repetitions of one contender in one row.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub samples: Vec<Sample>,
}

impl Series {
    pub fn push(&mut self, sample: Sample) {
        self.samples.push(sample);
    }

    /// Values in the row's unit (ns/op or bytes/s), one per sample.
    pub fn values(&self, unit: Unit) -> Vec<f64> {
        self.samples
            .iter()
            .map(|s| match unit {
                Unit::TimePerOp => s.ns_per_op(),
                Unit::Throughput => s.bytes_per_second(),
            })
            .collect()
    }

    pub fn median(&self, unit: Unit) -> f64 {
        median(&self.values(unit))
    }

    /// Interquartile range (Q3 − Q1) over the median, in percent: how far apart the middle half
    /// of the repetitions lie. Robust against the odd stalled repetition of a shared disk, which
    /// the median ignores too; min and max are in the JSON output.
    pub fn spread_percent(&self, unit: Unit) -> f64 {
        let values = self.values(unit);
        let middle = median(&values);
        if values.is_empty() || middle == 0.0 {
            return 0.0;
        }
        (quantile(&values, 0.75) - quantile(&values, 0.25)) / middle * 100.0
    }

    /// Smallest and largest value.
    pub fn min_max(&self, unit: Unit) -> (f64, f64) {
        let values = self.values(unit);
        let lowest = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let highest = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        (lowest, highest)
    }

    fn total_ops(&self) -> u64 {
        self.samples.iter().map(|s| s.op_count).sum::<u64>().max(1)
    }

    /// Durability syscalls per operation over all samples.
    pub fn syscalls_per_op(&self) -> f64 {
        self.samples.iter().map(|s| s.syscall_count).sum::<u64>() as f64 / self.total_ops() as f64
    }

    /// `sync_file_range` calls per operation over all samples.
    pub fn range_writes_per_op(&self) -> f64 {
        self.samples
            .iter()
            .map(|s| s.range_write_count)
            .sum::<u64>() as f64
            / self.total_ops() as f64
    }

    /// Barriers per operation over all samples, if every sample knows them.
    pub fn barriers_per_op(&self) -> Option<f64> {
        let mut total = 0;
        for sample in &self.samples {
            total += sample.barrier_count?;
        }
        Some(total as f64 / self.total_ops() as f64)
    }

    /// Bytes synced per operation over all samples, if every sample knows them.
    pub fn bytes_synced_per_op(&self) -> Option<f64> {
        let mut total = 0;
        for sample in &self.samples {
            total += sample.bytes_synced?;
        }
        Some(total as f64 / self.total_ops() as f64)
    }
}

pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

/// The `fraction` quantile with linear interpolation between neighbours (NaN if empty).
pub fn quantile(values: &[f64], fraction: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = fraction * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let weight = position - below as f64;
    sorted[below] * (1.0 - weight) + sorted[above] * weight
}

/// One line of the table: this crate (`ours`) and, where comparable, 0.2.0 (`theirs`).
#[derive(Clone, Debug)]
pub struct Row {
    /// Short identifier (used by `--filter` and the JSON output).
    pub key: String,
    /// What the row measures, as printed.
    pub label: String,
    pub unit: Unit,
    pub ours: Option<Series>,
    pub theirs: Option<Series>,
    /// Anything the reader needs to interpret the numbers (file system, page size, bytes synced).
    pub note: String,
}

impl Row {
    pub fn new(key: &str, label: &str, unit: Unit) -> Row {
        Row {
            key: key.to_string(),
            label: label.to_string(),
            unit,
            ours: None,
            theirs: None,
            note: String::new(),
        }
    }

    pub fn with_ours(mut self, series: Series) -> Row {
        self.ours = Some(series);
        self
    }

    pub fn with_theirs(mut self, series: Series) -> Row {
        self.theirs = Some(series);
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// Ours / theirs as a ratio of *times*: below 1 means this crate is faster. For throughput
    /// rows that is theirs' throughput over ours.
    pub fn time_ratio(&self) -> Option<f64> {
        let ours = self.ours.as_ref()?.median(self.unit);
        let theirs = self.theirs.as_ref()?.median(self.unit);
        Some(match self.unit {
            Unit::TimePerOp => ours / theirs,
            Unit::Throughput => theirs / ours,
        })
    }
}

/// A contender that measures several things per run (one sample per metric, same count always).
pub type MultiRun<'a, C> = dyn FnMut(&mut C) -> BenchResult<Vec<Sample>> + 'a;
/// A contender that measures one thing per run.
pub type SingleRun<'a, C> = dyn FnMut(&mut C) -> BenchResult<Sample> + 'a;

/// Runs `contender_count` contenders in turn, `repetitions` times, rotating the order (A B C,
/// B C A, C A B, …), so that drift in the machine (page cache, writeback, frequency) and any
/// position effect (cache state or writeback left by the previous contender) hit every contender
/// alike. One more round comes first and is discarded (warm-up: code and page cache, and the
/// disk's first flushes, which on a shared virtual disk can take 10–50× longer).
/// `run(index, ctx)` runs contender `index` once. Indexed `[contender][metric]`.
fn rotate<C>(
    ctx: &mut C,
    repetitions: usize,
    label: &str,
    contender_count: usize,
    mut run: impl FnMut(usize, &mut C) -> BenchResult<Vec<Sample>>,
) -> BenchResult<Vec<Vec<Series>>> {
    let mut series: Vec<Vec<Series>> = vec![Vec::new(); contender_count];
    for round in 0..=repetitions {
        let warm_up = round == 0;
        if warm_up {
            eprint!("\r  {label}: warm-up   ");
        } else {
            eprint!("\r  {label}: repetition {round}/{repetitions}   ");
        }
        for position in 0..contender_count {
            let index = (round + position) % contender_count;
            let samples = run(index, ctx)?;
            if warm_up {
                continue;
            }
            if series[index].is_empty() {
                series[index] = vec![Series::default(); samples.len()];
            }
            for (metric, sample) in samples.into_iter().enumerate() {
                series[index][metric].push(sample);
            }
        }
    }
    eprintln!();
    Ok(series)
}

/// Alternates contenders that each measure several things per run (for example `alloc_bulk`
/// and then `free_bulk` on the same file). Indexed `[contender][metric]`.
pub fn alternate_runs<C>(
    ctx: &mut C,
    repetitions: usize,
    label: &str,
    contenders: &mut [&mut MultiRun<'_, C>],
) -> BenchResult<Vec<Vec<Series>>> {
    let contender_count = contenders.len();
    rotate(ctx, repetitions, label, contender_count, |index, ctx| {
        (contenders[index])(ctx)
    })
}

/// Alternates contenders that each measure one thing per run. Indexed `[contender]`.
pub fn alternate<C>(
    ctx: &mut C,
    repetitions: usize,
    label: &str,
    contenders: &mut [&mut SingleRun<'_, C>],
) -> BenchResult<Vec<Series>> {
    let contender_count = contenders.len();
    let series = rotate(ctx, repetitions, label, contender_count, |index, ctx| {
        Ok(vec![(contenders[index])(ctx)?])
    })?;
    Ok(series
        .into_iter()
        .map(|mut metrics| metrics.pop().unwrap_or_default())
        .collect())
}

/// Runs `op_count` operations of every contender, interleaved in batches of `batch_len`
/// (A×b B×b C×b A×b …, rotating who goes first each batch), timing every batch separately.
/// Returns one sample per contender: the sum of its batches' times and syscalls. Interleaving at
/// this grain means a burst of disk contention (a shared machine, writeback) lands on every
/// contender alike instead of on whichever one happened to be running. `ops[k](i)` performs
/// operation `i` of contender `k`.
pub fn interleave_ops(
    op_count: usize,
    batch_len: usize,
    ops: &mut [&mut dyn FnMut(usize) -> BenchResult<()>],
) -> BenchResult<Vec<Sample>> {
    let contender_count = ops.len();
    let batch_len = batch_len.max(1);
    let mut samples = vec![Sample::default(); contender_count];
    let mut next_op = 0;
    let mut batch_index = 0;
    while next_op < op_count {
        let batch_end = (next_op + batch_len).min(op_count);
        for position in 0..contender_count {
            let index = (batch_index + position) % contender_count;
            let probe = Probe::start();
            for op_index in next_op..batch_end {
                (ops[index])(op_index)?;
            }
            samples[index].accumulate(&probe.stop((batch_end - next_op) as u64));
        }
        next_op = batch_end;
        batch_index += 1;
    }
    Ok(samples)
}

/// A small deterministic generator (splitmix64), so both crates see the same "random" order.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            let other = self.below(index as u64 + 1) as usize;
            items.swap(index, other);
        }
    }
}
