//! The recovery-crashes phase: a crash during recovery's own writes, then recovery again
//! (INV-6).

use super::Explorer;
use super::bench::{Bench, Repairs};
use super::case::Case;
use super::judge::guarded;
use crate::subsets::subsets;
use crate::{Finding, Invariant, Scenario};

impl<const P: usize, W: Scenario<P>> Explorer<'_, P, W> {
    /// The recovery-crashes phase at one crash state `case` (a [`Case::Crash`]), whose recovery
    /// wrote `repairs` (its syncs in order, with the bytes each left) over `bench` with the
    /// crash's `patches` and found `reference` (its allocated pages): a crash before each of the
    /// recovery's syncs, keeping a subset of that sync's sectors, then recovery again, must open
    /// and find the same pages (INV-6).
    pub(super) fn recovery_crashes(
        &self,
        order: usize,
        bench: &mut Bench,
        patches: &[(usize, &[u8])],
        repairs: &Repairs,
        reference: &[u64],
        case: &Case,
    ) {
        let Some((sync, sector, length, kept)) = case.as_crash() else {
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
                    if bench.differs_from_patched(start, chunk, patches) {
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
                let mut layered = patches.to_vec();
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
                            Invariant::Restartable,
                            format!(
                                "recovery interrupted at its sync {index} leaves an image that does not open: {error}"
                            ),
                        )),
                        Ok(pages) if pages != reference => Err(Finding::new(
                            Invariant::Restartable,
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
}
