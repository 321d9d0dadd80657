//! The in-memory allocation state and the pure logic that changes it: applying a change to the
//! bitmap and the log, and choosing which groups a commit folds. No I/O here.

use crate::bitmap::Bitmap;
use crate::directory::Directory;
use crate::format::{
    DataCheck, DirectoryRoot, FIRST_DATA_PAGE, FORMAT_VERSION, Geometry, LogEntry, LogKind,
    MIN_FORMAT_VERSION, MetaPage, MetaSlot, TableEntry,
};
use crate::group_loads::{DamagedGroup, GroupLoads};
use crate::group_table::{GroupTable, TablePageSlot};

/// One step of a change: pages `first_page..end_page` become allocated or free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRun {
    pub(crate) first_page: u64,
    pub(crate) end_page: u64,
    pub(crate) kind: LogKind,
}

impl PageRun {
    /// Free runs covering `pages` (sorted, distinct), consecutive pages merged into one run.
    pub(crate) fn free_runs(pages: impl IntoIterator<Item = u64>) -> Vec<PageRun> {
        Self::try_free_runs(pages).unwrap_or_else(|page| panic!("page {page} freed twice"))
    }

    /// [`free_runs`](Self::free_runs) for sorted pages that may repeat: `Err` with the first
    /// (smallest) repeated page.
    pub(crate) fn try_free_runs(pages: impl IntoIterator<Item = u64>) -> Result<Vec<PageRun>, u64> {
        let mut runs: Vec<PageRun> = Vec::new();
        // The run being built, kept out of the vector so the loop stays in registers.
        let mut current: Option<(u64, u64)> = None;
        for page in pages {
            current = match current {
                Some((first, end)) if end == page => Some((first, end + 1)),
                Some((_, end)) if end - 1 == page => return Err(page),
                Some((first, end)) => {
                    runs.push(PageRun {
                        first_page: first,
                        end_page: end,
                        kind: LogKind::Free,
                    });
                    Some((page, page + 1))
                }
                None => Some((page, page + 1)),
            };
        }
        if let Some((first, end)) = current {
            runs.push(PageRun {
                first_page: first,
                end_page: end,
                kind: LogKind::Free,
            });
        }
        Ok(runs)
    }
}

/// The distinct values of `groups` (`len` of them, each below 2^40) with how often each occurs,
/// in no particular order: an open-addressing table of at least twice `len` slots, so counting
/// costs one hash and a probe or two per value (a map or a sort of the whole log cost several
/// times as much on every commit that overflows the log).
fn count_groups(groups: impl Iterator<Item = u64>, len: usize) -> Vec<(u64, usize)> {
    const EMPTY: u64 = u64::MAX;
    let slots = (2 * len).next_power_of_two().max(16);
    let shift = 64 - slots.trailing_zeros();
    let mut table: Vec<(u64, usize)> = vec![(EMPTY, 0); slots];
    for group in groups {
        debug_assert!(group != EMPTY);
        // Fibonacci hashing: the top bits of the product spread consecutive groups apart.
        let mut index = (group.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize;
        loop {
            let slot = &mut table[index];
            if slot.0 == group {
                slot.1 += 1;
                break;
            }
            if slot.0 == EMPTY {
                *slot = (group, 1);
                break;
            }
            index = (index + 1) & (slots - 1);
        }
    }
    table.retain(|slot| slot.0 != EMPTY);
    table
}

/// Division by the group size without a division instruction, for per-entry and per-id loops
/// ([`AllocState::plan_folds`], the validation of `free_bulk`). The group size is `G = 256 · d`
/// with `d = P / 32 − 1` (SPEC.md §2.1: `G = (P − 32) · 8`) and a page number is below 2^40, so
/// `page / G = (page >> 8) / d` with a numerator below 2^32; for those, `(n · ⌈2^64 / d⌉) >> 64`
/// is exactly `n / d` (Lemire, Kaser and Kurz, "Faster remainder by direct computation", 2019:
/// exact for 32-bit numerators and divisors with a 64-bit multiplier).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupDivider {
    multiplier: u64,
    pages_per_group: u64,
    geometry: Geometry,
}

impl GroupDivider {
    #[inline]
    pub(crate) fn new(geometry: Geometry) -> GroupDivider {
        let pages_per_group = geometry.pages_per_group();
        let divisor = pages_per_group >> 8;
        assert!(
            divisor << 8 == pages_per_group && divisor > 1 && !divisor.is_power_of_two(),
            "group size {pages_per_group} is not 256 times an odd number"
        );
        GroupDivider {
            // ⌈2^64 / d⌉ for a d that is not a power of two.
            multiplier: u64::MAX / divisor + 1,
            pages_per_group,
            geometry,
        }
    }

    /// [`Geometry::group_of`] for `page < 2^40`.
    #[inline]
    pub(crate) fn group_of(self, page: u64) -> u64 {
        debug_assert!(page < 1 << 40, "page {page} beyond the format's 2^40 pages");
        ((u128::from(page >> 8) * u128::from(self.multiplier)) >> 64) as u64
    }

    /// [`Geometry::is_internal`] for `page < 2^40`.
    #[inline]
    pub(crate) fn is_internal(self, page: u64) -> bool {
        page < FIRST_DATA_PAGE
            || page - self.group_of(page) * self.pages_per_group < 2
            || (self.geometry.has_group_table() && self.geometry.is_table_page(page))
    }
}

/// What a commit changes in memory once it is durable (SPEC.md §3.2 step 7). The commit starts
/// it with [`AllocState::begin_commit`], fills it in while it writes (steps 2 to 3), and hands it
/// to [`AllocState::committed`]: the one way memory learns of a commit.
#[derive(Debug)]
pub(crate) struct CommitRecord {
    /// `g + 1`.
    pub(crate) generation: u64,
    /// The copy `Y` written (step 3).
    pub(crate) active_meta: MetaSlot,
    pub(crate) materialized_groups: u64,
    /// The slot digest after the folds.
    pub(crate) slot_digest: u64,
    /// (group, slot, digest term) of every folded group, in increasing group order.
    pub(crate) folded_slots: Vec<(u64, u8, u64)>,
    /// The directory digest after the written blocks.
    pub(crate) directory_digest: u64,
    /// (block, slot, digest term) of every written directory block.
    pub(crate) directory_blocks: Vec<(u64, u8, u64)>,
    /// The data checks `Y` holds (single-sync, format 2): until the superblock names this
    /// commit, its pages must not change (SPEC.md §3.6.1).
    pub(crate) data_checks: Vec<DataCheck>,
    /// Format 3: the new entry of every folded group, in increasing group order.
    pub(crate) table_updates: Vec<(u64, TableEntry)>,
    /// Format 3: (table page, its new slot) of every table page written.
    pub(crate) table_written: Vec<(u64, TablePageSlot)>,
    /// Format 3: the table digest after the written table pages.
    pub(crate) table_digest: u64,
}

