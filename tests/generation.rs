//! Generations never wrap (SPEC.md §3.2, §3.4, INV-3, INV-9).
//!
//! A file cannot reach the top of the u64 generation range by use (2^64 commits), so every image
//! here is crafted: a real pager's image whose generations are all shifted up by the same amount,
//! with every checksum and digest recomputed by the crate's own encoders, so that it is valid in
//! every respect but its generations. Such a file must open, refuse the commit that would wrap
//! with a typed error (changing nothing, not poisoning), and never lose an acknowledged commit.

use std::collections::BTreeSet;

use mappedpages::format::{
    Geometry, GroupSlotHeader, MAX_GENERATION, MetaPage, MetaSlot, Superblock, TableEntry,
    TablePageHeader, decode_directory_slot, decode_group_slot, decode_table_page,
    directory_digest_term, encode_directory_slot, encode_group_slot, encode_table_page,
    slot_bitmap_word, slot_digest_term, table_digest_term,
};
use mappedpages::{
    CommitMode, MappedPageError, PageId, Pager, ProtectedPageId, RecoveryDecision, SharedPager,
    SimStorage, Storage,
};

const P: usize = 1024;

type SimPager = Pager<P, SimStorage>;

fn geometry() -> Geometry {
    Geometry::with_group_table(P)
}

fn page(image: &[u8], page: u64) -> &[u8] {
    &image[page as usize * P..(page as usize + 1) * P]
}

fn page_mut(image: &mut [u8], page: u64) -> &mut [u8] {
    &mut image[page as usize * P..(page as usize + 1) * P]
}

// ----- crafting ---------------------------------------------------------------------------------

/// A valid slot page found in the original image, and what it becomes.
struct Rewritten {
    page: u64,
    old_generation: u64,
    new_generation: u64,
    new_checksum: u32,
}

/// Among `candidates`, the one with the largest original generation not above `limit`: the
/// current slot recovery chooses for a copy of generation `limit` (SPEC.md §4.1 steps 2 and 6).
fn current<'a>(candidates: impl Iterator<Item = &'a Rewritten>, limit: u64) -> &'a Rewritten {
    candidates
        .filter(|slot| slot.old_generation <= limit)
        .max_by_key(|slot| slot.old_generation)
        .expect("the crafted image's copy has a current slot")
}

