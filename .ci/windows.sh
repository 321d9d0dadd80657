#!/usr/bin/env bash
# Windows: clippy for x86_64-pc-windows-gnu and x86_64-pc-windows-msvc; cross-builds mappedpages
# for x86_64-pc-windows-gnu (mingw-w64) and runs, under Wine,
# the library's whole test suite (`cargo test -p mappedpages`: unit, integration and doc tests)
# and crashsim's unit tests (which explore crash states on SimStorage), conformance (MmapStorage vs
# SimStorage sync sequences) and judge tests. Called
# by .ci/run; runs from anywhere.
#
# Installs what it lacks: mingw-w64 and Wine with apt-get (Debian's gcc-mingw-w64-x86-64, wine,
# wine64), the Rust target with rustup. A private Wine prefix lives in target/wine-prefix.
# Rust's std on Windows imports ProcessPrng from bcryptprimitives.dll, which Wine 8 lacks (every
# test binary would die at start with exit status 53, c0000135): a stub built from
# .ci/wine/bcryptprimitives.c goes into the prefix's system32.
#
# Exit status: 0 passed, 3 skipped (a loud banner says why: no apt-get, not root, no network, …),
# anything else failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET=x86_64-pc-windows-gnu
START=$SECONDS

skip() {
    cat <<BANNER

##########################################################################
##                                                                      ##
##   SKIPPED: Windows tests under Wine                                  ##
##                                                                      ##
##   $1
##   Nothing was built or run for $TARGET.
##                                                                      ##
##########################################################################

BANNER
    exit 3
}

missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || missing+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null 2>&1 || missing+=(wine wine64)
if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        skip "apt-get not found; needed: ${missing[*]}"
    fi
    if [[ $(id -u) != 0 ]]; then
        skip "not root, cannot apt-get install ${missing[*]}"
    fi
    echo "+ apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        timeout 300 apt-get update -qq || true
        timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
            skip "apt-get install ${missing[*]} failed"
    fi
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    echo "+ rustup target add $TARGET"
    timeout 300 rustup target add "$TARGET" || skip "rustup target add $TARGET failed"
fi
wine --version

export WINEPREFIX="$PWD/target/wine-prefix"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml=" # no Mono/Gecko install prompts
if [[ ! -f $WINEPREFIX/system.reg ]]; then
    echo "+ wineboot -i (new prefix $WINEPREFIX)"
    wineboot -i
    wineserver -w
fi
echo "+ x86_64-w64-mingw32-gcc -shared .ci/wine/bcryptprimitives.c (ProcessPrng stub)"
x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    .ci/wine/bcryptprimitives.c -ladvapi32
SETUP=$((SECONDS - START))

echo "+ cargo clippy -p mappedpages -p crashsim --all-targets --target $TARGET -- -D warnings"
cargo clippy -p mappedpages -p crashsim --all-targets --target "$TARGET" -- -D warnings
# The MSVC target, which most Windows users build with: lint only (nothing links here).
if rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-msvc ||
    timeout 300 rustup target add x86_64-pc-windows-msvc; then
    echo "+ cargo clippy -p mappedpages --all-targets --target x86_64-pc-windows-msvc -- -D warnings"
    cargo clippy -p mappedpages --all-targets --target x86_64-pc-windows-msvc -- -D warnings
else
    echo "########## SKIPPED: clippy for x86_64-pc-windows-msvc (rustup target add failed) ##########"
fi
CLIPPY=$((SECONDS - START - SETUP))

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
echo "+ cargo test -p mappedpages --target $TARGET"
cargo test -p mappedpages --target "$TARGET"
LIB=$((SECONDS - START - SETUP - CLIPPY))
echo "+ cargo test --release -p crashsim --target $TARGET --lib --test conformance --test judge"
cargo test --release -p crashsim --target "$TARGET" --lib --test conformance --test judge
CRASHSIM=$((SECONDS - START - SETUP - CLIPPY - LIB))
# The prefix's wineserver lingers a few seconds after the last program; stop it now.
wineserver -k 2>/dev/null || true
printf 'windows: setup %ss, clippy %ss, mappedpages tests %ss, crashsim tests %ss\n' \
    "$SETUP" "$CLIPPY" "$LIB" "$CRASHSIM"
