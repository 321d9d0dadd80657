//! `SubPageAllocator`: a seeded model test, rebuild after a restart, and failure atomicity.
//!
//! * The model test runs thousands of random steps (alloc, free, their bulk forms, and calls that
//!   must fail) and after every step compares the allocator with a model of the ids it owns:
//!   the listing, the counts, the parent pages held by the pager, the allocation policy (free
//!   slots first, at most one commit per call), and the bytes of every owned sub-page.
//! * The restart test reopens the storage and rebuilds the allocator from the model's ids.
//! * The failure tests make a sync (or a growth) fail inside a call that needs the pager and
//!   check that the allocator's state is exactly what it was before the call.

use std::collections::{BTreeMap, BTreeSet};

use mappedpages::{
    FailedSyncKeeps, IoOperation, MappedPageError, PageId, Pager, SimStorage, SubPageAllocator,
    SubPageId,
};

type Sub<const P: usize, const S: usize> = SubPageAllocator<P, S, SimStorage>;
type Id<const P: usize, const S: usize> = SubPageId<P, S>;

// ----- helpers ---------------------------------------------------------------------------------

/// xorshift64*: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The bytes written into a sub-page when it is allocated: every byte depends on the tag, which
/// is unique per allocation, so two overlapping sub-pages cannot both keep their pattern.
fn pattern(tag: u64, len: usize) -> Vec<u8> {
    let mut z = tag.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (0..len)
        .map(|i| (z >> (8 * (i % 8))) as u8 ^ (i / 8) as u8)
        .collect()
}

fn new_sub<const P: usize, const S: usize>(storage: SimStorage) -> Sub<P, S> {
    SubPageAllocator::new(Pager::<P, SimStorage>::create_in(storage).unwrap())
}

/// The ids the allocator owns, with the pattern each holds.
struct Model<const P: usize, const S: usize> {
    owned: BTreeMap<Id<P, S>, Vec<u8>>,
    /// Ids freed at some point (some may have been handed out again since).
    freed: Vec<Id<P, S>>,
    next_tag: u64,
}

impl<const P: usize, const S: usize> Model<P, S> {
    fn new() -> Self {
        Model {
            owned: BTreeMap::new(),
            freed: Vec::new(),
            next_tag: 1,
        }
    }

    fn ids(&self) -> BTreeSet<Id<P, S>> {
        self.owned.keys().copied().collect()
    }

    fn parents(&self) -> BTreeSet<u64> {
        self.owned.keys().map(|id| id.parent().raw()).collect()
    }

    fn pick_owned(&self, rng: &mut Rng) -> Option<Id<P, S>> {
        if self.owned.is_empty() {
            return None;
        }
        self.owned.keys().nth(rng.below(self.owned.len())).copied()
    }

    /// Up to `count` distinct owned ids, in random order.
    fn pick_owned_many(&self, rng: &mut Rng, count: usize) -> Vec<Id<P, S>> {
        let mut all: Vec<Id<P, S>> = self.owned.keys().copied().collect();
        rng.shuffle(&mut all);
        all.truncate(count);
        all
    }

    /// An id the allocator does not own: a freed one, or a random one.
    fn pick_not_owned(&self, rng: &mut Rng) -> Id<P, S> {
        loop {
            let id = match rng.below(3) {
                0 if !self.freed.is_empty() => self.freed[rng.below(self.freed.len())],
                1 => Id::<P, S>::from_raw(rng.next()),
                _ => Id::<P, S>::from_raw(rng.below(64 * Id::<P, S>::PER_PAGE as usize) as u64),
            };
            if !self.owned.contains_key(&id) {
                return id;
            }
        }
    }

    /// Records a new id and writes its pattern.
    fn take(&mut self, sub: &mut Sub<P, S>, id: Id<P, S>) {
        assert!(!self.owned.contains_key(&id), "{id:?} handed out twice");
        let bytes = pattern(self.next_tag, S);
        self.next_tag += 1;
        id.get_mut(sub)
            .unwrap()
            .as_bytes_mut()
            .copy_from_slice(&bytes);
        self.owned.insert(id, bytes);
    }

    fn release(&mut self, id: Id<P, S>) {
        assert!(self.owned.remove(&id).is_some());
        self.freed.push(id);
        if self.freed.len() > 256 {
            self.freed.remove(0);
        }
    }
}

