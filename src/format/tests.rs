//! Round trips and rejections of every page kind, against literal offsets (SPEC.md §2).

use super::header::{all_zero, crc, read_u32, write_u32, write_u64};
use super::*;

fn superblock_error(reason: Reason) -> DecodeError {
    DecodeError::new(PageKind::Superblock, reason)
}

fn meta(reason: Reason) -> DecodeError {
    DecodeError::new(PageKind::Meta, reason)
}

fn group(reason: Reason) -> DecodeError {
    DecodeError::new(PageKind::GroupSlot, reason)
}

fn directory(reason: Reason) -> DecodeError {
    DecodeError::new(PageKind::DirectorySlot, reason)
}

const G1K: usize = 1024;

fn geometry() -> Geometry {
    Geometry::new(G1K)
}

#[test]
fn all_zero_sees_every_byte() {
    for len in [0, 1, 7, 8, 9, 24, 28, 4096 - 128, 4096] {
        let mut bytes = vec![0u8; len];
        assert!(all_zero(&bytes), "{len} zero bytes");
        // Every byte of the short ones; a spread of positions (and the last) in the long ones.
        let step = if len <= 64 { 1 } else { 61 };
        for at in (0..len).step_by(step).chain(len.checked_sub(1)) {
            bytes[at] = 0x80;
            assert!(!all_zero(&bytes), "byte {at} of {len}");
            bytes[at] = 0;
        }
    }
    // Nonzero words that would cancel out under another fold than OR.
    let mut bytes = vec![0u8; 32];
    bytes[3] = 0x11;
    bytes[11] = 0x11;
    assert!(!all_zero(&bytes), "two equal nonzero words");
    // Unaligned starts, as for the bytes after the log.
    let bytes = [0u8; 64];
    for start in 0..16 {
        assert!(all_zero(&bytes[start..]));
    }
}

#[test]
fn geometry_basics() {
    let g = geometry();
    assert_eq!(g.pages_per_group(), (1024 - 32) * 8);
    assert_eq!(g.pages_per_group() % 64, 0);
    assert_eq!(g.slot_page(0, 0), 3);
    assert_eq!(g.slot_page(0, 1), 4);
    assert_eq!(g.slot_page(2, 1), 2 * g.pages_per_group() + 1);
    for page in 0..=4 {
        assert!(g.is_internal(page));
    }
    assert!(!g.is_internal(5));
    assert!(g.is_internal(g.pages_per_group()));
    assert!(g.is_internal(g.pages_per_group() + 1));
    assert!(!g.is_internal(g.pages_per_group() + 2));
    assert!(!g.is_valid_page_count(5));
    assert!(g.is_valid_page_count(6));
    assert!(!g.is_valid_page_count(g.pages_per_group() + 1));
    assert!(!g.is_valid_page_count(g.pages_per_group() + 2));
    assert!(g.is_valid_page_count(g.pages_per_group() + 3));
    assert!(g.is_valid_page_count(g.pages_per_group()));
    assert_eq!(g.internal_page_count(6), 5);
    assert_eq!(g.internal_page_count(g.pages_per_group() + 3), 7);
    assert_eq!(g.data_page_count(6), 1);
    assert_eq!(
        g.data_page_count(g.pages_per_group() + 3),
        g.pages_per_group() + 3 - 7
    );
    assert!(g.is_valid_page_count(g.max_page_count()));
    assert!(g.max_page_count() <= MAX_PAGE_COUNT);
    assert_eq!(g.log_capacity(), (1024 - 128) / 16);
}

#[test]
fn round_down_to_valid_skips_counts_without_room_for_a_data_page() {
    let g = geometry();
    let group = g.pages_per_group();
    assert_eq!(g.round_down_to_valid(group + 2), group);
    assert_eq!(g.round_down_to_valid(group + 3), group + 3);
    assert_eq!(g.round_down_to_valid(MIN_PAGE_COUNT), MIN_PAGE_COUNT);
    for size in [1024, 4096, 1 << 16, MAX_PAGE_SIZE] {
        let g = Geometry::new(size);
        let max = g.max_page_count();
        assert!(g.is_valid_page_count(max));
        assert!(!g.is_valid_page_count(max + 1));
    }
}

#[test]
fn geometry_holds_2_pow_32_pages() {
    // 2^32 pages of 16 KiB fill the 64 TiB address-space bound; larger pages hold fewer.
    for page_size in [1024usize, 4096, 16384] {
        let g = Geometry::new(page_size);
        assert!(
            g.max_page_count() >= 1 << 32,
            "page size {page_size} must allow 2^32 pages"
        );
    }
}

#[test]
fn superblock_round_trip() {
    let sb = Superblock {
        version: FORMAT_VERSION,
        page_size: 4096,
        active_meta: MetaSlot::B,
        active_generation: 42,
        active_meta_checksum: 0xdead_beef,
    };
    let bytes = sb.encode();
    assert_eq!(Superblock::decode(&bytes), Ok(sb));
    // The page-size bounds are inclusive.
    for page_size in [MIN_PAGE_SIZE as u64, MAX_PAGE_SIZE as u64] {
        let sb = Superblock { page_size, ..sb };
        assert_eq!(Superblock::decode(&sb.encode()), Ok(sb));
    }
}

