//! The on-disk format: layout arithmetic and pure encode/decode functions, one file per section
//! of SPEC.md §2: `geometry.rs` (§2.1), `superblock.rs` (§2.2), `meta.rs` (§2.3, the metadata
//! copy and its log), `group.rs` (§2.4, bitmap group slots), `digest.rs` (§2.5, §2.7),
//! `directory.rs` (§2.6, directory slots), `table.rs` and `table_layout.rs` (format 3's group
//! table, designed in docs/scale-design.md and not written yet), and `header.rs`, the page header they share (magic,
//! CRC-32, page size, generation) with the one decode error type, [`DecodeError`].
//!
//! Nothing in this module performs I/O; every function maps bytes to values or values to bytes,
//! so it can be unit-tested and fuzzed alone. SPEC.md §2 describes the same layout in prose.
//! All integers are little-endian. This module is public for the fuzzers and the crash explorer
//! only; it is not part of the crate's documented, semver-stable interface.

mod digest;
mod directory;
mod geometry;
mod group;
mod header;
mod meta;
mod superblock;
mod table;
mod table_layout;
#[cfg(test)]
mod tests;

pub use digest::{directory_digest_term, slot_digest_term, table_digest_term};
pub use directory::{
    DIRECTORY_BLOCK_PAGES, DIRECTORY_ENTRY_BYTES, DIRECTORY_HEADER_BYTES, DIRECTORY_MAGIC,
    DirectoryEntry, DirectorySlot, decode_directory_slot, encode_directory_slot,
};
pub use geometry::{
    FIRST_DATA_PAGE, GROUP0_SLOT_PAGES, Geometry, MAX_FILE_BYTES, MAX_PAGE_COUNT, MAX_PAGE_SIZE,
    MIN_PAGE_COUNT, MIN_PAGE_SIZE, SUPERBLOCK_PAGE,
};
pub use group::{
    GROUP_HEADER_BYTES, GROUP_MAGIC, GroupSlotHeader, decode_group_slot, encode_group_slot,
    slot_bitmap_word, slot_checksum_field, slot_clear_bits,
};
pub(crate) use header::generation_field;
pub use header::{DecodeError, PageKind, Reason, SCRUB_BYTES};
pub use meta::{
    DataCheck, DirectoryRoot, LOG_ENTRY_BYTES, LogEntry, LogKind, META_FLAG_GROUP_TABLE,
    META_FLAG_SINGLE_SYNC, META_HEADER_BYTES, META_MAGIC, MetaPage, MetaSlot, sealed_meta_flags,
};
pub use superblock::{
    FORMAT_VERSION, MIN_FORMAT_VERSION, SUPERBLOCK_MAGIC, SUPERBLOCK_RECORD_BYTES, Superblock,
};
pub use table::{
    TABLE_ENTRY_BYTES, TABLE_HEADER_BYTES, TABLE_MAGIC, TableEntry, TablePageHeader,
    decode_table_page, encode_table_page,
};

/// The largest generation a commit may write (SPEC.md §3.2). Generations never wrap: once the
/// committed generation is this, every further commit is refused before anything is staged or
/// written ([`crate::MappedPageError::GenerationExhausted`]), and the file stays readable.
pub const MAX_GENERATION: u64 = u64::MAX;
