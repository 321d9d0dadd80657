//! What an inspector needs beyond the reading methods of [`ReadOnlyPager`]: what every page is
//! used for, its raw bytes, the directory's blocks, and the mode of the last commit.

use crate::commit::CommitMode;
use crate::error::MappedPageError;
use crate::format::{MetaPage, MetaSlot};
use crate::readonly::ReadOnlyPager;
use crate::storage::Storage;

/// What a page of the file is used for, in the committed state a [`ReadOnlyPager`] recovered
/// ([`ReadOnlyPager::page_use`]). The internal pages are laid out in SPEC.md §2.
///
/// ```
/// use mappedpages::{Pager, PageUse, ReadOnlyPager};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db.bin");
/// let mut pager = Pager::<1024>::create(&path).unwrap();
/// let id = pager.alloc().unwrap();
/// drop(pager);
/// let reader = ReadOnlyPager::<1024>::open(&path).unwrap();
/// assert_eq!(reader.page_use(0).unwrap(), PageUse::Superblock);
/// assert_eq!(reader.page_use(id.raw()).unwrap(), PageUse::Allocated);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageUse {
    /// Page 0 (SPEC.md §2.2).
    Superblock,
    /// Page 1 (copy A) or 2 (copy B) (SPEC.md §2.3).
    MetadataCopy {
        /// True for the copy holding the committed state.
        active: bool,
    },
    /// One of the two bitmap slot pages of a group (SPEC.md §2.4).
    GroupSlot {
        /// The group.
        group: u64,
        /// The slot, 0 or 1.
        slot: u8,
        /// True for the slot the committed state uses (false for both slots of a fresh group).
        current: bool,
    },
    /// One of the two slot pages of a group table page (format 3, docs/scale-design.md §2.2),
    /// used yet or not: every page of the table's extents.
    GroupTable {
        /// The table page `t` (its entries are those of groups `t·E_t ..`).
        table_page: u64,
        /// The slot, 0 or 1.
        slot: u8,
        /// True for the slot the committed state uses.
        current: bool,
    },
    /// One of the four pages of a protected-page directory block (SPEC.md §2.6).
    DirectoryBlock {
        /// The block's position in the chain.
        block: u64,
        /// 0 = X0, 1 = X1, 2 = Y0, 3 = Y1: mirror X or Y of slot 0 or 1.
        position: u8,
        /// True for the two mirror pages of the block's current slot.
        current: bool,
    },
    /// One of the two backing copies of a protected page (SPEC.md §2.6).
    ProtectedCopy {
        /// The protected page's id.
        id: u64,
        /// The copy, 0 or 1.
        copy: u8,
        /// True for the committed copy.
        current: bool,
    },
    /// An allocated regular page.
    Allocated,
    /// A free data page.
    Free,
}

impl<const PAGE_SIZE: usize> ReadOnlyPager<PAGE_SIZE> {
    /// What page `page` is used for ([`MappedPageError::OutOfBounds`] at or past
    /// [`page_count`](Self::page_count)).
    ///
    /// ```
    /// use mappedpages::{Pager, PageUse, ReadOnlyPager};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("db.bin");
    /// drop(Pager::<1024>::create(&path).unwrap());
    /// let reader = ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.page_use(1).unwrap(), PageUse::MetadataCopy { active: true });
    /// assert_eq!(
    ///     reader.page_use(3).unwrap(),
    ///     PageUse::GroupSlot { group: 0, slot: 0, current: true }
    /// );
    /// assert_eq!(
    ///     reader.page_use(5).unwrap(),
    ///     PageUse::GroupTable { table_page: 0, slot: 0, current: true }
    /// );
    /// assert_eq!(reader.page_use(7).unwrap(), PageUse::Free);
    /// ```
    pub fn page_use(&self, page: u64) -> Result<PageUse, MappedPageError> {
        let state = self.pager.state();
        if page >= state.page_count {
            return Err(MappedPageError::OutOfBounds {
                page,
                page_count: state.page_count,
            });
        }
        let geometry = state.geometry;
        if page == 0 {
            return Ok(PageUse::Superblock);
        }
        if page == MetaSlot::A.page() || page == MetaSlot::B.page() {
            return Ok(PageUse::MetadataCopy {
                active: page == state.active_meta().page(),
            });
        }
        let group = geometry.group_of(page);
        for slot in 0..2u8 {
            if geometry.slot_page(group, slot) == page {
                let current = state.group_slot(group).is_some_and(|(s, _)| s == slot);
                return Ok(PageUse::GroupSlot {
                    group,
                    slot,
                    current,
                });
            }
        }
        if geometry.has_group_table()
            && let Some((table_page, slot)) = geometry.table_slot_at(page)
        {
            let current = state.table.page_slot(table_page) == Some(slot);
            return Ok(PageUse::GroupTable {
                table_page,
                slot,
                current,
            });
        }
        if state.directory.owns(page) {
            return Ok(self.directory_page_use(page));
        }
        Ok(if state.is_allocated_data_page(page, self.pager.image())? {
            PageUse::Allocated
        } else {
            PageUse::Free
        })
    }

