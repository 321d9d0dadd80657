//! The concurrent scenario: real threads allocating and freeing through one `SharedPager` over
//! `SimStorage`, checked against what each thread was acknowledged (SPEC.md §3.10; VERIFICATION.md).
//!
//! The threads run seeded operation lists, but their interleaving (and so which operations share a
//! group commit) is the scheduler's: not reproducible. So the workload does not record a model
//! per operation. It records, for every operation, the pages it allocated or freed and two reads
//! of the group-commit counter (`SharedPager::stats().commits`, which counts a group's commit
//! only after it is durable): `before`, read just before the call, and `after`, read just after it
//! returned `Ok`. The operation's change is in commit `x` of the run (counted from the start of
//! the workload) with `before + 1 ≤ x ≤ after`: no commit that holds it can be counted before it
//! is called, and it is counted, durable, before its caller is woken. A caller acknowledged before
//! its group's commit is durable reads a counter without that commit: its `after` is too small,
//! and a crash just before the commit shows it missing.
//!
//! After the threads joined, commit `D` (`D = 0..=K`) is durable from sync `c0 + D·s` on (`c0`:
//! the syncs before the workload, `s`: syncs per commit, 2 or 1 in single-sync mode; the run
//! checks that it made exactly `K·s` syncs), which is when the model "`D` commits durable" is
//! acknowledged. A recovered state is then judged by its generation `G` (commits since the
//! start): `G` is `D` or, with a commit in flight, `D + 1` (INV-2); and every operation is in it
//! iff `x ≤ G`: it must be when `after ≤ G`, it cannot be when `before + 1 > G`. Each page's
//! allocations and frees happen in an order the run knows (a page is freed only by the thread
//! that owns it, and handed out again only after that free was staged), in strictly increasing
//! commits, so the operations a state includes are a prefix of the page's list: the page must be
//! allocated, must be free, or may be either. The recovered allocation set must agree (INV-3:
//! an acknowledged allocation lost or an acknowledged free undone; INV-2: a page no included
//! operation allocated). During the run, a page handed out while a thread owns it, and a page a
//! thread owns that the pager says is free, are INV-3 findings.
//!
//! Before each operation a thread takes a read guard (checking its pages) and yields while it
//! holds it: the other threads' operations queue up behind the guard, so groups of several
//! operations form, and their callers, woken together, often run while the leader still commits.
//! Whether a caller acknowledged too early reads the counter before its leader's commit is done
//! is a race, which one run usually shows; the failed-sync phase reruns the workload once per
//! sync, each time on a new interleaving.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Barrier, Mutex, PoisonError};

use mappedpages::{CommitMode, MappedPageError, PageId, Pager, SharedPager, SimStorage};

use crate::alloc_model::{MixShape, Op, mixed_ops};
use crate::identity::{Identity, scenario_identity};
use crate::subsets::splitmix64;
use crate::{Allowed, Finding, Invariant, Matched, Recorder, Recovered, Scenario};

/// Operations per thread in the continuation of a chain (crash → recover → more operations).
const RESUME_OPS_PER_THREAD: usize = 2;

/// Pages a thread owns before its generated operations turn to frees.
const OWNED_TARGET: i64 = 24;

/// When an operation's change can be in a commit: the commits (counted from the start of the
/// run) it may be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// It changed nothing (it failed its own checks, or came after the pager was poisoned).
    Never,
    /// In commit `x` with `first ≤ x ≤ last` (`last = u64::MAX`: not acknowledged, its commit
    /// failed and may or may not have reached the disk).
    Commits {
        /// `before + 1`.
        first: u64,
        /// `after`, or `u64::MAX`.
        last: u64,
    },
}

/// Whether an operation allocated or freed its pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `alloc` or `alloc_bulk`.
    Alloc,
    /// `free` or `free_bulk`.
    Free,
}

