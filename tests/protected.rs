//! Protected pages under crashes, failed syncs and media corruption (SPEC.md INV-4, INV-13).
//!
//! A workload of protected allocations, repeated and partial commits of the same page, frees,
//! bulk calls and regular allocations runs on `SimStorage`. At every sync the images a crash can
//! leave (durable only, everything written, each single in-flight sector, all but each single
//! sector, at 512 and 4096-byte sectors) must open, hold the regular and protected state before
//! or after the operation in flight, with every protected page reading byte for byte as one of
//! those two states, and no protected-page page visible as a regular page.
//!
//! # A deliberate independent cross-check of crashsim
//!
//! crashsim is the crash harness: its `protected`, `protected-4k` and `pmix-*` workloads
//! (`crashsim::protected_model`) explore far more crash states of protected pages, judged by
//! `crashsim::check_image`, in the `.ci/run` gate. The crash loops here
//! (`crash_at_every_sync_of_protected_workloads_recovers_an_allowed_state`,
//! `failed_sync_at_every_point_of_protected_workloads`) are kept on purpose, with their own small
//! model (`Model`, `Op`, `run_op`, `observe`) and judge (`check_image`), written without
//! crashsim's code:
//! - a second judge, so that a bug in crashsim's judge (or in its protected model) does not hide
//!   the same protocol bug in both;
//! - a workload crashsim's protected model does not express: `Op::Reopen` between operations
//!   (later commits start from a recovered directory; a failed sync there is one of recovery's
//!   own writes, which `run_op` handles);
//! - the same model serves the file-backed tests below (`MmapStorage` repairs, single-page
//!   corruption of a real file), which crashsim, on `SimStorage` only, cannot run.
//!
//! Keep them small: a new crash or failure check belongs in crashsim (a phase, or a check of
//! `ProtectedScenario`), not here.

mod common;
use common::crash_images;

use std::collections::{BTreeMap, BTreeSet};

use mappedpages::{
    CommitMode, CrashLength, FailedSyncKeeps, MappedPageError, PageId, Pager, ProtectedPageId,
    SectorSize, SimStorage,
};

/// Both commit modes: every crash and failure test runs in each.
const MODES: [CommitMode; 2] = [CommitMode::Flip, CommitMode::SingleSync];

const P: usize = 1024;
type SimPager = Pager<P, SimStorage>;

/// What a pager holds: regular pages and protected pages with their content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    regular: BTreeSet<u64>,
    protected: BTreeMap<u64, Vec<u8>>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Alloc,
    AllocProtected,
    AllocProtectedBulk(usize),
    /// Write `len` bytes of value `value` at `offset` into the n-th protected page and commit.
    Write {
        nth: usize,
        offset: usize,
        len: usize,
        value: u8,
    },
    FreeProtected(usize),
    /// Free every other protected page, starting at the n-th, up to `count`.
    FreeProtectedBulk {
        start: usize,
        count: usize,
    },
    /// Close and reopen (recovery runs): later commits start from the recovered directory.
    Reopen,
}

fn workload() -> Vec<Op> {
    let mut ops = vec![
        Op::AllocProtected,
        Op::Alloc,
        Op::Write {
            nth: 0,
            offset: 0,
            len: P,
            value: 0x11,
        },
        // Several commits of the same page, partial updates in different sectors.
        Op::Write {
            nth: 0,
            offset: 10,
            len: 20,
            value: 0x22,
        },
        Op::Write {
            nth: 0,
            offset: 600,
            len: 300,
            value: 0x33,
        },
        Op::Write {
            nth: 0,
            offset: 500,
            len: 24,
            value: 0x44,
        },
        Op::AllocProtectedBulk(5),
        Op::Reopen,
        Op::Write {
            nth: 3,
            offset: 0,
            len: 512,
            value: 0x55,
        },
        Op::FreeProtected(1),
        // Reuses the freed entry and its pages: must read as zeros.
        Op::AllocProtected,
        Op::Write {
            nth: 1,
            offset: 1000,
            len: 24,
            value: 0x66,
        },
        Op::Alloc,
        // Enough to need a second directory block (30 entries per block at 1 KiB) and to grow.
        Op::AllocProtectedBulk(30),
        Op::Write {
            nth: 33,
            offset: 100,
            len: 100,
            value: 0x77,
        },
        Op::FreeProtectedBulk {
            start: 0,
            count: 10,
        },
        Op::Reopen,
        Op::Write {
            nth: 0,
            offset: 0,
            len: 8,
            value: 0x88,
        },
        Op::AllocProtectedBulk(4),
        Op::Alloc,
    ];
    ops.push(Op::FreeProtected(2));
    ops
}

fn nth_protected(model: &Model, n: usize) -> u64 {
    *model
        .protected
        .keys()
        .nth(n % model.protected.len())
        .expect("model has protected pages")
}

thread_local! {
    /// The durable image of a storage whose reopen failed (its pager is gone).
    static FAILED_REOPEN_IMAGE: std::cell::Cell<Option<Vec<u8>>> =
        const { std::cell::Cell::new(None) };
}

