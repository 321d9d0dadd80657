//! Model conformance: the same workload on `MmapStorage` (a real file) and on `SimStorage` must
//! issue the same sequence of sync ranges and end with the same bytes, so that what crashsim
//! explores on the simulator is what the real backend does (allocation and protected-page
//! workloads alike).

use std::fs::File;

use crashsim::alloc_model::{Op, bulk_ops, growth_ops, random_ops, single_ops};
use crashsim::protected_model::{
    DISCARDED_BYTES, ProtectedOp, protected_ops, random_protected_ops,
};
use mappedpages::{MmapStorage, PageId, Pager, ProtectedPageId, SimStorage, Storage};

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

/// Runs a protected workload (ranks resolved as `ProtectedScenario` does).
fn run_protected<const P: usize, S: Storage>(pager: &mut Pager<P, S>, ops: &[ProtectedOp]) {
    let nth = |ids: Vec<u64>, rank: usize| ids.get(rank % ids.len().max(1)).copied();
    for &op in ops {
        let regular: Vec<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
        let protected: Vec<u64> = pager
            .iter_allocated_protected_pages()
            .map(|id| id.raw())
            .collect();
        match op {
            ProtectedOp::Alloc => {
                pager.alloc().expect("alloc");
            }
            ProtectedOp::Free(rank) => {
                if let Some(page) = nth(regular, rank) {
                    pager.free(PageId::from_raw(page)).expect("free");
                }
            }
            ProtectedOp::AllocProtected => {
                pager.alloc_protected().expect("alloc_protected");
            }
            ProtectedOp::AllocProtectedBulk(n) => {
                pager.alloc_protected_bulk(n).expect("alloc_protected_bulk");
            }
            ProtectedOp::Write {
                rank,
                offset,
                len,
                value,
            } => {
                if let Some(id) = nth(protected, rank) {
                    let offset = offset % P;
                    let len = len.min(P - offset);
                    let mut writer = ProtectedPageId::<P>::from_raw(id)
                        .get_mut(pager)
                        .expect("get_mut");
                    writer.page_mut().as_bytes_mut()[offset..offset + len].fill(value);
                    writer.commit().expect("commit");
                }
            }
            ProtectedOp::WriteDiscarded {
                rank,
                offset,
                value,
            } => {
                if let Some(id) = nth(protected, rank) {
                    let offset = offset % P;
                    let end = (offset + DISCARDED_BYTES).min(P);
                    let mut writer = ProtectedPageId::<P>::from_raw(id)
                        .get_mut(pager)
                        .expect("get_mut");
                    writer.page_mut().as_bytes_mut()[offset..end].fill(value);
                }
            }
            ProtectedOp::FreeProtected(rank) => {
                if let Some(id) = nth(protected, rank) {
                    pager
                        .free_protected(ProtectedPageId::from_raw(id))
                        .expect("free_protected");
                }
            }
            ProtectedOp::FreeProtectedBulk { start, step, count } => {
                let chosen: Vec<ProtectedPageId<P>> = protected
                    .iter()
                    .copied()
                    .skip(start % protected.len().max(1))
                    .step_by(step.max(1))
                    .take(count)
                    .map(ProtectedPageId::from_raw)
                    .collect();
                pager
                    .free_protected_bulk(chosen)
                    .expect("free_protected_bulk");
            }
        }
    }
}

/// Runs the same workload on a real file (`on_mmap`) and on the simulator (`on_sim`) and compares
/// their sync ranges and final bytes.
fn conforms_with<const P: usize>(
    name: &str,
    on_mmap: impl FnOnce(&mut Pager<P, MmapStorage>),
    on_sim: impl FnOnce(&mut Pager<P, SimStorage>),
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("conformance.bin");
    File::create(&path).expect("empty file");
    let mut storage = MmapStorage::open(&path).expect("open empty file");
    storage.record_syncs();
    let mut mmap = Pager::<P, MmapStorage>::create_in(storage).expect("create on mmap");
    let mut sim = Pager::<P, SimStorage>::create_in(SimStorage::new()).expect("create on sim");
    on_mmap(&mut mmap);
    on_sim(&mut sim);
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

fn conforms<const P: usize>(name: &str, ops: &[Op]) {
    conforms_with::<P>(name, |pager| run(pager, ops), |pager| run(pager, ops));
}

fn conforms_protected<const P: usize>(name: &str, ops: &[ProtectedOp]) {
    conforms_with::<P>(
        name,
        |pager| run_protected(pager, ops),
        |pager| run_protected(pager, ops),
    );
}

#[test]
fn mmap_and_sim_issue_the_same_syncs_and_end_with_the_same_bytes() {
    conforms::<1024>("single", &single_ops());
    conforms::<1024>("bulk", &bulk_ops());
    conforms::<1024>("growth", &growth_ops());
    conforms::<4096>("growth-4k", &growth_ops());
    conforms::<1024>("mix-7", &random_ops(7, 80));
    conforms_protected::<1024>("protected", &protected_ops(1024));
    conforms_protected::<4096>("protected-4k", &protected_ops(4096));
    conforms_protected::<1024>("pmix-7", &random_protected_ops(7, 60));
}
