//! The test-friendly front end: `crashsim::check` passes a correct scenario, panics with a
//! readable report (user invariant names, "K violations in N crash states", a replay line per
//! violation) for a broken one and for a run cut short, and `replay_json` replays what it printed.
//! The scenario owns its pager (run hands it back) and checks through `Recovered::to_pager`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crashsim::{
    Allowed, Config, Finding, Invariant, Matched, Recorder, Recovered, ReplayError, Scenario,
};
use mappedpages::{PageId, Pager, SimStorage};

const P: usize = 1024;

/// Writes `value` into a fresh page per step and acknowledges it, syncing the page first unless
/// `forget_sync` (the bug).
struct Notes {
    forget_sync: bool,
}

impl Scenario<P> for Notes {
    type Model = Vec<(u64, u8)>;

    fn name(&self) -> String {
        if self.forget_sync {
            "notes-forget-sync".into()
        } else {
            "notes".into()
        }
    }

    fn initial_model(&self) -> Self::Model {
        Vec::new()
    }

    fn run(
        &self,
        mut pager: Pager<P, SimStorage>,
        rec: &mut Recorder<Self::Model>,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let mut model = Vec::new();
        for value in 1..=3u8 {
            let Ok(id) = pager.alloc() else { break };
            if let Ok(page) = id.get_mut(&mut pager) {
                page.as_bytes_mut().fill(value);
            }
            if !self.forget_sync && pager.sync_page(id).is_err() {
                break;
            }
            model.push((id.raw(), value));
            rec.ack(&pager, model.clone());
        }
        Ok(pager)
    }

    fn check(
        &self,
        recovered: &Recovered<'_, P>,
        allowed: &Allowed<'_, Self::Model>,
    ) -> Result<Matched, Finding> {
        // An owned pager, as a store that owns its pager would open on.
        let pager = recovered.to_pager()?;
        let holds = |model: &Self::Model| {
            model.iter().all(|&(page, value)| {
                PageId::<P>::from_raw(page)
                    .get(&pager)
                    .is_ok_and(|p| p.as_bytes().iter().all(|&b| b == value))
            })
        };
        if holds(allowed.acknowledged) {
            Ok(Matched::Acknowledged)
        } else if allowed.in_flight.is_some_and(holds) {
            Ok(Matched::InFlight)
        } else {
            Err(Finding::new(
                Invariant::user("NOTE-1 acknowledged notes keep their bytes"),
                "a note lost its bytes",
            ))
        }
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn check_passes_a_correct_scenario() {
    let outcome = crashsim::check(&Notes { forget_sync: false }, Config::quick());
    assert!(outcome.states > 100, "{} states", outcome.states);
    assert!(!outcome.truncated);
}

#[test]
fn check_panics_with_a_readable_report_that_replays() {
    let scenario = Notes { forget_sync: true };
    let panic = catch_unwind(AssertUnwindSafe(|| {
        crashsim::check(&scenario, Config::quick());
    }))
    .expect_err("the bug is caught");
    let report = panic_message(panic);
    assert!(
        report.starts_with("crashsim: notes-forget-sync: "),
        "{report}"
    );
    assert!(report.contains(" violations in "), "{report}");
    assert!(report.contains("simplest first"), "{report}");
    assert!(
        report.contains("  NOTE-1 acknowledged notes keep their bytes: a note lost its bytes"),
        "the user's invariant by name: {report}"
    );
    assert!(!report.contains("INV-"), "{report}");
    let json = report
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("replay: crashsim::replay_json(&scenario, r#\"")
        })
        .and_then(|rest| rest.strip_suffix("\"#)"))
        .unwrap_or_else(|| panic!("a replay line: {report}"));
    let violations = crashsim::replay_json(&scenario, json).expect("replays");
    assert!(!violations.is_empty(), "the replay finds it again");
    assert_eq!(
        violations[0].finding.invariant,
        Invariant::user("NOTE-1 acknowledged notes keep their bytes")
    );
    // The fixed scenario has another name: the reproducer is not its.
    let other = crashsim::replay_json(&Notes { forget_sync: false }, json);
    assert!(
        matches!(other, Err(ReplayError::OtherWorkload { .. })),
        "{other:?}"
    );
}

#[test]
fn check_does_not_pass_a_run_cut_short() {
    let panic = catch_unwind(|| {
        crashsim::check(
            &Notes { forget_sync: false },
            Config {
                max_states: 10,
                ..Config::quick()
            },
        );
    })
    .expect_err("a run cut short is no pass");
    let message = panic_message(panic);
    assert!(message.contains("explored only in part"), "{message}");
}
