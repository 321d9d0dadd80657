//! A metadata copy (SPEC.md §2.3): pages 1 and 2, with the allocation log.

use std::fmt;

use super::Geometry;
use super::directory::{DIRECTORY_BLOCK_PAGES, check_directory_pages};
use super::header::{
    DecodeError, PageKind, Reason, all_zero, check_sealed, decode_header, encode_header, read_u32,
    read_u64, seal, write_u32, write_u64,
};
#[cfg(doc)]
use super::{directory_digest_term, slot_digest_term, table_digest_term};

/// Magic at the start of metadata pages 1 and 2.
pub const META_MAGIC: [u8; 8] = *b"MAPPGMD\x01";
/// Bytes of the fixed header of a metadata page, before the allocation log.
pub const META_HEADER_BYTES: usize = 128;
/// Bytes of one allocation-log entry.
pub const LOG_ENTRY_BYTES: usize = 16;

const PAGE_COUNT_AT: usize = 24;
const MATERIALIZED_AT: usize = 32;
const SLOT_DIGEST_AT: usize = 40;
const LOG_LEN_AT: usize = 48;
const FLAGS_AT: usize = 52;
const BLOCK_COUNT_AT: usize = 56;
const DIRECTORY_DIGEST_AT: usize = 64;
const HEAD_PAGES_AT: usize = 72;
const DATA_CHECK_COUNT_AT: usize = 104;
/// Bytes 108..116: format 3's table digest `T` (zero in formats 1 and 2).
const TABLE_DIGEST_AT: usize = 108;
const RESERVED_FROM: usize = 116;

/// Fields of a log entry, from the entry's start.
const ENTRY_FIRST_PAGE_AT: usize = 0;
const ENTRY_PAGE_COUNT_AT: usize = 8;
const ENTRY_KIND_AT: usize = 12;
/// The CRC field of a data check, which takes the place of a log entry's kind.
const ENTRY_CRC_AT: usize = 12;

/// One of the two metadata copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaSlot {
    /// Page 1.
    A,
    /// Page 2.
    B,
}

impl MetaSlot {
    /// The page that holds this copy.
    pub fn page(self) -> u64 {
        match self {
            MetaSlot::A => 1,
            MetaSlot::B => 2,
        }
    }

    /// The other copy.
    pub fn other(self) -> MetaSlot {
        match self {
            MetaSlot::A => MetaSlot::B,
            MetaSlot::B => MetaSlot::A,
        }
    }

    pub(super) fn to_u32(self) -> u32 {
        match self {
            MetaSlot::A => 0,
            MetaSlot::B => 1,
        }
    }

    pub(super) fn from_u32(value: u32) -> Option<MetaSlot> {
        match value {
            0 => Some(MetaSlot::A),
            1 => Some(MetaSlot::B),
            _ => None,
        }
    }
}

impl fmt::Display for MetaSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaSlot::A => f.write_str("A"),
            MetaSlot::B => f.write_str("B"),
        }
    }
}

/// What a log entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// The pages became allocated.
    Alloc,
    /// The pages became free.
    Free,
}

impl LogKind {
    fn to_u32(self) -> u32 {
        match self {
            LogKind::Alloc => 1,
            LogKind::Free => 2,
        }
    }

    fn from_u32(value: u32) -> Option<LogKind> {
        match value {
            1 => Some(LogKind::Alloc),
            2 => Some(LogKind::Free),
            _ => None,
        }
    }
}

/// One change to the bitmap not yet folded into its group's slot page.
///
/// 16 bytes: first page (u64), page count (u32), kind (u32: 1 = alloc, 2 = free).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogEntry {
    /// First page of the run.
    pub first_page: u64,
    /// Number of pages in the run (at least 1).
    pub page_count: u32,
    /// What happened to them.
    pub kind: LogKind,
}

impl LogEntry {
    /// One past the last page of the run.
    pub fn end_page(&self) -> u64 {
        self.first_page + u64::from(self.page_count)
    }

