//! The explorer: enumerate crash states, recover each, check.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hasher};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mappedpages::format::{DIRECTORY_MAGIC, Geometry};
use mappedpages::{
    CommitMode, CrashLength, CrashPoint, FailedSyncKeeps, MappedPageError, Pager, SectorSize,
    SimStorage, Storage,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::subsets::{splitmix64, subsets};
use crate::{Allowed, Finding, Matched, Recorder, Scenario};

/// Which kinds of crash states to explore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phases {
    /// Crash before every sync of the workload, with every (or a sampled) subset of the sectors
    /// in flight, at every configured sector size and both file lengths.
    pub crashes: bool,
    /// Crash during recovery's own writes, then recover again (INV-6).
    pub recovery_crashes: bool,
    /// Crash, recover, run more operations, crash again.
    pub chains: bool,
    /// Fail every sync (keeping none, all, or a seeded subset of its sectors).
    pub failed_syncs: bool,
    /// Fail every growth.
    pub failed_growth: bool,
    /// Flip a bit in (or zero a sector of) one internal page of a durable image: the superblock,
    /// a metadata copy, a bitmap slot or a directory slot page. A typed error or an allowed state
    /// (INV-8); for the superblock and directory pages, which are redundant, an allowed state
    /// only (INV-13).
    pub media: bool,
    /// Damage, as `media` does, the recovered image of every crash state whose recovery chose
    /// the commit in flight and of every chain root (each distinct recovered image once): the
    /// repairs recovery made must leave the file as redundant as a commit that completed
    /// (INV-13), a damaged non-redundant page gives a typed error or the recovered state
    /// (INV-8). Runs inside the crash phase's enumeration, whose crash states it also explores.
    pub crash_media: bool,
}

impl Phases {
    /// Every phase.
    pub fn all() -> Phases {
        Phases {
            crashes: true,
            recovery_crashes: true,
            chains: true,
            failed_syncs: true,
            failed_growth: true,
            media: true,
            crash_media: true,
        }
    }

    /// No phase: [`explore`] only runs the workload once (the checks its run makes still
    /// report). Turn single phases on from here.
    pub fn none() -> Phases {
        Phases {
            crashes: false,
            recovery_crashes: false,
            chains: false,
            failed_syncs: false,
            failed_growth: false,
            media: false,
            crash_media: false,
        }
    }
}

/// How much to explore.
#[derive(Clone, Debug)]
pub struct Config {
    /// Sector sizes to tear at.
    pub sector_sizes: Vec<SectorSize>,
    /// In-flight sets of at most this many sectors are explored exhaustively (2^n subsets).
    pub exhaustive_bits: u32,
    /// Extra seeded random subsets for larger in-flight sets (beyond the named patterns).
    pub extra_samples: usize,
    /// Seed of the subset sampling.
    pub seed: u64,
    /// Stop after this many crash states (the outcome says it was truncated).
    pub max_states: u64,
    /// Stop at this instant (the outcome says it was truncated).
    pub deadline: Option<Instant>,
    /// Stop at the first violation.
    pub stop_at_first_violation: bool,
    /// What to explore.
    pub phases: Phases,
    /// Incremented once per crash state checked (for progress bars).
    pub progress: Option<Arc<AtomicU64>>,
}

impl Config {
    /// Everything, at both sector sizes, with a large budget.
    pub fn thorough() -> Config {
        Config {
            sector_sizes: vec![SectorSize::S512, SectorSize::S4096],
            exhaustive_bits: 14,
            extra_samples: 256,
            seed: 0,
            max_states: u64::MAX,
            deadline: None,
            stop_at_first_violation: false,
            phases: Phases::all(),
            progress: None,
        }
    }

    /// Everything, with a smaller sample of large in-flight sets: for tests and doc examples.
    pub fn quick() -> Config {
        Config {
            exhaustive_bits: 8,
            extra_samples: 16,
            ..Config::thorough()
        }
    }
}

/// The file length a crash image keeps (serializable form of [`CrashLength`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Length {
    /// The last durable length.
    Durable,
    /// The current length.
    Current,
}

impl From<Length> for CrashLength {
    fn from(length: Length) -> CrashLength {
        match length {
            Length::Durable => CrashLength::Durable,
            Length::Current => CrashLength::Current,
        }
    }
}

/// How a failed sync treats its dirty sectors (serializable form of [`FailedSyncKeeps`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keeps {
    /// None reach the disk.
    Nothing,
    /// All reach the disk.
    Everything,
    /// A subset drawn from the sync index.
    Seeded,
}

/// One crash state, precisely enough to rerun it alone with [`replay`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Case {
    /// A crash just before sync `sync` of the workload (`sync` = number of syncs, for after the
    /// last), keeping the in-flight sectors `kept` (in units of `sector` bytes).
    Crash {
        /// Index of the sync the crash precedes.
        sync: u64,
        /// Sector size in bytes.
        sector: u64,
        /// File length kept.
        length: Length,
        /// Sector indices kept.
        kept: Vec<u64>,
    },
    /// As `Crash`, then a crash before sync `recovery_sync` of recovery itself (512-byte sectors,
    /// current length).
    RecoveryCrash {
        /// Index of the workload sync the first crash precedes.
        sync: u64,
        /// Sector size of the first crash.
        sector: u64,
        /// File length of the first crash.
        length: Length,
        /// Sectors kept by the first crash.
        kept: Vec<u64>,
        /// Index of the recovery sync the second crash precedes.
        recovery_sync: u64,
        /// Sectors kept by the second crash.
        recovery_kept: Vec<u64>,
    },
    /// A crash before sync `sync` (512-byte sectors, current length, keeping none or all), then
    /// recovery, the scenario's continuation, and a crash before its sync `second_sync`.
    Chain {
        /// Index of the workload sync the first crash precedes.
        sync: u64,
        /// Whether the first crash kept every in-flight sector.
        kept_all: bool,
        /// Index of the continuation sync the second crash precedes.
        second_sync: u64,
        /// File length of the second crash.
        second_length: Length,
        /// Sectors kept by the second crash.
        second_kept: Vec<u64>,
    },
    /// Sync `sync` fails; the workload goes on as far as the pager lets it; then a crash keeps
    /// none or all of the sectors in flight.
    FailedSync {
        /// Index of the failing sync.
        sync: u64,
        /// What the failing sync made durable.
        keeps: Keeps,
        /// Whether the final crash kept every in-flight sector.
        kept_all: bool,
        /// File length of the final crash.
        length: Length,
    },
    /// Growth `growth` fails; the workload goes on; then the durable image is recovered.
    FailedGrowth {
        /// Index of the failing growth.
        growth: u64,
    },
    /// The durable image before sync `sync`, with byte `offset` of page `page` bit-flipped (or,
    /// with `zero_sector`, the 512-byte sector holding it zeroed).
    Media {
        /// Index of the sync.
        sync: u64,
        /// Page corrupted.
        page: u64,
        /// Byte offset in the page.
        offset: u64,
        /// Zero the sector instead of flipping a bit.
        zero_sector: bool,
    },
    /// As `Crash`, then the image recovery left (its repairs included) damaged as `Media`
    /// damages a durable image.
    CrashMedia {
        /// Index of the sync the crash precedes.
        sync: u64,
        /// Sector size in bytes.
        sector: u64,
        /// File length kept.
        length: Length,
        /// Sector indices kept.
        kept: Vec<u64>,
        /// Page corrupted after recovery.
        page: u64,
        /// Byte offset in the page.
        offset: u64,
        /// Zero the sector instead of flipping a bit.
        zero_sector: bool,
    },
}

