//! Geometry (SPEC.md §2.1): page numbers, groups and the layout arithmetic of one page size.

use super::directory::{DIRECTORY_ENTRY_BYTES, DIRECTORY_HEADER_BYTES};
use super::group::GROUP_HEADER_BYTES;
use super::meta::{LOG_ENTRY_BYTES, META_HEADER_BYTES};

/// Smallest supported page size in bytes.
pub const MIN_PAGE_SIZE: usize = 1024;
/// Largest supported page size in bytes (16 MiB).
pub const MAX_PAGE_SIZE: usize = 1 << 24;
/// Upper bound on the number of pages in one file (2^40), whatever the page size. Never the bound
/// that binds: [`MAX_FILE_BYTES`] allows `2^46 / P ≤ 2^36` pages for every supported page size `P`
/// (see [`Geometry::max_page_count`]).
pub const MAX_PAGE_COUNT: u64 = 1 << 40;
/// Upper bound on the length of one file in bytes (2^46 = 64 TiB): what a 64-bit address space maps.
pub const MAX_FILE_BYTES: u64 = 1 << 46;
/// Page 0: the superblock.
pub const SUPERBLOCK_PAGE: u64 = 0;
/// Pages 0, 1, 2 and the two slot pages of group 0 (3, 4) are never data pages.
pub const GROUP0_SLOT_PAGES: [u64; 2] = [3, 4];
/// The first page that can be a data page (pages 0-4 are the superblock, the metadata copies
/// and the slots of group 0).
pub const FIRST_DATA_PAGE: u64 = 5;
/// Smallest valid page count: pages 0-4 plus one data page.
pub const MIN_PAGE_COUNT: u64 = 6;

/// The first data page and the smallest file of format 3, where pages 5 and 6 hold table page 0
/// (docs/scale-design.md §2.3).
const FIRST_DATA_PAGE_WITH_TABLE: u64 = 7;

/// Layout arithmetic for one page size.
///
/// The file is divided into *groups* of `pages_per_group` consecutive pages. Group `k` covers
/// pages `[k * G, (k + 1) * G)` and owns two bitmap *slot* pages: pages 3 and 4 for group 0,
/// pages `k * G` and `k * G + 1` for every other group. In format 3 (designed in
/// docs/scale-design.md, not written yet: [`with_group_table`](Self::with_group_table)) the
/// group table's extents are internal pages too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    page_size: u64,
    pages_per_group: u64,
    group_table: bool,
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
            group_table: false,
        }
    }

    /// Geometry of format 3 for `page_size`: as [`new`](Self::new), with the group table's
    /// extents among the internal pages (docs/scale-design.md §2.3). The pager does not write
    /// format 3 yet; this layout is tested and fuzzed ahead of it.
    pub fn with_group_table(page_size: usize) -> Geometry {
        Geometry {
            group_table: true,
            ..Geometry::new(page_size)
        }
    }

    /// The geometry of a file of format `version` (3 and later: a group table).
    pub fn for_version(page_size: usize, version: u32) -> Geometry {
        if version >= 3 {
            Geometry::with_group_table(page_size)
        } else {
            Geometry::new(page_size)
        }
    }

    /// The format version this build writes for this layout: 3 with a group table, else 2.
    pub fn format_version(self) -> u32 {
        if self.group_table { 3 } else { 2 }
    }

    /// True for format 3's layout (a group table in extents).
    pub fn has_group_table(self) -> bool {
        self.group_table
    }

    /// The first page that can be a data page: [`FIRST_DATA_PAGE`] (5), or 7 in format 3, whose
    /// table page 0 takes pages 5 and 6.
    pub fn first_data_page(self) -> u64 {
        if self.group_table {
            FIRST_DATA_PAGE_WITH_TABLE
        } else {
            FIRST_DATA_PAGE
        }
    }

    /// The smallest valid page count: the internal pages of group 0 plus one data page.
    pub fn min_page_count(self) -> u64 {
        self.first_data_page() + 1
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
    /// [`min_page_count`](Self::min_page_count)).
    pub(super) fn round_down_to_valid(self, count: u64) -> u64 {
        let mut count = count;
        while !self.is_valid_page_count(count) {
            assert!(
                count > self.min_page_count(),
                "no valid page count below {count}"
            );
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

    /// True for pages the pager keeps for itself: 0-4 and the two slot pages of every group (and
    /// in format 3 the pages of the group table's extents).
    pub fn is_internal(self, page: u64) -> bool {
        page <= GROUP0_SLOT_PAGES[1]
            || page % self.pages_per_group < 2
            || (self.group_table && self.is_table_page(page))
    }

    /// A page count is valid when its last page is a data page: the last group then holds both
    /// its slot pages and one data page (and in format 3, the table pages of every group below
    /// it: docs/scale-design.md §2.3).
    pub fn is_valid_page_count(self, page_count: u64) -> bool {
        if !(self.min_page_count()..=MAX_PAGE_COUNT).contains(&page_count) {
            return false;
        }
        if page_count
            .checked_mul(self.page_size)
            .is_none_or(|bytes| bytes > MAX_FILE_BYTES)
        {
            return false;
        }
        !self.is_internal(page_count - 1)
    }

    /// Number of internal pages below `page_count` (which must be valid).
    pub fn internal_page_count(self, page_count: u64) -> u64 {
        // Pages 0-4, then two per further group, then the extents' pages.
        let table_pages = if self.group_table {
            self.table_pages_below(page_count)
        } else {
            0
        };
        5 + 2 * (self.group_count(page_count) - 1) + table_pages
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
