#!/usr/bin/env python3
"""Loss-landscape reference: the eval-mode loss of a fixture model moved to
w0 + alpha*d1 + beta*d2, with the directions exported by the Rust test under
PyTorch's state-dict names (d1.<name>, d2.<name>, zeros where nothing moves).

Usage: python pytorch_landscape.py FIXTURE DIRECTIONS ALPHA BETA OUT
  FIXTURE     a file written by gen_fixtures.py (model tensors + fixture.input/labels)
  DIRECTIONS  safetensors with d1.* and d2.* for every state-dict entry
  OUT         safetensors with `loss` (float64, scalar) and metadata `moved`: the
              parameters whose direction is non-zero
"""

import os
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import CifarResNet  # noqa: E402


def main():
    fixture, directions, alpha, beta, out = sys.argv[1:6]
    alpha, beta = float(alpha), float(beta)
    with safe_open(fixture, "pt") as f:
        meta = f.metadata()
    tensors = load_file(fixture)
    dirs = load_file(directions)
    model = CifarResNet(int(meta["depth"]), meta["arch"], meta["shortcut"])
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("fixture.")}, strict=False)
    state = model.state_dict()
    names = {k[3:] for k in dirs if k.startswith("d1.")}
    missing = names.symmetric_difference(k for k in state if not k.endswith("num_batches_tracked"))
    assert not missing, f"direction names differ from the state dict: {sorted(missing)}"
    moved = []
    with torch.no_grad():
        for name, value in state.items():
            if name not in names:
                continue
            d1, d2 = dirs[f"d1.{name}"], dirs[f"d2.{name}"]
            if d1.abs().sum() > 0 or d2.abs().sum() > 0:
                moved.append(name)
            value.copy_(value + alpha * d1 + beta * d2)
    model.eval()
    with torch.no_grad():
        logits = model(tensors["fixture.input"])
        loss = F.cross_entropy(logits, tensors["fixture.labels"]).double()
    save_file({"loss": loss.reshape(1).contiguous()}, out, metadata={"moved": ",".join(sorted(moved))})


if __name__ == "__main__":
    main()
