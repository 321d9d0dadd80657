//! The judge as a public API: `check_image` gives the explorer's verdict on one image, `replay`
//! evaluates any kept set (not only those the explorer enumerates) and says when a case is not
//! a state of the workload, and `media_damages` is the media phase's list.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crashsim::alloc_model::{AllocModel, AllocScenario, bulk_ops, growth_ops};
use crashsim::{
    Allowed, Case, Config, Finding, Invariant, Length, Matched, Phases, Recorder, Recovered,
    Scenario, allowed_at, check_image, explore, media_damages, replay,
};
use mappedpages::{CrashLength, CrashPoint, Pager, SectorSize, SimStorage};

const P: usize = 1024;

/// What the scenario's check does besides the allocation model's own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing.
    Plain,
    /// Rejects every state with an odd `allocated_page_count()` (an INV-2 finding).
    Picky,
    /// Panics.
    Panicky,
}

/// What a clean run left: the crash point before every sync, the one after the last, and the
/// acknowledgements.
type CleanRun<M> = (Vec<CrashPoint>, CrashPoint, Vec<(u64, M)>);

/// A workload that records its clean run (the first run with sync snapshots) and counts calls
/// of `check`.
struct Recording<S: Scenario<P>> {
    inner: S,
    mode: Mode,
    clean: Mutex<Option<CleanRun<S::Model>>>,
    checks: AtomicU64,
}

impl<S: Scenario<P>> Recording<S> {
    fn new(inner: S, mode: Mode) -> Recording<S> {
        let recording = Recording {
            inner,
            mode,
            clean: Mutex::new(None),
            checks: AtomicU64::new(0),
        };
        // Record the clean run: explore with no phase runs the workload only.
        let config = Config {
            phases: Phases::none(),
            ..Config::quick()
        };
        let outcome = explore::<P, _>(&recording, &config);
        assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
        recording
    }

    fn clean(&self) -> CleanRun<S::Model> {
        self.clean
            .lock()
            .expect("lock")
            .clone()
            .expect("a recorded run")
    }

    fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }
}

impl<S: Scenario<P>> Scenario<P> for Recording<S> {
    type Model = S::Model;

    fn name(&self) -> String {
        "judge".into()
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
        let mut clean = self.clean.lock().expect("lock");
        if clean.is_none() && !storage.sync_snapshots().is_empty() {
            *clean = Some((
                storage.sync_snapshots().to_vec(),
                storage.crash_point(),
                rec.acks().to_vec(),
            ));
        }
        Ok(pager)
    }

    fn resume(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<S::Model>,
        model: &S::Model,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        self.inner.resume(pager, rec, model)
    }

    fn check(
        &self,
        pager: &Recovered<'_, P>,
        allowed: &Allowed<'_, S::Model>,
    ) -> Result<Matched, Finding> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            Mode::Picky if pager.allocated_page_count() % 2 == 1 => {
                return Err(Finding::new(Invariant::Atomic, "picky"));
            }
            Mode::Panicky => panic!("a panicking check"),
            _ => {}
        }
        self.inner.check(pager, allowed)
    }
}

fn alloc(ops: Vec<crashsim::alloc_model::Op>) -> AllocScenario<P> {
    AllocScenario::new("judge", 0, ops)
}

/// A bulk allocation whose pages are scribbled on (never synced) before one more allocation
/// commits: that commit's crash points have every scribbled sector in flight. Checked as an
/// allocation workload.
struct Scribble;

impl Scenario<P> for Scribble {
    type Model = AllocModel;

    fn name(&self) -> String {
        "scribble".into()
    }

    fn initial_model(&self) -> AllocModel {
        AllocModel::new()
    }

    fn run(
        &self,
        mut pager: Pager<P, SimStorage>,
        rec: &mut Recorder<AllocModel>,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let Ok(ids) = pager.alloc_bulk(24) else {
            return Ok(pager);
        };
        let mut model: AllocModel = ids.iter().map(|id| id.raw()).collect();
        rec.ack(&pager, model.clone());
        for id in &ids {
            if let Ok(page) = id.get_mut(&mut pager) {
                page.as_bytes_mut().fill(0xAB);
            }
        }
        if let Ok(id) = pager.alloc() {
            model.insert(id.raw());
            rec.ack(&pager, model);
        }
        Ok(pager)
    }

    fn check(
        &self,
        pager: &Recovered<'_, P>,
        allowed: &Allowed<'_, AllocModel>,
    ) -> Result<Matched, Finding> {
        alloc(Vec::new()).check(pager, allowed)
    }
}

