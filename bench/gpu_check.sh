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
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
resnet_cifar_setup >&2 || exit 1
exec 3>&1 1>&2
t0=$(date +%s)
json_field() { printf '"%s": %s' "$1" "$2"; }
fail() { echo "gpu_check: $*" >&2; printf '{"ok": false, "error": "%s"}\n' "$*" >&3; exit 1; }

"$RESNET_CIFAR_PYTHON" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null ||
    fail "torch sees no CUDA device (see the warning above)"
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
cargo build --release --examples --features fault-injection || fail "build failed"
BIN=target/release/resnet-cifar
PVR=target/release/examples/plain_vs_residual

tests=passed
make test || tests=failed

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

# CUDA paths: a short run with mid-epoch checkpoints, stopped and resumed exactly.
small="--depth 8 --epochs 2 --limit-train 2048 --limit-test 512 --batch-size 64 --device cuda:0 --data-dir $data"
cuda_resume=failed
if $BIN train $small --out "$work/ref" >/dev/null; then
    RESNET_CIFAR_TEST_PAUSE=iteration:40 $BIN train $small --out "$work/held" >/dev/null 2>"$work/held.err" &
    pid=$!
    for _ in $(seq 600); do grep -q FAULT-PAUSE "$work/held.err" 2>/dev/null && break; sleep 0.1; done
    kill -TERM $pid; wait $pid
    $BIN train --resume "$work/held" >/dev/null &&
        cmp <(cut -d, -f1-7 "$work/ref/metrics.csv") <(cut -d, -f1-7 "$work/held/metrics.csv") && cuda_resume=exact
fi
grid=failed
$PVR --depths 8 --seeds 0 --out "$work/grid" --devices cuda:0 --epochs 1 --limit-train 1024 --limit-test 256 \
    --data-dir "$data" --quiet >/dev/null && [ -f "$work/grid/results.json" ] && grid=passed

# One ResNet-20 epoch on the whole training set.
s=$(date +%s.%N)
$BIN train --depth 20 --epochs 1 --device cuda:0 --data-dir "$data" --out "$work/epoch" >/dev/null || fail "epoch run failed"
epoch_s=$(echo "$(date +%s.%N) - $s" | bc)
epoch_ips=$(tail -1 "$work/epoch/metrics.csv" | cut -d, -f9)

# The first 2,000 iterations of the paper's schedule (64k iterations, lr drops at 32k/48k).
s=$(date +%s.%N)
$BIN train --depth 20 --schedule paper --save-every 2000 --device cuda:0 --data-dir "$data" --out "$work/paper" >/dev/null &
pid=$!
it=0
while kill -0 $pid 2>/dev/null; do
    it=$("$RESNET_CIFAR_PYTHON" -c 'import sys, json
from safetensors import safe_open
try:
    with safe_open(sys.argv[1], "np") as f: print(f.metadata().get("iteration", 0))
except Exception: print(0)' "$work/paper/last.safetensors")
    [ "$it" -ge 2000 ] && break
    sleep 1
done
paper_s=$(echo "$(date +%s.%N) - $s" | bc)
kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null

printf '{"ok": true, "gpu": "%s", "real_data": %s, "tests": "%s", "cuda_resume": "%s", "grid_on_cuda": "%s", "resnet20_epoch_seconds": %.1f, "resnet20_epoch_train_images_per_sec": %s, "paper_first_2000_iterations_seconds": %.1f, "iterations_reached": %s, "total_seconds": %d}\n' \
    "$gpu" "$real" "$tests" "$cuda_resume" "$grid" "$epoch_s" "${epoch_ips:-null}" "$paper_s" "$it" "$(($(date +%s) - t0))" >&3