fn run_op(pager: &mut SimPager, model: &Model, op: Op) -> Result<Model, MappedPageError> {
    let mut next = model.clone();
    match op {
        Op::Reopen => {
            let mode = pager.commit_mode();
            let placeholder = SimPager::create_in(SimStorage::new())?;
            let storage = std::mem::replace(pager, placeholder).into_storage();
            match SimPager::try_open_in(storage) {
                Ok(reopened) => *pager = reopened,
                Err((error, storage)) => {
                    // A failed repair sync during recovery: keep the storage, so the caller can
                    // check what is on its disk.
                    FAILED_REOPEN_IMAGE.set(Some(storage.durable_image()));
                    return Err(error);
                }
            }
            pager.set_commit_mode(mode);
        }
        Op::Alloc => {
            let id = pager.alloc()?;
            assert!(
                next.regular.insert(id.raw()),
                "alloc returned an owned page"
            );
        }
        Op::AllocProtected => {
            let id = pager.alloc_protected()?;
            assert!(
                next.protected.insert(id.raw(), vec![0; P]).is_none(),
                "alloc_protected returned an owned id"
            );
        }
        Op::AllocProtectedBulk(count) => {
            for id in pager.alloc_protected_bulk(count)? {
                assert!(next.protected.insert(id.raw(), vec![0; P]).is_none());
            }
        }
        Op::Write {
            nth,
            offset,
            len,
            value,
        } => {
            let raw = nth_protected(model, nth);
            let id = ProtectedPageId::<P>::from_raw(raw);
            let mut writer = id.get_mut(pager)?;
            assert_eq!(
                writer.page().as_bytes(),
                &model.protected[&raw][..],
                "INV-4: the writer must start from the committed content"
            );
            writer.page_mut().as_bytes_mut()[offset..offset + len].fill(value);
            writer.commit()?;
            next.protected.get_mut(&raw).expect("model page")[offset..offset + len].fill(value);
        }
        Op::FreeProtected(nth) => {
            let raw = nth_protected(model, nth);
            pager.free_protected(ProtectedPageId::from_raw(raw))?;
            next.protected.remove(&raw);
        }
        Op::FreeProtectedBulk { start, count } => {
            let ids: Vec<u64> = model
                .protected
                .keys()
                .copied()
                .skip(start)
                .step_by(2)
                .take(count)
                .collect();
            pager.free_protected_bulk(
                ids.iter().copied().map(ProtectedPageId::from_raw).collect(),
            )?;
            for raw in ids {
                next.protected.remove(&raw);
            }
        }
    }
    Ok(next)
}

/// The state a pager shows; fails on a protected page that cannot be read.
fn observe(pager: &SimPager) -> Result<Model, MappedPageError> {
    let regular = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    let mut protected = BTreeMap::new();
    for id in pager.iter_allocated_protected_pages() {
        protected.insert(id.raw(), id.get(pager)?.as_bytes().to_vec());
    }
    Ok(Model { regular, protected })
}

fn summary(model: &Model) -> String {
    format!(
        "{} regular, {} protected",
        model.regular.len(),
        model.protected.len()
    )
}

struct Step {
    syncs_before: u64,
    syncs_after: u64,
    before: Model,
    after: Model,
}

fn record_run(mode: CommitMode) -> (SimPager, Vec<Step>, u64) {
    let mut storage = SimStorage::new();
    storage.record_sync_snapshots();
    let mut pager = SimPager::create_in(storage).expect("create");
    pager.set_commit_mode(mode);
    let create_syncs = pager.storage().sync_count();
    let mut model = Model::default();
    let mut steps = Vec::new();
    for op in workload() {
        let syncs_before = pager.storage().sync_count();
        let after = run_op(&mut pager, &model, op).expect("workload op");
        assert_eq!(observe(&pager).expect("readable"), after, "after {op:?}");
        steps.push(Step {
            syncs_before,
            syncs_after: pager.storage().sync_count(),
            before: model,
            after: after.clone(),
        });
        model = after;
    }
    (pager, steps, create_syncs)
}

/// The cross-check's judge (deliberately independent of `crashsim::check_image`, see the module
/// docs). Opens `image`: it must hold one of `allowed`, well-formed (INV-1, INV-2, INV-4, INV-5),
/// and keep working afterwards. Returns the recovered model.
fn check_image(image: Vec<u8>, allowed: &[&Model], context: &str) -> Model {
    let mut pager = SimPager::open_in(SimStorage::from_image(image))
        .unwrap_or_else(|e| panic!("INV-1: {context}: crash image does not open: {e}"));
    let recovered = observe(&pager)
        .unwrap_or_else(|e| panic!("INV-4: {context}: a protected page is unreadable: {e}"));
    assert!(
        allowed.iter().any(|m| **m == recovered),
        "INV-2/INV-4: {context}: recovered {}, allowed {:?}",
        summary(&recovered),
        allowed.iter().map(|m| summary(m)).collect::<Vec<_>>()
    );
    // INV-5: counts agree, so no internal page hides among the regular ones.
    assert_eq!(
        pager.allocated_page_count(),
        recovered.regular.len() as u64,
        "INV-5: {context}: regular count"
    );
    assert_eq!(
        pager.protected_page_count(),
        recovered.protected.len() as u64,
        "INV-5: {context}: protected count"
    );
    for &page in &recovered.regular {
        assert!(
            PageId::<P>::from_raw(page).get(&pager).is_ok(),
            "INV-5: {context}: regular page {page} not readable"
        );
    }
    // Operations after recovery keep working and never hand out an owned page.
    let fresh = pager
        .alloc_protected()
        .expect("alloc_protected after recovery");
    assert!(!recovered.protected.contains_key(&fresh.raw()));
    assert!(
        fresh
            .get(&pager)
            .expect("fresh")
            .as_bytes()
            .iter()
            .all(|&b| b == 0)
    );
    let regular = pager.alloc().expect("alloc after recovery");
    assert!(!recovered.regular.contains(&regular.raw()));
    recovered
}

#[test]
fn crash_at_every_sync_of_protected_workloads_recovers_an_allowed_state() {
    for mode in MODES {
        crash_at_every_sync(mode);
    }
}

