//! A protected-page directory slot page (SPEC.md §2.6).

use super::Geometry;
use super::header::{
    DecodeError, PageKind, Reason, all_zero, decode_header, encode_header, read_u32, read_u64,
    seal, write_u32, write_u64,
};

/// Magic at the start of every protected-page directory slot page.
pub const DIRECTORY_MAGIC: [u8; 8] = *b"MAPPGPD\x01";
/// Bytes of the header of a directory slot page, before the entries.
pub const DIRECTORY_HEADER_BYTES: usize = 64;
/// Bytes of one protected-page directory entry.
pub const DIRECTORY_ENTRY_BYTES: usize = 32;
/// Pages of one directory block: two mirrors (X, Y) of two slots (0, 1), in the order
/// X0, X1, Y0, Y1. A commit writes the same slot of both mirrors.
pub const DIRECTORY_BLOCK_PAGES: usize = 4;

const BLOCK_AT: usize = 24;
const NEXT_PAGES_AT: usize = 32;

/// Fields of an entry, from the entry's start.
const COPY0_AT: usize = 0;
const COPY1_AT: usize = 8;
const CONTENT_GENERATION_AT: usize = 16;
const CONTENT_CHECKSUM_AT: usize = 24;
const CURRENT_AT: usize = 28;
const ENTRY_RESERVED_FROM: usize = 29;

/// One in-use entry of the protected-page directory: a protected page and its two backing copies.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | backing page of copy 0 (an all-zero entry is free) |
/// | 8 | 8 | backing page of copy 1 |
/// | 16 | 8 | content generation: generation of the commit that wrote the current copy |
/// | 24 | 4 | CRC-32 of the current copy's `PAGE_SIZE` bytes |
/// | 28 | 1 | current copy (0 or 1) |
/// | 29 | 3 | zero |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The two backing pages.
    pub copies: [u64; 2],
    /// Which of `copies` holds the committed content.
    pub current: u8,
    /// Generation of the commit that made the current copy's content committed.
    pub content_generation: u64,
    /// CRC-32 of the committed content.
    pub content_checksum: u32,
}

impl DirectoryEntry {
    /// The backing page that holds the committed content.
    pub fn current_page(&self) -> u64 {
        self.copies[usize::from(self.current & 1)]
    }

    /// The backing page a writer stages into.
    pub fn inactive_page(&self) -> u64 {
        self.copies[usize::from((self.current & 1) ^ 1)]
    }
}

/// A decoded directory slot page.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `MAPPGPD\x01` |
/// | 8 | 4 | CRC-32 of bytes 12..PAGE_SIZE |
/// | 12 | 4 | page size in bytes |
/// | 16 | 8 | generation of the commit that wrote it |
/// | 24 | 8 | block index (position in the chain, from 0) |
/// | 32 | 32 | pages X0, X1, Y0, Y1 of the next block (zero in the last block) |
/// | 64 | 32 * E | entries, E = `(P - 64) / 32`; entry `i` of block `b` is protected id `b * E + i` |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectorySlot {
    /// Generation of the commit that wrote this slot.
    pub generation: u64,
    /// The block this slot describes.
    pub block: u64,
    /// Pages of the next block in the chain; all zero for the last block.
    pub next_pages: [u64; DIRECTORY_BLOCK_PAGES],
    /// One element per entry: `None` for a free entry.
    pub entries: Vec<Option<DirectoryEntry>>,
}

/// Checks the pages of one directory block named by a metadata page or by the previous block:
/// all zero when there is no block, else four distinct data pages inside the file.
pub(crate) fn check_directory_pages(
    geometry: Geometry,
    page_count: u64,
    block_count: u64,
    pages: &[u64; DIRECTORY_BLOCK_PAGES],
) -> Result<(), &'static str> {
    if block_count == 0 {
        return if pages.iter().all(|&p| p == 0) {
            Ok(())
        } else {
            Err("directory pages named without a directory block")
        };
    }
    // Every block uses four pages of its own: a count above page_count / 4 is impossible.
    if block_count > page_count / DIRECTORY_BLOCK_PAGES as u64 {
        return Err("more directory blocks than the file holds");
    }
    for (index, &page) in pages.iter().enumerate() {
        if page >= page_count || geometry.is_internal(page) {
            return Err("directory page outside the data pages of the file");
        }
        if pages[..index].contains(&page) {
            return Err("directory block names one page twice");
        }
    }
    Ok(())
}

