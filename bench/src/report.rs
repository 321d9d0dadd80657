//! The markdown table, the target check and the optional JSON dump.

use std::fmt::Write as _;

use crate::measure::{Row, Series, Unit};

fn format_time(ns: f64) -> String {
    if !ns.is_finite() {
        "—".to_string()
    } else if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1_000_000_000.0 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

fn format_throughput(bytes_per_second: f64) -> String {
    format!("{:.2} GiB/s", bytes_per_second / (1u64 << 30) as f64)
}

fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::TimePerOp => format_time(value),
        Unit::Throughput => format_throughput(value),
    }
}

fn format_syncs(series: &Series, syscalls_counted: bool) -> String {
    let syscalls = if syscalls_counted {
        format!("{:.2}", series.syscalls_per_op())
    } else {
        "n/a".to_string()
    };
    match series.barriers_per_op() {
        Some(barriers) => format!("{syscalls} ({barriers:.2})"),
        None => syscalls,
    }
}

fn format_range_writes(series: &Series, syscalls_counted: bool) -> String {
    if syscalls_counted {
        format!("{:.2}", series.range_writes_per_op())
    } else {
        "n/a".to_string()
    }
}

fn cells(row: &Row, series: Option<&Series>, syscalls_counted: bool) -> [String; 4] {
    match series {
        Some(series) if !series.samples.is_empty() => [
            format_value(row.unit, series.median(row.unit)),
            format!("{:.1} %", series.spread_percent(row.unit)),
            format_syncs(series, syscalls_counted),
            format_range_writes(series, syscalls_counted),
        ],
        _ => [
            "—".to_string(),
            "—".to_string(),
            "—".to_string(),
            "—".to_string(),
        ],
    }
}

/// How to read the columns, printed under the table.
pub const LEGEND: &str = "Median over the repetitions; IQR = interquartile range as % of the \
median. Ratio = ours / 0.2.0 as a ratio of times (below 1: ours is faster; for GiB/s rows, \
0.2.0's throughput over ours). syncs/op = msync + fsync + fdatasync system calls per operation, \
counted in-process for every contender alike; on the bench's file systems each one ends in a \
device cache flush. In parentheses, the durability barriers this crate reports. range \
writes/op = sync_file_range calls per operation (this crate's one-flush barriers over n ranges \
start the writes of all n with it, then wait for all but the last with it, no flush; the \
barrier's one msync waits for the last and flushes them all: 2n − 1 calls); 0.2.0 makes none.";
/// The table, one line per row.
pub fn markdown_table(rows: &[Row], syscalls_counted: bool) -> String {
    let mut out = String::new();
    out.push_str(
        "| row | ours (0.3) median | IQR | 0.2.0 median | IQR | ratio ours/0.2.0 | \
         syncs/op ours | range writes/op ours | syncs/op 0.2.0 | notes |\n",
    );
    out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
    for row in rows {
        let [ours_median, ours_spread, ours_syncs, ours_range_writes] =
            cells(row, row.ours.as_ref(), syscalls_counted);
        let [theirs_median, theirs_spread, theirs_syncs, _] =
            cells(row, row.theirs.as_ref(), syscalls_counted);
        let ratio = row
            .time_ratio()
            .map(|ratio| format!("**{ratio:.3}×**"))
            .unwrap_or_else(|| "—".to_string());
        let _ = writeln!(
            out,
            "| {} | {ours_median} | {ours_spread} | {theirs_median} | {theirs_spread} | {ratio} | \
             {ours_syncs} | {ours_range_writes} | {theirs_syncs} | {} |",
            row.label, row.note
        );
    }
    out
}

fn find<'a>(rows: &'a [Row], key: &str) -> Option<&'a Row> {
    rows.iter().find(|row| row.key == key)
}

fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**not met**" }
}

