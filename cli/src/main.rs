//! `mappedpages`: inspect a mappedpages file without writing to it, and roll back a refused one.
//!
//! Every command opens the file read-only under a shared lock (`ReadOnlyPager`, SPEC.md §4.5),
//! reads the page size from the file (`detect_page_size`, SPEC.md §4.7) and never writes; the
//! one exception is `rollback --yes` (`RollbackPlan::apply`, SPEC.md §4.8), which takes the
//! writer's lock. The format knowledge is the library's: this tool only prints what the library
//! reports.
//!
//! Exit status: 0 success (for `check`: no findings), 1 `check` found damage (`rollback`: the
//! rollback is refused), 2 the file could not be read or is not a mappedpages file (or a
//! command's open failed), 3 `rollback`: nothing to roll back.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod header;

use mappedpages::{
    CommitMode, MappedPageError, PageId, PageUse, ProtectedPageId, ReadOnlyPager, Repair,
    RollbackPlan, detect_page_size,
};

#[derive(Parser)]
#[command(
    name = "mappedpages",
    version,
    about = "Inspect a mappedpages file (read-only: nothing is written, except by `rollback --yes`)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Page size, counts, generation, recovery decision and planned repairs.
    Info {
        /// The file to inspect.
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify every structure and print every finding. Exit status: 0 no findings, 1 findings,
    /// 2 not a mappedpages file or unreadable.
    Check {
        /// The file to verify.
        file: PathBuf,
        /// Print one JSON object instead of text (never with a progress bar).
        #[arg(long, conflicts_with = "progress")]
        json: bool,
        /// Show progress on stderr even for a small file or when stderr is not a terminal (by
        /// default a bar is shown for files of 1 GiB or more when stderr is a terminal).
        #[arg(long)]
        progress: bool,
    },
    /// Allocated regular pages, protected pages (by id), free pages and internal pages, as runs of
    /// consecutive pages.
    Pages {
        /// The file to list.
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Roll back a file recovery refuses because the metadata copy its superblock names is
    /// damaged: show what making the older copy current loses, and with --yes do it (the only
    /// command that writes). Exit status: 0 planned (dry run) or rolled back, 1 refused (the
    /// older copy is unusable too), 2 not a mappedpages file or unreadable, 3 nothing to roll
    /// back (the file opens as it is).
    Rollback {
        /// The file to roll back.
        file: PathBuf,
        /// Make the older copy current (writes the superblock, takes the writer's lock).
        #[arg(long)]
        yes: bool,
        /// Only show what a rollback would lose (the default).
        #[arg(long, conflicts_with = "yes")]
        dry_run: bool,
    },
    /// Hex dump of one page: an allocated data page; an internal page (superblock, metadata
    /// copy, bitmap group slot, directory block page) with its decoded header first; a
    /// protected page's backing copy, named; or, with --protected, a protected page's
    /// committed copy, checked against its CRC. Free pages are not shown.
    Dump {
        /// The file to read.
        file: PathBuf,
        /// The data page's number (or the protected page's id with --protected).
        page: u64,
        /// PAGE is a protected page id.
        #[arg(long)]
        protected: bool,
    },
}

/// Why a command could not run: exit status 2.
enum Failure {
    Library(MappedPageError),
    UnsupportedPageSize(usize),
    Metadata(std::io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Library(error) => write!(f, "{error}"),
            Failure::UnsupportedPageSize(size) => {
                write!(f, "page size {size} is not supported by this build")
            }
            Failure::Metadata(error) => write!(f, "cannot read the file's length: {error}"),
        }
    }
}

impl From<MappedPageError> for Failure {
    fn from(error: MappedPageError) -> Self {
        Failure::Library(error)
    }
}

