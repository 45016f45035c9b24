# Sourced by scripts/alloc-instructions.sh and scripts/txn-instructions.sh: the table of
# instructions per operation (callgrind, counting only inside `<mode>_round`) of one
# program built for two sides.
#
#   instructions_table PROG SIDE_A SIDE_B ITERS MODE...
#
# runs target/PROG/SIDE/target/release/PROG-SIDE MODE ITERS for each side and mode, and
# prints one line per mode with both counts per operation and their ratio.
instructions_table() {
    local prog=$1 a=$2 b=$3 iters=$4 m side bin n
    shift 4
    printf '%-8s %12s %12s %8s\n' figure "$a" "$b" "$b/$a"
    for m in "$@"; do
        local -A count=()
        for side in "$a" "$b"; do
            bin=target/$prog/$side/target/release/$prog-$side
            n=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect="*${m}_round*" \
                "$bin" "$m" "$iters" 2>&1 | awk '/refs:/ { gsub(",", "", $NF); print $NF }')
            count[$side]=$n
        done
        awk -v m="$m" -v x="${count[$a]}" -v y="${count[$b]}" -v n="$iters" \
            'BEGIN { printf "%-8s %12.0f %12.0f %8.2f   instructions per operation\n", m, x / n, y / n, y / x }'
    done
}
