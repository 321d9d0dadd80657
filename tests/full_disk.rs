//! A full file system never kills the process (SPEC.md §3.3, space reservation): on a real,
//! deliberately filled tmpfs, ext4 and ext2 (no `fallocate`: the fallback), every call that
//! needs space returns `StorageFull` with nothing changed, every call that does not need space
//! works, and after space is freed the same call succeeds with nothing acknowledged lost.
//!
//! Before reservation these calls died of `SIGBUS` (a store into a hole of a sparse file on a
//! full file system), which fails the test binary.
//!
//! The file systems are mounted by the tests (tmpfs, and loop-mounted images made with
//! `mkfs.ext4`/`mkfs.ext2`), which needs root. Without it, or where mounting is refused, each
//! test prints a loud SKIPPED banner and returns.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use mappedpages::{MappedPageError, MmapStorage, Pager};

/// A file system mounted for one test; unmounted (and its image removed) on drop.
struct Mount {
    dir: tempfile::TempDir,
    _image_dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tmpfs,
    Ext4,
    /// ext2 through the ext4 driver: `fallocate` answers `EOPNOTSUPP`.
    Ext2,
}

fn run(command: &mut Command) -> Result<(), String> {
    match command.output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(error) => Err(format!("{command:?}: {error}")),
    }
}

fn skipped(test: &str, why: &str) {
    eprintln!(
        "\n##########\n## SKIPPED: {test}: {why}\n## (needs root and permission to mount a tmpfs or a loop device)\n##########\n"
    );
}

impl Mount {
    /// Mounts a fresh file system of `size_bytes`, or says why it could not.
    fn new(kind: Kind, size_bytes: u64) -> Result<Mount, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let target = dir.path().to_str().ok_or("non-UTF-8 temp dir")?.to_string();
        let image_dir = match kind {
            Kind::Tmpfs => {
                run(Command::new("mount").args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size_bytes}"),
                    "tmpfs",
                    &target,
                ]))?;
                None
            }
            Kind::Ext4 | Kind::Ext2 => {
                let image_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let image = image_dir.path().join("fs.img");
                File::create(&image)
                    .and_then(|f| f.set_len(size_bytes))
                    .map_err(|e| e.to_string())?;
                let mkfs = if matches!(kind, Kind::Ext4) {
                    "mkfs.ext4"
                } else {
                    "mkfs.ext2"
                };
                run(Command::new(mkfs).arg("-q").arg("-F").arg(&image))?;
                run(Command::new("mount")
                    .args(["-o", "loop"])
                    .arg(&image)
                    .arg(&target))?;
                Some(image_dir)
            }
        };
        Ok(Mount {
            dir,
            _image_dir: image_dir,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with a filler file until not one more byte fits; returns it.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        for chunk in [1 << 20, 64 << 10, 4096, 512, 1] {
            let buf = vec![0xA5u8; chunk];
            loop {
                match file.write(&buf) {
                    Ok(n) if n == chunk => {}
                    Ok(_) => break,
                    Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(error) => panic!("filling the file system: {error}"),
                }
            }
        }
        let _ = file.sync_all();
        path
    }

    /// Frees the space the filler took.
    fn unfill(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "lost+found" && name != "filler")
            .collect();
        names.sort();
        names
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let target = self.dir.path().to_path_buf();
        if run(Command::new("umount").arg(&target)).is_err() {
            // A pager still open in a failing test: detach instead of leaking the mount.
            let _ = run(Command::new("umount").arg("-l").arg(&target));
        }
    }
}

/// The tests of this file run one at a time: each forks `mount`, `mkfs` and `umount`, and a
/// child forked while another test drops a pager holds a copy of that pager's locked descriptor
/// until it execs, so the other test's reopen could see `Locked`.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Mounts `kind` or prints the SKIPPED banner and returns `None`.
fn mount(test: &str, kind: Kind, size_bytes: u64) -> Option<Mount> {
    match Mount::new(kind, size_bytes) {
        Ok(mount) => Some(mount),
        Err(why) => {
            skipped(test, &why);
            None
        }
    }
}