/// Everything needed to rerun one crash state: `crashsim --replay '<json>'`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reproducer {
    /// Workload name.
    pub workload: String,
    /// Workload seed.
    pub seed: u64,
    /// The crash state.
    pub case: Case,
}

/// One broken invariant, with its reproducer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Violation {
    /// What broke.
    pub finding: Finding,
    /// How to see it again.
    pub repro: Reproducer,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let repro = serde_json::to_string(&self.repro).map_err(|_| std::fmt::Error)?;
        write!(
            f,
            "{}\n    reproduce: crashsim --replay '{repro}'",
            self.finding
        )
    }
}

/// What exploring one workload found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// Workload name.
    pub workload: String,
    /// Workload seed.
    pub seed: u64,
    /// Syncs in the workload (including the create).
    pub syncs: u64,
    /// Crash states recovered and checked.
    pub states: u64,
    /// Violations found (all of them counted; the first 32 kept).
    pub violation_count: u64,
    /// The first violations, in exploration order.
    pub violations: Vec<Violation>,
    /// Wall time.
    pub elapsed: Duration,
    /// The budget or deadline ran out before everything was explored.
    pub truncated: bool,
}

const KEPT_VIOLATIONS: usize = 32;

/// A recovered pager and the model its state matched.
type Recovered<const P: usize, M> = (Pager<P, SimStorage>, M);

/// The clean run: the workload with a snapshot before every sync.
struct CleanRun<M> {
    snapshots: Vec<CrashPoint>,
    final_storage: CrashPoint,
    acks: Vec<(u64, M)>,
    grow_count: u64,
}

