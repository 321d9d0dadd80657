//! `SubPageAllocator`: divides regular pages into fixed-size sub-pages, in memory only.
//!
//! The allocation policy, persistence and failure rules are documented on [`SubPageAllocator`]
//! (this module is private; its items are re-exported at the crate root).
//!
//! State: one `u64` mask per parent page in use (`parents`, bit `i` = slot `i` allocated, never
//! 0), and the set of those pages that have a free slot (`partial`), so that `alloc` finds a slot
//! in `O(log n)`. Every method that calls the pager computes its change first, calls the pager,
//! and applies the change only when the pager returned `Ok`: an error leaves the state as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use crate::error::MappedPageError;
use crate::page::{MappedPage, PageId};
use crate::pager::Pager;
use crate::storage::{MmapStorage, Storage};

/// Handle to one sub-page of a [`SubPageAllocator<PARENT_SIZE, SUB_SIZE, _>`]: a parent page and
/// a slot index in it.
///
/// Both sizes are part of the type, so an id of one allocator cannot be used with an allocator
/// of other sizes:
///
/// ```compile_fail,E0308
/// use mappedpages::{Pager, SimStorage, SubPageAllocator, SubPageId};
///
/// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let sub = SubPageAllocator::<1024, 256, SimStorage>::new(pager);
/// let id = SubPageId::<1024, 128>::from_raw(40);
/// let _ = id.get(&sub); // error: expected `&SubPageAllocator<_, 128, _>`, found `&SubPageAllocator<_, 256, SimStorage>`
/// ```
///
/// Store ids in your own records with [`raw`](Self::raw) (or [`parent`](Self::parent) and
/// [`slot`](Self::slot)) and rebuild them with [`from_raw`](Self::from_raw) (or
/// [`from_parts`](Self::from_parts)); the allocator checks every id it is given.
///
/// ```
/// use mappedpages::{Pager, SimStorage, SubPageAllocator, SubPageId};
///
/// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
/// let id = sub.alloc().unwrap();
/// let stored: u64 = id.raw();
/// assert_eq!(SubPageId::<1024, 128>::from_raw(stored), id);
/// assert_eq!(SubPageId::from_parts(id.parent(), id.slot()), Some(id));
/// ```
///
/// The sizes are checked when an id is built, like for the allocator (see
/// [`SubPageAllocator`] § Compile-time checks). With a parent size that is not a power of two
/// (which no [`Pager`] accepts), the "divides" rule is the one that fails:
///
/// ```compile_fail,E0080
/// use mappedpages::SubPageId;
///
/// // 256 is a power of two and smaller than 1000, but does not divide it.
/// let id = SubPageId::<1000, 256>::from_raw(0); // error: SUB_SIZE must divide PARENT_SIZE
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubPageId<const PARENT_SIZE: usize, const SUB_SIZE: usize> {
    /// The parent page number. Invariant: `page * PER_PAGE + slot` fits in a `u64`.
    page: u64,
    /// The slot in the parent page. Invariant: `slot < PER_PAGE`.
    slot: u32,
}

impl<const PARENT_SIZE: usize, const SUB_SIZE: usize> SubPageId<PARENT_SIZE, SUB_SIZE> {
    /// The size rules, checked at compile time by every constructor of a `SubPageId` or a
    /// `SubPageAllocator` (`let () = Self::VALID;`). One assert per rule, each with its message.
    const VALID: () = {
        assert!(
            SUB_SIZE.is_power_of_two(),
            "SUB_SIZE must be a power of two"
        );
        assert!(
            SUB_SIZE < PARENT_SIZE,
            "SUB_SIZE must be smaller than PARENT_SIZE"
        );
        assert!(
            PARENT_SIZE.is_multiple_of(SUB_SIZE),
            "SUB_SIZE must divide PARENT_SIZE"
        );
        assert!(
            PARENT_SIZE / SUB_SIZE <= 64,
            "PARENT_SIZE / SUB_SIZE must be at most 64 (one u64 mask per parent page)"
        );
    };

    /// Sub-pages per parent page: `PARENT_SIZE / SUB_SIZE`, between 2 and 64.
    ///
    /// ```
    /// use mappedpages::SubPageId;
    ///
    /// assert_eq!(SubPageId::<4096, 64>::PER_PAGE, 64);
    /// assert_eq!(SubPageId::<1024, 512>::PER_PAGE, 2);
    /// ```
    pub const PER_PAGE: u32 = {
        let () = Self::VALID;
        (PARENT_SIZE / SUB_SIZE) as u32
    };

