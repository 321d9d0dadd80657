//! `ReadOnlyPager::verify` (SPEC.md §4.6) on real files: a clean file reports nothing, each kind
//! of single-page damage is reported, and verification never writes.

use std::path::Path;

use mappedpages::{Finding, MappedPageError, Pager, ReadOnlyPager, Repair, VerifyReport};

const P: usize = 1024;

/// A file with regular pages, protected pages written a few times (so the directory block's two
/// slots both hold something), and enough commits that both metadata copies are valid.
fn populated(path: &Path) {
    let mut pager = Pager::<P>::create(path).unwrap();
    pager.alloc_bulk(3).unwrap();
    let protected = pager.alloc_protected_bulk(3).unwrap();
    for (round, id) in protected.iter().enumerate() {
        let mut writer = id.get_mut(&mut pager).unwrap();
        writer.page_mut().as_bytes_mut()[..4].fill(round as u8 + 1);
        writer.commit().unwrap();
    }
    pager.alloc().unwrap();
}

fn page_of(image: &mut [u8], page: u64) -> &mut [u8] {
    &mut image[page as usize * P..(page as usize + 1) * P]
}

fn generation_of(image: &[u8], page: u64) -> u64 {
    let at = page as usize * P + 16;
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

/// Flips one bit in the middle of `page` of the file at `path` (a checksum failure, as media
/// damage gives), verifies, and checks that verification left the file as it found it.
fn damaged(path: &Path, clean: &[u8], page: u64) -> VerifyReport {
    let mut image = clean.to_vec();
    page_of(&mut image, page)[P / 2] ^= 0x10;
    std::fs::write(path, &image).unwrap();
    let report = ReadOnlyPager::<P>::verify(path).unwrap();
    assert!(
        std::fs::read(path).unwrap() == image,
        "verify wrote to the file"
    );
    report
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    populated(&path);
    let clean = std::fs::read(&path).unwrap();
    (dir, path, clean)
}

fn find_pages(image: &[u8], magic: &[u8]) -> Vec<u64> {
    image
        .chunks(P)
        .enumerate()
        .filter(|(_, page)| page.starts_with(magic))
        .map(|(index, _)| index as u64)
        .collect()
}

#[test]
fn a_clean_file_reports_nothing() {
    let (_dir, path, clean) = setup();
    let report = ReadOnlyPager::<P>::verify(&path).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.decision.is_some());
    assert!(std::fs::read(&path).unwrap() == clean);
}

#[test]
fn a_damaged_superblock_is_reported() {
    let (_dir, path, clean) = setup();
    let mut image = clean.clone();
    image[20] ^= 0x10; // inside the superblock record
    std::fs::write(&path, &image).unwrap();
    let report = ReadOnlyPager::<P>::verify(&path).unwrap();
    assert!(
        matches!(report.findings[..], [Finding::Superblock { .. }]),
        "{report:?}"
    );
    assert_eq!(report.repairs, [Repair::RewriteSuperblock]);
    assert!(std::fs::read(&path).unwrap() == image);
}

#[test]
fn a_damaged_metadata_copy_is_reported_each_copy() {
    let (_dir, path, clean) = setup();
    for copy in [1u64, 2] {
        let report = damaged(&path, &clean, copy);
        assert!(
            report
                .findings
                .iter()
                .any(|f| matches!(f, Finding::MetaCopy { page, .. } if *page == copy)),
            "copy {copy}: {report:?}"
        );
    }
}

#[test]
fn a_damaged_current_group_slot_is_reported() {
    let (_dir, path, clean) = setup();
    // Group 0's slot pages are 3 and 4; the current one holds the newer generation.
    let current = if generation_of(&clean, 3) > generation_of(&clean, 4) {
        3
    } else {
        4
    };
    let report = damaged(&path, &clean, current);
    assert!(
        report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::GroupSlot { group: 0, page, .. } if *page == current)),
        "{report:?}"
    );
    // Format 3: the finding says the slot is not the one the group table pins (the slot digest
    // comes from the table's entries, which still match: no `SlotDigest` finding).
    assert!(
        report.findings.iter().any(
            |f| matches!(f, Finding::GroupSlot { detail, .. } if detail.contains("table entry pins"))
        ),
        "{report:?}"
    );
    assert!(
        !report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::SlotDigest { .. })),
        "{report:?}"
    );
}

/// Format 3: table page 0 lives in pages 5 and 6. Damage to its current slot is reported (and
/// the table digest no longer matches); damage to a page holding nothing never is.
#[test]
fn a_damaged_group_table_slot_is_reported() {
    let (_dir, path, clean) = setup();
    let (current, other) = if generation_of(&clean, 5) >= generation_of(&clean, 6) {
        (5, 6)
    } else {
        (6, 5)
    };
    let report = damaged(&path, &clean, current);
    assert!(
        report.findings.iter().any(
            |f| matches!(f, Finding::TablePage { table_page: 0, page, .. } if *page == current)
        ),
        "{report:?}"
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::TableDigest { .. } | Finding::NoTableSlot { .. })),
        "{report:?}"
    );
    if generation_of(&clean, other) > 0 {
        let report = damaged(&path, &clean, other);
        assert!(
            report.findings.iter().any(
                |f| matches!(f, Finding::TablePage { table_page: 0, page, .. } if *page == other)
            ),
            "{report:?}"
        );
    }
}

