//! `SharedPager`: one `Pager` used by many threads at once, with group commit (SPEC.md §3.10).
//!
//! * A reader/writer lock around the pager (and the group in flight, `flight.rs`): page guards
//!   hold it for reading; the group-commit leader (while it stages, between barriers and while
//!   it publishes) and `write_page` hold it for writing. A remap (growth) can therefore only
//!   happen while no guard is alive. No one holds it during a device flush: the leader waits for
//!   its barriers with the lock released, and readers answer from the durable state meanwhile.
//! * A queue (mutex + condition variable) of operations that change allocation state. A caller
//!   enqueues its operation; if no leader is active it becomes the leader: it takes the pager
//!   lock for writing, drains the queue, stages every operation in memory, commits once, and
//!   publishes every result; then it gives up leadership and wakes everybody. A follower sleeps
//!   until its result is published, or until no leader is active while its operation is still
//!   queued, and then leads the next group itself.
//! * A per-thread record (`HELD`) of the `SharedPager`s whose pager lock the thread holds (a
//!   guard, `write_page`, a sync, a group-committed call). A call that would wait for a lock its
//!   own thread holds fails with `MappedPageError::Reentrant` instead of deadlocking.
//!
//! Every primitive comes from `crate::sync`, which is loom's under `--cfg loom` (`tests/loom.rs`).
//!
//! This file is the public face (the handle, its guards, its calls, the re-entry check); the
//! group-commit engine (the queue, the leader, staging, publishing) is in `group.rs`.

mod flight;
mod group;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::MappedPageError;
use crate::page::{MappedPage, PageId};
use crate::pager::Pager;
use crate::protected::ProtectedPageId;
use crate::storage::{MmapStorage, Storage};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use flight::{Flight, ProtectedView, RegularView, not_yet_allocated};
use group::{Done, Fill, Op, Queue};

/// A handle on one [`Pager`] that many threads use at once: `Send + Sync` (for a `Send + Sync`
/// storage, as both backends are), and cheap to clone (one reference count).
///
/// * **Reads** go through guards: [`read`](Self::read) (the whole pager, read-only),
///   [`page`](Self::page) and [`protected_page`](Self::protected_page) (one page). Any number of
///   threads hold guards at once. A guard holds the pager's lock for reading, so no group is
///   staged and no growth (remap) happens while it is alive: a guard never sees a commit half
///   done, and its bytes are never unmapped under it. Readers never wait for a device flush: a
///   group's barriers run with the lock released, and a guard taken meanwhile shows the durable
///   state, never a change that is not durable yet (SPEC.md §3.10).
/// * **Allocation changes** ([`alloc`](Self::alloc), [`free`](Self::free), their bulk forms, the
///   protected forms and [`write_protected`](Self::write_protected)) are *group-committed*:
///   operations that arrive while a commit is running are staged together by one leader thread
///   and made durable by a single commit (one protocol round: two syncs, or one in
///   [`CommitMode::SingleSync`](crate::CommitMode)). Each call returns only after a commit that
///   contains its change is durable, with the same guarantee as the `Pager` method of the same
///   name.
/// * **Failures**: an operation that fails its own checks (a double free, a bad id, capacity, a
///   failed growth) gets its own error and does not join the commit. A failed commit poisons the
///   pager (SPEC.md §3.4) and every caller whose change was in it gets the error; every later
///   call gets [`MappedPageError::Poisoned`].
/// * **Regular page contents** are written with [`write_page`](Self::write_page) and made durable
///   with [`sync_page`](Self::sync_page) or [`sync_all`](Self::sync_all), as with `Pager`.
///
/// **Not re-entrant: a re-entrant call fails instead of deadlocking.** While one of its guards
/// is alive on a thread, or while a thread runs a [`write_page`](Self::write_page) or
/// [`write_protected`](Self::write_protected) closure, that thread holds this `SharedPager`'s
/// lock, and any call that takes the lock would wait for it forever. So every such call on the
/// same `SharedPager` (through any clone) from that thread fails at once with
/// [`MappedPageError::Reentrant`] and changes nothing: the guard-returning calls
/// ([`try_read`](Self::try_read), [`page`](Self::page), [`protected_page`](Self::protected_page)
/// — a second guard would wait behind any queued commit), [`write_page`](Self::write_page),
/// [`sync_page`](Self::sync_page), [`sync_all`](Self::sync_all) and every group-committed call.
/// [`read`](Self::read), which returns no `Result`, panics with that error's message instead.
/// Only [`stats`](Self::stats), [`pending_operations`](Self::pending_operations) (they take only
/// the queue lock) and [`into_inner`](Self::into_inner) work there. What to do instead: drop the
/// guard first, or make the call after the closure returns; read several pages through one
/// [`read`](Self::read) guard. A `write_protected` closure runs on the thread that leads the group
/// commit, which holds the lock for the whole group, so any call on the `SharedPager` from inside
/// one fails, whichever thread submitted it. The check costs one thread-local lookup per call.
/// Guards are not `Send`, so a guard is dropped on the thread that took it:
///
/// ```compile_fail
/// use mappedpages::{Pager, SharedPager, SimStorage};
///
/// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
/// let guard = shared.read();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // error: `PagerGuard` cannot be sent between threads
/// });
/// ```
///
/// Not detected, because no thread waits for itself: a cycle across two `SharedPager`s (thread 1
/// holds a guard of `a` and calls `b` while thread 2 holds a guard of `b` and calls `a`; take
/// guards of several `SharedPager`s in one fixed order), and a thread that holds a guard while
/// it waits (`join`, a channel) for another thread that calls the same `SharedPager`. SPEC.md
/// §3.10 gives the concurrency model.
///
/// ```
/// use mappedpages::{MappedPageError, Pager, SharedPager, SimStorage};
///
/// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
/// let id = shared.alloc().unwrap();
/// let other = shared.clone();
/// let inner = shared.write_page(id, |_| other.alloc()).unwrap();
/// assert!(matches!(inner, Err(MappedPageError::Reentrant { operation: "alloc" })));
/// let guard = shared.page(id).unwrap();
/// assert!(matches!(shared.sync_page(id), Err(MappedPageError::Reentrant { .. })));
/// drop(guard);
/// shared.sync_page(id).unwrap();
/// ```
///
/// # Example
///
/// ```
/// use mappedpages::{Pager, SharedPager, SimStorage};
///
/// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let shared = SharedPager::new(pager);
///
/// let workers: Vec<_> = (0..4u8)
///     .map(|n| {
///         let shared = shared.clone();
///         std::thread::spawn(move || {
///             let id = shared.alloc().unwrap(); // durable when it returns
///             shared.write_page(id, |page| page.as_bytes_mut().fill(n)).unwrap();
///             shared.sync_page(id).unwrap();
///             (id, n)
///         })
///     })
///     .collect();
/// for worker in workers {
///     let (id, n) = worker.join().unwrap();
///     assert!(shared.page(id).unwrap().as_bytes().iter().all(|&b| b == n));
/// }
/// assert_eq!(shared.read().allocated_page_count(), 4);
/// ```
pub struct SharedPager<const PAGE_SIZE: usize, S: Storage = MmapStorage> {
    shared: Arc<Shared<PAGE_SIZE, S>>,
}

