//! Malformed input (INV-9) and media corruption (INV-8).
//!
//! Every image here is built by hand or by editing the image of a real pager (and, where the
//! point is a checksum-valid but wrong page, re-signing it with the crate's own encoders or
//! CRC-32). Opening it must give the exact typed error SPEC.md §4.2 names, or open to a state that
//! loses nothing acknowledged; never a panic. Bad page ids give typed errors too.

use std::collections::BTreeSet;
use std::path::PathBuf;

use mappedpages::format::{
    FORMAT_VERSION, Geometry, GroupSlotHeader, MetaPage, MetaSlot, Superblock, decode_group_slot,
    encode_group_slot, slot_bitmap_word,
};
use mappedpages::{
    FailedSyncKeeps, MappedPageError, PageId, Pager, RecoveryDecision, SimStorage, Storage,
};

const P: usize = 1024;
/// Pages per bitmap group at 1 KiB.
const G: u64 = ((P - 32) * 8) as u64;
/// Smallest valid file at 1 KiB: six pages.
const MIN_LEN: u64 = 6 * P as u64;

type SimPager = Pager<P, SimStorage>;

/// `match` on a `Result` that must be a given error; anything else panics with what it was.
macro_rules! expect_err {
    ($result:expr, $pattern:pat) => {
        expect_err!($result, $pattern => ())
    };
    ($result:expr, $pattern:pat => $then:expr) => {
        match $result {
            Err($pattern) => $then,
            Err(other) => panic!(
                "expected Err({}), got Err({other:?}): {other}",
                stringify!($pattern)
            ),
            Ok(value) => panic!("expected Err({}), got Ok({value:?})", stringify!($pattern)),
        }
    };
}

// ----- helpers ------------------------------------------------------------------------------

fn geometry() -> Geometry {
    Geometry::with_group_table(P)
}

fn open_image(image: Vec<u8>) -> Result<SimPager, MappedPageError> {
    SimPager::open_in(SimStorage::from_image(image))
}

/// The bytes of a pager's storage. Every commit of these tests completed (all its syncs returned
/// `Ok`), so these are also the durable bytes a crash would leave.
fn image_of<S: Storage>(pager: &Pager<P, S>) -> Vec<u8> {
    pager.storage().bytes().to_vec()
}

fn allocated<const Q: usize, S: Storage>(pager: &Pager<Q, S>) -> BTreeSet<u64> {
    pager.iter_allocated_pages().map(|id| id.raw()).collect()
}

fn page(image: &[u8], page: u64) -> &[u8] {
    &image[page as usize * P..(page as usize + 1) * P]
}

fn page_mut(image: &mut [u8], page: u64) -> &mut [u8] {
    &mut image[page as usize * P..(page as usize + 1) * P]
}

/// Writes the CRC-32 of bytes `12..` into bytes `8..12`: the checksum layout of the superblock
/// record, metadata pages and slot pages alike.
fn resign(record: &mut [u8]) {
    let checksum = crc32fast::hash(&record[12..]);
    record[8..12].copy_from_slice(&checksum.to_le_bytes());
}

fn superblock(image: &[u8]) -> Superblock {
    Superblock::decode(image).expect("a valid superblock")
}

fn meta(image: &[u8], slot: MetaSlot) -> MetaPage {
    MetaPage::decode(page(image, slot.page()), geometry()).expect("a well-formed metadata copy")
}

/// Decodes `slot`'s copy, lets `edit` change it, and encodes it back with a valid checksum.
fn edit_meta(image: &mut [u8], slot: MetaSlot, edit: impl FnOnce(&mut MetaPage)) {
    let mut decoded = meta(image, slot);
    edit(&mut decoded);
    decoded.encode(geometry(), page_mut(image, slot.page()));
}

/// Rewrites the superblock so that it names `slot` with that copy's generation and checksum.
fn point_superblock_at(image: &mut [u8], slot: MetaSlot) {
    let generation = meta(image, slot).generation;
    let checksum = MetaPage::checksum_field(page(image, slot.page())).unwrap();
    let record = Superblock {
        version: FORMAT_VERSION,
        page_size: P as u64,
        active_meta: slot,
        active_generation: generation,
        active_meta_checksum: checksum,
    }
    .encode();
    image[..record.len()].copy_from_slice(&record);
}

/// Generations of the two slot pages of `group` (None: not a valid slot page).
fn slot_generations(image: &[u8], group: u64) -> [Option<u64>; 2] {
    let g = geometry();
    [0u8, 1].map(|slot| {
        let bytes = page(image, g.slot_page(group, slot));
        decode_group_slot(bytes, g, group)
            .ok()
            .map(|(header, _)| header.generation)
    })
}

/// The page of `group`'s current slot (the valid one with the larger generation).
fn current_slot_page(image: &[u8], group: u64) -> u64 {
    let [a, b] = slot_generations(image, group);
    let slot = match (a, b) {
        (Some(a), Some(b)) if b > a => 1,
        (Some(_), _) => 0,
        (None, Some(_)) => 1,
        (None, None) => panic!("group {group} has no valid slot"),
    };
    geometry().slot_page(group, slot)
}

fn flip_bit(image: &mut [u8], page_index: u64, byte: usize, bit: u8) {
    image[page_index as usize * P + byte] ^= 1 << bit;
}

/// A 1 KiB-page pager with a history: bulk allocations, frees, single allocations. Both metadata
/// copies are valid, and the superblock names the newer one.
fn populated() -> (SimPager, BTreeSet<u64>) {
    populated_in_format(FORMAT_VERSION)
}

/// [`populated`] in a file of format `version`: the format-2 checks of a group's slots (both
/// read, the newer valid one current) run on format-2 files, which this build still opens.
fn populated_in_format(version: u32) -> (SimPager, BTreeSet<u64>) {
    let mut pager = SimPager::create_in_format(SimStorage::new(), version).unwrap();
    let ids = pager.alloc_bulk(20).unwrap();
    pager.free(ids[3]).unwrap();
    pager.free(ids[11]).unwrap();
    for _ in 0..3 {
        pager.alloc().unwrap();
    }
    let expected = allocated(&pager);
    assert_eq!(expected.len(), 21);
    (pager, expected)
}

/// Writes `image` to a file in a new temporary directory.
fn write_file(image: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pages.bin");
    std::fs::write(&path, image).unwrap();
    (dir, path)
}

/// A small deterministic generator (splitmix64).
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&next_random(&mut state).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

// ----- too short ----------------------------------------------------------------------------

