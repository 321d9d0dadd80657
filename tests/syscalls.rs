//! The system calls a barrier of `MmapStorage` really makes, on Linux: this test binary defines
//! the C symbols `msync` and `sync_file_range`, so every call the library makes through `libc`
//! reaches these definitions first (the static linker prefers the executable's own symbols over
//! glibc's); each records its arguments and then makes the system call. The test checks the
//! calls against `MmapStorage`'s own counters and against the map: a barrier that skipped its
//! calls, or flushed an address range outside the file's map, passes every durability test that
//! can only look at page contents, but not this one.
#![cfg(target_os = "linux")]

use std::ops::Range;
use std::sync::Mutex;

use mappedpages::{CommitMode, Pager, SharedPager};

/// Every `msync` (address range) and `sync_file_range` (descriptor, byte range) call, in order.
static CALLS: Mutex<Vec<Call>> = Mutex::new(Vec::new());

#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Msync(Range<usize>),
    SyncFileRange(Range<u64>),
    /// `statx` with this mask.
    Statx(u32),
}

/// When set, the interposed `statx` fails with `ENOSYS`, as on a kernel without it.
static STATX_MISSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Interposed `statx(2)`: records the mask, then makes the system call (or fails with `ENOSYS`
/// while [`STATX_MISSING`] is set, for the library's call).
///
/// # Safety
///
/// Same contract as `statx(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn statx(
    dirfd: libc::c_int,
    path: *const libc::c_char,
    flags: libc::c_int,
    mask: libc::c_uint,
    buffer: *mut libc::statx,
) -> libc::c_int {
    record(Call::Statx(mask));
    // Only the library's call (the size alone) fails: std remembers that `statx` worked before
    // and would pass an `ENOSYS` of its own calls on as an error, which a kernel without `statx`
    // never makes it do.
    if mask == libc::STATX_SIZE && STATX_MISSING.load(std::sync::atomic::Ordering::SeqCst) {
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    }
    // SAFETY: forwards the caller's arguments unchanged to the kernel.
    unsafe { libc::syscall(libc::SYS_statx, dirfd, path, flags, mask, buffer) as libc::c_int }
}

fn record(call: Call) {
    CALLS.lock().unwrap_or_else(|e| e.into_inner()).push(call);
}

/// Interposed `msync(2)`: records the address range, then makes the system call.
///
/// # Safety
///
/// Same contract as `msync(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msync(
    addr: *mut libc::c_void,
    len: libc::size_t,
    flags: libc::c_int,
) -> libc::c_int {
    record(Call::Msync(addr as usize..addr as usize + len));
    // SAFETY: forwards the caller's arguments unchanged to the kernel; `syscall` sets errno.
    unsafe { libc::syscall(libc::SYS_msync, addr, len, flags) as libc::c_int }
}

/// Interposed `sync_file_range(2)`: records the byte range, then makes the system call.
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
    record(Call::SyncFileRange(offset as u64..(offset + nbytes) as u64));
    // SAFETY: forwards the caller's arguments unchanged to the kernel.
    unsafe { libc::syscall(libc::SYS_sync_file_range, fd, offset, nbytes, flags) as libc::c_int }
}

