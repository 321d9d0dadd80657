//! `ReadOnlyPager`: a file opened under a shared lock, read-only, with recovery's repairs
//! reported instead of made (SPEC.md §4.5).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{IoOperation, MappedPageError};
use crate::page::{MappedPage, PageId};
use crate::pager::{AllocatedPageIter, Pager};
use crate::protected::{AllocatedProtectedPageIter, ProtectedPageId};
use crate::recovery::RecoveryDecision;
use crate::storage::Storage;

/// A repair recovery planned for a file opened read-only: what a read-write
/// [`Pager::open`] of the same file would write before returning (SPEC.md §4.3), and a
/// [`ReadOnlyPager`] leaves undone.
///
/// ```
/// use mappedpages::{Pager, ReadOnlyPager, Repair};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db.bin");
/// drop(Pager::<1024>::create(&path).unwrap());
/// std::fs::write(&path, {
///     let mut image = std::fs::read(&path).unwrap();
///     image[..8].fill(0); // damage the superblock
///     image
/// })
/// .unwrap();
/// let pager = ReadOnlyPager::<1024>::open(&path).unwrap();
/// assert_eq!(pager.planned_repairs(), [Repair::RewriteSuperblock]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// Step 1: zero the first bytes (magic and checksum) of `page`, a metadata or bitmap slot
    /// page of a commit newer than the recovered one that never became durable as a whole.
    ScrubPage {
        /// The page to invalidate.
        page: u64,
    },
    /// Step 2: rewrite the superblock (page 0) to name the recovered metadata copy.
    RewriteSuperblock,
    /// Step 3: copy directory mirror page `from` (intact) over page `to` (its damaged or
    /// missing twin).
    RestoreMirror {
        /// The intact mirror page.
        from: u64,
        /// The mirror page to overwrite.
        to: u64,
    },
}

/// The page size the file at `path` was written with, read from the file itself (SPEC.md §4.7):
/// the size a valid superblock records, or, when the superblock is damaged, the size at which a
/// metadata copy decodes. It opens the file as [`ReadOnlyPager::open`] does (shared lock, nothing
/// written) and fails with [`MappedPageError::NotAMappedPagesFile`] when neither says (an empty
/// file, a file of another format), [`MappedPageError::UnsupportedVersion`] for another format
/// version, and the errors of opening the file ([`MappedPageError::Locked`] while a [`Pager`]
/// holds it).
///
/// ```
/// use mappedpages::{MappedPageError, Pager, detect_page_size};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db.bin");
/// drop(Pager::<8192>::create(&path).unwrap());
/// assert_eq!(detect_page_size(&path).unwrap(), 8192);
/// std::fs::write(&path, b"not a file of pages").unwrap();
/// assert!(matches!(detect_page_size(&path), Err(MappedPageError::NotAMappedPagesFile)));
/// ```
pub fn detect_page_size(path: impl AsRef<Path>) -> Result<usize, MappedPageError> {
    let map = ReadOnlyMap::open(path.as_ref())?;
    map.advise_random(true);
    crate::recovery::detect_page_size(map.bytes())
}