/// The models allowed at a crash just before sync `sync`, given a run's acknowledgements
/// ([`Recorder::acks`]: sync count at the time, model): the last one acknowledged at or before
/// that sync (`None` before the create completed, when "no file" is also allowed) and the one
/// acknowledged next, in flight at the crash (`None` after the last).
pub fn allowed_at<M>(acks: &[(u64, M)], sync: u64) -> (Option<&M>, Option<&M>) {
    let acknowledged = acks
        .iter()
        .rev()
        .find(|(count, _)| *count <= sync)
        .map(|(_, m)| m);
    let in_flight = acks.iter().find(|(count, _)| *count > sync).map(|(_, m)| m);
    (acknowledged, in_flight)
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
        let n = self.states.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(progress) = &self.config.progress {
            progress.fetch_add(1, Ordering::Relaxed);
        }
        if n >= self.config.max_states
            || (n.is_multiple_of(256) && self.config.deadline.is_some_and(|d| Instant::now() >= d))
        {
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
        violations.sort_by_key(|(order, _)| *order);
        violations.truncate(KEPT_VIOLATIONS);
    }

    fn clean_run(
        &self,
        storage: SimStorage,
    ) -> Result<(Pager<P, SimStorage>, Recorder<W::Model>), Finding> {
        let mut pager = Pager::<P, SimStorage>::create_in(storage)
            .map_err(|e| Finding::new(1, format!("create_in failed: {e}")))?;
        pager.set_commit_mode(self.scenario.commit_mode());
        let mut rec = Recorder::new();
        rec.ack(&pager, self.scenario.initial_model());
        self.scenario.run(&mut pager, &mut rec)?;
        if let Some(finding) = rec.finding.take() {
            return Err(finding);
        }
        Ok((pager, rec))
    }

    /// One crash state on `bench`: patch the in-flight sectors `kept`, recover, judge; then,
    /// with `composition` (the crash-media phase), damage the recovered image; then, if recovery
    /// wrote anything, crash at each of its syncs and recover again (INV-6).
    #[allow(clippy::too_many_arguments)]
    fn crash_state(
        &self,
        order: usize,
        bench: &mut Bench,
        snapshot: &CrashPoint,
        sector_size: SectorSize,
        kept: &[u64],
        case: &Case,
        acknowledged: Option<&W::Model>,
        in_flight: Option<&W::Model>,
        composition: Option<&mut Composition>,
    ) {
        let patches = sector_patches(snapshot, sector_size, kept, bench.len());
        let capture = self.config.phases.recovery_crashes || composition.is_some();
        let opened = guarded(|| {
            Ok(bench.open_patched::<P, _>(&patches, capture, |opened| {
                let verdict = judge_matched(self.scenario, opened, acknowledged, in_flight);
                let reference: Option<Vec<u64>> = opened
                    .ok()
                    .map(|pager| pager.iter_allocated_pages().map(|id| id.raw()).collect());
                let damages = match (&verdict, opened, composition) {
                    (Ok(Some((_, matched))), Ok(pager), Some(composition))
                        if *matched == Matched::InFlight
                            || composition.chain_root.as_deref() == Some(kept) =>
                    {
                        composition.damages::<P>(pager.storage())
                    }
                    _ => Vec::new(),
                };
                (verdict, reference, damages)
            }))
        });
        let ((verdict, reference, damages), repairs) = match opened {
            Ok(found) => found,
            Err(finding) => return self.report(order, case.clone(), finding),
        };
        let recovered = match verdict {
            Ok(recovered) => recovered,
            Err(finding) => return self.report(order, case.clone(), finding),
        };
        if let (Some((model, _)), false) = (&recovered, damages.is_empty()) {
            self.damage_recovered(
                order,
                bench,
                &patches,
                repairs.as_ref(),
                case,
                model,
                &damages,
            );
        }
        if !self.config.phases.recovery_crashes {
            return;
        }
        let (Some(reference), Some(repairs)) = (reference, repairs) else {
            return;
        };
        let Case::Crash {
            sync,
            sector,
            length,
            kept,
        } = case
        else {
            return;
        };
        // Recovery wrote `repairs` (its syncs in order, with the bytes each left). A crash before
        // its sync `index` keeps everything synced earlier and a subset of that sync's sectors.
        for (index, sync_writes) in repairs.iter().enumerate() {
            let earlier: Vec<(usize, &[u8])> = repairs[..index]
                .iter()
                .flatten()
                .map(|(range, bytes)| (range.start as usize, bytes.as_slice()))
                .collect();
            let mut dirty: Vec<(usize, &[u8])> = Vec::new();
            for (range, bytes) in sync_writes {
                for (chunk_index, chunk) in bytes.chunks(512).enumerate() {
                    let start = range.start as usize + chunk_index * 512;
                    if bench.differs_from_patched(start, chunk, &patches) {
                        dirty.push((start, chunk));
                    }
                }
            }
            // (indices into `dirty`, the sectors they are): every subset of up to 6, named
            // patterns and a seeded sample beyond; in a replay, the sectors the case names.
            let chosen: Vec<(Vec<u64>, Vec<u64>)> = match self.only {
                Some(Case::RecoveryCrash { recovery_kept, .. }) => {
                    let subset = (0..dirty.len() as u64)
                        .filter(|&i| recovery_kept.contains(&(dirty[i as usize].0 as u64 / 512)))
                        .collect();
                    vec![(subset, recovery_kept.clone())]
                }
                _ => {
                    let dirty_ids: Vec<u64> = (0..dirty.len() as u64).collect();
                    subsets(&dirty_ids, 6, 8, index as u64)
                        .into_iter()
                        .map(|subset| {
                            let sectors = subset
                                .iter()
                                .map(|&i| dirty[i as usize].0 as u64 / 512)
                                .collect();
                            (subset, sectors)
                        })
                        .collect()
                }
            };
            for (subset, recovery_kept) in chosen {
                let case = Case::RecoveryCrash {
                    sync: *sync,
                    sector: *sector,
                    length: *length,
                    kept: kept.clone(),
                    recovery_sync: index as u64,
                    recovery_kept,
                };
                if !self.begin_state(&case) {
                    continue;
                }
                let mut layered = patches.clone();
                layered.extend(earlier.iter().copied());
                layered.extend(subset.iter().map(|&i| dirty[i as usize]));
                let result = guarded(|| {
                    let (pages, _) = bench.open_patched::<P, _>(&layered, false, |opened| {
                        opened
                            .map(|pager| {
                                pager
                                    .iter_allocated_pages()
                                    .map(|id| id.raw())
                                    .collect::<Vec<u64>>()
                            })
                            .map_err(|error| error.to_string())
                    });
                    match pages {
                        Err(error) => Err(Finding::new(
                            6,
                            format!(
                                "recovery interrupted at its sync {index} leaves an image that does not open: {error}"
                            ),
                        )),
                        Ok(pages) if pages != reference => Err(Finding::new(
                            6,
                            format!(
                                "recovery interrupted at its sync {index} and rerun finds {} allocated pages, the first recovery {}",
                                pages.len(),
                                reference.len()
                            ),
                        )),
                        Ok(_) => Ok(()),
                    }
                });
                if let Err(finding) = result {
                    self.report(order, case, finding);
                }
            }
        }
    }

    fn crash_point(&self, order: usize, run: &CleanRun<W::Model>, sync: u64) {
        let (acknowledged, in_flight) = allowed_at(&run.acks, sync);
        let snapshot = run
            .snapshots
            .get(sync as usize)
            .unwrap_or(&run.final_storage);
        let lengths: &[Length] = match self.replayed_crash() {
            Some((length, _)) => &[length],
            None if snapshot.durable_len_bytes() == snapshot.len_bytes() => &[Length::Current],
            None => &[Length::Durable, Length::Current],
        };
        // Crash images of this sync differ from the durable image (at their length) only in the
        // sectors in flight, all inside the in-flight sectors of the largest size, and in what
        // recovery writes: the crash-media phase identifies recovered images by those bytes.
        let mut composition = self.config.phases.crash_media.then(|| {
            let largest = SectorSize::S4096;
            Composition {
                key_ranges: snapshot
                    .in_flight_sectors(largest)
                    .iter()
                    .map(|&sector| {
                        let start = sector * largest.bytes();
                        start..start + largest.bytes()
                    })
                    .collect(),
                chain_root: None,
                seen: HashSet::new(),
            }
        });
        for &sector_size in &self.config.sector_sizes {
            let in_flight_sectors = snapshot.in_flight_sectors(sector_size);
            let chosen = match self.replayed_crash() {
                Some((_, kept)) => vec![kept.to_vec()],
                None => subsets(
                    &in_flight_sectors,
                    self.config.exhaustive_bits,
                    self.config.extra_samples,
                    self.config.seed ^ sync.wrapping_mul(0x9E37_79B9) ^ sector_size.bytes(),
                ),
            };
            // The chain phase's root at this sync (`chain`), if it is a state of this bench.
            let root_kept = if chain_root_keeps_all(sync) {
                in_flight_sectors.clone()
            } else {
                Vec::new()
            };
            for &length in lengths {
                let mut bench = Bench::new(snapshot.crash_image(sector_size, &[], length.into()));
                if let Some(composition) = &mut composition {
                    composition.chain_root = (sector_size == SectorSize::S512
                        && length == Length::Current)
                        .then(|| root_kept.clone());
                }
                for kept in &chosen {
                    let case = Case::Crash {
                        sync,
                        sector: sector_size.bytes(),
                        length,
                        kept: kept.clone(),
                    };
                    if !self.begin_state(&case) {
                        continue;
                    }
                    self.crash_state(
                        order,
                        &mut bench,
                        snapshot,
                        sector_size,
                        kept,
                        &case,
                        acknowledged,
                        in_flight,
                        composition.as_mut(),
                    );
                }
            }
        }
    }

    /// The crash-media phase on one recovered crash state: the image recovery left (`bench`
    /// with the crash's `patches` and the `repairs` recovery synced) damaged by each of
    /// `damages` in turn, and opened. It must hold `recovered`, the state the crash recovered,
    /// which the recovery made the committed one (its superblock names it, nothing newer is
    /// left): for a redundant page that state exactly (INV-13), elsewhere that state or a typed
    /// error (INV-8).
    #[allow(clippy::too_many_arguments)]
    fn damage_recovered(
        &self,
        order: usize,
        bench: &mut Bench,
        patches: &[(usize, &[u8])],
        repairs: Option<&Repairs>,
        case: &Case,
        recovered: &W::Model,
        damages: &[(MediaDamage, usize, Vec<u8>)],
    ) {
        let Case::Crash {
            sync,
            sector,
            length,
            kept,
        } = case
        else {
            return;
        };
        let mut layered: Vec<(usize, &[u8])> = patches.to_vec();
        layered.extend(
            repairs
                .into_iter()
                .flatten()
                .flatten()
                .map(|(range, bytes)| (range.start as usize, bytes.as_slice())),
        );
        for (damage, start, replacement) in damages {
            let case = Case::CrashMedia {
                sync: *sync,
                sector: *sector,
                length: *length,
                kept: kept.clone(),
                page: damage.page,
                offset: damage.offset,
                zero_sector: damage.zero_sector,
            };
            if !self.begin_state(&case) {
                continue;
            }
            layered.push((*start, replacement.as_slice()));
            let result = guarded(|| {
                let (verdict, _) = bench.open_patched::<P, _>(&layered, false, |opened| {
                    judge_damaged(
                        self.scenario,
                        opened,
                        damage.redundant,
                        recovered,
                        None,
                        None,
                    )
                });
                verdict.map_err(|finding| damage_finding(damage, finding, "after recovery, "))
            });
            layered.pop();
            if let Err(finding) = result {
                self.report(order, case, finding);
            }
        }
    }

    fn chain(&self, order: usize, run: &CleanRun<W::Model>, sync: u64) {
        let (acknowledged, in_flight) = allowed_at(&run.acks, sync);
        let Some(snapshot) = run.snapshots.get(sync as usize) else {
            return;
        };
        // One root per sync point: keeping nothing in flight at syncs 0, 1, 4, 5, 8, 9, …, and
        // everything at syncs 2, 3, 6, 7, …. Commits take two syncs, so every commit gets a root
        // that leaves it half done (its first barrier's writes on disk, the superblock not: kept
        // everything before its first sync, or nothing before its second), the state whose
        // leftovers recovery must scrub (SPEC.md §4.3) before the continuation reuses the
        // generation; plain alternation would give every commit the same two trivial roots
        // (nothing of it, or all of it).
        // In a replay, the root the case names.
        let root = match self.only {
            Some(Case::Chain { kept_all, .. }) => *kept_all,
            _ => chain_root_keeps_all(sync),
        };
        for kept_all in [root] {
            let kept = if kept_all {
                snapshot.in_flight_sectors(SectorSize::S512)
            } else {
                Vec::new()
            };
            let image = snapshot.crash_image(SectorSize::S512, &kept, CrashLength::Current);
            // The first level is a crash state of its own (checked by `crash_point`); here it is
            // the root of a continuation. A replay, which runs no crash phase, reports it here.
            let root = guarded(|| open_and_judge(self.scenario, image, acknowledged, in_flight));
            let (pager, model) = match root {
                Ok(Some(found)) => found,
                Ok(None) => continue,
                Err(finding) => {
                    if self.only.is_some() {
                        let case = Case::Crash {
                            sync,
                            sector: SectorSize::S512.bytes(),
                            length: Length::Current,
                            kept,
                        };
                        self.report(order, case, finding);
                    }
                    continue;
                }
            };
            let continuation = guarded(|| {
                let mut storage = pager.into_storage();
                storage.record_sync_snapshots();
                // Snapshots count from here; the acknowledgements count every sync of this
                // storage, including the repairs of the root's recovery: rebase them below.
                let base_syncs = storage.sync_count();
                let mut pager = Pager::<P, SimStorage>::open_in(storage).map_err(|e| {
                    Finding::new(6, format!("second open after recovery fails: {e}"))
                })?;
                pager.set_commit_mode(self.scenario.commit_mode());
                let mut rec = Recorder::new();
                rec.ack(&pager, model.clone());
                self.scenario.resume(&mut pager, &mut rec, &model)?;
                if let Some(finding) = rec.finding.take() {
                    return Err(finding);
                }
                let acks: Vec<(u64, W::Model)> = rec
                    .acks
                    .iter()
                    .map(|(count, model)| (count - base_syncs, model.clone()))
                    .collect();
                Ok((pager, acks))
            });
            let (pager, acks) = match continuation {
                Ok(found) => found,
                Err(finding) => {
                    let case = Case::Chain {
                        sync,
                        kept_all,
                        second_sync: 0,
                        second_length: Length::Current,
                        second_kept: Vec::new(),
                    };
                    if self.begin_shared_failure(&case) {
                        self.report(order, case, finding);
                    }
                    continue;
                }
            };
            let storage = pager.storage();
            let snapshots = storage.sync_snapshots();
            for second_sync in 0..=snapshots.len() as u64 {
                let last;
                let second = match snapshots.get(second_sync as usize) {
                    Some(point) => point,
                    None => {
                        last = storage.crash_point();
                        &last
                    }
                };
                let (acknowledged, in_flight) = allowed_at(&acks, second_sync);
                let lengths: &[Length] = match self.replayed_crash() {
                    Some((length, _)) => &[length],
                    None if second.durable_len_bytes() == second.len_bytes() => &[Length::Current],
                    None => &[Length::Durable, Length::Current],
                };
                let chosen = match self.replayed_crash() {
                    Some((_, kept)) => vec![kept.to_vec()],
                    None => subsets(
                        &second.in_flight_sectors(SectorSize::S512),
                        4,
                        4,
                        second_sync,
                    ),
                };
                for &second_length in lengths {
                    let mut bench =
                        Bench::new(second.crash_image(SectorSize::S512, &[], second_length.into()));
                    for second_kept in &chosen {
                        let case = Case::Chain {
                            sync,
                            kept_all,
                            second_sync,
                            second_length,
                            second_kept: second_kept.clone(),
                        };
                        if !self.begin_state(&case) {
                            continue;
                        }
                        let patches =
                            sector_patches(second, SectorSize::S512, second_kept, bench.len());
                        let result = guarded(|| {
                            bench
                                .open_patched::<P, _>(&patches, false, |opened| {
                                    judge(self.scenario, opened, acknowledged, in_flight)
                                })
                                .0
                                .map(|_| ())
                        });
                        if let Err(finding) = result {
                            self.report(order, case, finding);
                        }
                    }
                }
            }
        }
    }

    /// Sync `sync` fails. One run keeps none of its sectors; what it did not write is recorded
    /// (`SimStorage::lost_writes`), so the runs that keep all or a seeded subset are the same
    /// run's images plus those sectors (the pager's memory and later writes do not depend on
    /// what reached the disk).
    fn failed_sync(&self, order: usize, clean: &CleanRun<W::Model>, sync: u64) {
        let mut storage = SimStorage::new();
        storage.fail_sync_at(sync, FailedSyncKeeps::Nothing);
        let run = guarded(|| self.clean_run(storage));
        let (pager, rec) = match run {
            Ok(found) => found,
            Err(finding) => {
                let case = Case::FailedSync {
                    sync,
                    keeps: Keeps::Nothing,
                    kept_all: false,
                    length: Length::Current,
                };
                if self.begin_shared_failure(&case) {
                    self.report(order, case, finding);
                }
                return;
            }
        };
        let last_ack = rec.acks.last().expect("the initial model is acknowledged");
        // The workload is deterministic: until the failure it did what the clean run did, so the
        // operation in flight at the failure is the clean run's operation at that sync.
        let in_flight = if last_ack.0 <= sync {
            allowed_at(&clean.acks, sync).1
        } else {
            None
        };
        let storage = pager.storage();
        let lost = storage.lost_writes();
        for keeps in [Keeps::Nothing, Keeps::Everything, Keeps::Seeded] {
            let mut seed = sync ^ self.config.seed;
            let arrived: Vec<(u64, &[u8])> = lost
                .iter()
                .copied()
                .filter(|_| match keeps {
                    Keeps::Nothing => false,
                    Keeps::Everything => true,
                    Keeps::Seeded => splitmix64(&mut seed) & 1 == 1,
                })
                .collect();
            for kept_all in [false, true] {
                for length in [Length::Durable, Length::Current] {
                    let case = Case::FailedSync {
                        sync,
                        keeps,
                        kept_all,
                        length,
                    };
                    if !self.begin_state(&case) {
                        continue;
                    }
                    let kept = if kept_all {
                        storage.in_flight_sectors(SectorSize::S512)
                    } else {
                        Vec::new()
                    };
                    let result = guarded(|| {
                        let mut image = storage.crash_image(SectorSize::S512, &kept, length.into());
                        for &(offset, bytes) in &arrived {
                            let start = offset as usize;
                            if start < image.len() {
                                let end = (start + bytes.len()).min(image.len());
                                image[start..end].copy_from_slice(&bytes[..end - start]);
                            }
                        }
                        open_and_judge(self.scenario, image, Some(&last_ack.1), in_flight)
                            .map(|_| ())
                            .map_err(|f| Finding::new(7, format!("after failed sync {sync}: {f}")))
                    });
                    if let Err(finding) = result {
                        self.report(order, case, finding);
                    }
                }
            }
        }
    }

    fn failed_growth(&self, order: usize, growth: u64) {
        let case = Case::FailedGrowth { growth };
        if !self.begin_state(&case) {
            return;
        }
        let result = guarded(|| {
            let mut storage = SimStorage::new();
            storage.fail_grow_at(growth);
            if growth == 0 {
                // The create's own growth: create fails and nothing exists.
                return match Pager::<P, SimStorage>::create_in(storage) {
                    Err(MappedPageError::Io { .. }) => Ok(()),
                    Err(other) => Err(Finding::new(
                        7,
                        format!("failed create growth gave {other}"),
                    )),
                    Ok(_) => Err(Finding::new(
                        7,
                        "create succeeded although its growth failed",
                    )),
                };
            }
            let (pager, rec) = self.clean_run(storage)?;
            let last = &rec.acks.last().expect("initial ack").1;
            open_and_judge(
                self.scenario,
                pager.storage().durable_image(),
                Some(last),
                None,
            )
            .map(|_| ())
            .map_err(|f| Finding::new(7, format!("after failed growth {growth}: {f}")))
        });
        if let Err(finding) = result {
            self.report(order, case, finding);
        }
    }

    fn media(&self, order: usize, run: &CleanRun<W::Model>, sync: u64) {
        let (acknowledged, in_flight) = allowed_at(&run.acks, sync);
        if acknowledged.is_none() {
            return; // before the create completed there is nothing to protect
        }
        // Single-sync mode (SPEC.md §3.2.1): damage to a page the last commit wrote looks like a
        // crash that interrupted it, so recovering the commit before it is allowed too.
        let rolled_back = if self.scenario.commit_mode() == CommitMode::SingleSync {
            previous_commit_at(&run.acks, sync)
        } else {
            None
        };
        let Some(snapshot) = run.snapshots.get(sync as usize) else {
            return;
        };
        let mut bench = Bench::new(snapshot.durable_image());
        let acknowledged = acknowledged.expect("checked above");
        for damage in media_damages::<P>(&bench.pristine) {
            let case = Case::Media {
                sync,
                page: damage.page,
                offset: damage.offset,
                zero_sector: damage.zero_sector,
            };
            if !self.begin_state(&case) {
                continue;
            }
            let Some((start, replacement)) = damage_patch::<P>(&bench.pristine, &damage) else {
                continue;
            };
            let result = guarded(|| {
                let (verdict, _) = bench.open_patched::<P, _>(
                    &[(start, replacement.as_slice())],
                    false,
                    |opened| {
                        judge_damaged(
                            self.scenario,
                            opened,
                            damage.redundant,
                            acknowledged,
                            in_flight,
                            rolled_back,
                        )
                    },
                );
                verdict.map_err(|finding| damage_finding(&damage, finding, ""))
            });
            if let Err(finding) = result {
                self.report(order, case, finding);
            }
        }
    }
}