fn crash_at_every_sync(mode: CommitMode) {
    let (pager, steps, create_syncs) = record_run(mode);
    let snapshots = pager.storage().sync_snapshots().to_vec();
    let mut images_checked = 0u64;
    for (index, snapshot) in snapshots.iter().enumerate().skip(create_syncs as usize) {
        let index = index as u64;
        let step = steps
            .iter()
            .find(|s| s.syncs_before <= index && index < s.syncs_after)
            .expect("every sync belongs to an op");
        let allowed = [&step.before, &step.after];
        for sector in [SectorSize::S512, SectorSize::S4096] {
            for (name, image) in crash_images(snapshot, sector) {
                check_image(
                    image,
                    &allowed,
                    &format!("{mode:?}: sync {index}, {sector:?}, {name}"),
                );
                images_checked += 1;
            }
        }
    }
    let last = &steps.last().expect("steps").after;
    assert_eq!(
        &check_image(pager.storage().durable_image(), &[last], "end"),
        last
    );
    assert!(
        steps.iter().any(|s| s.after.protected.len() > 30),
        "the workload must fill more than one directory block (30 entries at 1 KiB)"
    );
    println!(
        "{mode:?}: {} syncs, {images_checked} crash images checked",
        snapshots.len() as u64 - create_syncs
    );
}

/// INV-7: a failure injected at any sync of the workload returns an error, poisons the pager,
/// and leaves a disk that recovers to the state before or after the failed operation, whatever
/// part of the failed sync's writes arrived.
#[test]
fn failed_sync_at_every_point_of_protected_workloads() {
    for mode in MODES {
        failed_sync_at_every_point(mode);
    }
}

fn failed_sync_at_every_point(mode: CommitMode) {
    let (pager, steps, create_syncs) = record_run(mode);
    let total_syncs = pager.storage().sync_count();
    let mut cases = 0;
    for fail_at in create_syncs..total_syncs {
        for keeps in [
            FailedSyncKeeps::Nothing,
            FailedSyncKeeps::Everything,
            FailedSyncKeeps::Seeded(fail_at),
        ] {
            let mut storage = SimStorage::new();
            storage.fail_sync_at(fail_at, keeps);
            let mut pager = SimPager::create_in(storage).expect("create");
            pager.set_commit_mode(mode);
            let mut model = Model::default();
            let mut failed = None;
            for (op_index, op) in workload().into_iter().enumerate() {
                match run_op(&mut pager, &model, op) {
                    Ok(after) => model = after,
                    Err(error) => {
                        failed = Some((op_index, error));
                        break;
                    }
                }
            }
            let (op_index, error) = failed.expect("the injected failure must surface");
            let step = &steps[op_index];
            assert!(
                step.syncs_before <= fail_at && fail_at < step.syncs_after,
                "the failure surfaced in the op that owns sync {fail_at}"
            );
            assert!(
                matches!(error, MappedPageError::Io { .. }),
                "INV-7: {error}"
            );
            let context = format!("{mode:?}: failed sync {fail_at} ({keeps:?})");
            let image = if let Some(image) = FAILED_REOPEN_IMAGE.take() {
                // Recovery's own repair sync failed: open_in returned the error.
                assert!(matches!(workload()[op_index], Op::Reopen), "{context}");
                image
            } else {
                assert!(pager.is_poisoned(), "INV-7: a failed sync must poison");
                assert!(matches!(
                    pager.alloc_protected(),
                    Err(MappedPageError::Poisoned { .. })
                ));
                pager.storage().durable_image()
            };
            let allowed = [&step.before, &step.after];
            check_image(image, &allowed, &context);
            cases += 1;
        }
    }
    println!("{mode:?}: {cases} failed-sync cases checked");
}

fn find_pages(image: &[u8], pattern: &[u8]) -> Vec<u64> {
    image
        .chunks(P)
        .enumerate()
        .filter(|(_, page)| page.starts_with(pattern))
        .map(|(index, _)| index as u64)
        .collect()
}

#[test]
fn partial_update_keeps_other_bytes_and_reused_pages_read_zeros() {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    let id = pager.alloc_protected().unwrap();
    let mut writer = id.get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut().fill(0xAB);
    writer.commit().unwrap();
    // Second commit: the staged copy is the page's other copy, which held zeros.
    let mut writer = id.get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut()[..4].copy_from_slice(b"head");
    writer.commit().unwrap();
    // Third: back to the first copy, which held the first commit's bytes.
    let mut writer = id.get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut()[P - 4..].copy_from_slice(b"tail");
    writer.commit().unwrap();
    let bytes = id.get(&pager).unwrap().as_bytes().to_vec();
    assert_eq!(&bytes[..4], b"head");
    assert_eq!(&bytes[P - 4..], b"tail");
    assert!(bytes[4..P - 4].iter().all(|&b| b == 0xAB));

    // Reopen: the same bytes.
    let pager2 =
        SimPager::open_in(SimStorage::from_image(pager.storage().durable_image())).unwrap();
    assert_eq!(id.get(&pager2).unwrap().as_bytes(), &bytes[..]);

    // Free and reallocate: the entry and both copies are reused, and read as zeros.
    pager.free_protected(id).unwrap();
    let again = pager.alloc_protected().unwrap();
    assert_eq!(again, id, "the lowest free entry is reused");
    assert!(
        again
            .get(&pager)
            .unwrap()
            .as_bytes()
            .iter()
            .all(|&b| b == 0)
    );
    let writer = again.get_mut(&mut pager).unwrap();
    assert!(writer.page().as_bytes().iter().all(|&b| b == 0));
}

