//! The scan behind `iter_allocated_pages`: the allocated regular pages of an [`AllocState`] in
//! increasing order, a bitmap word at a time.
//!
//! A regular page is a set bit that is neither internal nor owned by the protected-page
//! directory. Both exclusions are applied to whole words before their bits are yielded: a group
//! starts on a word boundary (its size is `256 · d` pages, SPEC.md §2.1), and a group's internal
//! pages are the ones before its first data page (pages 0–4 of group 0, the two slot pages of
//! any other; in format 3 also the group table's extent pages right after them), so they are
//! masked off the group's first word or words, reached by counting words rather than dividing
//! (one call per group says where its data pages start); the directory's pages are taken once,
//! sorted, and merged
//! in as the scan passes them. The cost is one load, a compare or two and a mask per word, and a
//! `trailing_zeros` per yielded page: within a small factor of a plain bit scan, with or without
//! protected pages (BENCHMARKS.md, issue 15).

use crate::bitmap::Bitmap;
use crate::format::{Geometry, slot_bitmap_word};
use crate::state::AllocState;

/// Where the words of the group being scanned come from.
#[derive(Clone, Copy, Debug)]
enum Words<'a> {
    /// The in-memory bitmap (a loaded group).
    Memory,
    /// The bitmap bytes of the group's checked pinned slot (a group not loaded, SPEC.md §4.9),
    /// and the index of the group's first word.
    Slot(&'a [u8], usize),
    /// Nothing: the group's pinned slot is damaged, so none of its pages is listed (as
    /// `is_allocated` says false for them; `check_bitmaps` reports the group).
    Damaged,
}

/// The allocated regular pages of a state, in increasing order.
#[derive(Clone, Debug)]
pub(crate) struct AllocatedScan<'a> {
    bitmap: &'a Bitmap,
    state: &'a AllocState,
    /// The file's bytes, for groups not loaded.
    image: &'a [u8],
    words: Words<'a>,
    /// Index of the word `bits` came from.
    word_index: usize,
    /// Bits of that word not yet yielded, exclusions applied.
    bits: u64,
    /// Index of the next word that needs [`boundary`](Self::boundary): the next group's first
    /// word, or the next word of the current group's internal pages.
    next_boundary_word: usize,
    /// Index of the next word that starts a group.
    next_group_word: usize,
    words_per_group: usize,
    /// The first data page of the group being scanned: pages below it are internal.
    data_start: u64,
    geometry: Geometry,
    /// The pages the directory owns, sorted, and the first one not yet passed.
    owned: Vec<u64>,
    owned_next: usize,
}

