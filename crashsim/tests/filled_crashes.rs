//! Every crash state of the `filled` workload (pages filled by `alloc_with`, SPEC.md §3.6.1) in
//! both commit modes, judged by crashsim's filled-page scenario (INV-15). The crashsim gate
//! explores it too, and `filled-4k`; this test puts the 1 KiB ones (about 2 s in a debug build) in
//! `cargo test` and in the mutation run's test set (`.cargo/mutants.toml`), where the data checks'
//! code is mutated.

use crashsim::workloads::by_name;
use crashsim::{Config, Phases};

#[test]
fn every_crash_state_of_the_filled_workloads_keeps_filled_pages_whole() {
    let config = Config {
        phases: Phases {
            crashes: true,
            recovery_crashes: true,
            chains: true,
            failed_syncs: true,
            media: true,
            ..Phases::none()
        },
        ..Config::quick()
    };
    for name in ["filled", "filled+single-sync"] {
        let workload = by_name(name).expect("a built-in workload");
        let outcome = workload.explore(&config);
        println!(
            "{name}: {} syncs, {} crash states",
            outcome.syncs, outcome.states
        );
        assert!(
            outcome.violations.is_empty(),
            "{name}: {}",
            outcome
                .violations
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(!outcome.truncated, "{name}: explored completely");
        assert!(outcome.states > 1_000, "{name}: {} states", outcome.states);
    }
}