/// One operation of one thread, as run.
#[derive(Clone, Debug)]
pub struct OpRecord {
    /// The thread.
    pub thread: usize,
    /// Its index in the thread's operation list.
    pub index: usize,
    /// The operation.
    pub op: Op,
    /// What it did to its pages.
    pub change: Change,
    /// The commits it may be in.
    pub window: Window,
}

impl OpRecord {
    fn describe(&self) -> String {
        let acknowledged = match self.window {
            Window::Never => "changed nothing".to_string(),
            Window::Commits { first, last } if last == u64::MAX => format!(
                "{} commits counted at the call; its commit failed, not acknowledged",
                first - 1
            ),
            Window::Commits { first, last } => format!(
                "{} commits counted at the call, {last} at its acknowledgement",
                first - 1
            ),
        };
        format!(
            "thread {}'s operation {} ({:?}; {acknowledged})",
            self.thread, self.index, self.op
        )
    }
}

/// One page's allocations and frees during the run, in the order they took effect.
#[derive(Clone, Debug, Default)]
struct PageHistory {
    /// Allocated when the run started (a chain's continuation starts from a recovered state).
    initially_allocated: bool,
    /// The thread that owns the page now (during the run).
    owner: Option<usize>,
    /// Indices into [`History::records`], alternately frees and allocations.
    events: Vec<usize>,
}

/// What a run did, shared by every model acknowledged during it.
#[derive(Debug, Default)]
pub struct History {
    records: Vec<OpRecord>,
    pages: BTreeMap<u64, PageHistory>,
    /// Allocations whose commit failed (their pages are unknown) and may have reached the disk.
    unknown_allocations: Vec<usize>,
}

/// What a recovered state must say of one page: allocated or free (with the operation that made
/// it so, `None` for the state before the run), or either.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Allocated(Option<usize>),
    Free(Option<usize>),
    Either,
}

impl History {
    /// The operations run, in the order they were recorded.
    pub fn records(&self) -> &[OpRecord] {
        &self.records
    }

    fn record(&mut self, record: OpRecord) -> usize {
        self.records.push(record);
        self.records.len() - 1
    }

    /// What a state holding exactly the run's first `g` commits must say of `page`, whose
    /// operations are `history`.
    fn expected(&self, page: u64, history: &PageHistory, g: u64) -> Result<Expected, Finding> {
        let live: Vec<usize> = history
            .events
            .iter()
            .copied()
            .filter(|&op| self.records[op].window != Window::Never)
            .collect();
        // The state holds a prefix of `live` (commits increase along the list), at least up to
        // the last operation that must be in it and short of the first one that cannot be. An
        // operation acknowledged by commit `g` must be in it, even if it was acknowledged
        // without any commit counted since its call (`last < first`: acknowledged before its
        // commit was durable, a bug the state then shows).
        let mut must = 0;
        let mut may = live.len();
        for (position, &op) in live.iter().enumerate() {
            if let Window::Commits { first, last } = self.records[op].window {
                if last <= g {
                    must = position + 1;
                } else if first > g && may == live.len() {
                    may = position;
                }
            }
        }
        if must > may {
            return Err(Finding::new(
                Invariant::Durable,
                format!(
                    "page {page}: {} is acknowledged by commit {g}, but the earlier {} on the same page cannot be in it yet",
                    self.records[live[must - 1]].describe(),
                    self.records[live[may]].describe()
                ),
            ));
        }
        let allocated_after = |count: usize| match count {
            0 => history.initially_allocated,
            n => self.records[live[n - 1]].change == Change::Alloc,
        };
        let cause = must.checked_sub(1).map(|n| live[n]);
        Ok(if must < may {
            Expected::Either
        } else if allocated_after(must) {
            Expected::Allocated(cause)
        } else {
            Expected::Free(cause)
        })
    }

