//! Running one test of the current test binary again in a child process (`#[path =
//! "common/child.rs"] mod child;` in the test files that need a second process: a second
//! process's lock, a process-wide limit, a process that may die of a signal).

use std::path::Path;

/// Runs the test `name` of this binary again in a child process with `MAPPEDPAGES_CHILD` set to
/// `arg`, and returns its exit status and stderr. The test tells the two runs apart by that
/// variable.
pub fn run_child(name: &str, arg: &Path) -> (std::process::ExitStatus, String) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("MAPPEDPAGES_CHILD", arg)
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
