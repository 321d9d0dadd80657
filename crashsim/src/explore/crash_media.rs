//! The crash-media phase: the media phase's damages to the image recovery left after a crash
//! (INV-13, INV-8).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hasher};
use std::ops::Range;

use mappedpages::{SimStorage, Storage};

use super::Explorer;
use super::bench::{Bench, Repairs};
use super::case::Case;
use super::judge::guarded;
use super::media::{MediaDamage, damage_finding, damage_patch, judge_damaged, media_damages};
use crate::Scenario;

/// What the crash-media phase needs at one sync.
pub(super) struct Composition {
    /// The in-flight sectors of the largest sector size, as byte ranges: with recovery's writes,
    /// the only bytes in which the recovered images of this sync's crash states of one file
    /// length can differ.
    pub(super) key_ranges: Vec<Range<u64>>,
    /// The kept sectors of the chain phase's root at this sync, if the root is a state of the
    /// bench being explored (512-byte sectors, current length).
    pub(super) chain_root: Option<Vec<u64>>,
    /// Keys of the recovered images already damaged ([`Composition::damages`]).
    pub(super) seen: HashSet<u64>,
}

impl Composition {
    /// The damages to do to the image `storage` holds after recovery, with the patch of each
    /// (start, bytes); none if an identical recovered image of this sync was damaged already.
    /// The image's length, the bytes of [`key_ranges`](Self::key_ranges), and the ranges
    /// recovery synced with their bytes identify it.
    pub(super) fn damages<const P: usize>(
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

impl<const P: usize, W: Scenario<P>> Explorer<'_, P, W> {
    /// The crash-media phase on one recovered crash state: the image recovery left (`bench`
    /// with the crash's `patches` and the `repairs` recovery synced) damaged by each of
    /// `damages` in turn, and opened. It must hold `recovered`, the state the crash recovered,
    /// which the recovery made the committed one (its superblock names it, nothing newer is
    /// left): for a redundant page that state exactly (INV-13), elsewhere that state or a typed
    /// error (INV-8).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn damage_recovered(
        &self,
        order: usize,
        bench: &mut Bench,
        patches: &[(usize, &[u8])],
        repairs: Option<&Repairs>,
        case: &Case,
        recovered: &W::Model,
        damages: &[(MediaDamage, usize, Vec<u8>)],
    ) {
        let Some((sync, sector, length, kept)) = case.as_crash() else {
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
}
