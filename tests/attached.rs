//! Pages changed in place and attached to the next commit (`attach_to_next_commit`, SPEC.md
//! §3.6.2): durable in that commit's first barrier, whatever the commit, with no barrier of their
//! own; the set they form, its bound and what forgets a page; and a real file. crashsim's
//! `filled` workloads explore every crash state of the same calls (INV-16).

use mappedpages::{
    ATTACHED_PAGES_MAX, CommitMode, FailedSyncKeeps, MappedPageError, PageId, Pager, SimStorage,
};

const P: usize = 1024;

fn pager(mode: CommitMode) -> Pager<P, SimStorage> {
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    pager.set_commit_mode(mode);
    pager
}

fn durable_page(pager: &Pager<P, SimStorage>, id: PageId<P>) -> Vec<u8> {
    let start = id.raw() as usize * P;
    pager.storage().durable_image()[start..start + P].to_vec()
}

/// `id` filled with `byte` in the map (not durable) and attached.
fn change_and_attach(pager: &mut Pager<P, SimStorage>, id: PageId<P>, byte: u8) {
    id.get_mut(pager).unwrap().as_bytes_mut().fill(byte);
    pager.attach_to_next_commit(id).unwrap();
}

#[test]
fn an_attached_page_is_durable_with_the_next_commit_and_costs_no_barrier() {
    for (mode, barriers) in [(CommitMode::SingleSync, 1), (CommitMode::Flip, 2)] {
        let mut pager = pager(mode);
        let page = pager.alloc_with(|p| p.as_bytes_mut().fill(1)).unwrap();
        let other = pager.alloc().unwrap(); // the fill is settled before the page is written
        change_and_attach(&mut pager, page, 2);
        assert_eq!(pager.attached_page_count(), 1);
        assert_eq!(
            durable_page(&pager, page),
            vec![1; P],
            "{mode:?}: not before the commit"
        );

        let before = pager.storage().sync_count();
        let new = pager.alloc_with(|p| p.as_bytes_mut().fill(3)).unwrap();
        assert_eq!(pager.storage().sync_count() - before, barriers, "{mode:?}");
        assert_eq!(pager.attached_page_count(), 0);
        assert_eq!(durable_page(&pager, page), vec![2; P], "{mode:?}");
        assert_eq!(durable_page(&pager, new), vec![3; P], "{mode:?}");

        // A free is a commit too.
        change_and_attach(&mut pager, page, 4);
        pager.free(other).unwrap();
        assert_eq!(durable_page(&pager, page), vec![4; P], "{mode:?}");
    }
}

/// An operation that commits.
type Commit = fn(&mut Pager<P, SimStorage>);

#[test]
fn every_kind_of_commit_takes_the_attached_pages() {
    let mut pager = pager(CommitMode::Flip);
    let page = pager.alloc().unwrap();
    let commits: [(&str, Commit); 5] = [
        ("alloc", |p| {
            p.alloc().unwrap();
        }),
        ("alloc_bulk", |p| {
            p.alloc_bulk(3).unwrap();
        }),
        ("free_bulk", |p| {
            let ids = p.alloc_bulk(2).unwrap();
            p.free_bulk(ids).unwrap();
        }),
        ("alloc_protected", |p| {
            p.alloc_protected().unwrap();
        }),
        ("protected commit", |p| {
            let id = p.alloc_protected().unwrap();
            let mut writer = id.get_mut(p).unwrap();
            writer.page_mut().as_bytes_mut().fill(9);
            writer.commit().unwrap();
        }),
    ];
    for (byte, (name, commit)) in (10u8..).zip(commits) {
        change_and_attach(&mut pager, page, byte);
        commit(&mut pager);
        assert_eq!(durable_page(&pager, page), vec![byte; P], "{name}");
        assert_eq!(pager.attached_page_count(), 0, "{name}");
    }
}

#[test]
fn adjacent_attached_pages_join_one_range_of_the_barrier() {
    let mut pager = pager(CommitMode::SingleSync);
    let ids = pager.alloc_bulk(6).unwrap();
    for &id in &[ids[0], ids[1], ids[2], ids[4]] {
        change_and_attach(&mut pager, id, 7);
    }
    change_and_attach(&mut pager, ids[1], 8); // attaching again attaches once
    assert_eq!(pager.attached_page_count(), 4);
    pager.alloc().unwrap();
    let first = |id: PageId<P>| id.raw() * P as u64;
    let barrier = pager.storage().sync_log().pop().unwrap();
    assert!(
        barrier.contains(&(first(ids[0])..first(ids[2]) + P as u64)),
        "{barrier:?}"
    );
    assert!(
        barrier.contains(&(first(ids[4])..first(ids[4]) + P as u64)),
        "{barrier:?}"
    );
    assert_eq!(durable_page(&pager, ids[1]), vec![8; P]);
    assert_eq!(durable_page(&pager, ids[3]), vec![0; P]);
}

