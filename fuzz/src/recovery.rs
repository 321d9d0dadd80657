//! The `recovery` target: a fuzzer-chosen workload, crashed at a fuzzer-chosen point, recovered,
//! and judged by crashsim's own checker.
//!
//! The input (decoded with `arbitrary`) picks a page size, an operation sequence, a crash point
//! (sync index, sector size, which in-flight sectors survive, file length, optionally a crash
//! of the recovery) and optionally, instead, a failed sync, a failed growth, a chain (crash,
//! recover, continue, crash again) or a damaged internal page. The operations become a crashsim
//! scenario: [`AllocScenario`] when they are all regular, [`ProtectedScenario`] otherwise. The scenario is
//! wrapped in [`Capture`], which delegates `run`, `resume` and `check` to it unchanged and only
//! records what the clean run left (the crash point before every sync and the acknowledged
//! models), so the target can choose a crash among the states that exist.
//!
//! Judging uses crashsim's public API; none of its checks is copied. Until crashsim exposes
//! them, three pieces of glue restate explorer internals (each marked where it is defined):
//! `allowed_at`, the seed of the explorer's subset sampling, and the media phase's page list.
//!
//! 1. `crashsim::explore` with every phase off runs the workload once: the checks the scenario
//!    makes during its run (an owned page handed out, a writer that does not start from the
//!    committed content, a failure that leaves memory and disk apart, ...) report there.
//! 2. `crashsim::replay` of one `Case` (`Crash`, `RecoveryCrash`, `FailedSync`, `FailedGrowth`,
//!    `Chain`, `Media`) then reruns exactly that crash state through the explorer's judge: it
//!    opens (INV-1), is well-formed (INV-5), matches the acknowledged or in-flight model
//!    (`Scenario::check`: INV-2/3/4), survives a crash of its own recovery and a crash after
//!    more work (INV-6), loses nothing after a failure (INV-7), detects or survives damage
//!    (INV-8, INV-13). A chain needs a first `replay` to run the continuation (recorded by
//!    [`Capture`]) before its second crash can be chosen; a media case must name a page and
//!    field the explorer's media phase lists, which `media_target` rebuilds.
//! 3. `replay` evaluates a `Crash` only if its kept sectors are among the subsets the explorer
//!    enumerates (all subsets up to 14 in-flight sectors; named patterns and seeded samples
//!    beyond). For any other subset, which is most of what the fuzzer picks once more than 14
//!    sectors are in flight, the target opens the crash image itself and calls the scenario's
//!    `Scenario::check` with the allowed models. That path does not run crashsim's private
//!    `check_well_formed`; a public `crashsim::check_image` (see fuzz/README.md) would close
//!    the gap.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;
use crashsim::alloc_model::{AllocScenario, Op};
use crashsim::protected_model::{ProtectedOp, ProtectedScenario};
use crashsim::subsets::subsets;
use crashsim::{
    Allowed, Case, Config, Finding, Matched, Phases, Recorder, Scenario, Violation, explore, replay,
};
use mappedpages::format::{DIRECTORY_MAGIC, Geometry};
use mappedpages::{CrashLength, CrashPoint, MappedPageError, Pager, SectorSize, SimStorage};

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
}