/// INV-9: an empty file is `FileTooSmall`, on both backends.
#[test]
fn inv9_empty_file_is_too_small() {
    expect_err!(
        open_image(Vec::new()),
        MappedPageError::FileTooSmall { len_bytes: 0, min_len_bytes } => assert_eq!(min_len_bytes, MIN_LEN)
    );
    let (_dir, path) = write_file(&[]);
    expect_err!(
        Pager::<P>::open(&path),
        MappedPageError::FileTooSmall { len_bytes: 0, min_len_bytes } => assert_eq!(min_len_bytes, MIN_LEN)
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "a failed open writes nothing"
    );
}

/// INV-9: shorter than three pages (zeros, random bytes, or the start of a real file whose
/// superblock is valid) is `FileTooSmall`.
#[test]
fn inv9_shorter_than_three_pages_is_too_small() {
    let (pager, _) = populated();
    let real = image_of(&pager);
    for len in [1usize, 8, 63, 64, 65, 512, 1023, 1024, 2048, 3 * P - 1] {
        for image in [
            vec![0u8; len],
            random_bytes(len as u64, len),
            real[..len].to_vec(),
        ] {
            expect_err!(
                open_image(image),
                MappedPageError::FileTooSmall { len_bytes, min_len_bytes } => {
                    assert_eq!((len_bytes, min_len_bytes), (len as u64, MIN_LEN));
                }
            );
        }
    }
    let (_dir, path) = write_file(&real[..2 * P]);
    expect_err!(
        Pager::<P>::open(&path),
        MappedPageError::FileTooSmall {
            len_bytes: 2048,
            min_len_bytes: MIN_LEN
        }
    );
}

/// INV-9: three to five pages (below the six-page minimum) is `FileTooSmall`, even when those
/// pages are the valid superblock and metadata of a real file.
#[test]
fn inv9_shorter_than_six_pages_is_too_small() {
    let (pager, _) = populated();
    let real = image_of(&pager);
    for len in [3 * P, 3 * P + 1, 4 * P, 5 * P, 6 * P - 1] {
        expect_err!(
            open_image(real[..len].to_vec()),
            MappedPageError::FileTooSmall { len_bytes, min_len_bytes } => {
                assert_eq!((len_bytes, min_len_bytes), (len as u64, MIN_LEN));
            }
        );
    }
    let (_dir, path) = write_file(&real[..5 * P]);
    expect_err!(
        Pager::<P>::open(&path),
        MappedPageError::FileTooSmall {
            len_bytes: 5120,
            min_len_bytes: MIN_LEN
        }
    );
}

// ----- garbage --------------------------------------------------------------------------------

fn assert_rejected_as_garbage(result: Result<SimPager, MappedPageError>, context: &str) {
    match result {
        Err(
            MappedPageError::NotAMappedPagesFile
            | MappedPageError::CorruptSuperblock { .. }
            | MappedPageError::CorruptMetadata { .. }
            | MappedPageError::FileTooSmall { .. },
        ) => {}
        Err(other) => panic!("{context}: unexpected error {other:?}"),
        Ok(pager) => panic!("{context}: random bytes opened as {pager:?}"),
    }
}

/// INV-9: random bytes of many lengths (200 seeds) are rejected with a typed error.
#[test]
fn inv9_random_bytes_are_rejected() {
    let lengths = [
        0,
        1,
        63,
        64,
        100,
        P - 1,
        P,
        3 * P,
        6 * P - 1,
        6 * P,
        6 * P + 7,
        16 * P,
        64 * P + 100,
    ];
    for seed in 0..200u64 {
        let len = lengths[seed as usize % lengths.len()];
        let image = random_bytes(seed, len);
        assert_rejected_as_garbage(open_image(image), &format!("seed {seed}, {len} bytes"));
    }
}

/// INV-9: random bytes that carry the right magics (so decoding reaches the checksums and fields)
/// are rejected with a typed error, and the six-page ones name a corrupt superblock.
#[test]
fn inv9_random_bytes_with_magics_are_rejected() {
    let g = geometry();
    for seed in 0..200u64 {
        let pages = 6 + (seed % 11) as usize;
        let mut image = random_bytes(seed ^ 0xABCD, pages * P);
        image[..8].copy_from_slice(b"MAPPGSB\x01");
        page_mut(&mut image, 1)[..8].copy_from_slice(b"MAPPGMD\x01");
        page_mut(&mut image, 2)[..8].copy_from_slice(b"MAPPGMD\x01");
        page_mut(&mut image, g.slot_page(0, 0))[..8].copy_from_slice(b"MAPPGBG\x01");
        page_mut(&mut image, g.slot_page(0, 1))[..8].copy_from_slice(b"MAPPGBG\x01");
        let context = format!("seed {seed}, {pages} pages");
        expect_err!(
            open_image(image.clone()),
            MappedPageError::CorruptSuperblock { .. }
        );
        // The same with a valid superblock that names a copy that is garbage.
        let record = Superblock {
            version: FORMAT_VERSION,
            page_size: P as u64,
            active_meta: if seed % 2 == 0 {
                MetaSlot::A
            } else {
                MetaSlot::B
            },
            active_generation: 1 + seed,
            active_meta_checksum: seed as u32,
        }
        .encode();
        image[..64].copy_from_slice(&record);
        match open_image(image) {
            Err(MappedPageError::CorruptMetadata { .. }) => {}
            other => panic!("{context}: expected CorruptMetadata, got {other:?}"),
        }
    }
}

// ----- superblock ---------------------------------------------------------------------------

/// INV-8: page 0 without its magic, metadata intact: recovery takes the newest copy, rewrites the
/// superblock, and the next open goes by the superblock again. Nothing acknowledged is lost.
#[test]
fn inv8_wrong_superblock_magic_falls_back_to_the_newest_copy() {
    let (pager, expected) = populated();
    let generation = pager.generation();
    let mut image = image_of(&pager);
    image[0] ^= 0xFF;

    let recovered = open_image(image).unwrap();
    assert_eq!(
        recovered.recovery_decision(),
        Some(RecoveryDecision::NewestAfterCorruptSuperblock)
    );
    assert_eq!(allocated(&recovered), expected);
    assert_eq!(recovered.generation(), generation);
    // The repair is durable: the image a crash now leaves has a valid superblock.
    let repaired = recovered.storage().durable_image();
    assert_eq!(superblock(&repaired).active_generation, generation);

    let reopened = open_image(repaired).unwrap();
    assert_eq!(
        reopened.recovery_decision(),
        Some(RecoveryDecision::Superblock)
    );
    assert_eq!(allocated(&reopened), expected);
}