    /// Checks the entry against the geometry of a file of `page_count` pages: inside the file,
    /// inside one group, touching no internal page.
    pub fn check_geometry(&self, geometry: Geometry, page_count: u64) -> Result<(), &'static str> {
        check_run(self.first_page, self.page_count, geometry, page_count)
    }
}

/// Checks a run of pages (a log entry's or a data check's) against the geometry of a file of
/// `page_count` pages: at least one page, inside the file, inside one group, no internal page.
fn check_run(
    first_page: u64,
    run_pages: u32,
    geometry: Geometry,
    page_count: u64,
) -> Result<(), &'static str> {
    if run_pages == 0 {
        return Err("log entry with zero pages");
    }
    let Some(end) = first_page.checked_add(u64::from(run_pages)) else {
        return Err("log entry overflows");
    };
    if end > page_count {
        return Err("log entry past the end of the file");
    }
    if geometry.group_of(first_page) != geometry.group_of(end - 1) {
        return Err("log entry spans two groups");
    }
    // A group's internal pages are the ones before its first data page.
    if first_page < geometry.first_data_page_of_group(geometry.group_of(first_page)) {
        return Err("log entry touches an internal page");
    }
    Ok(())
}

/// A data check (format 2, SPEC.md §2.3): the CRC-32 of the bytes of a run of data pages that the
/// single-sync commit writing this copy made durable in its one barrier (pages filled by
/// `Pager::alloc_with`). Recovery takes a single-sync copy newer than the superblock only if
/// every one of its data checks matches (SPEC.md §4.1 step 9).
///
/// 16 bytes, in the log area after the log entries: first page (u64), page count (u32), CRC-32
/// of the `page count · P` bytes (u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataCheck {
    /// First page of the run.
    pub first_page: u64,
    /// Number of pages in the run (at least 1).
    pub page_count: u32,
    /// CRC-32 (IEEE) of the run's bytes.
    pub crc: u32,
}

impl DataCheck {
    /// The check of `bytes`, the contents of the `page_count` pages from `first_page`.
    pub fn of(first_page: u64, page_count: u32, bytes: &[u8]) -> DataCheck {
        DataCheck {
            first_page,
            page_count,
            crc: crc32fast::hash(bytes),
        }
    }

    /// One past the last page of the run.
    pub fn end_page(&self) -> u64 {
        self.first_page + u64::from(self.page_count)
    }
}

/// A decoded metadata page.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `MAPPGMD\x01` |
/// | 8 | 4 | CRC-32 of bytes 12..PAGE_SIZE |
/// | 12 | 4 | page size in bytes |
/// | 16 | 8 | generation (>= 1) |
/// | 24 | 8 | page count |
/// | 32 | 8 | materialized group count |
/// | 40 | 8 | slot digest: XOR of [`slot_digest_term`] over every materialized group's current slot |
/// | 48 | 4 | log entry count |
/// | 52 | 4 | flags: bit 0 = written by a single-sync commit ([`MetaPage::single_sync`]); bit 1 = format 3 ([`META_FLAG_GROUP_TABLE`]); other bits zero |
/// | 56 | 8 | directory block count |
/// | 64 | 8 | directory digest: XOR of [`directory_digest_term`] over every block's current slot |
/// | 72 | 32 | pages X0, X1, Y0, Y1 of directory block 0 (zero when there is no block) |
/// | 104 | 4 | data check count `K` (format 2; 0 unless the single-sync flag is set) |
/// | 108 | 8 | table digest: XOR of [`table_digest_term`] over every table page's current slot (format 3; zero before) |
/// | 116 | 12 | zero |
/// | 128 | 16 * n | log entries |
/// | 128 + 16 * n | 16 * K | data checks ([`DataCheck`]) |
/// | .. | .. | zero to the end of the page |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaPage {
    /// Commit generation; strictly increasing across commits.
    pub generation: u64,
    /// Number of pages in the file, including internal ones.
    pub page_count: u64,
    /// Groups `0..materialized_groups` have a slot page on disk; later groups are implicitly fresh.
    pub materialized_groups: u64,
    /// XOR of [`slot_digest_term`] over the current slot of every materialized group: recovery
    /// recomputes it from the slots it chose, so a missing or corrupt current slot (which would
    /// make recovery pick an older one) is detected.
    pub slot_digest: u64,
    /// Changes since each touched group's slot was last written, oldest first.
    pub log: Vec<LogEntry>,
    /// Where the protected-page directory starts and how it is checked.
    pub directory: DirectoryRoot,
    /// Written by a single-sync commit (SPEC.md §3.2.1): no superblock flip names this copy, so
    /// recovery may take it when it is newer than the superblock's generation and loads,
    /// including the protected contents it committed.
    pub single_sync: bool,
    /// Data pages this (single-sync) commit made durable in its barrier, with their CRC-32: what
    /// recovery checks before it takes the copy as the newest commit. Empty unless
    /// `single_sync`; never carried to the next commit.
    pub data_checks: Vec<DataCheck>,
    /// Format 3: XOR of [`table_digest_term`] over the current slot of every table page
    /// (`⌈materialized_groups / E_t⌉` of them). Zero in formats 1 and 2, whose geometry
    /// ([`Geometry::has_group_table`]) makes the decoder require it.
    pub table_digest: u64,
}

