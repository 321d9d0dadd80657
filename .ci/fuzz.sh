#!/usr/bin/env bash
# Bounded fuzz run of mappedpages' three cargo-fuzz targets (fuzz/README.md). Called by .ci/run;
# runs from anywhere.
#
#   .ci/fuzz.sh                        recovery 120 s, open_image 60 s, format 60 s
#   FUZZ_SECONDS_SCALE=0.1 .ci/fuzz.sh quick local run (12 s / 6 s / 6 s)
#   FUZZ_TARGETS="format" .ci/fuzz.sh  only some targets
#   FUZZ_STABLE=1 .ci/fuzz.sh          the stable path even where nightly exists
#   FUZZ_FEATURES=mutants MAPPEDPAGES_FUZZ_MUTANT=skip-scrub FUZZ_TARGETS=recovery .ci/fuzz.sh
#                                      a planted bug (VERIFICATION.md): must exit non-zero with a finding
#
# Uses nightly with AddressSanitizer when `cargo +nightly` works, else the stable toolchain with
# `-s none` and RUSTC_BOOTSTRAP=1 (cargo-fuzz needs unstable flags). Builds every target once,
# then runs each for its time budget on a scratch corpus seeded from fuzz/corpus/<target> (the
# committed seeds are never modified). Prints each target's executions. On a finding: exits
# non-zero and prints the reproducer's path, its `cargo fuzz fmt` and a hexdump; the reproducer
# stays in fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCALE=${FUZZ_SECONDS_SCALE:-1}
TARGETS=${FUZZ_TARGETS:-"recovery open_image format"}
FEATURES=()
[[ -n ${FUZZ_FEATURES:-} ]] && FEATURES=(--features "$FUZZ_FEATURES")
WORK=fuzz/target/ci-corpus
LOGS=fuzz/target/ci-logs
START=$SECONDS

banner() {
    printf '\n##########################################################################\n'
    printf '##  %s\n' "$@"
    printf '##########################################################################\n\n'
}

seconds_for() { # target -> scaled -max_total_time (at least 1)
    local base
    case $1 in
        recovery) base=120 ;;
        open_image) base=60 ;;
        format) base=60 ;;
        *) echo "unknown target $1" >&2; exit 2 ;;
    esac
    awk -v b="$base" -v s="$SCALE" 'BEGIN { t = int(b * s + 0.5); if (t < 1) t = 1; print t }'
}

max_len_for() {
    case $1 in
        recovery) echo 4096 ;;           # ~40 operations and a crash choice
        open_image) echo 262144 ;;       # raw 4 KiB-page images of up to 32 pages
        format) echo 8400 ;;             # one 8 KiB page and the 17-byte header
    esac
}

dict_for() {
    case $1 in
        open_image | format) echo "-dict=fuzz/open_image.dict" ;;
        *) echo "" ;;
    esac
}

# ----- cargo-fuzz ---------------------------------------------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing: cargo install --locked cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
cargo fuzz --version

# ----- toolchain ----------------------------------------------------------------------------------
if [[ -z ${FUZZ_STABLE:-} ]] && cargo +nightly --version >/dev/null 2>&1; then
    MODE="nightly + AddressSanitizer"
    TOOLCHAIN=(+nightly)
    SANITIZER=()
else
    why="nightly is not available"
    [[ -n ${FUZZ_STABLE:-} ]] && why="FUZZ_STABLE is set"
    MODE="STABLE toolchain, NO sanitizer (-s none, RUSTC_BOOTSTRAP=1): $why"
    TOOLCHAIN=()
    SANITIZER=(-s none)
    export RUSTC_BOOTSTRAP=1
    # cargo caches its probe of the compiler (including whether it accepts -Z flags).
    rm -f fuzz/target/.rustc_info.json