/// What the pager believes is committed (after a successful commit, exactly what is durable).
#[derive(Clone, Debug)]
pub(crate) struct AllocState {
    pub(crate) geometry: Geometry,
    // What commits record: set only by the constructors and [`AllocState::committed`].
    /// Generation of the last commit (0 before the first commit of a new file).
    generation: u64,
    /// The metadata copy holding `generation`.
    active_meta: MetaSlot,
    pub(crate) page_count: u64,
    materialized_groups: u64,
    /// Current slot (0 or 1) of each materialized group.
    group_slots: Vec<u8>,
    /// [`crate::format::slot_digest_term`] of each materialized group's current slot.
    group_terms: Vec<u64>,
    /// XOR of `group_terms`, as the metadata records it.
    slot_digest: u64,
    /// Format 3's group table (empty in formats 1 and 2).
    pub(crate) table: GroupTable,
    pub(crate) log: Vec<LogEntry>,
    /// The bits of every loaded group (SPEC.md §4.9); a group not loaded has zero words here
    /// (hidden from the search when its entry says it is full) and its bits in its pinned slot.
    pub(crate) bitmap: Bitmap,
    /// Which groups are loaded (format 3; every group is in formats 1 and 2).
    loads: GroupLoads,
    /// Where the next allocation search starts (next fit).
    pub(crate) next_fit_page: u64,
    /// The protected-page directory; the pages it owns are set in `bitmap`.
    pub(crate) directory: Directory,
    /// The data checks of the last commit while no superblock names it (SPEC.md §3.6.1): its
    /// pages are settled (the superblock written) before any of them may change.
    unsettled: Vec<DataCheck>,
    /// The file's format version (SPEC.md §2.2), which every superblock the pager writes keeps:
    /// [`FORMAT_VERSION`] for a file this build created. Data checks are written only at 2.
    format_version: u32,
}

impl AllocState {
    /// The state of a file that has never been committed: `page_count` pages, nothing
    /// materialized, only internal pages in use. The first commit writes copy A.
    pub(crate) fn new_file(geometry: Geometry, page_count: u64) -> AllocState {
        assert!(
            geometry.is_valid_page_count(page_count),
            "initial page count {page_count}"
        );
        let mut state = AllocState {
            geometry,
            generation: 0,
            active_meta: MetaSlot::B,
            page_count: 0,
            materialized_groups: 0,
            group_slots: Vec::new(),
            group_terms: Vec::new(),
            slot_digest: 0,
            table: GroupTable::default(),
            log: Vec::new(),
            bitmap: Bitmap::new(0),
            loads: GroupLoads::default(),
            next_fit_page: geometry.first_data_page(),
            directory: Directory::new(geometry),
            unsettled: Vec::new(),
            format_version: FORMAT_VERSION,
        };
        state.extend(page_count);
        state
    }

