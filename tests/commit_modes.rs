//! The two commit modes (SPEC.md §3.2, §3.2.1): barrier counts, files holding commits of both
//! modes, the recovery decision, and what single-sync mode does not promise (a damaged newest
//! metadata copy rolls the last commit back instead of being reported).
//!
//! Crashes at every sync in both modes are covered by `tests/protected.rs` and by crashsim, which
//! runs every workload in both modes.

use std::collections::BTreeSet;

use mappedpages::format::{MetaPage, MetaSlot};
use mappedpages::{CommitMode, MappedPageError, Pager, RecoveryDecision, SimStorage};

const P: usize = 1024;
type SimPager = Pager<P, SimStorage>;

fn reopen_durable(pager: &SimPager) -> Result<SimPager, MappedPageError> {
    SimPager::open_in(SimStorage::from_image(pager.storage().durable_image()))
}

fn allocated(pager: &SimPager) -> BTreeSet<u64> {
    pager.iter_allocated_pages().map(|id| id.raw()).collect()
}

/// Which metadata copy holds the higher generation in `image` (the newest commit).
fn newest_copy(image: &[u8]) -> MetaSlot {
    let generation = |slot: MetaSlot| {
        let start = slot.page() as usize * P;
        MetaPage::decode(
            &image[start..start + P],
            mappedpages::format::Geometry::with_group_table(P),
        )
        .map_or(0, |meta| meta.generation)
    };
    if generation(MetaSlot::A) > generation(MetaSlot::B) {
        MetaSlot::A
    } else {
        MetaSlot::B
    }
}

#[test]
fn every_regular_operation_takes_one_barrier_in_single_sync_mode_and_two_otherwise() {
    for (mode, expected) in [(CommitMode::Flip, 2), (CommitMode::SingleSync, 1)] {
        let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
        pager.set_commit_mode(mode);
        let syncs = |pager: &SimPager| pager.storage().sync_count();
        let mut ids = Vec::new();
        // 40 single allocations grow the file (16 pages at first) several times.
        for round in 0..40 {
            let before = syncs(&pager);
            ids.push(pager.alloc().unwrap());
            assert_eq!(syncs(&pager) - before, expected, "{mode:?}: alloc {round}");
        }
        assert!(pager.storage().grow_count() > 1, "the loop must grow");
        let before = syncs(&pager);
        let bulk = pager.alloc_bulk(3000).unwrap();
        assert_eq!(syncs(&pager) - before, expected, "{mode:?}: alloc_bulk");
        let before = syncs(&pager);
        pager.free_bulk(bulk).unwrap();
        assert_eq!(syncs(&pager) - before, expected, "{mode:?}: free_bulk");
        for id in ids {
            let before = syncs(&pager);
            pager.free(id).unwrap();
            assert_eq!(syncs(&pager) - before, expected, "{mode:?}: free");
        }
    }
}

#[test]
fn a_file_may_hold_commits_of_both_modes() {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    let mut model = BTreeSet::new();
    // Modes change every few commits; after every commit, the durable image alone (a crash
    // right after the call returned) must recover exactly the acknowledged state.
    for step in 0..60u64 {
        let mode = if (step / 3) % 2 == 0 {
            CommitMode::SingleSync
        } else {
            CommitMode::Flip
        };
        pager.set_commit_mode(mode);
        if step % 4 == 3 {
            let victim = *model.iter().nth(step as usize % model.len()).unwrap();
            pager
                .free(mappedpages::PageId::<P>::from_raw(victim))
                .unwrap();
            model.remove(&victim);
        } else {
            model.insert(pager.alloc().unwrap().raw());
        }
        let reopened = reopen_durable(&pager).unwrap();
        assert_eq!(allocated(&reopened), model, "step {step} ({mode:?})");
        let expected = match mode {
            CommitMode::SingleSync => RecoveryDecision::NewerSingleSyncCommit,
            _ => RecoveryDecision::Superblock,
        };
        assert_eq!(
            reopened.recovery_decision(),
            Some(expected),
            "step {step} ({mode:?})"
        );
    }
    // Reopening for real (recovery rewrites the superblock) and going on in either mode.
    let storage = pager.into_storage();
    let mut pager = SimPager::open_in(storage).unwrap();
    assert_eq!(allocated(&pager), model);
    pager.set_commit_mode(CommitMode::SingleSync);
    model.insert(pager.alloc().unwrap().raw());
    let pager = SimPager::open_in(pager.into_storage()).unwrap();
    assert_eq!(allocated(&pager), model);
}

/// SPEC.md §3.2.1, what single-sync mode does not promise: a newest metadata copy damaged by the
/// medium is indistinguishable from one a crash left incomplete, so the last commit rolls back.
/// `Flip` mode reports the same damage as an error, because the superblock names the commit.
#[test]
fn damaged_newest_metadata_rolls_back_in_single_sync_mode_and_is_reported_in_flip_mode() {
    for mode in [CommitMode::Flip, CommitMode::SingleSync] {
        let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
        pager.set_commit_mode(mode);
        let first = pager.alloc().unwrap().raw();
        let second = pager.alloc().unwrap().raw();
        let mut image = pager.storage().durable_image();
        let newest = newest_copy(&image);
        image[newest.page() as usize * P + 200] ^= 0x40;
        let result = SimPager::open_in(SimStorage::from_image(image));
        match mode {
            CommitMode::SingleSync => {
                let reopened = result.expect("single-sync: opens at the previous commit");
                assert_eq!(allocated(&reopened), BTreeSet::from([first]));
                assert!(!reopened.is_allocated(mappedpages::PageId::from_raw(second)));
            }
            _ => assert!(
                matches!(result, Err(MappedPageError::CorruptMetadata { .. })),
                "flip: the damage is reported: {result:?}"
            ),
        }
    }
}

/// A single-sync copy that is complete except for a protected page it committed is not taken:
/// recovery falls back to the previous commit (SPEC.md §4.1 step 8).
#[test]
fn single_sync_copy_whose_protected_content_did_not_arrive_is_not_taken() {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    pager.set_commit_mode(CommitMode::SingleSync);
    let id = pager.alloc_protected().unwrap();
    let mut writer = id.get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut().fill(0xAB);
    writer.commit().unwrap();
    let committed = pager.storage().durable_image();
    // The page that now holds 0xAB: lose it, as if its sectors never reached the disk.
    let page = committed
        .chunks(P)
        .position(|bytes| bytes.iter().all(|&b| b == 0xAB))
        .expect("the staged copy is on disk");
    let mut image = committed.clone();
    image[page * P..(page + 1) * P].fill(0);
    let reopened = SimPager::open_in(SimStorage::from_image(image)).unwrap();
    assert_eq!(
        id.get(&reopened).unwrap().as_bytes(),
        &[0u8; P][..],
        "the previous commit: the page as allocated (zeros)"
    );
    let intact = SimPager::open_in(SimStorage::from_image(committed)).unwrap();
    assert_eq!(
        intact.recovery_decision(),
        Some(RecoveryDecision::NewerSingleSyncCommit)
    );
    assert_eq!(id.get(&intact).unwrap().as_bytes(), &[0xABu8; P][..]);
}
