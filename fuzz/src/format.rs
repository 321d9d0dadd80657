//! The `format` target: every decoder of `mappedpages::format` on arbitrary bytes either rejects
//! them or round-trips: decode → encode reproduces the accepted bytes exactly (the format has
//! no slack: reserved bytes must be zero), and the encoding decodes to an equal value.
//!
//! Input layout (`FormatInput::from_bytes` / `to_bytes`):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | bits 0-1 and 5: decoder (superblock, metadata, group slot, directory slot; with bit 5: group table page, table layout, and again group table page and table layout); bits 2-3: page size `1024 << n`; bit 4: *repair* (write the decoder's magic and a correct CRC before decoding, so the checks behind the CRC are reached) |
//! | 1..9 | expected group / block / table page index (u64 LE); for the table layout, a page number |
//! | 9..17 | page count for the directory decoder (u64 LE); for the table layout, a table page index |
//! | 17.. | the page |

use mappedpages::format::{
    DIRECTORY_MAGIC, GROUP_HEADER_BYTES, GROUP_MAGIC, Geometry, META_MAGIC, MetaPage,
    SUPERBLOCK_MAGIC, SUPERBLOCK_RECORD_BYTES, Superblock, TABLE_MAGIC, decode_directory_slot,
    decode_group_slot, decode_table_page, encode_directory_slot, encode_group_slot,
    encode_table_page, slot_bitmap_word, slot_checksum_field,
};

use crate::{crc32, finding, summarize};

/// Which decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// `Superblock::decode`.
    Superblock,
    /// `MetaPage::decode`.
    Meta,
    /// `decode_group_slot`.
    GroupSlot,
    /// `decode_directory_slot`.
    DirectorySlot,
    /// `decode_table_page` (format 3's group table, not written by the pager yet).
    GroupTable,
    /// Format 3's table layout: `Geometry::table_slot_at` and `table_slot_page` are inverses.
    TableLayout,
}

/// One format-target input.
#[derive(Clone, PartialEq, Eq)]
pub struct FormatInput {
    /// The decoder to run.
    pub decoder: Decoder,
    /// Page size in bytes (1024, 2048, 4096 or 8192).
    pub page_size: usize,
    /// Write the magic and a correct CRC first.
    pub repair: bool,
    /// Expected group (group slot) or block (directory slot).
    pub expected: u64,
    /// Page count (directory slot).
    pub page_count: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for FormatInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormatInput")
            .field("decoder", &self.decoder)
            .field("page_size", &self.page_size)
            .field("repair", &self.repair)
            .field("expected", &self.expected)
            .field("page_count", &self.page_count)
            .field("bytes", &summarize(&self.bytes))
            .finish()
    }
}

const HEADER: usize = 17;

impl FormatInput {
    /// Decodes the layout in the module documentation (`None` if shorter than the header).
    pub fn from_bytes(data: &[u8]) -> Option<FormatInput> {
        if data.len() < HEADER {
            return None;
        }
        let control = data[0];
        let decoder = match (control & 3) | ((control >> 3) & 4) {
            0 => Decoder::Superblock,
            1 => Decoder::Meta,
            2 => Decoder::GroupSlot,
            3 => Decoder::DirectorySlot,
            4 | 6 => Decoder::GroupTable,
            _ => Decoder::TableLayout,
        };
        Some(FormatInput {
            decoder,
            page_size: 1024 << ((control >> 2) & 3),
            repair: control & 0x10 != 0,
            expected: u64::from_le_bytes(data[1..9].try_into().expect("8 bytes")),
            page_count: u64::from_le_bytes(data[9..17].try_into().expect("8 bytes")),
            bytes: data[HEADER..].to_vec(),
        })
    }

    /// The inverse of [`from_bytes`](Self::from_bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let decoder = match self.decoder {
            Decoder::Superblock => 0,
            Decoder::Meta => 1,
            Decoder::GroupSlot => 2,
            Decoder::DirectorySlot => 3,
            Decoder::GroupTable => 0x20,
            Decoder::TableLayout => 0x21,
        };
        let shift = (self.page_size / 1024).trailing_zeros() as u8;
        let mut out = vec![decoder | (shift << 2) | if self.repair { 0x10 } else { 0 }];
        out.extend_from_slice(&self.expected.to_le_bytes());
        out.extend_from_slice(&self.page_count.to_le_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }
}

