//! Recovery (SPEC.md §4): decide, from a file image alone, which committed state it holds and
//! which repairs make the image unambiguous again. Pure: the pager performs the repairs.

use crate::bitmap::Bitmap;
use crate::directory::{Directory, DirectoryBlock};
use crate::error::MappedPageError;
use crate::format::{
    DirectorySlot, FIRST_DATA_PAGE, Geometry, LogKind, MAX_PAGE_SIZE, MIN_PAGE_COUNT,
    MIN_PAGE_SIZE, MetaError, MetaPage, MetaSlot, Superblock, SuperblockError,
    decode_directory_slot, decode_group_slot, directory_digest_term, slot_bitmap_word,
    slot_checksum_field, slot_digest_term,
};
use crate::mutants::{Mutant, active};
use crate::state::AllocState;

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

/// Recovers the state held by `image` for page size `geometry`.
pub(crate) fn recover(image: &[u8], geometry: Geometry) -> Result<Recovered, MappedPageError> {
    let superblock = Superblock::decode(image);
    match &superblock {
        Err(SuperblockError::UnsupportedVersion(found)) => {
            return Err(MappedPageError::UnsupportedVersion { found: *found });
        }
        Ok(sb) if sb.page_size != geometry.page_size() => {
            return Err(MappedPageError::PageSizeMismatch {
                found: sb.page_size,
                expected: geometry.page_size(),
            });
        }
        _ => {}
    }
    let min_len_bytes = MIN_PAGE_COUNT * geometry.page_size();
    if (image.len() as u64) < min_len_bytes {
        return Err(MappedPageError::FileTooSmall {
            len_bytes: image.len() as u64,
            min_len_bytes,
        });
    }
    let decode = |slot: MetaSlot| {
        page(image, geometry, slot.page())
            .ok_or(MetaError::Truncated)
            .and_then(|bytes| {
                if active(Mutant::TrustBadChecksum) {
                    MetaPage::decode_ignoring_checksum(bytes, geometry)
                } else {
                    MetaPage::decode(bytes, geometry)
                }
            })
    };
    let metas = [
        (MetaSlot::A, decode(MetaSlot::A)),
        (MetaSlot::B, decode(MetaSlot::B)),
    ];
    for (_, meta) in &metas {
        if let Err(MetaError::PageSize(found)) = meta {
            return Err(MappedPageError::PageSizeMismatch {
                found: *found,
                expected: geometry.page_size(),
            });
        }
    }
    let meta_of = |slot: MetaSlot| &metas[if slot == MetaSlot::A { 0 } else { 1 }].1;
    let checksum_of =
        |slot: MetaSlot| page(image, geometry, slot.page()).and_then(MetaPage::checksum_field);
    let mut rejections: Vec<String> = Vec::new();
    let try_load = |slot: MetaSlot, rejections: &mut Vec<String>| match meta_of(slot) {
        Ok(meta) => match load_candidate(image, geometry, meta, slot) {
            Ok(state) => Some(state),
            Err(why) => {
                rejections.push(format!(
                    "copy {slot} (generation {}): {why}",
                    meta.generation
                ));
                None
            }
        },
        Err(error) => {
            rejections.push(format!("copy {slot}: {error}"));
            None
        }
    };

    // Single-sync commits (SPEC.md §3.2.1) never flip the superblock. A copy one of them wrote
    // with a generation above the superblock's is the last acknowledged commit, or the one in
    // flight, if it loads completely (its slots, directory and protected contents arrived).
    let floor = superblock.as_ref().ok().map(|sb| sb.active_generation);
    let mut newer: Vec<(MetaSlot, u64)> = metas
        .iter()
        .filter_map(|(slot, meta)| match (meta, floor) {
            (Ok(meta), Some(floor)) if meta.single_sync && meta.generation > floor => {
                Some((*slot, meta.generation))
            }
            _ => None,
        })
        .collect();
    newer.sort_by_key(|candidate| std::cmp::Reverse(candidate.1));
    if newer.len() == 2 && newer[0].1 == newer[1].1 {
        newer.clear();
    }
    let newer_single_sync = newer
        .into_iter()
        .find_map(|(slot, _)| try_load(slot, &mut rejections));

    let (state, decision) = if let Some(state) = newer_single_sync {
        (state, RecoveryDecision::NewerSingleSyncCommit)
    } else {
        match &superblock {
            Ok(sb) => {
                let selected = sb.active_meta;
                let selected_matches = match meta_of(selected) {
                    Ok(meta) => {
                        meta.generation == sb.active_generation
                            && checksum_of(selected) == Some(sb.active_meta_checksum)
                    }
                    Err(_) => false,
                };
                let chosen = if selected_matches {
                    try_load(selected, &mut rejections).map(|s| (s, RecoveryDecision::Superblock))
                } else {
                    if meta_of(selected).is_ok() {
                        rejections.push(format!(
                            "copy {selected}: does not match the superblock (generation {})",
                            sb.active_generation
                        ));
                    } else {
                        try_load(selected, &mut rejections);
                    }
                    None
                };
                match chosen {
                    Some(found) => found,
                    None => {
                        let other = selected.other();
                        let next = match meta_of(other) {
                            // `checked_add`: a superblock at `MAX_GENERATION` has no successor
                            // (generations never wrap, §3.2), so no copy can be the commit in
                            // flight after it.
                            Ok(meta)
                                if sb.active_generation.checked_add(1) == Some(meta.generation)
                                    || active(Mutant::FallBackBlindly) =>
                            {
                                try_load(other, &mut rejections)
                            }
                            Ok(meta) => {
                                rejections.push(format!(
                                "copy {other}: generation {} is not the successor of the superblock's {}; using it would roll back acknowledged commits",
                                meta.generation, sb.active_generation
                            ));
                                None
                            }
                            Err(error) => {
                                rejections.push(format!("copy {other}: {error}"));
                                None
                            }
                        };
                        match next {
                            Some(state) => {
                                (state, RecoveryDecision::NextGenerationAfterCorruptSelected)
                            }
                            None => {
                                return Err(MappedPageError::CorruptMetadata {
                                    detail: rejections.join("; "),
                                });
                            }
                        }
                    }
                }
            }
            Err(sb_error) => {
                let mut candidates: Vec<(MetaSlot, u64)> = metas
                    .iter()
                    .filter_map(|(slot, meta)| meta.as_ref().ok().map(|m| (*slot, m.generation)))
                    .collect();
                if candidates.is_empty() {
                    if *sb_error == SuperblockError::BadMagic
                        && metas.iter().all(|(_, m)| *m == Err(MetaError::BadMagic))
                    {
                        if let Some(found) = probe_page_size(image, geometry) {
                            return Err(MappedPageError::PageSizeMismatch {
                                found,
                                expected: geometry.page_size(),
                            });
                        }
                        return Err(MappedPageError::NotAMappedPagesFile);
                    }
                    let detail = metas
                        .iter()
                        .map(|(slot, m)| match m {
                            Err(e) => format!("copy {slot}: {e}"),
                            Ok(_) => String::new(),
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(MappedPageError::CorruptSuperblock {
                        detail: format!("{sb_error}; {detail}"),
                    });
                }
                candidates.sort_by_key(|candidate| std::cmp::Reverse(candidate.1));
                if candidates.len() == 2 && candidates[0].1 == candidates[1].1 {
                    return Err(MappedPageError::CorruptMetadata {
                        detail: format!(
                            "{sb_error}, and both copies claim generation {}",
                            candidates[0].1
                        ),
                    });
                }
                let mut found = None;
                for (slot, _) in candidates {
                    if let Some(state) = try_load(slot, &mut rejections) {
                        found = Some(state);
                        break;
                    }
                }
                match found {
                    Some(state) => (state, RecoveryDecision::NewestAfterCorruptSuperblock),
                    None if *sb_error == SuperblockError::BadMagic
                        && metas
                            .iter()
                            .all(|(_, m)| m.as_ref().map_or(true, |m| m.generation == 1)) =>
                    {
                        // The superblock was never written and only the first commit was attempted:
                        // a create that did not finish. Nothing was ever committed.
                        return Err(MappedPageError::NotAMappedPagesFile);
                    }
                    None => {
                        return Err(MappedPageError::CorruptMetadata {
                            detail: format!("{sb_error}; {}", rejections.join("; ")),
                        });
                    }
                }
            }
        }
    };

    let scrub_pages = if active(Mutant::SkipScrub) {
        Vec::new()
    } else {
        future_pages(image, geometry, &state, &metas)
    };
    let mirror_repairs = if active(Mutant::SkipMirrorRepair) {
        Vec::new()
    } else {
        lone_mirrors(image, geometry, &state)
    };
    let chosen_checksum =
        checksum_of(state.active_meta()).expect("a loaded metadata copy lies inside the image");
    let wanted = Superblock {
        page_size: geometry.page_size(),
        active_meta: state.active_meta(),
        active_generation: state.generation(),
        active_meta_checksum: chosen_checksum,
    };
    let superblock_rewrite = (superblock.as_ref().ok() != Some(&wanted)).then_some(wanted);
    Ok(Recovered {
        state,
        scrub_pages,
        mirror_repairs,
        superblock_rewrite,
        decision,
    })
}

/// Looks for a metadata copy written with another page size, to report a mismatch instead of
/// "not a mappedpages file" when page 0 is unreadable.
fn probe_page_size(image: &[u8], geometry: Geometry) -> Option<u64> {
    let mut size = MIN_PAGE_SIZE;
    while size <= MAX_PAGE_SIZE {
        if size as u64 != geometry.page_size() {
            let other = Geometry::new(size);
            for slot in [MetaSlot::A, MetaSlot::B] {
                if let Some(bytes) = page(image, other, slot.page())
                    && MetaPage::decode(bytes, other).is_ok()
                {
                    return Some(size as u64);
                }
            }
        }
        size *= 2;
    }
    None
}

/// Loads the state described by `meta`: reads every materialized group's current slot (the
/// valid one with the largest generation not above the copy's), checks that the chosen slots are
/// exactly the ones the copy's slot digest names, and replays the log.
fn load_candidate(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    slot: MetaSlot,
) -> Result<AllocState, String> {
    let file_pages = image.len() as u64 / geometry.page_size();
    if meta.page_count > file_pages {
        return Err(format!(
            "claims {} pages but the file holds {file_pages}",
            meta.page_count
        ));
    }
    let pages_per_group = geometry.pages_per_group();
    let words_per_group = (pages_per_group / 64) as usize;
    let mut bitmap = Bitmap::new(meta.page_count);
    let mut group_slots = Vec::with_capacity(meta.materialized_groups as usize);
    let mut group_terms = Vec::with_capacity(meta.materialized_groups as usize);
    let mut slot_digest = 0u64;
    for group in 0..meta.materialized_groups {
        let mut best: Option<(u8, u64, u32, &[u8])> = None;
        for slot_index in 0..2u8 {
            let bytes = page(image, geometry, geometry.slot_page(group, slot_index))
                .ok_or_else(|| format!("slot page of group {group} past the end of the file"))?;
            let Ok((header, bits)) = decode_group_slot(bytes, geometry, group) else {
                continue;
            };
            if header.generation > meta.generation && !active(Mutant::IgnoreSlotGenerationBound) {
                continue;
            }
            let checksum = slot_checksum_field(bytes).expect("a decoded slot has a checksum field");
            let candidate = (slot_index, header.generation, checksum, bits);
            match best {
                None => best = Some(candidate),
                Some((_, generation, _, _)) => match generation.cmp(&header.generation) {
                    std::cmp::Ordering::Equal => {
                        return Err(format!(
                            "both slots of group {group} claim generation {generation}"
                        ));
                    }
                    std::cmp::Ordering::Greater => {}
                    std::cmp::Ordering::Less => best = Some(candidate),
                },
            }
        }
        let Some((slot_index, generation, checksum, bits)) = best else {
            return Err(format!("group {group} has no valid bitmap slot"));
        };
        group_slots.push(slot_index);
        let term = slot_digest_term(group, generation, checksum);
        group_terms.push(term);
        slot_digest ^= term;
        // The words of the group inside the file are loaded (the last one may hold bits past
        // the end); the slot's words past the end of the file must be zero.
        let first_word = group as usize * words_per_group;
        let inside = bitmap
            .word_count()
            .saturating_sub(first_word)
            .min(words_per_group);
        let loaded = bitmap.load_le_words(first_word, &bits[..inside * 8]);
        if !loaded || (inside..words_per_group).any(|index| slot_bitmap_word(bits, index) != 0) {
            return Err(format!(
                "group {group} marks pages past the end of the file"
            ));
        }
        let (internal_start, internal_end) = if group == 0 {
            (0, FIRST_DATA_PAGE)
        } else {
            let start = geometry.group_start(group);
            (start, start + 2)
        };
        if !bitmap.all_one(internal_start, internal_end) {
            return Err(format!("group {group} marks its reserved pages free"));
        }
    }
    if slot_digest != meta.slot_digest {
        return Err(
            "its bitmap slots are not the ones it committed (a current slot is corrupt, or a fold of its commit never arrived)"
                .to_string(),
        );
    }
    let mut state = AllocState::recovered(geometry, meta, slot, group_slots, group_terms, bitmap);
    for group in meta.materialized_groups..geometry.group_count(meta.page_count) {
        state.mark_fresh_group(group);
    }
    for entry in &meta.log {
        let (first, end) = (entry.first_page, entry.end_page());
        let consistent = match entry.kind {
            LogKind::Alloc => state.bitmap.all_zero(first, end),
            LogKind::Free => state.bitmap.all_one(first, end),
        };
        if !consistent {
            return Err(format!(
                "log entry {:?} {first}..{end} does not apply to the bitmap",
                entry.kind
            ));
        }
        match entry.kind {
            LogKind::Alloc => state.bitmap.set_range(first, end),
            LogKind::Free => state.bitmap.clear_range(first, end),
        }
    }
    state.log = meta.log.clone();
    state.directory = load_directory(image, geometry, meta, &state.bitmap)?;
    if meta.single_sync && !active(Mutant::SingleSyncSkipContentCheck) {
        check_committed_contents(image, geometry, meta.generation, &state.directory)?;
    }
    Ok(state)
}

/// A single-sync commit made its protected contents durable in the same barrier as the metadata
/// copy (SPEC.md §3.2.1), so a copy that arrived does not prove they did: every protected page
/// whose content this commit wrote (staged by a writer, or zeroed by an allocation) must match
/// the checksum its directory entry records.
fn check_committed_contents(
    image: &[u8],
    geometry: Geometry,
    generation: u64,
    directory: &Directory,
) -> Result<(), String> {
    for (id, entry) in directory.entries_committed_at(generation) {
        let arrived = page(image, geometry, entry.current_page())
            .is_some_and(|bytes| crc32fast::hash(bytes) == entry.content_checksum);
        if !arrived {
            return Err(format!(
                "protected page {id} committed by this single-sync commit did not arrive (page {})",
                entry.current_page()
            ));
        }
    }
    Ok(())
}

/// Loads the protected-page directory `meta` names: walks the chain of blocks, takes in each the
/// newest valid slot not above the copy's generation from either mirror, checks the chosen slots
/// against the copy's directory digest, and checks that every page the directory owns is
/// allocated in `bitmap` and owned once (SPEC.md §4.1).
fn load_directory(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    bitmap: &Bitmap,
) -> Result<Directory, String> {
    let root = meta.directory;
    let mut blocks = Vec::new();
    let mut digest = 0u64;
    let mut pages = root.head_pages;
    let mut block_pages_seen = std::collections::HashSet::new();
    for block_index in 0..root.block_count {
        if pages.iter().all(|&p| p == 0) {
            return Err(format!(
                "its directory chain ends after {block_index} of {} blocks",
                root.block_count
            ));
        }
        // A chain that loops back is rejected at once, not after `block_count` steps.
        if !pages.iter().all(|&p| block_pages_seen.insert(p)) {
            return Err(format!(
                "directory block {block_index} reuses the pages of an earlier block"
            ));
        }
        let mut best: Option<(usize, DirectorySlot, u32)> = None;
        for (position, &page_index) in pages.iter().enumerate() {
            let Some(bytes) = page(image, geometry, page_index) else {
                return Err(format!(
                    "page {page_index} of directory block {block_index} is past the end of the file"
                ));
            };
            let Ok(slot) = decode_directory_slot(bytes, geometry, block_index, meta.page_count)
            else {
                continue;
            };
            if slot.generation > meta.generation {
                continue;
            }
            let checksum = slot_checksum_field(bytes).expect("a decoded slot has a checksum field");
            match &best {
                None => best = Some((position, slot, checksum)),
                Some((best_position, best_slot, best_checksum)) => {
                    match best_slot.generation.cmp(&slot.generation) {
                        std::cmp::Ordering::Equal => {
                            // The two mirrors of one slot: identical, at the same slot position.
                            if *best_checksum != checksum || best_position % 2 != position % 2 {
                                return Err(format!(
                                    "two slots of directory block {block_index} claim generation {} with different contents",
                                    slot.generation
                                ));
                            }
                        }
                        std::cmp::Ordering::Greater => {}
                        std::cmp::Ordering::Less => best = Some((position, slot, checksum)),
                    }
                }
            }
        }
        let Some((position, slot, checksum)) = best else {
            return Err(format!("directory block {block_index} has no valid slot"));
        };
        let term = directory_digest_term(block_index, slot.generation, checksum);
        digest ^= term;
        blocks.push(DirectoryBlock {
            pages,
            current_slot: Some((position % 2) as u8),
            term,
            entries: slot.entries,
        });
        pages = slot.next_pages;
    }
    if pages.iter().any(|&p| p != 0) {
        return Err(format!(
            "its last directory block names a block past the {} it counts",
            root.block_count
        ));
    }
    if digest != root.digest {
        return Err(
            "its directory slots are not the ones it committed (a current slot is corrupt in both mirrors, or a block of its commit never arrived)"
                .to_string(),
        );
    }
    let directory = Directory::from_committed(geometry, blocks, digest)?;
    if let Some(page) = directory.owned_pages().find(|&page| !bitmap.get(page)) {
        return Err(format!("protected-page page {page} is free in its bitmap"));
    }
    Ok(directory)
}

/// The blocks of the chosen state's directory whose current slot is intact on one mirror page
/// only, as repairs that copy it over the other mirror (SPEC.md §4.3 step 3). The two mirrors of
/// a committed slot hold the same bytes, so a mirror that differs is missing (never written, or
/// torn: a single-sync commit whose barrier did not complete, §3.2.1) or damaged; either way it
/// is not the slot the state uses, which [`load_directory`] proved intact on the other page.
fn lone_mirrors(image: &[u8], geometry: Geometry, state: &AllocState) -> Vec<MirrorRepair> {
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

/// The generation field (bytes 16..24) of a bitmap or directory slot page, unchecked. A page
/// whose field is not above a generation is not a valid slot above it either, so
/// [`future_pages`] skips the decoding (and its CRC) of every such page: nearly all of them.
fn raw_generation(page: &[u8]) -> u64 {
    u64::from_le_bytes(page[16..24].try_into().expect("a page holds 24 bytes"))
}

/// Valid metadata and slot pages whose generation is above the chosen state's: leftovers of a
/// commit that never became durable as a whole. Left in place, a later commit that reaches
/// their generation would pick them up as its own.
fn future_pages(
    image: &[u8],
    geometry: Geometry,
    state: &AllocState,
    metas: &[(MetaSlot, Result<MetaPage, MetaError>); 2],
) -> Vec<u64> {
    let mut pages = Vec::new();
    for (slot, meta) in metas {
        if let Ok(meta) = meta
            && meta.generation > state.generation()
        {
            pages.push(slot.page());
        }
    }
    // Every group materialized by the chosen state or by a copy that decodes (a newer commit
    // that never completed materializes groups past the chosen page count). Groups past those
    // are not read: their slot pages may be unreserved holes (SPEC.md §3.3), and a slot left
    // there by a commit whose copy did not arrive is harmless: it is in slot 0, which the commit
    // that materializes the group overwrites, and a slot digest names the slot it committed.
    let materialized = metas
        .iter()
        .filter_map(|(_, meta)| meta.as_ref().ok().map(|m| m.materialized_groups))
        .fold(state.materialized_groups(), u64::max);
    for group in 0..materialized {
        if page(image, geometry, geometry.slot_page(group, 0)).is_none() {
            break;
        }
        for slot_index in 0..2u8 {
            let page_index = geometry.slot_page(group, slot_index);
            if let Some(bytes) = page(image, geometry, page_index)
                && raw_generation(bytes) > state.generation()
                && let Ok((header, _)) = decode_group_slot(bytes, geometry, group)
                && header.generation > state.generation()
            {
                pages.push(page_index);
            }
        }
    }
    for (block_index, block) in state.directory.blocks.iter().enumerate() {
        for page_index in block.pages {
            if let Some(bytes) = page(image, geometry, page_index)
                && raw_generation(bytes) > state.generation()
                && let Ok(slot) =
                    decode_directory_slot(bytes, geometry, block_index as u64, state.page_count)
                && slot.generation > state.generation()
            {
                pages.push(page_index);
            }
        }
    }
    pages
}