/// Adds `top − (newest metadata generation)` to every generation in `image`: both metadata
/// copies, the superblock, every valid bitmap slot, every valid directory slot of either copy's
/// chain and the content generation of every directory entry. Re-encodes each with the crate's
/// encoders and recomputes each copy's slot and directory digests and the superblock's checksum,
/// so the result is valid in every respect and holds the same states, only at other generations.
fn shift_generations(image: &mut [u8], top: u64) {
    let geometry = geometry();
    let original = image.to_vec();
    let metas: Vec<(MetaSlot, MetaPage)> = [MetaSlot::A, MetaSlot::B]
        .into_iter()
        .filter_map(|slot| {
            MetaPage::decode(page(&original, slot.page()), geometry)
                .ok()
                .map(|meta| (slot, meta))
        })
        .collect();
    let newest = metas.iter().map(|(_, meta)| meta.generation).max().unwrap();
    let delta = top - newest;

    // Bitmap slots of every group whose slot pages lie in the file: (group, rewritten).
    let file_pages = (original.len() / P) as u64;
    let words = (geometry.pages_per_group() / 64) as usize;
    let mut group_slots: Vec<(u64, Rewritten)> = Vec::new();
    for group in 0.. {
        if geometry.slot_page(group, 1) >= file_pages {
            break;
        }
        for slot in 0..2u8 {
            let page_index = geometry.slot_page(group, slot);
            let Ok((header, bits)) =
                decode_group_slot(page(&original, page_index), geometry, group)
            else {
                continue;
            };
            let bitmap: Vec<u64> = (0..words).map(|i| slot_bitmap_word(bits, i)).collect();
            let new_generation = header.generation + delta;
            let new_checksum = encode_group_slot(
                geometry,
                GroupSlotHeader {
                    generation: new_generation,
                    group,
                },
                &bitmap,
                page_mut(image, page_index),
            );
            group_slots.push((
                group,
                Rewritten {
                    page: page_index,
                    old_generation: header.generation,
                    new_generation,
                    new_checksum,
                },
            ));
        }
    }

    // Directory slots of both copies' chains: (block, rewritten), each page once.
    let mut directory_slots: Vec<(u64, Rewritten)> = Vec::new();
    for (_, meta) in &metas {
        let mut pages = meta.directory.head_pages;
        for block in 0..meta.directory.block_count {
            let mut next = None;
            let mut best = 0;
            for page_index in pages {
                let Ok(slot) = decode_directory_slot(
                    page(&original, page_index),
                    geometry,
                    block,
                    meta.page_count,
                ) else {
                    continue;
                };
                if slot.generation <= meta.generation && slot.generation >= best {
                    best = slot.generation;
                    next = Some(slot.next_pages);
                }
                if directory_slots
                    .iter()
                    .any(|(_, done)| done.page == page_index)
                {
                    continue;
                }
                let mut shifted = slot.clone();
                shifted.generation += delta;
                for entry in shifted.entries.iter_mut().flatten() {
                    entry.content_generation += delta;
                }
                let new_checksum =
                    encode_directory_slot(geometry, &shifted, page_mut(image, page_index));
                directory_slots.push((
                    block,
                    Rewritten {
                        page: page_index,
                        old_generation: slot.generation,
                        new_generation: shifted.generation,
                        new_checksum,
                    },
                ));
            }
            pages = next.expect("every block of the chain has a current slot");
        }
    }

    // Format 3's group table: every valid table slot of either copy's table pages, its entries
    // re-pinned to the rewritten group slots: (table page, rewritten).
    let table_pages = metas
        .iter()
        .map(|(_, meta)| geometry.table_page_count(meta.materialized_groups))
        .max()
        .unwrap_or(0);
    let per_page = geometry.table_entries_per_page();
    let mut table_slots: Vec<(u64, Rewritten)> = Vec::new();
    for table_page in 0..table_pages {
        for slot in 0..2u8 {
            let page_index = geometry.table_slot_page(table_page, slot);
            let Ok((header, entries)) =
                decode_table_page(page(&original, page_index), geometry, table_page)
            else {
                continue;
            };
            let shifted: Vec<TableEntry> = (table_page * per_page..)
                .zip(&entries)
                .map(|(group, entry)| {
                    let pinned = geometry.slot_page(group, entry.slot);
                    let checksum = group_slots
                        .iter()
                        .find(|(g, r)| {
                            *g == group && r.page == pinned && r.old_generation == entry.generation
                        })
                        .map_or(entry.checksum, |(_, r)| r.new_checksum);
                    TableEntry {
                        generation: entry.generation + delta,
                        checksum,
                        ..*entry
                    }
                })
                .collect();
            let new_header = TablePageHeader {
                generation: header.generation + delta,
                index: table_page,
            };
            let new_checksum =
                encode_table_page(geometry, new_header, &shifted, page_mut(image, page_index));
            table_slots.push((
                table_page,
                Rewritten {
                    page: page_index,
                    old_generation: header.generation,
                    new_generation: new_header.generation,
                    new_checksum,
                },
            ));
        }
    }

    // The copies, with their digests recomputed from the slots they choose.
    let mut checksums = Vec::new();
    for (slot, meta) in &metas {
        let mut shifted = meta.clone();
        shifted.generation += delta;
        shifted.slot_digest = (0..meta.materialized_groups)
            .map(|group| {
                let chosen = current(
                    group_slots
                        .iter()
                        .filter(|(g, _)| *g == group)
                        .map(|(_, s)| s),
                    meta.generation,
                );
                slot_digest_term(group, chosen.new_generation, chosen.new_checksum)
            })
            .fold(0, |digest, term| digest ^ term);
        shifted.directory.digest = (0..meta.directory.block_count)
            .map(|block| {
                let chosen = current(
                    directory_slots
                        .iter()
                        .filter(|(b, _)| *b == block)
                        .map(|(_, s)| s),
                    meta.generation,
                );
                directory_digest_term(block, chosen.new_generation, chosen.new_checksum)
            })
            .fold(0, |digest, term| digest ^ term);
        shifted.table_digest = (0..geometry.table_page_count(meta.materialized_groups))
            .map(|table_page| {
                let chosen = current(
                    table_slots
                        .iter()
                        .filter(|(t, _)| *t == table_page)
                        .map(|(_, s)| s),
                    meta.generation,
                );
                table_digest_term(table_page, chosen.new_generation, chosen.new_checksum)
            })
            .fold(0, |digest, term| digest ^ term);
        let checksum = shifted.encode(geometry, page_mut(image, slot.page()));
        checksums.push((*slot, checksum));
    }

    if let Ok(superblock) = Superblock::decode(&original) {
        let (_, checksum) = checksums
            .iter()
            .find(|(slot, _)| *slot == superblock.active_meta)
            .expect("the superblock names a valid copy");
        let record = Superblock {
            active_generation: superblock.active_generation + delta,
            active_meta_checksum: *checksum,
            ..superblock
        }
        .encode();
        image[..record.len()].copy_from_slice(&record);
    }
}

