//! Counts the durability system calls (`msync`, `fsync`, `fdatasync`, and `sync_file_range`) made
//! by this process.
//!
//! The earlier crate (0.2.0) has no sync counters and redb has none either, so the harness counts
//! syscalls the same way for every contender: this binary defines the C symbols `msync`, `fsync`,
//! `fdatasync` and `sync_file_range`. The static linker resolves every reference in the binary
//! (memmap2's `MmapMut::flush_range`, std's `File::sync_all` / `sync_data`, redb, this crate's
//! `MmapStorage`) to these definitions instead of glibc's; each one bumps a counter and issues the
//! raw system call. [`self_test`] checks at start-up that the interposition is in effect; if it is
//! not, the harness prints "n/a" for the syscall counts rather than a wrong number.
//!
//! `msync(MS_SYNC)`, `fsync` and `fdatasync` each end in a device cache flush on the bench's file
//! systems; they are the "syncs" of the table. `sync_file_range` starts or waits for the writes of
//! a range without flushing (this crate's one-flush barriers start every range's writes with it
//! and wait for all but the last), so it is counted apart.

use std::sync::atomic::{AtomicU64, Ordering};

static MSYNC_CALLS: AtomicU64 = AtomicU64::new(0);
static FSYNC_CALLS: AtomicU64 = AtomicU64::new(0);
static FDATASYNC_CALLS: AtomicU64 = AtomicU64::new(0);
static SYNC_FILE_RANGE_CALLS: AtomicU64 = AtomicU64::new(0);

/// Interposed `msync(2)`: counts, then makes the system call.
///
/// # Safety
///
/// Same contract as `msync(2)`: `addr..addr + len` must be a mapping of this process.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msync(
    addr: *mut libc::c_void,
    len: libc::size_t,
    flags: libc::c_int,
) -> libc::c_int {
    MSYNC_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwards the caller's arguments unchanged to the kernel; `syscall` sets errno.
    unsafe { libc::syscall(libc::SYS_msync, addr, len, flags) as libc::c_int }
}

/// Interposed `fsync(2)`: counts, then makes the system call.
///
/// # Safety
///
/// Same contract as `fsync(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fsync(fd: libc::c_int) -> libc::c_int {
    FSYNC_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwards the caller's argument unchanged to the kernel.
    unsafe { libc::syscall(libc::SYS_fsync, fd) as libc::c_int }
}

/// Interposed `fdatasync(2)`: counts, then makes the system call.
///
/// # Safety
///
/// Same contract as `fdatasync(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fdatasync(fd: libc::c_int) -> libc::c_int {
    FDATASYNC_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwards the caller's argument unchanged to the kernel.
    unsafe { libc::syscall(libc::SYS_fdatasync, fd) as libc::c_int }
}

/// Interposed `sync_file_range(2)`: counts, then makes the system call.
///
/// # Safety
///
/// Same contract as `sync_file_range(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sync_file_range(
    fd: libc::c_int,
    offset: libc::off64_t,
    nbytes: libc::off64_t,
    flags: libc::c_uint,
) -> libc::c_int {
    SYNC_FILE_RANGE_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwards the caller's arguments unchanged to the kernel (64-bit Linux: the
    // system call takes them in this order).
    unsafe { libc::syscall(libc::SYS_sync_file_range, fd, offset, nbytes, flags) as libc::c_int }
}

/// Durability syscalls made so far by the whole process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallCounts {
    pub msync_calls: u64,
    pub fsync_calls: u64,
    pub fdatasync_calls: u64,
    /// `sync_file_range` calls: range writes without a flush, not part of [`total`](Self::total).
    pub sync_file_range_calls: u64,
}

impl SyscallCounts {
    pub fn now() -> SyscallCounts {
        SyscallCounts {
            msync_calls: MSYNC_CALLS.load(Ordering::Relaxed),
            fsync_calls: FSYNC_CALLS.load(Ordering::Relaxed),
            fdatasync_calls: FDATASYNC_CALLS.load(Ordering::Relaxed),
            sync_file_range_calls: SYNC_FILE_RANGE_CALLS.load(Ordering::Relaxed),
        }
    }

    /// The three flushing kinds together (`msync`, `fsync`, `fdatasync`).
    pub fn total(self) -> u64 {
        self.msync_calls + self.fsync_calls + self.fdatasync_calls
    }

    /// Counts made since `earlier`.
    pub fn since(self, earlier: SyscallCounts) -> SyscallCounts {
        SyscallCounts {
            msync_calls: self.msync_calls - earlier.msync_calls,
            fsync_calls: self.fsync_calls - earlier.fsync_calls,
            fdatasync_calls: self.fdatasync_calls - earlier.fdatasync_calls,
            sync_file_range_calls: self.sync_file_range_calls - earlier.sync_file_range_calls,
        }
    }
}

/// Checks that `msync` through memmap2, `fsync` and `fdatasync` through std, and
/// `sync_file_range` through libc reach the counters above.
pub fn self_test(dir: &std::path::Path) -> std::io::Result<bool> {
    let path = dir.join("syscount-self-test.bin");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    file.set_len(4096)?;
    // SAFETY: the file was just created by this process in the harness's private directory and
    // nothing else maps or resizes it while the map is alive.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file)? };
    let before = SyscallCounts::now();
    map[0] = 1;
    map.flush_range(0, 4096)?;
    file.sync_all()?;
    file.sync_data()?;
    map[1] = 1;
    // SAFETY: the descriptor is open for the call; the flags are valid.
    let written = unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
            4096,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )
    };
    if written != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let counted = SyscallCounts::now().since(before);
    drop(map);
    std::fs::remove_file(&path)?;
    Ok(counted.msync_calls == 1
        && counted.fsync_calls == 1
        && counted.fdatasync_calls == 1
        && counted.sync_file_range_calls == 1)
}