#[test]
fn superblock_rejections() {
    let sb = Superblock {
        version: FORMAT_VERSION,
        page_size: 1024,
        active_meta: MetaSlot::A,
        active_generation: 1,
        active_meta_checksum: 7,
    };
    let good = sb.encode();
    assert_eq!(
        Superblock::decode(&good[..63]),
        Err(superblock_error(Reason::Truncated))
    );
    let mut bad = good;
    bad[0] ^= 1;
    assert_eq!(
        Superblock::decode(&bad),
        Err(superblock_error(Reason::BadMagic))
    );
    let mut bad = good;
    bad[40] ^= 1;
    assert_eq!(
        Superblock::decode(&bad),
        Err(superblock_error(Reason::BadChecksum))
    );
    // Field errors need a valid checksum: re-sign after editing.
    let resign = |mut bytes: [u8; 64]| {
        let c = crc(&bytes[12..]);
        write_u32(&mut bytes, 8, c);
        bytes
    };
    let mut bad = good;
    write_u32(&mut bad, 12, 4);
    assert_eq!(
        Superblock::decode(&resign(bad)),
        Err(superblock_error(Reason::UnsupportedVersion(4)))
    );
    for page_size in [0u32, 1000, 512, 1 << 25] {
        let mut bad = good;
        write_u32(&mut bad, 16, page_size);
        assert_eq!(
            Superblock::decode(&resign(bad)),
            Err(superblock_error(Reason::Insane("page size")))
        );
    }
    let mut bad = good;
    write_u32(&mut bad, 20, 2);
    assert_eq!(
        Superblock::decode(&resign(bad)),
        Err(superblock_error(Reason::Insane("selector")))
    );
    let mut bad = good;
    write_u64(&mut bad, 24, 0);
    assert_eq!(
        Superblock::decode(&resign(bad)),
        Err(superblock_error(Reason::Insane("generation")))
    );
    let mut bad = good;
    bad[50] = 1;
    assert_eq!(
        Superblock::decode(&resign(bad)),
        Err(superblock_error(Reason::Insane("reserved bytes")))
    );
}

fn sample_meta() -> MetaPage {
    let g = geometry();
    MetaPage {
        generation: 9,
        page_count: g.pages_per_group() * 2 + 10,
        materialized_groups: 2,
        slot_digest: 0x0123_4567_89ab_cdef,
        log: vec![
            LogEntry {
                first_page: 5,
                page_count: 3,
                kind: LogKind::Alloc,
            },
            LogEntry {
                first_page: g.pages_per_group() * 2 + 2,
                page_count: 1,
                kind: LogKind::Free,
            },
        ],
        directory: DirectoryRoot {
            block_count: 1,
            digest: 0xfeed,
            head_pages: [9, 10, 11, 12],
        },
        single_sync: false,
        data_checks: Vec::new(),
        table_digest: 0,
    }
}

/// A single-sync copy with two data checks after its two log entries.
fn sample_checked_meta() -> MetaPage {
    let g = geometry();
    MetaPage {
        single_sync: true,
        data_checks: vec![
            DataCheck {
                first_page: 20,
                page_count: 4,
                crc: 0x1234_5678,
            },
            DataCheck {
                first_page: g.pages_per_group() + 2,
                page_count: 1,
                crc: 0,
            },
        ],
        table_digest: 0,
        ..sample_meta()
    }
}

#[test]
fn meta_data_checks_round_trip_after_the_log() {
    let g = geometry();
    let meta = sample_checked_meta();
    let mut page = vec![0u8; G1K];
    meta.encode(g, &mut page);
    assert_eq!(read_u32(&page, 104), 2, "data check count");
    // Log entries at 128 and 144, data checks at 160 and 176, zero after.
    assert_eq!(read_u32(&page, 160), 20);
    assert_eq!(read_u32(&page, 168), 4);
    assert_eq!(read_u32(&page, 172), 0x1234_5678);
    assert!(all_zero(&page[192..]));
    assert_eq!(MetaPage::decode(&page, g), Ok(meta));
}

#[test]
fn meta_data_check_rejections() {
    let g = geometry();
    let reject = |what| Err(DecodeError::new(PageKind::Meta, Reason::Insane(what)));
    let mut page = vec![0u8; G1K];
    sample_checked_meta().encode(g, &mut page);
    let good = page.clone();
    // Without the single-sync flag.
    write_u32(&mut page, 52, 0);
    resign_meta(&mut page);
    assert_eq!(
        MetaPage::decode(&page, g),
        reject("data checks in a copy without the single-sync flag")
    );
    // Log and data checks over capacity.
    let mut page = good.clone();
    write_u32(&mut page, 104, (g.log_capacity() - 1) as u32);
    resign_meta(&mut page);
    assert_eq!(
        MetaPage::decode(&page, g),
        reject("log and data checks longer than a page holds")
    );
    // A count one short leaves the last check's bytes after the end.
    let mut page = good.clone();
    write_u32(&mut page, 104, 1);
    resign_meta(&mut page);
    assert_eq!(
        MetaPage::decode(&page, g),
        reject("bytes after the log not zero")
    );
    // A check of zero pages, and one on an internal page.
    for (count, first, what) in [
        (0, 20, "log entry with zero pages"),
        (1, g.pages_per_group(), "log entry touches an internal page"),
    ] {
        let mut page = good.clone();
        write_u64(&mut page, 160, first);
        write_u32(&mut page, 168, count);
        resign_meta(&mut page);
        assert_eq!(MetaPage::decode(&page, g), reject(what), "{what}");
    }
}

