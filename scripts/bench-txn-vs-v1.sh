#!/usr/bin/env bash
# The transactions' costs against the code before them, in one session on one machine:
# benches/txn.rs (which uses only calls that format version 1 had) is built against a
# worktree of the last version-1 commit and against this tree, and run alternately, RUNS
# times; then the medians and the ratios the transactions issue asks for are printed.
#
#   scripts/bench-txn-vs-v1.sh            # RUNS=3, criterion at 2 s per figure
#   SWITCHES=1 scripts/bench-txn-vs-v1.sh # the same, with the test switches compiled in
#
# What is measured is the library as users build it: each side's bench is a crate of its
# own under target/bench-txn/ that depends on that tree's library with no feature. (In the
# tree, `cargo bench` builds the library with the `mutants` feature, which every test and
# bench target gets through the dev-dependency on the crate itself: each seeded bug's
# switch and each crash point is then a load and a branch, and the guard's common path
# grows too large to be inlined; v2 has many more of them than v1. SWITCHES=1 runs the
# benches that way, in each tree, for comparison.)
#
# Needs nothing beyond cargo. The worktree lives under target/ (target/v1-tree).
set -euo pipefail
cd "$(dirname "$0")/.."
V1=${V1:-4c71678}
RUNS=${RUNS:-3}
root=$PWD
tree=target/v1-tree
if [ ! -e "$tree/.git" ]; then
    git worktree add -q --detach "$tree" "$V1"
fi
declare -A dir
if [ -n "${SWITCHES:-}" ]; then
    cp benches/txn.rs "$tree/benches/txn.rs"
    if ! grep -q 'name = "txn"' "$tree/Cargo.toml"; then
        printf '\n[[bench]]\nname = "txn"\nharness = false\n' >>"$tree/Cargo.toml"
    fi
    dir[v1]=$tree
    dir[v2]=.
else
    for side in v1 v2; do
        d=target/bench-txn/$side
        src=$root
        [ "$side" = v1 ] && src=$root/$tree
        mkdir -p "$d/benches" "$d/src"
        cp benches/txn.rs "$d/benches/txn.rs"
        [ -e "$d/src/lib.rs" ] || echo '//! The bench alone (benches/txn.rs).' >"$d/src/lib.rs"
        cat >"$d/Cargo.toml" <<EOF
[package]
name = "bench-txn-$side"
version = "0.1.0"
edition = "2021"
publish = false
[workspace]
[dependencies]
mapheap = { path = "$src" }
bytemuck = { version = "1", features = ["derive"] }
tempfile = "3"
[dev-dependencies]
criterion = { version = "0.8", default-features = false, features = ["cargo_bench_support"] }
[[bench]]
name = "txn"
harness = false
[profile.release]
debug = 1
EOF
        dir[$side]=$d
    done
fi
out=$(mktemp -d)
args=(--bench txn -- --warm-up-time 1 --measurement-time "${MEASURE:-2}" --noplot)
for side in v1 v2; do
    (cd "${dir[$side]}" && cargo bench --no-run --bench txn >/dev/null 2>&1)
done
for r in $(seq 1 "$RUNS"); do
    for side in v1 v2; do
        (cd "${dir[$side]}" && cargo bench "${args[@]}" 2>/dev/null) |
            awk -v side="$side" -v run="$r" '
                /^txn\// { name = $1 }
                # "time: [low unit median unit high unit]", on the line of the name or the next.
                /time:/ && name != "" {
                    line = $0; gsub(/\[/, "", line); n = split(line, f, " ")
                    for (i = 1; i < n && f[i] != "time:"; i++) {}
                    print side, run, name, f[i + 3], f[i + 4]; name = ""
                }
            ' >>"$out/raw"
    done
done
awk '
    function ns(v, u) { return u == "ps" ? v / 1000 : u == "µs" ? v * 1000 : u == "ms" ? v * 1e6 : v }
    { t[$1 " " $3] = t[$1 " " $3] " " ns($4, $5) }
    END {
        for (k in t) {
            n = split(substr(t[k], 2), a, " ")
            for (i = 2; i <= n; i++) {          # insertion sort (mawk has no asort)
                x = a[i] + 0; j = i - 1
                while (j >= 1 && a[j] + 0 > x) { a[j + 1] = a[j]; j-- }
                a[j + 1] = x
            }
            med[k] = a[int((n + 1) / 2)]
        }
        printf "%-32s %10s %10s\n", "figure (median ns)", "v1", "v2"
        split("txn/guard_empty txn/guard_write8_logged txn/write8_fresh_in_guard txn/alloc_link txn/alloc_then_free", f, " ")
        for (i = 1; i <= 5; i++) printf "%-32s %10.1f %10.1f\n", f[i], med["v1 " f[i]], med["v2 " f[i]]
        printf "\nempty guard, v2 - v1:                 %+.1f ns (goal: within 2 ns)\n", med["v2 txn/guard_empty"] - med["v1 txn/guard_empty"]
        printf "logging one 8-byte write (v2 - v1):    %+.1f ns (goal: at most 25 ns)\n", med["v2 txn/guard_write8_logged"] - med["v1 txn/guard_write8_logged"]
        printf "alloc and link, v2 / v1:               %.2fx (goal: at most 2x)\n", med["v2 txn/alloc_link"] / med["v1 txn/alloc_link"]
        printf "write to a fresh block, v2 - v1:       %+.1f ns (goal: nothing extra)\n", med["v2 txn/write8_fresh_in_guard"] - med["v1 txn/write8_fresh_in_guard"]
        printf "alloc, then free in the next guard:    %.2fx (no goal; the deferred free, T7)\n", med["v2 txn/alloc_then_free"] / med["v1 txn/alloc_then_free"]
    }' "$out/raw"
echo "raw: $out/raw"
