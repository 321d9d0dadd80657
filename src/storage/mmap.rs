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
/// A barrier ([`Storage::sync_ranges`]) over `n > 1` coalesced ranges costs, on Linux where
/// [`MmapStorage::one_flush_barriers`] is true, `n` range write starts (all `n` writes in flight
/// together), `n − 1` range writes that wait for them, and one `msync`: one device cache flush.
/// On Linux elsewhere it costs `n` `msync` calls, each its own flush. On macOS and
/// iOS it is `n` `msync` calls and one `F_FULLFSYNC`; on Windows `n` `FlushViewOfFile` calls and
/// one `FlushFileBuffers`; on other Unixes `n` `msync` calls and one `fsync`: one device flush
/// per barrier. `docs/mmap-barriers.md` has the reasoning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncStats {
    /// Calls to [`Storage::sync_ranges`] and [`Storage::sync_all`] (durability barriers).
    pub barriers: u64,
    /// `msync(MS_SYNC)` system calls issued. On Linux each one is an `fdatasync` of its range and
    /// ends in a device cache flush (ext4, xfs, btrfs), so this counts device flushes: one per
    /// barrier with one-flush barriers, one per coalesced range without. On macOS, iOS and other
    /// Unixes each one writes its range without flushing the device ([`file_flushes`](Self::file_flushes)
    /// counts the flushes there); zero on Windows.
    pub msync_calls: u64,
    /// `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` system calls issued (Linux, one-flush
    /// barriers over several ranges only): every range of a barrier but the last is written and
    /// waited for, without a flush (its write mostly already started by
    /// [`range_write_starts`](Self::range_write_starts), so this mostly waits); the barrier's
    /// closing `msync` flushes them. Not a flush.
    pub range_writes: u64,
    /// `sync_file_range(WRITE)` system calls issued (Linux, one-flush barriers over several
    /// ranges only): the write-back of every range of the barrier started, not waited for, so
    /// that all its writes are in flight together before the first wait. Neither a wait nor a
    /// flush.
    pub range_write_starts: u64,
    /// Bytes covered by the barriers: the coalesced ranges of every `sync_ranges` (whether
    /// written by `msync` or by `sync_file_range`; a range both started and written counts
    /// once) and the whole file for every `sync_all`.
    pub bytes_synced: u64,
    /// Ranges reserved with the file system (`fallocate` calls, or fallback passes): the
    /// ranges [`Storage::reserve`] asked for, rounded out to [`MmapStorage::RESERVATION_CHUNK_BYTES`]
    /// chunks, without the chunks this handle had reserved before.
    pub reservations: u64,
    /// Bytes covered by those ranges.
    pub bytes_reserved: u64,
    /// Blocks reserved by the fallback that writes a byte per block (where the file system has
    /// no `fallocate`, or off Linux).
    pub reservation_writes: u64,
    /// `FlushViewOfFile` calls (Windows): the dirty pages of a range handed to the file system,
    /// not waited for and not flushed; the barrier's `FlushFileBuffers` does both.
    pub view_flushes: u64,
    /// Whole-file flushes that end a barrier off Linux, each one device cache flush:
    /// `fcntl(F_FULLFSYNC)` on macOS and iOS (or the `fsync` it falls back to), `FlushFileBuffers`
    /// on Windows, `fsync` on other Unixes; and the `fsync` that makes a created file durable
    /// (SPEC.md §3.1). On Linux only the latter: a barrier's closing `msync` is its flush.
    pub file_flushes: u64,
    /// The `F_FULLFSYNC` calls the file system refused (macOS and iOS: `ENOTSUP`, `EINVAL`, …, on
    /// some network and FUSE file systems), each replaced by an `fsync`, which does not flush the
    /// drive's cache (SPEC.md §5).
    pub full_fsync_fallbacks: u64,
}

/// The operating-system family whose system calls make a barrier durable (SPEC.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Platform {
    /// `msync(MS_SYNC)` is an `fdatasync` of the range with a device cache flush;
    /// `sync_file_range` writes without a flush.
    Linux,
    /// macOS and iOS: `msync` and `fsync` do not flush the drive's cache; `F_FULLFSYNC` does.
    Apple,
    /// `FlushViewOfFile` queues the view's dirty pages; `FlushFileBuffers` writes and flushes.
    Windows,
    /// Every other Unix: `msync(MS_SYNC)` writes the range, `fsync` flushes the file.
    OtherUnix,
}

impl Platform {
    /// The platform this crate is built for.
    const CURRENT: Platform = if cfg!(target_os = "linux") {
        Platform::Linux
    } else if cfg!(target_vendor = "apple") {
        Platform::Apple
    } else if cfg!(windows) {
        Platform::Windows
    } else {
        Platform::OtherUnix
    };
}

/// One system call of a barrier, as planned by [`barrier_steps`] and run by
/// [`MmapStorage::run_steps`]. The plan is pure, so the sequence of every platform is tested on
/// any platform.
#[derive(Clone, Debug, PartialEq, Eq)]
enum BarrierStep {
    /// Linux `sync_file_range(WRITE)`: write-back of the range's dirty pages started, not
    /// waited for; no flush, no metadata. Durable only once a later step of the same barrier
    /// has waited for the range and the flush has followed.
    StartRangeWrite(Range<u64>),
    /// Linux `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`: written and waited for, no
    /// flush, no metadata.
    WriteRange(Range<u64>),
    /// `msync(MS_SYNC)` of the range: written and waited for. On Linux also the device flush.
    Msync(Range<u64>),
    /// Windows `FlushViewOfFile` of the range: the dirty pages handed to the file system.
    FlushView(Range<u64>),
    /// macOS and iOS `fcntl(F_FULLFSYNC)` of the file: its data and metadata written and the
    /// drive's cache flushed; `fsync` where the file system refuses it.
    FullFsync,
    /// `fsync` of the file: data and metadata, and on Linux and the BSDs a device flush.
    Fsync,
    /// Windows `FlushFileBuffers` of the handle: data and metadata written, device flushed.
    FlushFileBuffers,
}

/// The system calls of one barrier over `ranges` (coalesced) on `platform`. `method`: how the
/// file's barriers reach the medium on Linux ([`BarrierMethod::for_file`]; ignored elsewhere).
/// No ranges, no calls.
fn barrier_steps(
    platform: Platform,
    method: BarrierMethod,
    ranges: &[Range<u64>],
) -> Vec<BarrierStep> {
    let Some((last, first_ranges)) = ranges.split_last() else {
        return Vec::new();
    };
    let mut steps = Vec::with_capacity(2 * ranges.len());
    match platform {
        // One range: its msync is the whole barrier.
        Platform::Linux if first_ranges.is_empty() => steps.push(BarrierStep::Msync(last.clone())),
        Platform::Linux if method == BarrierMethod::WriteThenFlush => {
            // All writes in flight together, then waited for (the last by its msync), then the
            // last msync's flush (an fdatasync of the file) makes them all durable
            // (docs/mmap-barriers.md).
            steps.extend(ranges.iter().cloned().map(BarrierStep::StartRangeWrite));
            steps.extend(first_ranges.iter().cloned().map(BarrierStep::WriteRange));
            steps.push(BarrierStep::Msync(last.clone()));
        }
        Platform::Linux if method == BarrierMethod::SerialWriteThenFlush => {
            steps.extend(first_ranges.iter().cloned().map(BarrierStep::WriteRange));
            steps.push(BarrierStep::Msync(last.clone()));
        }
        Platform::Linux => steps.extend(ranges.iter().cloned().map(BarrierStep::Msync)),
        Platform::Apple => {
            steps.extend(ranges.iter().cloned().map(BarrierStep::Msync));
            steps.push(BarrierStep::FullFsync);
        }
        Platform::Windows => {
            steps.extend(ranges.iter().cloned().map(BarrierStep::FlushView));
            steps.push(BarrierStep::FlushFileBuffers);
        }
        Platform::OtherUnix => {
            steps.extend(ranges.iter().cloned().map(BarrierStep::Msync));
            steps.push(BarrierStep::Fsync);
        }
    }
    steps
}

/// The system calls that make a newly built file of `len_bytes` durable before it is given its
/// name (SPEC.md §3.1): its contents, length and allocation. On Linux one `fsync`; elsewhere a
/// barrier over the whole file, whose closing whole-file flush covers the metadata.
fn create_steps(platform: Platform, len_bytes: u64) -> Vec<BarrierStep> {
    match platform {
        Platform::Linux => vec![BarrierStep::Fsync],
        _ if len_bytes > 0 => {
            barrier_steps(platform, BarrierMethod::MsyncPerRange, &[0..len_bytes])
        }
        Platform::Apple => vec![BarrierStep::FullFsync],
        Platform::Windows => vec![BarrierStep::FlushFileBuffers],
        Platform::OtherUnix => vec![BarrierStep::Fsync],
    }
}

/// True if `error`, returned by `fcntl(F_FULLFSYNC)`, says the file system does not support it
/// (rather than that the flush failed): then `fsync` is the best there is (SQLite falls back to
/// it too, on any failure). An I/O error is never retried as an `fsync`, which could report success
/// for pages the failed flush dropped.
#[cfg(all(unix, any(target_vendor = "apple", test)))]
fn full_fsync_refused(error: &io::Error) -> bool {
    error.raw_os_error().is_some_and(|code| {
        [libc::ENOTSUP, libc::EOPNOTSUPP, libc::EINVAL, libc::ENOTTY].contains(&code)
    })
}

/// How a barrier over several ranges reaches the medium on Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BarrierMethod {
    /// One `msync(MS_SYNC)` per coalesced range: one device flush per range. Also what a barrier
    /// over one range is called before the file system's type is known (it makes no difference).
    MsyncPerRange,
    /// `sync_file_range(WRITE)` of every range (all writes in flight together), then
    /// `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` of every range but the last, then
    /// `msync(MS_SYNC)` of the last: one device flush per barrier, after one round of writes.
    /// Linux only, on the file systems of `ONE_FLUSH_FILE_SYSTEMS` (SPEC.md §5).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    WriteThenFlush,
    /// The same without the first pass: each range but the last written and waited for before
    /// the next is started, then `msync(MS_SYNC)` of the last. Equally durable, one flush, but
    /// `n` device round trips of writes; kept only for the benchmark that compares both plans
    /// ([`MmapStorage::plan_serial_range_writes`]).
    SerialWriteThenFlush,
    /// Off Linux: every range written, then one whole-file flush ([`barrier_steps`]).
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    FlushFile,
}

impl BarrierMethod {
    /// The method for `file`: on Linux, one flush per barrier where the file system is known to
    /// support it, else one `msync` per range; elsewhere the platform's whole-file flush.
    fn for_file(file: &File) -> BarrierMethod {
        #[cfg(target_os = "linux")]
        {
            if linux::supports_one_flush(file) {
                BarrierMethod::WriteThenFlush
            } else {
                BarrierMethod::MsyncPerRange
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = file;
            BarrierMethod::FlushFile
        }
    }
}

/// The Linux system calls behind one-flush barriers.
#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::CString;
    use std::fs::File;
    use std::io;
    use std::ops::Range;
    use std::os::fd::AsRawFd;
    use std::path::Path;

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

