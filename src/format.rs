//! The on-disk format: layout arithmetic and pure encode/decode functions.
//!
//! Nothing in this module performs I/O; every function maps bytes to values or values to bytes,
//! so it can be unit-tested and fuzzed alone. SPEC.md §2 describes the same layout in prose.
//! All integers are little-endian.

use std::fmt;

/// Version of the on-disk format written by this build.
pub const FORMAT_VERSION: u32 = 1;
/// Smallest supported page size in bytes.
pub const MIN_PAGE_SIZE: usize = 1024;
/// Largest supported page size in bytes (16 MiB).
pub const MAX_PAGE_SIZE: usize = 1 << 24;
/// Upper bound on the number of pages in one file (2^40), whatever the page size.
pub const MAX_PAGE_COUNT: u64 = 1 << 40;
/// Upper bound on the length of one file in bytes (2^46 = 64 TiB): what a 64-bit address space maps.
pub const MAX_FILE_BYTES: u64 = 1 << 46;
/// The largest generation a commit may write (SPEC.md §3.2). Generations never wrap: once the
/// committed generation is this, every further commit is refused before anything is staged or
/// written ([`crate::MappedPageError::GenerationExhausted`]), and the file stays readable.
pub const MAX_GENERATION: u64 = u64::MAX;

/// Magic at the start of page 0.
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"MAPPGSB\x01";
/// Magic at the start of metadata pages 1 and 2.
pub const META_MAGIC: [u8; 8] = *b"MAPPGMD\x01";
/// Magic at the start of every bitmap group slot page.
pub const GROUP_MAGIC: [u8; 8] = *b"MAPPGBG\x01";
/// Magic at the start of every protected-page directory slot page.
pub const DIRECTORY_MAGIC: [u8; 8] = *b"MAPPGPD\x01";

/// Bytes of page 0 that carry the superblock record (the rest of page 0 is zero and unused).
pub const SUPERBLOCK_RECORD_BYTES: usize = 64;
/// Bytes of the fixed header of a metadata page, before the allocation log.
pub const META_HEADER_BYTES: usize = 128;
/// Bytes of one allocation-log entry.
pub const LOG_ENTRY_BYTES: usize = 16;
/// Bytes of the header of a bitmap group slot page, before the bitmap.
pub const GROUP_HEADER_BYTES: usize = 32;
/// Bytes of the header of a directory slot page, before the entries.
pub const DIRECTORY_HEADER_BYTES: usize = 64;
/// Bytes of one protected-page directory entry.
pub const DIRECTORY_ENTRY_BYTES: usize = 32;
/// Pages of one directory block: two mirrors (X, Y) of two slots (0, 1), in the order
/// X0, X1, Y0, Y1. A commit writes the same slot of both mirrors.
pub const DIRECTORY_BLOCK_PAGES: usize = 4;
/// Bytes at the start of a page that recovery zeroes to invalidate it (magic and checksum).
pub const SCRUB_BYTES: usize = 12;

/// Page 0: the superblock.
pub const SUPERBLOCK_PAGE: u64 = 0;
/// Pages 0, 1, 2 and the two slot pages of group 0 (3, 4) are never data pages.
pub const GROUP0_SLOT_PAGES: [u64; 2] = [3, 4];
/// The first page that can be a data page (pages 0-4 are the superblock, the metadata copies
/// and the slots of group 0).
pub const FIRST_DATA_PAGE: u64 = 5;
/// Smallest valid page count: pages 0-4 plus one data page.
pub const MIN_PAGE_COUNT: u64 = 6;

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

    fn to_u32(self) -> u32 {
        match self {
            MetaSlot::A => 0,
            MetaSlot::B => 1,
        }
    }

    fn from_u32(value: u32) -> Option<MetaSlot> {
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

// ---------------------------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------------------------

/// Layout arithmetic for one page size.
///
/// The file is divided into *groups* of `pages_per_group` consecutive pages. Group `k` covers
/// pages `[k * G, (k + 1) * G)` and owns two bitmap *slot* pages: pages 3 and 4 for group 0,
/// pages `k * G` and `k * G + 1` for every other group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    page_size: u64,
    pages_per_group: u64,
}

