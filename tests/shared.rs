//! `SharedPager` group commits, made deterministic (SPEC.md §3.10).
//!
//! [`group`] builds a group on purpose: the test holds a read guard, so the first caller becomes
//! the leader and waits for the pager lock while every other caller queues behind it; once all
//! of them are queued ([`SharedPager::pending_operations`]) the guard drops and the leader takes
//! them all into one group commit. No timing is involved: the test waits for a count.

use std::panic;
use std::thread;

use mappedpages::{
    CommitMode, FailedSyncKeeps, IoOperation, MappedPageError, MmapStorage, PageId, Pager,
    ProtectedPageId, SharedPager, SimStorage,
};

#[path = "common/loses_bytes.rs"]
mod loses_bytes;
use loses_bytes::LosesBytesOnFailedGrowth;

const P: usize = 1024;
type Shared = SharedPager<P, SimStorage>;

fn new_shared() -> Shared {
    SharedPager::new(Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap())
}

type Call<'a, T> = Box<dyn FnOnce(&Shared) -> T + Send + 'a>;

/// Runs every call on its own thread, all in one group commit; returns their results in order
/// and the syncs the group took.
fn group<T: Send>(shared: &Shared, calls: Vec<Call<'_, T>>) -> (Vec<thread::Result<T>>, u64) {
    let count = calls.len();
    let guard = shared.read();
    let syncs_before = guard.storage().sync_count();
    let results = thread::scope(|scope| {
        let handles: Vec<_> = calls
            .into_iter()
            .map(|call| scope.spawn(move || call(shared)))
            .collect();
        let started = std::time::Instant::now();
        while shared.pending_operations() < count {
            // A safety net against a hang, not a timing assertion.
            assert!(started.elapsed().as_secs() < 120, "the group never formed");
            thread::yield_now();
        }
        drop(guard);
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    let syncs = shared.read().storage().sync_count() - syncs_before;
    (results, syncs)
}

fn ok<T: std::fmt::Debug>(result: &thread::Result<Result<T, MappedPageError>>) -> &T {
    match result {
        Ok(Ok(value)) => value,
        other => panic!("expected Ok, got {other:?}"),
    }
}

fn durable(shared: &Shared) -> Pager<P, SimStorage> {
    let image = shared.read().storage().durable_image();
    Pager::open_in(SimStorage::from_image(image)).unwrap()
}

#[derive(Debug)]
enum Answer {
    Pages(Vec<PageId<P>>),
    Protected(Vec<ProtectedPageId<P>>),
    Done,
}

/// A group of every kind of operation commits once: one protocol round, two syncs in the default
/// mode and one in `CommitMode::SingleSync`, however many operations it holds.
#[test]
fn a_group_of_k_operations_takes_one_protocol_round() {
    for (mode, expected_syncs) in [(CommitMode::Flip, 2), (CommitMode::SingleSync, 1)] {
        let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
        pager.set_commit_mode(mode);
        let shared = SharedPager::new(pager);
        let old = shared.alloc_bulk(3).unwrap();
        let protected = shared.alloc_protected_bulk(2).unwrap();
        let (generation, stats) = (shared.read().generation(), shared.stats());
        let (a, b, c) = (old[0], old[1], old[2]);
        let (p0, p1) = (protected[0], protected[1]);
        let calls: Vec<Call<'_, Result<Answer, MappedPageError>>> = vec![
            Box::new(|s| s.alloc().map(|id| Answer::Pages(vec![id]))),
            Box::new(|s| s.alloc_bulk(4).map(Answer::Pages)),
            Box::new(move |s| s.free(a).map(|_| Answer::Done)),
            Box::new(move |s| s.free_bulk(vec![b, c]).map(|_| Answer::Done)),
            Box::new(|s| s.alloc_protected().map(|id| Answer::Protected(vec![id]))),
            Box::new(|s| s.alloc_protected_bulk(2).map(Answer::Protected)),
            Box::new(move |s| {
                s.write_protected(p0, |page| page.as_bytes_mut()[0] = 7)
                    .map(|_| Answer::Done)
            }),
            Box::new(move |s| s.free_protected(p1).map(|_| Answer::Done)),
        ];
        let k = calls.len() as u64;
        let (results, syncs) = group(&shared, calls);
        for result in &results {
            ok(result);
        }
        assert_eq!(
            syncs, expected_syncs,
            "{mode:?}: one protocol round for {k} operations"
        );
        assert_eq!(shared.read().generation(), generation + 1, "one commit");
        let after = shared.stats();
        assert_eq!(after.commits - stats.commits, 1);
        assert_eq!(after.operations - stats.operations, k);

        // Everything the group acknowledged is durable.
        let durable = durable(&shared);
        for result in &results {
            match ok(result) {
                Answer::Pages(ids) => assert!(ids.iter().all(|&id| durable.is_allocated(id))),
                Answer::Protected(ids) => {
                    assert!(ids.iter().all(|&id| durable.is_protected_allocated(id)))
                }
                Answer::Done => {}
            }
        }
        assert!(!durable.is_allocated(a) && !durable.is_allocated(b) && !durable.is_allocated(c));
        assert_eq!(p0.get(&durable).unwrap().as_bytes()[0], 7);
        assert!(!durable.is_protected_allocated(p1));
        assert_eq!(durable.allocated_page_count(), 5);
        assert_eq!(durable.protected_page_count(), 4);
    }
}

/// Frees are staged after the other operations of their group, so a page freed by a group is not
/// handed out (or zeroed for a protected page) by the same group: before the commit, the durable
/// state still owns it.
#[test]
fn a_group_never_reuses_a_page_it_frees() {
    let shared = new_shared();
    let free_pages = shared.read().free_page_count() as usize;
    let mut ids = shared.alloc_bulk(free_pages).unwrap();
    let victim = ids.pop().unwrap();
    shared
        .write_page(victim, |page| page.as_bytes_mut().fill(0xAB))
        .unwrap();
    shared.sync_page(victim).unwrap();
    let calls: Vec<Call<'_, Result<Answer, MappedPageError>>> = vec![
        Box::new(move |s| s.free(victim).map(|_| Answer::Done)),
        Box::new(|s| s.alloc().map(|id| Answer::Pages(vec![id]))),
        Box::new(|s| s.alloc_protected().map(|id| Answer::Protected(vec![id]))),
    ];
    let (results, syncs) = group(&shared, calls);
    assert_eq!(syncs, 2);
    match ok(&results[1]) {
        Answer::Pages(got) => assert_ne!(got[0], victim, "the freed page was reused"),
        other => panic!("{other:?}"),
    }
    // The freed page's bytes were not zeroed by the protected allocation of the same group.
    let offset = victim.raw() as usize * P;
    let image = shared.read().storage().durable_image();
    assert!(image[offset..offset + P].iter().all(|&b| b == 0xAB));
}

