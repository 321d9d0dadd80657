//! `ReadOnlyPager` (SPEC.md §4.5) on real files: shared lock, no writes, repairs reported.

#[path = "common/mount.rs"]
mod mount;

#[path = "common/child.rs"]
mod child;
use child::run_child;

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mappedpages::{IoOperation, MappedPageError, Pager, ReadOnlyPager, Repair, SimStorage};

const P: usize = 1024;

/// Every test here runs alone: a child forked by one (`run_child`, `mount`) holds copies of the
/// others' locked descriptors until it execs, which would make their lock checks flaky.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    mount::serial()
}

fn page_of(image: &mut [u8], page: u64) -> &mut [u8] {
    &mut image[page as usize * P..(page as usize + 1) * P]
}

fn find_pages(image: &[u8], magic: &[u8]) -> Vec<u64> {
    image
        .chunks(P)
        .enumerate()
        .filter(|(_, page)| page.starts_with(magic))
        .map(|(index, _)| index as u64)
        .collect()
}

/// A file with two regular and two protected pages, with content.
fn populated(
    path: &Path,
) -> (
    Vec<mappedpages::PageId<P>>,
    Vec<mappedpages::ProtectedPageId<P>>,
) {
    let mut pager = Pager::<P>::create(path).unwrap();
    let regular = pager.alloc_bulk(2).unwrap();
    regular[1].get_mut(&mut pager).unwrap().as_bytes_mut()[..3].copy_from_slice(b"abc");
    pager.sync_page(regular[1]).unwrap();
    let protected = pager.alloc_protected_bulk(2).unwrap();
    let mut writer = protected[0].get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut()[..3].copy_from_slice(b"xyz");
    writer.commit().unwrap();
    (regular, protected)
}

/// Reads everything a reader offers, and checks it against `populated`.
fn check_populated(
    reader: &ReadOnlyPager<P>,
    regular: &[mappedpages::PageId<P>],
    protected: &[mappedpages::ProtectedPageId<P>],
) {
    assert_eq!(reader.iter_allocated_pages().collect::<Vec<_>>(), regular);
    assert_eq!(&reader.page(regular[1]).unwrap().as_bytes()[..3], b"abc");
    assert_eq!(
        reader.iter_allocated_protected_pages().collect::<Vec<_>>(),
        protected
    );
    assert_eq!(
        &reader.protected_page(protected[0]).unwrap().as_bytes()[..3],
        b"xyz"
    );
    assert_eq!(reader.allocated_page_count(), 2);
    assert_eq!(reader.protected_page_count(), 2);
}

