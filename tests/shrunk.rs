//! A file truncated behind the pager's back (the lock is advisory): every commit, growth and sync
//! checks the file length first and fails with `FileShrunk`, poisoning the pager, instead of
//! returning `Ok` for pages that no longer exist or dying of SIGBUS (SPEC.md §3.4).

use std::path::Path;

use mappedpages::{MappedPageError, PageId, Pager, SharedPager};

const P: usize = 4096;

/// A 32-page file with 15 allocated data pages (page 19 among them) and one protected page,
/// open in a pager.
fn thirty_two_pages(path: &Path) -> (Pager<P>, Vec<PageId<P>>, mappedpages::ProtectedPageId<P>) {
    let mut pager = Pager::<P>::create(path).unwrap();
    let ids = pager.alloc_bulk(15).unwrap();
    let protected = pager.alloc_protected().unwrap();
    assert_eq!(pager.page_count(), 32);
    assert!(ids.iter().any(|id| id.raw() == 19), "{ids:?}");
    (pager, ids, protected)
}

/// Truncates the file through another handle, as another process ignoring the advisory lock
/// would (`truncate -s`).
fn truncate_outside(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// On Windows the file cannot shrink under the pager: the pager's lock is mandatory there, and
/// a file with a mapped view cannot be cut below it (`ERROR_USER_MAPPED_FILE`). Checks that the
/// outside truncation is refused and the pager goes on; returns true if it was (the caller then
/// has nothing more to check).
fn windows_refuses_truncation(path: &Path, len: u64, pager: &mut Pager<P>) -> bool {
    if !cfg!(windows) {
        return false;
    }
    let result = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| file.set_len(len));
    assert!(
        result.is_err(),
        "Windows let another handle truncate a locked, mapped file to {len}"
    );
    eprintln!("Windows refused the outside truncation to {len}: {result:?}");
    pager.alloc().unwrap();
    pager.sync_all().unwrap();
    true
}

type Operation =
    fn(&mut Pager<P>, &[PageId<P>], mappedpages::ProtectedPageId<P>) -> Result<(), MappedPageError>;

fn operations() -> Vec<(&'static str, Operation)> {
    vec![
        ("alloc", |pager, _, _| pager.alloc().map(drop)),
        ("alloc_bulk", |pager, _, _| pager.alloc_bulk(40).map(drop)),
        ("free", |pager, ids, _| pager.free(ids[0])),
        ("free_bulk", |pager, ids, _| {
            pager.free_bulk(ids[..3].to_vec())
        }),
        ("sync_page(19)", |pager, _, _| {
            pager.sync_page(PageId::from_raw(19))
        }),
        ("sync_all", |pager, _, _| pager.sync_all()),
        ("alloc_protected", |pager, _, _| {
            pager.alloc_protected().map(drop)
        }),
        ("free_protected", |pager, _, protected| {
            pager.free_protected(protected)
        }),
        ("protected get_mut", |pager, _, protected| {
            protected.get_mut(pager).map(drop)
        }),
    ]
}

/// After the file shrinks to 8192 bytes (page 19 and both metadata copies' neighbours gone) or
/// to nothing, every operation that commits or syncs returns `FileShrunk` with both lengths and
/// poisons the pager, and nothing touches the vanished pages (a touch would be SIGBUS).
#[test]
fn every_commit_and_sync_after_an_outside_truncation_is_file_shrunk_and_poisons() {
    let dir = tempfile::tempdir().unwrap();
    for new_len in [8192, 0] {
        for (name, operation) in operations() {
            let path = dir.path().join(format!("{name}-{new_len}.bin"));
            let (mut pager, ids, protected) = thirty_two_pages(&path);
            if windows_refuses_truncation(&path, new_len, &mut pager) {
                continue;
            }
            truncate_outside(&path, new_len);
            match operation(&mut pager, &ids, protected) {
                Err(MappedPageError::FileShrunk {
                    expected_len_bytes,
                    found_len_bytes,
                }) => {
                    assert_eq!(expected_len_bytes, 32 * P as u64, "{name}");
                    assert_eq!(found_len_bytes, new_len, "{name}");
                }
                other => panic!("{name} after truncation to {new_len}: {other:?}"),
            }
            assert!(pager.is_poisoned(), "{name}");
            let error = pager.alloc().unwrap_err();
            assert!(
                matches!(error, MappedPageError::Poisoned { .. }),
                "{name}: {error:?}"
            );
            assert!(error.to_string().contains("shrank"), "{name}: {error}");
            assert!(pager.sync_all().is_err(), "{name}");
        }
    }
}

/// The same through a `SharedPager` (its group commits use the same commit path).
#[test]
fn a_shared_pager_commit_after_an_outside_truncation_is_file_shrunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.bin");
    let (mut pager, _, _) = thirty_two_pages(&path);
    if windows_refuses_truncation(&path, 0, &mut pager) {
        return;
    }
    let shared = SharedPager::new(pager);
    truncate_outside(&path, 0);
    let error = shared.alloc().unwrap_err();
    assert!(
        matches!(
            error,
            MappedPageError::FileShrunk {
                found_len_bytes: 0,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(matches!(
        shared.alloc(),
        Err(MappedPageError::Poisoned { .. })
    ));
}

/// A file that did not shrink (or grew) passes the check: nothing changes for normal use.
#[test]
fn a_file_that_did_not_shrink_passes_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grown.bin");
    let (mut pager, ids, _) = thirty_two_pages(&path);
    truncate_outside(&path, 40 * P as u64);
    pager.free(ids[0]).unwrap();
    pager.sync_page(ids[1]).unwrap();
    pager.sync_all().unwrap();
    assert!(!pager.is_poisoned());
    let error = MappedPageError::FileShrunk {
        expected_len_bytes: 2,
        found_len_bytes: 1,
    };
    assert!(error.to_string().contains("advisory"), "{error}");
}