/// The allocator's observable state, to compare before and after a failed call.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot<const P: usize, const S: usize> {
    listed: Vec<Id<P, S>>,
    allocated: u64,
    parents: u64,
    free_slots: u64,
}

fn snapshot<const P: usize, const S: usize>(sub: &Sub<P, S>) -> Snapshot<P, S> {
    Snapshot {
        listed: sub.iter_allocated().collect(),
        allocated: sub.allocated_count(),
        parents: sub.parent_page_count(),
        free_slots: sub.free_slot_count(),
    }
}

/// Everything the allocator reports agrees with the model.
fn check<const P: usize, const S: usize>(sub: &Sub<P, S>, model: &Model<P, S>) {
    let per_page = u64::from(Id::<P, S>::PER_PAGE);
    let listed: Vec<Id<P, S>> = sub.iter_allocated().collect();
    let expected: Vec<Id<P, S>> = model.owned.keys().copied().collect();
    assert_eq!(listed, expected, "listing differs from the model");
    assert_eq!(sub.allocated_count(), model.owned.len() as u64);

    let parents = model.parents();
    assert_eq!(sub.parent_page_count(), parents.len() as u64);
    assert_eq!(sub.pager().allocated_page_count(), parents.len() as u64);
    let pager_pages: BTreeSet<u64> = sub
        .pager()
        .iter_allocated_pages()
        .map(|p| p.raw())
        .collect();
    assert_eq!(
        pager_pages, parents,
        "the pager's pages are the parent pages"
    );
    assert_eq!(
        sub.free_slot_count(),
        parents.len() as u64 * per_page - model.owned.len() as u64
    );

    for (&id, bytes) in &model.owned {
        assert!(sub.is_allocated(id));
        assert!(id.slot() < Id::<P, S>::PER_PAGE);
        assert_eq!(Id::<P, S>::from_raw(id.raw()), id);
        assert_eq!(Id::<P, S>::from_parts(id.parent(), id.slot()), Some(id));
        let page = id.get(sub).unwrap();
        assert_eq!(page.len(), S);
        assert!(
            page.as_bytes() == bytes.as_slice(),
            "{id:?} lost its bytes (overlap)"
        );
    }
}

// ----- the model test --------------------------------------------------------------------------

fn step<const P: usize, const S: usize>(
    sub: &mut Sub<P, S>,
    model: &mut Model<P, S>,
    rng: &mut Rng,
    growing: bool,
) {
    let per_page = Id::<P, S>::PER_PAGE as usize;
    let free_before = sub.free_slot_count() as usize;
    let pages_before = sub.pager().allocated_page_count();
    let generation = sub.pager().generation();
    let parents_before = model.parents();
    let roll = rng.below(100);
    let (alloc, alloc_bulk, free, free_bulk) = if growing {
        (35, 55, 75, 90)
    } else {
        (15, 25, 60, 90)
    };

    if roll < alloc {
        let id = sub.alloc().unwrap();
        if free_before > 0 {
            assert!(
                parents_before.contains(&id.parent().raw()),
                "a free slot is used first"
            );
            assert_eq!(sub.pager().generation(), generation, "no commit");
        } else {
            assert_eq!(sub.pager().generation(), generation + 1, "one commit");
        }
        model.take(sub, id);
    } else if roll < alloc_bulk {
        let count = rng.below(2 * per_page + 4);
        let ids = sub.alloc_bulk(count).unwrap();
        assert_eq!(ids.len(), count);
        let distinct: BTreeSet<Id<P, S>> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), count, "alloc_bulk returned an id twice");
        let into_old = ids
            .iter()
            .filter(|id| parents_before.contains(&id.parent().raw()))
            .count();
        assert_eq!(
            into_old,
            count.min(free_before),
            "free slots are used first"
        );
        let new_parents = count.saturating_sub(free_before).div_ceil(per_page) as u64;
        assert_eq!(
            sub.pager().allocated_page_count(),
            pages_before + new_parents
        );
        let commits = u64::from(new_parents > 0);
        assert_eq!(
            sub.pager().generation(),
            generation + commits,
            "at most one commit"
        );
        for id in ids {
            model.take(sub, id);
        }
    } else if roll < free {
        let Some(id) = model.pick_owned(rng) else {
            return;
        };
        let last_in_parent = model
            .owned
            .keys()
            .filter(|other| other.parent() == id.parent())
            .count()
            == 1;
        sub.free(id).unwrap();
        model.release(id);
        assert_eq!(sub.pager().is_allocated(id.parent()), !last_in_parent);
        assert_eq!(
            sub.pager().generation(),
            generation + u64::from(last_in_parent)
        );
    } else if roll < free_bulk {
        let count = if !growing && rng.below(100) == 0 {
            model.owned.len()
        } else {
            rng.below(2 * per_page + 4)
        };
        let ids = model.pick_owned_many(rng, count);
        for &id in &ids {
            model.release(id);
        }
        let emptied = parents_before.len() - model.parents().len();
        sub.free_bulk(ids).unwrap();
        assert_eq!(
            sub.pager().allocated_page_count(),
            pages_before - emptied as u64
        );
        assert_eq!(
            sub.pager().generation(),
            generation + u64::from(emptied > 0),
            "at most one commit"
        );
    } else {
        invalid_step(sub, model, rng);
        assert_eq!(
            sub.pager().generation(),
            generation,
            "a failed call commits nothing"
        );
    }
}

