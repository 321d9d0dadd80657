//! The `recovery` target: a fuzzer-chosen workload, crashed at a fuzzer-chosen point, recovered,
//! and judged by crashsim's own checker (the same code as the explorer's, called through
//! crashsim's public API; nothing of it is restated here).
//!
//! The input (decoded with `arbitrary`) picks a page size, an operation sequence, a crash point
//! (sync index, sector size, which in-flight sectors survive, file length, optionally a crash
//! of the recovery) and optionally, instead, a failed sync, a failed growth, a chain (crash,
//! recover, continue, crash again) or a damaged internal page. The operations become a crashsim
//! scenario: [`AllocScenario`] when they are all regular, [`ProtectedScenario`] otherwise, run in
//! both commit modes (two barriers per commit, then one: SPEC.md §3.2.1). The
//! scenario is wrapped in [`Capture`], which delegates `run`, `resume` and `check` to it
//! unchanged and only records what the runs left (the crash point before every sync and the
//! acknowledged models of the clean run, the continuation of a chain), so the target can choose
//! a crash among the states that exist.
//!
//! 1. `crashsim::explore` with every phase off runs the workload once: the checks the scenario
//!    makes during its run (an owned page handed out, a writer that does not start from the
//!    committed content, a failure that leaves memory and disk apart, ...) report there.
//! 2. A plain crash, whatever sectors it keeps, is judged by `crashsim::check_image`, the
//!    explorer's judge for one image: it opens (INV-1), is well-formed (INV-5), matches the
//!    acknowledged or in-flight model that `crashsim::allowed_at` gives for the crash point
//!    (`Scenario::check`: INV-2/3/4); a panic is INV-9.
//! 3. Every other state is a crashsim `Case` (`RecoveryCrash`, `FailedSync`, `FailedGrowth`,
//!    `Chain`, `Media`) rerun by `crashsim::replay` through the same judge plus the checks its
//!    kind adds: a crash of its own recovery and a crash after more work (INV-6), nothing lost
//!    after a failure (INV-7), damage detected or survived (INV-8, INV-13). `replay` evaluates
//!    any kept sectors (not only the subsets the explorer enumerates) and says when a case is
//!    not a state of the workload (a harness error here). A chain's second crash is chosen after
//!    a first `replay` has run the continuation, which [`Capture`] records; a damaged page and
//!    field are chosen among `crashsim::media_damages`, the media phase's own list.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arbitrary::Arbitrary;
use crashsim::alloc_model::{AllocScenario, Op};
use crashsim::filled_model::{FilledOp, FilledScenario};
use crashsim::protected_model::{ProtectedOp, ProtectedScenario};
use crashsim::subsets::subsets;
use crashsim::{
    Allowed, Case, Config, Finding, Keeps, Length, Matched, MediaDamage, Phases, Recorder,
    Recovered, Scenario, Violation, allowed_at, check_image, explore, media_damages, replay,
};
use mappedpages::{CommitMode, CrashPoint, Pager, SectorSize, SimStorage};

use crate::finding;

/// At most this many operations are run (the rest of a longer input is ignored).
pub const MAX_OPS: usize = 40;
/// Regular bulk allocations take at most this many pages.
pub const MAX_BULK: usize = 160;
/// Protected bulk allocations take at most this many pages.
pub const MAX_PROTECTED_BULK: usize = 48;
/// Bytes of pages a workload's allocations may request in all (a protected page counts twice,
/// for its two backing copies); bulk allocations are cut to what is left. Files stay at most
/// about 1 MiB (16 → 1024 pages at 1 KiB, 16 → 256 at 4 KiB): the crash point `SimStorage`
/// records before every sync compares the whole file, so the cost of an input grows with its
/// syncs times its file size.
pub const ALLOCATION_BUDGET_BYTES: usize = 512 << 10;

