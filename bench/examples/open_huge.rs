//! One-off measurement of issue 15 at a size the table does not run: builds (once) a file of
//! 2^EXPONENT pages of 1 KiB with every data page allocated (space reservation off, so the file
//! stays sparse: only the metadata and the bitmap slot pages are written), then opens it four
//! times, cold (page cache dropped: needs root) and warm in turn, printing the time and the
//! memory of the process after each open.
//!
//! ```sh
//! cargo run --release -p mappedpages-bench --example open_huge -- /path/on/disk/f32.bin 32
//! ```
//!
//! At 2^32 pages the file is 4 TiB long (sparse: about 1.1 GiB written), the build takes some
//! minutes and the open holds the 512 MiB bitmap.

use std::error::Error;
use std::path::Path;
use std::time::Instant;

use mappedpages::Pager;

/// VmRSS, RssAnon and RssFile from /proc/self/status.
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|line| {
            ["VmRSS", "RssAnon", "RssFile"]
                .iter()
                .any(|key| line.starts_with(key))
        })
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn build(path: &Path, exponent: u32) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let mut pager = Pager::<1024>::create(path)?;
    pager.set_space_reservation(false);
    let group_pages = (1024u64 - 32) * 8;
    let page_count = 1u64 << exponent;
    let mut left = page_count - 5 - 2 * (page_count.div_ceil(group_pages) - 1);
    while left > 0 {
        let chunk = left.min(1 << 24);
        drop(pager.alloc_bulk(usize::try_from(chunk)?)?);
        left -= chunk;
    }
    let free = pager.free_page_count();
    if free > 0 {
        drop(pager.alloc_bulk(usize::try_from(free)?)?);
    }
    println!(
        "built {} pages in {:.1} s",
        pager.page_count(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(exponent)) = (args.next(), args.next()) else {
        return Err("usage: open_huge PATH EXPONENT (the file has 2^EXPONENT pages)".into());
    };
    let path = Path::new(&path);
    let exponent: u32 = exponent.parse()?;
    if !path.exists() {
        build(path, exponent)?;
    }
    for round in 0..4 {
        let cold = round % 2 == 0;
        if cold {
            // SAFETY: sync(2) takes no arguments and cannot fail.
            unsafe { libc::sync() };
            std::fs::write("/proc/sys/vm/drop_caches", "3")
                .map_err(|error| format!("dropping the page cache (root needed): {error}"))?;
        }
        let before = memory();
        let started = Instant::now();
        let pager = Pager::<1024>::open(path)?;
        let elapsed = started.elapsed();
        println!(
            "{} open: {:.3} s, {} pages, load {}; memory before: {before}; after: {}",
            if cold { "cold" } else { "warm" },
            elapsed.as_secs_f64(),
            pager.page_count(),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or("?"),
            memory()
        );
    }
    Ok(())
}
