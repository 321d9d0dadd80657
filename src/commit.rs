//! The commit protocol (SPEC.md §3.2): write folded group slots and the inactive metadata copy,
//! barrier, flip the superblock, barrier. The active metadata copy and the current slot of every
//! group are never written.

use std::io;
use std::ops::Range;

use crate::format::{GroupSlotHeader, Superblock, encode_group_slot, slot_digest_term};
use crate::mutants::{Mutant, active};
use crate::state::AllocState;
use crate::storage::Storage;

fn page_range(state: &AllocState, page: u64) -> Range<u64> {
    let start = state.geometry.offset(page);
    start..start + state.geometry.page_size()
}

/// Commits `state` (whose bitmap and log already hold the change) as generation
/// `state.generation + 1`, writing `folds` (sorted group indices) as slot pages.
///
/// On `Ok` the new state is durable and `state` describes it. On `Err` a barrier failed: what is
/// durable is unknown, and the caller must poison itself (SPEC.md §3.4).
pub(crate) fn commit<S: Storage>(
    storage: &mut S,
    state: &mut AllocState,
    folds: &[u64],
) -> io::Result<()> {
    let geometry = state.geometry;
    let page_size = geometry.page_size() as usize;
    let generation = state.generation + 1;
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

    // Step 2: the inactive metadata copy.
    let target = if active(Mutant::WriteActiveCopyInPlace) && state.generation > 0 {
        state.active_meta
    } else {
        state.active_meta.other()
    };
    let meta = state.meta_page(generation, slot_digest, materialized);
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
    if active(Mutant::FlipBeforeMetadataDurable) {
        storage.bytes_mut()[..record.len()].copy_from_slice(&record);
        barrier_ranges.push(0..page_size as u64);
    }

    // Step 3: barrier. Until it returns, the superblock still names the old copy.
    if !active(Mutant::SkipMetadataBarrier) {
        storage.sync_ranges(&barrier_ranges)?;
    }

    // Step 4: flip the superblock (one 512-byte sector) and make it durable.
    storage.bytes_mut()[..record.len()].copy_from_slice(&record);
    if !active(Mutant::SkipSuperblockBarrier) {
        storage.sync_ranges(&[0..page_size as u64])?;
    }

    // Step 5: only now does memory say the new state is committed.
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
