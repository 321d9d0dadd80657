//! Protected pages: pages whose content changes atomically. Each protected page has two backing
//! copies; a [`ProtectedPageWriter`] stages the new content in the copy that is not committed, and
//! its [`commit`](ProtectedPageWriter::commit) makes that copy the committed one in the same
//! commit protocol as every allocation change (SPEC.md §3.7).

use std::ops::Range;

use crate::error::MappedPageError;
use crate::mutants::{Mutant, active};
use crate::page::MappedPage;
use crate::pager::Pager;
use crate::state::PageRun;
use crate::storage::{MmapStorage, Storage};

/// Opaque handle to a protected (crash-consistent) page of a `Pager<PAGE_SIZE>`.
///
/// A protected page always reads as the content of its last successful
/// [`ProtectedPageWriter::commit`] (zeros before the first): after a crash it reads as that
/// content or as the content of the commit in flight, never a mix and never an older one.
///
/// The page size is part of the type, so a `ProtectedPageId<1024>` cannot be used with a
/// `Pager<4096>`:
///
/// ```compile_fail
/// use mappedpages::{Pager, ProtectedPageId, SimStorage};
///
/// let pager = Pager::<4096, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id: ProtectedPageId<1024> = ProtectedPageId::from_raw(0);
/// let _ = id.get(&pager); // error: expected `Pager<1024, _>`, found `Pager<4096, SimStorage>`
/// ```
///
/// Ids can be kept in your own records with [`raw`](Self::raw) and rebuilt with
/// [`from_raw`](Self::from_raw); the pager validates every id it is given.
///
/// ```
/// use mappedpages::{Pager, ProtectedPageId, SimStorage};
///
/// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id = pager.alloc_protected().unwrap();
/// let stored: u64 = id.raw();
/// assert_eq!(ProtectedPageId::<1024>::from_raw(stored), id);
/// assert!(ProtectedPageId::<1024>::from_raw(stored + 1).get(&pager).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtectedPageId<const PAGE_SIZE: usize>(u64);

impl<const PAGE_SIZE: usize> ProtectedPageId<PAGE_SIZE> {
    /// Rebuilds an id from [`raw`](Self::raw). The pager checks it on every use.
    pub const fn from_raw(raw: u64) -> Self {
        ProtectedPageId(raw)
    }

    /// The id's number (its directory entry index), for storing in your own records.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Borrows the committed content. Fails with
    /// [`MappedPageError::ProtectedNotAllocated`] for an id not in use, and with
    /// [`MappedPageError::CorruptProtectedPage`] if the committed copy fails its checksum (the
    /// bytes are never returned then). Each call checksums the page (`PAGE_SIZE` bytes of
    /// CRC-32).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc_protected().unwrap();
    /// assert!(id.get(&pager).unwrap().as_bytes().iter().all(|&b| b == 0));
    /// ```
    pub fn get<'a, S: Storage>(
        &self,
        pager: &'a Pager<PAGE_SIZE, S>,
    ) -> Result<&'a MappedPage, MappedPageError> {
        let page = pager.verified_protected_page(self.0)?;
        Ok(pager.raw_page(page))
    }

    /// Starts a write: returns a writer whose page holds a copy of the committed content.
    /// Nothing is visible or durable until [`ProtectedPageWriter::commit`]; dropping the writer
    /// discards the staged bytes.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc_protected().unwrap();
    /// let mut writer = id.get_mut(&mut pager).unwrap();
    /// writer.page_mut().as_bytes_mut()[..2].copy_from_slice(b"ok");
    /// writer.commit().unwrap();
    /// assert_eq!(&id.get(&pager).unwrap().as_bytes()[..2], b"ok");
    /// ```
    pub fn get_mut<'a, S: Storage>(
        &self,
        pager: &'a mut Pager<PAGE_SIZE, S>,
    ) -> Result<ProtectedPageWriter<'a, PAGE_SIZE, S>, MappedPageError> {
        let staged = pager.stage_protected_write(self.0)?;
        Ok(ProtectedPageWriter {
            pager,
            id: *self,
            staged_page: staged,
        })
    }
}