/// A call that must fail, and change nothing.
fn invalid_step<const P: usize, const S: usize>(
    sub: &mut Sub<P, S>,
    model: &Model<P, S>,
    rng: &mut Rng,
) {
    let before = snapshot(sub);
    let bad = model.pick_not_owned(rng);
    let not_allocated = |id: Id<P, S>| {
        move |error: MappedPageError| {
            assert!(
                matches!(error, MappedPageError::SubPageNotAllocated { page, slot }
                    if page == id.parent().raw() && slot == id.slot()),
                "expected SubPageNotAllocated for {id:?}, got {error:?}"
            );
        }
    };
    match rng.below(5) {
        0 => not_allocated(bad)(sub.free(bad).unwrap_err()),
        1 => not_allocated(bad)(bad.get(sub).unwrap_err()),
        2 => not_allocated(bad)(bad.get_mut(sub).unwrap_err()),
        3 => {
            // Valid ids around one that is not allocated: nothing is freed.
            let count = rng.below(2 * Id::<P, S>::PER_PAGE as usize + 1);
            let mut ids = model.pick_owned_many(rng, count);
            let at = rng.below(ids.len() + 1);
            ids.insert(at, bad);
            not_allocated(bad)(sub.free_bulk(ids).unwrap_err());
        }
        _ => {
            // Valid ids, one of them twice: nothing is freed.
            let count = 1 + rng.below(8);
            let mut ids = model.pick_owned_many(rng, count);
            let Some(&twice) = ids.first() else {
                return;
            };
            ids.push(twice);
            let error = sub.free_bulk(ids).unwrap_err();
            assert!(
                matches!(error, MappedPageError::DuplicateSubPageId { page, slot }
                    if page == twice.parent().raw() && slot == twice.slot()),
                "expected DuplicateSubPageId for {twice:?}, got {error:?}"
            );
        }
    }
    assert_eq!(snapshot(sub), before, "a rejected call changed the state");
}

fn run_steps<const P: usize, const S: usize>(
    sub: &mut Sub<P, S>,
    model: &mut Model<P, S>,
    rng: &mut Rng,
    steps: usize,
) {
    for i in 0..steps {
        // Alternate growing and shrinking phases, so parent pages fill up and empty again.
        let cap = 24 * Id::<P, S>::PER_PAGE as usize;
        let growing = (i / 300) % 2 == 0 && model.owned.len() < cap;
        step(sub, model, rng, growing);
        check(sub, model);
    }
}

fn model_test<const P: usize, const S: usize>(seed: u64, steps: usize) {
    let mut rng = Rng::new(seed);
    let mut sub = new_sub::<P, S>(SimStorage::new());
    let mut model = Model::new();
    run_steps(&mut sub, &mut model, &mut rng, steps);
    // Free everything: every parent page goes back to the pager.
    let all: Vec<Id<P, S>> = model.ids().into_iter().collect();
    for &id in &all {
        model.release(id);
    }
    sub.free_bulk(all).unwrap();
    check(&sub, &model);
    assert_eq!(sub.pager().allocated_page_count(), 0);
}

#[test]
fn model_1024_128() {
    for seed in [1, 2, 3] {
        model_test::<1024, 128>(seed, 3000);
    }
}

#[test]
fn model_4096_64() {
    for seed in [11, 12] {
        model_test::<4096, 64>(seed, 3000);
    }
}

