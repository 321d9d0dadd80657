//! What an inspector needs from the library, on real files: `detect_page_size` (SPEC.md §4.7),
//! `ReadOnlyPager::active_metadata_page` and `ReadOnlyPager::free_page_ranges`.

use mappedpages::{MappedPageError, Pager, ReadOnlyPager, detect_page_size};

#[test]
fn the_page_size_comes_from_the_superblock() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.bin");
    let large = dir.path().join("large.bin");
    drop(Pager::<1024>::create(&small).unwrap());
    drop(Pager::<{ 1 << 20 }>::create(&large).unwrap());
    assert_eq!(detect_page_size(&small).unwrap(), 1024);
    assert_eq!(detect_page_size(&large).unwrap(), 1 << 20);
}

#[test]
fn a_damaged_superblock_leaves_the_page_size_to_the_metadata_copies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let mut pager = Pager::<8192>::create(&path).unwrap();
    pager.alloc().unwrap();
    drop(pager);
    let mut image = std::fs::read(&path).unwrap();
    image[..64].fill(0xA5); // the whole superblock record: no magic, no page size
    std::fs::write(&path, &image).unwrap();
    assert_eq!(detect_page_size(&path).unwrap(), 8192);
    // And the detected size opens the file (recovery takes the newest copy).
    assert!(ReadOnlyPager::<8192>::open(&path).is_ok());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        image,
        "detection wrote to the file"
    );
}

#[test]
fn no_superblock_and_no_copy_is_not_a_file_of_this_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        detect_page_size(&path),
        Err(MappedPageError::NotAMappedPagesFile)
    ));
    std::fs::write(&path, vec![0x5Au8; 1 << 16]).unwrap();
    assert!(matches!(
        detect_page_size(&path),
        Err(MappedPageError::NotAMappedPagesFile)
    ));
    // Superblock and both copies damaged: nothing records the page size any more.
    let path = dir.path().join("damaged.bin");
    let mut pager = Pager::<1024>::create(&path).unwrap();
    pager.alloc().unwrap();
    drop(pager);
    let mut image = std::fs::read(&path).unwrap();
    for page in 0..3 {
        image[page * 1024 + 20] ^= 0x10;
    }
    std::fs::write(&path, &image).unwrap();
    assert!(matches!(
        detect_page_size(&path),
        Err(MappedPageError::NotAMappedPagesFile)
    ));
}

#[test]
fn another_format_version_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    drop(Pager::<1024>::create(&path).unwrap());
    let mut image = std::fs::read(&path).unwrap();
    image[12..16].copy_from_slice(&4u32.to_le_bytes()); // format version 4
    let crc = crc32(&image[12..64]);
    image[8..12].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &image).unwrap();
    assert!(
        matches!(
            detect_page_size(&path),
            Err(MappedPageError::UnsupportedVersion { found: 4 })
        ),
        "{:?}",
        detect_page_size(&path)
    );
}

/// CRC-32 (IEEE), bitwise: the superblock's checksum (SPEC.md §2.2).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn detection_waits_for_no_writer_but_reports_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let writer = Pager::<1024>::create(&path).unwrap();
    assert!(matches!(
        detect_page_size(&path),
        Err(MappedPageError::Locked)
    ));
    drop(writer);
    assert_eq!(detect_page_size(&path).unwrap(), 1024);
}

