#!/usr/bin/env python3
"""PyTorch eager baseline for `resnet-cifar eval`: the same work, timed the same way
(process start to result): read test_batch.bin, normalise (imagenet), evaluate a
checkpoint in batches of 500 in eval mode, print the top-1 error.

Usage: python eval_pytorch.py WEIGHTS DATA_DIR [THREADS]
"""

import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "conformance"))
from gen_fixtures import CifarResNet  # noqa: E402


def main():
    weights, data_dir = sys.argv[1:3]
    if len(sys.argv) > 3:
        torch.set_num_threads(int(sys.argv[3]))
    raw = np.fromfile(os.path.join(data_dir, "test_batch.bin"), dtype=np.uint8).reshape(-1, 3073)
    labels = torch.from_numpy(raw[:, 0].astype(np.int64))
    images = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy())
    state = load_file(weights)
    depth = 6 * (1 + max(int(k.split(".")[1]) for k in state if k.startswith("layer1."))) + 2
    model = CifarResNet(depth, "resnet", "A")
    model.load_state_dict(state, strict=False)
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    wrong = 0
    with torch.no_grad():
        for i in range(0, len(labels), 500):
            x = (images[i : i + 500].float() / 255 - mean) / std
            wrong += (model(x).argmax(1) != labels[i : i + 500]).sum().item()
    print(f"top-1 error {100 * wrong / len(labels):.2f}%")


if __name__ == "__main__":
    main()
