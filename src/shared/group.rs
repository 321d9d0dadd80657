//! The group-commit engine of [`SharedPager`] (SPEC.md §3.10): the queue of operations, the
//! leader that drains it, stages every operation into the pager's memory and commits once, and
//! the publication of every result. The public face (the handle, its guards and its calls) is in
//! `shared/mod.rs`; every call that changes allocation enters here through
//! `SharedPager::submit`.

use std::any::Any;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::PoisonError;

use super::flight::{FlightBuilder, committed_copies};
use super::{GroupCommitStats, Locked, Shared, SharedPager};
use crate::error::{IoOperation, MappedPageError};
use crate::mutants::{Mutant, active};
use crate::page::{MappedPage, PageId};
use crate::pager::Pager;
use crate::protected::ProtectedPageId;
use crate::state::PageRun;
use crate::storage::Storage;
use crate::sync::{RwLockWriteGuard, yield_now};

/// At most this many pages of `alloc_with` fills a leader prepares for writing
/// (`Shared::prepare_writes`): preparing dirties a page (with its own bytes) and maps it, so a
/// bulk fill of many pages takes its faults while it fills, not all ahead.
const PREPARE_FILLED_PAGES_MAX: u64 = 256;

/// A group commit that leaves fewer free pages than this, or than a quarter of the file's pages
/// if that is less, grows the file in the same commit (`Pager::grow_ahead`, SPEC.md §3.10 step
/// 4). The first write to a page of new file space faults, and the growth's own group took those
/// faults under the write lock (growth windows p50 0.4–1.0 ms, up to 16 ms, on ext4:
/// BENCHMARKS.md); grown ahead, the pages are free when a later leader names them to
/// `prepare_writes`, which takes the faults before the write lock. A quarter: growth doubles the
/// file, so growing when a quarter is left makes a file at most what the growth a few groups
/// later would have made. The same as [`PREPARE_FILLED_PAGES_MAX`], the most pages a leader
/// prepares.
const GROW_AHEAD_FREE_PAGES_MIN: u64 = PREPARE_FILLED_PAGES_MAX;

/// The `operation` a failed group commit poisons the pager with.
const GROUP_COMMIT: &str = "a SharedPager group commit";

/// At most this many times a new leader yields, while the queue keeps growing, before it takes
/// the queue (see `gather_latecomers`). Under loom one yield keeps the path in the models.
const MAX_GATHER_YIELDS: u32 = if cfg!(loom) { 1 } else { 8 };

/// The commit queue. Lock order: the pager lock (if taken) before this one, never the reverse.
pub(super) struct Queue<const PAGE_SIZE: usize> {
    /// Operations waiting for a leader, in arrival order.
    pub(super) pending: VecDeque<Request<PAGE_SIZE>>,
    /// A leader is active (between taking its batch and publishing its results).
    leading: bool,
    /// A group's changes are in the pager's memory but not published: its barrier runs with
    /// the pager lock released (`Locked::flight` is `Some`). Cleared when the group is
    /// published or fails; the waiters are woken when the leader publishes its results
    /// ([`Publisher`]), after it released the pager lock.
    in_flight: bool,
    next_ticket: u64,
    /// Published results, by ticket, until their callers take them.
    replies: HashMap<u64, Reply<PAGE_SIZE>>,
    pub(super) stats: GroupCommitStats,
}

impl<const PAGE_SIZE: usize> Queue<PAGE_SIZE> {
    /// An empty queue, no leader.
    pub(super) fn new() -> Self {
        Queue {
            pending: VecDeque::new(),
            leading: false,
            in_flight: false,
            next_ticket: 0,
            replies: HashMap::new(),
            stats: GroupCommitStats::default(),
        }
    }
}

pub(super) struct Request<const PAGE_SIZE: usize> {
    ticket: u64,
    op: Op<PAGE_SIZE>,
}

pub(super) type ProtectedWrite = Box<dyn FnOnce(&mut MappedPage) + Send>;

/// The fill of an `alloc_with` / `alloc_bulk_with`: `(index, page)` for each new page.
pub(super) type Fill = Box<dyn FnMut(usize, &mut MappedPage) + Send>;