/// Calls `$function::<P>($args)` for the page size `$size` (every size the library supports:
/// powers of two from 1 KiB to 16 MiB).
macro_rules! with_page_size {
    ($size:expr, $function:ident($($arg:expr),*)) => {
        match $size {
            1024 => $function::<1024>($($arg),*),
            2048 => $function::<2048>($($arg),*),
            4096 => $function::<4096>($($arg),*),
            8192 => $function::<8192>($($arg),*),
            16384 => $function::<16384>($($arg),*),
            32768 => $function::<32768>($($arg),*),
            65536 => $function::<65536>($($arg),*),
            131072 => $function::<131072>($($arg),*),
            262144 => $function::<262144>($($arg),*),
            524288 => $function::<524288>($($arg),*),
            1048576 => $function::<1048576>($($arg),*),
            2097152 => $function::<2097152>($($arg),*),
            4194304 => $function::<4194304>($($arg),*),
            8388608 => $function::<8388608>($($arg),*),
            16777216 => $function::<16777216>($($arg),*),
            other => Err(Failure::UnsupportedPageSize(other)),
        }
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (file, json) = match &cli.command {
        Command::Info { file, json }
        | Command::Check { file, json, .. }
        | Command::Pages { file, json } => (file.as_path(), *json),
        Command::Dump { file, .. } => (file.as_path(), false),
        Command::Rollback { file, yes, .. } => return rollback(file, *yes),
    };
    let result = detect_page_size(file)
        .map_err(Failure::from)
        .and_then(|size| match &cli.command {
            Command::Info { .. } => with_page_size!(size, info(file, json)),
            Command::Check { progress, .. } => {
                let progress = Progress::choose(file, json, *progress);
                with_page_size!(size, check(file, json, progress))
            }
            Command::Pages { .. } => with_page_size!(size, pages(file, json)),
            Command::Dump {
                page, protected, ..
            } => with_page_size!(size, dump(file, *page, *protected)),
            Command::Rollback { .. } => unreachable!("rollback returned above"),
        });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("mappedpages: {}: {failure}", file.display());
            if json {
                println!(
                    "{{\"file\":{},\"error\":{}}}",
                    json_string(&file.display().to_string()),
                    json_string(&failure.to_string())
                );
            }
            ExitCode::from(2)
        }
    }
}

/// `rollback`: the library's plan, printed; applied only with `--yes`.
fn rollback(file: &Path, yes: bool) -> ExitCode {
    let plan = match RollbackPlan::plan(file) {
        Ok(plan) => plan,
        Err(error) => return rollback_failure(file, &error),
    };
    print!("{plan}");
    if !yes {
        println!("dry run: nothing written; run again with --yes to roll back");
        return ExitCode::SUCCESS;
    }
    match plan.apply() {
        Ok(()) => {
            println!(
                "rolled back: metadata copy at page {} (generation {}) is current",
                plan.target_copy_page, plan.target_generation
            );
            ExitCode::SUCCESS
        }
        Err(error) => rollback_failure(file, &error),
    }
}

/// Exit status of a rollback that did not happen: 3 nothing to do, 1 refused, 2 otherwise.
fn rollback_failure(file: &Path, error: &MappedPageError) -> ExitCode {
    eprintln!("mappedpages: {}: {error}", file.display());
    match error {
        MappedPageError::NothingToRollBack { .. } => ExitCode::from(3),
        MappedPageError::RollbackRefused { .. } => ExitCode::from(1),
        _ => ExitCode::from(2),
    }
}

fn info<const P: usize>(file: &Path, json: bool) -> Result<u8, Failure> {
    let reader = ReadOnlyPager::<P>::open(file)?;
    let file_len = std::fs::metadata(file).map_err(Failure::Metadata)?.len();
    let page_count = reader.page_count();
    let committed_len = page_count.saturating_mul(P as u64);
    let allocated = reader.allocated_page_count();
    let free = reader.free_page_count();
    let internal = page_count.saturating_sub(allocated).saturating_sub(free);
    let decision = format!("{:?}", reader.recovery_decision());
    let repairs = reader.planned_repairs();
    let commit_mode = reader.last_commit_mode();
    let blocks = reader.directory_blocks();
    if json {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"file\":{},\"page_size\":{P},\"format_version\":{},\"page_count\":{page_count},\
             \"allocated_pages\":{allocated},\"free_pages\":{free},\"internal_pages\":{internal},\
             \"protected_pages\":{},\"generation\":{},\"active_metadata_page\":{},\
             \"last_commit_mode\":{},\"directory_blocks\":{},\
             \"recovery_decision\":{},\"planned_repairs\":{},\"file_len\":{file_len},\
             \"committed_len\":{committed_len}}}",
            json_string(&file.display().to_string()),
            reader.format_version(),
            reader.protected_page_count(),
            reader.generation(),
            reader.active_metadata_page(),
            commit_mode.map_or("null".to_owned(), |mode| json_string(commit_mode_json(
                mode
            ))),
            blocks_json(&blocks),
            json_string(&decision),
            repairs_json(repairs),
        );
        println!("{out}");
    } else {
        println!("file:                 {}", file.display());
        println!("page size:            {P} bytes");
        println!("format version:       {}", reader.format_version());
        println!("page count:           {page_count}");
        println!("allocated pages:      {allocated}");
        println!("free pages:           {free}");
        println!("internal pages:       {internal}");
        println!("protected pages:      {}", reader.protected_page_count());
        println!("generation:           {}", reader.generation());
        println!(
            "active metadata copy: {} (page {})",
            if reader.active_metadata_page() == 1 {
                "A"
            } else {
                "B"
            },
            reader.active_metadata_page()
        );
        print_commit_and_directory(commit_mode, &blocks);
        println!("recovery decision:    {decision}");
        print_repairs(repairs);
        let relation = match file_len.cmp(&committed_len) {
            std::cmp::Ordering::Equal => "equal",
            std::cmp::Ordering::Greater => "file is longer",
            std::cmp::Ordering::Less => "file is shorter",
        };
        println!("file length:          {file_len} bytes");
        println!("committed length:     {committed_len} bytes ({relation})");
    }
    Ok(0)
}