    /// Checks the regular pages of `pager` against the run's first `g` commits (`durable` of
    /// them were durable before the crash).
    fn verify<const P: usize>(
        &self,
        pager: &Pager<P, SimStorage>,
        g: u64,
        durable: u64,
    ) -> Result<(), Finding> {
        let allocated: BTreeSet<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
        // A failed allocation in the state's commits could have allocated any free page.
        let unknown = self.unknown_allocations.iter().any(
            |&op| matches!(self.records[op].window, Window::Commits { first, .. } if first <= g),
        );
        let state = format!(
            "in the state recovered at commit {g} of the run ({durable} durable before the crash; {} pages allocated)",
            allocated.len()
        );
        for (&page, history) in &self.pages {
            let is_allocated = allocated.contains(&page);
            match self.expected(page, history, g)? {
                Expected::Allocated(cause) if !is_allocated => {
                    let cause = cause.map_or("allocated before the run".to_string(), |op| {
                        format!("allocated by {}", self.records[op].describe())
                    });
                    return Err(Finding::new(
                        Invariant::Durable,
                        format!(
                            "acknowledged allocation lost: page {page} ({cause}) is free {state}"
                        ),
                    ));
                }
                Expected::Free(Some(op)) if is_allocated && !unknown => {
                    return Err(Finding::new(
                        Invariant::Durable,
                        format!(
                            "acknowledged free undone: page {page} (freed by {}) is allocated {state}",
                            self.records[op].describe()
                        ),
                    ));
                }
                Expected::Free(None) if is_allocated && !unknown => {
                    let first = history
                        .events
                        .iter()
                        .map(|&op| &self.records[op])
                        .find(|record| record.window != Window::Never)
                        .map_or("no operation".to_string(), OpRecord::describe);
                    return Err(Finding::new(
                        Invariant::Atomic,
                        format!(
                            "page {page} is allocated {state}, but its first allocation cannot be in those commits: {first}"
                        ),
                    ));
                }
                _ => {}
            }
        }
        if !unknown && let Some(page) = allocated.iter().find(|page| !self.pages.contains_key(page))
        {
            return Err(Finding::new(
                Invariant::Atomic,
                format!(
                    "page {page} is allocated {state}, but no operation of the run allocated it"
                ),
            ));
        }
        Ok(())
    }
}

/// The model: the run's history and how many of its commits were durable when it was
/// acknowledged.
#[derive(Clone)]
pub struct ConcurrentModel {
    history: Arc<History>,
    /// The pager's generation when the run started.
    gen0: u64,
    /// Commits of the run durable at the acknowledgement.
    durable_commits: u64,
}

impl ConcurrentModel {
    /// Commits of the run durable when this model was acknowledged.
    pub fn durable_commits(&self) -> u64 {
        self.durable_commits
    }

    /// The run's history.
    pub fn history(&self) -> &History {
        &self.history
    }
}

impl fmt::Debug for ConcurrentModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrentModel")
            .field("operations", &self.history.records.len())
            .field("pages", &self.history.pages.len())
            .field("gen0", &self.gen0)
            .field("durable_commits", &self.durable_commits)
            .finish()
    }
}

/// `threads` threads running seeded operation lists at once on one `SharedPager`.
#[derive(Clone, Debug)]
pub struct ConcurrentScenario<const P: usize> {
    identity: Identity,
    threads: usize,
    ops_per_thread: usize,
}

impl<const P: usize> ConcurrentScenario<P> {
    /// `threads` threads, each running [`thread_ops`] of `ops_per_thread` operations from its own
    /// seed (derived from `seed`).
    pub fn new(name: impl Into<String>, seed: u64, threads: usize, ops_per_thread: usize) -> Self {
        ConcurrentScenario {
            identity: Identity::new(name, seed),
            threads: threads.max(1),
            ops_per_thread,
        }
    }

    /// The same workload committing in `mode`; a mode other than `Flip` appends
    /// [`crate::commit_mode_suffix`] to the name.
    pub fn with_commit_mode(mut self, mode: CommitMode) -> Self {
        self.identity.set_commit_mode(mode);
        self
    }

