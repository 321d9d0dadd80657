//! Format 3's lazy group load (SPEC.md §4.9): open reads the group table and the few groups it
//! needs (§4.1 step 3); every other group's bitmap is read from the slot its table entry pins
//! when the group is first used, checked against the entry, and never replaced by its other
//! slot.

use std::collections::BTreeSet;

use mappedpages::format::Geometry;
use mappedpages::{MappedPageError, PageId, Pager, SimStorage};

const P: usize = 1024;
type SimPager = Pager<P, SimStorage>;

fn geometry() -> Geometry {
    Geometry::with_group_table(P)
}

/// A file of six groups: one commit allocated 40,000 pages (groups 1 to 4 materialized whole
/// by it, group 5 the last, cut by the file's end), then one page allocated in group 5 and one
/// freed in group 0, so that the last commit folds nothing and its log names groups 0 and 5
/// only. Returns the durable image and the allocated pages.
fn six_groups() -> (Vec<u8>, BTreeSet<u64>) {
    let mut storage = SimStorage::new();
    storage.allow_unreserved_writes();
    let mut pager = SimPager::create_in(storage).unwrap();
    pager.set_space_reservation(false);
    let ids = pager.alloc_bulk(40_000).unwrap();
    assert_eq!(geometry().group_count(pager.page_count()), 6);
    let mut allocated: BTreeSet<u64> = ids.iter().map(|id| id.raw()).collect();
    let last = pager.alloc().unwrap();
    assert_eq!(geometry().group_of(last.raw()), 5);
    allocated.insert(last.raw());
    pager.free(ids[3]).unwrap();
    allocated.remove(&ids[3].raw());
    (pager.into_storage().durable_image(), allocated)
}

fn open(image: Vec<u8>) -> SimPager {
    let mut storage = SimStorage::from_image(image);
    storage.allow_unreserved_writes();
    let mut pager = SimPager::open_in(storage).unwrap();
    pager.set_space_reservation(false);
    pager
}

/// Overwrites both slot pages of `group` with garbage.
fn garble_slots(image: &mut [u8], group: u64) {
    for slot in 0..2 {
        let start = geometry().offset(geometry().slot_page(group, slot)) as usize;
        image[start..start + P].fill(0xA5);
    }
}

fn in_group(allocated: &BTreeSet<u64>, group: u64) -> Vec<u64> {
    allocated
        .iter()
        .copied()
        .filter(|&page| geometry().group_of(page) == group)
        .collect()
}

/// Open reads no slot of groups 1 to 4: with both their slot pages garbage it succeeds and
/// counts what the table says. Each is found damaged when first used, as a typed error, and the
/// rest of the file reads, allocates and commits.
#[test]
fn open_reads_only_the_groups_it_needs_and_a_damaged_one_fails_on_first_use() {
    let (mut image, allocated) = six_groups();
    for group in 1..=4 {
        garble_slots(&mut image, group);
    }
    let mut pager = open(image);
    assert_eq!(pager.allocated_page_count(), allocated.len() as u64);
    let free_before = pager.free_page_count();

    let page = in_group(&allocated, 2)[100];
    let id = PageId::<P>::from_raw(page);
    let corrupt = |e: &MappedPageError, group: u64| {
        matches!(e, MappedPageError::CorruptGroupSlot { group: g, page } if *g == group
            && (*page == geometry().slot_page(group, 0) || *page == geometry().slot_page(group, 1)))
    };
    assert!(
        !pager.is_allocated(id),
        "a damaged group's pages read as not allocated"
    );
    assert!(corrupt(&id.get(&pager).unwrap_err(), 2));
    assert!(corrupt(&pager.free(id).unwrap_err(), 2));
    assert!(corrupt(&pager.check_bitmaps().unwrap_err(), 1));
    assert_eq!(
        pager.free_page_count(),
        free_before,
        "a failed free changes nothing"
    );

    // The listing skips the damaged groups; everything else is there.
    let listed: Vec<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    let mut expected = in_group(&allocated, 0);
    expected.extend(in_group(&allocated, 5));
    assert_eq!(listed, expected);

    // Groups 1 to 4 are full: allocation passes them by without reading them.
    let new = pager.alloc().unwrap();
    assert!(matches!(geometry().group_of(new.raw()), 0 | 5));
    let page0 = in_group(&allocated, 0)[7];
    pager.free(PageId::from_raw(page0)).unwrap();
    assert_eq!(pager.free_page_count(), free_before);
}