/// An in-progress write to a protected page, made by [`ProtectedPageId::get_mut`].
///
/// It starts from the committed content, so changing a few bytes keeps all the others. The
/// staged bytes live in the page's backing copy that is not committed; the committed copy is
/// never written.
///
/// ```
/// use mappedpages::{Pager, SimStorage};
///
/// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id = pager.alloc_protected().unwrap();
///
/// let mut writer = id.get_mut(&mut pager).unwrap();
/// writer.page_mut().as_bytes_mut()[0] = 1;
/// writer.commit().unwrap();
///
/// let mut writer = id.get_mut(&mut pager).unwrap();
/// writer.page_mut().as_bytes_mut()[1] = 2;
/// drop(writer); // discarded: never committed
/// assert_eq!(&id.get(&pager).unwrap().as_bytes()[..2], &[1, 0]);
/// ```
pub struct ProtectedPageWriter<'a, const PAGE_SIZE: usize, S: Storage = MmapStorage> {
    pager: &'a mut Pager<PAGE_SIZE, S>,
    id: ProtectedPageId<PAGE_SIZE>,
    staged_page: u64,
}

impl<const PAGE_SIZE: usize, S: Storage> std::fmt::Debug for ProtectedPageWriter<'_, PAGE_SIZE, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtectedPageWriter")
            .field("id", &self.id)
            .field("staged_page", &self.staged_page)
            .finish_non_exhaustive()
    }
}

impl<const PAGE_SIZE: usize, S: Storage> ProtectedPageWriter<'_, PAGE_SIZE, S> {
    /// The protected page being written.
    pub fn id(&self) -> ProtectedPageId<PAGE_SIZE> {
        self.id
    }

    /// The staged content.
    pub fn page(&self) -> &MappedPage {
        self.pager.raw_page(self.staged_page)
    }

    /// The staged content, to change.
    pub fn page_mut(&mut self) -> &mut MappedPage {
        self.pager.raw_page_mut(self.staged_page)
    }

    /// Makes the staged content the committed content, atomically and durably, in one commit
    /// (SPEC.md §3.7): two barriers in [`CommitMode::Flip`](crate::CommitMode::Flip), the
    /// default (the staged copy, directory block and metadata; then the superblock), one in
    /// [`CommitMode::SingleSync`](crate::CommitMode::SingleSync) (SPEC.md §3.2.1). After a crash
    /// the page reads as the old or the new content, never a mix. A failed sync poisons the pager.
    pub fn commit(self) -> Result<(), MappedPageError> {
        self.pager.check_commit_possible()?;
        let range = self
            .pager
            .stage_protected_commit(self.id.0, self.staged_page);
        self.pager
            .commit_prepared(vec![range], "ProtectedPageWriter::commit")
    }
}

impl<const PAGE_SIZE: usize, S: Storage> Pager<PAGE_SIZE, S> {
    /// The staged part of `ProtectedPageId::get_mut` (and of a `SharedPager` protected write):
    /// checks `id` and its committed copy, copies the committed content into the inactive copy
    /// and returns that page, where the new content is staged. Nothing committed refers to it.
    pub(crate) fn stage_protected_write(&mut self, id: u64) -> Result<u64, MappedPageError> {
        self.check_poison()?;
        self.check_file_len("ProtectedPageId::get_mut")?;
        let committed = self.verified_protected_page(id)?;
        self.check_commit_possible()?;
        let staged = self
            .directory()
            .entry(id)
            .expect("verified_protected_page checked the entry")
            .inactive_page();
        if !active(Mutant::WriterStartsFromInactive) {
            self.copy_page(committed, staged);
        }
        Ok(staged)
    }

