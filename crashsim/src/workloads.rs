//! The built-in workloads, behind one object-safe interface ([`Workload`]) so that page sizes
//! can be mixed; [`workload`] makes one of any [`Scenario`].

use crate::alloc_model::{
    AllocScenario, bulk_ops, churn_ops, groups_ops, growth_ops, random_ops, single_ops, tables_ops,
    wide_ops,
};
use crate::concurrent_model::ConcurrentScenario;
use crate::filled_model::{FilledScenario, filled_ops};
use crate::protected_model::{ProtectedScenario, protected_ops, random_protected_ops};
use mappedpages::CommitMode;

use crate::{
    Case, Config, NotEvaluated, Outcome, Scenario, Violation, commit_mode_suffix, explore, replay,
};

/// Operations in a seeded protected mix (`pmix-<seed>`).
const PROTECTED_MIX_OPS: usize = 60;

/// Threads of the concurrent workloads (`threads-8`, `threads-8-4k`). With 8 threads on a
/// small machine, groups of several operations form and woken callers often run while their
/// leader is still committing (what makes an early acknowledgement visible).
const THREADS: usize = 8;

/// Operations per thread of the concurrent workloads.
const THREAD_OPS: usize = 40;

/// A workload the command-line front end ([`cli`](crate::cli)) can explore: a [`Scenario`]
/// with its page size erased, so that scenarios of several page sizes fit in one list. Make one
/// of any scenario with [`workload`].
pub trait Workload: Sync + Send {
    /// Name used in reports, `--workload` and reproducers.
    fn name(&self) -> String;
    /// One line saying what the workload does (`--list`).
    fn description(&self) -> String;
    /// Seed the workload was generated from.
    fn seed(&self) -> u64;
    /// Page size in bytes.
    fn page_size(&self) -> usize;
    /// The commit mode it runs in.
    fn commit_mode(&self) -> CommitMode;
    /// Explores it.
    fn explore(&self, config: &Config) -> Outcome;
    /// Reruns one case ([`replay`]).
    fn replay(&self, case: &Case) -> Result<Vec<Violation>, NotEvaluated>;
}

/// A [`Scenario`] as a [`Workload`] (what [`workload`] returns).
struct ScenarioWorkload<const P: usize, S> {
    scenario: S,
    description: Option<String>,
}

impl<const P: usize, S: Scenario<P> + Send> Workload for ScenarioWorkload<P, S> {
    fn name(&self) -> String {
        self.scenario.name()
    }
    fn description(&self) -> String {
        self.description
            .clone()
            .unwrap_or_else(|| self.scenario.description())
    }
    fn seed(&self) -> u64 {
        self.scenario.seed()
    }
    fn page_size(&self) -> usize {
        P
    }
    fn commit_mode(&self) -> CommitMode {
        self.scenario.commit_mode()
    }
    fn explore(&self, config: &Config) -> Outcome {
        explore::<P, _>(&self.scenario, config)
    }
    fn replay(&self, case: &Case) -> Result<Vec<Violation>, NotEvaluated> {
        replay::<P, _>(&self.scenario, case)
    }
}

/// `scenario` as a [`Workload`], for [`cli::main`](crate::cli::main) (the page size is
/// inferred from the scenario's one `Scenario<P>` implementation):
///
/// ```no_run
/// # use crashsim::{Allowed, Finding, Matched, Recorder, Recovered, Scenario};
/// # use mappedpages::{Pager, SimStorage};
/// # struct MyScenario;
/// # impl Scenario<4096> for MyScenario {
/// #     type Model = ();
/// #     fn name(&self) -> String { "mine".into() }
/// #     fn initial_model(&self) {}
/// #     fn run(&self, pager: Pager<4096, SimStorage>, _: &mut Recorder<()>)
/// #         -> Result<Pager<4096, SimStorage>, Finding> { Ok(pager) }
/// #     fn check(&self, _: &Recovered<'_, 4096>, _: &Allowed<'_, ()>)
/// #         -> Result<Matched, Finding> { Ok(Matched::Acknowledged) }
/// # }
/// fn main() -> std::process::ExitCode {
///     crashsim::cli::main(vec![crashsim::workload(MyScenario)])
/// }
/// ```
pub fn workload<const P: usize, S: Scenario<P> + Send + 'static>(scenario: S) -> Box<dyn Workload> {
    Box::new(ScenarioWorkload::<P, S> {
        scenario,
        description: None,
    })
}

