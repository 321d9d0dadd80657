//! A full file system never kills the process (SPEC.md §3.3, space reservation): on a real,
//! deliberately filled tmpfs, ext4 and ext2 (no `fallocate`: the fallback), every call that
//! needs space returns `StorageFull` with nothing changed, every call that does not need space
//! works, and after space is freed the same call succeeds with nothing acknowledged lost.
//!
//! Before reservation these calls died of `SIGBUS` (a store into a hole of a sparse file on a
//! full file system), which fails the test binary.
//!
//! The file systems are mounted by the tests (tmpfs, and loop-mounted images made with
//! `mkfs.ext4`/`mkfs.ext2`), which needs root. Without it, or where mounting is refused, each
//! test prints a loud SKIPPED banner and returns.

use std::path::Path;

use mappedpages::{MappedPageError, MmapStorage, Pager, Storage};

#[path = "common/mount.rs"]
mod mount;

use mount::{Kind, mount, serial};

const KINDS: [Kind; 3] = [Kind::Tmpfs, Kind::Ext4, Kind::Ext2];
/// Big enough for ext4's journal and metadata; small enough to fill in a moment.
const FS_BYTES: u64 = 16 << 20;

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn assert_storage_full<T: std::fmt::Debug>(result: Result<T, MappedPageError>, what: &str) {
    match result {
        Err(MappedPageError::StorageFull { .. }) => {}
        other => panic!("{what} on a full file system: expected StorageFull, got {other:?}"),
    }
}

/// `create` on a full file system: `StorageFull`, nothing left behind (no file, no temporary);
/// with space, the same call succeeds.
#[test]
fn create_on_a_full_file_system() {
    let _serial = serial();
    for kind in KINDS {
        let Some(mount) = mount("create_on_a_full_file_system", kind, FS_BYTES) else {
            return;
        };
        let path = mount.path().join("db.bin");
        mount.fill();
        assert_storage_full(Pager::<4096>::create(&path), "create");
        assert_eq!(mount.entries(), Vec::<String>::new(), "{kind:?}: leftovers");
        mount.unfill();
        let mut pager = Pager::<4096>::create(&path).unwrap();
        pager.alloc().unwrap();
    }
}

/// `alloc_bulk` into a new group at 1 KiB pages (its commit writes the first slot page of the
/// group: SIGBUS in `encode_group_slot` before), `alloc`, and `alloc_protected` into free pages
/// that are holes: each `StorageFull`, with the page count, the counts and the file length as
/// before; after space is freed the same calls succeed and survive a reopen.
#[test]
fn allocations_on_a_full_file_system() {
    let _serial = serial();
    for kind in KINDS {
        let Some(mount) = mount("allocations_on_a_full_file_system", kind, FS_BYTES) else {
            return;
        };
        let path = mount.path().join("db.bin");
        let mut pager = Pager::<1024>::create(&path).unwrap();
        let kept = pager.alloc_bulk(100).unwrap();
        pager.set_commit_mode(mappedpages::CommitMode::SingleSync);
        mount.fill();
        let state = |pager: &Pager<1024>| {
            (
                pager.page_count(),
                pager.allocated_page_count(),
                pager.free_page_count(),
                pager.generation(),
                file_len(&path),
            )
        };
        // Free pages in space the file already has need none (reservations are made in chunks
        // of `RESERVATION_CHUNK_BYTES`, clipped to the file): those allocations succeed; the
        // first that needs new space (here: a growth) fails.
        let mut early = Vec::new();
        let first_failure = loop {
            match pager.alloc() {
                Ok(id) => early.push(id),
                Err(error) => break error,
            }
            assert!(
                early.len() as u64 <= MmapStorage::RESERVATION_CHUNK_BYTES / 1024,
                "{kind:?}: alloc never needed a new block"
            );
        };
        assert_storage_full(Err::<(), _>(first_failure), "alloc");
        let before = state(&pager);
        assert_storage_full(pager.alloc_bulk(9000), "alloc_bulk(9000)");
        assert_eq!(
            state(&pager),
            before,
            "{kind:?}: alloc_bulk changed something"
        );
        assert_storage_full(pager.alloc(), "alloc");
        assert_storage_full(pager.alloc_protected(), "alloc_protected");
        assert_eq!(
            state(&pager),
            before,
            "{kind:?}: a failed call changed something"
        );
        assert!(!pager.is_poisoned());
        // Calls that need no new space still work on the full file system.
        kept[1].get_mut(&mut pager).unwrap().as_bytes_mut().fill(1);
        pager.sync_page(kept[1]).unwrap();
        pager.sync_all().unwrap();
        pager.free(kept[0]).unwrap();
        let kept = &kept[1..];

        mount.unfill();
        let bulk = pager.alloc_bulk(9000).unwrap();
        let protected = pager.alloc_protected().unwrap();
        for id in &bulk {
            id.get_mut(&mut pager).unwrap().as_bytes_mut()[0] = 7;
        }
        pager.sync_all().unwrap();
        drop(pager);
        let pager = Pager::<1024>::open(&path).unwrap();
        assert!(
            bulk.iter()
                .chain(kept)
                .chain(&early)
                .all(|&id| pager.is_allocated(id))
        );
        assert!(pager.is_protected_allocated(protected));
        assert!(
            bulk.iter()
                .all(|id| id.get(&pager).unwrap().as_bytes()[0] == 7)
        );
    }
}

