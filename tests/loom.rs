//! loom models of `SharedPager`'s synchronization (SPEC.md §3.10, properties LOOM-1..LOOM-7).
//!
//! They run the real `SharedPager` code (its locks, queue and condition variable come from
//! `src/sync.rs`, which is loom's under `--cfg loom`) over `SimStorage`, with 2 or 3 threads of 1
//! or 2 operations each, and let loom explore the interleavings (bounded by
//! `LOOM_MAX_PREEMPTIONS`):
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --test loom
//! ```
//!
//! * LOOM-1 durable at return: when a call returns `Ok`, the durable image (what a crash keeps,
//!   recorded by [`Observed`] after every sync, read without the pager lock) already holds its
//!   change.
//! * LOOM-2 no lost wake-up, no deadlock: every model ends with every thread joined (loom fails a
//!   model in which all live threads block); the three-caller model exercises the hand-off.
//! * LOOM-3 no remap under a guard: [`Observed::grow`] asserts that no page guard is alive, and
//!   the guard's bytes do not change while it lives. The guard's thread gets `Reentrant` from
//!   its own call while the other thread's call goes through (re-entry detection is per thread:
//!   with std's thread-local, which all loom threads share, this model fails).
//! * LOOM-4 exactly one commit: replaying the durable images in order, every acknowledged change
//!   appears in exactly one commit and is never undone, the number of commits equals the
//!   `commits` counter, and no commit is empty.
//! * LOOM-5 failed group: when a group commit's sync fails, every caller gets an error (its own
//!   `Io`, or `Poisoned` for a later group), none gets `Ok`, and the pager is poisoned.
//! * LOOM-6 protected writes: concurrent `write_protected` calls on one page each start from the
//!   committed content; no update is lost, each is durable at return.
//! * LOOM-7 readers see only durable state: a group's barrier runs with the pager lock released
//!   (its durable image is recorded when the barrier is waited for, not when it starts), and a
//!   reader meanwhile (`page`, `protected_page`, `read`) sees a change only once it is durable;
//!   when the barrier fails, never.
//!
//! With `--features mutants`, `mutant_ack_before_group_sync_is_caught` checks that LOOM-1 fails
//! when the leader acknowledges its group before the commit (`Mutant::AckBeforeGroupSync`), and
//! `mutant_publish_before_barrier_is_caught` that LOOM-7 fails when the leader publishes its group
//! to readers before its barrier (`Mutant::PublishBeforeBarrier`).
#![cfg(loom)]

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;

use loom::sync::Mutex;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use mappedpages::{
    FailedSyncKeeps, IoOperation, MappedPageError, PageId, Pager, PendingBarrier, ProtectedPageId,
    SharedPager, SimStorage, Storage,
};

const P: usize = 1024;

/// What the model threads share besides the pager: the durable images (one per successful sync,
/// in order) and the number of page guards alive.
struct Observer {
    durable: Mutex<Vec<Vec<u8>>>,
    guards: AtomicUsize,
}

/// `SimStorage` that publishes its durable image after every successful sync, so a thread can
/// look at what a crash would keep without taking the pager lock, and that checks LOOM-3 on every
/// growth.
struct Observed {
    sim: SimStorage,
    observer: std::sync::Arc<Observer>,
}

impl Observed {
    fn publish(&self) {
        let image = self.sim.durable_image();
        self.observer.durable.lock().unwrap().push(image);
    }
}

impl Storage for Observed {
    fn len_bytes(&self) -> u64 {
        self.sim.len_bytes()
    }

    fn grow(&mut self, new_len_bytes: u64) -> io::Result<()> {
        assert_eq!(
            self.observer.guards.load(Ordering::SeqCst),
            0,
            "LOOM-3: the file is remapped while a page guard is alive"
        );
        self.sim.grow(new_len_bytes)
    }

    fn bytes(&self) -> &[u8] {
        self.sim.bytes()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.sim.bytes_mut()
    }

    fn sync_ranges(&mut self, ranges: &[Range<u64>]) -> io::Result<()> {
        let result = self.sim.sync_ranges(ranges);
        if result.is_ok() {
            self.publish();
        }
        result
    }

    fn sync_all(&mut self) -> io::Result<()> {
        let result = self.sim.sync_all();
        if result.is_ok() {
            self.publish();
        }
        result
    }

