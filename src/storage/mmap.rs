//! `MmapStorage`: a file mapped with memmap2.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use super::{Storage, coalesce};
use crate::error::{IoOperation, MappedPageError};

/// Counters of the durability work done through a [`MmapStorage`].
///
/// A barrier ([`Storage::sync_ranges`]) over `n` coalesced ranges costs, where
/// [`MmapStorage::one_flush_barriers`] is true, `n − 1` range writes and one `msync`: one device
/// cache flush. Elsewhere it costs `n` `msync` calls, each its own flush. SPEC.md §5 has the
/// reasoning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncStats {
    /// Calls to [`Storage::sync_ranges`] and [`Storage::sync_all`] (durability barriers).
    pub barriers: u64,
    /// `msync(MS_SYNC)` system calls issued. On Linux each one is an `fdatasync` of its range and
    /// ends in a device cache flush (ext4, xfs, btrfs), so this counts device flushes: one per
    /// barrier with one-flush barriers, one per coalesced range without.
    pub msync_calls: u64,
    /// `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` system calls issued (Linux, one-flush
    /// barriers only): every range of a barrier but the last is written and waited for, without
    /// a flush; the barrier's closing `msync` flushes them. Not a flush.
    pub range_writes: u64,
    /// Bytes covered by the barriers: the coalesced ranges of every `sync_ranges` (whether
    /// written by `msync` or by `sync_file_range`) and the whole file for every `sync_all`.
    pub bytes_synced: u64,
}

/// How a barrier over several ranges reaches the medium.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BarrierMethod {
    /// One `msync(MS_SYNC)` per coalesced range: one device flush per range.
    MsyncPerRange,
    /// `sync_file_range` for every range but the last, then `msync(MS_SYNC)` of the last: one
    /// device flush per barrier. Linux only, on the file systems of
    /// [`linux::ONE_FLUSH_FILE_SYSTEMS`] (SPEC.md §5).
    #[cfg(target_os = "linux")]
    WriteThenFlush,
}

impl BarrierMethod {
    /// The method for `file`: one flush per barrier where the file system is known to support
    /// it, else one `msync` per range.
    fn for_file(file: &File) -> BarrierMethod {
        #[cfg(target_os = "linux")]
        if linux::supports_one_flush(file) {
            return BarrierMethod::WriteThenFlush;
        }
        let _ = file;
        BarrierMethod::MsyncPerRange
    }
}

/// The Linux system calls behind one-flush barriers.
#[cfg(target_os = "linux")]
mod linux {
    use std::fs::File;
    use std::io;
    use std::ops::Range;
    use std::os::fd::AsRawFd;

    /// `statfs.f_type` of the file systems whose `fsync` of a range persists every metadata change
    /// the inode's data needs (block allocations, extent conversions, the size), not only those
    /// of the range, and then flushes the device cache: what lets one `msync` at the end of a
    /// barrier make the ranges written before it by `sync_file_range` durable (SPEC.md §5).
    /// Anything else (overlayfs, whose mappings belong to another file than the descriptor; NFS;
    /// FUSE; …) keeps one `msync` per range.
    pub(super) const ONE_FLUSH_FILE_SYSTEMS: [u32; 4] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs (its fsync always syncs the whole file)
        0x0102_1994, // tmpfs (nothing is durable; both calls are no-ops)
    ];

    /// True if `file` lies on one of [`ONE_FLUSH_FILE_SYSTEMS`]; false if it does not or
    /// `fstatfs` fails.
    pub(super) fn supports_one_flush(file: &File) -> bool {
        // SAFETY: `statfs` is a plain C struct of integers, for which all zero bytes is a valid
        // value.
        let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `stat` is a valid, writable `statfs` that outlives the call, and the descriptor
        // stays open for as long as `file` is borrowed.
        let result = unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) };
        // `f_type` is a signed or unsigned word depending on the target; the magic numbers are
        // 32-bit patterns.
        result == 0 && ONE_FLUSH_FILE_SYSTEMS.contains(&(stat.f_type as u32))
    }

    /// Writes the dirty pages of `range` and waits until the device has completed the writes;
    /// issues no cache flush and writes no metadata.
    pub(super) fn write_range(file: &File, range: &Range<u64>) -> io::Result<()> {
        let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "range beyond off64_t");
        let offset = range.start.try_into().map_err(|_| too_large())?;
        let length = (range.end - range.start)
            .try_into()
            .map_err(|_| too_large())?;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: `sync_file_range` reads and writes no memory of this process: it takes a
        // descriptor that `file` keeps open for the duration of the call, and integers.
        let result = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, length, flags) };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// A file mapped into memory with [memmap2]; the backend of `Pager::create` and `Pager::open`.