/// Pages handed out before the disk filled can be written (every page of them: SIGBUS before),
/// synced, and committed with; a protected page allocated before can be written and committed
/// (its copies are reserved); and a file of 5,005 pages reopens on the full file system (its
/// recovery read the never-written inactive slot page: SIGBUS on tmpfs before).
#[test]
fn work_on_reserved_pages_continues_on_a_full_file_system() {
    let _serial = serial();
    for kind in KINDS {
        let Some(mount) = mount(
            "work_on_reserved_pages_continues_on_a_full_file_system",
            kind,
            FS_BYTES,
        ) else {
            return;
        };
        let path = mount.path().join("db.bin");
        let mut pager = Pager::<1024>::create(&path).unwrap();
        let ids = pager.alloc_bulk(4989).unwrap();
        let protected = pager.alloc_protected().unwrap();
        assert!(pager.page_count() >= 5005, "{}", pager.page_count());
        mount.fill();
        for (index, id) in ids.iter().enumerate() {
            id.get_mut(&mut pager)
                .unwrap()
                .as_bytes_mut()
                .fill(index as u8);
        }
        pager.sync_page(ids[17]).unwrap();
        pager.sync_all().unwrap();
        let mut writer = protected.get_mut(&mut pager).unwrap();
        writer.page_mut().as_bytes_mut()[..4].copy_from_slice(b"root");
        writer.commit().unwrap();
        pager.free_bulk(ids[..10].to_vec()).unwrap();
        drop(pager);

        let pager = Pager::<1024>::open(&path).unwrap();
        assert_eq!(pager.allocated_page_count(), 4979);
        for (index, id) in ids.iter().enumerate().skip(10) {
            assert_eq!(id.get(&pager).unwrap().as_bytes()[5], index as u8);
        }
        assert_eq!(&protected.get(&pager).unwrap().as_bytes()[..4], b"root");
        drop(pager);
        mount.unfill();
    }
}

/// The fallback reservation (a byte written per block) is what ext2 gets; on ext4 and tmpfs it
/// is forced here, and a full file system still surfaces as `StorageFull`.
#[test]
fn the_fallback_reservation_reserves_and_reports_a_full_file_system() {
    let _serial = serial();
    for kind in KINDS {
        let Some(mount) = mount(
            "the_fallback_reservation_reserves_and_reports_a_full_file_system",
            kind,
            FS_BYTES,
        ) else {
            return;
        };
        let path = mount.path().join("db.bin");
        drop(Pager::<4096>::create(&path).unwrap());
        let mut storage = MmapStorage::open(&path).unwrap();
        storage.force_reservation_by_writing();
        let mut pager = Pager::<4096, MmapStorage>::open_in(storage).unwrap();
        let ids = pager.alloc_bulk(64).unwrap();
        assert!(pager.storage().stats().reservation_writes >= 64);
        mount.fill();
        assert_storage_full(pager.alloc_bulk(64), "alloc_bulk(64)");
        for id in &ids {
            id.get_mut(&mut pager).unwrap().as_bytes_mut().fill(3);
        }
        pager.sync_all().unwrap();
        mount.unfill();
        pager.alloc_bulk(64).unwrap();
    }
}

