//! Quick start: create a pager file, allocate and write pages, reopen it, and read them back.
//!
//! Run with `cargo run --example quickstart`.

use mappedpages::{MappedPageError, PageId, Pager};

const PAGE_SIZE: usize = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fresh directory that is removed when `dir` is dropped.
    let dir = tempfile::Builder::new()
        .prefix(&format!("mappedpages-quickstart-{}-", std::process::id()))
        .tempdir()?;
    let path = dir.path().join("pages.bin");

    // ----- first session: create, allocate, write, sync, free -----------------------------------
    let (kept, freed) = {
        let mut pager = Pager::<PAGE_SIZE>::create(&path)?;
        println!("created {}", path.display());
        println!(
            "  page size {} bytes, {} pages in the file, {} allocated",
            pager.page_size(),
            pager.page_count(),
            pager.allocated_page_count()
        );

        // Each `alloc` is one crash-safe commit: once it returns Ok, the allocation is durable.
        let ids: Vec<PageId<PAGE_SIZE>> =
            (0..3).map(|_| pager.alloc()).collect::<Result<_, _>>()?;
        for (n, &id) in ids.iter().enumerate() {
            let text = format!("hello from page {} (#{n})", id.raw());
            id.get_mut(&mut pager)?.as_bytes_mut()[..text.len()].copy_from_slice(text.as_bytes());
            // Page contents become durable when sync_page (or sync_all) returns.
            pager.sync_page(id)?;
            println!("  allocated page {} and wrote {text:?}", id.raw());
        }

        // Free the middle page; this is another crash-safe commit.
        let freed = ids[1];
        pager.free(freed)?;
        println!("  freed page {}", freed.raw());

        println!(
            "  now {} allocated, {} free, generation {}",
            pager.allocated_page_count(),
            pager.free_page_count(),
            pager.generation()
        );
        (vec![ids[0], ids[2]], freed)
        // `pager` is dropped here, which releases the file lock.
    };

    // ----- second session: reopen and look at what survived ------------------------------------
    let pager = Pager::<PAGE_SIZE>::open(&path)?;
    println!("reopened {}", path.display());
    println!(
        "  {} pages in the file, {} allocated",
        pager.page_count(),
        pager.allocated_page_count()
    );

    let listed: Vec<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    println!("  allocated pages: {listed:?}");
    assert_eq!(listed, kept.iter().map(|id| id.raw()).collect::<Vec<_>>());

    for id in pager.iter_allocated_pages() {
        let bytes = id.get(&pager)?.as_bytes();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        println!(
            "  page {}: {:?}",
            id.raw(),
            String::from_utf8_lossy(&bytes[..end])
        );
    }

    // The freed page is gone: reading it is an error, not stale data.
    match freed.get(&pager) {
        Err(MappedPageError::NotAllocated { page }) => {
            println!("  page {page} is not allocated (it was freed)")
        }
        other => return Err(format!("expected NotAllocated, got {other:?}").into()),
    }

    println!("done");
    Ok(())
}