const KINDS: [Kind; 3] = [Kind::Tmpfs, Kind::Ext4, Kind::Ext2];
/// Big enough for ext4's journal and metadata; small enough to fill in a moment.
const FS_BYTES: u64 = 16 << 20;

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn assert_storage_full<T: std::fmt::Debug>(result: Result<T, MappedPageError>, what: &str) {
    match result {
        Err(MappedPageError::StorageFull { .. }) => {}
        other => panic!("{what} on a full file system: expected StorageFull, got {other:?}"),
    }
}

/// `create` on a full file system: `StorageFull`, nothing left behind (no file, no temporary);
/// with space, the same call succeeds.
#[test]
fn create_on_a_full_file_system() {
    let _serial = serial();
    for kind in KINDS {
        let Some(mount) = mount("create_on_a_full_file_system", kind, FS_BYTES) else {
            return;
        };
        let path = mount.path().join("db.bin");
        mount.fill();
        assert_storage_full(Pager::<4096>::create(&path), "create");
        assert_eq!(mount.entries(), Vec::<String>::new(), "{kind:?}: leftovers");
        mount.unfill();
        let mut pager = Pager::<4096>::create(&path).unwrap();
        pager.alloc().unwrap();
    }
}

/// `alloc_bulk` into a new group at 1 KiB pages (its commit writes the first slot page of the
/// group: SIGBUS in `encode_group_slot` before), `alloc`, and `alloc_protected` into free pages
/// that are holes: each `StorageFull`, with the page count, the counts and the file length as
/// before; after space is freed the same calls succeed and survive a reopen.
#[test]
fn allocations_on_a_full_file_system() {
    let _serial = serial();
    for kind in KINDS {
        let Some(mount) = mount("allocations_on_a_full_file_system", kind, FS_BYTES) else {
            return;
        };
        let path = mount.path().join("db.bin");
        let mut pager = Pager::<1024>::create(&path).unwrap();
        let kept = pager.alloc_bulk(100).unwrap();
        pager.set_commit_mode(mappedpages::CommitMode::SingleSync);
        mount.fill();
        let state = |pager: &Pager<1024>| {
            (
                pager.page_count(),
                pager.allocated_page_count(),
                pager.free_page_count(),
                pager.generation(),
                file_len(&path),
            )
        };
        // Free pages in space the file already has need none (reservations are made in chunks
        // of `RESERVATION_CHUNK_BYTES`, clipped to the file): those allocations succeed; the
        // first that needs new space (here: a growth) fails.
        let mut early = Vec::new();
        let first_failure = loop {
            match pager.alloc() {
                Ok(id) => early.push(id),
                Err(error) => break error,
            }
            assert!(
                early.len() as u64 <= MmapStorage::RESERVATION_CHUNK_BYTES / 1024,
                "{kind:?}: alloc never needed a new block"
            );
        };
        assert_storage_full(Err::<(), _>(first_failure), "alloc");
        let before = state(&pager);
        assert_storage_full(pager.alloc_bulk(9000), "alloc_bulk(9000)");
        assert_eq!(
            state(&pager),
            before,
            "{kind:?}: alloc_bulk changed something"
        );
        assert_storage_full(pager.alloc(), "alloc");
        assert_storage_full(pager.alloc_protected(), "alloc_protected");
        assert_eq!(
            state(&pager),
            before,
            "{kind:?}: a failed call changed something"
        );
        assert!(!pager.is_poisoned());
        // Calls that need no new space still work on the full file system.
        kept[1].get_mut(&mut pager).unwrap().as_bytes_mut().fill(1);
        pager.sync_page(kept[1]).unwrap();
        pager.sync_all().unwrap();
        pager.free(kept[0]).unwrap();
        let kept = &kept[1..];

        mount.unfill();
        let bulk = pager.alloc_bulk(9000).unwrap();
        let protected = pager.alloc_protected().unwrap();
        for id in &bulk {
            id.get_mut(&mut pager).unwrap().as_bytes_mut()[0] = 7;
        }
        pager.sync_all().unwrap();
        drop(pager);
        let pager = Pager::<1024>::open(&path).unwrap();
        assert!(
            bulk.iter()
                .chain(kept)
                .chain(&early)
                .all(|&id| pager.is_allocated(id))
        );
        assert!(pager.is_protected_allocated(protected));
        assert!(
            bulk.iter()
                .all(|id| id.get(&pager).unwrap().as_bytes()[0] == 7)
        );
    }
}