fi
CARGO=(cargo "${TOOLCHAIN[@]}" fuzz)
banner "fuzzing with: $MODE" "$(rustc "${TOOLCHAIN[@]}" --version)" \
    "targets: $TARGETS (time scale $SCALE)${FUZZ_FEATURES:+, features: $FUZZ_FEATURES}" \
    "${MAPPEDPAGES_FUZZ_MUTANT:+MUTANT ACTIVE: $MAPPEDPAGES_FUZZ_MUTANT}"

# ----- build (once, all targets; `cargo fuzz run` below finds them up to date) --------------------
echo "+ ${CARGO[*]} build ${SANITIZER[*]} ${FEATURES[*]}"
"${CARGO[@]}" build "${SANITIZER[@]}" "${FEATURES[@]}"
echo "build finished after $((SECONDS - START)) s"

# ----- run ----------------------------------------------------------------------------------------
mkdir -p "$LOGS"
SUMMARY=()
FAILED=""
for target in $TARGETS; do
    secs=$(seconds_for "$target")
    max_len=$(max_len_for "$target")
    dict=$(dict_for "$target")
    corpus="$WORK/$target"
    artifacts="fuzz/artifacts/$target"
    log="$LOGS/$target.log"
    mkdir -p "$corpus" "$artifacts"
    flags=(-max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -timeout=30
        -print_final_stats=1 -artifact_prefix="$artifacts/")
    [[ -n $dict ]] && flags+=("$dict")
    banner "$target: ${secs} s, -max_len=$max_len"
    echo "+ ${CARGO[*]} run ${SANITIZER[*]} ${FEATURES[*]} $target $corpus fuzz/corpus/$target -- ${flags[*]}"
    before=$(find "$artifacts" -type f 2>/dev/null | sort)
    status=0
    # A hang the -timeout above does not catch still ends: twice the budget plus a margin.
    timeout --signal=INT --kill-after=30 $((2 * secs + 120)) \
        "${CARGO[@]}" run "${SANITIZER[@]}" "${FEATURES[@]}" "$target" "$corpus" "fuzz/corpus/$target" -- "${flags[@]}" \
        >"$log" 2>&1 || status=$?
    # The log keeps libFuzzer's progress lines; the console gets the milestones.
    grep -E 'INFO: (Seed|Loaded|[0-9]+ files)|INITED|DONE|Done [0-9]+ runs|stat::|mutant|FINDING|panicked|ERROR|SUMMARY|Test unit' \
        "$log" | head -n 40 || true
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1 || true)
    [[ -z $runs ]] && runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -n 1 || true)
    rate=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1 || true)
    SUMMARY+=("$(printf '%-11s %6s s  %10s executions  %8s exec/s  exit %s' "$target" "$secs" "${runs:-?}" "${rate:-?}" "$status")")
    if [[ $status -ne 0 ]]; then
        FAILED="$FAILED $target"
        new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | head -n 1)
        [[ -z $new ]] && new=$(grep -Eo 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/Test unit written to //' || true)
        banner "FINDING in $target (exit $status)" "reproducer: ${new:-none written (see $log)}" \
            "rerun: $(echo "${CARGO[*]} run ${SANITIZER[*]} ${FEATURES[*]} $target ${new:-<artifact>}" | tr -s ' ')"
        echo "--- last lines of $log"
        tail -n 60 "$log"
        if [[ -n $new && -f $new ]]; then
            echo "--- cargo fuzz fmt $target $new"
            "${CARGO[@]}" fmt "${SANITIZER[@]}" "${FEATURES[@]}" "$target" "$new" 2>&1 | tail -n 80 || true
            echo "--- hexdump (first 2 KiB of $(wc -c <"$new") bytes)"
            head -c 2048 "$new" | od -A x -t x1z -v
        fi
    fi
done

banner "fuzz summary ($MODE), $((SECONDS - START)) s in all" "${SUMMARY[@]}"
if [[ -n $FAILED ]]; then
    echo "FUZZING FOUND PROBLEMS IN:$FAILED (logs in $LOGS/)"
    exit 1
fi
echo "fuzzing found nothing"