/// An operation that changes allocation state, as a caller submits it.
pub(super) enum Op<const PAGE_SIZE: usize> {
    Alloc(usize),
    Free(Vec<PageId<PAGE_SIZE>>),
    AllocProtected(u64),
    FreeProtected(Vec<ProtectedPageId<PAGE_SIZE>>),
    WriteProtected(ProtectedPageId<PAGE_SIZE>, ProtectedWrite),
    /// `count` pages filled by the closure before the commit (SPEC.md §3.6.1).
    AllocFilled(usize, Fill),
    /// `sync_page` (`Some`) or `sync_all` (`None`): no change, a range in the group's barrier.
    Sync(Option<PageId<PAGE_SIZE>>),
}

impl<const PAGE_SIZE: usize> Op<PAGE_SIZE> {
    /// Frees are staged after every other operation of their group (SPEC.md §3.10), so a page a
    /// group frees is never handed out, zeroed or written by the same group.
    fn is_free(&self) -> bool {
        matches!(self, Op::Free(_) | Op::FreeProtected(_))
    }
}

/// The result of a staged operation.
pub(super) enum Done<const PAGE_SIZE: usize> {
    Pages(Vec<PageId<PAGE_SIZE>>),
    Protected(Vec<ProtectedPageId<PAGE_SIZE>>),
    Unit,
}

enum Failure {
    Error(MappedPageError),
    /// The caller's `write_protected` closure panicked (on the leader's thread); the caller
    /// resumes the panic on its own thread.
    Panic(Box<dyn Any + Send>),
}

impl From<MappedPageError> for Failure {
    fn from(error: MappedPageError) -> Self {
        Failure::Error(error)
    }
}

type Reply<const PAGE_SIZE: usize> = Result<Done<PAGE_SIZE>, Failure>;

impl<const PAGE_SIZE: usize, S: Storage> SharedPager<PAGE_SIZE, S> {
    /// Enqueues `op` and returns its result once a commit containing it is durable (or it failed).
    /// The thread is recorded as holding the pager lock throughout: as the leader it does, and it
    /// runs `write_protected` closures (its own and other callers') under it.
    pub(super) fn submit(
        &self,
        operation: &'static str,
        op: Op<PAGE_SIZE>,
    ) -> Result<Done<PAGE_SIZE>, MappedPageError> {
        let shared = &*self.shared;
        let _held = shared.enter(operation)?;
        let mut queue = shared.lock_queue();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push_back(Request { ticket, op });
        let reply = loop {
            if let Some(reply) = queue.replies.remove(&ticket) {
                break reply;
            }
            // No leader: our operation is still queued (a leader publishes every operation it
            // takes before it gives up leadership), so we lead the next group.
            if !queue.leading {
                queue.leading = true;
                drop(queue);
                shared.lead();
                queue = shared.lock_queue();
                continue;
            }
            queue = shared
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        };
        drop(queue);
        match reply {
            Ok(done) => Ok(done),
            Err(Failure::Error(error)) => Err(error),
            Err(Failure::Panic(payload)) => panic::resume_unwind(payload),
        }
    }
}

