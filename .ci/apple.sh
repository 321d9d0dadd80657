#!/usr/bin/env bash
# macOS: `cargo check --all-targets` and `cargo clippy --all-targets -- -D warnings` of the
# mappedpages and crashsim packages for aarch64-apple-darwin and x86_64-apple-darwin. Called by
# .ci/run; runs from anywhere. Nothing links or runs (no macOS here): what this checks is that
# the macOS code (F_FULLFSYNC barriers, SPEC.md §5) compiles and lints clean; its barrier
# sequence is unit-tested on every system through the pure plan in src/storage/mmap.rs.
#
# Not bench, which interposes Linux's msync/fsync symbols, nor cli/ (its own helper's; add it
# here when it is known to build for Darwin). crashsim compiles no C since it dropped mimalloc.
#
# Installs the Rust targets with rustup (the std of a foreign target is all check and clippy
# need). Exit status: 0 passed, 3 skipped (a loud banner says why), anything else failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGETS=(aarch64-apple-darwin x86_64-apple-darwin)

skip() {
    cat <<BANNER

##########################################################################
##                                                                      ##
##   SKIPPED: macOS check and clippy                                    ##
##                                                                      ##
##   $1
##                                                                      ##
##########################################################################

BANNER
    exit 3
}

installed=$(rustup target list --installed 2>/dev/null) || skip "rustup not available"
for target in "${TARGETS[@]}"; do
    if ! grep -qx "$target" <<<"$installed"; then
        echo "+ rustup target add $target"
        timeout 300 rustup target add "$target" || skip "rustup target add $target failed"
    fi
done
for target in "${TARGETS[@]}"; do
    echo "+ cargo check -p mappedpages -p crashsim --all-targets --target $target"
    cargo check -p mappedpages -p crashsim --all-targets --target "$target"
    echo "+ cargo clippy -p mappedpages -p crashsim --all-targets --target $target -- -D warnings"
    cargo clippy -p mappedpages -p crashsim --all-targets --target "$target" -- -D warnings
done