/// One recovery-target input.
#[derive(Arbitrary, Debug, Clone)]
pub struct RecoveryInput {
    /// 1 KiB or 4 KiB pages.
    pub page_size: PageSize,
    /// Where the crash happens and what survives it.
    pub crash: CrashChoice,
    /// A failure, a chain or media corruption instead of a plain crash.
    pub extra: Option<Extra>,
    /// The workload (at most [`MAX_OPS`] are used).
    pub ops: Vec<FuzzOp>,
}

/// Page size of the file.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 1024 bytes.
    K1,
    /// 4096 bytes.
    K4,
}

/// One operation. Pages are named by rank among the allocated ones (crashsim's convention).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuzzOp {
    /// `alloc()`.
    Alloc,
    /// `free` of the regular page of this rank.
    Free(u16),
    /// `alloc_bulk(n % (MAX_BULK + 1))`.
    AllocBulk(u8),
    /// `free_bulk` of `count` regular pages, every `step`-th from rank `start`.
    FreeBulk {
        /// First rank.
        start: u8,
        /// Distance between ranks.
        step: u8,
        /// How many.
        count: u8,
    },
    /// `alloc_protected()`.
    AllocProtected,
    /// `alloc_protected_bulk(n % (MAX_PROTECTED_BULK + 1))`.
    AllocProtectedBulk(u8),
    /// Partial (or, with a large `len`, whole-page) write of a protected page, committed.
    Write {
        /// Rank of the protected page.
        rank: u16,
        /// First byte (modulo the page size).
        offset: u16,
        /// Bytes written (clamped to the page end).
        len: u16,
        /// The byte written.
        value: u8,
    },
    /// A writer that scribbles and is dropped without committing.
    WriteDiscarded {
        /// Rank of the protected page.
        rank: u16,
        /// First byte (modulo the page size).
        offset: u16,
        /// The byte scribbled.
        value: u8,
    },
    /// `free_protected` of the protected page of this rank.
    FreeProtected(u16),
    /// `free_protected_bulk` of `count` protected pages, every `step`-th from rank `start`.
    FreeProtectedBulk {
        /// First rank.
        start: u8,
        /// Distance between ranks.
        step: u8,
        /// How many.
        count: u8,
    },
    /// `alloc_with` (0) or `alloc_bulk_with(n % (MAX_BULK + 1))`: pages filled in their commit
    /// (SPEC.md §3.6.1; in single-sync mode, data checks). In a protected workload: `alloc`.
    AllocWith(u8),
    /// `get_mut` + a new pattern + `sync_page` of the regular page of this rank (settles a
    /// just-filled page first). Dropped from a protected workload.
    Rewrite(u16),
    /// `get_mut` + a new pattern + `attach_to_next_commit` of the regular page of this rank:
    /// durable with the next commit (SPEC.md §3.6.2). Dropped from a protected workload.
    RewriteAttached(u16),
}

impl FuzzOp {
    fn is_regular(self) -> bool {
        matches!(
            self,
            FuzzOp::Alloc | FuzzOp::Free(_) | FuzzOp::AllocBulk(_) | FuzzOp::FreeBulk { .. }
        )
    }

    fn is_filled(self) -> bool {
        matches!(
            self,
            FuzzOp::AllocWith(_) | FuzzOp::Rewrite(_) | FuzzOp::RewriteAttached(_)
        )
    }
}

/// The crash.
#[derive(Arbitrary, Debug, Clone)]
pub struct CrashChoice {
    /// Crash just before this sync (modulo the number of syncs + 1; the last value is "after
    /// the last sync").
    pub sync: u16,
    /// Sectors of 4096 bytes instead of 512.
    pub sector_4k: bool,
    /// Keep the durable file length rather than the current one (when they differ).
    pub durable_length: bool,
    /// Bit `i` (byte `i / 8`, bit `i % 8`) keeps the `i`-th in-flight sector.
    pub mask: Vec<u8>,
    /// Whether in-flight sectors past the mask are kept.
    pub rest_kept: bool,
    /// Then crash the recovery too: before its sync `sync` (modulo its syncs), keeping of the
    /// 512-byte sectors that sync writes the `i`-th if bit `i % 16` of the mask is set.
    pub recovery: Option<(u8, u16)>,
}

