//! Exclusive access (INV-10) and atomic create (INV-11) on real files.

use std::path::Path;

use mappedpages::{IoOperation, MappedPageError, Pager};

fn temp_leftovers(dir: &Path, name: &str) -> Vec<String> {
    let prefix = format!(".{name}.mappedpages-create-");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|file| file.starts_with(&prefix))
        .collect()
}

/// INV-10: while a pager created on a file is alive, a second open in the same process fails
/// with `Locked` (whatever page size it asks for); once the first is dropped, open succeeds.
#[test]
fn inv10_second_open_while_created_pager_alive_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let mut first = Pager::<4096>::create(&path).unwrap();
    let id = first.alloc().unwrap();

    assert!(matches!(
        Pager::<4096>::open(&path),
        Err(MappedPageError::Locked)
    ));
    // The lock is taken before the file is read: the page size does not matter.
    assert!(matches!(
        Pager::<1024>::open(&path),
        Err(MappedPageError::Locked)
    ));
    assert!(matches!(
        mappedpages::MmapStorage::open(&path),
        Err(MappedPageError::Locked)
    ));

    // The first pager is unaffected by the refused opens.
    id.get_mut(&mut first).unwrap().as_bytes_mut()[0] = 9;
    first.sync_page(id).unwrap();
    let second_id = first.alloc().unwrap();
    drop(first);

    let reopened = Pager::<4096>::open(&path).unwrap();
    assert!(reopened.is_allocated(id));
    assert!(reopened.is_allocated(second_id));
    assert_eq!(id.get(&reopened).unwrap().as_bytes()[0], 9);
}

/// INV-10: the same for a pager made by `open`, and the lock is released by drop every time.
#[test]
fn inv10_second_open_while_opened_pager_alive_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    drop(Pager::<4096>::create(&path).unwrap());
    for round in 0..3 {
        let mut holder = Pager::<4096>::open(&path).unwrap();
        for _ in 0..2 {
            let error = Pager::<4096>::open(&path).unwrap_err();
            assert!(
                matches!(error, MappedPageError::Locked),
                "round {round}: {error:?}"
            );
            assert!(!error.to_string().is_empty());
        }
        holder.alloc().unwrap();
    }
    let pager = Pager::<4096>::open(&path).unwrap();
    assert_eq!(pager.allocated_page_count(), 3);
}

/// INV-10: a pager that failed to open (here: wrong page size) holds no lock afterwards.
#[test]
fn inv10_failed_open_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    drop(Pager::<4096>::create(&path).unwrap());
    assert!(matches!(
        Pager::<1024>::open(&path),
        Err(MappedPageError::PageSizeMismatch {
            found: 4096,
            expected: 1024
        })
    ));
    Pager::<4096>::open(&path).unwrap();
}

/// INV-11: `create` on an existing path fails with `AlreadyExists` and leaves the file as it was
/// (whether it is a pager file, held open, or anything else).
#[test]
fn inv11_create_on_existing_path_is_already_exists_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();

    // Another file.
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, b"precious data").unwrap();
    match Pager::<4096>::create(&other) {
        Err(MappedPageError::AlreadyExists { path }) => assert_eq!(path, other),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(std::fs::read(&other).unwrap(), b"precious data");

    // A pager file, closed and then held open.
    let path = dir.path().join("db.bin");
    let mut pager = Pager::<4096>::create(&path).unwrap();
    let id = pager.alloc().unwrap();
    id.get_mut(&mut pager).unwrap().as_bytes_mut()[..4].copy_from_slice(b"keep");
    pager.sync_all().unwrap();
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(
        Pager::<4096>::create(&path),
        Err(MappedPageError::AlreadyExists { .. })
    ));
    assert!(matches!(
        Pager::<1024>::create(&path),
        Err(MappedPageError::AlreadyExists { .. })
    ));
    drop(pager);
    assert!(matches!(
        Pager::<4096>::create(&path),
        Err(MappedPageError::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let pager = Pager::<4096>::open(&path).unwrap();
    assert_eq!(&id.get(&pager).unwrap().as_bytes()[..4], b"keep");

    // An empty file and a directory are "something there" too.
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        Pager::<4096>::create(&empty),
        Err(MappedPageError::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    let subdir = dir.path().join("sub");
    std::fs::create_dir(&subdir).unwrap();
    assert!(matches!(
        Pager::<4096>::create(&subdir),
        Err(MappedPageError::AlreadyExists { .. })
    ));

    for name in ["notes.txt", "db.bin", "empty.bin", "sub"] {
        assert!(temp_leftovers(dir.path(), name).is_empty(), "{name}");
    }
}

/// INV-11: after `create` (successful or not) no temporary `.<name>.mappedpages-create-*` file
/// remains, the new file is complete (16 pages) and locked by the pager create returned.
#[test]
fn inv11_create_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.bin");
    let pager = Pager::<1024>::create(&path).unwrap();
    assert!(temp_leftovers(dir.path(), "fresh.bin").is_empty());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("fresh.bin")]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 * 1024);
    // The returned pager holds the lock on the file at `path` (not on the removed temp name).
    assert!(matches!(
        Pager::<1024>::open(&path),
        Err(MappedPageError::Locked)
    ));
    drop(pager);
    let reopened = Pager::<1024>::open(&path).unwrap();
    assert_eq!(reopened.allocated_page_count(), 0);
    assert_eq!(reopened.generation(), 1);
    drop(reopened);

    // A failed create (already exists) leaves nothing either.
    assert!(Pager::<1024>::create(&path).is_err());
    assert!(temp_leftovers(dir.path(), "fresh.bin").is_empty());

    // Many creates in one directory.
    for i in 0..10 {
        let name = format!("file-{i}.bin");
        drop(Pager::<4096>::create(dir.path().join(&name)).unwrap());
        assert!(temp_leftovers(dir.path(), &name).is_empty());
    }
    let hidden: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

/// INV-11: a create that cannot start (missing directory) fails with a typed I/O error and
/// creates nothing.
#[test]
fn inv11_create_in_missing_directory_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("db.bin");
    match Pager::<4096>::create(&path) {
        Err(MappedPageError::Io {
            operation: IoOperation::Create,
            source,
            ..
        }) => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected Io {{ Create }}, got {other:?}"),
    }
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
