//! A crash-consistent, memory-mapped, file-backed fixed-size page provider.
//!
//! # Overview
//!
//! A [`Pager`] manages a file divided into fixed-size pages. Pages are addressed by [`PageId`]
//! and accessed as [`MappedPage`] views into the memory map. Allocation state survives any
//! crash: when [`Pager::alloc`], [`Pager::free`] or their bulk forms return `Ok`, the change is
//! durable; when a crash interrupts them, reopening the file finds the state either before or
//! after the change, never a mix.
//!
//! ```
//! use mappedpages::Pager;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("db.bin");
//!
//! let mut pager = Pager::<4096>::create(&path).unwrap();
//! let id = pager.alloc().unwrap();
//! id.get_mut(&mut pager).unwrap().as_bytes_mut()[0] = 1;
//! pager.sync_page(id).unwrap();
//! drop(pager);
//!
//! let pager = Pager::<4096>::open(&path).unwrap();
//! assert_eq!(id.get(&pager).unwrap().as_bytes()[0], 1);
//! ```
//!
//! # File layout
//!
//! * Page 0 — superblock (magic, version, page size, active metadata selector and the
//!   generation and checksum of the copy it selects, and its own checksum).
//! * Page 1 — metadata A (generation, page count, a log of recent allocation changes, checksum).
//! * Page 2 — metadata B (same layout; the alternate buffer for crash-safe commits).
//! * Every group of `(PAGE_SIZE - 32) * 8` pages starts with two bitmap *slot* pages (pages 3 and
//!   4 for the first group), double-buffered like the metadata. All other pages are data pages.
//!
//! A metadata page does not hold the whole bitmap: it holds a log of the changes made since each
//! group's bitmap page was last written, so a commit writes one metadata page and, only when the
//! log is full, the bitmap pages of the groups it touches. The file can hold up to 64 TiB
//! (`2^46 / PAGE_SIZE` pages: 2^36 at 1 KiB, 2^34 at 4 KiB), and a commit writes an amount
//! proportional to what changed, not to the file size. SPEC.md §2 specifies the format byte by
//! byte; README.md's architecture section draws it and maps `src/` to SPEC's sections.
//!
//! # Crash-consistency guarantee
//!
//! Every allocation change is one double-buffered commit (SPEC.md §3.2): the change goes into
//! the inactive metadata copy (and inactive bitmap slots, if any), never over the committed one,
//! and becomes current only once it is durable. How many *barriers* (durability syncs) that takes
//! depends on the pager's [`CommitMode`]:
//!
//! * [`CommitMode::Flip`] (the default): a barrier over the written pages, then the superblock is
//!   flipped to name the new copy, then a barrier over the superblock: two barriers.
//! * [`CommitMode::SingleSync`]: one barrier over the written pages; the superblock is not
//!   written, and recovery takes the newer copy only if it loads completely (SPEC.md §3.2.1,
//!   which also says what this mode gives up).
//!
//! Recovery on open (SPEC.md §4) validates the checksums of the superblock and both metadata
//! copies and falls back to the other copy when that loses nothing acknowledged; otherwise it
//! returns a typed error rather than guess.
//!
//! Page *contents* are yours: they become durable when [`Pager::sync_page`] or
//! [`Pager::sync_all`] returns.
//!
//! # Platforms
//!
//! The same API and guarantees on Linux, macOS (and iOS), Windows and other Unixes; no item is
//! platform-specific. What a *barrier* above is differs per system, and each is a real flush of
//! the drive's cache ([`MmapStorage`] has the details, SPEC.md §5 the crash model, and
//! `docs/mmap-barriers.md` the reasoning per system):
//!
//! * Linux: `msync(MS_SYNC)` (on ext4, xfs, btrfs and tmpfs with `sync_file_range` first, to put
//!   the writes of all ranges in flight together and wait for them: one flush per barrier);
//! * macOS and iOS: `msync(MS_SYNC)` of the ranges, then `fcntl(F_FULLFSYNC)` (Darwin's `fsync`
//!   does not flush the drive), falling back to `fsync` where the file system refuses it;
//! * Windows: `FlushViewOfFile` of the ranges, then `FlushFileBuffers`;
//! * other Unixes: `msync(MS_SYNC)` of the ranges, then `fsync`.
//!
//! The exclusive lock is `flock` on Unix (advisory) and `LockFileEx` on Windows (mandatory). Linux
//! runs every test; Windows runs the test suite under Wine in CI; macOS is built and linted.
//!
//! # Protected pages
//!
//! A protected page ([`ProtectedPageId`]) is a page whose *content* changes atomically. Its
//! [`get_mut`](ProtectedPageId::get_mut) returns a [`ProtectedPageWriter`] that starts from the
//! committed content; [`commit`](ProtectedPageWriter::commit) makes the new content committed and
//! durable in one commit (two barriers, one in single-sync mode). After a crash the page reads as
//! the old or the new content, never a mix; a committed copy damaged by the medium is reported,
//! never returned. Each protected page has two backing copies, recorded in a mirrored directory so
//! that no single damaged page makes the file unopenable.
//!
//! ```
//! use mappedpages::{Pager, SimStorage};
//!
//! let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
//! let id = pager.alloc_protected().unwrap(); // reads as zeros
//! let mut writer = id.get_mut(&mut pager).unwrap();
//! writer.page_mut().as_bytes_mut()[..5].copy_from_slice(b"hello");
//! writer.commit().unwrap();
//!
//! let pager = Pager::<1024, SimStorage>::open_in(pager.into_storage()).unwrap();
//! assert_eq!(&id.get(&pager).unwrap().as_bytes()[..5], b"hello");
//! ```
//!
//! [`Pager::alloc_protected_bulk`] and [`Pager::free_protected_bulk`] allocate or free many
//! protected pages in one commit; `free_protected_bulk` validates every id before freeing any,
//! and a failed `alloc_protected_bulk` leaves none allocated.
//!
//! # Page iteration
//!
//! [`Pager::iter_allocated_pages`] yields every allocated regular page; the pages behind
//! protected pages and the reserved pages are never included.
//! [`Pager::iter_allocated_protected_pages`] yields every allocated protected page. Both borrow
//! the pager, so allocation is impossible while either is alive.
//!
//! # Sub-page allocation
//!
//! A file has one page size. [`SubPageAllocator`] divides regular pages into up to 64 sub-pages
//! of `SUB_SIZE` bytes, with the same bulk semantics. Its bookkeeping lives in memory only: after
//! a restart, rebuild it from the sub-page ids you still own with [`SubPageAllocator::rebuild`].
//!
//! # Allocator traits
//!
//! [`PageHandle`], [`PageAllocator`] and [`BulkPageAllocator`] let generic code work with any
//! of the three kinds of pages: `Pager` implements the allocator traits for [`PageId`] and
//! [`ProtectedPageId`], `SubPageAllocator` for [`SubPageId`].
//!
//! # Page-size safety
//!
//! [`Pager`] and [`PageId`] are generic over a const `PAGE_SIZE: usize`. A `PageId<1024>` cannot
//! be passed to a `Pager<4096>`; `PAGE_SIZE` must be a power of two of at least 1024; violating
//! either is a compile error.
//!
//! # Bulk operations
//!
//! [`Pager::alloc_bulk`] and [`Pager::free_bulk`] allocate or free many pages in a single
//! commit. `free_bulk` validates every id before touching the bitmap: one invalid id fails the
//! whole call without modifying any state.
//!
//! # Reference lifetime and grow safety
//!
//! `&MappedPage` and `&mut MappedPage` borrow the `Pager` that produced them. Because `alloc` and
//! `free` take `&mut Pager`, the borrow checker prevents calling them while a page reference is
//! alive, so a use after a remap is a compile error.
//!
//! # Many threads
//!
//! [`SharedPager`] wraps a `Pager` for many threads (`Send + Sync`, cheap to clone). Readers
//! hold guards ([`PagerGuard`], [`PageGuard`]) that keep commits and remaps away while they live;
//! allocation changes and protected writes from concurrent callers are group-committed: one
//! commit (one protocol round) for all of them, and each caller returns once a commit holding its
//! change is durable. There is no `async` API: call it from your runtime's blocking pool. SPEC.md
//! §3.10 gives the concurrency model and the loom-checked properties.
//!
//! ```
//! use mappedpages::{Pager, SharedPager, SimStorage};
//!
//! let shared = SharedPager::new(Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap());
//! let worker = {
//!     let shared = shared.clone();
//!     std::thread::spawn(move || shared.alloc().unwrap())
//! };
//! let id = worker.join().unwrap();
//! assert!(shared.read().is_allocated(id));
//! ```
//!
//! # Inspecting, verifying, rolling back
//!
//! [`ReadOnlyPager`] opens a file under a shared lock and never writes (read-only files and
//! mounts work); [`ReadOnlyPager::verify`] reads every structure and reports every
//! [`Finding`]; [`ReadOnlyPager::page_use`] says what any page is for. When recovery refuses a
//! file because the metadata copy its superblock names is damaged, [`RollbackPlan`] says what
//! making the older copy current would lose, and applies it on request (SPEC.md §4.5–§4.8). The
//! `mappedpages` command of the `mappedpages-cli` crate is built on these.
//!
//! # Storage backends
//!
//! The pager reaches bytes only through the [`Storage`] trait. [`MmapStorage`] maps a file;
//! [`SimStorage`] keeps the bytes in memory, knows which of them are durable, can fail any sync
//! or growth on request, and builds the images a crash could leave behind. Crash tests of this
//! crate (and of crates built on it) run on `SimStorage`.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod bitmap;
mod commit;
mod directory;
mod error;
#[doc(hidden)]
pub mod format;
mod group_loads;
mod group_table;
mod inspect;
#[cfg(feature = "mutants")]
pub mod mutants;
#[cfg(not(feature = "mutants"))]
mod mutants;
mod page;
mod pager;
mod protected;
mod readonly;
mod recovery;
mod rollback;
mod scan;
mod shared;
mod state;
mod storage;
mod subpage;
mod sync;
mod traits;
mod verify;

pub use commit::CommitMode;
pub use error::{IoOperation, MappedPageError};
pub use inspect::PageUse;
pub use page::{MappedPage, PageId};
pub use pager::{ATTACHED_PAGES_MAX, AllocatedPageIter, Pager};
pub use protected::{AllocatedProtectedPageIter, ProtectedPageId, ProtectedPageWriter};
pub use readonly::{ReadOnlyPager, Repair, detect_page_size};
pub use recovery::RecoveryDecision;
pub use rollback::{RollbackLoss, RollbackPlan};
pub use shared::{GroupCommitStats, PageGuard, PagerGuard, SharedPager};
pub use storage::{
    CrashLength, CrashPoint, FailedSyncKeeps, MmapStorage, PendingBarrier, SectorSize, SimEvent,
    SimStorage, Storage, SyncStats,
};
pub use subpage::{SubPageAllocator, SubPageId};
pub use traits::{BulkPageAllocator, PageAllocator, PageHandle};
pub use verify::{Finding, VerifyReport};
