//! The one error type of the crate.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

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
    /// Making a byte range durable (`msync`; on macOS also `F_FULLFSYNC`, on Windows
    /// `FlushViewOfFile` and `FlushFileBuffers`).
    Sync,
    /// Making the directory entry of a new file durable.
    SyncDirectory,
    /// Reserving disk space for pages about to be written or handed out (`fallocate`), or
    /// giving back a growth whose reservation failed.
    Reserve,
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
            IoOperation::Reserve => "reserve",
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
        /// The file the step was working on (for `Create`, the path being created; for
        /// `SyncDirectory`, its directory); `None` for a storage that is not a file
        /// ([`Storage::path`](crate::Storage::path)).
        path: Option<PathBuf>,
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
    /// Neither metadata copy can be used without losing acknowledged commits. When the superblock
    /// is intact and only the copy it names is damaged, [`RollbackPlan`](crate::RollbackPlan)
    /// can make the older copy current, losing the commits after it (SPEC.md §4.8).
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
    /// The file is shorter than the pager maps it: something outside the pager (another process,
    /// which the advisory lock does not stop) truncated it. Detected before a commit, a growth,
    /// `sync_page` or `sync_all` touches the map; the pager is poisoned (SPEC.md §3.4).
    FileShrunk {
        /// The length the pager mapped and committed against.
        expected_len_bytes: u64,
        /// The length the file has now.
        found_len_bytes: u64,
    },
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
    /// The bitmap slot that format 3's group table pins for a group does not match its entry:
    /// the medium damaged it after the commit that wrote it (SPEC.md §4.9). Found when the group
    /// is first used (open reads only the groups it needs) or by
    /// [`Pager::check_bitmaps`](crate::Pager::check_bitmaps). Nothing changed; the pager hands
    /// out no page of the group and never falls back to its older slot. The rest of the file
    /// reads and commits as before.
    CorruptGroupSlot {
        /// The group (pages `group · G .. (group + 1) · G`).
        group: u64,
        /// The slot page the table pins.
        page: u64,
    },
    /// The committed generation is [`MAX_GENERATION`](crate::format::MAX_GENERATION): a commit
    /// after it would have to wrap the generation, which recovery could not order (SPEC.md
    /// §3.2). Every call that would commit returns this before changing anything, in memory or
    /// on disk; the pager is not poisoned and every read keeps working.
    GenerationExhausted {
        /// The committed generation.
        generation: u64,
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
    /// The file system has no space (or quota) left for the pages the call needed: nothing
    /// changed, in memory or in the file (a growth made for the call was undone). The same call
    /// succeeds once space is freed.
    StorageFull {
        /// The step that ran out of space.
        operation: IoOperation,
        /// The file, if the storage is one.
        path: Option<PathBuf>,
        /// Bytes the call asked the file system for.
        requested_bytes: u64,
        /// The error the operating system returned (`ENOSPC`, `EDQUOT`).
        source: io::Error,
    },
    /// [`RollbackPlan`](crate::RollbackPlan): recovery opens this file as it is (it is not
    /// refused), so there is nothing to roll back; nothing was written.
    NothingToRollBack {
        /// The generation recovery opens the file at.
        generation: u64,
    },
    /// [`RollbackPlan`](crate::RollbackPlan): the file cannot be rolled back (the older metadata
    /// copy is damaged too or is not older, the superblock is damaged, or the file changed since
    /// the plan was made); nothing was written.
    RollbackRefused {
        /// Why, and what to do.
        detail: String,
    },
    /// The call would need more memory than could be allocated (checked before the file is
    /// grown or anything is changed): request fewer pages at a time.
    OutOfMemory {
        /// Bytes the call tried to allocate.
        requested_bytes: u64,
    },
    /// [`Pager::attach_to_next_commit`](crate::Pager::attach_to_next_commit): as many pages
    /// as a commit's barrier takes are already attached; nothing changed. Commit (any `alloc`,
    /// `free` or protected commit takes them) or call `sync_all`, then attach again.
    TooManyAttached {
        /// The bound, [`ATTACHED_PAGES_MAX`](crate::ATTACHED_PAGES_MAX).
        max_pages: usize,
    },
}

impl MappedPageError {
    /// An [`Io`](MappedPageError::Io) error of `operation` on the file at `path`, if any.
    pub(crate) fn io(operation: IoOperation, path: Option<&Path>, source: io::Error) -> Self {
        MappedPageError::Io {
            operation,
            path: path.map(Path::to_path_buf),
            source,
        }
    }

