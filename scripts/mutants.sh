#!/usr/bin/env bash
# Mutation score of src/format/, src/commit.rs, src/recovery/, src/storage/ and the group-commit
# engine src/shared/group.rs with src/shared/flight.rs (configuration and the tests each mutant runs: .cargo/mutants.toml).
# Results land in mutants.out/; the figures and the time it took are in README.md.
#   scripts/mutants.sh                                    # everything
#   scripts/mutants.sh --shard 2/8 --sharding round-robin # one eighth of it
#   scripts/mutants.sh --file src/commit.rs               # one file
#
# The tests include crashsim's (another package), so the run tests the workspace; cargo-mutants'
# baseline would test only the mutated package and fail on the crashsim test names, so the
# baseline is checked here first, by hand, and skipped there.
set -euo pipefail
cd "$(dirname "$0")/.."
# Speed only: no debug info and mold (when installed) for the build of every mutant: 4.8 -> 2.2 s
# per rebuild, 10 -> 6 s per test run of the targets below (2026-12-02, 2 cores).
export CARGO_PROFILE_DEV_DEBUG=0
if command -v mold >/dev/null 2>&1; then
    export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-fuse-ld=mold"
fi
if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants
fi
# Without a --file of the caller's, the whole set (other arguments, e.g. `--shard 2/8 --sharding
# round-robin`, are passed on).
case " $* " in
*" --file "*) ;;
*) set -- --file 'src/format/*.rs' --file src/commit.rs --file 'src/recovery/*.rs' \
    --file 'src/storage/*.rs' --file src/shared/group.rs --file src/shared/flight.rs "$@" ;;
esac
# The baseline: the same targets, unmutated, must pass.
targets=$(sed -n '/^additional_cargo_args = \[/,/^\]/p' .cargo/mutants.toml | grep -o '"[^"]*"' | tr -d '"' | tr '\n' ' ')
# shellcheck disable=SC2086
cargo test --workspace $targets
cargo mutants --test-workspace=true --baseline=skip --jobs "${MUTANTS_JOBS:-2}" \
    --timeout 120 --build-timeout 900 "$@"
echo "caught: $(wc -l < mutants.out/caught.txt)  missed: $(wc -l < mutants.out/missed.txt)  timeout: $(wc -l < mutants.out/timeout.txt)  unviable: $(wc -l < mutants.out/unviable.txt)"
echo "missed mutants:"
cat mutants.out/missed.txt
