//! The crashsim command line over tinykv: progress, table, `--list`, `--json`, `--replay`.
//!
//! ```sh
//! cargo run --release --example crash                        # explore, PASS or FAIL
//! cargo run --release --example crash --features planted-bug # FAIL, with reproducers
//! cargo run --release --example crash -- --replay '<reproducer>'
//! ```

#[path = "../tests/scenario/mod.rs"]
mod scenario;

fn main() -> std::process::ExitCode {
    crashsim::cli::main(vec![
        crashsim::workload(scenario::Appends { records: 6 }),
        crashsim::workload(scenario::Appends { records: 20 }),
    ])
}