#[test]
#[should_panic(expected = "data checks in a copy without the single-sync flag")]
fn meta_encode_refuses_data_checks_without_the_flag() {
    let meta = MetaPage {
        single_sync: false,
        ..sample_checked_meta()
    };
    meta.encode(geometry(), &mut vec![0u8; G1K]);
}

#[test]
fn superblock_versions_one_to_three_decode_others_do_not() {
    for version in MIN_FORMAT_VERSION..=FORMAT_VERSION {
        let sb = Superblock {
            version,
            page_size: 1024,
            active_meta: MetaSlot::A,
            active_generation: 3,
            active_meta_checksum: 1,
        };
        assert_eq!(Superblock::decode(&sb.encode()), Ok(sb));
    }
    let mut bytes = Superblock {
        version: FORMAT_VERSION,
        page_size: 1024,
        active_meta: MetaSlot::A,
        active_generation: 3,
        active_meta_checksum: 1,
    }
    .encode();
    for version in [0, FORMAT_VERSION + 1] {
        write_u32(&mut bytes, 12, version);
        let c = crc(&bytes[12..]);
        write_u32(&mut bytes, 8, c);
        assert_eq!(
            Superblock::decode(&bytes),
            Err(DecodeError::new(
                PageKind::Superblock,
                Reason::UnsupportedVersion(version)
            ))
        );
    }
}

fn resign_meta(page: &mut [u8]) {
    let c = crc(&page[12..]);
    write_u32(page, 8, c);
}

#[test]
fn meta_round_trip_and_checksum_field() {
    let g = geometry();
    let meta = sample_meta();
    let mut page = vec![0u8; G1K];
    let checksum = meta.encode(g, &mut page);
    assert_eq!(MetaPage::checksum_field(&page), Some(checksum));
    assert_eq!(MetaPage::decode(&page, g), Ok(meta.clone()));
    let single_sync = MetaPage {
        single_sync: true,
        ..meta
    };
    single_sync.encode(g, &mut page);
    assert_eq!(read_u32(&page, 52), META_FLAG_SINGLE_SYNC);
    assert_eq!(MetaPage::decode(&page, g), Ok(single_sync));
}

#[test]
fn meta_full_log_round_trip() {
    let g = geometry();
    let mut meta = sample_meta();
    meta.log = (0..g.log_capacity() as u64)
        .map(|i| LogEntry {
            first_page: 5 + i,
            page_count: 1,
            kind: if i % 2 == 0 {
                LogKind::Alloc
            } else {
                LogKind::Free
            },
        })
        .collect();
    let mut page = vec![0u8; G1K];
    meta.encode(g, &mut page);
    assert_eq!(MetaPage::decode(&page, g), Ok(meta));
}

#[test]
fn meta_rejections() {
    let g = geometry();
    let mut good = vec![0u8; G1K];
    sample_meta().encode(g, &mut good);
    assert_eq!(
        MetaPage::decode(&good[..G1K - 1], g),
        Err(meta(Reason::Truncated))
    );
    let mut bad = good.clone();
    bad[1] ^= 0xff;
    assert_eq!(MetaPage::decode(&bad, g), Err(meta(Reason::BadMagic)));
    let mut bad = good.clone();
    bad[900] ^= 1;
    assert_eq!(MetaPage::decode(&bad, g), Err(meta(Reason::BadChecksum)));

    let check = |edit: &dyn Fn(&mut [u8]), expected: DecodeError| {
        let mut bad = good.clone();
        edit(&mut bad);
        resign_meta(&mut bad);
        assert_eq!(MetaPage::decode(&bad, g), Err(expected));
    };
    check(&|p| write_u32(p, 12, 4096), meta(Reason::PageSize(4096)));
    check(
        &|p| write_u64(p, 16, 0),
        meta(Reason::Insane("generation 0")),
    );
    for count in [0u64, 5, g.pages_per_group() + 1, u64::MAX] {
        check(
            &|p| write_u64(p, 24, count),
            meta(Reason::Insane("page count is not a valid file size")),
        );
    }
    check(
        &|p| write_u64(p, 32, 0),
        meta(Reason::Insane("materialized group count out of range")),
    );
    check(
        &|p| write_u64(p, 32, 4),
        meta(Reason::Insane("materialized group count out of range")),
    );
    check(
        &|p| write_u32(p, 48, 1000),
        meta(Reason::Insane("log longer than a page holds")),
    );
    check(
        &|p| p[110] = 1,
        meta(Reason::Insane("reserved header bytes not zero")),
    );
    check(
        &|p| write_u32(p, 52, META_FLAG_GROUP_TABLE),
        meta(Reason::Insane(
            "group table flag does not match the file's format",
        )),
    );
    for flags in [4u32, 0x8000_0000, 5] {
        check(
            &|p| write_u32(p, 52, flags),
            meta(Reason::Insane("unknown metadata flags")),
        );
    }
    check(
        &|p| write_u64(p, 56, 0),
        meta(Reason::Insane(
            "directory pages named without a directory block",
        )),
    );
    // The sample file has N pages: N / 4 blocks would fit, N / 4 + 1 cannot.
    let quarter = sample_meta().page_count / 4;
    for count in [quarter + 1, u64::MAX] {
        check(
            &|p| write_u64(p, 56, count),
            meta(Reason::Insane("more directory blocks than the file holds")),
        );
    }
    let mut fits = good.clone();
    write_u64(&mut fits, 56, quarter);
    resign_meta(&mut fits);
    assert_eq!(
        MetaPage::decode(&fits, g).map(|m| m.directory.block_count),
        Ok(quarter)
    );
    check(
        &|p| write_u64(p, 72, 2),
        meta(Reason::Insane(
            "directory page outside the data pages of the file",
        )),
    );
    check(
        &|p| write_u64(p, 72, u64::MAX),
        meta(Reason::Insane(
            "directory page outside the data pages of the file",
        )),
    );
    check(
        &|p| write_u64(p, 80, 9),
        meta(Reason::Insane("directory block names one page twice")),
    );
    check(
        &|p| p[1000] = 1,
        meta(Reason::Insane("bytes after the log not zero")),
    );
    check(
        &|p| write_u32(p, 128 + 12, 3),
        meta(Reason::Insane("unknown log entry kind")),
    );
    check(
        &|p| write_u32(p, 128 + 8, 0),
        meta(Reason::Insane("log entry with zero pages")),
    );
    check(
        &|p| write_u64(p, 128, u64::MAX),
        meta(Reason::Insane("log entry overflows")),
    );
    check(
        &|p| write_u64(p, 128, g.pages_per_group() * 2 + 9),
        meta(Reason::Insane("log entry past the end of the file")),
    );
    check(
        &|p| write_u64(p, 128, g.pages_per_group() - 1),
        meta(Reason::Insane("log entry spans two groups")),
    );
    for internal in [0u64, 2, 4] {
        check(
            &|p| write_u64(p, 128, internal),
            meta(Reason::Insane("log entry touches an internal page")),
        );
    }
    check(
        &|p| write_u64(p, 128 + 16, g.pages_per_group() * 2 + 1),
        meta(Reason::Insane("log entry touches an internal page")),
    );
}

