#!/usr/bin/env bash
# Runs ../shared/anchors and `mapheap bench` interleaved in one run on this machine, then
# prints one min/median/max table of both, the ratios the goals are stated in, and the
# scaling table (total throughput at N processes over 1 process) for every N in NPROCS.
# Needs: apt-get install -y libboost-dev. Knobs: RUNS (5), NPROCS ("2"; e.g. "2 4 8 16";
# 1 is always measured), BENCH_DIR (/tmp), ANCHORS_BIN (prebuilt anchors, skips make),
# MAPHEAP_BIN (prebuilt mapheap, skips cargo), and the anchors' LOCK_ITERS,
# LOCK_CONT_ITERS, ALLOC_OPS, ALLOC_LIVE.
set -euo pipefail
cd "$(dirname "$0")/.."
anchors=${ANCHORS:-../shared/anchors}
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-/tmp}
LOCK_ITERS=${LOCK_ITERS:-10000000}
LOCK_CONT_ITERS=${LOCK_CONT_ITERS:-5000000}
ALLOC_OPS=${ALLOC_OPS:-2000000}
ALLOC_LIVE=${ALLOC_LIVE:-10000}
NPROCS=${NPROCS:-${NPROC:-2}}
REMAP_MIB=${REMAP_MIB:-64}
REMAP_CYCLES=${REMAP_CYCLES:-20}
# Figures measured once per run (1 process, remap) are taken with the first N only; later
# N repeat them with few iterations, and their lines are dropped.
ONCE='^(lock\.uncontended|ratio\.uncontended|alloc\.1p\.|ratio\.alloc_ops\.boost_over_malloc|map)'

if [ -n "${ANCHORS_BIN:-}" ]; then
    bin=$ANCHORS_BIN
else
    export BUILD=${BUILD:-${TMPDIR:-/tmp}/mapheap-anchors}
    make -s -C "$anchors" all
    bin=$BUILD
fi
if [ -n "${MAPHEAP_BIN:-}" ]; then
    mapheap=$MAPHEAP_BIN
else
    cargo build --release -q
    mapheap=target/release/mapheap
fi
ns=$(for n in $NPROCS; do [ "$n" -gt 1 ] && echo "$n"; done | sort -nu | tr '\n' ' ')
[ -n "$ns" ] || { echo "NPROCS must name at least one N > 1 (got '$NPROCS')" >&2; exit 2; }
out=${OUT:-target/bench-vs-anchors}
mkdir -p "$out"
raw=$out/raw-$(date +%Y%m%d-%H%M%S).tsv
: > "$raw"
for r in $(seq 1 "$RUNS"); do
    first=1
    for n in $ns; do
        echo "run $r/$RUNS, $n processes ..." >&2
        un=$LOCK_ITERS
        [ $first = 1 ] || un=1000
        filter() { if [ $first = 1 ]; then cat; else grep -Ev "$ONCE" || true; fi; }
        "$bin"/bench_lock "$BENCH_DIR" "$r" "$un" "$LOCK_CONT_ITERS" "$n" | filter >> "$raw"
        "$bin"/bench_alloc "$BENCH_DIR" "$r" "$ALLOC_OPS" "$ALLOC_LIVE" "$n" | filter >> "$raw"
        only=lock,alloc
        if [ $first = 1 ]; then
            "$bin"/bench_remap "$BENCH_DIR" tmp "$REMAP_MIB" "$REMAP_CYCLES" >> "$raw"
            only=lock,alloc,remap
        fi
        "$mapheap" bench --dir "$BENCH_DIR" --run "$r" --lock-iters "$un" \
            --lock-cont-iters "$LOCK_CONT_ITERS" --alloc-ops "$ALLOC_OPS" --alloc-live "$ALLOC_LIVE" \
            --nproc "$n" --remap-cycles "$REMAP_CYCLES" --remap-label tmp --only "$only" \
            | filter >> "$raw"
        first=0
    done