/// INV-8, on a file: the same fallback and repair through `Pager::open`, and the repaired file
/// keeps working.
#[test]
fn inv8_wrong_superblock_magic_falls_back_on_a_file() {
    let (pager, mut expected) = populated();
    let mut image = image_of(&pager);
    image[..8].copy_from_slice(b"NOTMAGIC");
    let (_dir, path) = write_file(&image);
    {
        let mut recovered = Pager::<P>::open(&path).unwrap();
        assert_eq!(
            recovered.recovery_decision(),
            Some(RecoveryDecision::NewestAfterCorruptSuperblock)
        );
        assert_eq!(allocated(&recovered), expected);
        expected.insert(recovered.alloc().unwrap().raw());
    }
    let reopened = Pager::<P>::open(&path).unwrap();
    assert_eq!(
        reopened.recovery_decision(),
        Some(RecoveryDecision::Superblock)
    );
    assert_eq!(allocated(&reopened), expected);
}

/// INV-8: a fresh file (only copy A, generation 1) with page 0 destroyed still opens.
#[test]
fn inv8_fresh_file_with_destroyed_superblock_opens_empty() {
    let pager = SimPager::create_in(SimStorage::new()).unwrap();
    let mut image = image_of(&pager);
    page_mut(&mut image, 0).fill(0xA5);
    let recovered = open_image(image).unwrap();
    assert_eq!(
        recovered.recovery_decision(),
        Some(RecoveryDecision::NewestAfterCorruptSuperblock)
    );
    assert_eq!(recovered.allocated_page_count(), 0);
}