/// What the crash-media phase needs at one sync.
struct Composition {
    /// The in-flight sectors of the largest sector size, as byte ranges: with recovery's writes,
    /// the only bytes in which the recovered images of this sync's crash states of one file
    /// length can differ.
    key_ranges: Vec<Range<u64>>,
    /// The kept sectors of the chain phase's root at this sync, if the root is a state of the
    /// bench being explored (512-byte sectors, current length).
    chain_root: Option<Vec<u64>>,
    /// Keys of the recovered images already damaged ([`Composition::damages`]).
    seen: HashSet<u64>,
}

impl Composition {
    /// The damages to do to the image `storage` holds after recovery, with the patch of each
    /// (start, bytes); none if an identical recovered image of this sync was damaged already.
    /// The image's length, the bytes of [`key_ranges`](Self::key_ranges), and the ranges
    /// recovery synced with their bytes identify it.
    fn damages<const P: usize>(
        &mut self,
        storage: &SimStorage,
    ) -> Vec<(MediaDamage, usize, Vec<u8>)> {
        let image = storage.bytes();
        let mut hasher = DefaultHasher::new();
        hasher.write_usize(image.len());
        for range in &self.key_ranges {
            let start = (range.start as usize).min(image.len());
            let end = (range.end as usize).min(image.len());
            hasher.write(&image[start..end]);
        }
        for range in storage.sync_log().iter().flatten() {
            hasher.write_u64(range.start);
            hasher.write_u64(range.end);
            hasher.write(&image[range.start as usize..range.end as usize]);
        }
        if !self.seen.insert(hasher.finish()) {
            return Vec::new();
        }
        media_damages::<P>(image)
            .into_iter()
            .filter_map(|damage| {
                damage_patch::<P>(image, &damage).map(|(start, bytes)| (damage, start, bytes))
            })
            .collect()
    }
}