impl<'a> arbitrary::Arbitrary<'a> for FormatInput {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.arbitrary_len::<u8>()?;
        FormatInput::from_bytes(u.bytes(len)?).ok_or(arbitrary::Error::NotEnoughData)
    }

    fn arbitrary_take_rest(u: arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        FormatInput::from_bytes(u.take_rest()).ok_or(arbitrary::Error::NotEnoughData)
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (HEADER, None)
    }
}

/// Writes `magic` and the CRC of `bytes[12..end]` (at 8) into `bytes`, padding it to `end`.
fn repair(bytes: &mut Vec<u8>, magic: &[u8; 8], end: usize) {
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[..8].copy_from_slice(magic);
    let crc = crc32(&bytes[12..end]);
    bytes[8..12].copy_from_slice(&crc.to_le_bytes());
}

fn mismatch(what: &str, input: &FormatInput, detail: impl std::fmt::Display) -> ! {
    finding(
        9,
        format!("format round trip: {what}: {detail}\n  input: {input:?}"),
    )
}

/// Runs one input; panics with a `FINDING` message if a decoder accepts bytes that do not
/// round-trip.
pub fn run(input: &FormatInput) {
    let p = input.page_size;
    let geometry = Geometry::new(p);
    let mut bytes = input.bytes.clone();
    match input.decoder {
        Decoder::Superblock => {
            if input.repair {
                repair(&mut bytes, &SUPERBLOCK_MAGIC, SUPERBLOCK_RECORD_BYTES);
            }
            let Ok(decoded) = Superblock::decode(&bytes) else {
                return;
            };
            let encoded = decoded.encode();
            if encoded[..] != bytes[..SUPERBLOCK_RECORD_BYTES] {
                mismatch("Superblock", input, "encode(decode(bytes)) != bytes[..64]");
            }
            match Superblock::decode(&encoded) {
                Ok(again) if again == decoded => {}
                other => mismatch(
                    "Superblock",
                    input,
                    format!("decode(encode(v)) = {other:?}, v = {decoded:?}"),
                ),
            }
        }
        Decoder::Meta => {
            if input.repair {
                repair(&mut bytes, &META_MAGIC, p);
            }
            // A format-3 copy (flag bit 1) decodes with format 3's geometry only.
            let format_3 = bytes.get(52).is_some_and(|flags| flags & 2 != 0);
            let geometry = if format_3 {
                Geometry::with_group_table(p)
            } else {
                geometry
            };
            let Ok(decoded) = MetaPage::decode(&bytes, geometry) else {
                return;
            };
            let mut encoded = vec![0xAAu8; p];
            let checksum = decoded.encode(geometry, &mut encoded);
            if encoded[..] != bytes[..p] {
                mismatch("MetaPage", input, "encode(decode(page)) != page");
            }
            if MetaPage::checksum_field(&encoded) != Some(checksum) {
                mismatch(
                    "MetaPage",
                    input,
                    "encode returned another checksum than it wrote",
                );
            }
            match MetaPage::decode(&encoded, geometry) {
                Ok(again) if again == decoded => {}
                other => mismatch(
                    "MetaPage",
                    input,
                    format!("decode(encode(v)) = {other:?}, v = {decoded:?}"),
                ),
            }
        }
        Decoder::GroupSlot => {
            if input.repair {
                repair(&mut bytes, &GROUP_MAGIC, p);
            }
            let Ok((header, bitmap)) = decode_group_slot(&bytes, geometry, input.expected) else {
                return;
            };
            if bitmap.len() != p - GROUP_HEADER_BYTES {
                mismatch(
                    "group slot",
                    input,
                    format!("bitmap of {} bytes", bitmap.len()),
                );
            }
            let words: Vec<u64> = (0..(geometry.pages_per_group() / 64) as usize)
                .map(|i| slot_bitmap_word(bitmap, i))
                .collect();
            let mut encoded = vec![0xAAu8; p];
            let checksum = encode_group_slot(geometry, header, &words, &mut encoded);
            if encoded[..] != bytes[..p] {
                mismatch("group slot", input, "encode(decode(page)) != page");
            }
            if slot_checksum_field(&encoded) != Some(checksum) {
                mismatch(
                    "group slot",
                    input,
                    "encode returned another checksum than it wrote",
                );
            }
            match decode_group_slot(&encoded, geometry, input.expected) {
                Ok((again, again_bitmap)) if again == header && again_bitmap == bitmap => {}
                other => mismatch(
                    "group slot",
                    input,
                    format!("decode(encode(v)) = {:?}", other.map(|(h, _)| h)),
                ),
            }
        }
        Decoder::DirectorySlot => {
            if input.repair {
                repair(&mut bytes, &DIRECTORY_MAGIC, p);
            }
            let Ok(decoded) =
                decode_directory_slot(&bytes, geometry, input.expected, input.page_count)
            else {
                return;
            };
            let mut encoded = vec![0xAAu8; p];
            let checksum = encode_directory_slot(geometry, &decoded, &mut encoded);
            if encoded[..] != bytes[..p] {
                mismatch("directory slot", input, "encode(decode(page)) != page");
            }
            if slot_checksum_field(&encoded) != Some(checksum) {
                mismatch(
                    "directory slot",
                    input,
                    "encode returned another checksum than it wrote",
                );
            }
            match decode_directory_slot(&encoded, geometry, input.expected, input.page_count) {
                Ok(again) if again == decoded => {}
                other => mismatch(
                    "directory slot",
                    input,
                    format!("decode(encode(v)) = {other:?}"),
                ),
            }
        }
        Decoder::GroupTable => run_group_table(input, geometry, bytes),
        Decoder::TableLayout => run_table_layout(input, geometry),
    }
}

