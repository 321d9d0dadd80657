//! (This crate alone; issue 15.) `free` of a random page and `alloc` in a full file of 2^10,
//! 2^20, 2^24 and 2^28 pages of 1 KiB, on tmpfs: the CPU cost of allocation as the file grows,
//! as ratios to the 2^10 file measured in the same run.
//!
//! Every data page is allocated, so before each `alloc` exactly one page is free (the one just
//! freed) somewhere in the file: the worst case for a next-fit search, which starts where the
//! last allocation ended. Each measured operation is the pair `free` + `alloc`, two durable
//! single-page commits. The files are built, and measured, with space reservation off
//! (`Pager::set_space_reservation(false)`): on tmpfs a reservation allocates memory, up to 1 MiB
//! per allocation, and the reservation is not what this row measures. The 2^28-page file (256
//! GiB, sparse) runs only outside `--quick` and where such a sparse file fits.

use std::path::{Path, PathBuf};

use mappedpages::{PageId, Pager};

use crate::measure::{BenchResult, Row, Series, SplitMix64, Unit, alternate_runs, interleave_ops};
use crate::rows::durable::describe_dir;
use crate::rows::scale::sparse_file_fits;
use crate::rows::{Ctx, remove};

const PAGE_SIZE: usize = 1024;
type Small = Pager<PAGE_SIZE>;

/// Data pages of a file of `page_count` pages (SPEC.md §2.1).
pub fn data_pages_for(page_count: u64) -> u64 {
    let group_page_count = (PAGE_SIZE as u64 - 32) * 8;
    let group_count = page_count.div_ceil(group_page_count);
    page_count - 5 - 2 * (group_count - 1)
}

/// Allocates `count` pages in bulk commits of at most 2^24 pages (ids dropped).
fn alloc_chunked(pager: &mut Small, mut count: u64) -> BenchResult<()> {
    while count > 0 {
        let chunk = count.min(1 << 24);
        drop(pager.alloc_bulk(usize::try_from(chunk)?)?);
        count -= chunk;
    }
    Ok(())
}

/// A file of about `page_count` pages with every data page allocated, reservation off. One
/// bulk allocation grows a file to exactly the pages it needs; a larger file is built in chunks,
/// whose growth steps may leave it somewhat longer (its free tail is then allocated too).
pub fn build_full(path: &Path, page_count: u64) -> BenchResult<Small> {
    let mut pager = Small::create(path)?;
    pager.set_space_reservation(false);
    alloc_chunked(&mut pager, data_pages_for(page_count))?;
    let free = pager.free_page_count();
    alloc_chunked(&mut pager, free)?;
    Ok(pager)
}

/// One file of the row and the generator that picks its victims.
struct Full {
    pager: Small,
    path: PathBuf,
    rng: SplitMix64,
}

impl Full {
    /// Frees a random allocated page, then allocates one (which finds that page).
    fn free_then_alloc(&mut self) -> BenchResult<()> {
        let page_count = self.pager.page_count();
        let victim = loop {
            let id = PageId::<PAGE_SIZE>::from_raw(self.rng.below(page_count));
            if self.pager.is_allocated(id) {
                break id;
            }
        };
        self.pager.free(victim)?;
        let id = self.pager.alloc()?;
        if id != victim {
            return Err(
                format!("alloc found page {} instead of {}", id.raw(), victim.raw()).into(),
            );
        }
        Ok(())
    }
}

/// Rows: `free` + `alloc` in full files of 2^10 … 2^28 pages, ratios to 2^10 in the notes.
pub fn alloc_scale(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let dir = ctx.mem_dir.clone().unwrap_or_else(|| ctx.disk_dir.clone());
    let mut exponents = vec![10u32, 20, 24];
    if !ctx.quick && sparse_file_fits(&dir, (1 << 28) * PAGE_SIZE as u64) {
        exponents.push(28);
    }
    let mut files = Vec::new();
    for &exponent in &exponents {
        let path = ctx.fresh_path(&dir, &format!("ours-alloc-scale-{exponent}"));
        eprintln!("  alloc-scale: building a full file of 2^{exponent} pages of 1 KiB");
        let pager = build_full(&path, 1 << exponent)?;
        files.push(Full {
            pager,
            path,
            rng: SplitMix64::new(u64::from(exponent)),
        });
    }
    let pair_count = ctx.size(400, 60);
    let mut round = |_: &mut Ctx| -> BenchResult<Vec<_>> {
        let mut ops: Vec<Box<dyn FnMut(usize) -> BenchResult<()> + '_>> = files
            .iter_mut()
            .map(|file| {
                Box::new(move |_: usize| file.free_then_alloc())
                    as Box<dyn FnMut(usize) -> BenchResult<()>>
            })
            .collect();
        let mut refs: Vec<&mut dyn FnMut(usize) -> BenchResult<()>> =
            ops.iter_mut().map(|op| op.as_mut() as _).collect();
        interleave_ops(pair_count, 20, &mut refs)
    };
    let repetitions = ctx.repetitions;
    let series = alternate_runs(ctx, repetitions, "alloc-scale", &mut [&mut round])?
        .pop()
        .unwrap_or_default();
    let page_counts: Vec<u64> = files.iter().map(|file| file.pager.page_count()).collect();
    for file in files {
        let Full { pager, path, .. } = file;
        drop(pager);
        remove(&path)?;
    }
    let base = series
        .first()
        .map(|s| s.median(Unit::TimePerOp))
        .unwrap_or(f64::NAN);
    Ok(exponents
        .iter()
        .zip(&series)
        .zip(&page_counts)
        .map(|((exponent, series), page_count)| {
            alloc_row(*exponent, series, base, *page_count, pair_count, &dir)
        })
        .collect())
}

fn alloc_row(
    exponent: u32,
    series: &Series,
    base_ns: f64,
    page_count: u64,
    pair_count: usize,
    dir: &Path,
) -> Row {
    let ratio = series.median(Unit::TimePerOp) / base_ns;
    Row::new(
        &format!("alloc-scale-2^{exponent}"),
        &format!("free(random) + alloc in a full file of 2^{exponent} pages (ours alone)"),
        Unit::TimePerOp,
    )
    .with_ours(series.clone())
    .with_note(format!(
        "time ratio to 2^10, same run = {ratio:.2}; {page_count} pages of 1 KiB, all allocated; \
         {pair_count} pairs per sample, the files interleaved in batches of 20; reservation off; \
         {}",
        describe_dir(dir)
    ))
}