#[test]
fn free_page_ranges_are_the_complement_of_allocated_and_internal_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let mut pager = Pager::<1024>::create(&path).unwrap();
    // Protected pages first: their backing pages would otherwise reuse the freed ones.
    pager.alloc_protected_bulk(3).unwrap();
    let ids = pager.alloc_bulk(40).unwrap();
    for id in ids.iter().step_by(3) {
        pager.free(*id).unwrap();
    }
    drop(pager);
    let reader = ReadOnlyPager::<1024>::open(&path).unwrap();
    let ranges = reader.free_page_ranges();
    let mut free = Vec::new();
    for range in &ranges {
        assert!(range.start < range.end);
        free.extend(range.clone());
    }
    // Sorted, disjoint, maximal (no two ranges touch).
    assert!(
        ranges.windows(2).all(|pair| pair[0].end < pair[1].start),
        "{ranges:?}"
    );
    assert_eq!(free.len() as u64, reader.free_page_count());
    for page in &free {
        assert!(!reader.is_allocated(mappedpages::PageId::from_raw(*page)));
    }
    // Every freed id is free again; none of the pages still allocated is.
    for (index, id) in ids.iter().enumerate() {
        assert_eq!(
            free.contains(&id.raw()),
            index % 3 == 0,
            "page {}",
            id.raw()
        );
    }
    // The internal pages (superblock, metadata copies, group 0's slots) are never free.
    for page in 0..5 {
        assert!(!free.contains(&page));
    }
}

#[test]
fn the_active_metadata_copy_alternates_with_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    drop(Pager::<1024>::create(&path).unwrap());
    let first = ReadOnlyPager::<1024>::open(&path)
        .unwrap()
        .active_metadata_page();
    let mut pager = Pager::<1024>::open(&path).unwrap();
    pager.alloc().unwrap();
    drop(pager);
    let second = ReadOnlyPager::<1024>::open(&path)
        .unwrap()
        .active_metadata_page();
    assert_eq!(first + second, 3, "{first} then {second}");
}

/// `page_use` names every page once: the counts of each use add up to the reader's counts, and
/// the directory's pages and protected copies are where `directory_blocks` and the entries say.
#[test]
fn every_page_has_one_use() {
    use mappedpages::{CommitMode, PageUse};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let mut pager = Pager::<1024>::create(&path).unwrap();
    pager.alloc_bulk(40).unwrap();
    let protected = pager.alloc_protected_bulk(3).unwrap();
    drop(pager);
    let reader = ReadOnlyPager::<1024>::open(&path).unwrap();
    assert_eq!(reader.last_commit_mode(), Some(CommitMode::Flip));
    let blocks = reader.directory_blocks();
    assert_eq!(blocks.len(), 1);
    let (mut allocated, mut free, mut copies, mut block_pages, mut current_slots) = (0, 0, 0, 0, 0);
    for page in 0..reader.page_count() {
        match reader.page_use(page).unwrap() {
            PageUse::Allocated => allocated += 1,
            PageUse::Free => free += 1,
            PageUse::ProtectedCopy { id, .. } => {
                assert!(protected.iter().any(|p| p.raw() == id));
                copies += 1;
            }
            PageUse::DirectoryBlock {
                block: 0, current, ..
            } => {
                assert!(blocks[0].contains(&page));
                block_pages += 1;
                current_slots += u32::from(current);
            }
            PageUse::Superblock => assert_eq!(page, 0),
            PageUse::MetadataCopy { active } => {
                assert_eq!(active, page == reader.active_metadata_page());
            }
            PageUse::GroupSlot { group, .. } => assert_eq!(group, page / 7936),
            PageUse::GroupTable {
                table_page: 0,
                current,
                slot,
            } => {
                assert!(
                    page == 5 || page == 6,
                    "table page 0's slots are pages 5 and 6"
                );
                assert_eq!(
                    current,
                    slot == 0,
                    "one commit wrote table page 0, in slot 0"
                );
            }
            other => panic!("page {page}: unexpected {other:?}"),
        }
        assert_eq!(reader.raw_page(page).unwrap().len(), 1024);
    }
    assert_eq!(allocated, reader.allocated_page_count());
    assert_eq!(free, reader.free_page_count());
    assert_eq!((copies, block_pages, current_slots), (6, 4, 2));
    assert!(matches!(
        reader.page_use(reader.page_count()),
        Err(MappedPageError::OutOfBounds { .. })
    ));
}
