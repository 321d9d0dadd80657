//! `Pager`: the public face of the crate.

use std::any::Any;
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use crate::commit::{self, CommitMode, CommitPlan, Staged, commit};
use crate::directory::Directory;
use crate::error::{IoOperation, MappedPageError};
use crate::format::{
    DataCheck, FORMAT_VERSION, Geometry, MAX_GENERATION, MAX_PAGE_SIZE, MIN_PAGE_SIZE,
};
use crate::mutants::{Mutant, active};
use crate::page::{MappedPage, PageId};
use crate::recovery::{Recovered, RecoveryDecision, recover, repair};
use crate::scan::AllocatedScan;
use crate::state::{AllocState, GroupDivider, PageRun};
use crate::storage::{MmapStorage, PendingBarrier, Storage};

/// Pages in a new file: the five internal pages plus eleven data pages.
const INITIAL_PAGE_COUNT: u64 = 16;
/// Growth doubles the file until one step would add this many bytes, then adds this many.
const GROWTH_CAP_BYTES: u64 = 1 << 30;

/// The most pages [`Pager::attach_to_next_commit`] holds at once (256 MiB of 4 KiB pages): the
/// barrier they join, and the memory that names them (8 bytes a page), stay bounded. One more
/// fails with [`MappedPageError::TooManyAttached`].
pub const ATTACHED_PAGES_MAX: usize = 65_536;

/// Manages a file of fixed-size pages through a memory map, crash-consistently.
///
/// * Page 0 is the superblock, pages 1 and 2 the two metadata copies, and every group of
///   `(PAGE_SIZE - 32) * 8` pages starts with two bitmap pages; a group table (pages 5 and 6,
///   then extents further on) pins each group's current bitmap page; all other pages are data
///   pages handed out by [`alloc`](Self::alloc). SPEC.md has the format byte by byte.
/// * Opening reads the group table and a few groups' bitmaps, whatever the file's size; every
///   other group's bitmap is read when the group is first used (SPEC.md §4.9), so a bitmap
///   page damaged on the medium is reported then, as [`MappedPageError::CorruptGroupSlot`]
///   ([`check_bitmaps`](Self::check_bitmaps) checks them all at once).
/// * Every allocation change is one commit: the change is written into the inactive metadata copy
///   (and, when the log there is full, into the inactive copy of the touched bitmap pages), that
///   is synced, the superblock is flipped to it, and the superblock is synced. When a call
///   returns `Ok`, its change survives any crash.
/// * `PAGE_SIZE` must be a power of two of at least 1024 (and at most 16 MiB); anything else is a
///   compile error:
///
/// ```compile_fail
/// let pager = mappedpages::Pager::<1000>::create("pages.bin"); // not a power of two
/// ```
///
/// ```compile_fail
/// let pager = mappedpages::Pager::<512>::create("pages.bin"); // below 1024
/// ```
///
/// * A page reference borrows the pager, so no allocation (which may remap the file) can happen
///   while one is alive:
///
/// ```compile_fail
/// use mappedpages::{Pager, SimStorage};
///
/// let mut pager = Pager::<4096, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id = pager.alloc().unwrap();
/// let page = id.get(&pager).unwrap(); // borrows pager
/// pager.alloc().unwrap(); // error: pager is already borrowed
/// let _ = page;
/// ```
///
/// # Example
///
/// ```
/// use mappedpages::Pager;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db.bin");
///
/// let mut pager = Pager::<4096>::create(&path).unwrap();
/// let id = pager.alloc().unwrap();
/// id.get_mut(&mut pager).unwrap().as_bytes_mut()[..5].copy_from_slice(b"hello");
/// pager.sync_page(id).unwrap(); // page data is durable once this returns
/// drop(pager);
///
/// let pager = Pager::<4096>::open(&path).unwrap();
/// assert_eq!(&id.get(&pager).unwrap().as_bytes()[..5], b"hello");
/// ```
///
/// # Failures
///
/// A failed growth (`set_len`, remap) returns [`MappedPageError::Io`] and changes nothing. A
/// failed sync returns [`MappedPageError::Io`] and *poisons* the pager: every later call returns
/// [`MappedPageError::Poisoned`] until the file is opened again, because after a failed sync
/// nobody knows which of the written sectors reached the disk (SPEC.md §3.4). A file shrunk by
/// another process (the lock is advisory) is found before the next commit, growth or sync
/// touches it: [`MappedPageError::FileShrunk`], and the pager is poisoned.
pub struct Pager<const PAGE_SIZE: usize, S: Storage = MmapStorage> {
    storage: S,
    state: AllocState,
    poisoned: Option<String>,
    recovery: Option<RecoveryDecision>,
    /// The last page of a growth whose new length the next commit's first barrier makes durable.
    pending_length_sync: Option<Range<u64>>,
    /// How commits become durable (one or two barriers).
    commit_mode: CommitMode,
    /// Reserve disk blocks for every page before it is written or handed out (SPEC.md §3.3).
    reserve_space: bool,
    /// Data pages whose contents the next commit's first barrier makes durable
    /// ([`attach_to_next_commit`](Pager::attach_to_next_commit), SPEC.md §3.6.2); at most
    /// [`ATTACHED_PAGES_MAX`].
    attached: BTreeSet<u64>,
}

/// Free pages chosen for an allocation, not yet marked allocated
/// ([`Pager::choose_free_pages`]).
#[derive(Debug, Default)]
struct Chosen<const PAGE_SIZE: usize> {
    ids: Vec<PageId<PAGE_SIZE>>,
    runs: Vec<PageRun>,
    /// The growth that made room for them, if any.
    growth: Option<Growth>,
}

/// What a growth changed, so that an operation failing before it wrote anything can undo it.
#[derive(Debug)]
#[must_use = "a growth must be undone when the operation that needed it fails"]
pub(crate) struct Growth {
    page_count: u64,
    len_bytes: u64,
    pending_length_sync: Option<Range<u64>>,
}

impl<const PAGE_SIZE: usize, S: Storage> std::fmt::Debug for Pager<PAGE_SIZE, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("page_size", &PAGE_SIZE)
            .field("page_count", &self.state.page_count)
            .field("generation", &self.state.generation())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl<const PAGE_SIZE: usize> Pager<PAGE_SIZE, MmapStorage> {
    /// Creates a new file at `path` and opens it. Fails with [`MappedPageError::AlreadyExists`]
    /// if something is there, also when another `create` of the same path wins a race. Creation
    /// is atomic: a crash leaves no file or a complete one, and an error leaves nothing at `path`
    /// (SPEC.md §3.1). Leftovers of an earlier crashed create never block it.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, MappedPageError> {
        let () = Self::PAGE_SIZE_IS_VALID;
        let mut state = None;
        let storage = MmapStorage::create_atomic(path.as_ref(), |storage| {
            state = Some(initialize(storage, Self::geometry())?);
            Ok(())
        })?;
        let state = state.expect("create_atomic runs the initializer before returning Ok");
        Ok(Pager {
            storage,
            state,
            poisoned: None,
            recovery: None,
            pending_length_sync: None,
            commit_mode: CommitMode::Flip,
            reserve_space: true,
            attached: BTreeSet::new(),
        })
    }

    /// Opens the file at `path`, running recovery (SPEC.md §4). Fails with
    /// [`MappedPageError::Locked`] if another `Pager` holds it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MappedPageError> {
        let () = Self::PAGE_SIZE_IS_VALID;
        // Recovery's scattered reads are advised as such by `open_in` (`recover_advised`).
        Self::open_in(MmapStorage::open(path)?)
    }
}

