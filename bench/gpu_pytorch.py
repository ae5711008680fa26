#!/usr/bin/env python3
"""PyTorch's side of bench/gpu_check.sh: the ResNet-20 training step at batch 128 on one
device, as a PyTorch user writes it for speed on a GPU, in images/s after a warm-up:

- data resident on the device (CIFAR-10 as uint8), the paper's pad-crop-flip done on the
  device on whole batches (the same as `resnet-cifar`'s), normalisation on the device;
- the reference model of tests/conformance/gen_fixtures.py (option A), channels_last;
- SGD(momentum 0.9, weight decay 1e-4), foreach (PyTorch's default on CUDA);
- `--mode eager`, or `--mode graphs`: the whole step (gather, augmentation, forward,
  backward, optimizer) captured with torch.cuda.graph after a side-stream warm-up, as the
  CUDA-graphs guide shows, and replayed;
- `--precision bf16`: autocast(bfloat16).

Prints one JSON object. Without CUDA, `--mode graphs` says so and exits 2 (for a dry run).

Usage: python bench/gpu_pytorch.py --data-dir D [--device cuda:0] [--mode eager|graphs]
         [--precision fp32|bf16] [--iters 200] [--warmup 20]
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "conformance"))
from gen_fixtures import CifarResNet  # noqa: E402

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def load(data_dir, device):
    path = os.path.join(data_dir, "data_batch_1.bin")
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    images = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()).to(device)
    labels = torch.from_numpy(raw[:, 0].astype(np.int64)).to(device)
    return images, labels


def augment(x):
    """Pad 4, random 32x32 crop, random horizontal flip, on a whole batch (one gather)."""
    b, c, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(9, (b, 1, 1, 1), device=x.device)
    dx = torch.randint(9, (b, 1, 1, 1), device=x.device)
    flip = torch.randint(2, (b, 1, 1, 1), device=x.device, dtype=torch.bool)
    rows = dy + torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols_ = torch.arange(w, device=x.device).view(1, 1, 1, w)
    cols = dx + torch.where(flip, cols_.flip(-1), cols_)
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[bi, ci, rows, cols]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", required=True)
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--mode", choices=("eager", "graphs"), default="eager")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    args = p.parse_args()
    device = torch.device(args.device)
    if args.mode == "graphs" and device.type != "cuda":
        print(json.dumps({"error": "CUDA graphs need a CUDA device", "mode": args.mode}))
        sys.exit(2)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    images, labels = load(args.data_dir, device)
    n, b = len(labels), args.batch_size
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255
    model = CifarResNet(20, "resnet", "A").to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    bf16 = args.precision == "bf16"
    index = torch.zeros(b, dtype=torch.long, device=device)

    def step():
        x = (images.index_select(0, index).float() - mean) / std
        x = augment(x).contiguous(memory_format=torch.channels_last)
        y = labels.index_select(0, index)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def next_index(i):
        start = (i * b) % (n - b)
        index.copy_(torch.arange(start, start + b, device=device))

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if args.mode == "eager":
        for i in range(args.warmup):
            next_index(i)
            opt.zero_grad(set_to_none=True)
            step()
        sync()
        t = time.perf_counter()
        for i in range(args.iters):
            next_index(i)
            opt.zero_grad(set_to_none=True)
            loss = step()
        loss.item()
    else:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for i in range(3):
                next_index(i)
                opt.zero_grad(set_to_none=True)
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = step()
        for i in range(args.warmup):
            next_index(i)
            graph.replay()
        sync()
        t = time.perf_counter()
        for i in range(args.iters):
            next_index(i)
            graph.replay()
        static_loss.item()
    sync()
    seconds = time.perf_counter() - t
    print(json.dumps({"impl": "pytorch", "mode": args.mode, "precision": args.precision,
                      "images_per_sec": args.iters * b / seconds, "seconds": seconds, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
