//! `RollbackPlan` (SPEC.md §4.8): the opt-in rollback of a file recovery refuses because the
//! metadata copy its superblock names is damaged.

use mappedpages::format::{MetaSlot, Superblock};
use mappedpages::{
    CrashLength, MappedPageError, PageId, Pager, RollbackLoss, RollbackPlan, SectorSize,
    SimStorage, Storage,
};

const P: usize = 1024;

/// A file with a page allocated at generation 2 (copy B), a protected page and a second regular
/// page at later commits, so that the superblock names copy B at generation 4 and copy A holds
/// generation 3. Returns the image and the ids of the pages allocated at or before generation 3
/// and at generation 4.
fn refused_image() -> (Vec<u8>, Vec<PageId<P>>, PageId<P>) {
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    let kept = pager.alloc().unwrap(); // generation 2, copy B
    pager.alloc_protected().unwrap(); // generation 3, copy A
    let lost = pager.alloc().unwrap(); // generation 4, copy B
    assert_eq!(pager.generation(), 4);
    let mut image = pager.into_storage().into_image();
    assert!(Pager::<P, SimStorage>::open_in(SimStorage::from_image(image.clone())).is_ok());
    image[2 * P + 300] ^= 0x04; // copy B: fails its CRC
    (image, vec![kept], lost)
}

fn open(image: Vec<u8>) -> Result<Pager<P, SimStorage>, MappedPageError> {
    Pager::<P, SimStorage>::open_in(SimStorage::from_image(image))
}

#[test]
fn a_refused_file_is_rolled_back_to_the_older_copy() {
    let (image, kept, lost) = refused_image();
    assert!(matches!(
        open(image.clone()),
        Err(MappedPageError::CorruptMetadata { .. })
    ));
    let mut storage = SimStorage::from_image(image.clone());
    let plan = RollbackPlan::plan_in(&storage).unwrap();
    println!("{plan}");
    assert_eq!(plan.page_size, P as u64);
    assert_eq!((plan.damaged_copy_page, plan.damaged_generation), (2, 4));
    assert_eq!((plan.target_copy_page, plan.target_generation), (1, 3));
    assert_eq!(plan.lost_commits(), 1);
    assert!(plan.why_refused.contains("copy B"), "{}", plan.why_refused);
    assert!(
        matches!(&plan.loss, RollbackLoss::Unknown { reason, damaged_page_count: None }
            if reason.contains("does not decode")),
        "{:?}",
        plan.loss
    );
    assert!(plan.damaged_protected.is_empty());
    let text = plan.to_string();
    assert!(text.contains("loses 1 commit (generation 4)"), "{text}");
    assert!(text.contains("cannot be known"), "{text}");
    assert_eq!(storage.bytes(), &image[..], "planning writes nothing");

    plan.apply_in(&mut storage).unwrap();
    let reopened = open(storage.durable_image()).unwrap();
    assert_eq!(
        reopened.storage().sync_count(),
        0,
        "the rollback made recovery's repairs (the damaged copy scrubbed): an open has none left"
    );
    let pager = Pager::<P, SimStorage>::open_in(storage).unwrap();
    assert_eq!(pager.generation(), 3);
    assert!(kept.iter().all(|&id| pager.is_allocated(id)));
    assert!(
        !pager.is_allocated(lost),
        "the lost commit's allocation is gone"
    );
    assert_eq!(pager.protected_page_count(), 1);
}

/// The superblock records another checksum for copy B than the one it has: copy B loads, but
/// is not the named copy, so recovery refuses; the loss is then known page by page.
#[test]
fn a_damaged_copy_that_still_loads_gives_the_loss_page_by_page() {
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    let kept = pager.alloc().unwrap(); // generation 2, copy B
    let freed = pager.alloc().unwrap(); // generation 3, copy A
    let protected = pager.alloc_protected().unwrap(); // generation 4, copy B
    pager.free(freed).unwrap(); // generation 5, copy A
    let lost = pager.alloc_bulk(2).unwrap(); // generation 6, copy B
    let mut image = pager.into_storage().into_image();
    let mut superblock = Superblock::decode(&image).unwrap();
    assert_eq!(superblock.active_meta, MetaSlot::B);
    superblock.active_meta_checksum ^= 1;
    image[..64].copy_from_slice(&superblock.encode());
    assert!(matches!(
        open(image.clone()),
        Err(MappedPageError::CorruptMetadata { .. })
    ));

    let mut storage = SimStorage::from_image(image);
    let plan = RollbackPlan::plan_in(&storage).unwrap();
    println!("{plan}");
    assert_eq!((plan.damaged_generation, plan.target_generation), (6, 5));
    let RollbackLoss::Known {
        lost_allocations,
        restored_allocations,
        lost_protected,
        ..
    } = &plan.loss
    else {
        panic!("copy B loads, so the loss is known: {:?}", plan.loss);
    };
    let lost_pages: Vec<u64> = lost_allocations.iter().flat_map(|r| r.clone()).collect();
    let mut lost_raw: Vec<u64> = lost.iter().map(|id| id.raw()).collect();
    lost_raw.sort_unstable();
    assert_eq!(lost_pages, lost_raw);
    assert!(restored_allocations.is_empty() && lost_protected.is_empty());
    plan.apply_in(&mut storage).unwrap();
    let pager = Pager::<P, SimStorage>::open_in(storage).unwrap();
    assert_eq!(pager.generation(), 5);
    assert!(pager.is_allocated(kept) && !pager.is_allocated(freed));
    assert!(pager.is_protected_allocated(protected));
    assert!(lost.iter().all(|&id| !pager.is_allocated(id)));
}

