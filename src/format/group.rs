//! A bitmap group slot page (SPEC.md §2.4).

use super::Geometry;
use super::header::{
    DecodeError, PageKind, Reason, decode_header, encode_header, read_u64, seal, write_u64,
};

/// Magic at the start of every bitmap group slot page.
pub const GROUP_MAGIC: [u8; 8] = *b"MAPPGBG\x01";
/// Bytes of the header of a bitmap group slot page, before the bitmap.
pub const GROUP_HEADER_BYTES: usize = 32;

const GROUP_AT: usize = 24;

/// Header of a bitmap group slot page; the bitmap follows it.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `MAPPGBG\x01` |
/// | 8 | 4 | CRC-32 of bytes 12..PAGE_SIZE |
/// | 12 | 4 | page size in bytes |
/// | 16 | 8 | generation of the commit that wrote it |
/// | 24 | 8 | group index |
/// | 32 | .. | bitmap: bit `i` (byte `i / 8`, bit `i % 8`, LSB first) is page `k * G + i`; 1 = in use |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupSlotHeader {
    /// Generation of the commit that wrote this slot.
    pub generation: u64,
    /// The group this slot describes.
    pub group: u64,
}

/// Encodes a group slot page into `out` (one page). `bitmap_words` holds exactly the group's
/// `pages_per_group / 64` words.
pub fn encode_group_slot(
    geometry: Geometry,
    header: GroupSlotHeader,
    bitmap_words: &[u64],
    out: &mut [u8],
) -> u32 {
    assert_eq!(
        out.len() as u64,
        geometry.page_size(),
        "slot page buffer size"
    );
    assert_eq!(
        bitmap_words.len() as u64,
        geometry.pages_per_group() / 64,
        "group bitmap word count"
    );
    encode_header(out, &GROUP_MAGIC, geometry, header.generation);
    write_u64(out, GROUP_AT, header.group);
    for (index, word) in bitmap_words.iter().enumerate() {
        write_u64(out, GROUP_HEADER_BYTES + index * 8, *word);
    }
    seal(out)
}

/// Decodes a group slot page that should describe `expected_group`. On success returns the
/// header and the bitmap bytes.
pub fn decode_group_slot(
    page: &[u8],
    geometry: Geometry,
    expected_group: u64,
) -> Result<(GroupSlotHeader, &[u8]), DecodeError> {
    let (page, generation) =
        decode_header(page, PageKind::GroupSlot, &GROUP_MAGIC, geometry, true)?;
    let group = read_u64(page, GROUP_AT);
    if group != expected_group {
        return Err(DecodeError::new(
            PageKind::GroupSlot,
            Reason::Insane("group index does not match its position"),
        ));
    }
    Ok((
        GroupSlotHeader { generation, group },
        &page[GROUP_HEADER_BYTES..],
    ))
}

/// The checksum field (bytes 8..12) of a slot page (meaningful only if [`decode_group_slot`]
/// accepts it).
pub fn slot_checksum_field(page: &[u8]) -> Option<u32> {
    super::header::checksum_field(page)
}

/// Reads bitmap word `index` from the bitmap bytes of a decoded slot.
pub fn slot_bitmap_word(bitmap: &[u8], index: usize) -> u64 {
    read_u64(bitmap, index * 8)
}

/// A slot's *free count* (format 3's table entry, SPEC.md §2.4.1): the clear bits of its bitmap,
/// `bitmap_words` being the group's `pages_per_group / 64` words (pages past the file count too).
pub fn slot_clear_bits(geometry: Geometry, bitmap_words: impl IntoIterator<Item = u64>) -> u64 {
    let ones: u64 = bitmap_words
        .into_iter()
        .map(|word| u64::from(word.count_ones()))
        .sum();
    geometry.pages_per_group() - ones
}
