#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the Rust/tch CIFAR-10 ResNets.

Usage: python gen_fixtures.py [--spec-stats] OUT_DIR

Writes OUT_DIR/{arch}-{shortcut}-{depth}.safetensors for
arch in {resnet, plain}, shortcut in {A, B}, depth in {20, 56} (8 files).
For `plain` the shortcut option has no effect (plain blocks have no shortcut);
both names are still written, each with its own seed, so that a consumer can
loop over all 8 combinations uniformly.

Each file holds (all float32 unless noted):
  <state-dict name>                 model parameters and BN running stats
                                    (num_batches_tracked is not saved)
                                    conv/linear weight: kaiming normal (fan_in, relu)
                                    linear.bias: N(0, 0.1); BN weight U(0.5, 1.5),
                                    BN bias N(0, 0.1); running stats: see
                                    calibrate_running_stats()
  fixture.input                     [8, 3, 32, 32] standard-normal batch
  fixture.labels                    [8] int64
  fixture.logits_eval               [8, 10] logits of model.eval()
  fixture.logits_train              [8, 10] logits of model.train() (batch stats)
  fixture.loss_train                [1] mean cross-entropy in train mode
  fixture.grad.<param name>         gradient of loss_train w.r.t. each parameter
The saved running stats are the ones used for logits_eval: the train-mode
pass runs on a deep copy of the model.
Metadata: {"arch", "shortcut", "depth", "seed", "torch", "running_stats"} (strings).
Tensor contents are bit-for-bit reproducible; the file bytes may differ between
runs only in the order of the JSON metadata keys.