struct Shared<const PAGE_SIZE: usize, S: Storage> {
    /// This `SharedPager`'s entry in the per-thread record of held locks (`HELD`), unique in
    /// the process (from `NEXT_ID`, never reused).
    id: u64,
    pager: RwLock<Locked<PAGE_SIZE, S>>,
    queue: Mutex<Queue<PAGE_SIZE>>,
    /// Notified (all waiters) whenever results are published or leadership is given up.
    changed: Condvar,
}

/// What the pager lock protects: the pager, and what the group in flight (if any) changed in
/// its memory that is not durable yet (`flight.rs`). Both change only under the lock held for
/// writing, so a reader sees a pair that belongs together.
struct Locked<const PAGE_SIZE: usize, S: Storage> {
    pager: Pager<PAGE_SIZE, S>,
    /// `Some` from the moment a leader releases the lock for its group's barrier until it
    /// publishes the group (or poisons the pager).
    flight: Option<Flight>,
}

/// Ids for `Shared::id`. Not part of any loom model: only uniqueness matters.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

crate::sync::thread_local_const! {
    /// The ids of the `SharedPager`s whose pager lock the current thread holds or is waiting for:
    /// a guard of it is alive, or the thread is inside its `write_page`, `sync_page`, `sync_all`
    /// or a group-committed call (as a follower or as the leader, which runs `write_protected`
    /// closures). Almost always empty or one id, so a lookup is a short scan.
    static HELD: RefCell<Vec<u64>> = RefCell::new(Vec::new());
}

/// The current thread's entry in `HELD` for one `SharedPager`, removed when dropped. `!Send`
/// (like the lock guards it sits next to), so it is dropped on the thread that made it; `Sync`,
/// so a guard that contains it stays `Sync`.
struct Held {
    id: u64,
    _not_send: PhantomData<std::sync::MutexGuard<'static, ()>>,
}

impl Drop for Held {
    #[inline]
    fn drop(&mut self) {
        // `try_with`: a guard dropped by another thread-local's destructor after `HELD`'s own
        // has nothing left to remove itself from.
        let _ = HELD.try_with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|&id| id == self.id) {
                held.swap_remove(at);
            }
        });
    }
}

/// Counters of a [`SharedPager`]'s group commits, from [`SharedPager::stats`].
///
/// ```
/// use mappedpages::{Pager, SharedPager, SimStorage};
///
/// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
/// shared.alloc().unwrap();
/// let stats = shared.stats();
/// assert_eq!((stats.commits, stats.operations), (1, 1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Group commits that completed: each one protocol round (a commit), or one barrier for a
    /// group of [`sync_page`](SharedPager::sync_page) and [`sync_all`](SharedPager::sync_all)
    /// calls alone.
    pub commits: u64,
    /// Calls acknowledged by those groups (allocation changes and syncs). `operations / commits`
    /// is the mean group size.
    pub operations: u64,
}

