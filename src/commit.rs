//! The commit protocol (SPEC.md §3.2): write folded group slots, changed directory blocks and the
//! inactive metadata copy, barrier (together with any data the caller staged), flip the
//! superblock, barrier. The active metadata copy, the current slot of every group and directory
//! block, and the committed copy of every protected page are never written.

use std::io;
use std::ops::Range;

use crate::format::{
    GroupSlotHeader, MAX_GENERATION, SCRUB_BYTES, Superblock, directory_digest_term,
    encode_directory_slot, encode_group_slot, slot_digest_term,
};
use crate::mutants::{Mutant, active};
use crate::state::AllocState;
use crate::storage::Storage;

fn page_range(state: &AllocState, page: u64) -> Range<u64> {
    let start = state.geometry.offset(page);
    start..start + state.geometry.page_size()
}

/// How a commit makes itself durable (SPEC.md §3.2 and §3.2.1). Set per pager with
/// [`Pager::set_commit_mode`](crate::Pager::set_commit_mode); it is not stored in the file, so
/// each process chooses, and a file may hold commits of both modes.
///
/// ```
/// use mappedpages::{CommitMode, Pager, SimStorage};
///
/// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// assert_eq!(pager.commit_mode(), CommitMode::Flip);
///
/// pager.set_commit_mode(CommitMode::SingleSync);
/// let before = pager.storage().sync_count();
/// pager.alloc().unwrap();
/// assert_eq!(pager.storage().sync_count() - before, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CommitMode {
    /// Two barriers: the new metadata copy (with everything it refers to), then the superblock
    /// flip that names it. Recovery never has to trust a copy the superblock does not name
    /// unless the named one is damaged.
    #[default]
    Flip,
    /// One barrier over the new metadata copy and everything it refers to; the superblock is not
    /// written. Recovery takes the newest copy that loads completely, checking the protected
    /// contents that commit wrote. Costs: recovery relies on checksums (CRC-32 and the digests)
    /// to reject a partly written commit, and damage to the newest metadata copy rolls back to
    /// the previous commit instead of being reported (SPEC.md §3.2.1).
    SingleSync,
}

/// The generation the next commit of `state` writes. Every caller that stages a change checked
/// first that there is one (`Pager::check_commit_possible`, SPEC.md §3.2): reaching this with the
/// generation exhausted is a bug in the pager, never a property of the file.
pub(crate) fn next_generation(state: &AllocState) -> u64 {
    assert!(
        state.generation < MAX_GENERATION,
        "commit staged at generation {}, the last one (MAX_GENERATION): the exhaustion check was skipped",
        state.generation
    );
    state.generation + 1
}

/// What one commit writes besides the metadata and the superblock.
#[derive(Debug, Default)]
pub(crate) struct CommitPlan {
    /// Groups to write as slot pages (sorted, distinct).
    pub(crate) folds: Vec<u64>,
    /// Byte ranges the caller already wrote (staged protected copies, zeroed new copies, the
    /// last page of a growth) that must be durable before the superblock names the commit.
    pub(crate) data_ranges: Vec<Range<u64>>,
    /// One barrier, no superblock flip.
    pub(crate) mode: CommitMode,
}