#[test]
fn corrupt_committed_copy_is_an_error_not_data() {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    let ids = pager.alloc_protected_bulk(3).unwrap();
    for (index, id) in ids.iter().enumerate() {
        let mut writer = id.get_mut(&mut pager).unwrap();
        writer.page_mut().as_bytes_mut()[..8].copy_from_slice(b"PATTERN0");
        writer.page_mut().as_bytes_mut()[7] = b'0' + index as u8;
        writer.commit().unwrap();
    }
    let mut image = pager.storage().durable_image();
    let pages = find_pages(&image, b"PATTERN1");
    assert_eq!(pages.len(), 1, "one committed copy holds the pattern");
    let offset = pages[0] as usize * P + 500;
    image[offset] ^= 0x40;
    let mut damaged = SimPager::open_in(SimStorage::from_image(image)).expect("opens");
    assert!(matches!(
        ids[1].get(&damaged),
        Err(MappedPageError::CorruptProtectedPage { id, page }) if id == ids[1].raw() && page == pages[0]
    ));
    assert!(matches!(
        ids[1].get_mut(&mut damaged),
        Err(MappedPageError::CorruptProtectedPage { .. })
    ));
    // The other protected pages are intact.
    assert_eq!(&ids[0].get(&damaged).unwrap().as_bytes()[..8], b"PATTERN0");
    assert_eq!(&ids[2].get(&damaged).unwrap().as_bytes()[..8], b"PATTERN2");
    // Freeing the damaged page works; the pages come back as zeros.
    damaged.free_protected(ids[1]).unwrap();
    let fresh = damaged.alloc_protected().unwrap();
    assert!(
        fresh
            .get(&damaged)
            .unwrap()
            .as_bytes()
            .iter()
            .all(|&b| b == 0)
    );
}

/// INV-13: any single directory page (any of the four pages of each block) or the superblock,
/// zeroed or with a flipped bit, leaves a file that opens with every protected page intact.
#[test]
fn any_single_corrupt_directory_page_or_superblock_keeps_the_file_openable() {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    let ids = pager.alloc_protected_bulk(40).unwrap();
    for (index, id) in ids.iter().enumerate().step_by(3) {
        let mut writer = id.get_mut(&mut pager).unwrap();
        writer.page_mut().as_bytes_mut()[..2].copy_from_slice(&(index as u16).to_le_bytes());
        writer.commit().unwrap();
    }
    pager.free_protected(ids[5]).unwrap();
    let expected = observe(&pager).unwrap();
    let image = pager.storage().durable_image();
    let mut directory_pages = find_pages(&image, b"MAPPGPD\x01");
    assert!(
        directory_pages.len() >= 6,
        "two blocks: at least six slot pages written, found {}",
        directory_pages.len()
    );
    directory_pages.push(0);
    let mut cases = 0;
    for &page in &directory_pages {
        for damage in 0..3 {
            let mut bad = image.clone();
            let start = page as usize * P;
            match damage {
                0 => bad[start..start + P].fill(0),
                1 => bad[start + 700] ^= 1,
                _ => bad[start..start + 512].fill(0),
            }
            let pager = SimPager::open_in(SimStorage::from_image(bad))
                .unwrap_or_else(|e| panic!("INV-13: page {page} damage {damage}: {e}"));
            assert_eq!(
                observe(&pager).expect("readable"),
                expected,
                "INV-13: page {page} damage {damage}"
            );
            cases += 1;
        }
    }
    println!("{cases} single-page corruptions checked");
}

/// The cost targets: alloc_protected, a protected commit and free_protected take two barriers
/// each (one in single-sync mode), even when the allocation grows the file or adds a directory
/// block.
#[test]
fn protected_operations_take_two_syncs() {
    protected_operation_syncs(CommitMode::Flip, 2);
}

#[test]
fn protected_operations_take_one_sync_in_single_sync_mode() {
    protected_operation_syncs(CommitMode::SingleSync, 1);
}

fn protected_operation_syncs(mode: CommitMode, expected: u64) {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    pager.set_commit_mode(mode);
    let syncs = |pager: &SimPager| pager.storage().sync_count();
    let mut ids = Vec::new();
    for round in 0..40 {
        let before = syncs(&pager);
        let grows_before = pager.storage().grow_count();
        let id = pager.alloc_protected().unwrap();
        assert_eq!(
            syncs(&pager) - before,
            expected,
            "alloc_protected {round} (grew: {})",
            pager.storage().grow_count() > grows_before
        );
        let before = syncs(&pager);
        let mut writer = id.get_mut(&mut pager).unwrap();
        writer.page_mut().as_bytes_mut()[0] = round as u8;
        writer.commit().unwrap();
        assert_eq!(syncs(&pager) - before, expected, "protected commit {round}");
        ids.push(id);
    }
    assert!(
        pager.storage().grow_count() > 1,
        "the loop must grow the file"
    );
    for id in ids {
        let before = syncs(&pager);
        pager.free_protected(id).unwrap();
        assert_eq!(syncs(&pager) - before, expected, "free_protected");
    }
    let before = syncs(&pager);
    let ids = pager.alloc_protected_bulk(100).unwrap();
    assert_eq!(
        syncs(&pager) - before,
        expected,
        "alloc_protected_bulk(100)"
    );
    let before = syncs(&pager);
    pager.free_protected_bulk(ids).unwrap();
    assert_eq!(syncs(&pager) - before, expected, "free_protected_bulk(100)");
}

