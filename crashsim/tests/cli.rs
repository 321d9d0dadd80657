//! The `crashsim` binary's behaviour: `--min-states` makes too small an exploration fail (the
//! gate in `.ci/run` relies on it); a run cut short by `--seconds` or `--max-states` is PARTIAL
//! (exit status 3) unless `--allow-partial`; `--workload` honours `--commit-modes`; `--list`
//! describes each workload; the table is aligned; the JSON report gives every duration in
//! seconds; `--progress` measures workloads done; the README's soak explores a superset of the
//! default run; reports show the simplest violations first with a replayable reproducer that
//! records the mutant.

use std::process::{Command, Output};

fn crashsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crashsim"))
        .args(args)
        .output()
        .expect("the crashsim binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The total the table's verdict line reports.
fn explored(output: &Output) -> u64 {
    let stdout = stdout(output);
    let verdict = stdout
        .lines()
        .find(|line| line.starts_with("verdict:"))
        .unwrap_or_else(|| panic!("no verdict line in:\n{stdout}"));
    verdict
        .split(['(', ' '])
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no state count in {verdict:?}"))
}

/// The `single` workload's crash phase in flip mode: small and complete.
const SMALL: [&str; 6] = [
    "--workload",
    "single",
    "--commit-modes",
    "flip",
    "--phases",
    "crashes",
];

fn small(extra: &[&str]) -> Output {
    let mut args = SMALL.to_vec();
    args.extend_from_slice(extra);
    crashsim(&args)
}

#[test]
fn min_states_fails_a_run_that_explores_fewer() {
    let complete = small(&[]);
    let states = explored(&complete);
    assert!(complete.status.success(), "{}", stdout(&complete));
    assert!(stdout(&complete).contains("verdict: PASS"));

    let too_few = small(&["--min-states", &(states + 1).to_string()]);
    assert_eq!(explored(&too_few), states, "the same run");
    assert_eq!(too_few.status.code(), Some(1), "below --min-states fails");
    assert!(
        stderr(&too_few).contains("fewer than --min-states"),
        "the failure says why: {}",
        stderr(&too_few)
    );
    assert!(stdout(&too_few).contains("verdict: FAIL"));

    let exactly = small(&["--min-states", &states.to_string()]);
    assert!(exactly.status.success(), "exactly the minimum passes");
}

#[test]
fn a_run_cut_short_by_max_states_is_partial_not_pass() {
    let complete = explored(&small(&[]));
    let cut = small(&["--max-states", "50"]);
    assert_eq!(explored(&cut), 50, "the budget bounds the run");
    assert_eq!(cut.status.code(), Some(3), "{}", stdout(&cut));
    let out = stdout(&cut);
    assert!(out.contains("verdict: PARTIAL"), "{out}");
    assert!(
        out.contains("explored in part (--max-states 50 reached): 1 workloads: single"),
        "{out}"
    );
    assert!(stderr(&cut).contains("--allow-partial"));

    let allowed = small(&["--max-states", "50", "--allow-partial"]);
    assert!(allowed.status.success());
    assert!(stdout(&allowed).contains("verdict: PARTIAL"));

    // A budget the run fits in exactly does not cut it.
    let fits = small(&["--max-states", &complete.to_string()]);
    assert!(fits.status.success(), "{}", stdout(&fits));
    assert!(stdout(&fits).contains("verdict: PASS"));
}

#[test]
fn a_run_cut_short_by_seconds_names_what_was_not_explored() {
    let cut = crashsim(&[
        "-w",
        "single",
        "-w",
        "bulk",
        "--phases",
        "crashes",
        "--seconds",
        "0",
    ]);
    assert_eq!(cut.status.code(), Some(3), "{}", stdout(&cut));
    let out = stdout(&cut);
    assert!(
        out.contains("not explored (--seconds 0 reached): 4 of 4 workloads: single, single+single-sync, bulk, bulk+single-sync"),
        "{out}"
    );
    assert!(out.contains("verdict: PARTIAL"), "{out}");
    let allowed = crashsim(&[
        "-w",
        "single",
        "--phases",
        "crashes",
        "--seconds",
        "0",
        "--allow-partial",
    ]);
    assert_eq!(allowed.status.code(), Some(0));
}

/// The names of the workloads a `--json` report explored.
fn json_workloads(output: &Output) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    report["workloads"]
        .as_array()
        .expect("a workloads array")
        .iter()
        .map(|w| w["workload"].as_str().expect("a name").to_string())
        .collect()
}

