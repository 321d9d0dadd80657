//! The in-memory protected-page directory (SPEC.md §2.6, §3.7): which protected ids are in use,
//! where their two backing copies live and which copy is committed. Pure bookkeeping, no I/O:
//! the commit writes the blocks this module marks dirty, and recovery rebuilds it from disk.

use std::collections::{BTreeSet, HashSet};

use crate::format::{
    DIRECTORY_BLOCK_PAGES, DirectoryEntry, DirectoryRoot, DirectorySlot, Geometry,
};

/// One block of the directory: four pages on disk (mirrors X and Y, slots 0 and 1) holding
/// [`Geometry::directory_entries_per_block`] entries.
#[derive(Clone, Debug)]
pub(crate) struct DirectoryBlock {
    /// Pages X0, X1, Y0, Y1.
    pub(crate) pages: [u64; DIRECTORY_BLOCK_PAGES],
    /// The slot (0 or 1) both mirrors hold the committed block in; `None` until the block's
    /// first commit.
    pub(crate) current_slot: Option<u8>,
    /// [`crate::format::directory_digest_term`] of the committed slot (0 before the first).
    pub(crate) term: u64,
    pub(crate) entries: Vec<Option<DirectoryEntry>>,
}

impl DirectoryBlock {
    /// The slot the next commit of this block writes (in both mirrors).
    pub(crate) fn next_slot(&self) -> u8 {
        self.current_slot.map_or(0, |slot| slot ^ 1)
    }

    /// The pages (one per mirror) of `slot`.
    pub(crate) fn slot_pages(&self, slot: u8) -> [u64; 2] {
        assert!(slot < 2, "a directory block has slots 0 and 1, not {slot}");
        let slot = usize::from(slot);
        [self.pages[slot], self.pages[2 + slot]]
    }
}

/// The directory of protected pages.
#[derive(Clone, Debug)]
pub(crate) struct Directory {
    entries_per_block: u64,
    pub(crate) blocks: Vec<DirectoryBlock>,
    /// XOR of the committed terms of all blocks, as the metadata records it.
    pub(crate) digest: u64,
    /// Blocks whose entries or next-block pointer changed since the last commit.
    dirty: BTreeSet<u64>,
    /// Every page the directory owns: block pages and the copies of in-use entries. These pages
    /// are allocated in the bitmap but are never regular pages.
    owned_pages: HashSet<u64>,
    in_use: u64,
}

impl Directory {
    /// An empty directory (no blocks).
    pub(crate) fn new(geometry: Geometry) -> Directory {
        Directory {
            entries_per_block: geometry.directory_entries_per_block(),
            blocks: Vec::new(),
            digest: 0,
            dirty: BTreeSet::new(),
            owned_pages: HashSet::new(),
            in_use: 0,
        }
    }

    /// Rebuilds the directory from committed blocks (recovery). Checks that no page is owned
    /// twice; the caller checks the pages against the bitmap.
    pub(crate) fn from_committed(
        geometry: Geometry,
        blocks: Vec<DirectoryBlock>,
        digest: u64,
    ) -> Result<Directory, String> {
        let mut directory = Directory::new(geometry);
        directory.digest = digest;
        for (block_index, block) in blocks.iter().enumerate() {
            for &page in &block.pages {
                if !directory.owned_pages.insert(page) {
                    return Err(format!(
                        "page {page} of directory block {block_index} is owned twice"
                    ));
                }
            }
            for (slot, entry) in block.entries.iter().enumerate() {
                if let Some(entry) = entry {
                    for &page in &entry.copies {
                        if !directory.owned_pages.insert(page) {
                            return Err(format!(
                                "backing page {page} of protected page {} is owned twice",
                                block_index as u64 * directory.entries_per_block + slot as u64
                            ));
                        }
                    }
                    directory.in_use += 1;
                }
            }
        }
        directory.blocks = blocks;
        Ok(directory)
    }

    /// Protected pages in use.
    pub(crate) fn in_use_count(&self) -> u64 {
        self.in_use
    }

    /// Pages the directory owns (blocks and backing copies).
    #[inline]
    pub(crate) fn owned_page_count(&self) -> u64 {
        self.owned_pages.len() as u64
    }