/// Whether the chain phase's root at `sync` keeps every in-flight sector (else none): none at
/// syncs 0, 1, 4, 5, 8, 9, …, all at 2, 3, 6, 7, … (see [`Explorer::chain`]).
fn chain_root_keeps_all(sync: u64) -> bool {
    sync / 2 % 2 == 1
}

/// The patch that does `damage` to `image`: (start, bytes); `None` past the end.
fn damage_patch<const P: usize>(image: &[u8], damage: &MediaDamage) -> Option<(usize, Vec<u8>)> {
    let at = usize::try_from(damage.page * P as u64 + damage.offset).ok()?;
    let byte = *image.get(at)?;
    Some(if damage.zero_sector {
        let start = at / 512 * 512;
        (start, vec![0u8; (start + 512).min(image.len()) - start])
    } else {
        (at, vec![byte ^ 1])
    })
}

/// Judges what opening a damaged image gave (the media phases): for a redundant page the file
/// must open (INV-13); elsewhere a typed error is a correct answer to corruption (INV-8). A
/// state that opens must be well-formed and hold `acknowledged` or `in_flight`, or
/// `rolled_back` (single-sync mode, damage to the newest commit's pages, SPEC.md §3.2.1).
fn judge_damaged<const P: usize, W: Scenario<P>>(
    scenario: &W,
    opened: Result<&Pager<P, SimStorage>, &MappedPageError>,
    redundant: bool,
    acknowledged: &W::Model,
    in_flight: Option<&W::Model>,
    rolled_back: Option<&W::Model>,
) -> Result<(), Finding> {
    match opened {
        Err(error) if redundant => {
            Err(Finding::new(13, format!("the file does not open: {error}")))
        }
        Err(_) => Ok(()),
        Ok(pager) => {
            check_well_formed(pager)?;
            let verdict = scenario.check(
                pager,
                &Allowed {
                    acknowledged,
                    in_flight,
                },
            );
            match (verdict, rolled_back) {
                (Err(_), Some(previous)) => scenario
                    .check(
                        pager,
                        &Allowed {
                            acknowledged: previous,
                            in_flight: None,
                        },
                    )
                    .map(|_| ()),
                (verdict, _) => verdict.map(|_| ()),
            }
        }
    }
}