/// An operation that fails its own checks gets its own error and does not join the commit; the
/// others commit together.
#[test]
fn an_invalid_operation_fails_alone() {
    let shared = new_shared();
    let freed = shared.alloc().unwrap();
    shared.free(freed).unwrap();
    let kept = shared.alloc().unwrap();
    let calls: Vec<Call<'_, Result<Answer, MappedPageError>>> = vec![
        Box::new(move |s| s.free(freed).map(|_| Answer::Done)),
        Box::new(|s| s.alloc().map(|id| Answer::Pages(vec![id]))),
        Box::new(|s| {
            s.free_protected(ProtectedPageId::from_raw(3))
                .map(|_| Answer::Done)
        }),
        Box::new(move |s| s.free_bulk(vec![kept, kept]).map(|_| Answer::Done)),
    ];
    let (results, syncs) = group(&shared, calls);
    assert!(matches!(
        results[0],
        Ok(Err(MappedPageError::DoubleFree { .. }))
    ));
    ok(&results[1]);
    assert!(matches!(
        results[2],
        Ok(Err(MappedPageError::ProtectedNotAllocated { id: 3 }))
    ));
    assert!(matches!(
        results[3],
        Ok(Err(MappedPageError::DuplicateId { .. }))
    ));
    assert_eq!(syncs, 2, "the valid operation still commits, once");
    assert!(shared.read().is_allocated(kept));
    assert!(!shared.read().is_poisoned());
}

/// A group whose operations all fail their checks (or change nothing) does not commit.
#[test]
fn a_group_that_changes_nothing_does_not_commit() {
    let shared = new_shared();
    let calls: Vec<Call<'_, Result<Answer, MappedPageError>>> = vec![
        Box::new(|s| s.free(PageId::from_raw(0)).map(|_| Answer::Done)),
        Box::new(|s| s.alloc_bulk(0).map(Answer::Pages)),
        Box::new(|s| s.free_bulk(Vec::new()).map(|_| Answer::Done)),
    ];
    let (results, syncs) = group(&shared, calls);
    assert!(matches!(
        results[0],
        Ok(Err(MappedPageError::ReservedPage { .. }))
    ));
    ok(&results[1]);
    ok(&results[2]);
    assert_eq!(syncs, 0);
    assert_eq!(shared.stats().commits, 0);
}

