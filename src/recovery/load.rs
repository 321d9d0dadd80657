//! Loading one well-formed metadata copy (SPEC.md §4.1): one function per step, and the
//! "newest valid slot" picker shared by bitmap groups (step 2) and directory blocks (step 6).

use std::cmp::Ordering;
use std::collections::HashSet;

use super::page;
use super::rejection::LoadRejection;
use super::table::LoadChecks;
use crate::bitmap::Bitmap;
use crate::directory::{Directory, DirectoryBlock};
use crate::format::{
    DIRECTORY_BLOCK_PAGES, Geometry, LogKind, MetaPage, MetaSlot, TableEntry,
    decode_directory_slot, decode_group_slot, decode_table_page, directory_digest_term,
    slot_bitmap_word, slot_checksum_field, slot_digest_term, table_digest_term,
};
use crate::group_loads::GroupLoads;
use crate::group_table::{GroupTable, TablePageSlot};
use crate::mutants::{Mutant, active};
use crate::state::AllocState;

/// One valid slot of a group or a directory block: where it lies among the pages of its group
/// or block, its generation and checksum field, and its decoded contents.
pub(super) struct SlotCandidate<T> {
    pub(super) position: usize,
    pub(super) generation: u64,
    pub(super) checksum: u32,
    pub(super) value: T,
}

/// The current slot among `pages` (SPEC.md §4.1 steps 2 and 6): the valid one (already decoded
/// and bounded by the copy's generation by the caller: `Ok(None)` for a page that holds none)
/// with the largest generation. Pages are read in order and lazily, so an error on a page stops
/// the walk there. Two candidates of one generation go to `tie`, which either accepts them as one
/// slot (the two mirrors of a directory slot; the first is kept) or rejects the copy.
pub(super) fn newest_valid_slot<T, E>(
    pages: impl IntoIterator<Item = Result<Option<SlotCandidate<T>>, E>>,
    tie: impl Fn(&SlotCandidate<T>, &SlotCandidate<T>) -> Result<(), E>,
) -> Result<Option<SlotCandidate<T>>, E> {
    let mut best: Option<SlotCandidate<T>> = None;
    for candidate in pages {
        let Some(candidate) = candidate? else {
            continue;
        };
        let Some(current) = &best else {
            best = Some(candidate);
            continue;
        };
        match current.generation.cmp(&candidate.generation) {
            Ordering::Equal => tie(current, &candidate)?,
            Ordering::Greater => {}
            Ordering::Less => best = Some(candidate),
        }
    }
    Ok(best)
}

/// Loads the state `meta` (found in copy `slot`) describes, or says why it does not load.
pub(super) fn load_copy(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    slot: MetaSlot,
    checks: LoadChecks,
) -> Result<AllocState, LoadRejection> {
    step1_fits_in_file(image, geometry, meta)?;
    let groups = steps2_to_4_load_groups(image, geometry, meta)?;
    let mut state = AllocState::recovered(
        geometry,
        meta,
        slot,
        groups.slots,
        groups.terms,
        groups.bitmap,
        groups.table,
        groups.loads,
    );
    if geometry.has_group_table() {
        step3_load_needed_groups(image, &mut state, meta, checks.own_folds)?;
    }
    step5_replay_log(&mut state, meta)?;
    state.directory = steps6_7_load_directory(image, geometry, meta, &mut state)?;
    if meta.single_sync && !active(Mutant::SingleSyncSkipContentCheck) {
        step8_committed_contents_arrived(image, geometry, meta.generation, &state.directory)?;
    }
    if checks.data && !active(Mutant::SkipDataCheck) {
        step9_filled_data_arrived(image, geometry, meta, &state)?;
    }
    Ok(state)
}

/// Step 1: `N · P ≤` file length.
fn step1_fits_in_file(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
) -> Result<(), LoadRejection> {
    let file_pages = image.len() as u64 / geometry.page_size();
    if meta.page_count > file_pages {
        return Err(LoadRejection::PastEndOfFile {
            claimed: meta.page_count,
            file_pages,
        });
    }
    Ok(())
}

/// The bitmap groups as steps 2–4 load them.
struct LoadedGroups {
    bitmap: Bitmap,
    slots: Vec<u8>,
    terms: Vec<u64>,
    digest: u64,
    /// Format 3's group table (empty before).
    table: GroupTable,
    /// Format 3: no group is loaded yet (formats 1 and 2: every group is).
    loads: GroupLoads,
}

