#!/usr/bin/env python3
"""Evaluate a resnet-cifar checkpoint in PyTorch, preprocessing as `resnet-cifar eval` does.

Usage: python docs/export_eval.py RUN/best.safetensors DATA_DIR

DATA_DIR is the binary data set the run used (data/cifar-10-batches-bin, or
data/cifar-100-binary for a CIFAR-100 run). Prints the top-1 error on its test set,
the number `resnet-cifar eval --weights RUN/best.safetensors` prints. Needs torch,
numpy and safetensors (the set-up's virtualenv has them).
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file


def norm(channels, bn):
    return nn.BatchNorm2d(channels) if bn else nn.Identity()


def conv(c_in, c_out, k, stride, bn):
    # Without BN (`train --no-bn`) every convolution has a bias.
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=not bn)


class Block(nn.Module):
    """He et al. 2015: conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut (not in plain nets), then ReLU."""

    def __init__(self, c_in, width, stride, arch, shortcut, bn):
        super().__init__()
        self.conv1, self.bn1 = conv(c_in, width, 3, stride, bn), norm(width, bn)
        self.conv2, self.bn2 = conv(width, width, 3, 1, bn), norm(width, bn)
        self.residual, self.option, self.out_planes = arch == "resnet", shortcut, width
        self.reshapes = stride != 1 or c_in != width
        if self.residual and self.reshapes and shortcut == "B":
            self.shortcut = nn.Sequential(conv(c_in, width, 1, stride, bn), norm(width, bn))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.residual:
            if not self.reshapes:
                out = out + x
            elif self.option == "A":  # subsample, then zero channels on both sides
                pad = (self.out_planes - x.shape[1]) // 2
                out = out + F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad))
            else:
                out = out + self.shortcut(x)
        return F.relu(out)


class PreActBlock(nn.Module):
    """He et al. 2016: (BN-ReLU-conv) x2 (basic) or x3 (bottleneck), plus x or a 1x1 projection."""

    def __init__(self, c_in, width, stride, bottleneck, bn):
        super().__init__()
        if bottleneck:
            shapes = [(c_in, width, 1, 1), (width, width, 3, stride), (width, 4 * width, 1, 1)]
        else:
            shapes = [(c_in, width, 3, stride), (width, width, 3, 1)]
        self.units = len(shapes)
        for i, (a, b, k, s) in enumerate(shapes, start=1):
            setattr(self, f"bn{i}", norm(a, bn))
            setattr(self, f"conv{i}", conv(a, b, k, s, bn))
        self.out_planes = shapes[-1][1]
        self.downsample = None
        if stride != 1 or c_in != self.out_planes:
            self.downsample = nn.Sequential(conv(c_in, self.out_planes, 1, stride, bn))

    def forward(self, x):
        out = x
        for i in range(1, self.units + 1):
            out = getattr(self, f"conv{i}")(F.relu(getattr(self, f"bn{i}")(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class CifarResNet(nn.Module):
    """The network a checkpoint's metadata describes, with our (= PyTorch's) tensor names."""

    def __init__(self, meta):
        super().__init__()
        arch, depth, bn = meta["arch"], int(meta["depth"]), meta.get("batch_norm", "true") == "true"
        self.preact = arch == "preact"
        bottleneck = self.preact and meta.get("block") == "bottleneck"
        n = (depth - 2) // (9 if bottleneck else 6)
        self.conv1 = conv(3, 16, 3, 1, bn)
        if not self.preact:
            self.bn1 = norm(16, bn)
        c_in = 16
        for stage, width in enumerate((16, 32, 64), start=1):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 1 and i == 0 else 1
                if self.preact:
                    blocks.append(PreActBlock(c_in, width, stride, bottleneck, bn))
                else:
                    blocks.append(Block(c_in, width, stride, arch, meta.get("shortcut", "A"), bn))
                c_in = blocks[-1].out_planes
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        classes = int(meta.get("num_classes", "10"))
        if self.preact:
            self.bn, self.fc = norm(c_in, bn), nn.Linear(c_in, classes)
        else:
            self.linear = nn.Linear(c_in, classes)

    def forward(self, x):
        out = self.conv1(x) if self.preact else F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        if self.preact:
            return self.fc(F.relu(self.bn(out)).mean(dim=(2, 3)))
        return self.linear(out.mean(dim=(2, 3)))


def test_set(data_dir, meta):
    """Pixels (uint8, N x 3 x 32 x 32) and labels of the test file, in the official layout."""
    if meta.get("dataset", "cifar10") == "cifar100":
        raw = np.fromfile(os.path.join(data_dir, "test.bin"), dtype=np.uint8).reshape(-1, 3074)
        labels, pixels = raw[:, 0 if meta.get("labels") == "coarse" else 1], raw[:, 2:]
    else:
        raw = np.fromfile(os.path.join(data_dir, "test_batch.bin"), dtype=np.uint8).reshape(-1, 3073)
        labels, pixels = raw[:, 0], raw[:, 1:]
    return torch.from_numpy(pixels.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels.astype(np.int64))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: python docs/export_eval.py RUN/best.safetensors DATA_DIR")
    weights, data_dir = sys.argv[1:]
    with safe_open(weights, "pt") as f:
        meta = f.metadata() or {}
    state = load_file(weights)
    if "normalization.mean" not in state:
        sys.exit(f"{weights} has no normalization.mean/std: not a resnet-cifar checkpoint (see docs/interop.md)")
    # The statistics in [0, 1] pixel units: mean 3x32x32 for pixel-mean (the paper's mean image;
    # std is ones), 3x1x1 for channel and imagenet.
    mean, std = state.pop("normalization.mean").float(), state.pop("normalization.std").float()
    state = {k: v for k, v in state.items() if not k.startswith("optimizer.")}  # last.safetensors' momentum
    model = CifarResNet(meta)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()
    images, labels = test_set(data_dir, meta)
    # x = (pixels / 255 - mean) / std, computed as resnet-cifar computes it, so the inputs are
    # the same bits. Raw pixels, or pixels / 255 without the mean, give ~90 % error.
    scale, shift = (std * 255).reciprocal(), mean / std
    wrong = 0
    with torch.no_grad():
        for i in range(0, len(labels), 500):
            x = images[i : i + 500].float() * scale - shift
            wrong += (model(x).argmax(1) != labels[i : i + 500]).sum().item()
    print(f"top-1 error {100 * wrong / len(labels):.2f} % ({wrong} of {len(labels)} test images)")


if __name__ == "__main__":
    main()