/// How `check` shows its progress (on stderr only).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Progress {
    None,
    /// An indicatif bar: stderr is a terminal.
    Bar,
    /// A line per tenth of the work: forced with `--progress` while stderr is not a terminal.
    Lines,
}

impl Progress {
    /// Files at least this long get a bar by default.
    const LARGE_FILE_BYTES: u64 = 1 << 30;

    fn choose(file: &Path, json: bool, forced: bool) -> Progress {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        let large = std::fs::metadata(file).is_ok_and(|m| m.len() >= Self::LARGE_FILE_BYTES);
        match (json, forced, terminal, large) {
            (true, _, _, _) => Progress::None,
            (false, true, false, _) => Progress::Lines,
            (false, true, true, _) | (false, false, true, true) => Progress::Bar,
            _ => Progress::None,
        }
    }
}

/// `info`'s lines for the last commit's mode and the directory blocks.
fn print_commit_and_directory(commit_mode: Option<CommitMode>, blocks: &[[u64; 4]]) {
    println!("last commit mode:     {}", commit_mode_text(commit_mode));
    if blocks.is_empty() {
        println!("directory blocks:     0");
        return;
    }
    println!(
        "directory blocks:     {} (pages X0, X1, Y0, Y1 of each)",
        blocks.len()
    );
    for (block, pages) in blocks.iter().enumerate() {
        println!(
            "  - block {block}: {}, {}, {}, {}",
            pages[0], pages[1], pages[2], pages[3]
        );
    }
}

/// `info`'s planned repairs.
fn print_repairs(repairs: &[Repair]) {
    if repairs.is_empty() {
        println!("planned repairs:      none");
        return;
    }
    println!(
        "planned repairs:      {} (a read-write open makes them)",
        repairs.len()
    );
    for repair in repairs {
        println!("  - {}", describe_repair(repair));
    }
}

fn commit_mode_text(mode: Option<CommitMode>) -> &'static str {
    match mode {
        Some(CommitMode::Flip) => "flip (two barriers; the superblock names it)",
        Some(CommitMode::SingleSync) => {
            "single-sync (one barrier; the superblock names an older one)"
        }
        None => "unknown (the metadata copy changed since it was opened)",
    }
}

fn commit_mode_json(mode: CommitMode) -> &'static str {
    match mode {
        CommitMode::Flip => "flip",
        CommitMode::SingleSync => "single_sync",
    }
}

fn blocks_json(blocks: &[[u64; 4]]) -> String {
    let parts: Vec<String> = blocks
        .iter()
        .map(|p| format!("[{},{},{},{}]", p[0], p[1], p[2], p[3]))
        .collect();
    format!("[{}]", parts.join(","))
}

/// `check`'s progress as shown so far.
struct Shown {
    progress: Progress,
    bar: Option<indicatif::ProgressBar>,
    /// The last tenth of the work a line was printed for (`Progress::Lines`).
    last_tenth: Option<u64>,
}

impl Shown {
    fn update(&mut self, done: u64, total: u64) {
        match self.progress {
            Progress::None => {}
            Progress::Bar => {
                let bar = self.bar.get_or_insert_with(|| {
                    let bar = indicatif::ProgressBar::with_draw_target(
                        Some(total),
                        indicatif::ProgressDrawTarget::stderr(),
                    );
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "checking {bar:40} {pos}/{len} groups and directory blocks ({eta})",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                    bar
                });
                bar.set_position(done);
            }
            Progress::Lines => {
                let tenth = done.saturating_mul(10).checked_div(total).unwrap_or(10);
                if self.last_tenth != Some(tenth) {
                    self.last_tenth = Some(tenth);
                    eprintln!("checked {done}/{total} groups and directory blocks");
                }
            }
        }
    }
}

