#!/usr/bin/env bash
# Coverage-guided fuzzing of the readers of untrusted files (see fuzz/README.md), on the
# stable toolchain: libFuzzer from the libfuzzer-sys crate, sancov through -C flags.
#   make fuzz                         every target for FUZZ_RUNS executions (default 1,000,000)
#   make fuzz FUZZ_SECONDS=600        every target for that long instead
#   make fuzz FUZZ_TARGETS="cifar"    some targets only
# Does its own set-up (libtorch, the seed corpora from the library's writers). Corpora,
# crashes and logs go to fuzz/work/ (not committed); the table of executions to
# fuzz/work/summary.txt. Exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh && resnet_cifar_setup
targets=${FUZZ_TARGETS:-checkpoint cifar run_config metrics image}
runs=${FUZZ_RUNS:-1000000}
seconds=${FUZZ_SECONDS:-}
work=fuzz/work
mkdir -p "$work"

# Instrument every crate of the target (not build scripts and proc macros: hence --target).
triple=$(rustc -vV | sed -n 's/^host: //p')
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
RUSTFLAGS="$flags" cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins
bin=fuzz/target/$triple/release

# Seeds: real files from the library's writers (the same build as `make test`).
cargo build --release --examples --features fault-injection
rm -rf "$work/seeds"
target/release/examples/fuzz_seeds "$work/seeds"

export LD_LIBRARY_PATH="$LIBTORCH/lib:${LD_LIBRARY_PATH:-}"
declare -A max_len=([checkpoint]=16384 [cifar]=12400 [run_config]=4096 [metrics]=4096 [image]=8192)
summary=$work/summary.txt
printf '%-12s %12s %10s %8s\n' target executions seconds crashes >"$summary"
failed=0
for t in $targets; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    limit=(-runs="$runs")
    [ -n "$seconds" ] && limit=(-max_total_time="$seconds")
    start=$(date +%s)
    status=0
    "$bin/$t" "$work/corpus/$t" "$work/seeds/$t" "${limit[@]}" -max_len="${max_len[$t]}" \
        -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$t/" >"$work/$t.log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    crashes=$(find "$work/artifacts/$t" -type f | wc -l)
    printf '%-12s %12s %10s %8s\n' "$t" "${execs:-?}" "$(($(date +%s) - start))" "$crashes" | tee -a "$summary"
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        echo "fuzz target $t failed (exit $status): see $work/$t.log and $work/artifacts/$t/" >&2
        failed=1
    fi
done
cat "$summary"
exit "$failed"