    /// [`StorageFull`](Self::StorageFull) when `source` says the file system is full or the
    /// quota exhausted, else [`Io`](Self::Io).
    pub(crate) fn space(
        operation: IoOperation,
        path: Option<&Path>,
        requested_bytes: u64,
        source: io::Error,
    ) -> Self {
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                MappedPageError::StorageFull {
                    operation,
                    path: path.map(Path::to_path_buf),
                    requested_bytes,
                    source,
                }
            }
            _ => Self::io(operation, path, source),
        }
    }
}

impl fmt::Display for MappedPageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappedPageError::Io {
                operation,
                path,
                source,
            } => {
                write!(f, "I/O error during {operation}")?;
                if let Some(path) = path {
                    write!(f, " of {}", path.display())?;
                }
                write!(f, ": {source}; {}", io_advice(*operation, source.kind()))
            }
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
                len_bytes: 0,
                min_len_bytes,
            } => write!(
                f,
                "the file is empty (0 bytes; a mappedpages file of this page size has at least {min_len_bytes}): another program made it, or a create stopped before writing anything. An empty file holds no data: delete it and call Pager::create again (an empty storage can go straight to Pager::create_in)"
            ),
            MappedPageError::FileTooSmall {
                len_bytes,
                min_len_bytes,
            } => write!(
                f,
                "the file is {len_bytes} bytes, shorter than the {min_len_bytes} bytes of the smallest mappedpages file for this page size: it is not a mappedpages file, or it was truncated; check the path (Pager::create makes a new file only where none exists)"
            ),
            MappedPageError::NotAMappedPagesFile => write!(
                f,
                "not a mappedpages file: page 0 holds no superblock and no metadata copy was found; check the path (Pager::create makes a new file only where none exists). A storage left by a Pager::create_in that never finished reads like this too: nothing was committed in it, so start again with an empty one"
            ),
            MappedPageError::UnsupportedVersion { found } => write!(
                f,
                "file uses format version {found}, this build reads versions {} to {}; open it with a matching version of mappedpages",
                crate::format::MIN_FORMAT_VERSION,
                crate::format::FORMAT_VERSION
            ),
            MappedPageError::CorruptSuperblock { detail } => write!(
                f,
                "superblock is corrupt and cannot be recovered ({detail}); restore the file from a backup"
            ),
            MappedPageError::CorruptMetadata { detail } => write!(
                f,
                "no metadata copy can be used without losing acknowledged commits ({detail}); restore the file from a backup, or accept losing the last commits and make the older copy current with a rollback (RollbackPlan, or `mappedpages rollback FILE`, which first shows what it loses)"
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
            MappedPageError::FileShrunk {
                expected_len_bytes,
                found_len_bytes,
            } => write!(
                f,
                "the file shrank from {expected_len_bytes} to {found_len_bytes} bytes while this pager had it open: something outside the pager truncated it (the file lock is advisory and does not stop other processes); the pager is poisoned and pages past the new end are lost: stop the other writer and restore the file from a backup"
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
            MappedPageError::CorruptGroupSlot { group, page } => write!(
                f,
                "the allocation bitmap of group {group} (slot page {page}) does not match the group table: the medium damaged it after it was committed; run `mappedpages check` on the file and restore it from a backup (pages of other groups still read and allocate)"
            ),
            MappedPageError::GenerationExhausted { generation } => write!(
                f,
                "the file's commit generation is {generation}, the largest there is, so nothing can be committed any more (no file reaches it by use: it was crafted or damaged); nothing was changed and every page still reads: copy what you need into a new file made with Pager::create"
            ),
            MappedPageError::SubPageNotAllocated { page, slot } => write!(
                f,
                "sub-page {slot} of page {page} is not allocated by this SubPageAllocator; it was freed, never allocated, or not passed to rebuild"
            ),
            MappedPageError::DuplicateSubPageId { page, slot } => write!(
                f,
                "sub-page {slot} of page {page} appears more than once; pass each id once"
            ),
            MappedPageError::StorageFull {
                operation,
                path,
                requested_bytes,
                source,
            } => {
                write!(f, "not enough space on the file system")?;
                if let Some(path) = path {
                    write!(f, " of {}", path.display())?;
                }
                write!(
                    f,
                    " ({operation} of {requested_bytes} bytes: {source}); nothing changed: free space on it, or ask for less, and call again"
                )
            }
            MappedPageError::NothingToRollBack { generation } => write!(
                f,
                "nothing to roll back: recovery opens this file at generation {generation} without losing anything; open it normally (a rollback is only for a file recovery refuses because the metadata copy its superblock names is damaged)"
            ),
            MappedPageError::RollbackRefused { detail } => {
                write!(f, "rollback refused, nothing written: {detail}")
            }
            MappedPageError::OutOfMemory { requested_bytes } => write!(
                f,
                "the call would allocate {requested_bytes} bytes of memory, more than is available; nothing changed: request fewer pages at a time"
            ),
            MappedPageError::TooManyAttached { max_pages } => write!(
                f,
                "{max_pages} pages are already attached to the next commit, the most one commit takes; nothing changed: commit (any alloc, free or protected commit makes them durable) or call sync_all, then attach again"
            ),
        }
    }
}