impl<const PAGE_SIZE: usize, S: Storage> Shared<PAGE_SIZE, S> {
    /// The leader's work: lock the pager for writing, take the queue, stage, commit once,
    /// publish. Called with `queue.leading` set by the caller; always clears it (also when a
    /// panic unwinds through here, through `Publisher`'s drop).
    fn lead(&self) {
        let mut publisher = Publisher {
            shared: self,
            replies: Vec::new(),
            commits: 0,
            operations: 0,
        };
        // Gathering yields the processor: without the pager lock, so readers go on meanwhile.
        self.gather_latecomers();
        self.prepare_writes();
        let pager = self.write_pager();
        let batch = std::mem::take(&mut self.lock_queue().pending);
        let tickets: Vec<u64> = batch.iter().map(|request| request.ticket).collect();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            self.run_group(pager, batch, &mut publisher)
        }));
        if let Err(payload) = outcome {
            // A bug in the pager: nobody knows what memory holds. Poison the pager and fail every
            // operation of the group that has no result yet. (The lock guard was dropped by the
            // unwinding, or during a barrier.)
            let mut pager = self.write_pager();
            let cause = poison_after_panic(&mut pager.pager, GROUP_COMMIT);
            self.land(&mut pager);
            drop(pager);
            let requeued: HashSet<u64> =
                self.lock_queue().pending.iter().map(|r| r.ticket).collect();
            for ticket in tickets {
                if !requeued.contains(&ticket)
                    && !publisher.replies.iter().any(|(t, _)| *t == ticket)
                {
                    let error = MappedPageError::Poisoned {
                        cause: cause.clone(),
                    };
                    publisher.replies.push((ticket, Err(Failure::Error(error))));
                }
            }
            drop(publisher);
            panic::resume_unwind(payload);
        }
        drop(publisher);
    }

    /// Takes the page faults of the group's writes before the write lock (SPEC.md §3.10): under
    /// the read lock, which readers share, names to [`Storage::prepare_writes`] the metadata
    /// copy the commit will write (if a queued operation changes anything) and the pages the
    /// queued `alloc_with` fills will write (at most [`PREPARE_FILLED_PAGES_MAX`]). Only time
    /// depends on it.
    fn prepare_writes(&self) {
        let (mut changes, mut filled_pages) = (false, 0u64);
        for request in &self.lock_queue().pending {
            match &request.op {
                Op::Sync(_) => {}
                Op::AllocFilled(count, _) => {
                    changes = true;
                    filled_pages = filled_pages.saturating_add(*count as u64);
                }
                _ => changes = true,
            }
        }
        let filled_pages = filled_pages.min(PREPARE_FILLED_PAGES_MAX);
        if !changes {
            return;
        }
        let pager = self.read_pager();
        let hint = pager.pager.commit_write_hint(filled_pages);
        pager.pager.storage().prepare_writes(&hint);
    }

    /// Marks a group staged in `pager` as in flight: its changes are in memory, not durable, and
    /// readers answer for them from `flight` (SPEC.md §3.10). Under the pager lock (then the
    /// queue lock, the lock order).
    fn take_off(&self, pager: &mut Locked<PAGE_SIZE, S>, flight: FlightBuilder) {
        assert!(
            pager.flight.is_none(),
            "a group took off with another in flight"
        );
        pager.flight = Some(flight.build());
        self.lock_queue().in_flight = true;
    }

    /// Publishes the group in flight, if any: from now on readers see the pager's memory, which
    /// is durable (or the pager is poisoned). Under the pager lock. It wakes nobody: the waiters
    /// for the flight (`wait_for_flight`) are woken with the group's callers by the leader's
    /// [`Publisher`] once the pager lock is released, so that no woken thread preempts the
    /// leader while it still holds the lock that readers need (on 2 cores, that kept readers
    /// waiting for a time slice: p50 of the landing 18 µs).
    fn land(&self, pager: &mut Locked<PAGE_SIZE, S>) {
        if pager.flight.take().is_some() {
            self.lock_queue().in_flight = false;
        }
    }

    /// Waits until no group is in flight (for `read` and for writes to a page the group
    /// changes). Called without the pager lock.
    pub(super) fn wait_for_flight(&self) {
        let mut queue = self.lock_queue();
        while queue.in_flight {
            queue = self
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Lets the callers the previous group just released submit again before this group is
    /// taken. While some of them have not yet collected their results, or the queue grew during
    /// the last yield, it yields, at most `MAX_GATHER_YIELDS` times. Without it, callers in a
    /// loop split into two alternating groups (those waiting on one commit form the next), about
    /// half of them per commit. A lone caller never yields (nobody has a result to collect).
    /// Only throughput depends on it; correctness does not (whatever arrives later joins the
    /// next group).
    fn gather_latecomers(&self) {
        let mut gather = {
            let queue = self.lock_queue();
            Gather::start(queue.pending.len(), queue.replies.len())
        };
        while let Some(yielded) = gather.next_yield() {
            yield_now();
            let queue = self.lock_queue();
            gather = yielded.observe(queue.pending.len(), queue.replies.len());
        }
    }

    /// Stages every operation of `batch` (frees last), commits once if anything changed (with
    /// the group's page syncs in its barrier; a group of syncs alone takes one barrier), and
    /// records every result in `publisher`. Releases the pager lock.
    fn run_group(
        &self,
        mut pager: RwLockWriteGuard<'_, Locked<PAGE_SIZE, S>>,
        batch: VecDeque<Request<PAGE_SIZE>>,
        publisher: &mut Publisher<'_, PAGE_SIZE, S>,
    ) {
        let (frees, others): (Vec<_>, Vec<_>) = batch.into_iter().partition(|r| r.op.is_free());
        let mut written = HashSet::new();
        let mut deferred = Vec::new();
        let mut group = GroupStage::default();
        let mut staged = Vec::new();
        for request in others.into_iter().chain(frees) {
            if let Op::WriteProtected(id, _) = &request.op
                && !written.insert(id.raw())
            {
                // A second write to the same page in one group would stage into the copy the
                // durable state still names: it waits for the next group.
                deferred.push(request);
                continue;
            }
            match stage(&mut pager.pager, request.op, &mut group) {
                Ok((done, true)) => staged.push((request.ticket, done)),
                Ok((done, false)) => publisher.replies.push((request.ticket, Ok(done))),
                Err(failure) => {
                    group.failed = true;
                    publisher.replies.push((request.ticket, Err(failure)));
                }
            }
        }
        if !deferred.is_empty() {
            let mut queue = self.lock_queue();
            for request in deferred.into_iter().rev() {
                queue.pending.push_front(request);
            }
        }
        if staged.is_empty() {
            return; // nothing changed and nothing to sync: no barrier
        }
        let operations = staged.len() as u64;
        if active(Mutant::AckBeforeGroupSync) {
            mutant_ack_before_sync(self, &mut staged);
        }
        let result = if group.changed {
            self.commit_group(pager, group)
        } else {
            // Syncs alone: nothing in memory changes, so nothing is in flight for readers.
            self.barrier(pager, &group.sync_ranges).map(drop)
        };
        match result {
            Ok(()) => {
                publisher.commits += 1;
                publisher.operations += operations;
                for (ticket, done) in staged {
                    publisher.replies.push((ticket, Ok(done)));
                }
            }
            Err(error) => {
                // Every caller whose change was in the group gets the error (the pager is now
                // poisoned, SPEC.md §3.4).
                for (ticket, _) in staged {
                    let copy = copy_error(&error);
                    publisher.replies.push((ticket, Err(Failure::Error(copy))));
                }
            }
        }
    }

    /// SPEC.md §3.2 for a staged group, with the pager lock released during each barrier
    /// (§3.10): steps 1 to 3 under the lock, the group taking off (readers answer from the
    /// durable state), step 4's barrier without the lock, steps 5 and 6 likewise in flip mode,
    /// step 7 and the landing under the lock. Any failure lands the group (the pager is then
    /// poisoned). Releases the lock.
    fn commit_group(
        &self,
        mut pager: RwLockWriteGuard<'_, Locked<PAGE_SIZE, S>>,
        mut group: GroupStage,
    ) -> Result<(), MappedPageError> {
        group.data_ranges.append(&mut group.sync_ranges);
        if !group.failed {
            let free_pages_min = GROW_AHEAD_FREE_PAGES_MIN.min(pager.pager.page_count() / 4);
            pager.pager.grow_ahead(free_pages_min)?;
        }
        let staged =
            pager
                .pager
                .stage_commit_filled(group.data_ranges, &group.filled_runs, GROUP_COMMIT)?;
        self.take_off(&mut pager, group.flight);
        if active(Mutant::PublishBeforeBarrier) {
            self.land(&mut pager);
        }
        let mut pager = self.barrier(pager, staged.step_4_barrier())?;
        if let Some(step_6) = pager.pager.flip_commit(&staged) {
            pager = self.barrier(pager, &step_6)?;
        }
        let recorded = pager.pager.record_commit(staged, GROUP_COMMIT);
        self.land(&mut pager);
        recorded
    }

    /// One barrier over `ranges`: started under the pager lock, waited for without it, so
    /// readers go on meanwhile (SPEC.md §3.10); returns the lock taken again. A failed barrier
    /// poisons the pager (SPEC.md §3.4) and lands the group in flight.
    fn barrier<'a>(
        &'a self,
        mut pager: RwLockWriteGuard<'a, Locked<PAGE_SIZE, S>>,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<RwLockWriteGuard<'a, Locked<PAGE_SIZE, S>>, MappedPageError> {
        let map = map_identity(&pager.pager);
        let pending = match pager.pager.start_commit_barrier(ranges, GROUP_COMMIT) {
            Ok(pending) => pending,
            Err(error) => {
                self.land(&mut pager);
                return Err(error);
            }
        };
        drop(pager);
        let waited = pending.wait();
        let mut pager = self.write_pager();
        assert_eq!(
            map_identity(&pager.pager),
            map,
            "the storage was remapped while a group commit's barrier ran without the lock"
        );
        if let Err(error) = waited {
            let error = pager.pager.fail_commit(GROUP_COMMIT, error);
            self.land(&mut pager);
            return Err(error);
        }
        Ok(pager)
    }
}

/// Where the pager's bytes are and how many (a barrier started on them must end on them).
fn map_identity<const PAGE_SIZE: usize, S: Storage>(pager: &Pager<PAGE_SIZE, S>) -> (usize, usize) {
    let bytes = pager.storage().bytes();
    (bytes.as_ptr() as usize, bytes.len())
}

/// What a leader collects while it stages a group, besides the results.
#[derive(Default)]
struct GroupStage {
    /// An operation changed allocation state: the group commits.
    changed: bool,
    /// An operation failed (a growth, for one, that the file system refused): the group does
    /// not grow the file ahead of need.
    failed: bool,
    /// Byte ranges the commit's step-4 barrier must cover (zeroed and staged protected copies).
    data_ranges: Vec<std::ops::Range<u64>>,
    /// Pages filled by `alloc_with` (SPEC.md §3.6.1).
    filled_runs: Vec<PageRun>,
    /// The pages of `sync_page` and `sync_all` calls.
    sync_ranges: Vec<std::ops::Range<u64>>,
    /// What the group changes, for readers while it is in flight.
    flight: FlightBuilder,
}

/// Stages one operation into `pager`'s memory and `group`. Returns its result and whether it
/// needs the group's barrier (it changed something, or it is a sync); on error nothing changed.
fn stage<const PAGE_SIZE: usize, S: Storage>(
    pager: &mut Pager<PAGE_SIZE, S>,
    op: Op<PAGE_SIZE>,
    group: &mut GroupStage,
) -> Result<(Done<PAGE_SIZE>, bool), Failure> {
    let (done, changed) = match op {
        Op::Alloc(count) => {
            let ids = pager.stage_alloc(count)?;
            group.flight.regular(ids.iter().map(|id| id.raw()));
            let changed = !ids.is_empty();
            (Done::Pages(ids), changed)
        }
        Op::Free(ids) => {
            pager.stage_free(&ids)?;
            group.flight.regular(ids.iter().map(|id| id.raw()));
            (Done::Unit, !ids.is_empty())
        }
        Op::AllocProtected(count) => {
            let (ids, zeroed) = pager.stage_alloc_protected(count)?;
            group.data_ranges.extend(zeroed);
            for id in &ids {
                group.flight.protected_allocated(id.raw());
            }
            let changed = !ids.is_empty();
            (Done::Protected(ids), changed)
        }
        Op::FreeProtected(ids) => {
            let copies = committed_copies(pager, ids.iter().map(|id| id.raw()));
            pager.stage_free_protected(&ids)?;
            group.flight.protected_changed(copies);
            (Done::Unit, !ids.is_empty())
        }
        Op::WriteProtected(id, write) => {
            let copies = committed_copies(pager, [id.raw()]);
            let staged_page = pager.stage_protected_write(id.raw())?;
            let page = pager.raw_page_mut(staged_page);
            // A panic leaves the staged copy as scratch (it is not promoted): nothing changed.
            panic::catch_unwind(AssertUnwindSafe(|| write(page))).map_err(Failure::Panic)?;
            group
                .data_ranges
                .push(pager.stage_protected_commit(id.raw(), staged_page));
            group.flight.protected_changed(copies);
            (Done::Unit, true)
        }
        Op::AllocFilled(count, mut fill) => {
            // A panic in the fill allocated nothing: the caller resumes it.
            let (ids, runs) = pager
                .stage_filled(count, &mut *fill)?
                .map_err(Failure::Panic)?;
            group.filled_runs.extend(runs);
            group.flight.regular(ids.iter().map(|id| id.raw()));
            let changed = !ids.is_empty();
            (Done::Pages(ids), changed)
        }
        Op::Sync(id) => {
            group.sync_ranges.push(pager.stage_sync(id)?);
            return Ok((Done::Unit, true));
        }
    };
    group.changed |= changed;
    Ok((done, changed))
}

/// The decision of [`Shared::gather_latecomers`], apart from the yielding and the locking: what
/// the leader saw of the queue, and whether to yield once more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gather {
    /// Queued operations at the last look.
    seen: usize,
    /// Whether another yield may still gather someone: callers of the previous group had
    /// results to collect, or the queue grew since the look before.
    worth_yielding: bool,
    /// Yields so far.
    yields: u32,
}

