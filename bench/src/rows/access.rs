//! Page read and write throughput through `get` / `get_mut`, next to a plain memcpy of the same
//! number of bytes, in the same 4 KiB pieces, from and to a plain memmap2 mapping of a file of the
//! same size in the same directory (the limit: the same kind of memory, no API in between).

use std::hint::black_box;

use mappedpages::PageId;

use crate::measure::{BenchResult, Probe, Row, Sample, Unit, alternate_runs};
use crate::rows::durable::describe_dir;
use crate::rows::{Ctx, OursMode, PAGE_SIZE_BYTES, Theirs, create_ours, remove};

/// One read pass and one write pass over `page_count` pages, `pass_count` times each; returns
/// [read sample, write sample].
fn passes(
    page_count: usize,
    pass_count: usize,
    mut read_page: impl FnMut(usize, &mut [u8; PAGE_SIZE_BYTES]) -> BenchResult<()>,
    mut write_page: impl FnMut(usize, &[u8; PAGE_SIZE_BYTES]) -> BenchResult<()>,
) -> BenchResult<Vec<Sample>> {
    let bytes_per_pass = (page_count * PAGE_SIZE_BYTES) as u64;
    let mut sink = [0u8; PAGE_SIZE_BYTES];
    let probe = Probe::start();
    for _ in 0..pass_count {
        for index in 0..page_count {
            read_page(index, &mut sink)?;
            black_box(&mut sink);
        }
    }
    let mut read_sample = probe.stop((pass_count * page_count) as u64);
    read_sample.bytes_moved = bytes_per_pass * pass_count as u64;

    let mut source = [0u8; PAGE_SIZE_BYTES];
    let probe = Probe::start();
    for pass in 0..pass_count {
        source[0] = pass as u8;
        for index in 0..page_count {
            write_page(index, black_box(&source))?;
        }
    }
    let mut write_sample = probe.stop((pass_count * page_count) as u64);
    write_sample.bytes_moved = bytes_per_pass * pass_count as u64;
    Ok(vec![read_sample, write_sample])
}

/// Rows: read throughput, write throughput (ours vs theirs), and the two memcpy limits.
pub fn page_access(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    // 62.5 MiB: about twice this machine's L3, and within 0.2.0's 16,381-page capacity.
    let page_count = 16_000;
    let pass_count = ctx.size(16, 2);
    let dir = ctx.disk_dir.clone();

    let ours_path = ctx.fresh_path(&dir, "ours-access");
    let mut ours_pager = create_ours(&ours_path, OursMode::Flip)?;
    let ours_ids: Vec<PageId<PAGE_SIZE_BYTES>> = ours_pager.alloc_bulk(page_count)?;
    let theirs_path = ctx.fresh_path(&dir, "theirs-access");
    let mut theirs_pager = Theirs::create(&theirs_path)?;
    let theirs_ids = theirs_pager.alloc_bulk(page_count)?;
    // The limit: the same number of bytes in a plain memmap2 mapping of a file of the same size
    // in the same directory, copied with no API in between.
    let plain_path = ctx.fresh_path(&dir, "limit-access");
    let plain_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&plain_path)?;
    plain_file.set_len((page_count * PAGE_SIZE_BYTES) as u64)?;
    // SAFETY: the file was just created in the harness's private directory; nothing else maps or
    // truncates it while this map is alive.
    let mut plain = unsafe { memmap2::MmapMut::map_mut(&plain_file)? };

    let mut ours = |_: &mut Ctx| -> BenchResult<Vec<Sample>> {
        // `passes` needs the pager in both closures; run the two passes through one RefCell.
        let pager = std::cell::RefCell::new(&mut ours_pager);
        passes(
            page_count,
            pass_count,
            |index, sink| {
                sink.copy_from_slice(ours_ids[index].get(&**pager.borrow())?.as_bytes());
                Ok(())
            },
            |index, source| {
                ours_ids[index]
                    .get_mut(&mut **pager.borrow_mut())?
                    .as_bytes_mut()
                    .copy_from_slice(source);
                Ok(())
            },
        )
    };
    let mut theirs = |_: &mut Ctx| -> BenchResult<Vec<Sample>> {
        let pager = std::cell::RefCell::new(&mut theirs_pager);
        passes(
            page_count,
            pass_count,
            |index, sink| {
                sink.copy_from_slice(theirs_ids[index].get(&**pager.borrow())?.as_bytes());
                Ok(())
            },
            |index, source| {
                theirs_ids[index]
                    .get_mut(&mut **pager.borrow_mut())?
                    .as_bytes_mut()
                    .copy_from_slice(source);
                Ok(())
            },
        )
    };
    let mut limit = |_: &mut Ctx| -> BenchResult<Vec<Sample>> {
        let buffer = std::cell::RefCell::new(&mut plain);
        passes(
            page_count,
            pass_count,
            |index, sink| {
                let start = index * PAGE_SIZE_BYTES;
                sink.copy_from_slice(&buffer.borrow()[start..start + PAGE_SIZE_BYTES]);
                Ok(())
            },
            |index, source| {
                let start = index * PAGE_SIZE_BYTES;
                buffer.borrow_mut()[start..start + PAGE_SIZE_BYTES].copy_from_slice(source);
                Ok(())
            },
        )
    };
    // The discarded warm-up round of `alternate_runs` faults every page in, for all three.
    let repetitions = ctx.repetitions;
    let mut series = alternate_runs(
        ctx,
        repetitions,
        "page-access",
        &mut [&mut ours, &mut theirs, &mut limit],
    )?;
    drop(ours_pager);
    drop(theirs_pager);
    drop(plain);
    drop(plain_file);
    remove(&ours_path)?;
    remove(&theirs_path)?;
    remove(&plain_path)?;

    let mut limit_series = series.pop().unwrap_or_default().into_iter();
    let mut theirs_series = series.pop().unwrap_or_default().into_iter();
    let mut ours_series = series.pop().unwrap_or_default().into_iter();
    let mut rows = Vec::new();
    let mut limit_rows = Vec::new();
    for (name, label) in [
        ("read", "page read via get (copy 4 KiB out)"),
        ("write", "page write via get_mut (copy 4 KiB in)"),
    ] {
        let (Some(ours_metric), Some(theirs_metric), Some(limit_metric)) = (
            ours_series.next(),
            theirs_series.next(),
            limit_series.next(),
        ) else {
            return Err("page-access run returned too few samples".into());
        };
        let limit_bytes_per_second = limit_metric.median(Unit::Throughput);
        let ours_share = ours_metric.median(Unit::Throughput) / limit_bytes_per_second * 100.0;
        let theirs_share = theirs_metric.median(Unit::Throughput) / limit_bytes_per_second * 100.0;
        rows.push(
            Row::new(&format!("page-{name}"), label, Unit::Throughput)
                .with_ours(ours_metric)
                .with_theirs(theirs_metric)
                .with_note(format!(
                    "{page_count} mapped pages (62.5 MiB), {pass_count} passes, warm; \
                     ours {ours_share:.0}% / theirs {theirs_share:.0}% of the memcpy limit; {}",
                    describe_dir(&dir)
                )),
        );
        limit_rows.push(
            Row::new(
                &format!("limit-memcpy-{name}"),
                &format!("reference: plain memcpy, same bytes ({name} pattern)"),
                Unit::Throughput,
            )
            .with_ours(limit_metric)
            .with_note("memmap2 map of a 62.5 MiB file in the same directory, copied in the same 4 KiB pieces: the limit"),
        );
    }
    rows.extend(limit_rows);
    Ok(rows)
}