/// Steps 2–4: every materialized group's current slot, loaded into the bitmap, and the chosen
/// slots checked against the copy's slot digest.
fn steps2_to_4_load_groups(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
) -> Result<LoadedGroups, LoadRejection> {
    if geometry.has_group_table() {
        return steps2_to_4_load_groups_with_table(image, geometry, meta);
    }
    let mut groups = LoadedGroups {
        bitmap: Bitmap::new(meta.page_count),
        slots: Vec::with_capacity(meta.materialized_groups as usize),
        terms: Vec::with_capacity(meta.materialized_groups as usize),
        digest: 0,
        table: GroupTable::default(),
        loads: GroupLoads::default(),
    };
    for group in 0..meta.materialized_groups {
        let current = step2_current_group_slot(image, geometry, meta, group)?;
        step3_load_group_bits(geometry, &mut groups.bitmap, group, current.value)?;
        let term = slot_digest_term(group, current.generation, current.checksum);
        groups.slots.push(current.position as u8);
        groups.terms.push(term);
        groups.digest ^= term;
    }
    if groups.digest != meta.slot_digest {
        return Err(LoadRejection::SlotDigest);
    }
    Ok(groups)
}

/// Format 3's steps 2 and 4 (SPEC.md §4.1): the current slot of every table page (the newer
/// valid one), checked against the table digest, and the slot digest from the entries. No group
/// slot is read here: step 3 ([`step3_load_needed_groups`]) loads the groups the open needs once
/// the state exists, the others load when first used (§4.9), each from the slot its entry pins;
/// the other slot of a group is never read.
fn steps2_to_4_load_groups_with_table(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
) -> Result<LoadedGroups, LoadRejection> {
    let (entries, pages) = step2_table(image, geometry, meta)?;
    let mut groups = LoadedGroups {
        bitmap: Bitmap::new(meta.page_count),
        slots: Vec::with_capacity(entries.len()),
        terms: Vec::with_capacity(entries.len()),
        digest: 0,
        table: GroupTable::default(),
        loads: GroupLoads::none_loaded(geometry, &entries),
    };
    for (group, entry) in (0..).zip(&entries) {
        let term = slot_digest_term(group, entry.generation, entry.checksum);
        groups.slots.push(entry.slot);
        groups.terms.push(term);
        groups.digest ^= term;
    }
    if groups.digest != meta.slot_digest {
        return Err(LoadRejection::SlotDigest);
    }
    groups.table = GroupTable::recovered(geometry, entries, pages);
    Ok(groups)
}

/// Format 3, step 3: the groups a copy names that open loads whatever its table says: the last
/// materialized group if the file ends inside it, and the groups its log touches (unsorted,
/// may repeat). Also what recovery names to prefetch (`slot_page_ranges`).
pub(super) fn step3_groups_the_copy_names(
    geometry: Geometry,
    meta: &MetaPage,
) -> impl Iterator<Item = u64> + '_ {
    let materialized = meta.materialized_groups;
    let last = materialized
        .checked_sub(1)
        .filter(|&last| geometry.group_start(last + 1) > meta.page_count);
    let logged = meta
        .log
        .iter()
        .map(move |entry| geometry.group_of(entry.first_page))
        .filter(move |&group| group < materialized);
    last.into_iter().chain(logged)
}

/// Format 3, step 3: loads, each from the slot its entry pins (checked against the entry), the
/// groups the open needs: with `own_folds`, those the copy's own commit folded (entry generation
/// `c`: their slots went in the copy's barrier, which a copy the superblock does not name may not
/// have completed), the last materialized group if the file ends inside it, and the groups the
/// log touches (step 5 replays the log on them). The directory's groups load in step 7.
fn step3_load_needed_groups(
    image: &[u8],
    state: &mut AllocState,
    meta: &MetaPage,
    own_folds: bool,
) -> Result<(), LoadRejection> {
    let geometry = state.geometry;
    let materialized = meta.materialized_groups;
    let mut needed: Vec<u64> = Vec::new();
    if own_folds && !active(Mutant::SkipLastCommitSlotCheck) {
        needed.extend((0..materialized).filter(|&group| {
            state
                .table
                .entry(group)
                .is_some_and(|entry| entry.generation == meta.generation)
        }));
    }
    needed.extend(step3_groups_the_copy_names(geometry, meta));
    needed.sort_unstable();
    needed.dedup();
    for group in needed {
        state
            .load_group(group, image)
            .map_err(|_| LoadRejection::PinnedSlot { group })?;
    }
    Ok(())
}