#[test]
fn bad_protected_ids_give_typed_errors_and_change_nothing() {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    let ids = pager.alloc_protected_bulk(3).unwrap();
    let generation = pager.generation();
    for raw in [3u64, 29, 30, 1 << 40, u64::MAX] {
        let id = ProtectedPageId::<P>::from_raw(raw);
        assert!(matches!(
            id.get(&pager),
            Err(MappedPageError::ProtectedNotAllocated { .. })
        ));
        assert!(matches!(
            id.get_mut(&mut pager),
            Err(MappedPageError::ProtectedNotAllocated { .. })
        ));
        assert!(matches!(
            pager.free_protected(id),
            Err(MappedPageError::ProtectedNotAllocated { .. })
        ));
        assert!(matches!(
            pager.free_protected_bulk(vec![ids[0], id]),
            Err(MappedPageError::ProtectedNotAllocated { .. })
        ));
    }
    assert_eq!(pager.generation(), generation, "nothing was committed");
    assert_eq!(pager.protected_page_count(), 3);
    // Backing and directory pages are not regular pages: every access through a PageId fails.
    for page in 0..pager.page_count() {
        let id = PageId::<P>::from_raw(page);
        assert!(!pager.is_allocated(id), "page {page}");
        assert!(id.get(&pager).is_err());
        assert!(pager.free(id).is_err());
    }
    assert_eq!(pager.generation(), generation, "nothing was committed");
}

mod malformed_directory {
    //! INV-9: checksum-valid but impossible directories give a typed error, never a panic. Each
    //! case edits the committed directory with the format module's pure functions and re-signs
    //! everything (slots, directory digest, metadata copy, superblock), so the deep checks of
    //! SPEC.md §4.1 steps 6-7 are what must reject it.

    use super::*;
    use mappedpages::format::{
        DirectorySlot, Geometry, MetaPage, MetaSlot, Superblock, decode_directory_slot,
        directory_digest_term, encode_directory_slot, slot_checksum_field,
    };
    use mappedpages::{CrashLength, SectorSize, Storage};

    fn page(image: &mut [u8], index: u64) -> &mut [u8] {
        &mut image[index as usize * P..(index as usize + 1) * P]
    }

    /// A file with two directory blocks and the committed slots of each block.
    type Fixture = (
        Vec<u8>,
        MetaPage,
        Vec<([u64; 4], usize, DirectorySlot)>,
        u64,
    );

    /// Also returns a page that is free in the bitmap.
    fn fixture() -> Fixture {
        let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
        pager.alloc_protected_bulk(40).unwrap();
        let spare = pager.alloc().unwrap();
        pager.free(spare).unwrap();
        let mut image = pager.storage().durable_image();
        let geometry = Geometry::with_group_table(P);
        let sb = Superblock::decode(&image).unwrap();
        let meta = MetaPage::decode(page(&mut image, sb.active_meta.page()), geometry).unwrap();
        let mut blocks = Vec::new();
        let mut pages = meta.directory.head_pages;
        for block in 0..meta.directory.block_count {
            let page_count = meta.page_count;
            let (position, slot) = pages
                .iter()
                .enumerate()
                .filter_map(|(position, &p)| {
                    decode_directory_slot(page(&mut image, p), geometry, block, page_count)
                        .ok()
                        .map(|slot| (position, slot))
                })
                .max_by_key(|(_, slot)| slot.generation)
                .unwrap();
            let next = slot.next_pages;
            blocks.push((pages, position % 2, slot));
            pages = next;
        }
        (image, meta, blocks, spare.raw())
    }

    /// Writes `blocks` (both mirrors), a matching digest into `meta`, `meta` into the active
    /// copy, and a superblock naming it.
    fn rewrite(
        mut image: Vec<u8>,
        mut meta: MetaPage,
        blocks: &[([u64; 4], usize, DirectorySlot)],
    ) -> Vec<u8> {
        let geometry = Geometry::with_group_table(P);
        let mut digest = 0;
        for (pages, slot_index, slot) in blocks {
            let mut checksum = 0;
            for mirror in [0, 2] {
                checksum = encode_directory_slot(
                    geometry,
                    slot,
                    page(&mut image, pages[mirror + slot_index]),
                );
            }
            digest ^= directory_digest_term(slot.block, slot.generation, checksum);
        }
        meta.directory.digest = digest;
        sign_meta(image, &meta)
    }

    /// Writes `meta` into the active copy and a superblock naming it.
    fn sign_meta(mut image: Vec<u8>, meta: &MetaPage) -> Vec<u8> {
        let geometry = Geometry::with_group_table(P);
        let sb = Superblock::decode(&image).unwrap();
        let active: MetaSlot = sb.active_meta;
        let checksum = meta.encode(geometry, page(&mut image, active.page()));
        let record = Superblock {
            active_meta_checksum: checksum,
            ..sb
        }
        .encode();
        image[..record.len()].copy_from_slice(&record);
        image
    }

    fn expect_typed_error(image: Vec<u8>, case: &str) {
        match SimPager::open_in(SimStorage::from_image(image)) {
            Err(MappedPageError::CorruptMetadata { detail }) => {
                println!("{case}: {detail}");
            }
            Err(other) => panic!("{case}: unexpected error {other}"),
            Ok(_) => panic!("{case}: an impossible directory was accepted"),
        }
    }

    #[test]
    fn the_fixture_round_trips() {
        let (image, meta, blocks, _) = fixture();
        assert_eq!(blocks.len(), 2);
        let pager = SimPager::open_in(SimStorage::from_image(rewrite(image, meta, &blocks)))
            .expect("an unchanged directory, re-signed, opens");
        assert_eq!(pager.protected_page_count(), 40);
    }

