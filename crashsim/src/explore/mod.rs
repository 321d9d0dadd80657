//! The explorer: enumerate crash states, recover each, check.
//!
//! One file per phase, each an `impl Explorer` block with the phase's code and the helpers only
//! it uses (VERIFICATION.md describes the phases):
//!
//! | phase ([`Phases`] field) | file |
//! |---|---|
//! | `crashes` | [`crashes`] |
//! | `recovery_crashes` | [`recovery_crashes`] |
//! | `chains` | [`chains`] |
//! | `failed_syncs` | [`failed_syncs`] |
//! | `failed_growth` | [`failed_growth`] |
//! | `media` | [`media`] |
//! | `crash_media` | [`crash_media`] |
//!
//! Shared by the phases: [`judge`] (open an image and judge it: the public [`check_image`] and
//! [`allowed_at`]), [`bench`](mod@bench) (a reusable crash image and its patches), [`case`] (the public
//! names of a crash state and of what was found), [`config`] (what to explore). This file holds
//! the [`Explorer`] (budget, reports, the clean run), the order the phases run in
//! ([`run_units`]), and the public entry points [`explore`] and [`replay`].

mod bench;
mod case;
mod chains;
mod config;
mod crash_media;
mod crashes;
mod failed_growth;
mod failed_syncs;
mod judge;
mod media;
mod recovery_crashes;

pub use case::{Case, Keeps, Length, NotEvaluated, Outcome, Reproducer, Violation};
pub use config::{Config, Phases};
pub use judge::{allowed_at, check_image};
pub use media::{MediaDamage, media_damages};

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use mappedpages::{CrashPoint, Pager, SimStorage};
#[cfg(feature = "parallel")]
use rayon::prelude::*;

use crate::{Finding, Invariant, Recorder, Scenario};
use judge::guarded;

const KEPT_VIOLATIONS: usize = 32;

/// The clean run: the workload with a snapshot before every sync.
struct CleanRun<M> {
    snapshots: Vec<CrashPoint>,
    final_storage: CrashPoint,
    acks: Vec<(u64, M)>,
    /// The generation at each acknowledgement, when known ([`Recorder::ack`]).
    generations: Vec<Option<u64>>,
    grow_count: u64,
}

struct Explorer<'a, const P: usize, W: Scenario<P>> {
    scenario: &'a W,
    config: &'a Config,
    states: AtomicU64,
    stop: AtomicBool,
    violation_count: AtomicU64,
    violations: Mutex<Vec<(usize, Violation)>>,
    /// With `Some`, only this case is evaluated (replay).
    only: Option<&'a Case>,
    /// In a replay, whether the state `only` names came up (and was evaluated).
    evaluated: AtomicBool,
    verbose: bool,
}

impl<'a, const P: usize, W: Scenario<P>> Explorer<'a, P, W> {
    fn repro(&self, case: Case) -> Reproducer {
        Reproducer {
            workload: self.scenario.name(),
            seed: self.scenario.seed(),
            mutant: active_mutant(),
            case,
        }
    }