impl Gather {
    /// Before any yield: `pending` operations queued, `uncollected` results waiting.
    fn start(pending: usize, uncollected: usize) -> Gather {
        Gather {
            seen: pending,
            worth_yielding: uncollected > 0,
            yields: 0,
        }
    }

    /// `Some` (the state after one more yield) while yielding is worth it and the bound allows;
    /// `None` when the leader takes the queue now.
    fn next_yield(self) -> Option<Gather> {
        (self.worth_yielding && self.yields < MAX_GATHER_YIELDS).then_some(Gather {
            yields: self.yields + 1,
            ..self
        })
    }

    /// The look after a yield: `pending` operations queued, `uncollected` results waiting.
    fn observe(self, pending: usize, uncollected: usize) -> Gather {
        Gather {
            seen: pending,
            worth_yielding: pending > self.seen || uncollected > 0,
            yields: self.yields,
        }
    }
}

/// Publishes a leader's results when dropped (also during a panic): records them, gives up
/// leadership and wakes every waiter, all under the queue lock, so no waiter can miss it.
struct Publisher<'a, const PAGE_SIZE: usize, S: Storage> {
    shared: &'a Shared<PAGE_SIZE, S>,
    replies: Vec<(u64, Reply<PAGE_SIZE>)>,
    commits: u64,
    operations: u64,
}