    /// Extends `map` to `new_len_bytes` with `mremap` (it may move): the pages already mapped
    /// keep their page table entries, where a new mapping would take every one of them down
    /// (`munmap` of a map of a few MiB with its pages touched: 0.2–0.7 ms here) and fault each
    /// back in. On error `map` is unchanged (`mremap` changes nothing when it fails).
    pub(super) fn extend_map(map: &mut memmap2::MmapMut, new_len_bytes: u64) -> io::Result<()> {
        let new_len = usize::try_from(new_len_bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "the file is larger than the address space",
            )
        })?;
        // SAFETY: the caller has just set the file's length to `new_len_bytes`, so every byte of
        // the extended mapping lies inside the file; `&mut` on the map means no slice of it is
        // borrowed, so nothing observes the move; and a barrier's `Mapping` (the one raw copy of
        // the address) never outlives the barrier, which ends before the storage can grow.
        unsafe { map.remap(new_len, memmap2::RemapOptions::new().may_move(true)) }
    }

    /// Allocates the blocks of `range` (`fallocate` with `FALLOC_FL_KEEP_SIZE`: contents and
    /// length unchanged, even if another process shortened the file; unwritten extents read as
    /// zeros). `Ok(false)` when the file system has no `fallocate`
    /// (`EOPNOTSUPP`), so the caller falls back to writing.
    pub(super) fn allocate(file: &File, range: &Range<u64>) -> io::Result<bool> {
        let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "range beyond off64_t");
        let offset: libc::off_t = range.start.try_into().map_err(|_| too_large())?;
        let length: libc::off_t = (range.end - range.start)
            .try_into()
            .map_err(|_| too_large())?;
        loop {
            // SAFETY: `fallocate` reads and writes no memory of this process: it takes a
            // descriptor that `file` keeps open for the duration of the call, and integers.
            let result = unsafe {
                libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, length)
            };
            if result == 0 {
                return Ok(true);
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EOPNOTSUPP) => return Ok(false),
                _ => return Err(error),
            }
        }
    }

    /// The length of `file` by `statx` asking for the size only. Asking for nothing else
    /// matters: on kernels with multigrain timestamps (6.13 and later), a `stat` that returns
    /// the modification time (as `std::fs::File::metadata` does) marks it queried, so the next
    /// write to the map takes a fine-grained time and dirties the inode, and the next `msync`
    /// writes the inode too: one more device write per commit (measured on ext4: 3 writes and
    /// 180 µs per durable page against 2 and 103 µs; BENCHMARKS.md). `None` when `statx` is
    /// missing (`ENOSYS`, older kernels or seccomp filters), and the caller falls back to
    /// `fstat`.
    pub(super) fn len_bytes(file: &File) -> Option<io::Result<u64>> {
        // SAFETY: `statx` is a plain C struct of integers, for which all zero bytes is a valid
        // value.
        let mut buffer: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: the path is an empty, NUL-terminated string (with `AT_EMPTY_PATH` the call
        // describes the descriptor, which `file` keeps open for the call) and `buffer` is a
        // valid, writable `statx` that outlives it.
        let result = unsafe {
            libc::statx(
                file.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                libc::STATX_SIZE,
                &mut buffer,
            )
        };
        if result == 0 {
            return Some(Ok(buffer.stx_size));
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::ENOSYS) => None,
            _ => Some(Err(error)),
        }
    }

    /// Bytes the caller may still allocate on the file system holding `file` (`fstatfs`:
    /// available blocks × block size), or `None` if `fstatfs` fails.
    pub(super) fn available_bytes(file: &File) -> Option<u64> {
        // SAFETY: `statfs` is a plain C struct of integers, for which all zero bytes is a valid
        // value.
        let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `stat` is a valid, writable `statfs` that outlives the call, and the descriptor
        // stays open for as long as `file` is borrowed.
        let result = unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) };
        if result != 0 {
            return None;
        }
        // Both fields are unsigned words of the target's width.
        #[allow(clippy::unnecessary_cast)]
        let (blocks, size) = (stat.f_bavail as u64, stat.f_bsize as u64);
        Some(blocks.saturating_mul(size))
    }

    /// `sync_file_range` flags: write the range and wait for every page of it.
    const WRITE_AND_WAIT: libc::c_uint = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    /// `sync_file_range` flags: start the write-back of the range's dirty pages, wait for nothing.
    const START_WRITE: libc::c_uint = libc::SYNC_FILE_RANGE_WRITE;

    /// Writes the dirty pages of `range` and waits until the device has completed the writes;
    /// issues no cache flush and writes no metadata. With `wait` false, only starts the
    /// write-back of the pages that are dirty and not already being written
    /// (`SYNC_FILE_RANGE_WRITE`) and returns without waiting for it.
    /// Where a map of the file lies in this process (for [`run_detached`]): plain numbers,
    /// never dereferenced.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Mapping {
        pub(super) base: usize,
        pub(super) len: usize,
    }

    /// The system calls of a barrier started by `MmapStorage::start_barrier`, run on a
    /// duplicate of its descriptor and on its mapping's address, without the storage.
    pub(super) fn run_detached(
        file: &File,
        mapping: Mapping,
        steps: &[super::BarrierStep],
    ) -> io::Result<()> {
        use super::BarrierStep;
        for step in steps {
            match step {
                BarrierStep::StartRangeWrite(range) => write_range(file, range, false)?,
                BarrierStep::WriteRange(range) => write_range(file, range, true)?,
                BarrierStep::Msync(range) => msync(mapping, range)?,
                // A barrier on Linux never plans a whole-file flush (`barrier_steps`).
                other => unreachable!("{other:?} planned for a barrier on Linux"),
            }
        }
        Ok(())
    }

    /// `msync(MS_SYNC)` of the bytes `range` of `mapping`, from the start of the system page
    /// holding `range.start` (what `memmap2`'s `flush_range` does).
    fn msync(mapping: Mapping, range: &Range<u64>) -> io::Result<()> {
        let (offset, len) = super::map_span(range)?;
        assert!(
            offset
                .checked_add(len)
                .is_some_and(|end| end <= mapping.len),
            "msync of {range:?} past a map of {} bytes",
            mapping.len
        );
        // SAFETY: sysconf has no preconditions.
        let system_page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let system_page = usize::try_from(system_page).unwrap_or(4096).max(1);
        let start = mapping.base + offset;
        let aligned = start - start % system_page;
        assert!(
            mapping.base <= aligned
                && aligned <= start
                && start - aligned < system_page
                && start + len <= mapping.base + mapping.len,
            "msync of {range:?} at {aligned:#x} outside the map at {:#x} of {} bytes",
            mapping.base,
            mapping.len
        );
        // SAFETY: `msync` reads and writes no memory of this process: it asks the kernel to
        // write back the pages of a shared file mapping in an address range. The range lies
        // inside the map `mapping` describes, which `Storage::start_barrier`'s caller keeps
        // (no growth, shrink or drop) until this barrier returns; were it gone, the call would
        // fail with `ENOMEM` or write back another mapping's pages, never touch memory.
        let result = unsafe {
            libc::msync(
                aligned as *mut libc::c_void,
                len + (start - aligned),
                libc::MS_SYNC,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub(super) fn write_range(file: &File, range: &Range<u64>, wait: bool) -> io::Result<()> {
        let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "range beyond off64_t");
        let offset = range.start.try_into().map_err(|_| too_large())?;
        let length = (range.end - range.start)
            .try_into()
            .map_err(|_| too_large())?;
        let flags = if wait { WRITE_AND_WAIT } else { START_WRITE };
        // SAFETY: `sync_file_range` reads and writes no memory of this process: it takes a
        // descriptor that `file` keeps open for the duration of the call, and integers.
        let result = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, length, flags) };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Opens a new anonymous file (`O_TMPFILE`) in `directory`, for reading and writing, with the
    /// permissions a named file would get. `Ok(None)` if the kernel or the file system does not
    /// support `O_TMPFILE`.
    pub(super) fn open_anonymous(directory: &Path) -> io::Result<Option<File>> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o666)
            .open(directory)
        {
            Ok(file) => Ok(Some(file)),
            // EOPNOTSUPP: the file system has no O_TMPFILE; EISDIR: a kernel that predates it
            // (it opened `directory` as a directory for writing); EINVAL: flags it rejects.
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Gives the anonymous `file` the name `path`; fails with `AlreadyExists` if `path` exists
    /// (`linkat` never replaces). Tries `AT_EMPTY_PATH` on the descriptor, then the
    /// `/proc/self/fd` link (which needs no capability); the error returned is the last one.
    pub(super) fn link_anonymous(file: &File, path: &Path) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let invalid = |_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte");
        let target = CString::new(path.as_os_str().as_bytes()).map_err(invalid)?;
        // SAFETY: both strings are NUL-terminated and outlive the call; the descriptor stays open
        // while `file` is borrowed.
        let result = unsafe {
            libc::linkat(
                file.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        if result == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::AlreadyExists {
            return Err(error);
        }
        link_through_proc(file, &target)
    }

    /// `linkat` of `/proc/self/fd/<fd>` (following that link) to `target`.
    pub(super) fn link_through_proc(file: &File, target: &CString) -> io::Result<()> {
        let by_proc = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a /proc path"))?;
        // SAFETY: both strings are NUL-terminated and outlive the call.
        let result = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                by_proc.as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// `range` (inside the map: checked by the caller) as the offset and length `memmap2` takes.
fn map_span(range: &Range<u64>) -> io::Result<(usize, usize)> {
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "range beyond the address space",
        )
    };
    let offset = usize::try_from(range.start).map_err(|_| too_large())?;
    let len = usize::try_from(range.end - range.start).map_err(|_| too_large())?;
    Ok((offset, len))
}

/// `fsync` of `file` (retried on `EINTR`). On macOS and iOS this does not flush the drive's
/// cache: there it is only the fallback of [`apple::full_fsync`].
#[cfg(unix)]
fn fsync(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: `fsync` reads and writes no memory of this process; the descriptor stays open
        // for as long as `file` is borrowed.
        if unsafe { libc::fsync(file.as_raw_fd()) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Free space on Unix systems other than Linux (`fstatvfs`).
#[cfg(all(unix, not(target_os = "linux")))]
mod other_unix {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// Bytes this process may still allocate on the file system holding `file`, or `None` if
    /// `fstatvfs` fails.
    pub(super) fn available_bytes(file: &File) -> Option<u64> {
        // SAFETY: `statvfs` is a plain C struct of integers, for which all zero bytes is a
        // valid value.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `stat` is a valid, writable `statvfs` that outlives the call, and the
        // descriptor stays open for as long as `file` is borrowed.
        let result = unsafe { libc::fstatvfs(file.as_raw_fd(), &mut stat) };
        // Both fields are unsigned words of the target's width.
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        (result == 0).then(|| (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
    }
}

/// The macOS and iOS flush: `fcntl(F_FULLFSYNC)`.
#[cfg(target_vendor = "apple")]
mod apple {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// `fcntl(F_FULLFSYNC)` of `file` (a file or a directory): its data and metadata written and
    /// the drive asked to write its cache to the medium, which `fsync` does not do on Darwin.
    /// Where the file system refuses it ([`full_fsync_refused`](super::full_fsync_refused):
    /// some network and FUSE file systems), an `fsync` instead, and `Ok(true)`.
    pub(super) fn full_fsync(file: &File) -> io::Result<bool> {
        loop {
            // SAFETY: `fcntl(F_FULLFSYNC)` takes no argument and touches no memory of this
            // process; the descriptor stays open for as long as `file` is borrowed.
            if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_FULLFSYNC) } != -1 {
                return Ok(false);
            }
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if super::full_fsync_refused(&error) {
                super::fsync(file)?;
                return Ok(true);
            }
            return Err(error);
        }
    }

    /// The `FullFsync` step of a barrier: [`full_fsync`], counted in `stats`.
    pub(super) fn counted_full_fsync(file: &File, stats: &mut super::SyncStats) -> io::Result<()> {
        stats.file_flushes += 1;
        if full_fsync(file)? {
            stats.full_fsync_fallbacks += 1;
        }
        Ok(())
    }
}

/// The Windows calls of `MmapStorage` that std does not wrap.
#[cfg(windows)]
mod windows {
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;

    /// [`super::directory_error`] on Windows: `ERROR_ACCESS_DENIED` for a directory becomes
    /// `IsADirectory`.
    pub(super) fn directory_error(path: &Path, error: io::Error) -> io::Error {
        if error.kind() == io::ErrorKind::PermissionDenied && path.is_dir() {
            io::Error::new(io::ErrorKind::IsADirectory, error)
        } else {
            error
        }
    }

    /// `buf.len()` bytes of `file` at `offset` (one `ReadFile`; a short read is an error).
    pub(super) fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let read = std::os::windows::fs::FileExt::seek_read(file, buf, offset)?;
        if read == buf.len() {
            Ok(())
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }

    /// `buf` into `file` at `offset` (one `WriteFile`; a short write is an error).
    pub(super) fn write_at(file: &std::fs::File, buf: &[u8], offset: u64) -> io::Result<()> {
        let written = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        if written == buf.len() {
            Ok(())
        } else {
            Err(io::ErrorKind::WriteZero.into())
        }
    }

    /// The `FlushView` step of a barrier over `range`: `FlushViewOfFile` (memmap2's
    /// `flush_async_range`; `msync(MS_ASYNC)` on Unix, where it is never planned), counted.
    pub(super) fn flush_view(
        map: Option<&memmap2::MmapMut>,
        range: &std::ops::Range<u64>,
        stats: &mut super::SyncStats,
    ) -> io::Result<()> {
        stats.view_flushes += 1;
        if let Some(map) = map {
            let (offset, len) = super::map_span(range)?;
            map.flush_async_range(offset, len)?;
        }
        Ok(())
    }

    /// The `FlushFileBuffers` step (std's `sync_all` on Windows), counted.
    pub(super) fn flush_file_buffers(
        file: &std::fs::File,
        stats: &mut super::SyncStats,
    ) -> io::Result<()> {
        stats.file_flushes += 1;
        file.sync_all()
    }

    /// `MoveFileExW` flag: return only once the rename is on the disk.
    const MOVEFILE_WRITE_THROUGH: u32 = 0x8;

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn MoveFileExW(existing: *const u16, new: *const u16, flags: u32) -> i32;
        fn GetDiskFreeSpaceExW(
            directory: *const u16,
            available_to_caller: *mut u64,
            total: *mut u64,
            free: *mut u64,
        ) -> i32;
    }

    fn wide(path: &Path) -> io::Result<Vec<u16>> {
        let mut wide: Vec<u16> = path.as_os_str().encode_wide().collect();
        if wide.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path contains a NUL character",
            ));
        }
        wide.push(0);
        Ok(wide)
    }

    /// Bytes the caller may still allocate on the volume holding `directory`
    /// (`GetDiskFreeSpaceExW`, which counts quotas), or `None` if it fails.
    pub(super) fn available_bytes(directory: &Path) -> Option<u64> {
        let directory = wide(directory).ok()?;
        let mut available = 0u64;
        // SAFETY: `directory` is a NUL-terminated UTF-16 string and `available` a writable u64,
        // both outliving the call; the other two outputs are optional and passed as null.
        let result = unsafe {
            GetDiskFreeSpaceExW(
                directory.as_ptr(),
                &mut available,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        (result != 0).then_some(available)
    }

    /// Renames `from` to `to` with `MoveFileExW(MOVEFILE_WRITE_THROUGH)` and without
    /// `MOVEFILE_REPLACE_EXISTING`: fails with `AlreadyExists` if `to` exists (NTFS checks and
    /// renames atomically), and returns once the rename is durable. The file may be open (std
    /// opens files sharing delete access) and mapped.
    pub(super) fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (wide(from)?, wide(to)?);
        // SAFETY: both buffers are NUL-terminated UTF-16 strings that outlive the call.
        let result = unsafe { MoveFileExW(from.as_ptr(), to.as_ptr(), MOVEFILE_WRITE_THROUGH) };
        if result != 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// A file mapped into memory with [memmap2]; the backend of `Pager::create` and `Pager::open`.
///
/// * A barrier writes exactly the (page-aligned) ranges asked for, never the whole map, and ends
///   in one device cache flush ([`one_flush_barriers`](Self::one_flush_barriers)):
///   * Linux, on ext4, xfs, btrfs and tmpfs: the write-back of every range started with
///     `sync_file_range(WRITE)` (all writes in flight together), all ranges but the last waited
///     for with `sync_file_range` (no flush), then one `msync(MS_SYNC)` of the last, which waits
///     for it and whose flush makes them all durable. On other Linux file systems every range is
///     its own `msync(MS_SYNC)` (and its own flush).
///   * macOS and iOS: `msync(MS_SYNC)` of every range, then `fcntl(F_FULLFSYNC)` of the file
///     (Darwin's `msync` and `fsync` leave the data in the drive's cache); where the file system
///     refuses `F_FULLFSYNC`, `fsync` instead, counted in
///     [`SyncStats::full_fsync_fallbacks`].
///   * Windows: `FlushViewOfFile` of every range, then one `FlushFileBuffers` (memmap2's
///     `flush_range` would call both per range: one device flush per range).
///   * Other Unixes: `msync(MS_SYNC)` of every range, then `fsync`.
///
///   `docs/mmap-barriers.md` (in the repository) argues what each relies on; SPEC.md §5 states
///   the crash model they keep.
/// * Growth is `set_len` followed by a new mapping; the pager then syncs a range of the new
///   length, which also makes the new size durable (the `msync` on Linux file systems ext4, xfs
///   and btrfs; the whole-file flush elsewhere).
/// * The file is locked exclusively (std's `File::try_lock`: `flock` on Unix, `LockFileEx` on
///   Windows) for the lifetime of the storage, so a second handle on the same file, in this
///   process or another, fails with [`MappedPageError::Locked`].
/// * On Windows the lock is mandatory and a mapped file cannot be cut: other programs cannot
///   write or truncate the file while it is open (SPEC.md §3.9). On Unix the lock is
///   **advisory**: it stops other pagers, not other programs. Another process that
///   writes the file meanwhile can corrupt any page. One that truncates it makes every access
///   through the map past the new end raise **SIGBUS**, which kills the process. The pager
///   detects a shrunk file before its own commits, growths and syncs
///   ([`observed_len_bytes`](Storage::observed_len_bytes), one `statx` of the size) and fails with
///   [`MappedPageError::FileShrunk`], poisoned; reads and writes of page contents through page
///   references are not checked.
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
    /// [`plan_serial_range_writes`](Self::plan_serial_range_writes) was called.
    serial_range_writes: bool,
    /// The file system answered `fallocate` with `EOPNOTSUPP`: reserve by writing.
    #[cfg(target_os = "linux")]
    allocate_unsupported: bool,
    /// Reservation chunks this handle has reserved whole.
    chunks: ReservedChunks,
}

/// See [`MmapStorage::RESERVATION_CHUNK_BYTES`].
const RESERVATION_CHUNK_BYTES: u64 = MmapStorage::RESERVATION_CHUNK_BYTES;

/// Which [`RESERVATION_CHUNK_BYTES`] chunks of the file are known to be reserved whole (by this
/// handle; a new handle starts knowing none, and asks the file system again, which costs a
/// system call that allocates nothing).
#[derive(Debug, Default)]
struct ReservedChunks {
    /// Bit `i` set: chunk `i` is reserved.
    words: Vec<u64>,
    /// The end of what is reserved of the chunk the end of the file clipped when it was
    /// reserved (0: nothing): from that chunk's start to here. Without it, every reservation
    /// in the file's last, partial chunk would ask the file system again, and on ext4 an
    /// `fallocate` of allocated blocks still changes the inode (one more device write in the
    /// next barrier).
    clipped_end: u64,
}

impl ReservedChunks {
    fn is_marked(&self, chunk: u64) -> bool {
        usize::try_from(chunk / 64)
            .ok()
            .and_then(|word| self.words.get(word))
            .is_some_and(|word| word >> (chunk % 64) & 1 == 1)
    }

    /// `ranges` (coalesced, inside a file of `len_bytes`) rounded out to whole chunks (clipped
    /// to the file), without the chunks already reserved: what to ask the file system for.
    fn unreserved(&self, ranges: &[Range<u64>], len_bytes: u64) -> Vec<Range<u64>> {
        let chunk_bytes = RESERVATION_CHUNK_BYTES;
        let mut out: Vec<Range<u64>> = Vec::new();
        for range in ranges {
            let (first, end) = (range.start / chunk_bytes, range.end.div_ceil(chunk_bytes));
            for chunk in (first..end).filter(|&chunk| !self.is_marked(chunk)) {
                let mut start = chunk * chunk_bytes;
                let stop = (start + chunk_bytes).min(len_bytes);
                if self.clipped_chunk() == Some(chunk) {
                    start = self.clipped_end;
                }
                if start >= stop {
                    continue;
                }
                match out.last_mut() {
                    Some(last) if last.end >= start => last.end = last.end.max(stop),
                    _ => out.push(start..stop),
                }
            }
        }
        out
    }

    /// The chunk `clipped_end` lies in, if anything of a clipped chunk is reserved.
    /// `clipped_end` is never a multiple of the chunk size (every place that sets it checks
    /// that), so the chunk is the one whose start it follows.
    fn clipped_chunk(&self) -> Option<u64> {
        (self.clipped_end > 0).then(|| (self.clipped_end - 1) / RESERVATION_CHUNK_BYTES)
    }

    /// Marks the chunks `range` covers whole. A chunk clipped by the end of the file is not
    /// marked (a growth extends it past what was reserved): what is reserved of it, from its
    /// start, is remembered in `clipped_end`.
    fn mark(&mut self, range: &Range<u64>, len_bytes: u64) {
        let chunk_bytes = RESERVATION_CHUNK_BYTES;
        let end_bytes = range.end.min(len_bytes);
        // A range that continues what is reserved of the clipped chunk counts from its start.
        let mut start = range.start;
        if let Some(chunk) = self.clipped_chunk() {
            let clipped_chunk_start = chunk * chunk_bytes;
            if (clipped_chunk_start..=self.clipped_end).contains(&start) {
                start = clipped_chunk_start;
            }
        }
        let first = start.div_ceil(chunk_bytes);
        let end = end_bytes / chunk_bytes;
        let tail_start = end * chunk_bytes;
        if end_bytes > tail_start && start <= tail_start {
            self.clipped_end = end_bytes;
        }
        for chunk in first..end {
            let Ok(word) = usize::try_from(chunk / 64) else {
                return;
            };
            if self.words.len() <= word {
                self.words.resize(word + 1, 0);
            }
            self.words[word] |= 1 << (chunk % 64);
        }
    }

    /// Forgets every chunk that reaches `len_bytes` or beyond (the file is cut there).
    fn forget_from(&mut self, len_bytes: u64) {
        let chunk_bytes = RESERVATION_CHUNK_BYTES;
        if self.clipped_end > len_bytes {
            // What stays reserved of the chunk the new end clips: up to the end, if that chunk
            // was reserved whole or is the clipped one; else nothing is known.
            let chunk = len_bytes / chunk_bytes;
            let kept = !len_bytes.is_multiple_of(chunk_bytes)
                && (self.is_marked(chunk) || self.clipped_chunk() == Some(chunk));
            self.clipped_end = if kept { len_bytes } else { 0 };
        }
        let first = len_bytes / chunk_bytes;
        let Ok(word) = usize::try_from(first / 64) else {
            return;
        };
        if word < self.words.len() {
            self.words[word] &= (1u64 << (first % 64)) - 1;
            self.words.truncate(word + 1);
        }
    }
}

/// Reservations above this size check the file system's free space first (one `fstatfs`,
/// `fstatvfs` or `GetDiskFreeSpaceExW`).
const LARGE_RESERVATION_BYTES: u64 = 64 << 20;

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        windows::read_at(file, buf, offset)
    }
}

fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        windows::write_at(file, buf, offset)
    }
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
    let len = usize::try_from(len_bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            "the file is larger than the address space",
        )
    })?;
    // SAFETY: the mapping covers the first `len_bytes` of the file, which is at least that long
    // (its current length, or longer after a growth Windows could not undo), and lives inside
    // `MmapStorage`, which owns the `File` and holds the exclusive lock on it, so no other
    // `MmapStorage` maps the file for writing. Processes that ignore the lock (advisory on Unix)
    // and modify the file concurrently are outside the contract documented on `MmapStorage`.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(file)? };
    Ok(Some(map))
}

/// `error`, from opening `path`, as `IsADirectory` where `path` is a directory: Windows answers
/// `ERROR_ACCESS_DENIED` there, which would send the user after permissions.
fn directory_error(path: &Path, error: io::Error) -> io::Error {
    #[cfg(windows)]
    {
        windows::directory_error(path, error)
    }
    #[cfg(not(windows))]
    {
        let _ = path;
        error
    }
}

fn create_error(path: &Path, error: io::Error) -> MappedPageError {
    MappedPageError::io(IoOperation::Create, Some(path), error)
}

/// The directory a create of `path` works in, and the prefix of its temporary names there:
/// `.<name>.mappedpages-create-`.
fn temp_location(path: &Path) -> Result<(PathBuf, String), MappedPageError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        create_error(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let prefix = format!(".{}.mappedpages-create-", file_name.to_string_lossy());
    Ok((directory, prefix))
}

/// Removes every file in `directory` whose name starts with `prefix` and that no live creator
/// holds: a creator locks its temporary right after creating it and keeps the lock until the name
/// is gone, so a temporary whose lock can be taken is a leftover of a crashed create (SPEC.md
/// §3.1). Best effort: errors only leave the leftover in place, and leftovers never block a create
/// (temporary names are unique).
fn remove_stale_temporaries(directory: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let stale = entry.path();
        let Ok(file) = File::open(&stale) else {
            continue;
        };
        // Held until the name is removed, so a creator that created this name but has not locked
        // it yet finds its lock taken (or its name gone) and moves on to another name.
        if file.try_lock().is_ok() && same_file(&file, &stale) {
            let _ = std::fs::remove_file(&stale);
        }
    }
}

/// Creates and locks a new temporary file `<prefix><pid>-<counter>-<nanos>` in `directory`, never
/// reusing a name: on a collision (another process with the same pid, a leftover, a cleaner holding
/// the name) it tries the next counter value.
fn create_unique_temporary(
    path: &Path,
    directory: &Path,
    prefix: &str,
) -> Result<(File, PathBuf), MappedPageError> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    const ATTEMPTS: u32 = 64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    for _ in 0..ATTEMPTS {
        let counter = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp_path = directory.join(format!(
            "{prefix}{}-{counter}-{nanos:08x}",
            std::process::id()
        ));
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp_path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(create_error(path, error)),
        };
        match file.try_lock() {
            // Still ours: no cleaner took it between the creation and the lock.
            Ok(()) if same_file(&file, &temp_path) => return Ok((file, temp_path)),
            // A cleaner of stale temporaries holds it or removed it already: it removes the name.
            Ok(()) | Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(error)) => {
                let _ = std::fs::remove_file(&temp_path);
                return Err(MappedPageError::io(
                    IoOperation::Lock,
                    Some(&temp_path),
                    error,
                ));
            }
        }
    }
    Err(create_error(
        path,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("no unused temporary name after {ATTEMPTS} attempts"),
        ),
    ))
}

/// True if `path` names the file open as `file` (same device and inode). Without inode numbers
/// (not Unix): true if `path` exists.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

/// Gives the built temporary `temp` the name `path`, failing with `AlreadyExists` if `path`
/// exists. On Unix a hard link (the caller removes the temporary name). On Windows a rename
/// (`MoveFileExW` without replace, write-through): a hard link would leave the temporary's name
/// in place, delete-pending until the pager closes the file, wherever the file system lacks
/// POSIX delete semantics (Windows before 10 1903, FAT, Wine).
fn publish_name(temp: &Path, path: &Path) -> io::Result<()> {
    #[cfg(windows)]
    {
        windows::rename_no_replace(temp, path)
    }
    #[cfg(not(windows))]
    {
        std::fs::hard_link(temp, path)
    }
}