    /// Thread `thread`'s operations (`count` of them, from the scenario's seed and `salt`).
    fn ops(&self, thread: usize, salt: u64, count: usize) -> Vec<Op> {
        let mut state =
            self.identity.seed() ^ salt ^ (thread as u64).wrapping_mul(0xA24B_AED4_963E_E407);
        thread_ops(splitmix64(&mut state), count)
    }

    /// Runs the threads on `pager` (a `SharedPager` owns it meanwhile) from a state whose
    /// allocated pages are `base` (handed out round-robin to the threads, which may free them),
    /// then acknowledges "`D` commits durable" at sync `c0 + D·s` for every `D`; hands the pager
    /// back.
    fn run_threads(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<ConcurrentModel>,
        base: BTreeSet<u64>,
        salt: u64,
        ops_per_thread: usize,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let gen0 = pager.generation();
        let c0 = pager.storage().sync_count();
        let mut history = History::default();
        let mut owned = vec![BTreeSet::new(); self.threads];
        for (rank, &page) in base.iter().enumerate() {
            let thread = rank % self.threads;
            owned[thread].insert(page);
            history.pages.insert(
                page,
                PageHistory {
                    initially_allocated: true,
                    owner: Some(thread),
                    events: Vec::new(),
                },
            );
        }
        let shared = SharedPager::new(pager);
        let log = Mutex::new(history);
        // Every thread starts at once (spawning takes longer than a few commits of SimStorage).
        let start = Barrier::new(self.threads);
        let results: Vec<Result<(), Finding>> = std::thread::scope(|scope| {
            let workers: Vec<_> = owned
                .into_iter()
                .enumerate()
                .map(|(thread, owned)| {
                    let ops = self.ops(thread, salt, ops_per_thread);
                    let (shared, log, start) = (&shared, &log, &start);
                    scope.spawn(move || {
                        start.wait();
                        worker(shared, log, thread, &ops, owned)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker.join().unwrap_or_else(|panic| {
                        Err(crate::panic_finding(panic, "panic in a worker thread"))
                    })
                })
                .collect()
        });
        let commits = shared.stats().commits;
        let pager = shared.into_inner().map_err(|_| {
            Finding::new(
                Invariant::MalformedInput,
                "a SharedPager handle outlived its threads",
            )
        })?;
        results.into_iter().collect::<Result<(), Finding>>()?;
        let history = log.into_inner().unwrap_or_else(PoisonError::into_inner);
        // The harness's assumption: each group commit is one protocol round of `s` syncs, and
        // nothing else syncs (a growth is made durable by the commit's first barrier); a failed
        // commit stops after its failing sync.
        let per_commit = match self.identity.commit_mode() {
            CommitMode::SingleSync => 1,
            _ => 2,
        };
        let syncs = pager.storage().sync_count() - c0;
        let expected = commits * per_commit;
        let fits = if pager.is_poisoned() {
            syncs > expected && syncs <= expected + per_commit
        } else {
            syncs == expected
        };
        if !fits {
            return Err(Finding::new(
                Invariant::BoundedCommitCost,
                format!(
                    "{commits} group commits made {syncs} syncs, not {per_commit} each{}: the workload cannot tell which sync made which commit durable",
                    if pager.is_poisoned() {
                        " (plus the failed one's)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let history = Arc::new(history);
        for durable_commits in 0..=commits {
            rec.ack_at_sync(
                c0 + durable_commits * per_commit,
                ConcurrentModel {
                    history: history.clone(),
                    gen0,
                    durable_commits,
                },
            );
        }
        Ok(pager)
    }
}

/// A seeded list of `count` regular operations for one thread: single and small bulk
/// allocations, and frees of single pages and of small sets, by rank among the pages the thread
/// owns; the thread stays under about 30 pages.
pub fn thread_ops(seed: u64, count: usize) -> Vec<Op> {
    mixed_ops(
        seed,
        count,
        &MixShape {
            max_owned: OWNED_TARGET,
            free_from_percent: 55,
            single_alloc_below_percent: 35,
            bulk_min: 2,
            bulk_alloc_spread: 3,
            bulk_free_spread: 3,
            free_start_spread: 16,
            free_step_spread: 2,
        },
    )
}

/// Writes a pattern of `tag` over `bytes` (one word of it per 8 bytes).
fn fill_pattern(bytes: &mut [u8], tag: u64) {
    let mut state = tag;
    for word in bytes.chunks_exact_mut(8) {
        word.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
}

fn lock(log: &Mutex<History>) -> std::sync::MutexGuard<'_, History> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One thread: runs `ops`, recording each in `log`. Stops when the pager is poisoned.
fn worker<const P: usize>(
    shared: &SharedPager<P, SimStorage>,
    log: &Mutex<History>,
    thread: usize,
    ops: &[Op],
    mut owned: BTreeSet<u64>,
) -> Result<(), Finding> {
    let poisoned = || shared.read().is_poisoned();
    // The commits an operation that failed may be in. A failed commit poisons the pager before
    // its callers get `Io`, so an `Io` from a pager that is not poisoned is a failed growth,
    // which changed nothing (§3.4); `Poisoned` (the pager was poisoned before the operation was
    // staged) and a failed check changed nothing either.
    let window_after_error = |error: &MappedPageError, first: u64| match error {
        MappedPageError::Io { .. } if poisoned() => Window::Commits {
            first,
            last: u64::MAX,
        },
        _ => Window::Never,
    };
    for (index, &op) in ops.iter().enumerate() {
        // A reader first: the pager must hold this thread's pages allocated. Yielding while the
        // guard is alive lets the other threads' operations queue up behind it (a leader waits
        // for the guard before it takes the queue), so groups form: SimStorage commits so fast
        // that without it the threads hardly ever overlap and every group has one operation.
        {
            let pager = shared.read();
            if !pager.is_poisoned()
                && let Some(page) = owned
                    .iter()
                    .find(|&&page| !pager.is_allocated(PageId::<P>::from_raw(page)))
            {
                return Err(Finding::new(
                    Invariant::Durable,
                    format!("thread {thread} owns page {page}, but the pager says it is free"),
                ));
            }
            std::thread::yield_now();
        }
        let pages: Vec<u64> = match op {
            Op::Alloc | Op::AllocBulk(_) => Vec::new(),
            Op::Free(rank) => owned
                .iter()
                .nth(rank % owned.len().max(1))
                .copied()
                .into_iter()
                .collect(),
            Op::FreeBulk { start, step, count } => owned
                .iter()
                .copied()
                .skip(start % owned.len().max(1))
                .step_by(step.max(1))
                .take(count)
                .collect(),
        };
        let record = |change, window| OpRecord {
            thread,
            index,
            op,
            change,
            window,
        };
        match op {
            Op::Alloc | Op::AllocBulk(_) => {
                let before = shared.stats().commits;
                // A single allocation fills its page in the group's barrier (`alloc_with`, SPEC.md
                // §3.6.1; data checks in single-sync mode, which recovery must find intact or
                // the group's acknowledged operations are lost); a bulk one does not.
                let result = match op {
                    Op::AllocBulk(count) => shared.alloc_bulk(count),
                    _ => {
                        let tag = (thread * 1_000 + index) as u64;
                        shared
                            .alloc_with(move |page| fill_pattern(page.as_bytes_mut(), tag))
                            .map(|id| vec![id])
                    }
                };
                match result {
                    Ok(ids) => {
                        let after = shared.stats().commits;
                        let mut log = lock(log);
                        let id = log.record(record(
                            Change::Alloc,
                            Window::Commits {
                                first: before + 1,
                                last: after,
                            },
                        ));
                        for page in ids.iter().map(|id| id.raw()) {
                            let history = log.pages.entry(page).or_default();
                            if let Some(owner) = history.owner {
                                return Err(Finding::new(
                                    Invariant::Durable,
                                    format!(
                                        "thread {thread}'s {op:?} was handed page {page}, which thread {owner} owns"
                                    ),
                                ));
                            }
                            history.owner = Some(thread);
                            history.events.push(id);
                            owned.insert(page);
                        }
                    }
                    Err(error) => {
                        let window = window_after_error(&error, before + 1);
                        let mut log = lock(log);
                        let id = log.record(record(Change::Alloc, window));
                        if window != Window::Never {
                            log.unknown_allocations.push(id);
                        }
                        drop(log);
                        if poisoned() {
                            return Ok(());
                        }
                    }
                }
            }
            Op::Free(_) | Op::FreeBulk { .. } => {
                if pages.is_empty() {
                    continue;
                }
                let before = shared.stats().commits;
                // Give the pages up before the call: once the free is staged, another thread may
                // be handed them, and its allocation must come after this free in their lists.
                let id = {
                    let mut log = lock(log);
                    let id = log.record(record(
                        Change::Free,
                        Window::Commits {
                            first: before + 1,
                            last: u64::MAX,
                        },
                    ));
                    for &page in &pages {
                        let history = log.pages.entry(page).or_default();
                        history.owner = None;
                        history.events.push(id);
                    }
                    id
                };
                for page in &pages {
                    owned.remove(page);
                }
                let ids: Vec<PageId<P>> = pages.iter().map(|&p| PageId::from_raw(p)).collect();
                let result = match op {
                    Op::Free(_) => shared.free(ids[0]),
                    _ => shared.free_bulk(ids),
                };
                match result {
                    Ok(()) => {
                        let after = shared.stats().commits;
                        lock(log).records[id].window = Window::Commits {
                            first: before + 1,
                            last: after,
                        };
                    }
                    Err(
                        error @ (MappedPageError::Io { .. } | MappedPageError::Poisoned { .. }),
                    ) => {
                        let window = window_after_error(&error, before + 1);
                        lock(log).records[id].window = window;
                        if poisoned() {
                            return Ok(());
                        }
                    }
                    Err(error) => {
                        return Err(Finding::new(
                            Invariant::Durable,
                            format!(
                                "thread {thread}'s {op:?} of its own pages {pages:?} failed: {error}"
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

impl<const P: usize> Scenario<P> for ConcurrentScenario<P> {
    type Model = ConcurrentModel;

    scenario_identity!();

    /// The created file: nothing allocated, no commit after the create's.
    fn initial_model(&self) -> ConcurrentModel {
        let gen0 = Pager::<P, SimStorage>::create_in(SimStorage::new())
            .map(|pager| pager.generation())
            .expect("create_in on a fresh SimStorage");
        ConcurrentModel {
            history: Arc::new(History::default()),
            gen0,
            durable_commits: 0,
        }
    }

    fn run(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<ConcurrentModel>,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        self.run_threads(pager, rec, BTreeSet::new(), 0, self.ops_per_thread)
    }

    /// A short threaded continuation from the recovered state: its allocated pages are handed out
    /// to the threads, which may free them.
    fn resume(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<ConcurrentModel>,
        model: &ConcurrentModel,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let _ = model; // the recovered pager says which pages are allocated
        let base = pager.iter_allocated_pages().map(|id| id.raw()).collect();
        self.run_threads(pager, rec, base, 0x5EED_C0DE, RESUME_OPS_PER_THREAD)
    }

    fn check(
        &self,
        pager: &Recovered<'_, P>,
        allowed: &Allowed<'_, ConcurrentModel>,
    ) -> Result<Matched, Finding> {
        let model = allowed.acknowledged;
        let durable = model.durable_commits;
        let generation = pager.generation();
        let Some(g) = generation.checked_sub(model.gen0) else {
            return Err(Finding::new(
                Invariant::Durable,
                format!(
                    "recovered generation {generation} is older than the run's start ({})",
                    model.gen0
                ),
            ));
        };
        let matched = if g == durable {
            Matched::Acknowledged
        } else if g == durable + 1 && allowed.in_flight.is_some() {
            Matched::InFlight
        } else if g < durable {
            return Err(Finding::new(
                Invariant::Durable,
                format!(
                    "recovered commit {g} of the run, but {durable} were durable before the crash"
                ),
            ));
        } else {
            return Err(Finding::new(
                Invariant::Atomic,
                format!(
                    "recovered commit {g} of the run, but {durable} were durable before the crash and {} in flight",
                    if allowed.in_flight.is_some() {
                        "one"
                    } else {
                        "none"
                    }
                ),
            ));
        };
        model.history.verify(pager, g, durable)?;
        Ok(matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(thread: usize, change: Change, first: u64, last: u64) -> OpRecord {
        OpRecord {
            thread,
            index: 0,
            op: Op::Alloc,
            change,
            window: Window::Commits { first, last },
        }
    }

    /// Page 7: allocated by thread 0 in commit 1..=2, freed by it in 3..=4, allocated again by
    /// thread 1 in 5..=∞ (its commit failed).
    fn history() -> History {
        let mut history = History::default();
        let events = vec![
            history.record(op(0, Change::Alloc, 1, 2)),
            history.record(op(0, Change::Free, 3, 4)),
            history.record(op(1, Change::Alloc, 5, u64::MAX)),
        ];
        history.pages.insert(
            7,
            PageHistory {
                events,
                ..PageHistory::default()
            },
        );
        history
    }

    #[test]
    fn a_page_is_decided_by_the_operations_that_must_and_cannot_be_in_a_state() {
        let history = history();
        let page = &history.pages[&7];
        let expected = |g| history.expected(7, page, g).unwrap();
        assert_eq!(expected(0), Expected::Free(None));
        assert_eq!(expected(1), Expected::Either); // the allocation may be in commit 1 or 2
        assert_eq!(expected(2), Expected::Allocated(Some(0)));
        assert_eq!(expected(3), Expected::Either);
        assert_eq!(expected(4), Expected::Free(Some(1)));
        assert_eq!(expected(5), Expected::Either); // the failed commit may have landed
    }

    #[test]
    fn an_operation_acknowledged_before_any_commit_is_expected_in_the_state() {
        // Called with 3 commits counted, acknowledged with 3 counted: the mutant's signature.
        let mut history = History::default();
        let events = vec![history.record(op(0, Change::Alloc, 4, 3))];
        history.pages.insert(
            9,
            PageHistory {
                events,
                ..PageHistory::default()
            },
        );
        let page = &history.pages[&9];
        assert_eq!(
            history.expected(9, page, 3).unwrap(),
            Expected::Allocated(Some(0))
        );
    }

    #[test]
    fn operations_on_one_page_acknowledged_out_of_order_are_a_finding() {
        let mut history = History::default();
        let events = vec![
            history.record(op(0, Change::Alloc, 4, 9)),
            history.record(op(0, Change::Free, 2, 3)),
        ];
        history.pages.insert(
            5,
            PageHistory {
                events,
                ..PageHistory::default()
            },
        );
        let finding = history.expected(5, &history.pages[&5], 3).unwrap_err();
        assert_eq!(finding.invariant, Invariant::Durable);
    }

    #[test]
    fn the_concurrent_workloads_explore_clean_in_both_modes() {
        for mode in [CommitMode::Flip, CommitMode::SingleSync] {
            let scenario =
                ConcurrentScenario::<1024>::new("threads-test", 0, 4, 12).with_commit_mode(mode);
            let outcome = crate::explore(&scenario, &crate::Config::quick());
            assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
            assert!(outcome.states > 100, "{} states", outcome.states);
        }
    }
}