/// Encodes a directory slot page into `out` (one page) and returns its checksum field.
/// `slot.entries` holds exactly [`Geometry::directory_entries_per_block`] elements.
pub fn encode_directory_slot(geometry: Geometry, slot: &DirectorySlot, out: &mut [u8]) -> u32 {
    assert_eq!(
        out.len() as u64,
        geometry.page_size(),
        "directory page buffer size"
    );
    assert_eq!(
        slot.entries.len() as u64,
        geometry.directory_entries_per_block(),
        "directory entry count"
    );
    out.fill(0);
    encode_header(out, &DIRECTORY_MAGIC, geometry, slot.generation);
    write_u64(out, BLOCK_AT, slot.block);
    for (index, &page) in slot.next_pages.iter().enumerate() {
        write_u64(out, NEXT_PAGES_AT + 8 * index, page);
    }
    for (index, entry) in slot.entries.iter().enumerate() {
        if let Some(entry) = entry {
            let at = DIRECTORY_HEADER_BYTES + index * DIRECTORY_ENTRY_BYTES;
            write_u64(out, at + COPY0_AT, entry.copies[0]);
            write_u64(out, at + COPY1_AT, entry.copies[1]);
            write_u64(out, at + CONTENT_GENERATION_AT, entry.content_generation);
            write_u32(out, at + CONTENT_CHECKSUM_AT, entry.content_checksum);
            out[at + CURRENT_AT] = entry.current;
        }
    }
    seal(out)
}

/// Decodes a directory slot page that should describe block `expected_block` of a file of
/// `page_count` pages. Checks everything a single page can show: the header, that every entry
/// names two distinct data pages inside the file, and that no entry is newer than the slot.
pub fn decode_directory_slot(
    page: &[u8],
    geometry: Geometry,
    expected_block: u64,
    page_count: u64,
) -> Result<DirectorySlot, DecodeError> {
    let (page, generation) = decode_header(
        page,
        PageKind::DirectorySlot,
        &DIRECTORY_MAGIC,
        geometry,
        true,
    )?;
    let insane = |what| DecodeError::new(PageKind::DirectorySlot, Reason::Insane(what));
    let block = read_u64(page, BLOCK_AT);
    if block != expected_block {
        return Err(insane(
            "block index does not match its position in the chain",
        ));
    }
    let mut next_pages = [0u64; DIRECTORY_BLOCK_PAGES];
    for (index, next) in next_pages.iter_mut().enumerate() {
        *next = read_u64(page, NEXT_PAGES_AT + 8 * index);
    }
    let has_next = u64::from(next_pages.iter().any(|&p| p != 0));
    check_directory_pages(geometry, page_count, has_next, &next_pages).map_err(insane)?;
    let entry_count = geometry.directory_entries_per_block() as usize;
    let mut entries = Vec::with_capacity(entry_count);
    for index in 0..entry_count {
        let at = DIRECTORY_HEADER_BYTES + index * DIRECTORY_ENTRY_BYTES;
        let bytes = &page[at..at + DIRECTORY_ENTRY_BYTES];
        let entry = decode_entry(bytes, geometry, generation, page_count).map_err(insane)?;
        entries.push(entry);
    }
    Ok(DirectorySlot {
        generation,
        block,
        next_pages,
        entries,
    })
}

/// Decodes one entry of a slot of generation `generation`: `None` when all zero (free), else two
/// distinct data pages inside the file, a known current copy, and a content generation in
/// `1..=generation`.
fn decode_entry(
    bytes: &[u8],
    geometry: Geometry,
    generation: u64,
    page_count: u64,
) -> Result<Option<DirectoryEntry>, &'static str> {
    if all_zero(bytes) {
        return Ok(None);
    }
    let entry = DirectoryEntry {
        copies: [read_u64(bytes, COPY0_AT), read_u64(bytes, COPY1_AT)],
        content_generation: read_u64(bytes, CONTENT_GENERATION_AT),
        content_checksum: read_u32(bytes, CONTENT_CHECKSUM_AT),
        current: bytes[CURRENT_AT],
    };
    if entry.current > 1 || !all_zero(&bytes[ENTRY_RESERVED_FROM..DIRECTORY_ENTRY_BYTES]) {
        return Err("entry with an unknown current copy");
    }
    if entry.content_generation == 0 || entry.content_generation > generation {
        return Err("entry content newer than its directory slot");
    }
    for &copy in &entry.copies {
        if copy >= page_count || geometry.is_internal(copy) {
            return Err("backing copy outside the data pages of the file");
        }
    }
    if entry.copies[0] == entry.copies[1] {
        return Err("both copies in one page");
    }
    Ok(Some(entry))
}