#[test]
fn model_1024_512() {
    // Two slots per parent page: parent pages come and go all the time.
    model_test::<1024, 512>(21, 3000);
}

// ----- rebuild after a restart -----------------------------------------------------------------

/// The first page of `pager` that is a free data page.
fn free_data_page<const P: usize>(pager: &Pager<P, SimStorage>) -> PageId<P> {
    (0..pager.page_count())
        .map(PageId::<P>::from_raw)
        .find(|p| matches!(p.get(pager), Err(MappedPageError::NotAllocated { .. })))
        .unwrap()
}

fn restart_test<const P: usize, const S: usize>(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut sub = new_sub::<P, S>(SimStorage::new());
    let mut model = Model::new();
    run_steps(&mut sub, &mut model, &mut rng, 1000);
    let ids = sub.alloc_bulk(4).unwrap();
    for id in ids {
        model.take(&mut sub, id);
    }
    sub.sync_all().unwrap();
    let parents = model.parents();

    // Restart: the storage alone survives. Every attempt below opens its own copy of it.
    let storage = sub.into_pager().into_storage();
    let reopen = || Pager::<P, SimStorage>::open_in(storage.clone()).unwrap();
    assert_eq!(reopen().allocated_page_count(), parents.len() as u64);
    let mut ids: Vec<Id<P, S>> = model.ids().into_iter().collect();
    rng.shuffle(&mut ids);

    // A duplicate id: rejected, and `try_rebuild` gives the pager back.
    let twice = ids[rng.below(ids.len())];
    let mut with_duplicate = ids.clone();
    with_duplicate.insert(rng.below(ids.len() + 1), twice);
    let (error, pager) = Sub::<P, S>::try_rebuild(reopen(), with_duplicate).unwrap_err();
    assert!(
        matches!(error, MappedPageError::DuplicateSubPageId { page, slot }
            if page == twice.parent().raw() && slot == twice.slot()),
        "{error:?}"
    );
    assert_eq!(pager.allocated_page_count(), parents.len() as u64);

    // Ids whose parent is not an allocated data page of the pager: rejected.
    let free_page = free_data_page(&pager);
    let past_end = PageId::<P>::from_raw(pager.page_count() + 3);
    type Expected = fn(&MappedPageError) -> bool;
    let bogus: [(Id<P, S>, Expected); 3] = [
        (Id::<P, S>::from_parts(free_page, 1).unwrap(), |e| {
            matches!(e, MappedPageError::NotAllocated { .. })
        }),
        (
            Id::<P, S>::from_parts(PageId::from_raw(0), 0).unwrap(),
            |e| matches!(e, MappedPageError::ReservedPage { page: 0 }),
        ),
        (Id::<P, S>::from_parts(past_end, 0).unwrap(), |e| {
            matches!(e, MappedPageError::OutOfBounds { .. })
        }),
    ];
    for (bad, expected) in bogus {
        let mut with_bogus = ids.clone();
        with_bogus.insert(rng.below(ids.len() + 1), bad);
        let error = Sub::<P, S>::rebuild(reopen(), with_bogus).unwrap_err();
        assert!(expected(&error), "{bad:?}: {error:?}");
    }

    // The real rebuild, from the ids in any order: same ids, same parent pages, same bytes.
    let mut sub = Sub::<P, S>::rebuild(reopen(), ids.iter().copied()).unwrap();
    check(&sub, &model);
    assert_eq!(sub.parent_page_count(), parents.len() as u64);

    // It keeps working: more random steps, checked against the same model.
    run_steps(&mut sub, &mut model, &mut rng, 1000);
}

#[test]
fn restart_1024_128() {
    restart_test::<1024, 128>(31);
}

#[test]
fn restart_4096_64() {
    restart_test::<4096, 64>(41);
}