/// What to do about an I/O error, by the step that failed and the kind of error.
fn io_advice(operation: IoOperation, kind: io::ErrorKind) -> &'static str {
    use io::ErrorKind as Kind;
    let full = matches!(kind, Kind::StorageFull | Kind::QuotaExceeded);
    match (operation, kind) {
        // A failed barrier poisons the pager (SPEC.md §3.4): retrying on the same handle is not
        // an option, reopening is.
        (IoOperation::Sync, _) if full => {
            "the file system is full, and what reached the disk is unknown, so a pager that returned this is now poisoned: free space, then drop the pager and open the file again (recovery finds the last committed state); an open or create that failed this way can be called again once there is space"
        }
        (IoOperation::Sync, _) => {
            "what reached the disk is unknown, so a pager that returned this is now poisoned: drop it and open the file again (recovery finds the last committed state); an open or create that failed this way can be called again; if syncs keep failing, check the device's health"
        }
        (IoOperation::Open, Kind::NotFound) => {
            "no file at this path: check the path, or make a new file there with Pager::create"
        }
        (IoOperation::Create, Kind::NotFound) => {
            "the directory of this path does not exist: create it first, or check the path"
        }
        (_, Kind::NotFound) => {
            "the file disappeared while in use: check that no other program removes it"
        }
        (_, Kind::PermissionDenied) => {
            "this process may not read and write it: check the permissions of the file and of its directory, and that the file system is not mounted read-only"
        }
        (_, Kind::ReadOnlyFilesystem) => {
            "the file system is mounted read-only, and a pager writes (its lock, recovery's repairs, every commit): remount it read-write or copy the file to a writable one"
        }
        (IoOperation::Grow, _) if full => {
            "the file system is full (or the quota is reached): free space and retry; nothing changed and the pager is still usable"
        }
        (IoOperation::Create, _) if full => {
            "the file system is full (or the quota is reached): free space, then call create again"
        }
        (_, _) if full => {
            "the file system is full (or the quota is reached): free space, then try again"
        }
        (_, Kind::FileTooLarge) => {
            "the file system (or the process's file-size limit, ulimit -f) does not allow a file this large; nothing changed: free pages, or use a file system without that limit"
        }
        (_, Kind::OutOfMemory) => {
            "not enough address space to map the file: check the process's limits (ulimit -v) and the system's map count (vm.max_map_count)"
        }
        (_, Kind::IsADirectory) => "the path names a directory: give the path of a file",
        (IoOperation::Lock, Kind::Unsupported) => {
            "this file system does not support flock (some network and FUSE file systems do not): keep the file on a local file system"
        }
        (_, Kind::Unsupported) => {
            "the file system does not support what a pager needs (shared writable memory maps, flock, msync): keep the file on a local file system"
        }
        (IoOperation::Create, Kind::InvalidInput) => "give a path that ends in a file name",
        (IoOperation::Open, _) => "check the path, its permissions and the file system",
        (IoOperation::Create, _) => {
            "check the directory, its permissions and the file system, then call create again"
        }
        (IoOperation::Lock, _) => {
            "the file could not be locked: keep the file on a file system that supports flock"
        }
        (IoOperation::Map, _) => {
            "the file could not be mapped: the file system must support shared writable memory maps; check the process's address-space limit (ulimit -v)"
        }
        (IoOperation::Grow, _) => {
            "the file could not be extended; nothing changed and the pager is still usable: fix the cause and retry"
        }
        (IoOperation::Reserve, _) => {
            "disk space for the call's pages could not be reserved; unless the pager is now poisoned (the growth made for the call could not be undone), nothing changed: fix the cause and retry"
        }
        (IoOperation::SyncDirectory, _) => {
            "the new file's directory entry may not be durable (see Pager::create for what is left at the path); if it keeps failing, check the device's health"
        }
    }
}

impl std::error::Error for MappedPageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MappedPageError::Io { source, .. } | MappedPageError::StorageFull { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_text(operation: IoOperation, path: Option<&str>, kind: io::ErrorKind) -> String {
        MappedPageError::io(operation, path.map(Path::new), io::Error::from(kind)).to_string()
    }

    /// Asserts that `text` contains every one of `wanted` and none of `unwanted`.
    fn check(text: &str, wanted: &[&str], unwanted: &[&str]) {
        for word in wanted {
            assert!(text.contains(word), "{text:?} lacks {word:?}");
        }
        for word in unwanted {
            assert!(!text.contains(word), "{text:?} contains {word:?}");
        }
    }

