//! What `MmapStorage`'s barriers leave in the page cache, observed through the kernel itself
//! (SPEC.md §5, docs/mmap-barriers.md): after a barrier over a range, no page of the range is
//! dirty — its bytes went to the device — while a page written but not named stays dirty (the
//! barrier writes what it is asked to, not a span around it). And which file systems get
//! one-flush barriers.
//!
//! Dirtiness is read from `/proc/self/pagemap` (the page frame behind a mapped address) and
//! `/proc/kpageflags` (that frame's `KPF_DIRTY` bit), which needs root on Linux; the mounts need
//! root too. Without them each test prints a loud SKIPPED banner and returns. Background
//! writeback can clean a page at any moment, so a page that should be dirty is only checked as
//! a precondition (the test rewrites it and tries again) and never makes a correct barrier fail.

#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use mappedpages::{MmapStorage, PageId, Pager, Storage};

#[path = "common/mount.rs"]
mod mount;

const P: usize = 4096;
/// `KPF_DIRTY` in `/proc/kpageflags` (include/uapi/linux/kernel-page-flags.h).
const KPF_DIRTY: u64 = 1 << 4;
const PAGEMAP_PRESENT: u64 = 1 << 63;
const PAGEMAP_PFN_MASK: u64 = (1 << 55) - 1;

fn skipped(test: &str, why: &str) {
    eprintln!("\n**** SKIPPED {test}: {why} ****\n");
}

/// Reads the 8-byte entry `index` of a /proc table.
fn entry(file: &mut File, index: u64) -> Option<u64> {
    let mut bytes = [0u8; 8];
    file.seek(SeekFrom::Start(index.checked_mul(8)?)).ok()?;
    file.read_exact(&mut bytes).ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The kernel's view of mapped memory: whether the page behind an address is dirty.
struct Kernel {
    pagemap: File,
    kpageflags: File,
    page_bytes: u64,
}

impl Kernel {
    /// `None` when the tables cannot be read or hide frame numbers (not root).
    fn open() -> Option<Kernel> {
        let pagemap = File::open("/proc/self/pagemap").ok()?;
        let kpageflags = File::open("/proc/kpageflags").ok()?;
        // SAFETY: `sysconf` reads a system constant; it touches no memory of this process.
        let page_bytes = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        Some(Kernel {
            pagemap,
            kpageflags,
            page_bytes,
        })
    }

    /// `Some(dirty)` for the resident page holding `address`; `None` if it is not resident or
    /// its frame number is hidden.
    fn dirty(&mut self, address: *const u8) -> Option<bool> {
        let mapped = entry(&mut self.pagemap, address as u64 / self.page_bytes)?;
        let frame = mapped & PAGEMAP_PFN_MASK;
        if mapped & PAGEMAP_PRESENT == 0 || frame == 0 {
            return None;
        }
        Some(entry(&mut self.kpageflags, frame)? & KPF_DIRTY != 0)
    }
}

/// The address of the first byte of `id`'s page in `pager`'s map.
fn address(pager: &Pager<P, MmapStorage>, id: PageId<P>) -> *const u8 {
    let offset = usize::try_from(id.raw()).unwrap() * P;
    pager.storage().bytes()[offset..].as_ptr()
}

/// Writes `value` into `id` until the kernel reports its page dirty (background writeback may
/// clean it in between); `false` if it never does, in which case nothing can be concluded.
fn make_dirty(pager: &mut Pager<P, MmapStorage>, kernel: &mut Kernel, id: PageId<P>) -> bool {
    for value in 1..=100u8 {
        id.get_mut(pager).unwrap().as_bytes_mut()[0] = value;
        if kernel.dirty(address(pager, id)) == Some(true) {
            return true;
        }
    }
    false
}

#[test]
fn a_barrier_cleans_exactly_the_pages_it_names() {
    const TEST: &str = "a_barrier_cleans_exactly_the_pages_it_names";
    let Some(mut kernel) = Kernel::open() else {
        return skipped(TEST, "/proc/self/pagemap and /proc/kpageflags need root");
    };
    // The project's own directory is on the machine's disk (a tmpfs never cleans its pages).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut pager = Pager::<P, MmapStorage>::create(dir.path().join("file")).unwrap();
    let ids = pager.alloc_bulk(3).unwrap();
    let (named, unnamed) = (ids[0], ids[2]);
    if !make_dirty(&mut pager, &mut kernel, named) {
        return skipped(
            TEST,
            "the kernel never reported a written page dirty (frames hidden?)",
        );
    }
    assert!(make_dirty(&mut pager, &mut kernel, unnamed));
    pager.sync_page(named).unwrap();
    assert_eq!(
        kernel.dirty(address(&pager, named)),
        Some(false),
        "sync_page returned while its page was still dirty in the page cache"
    );
    // Only a precondition-style check: writeback may have cleaned it, but a barrier over a span
    // would clean it every time.
    if kernel.dirty(address(&pager, unnamed)) == Some(false) {
        eprintln!("note: the unnamed page was cleaned by background writeback; not conclusive");
    } else {
        assert_eq!(kernel.dirty(address(&pager, unnamed)), Some(true));
    }
    // A commit's barriers: the metadata it wrote and the superblock are clean when it returns.
    let before: Vec<u8> = pager.storage().bytes()[..3 * P].to_vec();
    pager.alloc().unwrap();
    let written: Vec<usize> = (0..3)
        .filter(|page| {
            pager.storage().bytes()[page * P..(page + 1) * P] != before[page * P..(page + 1) * P]
        })
        .collect();
    assert!(
        !written.is_empty(),
        "a commit writes the superblock or a metadata copy"
    );
    for page in written {
        let address = pager.storage().bytes()[page * P..].as_ptr();
        assert_eq!(
            kernel.dirty(address),
            Some(false),
            "page {page} that the commit wrote is still dirty after it returned"
        );
    }
    // sync_all cleans everything, the unnamed page included.
    assert!(make_dirty(&mut pager, &mut kernel, unnamed));
    pager.sync_all().unwrap();
    assert_eq!(kernel.dirty(address(&pager, unnamed)), Some(false));
}

/// Linux barriers take one flush (`sync_file_range` then one `msync`) on the file systems where
/// that is known to be durable, and one `msync` per range elsewhere (docs/mmap-barriers.md).
#[test]
fn one_flush_barriers_follow_the_file_system() {
    const TEST: &str = "one_flush_barriers_follow_the_file_system";
    let _serial = mount::serial();
    for (kind, expected) in [
        (mount::Kind::Tmpfs, true),
        (mount::Kind::Ext4, true),
        // ext2 and ext3 share ext4's magic number; their `fsync` flushes the device cache too.
        (mount::Kind::Ext2, true),
        (mount::Kind::Ramfs, false),
    ] {
        let Some(mounted) = mount::mount(TEST, kind, 16 << 20) else {
            return;
        };
        let pager = Pager::<P, MmapStorage>::create(mounted.path().join("file")).unwrap();
        assert_eq!(pager.storage().one_flush_barriers(), expected, "{kind:?}");
    }
}
