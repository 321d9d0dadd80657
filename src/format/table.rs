//! A group table page (format 3, docs/scale-design.md §2.1–§2.2): per group, which of its two
//! slot pages is current, with that slot's generation, checksum field and free-page count.
//!
//! Format 3 is not written yet: this codec and the table layout (`table_layout.rs`) are its
//! first, pure step. The pager does not call them; the fuzzers and the tests do.

use super::Geometry;
use super::header::{
    DecodeError, PageKind, Reason, decode_header, encode_header, read_u32, read_u64, seal,
    write_u32, write_u64,
};

/// Magic at the start of every group table page.
pub const TABLE_MAGIC: [u8; 8] = *b"MAPPGGT\x01";
/// Bytes of the header of a group table page, before the entries.
pub const TABLE_HEADER_BYTES: usize = 32;
/// Bytes of one group table entry.
pub const TABLE_ENTRY_BYTES: usize = 16;

/// Bytes 24..32 of a table page: its index `t`.
const INDEX_AT: usize = 24;
/// Bit 31 of an entry's last word: the current slot; bits 0..31 below it: the free count.
const SLOT_BIT: u32 = 1 << 31;

/// One group's entry: it *pins* the group's current slot.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | generation of the group's current slot (≥ 1; 0 = no entry, all 16 bytes zero) |
/// | 8 | 4 | checksum field (bytes 8..12) of the current slot |
/// | 12 | 4 | bit 31: current slot (0 or 1); bits 0..31: free pages the current slot records |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// Generation of the group's current slot.
    pub generation: u64,
    /// Checksum field of the group's current slot.
    pub checksum: u32,
    /// Which slot page (0 or 1) is current.
    pub slot: u8,
    /// Free data pages of the group, as its current slot records them (below 2^31).
    pub free_pages: u32,
}

impl TableEntry {
    /// Encodes the entry. Panics (a caller's bug) if `slot > 1`, `free_pages ≥ 2^31` or
    /// `generation == 0` (the encoding of "no entry").
    pub fn encode(self) -> [u8; TABLE_ENTRY_BYTES] {
        assert!(self.slot < 2, "a group has two slots, not {}", self.slot);
        assert!(
            self.free_pages < SLOT_BIT,
            "free count {} does not fit 31 bits",
            self.free_pages
        );
        assert!(self.generation != 0, "a table entry has a generation ≥ 1");
        let mut out = [0u8; TABLE_ENTRY_BYTES];
        write_u64(&mut out, 0, self.generation);
        write_u32(&mut out, 8, self.checksum);
        let last = self.free_pages | if self.slot == 1 { SLOT_BIT } else { 0 };
        write_u32(&mut out, 12, last);
        out
    }

    /// Decodes one entry: `Ok(None)` for the all-zero encoding of "no entry", an error for a
    /// generation 0 with other bytes set.
    pub fn decode(bytes: &[u8; TABLE_ENTRY_BYTES]) -> Result<Option<TableEntry>, DecodeError> {
        let generation = read_u64(bytes, 0);
        if generation == 0 {
            return match bytes.iter().all(|&b| b == 0) {
                true => Ok(None),
                false => Err(insane("an entry of generation 0 is not all zero")),
            };
        }
        let last = read_u32(bytes, 12);
        Ok(Some(TableEntry {
            generation,
            checksum: read_u32(bytes, 8),
            slot: u8::from(last & SLOT_BIT != 0),
            free_pages: last & !SLOT_BIT,
        }))
    }
}

/// Header of a group table page; `E_t` entries follow it ([`Geometry::table_entries_per_page`]).
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `MAPPGGT\x01` |
/// | 8 | 4 | CRC-32 of bytes 12..PAGE_SIZE |
/// | 12 | 4 | page size in bytes |
/// | 16 | 8 | generation of the commit that wrote it |
/// | 24 | 8 | table page index `t` |
/// | 32 | 16·E_t | entries of groups `t·E_t ..`, the live ones first, then all-zero entries |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TablePageHeader {
    /// Generation of the commit that wrote this page.
    pub generation: u64,
    /// The table page index `t`.
    pub index: u64,
}

fn insane(what: &'static str) -> DecodeError {
    DecodeError::new(PageKind::GroupTable, Reason::Insane(what))
}

/// Encodes a table page into `out` (one page): `entries` are the live entries of groups
/// `t·E_t ..`, in order; the rest of the page is zero entries. Returns the checksum it wrote.
/// Panics (a caller's bug) if there are more than `E_t` entries or one is newer than the page.
pub fn encode_table_page(
    geometry: Geometry,
    header: TablePageHeader,
    entries: &[TableEntry],
    out: &mut [u8],
) -> u32 {
    assert_eq!(
        out.len() as u64,
        geometry.page_size(),
        "table page buffer size"
    );
    assert!(
        entries.len() as u64 <= geometry.table_entries_per_page(),
        "{} entries on a table page of {}",
        entries.len(),
        geometry.table_entries_per_page()
    );
    out.fill(0);
    encode_header(out, &TABLE_MAGIC, geometry, header.generation);
    write_u64(out, INDEX_AT, header.index);
    for (i, entry) in entries.iter().enumerate() {
        assert!(
            entry.generation <= header.generation,
            "entry {i} of generation {} on a page of generation {}",
            entry.generation,
            header.generation
        );
        let at = TABLE_HEADER_BYTES + i * TABLE_ENTRY_BYTES;
        out[at..at + TABLE_ENTRY_BYTES].copy_from_slice(&entry.encode());
    }
    seal(out)
}

/// Decodes a table page that should be table page `expected_index`. On success returns the
/// header and its live entries (those of groups `t·E_t ..`, in order). Rejected besides the
/// header checks: another index, an entry newer than the page, a live entry after a zero one, or
/// a free count above `G − 2` (a group's two slot pages are never free).
pub fn decode_table_page(
    page: &[u8],
    geometry: Geometry,
    expected_index: u64,
) -> Result<(TablePageHeader, Vec<TableEntry>), DecodeError> {
    let (page, generation) =
        decode_header(page, PageKind::GroupTable, &TABLE_MAGIC, geometry, true)?;
    let index = read_u64(page, INDEX_AT);
    if index != expected_index {
        return Err(insane("table page index does not match its position"));
    }
    let (chunks, rest) = page[TABLE_HEADER_BYTES..].as_chunks::<TABLE_ENTRY_BYTES>();
    debug_assert!(rest.is_empty(), "(P - 32) is a multiple of 16 for every P");
    let mut entries = Vec::new();
    let mut ended = false;
    for chunk in chunks {
        match (TableEntry::decode(chunk)?, ended) {
            (None, _) => ended = true,
            (Some(_), true) => return Err(insane("a table entry after an empty one")),
            (Some(entry), false) => {
                if entry.generation > generation {
                    return Err(insane("a table entry newer than its page"));
                }
                // Every group's slot pages are internal: at most `G − 2` bits are clear.
                if u64::from(entry.free_pages) > geometry.pages_per_group() - 2 {
                    return Err(insane("a free count above the pages of a group"));
                }
                entries.push(entry);
            }
        }
    }
    Ok((TablePageHeader { generation, index }, entries))
}