/// What a failed sync makes durable (crashsim's `Keeps`).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepsChoice {
    /// None of its sectors.
    Nothing,
    /// All of them.
    Everything,
    /// A subset seeded by the sync index.
    Seeded,
}

/// What happens instead of a plain crash at `crash.sync`.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// Sync `sync` (modulo the syncs after the create) fails; the workload goes on as far as the
    /// pager lets it; then a crash keeps none or all in-flight sectors, at either length.
    FailedSync {
        /// Which sync.
        sync: u16,
        /// What the failed sync made durable.
        keeps: KeepsChoice,
        /// Whether the final crash keeps every in-flight sector.
        kept_all: bool,
        /// Whether the final crash keeps the durable length.
        durable_length: bool,
    },
    /// Growth `growth` (modulo the growths of the clean run) fails; the workload goes on.
    FailedGrowth {
        /// Which growth.
        growth: u8,
    },
    /// A crash before sync `crash.sync` keeping none or (with `crash.rest_kept`) all of its
    /// sectors, recovery, the scenario's continuation (`Scenario::resume`), and a crash before
    /// its sync `second_sync`.
    Chain {
        /// Sync of the continuation (modulo its syncs + 1).
        second_sync: u16,
        /// Which in-flight 512-byte sectors the second crash keeps: an index (modulo their
        /// number) into `crashsim::subsets::subsets(sectors, 8, 0, 0)`, that is the subset with
        /// these bits when at most 8 are in flight, else one of the named patterns (none, all,
        /// each single sector, all but each, every prefix and suffix in address order).
        second_subset: u8,
        /// Whether the second crash keeps the durable length.
        durable_length: bool,
    },
    /// The durable image before sync `crash.sync` (modulo the syncs after the create) with one
    /// internal page damaged as crashsim's media phase damages it (`crashsim::media_damages`).
    Media {
        /// Which page (modulo the pages damaged).
        target: u16,
        /// Which of that page's flipped bits (modulo their number).
        field: u8,
        /// Zero the sector holding that byte instead, where the media phase does (one field of
        /// each page).
        zero_sector: bool,
    },
}

/// What the clean run of a scenario left.
pub struct CleanRun<M> {
    /// Crash point before every sync, in order.
    pub snapshots: Vec<CrashPoint>,
    /// Crash point after the last operation.
    pub last: CrashPoint,
    /// (sync count at the time, model) after every acknowledged operation.
    pub acks: Vec<(u64, M)>,
    /// Syncs of the run.
    pub syncs: u64,
    /// Growths of the run.
    pub growths: u64,
}

/// What the last continuation (`Scenario::resume`, in a chain) left.
pub struct Continuation {
    /// Crash point before each of its syncs.
    pub snapshots: Vec<CrashPoint>,
    /// Crash point after it.
    pub last: CrashPoint,
}

/// A scenario that behaves exactly as `inner` and records its clean run (the first run whose
/// storage records sync snapshots; later ones, such as `replay`'s, are not recorded) and its
/// last continuation, and counts calls of `check`.
pub struct Capture<S, const P: usize>
where
    S: Scenario<P>,
{
    inner: S,
    recorded: AtomicBool,
    clean: Mutex<Option<CleanRun<S::Model>>>,
    continuation: Mutex<Option<Continuation>>,
    checks: AtomicU64,
}

impl<S: Scenario<P>, const P: usize> Capture<S, P> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Capture {
            inner,
            recorded: AtomicBool::new(false),
            clean: Mutex::new(None),
            continuation: Mutex::new(None),
            checks: AtomicU64::new(0),
        }
    }

    /// The wrapped scenario.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Calls of `check` so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }

    /// Takes the recorded clean run.
    pub fn take_clean(&self) -> Option<CleanRun<S::Model>> {
        self.clean.lock().expect("capture lock").take()
    }

    /// Takes the recorded continuation.
    pub fn take_continuation(&self) -> Option<Continuation> {
        self.continuation.lock().expect("capture lock").take()
    }
}