    /// The use of `page`, a page the directory owns.
    fn directory_page_use(&self, page: u64) -> PageUse {
        let directory = &self.pager.state().directory;
        let per_block = self.pager.state().geometry.directory_entries_per_block();
        for (block, entry) in directory.blocks.iter().enumerate() {
            if let Some(position) = entry.pages.iter().position(|&p| p == page) {
                return PageUse::DirectoryBlock {
                    block: block as u64,
                    position: position as u8,
                    current: entry.current_slot == Some((position % 2) as u8),
                };
            }
            for (index, slot) in entry.entries.iter().enumerate() {
                let Some(slot) = slot else { continue };
                if let Some(copy) = slot.copies.iter().position(|&p| p == page) {
                    return PageUse::ProtectedCopy {
                        id: block as u64 * per_block + index as u64,
                        copy: copy as u8,
                        current: usize::from(slot.current & 1) == copy,
                    };
                }
            }
        }
        panic!("the directory owns page {page}, but no block or entry names it");
    }

    /// The bytes of any page below [`page_count`](Self::page_count), internal and free ones
    /// included, exactly as the file holds them (for a hex dump; to read data, use
    /// [`page`](Self::page) and [`protected_page`](Self::protected_page), which check the page's
    /// state and, for protected pages, the CRC).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(&reader.raw_page(0).unwrap()[..7], b"MAPPGSB");
    /// assert!(reader.raw_page(reader.page_count()).is_err());
    /// ```
    pub fn raw_page(&self, page: u64) -> Result<&[u8], MappedPageError> {
        let page_count = self.page_count();
        let out_of_bounds = MappedPageError::OutOfBounds { page, page_count };
        if page >= page_count {
            return Err(out_of_bounds);
        }
        let start = usize::try_from(page.saturating_mul(PAGE_SIZE as u64))
            .map_err(|_| MappedPageError::OutOfBounds { page, page_count })?;
        self.pager
            .storage()
            .bytes()
            .get(start..start.saturating_add(PAGE_SIZE))
            .ok_or(out_of_bounds)
    }

    /// The pages of every protected-page directory block, in chain order: X0, X1, Y0, Y1 of each
    /// (SPEC.md §2.6); empty for a file without protected pages.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// let mut pager = mappedpages::Pager::<1024>::create(&path).unwrap();
    /// pager.alloc_protected().unwrap();
    /// drop(pager);
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.directory_blocks().len(), 1);
    /// ```
    pub fn directory_blocks(&self) -> Vec<[u64; 4]> {
        let directory = &self.pager.state().directory;
        directory.blocks.iter().map(|block| block.pages).collect()
    }

    /// The mode of the commit that wrote the recovered state, as its metadata copy records it
    /// (SPEC.md §2.3 flags bit 0): [`CommitMode::SingleSync`] or [`CommitMode::Flip`] (also for
    /// the first commit of a new file). `None` only if the copy no longer decodes, which happens
    /// only when a process that ignores the lock rewrote it after the open.
    ///
    /// ```
    /// use mappedpages::{CommitMode, Pager, ReadOnlyPager};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("db.bin");
    /// let mut pager = Pager::<1024>::create(&path).unwrap();
    /// pager.set_commit_mode(CommitMode::SingleSync);
    /// pager.alloc().unwrap();
    /// drop(pager);
    /// let reader = ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.last_commit_mode(), Some(CommitMode::SingleSync));
    /// ```
    pub fn last_commit_mode(&self) -> Option<CommitMode> {
        let page = self.raw_page(self.active_metadata_page()).ok()?;
        let meta = MetaPage::decode(page, self.pager.state().geometry).ok()?;
        Some(if meta.single_sync {
            CommitMode::SingleSync
        } else {
            CommitMode::Flip
        })
    }
}
