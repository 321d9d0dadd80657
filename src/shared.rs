//! `SharedPager`: one `Pager` used by many threads at once, with group commit (SPEC.md §3.10).
//!
//! * A reader/writer lock around the pager: page guards hold it for reading; the group-commit
//!   leader, `write_page`, `sync_page` and `sync_all` hold it for writing. A remap (growth) can
//!   therefore only happen while no guard is alive.
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

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoOperation, MappedPageError};
use crate::mutants::{Mutant, active};
use crate::page::{MappedPage, PageId};
use crate::pager::Pager;
use crate::protected::ProtectedPageId;
use crate::storage::{MmapStorage, Storage};
use crate::sync::{
    Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, yield_now,
};

/// The `operation` a failed group commit poisons the pager with.
const GROUP_COMMIT: &str = "a SharedPager group commit";

/// At most this many times a new leader yields, while the queue keeps growing, before it takes
/// the queue (see `gather_latecomers`). Under loom one yield keeps the path in the models.
const MAX_GATHER_YIELDS: u32 = if cfg!(loom) { 1 } else { 8 };

/// A handle on one [`Pager`] that many threads use at once: `Send + Sync` (for a `Send + Sync`
/// storage, as both backends are), and cheap to clone (one reference count).
///
/// * **Reads** go through guards: [`read`](Self::read) (the whole pager, read-only),
///   [`page`](Self::page) and [`protected_page`](Self::protected_page) (one page). Any number of
///   threads hold guards at once. A guard holds the pager's lock for reading, so no commit and no
///   growth (remap) happens while it is alive: a guard never sees a commit half done, and its
///   bytes are never unmapped under it.
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
    pager: RwLock<Pager<PAGE_SIZE, S>>,
    queue: Mutex<Queue<PAGE_SIZE>>,
    /// Notified (all waiters) whenever results are published or leadership is given up.
    changed: Condvar,
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

/// The commit queue. Lock order: the pager lock (if taken) before this one, never the reverse.
struct Queue<const PAGE_SIZE: usize> {
    /// Operations waiting for a leader, in arrival order.
    pending: VecDeque<Request<PAGE_SIZE>>,
    /// A leader is active (between taking its batch and publishing its results).
    leading: bool,
    next_ticket: u64,
    /// Published results, by ticket, until their callers take them.
    replies: HashMap<u64, Reply<PAGE_SIZE>>,
    stats: GroupCommitStats,
}

struct Request<const PAGE_SIZE: usize> {
    ticket: u64,
    op: Op<PAGE_SIZE>,
}

type ProtectedWrite = Box<dyn FnOnce(&mut MappedPage) + Send>;

enum Op<const PAGE_SIZE: usize> {
    Alloc(usize),
    Free(Vec<PageId<PAGE_SIZE>>),
    AllocProtected(u64),
    FreeProtected(Vec<ProtectedPageId<PAGE_SIZE>>),
    WriteProtected(ProtectedPageId<PAGE_SIZE>, ProtectedWrite),
}

impl<const PAGE_SIZE: usize> Op<PAGE_SIZE> {
    /// Frees are staged after every other operation of their group (SPEC.md §3.10), so a page a
    /// group frees is never handed out, zeroed or written by the same group.
    fn is_free(&self) -> bool {
        matches!(self, Op::Free(_) | Op::FreeProtected(_))
    }
}

enum Done<const PAGE_SIZE: usize> {
    Pages(Vec<PageId<PAGE_SIZE>>),
    Protected(Vec<ProtectedPageId<PAGE_SIZE>>),
    Unit,
}

enum Failure {
    Error(MappedPageError),
    /// The caller's `write_protected` closure panicked (on the leader's thread); the caller
    /// resumes the panic on its own thread.
    Panic(Box<dyn Any + Send>),
}

impl From<MappedPageError> for Failure {
    fn from(error: MappedPageError) -> Self {
        Failure::Error(error)
    }
}

type Reply<const PAGE_SIZE: usize> = Result<Done<PAGE_SIZE>, Failure>;

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
    /// Group commits that completed (each one protocol round).
    pub commits: u64,
    /// Operations acknowledged by those commits. `operations / commits` is the mean group size.
    pub operations: u64,
}

/// Read access to the whole [`Pager`] behind a [`SharedPager`], from [`SharedPager::read`]. While
/// it is alive no commit runs and the file is not remapped.
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
    pager: RwLockReadGuard<'a, Pager<PAGE_SIZE, S>>,
    _held: Held,
}

impl<const PAGE_SIZE: usize, S: Storage> Deref for PagerGuard<'_, PAGE_SIZE, S> {
    type Target = Pager<PAGE_SIZE, S>;

    fn deref(&self) -> &Pager<PAGE_SIZE, S> {
        &self.pager
    }
}

