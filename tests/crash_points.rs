//! What the API does after an injected sync or growth failure, at every sync and every growth of
//! a workload that grows the file several times (SPEC.md §3.4, INV-7).
//!
//! The crash states themselves (every sync point, torn sectors, recovery crashes, what a failure
//! leaves on disk) are judged by crashsim, not here: `crashsim/tests/crash_points.rs` explores
//! this file's former workload with crashsim's judge (`cargo test --release -p crashsim --test
//! crash_points`), and the `.ci/run` gate explores the built-in workloads. This file keeps only
//! what crashsim's judge does not look at: the errors a poisoned pager returns, and that a
//! failed growth neither poisons nor changes anything and a retry succeeds.

use std::collections::BTreeSet;

use mappedpages::{FailedSyncKeeps, IoOperation, MappedPageError, PageId, Pager, SimStorage};

#[path = "common/loses_bytes.rs"]
mod loses_bytes;
use loses_bytes::LosesBytesOnFailedGrowth;

const P: usize = 1024;
type SimPager = Pager<P, SimStorage>;

/// Step `step` of the workload: bulk allocations that grow the file, with a free now and then.
fn step(
    pager: &mut SimPager,
    allocated: &mut BTreeSet<u64>,
    step: usize,
) -> Result<(), MappedPageError> {
    if step % 3 == 2 {
        if let Some(&page) = allocated.iter().nth(step % allocated.len().max(1)) {
            pager.free(PageId::from_raw(page))?;
            allocated.remove(&page);
        }
        return Ok(());
    }
    for id in pager.alloc_bulk(40)? {
        assert!(
            allocated.insert(id.raw()),
            "page {} handed out twice",
            id.raw()
        );
    }
    Ok(())
}

const STEPS: usize = 24;

fn allocated(pager: &SimPager) -> BTreeSet<u64> {
    pager.iter_allocated_pages().map(|id| id.raw()).collect()
}

/// The syncs and growths of the whole workload, without failures.
fn clean_counts() -> (u64, u64) {
    let mut pager = SimPager::create_in(SimStorage::new()).expect("create");
    let mut model = BTreeSet::new();
    for index in 0..STEPS {
        step(&mut pager, &mut model, index).expect("workload step");
    }
    assert!(
        pager.storage().grow_count() >= 4,
        "the workload grows the file several times"
    );
    (pager.storage().sync_count(), pager.storage().grow_count())
}

#[test]
fn failed_sync_poisons_and_every_later_call_refuses() {
    let (syncs, _) = clean_counts();
    for index in 0..syncs {
        for keeps in [
            FailedSyncKeeps::Nothing,
            FailedSyncKeeps::Everything,
            FailedSyncKeeps::Seeded(index),
        ] {
            let mut storage = SimStorage::new();
            storage.fail_sync_at(index, keeps);
            let mut pager = match SimPager::create_in(storage) {
                Ok(pager) => pager,
                Err(MappedPageError::Io {
                    operation: IoOperation::Sync,
                    ..
                }) => continue,
                Err(other) => panic!("sync {index}: create gave {other}"),
            };
            let mut model = BTreeSet::new();
            let error = (0..STEPS)
                .find_map(|i| step(&mut pager, &mut model, i).err())
                .unwrap_or_else(|| panic!("sync {index}: the injected failure surfaces"));
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
            assert!(pager.is_poisoned(), "INV-7: sync {index}: poisoned");
            assert!(matches!(
                pager.alloc(),
                Err(MappedPageError::Poisoned { .. })
            ));
            assert!(matches!(
                pager.alloc_bulk(2),
                Err(MappedPageError::Poisoned { .. })
            ));
            if let Some(&page) = model.iter().next() {
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
        }
    }
}

#[test]
fn failed_growth_changes_nothing_and_a_retry_succeeds() {
    let (_, growths) = clean_counts();
    for index in 0..growths {
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
        let mut model = BTreeSet::new();
        let mut failures = 0;
        for i in 0..STEPS {
            let pages_before = pager.page_count();
            match step(&mut pager, &mut model, i) {
                Err(MappedPageError::Io {
                    operation: IoOperation::Grow,
                    ..
                }) => {
                    failures += 1;
                    // INV-7: nothing changed, nothing poisoned, memory is what is durable.
                    assert!(!pager.is_poisoned(), "growth {index}: not poisoned");
                    assert_eq!(pager.page_count(), pages_before);
                    assert_eq!(
                        allocated(&pager),
                        model,
                        "INV-7: failed growth changed state"
                    );
                    let durable =
                        SimPager::open_in(SimStorage::from_image(pager.storage().durable_image()))
                            .expect("durable image after failed growth");
                    assert_eq!(allocated(&durable), model);
                    step(&mut pager, &mut model, i).expect("the retry succeeds");
                }
                other => other.expect("workload step"),
            }
        }
        assert_eq!(failures, 1, "growth {index} failed exactly once");
        let reopened = SimPager::open_in(SimStorage::from_image(pager.storage().durable_image()))
            .expect("reopen");
        assert_eq!(allocated(&reopened), model);
    }
}

/// A failed growth that cost the storage its bytes poisons the pager (every later call is
/// `Poisoned`) instead of letting it index an empty map.
#[test]
fn a_failed_growth_that_loses_the_map_poisons() {
    let (storage, fail_growth) = LosesBytesOnFailedGrowth::new();
    let mut pager = Pager::<P, _>::create_in(storage).expect("create");
    let pages = pager.page_count();
    fail_growth.store(true, std::sync::atomic::Ordering::SeqCst);
    match pager.alloc_bulk(pages as usize * 4) {
        Err(MappedPageError::Io {
            operation: IoOperation::Grow,
            ..
        }) => {}
        other => panic!("expected Io {{ Grow }}, got {other:?}"),
    }
    assert!(pager.is_poisoned());
    fail_growth.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        pager.alloc(),
        Err(MappedPageError::Poisoned { .. })
    ));
}