fn take_calls() -> Vec<Call> {
    std::mem::take(&mut *CALLS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Checks `calls` against the counters' difference and the map `map`; returns the number of
/// `msync` calls.
fn check(
    calls: &[Call],
    map: &Range<usize>,
    before: mappedpages::SyncStats,
    after: mappedpages::SyncStats,
) -> u64 {
    let msyncs: Vec<&Range<usize>> = calls
        .iter()
        .filter_map(|call| match call {
            Call::Msync(range) => Some(range),
            _ => None,
        })
        .collect();
    let range_calls = calls
        .iter()
        .filter(|call| matches!(call, Call::SyncFileRange(_)))
        .count();
    assert_eq!(
        msyncs.len() as u64,
        after.msync_calls - before.msync_calls,
        "msync calls made vs counted: {calls:?}"
    );
    assert_eq!(
        range_calls as u64,
        (after.range_writes + after.range_write_starts)
            - (before.range_writes + before.range_write_starts),
        "sync_file_range calls made vs counted: {calls:?}"
    );
    for range in &msyncs {
        assert!(
            map.start <= range.start && range.end <= map.end && range.start < range.end,
            "msync of {range:x?}: empty, or outside the map {map:x?}"
        );
    }
    msyncs.len() as u64
}

fn map_of<S: mappedpages::Storage>(storage: &S) -> Range<usize> {
    let bytes = storage.bytes();
    let base = bytes.as_ptr() as usize;
    base..base + bytes.len()
}

/// One test, so that no other test's calls land in the record between two looks. 1 KiB pages
/// too: there a barrier's range can start inside a system page.
#[test]
fn every_barrier_makes_the_calls_it_counts_inside_the_map() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [CommitMode::SingleSync, CommitMode::Flip] {
        barriers_of::<4096>(dir.path(), mode);
        barriers_of::<1024>(dir.path(), mode);
    }
    length_checks_ask_for_the_size_only(dir.path());
}

/// The length check before every commit asks `statx` for the size only (a timestamp asked for
/// would cost an inode write per commit, `MmapStorage::observed_len_bytes`); where `statx` is
/// missing it falls back to `fstat` and the commit goes on.
fn length_checks_ask_for_the_size_only(dir: &std::path::Path) {
    let mut pager = Pager::<4096>::create(dir.join("statx.bin")).unwrap();
    pager.alloc().unwrap();
    take_calls();
    pager.alloc().unwrap();
    let masks: Vec<u32> = take_calls()
        .into_iter()
        .filter_map(|call| match call {
            Call::Statx(mask) => Some(mask),
            _ => None,
        })
        .collect();
    assert_eq!(
        masks,
        vec![libc::STATX_SIZE],
        "one length check per commit, asking for the size only"
    );
    STATX_MISSING.store(true, std::sync::atomic::Ordering::SeqCst);
    let result = pager.alloc();
    STATX_MISSING.store(false, std::sync::atomic::Ordering::SeqCst);
    result.expect("without statx the length check falls back to fstat");
    assert!(!pager.is_poisoned());
}

fn barriers_of<const P: usize>(dir: &std::path::Path, mode: CommitMode) {
    // A `Pager`: barriers run in place (`sync_ranges`).
    let path = dir.join(format!("pager-{mode:?}-{P}.bin"));
    let mut pager = Pager::<P>::create(&path).unwrap();
    pager.set_commit_mode(mode);
    let ids = pager.alloc_bulk(64).unwrap(); // grows first: the map is final from here
    take_calls();
    let before = pager.storage().stats();
    pager
        .alloc_with(|page| page.as_bytes_mut().fill(1))
        .unwrap();
    ids[3].get_mut(&mut pager).unwrap().as_bytes_mut().fill(2);
    pager.sync_page(ids[3]).unwrap();
    let calls = take_calls();
    let map = map_of(pager.storage());
    let flushes = check(&calls, &map, before, pager.storage().stats());
    assert!(
        flushes >= 2,
        "{mode:?}, {P}: a commit and a sync_page, {calls:?}"
    );
    drop(pager);

    // A `SharedPager`: group barriers start under the lock and run in `wait` (`start_barrier`,
    // `run_detached`), from several threads.
    let path = dir.join(format!("shared-{mode:?}-{P}.bin"));
    let mut pager = Pager::<P>::create(&path).unwrap();
    pager.set_commit_mode(mode);
    pager.alloc_bulk(256).unwrap();
    let shared = SharedPager::new(pager);
    let pages: Vec<_> = (0..4).map(|_| shared.alloc().unwrap()).collect();
    take_calls();
    let before = shared.read().storage().stats();
    std::thread::scope(|scope| {
        for (n, &page) in pages.iter().enumerate() {
            let shared = shared.clone();
            scope.spawn(move || {
                for _ in 0..4 {
                    shared
                        .alloc_with(move |p| p.as_bytes_mut().fill(n as u8))
                        .unwrap();
                }
                shared
                    .write_page(page, |p| p.as_bytes_mut().fill(9))
                    .unwrap();
                shared.sync_page(page).unwrap();
            });
        }
    });
    let calls = take_calls();
    let guard = shared.read();
    let map = map_of(guard.storage());
    let flushes = check(&calls, &map, before, guard.storage().stats());
    assert!(
        flushes >= 1,
        "{mode:?}, {P}: group commits flush, {calls:?}"
    );
}