///
/// * A barrier writes exactly the (page-aligned) ranges asked for, never the whole map. On Linux,
///   on ext4, xfs, btrfs and tmpfs, a barrier over several ranges writes all but the last with
///   `sync_file_range` (written and waited for, no flush) and ends with one `msync(MS_SYNC)` of
///   the last, whose device cache flush makes them all durable: one flush per barrier
///   ([`one_flush_barriers`](Self::one_flush_barriers)). Elsewhere every range is its own
///   `msync(MS_SYNC)`. SPEC.md §5 states what this relies on.
/// * Growth is `set_len` followed by a new mapping; the pager then syncs a range of the new
///   length, which on Linux file systems (ext4, xfs, btrfs) also makes the new size durable.
/// * The file is locked exclusively (`flock`) for the lifetime of the storage, so a second
///   handle on the same file, in this process or another, fails with
///   [`MappedPageError::Locked`].
///
/// ```
/// use mappedpages::{MmapStorage, Pager};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("pages.bin");
/// drop(Pager::<4096>::create(&path).unwrap());
/// let storage = MmapStorage::open(&path).unwrap();
/// let pager = Pager::<4096, MmapStorage>::open_in(storage).unwrap();
/// assert_eq!(pager.allocated_page_count(), 0);
/// ```
pub struct MmapStorage {
    file: File,
    /// The path the file was opened or created at, named by I/O errors.
    path: PathBuf,
    map: Option<MmapMut>,
    len_bytes: u64,
    stats: SyncStats,
    sync_log: Option<Vec<Vec<Range<u64>>>>,
    /// Found by the first barrier over several ranges (an `fstatfs`), not at open.
    method: Option<BarrierMethod>,
}

impl std::fmt::Debug for MmapStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapStorage")
            .field("path", &self.path)
            .field("len_bytes", &self.len_bytes)
            .field("stats", &self.stats)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

fn lock_exclusive(file: &File, path: &Path) -> Result<(), MappedPageError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(MappedPageError::Locked),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(MappedPageError::io(IoOperation::Lock, Some(path), error))
        }
    }
}

fn map_file(file: &File, len_bytes: u64) -> io::Result<Option<MmapMut>> {
    if len_bytes == 0 {
        return Ok(None);
    }
    // SAFETY: the mapping covers the file as it is now (`len_bytes` is its current length) and
    // lives inside `MmapStorage`, which owns the `File` and holds the exclusive `flock` on it, so
    // no other `MmapStorage` maps the file for writing. Processes that ignore the advisory lock and
    // modify the file concurrently are outside the contract documented on `MmapStorage`.
    let map = unsafe { MmapMut::map_mut(file)? };
    Ok(Some(map))
}

