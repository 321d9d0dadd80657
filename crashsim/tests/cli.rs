//! The binary's exit status: `--min-states` makes too small an exploration fail (the gate in
//! `.ci/run` relies on it), and a large enough one pass.

use std::process::{Command, Output};

/// Runs the `crashsim` binary on the `single` workload's crash phase with `--max-states 200`.
fn run(min_states: u64) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crashsim"))
        .args([
            "--workload",
            "single",
            "--phases",
            "crashes",
            "--max-states",
            "200",
            "--min-states",
            &min_states.to_string(),
        ])
        .output()
        .expect("the crashsim binary runs")
}

/// The total the table's verdict line reports.
fn explored(output: &Output) -> u64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdict = stdout
        .lines()
        .find(|line| line.starts_with("verdict:"))
        .unwrap_or_else(|| panic!("no verdict line in:\n{stdout}"));
    verdict
        .split(['(', ' '])
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no state count in {verdict:?}"))
}

#[test]
fn min_states_fails_a_run_that_explores_fewer() {
    let enough = run(100);
    let states = explored(&enough);
    assert!(
        (100..=200).contains(&states),
        "the budget bounds the run: {states} states"
    );
    assert!(enough.status.success(), "{states} >= 100 states passes");

    let too_few = run(states + 1);
    assert_eq!(explored(&too_few), states, "the same run");
    assert_eq!(too_few.status.code(), Some(1), "below --min-states fails");
    let stderr = String::from_utf8_lossy(&too_few.stderr);
    assert!(
        stderr.contains("fewer than --min-states"),
        "the failure says why: {stderr}"
    );
    assert!(String::from_utf8_lossy(&too_few.stdout).contains("verdict: FAIL"));

    assert!(run(states).status.success(), "exactly the minimum passes");
}