    /// §4.1 steps 6-7: when both mirrors of a block's current slot are damaged, the older slot
    /// is valid but the directory digest no longer matches: a typed error, never a silent
    /// rollback of the protected pages to an older directory.
    #[test]
    fn both_mirrors_of_the_current_slot_damaged_is_an_error_not_a_rollback() {
        let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
        let id = pager.alloc_protected().unwrap();
        for round in 1..=2u8 {
            let mut writer = id.get_mut(&mut pager).unwrap();
            writer.page_mut().as_bytes_mut()[0] = round;
            writer.commit().unwrap();
        }
        let mut image = pager.storage().durable_image();
        let geometry = Geometry::with_group_table(P);
        let sb = Superblock::decode(&image).unwrap();
        let meta = MetaPage::decode(page(&mut image, sb.active_meta.page()), geometry).unwrap();
        let pages = meta.directory.head_pages;
        let generation = |image: &mut Vec<u8>, p: u64| {
            decode_directory_slot(page(image, p), geometry, 0, meta.page_count)
                .map(|slot| slot.generation)
                .unwrap_or(0)
        };
        let current = if generation(&mut image, pages[1]) > generation(&mut image, pages[0]) {
            1
        } else {
            0
        };
        assert!(
            generation(&mut image, pages[1 - current]) > 0,
            "an older valid slot exists"
        );
        for mirror in [0, 2] {
            page(&mut image, pages[mirror + current])[..512].fill(0);
        }
        match SimPager::open_in(SimStorage::from_image(image)) {
            Err(MappedPageError::CorruptMetadata { detail }) => {
                assert!(detail.contains("directory"), "{detail}")
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(pager) => panic!(
                "rolled back silently: page reads {:?}",
                id.get(&pager).map(|p| p.as_bytes()[0])
            ),
        }
    }

    /// §4.1 step 6: the two mirrors of the current slot must be identical. Whichever of the
    /// two the metadata's digest vouches for, a disagreement is an error.
    #[test]
    fn mirrors_that_disagree_are_rejected() {
        let (image, meta, blocks, _) = fixture();
        let geometry = Geometry::with_group_table(P);
        let (pages, current, slot) = &blocks[0];
        let mut other = slot.clone();
        other.entries[0].as_mut().unwrap().content_checksum ^= 1;
        let block1_page = blocks[1].0[blocks[1].1];
        let block1_term = {
            let checksum = slot_checksum_field(&image[block1_page as usize * P..]).unwrap();
            directory_digest_term(1, blocks[1].2.generation, checksum)
        };
        for vouched in ["X", "Y"] {
            let mut image = image.clone();
            let x = encode_directory_slot(geometry, slot, page(&mut image, pages[*current]));
            let y = encode_directory_slot(geometry, &other, page(&mut image, pages[2 + current]));
            let checksum = if vouched == "X" { x } else { y };
            let mut meta = meta.clone();
            meta.directory.digest =
                directory_digest_term(0, slot.generation, checksum) ^ block1_term;
            match SimPager::open_in(SimStorage::from_image(sign_meta(image, &meta))) {
                Err(MappedPageError::CorruptMetadata { detail }) => {
                    assert!(detail.contains("different contents"), "{vouched}: {detail}")
                }
                Err(other) => panic!("{vouched}: unexpected error {other}"),
                Ok(_) => panic!("{vouched}: mirrors that disagree were accepted"),
            }
        }
    }

    /// §4.3 step 1: directory slots written by a commit that never completed are scrubbed, so
    /// a later commit of the same generation cannot be completed with them.
    #[test]
    fn recovery_scrubs_directory_slots_of_a_commit_that_never_completed() {
        let mut storage = SimStorage::new();
        storage.record_sync_snapshots();
        let mut pager = SimPager::create_in(storage).unwrap();
        let id = pager.alloc_protected().unwrap();
        let mut writer = id.get_mut(&mut pager).unwrap();
        writer.page_mut().as_bytes_mut()[0] = 1;
        writer.commit().unwrap();
        let committed = pager.generation();
        let first_barrier = pager.storage().sync_count();
        let mut writer = id.get_mut(&mut pager).unwrap();
        writer.page_mut().as_bytes_mut()[0] = 2;
        writer.commit().unwrap();
        // Crash before the flip became durable: the first barrier (directory slot, metadata)
        // is on disk, the superblock still names the committed generation.
        let snapshot = &pager.storage().sync_snapshots()[first_barrier as usize + 1];
        let image = snapshot.crash_image(SectorSize::S512, &[], CrashLength::Current);
        let recovered = SimPager::open_in(SimStorage::from_image(image)).unwrap();
        assert_eq!(recovered.generation(), committed);
        assert_eq!(id.get(&recovered).unwrap().as_bytes()[0], 1);
        let geometry = Geometry::with_group_table(P);
        let bytes = recovered.storage().bytes();
        for (index, page) in bytes.chunks(P).enumerate() {
            if let Ok(slot) = decode_directory_slot(page, geometry, 0, recovered.page_count()) {
                assert!(
                    slot.generation <= committed,
                    "page {index} still holds a directory slot of generation {}",
                    slot.generation
                );
            }
        }
        // The recovered file goes on: the next commit reuses the scrubbed generation.
        let mut recovered = recovered;
        let mut writer = id.get_mut(&mut recovered).unwrap();
        writer.page_mut().as_bytes_mut()[0] = 3;
        writer.commit().unwrap();
        let reopened =
            SimPager::open_in(SimStorage::from_image(recovered.storage().durable_image())).unwrap();
        assert_eq!(id.get(&reopened).unwrap().as_bytes()[0], 3);
    }

    #[test]
    fn impossible_directories_are_rejected() {
        let (image, meta, blocks, free_page) = fixture();
        let entry = |blocks: &[([u64; 4], usize, DirectorySlot)], b: usize, e: usize| {
            blocks[b].2.entries[e].expect("in use")
        };

        // A backing page owned by two entries.
        let mut edited = blocks.clone();
        let other = entry(&blocks, 0, 1).copies[0];
        edited[0].2.entries[0].as_mut().unwrap().copies[1] = other;
        expect_typed_error(rewrite(image.clone(), meta.clone(), &edited), "owned twice");

        // A backing page that is free in the bitmap.
        let mut edited = blocks.clone();
        edited[1].2.entries[5].as_mut().unwrap().copies[0] = free_page;
        expect_typed_error(rewrite(image.clone(), meta.clone(), &edited), "free page");

        // A chain that loops back to block 0.
        let mut edited = blocks.clone();
        edited[1].2.next_pages = blocks[0].0;
        let mut looped = meta.clone();
        looped.directory.block_count = 3;
        expect_typed_error(rewrite(image.clone(), looped, &edited), "loop");

        // More blocks counted than chained, and fewer.
        for count in [1, 3] {
            let mut counted = meta.clone();
            counted.directory.block_count = count;
            expect_typed_error(
                rewrite(image.clone(), counted, &blocks),
                &format!("count {count}"),
            );
        }

        // A directory page that is also a backing copy.
        let mut edited = blocks.clone();
        edited[0].2.entries[2].as_mut().unwrap().copies[0] = blocks[1].0[3];
        expect_typed_error(
            rewrite(image.clone(), meta.clone(), &edited),
            "block page as copy",
        );

        // An entry newer than its slot is rejected by the slot decoder: no valid slot.
        let mut edited = blocks.clone();
        edited[0].2.entries[3].as_mut().unwrap().content_generation = u64::MAX;
        expect_typed_error(rewrite(image, meta, &edited), "entry from the future");
    }
}

/// The state `pager` holds (as [`observe`], for any storage).
fn observe_file<S: mappedpages::Storage>(pager: &Pager<P, S>) -> Result<Model, MappedPageError> {
    let regular = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    let mut protected = BTreeMap::new();
    for id in pager.iter_allocated_protected_pages() {
        protected.insert(id.raw(), id.get(pager)?.as_bytes().to_vec());
    }
    Ok(Model { regular, protected })
}

/// SPEC.md §4.3 step 2, INV-13 after a crash: a single-sync commit that changes a directory
/// block writes its new slot into both mirrors in one barrier, so a crash can keep only one of
/// them while the commit still loads (and is taken: it is complete). Recovery must restore the
/// other mirror; otherwise the block's current slot lives on one page until a later commit
/// rewrites the block, and damage to that page makes the file unopenable. Each directory-changing
/// operation (alloc_protected with a new block, a protected write, free_protected, bulk alloc and
/// bulk free) is crashed keeping everything but one new mirror page, in both commit modes; the
/// crash image is recovered from a real file (the repair goes through `MmapStorage`), then every
/// directory page and the superblock is zeroed in turn: each must open to the recovered state.
#[test]
fn a_crash_keeping_one_new_directory_mirror_leaves_the_directory_redundant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mirror.bin");
    let mut checked = 0;
    for mode in MODES {
        let mut storage = SimStorage::new();
        storage.record_sync_snapshots();
        let mut pager = SimPager::create_in(storage).expect("create");
        pager.set_commit_mode(mode);
        let ops = [
            Op::AllocProtected,
            Op::Write {
                nth: 0,
                offset: 10,
                len: 100,
                value: 7,
            },
            Op::AllocProtectedBulk(40),
            Op::Write {
                nth: 35,
                offset: 0,
                len: 8,
                value: 9,
            },
            Op::FreeProtected(1),
            Op::FreeProtectedBulk { start: 2, count: 6 },
        ];
        let mut model = Model::default();
        for op in ops {
            let first_sync = pager.storage().sync_count() as usize;
            let after = run_op(&mut pager, &model, op).expect("op");
            let snapshot = &pager.storage().sync_snapshots()[first_sync];
            let in_flight = snapshot.in_flight_sectors(SectorSize::S512);
            let everything =
                snapshot.crash_image(SectorSize::S512, &in_flight, CrashLength::Current);
            let generation = pager.generation().to_le_bytes();
            let new_mirrors: Vec<u64> = find_pages(&everything, b"MAPPGPD\x01")
                .into_iter()
                .filter(|&page| everything[page as usize * P + 16..][..8] == generation)
                .collect();
            assert!(
                new_mirrors.len() >= 2 && new_mirrors.len().is_multiple_of(2),
                "{mode:?} {op:?}: the commit writes each changed block into two mirrors, found {new_mirrors:?}"
            );
            for &dropped in &new_mirrors {
                let sectors = (dropped * P as u64 / 512)..((dropped + 1) * P as u64 / 512);
                let kept: Vec<u64> = in_flight
                    .iter()
                    .copied()
                    .filter(|sector| !sectors.contains(sector))
                    .collect();
                let image = snapshot.crash_image(SectorSize::S512, &kept, CrashLength::Current);
                std::fs::write(&path, &image).expect("write the crash image");
                let recovered = {
                    let pager = Pager::<P>::open(&path).unwrap_or_else(|e| {
                        panic!("INV-1: {mode:?} {op:?} without mirror {dropped}: {e}")
                    });
                    observe_file(&pager).expect("readable")
                };
                assert!(
                    recovered == model || recovered == after,
                    "INV-2: {mode:?} {op:?} without mirror {dropped}: recovered {}",
                    summary(&recovered)
                );
                if mode == CommitMode::SingleSync {
                    assert_eq!(
                        recovered, after,
                        "{op:?}: the single-sync commit is complete without one mirror"
                    );
                }
                // INV-6: a crash during any of recovery's writes (the mirror copy included)
                // leaves an image that recovers the same state, and, recovered, is redundant.
                let mut storage = SimStorage::from_image(image.clone());
                storage.record_sync_snapshots();
                let storage = SimPager::open_in(storage).expect("opens").into_storage();
                for point in storage.sync_snapshots() {
                    for (name, crashed) in crash_images(point, SectorSize::S512) {
                        let storage = SimPager::open_in(SimStorage::from_image(crashed))
                            .unwrap_or_else(|e| {
                                panic!("INV-6: {mode:?} {op:?} without mirror {dropped}, recovery crashed ({name}): {e}")
                            })
                            .into_storage();
                        let rerun = storage.durable_image();
                        let context = format!(
                            "{mode:?} {op:?} without mirror {dropped}, recovery crashed ({name})"
                        );
                        let pager = SimPager::open_in(SimStorage::from_image(rerun.clone()))
                            .expect("recovered twice");
                        assert_eq!(
                            observe(&pager).expect("readable"),
                            recovered,
                            "INV-6: {context}"
                        );
                        for page in find_pages(&rerun, b"MAPPGPD\x01") {
                            let mut damaged = rerun.clone();
                            damaged[page as usize * P..][..P].fill(0);
                            let pager = SimPager::open_in(SimStorage::from_image(damaged))
                                .unwrap_or_else(|e| {
                                    panic!("INV-13: {context}, rerun, page {page} zeroed: {e}")
                                });
                            assert_eq!(
                                observe(&pager).expect("readable"),
                                recovered,
                                "INV-13: {context}, rerun, page {page} zeroed"
                            );
                            checked += 1;
                        }
                    }
                }
                let repaired = std::fs::read(&path).expect("read back");
                let mut targets = find_pages(&repaired, b"MAPPGPD\x01");
                targets.push(0);
                for page in targets {
                    let mut damaged = repaired.clone();
                    damaged[page as usize * P..][..P].fill(0);
                    std::fs::write(&path, &damaged).expect("write the damaged image");
                    let pager = Pager::<P>::open(&path).unwrap_or_else(|e| {
                        panic!(
                            "INV-13: {mode:?} {op:?} without mirror {dropped}, recovered, then page {page} zeroed: {e}"
                        )
                    });
                    assert_eq!(
                        observe_file(&pager).expect("readable"),
                        recovered,
                        "INV-13: {mode:?} {op:?} without mirror {dropped}, then page {page} zeroed"
                    );
                    checked += 1;
                }
            }
            model = after;
        }
    }
    println!("{checked} damaged recovered images checked");
}

