//! Recovery (SPEC.md §4): decide, from a file image alone, which committed state it holds and
//! which repairs make the image unambiguous again, then make them.
//!
//! [`recover`] reads as SPEC.md §4: decode the candidates (the superblock and both metadata
//! copies), run the decision table of §4.2 ([`table`], one function per row, pure over a
//! [`table::Loader`]), load copies as §4.1 says ([`load`], one function per step), and plan the
//! repairs of §4.3 ([`repair`], which also makes them: [`repair::apply`]). Why a copy was
//! passed over is a [`rejection::Rejection`], whose text is `CorruptMetadata`'s detail.

mod load;
pub(crate) mod rejection;
pub(crate) mod repair;
pub(crate) mod table;

use std::ops::Range;

use crate::error::MappedPageError;
use crate::format::{
    DecodeError, Geometry, MAX_PAGE_SIZE, META_FLAG_GROUP_TABLE, MIN_PAGE_COUNT, MIN_PAGE_SIZE,
    MetaPage, MetaSlot, PageKind, Reason, Superblock, sealed_meta_flags,
};
use crate::mutants::{Mutant, active};
use crate::state::AllocState;
use rejection::LoadRejection;
use table::{Candidates, Loader};

/// Which row of the recovery table (SPEC.md §4.2) decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryDecision {
    /// The superblock is valid and the copy it names is valid and matches it.
    Superblock,
    /// The copy the superblock names is unusable, but the other copy holds the next generation
    /// (the commit that was in flight) and is complete.
    NextGenerationAfterCorruptSelected,
    /// The superblock is unusable; the newest complete copy was taken.
    NewestAfterCorruptSuperblock,
    /// A copy written by a single-sync commit ([`crate::CommitMode::SingleSync`]), newer than
    /// the superblock's generation, loaded completely and was taken.
    NewerSingleSyncCommit,
}

/// The outcome of recovery: the state to use and the repairs to make before using it.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) state: AllocState,
    /// Pages whose first [`crate::format::SCRUB_BYTES`] bytes must be zeroed: valid metadata or
    /// slot pages from a commit newer than the chosen one, which never became durable as a whole.
    pub(crate) scrub_pages: Vec<u64>,
    /// Directory mirror pages to restore (SPEC.md §4.3 step 3): the chosen state's current slot
    /// of a block lies intact on one mirror page only (a single-sync commit interrupted by a
    /// crash or a failed sync after that mirror arrived, or media damage to the other); copy it,
    /// byte for byte, over the other mirror.
    pub(crate) mirror_repairs: Vec<MirrorRepair>,
    /// The superblock to write if the one on disk does not name the chosen copy.
    pub(crate) superblock_rewrite: Option<Superblock>,
    pub(crate) decision: RecoveryDecision,
}

/// One directory mirror to restore: copy page `from` (the intact mirror of a block's current
/// slot) over page `to` (the other mirror of that slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MirrorRepair {
    pub(crate) from: u64,
    pub(crate) to: u64,
}

fn page(image: &[u8], geometry: Geometry, page: u64) -> Option<&[u8]> {
    let start = usize::try_from(geometry.offset(page)).ok()?;
    let end = start.checked_add(geometry.page_size() as usize)?;
    image.get(start..end)
}

/// Slot pages named to `prefetch` per call.
const PREFETCH_BATCH: usize = 1024;

/// Recovers the state held by `image` for page size `geometry`, and plans its repairs. Before it
/// reads the first slot page it names every one it may read to `prefetch` (in batches, group
/// order), so that a storage can start fetching them all ([`crate::Storage::prefetch`]).
pub(crate) fn recover(
    image: &[u8],
    geometry: Geometry,
    mut prefetch: impl FnMut(&[Range<u64>]),
) -> Result<Recovered, MappedPageError> {
    let candidates = decode_candidates(image, geometry)?;
    let geometry = candidates.geometry;
    let mut ranges = slot_page_ranges(&candidates, geometry, image.len() as u64).peekable();
    while ranges.peek().is_some() {
        let batch: Vec<Range<u64>> = ranges.by_ref().take(PREFETCH_BATCH).collect();
        prefetch(&batch);
    }
    recover_decoded(&candidates, image)
}

