//! Large, sparse files of 1 KiB pages for measuring a cold open and `mappedpages check`
//! (BENCHMARKS.md):
//!
//! * `cargo run --release --example sparse_file -- create PATH [PAGES] [KEEP_EVERY]` grows a new
//!   file to PAGES pages (default 2^24, 16 GiB) by allocating every data page in one
//!   `alloc_bulk`, then frees all but every KEEP_EVERY-th of them (default 4096) in one
//!   `free_bulk`: every bitmap group is materialized (its slot pages written), while the data
//!   pages stay holes, because space reservation is turned off and nothing writes them. The file
//!   takes a few MiB on disk.
//! * `cargo run --release --example sparse_file -- open PATH` times `Pager::open` of it.

use std::time::Instant;

use mappedpages::{PageId, Pager};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: sparse_file create PATH [PAGES] [KEEP_EVERY] | sparse_file open PATH";
    let mut args = std::env::args().skip(1);
    let command = args.next().ok_or(usage)?;
    let path = args.next().ok_or(usage)?;
    match command.as_str() {
        "create" => {
            let pages: u64 = args.next().map_or(Ok(1 << 24), |a| a.parse())?;
            let keep_every: usize = args.next().map_or(Ok(4096), |a| a.parse())?;
            create(&path, pages, keep_every)
        }
        "open" => {
            let started = Instant::now();
            let pager = Pager::<1024>::open(&path)?;
            println!(
                "{path}: Pager::open took {:.3} s ({} pages, generation {})",
                started.elapsed().as_secs_f64(),
                pager.page_count(),
                pager.generation()
            );
            Ok(())
        }
        _ => Err(usage.into()),
    }
}

fn create(path: &str, pages: u64, keep_every: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut pager = Pager::<1024>::create(path)?;
    pager.set_space_reservation(false);
    // Every data page of a PAGES-page file (the format's internal pages excluded): one growth,
    // straight to PAGES pages.
    let data_pages = mappedpages::format::Geometry::with_group_table(1024).data_page_count(pages);
    let ids: Vec<PageId<1024>> = pager.alloc_bulk(usize::try_from(data_pages)?)?;
    let freed: Vec<PageId<1024>> = ids
        .iter()
        .enumerate()
        .filter(|(index, _)| index % keep_every.max(1) != 0)
        .map(|(_, &id)| id)
        .collect();
    pager.free_bulk(freed)?;
    println!(
        "{path}: {} pages of 1 KiB, {} allocated, {} free, generation {}",
        pager.page_count(),
        pager.allocated_page_count(),
        pager.free_page_count(),
        pager.generation()
    );
    Ok(())
}