/// INV-8: a superblock that fails its checksum, or is checksum-valid with an impossible field,
/// falls back to the newest copy like a missing one.
#[test]
fn inv8_invalid_superblock_fields_fall_back_to_the_newest_copy() {
    let (pager, expected) = populated();
    let good = image_of(&pager);
    type Edit = (&'static str, fn(&mut [u8]));
    let edits: [Edit; 5] = [
        ("bit flip in the generation", |sb| sb[24] ^= 4),
        ("selector 2", |sb| {
            sb[20..24].copy_from_slice(&2u32.to_le_bytes());
            resign(sb);
        }),
        ("generation 0", |sb| {
            sb[24..32].fill(0);
            resign(sb);
        }),
        ("page size 1000", |sb| {
            sb[16..20].copy_from_slice(&1000u32.to_le_bytes());
            resign(sb);
        }),
        ("reserved bytes", |sb| {
            sb[40] = 1;
            resign(sb);
        }),
    ];
    for (what, edit) in edits {
        let mut image = good.clone();
        edit(&mut image[..64]);
        let recovered = open_image(image).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(
            recovered.recovery_decision(),
            Some(RecoveryDecision::NewestAfterCorruptSuperblock),
            "{what}"
        );
        assert_eq!(allocated(&recovered), expected, "{what}");
    }
}

/// INV-9: no magic in the superblock or either metadata copy: `NotAMappedPagesFile`.
#[test]
fn inv9_no_magic_anywhere_is_not_a_mappedpages_file() {
    let (pager, _) = populated();
    let mut image = image_of(&pager);
    for page_index in [0, 1, 2] {
        page_mut(&mut image, page_index)[..8].copy_from_slice(b"garbage!");
    }
    expect_err!(
        open_image(image.clone()),
        MappedPageError::NotAMappedPagesFile
    );
    // Slot pages without magic too.
    for page_index in [3, 4] {
        page_mut(&mut image, page_index)[..8].fill(0);
    }
    expect_err!(
        open_image(image.clone()),
        MappedPageError::NotAMappedPagesFile
    );
    let (_dir, path) = write_file(&image);
    expect_err!(
        Pager::<P>::open(&path),
        MappedPageError::NotAMappedPagesFile
    );
    // Six pages of zeros, and a text file.
    expect_err!(
        open_image(vec![0; 6 * P]),
        MappedPageError::NotAMappedPagesFile
    );
    let text = "hello, world\n".repeat(1000).into_bytes();
    let (_dir, path) = write_file(&text);
    expect_err!(
        Pager::<P>::open(&path),
        MappedPageError::NotAMappedPagesFile
    );
}

/// INV-9: a file created with 4096-byte pages opened as 1024 and the reverse: `PageSizeMismatch`
/// with the right sizes, on both backends.
#[test]
fn inv9_page_size_mismatch_both_ways() {
    let big = Pager::<4096, SimStorage>::create_in(SimStorage::new()).unwrap();
    let big_image = big.storage().bytes().to_vec();
    expect_err!(
        Pager::<1024, SimStorage>::open_in(SimStorage::from_image(big_image.clone())),
        MappedPageError::PageSizeMismatch {
            found: 4096,
            expected: 1024
        }
    );
    let small = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    let small_image = small.storage().bytes().to_vec();
    expect_err!(
        Pager::<4096, SimStorage>::open_in(SimStorage::from_image(small_image)),
        MappedPageError::PageSizeMismatch {
            found: 1024,
            expected: 4096
        }
    );

    let dir = tempfile::tempdir().unwrap();
    let path_4k = dir.path().join("4k.bin");
    let path_1k = dir.path().join("1k.bin");
    drop(Pager::<4096>::create(&path_4k).unwrap());
    drop(Pager::<1024>::create(&path_1k).unwrap());
    expect_err!(
        Pager::<1024>::open(&path_4k),
        MappedPageError::PageSizeMismatch {
            found: 4096,
            expected: 1024
        }
    );
    expect_err!(
        Pager::<4096>::open(&path_1k),
        MappedPageError::PageSizeMismatch {
            found: 1024,
            expected: 4096
        }
    );
    expect_err!(
        Pager::<16384>::open(&path_1k),
        MappedPageError::PageSizeMismatch {
            found: 1024,
            expected: 16384
        }
    );
    // The files are untouched and open with the right size.
    assert_eq!(std::fs::read(&path_4k).unwrap().len(), 16 * 4096);
    Pager::<4096>::open(&path_4k).unwrap();
    Pager::<1024>::open(&path_1k).unwrap();
}

/// INV-9: with page 0 zeroed, the probe of other page sizes still reports `PageSizeMismatch`.
#[test]
fn inv9_page_size_mismatch_with_zeroed_superblock() {
    // 4096 opened as 1024.
    let big = Pager::<4096, SimStorage>::create_in(SimStorage::new()).unwrap();
    let mut image = big.storage().bytes().to_vec();
    image[..4096].fill(0);
    expect_err!(
        Pager::<1024, SimStorage>::open_in(SimStorage::from_image(image.clone())),
        MappedPageError::PageSizeMismatch {
            found: 4096,
            expected: 1024
        }
    );
    let (_dir, path) = write_file(&image);
    expect_err!(
        Pager::<1024>::open(&path),
        MappedPageError::PageSizeMismatch {
            found: 4096,
            expected: 1024
        }
    );

    // 1024 opened as 4096: the file must be at least six 4 KiB pages long to reach the probe.
    let mut small = SimPager::create_in(SimStorage::new()).unwrap();
    small.alloc_bulk(30).unwrap();
    let mut image = image_of(&small);
    assert!(image.len() >= 6 * 4096);
    image[..P].fill(0);
    expect_err!(
        Pager::<4096, SimStorage>::open_in(SimStorage::from_image(image.clone())),
        MappedPageError::PageSizeMismatch {
            found: 1024,
            expected: 4096
        }
    );
    let (_dir, path) = write_file(&image);
    expect_err!(
        Pager::<4096>::open(&path),
        MappedPageError::PageSizeMismatch {
            found: 1024,
            expected: 4096
        }
    );

    // A fresh 1 KiB file (16 KiB) is shorter than six 4 KiB pages: SPEC.md §4.2 checks the
    // length before the table, so it is `FileTooSmall` for a 4096 pager once page 0 is gone.
    let fresh = SimPager::create_in(SimStorage::new()).unwrap();
    let mut image = image_of(&fresh);
    image[..P].fill(0);
    expect_err!(
        Pager::<4096, SimStorage>::open_in(SimStorage::from_image(image)),
        MappedPageError::FileTooSmall {
            len_bytes: 16384,
            min_len_bytes: 24576
        }
    );
}

/// INV-9: an unknown format version, checksum-valid, is `UnsupportedVersion`, on both backends.
#[test]
fn inv9_unsupported_version() {
    let (pager, _) = populated();
    let good = image_of(&pager);
    for version in [0, FORMAT_VERSION + 1, 7, u32::MAX] {
        let mut image = good.clone();
        image[12..16].copy_from_slice(&version.to_le_bytes());
        resign(&mut image[..64]);
        expect_err!(
            open_image(image.clone()),
            MappedPageError::UnsupportedVersion { found } => assert_eq!(found, version)
        );
        let (_dir, path) = write_file(&image);
        expect_err!(
            Pager::<P>::open(&path),
            MappedPageError::UnsupportedVersion { found } => assert_eq!(found, version)
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            image,
            "a refused file is left alone"
        );
    }
}

// ----- metadata -------------------------------------------------------------------------------

/// INV-8: one flipped bit anywhere in the active metadata copy of a file with allocations is
/// `CorruptMetadata`: the other copy is one generation older, and taking it would roll back an
/// acknowledged commit.
#[test]
fn inv8_bit_flip_in_active_copy_is_corrupt_metadata() {
    let (pager, _) = populated();
    let good = image_of(&pager);
    let active = superblock(&good).active_meta;
    assert_eq!(
        meta(&good, active.other()).generation + 1,
        meta(&good, active).generation
    );
    // Magic, checksum, header fields, a log entry, the zero tail.
    for byte in [0usize, 9, 13, 17, 25, 33, 41, 49, 64, 70, 78, 500, P - 1] {
        let mut image = good.clone();
        flip_bit(&mut image, active.page(), byte, (byte % 8) as u8);
        expect_err!(open_image(image), MappedPageError::CorruptMetadata { .. });
    }
    let mut image = good.clone();
    flip_bit(&mut image, active.page(), 300, 3);
    let (_dir, path) = write_file(&image);
    expect_err!(
        Pager::<P>::open(&path),
        MappedPageError::CorruptMetadata { .. }
    );
    // A zeroed sector of the active copy, too.
    let mut image = good;
    page_mut(&mut image, active.page())[..512].fill(0);
    expect_err!(open_image(image), MappedPageError::CorruptMetadata { .. });
}

/// INV-8: corruption of the inactive metadata copy costs nothing: the file opens by the
/// superblock with every allocation, and goes on working.
#[test]
fn inv8_bit_flip_in_inactive_copy_opens_with_everything() {
    let (pager, expected) = populated();
    let good = image_of(&pager);
    let inactive = superblock(&good).active_meta.other();
    for byte in [0usize, 9, 20, 64, 200, P - 1] {
        let mut image = good.clone();
        flip_bit(&mut image, inactive.page(), byte, 1);
        let mut recovered = open_image(image).unwrap();
        assert_eq!(
            recovered.recovery_decision(),
            Some(RecoveryDecision::Superblock)
        );
        assert_eq!(allocated(&recovered), expected);
        // The next commit overwrites the damaged copy.
        let id = recovered.alloc().unwrap();
        let reopened = open_image(image_of(&recovered)).unwrap();
        assert!(reopened.is_allocated(id));
        assert_eq!(reopened.allocated_page_count(), expected.len() as u64 + 1);
    }
    let mut image = good;
    page_mut(&mut image, inactive.page()).fill(0xFF);
    let (_dir, path) = write_file(&image);
    let recovered = Pager::<P>::open(&path).unwrap();
    assert_eq!(allocated(&recovered), expected);
}

/// INV-8: the active copy re-signed with page count 0 (checksum-valid, not well-formed). It no
/// longer loads, and the other copy is older than the superblock's generation:
/// `CorruptMetadata`. The same edit on the inactive copy is harmless.
#[test]
fn inv8_active_copy_with_page_count_zero_is_corrupt_metadata() {
    let (pager, expected) = populated();
    let good = image_of(&pager);
    let active = superblock(&good).active_meta;

    for superblock_too in [false, true] {
        let mut image = good.clone();
        edit_meta(&mut image, active, |m| m.page_count = 0);
        assert!(MetaPage::decode(page(&image, active.page()), geometry()).is_err());
        if superblock_too {
            // Name the edited copy's checksum, so only the page count is wrong.
            let checksum = MetaPage::checksum_field(page(&image, active.page())).unwrap();
            let mut sb = superblock(&image);
            sb.active_meta_checksum = checksum;
            image[..64].copy_from_slice(&sb.encode());
        }
        expect_err!(open_image(image), MappedPageError::CorruptMetadata { .. });
    }

    let mut image = good;
    edit_meta(&mut image, active.other(), |m| m.page_count = 0);
    let recovered = open_image(image).unwrap();
    assert_eq!(
        recovered.recovery_decision(),
        Some(RecoveryDecision::Superblock)
    );
    assert_eq!(allocated(&recovered), expected);
}

/// INV-8 (format 2, where a re-signed slot is still current; in format 3 its table entry pins
/// the old checksum: `inv8_format3_slot_not_the_pinned_one_is_corrupt_metadata`): the current
/// bitmap slot of group 0, re-signed with the reserved bits (pages 0-4) cleared, is rejected: no copy loads, `CorruptMetadata`. Never are pages 0-4 handed out.
#[test]
fn inv8_group0_slot_with_reserved_bits_cleared_is_corrupt_metadata() {
    let g = geometry();
    let (pager, _) = populated_in_format(2);
    let mut image = image_of(&pager);
    let slot_page = current_slot_page(&image, 0);
    let (header, bits) = decode_group_slot(page(&image, slot_page), g, 0).unwrap();
    let mut words: Vec<u64> = (0..(G / 64) as usize)
        .map(|i| slot_bitmap_word(bits, i))
        .collect();
    assert_eq!(words[0] & 0x1F, 0x1F, "pages 0-4 are marked in use");
    for cleared in [0x1Fu64, 0x01, 0x08, 0x10] {
        words[0] &= !cleared;
        let mut edited = image.clone();
        encode_group_slot(
            g,
            GroupSlotHeader {
                generation: header.generation,
                group: header.group,
            },
            &words,
            page_mut(&mut edited, slot_page),
        );
        assert!(decode_group_slot(page(&edited, slot_page), g, 0).is_ok());
        expect_err!(
            open_image(edited.clone()),
            MappedPageError::CorruptMetadata { detail } => {
                assert!(detail.contains("reserved"), "{detail}");
            }
        );
        if cleared == 0x1F {
            let (_dir, path) = write_file(&edited);
            expect_err!(
                Pager::<P>::open(&path),
                MappedPageError::CorruptMetadata { .. }
            );
        }
        words[0] |= 0x1F;
    }
    // Make sure the fixture is right: re-encoding the untouched words opens fine.
    encode_group_slot(g, header, &words, page_mut(&mut image, slot_page));
    assert!(open_image(image).is_ok());
}

/// INV-8 (§4.1 step 3, format 2): a checksum-valid current slot that marks a page at or past the end of the
/// file, in the last word holding pages of the file or in a word wholly past it, is rejected for
/// that reason (before its slot digest is even looked at).
#[test]
fn inv8_slot_marking_pages_past_the_end_is_corrupt_metadata() {
    let g = geometry();
    let (pager, _) = populated_in_format(2);
    let page_count = pager.page_count();
    let image = image_of(&pager);
    let slot_page = current_slot_page(&image, 0);
    let (header, bits) = decode_group_slot(page(&image, slot_page), g, 0).unwrap();
    let words: Vec<u64> = (0..(G / 64) as usize)
        .map(|i| slot_bitmap_word(bits, i))
        .collect();
    assert!(
        page_count % 64 != 0 && page_count < G - 64,
        "{page_count} pages"
    );
    for past_end in [page_count, page_count + 64, G - 1] {
        let mut edited_words = words.clone();
        edited_words[(past_end / 64) as usize] |= 1 << (past_end % 64);
        let mut edited = image.clone();
        encode_group_slot(g, header, &edited_words, page_mut(&mut edited, slot_page));
        expect_err!(
            open_image(edited),
            MappedPageError::CorruptMetadata { detail } => {
                assert!(
                    detail.contains("marks pages past the end of the file"),
                    "page {past_end}: {detail}"
                );
            }
        );
    }
}

/// INV-8: a checksum-valid active copy claiming more pages than the file holds is
/// `CorruptMetadata`: either because it no longer matches the checksum the superblock recorded,
/// or (with the superblock re-signed to match it) because the file is too short for it.
#[test]
fn inv8_copy_claiming_more_pages_than_the_file_is_corrupt_metadata() {
    let (pager, _) = populated();
    let good = image_of(&pager);
    let active = superblock(&good).active_meta;
    let file_pages = (good.len() / P) as u64;
    let claimed = file_pages + 100;
    assert!(geometry().is_valid_page_count(claimed));

    let mut image = good.clone();
    edit_meta(&mut image, active, |m| m.page_count = claimed);
    expect_err!(
        open_image(image.clone()),
        MappedPageError::CorruptMetadata { detail } => {
            assert!(detail.contains("does not match the superblock"), "{detail}");
        }
    );
    point_superblock_at(&mut image, active);
    expect_err!(
        open_image(image.clone()),
        MappedPageError::CorruptMetadata { detail } => {
            assert!(detail.contains(&format!("claims {claimed} pages")), "{detail}");
        }
    );
    let (_dir, path) = write_file(&image);
    expect_err!(
        Pager::<P>::open(&path),
        MappedPageError::CorruptMetadata { .. }
    );
}

/// INV-8: a file truncated below the page count of its metadata (both copies claim more than is
/// left) is `CorruptMetadata`, on both backends; nothing is written to it.
#[test]
fn inv8_truncated_file_is_corrupt_metadata() {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    pager.alloc_bulk(100).unwrap();
    pager.alloc().unwrap();
    let good = image_of(&pager);
    let page_count = pager.page_count();
    assert!(page_count > 16);
    for pages in [6u64, 7, 16, page_count - 1] {
        let image = good[..pages as usize * P].to_vec();
        expect_err!(
            open_image(image),
            MappedPageError::CorruptMetadata { detail } => {
                assert!(detail.contains(&format!("claims {page_count} pages")), "{detail}");
            }
        );
    }
    // A partial last page is still too short.
    let image = good[..(page_count as usize * P) - 1].to_vec();
    expect_err!(open_image(image), MappedPageError::CorruptMetadata { .. });

    let (_dir, path) = write_file(&good);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(10 * P as u64).unwrap();
    drop(file);
    expect_err!(
        Pager::<P>::open(&path),
        MappedPageError::CorruptMetadata { .. }
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 10 * P as u64);
}

/// INV-8: the one allowed fallback. A commit whose superblock write never arrived leaves the new
/// copy (generation g + 1) complete; if the copy the superblock names is then corrupt, the new one
/// is taken (it contains every acknowledged change), and the superblock is repaired.
#[test]
fn inv8_corrupt_selected_copy_falls_back_only_to_the_next_generation() {
    let (pager, expected) = populated();
    let victim = *expected.iter().next().unwrap();
    let syncs = pager.storage().sync_count();
    // The free's commit: barrier 0 makes the new copy durable, barrier 1 the superblock.
    let mut storage = pager.into_storage();
    storage.fail_sync_at(syncs + 1, FailedSyncKeeps::Nothing);
    let mut pager = SimPager::open_in(storage).unwrap();
    assert!(matches!(
        pager.free(PageId::from_raw(victim)),
        Err(MappedPageError::Io { .. })
    ));
    let image = pager.storage().durable_image();
    let named = superblock(&image);
    let other = named.active_meta.other();
    assert_eq!(meta(&image, other).generation, named.active_generation + 1);

    // Untouched, the superblock decides: the free never happened.
    let recovered = open_image(image.clone()).unwrap();
    assert_eq!(
        recovered.recovery_decision(),
        Some(RecoveryDecision::Superblock)
    );
    assert_eq!(allocated(&recovered), expected);

    // Named copy corrupt: the next generation (the free, complete but unacknowledged) is taken.
    let mut corrupt = image.clone();
    flip_bit(&mut corrupt, named.active_meta.page(), 100, 0);
    let recovered = open_image(corrupt).unwrap();
    assert_eq!(
        recovered.recovery_decision(),
        Some(RecoveryDecision::NextGenerationAfterCorruptSelected)
    );
    let mut after_free = expected.clone();
    after_free.remove(&victim);
    assert_eq!(allocated(&recovered), after_free);
    let reopened = open_image(recovered.storage().durable_image()).unwrap();
    assert_eq!(
        reopened.recovery_decision(),
        Some(RecoveryDecision::Superblock)
    );
    assert_eq!(allocated(&reopened), after_free);

    // The other copy two generations ahead is not the commit in flight: refused.
    let mut corrupt = image;
    edit_meta(&mut corrupt, other, |m| m.generation += 1);
    flip_bit(&mut corrupt, named.active_meta.page(), 100, 0);
    expect_err!(open_image(corrupt), MappedPageError::CorruptMetadata { .. });
}

// ----- bitmap slots -------------------------------------------------------------------------

/// A pager whose group 0 has just been folded: 200 pages allocated in one commit, then every
/// other one freed, one commit each, until a commit writes group 0's slot. Returns the pager right
/// after that commit and the ids still allocated.
fn just_folded() -> (SimPager, Vec<PageId<P>>) {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    let mut ids = pager.alloc_bulk(200).unwrap();
    let mut index = 0;
    loop {
        let id = ids.remove(index);
        pager.free(id).unwrap();
        index += 1;
        let image = pager.storage().bytes();
        if slot_generations(image, 0).contains(&Some(pager.generation())) {
            break;
        }
        assert!(index < 100, "the log never overflowed");
    }
    assert_eq!(
        slot_generations(pager.storage().bytes(), 0),
        [Some(1), Some(pager.generation())],
        "the first fold of group 0 writes slot 1 (page 4)"
    );
    (pager, ids)
}

fn expect_typed_open_error(image: Vec<u8>, expected: &BTreeSet<u64>, context: &str) {
    match open_image(image) {
        Err(MappedPageError::CorruptMetadata { .. }) => {}
        Err(other) => panic!("{context}: expected CorruptMetadata, got {other:?}"),
        Ok(pager) => panic!(
            "{context}: INV-8: opened with {} pages allocated ({:?}) instead of failing; \
             acknowledged: {} pages",
            pager.allocated_page_count(),
            pager.recovery_decision(),
            expected.len()
        ),
    }
}

/// INV-8: right after a fold, the folding commit's own slot is corrupt: the copy no longer loads
/// (its folded slot is missing) and the other copy is older: `CorruptMetadata`.
#[test]
fn inv8_corrupt_current_slot_right_after_a_fold_is_an_error() {
    let (pager, _) = just_folded();
    let expected = allocated(&pager);
    let good = image_of(&pager);
    let current = current_slot_page(&good, 0);
    assert_eq!(current, 4);
    for (what, byte) in [("bitmap", 100usize), ("header", 20), ("checksum", 9)] {
        let mut image = good.clone();
        flip_bit(&mut image, current, byte, 2);
        expect_typed_open_error(image, &expected, what);
    }
    let mut image = good;
    page_mut(&mut image, current)[..512].fill(0);
    let (_dir, path) = write_file(&image);
    expect_err!(
        Pager::<P>::open(&path),
        MappedPageError::CorruptMetadata { .. }
    );
}

/// INV-8: a fold, then more fragmenting frees (log entries that free pages in use); the current
/// slot of group 0 is corrupt: replaying the log on the older slot fails, `CorruptMetadata`.
#[test]
fn inv8_corrupt_current_slot_after_a_fold_and_frees_is_an_error() {
    let (mut pager, ids) = just_folded();
    for id in ids.iter().step_by(2).take(5) {
        pager.free(*id).unwrap();
    }
    let expected = allocated(&pager);
    let mut image = image_of(&pager);
    assert_eq!(slot_generations(&image, 0)[0], Some(1));
    flip_bit(&mut image, 4, 100, 2);
    expect_typed_open_error(image, &expected, "frees after the fold");
}

/// INV-8: a fold, then one single-page allocation; the current slot of group 0 is corrupt.
/// Recovery must not fall back to the older slot (generation 1, from create): that would forget
/// every allocation the fold recorded and hand those pages out again.
#[test]
fn inv8_corrupt_current_slot_after_a_fold_and_an_alloc_is_an_error() {
    let (mut pager, _) = just_folded();
    pager.alloc().unwrap();
    let expected = allocated(&pager);
    let mut image = image_of(&pager);
    flip_bit(&mut image, 4, 100, 2);
    expect_typed_open_error(image, &expected, "alloc after the fold");
}

/// INV-8: corruption of the older (not current) slot of a group costs nothing.
#[test]
fn inv8_corrupt_older_slot_opens_with_everything() {
    let (mut pager, _) = just_folded();
    pager.alloc().unwrap();
    let expected = allocated(&pager);
    let good = image_of(&pager);
    let older = 3;
    assert_ne!(current_slot_page(&good, 0), older);
    for byte in [0usize, 9, 20, 100, P - 1] {
        let mut image = good.clone();
        flip_bit(&mut image, older, byte, 5);
        let mut recovered = open_image(image).unwrap();
        assert_eq!(
            recovered.recovery_decision(),
            Some(RecoveryDecision::Superblock)
        );
        assert_eq!(allocated(&recovered), expected);
        let id = recovered.alloc().unwrap();
        assert!(!expected.contains(&id.raw()));
    }
}

// ----- random single-bit corruption -----------------------------------------------------------

/// INV-8 / INV-9: a single flipped bit anywhere in pages 0-2 of a file with history gives the
/// acknowledged state or a typed error, never a panic or another state (200 seeds).
#[test]
fn inv8_single_bit_flips_in_superblock_and_metadata() {
    let (pager, expected) = populated();
    let good = image_of(&pager);
    let mut state = 42u64;
    for seed in 0..200 {
        let random = next_random(&mut state);
        let page_index = random % 3;
        // Half the flips land in the first 128 bytes, where the headers are.
        let byte = if random & (1 << 20) == 0 {
            (random >> 8) as usize % 128
        } else {
            (random >> 8) as usize % P
        };
        let mut image = good.clone();
        flip_bit(&mut image, page_index, byte, (random >> 40) as u8 % 8);
        match open_image(image) {
            Ok(recovered) => assert_eq!(
                allocated(&recovered),
                expected,
                "seed {seed}: page {page_index} byte {byte}"
            ),
            Err(MappedPageError::CorruptMetadata { .. }) => {}
            Err(other) => panic!("seed {seed}: page {page_index} byte {byte}: {other:?}"),
        }
    }
}

/// A file with folds in both of its groups: 9000 pages allocated in one commit, then fragmenting
/// frees in group 0 and in group 1, one commit each, until both groups have been folded.
fn folded_in_two_groups() -> SimPager {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    let ids = pager.alloc_bulk(9000).unwrap();
    for id in ids
        .iter()
        .step_by(2)
        .take(70)
        .chain(ids.iter().skip(8001).step_by(2).take(70))
    {
        pager.free(*id).unwrap();
    }
    let image = pager.storage().bytes();
    assert!(
        slot_generations(image, 1).iter().all(Option::is_some),
        "both slots of group 1 written"
    );
    pager
}

/// Opens `image` with one random 512-byte sector of one internal page (superblock, metadata,
/// either slot of groups 0 and 1) overwritten by random bytes; returns the page and the outcome.
fn open_with_random_sector(good: &[u8], random: u64) -> (u64, Result<SimPager, MappedPageError>) {
    let internal = [0u64, 1, 2, 3, 4, G, G + 1];
    let page_index = internal[(random % internal.len() as u64) as usize];
    let sector = (random >> 8) as usize % (P / 512);
    let mut image = good.to_vec();
    let start = page_index as usize * P + sector * 512;
    image[start..start + 512].copy_from_slice(&random_bytes(random, 512));
    (page_index, open_image(image))
}

/// INV-9: a random sector over any internal page of a file with folds in both groups gives a
/// value or a typed error, never a panic; whatever opens is well-formed and can commit (200
/// seeds).
#[test]
fn inv9_random_sector_over_internal_pages_never_panics() {
    let good = image_of(&folded_in_two_groups());
    let mut state = 7u64;
    for seed in 0..200 {
        let (page_index, result) = open_with_random_sector(&good, next_random(&mut state));
        match result {
            Ok(mut recovered) => {
                let listed = allocated(&recovered);
                assert!(
                    listed.iter().all(|&raw| raw > 4 && raw % G >= 2),
                    "seed {seed}: INV-5: internal page listed"
                );
                assert_eq!(listed.len() as u64, recovered.allocated_page_count());
                let id = recovered.alloc().unwrap();
                assert!(!listed.contains(&id.raw()), "seed {seed}");
            }
            Err(
                MappedPageError::CorruptMetadata { .. } | MappedPageError::CorruptSuperblock { .. },
            ) => {}
            Err(other) => panic!("seed {seed}: page {page_index}: {other:?}"),
        }
    }
}

/// INV-8: the same corruption either fails with a typed error or opens to exactly the
/// acknowledged state. With the current slot of group 1 (page G + 1) damaged, recovery takes the
/// older slot (written by the bulk allocation) and replays the log's later frees on it: the frees
/// folded into the damaged slot are silently undone.
#[test]
fn inv8_random_sector_over_internal_pages_loses_nothing() {
    let pager = folded_in_two_groups();
    let expected = allocated(&pager);
    let good = image_of(&pager);
    let mut state = 7u64;
    let mut wrong = Vec::new();
    for seed in 0..200 {
        let (page_index, result) = open_with_random_sector(&good, next_random(&mut state));
        if let Ok(recovered) = result
            && allocated(&recovered) != expected
        {
            wrong.push((seed, page_index, recovered.allocated_page_count()));
        }
    }
    assert!(
        wrong.is_empty(),
        "INV-8: {} of 200 images opened to a state that is not the acknowledged one \
         ({} pages); (seed, damaged page, pages allocated): {wrong:?}",
        wrong.len(),
        expected.len()
    );
}

/// INV-9 / INV-5: a file longer than its page count (a partial page, or whole pages left by a
/// growth whose commit never completed) opens, and the next growth reuses the tail.
#[test]
fn inv9_file_longer_than_its_page_count_opens() {
    let (pager, expected) = populated();
    let page_count = pager.page_count();
    let good = image_of(&pager);
    for extra in [1usize, 100, P - 1, P, 5 * P + 3] {
        let mut image = good.clone();
        image.extend(random_bytes(extra as u64, extra));
        let mut recovered = open_image(image).unwrap();
        assert_eq!(recovered.page_count(), page_count);
        assert_eq!(allocated(&recovered), expected);
        let free = recovered.free_page_count() as usize;
        let ids = recovered.alloc_bulk(free + 3).unwrap();
        assert!(recovered.page_count() > page_count);
        assert!(recovered.storage().len_bytes() >= recovered.page_count() * P as u64);
        let reopened = open_image(image_of(&recovered)).unwrap();
        assert!(ids.iter().all(|id| reopened.is_allocated(*id)));
        assert_eq!(
            reopened.allocated_page_count(),
            expected.len() as u64 + ids.len() as u64
        );
    }
}

// ----- bad ids --------------------------------------------------------------------------------

/// INV-9: every kind of bad id gives its typed error through get, get_mut, free, sync_page and
/// free_bulk, and changes nothing.
#[test]
fn inv9_bad_ids_give_typed_errors() {
    let mut pager = SimPager::create_in(SimStorage::new()).unwrap();
    // Past the first group, so group 1's slot pages (G, G + 1) exist.
    let ids = pager.alloc_bulk(8000).unwrap();
    assert!(pager.page_count() > G + 2);
    let freed = ids[10];
    pager.free(freed).unwrap();
    let page_count = pager.page_count();
    let generation = pager.generation();
    let before = allocated(&pager);

    for raw in [0u64, 1, 2, 3, 4, G, G + 1] {
        let id = PageId::<P>::from_raw(raw);
        assert!(!pager.is_allocated(id));
        expect_err!(id.get(&pager), MappedPageError::ReservedPage { page } => assert_eq!(page, raw));
        expect_err!(id.get_mut(&mut pager), MappedPageError::ReservedPage { page } => assert_eq!(page, raw));
        expect_err!(pager.free(id), MappedPageError::ReservedPage { page } => assert_eq!(page, raw));
        expect_err!(pager.sync_page(id), MappedPageError::ReservedPage { page } => assert_eq!(page, raw));
    }
    for raw in [page_count, page_count + 1, 1 << 40, u64::MAX - 1, u64::MAX] {
        let id = PageId::<P>::from_raw(raw);
        assert!(!pager.is_allocated(id));
        let check = |result: Result<(), MappedPageError>| {
            expect_err!(result, MappedPageError::OutOfBounds { page, page_count: count } => {
                assert_eq!((page, count), (raw, page_count));
            });
        };
        check(id.get(&pager).map(|_| ()));
        check(id.get_mut(&mut pager).map(|_| ()));
        check(pager.free(id));
        check(pager.sync_page(id));
    }
    assert!(!pager.is_allocated(freed));
    let raw = freed.raw();
    expect_err!(freed.get(&pager), MappedPageError::NotAllocated { page } => assert_eq!(page, raw));
    expect_err!(freed.get_mut(&mut pager), MappedPageError::NotAllocated { page } => assert_eq!(page, raw));
    expect_err!(pager.sync_page(freed), MappedPageError::NotAllocated { page } => assert_eq!(page, raw));
    expect_err!(pager.free(freed), MappedPageError::DoubleFree { page } => assert_eq!(page, raw));

    // Bulk: one bad id anywhere fails the whole call.
    let good = ids[20];
    for bad in [0u64, 4, G + 1, page_count, u64::MAX, raw] {
        let result = pager.free_bulk(vec![good, PageId::from_raw(bad), ids[21]]);
        assert!(
            matches!(
                result,
                Err(MappedPageError::ReservedPage { .. }
                    | MappedPageError::OutOfBounds { .. }
                    | MappedPageError::DoubleFree { .. })
            ),
            "free_bulk with {bad}: {result:?}"
        );
    }
    expect_err!(
        pager.free_bulk(vec![good, ids[21], good]),
        MappedPageError::DuplicateId { page } => assert_eq!(page, good.raw())
    );

    assert_eq!(
        pager.generation(),
        generation,
        "no error committed anything"
    );
    assert_eq!(allocated(&pager), before);
    assert!(!pager.is_poisoned());
    let reopened = open_image(image_of(&pager)).unwrap();
    assert_eq!(allocated(&reopened), before);
}

/// INV-9: the same on a file-backed pager.
#[test]
fn inv9_bad_ids_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut pager = Pager::<P>::create(dir.path().join("ids.bin")).unwrap();
    let id = pager.alloc().unwrap();
    for raw in 0..=4u64 {
        expect_err!(
            PageId::<P>::from_raw(raw).get(&pager),
            MappedPageError::ReservedPage { .. }
        );
        expect_err!(
            pager.free(PageId::from_raw(raw)),
            MappedPageError::ReservedPage { .. }
        );
    }
    expect_err!(
        PageId::<P>::from_raw(u64::MAX).get_mut(&mut pager),
        MappedPageError::OutOfBounds {
            page: u64::MAX,
            page_count: 16
        }
    );
    pager.free(id).unwrap();
    expect_err!(id.get(&pager), MappedPageError::NotAllocated { .. });
    expect_err!(pager.free(id), MappedPageError::DoubleFree { .. });
    assert_eq!(pager.allocated_page_count(), 0);
}