    /// The mask of a parent page whose slots are all allocated.
    const FULL: u64 = u64::MAX >> (64 - Self::PER_PAGE);

    /// Builds the id of slot `slot` of page `parent`; `None` if `slot` is not below
    /// [`PER_PAGE`](Self::PER_PAGE) (or `parent` is so large that [`raw`](Self::raw) would
    /// overflow; no file has such a page). The allocator checks the id on every use.
    ///
    /// ```
    /// use mappedpages::{PageId, SubPageId};
    ///
    /// let id = SubPageId::<1024, 128>::from_parts(PageId::from_raw(7), 3).unwrap();
    /// assert_eq!((id.parent().raw(), id.slot()), (7, 3));
    /// assert!(SubPageId::<1024, 128>::from_parts(PageId::from_raw(7), 8).is_none());
    /// ```
    pub const fn from_parts(parent: PageId<PARENT_SIZE>, slot: u32) -> Option<Self> {
        let () = Self::VALID;
        if slot < Self::PER_PAGE && parent.raw() <= u64::MAX / Self::PER_PAGE as u64 {
            Some(SubPageId {
                page: parent.raw(),
                slot,
            })
        } else {
            None
        }
    }

    /// Rebuilds an id from [`raw`](Self::raw). Every `u64` decodes to some id; the allocator
    /// checks it on every use.
    ///
    /// ```
    /// use mappedpages::SubPageId;
    ///
    /// let id = SubPageId::<1024, 128>::from_raw(8 * 7 + 3);
    /// assert_eq!((id.parent().raw(), id.slot()), (7, 3));
    /// ```
    pub const fn from_raw(raw: u64) -> Self {
        let () = Self::VALID;
        let per_page = Self::PER_PAGE as u64;
        SubPageId {
            page: raw / per_page,
            slot: (raw % per_page) as u32,
        }
    }

    /// The id as one number, for storing in your own records: `parent * PER_PAGE + slot`, which
    /// is also the sub-page's byte offset in the file divided by `SUB_SIZE`.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 256, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// assert_eq!(id.raw(), id.parent().raw() * 4 + u64::from(id.slot()));
    /// ```
    pub const fn raw(self) -> u64 {
        self.page * Self::PER_PAGE as u64 + self.slot as u64
    }

    /// The parent page: the regular page of the pager that holds this sub-page.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 256, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// assert!(sub.pager().is_allocated(id.parent()));
    /// ```
    pub const fn parent(self) -> PageId<PARENT_SIZE> {
        PageId::from_raw(self.page)
    }

    /// The slot index in the parent page, below [`PER_PAGE`](Self::PER_PAGE): the sub-page
    /// starts `slot * SUB_SIZE` bytes into its parent.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 256, SimStorage>::new(pager);
    /// let a = sub.alloc().unwrap();
    /// let b = sub.alloc().unwrap();
    /// assert_eq!((a.slot(), b.slot()), (0, 1));
    /// assert_eq!(a.parent(), b.parent());
    /// ```
    pub const fn slot(self) -> u32 {
        self.slot
    }

    /// The bit of this id's slot in its parent's mask.
    const fn bit(self) -> u64 {
        slot_bit::<PARENT_SIZE, SUB_SIZE>(self.slot)
    }

    /// The bytes of this sub-page inside its parent page.
    const fn byte_range(self) -> Range<usize> {
        let start = self.slot as usize * SUB_SIZE;
        start..start + SUB_SIZE
    }

    fn not_allocated(self) -> MappedPageError {
        MappedPageError::SubPageNotAllocated {
            page: self.page,
            slot: self.slot,
        }
    }