// ----- the state a pager shows ------------------------------------------------------------------

/// Everything a reader can see: allocated pages, protected pages and their contents.
#[derive(Debug, PartialEq, Eq)]
struct Visible {
    generation: u64,
    page_count: u64,
    pages: BTreeSet<u64>,
    protected: Vec<(u64, Vec<u8>)>,
}

fn visible(pager: &SimPager) -> Visible {
    Visible {
        generation: pager.generation(),
        page_count: pager.page_count(),
        pages: pager.iter_allocated_pages().map(|id| id.raw()).collect(),
        protected: pager
            .iter_allocated_protected_pages()
            .map(|id| (id.raw(), id.get(pager).unwrap().as_bytes().to_vec()))
            .collect(),
    }
}

/// A pager with a history in `mode`: regular pages allocated and freed, protected pages
/// allocated, written and freed, so that both metadata copies, slots of both kinds and several
/// directory entries are valid. Returns its (fully durable) image.
fn history(mode: CommitMode) -> Vec<u8> {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    pager.set_commit_mode(mode);
    let ids = pager.alloc_bulk(12).unwrap();
    pager.free(ids[4]).unwrap();
    let protected = pager.alloc_protected_bulk(3).unwrap();
    let mut writer = protected[1].get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut()[..5].copy_from_slice(b"hello");
    writer.commit().unwrap();
    pager.free_protected(protected[2]).unwrap();
    pager.alloc().unwrap();
    pager.storage().durable_image()
}

/// `history(mode)` with its newest generation moved to `top`, opened.
fn crafted(mode: CommitMode, top: u64) -> SimPager {
    let image = history(mode);
    let before = visible(&SimPager::open_in(SimStorage::from_image(image.clone())).unwrap());
    let mut shifted = image;
    shift_generations(&mut shifted, top);
    let mut pager = SimPager::open_in(SimStorage::from_image(shifted)).unwrap();
    pager.set_commit_mode(mode);
    let after = visible(&pager);
    assert_eq!(
        after.generation, top,
        "{mode:?}: the crafted image opens at {top}"
    );
    assert_eq!(
        Visible {
            generation: before.generation,
            ..after
        },
        before,
        "{mode:?}: the crafted image holds the same state"
    );
    pager
}

fn reopen_durable(pager: &SimPager) -> SimPager {
    SimPager::open_in(SimStorage::from_image(pager.storage().durable_image())).unwrap()
}

fn expect_exhausted<T: std::fmt::Debug>(result: Result<T, MappedPageError>, what: &str) {
    match result {
        Err(MappedPageError::GenerationExhausted { generation }) => {
            assert_eq!(generation, MAX_GENERATION, "{what}")
        }
        other => panic!("{what}: expected GenerationExhausted, got {other:?}"),
    }
}

const MODES: [CommitMode; 2] = [CommitMode::Flip, CommitMode::SingleSync];

// ----- tests ------------------------------------------------------------------------------------

