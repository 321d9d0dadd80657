//! The failed-syncs phase: each sync fails in turn; the pager must poison and lose nothing
//! acknowledged (INV-7).

use mappedpages::{FailedSyncKeeps, SectorSize, SimStorage};

use super::case::{Case, Keeps, Length};
use super::judge::{allowed_at, guarded, open_and_judge};
use super::{CleanRun, Explorer};
use crate::subsets::splitmix64;
use crate::{Finding, Invariant, Scenario};

impl<const P: usize, W: Scenario<P>> Explorer<'_, P, W> {
    /// Sync `sync` fails. One run keeps none of its sectors; what it did not write is recorded
    /// (`SimStorage::lost_writes`), so the runs that keep all or a seeded subset are the same
    /// run's images plus those sectors (the pager's memory and later writes do not depend on
    /// what reached the disk).
    pub(super) fn failed_sync(&self, order: usize, clean: &CleanRun<W::Model>, sync: u64) {
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
                            .map_err(|f| {
                                Finding::new(
                                    Invariant::Failures,
                                    format!("after failed sync {sync}: {f}"),
                                )
                            })
                    });
                    if let Err(finding) = result {
                        self.report(order, case, finding);
                    }
                }
            }
        }
    }
}