impl<S: Scenario<P>, const P: usize> Scenario<P> for Capture<S, P> {
    type Model = S::Model;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn seed(&self) -> u64 {
        self.inner.seed()
    }

    fn commit_mode(&self) -> CommitMode {
        self.inner.commit_mode()
    }

    fn initial_model(&self) -> S::Model {
        self.inner.initial_model()
    }

    fn run(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<S::Model>,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let pager = self.inner.run(pager, rec)?;
        let storage = pager.storage();
        if !storage.sync_snapshots().is_empty() && !self.recorded.swap(true, Ordering::SeqCst) {
            *self.clean.lock().expect("capture lock") = Some(CleanRun {
                snapshots: storage.sync_snapshots().to_vec(),
                last: storage.crash_point(),
                acks: rec.acks().to_vec(),
                syncs: storage.sync_count(),
                growths: storage.grow_count(),
            });
        }
        Ok(pager)
    }

    fn resume(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<S::Model>,
        model: &S::Model,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let pager = self.inner.resume(pager, rec, model)?;
        let storage = pager.storage();
        *self.continuation.lock().expect("capture lock") = Some(Continuation {
            snapshots: storage.sync_snapshots().to_vec(),
            last: storage.crash_point(),
        });
        Ok(pager)
    }

    fn check(
        &self,
        pager: &Recovered<'_, P>,
        allowed: &Allowed<'_, S::Model>,
    ) -> Result<Matched, Finding> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.inner.check(pager, allowed)
    }
}

/// The operations as a crashsim workload.
#[derive(Debug)]
pub enum Workload {
    /// Only regular operations: crashsim's allocation scenario.
    Regular(Vec<Op>),
    /// Regular operations and filled pages: crashsim's filled-page scenario (every allocation
    /// fills its pages, so every page's bytes are judged).
    Filled(Vec<FilledOp>),
    /// Protected operations too: crashsim's protected scenario.
    Protected(Vec<ProtectedOp>),
}

