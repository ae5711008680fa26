#!/usr/bin/env bash
# The one prepared device check for a CUDA GPU box (run from the repository root), sized to
# about 7 minutes (GPU_CHECK_BUDGET_S, default 400 s, start-up of the box not included):
#   1. set-up and release build (make build) unless RESNET_CIFAR_PREBUILT names the binaries;
#   2. the GPU failure cases (bench/gpu_failures.sh, under a minute): a batch too large for
#      the GPU's memory, a device that does not exist, a CUDA checkpoint resumed on the CPU
#      and back, SIGTERM in a CUDA epoch then resume;
#   3. ResNet-20 at batch 128 in images/s, side by side in this one call: ours eager and with
#      CUDA graphs, fp32 and bf16; PyTorch eager and with torch.cuda graphs (bench/gpu_pytorch.py,
#      the box's own PyTorch); ours with graphs and PyTorch eager as 8 processes on the GPU;
#      top-level ATen calls per step on CUDA (bench --count-ops);
#   4. exact resume on CUDA with --deterministic (stopped at iteration 40 and resumed);
#   5. with the time left, `--schedule paper` ResNet-20 (64k iterations, --val-split 5000),
#      to its end if the budget allows: its final and best test error beside the paper's
#      8.75 %, or the iterations reached and the projected time.
# Prints one JSON object on the last line of stdout; everything else goes to stderr. Real
# CIFAR-10 where CIFAR10_DIR or data/cifar-10-batches-bin has it, else random images of the
# same size (speed only: the errors then mean nothing, and the JSON says real_data false).
#
# Dry run on a machine without a GPU: GPU_CHECK_DEVICE=cpu GPU_CHECK_ITERS=3 GPU_CHECK_PROCS=2
# GPU_CHECK_WARMUP=1 GPU_CHECK_BUDGET_S=60 GPU_FAILURES_LIMIT_TRAIN=1000 GPU_FAILURES_LIMIT_TEST=200
# bench/gpu_check.sh (steps that need CUDA report "needs CUDA"; the failure cases train on fewer images).
set -uo pipefail
cd "$(dirname "$0")/.."
exec 3>&1 1>&2
t0=$(date +%s)
fail() { echo "gpu_check: $*" >&2; printf '{"ok": false, "error": "%s"}\n' "$*" >&3; exit 1; }
elapsed() { echo $(($(date +%s) - t0)); }
budget=${GPU_CHECK_BUDGET_S:-400}
dev=${GPU_CHECK_DEVICE:-cuda:0}
iters=${GPU_CHECK_ITERS:-300}
procs=${GPU_CHECK_PROCS:-8}
warmup=${GPU_CHECK_WARMUP:-30}

if [ -n "${RESNET_CIFAR_PREBUILT:-}" ]; then
    BIN=$RESNET_CIFAR_PREBUILT/resnet-cifar
    RESNET_CIFAR_PYTHON=${RESNET_CIFAR_PYTHON:-python3}
    # Binaries from scripts/build-for-torch.sh: they run on this box's own torch libraries,
    # which must be the release they were built for (BUILD.txt says which).
    box_torch=$("$RESNET_CIFAR_PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])') ||
        fail "no importable torch in $RESNET_CIFAR_PYTHON (set RESNET_CIFAR_PYTHON)"
    built_for=$(sed -n 's/^torch (libtorch) \([0-9.]*\).*/\1/p' "$RESNET_CIFAR_PREBUILT/BUILD.txt" 2>/dev/null)
    if [ -n "$built_for" ] && [ "$built_for" != "$box_torch" ]; then
        fail "the binaries in $RESNET_CIFAR_PREBUILT were built for torch $built_for, this box has $box_torch: rebuild them with scripts/build-for-torch.sh $box_torch"
    fi
    torch_lib=$("$RESNET_CIFAR_PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
    source scripts/env.sh
    resnet_cifar_setup || exit 1
    cargo build --release --features fault-injection || fail "build failed"
    BIN=target/release/resnet-cifar
fi
PY=$RESNET_CIFAR_PYTHON
export BIN PY
cuda=false
case $dev in cuda*) cuda=true ;; esac
if $cuda; then
    "$PY" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null || fail "torch sees no CUDA device"
fi
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="${CIFAR10_DIR:-data/cifar-10-batches-bin}"
real=true
if [ ! -f "$data/data_batch_1.bin" ]; then
    real=false
    data="$work/cifar-10-batches-bin"
    mkdir -p "$data"
    "$PY" - "$data" <<'PY'
import os, sys
import numpy as np
rng = np.random.default_rng(0)
for name, n in [(f"data_batch_{i}.bin", 10000) for i in range(1, 6)] + [("test_batch.bin", 10000)]:
    rec = rng.integers(0, 256, size=(n, 3073), dtype=np.uint8)
    rec[:, 0] = rng.integers(0, 10, size=n)
    rec.tofile(os.path.join(sys.argv[1], name))
PY
fi
json_field() { # FILE KEY: a number from a one-line JSON file, or null
    "$PY" -c 'import json, sys
try:
    v = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
    for k in sys.argv[2].split("."): v = v[k]
    print(json.dumps(v))
except Exception: print("null")' "$1" "$2"
}

# 2. Failure cases.
failures=null
if [ -x bench/gpu_failures.sh ]; then
    BIN=$BIN DATA=$data WORK=$work/failures DEV=$dev RESNET_CIFAR_PYTHON=$PY timeout 120 bench/gpu_failures.sh \
        >"$work/failures.json" 2>"$work/failures.err"
    # Its JSON whether it passed or not (a failed case, or stopped by the limit: it still reports).
    last=$(tail -1 "$work/failures.json" 2>/dev/null)
    case $last in "{"*) failures=$last ;; esac
    [ "$failures" = null ] && failures="{\"error\": \"gpu_failures.sh failed: $(tail -1 "$work/failures.err" | tr -d '"\\')\"}"