#[test]
fn group_slot_round_trip() {
    let g = geometry();
    let words: Vec<u64> = (0..g.pages_per_group() / 64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let mut page = vec![0u8; G1K];
    let header = GroupSlotHeader {
        generation: 3,
        group: 7,
    };
    encode_group_slot(g, header, &words, &mut page);
    let (decoded, bitmap) = decode_group_slot(&page, g, 7).expect("decodes");
    assert_eq!(decoded, header);
    for (i, word) in words.iter().enumerate() {
        assert_eq!(slot_bitmap_word(bitmap, i), *word);
    }
}

#[test]
fn group_slot_rejections() {
    let g = geometry();
    let words = vec![0u64; (g.pages_per_group() / 64) as usize];
    let mut good = vec![0u8; G1K];
    encode_group_slot(
        g,
        GroupSlotHeader {
            generation: 3,
            group: 1,
        },
        &words,
        &mut good,
    );
    assert_eq!(
        decode_group_slot(&good[..10], g, 1).err(),
        Some(group(Reason::Truncated))
    );
    assert_eq!(
        decode_group_slot(&good, g, 2).err(),
        Some(group(Reason::Insane(
            "group index does not match its position"
        )))
    );
    let mut bad = good.clone();
    bad[0] = 0;
    assert_eq!(
        decode_group_slot(&bad, g, 1).err(),
        Some(group(Reason::BadMagic))
    );
    let mut bad = good.clone();
    bad[500] ^= 4;
    assert_eq!(
        decode_group_slot(&bad, g, 1).err(),
        Some(group(Reason::BadChecksum))
    );
    let mut bad = good.clone();
    write_u32(&mut bad, 12, 2048);
    resign_meta(&mut bad);
    assert_eq!(
        decode_group_slot(&bad, g, 1).err(),
        Some(group(Reason::PageSize(2048)))
    );
    let mut bad = good.clone();
    write_u64(&mut bad, 16, 0);
    resign_meta(&mut bad);
    assert_eq!(
        decode_group_slot(&bad, g, 1).err(),
        Some(group(Reason::Insane("generation 0")))
    );
}

fn sample_directory_slot() -> DirectorySlot {
    let g = geometry();
    let mut entries = vec![None; g.directory_entries_per_block() as usize];
    entries[0] = Some(DirectoryEntry {
        copies: [20, 21],
        current: 1,
        content_generation: 4,
        content_checksum: 0xDEAD_BEEF,
    });
    entries[29] = Some(DirectoryEntry {
        copies: [30, 25],
        current: 0,
        content_generation: 5,
        content_checksum: 7,
    });
    DirectorySlot {
        generation: 5,
        block: 3,
        next_pages: [40, 41, 42, 43],
        entries,
    }
}

/// Known answers computed from SPEC.md §2.5 and §2.7 by an independent implementation: the
/// terms are part of the format, so a change to them is a format change.
#[test]
fn digest_terms_match_the_spec() {
    let cases = [
        (0, 1, 0, 0x74da_a65d_c60f_d558, 0xafd8_addc_9f8b_3fa2),
        (
            7,
            42,
            0xDEAD_BEEF,
            0x7fe8_bdf9_9bfd_1d34,
            0x42ab_c907_1e24_e3ff,
        ),
        (
            1 << 40,
            u64::MAX,
            u32::MAX,
            0xa44b_7ba5_f7ee_c449,
            0xddf2_6a60_9d45_e6fc,
        ),
    ];
    for (index, generation, checksum, slot_term, directory_term) in cases {
        assert_eq!(slot_digest_term(index, generation, checksum), slot_term);
        assert_eq!(
            directory_digest_term(index, generation, checksum),
            directory_term
        );
    } // Format 3's table term ("mappgtbl"), from the same independent implementation.
    let table_terms = [
        0xbfb7_8f51_de9f_9f2f,
        0xa3b9_4d17_9706_ea71,
        0xdbd9_3487_234d_44f8,
    ];
    for ((index, generation, checksum, _, _), expected) in cases.into_iter().zip(table_terms) {
        assert_eq!(table_digest_term(index, generation, checksum), expected);
    }
}

#[test]
fn directory_slot_round_trip() {
    let g = geometry();
    assert_eq!(g.directory_entries_per_block(), 30);
    assert_eq!(Geometry::new(4096).directory_entries_per_block(), 126);
    let slot = sample_directory_slot();
    let mut page = vec![0xAAu8; G1K];
    let checksum = encode_directory_slot(g, &slot, &mut page);
    assert_eq!(slot_checksum_field(&page), Some(checksum));
    assert_eq!(decode_directory_slot(&page, g, 3, 100), Ok(slot));
    assert_ne!(
        directory_digest_term(3, 5, checksum),
        slot_digest_term(3, 5, checksum),
        "a bitmap slot term never equals a directory slot term"
    );
}

#[test]
fn directory_slot_rejections() {
    let g = geometry();
    let mut good = vec![0u8; G1K];
    encode_directory_slot(g, &sample_directory_slot(), &mut good);
    assert_eq!(
        decode_directory_slot(&good[..100], g, 3, 100),
        Err(directory(Reason::Truncated))
    );
    let mut bad = good.clone();
    bad[0] ^= 1;
    assert_eq!(
        decode_directory_slot(&bad, g, 3, 100),
        Err(directory(Reason::BadMagic))
    );
    let mut bad = good.clone();
    bad[700] ^= 1;
    assert_eq!(
        decode_directory_slot(&bad, g, 3, 100),
        Err(directory(Reason::BadChecksum))
    );
    let check = |edit: &dyn Fn(&mut [u8]), expected: &'static str, page_count: u64| {
        let mut bad = good.clone();
        edit(&mut bad);
        resign_meta(&mut bad);
        assert_eq!(
            decode_directory_slot(&bad, g, 3, page_count),
            Err(directory(Reason::Insane(expected)))
        );
    };
    let mut other_size = good.clone();
    write_u32(&mut other_size, 12, 4096);
    resign_meta(&mut other_size);
    assert_eq!(
        decode_directory_slot(&other_size, g, 3, 100),
        Err(directory(Reason::PageSize(4096)))
    );
    check(&|p| write_u64(p, 16, 0), "generation 0", 100);
    check(
        &|_| {},
        "directory page outside the data pages of the file",
        42,
    );
    let wrong_block = |p: &mut [u8]| write_u64(p, 24, 2);
    check(
        &wrong_block,
        "block index does not match its position in the chain",
        100,
    );
    check(
        &|p| write_u64(p, 40, 40),
        "directory block names one page twice",
        100,
    );
    check(
        &|p| write_u64(p, 32, 3),
        "directory page outside the data pages of the file",
        100,
    );
    let entry = DIRECTORY_HEADER_BYTES;
    check(
        &|p| p[entry + 28] = 2,
        "entry with an unknown current copy",
        100,
    );
    check(
        &|p| p[entry + 30] = 1,
        "entry with an unknown current copy",
        100,
    );
    check(
        &|p| write_u64(p, entry + 16, 6),
        "entry content newer than its directory slot",
        100,
    );
    check(
        &|p| write_u64(p, entry + 16, 0),
        "entry content newer than its directory slot",
        100,
    );
    check(
        &|p| write_u64(p, entry + 8, 20),
        "both copies in one page",
        100,
    );
    for bad_page in [0u64, 4, g.pages_per_group() + 1, u64::MAX] {
        check(
            &|p| write_u64(p, entry, bad_page),
            "backing copy outside the data pages of the file",
            100_000,
        );
    }
}

