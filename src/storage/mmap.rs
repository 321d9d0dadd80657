//! `MmapStorage`: a file mapped with memmap2.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use super::{Storage, coalesce};
use crate::error::{IoOperation, MappedPageError};

/// Counters of the durability work done through a [`MmapStorage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Calls to [`Storage::sync_ranges`] and [`Storage::sync_all`] (durability barriers).
    pub barriers: u64,
    /// `msync` system calls issued (one per coalesced range).
    pub msync_calls: u64,
    /// Bytes covered by those `msync` calls.
    pub bytes_synced: u64,
}

/// A file mapped into memory with [memmap2]; the backend of `Pager::create` and `Pager::open`.
///
/// * A range sync is an `msync(MS_SYNC)` of exactly the (page-aligned) ranges asked for, never the
///   whole map.
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
    map: Option<MmapMut>,
    len_bytes: u64,
    stats: SyncStats,
    sync_log: Option<Vec<Vec<Range<u64>>>>,
}

impl std::fmt::Debug for MmapStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapStorage")
            .field("len_bytes", &self.len_bytes)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn lock_exclusive(file: &File) -> Result<(), MappedPageError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(MappedPageError::Locked),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(MappedPageError::io(IoOperation::Lock, error))
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
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path.as_ref())
            .map_err(|e| MappedPageError::io(IoOperation::Open, e))?;
        lock_exclusive(&file)?;
        Self::from_locked_file(file)
    }

    fn from_locked_file(file: File) -> Result<MmapStorage, MappedPageError> {
        let len_bytes = file
            .metadata()
            .map_err(|e| MappedPageError::io(IoOperation::Open, e))?
            .len();
        let map =
            map_file(&file, len_bytes).map_err(|e| MappedPageError::io(IoOperation::Map, e))?;
        Ok(MmapStorage {
            file,
            map,
            len_bytes,
            stats: SyncStats::default(),
            sync_log: None,
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
        let create_err = |e| MappedPageError::io(IoOperation::Create, e);
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
            lock_exclusive(&file)?;
            let mut storage = Self::from_locked_file(file)?;
            initialize(&mut storage)?;
            storage
                .file
                .sync_all()
                .map_err(|e| MappedPageError::io(IoOperation::Sync, e))?;
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
            .map_err(|e| MappedPageError::io(IoOperation::SyncDirectory, e))?;
        Ok(storage)
    }

    /// Durability counters since this storage was opened.
    pub fn stats(&self) -> SyncStats {
        self.stats
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
        for range in &merged {
            self.stats.msync_calls += 1;
            self.stats.bytes_synced += range.end - range.start;
            map.flush_range(range.start as usize, (range.end - range.start) as usize)?;
        }
        Ok(())
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
