#!/usr/bin/env python3
"""Side-by-side speed benchmark: `resnet-cifar bench` against the PyTorch eager baseline
(bench/pytorch_train.py) on the same machine, in one invocation, alternating.

For each depth (default 20 and 56) at batch 128 it times, in rounds:
  train  ours fp32 · ours bf16 · PyTorch fp32 · PyTorch autocast bf16 + channels_last
  eval   ours fp32 · ours bf16 · PyTorch fp32 · PyTorch autocast bf16 + channels_last
and reports the median images/s, the peak RSS of each process and the ratios. Then
(unless --no-scaling) ours for depth 20/56/110 × batch 64/128/256, and (unless
--no-profile) where the time of a training step goes: ours by phase (data, forward,
backward, optimizer; device synchronised between them) and, for the kernels both share,
PyTorch's profiler by operator class (convolution, batch norm, other element-wise).
First (unless --no-count-ops) the top-level ATen calls per ResNet-20 training step, ours
(`resnet-cifar bench --count-ops`) beside PyTorch eager's (torch.profiler), by part, in
fp32 and bf16: on CUDA each such call is at least one kernel launch on the host.

Usage: python bench/speed.py --bin target/release/resnet-cifar --data-dir D
         [--rounds 3] [--threads 2] [--depths 20,56] [--json out.json] [--quick]
Normally run as `make bench` (bench/speed.sh), which builds and sets up first.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PRECISIONS = ("fp32", "bf16")


def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


class Runner:
    def __init__(self, args):
        self.args = args
        self.env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    def ours(self, mode, depth, batch, precision, iters, warmup, profile=False):
        cmd = [
            self.args.bin, "bench", "--device", "cpu", "--threads", str(self.args.threads),
            "--data-dir", self.args.data_dir, "--mode", mode, "--depth", str(depth),
            "--batch-size", str(batch), "--precision", precision, "--layout", "channels-last",
            "--iters", str(iters), "--warmup", str(warmup),
        ]
        return run_json(cmd + (["--profile"] if profile else []), self.env)

    def pytorch_malloc(self, mode, depth, batch, precision, iters, warmup):
        """The baseline with the glibc malloc settings that `resnet-cifar` makes itself
        (src/alloc.rs), to show how much of the difference they account for."""
        env = dict(self.env, MALLOC_MMAP_THRESHOLD_=str(32 << 20), MALLOC_TRIM_THRESHOLD_=str(2**31 - 1))
        return self.pytorch(mode, depth, batch, precision, iters, warmup, env=env)

    def pytorch(self, mode, depth, batch, precision, iters, warmup, profile=False, env=None):
        cmd = [
            sys.executable, os.path.join(HERE, "pytorch_train.py"), "--threads", str(self.args.threads),
            "--data-dir", self.args.data_dir, "--mode", mode, "--depth", str(depth),
            "--batch-size", str(batch), "--precision", precision, "--iters", str(iters),
            "--warmup", str(warmup), "--workers", str(self.args.workers),
        ]
        return run_json(cmd + (["--profile"] if profile else []), env or self.env)


def median_of(results, key="images_per_sec"):
    return statistics.median(r[key] for r in results)


def compare(runner, args):
    """Alternating rounds of every (mode, depth, precision, implementation)."""
    cells = {}
    for rnd in range(args.rounds):
        for mode in ("train", "eval"):
            iters, warmup = (args.train_iters, 5) if mode == "train" else (1, 1)
            for depth in args.depths:
                for precision in PRECISIONS:
                    impls = [("ours", runner.ours), ("pytorch", runner.pytorch)]
                    if mode == "train" and depth == 20:
                        impls.append(("pytorch_malloc", runner.pytorch_malloc))
                    if rnd % 2:
                        impls.reverse()
                    for name, fn in impls:
                        r = fn(mode, depth, 128, precision, iters, warmup)
                        cells.setdefault((mode, depth, precision, name), []).append(r)
                        print(
                            f"round {rnd + 1}/{args.rounds} {mode:5} resnet-{depth:<3} {precision} {name:7}"
                            f" {r['images_per_sec']:8.1f} img/s  peak RSS {r['peak_rss_mib']:6.0f} MiB",
                            flush=True,
                        )
    rows = []
    for (mode, depth, precision, name), rs in sorted(cells.items()):
        row = {
            "mode": mode, "depth": depth, "batch_size": 128, "precision": precision, "impl": name,
            "images_per_sec": median_of(rs), "runs": [r["images_per_sec"] for r in rs],
            "peak_rss_mib": median_of(rs, "peak_rss_mib"),
        }
        if name == "ours":
            row["load_seconds"] = median_of(rs, "load_seconds")
        if name == "pytorch" and precision == "bf16":
            row["setting"] = "autocast bf16 + channels_last"
        rows.append(row)
    return rows


def ratios(rows):
    get = {(r["mode"], r["depth"], r["precision"], r["impl"]): r for r in rows}
    out = []
    for mode in ("train", "eval"):
        for depth in sorted({r["depth"] for r in rows}):
            ours32, ours16 = get[(mode, depth, "fp32", "ours")], get[(mode, depth, "bf16", "ours")]
            pt32, pt16 = get[(mode, depth, "fp32", "pytorch")], get[(mode, depth, "bf16", "pytorch")]
            out.append({
                "mode": mode, "depth": depth,
                "ours_fp32_over_pytorch_fp32": ours32["images_per_sec"] / pt32["images_per_sec"],
                "ours_bf16_over_pytorch_fp32": ours16["images_per_sec"] / pt32["images_per_sec"],
                "ours_bf16_over_pytorch_bf16_channels_last": ours16["images_per_sec"] / pt16["images_per_sec"],
                "peak_rss_ours_fp32_over_pytorch_fp32": ours32["peak_rss_mib"] / pt32["peak_rss_mib"],
                "peak_rss_ours_bf16_over_pytorch_bf16": ours16["peak_rss_mib"] / pt16["peak_rss_mib"],
            })
    return out


def scaling(runner, args):
    rows = []
    for depth in (20, 56, 110):
        for batch in (64, 128, 256):
            for precision in PRECISIONS:
                # About 2,500 timed images per cell.
                iters = max(4, 2560 // batch)
                r = runner.ours("train", depth, batch, precision, iters, 2)
                rows.append({"depth": depth, "batch_size": batch, "precision": precision,
                             "images_per_sec": r["images_per_sec"], "peak_rss_mib": r["peak_rss_mib"]})
                print(f"scaling resnet-{depth:<3} batch {batch:3} {precision} {r['images_per_sec']:8.1f} img/s", flush=True)
    return rows


def profile(runner, args):
    rows = []
    for precision in PRECISIONS:
        ours = runner.ours("train", 20, 128, precision, args.train_iters, 5, profile=True)
        theirs = runner.pytorch("train", 20, 128, precision, args.train_iters, 5, profile=True)
        rows.append({"precision": precision, "ours_phases": ours["phases"], "ours_seconds": ours["seconds"],
                     "pytorch_phases": theirs["phases"], "pytorch_op_classes": theirs["op_classes"],
                     "pytorch_seconds": theirs["seconds"]})
        print(f"profile {precision}: ours {ours['phases']}; PyTorch {theirs['phases']} {theirs['op_classes']}", flush=True)
    return rows


def count_ops(runner, args):
    """Top-level ATen calls per step, ours and PyTorch's (SGD foreach and its default
    for-loop), counted on one thread; the counts do not depend on the machine."""
    rows = []
    for precision in PRECISIONS:
        common = ["--data-dir", args.data_dir, "--depth", "20", "--batch-size", "128", "--precision", precision,
                  "--iters", "3", "--warmup", "2", "--threads", "1"]
        ours = run_json([args.bin, "bench", "--count-ops", "--json", "--device", "cpu", "--layout", "channels-last",
                         *common], runner.env)["ops"]
        row = {"precision": precision, "ours": ours}
        for sgd in ("foreach", "for-loop"):
            row[f"pytorch_{sgd}"] = run_json([sys.executable, os.path.join(HERE, "pytorch_train.py"), "--count-ops",
                                              "--sgd", sgd, *common], runner.env)
        rows.append(row)
        print(f"ATen calls per step {precision}: ours {ours['ops_per_step']:.0f}, "
              f"PyTorch {row['pytorch_foreach']['ops_per_step']:.0f}", flush=True)
    return rows


def count_markdown(rows):
    lines = ["| precision | part | ours | PyTorch eager, SGD(foreach=True) | PyTorch eager, SGD default loop |",
             "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        for part in ("forward_backward", "optimizer", "other", "ops_per_step"):
            lines.append(f"| {r['precision']} | {part} | {r['ours'][part]:.0f} | {r['pytorch_foreach'][part]:.0f} "
                         f"| {r['pytorch_for-loop'][part]:.0f} |")
    return "\n".join(lines)


def markdown(result):
    lines = ["| mode | model | precision | ours img/s | PyTorch img/s | ratio | peak RSS ours / PyTorch (MiB) |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    get = {(r["mode"], r["depth"], r["precision"], r["impl"]): r for r in result["compare"]}
    for (mode, depth, precision, impl), r in sorted(get.items()):
        if impl == "pytorch_malloc":
            lines.append(f"| {mode} | ResNet-{depth} | {precision}: PyTorch with our malloc settings | "
                         f"| {r['images_per_sec']:.0f} | | |")
        if impl != "ours":
            continue
        pt = get[(mode, depth, precision, "pytorch")]
        label = "fp32" if precision == "fp32" else "bf16 (PyTorch: autocast + channels_last)"
        lines.append(f"| {mode} | ResNet-{depth} | {label} | {r['images_per_sec']:.0f} | {pt['images_per_sec']:.0f} "
                     f"| {r['images_per_sec'] / pt['images_per_sec']:.2f}× | {r['peak_rss_mib']:.0f} / {pt['peak_rss_mib']:.0f} |")
    for q in result["ratios"]:
        lines.append(f"\n{q['mode']} ResNet-{q['depth']}: ours bf16 / PyTorch fp32 = {q['ours_bf16_over_pytorch_fp32']:.2f}×")
    if result.get("scaling"):
        lines += ["", "| depth | batch | fp32 img/s | bf16 img/s |", "| ---: | ---: | ---: | ---: |"]
        cell = {(r["depth"], r["batch_size"], r["precision"]): r["images_per_sec"] for r in result["scaling"]}
        for depth in (20, 56, 110):
            for batch in (64, 128, 256):
                lines.append(f"| {depth} | {batch} | {cell[(depth, batch, 'fp32')]:.0f} | {cell[(depth, batch, 'bf16')]:.0f} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True, help="the resnet-cifar binary")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0, help="PyTorch DataLoader workers")
    p.add_argument("--depths", type=lambda s: [int(d) for d in s.split(",")], default=[20, 56])
    p.add_argument("--train-iters", type=int, default=30)
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--no-count-ops", action="store_true")
    p.add_argument("--quick", action="store_true", help="one round, few steps, depth 20 only (a smoke test)")
    p.add_argument("--json", default="bench/results/speed.json")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.train_iters, args.depths, args.no_scaling = 1, 3, [20], True
    runner = Runner(args)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads, "platform": platform.platform()},
        "torch": run_json([sys.executable, "-c", "import json, torch; print(json.dumps(torch.__version__))"], runner.env),
        "settings": {"rounds": args.rounds, "train_iters": args.train_iters, "batch_size": 128,
                     "pytorch_workers": args.workers, "ours_layout": "channels-last"},
    }
    if not args.no_count_ops:
        result["count_ops"] = count_ops(runner, args)
    result["compare"] = compare(runner, args)
    result["ratios"] = ratios(result["compare"])
    if not args.no_scaling:
        result["scaling"] = scaling(runner, args)
    if not args.no_profile:
        result["profile"] = profile(runner, args)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    print()
    if result.get("count_ops"):
        print(count_markdown(result["count_ops"]) + "\n")
    print(markdown(result))
    print(f"\nwrote {args.json}")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
