//! Where format 3's group table pages live (docs/scale-design.md §2.3): *extents* at positions
//! computable from the page size alone.
//!
//! Table page `t` holds the entries of groups `t·E_t .. (t+1)·E_t` and has two slot pages, like a
//! group. It belongs to extent `e = ⌊log₂(t + 1)⌋`, which holds the `2^e` table pages
//! `2^e − 1 .. 2^(e+1) − 1`, both slots of each: `2^(e+1)` pages. Extent `e` starts in group
//! `k_e = (2^e − 1)·E_t` (the first group whose entry it holds), at the first page after the
//! group's slot pages (page 5 in group 0, after the superblock, the metadata copies and group 0's
//! slots), and runs over consecutive pages, skipping the two slot pages of every group it
//! crosses. Slot `s` of table page `t` is page `2(t − 2^e + 1) + s` of its extent.
//!
//! Every extent ends long before the next one starts: extent `e + 1` starts `2^e·E_t ≥ 62`
//! groups after extent `e`, whose `2^(e+1)` pages span at most `2^(e+1) / (G − 2) + 1` groups.
//! So the only extent that can reach a page of group `k` is the last one starting at or before
//! `k`, found with one `leading_zeros`: what makes [`Geometry::table_slot_at`] O(1).

use std::ops::Range;

use super::Geometry;
use super::geometry::GROUP0_SLOT_PAGES;
use super::table::{TABLE_ENTRY_BYTES, TABLE_HEADER_BYTES};

/// Offset of extent 0 in group 0: after pages 0–4 (the superblock, the metadata copies and
/// group 0's slots).
const GROUP0_EXTENT_OFFSET: u64 = GROUP0_SLOT_PAGES[1] + 1;
/// Offset of every other extent in its first group: after the group's two slot pages.
const GROUP_EXTENT_OFFSET: u64 = 2;

impl Geometry {
    /// Group entries one table page holds: `E_t = (P − 32) / 16` (62 at 1 KiB, 254 at 4 KiB).
    pub fn table_entries_per_page(self) -> u64 {
        (self.page_size() - TABLE_HEADER_BYTES as u64) / TABLE_ENTRY_BYTES as u64
    }

    /// Table pages a file of `group_count` groups needs: `⌈M / E_t⌉`.
    pub fn table_page_count(self, group_count: u64) -> u64 {
        group_count.div_ceil(self.table_entries_per_page())
    }

    /// The most table pages any file of this page size needs.
    pub fn max_table_page_count(self) -> u64 {
        self.table_page_count(self.group_count(self.max_page_count()))
    }

    /// The extent that holds table page `t`: `⌊log₂(t + 1)⌋`.
    pub fn table_extent(self, table_page: u64) -> u32 {
        assert!(
            table_page < self.max_table_page_count(),
            "table page {table_page} beyond the largest file"
        );
        (table_page + 1).ilog2()
    }

    /// The group extent `e` starts in: `(2^e − 1)·E_t`.
    pub fn extent_start_group(self, extent: u32) -> u64 {
        ((1u64 << extent) - 1) * self.table_entries_per_page()
    }

    /// Pages in extent `e`: `2^(e+1)`.
    pub fn extent_page_count(self, extent: u32) -> u64 {
        2u64 << extent
    }

    /// The first page of extent `e`.
    pub fn extent_start_page(self, extent: u32) -> u64 {
        let group = self.extent_start_group(extent);
        self.group_start(group) + extent_offset(group)
    }

    /// Page `j` of extent `e` (`j < 2^(e+1)`): consecutive pages from the extent's start,
    /// skipping the two slot pages of every group crossed.
    pub fn extent_page(self, extent: u32, j: u64) -> u64 {
        assert!(
            j < self.extent_page_count(extent),
            "page {j} of an extent of {} pages",
            self.extent_page_count(extent)
        );
        let group = self.extent_start_group(extent);
        let offset = extent_offset(group);
        let g = self.pages_per_group();
        let in_first_group = g - offset;
        if j < in_first_group {
            return self.group_start(group) + offset + j;
        }
        let rest = j - in_first_group;
        let per_group = g - GROUP_EXTENT_OFFSET;
        self.group_start(group + 1 + rest / per_group) + GROUP_EXTENT_OFFSET + rest % per_group
    }

    /// The page holding slot `slot` (0 or 1) of table page `t`.
    pub fn table_slot_page(self, table_page: u64, slot: u8) -> u64 {
        assert!(slot < 2, "a table page has two slots, not {slot}");
        let extent = self.table_extent(table_page);
        let first = (1u64 << extent) - 1;
        self.extent_page(extent, 2 * (table_page - first) + u64::from(slot))
    }