/// Pages handed out before the disk filled can be written (every page of them: SIGBUS before),
/// synced, and committed with; a protected page allocated before can be written and committed
/// (its copies are reserved); and a file of 5,005 pages reopens on the full file system (its
/// recovery read the never-written inactive slot page: SIGBUS on tmpfs before).
#[test]
fn work_on_reserved_pages_continues_on_a_full_file_system() {
    let _serial = serial();
    for kind in KINDS {
        let Some(mount) = mount(
            "work_on_reserved_pages_continues_on_a_full_file_system",
            kind,
            FS_BYTES,
        ) else {
            return;
        };
        let path = mount.path().join("db.bin");
        let mut pager = Pager::<1024>::create(&path).unwrap();
        let ids = pager.alloc_bulk(4989).unwrap();
        let protected = pager.alloc_protected().unwrap();
        assert!(pager.page_count() >= 5005, "{}", pager.page_count());
        mount.fill();
        for (index, id) in ids.iter().enumerate() {
            id.get_mut(&mut pager)
                .unwrap()
                .as_bytes_mut()
                .fill(index as u8);
        }
        pager.sync_page(ids[17]).unwrap();
        pager.sync_all().unwrap();
        let mut writer = protected.get_mut(&mut pager).unwrap();
        writer.page_mut().as_bytes_mut()[..4].copy_from_slice(b"root");
        writer.commit().unwrap();
        pager.free_bulk(ids[..10].to_vec()).unwrap();
        drop(pager);

        let pager = Pager::<1024>::open(&path).unwrap();
        assert_eq!(pager.allocated_page_count(), 4979);
        for (index, id) in ids.iter().enumerate().skip(10) {
            assert_eq!(id.get(&pager).unwrap().as_bytes()[5], index as u8);
        }
        assert_eq!(&protected.get(&pager).unwrap().as_bytes()[..4], b"root");
        drop(pager);
        mount.unfill();
    }
}

/// The fallback reservation (a byte written per block) is what ext2 gets; on ext4 and tmpfs it
/// is forced here, and a full file system still surfaces as `StorageFull`.
#[test]
fn the_fallback_reservation_reserves_and_reports_a_full_file_system() {
    let _serial = serial();
    for kind in KINDS {
        let Some(mount) = mount(
            "the_fallback_reservation_reserves_and_reports_a_full_file_system",
            kind,
            FS_BYTES,
        ) else {
            return;
        };
        let path = mount.path().join("db.bin");
        drop(Pager::<4096>::create(&path).unwrap());
        let mut storage = MmapStorage::open(&path).unwrap();
        storage.force_reservation_by_writing();
        let mut pager = Pager::<4096, MmapStorage>::open_in(storage).unwrap();
        let ids = pager.alloc_bulk(64).unwrap();
        assert!(pager.storage().stats().reservation_writes >= 64);
        mount.fill();
        assert_storage_full(pager.alloc_bulk(64), "alloc_bulk(64)");
        for id in &ids {
            id.get_mut(&mut pager).unwrap().as_bytes_mut().fill(3);
        }
        pager.sync_all().unwrap();
        mount.unfill();
        pager.alloc_bulk(64).unwrap();
    }
}
