#!/usr/bin/env bash
# One command for the speed comparison with PyTorch (docs/performance.md): sets up
# libtorch and the data like `make train`, installs torchvision into the torch venv for
# the baseline's DataLoader transforms, builds, and runs bench/speed.py.
# Usage: bench/speed.sh [speed.py flags, e.g. --quick, --rounds 5, --json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
resnet_cifar_setup
./download_cifar.sh
"$RESNET_CIFAR_PYTHON" -c "import torchvision" 2>/dev/null ||
    "$RESNET_CIFAR_PYTHON" -m pip install --quiet "torchvision==0.28.0"
cargo build --release
exec "$RESNET_CIFAR_PYTHON" bench/speed.py --bin target/release/resnet-cifar \
    --data-dir "${CIFAR10_DIR:-data/cifar-10-batches-bin}" "$@"
