//! The allocator traits: code written once against them runs on every kind of page.
//!
//! * [`PageHandle<A>`] is a handle that borrows its page's bytes from the allocator `A` that
//!   handed it out.
//! * [`PageAllocator<H>`] hands out and takes back handles of type `H`, one at a time.
//! * [`BulkPageAllocator<H>`] adds batches with all-or-nothing semantics.
//!
//! | handle | allocator | `H::Mut<'a>` |
//! |---|---|---|
//! | [`PageId<P>`] | [`Pager<P, S>`] (any [`Storage`] `S`) | `&'a mut MappedPage` |
//! | [`ProtectedPageId<P>`] | [`Pager<P, S>`] | [`ProtectedPageWriter<'a, P, S>`] |
//! | [`SubPageId<P, SUB>`] | [`SubPageAllocator<P, SUB, S>`] | `&'a mut MappedPage` |
//!
//! All of them use [`MappedPageError`] for both error types.
//!
//! The examples of generic code are on [`BulkPageAllocator`] and [`PageAllocator`] (this module
//! is private; its items are re-exported at the crate root).
//!
//! [`Storage`]: crate::Storage

use crate::error::MappedPageError;
use crate::page::{MappedPage, PageId};
use crate::pager::Pager;
use crate::protected::{ProtectedPageId, ProtectedPageWriter};
use crate::storage::Storage;
use crate::subpage::{SubPageAllocator, SubPageId};

/// A handle to an allocated page that borrows the page's bytes from the allocator `A` that
/// handed it out.
///
/// | handle | allocator | [`Mut<'a>`](Self::Mut) |
/// |---|---|---|
/// | [`PageId<P>`] | [`Pager<P, S>`] (any [`Storage`](crate::Storage) `S`) | `&'a mut MappedPage` |
/// | [`SubPageId<P, SUB>`] | [`SubPageAllocator<P, SUB, S>`] | `&'a mut MappedPage` |
///
/// [`get`](Self::get) always returns a plain `&MappedPage`. What [`get_mut`](Self::get_mut)
/// returns is up to the handle: a handle whose writes need a final step (a commit, say) can
/// return a writer type instead of `&mut MappedPage`. All the handles of this crate use
/// [`MappedPageError`] as their error type.
///
/// ```
/// use mappedpages::{MappedPageError, PageHandle, Pager, SimStorage};
///
/// /// The first byte of a page, whatever its kind.
/// fn first_byte<A, H>(alloc: &A, id: &H) -> Result<u8, MappedPageError>
/// where
///     H: PageHandle<A, Error = MappedPageError>,
/// {
///     Ok(id.get(alloc)?.as_bytes()[0])
/// }
///
/// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id = pager.alloc().unwrap();
/// PageHandle::get_mut(&id, &mut pager).unwrap().as_bytes_mut()[0] = 9;
/// assert_eq!(first_byte(&pager, &id).unwrap(), 9);
/// ```
pub trait PageHandle<A: ?Sized> {
    /// The error returned by [`get`](Self::get) and [`get_mut`](Self::get_mut).
    type Error;

    /// What [`get_mut`](Self::get_mut) returns: `&'a mut MappedPage` for [`PageId`] and
    /// [`SubPageId`].
    type Mut<'a>: 'a
    where
        A: 'a,
        Self: 'a;

    /// Borrows the page's bytes from `allocator`.
    ///
    /// ```
    /// use mappedpages::{PageHandle, Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 256, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// assert_eq!(PageHandle::get(&id, &sub).unwrap().len(), 256);
    /// ```
    fn get<'a>(&self, allocator: &'a A) -> Result<&'a MappedPage, Self::Error>;

    /// Borrows the page's bytes from `allocator` for writing.
    ///
    /// ```
    /// use mappedpages::{PageHandle, Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc().unwrap();
    /// let page: &mut mappedpages::MappedPage = PageHandle::get_mut(&id, &mut pager).unwrap();
    /// page.as_bytes_mut()[0] = 1;
    /// assert_eq!(id.get(&pager).unwrap().as_bytes()[0], 1);
    /// ```
    fn get_mut<'a>(&self, allocator: &'a mut A) -> Result<Self::Mut<'a>, Self::Error>;
}