    /// The sync now, its durable image (or its failure) recorded only when the barrier is
    /// waited for: the group-commit leader waits with the pager lock released, and LOOM-7 looks
    /// at the recorded images meanwhile.
    fn start_barrier(&mut self, ranges: &[Range<u64>]) -> io::Result<PendingBarrier> {
        let synced = self.sim.sync_ranges(ranges);
        let image = self.sim.durable_image();
        let observer = self.observer.clone();
        Ok(PendingBarrier::new(move || {
            synced?;
            observer.durable.lock().unwrap().push(image);
            Ok(())
        }))
    }

    fn reserve(&mut self, ranges: &[Range<u64>]) -> io::Result<()> {
        self.sim.reserve(ranges)
    }

    fn shrink(&mut self, new_len_bytes: u64) -> io::Result<()> {
        self.sim.shrink(new_len_bytes)
    }
}

type Shared = SharedPager<P, Observed>;

/// A model's starting point: a new file with `prealloc` regular pages, `protected` protected
/// pages, and no free data page left (so the next allocation grows the file), shared.
struct Setup {
    shared: Shared,
    observer: std::sync::Arc<Observer>,
    regular: Vec<PageId<P>>,
    protected: Vec<ProtectedPageId<P>>,
    /// Durable images recorded before the model's threads start.
    start: usize,
}

fn setup(prealloc: usize, protected: usize, fail_next_sync: bool) -> Setup {
    let observer = std::sync::Arc::new(Observer {
        durable: Mutex::new(Vec::new()),
        guards: AtomicUsize::new(0),
    });
    let storage = Observed {
        sim: SimStorage::new(),
        observer: observer.clone(),
    };
    let mut pager = Pager::<P, Observed>::create_in(storage).unwrap();
    let protected = pager.alloc_protected_bulk(protected).unwrap();
    let regular = pager.alloc_bulk(prealloc).unwrap();
    let rest = pager.free_page_count() as usize;
    pager.alloc_bulk(rest).unwrap(); // no free page: the next allocation grows the file
    for (n, id) in regular.iter().enumerate() {
        id.get_mut(&mut pager)
            .unwrap()
            .as_bytes_mut()
            .fill(n as u8 + 1);
    }
    pager.sync_all().unwrap();
    if fail_next_sync {
        let mut storage = pager.into_storage();
        let next = storage.sim.sync_count();
        storage.sim.fail_sync_at(next, FailedSyncKeeps::Nothing);
        pager = Pager::open_in(storage).unwrap();
        // Opening may have synced repairs; it did not here (a clean file), so the next sync is
        // the first of the first group commit.
        assert_eq!(pager.storage().sim.sync_count(), next);
    }
    let start = observer.durable.lock().unwrap().len();
    Setup {
        shared: SharedPager::new(pager),
        observer,
        regular,
        protected,
        start,
    }
}

/// The state a crash now would recover.
fn durable_pager(observer: &Observer) -> Pager<P, SimStorage> {
    let image = observer.durable.lock().unwrap().last().cloned().unwrap();
    Pager::open_in(SimStorage::from_image(image)).expect("every durable image opens")
}

/// One operation of a model thread, and what its result must satisfy at return.
#[derive(Clone, Copy, Debug)]
enum Step {
    Alloc,
    Free(usize),
    /// `write_protected` on protected page 0, setting byte `n` to 1.
    SetByte(usize),
    /// `alloc_with`, filling the new page with this byte (SPEC.md §3.6.1).
    Fill(u8),
}

#[derive(Clone, Debug, PartialEq)]
enum Change {
    Allocated(PageId<P>),
    Freed(PageId<P>),
    ByteSet(usize),
}

/// What a change is about: a regular page, or a byte of protected page 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Page(PageId<P>),
    Byte(usize),
}

impl Change {
    fn target(&self) -> Target {
        match *self {
            Change::Allocated(id) | Change::Freed(id) => Target::Page(id),
            Change::ByteSet(n) => Target::Byte(n),
        }
    }
}

impl Target {
    fn read(self, setup: &Setup, pager: &Pager<P, SimStorage>) -> bool {
        match self {
            Target::Page(id) => pager.is_allocated(id),
            Target::Byte(n) => setup.protected[0].get(pager).unwrap().as_bytes()[n] == 1,
        }
    }
}