fi

# 3. Throughput, one process at a time, then several at once.
ours() { # NAME PRECISION GRAPHS: ours at batch 128
    $BIN bench --device "$dev" --depth 20 --batch-size 128 --precision "$2" --cuda-graphs "$3" \
        --iters "$iters" --warmup "$warmup" --data-dir "$data" >"$work/$1.json" 2>"$work/$1.err" ||
        echo "{\"error\": \"$(tail -1 "$work/$1.err" | tr -d '"\\')\"}" >"$work/$1.json"
}
theirs() { # NAME PRECISION MODE: PyTorch at batch 128
    "$PY" bench/gpu_pytorch.py --device "$dev" --precision "$2" --mode "$3" --iters "$iters" --warmup "$warmup" \
        --data-dir "$data" >"$work/$1.json" 2>"$work/$1.err" ||
        grep -q '"error"' "$work/$1.json" ||
        echo "{\"error\": \"$(tail -1 "$work/$1.err" | tr -d '"\\')\"}" >"$work/$1.json"
}
graphs=on
$cuda || graphs=off
ours ours_eager_fp32 fp32 off
ours ours_eager_bf16 bf16 off
ours ours_graphs_fp32 fp32 $graphs
ours ours_graphs_bf16 bf16 $graphs
theirs pytorch_eager_fp32 fp32 eager
theirs pytorch_eager_bf16 bf16 eager
theirs pytorch_graphs_fp32 fp32 graphs
theirs pytorch_graphs_bf16 bf16 graphs
$BIN bench --count-ops --json --device "$dev" --depth 20 --batch-size 128 --iters 5 --warmup 3 --cuda-graphs off \
    --data-dir "$data" >"$work/count_ops.json" 2>/dev/null || echo '{}' >"$work/count_ops.json"
many() { # NAME COMMAND…: PROCS copies at once; sets MANY (per-process images/s, space-separated)
    local name=$1 i
    shift
    for i in $(seq "$procs"); do "$@" >"$work/$name.$i.json" 2>/dev/null & done
    wait
    MANY=$(for i in $(seq "$procs"); do json_field "$work/$name.$i.json" images_per_sec; done | tr '\n' ' ')
}
many ours_graphs_fp32_x$procs $BIN bench --device "$dev" --depth 20 --batch-size 128 --cuda-graphs $graphs \
    --iters "$iters" --warmup "$warmup" --data-dir "$data"
ours_many=$MANY
many pytorch_eager_fp32_x$procs "$PY" bench/gpu_pytorch.py --device "$dev" --iters "$iters" --warmup "$warmup" --data-dir "$data"
pytorch_many=$MANY
list() { echo "[$(echo "$1" | xargs | tr ' ' ',')]"; }