    /// The staged part of `ProtectedPageWriter::commit`: makes `staged_page` (from
    /// [`stage_protected_write`](Self::stage_protected_write)) the current copy of `id` in memory,
    /// as of the next commit's generation. Returns its byte range, which that commit's first
    /// barrier must cover.
    pub(crate) fn stage_protected_commit(&mut self, id: u64, staged_page: u64) -> Range<u64> {
        let checksum = crc32fast::hash(self.raw_page(staged_page).as_bytes());
        let generation = self.next_generation();
        self.directory_mut().promote(id, checksum, generation);
        Self::page_file_range(staged_page)
    }

    /// Checks `id` and its committed copy's checksum; returns the page holding the copy.
    pub(crate) fn verified_protected_page(&self, id: u64) -> Result<u64, MappedPageError> {
        self.check_poison()?;
        let entry = self
            .directory()
            .entry(id)
            .ok_or(MappedPageError::ProtectedNotAllocated { id })?;
        self.verified_copy(id, entry.current_page(), entry.content_checksum)
    }

    /// Checks that copy `page` of protected page `id` has the checksum `content_checksum`;
    /// returns `page`.
    pub(crate) fn verified_copy(
        &self,
        id: u64,
        page: u64,
        content_checksum: u32,
    ) -> Result<u64, MappedPageError> {
        if crc32fast::hash(self.raw_page(page).as_bytes()) != content_checksum {
            return Err(MappedPageError::CorruptProtectedPage { id, page });
        }
        Ok(page)
    }

    /// Allocates one protected page (reading as zeros) and commits: one commit, two barriers (one
    /// in [`CommitMode::SingleSync`](crate::CommitMode::SingleSync)).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc_protected().unwrap();
    /// assert!(pager.is_protected_allocated(id));
    /// assert_eq!(pager.allocated_page_count(), 0); // its pages are not regular pages
    /// ```
    pub fn alloc_protected(&mut self) -> Result<ProtectedPageId<PAGE_SIZE>, MappedPageError> {
        let mut ids = self.alloc_protected_inner(1, "alloc_protected")?;
        Ok(ids.pop().expect("one id was allocated"))
    }

    /// Allocates `count` protected pages in one commit (two barriers whatever `count`, one in
    /// [`CommitMode::SingleSync`](crate::CommitMode::SingleSync)). On error
    /// none is allocated: a failed growth changes nothing and a failed sync poisons the pager,
    /// and the file recovers to the state before the call or after it, never in between.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let ids = pager.alloc_protected_bulk(50).unwrap();
    /// assert_eq!(pager.protected_page_count(), 50);
    /// ```
    pub fn alloc_protected_bulk(
        &mut self,
        count: usize,
    ) -> Result<Vec<ProtectedPageId<PAGE_SIZE>>, MappedPageError> {
        self.alloc_protected_inner(count as u64, "alloc_protected_bulk")
    }

    fn alloc_protected_inner(
        &mut self,
        count: u64,
        operation: &str,
    ) -> Result<Vec<ProtectedPageId<PAGE_SIZE>>, MappedPageError> {
        let (ids, zeroed) = self.stage_alloc_protected(count)?;
        if !ids.is_empty() {
            self.commit_prepared(zeroed, operation)?;
        }
        Ok(ids)
    }