/// The one decode error type keeps the wording of the four it replaced (recovery's error details
/// quote it).
#[test]
fn decode_error_texts() {
    use PageKind::{DirectorySlot, GroupSlot, Meta, Superblock};
    let cases: [(PageKind, Reason, &str); 17] = [
        (Superblock, Reason::Truncated, "superblock truncated"),
        (Superblock, Reason::BadMagic, "superblock magic missing"),
        (
            Superblock,
            Reason::BadChecksum,
            "superblock checksum mismatch",
        ),
        (
            Superblock,
            Reason::UnsupportedVersion(2),
            "format version 2",
        ),
        (
            Superblock,
            Reason::Insane("selector"),
            "superblock field invalid: selector",
        ),
        (Meta, Reason::Truncated, "truncated"),
        (Meta, Reason::BadMagic, "no metadata magic"),
        (Meta, Reason::BadChecksum, "checksum mismatch"),
        (Meta, Reason::PageSize(4096), "written for page size 4096"),
        (
            Meta,
            Reason::Insane("generation 0"),
            "checksum valid but generation 0",
        ),
        (GroupSlot, Reason::BadMagic, "no slot magic"),
        (GroupSlot, Reason::BadChecksum, "checksum mismatch"),
        (
            GroupSlot,
            Reason::PageSize(4096),
            "checksum valid but written for another page size",
        ),
        (DirectorySlot, Reason::Truncated, "truncated"),
        (DirectorySlot, Reason::BadMagic, "no directory magic"),
        (
            DirectorySlot,
            Reason::PageSize(4096),
            "checksum valid but written for another page size",
        ),
        (
            DirectorySlot,
            Reason::Insane("both copies in one page"),
            "checksum valid but both copies in one page",
        ),
    ];
    for (kind, reason, text) in cases {
        assert_eq!(DecodeError::new(kind, reason).to_string(), text);
    }
}

