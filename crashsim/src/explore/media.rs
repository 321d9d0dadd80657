//! The media phase: one page of the durable image damaged before each sync (INV-8, INV-13);
//! also the damages and the verdict the crash-media phase reuses.

use mappedpages::format::{DIRECTORY_MAGIC, Geometry};
use mappedpages::{CommitMode, MappedPageError, Pager, SimStorage};

use super::bench::Bench;
use super::case::Case;
use super::judge::{allowed_at, check_well_formed, guarded};
use super::{CleanRun, Explorer};
use crate::{Allowed, Finding, Invariant, Recovered, Scenario};

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
/// order it does them: the superblock, both metadata copies, every bitmap slot page, every group
/// table slot page (format 3) and every directory slot page (each page that starts with the directory magic), each at a few fields,
/// with a bit flipped at each field and the sector of the first field zeroed.
pub fn media_damages<const P: usize>(image: &[u8]) -> Vec<MediaDamage> {
    let geometry = Geometry::with_group_table(P);
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
    // Format 3's group table pages (both slots of every table page of the groups in the file):
    // generation, page index, entry 0's generation and checksum, entry 1's slot and free count.
    for table_page in 0..geometry.table_page_count(group) {
        for slot in 0..2 {
            let page = geometry.table_slot_page(table_page, slot);
            if page < file_pages {
                targets.push((page, &[16, 24, 32, 40, 60], false));
            }
        }
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

/// The patch that does `damage` to `image`: (start, bytes); `None` past the end.
pub(super) fn damage_patch<const P: usize>(
    image: &[u8],
    damage: &MediaDamage,
) -> Option<(usize, Vec<u8>)> {
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
pub(super) fn judge_damaged<const P: usize, W: Scenario<P>>(
    scenario: &W,
    opened: Result<&Pager<P, SimStorage>, &MappedPageError>,
    redundant: bool,
    acknowledged: &W::Model,
    in_flight: Option<&W::Model>,
    rolled_back: Option<&W::Model>,
) -> Result<(), Finding> {
    match opened {
        Err(error) if redundant => Err(Finding::new(
            Invariant::RedundantDirectory,
            format!("the file does not open: {error}"),
        )),
        Err(_) => Ok(()),
        // A damaged bitmap slot found when its group is first used (format 3, SPEC.md §4.9): a
        // typed error, like one from open.
        Ok(pager)
            if !redundant
                && matches!(
                    pager.check_bitmaps(),
                    Err(MappedPageError::CorruptGroupSlot { .. })
                ) =>
        {
            Ok(())
        }
        Ok(pager) => {
            check_well_formed(pager)?;
            let recovered = Recovered::new(pager, scenario.commit_mode());
            let verdict = scenario.check(
                &recovered,
                &Allowed {
                    acknowledged,
                    in_flight,
                },
            );
            match (verdict, rolled_back) {
                // The commit rolled back, but not what was written since outside commits (regular
                // page contents, `sync_page`): the latest model stands in for those.
                (Err(_), Some(previous)) => scenario
                    .check(
                        &recovered,
                        &Allowed {
                            acknowledged: previous,
                            in_flight: Some(acknowledged),
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
pub(super) fn damage_finding(damage: &MediaDamage, finding: Finding, when: &str) -> Finding {
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
        Finding::new(
            Invariant::RedundantDirectory,
            format!("{when}{what}: {finding}"),
        )
    } else {
        Finding::new(
            Invariant::MediaCorruption,
            format!("{when}corrupt {what} accepted: {finding}"),
        )
    }
}

/// The model of the commit before the last one acknowledged at `sync`: the last acknowledged
/// model of a lower generation, when the generations are known (an acknowledgement that did not
/// commit, such as a `sync_page`, keeps the generation); otherwise the last one recorded with
/// fewer syncs.
pub(super) fn previous_commit_at<'m, M>(
    acks: &'m [(u64, M)],
    generations: &[Option<u64>],
    sync: u64,
) -> Option<&'m M> {
    let last = acks.iter().rposition(|(count, _)| *count <= sync)?;
    let earlier = acks.iter().zip(generations).take(last).rev();
    match generations.get(last).copied().flatten() {
        Some(generation) => earlier
            .into_iter()
            .find(|(_, g)| g.is_some_and(|g| g < generation))
            .map(|((_, model), _)| model),
        None => {
            let last_count = acks[last].0;
            earlier
                .into_iter()
                .find(|((count, _), _)| *count < last_count)
                .map(|((_, model), _)| model)
        }
    }
}

impl<const P: usize, W: Scenario<P>> Explorer<'_, P, W> {
    pub(super) fn media(&self, order: usize, run: &CleanRun<W::Model>, sync: u64) {
        let (acknowledged, in_flight) = allowed_at(&run.acks, sync);
        if acknowledged.is_none() {
            return; // before the create completed there is nothing to protect
        }
        // Single-sync mode (SPEC.md §3.2.1): damage to a page the last commit wrote looks like a
        // crash that interrupted it, so recovering the commit before it is allowed too.
        let rolled_back = if self.scenario.commit_mode() == CommitMode::SingleSync {
            previous_commit_at(&run.acks, &run.generations, sync)
        } else {
            None
        };
        let Some(snapshot) = run.snapshots.get(sync as usize) else {
            return;
        };
        let mut bench = Bench::new(|| snapshot.durable_image());
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
