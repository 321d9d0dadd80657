//! The repairs of SPEC.md §4.3: planned from the image and the chosen state (pure), then made
//! ([`apply`], the only recovery code that writes).

use std::ops::Range;

use super::table::Candidates;
use super::{MirrorRepair, Recovered, page};
use crate::error::{IoOperation, MappedPageError};
use crate::format::{
    Geometry, SCRUB_BYTES, Superblock, decode_directory_slot, decode_group_slot, decode_table_page,
};
use crate::format::{directory_digest_term, generation_field, slot_checksum_field};
use crate::state::AllocState;
use crate::storage::Storage;

/// Makes the repairs `recovered` plans, in SPEC order, one barrier each: step 1 scrubs the
/// future, step 2 rewrites the superblock, step 3 restores directory mirrors.
pub(crate) fn apply<S: Storage>(
    storage: &mut S,
    geometry: Geometry,
    recovered: &Recovered,
) -> Result<(), MappedPageError> {
    step1_scrub_future(storage, geometry, &recovered.scrub_pages)?;
    step2_rewrite_superblock(storage, geometry, recovered.superblock_rewrite)?;
    step3_restore_mirrors(storage, geometry, &recovered.mirror_repairs)
}

/// Makes the repairs of steps 1 and 3 (the superblock is already the chosen one): after a
/// rollback's superblock write (SPEC.md §4.8).
pub(crate) fn apply_repairs<S: Storage>(
    storage: &mut S,
    geometry: Geometry,
    scrub_pages: &[u64],
    mirror_repairs: &[MirrorRepair],
) -> Result<(), MappedPageError> {
    step1_scrub_future(storage, geometry, scrub_pages)?;
    step3_restore_mirrors(storage, geometry, mirror_repairs)
}

/// Writes `superblock` into page 0 and runs one barrier over it: the one write of a rollback
/// that changes recovery's decision (SPEC.md §4.8).
pub(crate) fn write_superblock<S: Storage>(
    storage: &mut S,
    geometry: Geometry,
    superblock: Superblock,
) -> Result<(), MappedPageError> {
    step2_rewrite_superblock(storage, geometry, Some(superblock))
}

/// The repairs `recovered` plans, in the order [`apply`] makes them, as reported to a reader
/// that makes none of them ([`crate::ReadOnlyPager::planned_repairs`]).
pub(crate) fn planned(recovered: &Recovered) -> Vec<crate::Repair> {
    let scrubs = recovered
        .scrub_pages
        .iter()
        .map(|&page| crate::Repair::ScrubPage { page });
    let superblock = recovered
        .superblock_rewrite
        .map(|_| crate::Repair::RewriteSuperblock);
    let mirrors = recovered
        .mirror_repairs
        .iter()
        .map(|m| crate::Repair::RestoreMirror {
            from: m.from,
            to: m.to,
        });
    scrubs.chain(superblock).chain(mirrors).collect()
}

fn sync<S: Storage>(storage: &mut S, ranges: &[Range<u64>]) -> Result<(), MappedPageError> {
    storage
        .sync_ranges(ranges)
        .map_err(|e| MappedPageError::io(IoOperation::Sync, storage.path(), e))
}

/// Step 1: zeroes the first [`SCRUB_BYTES`] bytes (magic and checksum) of every page of the
/// future; one barrier.
fn step1_scrub_future<S: Storage>(
    storage: &mut S,
    geometry: Geometry,
    pages: &[u64],
) -> Result<(), MappedPageError> {
    if pages.is_empty() {
        return Ok(());
    }
    let mut ranges: Vec<Range<u64>> = Vec::with_capacity(pages.len());
    for &page in pages {
        let start = geometry.offset(page);
        storage.bytes_mut()[start as usize..start as usize + SCRUB_BYTES].fill(0);
        ranges.push(start..start + geometry.page_size());
    }
    sync(storage, &ranges)
}

/// Step 2: writes the superblock naming the chosen copy; barrier over page 0.
fn step2_rewrite_superblock<S: Storage>(
    storage: &mut S,
    geometry: Geometry,
    superblock: Option<Superblock>,
) -> Result<(), MappedPageError> {
    let Some(superblock) = superblock else {
        return Ok(());
    };
    let record = superblock.encode();
    storage.bytes_mut()[..record.len()].copy_from_slice(&record);
    sync(storage, &[0..geometry.page_size()])
}