#[test]
fn a_clean_file_has_nothing_to_roll_back() {
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    pager.alloc().unwrap();
    let storage = pager.into_storage();
    assert!(matches!(
        RollbackPlan::plan_in(&storage),
        Err(MappedPageError::NothingToRollBack { generation: 2 })
    ));
}

#[test]
fn both_copies_damaged_is_refused() {
    let (mut image, _, _) = refused_image();
    image[P + 300] ^= 0x04; // copy A too
    let storage = SimStorage::from_image(image);
    match RollbackPlan::plan_in(&storage) {
        Err(MappedPageError::RollbackRefused { detail }) => {
            assert!(detail.contains("damaged too"), "{detail}");
            assert!(detail.contains("backup"), "{detail}");
        }
        other => panic!("expected RollbackRefused, got {other:?}"),
    }
}

#[test]
fn an_older_copy_that_does_not_load_is_refused() {
    let (mut image, _, _) = refused_image();
    // Copy A (generation 3) decodes, but the slot of group 0 it uses is damaged.
    let slots = [3usize, 4];
    let newest = slots
        .iter()
        .copied()
        .max_by_key(|&page| {
            u64::from_le_bytes(image[page * P + 16..page * P + 24].try_into().unwrap())
        })
        .unwrap();
    image[newest * P + 500] ^= 0x01;
    let error = RollbackPlan::plan_in(&SimStorage::from_image(image)).unwrap_err();
    assert!(
        matches!(&error, MappedPageError::RollbackRefused { detail } if detail.contains("does not load")),
        "{error}"
    );
}

#[test]
fn a_plan_for_another_image_is_not_applied() {
    let (image, _, _) = refused_image();
    let plan = RollbackPlan::plan_in(&SimStorage::from_image(image.clone())).unwrap();
    let mut changed = image.clone();
    changed[P + 300] ^= 0x04; // now copy A is damaged too
    let mut storage = SimStorage::from_image(changed.clone());
    assert!(matches!(
        plan.apply_in(&mut storage),
        Err(MappedPageError::RollbackRefused { .. })
    ));
    assert_eq!(storage.into_image(), changed, "nothing written");
    // A plan whose rollback was already made: nothing to roll back any more.
    let mut storage = SimStorage::from_image(image);
    plan.apply_in(&mut storage).unwrap();
    assert!(matches!(
        plan.apply_in(&mut storage),
        Err(MappedPageError::NothingToRollBack { generation: 3 })
    ));
}

/// Every crash image of a rollback (every subset of the sectors in flight at each barrier, both
/// lengths) opens refused as before, or rolled back; never anything else (SPEC.md §4.8).
#[test]
fn a_crash_during_a_rollback_leaves_the_refused_or_the_rolled_back_state() {
    let (image, kept, lost) = refused_image();
    let mut storage = SimStorage::from_image(image);
    let plan = RollbackPlan::plan_in(&storage).unwrap();
    storage.record_sync_snapshots();
    plan.apply_in(&mut storage).unwrap();
    let mut points = storage.sync_snapshots().to_vec();
    points.push(storage.crash_point());
    assert!(
        points.len() >= 2,
        "a superblock barrier and a scrub barrier"
    );
    let (mut refused, mut rolled_back) = (0, 0);
    for point in &points {
        let sectors = point.in_flight_sectors(SectorSize::S512);
        assert!(sectors.len() <= 12, "{} sectors in flight", sectors.len());
        for mask in 0..1u32 << sectors.len() {
            let kept_sectors: Vec<u64> = (0..sectors.len())
                .filter(|bit| mask & (1 << bit) != 0)
                .map(|bit| sectors[bit])
                .collect();
            let crashed = point.crash_image(SectorSize::S512, &kept_sectors, CrashLength::Current);
            match open(crashed) {
                Err(MappedPageError::CorruptMetadata { .. }) => refused += 1,
                Ok(pager) => {
                    assert_eq!(pager.generation(), 3);
                    assert!(kept.iter().all(|&id| pager.is_allocated(id)));
                    assert!(!pager.is_allocated(lost));
                    rolled_back += 1;
                }
                Err(other) => panic!("a crash image of a rollback gave {other}"),
            }
        }
    }
    assert!(
        refused > 0 && rolled_back > 0,
        "{refused} refused, {rolled_back} rolled back"
    );
}

