//! A durable new 4 KiB record (issue 16, item 2): `alloc_with` (the record written before the
//! commit, durable in its barrier) against `alloc` + write + `sync_page`, in both commit modes,
//! against the bare `msync` of one page and redb, interleaved op by op in one directory.
//!
//! Every contender makes one new 4 KiB record durable per operation and returns only then: the
//! physical limit dirties one page of a mapped file and `msync`s it; redb inserts a 4 KiB value in
//! one write transaction (default durability); ours allocate a page for it. Each row reports its
//! time per record as a ratio to the bare `msync` of the same repetition.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use redb::{Database, TableDefinition};

use crate::measure::{BenchResult, Row, Sample, Series, Unit, alternate_runs, interleave_ops};
use crate::rows::barrier::ratio_to_msync;
use crate::rows::durable::describe_dir;
use crate::rows::reference::PhysicalLimit;
use crate::rows::{Ctx, Ours, OursMode, PAGE_SIZE_BYTES, add_ours_stats, create_ours, remove};

/// Key of the bare-msync row of this group, the denominator of every ratio.
const MSYNC_KEY: &str = "record-msync";

/// Key of the bare msync of a page never written before (new file space): what a durable write
/// of new file space costs the file system at least (block allocation and its metadata).
const NEW_PAGE_MSYNC_KEY: &str = "record-msync-new-page";

/// The target: a durable new record with `alloc_with` in single-sync mode.
const TARGET: f64 = 1.1;

/// How a contender of ours makes a record durable.
#[derive(Clone, Copy)]
struct Contender {
    mode: OursMode,
    /// `alloc_with`; else `alloc` + write + `sync_page`.
    filled: bool,
}

impl Contender {
    const ALL: [Contender; 4] = [
        Contender {
            mode: OursMode::SingleSync,
            filled: true,
        },
        Contender {
            mode: OursMode::SingleSync,
            filled: false,
        },
        Contender {
            mode: OursMode::Flip,
            filled: true,
        },
        Contender {
            mode: OursMode::Flip,
            filled: false,
        },
    ];

    fn key(self) -> String {
        let how = if self.filled {
            "alloc-with"
        } else {
            "alloc-sync-page"
        };
        format!("record-{how}-{}", self.mode.name())
    }

    fn label(self) -> String {
        let how = if self.filled {
            "alloc_with (record in the commit's barrier)"
        } else {
            "alloc + write + sync_page"
        };
        format!(
            "new 4 KiB record [{}, {how}], × bare msync",
            self.mode.name()
        )
    }

    fn op(self, pager: &mut Ours, index: usize) -> BenchResult<()> {
        let fill = |bytes: &mut [u8]| {
            bytes.fill(index as u8);
            bytes[..8].copy_from_slice(&(index as u64).to_le_bytes());
        };
        if self.filled {
            black_box(pager.alloc_with(|page| fill(page.as_bytes_mut()))?);
        } else {
            let id = pager.alloc()?;
            fill(id.get_mut(pager)?.as_bytes_mut());
            pager.sync_page(id)?;
        }
        Ok(())
    }
}

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

/// redb: one write transaction per insert of a 4 KiB record, default (immediate) durability.
struct RedbRecord {
    path: PathBuf,
    database: Database,
}

impl RedbRecord {
    fn create(path: &Path) -> BenchResult<RedbRecord> {
        Ok(RedbRecord {
            path: path.to_path_buf(),
            database: Database::create(path)?,
        })
    }

    fn op(&mut self, index: usize) -> BenchResult<()> {
        let record = vec![index as u8; PAGE_SIZE_BYTES];
        let transaction = self.database.begin_write()?;
        {
            let mut table = transaction.open_table(RECORDS)?;
            table.insert(index as u64, &record[..])?;
        }
        transaction.commit()?;
        Ok(())
    }

    fn finish(self) -> BenchResult<()> {
        drop(self.database);
        remove(&self.path)
    }
}

/// Rows: the bare msync, our four ways to a durable record, redb; all interleaved op by op. Our
/// records go to new file space (the file grows as they accumulate).
pub fn durable_record_vs_msync(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    record_rows(ctx, false)
}

/// The same rows with our records in pages that were written before: each pager first fills
/// and frees as many pages as the run allocates, durably, so every record reuses a page whose
/// blocks the file system has already written (the steady state of an engine that recycles
/// pages; new file space costs the file system more on the first write: on ext4, an unwritten
/// extent converted in the same `fdatasync`).
pub fn durable_record_reused_vs_msync(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    record_rows(ctx, true)
}

