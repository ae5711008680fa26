#!/usr/bin/env python3
"""Round trip: load a checkpoint written by `resnet-cifar train` into the PyTorch model of
gen_fixtures.py with load_state_dict(strict=False), and write its eval-mode logits.

Usage: python pytorch_logits.py CHECKPOINT INPUT OUT
  CHECKPOINT  our safetensors (metadata gives arch, depth, shortcut)
  INPUT       safetensors holding `input` (N×3×32×32 float32, already normalised)
  OUT         safetensors with `logits`; metadata lists missing and unexpected keys
"""

import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import CifarResNet  # noqa: E402


def main():
    ckpt, inp, out = sys.argv[1:4]
    with safe_open(ckpt, "pt") as f:
        meta = f.metadata()
    model = CifarResNet(int(meta["depth"]), meta["arch"], meta["shortcut"])
    missing, unexpected = model.load_state_dict(load_file(ckpt), strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    model.eval()
    with torch.no_grad():
        logits = model(load_file(inp)["input"])
    save_file(
        {"logits": logits.contiguous()},
        out,
        metadata={"missing": ",".join(missing), "unexpected": ",".join(unexpected)},
    )


if __name__ == "__main__":
    main()
