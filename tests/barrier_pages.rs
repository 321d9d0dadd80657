//! What a one-flush barrier does to the page cache, seen by the kernel (SPEC.md §5,
//! docs/mmap-barriers.md points 1 and 2): after `sync_ranges` over pages written through the map,
//! every page of the barrier is clean and no longer under write-back (written and waited for, not
//! only started), and a page written through the map but left out of the barrier is still dirty
//! (the barrier wrote its ranges, not the span between them). Checked for the current plan (all
//! writes in flight together) and for the serial plan the benchmark compares it with, on a real
//! ext4 (loop-mounted, with a journal) and ext2.
//!
//! The same flags show the pager's own barriers at work (`sync_page`, a commit, `sync_all`), and
//! which file systems get one-flush barriers at all.
//!
//! Reads page flags through `/proc/self/pagemap` and `/proc/kpageflags`, and mounts the file
//! systems: both need root. Without it the test prints a loud SKIPPED banner and returns.
#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use mappedpages::{MmapStorage, PageId, Pager, Storage};

#[path = "common/mount.rs"]
mod mount;

use mount::{Kind, mount, serial, skipped};

const PAGE: u64 = 4096;
/// Pages of the barrier (four ranges, none adjacent, like a protected commit's), and a page
/// between them that is written but not synced.
const SYNCED: [u64; 4] = [1, 6, 8, 10];
const LEFT_OUT: u64 = 7;

/// `(dirty, under write-back)` of the page mapped at `address`, or `None` where the kernel hides
/// page frame numbers (not root).
fn page_flags(address: usize) -> Option<(bool, bool)> {
    let read_u64 = |path: &str, index: u64| -> Option<u64> {
        let mut file = File::open(path).ok()?;
        file.seek(SeekFrom::Start(index * 8)).ok()?;
        let mut bytes = [0u8; 8];
        file.read_exact(&mut bytes).ok()?;
        Some(u64::from_le_bytes(bytes))
    };
    let entry = read_u64("/proc/self/pagemap", address as u64 / PAGE)?;
    assert!(entry >> 63 == 1, "the page at {address:#x} is not present");
    let frame = entry & ((1 << 55) - 1);
    if frame == 0 {
        return None;
    }
    let flags = read_u64("/proc/kpageflags", frame)?;
    // KPF_DIRTY = 4, KPF_WRITEBACK = 8 (Documentation/admin-guide/mm/pagemap.rst).
    Some((flags & (1 << 4) != 0, flags & (1 << 8) != 0))
}

#[test]
fn a_barrier_leaves_its_pages_clean_and_the_others_dirty() {
    const TEST: &str = "a_barrier_leaves_its_pages_clean_and_the_others_dirty";
    let _serial = serial();
    for kind in [Kind::Ext4, Kind::Ext2] {
        let Some(mount) = mount(TEST, kind, 16 << 20) else {
            return;
        };
        for serial_plan in [false, true] {
            let path = mount.path().join(format!("pages-{serial_plan}.bin"));
            let file = File::create(&path).unwrap();
            file.set_len(16 * PAGE).unwrap();
            file.sync_all().unwrap();
            drop(file);
            let mut storage = MmapStorage::open(&path).unwrap();
            if serial_plan {
                storage.plan_serial_range_writes();
            }
            for round in 1..=3u8 {
                for page in SYNCED.iter().chain([&LEFT_OUT]) {
                    storage.bytes_mut()[(page * PAGE) as usize] = round;
                }
                let flags_of = |storage: &MmapStorage, page: u64| {
                    page_flags(storage.bytes().as_ptr() as usize + (page * PAGE) as usize)
                };
                let Some(before) = flags_of(&storage, LEFT_OUT) else {
                    skipped(
                        TEST,
                        "/proc/self/pagemap hides page frame numbers (not root)",
                    );
                    return;
                };
                assert!(
                    before.0,
                    "{kind:?}: a page written through the map is dirty"
                );
                let ranges: Vec<_> = SYNCED.iter().map(|p| p * PAGE..(p + 1) * PAGE).collect();
                storage.sync_ranges(&ranges).unwrap();
                assert!(storage.one_flush_barriers(), "{kind:?}");
                for page in SYNCED {
                    let (dirty, writeback) = flags_of(&storage, page).unwrap();
                    assert!(
                        !dirty && !writeback,
                        "{kind:?}, serial plan {serial_plan}, round {round}: page {page} \
                         dirty {dirty}, under write-back {writeback} after the barrier"
                    );
                }
                // Background write-back could clean it too, but not within these milliseconds
                // (a new file's pages expire after `dirty_expire_centisecs`, 30 s by default).
                let (dirty, _) = flags_of(&storage, LEFT_OUT).unwrap();
                assert!(
                    dirty,
                    "{kind:?}: page {LEFT_OUT}, not in the barrier, was written"
                );
                storage
                    .sync_ranges(&[LEFT_OUT * PAGE..(LEFT_OUT + 1) * PAGE])
                    .unwrap();
            }
            let stats = storage.stats();
            let expected_starts = if serial_plan { 0 } else { 3 * 4 };
            assert_eq!(stats.range_write_starts, expected_starts, "{kind:?}");
            assert_eq!(stats.range_writes, 3 * 3, "{kind:?}");
        }
    }
}