/// Metadata flag bit 0: the copy was written by a single-sync commit.
pub const META_FLAG_SINGLE_SYNC: u32 = 1;
/// Metadata flag bit 1: the copy belongs to a format-3 file (a group table, docs/scale-design.md):
/// set in every copy of such a file and in no other, so that a copy says its format even when the
/// superblock is lost.
pub const META_FLAG_GROUP_TABLE: u32 = 2;

/// The protected-page directory as the metadata records it: a chain of `block_count` blocks
/// whose first block lives in `head_pages`; each block's slot names the next block's pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectoryRoot {
    /// Number of directory blocks (0 before the first protected page).
    pub block_count: u64,
    /// XOR of [`directory_digest_term`] over the current slot of every block.
    pub digest: u64,
    /// Pages X0, X1, Y0, Y1 of block 0; all zero when `block_count` is 0.
    pub head_pages: [u64; DIRECTORY_BLOCK_PAGES],
}

impl MetaPage {
    /// Encodes into `out` (exactly one page) and returns the checksum field written.
    ///
    /// Panics if the log and the data checks do not fit (the commit path folds groups before
    /// that can happen), or if a copy without the single-sync flag has data checks.
    pub fn encode(&self, geometry: Geometry, out: &mut [u8]) -> u32 {
        assert_eq!(
            out.len() as u64,
            geometry.page_size(),
            "metadata page buffer size"
        );
        assert!(
            self.log.len() + self.data_checks.len() <= geometry.log_capacity(),
            "log of {} entries and {} data checks exceed capacity {}",
            self.log.len(),
            self.data_checks.len(),
            geometry.log_capacity()
        );
        assert!(
            self.single_sync || self.data_checks.is_empty(),
            "data checks in a copy without the single-sync flag"
        );
        out.fill(0);
        encode_header(out, &META_MAGIC, geometry, self.generation);
        write_u64(out, PAGE_COUNT_AT, self.page_count);
        write_u64(out, MATERIALIZED_AT, self.materialized_groups);
        write_u64(out, SLOT_DIGEST_AT, self.slot_digest);
        write_u32(out, LOG_LEN_AT, self.log.len() as u32);
        let mut flags = 0;
        if self.single_sync {
            flags |= META_FLAG_SINGLE_SYNC;
        }
        if geometry.has_group_table() {
            flags |= META_FLAG_GROUP_TABLE;
        }
        write_u32(out, FLAGS_AT, flags);
        write_u64(out, BLOCK_COUNT_AT, self.directory.block_count);
        write_u64(out, DIRECTORY_DIGEST_AT, self.directory.digest);
        for (index, &page) in self.directory.head_pages.iter().enumerate() {
            write_u64(out, HEAD_PAGES_AT + 8 * index, page);
        }
        write_u32(out, DATA_CHECK_COUNT_AT, self.data_checks.len() as u32);
        assert!(
            geometry.has_group_table() || self.table_digest == 0,
            "a table digest in a copy of a format without a group table"
        );
        write_u64(out, TABLE_DIGEST_AT, self.table_digest);
        let mut entries = out[META_HEADER_BYTES..].chunks_exact_mut(LOG_ENTRY_BYTES);
        for (entry, bytes) in self.log.iter().zip(entries.by_ref()) {
            write_u64(bytes, ENTRY_FIRST_PAGE_AT, entry.first_page);
            write_u32(bytes, ENTRY_PAGE_COUNT_AT, entry.page_count);
            write_u32(bytes, ENTRY_KIND_AT, entry.kind.to_u32());
        }
        for (check, bytes) in self.data_checks.iter().zip(entries) {
            write_u64(bytes, ENTRY_FIRST_PAGE_AT, check.first_page);
            write_u32(bytes, ENTRY_PAGE_COUNT_AT, check.page_count);
            write_u32(bytes, ENTRY_CRC_AT, check.crc);
        }
        seal(out)
    }

