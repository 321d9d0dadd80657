//! What the device does per durable new record: `alloc_with` in single-sync mode into new file
//! space and into pages written before, against the bare `msync` of one page, counted from
//! `/proc/diskstats` (write requests, sectors written, flush requests) over N operations of one
//! contender at a time. Linux only; the counts include whatever else the device did meanwhile,
//! so run it on an idle machine.
//!
//! ```sh
//! cargo run --release -p mappedpages-bench --example record_diskstats -- /work/bench-dir vda 500
//! ```
//!
//! `DIAG_ONLY=<text>` runs only the cases whose name contains `<text>` (to trace one case).

use std::path::{Path, PathBuf};
use std::time::Instant;

use mappedpages::{CommitMode, Pager};

type Ours = Pager<4096>;

/// Write requests, sectors written and flush requests completed so far on `device`.
fn disk_counts(device: &str) -> [u64; 3] {
    let text = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(2) == Some(&device) && fields.len() >= 20 {
            let number = |index: usize| fields[index].parse().unwrap_or(0);
            return [number(7), number(9), number(18)];
        }
    }
    [0; 3]
}

fn report(name: &str, device: &str, ops: usize, run: &mut dyn FnMut(usize)) {
    if let Ok(only) = std::env::var("DIAG_ONLY")
        && !name.contains(&only)
    {
        return;
    }
    let before = disk_counts(device);
    let start = Instant::now();
    for index in 0..ops {
        run(index);
    }
    let elapsed = start.elapsed();
    let after = disk_counts(device);
    let per_op = |i: usize| (after[i] - before[i]) as f64 / ops as f64;
    println!(
        "{name:<44} {:>8.1} µs/op  writes {:>5.2}/op  KiB {:>6.1}/op  flushes {:>5.2}/op",
        elapsed.as_secs_f64() * 1e6 / ops as f64,
        per_op(0),
        per_op(1) / 2.0,
        per_op(2)
    );
}

/// The file's length by `statx` asking for the size only.
fn statx_size(file: &std::fs::File) -> u64 {
    // SAFETY: `statx` writes into the zeroed buffer it is given; the path is an empty C string
    // and the descriptor is open for the whole call.
    unsafe {
        let mut buffer: libc::statx = std::mem::zeroed();
        let rc = libc::statx(
            std::os::fd::AsRawFd::as_raw_fd(file),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_SIZE,
            &mut buffer,
        );
        assert_eq!(rc, 0, "statx");
        buffer.stx_size
    }
}

/// Something done with the file before each change: returns a number to keep it.
type Look = dyn Fn(&std::fs::File) -> u64;

/// A new, empty file at `path`, open for reading and writing.
fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("/tmp", String::as_str));
    let device = args.get(2).cloned().unwrap_or_else(|| "vda".to_string());
    let ops: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(500);

    // The bare msync: one byte of a page of a written 16-page file.
    let path = fresh(&dir, "diag-msync");
    let file = create_file(&path)?;
    file.set_len(16 * 4096)?;
    // SAFETY: a private file of this program; nothing else maps or truncates it.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file)? };
    map.fill(1);
    map.flush()?;
    // Plain; with an `fstat` of the file before each change (what the pager's length check
    // did: with multigrain timestamps a queried mtime makes the next change of it visible); with
    // `statx(STATX_SIZE)`, the length only, no timestamp asked for.
    let looks: [(&str, &Look); 3] = [
        ("", &|_| 0),
        (" + fstat", &|file| file.metadata().expect("fstat").len()),
        (" + statx size", &statx_size),
    ];
    for (suffix, look) in looks {
        let name = format!("bare msync of one written page{suffix}");
        report(&name, &device, ops, &mut |i| {
            let offset = (i % 16) * 4096;
            std::hint::black_box(look(&file));
            map[offset] = map[offset].wrapping_add(1);
            map.flush_range(offset, 4096).expect("msync");
        });
    }
    drop(map);
    std::fs::remove_file(&path)?;

    // The bare msync of a page never written before: page i of a sparse (or fallocated) file of
    // `ops` pages, each written once.
    for fallocated in [false, true] {
        let path = fresh(&dir, "diag-msync-new");
        let file = create_file(&path)?;
        file.set_len((ops * 4096) as u64)?;
        if fallocated {
            // SAFETY: plain syscall on a descriptor this function owns.
            let rc = unsafe {
                libc::fallocate(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    0,
                    0,
                    (ops * 4096) as i64,
                )
            };
            assert_eq!(rc, 0, "fallocate");
        }
        file.sync_all()?;
        // SAFETY: as above.
        let mut map = unsafe { memmap2::MmapMut::map_mut(&file)? };
        let name = if fallocated {
            "bare msync of a new page (fallocated)"
        } else {
            "bare msync of a new page (sparse)"
        };
        report(name, &device, ops, &mut |i| {
            let offset = i * 4096;
            map[offset..offset + 4096].fill(i as u8 | 1);
            map.flush_range(offset, 4096).expect("msync");
        });
        drop(map);
        std::fs::remove_file(&path)?;
    }

    for reservation in [true, false] {
        for reuse in [false, true] {
            let path = fresh(&dir, "diag-pager");
            let mut pager = Ours::create(&path)?;
            pager.set_commit_mode(CommitMode::SingleSync);
            pager.set_space_reservation(reservation);
            if reuse {
                let ids = pager.alloc_bulk_with(ops, |_, page| page.as_bytes_mut().fill(1))?;
                pager.sync_all()?;
                pager.free_bulk(ids)?;
            }
            let name = format!(
                "alloc_with single-sync, {}, reserve {}",
                if reuse { "reused pages" } else { "new space" },
                if reservation { "on" } else { "off" }
            );
            report(&name, &device, ops, &mut |i| {
                pager
                    .alloc_with(|page| page.as_bytes_mut().fill(i as u8))
                    .expect("alloc_with");
            });
            drop(pager);
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