/// A group loaded on first use reads and changes as one loaded at open: frees in groups 1–4
/// (each loads its group), allocation into the holes, a reopen, and the whole state against the
/// model, with `verify` clean.
#[test]
fn lazily_loaded_groups_read_and_change_like_loaded_ones() {
    let (image, mut allocated) = six_groups();
    let mut pager = open(image);
    assert!(pager.check_bitmaps().is_ok());
    for &page in allocated.iter().step_by(997) {
        assert!(pager.is_allocated(PageId::from_raw(page)), "page {page}");
    }
    let listed: BTreeSet<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    assert_eq!(listed, allocated);

    let freed: Vec<u64> = (1..=4)
        .map(|group| in_group(&allocated, group)[group as usize * 10])
        .collect();
    for &page in &freed {
        pager.free(PageId::from_raw(page)).unwrap();
        allocated.remove(&page);
    }
    pager
        .free_bulk(
            in_group(&allocated, 3)[500..520]
                .iter()
                .map(|&p| PageId::from_raw(p))
                .collect(),
        )
        .unwrap();
    for page in in_group(&allocated, 3)[500..520].to_vec() {
        allocated.remove(&page);
    }
    let ids = pager.alloc_bulk(30).unwrap();
    allocated.extend(ids.iter().map(|id| id.raw()));
    assert_eq!(pager.allocated_page_count(), allocated.len() as u64);

    let image = pager.into_storage().durable_image();
    let pager = open(image);
    let listed: BTreeSet<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    assert_eq!(listed, allocated);
    assert_eq!(pager.allocated_page_count(), allocated.len() as u64);
    assert!(pager.check_bitmaps().is_ok());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.bin");
    std::fs::write(&path, pager.into_storage().durable_image()).unwrap();
    let report = mappedpages::ReadOnlyPager::<P>::verify(&path).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// The commit that materializes group 62 also starts group table page 1, whose slots lie in
/// that group's extent (pages 492,034 and 492,035 at 1 KiB): with reservation on, they are
/// reserved before they are written (INV-14; `SimStorage` panics on a synced write to a page
/// never reserved). So are those of table page 2, which the same extent holds and a later
/// commit starts.
#[test]
fn a_commit_that_starts_a_table_page_has_reserved_it() {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    let per_page = geometry().table_entries_per_page();
    let ids = pager
        .alloc_bulk(usize::try_from(per_page * geometry().pages_per_group()).unwrap())
        .unwrap();
    assert!(geometry().group_count(pager.page_count()) > per_page);
    assert_eq!(geometry().table_slot_page(1, 0), 492_034);
    // Table page 2 starts with group 124.
    let more = 62 * geometry().pages_per_group() as usize;
    pager.alloc_bulk(more).unwrap();
    assert!(geometry().group_count(pager.page_count()) > 2 * per_page);
    pager.free(ids[10]).unwrap();
    let image = pager.into_storage().durable_image();
    let pager = open(image);
    assert!(pager.check_bitmaps().is_ok());
}

/// A seeded mix of frees (single and bulk, anywhere in the file), allocations and reopens over
/// the six-group file, against a model of the allocated pages: after every operation the counts,
/// the listing and `is_allocated` of a sample agree with the model, whichever groups happen to be
/// loaded (a reopen unloads all but the few open needs).
#[test]
fn a_random_mix_with_reopens_matches_the_model() {
    let (image, mut model) = six_groups();
    let mut pager = open(image);
    let mut seed = 0x5EED_u64;
    let mut next = |bound: u64| {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (seed ^ (seed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        (z ^ (z >> 31)) % bound
    };
    for step in 0..120 {
        let allocated: Vec<u64> = model.iter().copied().collect();
        match next(5) {
            0 => {
                let page = allocated[next(allocated.len() as u64) as usize];
                pager.free(PageId::from_raw(page)).unwrap();
                model.remove(&page);
            }
            1 => {
                let first = next(allocated.len() as u64 - 50) as usize;
                let pages: Vec<u64> = allocated[first..]
                    .iter()
                    .step_by(1 + next(400) as usize)
                    .take(1 + next(30) as usize)
                    .copied()
                    .collect();
                pager
                    .free_bulk(pages.iter().map(|&p| PageId::from_raw(p)).collect())
                    .unwrap();
                for page in pages {
                    model.remove(&page);
                }
            }
            2 => {
                for id in pager.alloc_bulk(1 + next(40) as usize).unwrap() {
                    assert!(
                        model.insert(id.raw()),
                        "step {step}: page {} twice",
                        id.raw()
                    );
                }
            }
            3 => {
                let id = pager.alloc().unwrap();
                assert!(
                    model.insert(id.raw()),
                    "step {step}: page {} twice",
                    id.raw()
                );
            }
            _ => pager = open(pager.into_storage().durable_image()),
        }
        assert_eq!(
            pager.allocated_page_count(),
            model.len() as u64,
            "step {step}"
        );
        for _ in 0..20 {
            let page = next(pager.page_count());
            assert_eq!(
                pager.is_allocated(PageId::from_raw(page)),
                model.contains(&page),
                "step {step}: page {page}"
            );
        }
        if step % 10 == 9 {
            let listed: BTreeSet<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
            assert_eq!(listed, model, "step {step}");
        }
    }
    let pager = open(pager.into_storage().durable_image());
    let listed: BTreeSet<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    assert_eq!(listed, model);
    assert!(pager.check_bitmaps().is_ok());
}

/// A group folded with free pages in it is not loaded after a reopen: every page of it reads
/// from its slot as the model says, and allocation, which starts its search at the file's
/// first data page, passes the full groups and takes exactly those free pages (loading the
/// group), in order.
#[test]
fn a_group_not_loaded_with_free_pages_reads_and_allocates_from_its_slot() {
    let (image, mut model) = six_groups();
    let mut pager = open(image);
    // Every other page of a run in group 2: more log entries than the log holds, so the
    // commit folds group 2 and its entries leave the log.
    let group2 = in_group(&model, 2);
    let freed: Vec<u64> = group2[1000..1400].iter().step_by(2).copied().collect();
    pager
        .free_bulk(freed.iter().map(|&p| PageId::from_raw(p)).collect())
        .unwrap();
    for page in &freed {
        model.remove(page);
    }
    // One more commit, elsewhere (group 0 has a free page).
    let last = pager.alloc().unwrap();
    assert_eq!(geometry().group_of(last.raw()), 0);
    model.insert(last.raw());

    let mut pager = open(pager.into_storage().durable_image());
    let start = geometry().group_start(2);
    for page in start..start + geometry().pages_per_group() {
        assert_eq!(
            pager.is_allocated(PageId::from_raw(page)),
            model.contains(&page),
            "page {page}"
        );
    }
    assert!(!pager.is_allocated(PageId::from_raw(pager.page_count())));
    let taken = pager.alloc_bulk(freed.len()).unwrap();
    assert_eq!(taken.iter().map(|id| id.raw()).collect::<Vec<_>>(), freed);
}

/// After a growth that rebuilds the allocation summary (it gains a level at 65,536 pages, so
/// the words of groups not loaded show as free again), a search that reaches a group its table
/// entry counts full still passes it by unread: with the slots of the full groups garbage, the
/// allocation that starts in group 0 and finds its page past them succeeds, and they are still
/// found damaged only on use.
#[test]
fn after_a_growth_allocation_still_passes_full_groups_by_unread() {
    // As `six_groups`, smaller: the file stays under 65,536 pages until the test grows it.
    let mut storage = SimStorage::new();
    storage.allow_unreserved_writes();
    let mut pager = SimPager::create_in(storage).unwrap();
    pager.set_space_reservation(false);
    let ids = pager.alloc_bulk(20_000).unwrap();
    let last = pager.alloc().unwrap();
    pager.free(ids[3]).unwrap();
    let page_count = pager.page_count();
    let groups = geometry().group_count(page_count);
    assert!(
        page_count < 65_536 && groups >= 3,
        "{page_count} pages, {groups} groups"
    );
    let last_group = geometry().group_of(last.raw());
    let mut image = pager.into_storage().durable_image();
    for group in 1..last_group {
        garble_slots(&mut image, group);
    }

    let mut pager = open(image);
    pager.alloc_bulk(pager.free_page_count() as usize).unwrap();
    let grown = pager.alloc().unwrap();
    assert!(
        pager.page_count() > 65_536,
        "the file grew past 65,536 pages"
    );
    pager.alloc_bulk(pager.free_page_count() as usize).unwrap();
    assert_eq!(pager.free_page_count(), 0);

    // A hole in group 0 (taken first, after the wrap) and one past the damaged groups.
    let in_group_0 = PageId::<P>::from_raw(geometry().first_data_page() + 10);
    assert!(geometry().group_of(grown.raw()) >= last_group);
    pager.free(in_group_0).unwrap();
    pager.free(grown).unwrap();
    assert_eq!(pager.alloc().unwrap(), in_group_0);
    assert_eq!(
        pager.alloc().unwrap(),
        grown,
        "the search from group 0 passes the full groups by"
    );
    assert!(matches!(
        pager.check_bitmaps(),
        Err(MappedPageError::CorruptGroupSlot { group: 1, .. })
    ));
}