// ----- decision-table rows found by mutation testing ----------------------------------------

/// §4.2: the superblock magic is gone and both copies are damaged (checksums fail, magics
/// present): that is a corrupt file, not "not a mappedpages file".
#[test]
fn inv8_no_superblock_and_both_copies_damaged_is_corrupt_superblock() {
    let (pager, _) = populated();
    let mut image = image_of(&pager);
    image[..P].fill(0);
    flip_bit(&mut image, 1, 500, 0);
    flip_bit(&mut image, 2, 500, 0);
    expect_err!(open_image(image), MappedPageError::CorruptSuperblock { .. });
}

/// §4.2: a superblock with a bad checksum (magic intact) over two copies without magic is a
/// corrupt file too.
#[test]
fn inv8_damaged_superblock_over_blank_copies_is_corrupt_superblock() {
    let (pager, _) = populated();
    let mut image = image_of(&pager);
    flip_bit(&mut image, 0, 40, 3);
    page_mut(&mut image, 1)[..8].fill(0);
    page_mut(&mut image, 2)[..8].fill(0);
    expect_err!(open_image(image), MappedPageError::CorruptSuperblock { .. });
}

/// §4.2 last rows: a file whose superblock is gone and whose copies are well-formed but do not
/// load is corrupt; only when every copy has generation 1 (a create that never finished) is it
/// "not a mappedpages file". Here the copies have generations above 1.
#[test]
fn inv8_no_superblock_and_copies_that_do_not_load_is_corrupt_metadata() {
    let (pager, _) = populated();
    let mut image = image_of(&pager);
    image[..P].fill(0);
    // Destroy both bitmap slots of group 0: no copy loads.
    page_mut(&mut image, 3)[..12].fill(0);
    page_mut(&mut image, 4)[..12].fill(0);
    assert!(meta(&image, MetaSlot::A).generation > 1);
    expect_err!(open_image(image), MappedPageError::CorruptMetadata { .. });
}

