//! Crash at every sync point of a workload, and inject a failure at every sync and growth.
//!
//! This is the floor the crash explorer (crashsim) builds on: for every sync of a workload that
//! allocates, frees, bulk-allocates, bulk-frees, grows the file several times and fills the
//! allocation log until bitmap groups are folded, the images a crash can leave (durable only,
//! everything written back, each single in-flight sector, all but one) must open (INV-1) to the
//! last acknowledged state or the one in flight (INV-2, INV-3), well-formed (INV-5), and survive a
//! crash during their own recovery (INV-6).

mod common;
use common::crash_images;

use std::collections::BTreeSet;

use mappedpages::{
    CrashLength, FailedSyncKeeps, IoOperation, MappedPageError, PageId, Pager, SectorSize,
    SimEvent, SimStorage, Storage,
};

const P: usize = 1024;
type SimPager = Pager<P, SimStorage>;
type Model = BTreeSet<u64>;

#[derive(Clone, Copy, Debug)]
enum Op {
    Alloc,
    AllocBulk(usize),
    /// Free the n-th smallest allocated page.
    Free(usize),
    /// Free every `step`-th allocated page, starting at the n-th.
    FreeBulk {
        start: usize,
        step: usize,
        count: usize,
    },
}

fn workload() -> Vec<Op> {
    let mut ops = vec![
        Op::Alloc,
        Op::Alloc,
        Op::Alloc,
        Op::AllocBulk(20),
        Op::Free(1),
    ];
    ops.push(Op::FreeBulk {
        start: 2,
        step: 3,
        count: 5,
    });
    ops.push(Op::AllocBulk(120));
    // Fragmenting single frees: one log entry each, until the log (56 entries at 1 KiB) folds.
    // Freeing index 3 + i skips one survivor each time, so no two freed pages are adjacent.
    for i in 0..70 {
        ops.push(Op::Free(3 + i));
    }
    ops.push(Op::AllocBulk(300));
    ops.push(Op::Alloc);
    ops.push(Op::FreeBulk {
        start: 0,
        step: 2,
        count: 40,
    });
    ops.push(Op::Alloc);
    ops
}

fn nth(model: &Model, n: usize) -> u64 {
    *model
        .iter()
        .nth(n % model.len())
        .expect("model is not empty")
}

/// Runs one op; on success returns the model after it.
fn run_op(pager: &mut SimPager, model: &Model, op: Op) -> Result<Model, MappedPageError> {
    let mut next = model.clone();
    match op {
        Op::Alloc => {
            let id = pager.alloc()?;
            assert!(
                next.insert(id.raw()),
                "INV-3: alloc returned owned page {}",
                id.raw()
            );
        }
        Op::AllocBulk(count) => {
            for id in pager.alloc_bulk(count)? {
                assert!(
                    next.insert(id.raw()),
                    "INV-3: alloc_bulk returned owned page {}",
                    id.raw()
                );
            }
        }
        Op::Free(n) => {
            let page = nth(model, n);
            pager.free(PageId::from_raw(page))?;
            next.remove(&page);
        }
        Op::FreeBulk { start, step, count } => {
            let pages: Vec<u64> = model
                .iter()
                .copied()
                .skip(start)
                .step_by(step)
                .take(count)
                .collect();
            pager.free_bulk(pages.iter().copied().map(PageId::from_raw).collect())?;
            for page in pages {
                next.remove(&page);
            }
        }
    }
    Ok(next)
}

struct Step {
    syncs_before: u64,
    syncs_after: u64,
    model_before: Model,
    model_after: Model,
}

/// Runs the workload to the end, recording a snapshot before every sync.
fn record_run() -> (SimPager, Vec<Step>, u64) {
    let mut storage = SimStorage::new();
    storage.record_sync_snapshots();
    let mut pager = SimPager::create_in(storage).expect("create");
    let create_syncs = pager.storage().sync_count();
    let mut model = Model::new();
    let mut steps = Vec::new();
    for op in workload() {
        let syncs_before = pager.storage().sync_count();
        let after = run_op(&mut pager, &model, op).expect("workload op");
        steps.push(Step {
            syncs_before,
            syncs_after: pager.storage().sync_count(),
            model_before: model,
            model_after: after.clone(),
        });
        model = after;
    }
    (pager, steps, create_syncs)
}

fn allocated(pager: &SimPager) -> Model {
    pager.iter_allocated_pages().map(|id| id.raw()).collect()
}