/// Turns the fuzzer's operations into a crashsim workload. `ProtectedOp` has no regular bulk
/// operations yet: in a protected workload a regular bulk allocation becomes up to four single
/// allocations and a bulk free up to four single frees.
pub fn workload(ops: &[FuzzOp], page_size: usize) -> Workload {
    let ops = &ops[..ops.len().min(MAX_OPS)];
    let mut budget = ALLOCATION_BUDGET_BYTES / page_size;
    let mut take = |pages: usize| {
        let granted = pages.min(budget);
        budget -= granted;
        granted
    };
    if ops.iter().all(|op| op.is_regular() || op.is_filled()) && ops.iter().any(|op| op.is_filled())
    {
        return Workload::Filled(
            ops.iter()
                .map(|&op| match op {
                    FuzzOp::Alloc => FilledOp::AllocWith,
                    FuzzOp::AllocWith(n) | FuzzOp::AllocBulk(n) => {
                        match take(usize::from(n) % (MAX_BULK + 1)) {
                            0 => FilledOp::AllocWith,
                            n => FilledOp::AllocBulkWith(n),
                        }
                    }
                    FuzzOp::Free(rank) => FilledOp::Free(rank.into()),
                    FuzzOp::Rewrite(rank) => FilledOp::Rewrite(rank.into()),
                    FuzzOp::RewriteAttached(rank) => FilledOp::RewriteAttached(rank.into()),
                    FuzzOp::FreeBulk { start, step, count } => FilledOp::FreeEvery {
                        start: start.into(),
                        step: step.into(),
                        count: count.into(),
                    },
                    _ => unreachable!("regular or filled"),
                })
                .collect(),
        );
    }
    if ops.iter().all(|op| op.is_regular()) {
        return Workload::Regular(
            ops.iter()
                .map(|&op| match op {
                    FuzzOp::Alloc => Op::Alloc,
                    FuzzOp::Free(rank) => Op::Free(rank.into()),
                    FuzzOp::AllocBulk(n) => Op::AllocBulk(take(usize::from(n) % (MAX_BULK + 1))),
                    FuzzOp::FreeBulk { start, step, count } => Op::FreeBulk {
                        start: start.into(),
                        step: step.into(),
                        count: count.into(),
                    },
                    _ => unreachable!("all regular"),
                })
                .collect(),
        );
    }
    let mut out = Vec::new();
    for &op in ops {
        match op {
            FuzzOp::Alloc => out.push(ProtectedOp::Alloc),
            FuzzOp::Free(rank) => out.push(ProtectedOp::Free(rank.into())),
            FuzzOp::AllocBulk(n) => {
                out.extend(std::iter::repeat_n(ProtectedOp::Alloc, usize::from(n % 5)));
            }
            FuzzOp::FreeBulk { start, step, count } => {
                let step = usize::from(step).max(1);
                out.extend(
                    (0..usize::from(count % 5))
                        .map(|i| ProtectedOp::Free(usize::from(start) + i * step)),
                );
            }
            FuzzOp::AllocProtected => out.push(ProtectedOp::AllocProtected),
            FuzzOp::AllocProtectedBulk(n) => out.push(ProtectedOp::AllocProtectedBulk(
                take(2 * (usize::from(n) % (MAX_PROTECTED_BULK + 1))) / 2,
            )),
            FuzzOp::Write {
                rank,
                offset,
                len,
                value,
            } => out.push(ProtectedOp::Write {
                rank: rank.into(),
                offset: usize::from(offset) % page_size,
                len: len.into(),
                value,
            }),
            FuzzOp::WriteDiscarded {
                rank,
                offset,
                value,
            } => out.push(ProtectedOp::WriteDiscarded {
                rank: rank.into(),
                offset: usize::from(offset) % page_size,
                value,
            }),
            FuzzOp::FreeProtected(rank) => out.push(ProtectedOp::FreeProtected(rank.into())),
            FuzzOp::AllocWith(_) => out.push(ProtectedOp::Alloc),
            FuzzOp::Rewrite(_) | FuzzOp::RewriteAttached(_) => {}
            FuzzOp::FreeProtectedBulk { start, step, count } => {
                out.push(ProtectedOp::FreeProtectedBulk {
                    start: start.into(),
                    step: step.into(),
                    count: count.into(),
                })
            }
        }
    }
    Workload::Protected(out)
}

/// What [`run`] did, for the corpus generator and for statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Syncs of the clean run.
    pub syncs: u64,
    /// Growths of the clean run.
    pub growths: u64,
    /// Sectors in flight at the chosen crash point.
    pub in_flight: usize,
    /// The state was judged by `crashsim::replay` (else by `crashsim::check_image`).
    pub replayed: bool,
    /// Which case was judged (crashsim's reproducer JSON; empty if none).
    pub case: String,
    /// Calls of `Scenario::check` while judging it.
    pub checks: u64,
}

/// Runs one input; panics with a `FINDING INV-n` message on any violation.
pub fn run(input: &RecoveryInput) -> Summary {
    match input.page_size {
        PageSize::K1 => run_sized::<1024>(input),
        PageSize::K4 => run_sized::<4096>(input),
    }
}