/// The targets, each checked against the rows of this run (rows that did not run are
/// reported as such).
pub fn targets(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut ratio_target = |key: &str, what: &str, limit: f64| {
        let line = match find(rows, key).and_then(Row::time_ratio) {
            Some(ratio) => format!(
                "- {what}: {ratio:.3}× the 0.2.0 time (target ≤ {limit}×): {}",
                verdict(ratio <= limit)
            ),
            None => format!("- {what}: not measured in this run (row `{key}`)"),
        };
        out.push_str(&line);
        out.push('\n');
    };
    ratio_target(
        "alloc-durable-one-sync",
        "Durable single alloc, one-sync mode",
        0.6,
    );
    ratio_target(
        "alloc-durable-flip",
        "Durable single alloc, default (flip) mode",
        1.05,
    );
    ratio_target(
        "bulk-disk-alloc_bulk",
        "alloc_bulk(10 000), durable on the bench directory (≥ 10× faster)",
        0.1,
    );
    ratio_target(
        "bulk-tmpfs-alloc_bulk",
        "alloc_bulk(10 000) on tmpfs, CPU cost (≥ 10× faster)",
        0.1,
    );

    // Space reservation (SPEC.md §3.3.1) may not cost a durable alloc more than 10 % of the
    // physical limit; shown against the same alloc without reservation too.
    let median_of = |key: &str| {
        find(rows, key)
            .and_then(|row| row.ours.as_ref())
            .map(|series| series.median(Unit::TimePerOp))
    };
    let line = match (
        median_of("alloc-durable-one-sync"),
        median_of("ref-msync"),
        median_of("alloc-durable-one-sync-unreserved"),
    ) {
        (Some(alloc), Some(limit), Some(unreserved)) => format!(
            "- Durable single alloc, one-sync mode, with space reservation: {:.3}× the bare msync \
             (target ≤ 1.1×): {}; {:.3}× the same alloc without reservation",
            alloc / limit,
            verdict(alloc / limit <= 1.1),
            alloc / unreserved
        ),
        _ => "- Durable single alloc against the bare msync: not measured in this run".to_string(),
    };
    out.push_str(&line);
    out.push('\n');

    let line = match find(rows, "protected-commit-one-sync").and_then(|row| row.ours.as_ref()) {
        Some(series) => {
            let barriers = series.barriers_per_op().unwrap_or(f64::NAN);
            let syscalls = series.syscalls_per_op();
            let range_writes = series.range_writes_per_op();
            format!(
                "- Protected commit in one sync, one-sync mode: {barriers:.2} barriers and \
                 {syscalls:.2} sync syscalls (device flushes) per commit, plus {range_writes:.2} \
                 sync_file_range writes without a flush (target 1): {}",
                verdict(barriers <= 1.0 && syscalls <= 1.0)
            )
        }
        None => "- Protected commit in one sync: not measured in this run".to_string(),
    };
    out.push_str(&line);
    out.push('\n');

    for (prefix, what) in [
        ("commit-scale", "durable"),
        ("commit-scale-tmpfs", "tmpfs, CPU cost"),
    ] {
        let small = find(rows, &format!("{prefix}-2^10")).and_then(|row| row.ours.as_ref());
        let large = find(rows, &format!("{prefix}-2^24")).and_then(|row| row.ours.as_ref());
        let line = match (small, large) {
            (Some(small), Some(large)) => {
                let ratio = large.median(Unit::TimePerOp) / small.median(Unit::TimePerOp);
                let bytes_ratio = large.bytes_synced_per_op().unwrap_or(f64::NAN)
                    / small.bytes_synced_per_op().unwrap_or(f64::NAN);
                format!(
                    "- Commit cost at 2^24 pages vs 2^10 ({what}): time {ratio:.2}×, bytes \
                     synced {bytes_ratio:.2}× (target ≤ 1.5×): {}",
                    verdict(ratio <= 1.5)
                )
            }
            _ => format!("- Commit cost at 2^24 vs 2^10 ({what}): not measured in this run"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&crate::rows::barrier::targets(rows));
    out.push_str(&crate::rows::record::targets(rows));
    out
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        "null".to_string()
    }
}

fn json_series(unit: Unit, series: Option<&Series>) -> String {
    let Some(series) = series else {
        return "null".to_string();
    };
    let values: Vec<String> = series.values(unit).into_iter().map(json_number).collect();
    format!(
        "{{\"median\": {}, \"iqr_percent_of_median\": {}, \"min\": {}, \"max\": {}, \
         \"syscalls_per_op\": {}, \"range_writes_per_op\": {}, \"barriers_per_op\": {}, \
         \"bytes_synced_per_op\": {}, \"values\": [{}]}}",
        json_number(series.median(unit)),
        json_number(series.spread_percent(unit)),
        json_number(series.min_max(unit).0),
        json_number(series.min_max(unit).1),
        json_number(series.syscalls_per_op()),
        json_number(series.range_writes_per_op()),
        series
            .barriers_per_op()
            .map(json_number)
            .unwrap_or_else(|| "null".to_string()),
        series
            .bytes_synced_per_op()
            .map(json_number)
            .unwrap_or_else(|| "null".to_string()),
        values.join(", ")
    )
}

/// Every row as JSON (values in ns/op or bytes/s, per `unit`).
pub fn json(rows: &[Row]) -> String {
    let mut out = String::from("[\n");
    for (index, row) in rows.iter().enumerate() {
        let unit = match row.unit {
            Unit::TimePerOp => "ns_per_op",
            Unit::Throughput => "bytes_per_second",
        };
        let _ = write!(
            out,
            "  {{\"key\": {}, \"label\": {}, \"unit\": \"{unit}\", \"ours\": {}, \"theirs\": {}, \
             \"ratio_ours_over_theirs_time\": {}, \"note\": {}}}",
            json_string(&row.key),
            json_string(&row.label),
            json_series(row.unit, row.ours.as_ref()),
            json_series(row.unit, row.theirs.as_ref()),
            row.time_ratio()
                .map(json_number)
                .unwrap_or_else(|| "null".to_string()),
            json_string(&row.note),
        );
        out.push_str(if index + 1 < rows.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}