fn table(reason: Reason) -> DecodeError {
    DecodeError::new(PageKind::GroupTable, reason)
}

/// The extents the layout tests walk: 0..=13 (crossing group boundaries from 12 on at 1 KiB),
/// fewer under Miri.
const EXTENTS_WALKED: u32 = if cfg!(miri) { 3 } else { 13 };

fn sample_table_entries(count: usize) -> Vec<TableEntry> {
    (0..count as u64)
        .map(|i| TableEntry {
            generation: 1 + i % 5,
            checksum: (i as u32).wrapping_mul(0x9E37_79B9),
            slot: (i % 2) as u8,
            free_pages: (i * 37 % 7936) as u32,
        })
        .collect()
}

#[test]
fn table_page_round_trip_at_literal_offsets() {
    let g = geometry();
    assert_eq!(g.table_entries_per_page(), 62);
    assert_eq!(Geometry::new(4096).table_entries_per_page(), 254);
    for count in [0, 1, 61, 62] {
        let entries = sample_table_entries(count);
        let header = TablePageHeader {
            generation: 9,
            index: 3,
        };
        let mut page = vec![0xAAu8; G1K];
        let checksum = encode_table_page(g, header, &entries, &mut page);
        assert_eq!(&page[..8], b"MAPPGGT\x01");
        assert_eq!(read_u32(&page, 8), checksum);
        assert_eq!(checksum, crc(&page[12..]));
        assert_eq!(read_u32(&page, 12), 1024);
        assert_eq!(page[16], 9, "generation at 16");
        assert_eq!(page[24], 3, "index at 24");
        if count > 1 {
            // Entry 1 at 32 + 16: generation, checksum, then slot 1 in bit 31 over the count.
            assert_eq!(page[48], 2);
            assert_eq!(read_u32(&page, 56), entries[1].checksum);
            assert_eq!(read_u32(&page, 60), (1 << 31) | 37);
        }
        assert!(
            all_zero(&page[32 + 16 * count..]),
            "zero entries after the live ones"
        );
        let (decoded, decoded_entries) = decode_table_page(&page, g, 3).expect("decodes");
        assert_eq!(decoded, header);
        assert_eq!(decoded_entries, entries);
    }
}

#[test]
fn table_page_rejections() {
    let g = geometry();
    let header = TablePageHeader {
        generation: 5,
        index: 1,
    };
    let mut good = vec![0u8; G1K];
    encode_table_page(g, header, &sample_table_entries(10), &mut good);
    let rejected = |page: &[u8], index: u64| decode_table_page(page, g, index).err();
    assert_eq!(rejected(&good[..100], 1), Some(table(Reason::Truncated)));
    assert_eq!(
        rejected(&good, 2),
        Some(table(Reason::Insane(
            "table page index does not match its position"
        )))
    );
    let mut bad = good.clone();
    bad[3] = 0;
    assert_eq!(rejected(&bad, 1), Some(table(Reason::BadMagic)));
    let mut bad = good.clone();
    bad[700] ^= 1;
    assert_eq!(rejected(&bad, 1), Some(table(Reason::BadChecksum)));
    // Checksum-valid damage, one field at a time.
    let cases: [(usize, u64, Reason); 6] = [
        (12, 4096, Reason::PageSize(4096)),
        (16, 0, Reason::Insane("generation 0")),
        // Entry 2's generation above the page's 5.
        (
            32 + 2 * 16,
            6,
            Reason::Insane("a table entry newer than its page"),
        ),
        // Entry 3's free count (slot bit clear) above the 7,934 pages a group can have free.
        (
            32 + 3 * 16 + 12,
            7935,
            Reason::Insane("a free count above the pages of a group"),
        ),
        // A live entry after the zero entry 10.
        (
            32 + 11 * 16,
            1,
            Reason::Insane("a table entry after an empty one"),
        ),
        // Entry 10 has generation 0 but a checksum.
        (
            32 + 10 * 16 + 8,
            1,
            Reason::Insane("an entry of generation 0 is not all zero"),
        ),
    ];
    for (at, value, reason) in cases {
        let mut bad = good.clone();
        if at == 12 || at % 16 == 12 || at % 16 == 8 {
            write_u32(&mut bad, at, value as u32);
        } else {
            write_u64(&mut bad, at, value);
        }
        resign_meta(&mut bad);
        assert_eq!(rejected(&bad, 1), Some(table(reason)), "field at {at}");
    }
}

#[test]
#[should_panic(expected = "free count 2147483648 does not fit 31 bits")]
fn table_entry_encode_refuses_a_count_in_the_slot_bit() {
    let entry = TableEntry {
        generation: 1,
        checksum: 0,
        slot: 0,
        free_pages: 1 << 31,
    };
    let _ = entry.encode();
}