/// [`recover`] over `storage`, advised as a scattered read (SPEC.md §4.1 reads slot pages far
/// apart: two per group in formats 1 and 2, the table's extents and a few groups' in format 3):
/// [`Storage::advise_scattered_reads`] for its duration, and every slot page it may read named
/// to [`Storage::prefetch`] before the first is read, so that a cold open waits for the device
/// about once instead of once per page run, and reads no read-ahead window per page.
fn recover_advised<S: Storage>(
    storage: &mut S,
    geometry: Geometry,
) -> Result<Recovered, MappedPageError> {
    storage.advise_scattered_reads(true);
    let recovered = recover(storage.bytes(), geometry, |ranges| storage.prefetch(ranges));
    storage.advise_scattered_reads(false);
    recovered
}

/// Writes the first commit of a new file into empty `storage`.
fn initialize<S: Storage>(
    storage: &mut S,
    geometry: Geometry,
) -> Result<AllocState, MappedPageError> {
    let len_bytes = INITIAL_PAGE_COUNT * geometry.page_size();
    storage
        .grow(len_bytes)
        .map_err(|e| MappedPageError::space(IoOperation::Grow, storage.path(), len_bytes, e))?;
    // Every page of a new file is the pager's or lies in a block with one of its pages: reserve
    // them all, so that the first commit's writes cannot meet a full disk (SPEC.md §3.1).
    storage
        .reserve(&[0..len_bytes])
        .map_err(|e| MappedPageError::space(IoOperation::Reserve, storage.path(), len_bytes, e))?;
    let mut state = AllocState::new_file(geometry, INITIAL_PAGE_COUNT);
    state.set_format_version(geometry.format_version());
    let plan = CommitPlan {
        mode: CommitMode::Flip,
        materialize_all: true,
        ..CommitPlan::default()
    };
    commit(storage, &mut state, &plan)
        .map_err(|e| MappedPageError::io(IoOperation::Sync, storage.path(), e))?;
    Ok(state)
}

impl<const PAGE_SIZE: usize, S: Storage> Pager<PAGE_SIZE, S> {
    pub(crate) const PAGE_SIZE_IS_VALID: () = assert!(
        PAGE_SIZE.is_power_of_two() && PAGE_SIZE >= MIN_PAGE_SIZE && PAGE_SIZE <= MAX_PAGE_SIZE,
        "PAGE_SIZE must be a power of two between 1024 and 16 MiB"
    );

    /// The geometry of a file this build creates (format 3); an existing file's comes from its
    /// superblock or metadata (recovery).
    fn geometry() -> Geometry {
        Geometry::with_group_table(PAGE_SIZE)
    }

    /// Writes a new, empty file into `storage`, which must be empty (length 0).
    ///
    /// A crash during this call leaves an image that either opens as an empty file or fails to
    /// open with [`MappedPageError::NotAMappedPagesFile`] (nothing was committed).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// assert_eq!(pager.allocated_page_count(), 0);
    /// ```
    pub fn create_in(storage: S) -> Result<Self, MappedPageError> {
        Self::create_in_format(storage, FORMAT_VERSION)
    }

    /// [`create_in`](Self::create_in) writing format `version` (2 or 3; format 1 is format 2
    /// without data checks): for tests of files written by earlier builds. Not part of the
    /// documented interface.
    #[doc(hidden)]
    pub fn create_in_format(mut storage: S, version: u32) -> Result<Self, MappedPageError> {
        let () = Self::PAGE_SIZE_IS_VALID;
        assert!(
            (2..=FORMAT_VERSION).contains(&version),
            "create_in_format writes format 2 or 3, not {version}"
        );
        if storage.len_bytes() != 0 {
            return Err(MappedPageError::StorageNotEmpty {
                len_bytes: storage.len_bytes(),
            });
        }
        let state = initialize(&mut storage, Geometry::for_version(PAGE_SIZE, version))?;
        Ok(Pager {
            storage,
            state,
            poisoned: None,
            recovery: None,
            pending_length_sync: None,
            commit_mode: CommitMode::Flip,
            reserve_space: true,
            attached: BTreeSet::new(),
        })
    }

    /// Opens the file held by `storage`, running recovery: the committed state is found, any
    /// leftovers of a commit that never completed are invalidated, an unreadable superblock is
    /// rewritten, and a directory mirror a crash left missing is restored (SPEC.md §4). Those
    /// repairs are synced before this returns.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc().unwrap();
    /// let storage = pager.into_storage();
    /// let pager = Pager::<1024, SimStorage>::open_in(storage).unwrap();
    /// assert!(pager.is_allocated(id));
    /// ```
    pub fn open_in(storage: S) -> Result<Self, MappedPageError> {
        Self::try_open_in(storage).map_err(|(error, _)| error)
    }