impl<const PAGE_SIZE: usize, S: Storage> std::fmt::Debug for PagerGuard<'_, PAGE_SIZE, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PagerGuard").field(&*self.pager).finish()
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
    pager: RwLockReadGuard<'a, Pager<PAGE_SIZE, S>>,
    /// The page number (for a protected page: its current copy, checked when the guard was made).
    page: u64,
    _held: Held,
}

impl<const PAGE_SIZE: usize, S: Storage> Deref for PageGuard<'_, PAGE_SIZE, S> {
    type Target = MappedPage;

    fn deref(&self) -> &MappedPage {
        self.pager.raw_page(self.page)
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
                pager: RwLock::new(pager),
                queue: Mutex::new(Queue {
                    pending: VecDeque::new(),
                    leading: false,
                    next_ticket: 0,
                    replies: HashMap::new(),
                    stats: GroupCommitStats::default(),
                }),
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
                .unwrap_or_else(PoisonError::into_inner)),
            Err(shared) => Err(SharedPager { shared }),
        }
    }

    // ----- readers -----------------------------------------------------------------------------

    /// Read access to the whole pager (counts, iterators, any number of pages), until the guard
    /// drops. Waits while a commit, `write_page` or a sync runs. Panics on a re-entrant call
    /// (below).
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
        Ok(PagerGuard {
            pager: self.shared.read_pager(),
            _held: held,
        })
    }

    /// A guard on one allocated regular page. Fails as [`PageId::get`] does, and with
    /// [`MappedPageError::Reentrant`] on a thread that already holds this `SharedPager`'s lock
    /// (a guard, or inside a `write_page` or `write_protected` closure; see the type docs).
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
        id.get(&pager)?;
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
        let page = pager.verified_protected_page(id.raw())?;
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
        let page = id.get_mut(&mut pager)?;
        let result = panic::catch_unwind(AssertUnwindSafe(|| f(page)));
        drop(pager); // unlock before resuming a panic: the lock is never poisoned
        match result {
            Ok(value) => Ok(value),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Makes the contents of one regular page durable ([`Pager::sync_page`]). Holds the pager
    /// lock for writing during the sync. [`MappedPageError::Reentrant`] on a thread that already
    /// holds this `SharedPager`'s lock (see the type docs).
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
        self.shared
            .with_pager_mut("sync_page", |pager| pager.sync_page(id))
    }

    /// Makes the contents of every page durable ([`Pager::sync_all`]). Holds the pager lock for
    /// writing during the sync. [`MappedPageError::Reentrant`] on a thread that already holds
    /// this `SharedPager`'s lock (see the type docs).
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
        self.shared
            .with_pager_mut("sync_all", |pager| pager.sync_all())
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

    // ----- the group commit --------------------------------------------------------------------

    /// Enqueues `op` and returns its result once a commit containing it is durable (or it failed).
    /// The thread is recorded as holding the pager lock throughout: as the leader it does, and it
    /// runs `write_protected` closures (its own and other callers') under it.
    fn submit(
        &self,
        operation: &'static str,
        op: Op<PAGE_SIZE>,
    ) -> Result<Done<PAGE_SIZE>, MappedPageError> {
        let shared = &*self.shared;
        let _held = shared.enter(operation)?;
        let mut queue = shared.lock_queue();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push_back(Request { ticket, op });
        let reply = loop {
            if let Some(reply) = queue.replies.remove(&ticket) {
                break reply;
            }
            // No leader: our operation is still queued (a leader publishes every operation it
            // takes before it gives up leadership), so we lead the next group.
            if !queue.leading {
                queue.leading = true;
                drop(queue);
                shared.lead();
                queue = shared.lock_queue();
                continue;
            }
            queue = shared
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        };
        drop(queue);
        match reply {
            Ok(done) => Ok(done),
            Err(Failure::Error(error)) => Err(error),
            Err(Failure::Panic(payload)) => panic::resume_unwind(payload),
        }
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
    fn read_pager(&self) -> RwLockReadGuard<'_, Pager<PAGE_SIZE, S>> {
        self.pager.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_pager(&self) -> RwLockWriteGuard<'_, Pager<PAGE_SIZE, S>> {
        self.pager.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the pager locked for writing. A panic in `f` (a bug in the pager) poisons
    /// the pager and resumes after the lock is released.
    fn with_pager_mut<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Pager<PAGE_SIZE, S>) -> Result<R, MappedPageError>,
    ) -> Result<R, MappedPageError> {
        let _held = self.enter(operation)?;
        let mut pager = self.write_pager();
        match panic::catch_unwind(AssertUnwindSafe(|| f(&mut pager))) {
            Ok(result) => result,
            Err(payload) => {
                poison_after_panic(&mut pager, &format!("SharedPager::{operation}"));
                drop(pager);
                panic::resume_unwind(payload)
            }
        }
    }

    /// The leader's work: lock the pager for writing, take the queue, stage, commit once,
    /// publish. Called with `queue.leading` set by the caller; always clears it (also when a
    /// panic unwinds through here, through `Publisher`'s drop).
    fn lead(&self) {
        let mut publisher = Publisher {
            shared: self,
            replies: Vec::new(),
            commits: 0,
            operations: 0,
        };
        let mut pager = self.write_pager();
        self.gather_latecomers();
        let batch = std::mem::take(&mut self.lock_queue().pending);
        let tickets: Vec<u64> = batch.iter().map(|request| request.ticket).collect();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            self.run_group(&mut pager, batch, &mut publisher)
        }));
        if let Err(payload) = outcome {
            // A bug in the pager: nobody knows what memory holds. Poison the pager and fail every
            // operation of the group that has no result yet.
            let cause = poison_after_panic(&mut pager, GROUP_COMMIT);
            drop(pager);
            let requeued: HashSet<u64> =
                self.lock_queue().pending.iter().map(|r| r.ticket).collect();
            for ticket in tickets {
                if !requeued.contains(&ticket)
                    && !publisher.replies.iter().any(|(t, _)| *t == ticket)
                {
                    let error = MappedPageError::Poisoned {
                        cause: cause.clone(),
                    };
                    publisher.replies.push((ticket, Err(Failure::Error(error))));
                }
            }
            drop(publisher);
            panic::resume_unwind(payload);
        }
        drop(pager); // readers may go on before the callers are woken: the group is durable
        drop(publisher);
    }

    /// Lets the callers the previous group just released submit again before this group is
    /// taken. While some of them have not yet collected their results, or the queue grew during
    /// the last yield, it yields, at most `MAX_GATHER_YIELDS` times. Without it, callers in a
    /// loop split into two alternating groups (those waiting on one commit form the next), about
    /// half of them per commit. A lone caller never yields (nobody has a result to collect).
    /// Only throughput depends on it; correctness does not (whatever arrives later joins the
    /// next group).
    fn gather_latecomers(&self) {
        let (mut seen, mut released) = {
            let queue = self.lock_queue();
            (queue.pending.len(), !queue.replies.is_empty())
        };
        let mut yields = 0;
        while released && yields < MAX_GATHER_YIELDS {
            yield_now();
            yields += 1;
            let queue = self.lock_queue();
            let grew = queue.pending.len() > seen;
            seen = queue.pending.len();
            released = grew || !queue.replies.is_empty();
        }
    }

    /// Stages every operation of `batch` (frees last), commits once if anything changed, and
    /// records every result in `publisher`.
    fn run_group(
        &self,
        pager: &mut Pager<PAGE_SIZE, S>,
        batch: VecDeque<Request<PAGE_SIZE>>,
        publisher: &mut Publisher<'_, PAGE_SIZE, S>,
    ) {
        let (frees, others): (Vec<_>, Vec<_>) = batch.into_iter().partition(|r| r.op.is_free());
        let mut written = HashSet::new();
        let mut deferred = Vec::new();
        let mut staged = Vec::new();
        let mut data_ranges = Vec::new();
        for request in others.into_iter().chain(frees) {
            if let Op::WriteProtected(id, _) = &request.op
                && !written.insert(id.raw())
            {
                // A second write to the same page in one group would stage into the copy the
                // durable state still names: it waits for the next group.
                deferred.push(request);
                continue;
            }
            match stage(pager, request.op, &mut data_ranges) {
                Ok((done, true)) => staged.push((request.ticket, done)),
                Ok((done, false)) => publisher.replies.push((request.ticket, Ok(done))),
                Err(failure) => publisher.replies.push((request.ticket, Err(failure))),
            }
        }
        if !deferred.is_empty() {
            let mut queue = self.lock_queue();
            for request in deferred.into_iter().rev() {
                queue.pending.push_front(request);
            }
        }
        if staged.is_empty() {
            return; // nothing changed: no commit
        }
        let operations = staged.len() as u64;
        if active(Mutant::AckBeforeGroupSync) {
            mutant_ack_before_sync(self, &mut staged);
        }
        match pager.commit_prepared(data_ranges, GROUP_COMMIT) {
            Ok(()) => {
                publisher.commits += 1;
                publisher.operations += operations;
                for (ticket, done) in staged {
                    publisher.replies.push((ticket, Ok(done)));
                }
            }
            Err(error) => {
                // Every caller whose change was in the group gets the error (the pager is now
                // poisoned, SPEC.md §3.4).
                for (ticket, _) in staged {
                    let copy = copy_error(&error);
                    publisher.replies.push((ticket, Err(Failure::Error(copy))));
                }
            }
        }
    }
}