impl Geometry {
    /// Geometry for `page_size`, which must be a power of two in
    /// [`MIN_PAGE_SIZE`, `MAX_PAGE_SIZE`] (checked at compile time by `Pager`).
    pub fn new(page_size: usize) -> Geometry {
        assert!(
            page_size.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size),
            "page size {page_size} violates the compile-time bounds"
        );
        Geometry {
            page_size: page_size as u64,
            pages_per_group: ((page_size - GROUP_HEADER_BYTES) * 8) as u64,
        }
    }

    /// Page size in bytes.
    pub fn page_size(self) -> u64 {
        self.page_size
    }

    /// Pages covered by one bitmap group (`(PAGE_SIZE - 32) * 8`; always a multiple of 64).
    pub fn pages_per_group(self) -> u64 {
        self.pages_per_group
    }

    /// Largest page count a file of this page size may have.
    pub fn max_page_count(self) -> u64 {
        let by_bytes = MAX_FILE_BYTES / self.page_size;
        self.round_down_to_valid(by_bytes.min(MAX_PAGE_COUNT))
    }

    /// The largest valid page count not above `count` (which must be at least
    /// [`MIN_PAGE_COUNT`]).
    fn round_down_to_valid(self, count: u64) -> u64 {
        let mut count = count;
        while !self.is_valid_page_count(count) {
            assert!(count > MIN_PAGE_COUNT, "no valid page count below {count}");
            count -= 1;
        }
        count
    }

    /// Number of log entries a metadata page holds.
    pub fn log_capacity(self) -> usize {
        (self.page_size as usize - META_HEADER_BYTES) / LOG_ENTRY_BYTES
    }

    /// Number of protected-page entries one directory block holds (`(P - 64) / 32`).
    pub fn directory_entries_per_block(self) -> u64 {
        (self.page_size - DIRECTORY_HEADER_BYTES as u64) / DIRECTORY_ENTRY_BYTES as u64
    }

    /// The group that covers `page`.
    pub fn group_of(self, page: u64) -> u64 {
        page / self.pages_per_group
    }

    /// First page covered by `group`.
    pub fn group_start(self, group: u64) -> u64 {
        group * self.pages_per_group
    }

    /// Number of groups in a file of `page_count` pages.
    pub fn group_count(self, page_count: u64) -> u64 {
        page_count.div_ceil(self.pages_per_group)
    }

    /// Page that holds slot `slot` (0 or 1) of `group`'s bitmap.
    pub fn slot_page(self, group: u64, slot: u8) -> u64 {
        debug_assert!(slot < 2, "a group has two slots");
        if group == 0 {
            GROUP0_SLOT_PAGES[slot as usize]
        } else {
            self.group_start(group) + u64::from(slot)
        }
    }

    /// True for pages the pager keeps for itself: 0-4 and the two slot pages of every group.
    pub fn is_internal(self, page: u64) -> bool {
        page <= GROUP0_SLOT_PAGES[1] || page % self.pages_per_group < 2
    }

    /// A page count is valid when the last group holds both its slot pages and one data page.
    pub fn is_valid_page_count(self, page_count: u64) -> bool {
        if !(MIN_PAGE_COUNT..=MAX_PAGE_COUNT).contains(&page_count) {
            return false;
        }
        if page_count
            .checked_mul(self.page_size)
            .is_none_or(|bytes| bytes > MAX_FILE_BYTES)
        {
            return false;
        }
        let in_last_group = page_count % self.pages_per_group;
        !(1..=2).contains(&in_last_group)
    }

    /// Number of internal pages below `page_count` (which must be valid).
    pub fn internal_page_count(self, page_count: u64) -> u64 {
        // Pages 0-4, then two per further group.
        5 + 2 * (self.group_count(page_count) - 1)
    }

    /// Number of pages below `page_count` that can hold user data.
    pub fn data_page_count(self, page_count: u64) -> u64 {
        page_count - self.internal_page_count(page_count)
    }

    /// Byte offset of `page`.
    pub fn offset(self, page: u64) -> u64 {
        page * self.page_size
    }
}

// ---------------------------------------------------------------------------------------------
// Little-endian helpers (panic-free on short input: callers pass fixed-size headers)
// ---------------------------------------------------------------------------------------------

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn write_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// True when every byte of `bytes` is zero. ORs eight bytes at a time with no early exit, which
/// the compiler vectorizes: the zero checks run on every page recovery decodes, and a page that
/// fails them is rare.
fn all_zero(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.as_chunks::<8>();
    let folded = words
        .iter()
        .fold(0u64, |acc, word| acc | u64::from_ne_bytes(*word));
    folded == 0 && rest.iter().all(|&b| b == 0)
}

// ---------------------------------------------------------------------------------------------
// Superblock (page 0, first 64 bytes)
// ---------------------------------------------------------------------------------------------