/// A failed growth fails only the operation that needed it (nothing changed for it); the rest of
/// the group commits and the pager goes on.
#[test]
fn a_failed_growth_fails_only_its_operation() {
    // Filled through the `Pager`: a group commit would grow the file ahead of need.
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    let free_pages = pager.free_page_count() as usize;
    let ids = pager.alloc_bulk(free_pages).unwrap();
    let shared = {
        let mut storage = pager.into_storage();
        storage.fail_grow_at(storage.grow_count());
        SharedPager::new(Pager::<P, SimStorage>::open_in(storage).unwrap())
    };
    let page_count = shared.read().page_count();
    let victim = ids[0];
    let calls: Vec<Call<'_, Result<Answer, MappedPageError>>> = vec![
        Box::new(|s| s.alloc().map(|id| Answer::Pages(vec![id]))),
        Box::new(move |s| s.free(victim).map(|_| Answer::Done)),
    ];
    let (results, syncs) = group(&shared, calls);
    assert!(matches!(
        results[0],
        Ok(Err(MappedPageError::Io {
            operation: IoOperation::Grow,
            ..
        }))
    ));
    ok(&results[1]);
    assert_eq!(syncs, 2);
    assert_eq!(
        shared.read().page_count(),
        page_count,
        "the failed growth changed nothing"
    );
    assert!(!durable(&shared).is_allocated(victim));
    assert!(!shared.read().is_poisoned());
    shared.alloc().unwrap(); // the next growth succeeds
}

/// A group commit that leaves fewer free pages than a quarter of the file (at most 256) grows
/// the file in the same commit (SPEC.md §3.3, §3.10 step 4): durably, with no barrier of its
/// own. One that leaves exactly a quarter does not; a `Pager` alone never grows ahead.
#[test]
fn a_group_commit_that_leaves_few_free_pages_grows_the_file_ahead() {
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    let free = pager.free_page_count() as usize;
    pager.alloc_bulk(free + 1).unwrap(); // one growth, by the usual step
    let page_count = pager.page_count();
    let quarter = (page_count / 4).min(256);
    let free = pager.free_page_count();
    assert!(free > quarter + 1, "the test needs room: {free} free pages");
    pager.alloc_bulk((free - quarter - 1) as usize).unwrap();
    assert_eq!(
        pager.page_count(),
        page_count,
        "a Pager does not grow ahead"
    );
    let shared = SharedPager::new(pager);
    let syncs = || shared.read().storage().sync_count();

    let before = syncs();
    shared.alloc().unwrap();
    assert_eq!(shared.read().free_page_count(), quarter);
    assert_eq!(shared.read().page_count(), page_count, "a quarter left");
    assert_eq!(syncs() - before, 2);

    let before = syncs();
    shared.alloc().unwrap();
    let grown = shared.read().page_count();
    assert!(grown > page_count, "fewer than a quarter left: grown ahead");
    assert!(shared.read().free_page_count() >= quarter);
    assert_eq!(
        syncs() - before,
        2,
        "the growth rides the commit's barriers"
    );
    assert_eq!(shared.stats().commits, 2);
    let reopened = durable(&shared);
    assert_eq!(
        reopened.page_count(),
        grown,
        "the growth is durable with the commit"
    );
    assert_eq!(reopened.free_page_count(), shared.read().free_page_count());
}

/// A pager whose free pages are fewer than a quarter of its pages (so a group commit grows
/// ahead), but not zero (so an `alloc` needs no growth of its own), on `storage`.
fn nearly_full<S: mappedpages::Storage>(storage: S) -> Pager<P, S> {
    let mut pager = Pager::<P, S>::create_in(storage).unwrap();
    let free = pager.free_page_count() as usize;
    pager.alloc_bulk(free + 1).unwrap(); // one growth, by the usual step
    let free = pager.free_page_count() as usize;
    pager.alloc_bulk(free - 2).unwrap();
    assert_eq!(pager.free_page_count(), 2);
    pager
}

/// A growth ahead that fails changes nothing and fails nobody: the group's allocation is
/// committed, the page count stays, the pager is not poisoned; the next group grows ahead.
#[test]
fn a_failed_growth_ahead_changes_nothing_and_fails_nothing() {
    let mut storage = nearly_full(SimStorage::new()).into_storage();
    storage.fail_grow_at(storage.grow_count());
    let shared = SharedPager::new(Pager::<P, SimStorage>::open_in(storage).unwrap());
    let page_count = shared.read().page_count();
    let id = shared.alloc().unwrap();
    assert_eq!(
        shared.read().page_count(),
        page_count,
        "the growth ahead failed"
    );
    assert!(!shared.read().is_poisoned());
    assert!(durable(&shared).is_allocated(id));
    shared.alloc().unwrap();
    assert!(
        shared.read().page_count() > page_count,
        "the next group grew ahead"
    );
}