/// A request far beyond the free space (here 1 GiB of pages on a 16 MiB file system) is refused
/// by the `fstatfs` check before any block is reserved: `StorageFull` with no reservation made,
/// instead of `fallocate` (or the fallback's writes) filling the file system first.
#[test]
fn a_request_far_beyond_the_free_space_reserves_nothing() {
    let _serial = serial();
    for kind in KINDS {
        let Some(mount) = mount(
            "a_request_far_beyond_the_free_space_reserves_nothing",
            kind,
            FS_BYTES,
        ) else {
            return;
        };
        let path = mount.path().join("db.bin");
        let mut pager = Pager::<1024>::create(&path).unwrap();
        let reservations = pager.storage().stats().reservations;
        let len_bytes = file_len(&path);
        assert_storage_full(pager.alloc_bulk(1 << 20), "alloc_bulk of 1 GiB");
        assert_eq!(
            pager.storage().stats().reservations,
            reservations,
            "{kind:?}: a reservation was attempted"
        );
        assert_eq!(file_len(&path), len_bytes, "{kind:?}");
        pager.alloc_bulk(100).unwrap();
        if matches!(kind, Kind::Ext2) {
            // No `fallocate` there: the fallback writes one byte per file-system block (at most
            // 1 KiB, the smallest page), never one per byte.
            let stats = pager.storage().stats();
            assert!(stats.reservation_writes > 0, "ext2 reserves by writing");
            assert!(
                stats.reservation_writes * 512 <= stats.bytes_reserved,
                "{} writes for {} bytes",
                stats.reservation_writes,
                stats.bytes_reserved
            );
        }
        // The check counts the bytes requested, not where they lie: a small range far into a
        // sparse file larger than the file system is reserved.
        let sparse = mount.path().join("sparse.bin");
        std::fs::File::create(&sparse)
            .unwrap()
            .set_len(8 * FS_BYTES)
            .unwrap();
        let mut storage = MmapStorage::open(&sparse).unwrap();
        let end = 8 * FS_BYTES;
        storage.reserve(&[end - (64 << 10)..end]).unwrap();
        // Rounded out to whole reservation chunks (1 MiB), never to the file's start.
        let reserved = storage.stats().bytes_reserved;
        assert!(
            (64 << 10..=1 << 20).contains(&reserved),
            "{kind:?}: {reserved}"
        );
        // Only requests above 64 MiB ask for the free space first: one of exactly 64 MiB is
        // attempted, and the file system's own refusal is the answer.
        let attempts = storage.stats().reservations;
        let at_limit = storage.reserve(&[0..64 << 20]).unwrap_err();
        assert_eq!(at_limit.kind(), std::io::ErrorKind::StorageFull, "{kind:?}");
        assert!(
            storage.stats().reservations > attempts,
            "{kind:?}: not attempted"
        );
    }
}

/// A request above 64 MiB that needs exactly the free space is made, not refused: the check
/// refuses only requests larger than what is available (here all of an empty tmpfs's 72 MiB,
/// reserved to the last byte).
#[test]
#[cfg(target_os = "linux")]
fn a_request_of_exactly_the_free_space_is_made() {
    const TEST: &str = "a_request_of_exactly_the_free_space_is_made";
    let _serial = serial();
    let Some(mount) = mount(TEST, Kind::Tmpfs, 72 << 20) else {
        return;
    };
    let path = mount.path().join("sparse.bin");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(72 << 20)
        .unwrap();
    let mut storage = MmapStorage::open(&path).unwrap();
    let available = {
        let directory = std::ffi::CString::new(mount.path().to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path and a zeroed statvfs for the call to fill.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(directory.as_ptr(), &mut stat) }, 0);
        stat.f_bavail * stat.f_frsize
    };
    assert_eq!(
        available,
        72 << 20,
        "an empty tmpfs has all of its size free"
    );
    storage.reserve(&[0..72 << 20]).unwrap();
    assert_eq!(storage.stats().bytes_reserved, 72 << 20);
}