The model is written from He et al. 2015, Section 4.2; it needs only torch
and safetensors.
"""

import copy
import os
import sys
import time
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

BATCH = 8
NUM_CLASSES = 10
DEPTHS = (20, 56)
ARCHS = ("resnet", "plain")
SHORTCUTS = ("A", "B")
# Trainable parameter counts (weights + BN affine), option A / plain.
EXPECTED_PARAMS = {20: 269722, 56: 853018}
OPTION_B_EXTRA = 2752  # two 1x1 projections + their BN: (512 + 64) + (2048 + 128)
# --spec-stats: keep the blind running stats (N(0, 0.1) / U(0.5, 1.5)) instead
# of calibrate_running_stats(); eval logits then blow up with depth.
SPEC_STATS = False


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut (resnet only), then ReLU."""

    def __init__(self, in_planes, planes, stride, arch, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.residual = arch == "resnet"
        self.reshapes = stride != 1 or in_planes != planes
        self.option = shortcut
        self.pad = planes // 4
        if self.residual and self.reshapes and shortcut == "B":
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            if not self.reshapes:
                sc = x
            elif self.option == "A":
                sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            else:
                sc = self.shortcut(x)
            out = out + sc
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, depth, arch, shortcut, num_classes=NUM_CLASSES):
        super().__init__()
        assert (depth - 2) % 6 == 0, depth
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for k, planes in enumerate((16, 32, 64), start=1):
            blocks = []
            for i in range(n):
                stride = 2 if (k > 1 and i == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, arch, shortcut))
                in_planes = planes
            setattr(self, f"layer{k}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = out.mean(dim=(2, 3))
        return self.linear(out)


def randomize(model):
    """Non-trivial values, drawn in module order from the global (seeded) RNG."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def calibrate_running_stats(model, calib_batch=16):
    """Set BN running stats near the real activation statistics, then perturb them.

    With running_mean ~ N(0, 0.1) and running_var ~ U(0.5, 1.5) drawn blindly,
    eval-mode activations grow layer by layer (kaiming weights roughly double
    the variance and eval BN does not undo it): |logits_eval| reached ~3e2 for
    resnet-B-20 and ~2e6 for resnet-A-56. Instead: one train-mode pass with
    momentum 1 on a separate random batch sets each BN's stats to that batch's
    (under the same propagation), then running_mean += N(0, 0.1) * std and
    running_var *= U(0.8, 1.25), so eval BN is neither the identity nor the
    batch statistics while |logits_eval| stays O(1..10) for every case.
    (A factor U(0.5, 1.5) still compounded to |logits_eval| ~ 1e3 in plain-56.)
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    calib = torch.randn(calib_batch, 3, 32, 32)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(calib)
        for m, mom in zip(bns, saved):
            m.momentum = mom
            std = m.running_var.sqrt()
            m.running_mean.add_(torch.randn_like(std) * 0.1 * std)
            m.running_var.mul_(torch.empty_like(std).uniform_(0.8, 1.25))
            m.num_batches_tracked.zero_()


def model_tensors(model):
    return {
        k: v.detach().clone().contiguous().float()
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }


def make_case(arch, shortcut, depth):
    name = f"{arch}-{shortcut}-{depth}"
    seed = zlib.crc32(name.encode())
    torch.manual_seed(seed)
    model = CifarResNet(depth, arch, shortcut)
    randomize(model)
    if not SPEC_STATS:
        calibrate_running_stats(model)

    n_params = sum(p.numel() for p in model.parameters())
    expected = EXPECTED_PARAMS[depth] + (OPTION_B_EXTRA if arch == "resnet" and shortcut == "B" else 0)
    assert n_params == expected, f"{name}: {n_params} parameters, expected {expected}"

    x = torch.randn(BATCH, 3, 32, 32)
    labels = torch.randint(0, NUM_CLASSES, (BATCH,), dtype=torch.int64)

    # Snapshot first: the train-mode pass below runs on a copy, so these
    # running stats are exactly those that produce logits_eval.
    tensors = model_tensors(model)

    model.eval()
    with torch.no_grad():
        logits_eval = model(x)

    train_model = copy.deepcopy(model).train()
    logits_train = train_model(x)
    loss = F.cross_entropy(logits_train, labels, reduction="mean")
    loss.backward()

    tensors["fixture.input"] = x.contiguous()
    tensors["fixture.labels"] = labels.contiguous()
    tensors["fixture.logits_eval"] = logits_eval.contiguous()
    tensors["fixture.logits_train"] = logits_train.detach().contiguous()
    tensors["fixture.loss_train"] = loss.detach().reshape(1).contiguous()
    for pname, p in train_model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        tensors[f"fixture.grad.{pname}"] = p.grad.detach().clone().contiguous()

    # The original model's stats must be untouched by the train-mode pass.
    for k, v in model_tensors(model).items():
        assert torch.equal(v, tensors[k]), f"{name}: {k} changed"
    return name, seed, n_params, tensors, loss.item()


def self_check(path, arch, shortcut, depth):
    """Reload the file into a fresh model and reproduce logits_eval."""
    t = load_file(path)
    model = CifarResNet(depth, arch, shortcut)
    state = {k: v for k, v in t.items() if not k.startswith("fixture.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    model.eval()
    with torch.no_grad():
        logits = model(t["fixture.input"])
    assert torch.equal(logits, t["fixture.logits_eval"]), f"{path}: eval logits not reproducible"


def main():
    global SPEC_STATS
    args = sys.argv[1:]
    if "--spec-stats" in args:
        SPEC_STATS = True
        args.remove("--spec-stats")
    if len(args) != 1:
        sys.exit(f"usage: {sys.argv[0]} [--spec-stats] OUT_DIR")
    out_dir = args[0]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for arch in ARCHS:
        for shortcut in SHORTCUTS:
            for depth in DEPTHS:
                t0 = time.time()
                name, seed, n_params, tensors, loss = make_case(arch, shortcut, depth)
                path = os.path.join(out_dir, f"{name}.safetensors")
                meta = {
                    "arch": arch,
                    "shortcut": shortcut,
                    "depth": str(depth),
                    "seed": str(seed),
                    "torch": torch.__version__,
                    "running_stats": "spec" if SPEC_STATS else "calibrated",
                }
                save_file(tensors, path, metadata=meta)
                self_check(path, arch, shortcut, depth)
                n_grads = sum(k.startswith("fixture.grad.") for k in tensors)
                print(
                    f"{name}: params={n_params} tensors={len(tensors)} grads={n_grads} "
                    f"loss_train={loss:.6f} bytes={os.path.getsize(path)} "
                    f"time={time.time() - t0:.2f}s"
                )


if __name__ == "__main__":
    main()