/// A growth ahead that poisons the pager (its storage lost its bytes) fails the whole group
/// with the growth's error instead of committing into an empty map; later calls are
/// `Poisoned`.
#[test]
fn a_growth_ahead_that_poisons_fails_the_group() {
    let (storage, fail_growth) = LosesBytesOnFailedGrowth::new();
    let pager = nearly_full(storage);
    let shared = SharedPager::new(pager);
    fail_growth.store(true, std::sync::atomic::Ordering::SeqCst);
    match shared.alloc() {
        Err(MappedPageError::Io {
            operation: IoOperation::Grow,
            ..
        }) => {}
        other => panic!("expected Io {{ Grow }}, got {other:?}"),
    }
    assert!(shared.read().is_poisoned());
    assert!(matches!(
        shared.alloc(),
        Err(MappedPageError::Poisoned { .. })
    ));
}

/// A failed group commit gives every member the error and poisons the pager; nothing of the
/// group is acknowledged, and reopening finds the state before it.
#[test]
fn a_failed_group_commit_fails_every_member() {
    let shared = new_shared();
    let old = shared.alloc().unwrap();
    let protected = shared.alloc_protected().unwrap();
    let shared = {
        let mut storage = shared.into_inner().unwrap().into_storage();
        storage.fail_sync_at(storage.sync_count(), FailedSyncKeeps::Seeded(5));
        SharedPager::new(Pager::<P, SimStorage>::open_in(storage).unwrap())
    };
    let calls: Vec<Call<'_, Result<Answer, MappedPageError>>> = vec![
        Box::new(|s| s.alloc().map(|id| Answer::Pages(vec![id]))),
        Box::new(move |s| s.free(old).map(|_| Answer::Done)),
        Box::new(move |s| {
            s.write_protected(protected, |page| page.as_bytes_mut()[0] = 1)
                .map(|_| Answer::Done)
        }),
    ];
    let (results, _) = group(&shared, calls);
    for result in &results {
        assert!(
            matches!(
                result,
                Ok(Err(MappedPageError::Io {
                    operation: IoOperation::Sync,
                    ..
                }))
            ),
            "{result:?}"
        );
    }
    assert!(shared.read().is_poisoned());
    assert!(matches!(
        shared.alloc(),
        Err(MappedPageError::Poisoned { .. })
    ));
    assert!(matches!(
        shared.page(old),
        Err(MappedPageError::Poisoned { .. })
    ));
    assert_eq!(shared.stats().commits, 0);
    let reopened = durable(&shared);
    assert!(reopened.is_allocated(old));
    assert_eq!(reopened.allocated_page_count(), 1);
    assert_eq!(protected.get(&reopened).unwrap().as_bytes()[0], 0);
}

/// Two writes to one protected page in the same group: the second waits for the next commit and
/// starts from the first one's content, so no update is lost.
#[test]
fn two_writes_to_one_protected_page_are_two_commits() {
    let shared = new_shared();
    let id = shared.alloc_protected().unwrap();
    let commits = shared.stats().commits;
    let calls: Vec<Call<'_, Result<(), MappedPageError>>> = (0..3)
        .map(|_| {
            Box::new(move |s: &Shared| s.write_protected(id, |page| page.as_bytes_mut()[0] += 1))
                as Call<'_, _>
        })
        .collect();
    let (results, syncs) = group(&shared, calls);
    results.iter().for_each(|r| {
        ok(r);
    });
    assert_eq!(shared.stats().commits - commits, 3);
    assert_eq!(syncs, 6);
    assert_eq!(shared.protected_page(id).unwrap().as_bytes()[0], 3);
    assert_eq!(id.get(&durable(&shared)).unwrap().as_bytes()[0], 3);
}

/// A panicking `write_protected` closure fails its own call (the panic resumes on the caller's
/// thread), leaves its page unchanged, and the rest of the group commits.
#[test]
fn a_panicking_protected_write_fails_alone() {
    let shared = new_shared();
    let ids = shared.alloc_protected_bulk(2).unwrap();
    let (a, b) = (ids[0], ids[1]);
    let calls: Vec<Call<'_, Result<(), MappedPageError>>> = vec![
        Box::new(move |s| {
            s.write_protected(a, |page| {
                page.as_bytes_mut()[0] = 9;
                panic!("boom");
            })
        }),
        Box::new(move |s| s.write_protected(b, |page| page.as_bytes_mut()[0] = 2)),
    ];
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let (results, syncs) = group(&shared, calls);
    panic::set_hook(previous_hook);
    let payload = results[0]
        .as_ref()
        .expect_err("the panic reaches the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    ok(&results[1]);
    assert_eq!(syncs, 2);
    assert_eq!(shared.protected_page(a).unwrap().as_bytes()[0], 0);
    assert_eq!(shared.protected_page(b).unwrap().as_bytes()[0], 2);
    assert!(!shared.read().is_poisoned());
}