/// A file of pages opened for reading only (SPEC.md §4.5).
///
/// * It takes a *shared* lock: any number of `ReadOnlyPager`s, in this process and in others,
///   may hold the file at once, and while one does, [`Pager::open`] fails with
///   [`MappedPageError::Locked`] (and `open_read_only` fails with `Locked` while a `Pager` holds
///   it).
/// * It never writes: the file is opened and mapped read-only, so files of mode `0444` and
///   files on read-only mounts open. Recovery chooses the committed state in memory; the repairs
///   a read-write open would make are listed by [`planned_repairs`](Self::planned_repairs).
/// * Only reading methods exist: there is no way to allocate, free, write or sync through it.
/// * It is `Send` and `Sync`: threads share one reader by reference (so [`crate::SharedPager`],
///   whose point is concurrent changes, has no read-only open).
///
/// ```
/// use mappedpages::{Pager, ReadOnlyPager};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db.bin");
/// let mut pager = Pager::<4096>::create(&path).unwrap();
/// let id = pager.alloc().unwrap();
/// id.get_mut(&mut pager).unwrap().as_bytes_mut()[..2].copy_from_slice(b"hi");
/// pager.sync_page(id).unwrap();
/// drop(pager);
///
/// let reader = ReadOnlyPager::<4096>::open(&path).unwrap();
/// let second = ReadOnlyPager::<4096>::open(&path).unwrap(); // shared
/// assert_eq!(&reader.page(id).unwrap().as_bytes()[..2], b"hi");
/// assert!(second.is_allocated(id));
/// assert!(reader.planned_repairs().is_empty());
/// assert!(matches!(Pager::<4096>::open(&path), Err(mappedpages::MappedPageError::Locked)));
/// ```
///
/// It has no mutating methods at all:
///
/// ```compile_fail
/// let reader = mappedpages::ReadOnlyPager::<4096>::open("db.bin").unwrap();
/// reader.alloc(); // no such method
/// ```
pub struct ReadOnlyPager<const PAGE_SIZE: usize> {
    /// Lent out only by shared reference: its `&mut self` methods (every write) are unreachable.
    pub(crate) pager: Pager<PAGE_SIZE, ReadOnlyMap>,
    repairs: Vec<Repair>,
}

impl<const PAGE_SIZE: usize> std::fmt::Debug for ReadOnlyPager<PAGE_SIZE> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyPager")
            .field("pager", &self.pager)
            .field("repairs", &self.repairs)
            .finish()
    }
}

