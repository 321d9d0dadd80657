//! One device round trip per barrier (issue 16, item 1): a protected commit against the bare
//! `msync` of one page, with this crate's barrier plan and with the serial plan it replaced.
//!
//! Five contenders run interleaved op by op in the same directory: the physical limit (change
//! one byte of a mapped file, `msync` that page), and a protected commit (`get_mut`, write 8
//! bytes, `commit`) in single-sync and flip mode, each once with the current plan (every range
//! of a barrier started with `sync_file_range(WRITE)`, then waited for, then one `msync`) and once
//! with the serial plan (`MmapStorage::plan_serial_range_writes`: each range written and waited
//! for before the next starts). Each row reports its time per commit as a ratio to the bare
//! `msync` of the same repetition, so that a loaded or shared disk moves both alike.

use std::hint::black_box;
use std::path::Path;

use mappedpages::{MmapStorage, ProtectedPageId};

use crate::measure::{
    BenchResult, Row, Sample, Series, Unit, alternate_runs, interleave_ops, median, quantile,
};
use crate::rows::durable::describe_dir;
use crate::rows::reference::PhysicalLimit;
use crate::rows::{Ctx, Ours, OursMode, PAGE_SIZE_BYTES, add_ours_stats, create_ours, remove};

/// Key of the bare-msync row of this group, the denominator of every ratio.
const MSYNC_KEY: &str = "barrier-msync";

/// The targets: a protected commit as a multiple of the bare msync, per mode.
const TARGETS: [(OursMode, f64); 2] = [(OursMode::SingleSync, 1.1), (OursMode::Flip, 2.1)];

/// One protected-commit contender: a pager in `mode`, with the current or the serial plan.
struct Contender {
    mode: OursMode,
    serial: bool,
}

impl Contender {
    const ALL: [Contender; 4] = [
        Contender {
            mode: OursMode::SingleSync,
            serial: false,
        },
        Contender {
            mode: OursMode::SingleSync,
            serial: true,
        },
        Contender {
            mode: OursMode::Flip,
            serial: false,
        },
        Contender {
            mode: OursMode::Flip,
            serial: true,
        },
    ];

    fn key(&self) -> String {
        let plan = if self.serial { "-serial" } else { "" };
        format!("barrier-protected-{}{plan}", self.mode.name())
    }

    fn label(&self) -> String {
        let plan = if self.serial {
            "serial plan (before)"
        } else {
            "writes in flight together (now)"
        };
        format!(
            "protected commit ×1 [{}, {plan}], × bare msync",
            self.mode.name()
        )
    }

    /// A fresh pager at `path` with one protected page, opened with this contender's plan.
    fn create(&self, path: &Path) -> BenchResult<(Ours, ProtectedPageId<PAGE_SIZE_BYTES>)> {
        let mut pager = create_ours(path, self.mode)?;
        let id = pager.alloc_protected()?;
        drop(pager);
        let mut storage = MmapStorage::open(path)?;
        if self.serial {
            storage.plan_serial_range_writes();
        }
        let mut pager = Ours::open_in(storage)?;
        pager.set_commit_mode(self.mode.commit_mode());
        Ok((pager, id))
    }
}

/// The protected write + commit of one operation.
fn commit(pager: &mut Ours, id: ProtectedPageId<PAGE_SIZE_BYTES>, index: usize) -> BenchResult<()> {
    let mut writer = id.get_mut(pager)?;
    writer.page_mut().as_bytes_mut()[..8].copy_from_slice(&(index as u64).to_le_bytes());
    black_box(writer.commit()?);
    Ok(())
}