/// The superblock record.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `MAPPGSB\x01` |
/// | 8 | 4 | CRC-32 of bytes 12..64 |
/// | 12 | 4 | format version (1) |
/// | 16 | 4 | page size in bytes |
/// | 20 | 4 | active metadata copy (0 = A, 1 = B) |
/// | 24 | 8 | generation of the active copy |
/// | 32 | 4 | checksum field of the active copy |
/// | 36 | 28 | zero |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Page size in bytes.
    pub page_size: u64,
    /// The committed metadata copy.
    pub active_meta: MetaSlot,
    /// Generation of the committed copy.
    pub active_generation: u64,
    /// Checksum field of the committed copy.
    pub active_meta_checksum: u32,
}

/// Why a superblock record was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SuperblockError {
    /// Fewer than 64 bytes.
    Truncated,
    /// The magic is absent: not a mappedpages file, or page 0 was destroyed.
    BadMagic,
    /// The checksum does not match: torn or corrupted.
    BadChecksum,
    /// A newer (or unknown) format version.
    UnsupportedVersion(u32),
    /// A field holds an impossible value.
    BadField(&'static str),
}

impl fmt::Display for SuperblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuperblockError::Truncated => f.write_str("superblock truncated"),
            SuperblockError::BadMagic => f.write_str("superblock magic missing"),
            SuperblockError::BadChecksum => f.write_str("superblock checksum mismatch"),
            SuperblockError::UnsupportedVersion(v) => write!(f, "format version {v}"),
            SuperblockError::BadField(what) => write!(f, "superblock field invalid: {what}"),
        }
    }
}

impl Superblock {
    /// Encodes the 64-byte record.
    pub fn encode(&self) -> [u8; SUPERBLOCK_RECORD_BYTES] {
        let mut out = [0u8; SUPERBLOCK_RECORD_BYTES];
        out[0..8].copy_from_slice(&SUPERBLOCK_MAGIC);
        write_u32(&mut out, 12, FORMAT_VERSION);
        write_u32(&mut out, 16, self.page_size as u32);
        write_u32(&mut out, 20, self.active_meta.to_u32());
        write_u64(&mut out, 24, self.active_generation);
        write_u32(&mut out, 32, self.active_meta_checksum);
        let checksum = crc(&out[12..]);
        write_u32(&mut out, 8, checksum);
        out
    }

