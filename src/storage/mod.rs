//! The `Storage` trait: the only way the pager reaches bytes and durability.

mod mmap;
mod sim;

pub use mmap::{MmapStorage, SyncStats};
pub use sim::{CrashLength, CrashPoint, FailedSyncKeeps, SectorSize, SimEvent, SimStorage};

use std::io;
use std::ops::Range;
use std::path::Path;

/// A byte region that can be read and written in place, grown, and made durable range by range.
///
/// The pager performs every read and write through [`bytes`](Storage::bytes) and
/// [`bytes_mut`](Storage::bytes_mut), every durability barrier through
/// [`sync_ranges`](Storage::sync_ranges), and reserves space with
/// [`reserve`](Storage::reserve) before it writes or hands out a page. Implementations decide what "durable" means; the
/// contract they must keep is the crash model of SPEC.md §5:
///
/// * bytes written through `bytes_mut` may reach the medium at any time, in any order, sector by
///   sector, until a sync covering them returns `Ok`;
/// * after `sync_ranges(r)` returns `Ok`, the bytes of every range in `r`, and the current
///   length, are durable;
/// * a failed sync may have made any subset of the dirty sectors in its ranges durable.
///
/// ```
/// use mappedpages::{SimStorage, Storage};
///
/// let mut storage = SimStorage::new();
/// storage.grow(8192).unwrap();
/// storage.reserve(&[0..4096]).unwrap(); // space first: a write into a hole may find none
/// storage.bytes_mut()[0] = 7;
/// storage.sync_ranges(&[0..4096]).unwrap();
/// assert_eq!(storage.bytes()[0], 7);
/// assert_eq!(storage.len_bytes(), 8192);
/// ```
pub trait Storage {
    /// Current length in bytes.
    fn len_bytes(&self) -> u64;

    /// The length the medium has now, as the operating system reports it (an `fstat` for a
    /// file). It differs from [`len_bytes`](Storage::len_bytes) only when something outside this
    /// storage changed it, such as another process truncating the file. The pager compares the
    /// two before every commit, growth and sync, and fails with
    /// [`MappedPageError::FileShrunk`](crate::MappedPageError::FileShrunk) when the medium is
    /// shorter. The default returns `len_bytes()`: storage that nothing else can change.
    fn observed_len_bytes(&self) -> io::Result<u64> {
        Ok(self.len_bytes())
    }

    /// Extends the region to `new_len_bytes` (larger than the current length); new bytes read as
    /// zero. On error the length and contents are unchanged; a storage that cannot reach its
    /// bytes any more after the error returns a [`bytes`](Storage::bytes) shorter than
    /// [`len_bytes`](Storage::len_bytes), and the pager poisons itself. The new length becomes
    /// durable with the next successful sync.
    fn grow(&mut self, new_len_bytes: u64) -> io::Result<()>;

    /// The whole region.
    fn bytes(&self) -> &[u8];

    /// The whole region, writable.
    fn bytes_mut(&mut self) -> &mut [u8];

    /// One durability barrier over a set of byte ranges, each page-aligned and inside the region.
    /// Returns once all of them (and the current length) are durable.
    fn sync_ranges(&mut self, ranges: &[Range<u64>]) -> io::Result<()>;

    /// Makes the whole region durable.
    fn sync_all(&mut self) -> io::Result<()>;

    /// The barrier of [`sync_ranges`](Storage::sync_ranges), split in two: what needs the
    /// storage (checks, bookkeeping, the choice of system calls) runs now, and the waiting for
    /// the device runs in [`PendingBarrier::wait`], which needs no access to the storage. A
    /// caller that shares the storage behind a lock ([`SharedPager`](crate::SharedPager)) starts
    /// the barrier under the lock and waits for it with the lock released, so other threads read
    /// meanwhile (SPEC.md §3.10).
    ///
    /// The durability promise is that of `sync_ranges`, given when `wait` returns `Ok`; until
    /// then nothing is known durable, and a failed `wait` is a failed sync. The caller must not
    /// grow, shrink or drop the storage before `wait` returns (writes through
    /// [`bytes_mut`](Storage::bytes_mut) meanwhile are allowed: they are dirty bytes like any
    /// other, durable or not). An error returned here means the barrier did not start.
    ///
    /// The default runs the whole barrier now and returns a barrier already complete: correct
    /// for any storage, and what a storage in memory needs (it has no device to wait for).
    /// `MmapStorage` on Linux leaves its system calls (`sync_file_range`, `msync`) to `wait`.
    ///
    /// ```
    /// use mappedpages::{SimStorage, Storage};
    ///
    /// let mut storage = SimStorage::new();
    /// storage.grow(8192).unwrap();
    /// storage.reserve(&[0..4096]).unwrap();
    /// storage.bytes_mut()[0] = 7;
    /// let barrier = storage.start_barrier(&[0..4096]).unwrap();
    /// barrier.wait().unwrap(); // for a shared storage: with its lock released
    /// assert_eq!(storage.durable_image()[0], 7);
    /// ```
    fn start_barrier(&mut self, ranges: &[Range<u64>]) -> io::Result<PendingBarrier> {
        self.sync_ranges(ranges)?;
        Ok(PendingBarrier::complete())
    }

