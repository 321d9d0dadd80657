//! Why recovery rejected a metadata copy: one value per reason, so tests and the decision table
//! name reasons instead of matching text. The `Display` texts are the `detail` of
//! [`MappedPageError::CorruptMetadata`](crate::MappedPageError::CorruptMetadata).

use std::fmt;

use crate::format::{DecodeError, LogKind, MetaSlot};

/// Why a well-formed copy does not load (SPEC.md §4.1, by step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LoadRejection {
    /// Step 1: the copy claims more pages than the file holds.
    PastEndOfFile { claimed: u64, file_pages: u64 },
    /// Step 2: a slot page of a materialized group lies past the end of the file.
    SlotPagePastEnd { group: u64 },
    /// Step 2: both slots of a group are valid with one generation.
    GroupSlotsTie { group: u64, generation: u64 },
    /// Step 2: no slot of a group is valid at or below the copy's generation.
    NoGroupSlot { group: u64 },
    /// Step 3: a current slot marks pages past the end of the file in use.
    GroupPastEnd { group: u64 },
    /// Step 3: a current slot marks its group's internal pages free.
    ReservedPagesFree { group: u64 },
    /// Step 4: the chosen slots are not the ones the copy's slot digest names.
    SlotDigest,
    /// Format 3, step 2: a table page lies past the end of the file.
    TablePagePastEnd { table_page: u64 },
    /// Format 3, step 2: both slots of a table page are valid with one generation.
    TableSlotsTie { table_page: u64, generation: u64 },
    /// Format 3, step 2: no slot of a table page is valid at or below the copy's generation.
    NoTableSlot { table_page: u64 },
    /// Format 3, step 2: a table page holds another number of entries than groups it covers,
    /// or an entry newer than the copy.
    TableEntries { table_page: u64 },
    /// Format 3, step 2: the chosen table slots are not the ones the copy's table digest names.
    TableDigest,
    /// Format 3, step 3: a group's pinned slot is missing, damaged, or not the one its entry
    /// names (generation, checksum or free count).
    PinnedSlot { group: u64 },
    /// Step 5: a log entry does not apply to the bitmap.
    LogEntry { kind: LogKind, first: u64, end: u64 },
    /// Step 6: the chain ends before its block count.
    DirectoryChainShort { blocks: u64, expected: u64 },
    /// Step 6: a block reuses the pages of an earlier one.
    DirectoryChainLoops { block: u64 },
    /// Step 6: a page of a directory block lies past the end of the file.
    DirectoryPagePastEnd { page: u64, block: u64 },
    /// Step 6: two slots of a block with one generation differ.
    DirectorySlotsTie { block: u64, generation: u64 },
    /// Step 6: no valid slot of a block at or below the copy's generation.
    NoDirectorySlot { block: u64 },
    /// Step 6: the last block names a next block.
    DirectoryChainLong { expected: u64 },
    /// Step 7: the chosen directory slots are not the ones the copy's directory digest names.
    DirectoryDigest,
    /// Step 7: a page is owned twice by the directory (the text of `Directory::from_committed`).
    DirectoryOwnership(String),
    /// Step 7: a page the directory owns is free in the bitmap.
    ProtectedPageFree { page: u64 },
    /// Step 8: a protected page this single-sync commit wrote did not arrive.
    ContentsMissing { id: u64, page: u64 },
    /// Step 9: a data check names a page the copy does not allocate to a regular page.
    DataCheckNotAllocated { page: u64 },
    /// Step 9: the pages of a data check do not hold the bytes this commit wrote.
    DataMissing { first_page: u64, page_count: u32 },
}