/// A panic in a `write_page` closure reaches the caller and leaves the pager usable.
#[test]
fn a_panicking_page_write_leaves_the_pager_usable() {
    let shared = new_shared();
    let id = shared.alloc().unwrap();
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(panic::AssertUnwindSafe(|| {
        shared.write_page(id, |_| panic!("boom"))
    }));
    panic::set_hook(previous_hook);
    assert!(result.is_err());
    shared
        .write_page(id, |page| page.as_bytes_mut()[0] = 1)
        .unwrap();
    assert_eq!(shared.page(id).unwrap().as_bytes()[0], 1);
    shared.alloc().unwrap();
}

/// `SharedPager` is `Send + Sync` and `Clone` over both backends; guards are not `Send`.
#[test]
fn shared_pager_is_send_sync_and_clone() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<SharedPager<4096, MmapStorage>>();
    send_sync_clone::<SharedPager<1024, SimStorage>>();
}

/// A caller that returns `Ok` finds its change in the durable image, from any thread.
#[test]
fn concurrent_callers_are_durable_when_they_return() {
    let shared = new_shared();
    thread::scope(|scope| {
        for _ in 0..4 {
            let shared = &shared;
            scope.spawn(move || {
                for _ in 0..10 {
                    let id = shared.alloc().unwrap();
                    assert!(durable(shared).is_allocated(id));
                    shared.free(id).unwrap();
                }
            });
        }
    });
    let stats = shared.stats();
    assert_eq!(stats.operations, 80);
    assert!(stats.commits <= 80);
    assert_eq!(shared.read().allocated_page_count(), 0);
}

// ----- re-entry (SPEC.md §3.10): an error, never a deadlock -----------------------------------

/// What a call made from inside a re-entry context got.
#[derive(Debug)]
enum Outcome {
    Ok,
    Err(MappedPageError),
    /// `read` panicked, with this message.
    Panicked(String),
}

