//! The test-friendly front end: [`check`] explores a scenario and panics with a readable report,
//! [`replay_json`] reruns one of the reproducers it printed.

use crate::{Config, NotEvaluated, Outcome, Reproducer, Scenario, Violation, explore, replay};

/// Explores every crash state of `scenario` that `config` allows and returns the outcome; panics,
/// with a report a person can read, if any state violates an invariant or if the budget
/// (`config.max_states`, `config.deadline`) cut the exploration short. For a `#[test]`:
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
/// #[test]
/// fn my_store_survives_every_crash() {
///     crashsim::check(&MyScenario, crashsim::Config::quick());
/// }
/// ```
///
/// The report names the scenario, counts the violations and the states explored, and shows the
/// simplest violations first (plain crashes, fewest kept sectors), each with the line that
/// replays it alone: `crashsim::replay_json(&scenario, r#"<reproducer>"#)`.
#[track_caller]
pub fn check<const P: usize, S: Scenario<P>>(scenario: &S, config: Config) -> Outcome {
    let outcome = explore(scenario, &config);
    if outcome.violation_count > 0 {
        panic!("{}", report(&outcome));
    }
    assert!(
        !outcome.truncated,
        "crashsim: {} was explored only in part ({} crash states before the budget or the \
         deadline of its Config ran out): no violation seen, but that is no pass; raise \
         max_states or drop the deadline",
        outcome.workload, outcome.states
    );
    outcome
}

/// The report [`check`] panics with.
fn report(outcome: &Outcome) -> String {
    let mut text = format!(
        "crashsim: {}: {} violations in {} crash states (showing {}, simplest first)",
        outcome.workload,
        outcome.violation_count,
        outcome.states,
        outcome.violations.len()
    );
    for violation in &outcome.violations {
        text.push_str(&format!(
            "\n  {}\n      replay: crashsim::replay_json(&scenario, r#\"{}\"#)",
            violation.finding,
            violation.reproducer_json()
        ));
    }
    text
}

/// Why [`replay_json`] could not replay a reproducer.
#[derive(Debug)]
pub enum ReplayError {
    /// The text is no reproducer (the JSON decoder's message).
    NotAReproducer(String),
    /// The reproducer names another workload than the scenario given.
    OtherWorkload {
        /// The reproducer's.
        reproducer: String,
        /// The scenario's.
        scenario: String,
    },
    /// The reproducer was printed under a mutant that cannot be activated here (an unknown
    /// name, or crashsim built without its `mutants` feature).
    Mutant(String),
    /// The scenario has no such crash state.
    NotEvaluated(NotEvaluated),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::NotAReproducer(error) => {
                write!(f, "not a reproducer crashsim printed: {error}")
            }
            ReplayError::OtherWorkload {
                reproducer,
                scenario,
            } => write!(
                f,
                "the reproducer is of workload {reproducer}, the scenario given is {scenario}"
            ),
            ReplayError::Mutant(message) => f.write_str(message),
            ReplayError::NotEvaluated(not_evaluated) => not_evaluated.fmt(f),
        }
    }
}

impl std::error::Error for ReplayError {}

/// Reruns the one crash state `json` (a reproducer [`check`] or the command line printed) of
/// `scenario`, activating the mutant it records if any, and returns the violations found (each
/// also printed as it appears). An empty list: the state is fine now.
pub fn replay_json<const P: usize, S: Scenario<P>>(
    scenario: &S,
    json: &str,
) -> Result<Vec<Violation>, ReplayError> {
    let repro: Reproducer =
        serde_json::from_str(json).map_err(|e| ReplayError::NotAReproducer(e.to_string()))?;
    if repro.workload != scenario.name() {
        return Err(ReplayError::OtherWorkload {
            reproducer: repro.workload,
            scenario: scenario.name(),
        });
    }
    crate::cli::activate_mutant(repro.mutant.as_deref()).map_err(ReplayError::Mutant)?;
    replay(scenario, &repro.case).map_err(ReplayError::NotEvaluated)
}