/// Rows: the bare msync, then a protected commit in both modes with both plans, all interleaved
/// op by op; each commit row's note gives its median ratio to the msync of the same repetition.
pub fn protected_commit_vs_msync(ctx: &mut Ctx) -> BenchResult<Vec<Row>> {
    let op_count = ctx.size(1_000, 100);
    let dir = ctx.disk_dir.clone();
    let mut round = |ctx: &mut Ctx| -> BenchResult<Vec<Sample>> {
        let limit_path = ctx.fresh_path(&dir, "barrier-msync");
        let mut limit = PhysicalLimit::create(&limit_path)?;
        let mut pagers = Vec::new();
        let mut paths = Vec::new();
        for contender in &Contender::ALL {
            let path = ctx.fresh_path(&dir, &contender.key());
            pagers.push(contender.create(&path)?);
            paths.push(path);
        }
        let before: Vec<_> = pagers
            .iter()
            .map(|(pager, _)| pager.storage().stats())
            .collect();
        let samples = {
            let mut ops: Vec<Box<dyn FnMut(usize) -> BenchResult<()> + '_>> =
                vec![Box::new(|index| limit.op(index))];
            for (pager, id) in pagers.iter_mut() {
                let id = *id;
                ops.push(Box::new(move |index| commit(pager, id, index)));
            }
            let mut refs: Vec<&mut dyn FnMut(usize) -> BenchResult<()>> =
                ops.iter_mut().map(|op| op.as_mut() as _).collect();
            interleave_ops(op_count, 1, &mut refs)?
        };
        let mut samples = samples;
        for (index, (pager, _)) in pagers.iter().enumerate() {
            add_ours_stats(
                &mut samples[index + 1],
                before[index],
                pager.storage().stats(),
            );
        }
        drop(pagers);
        limit.finish()?;
        for path in &paths {
            remove(path)?;
        }
        Ok(samples)
    };
    let repetitions = ctx.repetitions;
    let mut series = alternate_runs(ctx, repetitions, "barrier", &mut [&mut round])?
        .pop()
        .unwrap_or_default();
    if series.len() != 1 + Contender::ALL.len() {
        return Err("barrier: expected five contenders".into());
    }
    let msync_series = series.remove(0);
    let where_run = format!(
        "N = {op_count} ops per contender per repetition, interleaved op by op with the bare \
         msync and the other commits; {}",
        describe_dir(&dir)
    );
    let mut rows = vec![
        Row::new(MSYNC_KEY, PhysicalLimit::label(), Unit::TimePerOp)
            .with_ours(msync_series.clone())
            .with_note(format!("the denominator of the barrier rows; {where_run}")),
    ];
    for (contender, commits) in Contender::ALL.iter().zip(series) {
        let note = match ratio_to_msync(&commits, &msync_series) {
            Some((median, spread)) => format!(
                "**{median:.3}× the bare msync** (median of per-repetition ratios, IQR \
                 {spread:.1} %); {where_run}"
            ),
            None => where_run.clone(),
        };
        rows.push(
            Row::new(&contender.key(), &contender.label(), Unit::TimePerOp)
                .with_ours(commits)
                .with_note(note),
        );
    }
    Ok(rows)
}

/// Median and IQR (% of the median) of `commits`' time over `msync`'s, repetition by repetition
/// (the samples of both series come from the same repetitions, in order).
pub fn ratio_to_msync(commits: &Series, msync: &Series) -> Option<(f64, f64)> {
    if commits.samples.len() != msync.samples.len() || commits.samples.is_empty() {
        return None;
    }
    let ratios: Vec<f64> = commits
        .samples
        .iter()
        .zip(&msync.samples)
        .map(|(commit, limit)| commit.ns_per_op() / limit.ns_per_op())
        .collect();
    let middle = median(&ratios);
    let spread = (quantile(&ratios, 0.75) - quantile(&ratios, 0.25)) / middle * 100.0;
    Some((middle, spread))
}

/// The targets for a protected commit against the bare msync, checked on this run's
/// rows, with the serial plan's ratio beside each.
pub fn targets(rows: &[Row]) -> String {
    let series_of = |key: &str| {
        rows.iter()
            .find(|row| row.key == key)
            .and_then(|row| row.ours.as_ref())
    };
    let Some(msync) = series_of(MSYNC_KEY) else {
        return "- Protected commit against the bare msync: not measured in this run (row \
                `barrier`)\n"
            .to_string();
    };
    let mut out = String::new();
    for (mode, limit) in TARGETS {
        let now = Contender {
            mode,
            serial: false,
        };
        let before = Contender { mode, serial: true };
        let ratio = |contender: &Contender| {
            series_of(&contender.key()).and_then(|commits| ratio_to_msync(commits, msync))
        };
        let line = match (ratio(&now), ratio(&before)) {
            (Some((now_ratio, _)), Some((before_ratio, _))) => format!(
                "- Protected commit, {} mode: {now_ratio:.3}× the bare msync (target ≤ {limit}×): \
                 {}; the serial plan in the same run: {before_ratio:.3}×",
                mode.name(),
                if now_ratio <= limit {
                    "**met**"
                } else {
                    "**not met**"
                }
            ),
            _ => format!(
                "- Protected commit, {} mode, against the bare msync: not measured",
                mode.name()
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}