impl<T> From<Result<T, MappedPageError>> for Outcome {
    fn from(result: Result<T, MappedPageError>) -> Self {
        match result {
            Ok(_) => Outcome::Ok,
            Err(error) => Outcome::Err(error),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Ids {
    page: PageId<P>,
    protected: ProtectedPageId<P>,
}

/// Every public method of `SharedPager` that takes its lock, called once; each result by the
/// method's name. None of them may succeed from inside a re-entry context (if one did it would
/// change state, but the test then fails anyway).
fn every_locking_call(shared: &Shared, ids: Ids) -> Vec<(&'static str, Outcome)> {
    let read = match panic::catch_unwind(panic::AssertUnwindSafe(|| drop(shared.read()))) {
        Ok(()) => Outcome::Ok,
        Err(payload) => Outcome::Panicked(match payload.downcast::<String>() {
            Ok(message) => *message,
            Err(_) => "a panic without a message".to_string(),
        }),
    };
    vec![
        ("read", read),
        ("try_read", shared.try_read().into()),
        ("page", shared.page(ids.page).into()),
        (
            "protected_page",
            shared.protected_page(ids.protected).into(),
        ),
        ("write_page", shared.write_page(ids.page, |_| ()).into()),
        ("sync_page", shared.sync_page(ids.page).into()),
        ("sync_all", shared.sync_all().into()),
        ("alloc", shared.alloc().into()),
        ("alloc_bulk", shared.alloc_bulk(2).into()),
        ("free", shared.free(ids.page).into()),
        ("free_bulk", shared.free_bulk(vec![ids.page]).into()),
        ("alloc_protected", shared.alloc_protected().into()),
        (
            "alloc_protected_bulk",
            shared.alloc_protected_bulk(2).into(),
        ),
        (
            "free_protected",
            shared.free_protected(ids.protected).into(),
        ),
        (
            "free_protected_bulk",
            shared.free_protected_bulk(vec![ids.protected]).into(),
        ),
        (
            "write_protected",
            shared.write_protected(ids.protected, |_| ()).into(),
        ),
    ]
}

/// Every call was refused with `Reentrant` naming it (`read`: a panic with that message), and the
/// calls that take only the queue lock still answer.
fn assert_all_refused(context: &str, outcomes: &[(&'static str, Outcome)]) {
    assert_eq!(
        outcomes.len(),
        16,
        "{context}: every locking method was tried"
    );
    for (name, outcome) in outcomes {
        match outcome {
            Outcome::Err(MappedPageError::Reentrant { operation }) => {
                assert_eq!(operation, name, "{context}: the error names the call")
            }
            Outcome::Panicked(message) if *name == "read" => assert!(
                message.contains("SharedPager::read") && message.contains("not re-entrant"),
                "{context}: read's panic names the rule: {message}"
            ),
            other => panic!("{context}: {name} got {other:?}, expected Reentrant"),
        }
    }
}

/// Runs `f` on its own thread and fails the test if it does not finish in time: a regression
/// (a re-entrant call that waits for its own thread's lock) fails instead of hanging CI. The
/// stuck thread is left behind; the test process ends with the test run.
fn within_deadline<T: Send + 'static>(context: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let value = panic::catch_unwind(panic::AssertUnwindSafe(f));
        let _ = done.send(value);
    });
    match result.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("{context}: no answer after 60 s: a re-entrant call deadlocked"),
    }
}

fn reentry_setup() -> (Shared, Ids) {
    let shared = new_shared();
    let ids = Ids {
        page: shared.alloc().unwrap(),
        protected: shared.alloc_protected().unwrap(),
    };
    (shared, ids)
}

/// After a context ends, the same thread uses the pager normally: nothing stays recorded as held,
/// and nothing the refused calls tried changed the state.
fn assert_usable_after(context: &str, shared: &Shared, ids: Ids) {
    assert_eq!(shared.read().allocated_page_count(), 1, "{context}");
    assert_eq!(shared.read().protected_page_count(), 1, "{context}");
    shared.page(ids.page).unwrap();
    shared.protected_page(ids.protected).unwrap();
    shared
        .write_page(ids.page, |page| page.as_bytes_mut()[0] = 1)
        .unwrap();
    shared.sync_all().unwrap();
    let id = shared.alloc().unwrap();
    shared.free(id).unwrap();
    shared
        .write_protected(ids.protected, |page| page.as_bytes_mut()[0] += 1)
        .unwrap();
    assert!(!shared.read().is_poisoned(), "{context}");
}

/// While a thread holds a guard (`read`, `try_read`, `page`, `protected_page`), every call on the
/// same `SharedPager` from that thread, through a clone, fails at once with `Reentrant` (`read`
/// panics with its message); `stats` and `pending_operations` still answer. Before the check,
/// each of these calls waited for its own thread's guard forever.
#[test]
fn a_call_while_the_thread_holds_a_guard_is_refused() {
    trait Guard {}
    impl<T> Guard for T {}
    type Take = fn(&Shared, Ids) -> Box<dyn Guard + '_>;
    let guards: [(&str, Take); 4] = [
        ("read guard", |s, _| Box::new(s.read())),
        ("try_read guard", |s, _| Box::new(s.try_read().unwrap())),
        ("page guard", |s, ids| Box::new(s.page(ids.page).unwrap())),
        ("protected_page guard", |s, ids| {
            Box::new(s.protected_page(ids.protected).unwrap())
        }),
    ];
    for (context, take) in guards {
        let (shared, ids) = reentry_setup();
        let outcomes = within_deadline(context, move || {
            let other = shared.clone();
            let guard = take(&shared, ids);
            let outcomes = every_locking_call(&other, ids);
            let _ = (other.stats(), other.pending_operations());
            drop(guard);
            assert_usable_after(context, &shared, ids);
            outcomes
        });
        assert_all_refused(context, &outcomes);
    }
}

/// Inside a `write_page` closure (the thread holds the write lock), every call on the same
/// `SharedPager` fails with `Reentrant`; `write_page` returns the closure's value as usual.
#[test]
fn a_call_from_a_write_page_closure_is_refused() {
    let (shared, ids) = reentry_setup();
    let outcomes = within_deadline("write_page closure", move || {
        let other = shared.clone();
        let outcomes = shared
            .write_page(ids.page, |_| {
                let outcomes = every_locking_call(&other, ids);
                let _ = (other.stats(), other.pending_operations());
                outcomes
            })
            .unwrap();
        assert_usable_after("write_page closure", &shared, ids);
        outcomes
    });
    assert_all_refused("write_page closure", &outcomes);
}

/// Inside a `write_protected` closure every call on the same `SharedPager` fails with
/// `Reentrant`, also when the closure runs on another caller's thread: the group's leader holds
/// the lock and runs every closure of the group. The leader's own operation and the closure's
/// write still commit (no false positive for the leader or the submitter).
#[test]
fn a_call_from_a_write_protected_closure_is_refused_on_any_leader() {
    // Submitter leads: the closure runs on its own thread.
    let (shared, ids) = reentry_setup();
    let outcomes = within_deadline("write_protected closure (own thread)", move || {
        let other = shared.clone();
        let (sender, outcomes) = std::sync::mpsc::channel();
        shared
            .write_protected(ids.protected, move |page| {
                sender.send(every_locking_call(&other, ids)).unwrap();
                let _ = (other.stats(), other.pending_operations());
                page.as_bytes_mut()[1] = 7;
            })
            .unwrap();
        assert_eq!(
            shared.protected_page(ids.protected).unwrap().as_bytes()[1],
            7
        );
        assert_usable_after("write_protected closure", &shared, ids);
        outcomes.recv().unwrap()
    });
    assert_all_refused("write_protected closure (own thread)", &outcomes);

    // Another caller leads: while this thread holds a guard, `leader` queues first (and leads,
    // waiting for the write lock), then `submitter` queues its closure behind it; the closure
    // runs on the leader's thread.
    let (shared, ids) = reentry_setup();
    let context = "write_protected closure (another thread leads)";
    let (outcomes, submitter_thread, closure_thread) = within_deadline(context, move || {
        let guard = shared.read();
        thread::scope(|scope| {
            let leader = scope.spawn(|| (shared.alloc(), thread::current().id()));
            while shared.pending_operations() < 1 {
                thread::yield_now();
            }
            let submitter = scope.spawn(|| {
                let other = shared.clone();
                let (sender, outcomes) = std::sync::mpsc::channel();
                let result = shared.write_protected(ids.protected, move |page| {
                    let outcomes = every_locking_call(&other, ids);
                    sender.send((outcomes, thread::current().id())).unwrap();
                    page.as_bytes_mut()[1] = 8;
                });
                result.unwrap();
                let (outcomes, closure_thread) = outcomes.recv().unwrap();
                (outcomes, thread::current().id(), closure_thread)
            });
            while shared.pending_operations() < 2 {
                thread::yield_now();
            }
            drop(guard);
            let (allocated, leader_thread) = leader.join().unwrap();
            let allocated = allocated.expect("the leader's own operation commits");
            let answer = submitter.join().unwrap();
            assert_eq!(answer.2, leader_thread, "the leader ran the closure");
            assert!(durable(&shared).is_allocated(allocated));
            assert_eq!(
                shared.protected_page(ids.protected).unwrap().as_bytes()[1],
                8
            );
            shared.free(allocated).unwrap();
            assert_usable_after(context, &shared, ids);
            answer
        })
    });
    assert_ne!(submitter_thread, closure_thread);
    assert_all_refused(context, &outcomes);
}

/// The record is per `SharedPager` and per thread: a guard of one `SharedPager` does not refuse
/// calls on another one, nor calls on the same one from other threads (they wait or read as
/// before).
#[test]
fn a_guard_refuses_nothing_on_other_pagers_or_other_threads() {
    let (a, a_ids) = reentry_setup();
    let (b, b_ids) = reentry_setup();
    within_deadline("two pagers", move || {
        let guard = a.read();
        let outcomes = every_locking_call(&b, b_ids);
        // Each call does its work (the second free of the same page is a double free, and so
        // on); none is refused.
        assert!(
            outcomes.iter().all(|(_, o)| !matches!(
                o,
                Outcome::Panicked(_) | Outcome::Err(MappedPageError::Reentrant { .. })
            )),
            "{outcomes:?}"
        );
        assert!(
            matches!(outcomes[7], ("alloc", Outcome::Ok)),
            "{outcomes:?}"
        );
        // Another thread reads `a` alongside this thread's guard.
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    a.try_read().unwrap();
                    a.page(a_ids.page).unwrap();
                    a.protected_page(a_ids.protected).unwrap();
                })
                .join()
                .unwrap();
        });
        drop(guard);
    });
}