impl<const PAGE_SIZE: usize> ReadOnlyPager<PAGE_SIZE> {
    /// Opens the file at `path` read-only under a shared lock and recovers its committed state
    /// in memory (SPEC.md §4.5). Fails with [`MappedPageError::Locked`] while a [`Pager`] holds
    /// the file, and with the errors of [`Pager::open`] for a file that does not recover.
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, ReadOnlyPager};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("db.bin");
    /// let writer = Pager::<1024>::create(&path).unwrap();
    /// assert!(matches!(ReadOnlyPager::<1024>::open(&path), Err(MappedPageError::Locked)));
    /// drop(writer);
    /// assert_eq!(ReadOnlyPager::<1024>::open(&path).unwrap().allocated_page_count(), 0);
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MappedPageError> {
        let map = ReadOnlyMap::open(path.as_ref())?;
        map.advise_random(true); // recovery reads scattered pages (SPEC.md §4.6)
        let (pager, repairs) = Pager::open_without_repair(map)?;
        pager.storage().advise_random(false); // the caller's reads: the kernel's default
        Ok(ReadOnlyPager { pager, repairs })
    }

    /// Verifies the file at `path` completely, under the same shared lock and without writing
    /// (SPEC.md §4.6): the superblock, both metadata copies, every materialized group's slot
    /// pages and the slot digest, every directory block's pages, its mirrors and the directory
    /// digest, and every protected page's committed copy against its CRC. Every finding is
    /// reported, not only the first, also for a file recovery refuses (the structures of the
    /// copy the superblock names, or of the newest copy, are walked then).
    ///
    /// An associated function rather than a method on an open handle: the damage it looks for
    /// often makes recovery refuse the file, and then there is no handle. Fails only when the
    /// file cannot be read or locked, or is not a file of this kind at all (the errors of
    /// [`open`](Self::open) that come before recovery's decision table: for example
    /// [`MappedPageError::NotAMappedPagesFile`], [`MappedPageError::FileTooSmall`],
    /// [`MappedPageError::PageSizeMismatch`]).
    ///
    /// ```
    /// use mappedpages::{Finding, Pager, ReadOnlyPager};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("db.bin");
    /// drop(Pager::<1024>::create(&path).unwrap());
    /// assert!(ReadOnlyPager::<1024>::verify(&path).unwrap().is_clean());
    /// let mut image = std::fs::read(&path).unwrap();
    /// image[20] ^= 1; // the superblock
    /// std::fs::write(&path, &image).unwrap();
    /// let report = ReadOnlyPager::<1024>::verify(&path).unwrap();
    /// assert!(matches!(report.findings[..], [Finding::Superblock { .. }]));
    /// ```
    pub fn verify(path: impl AsRef<Path>) -> Result<crate::VerifyReport, MappedPageError> {
        Self::verify_with_progress(path, |_, _| {})
    }

    /// [`verify`](Self::verify), calling `progress(done, total)` as it goes: `total` is the
    /// number of bitmap groups and directory blocks of the metadata copy it walks, `done` how
    /// many of them are checked. The first call is `(0, total)`, the last `(total, total)`, and
    /// `done` grows by one between calls. On a cold cache, this walk is what reads the file;
    /// recovery's decision runs after it on warm pages (SPEC.md §4.6). When recovery chooses
    /// another copy than the one walked, that copy is walked again without progress calls.
    ///
    /// ```
    /// use mappedpages::{Pager, ReadOnlyPager};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("db.bin");
    /// drop(Pager::<1024>::create(&path).unwrap());
    /// let mut calls = Vec::new();
    /// let report = ReadOnlyPager::<1024>::verify_with_progress(&path, |done, total| {
    ///     calls.push((done, total))
    /// })
    /// .unwrap();
    /// assert!(report.is_clean());
    /// assert_eq!(calls, [(0, 1), (1, 1)]); // one group, no directory block
    /// ```
    pub fn verify_with_progress(
        path: impl AsRef<Path>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<crate::VerifyReport, MappedPageError> {
        let () = Self::PAGE_SIZE_IS_VALID;
        let map = ReadOnlyMap::open(path.as_ref())?;
        // Scattered single pages: without this, every fault reads around it (read_ahead_kb, 8 MiB
        // on some disks), and a cold check of a sparse 16 GiB file read all of it.
        map.advise_random(true);
        let geometry = crate::format::Geometry::new(PAGE_SIZE);
        crate::verify::verify(map.bytes(), geometry, &mut progress)
    }

    const PAGE_SIZE_IS_VALID: () = Pager::<PAGE_SIZE, ReadOnlyMap>::PAGE_SIZE_IS_VALID;

    /// The repairs a read-write open would make before returning (SPEC.md §4.3), in the order
    /// it would make them; empty for a file a clean close left.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert!(reader.planned_repairs().is_empty());
    /// ```
    pub fn planned_repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// Which recovery rule chose the state ([`Pager::recovery_decision`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.recovery_decision(), mappedpages::RecoveryDecision::Superblock);
    /// ```
    pub fn recovery_decision(&self) -> RecoveryDecision {
        self.pager
            .recovery_decision()
            .expect("an opened pager records its recovery decision")
    }

    /// The page size in bytes.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// assert_eq!(mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap().page_size(), 1024);
    /// ```
    pub fn page_size(&self) -> usize {
        self.pager.page_size()
    }

    /// Pages in the file, including the internal ones ([`Pager::page_count`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// assert_eq!(mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap().page_count(), 16);
    /// ```
    pub fn page_count(&self) -> u64 {
        self.pager.page_count()
    }

    /// Data pages allocated ([`Pager::allocated_page_count`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.allocated_page_count(), 0);
    /// ```
    pub fn allocated_page_count(&self) -> u64 {
        self.pager.allocated_page_count()
    }

    /// Checks the bitmap page of every group this open did not read ([`Pager::check_bitmaps`],
    /// SPEC.md §4.9): `CorruptGroupSlot` for the first damaged one. Reads one page per group.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// reader.check_bitmaps().unwrap();
    /// ```
    pub fn check_bitmaps(&self) -> Result<(), MappedPageError> {
        self.pager.check_bitmaps()
    }

    /// Data pages free ([`Pager::free_page_count`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.free_page_count(), 9);
    /// ```
    pub fn free_page_count(&self) -> u64 {
        self.pager.free_page_count()
    }

    /// Generation of the recovered commit ([`Pager::generation`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert!(reader.generation() >= 1);
    /// ```
    pub fn generation(&self) -> u64 {
        self.pager.generation()
    }

    /// The file's on-disk format version ([`Pager::format_version`](crate::Pager::format_version)).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.format_version(), 3);
    /// ```
    pub fn format_version(&self) -> u32 {
        self.pager.format_version()
    }

    /// The page of the metadata copy holding the recovered commit: 1 (copy A) or 2 (copy B).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert!(matches!(reader.active_metadata_page(), 1 | 2));
    /// ```
    pub fn active_metadata_page(&self) -> u64 {
        self.pager.active_meta_page()
    }

    /// The free data pages as ranges of consecutive pages, in increasing order: every page below
    /// [`page_count`](Self::page_count) that is neither allocated nor internal (superblock,
    /// metadata copies, bitmap slots, directory pages, protected pages' backing pages).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// let mut pager = mappedpages::Pager::<1024>::create(&path).unwrap();
    /// pager.alloc().unwrap();
    /// drop(pager);
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// let ranges = reader.free_page_ranges();
    /// let free: u64 = ranges.iter().map(|range| range.end - range.start).sum();
    /// assert_eq!(free, reader.free_page_count());
    /// ```
    pub fn free_page_ranges(&self) -> Vec<Range<u64>> {
        let mut ranges: Vec<Range<u64>> = Vec::new();
        for page in 0..self.pager.page_count() {
            if self.pager.is_internal_page(page) || self.pager.is_allocated(PageId::from_raw(page))
            {
                continue;
            }
            match ranges.last_mut() {
                Some(last) if last.end == page => last.end = page + 1,
                _ => ranges.push(page..page + 1),
            }
        }
        ranges
    }

    /// True if `id` names an allocated data page.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert!(!reader.is_allocated(mappedpages::PageId::from_raw(5)));
    /// ```
    pub fn is_allocated(&self, id: PageId<PAGE_SIZE>) -> bool {
        self.pager.is_allocated(id)
    }

    /// Borrows an allocated data page ([`PageId::get`] on a [`Pager`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// let mut pager = mappedpages::Pager::<1024>::create(&path).unwrap();
    /// let id = pager.alloc().unwrap();
    /// drop(pager);
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.page(id).unwrap().len(), 1024);
    /// ```
    pub fn page(&self, id: PageId<PAGE_SIZE>) -> Result<&MappedPage, MappedPageError> {
        id.get(&self.pager)
    }

    /// The allocated data pages in increasing order ([`Pager::iter_allocated_pages`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// let mut pager = mappedpages::Pager::<1024>::create(&path).unwrap();
    /// let ids = pager.alloc_bulk(3).unwrap();
    /// drop(pager);
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.iter_allocated_pages().collect::<Vec<_>>(), ids);
    /// ```
    pub fn iter_allocated_pages(&self) -> AllocatedPageIter<'_, PAGE_SIZE, impl Storage> {
        self.pager.iter_allocated_pages()
    }

    /// Protected pages allocated ([`Pager::protected_page_count`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// let mut pager = mappedpages::Pager::<1024>::create(&path).unwrap();
    /// pager.alloc_protected().unwrap();
    /// drop(pager);
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.protected_page_count(), 1);
    /// ```
    pub fn protected_page_count(&self) -> u64 {
        self.pager.protected_page_count()
    }

    /// True if `id` names an allocated protected page.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// let mut pager = mappedpages::Pager::<1024>::create(&path).unwrap();
    /// let id = pager.alloc_protected().unwrap();
    /// drop(pager);
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert!(reader.is_protected_allocated(id));
    /// ```
    pub fn is_protected_allocated(&self, id: ProtectedPageId<PAGE_SIZE>) -> bool {
        self.pager.is_protected_allocated(id)
    }

    /// Borrows a protected page's committed content after checking its CRC
    /// ([`ProtectedPageId::get`]): [`MappedPageError::CorruptProtectedPage`] if it fails.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// let mut pager = mappedpages::Pager::<1024>::create(&path).unwrap();
    /// let id = pager.alloc_protected().unwrap();
    /// let mut writer = id.get_mut(&mut pager).unwrap();
    /// writer.page_mut().as_bytes_mut()[0] = 9;
    /// writer.commit().unwrap();
    /// drop(pager);
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.protected_page(id).unwrap().as_bytes()[0], 9);
    /// ```
    pub fn protected_page(
        &self,
        id: ProtectedPageId<PAGE_SIZE>,
    ) -> Result<&MappedPage, MappedPageError> {
        id.get(&self.pager)
    }

    /// The allocated protected pages in increasing id order
    /// ([`Pager::iter_allocated_protected_pages`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// let mut pager = mappedpages::Pager::<1024>::create(&path).unwrap();
    /// let ids = pager.alloc_protected_bulk(2).unwrap();
    /// drop(pager);
    /// let reader = mappedpages::ReadOnlyPager::<1024>::open(&path).unwrap();
    /// assert_eq!(reader.iter_allocated_protected_pages().collect::<Vec<_>>(), ids);
    /// ```
    pub fn iter_allocated_protected_pages(
        &self,
    ) -> AllocatedProtectedPageIter<'_, PAGE_SIZE, impl Storage> {
        self.pager.iter_allocated_protected_pages()
    }
}