    /// The state recovery found committed (SPEC.md §4.1): copy `active_meta`, holding `meta`,
    /// whose materialized groups have the current slots `group_slots` with the digest terms
    /// `group_terms` (recovery checked their XOR against `meta.slot_digest`) and the bitmap
    /// `bitmap`, loaded from those slots, except for the groups `loads` says are not loaded
    /// (format 3: none is yet, recovery loads the ones it needs). The log and the directory are
    /// empty: recovery replays and loads them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn recovered(
        geometry: Geometry,
        meta: &MetaPage,
        active_meta: MetaSlot,
        group_slots: Vec<u8>,
        group_terms: Vec<u64>,
        bitmap: Bitmap,
        table: GroupTable,
        loads: GroupLoads,
    ) -> AllocState {
        assert!(
            group_slots.len() as u64 == meta.materialized_groups
                && group_terms.len() == group_slots.len(),
            "one current slot per materialized group"
        );
        let slot_digest = group_terms.iter().fold(0, |digest, term| digest ^ term);
        assert_eq!(
            slot_digest, meta.slot_digest,
            "recovery checks the slot digest before it builds the state"
        );
        let mut state = AllocState {
            geometry,
            generation: meta.generation,
            active_meta,
            page_count: meta.page_count,
            materialized_groups: meta.materialized_groups,
            group_slots,
            group_terms,
            slot_digest,
            table,
            log: Vec::new(),
            bitmap,
            loads,
            next_fit_page: geometry.first_data_page(),
            directory: Directory::new(geometry),
            unsettled: Vec::new(),
            format_version: FORMAT_VERSION,
        };
        state.hide_full_unloaded_groups();
        state
    }

    /// Hides the words of every group not loaded whose entry says it is full from the search
    /// (one call per run of such groups), so that allocation loads only groups with free pages.
    fn hide_full_unloaded_groups(&mut self) {
        let words_per_group = (self.geometry.pages_per_group() / 64) as usize;
        let mut run: Option<(u64, u64)> = None;
        let full = |state: &AllocState, group: u64| {
            state
                .table
                .entry(group)
                .is_some_and(|entry| entry.free_pages == 0)
        };
        let groups: Vec<u64> = self.loads.unloaded().filter(|&g| full(self, g)).collect();
        for group in groups {
            run = match run {
                Some((first, end)) if end == group => Some((first, group + 1)),
                Some((first, end)) => {
                    self.bitmap.hide_words(
                        first as usize * words_per_group,
                        end as usize * words_per_group,
                    );
                    Some((group, group + 1))
                }
                None => Some((group, group + 1)),
            };
        }
        if let Some((first, end)) = run {
            self.bitmap.hide_words(
                first as usize * words_per_group,
                end as usize * words_per_group,
            );
        }
    }

    /// Loads `group`'s bits from its pinned slot in `image` if they are not in memory yet (the
    /// lazy load of SPEC.md §4.9; the slot checked against its table entry once). Changes
    /// nothing a commit records: a loaded group holds what its slot holds.
    pub(crate) fn load_group(&mut self, group: u64, image: &[u8]) -> Result<(), DamagedGroup> {
        if self.loads.is_loaded(group) {
            return Ok(());
        }
        let entry = *self
            .table
            .entry(group)
            .expect("a group not loaded has a table entry");
        let bits = self.loads.slot_bits(image, self.geometry, group, &entry)?;
        let words_per_group = (self.geometry.pages_per_group() / 64) as usize;
        let first_word = group as usize * words_per_group;
        // The last group may end past the file: the slot's bits for pages past it must be clear
        // (SPEC.md §4.1 step 3), checked before anything changes.
        let inside_pages = (self.page_count - self.geometry.group_start(group))
            .min(self.geometry.pages_per_group());
        if !bits_clear_from(bits, inside_pages, self.geometry.pages_per_group()) {
            return Err(DamagedGroup {
                group,
                page: self.geometry.slot_page(group, entry.slot),
            });
        }
        let inside_words = (inside_pages.div_ceil(64) as usize).min(words_per_group);
        let loaded = self
            .bitmap
            .load_le_words(first_word, &bits[..inside_words * 8]);
        assert!(
            loaded,
            "group {group}'s bits past the file were checked clear"
        );
        self.loads.mark_loaded(self.geometry, group, &entry);
        Ok(())
    }

    /// Loads every group not loaded yet ([`load_group`](Self::load_group)).
    pub(crate) fn load_all_groups(&mut self, image: &[u8]) -> Result<(), DamagedGroup> {
        let groups: Vec<u64> = self.loads.unloaded().collect();
        for group in groups {
            self.load_group(group, image)?;
        }
        Ok(())
    }

    /// Checks the pinned slot of every group not loaded against its entry, loading none (what
    /// loading each would find, through `&self`).
    pub(crate) fn check_unloaded_groups(&self, image: &[u8]) -> Result<(), DamagedGroup> {
        for group in self.loads.unloaded() {
            let entry = self
                .table
                .entry(group)
                .expect("a group not loaded has a table entry");
            self.loads.slot_bits(image, self.geometry, group, entry)?;
        }
        Ok(())
    }

    /// Whether `page` (inside the file) is in use: its bit in memory, or in its group's pinned
    /// slot in `image` for a group not loaded (checked once, nothing loaded).
    #[inline]
    pub(crate) fn page_in_use(&self, page: u64, image: &[u8]) -> Result<bool, DamagedGroup> {
        // A group not loaded has zero words in memory: a set bit is the answer.
        if self.bitmap.get(page) {
            return Ok(true);
        }
        let group = self.geometry.group_of(page);
        if self.loads.is_loaded(group) {
            return Ok(false);
        }
        let entry = self
            .table
            .entry(group)
            .expect("a group not loaded has a table entry");
        let bits = self.loads.slot_bits(image, self.geometry, group, entry)?;
        let index = page - self.geometry.group_start(group);
        let byte = bits
            .get((index / 8) as usize)
            .expect("a slot's bitmap holds the whole group");
        Ok(byte >> (index % 8) & 1 == 1)
    }

    /// Bits of the group not loaded `group`, from its checked pinned slot: the little-endian
    /// bitmap bytes (for the scan).
    pub(crate) fn unloaded_group_bits<'a>(
        &self,
        group: u64,
        image: &'a [u8],
    ) -> Option<Result<&'a [u8], DamagedGroup>> {
        if self.loads.is_loaded(group) {
            return None;
        }
        let entry = self.table.entry(group)?;
        Some(self.loads.slot_bits(image, self.geometry, group, entry))
    }

    /// The last commit's data checks, while no superblock names it (SPEC.md §3.6.1).
    pub(crate) fn unsettled(&self) -> &[DataCheck] {
        &self.unsettled
    }

    /// Whether `page` lies in a run of [`unsettled`](Self::unsettled).
    pub(crate) fn is_unsettled(&self, page: u64) -> bool {
        // Sorted by first page and disjoint (`committed`): the only run that can hold `page` is
        // the last one starting at or before it. Every `get_mut` asks, so no scan.
        let after = self
            .unsettled
            .partition_point(|check| check.first_page <= page);
        after > 0 && page < self.unsettled[after - 1].end_page()
    }

    /// The superblock now names the last commit: its data checks no longer bind its pages.
    pub(crate) fn settled(&mut self) {
        self.unsettled.clear();
    }

    /// The file's format version (SPEC.md §2.2).
    pub(crate) fn format_version(&self) -> u32 {
        self.format_version
    }

    /// Records the format version recovery found in the superblock (SPEC.md §4.3 step 2 keeps
    /// it; a file whose superblock is damaged gets [`FORMAT_VERSION`]).
    pub(crate) fn set_format_version(&mut self, version: u32) {
        assert!(
            (MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version),
            "format version {version}"
        );
        self.format_version = version;
    }

    /// Generation of the last commit (0 before the first commit of a new file).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The metadata copy holding [`generation`](Self::generation).
    pub(crate) fn active_meta(&self) -> MetaSlot {
        self.active_meta
    }

    /// Groups `0..materialized_groups()` have slot pages on disk; later ones are fresh.
    pub(crate) fn materialized_groups(&self) -> u64 {
        self.materialized_groups
    }

    /// Grows the in-memory view to `page_count` pages; new groups are fresh (only their slot
    /// pages in use).
    pub(crate) fn extend(&mut self, page_count: u64) {
        assert!(page_count >= self.page_count, "page count only grows");
        assert!(
            self.geometry.is_valid_page_count(page_count),
            "page count {page_count} invalid"
        );
        let old_groups = self.geometry.group_count(self.page_count);
        self.bitmap.grow(page_count);
        self.page_count = page_count;
        for group in old_groups..self.geometry.group_count(page_count) {
            self.mark_fresh_group(group);
        }
    }

    /// Makes room in memory for an [`extend`](Self::extend) to `page_count` pages, so that it
    /// cannot fail; `Err` with the bytes asked for when the memory cannot be had.
    pub(crate) fn try_reserve_extend(&mut self, page_count: u64) -> Result<(), u64> {
        self.bitmap.try_reserve(page_count)
    }

    /// Undoes an [`extend`](Self::extend) from `page_count` pages that nothing was allocated in.
    pub(crate) fn truncate(&mut self, page_count: u64) {
        assert!(
            page_count <= self.page_count && self.geometry.is_valid_page_count(page_count),
            "truncate to {page_count} pages from {}",
            self.page_count
        );
        assert!(
            self.geometry.group_count(page_count) >= self.materialized_groups,
            "truncate would drop a materialized group"
        );
        self.bitmap.truncate(page_count);
        self.page_count = page_count;
        // The group cut in two (if any) keeps its internal bits: they lie below `page_count`.
        self.next_fit_page = self.next_fit_page.min(page_count);
    }

    /// Sets the internal bits of a group that has no slot page yet: the pages before its first
    /// data page (which a valid page count keeps inside the file).
    pub(crate) fn mark_fresh_group(&mut self, group: u64) {
        let start = self.geometry.group_start(group);
        let end = self.geometry.first_data_page_of_group(group);
        assert!(
            end < self.page_count,
            "group {group}'s internal pages past the file"
        );
        self.bitmap.set_range(start, end);
    }

    /// Pages that hold user data or are free for it.
    pub(crate) fn data_page_count(&self) -> u64 {
        self.geometry.data_page_count(self.page_count)
    }

    pub(crate) fn free_page_count(&self) -> u64 {
        self.page_count - self.bitmap.count_ones() - self.loads.unloaded_used_pages()
    }

    /// Allocated regular pages: allocated data pages not owned by the protected-page directory.
    pub(crate) fn allocated_data_page_count(&self) -> u64 {
        self.data_page_count() - self.free_page_count() - self.directory.owned_page_count()
    }

    /// True for an allocated regular page (never for internal or protected-page pages); a group
    /// not loaded is read from its pinned slot in `image`.
    pub(crate) fn is_allocated_data_page(
        &self,
        page: u64,
        image: &[u8],
    ) -> Result<bool, DamagedGroup> {
        Ok(page < self.page_count
            && !self.geometry.is_internal(page)
            && self.page_in_use(page, image)?
            && !self.directory.owns(page))
    }

    /// Finds `count` free pages by next fit from `next_fit_page`, wrapping once, as runs, each
    /// inside one group. Returns `Ok(None)` if there are fewer than `count` free pages. Loads
    /// (from `image`) each group not loaded that the search reaches; `Err` for one whose pinned
    /// slot is damaged (then the groups loaded so far stay loaded, which changes nothing a
    /// commit records).
    pub(crate) fn find_free_runs(
        &mut self,
        count: u64,
        image: &[u8],
    ) -> Result<Option<Vec<PageRun>>, DamagedGroup> {
        if count > self.free_page_count() {
            return Ok(None);
        }
        let mut runs = Vec::new();
        let mut remaining = count;
        let start = self.next_fit_page.min(self.page_count);
        let mut cursor = start;
        let mut wrapped = false;
        while remaining > 0 {
            let Some(first) = self
                .bitmap
                .next_zero(cursor)
                .filter(|&p| !wrapped || p < start)
            else {
                assert!(
                    !wrapped,
                    "free count says {count} pages are free but the bitmap disagrees"
                );
                wrapped = true;
                cursor = 0;
                continue;
            };
            let group = self.geometry.group_of(first);
            if !self.loads.is_loaded(group) {
                // Its words in memory are zero. A group its entry counts full is passed by
                // unread (its words are hidden from the summary, but a summary rebuilt by growth
                // shows them again); any other is loaded, then searched from the cursor.
                if self.table.entry(group).is_some_and(|e| e.free_pages == 0) {
                    cursor = self.geometry.group_start(group + 1);
                } else {
                    self.load_group(group, image)?;
                }
                continue;
            }
            let limit = if wrapped { start } else { self.page_count };
            // The run ends at the first page in use, the limit, the group's end (the next
            // group may not be loaded, its words zero) or the count, whichever comes first;
            // only the words up to there are read.
            let group_end = self.geometry.group_start(group + 1);
            let bound = limit.min(first + remaining).min(group_end);
            let end = self.bitmap.next_one_before(first, bound).unwrap_or(bound);
            runs.push(PageRun {
                first_page: first,
                end_page: end,
                kind: LogKind::Alloc,
            });
            remaining -= end - first;
            cursor = end;
        }
        Ok(Some(runs))
    }

    /// Where the next allocation of `count` pages will likely start, for a hint only: the pages
    /// from the first page free in memory at or after the next-fit cursor, up to `count` of
    /// them, clipped to that page's group and the file. Loads nothing, so it may name pages of
    /// a group not loaded (its words read free in memory) or stop short of what the search
    /// takes; `None` when nothing is free past the cursor or `count` is 0.
    pub(crate) fn next_free_pages_hint(&self, count: u64) -> Option<std::ops::Range<u64>> {
        if count == 0 {
            return None;
        }
        let first = self
            .bitmap
            .next_zero(self.next_fit_page.min(self.page_count))?;
        let group_end = self.geometry.group_start(self.geometry.group_of(first) + 1);
        let end = first
            .saturating_add(count)
            .min(group_end)
            .min(self.page_count);
        assert!(
            first < end,
            "a free page {first} below the page count and its group's end gives a run"
        );
        Some(first..end)
    }

    /// Applies `runs` in order to the bitmap and appends them to the log (split per group,
    /// merged with or cancelled against the last entry where that keeps replay exact).
    pub(crate) fn apply(&mut self, runs: &[PageRun]) {
        for run in runs {
            assert!(
                run.first_page < run.end_page && run.end_page <= self.page_count,
                "run {run:?} outside the file of {} pages",
                self.page_count
            );
            assert!(
                self.loads.is_loaded(self.geometry.group_of(run.first_page))
                    && self
                        .loads
                        .is_loaded(self.geometry.group_of(run.end_page - 1)),
                "run {run:?} changes a group that is not loaded"
            );
            match run.kind {
                LogKind::Alloc => self.bitmap.set_range(run.first_page, run.end_page),
                LogKind::Free => self.bitmap.clear_range(run.first_page, run.end_page),
            }
            let mut first = run.first_page;
            while first < run.end_page {
                let group_end = self.geometry.group_start(self.geometry.group_of(first) + 1);
                let end = run.end_page.min(group_end).min(first + u64::from(u32::MAX));
                self.append_log(first, end, run.kind);
                first = end;
            }
            if run.kind == LogKind::Alloc {
                self.next_fit_page = run.end_page;
            }
        }
    }

    fn append_log(&mut self, first: u64, end: u64, kind: LogKind) {
        assert!(
            !self.geometry.is_internal(first) && !self.geometry.is_internal(end - 1),
            "log entry {first}..{end} touches an internal page"
        );
        if let Some(last) = self.log.last_mut() {
            let same_group =
                self.geometry.group_of(last.first_page) == self.geometry.group_of(first);
            let last_end = last.end_page();
            if same_group
                && last.kind == kind
                && last_end == first
                && let Ok(count) = u32::try_from(end - last.first_page)
            {
                last.page_count = count;
                return;
            }
            // The opposite of the tail (or head) of the last entry undoes it: shrinking the entry
            // replays to the same bitmap, because the last entry is the newest word on these pages.
            if same_group && last.kind != kind {
                if end == last_end && first >= last.first_page {
                    last.page_count = (first - last.first_page) as u32;
                    if last.page_count == 0 {
                        self.log.pop();
                    }
                    return;
                }
                if first == last.first_page && end <= last_end {
                    last.first_page = end;
                    last.page_count = (last_end - end) as u32;
                    if last.page_count == 0 {
                        self.log.pop();
                    }
                    return;
                }
            }
        }
        self.log.push(LogEntry {
            first_page: first,
            page_count: (end - first) as u32,
            kind,
        });
    }

    /// Chooses the groups the next commit writes as slot pages ("folds"), and removes their log
    /// entries:
    ///
    /// * every group without a slot on disk ("fresh", at or past `materialized_groups`) that the
    ///   log touches is materialized now, together with the fresh groups below it (groups
    ///   materialize in order), so the log never describes a fresh group after a commit and no
    ///   later commit pays for an earlier one's fresh groups;
    /// * when the rest of the log would not fit in a metadata page, the materialized groups with
    ///   the most entries are folded until it fits.
    ///
    /// `materialize_all` materializes every group (the first commit of a new file).
    pub(crate) fn plan_folds(&mut self, materialize_all: bool, reserved: usize) -> Vec<u64> {
        let geometry = self.geometry;
        assert!(
            reserved <= geometry.log_capacity() / 2,
            "{reserved} log entries reserved for data checks"
        );
        let capacity = geometry.log_capacity() - reserved;
        let materialized = self.materialized_groups;
        // Pages at or past `fresh_start` lie in fresh groups: comparing first pages with it
        // classifies an entry without dividing by the group size.
        let fresh_start = geometry.group_start(materialized);
        let mut materialized_entries = 0usize;
        let mut highest_fresh_page: Option<u64> = None;
        for entry in &self.log {
            if entry.first_page < fresh_start {
                materialized_entries += 1;
            } else {
                highest_fresh_page = highest_fresh_page.max(Some(entry.first_page));
            }
        }
        let highest_fresh = if materialize_all {
            Some(geometry.group_count(self.page_count) - 1)
        } else {
            highest_fresh_page.map(|page| geometry.group_of(page))
        };
        if highest_fresh.is_none() && materialized_entries <= capacity {
            // The common commit: no fresh group touched and the log fits. Nothing to fold.
            return Vec::new();
        }
        let mut folds: Vec<u64> = match highest_fresh {
            Some(highest) => (materialized..=highest).collect(),
            None => Vec::new(),
        };
        if materialized_entries > capacity {
            folds.extend(self.overflow_folds(fresh_start, materialized_entries, capacity));
        }
        folds.sort_unstable();
        self.remove_folded_entries(&folds);
        assert!(
            self.log.len() <= capacity,
            "log still over capacity after folding"
        );
        folds
    }

    /// The materialized groups to fold so that the log entries of materialized groups
    /// (`materialized_entries` of them, more than the log capacity) fit: most entries first, the
    /// lowest group on ties, until the rest fits.
    fn overflow_folds(
        &self,
        fresh_start: u64,
        materialized_entries: usize,
        capacity: usize,
    ) -> Vec<u64> {
        let geometry = self.geometry;
        let divider = GroupDivider::new(geometry);
        let groups = self
            .log
            .iter()
            .filter(|entry| entry.first_page < fresh_start)
            .map(|entry| divider.group_of(entry.first_page));
        // (group, entries), in no particular order.
        let mut counts = count_groups(groups, materialized_entries);
        // Most entries first, the lowest group breaks ties: a total order (groups are distinct),
        // so picking the best one at a time and sorting give the same sequence. A commit
        // usually needs one or two folds: pick those by scanning; sort only for many.
        let better = |a: &(u64, usize), b: &(u64, usize)| a.1 > b.1 || (a.1 == b.1 && a.0 < b.0);
        const SCANNED_PICKS: usize = 4;
        let mut remaining = materialized_entries;
        let mut folds = Vec::new();
        while remaining > capacity && folds.len() < SCANNED_PICKS {
            let mut best = 0;
            for index in 1..counts.len() {
                if better(&counts[index], &counts[best]) {
                    best = index;
                }
            }
            let (group, count) = counts.swap_remove(best);
            folds.push(group);
            remaining -= count;
        }
        if remaining > capacity {
            counts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (group, count) in counts {
                if remaining <= capacity {
                    break;
                }
                folds.push(group);
                remaining -= count;
            }
        }
        folds
    }

    /// Drops the log entries of the groups in `folds` (sorted, distinct).
    fn remove_folded_entries(&mut self, folds: &[u64]) {
        if folds.is_empty() {
            return;
        }
        let geometry = self.geometry;
        // First pages of the folded groups, and of the groups after them: an entry is folded
        // when its first page lies in one of these half-open ranges. Compared, not divided.
        let starts: Vec<u64> = folds.iter().map(|&g| geometry.group_start(g)).collect();
        self.log.retain(|entry| {
            let after = starts.partition_point(|&start| start <= entry.first_page);
            // `after > 0`: the entry starts at or past the first page of fold `after − 1`; it is
            // in that group when it starts before the group's end.
            after == 0 || entry.first_page >= starts[after - 1] + geometry.pages_per_group()
        });
    }

    /// The record of a commit of this state at `generation` that has written nothing yet: the
    /// digests and the materialized groups as they are, the other metadata copy.
    pub(crate) fn begin_commit(&self, generation: u64) -> CommitRecord {
        CommitRecord {
            generation,
            active_meta: self.active_meta.other(),
            materialized_groups: self.materialized_groups,
            slot_digest: self.slot_digest,
            folded_slots: Vec::new(),
            directory_digest: self.directory.digest,
            directory_blocks: Vec::new(),
            data_checks: Vec::new(),
            table_updates: Vec::new(),
            table_written: Vec::new(),
            table_digest: self.table.digest(),
        }
    }

    /// Takes the state `record` describes as committed (SPEC.md §3.2 step 7): the generation
    /// advances by exactly one, the written copy becomes the active one, the folded groups' and
    /// written directory blocks' new slots become current.
    pub(crate) fn committed(&mut self, record: CommitRecord) {
        assert_eq!(
            self.generation.checked_add(1),
            Some(record.generation),
            "a commit advances the generation by exactly one"
        );
        assert!(
            record.materialized_groups >= self.materialized_groups
                && record.materialized_groups <= self.geometry.group_count(self.page_count),
            "materialized groups {} -> {} in a file of {} groups",
            self.materialized_groups,
            record.materialized_groups,
            self.geometry.group_count(self.page_count)
        );
        self.directory
            .committed(&record.directory_blocks, record.directory_digest);
        self.generation = record.generation;
        self.active_meta = record.active_meta;
        self.unsettled = record.data_checks;
        self.unsettled
            .sort_unstable_by_key(|check| check.first_page);
        self.slot_digest = record.slot_digest;
        for (group, slot, term) in record.folded_slots {
            let index = group as usize;
            if index < self.group_slots.len() {
                self.group_slots[index] = slot;
                self.group_terms[index] = term;
            } else {
                assert_eq!(index, self.group_slots.len(), "groups materialize in order");
                self.group_slots.push(slot);
                self.group_terms.push(term);
            }
        }
        self.materialized_groups = record.materialized_groups;
        if self.geometry.has_group_table() {
            self.table
                .committed(&record.table_updates, &record.table_written);
            assert_eq!(
                self.table.digest(),
                record.table_digest,
                "the table digest the copy records"
            );
        }
        assert!(
            self.group_slots.len() as u64 == self.materialized_groups
                && self.group_terms.len() == self.group_slots.len(),
            "one current slot per materialized group"
        );
    }

    /// The current slot of materialized `group` and its digest term; `None` for a fresh group.
    pub(crate) fn group_slot(&self, group: u64) -> Option<(u8, u64)> {
        let index = usize::try_from(group).ok()?;
        Some((*self.group_slots.get(index)?, *self.group_terms.get(index)?))
    }

    /// The metadata page that a commit of this state at `generation` writes.
    pub(crate) fn meta_page(
        &self,
        generation: u64,
        slot_digest: u64,
        materialized: u64,
        directory: DirectoryRoot,
        single_sync: bool,
    ) -> MetaPage {
        MetaPage {
            generation,
            page_count: self.page_count,
            materialized_groups: materialized,
            slot_digest,
            log: self.log.clone(),
            directory,
            single_sync,
            data_checks: Vec::new(),
            table_digest: 0,
        }
    }

    /// The bitmap words of `group` (loaded), as its slot page stores them.
    pub(crate) fn group_words(&self, group: u64) -> Vec<u64> {
        assert!(self.loads.is_loaded(group), "group {group} folded unloaded");
        let words_per_group = (self.geometry.pages_per_group() / 64) as usize;
        self.bitmap
            .words(group as usize * words_per_group, words_per_group)
    }
}