#[test]
fn a_damaged_directory_mirror_is_reported() {
    let (_dir, path, clean) = setup();
    let mirrors = find_pages(&clean, b"MAPPGPD\x01");
    let current = *mirrors
        .iter()
        .max_by_key(|&&page| generation_of(&clean, page))
        .unwrap();
    let report = damaged(&path, &clean, current);
    assert!(
        report.findings.iter().any(
            |f| matches!(f, Finding::DirectoryPage { block: 0, page, .. } if *page == current)
        ),
        "{report:?}"
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::MirrorMismatch { block: 0, .. })),
        "{report:?}"
    );
    assert!(
        report
            .repairs
            .iter()
            .any(|r| matches!(r, Repair::RestoreMirror { to, .. } if *to == current)),
        "{report:?}"
    );
}

#[test]
fn a_damaged_protected_copy_is_reported() {
    let (_dir, path, clean) = setup();
    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    let id = reader.iter_allocated_protected_pages().nth(1).unwrap();
    drop(reader);
    // The committed copy is the backing page holding the written bytes (2, 2, 2, 2).
    let backing: Vec<u64> = (0..clean.len() / P)
        .filter(|&page| clean[page * P..page * P + 4] == [2, 2, 2, 2])
        .map(|page| page as u64)
        .collect();
    assert_eq!(
        backing.len(),
        1,
        "one page holds protected page 1's content"
    );
    let report = damaged(&path, &clean, backing[0]);
    assert_eq!(
        report.findings,
        [Finding::ProtectedCopy {
            id: id.raw(),
            page: backing[0]
        }],
        "{report:?}"
    );
}

#[test]
fn several_damaged_pages_are_all_reported() {
    let (_dir, path, clean) = setup();
    let mut image = clean.clone();
    image[20] ^= 0x10;
    page_of(&mut image, 1)[P / 2] ^= 0x10;
    page_of(&mut image, 2)[P / 2] ^= 0x10;
    std::fs::write(&path, &image).unwrap();
    let report = ReadOnlyPager::<P>::verify(&path).unwrap();
    assert!(report.decision.is_none(), "{report:?}");
    let kinds: Vec<String> = report.findings.iter().map(|f| format!("{f}")).collect();
    assert!(
        matches!(
            report.findings[..],
            [
                Finding::Superblock { .. },
                Finding::MetaCopy { page: 1, .. },
                Finding::MetaCopy { page: 2, .. },
                Finding::Unrecoverable { .. }
            ]
        ),
        "{kinds:?}"
    );
}

#[test]
fn a_file_of_another_kind_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.bin");
    std::fs::write(&path, vec![0x5a; 64 * P]).unwrap();
    let result = ReadOnlyPager::<P>::verify(&path);
    assert!(
        matches!(result, Err(MappedPageError::NotAMappedPagesFile)),
        "{result:?}"
    );
    std::fs::write(&path, b"").unwrap();
    assert!(ReadOnlyPager::<P>::verify(&path).is_err());
}

/// A crash image (the next metadata copy durable, the superblock not flipped) has planned
/// repairs but no damage.
#[test]
fn a_crash_image_reports_repairs_and_no_findings() {
    let mut storage = mappedpages::SimStorage::new();
    storage.record_sync_snapshots();
    let mut pager = Pager::<P, mappedpages::SimStorage>::create_in(storage).unwrap();
    pager.alloc_bulk(3).unwrap();
    let image = pager
        .storage()
        .sync_snapshots()
        .last()
        .unwrap()
        .durable_image();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.bin");
    std::fs::write(&path, &image).unwrap();
    let report = ReadOnlyPager::<P>::verify(&path).unwrap();
    assert!(report.findings.is_empty(), "{report:?}");
    assert!(
        report
            .repairs
            .iter()
            .any(|r| matches!(r, Repair::ScrubPage { .. })),
        "{report:?}"
    );
    assert!(!report.is_clean());
    assert!(std::fs::read(&path).unwrap() == image);
}

/// A new file has one metadata copy never written: that is not damage.
#[test]
fn a_new_file_reports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.bin");
    drop(Pager::<P>::create(&path).unwrap());
    let report = ReadOnlyPager::<P>::verify(&path).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// The progress hook counts every bitmap group and directory block of the walked copy once, in
/// order, from `(0, total)` to `(total, total)`.
#[test]
fn progress_counts_groups_and_directory_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let mut pager = Pager::<P>::create(&path).unwrap();
    let per_group = mappedpages::format::Geometry::new(P).pages_per_group();
    // Three groups, all touched (materialized), and two directory blocks (30 entries per block
    // at 1 KiB).
    let ids = pager.alloc_bulk(2 * per_group as usize + 10).unwrap();
    pager.free_bulk(ids).unwrap();
    pager.alloc_protected_bulk(31).unwrap();
    let groups = pager.page_count().div_ceil(per_group);
    drop(pager);
    assert_eq!(groups, 3);
    let mut calls = Vec::new();
    let report =
        ReadOnlyPager::<P>::verify_with_progress(&path, |done, total| calls.push((done, total)))
            .unwrap();
    assert!(report.is_clean(), "{report:?}");
    let total = groups + 2;
    let expected: Vec<(u64, u64)> = (0..=total).map(|done| (done, total)).collect();
    assert_eq!(calls, expected);
}
