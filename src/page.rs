//! Regular pages: `PageId` handles and `MappedPage` views. Reading a page through its id
//! (`PageId::get`, `get_mut`) is the pager's business: those methods live in pager.rs, so this
//! module does not depend on the pager.

/// Opaque handle to a regular data page of a `Pager<PAGE_SIZE>`.
///
/// Pages 0-2 (and the pager's bitmap pages) are reserved: `alloc` never returns them and every
/// access through a `PageId` naming one fails with
/// [`MappedPageError::ReservedPage`](crate::MappedPageError::ReservedPage).
///
/// The page size is part of the type, so a `PageId<1024>` cannot be used with a `Pager<4096>`:
///
/// ```compile_fail
/// use mappedpages::{PageId, Pager, SimStorage};
///
/// let pager = Pager::<4096, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id: PageId<1024> = PageId::from_raw(5);
/// let _ = id.get(&pager); // error: expected `Pager<1024, _>`, found `Pager<4096, SimStorage>`
/// ```
///
/// Ids can be stored in your own records with [`raw`](Self::raw) and rebuilt with
/// [`from_raw`](Self::from_raw); the pager validates every id it is given.
///
/// ```
/// use mappedpages::{PageId, Pager, SimStorage};
///
/// let mut pager = Pager::<4096, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id = pager.alloc().unwrap();
/// let stored: u64 = id.raw();
/// assert_eq!(PageId::<4096>::from_raw(stored), id);
/// assert!(PageId::<4096>::from_raw(0).get(&pager).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageId<const PAGE_SIZE: usize>(u64);

impl<const PAGE_SIZE: usize> PageId<PAGE_SIZE> {
    /// Rebuilds an id from [`raw`](Self::raw). The pager checks it on every use.
    pub const fn from_raw(raw: u64) -> Self {
        PageId(raw)
    }

    /// The page number, for storing in your own records.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

/// A fixed-size view into one page of the memory map.
///
/// Always held by reference; the reference borrows the pager, so the page cannot outlive a
/// remap. This is an unsized type like `str`, so that regular pages and sub-pages share it.
///
/// ```
/// use mappedpages::{Pager, SimStorage};
///
/// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id = pager.alloc().unwrap();
/// let page = id.get_mut(&mut pager).unwrap();
/// assert_eq!(page.len(), 1024);
/// assert!(!page.is_empty());
/// page.as_bytes_mut()[..5].copy_from_slice(b"hello");
/// assert_eq!(&page.as_bytes()[..5], b"hello");
/// ```
#[repr(transparent)]
pub struct MappedPage([u8]);

impl MappedPage {
    pub(crate) fn from_bytes(bytes: &[u8]) -> &MappedPage {
        // SAFETY: `MappedPage` is `repr(transparent)` over `[u8]`, so `&[u8]` and `&MappedPage`
        // have the same layout and metadata (the length); the lifetime is carried over unchanged.
        unsafe { &*(bytes as *const [u8] as *const MappedPage) }
    }

    pub(crate) fn from_bytes_mut(bytes: &mut [u8]) -> &mut MappedPage {
        // SAFETY: as in `from_bytes`; the exclusive borrow of `bytes` moves into the result.
        unsafe { &mut *(bytes as *mut [u8] as *mut MappedPage) }
    }

    /// The page's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The page's bytes, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// The page size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: pages are at least 1024 bytes (sub-pages at least 1).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for MappedPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedPage")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