/// Step 3: copies each intact mirror, all P bytes, over the other; one barrier.
fn step3_restore_mirrors<S: Storage>(
    storage: &mut S,
    geometry: Geometry,
    repairs: &[MirrorRepair],
) -> Result<(), MappedPageError> {
    if repairs.is_empty() {
        return Ok(());
    }
    let page_size = geometry.page_size();
    let mut ranges: Vec<Range<u64>> = Vec::with_capacity(repairs.len());
    for repair in repairs {
        let (from, to) = (geometry.offset(repair.from), geometry.offset(repair.to));
        storage
            .bytes_mut()
            .copy_within(from as usize..(from + page_size) as usize, to as usize);
        ranges.push(to..to + page_size);
    }
    sync(storage, &ranges)
}

/// Step 2's plan: the superblock naming the chosen copy, if the one on disk does not.
pub(super) fn superblock_rewrite(
    candidates: &Candidates,
    geometry: Geometry,
    state: &AllocState,
) -> Option<Superblock> {
    let wanted = Superblock {
        version: state.format_version(),
        page_size: geometry.page_size(),
        active_meta: state.active_meta(),
        active_generation: state.generation(),
        active_meta_checksum: candidates
            .checksum(state.active_meta())
            .expect("a loaded metadata copy lies inside the image"),
    };
    (candidates.superblock.as_ref().ok() != Some(&wanted)).then_some(wanted)
}

/// Step 3's plan: the blocks of the chosen state's directory whose current slot is intact on
/// one mirror page only, as repairs that copy it over the other mirror. The two mirrors of a
/// committed slot hold the same bytes, so a mirror that differs is missing (never written, or
/// torn: a single-sync commit whose barrier did not complete, §3.2.1) or damaged; either way it
/// is not the slot the state uses, which loading (§4.1 step 6) proved intact on the other page.
pub(super) fn lone_mirrors(
    image: &[u8],
    geometry: Geometry,
    state: &AllocState,
) -> Vec<MirrorRepair> {
    let mut repairs = Vec::new();
    for (block_index, block) in state.directory.blocks.iter().enumerate() {
        let slot = block
            .current_slot
            .expect("a loaded directory block has a current slot");
        let [x, y] = block.slot_pages(slot);
        let (Some(x_bytes), Some(y_bytes)) = (page(image, geometry, x), page(image, geometry, y))
        else {
            panic!("the loaded directory block {block_index} lies inside the image");
        };
        if x_bytes == y_bytes {
            continue;
        }
        // The intact mirror is the one whose slot is the block's committed term.
        let is_current = |bytes: &[u8]| {
            decode_directory_slot(bytes, geometry, block_index as u64, state.page_count).is_ok_and(
                |decoded| {
                    slot_checksum_field(bytes).is_some_and(|checksum| {
                        directory_digest_term(block_index as u64, decoded.generation, checksum)
                            == block.term
                    })
                },
            )
        };
        let repair = if is_current(x_bytes) {
            MirrorRepair { from: x, to: y }
        } else {
            assert!(
                is_current(y_bytes),
                "directory block {block_index}: the loader chose slot {slot}, found on neither mirror"
            );
            MirrorRepair { from: y, to: x }
        };
        repairs.push(repair);
    }
    repairs
}

/// The generation field of a bitmap or directory slot page, unchecked. A page whose field is
/// not above a generation is not a valid slot above it either, so [`future_pages`] skips the
/// decoding (and its CRC) of every such page: nearly all of them.
fn raw_generation(page: &[u8]) -> u64 {
    generation_field(page)
}