/// A new directory block's slot-1 pages are scrubbed (SPEC.md §3.2 step 2b): pages reused from
/// freed data pages, whose old bytes are a valid slot of the new block with the very generation
/// the block's first commit writes (forged here; any data could be), never pass for a slot of
/// it, and the file reopens with the new page.
#[test]
fn a_new_directory_block_never_takes_old_bytes_for_a_slot() {
    use mappedpages::format::{DirectorySlot, Geometry, encode_directory_slot};
    let geometry = Geometry::with_group_table(P);
    for mode in MODES {
        let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
        pager.set_commit_mode(mode);
        // Every free page of the file, so that the block's pages are some of them.
        let free = pager.free_page_count() as usize;
        let ids = pager.alloc_bulk(free).unwrap();
        assert_eq!(pager.free_page_count(), 0, "no growth");
        // One commit frees the pages, the next creates block 0 on four of them.
        let block_generation = pager.generation() + 2;
        let forged = DirectorySlot {
            generation: block_generation,
            block: 0,
            next_pages: [0; 4],
            entries: vec![None; geometry.directory_entries_per_block() as usize],
        };
        for &id in &ids {
            let page = id.get_mut(&mut pager).unwrap();
            encode_directory_slot(geometry, &forged, page.as_bytes_mut());
        }
        pager.sync_all().unwrap();
        pager.free_bulk(ids).unwrap();
        let protected = pager.alloc_protected().unwrap();
        assert_eq!(pager.generation(), block_generation, "{mode:?}");
        let reopened = SimPager::open_in(SimStorage::from_image(pager.storage().durable_image()))
            .unwrap_or_else(|error| panic!("{mode:?}: {error}"));
        let bytes = protected.get(&reopened).unwrap().as_bytes().to_vec();
        assert!(bytes.iter().all(|&b| b == 0), "{mode:?}");
    }
}

/// In `Flip` mode damage to the newest commit's protected copy is reported, never rolled back
/// (SPEC.md §3.2.1): the file opens with the commit the superblock names, and reading the page
/// returns `CorruptProtectedPage` (the content check of §4.1 step 8 is for single-sync copies).
#[test]
fn flip_mode_reports_damage_to_the_newest_commit() {
    use mappedpages::RecoveryDecision;
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    let id = pager.alloc_protected().unwrap();
    let mut writer = id.get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut()[..8].copy_from_slice(b"NEWEST01");
    writer.commit().unwrap();
    let generation = pager.generation();
    let mut image = pager.storage().durable_image();
    let pages = find_pages(&image, b"NEWEST01");
    assert_eq!(pages.len(), 1);
    image[pages[0] as usize * P + 500] ^= 0x40;
    let damaged = SimPager::open_in(SimStorage::from_image(image)).expect("opens");
    assert_eq!(damaged.generation(), generation, "nothing rolled back");
    assert_eq!(
        damaged.recovery_decision(),
        Some(RecoveryDecision::Superblock)
    );
    assert!(matches!(
        id.get(&damaged),
        Err(MappedPageError::CorruptProtectedPage { .. })
    ));
}