/// Every input runs in both commit modes (SPEC.md §3.2, §3.2.1): the same operations, crash
/// choice and failure, once with two barriers per commit and once with one. The summary is the
/// flip run's (the single-sync run's is only checked).
fn run_sized<const P: usize>(input: &RecoveryInput) -> Summary {
    let mut summary = None;
    for mode in [CommitMode::Flip, CommitMode::SingleSync] {
        let judged = match workload(&input.ops, P) {
            Workload::Regular(ops) => check_scenario::<P, _>(
                AllocScenario::<P>::new("fuzz-regular", 0, ops).with_commit_mode(mode),
                input,
            ),
            Workload::Filled(ops) => check_scenario::<P, _>(
                FilledScenario::<P>::new("fuzz-filled", 0, ops).with_commit_mode(mode),
                input,
            ),
            Workload::Protected(ops) => check_scenario::<P, _>(
                ProtectedScenario::<P>::new("fuzz-protected", 0, ops).with_commit_mode(mode),
                input,
            ),
        };
        summary.get_or_insert(judged);
    }
    summary.expect("two modes ran")
}

/// No phase: `explore` runs the workload once and reports what its run checks.
fn run_only() -> Config {
    Config {
        phases: Phases::none(),
        ..Config::quick()
    }
}

fn length(durable: bool) -> Length {
    if durable {
        Length::Durable
    } else {
        Length::Current
    }
}

/// The elements of `items` at the indices `i` for which `keep(i)` holds.
fn masked(items: &[u64], keep: impl Fn(usize) -> bool) -> Vec<u64> {
    items
        .iter()
        .enumerate()
        .filter(|&(i, _)| keep(i))
        .map(|(_, &item)| item)
        .collect()
}

fn case_json(case: &Case) -> String {
    serde_json::to_string(case).unwrap_or_else(|e| format!("{case:?} ({e})"))
}

fn report<const P: usize, S: Scenario<P>>(
    scenario: &Capture<S, P>,
    what: &str,
    case: &str,
    violations: &[Violation],
    ops: &dyn std::fmt::Debug,
) {
    if let Some(first) = violations.first() {
        report_finding(scenario, what, case, &first.finding, violations.len(), ops);
    }
}

fn report_finding<const P: usize, S: Scenario<P>>(
    scenario: &Capture<S, P>,
    what: &str,
    case: &str,
    finding_: &Finding,
    count: usize,
    ops: &dyn std::fmt::Debug,
) -> ! {
    finding(
        finding_.invariant.number(),
        format!(
            "{}\n  found by: {what} ({count} finding(s))\n  case: {case}\n  workload: {} at {P}-byte pages\n  ops: {ops:?}",
            finding_.message,
            scenario.name()
        ),
    )
}

/// Judges `case` with `crashsim::replay`; a finding panics. The case must be a state of the
/// workload (the target only builds such cases): if `replay` says it is not, the harness and
/// crashsim disagree, and that panics too.
fn replayed<const P: usize, S: Scenario<P>>(
    capture: &Capture<S, P>,
    summary: &mut Summary,
    case: Case,
    ops: &dyn std::fmt::Debug,
) {
    summary.case = case_json(&case);
    summary.replayed = true;
    let before = capture.checks();
    match replay(capture, &case) {
        Ok(violations) => report(capture, "crashsim::replay", &summary.case, &violations, ops),
        Err(not_evaluated) => panic!("harness: {not_evaluated}"),
    }
    summary.checks = capture.checks() - before;
}

