//! The one error type of the crate.

use std::fmt;
use std::io;

/// Which I/O step failed, carried by [`MappedPageError::Io`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOperation {
    /// Opening the file or reading its length.
    Open,
    /// Creating the file (temporary file, initial image, link into place).
    Create,
    /// Taking the exclusive lock on the file.
    Lock,
    /// Mapping the file into memory.
    Map,
    /// Extending the file (`set_len` and remap).
    Grow,
    /// Making a byte range durable (`msync`).
    Sync,
    /// Making the directory entry of a new file durable.
    SyncDirectory,
}

impl fmt::Display for IoOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            IoOperation::Open => "open",
            IoOperation::Create => "create",
            IoOperation::Lock => "lock",
            IoOperation::Map => "map",
            IoOperation::Grow => "grow",
            IoOperation::Sync => "sync",
            IoOperation::SyncDirectory => "sync directory",
        };
        f.write_str(name)
    }
}

/// Every error this crate returns.
///
/// The `Display` text of each variant says what happened and what to do about it.
///
/// ```
/// use mappedpages::{MappedPageError, Pager, SimStorage};
///
/// let mut pager = Pager::<4096, SimStorage>::create_in(SimStorage::new()).unwrap();
/// let id = pager.alloc().unwrap();
/// pager.free(id).unwrap();
/// match pager.free(id) {
///     Err(MappedPageError::DoubleFree { page }) => assert_eq!(page, id.raw()),
///     other => panic!("expected a double free error, got {other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum MappedPageError {
    /// An operating-system call failed.
    Io {
        /// The step that failed.
        operation: IoOperation,
        /// The error the operating system returned.
        source: io::Error,
    },
    /// `create` found a file already at the path.
    AlreadyExists {
        /// The path, as given.
        path: std::path::PathBuf,
    },
    /// `create_in` was given a storage that already holds bytes.
    StorageNotEmpty {
        /// Length of the storage.
        len_bytes: u64,
    },
    /// The file is too short to be a mappedpages file of this page size.
    FileTooSmall {
        /// Length of the file.
        len_bytes: u64,
        /// Smallest valid length for this page size.
        min_len_bytes: u64,
    },
    /// Page 0 carries no mappedpages superblock and no metadata copy could be found either.
    NotAMappedPagesFile,
    /// The superblock names a format version this build does not read.
    UnsupportedVersion {
        /// The version found in the file.
        found: u32,
    },
    /// The superblock is unreadable and no metadata copy allows recovery.
    CorruptSuperblock {
        /// Why the superblock was rejected.
        detail: String,
    },
    /// Neither metadata copy can be used without losing acknowledged commits.
    CorruptMetadata {
        /// Why each copy was rejected.
        detail: String,
    },
    /// The file was created with another page size.
    PageSizeMismatch {
        /// The page size recorded in the file.
        found: u64,
        /// The `PAGE_SIZE` of this `Pager`.
        expected: u64,
    },
    /// The page id lies past the end of the file.
    OutOfBounds {
        /// The page id.
        page: u64,
        /// Number of pages in the file.
        page_count: u64,
    },
    /// The page id names a page the pager keeps for itself (superblock, metadata, bitmaps, the
    /// protected-page directory and the backing copies of protected pages).
    ReservedPage {
        /// The page id.
        page: u64,
    },
    /// `free` of a page that is already free.
    DoubleFree {
        /// The page id.
        page: u64,
    },
    /// Access to a page that is not allocated.
    NotAllocated {
        /// The page id.
        page: u64,
    },
    /// The same page id appears twice in one bulk call.
    DuplicateId {
        /// The page id.
        page: u64,
    },
    /// The file would exceed the largest size this crate supports.
    CapacityExceeded {
        /// Pages the operation needs in total.
        requested_pages: u64,
        /// Largest page count supported for this page size.
        max_pages: u64,
    },
    /// Another `Pager` (in this process or another) holds the file.
    Locked,
    /// An earlier sync failed; what is on disk is unknown, so the pager refuses all work.
    Poisoned {
        /// The operation whose sync failed.
        cause: String,
    },
    /// A [`SharedPager`](crate::SharedPager) call on a thread that already holds that
    /// `SharedPager`'s lock: while one of its guards ([`read`](crate::SharedPager::read),
    /// [`page`](crate::SharedPager::page), [`protected_page`](crate::SharedPager::protected_page))
    /// is alive on this thread, or from inside a [`write_page`](crate::SharedPager::write_page) or
    /// [`write_protected`](crate::SharedPager::write_protected) closure. Waiting would deadlock,
    /// so the call fails at once and changes nothing.
    Reentrant {
        /// The `SharedPager` method that was called, e.g. `"alloc"`.
        operation: &'static str,
    },
    /// The protected page id is not allocated (freed, never allocated, or past the directory).
    ProtectedNotAllocated {
        /// The protected page id.
        id: u64,
    },
    /// The same protected page id appears twice in one bulk call.
    DuplicateProtectedId {
        /// The protected page id.
        id: u64,
    },
    /// The committed copy of a protected page fails its checksum: its content was damaged
    /// after it was committed (media corruption). The bytes are not returned.
    CorruptProtectedPage {
        /// The protected page id.
        id: u64,
        /// The backing page that holds the committed copy.
        page: u64,
    },
    /// The sub-page id does not name a sub-page allocated by this `SubPageAllocator`.
    SubPageNotAllocated {
        /// The parent page.
        page: u64,
        /// The sub-slot within the parent page.
        slot: u32,
    },
    /// The same sub-page id appears twice in one bulk call or rebuild.
    DuplicateSubPageId {
        /// The parent page.
        page: u64,
        /// The sub-slot within the parent page.
        slot: u32,
    },
}

