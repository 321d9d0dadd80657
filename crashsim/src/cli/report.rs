//! The report of a run: the table (and the violations, simplest first, each with the command
//! that replays it) or the JSON document, and the verdict.

use std::time::Duration;

use super::progress::thousands;
use crate::Outcome;

/// PASS, PARTIAL or FAIL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Everything explored, nothing violated, at least the minimum of states.
    Pass,
    /// Nothing violated, but `--seconds` or `--max-states` cut the run short.
    Partial,
    /// A violation, or fewer states than `--min-states`.
    Fail,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Partial => "PARTIAL",
            Verdict::Fail => "FAIL",
        }
    }
}

/// A finished run, as the report shows it.
pub(super) struct Run<'a> {
    pub(super) outcomes: &'a [Outcome],
    /// Workloads never started (the deadline or budget ran out first).
    pub(super) not_explored: &'a [String],
    pub(super) elapsed: Duration,
    pub(super) min_states: u64,
    pub(super) seed: u64,
    pub(super) mutant: Option<&'a str>,
    /// What cut the run short, for the report: "--seconds 3", "--max-states 1000".
    pub(super) limits: String,
    /// The command a reproducer is replayed with (`<it> --replay '<json>'`).
    pub(super) replay_command: String,
}

impl Run<'_> {
    pub(super) fn states(&self) -> u64 {
        self.outcomes.iter().map(|o| o.states).sum()
    }

    fn violations(&self) -> u64 {
        self.outcomes.iter().map(|o| o.violation_count).sum()
    }

    /// Workloads explored only in part (budget or deadline), without a violation.
    fn cut_short(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter(|o| o.truncated && o.violation_count == 0)
            .map(|o| o.workload.as_str())
            .collect()
    }

    pub(super) fn verdict(&self) -> Verdict {
        if self.violations() > 0 || self.states() < self.min_states {
            Verdict::Fail
        } else if !self.not_explored.is_empty() || !self.cut_short().is_empty() {
            Verdict::Partial
        } else {
            Verdict::Pass
        }
    }

    fn rate(&self) -> f64 {
        rate(self.states(), self.elapsed)
    }
}

fn rate(states: u64, elapsed: Duration) -> f64 {
    states as f64 / elapsed.as_secs_f64().max(1e-9)
}

pub(super) fn threads() -> usize {
    #[cfg(feature = "parallel")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "parallel"))]
    {
        1
    }
}

/// `names`, at most `shown` of them, then how many more.
fn some_of(names: &[&str], shown: usize) -> String {
    let mut text = names
        .iter()
        .take(shown)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > shown {
        text.push_str(&format!(
            ", … and {} more (--json lists them all)",
            names.len() - shown
        ));
    }
    text
}

pub(super) fn print_table(run: &Run<'_>) {
    let width = run
        .outcomes
        .iter()
        .map(|o| o.workload.chars().count())
        .chain(["workload".len()])
        .max()
        .unwrap_or(8);
    println!(
        "{:<width$} {:>6} {:>10} {:>10} {:>9} {:>10}  verdict",
        "workload", "syncs", "states", "violations", "seconds", "states/s"
    );
    for o in run.outcomes {
        let verdict = if o.violation_count > 0 {
            "VIOLATED"
        } else if o.truncated {
            "partial"
        } else {
            "ok"
        };
        println!(
            "{:<width$} {:>6} {:>10} {:>10} {:>9.2} {:>10.0}  {verdict}",
            o.workload,
            o.syncs,
            o.states,
            o.violation_count,
            o.elapsed.as_secs_f64(),
            rate(o.states, o.elapsed)
        );
    }
    let syncs: u64 = run.outcomes.iter().map(|o| o.syncs).sum();
    println!(
        "{:<width$} {:>6} {:>10} {:>10} {:>9.2} {:>10.0}",
        "total",
        syncs,
        run.states(),
        run.violations(),
        run.elapsed.as_secs_f64(),
        run.rate()
    );
    print_partial(run);
    print_violations(run);
    let verdict = run.verdict();
    let mut line = format!(
        "\nverdict: {} ({} crash states, minimum {}, {} of {} workloads explored, {} threads",
        verdict.word(),
        run.states(),
        run.min_states,
        run.outcomes.len(),
        run.outcomes.len() + run.not_explored.len(),
        threads()
    );
    if let Some(mutant) = run.mutant {
        line.push_str(&format!(", mutant {mutant}"));
    }
    line.push(')');
    println!("{line}");
    if verdict == Verdict::Partial {
        println!(
            "PARTIAL: {} cut this run short; it is no PASS (exit status 3, or 0 with \
             --allow-partial). Run without it to explore everything.",
            run.limits
        );
    }
}

fn print_partial(run: &Run<'_>) {
    if !run.not_explored.is_empty() {
        let names: Vec<&str> = run.not_explored.iter().map(String::as_str).collect();
        println!(
            "not explored ({} reached): {} of {} workloads: {}",
            run.limits,
            names.len(),
            run.outcomes.len() + names.len(),
            some_of(&names, 12)
        );
    }
    let cut = run.cut_short();
    if !cut.is_empty() {
        println!(
            "explored in part ({} reached): {} workloads: {}",
            run.limits,
            cut.len(),
            some_of(&cut, 12)
        );
    }
}

fn print_violations(run: &Run<'_>) {
    for o in run.outcomes.iter().filter(|o| o.violation_count > 0) {
        println!(
            "\n[{}] showing {} of {} violations, simplest first:",
            o.workload,
            o.violations.len(),
            thousands(o.violation_count)
        );
        for v in &o.violations {
            println!("  {}", v.finding);
            println!(
                "      reproduce: {} --replay '{}'",
                run.replay_command,
                v.reproducer_json()
            );
        }
    }
}

pub(super) fn print_json(run: &Run<'_>) {
    let verdict = match run.verdict() {
        Verdict::Pass => "pass",
        Verdict::Partial => "partial",
        Verdict::Fail => "fail",
    };
    let report = serde_json::json!({
        "verdict": verdict,
        "states": run.states(),
        "min_states": run.min_states,
        "violations": run.violations(),
        "elapsed_seconds": run.elapsed.as_secs_f64(),
        "states_per_second": run.rate(),
        "threads": threads(),
        "seed": run.seed,
        "mutant": run.mutant,
        "not_explored": run.not_explored,
        "cut_short": run.cut_short(),
        "replay_command": run.replay_command,
        "workloads": run.outcomes,
    });
    match serde_json::to_string_pretty(&report) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: cannot encode the report: {error}"),
    }
}
