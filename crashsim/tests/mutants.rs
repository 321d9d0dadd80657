//! Every deliberately broken protocol variant must be caught by crashsim, and the correct
//! protocol must not be (a harness that cannot fail proves nothing).
//!
//! Run with `cargo test --release -p crashsim --features mutants --test mutants`.
#![cfg(feature = "mutants")]

use crashsim::workloads::{Workload, by_name};
use crashsim::{Config, Outcome};
use mappedpages::mutants::{self, Mutant};

/// A small but complete set of workloads: folds, growth, bulk, 4 KiB pages, random mixes, and
/// protected pages (repeated and partial commits, discarded writers, reuse, a second directory
/// block, at both page sizes, and a random protected mix); some of them in single-sync mode,
/// where the single-sync mutants act; pages filled by `alloc_with` in both modes (where the
/// filled-page mutants act); and the concurrent workload in both modes (real threads on one
/// `SharedPager`, where the group-commit mutant acts); and groups materialized whole in one
/// single-sync commit (format 3's lazy group load, where the open-time slot check acts).
fn workloads() -> Vec<Box<dyn Workload>> {
    [
        "single",
        "bulk",
        "growth",
        "growth-4k",
        "mix-0",
        "mix-1",
        "mix-4k-3",
        "protected",
        "protected-4k",
        "pmix-0",
        "single+single-sync",
        "growth+single-sync",
        "protected+single-sync",
        "pmix-0+single-sync",
        "filled",
        "filled+single-sync",
        "wide+single-sync",
        "threads-8",
        "threads-8+single-sync",
    ]
    .iter()
    .map(|name| by_name(name).expect("built-in workload"))
    .collect()
}

fn explore_all(config: &Config) -> Vec<Outcome> {
    workloads().iter().map(|w| w.explore(config)).collect()
}

#[test]
fn every_mutant_is_caught_and_the_correct_protocol_is_not() {
    mutants::set_active(None);
    let control = explore_all(&Config::quick());
    for outcome in &control {
        assert_eq!(
            outcome.violation_count, 0,
            "the correct protocol violates an invariant in {}: {:?}",
            outcome.workload, outcome.violations
        );
    }
    let config = Config {
        stop_at_first_violation: true,
        ..Config::quick()
    };
    let mut table = Vec::new();
    let mut survivors = Vec::new();
    for mutant in Mutant::ALL {
        mutants::set_active(Some(mutant));
        let outcomes = explore_all(&config);
        mutants::set_active(None);
        let first = outcomes.iter().find_map(|o| {
            o.violations
                .first()
                .map(|v| (o.workload.clone(), v.clone()))
        });
        match first {
            Some((workload, violation)) => table.push(format!(
                "{:<30} {:<7} {:<13} {}",
                mutant.name(),
                violation.finding.invariant,
                workload,
                violation.finding.message
            )),
            None => survivors.push(mutant.name()),
        }
    }
    println!("mutant                         caught by  workload      first finding");
    for row in &table {
        println!("{row}");
    }
    assert!(survivors.is_empty(), "mutants not caught: {survivors:?}");
    assert!(Mutant::ALL.len() >= 8);
}