#[test]
fn a_file_is_planned_without_writing_and_rolled_back_under_the_lock() {
    let (image, kept, _) = refused_image();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    std::fs::write(&path, &image).unwrap();
    let plan = RollbackPlan::plan(&path).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        image,
        "a dry run writes nothing"
    );
    let report = mappedpages::ReadOnlyPager::<P>::verify(&path).unwrap();
    assert!(
        report.decision.is_none(),
        "recovery refuses the file before the rollback"
    );
    // The writer's lock: refused while a reader (or a Pager) holds the file, nothing written.
    let reader = std::fs::File::open(&path).unwrap();
    reader.lock_shared().unwrap();
    assert!(matches!(plan.apply(), Err(MappedPageError::Locked)));
    drop(reader);
    assert_eq!(std::fs::read(&path).unwrap(), image);
    plan.apply().unwrap();
    let pager = Pager::<P>::open(&path).unwrap();
    assert_eq!(pager.generation(), 3);
    assert!(kept.iter().all(|&id| pager.is_allocated(id)));
    assert!(pager.iter_allocated_protected_pages().count() == 1);
    drop(pager);
    // A rolled-back file verifies clean: the damaged copy was scrubbed.
    let report = mappedpages::ReadOnlyPager::<P>::verify(&path).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// The superblock records a wrong checksum for the copy it names (which loads): recovery
/// refuses, and the plan's loss is the difference made by `last` alone.
fn plan_with_last_commit(
    last: impl FnOnce(&mut Pager<P, SimStorage>),
) -> (RollbackPlan, Pager<P, SimStorage>) {
    let mut pager = Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap();
    pager.alloc_bulk(4).unwrap();
    pager.alloc_protected_bulk(2).unwrap();
    last(&mut pager);
    let mut image = pager.into_storage().into_image();
    let mut superblock = Superblock::decode(&image).unwrap();
    superblock.active_meta_checksum ^= 1;
    image[..64].copy_from_slice(&superblock.encode());
    let mut storage = SimStorage::from_image(image);
    let plan = RollbackPlan::plan_in(&storage).unwrap();
    plan.apply_in(&mut storage).unwrap();
    (plan, Pager::<P, SimStorage>::open_in(storage).unwrap())
}

#[test]
fn a_known_loss_names_frees_and_protected_pages() {
    let freed = PageId::<P>::from_raw(7); // the first data page (5 and 6 hold table page 0)
    let (plan, pager) = plan_with_last_commit(|pager| {
        assert!(pager.is_allocated(freed));
        pager.free(freed).unwrap();
    });
    match &plan.loss {
        RollbackLoss::Known {
            lost_allocations,
            restored_allocations,
            ..
        } => {
            assert!(lost_allocations.is_empty());
            assert_eq!(restored_allocations, &[7..8]);
        }
        other => panic!("{other:?}"),
    }
    assert!(pager.is_allocated(freed), "the lost free is undone");

    let (plan, pager) = plan_with_last_commit(|pager| {
        pager.alloc_protected().unwrap();
    });
    assert!(
        matches!(&plan.loss, RollbackLoss::Known { lost_protected, .. } if lost_protected == &[2]),
        "{:?}",
        plan.loss
    );
    assert_eq!(pager.protected_page_count(), 2);

    let (plan, _) = plan_with_last_commit(|pager| {
        let id = pager.iter_allocated_protected_pages().next().unwrap();
        let mut writer = id.get_mut(pager).unwrap();
        writer.page_mut().as_bytes_mut()[0] = 9;
        writer.commit().unwrap();
    });
    assert!(
        matches!(&plan.loss, RollbackLoss::Known { older_protected_content, .. }
            if older_protected_content == &[0]),
        "{:?}",
        plan.loss
    );
    println!("{plan}");
}