    /// The staged part of `alloc_protected(_bulk)` (and of a `SharedPager` group commit): grows
    /// the file if needed, allocates `count` entries and their pages in memory and zeroes copy 0
    /// of each, without committing. Returns the ids and the zeroed ranges, which the commit's
    /// first barrier must cover. On error nothing changed; `count == 0` changes nothing.
    pub(crate) fn stage_alloc_protected(
        &mut self,
        count: u64,
    ) -> Result<(Vec<ProtectedPageId<PAGE_SIZE>>, Vec<Range<u64>>), MappedPageError> {
        self.check_poison()?;
        if count == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        self.check_commit_possible()?;
        self.check_file_len("alloc_protected")?;
        // The result's memory first: a request that cannot be held fails before the file grows.
        let out_of_memory = |per_entry: usize| MappedPageError::OutOfMemory {
            requested_bytes: count.saturating_mul(per_entry as u64),
        };
        let capacity = usize::try_from(count).map_err(|_| out_of_memory(8))?;
        let mut zeroed: Vec<Range<u64>> = Vec::new();
        zeroed
            .try_reserve_exact(capacity)
            .map_err(|_| out_of_memory(size_of::<Range<u64>>()))?;
        let mut ids = Vec::new();
        ids.try_reserve_exact(capacity)
            .map_err(|_| out_of_memory(size_of::<ProtectedPageId<PAGE_SIZE>>()))?;
        let needed = self.directory().pages_needed(count);
        let growth = self.ensure_free_pages(needed)?;
        let (runs, growth) = self.free_runs(needed, growth)?;
        let growth = self.reserve_runs(&runs, growth)?;
        // The directory's memory last: its reservation touches what it reserves, so a request
        // the disk cannot hold fails (above) before it costs memory.
        if let Err(requested_bytes) = self.directory_mut().try_reserve(count) {
            self.undo_growth(growth)?;
            return Err(MappedPageError::OutOfMemory { requested_bytes });
        }
        self.apply_runs(&runs);
        let zero_checksum = zero_page_checksum(PAGE_SIZE);
        let generation = self.next_generation();
        let mut pages = runs.iter().flat_map(|run| run.first_page..run.end_page);
        let allocated = self
            .directory_mut()
            .allocate(count, &mut pages, generation, zero_checksum);
        assert!(pages.next().is_none(), "pages_needed matches allocate");
        for &id in &allocated {
            let page = self
                .directory()
                .entry(id)
                .expect("allocate returned an in-use id")
                .current_page();
            if !active(Mutant::SkipZeroingNewProtected) {
                self.raw_page_mut(page).as_bytes_mut().fill(0);
            }
            zeroed.push(Self::page_file_range(page));
        }
        ids.extend(allocated.into_iter().map(ProtectedPageId));
        Ok((ids, zeroed))
    }

    /// Frees one protected page and commits: one commit, two barriers (one in
    /// [`CommitMode::SingleSync`](crate::CommitMode::SingleSync)).
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc_protected().unwrap();
    /// pager.free_protected(id).unwrap();
    /// assert!(matches!(
    ///     pager.free_protected(id),
    ///     Err(MappedPageError::ProtectedNotAllocated { .. })
    /// ));
    /// ```
    pub fn free_protected(
        &mut self,
        id: ProtectedPageId<PAGE_SIZE>,
    ) -> Result<(), MappedPageError> {
        self.free_protected_inner(vec![id], "free_protected")
    }

    /// Frees every protected page in `ids` in one commit. Every id is checked first (in use, not
    /// repeated); if any fails, nothing is freed.
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let ids = pager.alloc_protected_bulk(3).unwrap();
    /// let bad = vec![ids[0], ids[0]];
    /// assert!(matches!(
    ///     pager.free_protected_bulk(bad),
    ///     Err(MappedPageError::DuplicateProtectedId { .. })
    /// ));
    /// assert_eq!(pager.protected_page_count(), 3);
    /// pager.free_protected_bulk(ids).unwrap();
    /// assert_eq!(pager.protected_page_count(), 0);
    /// ```
    pub fn free_protected_bulk(
        &mut self,
        ids: Vec<ProtectedPageId<PAGE_SIZE>>,
    ) -> Result<(), MappedPageError> {
        self.free_protected_inner(ids, "free_protected_bulk")
    }

    fn free_protected_inner(
        &mut self,
        ids: Vec<ProtectedPageId<PAGE_SIZE>>,
        operation: &str,
    ) -> Result<(), MappedPageError> {
        self.stage_free_protected(&ids)?;
        if ids.is_empty() {
            return Ok(());
        }
        self.commit_prepared(Vec::new(), operation)
    }

