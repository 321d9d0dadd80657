//! Pages filled in their allocation's commit (`alloc_with`, `alloc_bulk_with`, SPEC.md §3.6.1):
//! barriers per call, settling before a write, the fallbacks, a panicking fill, format-1 files,
//! and a real file. crashsim's `filled` workloads explore every crash state of the same calls
//! (INV-15).

use std::panic::{self, AssertUnwindSafe};

use mappedpages::format::Superblock;
use mappedpages::{CommitMode, MappedPageError, PageId, Pager, SimStorage, Storage};

const P: usize = 1024;

fn single_sync() -> Pager<P, SimStorage> {
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    pager.set_commit_mode(CommitMode::SingleSync);
    pager
}

fn durable_page(pager: &Pager<P, SimStorage>, id: PageId<P>) -> Vec<u8> {
    let start = id.raw() as usize * P;
    pager.storage().durable_image()[start..start + P].to_vec()
}

#[test]
fn a_filled_page_is_durable_after_one_barrier_in_single_sync_mode_and_two_in_flip_mode() {
    for (mode, barriers) in [(CommitMode::SingleSync, 1), (CommitMode::Flip, 2)] {
        let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
        pager.set_commit_mode(mode);
        let before = pager.storage().sync_count();
        let id = pager
            .alloc_with(|page| page.as_bytes_mut().fill(0x5A))
            .unwrap();
        assert_eq!(pager.storage().sync_count() - before, barriers, "{mode:?}");
        assert_eq!(durable_page(&pager, id), vec![0x5A; P], "{mode:?}");
        // Reopened from what is durable: allocated, with its bytes.
        let reopened = Pager::<P, SimStorage>::open_in(SimStorage::from_image(
            pager.storage().durable_image(),
        ))
        .unwrap();
        assert!(reopened.is_allocated(id));
        assert_eq!(id.get(&reopened).unwrap().as_bytes(), &[0x5A; P][..]);
    }
}

