#!/usr/bin/env bash
# What `make test` needs beyond libtorch, installed when missing: headless Chromium for the
# HTML report's browser test (Debian's `chromium`). TensorBoard's reader comes with the
# set-up's virtualenv (scripts/env.sh). Without root or apt-get it says what to install,
# and the browser test then fails under CI=true (it never skips there).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -n "${RESNET_CIFAR_CHROMIUM:-}" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the report's browser test, once" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
    echo "note: no chromium: install Debian's chromium (or set RESNET_CIFAR_CHROMIUM) for the report's browser test" >&2
fi