    /// Like [`open_in`](Self::open_in), but gives the storage back when opening fails, to
    /// inspect or reuse it.
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SimStorage};
    ///
    /// let (error, storage) = Pager::<1024, SimStorage>::try_open_in(SimStorage::from_image(vec![0; 100]))
    ///     .unwrap_err();
    /// assert!(matches!(error, MappedPageError::FileTooSmall { .. }));
    /// assert_eq!(storage.into_image().len(), 100);
    /// ```
    pub fn try_open_in(mut storage: S) -> Result<Self, (MappedPageError, S)> {
        let () = Self::PAGE_SIZE_IS_VALID;
        match Self::recover_and_repair(&mut storage) {
            Ok((state, decision)) => Ok(Pager {
                storage,
                state,
                poisoned: None,
                recovery: Some(decision),
                pending_length_sync: None,
                commit_mode: CommitMode::Flip,
                reserve_space: true,
                attached: BTreeSet::new(),
            }),
            Err(error) => Err((error, storage)),
        }
    }

    /// Opens `storage` as [`try_open_in`](Self::try_open_in) does, but makes none of recovery's
    /// repairs: returns them instead (for [`crate::ReadOnlyPager`], SPEC.md §4.5).
    pub(crate) fn open_without_repair(
        storage: S,
    ) -> Result<(Self, Vec<crate::Repair>), MappedPageError> {
        let () = Self::PAGE_SIZE_IS_VALID;
        let mut storage = storage;
        let recovered = recover_advised(&mut storage, Self::geometry())?;
        let repairs = repair::planned(&recovered);
        Ok((
            Pager {
                storage,
                state: recovered.state,
                poisoned: None,
                recovery: Some(recovered.decision),
                pending_length_sync: None,
                commit_mode: CommitMode::Flip,
                reserve_space: true,
                attached: BTreeSet::new(),
            },
            repairs,
        ))
    }

    fn recover_and_repair(
        storage: &mut S,
    ) -> Result<(AllocState, RecoveryDecision), MappedPageError> {
        let geometry = Self::geometry();
        let recovered = recover_advised(storage, geometry)?;
        repair::apply(storage, geometry, &recovered)?;
        Ok((recovered.state, recovered.decision))
    }

    /// The storage backend (for example to read a `SimStorage`'s events or a `MmapStorage`'s
    /// sync counters).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Gives the storage back, for example to reopen it.
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Which recovery rule chose the state at open (`None` for a pager made by `create`).
    pub fn recovery_decision(&self) -> Option<RecoveryDecision> {
        self.recovery
    }

    pub(crate) fn check_poison(&self) -> Result<(), MappedPageError> {
        match &self.poisoned {
            Some(cause) => Err(MappedPageError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Checks that a commit may follow: the pager is not poisoned and the committed generation is
    /// below [`MAX_GENERATION`] (SPEC.md §3.2). Every operation that stages a change calls this
    /// before it changes anything, so an exhausted generation fails the call with
    /// [`MappedPageError::GenerationExhausted`] and leaves memory and disk as they were.
    pub(crate) fn check_commit_possible(&self) -> Result<(), MappedPageError> {
        self.check_poison()?;
        if self.state.generation() == MAX_GENERATION {
            return Err(MappedPageError::GenerationExhausted {
                generation: self.state.generation(),
            });
        }
        Ok(())
    }

    /// How this pager's commits become durable: [`CommitMode::Flip`] (two barriers, the default)
    /// or [`CommitMode::SingleSync`] (one barrier). Applies to every later commit, including
    /// protected ones; it is a property of this handle, not of the file.
    ///
    /// ```
    /// use mappedpages::{CommitMode, Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// pager.set_commit_mode(CommitMode::SingleSync);
    /// let id = pager.alloc().unwrap();
    /// // The commit is durable: a crash right now keeps it.
    /// let image = pager.storage().durable_image();
    /// let reopened = Pager::<1024, SimStorage>::open_in(SimStorage::from_image(image)).unwrap();
    /// assert!(reopened.is_allocated(id));
    /// ```
    pub fn set_commit_mode(&mut self, mode: CommitMode) {
        self.commit_mode = mode;
    }

    /// The mode set by [`set_commit_mode`](Self::set_commit_mode) ([`CommitMode::Flip`] unless
    /// changed).
    pub fn commit_mode(&self) -> CommitMode {
        self.commit_mode
    }

    /// Turns disk-space reservation on (the default) or off for this handle's later calls.
    ///
    /// With reservation on, every page the pager writes itself (metadata, bitmap slots, the
    /// protected-page directory and copies) and every page it hands out is reserved on disk
    /// (`fallocate`) before anyone writes it, so a full file system surfaces as
    /// [`MappedPageError::StorageFull`] from the call that needed the space, with nothing
    /// changed. Free pages stay unreserved holes: the file's disk use follows what is allocated.
    ///
    /// With reservation off nothing is reserved: a write through the map into a page that has
    /// no disk block on a full file system raises `SIGBUS` and kills the process. Turn it off
    /// only where that cannot happen or does not matter (for example a benchmark building a huge
    /// sparse file); SPEC.md §3.3.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut storage = SimStorage::new();
    /// storage.allow_unreserved_writes(); // SimStorage checks reservations unless told not to
    /// let mut pager = Pager::<1024, SimStorage>::create_in(storage).unwrap();
    /// pager.set_space_reservation(false);
    /// let reservations = pager.storage().reserve_count();
    /// pager.alloc_bulk(100).unwrap();
    /// assert_eq!(pager.storage().reserve_count(), reservations);
    /// ```
    pub fn set_space_reservation(&mut self, reserve: bool) {
        self.reserve_space = reserve;
    }

    /// True unless [`set_space_reservation(false)`](Self::set_space_reservation) turned
    /// reservation off.
    pub fn space_reservation(&self) -> bool {
        self.reserve_space
    }

    /// True after a failed sync; see [`MappedPageError::Poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Fails with [`MappedPageError::FileShrunk`], and poisons, when the file is shorter than the
    /// storage maps: something outside truncated it, and any access past its end would raise
    /// SIGBUS. Called before every commit, growth and sync, before they touch the map (one
    /// `fstat` for a `MmapStorage`). A failure to read the length poisons as a failed sync.
    pub(crate) fn check_file_len(&mut self, operation: &str) -> Result<(), MappedPageError> {
        let expected_len_bytes = self.storage.len_bytes();
        match self.storage.observed_len_bytes() {
            Ok(found_len_bytes) if found_len_bytes >= expected_len_bytes => Ok(()),
            Ok(found_len_bytes) => {
                self.poisoned = Some(format!(
                    "{operation} (the file shrank from {expected_len_bytes} to {found_len_bytes} bytes)"
                ));
                Err(MappedPageError::FileShrunk {
                    expected_len_bytes,
                    found_len_bytes,
                })
            }
            Err(error) => Err(self.poison(operation, error)),
        }
    }

    pub(crate) fn poison(&mut self, operation: &str, error: std::io::Error) -> MappedPageError {
        self.poisoned = Some(operation.to_string());
        MappedPageError::io(IoOperation::Sync, self.storage.path(), error)
    }

    // ----- counts ------------------------------------------------------------------------------

    /// The page size in bytes.
    pub fn page_size(&self) -> usize {
        PAGE_SIZE
    }

    /// Pages in the file, including the reserved and bitmap pages.
    pub fn page_count(&self) -> u64 {
        self.state.page_count
    }

    /// Data pages currently allocated.
    pub fn allocated_page_count(&self) -> u64 {
        self.state.allocated_data_page_count()
    }

    /// Data pages currently free (allocation grows the file when this reaches zero).
    pub fn free_page_count(&self) -> u64 {
        self.state.free_page_count()
    }

    /// Generation of the last commit; it increases by one with every commit. It never wraps: at
    /// [`format::MAX_GENERATION`](crate::format::MAX_GENERATION) every call that would commit
    /// fails with [`MappedPageError::GenerationExhausted`].
    pub fn generation(&self) -> u64 {
        self.state.generation()
    }

    /// The file's on-disk format version (SPEC.md §2.2): 3 for a file this build created, 1 or 2
    /// for an older one, which keeps it (format 1: single-sync `alloc_with` then takes one more
    /// barrier; formats 1 and 2: open reads every group's bitmap, §4.9).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// assert_eq!(pager.format_version(), mappedpages::format::FORMAT_VERSION);
    /// ```
    pub fn format_version(&self) -> u32 {
        self.state.format_version()
    }

    /// True if `id` names an allocated data page. False for a page of a group whose bitmap slot
    /// is damaged (format 3 finds that when the group is first used, SPEC.md §4.9: reading the
    /// page then fails with [`MappedPageError::CorruptGroupSlot`], and
    /// [`check_bitmaps`](Self::check_bitmaps) finds every such group at once).
    pub fn is_allocated(&self, id: PageId<PAGE_SIZE>) -> bool {
        self.state
            .is_allocated_data_page(id.raw(), self.storage.bytes())
            .unwrap_or(false)
    }

    /// Checks the bitmap slot of every group that is not in memory yet against the group table
    /// (SPEC.md §4.9): what opening a file did before format 3. Format 3's open reads only the
    /// groups it needs and finds a damaged slot of any other group when the group is first used;
    /// call this right after opening to find every one at once. Reads one page per such group
    /// and loads none. Formats 1 and 2 have every group in memory after open: nothing to check.
    ///
    /// # Errors
    ///
    /// [`MappedPageError::CorruptGroupSlot`] for the first damaged group;
    /// [`MappedPageError::Poisoned`] after a failed sync.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// pager.alloc_bulk(3).unwrap();
    /// let pager = Pager::<1024, SimStorage>::open_in(pager.into_storage()).unwrap();
    /// pager.check_bitmaps().unwrap();
    /// ```
    pub fn check_bitmaps(&self) -> Result<(), MappedPageError> {
        self.check_poison()?;
        Ok(self.state.check_unloaded_groups(self.storage.bytes())?)
    }

    /// True if `page` is one of the file's internal pages (superblock, metadata copies, bitmap
    /// slots, directory pages and protected pages' backing pages), never a data page.
    pub(crate) fn is_internal_page(&self, page: u64) -> bool {
        self.state.geometry.is_internal(page) || self.state.directory.owns(page)
    }

    /// The committed state (for the read-only inspection methods, `src/inspect.rs`).
    pub(crate) fn state(&self) -> &AllocState {
        &self.state
    }

    /// The file's bytes as mapped, where groups not loaded are read (SPEC.md §4.9).
    pub(crate) fn image(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// The page of the metadata copy holding the recovered or last commit (1 or 2).
    pub(crate) fn active_meta_page(&self) -> u64 {
        self.state.active_meta().page()
    }

    // ----- page access -------------------------------------------------------------------------

    fn check_allocated_data_page(&self, page: u64) -> Result<(), MappedPageError> {
        self.check_poison()?;
        if page >= self.state.page_count {
            return Err(MappedPageError::OutOfBounds {
                page,
                page_count: self.state.page_count,
            });
        }
        if self.state.geometry.is_internal(page) || self.state.directory.owns(page) {
            return Err(MappedPageError::ReservedPage { page });
        }
        if !self.state.page_in_use(page, self.storage.bytes())? {
            return Err(MappedPageError::NotAllocated { page });
        }
        Ok(())
    }

    pub(crate) fn page_byte_range(page: u64) -> Range<usize> {
        let start = page as usize * PAGE_SIZE;
        start..start + PAGE_SIZE
    }

    /// [`page_byte_range`](Self::page_byte_range) as file offsets, the form barriers take.
    pub(crate) fn page_file_range(page: u64) -> Range<u64> {
        let range = Self::page_byte_range(page);
        range.start as u64..range.end as u64
    }

    pub(crate) fn page(&self, id: PageId<PAGE_SIZE>) -> Result<&MappedPage, MappedPageError> {
        self.check_allocated_data_page(id.raw())?;
        Ok(self.raw_page(id.raw()))
    }

    /// A data page, writable. A page the last (single-sync) commit filled and checked is
    /// settled first (SPEC.md §3.6.1): once it changes, that commit's data check no longer
    /// matches, so a superblock must name the commit before.
    pub(crate) fn page_mut(
        &mut self,
        id: PageId<PAGE_SIZE>,
    ) -> Result<&mut MappedPage, MappedPageError> {
        self.check_allocated_data_page(id.raw())?;
        if self.state.is_unsettled(id.raw()) && !active(Mutant::WriteUnsettledPage) {
            self.settle()?;
        }
        Ok(self.raw_page_mut(id.raw()))
    }

    /// Names the last commit in the superblock (SPEC.md §3.6.1): one barrier over page 0. A
    /// failed barrier poisons.
    fn settle(&mut self) -> Result<(), MappedPageError> {
        self.check_file_len("settle")?;
        crate::commit::settle(&mut self.storage, &mut self.state)
            .map_err(|e| self.poison("settle", e))
    }

    // ----- for the crate's other pager modules (protected.rs, shared/) --------------------------

    /// Page `page` of the map, unchecked: the caller checked that it may be read (a data page,
    /// a protected page's verified or staged copy). Panics past the end of the map.
    pub(crate) fn raw_page(&self, page: u64) -> &MappedPage {
        MappedPage::from_bytes(&self.storage.bytes()[Self::page_byte_range(page)])
    }

    /// [`raw_page`](Self::raw_page), writable.
    pub(crate) fn raw_page_mut(&mut self, page: u64) -> &mut MappedPage {
        MappedPage::from_bytes_mut(&mut self.storage.bytes_mut()[Self::page_byte_range(page)])
    }

    /// Copies page `from` over page `to` in the map (not durable until a barrier covers it).
    pub(crate) fn copy_page(&mut self, from: u64, to: u64) {
        let to = Self::page_byte_range(to).start;
        self.storage
            .bytes_mut()
            .copy_within(Self::page_byte_range(from), to);
    }

    /// The protected-page directory, as committed plus what is staged.
    pub(crate) fn directory(&self) -> &Directory {
        &self.state.directory
    }

    /// The directory, to stage a change in (the next commit writes it).
    pub(crate) fn directory_mut(&mut self) -> &mut Directory {
        &mut self.state.directory
    }

    /// `count` free pages as runs ([`AllocState::find_free_runs`]); the caller made them free
    /// with [`ensure_free_pages`](Self::ensure_free_pages), whose `growth` this undoes when the
    /// search reaches a group whose bitmap slot is damaged (`CorruptGroupSlot`).
    pub(crate) fn free_runs(
        &mut self,
        count: u64,
        growth: Option<Growth>,
    ) -> Result<(Vec<PageRun>, Option<Growth>), MappedPageError> {
        match self.state.find_free_runs(count, self.storage.bytes()) {
            Ok(runs) => Ok((
                runs.expect("ensure_free_pages made enough pages free"),
                growth,
            )),
            Err(damaged) => {
                self.undo_growth(growth)?;
                Err(damaged.into())
            }
        }
    }

    /// Stages `runs` in the bitmap and the log ([`AllocState::apply`]).
    pub(crate) fn apply_runs(&mut self, runs: &[PageRun]) {
        self.state.apply(runs);
    }

    /// The generation the next commit writes ([`commit::next_generation`](crate::commit)).
    pub(crate) fn next_generation(&self) -> u64 {
        crate::commit::next_generation(&self.state)
    }

    /// Makes the contents of one page durable.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc().unwrap();
    /// id.get_mut(&mut pager).unwrap().as_bytes_mut().fill(7);
    /// pager.sync_page(id).unwrap();
    /// let offset = id.raw() as usize * 1024;
    /// assert_eq!(pager.storage().durable_image()[offset], 7);
    /// ```
    pub fn sync_page(&mut self, id: PageId<PAGE_SIZE>) -> Result<(), MappedPageError> {
        let range = self.stage_sync(Some(id))?;
        self.storage
            .sync_ranges(&[range])
            .map_err(|e| self.poison("sync_page", e))?;
        self.attached.remove(&id.raw());
        Ok(())
    }

    /// Makes the contents of every page durable, the [attached](Self::attach_to_next_commit)
    /// ones too (they are no longer attached afterwards).
    pub fn sync_all(&mut self) -> Result<(), MappedPageError> {
        self.stage_sync(None)?;
        self.storage
            .sync_all()
            .map_err(|e| self.poison("sync_all", e))?;
        self.attached.clear();
        Ok(())
    }

    /// Makes the contents of data page `id` durable in the first barrier of the next commit
    /// (of any `alloc`, `free`, bulk or protected commit), instead of in a barrier of its own:
    /// a page changed in place and a commit, durable together in one device flush when that
    /// commit returns (SPEC.md §3.6.2).
    ///
    /// What a crash keeps: once the commit returns, the page holds what it held when the commit
    /// started. Before that, a crash may leave it with its old bytes, its new bytes or a mix of
    /// their sectors, as any in-place write. In [`CommitMode::Flip`] a crash that keeps the
    /// commit also keeps the page's new bytes (its barrier returned before the superblock named
    /// the commit); in [`CommitMode::SingleSync`] the commit and the page share one barrier and
    /// either may reach the disk without the other.
    ///
    /// Attaching a page twice attaches it once. A page made durable by
    /// [`sync_page`](Self::sync_page) or [`sync_all`](Self::sync_all) is no longer attached (a
    /// free is a commit: it takes every attached page, the freed one too, whose bytes then no
    /// longer matter).
    /// Errors: `OutOfBounds`, `ReservedPage` (an internal or protected page: a protected page
    /// has commits of its own), `NotAllocated`, `Poisoned`, and `TooManyAttached` when
    /// [`ATTACHED_PAGES_MAX`] pages are attached already. On error nothing changed.
    ///
    /// ```
    /// use mappedpages::{CommitMode, Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// pager.set_commit_mode(CommitMode::SingleSync);
    /// let leaf = pager.alloc_with(|page| page.as_bytes_mut().fill(1)).unwrap();
    ///
    /// // Change the leaf in place and allocate its new sibling: one barrier for both.
    /// leaf.get_mut(&mut pager).unwrap().as_bytes_mut()[..4].copy_from_slice(b"half");
    /// pager.attach_to_next_commit(leaf).unwrap();
    /// let barriers = pager.storage().sync_count();
    /// let sibling = pager.alloc_with(|page| page.as_bytes_mut().fill(2)).unwrap();
    /// assert_eq!(pager.storage().sync_count(), barriers + 1);
    /// assert_eq!(pager.attached_page_count(), 0);
    ///
    /// let image = pager.storage().durable_image();
    /// assert_eq!(&image[leaf.raw() as usize * 1024..][..4], b"half");
    /// assert_eq!(image[sibling.raw() as usize * 1024], 2);
    /// ```
    pub fn attach_to_next_commit(&mut self, id: PageId<PAGE_SIZE>) -> Result<(), MappedPageError> {
        let page = id.raw();
        self.check_allocated_data_page(page)?;
        if self.attached.len() >= ATTACHED_PAGES_MAX && !self.attached.contains(&page) {
            return Err(MappedPageError::TooManyAttached {
                max_pages: ATTACHED_PAGES_MAX,
            });
        }
        self.attached.insert(page);
        Ok(())
    }

    /// How many pages [`attach_to_next_commit`](Self::attach_to_next_commit) holds for the next
    /// commit.
    pub fn attached_page_count(&self) -> usize {
        self.attached.len()
    }

    /// The attached pages as byte ranges (in page order; a barrier merges adjacent ones), for a
    /// commit's plan; none are attached afterwards.
    fn take_attached_ranges(&mut self) -> Vec<Range<u64>> {
        std::mem::take(&mut self.attached)
            .into_iter()
            .map(Self::page_file_range)
            .collect()
    }

    /// The checks of [`sync_page`](Self::sync_page) (`Some(id)`) or [`sync_all`](Self::sync_all)
    /// (`None`), without the barrier: the byte range it must cover. Both methods and the group
    /// commit, which puts the range in its barrier (SPEC.md §3.10), check through here.
    pub(crate) fn stage_sync(
        &mut self,
        id: Option<PageId<PAGE_SIZE>>,
    ) -> Result<Range<u64>, MappedPageError> {
        match id {
            Some(id) => {
                self.check_allocated_data_page(id.raw())?;
                self.check_file_len("sync_page")?;
                Ok(Self::page_file_range(id.raw()))
            }
            None => {
                self.check_poison()?;
                self.check_file_len("sync_all")?;
                Ok(0..self.storage.len_bytes())
            }
        }
    }

    // ----- allocation --------------------------------------------------------------------------

    /// Grows the file ahead of need, for a `SharedPager` group commit about to commit (SPEC.md
    /// §3.10): if fewer than `free_pages_min` pages are free, grows it as an allocation of
    /// `free_pages_min` pages would, so that the commit makes the new length durable and later
    /// groups take their new pages' first write faults before the write lock
    /// ([`Storage::prepare_writes`]) instead of inside it. Opportunistic: a growth that fails
    /// changes nothing and is no error (the allocation that needs the space reports it), unless
    /// it poisoned the pager.
    pub(crate) fn grow_ahead(&mut self, free_pages_min: u64) -> Result<(), MappedPageError> {
        match self.ensure_free_pages(free_pages_min) {
            Ok(_) => Ok(()),
            Err(error) if self.poisoned.is_some() => Err(error),
            Err(_) => Ok(()),
        }
    }

    /// Grows the file until `needed` pages are free, and returns what it changed for
    /// [`undo_growth`](Self::undo_growth) (`None` when no growth was needed). On error nothing
    /// changed. The new length becomes durable in the first barrier of the commit that follows
    /// (SPEC.md §3.3).
    pub(crate) fn ensure_free_pages(
        &mut self,
        needed: u64,
    ) -> Result<Option<Growth>, MappedPageError> {
        let geometry = self.state.geometry;
        let free = self.state.free_page_count();
        if free >= needed {
            return Ok(None);
        }
        let current = self.state.page_count;
        let max_pages = geometry.max_page_count();
        let step = current.clamp(
            INITIAL_PAGE_COUNT,
            (GROWTH_CAP_BYTES / geometry.page_size()).max(INITIAL_PAGE_COUNT),
        );
        let mut target = current.saturating_add(step);
        loop {
            while !geometry.is_valid_page_count(target) && target <= max_pages {
                target += 1;
            }
            if target > max_pages {
                target = max_pages;
            }
            let gained = geometry.data_page_count(target) - geometry.data_page_count(current);
            if free + gained >= needed {
                break;
            }
            if target == max_pages {
                return Err(MappedPageError::CapacityExceeded {
                    requested_pages: current.saturating_add(needed - free),
                    max_pages,
                });
            }
            target = target.saturating_add(needed - free - gained);
        }
        // Memory first: a bitmap that cannot grow is an error before the file changes.
        self.state
            .try_reserve_extend(target)
            .map_err(|requested_bytes| MappedPageError::OutOfMemory { requested_bytes })?;
        let growth = Growth {
            page_count: current,
            len_bytes: self.storage.len_bytes(),
            pending_length_sync: self.pending_length_sync.clone(),
        };
        let len_bytes = target * geometry.page_size();
        if self.storage.len_bytes() < len_bytes {
            // Growing a truncated file would fill the lost pages with zeros and commit over them.
            self.check_file_len("growth")?;
            if let Err(error) = self.storage.grow(len_bytes) {
                // A storage that lost its bytes undoing the growth (a `MmapStorage` on Windows
                // whose old view could not be mapped again) cannot go on.
                if self.storage.bytes().len() as u64 != self.storage.len_bytes() {
                    self.poisoned = Some("undoing a failed growth".to_string());
                    return Err(MappedPageError::io(
                        IoOperation::Grow,
                        self.storage.path(),
                        error,
                    ));
                }
                let requested_bytes = len_bytes - growth.len_bytes;
                return Err(MappedPageError::space(
                    IoOperation::Grow,
                    self.storage.path(),
                    requested_bytes,
                    error,
                ));
            }
            // The commit's first barrier makes the new length durable together with the
            // metadata that counts on it, before the superblock names that metadata.
            self.pending_length_sync = Some(len_bytes - geometry.page_size()..len_bytes);
        }
        self.state.extend(target);
        Ok(Some(growth))
    }

    /// Undoes `growth` (if any) after the operation that needed it failed before anything was
    /// written to the new pages or staged in memory: the page count, the file length and the
    /// pending length sync are as before. A file that cannot be shrunk back poisons the pager.
    pub(crate) fn undo_growth(&mut self, growth: Option<Growth>) -> Result<(), MappedPageError> {
        let Some(growth) = growth else {
            return Ok(());
        };
        self.state.truncate(growth.page_count);
        self.pending_length_sync = growth.pending_length_sync;
        if self.storage.len_bytes() > growth.len_bytes
            && let Err(error) = self.storage.shrink(growth.len_bytes)
        {
            self.poisoned = Some("undoing a growth".to_string());
            return Err(MappedPageError::io(
                IoOperation::Reserve,
                self.storage.path(),
                error,
            ));
        }
        Ok(())
    }

    /// Reserves disk blocks (SPEC.md §3.3) for the pages of `runs`, which the caller is about to
    /// hand out or write, and for the internal pages of every group a commit of them
    /// materializes (the fresh groups up to the highest one `runs` touch: both slot pages and, in
    /// format 3, the group table's extent pages in the group) and, in format 3, both slots of
    /// every table page that holds one of those groups' entries (which may lie in an earlier
    /// group). Nothing when reservation is off.
    /// On error `growth` is undone and nothing changed (or the pager is poisoned if the file
    /// could not be shrunk back); on success `growth` is handed back for a later failure.
    pub(crate) fn reserve_runs(
        &mut self,
        runs: &[PageRun],
        growth: Option<Growth>,
    ) -> Result<Option<Growth>, MappedPageError> {
        if !self.reserve_space || runs.is_empty() {
            return Ok(growth);
        }
        let geometry = self.state.geometry;
        let page_size = geometry.page_size();
        let mut ranges: Vec<Range<u64>> = runs
            .iter()
            .map(|run| run.first_page * page_size..run.end_page * page_size)
            .collect();
        let highest_group = runs
            .iter()
            .map(|run| geometry.group_of(run.end_page - 1))
            .max();
        if let Some(highest) = highest_group {
            let materialized = self.state.materialized_groups();
            for group in materialized..=highest {
                // Its internal pages are adjacent, from its first page: one range.
                let first = geometry.offset(geometry.group_start(group));
                ranges.push(first..geometry.offset(geometry.first_data_page_of_group(group)));
            }
            if geometry.has_group_table() && materialized <= highest {
                let per_page = geometry.table_entries_per_page();
                for table_page in materialized / per_page..=highest / per_page {
                    for slot in 0..2 {
                        let first = geometry.offset(geometry.table_slot_page(table_page, slot));
                        ranges.push(first..first + page_size);
                    }
                }
            }
        }
        let requested_bytes = ranges.iter().map(|r| r.end - r.start).sum();
        match self.storage.reserve(&ranges) {
            Ok(()) => Ok(growth),
            Err(error) => {
                // A file shrunk by another process fails the reservation too: say so.
                self.check_file_len("reserve")?;
                self.undo_growth(growth)?;
                Err(MappedPageError::space(
                    IoOperation::Reserve,
                    self.storage.path(),
                    requested_bytes,
                    error,
                ))
            }
        }
    }

    /// The byte ranges a commit that allocates and fills about `filled_pages` pages will likely
    /// write: the inactive metadata copy (SPEC.md §3.2 step 2) and the free pages the
    /// allocation will likely take (`AllocState::next_free_pages_hint`). A `SharedPager` leader
    /// hands them to [`Storage::prepare_writes`] before it takes the lock readers wait for. A
    /// hint: a page named and not written, or written and not named, costs time, never
    /// correctness.
    pub(crate) fn commit_write_hint(&self, filled_pages: u64) -> Vec<std::ops::Range<u64>> {
        let meta = self.state.active_meta().other().page();
        let mut ranges = vec![Self::page_file_range(meta)];
        if let Some(pages) = self.state.next_free_pages_hint(filled_pages) {
            let (first, end) = (
                Self::page_file_range(pages.start),
                Self::page_file_range(pages.end),
            );
            ranges.push(first.start..end.start);
        }
        ranges
    }

    /// The staged part of `alloc` and `alloc_bulk` (and of a `SharedPager` group commit): grows
    /// the file if needed and marks `count` pages allocated in memory, without committing; the
    /// caller commits with [`commit_prepared`](Self::commit_prepared). On error nothing changed
    /// (a failed growth changes nothing, SPEC.md §3.4). `count == 0` changes nothing.
    pub(crate) fn stage_alloc(
        &mut self,
        count: usize,
    ) -> Result<Vec<PageId<PAGE_SIZE>>, MappedPageError> {
        let chosen = self.choose_free_pages(count)?;
        // Nothing can fail past this point: the growth stays.
        self.state.apply(&chosen.runs);
        Ok(chosen.ids)
    }

    /// The first half of [`stage_alloc`](Self::stage_alloc): grows the file if needed, finds
    /// `count` free pages and reserves their space, but marks nothing allocated. On error nothing
    /// changed.
    fn choose_free_pages(&mut self, count: usize) -> Result<Chosen<PAGE_SIZE>, MappedPageError> {
        self.check_poison()?;
        if count == 0 {
            return Ok(Chosen::default());
        }
        self.check_commit_possible()?;
        // The result's memory first: a request that cannot be held fails before the file grows.
        let mut ids = Vec::new();
        ids.try_reserve_exact(count)
            .map_err(|_| MappedPageError::OutOfMemory {
                requested_bytes: (count as u64).saturating_mul(8),
            })?;
        let growth = self.ensure_free_pages(count as u64)?;
        let (runs, growth) = self.free_runs(count as u64, growth)?;
        let growth = self.reserve_runs(&runs, growth)?;
        for run in &runs {
            ids.extend((run.first_page..run.end_page).map(PageId::from_raw));
        }
        Ok(Chosen { ids, runs, growth })
    }

    /// The staged part of `free` and `free_bulk` (and of a `SharedPager` group commit): checks
    /// every id (in bounds, not reserved, allocated, not repeated) and only then marks them free
    /// in memory, without committing. On error nothing changed. An empty `ids` changes nothing.
    pub(crate) fn stage_free(&mut self, ids: &[PageId<PAGE_SIZE>]) -> Result<(), MappedPageError> {
        self.check_poison()?;
        if ids.is_empty() {
            return Ok(());
        }
        self.check_commit_possible()?;
        self.validate_free_ids(ids)?;
        self.stage_validated_free(ids.to_vec())
    }

    /// Checks each id as [`free`](Self::free) would, in the order given, and returns the first
    /// failure (`OutOfBounds`, `ReservedPage`, `DoubleFree`; a repeated id is caught later, by
    /// [`stage_validated_free`](Self::stage_validated_free)). The caller checked poison.
    fn validate_free_ids(&self, ids: &[PageId<PAGE_SIZE>]) -> Result<(), MappedPageError> {
        let state = &self.state;
        let divider = GroupDivider::new(state.geometry);
        let protected_pages = state.directory.owned_page_count() > 0;
        for id in ids {
            let page = id.raw();
            // One combined test per id; a failing id gets its exact error, in the order of
            // `check_allocated_data_page`, from `validate_free`.
            if page >= state.page_count
                || divider.is_internal(page)
                || !state.bitmap.get(page)
                || (protected_pages && state.directory.owns(page))
            {
                // Also the way to a page of a group not loaded (its bits are zero in memory):
                // `validate_free` reads them from its pinned slot, and an allocated page passes.
                self.validate_free(page)?;
            }
        }
        Ok(())
    }

    /// The rest of a free whose ids passed [`validate_free_ids`](Self::validate_free_ids): sorts
    /// them, rejects a repeated id (`DuplicateId` of the smallest), and marks them free.
    fn stage_validated_free(
        &mut self,
        mut ids: Vec<PageId<PAGE_SIZE>>,
    ) -> Result<(), MappedPageError> {
        ids.sort_unstable();
        let runs = PageRun::try_free_runs(ids.iter().map(|id| id.raw()))
            .map_err(|page| MappedPageError::DuplicateId { page })?;
        // Their groups' bits into memory (SPEC.md §4.9): validation read the pinned slot of each
        // group not loaded, so loading cannot find it damaged.
        let geometry = self.state.geometry;
        for run in &runs {
            self.state
                .load_group(geometry.group_of(run.first_page), self.storage.bytes())?;
        }
        self.state.apply(&runs);
        Ok(())
    }

    /// Commits the change already applied to the in-memory state, with `data_ranges` (bytes the
    /// caller wrote) made durable in the commit's first barrier. A failed sync poisons.
    pub(crate) fn commit_prepared(
        &mut self,
        data_ranges: Vec<Range<u64>>,
        operation: &str,
    ) -> Result<(), MappedPageError> {
        self.commit_planned(
            CommitPlan {
                data_ranges,
                ..CommitPlan::default()
            },
            operation,
        )
    }

    /// [`commit_prepared`](Self::commit_prepared) of a plan that may also carry filled pages
    /// and their data checks; the mode and the pending length sync are added here.
    fn commit_planned(
        &mut self,
        mut plan: CommitPlan,
        operation: &str,
    ) -> Result<(), MappedPageError> {
        self.complete_plan(&mut plan, operation)?;
        commit(&mut self.storage, &mut self.state, &plan)
            .map_err(|error| self.fail_commit(operation, error))
    }

    /// What every commit's plan gets from the pager: the file-length check, the pending length
    /// sync (a growth's last page) and the commit mode.
    fn complete_plan(
        &mut self,
        plan: &mut CommitPlan,
        operation: &str,
    ) -> Result<(), MappedPageError> {
        self.check_file_len(operation)?;
        if let Some(range) = self.pending_length_sync.take() {
            plan.data_ranges.push(range);
        }
        plan.attached_ranges = self.take_attached_ranges();
        plan.mode = self.commit_mode;
        Ok(())
    }

    /// A barrier of a commit failed (SPEC.md §3.4): what is durable is unknown, so the pager
    /// poisons itself. Returns the caller's error.
    pub(crate) fn fail_commit(
        &mut self,
        operation: &str,
        error: std::io::Error,
    ) -> MappedPageError {
        if active(Mutant::KeepStateAfterFailedSync) {
            return MappedPageError::io(IoOperation::Sync, self.storage.path(), error);
        }
        self.poison(operation, error)
    }

    /// [`commit_filled`](Self::commit_filled) up to its first barrier, which it leaves to the
    /// caller (the group-commit leader, SPEC.md §3.10): steps 1 to 3 written, nothing durable.
    /// The caller runs the rest with [`start_commit_barrier`](Self::start_commit_barrier), the
    /// returned [`Staged`]'s steps and [`record_commit`](Self::record_commit), and stages
    /// nothing else in between.
    pub(crate) fn stage_commit_filled(
        &mut self,
        data_ranges: Vec<Range<u64>>,
        runs: &[PageRun],
        operation: &str,
    ) -> Result<Staged, MappedPageError> {
        let mut plan = self.filled_plan(runs, operation)?;
        plan.data_ranges = data_ranges;
        self.complete_plan(&mut plan, operation)?;
        Ok(commit::stage(&mut self.storage, &mut self.state, &plan))
    }

    /// Starts one barrier of a staged commit (or of a group's page syncs) over `ranges`
    /// (empty: none, a mutant skipped it). A barrier that cannot start poisons as a failed one.
    pub(crate) fn start_commit_barrier(
        &mut self,
        ranges: &[Range<u64>],
        operation: &str,
    ) -> Result<PendingBarrier, MappedPageError> {
        if ranges.is_empty() {
            return Ok(PendingBarrier::complete());
        }
        self.storage
            .start_barrier(ranges)
            .map_err(|error| self.fail_commit(operation, error))
    }

    /// Step 5 of a staged commit ([`Staged::step_5_flip`]): returns step 6's ranges, `None` in
    /// single-sync mode.
    pub(crate) fn flip_commit(&mut self, staged: &Staged) -> Option<Vec<Range<u64>>> {
        staged.step_5_flip(&mut self.storage)
    }

    /// Step 7 of a staged commit, after its last barrier returned.
    pub(crate) fn record_commit(
        &mut self,
        staged: Staged,
        operation: &str,
    ) -> Result<(), MappedPageError> {
        staged
            .step_7_record(&mut self.storage, &mut self.state)
            .map_err(|error| self.fail_commit(operation, error))
    }

    /// Allocates one page and commits. Grows the file if no page is free.
    ///
    /// The page's contents are whatever it held before: zeros for a page never used, the old
    /// bytes for a page freed earlier.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let a = pager.alloc().unwrap();
    /// let b = pager.alloc().unwrap();
    /// assert_ne!(a, b);
    /// assert_eq!(pager.allocated_page_count(), 2);
    /// ```
    pub fn alloc(&mut self) -> Result<PageId<PAGE_SIZE>, MappedPageError> {
        let ids = self.stage_alloc(1)?;
        self.commit_prepared(Vec::new(), "alloc")?;
        Ok(ids[0])
    }

    /// Frees one page and commits. The id must name an allocated data page.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc().unwrap();
    /// pager.free(id).unwrap();
    /// assert!(pager.free(id).is_err());
    /// ```
    pub fn free(&mut self, id: PageId<PAGE_SIZE>) -> Result<(), MappedPageError> {
        self.stage_free(&[id])?;
        self.commit_prepared(Vec::new(), "free")
    }

    fn validate_free(&self, page: u64) -> Result<(), MappedPageError> {
        self.check_poison()?;
        match self.check_allocated_data_page(page) {
            Err(MappedPageError::NotAllocated { page }) => {
                Err(MappedPageError::DoubleFree { page })
            }
            other => other,
        }
    }

    /// Allocates `count` pages in one commit (growing the file at most once).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let ids = pager.alloc_bulk(100).unwrap();
    /// assert_eq!(ids.len(), 100);
    /// assert_eq!(pager.allocated_page_count(), 100);
    /// assert!(pager.alloc_bulk(0).unwrap().is_empty());
    /// ```
    pub fn alloc_bulk(&mut self, count: usize) -> Result<Vec<PageId<PAGE_SIZE>>, MappedPageError> {
        let ids = self.stage_alloc(count)?;
        if !ids.is_empty() {
            self.commit_prepared(Vec::new(), "alloc_bulk")?;
        }
        Ok(ids)
    }

    /// Allocates one page, lets `fill` write its contents, and commits: the contents become
    /// durable **in the same barrier** as the allocation (SPEC.md §3.6.1), so after a crash the
    /// page is either free or allocated with exactly the bytes `fill` left, never allocated with
    /// torn or old contents. In single-sync mode that is one device flush for a durable new
    /// record; in `Flip` mode two (the allocation's own), where `alloc` + `sync_page` takes three.
    ///
    /// `fill` sees the page's previous contents (zeros for a page never used, the old bytes for
    /// a reused one) and runs before the page is marked allocated: if it panics, nothing is
    /// allocated and the panic goes on. Writing the page again before the next commit costs one
    /// barrier in single-sync mode ([`PageId::get_mut`] settles the commit first, §3.6.1).
    ///
    /// ```
    /// use mappedpages::{CommitMode, Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// pager.set_commit_mode(CommitMode::SingleSync);
    /// let before = pager.storage().sync_count();
    /// let id = pager.alloc_with(|page| page.as_bytes_mut()[..5].copy_from_slice(b"hello")).unwrap();
    /// assert_eq!(pager.storage().sync_count() - before, 1); // one barrier for page and allocation
    /// let offset = id.raw() as usize * 1024;
    /// assert_eq!(&pager.storage().durable_image()[offset..offset + 5], b"hello");
    /// ```
    pub fn alloc_with(
        &mut self,
        fill: impl FnOnce(&mut MappedPage),
    ) -> Result<PageId<PAGE_SIZE>, MappedPageError> {
        let mut fill = Some(fill);
        let ids = self.alloc_filled(1, "alloc_with", &mut |_, page| {
            if let Some(fill) = fill.take() {
                fill(page);
            }
        })?;
        Ok(ids[0])
    }

    /// Allocates `count` pages in one commit, with `fill(index, page)` writing the contents of
    /// the `index`-th of them ([`alloc_with`](Self::alloc_with) for many pages): all of them
    /// become durable in the commit's barrier. A crash leaves all `count` allocated with their
    /// contents, or none. In single-sync mode a call whose pages lie in more than
    /// `log capacity / 2` separate runs (28 at 1 KiB, 124 at 4 KiB; free space fragmented by
    /// earlier frees) makes them durable in a barrier of their own before the commit's, as does
    /// any call on a format-1 file.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let ids = pager.alloc_bulk_with(3, |i, page| page.as_bytes_mut().fill(i as u8 + 1)).unwrap();
    /// assert_eq!(ids.len(), 3);
    /// assert_eq!(ids[2].get(&pager).unwrap().as_bytes()[0], 3);
    /// ```
    pub fn alloc_bulk_with(
        &mut self,
        count: usize,
        mut fill: impl FnMut(usize, &mut MappedPage),
    ) -> Result<Vec<PageId<PAGE_SIZE>>, MappedPageError> {
        self.alloc_filled(count, "alloc_bulk_with", &mut fill)
    }

    /// [`alloc_bulk_with`](Self::alloc_bulk_with): choose the pages, fill them while they are
    /// still free, mark them allocated, and commit them with their contents.
    fn alloc_filled(
        &mut self,
        count: usize,
        operation: &str,
        fill: &mut dyn FnMut(usize, &mut MappedPage),
    ) -> Result<Vec<PageId<PAGE_SIZE>>, MappedPageError> {
        let (ids, runs) = match self.stage_filled(count, fill)? {
            Ok(staged) => staged,
            Err(payload) => panic::resume_unwind(payload),
        };
        if !ids.is_empty() {
            self.commit_filled(Vec::new(), &runs, operation)?;
        }
        Ok(ids)
    }

    /// The staged part of `alloc_with` / `alloc_bulk_with` (and of a `SharedPager` group
    /// commit): chooses `count` free pages, runs `fill` on them while they are still free, then
    /// marks them allocated in memory, without committing; the caller commits with
    /// [`commit_filled`](Self::commit_filled) and the runs returned. On error nothing changed;
    /// a panic in `fill` is returned (inner `Err`) after the growth was undone, with nothing
    /// allocated. `count == 0` changes nothing.
    #[allow(clippy::type_complexity)]
    pub(crate) fn stage_filled(
        &mut self,
        count: usize,
        fill: &mut dyn FnMut(usize, &mut MappedPage),
    ) -> Result<Result<(Vec<PageId<PAGE_SIZE>>, Vec<PageRun>), Box<dyn Any + Send>>, MappedPageError>
    {
        let chosen = self.choose_free_pages(count)?;
        let filled = panic::catch_unwind(AssertUnwindSafe(|| {
            for (index, id) in chosen.ids.iter().enumerate() {
                fill(index, self.raw_page_mut(id.raw()));
            }
        }));
        if let Err(payload) = filled {
            // The pages are still free; only a growth is left to undo. A failure to undo it
            // poisons the pager, and the panic goes on either way.
            let _ = self.undo_growth(chosen.growth);
            return Ok(Err(payload));
        }
        self.state.apply(&chosen.runs);
        Ok(Ok((chosen.ids, chosen.runs)))
    }

    /// Commits the change staged in memory with `data_ranges` and the pages filled in `runs`
    /// ([`stage_filled`](Self::stage_filled)) in its barrier (SPEC.md §3.6.1). A failed sync
    /// poisons.
    pub(crate) fn commit_filled(
        &mut self,
        data_ranges: Vec<Range<u64>>,
        runs: &[PageRun],
        operation: &str,
    ) -> Result<(), MappedPageError> {
        let mut plan = self.filled_plan(runs, operation)?;
        plan.data_ranges = data_ranges;
        self.commit_planned(plan, operation)
    }

    /// The commit plan of pages filled in `runs` (SPEC.md §3.6.1): their bytes in the barrier,
    /// and in single-sync mode on a format-2 file one data check per run. When the checks
    /// would take more than half the log area, or the file is format 1, the pages are made
    /// durable by a barrier of their own first (a failed one poisons).
    fn filled_plan(
        &mut self,
        runs: &[PageRun],
        operation: &str,
    ) -> Result<CommitPlan, MappedPageError> {
        let geometry = self.state.geometry;
        let page_size = geometry.page_size();
        let filled_ranges: Vec<Range<u64>> = runs
            .iter()
            .map(|run| run.first_page * page_size..run.end_page * page_size)
            .collect();
        let mut plan = CommitPlan {
            filled_ranges,
            ..CommitPlan::default()
        };
        // Nothing filled (a group commit without `alloc_with`): no checks and no barrier.
        if self.commit_mode == CommitMode::Flip || runs.is_empty() {
            return Ok(plan);
        }
        if self.state.format_version() >= 2 && runs.len() <= geometry.log_capacity() / 2 {
            let bytes = self.storage.bytes();
            plan.data_checks = runs
                .iter()
                .zip(&plan.filled_ranges)
                .map(|(run, range)| {
                    let run_pages = (run.end_page - run.first_page) as u32;
                    let run_bytes = &bytes[range.start as usize..range.end as usize];
                    DataCheck::of(run.first_page, run_pages, run_bytes)
                })
                .collect();
            return Ok(plan);
        }
        self.check_file_len(operation)?;
        self.storage
            .sync_ranges(&plan.filled_ranges)
            .map_err(|e| self.poison(operation, e))?;
        Ok(plan)
    }

    /// Frees every page in `ids` in one commit. Every id is checked first (in bounds, not
    /// reserved, allocated, not repeated); if any fails, nothing is freed.
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let ids = pager.alloc_bulk(3).unwrap();
    /// let bad = vec![ids[0], ids[1], ids[1]];
    /// assert!(matches!(pager.free_bulk(bad), Err(MappedPageError::DuplicateId { .. })));
    /// assert_eq!(pager.allocated_page_count(), 3);
    /// pager.free_bulk(ids).unwrap();
    /// assert_eq!(pager.allocated_page_count(), 0);
    /// ```
    pub fn free_bulk(&mut self, ids: Vec<PageId<PAGE_SIZE>>) -> Result<(), MappedPageError> {
        // `stage_free`, sorting the caller's vector in place instead of a copy.
        self.check_poison()?;
        if ids.is_empty() {
            return Ok(());
        }
        self.check_commit_possible()?;
        self.validate_free_ids(&ids)?;
        self.stage_validated_free(ids)?;
        self.commit_prepared(Vec::new(), "free_bulk")
    }

    /// Iterates over the allocated data pages in increasing order. Reserved and bitmap pages are
    /// never yielded. A poisoned pager yields nothing (its memory may not match the disk).
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let ids = pager.alloc_bulk(3).unwrap();
    /// pager.free(ids[1]).unwrap();
    /// let listed: Vec<_> = pager.iter_allocated_pages().collect();
    /// assert_eq!(listed, vec![ids[0], ids[2]]);
    /// ```
    ///
    /// The iterator borrows the pager, so allocation is impossible while it is alive:
    ///
    /// ```compile_fail
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let mut pages = pager.iter_allocated_pages();
    /// pager.alloc().unwrap(); // error: pager is borrowed by the iterator
    /// pages.next();
    /// ```
    pub fn iter_allocated_pages(&self) -> AllocatedPageIter<'_, PAGE_SIZE, S> {
        AllocatedPageIter {
            scan: AllocatedScan::new(&self.state, self.storage.bytes(), self.poisoned.is_some()),
            _pager: PhantomData,
        }
    }
}

/// Reading a page through its id. Here rather than in page.rs, so that `page` (the id and view
/// types) does not depend on the pager.
impl<const PAGE_SIZE: usize> PageId<PAGE_SIZE> {
    /// Borrows the page's bytes. Fails if the page is not allocated.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc().unwrap();
    /// assert_eq!(id.get(&pager).unwrap().len(), 1024);
    /// ```
    pub fn get<'a, S: Storage>(
        &self,
        pager: &'a Pager<PAGE_SIZE, S>,
    ) -> Result<&'a MappedPage, MappedPageError> {
        pager.page(*self)
    }

    /// Borrows the page's bytes mutably. Writes are not durable until
    /// [`Pager::sync_page`] or [`Pager::sync_all`] returns.
    ///
    /// ```
    /// use mappedpages::{Pager, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let id = pager.alloc().unwrap();
    /// id.get_mut(&mut pager).unwrap().as_bytes_mut()[0] = 42;
    /// pager.sync_page(id).unwrap();
    /// assert_eq!(id.get(&pager).unwrap().as_bytes()[0], 42);
    /// ```
    pub fn get_mut<'a, S: Storage>(
        &self,
        pager: &'a mut Pager<PAGE_SIZE, S>,
    ) -> Result<&'a mut MappedPage, MappedPageError> {
        pager.page_mut(*self)
    }
}

/// An iterator over the allocated data pages of a [`Pager`], in increasing order.
///
/// It scans the allocation bitmap a word at a time; creating it sorts the pages the
/// protected-page directory owns (none without protected pages).
pub struct AllocatedPageIter<'a, const PAGE_SIZE: usize, S: Storage = MmapStorage> {
    scan: AllocatedScan<'a>,
    _pager: PhantomData<&'a Pager<PAGE_SIZE, S>>,
}

impl<const PAGE_SIZE: usize, S: Storage> Iterator for AllocatedPageIter<'_, PAGE_SIZE, S> {
    type Item = PageId<PAGE_SIZE>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.scan.next().map(PageId::from_raw)
    }
}

impl<const PAGE_SIZE: usize, S: Storage> std::iter::FusedIterator
    for AllocatedPageIter<'_, PAGE_SIZE, S>
{
}