/// Stages one operation into `pager`'s memory. Returns its result and whether it changed
/// anything (only then does it need the commit); on error nothing changed.
fn stage<const PAGE_SIZE: usize, S: Storage>(
    pager: &mut Pager<PAGE_SIZE, S>,
    op: Op<PAGE_SIZE>,
    data_ranges: &mut Vec<std::ops::Range<u64>>,
) -> Result<(Done<PAGE_SIZE>, bool), Failure> {
    match op {
        Op::Alloc(count) => {
            let ids = pager.stage_alloc(count)?;
            let changed = !ids.is_empty();
            Ok((Done::Pages(ids), changed))
        }
        Op::Free(ids) => {
            pager.stage_free(&ids)?;
            Ok((Done::Unit, !ids.is_empty()))
        }
        Op::AllocProtected(count) => {
            let (ids, zeroed) = pager.stage_alloc_protected(count)?;
            data_ranges.extend(zeroed);
            let changed = !ids.is_empty();
            Ok((Done::Protected(ids), changed))
        }
        Op::FreeProtected(ids) => {
            pager.stage_free_protected(&ids)?;
            Ok((Done::Unit, !ids.is_empty()))
        }
        Op::WriteProtected(id, write) => {
            let staged_page = pager.stage_protected_write(id.raw())?;
            let page = pager.raw_page_mut(staged_page);
            // A panic leaves the staged copy as scratch (it is not promoted): nothing changed.
            panic::catch_unwind(AssertUnwindSafe(|| write(page))).map_err(Failure::Panic)?;
            data_ranges.push(pager.stage_protected_commit(id.raw(), staged_page));
            Ok((Done::Unit, true))
        }
    }
}