#[test]
fn a_bulk_fill_is_one_commit_with_every_page() {
    let mut pager = single_sync();
    let before = pager.storage().sync_count();
    let ids = pager
        .alloc_bulk_with(40, |index, page| page.as_bytes_mut().fill(index as u8))
        .unwrap();
    assert_eq!(pager.storage().sync_count() - before, 1);
    for (index, &id) in ids.iter().enumerate() {
        assert_eq!(durable_page(&pager, id), vec![index as u8; P]);
    }
    assert!(
        pager
            .alloc_bulk_with(0, |_, _| panic!("no page"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn writing_a_just_filled_page_settles_its_commit_first_once() {
    let mut pager = single_sync();
    let id = pager
        .alloc_with(|page| page.as_bytes_mut().fill(1))
        .unwrap();
    let named_before = Superblock::decode(&pager.storage().durable_image())
        .unwrap()
        .active_generation;
    assert!(
        named_before < pager.generation(),
        "single-sync leaves the superblock behind"
    );
    let before = pager.storage().sync_count();
    id.get_mut(&mut pager).unwrap().as_bytes_mut().fill(2);
    assert_eq!(
        pager.storage().sync_count() - before,
        1,
        "the settle barrier"
    );
    assert_eq!(
        Superblock::decode(&pager.storage().durable_image())
            .unwrap()
            .active_generation,
        pager.generation(),
        "the superblock names the filling commit"
    );
    // Settled once: a second write costs nothing.
    let before = pager.storage().sync_count();
    id.get_mut(&mut pager).unwrap().as_bytes_mut().fill(3);
    assert_eq!(pager.storage().sync_count(), before);
    // The new bytes made durable, the commit survives a reopen.
    pager.sync_page(id).unwrap();
    let reopened =
        Pager::<P, SimStorage>::open_in(SimStorage::from_image(pager.storage().durable_image()))
            .unwrap();
    assert!(reopened.is_allocated(id));
    assert_eq!(id.get(&reopened).unwrap().as_bytes(), &[3; P][..]);
}

#[test]
fn a_page_filled_before_a_later_commit_is_written_without_settling() {
    let mut pager = single_sync();
    let id = pager
        .alloc_with(|page| page.as_bytes_mut().fill(1))
        .unwrap();
    pager.alloc().unwrap(); // a later commit, without data checks
    let before = pager.storage().sync_count();
    id.get_mut(&mut pager).unwrap().as_bytes_mut().fill(2);
    assert_eq!(pager.storage().sync_count(), before);
}

#[test]
fn a_fill_into_more_runs_than_the_data_checks_hold_takes_a_barrier_of_its_own() {
    let mut pager = single_sync();
    let ids = pager.alloc_bulk(80).unwrap();
    // Every other page free: 30 one-page runs, more than 56 / 2 data checks at 1 KiB.
    pager
        .free_bulk(ids.iter().step_by(2).take(30).copied().collect())
        .unwrap();
    let before = pager.storage().sync_count();
    let filled = pager
        .alloc_bulk_with(30, |_, page| page.as_bytes_mut().fill(9))
        .unwrap();
    assert_eq!(
        pager.storage().sync_count() - before,
        2,
        "data first, then the commit"
    );
    for id in filled {
        assert_eq!(durable_page(&pager, id), vec![9; P]);
    }
    // Nothing is left unsettled by the fallback: writing costs no barrier.
    let before = pager.storage().sync_count();
    ids[1].get_mut(&mut pager).unwrap().as_bytes_mut()[0] = 1;
    assert_eq!(pager.storage().sync_count(), before);
}

#[test]
fn a_panicking_fill_allocates_nothing_and_undoes_its_growth() {
    let mut pager = single_sync();
    let (pages, allocated, len) = (
        pager.page_count(),
        pager.allocated_page_count(),
        pager.storage().len_bytes(),
    );
    let syncs = pager.storage().sync_count();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        pager.alloc_bulk_with(5_000, |index, page| {
            page.as_bytes_mut().fill(1);
            assert!(index < 4_000, "the caller's fill fails");
        })
    }));
    assert!(result.is_err());
    assert_eq!(pager.page_count(), pages);
    assert_eq!(pager.allocated_page_count(), allocated);
    assert_eq!(pager.storage().len_bytes(), len);
    assert_eq!(pager.storage().sync_count(), syncs);
    assert!(!pager.is_poisoned());
    // The pager goes on.
    let id = pager.alloc_with(|page| page.as_bytes_mut()[0] = 7).unwrap();
    assert_eq!(id.get(&pager).unwrap().as_bytes()[0], 7);
}

#[test]
fn a_failed_barrier_poisons_and_nothing_filled_is_allocated_after_reopen() {
    // The create takes syncs 0 and 1; the fill's commit is sync 2.
    let mut storage = SimStorage::new();
    storage.fail_sync_at(2, mappedpages::FailedSyncKeeps::Nothing);
    let mut pager = Pager::<P, SimStorage>::create_in(storage).unwrap();
    pager.set_commit_mode(CommitMode::SingleSync);
    let error = pager
        .alloc_with(|page| page.as_bytes_mut().fill(4))
        .unwrap_err();
    assert!(matches!(error, MappedPageError::Io { .. }), "{error}");
    assert!(pager.is_poisoned());
    let reopened =
        Pager::<P, SimStorage>::open_in(SimStorage::from_image(pager.storage().durable_image()))
            .unwrap();
    assert_eq!(reopened.allocated_page_count(), 0);
}

/// A format-1 image: a new format-2 file with its superblock rewritten as version 1 (the two
/// formats share their layout; format 1 has no data checks).
fn format_1_image() -> Vec<u8> {
    let pager = Pager::<P, SimStorage>::create_in_format(SimStorage::new(), 2).unwrap();
    let mut image = pager.storage().durable_image();
    let superblock = Superblock::decode(&image).unwrap();
    assert_eq!(superblock.version, 2);
    let record = Superblock {
        version: 1,
        ..superblock
    }
    .encode();
    image[..record.len()].copy_from_slice(&record);
    image
}

#[test]
fn a_format_1_file_opens_keeps_its_version_and_gets_no_data_checks() {
    let mut pager =
        Pager::<P, SimStorage>::open_in(SimStorage::from_image(format_1_image())).unwrap();
    pager.set_commit_mode(CommitMode::SingleSync);
    let before = pager.storage().sync_count();
    let id = pager
        .alloc_with(|page| page.as_bytes_mut().fill(6))
        .unwrap();
    assert_eq!(
        pager.storage().sync_count() - before,
        2,
        "data first, then the commit"
    );
    // A flip commit and a reopen keep version 1.
    pager.set_commit_mode(CommitMode::Flip);
    pager.alloc().unwrap();
    let image = pager.storage().durable_image();
    assert_eq!(Superblock::decode(&image).unwrap().version, 1);
    let reopened = Pager::<P, SimStorage>::open_in(SimStorage::from_image(image)).unwrap();
    assert_eq!(id.get(&reopened).unwrap().as_bytes(), &[6; P][..]);
}

#[test]
fn a_filled_page_on_a_real_file_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let mut pager = Pager::<4096>::create(&path).unwrap();
    pager.set_commit_mode(CommitMode::SingleSync);
    let id = pager
        .alloc_with(|page| page.as_bytes_mut()[..5].copy_from_slice(b"hello"))
        .unwrap();
    drop(pager);
    let pager = Pager::<4096>::open(&path).unwrap();
    assert_eq!(&id.get(&pager).unwrap().as_bytes()[..5], b"hello");
}

