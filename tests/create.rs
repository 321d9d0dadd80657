//! `Pager::create` on real files: stale temporaries, races, and failures (INV-11, SPEC.md §3.1).

use std::path::Path;

use mappedpages::{MappedPageError, Pager};

#[path = "common/mount.rs"]
mod mount;

#[cfg(target_os = "linux")]
#[path = "common/child.rs"]
mod child;
#[cfg(target_os = "linux")]
use child::run_child;

// The tests of this file run one at a time (`mount::serial`): two of them fork (`mount`, a child
// process), and a child forked while another test drops a pager holds a copy of its locked
// descriptor until it execs, so that test's reopen could see `Locked`.
use mount::serial;

/// Names in `dir` that look like create temporaries.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".mappedpages-create-"))
        .collect()
}

/// A create that crashed left `.NAME.mappedpages-create-PID` (the name versions before this one
/// used, and the one this very process would have used); a restart with the same pid (pid 1 in a
/// container) must still create the file. Other leftover patterns of the same name do not block
/// either, and unlocked ones are cleaned up.
#[test]
fn stale_temporaries_do_not_block_create() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let pid = std::process::id();
    for name in [
        format!(".db.bin.mappedpages-create-{pid}"),
        ".db.bin.mappedpages-create-1".to_string(),
        format!(".db.bin.mappedpages-create-{pid}-0-00000000"),
        format!(".db.bin.mappedpages-create-{pid}-1-{:08x}", 12345),
    ] {
        std::fs::write(dir.path().join(&name), vec![0xEE; 3000]).unwrap();
    }
    let mut pager = Pager::<4096>::create(&path).unwrap();
    let id = pager.alloc().unwrap();
    drop(pager);
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    let pager = Pager::<4096>::open(&path).unwrap();
    assert!(pager.is_allocated(id));

    // Leftovers of an interrupted create of the same name again, then create a second file
    // beside: the leftovers of the first name do not disturb it, and the first name's create
    // after removing the file works again.
    drop(pager);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(
        dir.path().join(format!(".db.bin.mappedpages-create-{pid}")),
        b"x",
    )
    .unwrap();
    drop(Pager::<1024>::create(dir.path().join("other.bin")).unwrap());
    drop(Pager::<1024>::create(&path).unwrap());
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

/// Threads racing to create one path: exactly one wins, every loser gets `AlreadyExists`, and
/// nothing but the winner's file remains.
#[test]
fn racing_creates_have_one_winner_and_already_exists_for_every_loser() {
    let _serial = serial();
    const THREADS: usize = 4;
    const ROUNDS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    for round in 0..ROUNDS {
        let path = dir.path().join(format!("race-{round}.bin"));
        let barrier = std::sync::Barrier::new(THREADS);
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        Pager::<1024>::create(&path)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        for result in &results {
            match result {
                Ok(_) => {}
                Err(MappedPageError::AlreadyExists { path: reported }) => {
                    assert_eq!(reported, &path)
                }
                Err(other) => panic!("round {round}: a loser got {other:?}"),
            }
        }
        drop(results);
        assert_eq!(Pager::<1024>::open(&path).unwrap().generation(), 1);
    }
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), ROUNDS);
}

/// A create that fails for real (the file size limit, `RLIMIT_FSIZE`, is below the 16 pages of a
/// new file, so growing the new file fails with `EFBIG`) returns the typed error and leaves nothing
/// at the path or beside it; once the limit is lifted the same create succeeds. Runs in a child
/// process because the limit is per process.
// Linux only: Windows has no `RLIMIT_FSIZE` (setrlimit is Unix, through libc, a Unix-only
// dependency here).
#[cfg(target_os = "linux")]
#[test]
fn a_create_failing_on_the_file_size_limit_leaves_nothing() {
    let _serial = serial();
    const NAME: &str = "a_create_failing_on_the_file_size_limit_leaves_nothing";
    if let Some(dir) = std::env::var_os("MAPPEDPAGES_CHILD") {
        let dir = Path::new(&dir);
        let path = dir.join("db.bin");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid, writable `rlimit` for the duration of the call.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) },
            0
        );
        let unlimited = limit;
        limit.rlim_cur = 8192;
        // SAFETY: ignoring SIGXFSZ makes the write past the limit fail with EFBIG instead of
        // killing the process; no handler runs. `limit` is a valid `rlimit`.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
        }
        match Pager::<4096>::create(&path) {
            Err(MappedPageError::Io {
                operation: mappedpages::IoOperation::Grow,
                source,
                ..
            }) => assert_eq!(source.raw_os_error(), Some(libc::EFBIG)),
            other => panic!("expected Io {{ Grow, EFBIG }}, got {other:?}"),
        }
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &unlimited) },
            0
        );
        drop(Pager::<4096>::create(&path).unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = run_child(NAME, dir.path());
    assert!(status.success(), "child failed: {stderr}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("db.bin")]);
    assert_eq!(
        Pager::<4096>::open(dir.path().join("db.bin"))
            .unwrap()
            .generation(),
        1
    );
}

/// A create on a full file system (where the first store into the sparse new file used to raise
/// SIGBUS) fails with `StorageFull` and leaves no file at the path and no temporary; once space
/// is free the same create succeeds. The child process does the create.
// Linux only: needs a size-limited tmpfs mounted by the test and a child killed by SIGBUS.
#[cfg(target_os = "linux")]
#[test]
fn a_create_dying_on_a_full_file_system_leaves_nothing() {
    let _serial = serial();
    const NAME: &str = "a_create_dying_on_a_full_file_system_leaves_nothing";
    if let Some(dir) = std::env::var_os("MAPPEDPAGES_CHILD") {
        match Pager::<4096>::create(Path::new(&dir).join("db.bin")) {
            Err(error) => eprintln!("create failed with a typed error: {error:?}"),
            Ok(_) => panic!("create succeeded on a full file system"),
        }
        return;
    }
    let Some(tmpfs) = mount::mount(NAME, mount::Kind::Tmpfs, 64 << 10) else {
        return;
    };
    let filler_path = tmpfs.fill();
    let (status, stderr) = run_child(NAME, tmpfs.path());
    // Space reservation (SPEC.md §3.3) turned the SIGBUS this test was written against into a
    // typed error; the child also proves no store into the sparse file came first.
    assert!(
        status.success() && stderr.contains("StorageFull"),
        "child did not fail with StorageFull: {status:?} {stderr}"
    );
    eprintln!("child: {status:?}");
    let names: Vec<_> = std::fs::read_dir(tmpfs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("filler")]);
    std::fs::remove_file(&filler_path).unwrap();
    let path = tmpfs.path().join("db.bin");
    drop(Pager::<4096>::create(&path).unwrap());
    assert_eq!(Pager::<4096>::open(&path).unwrap().generation(), 1);
    assert!(leftovers(tmpfs.path()).is_empty());
}