/// The crafting helper itself: a shift by a small amount opens to the same state with the
/// expected decision, and commits continue from there (so the tests below exercise generations,
/// not a broken image).
#[test]
fn shifted_image_opens_with_the_same_state_and_keeps_committing() {
    for mode in MODES {
        let mut pager = crafted(mode, 1_000);
        let expected = match mode {
            CommitMode::Flip => RecoveryDecision::Superblock,
            CommitMode::SingleSync => RecoveryDecision::NewerSingleSyncCommit,
        };
        assert_eq!(pager.recovery_decision(), Some(expected), "{mode:?}");
        let id = pager.alloc().unwrap();
        assert_eq!(pager.generation(), 1_001);
        assert!(reopen_durable(&pager).is_allocated(id), "{mode:?}");
    }
}

/// A file whose committed generation is `u64::MAX` opens and reads, and every call that would
/// commit fails with `GenerationExhausted` before changing anything: no byte written, no sync, no
/// growth, not poisoned. Reopening shows the same state. (Before: the next alloc committed
/// generation 0, and reopening lost it.)
#[test]
fn generation_at_max_refuses_every_commit_and_changes_nothing() {
    for mode in MODES {
        let mut pager = crafted(mode, MAX_GENERATION);
        let state = visible(&pager);
        let bytes = pager.storage().bytes().to_vec();
        let syncs = pager.storage().sync_count();
        let page = PageId::<P>::from_raw(*state.pages.iter().next().unwrap());
        let protected = ProtectedPageId::<P>::from_raw(state.protected[0].0);

        expect_exhausted(pager.alloc(), "alloc");
        expect_exhausted(pager.alloc_bulk(3), "alloc_bulk");
        expect_exhausted(
            pager.alloc_bulk(100_000),
            "alloc_bulk that would grow the file",
        );
        expect_exhausted(pager.free(page), "free");
        expect_exhausted(pager.free_bulk(vec![page]), "free_bulk");
        expect_exhausted(pager.alloc_protected(), "alloc_protected");
        expect_exhausted(pager.alloc_protected_bulk(2), "alloc_protected_bulk");
        expect_exhausted(pager.free_protected(protected), "free_protected");
        expect_exhausted(
            pager.free_protected_bulk(vec![protected]),
            "free_protected_bulk",
        );
        expect_exhausted(protected.get_mut(&mut pager).map(|_| ()), "get_mut");
        // Calls that change nothing commit nothing, so they still succeed.
        assert!(pager.alloc_bulk(0).unwrap().is_empty());
        pager.free_bulk(Vec::new()).unwrap();
        pager.free_protected_bulk(Vec::new()).unwrap();

        assert!(!pager.is_poisoned(), "{mode:?}: exhaustion does not poison");
        assert_eq!(visible(&pager), state, "{mode:?}: memory unchanged");
        assert_eq!(
            pager.storage().bytes(),
            &bytes[..],
            "{mode:?}: nothing written"
        );
        assert_eq!(
            pager.storage().sync_count(),
            syncs,
            "{mode:?}: nothing synced"
        );

        // Reads and data syncs keep working.
        page.get_mut(&mut pager).unwrap().as_bytes_mut()[0] = 9;
        pager.sync_page(page).unwrap();
        pager.sync_all().unwrap();
        assert_eq!(
            protected.get(&pager).unwrap().as_bytes(),
            &state.protected[0].1[..]
        );

        let reopened = reopen_durable(&pager);
        assert_eq!(
            visible(&reopened),
            state,
            "{mode:?}: reopen shows the same state"
        );
        assert_eq!(
            reopened.recovery_decision(),
            Some(RecoveryDecision::Superblock)
        );
        assert_eq!(page.get(&reopened).unwrap().as_bytes()[0], 9);
    }
}