impl MmapStorage {
    /// Opens an existing file for reading and writing, locks it, and maps it.
    pub fn open(path: impl AsRef<Path>) -> Result<MmapStorage, MappedPageError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| MappedPageError::io(IoOperation::Open, Some(path), e))?;
        lock_exclusive(&file, path)?;
        Self::from_locked_file(file, path)
    }

    /// `path`: where the file is (or, during `create_atomic`, will be) found.
    fn from_locked_file(file: File, path: &Path) -> Result<MmapStorage, MappedPageError> {
        let len_bytes = file
            .metadata()
            .map_err(|e| MappedPageError::io(IoOperation::Open, Some(path), e))?
            .len();
        let map = map_file(&file, len_bytes)
            .map_err(|e| MappedPageError::io(IoOperation::Map, Some(path), e))?;
        Ok(MmapStorage {
            file,
            path: path.to_path_buf(),
            map,
            len_bytes,
            stats: SyncStats::default(),
            sync_log: None,
            method: None,
        })
    }

    /// Creates a file at `path` atomically: the image produced by `initialize` is built in a
    /// temporary file in the same directory, made durable, linked into place (failing if `path`
    /// exists), and the directory is synced. A crash at any point leaves either no file at `path`
    /// or the complete image (SPEC.md §3.1).
    pub(crate) fn create_atomic(
        path: &Path,
        initialize: impl FnOnce(&mut MmapStorage) -> Result<(), MappedPageError>,
    ) -> Result<MmapStorage, MappedPageError> {
        let create_err = |e| MappedPageError::io(IoOperation::Create, Some(path), e);
        if path.exists() {
            return Err(MappedPageError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path.file_name().ok_or_else(|| {
            create_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path has no file name",
            ))
        })?;
        let temp_path = directory.join(format!(
            ".{}.mappedpages-create-{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(create_err)?;
        let result = (|| {
            lock_exclusive(&file, path)?;
            let mut storage = Self::from_locked_file(file, path)?;
            initialize(&mut storage)?;
            storage
                .file
                .sync_all()
                .map_err(|e| MappedPageError::io(IoOperation::Sync, Some(path), e))?;
            // `hard_link` fails if `path` exists: creation never clobbers a file that appeared
            // after the check above.
            std::fs::hard_link(&temp_path, path).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    MappedPageError::AlreadyExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    create_err(e)
                }
            })?;
            Ok(storage)
        })();
        // The temporary name is removed whether or not creation succeeded; the locked handle keeps
        // working on the inode through its new name.
        let _ = std::fs::remove_file(&temp_path);
        let storage = result?;
        File::open(&directory)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| MappedPageError::io(IoOperation::SyncDirectory, Some(&directory), e))?;
        Ok(storage)
    }

    /// Durability counters since this storage was opened.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// True when a barrier over several ranges costs one device flush: Linux, with the file on
    /// ext4, xfs, btrfs or tmpfs (all ranges but the last are written by `sync_file_range`, the
    /// last by `msync(MS_SYNC)`). False when every range is its own `msync` (SPEC.md §5).
    pub fn one_flush_barriers(&self) -> bool {
        self.method
            .unwrap_or_else(|| BarrierMethod::for_file(&self.file))
            != BarrierMethod::MsyncPerRange
    }

    /// Starts recording the ranges of every barrier (for conformance tests against `SimStorage`).
    pub fn record_syncs(&mut self) {
        self.sync_log = Some(Vec::new());
    }

    /// The ranges of every barrier since [`record_syncs`](Self::record_syncs), coalesced.
    pub fn sync_log(&self) -> &[Vec<Range<u64>>] {
        self.sync_log.as_deref().unwrap_or(&[])
    }

    fn check_range(&self, range: &Range<u64>) -> io::Result<()> {
        if range.start > range.end || range.end > self.len_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "sync range {range:?} outside the file of {} bytes",
                    self.len_bytes
                ),
            ));
        }
        Ok(())
    }
}