    /// Borrows the sub-page's `SUB_SIZE` bytes. Fails with
    /// [`MappedPageError::SubPageNotAllocated`] if `allocator` did not hand out this id (or it was
    /// freed since), and with [`MappedPageError::Poisoned`] after a failed sync.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// assert_eq!(id.get(&sub).unwrap().len(), 128);
    /// sub.free(id).unwrap();
    /// assert!(id.get(&sub).is_err());
    /// ```
    pub fn get<'a, S: Storage>(
        &self,
        allocator: &'a SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>,
    ) -> Result<&'a MappedPage, MappedPageError> {
        allocator.check_poison()?;
        allocator.check_owned(*self)?;
        let parent = allocator.pager.page(self.parent())?;
        parent
            .as_bytes()
            .get(self.byte_range())
            .map(MappedPage::from_bytes)
            .ok_or_else(|| self.not_allocated())
    }

    /// Borrows the sub-page's `SUB_SIZE` bytes for writing; fails like [`get`](Self::get).
    /// Writes are not durable until [`Pager::sync_page`] of the parent page (reach it with
    /// [`SubPageAllocator::sync_parent`]) or [`SubPageAllocator::sync_all`] returns.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let a = sub.alloc().unwrap();
    /// let b = sub.alloc().unwrap();
    /// a.get_mut(&mut sub).unwrap().as_bytes_mut().fill(0xAA);
    /// b.get_mut(&mut sub).unwrap().as_bytes_mut().fill(0xBB);
    /// assert!(a.get(&sub).unwrap().as_bytes().iter().all(|&x| x == 0xAA));
    /// assert!(b.get(&sub).unwrap().as_bytes().iter().all(|&x| x == 0xBB));
    /// ```
    pub fn get_mut<'a, S: Storage>(
        &self,
        allocator: &'a mut SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>,
    ) -> Result<&'a mut MappedPage, MappedPageError> {
        allocator.check_poison()?;
        allocator.check_owned(*self)?;
        let parent = allocator.pager.page_mut(self.parent())?;
        match parent.as_bytes_mut().get_mut(self.byte_range()) {
            Some(bytes) => Ok(MappedPage::from_bytes_mut(bytes)),
            None => Err(self.not_allocated()),
        }
    }
}

/// The mask bit of `slot`, or 0 for a slot past the end of a parent page.
const fn slot_bit<const PARENT_SIZE: usize, const SUB_SIZE: usize>(slot: u32) -> u64 {
    if slot < SubPageId::<PARENT_SIZE, SUB_SIZE>::PER_PAGE {
        1 << slot
    } else {
        0
    }
}

/// The slots set in `mask`, in increasing order.
fn slots_of(mut mask: u64) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let slot = mask.trailing_zeros();
        mask &= mask - 1;
        Some(slot)
    })
}

/// Sets the `count` lowest clear bits of `mask` (or all of them, if fewer are clear within
/// `full`); returns the new mask and how many bits were set.
fn take_slots(mask: u64, full: u64, count: usize) -> (u64, usize) {
    let mut new_mask = mask;
    let mut taken = 0;
    while taken < count && new_mask != full {
        new_mask |= 1 << (!new_mask).trailing_zeros();
        taken += 1;
    }
    (new_mask, taken)
}