/// Same, with a superblock that is present but damaged (not a missing magic): even copies of
/// generation 1 make it a corrupt file, since a superblock was once written.
#[test]
fn inv8_damaged_superblock_and_first_generation_copy_that_does_not_load_is_corrupt() {
    let pager = SimPager::create_in(SimStorage::new()).unwrap();
    let mut image = image_of(&pager);
    assert_eq!(meta(&image, MetaSlot::A).generation, 1);
    flip_bit(&mut image, 0, 40, 3);
    page_mut(&mut image, 3)[..12].fill(0);
    page_mut(&mut image, 4)[..12].fill(0);
    expect_err!(open_image(image), MappedPageError::CorruptMetadata { .. });
}

/// §4.1 step 2 (format 2): two valid slots of one group with the same generation are
/// ambiguous, even when identical.
#[test]
fn inv8_two_slots_with_one_generation_are_rejected() {
    let (pager, _) = populated_in_format(2);
    let mut image = image_of(&pager);
    let current = current_slot_page(&image, 0);
    let other = if current == 3 { 4 } else { 3 };
    let copy = page(&image, current).to_vec();
    page_mut(&mut image, other).copy_from_slice(&copy);
    expect_err!(open_image(image), MappedPageError::CorruptMetadata { detail } => {
        assert!(detail.contains("claim generation"), "{detail}");
    });
}