/// The finding a damaged image gave, worded with what was damaged (`when`: a prefix such as
/// "after recovery, ").
fn damage_finding(damage: &MediaDamage, finding: Finding, when: &str) -> Finding {
    let MediaDamage {
        page,
        offset,
        zero_sector,
        redundant,
    } = *damage;
    let what = if zero_sector {
        format!("page {page} with the sector of byte {offset} zeroed")
    } else {
        format!("page {page} with a bit of byte {offset} flipped")
    };
    if redundant {
        Finding::new(13, format!("{when}{what}: {finding}"))
    } else {
        Finding::new(8, format!("{when}corrupt {what} accepted: {finding}"))
    }
}

/// The model of the commit before the last one acknowledged at `sync` (the last acknowledged
/// model recorded with fewer syncs), if there is one.
fn previous_commit_at<M>(acks: &[(u64, M)], sync: u64) -> Option<&M> {
    let (last_count, _) = acks.iter().rev().find(|(count, _)| *count <= sync)?;
    acks.iter()
        .rev()
        .find(|(count, _)| count < last_count)
        .map(|(_, model)| model)
}

/// Runs `f`, turning a panic into an INV-9 finding.
fn guarded<T>(f: impl FnOnce() -> Result<T, Finding>) -> Result<T, Finding> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".to_string());
            Err(Finding::new(9, format!("panic: {message}")))
        }
    }
}

