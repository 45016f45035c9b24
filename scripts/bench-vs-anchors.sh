#!/usr/bin/env bash
# Runs ../shared/anchors and `mapheap bench` interleaved in one run on this machine, then
# prints one min/median/max table of both and the ratios the goals are stated in.
# Needs: apt-get install -y libboost-dev. Knobs: RUNS (5), BENCH_DIR (/tmp), and the
# anchors' LOCK_ITERS, LOCK_CONT_ITERS, ALLOC_OPS, ALLOC_LIVE, NPROC.
set -euo pipefail
cd "$(dirname "$0")/.."
anchors=${ANCHORS:-../shared/anchors}
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-/tmp}
LOCK_ITERS=${LOCK_ITERS:-10000000}
LOCK_CONT_ITERS=${LOCK_CONT_ITERS:-5000000}
ALLOC_OPS=${ALLOC_OPS:-2000000}
ALLOC_LIVE=${ALLOC_LIVE:-10000}
NPROC=${NPROC:-2}
REMAP_MIB=${REMAP_MIB:-64}
REMAP_CYCLES=${REMAP_CYCLES:-20}
export BUILD=${BUILD:-${TMPDIR:-/tmp}/mapheap-anchors}

make -s -C "$anchors" all
cargo build --release -q
out=${OUT:-target/bench-vs-anchors}
mkdir -p "$out"
raw=$out/raw-$(date +%Y%m%d-%H%M%S).tsv
: > "$raw"
for r in $(seq 1 "$RUNS"); do
    echo "run $r/$RUNS ..." >&2
    "$BUILD"/bench_lock "$BENCH_DIR" "$r" "$LOCK_ITERS" "$LOCK_CONT_ITERS" "$NPROC" >> "$raw"
    "$BUILD"/bench_alloc "$BENCH_DIR" "$r" "$ALLOC_OPS" "$ALLOC_LIVE" "$NPROC" >> "$raw"
    "$BUILD"/bench_remap "$BENCH_DIR" tmp "$REMAP_MIB" "$REMAP_CYCLES" >> "$raw"
    target/release/mapheap bench --dir "$BENCH_DIR" --run "$r" --lock-iters "$LOCK_ITERS" \
        --lock-cont-iters "$LOCK_CONT_ITERS" --alloc-ops "$ALLOC_OPS" --alloc-live "$ALLOC_LIVE" \
        --nproc "$NPROC" --remap-cycles "$REMAP_CYCLES" --remap-label tmp >> "$raw"
done
# In-run ratios, one per run, so the table's median is the median of same-run ratios.
awk -F'\t' -v runs="$RUNS" -v np="$NPROC" '
    function ratio(name, x, y) { if (y > 0) printf "ratio.%s\t%.6f\tx\n", name, x / y }
    { v[$1, ++n[$1]] = $2 }
    END {
        c = "lock.contended" np "p."
        a = "alloc." np "p."
        m = "map64M.tmp."
        for (r = 1; r <= runs; r++) {
            # Goals (issue 6): <= 1.3 and <= 0.5; >= 1; >= 10 and >= 0.5; >= 10; ~1.
            ratio("uncontended_ns.mapheap_over_mutex3", v["lock.uncontended.mapheap", r], v["lock.uncontended.futex_mutex3", r])
            ratio("uncontended_ns.mapheap_over_robust", v["lock.uncontended.mapheap", r], v["lock.uncontended.pthread_robust", r])
            ratio("uncontended_ns.mapheap_guard_over_mutex3", v["lock.uncontended.mapheap_guard", r], v["lock.uncontended.futex_mutex3", r])
            ratio("uncontended_ns.mapheap_guard_over_robust", v["lock.uncontended.mapheap_guard", r], v["lock.uncontended.pthread_robust", r])
            ratio("contended_ops.mapheap_over_mutex3", v[c "mapheap", r], v[c "futex_mutex3", r])
            ratio("contended_ops.mapheap_over_robust", v[c "mapheap", r], v[c "pthread_robust", r])
            ratio("contended_ops.mapheap_guard_over_mutex3", v[c "mapheap_guard", r], v[c "futex_mutex3", r])
            ratio("alloc_ops.mapheap_over_boost", v["alloc.1p.mapheap", r], v["alloc.1p.boost_mmf", r])
            ratio("alloc_ops.mapheap_over_malloc", v["alloc.1p.mapheap", r], v["alloc.1p.malloc", r])
            ratio("alloc_ops.mapheap_onelock_over_boost_nolock", v["alloc.1p.mapheap_onelock", r], v["alloc.1p.boost_mmf_nolock", r])
            ratio("alloc_ops.mapheap" np "p_over_boost" np "p", v[a "mapheap", r], v[a "boost_mmf", r])
            ratio("remap_us.mapheap_100kobj_over_0obj", v[m "remap.mapheap_100000obj", r], v[m "remap.mapheap_0obj", r])
            ratio("remap_us.mapheap_100kobj_over_munmap_mmap", v[m "remap.mapheap_100000obj", r], v[m "remap_munmap_mmap", r])
        }
    }' "$raw" >> "$raw"
{
    echo "# $(date -Is) kernel $(uname -r), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
    echo "# runs=$RUNS lock_iters=$LOCK_ITERS cont_iters=$LOCK_CONT_ITERS alloc_ops=$ALLOC_OPS live=$ALLOC_LIVE nproc=$NPROC raw=$raw"
    awk -f "$anchors/summarize.awk" "$raw"
} | tee "${raw%.tsv}.txt"
