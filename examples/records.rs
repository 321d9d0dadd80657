//! Durable records in one device flush each, on a real file: `cargo run --example records`.
//!
//! `alloc_with` fills a new page before its commit; the commit's barrier makes the bytes durable
//! together with the allocation (SPEC.md §3.6.1). In single-sync mode that is one flush per
//! record; after any crash a record's page is free or holds exactly its bytes.

use mappedpages::{CommitMode, MappedPageError, PageId, Pager};

fn main() -> Result<(), MappedPageError> {
    let path = std::env::temp_dir().join(format!("mappedpages-records-{}.bin", std::process::id()));
    let mut pager = Pager::<4096>::create(&path)?;
    pager.set_commit_mode(CommitMode::SingleSync);

    let barriers_before = pager.storage().stats().barriers;
    let mut ids: Vec<PageId<4096>> = Vec::new();
    for n in 0..10u64 {
        let id = pager.alloc_with(|page| {
            let bytes = page.as_bytes_mut();
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            bytes[8..14].copy_from_slice(b"record");
        })?;
        ids.push(id); // durable, with its bytes, once alloc_with returned
    }
    // Many records in one commit.
    ids.extend(pager.alloc_bulk_with(5, |index, page| {
        page.as_bytes_mut()[..8].copy_from_slice(&(100 + index as u64).to_le_bytes());
    })?);
    let barriers = pager.storage().stats().barriers - barriers_before;
    assert_eq!(barriers, 11, "one barrier per call");
    println!("15 records durable in {barriers} barriers (one per call)");

    // A record changed in place rides along with the next commit (SPEC.md §3.6.2): the change
    // and a new record, one barrier.
    ids[0].get_mut(&mut pager)?.as_bytes_mut()[8..14].copy_from_slice(b"RECORD");
    pager.attach_to_next_commit(ids[0])?;
    let barriers_before = pager.storage().stats().barriers;
    ids.push(
        pager.alloc_with(|page| page.as_bytes_mut()[..8].copy_from_slice(&7u64.to_le_bytes()))?,
    );
    assert_eq!(pager.storage().stats().barriers - barriers_before, 1);
    println!("a changed record and a new one durable in one barrier");
    drop(pager);

    let pager = Pager::<4096>::open(&path)?;
    for (n, id) in ids.iter().enumerate() {
        let bytes = id.get(&pager)?.as_bytes();
        let value = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let expected = match n {
            0..10 => n as u64,
            10..15 => 100 + n as u64 - 10,
            _ => 7,
        };
        assert_eq!(value, expected);
    }
    assert_eq!(&ids[0].get(&pager)?.as_bytes()[8..14], b"RECORD");
    println!("reopened: every record reads back");
    drop(pager);
    std::fs::remove_file(&path).ok();
    Ok(())
}