fn record_rows(ctx: &mut Ctx, reuse: bool) -> BenchResult<Vec<Row>> {
    let op_count = ctx.size(1_000, 100);
    let dir = ctx.disk_dir.clone();
    let group = if reuse { "record-reuse" } else { "record" };
    let mut round = |ctx: &mut Ctx| -> BenchResult<Vec<Sample>> {
        let mut limit = PhysicalLimit::create(&ctx.fresh_path(&dir, "record-msync"))?;
        let mut new_page_limit =
            PhysicalLimit::create_new_pages(&ctx.fresh_path(&dir, "record-msync-new"), op_count)?;
        let mut redb = RedbRecord::create(&ctx.fresh_path(&dir, "record-redb"))?;
        let mut pagers = Vec::new();
        let mut paths = Vec::new();
        for contender in Contender::ALL {
            let path = ctx.fresh_path(&dir, &contender.key());
            let mut pager = create_ours(&path, contender.mode)?;
            if reuse {
                let ids = pager.alloc_bulk_with(op_count, |_, page| page.as_bytes_mut().fill(1))?;
                pager.sync_all()?;
                pager.free_bulk(ids)?;
            }
            pagers.push((contender, pager));
            paths.push(path);
        }
        let before: Vec<_> = pagers.iter().map(|(_, p)| p.storage().stats()).collect();
        let mut samples = {
            let mut ops: Vec<Box<dyn FnMut(usize) -> BenchResult<()> + '_>> =
                vec![Box::new(|index| limit.op(index))];
            for (contender, pager) in pagers.iter_mut() {
                let contender = *contender;
                ops.push(Box::new(move |index| contender.op(pager, index)));
            }
            ops.push(Box::new(|index| redb.op(index)));
            ops.push(Box::new(|index| new_page_limit.op(index)));
            let mut refs: Vec<&mut dyn FnMut(usize) -> BenchResult<()>> =
                ops.iter_mut().map(|op| op.as_mut() as _).collect();
            interleave_ops(op_count, 1, &mut refs)?
        };
        for (index, (_, pager)) in pagers.iter().enumerate() {
            add_ours_stats(
                &mut samples[index + 1],
                before[index],
                pager.storage().stats(),
            );
        }
        drop(pagers);
        limit.finish()?;
        new_page_limit.finish()?;
        redb.finish()?;
        for path in &paths {
            remove(path)?;
        }
        Ok(samples)
    };
    let repetitions = ctx.repetitions;
    let mut series = alternate_runs(ctx, repetitions, group, &mut [&mut round])?
        .pop()
        .unwrap_or_default();
    if series.len() != 3 + Contender::ALL.len() {
        return Err("record: expected seven contenders".into());
    }
    let new_page_series = series.pop().unwrap_or_default();
    let redb_series = series.pop().unwrap_or_default();
    let msync_series = series.remove(0);
    let space = if reuse {
        "ours into pages written before (filled, synced and freed first)"
    } else {
        "ours into new file space"
    };
    let where_run = format!(
        "N = {op_count} records per contender per repetition, {space}, interleaved op by op \
         with the bare msync and the others; {}",
        describe_dir(&dir)
    );
    let key = |name: &str| {
        if reuse {
            name.replacen("record-", "record-reuse-", 1)
        } else {
            name.to_string()
        }
    };
    let mut rows = vec![
        Row::new(&key(MSYNC_KEY), PhysicalLimit::label(), Unit::TimePerOp)
            .with_ours(msync_series.clone())
            .with_note(format!("the denominator of the record rows; {where_run}")),
    ];
    let mut push = |name: &str, label: &str, records: Series| {
        let note = match ratio_to_msync(&records, &msync_series) {
            Some((median, spread)) => format!(
                "**{median:.3}× the bare msync** (median of per-repetition ratios, IQR \
                 {spread:.1} %); {where_run}"
            ),
            None => where_run.clone(),
        };
        rows.push(
            Row::new(&key(name), label, Unit::TimePerOp)
                .with_ours(records)
                .with_note(note),
        );
    };
    for (contender, records) in Contender::ALL.iter().zip(series) {
        push(&contender.key(), &contender.label(), records);
    }
    push(
        "record-redb",
        &format!(
            "reference: redb {} insert of a 4 KiB record, durable commit, × bare msync",
            crate::REDB_VERSION
        ),
        redb_series,
    );
    push(
        NEW_PAGE_MSYNC_KEY,
        "reference: physical limit in new file space (write + msync one 4 KiB page never \
         written before, of a sparse file), × bare msync",
        new_page_series,
    );
    Ok(rows)
}

/// The target for a durable new record, checked on this run's rows (new file space and
/// reused pages).
pub fn targets(rows: &[Row]) -> String {
    targets_of(rows, "") + &targets_of(rows, "reuse-")
}

fn targets_of(rows: &[Row], reuse: &str) -> String {
    let named = |key: &str| key.replacen("record-", &format!("record-{reuse}"), 1);
    let series_of = |key: &str| {
        rows.iter()
            .find(|row| row.key == key)
            .and_then(|row| row.ours.as_ref())
    };
    let filled = Contender {
        mode: OursMode::SingleSync,
        filled: true,
    };
    let ratio = |key: &str| {
        series_of(&named(MSYNC_KEY))
            .and_then(|msync| ratio_to_msync(series_of(&named(key))?, msync))
    };
    let (space, row) = if reuse.is_empty() {
        ("new file space", "record")
    } else {
        ("pages written before", "record-reuse")
    };
    let new_page = ratio(NEW_PAGE_MSYNC_KEY).map_or(String::new(), |(limit, _)| {
        format!("; the bare msync of a never-written page: {limit:.3}×")
    });
    match (ratio(&filled.key()), ratio("record-redb")) {
        (Some((ours, _)), redb) => format!(
            "- Durable new 4 KiB record, alloc_with, single-sync, {space}: {ours:.3}× the bare \
             msync (target ≤ {TARGET}×): {}; redb in the same run: {}{new_page}\n",
            if ours <= TARGET {
                "**met**"
            } else {
                "**not met**"
            },
            redb.map_or("not measured".to_string(), |(r, _)| format!("{r:.3}×"))
        ),
        _ => format!(
            "- Durable new record ({space}) against the bare msync: not measured in this run \
             (row `{row}`)\n"
        ),
    }
}