    /// Decodes the record at the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Superblock, SuperblockError> {
        let record = bytes
            .get(..SUPERBLOCK_RECORD_BYTES)
            .ok_or(SuperblockError::Truncated)?;
        if record[0..8] != SUPERBLOCK_MAGIC {
            return Err(SuperblockError::BadMagic);
        }
        if read_u32(record, 8) != crc(&record[12..]) {
            return Err(SuperblockError::BadChecksum);
        }
        let version = read_u32(record, 12);
        if version != FORMAT_VERSION {
            return Err(SuperblockError::UnsupportedVersion(version));
        }
        let page_size = u64::from(read_u32(record, 16));
        if !page_size.is_power_of_two()
            || page_size < MIN_PAGE_SIZE as u64
            || page_size > MAX_PAGE_SIZE as u64
        {
            return Err(SuperblockError::BadField("page size"));
        }
        let active_meta = MetaSlot::from_u32(read_u32(record, 20))
            .ok_or(SuperblockError::BadField("selector"))?;
        let active_generation = read_u64(record, 24);
        if active_generation == 0 {
            return Err(SuperblockError::BadField("generation"));
        }
        if !all_zero(&record[36..]) {
            return Err(SuperblockError::BadField("reserved bytes"));
        }
        Ok(Superblock {
            page_size,
            active_meta,
            active_generation,
            active_meta_checksum: read_u32(record, 32),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Allocation log entries
// ---------------------------------------------------------------------------------------------

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
        if self.page_count == 0 {
            return Err("log entry with zero pages");
        }
        let Some(end) = self.first_page.checked_add(u64::from(self.page_count)) else {
            return Err("log entry overflows");
        };
        if end > page_count {
            return Err("log entry past the end of the file");
        }
        if geometry.group_of(self.first_page) != geometry.group_of(end - 1) {
            return Err("log entry spans two groups");
        }
        let group = geometry.group_of(self.first_page);
        let first_data = if group == 0 {
            FIRST_DATA_PAGE
        } else {
            geometry.group_start(group) + 2
        };
        if self.first_page < first_data {
            return Err("log entry touches an internal page");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata page (pages 1 and 2)
// ---------------------------------------------------------------------------------------------

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
/// | 52 | 4 | flags: bit 0 = written by a single-sync commit ([`MetaPage::single_sync`]); other bits zero |
/// | 56 | 8 | directory block count |
/// | 64 | 8 | directory digest: XOR of [`directory_digest_term`] over every block's current slot |
/// | 72 | 32 | pages X0, X1, Y0, Y1 of directory block 0 (zero when there is no block) |
/// | 104 | 24 | zero |
/// | 128 | 16 * n | log entries |
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
}

/// Metadata flag bit 0: the copy was written by a single-sync commit.
pub const META_FLAG_SINGLE_SYNC: u32 = 1;

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

/// Why a metadata page was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaError {
    /// The page is shorter than its page size.
    Truncated,
    /// No magic: never written, scrubbed, or destroyed.
    BadMagic,
    /// Torn or corrupted.
    BadChecksum,
    /// Written for another page size.
    PageSize(u64),
    /// Checksum-valid but impossible.
    Insane(&'static str),
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::Truncated => f.write_str("truncated"),
            MetaError::BadMagic => f.write_str("no metadata magic"),
            MetaError::BadChecksum => f.write_str("checksum mismatch"),
            MetaError::PageSize(found) => write!(f, "written for page size {found}"),
            MetaError::Insane(what) => write!(f, "checksum valid but {what}"),
        }
    }
}

impl MetaPage {
    /// Encodes into `out` (exactly one page) and returns the checksum field written.
    ///
    /// Panics if the log does not fit: the commit path folds groups before that can happen.
    pub fn encode(&self, geometry: Geometry, out: &mut [u8]) -> u32 {
        assert_eq!(
            out.len() as u64,
            geometry.page_size(),
            "metadata page buffer size"
        );
        assert!(
            self.log.len() <= geometry.log_capacity(),
            "log of {} entries exceeds capacity {}",
            self.log.len(),
            geometry.log_capacity()
        );
        out.fill(0);
        out[0..8].copy_from_slice(&META_MAGIC);
        write_u32(out, 12, geometry.page_size() as u32);
        write_u64(out, 16, self.generation);
        write_u64(out, 24, self.page_count);
        write_u64(out, 32, self.materialized_groups);
        write_u64(out, 40, self.slot_digest);
        write_u32(out, 48, self.log.len() as u32);
        if self.single_sync {
            write_u32(out, 52, META_FLAG_SINGLE_SYNC);
        }
        write_u64(out, 56, self.directory.block_count);
        write_u64(out, 64, self.directory.digest);
        for (index, &page) in self.directory.head_pages.iter().enumerate() {
            write_u64(out, 72 + 8 * index, page);
        }
        for (index, entry) in self.log.iter().enumerate() {
            let at = META_HEADER_BYTES + index * LOG_ENTRY_BYTES;
            write_u64(out, at, entry.first_page);
            write_u32(out, at + 8, entry.page_count);
            write_u32(out, at + 12, entry.kind.to_u32());
        }
        let checksum = crc(&out[12..]);
        write_u32(out, 8, checksum);
        checksum
    }

    /// The checksum field of an encoded page (meaningful only if [`MetaPage::decode`] accepts it).
    pub fn checksum_field(page: &[u8]) -> Option<u32> {
        (page.len() >= 12).then(|| read_u32(page, 8))
    }

    /// Decodes and validates one metadata page, including its geometry; it does not look at the
    /// file length or the bitmap (recovery does).
    pub fn decode(page: &[u8], geometry: Geometry) -> Result<MetaPage, MetaError> {
        Self::decode_inner(page, geometry, true)
    }

    /// [`MetaPage::decode`] without the checksum check: only for the `TrustBadChecksum` mutant.
    pub(crate) fn decode_ignoring_checksum(
        page: &[u8],
        geometry: Geometry,
    ) -> Result<MetaPage, MetaError> {
        Self::decode_inner(page, geometry, false)
    }

