//! Shared code of the mappedpages fuzz targets (`fuzz_targets/*.rs` are thin wrappers around
//! [`recovery::run`], [`open_image::run`] and [`format::run`]) and of the seed-corpus generator
//! (`examples/corpus.rs`).
//!
//! Every finding is reported by panicking with a message that starts with `FINDING INV-n:`
//! (the invariant of SPEC.md §6), which libFuzzer records as a crash with its reproducer. A panic
//! that does not come from a check (inside mappedpages, crashsim or the harness) is labelled
//! INV-9 by the hook [`init`] installs.

pub mod format;
pub mod open_image;
pub mod recovery;

use std::sync::Once;

/// Prefix of every finding's panic message.
pub const FINDING_PREFIX: &str = "FINDING ";

/// Environment variable naming the mutant to activate (builds with `--features mutants`).
pub const MUTANT_ENV: &str = "MAPPEDPAGES_FUZZ_MUTANT";

/// Reports a finding against `INV-{invariant}` and stops the run (libFuzzer saves the input).
#[track_caller]
pub fn finding(invariant: u8, message: impl std::fmt::Display) -> ! {
    panic!("{FINDING_PREFIX}INV-{invariant}: {message}")
}

/// Once per process: labels panics that are not findings as INV-9 (the previous hook, libFuzzer's,
/// then prints the message and aborts), and activates the mutant named by [`MUTANT_ENV`].
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with(FINDING_PREFIX) {
                eprintln!(
                    "{FINDING_PREFIX}INV-9: panic (no value and no typed error): {message} at {}",
                    info.location()
                        .map_or_else(|| "unknown location".to_string(), |l| l.to_string())
                );
            }
            previous(info);
        }));
        activate_mutant_from_env();
    });
}

#[cfg(feature = "mutants")]
fn activate_mutant_from_env() {
    use mappedpages::mutants::{self, Mutant};
    let Ok(name) = std::env::var(MUTANT_ENV) else {
        return;
    };
    if name.is_empty() {
        return;
    }
    match Mutant::from_name(&name) {
        Some(mutant) => {
            mutants::set_active(Some(mutant));
            eprintln!("mappedpages-fuzz: mutant `{}` is ACTIVE", mutant.name());
        }
        None => {
            let names: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
            eprintln!(
                "mappedpages-fuzz: unknown mutant `{name}`; one of: {}",
                names.join(", ")
            );
            std::process::exit(2);
        }
    }
}

#[cfg(not(feature = "mutants"))]
fn activate_mutant_from_env() {
    if std::env::var(MUTANT_ENV).is_ok_and(|name| !name.is_empty()) {
        eprintln!(
            "mappedpages-fuzz: {MUTANT_ENV} is set but this build has no mutants; \
             build with `cargo fuzz run --features mutants <target>`"
        );
        std::process::exit(2);
    }
}

/// CRC-32 (IEEE) as the format uses it.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// A short, printable summary of a byte string (length, FNV-1a hash, first bytes).
pub fn summarize(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let head: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{} bytes, fnv {hash:016x}, starts {}",
        bytes.len(),
        head.join("")
    )
}