/// INV-5: the recovered pager is well-formed.
fn check_well_formed(pager: &SimPager) {
    let pages = allocated(pager);
    for &page in &pages {
        assert!(page > 4, "INV-5: internal page {page} listed as allocated");
        assert!(page < pager.page_count(), "INV-5: page {page} past the end");
    }
    assert_eq!(
        pages.len() as u64,
        pager.allocated_page_count(),
        "INV-5: counts disagree"
    );
    assert!(
        pager.storage().len_bytes() >= pager.page_count() * P as u64,
        "INV-5: file shorter than its page count"
    );
}

/// Opens `image`; the allocated set must be one of `allowed` (INV-1, INV-2, INV-3). Then checks
/// that recovery interrupted at each of its own syncs recovers the same state (INV-6), and that
/// allocation after recovery never hands out a recovered page (INV-3).
fn check_image(image: Vec<u8>, allowed: &[&Model], context: &str) -> Model {
    let mut storage = SimStorage::from_image(image.clone());
    storage.record_sync_snapshots();
    let mut pager = match SimPager::open_in(storage) {
        Ok(pager) => pager,
        Err(error) => panic!("INV-1: {context}: crash image does not open: {error}"),
    };
    let recovered = allocated(&pager);
    assert!(
        allowed.iter().any(|model| **model == recovered),
        "INV-2: {context}: recovered {} pages, allowed sets have {:?} pages",
        recovered.len(),
        allowed.iter().map(|m| m.len()).collect::<Vec<_>>()
    );
    check_well_formed(&pager);

    // INV-6: crash during recovery's own writes, then recover again.
    for (index, snapshot) in pager.storage().sync_snapshots().iter().enumerate() {
        let in_flight = snapshot.in_flight_sectors(SectorSize::S512);
        for kept in [Vec::new(), in_flight.clone()] {
            let image = snapshot.crash_image(SectorSize::S512, &kept, CrashLength::Current);
            let again = SimPager::open_in(SimStorage::from_image(image))
                .unwrap_or_else(|e| panic!("INV-6: {context}: recovery sync {index}: {e}"));
            assert_eq!(
                allocated(&again),
                recovered,
                "INV-6: {context}: rerun differs"
            );
        }
    }

    // Operations after recovery keep the guarantees.
    let fresh = pager.alloc_bulk(3).expect("alloc after recovery");
    for id in &fresh {
        assert!(
            !recovered.contains(&id.raw()),
            "INV-3: {context}: page {} handed out twice",
            id.raw()
        );
    }
    let mut expected = recovered.clone();
    expected.extend(fresh.iter().map(|id| id.raw()));
    let reopened = SimPager::open_in(SimStorage::from_image(pager.storage().durable_image()))
        .expect("reopen after recovery");
    assert_eq!(
        allocated(&reopened),
        expected,
        "INV-3: {context}: post-recovery commit lost"
    );
    recovered
}

#[test]
fn crash_at_every_sync_point_recovers_an_allowed_state() {
    let (pager, steps, create_syncs) = record_run();
    let snapshots = pager.storage().sync_snapshots().to_vec();
    let empty = Model::new();
    let mut images_checked = 0;
    for (index, snapshot) in snapshots.iter().enumerate() {
        let index = index as u64;
        let allowed: Vec<&Model> = if index < create_syncs {
            vec![&empty]
        } else {
            let step = steps
                .iter()
                .find(|s| s.syncs_before <= index && index < s.syncs_after)
                .expect("every sync belongs to an op");
            vec![&step.model_before, &step.model_after]
        };
        for sector in [SectorSize::S512, SectorSize::S4096] {
            for (name, image) in crash_images(snapshot, sector) {
                let context = format!("sync {index}, {sector:?}, {name}");
                if index < create_syncs {
                    // A crash during create: no file (not a mappedpages file) or an empty one.
                    match SimPager::open_in(SimStorage::from_image(image.clone())) {
                        Err(MappedPageError::NotAMappedPagesFile)
                        | Err(MappedPageError::FileTooSmall { .. }) => {}
                        Ok(_) => {
                            check_image(image, &allowed, &context);
                        }
                        Err(other) => panic!("INV-11: {context}: {other}"),
                    }
                } else {
                    check_image(image, &allowed, &context);
                }
                images_checked += 1;
            }
        }
    }
    // After the last sync nothing is in flight: the final state, exactly.
    let last = &steps.last().expect("steps").model_after;
    assert_eq!(
        &check_image(pager.storage().durable_image(), &[last], "end"),
        last
    );
    assert!(
        pager.page_count() > 128,
        "the workload must grow the file several times"
    );
    assert!(
        pager.storage().grow_count() >= 4,
        "at least three growths after create"
    );
    // A fold adds bitmap slot pages to the first barrier of a commit: more than one page.
    let groups_folded = pager
        .storage()
        .events()
        .iter()
        .skip(create_syncs as usize)
        .any(|event| {
            matches!(event, SimEvent::Sync { ranges, .. }
            if ranges.iter().map(|r| r.end - r.start).sum::<u64>() > P as u64)
        });
    assert!(groups_folded, "the workload must fold bitmap groups");
    println!(
        "{} syncs, {images_checked} crash images checked",
        snapshots.len()
    );
}

