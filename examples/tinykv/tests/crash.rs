//! tinykv's crash test: every crash state crashsim can build (torn and early-written sectors
//! before every sync, crashes of recovery, crash-recover-append chains, failed syncs and growths,
//! media damage) recovers to the acknowledged records, or those plus the one in flight.

mod scenario;

use scenario::Appends;

#[cfg(not(feature = "planted-bug"))]
#[test]
fn every_crash_recovers_the_acknowledged_records() {
    let outcome = crashsim::check(&Appends { records: 6 }, crashsim::Config::quick());
    println!("{} crash states, no violation", outcome.states);
}

/// With `--features planted-bug`, `append` publishes a record before it is durable: the crash
/// test must catch it (a harness that cannot fail proves nothing).
#[cfg(feature = "planted-bug")]
#[test]
fn the_planted_bug_is_caught() {
    let scenario = Appends { records: 6 };
    let outcome = crashsim::explore(&scenario, &crashsim::Config::quick());
    assert!(
        outcome.violation_count > 0,
        "the planted bug went unnoticed"
    );
    let first = &outcome.violations[0];
    println!(
        "caught: {} violations in {} states; first: {first}",
        outcome.violation_count, outcome.states
    );
    assert!(
        first.finding.invariant.to_string().starts_with("LOG-2"),
        "a record the root names is lost: {first}"
    );
    // Its reproducer replays to the same finding.
    let again = crashsim::replay_json(&scenario, &first.reproducer_json()).expect("replays");
    assert_eq!(again.first().map(|v| &v.finding), Some(&first.finding));
}
