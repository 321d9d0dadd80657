//! `cargo run --release -p crashsim`: explore every built-in workload and print a verdict
//! (`--help` for the options). The command line is [`crashsim::cli::builtin_main`]; a binary of
//! your own runs the same front end over your scenarios with `crashsim::cli::main`.

fn main() -> std::process::ExitCode {
    crashsim::cli::builtin_main()
}