impl fmt::Display for LoadRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadRejection::*;
        match self {
            PastEndOfFile {
                claimed,
                file_pages,
            } => write!(f, "claims {claimed} pages but the file holds {file_pages}"),
            SlotPagePastEnd { group } => {
                write!(f, "slot page of group {group} past the end of the file")
            }
            GroupSlotsTie { group, generation } => {
                write!(f, "both slots of group {group} claim generation {generation}")
            }
            NoGroupSlot { group } => write!(f, "group {group} has no valid bitmap slot"),
            TablePagePastEnd { table_page } => {
                write!(f, "group table page {table_page} past the end of the file")
            }
            TableSlotsTie {
                table_page,
                generation,
            } => write!(
                f,
                "both slots of group table page {table_page} claim generation {generation}"
            ),
            NoTableSlot { table_page } => {
                write!(f, "group table page {table_page} has no valid slot")
            }
            TableEntries { table_page } => write!(
                f,
                "group table page {table_page} does not hold one entry per group it covers"
            ),
            TableDigest => f.write_str("group table slots do not match the table digest"),
            PinnedSlot { group } => write!(
                f,
                "the bitmap slot the group table names for group {group} is missing or damaged"
            ),
            GroupPastEnd { group } => {
                write!(f, "group {group} marks pages past the end of the file")
            }
            ReservedPagesFree { group } => write!(f, "group {group} marks its reserved pages free"),
            SlotDigest => f.write_str(
                "its bitmap slots are not the ones it committed (a current slot is corrupt, or a fold of its commit never arrived)",
            ),
            LogEntry { kind, first, end } => write!(
                f,
                "log entry {kind:?} {first}..{end} does not apply to the bitmap"
            ),
            DirectoryChainShort { blocks, expected } => write!(
                f,
                "its directory chain ends after {blocks} of {expected} blocks"
            ),
            DirectoryChainLoops { block } => write!(
                f,
                "directory block {block} reuses the pages of an earlier block"
            ),
            DirectoryPagePastEnd { page, block } => write!(
                f,
                "page {page} of directory block {block} is past the end of the file"
            ),
            DirectorySlotsTie { block, generation } => write!(
                f,
                "two slots of directory block {block} claim generation {generation} with different contents"
            ),
            NoDirectorySlot { block } => write!(f, "directory block {block} has no valid slot"),
            DirectoryChainLong { expected } => write!(
                f,
                "its last directory block names a block past the {expected} it counts"
            ),
            DirectoryDigest => f.write_str(
                "its directory slots are not the ones it committed (a current slot is corrupt in both mirrors, or a block of its commit never arrived)",
            ),
            DirectoryOwnership(why) => f.write_str(why),
            ProtectedPageFree { page } => {
                write!(f, "protected-page page {page} is free in its bitmap")
            }
            ContentsMissing { id, page } => write!(
                f,
                "protected page {id} committed by this single-sync commit did not arrive (page {page})"
            ),
            DataCheckNotAllocated { page } => write!(
                f,
                "a data check names page {page}, which is not an allocated regular page"
            ),
            DataMissing {
                first_page,
                page_count,
            } => write!(
                f,
                "the {page_count} page(s) from page {first_page} filled by this single-sync commit did not arrive"
            ),
        }
    }
}

/// Why the decision table (SPEC.md §4.2) passed over a metadata copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The copy is not well-formed.
    Malformed { slot: MetaSlot, error: DecodeError },
    /// The copy is well-formed but does not load (§4.1).
    DoesNotLoad {
        slot: MetaSlot,
        generation: u64,
        why: LoadRejection,
    },
    /// The copy the superblock names is well-formed but not the one it recorded.
    NotTheNamedCopy {
        slot: MetaSlot,
        superblock_generation: u64,
    },
    /// The other copy is not the commit in flight after the superblock's.
    NotTheSuccessor {
        slot: MetaSlot,
        generation: u64,
        superblock_generation: u64,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed { slot, error } => write!(f, "copy {slot}: {error}"),
            Rejection::DoesNotLoad {
                slot,
                generation,
                why,
            } => write!(f, "copy {slot} (generation {generation}): {why}"),
            Rejection::NotTheNamedCopy {
                slot,
                superblock_generation,
            } => write!(
                f,
                "copy {slot}: does not match the superblock (generation {superblock_generation})"
            ),
            Rejection::NotTheSuccessor {
                slot,
                generation,
                superblock_generation,
            } => write!(
                f,
                "copy {slot}: generation {generation} is not the successor of the superblock's {superblock_generation}; using it would roll back acknowledged commits"
            ),
        }
    }
}

/// The copies the table passed over, in the order it tried them; displays as `a; b`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rejections(pub(crate) Vec<Rejection>);

impl fmt::Display for Rejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, rejection) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{rejection}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{LoadRejection, Rejection, Rejections};
    use crate::format::{DecodeError, MetaSlot, PageKind, Reason};

    /// The detail of `CorruptMetadata` reads as before the reasons were typed.
    #[test]
    fn rejections_read_as_the_details_they_feed() {
        let rejections = Rejections(vec![
            Rejection::NotTheNamedCopy {
                slot: MetaSlot::A,
                superblock_generation: 7,
            },
            Rejection::DoesNotLoad {
                slot: MetaSlot::B,
                generation: 8,
                why: LoadRejection::GroupSlotsTie {
                    group: 3,
                    generation: 8,
                },
            },
            Rejection::Malformed {
                slot: MetaSlot::B,
                error: DecodeError::new(PageKind::Meta, Reason::BadChecksum),
            },
        ]);
        assert_eq!(
            rejections.to_string(),
            "copy A: does not match the superblock (generation 7); \
             copy B (generation 8): both slots of group 3 claim generation 8; \
             copy B: checksum mismatch"
        );
        assert_eq!(Rejections::default().to_string(), "");
    }
}