    #[test]
    fn missing_file_names_the_path_and_points_to_create() {
        let text = io_text(
            IoOperation::Open,
            Some("/data/db.bin"),
            io::ErrorKind::NotFound,
        );
        check(
            &text,
            &[
                "open of /data/db.bin",
                "no file at this path",
                "Pager::create",
            ],
            &["retry", "space"],
        );
        let text = io_text(IoOperation::Open, None, io::ErrorKind::NotFound);
        check(&text, &["during open: ", "Pager::create"], &[" of "]);
    }

    #[test]
    fn failed_sync_says_poisoned_and_reopen_never_retry() {
        for kind in [
            io::ErrorKind::Other,
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::NotFound,
            io::ErrorKind::InvalidInput,
        ] {
            let text = io_text(IoOperation::Sync, Some("/data/db.bin"), kind);
            check(
                &text,
                &["sync of /data/db.bin", "poisoned", "open the file again"],
                &["retry"],
            );
        }
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
            let text = io_text(IoOperation::Sync, None, kind);
            check(
                &text,
                &["full", "free space", "poisoned", "open the file again"],
                &["retry"],
            );
        }
    }

    #[test]
    fn full_file_system_advises_freeing_space() {
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
            let grow = io_text(IoOperation::Grow, Some("/data/db.bin"), kind);
            check(
                &grow,
                &["free space", "retry", "nothing changed"],
                &["poisoned"],
            );
            let create = io_text(IoOperation::Create, Some("/data/db.bin"), kind);
            check(&create, &["free space", "call create again"], &["poisoned"]);
        }
    }

    #[test]
    fn each_kind_gets_advice_that_fits_it() {
        let cases: [(IoOperation, io::ErrorKind, &[&str]); 10] = [
            (
                IoOperation::Create,
                io::ErrorKind::NotFound,
                &["directory", "does not exist"],
            ),
            (
                IoOperation::Open,
                io::ErrorKind::PermissionDenied,
                &["permissions"],
            ),
            (
                IoOperation::Create,
                io::ErrorKind::PermissionDenied,
                &["permissions", "read-only"],
            ),
            (
                IoOperation::Open,
                io::ErrorKind::ReadOnlyFilesystem,
                &["read-only", "remount"],
            ),
            (
                IoOperation::Grow,
                io::ErrorKind::FileTooLarge,
                &["this large", "nothing changed"],
            ),
            (
                IoOperation::Map,
                io::ErrorKind::OutOfMemory,
                &["address space"],
            ),
            (
                IoOperation::Open,
                io::ErrorKind::IsADirectory,
                &["directory", "path of a file"],
            ),
            (IoOperation::Lock, io::ErrorKind::Unsupported, &["flock"]),
            (
                IoOperation::Create,
                io::ErrorKind::InvalidInput,
                &["file name"],
            ),
            (
                IoOperation::SyncDirectory,
                io::ErrorKind::Other,
                &["directory entry"],
            ),
        ];
        for (operation, kind, wanted) in cases {
            let text = io_text(operation, Some("/data/db.bin"), kind);
            check(&text, wanted, &["poisoned"]);
            assert!(text.contains("/data/db.bin"), "{text}");
        }
        // A growth that failed for any other reason changed nothing: retrying is right.
        let text = io_text(IoOperation::Grow, None, io::ErrorKind::Other);
        check(&text, &["nothing changed", "retry"], &["poisoned"]);
    }

    #[test]
    fn empty_file_is_told_apart_from_a_short_one() {
        let empty = MappedPageError::FileTooSmall {
            len_bytes: 0,
            min_len_bytes: 6144,
        }
        .to_string();
        check(
            &empty,
            &["empty", "6144", "delete it", "Pager::create"],
            &["truncated"],
        );
        let short = MappedPageError::FileTooSmall {
            len_bytes: 100,
            min_len_bytes: 6144,
        }
        .to_string();
        // Pager::create at the same path would fail with AlreadyExists: not advised.
        check(
            &short,
            &[
                "100 bytes",
                "6144",
                "not a mappedpages file",
                "check the path",
            ],
            &["create one", "delete it"],
        );
        let not_ours = MappedPageError::NotAMappedPagesFile.to_string();
        check(
            &not_ours,
            &["check the path", "only where none exists"],
            &["create a new file"],
        );
    }

    #[test]
    fn exhausted_generation_says_nothing_changed_and_reads_go_on() {
        let text = MappedPageError::GenerationExhausted {
            generation: u64::MAX,
        }
        .to_string();
        check(
            &text,
            &[
                &u64::MAX.to_string(),
                "nothing was changed",
                "still reads",
                "Pager::create",
            ],
            &["retry", "poisoned"],
        );
    }
}