/// The extents by brute force: walk from each extent's start over consecutive pages, skipping
/// every page of the format-2 layout that is internal, and collect `2^(e+1)` pages.
fn walk_extent(g: Geometry, extent: u32) -> Vec<u64> {
    let mut page = g.group_start(g.extent_start_group(extent));
    let mut pages = Vec::new();
    while (pages.len() as u64) < g.extent_page_count(extent) {
        if !g.is_internal(page) {
            pages.push(page);
        }
        page += 1;
    }
    pages
}

#[test]
fn table_layout_matches_a_brute_force_walk() {
    let sizes: &[usize] = if cfg!(miri) {
        &[1024]
    } else {
        &[1024, 2048, 4096, 1 << 16, 1 << 24]
    };
    for &p in sizes {
        let g = Geometry::new(p);
        let max_extent = g
            .table_extent(g.max_table_page_count() - 1)
            .min(EXTENTS_WALKED + if cfg!(miri) { 0 } else { 2 });
        let mut previous_end = 0;
        for extent in 0..=max_extent {
            let walked = walk_extent(g, extent);
            assert_eq!(
                g.extent_start_page(extent),
                walked[0],
                "P {p} extent {extent}"
            );
            assert!(
                walked[0] > previous_end,
                "P {p}: extent {extent} overlaps its predecessor"
            );
            previous_end = *walked.last().expect("extents are not empty");
            let first_table_page = (1u64 << extent) - 1;
            for (j, &page) in walked.iter().enumerate() {
                let j = j as u64;
                assert_eq!(
                    g.extent_page(extent, j),
                    page,
                    "P {p} extent {extent} page {j}"
                );
                let (t, s) = (first_table_page + j / 2, (j % 2) as u8);
                assert_eq!(g.table_slot_at(page), Some((t, s)), "P {p} page {page}");
                assert!(g.is_table_page(page));
                if t < g.max_table_page_count() {
                    assert_eq!(g.table_slot_page(t, s), page);
                    assert_eq!(g.table_extent(t), extent);
                }
            }
            // Just outside: the pages before the start and after the end are no table pages.
            for page in [walked[0] - 1, previous_end + 1] {
                assert_eq!(
                    g.table_slot_at(page),
                    None,
                    "P {p} page {page} next to extent {extent}"
                );
            }
        }
    }
}

#[test]
fn table_slots_exist_before_their_groups() {
    // The slots of table page t lie below the first page of group t·E_t's data, so a file
    // holding a group holds its table page (checked for every t of the first 16 extents).
    for p in [1024usize, 4096] {
        let g = Geometry::new(p);
        let checked = if cfg!(miri) { 100 } else { (1 << 16) - 1 };
        for t in 0..g.max_table_page_count().min(checked) {
            let group = t * g.table_entries_per_page();
            let first_data = g.group_start(group) + if group == 0 { 5 } else { 2 };
            let slot1 = g.table_slot_page(t, 1);
            assert!(
                slot1 < g.group_start(group + 1),
                "P {p} table page {t}: slot at {slot1} past group {group}"
            );
            if group > g.extent_start_group(g.table_extent(t)) {
                assert!(
                    slot1 < first_data,
                    "P {p} table page {t} inside its first group"
                );
            }
        }
    }
}

#[test]
fn table_pages_below_counts_the_extents_up_to_a_length() {
    for p in [1024usize, 4096] {
        let g = Geometry::new(p);
        let extents: Vec<Vec<u64>> = (0..=EXTENTS_WALKED).map(|e| walk_extent(g, e)).collect();
        let brute = |n: u64| -> u64 {
            extents
                .iter()
                .map(|pages| pages.iter().filter(|&&page| page < n).count() as u64)
                .sum()
        };
        let mut lengths = vec![0, 1, 5, 6, 7, 8, 100];
        for pages in &extents {
            let (first, last) = (pages[0], *pages.last().expect("not empty"));
            let middle = pages[pages.len() / 2];
            lengths.extend([
                first,
                first + 1,
                middle,
                middle + 1,
                last,
                last + 1,
                last + 2,
            ]);
            // Inside a crossing: the slot pages of every crossed group, and just after them.
            for after in pages.windows(2).filter(|w| w[1] != w[0] + 1).map(|w| w[1]) {
                lengths.extend([after - 2, after - 1, after, after + 1]);
            }
        }
        for n in lengths {
            assert_eq!(g.table_pages_below(n), brute(n), "P {p} page count {n}");
        }
    }
}

#[test]
fn format_2_page_count_rule_is_unchanged() {
    // "The last page is a data page" is format 1's `N mod G ∉ {1, 2}`, for every N ≥ 6.
    for p in [1024usize, 4096] {
        let g = Geometry::new(p);
        let gpp = g.pages_per_group();
        let probed = if cfg!(miri) { 300 } else { 3 * gpp + 10 };
        let counts = (0..probed).chain(g.max_page_count() - 10..g.max_page_count() + 10);
        for n in counts {
            let old = (MIN_PAGE_COUNT..=MAX_PAGE_COUNT).contains(&n)
                && n.checked_mul(p as u64).is_some_and(|b| b <= MAX_FILE_BYTES)
                && !(1..=2).contains(&(n % gpp));
            assert_eq!(g.is_valid_page_count(n), old, "P {p} page count {n}");
        }
        assert_eq!(g.first_data_page(), FIRST_DATA_PAGE);
        assert_eq!(g.min_page_count(), MIN_PAGE_COUNT);
        assert!(!g.has_group_table());
    }
}