#[test]
fn check_image_gives_the_verdict_replay_gives() {
    let scenario = Recording::new(alloc(bulk_ops()), Mode::Picky);
    let (snapshots, last, acks) = scenario.clean();
    let (mut accepted, mut rejected) = (0, 0);
    for sync in 0..=snapshots.len() as u64 {
        let point = snapshots.get(sync as usize).unwrap_or(&last);
        let in_flight = point.in_flight_sectors(SectorSize::S512);
        for kept in [Vec::new(), in_flight] {
            let image = point.crash_image(SectorSize::S512, &kept, CrashLength::Current);
            let (acknowledged, in_flight) = allowed_at(&acks, sync);
            let direct = check_image::<P, _>(&scenario, image, acknowledged, in_flight);
            let case = Case::Crash {
                sync,
                sector: 512,
                length: Length::Current,
                kept,
            };
            let replayed = replay::<P, _>(&scenario, &case).expect("a state of the workload");
            match direct {
                Ok(_) => {
                    assert!(replayed.is_empty(), "{case:?}: {replayed:?}");
                    accepted += 1;
                }
                Err(finding) => {
                    assert_eq!(replayed.len(), 1, "{case:?}: {finding}");
                    assert_eq!(replayed[0].finding, finding, "{case:?}");
                    rejected += 1;
                }
            }
        }
    }
    assert!(accepted > 0 && rejected > 0, "{accepted} / {rejected}");
}

#[test]
fn check_image_allows_no_file_before_the_create_and_reports_panics() {
    let scenario = Recording::new(alloc(bulk_ops()), Mode::Plain);
    let initial = scenario.initial_model();
    let garbage = vec![0u8; 100];
    assert_eq!(
        check_image::<P, _>(&scenario, garbage.clone(), None, Some(&initial)),
        Ok(None)
    );
    let finding = check_image::<P, _>(&scenario, garbage, Some(&initial), None)
        .expect_err("an acknowledged file must open");
    assert_eq!(finding.invariant, Invariant::Opens);

    let (snapshots, last, acks) = scenario.clean();
    let (acknowledged, in_flight) = allowed_at(&acks, snapshots.len() as u64);
    let image = last.crash_image(SectorSize::S512, &[], CrashLength::Current);
    assert_eq!(
        check_image::<P, _>(&scenario, image.clone(), acknowledged, in_flight),
        Ok(acknowledged.cloned())
    );
    let panicky = Recording::new(alloc(bulk_ops()), Mode::Panicky);
    let finding = check_image::<P, _>(&panicky, image, acknowledged, in_flight)
        .expect_err("a panic is a finding");
    assert_eq!(finding.invariant, Invariant::MalformedInput, "{finding}");
}

#[test]
fn replay_evaluates_kept_sets_the_explorer_does_not_enumerate() {
    let scenario = Recording::new(Scribble, Mode::Plain);
    let (snapshots, _, _) = scenario.clean();
    // A crash with more sectors in flight than the explorer enumerates exhaustively (14), keeping
    // every third: not a named pattern, and one of 2^48 for each of the 256 seeded samples.
    let (sync, in_flight) = snapshots
        .iter()
        .enumerate()
        .map(|(sync, point)| (sync as u64, point.in_flight_sectors(SectorSize::S512)))
        .max_by_key(|(_, sectors)| sectors.len())
        .expect("crash points");
    assert!(
        in_flight.len() > 14,
        "{} sectors in flight",
        in_flight.len()
    );
    let kept: Vec<u64> = in_flight.iter().copied().step_by(3).collect();
    for length in [Length::Current, Length::Durable] {
        let before = scenario.checks();
        let case = Case::Crash {
            sync,
            sector: 512,
            length,
            kept: kept.clone(),
        };
        let violations = replay::<P, _>(&scenario, &case).expect("evaluated");
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(scenario.checks(), before + 1, "{case:?} was judged");
    }
    // A chain from the root the explorer does not take at this sync, crashed again keeping
    // every other in-flight sector of the continuation's last point.
    let before = scenario.checks();
    let case = Case::Chain {
        sync,
        kept_all: sync / 2 % 2 == 0,
        second_sync: 0,
        second_length: Length::Current,
        second_kept: (0..64).step_by(2).collect(),
    };
    let violations = replay::<P, _>(&scenario, &case).expect("evaluated");
    assert!(violations.is_empty(), "{violations:?}");
    assert!(scenario.checks() > before, "{case:?} was judged");
}