done
# In-run ratios, one per run, so the table's median is the median of same-run ratios.
awk -F'\t' -v runs="$RUNS" -v ns="$ns" '
    function ratio(name, x, y) { if (x > 0 && y > 0) printf "ratio.%s\t%.6f\tx\n", name, x / y }
    { v[$1, ++n[$1]] = $2 }
    END {
        k = split(ns, N, " ")
        m = "map64M.tmp."
        for (r = 1; r <= runs; r++) {
            # Goals (issue 13): guard <= 1.3x mutex3; contended guard >= 1x mutex3 (2p) and
            # >= 1x robust, >= 0.8x mutex3 (4p and up); alloc >= 10x boost, >= 0.5x malloc;
            # total alloc at N over 1 process >= 0.5 N.
            ratio("uncontended_ns.mapheap_over_mutex3", v["lock.uncontended.mapheap", r], v["lock.uncontended.futex_mutex3", r])
            ratio("uncontended_ns.mapheap_over_robust", v["lock.uncontended.mapheap", r], v["lock.uncontended.pthread_robust", r])
            ratio("uncontended_ns.mapheap_guard_over_mutex3", v["lock.uncontended.mapheap_guard", r], v["lock.uncontended.futex_mutex3", r])
            ratio("uncontended_ns.mapheap_guard_over_robust", v["lock.uncontended.mapheap_guard", r], v["lock.uncontended.pthread_robust", r])
            ratio("alloc_ops.mapheap_over_boost", v["alloc.1p.mapheap", r], v["alloc.1p.boost_mmf", r])
            ratio("alloc_ops.mapheap_over_malloc", v["alloc.1p.mapheap", r], v["alloc.1p.malloc", r])
            ratio("alloc_ops.mapheap_onelock_over_boost_nolock", v["alloc.1p.mapheap_onelock", r], v["alloc.1p.boost_mmf_nolock", r])
            for (i = 1; i <= k; i++) {
                c = "lock.contended" N[i] "p."
                a = "alloc." N[i] "p."
                ratio("contended" N[i] "p_ops.mapheap_over_mutex3", v[c "mapheap", r], v[c "futex_mutex3", r])
                ratio("contended" N[i] "p_ops.mapheap_guard_over_mutex3", v[c "mapheap_guard", r], v[c "futex_mutex3", r])
                ratio("contended" N[i] "p_ops.mapheap_guard_over_robust", v[c "mapheap_guard", r], v[c "pthread_robust", r])
                ratio("alloc_ops.mapheap" N[i] "p_over_boost" N[i] "p", v[a "mapheap", r], v[a "boost_mmf", r])
                ratio("scaling.alloc" N[i] "p_over_1p.mapheap", v[a "mapheap", r], v["alloc.1p.mapheap", r])
                ratio("scaling.alloc" N[i] "p_over_1p.boost_mmf", v[a "boost_mmf", r], v["alloc.1p.boost_mmf", r])
            }
            ratio("remap_us.mapheap_100kobj_over_0obj", v[m "remap.mapheap_100000obj", r], v[m "remap.mapheap_0obj", r])
            ratio("remap_us.mapheap_100kobj_over_munmap_mmap", v[m "remap.mapheap_100000obj", r], v[m "remap_munmap_mmap", r])
        }
    }' "$raw" >> "$raw"
{
    echo "# $(date -Is) kernel $(uname -r), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
    echo "# runs=$RUNS lock_iters=$LOCK_ITERS cont_iters=$LOCK_CONT_ITERS alloc_ops=$ALLOC_OPS live=$ALLOC_LIVE nprocs=1 $ns raw=$raw"
    echo "# scaling goal: scaling.allocNp_over_1p.mapheap >= 0.5 N"
    awk -f "$anchors/summarize.awk" "$raw"
} | tee "${raw%.tsv}.txt"
