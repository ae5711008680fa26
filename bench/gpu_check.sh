#!/usr/bin/env bash
# One prepared check for the day a CUDA GPU is at hand (run from the repository root):
#   1. set-up and release build (make build), with a loud warning if the GPU is unusable;
#   2. the test suite (make test), then the CUDA paths: a short run on cuda:0 with
#      mid-epoch checkpoints, its exact resume, and a 2-cell grid with --devices cuda:0;
#   3. the time of one ResNet-20 epoch (50k images) and of the first 2,000 iterations of
#      the paper's schedule, on cuda:0.
# Prints one JSON object on the last line; everything else goes to stderr. Uses the real
# CIFAR-10 where CIFAR10_DIR or data/cifar-10-batches-bin has it, else random images of
# the same size (speed only: the errors then mean nothing).
#
# On a GPU machine without a Rust toolchain or network, RESNET_CIFAR_PREBUILT=DIR takes
# `resnet-cifar` and `plain_vs_residual` (built elsewhere with --features fault-injection,
# against the libtorch found there through LD_LIBRARY_PATH) from DIR; set-up, build and
# the test suite are then skipped, and the JSON says so. GPU_CHECK_DEVICE (default cuda:0)
# and GPU_CHECK_ITERATIONS (default 2000) exist to try the script itself on a small machine.
set -uo pipefail
cd "$(dirname "$0")/.."
exec 3>&1 1>&2
t0=$(date +%s)
fail() { echo "gpu_check: $*" >&2; printf '{"ok": false, "error": "%s"}\n' "$*" >&3; exit 1; }
secs_since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

if [ -n "${RESNET_CIFAR_PREBUILT:-}" ]; then
    BIN=$RESNET_CIFAR_PREBUILT/resnet-cifar
    PVR=$RESNET_CIFAR_PREBUILT/plain_vs_residual
    RESNET_CIFAR_PYTHON=${RESNET_CIFAR_PYTHON:-python3}
    tests="not run (prebuilt binaries)"
else
    source scripts/env.sh
    resnet_cifar_setup || exit 1
    "$RESNET_CIFAR_PYTHON" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null ||
        fail "torch sees no CUDA device (see the warning above)"
    cargo build --release --examples --features fault-injection || fail "build failed"
    BIN=target/release/resnet-cifar
    PVR=target/release/examples/plain_vs_residual
    tests=passed
    make test || tests=failed
fi
dev=${GPU_CHECK_DEVICE:-cuda:0}
iterations=${GPU_CHECK_ITERATIONS:-2000}
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="${CIFAR10_DIR:-data/cifar-10-batches-bin}"
real=true
if [ ! -f "$data/data_batch_1.bin" ]; then
    real=false
    data="$work/cifar-10-batches-bin"
    mkdir -p "$data"
    "$RESNET_CIFAR_PYTHON" - "$data" <<'PY'
import os, sys
import numpy as np
rng = np.random.default_rng(0)
for name, n in [(f"data_batch_{i}.bin", 10000) for i in range(1, 6)] + [("test_batch.bin", 10000)]:
    rec = rng.integers(0, 256, size=(n, 3073), dtype=np.uint8)
    rec[:, 0] = rng.integers(0, 10, size=n)
    rec.tofile(os.path.join(sys.argv[1], name))
PY
fi