impl MappedPageError {
    pub(crate) fn io(operation: IoOperation, source: io::Error) -> Self {
        MappedPageError::Io { operation, source }
    }
}

impl fmt::Display for MappedPageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappedPageError::Io { operation, source } => write!(
                f,
                "I/O error during {operation}: {source}; check the file system (space, permissions, device health) and retry"
            ),
            MappedPageError::AlreadyExists { path } => write!(
                f,
                "{} already exists; open it with Pager::open or choose another path",
                path.display()
            ),
            MappedPageError::StorageNotEmpty { len_bytes } => write!(
                f,
                "the storage already holds {len_bytes} bytes; open it with Pager::open_in, or pass an empty storage to create_in"
            ),
            MappedPageError::FileTooSmall {
                len_bytes,
                min_len_bytes,
            } => write!(
                f,
                "file is {len_bytes} bytes, shorter than the {min_len_bytes} bytes of the smallest mappedpages file for this page size; it is not a mappedpages file (create one with Pager::create)"
            ),
            MappedPageError::NotAMappedPagesFile => write!(
                f,
                "not a mappedpages file: no superblock and no metadata copy found; check the path, or create a new file with Pager::create"
            ),
            MappedPageError::UnsupportedVersion { found } => write!(
                f,
                "file uses format version {found}, this build reads version {}; open it with a matching version of mappedpages",
                crate::format::FORMAT_VERSION
            ),
            MappedPageError::CorruptSuperblock { detail } => write!(
                f,
                "superblock is corrupt and cannot be recovered ({detail}); restore the file from a backup"
            ),
            MappedPageError::CorruptMetadata { detail } => write!(
                f,
                "no metadata copy can be used without losing acknowledged commits ({detail}); restore the file from a backup"
            ),
            MappedPageError::PageSizeMismatch { found, expected } => write!(
                f,
                "file has page size {found}, but this Pager uses {expected}; open it as Pager::<{found}>"
            ),
            MappedPageError::OutOfBounds { page, page_count } => write!(
                f,
                "page {page} is out of bounds (the file has {page_count} pages); use an id returned by alloc"
            ),
            MappedPageError::ReservedPage { page } => write!(
                f,
                "page {page} is reserved for the pager's own use (metadata, bitmaps or protected pages); use an id returned by alloc"
            ),
            MappedPageError::DoubleFree { page } => write!(
                f,
                "page {page} is already free; each allocated page may be freed once"
            ),
            MappedPageError::NotAllocated { page } => write!(
                f,
                "page {page} is not allocated; it was freed or never returned by alloc"
            ),
            MappedPageError::DuplicateId { page } => write!(
                f,
                "page {page} appears more than once in the bulk call; pass each id once"
            ),
            MappedPageError::CapacityExceeded {
                requested_pages,
                max_pages,
            } => write!(
                f,
                "the file would need {requested_pages} pages, more than the {max_pages} this page size supports; free pages or use a larger page size"
            ),
            MappedPageError::Locked => write!(
                f,
                "the file is locked by another Pager (in this or another process); close that one first"
            ),
            MappedPageError::Poisoned { cause } => write!(
                f,
                "the pager is poisoned because a sync failed during {cause}; the on-disk state is intact but unknown to this handle: drop it and open the file again"
            ),
            MappedPageError::Reentrant { operation } => write!(
                f,
                "SharedPager::{operation} called on a thread that already holds this SharedPager's lock (one of its guards is alive on this thread, or the call comes from inside a write_page or write_protected closure); a SharedPager is not re-entrant: drop the guard or return from the closure first, then call it (read several pages through one read guard)"
            ),
            MappedPageError::ProtectedNotAllocated { id } => write!(
                f,
                "protected page {id} is not allocated; it was freed or never returned by alloc_protected"
            ),
            MappedPageError::DuplicateProtectedId { id } => write!(
                f,
                "protected page {id} appears more than once in the bulk call; pass each id once"
            ),
            MappedPageError::CorruptProtectedPage { id, page } => write!(
                f,
                "the committed copy of protected page {id} (in page {page}) fails its checksum: the medium damaged it after the commit; restore its content from a backup and write it again with get_mut"
            ),
            MappedPageError::SubPageNotAllocated { page, slot } => write!(
                f,
                "sub-page {slot} of page {page} is not allocated by this SubPageAllocator; it was freed, never allocated, or not passed to rebuild"
            ),
            MappedPageError::DuplicateSubPageId { page, slot } => write!(
                f,
                "sub-page {slot} of page {page} appears more than once; pass each id once"
            ),
        }
    }
}

impl std::error::Error for MappedPageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MappedPageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