impl<const PAGE_SIZE: usize, S: Storage> Drop for Publisher<'_, PAGE_SIZE, S> {
    fn drop(&mut self) {
        let mut queue = self.shared.lock_queue();
        queue.replies.extend(self.replies.drain(..));
        queue.stats.commits += self.commits;
        queue.stats.operations += self.operations;
        queue.leading = false;
        self.shared.changed.notify_all();
    }
}

/// Marks the pager poisoned after a panic inside `operation`; returns the cause.
fn poison_after_panic<const PAGE_SIZE: usize, S: Storage>(
    pager: &mut Pager<PAGE_SIZE, S>,
    operation: &str,
) -> String {
    let cause = format!("{operation} (interrupted by a panic)");
    pager.poison(&cause, io::Error::other("panic"));
    cause
}

/// A copy of a commit's error for each caller of the group (`io::Error` is not `Clone`).
fn copy_error(error: &MappedPageError) -> MappedPageError {
    match error {
        MappedPageError::Io {
            operation,
            path,
            source,
        } => MappedPageError::Io {
            operation: *operation,
            path: path.clone(),
            source: io::Error::new(source.kind(), source.to_string()),
        },
        MappedPageError::Poisoned { cause } => MappedPageError::Poisoned {
            cause: cause.clone(),
        },
        MappedPageError::FileShrunk {
            expected_len_bytes,
            found_len_bytes,
        } => MappedPageError::FileShrunk {
            expected_len_bytes: *expected_len_bytes,
            found_len_bytes: *found_len_bytes,
        },
        other => MappedPageError::Io {
            operation: IoOperation::Sync,
            path: None,
            source: io::Error::other(other.to_string()),
        },
    }
}