#[test]
fn shared_fills_from_many_threads_are_all_durable_with_their_bytes() {
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    pager.set_commit_mode(CommitMode::SingleSync);
    let shared = mappedpages::SharedPager::new(pager);
    let threads: Vec<_> = (0..8u8)
        .map(|thread| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                (0..20u8)
                    .map(|n| {
                        let value = thread * 20 + n;
                        let id = if n % 5 == 0 {
                            shared
                                .alloc_bulk_with(2, move |_, page| page.as_bytes_mut().fill(value))
                                .unwrap()
                        } else {
                            vec![
                                shared
                                    .alloc_with(move |page| page.as_bytes_mut().fill(value))
                                    .unwrap(),
                            ]
                        };
                        (id, value)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let written: Vec<(Vec<PageId<P>>, u8)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    let stats = shared.stats();
    assert_eq!(stats.operations, 160);
    let pager = shared.into_inner().unwrap();
    let reopened =
        Pager::<P, SimStorage>::open_in(SimStorage::from_image(pager.storage().durable_image()))
            .unwrap();
    assert_eq!(reopened.allocated_page_count(), 8 * (16 + 4 * 2));
    for (ids, value) in written {
        for id in ids {
            assert_eq!(id.get(&reopened).unwrap().as_bytes(), &[value; P][..]);
        }
    }
}

#[test]
fn a_panicking_shared_fill_fails_only_its_own_call() {
    let shared = mappedpages::SharedPager::new(single_sync());
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        shared.alloc_with(|_| panic!("the caller's fill fails"))
    }));
    assert!(result.is_err());
    let id = shared
        .alloc_with(|page| page.as_bytes_mut().fill(3))
        .unwrap();
    assert_eq!(shared.page(id).unwrap().as_bytes()[0], 3);
    let pager = shared.into_inner().unwrap();
    assert!(!pager.is_poisoned());
    assert_eq!(pager.allocated_page_count(), 1);
}

#[test]
fn a_shared_write_to_a_just_filled_page_settles_first() {
    let shared = mappedpages::SharedPager::new(single_sync());
    let id = shared
        .alloc_with(|page| page.as_bytes_mut().fill(1))
        .unwrap();
    shared
        .write_page(id, |page| page.as_bytes_mut().fill(2))
        .unwrap();
    shared.sync_page(id).unwrap();
    let pager = shared.into_inner().unwrap();
    let image = pager.storage().durable_image();
    assert_eq!(
        Superblock::decode(&image).unwrap().active_generation,
        pager.generation()
    );
    let reopened = Pager::<P, SimStorage>::open_in(SimStorage::from_image(image)).unwrap();
    assert_eq!(id.get(&reopened).unwrap().as_bytes(), &[2; P][..]);
}

#[test]
fn group_commits_without_fills_take_one_barrier_on_a_format_1_file() {
    let mut pager =
        Pager::<P, SimStorage>::open_in(SimStorage::from_image(format_1_image())).unwrap();
    pager.set_commit_mode(CommitMode::SingleSync);
    let shared = mappedpages::SharedPager::new(pager);
    let before = shared.read().storage().sync_count();
    shared.alloc().unwrap();
    assert_eq!(shared.read().storage().sync_count() - before, 1);
    let before = shared.read().storage().sync_count();
    shared
        .alloc_with(|page| page.as_bytes_mut().fill(5))
        .unwrap();
    assert_eq!(
        shared.read().storage().sync_count() - before,
        2,
        "the format-1 fallback: data first, then the commit"
    );
}
