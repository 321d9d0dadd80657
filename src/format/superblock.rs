//! The superblock (SPEC.md §2.2): page 0, bytes 0..64; the rest of page 0 is zero and unused.

use super::MetaSlot;
use super::geometry::{MAX_PAGE_SIZE, MIN_PAGE_SIZE};
use super::header::{
    CHECKED_FROM, DecodeError, MAGIC_AT, PageKind, Reason, all_zero, check_sealed, read_u32,
    read_u64, seal, write_u32, write_u64,
};

/// Version of the on-disk format of a file this build creates. Format 2 adds data checks to
/// single-sync metadata copies (SPEC.md §2.3); a format-1 file is opened and keeps format 1
/// (this build writes no data checks into it).
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version this build opens.
pub const MIN_FORMAT_VERSION: u32 = 1;
/// Magic at the start of page 0.
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"MAPPGSB\x01";
/// Bytes of page 0 that carry the superblock record (the rest of page 0 is zero and unused).
pub const SUPERBLOCK_RECORD_BYTES: usize = 64;

const VERSION_AT: usize = CHECKED_FROM;
const PAGE_SIZE_AT: usize = 16;
const SELECTOR_AT: usize = 20;
const GENERATION_AT: usize = 24;
const META_CHECKSUM_AT: usize = 32;
const RESERVED_FROM: usize = 36;

/// The superblock record.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `MAPPGSB\x01` |
/// | 8 | 4 | CRC-32 of bytes 12..64 |
/// | 12 | 4 | format version (1, 2 or 3) |
/// | 16 | 4 | page size in bytes |
/// | 20 | 4 | active metadata copy (0 = A, 1 = B) |
/// | 24 | 8 | generation of the active copy |
/// | 32 | 4 | checksum field of the active copy |
/// | 36 | 28 | zero |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Format version of the file ([`MIN_FORMAT_VERSION`]..=[`FORMAT_VERSION`]).
    pub version: u32,
    /// Page size in bytes.
    pub page_size: u64,
    /// The committed metadata copy.
    pub active_meta: MetaSlot,
    /// Generation of the committed copy.
    pub active_generation: u64,
    /// Checksum field of the committed copy.
    pub active_meta_checksum: u32,
}

impl Superblock {
    /// Encodes the 64-byte record.
    ///
    /// Panics if the version is not one this build can write back.
    pub fn encode(&self) -> [u8; SUPERBLOCK_RECORD_BYTES] {
        assert!(
            (MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&self.version),
            "superblock of format version {}",
            self.version
        );
        let mut out = [0u8; SUPERBLOCK_RECORD_BYTES];
        out[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(&SUPERBLOCK_MAGIC);
        write_u32(&mut out, VERSION_AT, self.version);
        write_u32(&mut out, PAGE_SIZE_AT, self.page_size as u32);
        write_u32(&mut out, SELECTOR_AT, self.active_meta.to_u32());
        write_u64(&mut out, GENERATION_AT, self.active_generation);
        write_u32(&mut out, META_CHECKSUM_AT, self.active_meta_checksum);
        seal(&mut out);
        out
    }

    /// Decodes the record at the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Superblock, DecodeError> {
        let reject = |reason| DecodeError::new(PageKind::Superblock, reason);
        let record = bytes
            .get(..SUPERBLOCK_RECORD_BYTES)
            .ok_or(reject(Reason::Truncated))?;
        check_sealed(record, PageKind::Superblock, &SUPERBLOCK_MAGIC, true)?;
        let version = read_u32(record, VERSION_AT);
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(reject(Reason::UnsupportedVersion(version)));
        }
        let page_size = u64::from(read_u32(record, PAGE_SIZE_AT));
        if !page_size.is_power_of_two()
            || page_size < MIN_PAGE_SIZE as u64
            || page_size > MAX_PAGE_SIZE as u64
        {
            return Err(reject(Reason::Insane("page size")));
        }
        let active_meta = MetaSlot::from_u32(read_u32(record, SELECTOR_AT))
            .ok_or(reject(Reason::Insane("selector")))?;
        let active_generation = read_u64(record, GENERATION_AT);
        if active_generation == 0 {
            return Err(reject(Reason::Insane("generation")));
        }
        if !all_zero(&record[RESERVED_FROM..]) {
            return Err(reject(Reason::Insane("reserved bytes")));
        }
        Ok(Superblock {
            version,
            page_size,
            active_meta,
            active_generation,
            active_meta_checksum: read_u32(record, META_CHECKSUM_AT),
        })
    }
}