/// Publishes a leader's results when dropped (also during a panic): records them, gives up
/// leadership and wakes every waiter, all under the queue lock, so no waiter can miss it.
struct Publisher<'a, const PAGE_SIZE: usize, S: Storage> {
    shared: &'a Shared<PAGE_SIZE, S>,
    replies: Vec<(u64, Reply<PAGE_SIZE>)>,
    commits: u64,
    operations: u64,
}

impl<const PAGE_SIZE: usize, S: Storage> Drop for Publisher<'_, PAGE_SIZE, S> {
    fn drop(&mut self) {
        let mut queue = self.shared.lock_queue();
        queue.replies.extend(self.replies.drain(..));
        queue.stats.commits += self.commits;
        queue.stats.operations += self.operations;
        queue.leading = false;
        self.shared.changed.notify_all();
    }
}

/// Marks the pager poisoned after a panic inside `operation`; returns the cause.
fn poison_after_panic<const PAGE_SIZE: usize, S: Storage>(
    pager: &mut Pager<PAGE_SIZE, S>,
    operation: &str,
) -> String {
    let cause = format!("{operation} (interrupted by a panic)");
    pager.poison(&cause, io::Error::other("panic"));
    cause
}

/// A copy of a commit's error for each caller of the group (`io::Error` is not `Clone`).
fn copy_error(error: &MappedPageError) -> MappedPageError {
    match error {
        MappedPageError::Io {
            operation,
            path,
            source,
        } => MappedPageError::Io {
            operation: *operation,
            path: path.clone(),
            source: io::Error::new(source.kind(), source.to_string()),
        },
        MappedPageError::Poisoned { cause } => MappedPageError::Poisoned {
            cause: cause.clone(),
        },
        MappedPageError::FileShrunk {
            expected_len_bytes,
            found_len_bytes,
        } => MappedPageError::FileShrunk {
            expected_len_bytes: *expected_len_bytes,
            found_len_bytes: *found_len_bytes,
        },
        other => MappedPageError::Io {
            operation: IoOperation::Sync,
            path: None,
            source: io::Error::other(other.to_string()),
        },
    }
}

/// `AckBeforeGroupSync`: publish the group's results (and wake its callers) before its commit.
fn mutant_ack_before_sync<const PAGE_SIZE: usize, S: Storage>(
    shared: &Shared<PAGE_SIZE, S>,
    staged: &mut Vec<(u64, Done<PAGE_SIZE>)>,
) {
    let mut queue = shared.lock_queue();
    for (ticket, done) in staged.drain(..) {
        queue.replies.insert(ticket, Ok(done));
    }
    shared.changed.notify_all();
}
