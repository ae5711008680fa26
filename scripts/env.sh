# Sourced by the Makefile's targets: makes libtorch available and exports LIBTORCH.
#
# A user who already has libtorch keeps it: with LIBTORCH set, or LIBTORCH_USE_PYTORCH=1
# in an active virtualenv (e.g. a CUDA build on a GPU box), nothing is installed.
# Otherwise `pip install torch==$TORCH_VERSION` goes into a virtualenv kept outside the
# clone, in a per-user cache keyed by the version, created only when missing; fresh
# clones reuse it. RESNET_CIFAR_PYTHON names a Python with that torch (for the
# conformance tests against PyTorch).

TORCH_VERSION=2.13.0

resnet_cifar_setup() {
    if [ -n "${LIBTORCH:-}" ]; then
        echo "using LIBTORCH=$LIBTORCH" >&2
        : "${RESNET_CIFAR_PYTHON:=python3}"
    elif [ "${LIBTORCH_USE_PYTORCH:-}" = 1 ]; then
        echo "using the PyTorch of $(command -v python3) (LIBTORCH_USE_PYTORCH=1)" >&2
        : "${RESNET_CIFAR_PYTHON:=python3}"
    else
        local cache="${RESNET_CIFAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resnet-cifar}"
        local venv="$cache/torch-$TORCH_VERSION"
        mkdir -p "$cache" || return 1
        (
            flock 9
            if [ ! -f "$venv/.complete" ]; then
                echo "installing torch==$TORCH_VERSION (libtorch) into $venv, once (~4.7 GB)" >&2
                rm -rf "$venv"
                python3 -m venv "$venv" &&
                    "$venv/bin/pip" install --quiet --disable-pip-version-check \
                        "torch==$TORCH_VERSION" numpy safetensors &&
                    touch "$venv/.complete"
            fi
            # TensorBoard: `tensorboard --logdir runs`, and its reader for the tests. Added
            # after torch, so an older cache gets it too.
            if [ ! -f "$venv/.tensorboard" ]; then
                echo "installing tensorboard into $venv, once" >&2
                "$venv/bin/pip" install --quiet --disable-pip-version-check tensorboard &&
                    touch "$venv/.tensorboard"
            fi
            # The CUDA runtime's host headers (crt/), which the pip CUDA runtime leaves out:
            # build.rs compiles the shim's CUDA graphs against them (nothing runs from them).
            if [ ! -f "$venv/.cuda-crt" ]; then
                if "$venv/bin/python" -c 'import torch, sys; sys.exit(0 if (torch.version.cuda or "").startswith("13.0") else 1)'; then
                    echo "installing the CUDA runtime's host headers (nvidia-cuda-crt) into $venv, once" >&2
                    "$venv/bin/pip" install --quiet --disable-pip-version-check "nvidia-cuda-crt==13.0.*" || exit 1
                fi
                touch "$venv/.cuda-crt"
            fi
        ) 9>"$cache/.lock" || { echo "error: could not install torch==$TORCH_VERSION and tensorboard into $venv" >&2; return 1; }
        export RESNET_CIFAR_PYTHON="$venv/bin/python"
        LIBTORCH="$("$RESNET_CIFAR_PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))')" || return 1
        export LIBTORCH
    fi
    export RESNET_CIFAR_PYTHON
    resnet_cifar_check_gpu
}

# A visible NVIDIA GPU that this torch cannot use trains on the CPU, many times slower: say so loudly.
resnet_cifar_check_gpu() {
    if ls /dev/nvidia[0-9]* >/dev/null 2>&1 || nvidia-smi -L 2>/dev/null | grep -q GPU; then
        # Exit 1 only when torch imports and sees no CUDA device.
        if ! "${RESNET_CIFAR_PYTHON:-python3}" -c '
import sys
try:
    import torch
except Exception:
    sys.exit(0)
sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
            echo "WARNING: an NVIDIA GPU is visible but this torch/libtorch has no usable CUDA (driver too old for its" >&2
            echo "WARNING: CUDA build, or a CPU-only build): training will run on the CPU. Fix: install torch for the" >&2
            echo "WARNING: CUDA version that nvidia-smi reports and use it with LIBTORCH_USE_PYTORCH=1 (see docs/gpu.md)." >&2
        fi
    fi
}
