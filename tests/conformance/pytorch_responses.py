#!/usr/bin/env python3
"""Fig. 7 reference: the std of every 3x3 layer's response (its BN output, before ReLU or
the addition), taken with PyTorch forward hooks on a fixture model in eval mode.

Usage: python pytorch_responses.py FIXTURE OUT
  FIXTURE  a file written by gen_fixtures.py (model tensors + fixture.input)
  OUT      safetensors with `stds` (float64, layer order: bn1, layer1.0.bn1, layer1.0.bn2, ...)
"""

import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import CifarResNet  # noqa: E402


def main():
    fixture, out = sys.argv[1:3]
    with safe_open(fixture, "pt") as f:
        meta = f.metadata()
    tensors = load_file(fixture)
    model = CifarResNet(int(meta["depth"]), meta["arch"], meta["shortcut"])
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("fixture.")}, strict=False)
    model.eval()
    stds = []
    # Module order is layer order: bn1, then each block's bn1 and bn2 (shortcut BNs excluded).
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and ".shortcut." not in n]
    modules = dict(model.named_modules())
    outputs = {}
    for n in names:
        modules[n].register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o.detach().double()))
    with torch.no_grad():
        model(tensors["fixture.input"])
    for n in names:
        stds.append(outputs[n].std(unbiased=False))
    save_file({"stds": torch.stack(stds).contiguous()}, out, metadata={"layers": ",".join(names)})


if __name__ == "__main__":
    main()