# CUDA paths: a short run with mid-epoch checkpoints, stopped at iteration 40 and resumed.
# cuDNN's benchmark mode picks algorithms by timing, so two uninterrupted CUDA runs already
# differ in the last digits: the resumed run must follow the same schedule (epoch, iteration,
# lr columns) and differ from the uninterrupted one no more than a second uninterrupted run does.
small="--depth 8 --epochs 2 --limit-train 2048 --limit-test 512 --batch-size 64 --device $dev --data-dir $data"
max_diff() { # two metrics.csv files: the largest difference in the loss and error columns
    paste -d, <(cut -d, -f4-7 "$1") <(cut -d, -f4-7 "$2") | awk -F, 'NR > 1 {
        for (i = 1; i <= 4; i++) { d = $i - $(i + 4); if (d < 0) d = -d; if (d > m) m = d } }
        END { printf "%g", m + 0 }'
}
cuda_resume=failed resume_diff=null rerun_diff=null
if $BIN train $small --out "$work/ref" >/dev/null && $BIN train $small --out "$work/ref2" >/dev/null; then
    RESNET_CIFAR_TEST_PAUSE=iteration:40 $BIN train $small --out "$work/held" >/dev/null 2>"$work/held.err" &
    pid=$!
    for _ in $(seq 600); do grep -q FAULT-PAUSE "$work/held.err" 2>/dev/null && break; sleep 0.1; done
    kill -TERM $pid; wait $pid
    if $BIN train --resume "$work/held" >/dev/null &&
        cmp -s <(cut -d, -f1-3 "$work/ref/metrics.csv") <(cut -d, -f1-3 "$work/held/metrics.csv"); then
        resume_diff=$(max_diff "$work/ref/metrics.csv" "$work/held/metrics.csv")
        rerun_diff=$(max_diff "$work/ref/metrics.csv" "$work/ref2/metrics.csv")
        cuda_resume=$(awk -v a="$resume_diff" -v b="$rerun_diff" 'BEGIN {
            print (a == 0 ? "exact" : (a <= 3 * b + 0.5 ? "same schedule, within run-to-run spread" : "differs")) }')
    fi
fi
grid=failed
$PVR --depths 8 --seeds 0 --out "$work/grid" --devices $dev --epochs 1 --limit-train 1024 --limit-test 256 \
    --data-dir "$data" --quiet >/dev/null && [ -f "$work/grid/results.json" ] && grid=passed

# One ResNet-20 epoch on the whole training set, in each precision.
epoch() { # PRECISION: sets EPOCH_S (wall seconds) and EPOCH_IPS (training images/s)
    local s
    s=$(date +%s.%N)
    $BIN train --depth 20 --epochs 1 --precision "$1" --device $dev --data-dir "$data" --out "$work/epoch-$1" \
        ${GPU_CHECK_LIMITS:-} >/dev/null || fail "$1 epoch run failed"
    EPOCH_S=$(secs_since "$s")
    EPOCH_IPS=$(tail -1 "$work/epoch-$1/metrics.csv" | cut -d, -f9)
}
epoch fp32
epoch_s=$EPOCH_S epoch_ips=$EPOCH_IPS
epoch bf16
bf16_epoch_s=$EPOCH_S bf16_epoch_ips=$EPOCH_IPS

# The first 2,000 iterations of the paper's schedule (64k iterations, lr drops at 32k/48k).
s=$(date +%s.%N)
$BIN train --depth 20 --schedule paper --save-every $iterations --device $dev --data-dir "$data" --out "$work/paper" \
    ${GPU_CHECK_LIMITS:-} >/dev/null &
pid=$!
it=0
while kill -0 $pid 2>/dev/null; do
    it=$("$RESNET_CIFAR_PYTHON" -c 'import sys, json
from safetensors import safe_open
try:
    with safe_open(sys.argv[1], "np") as f: print(f.metadata().get("iteration", 0))
except Exception: print(0)' "$work/paper/last.safetensors")
    [ "$it" -ge "$iterations" ] && break
    sleep 1
done
paper_s=$(secs_since "$s")
kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null

printf '{"ok": true, "gpu": "%s", "real_data": %s, "tests": "%s", "cuda_resume": "%s", "resume_max_diff": %s, "rerun_max_diff": %s, "grid_on_cuda": "%s", "resnet20_epoch_seconds": %s, "resnet20_epoch_train_images_per_sec": %s, "resnet20_bf16_epoch_seconds": %s, "resnet20_bf16_epoch_train_images_per_sec": %s, "paper_first_iterations": %s, "paper_first_iterations_seconds": %s, "iterations_reached": %s, "total_seconds": %d}\n' \
    "$gpu" "$real" "$tests" "$cuda_resume" "$resume_diff" "$rerun_diff" "$grid" "$epoch_s" "${epoch_ips:-null}" "$bf16_epoch_s" "${bf16_epoch_ips:-null}" \
    "$iterations" "$paper_s" "$it" "$(($(date +%s) - t0))" >&3
