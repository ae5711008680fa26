#!/usr/bin/env bash
# The GPU failures users hit, as one device check (issue #25), called by bench/gpu_check.sh
# on a CUDA box; under a minute on an H200. Inputs, from the environment:
#   BIN                   the resnet-cifar binary (a release build)
#   DATA                  the CIFAR-10 directory (cifar-10-batches-bin)
#   WORK                  an empty scratch directory (created when missing)
#   DEV                   the device to test (cuda:0; `cpu` dry-runs the script's logic)
#   RESNET_CIFAR_PYTHON   a Python, to write the JSON (python3 otherwise)
# Prints ONE JSON object on stdout, one field per case, each {"status": "ok"|"fail"|
# "skipped", "detail": the first error line or what was checked}; progress on stderr.
# Cases:
#   oom_batch          a batch far too large for GPU memory: one line naming the batch size and
#                      the memory, exit 1, no panic, no checkpoint or temporary file left, the
#                      directory empty again, and the same --out then trains with a smaller batch
#   device_index       --device cuda:7 on a box with fewer GPUs: one line, exit 2 (a flag's value)
#   cuda_cpu_cuda      a checkpoint written on CUDA (SIGTERM mid-epoch) resumed on the CPU
#                      (stopped again by SIGTERM, its own checkpoint written), then finished on
#                      CUDA: metrics.csv ends with every epoch once
#   sigterm_resume     SIGTERM during a CUDA epoch: exit 143, "stopped by signal 15", then
#                      --resume on CUDA ends the run
set -uo pipefail
: "${BIN:?BIN: the resnet-cifar binary}" "${DATA:?DATA: the CIFAR-10 directory}" "${WORK:?WORK: a scratch directory}"
DEV="${DEV:-cuda:0}"
PY="${RESNET_CIFAR_PYTHON:-python3}"
mkdir -p "$WORK"
declare -A status detail
cases=(oom_batch device_index cuda_cpu_cuda sigterm_resume)

result() { status[$1]="$2"; detail[$1]="$3"; echo "$1: $2: $3" >&2; }
first_error() { grep -m1 -E '^error:|panicked' "$1" || tail -n 1 "$1"; }
rows() { [ -f "$1/metrics.csv" ] && echo $(($(wc -l <"$1/metrics.csv") - 1)) || echo 0; }
no_panic() { ! grep -qE 'panicked|stack backtrace' "$1"; }
# Waits (up to $2 s) until the run in $1 has at least $3 rows in metrics.csv.
wait_rows() {
    local end=$((SECONDS + $2))
    while [ "$(rows "$1")" -lt "$3" ]; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.1
    done
}
# Starts a run in the background ($1: log, the rest: arguments); its PID in $pid.
start() { local log=$1; shift; "$BIN" "$@" >"$log" 2>&1 & pid=$!; }

# A ResNet-20 run long enough to be stopped mid-epoch: 20,000 images, ~2.7 s an epoch on an
# H200 (7,428 images/s). GPU_FAILURES_LIMIT_TRAIN makes it shorter for a dry run on the CPU.
# GPU_FAILURES_LIMIT_TEST and GPU_FAILURES_TIMEOUT (seconds a command may take, 60) likewise.
RUN=(--depth 20 --epochs 3 --limit-train "${GPU_FAILURES_LIMIT_TRAIN:-20000}"
    --limit-test "${GPU_FAILURES_LIMIT_TEST:-1000}" --batch-size 128 --data-dir "$DATA")
T="${GPU_FAILURES_TIMEOUT:-60}"