/// Hands out and takes back pages named by handles of type `H`, one at a time.
///
/// ```
/// use mappedpages::{MappedPageError, PageAllocator, PageHandle, PageId, Pager, SimStorage};
///
/// /// Allocates a page, stores `value` in its first byte, and returns the handle.
/// fn store<A, H>(alloc: &mut A, value: u8) -> Result<H, MappedPageError>
/// where
///     A: PageAllocator<H, Error = MappedPageError>,
///     for<'a> H: PageHandle<A, Error = MappedPageError, Mut<'a> = &'a mut mappedpages::MappedPage>,
/// {
///     let id = alloc.alloc()?;
///     id.get_mut(alloc)?.as_bytes_mut()[0] = value;
///     Ok(id)
/// }
///
/// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id: PageId<1024> = store(&mut pager, 5).unwrap();
/// assert_eq!(id.get(&pager).unwrap().as_bytes()[0], 5);
/// PageAllocator::free(&mut pager, id).unwrap();
/// assert_eq!(pager.allocated_page_count(), 0);
/// ```
pub trait PageAllocator<H: PageHandle<Self>>: Sized {
    /// The error returned by [`alloc`](Self::alloc) and [`free`](Self::free).
    type Error;

    /// Allocates a page and returns its handle.
    ///
    /// ```
    /// use mappedpages::{PageAllocator, Pager, SimStorage, SubPageAllocator, SubPageId};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 512, SimStorage>::new(pager);
    /// let id: SubPageId<1024, 512> = PageAllocator::alloc(&mut sub).unwrap();
    /// assert!(sub.is_allocated(id));
    /// ```
    fn alloc(&mut self) -> Result<H, Self::Error>;

    /// Frees the page named by `id`.
    ///
    /// ```
    /// use mappedpages::{PageAllocator, Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc().unwrap();
    /// PageAllocator::free(&mut pager, id).unwrap();
    /// assert!(PageAllocator::free(&mut pager, id).is_err()); // already free
    /// ```
    fn free(&mut self, id: H) -> Result<(), Self::Error>;
}

/// Allocates and frees many handles in one call, all or nothing.
///
/// * [`alloc_bulk`](Self::alloc_bulk) either returns all `count` handles or fails having
///   allocated none of them.
/// * [`free_bulk`](Self::free_bulk) checks every handle (allocated, not repeated) before it frees
///   anything: one bad handle fails the call and frees nothing.
///
/// The implementations in this crate make each call at most one commit of the pager (a
/// [`SubPageAllocator`] takes or returns all the parent pages a call needs at once).
///
/// # Example
///
/// One function, two allocators: whole 1 KiB pages from a [`Pager`], and 128-byte sub-pages
/// from a [`SubPageAllocator`].
///
/// ```
/// use mappedpages::{
///     BulkPageAllocator, MappedPage, MappedPageError, PageHandle, PageId, Pager, SimStorage,
///     SubPageAllocator, SubPageId,
/// };
///
/// /// Allocates `n` pages in one call, fills page `i` with the byte `i`, checks every page
/// /// still holds its own byte (no two handles share bytes), frees them all in one call and
/// /// returns the number of bytes written.
/// fn fill_all<A, H>(alloc: &mut A, n: usize) -> Result<usize, MappedPageError>
/// where
///     A: BulkPageAllocator<H, Error = MappedPageError> + 'static,
///     for<'a> H: PageHandle<A, Error = MappedPageError, Mut<'a> = &'a mut MappedPage> + 'static,
/// {
///     let ids = alloc.alloc_bulk(n)?;
///     let mut written = 0;
///     for (i, id) in ids.iter().enumerate() {
///         let page = id.get_mut(alloc)?;
///         page.as_bytes_mut().fill(i as u8);
///         written += page.len();
///     }
///     for (i, id) in ids.iter().enumerate() {
///         assert!(id.get(alloc)?.as_bytes().iter().all(|&b| b == i as u8));
///     }
///     alloc.free_bulk(ids)?;
///     Ok(written)
/// }
///
/// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// // A pager allocates more than one kind of handle: name the one you mean.
/// assert_eq!(fill_all::<_, PageId<1024>>(&mut pager, 10).unwrap(), 10 * 1024);
/// assert_eq!(pager.allocated_page_count(), 0);
///
/// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
/// assert_eq!(fill_all::<_, SubPageId<1024, 128>>(&mut sub, 20).unwrap(), 20 * 128);
/// assert_eq!(sub.allocated_count(), 0);
/// assert_eq!(sub.pager().allocated_page_count(), 0);
/// ```
///
/// Read-only generic code needs no bound on `Mut`, and so also runs on protected pages, whose
/// `get_mut` returns a [`ProtectedPageWriter`](crate::ProtectedPageWriter):
///
/// ```
/// use mappedpages::{
///     BulkPageAllocator, MappedPageError, PageHandle, PageId, Pager, ProtectedPageId, SimStorage,
/// };
///
/// /// Allocates `n` pages, counts those that read as zeros, and frees them.
/// fn zeroed_on_alloc<A, H>(alloc: &mut A, n: usize) -> Result<usize, MappedPageError>
/// where
///     A: BulkPageAllocator<H, Error = MappedPageError>,
///     H: PageHandle<A, Error = MappedPageError>,
/// {
///     let ids = alloc.alloc_bulk(n)?;
///     let mut zeroed = 0;
///     for id in &ids {
///         if id.get(alloc)?.as_bytes().iter().all(|&b| b == 0) {
///             zeroed += 1;
///         }
///     }
///     alloc.free_bulk(ids)?;
///     Ok(zeroed)
/// }
///
/// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// // A fresh file's regular pages read as zeros; a reused regular page keeps its old bytes.
/// assert_eq!(zeroed_on_alloc::<_, PageId<1024>>(&mut pager, 4).unwrap(), 4);
/// // Protected pages always start as zeros, reused or not.
/// assert_eq!(zeroed_on_alloc::<_, ProtectedPageId<1024>>(&mut pager, 4).unwrap(), 4);
/// ```
///
/// A bound on `Mut<'a>` for every `'a` (`for<'a>`) needs the `'static` bounds on `A` and `H`:
/// the compiler cannot yet prove the `A: 'a, Self: 'a` clauses of [`PageHandle::Mut`] for every
/// `'a` otherwise. Every allocator and handle of this crate is `'static`. Code that only reads
/// needs neither (see [`PageHandle`]).
pub trait BulkPageAllocator<H: PageHandle<Self>>: PageAllocator<H> {
    /// Allocates `count` pages; an empty `Vec` for `count == 0`. On error none is allocated.
    ///
    /// ```
    /// use mappedpages::{BulkPageAllocator, PageId, Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let ids: Vec<PageId<1024>> = BulkPageAllocator::alloc_bulk(&mut pager, 5).unwrap();
    /// assert_eq!(ids.len(), 5);
    /// ```
    fn alloc_bulk(&mut self, count: usize) -> Result<Vec<H>, Self::Error>;