impl FuzzOp {
    fn is_regular(self) -> bool {
        matches!(
            self,
            FuzzOp::Alloc | FuzzOp::Free(_) | FuzzOp::AllocBulk(_) | FuzzOp::FreeBulk { .. }
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
    /// Then crash the recovery too: before its sync `sync`, keeping the subset `subset` of that
    /// sync's sectors (indices into crashsim's subset enumeration).
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
    /// A crash before sync `crash.sync` (crashsim keeps none or all of its sectors), recovery,
    /// the scenario's continuation (`Scenario::resume`), and a crash before its sync
    /// `second_sync` keeping the subset `second_subset` of crashsim's enumeration.
    Chain {
        /// Sync of the continuation (modulo its syncs + 1).
        second_sync: u16,
        /// Index into crashsim's subsets of that sync's in-flight sectors.
        second_subset: u8,
        /// Whether the second crash keeps the durable length.
        durable_length: bool,
    },
    /// The durable image before sync `crash.sync` with one internal page damaged: a bit flipped
    /// (or its sector zeroed) at one of the fields crashsim's media phase targets.
    Media {
        /// Which page (modulo the pages crashsim targets).
        target: u16,
        /// Which field of it (modulo its fields).
        field: u8,
        /// Zero the sector (first field only) instead of flipping a bit.
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
pub struct Continuation<M> {
    /// Crash point before each of its syncs.
    pub snapshots: Vec<CrashPoint>,
    /// Crash point after it.
    pub last: CrashPoint,
    /// What `resume` returned.
    pub result: Result<(), Finding>,
    /// Its acknowledgements.
    pub acks: Vec<(u64, M)>,
}

/// A scenario that behaves exactly as `inner` and records its clean run (the first run whose
/// storage records sync snapshots) and its last continuation, and counts calls of `check`.
pub struct Capture<S, const P: usize>
where
    S: Scenario<P>,
{
    inner: S,
    clean: Mutex<Option<CleanRun<S::Model>>>,
    continuation: Mutex<Option<Continuation<S::Model>>>,
    checks: AtomicU64,
}

impl<S: Scenario<P>, const P: usize> Capture<S, P> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Capture {
            inner,
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
    pub fn take_continuation(&self) -> Option<Continuation<S::Model>> {
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

    fn initial_model(&self) -> S::Model {
        self.inner.initial_model()
    }

    fn run(
        &self,
        pager: &mut Pager<P, SimStorage>,
        rec: &mut Recorder<S::Model>,
    ) -> Result<(), Finding> {
        let result = self.inner.run(pager, rec);
        let storage = pager.storage();
        if !storage.sync_snapshots().is_empty() {
            let mut clean = self.clean.lock().expect("capture lock");
            if clean.is_none() {
                *clean = Some(CleanRun {
                    snapshots: storage.sync_snapshots().to_vec(),
                    last: storage.crash_point(),
                    acks: rec.acks().to_vec(),
                    syncs: storage.sync_count(),
                    growths: storage.grow_count(),
                });
            }
        }
        result
    }

    fn resume(
        &self,
        pager: &mut Pager<P, SimStorage>,
        rec: &mut Recorder<S::Model>,
        model: &S::Model,
    ) -> Result<(), Finding> {
        let result = self.inner.resume(pager, rec, model);
        let storage = pager.storage();
        *self.continuation.lock().expect("capture lock") = Some(Continuation {
            snapshots: storage.sync_snapshots().to_vec(),
            last: storage.crash_point(),
            result: result.clone(),
            acks: rec.acks().to_vec(),
        });
        result
    }

    fn check(
        &self,
        pager: &Pager<P, SimStorage>,
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
    /// The crash state went through `crashsim::replay` (else through the direct check).
    pub replayed: bool,
    /// Which case was judged (crashsim's reproducer JSON).
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

fn run_sized<const P: usize>(input: &RecoveryInput) -> Summary {
    match workload(&input.ops, P) {
        Workload::Regular(ops) => {
            check_scenario::<P, _>(AllocScenario::<P>::new("fuzz-regular", 0, ops), input)
        }
        Workload::Protected(ops) => {
            check_scenario::<P, _>(ProtectedScenario::<P>::new("fuzz-protected", 0, ops), input)
        }
    }
}

/// No phase: `explore` runs the workload once and reports what its run checks.
fn run_only() -> Config {
    Config {
        phases: Phases {
            crashes: false,
            recovery_crashes: false,
            chains: false,
            failed_syncs: false,
            failed_growth: false,
            media: false,
        },
        ..Config::quick()
    }
}

/// The models allowed at a crash just before sync `sync`: the last acknowledged one and the one in
/// flight. Restates crashsim's private `explore::allowed_at` (used only on the direct path).
fn allowed_at<M>(acks: &[(u64, M)], sync: u64) -> (Option<&M>, Option<&M>) {
    let acknowledged = acks
        .iter()
        .rev()
        .find(|(count, _)| *count <= sync)
        .map(|(_, m)| m);
    let in_flight = acks.iter().find(|(count, _)| *count > sync).map(|(_, m)| m);
    (acknowledged, in_flight)
}

fn case_from_json(json: String) -> Case {
    // `Case`'s `Length` and `Keeps` fields have no public path in crashsim (its `explore` module
    // is private), so cases are built through their serde form, the reproducer format.
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("harness: bad case {json}: {e}"))
}

fn length_name(durable: bool) -> &'static str {
    if durable { "durable" } else { "current" }
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
        finding_.invariant,
        format!(
            "{}\n  found by: {what} ({count} finding(s))\n  case: {case}\n  workload: {} at {P}-byte pages\n  ops: {ops:?}",
            finding_.message,
            scenario.name()
        ),
    )
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
    // 2. A failure, a chain or media corruption: one crashsim case.
    let replayed = |summary: &mut Summary, case: String| {
        summary.case = case;
        summary.replayed = true;
        let before = capture.checks();
        let violations = replay(&capture, &case_from_json(summary.case.clone()));
        summary.checks = capture.checks() - before;
        report(
            &capture,
            "crashsim::replay",
            &summary.case,
            &violations,
            ops,
        );
    };
    let create_syncs = clean.acks.first().map_or(0, |(count, _)| *count);
    match input.extra {
        Some(Extra::FailedSync {
            sync,
            keeps,
            kept_all,
            durable_length,
        }) => {
            let after_create = clean.syncs.saturating_sub(create_syncs);
            if after_create > 0 {
                let sync = create_syncs + u64::from(sync) % after_create;
                let keeps = match keeps {
                    KeepsChoice::Nothing => "nothing",
                    KeepsChoice::Everything => "everything",
                    KeepsChoice::Seeded => "seeded",
                };
                replayed(
                    &mut summary,
                    format!(
                        r#"{{"kind":"failed-sync","sync":{sync},"keeps":"{keeps}","kept_all":{kept_all},"length":"{}"}}"#,
                        length_name(durable_length)
                    ),
                );
            }
            return summary;
        }
        Some(Extra::FailedGrowth { growth }) => {
            if clean.growths > 0 {
                let growth = u64::from(growth) % clean.growths;
                replayed(
                    &mut summary,
                    format!(r#"{{"kind":"failed-growth","growth":{growth}}}"#),
                );
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
                if let Some(case) = chain_case(
                    &capture,
                    sync,
                    second_sync,
                    second_subset,
                    durable_length,
                    ops,
                ) {
                    replayed(&mut summary, case);
                }
            }
            return summary;
        }
        Some(Extra::Media {
            target,
            field,
            zero_sector,
        }) => {
            let after_create = clean.syncs.saturating_sub(create_syncs);
            if after_create > 0 {
                let sync = create_syncs + u64::from(input.crash.sync) % after_create;
                let image = clean.snapshots[sync as usize].durable_image();
                let (page, offset, zero_sector) =
                    media_target::<P>(&image, target, field, zero_sector);
                replayed(
                    &mut summary,
                    format!(
                        r#"{{"kind":"media","sync":{sync},"page":{page},"offset":{offset},"zero_sector":{zero_sector}}}"#
                    ),
                );
            }
            return summary;
        }
        None => {}
    }
    // 3. A crash before sync `sync`.
    let crash = &input.crash;
    let sync = u64::from(crash.sync) % (clean.syncs + 1);
    let snapshot = clean.snapshots.get(sync as usize).unwrap_or(&clean.last);
    let sector = if crash.sector_4k {
        SectorSize::S4096
    } else {
        SectorSize::S512
    };
    // The explorer crashes at the durable length only when it differs from the current one.
    let durable = crash.durable_length && snapshot.durable_len_bytes() != snapshot.len_bytes();
    let length = if durable {
        CrashLength::Durable
    } else {
        CrashLength::Current
    };
    let in_flight = snapshot.in_flight_sectors(sector);
    let kept: Vec<u64> = in_flight
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            crash
                .mask
                .get(i / 8)
                .map_or(crash.rest_kept, |byte| byte >> (i % 8) & 1 == 1)
        })
        .map(|(_, &s)| s)
        .collect();
    summary.in_flight = in_flight.len();
    let (acknowledged, in_flight_model) = allowed_at(&clean.acks, sync);
    let kept_json = format!("{kept:?}").replace(' ', "");
    let crash_json = format!(
        r#""sync":{sync},"sector":{},"length":"{}","kept":{kept_json}"#,
        sector.bytes(),
        length_name(durable)
    );
    let image = snapshot.crash_image(sector, &kept, length);

    // Is this crash state one the explorer enumerates (so that `replay` evaluates it)? The seed
    // restates the explorer's private formula in `crash_point`; if it drifts, the check counter
    // below notices and the direct path judges the state.
    let config = Config::thorough();
    let enumerated = in_flight.len() as u32 <= config.exhaustive_bits
        || subsets(
            &in_flight,
            config.exhaustive_bits,
            config.extra_samples,
            config.seed ^ sync.wrapping_mul(0x9E37_79B9) ^ sector.bytes(),
        )
        .contains(&kept);
    if enumerated {
        summary.case = match crash
            .recovery
            .and_then(|(rs, sub)| recovery_crash::<P>(&image, rs, sub))
        {
            Some((recovery_sync, recovery_kept)) => format!(
                r#"{{"kind":"recovery-crash",{crash_json},"recovery_sync":{recovery_sync},"recovery_kept":{}}}"#,
                format!("{recovery_kept:?}").replace(' ', "")
            ),
            None => format!(r#"{{"kind":"crash",{crash_json}}}"#),
        };
        let before = capture.checks();
        let violations = replay(&capture, &case_from_json(summary.case.clone()));
        summary.checks = capture.checks() - before;
        report(
            &capture,
            "crashsim::replay",
            &summary.case,
            &violations,
            ops,
        );
        // Evaluated if the scenario's check ran, or if the crash came before the create
        // completed (the judge accepts "no file" without a check) and every subset is explored.
        let exhaustive = in_flight.len() as u32 <= config.exhaustive_bits;
        if capture.checks() > before || (acknowledged.is_none() && exhaustive) {
            summary.replayed = true;
            return summary;
        }
        // Not evaluated: crashsim enumerates other subsets than assumed above. Judged directly.
    }
    summary.case = format!(r#"{{"kind":"crash",{crash_json}}}"#);
    if let Err(f) = check_image::<P, S>(capture.inner(), image, acknowledged, in_flight_model) {
        report_finding(
            &capture,
            "direct check (Scenario::check)",
            &summary.case,
            &f,
            1,
            ops,
        );
    }
    summary
}

/// The `Chain` case rooted at sync `sync` of the clean run: a first `replay` (whose second crash
/// matches nothing) runs the continuation, which [`Capture`] records; the second crash is then
/// chosen among its syncs and crashsim's subsets of their sectors (`subsets(.., 4, 4, sync)`, as
/// the explorer's chain phase enumerates them). `None` if the root did not open to a state
/// (crashsim judges roots in its crash phase).
fn chain_case<const P: usize, S: Scenario<P>>(
    capture: &Capture<S, P>,
    sync: u64,
    second_sync: u16,
    second_subset: u8,
    durable_length: bool,
    ops: &dyn std::fmt::Debug,
) -> Option<String> {
    // The explorer's root keeps every in-flight sector at syncs 2, 3, 6, 7, ..., none elsewhere.
    let kept_all = sync / 2 % 2 == 1;
    let root = format!(r#""kind":"chain","sync":{sync},"kept_all":{kept_all}"#);
    capture.take_continuation();
    let probe = format!(
        r#"{{{root},"second_sync":{},"second_length":"current","second_kept":[]}}"#,
        u64::MAX
    );
    let violations = replay(capture, &case_from_json(probe.clone()));
    report(capture, "crashsim::replay", &probe, &violations, ops);
    let Some(continuation) = capture.take_continuation() else {
        // The root opened to no state, or the second open failed: the latter is reported as the
        // case with second sync 0.
        return Some(format!(
            r#"{{{root},"second_sync":0,"second_length":"current","second_kept":[]}}"#
        ));
    };
    if let Err(finding_) = &continuation.result {
        report_finding(
            capture,
            "the scenario's continuation (resume)",
            &probe,
            finding_,
            1,
            ops,
        );
    }
    let count = continuation.snapshots.len() as u64;
    let second_sync = u64::from(second_sync) % (count + 1);
    let point = continuation
        .snapshots
        .get(second_sync as usize)
        .unwrap_or(&continuation.last);
    let durable = durable_length && point.durable_len_bytes() != point.len_bytes();
    let in_flight = point.in_flight_sectors(SectorSize::S512);
    let chosen = subsets(&in_flight, 4, 4, second_sync);
    let kept = &chosen[usize::from(second_subset) % chosen.len()];
    Some(format!(
        r#"{{{root},"second_sync":{second_sync},"second_length":"{}","second_kept":{}}}"#,
        length_name(durable),
        format!("{kept:?}").replace(' ', "")
    ))
}

/// A page and field of `image` (a durable image) that crashsim's media phase damages: the
/// superblock, both metadata copies, every bitmap slot page and every directory slot page, each
/// at the fields the explorer lists for it (zeroing a sector only at the first field). Restates
/// the target list of crashsim's private `Explorer::media`; a page or field it does not list is
/// not evaluated by `replay`.
fn media_target<const P: usize>(
    image: &[u8],
    target: u16,
    field: u8,
    zero_sector: bool,
) -> (u64, u64, bool) {
    const SUPERBLOCK: &[u64] = &[8, 20, 24, 32];
    const META: &[u64] = &[16, 24, 40, 64, 72, 128, 136];
    const SLOT: &[u64] = &[16, 32, 40];
    const DIRECTORY: &[u64] = &[16, 32, 72, 88];
    let geometry = Geometry::new(P);
    let pages = image.len() as u64 / P as u64;
    let mut targets: Vec<(u64, &[u64])> = vec![(0, SUPERBLOCK), (1, META), (2, META)];
    let mut group = 0;
    while geometry.slot_page(group, 1) < pages {
        for slot in 0..2 {
            targets.push((geometry.slot_page(group, slot), SLOT));
        }
        group += 1;
    }
    for page in 0..pages {
        let start = (page * P as u64) as usize;
        if image[start..start + DIRECTORY_MAGIC.len()] == DIRECTORY_MAGIC {
            targets.push((page, DIRECTORY));
        }
    }
    let (page, offsets) = targets[usize::from(target) % targets.len()];
    let index = usize::from(field) % offsets.len();
    (page, offsets[index], zero_sector && index == 0)
}

/// Chooses a crash of the recovery of `image`: its sync `rs` (modulo its syncs) keeping the
/// subset `sub` (modulo crashsim's enumeration of that sync's sectors, as the explorer makes it).
/// `None` if recovery writes nothing.
fn recovery_crash<const P: usize>(image: &[u8], rs: u8, sub: u16) -> Option<(u64, Vec<u64>)> {
    let mut storage = SimStorage::from_image(image.to_vec());
    storage.record_sync_snapshots();
    let pager = Pager::<P, SimStorage>::open_in(storage).ok()?;
    let snapshots = pager.storage().sync_snapshots();
    if snapshots.is_empty() {
        return None;
    }
    let index = usize::from(rs) % snapshots.len();
    let dirty = snapshots[index].in_flight_sectors(SectorSize::S512);
    let ids: Vec<u64> = (0..dirty.len() as u64).collect();
    let chosen = subsets(&ids, 6, 8, index as u64);
    let subset = &chosen[usize::from(sub) % chosen.len()];
    Some((
        index as u64,
        subset.iter().map(|&i| dirty[i as usize]).collect(),
    ))
}

/// Opens `image` and judges it with the scenario's own check, as the explorer's judge does for a
/// crash state (minus its private well-formedness check): before the create completed
/// (`acknowledged` is `None`) "no file" is allowed; otherwise it must open (INV-1) and match an
/// allowed model (`Scenario::check`).
pub fn check_image<const P: usize, S: Scenario<P>>(
    scenario: &S,
    image: Vec<u8>,
    acknowledged: Option<&S::Model>,
    in_flight: Option<&S::Model>,
) -> Result<(), Finding> {
    match Pager::<P, SimStorage>::open_in(SimStorage::from_image(image)) {
        Err(MappedPageError::NotAMappedPagesFile | MappedPageError::FileTooSmall { .. })
            if acknowledged.is_none() =>
        {
            Ok(())
        }
        Err(error) => Err(Finding::new(
            1,
            format!("crash image does not open: {error}"),
        )),
        Ok(pager) => {
            let (acknowledged, in_flight) = match acknowledged {
                Some(acknowledged) => (acknowledged, in_flight),
                None => (
                    in_flight.expect("the initial model is acknowledged after create"),
                    None,
                ),
            };
            scenario
                .check(
                    &pager,
                    &Allowed {
                        acknowledged,
                        in_flight,
                    },
                )
                .map(|_| ())
        }
    }
}