    /// Counts one state; false when the budget says stop.
    fn begin_state(&self, case: &Case) -> bool {
        if let Some(only) = self.only {
            if only == case {
                self.evaluated.store(true, Ordering::Relaxed);
                return true;
            }
            return leads_to(case, only);
        }
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        // A state past the budget is refused (and the outcome truncated); the last one within
        // it is explored, so a workload that fits its budget exactly is not truncated.
        let max_states = self.config.max_states;
        let Ok(before) = self
            .states
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max_states).then_some(n + 1)
            })
        else {
            self.stop.store(true, Ordering::Relaxed);
            return false;
        };
        if let Some(progress) = &self.config.progress {
            progress.fetch_add(1, Ordering::Relaxed);
        }
        let n = before + 1;
        if n.is_multiple_of(256) && self.config.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stop.store(true, Ordering::Relaxed);
        }
        true
    }

    /// Counts one state, `case`, that stands for a failure of what every case of its unit
    /// shares (the run with a failing sync, a chain's continuation); false when the budget says
    /// stop. In a replay of any case of the unit, true: the failure is on the way to it.
    fn begin_shared_failure(&self, case: &Case) -> bool {
        self.begin_state(case) || self.only.is_some()
    }

    /// In a replay, the file length and kept sectors of the crash the replayed case names (the
    /// first crash of a `Crash` or `RecoveryCrash`, the second of a `Chain`). Those are
    /// evaluated whether or not the enumeration (every subset of up to `exhaustive_bits` sectors
    /// in flight, named patterns and a seeded sample beyond; both lengths only where they
    /// differ) includes them.
    fn replayed_crash(&self) -> Option<(Length, &'a [u64])> {
        match self.only? {
            Case::Crash { length, kept, .. }
            | Case::RecoveryCrash { length, kept, .. }
            | Case::CrashMedia { length, kept, .. } => Some((*length, kept)),
            Case::Chain {
                second_length,
                second_kept,
                ..
            } => Some((*second_length, second_kept)),
            _ => None,
        }
    }

    fn report(&self, order: usize, case: Case, finding: Finding) {
        if self.verbose {
            println!("violation: {finding}");
        }
        self.violation_count.fetch_add(1, Ordering::Relaxed);
        if self.config.stop_at_first_violation {
            self.stop.store(true, Ordering::Relaxed);
        }
        let mut violations = self.violations.lock().expect("violation list lock");
        violations.push((
            order,
            Violation {
                finding,
                repro: self.repro(case),
            },
        ));
        // The simplest first: plain crashes before the kinds built on them, fewer kept sectors
        // first, then exploration order.
        violations.sort_by_key(|(order, violation)| {
            let (rank, kept) = violation.repro.case.simplicity();
            (rank, kept, *order)
        });
        violations.truncate(KEPT_VIOLATIONS);
    }

    fn clean_run(
        &self,
        storage: SimStorage,
    ) -> Result<(Pager<P, SimStorage>, Recorder<W::Model>), Finding> {
        let mut pager = Pager::<P, SimStorage>::create_in(storage)
            .map_err(|e| Finding::new(Invariant::Opens, format!("create_in failed: {e}")))?;
        pager.set_commit_mode(self.scenario.commit_mode());
        let mut rec = Recorder::new();
        rec.ack(&pager, self.scenario.initial_model());
        let pager = self.scenario.run(pager, &mut rec)?;
        if let Some(finding) = rec.finding.take() {
            return Err(finding);
        }
        Ok((pager, rec))
    }
}

/// The name of the mutant active in this process (`--features mutants`), recorded in every
/// reproducer so that a replay runs the same broken protocol.
fn active_mutant() -> Option<String> {
    #[cfg(feature = "mutants")]
    {
        mappedpages::mutants::active_mutant().map(|mutant| mutant.name().to_string())
    }
    #[cfg(not(feature = "mutants"))]
    {
        None
    }
}

/// True when evaluating `case` is a step on the way to `target` (a crash whose recovery is then
/// crashed).
fn leads_to(case: &Case, target: &Case) -> bool {
    match (case, target) {
        (
            Case::Crash {
                sync,
                sector,
                length,
                kept,
            },
            Case::RecoveryCrash {
                sync: s,
                sector: z,
                length: l,
                kept: k,
                ..
            },
        ) => sync == s && sector == z && length == l && kept == k,
        (
            Case::Crash {
                sync,
                sector,
                length,
                kept,
            },
            Case::CrashMedia {
                sync: s,
                sector: z,
                length: l,
                kept: k,
                ..
            },
        ) => sync == s && sector == z && length == l && kept == k,
        _ => false,
    }
}

#[derive(PartialEq, Eq)]
enum Unit {
    Crash(u64),
    Chain(u64),
    FailedSync(u64),
    FailedGrowth(u64),
    Media(u64),
}

