//! Real file systems mounted for one test (`#[path = "common/mount.rs"] mod mount;` in the test
//! files that need one): a size-limited tmpfs, or a loop-mounted ext4 or ext2 image made with the
//! distribution's `mkfs`. Mounting needs root; where it is refused the helpers print a loud
//! SKIPPED banner and the test returns without checking anything.
#![allow(dead_code)] // each test file uses its own part of the helpers

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file system mounted for one test; unmounted (and its image removed) on drop.
pub struct Mount {
    dir: tempfile::TempDir,
    _image_dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Tmpfs,
    Ext4,
    /// ext2 through the ext4 driver: `fallocate` answers `EOPNOTSUPP`.
    Ext2,
    /// A ramfs: no size limit (`size_bytes` is ignored), and not a file system `MmapStorage`
    /// knows to honour one-flush barriers.
    Ramfs,
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

pub fn skipped(test: &str, why: &str) {
    eprintln!(
        "\n##########\n## SKIPPED: {test}: {why}\n## (needs root and permission to mount a tmpfs or a loop device)\n##########\n"
    );
}

impl Mount {
    /// Mounts a fresh file system of `size_bytes`, or says why it could not.
    pub fn new(kind: Kind, size_bytes: u64) -> Result<Mount, String> {
        if !cfg!(target_os = "linux") {
            // Windows and macOS have no tmpfs or loop mounts from a test; the space-reservation
            // behaviour these tests check is Linux's (`fallocate`, SIGBUS on a full tmpfs).
            return Err("mounting a file system of a chosen size is done on Linux only".into());
        }
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
            Kind::Ramfs => {
                run(Command::new("mount").args(["-t", "ramfs", "ramfs", &target]))?;
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

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with a filler file until not one more byte fits; returns it.
    pub fn fill(&self) -> PathBuf {
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

    /// Remounts the file system read-only.
    pub fn remount_read_only(&self) -> Result<(), String> {
        run(Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path()))
    }

    /// Frees the space the filler took.
    pub fn unfill(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }

    pub fn entries(&self) -> Vec<String> {
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

/// The tests of one file that mount run one at a time (`serial()`): each forks `mount`, `mkfs` and `umount`, and a
/// child forked while another test drops a pager holds a copy of that pager's locked descriptor
/// until it execs, so the other test's reopen could see `Locked`.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Mounts `kind` or prints the SKIPPED banner and returns `None`.
pub fn mount(test: &str, kind: Kind, size_bytes: u64) -> Option<Mount> {
    match Mount::new(kind, size_bytes) {
        Ok(mount) => Some(mount),
        Err(why) => {
            skipped(test, &why);
            None
        }
    }
}