/// Format 3, step 2: every table page's current slot and the entries of groups
/// `0..materialized_groups`, with the table digest checked.
fn step2_table(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
) -> Result<(Vec<TableEntry>, Vec<TablePageSlot>), LoadRejection> {
    let per_page = geometry.table_entries_per_page();
    let mut entries = Vec::with_capacity(meta.materialized_groups as usize);
    let mut pages = Vec::new();
    let mut digest = 0;
    for table_page in 0..geometry.table_page_count(meta.materialized_groups) {
        let current = step2_current_table_slot(image, geometry, meta, table_page)?;
        let covered = (meta.materialized_groups - table_page * per_page).min(per_page);
        let fits = current.value.len() as u64 == covered
            && current
                .value
                .iter()
                .all(|e| e.generation <= meta.generation);
        if !fits {
            return Err(LoadRejection::TableEntries { table_page });
        }
        digest ^= table_digest_term(table_page, current.generation, current.checksum);
        pages.push(TablePageSlot {
            slot: current.position as u8,
            generation: current.generation,
            checksum: current.checksum,
        });
        entries.extend(current.value);
    }
    if digest != meta.table_digest {
        return Err(LoadRejection::TableDigest);
    }
    Ok((entries, pages))
}

/// Format 3, step 2: the valid slot of table page `t` with the largest generation not above
/// the copy's.
fn step2_current_table_slot(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    table_page: u64,
) -> Result<SlotCandidate<Vec<TableEntry>>, LoadRejection> {
    let candidate = |position: u8| {
        let bytes = page(
            image,
            geometry,
            geometry.table_slot_page(table_page, position),
        )
        .ok_or(LoadRejection::TablePagePastEnd { table_page })?;
        let Ok((header, entries)) = decode_table_page(bytes, geometry, table_page) else {
            return Ok(None);
        };
        if header.generation > meta.generation && !active(Mutant::IgnoreSlotGenerationBound) {
            return Ok(None);
        }
        Ok(Some(SlotCandidate {
            position: usize::from(position),
            generation: header.generation,
            checksum: slot_checksum_field(bytes).expect("a decoded page has a checksum field"),
            value: entries,
        }))
    };
    let tie = |_: &SlotCandidate<Vec<TableEntry>>, other: &SlotCandidate<Vec<TableEntry>>| {
        Err(LoadRejection::TableSlotsTie {
            table_page,
            generation: other.generation,
        })
    };
    newest_valid_slot((0..2u8).map(candidate), tie)?
        .ok_or(LoadRejection::NoTableSlot { table_page })
}

/// Step 2: the valid slot of `group` with the largest generation not above the copy's.
fn step2_current_group_slot<'a>(
    image: &'a [u8],
    geometry: Geometry,
    meta: &MetaPage,
    group: u64,
) -> Result<SlotCandidate<&'a [u8]>, LoadRejection> {
    let candidate = |position: u8| {
        let bytes = page(image, geometry, geometry.slot_page(group, position))
            .ok_or(LoadRejection::SlotPagePastEnd { group })?;
        let Ok((header, bits)) = decode_group_slot(bytes, geometry, group) else {
            return Ok(None);
        };
        if header.generation > meta.generation && !active(Mutant::IgnoreSlotGenerationBound) {
            return Ok(None);
        }
        Ok(Some(SlotCandidate {
            position: usize::from(position),
            generation: header.generation,
            checksum: slot_checksum_field(bytes).expect("a decoded slot has a checksum field"),
            value: bits,
        }))
    };
    let tie = |_: &SlotCandidate<&[u8]>, other: &SlotCandidate<&[u8]>| {
        Err(LoadRejection::GroupSlotsTie {
            group,
            generation: other.generation,
        })
    };
    newest_valid_slot((0..2u8).map(candidate), tie)?.ok_or(LoadRejection::NoGroupSlot { group })
}

/// Step 3: loads the group's words inside the file (the last one may hold bits past the end),
/// checks that the slot's words past the end of the file are zero and that the group's internal
/// pages are in use.
fn step3_load_group_bits(
    geometry: Geometry,
    bitmap: &mut Bitmap,
    group: u64,
    bits: &[u8],
) -> Result<(), LoadRejection> {
    let words_per_group = (geometry.pages_per_group() / 64) as usize;
    let first_word = group as usize * words_per_group;
    let inside = bitmap
        .word_count()
        .saturating_sub(first_word)
        .min(words_per_group);
    let loaded = bitmap.load_le_words(first_word, &bits[..inside * 8]);
    if !loaded || (inside..words_per_group).any(|index| slot_bitmap_word(bits, index) != 0) {
        return Err(LoadRejection::GroupPastEnd { group });
    }
    let internal_end = geometry.first_data_page_of_group(group);
    if !bitmap.all_one(geometry.group_start(group), internal_end) {
        return Err(LoadRejection::ReservedPagesFree { group });
    }
    Ok(())
}

