//! Error messages that fit (SPEC.md §3.4): an I/O error on a file names its path and gives advice
//! that fits the kind of failure, on real files and real system calls. The advice of every case is
//! unit-tested in `src/error.rs`; these tests check that the real failures reach those cases.

use std::io::ErrorKind;
use std::path::PathBuf;

use mappedpages::{FailedSyncKeeps, IoOperation, MappedPageError, Pager, SimStorage};

#[path = "common/mount.rs"]
mod mount;

type FilePager = Pager<4096>;

/// The `Io` error of `result`, with its Display text; panics on anything else.
fn io_error<T>(
    result: Result<T, MappedPageError>,
) -> (IoOperation, Option<PathBuf>, ErrorKind, String) {
    match result {
        Err(error @ MappedPageError::Io { .. }) => {
            let text = error.to_string();
            let MappedPageError::Io {
                operation,
                path,
                source,
            } = error
            else {
                unreachable!()
            };
            (operation, path, source.kind(), text)
        }
        Err(other) => panic!("expected an Io error, got {other:?}: {other}"),
        Ok(_) => panic!("expected an Io error, got Ok"),
    }
}

/// Opening a path where no file is: the error carries the path, the message names it and says to
/// check it or create a file there; it does not blame space or device health, nor say "retry".
#[test]
fn opening_a_missing_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.bin");
    let (operation, error_path, kind, text) = io_error(FilePager::open(&path));
    assert_eq!(operation, IoOperation::Open);
    assert_eq!(kind, ErrorKind::NotFound);
    assert_eq!(error_path.as_deref(), Some(path.as_path()));
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("no file at this path") && text.contains("Pager::create"),
        "{text}"
    );
    assert!(!text.contains("retry") && !text.contains("space"), "{text}");
}

/// Creating in a directory that does not exist: the message names the path and the missing
/// directory.
#[test]
fn creating_in_a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("db.bin");
    let (operation, error_path, kind, text) = io_error(FilePager::create(&path));
    assert_eq!(operation, IoOperation::Create);
    assert_eq!(kind, ErrorKind::NotFound);
    assert_eq!(error_path.as_deref(), Some(path.as_path()));
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("directory of this path does not exist"),
        "{text}"
    );
}

/// Opening a directory: the message says to give the path of a file.
#[test]
fn opening_a_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (operation, error_path, kind, text) = io_error(FilePager::open(dir.path()));
    assert_eq!(operation, IoOperation::Open);
    assert_eq!(kind, ErrorKind::IsADirectory);
    assert_eq!(error_path.as_deref(), Some(dir.path()));
    assert!(text.contains("path of a file"), "{text}");
}

/// An existing empty file is `FileTooSmall`. The advice used to be "create one with
/// Pager::create", which fails with `AlreadyExists` at that path; now it says to delete the file
/// and create again, and following it works.
#[test]
fn empty_file_advice_can_be_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.bin");
    std::fs::File::create(&path).unwrap();
    let text = match FilePager::open(&path) {
        Err(error @ MappedPageError::FileTooSmall { len_bytes: 0, .. }) => error.to_string(),
        other => panic!("expected FileTooSmall, got {other:?}"),
    };
    assert!(
        text.contains("empty") && text.contains("delete it"),
        "{text}"
    );
    // Creating over it, as the old advice said, fails: the file is in the way.
    assert!(matches!(
        FilePager::create(&path),
        Err(MappedPageError::AlreadyExists { .. })
    ));
    std::fs::remove_file(&path).unwrap();
    let mut pager = FilePager::create(&path).unwrap();
    pager.alloc().unwrap();
}

/// A failed sync poisons the pager, and its message says so and says to reopen, never to retry.
/// (`SimStorage` injects the failure; it is no file, so the error names no path.)
#[test]
fn failed_sync_message_says_poisoned_not_retry() {
    let mut storage = SimStorage::new();
    storage.fail_sync_at(2, FailedSyncKeeps::Nothing);
    let mut pager = Pager::<1024, SimStorage>::create_in(storage).unwrap();
    let (operation, path, _, text) = io_error(pager.alloc());
    assert_eq!(operation, IoOperation::Sync);
    assert_eq!(path, None);
    assert!(pager.is_poisoned());
    assert!(
        text.contains("poisoned") && text.contains("open the file again"),
        "{text}"
    );
    assert!(!text.contains("retry"), "{text}");
}

/// A file on a read-only file system: the real `open` fails with `EROFS`, and the message names
/// the path and says the file system is read-only. Needs to mount a tmpfs (root); skipped loudly
/// where that is not permitted.
#[test]
fn file_on_a_read_only_file_system_says_read_only() {
    const NAME: &str = "file_on_a_read_only_file_system_says_read_only";
    let Some(mount) = mount::mount(NAME, mount::Kind::Tmpfs, 1 << 20) else {
        return;
    };
    let path = mount.path().join("db.bin");
    drop(FilePager::create(&path).unwrap());
    if let Err(why) = mount.remount_read_only() {
        mount::skipped(NAME, &why);
        return;
    }
    let (operation, error_path, kind, text) = io_error(FilePager::open(&path));
    assert_eq!(operation, IoOperation::Open);
    assert_eq!(kind, ErrorKind::ReadOnlyFilesystem);
    assert_eq!(error_path.as_deref(), Some(path.as_path()));
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("read-only"), "{text}");
}