#[cfg(test)]
thread_local! {
    /// Test seam: the next directory sync of a create on this thread fails.
    static FAIL_NEXT_DIRECTORY_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the entries of `directory` durable: `fsync` of the directory; on macOS and iOS
/// `F_FULLFSYNC` of it (falling back to `fsync` where refused), since a Darwin `fsync` leaves the
/// entry in the drive's cache. On Windows nothing: the file was published by a write-through
/// `MoveFileExW`, which returns once the rename is on the disk (SPEC.md §3.1).
fn sync_directory(directory: &Path) -> io::Result<()> {
    #[cfg(test)]
    if FAIL_NEXT_DIRECTORY_SYNC.with(|fail| fail.replace(false)) {
        return Err(io::Error::other("injected directory sync failure"));
    }
    #[cfg(target_vendor = "apple")]
    {
        apple::full_fsync(&File::open(directory)?).map(drop)
    }
    #[cfg(all(unix, not(target_vendor = "apple")))]
    {
        File::open(directory)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        Ok(())
    }
}

impl MmapStorage {
    /// Reservations are made in aligned chunks of this size (clipped to the file): one `fallocate`
    /// serves the next allocations in its chunk, so a durable `alloc` of a new page rarely pays for
    /// a change of the file's block map (on ext4 that is a journal commit in the next barrier). Free
    /// pages inside a reserved chunk hold disk blocks: disk use exceeds what is allocated by less
    /// than one chunk per run of allocated pages (SPEC.md §3.3).
    pub const RESERVATION_CHUNK_BYTES: u64 = 1 << 20;

    /// Opens an existing file for reading and writing, locks it, and maps it.
    pub fn open(path: impl AsRef<Path>) -> Result<MmapStorage, MappedPageError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| {
                MappedPageError::io(IoOperation::Open, Some(path), directory_error(path, e))
            })?;
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
            serial_range_writes: false,
            #[cfg(target_os = "linux")]
            allocate_unsupported: false,
            chunks: ReservedChunks::default(),
        })
    }

    /// Creates a file at `path` atomically: the image produced by `initialize` is built in a
    /// temporary file in the same directory, made durable, linked into place (failing with
    /// [`MappedPageError::AlreadyExists`] if `path` exists), and the directory is synced. A crash
    /// at any point leaves either no file at `path` or the complete image; an error leaves nothing
    /// at `path` (SPEC.md §3.1).
    ///
    /// The temporary file is anonymous where the system supports it (Linux `O_TMPFILE`, linked
    /// with `linkat`), so a crash leaves nothing behind. Elsewhere it is a uniquely named, locked
    /// `.<name>.mappedpages-create-<pid>-<counter>-<nanos>`; leftovers of crashed creates of the
    /// same name (any temporary of that prefix that no live creator has locked) are removed first,
    /// and never block a create. `initialize` runs again if the anonymous file cannot be linked
    /// and the named fallback is used.
    pub(crate) fn create_atomic(
        path: &Path,
        initialize: impl FnMut(&mut MmapStorage) -> Result<(), MappedPageError>,
    ) -> Result<MmapStorage, MappedPageError> {
        Self::create_atomic_with(path, initialize, true)
    }

    /// [`create_atomic`](Self::create_atomic); with `anonymous` false, always through a named
    /// temporary (for tests of that path on systems that have `O_TMPFILE`).
    fn create_atomic_with(
        path: &Path,
        mut initialize: impl FnMut(&mut MmapStorage) -> Result<(), MappedPageError>,
        anonymous: bool,
    ) -> Result<MmapStorage, MappedPageError> {
        if path.exists() {
            return Err(MappedPageError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        let (directory, prefix) = temp_location(path)?;
        remove_stale_temporaries(&directory, &prefix);
        #[cfg(target_os = "linux")]
        if anonymous
            && let Some(storage) = Self::create_anonymous(path, &directory, &mut initialize)?
        {
            return Ok(storage);
        }
        let _ = anonymous;
        Self::create_named(path, &directory, &prefix, &mut initialize)
    }

    /// [`create_atomic`](Self::create_atomic) through an `O_TMPFILE` file. `Ok(None)` when the
    /// file system cannot create or link an anonymous file (the caller falls back to a named
    /// temporary).
    #[cfg(target_os = "linux")]
    fn create_anonymous(
        path: &Path,
        directory: &Path,
        initialize: &mut impl FnMut(&mut MmapStorage) -> Result<(), MappedPageError>,
    ) -> Result<Option<MmapStorage>, MappedPageError> {
        let Some(file) = linux::open_anonymous(directory).map_err(|e| create_error(path, e))?
        else {
            return Ok(None);
        };
        lock_exclusive(&file, path)?;
        let storage = Self::build(file, path, initialize)?;
        match linux::link_anonymous(&storage.file, path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                return Err(MappedPageError::AlreadyExists {
                    path: path.to_path_buf(),
                });
            }
            // Neither `AT_EMPTY_PATH` (needs CAP_DAC_READ_SEARCH on older kernels) nor
            // `/proc/self/fd` works here: build the file again under a name.
            Err(_) => return Ok(None),
        }
        storage.publish(path, directory).map(Some)
    }

    /// [`create_atomic`](Self::create_atomic) through a uniquely named temporary file, locked
    /// from just after its creation until its name is removed.
    fn create_named(
        path: &Path,
        directory: &Path,
        prefix: &str,
        initialize: &mut impl FnMut(&mut MmapStorage) -> Result<(), MappedPageError>,
    ) -> Result<MmapStorage, MappedPageError> {
        let (file, temp_path) = create_unique_temporary(path, directory, prefix)?;
        let result: Result<MmapStorage, MappedPageError> = (|| {
            let storage = Self::build(file, path, initialize)?;
            // Both fail if `path` exists: creation never clobbers a file that appeared after the
            // check above.
            publish_name(&temp_path, path).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    MappedPageError::AlreadyExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    create_error(path, e)
                }
            })?;
            Ok(storage)
        })();
        // The temporary name is removed whether or not creation succeeded (on Windows a
        // successful create renamed it already); the locked handle keeps working on the file
        // through its new name.
        let _ = std::fs::remove_file(&temp_path);
        result?.publish(path, directory)
    }

    /// Maps the new, empty `file` (which the caller locked; locking twice through one handle
    /// fails on Windows), runs `initialize` on it and makes the result durable.
    fn build(
        file: File,
        path: &Path,
        initialize: &mut impl FnMut(&mut MmapStorage) -> Result<(), MappedPageError>,
    ) -> Result<MmapStorage, MappedPageError> {
        let mut storage = Self::from_locked_file(file, path)?;
        initialize(&mut storage)?;
        // Contents, length and allocation durable before the file gets its name: an `fsync` on
        // Linux; elsewhere the mapped pages must be written first (`fsync` alone does not write a
        // view on Windows, nor flush the drive on macOS).
        let steps = create_steps(Platform::CURRENT, storage.len_bytes);
        storage
            .run_steps(&steps)
            .map_err(|e| MappedPageError::io(IoOperation::Sync, Some(path), e))?;
        Ok(storage)
    }

    /// Reserves the blocks of one coalesced range: `fallocate` on Linux, else (or where the file
    /// system has none) [`reserve_by_writing`](Self::reserve_by_writing).
    fn reserve_range(&mut self, range: &Range<u64>) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if !self.allocate_unsupported {
            if linux::allocate(&self.file, range)? {
                return Ok(());
            }
            self.allocate_unsupported = true;
        }
        self.reserve_by_writing(range)
    }

    /// The fallback reservation: every file-system block of `range` is read and its first byte
    /// written back unchanged with `pread`/`pwrite` (never through the map, where a write into a
    /// hole on a full file system raises `SIGBUS`). A hole gets a block, or the write fails with
    /// `ENOSPC`; contents are unchanged.
    fn reserve_by_writing(&mut self, range: &Range<u64>) -> io::Result<()> {
        let block_bytes = self.reservation_block_bytes();
        let mut offset = range.start - range.start % block_bytes;
        while offset < range.end {
            let mut byte = [0u8; 1];
            let at = offset.max(range.start);
            read_at(&self.file, &mut byte, at)?;
            write_at(&self.file, &byte, at)?;
            self.stats.reservation_writes += 1;
            offset += block_bytes;
        }
        Ok(())
    }

    /// The block size the fallback reservation steps by: the file system's preferred I/O size
    /// on Unix (at most one page of the smallest size, so no block is skipped), 512 elsewhere.
    fn reservation_block_bytes(&self) -> u64 {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if let Ok(metadata) = self.file.metadata() {
                let size = metadata.blksize();
                if size.is_power_of_two() {
                    return size.clamp(512, crate::format::MIN_PAGE_SIZE as u64);
                }
            }
        }
        512
    }

    /// Bytes this process may still allocate on the file system holding the file, or `None` if
    /// the system does not say.
    fn available_bytes(&self) -> Option<u64> {
        #[cfg(target_os = "linux")]
        {
            linux::available_bytes(&self.file)
        }
        #[cfg(all(unix, not(target_os = "linux")))]
        {
            other_unix::available_bytes(&self.file)
        }
        #[cfg(windows)]
        {
            let (directory, _) = temp_location(&self.path).ok()?;
            windows::available_bytes(&directory)
        }
        #[cfg(not(any(unix, windows)))]
        {
            None
        }
    }

    /// Uses the fallback reservation (writing a byte per block) even where `fallocate` works,
    /// to test it on any file system.
    #[doc(hidden)]
    pub fn force_reservation_by_writing(&mut self) {
        #[cfg(target_os = "linux")]
        {
            self.allocate_unsupported = true;
        }
    }

    /// Plans one-flush barriers the way this crate did before all writes of a barrier were put
    /// in flight together: each range but the last written and waited for before the next is
    /// started, then `msync(MS_SYNC)` of the last. Equally durable and still one device flush,
    /// only `n` write round trips instead of one (SPEC.md §5); for the benchmark that measures
    /// both plans side by side in one run. No effect where barriers are not one-flush.
    #[doc(hidden)]
    pub fn plan_serial_range_writes(&mut self) {
        self.serial_range_writes = true;
    }

    /// The last step of a create, after the link: makes the directory entry durable. If that
    /// fails, the new name is removed again (it is still this storage's inode: nobody else can
    /// have opened it as a pager, the lock is held), so a failed create leaves nothing at `path`
    /// and a retry can succeed (SPEC.md §3.1).
    fn publish(self, path: &Path, directory: &Path) -> Result<MmapStorage, MappedPageError> {
        match sync_directory(directory) {
            Ok(()) => Ok(self),
            Err(error) => {
                if self.is_file_at(path) {
                    let _ = std::fs::remove_file(path);
                }
                Err(MappedPageError::io(
                    IoOperation::SyncDirectory,
                    Some(directory),
                    error,
                ))
            }
        }
    }

    /// True if `path` names this storage's file (same device and inode; on systems without
    /// inode numbers, true if `path` exists).
    fn is_file_at(&self, path: &Path) -> bool {
        same_file(&self.file, path)
    }

    /// Runs the system calls of a barrier ([`barrier_steps`], [`create_steps`]) in order,
    /// counting them; stops at the first failure. Every step is one this platform plans.
    /// What [`Storage::sync_ranges`] and [`Storage::start_barrier`] share: checks the ranges,
    /// counts the barrier, logs it, and plans its system calls (none for an empty barrier or an
    /// empty file, which has no map).
    fn plan_barrier(&mut self, ranges: &[Range<u64>]) -> io::Result<Vec<BarrierStep>> {
        for range in ranges {
            self.check_range(range)?;
        }
        let merged = coalesce(ranges);
        self.stats.barriers += 1;
        if let Some(log) = self.sync_log.as_mut() {
            log.push(merged.clone());
        }
        if self.map.is_none() || merged.is_empty() {
            return Ok(Vec::new());
        }
        // On Linux, every range: all written together and waited for, without a flush where the
        // last msync's flush covers them (SPEC.md §5), else each its own msync. One range never
        // needs the file system's type.
        let method = match self.method {
            Some(method) => method,
            None if merged.len() == 1 => BarrierMethod::MsyncPerRange,
            None => *self.method.insert(BarrierMethod::for_file(&self.file)),
        };
        let method = match method {
            BarrierMethod::WriteThenFlush if self.serial_range_writes => {
                BarrierMethod::SerialWriteThenFlush
            }
            method => method,
        };
        self.stats.bytes_synced += merged.iter().map(|r| r.end - r.start).sum::<u64>();
        Ok(barrier_steps(Platform::CURRENT, method, &merged))
    }

    fn run_steps(&mut self, steps: &[BarrierStep]) -> io::Result<()> {
        for step in steps {
            match step {
                BarrierStep::StartRangeWrite(range) => {
                    self.stats.range_write_starts += 1;
                    #[cfg(target_os = "linux")]
                    linux::write_range(&self.file, range, false)?;
                    #[cfg(not(target_os = "linux"))]
                    unreachable!("sync_file_range(WRITE) of {range:?} planned off Linux");
                }
                BarrierStep::WriteRange(range) => {
                    self.stats.range_writes += 1;
                    #[cfg(target_os = "linux")]
                    linux::write_range(&self.file, range, true)?;
                    #[cfg(not(target_os = "linux"))]
                    unreachable!("sync_file_range of {range:?} planned off Linux");
                }
                BarrierStep::Msync(range) => {
                    self.stats.msync_calls += 1;
                    // `flush_range` is `msync(MS_SYNC)` on Unix; on Windows it would add a
                    // `FlushFileBuffers` per range, which is why Windows plans `FlushView`.
                    #[cfg(unix)]
                    if let Some(map) = self.map.as_ref() {
                        let (offset, len) = map_span(range)?;
                        map.flush_range(offset, len)?;
                    }
                    #[cfg(not(unix))]
                    unreachable!("msync of {range:?} planned off Unix");
                }
                // The platform-only steps are counted and run in their platform's module.
                BarrierStep::FlushView(range) => {
                    #[cfg(windows)]
                    windows::flush_view(self.map.as_ref(), range, &mut self.stats)?;
                    #[cfg(not(windows))]
                    unreachable!("FlushViewOfFile of {range:?} planned off Windows");
                }
                BarrierStep::FullFsync => {
                    #[cfg(target_vendor = "apple")]
                    apple::counted_full_fsync(&self.file, &mut self.stats)?;
                    #[cfg(not(target_vendor = "apple"))]
                    unreachable!("F_FULLFSYNC planned off macOS and iOS");
                }
                BarrierStep::Fsync => {
                    self.stats.file_flushes += 1;
                    #[cfg(unix)]
                    fsync(&self.file)?;
                    #[cfg(not(unix))]
                    unreachable!("fsync planned off Unix");
                }
                BarrierStep::FlushFileBuffers => {
                    #[cfg(windows)]
                    windows::flush_file_buffers(&self.file, &mut self.stats)?;
                    #[cfg(not(windows))]
                    unreachable!("FlushFileBuffers planned off Windows");
                }
            }
        }
        Ok(())
    }

    /// Durability counters since this storage was opened.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// True when a barrier over several ranges costs one device flush: on Linux with the file on
    /// ext4, xfs, btrfs or tmpfs (every range's write started by `sync_file_range`, all but the
    /// last waited for by it, the last by `msync(MS_SYNC)`), and always off Linux (the ranges
    /// are written, then one whole-file flush: `F_FULLFSYNC`, `FlushFileBuffers` or `fsync`).
    /// False on Linux when every range is its own `msync` (SPEC.md §5).
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

    /// One `statx` of the file's size on Linux (no timestamp asked for, so no inode write per
    /// commit; `linux::len_bytes` says why), one `fstat` elsewhere.
    fn observed_len_bytes(&self) -> io::Result<u64> {
        #[cfg(target_os = "linux")]
        if let Some(result) = linux::len_bytes(&self.file) {
            return result;
        }
        Ok(self.file.metadata()?.len())
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
        #[cfg(target_os = "linux")]
        if let Some(map) = self.map.as_mut() {
            return match linux::extend_map(map, new_len_bytes) {
                Ok(()) => {
                    self.len_bytes = new_len_bytes;
                    Ok(())
                }
                Err(error) => {
                    // `mremap` failed: the old mapping is as it was, and the file goes back to
                    // its length (a shorter mapping of a longer file is harmless either way).
                    let _ = self.file.set_len(old_len);
                    Err(error)
                }
            };
        }
        match map_file(&self.file, new_len_bytes) {
            Ok(map) => {
                self.map = map;
                self.len_bytes = new_len_bytes;
                Ok(())
            }
            Err(error) => {
                // Give the space back; the old length remains what this storage reports either
                // way. Windows refuses to cut a file that has a mapped view
                // (`ERROR_USER_MAPPED_FILE`; Wine even down to the view's length): there the old
                // view goes first and is mapped again (exactly `old_len`, so even a file left
                // longer, which the format allows (SPEC.md §2.1), maps). Should that remap fail,
                // `bytes` is empty while `len_bytes` is not, and the pager poisons itself.
                if self.file.set_len(old_len).is_err() {
                    self.map = None;
                    let _ = self.file.set_len(old_len);
                    self.map = map_file(&self.file, old_len).unwrap_or(None);
                }
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
        let steps = self.plan_barrier(ranges)?;
        self.run_steps(&steps)
    }

    /// On Linux every system call of the barrier runs in `wait`, on a duplicate of the file's
    /// descriptor and the mapping's address (both outlive the borrow of `self`); the counters
    /// count them here. Elsewhere the default: the whole barrier now.
    #[cfg(target_os = "linux")]
    fn start_barrier(&mut self, ranges: &[Range<u64>]) -> io::Result<super::PendingBarrier> {
        let steps = self.plan_barrier(ranges)?;
        let Some(map) = self.map.as_ref().filter(|_| !steps.is_empty()) else {
            return Ok(super::PendingBarrier::complete());
        };
        let mapping = linux::Mapping {
            base: map.as_ptr() as usize,
            len: map.len(),
        };
        let file = self.file.try_clone()?;
        for step in &steps {
            match step {
                BarrierStep::StartRangeWrite(_) => self.stats.range_write_starts += 1,
                BarrierStep::WriteRange(_) => self.stats.range_writes += 1,
                BarrierStep::Msync(_) => self.stats.msync_calls += 1,
                other => unreachable!("{other:?} planned for a barrier on Linux"),
            }
        }
        Ok(super::PendingBarrier::new(move || {
            linux::run_detached(&file, mapping, &steps)
        }))
    }

    fn reserve(&mut self, ranges: &[Range<u64>]) -> io::Result<()> {
        for range in ranges {
            self.check_range(range)?;
        }
        let merged = self.chunks.unreserved(&coalesce(ranges), self.len_bytes);
        let total: u64 = merged.iter().map(|r| r.end - r.start).sum();
        // A request far beyond the free space fails before allocating anything: `fallocate`
        // (or the fallback, a write per block) would fill the file system block by block before
        // giving up.
        if total > LARGE_RESERVATION_BYTES
            && let Some(available) = self.available_bytes()
            && available < total
        {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("only {available} bytes are available"),
            ));
        }
        for range in &merged {
            self.stats.reservations += 1;
            self.stats.bytes_reserved += range.end - range.start;
            self.reserve_range(range)?;
            self.chunks.mark(range, self.len_bytes);
        }
        Ok(())
    }

    fn shrink(&mut self, new_len_bytes: u64) -> io::Result<()> {
        if new_len_bytes > self.len_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "shrink must not extend the file",
            ));
        }
        // The mapping goes first: no byte of it may lie past the end of the file.
        self.map = None;
        self.chunks.forget_from(new_len_bytes);
        self.file.set_len(new_len_bytes)?;
        self.len_bytes = new_len_bytes;
        self.map = map_file(&self.file, new_len_bytes)?;
        Ok(())
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    /// `madvise(MADV_RANDOM)` over the map while `scattered` (a fault reads its page, not a
    /// read-ahead window: on a disk with a large read-ahead, and in the holes of a sparse file,
    /// a window per slot page read was most of a cold open), `MADV_NORMAL` after. On Linux, the
    /// end of the scattered reads also unmaps the pages they faulted in (`MADV_DONTNEED`: one 4
    /// KiB page per bitmap group, 132 MiB of resident memory after opening a file of 2^28 pages
    /// of 1 KiB); they stay in the page cache, and a later access maps them again. Unix only;
    /// an error is ignored (a hint).
    fn advise_scattered_reads(&mut self, scattered: bool) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let advice = if scattered {
                memmap2::Advice::Random
            } else {
                memmap2::Advice::Normal
            };
            let _ = map.advise(advice);
            #[cfg(target_os = "linux")]
            if !scattered {
                // SAFETY: `&mut self` means no slice of the map is borrowed, so no reference
                // observes the unmapping. The map is a shared mapping of the file (`map_mut`):
                // on Linux, MADV_DONTNEED drops its page table entries only (a dirty entry marks
                // its page cache page dirty first), and the next access maps the same page cache
                // page again, holding the file's bytes. Nothing is zeroed or lost, unlike for a
                // private or anonymous mapping.
                let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            }
        }
        #[cfg(not(unix))]
        let _ = scattered;
    }

    /// `madvise(MADV_WILLNEED)` per range (inside the map): the kernel starts reading each one
    /// and returns, so the device has them all in flight at once. Unix only; an error is ignored.
    fn prefetch(&self, ranges: &[Range<u64>]) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            for (start, len) in advised_spans(ranges, map.len()) {
                let _ = map.advise_range(memmap2::Advice::WillNeed, start, len);
            }
        }
        #[cfg(not(unix))]
        let _ = ranges;
    }

    /// `madvise(MADV_POPULATE_WRITE)` per range (inside the map; Linux 5.14 and later): each
    /// page's write fault is taken now, as if it were written, without writing it, so the
    /// pager's writes that follow find their pages mapped writable. The page cache marks the
    /// pages dirty: their unchanged bytes may be written back, which any dirty page's may be at
    /// any time anyway (SPEC.md §5). Other systems, and an error (an older kernel, a full
    /// disk: the write itself then reports it), do nothing.
    fn prepare_writes(&self, ranges: &[Range<u64>]) {
        #[cfg(target_os = "linux")]
        if let Some(map) = &self.map {
            for (start, len) in advised_spans(ranges, map.len()) {
                let _ = map.advise_range(memmap2::Advice::PopulateWrite, start, len);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = ranges;
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.stats.barriers += 1;
        if let Some(log) = self.sync_log.as_mut() {
            log.push(vec![0..self.len_bytes]);
        }
        if self.map.is_none() {
            return Ok(());
        }
        self.stats.bytes_synced += self.len_bytes;
        let steps = barrier_steps(
            Platform::CURRENT,
            BarrierMethod::MsyncPerRange,
            &[0..self.len_bytes],
        );
        self.run_steps(&steps)
    }
}

/// The `(start, len)` in a map of `map_len` bytes of each of `ranges` that is non-empty and lies
/// inside it, for the advice calls (`prefetch`, `prepare_writes`): an inverted, empty or
/// out-of-map range is skipped, never clipped. Pure.
#[cfg(unix)]
fn advised_spans(
    ranges: &[Range<u64>],
    map_len: usize,
) -> impl Iterator<Item = (usize, usize)> + '_ {
    ranges.iter().filter_map(move |range| {
        let start = usize::try_from(range.start).ok()?;
        let end = usize::try_from(range.end).ok()?;
        let len = end.checked_sub(start).filter(|&len| len > 0)?;
        (end <= map_len).then_some((start, len))
    })
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

    /// Growth keeps every byte written through the map and maps the new pages as zeros, however
    /// often it grows (on Linux the map is extended with `mremap`, which may move it; another
    /// mapping in the way makes it move); after a barrier over the whole file, the file holds
    /// what the map showed.
    #[test]
    #[cfg_attr(miri, ignore = "mmap is not supported under Miri")]
    fn growth_keeps_the_bytes_written_and_maps_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 1);
        let mut expected = vec![0u8; PAGE as usize];
        let mut blockers = Vec::new();
        for round in 0..6u8 {
            for page in 0..expected.len() / PAGE as usize {
                let at = page * PAGE as usize + usize::from(round);
                storage.bytes_mut()[at] = round + 1;
                expected[at] = round + 1;
            }
            // Something mapped near the map (the kernel often puts it right after), so that an
            // extension in place is sometimes impossible and the map must move.
            blockers.push(memmap2::MmapMut::map_anon(PAGE as usize).unwrap());
            let new_len = expected.len() * 3;
            storage.grow(new_len as u64).unwrap();
            expected.resize(new_len, 0);
            assert_eq!(storage.len_bytes(), new_len as u64);
            assert!(storage.bytes() == &expected[..], "round {round}");
        }
        storage.sync_ranges(&[0..expected.len() as u64]).unwrap();
        let on_disk = std::fs::read(dir.path().join("storage.bin")).unwrap();
        assert!(on_disk == expected, "the file holds what the map showed");
    }

    #[cfg(unix)]
    #[test]
    fn advice_skips_inverted_empty_and_outside_ranges() {
        #[allow(clippy::reversed_empty_ranges, reason = "an inverted range is skipped")]
        let ranges = [0..10, 5..5, 9..3, 90..100, 95..101, u64::MAX - 1..u64::MAX];
        let spans: Vec<_> = advised_spans(&ranges, 100).collect();
        assert_eq!(spans, vec![(0, 10), (90, 10)]);
    }

    /// Minor page faults the calling thread has taken so far.
    #[cfg(target_os = "linux")]
    fn thread_minor_faults() -> i64 {
        // SAFETY: `getrusage` writes one `rusage` into the zeroed value it is given and reads
        // nothing else; `RUSAGE_THREAD` is valid on Linux.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
            usage
        };
        usage.ru_minflt
    }

    /// `prepare_writes` takes a page's write fault without changing it: a page cleaned by a
    /// barrier (write-protected) and a page never touched are then written without a fault, and
    /// their bytes are as before. Ranges outside the map, inverted or empty, are ignored.
    #[cfg(target_os = "linux")]
    #[test]
    #[cfg_attr(miri, ignore = "mmap is not supported under Miri")]
    fn prepared_pages_are_written_without_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 4);
        storage.bytes_mut()[PAGE as usize] = 7;
        storage.sync_ranges(&[PAGE..2 * PAGE]).unwrap();
        let (cleaned, untouched) = (PAGE as usize, 2 * PAGE as usize);

        let before = thread_minor_faults();
        storage.bytes_mut()[cleaned] = 8;
        assert!(
            thread_minor_faults() > before,
            "a page cleaned by msync is write-protected: the first write faults"
        );
        storage.sync_ranges(&[PAGE..2 * PAGE]).unwrap();

        #[allow(clippy::reversed_empty_ranges, reason = "an inverted range is ignored")]
        let inverted = 3 * PAGE..2 * PAGE;
        storage.prepare_writes(&[PAGE..3 * PAGE, inverted, 0..0, 0..100 * PAGE]);
        assert_eq!(
            storage.bytes()[cleaned],
            8,
            "prepare_writes changes no byte"
        );
        assert_eq!(
            storage.bytes()[untouched],
            0,
            "prepare_writes changes no byte"
        );
        let before = thread_minor_faults();
        storage.bytes_mut()[cleaned] = 9;
        storage.bytes_mut()[untouched] = 1;
        assert_eq!(
            thread_minor_faults(),
            before,
            "the prepared pages were mapped writable ahead of the writes"
        );
    }

    /// A barrier started and waited for apart (`start_barrier`, `SharedPager`'s way) runs its
    /// system calls on the map's own pages, also for a range that starts inside a system page
    /// (the `msync` in `wait` asserts that its address range lies inside the map), and the
    /// counters count them. (What a barrier leaves dirty is `tests/barrier_pages.rs`'s.)
    #[cfg(target_os = "linux")]
    #[test]
    #[cfg_attr(miri, ignore = "mmap is not supported under Miri")]
    fn a_detached_barrier_syncs_inside_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 8);
        for page in [1u64, 5, 6, 7] {
            storage.bytes_mut()[(page * PAGE + 9) as usize] = 0xA5;
        }
        let before = storage.stats();
        let ranges = [
            PAGE..2 * PAGE,
            5 * PAGE + 100..7 * PAGE,
            7 * PAGE + 9..8 * PAGE,
        ];
        storage.start_barrier(&ranges).unwrap().wait().unwrap();
        let after = storage.stats();
        assert!(
            after.msync_calls + after.file_flushes > before.msync_calls + before.file_flushes,
            "{before:?} -> {after:?}"
        );
    }

    /// The access hints change no byte: written, unsynced bytes read back after the end of the
    /// scattered reads unmapped them (Linux), reach the file with the next barrier, and a
    /// prefetch of any range (also past the end) is harmless.
    #[test]
    #[cfg_attr(miri, ignore = "mmap is not supported under Miri")]
    fn access_hints_keep_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 8);
        storage.advise_scattered_reads(true);
        #[allow(clippy::reversed_empty_ranges)] // an empty range is part of what is tested
        let ranges = [0..PAGE, 3 * PAGE..5 * PAGE, 7 * PAGE..9 * PAGE, 5..3];
        storage.prefetch(&ranges);
        for page in 0..8u64 {
            storage.bytes_mut()[(page * PAGE + 17) as usize] = page as u8 + 1;
        }
        storage.advise_scattered_reads(false);
        for page in 0..8u64 {
            assert_eq!(storage.bytes()[(page * PAGE + 17) as usize], page as u8 + 1);
        }
        storage.sync_ranges(&[0..8 * PAGE]).unwrap();
        let path = dir.path().join("storage.bin");
        drop(storage);
        let bytes = std::fs::read(path).unwrap();
        for page in 0..8u64 {
            assert_eq!(bytes[(page * PAGE + 17) as usize], page as u8 + 1);
        }
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
        // [msync, range write starts, range writes, view flushes, file flushes]
        let calls = |stats: &SyncStats| {
            [
                stats.msync_calls,
                stats.range_write_starts,
                stats.range_writes,
                stats.view_flushes,
                stats.file_flushes,
            ]
        };
        let since = |now: [u64; 5], then: [u64; 5]| -> [u64; 5] {
            std::array::from_fn(|index| now[index] - then[index])
        };
        // All three writes started, the first two waited for, the last msync'ed.
        let expected = match Platform::CURRENT {
            Platform::Linux if storage.one_flush_barriers() => [1, 3, 2, 0, 0],
            Platform::Linux => [3, 0, 0, 0, 0],
            Platform::Windows => [0, 0, 0, 3, 1],
            Platform::Apple | Platform::OtherUnix => [3, 0, 0, 0, 1],
        };
        assert_eq!(calls(&stats), expected);
        assert!(storage.one_flush_barriers() || Platform::CURRENT == Platform::Linux);
        // One range: one write of it, never a range write; off Linux one whole-file flush.
        storage.sync_ranges(&[2 * PAGE..3 * PAGE]).unwrap();
        let after_one = storage.stats();
        let expected_one = match Platform::CURRENT {
            Platform::Linux => [1, 0, 0, 0, 0],
            Platform::Windows => [0, 0, 0, 1, 1],
            Platform::Apple | Platform::OtherUnix => [1, 0, 0, 0, 1],
        };
        assert_eq!(since(calls(&after_one), calls(&stats)), expected_one);
        // The serial plan (for the benchmark): no write started ahead, the rest alike.
        storage.plan_serial_range_writes();
        for page in [0, 3, 6] {
            storage.bytes_mut()[(page * PAGE) as usize] += 10;
        }
        storage
            .sync_ranges(&[0..PAGE, 3 * PAGE..4 * PAGE, 6 * PAGE..7 * PAGE])
            .unwrap();
        let after_serial = storage.stats();
        let expected_serial = match Platform::CURRENT {
            Platform::Linux if storage.one_flush_barriers() => [1, 0, 2, 0, 0],
            _ => expected,
        };
        assert_eq!(
            since(calls(&after_serial), calls(&after_one)),
            expected_serial
        );
        assert_eq!(after_serial.full_fsync_fallbacks, 0);
        storage.sync_all().unwrap();
        assert_eq!(storage.stats().bytes_synced, 8 * PAGE + 8 * PAGE);
        assert_eq!(storage.stats().barriers, 4);
        // Closed first: Windows refuses other handles' reads of a locked file.
        drop(storage);
        let on_disk = std::fs::read(dir.path().join("storage.bin")).unwrap();
        assert_eq!(on_disk[(6 * PAGE) as usize], 17);
        assert_eq!(on_disk[(3 * PAGE) as usize], 14);
        assert_eq!(on_disk[PAGE as usize], 2);
    }

    /// The system calls of a barrier over three ranges, per platform: the sequence each OS needs
    /// for a real flush (SPEC.md §5), checked on any build machine.
    #[test]
    fn every_platform_plans_its_own_flush() {
        use BarrierMethod::*;
        use BarrierStep::*;
        let ranges = [0..PAGE, 3 * PAGE..4 * PAGE, 6 * PAGE..8 * PAGE];
        let [a, b, c] = ranges.clone();
        // Linux on ext4/xfs/btrfs/tmpfs: every write started (all in flight together), the
        // first two waited for, the last msync waits for its own and flushes once.
        assert_eq!(
            barrier_steps(Platform::Linux, WriteThenFlush, &ranges),
            vec![
                StartRangeWrite(a.clone()),
                StartRangeWrite(b.clone()),
                StartRangeWrite(c.clone()),
                WriteRange(a.clone()),
                WriteRange(b.clone()),
                Msync(c.clone())
            ]
        );
        // The serial plan kept for the benchmark: each write waited for before the next.
        assert_eq!(
            barrier_steps(Platform::Linux, SerialWriteThenFlush, &ranges),
            vec![
                WriteRange(a.clone()),
                WriteRange(b.clone()),
                Msync(c.clone())
            ]
        );
        // Linux elsewhere: each range its own msync (each its own flush).
        for method in [MsyncPerRange, FlushFile] {
            assert_eq!(
                barrier_steps(Platform::Linux, method, &ranges),
                vec![Msync(a.clone()), Msync(b.clone()), Msync(c.clone())]
            );
        }
        // macOS and iOS: msync writes the ranges, F_FULLFSYNC flushes the drive; the Linux
        // method changes nothing.
        let every_method = [
            MsyncPerRange,
            WriteThenFlush,
            SerialWriteThenFlush,
            FlushFile,
        ];
        for method in every_method {
            assert_eq!(
                barrier_steps(Platform::Apple, method, &ranges),
                vec![
                    Msync(a.clone()),
                    Msync(b.clone()),
                    Msync(c.clone()),
                    FullFsync
                ]
            );
            assert_eq!(
                barrier_steps(Platform::Windows, method, &ranges),
                vec![
                    FlushView(a.clone()),
                    FlushView(b.clone()),
                    FlushView(c.clone()),
                    FlushFileBuffers
                ]
            );
            assert_eq!(
                barrier_steps(Platform::OtherUnix, method, &ranges),
                vec![Msync(a.clone()), Msync(b.clone()), Msync(c.clone()), Fsync]
            );
        }
        // One range: its msync alone on Linux, whatever the method; and no ranges, no calls.
        for method in every_method {
            assert_eq!(
                barrier_steps(Platform::Linux, method, std::slice::from_ref(&a)),
                vec![Msync(a.clone())]
            );
        }
        assert_eq!(
            barrier_steps(Platform::Apple, MsyncPerRange, std::slice::from_ref(&a)),
            vec![Msync(a.clone()), FullFsync]
        );
        for platform in [
            Platform::Linux,
            Platform::Apple,
            Platform::Windows,
            Platform::OtherUnix,
        ] {
            for method in every_method {
                assert_eq!(barrier_steps(platform, method, &[]), vec![], "{platform:?}");
            }
        }
    }

    /// A created file is made durable before it is named: contents, length and allocation.
    #[test]
    fn every_platform_plans_a_durable_create() {
        use BarrierStep::*;
        let len = 2 * PAGE;
        assert_eq!(create_steps(Platform::Linux, len), vec![Fsync]);
        assert_eq!(
            create_steps(Platform::Apple, len),
            vec![Msync(0..len), FullFsync]
        );
        assert_eq!(
            create_steps(Platform::Windows, len),
            vec![FlushView(0..len), FlushFileBuffers]
        );
        assert_eq!(
            create_steps(Platform::OtherUnix, len),
            vec![Msync(0..len), Fsync]
        );
        // An empty file has no view to write, only its metadata.
        assert_eq!(create_steps(Platform::Linux, 0), vec![Fsync]);
        assert_eq!(create_steps(Platform::Apple, 0), vec![FullFsync]);
        assert_eq!(create_steps(Platform::Windows, 0), vec![FlushFileBuffers]);
        assert_eq!(create_steps(Platform::OtherUnix, 0), vec![Fsync]);
    }

    /// `F_FULLFSYNC` falls back to `fsync` only when the file system does not support it, never
    /// on an I/O error (an `fsync` after a failed flush could report pages the flush dropped as
    /// durable).
    #[cfg(unix)]
    #[test]
    fn full_fsync_falls_back_only_when_refused() {
        for code in [libc::ENOTSUP, libc::EOPNOTSUPP, libc::EINVAL, libc::ENOTTY] {
            assert!(
                full_fsync_refused(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        for code in [libc::EIO, libc::ENOSPC, libc::EBADF, libc::EINTR] {
            assert!(
                !full_fsync_refused(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        assert!(!full_fsync_refused(&io::Error::other("no errno")));
    }

    /// The publish step of a named create never replaces a file, and works on a temporary that
    /// is open, locked and mapped (as the creator's is); on Windows it is a rename, so the
    /// temporary's name is gone at once.
    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn publishing_never_replaces_and_works_on_an_open_mapped_file() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join(".db.bin.mappedpages-create-1-2-3");
        let path = dir.path().join("db.bin");
        std::fs::write(&path, b"someone else's").unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .unwrap();
        lock_exclusive(&file, &temp).unwrap();
        let mut storage = MmapStorage::from_locked_file(file, &temp).unwrap();
        two_pages(&mut storage).unwrap();
        let error = publish_name(&temp, &path).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
        assert!(temp.exists());
        std::fs::remove_file(&path).unwrap();
        publish_name(&temp, &path).unwrap();
        assert_eq!(temp.exists(), cfg!(not(windows)));
        storage.sync_all().unwrap();
        drop(storage);
        assert_eq!(std::fs::read(&path).unwrap()[0], 0x5A);
    }

    #[test]
    fn reservations_round_out_to_chunks_and_skip_reserved_ones() {
        const C: u64 = RESERVATION_CHUNK_BYTES;
        let mut chunks = ReservedChunks::default();
        let len = 3 * C + 4096;
        // Rounded out to whole chunks, neighbours merged, the last one clipped to the file.
        assert_eq!(
            chunks.unreserved(&[10..20, C + 5..C + 6, 3 * C..3 * C + 10], len),
            vec![0..2 * C, 3 * C..len]
        );
        chunks.mark(&(0..2 * C), len);
        chunks.mark(&(3 * C..len), len);
        assert!(chunks.is_marked(0) && chunks.is_marked(1));
        assert!(
            !chunks.is_marked(3),
            "a chunk clipped by the end of the file is not whole"
        );
        assert_eq!(
            chunks.unreserved(&[100..C + 1], len),
            Vec::<Range<u64>>::new()
        );
        // The clipped chunk is reserved up to the old end: a growth asks only for the rest.
        assert_eq!(chunks.unreserved(&[C..3 * C + 1], len), vec![2 * C..3 * C]);
        assert_eq!(
            chunks.unreserved(&[3 * C + 100..3 * C + 200], len),
            Vec::<Range<u64>>::new()
        );
        let grown = len + 8192;
        assert_eq!(
            chunks.unreserved(&[3 * C + 100..3 * C + 200], grown),
            vec![len..grown],
            "rounded out to the chunk, of which only the part past the old end is new"
        );
        chunks.mark(&(len..grown), grown);
        assert_eq!(
            chunks.unreserved(&[3 * C..grown], grown),
            Vec::<Range<u64>>::new()
        );
        assert_eq!(
            chunks.unreserved(&[2 * C..2 * C + 1], grown),
            vec![2 * C..3 * C],
            "continuing the clipped chunk marks nothing before it"
        );
        // Reserved in pieces as the file grew, a chunk becomes whole when the last piece lands.
        let mut pieces = ReservedChunks::default();
        for len in [C / 4, C / 2, C] {
            let asked = pieces.unreserved(&[0..len], len);
            assert_eq!(asked, vec![len / 2 * u64::from(len > C / 4)..len], "{len}");
            pieces.mark(&asked[0], len);
        }
        assert!(pieces.is_marked(0));
        assert_eq!(pieces.unreserved(&[0..C], 2 * C), Vec::<Range<u64>>::new());
        // Cut inside a chunk reserved whole: its part below the cut stays reserved.
        chunks.forget_from(C + 7);
        assert!(chunks.is_marked(0) && !chunks.is_marked(1));
        assert_eq!(
            chunks.unreserved(&[0..C + 7], C + 7),
            Vec::<Range<u64>>::new()
        );
        assert_eq!(
            chunks.unreserved(&[0..C + 9], C + 4096),
            vec![C + 7..C + 4096]
        );
        // Cut inside a chunk never reserved: nothing of it is.
        let mut fresh = ReservedChunks::default();
        fresh.mark(&(3 * C..len), len);
        fresh.forget_from(C + 7);
        assert_eq!(fresh.unreserved(&[C..C + 7], C + 7), vec![C..C + 7]);
        // Cut inside the clipped chunk: what is left of it stays reserved.
        let mut clipped = ReservedChunks::default();
        clipped.mark(&(3 * C..len), len);
        clipped.forget_from(3 * C + 100);
        assert_eq!(
            clipped.unreserved(&[3 * C..3 * C + 100], 3 * C + 100),
            Vec::<Range<u64>>::new()
        );
        assert_eq!(
            clipped.unreserved(&[3 * C..3 * C + 200], 3 * C + 200),
            vec![3 * C + 100..3 * C + 200]
        );
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

    #[test]
    #[cfg_attr(miri, ignore = "mmap and fstatfs are not supported under Miri")]
    fn an_inverted_range_fails_and_an_empty_one_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 2);
        #[allow(clippy::reversed_empty_ranges)]
        let inverted = PAGE + 1..PAGE;
        let error = storage.sync_ranges(&[inverted]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        storage.sync_ranges(&[PAGE..PAGE]).unwrap();
        storage.sync_ranges(&[2 * PAGE..2 * PAGE]).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap and fstatfs are not supported under Miri")]
    fn shrink_never_extends_and_to_the_same_length_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 2);
        let error = storage.shrink(3 * PAGE).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(storage.len_bytes(), 2 * PAGE);
        storage.shrink(2 * PAGE).unwrap();
        assert_eq!(storage.len_bytes(), 2 * PAGE);
        storage.shrink(PAGE).unwrap();
        assert_eq!(storage.len_bytes(), PAGE);
        assert_eq!(
            std::fs::metadata(dir.path().join("storage.bin"))
                .unwrap()
                .len(),
            PAGE
        );
    }

    /// A create whose temporary cannot be made (here: the directory is missing) fails with that
    /// error at once, whichever way it creates; only a name already taken is retried.
    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn a_create_in_a_missing_directory_fails_without_retrying() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("file.bin");
        for anonymous in WAYS {
            match MmapStorage::create_atomic_with(&path, two_pages, anonymous) {
                Err(MappedPageError::Io { source, .. }) => {
                    assert_eq!(source.kind(), io::ErrorKind::NotFound, "{anonymous}");
                }
                other => panic!("expected Io {{ NotFound }}, got {other:?}"),
            }
        }
    }

    /// A 2-page image: enough for the create tests, which exercise the file handling, not the
    /// pager's format.
    fn two_pages(storage: &mut MmapStorage) -> Result<(), MappedPageError> {
        storage
            .grow(2 * PAGE)
            .map_err(|e| MappedPageError::io(IoOperation::Grow, None, e))?;
        storage.bytes_mut()[0] = 0x5A;
        Ok(())
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".mappedpages-create-"))
            .collect()
    }

    /// Both ways of creating: anonymous (where supported) and named.
    const WAYS: [bool; 2] = [true, false];

    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn where_o_tmpfile_works_create_uses_an_anonymous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anon.bin");
        let (directory, _) = temp_location(&path).unwrap();
        #[cfg(target_os = "linux")]
        match MmapStorage::create_anonymous(&path, &directory, &mut two_pages).unwrap() {
            Some(storage) => {
                assert_eq!(storage.len_bytes(), 2 * PAGE);
                assert_eq!(std::fs::read(&path).unwrap()[0], 0x5A);
                // The create's own flush (its plan: one `fsync` on Linux), counted.
                let stats = storage.stats();
                assert_eq!((stats.file_flushes, stats.barriers), (1, 0), "{stats:?}");
            }
            // ext2-4, xfs, btrfs and tmpfs (the one-flush list) all have O_TMPFILE: there, an
            // anonymous create that gives up is a regression, not a skip.
            None => {
                let directory_file = File::open(&directory).unwrap();
                assert!(
                    !linux::supports_one_flush(&directory_file),
                    "O_TMPFILE create refused on a file system that supports it"
                );
                eprintln!("SKIPPED: O_TMPFILE is not supported by the file system here");
            }
        }
        #[cfg(not(target_os = "linux"))]
        eprintln!("SKIPPED: O_TMPFILE is Linux-only; creates here use a named temporary");
        let _ = directory;
    }

    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn stale_temporaries_never_block_a_create_and_unlocked_ones_are_removed() {
        for anonymous in WAYS {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.bin");
            let pid = std::process::id();
            // The exact name this process used before (`-<pid>`), pid 1, and new-style names.
            let stale = [
                format!(".db.bin.mappedpages-create-{pid}"),
                ".db.bin.mappedpages-create-1".to_string(),
                format!(".db.bin.mappedpages-create-{pid}-0-00000000"),
                format!(".db.bin.mappedpages-create-{pid}-1-deadbeef"),
            ];
            for name in &stale {
                std::fs::write(dir.path().join(name), b"half-built").unwrap();
            }
            // A temporary a live creator holds (locked) is left alone; another target's too.
            let live_name = format!(".db.bin.mappedpages-create-{pid}-99-00000001");
            let live = File::create(dir.path().join(&live_name)).unwrap();
            live.lock().unwrap();
            let other_target = ".other.bin.mappedpages-create-7";
            std::fs::write(dir.path().join(other_target), b"x").unwrap();

            let storage = MmapStorage::create_atomic_with(&path, two_pages, anonymous).unwrap();
            assert_eq!(storage.len_bytes(), 2 * PAGE, "anonymous {anonymous}");
            let mut left = leftovers(dir.path());
            left.sort();
            let mut expected = vec![live_name.clone(), other_target.to_string()];
            expected.sort();
            assert_eq!(left, expected, "anonymous {anonymous}");
            drop(live);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn racing_creates_have_one_winner_and_already_exists_for_every_loser() {
        const THREADS: usize = 4;
        for anonymous in WAYS {
            let dir = tempfile::tempdir().unwrap();
            for round in 0..50 {
                let path = dir.path().join(format!("race-{round}.bin"));
                let barrier = std::sync::Barrier::new(THREADS);
                let results: Vec<_> = std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..THREADS)
                        .map(|_| {
                            scope.spawn(|| {
                                barrier.wait();
                                MmapStorage::create_atomic_with(&path, two_pages, anonymous)
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                let winners = results.iter().filter(|r| r.is_ok()).count();
                assert_eq!(
                    winners, 1,
                    "anonymous {anonymous} round {round}: {results:?}"
                );
                for result in &results {
                    match result {
                        Ok(_) | Err(MappedPageError::AlreadyExists { .. }) => {}
                        Err(other) => {
                            panic!("anonymous {anonymous} round {round}: loser got {other:?}")
                        }
                    }
                }
            }
            assert!(leftovers(dir.path()).is_empty(), "anonymous {anonymous}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn a_failed_directory_sync_leaves_nothing_at_the_path_and_a_retry_succeeds() {
        for anonymous in WAYS {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.bin");
            FAIL_NEXT_DIRECTORY_SYNC.with(|fail| fail.set(true));
            match MmapStorage::create_atomic_with(&path, two_pages, anonymous) {
                Err(MappedPageError::Io {
                    operation: IoOperation::SyncDirectory,
                    ..
                }) => {}
                other => {
                    panic!("anonymous {anonymous}: expected Io {{ SyncDirectory }}, got {other:?}")
                }
            }
            assert!(!path.exists(), "anonymous {anonymous}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            let storage = MmapStorage::create_atomic_with(&path, two_pages, anonymous).unwrap();
            assert_eq!(storage.len_bytes(), 2 * PAGE);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn a_failed_initialization_leaves_nothing_behind() {
        for anonymous in WAYS {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.bin");
            let result = MmapStorage::create_atomic_with(
                &path,
                |storage| {
                    two_pages(storage)?;
                    Err(MappedPageError::io(
                        IoOperation::Sync,
                        None,
                        io::Error::other("injected"),
                    ))
                },
                anonymous,
            );
            assert!(
                matches!(
                    result,
                    Err(MappedPageError::Io {
                        operation: IoOperation::Sync,
                        ..
                    })
                ),
                "anonymous {anonymous}: {result:?}"
            );
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    /// Runs `work` on a new thread and returns its result: for the tests that change their own
    /// thread's capabilities, mount namespace or seccomp filter, which no other test may share.
    #[cfg(target_os = "linux")]
    fn on_a_thread_of_its_own<T: Send>(work: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| scope.spawn(work).join().unwrap())
    }

    /// An `O_TMPFILE` file in `directory` holding `bytes`; `None` (with a SKIPPED line) where
    /// the file system has no `O_TMPFILE`.
    #[cfg(target_os = "linux")]
    fn anonymous_file_holding(directory: &Path, bytes: &[u8]) -> Option<File> {
        use std::io::Write;
        let Some(mut file) = linux::open_anonymous(directory).unwrap() else {
            eprintln!("SKIPPED: O_TMPFILE is not supported by the file system here");
            return None;
        };
        file.write_all(bytes).unwrap();
        Some(file)
    }

    /// The `/proc/self/fd` link, which `create` uses where `AT_EMPTY_PATH` needs a capability
    /// (kernels before 6.10 without CAP_DAC_READ_SEARCH); tested directly because this kernel may
    /// not need it.
    #[cfg(target_os = "linux")]
    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn an_anonymous_file_links_through_proc_and_never_replaces() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let Some(file) = anonymous_file_holding(dir.path(), b"anonymous") else {
            return;
        };
        let path = dir.path().join("named.bin");
        let target = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        if !Path::new("/proc/self/fd").exists() {
            eprintln!("SKIPPED: no /proc/self/fd");
            return;
        }
        linux::link_through_proc(&file, &target).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"anonymous");
        let again = linux::link_through_proc(&file, &target).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        let other = linux::link_anonymous(&file, &path).unwrap_err();
        assert_eq!(other.kind(), io::ErrorKind::AlreadyExists);
    }

    /// `same_file` tells the file open as `file` from another file and from a missing name: the
    /// stale-temporary cleaner and the create race both rely on a `false` for a name that now
    /// names another file.
    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn same_file_is_true_only_for_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let (one, other) = (dir.path().join("one"), dir.path().join("other"));
        std::fs::write(&one, b"1").unwrap();
        std::fs::write(&other, b"2").unwrap();
        let file = File::open(&one).unwrap();
        assert!(same_file(&file, &one));
        assert!(!same_file(&file, &dir.path().join("missing")));
        if cfg!(unix) {
            assert!(!same_file(&file, &other), "another file is not this one");
            std::fs::remove_file(&one).unwrap();
            std::fs::rename(&other, &one).unwrap();
            assert!(!same_file(&file, &one), "the name now names another file");
        }
    }

    /// Off Windows an error is passed on as it is, whatever the path names; on Windows only a
    /// refused open of a directory becomes `IsADirectory`.
    #[test]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn directory_error_changes_only_a_refusal_of_a_directory_on_windows() {
        let dir = tempfile::tempdir().unwrap();
        let kind_for = |path: &Path, kind: io::ErrorKind| directory_error(path, kind.into()).kind();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let refused = io::ErrorKind::PermissionDenied;
        let expected = if cfg!(windows) {
            io::ErrorKind::IsADirectory
        } else {
            refused
        };
        assert_eq!(kind_for(dir.path(), refused), expected);
        assert_eq!(kind_for(&file, refused), refused);
        assert_eq!(
            kind_for(dir.path(), io::ErrorKind::NotFound),
            io::ErrorKind::NotFound
        );
    }

    /// The ranges of every barrier, coalesced, once recording is on; `sync_all` records the file.
    #[test]
    #[cfg_attr(miri, ignore = "mmap is not supported under Miri")]
    fn the_sync_log_records_each_barrier_coalesced() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 8);
        storage.sync_ranges(&[0..PAGE]).unwrap();
        assert!(
            storage.sync_log().is_empty(),
            "nothing recorded before record_syncs"
        );
        storage.record_syncs();
        storage
            .sync_ranges(&[4 * PAGE..5 * PAGE, 0..PAGE, PAGE..2 * PAGE])
            .unwrap();
        storage.sync_all().unwrap();
        assert_eq!(
            storage.sync_log(),
            [vec![0..2 * PAGE, 4 * PAGE..5 * PAGE], vec![0..8 * PAGE]]
        );
    }

    /// Bytes of this process's mapping at `address` that are mapped in (`Rss` in
    /// `/proc/self/smaps`), or `None` where there is no such file.
    #[cfg(target_os = "linux")]
    fn resident_bytes_of_mapping(address: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-')
                && let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                )
            {
                inside = (start..end).contains(&address);
            } else if inside && let Some(rest) = line.strip_prefix("Rss:") {
                let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                return Some(kib * 1024);
            }
        }
        None
    }

    /// Scattered reads keep what they faulted in mapped while they last (`MADV_RANDOM` only
    /// changes read-ahead), and their end unmaps it (`MADV_DONTNEED`): the resident memory of
    /// an open comes back to nothing.
    #[test]
    #[cfg(target_os = "linux")]
    #[cfg_attr(miri, ignore = "mmap is not supported under Miri")]
    fn the_end_of_scattered_reads_unmaps_what_they_faulted_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 64);
        let address = storage.bytes().as_ptr() as usize;
        let Some(before) = resident_bytes_of_mapping(address) else {
            eprintln!("SKIPPED: no /proc/self/smaps");
            return;
        };
        assert_eq!(before, 0, "nothing is mapped in before the first access");
        storage.advise_scattered_reads(true);
        for page in 0..64u64 {
            storage.bytes_mut()[(page * PAGE) as usize] = 1;
        }
        assert_eq!(resident_bytes_of_mapping(address), Some(64 * PAGE));
        storage.advise_scattered_reads(true);
        assert_eq!(
            resident_bytes_of_mapping(address),
            Some(64 * PAGE),
            "the start of scattered reads unmaps nothing"
        );
        storage.advise_scattered_reads(false);
        assert_eq!(resident_bytes_of_mapping(address), Some(0));
        assert!((0..64u64).all(|page| storage.bytes()[(page * PAGE) as usize] == 1));
    }

    /// Which pages of `storage`'s file are in the page cache (`mincore` over the map).
    #[cfg(target_os = "linux")]
    fn cached_pages(storage: &MmapStorage) -> Vec<bool> {
        let bytes = storage.bytes();
        // SAFETY: sysconf has no preconditions.
        let os_page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        assert_eq!(os_page as u64, PAGE, "the test assumes 4 KiB pages");
        let mut vector = vec![0u8; bytes.len().div_ceil(os_page)];
        // SAFETY: the range is the whole map (page-aligned start, a length inside it) and
        // `vector` has one byte per page of it, as mincore(2) requires.
        let result = unsafe {
            libc::mincore(
                bytes.as_ptr() as *mut libc::c_void,
                bytes.len(),
                vector.as_mut_ptr(),
            )
        };
        assert_eq!(result, 0, "mincore: {}", io::Error::last_os_error());
        vector.iter().map(|flags| flags & 1 == 1).collect()
    }

    /// A prefetch reads exactly its ranges into the page cache (`MADV_WILLNEED`), a range that
    /// ends at the end of the map included; it reads nothing else.
    #[test]
    #[cfg(target_os = "linux")]
    #[cfg_attr(miri, ignore = "mmap is not supported under Miri")]
    fn a_prefetch_reads_its_ranges_and_nothing_else() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.bin");
        let file = File::create(&path).unwrap();
        std::io::Write::write_all(&mut &file, &vec![7u8; 64 * PAGE as usize]).unwrap();
        file.sync_all().unwrap();
        // SAFETY: a valid descriptor; the advice only drops clean page cache pages.
        let dropped =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(dropped, 0);
        drop(file);
        let storage = MmapStorage::open(&path).unwrap();
        if cached_pages(&storage).iter().any(|&cached| cached) {
            eprintln!("SKIPPED: the page cache kept the file (tmpfs or a busy kernel)");
            return;
        }
        storage.prefetch(&[16 * PAGE..24 * PAGE, 56 * PAGE..64 * PAGE]);
        let wanted = |page: usize| (16..24).contains(&page) || (56..64).contains(&page);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut cached = cached_pages(&storage);
        while !(0..64)
            .filter(|&page| wanted(page))
            .all(|page| cached[page])
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
            cached = cached_pages(&storage);
        }
        for (page, cached) in cached.iter().enumerate() {
            assert_eq!(*cached, wanted(page), "page {page} in the page cache");
        }
    }

    /// A barrier over one range is one write of it on every file system: it never asks which file
    /// system holds the file (one `fstatfs` saved); the first barrier over several ranges does.
    #[test]
    #[cfg_attr(miri, ignore = "mmap is not supported under Miri")]
    fn a_one_range_barrier_never_asks_for_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 4);
        storage.sync_ranges(&[]).unwrap();
        storage.sync_ranges(&[0..PAGE]).unwrap();
        assert_eq!(storage.method, None);
        let stats = storage.stats();
        // The one range's write: an msync on Unix, a FlushViewOfFile on Windows.
        let writes = if cfg!(windows) {
            stats.view_flushes
        } else {
            stats.msync_calls
        };
        assert_eq!(
            (stats.barriers, writes),
            (2, 1),
            "an empty barrier calls nothing"
        );
        assert_eq!(
            storage.path(),
            Some(dir.path().join("storage.bin").as_path())
        );
        let (directory, prefix) = temp_location(Path::new("db.bin")).unwrap();
        assert_eq!(
            (directory, prefix.as_str()),
            (PathBuf::from("."), ".db.bin.mappedpages-create-")
        );
        let debug = format!("{storage:?}");
        assert!(
            debug.starts_with("MmapStorage") && debug.contains("storage.bin"),
            "{debug}"
        );
        storage.sync_ranges(&[0..PAGE, 2 * PAGE..3 * PAGE]).unwrap();
        assert!(storage.method.is_some());
    }

    /// A reservation above `LARGE_RESERVATION_BYTES` asks for the free space first and, where
    /// there is room, reserves every byte.
    #[test]
    #[cfg(unix)]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn a_large_reservation_succeeds_where_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let len_bytes = LARGE_RESERVATION_BYTES + 16 * PAGE;
        let mut storage = storage_of_pages(&dir, len_bytes / PAGE);
        let available = {
            let path = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
            // SAFETY: a NUL-terminated path and a zeroed statvfs for the call to fill.
            let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut stat) }, 0);
            stat.f_bavail as u64 * stat.f_frsize as u64
        };
        if available < 4 * len_bytes {
            eprintln!("SKIPPED: {available} bytes free here, {len_bytes} wanted with room");
            return;
        }
        storage.reserve(&[0..len_bytes]).unwrap();
        assert_eq!(storage.stats().bytes_reserved, len_bytes);
        use std::os::unix::fs::MetadataExt;
        let allocated_bytes = storage.file.metadata().unwrap().blocks() * 512;
        assert!(
            allocated_bytes >= len_bytes,
            "{allocated_bytes} bytes allocated"
        );
    }

    /// Without `CAP_DAC_READ_SEARCH` (any caller but root) `linkat(AT_EMPTY_PATH)` is refused,
    /// and naming an anonymous file falls back to its `/proc/self/fd` link. Capabilities are
    /// per thread on Linux: this thread drops the capability, the others keep it.
    #[test]
    #[cfg(target_os = "linux")]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn without_the_capability_an_anonymous_file_is_named_through_proc() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let Some(file) = anonymous_file_holding(dir.path(), b"anonymous") else {
            return;
        };
        let path = dir.path().join("named.bin");
        let outcome = on_a_thread_of_its_own(|| {
            drop_dac_read_search();
            let target = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
            // SAFETY: as in `link_anonymous`.
            let direct = unsafe {
                libc::linkat(
                    file.as_raw_fd(),
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            };
            if direct == 0 {
                return None; // this kernel allows it: the fallback is not needed
            }
            Some(linux::link_anonymous(&file, &path))
        });
        match outcome {
            None => eprintln!("SKIPPED: linkat(AT_EMPTY_PATH) works without the capability here"),
            Some(result) => {
                result.unwrap();
                assert_eq!(std::fs::read(&path).unwrap(), b"anonymous");
            }
        }
    }

    /// `fsync` passes the system's refusal on (here `EINVAL`: a pipe cannot be synced) instead
    /// of reporting a flush that did not happen.
    #[test]
    #[cfg(unix)]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn fsync_reports_a_refusal() {
        use std::os::fd::FromRawFd;
        let dir = tempfile::tempdir().unwrap();
        let regular = File::create(dir.path().join("file")).unwrap();
        fsync(&regular).unwrap();
        let mut ends = [0; 2];
        // SAFETY: `ends` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(ends.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created and are owned by nothing else.
        let (read_end, write_end) =
            unsafe { (File::from_raw_fd(ends[0]), File::from_raw_fd(ends[1])) };
        let error = fsync(&read_end).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "{error}");
        drop((read_end, write_end));
    }

    /// Where neither `linkat(AT_EMPTY_PATH)` (refused) nor `/proc/self/fd` (no `/proc`, as in
    /// some containers) can name an anonymous file, the anonymous create gives up (`Ok(None)`:
    /// the caller builds under a name) instead of failing the create; the whole create then
    /// succeeds through a named temporary. This thread gets its own mount namespace with an
    /// empty `/proc` and a seccomp filter; other threads are untouched.
    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn without_a_way_to_link_an_anonymous_file_create_falls_back_to_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.bin");
        let outcome = on_a_thread_of_its_own(|| {
            // SAFETY: unshare(2) and mount(2) with valid NUL-terminated strings; they
            // change this thread's own mount namespace only (CLONE_NEWNS unshares the
            // file-system context of the calling thread).
            let isolated = unsafe {
                libc::unshare(libc::CLONE_NEWNS) == 0
                    && libc::mount(
                        c"none".as_ptr(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) == 0
                    && libc::mount(
                        c"none".as_ptr(),
                        c"/proc".as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        std::ptr::null(),
                    ) == 0
            };
            if !isolated {
                return Err(format!(
                    "no private mount namespace: {}",
                    io::Error::last_os_error()
                ));
            }
            refuse_empty_path_links();
            let (directory, _) = temp_location(&path).unwrap();
            let anonymous = MmapStorage::create_anonymous(&path, &directory, &mut two_pages);
            let whole = MmapStorage::create_atomic(&path, two_pages).map(|s| s.len_bytes);
            Ok((anonymous.map(|s| s.is_none()), whole))
        });
        match outcome {
            Err(why) => eprintln!("SKIPPED: {why}"),
            Ok((anonymous, whole)) => {
                assert!(matches!(anonymous, Ok(true)), "{anonymous:?}");
                assert_eq!(whole.unwrap(), 2 * PAGE);
                assert_eq!(std::fs::read(&path).unwrap()[0], 0x5A);
            }
        }
    }

    /// Makes the kernel refuse `linkat(.., AT_EMPTY_PATH)` with `EPERM` for the calling thread
    /// (as a container's profile or a kernel without the capability would): recent kernels let
    /// the opener of an `O_TMPFILE` file link it without the capability.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn refuse_empty_path_links() {
        // linkat(olddirfd, oldpath, newdirfd, newpath, flags): flags is argument 4.
        refuse_calls_with_flag(libc::SYS_linkat, 4, libc::AT_EMPTY_PATH as u32, libc::EPERM);
    }

    /// A seccomp filter for the calling thread only (no TSYNC): the system call `number` fails
    /// with `errno` when its argument `argument` has any bit of `flag` set; everything else is
    /// allowed.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn refuse_calls_with_flag(number: libc::c_long, argument: u32, flag: u32, errno: i32) {
        use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};
        // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE (linux/audit.h).
        const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
        let statement = |code: u32, k: u32| libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        };
        let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        };
        // struct seccomp_data: nr at 0, arch at 4, instruction pointer at 8, args from 16.
        let mut filter = [
            statement(BPF_LD | BPF_W | BPF_ABS, 4),
            jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
            statement(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
            statement(BPF_LD | BPF_W | BPF_ABS, 0),
            jump(BPF_JMP | BPF_JEQ | BPF_K, number as u32, 0, 3),
            statement(BPF_LD | BPF_W | BPF_ABS, 16 + 8 * argument), // its low word
            jump(BPF_JMP | BPF_JSET | BPF_K, flag, 0, 1),
            statement(BPF_RET | BPF_K, libc::SECCOMP_RET_ERRNO | errno as u32),
            statement(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        ];
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        // SAFETY: `program` points at `filter`, both alive for the call; without the TSYNC flag
        // the filter applies to this thread only, and it refuses one kind of call.
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            assert_eq!(
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog
                ),
                0,
                "seccomp: {}",
                io::Error::last_os_error()
            );
        }
    }

    /// A temporary name that is taken is never an error by itself: the create tries the next
    /// one, and fails only after 64 attempts (here every exclusive create is refused with
    /// `EEXIST` by a seccomp filter on this thread).
    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn a_taken_temporary_name_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.bin");
        let result = on_a_thread_of_its_own(|| {
            refuse_calls_with_flag(libc::SYS_openat, 2, libc::O_EXCL as u32, libc::EEXIST);
            MmapStorage::create_atomic_with(&path, two_pages, false).map(|_| ())
        });
        match result {
            Err(MappedPageError::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::AlreadyExists);
                assert!(source.to_string().contains("after 64 attempts"), "{source}");
            }
            other => panic!("expected the attempts to run out, got {other:?}"),
        }
        assert!(!path.exists());
    }

    /// On a file system without `O_TMPFILE` (its `open` answers `EOPNOTSUPP`; simulated for
    /// this thread by a seccomp filter, no file system here lacks it) the anonymous create gives
    /// up and the create goes through a named temporary.
    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn without_o_tmpfile_create_uses_a_named_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.bin");
        let (anonymous, whole) = on_a_thread_of_its_own(|| {
            // openat(dirfd, path, flags, mode): flags is argument 2.
            let tmpfile_bit = (libc::O_TMPFILE & !libc::O_DIRECTORY) as u32;
            refuse_calls_with_flag(libc::SYS_openat, 2, tmpfile_bit, libc::EOPNOTSUPP);
            let anonymous = linux::open_anonymous(dir.path()).map(|file| file.is_none());
            let whole = MmapStorage::create_atomic(&path, two_pages).map(|s| s.len_bytes);
            (anonymous, whole)
        });
        assert!(matches!(anonymous, Ok(true)), "{anonymous:?}");
        assert_eq!(whole.unwrap(), 2 * PAGE);
        assert_eq!(std::fs::read(&path).unwrap()[0], 0x5A);
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }

    /// Drops `CAP_DAC_READ_SEARCH` from the calling thread's effective set (capabilities are per
    /// thread on Linux).
    #[cfg(target_os = "linux")]
    fn drop_dac_read_search() {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        const CAP_DAC_READ_SEARCH: u32 = 2;
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        // SAFETY: capget/capset with a version-3 header (pid 0: this thread) and the two data
        // records version 3 takes; they only read and change this thread's capability sets.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_capget, &mut header, &mut data), 0);
            data[0].effective &= !(1 << CAP_DAC_READ_SEARCH);
            assert_eq!(libc::syscall(libc::SYS_capset, &mut header, &data), 0);
        }
    }

    /// The fallback reservation writes every file-system block the range touches, the first
    /// one too when the range starts inside it; the bytes stay as they were.
    #[test]
    #[cfg(target_os = "linux")]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn the_fallback_reservation_writes_the_block_a_range_starts_in() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let mut storage = storage_of_pages(&dir, 16);
        let block_bytes = storage.reservation_block_bytes();
        let data_at = |storage: &MmapStorage, offset: u64| {
            // SAFETY: lseek on a descriptor `storage` keeps open; it reads no memory.
            unsafe { libc::lseek(storage.file.as_raw_fd(), offset as i64, libc::SEEK_DATA) }
        };
        if data_at(&storage, 0) != -1 {
            eprintln!("SKIPPED: the file is not sparse here (no holes, or no SEEK_DATA)");
            return;
        }
        let start = 3 * block_bytes / 4;
        storage
            .reserve_by_writing(&(start..block_bytes + 1))
            .unwrap();
        assert_eq!(data_at(&storage, 0), 0, "the first block was not written");
        assert_eq!(storage.stats().reservation_writes, 2);
        assert!(storage.bytes().iter().all(|&b| b == 0));
    }

    /// An anonymous create whose name appeared meanwhile (after the check in `create_atomic`)
    /// fails with `AlreadyExists` and leaves the file at the name alone; it never falls back to
    /// a named create.
    #[test]
    #[cfg(target_os = "linux")]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn an_anonymous_create_over_an_existing_name_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.bin");
        std::fs::write(&path, b"theirs").unwrap();
        let (directory, _) = temp_location(&path).unwrap();
        if linux::open_anonymous(&directory).unwrap().is_none() {
            return eprintln!("SKIPPED: O_TMPFILE is not supported by the file system here");
        }
        match MmapStorage::create_anonymous(&path, &directory, &mut two_pages) {
            Err(MappedPageError::AlreadyExists { path: named }) => assert_eq!(named, path),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
    }

    /// Only "no `O_TMPFILE` here" answers make the anonymous create give up for a named one;
    /// any other error (here a missing directory) is the create's error.
    #[test]
    #[cfg(target_os = "linux")]
    #[cfg_attr(miri, ignore = "file system calls are not supported under Miri")]
    fn an_anonymous_open_fails_for_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let error = linux::open_anonymous(&dir.path().join("missing")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