fn run_step(setup: &Setup, shared: &Shared, step: Step) -> Change {
    match step {
        Step::Alloc => {
            let id = shared.alloc().unwrap();
            assert!(
                durable_pager(&setup.observer).is_allocated(id),
                "LOOM-1: alloc returned {id:?} before its commit was durable"
            );
            Change::Allocated(id)
        }
        Step::Free(n) => {
            let id = setup.regular[n];
            shared.free(id).unwrap();
            // Another thread may already have been handed the page again (and made that
            // durable): the free must be in a durable state recorded since the model began.
            let images = setup.observer.durable.lock().unwrap()[setup.start..].to_vec();
            assert!(
                images.into_iter().any(|image| {
                    let pager = Pager::<P, SimStorage>::open_in(SimStorage::from_image(image));
                    !pager.unwrap().is_allocated(id)
                }),
                "LOOM-1: free of {id:?} returned before its commit was durable"
            );
            Change::Freed(id)
        }
        Step::Fill(value) => {
            let id = shared
                .alloc_with(move |page| page.as_bytes_mut().fill(value))
                .unwrap();
            let durable = durable_pager(&setup.observer);
            assert!(
                durable.is_allocated(id) && id.get(&durable).unwrap().as_bytes() == [value; P],
                "LOOM-1: alloc_with returned {id:?} before its page and its bytes were durable"
            );
            Change::Allocated(id)
        }
        Step::SetByte(n) => {
            let id = setup.protected[0];
            shared
                .write_protected(id, move |page| page.as_bytes_mut()[n] = 1)
                .unwrap();
            let durable = durable_pager(&setup.observer);
            assert_eq!(
                id.get(&durable).unwrap().as_bytes()[n],
                1,
                "LOOM-1: write_protected returned before its commit was durable"
            );
            Change::ByteSet(n)
        }
    }
}

/// Runs one thread per entry of `threads` (each doing its steps in order), joins them, then
/// checks LOOM-4 against the durable images.
fn run_model(setup: Setup, threads: &[&[Step]]) {
    let setup = std::sync::Arc::new(setup);
    let start = setup.start;
    let stats_before = setup.shared.stats();
    let handles: Vec<_> = threads
        .iter()
        .map(|steps| {
            let steps = steps.to_vec();
            let setup = setup.clone();
            let shared = setup.shared.clone();
            thread::spawn(move || {
                let changes: Vec<Change> = steps
                    .into_iter()
                    .map(|step| run_step(&setup, &shared, step))
                    .collect();
                changes
            })
        })
        .collect();
    // LOOM-2: a lost wake-up or a deadlock leaves a thread blocked forever; loom reports it.
    let changes: Vec<Change> = handles
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .collect();
    let stats = setup.shared.stats();
    check_exactly_once(
        &setup,
        start,
        &changes,
        stats.commits - stats_before.commits,
    );
    assert_eq!(
        stats.operations - stats_before.operations,
        changes.len() as u64,
        "LOOM-4: the operations counter disagrees with the acknowledged changes"
    );
}

/// LOOM-4: the durable states after `start`, deduplicated, form a sequence of commits; every
/// change appears in exactly one of them and stays; there are `commits` of them, none empty.
fn check_exactly_once(setup: &Setup, start: usize, changes: &[Change], commits: u64) {
    let images: Vec<Vec<u8>> = setup.observer.durable.lock().unwrap()[start - 1..].to_vec();
    let mut states: Vec<Pager<P, SimStorage>> = Vec::new();
    for image in images {
        let pager = Pager::<P, SimStorage>::open_in(SimStorage::from_image(image)).unwrap();
        if states
            .last()
            .is_none_or(|last| last.generation() != pager.generation())
        {
            states.push(pager);
        }
    }
    assert_eq!(
        states.len() as u64 - 1,
        commits,
        "LOOM-4: durable commits and the commit counter disagree"
    );
    let holds = |pager: &Pager<P, SimStorage>, change: &Change| match change {
        Change::Allocated(id) => pager.is_allocated(*id),
        Change::Freed(id) => !pager.is_allocated(*id),
        Change::ByteSet(n) => setup.protected[0].get(pager).unwrap().as_bytes()[*n] == 1,
    };
    for change in changes {
        let landed: Vec<usize> = (1..states.len())
            .filter(|&k| !holds(&states[k - 1], change) && holds(&states[k], change))
            .collect();
        assert_eq!(
            landed.len(),
            1,
            "LOOM-4: {change:?} landed in commits {landed:?}, not exactly one"
        );
    }
    // Nothing changes without an acknowledged change: a page changes state exactly as often as
    // changes name it (a freed page may be handed out again), a byte once.
    let mut per_target: BTreeMap<Target, usize> = BTreeMap::new();
    for change in changes {
        *per_target.entry(change.target()).or_default() += 1;
    }
    for (target, count) in per_target {
        let flips = (1..states.len())
            .filter(|&k| target.read(setup, &states[k - 1]) != target.read(setup, &states[k]))
            .count();
        assert_eq!(
            flips, count,
            "LOOM-4: {target:?} changed in {flips} commits for {count} acknowledged changes"
        );
    }
    for k in 1..states.len() {
        assert!(
            changes
                .iter()
                .any(|c| !holds(&states[k - 1], c) && holds(&states[k], c)),
            "LOOM-4: commit {k} holds no acknowledged change"
        );
    }
}

