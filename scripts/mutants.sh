#!/usr/bin/env bash
# Mutation testing of the library with cargo-mutants (configuration, and what is skipped
# and why: .cargo/mutants.toml; the scores: docs/testing.md, "Mutation testing").
#
#   scripts/mutants.sh run              # every pending piece of every shard, resumable
#   scripts/mutants.sh run 3/8          # the pending pieces of shard 3 of 8
#   scripts/mutants.sh summary          # counts per shard of 8, and over all of src/
#   scripts/mutants.sh -F REGEX ...     # anything else is passed to cargo mutants as is
#   scripts/mutants.sh --list           # what would be tried
#   MUTANTS_TREE=target/mutants-tree2 scripts/mutants.sh run 3/8   # a second run beside
#                                       # the first, in its own worktree, on other shards
#
# Resumable: the mutants are split round-robin into 64 pieces (mutant i is in piece i % 64,
# so shard K of 8 is exactly the pieces K, K+8, ..., K+56, the same mutants `--shard K/8`
# names). Each finished piece writes docs/mutants/piece-NN.tsv (tracked: commit it), one
# line per mutant with its outcome and the commit it was judged on; `run` skips pieces that
# have a file, so an interrupted run, or a later session, goes on where it stopped
# (REDO=1 runs them again). A piece takes about 15 to 60 minutes on 2 cores.
#
# The mutants are applied in place, in a git worktree of HEAD under target/ (never in your
# tree), whose own target/ stays warm: each mutant costs one incremental build plus the
# default `cargo test` (lib tests first, so most mutants are caught within a minute; a
# missed one costs the whole suite). The unmutated suite is run once per `run` (the
# baseline), not once per piece. MUTANTS_TIMEOUT (480 s) stops a mutant that hangs a test;
# time-outs are counted apart. MUTANTS_FSIZE (8 GiB) is the largest file a test may make
# (a mutant that breaks allocation can otherwise grow a heap until the disk is full).
# Needs `cargo install cargo-mutants --locked`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pieces=64
results=$root/docs/mutants