impl<'a> AllocatedScan<'a> {
    /// A scan of `state`'s allocated regular pages, groups not loaded read from `image`; an
    /// empty one when `empty` (a poisoned pager). Sorting the directory's pages costs
    /// `O(k log k)` for `k` of them, once per scan.
    pub(crate) fn new(state: &'a AllocState, image: &'a [u8], empty: bool) -> AllocatedScan<'a> {
        let pages_per_group = state.geometry.pages_per_group();
        assert!(
            pages_per_group.is_multiple_of(64) && pages_per_group > 64,
            "groups of {pages_per_group} pages do not start on bitmap words"
        );
        let words_per_group = (pages_per_group / 64) as usize;
        let mut owned: Vec<u64> = state.directory.owned_pages().collect();
        owned.sort_unstable();
        let mut scan = AllocatedScan {
            bitmap: &state.bitmap,
            state,
            image,
            words: Words::Memory,
            word_index: 0,
            bits: 0,
            next_boundary_word: 0,
            next_group_word: 0,
            words_per_group,
            data_start: 0,
            geometry: state.geometry,
            owned,
            owned_next: 0,
        };
        if empty || scan.bitmap.word_count() == 0 {
            scan.word_index = scan.bitmap.word_count();
        } else {
            scan.bits = scan.boundary(0);
        }
        scan
    }

    /// Word `index` without the internal pages in it, at a boundary word: a group's first word
    /// (where the group's words are chosen: memory or its pinned slot), or a further word of its
    /// internal pages (format 3's extents can fill many). Out of line, so that `next` stays
    /// small enough to inline into the caller's loop.
    #[inline(never)]
    fn boundary(&mut self, index: usize) -> u64 {
        if index == self.next_group_word {
            let group = (index / self.words_per_group) as u64;
            self.data_start = self.geometry.first_data_page_of_group(group);
            self.next_group_word += self.words_per_group;
            self.words = match self.state.unloaded_group_bits(group, self.image) {
                None => Words::Memory,
                Some(Ok(bits)) => Words::Slot(bits, index),
                Some(Err(_)) => Words::Damaged,
            };
        }
        let word = self.load(index);
        let word_start = index as u64 * 64;
        let internal = self.data_start.saturating_sub(word_start);
        self.next_boundary_word = if internal > 64 {
            index + 1
        } else {
            self.next_group_word
        };
        match internal {
            0 => word,
            1..64 => word & (!0 << internal),
            _ => 0,
        }
    }

    /// Moves to the next word with a page to yield; false at the end. Out of line, once per
    /// word, so that `next` (once per page) stays a few instructions.
    #[inline(never)]
    fn refill(&mut self) -> bool {
        while self.bits == 0 {
            let index = self.word_index + 1;
            if index >= self.bitmap.word_count() {
                self.word_index = self.bitmap.word_count();
                return false;
            }
            self.word_index = index;
            self.bits = if index == self.next_boundary_word {
                self.boundary(index)
            } else {
                self.load(index)
            };
        }
        true
    }

    /// Word `index` without the directory's pages in it. Words are loaded in increasing order.
    #[inline]
    fn load(&mut self, index: usize) -> u64 {
        let mut word = match self.words {
            Words::Memory => self.bitmap.word(index),
            Words::Slot(bits, first_word) => slot_bitmap_word(bits, index - first_word),
            Words::Damaged => 0,
        };
        let word_end = (index as u64 + 1) * 64;
        while let Some(&page) = self.owned.get(self.owned_next) {
            if page >= word_end {
                break;
            }
            // Owned pages lie in the bitmap, so past every earlier word: in this one.
            word &= !(1 << (page % 64));
            self.owned_next += 1;
        }
        word
    }
}

impl Iterator for AllocatedScan<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        if self.bits == 0 && !self.refill() {
            return None;
        }
        let bit = self.bits.trailing_zeros();
        self.bits &= self.bits - 1;
        Some(self.word_index as u64 * 64 + u64::from(bit))
    }
}

