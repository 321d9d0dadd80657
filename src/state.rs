//! The in-memory allocation state and the pure logic that changes it: applying a change to the
//! bitmap and the log, and choosing which groups a commit folds. No I/O here.

use crate::bitmap::Bitmap;
use crate::directory::Directory;
use crate::format::{
    DirectoryRoot, FIRST_DATA_PAGE, Geometry, LogEntry, LogKind, MetaPage, MetaSlot,
};

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
        let mut runs: Vec<PageRun> = Vec::new();
        for page in pages {
            match runs.last_mut() {
                Some(run) if run.end_page == page => run.end_page += 1,
                _ => runs.push(PageRun {
                    first_page: page,
                    end_page: page + 1,
                    kind: LogKind::Free,
                }),
            }
        }
        runs
    }
}

/// What the pager believes is committed (after a successful commit, exactly what is durable).
#[derive(Clone, Debug)]
pub(crate) struct AllocState {
    pub(crate) geometry: Geometry,
    /// Generation of the last commit (0 before the first commit of a new file).
    pub(crate) generation: u64,
    /// The metadata copy holding `generation`.
    pub(crate) active_meta: MetaSlot,
    pub(crate) page_count: u64,
    pub(crate) materialized_groups: u64,
    /// Current slot (0 or 1) of each materialized group.
    pub(crate) group_slots: Vec<u8>,
    /// [`crate::format::slot_digest_term`] of each materialized group's current slot.
    pub(crate) group_terms: Vec<u64>,
    /// XOR of `group_terms`, as the metadata records it.
    pub(crate) slot_digest: u64,
    pub(crate) log: Vec<LogEntry>,
    pub(crate) bitmap: Bitmap,
    /// Where the next allocation search starts (next fit).
    pub(crate) next_fit_page: u64,
    /// The protected-page directory; the pages it owns are set in `bitmap`.
    pub(crate) directory: Directory,
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
            log: Vec::new(),
            bitmap: Bitmap::new(0),
            next_fit_page: FIRST_DATA_PAGE,
            directory: Directory::new(geometry),
        };
        state.extend(page_count);
        state
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

    /// Sets the internal bits of a group that has no slot page yet.
    pub(crate) fn mark_fresh_group(&mut self, group: u64) {
        if group == 0 {
            self.bitmap.set_range(0, FIRST_DATA_PAGE);
        } else {
            let start = self.geometry.group_start(group);
            self.bitmap.set_range(start, start + 2);
        }
    }

    /// Pages that hold user data or are free for it.
    pub(crate) fn data_page_count(&self) -> u64 {
        self.geometry.data_page_count(self.page_count)
    }

    pub(crate) fn free_page_count(&self) -> u64 {
        self.page_count - self.bitmap.count_ones()
    }

    /// Allocated regular pages: allocated data pages not owned by the protected-page directory.
    pub(crate) fn allocated_data_page_count(&self) -> u64 {
        self.data_page_count() - self.free_page_count() - self.directory.owned_page_count()
    }

    /// True for an allocated regular page (never for internal or protected-page pages).
    pub(crate) fn is_allocated_data_page(&self, page: u64) -> bool {
        page < self.page_count
            && !self.geometry.is_internal(page)
            && self.bitmap.get(page)
            && !self.directory.owns(page)
    }

    /// Finds `count` free pages by next fit from `next_fit_page`, wrapping once, as runs.
    /// Returns `None` if there are fewer than `count` free pages.
    pub(crate) fn find_free_runs(&self, count: u64) -> Option<Vec<PageRun>> {
        if count > self.free_page_count() {
            return None;
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
            let limit = if wrapped { start } else { self.page_count };
            let end = self
                .bitmap
                .next_one(first)
                .unwrap_or(self.page_count)
                .min(limit)
                .min(first + remaining);
            runs.push(PageRun {
                first_page: first,
                end_page: end,
                kind: LogKind::Alloc,
            });
            remaining -= end - first;
            cursor = end;
        }
        Some(runs)
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
    pub(crate) fn plan_folds(&mut self, materialize_all: bool) -> Vec<u64> {
        let geometry = self.geometry;
        let capacity = geometry.log_capacity();
        let materialized = self.materialized_groups;
        let highest_fresh = if materialize_all {
            Some(geometry.group_count(self.page_count) - 1)
        } else {
            self.log
                .iter()
                .map(|entry| geometry.group_of(entry.first_page))
                .filter(|&group| group >= materialized)
                .max()
        };
        let mut folds: Vec<u64> = match highest_fresh {
            Some(highest) => (materialized..=highest).collect(),
            None => Vec::new(),
        };
        let mut counts: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
        for entry in &self.log {
            let group = geometry.group_of(entry.first_page);
            if group < materialized {
                *counts.entry(group).or_default() += 1;
            }
        }
        let mut remaining: usize = counts.values().sum();
        if remaining > capacity {
            let mut by_count: Vec<(u64, usize)> = counts.into_iter().collect();
            // Most entries first; the lowest group breaks ties so the choice is deterministic.
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
        self.log.retain(|entry| {
            folds
                .binary_search(&geometry.group_of(entry.first_page))
                .is_err()
        });
        assert!(
            self.log.len() <= capacity,
            "log still over capacity after folding"
        );
        folds
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
        }
    }

    /// The bitmap words of `group`, as its slot page stores them.
    pub(crate) fn group_words(&self, group: u64) -> Vec<u64> {
        let words_per_group = (self.geometry.pages_per_group() / 64) as usize;
        self.bitmap
            .words(group as usize * words_per_group, words_per_group)
    }
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
        let runs = s.find_free_runs(59).unwrap();
        assert_eq!(runs, vec![alloc(5, 64)]);
        s.apply(&runs);
        assert_eq!(s.find_free_runs(1), None);
        s.apply(&[free(10, 12)]);
        assert_eq!(s.find_free_runs(2).unwrap(), vec![alloc(10, 12)]);
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
        let folds = s.plan_folds(false);
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
        assert_eq!(s.plan_folds(false), vec![1]);
        assert_eq!(s.log.len(), 1);
        // A change in the fresh group 2 materializes it at once.
        let fresh = 2 * g.pages_per_group() + 2;
        s.apply(&[alloc(fresh, fresh + 1)]);
        assert_eq!(s.plan_folds(false), vec![2]);
        assert_eq!(s.log.len(), 1);
    }
}