/// `AckBeforeGroupSync`: publish the group's results (and wake its callers) before its commit.
fn mutant_ack_before_sync<const PAGE_SIZE: usize, S: Storage>(
    shared: &Shared<PAGE_SIZE, S>,
    staged: &mut Vec<(u64, Done<PAGE_SIZE>)>,
) {
    let mut queue = shared.lock_queue();
    for (ticket, done) in staged.drain(..) {
        queue.replies.insert(ticket, Ok(done));
    }
    shared.changed.notify_all();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Gather, MAX_GATHER_YIELDS};

    /// The yields a leader takes, given the queue at the start and at each look after a yield
    /// (operations queued, results not yet collected).
    fn yields_for(start: (usize, usize), looks: &[(usize, usize)]) -> u32 {
        let mut gather = Gather::start(start.0, start.1);
        let mut looks = looks.iter();
        while let Some(yielded) = gather.next_yield() {
            let &(pending, uncollected) = looks.next().expect("a look after every yield");
            gather = yielded.observe(pending, uncollected);
        }
        gather.yields
    }

    /// The pages a leader prepares (`Shared::prepare_writes`): the metadata copy the next commit
    /// writes and the free pages the next allocation takes.
    #[test]
    fn the_write_hint_names_the_inactive_copy_and_the_next_free_pages() {
        use crate::{Pager, SimStorage};
        const P: u64 = 1024;
        let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
        let first = pager.alloc().unwrap().raw();
        let inactive = if pager.commit_write_hint(0)[0].start == P {
            1
        } else {
            2
        };
        assert_eq!(
            pager.commit_write_hint(0),
            vec![inactive * P..(inactive + 1) * P]
        );
        let next = pager.alloc_bulk(2).unwrap();
        assert_eq!(next[0].raw(), first + 1, "next fit");
        assert_eq!(
            pager.commit_write_hint(3),
            vec![
                (3 - inactive) * P..(4 - inactive) * P,
                (first + 3) * P..(first + 6) * P
            ],
            "a commit later the other copy is inactive; the next pages follow the last run"
        );
        pager.alloc().unwrap();
        assert_eq!(pager.commit_write_hint(0)[0].start, inactive * P);
    }

    #[test]
    fn a_leader_yields_while_someone_may_still_come() {
        // A lone caller: nobody has a result to collect, no yield.
        assert_eq!(yields_for((1, 0), &[]), 0);
        // Results uncollected: yields until they are collected and the queue stops growing.
        assert_eq!(yields_for((1, 3), &[(1, 1), (1, 0)]), 2);
        // Collected, but the queue grew meanwhile: one more look.
        assert_eq!(yields_for((1, 2), &[(3, 0), (3, 0)]), 2);
        // Bounded, whatever keeps coming.
        let busy = vec![(1, 1); 2 * MAX_GATHER_YIELDS as usize];
        assert_eq!(yields_for((1, 1), &busy), MAX_GATHER_YIELDS);
        let growing: Vec<_> = (2..40).map(|pending| (pending, 0)).collect();
        assert_eq!(yields_for((1, 1), &growing), MAX_GATHER_YIELDS);
    }

    #[test]
    fn a_look_records_the_queue_and_keeps_the_count() {
        let yielded = Gather::start(2, 1).next_yield().unwrap();
        let grown = Gather {
            seen: 5,
            worth_yielding: true,
            yields: 1,
        };
        assert_eq!(yielded.observe(5, 0), grown);
        let quiet = Gather {
            seen: 2,
            worth_yielding: false,
            yields: 1,
        };
        assert_eq!(yielded.observe(2, 0), quiet);
        assert_eq!(quiet.next_yield(), None);
    }
}