/// A built-in scenario as a [`Workload`] described by [`describe`].
fn builtin_workload<const P: usize, S: Scenario<P> + Send + 'static>(
    base: &str,
    scenario: S,
) -> Option<Box<dyn Workload>> {
    Some(Box::new(ScenarioWorkload::<P, S> {
        scenario,
        description: Some(describe(base)),
    }))
}

/// What the built-in workload with base name `base` does, in one line.
fn describe(base: &str) -> String {
    let fixed = match base {
        "single" => "single allocations and frees, fragmenting until the allocation log folds",
        "bulk" => "bulk allocations and frees of several sizes",
        "growth" | "growth-4k" => "growth from 16 to 512 pages in steps, with frees in between",
        "churn" => "alloc and free of the same pages over and over (log entries shrink back)",
        "groups" => "allocations across three bitmap groups",
        "wide" => "one allocation across six bitmap groups, then group 0 fragmented until it folds",
        "tables" => {
            "one allocation across 66 groups (two group table pages), then a free in each group (folds in both table pages)"
        }
        "filled" | "filled-4k" => {
            "pages allocated with their contents (alloc_with), written again, freed and reused"
        }
        "protected" | "protected-4k" => {
            "protected pages: commits, partial commits, discarded writers, reuse, a second directory block"
        }
        "threads-8" | "threads-8-4k" => {
            "8 threads of 40 operations on one SharedPager (group commits)"
        }
        _ => "",
    };
    if !fixed.is_empty() {
        fixed.to_string()
    } else if base.starts_with("mix-") {
        "seeded random mix of 80 allocation operations".to_string()
    } else {
        format!("seeded random mix of {PROTECTED_MIX_OPS} regular and protected operations")
    }
}

/// The built-in workloads: the fixed allocation ones, `mixes` seeded random allocation mixes
/// (seeds `seed`, `seed + 1`, …; every fourth at 4 KiB pages, the rest at 1 KiB), the fixed
/// protected ones (`protected`, `protected-4k`), then `protected_mixes` seeded protected-page
/// mixes (`pmix-<seed>`, 1 KiB pages, same seeds), then the concurrent ones (`threads-8`,
/// `threads-8-4k`: 8 threads on one `SharedPager`, VERIFICATION.md); each in every mode of
/// `commit_modes` (a single-sync workload's name ends in `+single-sync`).
pub fn builtin(
    mixes: u64,
    protected_mixes: u64,
    seed: u64,
    commit_modes: &[CommitMode],
) -> Vec<Box<dyn Workload>> {
    let mut names: Vec<String> = [
        "single",
        "bulk",
        "growth",
        "growth-4k",
        "churn",
        "groups",
        "wide",
        "tables",
        "filled",
        "filled-4k",
    ]
    .map(String::from)
    .to_vec();
    for index in 0..mixes {
        let mix_seed = seed.wrapping_add(index);
        names.push(if index % 4 == 3 {
            format!("mix-4k-{mix_seed}")
        } else {
            format!("mix-{mix_seed}")
        });
    }
    // The protected workloads come last: each costs a few times a regular mix, and the state
    // budget is split evenly, with what a workload leaves unused passed on to the next ones.
    names.push("protected".into());
    names.push("protected-4k".into());
    for index in 0..protected_mixes {
        names.push(format!("pmix-{}", seed.wrapping_add(index)));
    }
    // Last: their thread interleavings, so their state counts, vary from run to run, and the
    // budget they leave over is passed on to nobody.
    names.push("threads-8".into());
    names.push("threads-8-4k".into());
    let mut workloads = Vec::new();
    for name in &names {
        for &mode in commit_modes {
            workloads.push(in_mode(name, mode).expect("every built-in name is a workload"));
        }
    }
    workloads
}