#[test]
fn format_3_layout_against_brute_force() {
    for p in [1024usize, 4096] {
        let g3 = Geometry::with_group_table(p);
        let g2 = Geometry::new(p);
        assert!(g3.has_group_table());
        assert_eq!((g3.first_data_page(), g3.min_page_count()), (7, 8));
        assert!(g3.is_internal(5) && g3.is_internal(6) && !g3.is_internal(7));
        assert!(!g3.is_valid_page_count(7) && g3.is_valid_page_count(8));
        // Every extent page is internal; a page is internal iff format 2 says so or it lies
        // in an extent; internal counts agree with a count of the walked extents.
        let extents: Vec<Vec<u64>> = (0..=EXTENTS_WALKED).map(|e| walk_extent(g2, e)).collect();
        let table: std::collections::BTreeSet<u64> = extents.iter().flatten().copied().collect();
        let probed_groups = if cfg!(miri) { 0 } else { 3 };
        let mut probes: Vec<u64> = (0..probed_groups * g2.pages_per_group() + 64).collect();
        for pages in &extents {
            let (first, last) = (pages[0], *pages.last().expect("not empty"));
            probes.extend(first.saturating_sub(3)..first + 3);
            probes.extend(last.saturating_sub(3)..last + 3);
        }
        for &page in &probes {
            let expected = g2.is_internal(page) || table.contains(&page);
            assert_eq!(g3.is_internal(page), expected, "P {p} page {page}");
            let n = page + 1;
            if n >= g3.min_page_count() && n <= g2.max_page_count() {
                assert_eq!(g3.is_valid_page_count(n), !expected, "P {p} page count {n}");
            }
            if g3.is_valid_page_count(n) {
                let below = table.range(..n).count() as u64;
                assert_eq!(
                    g3.internal_page_count(n),
                    g2.internal_page_count(n) + below,
                    "P {p} page count {n}"
                );
            }
        }
        // The group where a crossing extent starts holds no data page, so no valid count ends
        // in it (extent 12 at 1 KiB, 14 at 4 KiB: the first longer than a group).
        let crossing = (0..=EXTENTS_WALKED)
            .find(|&e| g3.extent_page_count(e) > g3.pages_per_group())
            .map(|e| g3.extent_start_group(e));
        if let Some(group) = crossing {
            let start = g3.group_start(group);
            assert!((start + 1..=start + g3.pages_per_group()).all(|n| !g3.is_valid_page_count(n)));
        }
        let max = g3.max_page_count();
        assert!(g3.is_valid_page_count(max) && max <= g2.max_page_count());
    }
}

#[test]
fn table_pages_in_group_is_every_extent_page_of_the_group() {
    for p in [1024usize, 4096] {
        let g3 = Geometry::with_group_table(p);
        let g2 = Geometry::new(p);
        let gpp = g3.pages_per_group();
        let extents: Vec<Vec<u64>> = (0..=EXTENTS_WALKED).map(|e| walk_extent(g2, e)).collect();
        let mut groups: Vec<u64> = (0..4).collect();
        for pages in &extents {
            let (first, last) = (pages[0], *pages.last().expect("not empty"));
            groups.extend([first / gpp, first / gpp + 1, last / gpp, last / gpp + 1]);
        }
        for group in groups {
            let range = g3.table_pages_in_group(group);
            let start = g3.group_start(group);
            let walked: Vec<u64> = extents
                .iter()
                .flatten()
                .copied()
                .filter(|page| (start..start + gpp).contains(page))
                .collect();
            assert_eq!(
                range.clone().collect::<Vec<_>>(),
                walked,
                "P {p} group {group}"
            );
            assert!(
                g2.table_pages_in_group(group).is_empty(),
                "format 2 has no extents"
            );
        }
    }
}

#[test]
fn table_page_counts_have_known_answers() {
    let g = Geometry::with_group_table(1024);
    let cases = [
        (0, 0),
        (1, 1),
        (62, 1),
        (63, 2),
        (124, 2),
        (125, 3),
        (62 * 4096, 4096),
    ];
    for (groups, pages) in cases {
        assert_eq!(g.table_page_count(groups), pages, "{groups} groups");
    }
    assert_eq!(Geometry::with_group_table(4096).table_page_count(255), 2);
    // ⌈⌈max pages / G⌉ / E_t⌉: 2^36 pages of 1 KiB, 2^34 of 4 KiB, 2^22 of 16 MiB.
    assert_eq!(Geometry::new(1024).max_table_page_count(), 139_665);
    assert_eq!(Geometry::new(4096).max_table_page_count(), 2_081);
    assert_eq!(Geometry::new(1 << 24).max_table_page_count(), 1);
    // A free count of G − 2 is the most a group can have; one more is rejected.
    let mut page = vec![0u8; G1K];
    let entry = |free_pages| TableEntry {
        generation: 1,
        checksum: 0,
        slot: 0,
        free_pages,
    };
    let header = TablePageHeader {
        generation: 1,
        index: 0,
    };
    encode_table_page(g, header, &[entry(7934)], &mut page);
    assert!(decode_table_page(&page, g, 0).is_ok());
    encode_table_page(g, header, &[entry(7935)], &mut page);
    assert!(decode_table_page(&page, g, 0).is_err());
}