    /// The checksum field of an encoded page (meaningful only if [`MetaPage::decode`] accepts it).
    pub fn checksum_field(page: &[u8]) -> Option<u32> {
        super::header::checksum_field(page)
    }

    /// Decodes and validates one metadata page, including its geometry; it does not look at the
    /// file length or the bitmap (recovery does).
    pub fn decode(page: &[u8], geometry: Geometry) -> Result<MetaPage, DecodeError> {
        Self::decode_inner(page, geometry, true)
    }

    /// [`MetaPage::decode`] without the checksum check: only for the `TrustBadChecksum` mutant.
    pub(crate) fn decode_ignoring_checksum(
        page: &[u8],
        geometry: Geometry,
    ) -> Result<MetaPage, DecodeError> {
        Self::decode_inner(page, geometry, false)
    }

    fn decode_inner(
        page: &[u8],
        geometry: Geometry,
        verify_checksum: bool,
    ) -> Result<MetaPage, DecodeError> {
        let (page, generation) =
            decode_header(page, PageKind::Meta, &META_MAGIC, geometry, verify_checksum)?;
        let fields = decode_fields(page, geometry).map_err(insane)?;
        let (log, data_checks) = decode_log(page, geometry, &fields).map_err(insane)?;
        Ok(MetaPage {
            generation,
            page_count: fields.page_count,
            materialized_groups: fields.materialized_groups,
            slot_digest: fields.slot_digest,
            log,
            directory: fields.directory,
            single_sync: fields.flags & META_FLAG_SINGLE_SYNC != 0,
            data_checks,
            table_digest: fields.table_digest,
        })
    }
}

fn insane(what: &'static str) -> DecodeError {
    DecodeError::new(PageKind::Meta, Reason::Insane(what))
}

/// The fixed fields of a metadata page after its header.
struct Fields {
    page_count: u64,
    materialized_groups: u64,
    slot_digest: u64,
    log_len: usize,
    data_check_count: usize,
    flags: u32,
    directory: DirectoryRoot,
    table_digest: u64,
}