    fn decode_inner(
        page: &[u8],
        geometry: Geometry,
        verify_checksum: bool,
    ) -> Result<MetaPage, MetaError> {
        if (page.len() as u64) < geometry.page_size() {
            return Err(MetaError::Truncated);
        }
        let page = &page[..geometry.page_size() as usize];
        if page[0..8] != META_MAGIC {
            return Err(MetaError::BadMagic);
        }
        if verify_checksum && read_u32(page, 8) != crc(&page[12..]) {
            return Err(MetaError::BadChecksum);
        }
        let page_size = u64::from(read_u32(page, 12));
        if page_size != geometry.page_size() {
            return Err(MetaError::PageSize(page_size));
        }
        let generation = read_u64(page, 16);
        if generation == 0 {
            return Err(MetaError::Insane("generation 0"));
        }
        let page_count = read_u64(page, 24);
        if !geometry.is_valid_page_count(page_count) {
            return Err(MetaError::Insane("page count is not a valid file size"));
        }
        let materialized_groups = read_u64(page, 32);
        if materialized_groups == 0 || materialized_groups > geometry.group_count(page_count) {
            return Err(MetaError::Insane("materialized group count out of range"));
        }
        let slot_digest = read_u64(page, 40);
        let log_len = read_u32(page, 48) as usize;
        if log_len > geometry.log_capacity() {
            return Err(MetaError::Insane("log longer than a page holds"));
        }
        let flags = read_u32(page, 52);
        if flags & !META_FLAG_SINGLE_SYNC != 0 {
            return Err(MetaError::Insane("unknown metadata flags"));
        }
        if !all_zero(&page[104..META_HEADER_BYTES]) {
            return Err(MetaError::Insane("reserved header bytes not zero"));
        }
        let mut head_pages = [0u64; DIRECTORY_BLOCK_PAGES];
        for (index, page_index) in head_pages.iter_mut().enumerate() {
            *page_index = read_u64(page, 72 + 8 * index);
        }
        let directory = DirectoryRoot {
            block_count: read_u64(page, 56),
            digest: read_u64(page, 64),
            head_pages,
        };
        check_directory_pages(geometry, page_count, directory.block_count, &head_pages)
            .map_err(MetaError::Insane)?;
        let log_end = META_HEADER_BYTES + log_len * LOG_ENTRY_BYTES;
        if !all_zero(&page[log_end..]) {
            return Err(MetaError::Insane("bytes after the log not zero"));
        }
        let mut log = Vec::with_capacity(log_len);
        for index in 0..log_len {
            let at = META_HEADER_BYTES + index * LOG_ENTRY_BYTES;
            let kind = LogKind::from_u32(read_u32(page, at + 12))
                .ok_or(MetaError::Insane("unknown log entry kind"))?;
            let entry = LogEntry {
                first_page: read_u64(page, at),
                page_count: read_u32(page, at + 8),
                kind,
            };
            entry
                .check_geometry(geometry, page_count)
                .map_err(MetaError::Insane)?;
            log.push(entry);
        }
        Ok(MetaPage {
            generation,
            page_count,
            materialized_groups,
            slot_digest,
            log,
            directory,
            single_sync: flags & META_FLAG_SINGLE_SYNC != 0,
        })
    }
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

// ---------------------------------------------------------------------------------------------
// Bitmap group slot pages
// ---------------------------------------------------------------------------------------------

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

/// Why a group slot page was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupSlotError {
    /// The page is shorter than its page size.
    Truncated,
    /// Never written or scrubbed.
    BadMagic,
    /// Torn or corrupted.
    BadChecksum,
    /// Checksum-valid but impossible (wrong page size, group index or generation).
    Insane(&'static str),
}

impl fmt::Display for GroupSlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupSlotError::Truncated => f.write_str("truncated"),
            GroupSlotError::BadMagic => f.write_str("no slot magic"),
            GroupSlotError::BadChecksum => f.write_str("checksum mismatch"),
            GroupSlotError::Insane(what) => write!(f, "checksum valid but {what}"),
        }
    }
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
    out[0..8].copy_from_slice(&GROUP_MAGIC);
    write_u32(out, 12, geometry.page_size() as u32);
    write_u64(out, 16, header.generation);
    write_u64(out, 24, header.group);
    for (index, word) in bitmap_words.iter().enumerate() {
        let at = GROUP_HEADER_BYTES + index * 8;
        out[at..at + 8].copy_from_slice(&word.to_le_bytes());
    }
    let checksum = crc(&out[12..]);
    write_u32(out, 8, checksum);
    checksum
}