/// Step 1's plan: valid metadata and slot pages whose generation is above the chosen state's:
/// leftovers of a commit that never became durable as a whole. Left in place, a later commit
/// that reaches their generation would pick them up as its own.
pub(super) fn future_pages(
    image: &[u8],
    geometry: Geometry,
    state: &AllocState,
    candidates: &Candidates,
) -> Vec<u64> {
    let mut pages = Vec::new();
    for (slot, meta) in [crate::format::MetaSlot::A, crate::format::MetaSlot::B]
        .into_iter()
        .map(|slot| (slot, candidates.meta(slot)))
    {
        if let Ok(meta) = meta
            && meta.generation > state.generation()
        {
            pages.push(slot.page());
        }
    }
    // Format 3 reads a group's slot only where its table entry pins it, by generation and
    // checksum, so a group slot of a commit that never completed is never taken for a current
    // one: left in place (reading both slots of every group is what format 3's open avoids).
    if geometry.has_group_table() {
        future_table_slots(image, geometry, state, candidates, &mut pages);
    } else {
        future_group_slots(image, geometry, state, candidates, &mut pages);
    }
    future_directory_slots(image, geometry, state, &mut pages);
    pages
}

/// The groups materialized by the chosen state or by a copy that decodes (a newer commit that
/// never completed materializes groups past the chosen page count): the groups whose slots, and
/// in format 3 table pages, step 1 reads.
fn materialized_anywhere(state: &AllocState, candidates: &Candidates) -> u64 {
    candidates
        .metas
        .iter()
        .filter_map(|meta| meta.as_ref().ok().map(|m| m.materialized_groups))
        .fold(state.materialized_groups(), u64::max)
}

/// Format 3: the slots of every table page of the groups materialized by the chosen state or by a
/// copy that decodes, above the chosen generation (docs/scale-design.md §3.2: the next commit
/// reuses generation `c + 1`, and "newest valid ≤ `c + 1`" could otherwise pick a slot of the
/// commit that never completed).
fn future_table_slots(
    image: &[u8],
    geometry: Geometry,
    state: &AllocState,
    candidates: &Candidates,
    pages: &mut Vec<u64>,
) {
    let materialized = materialized_anywhere(state, candidates);
    for table_page in 0..geometry.table_page_count(materialized) {
        for slot in 0..2u8 {
            let page_index = geometry.table_slot_page(table_page, slot);
            if let Some(bytes) = page(image, geometry, page_index)
                && raw_generation(bytes) > state.generation()
                && decode_table_page(bytes, geometry, table_page).is_ok()
            {
                pages.push(page_index);
            }
        }
    }
}

/// Every group materialized by the chosen state or by a copy that decodes (a newer commit that
/// never completed materializes groups past the chosen page count). Groups past those are not
/// read: their slot pages may be unreserved holes (SPEC.md §3.3), and a slot left there by a
/// commit whose copy did not arrive is harmless: it is in slot 0, which the commit that
/// materializes the group overwrites, and a slot digest names the slot it committed.
fn future_group_slots(
    image: &[u8],
    geometry: Geometry,
    state: &AllocState,
    candidates: &Candidates,
    pages: &mut Vec<u64>,
) {
    let materialized = materialized_anywhere(state, candidates);
    for group in 0..materialized {
        if page(image, geometry, geometry.slot_page(group, 0)).is_none() {
            break;
        }
        for slot_index in 0..2u8 {
            let page_index = geometry.slot_page(group, slot_index);
            // The generation field is read before the (costlier) decode, which then checks it
            // is a valid slot's.
            if let Some(bytes) = page(image, geometry, page_index)
                && raw_generation(bytes) > state.generation()
                && decode_group_slot(bytes, geometry, group).is_ok()
            {
                pages.push(page_index);
            }
        }
    }
}

/// The slot pages of the chosen directory's blocks above the chosen generation.
fn future_directory_slots(
    image: &[u8],
    geometry: Geometry,
    state: &AllocState,
    pages: &mut Vec<u64>,
) {
    for (block_index, block) in state.directory.blocks.iter().enumerate() {
        for page_index in block.pages {
            // No cheap `raw_generation` filter first, unlike the group slots: a directory has a
            // handful of blocks, and the decoded generation is the one that counts.
            if let Some(bytes) = page(image, geometry, page_index)
                && let Ok(slot) =
                    decode_directory_slot(bytes, geometry, block_index as u64, state.page_count)
                && slot.generation > state.generation()
            {
                pages.push(page_index);
            }
        }
    }
}