/// Parent pages none of whose sub-pages are passed to `rebuild` stay allocated in the pager and
/// are never used by the allocator.
#[test]
fn rebuild_leaves_unnamed_parents_alone() {
    let mut sub = new_sub::<1024, 128>(SimStorage::new());
    let ids = sub.alloc_bulk(8 * 3).unwrap();
    let parents: BTreeSet<PageId<1024>> = ids.iter().map(|id| id.parent()).collect();
    assert_eq!(parents.len(), 3);
    let forgotten = *parents.iter().next().unwrap();
    let kept: Vec<Id<1024, 128>> = ids
        .iter()
        .copied()
        .filter(|id| id.parent() != forgotten && id.slot() % 2 == 0)
        .collect();

    let pager = Pager::open_in(sub.into_pager().into_storage()).unwrap();
    let mut sub = Sub::<1024, 128>::rebuild(pager, kept.iter().copied()).unwrap();
    assert_eq!(sub.allocated_count(), kept.len() as u64);
    assert_eq!(sub.parent_page_count(), 2);
    assert_eq!(sub.pager().allocated_page_count(), 3);
    let first = Id::<1024, 128>::from_parts(forgotten, 0).unwrap();
    assert!(!sub.is_allocated(first));
    assert!(matches!(
        sub.free(first),
        Err(MappedPageError::SubPageNotAllocated { .. })
    ));

    // The free slots of the two known parents come first, then new parents; never `forgotten`.
    let more = sub.alloc_bulk(8 + 20).unwrap();
    assert!(more.iter().all(|id| id.parent() != forgotten));
    assert_eq!(sub.pager().allocated_page_count(), 3 + 3);

    // The caller frees the forgotten page through the pager.
    let mut pager = sub.into_pager();
    pager.free(forgotten).unwrap();
    assert_eq!(pager.allocated_page_count(), 5);
}

/// Pages the pager held before `new` are not the allocator's: it never uses or frees them.
#[test]
fn new_leaves_existing_pages_alone() {
    let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    let mine = pager.alloc().unwrap();
    let mut sub = Sub::<1024, 256>::new(pager);
    let ids = sub.alloc_bulk(9).unwrap();
    assert!(ids.iter().all(|id| id.parent() != mine));
    assert!(matches!(
        sub.free(Id::<1024, 256>::from_parts(mine, 0).unwrap()),
        Err(MappedPageError::SubPageNotAllocated { .. })
    ));
    sub.free_bulk(ids).unwrap();
    assert_eq!(sub.pager().allocated_page_count(), 1);
    assert!(sub.pager().is_allocated(mine));
}

// ----- failure atomicity -----------------------------------------------------------------------

/// Runs `setup` on a fresh allocator, then `op`, twice: once to count the syncs (and growths)
/// before `op`, once with the first sync (or growth) inside `op` made to fail. Returns the
/// allocator of the failing run, its state before `op`, and `op`'s error.
fn fail_inside<const P: usize, const S: usize>(
    mut setup: impl FnMut(&mut Sub<P, S>) -> Vec<Id<P, S>>,
    op: impl Fn(&mut Sub<P, S>, &[Id<P, S>]) -> Result<(), MappedPageError>,
    fail_growth: bool,
) -> (Sub<P, S>, Vec<Id<P, S>>, Snapshot<P, S>, MappedPageError) {
    let mut dry = new_sub::<P, S>(SimStorage::new());
    let ids = setup(&mut dry);
    let syncs = dry.pager().storage().sync_count();
    let growths = dry.pager().storage().grow_count();
    op(&mut dry, &ids).unwrap();
    if fail_growth {
        assert!(
            dry.pager().storage().grow_count() > growths,
            "op must grow the file"
        );
    } else {
        assert!(dry.pager().storage().sync_count() > syncs, "op must sync");
    }

    let mut storage = SimStorage::new();
    if fail_growth {
        storage.fail_grow_at(growths);
    } else {
        storage.fail_sync_at(syncs, FailedSyncKeeps::Nothing);
    }
    let mut sub = new_sub::<P, S>(storage);
    let ids = setup(&mut sub);
    assert_eq!(sub.pager().storage().sync_count(), syncs, "the runs differ");
    let before = snapshot(&sub);
    let error = op(&mut sub, &ids).unwrap_err();
    assert_eq!(snapshot(&sub), before, "a failed call changed the state");
    (sub, ids, before, error)
}