#[test]
fn replay_of_a_case_the_workload_does_not_have_is_an_error() {
    let scenario = Recording::new(alloc(bulk_ops()), Mode::Plain);
    for case in [
        Case::Crash {
            sync: 10_000,
            sector: 512,
            length: Length::Current,
            kept: Vec::new(),
        },
        Case::Crash {
            sync: 3,
            sector: 1024,
            length: Length::Current,
            kept: Vec::new(),
        },
        Case::FailedGrowth { growth: 10_000 },
        Case::Media {
            sync: 3,
            page: 100,
            offset: 8,
            zero_sector: false,
        },
    ] {
        let error = replay::<P, _>(&scenario, &case).expect_err("no such state");
        assert_eq!(error.case, case);
        assert!(error.to_string().contains("nothing was checked"), "{error}");
    }
}

#[test]
fn the_media_phase_damages_what_media_damages_lists() {
    let scenario = Recording::new(alloc(growth_ops()), Mode::Plain);
    let (snapshots, _, acks) = scenario.clean();
    let created = acks[0].0;
    let listed: usize = snapshots
        .iter()
        .skip(created as usize)
        .map(|point| media_damages::<P>(&point.durable_image()).len())
        .sum();
    let config = Config {
        phases: Phases {
            media: true,
            ..Phases::none()
        },
        ..Config::quick()
    };
    let outcome = explore::<P, _>(&scenario, &config);
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert_eq!(outcome.states, listed as u64);
    // Each listed damage replays as a state of its own.
    let sync = snapshots.len() as u64 - 1;
    let damages = media_damages::<P>(&snapshots[sync as usize].durable_image());
    assert!(damages.iter().any(|d| d.redundant) && damages.iter().any(|d| d.zero_sector));
    for damage in damages {
        let case = Case::Media {
            sync,
            page: damage.page,
            offset: damage.offset,
            zero_sector: damage.zero_sector,
        };
        let violations = replay::<P, _>(&scenario, &case).expect("evaluated");
        assert!(violations.is_empty(), "{case:?}: {violations:?}");
    }
}

#[test]
fn the_crash_media_phase_damages_every_recovered_chain_root_and_each_damage_replays() {
    let scenario = Recording::new(alloc(growth_ops()), Mode::Plain);
    let (snapshots, _, acks) = scenario.clean();
    let created = acks[0].0 as usize;
    // The chain phase's root at each sync (none of the sectors in flight kept at syncs 0, 1, 4,
    // 5, …, all at 2, 3, 6, 7, …), recovered: the crash-media phase damages each.
    let mut root_damages = 0;
    for (sync, point) in snapshots.iter().enumerate().skip(created) {
        let kept = if sync / 2 % 2 == 1 {
            point.in_flight_sectors(SectorSize::S512)
        } else {
            Vec::new()
        };
        let image = point.crash_image(SectorSize::S512, &kept, CrashLength::Current);
        let recovered = Pager::<P, SimStorage>::open_in(SimStorage::from_image(image))
            .expect("a chain root opens")
            .into_storage()
            .into_image();
        let damages = media_damages::<P>(&recovered);
        root_damages += damages.len() as u64;
        if sync + 4 < snapshots.len() {
            continue; // replay the last four roots' damages (both kinds of root)
        }
        for damage in damages {
            let case = Case::CrashMedia {
                sync: sync as u64,
                sector: 512,
                length: Length::Current,
                kept: kept.clone(),
                page: damage.page,
                offset: damage.offset,
                zero_sector: damage.zero_sector,
            };
            let violations = replay::<P, _>(&scenario, &case).expect("evaluated");
            assert!(violations.is_empty(), "{case:?}: {violations:?}");
        }
    }
    let explore_with = |phases: Phases| {
        let outcome = explore::<P, _>(
            &scenario,
            &Config {
                phases,
                ..Config::quick()
            },
        );
        assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
        outcome.states
    };
    let crashes = explore_with(Phases {
        crashes: true,
        ..Phases::none()
    });
    let composed = explore_with(Phases {
        crash_media: true,
        ..Phases::none()
    });
    // The crash states themselves, every damage of every root (one root per sync, each a
    // distinct image), and more for the crashes whose recovery took the commit in flight.
    assert!(
        composed > crashes + root_damages,
        "crash-media explored {composed} states, crashes alone {crashes}, root damages {root_damages}"
    );
}