/// Whether bits `from..end` of little-endian bitmap bytes `bits` are all clear.
fn bits_clear_from(bits: &[u8], from: u64, end: u64) -> bool {
    (from..end).all(|index| {
        bits.get((index / 8) as usize)
            .is_some_and(|byte| byte >> (index % 8) & 1 == 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AllocState {
        AllocState::new_file(Geometry::new(1024), 64)
    }

    fn alloc(first: u64, end: u64) -> PageRun {
        PageRun {
            first_page: first,
            end_page: end,
            kind: LogKind::Alloc,
        }
    }

    fn free(first: u64, end: u64) -> PageRun {
        PageRun {
            first_page: first,
            end_page: end,
            kind: LogKind::Free,
        }
    }

    #[test]
    fn a_commit_s_data_checks_are_unsettled_until_settled_whatever_their_order() {
        let mut s = state();
        let check = |first_page, page_count| DataCheck {
            first_page,
            page_count,
            crc: 0,
        };
        let mut record = s.begin_commit(1);
        // Next fit wraps: runs need not come in page order.
        record.data_checks = vec![check(40, 3), check(9, 1), check(20, 5)];
        s.committed(record);
        let unsettled: Vec<u64> = (0..64).filter(|&page| s.is_unsettled(page)).collect();
        assert_eq!(unsettled, [9, 20, 21, 22, 23, 24, 40, 41, 42]);
        s.settled();
        assert!((0..64).all(|page| !s.is_unsettled(page)));
        // The next commit replaces them (none here).
        let mut record = s.begin_commit(2);
        record.data_checks = vec![check(30, 1)];
        s.committed(record);
        assert!(s.is_unsettled(30));
        s.committed(s.begin_commit(3));
        assert!(!s.is_unsettled(30));
    }

    /// A recovered format-3 state of six groups, none loaded, whose entries count 5, 0, 3, 0, 0
    /// and 7 free pages: the search for a free page meets only groups with free pages (the full
    /// ones' words are hidden), and counts come from the entries.
    #[test]
    fn a_recovered_state_hides_its_full_groups_from_the_search() {
        let geometry = Geometry::with_group_table(1024);
        let per_group = geometry.pages_per_group();
        let page_count = 6 * per_group;
        let free = [5u32, 0, 3, 0, 0, 7];
        let entries: Vec<TableEntry> = free
            .iter()
            .map(|&free_pages| TableEntry {
                generation: 1,
                checksum: 0,
                slot: 0,
                free_pages,
            })
            .collect();
        let terms: Vec<u64> = (0..6)
            .map(|group| crate::format::slot_digest_term(group, 1, 0))
            .collect();
        let digest = terms.iter().fold(0, |d, t| d ^ t);
        let meta = AllocState::new_file(geometry, page_count).meta_page(
            1,
            digest,
            6,
            DirectoryRoot::default(),
            false,
        );
        let page = TablePageSlot {
            slot: 0,
            generation: 1,
            checksum: 0,
        };
        let table = GroupTable::recovered(geometry, entries.clone(), vec![page]);
        let loads = GroupLoads::none_loaded(geometry, &entries);
        let s = AllocState::recovered(
            geometry,
            &meta,
            MetaSlot::A,
            vec![0; 6],
            terms,
            Bitmap::new(page_count),
            table,
            loads,
        );
        assert_eq!(s.free_page_count(), 15);
        // In memory every word reads as zero (nothing loaded). With the last word before group k
        // full, a search from it goes by the summary: to the first group from k on whose entry
        // counts free pages.
        let mut s = s;
        let landing: Vec<Option<u64>> = (1..6)
            .map(|group| {
                let last_word = group * per_group - 64;
                s.bitmap.set_range(last_word, last_word + 64);
                s.bitmap.next_zero(last_word).map(|p| p / per_group)
            })
            .collect();
        assert_eq!(landing, [Some(2), Some(2), Some(5), Some(5), Some(5)]);
        // Group 0 (free pages) is not hidden: past its full first word, its second.
        s.bitmap.set_range(0, 64);
        assert_eq!(s.bitmap.next_zero(0), Some(64));
    }

    /// `bits_clear_from`: bit `i` is byte `i / 8`, bit `i % 8`, least significant first.
    #[test]
    fn bits_clear_from_reads_little_endian_bits() {
        let bits = [0b0000_0100u8, 0, 0b1000_0000];
        assert!(!bits_clear_from(&bits, 0, 24));
        assert!(!bits_clear_from(&bits, 2, 3));
        assert!(bits_clear_from(&bits, 3, 23));
        assert!(!bits_clear_from(&bits, 3, 24));
        assert!(bits_clear_from(&bits, 0, 2));
        assert!(
            !bits_clear_from(&bits, 20, 25),
            "past the bytes is not clear"
        );
    }

    #[test]
    fn new_file_has_only_internal_pages_in_use() {
        let s = state();
        assert_eq!(s.bitmap.count_ones(), 5);
        assert_eq!(s.free_page_count(), 59);
        assert_eq!(s.allocated_data_page_count(), 0);
    }

    #[test]
    fn sequential_allocs_merge_into_one_entry() {
        let mut s = state();
        for page in 5..20 {
            s.apply(&[alloc(page, page + 1)]);
        }
        assert_eq!(s.log.len(), 1);
        assert_eq!(s.log[0].page_count, 15);
        s.apply(&[free(19, 20)]);
        assert_eq!(
            s.log[0].page_count, 14,
            "freeing the tail shrinks the entry"
        );
        s.apply(&[free(5, 6)]);
        assert_eq!((s.log[0].first_page, s.log[0].page_count), (6, 13));
        s.apply(&[free(10, 11)]);
        assert_eq!(s.log.len(), 2, "a hole in the middle needs its own entry");
    }

    #[test]
    fn next_fit_wraps_once() {
        let mut s = state();
        let runs = s.find_free_runs(59, &[]).unwrap().unwrap();
        assert_eq!(runs, vec![alloc(5, 64)]);
        s.apply(&runs);
        assert_eq!(s.find_free_runs(1, &[]), Ok(None));
        s.apply(&[free(10, 12)]);
        assert_eq!(s.find_free_runs(2, &[]), Ok(Some(vec![alloc(10, 12)])));
    }

    #[test]
    fn the_next_free_pages_hint_follows_the_cursor_and_stays_in_one_group() {
        let mut s = state();
        assert_eq!(s.next_free_pages_hint(0), None, "nothing to allocate");
        assert_eq!(
            s.next_free_pages_hint(3),
            Some(5..8),
            "after the internal pages"
        );
        s.apply(&[alloc(5, 9)]);
        assert_eq!(
            s.next_free_pages_hint(2),
            Some(9..11),
            "where the last run ended"
        );
        assert_eq!(
            s.next_free_pages_hint(100),
            Some(9..64),
            "clipped to the file"
        );
        s.apply(&[alloc(9, 64)]);
        assert_eq!(
            s.next_free_pages_hint(1),
            None,
            "nothing free past the cursor"
        );

        let g = Geometry::new(1024);
        let mut s = AllocState::new_file(g, g.pages_per_group() * 2);
        let last = g.pages_per_group() - 1;
        s.apply(&[alloc(g.first_data_page(), last)]);
        assert_eq!(
            s.next_free_pages_hint(10),
            Some(last..last + 1),
            "clipped to the group: the next group may not be loaded"
        );
    }

    #[test]
    fn folds_keep_the_log_within_capacity() {
        let g = Geometry::new(1024);
        let mut s = AllocState::new_file(g, g.pages_per_group() * 3);
        // Fragmented allocations: every other page, in group 1 mostly.
        let base = g.pages_per_group() + 2;
        let runs: Vec<PageRun> = (0..100)
            .map(|i| alloc(base + 2 * i, base + 2 * i + 1))
            .collect();
        s.apply(&runs);
        s.apply(&[alloc(5, 6)]);
        let folds = s.plan_folds(false, 0);
        // Nothing is materialized yet: groups 0 and 1 (touched) are, group 2 (untouched) waits.
        assert_eq!(folds, vec![0, 1]);
        assert!(s.log.is_empty());
        s.materialized_groups = 2;
        s.group_slots = vec![0, 0];
        let runs: Vec<PageRun> = (0..100)
            .map(|i| free(base + 2 * i, base + 2 * i + 1))
            .collect();
        s.apply(&runs);
        s.apply(&[free(5, 6)]);
        // Over capacity: group 1 (100 entries) is folded, group 0's single entry stays.
        assert_eq!(s.plan_folds(false, 0), vec![1]);
        assert_eq!(s.log.len(), 1);
        // A change in the fresh group 2 materializes it at once.
        let fresh = 2 * g.pages_per_group() + 2;
        s.apply(&[alloc(fresh, fresh + 1)]);
        assert_eq!(s.plan_folds(false, 0), vec![2]);
        assert_eq!(s.log.len(), 1);
    }

    /// The record of a first commit that folds `folds` (all fresh), each with term `group + 7`.
    fn first_commit_record(s: &mut AllocState, folds: &[u64]) -> CommitRecord {
        let mut record = s.begin_commit(1);
        for &group in folds {
            record.folded_slots.push((group, 0, group + 7));
            record.slot_digest ^= group + 7;
            record.materialized_groups += 1;
        }
        record
    }

    #[test]
    fn committed_takes_the_record() {
        let g = Geometry::new(1024);
        let mut s = AllocState::new_file(g, g.pages_per_group() * 3);
        let folds = s.plan_folds(true, 0);
        assert_eq!(folds, vec![0, 1, 2]);
        let record = first_commit_record(&mut s, &folds);
        s.committed(record);
        assert_eq!((s.generation, s.active_meta), (1, MetaSlot::A));
        assert_eq!(s.materialized_groups, 3);
        assert_eq!(s.group_slot(1), Some((0, 8)));
        assert_eq!(s.slot_digest, 7 ^ 8 ^ 9);
        assert_eq!(s.group_slot(3), None, "group 3 does not exist");
    }

    #[test]
    #[should_panic(expected = "a commit advances the generation by exactly one")]
    fn committed_refuses_a_skipped_generation() {
        let mut s = state();
        let mut record = first_commit_record(&mut s, &[0]);
        record.generation = 2;
        s.committed(record);
    }

    #[test]
    #[should_panic(expected = "groups materialize in order")]
    fn committed_refuses_a_group_materialized_out_of_order() {
        let g = Geometry::new(1024);
        let mut s = AllocState::new_file(g, g.pages_per_group() * 3);
        let record = first_commit_record(&mut s, &[0, 2]);
        s.committed(record);
    }

    #[test]
    fn group_divider_divides_exactly() {
        let mut size = 1024;
        let mut seed = 1u64;
        while size <= crate::format::MAX_PAGE_SIZE {
            let geometry = Geometry::new(size);
            let divider = GroupDivider::new(geometry);
            let per_group = geometry.pages_per_group();
            let last_page = (1u64 << 40) - 1;
            let mut pages = vec![0, 1, per_group - 1, per_group, per_group + 1, last_page];
            for group in [2, 3, 1000, last_page / per_group - 1, last_page / per_group] {
                let start = group * per_group;
                pages.extend([start - 1, start, start + 1]);
            }
            for _ in 0..if cfg!(miri) { 200 } else { 10_000 } {
                seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                pages.push((seed ^ (seed >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 24);
            }
            for page in pages {
                assert_eq!(
                    divider.group_of(page),
                    page / per_group,
                    "page {page} at {size}"
                );
                assert_eq!(
                    divider.is_internal(page),
                    geometry.is_internal(page),
                    "page {page} at {size}"
                );
                let format3 = Geometry::with_group_table(size);
                assert_eq!(
                    GroupDivider::new(format3).is_internal(page),
                    format3.is_internal(page),
                    "page {page} at {size}, format 3"
                );
            }
            size *= 2;
        }
    }

    /// `plan_folds` as first written (a map over the whole log, sorted): the reference the
    /// faster version must agree with, group for group and entry for entry.
    fn reference_plan_folds(s: &mut AllocState, materialize_all: bool) -> Vec<u64> {
        let geometry = s.geometry;
        let capacity = geometry.log_capacity();
        let materialized = s.materialized_groups;
        let highest_fresh = if materialize_all {
            Some(geometry.group_count(s.page_count) - 1)
        } else {
            s.log
                .iter()
                .map(|entry| geometry.group_of(entry.first_page))
                .filter(|&group| group >= materialized)
                .max()
        };
        let mut folds: Vec<u64> = match highest_fresh {
            Some(highest) => (materialized..=highest).collect(),
            None => Vec::new(),
        };
        let mut counts = std::collections::BTreeMap::<u64, usize>::new();
        for entry in &s.log {
            let group = geometry.group_of(entry.first_page);
            if group < materialized {
                *counts.entry(group).or_default() += 1;
            }
        }
        let mut remaining: usize = counts.values().sum();
        if remaining > capacity {
            let mut by_count: Vec<(u64, usize)> = counts.into_iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (group, count) in by_count {
                if remaining <= capacity {
                    break;
                }
                folds.push(group);
                remaining -= count;
            }
        }
        folds.sort_unstable();
        s.log.retain(|entry| {
            folds
                .binary_search(&geometry.group_of(entry.first_page))
                .is_err()
        });
        folds
    }

    #[test]
    fn plan_folds_agrees_with_the_reference() {
        let g = Geometry::new(1024);
        let per_group = g.pages_per_group();
        let group_count = 40;
        let mut seed = 7u64;
        let mut next = |bound: u64| {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (seed ^ (seed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z ^ (z >> 31)) % bound
        };
        for case in 0..if cfg!(miri) { 60 } else { 3_000 } {
            let mut s = AllocState::new_file(g, per_group * group_count);
            s.materialized_groups = next(group_count + 1);
            // Entries concentrated on a few groups, or spread, or past the capacity by far.
            let spread = 1 + next(group_count);
            let entry_count = match case % 3 {
                0 => next(g.log_capacity() as u64 + 3),
                1 => g.log_capacity() as u64 + next(4),
                _ => next(6 * g.log_capacity() as u64),
            };
            s.log = (0..entry_count)
                .map(|_| {
                    let group = next(spread);
                    LogEntry {
                        first_page: group * per_group + 2 + next(per_group - 3),
                        page_count: 1,
                        kind: LogKind::Alloc,
                    }
                })
                .collect();
            let materialize_all = case % 17 == 0;
            let mut reference = s.clone();
            let expected = reference_plan_folds(&mut reference, materialize_all);
            assert_eq!(s.plan_folds(materialize_all, 0), expected, "case {case}");
            assert_eq!(s.log, reference.log, "case {case}");
        }
    }
}