/// With `--features mutants`, the mutant test sets a process-wide mutant: the models then run one
/// at a time.
#[cfg(feature = "mutants")]
fn serial() -> impl Drop {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How much of the schedule space a model explores.
#[derive(Clone, Copy, Debug)]
enum Bound {
    /// Every interleaving (two-thread models: a minute at most).
    Exhaustive,
    /// Every interleaving with at most `LOOM_MAX_PREEMPTIONS` preemptions (three-thread models).
    Preemptions,
}

/// Runs `f` under loom and prints how many executions that took.
fn model(name: &str, bound: Bound, f: impl Fn() + Sync + Send + 'static) {
    #[cfg(feature = "mutants")]
    let _serial = serial();
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = executions.clone();
    let started = std::time::Instant::now();
    let mut builder = loom::model::Builder::new(); // reads LOOM_MAX_PREEMPTIONS
    if let Bound::Exhaustive = bound {
        builder.preemption_bound = None;
    }
    let preemptions = builder.preemption_bound;
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    println!(
        "{name}: {} executions in {:.1} s (preemption bound {preemptions:?})",
        executions.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

// ----- the models ------------------------------------------------------------------------------

/// LOOM-1, LOOM-2, LOOM-4: two callers allocate concurrently (either both in one group or one
/// group each; the file grows in the first).
#[test]
fn loom1_two_allocs_are_durable_at_return() {
    model("LOOM-1", Bound::Exhaustive, || {
        run_model(setup(0, 0, false), &[&[Step::Alloc], &[Step::Alloc]])
    });
}

/// LOOM-1, LOOM-2, LOOM-4: two callers allocate filled pages concurrently (`alloc_with`): the
/// fills run on the leader's thread, and each caller returns with its page and its bytes durable.
#[test]
fn loom1_two_filled_allocs_are_durable_with_their_bytes_at_return() {
    model("LOOM-1", Bound::Exhaustive, || {
        run_model(setup(0, 0, false), &[&[Step::Fill(7)], &[Step::Fill(9)]])
    });
}

/// LOOM-1, LOOM-2, LOOM-4: an allocation and a free, then a second allocation on the first
/// thread (the free is staged after the allocation in a shared group).
#[test]
fn loom1_alloc_and_free_are_durable_at_return() {
    // Bounded: with the barriers run outside the pager lock (SPEC.md §3.10) every interleaving of
    // its three groups is 4.5 million executions (509 s on 2 cores, 2026-12-02).
    model("LOOM-1", Bound::Preemptions, || {
        run_model(
            setup(1, 0, false),
            &[&[Step::Alloc, Step::Alloc], &[Step::Free(0)]],
        )
    });
}

/// LOOM-2, LOOM-1, LOOM-4: three callers: one leads, the others queue behind it and one of them
/// must take over as the next leader (hand-off) or be acknowledged by the first group.
#[test]
fn loom2_three_callers_hand_off_without_lost_wakeups() {
    model("LOOM-2", Bound::Preemptions, || {
        run_model(
            setup(2, 0, false),
            &[&[Step::Alloc], &[Step::Free(0)], &[Step::Free(1)]],
        )
    });
}

/// LOOM-3: a reader holds a guard on a page while another thread's allocation grows the file.
#[test]
fn loom3_no_remap_while_a_guard_is_alive() {
    model("LOOM-3", Bound::Exhaustive, || {
        let setup = std::sync::Arc::new(setup(1, 0, false));
        let page = setup.regular[0];
        let writer = {
            let shared = setup.shared.clone();
            thread::spawn(move || shared.alloc().unwrap())
        };
        let guard = setup.shared.page(page).unwrap();
        setup.observer.guards.fetch_add(1, Ordering::SeqCst);
        let before = (guard.as_bytes().as_ptr(), guard.as_bytes().to_vec());
        // Re-entry is refused on this thread (it would wait for its own guard), while the other
        // thread's `alloc` is not: the record of held locks is per (loom) thread.
        assert!(matches!(
            setup.shared.alloc(),
            Err(MappedPageError::Reentrant { operation: "alloc" })
        ));
        thread::yield_now();
        let after = (guard.as_bytes().as_ptr(), guard.as_bytes().to_vec());
        setup.observer.guards.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
        assert_eq!(before, after, "LOOM-3: a guard's page moved or changed");
        assert!(before.1.iter().all(|&b| b == 1));
        let id = writer.join().unwrap();
        let pager = setup.shared.read();
        assert!(pager.page_count() > 16, "the allocation grew the file");
        assert!(pager.is_allocated(id));
    });
}

/// LOOM-5: the first group commit's first sync fails. Every caller gets an error (the group's
/// members their own `Io`, later callers `Poisoned`), none `Ok`, and the pager is poisoned.
#[test]
fn loom5_a_failed_group_commit_fails_every_member() {
    model("LOOM-5", Bound::Exhaustive, || {
        let setup = std::sync::Arc::new(setup(1, 0, true));
        let handles: Vec<_> = [false, true]
            .into_iter()
            .map(|free| {
                let shared = setup.shared.clone();
                let id = setup.regular[0];
                thread::spawn(move || {
                    if free {
                        shared.free(id).map(|_| ())
                    } else {
                        shared.alloc().map(|_| ())
                    }
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut io_errors = 0;
        for result in &results {
            match result {
                Err(MappedPageError::Io {
                    operation: IoOperation::Sync,
                    ..
                }) => io_errors += 1,
                Err(MappedPageError::Poisoned { .. }) => {}
                other => panic!("LOOM-5: a caller got {other:?} after its group's sync failed"),
            }
        }
        assert!(io_errors >= 1, "LOOM-5: nobody saw the failed sync");
        assert!(setup.shared.read().is_poisoned(), "LOOM-5: not poisoned");
        assert_eq!(setup.shared.stats().commits, 0);
        let durable = durable_pager(&setup.observer);
        assert!(durable.is_allocated(setup.regular[0]));
        // Every data page of the 16-page file: 16 − 5 (superblock, copies, group 0's slots)
        // − 2 (format 3's table page 0).
        assert_eq!(
            durable.allocated_page_count(),
            9,
            "nothing failed is durable"
        );
    });
}

/// LOOM-6, LOOM-1, LOOM-4: two threads change different bytes of one protected page; the second
/// write waits for the next group and starts from the first one's committed content.
#[test]
fn loom6_protected_writes_lose_no_update() {
    model("LOOM-6", Bound::Exhaustive, || {
        let setup = setup(0, 1, false);
        let shared = setup.shared.clone();
        let id = setup.protected[0];
        run_model(setup, &[&[Step::SetByte(0)], &[Step::SetByte(1)]]);
        assert_eq!(&shared.protected_page(id).unwrap().as_bytes()[..2], &[1, 1]);
    });
}

/// LOOM-2, LOOM-6: three writers of one protected page: two of them are deferred (requeued at
/// the front) while their callers sleep, and must still be woken to lead or be answered.
#[test]
fn loom2_deferred_writes_are_not_lost() {
    model("LOOM-2", Bound::Preemptions, || {
        let setup = setup(0, 1, false);
        let shared = setup.shared.clone();
        let id = setup.protected[0];
        run_model(
            setup,
            &[
                &[Step::SetByte(0)],
                &[Step::SetByte(1)],
                &[Step::SetByte(2)],
            ],
        );
        assert_eq!(
            &shared.protected_page(id).unwrap().as_bytes()[..3],
            &[1, 1, 1]
        );
    });
}

/// LOOM-7: one thread frees a page (its group's barrier runs without the pager lock) while the
/// main thread reads it through a page guard, then through a whole-pager guard. Whenever a reader
/// sees the page free, the free is durable; with `fail`, the group's sync fails and no reader
/// ever sees the page free (only allocated, or the pager poisoned).
fn reader_model(fail: bool) {
    let setup = std::sync::Arc::new(setup(1, 1, fail));
    let (id, protected) = (setup.regular[0], setup.protected[0]);
    let writer = {
        let shared = setup.shared.clone();
        thread::spawn(move || {
            shared.free(id)?;
            shared.write_protected(protected, |page| page.as_bytes_mut()[0] = 1)
        })
    };
    let saw_free = match setup.shared.page(id) {
        Ok(guard) => {
            assert!(guard.as_bytes().iter().all(|&b| b == 1));
            false
        }
        Err(MappedPageError::NotAllocated { .. }) => true,
        Err(MappedPageError::Poisoned { .. }) if fail => false,
        Err(other) => panic!("LOOM-7: a reader got {other:?}"),
    };
    let saw_write = match setup.shared.protected_page(protected) {
        Ok(guard) => guard.as_bytes()[0] == 1,
        Err(MappedPageError::Poisoned { .. }) if fail => false,
        Err(other) => panic!("LOOM-7: a reader of the protected page got {other:?}"),
    };
    let (whole_saw_free, poisoned) = {
        let pager = setup.shared.read();
        (!pager.is_allocated(id), pager.is_poisoned())
    };
    let durable = durable_pager(&setup.observer);
    if saw_free || (whole_saw_free && !poisoned) {
        assert!(
            !durable.is_allocated(id),
            "LOOM-7: a reader saw {id:?} free before the free was durable"
        );
    }
    if saw_write {
        assert_eq!(
            protected.get(&durable).unwrap().as_bytes()[0],
            1,
            "LOOM-7: a reader saw a protected write before it was durable"
        );
    }
    let result = writer.join().unwrap();
    if fail {
        assert!(
            result.is_err(),
            "LOOM-7: a free whose sync failed returned Ok"
        );
        assert!(
            !saw_free && !saw_write,
            "LOOM-7: a reader saw a change whose barrier failed"
        );
    } else {
        result.unwrap();
    }
}

/// LOOM-7: a reader during a group's barrier sees only durable state.
#[test]
fn loom7_a_reader_during_a_flush_sees_only_durable_state() {
    model("LOOM-7", Bound::Exhaustive, || reader_model(false));
}

/// LOOM-7, LOOM-5: the group's barrier fails while the reader runs: the reader never sees its
/// change, and then sees the pager poisoned.
#[test]
fn loom7_a_failed_flush_while_readers_run_shows_them_nothing() {
    model("LOOM-7", Bound::Exhaustive, || reader_model(true));
}

/// The harness can fail: with `Mutant::PublishBeforeBarrier` the leader lands its group (readers
/// see its changes) before the barrier, and LOOM-7 catches a reader seeing a free that is not
/// durable yet.
#[cfg(feature = "mutants")]
#[test]
#[should_panic(expected = "LOOM-7")]
fn mutant_publish_before_barrier_is_caught() {
    with_mutant(mappedpages::mutants::Mutant::PublishBeforeBarrier, || {
        reader_model(false)
    });
}

/// Runs the loom model `f` once with `mutant` active (and none after, also when `f` panics, as
/// the mutant tests expect it to).
#[cfg(feature = "mutants")]
fn with_mutant(mutant: mappedpages::mutants::Mutant, f: impl Fn() + Sync + Send + 'static) {
    use mappedpages::mutants;
    let _serial = serial();
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            mutants::set_active(None);
        }
    }
    let _reset = Reset;
    mutants::set_active(Some(mutant));
    loom::model(f);
}

/// The harness can fail: with `Mutant::AckBeforeGroupSync` a follower is woken before its
/// group's commit, and LOOM-1 catches it returning before its change is durable.
#[cfg(feature = "mutants")]
#[test]
#[should_panic(expected = "LOOM-1")]
fn mutant_ack_before_group_sync_is_caught() {
    with_mutant(mappedpages::mutants::Mutant::AckBeforeGroupSync, || {
        run_model(setup(1, 0, false), &[&[Step::Alloc], &[Step::Free(0)]])
    });
}
