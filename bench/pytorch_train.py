#!/usr/bin/env python3
"""PyTorch eager baseline for `resnet-cifar bench`: what a PyTorch user runs to train the
paper's CIFAR-10 ResNet on a CPU, timed per step after a warm-up.

- data: the CIFAR-10 binary files read into memory once, served by a
  `torch.utils.data.DataLoader` (shuffle) whose Dataset applies torchvision's per-image
  `RandomCrop(32, padding=4)`, `RandomHorizontalFlip()`, `ToTensor()`, `Normalize(...)`
  to PIL images, as torchvision.datasets.CIFAR10 does;
- model: the reference model of tests/conformance/gen_fixtures.py (option A shortcuts);
- optimizer: torch.optim.SGD(lr 0.1, momentum 0.9, weight_decay 1e-4);
- precision `fp32`, or `bf16`: `torch.autocast("cpu", torch.bfloat16)` with the model and
  the input in channels_last (PyTorch's fastest CPU setting).

`--mode eval` times inference instead: the test set in batches of 500 under
`torch.inference_mode()`, normalised on whole batches (no DataLoader).

Prints one JSON object: images/s, seconds, images, peak RSS (MiB); with --profile also
seconds per phase (data, forward, backward, optimizer) and per operator class.

Usage: python pytorch_train.py --data-dir D [--depth 20] [--batch-size 128]
         [--precision fp32|bf16] [--mode train|eval] [--iters 30] [--warmup 5]
         [--workers 0] [--threads 2] [--profile]
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "conformance"))
from gen_fixtures import CifarResNet  # noqa: E402

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def read_batches(data_dir, names):
    raw = np.concatenate(
        [np.fromfile(os.path.join(data_dir, n), dtype=np.uint8).reshape(-1, 3073) for n in names]
    )
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()  # HWC, as torchvision keeps it
    return images, raw[:, 0].astype(np.int64)


class Cifar10(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10's __getitem__ on the binary files."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(args, model):
    images, labels = read_batches(args.data_dir, [f"data_batch_{i}.bin" for i in range(1, 6)])
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    loader = torch.utils.data.DataLoader(
        Cifar10(images, labels, transform),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        persistent_workers=args.workers > 0,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    bf16 = args.precision == "bf16"
    model.train()

    def batches():
        while True:
            yield from loader

    it = batches()

    def step(x, y):
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        mark("forward")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        mark("backward")
        optimizer.step()
        mark("optimizer")
        return loss

    phases = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    clock = [time.perf_counter()]

    def mark(phase):
        now = time.perf_counter()
        phases[phase] += now - clock[0]
        clock[0] = now

    total = args.warmup + args.iters
    for i in range(total):
        if i == args.warmup:
            start = time.perf_counter()
            phases = dict.fromkeys(phases, 0.0)
        clock[0] = time.perf_counter()
        x, y = next(it)
        mark("data")
        loss = step(x, y)
    loss.item()
    seconds = time.perf_counter() - start
    extra = {}
    if args.profile:
        extra["phases"] = dict(phases)  # before op_classes adds its profiled steps
        extra["op_classes"] = op_classes(lambda: [next(it) for _ in range(args.iters)], step)
    return seconds, args.iters * args.batch_size, extra


def op_classes(fetch, step):
    """Self CPU time of the training steps (data excluded) by operator class, from
    torch.profiler: convolutions (forward and backward), batch norm, the optimizer's
    ops, and everything else (ReLU, additions, casts, pooling, loss)."""
    batches = fetch()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for x, y in batches:
            step(x, y)
    classes = {"convolution": 0.0, "batch_norm": 0.0, "optimizer": 0.0, "other": 0.0}
    for e in prof.key_averages():
        name = e.key
        if "conv" in name:
            c = "convolution"
        elif "batch_norm" in name:
            c = "batch_norm"
        elif "foreach" in name or "sgd" in name.lower() or "Optimizer" in name:
            c = "optimizer"
        else:
            c = "other"
        classes[c] += e.self_cpu_time_total / 1e6
    return classes


def count_ops(args, model):
    """Top-level ATen calls per training step, as `resnet-cifar bench --count-ops` counts
    them: the aten:: events of torch.profiler that have no aten:: ancestor, by the part of
    the step they fall in (record_function markers): forward + backward, optimizer
    (`SGD(foreach=True)` and `zero_grad(set_to_none=True)`), and other (the input's
    channels_last copy in bf16, the loss read at the end). The DataLoader's per-image
    transforms run in its workers on a GPU box and launch no kernel: they are counted
    apart (`data_loader`, here in the main process) and not in `ops_per_step`."""
    images, labels = read_batches(args.data_dir, ["data_batch_1.bin"])
    transform = transforms.Compose(
        [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
         transforms.Normalize(MEAN, STD)]
    )
    loader = torch.utils.data.DataLoader(Cifar10(images, labels, transform), batch_size=args.batch_size,
                                         shuffle=True, drop_last=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4,
                                foreach=args.sgd == "foreach")
    bf16 = args.precision == "bf16"
    model.train()
    rf = torch.profiler.record_function

    def step(x, y):
        with rf("part:other"):
            if bf16:
                x = x.contiguous(memory_format=torch.channels_last)
        with rf("part:forward_backward"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x), y)
        with rf("part:optimizer"):
            optimizer.zero_grad(set_to_none=True)
        with rf("part:forward_backward"):
            loss.backward()
        with rf("part:optimizer"):
            optimizer.step()
        return loss

    it = iter(loader)
    for _ in range(args.warmup):
        step(*next(it))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.iters):
            with rf("part:data_loader"):
                x, y = next(it)
            loss = step(x, y)
        with rf("part:other"):
            loss.item()
    counts = {"forward_backward": 0, "optimizer": 0, "other": 0, "data_loader": 0}
    names = {}

    def walk(e, part, inside_aten):
        if e.name.startswith("part:"):
            part = e.name[5:]
        is_aten = e.name.startswith("aten::")
        if is_aten and not inside_aten and part is not None:
            counts[part] += 1
            names[(part, e.name)] = names.get((part, e.name), 0) + 1
        for c in e.cpu_children:
            walk(c, part, inside_aten or is_aten)

    for e in prof.events():
        if e.cpu_parent is None:
            walk(e, None, False)
    n = args.iters
    out = {k: v / n for k, v in counts.items()}
    out["ops_per_step"] = out["forward_backward"] + out["optimizer"] + out["other"]
    out["by_name"] = [
        {"part": p, "op": op, "per_step": k / n}
        for (p, op), k in sorted(names.items(), key=lambda kv: (kv[0][0], -kv[1]))
        if p != "data_loader"
    ]
    return out


def evaluate(args, model):
    images, labels = read_batches(args.data_dir, ["test_batch.bin"])
    # N×C×H×W and contiguous, as ToTensor() gives (and as PyTorch users evaluate).
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(labels)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    bf16 = args.precision == "bf16"
    model.eval()
    n = len(labels)
    seconds = 0.0
    for rep in range(2):  # the first pass warms up
        start = time.perf_counter()
        wrong = 0
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for i in range(0, n, 500):
                x = (images[i : i + 500].float() / 255 - mean) / std
                if bf16:
                    x = x.contiguous(memory_format=torch.channels_last)
                wrong += (model(x).argmax(1) != labels[i : i + 500]).sum().item()
        seconds = time.perf_counter() - start
    return seconds, n, {}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", required=True)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--mode", choices=("train", "eval"), default="train")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--profile", action="store_true", help="train: also time phases and operator classes")
    p.add_argument("--count-ops", action="store_true", help="count top-level ATen calls per step instead of timing")
    p.add_argument("--sgd", choices=("foreach", "for-loop"), default="foreach", help="with --count-ops")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CifarResNet(args.depth, "resnet", "A")
    if args.precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    if args.count_ops:
        print(json.dumps({"torch": torch.__version__, "precision": args.precision, "sgd": args.sgd,
                          **count_ops(args, model)}))
        return
    seconds, images, extra = (train if args.mode == "train" else evaluate)(args, model)
    print(
        json.dumps(
            {
                "images_per_sec": images / seconds,
                "seconds": seconds,
                "images": images,
                "peak_rss_mib": peak_rss_mib(),
                "workers": args.workers,
                "torch": torch.__version__,
                **extra,
            }
        )
    )


if __name__ == "__main__":
    main()
