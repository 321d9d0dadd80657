//! Any image opens to a consistent, working pager or a typed error. See
//! `mappedpages_fuzz::open_image`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mappedpages_fuzz::open_image::{OpenInput, run};

fuzz_target!(init: mappedpages_fuzz::init(), |input: OpenInput| {
    run(&input);
});