/// After a failed sync: the error is the sync's, the state is as before, and every call that
/// needs the pager reports `Poisoned` (and changes nothing either).
fn check_poisoned_after<const P: usize, const S: usize>(
    setup: impl Fn(&mut Sub<P, S>) -> Vec<Id<P, S>>,
    op: impl Fn(&mut Sub<P, S>, &[Id<P, S>]) -> Result<(), MappedPageError>,
) {
    let (mut sub, ids, before, error) = fail_inside(setup, op, false);
    assert!(
        matches!(
            error,
            MappedPageError::Io {
                operation: IoOperation::Sync,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(sub.pager().is_poisoned());
    let poisoned = |result: Result<(), MappedPageError>| {
        assert!(
            matches!(result, Err(MappedPageError::Poisoned { .. })),
            "{result:?}"
        );
    };
    let owned = ids[0];
    poisoned(sub.alloc().map(drop));
    poisoned(sub.alloc_bulk(3).map(drop));
    poisoned(sub.free(owned));
    poisoned(sub.free_bulk(ids.clone()));
    poisoned(owned.get(&sub).map(drop));
    poisoned(owned.get_mut(&mut sub).map(drop));
    poisoned(sub.sync_parent(owned));
    assert_eq!(snapshot(&sub), before);
    assert!(sub.is_allocated(owned));
}

/// Fills `parents` parent pages completely.
fn fill<const P: usize, const S: usize>(sub: &mut Sub<P, S>, parents: usize) -> Vec<Id<P, S>> {
    sub.alloc_bulk(parents * Id::<P, S>::PER_PAGE as usize)
        .unwrap()
}

#[test]
fn failed_sync_in_alloc_of_a_new_parent() {
    check_poisoned_after::<1024, 128>(|sub| fill(sub, 2), |sub, _| sub.alloc().map(drop));
    check_poisoned_after::<4096, 64>(|sub| fill(sub, 1), |sub, _| sub.alloc().map(drop));
}

#[test]
fn failed_sync_in_alloc_bulk() {
    // Partial parents to fill first, and new parents: the slots planned in the partial parents
    // must not stay taken.
    check_poisoned_after::<1024, 128>(
        |sub| {
            let ids = sub.alloc_bulk(8 * 3).unwrap();
            sub.free_bulk(vec![ids[1], ids[9], ids[10]]).unwrap();
            ids.into_iter().filter(|id| sub.is_allocated(*id)).collect()
        },
        |sub, _| sub.alloc_bulk(3 + 8 * 2 + 1).map(drop),
    );
}

#[test]
fn failed_sync_in_free_of_a_parents_last_sub_page() {
    check_poisoned_after::<1024, 128>(
        |sub| {
            let ids = fill(sub, 2);
            let (last, rest): (Vec<_>, Vec<_>) = ids.into_iter().partition(|id| id.slot() == 0);
            sub.free_bulk(rest).unwrap();
            last
        },
        |sub, ids| sub.free(ids[0]),
    );
    check_poisoned_after::<4096, 64>(
        |sub| vec![sub.alloc().unwrap()],
        |sub, ids| sub.free(ids[0]),
    );
}

#[test]
fn failed_sync_in_free_bulk() {
    check_poisoned_after::<1024, 128>(
        |sub| {
            let mut ids = fill(sub, 3);
            ids.push(sub.alloc().unwrap());
            ids
        },
        // Empties three parent pages, and takes slots from a fourth.
        |sub, ids| sub.free_bulk(ids[..8 * 3 + 1].to_vec()),
    );
}

/// A failed growth is not a failed sync: the pager is not poisoned, and after the error the
/// allocator is exactly as before and goes on working.
#[test]
fn failed_growth_changes_nothing() {
    // Fill every data page of the new file: the next parent page needs a growth.
    let mut parents = 0;
    let (mut sub, ids, before, error) = fail_inside::<1024, 512>(
        |sub| {
            parents = sub.pager().free_page_count() as usize;
            fill(sub, parents)
        },
        |sub, _| sub.alloc().map(drop),
        true,
    );
    assert!(
        matches!(
            error,
            MappedPageError::Io {
                operation: IoOperation::Grow,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!sub.pager().is_poisoned());
    assert_eq!(snapshot(&sub), before);
    let id = sub.alloc().unwrap();
    assert!(!ids.contains(&id));
    assert_eq!(sub.parent_page_count(), parents as u64 + 1);
    sub.free(id).unwrap();
    sub.free_bulk(ids).unwrap();
    assert_eq!(sub.pager().allocated_page_count(), 0);
}

/// Runs `setup`, then `op` with its first sync (or its last, if `last_sync`) failing and
/// keeping `keeps`; returns the ids the allocator still owns and the pager reopened
/// from what a crash right then would leave on disk (the durable image).
fn crash_after_failed_sync(
    setup: impl Fn(&mut Sub<1024, 128>) -> Vec<Id<1024, 128>>,
    op: impl Fn(&mut Sub<1024, 128>, &[Id<1024, 128>]) -> Result<(), MappedPageError>,
    last_sync: bool,
    keeps: FailedSyncKeeps,
) -> (Vec<Id<1024, 128>>, Pager<1024, SimStorage>) {
    let mut dry = new_sub::<1024, 128>(SimStorage::new());
    let ids = setup(&mut dry);
    let syncs = dry.pager().storage().sync_count();
    op(&mut dry, &ids).unwrap();
    let fail_at = if last_sync {
        dry.pager().storage().sync_count() - 1
    } else {
        syncs
    };

    let mut storage = SimStorage::new();
    storage.fail_sync_at(fail_at, keeps);
    let mut sub = new_sub::<1024, 128>(storage);
    let ids = setup(&mut sub);
    let before = snapshot(&sub);
    assert!(op(&mut sub, &ids).is_err());
    assert_eq!(snapshot(&sub), before);
    let owned: Vec<Id<1024, 128>> = sub.iter_allocated().collect();
    let durable = sub.into_pager().into_storage().durable_image();
    let pager = Pager::<1024, SimStorage>::open_in(SimStorage::from_image(durable)).unwrap();
    (owned, pager)
}

/// The failed call's commit is lost when its first sync fails and kept nothing, and found when
/// its last sync (the superblock's) did its work before failing. Either way the ids the
/// allocator still reports rebuild it; a found commit leaves the new parent page allocated with
/// no sub-page named in it, for the caller to free (as documented).
#[test]
fn reopen_after_failed_alloc() {
    let setup = |sub: &mut Sub<1024, 128>| fill(sub, 1);
    let op = |sub: &mut Sub<1024, 128>, _: &[Id<1024, 128>]| sub.alloc().map(drop);

    let (owned, pager) = crash_after_failed_sync(setup, op, false, FailedSyncKeeps::Nothing);
    assert_eq!(pager.allocated_page_count(), 1, "the failed commit is lost");
    let sub = Sub::<1024, 128>::rebuild(pager, owned.iter().copied()).unwrap();
    assert_eq!((sub.allocated_count(), sub.parent_page_count()), (8, 1));

    let (owned, pager) = crash_after_failed_sync(setup, op, true, FailedSyncKeeps::Everything);
    assert_eq!(
        pager.allocated_page_count(),
        2,
        "the failed commit is found"
    );
    let mut sub = Sub::<1024, 128>::rebuild(pager, owned.iter().copied()).unwrap();
    assert_eq!((sub.allocated_count(), sub.parent_page_count()), (8, 1));
    let known = owned[0].parent();
    let leaked: Vec<PageId<1024>> = sub
        .pager()
        .iter_allocated_pages()
        .filter(|&p| p != known)
        .collect();
    assert_eq!(leaked.len(), 1);
    let mut pager = sub.into_pager();
    pager.free(leaked[0]).unwrap();
    sub = Sub::<1024, 128>::rebuild(pager, owned.iter().copied()).unwrap();
    sub.alloc().unwrap();
    assert_eq!(sub.pager().allocated_page_count(), 2);
}

/// A free whose commit (releasing the parent page) failed: the allocator still reports the
/// sub-page. If the commit is found on reopening, `rebuild` rejects that sub-page (its parent
/// is free), and the caller, who was freeing it, drops it from the list.
#[test]
fn reopen_after_failed_free() {
    let setup = |sub: &mut Sub<1024, 128>| vec![sub.alloc().unwrap(), sub.alloc().unwrap()];
    let op = |sub: &mut Sub<1024, 128>, ids: &[Id<1024, 128>]| sub.free_bulk(ids.to_vec());

    let (owned, pager) = crash_after_failed_sync(setup, op, false, FailedSyncKeeps::Nothing);
    assert_eq!(owned.len(), 2);
    let sub = Sub::<1024, 128>::rebuild(pager, owned.iter().copied()).unwrap();
    assert_eq!(sub.allocated_count(), 2);

    let (owned, pager) = crash_after_failed_sync(setup, op, true, FailedSyncKeeps::Everything);
    assert_eq!(owned.len(), 2);
    let (error, pager) = Sub::<1024, 128>::try_rebuild(pager, owned.iter().copied()).unwrap_err();
    assert!(
        matches!(error, MappedPageError::NotAllocated { page } if page == owned[0].parent().raw()),
        "{error:?}"
    );
    let sub = Sub::<1024, 128>::rebuild(pager, []).unwrap();
    assert_eq!(sub.pager().allocated_page_count(), 0);
}