/// INV-8, format 3: the table entry pins its group's current slot by generation and checksum, so
/// a slot re-signed with other bits (or damaged) is rejected as not the pinned one, and a valid
/// copy of it in the other slot, same generation, is never read: the file opens as it was.
#[test]
fn inv8_format3_slot_not_the_pinned_one_is_corrupt_metadata() {
    let g = geometry();
    let (pager, expected) = populated();
    let image = image_of(&pager);
    let slot_page = current_slot_page(&image, 0);
    let (header, bits) = decode_group_slot(page(&image, slot_page), g, 0).unwrap();
    let mut words: Vec<u64> = (0..(G / 64) as usize)
        .map(|i| slot_bitmap_word(bits, i))
        .collect();
    words[1] ^= 1 << 5;
    let mut edited = image.clone();
    encode_group_slot(g, header, &words, page_mut(&mut edited, slot_page));
    expect_err!(open_image(edited), MappedPageError::CorruptMetadata { detail } => {
        assert!(detail.contains("group table names for group 0"), "{detail}");
    });
    let other = if slot_page == 3 { 4 } else { 3 };
    let mut twin = image.clone();
    let current = page(&image, slot_page).to_vec();
    page_mut(&mut twin, other).copy_from_slice(&current);
    assert_eq!(allocated(&open_image(twin).unwrap()), expected);
}