    /// Frees every page in `ids`, after checking all of them; on error none is freed.
    ///
    /// ```
    /// use mappedpages::{
    ///     BulkPageAllocator, MappedPageError, PageHandle, Pager, SimStorage, SubPageAllocator,
    ///     SubPageId,
    /// };
    ///
    /// /// Frees a batch that names one page twice: the call fails and frees nothing.
    /// fn free_with_repeat<A, H>(alloc: &mut A, n: usize) -> Result<(), MappedPageError>
    /// where
    ///     A: BulkPageAllocator<H, Error = MappedPageError>,
    ///     H: PageHandle<A> + Copy,
    /// {
    ///     let mut ids = alloc.alloc_bulk(n)?;
    ///     ids.push(ids[0]);
    ///     alloc.free_bulk(ids)
    /// }
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 64, SimStorage>::new(pager);
    /// let result = free_with_repeat::<_, SubPageId<1024, 64>>(&mut sub, 40);
    /// assert!(matches!(result, Err(MappedPageError::DuplicateSubPageId { .. })));
    /// assert_eq!(sub.allocated_count(), 40);
    /// ```
    fn free_bulk(&mut self, ids: Vec<H>) -> Result<(), Self::Error>;
}

// ----- PageId / Pager ----------------------------------------------------------------------------

impl<const PAGE_SIZE: usize, S: Storage> PageHandle<Pager<PAGE_SIZE, S>> for PageId<PAGE_SIZE> {
    type Error = MappedPageError;
    type Mut<'a>
        = &'a mut MappedPage
    where
        Pager<PAGE_SIZE, S>: 'a;

    fn get<'a>(&self, allocator: &'a Pager<PAGE_SIZE, S>) -> Result<&'a MappedPage, Self::Error> {
        PageId::get(self, allocator)
    }

    fn get_mut<'a>(
        &self,
        allocator: &'a mut Pager<PAGE_SIZE, S>,
    ) -> Result<&'a mut MappedPage, Self::Error> {
        PageId::get_mut(self, allocator)
    }
}

impl<const PAGE_SIZE: usize, S: Storage> PageAllocator<PageId<PAGE_SIZE>> for Pager<PAGE_SIZE, S> {
    type Error = MappedPageError;

    fn alloc(&mut self) -> Result<PageId<PAGE_SIZE>, Self::Error> {
        Pager::alloc(self)
    }

    fn free(&mut self, id: PageId<PAGE_SIZE>) -> Result<(), Self::Error> {
        Pager::free(self, id)
    }
}