#[test]
fn workload_honours_commit_modes() {
    let single_sync = crashsim(&[
        "-w",
        "single",
        "--commit-modes",
        "single-sync",
        "--phases",
        "crashes",
        "--json",
    ]);
    assert_eq!(json_workloads(&single_sync), ["single+single-sync"]);
    let both = crashsim(&["-w", "single", "--phases", "crashes", "--json"]);
    assert_eq!(json_workloads(&both), ["single", "single+single-sync"]);
    let named = crashsim(&["-w", "single+single-sync", "--phases", "crashes", "--json"]);
    assert_eq!(json_workloads(&named), ["single+single-sync"]);
}

#[test]
fn list_describes_every_workload() {
    let list = crashsim(&["--list"]);
    assert!(list.status.success());
    let out = stdout(&list);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 200, "100 workloads in each commit mode");
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() >= 5 && words[2] == "B" && words[3] == "pages",
            "name, page size and a description: {line:?}"
        );
    }
    assert!(out.contains("threads-8+single-sync"), "{out}");
    assert!(out.contains("8 threads of 40 operations on one SharedPager"));
}

#[test]
fn the_table_is_aligned() {
    let output = crashsim(&[
        "-w",
        "single",
        "-w",
        "protected-4k",
        "--commit-modes",
        "flip,single-sync",
        "--phases",
        "failed-growth",
    ]);
    assert!(output.status.success(), "{}", stdout(&output));
    let out = stdout(&output);
    let rows: Vec<&str> = out.lines().take_while(|line| !line.is_empty()).collect();
    assert_eq!(rows.len(), 6, "header, four workloads, total: {out}");
    assert!(
        rows.iter()
            .any(|row| row.starts_with("protected-4k+single-sync "))
    );
    // Every column ends at the same place on every row: the header's `syncs` … `states/s`.
    let ends = |row: &str| -> Vec<usize> {
        let mut ends = Vec::new();
        let mut previous = ' ';
        for (index, c) in row.char_indices() {
            if c == ' ' && previous != ' ' {
                ends.push(index);
            }
            previous = c;
        }
        ends
    };
    let header = ends(rows[0]);
    for row in &rows[1..] {
        let row_ends = ends(row);
        // Skip the name column (its end varies); syncs, states, violations and seconds are right-aligned (the last, states/s, has no space after it on the total row).
        assert_eq!(
            row_ends[1..5],
            header[1..5],
            "columns end where the header's do:\n{}\n{row}",
            rows[0]
        );
    }
}