/// Step 5: groups `M..` are fresh, and replaying the log in order on the bitmap is exact.
fn step5_replay_log(state: &mut AllocState, meta: &MetaPage) -> Result<(), LoadRejection> {
    for group in meta.materialized_groups..state.geometry.group_count(meta.page_count) {
        state.mark_fresh_group(group);
    }
    for entry in &meta.log {
        let (first, end) = (entry.first_page, entry.end_page());
        let consistent = match entry.kind {
            LogKind::Alloc => state.bitmap.all_zero(first, end),
            LogKind::Free => state.bitmap.all_one(first, end),
        };
        if !consistent {
            return Err(LoadRejection::LogEntry {
                kind: entry.kind,
                first,
                end,
            });
        }
        match entry.kind {
            LogKind::Alloc => state.bitmap.set_range(first, end),
            LogKind::Free => state.bitmap.clear_range(first, end),
        }
    }
    state.log = meta.log.clone();
    Ok(())
}

/// Steps 6–7: walks the chain of `B` blocks taking each block's current slot, checks the chosen
/// slots against the copy's directory digest, and checks that every page the directory owns is
/// owned once and allocated in `bitmap`.
fn steps6_7_load_directory(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    state: &mut AllocState,
) -> Result<Directory, LoadRejection> {
    let root = meta.directory;
    let mut blocks = Vec::new();
    let mut digest = 0u64;
    let mut pages = root.head_pages;
    let mut seen = HashSet::new();
    for block in 0..root.block_count {
        if pages.iter().all(|&p| p == 0) {
            return Err(LoadRejection::DirectoryChainShort {
                blocks: block,
                expected: root.block_count,
            });
        }
        // A chain that loops back is rejected at once, not after `block_count` steps.
        if !pages.iter().all(|&p| seen.insert(p)) {
            return Err(LoadRejection::DirectoryChainLoops { block });
        }
        let current = step6_current_directory_slot(image, geometry, meta, block, pages)?;
        let term = directory_digest_term(block, current.generation, current.checksum);
        digest ^= term;
        let next_pages = current.value.next_pages;
        blocks.push(DirectoryBlock {
            pages,
            current_slot: Some((current.position % 2) as u8),
            term,
            entries: current.value.entries,
        });
        pages = next_pages;
    }
    if pages.iter().any(|&p| p != 0) {
        return Err(LoadRejection::DirectoryChainLong {
            expected: root.block_count,
        });
    }
    step7_check_directory(image, root.digest, blocks, digest, state)
}

/// Step 6, one block: among its four pages, the valid slot for block `block` with the largest
/// generation not above the copy's. Two of one generation must be the two mirrors of one slot:
/// identical, at the same slot position.
fn step6_current_directory_slot(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    block: u64,
    pages: [u64; DIRECTORY_BLOCK_PAGES],
) -> Result<SlotCandidate<crate::format::DirectorySlot>, LoadRejection> {
    let candidate = |(position, &page_index): (usize, &u64)| {
        let bytes =
            page(image, geometry, page_index).ok_or(LoadRejection::DirectoryPagePastEnd {
                page: page_index,
                block,
            })?;
        let Ok(slot) = decode_directory_slot(bytes, geometry, block, meta.page_count) else {
            return Ok(None);
        };
        if slot.generation > meta.generation {
            return Ok(None);
        }
        Ok(Some(SlotCandidate {
            position,
            generation: slot.generation,
            checksum: slot_checksum_field(bytes).expect("a decoded slot has a checksum field"),
            value: slot,
        }))
    };
    let tie = |kept: &SlotCandidate<_>, other: &SlotCandidate<_>| {
        if kept.checksum == other.checksum && kept.position % 2 == other.position % 2 {
            Ok(())
        } else {
            Err(LoadRejection::DirectorySlotsTie {
                block,
                generation: other.generation,
            })
        }
    };
    newest_valid_slot(pages.iter().enumerate().map(candidate), tie)?
        .ok_or(LoadRejection::NoDirectorySlot { block })
}