fn check_scenario<const P: usize, S>(scenario: S, input: &RecoveryInput) -> Summary
where
    S: Scenario<P> + std::fmt::Debug,
{
    let capture = Capture::<S, P>::new(scenario);
    let ops: &dyn std::fmt::Debug = capture.inner();
    // 1. The clean run, with the checks the scenario makes while it runs.
    let outcome = explore(&capture, &run_only());
    report(
        &capture,
        "crashsim::explore (the workload's own run)",
        "-",
        &outcome.violations,
        ops,
    );
    let Some(clean) = capture.take_clean() else {
        panic!("harness: the clean run recorded no sync snapshots");
    };
    let mut summary = Summary {
        syncs: clean.syncs,
        growths: clean.growths,
        ..Summary::default()
    };
    let create_syncs = clean.acks.first().map_or(0, |(count, _)| *count);
    let after_create = clean.syncs.saturating_sub(create_syncs);
    // 2. A failure, a chain or media corruption: one crashsim case.
    match input.extra {
        Some(Extra::FailedSync {
            sync,
            keeps,
            kept_all,
            durable_length,
        }) => {
            if after_create > 0 {
                let case = Case::FailedSync {
                    sync: create_syncs + u64::from(sync) % after_create,
                    keeps: match keeps {
                        KeepsChoice::Nothing => Keeps::Nothing,
                        KeepsChoice::Everything => Keeps::Everything,
                        KeepsChoice::Seeded => Keeps::Seeded,
                    },
                    kept_all,
                    length: length(durable_length),
                };
                replayed(&capture, &mut summary, case, ops);
            }
            return summary;
        }
        Some(Extra::FailedGrowth { growth }) => {
            if clean.growths > 0 {
                let growth = u64::from(growth) % clean.growths;
                replayed(&capture, &mut summary, Case::FailedGrowth { growth }, ops);
            }
            return summary;
        }
        Some(Extra::Chain {
            second_sync,
            second_subset,
            durable_length,
        }) => {
            if clean.syncs > 0 {
                let sync = u64::from(input.crash.sync) % clean.syncs;
                chain(
                    &capture,
                    &mut summary,
                    (sync, input.crash.rest_kept),
                    (second_sync, second_subset, durable_length),
                    ops,
                );
            }
            return summary;
        }
        Some(Extra::Media {
            target,
            field,
            zero_sector,
        }) => {
            if after_create > 0 {
                let sync = create_syncs + u64::from(input.crash.sync) % after_create;
                if let Some(point) = clean.snapshots.get(sync as usize) {
                    let damages = media_damages::<P>(&point.durable_image());
                    if let Some(damage) = pick_damage(&damages, target, field, zero_sector) {
                        let case = Case::Media {
                            sync,
                            page: damage.page,
                            offset: damage.offset,
                            zero_sector: damage.zero_sector,
                        };
                        replayed(&capture, &mut summary, case, ops);
                    }
                }
            }
            return summary;
        }
        None => {}
    }
    // 3. A crash before sync `sync`, keeping the in-flight sectors the mask selects.
    let crash = &input.crash;
    let sync = u64::from(crash.sync) % (clean.syncs + 1);
    let point = clean.snapshots.get(sync as usize).unwrap_or(&clean.last);
    let sector = if crash.sector_4k {
        SectorSize::S4096
    } else {
        SectorSize::S512
    };
    let in_flight = point.in_flight_sectors(sector);
    let kept = masked(&in_flight, |i| {
        crash
            .mask
            .get(i / 8)
            .map_or(crash.rest_kept, |byte| byte >> (i % 8) & 1 == 1)
    });
    summary.in_flight = in_flight.len();
    let length = length(crash.durable_length);
    let image = point.crash_image(sector, &kept, length.into());
    // Then, optionally, a crash of the recovery: `replay` of a `RecoveryCrash` judges the first
    // crash as above and the interrupted recovery (INV-6).
    if let Some((recovery_sync, recovery_kept)) = crash
        .recovery
        .and_then(|(rs, mask)| recovery_crash::<P>(&image, rs, mask))
    {
        let case = Case::RecoveryCrash {
            sync,
            sector: sector.bytes(),
            length,
            kept,
            recovery_sync,
            recovery_kept,
        };
        replayed(&capture, &mut summary, case, ops);
        return summary;
    }
    let case = Case::Crash {
        sync,
        sector: sector.bytes(),
        length,
        kept,
    };
    summary.case = case_json(&case);
    let (acknowledged, in_flight_model) = allowed_at(&clean.acks, sync);
    let before = capture.checks();
    if let Err(f) = check_image::<P, _>(&capture, image, acknowledged, in_flight_model) {
        report_finding(&capture, "crashsim::check_image", &summary.case, &f, 1, ops);
    }
    summary.checks = capture.checks() - before;
    summary
}

