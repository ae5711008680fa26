"""torch.optim.SGD's reference trajectory for tests/conformance.rs: random parameters and
five random gradients per parameter, then five steps of SGD(foreach=True) with momentum 0.9 and weight
decay 1e-4 (the paper's), the lr dropping after step 3. Writes OUT/sgd.safetensors with
`init.<p>`, `grad.<step>.<p>`, `final.<p>` and `momentum.<p>` (fp32)."""
import sys

import torch
from safetensors.torch import save_file

LRS = [0.1, 0.1, 0.1, 0.01, 0.01]
SHAPES = {"conv1.weight": (16, 3, 3, 3), "bn1.weight": (16,), "linear.weight": (10, 64), "linear.bias": (10,)}


def main():
    out = sys.argv[1]
    g = torch.Generator().manual_seed(1)
    params = {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}
    grads = [{n: torch.randn(s, generator=g) for n, s in SHAPES.items()} for _ in LRS]
    tensors = {f"init.{n}": p.clone() for n, p in params.items()}
    for k, step in enumerate(grads):
        tensors.update({f"grad.{k}.{n}": t.clone() for n, t in step.items()})
    live = {n: torch.nn.Parameter(p.clone()) for n, p in params.items()}
    opt = torch.optim.SGD(list(live.values()), lr=LRS[0], momentum=0.9, weight_decay=1e-4, foreach=True)
    for lr, step in zip(LRS, grads):
        for group in opt.param_groups:
            group["lr"] = lr
        for n, p in live.items():
            p.grad = step[n].clone()
        opt.step()
    tensors.update({f"final.{n}": p.detach().clone() for n, p in live.items()})
    tensors.update({f"momentum.{n}": opt.state[p]["momentum_buffer"].clone() for n, p in live.items()})
    save_file(tensors, f"{out}/sgd.safetensors", metadata={"lrs": ",".join(map(str, LRS))})


if __name__ == "__main__":
    main()