/// Step 7: the chosen slots are the ones the directory digest names; every page the directory
/// owns is owned once and allocated in the bitmap (format 3: its group loaded first, so that
/// freeing a protected page later needs no load).
fn step7_check_directory(
    image: &[u8],
    recorded_digest: u64,
    blocks: Vec<DirectoryBlock>,
    digest: u64,
    state: &mut AllocState,
) -> Result<Directory, LoadRejection> {
    if digest != recorded_digest {
        return Err(LoadRejection::DirectoryDigest);
    }
    let geometry = state.geometry;
    let directory = Directory::from_committed(geometry, blocks, digest)
        .map_err(LoadRejection::DirectoryOwnership)?;
    for page in directory.owned_pages() {
        let group = geometry.group_of(page);
        state
            .load_group(group, image)
            .map_err(|_| LoadRejection::PinnedSlot { group })?;
        if !state.bitmap.get(page) {
            return Err(LoadRejection::ProtectedPageFree { page });
        }
    }
    Ok(directory)
}

/// Step 8: a single-sync commit made its protected contents durable in the same barrier as the
/// metadata copy (SPEC.md §3.2.1), so a copy that arrived does not prove they did: every
/// protected page whose content this commit wrote (staged by a writer, or zeroed by an
/// allocation) must match the checksum its directory entry records.
fn step8_committed_contents_arrived(
    image: &[u8],
    geometry: Geometry,
    generation: u64,
    directory: &Directory,
) -> Result<(), LoadRejection> {
    for (id, entry) in directory.entries_committed_at(generation) {
        let arrived = page(image, geometry, entry.current_page())
            .is_some_and(|bytes| crc32fast::hash(bytes) == entry.content_checksum);
        if !arrived {
            return Err(LoadRejection::ContentsMissing {
                id,
                page: entry.current_page(),
            });
        }
    }
    Ok(())
}

/// Step 9 (only for a copy the decision table considers newer than a valid superblock, row 3):
/// a single-sync commit made the pages it filled (`alloc_with`) durable in the same barrier as
/// the copy (SPEC.md §3.6.1), so every data check must name allocated regular pages whose bytes
/// have the recorded CRC-32.
fn step9_filled_data_arrived(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    state: &AllocState,
) -> Result<(), LoadRejection> {
    for check in &meta.data_checks {
        for page in check.first_page..check.end_page() {
            let allocated = state
                .is_allocated_data_page(page, image)
                .map_err(|damaged| LoadRejection::PinnedSlot {
                    group: damaged.group,
                })?;
            if !allocated {
                return Err(LoadRejection::DataCheckNotAllocated { page });
            }
        }
        let start = geometry.offset(check.first_page);
        let end = geometry.offset(check.end_page());
        let arrived = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(start, end)| image.get(start..end))
            .is_some_and(|bytes| crc32fast::hash(bytes) == check.crc);
        if !arrived {
            return Err(LoadRejection::DataMissing {
                first_page: check.first_page,
                page_count: check.page_count,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{SlotCandidate, newest_valid_slot};

    fn at(
        position: usize,
        generation: u64,
        checksum: u32,
    ) -> Result<Option<SlotCandidate<()>>, u64> {
        Ok(Some(SlotCandidate {
            position,
            generation,
            checksum,
            value: (),
        }))
    }

    fn same_checksum(kept: &SlotCandidate<()>, other: &SlotCandidate<()>) -> Result<(), u64> {
        if kept.checksum == other.checksum {
            Ok(())
        } else {
            Err(other.generation)
        }
    }

    fn pick(pages: Vec<Result<Option<SlotCandidate<()>>, u64>>) -> Result<Option<usize>, u64> {
        newest_valid_slot(pages, same_checksum).map(|best| best.map(|c| c.position))
    }

    #[test]
    fn newest_valid_slot_takes_the_largest_generation() {
        assert_eq!(pick(vec![]), Ok(None));
        assert_eq!(pick(vec![Ok(None), Ok(None)]), Ok(None));
        assert_eq!(pick(vec![at(0, 3, 1), at(1, 4, 2)]), Ok(Some(1)));
        assert_eq!(pick(vec![at(0, 4, 1), at(1, 3, 2)]), Ok(Some(0)));
        assert_eq!(pick(vec![Ok(None), at(1, 3, 2)]), Ok(Some(1)));
    }

    #[test]
    fn newest_valid_slot_sends_ties_to_the_caller() {
        // Accepted tie: the first is kept.
        assert_eq!(pick(vec![at(0, 5, 9), at(2, 5, 9)]), Ok(Some(0)));
        // Rejected tie.
        assert_eq!(pick(vec![at(0, 5, 9), at(1, 5, 8)]), Err(5));
        // A tie below the best is not one.
        assert_eq!(
            pick(vec![at(0, 5, 9), at(1, 7, 1), at(2, 5, 8)]),
            Ok(Some(1))
        );
        // Pages are read lazily: an error stops the walk, also before a later tie.
        assert_eq!(pick(vec![at(0, 5, 9), Err(77), at(2, 5, 8)]), Err(77));
    }
}
