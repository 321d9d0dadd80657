//! Model conformance: the same workload on `MmapStorage` (a real file) and on `SimStorage` must
//! issue the same sequence of sync ranges and end with the same bytes, so that what crashsim
//! explores on the simulator is what the real backend does.

use std::fs::File;

use crashsim::alloc_model::{Op, bulk_ops, growth_ops, random_ops, single_ops};
use mappedpages::{MmapStorage, PageId, Pager, SimStorage, Storage};

fn run<const P: usize, S: Storage>(pager: &mut Pager<P, S>, ops: &[Op]) {
    let mut owned: Vec<u64> = Vec::new();
    for &op in ops {
        match op {
            Op::Alloc => owned.push(pager.alloc().expect("alloc").raw()),
            Op::AllocBulk(n) => owned.extend(
                pager
                    .alloc_bulk(n)
                    .expect("alloc_bulk")
                    .iter()
                    .map(|id| id.raw()),
            ),
            Op::Free(rank) => {
                if !owned.is_empty() {
                    owned.sort_unstable();
                    let page = owned.remove(rank % owned.len());
                    pager.free(PageId::from_raw(page)).expect("free");
                }
            }
            Op::FreeBulk { start, step, count } => {
                owned.sort_unstable();
                if owned.is_empty() {
                    continue;
                }
                let chosen: Vec<u64> = owned
                    .iter()
                    .copied()
                    .skip(start % owned.len())
                    .step_by(step.max(1))
                    .take(count)
                    .collect();
                owned.retain(|page| !chosen.contains(page));
                pager
                    .free_bulk(chosen.into_iter().map(PageId::from_raw).collect())
                    .expect("free_bulk");
            }
        }
        // Page data goes through the same barrier on both backends.
        if let Some(&page) = owned.last() {
            let id = PageId::<P>::from_raw(page);
            id.get_mut(pager).expect("owned page").as_bytes_mut()[..8]
                .copy_from_slice(&page.to_le_bytes());
            pager.sync_page(id).expect("sync_page");
        }
    }
}

fn conforms<const P: usize>(name: &str, ops: &[Op]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("conformance.bin");
    File::create(&path).expect("empty file");
    let mut storage = MmapStorage::open(&path).expect("open empty file");
    storage.record_syncs();
    let mut mmap = Pager::<P, MmapStorage>::create_in(storage).expect("create on mmap");
    let mut sim = Pager::<P, SimStorage>::create_in(SimStorage::new()).expect("create on sim");
    run(&mut mmap, ops);
    run(&mut sim, ops);

    let sim_syncs = sim.storage().sync_log();
    let mmap_syncs = mmap.storage().sync_log().to_vec();
    assert_eq!(mmap_syncs.len(), sim_syncs.len(), "{name}: number of syncs");
    for (index, (real, simulated)) in mmap_syncs.iter().zip(&sim_syncs).enumerate() {
        assert_eq!(real, simulated, "{name}: ranges of sync {index}");
    }
    let sim_bytes = sim.storage().volatile_image();
    drop(mmap);
    let file_bytes = std::fs::read(&path).expect("read file");
    assert_eq!(file_bytes.len(), sim_bytes.len(), "{name}: file length");
    assert!(file_bytes == sim_bytes, "{name}: final bytes differ");
    println!(
        "{name}: {} syncs, {} bytes identical",
        sim_syncs.len(),
        file_bytes.len()
    );
}

#[test]
fn mmap_and_sim_issue_the_same_syncs_and_end_with_the_same_bytes() {
    conforms::<1024>("single", &single_ops());
    conforms::<1024>("bulk", &bulk_ops());
    conforms::<1024>("growth", &growth_ops());
    conforms::<4096>("growth-4k", &growth_ops());
    conforms::<1024>("mix-7", &random_ops(7, 80));
}