/// [`recover`], from candidates already decoded (for [`crate::verify`], which reports them too).
pub(crate) fn recover_decoded(
    candidates: &Candidates,
    image: &[u8],
) -> Result<Recovered, MappedPageError> {
    let geometry = candidates.geometry;
    let chosen = table::decide(candidates, &mut ImageLoader { image, geometry })?;
    let mut state = chosen.state;
    // A damaged superblock is rewritten at the version this build writes for the file's
    // layout (§4.3 step 2).
    state.set_format_version(
        candidates
            .superblock
            .as_ref()
            .map_or(geometry.format_version(), |sb| sb.version),
    );
    assert_eq!(
        state.active_meta(),
        chosen.slot,
        "the state names the chosen copy"
    );
    assert!(
        candidates
            .meta(chosen.slot)
            .as_ref()
            .is_ok_and(|meta| meta.generation == state.generation()),
        "the state holds the chosen copy's generation {}",
        state.generation()
    );
    let scrub_pages = if active(Mutant::SkipScrub) {
        Vec::new()
    } else {
        repair::future_pages(image, geometry, &state, candidates)
    };
    let mirror_repairs = if active(Mutant::SkipMirrorRepair) {
        Vec::new()
    } else {
        repair::lone_mirrors(image, geometry, &state)
    };
    let superblock_rewrite = repair::superblock_rewrite(candidates, geometry, &state);
    Ok(Recovered {
        state,
        scrub_pages,
        mirror_repairs,
        superblock_rewrite,
        decision: chosen.decision,
    })
}

/// Loads copy `slot` (`meta`, decoded from it) as SPEC.md §4.1 says, outside the decision table:
/// for a rollback's plan, which compares the damaged copy's state with the older one's.
pub(crate) fn load_copy(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    slot: MetaSlot,
) -> Result<AllocState, String> {
    load::load_copy(image, geometry, meta, slot, table::LoadChecks::ALL)
        .map_err(|why| why.to_string())
}

/// The byte ranges of the slot pages recovery may read (SPEC.md §4.1 step 2, §4.3 step 1), in
/// page order, those inside the image only: formats 1 and 2, both slots of every group
/// materialized by a well-formed copy; format 3, both slots of every table page of those groups
/// and of the groups step 3 loads that the copies name (each copy's last group, the groups its
/// log touches).
fn slot_page_ranges(
    candidates: &Candidates,
    geometry: Geometry,
    len_bytes: u64,
) -> Box<dyn Iterator<Item = Range<u64>>> {
    let materialized = candidates
        .metas
        .iter()
        .filter_map(|meta| meta.as_ref().ok().map(|m| m.materialized_groups))
        .max()
        .unwrap_or(0);
    let page_size = geometry.page_size();
    let page_range = move |page: u64| {
        let start = geometry.offset(page);
        start..start + page_size
    };
    if geometry.has_group_table() {
        let mut pages: Vec<u64> = (0..geometry.table_page_count(materialized))
            .flat_map(|t| [0, 1].map(|slot| geometry.table_slot_page(t, slot)))
            .collect();
        // Both slots of the groups §4.1 step 3 loads whatever the table says (the others it
        // loads are known from the table only, and are few).
        for meta in candidates
            .metas
            .iter()
            .filter_map(|meta| meta.as_ref().ok())
        {
            for group in load::step3_groups_the_copy_names(geometry, meta) {
                pages.extend([0, 1].map(|slot| geometry.slot_page(group, slot)));
            }
        }
        pages.sort_unstable();
        pages.dedup();
        // An extent's pages are contiguous, as are a group's two slots: one range per run.
        let mut ranges: Vec<Range<u64>> = Vec::new();
        for range in pages
            .into_iter()
            .map(page_range)
            .filter(|r| r.end <= len_bytes)
        {
            match ranges.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => ranges.push(range),
            }
        }
        return Box::new(ranges.into_iter());
    }
    Box::new(
        (0..materialized)
            .map(move |group| geometry.slot_page(group, 0))
            // The two slots of a group are adjacent pages.
            .map(move |page| geometry.offset(page)..geometry.offset(page) + 2 * page_size)
            .take_while(move |range| range.end <= len_bytes),
    )
}