    /// Pages owned by the directory, in no particular order.
    pub(crate) fn owned_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.owned_pages.iter().copied()
    }

    /// Marks `pages` owned (tests of code that only reads the owned set).
    #[cfg(test)]
    pub(crate) fn own_for_test(&mut self, pages: Vec<u64>) {
        self.owned_pages.extend(pages);
    }

    /// True if `page` is a directory block page or a backing copy.
    #[inline]
    pub(crate) fn owns(&self, page: u64) -> bool {
        // Without protected pages (the common case) no hash is computed.
        !self.owned_pages.is_empty() && self.owned_pages.contains(&page)
    }

    /// Entry capacity of the existing blocks.
    pub(crate) fn capacity(&self) -> u64 {
        self.blocks.len() as u64 * self.entries_per_block
    }

    /// The in-use entry of protected id `id`.
    pub(crate) fn entry(&self, id: u64) -> Option<&DirectoryEntry> {
        let block = self
            .blocks
            .get(usize::try_from(id / self.entries_per_block).ok()?)?;
        block
            .entries
            .get((id % self.entries_per_block) as usize)?
            .as_ref()
    }

    fn entry_slot_mut(&mut self, id: u64) -> Option<&mut Option<DirectoryEntry>> {
        let block = self
            .blocks
            .get_mut(usize::try_from(id / self.entries_per_block).ok()?)?;
        block
            .entries
            .get_mut((id % self.entries_per_block) as usize)
    }

    /// New blocks needed before `count` more entries fit.
    pub(crate) fn blocks_needed(&self, count: u64) -> u64 {
        let free = self.capacity() - self.in_use;
        count.saturating_sub(free).div_ceil(self.entries_per_block)
    }

    /// Pages an allocation of `count` protected pages takes from the bitmap: two copies each and
    /// four per new block.
    pub(crate) fn pages_needed(&self, count: u64) -> u64 {
        count.saturating_mul(2).saturating_add(
            self.blocks_needed(count)
                .saturating_mul(DIRECTORY_BLOCK_PAGES as u64),
        )
    }

    /// Makes room in memory for an [`allocate`](Self::allocate) of `count` entries' pages and
    /// blocks; `Err` with the bytes asked for when the memory cannot be had.
    pub(crate) fn try_reserve(&mut self, count: u64) -> Result<(), u64> {
        let pages = self.pages_needed(count);
        let blocks = self.blocks_needed(count);
        let too_much = pages.saturating_mul(size_of::<u64>() as u64 * 2);
        let pages = usize::try_from(pages).map_err(|_| too_much)?;
        let blocks = usize::try_from(blocks).map_err(|_| too_much)?;
        self.owned_pages.try_reserve(pages).map_err(|_| too_much)?;
        self.blocks.try_reserve(blocks).map_err(|_| too_much)
    }

    /// Takes `count` entries: appends the blocks needed (four pages each from `pages`), then fills
    /// the lowest free entries with two pages each, current copy 0 with `content_checksum` at
    /// `generation`. Returns the new ids. `pages` must yield exactly
    /// [`pages_needed(count)`](Self::pages_needed) pages, already allocated in the bitmap.
    pub(crate) fn allocate(
        &mut self,
        count: u64,
        pages: &mut impl Iterator<Item = u64>,
        generation: u64,
        content_checksum: u32,
    ) -> Vec<u64> {
        let mut take = |owned: &mut HashSet<u64>| {
            let page = pages
                .next()
                .expect("the caller allocated pages_needed(count) pages");
            assert!(
                owned.insert(page),
                "page {page} handed to the directory twice"
            );
            page
        };
        for _ in 0..self.blocks_needed(count) {
            let mut block_pages = [0u64; DIRECTORY_BLOCK_PAGES];
            for page in &mut block_pages {
                *page = take(&mut self.owned_pages);
            }
            if let Some(last) = self.blocks.len().checked_sub(1) {
                // The previous block's next pointer changes.
                self.dirty.insert(last as u64);
            }
            self.dirty.insert(self.blocks.len() as u64);
            self.blocks.push(DirectoryBlock {
                pages: block_pages,
                current_slot: None,
                term: 0,
                entries: vec![None; self.entries_per_block as usize],
            });
        }
        let mut ids = Vec::with_capacity(count as usize);
        'blocks: for (block_index, block) in self.blocks.iter_mut().enumerate() {
            for (slot, entry) in block.entries.iter_mut().enumerate() {
                if ids.len() as u64 == count {
                    break 'blocks;
                }
                if entry.is_none() {
                    let copies = [take(&mut self.owned_pages), take(&mut self.owned_pages)];
                    *entry = Some(DirectoryEntry {
                        copies,
                        current: 0,
                        content_generation: generation,
                        content_checksum,
                    });
                    self.dirty.insert(block_index as u64);
                    ids.push(block_index as u64 * self.entries_per_block + slot as u64);
                }
            }
        }
        assert_eq!(
            ids.len() as u64,
            count,
            "blocks_needed made room for every entry"
        );
        self.in_use += count;
        ids
    }

    /// Frees the entry of `id` and returns its two backing pages (to free in the bitmap).
    /// The caller validated `id`.
    pub(crate) fn release(&mut self, id: u64) -> [u64; 2] {
        let entry = self
            .entry_slot_mut(id)
            .and_then(Option::take)
            .expect("release of a validated in-use id");
        for page in entry.copies {
            assert!(
                self.owned_pages.remove(&page),
                "backing page {page} was not owned"
            );
        }
        self.in_use -= 1;
        self.dirty.insert(id / self.entries_per_block);
        entry.copies
    }

    /// Makes the inactive copy of `id` the committed one, with `content_checksum` written at
    /// `generation`. The caller validated `id`.
    pub(crate) fn promote(&mut self, id: u64, content_checksum: u32, generation: u64) {
        let entry = self
            .entry_slot_mut(id)
            .and_then(Option::as_mut)
            .expect("promote of a validated in-use id");
        entry.current ^= 1;
        entry.content_checksum = content_checksum;
        entry.content_generation = generation;
        self.dirty.insert(id / self.entries_per_block);
    }

    /// Blocks the next commit writes, in increasing order.
    pub(crate) fn dirty_blocks(&self) -> Vec<u64> {
        self.dirty.iter().copied().collect()
    }

    /// The slot content the next commit at `generation` writes for block `block`.
    pub(crate) fn slot_for_commit(&self, block: u64, generation: u64) -> DirectorySlot {
        let index = block as usize;
        DirectorySlot {
            generation,
            block,
            next_pages: self
                .blocks
                .get(index + 1)
                .map_or([0; DIRECTORY_BLOCK_PAGES], |next| next.pages),
            entries: self.blocks[index].entries.clone(),
        }
    }

    /// The root the metadata records, with `digest` the digest after the commit.
    pub(crate) fn root(&self, digest: u64) -> DirectoryRoot {
        DirectoryRoot {
            block_count: self.blocks.len() as u64,
            digest,
            head_pages: self
                .blocks
                .first()
                .map_or([0; DIRECTORY_BLOCK_PAGES], |block| block.pages),
        }
    }

    /// Records a successful commit: `written` lists (block, slot, term) for each block written.
    pub(crate) fn committed(&mut self, written: &[(u64, u8, u64)], digest: u64) {
        for &(block, slot, term) in written {
            let block = &mut self.blocks[block as usize];
            block.current_slot = Some(slot);
            block.term = term;
        }
        self.digest = digest;
        self.dirty.clear();
    }

    /// The in-use entries whose content was committed at `generation`, with their ids.
    pub(crate) fn entries_committed_at(
        &self,
        generation: u64,
    ) -> impl Iterator<Item = (u64, &DirectoryEntry)> + '_ {
        let per_block = self.entries_per_block;
        self.blocks
            .iter()
            .enumerate()
            .flat_map(move |(block_index, block)| {
                block
                    .entries
                    .iter()
                    .enumerate()
                    .filter_map(move |(slot, entry)| {
                        let entry = entry.as_ref()?;
                        (entry.content_generation == generation)
                            .then_some((block_index as u64 * per_block + slot as u64, entry))
                    })
            })
    }

    /// Ids of the in-use entries, in increasing order, starting at `from`.
    pub(crate) fn next_in_use(&self, from: u64) -> Option<u64> {
        let mut id = from;
        while id < self.capacity() {
            let block = &self.blocks[(id / self.entries_per_block) as usize];
            let slot = (id % self.entries_per_block) as usize;
            if let Some(offset) = block.entries[slot..].iter().position(Option::is_some) {
                return Some(id + offset as u64);
            }
            id += (self.entries_per_block as usize - slot) as u64;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: u64 = 30; // entries per block at 1 KiB

    fn directory() -> Directory {
        Directory::new(Geometry::new(1024))
    }

    #[test]
    fn allocation_adds_blocks_only_when_entries_run_out() {
        let mut dir = directory();
        assert_eq!(dir.pages_needed(1), 2 + 4);
        assert_eq!(dir.pages_needed(E), 2 * E + 4);
        assert_eq!(dir.pages_needed(E + 1), 2 * (E + 1) + 8);
        let mut pages = 100..;
        let ids = dir.allocate(E + 1, &mut pages, 7, 0xABCD);
        assert_eq!(ids, (0..=E).collect::<Vec<_>>());
        assert_eq!(dir.blocks.len(), 2);
        // Block pages come first, then two copies per entry, in order.
        assert_eq!(dir.blocks[0].pages, [100, 101, 102, 103]);
        assert_eq!(dir.blocks[1].pages, [104, 105, 106, 107]);
        assert_eq!(dir.entry(0).unwrap().copies, [108, 109]);
        assert_eq!(dir.entry(E).unwrap().copies, [108 + 2 * E, 109 + 2 * E]);
        assert_eq!(dir.owned_page_count(), 8 + 2 * (E + 1));
        assert_eq!(dir.dirty_blocks(), vec![0, 1]);
        assert_eq!(
            dir.pages_needed(E - 1),
            2 * (E - 1),
            "free entries are used first"
        );
        assert_eq!(dir.root(5).head_pages, [100, 101, 102, 103]);
        assert_eq!(dir.slot_for_commit(0, 8).next_pages, [104, 105, 106, 107]);
        assert_eq!(dir.slot_for_commit(1, 8).next_pages, [0; 4]);
    }

    #[test]
    fn release_and_reuse_take_the_lowest_free_entry() {
        let mut dir = directory();
        let mut pages = 100..;
        dir.allocate(3, &mut pages, 1, 0);
        dir.committed(&[(0, 0, 42)], 42);
        assert!(dir.dirty_blocks().is_empty());
        assert_eq!(dir.blocks[0].next_slot(), 1);
        assert_eq!(dir.release(1), [106, 107]);
        assert!(!dir.owns(106) && dir.owns(108));
        assert_eq!(dir.in_use_count(), 2);
        assert_eq!(dir.next_in_use(1), Some(2));
        assert_eq!(dir.next_in_use(3), None);
        let ids = dir.allocate(1, &mut [200, 201].into_iter(), 2, 0);
        assert_eq!(ids, vec![1]);
        assert_eq!(dir.entry(1).unwrap().copies, [200, 201]);
    }

    #[test]
    fn promote_flips_the_current_copy() {
        let mut dir = directory();
        dir.allocate(1, &mut (100..), 1, 0);
        let entry = *dir.entry(0).unwrap();
        assert_eq!((entry.current_page(), entry.inactive_page()), (104, 105));
        dir.promote(0, 0x1234, 2);
        let entry = *dir.entry(0).unwrap();
        assert_eq!((entry.current_page(), entry.inactive_page()), (105, 104));
        assert_eq!(
            (entry.content_checksum, entry.content_generation),
            (0x1234, 2)
        );
    }

    #[test]
    fn from_committed_rejects_a_page_owned_twice() {
        let mut dir = directory();
        dir.allocate(2, &mut (100..), 1, 0);
        let mut blocks = dir.blocks.clone();
        blocks[0].entries[1].as_mut().unwrap().copies[0] = 104;
        assert!(Directory::from_committed(Geometry::new(1024), blocks, 0).is_err());
        let rebuilt =
            Directory::from_committed(Geometry::new(1024), dir.blocks.clone(), 9).unwrap();
        assert_eq!(rebuilt.in_use_count(), 2);
        assert_eq!(rebuilt.owned_page_count(), 8);
        assert!(rebuilt.entry(1 << 40).is_none() && rebuilt.entry(u64::MAX).is_none());
    }

    #[test]
    fn huge_requests_saturate_instead_of_overflowing() {
        let dir = directory();
        assert_eq!(dir.pages_needed(u64::MAX), u64::MAX);
    }
}
