//! Counts the durability system calls (`msync`, `fsync`, `fdatasync`) made by this process.
//!
//! The earlier crate (0.2.0) has no sync counters and redb has none either, so the harness counts
//! syscalls the same way for every contender: this binary defines the C symbols `msync`, `fsync`
//! and `fdatasync`. The static linker resolves every reference in the binary (memmap2's
//! `MmapMut::flush_range`, std's `File::sync_all` / `sync_data`, redb) to these definitions instead
//! of glibc's; each one bumps a counter and issues the raw system call. [`self_test`] checks at
//! start-up that the interposition is in effect; if it is not, the harness prints "n/a" for the
//! syscall counts rather than a wrong number.

use std::sync::atomic::{AtomicU64, Ordering};

static MSYNC_CALLS: AtomicU64 = AtomicU64::new(0);
static FSYNC_CALLS: AtomicU64 = AtomicU64::new(0);
static FDATASYNC_CALLS: AtomicU64 = AtomicU64::new(0);

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

/// Durability syscalls made so far by the whole process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallCounts {
    pub msync_calls: u64,
    pub fsync_calls: u64,
    pub fdatasync_calls: u64,
}

impl SyscallCounts {
    pub fn now() -> SyscallCounts {
        SyscallCounts {
            msync_calls: MSYNC_CALLS.load(Ordering::Relaxed),
            fsync_calls: FSYNC_CALLS.load(Ordering::Relaxed),
            fdatasync_calls: FDATASYNC_CALLS.load(Ordering::Relaxed),
        }
    }

    /// All three kinds together.
    pub fn total(self) -> u64 {
        self.msync_calls + self.fsync_calls + self.fdatasync_calls
    }

    /// Counts made since `earlier`.
    pub fn since(self, earlier: SyscallCounts) -> SyscallCounts {
        SyscallCounts {
            msync_calls: self.msync_calls - earlier.msync_calls,
            fsync_calls: self.fsync_calls - earlier.fsync_calls,
            fdatasync_calls: self.fdatasync_calls - earlier.fdatasync_calls,
        }
    }
}

/// Checks that `msync` through memmap2 and `fsync` through std reach the counters above.
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
    let counted = SyscallCounts::now().since(before);
    drop(map);
    std::fs::remove_file(&path)?;
    Ok(counted.msync_calls == 1 && counted.fsync_calls == 1 && counted.fdatasync_calls == 1)
}