/// The flags of `page` (of `P` bytes) in `pager`'s map.
fn pager_page_flags<const P: usize>(
    pager: &Pager<P, MmapStorage>,
    page: u64,
) -> Option<(bool, bool)> {
    page_flags(pager.storage().bytes().as_ptr() as usize + page as usize * P)
}

/// The pager's barriers, seen by the kernel: a create leaves every page clean; `sync_page` cleans its page and leaves another
/// written page dirty; a commit's pages (superblock, metadata copy) are clean when it returns;
/// `sync_all` cleans everything.
#[test]
fn the_pagers_barriers_clean_what_they_promise() {
    const TEST: &str = "the_pagers_barriers_clean_what_they_promise";
    const P: usize = 4096;
    let _serial = serial();
    let Some(mount) = mount(TEST, Kind::Ext4, 16 << 20) else {
        return;
    };
    let mut pager = Pager::<P, MmapStorage>::create(mount.path().join("db.bin")).unwrap();
    // A create is durable when it returns: every page of the new file is written (its `fsync`).
    let created_pages = pager.storage().len_bytes() / P as u64;
    for p in 0..created_pages {
        std::hint::black_box(pager.storage().bytes()[p as usize * P]); // map it in to see it
        let Some(flags) = pager_page_flags(&pager, p) else {
            return skipped(
                TEST,
                "/proc/self/pagemap hides page frame numbers (not root)",
            );
        };
        assert_eq!(
            flags,
            (false, false),
            "page {p} of a new file is not on disk"
        );
    }
    let ids = pager.alloc_bulk(3).unwrap();
    let (named, unnamed) = (ids[0], ids[2]);
    for id in [named, unnamed] {
        id.get_mut(&mut pager).unwrap().as_bytes_mut()[0] = 1;
    }
    let page = |id: PageId<P>| id.raw();
    let Some((dirty, _)) = pager_page_flags(&pager, page(named)) else {
        return skipped(
            TEST,
            "/proc/self/pagemap hides page frame numbers (not root)",
        );
    };
    assert!(dirty, "a page written through the map is dirty");
    pager.sync_page(named).unwrap();
    assert_eq!(
        pager_page_flags(&pager, page(named)),
        Some((false, false)),
        "sync_page returned before its page was written"
    );
    assert_eq!(
        pager_page_flags(&pager, page(unnamed)).map(|f| f.0),
        Some(true),
        "sync_page wrote a page it was not given"
    );
    let before: Vec<u8> = pager.storage().bytes()[..3 * P].to_vec();
    pager.alloc().unwrap();
    let written: Vec<u64> = (0..3u64)
        .filter(|&p| {
            let range = p as usize * P..(p as usize + 1) * P;
            pager.storage().bytes()[range.clone()] != before[range]
        })
        .collect();
    assert!(
        !written.is_empty(),
        "a commit writes the superblock or a metadata copy"
    );
    for p in written {
        assert_eq!(
            pager_page_flags(&pager, p),
            Some((false, false)),
            "page {p}, written by the commit, is not on disk when it returns"
        );
    }
    pager.sync_all().unwrap();
    assert_eq!(
        pager_page_flags(&pager, page(unnamed)),
        Some((false, false))
    );
}

/// Linux barriers take one flush (`sync_file_range`, then one `msync`) on the file systems known
/// to make that durable, and one `msync` per range elsewhere (docs/mmap-barriers.md).
#[test]
fn one_flush_barriers_follow_the_file_system() {
    const TEST: &str = "one_flush_barriers_follow_the_file_system";
    let _serial = serial();
    for (kind, expected) in [
        (Kind::Tmpfs, true),
        (Kind::Ext4, true),
        // ext2 and ext3 share ext4's magic number; their `fsync` flushes the device cache too.
        (Kind::Ext2, true),
        (Kind::Ramfs, false),
    ] {
        let Some(mount) = mount(TEST, kind, 16 << 20) else {
            return;
        };
        let pager = Pager::<4096, MmapStorage>::create(mount.path().join("db.bin")).unwrap();
        assert_eq!(pager.storage().one_flush_barriers(), expected, "{kind:?}");
    }
}