/// Decodes the superblock and both metadata copies, after the checks that come before the
/// table (SPEC.md §4.2): rows 1–2, the file length, a copy of another page size.
pub(crate) fn decode_candidates(
    image: &[u8],
    geometry: Geometry,
) -> Result<Candidates, MappedPageError> {
    let page_size = geometry.page_size();
    let superblock = Superblock::decode(image);
    table::rows_1_2_superblock_format(&superblock, page_size)?;
    let geometry = file_geometry(image, geometry, &superblock);
    // The smallest file of any format this build reads (format 3's smallest has 8 pages; a
    // shorter one fails at step 1, `N · P ≤` the file's length).
    let min_len_bytes = MIN_PAGE_COUNT * page_size;
    if (image.len() as u64) < min_len_bytes {
        return Err(MappedPageError::FileTooSmall {
            len_bytes: image.len() as u64,
            min_len_bytes,
        });
    }
    let decode = |slot: MetaSlot| {
        let bytes = page(image, geometry, slot.page())
            .ok_or(DecodeError::new(PageKind::Meta, Reason::Truncated))?;
        if active(Mutant::TrustBadChecksum) {
            MetaPage::decode_ignoring_checksum(bytes, geometry)
        } else {
            MetaPage::decode(bytes, geometry)
        }
    };
    let metas = [decode(MetaSlot::A), decode(MetaSlot::B)];
    table::copies_page_size(&metas, page_size)?;
    let checksum =
        |slot: MetaSlot| page(image, geometry, slot.page()).and_then(MetaPage::checksum_field);
    Ok(Candidates {
        superblock,
        metas,
        checksums: [checksum(MetaSlot::A), checksum(MetaSlot::B)],
        page_size,
        geometry,
    })
}

/// The geometry of the file's format: the superblock's version, or, when the superblock is
/// unusable, format 3 if a sealed metadata copy carries the group table flag (every copy of a
/// format-3 file does, and no other).
fn file_geometry(
    image: &[u8],
    geometry: Geometry,
    superblock: &Result<Superblock, DecodeError>,
) -> Geometry {
    let page_size = geometry.page_size() as usize;
    if let Ok(superblock) = superblock {
        return Geometry::for_version(page_size, superblock.version);
    }
    let flagged = [MetaSlot::A, MetaSlot::B].into_iter().any(|slot| {
        page(image, geometry, slot.page())
            .and_then(|bytes| sealed_meta_flags(bytes, page_size))
            .is_some_and(|flags| flags & META_FLAG_GROUP_TABLE != 0)
    });
    Geometry::for_version(page_size, if flagged { 3 } else { 2 })
}

/// Loads copies from the image (SPEC.md §4.1).
struct ImageLoader<'a> {
    image: &'a [u8],
    geometry: Geometry,
}

impl Loader for ImageLoader<'_> {
    type State = AllocState;

    fn load(
        &mut self,
        slot: MetaSlot,
        meta: &MetaPage,
        checks: table::LoadChecks,
    ) -> Result<AllocState, LoadRejection> {
        load::load_copy(self.image, self.geometry, meta, slot, checks)
    }

    /// Looks for a metadata copy written with another page size, to report a mismatch instead
    /// of "not a mappedpages file" when page 0 is unreadable.
    fn other_page_size(&self) -> Option<u64> {
        probe_meta_page_size(self.image, Some(self.geometry.page_size()))
    }
}

/// The page size of the first supported size (smallest first, `except` skipped) at which one of
/// the metadata copies decodes, if any.
fn probe_meta_page_size(image: &[u8], except: Option<u64>) -> Option<u64> {
    let mut size = MIN_PAGE_SIZE;
    while size <= MAX_PAGE_SIZE {
        if Some(size as u64) != except {
            for other in [Geometry::new(size), Geometry::with_group_table(size)] {
                for slot in [MetaSlot::A, MetaSlot::B] {
                    if let Some(bytes) = page(image, other, slot.page())
                        && MetaPage::decode(bytes, other).is_ok()
                    {
                        return Some(size as u64);
                    }
                }
            }
        }
        size *= 2;
    }
    None
}