/// Read access to the whole [`Pager`] behind a [`SharedPager`], from [`SharedPager::read`]. While
/// it is alive no group is staged or published and the file is not remapped; it is never taken
/// while a group's barrier runs (SPEC.md §3.10), so what it shows is durable.
///
/// ```
/// use mappedpages::{Pager, SharedPager, SimStorage};
///
/// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
/// let (a, b) = (shared.alloc().unwrap(), shared.alloc().unwrap());
/// let pager = shared.read();
/// // Several pages through one guard:
/// assert_eq!(a.get(&pager).unwrap().len(), b.get(&pager).unwrap().len());
/// assert_eq!(pager.iter_allocated_pages().count(), 2);
/// ```
pub struct PagerGuard<'a, const PAGE_SIZE: usize, S: Storage = MmapStorage> {
    pager: RwLockReadGuard<'a, Locked<PAGE_SIZE, S>>,
    _held: Held,
}

impl<const PAGE_SIZE: usize, S: Storage> Deref for PagerGuard<'_, PAGE_SIZE, S> {
    type Target = Pager<PAGE_SIZE, S>;

    fn deref(&self) -> &Pager<PAGE_SIZE, S> {
        &self.pager.pager
    }
}

impl<const PAGE_SIZE: usize, S: Storage> std::fmt::Debug for PagerGuard<'_, PAGE_SIZE, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PagerGuard")
            .field(&self.pager.pager)
            .finish()
    }
}

/// One page of a [`SharedPager`], readable while the guard lives; from [`SharedPager::page`] or
/// [`SharedPager::protected_page`]. Dereferences to [`MappedPage`]. While it is alive no commit
/// runs and the file is not remapped, so the bytes stay valid and unchanged by commits.
///
/// ```
/// use mappedpages::{Pager, SharedPager, SimStorage};
///
/// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
/// let id = shared.alloc().unwrap();
/// let page = shared.page(id).unwrap();
/// assert_eq!(page.as_bytes().len(), 1024);
/// ```
pub struct PageGuard<'a, const PAGE_SIZE: usize, S: Storage = MmapStorage> {
    pager: RwLockReadGuard<'a, Locked<PAGE_SIZE, S>>,
    /// The page number (for a protected page: its current copy, checked when the guard was made).
    page: u64,
    _held: Held,
}

impl<const PAGE_SIZE: usize, S: Storage> Deref for PageGuard<'_, PAGE_SIZE, S> {
    type Target = MappedPage;

    fn deref(&self) -> &MappedPage {
        self.pager.pager.raw_page(self.page)
    }
}

impl<const PAGE_SIZE: usize, S: Storage> std::fmt::Debug for PageGuard<'_, PAGE_SIZE, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageGuard")
            .field("page", &self.page)
            .finish_non_exhaustive()
    }
}

impl<const PAGE_SIZE: usize, S: Storage> Clone for SharedPager<PAGE_SIZE, S> {
    fn clone(&self) -> Self {
        SharedPager {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<const PAGE_SIZE: usize, S: Storage> std::fmt::Debug for SharedPager<PAGE_SIZE, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPager")
            .field("page_size", &PAGE_SIZE)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<const PAGE_SIZE: usize, S: Storage> SharedPager<PAGE_SIZE, S> {
    /// Wraps `pager` for use by many threads. Its commit mode (see
    /// [`Pager::set_commit_mode`]) applies to every group commit.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let shared = SharedPager::new(Pager::<4096>::create(dir.path().join("db.bin")).unwrap());
    /// let id = shared.alloc().unwrap();
    /// assert!(shared.read().is_allocated(id));
    /// ```
    pub fn new(pager: Pager<PAGE_SIZE, S>) -> Self {
        SharedPager {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                pager: RwLock::new(Locked {
                    pager,
                    flight: None,
                }),
                queue: Mutex::new(Queue::new()),
                changed: Condvar::new(),
            }),
        }
    }

    /// The pager back, if this is the last handle (no clone is alive); otherwise `Err(self)`.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let other = shared.clone();
    /// let shared = shared.into_inner().unwrap_err(); // `other` is still alive
    /// drop(other);
    /// let pager = shared.into_inner().unwrap();
    /// assert_eq!(pager.allocated_page_count(), 0);
    /// ```
    pub fn into_inner(self) -> Result<Pager<PAGE_SIZE, S>, Self> {
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => Ok(shared
                .pager
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .pager),
            Err(shared) => Err(SharedPager { shared }),
        }
    }

    // ----- readers -----------------------------------------------------------------------------