fn run_until_error(
    storage: SimStorage,
) -> (Option<SimPager>, Model, Option<(Step, MappedPageError)>) {
    let mut pager = match SimPager::create_in(storage) {
        Ok(pager) => pager,
        Err(error) => return (None, Model::new(), Some((dummy_step(), error))),
    };
    let mut model = Model::new();
    for op in workload() {
        let syncs_before = pager.storage().sync_count();
        match run_op(&mut pager, &model, op) {
            Ok(after) => model = after,
            Err(error) => {
                let step = Step {
                    syncs_before,
                    syncs_after: pager.storage().sync_count(),
                    model_before: model.clone(),
                    model_after: apply_expected(&model, op),
                };
                return (Some(pager), model, Some((step, error)));
            }
        }
    }
    (Some(pager), model, None)
}

fn dummy_step() -> Step {
    Step {
        syncs_before: 0,
        syncs_after: 0,
        model_before: Model::new(),
        model_after: Model::new(),
    }
}

/// The model the failed op would have produced. Allocation targets are not returned by a failed
/// call, so for allocs the "in flight" state is whatever superset recovery finds; frees are exact.
fn apply_expected(model: &Model, op: Op) -> Model {
    let mut next = model.clone();
    match op {
        Op::Free(n) => {
            next.remove(&nth(model, n));
        }
        Op::FreeBulk { start, step, count } => {
            for page in model
                .iter()
                .copied()
                .skip(start)
                .step_by(step)
                .take(count)
                .collect::<Vec<_>>()
            {
                next.remove(&page);
            }
        }
        Op::Alloc | Op::AllocBulk(_) => {}
    }
    next
}

#[test]
fn failed_sync_poisons_and_loses_nothing_acknowledged() {
    let (pager, _, _) = record_run();
    let total_syncs = pager.storage().sync_count();
    let mut cases = 0;
    for index in 0..total_syncs {
        for keeps in [
            FailedSyncKeeps::Nothing,
            FailedSyncKeeps::Everything,
            FailedSyncKeeps::Seeded(index),
        ] {
            let mut storage = SimStorage::new();
            storage.fail_sync_at(index, keeps);
            let (pager, acknowledged, failure) = run_until_error(storage);
            let (step, error) = failure.expect("the injected failure surfaces as an error");
            assert!(
                matches!(
                    error,
                    MappedPageError::Io {
                        operation: IoOperation::Sync,
                        ..
                    }
                ),
                "INV-7: sync {index}: expected a sync error, got {error}"
            );
            let Some(mut pager) = pager else {
                continue; // create failed: nothing was ever acknowledged.
            };
            // INV-7: poisoned, every later call refuses.
            assert!(pager.is_poisoned());
            assert!(matches!(
                pager.alloc(),
                Err(MappedPageError::Poisoned { .. })
            ));
            assert!(matches!(
                pager.alloc_bulk(2),
                Err(MappedPageError::Poisoned { .. })
            ));
            if let Some(&page) = acknowledged.iter().next() {
                let id = PageId::<P>::from_raw(page);
                assert!(matches!(
                    pager.free(id),
                    Err(MappedPageError::Poisoned { .. })
                ));
                assert!(matches!(
                    id.get(&pager),
                    Err(MappedPageError::Poisoned { .. })
                ));
                assert!(matches!(
                    pager.sync_page(id),
                    Err(MappedPageError::Poisoned { .. })
                ));
            }
            assert_eq!(
                pager.iter_allocated_pages().count(),
                0,
                "a poisoned pager lists nothing"
            );
            // What is on disk holds every acknowledged allocation, and the failed op at most.
            let storage = pager.into_storage();
            for kept_all in [false, true] {
                let kept = if kept_all {
                    storage.in_flight_sectors(SectorSize::S512)
                } else {
                    Vec::new()
                };
                let image = storage.crash_image(SectorSize::S512, &kept, CrashLength::Current);
                let reopened = SimPager::open_in(SimStorage::from_image(image))
                    .unwrap_or_else(|e| panic!("INV-1: after failed sync {index}: {e}"));
                let recovered = allocated(&reopened);
                let is_before = recovered == step.model_before;
                let is_after = recovered == step.model_after
                    || (recovered.is_superset(&step.model_before)
                        && step.model_after == step.model_before);
                assert!(
                    is_before || is_after,
                    "INV-7: failed sync {index} ({keeps:?}): recovered {} pages, acknowledged {}",
                    recovered.len(),
                    step.model_before.len()
                );
                check_well_formed(&reopened);
            }
            cases += 1;
        }
    }
    println!("{cases} failed-sync cases over {total_syncs} syncs");
}