# --- oom_batch -------------------------------------------------------------------------
oom_batch() {
    local out="$WORK/oom" log="$WORK/oom.log"
    if [ "$DEV" = cpu ]; then
        # On the CPU the same batch would take the host's memory (and its OOM killer), not
        # fail an allocation: the CPU path of this case is tests/out_of_memory.rs.
        result oom_batch skipped "DEV=cpu: a real out-of-memory needs the GPU (CPU path: tests/out_of_memory.rs)"
        return
    fi
    # ResNet-1202 keeps ~0.2 GB of activations per image: 4096 images ask ~800 GB.
    timeout "$T" "$BIN" train --depth 1202 --epochs 1 --limit-train 4096 --limit-test 256 --batch-size 4096 \
        --data-dir "$DATA" --device "$DEV" --out "$out" --quiet >"$log" 2>&1
    local rc=$? line
    line="$(first_error "$log")"
    if [ $rc -ne 1 ] || ! no_panic "$log" || [ "$(grep -c . "$log")" -ne 1 ]; then
        result oom_batch fail "exit $rc, want 1 and one line: $line"
    elif ! grep -q "out of memory on $DEV at batch size 4096: " "$log" || ! grep -qiE 'GiB|MiB' "$log"; then
        result oom_batch fail "the error does not name the batch size and the memory: $line"
    elif [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
        result oom_batch fail "left in $out: $(ls -A "$out" | tr '\n' ' ')"
    elif ! timeout "$T" "$BIN" train --depth 20 --epochs 1 --limit-train 2048 --limit-test 256 --batch-size 128 \
        --data-dir "$DATA" --device "$DEV" --out "$out" --quiet >"$log.retry" 2>&1; then
        result oom_batch fail "the same --out with --batch-size 128 failed: $(first_error "$log.retry")"
    else
        result oom_batch ok "$line"
    fi
}

# --- device_index ----------------------------------------------------------------------
device_index() {
    local log="$WORK/device.log"
    timeout "$T" "$BIN" train --depth 20 --epochs 1 --limit-train 256 --data-dir "$DATA" --device cuda:7 \
        --out "$WORK/device" --quiet >"$log" 2>&1
    local rc=$? line
    line="$(first_error "$log")"
    # Exit 2: devices are checked by the flag parser, as every flag value.
    if [ $rc -eq 2 ] && no_panic "$log" && [ "$(grep -c . "$log")" -eq 1 ] && grep -q 'cuda:7' "$log" &&
        [ ! -e "$WORK/device" ]; then
        result device_index ok "$line"
    else
        result device_index fail "exit $rc (want 2, one line naming cuda:7): $line"
    fi
}

# --- cuda_cpu_cuda ---------------------------------------------------------------------
cuda_cpu_cuda() {
    local out="$WORK/moves" log="$WORK/moves"
    start "$log.1.log" train "${RUN[@]}" --device "$DEV" --out "$out"
    if ! wait_rows "$out" "$T" 1; then
        kill -KILL "$pid" 2>/dev/null
        result cuda_cpu_cuda fail "no epoch on $DEV within $T s: $(first_error "$log.1.log")"
        return
    fi
    kill -TERM "$pid"
    wait "$pid"
    local rc=$?
    if [ $rc -ne 143 ] || [ ! -f "$out/last.safetensors" ]; then
        result cuda_cpu_cuda fail "SIGTERM on $DEV: exit $rc: $(first_error "$log.1.log")"
        return
    fi
    # On the CPU: resumed from the CUDA checkpoint; stopped after a few seconds of steps.
    start "$log.2.log" train --resume "$out" --device cpu
    sleep 6
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    if ! no_panic "$log.2.log" || ! grep -q "resuming at iteration" "$log.2.log" || { [ $rc -ne 143 ] && [ $rc -ne 0 ]; }; then
        result cuda_cpu_cuda fail "resume on cpu: exit $rc: $(first_error "$log.2.log")"
        return
    fi
    local at
    at="$(grep -o 'stopped by signal 15 at iteration [0-9]*' "$log.2.log" | grep -o '[0-9]*$')"
    # Back on CUDA to the end.
    if ! timeout "$T" "$BIN" train --resume "$out" --device "$DEV" >"$log.3.log" 2>&1; then
        result cuda_cpu_cuda fail "resume on $DEV: $(first_error "$log.3.log")"
    elif [ "$(rows "$out")" -ne 3 ] || [ "$(cut -d, -f1 "$out/metrics.csv" | tail -n +2 | tr '\n' ' ')" != "1 2 3 " ]; then
        result cuda_cpu_cuda fail "metrics.csv: $(cut -d, -f1 "$out/metrics.csv" | tr '\n' ' ')"
    else
        result cuda_cpu_cuda ok "CUDA checkpoint resumed on cpu (stopped at iteration ${at:-end}), finished on $DEV: epochs 1 2 3"
    fi
}

# --- sigterm_resume --------------------------------------------------------------------
sigterm_resume() {
    local out="$WORK/sigterm" log="$WORK/sigterm"
    start "$log.1.log" train "${RUN[@]}" --device "$DEV" --out "$out"
    # Mid-epoch: once training has started (the announce line), a little later.
    local end=$((SECONDS + T))
    until grep -q '^training ' "$log.1.log" 2>/dev/null; do
        [ $SECONDS -lt $end ] || break
        sleep 0.1
    done
    sleep 2
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    local rc=$?
    local line
    line="$(grep -m1 'stopped by signal 15' "$log.1.log")"
    if [ $rc -ne 143 ] || [ -z "$line" ] || ! no_panic "$log.1.log"; then
        result sigterm_resume fail "exit $rc: $(first_error "$log.1.log")"
    elif ! timeout "$T" "$BIN" train --resume "$out" --device "$DEV" >"$log.2.log" 2>&1; then
        result sigterm_resume fail "resume: $(first_error "$log.2.log")"
    elif [ "$(rows "$out")" -ne 3 ]; then
        result sigterm_resume fail "metrics.csv has $(rows "$out") rows, want 3"
    else
        result sigterm_resume ok "$line; resumed to the end"
    fi
}

# The JSON of every case, run or not; also printed when a caller's time limit stops the
# script (SIGTERM from `timeout`), so the cases already run are not lost with the rest.
report() {
    local args=()
    for c in "${cases[@]}"; do
        args+=("$c" "${status[$c]:-${1:-fail}}" "${detail[$c]:-${2:-not run}}")
    done
    "$PY" -c '
import json, sys
a = sys.argv[1:]
print(json.dumps({a[i]: {"status": a[i + 1], "detail": a[i + 2]} for i in range(0, len(a), 3)}))
' "${args[@]}"
}
trap 'kill -KILL "${pid:-}" 2>/dev/null; report stopped "not finished: the caller'"'"'s time limit (SIGTERM) came first"; exit 124' TERM

for c in "${cases[@]}"; do
    "$c"
done
report
