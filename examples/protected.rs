//! Protected pages and sub-pages on a real file: `cargo run --example protected`.

use mappedpages::{MappedPageError, Pager, ProtectedPageId, SubPageAllocator, SubPageId};

fn main() -> Result<(), MappedPageError> {
    let path =
        std::env::temp_dir().join(format!("mappedpages-protected-{}.bin", std::process::id()));
    let mut pager = Pager::<4096>::create(&path)?;

    // A protected page changes atomically: after a crash it reads as the old or the new
    // content, never a mix. It starts as zeros.
    let root = pager.alloc_protected()?;
    let mut writer = root.get_mut(&mut pager)?; // starts from the committed content
    writer.page_mut().as_bytes_mut()[..8].copy_from_slice(&42u64.to_le_bytes());
    writer.commit()?; // two syncs; durable once it returns

    // A partial update keeps every other byte; dropping a writer discards its changes.
    let mut writer = root.get_mut(&mut pager)?;
    writer.page_mut().as_bytes_mut()[8..16].copy_from_slice(&7u64.to_le_bytes());
    writer.commit()?;
    {
        let mut writer = root.get_mut(&mut pager)?;
        writer.page_mut().as_bytes_mut().fill(0xFF);
    } // dropped without commit: the staged bytes are discarded

    // Sub-pages: up to 64 per page, tracked in memory. Keep the ids you hand out...
    let mut small = SubPageAllocator::<4096, 256>::new(pager);
    let note = small.alloc()?;
    note.get_mut(&mut small)?.as_bytes_mut()[..4].copy_from_slice(b"note");
    small.sync_parent(note)?;
    let owned: Vec<u64> = small.iter_allocated().map(|id| id.raw()).collect();
    let root_raw = root.raw();
    drop(small); // closes the file

    // ...and rebuild the sub-page allocator from them after a restart.
    let pager = Pager::<4096>::open(&path)?;
    let root = ProtectedPageId::<4096>::from_raw(root_raw);
    let bytes = root.get(&pager)?.as_bytes();
    assert_eq!(&bytes[..8], &42u64.to_le_bytes());
    assert_eq!(&bytes[8..16], &7u64.to_le_bytes());
    assert!(bytes[16..].iter().all(|&b| b == 0));
    let small =
        SubPageAllocator::<4096, 256>::rebuild(pager, owned.into_iter().map(SubPageId::from_raw))?;
    assert_eq!(&note.get(&small)?.as_bytes()[..4], b"note");
    println!(
        "protected page {} holds 42 and 7; sub-page {} holds \"note\"",
        root.raw(),
        note.raw()
    );

    drop(small);
    std::fs::remove_file(&path).ok();
    Ok(())
}