/// The error says what happened, names the rule and what to do.
#[test]
fn the_reentrant_error_names_the_rule_and_the_fix() {
    let message = MappedPageError::Reentrant { operation: "alloc" }.to_string();
    for part in [
        "SharedPager::alloc",
        "not re-entrant",
        "drop the guard",
        "closure",
    ] {
        assert!(message.contains(part), "{part:?} missing from {message:?}");
    }
}

/// A storage that panics in `sync_ranges` once told to: a bug in a caller's own `Storage`, the
/// one way a panic can reach a group commit from outside the pager.
struct PanicsOnSync {
    inner: SimStorage,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl mappedpages::Storage for PanicsOnSync {
    fn len_bytes(&self) -> u64 {
        self.inner.len_bytes()
    }
    fn grow(&mut self, new_len_bytes: u64) -> std::io::Result<()> {
        self.inner.grow(new_len_bytes)
    }
    fn bytes(&self) -> &[u8] {
        self.inner.bytes()
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.inner.bytes_mut()
    }
    fn sync_ranges(&mut self, ranges: &[std::ops::Range<u64>]) -> std::io::Result<()> {
        assert!(
            !self.armed.load(std::sync::atomic::Ordering::SeqCst),
            "injected: the storage panics in sync_ranges"
        );
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

/// A panic inside a group commit (here: in the storage's sync) poisons the pager, resumes on the
/// leader's thread and fails every other caller of the group with `Poisoned`, naming the panic:
/// none of them waits forever, none of them is told its allocation happened.
#[test]
fn a_panic_inside_a_group_commit_poisons_and_fails_the_whole_group() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let armed = Arc::new(AtomicBool::new(false));
    let storage = PanicsOnSync {
        inner: SimStorage::new(),
        armed: armed.clone(),
    };
    let shared = SharedPager::new(Pager::<P, PanicsOnSync>::create_in(storage).unwrap());
    let callers = 3;
    let guard = shared.read();
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let results = thread::scope(|scope| {
        let handles: Vec<_> = (0..callers)
            .map(|_| scope.spawn(|| shared.alloc()))
            .collect();
        let started = std::time::Instant::now();
        while shared.pending_operations() < callers {
            // A safety net against a hang, not a timing assertion.
            assert!(started.elapsed().as_secs() < 120, "the group never formed");
            thread::yield_now();
        }
        armed.store(true, Ordering::SeqCst);
        drop(guard);
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    panic::set_hook(previous_hook);
    let mut panicked = 0;
    for result in &results {
        match result {
            Err(_) => panicked += 1,
            Ok(Err(MappedPageError::Poisoned { cause })) => assert!(
                cause.contains("group commit") && cause.contains("interrupted by a panic"),
                "the cause names the panic: {cause}"
            ),
            Ok(other) => panic!("expected Poisoned or the panic, got {other:?}"),
        }
    }
    assert_eq!(panicked, 1, "the panic resumes on the leader's thread only");
    armed.store(false, Ordering::SeqCst);
    assert!(shared.read().is_poisoned());
    assert!(matches!(
        shared.alloc(),
        Err(MappedPageError::Poisoned { .. })
    ));
}

/// A caller of the panicking group whose operation had already failed its own checks keeps its
/// own error (it changed nothing and was answered before the commit): only the callers without
/// an answer get `Poisoned`.
#[test]
fn a_panic_inside_a_group_commit_keeps_the_answers_already_given() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let armed = Arc::new(AtomicBool::new(false));
    let storage = PanicsOnSync {
        inner: SimStorage::new(),
        armed: armed.clone(),
    };
    let shared = SharedPager::new(Pager::<P, PanicsOnSync>::create_in(storage).unwrap());
    let never_allocated = PageId::<P>::from_raw(10);
    let guard = shared.read();
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let wait_for = |count: usize| {
        let started = std::time::Instant::now();
        while shared.pending_operations() < count {
            // A safety net against a hang, not a timing assertion.
            assert!(started.elapsed().as_secs() < 120, "the group never formed");
            thread::yield_now();
        }
    };
    let (allocs, free) = thread::scope(|scope| {
        // The first caller queued leads the group (and resumes its panic): an allocation, so
        // that the free's thread only ever gets an answer.
        let mut allocs = vec![scope.spawn(|| shared.alloc())];
        wait_for(1);
        allocs.push(scope.spawn(|| shared.alloc()));
        let free = scope.spawn(|| shared.free(never_allocated));
        wait_for(3);
        armed.store(true, Ordering::SeqCst);
        drop(guard);
        let allocs: Vec<_> = allocs.into_iter().map(|h| h.join()).collect();
        (allocs, free.join())
    });
    panic::set_hook(previous_hook);
    assert!(
        matches!(free, Ok(Err(MappedPageError::DoubleFree { page: 10 }))),
        "the failed free keeps its own error: {free:?}"
    );
    assert_eq!(
        allocs.iter().filter(|r| r.is_err()).count(),
        1,
        "the leader's panic"
    );
    for result in allocs.iter().flatten() {
        assert!(
            matches!(result, Err(MappedPageError::Poisoned { .. })),
            "{result:?}"
        );
    }
}

/// Frees go last (SPEC.md §3.10): a free queued before an allocation in the same group is staged
/// after it, so the allocation never gets the page the group frees, which the durable state
/// still owns until the group's commit. Staged in arrival order, the allocation would take the
/// freed page (the only free one) and its holder would write into a page a crash could leave
/// allocated to the freer.
#[test]
fn an_allocation_never_gets_the_page_its_group_frees() {
    // Filled through the `Pager`: a group commit would grow the file ahead of need.
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    let victim = pager.alloc().unwrap();
    let rest = pager.free_page_count() as usize;
    pager.alloc_bulk(rest).unwrap();
    let shared = SharedPager::new(pager);
    assert_eq!(shared.read().free_page_count(), 0);
    let guard = shared.read();
    let wait_for = |count: usize| {
        let started = std::time::Instant::now();
        while shared.pending_operations() < count {
            assert!(started.elapsed().as_secs() < 120, "the group never formed");
            thread::yield_now();
        }
    };
    let (freed, allocated) = thread::scope(|scope| {
        let free = scope.spawn(|| shared.free(victim));
        wait_for(1);
        let alloc = scope.spawn(|| shared.alloc());
        wait_for(2);
        drop(guard);
        (free.join().unwrap(), alloc.join().unwrap())
    });
    freed.unwrap();
    let id = allocated.unwrap();
    assert_ne!(id, victim, "the group handed out the page it frees");
    assert_eq!(
        shared.stats().commits,
        1,
        "one group for the free and the allocation"
    );
}