fn run_units<const P: usize, W: Scenario<P>>(explorer: &Explorer<'_, P, W>) -> (u64, bool) {
    let mut storage = SimStorage::new();
    storage.record_sync_snapshots();
    let clean = guarded(|| explorer.clean_run(storage));
    let (pager, rec) = match clean {
        Ok(found) => found,
        Err(finding) => {
            let case = Case::Crash {
                sync: 0,
                sector: 512,
                length: Length::Current,
                kept: Vec::new(),
            };
            explorer.report(0, case, finding);
            return (0, false);
        }
    };
    let syncs = pager.storage().sync_count();
    let create_syncs = rec.acks.first().map_or(0, |(count, _)| *count);
    let run = CleanRun {
        snapshots: pager.storage().sync_snapshots().to_vec(),
        grow_count: pager.storage().grow_count(),
        final_storage: pager.storage().crash_point(),
        acks: rec.acks,
        generations: rec.generations,
    };
    let phases = explorer.config.phases;
    let mut units = Vec::new();
    for sync in 0..=syncs {
        if phases.crashes || phases.crash_media {
            units.push(Unit::Crash(sync));
        }
        if phases.chains && sync < syncs {
            units.push(Unit::Chain(sync));
        }
        if phases.media && sync < syncs {
            units.push(Unit::Media(sync));
        }
        if phases.failed_syncs && sync >= create_syncs && sync < syncs {
            units.push(Unit::FailedSync(sync));
        }
    }
    if phases.failed_growth {
        units.extend((0..run.grow_count).map(Unit::FailedGrowth));
    }
    let only = explorer.only.map(|case| match case {
        Case::Crash { sync, .. }
        | Case::RecoveryCrash { sync, .. }
        | Case::CrashMedia { sync, .. } => Unit::Crash(*sync),
        Case::Chain { sync, .. } => Unit::Chain(*sync),
        Case::FailedSync { sync, .. } => Unit::FailedSync(*sync),
        Case::FailedGrowth { growth } => Unit::FailedGrowth(*growth),
        Case::Media { sync, .. } => Unit::Media(*sync),
    });
    let evaluate = |(order, unit): (usize, &Unit)| match *unit {
        Unit::Crash(sync) => explorer.crash_point(order, &run, sync),
        Unit::Chain(sync) => explorer.chain(order, &run, sync),
        Unit::FailedSync(sync) => explorer.failed_sync(order, &run, sync),
        Unit::FailedGrowth(growth) => explorer.failed_growth(order, growth),
        Unit::Media(sync) => explorer.media(order, &run, sync),
    };
    match only {
        // A replayed case outside the explored range (a sync past the last, ...) is no state.
        Some(unit) if units.contains(&unit) => evaluate((0, &unit)),
        Some(_) => {}
        #[cfg(feature = "parallel")]
        None => units.par_iter().enumerate().for_each(evaluate),
        #[cfg(not(feature = "parallel"))]
        None => units.iter().enumerate().for_each(evaluate),
    }
    (syncs, explorer.stop.load(Ordering::Relaxed))
}

/// Explores every crash state of `scenario` allowed by `config`.
pub fn explore<const P: usize, W: Scenario<P>>(scenario: &W, config: &Config) -> Outcome {
    let started = Instant::now();
    let explorer = Explorer {
        scenario,
        config,
        states: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        violation_count: AtomicU64::new(0),
        violations: Mutex::new(Vec::new()),
        only: None,
        evaluated: AtomicBool::new(false),
        verbose: false,
    };
    let (syncs, truncated) = run_units(&explorer);
    Outcome {
        workload: scenario.name(),
        seed: scenario.seed(),
        syncs,
        states: explorer.states.load(Ordering::Relaxed),
        violation_count: explorer.violation_count.load(Ordering::Relaxed),
        violations: explorer
            .violations
            .into_inner()
            .expect("violation list lock")
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
        elapsed: started.elapsed(),
        truncated,
    }
}

/// Reruns exactly one crash state and returns the findings (printing them as they appear).
///
/// The case's kept sectors need not be among those the explorer enumerates: a `Crash` or
/// `RecoveryCrash` may keep any in-flight sectors at either length, a `RecoveryCrash` any of
/// the sectors its recovery writes, and a `Chain` may start from either root and keep any
/// sectors at its second crash; they are judged as the explorer judges its own. Findings met on
/// the way count too (the crash a `RecoveryCrash` interrupts the recovery of, the root and the
/// continuation of a `Chain`, the run a `FailedSync` fails). [`NotEvaluated`] when the workload
/// has no such state and nothing on the way found anything.
pub fn replay<const P: usize, W: Scenario<P>>(
    scenario: &W,
    case: &Case,
) -> Result<Vec<Violation>, NotEvaluated> {
    let config = Config::thorough();
    let explorer = Explorer {
        scenario,
        config: &config,
        states: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        violation_count: AtomicU64::new(0),
        violations: Mutex::new(Vec::new()),
        only: Some(case),
        evaluated: AtomicBool::new(false),
        verbose: true,
    };
    run_units(&explorer);
    let evaluated = explorer.evaluated.load(Ordering::Relaxed);
    let violations: Vec<Violation> = explorer
        .violations
        .into_inner()
        .expect("violation list lock")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    if evaluated || !violations.is_empty() {
        Ok(violations)
    } else {
        Err(NotEvaluated {
            workload: scenario.name(),
            case: case.clone(),
        })
    }
}