    /// The extent whose region can reach group `group`: the last one starting at or before it.
    fn extent_reaching(self, group: u64) -> u32 {
        (group / self.table_entries_per_page() + 1).ilog2()
    }

    /// Which table slot `page` is, if it lies in an extent: `Some((t, s))`, used yet or not.
    /// The inverse of [`table_slot_page`](Self::table_slot_page); `None` for every other page.
    pub fn table_slot_at(self, page: u64) -> Option<(u64, u8)> {
        let j = self.extent_index_of(page)?;
        let extent = self.extent_reaching(self.group_of(page));
        let first = (1u64 << extent) - 1;
        Some((first + j / 2, (j % 2) as u8))
    }

    /// The index of `page` within the extent reaching its group, if it lies in that extent.
    fn extent_index_of(self, page: u64) -> Option<u64> {
        let group = self.group_of(page);
        let extent = self.extent_reaching(group);
        let start_group = self.extent_start_group(extent);
        let offset = extent_offset(start_group);
        let within = page - self.group_start(group);
        let j = if group == start_group {
            within.checked_sub(offset)?
        } else {
            let g = self.pages_per_group();
            let crossed = group - start_group - 1;
            let in_group = within.checked_sub(GROUP_EXTENT_OFFSET)?;
            (g - offset) + crossed * (g - GROUP_EXTENT_OFFSET) + in_group
        };
        (j < self.extent_page_count(extent)).then_some(j)
    }

    /// True if `page` lies in an extent (a table slot, used yet or not).
    pub fn is_table_page(self, page: u64) -> bool {
        self.extent_index_of(page).is_some()
    }

    /// The extent pages inside `group`, one run (empty for formats 1 and 2): an extent's pages in
    /// a group are consecutive and start right after the group's internal pages (at page 5 of
    /// group 0, page 2 of any other), where the extent starts or which it crosses into.
    pub fn table_pages_in_group(self, group: u64) -> Range<u64> {
        let first = self.group_start(group) + extent_offset(group);
        if !self.has_group_table() {
            return first..first;
        }
        let Some(j) = self.extent_index_of(first) else {
            return first..first;
        };
        let extent = self.extent_reaching(group);
        let left = self.extent_page_count(extent) - j;
        first..(first + left).min(self.group_start(group + 1))
    }

    /// The first page of `group` that can be a data page: past its slot pages (past pages 0–4
    /// in group 0) and, in format 3, past the extent pages in it (the group's end if an extent
    /// fills the rest of it). The group's internal pages are exactly those before it.
    pub fn first_data_page_of_group(self, group: u64) -> u64 {
        let internal_end = self.group_start(group) + extent_offset(group);
        if !self.has_group_table() {
            return internal_end;
        }
        self.table_pages_in_group(group).end
    }

    /// Extent pages below `page_count`: what format 3 adds to the internal pages of a file.
    /// Every extent before the one reaching the last page lies wholly below it (extents end long
    /// before the next starts); only that last extent can be cut.
    pub fn table_pages_below(self, page_count: u64) -> u64 {
        let Some(last) = page_count.checked_sub(1) else {
            return 0;
        };
        let extent = self.extent_reaching(self.group_of(last));
        let whole: u64 = (0..extent).map(|e| self.extent_page_count(e)).sum();
        let pages = self.extent_page_count(extent);
        let cut = if let Some(j) = self.extent_index_of(last) {
            j + 1
        } else if self.extent_start_page(extent) > last {
            0
        } else if self.extent_page(extent, pages - 1) < last {
            pages
        } else {
            // `last` is a slot page of a group the extent crosses.
            self.extent_pages_before(extent, last)
        };
        whole + cut
    }

    /// Pages of extent `e` below `page`, for a `page` inside the extent's span that is not one
    /// of its pages (a slot page of a group it crosses).
    fn extent_pages_before(self, extent: u32, page: u64) -> u64 {
        let start_group = self.extent_start_group(extent);
        let offset = extent_offset(start_group);
        let g = self.pages_per_group();
        let crossed = self.group_of(page) - start_group - 1;
        (g - offset) + crossed * (g - GROUP_EXTENT_OFFSET)
    }
}

/// Where an extent starts within its first group `group`.
fn extent_offset(group: u64) -> u64 {
    if group == 0 {
        GROUP0_EXTENT_OFFSET
    } else {
        GROUP_EXTENT_OFFSET
    }
}