/// The page size `image` was written with (SPEC.md §4.7): the one a valid superblock records;
/// when the superblock does not decode, the one at which a metadata copy decodes (as the
/// decision table's row 8 probes). `NotAMappedPagesFile` when neither says,
/// `UnsupportedVersion` for a superblock of another format version.
pub(crate) fn detect_page_size(image: &[u8]) -> Result<usize, MappedPageError> {
    let size = match Superblock::decode(image) {
        Ok(superblock) => superblock.page_size,
        Err(DecodeError {
            reason: Reason::UnsupportedVersion(found),
            ..
        }) => return Err(MappedPageError::UnsupportedVersion { found }),
        Err(_) => probe_meta_page_size(image, None).ok_or(MappedPageError::NotAMappedPagesFile)?,
    };
    // A decoded superblock's page size is a power of two in the supported range.
    usize::try_from(size).map_err(|_| MappedPageError::NotAMappedPagesFile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pager, SimStorage};

    /// The page size a file was written with, from its superblock or, when that is damaged,
    /// from a metadata copy; a file of zeros is not one of ours.
    #[test]
    fn detect_page_size_reads_the_superblock_then_the_copies() {
        let pager = Pager::<2048, SimStorage>::create_in(SimStorage::new()).unwrap();
        let mut image = pager.into_storage().durable_image();
        assert_eq!(detect_page_size(&image).unwrap(), 2048);
        image[..64].fill(0xEE);
        assert_eq!(detect_page_size(&image).unwrap(), 2048);
        assert!(matches!(
            detect_page_size(&vec![0; 6 * 2048]),
            Err(MappedPageError::NotAMappedPagesFile)
        ));
    }

    /// The durable image of a file of `version` with `groups` groups materialized, followed by a
    /// sparse tail long enough to hold further groups' slot pages (an interrupted growth leaves
    /// one), and the length of its committed part.
    fn image_with_tail(version: u32, groups: u64) -> (Vec<u8>, usize) {
        let per_group = Geometry::new(1024).pages_per_group() as usize;
        let mut pager =
            Pager::<1024, SimStorage>::create_in_format(SimStorage::new(), version).unwrap();
        let allocated = if groups == 1 { 10 } else { per_group + 10 };
        drop(pager.alloc_bulk(allocated).unwrap());
        let mut image = pager.into_storage().durable_image();
        let committed_len = image.len();
        let tail_pages = if cfg!(miri) { 64 } else { 5 * per_group };
        image.resize(committed_len + tail_pages * 1024, 0);
        (image, committed_len)
    }

    /// The slot pages recovery names before reading, format 2: both slots of every
    /// materialized group, none of the groups a sparse tail past the committed pages would hold.
    /// (Under Miri one group and a short tail: a second group needs a file of 8 MiB.)
    #[test]
    fn prefetch_names_the_materialized_groups_only() {
        let geometry = Geometry::new(1024);
        let groups: u64 = if cfg!(miri) { 1 } else { 2 };
        let (image, committed_len) = image_with_tail(2, groups);
        let mut named = Vec::new();
        let recovered =
            recover(&image, geometry, |ranges| named.extend_from_slice(ranges)).unwrap();
        assert_eq!(recovered.state.materialized_groups(), groups);
        let slots = |group| {
            let start = geometry.offset(geometry.slot_page(group, 0));
            start..start + 2048
        };
        assert_eq!(named, (0..groups).map(slots).collect::<Vec<_>>());
        assert!(named.iter().all(|range| range.end <= committed_len as u64));
    }

    /// Format 3 names the two slots of each table page instead (pages 5 and 6 for table page
    /// 0), and both slots of the groups §4.1 step 3 loads that the copies name: the last one
    /// and those the log touches.
    #[test]
    fn prefetch_names_the_table_pages_in_format_3() {
        let geometry = Geometry::with_group_table(1024);
        let groups: u64 = if cfg!(miri) { 1 } else { 2 };
        let (image, _) = image_with_tail(3, groups);
        let mut named = Vec::new();
        let recovered =
            recover(&image, geometry, |ranges| named.extend_from_slice(ranges)).unwrap();
        assert_eq!(recovered.state.materialized_groups(), groups);
        // Group 0's slots (pages 3 and 4: the allocation is in its log) and table page 0's
        // (5 and 6) in one range; with two groups, the last one's slots.
        let mut expected = vec![3 * 1024..7 * 1024];
        if groups == 2 {
            let start = geometry.offset(geometry.slot_page(1, 0));
            expected.push(start..start + 2048);
        }
        assert_eq!(named, expected);
    }
}