fn run_group_table(input: &FormatInput, geometry: Geometry, mut bytes: Vec<u8>) {
    let p = geometry.page_size() as usize;
    if input.repair {
        repair(&mut bytes, &TABLE_MAGIC, p);
    }
    let Ok((header, entries)) = decode_table_page(&bytes, geometry, input.expected) else {
        return;
    };
    let mut encoded = vec![0xAAu8; p];
    let checksum = encode_table_page(geometry, header, &entries, &mut encoded);
    if encoded[..] != bytes[..p] {
        mismatch("group table", input, "encode(decode(page)) != page");
    }
    if slot_checksum_field(&encoded) != Some(checksum) {
        mismatch(
            "group table",
            input,
            "encode returned another checksum than it wrote",
        );
    }
    match decode_table_page(&encoded, geometry, input.expected) {
        Ok(again) if again == (header, entries.clone()) => {}
        other => mismatch(
            "group table",
            input,
            format!("decode(encode(v)) = {other:?}"),
        ),
    }
}

/// Any page either is no table slot or is the slot `table_slot_page` places there; any table
/// page's slots are found again by `table_slot_at`, inside the group its extent covers.
fn run_table_layout(input: &FormatInput, geometry: Geometry) {
    let page = input.expected % geometry.max_page_count();
    if let Some((t, s)) = geometry.table_slot_at(page) {
        if t >= geometry.max_table_page_count() {
            return; // an extent page of a table page no file of this page size has
        }
        let back = geometry.table_slot_page(t, s);
        if back != page || geometry.is_internal(page) {
            mismatch(
                "table layout",
                input,
                format!("page {page} -> ({t}, {s}) -> {back}"),
            );
        }
    }
    // Format 3's internal pages are format 2's plus the extents; its valid page counts end on a
    // data page.
    let g3 = Geometry::with_group_table(geometry.page_size() as usize);
    let internal = geometry.is_internal(page) || geometry.is_table_page(page);
    if g3.is_internal(page) != internal {
        mismatch(
            "table layout",
            input,
            format!("page {page}: is_internal disagrees"),
        );
    }
    let n = page + 1;
    if n >= g3.min_page_count() && g3.is_valid_page_count(n) == internal {
        mismatch(
            "table layout",
            input,
            format!("page count {n}: validity disagrees"),
        );
    }
    let t = input.page_count % geometry.max_table_page_count();
    for s in 0..2 {
        let page = geometry.table_slot_page(t, s);
        if geometry.table_slot_at(page) != Some((t, s)) {
            mismatch(
                "table layout",
                input,
                format!("({t}, {s}) -> {page} -> another slot"),
            );
        }
        let extent = geometry.table_extent(t);
        if page < geometry.extent_start_page(extent) {
            mismatch(
                "table layout",
                input,
                format!("({t}, {s}) before its extent"),
            );
        }
    }
}
