//! Every format decoder rejects or round-trips. See `mappedpages_fuzz::format`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mappedpages_fuzz::format::{FormatInput, run};

fuzz_target!(init: mappedpages_fuzz::init(), |input: FormatInput| {
    run(&input);
});