/// The built-in workload called `name`: a base name (`single`, `bulk`, `growth`, `growth-4k`,
/// `churn`, `groups`, `wide`, `tables`, `filled`, `filled-4k`, `protected`, `protected-4k`, `threads-8`, `threads-8-4k`, or the generated
/// `mix-<seed>`, `mix-4k-<seed>`, `pmix-<seed>`, `pmix-4k-<seed>`), optionally followed by
/// `+single-sync`.
pub fn by_name(name: &str) -> Option<Box<dyn Workload>> {
    let single_sync = commit_mode_suffix(CommitMode::SingleSync);
    match name.strip_suffix(single_sync) {
        Some(base) => in_mode(base, CommitMode::SingleSync),
        None => in_mode(name, CommitMode::Flip),
    }
}

/// The workload with base name `base`, committing in `mode`.
fn in_mode(base: &str, mode: CommitMode) -> Option<Box<dyn Workload>> {
    let seed_of = |prefix: &str| base.strip_prefix(prefix).and_then(|s| s.parse().ok());
    if let Some(seed) = seed_of("mix-4k-") {
        return builtin_workload::<4096, _>(
            base,
            AllocScenario::<4096>::new(base, seed, random_ops(seed, 80)).with_commit_mode(mode),
        );
    }
    if let Some(seed) = seed_of("mix-") {
        return builtin_workload::<1024, _>(
            base,
            AllocScenario::<1024>::new(base, seed, random_ops(seed, 80)).with_commit_mode(mode),
        );
    }
    if let Some(seed) = seed_of("pmix-4k-") {
        return builtin_workload::<4096, _>(
            base,
            ProtectedScenario::<4096>::new(
                base,
                seed,
                random_protected_ops(seed, PROTECTED_MIX_OPS),
            )
            .with_commit_mode(mode),
        );
    }
    if let Some(seed) = seed_of("pmix-") {
        return builtin_workload::<1024, _>(
            base,
            ProtectedScenario::<1024>::new(
                base,
                seed,
                random_protected_ops(seed, PROTECTED_MIX_OPS),
            )
            .with_commit_mode(mode),
        );
    }
    let alloc1k = |ops| {
        builtin_workload::<1024, _>(
            base,
            AllocScenario::<1024>::new(base, 0, ops).with_commit_mode(mode),
        )
    };
    match base {
        "single" => alloc1k(single_ops()),
        "bulk" => alloc1k(bulk_ops()),
        "growth" => alloc1k(growth_ops()),
        "growth-4k" => builtin_workload::<4096, _>(
            base,
            AllocScenario::<4096>::new(base, 0, growth_ops()).with_commit_mode(mode),
        ),
        "churn" => alloc1k(churn_ops()),
        "groups" => alloc1k(groups_ops()),
        "wide" => alloc1k(wide_ops()),
        "tables" => alloc1k(tables_ops()),
        "filled" => builtin_workload::<1024, _>(
            base,
            FilledScenario::<1024>::new(base, 0, filled_ops()).with_commit_mode(mode),
        ),
        "filled-4k" => builtin_workload::<4096, _>(
            base,
            FilledScenario::<4096>::new(base, 0, filled_ops()).with_commit_mode(mode),
        ),
        "protected" => builtin_workload::<1024, _>(
            base,
            ProtectedScenario::<1024>::new(base, 0, protected_ops(1024)).with_commit_mode(mode),
        ),
        "protected-4k" => builtin_workload::<4096, _>(
            base,
            ProtectedScenario::<4096>::new(base, 0, protected_ops(4096)).with_commit_mode(mode),
        ),
        "threads-8" => builtin_workload::<1024, _>(
            base,
            ConcurrentScenario::<1024>::new(base, 0, THREADS, THREAD_OPS).with_commit_mode(mode),
        ),
        "threads-8-4k" => builtin_workload::<4096, _>(
            base,
            ConcurrentScenario::<4096>::new(base, 0, THREADS, THREAD_OPS).with_commit_mode(mode),
        ),
        _ => None,
    }
}