/// A file opened read-only, shared-locked and mapped read-only. It implements [`Storage`] so
/// that the pager's read code serves [`ReadOnlyPager`] unchanged; its writing methods fail
/// (and `bytes_mut` is unreachable: `ReadOnlyPager` never lends its pager mutably).
pub(crate) struct ReadOnlyMap {
    /// Holds the shared lock for as long as the map lives.
    file: File,
    path: PathBuf,
    map: Option<Mmap>,
}

impl ReadOnlyMap {
    pub(crate) fn open(path: &Path) -> Result<ReadOnlyMap, MappedPageError> {
        let file =
            File::open(path).map_err(|e| MappedPageError::io(IoOperation::Open, Some(path), e))?;
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(MappedPageError::Locked),
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(MappedPageError::io(IoOperation::Lock, Some(path), error));
            }
        }
        let len_bytes = file
            .metadata()
            .map_err(|e| MappedPageError::io(IoOperation::Open, Some(path), e))?
            .len();
        let map = if len_bytes == 0 {
            None
        } else {
            let len = usize::try_from(len_bytes).map_err(|_| {
                let error = io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "the file is larger than the address space",
                );
                MappedPageError::io(IoOperation::Map, Some(path), error)
            })?;
            // SAFETY: the mapping is read-only and covers the file's current length. The shared
            // lock excludes every `Pager` (which takes the lock exclusively) for as long as the
            // `File` lives, which is as long as the map, so no writer of this crate changes or
            // truncates the file under it. Processes that ignore the lock (advisory on Unix) are
            // outside the contract, as for `MmapStorage`.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file) }
                .map_err(|e| MappedPageError::io(IoOperation::Map, Some(path), e))?;
            Some(map)
        };
        Ok(ReadOnlyMap {
            file,
            path: path.to_path_buf(),
            map,
        })
    }
}

impl ReadOnlyMap {
    /// Tells the kernel the map is read at random (`madvise(MADV_RANDOM)`: a fault reads its page
    /// only, not the pages around it) or in the default way. A hint: its failure changes only
    /// speed, so it is ignored; nothing is done off Unix.
    pub(crate) fn advise_random(&self, random: bool) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let advice = if random {
                memmap2::Advice::Random
            } else {
                memmap2::Advice::Normal
            };
            let _ = map.advise(advice);
        }
        #[cfg(not(unix))]
        let _ = random;
    }
}

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::ReadOnlyFilesystem, "opened read-only")
}

impl Storage for ReadOnlyMap {
    fn len_bytes(&self) -> u64 {
        self.bytes().len() as u64
    }

    fn observed_len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn grow(&mut self, _new_len_bytes: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        unreachable!("a ReadOnlyPager never lends its pager mutably, so nothing writes its map")
    }

    fn sync_ranges(&mut self, _ranges: &[Range<u64>]) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        Err(read_only())
    }

    fn reserve(&mut self, _ranges: &[Range<u64>]) -> io::Result<()> {
        Err(read_only())
    }

    fn shrink(&mut self, _new_len_bytes: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}
