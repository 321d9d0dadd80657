//! `SimStorage` at 2^20 pages of 1 KiB: a 1 GiB file of which only the metadata, the bitmap
//! slots and a few pages are ever written. Crash points, crash images and recovery from them
//! cost what was written (the only test in this binary, so that the process's peak memory is its
//! own).

use mappedpages::format::Geometry;
use mappedpages::{CrashLength, PageId, Pager, SectorSize, SimStorage};

const PAGE_BYTES: usize = 1024;

const PAGE_COUNT: u64 = 1 << 20;

type SimPager = Pager<PAGE_BYTES, SimStorage>;

/// A pager of `PAGE_COUNT` pages, grown by one bulk allocation of every data page and a bulk
/// free of all but every 4096th of them (reservation off: nothing writes the data pages).
/// Returns it with the pages kept and the number of syncs `create_in` made (sync snapshots are
/// recorded from the start, one per sync).
fn grown_pager() -> (SimPager, Vec<PageId<PAGE_BYTES>>, usize) {
    let mut storage = SimStorage::new();
    storage.allow_unreserved_writes();
    storage.record_sync_snapshots();
    let mut pager = SimPager::create_in(storage).unwrap();
    pager.set_space_reservation(false);
    let created_syncs = usize::try_from(pager.storage().sync_count()).unwrap();
    let data_pages = Geometry::with_group_table(PAGE_BYTES).data_page_count(PAGE_COUNT);
    let ids = pager
        .alloc_bulk(usize::try_from(data_pages).unwrap())
        .unwrap();
    assert_eq!(pager.page_count(), PAGE_COUNT);
    let (kept, freed): (Vec<_>, Vec<_>) = ids
        .iter()
        .enumerate()
        .partition(|(index, _)| index % 4096 == 0);
    pager
        .free_bulk(freed.into_iter().map(|(_, &id)| id).collect())
        .unwrap();
    let kept = kept.into_iter().map(|(_, &id)| id).collect();
    (pager, kept, created_syncs)
}

/// The process's peak resident memory in KiB (`VmHWM`).
#[cfg(target_os = "linux")]
fn peak_resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_gigabyte_file_crashes_and_recovers_at_the_cost_of_what_was_written() {
    let (mut pager, kept, created_syncs) = grown_pager();
    let allocated = pager.allocated_page_count();
    assert_eq!(allocated, kept.len() as u64);

    // One page near the end written but not synced: in flight, in the last 4 KiB block or so.
    let last = *kept.last().unwrap();
    last.get_mut(&mut pager).unwrap().as_bytes_mut()[..5].copy_from_slice(b"tail!");
    let point = pager.storage().crash_point();
    assert_eq!(point.len_bytes(), PAGE_COUNT * PAGE_BYTES as u64);
    assert_eq!(point.durable_len_bytes(), point.len_bytes());
    let offset = last.raw() * PAGE_BYTES as u64;
    let in_flight = point.in_flight_sectors(SectorSize::S512);
    assert_eq!(in_flight, vec![offset / 512]);

    // A crash that keeps the write, and one that loses it: both recover every allocation.
    for (kept_sectors, expected) in [(in_flight.as_slice(), b"tail!"), (&[], &[0u8; 5])] {
        let image = point.crash_image(SectorSize::S512, kept_sectors, CrashLength::Current);
        assert_eq!(image.len() as u64, PAGE_COUNT * PAGE_BYTES as u64);
        let recovered = SimPager::open_in(SimStorage::from_image(image)).unwrap();
        assert_eq!(recovered.page_count(), PAGE_COUNT);
        assert_eq!(recovered.allocated_page_count(), allocated);
        assert!(kept.iter().all(|&id| recovered.is_allocated(id)));
        assert_eq!(&last.get(&recovered).unwrap().as_bytes()[..5], expected);
    }

    // A crash at every sync since the pager was created (the growth's included) recovers a
    // pager of a known state: empty before the bulk allocation became durable, then every data
    // page, then the kept ones.
    let snapshots = pager.storage().sync_snapshots()[created_syncs..].to_vec();
    assert!(!snapshots.is_empty());
    let data_pages = Geometry::with_group_table(PAGE_BYTES).data_page_count(PAGE_COUNT);
    for snapshot in &snapshots {
        for length in [CrashLength::Durable, CrashLength::Current] {
            let image = snapshot.crash_image(SectorSize::S512, &[], length);
            let mut recovered = SimPager::open_in(SimStorage::from_image(image)).unwrap();
            let count = recovered.allocated_page_count();
            assert!([0, data_pages, allocated].contains(&count), "{count} pages");
            // The recovered pager still works, and its own crash images do too.
            recovered.set_space_reservation(false);
            let id = recovered.alloc().unwrap();
            let image = recovered.storage().durable_image();
            let again = SimPager::open_in(SimStorage::from_image(image)).unwrap();
            assert!(again.is_allocated(id));
        }
    }

    // Before crash images became sparse this took about 4 GiB at its peak.
    #[cfg(target_os = "linux")]
    {
        let peak_kib = peak_resident_kib();
        assert!(
            peak_kib <= 256 * 1024,
            "peak resident memory {peak_kib} KiB"
        );
    }
}