/// Commits `state` (whose bitmap, log and directory already hold the change) as generation
/// `state.generation + 1`, writing `plan.folds` as slot pages and every dirty directory block.
///
/// On `Ok` the new state is durable and `state` describes it. On `Err` a barrier failed: what is
/// durable is unknown, and the caller must poison itself (SPEC.md §3.4).
pub(crate) fn commit<S: Storage>(
    storage: &mut S,
    state: &mut AllocState,
    plan: &CommitPlan,
) -> io::Result<()> {
    let folds = &plan.folds[..];
    let geometry = state.geometry;
    let page_size = geometry.page_size() as usize;
    let generation = next_generation(state);
    assert!(
        storage.len_bytes() >= state.page_count * geometry.page_size(),
        "storage of {} bytes is shorter than {} pages",
        storage.len_bytes(),
        state.page_count
    );
    assert!(
        folds.windows(2).all(|w| w[0] < w[1]),
        "folds must be sorted and distinct"
    );

    // Step 1: folded groups go to their inactive slot (slot 0 for a group materialized now).
    let mut barrier_ranges = Vec::with_capacity(folds.len() + 1);
    let mut new_slots = Vec::with_capacity(folds.len());
    let mut materialized = state.materialized_groups;
    let mut slot_digest = state.slot_digest;
    for &group in folds {
        let slot = match state.group_slots.get(group as usize) {
            Some(&current) if active(Mutant::FoldIntoCurrentSlot) => current,
            Some(&current) => 1 - current,
            None => {
                assert_eq!(group, materialized, "groups materialize in order");
                materialized += 1;
                0
            }
        };
        let page = geometry.slot_page(group, slot);
        let range = page_range(state, page);
        let words = state.group_words(group);
        let checksum = encode_group_slot(
            geometry,
            GroupSlotHeader { generation, group },
            &words,
            &mut storage.bytes_mut()[range.start as usize..range.end as usize],
        );
        let term = slot_digest_term(group, generation, checksum);
        if let Some(&old_term) = state.group_terms.get(group as usize) {
            slot_digest ^= old_term;
        }
        slot_digest ^= term;
        barrier_ranges.push(range);
        new_slots.push((group, slot, term));
    }

    // Step 2: every changed directory block goes to its inactive slot, in both mirrors. A new
    // block also invalidates its other slot in both mirrors, so nothing a page held before can
    // pass for a slot of this block.
    let mut directory_digest = state.directory.digest;
    let mut written_blocks = Vec::new();
    for block_index in state.directory.dirty_blocks() {
        let block = &state.directory.blocks[block_index as usize];
        let is_new = block.current_slot.is_none();
        let slot = match block.current_slot {
            Some(current) if active(Mutant::DirectoryInPlace) => current,
            _ => block.next_slot(),
        };
        let encoded_slot = state.directory.slot_for_commit(block_index, generation);
        let mut checksum = 0;
        for page in block.slot_pages(slot) {
            let range = page_range(state, page);
            checksum = encode_directory_slot(
                geometry,
                &encoded_slot,
                &mut storage.bytes_mut()[range.start as usize..range.end as usize],
            );
            barrier_ranges.push(range);
        }
        if is_new {
            assert_eq!(slot, 0, "a new directory block is written in slot 0");
            for page in block.slot_pages(1) {
                let range = page_range(state, page);
                storage.bytes_mut()[range.start as usize..range.start as usize + SCRUB_BYTES]
                    .fill(0);
                barrier_ranges.push(range);
            }
        }
        let term = directory_digest_term(block_index, generation, checksum);
        directory_digest ^= block.term ^ term;
        written_blocks.push((block_index, slot, term));
    }
    if !active(Mutant::PromoteBeforeStagedDurable) {
        barrier_ranges.extend(plan.data_ranges.iter().cloned());
    }

    // Step 3: the inactive metadata copy.
    let target = if active(Mutant::WriteActiveCopyInPlace) {
        mutant_in_place_target(state)
    } else {
        state.active_meta.other()
    };
    let single_sync = plan.mode == CommitMode::SingleSync;
    let meta = state.meta_page(
        generation,
        slot_digest,
        materialized,
        state.directory.root(directory_digest),
        single_sync,
    );
    let meta_range = page_range(state, target.page());
    let meta_checksum = meta.encode(
        geometry,
        &mut storage.bytes_mut()[meta_range.start as usize..meta_range.end as usize],
    );
    barrier_ranges.push(meta_range);

    let superblock = Superblock {
        page_size: geometry.page_size(),
        active_meta: target,
        active_generation: generation,
        active_meta_checksum: meta_checksum,
    };
    let record = superblock.encode();
    if active(Mutant::FlipBeforeMetadataDurable)
        || (single_sync && active(Mutant::SingleSyncFlipInBarrier))
    {
        storage.bytes_mut()[..record.len()].copy_from_slice(&record);
        barrier_ranges.push(0..page_size as u64);
    }

    // Step 4: barrier. Until it returns, the superblock still names the old copy. In single-sync
    // mode this is the only barrier: once it returns, `Y` loads completely and recovery takes it
    // (§3.2.1); until then, any part of it may be missing and recovery falls back to `X`.
    if !active(Mutant::SkipMetadataBarrier) {
        storage.sync_ranges(&barrier_ranges)?;
    }

    // Step 5: flip the superblock (one 512-byte sector) and make it durable.
    if !single_sync {
        storage.bytes_mut()[..record.len()].copy_from_slice(&record);
        if !active(Mutant::SkipSuperblockBarrier) {
            storage.sync_ranges(&[0..page_size as u64])?;
        }
    }

    if active(Mutant::PromoteBeforeStagedDurable) {
        mutant_sync_data_late(storage, plan)?;
    }

    // Step 6: only now does memory say the new state is committed.
    state.directory.committed(&written_blocks, directory_digest);
    state.generation = generation;
    state.active_meta = target;
    state.slot_digest = slot_digest;
    for (group, slot, term) in new_slots {
        match state.group_slots.get_mut(group as usize) {
            Some(current) => {
                *current = slot;
                state.group_terms[group as usize] = term;
            }
            None => {
                state.group_slots.push(slot);
                state.group_terms.push(term);
            }
        }
    }
    state.materialized_groups = materialized;
    assert_eq!(
        state.group_slots.len() as u64,
        state.materialized_groups,
        "one current slot per materialized group"
    );
    Ok(())
}

/// `WriteActiveCopyInPlace`: the committed copy (the first commit of a file has none yet).
fn mutant_in_place_target(state: &AllocState) -> crate::format::MetaSlot {
    if state.generation > 0 {
        state.active_meta
    } else {
        state.active_meta.other()
    }
}

/// `PromoteBeforeStagedDurable`: the staged data becomes durable only after the flip.
fn mutant_sync_data_late<S: Storage>(storage: &mut S, plan: &CommitPlan) -> io::Result<()> {
    if plan.data_ranges.is_empty() {
        return Ok(());
    }
    storage.sync_ranges(&plan.data_ranges)
}
