#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the Rust/tch CIFAR-10 ResNets.

Usage: python gen_fixtures.py [--spec-stats] OUT_DIR

Writes OUT_DIR/{arch}-{shortcut}-{depth}.safetensors for
arch in {resnet, plain}, shortcut in {A, B}, depth in {20, 56} (8 files), and
OUT_DIR/preact-{block}-{depth}.safetensors for the pre-activation networks of
He et al. 2016 (basic 20 and 56, bottleneck 47 and 164: 4 files).
For `plain` the shortcut option has no effect (plain blocks have no shortcut);
both names are still written, each with its own seed, so that a consumer can
loop over all 8 combinations uniformly.

Each file holds (all float32 unless noted; float64 for the pre-activation nets,
whose depth-164 fp32 round-off alone exceeds the tolerance: PyTorch's own fp32
gradients differ from its fp64 ones by up to 2e-2 relative there):
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

The models are written from He et al. 2015, Section 4.2, and He et al. 2016,
"Identity Mappings in Deep Residual Networks" (BN-ReLU-conv units, nothing
after the addition, a 1x1 strided projection of the block's input where the
shape changes, a final BN-ReLU before pooling; names as the common PyTorch
CIFAR version: layerX.Y.{bn,conv}{1,2,3}, layerX.0.downsample.0, bn, fc).
They need only torch and safetensors.
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
# Pre-activation cases: (block, depth) and their parameter counts (None: not pinned).
PREACT_CASES = (("basic", 20), ("basic", 56), ("bottleneck", 47), ("bottleneck", 164))
PREACT_PARAMS = {("basic", 20): 272282, ("basic", 56): 855578, ("bottleneck", 164): 1703258}
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


class PreActBlock(nn.Module):
    """(BN-ReLU-conv) x2 (basic) or x3 (bottleneck 1x1, 3x3, 1x1 widening 4x),
    plus x or a 1x1 strided projection of x; nothing after the addition."""

    def __init__(self, in_planes, planes, stride, block):
        super().__init__()
        if block == "basic":
            shapes = [(in_planes, planes, 3, stride), (planes, planes, 3, 1)]
        else:
            shapes = [(in_planes, planes, 1, 1), (planes, planes, 3, stride), (planes, 4 * planes, 1, 1)]
        self.depth = len(shapes)
        for i, (cin, cout, k, s) in enumerate(shapes, start=1):
            setattr(self, f"bn{i}", nn.BatchNorm2d(cin))
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, bias=False))
        out_planes = shapes[-1][1]
        self.downsample = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False))
        self.out_planes = out_planes

    def forward(self, x):
        out = x
        for i in range(1, self.depth + 1):
            out = getattr(self, f"conv{i}")(F.relu(getattr(self, f"bn{i}")(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class PreActResNet(nn.Module):
    def __init__(self, depth, block, num_classes=NUM_CLASSES):
        super().__init__()
        per_block = 6 if block == "basic" else 9
        assert (depth - 2) % per_block == 0, depth
        n = (depth - 2) // per_block
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        in_planes = 16
        for k, planes in enumerate((16, 32, 64), start=1):
            blocks = []
            for i in range(n):
                stride = 2 if (k > 1 and i == 0) else 1
                blocks.append(PreActBlock(in_planes, planes, stride, block))
                in_planes = blocks[-1].out_planes
            setattr(self, f"layer{k}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = F.relu(self.bn(out)).mean(dim=(2, 3))
        return self.fc(out)


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
        k: v.detach().clone().contiguous()
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }


def build(arch, variant, depth):
    """The model of a case: variant is the shortcut (2015 nets) or the block (preact)."""
    if arch == "preact":
        return PreActResNet(depth, variant)
    return CifarResNet(depth, arch, variant)


def expected_params(arch, variant, depth):
    if arch == "preact":
        return PREACT_PARAMS.get((variant, depth))
    return EXPECTED_PARAMS[depth] + (OPTION_B_EXTRA if arch == "resnet" and variant == "B" else 0)


def make_case(arch, shortcut, depth):
    name = f"{arch}-{shortcut}-{depth}"
    seed = zlib.crc32(name.encode())
    torch.manual_seed(seed)
    model = build(arch, shortcut, depth)
    randomize(model)
    if not SPEC_STATS:
        calibrate_running_stats(model)

    n_params = sum(p.numel() for p in model.parameters())
    expected = expected_params(arch, shortcut, depth)
    assert expected is None or n_params == expected, f"{name}: {n_params} parameters, expected {expected}"

    dtype = torch.float64 if arch == "preact" else torch.float32
    model.to(dtype)
    x = torch.randn(BATCH, 3, 32, 32).to(dtype)
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
    model = build(arch, shortcut, depth).to(t["fixture.input"].dtype)
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
    cases = [(a, s, d) for a in ARCHS for s in SHORTCUTS for d in DEPTHS]
    cases += [("preact", block, depth) for block, depth in PREACT_CASES]
    for arch, variant, depth in cases:
        t0 = time.time()
        name, seed, n_params, tensors, loss = make_case(arch, variant, depth)
        path = os.path.join(out_dir, f"{name}.safetensors")
        meta = {
            "arch": arch,
            ("block" if arch == "preact" else "shortcut"): variant,
            "depth": str(depth),
            "seed": str(seed),
            "torch": torch.__version__,
            "running_stats": "spec" if SPEC_STATS else "calibrated",
        }
        save_file(tensors, path, metadata=meta)
        self_check(path, arch, variant, depth)
        n_grads = sum(k.startswith("fixture.grad.") for k in tensors)
        print(
            f"{name}: params={n_params} tensors={len(tensors)} grads={n_grads} "
            f"loss_train={loss:.6f} bytes={os.path.getsize(path)} "
            f"time={time.time() - t0:.2f}s"
        )


if __name__ == "__main__":
    main()
