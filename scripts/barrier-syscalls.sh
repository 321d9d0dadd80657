#!/usr/bin/env bash
# Durability system calls per operation of every contender of the bench's `barrier` row, counted
# by strace (independent of the bench's own in-process counters): msync, sync_file_range by flags,
# fdatasync and fsync, attributed to the contender's file (by descriptor, and msync by the address
# of its map), over the timed phase of each round only. Figures: BENCHMARKS.md, "One round of
# writes per barrier".
#   scripts/barrier-syscalls.sh            # needs strace, python3 and a release build of the bench
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p mappedpages-bench
trace="$(mktemp)"
trap 'rm -f "$trace"' EXIT
strace -f -e trace=openat,mmap,msync,sync_file_range,fdatasync,fsync -o "$trace" \
    target/release/mappedpages-bench --quick --reps 1 --filter barrier --no-mem >/dev/null
python3 - "$trace" <<'EOF'
import collections, re, sys

fd_name, maps = {}, []
counts = collections.defaultdict(collections.Counter)
in_ops, ops = False, 0


def kind(path):
    return re.sub(r"-\d+\.bin$", "", path.rsplit("/", 1)[-1])


for line in open(sys.argv[1]):
    m = re.search(r'openat\(AT_FDCWD, "([^"]+)", [^)]*\) = (\d+)', line)
    if m:
        fd_name[int(m.group(2))] = kind(m.group(1))
        # A new round: its set-up runs until the bare msync's first one-page msync.
        if kind(m.group(1)) == "barrier-msync":
            in_ops = False
        continue
    m = re.search(r"mmap\(NULL, (\d+), [^,]+, MAP_SHARED[^,]*, (\d+), 0\) = (0x[0-9a-f]+)", line)
    if m:
        start = int(m.group(3), 16)
        maps.insert(0, (start, start + int(m.group(1)), fd_name.get(int(m.group(2)), "?")))
        continue
    m = re.search(r"msync\((0x[0-9a-f]+), (\d+), MS_SYNC\) = ", line)
    if m:
        address = int(m.group(1), 16)
        name = next((n for s, e, n in maps if s <= address < e), "?")
        if name == "barrier-msync" and m.group(2) == "4096":
            in_ops = True
            ops += 1
        if in_ops:
            counts[name]["msync"] += 1
        continue
    m = re.search(r"sync_file_range\((\d+), \d+, \d+, ([A-Z_|]+)\) = ", line)
    if m and in_ops:
        flags = m.group(2).replace("SYNC_FILE_RANGE_", "")
        counts[fd_name.get(int(m.group(1)), "?")][f"sync_file_range({flags})"] += 1
        continue
    m = re.search(r"(fdatasync|fsync)\((\d+)\) = ", line)
    if m and in_ops:
        counts[fd_name.get(int(m.group(2)), "?")][m.group(1)] += 1

print(f"ops per contender: {ops}")
for name in sorted(counts):
    per_op = ", ".join(f"{call} {n / ops:.2f}" for call, n in sorted(counts[name].items()))
    print(f"{name}: {per_op}")
EOF
