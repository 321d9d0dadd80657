//! `cargo run --release -p crashsim`: explore every built-in workload and print a verdict
//! (`--help` for the options). The command line is [`crashsim::cli::builtin_main`]; a binary of
//! your own runs the same front end over your scenarios with `crashsim::cli::main`.

// Crash images are large, short-lived buffers: with `--features mimalloc`, an allocator that
// keeps freed memory avoids a page fault per byte of every image.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    crashsim::cli::builtin_main()
}