/// From `u64::MAX − 2`, allocations and protected writes succeed until the generation reaches
/// `u64::MAX`, then fail with `GenerationExhausted`; every acknowledged one survives a crash at
/// each step (the durable image opens with it). (Before: the commit after `u64::MAX` wrapped to
/// generation 0, reopening rolled back to `u64::MAX`, and two commits later the file was
/// unopenable; a debug build panicked with an overflow in the commit.)
#[test]
fn commits_up_to_the_last_generation_all_survive_reopen() {
    for mode in MODES {
        let mut pager = crafted(mode, MAX_GENERATION - 2);
        let protected = ProtectedPageId::<P>::from_raw(visible(&pager).protected[0].0);
        let mut acknowledged = Vec::new();
        let mut written = None;
        for step in 0.. {
            let result = if step % 2 == 0 {
                pager.alloc().map(|id| acknowledged.push(id))
            } else {
                protected.get_mut(&mut pager).and_then(|mut writer| {
                    writer.page_mut().as_bytes_mut()[0] = step as u8;
                    writer.commit()
                })
            };
            match result {
                Ok(()) => {
                    if step % 2 == 1 {
                        written = Some(step as u8);
                    }
                    let reopened = reopen_durable(&pager);
                    assert_eq!(
                        reopened.generation(),
                        pager.generation(),
                        "{mode:?} step {step}"
                    );
                    assert_eq!(visible(&reopened), visible(&pager), "{mode:?} step {step}");
                }
                Err(MappedPageError::GenerationExhausted { generation }) => {
                    assert_eq!(generation, MAX_GENERATION);
                    assert_eq!(step, 2, "{mode:?}: two commits fit below u64::MAX");
                    break;
                }
                Err(other) => panic!("{mode:?} step {step}: {other}"),
            }
        }
        assert!(!pager.is_poisoned());
        let reopened = reopen_durable(&pager);
        assert_eq!(reopened.generation(), MAX_GENERATION, "{mode:?}");
        for id in &acknowledged {
            assert!(
                reopened.is_allocated(*id),
                "{mode:?}: {id:?} acknowledged, then lost"
            );
        }
        assert_eq!(
            protected.get(&reopened).unwrap().as_bytes()[0],
            written.unwrap()
        );
        assert_eq!(visible(&reopened), visible(&pager), "{mode:?}");
    }
}

/// A `SharedPager` group commit at the last generation: the change fails with
/// `GenerationExhausted` for its caller, the pager is not poisoned and readers keep working.
#[test]
fn shared_pager_refuses_commits_at_the_last_generation() {
    for mode in MODES {
        let pager = crafted(mode, MAX_GENERATION - 1);
        let protected = ProtectedPageId::<P>::from_raw(visible(&pager).protected[0].0);
        let shared = SharedPager::new(pager);
        let id = shared.alloc().unwrap();
        expect_exhausted(shared.alloc(), "shared alloc");
        expect_exhausted(shared.free(id), "shared free");
        expect_exhausted(shared.alloc_protected(), "shared alloc_protected");
        expect_exhausted(
            shared.write_protected(protected, |page| page.as_bytes_mut()[0] = 1),
            "shared write_protected",
        );
        let guard = shared.read();
        assert!(guard.is_allocated(id));
        assert!(!guard.is_poisoned());
        assert_eq!(guard.generation(), MAX_GENERATION);
        drop(guard);
        let pager = shared.into_inner().unwrap();
        assert!(reopen_durable(&pager).is_allocated(id), "{mode:?}");
    }
}

/// INV-9: a superblock at `u64::MAX` whose copy is damaged has no successor generation to fall
/// back to; recovery returns a typed error. (Before: a debug build panicked computing
/// `u64::MAX + 1`.)
#[test]
fn damaged_copy_under_a_superblock_at_max_is_a_typed_error() {
    let pager = crafted(CommitMode::Flip, MAX_GENERATION);
    let mut image = pager.storage().durable_image();
    let named = Superblock::decode(&image).unwrap().active_meta;
    page_mut(&mut image, named.page())[200] ^= 1;
    match SimPager::open_in(SimStorage::from_image(image)) {
        Err(MappedPageError::CorruptMetadata { detail }) => {
            assert!(detail.contains("not the successor"), "{detail}")
        }
        other => panic!("expected CorruptMetadata, got {other:?}"),
    }
}