/// Of the media phase's `damages`, one to page `target` (modulo the pages damaged): its flipped
/// bit `field` (modulo their number), or with `zero_sector` the zeroed sector holding that byte
/// if the media phase zeroes it.
fn pick_damage(
    damages: &[MediaDamage],
    target: u16,
    field: u8,
    zero_sector: bool,
) -> Option<MediaDamage> {
    let mut pages: Vec<u64> = damages.iter().map(|d| d.page).collect();
    pages.dedup();
    let page = *pages.get(usize::from(target) % pages.len().max(1))?;
    let flips: Vec<&MediaDamage> = damages
        .iter()
        .filter(|d| d.page == page && !d.zero_sector)
        .collect();
    let flip = **flips.get(usize::from(field) % flips.len().max(1))?;
    let zeroed = damages
        .iter()
        .find(|d| d.page == page && d.zero_sector && d.offset == flip.offset);
    Some(match zeroed {
        Some(&zeroed) if zero_sector => zeroed,
        _ => flip,
    })
}

/// The `Chain` case rooted at sync `sync` of the clean run (keeping none or all of its
/// in-flight sectors): a first `replay`, of a second crash that does not exist, judges the root
/// and runs the continuation (reporting what either finds), which [`Capture`] records; the
/// second crash is then chosen among the continuation's syncs, keeping the subset `subset`
/// selects, and replayed. Nothing more if the root holds no file (a crash during the
/// create), as there is nothing to continue.
fn chain<const P: usize, S: Scenario<P>>(
    capture: &Capture<S, P>,
    summary: &mut Summary,
    (sync, kept_all): (u64, bool),
    (second_sync, subset, durable_length): (u16, u8, bool),
    ops: &dyn std::fmt::Debug,
) {
    capture.take_continuation();
    let probe = Case::Chain {
        sync,
        kept_all,
        second_sync: u64::MAX,
        second_length: Length::Current,
        second_kept: Vec::new(),
    };
    summary.case = case_json(&probe);
    summary.replayed = true;
    // Not a state (`Err`) unless the root or the continuation found something on the way.
    if let Ok(violations) = replay(capture, &probe) {
        report(capture, "crashsim::replay", &summary.case, &violations, ops);
    }
    let Some(continuation) = capture.take_continuation() else {
        return;
    };
    let count = continuation.snapshots.len() as u64;
    let second_sync = u64::from(second_sync) % (count + 1);
    let point = continuation
        .snapshots
        .get(second_sync as usize)
        .unwrap_or(&continuation.last);
    let in_flight = point.in_flight_sectors(SectorSize::S512);
    summary.in_flight = in_flight.len();
    let chosen = subsets(&in_flight, 8, 0, 0);
    let case = Case::Chain {
        sync,
        kept_all,
        second_sync,
        second_length: length(durable_length),
        second_kept: chosen
            .get(usize::from(subset) % chosen.len().max(1))
            .cloned()
            .unwrap_or_default(),
    };
    replayed(capture, summary, case, ops);
}

/// Chooses a crash of the recovery of `image`: before its sync `rs` (modulo its syncs), keeping
/// the 512-byte sectors that sync writes whose index `i` has bit `i % 16` of `mask` set. `None`
/// if recovery writes nothing.
fn recovery_crash<const P: usize>(image: &[u8], rs: u8, mask: u16) -> Option<(u64, Vec<u64>)> {
    let mut storage = SimStorage::from_image(image.to_vec());
    storage.record_sync_snapshots();
    let pager = Pager::<P, SimStorage>::open_in(storage).ok()?;
    let snapshots = pager.storage().sync_snapshots();
    if snapshots.is_empty() {
        return None;
    }
    let index = usize::from(rs) % snapshots.len();
    let written = snapshots[index].in_flight_sectors(SectorSize::S512);
    Some((
        index as u64,
        masked(&written, |i| mask >> (i % 16) & 1 == 1),
    ))
}