    /// Reserves backing space for every byte of `ranges` (each inside the region), so that a
    /// later write through [`bytes_mut`](Storage::bytes_mut) into them can never fail for lack
    /// of space. Contents are unchanged. A full medium is an error of kind
    /// [`io::ErrorKind::StorageFull`] (or [`io::ErrorKind::QuotaExceeded`]); on error any part of
    /// the ranges may have been reserved, and nothing else changed. The reservation becomes
    /// durable with the next successful sync (SPEC.md §3.3.1).
    ///
    /// The pager reserves every page it writes itself and every page it hands out before anyone
    /// writes it, unless reservation is turned off
    /// ([`Pager::set_space_reservation`](crate::Pager::set_space_reservation)). A storage whose
    /// writes cannot run out of space (memory) returns `Ok(())`; a storage that wraps another
    /// must forward the call, or a full disk under it raises `SIGBUS` again (which is why this
    /// method has no default).
    fn reserve(&mut self, ranges: &[Range<u64>]) -> io::Result<()>;

    /// Shortens the region to `new_len_bytes` (not above the current length): undoes a growth
    /// whose operation failed before anything was written past `new_len_bytes`. On error the
    /// region may have either length, and the pager poisons itself.
    ///
    /// The pager shrinks only after [`reserve`](Storage::reserve) failed (or, for a storage
    /// that cannot shrink, poisons itself when this returns an error).
    fn shrink(&mut self, new_len_bytes: u64) -> io::Result<()>;

    /// Advice on the reads that follow: `true` while recovery reads a few pages spread over the
    /// whole region (two slot pages per bitmap group, SPEC.md §4.1), `false` after it. A storage
    /// that reads ahead of a page it has to fetch (a memory-mapped file: each fault reads a
    /// read-ahead window, up to megabytes) should fetch only the page while it is `true`. Only a
    /// hint: it changes no contents and cannot fail. The default does nothing.
    ///
    /// ```
    /// use mappedpages::{SimStorage, Storage};
    ///
    /// let mut storage = SimStorage::new();
    /// storage.grow(8192).unwrap();
    /// storage.advise_scattered_reads(true);
    /// assert_eq!(storage.bytes()[4096], 0);
    /// storage.advise_scattered_reads(false);
    /// ```
    fn advise_scattered_reads(&mut self, scattered: bool) {
        let _ = scattered;
    }

    /// Starts fetching the bytes of `ranges` (each inside the region) in the background, because
    /// the pager is about to read them: recovery names every slot page it will read before it
    /// reads the first, so that a storage on a device can have them all in flight at once
    /// instead of waiting for each in turn. Only a hint: it changes no contents and cannot fail.
    /// The default does nothing.
    ///
    /// ```
    /// use mappedpages::{SimStorage, Storage};
    ///
    /// let mut storage = SimStorage::new();
    /// storage.grow(8192).unwrap();
    /// storage.prefetch(&[4096..8192]);
    /// assert_eq!(storage.bytes()[4096], 0);
    /// ```
    fn prefetch(&self, ranges: &[Range<u64>]) {
        let _ = ranges;
    }

    /// Prepares the pages of `ranges` (each inside the region) for writing, because the pager is
    /// about to write them: a `SharedPager` group-commit leader names the pages its commit will
    /// write (the inactive metadata copy, the free pages its `alloc_with` fills will write)
    /// before it takes the lock that readers wait for, so that a storage whose first write to a
    /// page takes a page fault (a memory-mapped file: a page cleaned by the last barrier is
    /// write-protected, a page never touched is not mapped) takes those faults outside it. Only
    /// a hint: it changes no contents and cannot fail. The default does nothing.
    ///
    /// ```
    /// use mappedpages::{SimStorage, Storage};
    ///
    /// let mut storage = SimStorage::new();
    /// storage.grow(8192).unwrap();
    /// storage.prepare_writes(&[4096..8192]);
    /// assert_eq!(storage.bytes()[4096], 0);
    /// ```
    fn prepare_writes(&self, ranges: &[Range<u64>]) {
        let _ = ranges;
    }

    /// The file this storage keeps, if it is one: named by the
    /// [`MappedPageError::Io`](crate::MappedPageError::Io) errors of its operations. `None` (the
    /// default) for storage that is not a file.
    fn path(&self) -> Option<&Path> {
        None
    }
}

/// A barrier started by [`Storage::start_barrier`]: the part of it that waits for the device,
/// run by [`wait`](PendingBarrier::wait) without access to the storage.
///
/// ```
/// use mappedpages::PendingBarrier;
///
/// assert!(PendingBarrier::complete().wait().is_ok());
/// let failing = PendingBarrier::new(|| Err(std::io::Error::other("the device said no")));
/// assert!(failing.wait().is_err());
/// ```
#[must_use = "nothing is durable until `wait` returns `Ok`"]
pub struct PendingBarrier {
    wait: Option<Box<dyn FnOnce() -> io::Result<()>>>,
}

impl PendingBarrier {
    /// A barrier that is already complete: `wait` returns `Ok` at once.
    pub fn complete() -> PendingBarrier {
        PendingBarrier { wait: None }
    }

    /// A barrier whose remaining work is `wait` (system calls on descriptors or addresses the
    /// closure owns or copied, never a borrow of the storage).
    pub fn new(wait: impl FnOnce() -> io::Result<()> + 'static) -> PendingBarrier {
        PendingBarrier {
            wait: Some(Box::new(wait)),
        }
    }

    /// Waits until the barrier's ranges are durable (`Ok`), or fails as
    /// [`Storage::sync_ranges`] does.
    pub fn wait(self) -> io::Result<()> {
        match self.wait {
            Some(wait) => wait(),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for PendingBarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingBarrier")
            .field("complete", &self.wait.is_none())
            .finish()
    }
}

/// Sorts `ranges` and merges overlapping or adjacent ones.
pub(crate) fn coalesce(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::coalesce;

    #[test]
    fn coalesce_merges_adjacent_and_overlapping() {
        assert_eq!(
            coalesce(&[8..12, 0..4, 4..6, 10..16, 20..20, 30..40]),
            vec![0..6, 8..16, 30..40]
        );
    }
}