/// Judges what opening a crash image gave. `acknowledged` is `None` before the create
/// completed, when "no file" is also allowed. Returns the model the state matched (`None`:
/// no file).
fn judge<const P: usize, W: Scenario<P>>(
    scenario: &W,
    opened: Result<&Pager<P, SimStorage>, &MappedPageError>,
    acknowledged: Option<&W::Model>,
    in_flight: Option<&W::Model>,
) -> Result<Option<W::Model>, Finding> {
    judge_matched(scenario, opened, acknowledged, in_flight)
        .map(|recovered| recovered.map(|(model, _)| model))
}

/// [`judge`], also saying which of the two models the state matched.
fn judge_matched<const P: usize, W: Scenario<P>>(
    scenario: &W,
    opened: Result<&Pager<P, SimStorage>, &MappedPageError>,
    acknowledged: Option<&W::Model>,
    in_flight: Option<&W::Model>,
) -> Result<Option<(W::Model, Matched)>, Finding> {
    let pager = match opened {
        Ok(pager) => pager,
        Err(MappedPageError::NotAMappedPagesFile | MappedPageError::FileTooSmall { .. })
            if acknowledged.is_none() =>
        {
            return Ok(None);
        }
        Err(error) => {
            return Err(Finding::new(
                1,
                format!("crash image does not open: {error}"),
            ));
        }
    };
    check_well_formed(pager)?;
    let (acknowledged, in_flight) = match (acknowledged, in_flight) {
        (Some(acknowledged), in_flight) => (acknowledged, in_flight),
        // Before the create completed, the created file's model is the one in flight.
        (None, Some(created)) => (created, None),
        // Not from a `Recorder` (whose first acknowledgement is the created file's model).
        (None, None) => {
            return Err(Finding::new(
                2,
                "the image opens, but no state is allowed (nothing acknowledged or in flight)",
            ));
        }
    };
    let matched = scenario.check(
        pager,
        &Allowed {
            acknowledged,
            in_flight,
        },
    )?;
    match matched {
        Matched::Acknowledged => Ok(Some((acknowledged.clone(), matched))),
        Matched::InFlight => in_flight
            .map(|m| Some((m.clone(), matched)))
            .ok_or_else(|| {
                Finding::new(
                    2,
                    "Scenario::check matched the in-flight model, but none was in flight",
                )
            }),
    }
}

/// Opens `image` (a copy of its own) and judges it; returns the pager for further use.
fn open_and_judge<const P: usize, W: Scenario<P>>(
    scenario: &W,
    image: Vec<u8>,
    acknowledged: Option<&W::Model>,
    in_flight: Option<&W::Model>,
) -> Result<Option<Recovered<P, W::Model>>, Finding> {
    match Pager::<P, SimStorage>::open_in(SimStorage::from_image(image)) {
        Ok(pager) => {
            let model = judge(scenario, Ok(&pager), acknowledged, in_flight)?;
            Ok(model.map(|model| (pager, model)))
        }
        Err(error) => judge(scenario, Err(&error), acknowledged, in_flight).map(|_| None),
    }
}

/// Judges one crash image exactly as the explorer judges every crash state it recovers: the
/// image opens (INV-1; before the create completed, "no file" is allowed too), the recovered
/// pager is well-formed (INV-5, `check_well_formed`), and [`Scenario::check`] accepts it against
/// the acknowledged and in-flight models (INV-2/3/4, or whatever the scenario checks); a panic
/// anywhere in there is an INV-9 finding. Pass `acknowledged` and `in_flight` as [`allowed_at`]
/// gives them for the crash point (`acknowledged` is `None` before the create completed; then
/// `in_flight` is the created file's model). Returns the model the recovered state matched, or
/// `None` if the image holds no file (allowed only before the create completed).
///
/// For a crash state of a workload's own run, [`replay`] of its [`Case`] gives the same verdict
/// (and for a `RecoveryCrash`, a `Chain`, a failure or media damage, the checks that go with
/// them); `check_image` judges an image from anywhere (a fuzzer's crash, a file from the field)
/// without rerunning the workload.
pub fn check_image<const P: usize, W: Scenario<P>>(
    scenario: &W,
    image: Vec<u8>,
    acknowledged: Option<&W::Model>,
    in_flight: Option<&W::Model>,
) -> Result<Option<W::Model>, Finding> {
    guarded(|| {
        open_and_judge(scenario, image, acknowledged, in_flight)
            .map(|recovered| recovered.map(|(_, model)| model))
    })
}

/// One damage the media phase does to a durable image: the [`Case::Media`] of a sync, without
/// the sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaDamage {
    /// The page damaged.
    pub page: u64,
    /// The byte of the page whose lowest bit is flipped, or whose 512-byte sector is zeroed.
    pub offset: u64,
    /// Zero the sector instead of flipping the bit.
    pub zero_sector: bool,
    /// The page is redundant (the superblock, a directory slot page): the file must open to an
    /// allowed state (INV-13). Elsewhere a typed error is also a correct answer (INV-8).
    pub redundant: bool,
}

