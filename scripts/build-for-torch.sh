#!/usr/bin/env bash
# Builds resnet-cifar against another PyTorch's libtorch than the set-up's 2.13.0, for a
# machine whose PyTorch differs and which has no Rust or network to build there (e.g. a GPU
# box with PyTorch 2.11.0+cu130):
#
#   scripts/build-for-torch.sh 2.11.0 [--out DIR] [--features fault-injection]
#
# Each torch release pairs with one tch release (torch-sys checks the libtorch version), so
# nothing is bypassed or stubbed: the script
#   1. installs torch==VERSION from PyPI into the per-user cache beside the set-up's
#      (~/.cache/resnet-cifar/torch-VERSION, once; TORCH_PIP_ARGS adds pip options, e.g.
#      --index-url for a CUDA flavour PyPI does not carry);
#   2. copies this working tree (tracked and untracked, not ignored files) to
#      target/torch-VERSION/src, with the tch and torch-sys requirements rewritten to the
#      paired release (Cargo.lock re-resolves those two crates only);
#   3. builds the binary and the examples there (target/torch-VERSION/target);
#   4. copies them to DIR (default target/torch-VERSION/bin) with BUILD.txt (versions,
#      commit, how to run) and runs `resnet-cifar --version` from DIR as a check.
# The libtorch libraries are not copied: on the target machine, point LD_LIBRARY_PATH at its
# own torch's lib/ (bench/gpu_check.sh does so with RESNET_CIFAR_PREBUILT=DIR). The build's
# C++ ABI and symbols are those of torch VERSION whatever its CUDA flavour (cu128, cu130, cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: scripts/build-for-torch.sh TORCH_VERSION [--out DIR] [--features F]" >&2; exit 2; }
[ $# -ge 1 ] || usage
version=$1
shift
out=""
features=()
while [ $# -gt 0 ]; do
    case $1 in
        --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
        --features) [ $# -ge 2 ] || usage; features=(--features "$2"); shift 2 ;;
        *) usage ;;
    esac
done

# torch → the tch release whose torch-sys expects it (TORCH_VERSION in torch-sys's build.rs).
case $version in
    2.13.*) tch=0.26.0 ;;
    2.11.*) tch=0.24.0 ;;
    2.10.*) tch=0.23.0 ;;
    *) echo "error: no tch release is known to pair with torch $version; known: 2.10, 2.11, 2.13" >&2; exit 2 ;;
esac

source scripts/env.sh
TORCH_VERSION=$version
# The venv's own libtorch, never a LIBTORCH or active PyTorch of the caller's shell.
unset LIBTORCH LIBTORCH_USE_PYTORCH
resnet_cifar_setup || exit 1

stage=target/torch-$version
src=$stage/src
out=${out:-$stage/bin}
# A fresh copy each time (a file deleted from the tree must not linger); cp -p keeps the
# modification times, so cargo rebuilds only what changed.
rm -rf "$src"
mkdir -p "$src" "$out"
# What is built: the commit and whether the tree differed from it, taken when it is copied.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
echo "copying the working tree to $src (tch $tch for torch $version)" >&2
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    if [ -e "$f" ]; then
        mkdir -p "$src/$(dirname "$f")"
        cp -p "$f" "$src/$f"
    fi
done
sed -i -E "s/^(tch|torch-sys) = \"[^\"]+\"/\1 = \"=$tch\"/" "$src/Cargo.toml"
grep -q "^tch = \"=$tch\"" "$src/Cargo.toml" && grep -q "^torch-sys = \"=$tch\"" "$src/Cargo.toml" ||
    { echo "error: could not set tch/torch-sys to $tch in $src/Cargo.toml" >&2; exit 1; }

(cd "$src" && CARGO_TARGET_DIR="$PWD/../target" cargo build --release --bins --examples "${features[@]}")
bin=$stage/target/release
cp "$bin/resnet-cifar" "$out/"
find "$bin/examples" -maxdepth 1 -type f -executable ! -name '*-*' -exec cp {} "$out/" \;
cat > "$out/BUILD.txt" <<EOF
resnet-cifar $commit$dirty, built $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m)
torch (libtorch) $("$RESNET_CIFAR_PYTHON" -c 'import torch; print(torch.__version__)'), tch $tch${features[*]:+, ${features[*]}}
Run with the target machine's own torch $version libraries:
  export LD_LIBRARY_PATH="\$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
  ./resnet-cifar --help
or, from a clone with the data: RESNET_CIFAR_PREBUILT=$out bash bench/gpu_check.sh (it sets LD_LIBRARY_PATH itself)
EOF
"$out/resnet-cifar" --version >&2
echo "built for torch $version: $out" >&2
ls -l "$out" >&2