#[test]
fn a_synced_page_is_forgotten_and_a_free_takes_every_attached_page() {
    let mut pager = pager(CommitMode::SingleSync);
    let ids = pager.alloc_bulk(3).unwrap();
    for &id in &ids {
        change_and_attach(&mut pager, id, 5);
    }
    pager.sync_page(ids[0]).unwrap();
    assert_eq!(pager.attached_page_count(), 2);
    pager.free(ids[1]).unwrap(); // a commit: takes ids[2] as well
    assert_eq!(pager.attached_page_count(), 0);
    assert_eq!(durable_page(&pager, ids[2]), vec![5; P]);

    change_and_attach(&mut pager, ids[2], 6);
    pager.free_bulk(vec![ids[2]]).unwrap();
    assert_eq!(pager.attached_page_count(), 0);

    change_and_attach(&mut pager, ids[0], 7);
    let before = pager.storage().sync_count();
    pager.sync_all().unwrap();
    assert_eq!(pager.storage().sync_count() - before, 1);
    assert_eq!(pager.attached_page_count(), 0);
    assert_eq!(durable_page(&pager, ids[0]), vec![7; P]);
}

#[test]
fn only_allocated_data_pages_can_be_attached() {
    let mut pager = pager(CommitMode::Flip);
    let free = pager.alloc().unwrap();
    pager.free(free).unwrap();
    let beyond = PageId::<P>::from_raw(pager.page_count() + 100);
    assert!(matches!(
        pager.attach_to_next_commit(beyond),
        Err(MappedPageError::OutOfBounds { .. })
    ));
    assert!(matches!(
        pager.attach_to_next_commit(PageId::from_raw(0)),
        Err(MappedPageError::ReservedPage { page: 0 })
    ));
    assert!(matches!(
        pager.attach_to_next_commit(free),
        Err(MappedPageError::NotAllocated { .. })
    ));
    // The pages a protected page owns (its two copies, its directory block) are never regular
    // pages: attaching one is `ReservedPage`, as for the internal pages.
    let reserved = |pager: &mut Pager<P, SimStorage>| {
        (0..pager.page_count())
            .filter(|&page| {
                matches!(
                    pager.attach_to_next_commit(PageId::from_raw(page)),
                    Err(MappedPageError::ReservedPage { .. })
                )
            })
            .count()
    };
    let before = reserved(&mut pager);
    pager.alloc_protected().unwrap();
    assert!(reserved(&mut pager) >= before + 2);
    assert_eq!(pager.attached_page_count(), 0);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "65,537 pages: minutes under Miri; the bound is plain code"
)]
fn the_set_is_bounded_and_one_more_changes_nothing() {
    let mut pager = pager(CommitMode::SingleSync);
    let ids = pager.alloc_bulk(ATTACHED_PAGES_MAX + 1).unwrap();
    for &id in &ids[..ATTACHED_PAGES_MAX] {
        pager.attach_to_next_commit(id).unwrap();
    }
    let error = pager
        .attach_to_next_commit(ids[ATTACHED_PAGES_MAX])
        .unwrap_err();
    assert!(
        matches!(error, MappedPageError::TooManyAttached { max_pages } if max_pages == ATTACHED_PAGES_MAX)
    );
    assert!(error.to_string().contains("sync_all"), "{error}");
    // An attached page again is no new entry, so it is accepted.
    pager.attach_to_next_commit(ids[0]).unwrap();
    assert_eq!(pager.attached_page_count(), ATTACHED_PAGES_MAX);
    pager.alloc().unwrap();
    assert_eq!(pager.attached_page_count(), 0);
    pager
        .attach_to_next_commit(ids[ATTACHED_PAGES_MAX])
        .unwrap();
}

#[test]
fn a_failed_commit_poisons_and_a_poisoned_pager_attaches_nothing() {
    let mut probe = pager(CommitMode::Flip);
    probe.alloc().unwrap();
    let next = probe.storage().sync_count(); // the first barrier of the next commit
    let mut storage = SimStorage::new();
    storage.fail_sync_at(next, FailedSyncKeeps::Nothing);
    let mut pager = Pager::<P, SimStorage>::create_in(storage).unwrap();
    let page = pager.alloc().unwrap();
    change_and_attach(&mut pager, page, 3);
    assert!(pager.alloc().is_err());
    assert!(pager.is_poisoned());
    assert!(matches!(
        pager.attach_to_next_commit(page),
        Err(MappedPageError::Poisoned { .. })
    ));
    // Nothing of the failed commit is durable: the page keeps its old bytes.
    assert_eq!(durable_page(&pager, page), vec![0; P]);
}

#[test]
#[cfg_attr(miri, ignore = "Miri does not support file-backed memory maps")]
fn a_real_file_keeps_an_attached_page_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attached.bin");
    let (page, new) = {
        let mut pager = Pager::<4096>::create(&path).unwrap();
        pager.set_commit_mode(CommitMode::SingleSync);
        let page = pager.alloc().unwrap();
        page.get_mut(&mut pager).unwrap().as_bytes_mut().fill(0xAB);
        pager.attach_to_next_commit(page).unwrap();
        let new = pager.alloc_with(|p| p.as_bytes_mut().fill(0xCD)).unwrap();
        (page, new)
    };
    let pager = Pager::<4096>::open(&path).unwrap();
    assert_eq!(page.get(&pager).unwrap().as_bytes(), &[0xAB; 4096][..]);
    assert_eq!(new.get(&pager).unwrap().as_bytes(), &[0xCD; 4096][..]);
}