fn check<const P: usize>(file: &Path, json: bool, progress: Progress) -> Result<u8, Failure> {
    let mut shown = Shown {
        progress,
        bar: None,
        last_tenth: None,
    };
    let report = ReadOnlyPager::<P>::verify_with_progress(file, |done, total| {
        shown.update(done, total);
    });
    if let Some(bar) = shown.bar {
        bar.finish_and_clear();
    }
    let report = report?;
    let decision = report.decision.map(|decision| format!("{decision:?}"));
    if json {
        let findings: Vec<String> = report
            .findings
            .iter()
            .map(|finding| json_string(&finding.to_string()))
            .collect();
        println!(
            "{{\"file\":{},\"page_size\":{P},\"recovery_decision\":{},\"planned_repairs\":{},\
             \"findings\":[{}],\"clean\":{}}}",
            json_string(&file.display().to_string()),
            decision.as_deref().map_or("null".to_owned(), json_string),
            repairs_json(&report.repairs),
            findings.join(","),
            report.findings.is_empty(),
        );
    } else {
        println!("file:              {}", file.display());
        println!("page size:         {P} bytes");
        match &decision {
            Some(decision) => println!("recovery decision: {decision}"),
            None => println!("recovery decision: none (recovery refuses the file)"),
        }
        if report.repairs.is_empty() {
            println!("planned repairs:   none");
        } else {
            println!(
                "planned repairs:   {} (not damage: a read-write open makes them)",
                report.repairs.len()
            );
            for repair in &report.repairs {
                println!("  - {}", describe_repair(repair));
            }
        }
        for finding in &report.findings {
            println!("finding: {finding}");
        }
        match report.findings.len() {
            0 => println!("no findings"),
            1 => println!("1 finding"),
            count => println!("{count} findings"),
        }
    }
    Ok(if report.findings.is_empty() { 0 } else { 1 })
}

fn pages<const P: usize>(file: &Path, json: bool) -> Result<u8, Failure> {
    let reader = ReadOnlyPager::<P>::open(file)?;
    let allocated = runs(reader.iter_allocated_pages().map(|id| id.raw()));
    let protected = runs(reader.iter_allocated_protected_pages().map(|id| id.raw()));
    let free = reader.free_page_ranges();
    let internal = gaps(reader.page_count(), &allocated, &free);
    if json {
        println!(
            "{{\"file\":{},\"page_size\":{P},\"page_count\":{},\"allocated\":{},\
             \"protected\":{},\"free\":{},\"internal\":{}}}",
            json_string(&file.display().to_string()),
            reader.page_count(),
            runs_json(&allocated),
            runs_json(&protected),
            runs_json(&free),
            runs_json(&internal),
        );
    } else {
        println!(
            "allocated pages ({}): {}",
            reader.allocated_page_count(),
            runs_text(&allocated)
        );
        println!(
            "protected pages ({}, by id): {}",
            reader.protected_page_count(),
            runs_text(&protected)
        );
        println!(
            "free pages ({}): {}",
            reader.free_page_count(),
            runs_text(&free)
        );
        let internal_count: u64 = internal.iter().map(|range| range.end - range.start).sum();
        println!(
            "internal pages ({internal_count}): {}",
            runs_text(&internal)
        );
    }
    Ok(0)
}

fn dump<const P: usize>(file: &Path, page: u64, protected: bool) -> Result<u8, Failure> {
    let reader = ReadOnlyPager::<P>::open(file)?;
    let bytes = if protected {
        reader
            .protected_page(ProtectedPageId::from_raw(page))?
            .as_bytes()
    } else {
        match reader.page_use(page)? {
            PageUse::Allocated | PageUse::Free => reader.page(PageId::from_raw(page))?.as_bytes(),
            role => {
                let bytes = reader.raw_page(page)?;
                print!("{}", header::describe(page, role, bytes, &reader));
                bytes
            }
        }
    };
    print!("{}", hex_dump(bytes));
    Ok(0)
}