/// Decodes and checks the fixed fields (bytes 24..128).
fn decode_fields(page: &[u8], geometry: Geometry) -> Result<Fields, &'static str> {
    let page_count = read_u64(page, PAGE_COUNT_AT);
    if !geometry.is_valid_page_count(page_count) {
        return Err("page count is not a valid file size");
    }
    let materialized_groups = read_u64(page, MATERIALIZED_AT);
    if materialized_groups == 0 || materialized_groups > geometry.group_count(page_count) {
        return Err("materialized group count out of range");
    }
    let log_len = read_u32(page, LOG_LEN_AT) as usize;
    if log_len > geometry.log_capacity() {
        return Err("log longer than a page holds");
    }
    let data_check_count = read_u32(page, DATA_CHECK_COUNT_AT) as usize;
    if data_check_count > geometry.log_capacity() - log_len {
        return Err("log and data checks longer than a page holds");
    }
    let flags = read_u32(page, FLAGS_AT);
    if flags & !(META_FLAG_SINGLE_SYNC | META_FLAG_GROUP_TABLE) != 0 {
        return Err("unknown metadata flags");
    }
    if (flags & META_FLAG_GROUP_TABLE != 0) != geometry.has_group_table() {
        return Err("group table flag does not match the file's format");
    }
    if data_check_count > 0 && flags & META_FLAG_SINGLE_SYNC == 0 {
        return Err("data checks in a copy without the single-sync flag");
    }
    if !all_zero(&page[RESERVED_FROM..META_HEADER_BYTES]) {
        return Err("reserved header bytes not zero");
    }
    let table_digest = read_u64(page, TABLE_DIGEST_AT);
    if table_digest != 0 && !geometry.has_group_table() {
        return Err("reserved header bytes not zero");
    }
    let mut head_pages = [0u64; DIRECTORY_BLOCK_PAGES];
    for (index, page_index) in head_pages.iter_mut().enumerate() {
        *page_index = read_u64(page, HEAD_PAGES_AT + 8 * index);
    }
    let directory = DirectoryRoot {
        block_count: read_u64(page, BLOCK_COUNT_AT),
        digest: read_u64(page, DIRECTORY_DIGEST_AT),
        head_pages,
    };
    check_directory_pages(geometry, page_count, directory.block_count, &head_pages)?;
    Ok(Fields {
        page_count,
        materialized_groups,
        slot_digest: read_u64(page, SLOT_DIGEST_AT),
        log_len,
        data_check_count,
        flags,
        directory,
        table_digest,
    })
}

/// Decodes and checks the log entries, the data checks after them and the zero bytes after both.
fn decode_log(
    page: &[u8],
    geometry: Geometry,
    fields: &Fields,
) -> Result<(Vec<LogEntry>, Vec<DataCheck>), &'static str> {
    let (page_count, log_len) = (fields.page_count, fields.log_len);
    let log_end = META_HEADER_BYTES + log_len * LOG_ENTRY_BYTES;
    let checks_end = log_end + fields.data_check_count * LOG_ENTRY_BYTES;
    if !all_zero(&page[checks_end..]) {
        return Err("bytes after the log not zero");
    }
    let mut data_checks = Vec::with_capacity(fields.data_check_count);
    for bytes in page[log_end..checks_end].chunks_exact(LOG_ENTRY_BYTES) {
        let check = DataCheck {
            first_page: read_u64(bytes, ENTRY_FIRST_PAGE_AT),
            page_count: read_u32(bytes, ENTRY_PAGE_COUNT_AT),
            crc: read_u32(bytes, ENTRY_CRC_AT),
        };
        check_run(check.first_page, check.page_count, geometry, page_count)?;
        data_checks.push(check);
    }
    let mut log = Vec::with_capacity(log_len);
    for bytes in page[META_HEADER_BYTES..log_end].chunks_exact(LOG_ENTRY_BYTES) {
        let kind =
            LogKind::from_u32(read_u32(bytes, ENTRY_KIND_AT)).ok_or("unknown log entry kind")?;
        let entry = LogEntry {
            first_page: read_u64(bytes, ENTRY_FIRST_PAGE_AT),
            page_count: read_u32(bytes, ENTRY_PAGE_COUNT_AT),
            kind,
        };
        entry.check_geometry(geometry, page_count)?;
        log.push(entry);
    }
    Ok((log, data_checks))
}

/// The flags of a metadata page (`page_size` bytes) whose magic and checksum are valid, decoded
/// no further: for recovery to tell a format-3 copy (whose geometry differs) before it decodes it.
pub fn sealed_meta_flags(page: &[u8], page_size: usize) -> Option<u32> {
    let page = page.get(..page_size)?;
    check_sealed(page, PageKind::Meta, &META_MAGIC, true).ok()?;
    Some(read_u32(page, FLAGS_AT))
}