impl<const PAGE_SIZE: usize, S: Storage> BulkPageAllocator<PageId<PAGE_SIZE>>
    for Pager<PAGE_SIZE, S>
{
    fn alloc_bulk(&mut self, count: usize) -> Result<Vec<PageId<PAGE_SIZE>>, Self::Error> {
        Pager::alloc_bulk(self, count)
    }

    fn free_bulk(&mut self, ids: Vec<PageId<PAGE_SIZE>>) -> Result<(), Self::Error> {
        Pager::free_bulk(self, ids)
    }
}

// ----- ProtectedPageId / Pager -------------------------------------------------------------------
//

impl<const PAGE_SIZE: usize, S: Storage> PageHandle<Pager<PAGE_SIZE, S>>
    for ProtectedPageId<PAGE_SIZE>
{
    type Error = MappedPageError;
    type Mut<'a>
        = ProtectedPageWriter<'a, PAGE_SIZE, S>
    where
        Pager<PAGE_SIZE, S>: 'a;

    fn get<'a>(&self, pager: &'a Pager<PAGE_SIZE, S>) -> Result<&'a MappedPage, Self::Error> {
        ProtectedPageId::get(self, pager)
    }

    fn get_mut<'a>(
        &self,
        pager: &'a mut Pager<PAGE_SIZE, S>,
    ) -> Result<ProtectedPageWriter<'a, PAGE_SIZE, S>, Self::Error> {
        ProtectedPageId::get_mut(self, pager)
    }
}

impl<const PAGE_SIZE: usize, S: Storage> PageAllocator<ProtectedPageId<PAGE_SIZE>>
    for Pager<PAGE_SIZE, S>
{
    type Error = MappedPageError;

    fn alloc(&mut self) -> Result<ProtectedPageId<PAGE_SIZE>, Self::Error> {
        Pager::alloc_protected(self)
    }

    fn free(&mut self, id: ProtectedPageId<PAGE_SIZE>) -> Result<(), Self::Error> {
        Pager::free_protected(self, id)
    }
}

impl<const PAGE_SIZE: usize, S: Storage> BulkPageAllocator<ProtectedPageId<PAGE_SIZE>>
    for Pager<PAGE_SIZE, S>
{
    fn alloc_bulk(&mut self, count: usize) -> Result<Vec<ProtectedPageId<PAGE_SIZE>>, Self::Error> {
        Pager::alloc_protected_bulk(self, count)
    }

    fn free_bulk(&mut self, ids: Vec<ProtectedPageId<PAGE_SIZE>>) -> Result<(), Self::Error> {
        Pager::free_protected_bulk(self, ids)
    }
}

// ----- SubPageId / SubPageAllocator --------------------------------------------------------------

impl<const PARENT_SIZE: usize, const SUB_SIZE: usize, S: Storage>
    PageHandle<SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>> for SubPageId<PARENT_SIZE, SUB_SIZE>
{
    type Error = MappedPageError;
    type Mut<'a>
        = &'a mut MappedPage
    where
        SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>: 'a;

    fn get<'a>(
        &self,
        allocator: &'a SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>,
    ) -> Result<&'a MappedPage, Self::Error> {
        SubPageId::get(self, allocator)
    }

    fn get_mut<'a>(
        &self,
        allocator: &'a mut SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>,
    ) -> Result<&'a mut MappedPage, Self::Error> {
        SubPageId::get_mut(self, allocator)
    }
}

impl<const PARENT_SIZE: usize, const SUB_SIZE: usize, S: Storage>
    PageAllocator<SubPageId<PARENT_SIZE, SUB_SIZE>> for SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>
{
    type Error = MappedPageError;

    fn alloc(&mut self) -> Result<SubPageId<PARENT_SIZE, SUB_SIZE>, Self::Error> {
        SubPageAllocator::alloc(self)
    }

    fn free(&mut self, id: SubPageId<PARENT_SIZE, SUB_SIZE>) -> Result<(), Self::Error> {
        SubPageAllocator::free(self, id)
    }
}

impl<const PARENT_SIZE: usize, const SUB_SIZE: usize, S: Storage>
    BulkPageAllocator<SubPageId<PARENT_SIZE, SUB_SIZE>>
    for SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>
{
    fn alloc_bulk(
        &mut self,
        count: usize,
    ) -> Result<Vec<SubPageId<PARENT_SIZE, SUB_SIZE>>, Self::Error> {
        SubPageAllocator::alloc_bulk(self, count)
    }

    fn free_bulk(&mut self, ids: Vec<SubPageId<PARENT_SIZE, SUB_SIZE>>) -> Result<(), Self::Error> {
        SubPageAllocator::free_bulk(self, ids)
    }
}
