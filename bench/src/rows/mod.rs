//! The rows of the table: one function per workload, registered in [`REGISTRY`].
//!
//! To add a row: write `fn my_row(ctx: &mut Ctx) -> BenchResult<Vec<Row>>` in the
//! module that fits (or a new one), time each contender with [`crate::measure::Probe`], let
//! [`crate::measure::alternate`] interleave the contenders, and add one [`RowSpec`] line below.

mod access;
mod alloc_scale;
pub mod barrier;
mod bulk;
mod durable;
mod iterate;
mod open;
mod open_scale;
mod readers;
pub mod record;
mod reference;
mod scale;
mod threads;

use std::path::{Path, PathBuf};

use mappedpages::{CommitMode, SyncStats};

use crate::measure::{BenchResult, Row, Sample};

/// This crate, the one under test.
pub type Ours = mappedpages::Pager<PAGE_SIZE_BYTES>;
/// The published 0.2.0, the earlier implementation of the same API.
pub type Theirs = mappedpages_v02::Pager<PAGE_SIZE_BYTES>;

/// Page size of every comparison row (the earlier crate's capacity at this size: 16,381 pages).
pub const PAGE_SIZE_BYTES: usize = 4096;

/// Everything a row needs: where to put files, how many repetitions, how big.
pub struct Ctx {
    /// Directory for both crates' files (a disk-backed file system unless `--dir` says otherwise).
    pub disk_dir: PathBuf,
    /// A memory-backed directory (tmpfs) for the CPU-cost rows, if one is available.
    pub mem_dir: Option<PathBuf>,
    /// Repetitions per contender per row.
    pub repetitions: usize,
    /// `--quick`: smaller workloads, fewer repetitions.
    pub quick: bool,
    next_file_serial: u64,
}

impl Ctx {
    pub fn new(
        disk_dir: PathBuf,
        mem_dir: Option<PathBuf>,
        repetitions: usize,
        quick: bool,
    ) -> Ctx {
        Ctx {
            disk_dir,
            mem_dir,
            repetitions,
            quick,
            next_file_serial: 0,
        }
    }

    /// A fresh, not yet existing file path in `dir` (the caller removes it with [`remove`]).
    pub fn fresh_path(&mut self, dir: &Path, stem: &str) -> PathBuf {
        self.next_file_serial += 1;
        dir.join(format!("{stem}-{}.bin", self.next_file_serial))
    }

    /// `full` in a normal run, `quick` under `--quick`.
    pub fn size(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

/// Removes a benchmark file and anything a crate left next to it; a missing file is fine.
pub fn remove(path: &Path) -> BenchResult<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(format!("removing {}: {error}", path.display()).into()),
    }
}

/// The commit modes of this crate that the durable rows run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OursMode {
    /// `CommitMode::Flip`, the default: two barriers per commit.
    Flip,
    /// `CommitMode::SingleSync`: one barrier per commit.
    SingleSync,
}

impl OursMode {
    pub const ALL: [OursMode; 2] = [OursMode::Flip, OursMode::SingleSync];

    pub fn commit_mode(self) -> CommitMode {
        match self {
            OursMode::Flip => CommitMode::Flip,
            OursMode::SingleSync => CommitMode::SingleSync,
        }
    }

    /// Short name used in row keys and labels.
    pub fn name(self) -> &'static str {
        match self {
            OursMode::Flip => "flip",
            OursMode::SingleSync => "one-sync",
        }
    }
}

/// Creates this crate's pager at `path` in `mode`.
pub fn create_ours(path: &Path, mode: OursMode) -> BenchResult<Ours> {
    let mut pager = Ours::create(path)?;
    pager.set_commit_mode(mode.commit_mode());
    Ok(pager)
}

/// Fills in the barrier and byte counters of this crate's storage over a timed region, and
/// checks the interposed syscall counters against the crate's own counts of `msync` and
/// `sync_file_range` calls (range writes and range write starts; they must agree, a mismatch
/// means the counting is wrong and is reported on stderr).
pub fn add_ours_stats(sample: &mut Sample, before: SyncStats, after: SyncStats) {
    sample.barrier_count = Some(after.barriers - before.barriers);
    sample.bytes_synced = Some(after.bytes_synced - before.bytes_synced);
    let msync_calls = after.msync_calls - before.msync_calls;
    let range_writes = (after.range_writes + after.range_write_starts)
        - (before.range_writes + before.range_write_starts);
    if sample.syscall_count != 0 && sample.syscall_count != msync_calls {
        eprintln!(
            "warning: counted {} sync syscalls where the crate reports {msync_calls} msync calls",
            sample.syscall_count
        );
    }
    if sample.syscall_count != 0 && sample.range_write_count != range_writes {
        eprintln!(
            "warning: counted {} sync_file_range calls where the crate reports {range_writes}",
            sample.range_write_count
        );
    }
}

/// One registered row function.
pub struct RowSpec {
    /// Matched by `--filter` (substring).
    pub key: &'static str,
    pub run: fn(&mut Ctx) -> BenchResult<Vec<Row>>,
}

/// Every row, in table order.
pub const REGISTRY: &[RowSpec] = &[
    // Also the reference rows (physical limit, redb): they run interleaved with these.
    RowSpec {
        key: "alloc-durable",
        run: durable::alloc_single,
    },
    RowSpec {
        key: "free-durable",
        run: durable::free_single,
    },
    RowSpec {
        key: "alloc-protected",
        run: durable::alloc_protected,
    },
    RowSpec {
        key: "protected-commit",
        run: durable::protected_commit,
    },
    RowSpec {
        key: "barrier",
        run: barrier::protected_commit_vs_msync,
    },
    RowSpec {
        key: "record",
        run: record::durable_record_vs_msync,
    },
    RowSpec {
        key: "record-reuse",
        run: record::durable_record_reused_vs_msync,
    },
    RowSpec {
        key: "shared-alloc",
        run: threads::shared_alloc_threads,
    },
    RowSpec {
        key: "shared-record",
        run: threads::shared_record_threads,
    },
    RowSpec {
        key: "reader-latency",
        run: readers::reader_latency,
    },
    RowSpec {
        key: "alloc-tmpfs",
        run: durable::alloc_single_tmpfs,
    },
    RowSpec {
        key: "bulk-disk",
        run: bulk::bulk_disk,
    },
    RowSpec {
        key: "bulk-tmpfs",
        run: bulk::bulk_tmpfs,
    },
    RowSpec {
        key: "bulk-sim",
        run: bulk::bulk_sim,
    },
    RowSpec {
        key: "page-access",
        run: access::page_access,
    },
    RowSpec {
        key: "open-16k",
        run: open::open_16k,
    },
    RowSpec {
        key: "open-1m",
        run: open::open_1m,
    },
    RowSpec {
        key: "commit-scale",
        run: scale::commit_scale,
    },
    // Issue 15: costs that must not grow with the file.
    RowSpec {
        key: "iter-scan",
        run: iterate::iter_scan,
    },
    RowSpec {
        key: "alloc-scale",
        run: alloc_scale::alloc_scale,
    },
    RowSpec {
        key: "open-scale",
        run: open_scale::open_scale,
    },
];
