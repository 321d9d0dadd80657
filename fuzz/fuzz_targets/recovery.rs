//! Fuzzer-chosen workload, crash point and surviving sectors (or an injected failure), judged by
//! crashsim's checker. See `mappedpages_fuzz::recovery`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mappedpages_fuzz::recovery::{RecoveryInput, run};

fuzz_target!(init: mappedpages_fuzz::init(), |input: RecoveryInput| {
    run(&input);
});