summary() {
    shopt -s nullglob
    local files=("$results"/piece-*.tsv)
    [ ${#files[@]} -gt 0 ] || { echo "no piece has been run (scripts/mutants.sh run)"; return; }
    awk -F'\t' -v pieces=$pieces '
        FNR == 1 { split(FILENAME, p, /piece-|\.tsv/); k = p[2] + 0; s = k % 8; done[s]++ }
        /^#/ { if ($0 ~ /^# commit/) commits[$0] = 1; next }
        { n[s, $1]++; all[$1]++; if ($1 == "missed") missed[++nm] = $2 }
        END {
            printf "%-6s %7s %7s %7s %8s %9s %7s\n", "shard", "pieces", "caught", "missed", "timeout", "unviable", "score"
            for (s = 0; s < 8; s++) {
                c = n[s, "caught"]; m = n[s, "missed"]; t = n[s, "timeout"]; u = n[s, "unviable"]
                printf "%-6s %4d/%-2d %7d %7d %8d %9d %7s\n", s "/8", done[s], pieces / 8, c, m, t, u, \
                    (c + m) ? sprintf("%.1f%%", 100 * c / (c + m)) : "-"
            }
            c = all["caught"]; m = all["missed"]; t = all["timeout"]; u = all["unviable"]
            printf "%-6s %7s %7d %7d %8d %9d %7s\n", "all", "", c, m, t, u, (c + m) ? sprintf("%.1f%%", 100 * c / (c + m)) : "-"
            print "score = caught / (caught + missed); time-outs are counted apart"
            for (x in commits) print x
            for (i = 1; i <= nm; i++) print "missed\t" missed[i]
        }' "${files[@]}"
}

if [ "${1:-}" = summary ]; then
    summary
    exit 0
fi
if ! cargo mutants --version >/dev/null 2>&1; then
    echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2
    exit 2
fi
head=$(git rev-parse HEAD)
tree=${MUTANTS_TREE:-target/mutants-tree}
if [ -e "$tree/.git" ]; then
    git -C "$tree" checkout -q --force --detach "$head"
else
    git worktree add -q --detach "$tree" "$head"
fi
if ! git diff --quiet HEAD; then
    echo "note: uncommitted changes are not in the run (it tests HEAD $head)" >&2
fi
cd "$tree"
timeout=${MUTANTS_TIMEOUT:-480}
# No file a test makes may pass MUTANTS_FSIZE (8 GiB): a mutant that breaks allocation can
# make a test grow its heap until the disk is full (seen: `Tx::alloc` -> `Ok(1)`), which
# fails every other build and test on the disk, the other run's included, for a reason
# that is not theirs. Past the limit `fallocate` fails with EFBIG, which growth reports as
# `NoSpace`; SIGXFSZ is ignored so that the test sees the error instead of being killed
# (an ignored signal stays ignored across exec).
trap '' XFSZ
ulimit -f $(( ${MUTANTS_FSIZE:-$((8 << 30))} / 1024 ))

if [ "${1:-}" != run ]; then
    sharding=()
    for a in "$@"; do
        case $a in --shard | --shard=*) sharding=(--sharding round-robin) ;; esac
    done
    exec cargo mutants --in-place "${sharding[@]}" --timeout "$timeout" "$@"
fi

only=${2:-}
if [ -n "$only" ] && ! [[ $only =~ ^[0-7]/8$ ]]; then
    echo "usage: scripts/mutants.sh run [K/8]   (K in 0..7)" >&2
    exit 2
fi
mkdir -p "$results"
todo=()
for k in $(seq 0 $((pieces - 1))); do
    [ -n "$only" ] && [ $((k % 8)) -ne "${only%/8}" ] && continue
    f=$(printf '%s/piece-%02d.tsv' "$results" "$k")
    [ -e "$f" ] && [ -z "${REDO:-}" ] && continue
    todo+=("$k")
done
[ ${#todo[@]} -gt 0 ] || { echo "every piece asked for has a result; REDO=1 runs them again"; summary; exit 0; }
echo "pieces to run on $head: ${todo[*]}" >&2
echo "baseline: the unmutated default cargo test ..." >&2
mkdir -p target/mutants-pieces
cargo test --profile mutants >target/mutants-pieces/baseline.log 2>&1 || {
    grep -E "^test .* FAILED|panicked|^error" target/mutants-pieces/baseline.log | head -20 >&2
    echo "the unmutated suite fails at $head (log: $tree/target/mutants-pieces/baseline.log): fix it before mutating" >&2
    exit 4
}
for k in "${todo[@]}"; do
    out=target/mutants-pieces/$k
    rm -rf "$out"
    mkdir -p "$out"
    echo "$(date -Is) piece $k/$pieces ..." >&2
    # The piece's temporary files in a directory of its own, removed after it: a mutant
    # that makes a test hang or grow a heap without bound gets the test killed, and a
    # killed test leaves its temporary directory behind (a full disk would then fail the
    # next mutants' suites for a reason that is not theirs).
    tmp=$PWD/target/mutants-tmp/$k
    rm -rf "$tmp"
    mkdir -p "$tmp"
    rc=0
    TMPDIR=$tmp cargo mutants --in-place --sharding round-robin --shard "$k/$pieces" --baseline skip \
        --timeout "$timeout" --output "$out" >"$out/console.txt" 2>&1 || rc=$?
    rm -rf "$tmp"
    # 0: all caught, 2: some missed, 3: some timed out; anything else did not finish.
    case $rc in 0 | 2 | 3) ;; *)
        echo "piece $k stopped (cargo mutants exit $rc): see $tree/$out/console.txt" >&2
        exit "$rc" ;;
    esac
    f=$(printf '%s/piece-%02d.tsv' "$results" "$k")
    {
        echo "# commit $head"
        echo "# piece $k of $pieces, judged $(date -Is), timeout ${timeout}s"
        for o in caught missed timeout unviable; do
            [ -e "$out/mutants.out/$o.txt" ] || continue
            sed "s/^/$o\t/" "$out/mutants.out/$o.txt"
        done
    } >"$f.tmp"
    mv "$f.tmp" "$f"
    echo "$(date -Is) piece $k: $(grep -vc '^#' "$f") mutants, $(grep -c '^missed' "$f" || true) missed" >&2
done
summary