/// Divides the regular pages of a [`Pager<PARENT_SIZE, S>`] into sub-pages of `SUB_SIZE` bytes.
///
/// A file has one page size. When a workload needs smaller units, a `SubPageAllocator` takes
/// regular pages (*parent pages*) from the [`Pager`] it owns and divides each into
/// `PARENT_SIZE / SUB_SIZE` *slots* of `SUB_SIZE` bytes. Sub-pages are handed out as
/// [`SubPageId<PARENT_SIZE, SUB_SIZE>`] and read and written as `SUB_SIZE`-byte [`MappedPage`]s
/// with [`SubPageId::get`] and [`SubPageId::get_mut`]. The allocator also implements
/// [`PageAllocator`](crate::PageAllocator) and [`BulkPageAllocator`](crate::BulkPageAllocator).
///
/// # Allocation policy
///
/// * [`alloc`](Self::alloc) takes a free slot of a parent page already in use when there is
///   one (the lowest-numbered such page, found in `O(log n)`; no commit), and otherwise
///   allocates a new parent page from the pager (one commit).
/// * When [`free`](Self::free) leaves a parent page with no allocated slot, the page goes back
///   to the pager (one commit).
/// * The bulk forms make at most one pager call, so at most one commit, each:
///   [`alloc_bulk`](Self::alloc_bulk) fills the free slots of the parent pages in use first and
///   takes all the new parent pages it needs with one [`Pager::alloc_bulk`];
///   [`free_bulk`](Self::free_bulk) returns every parent page it empties with one
///   [`Pager::free_bulk`].
///
/// ```
/// use mappedpages::{Pager, SimStorage, SubPageAllocator};
///
/// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
/// let ids = sub.alloc_bulk(10).unwrap(); // 8 slots per parent page: two parent pages
/// assert_eq!(sub.parent_page_count(), 2);
/// assert_eq!(sub.pager().allocated_page_count(), 2);
/// ids[9].get_mut(&mut sub).unwrap().as_bytes_mut()[..2].copy_from_slice(b"hi");
/// assert_eq!(&ids[9].get(&sub).unwrap().as_bytes()[..2], b"hi");
/// sub.free_bulk(ids).unwrap(); // both parent pages go back to the pager, in one commit
/// assert_eq!(sub.pager().allocated_page_count(), 0);
/// ```
///
/// # Compile-time checks
///
/// `SUB_SIZE` must be a power of two, smaller than `PARENT_SIZE`, must divide it, and give at
/// most 64 slots per parent page. The rules are checked in that order; each broken rule is a
/// compile error naming it. (`PARENT_SIZE` itself is checked by [`Pager`]: a power of two of at
/// least 1024. For such a parent size, a `SUB_SIZE` that does not divide it is never a power of
/// two, so the first rule is the one reported.)
///
/// ```compile_fail,E0080
/// use mappedpages::{Pager, SimStorage, SubPageAllocator};
///
/// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let sub = SubPageAllocator::<1024, 1000, SimStorage>::new(pager); // error: SUB_SIZE must be a power of two
/// ```
///
/// ```compile_fail,E0080
/// use mappedpages::{Pager, SimStorage, SubPageAllocator};
///
/// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let sub = SubPageAllocator::<1024, 1024, SimStorage>::new(pager); // error: SUB_SIZE must be smaller than PARENT_SIZE
/// ```
///
/// ```compile_fail,E0080
/// use mappedpages::{Pager, SimStorage, SubPageAllocator};
///
/// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// // 768 does not divide 1024; like every such size it is not a power of two either, and that
/// // rule is checked first.
/// let sub = SubPageAllocator::<1024, 768, SimStorage>::new(pager); // error: SUB_SIZE must be a power of two
/// ```
///
/// ```compile_fail,E0080
/// use mappedpages::{Pager, SimStorage, SubPageAllocator};
///
/// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// // 1024 / 8 = 128 slots per parent page.
/// let sub = SubPageAllocator::<1024, 8, SimStorage>::new(pager); // error: PARENT_SIZE / SUB_SIZE must be at most 64
/// ```
///
/// # Persistence
///
/// Which slots are allocated lives in this value only; the file holds the parent pages as
/// ordinary allocated pages of the pager, and their bytes. A parent page is allocated (by a
/// commit) before any of its slots is handed out, and freed only after its last slot is. After
/// a restart, reopen the pager and call [`rebuild`](Self::rebuild) with the ids you own.
///
/// Sub-page contents are yours, as for regular pages: they become durable when
/// [`sync_parent`](Self::sync_parent) of their parent page or [`sync_all`](Self::sync_all)
/// returns. A slot is *not* zeroed when it is handed out: it holds whatever it held before
/// (zeros in a parent page never used, old bytes of a slot freed earlier or of a parent page
/// the pager reused).
///
/// # Failures
///
/// When a call returns an error, the allocator's state (which sub-pages are allocated, which
/// parent pages it holds) is exactly what it was before the call: nothing is lost and no slot can
/// be handed out twice. An error of the pager (a failed growth, or a failed sync) is passed on
/// as is. A failed sync poisons the pager, and from then on every call that allocates, frees,
/// reads, writes or syncs a sub-page fails with [`MappedPageError::Poisoned`]; the counts,
/// [`is_allocated`](Self::is_allocated) and [`iter_allocated`](Self::iter_allocated) keep
/// working (they report the allocator's own state). As for the pager, the failed call's
/// commit may or may not be found when the file is opened again: a parent page allocated by a
/// failed `alloc` may be allocated in the reopened file with no sub-page of yours in it (free it
/// with [`Pager::free`], before `rebuild` or through [`into_pager`](Self::into_pager)), and the parent page of a sub-page whose
/// `free` failed may be free in the reopened file (`rebuild` then rejects that sub-page, which
/// you were freeing anyway).
pub struct SubPageAllocator<
    const PARENT_SIZE: usize,
    const SUB_SIZE: usize,
    S: Storage = MmapStorage,
> {
    pager: Pager<PARENT_SIZE, S>,
    /// Parent pages in use → mask of their allocated slots (bit `i` for slot `i`; never 0).
    parents: BTreeMap<u64, u64>,
    /// The parent pages in use that have a free slot.
    partial: BTreeSet<u64>,
    /// Sub-pages allocated: the sum of the masks' popcounts.
    allocated: u64,
}

impl<const PARENT_SIZE: usize, const SUB_SIZE: usize, S: Storage> fmt::Debug
    for SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubPageAllocator")
            .field("sub_size", &SUB_SIZE)
            .field("allocated_count", &self.allocated)
            .field("parent_page_count", &self.parents.len())
            .field("pager", &self.pager)
            .finish_non_exhaustive()
    }
}

