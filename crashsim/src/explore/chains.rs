//! The chains phase: crash, recover, continue the workload, crash again (INV-6).

use mappedpages::{CrashLength, Pager, SectorSize, SimStorage};

use super::bench::{Bench, sector_patches};
use super::case::{Case, Length};
use super::judge::{allowed_at, guarded, judge, open_and_judge};
use super::{CleanRun, Explorer};
use crate::subsets::subsets;
use crate::{Finding, Invariant, Recorder, Scenario};

/// Whether the chain phase's root at `sync` keeps every in-flight sector (else none): none at
/// syncs 0, 1, 4, 5, 8, 9, …, all at 2, 3, 6, 7, … (see [`Explorer::chain`]).
pub(super) fn chain_root_keeps_all(sync: u64) -> bool {
    sync / 2 % 2 == 1
}

impl<const P: usize, W: Scenario<P>> Explorer<'_, P, W> {
    pub(super) fn chain(&self, order: usize, run: &CleanRun<W::Model>, sync: u64) {
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
                    Finding::new(
                        Invariant::Restartable,
                        format!("second open after recovery fails: {e}"),
                    )
                })?;
                pager.set_commit_mode(self.scenario.commit_mode());
                let mut rec = Recorder::new();
                rec.ack(&pager, model.clone());
                let pager = self.scenario.resume(pager, &mut rec, &model)?;
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
                    let mut bench = Bench::new(|| {
                        second.crash_image(SectorSize::S512, &[], second_length.into())
                    });
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
}