/// Every damage the media phase does to `image`, a durable image of `P`-byte pages, in the
/// order it does them: the superblock, both metadata copies, every bitmap slot page and every
/// directory slot page (each page that starts with the directory magic), each at a few fields,
/// with a bit flipped at each field and the sector of the first field zeroed.
pub fn media_damages<const P: usize>(image: &[u8]) -> Vec<MediaDamage> {
    let geometry = Geometry::new(P);
    let file_pages = image.len() as u64 / P as u64;
    // (page, byte offsets, redundant).
    let mut targets: Vec<(u64, &[u64], bool)> = vec![
        (0, &[8, 20, 24, 32], true),
        // Metadata copies: generation, page count, slot digest, directory digest and head,
        // and the first log entry's page and count (a change there is a wrong allocation
        // state that only the checksum can tell from a right one).
        (1, &[16, 24, 40, 64, 72, 128, 136], false),
        (2, &[16, 24, 40, 64, 72, 128, 136], false),
    ];
    let mut group = 0;
    while geometry.slot_page(group, 1) < file_pages {
        for slot in 0..2 {
            targets.push((geometry.slot_page(group, slot), &[16, 32, 40], false));
        }
        group += 1;
    }
    // Directory slot pages: generation, next-block pointer, entry 0's second copy and its
    // content checksum.
    for page in 0..file_pages {
        let start = (page * P as u64) as usize;
        if image.get(start..start + DIRECTORY_MAGIC.len()) == Some(&DIRECTORY_MAGIC[..]) {
            targets.push((page, &[16, 32, 72, 88], true));
        }
    }
    let mut damages = Vec::new();
    for (page, offsets, redundant) in targets {
        for (index, &offset) in offsets.iter().enumerate() {
            for zero_sector in [false, true] {
                if zero_sector && index > 0 {
                    continue; // one zeroed sector per page is enough
                }
                damages.push(MediaDamage {
                    page,
                    offset,
                    zero_sector,
                    redundant,
                });
            }
        }
    }
    damages
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

/// INV-5 at the pager level: no internal page listed, counts agree, the file holds every page.
fn check_well_formed<const P: usize>(pager: &Pager<P, SimStorage>) -> Result<(), Finding> {
    let geometry = Geometry::new(P);
    let mut count = 0u64;
    for id in pager.iter_allocated_pages() {
        if geometry.is_internal(id.raw()) || id.raw() >= pager.page_count() {
            return Err(Finding::new(
                5,
                format!("page {} listed as allocated", id.raw()),
            ));
        }
        count += 1;
    }
    if count != pager.allocated_page_count() {
        return Err(Finding::new(
            5,
            format!(
                "{count} pages listed, {} counted",
                pager.allocated_page_count()
            ),
        ));
    }
    if pager.storage().len_bytes() < pager.page_count() * P as u64 {
        return Err(Finding::new(5, "file shorter than its page count"));
    }
    Ok(())
}

/// The volatile contents of the `kept` in-flight sectors of `point`, as patches of an image of
/// `len` bytes.
fn sector_patches<'p>(
    point: &'p CrashPoint,
    sector_size: SectorSize,
    kept: &[u64],
    len: usize,
) -> Vec<(usize, &'p [u8])> {
    kept.iter()
        .filter_map(|&sector| {
            let start = (sector * sector_size.bytes()) as usize;
            let bytes = point.volatile_sector(sector_size, sector)?;
            (start < len).then(|| (start, &bytes[..bytes.len().min(len - start)]))
        })
        .collect()
}

/// Bytes a recovery wrote, per sync in order: (range, bytes after recovery).
type Repairs = Vec<Vec<(Range<u64>, Vec<u8>)>>;

/// A reusable crash image: `pristine`, plus patches applied for one state and reverted after it,
/// so a crash state costs what it touches rather than the size of the file.
struct Bench {
    pristine: Vec<u8>,
    work: Vec<u8>,
}

impl Bench {
    fn new(pristine: Vec<u8>) -> Bench {
        Bench {
            work: pristine.clone(),
            pristine,
        }
    }

    fn len(&self) -> usize {
        self.pristine.len()
    }

    /// True if `bytes` differ from what the image holds at `start` with `patches` applied.
    fn differs_from_patched(&self, start: usize, bytes: &[u8], patches: &[(usize, &[u8])]) -> bool {
        let mut before = self.pristine[start..start + bytes.len()].to_vec();
        for &(offset, patch) in patches {
            let (lo, hi) = (
                offset.max(start),
                (offset + patch.len()).min(start + bytes.len()),
            );
            if lo < hi {
                before[lo - start..hi - start].copy_from_slice(&patch[lo - offset..hi - offset]);
            }
        }
        before != bytes
    }

    /// Applies `patches`, opens the image (recovery included), calls `inspect`, and restores the
    /// pristine image. With `capture`, also returns what recovery wrote, per sync.
    fn open_patched<const P: usize, R>(
        &mut self,
        patches: &[(usize, &[u8])],
        capture: bool,
        inspect: impl FnOnce(Result<&Pager<P, SimStorage>, &MappedPageError>) -> R,
    ) -> (R, Option<Repairs>) {
        let mut work = std::mem::take(&mut self.work);
        for &(offset, bytes) in patches {
            work[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        let storage = SimStorage::from_image_untracked(work);
        let (result, storage) = match Pager::<P, SimStorage>::try_open_in(storage) {
            Ok(pager) => {
                let result = inspect(Ok(&pager));
                (result, pager.into_storage())
            }
            Err((error, storage)) => (inspect(Err(&error)), storage),
        };
        let synced = storage.sync_log();
        let mut work = storage.into_image();
        assert_eq!(
            work.len(),
            self.pristine.len(),
            "recovery never changes the length"
        );
        let repairs = (capture && !synced.is_empty()).then(|| {
            synced
                .iter()
                .map(|ranges| {
                    ranges
                        .iter()
                        .map(|r| (r.clone(), work[r.start as usize..r.end as usize].to_vec()))
                        .collect()
                })
                .collect()
        });
        for &(offset, bytes) in patches {
            let range = offset..offset + bytes.len();
            work[range.clone()].copy_from_slice(&self.pristine[range]);
        }
        for range in synced.iter().flatten() {
            let range = range.start as usize..range.end as usize;
            work[range.clone()].copy_from_slice(&self.pristine[range]);
        }
        self.work = work;
        (result, repairs)
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
        None => units.par_iter().enumerate().for_each(evaluate),
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

/// [`replay`] found no state of the workload matching the case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotEvaluated {
    /// Workload name.
    pub workload: String,
    /// The case.
    pub case: Case,
}

impl std::fmt::Display for NotEvaluated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let case = serde_json::to_string(&self.case).map_err(|_| std::fmt::Error)?;
        write!(
            f,
            "{} has no crash state {case}, nothing was checked (a sync, growth, recovery sync or \
             continuation sync out of range, a failure or damage before the create completed, a \
             sector size not explored, a recovery that writes nothing, a chain whose root holds \
             no file, a page and byte the media phase does not damage, or damage after a crash \
             whose recovery took the acknowledged commit and that is no chain root)",
            self.workload
        )
    }
}

impl std::error::Error for NotEvaluated {}