#[cfg(unix)]
fn is_root() -> bool {
    // SAFETY: `geteuid` has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(unix)]
/// The checks of a 0444 file, by a user the mode binds: the read-only open reads everything,
/// the read-write open fails with an `Io { Open }` naming the path.
fn check_0444(path: &Path) {
    let (regular, protected) = (
        vec![
            mappedpages::PageId::<P>::from_raw(7),
            mappedpages::PageId::from_raw(8),
        ],
        vec![
            mappedpages::ProtectedPageId::<P>::from_raw(0),
            mappedpages::ProtectedPageId::from_raw(1),
        ],
    );
    let reader = ReadOnlyPager::<P>::open(path).unwrap();
    check_populated(&reader, &regular, &protected);
    assert!(reader.planned_repairs().is_empty());
    assert_eq!(
        reader.recovery_decision(),
        mappedpages::RecoveryDecision::Superblock
    );
    drop(reader);
    match Pager::<P>::open(path) {
        Err(
            error @ MappedPageError::Io {
                operation: IoOperation::Open,
                path: Some(_),
                ..
            },
        ) => {
            let text = error.to_string();
            assert!(
                text.contains(&path.display().to_string()),
                "the error names the path: {text}"
            );
        }
        other => panic!("read-write open of a 0444 file: {other:?}"),
    }
}

/// A file of mode 0444 opens read-only (everything readable, nothing to repair) and its
/// read-write open fails with `Io { Open }` naming the path; the file is unchanged. Root ignores
/// mode bits, so as root the checks run in a child process that dropped to `nobody`.
#[cfg(unix)] // Windows has no mode bits (and no setuid)
#[test]
fn a_file_of_mode_0444_opens_read_only_but_not_read_write() {
    const NAME: &str = "a_file_of_mode_0444_opens_read_only_but_not_read_write";
    if let Some(path) = std::env::var_os("MAPPEDPAGES_CHILD") {
        // SAFETY: plain system calls on this single-threaded child (--test-threads=1).
        unsafe {
            assert_eq!(libc::setgid(65534), 0, "setgid(nobody)");
            assert_eq!(libc::setuid(65534), 0, "setuid(nobody)");
        }
        check_0444(Path::new(&path));
        eprintln!("child: 0444 checks passed");
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("db.bin");
    let (regular, protected) = populated(&path);
    assert_eq!(
        regular[0].raw(),
        7,
        "check_0444 assumes the first data pages (7 and 8: pages 5 and 6 hold table page 0)"
    );
    assert_eq!(protected[0].raw(), 0);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&path).unwrap();
    if is_root() {
        let (status, stderr) = run_child(NAME, &path);
        assert!(status.success(), "child as nobody failed:\n{stderr}");
        assert!(
            stderr.contains("child: 0444 checks passed"),
            "the child ran the checks: {stderr}"
        );
    } else {
        check_0444(&path);
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was written");
}

/// A file on a tmpfs remounted read-only opens read-only; the read-write open fails with
/// `Io { Open }` (EROFS) naming the path.
#[test]
fn a_file_on_a_read_only_mount_opens_read_only() {
    const NAME: &str = "a_file_on_a_read_only_mount_opens_read_only";
    let _serial = serial();
    let Some(tmpfs) = mount::mount(NAME, mount::Kind::Tmpfs, 1 << 20) else {
        return;
    };
    let path = tmpfs.path().join("db.bin");
    let (regular, protected) = populated(&path);
    let before = std::fs::read(&path).unwrap();
    tmpfs.remount_read_only().unwrap();

    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    check_populated(&reader, &regular, &protected);
    assert!(reader.planned_repairs().is_empty());
    drop(reader);
    match Pager::<P>::open(&path) {
        Err(
            error @ MappedPageError::Io {
                operation: IoOperation::Open,
                ..
            },
        ) => assert!(
            error.to_string().contains(&path.display().to_string()),
            "the error names the path: {error}"
        ),
        other => panic!("read-write open on a read-only mount: {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Two read-only opens at once in this process, then a read-only open in a child process while
/// this one holds two: the lock is shared.
#[test]
fn read_only_opens_share_the_file_across_handles_and_processes() {
    const NAME: &str = "read_only_opens_share_the_file_across_handles_and_processes";
    if let Some(path) = std::env::var_os("MAPPEDPAGES_CHILD") {
        let reader = ReadOnlyPager::<P>::open(Path::new(&path)).unwrap();
        assert_eq!(reader.allocated_page_count(), 2);
        assert!(matches!(
            Pager::<P>::open(Path::new(&path)),
            Err(MappedPageError::Locked)
        ));
        eprintln!("child: shared open passed");
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let (regular, protected) = populated(&path);
    let first = ReadOnlyPager::<P>::open(&path).unwrap();
    let second = ReadOnlyPager::<P>::open(&path).unwrap();
    check_populated(&first, &regular, &protected);
    check_populated(&second, &regular, &protected);
    let (status, stderr) = run_child(NAME, &path);
    assert!(status.success(), "child failed:\n{stderr}");
    assert!(stderr.contains("child: shared open passed"), "{stderr}");
    drop(first);
    drop(second);
    Pager::<P>::open(&path).expect("the writer opens once the readers are gone");
}

/// A writer excludes readers and readers exclude a writer, both ways `Locked`; in this process
/// and from a child process.
#[test]
fn writer_and_readers_exclude_each_other() {
    const NAME: &str = "writer_and_readers_exclude_each_other";
    if let Some(path) = std::env::var_os("MAPPEDPAGES_CHILD") {
        let path = Path::new(&path);
        assert!(matches!(
            ReadOnlyPager::<P>::open(path),
            Err(MappedPageError::Locked)
        ));
        eprintln!("child: reader locked out");
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let writer = Pager::<P>::create(&path).unwrap();
    assert!(matches!(
        ReadOnlyPager::<P>::open(&path),
        Err(MappedPageError::Locked)
    ));
    let (status, stderr) = run_child(NAME, &path);
    assert!(status.success(), "child failed:\n{stderr}");
    assert!(stderr.contains("child: reader locked out"), "{stderr}");
    drop(writer);

    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    assert!(matches!(
        Pager::<P>::open(&path),
        Err(MappedPageError::Locked)
    ));
    drop(reader);
    Pager::<P>::open(&path).expect("the writer opens once the reader is gone");
}

/// Writes `image` to `path`, opens it read-only, and checks: the state is the one a read-write
/// open recovers, the file is unchanged byte for byte, the reported repairs are the ones a
/// read-write open then makes (every page it changes is one the report names), and they are
/// `expected`.
fn check_reported_repairs(path: &Path, image: &[u8], expected: impl Fn(&[Repair]) -> bool) {
    std::fs::write(path, image).unwrap();
    let reader = ReadOnlyPager::<P>::open(path).unwrap();
    let repairs = reader.planned_repairs().to_vec();
    assert!(expected(&repairs), "unexpected repairs {repairs:?}");
    let regular: Vec<_> = reader.iter_allocated_pages().collect();
    let protected: Vec<_> = reader
        .iter_allocated_protected_pages()
        .map(|id| (id, reader.protected_page(id).unwrap().as_bytes().to_vec()))
        .collect();
    let generation = reader.generation();
    drop(reader);
    assert!(
        std::fs::read(path).unwrap() == image,
        "the read-only open wrote"
    );

    let writer = Pager::<P>::open(path).unwrap();
    assert_eq!(writer.generation(), generation);
    assert_eq!(writer.iter_allocated_pages().collect::<Vec<_>>(), regular);
    for (id, bytes) in &protected {
        assert_eq!(id.get(&writer).unwrap().as_bytes(), &bytes[..]);
    }
    drop(writer);
    let repaired = std::fs::read(path).unwrap();
    let reported: Vec<u64> = repairs
        .iter()
        .map(|repair| match *repair {
            Repair::ScrubPage { page } => page,
            Repair::RewriteSuperblock => 0,
            Repair::RestoreMirror { to, .. } => to,
            other => panic!("unknown repair {other:?}"),
        })
        .collect();
    let changed: Vec<u64> = (0..image.len() / P)
        .filter(|&page| repaired[page * P..(page + 1) * P] != image[page * P..(page + 1) * P])
        .map(|page| page as u64)
        .collect();
    assert!(!changed.is_empty(), "the read-write open repaired nothing");
    assert!(
        changed.iter().all(|page| reported.contains(page)),
        "the read-write open changed pages {changed:?}, the report named {reported:?}"
    );
}

/// A crash after the first barrier of a flip commit leaves the next metadata copy durable and
/// the superblock naming the old one: a read-write open scrubs the newer copy. Read-only, the
/// scrub is reported and not made.
#[test]
fn a_crash_image_needing_a_scrub_is_reported_and_left_unchanged() {
    let _serial = serial();
    let mut storage = SimStorage::new();
    storage.record_sync_snapshots();
    let mut pager = Pager::<P, SimStorage>::create_in(storage).unwrap();
    pager.alloc_bulk(3).unwrap();
    let before_flip = pager
        .storage()
        .sync_snapshots()
        .last()
        .unwrap()
        .durable_image();
    drop(pager);
    let dir = tempfile::tempdir().unwrap();
    check_reported_repairs(&dir.path().join("crash.bin"), &before_flip, |repairs| {
        repairs
            .iter()
            .any(|repair| matches!(repair, Repair::ScrubPage { .. }))
    });
}

/// A damaged superblock and a damaged directory mirror: the superblock rewrite and the mirror
/// restore are reported, not made.
#[test]
fn damaged_superblock_and_mirror_are_reported_and_left_unchanged() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    populated(&path);
    let clean = std::fs::read(&path).unwrap();

    let mut image = clean.clone();
    page_of(&mut image, 0)[..64].fill(0xee);
    check_reported_repairs(&path, &image, |repairs| {
        repairs == [Repair::RewriteSuperblock]
    });

    let mirrors = find_pages(&clean, b"MAPPGPD\x01");
    assert!(mirrors.len() >= 2, "directory mirrors in {mirrors:?}");
    // A mirror of the block's current slot: the newest generation (bytes 16..24 of the header).
    let generation = |page: u64| {
        let at = page as usize * P + 16;
        u64::from_le_bytes(clean[at..at + 8].try_into().unwrap())
    };
    let current = *mirrors
        .iter()
        .max_by_key(|&&page| generation(page))
        .unwrap();
    let mut image = clean.clone();
    page_of(&mut image, current)[..512].fill(0);
    check_reported_repairs(
        &path,
        &image,
        |repairs| matches!(repairs, [Repair::RestoreMirror { to, .. }] if *to == current),
    );
}

/// Threads share one reader by reference (the reason `SharedPager` has no read-only open).
#[test]
fn a_reader_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<ReadOnlyPager<P>>();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let (regular, protected) = populated(&path);
    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| check_populated(&reader, &regular, &protected));
        }
    });
}