    /// Read access to the whole pager (counts, iterators, any number of pages), until the guard
    /// drops. Waits while a group is staged or published, while `write_page` runs, and, unlike
    /// [`page`](Self::page) and [`protected_page`](Self::protected_page), while a group commit's
    /// barrier runs (the pager's memory then holds the group's changes, which are not durable
    /// yet; SPEC.md §3.10). Panics on a re-entrant call (below).
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let id = shared.alloc_protected().unwrap();
    /// let pager = shared.read();
    /// assert_eq!(pager.protected_page_count(), 1);
    /// assert!(id.get(&pager).unwrap().as_bytes().iter().all(|&b| b == 0));
    /// ```
    ///
    /// # Panics
    ///
    /// If this thread already holds this `SharedPager`'s lock (a guard of it is alive, or this
    /// is a `write_page` or `write_protected` closure), with the message of
    /// [`MappedPageError::Reentrant`]: waiting would deadlock. [`try_read`](Self::try_read)
    /// returns that error instead.
    #[track_caller]
    pub fn read(&self) -> PagerGuard<'_, PAGE_SIZE, S> {
        match self.read_as("read") {
            Ok(guard) => guard,
            Err(error) => panic!("{error}"),
        }
    }

    /// [`read`](Self::read), but a call on a thread that already holds this `SharedPager`'s lock
    /// returns [`MappedPageError::Reentrant`] instead of panicking.
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let pager = shared.try_read().unwrap();
    /// // A second guard on the same thread would wait behind any queued commit: refused.
    /// assert!(matches!(shared.try_read(), Err(MappedPageError::Reentrant { .. })));
    /// drop(pager);
    /// assert!(shared.try_read().is_ok());
    /// ```
    pub fn try_read(&self) -> Result<PagerGuard<'_, PAGE_SIZE, S>, MappedPageError> {
        self.read_as("try_read")
    }

    fn read_as(
        &self,
        operation: &'static str,
    ) -> Result<PagerGuard<'_, PAGE_SIZE, S>, MappedPageError> {
        let held = self.shared.enter(operation)?;
        loop {
            let pager = self.shared.read_pager();
            if pager.flight.is_none() {
                return Ok(PagerGuard { pager, _held: held });
            }
            drop(pager);
            self.shared.wait_for_flight();
        }
    }

    /// A guard on one allocated regular page. Fails as [`PageId::get`] does, and with
    /// [`MappedPageError::Reentrant`] on a thread that already holds this `SharedPager`'s lock
    /// (a guard, or inside a `write_page` or `write_protected` closure; see the type docs).
    ///
    /// Never waits for a device flush: while a group commit's barrier runs, it answers from the
    /// durable state (SPEC.md §3.10): a page the group allocates is not allocated yet
    /// ([`MappedPageError::NotAllocated`]), a page it frees still is.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let id = shared.alloc().unwrap();
    /// shared.write_page(id, |page| page.as_bytes_mut()[0] = 9).unwrap();
    /// assert_eq!(shared.page(id).unwrap().as_bytes()[0], 9);
    /// shared.free(id).unwrap();
    /// assert!(shared.page(id).is_err());
    /// ```
    pub fn page(
        &self,
        id: PageId<PAGE_SIZE>,
    ) -> Result<PageGuard<'_, PAGE_SIZE, S>, MappedPageError> {
        let held = self.shared.enter("page")?;
        let pager = self.shared.read_pager();
        // The bitmap is looked up here only while a group is in flight (`id.get` does otherwise).
        match pager
            .flight
            .as_ref()
            .map(|f| f.regular(id.raw(), pager.pager.is_allocated(id)))
        {
            None | Some(RegularView::Unchanged) => {
                id.get(&pager.pager)?;
            }
            Some(RegularView::NotYetAllocated) => return Err(not_yet_allocated(id.raw())),
            // Allocated when the group staged its free, and nothing else changed it since. (A
            // `write_page` whose settling barrier failed may have poisoned the pager meanwhile.)
            Some(RegularView::StillAllocated) => pager.pager.check_poison()?,
        }
        Ok(PageGuard {
            pager,
            page: id.raw(),
            _held: held,
        })
    }

    /// A guard on the committed content of a protected page. Fails as [`ProtectedPageId::get`]
    /// does (the checksum is verified once, when the guard is made; no commit can change the page
    /// while the guard lives), and with [`MappedPageError::Reentrant`] on a thread that already
    /// holds this `SharedPager`'s lock (see the type docs).
    ///
    /// Never waits for a device flush: while a group commit that writes, frees or allocates the
    /// page runs its barrier, the guard shows the copy committed before the group (SPEC.md
    /// §3.10).
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let id = shared.alloc_protected().unwrap();
    /// shared.write_protected(id, |page| page.as_bytes_mut()[..2].copy_from_slice(b"ok")).unwrap();
    /// assert_eq!(&shared.protected_page(id).unwrap().as_bytes()[..2], b"ok");
    /// ```
    pub fn protected_page(
        &self,
        id: ProtectedPageId<PAGE_SIZE>,
    ) -> Result<PageGuard<'_, PAGE_SIZE, S>, MappedPageError> {
        let held = self.shared.enter("protected_page")?;
        let pager = self.shared.read_pager();
        let view = match pager.flight.as_ref() {
            Some(flight) => flight.protected(id.raw()),
            None => ProtectedView::Unchanged,
        };
        let page = match view {
            ProtectedView::Unchanged => pager.pager.verified_protected_page(id.raw())?,
            ProtectedView::NotYetAllocated => {
                return Err(MappedPageError::ProtectedNotAllocated { id: id.raw() });
            }
            ProtectedView::Committed(copy) => {
                pager.pager.check_poison()?;
                pager
                    .pager
                    .verified_copy(id.raw(), copy.page, copy.checksum)?
            }
        };
        Ok(PageGuard {
            pager,
            page,
            _held: held,
        })
    }

    // ----- regular page contents ---------------------------------------------------------------

    /// Runs `f` on the bytes of an allocated regular page, on this thread, with the pager locked
    /// for writing (no reader sees the page while `f` runs, so readers see all of `f`'s writes or
    /// none). Like [`PageId::get_mut`], the bytes are durable only after
    /// [`sync_page`](Self::sync_page) or [`sync_all`](Self::sync_all). A panic in `f` propagates
    /// to the caller; the pager stays usable.
    ///
    /// `f` runs with this `SharedPager`'s lock held: a call on the same `SharedPager` from inside
    /// `f` (through any clone) fails with [`MappedPageError::Reentrant`], and so does
    /// `write_page` itself on a thread that holds one of its guards (see the type docs).
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let id = shared.alloc().unwrap();
    /// let old = shared
    ///     .write_page(id, |page| std::mem::replace(&mut page.as_bytes_mut()[0], 5))
    ///     .unwrap();
    /// assert_eq!((old, shared.page(id).unwrap().as_bytes()[0]), (0, 5));
    /// ```
    pub fn write_page<R>(
        &self,
        id: PageId<PAGE_SIZE>,
        f: impl FnOnce(&mut MappedPage) -> R,
    ) -> Result<R, MappedPageError> {
        let _held = self.shared.enter("write_page")?;
        let mut pager = self.shared.write_pager();
        // A page the group in flight allocates or frees changes state when the group is
        // published: the write comes after that.
        while pager
            .flight
            .as_ref()
            .is_some_and(|f| f.changes_regular(id.raw()))
        {
            drop(pager);
            self.shared.wait_for_flight();
            pager = self.shared.write_pager();
        }
        let page = id.get_mut(&mut pager.pager)?;
        let result = panic::catch_unwind(AssertUnwindSafe(|| f(page)));
        drop(pager); // unlock before resuming a panic: the lock is never poisoned
        match result {
            Ok(value) => Ok(value),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Makes the contents of one regular page durable ([`Pager::sync_page`]), in a group commit:
    /// the syncs of every caller of a group, and the group's commit, share its barrier (one
    /// device flush), which runs with the pager lock released, so readers go on meanwhile.
    /// [`MappedPageError::Reentrant`] on a thread that already holds this `SharedPager`'s lock
    /// (see the type docs).
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let id = shared.alloc().unwrap();
    /// shared.write_page(id, |page| page.as_bytes_mut()[0] = 3).unwrap();
    /// shared.sync_page(id).unwrap();
    /// let offset = id.raw() as usize * 1024;
    /// assert_eq!(shared.read().storage().durable_image()[offset], 3);
    /// ```
    pub fn sync_page(&self, id: PageId<PAGE_SIZE>) -> Result<(), MappedPageError> {
        self.submit("sync_page", Op::Sync(Some(id))).map(|_| ())
    }

    /// Makes the contents of every page durable ([`Pager::sync_all`]), in a group commit as
    /// [`sync_page`](Self::sync_page) does (one barrier over the whole file).
    /// [`MappedPageError::Reentrant`] on a thread that already holds this `SharedPager`'s lock
    /// (see the type docs).
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let id = shared.alloc().unwrap();
    /// shared.write_page(id, |page| page.as_bytes_mut()[0] = 4).unwrap();
    /// shared.sync_all().unwrap();
    /// ```
    pub fn sync_all(&self) -> Result<(), MappedPageError> {
        self.submit("sync_all", Op::Sync(None)).map(|_| ())
    }

    // ----- group-committed operations ----------------------------------------------------------
    //
    // Each of them fails with `Reentrant` on a thread that holds this `SharedPager`'s lock (its
    // documentation says so; the check is in `submit`).

    /// Allocates one page ([`Pager::alloc`]), in a group commit. Durable when it returns `Ok`.
    /// [`MappedPageError::Reentrant`] on a thread that already holds this `SharedPager`'s lock
    /// (see the type docs), as for every group-committed call below.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let (a, b) = (shared.alloc().unwrap(), shared.alloc().unwrap());
    /// assert_ne!(a, b);
    /// ```
    pub fn alloc(&self) -> Result<PageId<PAGE_SIZE>, MappedPageError> {
        let mut ids = self.alloc_pages("alloc", 1)?;
        Ok(ids.pop().expect("one page was allocated"))
    }

    /// Allocates `count` pages ([`Pager::alloc_bulk`]), all in the same group commit.
    /// [`MappedPageError::Reentrant`] on a thread that already holds this `SharedPager`'s lock.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// assert_eq!(shared.alloc_bulk(10).unwrap().len(), 10);
    /// assert!(shared.alloc_bulk(0).unwrap().is_empty());
    /// ```
    pub fn alloc_bulk(&self, count: usize) -> Result<Vec<PageId<PAGE_SIZE>>, MappedPageError> {
        self.alloc_pages("alloc_bulk", count)
    }

    fn alloc_pages(
        &self,
        operation: &'static str,
        count: usize,
    ) -> Result<Vec<PageId<PAGE_SIZE>>, MappedPageError> {
        match self.submit(operation, Op::Alloc(count))? {
            Done::Pages(ids) => Ok(ids),
            _ => unreachable!("an allocation is answered with pages"),
        }
    }

    /// Allocates one page filled by `fill` ([`Pager::alloc_with`]), in a group commit: the page's
    /// contents become durable in the barrier of the group's commit, with the allocations of
    /// every other caller of the group, so many threads writing durable records share one
    /// device flush. `fill` runs on the group leader's thread, under the pager lock (a call on
    /// this `SharedPager` from inside it is refused with [`MappedPageError::Reentrant`]); if it
    /// panics, nothing is allocated for this call and the panic resumes on the caller's thread.
    ///
    /// ```
    /// use mappedpages::{CommitMode, Pager, SharedPager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// pager.set_commit_mode(CommitMode::SingleSync);
    /// let shared = SharedPager::new(pager);
    /// let threads: Vec<_> = (0..4u8)
    ///     .map(|n| {
    ///         let shared = shared.clone();
    ///         std::thread::spawn(move || shared.alloc_with(move |page| page.as_bytes_mut().fill(n)).unwrap())
    ///     })
    ///     .collect();
    /// for (n, thread) in threads.into_iter().enumerate() {
    ///     let id = thread.join().unwrap();
    ///     assert_eq!(shared.page(id).unwrap().as_bytes()[0], n as u8);
    /// }
    /// ```
    pub fn alloc_with<F>(&self, fill: F) -> Result<PageId<PAGE_SIZE>, MappedPageError>
    where
        F: FnOnce(&mut MappedPage) + Send + 'static,
    {
        let mut fill = Some(fill);
        let mut ids = self.alloc_filled(
            "alloc_with",
            1,
            Box::new(move |_, page| {
                if let Some(fill) = fill.take() {
                    fill(page);
                }
            }),
        )?;
        Ok(ids.pop().expect("one page was allocated"))
    }

    /// Allocates `count` pages, the `index`-th filled by `fill(index, page)`
    /// ([`Pager::alloc_bulk_with`]), all in the same group commit (see
    /// [`alloc_with`](Self::alloc_with)).
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let ids = shared.alloc_bulk_with(3, |i, page| page.as_bytes_mut()[0] = i as u8).unwrap();
    /// assert_eq!(shared.page(ids[2]).unwrap().as_bytes()[0], 2);
    /// ```
    pub fn alloc_bulk_with<F>(
        &self,
        count: usize,
        fill: F,
    ) -> Result<Vec<PageId<PAGE_SIZE>>, MappedPageError>
    where
        F: FnMut(usize, &mut MappedPage) + Send + 'static,
    {
        self.alloc_filled("alloc_bulk_with", count, Box::new(fill))
    }

    fn alloc_filled(
        &self,
        operation: &'static str,
        count: usize,
        fill: Fill,
    ) -> Result<Vec<PageId<PAGE_SIZE>>, MappedPageError> {
        match self.submit(operation, Op::AllocFilled(count, fill))? {
            Done::Pages(ids) => Ok(ids),
            _ => unreachable!("an allocation is answered with pages"),
        }
    }

    /// Frees one page ([`Pager::free`]), in a group commit. [`MappedPageError::Reentrant`] on a
    /// thread that already holds this `SharedPager`'s lock.
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let id = shared.alloc().unwrap();
    /// shared.free(id).unwrap();
    /// assert!(matches!(shared.free(id), Err(MappedPageError::DoubleFree { .. })));
    /// ```
    pub fn free(&self, id: PageId<PAGE_SIZE>) -> Result<(), MappedPageError> {
        self.submit("free", Op::Free(vec![id])).map(|_| ())
    }

    /// Frees every page in `ids` ([`Pager::free_bulk`]: every id is checked first; one bad id
    /// frees nothing), all in the same group commit. [`MappedPageError::Reentrant`] on a thread
    /// that already holds this `SharedPager`'s lock.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let ids = shared.alloc_bulk(3).unwrap();
    /// shared.free_bulk(ids).unwrap();
    /// assert_eq!(shared.read().allocated_page_count(), 0);
    /// ```
    pub fn free_bulk(&self, ids: Vec<PageId<PAGE_SIZE>>) -> Result<(), MappedPageError> {
        self.submit("free_bulk", Op::Free(ids)).map(|_| ())
    }

    /// Allocates one protected page, reading as zeros ([`Pager::alloc_protected`]), in a group
    /// commit. [`MappedPageError::Reentrant`] on a thread that already holds this
    /// `SharedPager`'s lock.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let id = shared.alloc_protected().unwrap();
    /// assert!(shared.read().is_protected_allocated(id));
    /// ```
    pub fn alloc_protected(&self) -> Result<ProtectedPageId<PAGE_SIZE>, MappedPageError> {
        let mut ids = self.alloc_protected_pages("alloc_protected", 1)?;
        Ok(ids.pop().expect("one protected page was allocated"))
    }

    /// Allocates `count` protected pages ([`Pager::alloc_protected_bulk`]), all in the same group
    /// commit. [`MappedPageError::Reentrant`] on a thread that already holds this
    /// `SharedPager`'s lock.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// assert_eq!(shared.alloc_protected_bulk(5).unwrap().len(), 5);
    /// ```
    pub fn alloc_protected_bulk(
        &self,
        count: usize,
    ) -> Result<Vec<ProtectedPageId<PAGE_SIZE>>, MappedPageError> {
        self.alloc_protected_pages("alloc_protected_bulk", count)
    }

    fn alloc_protected_pages(
        &self,
        operation: &'static str,
        count: usize,
    ) -> Result<Vec<ProtectedPageId<PAGE_SIZE>>, MappedPageError> {
        match self.submit(operation, Op::AllocProtected(count as u64))? {
            Done::Protected(ids) => Ok(ids),
            _ => unreachable!("a protected allocation is answered with protected ids"),
        }
    }

    /// Frees one protected page ([`Pager::free_protected`]), in a group commit.
    /// [`MappedPageError::Reentrant`] on a thread that already holds this `SharedPager`'s lock.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let id = shared.alloc_protected().unwrap();
    /// shared.free_protected(id).unwrap();
    /// assert!(shared.free_protected(id).is_err());
    /// ```
    pub fn free_protected(&self, id: ProtectedPageId<PAGE_SIZE>) -> Result<(), MappedPageError> {
        self.submit("free_protected", Op::FreeProtected(vec![id]))
            .map(|_| ())
    }

    /// Frees every protected page in `ids` ([`Pager::free_protected_bulk`]: every id is checked
    /// first), all in the same group commit. [`MappedPageError::Reentrant`] on a thread that
    /// already holds this `SharedPager`'s lock.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let ids = shared.alloc_protected_bulk(2).unwrap();
    /// shared.free_protected_bulk(ids).unwrap();
    /// assert_eq!(shared.read().protected_page_count(), 0);
    /// ```
    pub fn free_protected_bulk(
        &self,
        ids: Vec<ProtectedPageId<PAGE_SIZE>>,
    ) -> Result<(), MappedPageError> {
        self.submit("free_protected_bulk", Op::FreeProtected(ids))
            .map(|_| ())
    }

    /// Changes a protected page atomically and durably, in a group commit: `f` gets the page's
    /// committed content (as [`ProtectedPageId::get_mut`] does) and changes it; when this returns
    /// `Ok`, the new content is committed and durable, and after a crash the page reads as the
    /// old or the new content, never a mix.
    ///
    /// `f` runs on the thread that leads the group commit, with the pager locked for writing, so
    /// a read-modify-write in `f` is atomic: no other write to the page comes between (two writes
    /// to one page never share a group commit; the second waits for the next). Keep `f` short: the
    /// whole group waits for it. A call on this `SharedPager` from inside `f` (through any
    /// clone) fails with [`MappedPageError::Reentrant`] (`read` panics with its message): the
    /// leader's thread holds the lock, whichever thread submitted `f`. `write_protected` itself
    /// fails the same way on a thread that holds one of its guards (see the type docs). If `f`
    /// panics, the page is unchanged, the other operations of the group go on, and the panic
    /// resumes on the caller's thread.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// let counter = shared.alloc_protected().unwrap();
    /// let threads: Vec<_> = (0..4)
    ///     .map(|_| {
    ///         let shared = shared.clone();
    ///         std::thread::spawn(move || {
    ///             shared.write_protected(counter, |page| page.as_bytes_mut()[0] += 1).unwrap();
    ///         })
    ///     })
    ///     .collect();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// assert_eq!(shared.protected_page(counter).unwrap().as_bytes()[0], 4);
    /// ```
    pub fn write_protected<F>(
        &self,
        id: ProtectedPageId<PAGE_SIZE>,
        f: F,
    ) -> Result<(), MappedPageError>
    where
        F: FnOnce(&mut MappedPage) + Send + 'static,
    {
        self.submit("write_protected", Op::WriteProtected(id, Box::new(f)))
            .map(|_| ())
    }

    // ----- monitoring --------------------------------------------------------------------------

    /// Group commits so far and the operations they acknowledged.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// assert!(shared.alloc().is_ok() && shared.free_bulk(vec![]).is_ok());
    /// assert_eq!(shared.stats().commits, 1); // an empty free changes nothing: no commit
    /// ```
    pub fn stats(&self) -> GroupCommitStats {
        self.shared.lock_queue().stats
    }

    /// Operations queued and not yet taken by a group-commit leader. A leader takes the queue
    /// once it holds the pager lock for writing, so while a guard is alive every operation that
    /// arrives stays queued, and all of them join the next group commit.
    ///
    /// ```
    /// use mappedpages::{Pager, SharedPager, SimStorage};
    ///
    /// let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
    /// assert_eq!(shared.pending_operations(), 0);
    /// ```
    pub fn pending_operations(&self) -> usize {
        self.shared.lock_queue().pending.len()
    }
}

impl<const PAGE_SIZE: usize, S: Storage> Shared<PAGE_SIZE, S> {
    /// Records that the current thread takes (or waits for) the pager lock for `operation`, until
    /// the returned `Held` drops; fails with `Reentrant` if it already holds it (any wait for the
    /// lock would then never end). One thread-local lookup.
    #[inline]
    fn enter(&self, operation: &'static str) -> Result<Held, MappedPageError> {
        let entered = HELD.try_with(|held| {
            let mut held = held.borrow_mut();
            if held.contains(&self.id) {
                return Err(MappedPageError::Reentrant { operation });
            }
            held.push(self.id);
            Ok(())
        });
        // `Err(AccessError)`: called from a thread-local destructor after `HELD` is gone; nothing
        // can be recorded, so nothing is checked.
        if let Ok(Err(error)) = entered {
            return Err(error);
        }
        Ok(Held {
            id: self.id,
            _not_send: PhantomData,
        })
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue<PAGE_SIZE>> {
        // Nothing panics while holding the queue lock; recover the data if something did.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every write section catches panics and releases the lock before resuming them, so the
    /// lock is never poisoned; a panic inside the pager poisons the `Pager` instead.
    #[inline]
    fn read_pager(&self) -> RwLockReadGuard<'_, Locked<PAGE_SIZE, S>> {
        #[cfg(not(loom))]
        match self.pager.try_read() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => self.read_pager_contended(),
        }
        #[cfg(loom)]
        self.pager.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// `read_pager` when the lock is taken: out of line, so that the uncontended path is one
    /// `try_read` (inline, the spin cost an uncontended `page()` 45–75 ns).
    #[cold]
    #[inline(never)]
    #[cfg(not(loom))]
    fn read_pager_contended(&self) -> RwLockReadGuard<'_, Locked<PAGE_SIZE, S>> {
        spin_then_block(|| self.pager.try_read(), || self.pager.read())
    }

    fn write_pager(&self) -> RwLockWriteGuard<'_, Locked<PAGE_SIZE, S>> {
        spin_then_block(|| self.pager.try_write(), || self.pager.write())
    }
}

