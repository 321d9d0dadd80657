#!/usr/bin/env bash
# Mutation score of src/format/, src/commit.rs and src/recovery/ (configuration in
# .cargo/mutants.toml). Took about 45 minutes on 2 cores at d595076 (README.md); results land
# in mutants.out/.
#   scripts/mutants.sh                      # everything
#   scripts/mutants.sh --file src/commit.rs # one file
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants
fi
if [ "$#" -eq 0 ]; then
    set -- --file 'src/format/*.rs' --file src/commit.rs --file 'src/recovery/*.rs'
fi
cargo mutants --jobs "${MUTANTS_JOBS:-2}" --timeout 120 "$@"
echo "caught: $(wc -l < mutants.out/caught.txt)  missed: $(wc -l < mutants.out/missed.txt)  timeout: $(wc -l < mutants.out/timeout.txt)  unviable: $(wc -l < mutants.out/unviable.txt)"
echo "missed mutants:"
cat mutants.out/missed.txt