/// With the superblock damaged, the newest copy is the one at `u64::MAX`: recovery orders copies
/// at the top of the range like any others.
#[test]
fn damaged_superblock_over_copies_at_max_takes_the_newest() {
    for mode in MODES {
        let pager = crafted(mode, MAX_GENERATION);
        let state = visible(&pager);
        let mut image = pager.storage().durable_image();
        image[0] ^= 1;
        let reopened = SimPager::open_in(SimStorage::from_image(image)).unwrap();
        assert_eq!(
            reopened.recovery_decision(),
            Some(RecoveryDecision::NewestAfterCorruptSuperblock)
        );
        assert_eq!(visible(&reopened), state, "{mode:?}");
    }
}

/// The same on a real file: `Pager::open` of a crafted file at `u64::MAX`, an alloc that is
/// refused, and a reopen that shows the same state and file length.
#[test]
fn generation_at_max_on_a_file() {
    let mut image = history(CommitMode::Flip);
    shift_generations(&mut image, MAX_GENERATION);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pages.bin");
    std::fs::write(&path, &image).unwrap();

    let mut pager = Pager::<P>::open(&path).unwrap();
    let pages: BTreeSet<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    expect_exhausted(pager.alloc(), "alloc on a file");
    expect_exhausted(pager.alloc_bulk(100_000), "growing alloc_bulk on a file");
    assert!(!pager.is_poisoned());
    drop(pager);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        image,
        "nothing written to the file"
    );

    let pager = Pager::<P>::open(&path).unwrap();
    assert_eq!(pager.generation(), MAX_GENERATION);
    let reopened: BTreeSet<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    assert_eq!(reopened, pages);
}

/// INV-1/INV-2 at the bound: a crash anywhere in the commit that writes generation `u64::MAX`
/// (an alloc, then a protected write, from `u64::MAX − 1`) leaves images that all open, at the
/// state before the commit (`u64::MAX − 1`) or after it (`u64::MAX`), in both commit modes. Every
/// subset of the sectors in flight at each sync, at 512-byte sectors, at both lengths.
#[test]
fn every_crash_during_the_last_commit_recovers_before_or_after_it() {
    use mappedpages::{CrashLength, SectorSize};

    for mode in MODES {
        for protected_write in [false, true] {
            let start = crafted(mode, MAX_GENERATION - 1);
            let before = visible(&start);
            let protected = ProtectedPageId::<P>::from_raw(before.protected[0].0);
            let mut storage = start.into_storage();
            storage.record_sync_snapshots();
            let mut pager = SimPager::open_in(storage).unwrap();
            pager.set_commit_mode(mode);
            let opened_at = pager.storage().sync_snapshots().len();
            if protected_write {
                let mut writer = protected.get_mut(&mut pager).unwrap();
                writer.page_mut().as_bytes_mut()[0] ^= 0xFF;
                writer.commit().unwrap();
            } else {
                pager.alloc().unwrap();
            }
            let after = visible(&pager);
            assert_eq!(after.generation, MAX_GENERATION);
            let points = &pager.storage().sync_snapshots()[opened_at..];
            assert!(!points.is_empty());
            let mut images = 0;
            for point in points {
                let sectors = point.in_flight_sectors(SectorSize::S512);
                assert!(sectors.len() <= 12, "{} sectors in flight", sectors.len());
                for mask in 0u32..1 << sectors.len() {
                    let kept: Vec<u64> = (0..sectors.len())
                        .filter(|bit| mask & (1 << bit) != 0)
                        .map(|bit| sectors[bit])
                        .collect();
                    for length in [CrashLength::Durable, CrashLength::Current] {
                        let image = point.crash_image(SectorSize::S512, &kept, length);
                        let recovered = SimPager::open_in(SimStorage::from_image(image))
                            .unwrap_or_else(|error| {
                                panic!("{mode:?} protected={protected_write}: {error}")
                            });
                        let state = visible(&recovered);
                        assert!(
                            state == before || state == after,
                            "{mode:?} protected={protected_write}: recovered {state:?}"
                        );
                        images += 1;
                    }
                }
            }
            assert!(images > 2, "{mode:?}: {images} crash images");
        }
    }
}