impl std::iter::FusedIterator for AllocatedScan<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Geometry, LogKind};
    use crate::state::PageRun;

    /// The definition: every page below the page count that is allocated in the bitmap, not
    /// internal and not owned by the directory.
    fn naive(state: &AllocState) -> Vec<u64> {
        (0..state.page_count)
            .filter(|&page| state.is_allocated_data_page(page, &[]) == Ok(true))
            .collect()
    }

    fn run(first_page: u64, end_page: u64, kind: LogKind) -> PageRun {
        PageRun {
            first_page,
            end_page,
            kind,
        }
    }

    /// A state of `groups` groups (the last one cut short by `cut` pages) with random runs
    /// allocated and some of the allocated pages handed to the directory.
    fn random_state(seed: u64, page_size: usize, groups: u64, cut: u64) -> AllocState {
        random_state_of(seed, Geometry::new(page_size), groups, cut)
    }

    fn random_state_of(seed: u64, geometry: Geometry, groups: u64, cut: u64) -> AllocState {
        let mut page_count = groups * geometry.pages_per_group() - cut;
        while !geometry.is_valid_page_count(page_count) {
            page_count += 1;
        }
        let mut state = AllocState::new_file(geometry, page_count);
        let mut rng = seed;
        let mut next = |bound: u64| {
            rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (rng ^ (rng >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (z ^ (z >> 31)) % bound
        };
        let density = next(4);
        for _ in 0..page_count / 8 {
            let first = next(page_count);
            let end = (first + 1 + next(if density == 0 { 3 } else { 200 })).min(page_count);
            let mut page = first;
            while page < end {
                let Some(free) = state.bitmap.next_zero(page).filter(|&p| p < end) else {
                    break;
                };
                let free_end = state.bitmap.next_one(free).unwrap_or(page_count).min(end);
                state.apply(&[run(free, free_end, LogKind::Alloc)]);
                page = free_end;
            }
        }
        let candidates = naive(&state);
        let owned: Vec<u64> = candidates
            .iter()
            .copied()
            .filter(|_| next(5) == 0)
            .collect();
        state.directory.own_for_test(owned);
        state
    }

    #[test]
    fn scan_agrees_with_the_definition() {
        let cases = if cfg!(miri) { 2 } else { 120 };
        for case in 0..cases {
            let page_size = if cfg!(miri) {
                1024
            } else {
                [1024, 2048, 4096][case as usize % 3]
            };
            let groups = 1 + case % 4;
            let cut = (case * 37) % 700;
            let state = random_state(case, page_size, groups, cut);
            let scanned: Vec<u64> = AllocatedScan::new(&state, &[], false).collect();
            assert_eq!(scanned, naive(&state), "case {case}");
            assert_eq!(AllocatedScan::new(&state, &[], true).next(), None);
        }
    }

    /// Format 3's layout (not written by the pager yet): the extents of table pages 0–6 (groups
    /// 0, 62 and 186 at 1 KiB) are internal, marked in use, never handed out and never listed.
    #[test]
    fn format_3_extents_are_internal_in_memory() {
        let geometry = Geometry::with_group_table(1024);
        // Under Miri, group 0 alone (table page 0 at pages 5 and 6).
        let mut page_count = if cfg!(miri) {
            300
        } else {
            190 * geometry.pages_per_group()
        };
        while !geometry.is_valid_page_count(page_count) {
            page_count -= 1;
        }
        let mut state = AllocState::new_file(geometry, page_count);
        let free = state.free_page_count();
        assert_eq!(free, geometry.data_page_count(page_count));
        let runs = state
            .find_free_runs(free, &[])
            .expect("every group loaded")
            .expect("the free pages");
        state.apply(&runs);
        assert_eq!(state.free_page_count(), 0);
        let scanned: Vec<u64> = AllocatedScan::new(&state, &[], false).collect();
        assert_eq!(scanned, naive(&state));
        assert_eq!(scanned.len() as u64, free);
        assert_eq!(scanned.first(), Some(&7), "pages 5 and 6 hold table page 0");
        for extent in 0..=if cfg!(miri) { 0 } else { 2 } {
            for j in 0..geometry.extent_page_count(extent) {
                let page = geometry.extent_page(extent, j);
                assert_eq!(
                    state.is_allocated_data_page(page, &[]),
                    Ok(false),
                    "extent page {page}"
                );
                assert!(
                    scanned.binary_search(&page).is_err(),
                    "extent page {page} listed"
                );
            }
        }
        let cases = if cfg!(miri) { 0 } else { 8 };
        for case in 0..cases {
            let state = random_state_of(case, geometry, 1 + case * 30, case * 41);
            let scanned: Vec<u64> = AllocatedScan::new(&state, &[], false).collect();
            assert_eq!(scanned, naive(&state), "case {case}");
        }
    }

    #[test]
    fn scan_of_a_full_file_skips_internal_and_owned_pages() {
        let geometry = Geometry::new(1024);
        let page_count = 3 * geometry.pages_per_group();
        let mut state = AllocState::new_file(geometry, page_count);
        let free = state.free_page_count();
        let runs = state
            .find_free_runs(free, &[])
            .expect("every group loaded")
            .expect("the free pages");
        state.apply(&runs);
        let start1 = geometry.group_start(1);
        state
            .directory
            .own_for_test(vec![5, 63, 64, start1 + 2, page_count - 1]);
        let scanned: Vec<u64> = AllocatedScan::new(&state, &[], false).collect();
        assert_eq!(scanned, naive(&state));
        assert_eq!(scanned.len() as u64, free - 5);
        assert_eq!(scanned.first(), Some(&6));
        assert!(!scanned.contains(&start1) && !scanned.contains(&(start1 + 1)));
    }
}