    /// The staged part of `free_protected(_bulk)` (and of a `SharedPager` group commit): checks
    /// every id (in use, not repeated) and only then clears the entries and frees both copies in
    /// memory, without committing. On error nothing changed; an empty `ids` changes nothing.
    pub(crate) fn stage_free_protected(
        &mut self,
        ids: &[ProtectedPageId<PAGE_SIZE>],
    ) -> Result<(), MappedPageError> {
        self.check_poison()?;
        if ids.is_empty() {
            return Ok(());
        }
        self.check_commit_possible()?;
        let mut raw: Vec<u64> = ids.iter().map(|id| id.0).collect();
        for &id in &raw {
            if self.directory().entry(id).is_none() {
                return Err(MappedPageError::ProtectedNotAllocated { id });
            }
        }
        raw.sort_unstable();
        if let Some(pair) = raw.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(MappedPageError::DuplicateProtectedId { id: pair[0] });
        }
        let mut pages: Vec<u64> = Vec::with_capacity(raw.len() * 2);
        for id in raw {
            pages.extend(self.directory_mut().release(id));
        }
        pages.sort_unstable();
        let runs = PageRun::free_runs(pages);
        self.apply_runs(&runs);
        Ok(())
    }

    /// Protected pages currently allocated.
    pub fn protected_page_count(&self) -> u64 {
        self.directory().in_use_count()
    }

    /// True if `id` names an allocated protected page.
    pub fn is_protected_allocated(&self, id: ProtectedPageId<PAGE_SIZE>) -> bool {
        self.directory().entry(id.0).is_some()
    }

    /// Iterates over the allocated protected pages in increasing id order. It never yields a
    /// regular page, and [`iter_allocated_pages`](Self::iter_allocated_pages) never yields the
    /// pages behind a protected page. A poisoned pager yields nothing.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let regular = pager.alloc().unwrap();
    /// let protected = pager.alloc_protected_bulk(2).unwrap();
    /// assert_eq!(pager.iter_allocated_protected_pages().collect::<Vec<_>>(), protected);
    /// assert_eq!(pager.iter_allocated_pages().collect::<Vec<_>>(), vec![regular]);
    /// ```
    ///
    /// The iterator borrows the pager, so allocation is impossible while it is alive:
    ///
    /// ```compile_fail
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut ids = pager.iter_allocated_protected_pages();
    /// pager.alloc_protected().unwrap(); // error: pager is borrowed by the iterator
    /// ids.next();
    /// ```
    pub fn iter_allocated_protected_pages(&self) -> AllocatedProtectedPageIter<'_, PAGE_SIZE, S> {
        AllocatedProtectedPageIter {
            pager: self,
            next_id: if self.is_poisoned() { u64::MAX } else { 0 },
        }
    }
}

/// An iterator over the allocated protected pages of a [`Pager`], in increasing id order.
pub struct AllocatedProtectedPageIter<'a, const PAGE_SIZE: usize, S: Storage = MmapStorage> {
    pager: &'a Pager<PAGE_SIZE, S>,
    next_id: u64,
}

impl<const PAGE_SIZE: usize, S: Storage> Iterator for AllocatedProtectedPageIter<'_, PAGE_SIZE, S> {
    type Item = ProtectedPageId<PAGE_SIZE>;

    fn next(&mut self) -> Option<Self::Item> {
        let id = self.pager.directory().next_in_use(self.next_id)?;
        self.next_id = id + 1;
        Some(ProtectedPageId(id))
    }
}

/// CRC-32 of `len_bytes` zero bytes, without a page-sized buffer.
fn zero_page_checksum(len_bytes: usize) -> u32 {
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut hasher = crc32fast::Hasher::new();
    let mut remaining = len_bytes;
    while remaining > 0 {
        let chunk = remaining.min(ZEROS.len());
        hasher.update(&ZEROS[..chunk]);
        remaining -= chunk;
    }
    hasher.finalize()
}
