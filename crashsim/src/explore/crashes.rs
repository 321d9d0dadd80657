//! The crashes phase: every sync point, every enumerated subset of its in-flight sectors, at
//! each sector size and file length; recover and judge (INV-1..5).

use std::collections::HashSet;

use mappedpages::{CrashPoint, SectorSize};

use super::bench::{Bench, sector_patches};
use super::case::{Case, Length};
use super::chains::chain_root_keeps_all;
use super::crash_media::Composition;
use super::judge::{allowed_at, guarded, judge_matched};
use super::{CleanRun, Explorer};
use crate::subsets::subsets;
use crate::{Matched, Scenario};

impl<const P: usize, W: Scenario<P>> Explorer<'_, P, W> {
    pub(super) fn crash_point(&self, order: usize, run: &CleanRun<W::Model>, sync: u64) {
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
                let mut bench =
                    Bench::new(|| snapshot.crash_image(sector_size, &[], length.into()));
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

    /// One crash state on `bench`: patch the in-flight sectors `kept`, recover, judge; then,
    /// with `composition` (the crash-media phase), damage the recovered image; then, if recovery
    /// wrote anything, crash at each of its syncs and recover again (INV-6).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn crash_state(
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
        self.recovery_crashes(order, bench, &patches, &repairs, &reference, case);
    }
}
