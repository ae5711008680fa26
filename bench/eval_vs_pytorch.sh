#!/usr/bin/env bash
# Times `resnet-cifar eval` against PyTorch eager (bench/eval_pytorch.py) on the same
# checkpoint and test set, alternating, and prints the median wall times and their ratio.
# Usage: bench/eval_vs_pytorch.sh WEIGHTS DATA_DIR [ROUNDS] [THREADS]
# Run after `make build` (or inside `make`'s environment: source scripts/dev.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh && resnet_cifar_setup >/dev/null
weights="$1"; data="$2"; rounds="${3:-5}"; threads="${4:-2}"
bin=target/release/resnet-cifar
[ -x "$bin" ] || cargo build --release
ours=(); theirs=()
now() { date +%s.%N; }
for _ in $(seq "$rounds"); do
    t=$(now); OMP_NUM_THREADS=$threads "$bin" eval --device cpu --normalize imagenet --weights "$weights" --data-dir "$data" >/dev/null
    ours+=("$(echo "$(now) - $t" | bc)")
    t=$(now); OMP_NUM_THREADS=$threads "$RESNET_CIFAR_PYTHON" bench/eval_pytorch.py "$weights" "$data" "$threads" >/dev/null
    theirs+=("$(echo "$(now) - $t" | bc)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
o=$(median "${ours[@]}"); p=$(median "${theirs[@]}")
echo "resnet-cifar eval: median ${o} s over $rounds runs (${ours[*]})"
echo "PyTorch eager:     median ${p} s over $rounds runs (${theirs[*]})"
echo "speed-up (PyTorch time / ours): $(echo "scale=2; $p / $o" | bc)"
