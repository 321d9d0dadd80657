//! The parts every page kind shares: little-endian field access, the CRC, and the page header
//! (SPEC.md §2.3–§2.6: magic, CRC-32 of the rest of the page, page size, generation), with the
//! one decode error type of the format.

use std::fmt;

use super::Geometry;

/// Bytes `0..8`: the magic of the page kind.
pub(crate) const MAGIC_AT: usize = 0;
/// Bytes `8..12`: CRC-32 of everything after it ([`CHECKED_FROM`]..).
pub(crate) const CHECKSUM_AT: usize = 8;
/// The checksum covers the bytes from here to the end of the page (or of the superblock record).
pub(crate) const CHECKED_FROM: usize = 12;
/// Bytes `12..16` of a metadata, group slot or directory slot page: the page size.
pub(crate) const PAGE_SIZE_AT: usize = 12;
/// Bytes `16..24` of a metadata, group slot or directory slot page: the generation.
pub(crate) const GENERATION_AT: usize = 16;
/// Bytes at the start of a page that recovery zeroes to invalidate it (magic and checksum).
pub const SCRUB_BYTES: usize = CHECKED_FROM;

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

pub(crate) fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn write_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// True when every byte of `bytes` is zero. ORs eight bytes at a time with no early exit, which
/// the compiler vectorizes: the zero checks run on every page recovery decodes, and a page that
/// fails them is rare.
pub(crate) fn all_zero(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.as_chunks::<8>();
    let folded = words
        .iter()
        .fold(0u64, |acc, word| acc | u64::from_ne_bytes(*word));
    folded == 0 && rest.iter().all(|&b| b == 0)
}

/// The kind of a page (or of the superblock record), for [`DecodeError`]'s wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// The superblock record (page 0).
    Superblock,
    /// A metadata copy (page 1 or 2).
    Meta,
    /// A bitmap group slot page.
    GroupSlot,
    /// A protected-page directory slot page.
    DirectorySlot,
    /// A group table page (format 3, not written yet: docs/scale-design.md).
    GroupTable,
}

/// Why a page was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Shorter than the page (or the superblock record).
    Truncated,
    /// The magic is absent: never written, scrubbed, or destroyed.
    BadMagic,
    /// The checksum does not match: torn or corrupted.
    BadChecksum,
    /// A newer (or unknown) format version (superblock).
    UnsupportedVersion(u32),
    /// Written for another page size (metadata and slot pages).
    PageSize(u64),
    /// Checksum-valid but impossible.
    Insane(&'static str),
}

/// Why a page of the format was rejected: one type for every page kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The kind of page rejected.
    pub kind: PageKind,
    /// Why.
    pub reason: Reason,
}

impl DecodeError {
    /// A rejection of a page of `kind`.
    pub const fn new(kind: PageKind, reason: Reason) -> DecodeError {
        DecodeError { kind, reason }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PageKind::{DirectorySlot, GroupSlot, GroupTable, Meta, Superblock};
        match (self.kind, self.reason) {
            (Superblock, Reason::Truncated) => f.write_str("superblock truncated"),
            (_, Reason::Truncated) => f.write_str("truncated"),
            (Superblock, Reason::BadMagic) => f.write_str("superblock magic missing"),
            (Meta, Reason::BadMagic) => f.write_str("no metadata magic"),
            (GroupSlot, Reason::BadMagic) => f.write_str("no slot magic"),
            (DirectorySlot, Reason::BadMagic) => f.write_str("no directory magic"),
            (GroupTable, Reason::BadMagic) => f.write_str("no group table magic"),
            (Superblock, Reason::BadChecksum) => f.write_str("superblock checksum mismatch"),
            (_, Reason::BadChecksum) => f.write_str("checksum mismatch"),
            (_, Reason::UnsupportedVersion(version)) => write!(f, "format version {version}"),
            (Meta, Reason::PageSize(found)) => write!(f, "written for page size {found}"),
            (_, Reason::PageSize(_)) => {
                f.write_str("checksum valid but written for another page size")
            }
            (Superblock, Reason::Insane(what)) => write!(f, "superblock field invalid: {what}"),
            (_, Reason::Insane(what)) => write!(f, "checksum valid but {what}"),
        }
    }
}

/// Checks the magic and the checksum of `bytes` (a page, or the superblock record); the
/// checksum only if `verify_checksum` (false only for the `TrustBadChecksum` mutant).
pub(crate) fn check_sealed(
    bytes: &[u8],
    kind: PageKind,
    magic: &[u8; 8],
    verify_checksum: bool,
) -> Result<(), DecodeError> {
    if bytes[MAGIC_AT..MAGIC_AT + 8] != magic[..] {
        return Err(DecodeError::new(kind, Reason::BadMagic));
    }
    if verify_checksum && read_u32(bytes, CHECKSUM_AT) != crc(&bytes[CHECKED_FROM..]) {
        return Err(DecodeError::new(kind, Reason::BadChecksum));
    }
    Ok(())
}

/// Writes the checksum of `bytes` (a page, or the superblock record) and returns it.
pub(crate) fn seal(bytes: &mut [u8]) -> u32 {
    let checksum = crc(&bytes[CHECKED_FROM..]);
    write_u32(bytes, CHECKSUM_AT, checksum);
    checksum
}

/// Writes the header of a metadata or slot page: magic, page size, generation (the checksum
/// comes last, from [`seal`]).
pub(crate) fn encode_header(out: &mut [u8], magic: &[u8; 8], geometry: Geometry, generation: u64) {
    out[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(magic);
    write_u32(out, PAGE_SIZE_AT, geometry.page_size() as u32);
    write_u64(out, GENERATION_AT, generation);
}

/// Decodes the header of a metadata or slot page of `kind`: the page is one page long (the rest
/// of `page` is ignored), carries `magic` and a matching checksum, was written for this page
/// size, and has a generation other than 0. Returns the page and its generation.
pub(crate) fn decode_header<'a>(
    page: &'a [u8],
    kind: PageKind,
    magic: &[u8; 8],
    geometry: Geometry,
    verify_checksum: bool,
) -> Result<(&'a [u8], u64), DecodeError> {
    let page = page
        .get(..geometry.page_size() as usize)
        .ok_or(DecodeError::new(kind, Reason::Truncated))?;
    check_sealed(page, kind, magic, verify_checksum)?;
    let page_size = u64::from(read_u32(page, PAGE_SIZE_AT));
    if page_size != geometry.page_size() {
        return Err(DecodeError::new(kind, Reason::PageSize(page_size)));
    }
    let generation = read_u64(page, GENERATION_AT);
    if generation == 0 {
        return Err(DecodeError::new(kind, Reason::Insane("generation 0")));
    }
    Ok((page, generation))
}

/// The checksum field (bytes 8..12) of an encoded page (meaningful only if its decoder accepts
/// it).
pub fn checksum_field(page: &[u8]) -> Option<u32> {
    (page.len() >= CHECKED_FROM).then(|| read_u32(page, CHECKSUM_AT))
}

/// The generation field (bytes 16..24) of a metadata or slot page, unchecked. `page` is a whole
/// page (at least 1 KiB): a shorter slice is a caller's bug, and panics.
pub(crate) fn generation_field(page: &[u8]) -> u64 {
    read_u64(page, GENERATION_AT)
}