/// `bytes` as lines of 16: offset, hex bytes, printable ASCII; a run of lines equal to the one
/// before is shown as a single `*` (as `hexdump -C` does), and the last line is the length.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut previous: Option<&[u8]> = None;
    let mut starred = false;
    for (index, line) in bytes.chunks(16).enumerate() {
        if previous == Some(line) {
            if !starred {
                out.push_str("*\n");
                starred = true;
            }
            continue;
        }
        previous = Some(line);
        starred = false;
        let _ = write!(out, "{:08x} ", index * 16);
        for (column, byte) in line.iter().enumerate() {
            if column == 8 {
                out.push(' ');
            }
            let _ = write!(out, " {byte:02x}");
        }
        for column in line.len()..16 {
            out.push_str(if column == 8 { "    " } else { "   " });
        }
        out.push_str("  |");
        out.extend(line.iter().map(|&byte| {
            if byte.is_ascii_graphic() || byte == b' ' {
                char::from(byte)
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
    let _ = writeln!(out, "{:08x}", bytes.len());
    out
}

/// The pages below `page_count` in neither `a` nor `b` (each sorted and disjoint, and disjoint
/// from each other): here, the internal pages, the ones neither allocated nor free.
fn gaps(page_count: u64, a: &[Range<u64>], b: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut taken: Vec<&Range<u64>> = a.iter().chain(b).collect();
    taken.sort_by_key(|range| range.start);
    let mut out = Vec::new();
    let mut next = 0;
    for range in taken {
        if range.start > next {
            out.push(next..range.start);
        }
        next = next.max(range.end);
    }
    if page_count > next {
        out.push(next..page_count);
    }
    out
}

/// Consecutive numbers (in increasing order) merged into ranges.
fn runs(numbers: impl IntoIterator<Item = u64>) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for number in numbers {
        match ranges.last_mut() {
            Some(last) if last.end == number => last.end = number + 1,
            _ => ranges.push(number..number + 1),
        }
    }
    ranges
}

fn runs_text(ranges: &[Range<u64>]) -> String {
    if ranges.is_empty() {
        return "none".to_owned();
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|range| {
            if range.end - range.start == 1 {
                range.start.to_string()
            } else {
                format!("{}-{}", range.start, range.end - 1)
            }
        })
        .collect();
    parts.join(", ")
}

fn runs_json(ranges: &[Range<u64>]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|range| {
            format!(
                "{{\"first\":{},\"count\":{}}}",
                range.start,
                range.end - range.start
            )
        })
        .collect();
    format!("[{}]", parts.join(","))
}

fn describe_repair(repair: &Repair) -> String {
    match repair {
        Repair::ScrubPage { page } => {
            format!("scrub page {page} (a leftover of an unfinished commit)")
        }
        Repair::RewriteSuperblock => "rewrite the superblock".to_owned(),
        Repair::RestoreMirror { from, to } => {
            format!("copy directory mirror page {from} over page {to}")
        }
        other => format!("{other:?}"),
    }
}

fn repairs_json(repairs: &[Repair]) -> String {
    let parts: Vec<String> = repairs
        .iter()
        .map(|repair| match repair {
            Repair::ScrubPage { page } => format!("{{\"repair\":\"scrub_page\",\"page\":{page}}}"),
            Repair::RewriteSuperblock => "{\"repair\":\"rewrite_superblock\"}".to_owned(),
            Repair::RestoreMirror { from, to } => {
                format!("{{\"repair\":\"restore_mirror\",\"from\":{from},\"to\":{to}}}")
            }
            other => format!("{{\"repair\":{}}}", json_string(&format!("{other:?}"))),
        })
        .collect();
    format!("[{}]", parts.join(","))
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_consecutive_numbers() {
        assert_eq!(runs([1, 2, 3, 5, 7, 8]), vec![1..4, 5..6, 7..9]);
        assert_eq!(runs_text(&runs([1, 2, 3, 5])), "1-3, 5");
        assert_eq!(runs_text(&[]), "none");
        assert_eq!(runs_json(&runs([4, 5])), "[{\"first\":4,\"count\":2}]");
    }

    #[test]
    fn hex_dump_collapses_repeated_lines() {
        let mut bytes = vec![0u8; 64];
        bytes[..5].copy_from_slice(b"hello");
        let dump = hex_dump(&bytes);
        assert_eq!(
            dump,
            "00000000  68 65 6c 6c 6f 00 00 00  00 00 00 00 00 00 00 00  |hello...........|\n\
             00000010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n\
             *\n\
             00000040\n"
        );
    }

    #[test]
    fn gaps_are_the_pages_in_neither_list() {
        assert_eq!(
            gaps(20, &[5..7, 9..10], &[7..8, 12..15]),
            vec![0..5, 8..9, 10..12, 15..20]
        );
        assert_eq!(
            gaps(4, &[0..1, 1..2], &[2..3, 3..4]),
            Vec::<Range<u64>>::new()
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