/// Every object in `value` (recursively).
fn objects(value: &serde_json::Value, out: &mut Vec<serde_json::Map<String, serde_json::Value>>) {
    match value {
        serde_json::Value::Object(map) => {
            out.push(map.clone());
            map.values().for_each(|v| objects(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| objects(v, out)),
        _ => {}
    }
}

#[test]
fn json_gives_every_duration_in_seconds() {
    let output = small(&["--json"]);
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["verdict"], "pass");
    assert!(report["elapsed_seconds"].is_f64());
    let workload = &report["workloads"][0];
    assert!(workload["elapsed_seconds"].is_f64(), "{workload}");
    let mut all = Vec::new();
    objects(&report, &mut all);
    for object in all {
        assert!(
            !object.contains_key("secs") && !object.contains_key("nanos"),
            "no {{secs, nanos}} durations: {object:?}"
        );
        assert!(!object.contains_key("elapsed"), "{object:?}");
    }
    let partial = small(&["--json", "--max-states", "10"]);
    let report: serde_json::Value = serde_json::from_slice(&partial.stdout).expect("JSON");
    assert_eq!(report["verdict"], "partial");
    assert_eq!(report["cut_short"][0], "single");
}

#[test]
fn progress_counts_workloads_done() {
    let output = crashsim(&["-w", "single", "--phases", "crashes", "--progress"]);
    assert!(output.status.success());
    let err = stderr(&output);
    let last = err
        .lines()
        .rfind(|line| line.starts_with("progress:"))
        .unwrap_or_else(|| panic!("a progress line: {err}"));
    assert!(last.contains("2/2 workloads (100%)"), "{last}");
    assert!(
        last.contains(&format!(" {} states", explored(&output))),
        "{last}"
    );
}

/// The names `--list` prints with `args`.
fn listed(args: &[&str]) -> Vec<String> {
    let mut all = vec!["--list"];
    all.extend_from_slice(args);
    stdout(&crashsim(&all))
        .lines()
        .map(|line| line.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// The README's soak command (`--mixes 400 --protected-mixes 30 --seed 7`) explores every
/// workload kind the default run does, every fixed workload, and more of the generated ones.
#[test]
fn the_readme_soak_is_stronger_than_the_default() {
    // The repository's README (absent from the published crate, where this test is skipped).
    let Ok(readme) = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
    else {
        println!("SKIPPED: no ../README.md (not in the mappedpages repository)");
        return;
    };
    assert!(
        readme.contains(
            "cargo run --release -p crashsim -- --mixes 400 --protected-mixes 30 --seed 7"
        ),
        "the README's soak command is the one tested here"
    );
    let default = listed(&[]);
    let soak = listed(&["--mixes", "400", "--protected-mixes", "30", "--seed", "7"]);
    let kind = |name: &str| -> String {
        let mode = if name.ends_with("+single-sync") {
            "+single-sync"
        } else {
            ""
        };
        let base = name.trim_end_matches("+single-sync");
        format!(
            "{}{mode}",
            base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
        )
    };
    for name in &default {
        let generated = name.contains("mix-");
        assert!(
            if generated {
                soak.iter().any(|s| kind(s) == kind(name))
            } else {
                soak.contains(name)
            },
            "the soak runs {name} (or its kind)"
        );
    }
    let generated =
        |names: &[String], prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
    assert!(generated(&soak, "mix-") >= 4 * generated(&default, "mix-"));
    assert!(generated(&soak, "pmix-") >= 4 * generated(&default, "pmix-"));
}

/// Under a mutant, the report shows "K of N", the simplest violation first (a plain crash with
/// the fewest kept sectors), and its reproducer records the mutant and replays to the same
/// finding.
#[cfg(feature = "mutants")]
#[test]
fn reports_show_the_simplest_violations_first_with_a_replayable_reproducer() {
    let output = small(&["--mutant", "skip-metadata-barrier"]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    let header = out
        .lines()
        .find(|line| line.starts_with("[single] showing "))
        .unwrap_or_else(|| panic!("a violations header: {out}"));
    assert!(header.contains(" of ") && header.ends_with("violations, simplest first:"));
    let reproducers: Vec<&str> = out
        .lines()
        .filter_map(|line| line.trim().strip_prefix("reproduce: "))
        .collect();
    assert!(!reproducers.is_empty());
    let first = reproducers[0];
    assert!(
        first.starts_with("cargo run --release -p crashsim --features mutants -- --replay '"),
        "{first}"
    );
    let json = first
        .split_once("--replay '")
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .expect("a quoted reproducer");
    let repro: crashsim::Reproducer = serde_json::from_str(json).expect("a reproducer");
    assert_eq!(repro.mutant.as_deref(), Some("skip-metadata-barrier"));
    let simplicities: Vec<(u8, usize)> = reproducers
        .iter()
        .filter_map(|line| line.split_once("--replay '"))
        .filter_map(|(_, rest)| rest.strip_suffix('\''))
        .map(|json| {
            serde_json::from_str::<crashsim::Reproducer>(json)
                .expect("a reproducer")
                .case
                .simplicity()
        })
        .collect();
    assert!(simplicities.is_sorted(), "simplest first: {simplicities:?}");
    // Replayed without --mutant: the reproducer activates it.
    let replayed = crashsim(&["--replay", json]);
    assert_eq!(replayed.status.code(), Some(1), "{}", stdout(&replayed));
    assert!(stdout(&replayed).contains("mutant skip-metadata-barrier"));
}