# 4. Exact resume on CUDA: --deterministic, stopped at iteration 40 (SIGTERM) and resumed.
small="--depth 8 --epochs 2 --limit-train 2048 --limit-test 512 --batch-size 64 --device $dev --data-dir $data --deterministic"
resume=failed
if $BIN train $small --out "$work/ref" >/dev/null 2>&1; then
    RESNET_CIFAR_TEST_PAUSE=iteration:40 $BIN train $small --out "$work/held" >/dev/null 2>"$work/held.err" &
    pid=$!
    for _ in $(seq 600); do grep -q FAULT-PAUSE "$work/held.err" 2>/dev/null && break; sleep 0.1; done
    kill -TERM $pid
    wait $pid
    if $BIN train --resume "$work/held" --deterministic >/dev/null 2>&1; then
        if cmp -s <(cut -d, -f1-7 "$work/ref/metrics.csv") <(cut -d, -f1-7 "$work/held/metrics.csv"); then
            resume=exact
        else
            resume=differs
        fi
    fi
fi
grid=failed
$BIN study --depths 8 --seeds 0 --out "$work/grid" --devices "$dev" --epochs 1 --limit-train 1024 --limit-test 256 \
    --data-dir "$data" --quiet >/dev/null 2>&1 && [ -f "$work/grid/results.json" ] && grid=passed

# 5. The paper's schedule with the time left.
left=$((budget - $(elapsed)))
paper_s=0 paper_it=0 paper_final=null paper_best=null paper_done=false
if [ "$left" -gt 20 ]; then
    s=$(date +%s)
    timeout --signal=TERM "$((left - 5))" $BIN train --depth 20 --schedule paper --val-split 5000 --device "$dev" \
        --data-dir "$data" --out "$work/paper" ${GPU_CHECK_PAPER_ARGS:-} >/dev/null 2>"$work/paper.err"
    rc=$?
    paper_s=$(($(date +%s) - s))
    [ "$rc" = 0 ] && paper_done=true
    if [ -f "$work/paper/metrics.csv" ]; then
        read -r paper_it paper_final paper_best < <("$PY" - "$work/paper/metrics.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
if rows:
    print(rows[-1]["iteration"], rows[-1]["test_err"], min(float(r["test_err"]) for r in rows))
else:
    print(0, "null", "null")
PY
        )
    fi
fi

cat >"$work/summary.py" <<'PY'
import json, os, sys
work = sys.argv[1]
def load(name):
    try:
        return json.loads(open(os.path.join(work, name + ".json")).read().strip().splitlines()[-1])
    except Exception as e:
        return {"error": str(e)}
def ips(r):
    return r.get("images_per_sec") if isinstance(r, dict) else None
a = json.loads(sys.argv[2])
runs = {k: load(k) for k in ["ours_eager_fp32", "ours_eager_bf16", "ours_graphs_fp32", "ours_graphs_bf16",
                             "pytorch_eager_fp32", "pytorch_eager_bf16", "pytorch_graphs_fp32", "pytorch_graphs_bf16"]}
out = {"ok": True, **a["head"], "images_per_sec": {k: ips(v) if ips(v) else v for k, v in runs.items()}}
pe = ips(runs["pytorch_eager_fp32"])
out["ratios"] = {k: (ips(v) / pe if ips(v) and pe else None) for k, v in runs.items() if k.startswith("ours")}
out["ratios_over"] = "pytorch_eager_fp32"
out["processes"] = {"count": a["procs"], "ours_graphs_fp32": a["ours_many"], "pytorch_eager_fp32": a["pytorch_many"]}
for k in ("ours_graphs_fp32", "pytorch_eager_fp32"):
    v = [x for x in a[k + "_many"] if x]
    out["processes"][k + "_sum"] = sum(v) if v else None
c = load("count_ops")
out["ops_per_step_cuda"] = c.get("ops")
out.update(a["tail"])
print(json.dumps(out))
PY
args=$(cat <<EOF
{"head": {"gpu": "$gpu", "device": "$dev", "real_data": $real, "batch_size": 128, "iters": $iters, "failures": $failures},
 "procs": $procs, "ours_many": $(list "$ours_many"), "pytorch_many": $(list "$pytorch_many"),
 "ours_graphs_fp32_many": $(list "$ours_many"), "pytorch_eager_fp32_many": $(list "$pytorch_many"),
 "tail": {"cuda_resume_deterministic": "$resume", "grid_on_device": "$grid",
          "paper": {"done": $paper_done, "seconds": $paper_s, "iterations": $paper_it, "final_test_err": $paper_final,
                    "best_test_err": $paper_best, "paper_test_err": 8.75},
          "total_seconds": $(elapsed)}}
EOF
)
"$PY" "$work/summary.py" "$work" "$args" >&3 || fail "summary failed: $args"