#[test]
fn failed_growth_changes_nothing_and_the_pager_goes_on() {
    let (pager, steps, _) = record_run();
    let total_grows = pager.storage().grow_count();
    let final_model = steps.last().expect("steps").model_after.clone();
    for index in 0..total_grows {
        let mut storage = SimStorage::new();
        storage.fail_grow_at(index);
        let mut pager = match SimPager::create_in(storage) {
            Ok(pager) => pager,
            Err(MappedPageError::Io {
                operation: IoOperation::Grow,
                ..
            }) => {
                assert_eq!(index, 0, "only create's growth can fail create");
                continue;
            }
            Err(other) => panic!("create: {other}"),
        };
        let mut model = Model::new();
        let mut failures = 0;
        for op in workload() {
            let before_pages = pager.page_count();
            let result = run_op(&mut pager, &model, op);
            let result = match result {
                Err(MappedPageError::Io {
                    operation: IoOperation::Grow,
                    ..
                }) => {
                    failures += 1;
                    // INV-7: nothing changed, nothing poisoned.
                    assert!(!pager.is_poisoned());
                    assert_eq!(pager.page_count(), before_pages);
                    assert_eq!(
                        allocated(&pager),
                        model,
                        "INV-7: failed growth changed state"
                    );
                    let durable =
                        SimPager::open_in(SimStorage::from_image(pager.storage().durable_image()))
                            .expect("durable image after failed growth");
                    assert_eq!(allocated(&durable), model);
                    // Retry: the next growth succeeds.
                    run_op(&mut pager, &model, op)
                }
                other => other,
            };
            model = result.expect("op after failed growth");
        }
        assert_eq!(failures, 1, "growth {index} failed exactly once");
        assert_eq!(model.len(), final_model.len());
        let reopened = SimPager::open_in(SimStorage::from_image(pager.storage().durable_image()))
            .expect("reopen");
        assert_eq!(allocated(&reopened), model);
    }
}

/// A storage whose failed growth leaves it without its bytes (as a `MmapStorage` on Windows whose
/// old view could not be mapped again after the file was cut back): `bytes` is empty while
/// `len_bytes` is not.
struct LosesBytesOnFailedGrowth {
    inner: SimStorage,
    fail_growth: std::rc::Rc<std::cell::Cell<bool>>,
    lost: bool,
}

impl Storage for LosesBytesOnFailedGrowth {
    fn len_bytes(&self) -> u64 {
        self.inner.len_bytes()
    }
    fn grow(&mut self, new_len_bytes: u64) -> std::io::Result<()> {
        if self.fail_growth.get() {
            self.lost = true;
            return Err(std::io::Error::other(
                "injected: the old view could not be mapped again",
            ));
        }
        self.inner.grow(new_len_bytes)
    }
    fn bytes(&self) -> &[u8] {
        if self.lost { &[] } else { self.inner.bytes() }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        if self.lost {
            &mut []
        } else {
            self.inner.bytes_mut()
        }
    }
    fn sync_ranges(&mut self, ranges: &[std::ops::Range<u64>]) -> std::io::Result<()> {
        self.inner.sync_ranges(ranges)
    }
    fn sync_all(&mut self) -> std::io::Result<()> {
        self.inner.sync_all()
    }
    fn reserve(&mut self, ranges: &[std::ops::Range<u64>]) -> std::io::Result<()> {
        self.inner.reserve(ranges)
    }
    fn shrink(&mut self, new_len_bytes: u64) -> std::io::Result<()> {
        self.inner.shrink(new_len_bytes)
    }
}

/// A failed growth that cost the storage its bytes poisons the pager (every later call is
/// `Poisoned`) instead of letting it index an empty map.
#[test]
fn a_failed_growth_that_loses_the_map_poisons() {
    let fail_growth = std::rc::Rc::new(std::cell::Cell::new(false));
    let storage = LosesBytesOnFailedGrowth {
        inner: SimStorage::new(),
        fail_growth: fail_growth.clone(),
        lost: false,
    };
    let mut pager = Pager::<P, _>::create_in(storage).expect("create");
    let pages = pager.page_count();
    fail_growth.set(true);
    match pager.alloc_bulk(pages as usize * 4) {
        Err(MappedPageError::Io {
            operation: IoOperation::Grow,
            ..
        }) => {}
        other => panic!("expected Io {{ Grow }}, got {other:?}"),
    }
    assert!(pager.is_poisoned());
    fail_growth.set(false);
    assert!(matches!(
        pager.alloc(),
        Err(MappedPageError::Poisoned { .. })
    ));
}