impl<const PARENT_SIZE: usize, const SUB_SIZE: usize, S: Storage>
    SubPageAllocator<PARENT_SIZE, SUB_SIZE, S>
{
    const FULL: u64 = SubPageId::<PARENT_SIZE, SUB_SIZE>::FULL;
    const PER_PAGE: usize = SubPageId::<PARENT_SIZE, SUB_SIZE>::PER_PAGE as usize;

    /// Wraps `pager` with no sub-page allocated. Pages the pager already holds are left alone:
    /// the allocator only ever frees parent pages it allocated itself (or was given by
    /// [`rebuild`](Self::rebuild)).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mine = pager.alloc().unwrap();
    /// let sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// assert_eq!(sub.allocated_count(), 0);
    /// assert!(sub.pager().is_allocated(mine));
    /// ```
    pub fn new(pager: Pager<PARENT_SIZE, S>) -> Self {
        let () = SubPageId::<PARENT_SIZE, SUB_SIZE>::VALID;
        SubPageAllocator {
            pager,
            parents: BTreeMap::new(),
            partial: BTreeSet::new(),
            allocated: 0,
        }
    }

    /// Rebuilds the allocator after a restart, from the ids of the sub-pages you own (in any
    /// order), typically a reopened pager and ids stored with [`SubPageId::raw`].
    ///
    /// Every id is checked before anything is built: its parent must be an allocated regular
    /// page of `pager` (else the pager's error for that page: [`MappedPageError::NotAllocated`],
    /// [`OutOfBounds`](MappedPageError::OutOfBounds), [`ReservedPage`](MappedPageError::ReservedPage)
    /// or [`Poisoned`](MappedPageError::Poisoned)), and no id may appear twice
    /// ([`MappedPageError::DuplicateSubPageId`]). On error the pager is dropped; use
    /// [`try_rebuild`](Self::try_rebuild) to get it back.
    ///
    /// Parent pages none of whose sub-pages are passed here are not known to the allocator: they
    /// stay allocated in the pager and the allocator never uses or frees them. To get them back,
    /// free them with [`Pager::free`] (before calling this, or through
    /// [`into_pager`](Self::into_pager)).
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SimStorage, SubPageAllocator, SubPageId};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// id.get_mut(&mut sub).unwrap().as_bytes_mut()[0] = 42;
    /// sub.sync_all().unwrap();
    /// let stored = id.raw(); // kept in your own records
    ///
    /// // Restart.
    /// let storage = sub.into_pager().into_storage();
    /// let pager = Pager::<1024, SimStorage>::open_in(storage).unwrap();
    /// let id = SubPageId::<1024, 128>::from_raw(stored);
    /// let sub = SubPageAllocator::<1024, 128, SimStorage>::rebuild(pager, [id]).unwrap();
    /// assert_eq!(id.get(&sub).unwrap().as_bytes()[0], 42);
    /// assert_eq!(sub.allocated_count(), 1);
    ///
    /// // An id whose parent page the pager does not hold is rejected.
    /// let mut pager = sub.into_pager();
    /// pager.free(id.parent()).unwrap();
    /// assert!(matches!(
    ///     SubPageAllocator::<1024, 128, SimStorage>::rebuild(pager, [id]),
    ///     Err(MappedPageError::NotAllocated { page }) if page == id.parent().raw()
    /// ));
    /// ```
    pub fn rebuild(
        pager: Pager<PARENT_SIZE, S>,
        owned: impl IntoIterator<Item = SubPageId<PARENT_SIZE, SUB_SIZE>>,
    ) -> Result<Self, MappedPageError> {
        Self::try_rebuild(pager, owned).map_err(|(error, _)| error)
    }

    /// Like [`rebuild`](Self::rebuild), but gives the pager back when an id is rejected.
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// let pager = sub.into_pager();
    ///
    /// let (error, pager) =
    ///     SubPageAllocator::<1024, 128, SimStorage>::try_rebuild(pager, [id, id]).unwrap_err();
    /// assert!(matches!(error, MappedPageError::DuplicateSubPageId { .. }));
    /// let sub = SubPageAllocator::<1024, 128, SimStorage>::try_rebuild(pager, [id]).unwrap();
    /// assert!(sub.is_allocated(id));
    /// ```
    #[allow(clippy::result_large_err)] // the pager is given back on purpose, like `try_open_in`
    pub fn try_rebuild(
        pager: Pager<PARENT_SIZE, S>,
        owned: impl IntoIterator<Item = SubPageId<PARENT_SIZE, SUB_SIZE>>,
    ) -> Result<Self, (MappedPageError, Pager<PARENT_SIZE, S>)> {
        let () = SubPageId::<PARENT_SIZE, SUB_SIZE>::VALID;
        let mut parents: BTreeMap<u64, u64> = BTreeMap::new();
        let mut allocated = 0u64;
        for id in owned {
            if let Err(error) = pager.page(id.parent()) {
                return Err((error, pager));
            }
            let bit = id.bit();
            if bit == 0 {
                return Err((id.not_allocated(), pager));
            }
            let mask = parents.entry(id.page).or_insert(0);
            if *mask & bit != 0 {
                let error = MappedPageError::DuplicateSubPageId {
                    page: id.page,
                    slot: id.slot,
                };
                return Err((error, pager));
            }
            *mask |= bit;
            allocated += 1;
        }
        let partial = parents
            .iter()
            .filter(|&(_, &mask)| mask != Self::FULL)
            .map(|(&page, _)| page)
            .collect();
        Ok(SubPageAllocator {
            pager,
            parents,
            partial,
            allocated,
        })
    }

    /// The pager, for its counts, its storage, or [`Pager::sync_page`] of parent pages.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// sub.alloc().unwrap();
    /// assert_eq!(sub.pager().allocated_page_count(), 1);
    /// ```
    pub fn pager(&self) -> &Pager<PARENT_SIZE, S> {
        &self.pager
    }

    /// Gives the pager back. The parent pages stay allocated in it; keep the ids you own to
    /// [`rebuild`](Self::rebuild) the allocator later.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// let pager = sub.into_pager();
    /// assert!(pager.is_allocated(id.parent()));
    /// ```
    pub fn into_pager(self) -> Pager<PARENT_SIZE, S> {
        self.pager
    }

    /// Sub-pages currently allocated.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let ids = sub.alloc_bulk(3).unwrap();
    /// sub.free(ids[0]).unwrap();
    /// assert_eq!(sub.allocated_count(), 2);
    /// ```
    pub fn allocated_count(&self) -> u64 {
        self.allocated
    }

    /// Parent pages the allocator holds (each has at least one allocated sub-page).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 512, SimStorage>::new(pager);
    /// sub.alloc_bulk(3).unwrap(); // 2 slots per parent page
    /// assert_eq!(sub.parent_page_count(), 2);
    /// ```
    pub fn parent_page_count(&self) -> u64 {
        self.parents.len() as u64
    }

    /// Free slots in the parent pages the allocator holds: the sub-pages it can hand out
    /// without allocating a parent page.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// sub.alloc_bulk(3).unwrap();
    /// assert_eq!(sub.free_slot_count(), 5);
    /// ```
    pub fn free_slot_count(&self) -> u64 {
        self.parent_page_count() * Self::PER_PAGE as u64 - self.allocated
    }

    /// True if `id` names a sub-page this allocator handed out (or was given by
    /// [`rebuild`](Self::rebuild)) and that is not freed.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// assert!(sub.is_allocated(id));
    /// sub.free(id).unwrap();
    /// assert!(!sub.is_allocated(id));
    /// ```
    pub fn is_allocated(&self, id: SubPageId<PARENT_SIZE, SUB_SIZE>) -> bool {
        self.parents
            .get(&id.page)
            .is_some_and(|&mask| mask & id.bit() != 0)
    }

    /// Iterates over the allocated sub-pages in increasing order (of parent page, then slot):
    /// the list to store for [`rebuild`](Self::rebuild). Keeps working on a poisoned pager: it
    /// reports the allocator's own bookkeeping.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let ids = sub.alloc_bulk(3).unwrap();
    /// sub.free(ids[1]).unwrap();
    /// let listed: Vec<_> = sub.iter_allocated().collect();
    /// assert_eq!(listed, vec![ids[0], ids[2]]);
    /// ```
    pub fn iter_allocated(&self) -> impl Iterator<Item = SubPageId<PARENT_SIZE, SUB_SIZE>> {
        self.parents
            .iter()
            .flat_map(|(&page, &mask)| slots_of(mask).map(move |slot| SubPageId { page, slot }))
    }

    /// Makes the contents of the parent page of `id` durable (with every other sub-page in it).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// id.get_mut(&mut sub).unwrap().as_bytes_mut().fill(7);
    /// sub.sync_parent(id).unwrap();
    /// let offset = (id.raw() * 128) as usize;
    /// assert_eq!(sub.pager().storage().durable_image()[offset], 7);
    /// ```
    pub fn sync_parent(
        &mut self,
        id: SubPageId<PARENT_SIZE, SUB_SIZE>,
    ) -> Result<(), MappedPageError> {
        self.check_poison()?;
        self.check_owned(id)?;
        self.pager.sync_page(id.parent())
    }

    /// Makes the contents of every page of the pager durable ([`Pager::sync_all`]).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let id = sub.alloc().unwrap();
    /// id.get_mut(&mut sub).unwrap().as_bytes_mut().fill(7);
    /// sub.sync_all().unwrap();
    /// let offset = (id.raw() * 128) as usize;
    /// assert_eq!(sub.pager().storage().durable_image()[offset], 7);
    /// ```
    pub fn sync_all(&mut self) -> Result<(), MappedPageError> {
        self.pager.sync_all()
    }

    /// Fails with the pager's [`MappedPageError::Poisoned`] error if the pager is poisoned.
    fn check_poison(&self) -> Result<(), MappedPageError> {
        self.pager.check_poison()
    }

    /// Fails with [`MappedPageError::SubPageNotAllocated`] unless `id` is allocated here.
    fn check_owned(&self, id: SubPageId<PARENT_SIZE, SUB_SIZE>) -> Result<(), MappedPageError> {
        if self.is_allocated(id) {
            Ok(())
        } else {
            Err(id.not_allocated())
        }
    }

    /// Allocates one sub-page: a free slot of a parent page in use if there is one (no commit),
    /// otherwise slot 0 of a new parent page (one commit; it may grow the file). The sub-page's
    /// bytes are not zeroed (see [`SubPageAllocator`] § Persistence).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 512, SimStorage>::new(pager);
    /// let a = sub.alloc().unwrap(); // allocates a parent page
    /// let generation = sub.pager().generation();
    /// let b = sub.alloc().unwrap(); // the second slot of the same page: no commit
    /// assert_eq!(a.parent(), b.parent());
    /// assert_eq!(sub.pager().generation(), generation);
    /// let c = sub.alloc().unwrap(); // the page is full: a new parent page
    /// assert_ne!(c.parent(), a.parent());
    /// ```
    pub fn alloc(&mut self) -> Result<SubPageId<PARENT_SIZE, SUB_SIZE>, MappedPageError> {
        self.check_poison()?;
        while let Some(&page) = self.partial.first() {
            let Some(mask) = self.parents.get_mut(&page) else {
                // Not reached: every partial page is in `parents`. Drop the stale entry.
                self.partial.remove(&page);
                continue;
            };
            let slot = (!*mask).trailing_zeros();
            *mask |= 1 << slot;
            if *mask == Self::FULL {
                self.partial.remove(&page);
            }
            self.allocated += 1;
            return Ok(SubPageId { page, slot });
        }
        // No free slot: a new parent page. Nothing above changed, so an error leaves all as it was.
        let page = self.pager.alloc()?.raw();
        self.parents.insert(page, 1);
        if 1 != Self::FULL {
            self.partial.insert(page);
        }
        self.allocated += 1;
        Ok(SubPageId { page, slot: 0 })
    }

    /// Frees one sub-page. When it was the last allocated sub-page of its parent page, the
    /// parent page goes back to the pager (one commit). Fails with
    /// [`MappedPageError::SubPageNotAllocated`] if `id` is not allocated here.
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let a = sub.alloc().unwrap();
    /// let b = sub.alloc().unwrap();
    /// sub.free(a).unwrap();
    /// assert_eq!(sub.pager().allocated_page_count(), 1);
    /// sub.free(b).unwrap(); // the parent page is empty: back to the pager
    /// assert_eq!(sub.pager().allocated_page_count(), 0);
    /// assert!(matches!(sub.free(b), Err(MappedPageError::SubPageNotAllocated { .. })));
    /// ```
    pub fn free(&mut self, id: SubPageId<PARENT_SIZE, SUB_SIZE>) -> Result<(), MappedPageError> {
        self.check_poison()?;
        self.check_owned(id)?;
        let remaining = self
            .parents
            .get(&id.page)
            .map_or(0, |&mask| mask & !id.bit());
        if remaining == 0 {
            // The pager first: on error nothing here has changed.
            self.pager.free(id.parent())?;
            self.parents.remove(&id.page);
            self.partial.remove(&id.page);
        } else {
            self.parents.insert(id.page, remaining);
            self.partial.insert(id.page);
        }
        self.allocated -= 1;
        Ok(())
    }

    /// Allocates `count` sub-pages: the free slots of the parent pages in use first (lowest
    /// page first), then new parent pages, all taken with one [`Pager::alloc_bulk`] (one commit).
    /// Returns an empty `Vec` for `count == 0`. On error no sub-page is allocated.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let first = sub.alloc().unwrap();
    /// let generation = sub.pager().generation();
    /// let ids = sub.alloc_bulk(7 + 16).unwrap(); // fills first's page, then two new pages
    /// assert_eq!(sub.pager().generation(), generation + 1); // one commit
    /// assert_eq!(ids.iter().filter(|id| id.parent() == first.parent()).count(), 7);
    /// assert_eq!(sub.parent_page_count(), 3);
    /// assert_eq!(sub.free_slot_count(), 0);
    /// ```
    pub fn alloc_bulk(
        &mut self,
        count: usize,
    ) -> Result<Vec<SubPageId<PARENT_SIZE, SUB_SIZE>>, MappedPageError> {
        self.check_poison()?;
        if count == 0 {
            return Ok(Vec::new());
        }
        // Plan the slots taken from the parent pages in use, without changing anything yet.
        let mut fills: Vec<(u64, u64)> = Vec::new();
        let mut remaining = count;
        for &page in &self.partial {
            if remaining == 0 {
                break;
            }
            let Some(&mask) = self.parents.get(&page) else {
                continue;
            };
            let (new_mask, taken) = take_slots(mask, Self::FULL, remaining);
            remaining -= taken;
            fills.push((page, new_mask));
        }
        // The pager call comes before any change here: on error, all is as it was.
        let fresh = if remaining > 0 {
            self.pager.alloc_bulk(remaining.div_ceil(Self::PER_PAGE))?
        } else {
            Vec::new()
        };
        let mut ids = Vec::with_capacity(count);
        for (page, new_mask) in fills {
            let old_mask = self.parents.insert(page, new_mask).unwrap_or(0);
            ids.extend(slots_of(new_mask & !old_mask).map(|slot| SubPageId { page, slot }));
            if new_mask == Self::FULL {
                self.partial.remove(&page);
            }
        }
        for parent in fresh {
            let page = parent.raw();
            let (mask, taken) = take_slots(0, Self::FULL, remaining);
            remaining -= taken;
            ids.extend(slots_of(mask).map(|slot| SubPageId { page, slot }));
            self.parents.insert(page, mask);
            if mask != Self::FULL {
                self.partial.insert(page);
            }
        }
        self.allocated += ids.len() as u64;
        Ok(ids)
    }

    /// Frees every sub-page in `ids`. Every id is checked first, in order: one that is not
    /// allocated here fails the call with [`MappedPageError::SubPageNotAllocated`], one that
    /// appears twice with [`MappedPageError::DuplicateSubPageId`], and nothing is freed. The
    /// parent pages left empty go back to the pager with one [`Pager::free_bulk`] (one commit).
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SimStorage, SubPageAllocator};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut sub = SubPageAllocator::<1024, 128, SimStorage>::new(pager);
    /// let ids = sub.alloc_bulk(20).unwrap();
    /// let bad = vec![ids[0], ids[1], ids[0]];
    /// assert!(matches!(sub.free_bulk(bad), Err(MappedPageError::DuplicateSubPageId { .. })));
    /// assert_eq!(sub.allocated_count(), 20);
    /// sub.free_bulk(ids).unwrap();
    /// assert_eq!(sub.allocated_count(), 0);
    /// assert_eq!(sub.pager().allocated_page_count(), 0);
    /// ```
    pub fn free_bulk(
        &mut self,
        ids: Vec<SubPageId<PARENT_SIZE, SUB_SIZE>>,
    ) -> Result<(), MappedPageError> {
        self.check_poison()?;
        if ids.is_empty() {
            return Ok(());
        }
        // Parent page → the bits to clear in it.
        let mut clearing: BTreeMap<u64, u64> = BTreeMap::new();
        for &id in &ids {
            self.check_owned(id)?;
            let bits = clearing.entry(id.page).or_insert(0);
            if *bits & id.bit() != 0 {
                return Err(MappedPageError::DuplicateSubPageId {
                    page: id.page,
                    slot: id.slot,
                });
            }
            *bits |= id.bit();
        }
        let emptied: Vec<PageId<PARENT_SIZE>> = clearing
            .iter()
            .filter(|&(page, &bits)| self.parents.get(page).is_some_and(|&m| m & !bits == 0))
            .map(|(&page, _)| PageId::from_raw(page))
            .collect();
        // The pager call comes before any change here: on error, all is as it was.
        if !emptied.is_empty() {
            self.pager.free_bulk(emptied)?;
        }
        for (page, bits) in clearing {
            let remaining = self.parents.get(&page).map_or(0, |&mask| mask & !bits);
            if remaining == 0 {
                self.parents.remove(&page);
                self.partial.remove(&page);
            } else {
                self.parents.insert(page, remaining);
                self.partial.insert(page);
            }
        }
        self.allocated -= ids.len() as u64;
        Ok(())
    }
}