/// Decodes a group slot page that should describe `expected_group`. On success returns the
/// header and the bitmap bytes.
pub fn decode_group_slot(
    page: &[u8],
    geometry: Geometry,
    expected_group: u64,
) -> Result<(GroupSlotHeader, &[u8]), GroupSlotError> {
    if (page.len() as u64) < geometry.page_size() {
        return Err(GroupSlotError::Truncated);
    }
    let page = &page[..geometry.page_size() as usize];
    if page[0..8] != GROUP_MAGIC {
        return Err(GroupSlotError::BadMagic);
    }
    if read_u32(page, 8) != crc(&page[12..]) {
        return Err(GroupSlotError::BadChecksum);
    }
    if u64::from(read_u32(page, 12)) != geometry.page_size() {
        return Err(GroupSlotError::Insane("written for another page size"));
    }
    let generation = read_u64(page, 16);
    if generation == 0 {
        return Err(GroupSlotError::Insane("generation 0"));
    }
    let group = read_u64(page, 24);
    if group != expected_group {
        return Err(GroupSlotError::Insane(
            "group index does not match its position",
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
    (page.len() >= 12).then(|| read_u32(page, 8))
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The term a group's current slot contributes to [`MetaPage::slot_digest`]:
/// `mix(mix(group ^ 0x6D61_7070_6764_6967) ^ generation * 0x9E37_79B9_7F4A_7C15 ^ checksum << 32)`
/// with the splitmix64 finalizer as `mix` (wrapping arithmetic).
pub fn slot_digest_term(group: u64, generation: u64, checksum: u32) -> u64 {
    mix64(
        mix64(group ^ 0x6D61_7070_6764_6967)
            ^ generation.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (u64::from(checksum) << 32),
    )
}

// ---------------------------------------------------------------------------------------------
// Protected-page directory slot pages
// ---------------------------------------------------------------------------------------------

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

/// Why a directory slot page was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectorySlotError {
    /// The page is shorter than its page size.
    Truncated,
    /// Never written or scrubbed.
    BadMagic,
    /// Torn or corrupted.
    BadChecksum,
    /// Checksum-valid but impossible.
    Insane(&'static str),
}

impl fmt::Display for DirectorySlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectorySlotError::Truncated => f.write_str("truncated"),
            DirectorySlotError::BadMagic => f.write_str("no directory magic"),
            DirectorySlotError::BadChecksum => f.write_str("checksum mismatch"),
            DirectorySlotError::Insane(what) => write!(f, "checksum valid but {what}"),
        }
    }
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
    out[0..8].copy_from_slice(&DIRECTORY_MAGIC);
    write_u32(out, 12, geometry.page_size() as u32);
    write_u64(out, 16, slot.generation);
    write_u64(out, 24, slot.block);
    for (index, &page) in slot.next_pages.iter().enumerate() {
        write_u64(out, 32 + 8 * index, page);
    }
    for (index, entry) in slot.entries.iter().enumerate() {
        if let Some(entry) = entry {
            let at = DIRECTORY_HEADER_BYTES + index * DIRECTORY_ENTRY_BYTES;
            write_u64(out, at, entry.copies[0]);
            write_u64(out, at + 8, entry.copies[1]);
            write_u64(out, at + 16, entry.content_generation);
            write_u32(out, at + 24, entry.content_checksum);
            out[at + 28] = entry.current;
        }
    }
    let checksum = crc(&out[12..]);
    write_u32(out, 8, checksum);
    checksum
}

/// Decodes a directory slot page that should describe block `expected_block` of a file of
/// `page_count` pages. Checks everything a single page can show: the header, that every entry
/// names two distinct data pages inside the file, and that no entry is newer than the slot.
pub fn decode_directory_slot(
    page: &[u8],
    geometry: Geometry,
    expected_block: u64,
    page_count: u64,
) -> Result<DirectorySlot, DirectorySlotError> {
    if (page.len() as u64) < geometry.page_size() {
        return Err(DirectorySlotError::Truncated);
    }
    let page = &page[..geometry.page_size() as usize];
    if page[0..8] != DIRECTORY_MAGIC {
        return Err(DirectorySlotError::BadMagic);
    }
    if read_u32(page, 8) != crc(&page[12..]) {
        return Err(DirectorySlotError::BadChecksum);
    }
    if u64::from(read_u32(page, 12)) != geometry.page_size() {
        return Err(DirectorySlotError::Insane("written for another page size"));
    }
    let generation = read_u64(page, 16);
    if generation == 0 {
        return Err(DirectorySlotError::Insane("generation 0"));
    }
    let block = read_u64(page, 24);
    if block != expected_block {
        return Err(DirectorySlotError::Insane(
            "block index does not match its position in the chain",
        ));
    }
    let mut next_pages = [0u64; DIRECTORY_BLOCK_PAGES];
    for (index, next) in next_pages.iter_mut().enumerate() {
        *next = read_u64(page, 32 + 8 * index);
    }
    let has_next = u64::from(next_pages.iter().any(|&p| p != 0));
    check_directory_pages(geometry, page_count, has_next, &next_pages)
        .map_err(DirectorySlotError::Insane)?;
    let entry_count = geometry.directory_entries_per_block() as usize;
    let mut entries = Vec::with_capacity(entry_count);
    for index in 0..entry_count {
        let at = DIRECTORY_HEADER_BYTES + index * DIRECTORY_ENTRY_BYTES;
        let bytes = &page[at..at + DIRECTORY_ENTRY_BYTES];
        if all_zero(bytes) {
            entries.push(None);
            continue;
        }
        let entry = DirectoryEntry {
            copies: [read_u64(bytes, 0), read_u64(bytes, 8)],
            content_generation: read_u64(bytes, 16),
            content_checksum: read_u32(bytes, 24),
            current: bytes[28],
        };
        if entry.current > 1 || bytes[29..32].iter().any(|&b| b != 0) {
            return Err(DirectorySlotError::Insane(
                "entry with an unknown current copy",
            ));
        }
        if entry.content_generation == 0 || entry.content_generation > generation {
            return Err(DirectorySlotError::Insane(
                "entry content newer than its directory slot",
            ));
        }
        for &copy in &entry.copies {
            if copy >= page_count || geometry.is_internal(copy) {
                return Err(DirectorySlotError::Insane(
                    "backing copy outside the data pages of the file",
                ));
            }
        }
        if entry.copies[0] == entry.copies[1] {
            return Err(DirectorySlotError::Insane("both copies in one page"));
        }
        entries.push(Some(entry));
    }
    Ok(DirectorySlot {
        generation,
        block,
        next_pages,
        entries,
    })
}

/// The term a directory block's current slot contributes to [`DirectoryRoot::digest`]: like
/// [`slot_digest_term`] with the block index in place of the group and another constant
/// (`0x6D61_7070_6764_6972`), so a bitmap slot can never stand in for a directory slot.
pub fn directory_digest_term(block: u64, generation: u64, checksum: u32) -> u64 {
    mix64(
        mix64(block ^ 0x6D61_7070_6764_6972)
            ^ generation.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (u64::from(checksum) << 32),
    )
}

/// Reads bitmap word `index` from the bitmap bytes of a decoded slot.
pub fn slot_bitmap_word(bitmap: &[u8], index: usize) -> u64 {
    read_u64(bitmap, index * 8)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            page_size: 1024,
            active_meta: MetaSlot::A,
            active_generation: 1,
            active_meta_checksum: 7,
        };
        let good = sb.encode();
        assert_eq!(
            Superblock::decode(&good[..63]),
            Err(SuperblockError::Truncated)
        );
        let mut bad = good;
        bad[0] ^= 1;
        assert_eq!(Superblock::decode(&bad), Err(SuperblockError::BadMagic));
        let mut bad = good;
        bad[40] ^= 1;
        assert_eq!(Superblock::decode(&bad), Err(SuperblockError::BadChecksum));
        // Field errors need a valid checksum: re-sign after editing.
        let resign = |mut bytes: [u8; 64]| {
            let c = crc(&bytes[12..]);
            write_u32(&mut bytes, 8, c);
            bytes
        };
        let mut bad = good;
        write_u32(&mut bad, 12, 2);
        assert_eq!(
            Superblock::decode(&resign(bad)),
            Err(SuperblockError::UnsupportedVersion(2))
        );
        for page_size in [0u32, 1000, 512, 1 << 25] {
            let mut bad = good;
            write_u32(&mut bad, 16, page_size);
            assert_eq!(
                Superblock::decode(&resign(bad)),
                Err(SuperblockError::BadField("page size"))
            );
        }
        let mut bad = good;
        write_u32(&mut bad, 20, 2);
        assert_eq!(
            Superblock::decode(&resign(bad)),
            Err(SuperblockError::BadField("selector"))
        );
        let mut bad = good;
        write_u64(&mut bad, 24, 0);
        assert_eq!(
            Superblock::decode(&resign(bad)),
            Err(SuperblockError::BadField("generation"))
        );
        let mut bad = good;
        bad[50] = 1;
        assert_eq!(
            Superblock::decode(&resign(bad)),
            Err(SuperblockError::BadField("reserved bytes"))
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
            Err(MetaError::Truncated)
        );
        let mut bad = good.clone();
        bad[1] ^= 0xff;
        assert_eq!(MetaPage::decode(&bad, g), Err(MetaError::BadMagic));
        let mut bad = good.clone();
        bad[900] ^= 1;
        assert_eq!(MetaPage::decode(&bad, g), Err(MetaError::BadChecksum));

        let check = |edit: &dyn Fn(&mut [u8]), expected: MetaError| {
            let mut bad = good.clone();
            edit(&mut bad);
            resign_meta(&mut bad);
            assert_eq!(MetaPage::decode(&bad, g), Err(expected));
        };
        check(&|p| write_u32(p, 12, 4096), MetaError::PageSize(4096));
        check(&|p| write_u64(p, 16, 0), MetaError::Insane("generation 0"));
        for count in [0u64, 5, g.pages_per_group() + 1, u64::MAX] {
            check(
                &|p| write_u64(p, 24, count),
                MetaError::Insane("page count is not a valid file size"),
            );
        }
        check(
            &|p| write_u64(p, 32, 0),
            MetaError::Insane("materialized group count out of range"),
        );
        check(
            &|p| write_u64(p, 32, 4),
            MetaError::Insane("materialized group count out of range"),
        );
        check(
            &|p| write_u32(p, 48, 1000),
            MetaError::Insane("log longer than a page holds"),
        );
        check(
            &|p| p[110] = 1,
            MetaError::Insane("reserved header bytes not zero"),
        );
        for flags in [2u32, 0x8000_0000, 3] {
            check(
                &|p| write_u32(p, 52, flags),
                MetaError::Insane("unknown metadata flags"),
            );
        }
        check(
            &|p| write_u64(p, 56, 0),
            MetaError::Insane("directory pages named without a directory block"),
        );
        // The sample file has N pages: N / 4 blocks would fit, N / 4 + 1 cannot.
        let quarter = sample_meta().page_count / 4;
        for count in [quarter + 1, u64::MAX] {
            check(
                &|p| write_u64(p, 56, count),
                MetaError::Insane("more directory blocks than the file holds"),
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
            MetaError::Insane("directory page outside the data pages of the file"),
        );
        check(
            &|p| write_u64(p, 72, u64::MAX),
            MetaError::Insane("directory page outside the data pages of the file"),
        );
        check(
            &|p| write_u64(p, 80, 9),
            MetaError::Insane("directory block names one page twice"),
        );
        check(
            &|p| p[1000] = 1,
            MetaError::Insane("bytes after the log not zero"),
        );
        check(
            &|p| write_u32(p, 128 + 12, 3),
            MetaError::Insane("unknown log entry kind"),
        );
        check(
            &|p| write_u32(p, 128 + 8, 0),
            MetaError::Insane("log entry with zero pages"),
        );
        check(
            &|p| write_u64(p, 128, u64::MAX),
            MetaError::Insane("log entry overflows"),
        );
        check(
            &|p| write_u64(p, 128, g.pages_per_group() * 2 + 9),
            MetaError::Insane("log entry past the end of the file"),
        );
        check(
            &|p| write_u64(p, 128, g.pages_per_group() - 1),
            MetaError::Insane("log entry spans two groups"),
        );
        for internal in [0u64, 2, 4] {
            check(
                &|p| write_u64(p, 128, internal),
                MetaError::Insane("log entry touches an internal page"),
            );
        }
        check(
            &|p| write_u64(p, 128 + 16, g.pages_per_group() * 2 + 1),
            MetaError::Insane("log entry touches an internal page"),
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
            Some(GroupSlotError::Truncated)
        );
        assert_eq!(
            decode_group_slot(&good, g, 2).err(),
            Some(GroupSlotError::Insane(
                "group index does not match its position"
            ))
        );
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(
            decode_group_slot(&bad, g, 1).err(),
            Some(GroupSlotError::BadMagic)
        );
        let mut bad = good.clone();
        bad[500] ^= 4;
        assert_eq!(
            decode_group_slot(&bad, g, 1).err(),
            Some(GroupSlotError::BadChecksum)
        );
        let mut bad = good.clone();
        write_u32(&mut bad, 12, 2048);
        resign_meta(&mut bad);
        assert_eq!(
            decode_group_slot(&bad, g, 1).err(),
            Some(GroupSlotError::Insane("written for another page size"))
        );
        let mut bad = good.clone();
        write_u64(&mut bad, 16, 0);
        resign_meta(&mut bad);
        assert_eq!(
            decode_group_slot(&bad, g, 1).err(),
            Some(GroupSlotError::Insane("generation 0"))
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
            Err(DirectorySlotError::Truncated)
        );
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert_eq!(
            decode_directory_slot(&bad, g, 3, 100),
            Err(DirectorySlotError::BadMagic)
        );
        let mut bad = good.clone();
        bad[700] ^= 1;
        assert_eq!(
            decode_directory_slot(&bad, g, 3, 100),
            Err(DirectorySlotError::BadChecksum)
        );
        let check = |edit: &dyn Fn(&mut [u8]), expected: &'static str, page_count: u64| {
            let mut bad = good.clone();
            edit(&mut bad);
            resign_meta(&mut bad);
            assert_eq!(
                decode_directory_slot(&bad, g, 3, page_count),
                Err(DirectorySlotError::Insane(expected))
            );
        };
        check(
            &|p| write_u32(p, 12, 4096),
            "written for another page size",
            100,
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
}