impl Storage for MmapStorage {
    fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    fn grow(&mut self, new_len_bytes: u64) -> io::Result<()> {
        if new_len_bytes <= self.len_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "grow must extend the file",
            ));
        }
        let old_len = self.len_bytes;
        self.file.set_len(new_len_bytes)?;
        match map_file(&self.file, new_len_bytes) {
            Ok(map) => {
                self.map = map;
                self.len_bytes = new_len_bytes;
                Ok(())
            }
            Err(error) => {
                // Keep the old mapping and try to give the space back; the old length remains
                // what this storage reports either way.
                let _ = self.file.set_len(old_len);
                Err(error)
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.map.as_deref_mut().unwrap_or(&mut [])
    }

    fn sync_ranges(&mut self, ranges: &[Range<u64>]) -> io::Result<()> {
        for range in ranges {
            self.check_range(range)?;
        }
        let merged = coalesce(ranges);
        self.stats.barriers += 1;
        if let Some(log) = self.sync_log.as_mut() {
            log.push(merged.clone());
        }
        let Some(map) = self.map.as_ref() else {
            return Ok(());
        };
        let Some((last, first_ranges)) = merged.split_last() else {
            return Ok(());
        };
        // Every range but the last: written and waited for, without a flush where the last
        // msync's flush covers them (SPEC.md §5), else each its own msync.
        let method = match self.method {
            Some(method) => method,
            None if first_ranges.is_empty() => BarrierMethod::MsyncPerRange,
            None => *self.method.insert(BarrierMethod::for_file(&self.file)),
        };
        for range in first_ranges {
            self.stats.bytes_synced += range.end - range.start;
            match method {
                #[cfg(target_os = "linux")]
                BarrierMethod::WriteThenFlush => {
                    self.stats.range_writes += 1;
                    linux::write_range(&self.file, range)?;
                }
                BarrierMethod::MsyncPerRange => {
                    self.stats.msync_calls += 1;
                    map.flush_range(range.start as usize, (range.end - range.start) as usize)?;
                }
            }
        }
        self.stats.msync_calls += 1;
        self.stats.bytes_synced += last.end - last.start;
        map.flush_range(last.start as usize, (last.end - last.start) as usize)
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.stats.barriers += 1;
        if let Some(log) = self.sync_log.as_mut() {
            log.push(vec![0..self.len_bytes]);
        }
        if let Some(map) = self.map.as_ref() {
            self.stats.msync_calls += 1;
            self.stats.bytes_synced += self.len_bytes;
            map.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    fn storage_of_pages(dir: &tempfile::TempDir, pages: u64) -> MmapStorage {
        let path = dir.path().join("storage.bin");
        let file = File::create(&path).unwrap();
        file.set_len(pages * PAGE).unwrap();
        drop(file);
        MmapStorage::open(&path).unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap and fstatfs are not supported under Miri")]
    fn a_barrier_over_several_ranges_is_one_msync_where_supported() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 8);
        for page in [0, 1, 3, 6] {
            storage.bytes_mut()[(page * PAGE) as usize] = page as u8 + 1;
        }
        // Pages 0 and 1 coalesce: three ranges.
        storage
            .sync_ranges(&[
                6 * PAGE..7 * PAGE,
                0..PAGE,
                PAGE..2 * PAGE,
                3 * PAGE..4 * PAGE,
            ])
            .unwrap();
        let stats = storage.stats();
        assert_eq!(stats.barriers, 1);
        assert_eq!(stats.bytes_synced, 4 * PAGE);
        if storage.one_flush_barriers() {
            assert_eq!((stats.msync_calls, stats.range_writes), (1, 2));
        } else {
            assert_eq!((stats.msync_calls, stats.range_writes), (3, 0));
        }
        // One range: one msync, never a range write.
        storage.sync_ranges(&[2 * PAGE..3 * PAGE]).unwrap();
        let after = storage.stats();
        assert_eq!(after.msync_calls - stats.msync_calls, 1);
        assert_eq!(after.range_writes, stats.range_writes);
        storage.sync_all().unwrap();
        assert_eq!(storage.stats().bytes_synced, 5 * PAGE + 8 * PAGE);
        let on_disk = std::fs::read(dir.path().join("storage.bin")).unwrap();
        assert_eq!(on_disk[(6 * PAGE) as usize], 7);
        assert_eq!(on_disk[(3 * PAGE) as usize], 4);
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap and fstatfs are not supported under Miri")]
    fn ranges_outside_the_file_fail_before_any_sync() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 2);
        let error = storage.sync_ranges(&[0..PAGE, PAGE..3 * PAGE]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(storage.stats(), SyncStats::default());
    }
}