/// How long a thread that finds the pager lock taken retries before it sleeps on the lock. The
/// write-locked windows of a group commit are the leader's own CPU work, a few microseconds
/// (BENCHMARKS.md "What the write-locked windows are made of"), while sleeping on the lock costs
/// a futex wake-up and, on a busy machine, a wait for a time slice: longer than most windows.
#[cfg(not(loom))]
const LOCK_SPIN_NS_MAX: u128 = 20_000;

/// Takes a lock: `try_lock` first, then again in a loop for at most [`LOCK_SPIN_NS_MAX`], then
/// `lock` (blocking). A poisoned lock is taken as it is (see `read_pager`). Under loom, `lock`
/// at once: a spin adds no behaviour to the models, only interleavings.
#[inline]
fn spin_then_block<G>(
    try_lock: impl Fn() -> std::sync::TryLockResult<G>,
    lock: impl FnOnce() -> std::sync::LockResult<G>,
) -> G {
    #[cfg(not(loom))]
    {
        let taken = |result: std::sync::TryLockResult<G>| match result {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(guard) = taken(try_lock()) {
            return guard;
        }
        let start = std::time::Instant::now();
        while start.elapsed().as_nanos() < LOCK_SPIN_NS_MAX {
            for _ in 0..16 {
                std::hint::spin_loop();
            }
            if let Some(guard) = taken(try_lock()) {
                return guard;
            }
        }
    }
    #[cfg(loom)]
    let _ = try_lock;
    lock().unwrap_or_else(PoisonError::into_inner)
}
