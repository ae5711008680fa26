#!/usr/bin/env bash
# Fetches CIFAR-10 (binary version) into data/cifar-10-batches-bin/.
#
#   ./download_cifar.sh                       download the official archive, check its MD5
#   ./download_cifar.sh --archive FILE        use a local .tar.gz or .tar.xz instead
#   ./download_cifar.sh --url URL             download from another address
#   ./download_cifar.sh --dest DIR            unpack into DIR/cifar-10-batches-bin (default: data)
# The same through the environment: CIFAR10_ARCHIVE, CIFAR10_URL, CIFAR10_DEST.
# Does nothing when the data is already there.
set -euo pipefail

OFFICIAL_URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
OFFICIAL_MD5="c32a1d4ab5d03f1284b67883e8d87530"
FILES=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin)

archive="${CIFAR10_ARCHIVE:-}"
url="${CIFAR10_URL:-}"
dest="${CIFAR10_DEST:-data}"
while [ $# -gt 0 ]; do
    case "$1" in
        --archive) archive="${2:?--archive needs a file}"; shift 2 ;;
        --url) url="${2:?--url needs an address}"; shift 2 ;;
        --dest) dest="${2:?--dest needs a directory}"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

target="$dest/cifar-10-batches-bin"
complete=1
for f in "${FILES[@]}"; do [ -s "$target/$f" ] || complete=0; done
if [ "$complete" = 1 ]; then
    echo "CIFAR-10 already in $target"
    exit 0
fi

mkdir -p "$dest"
work="$(mktemp -d "$dest/.download.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [ -n "$archive" ]; then
    [ -f "$archive" ] || { echo "error: archive $archive not found" >&2; exit 1; }
    echo "using local archive $archive"
    src="$archive"
else
    src="$work/$(basename "${url:-$OFFICIAL_URL}")"
    echo "downloading ${url:-$OFFICIAL_URL}"
    if command -v curl >/dev/null; then
        curl -fL --retry 3 -o "$src" "${url:-$OFFICIAL_URL}"
    elif command -v wget >/dev/null; then
        wget -O "$src" "${url:-$OFFICIAL_URL}"
    else
        echo "error: neither curl nor wget is installed; install one, or pass --archive FILE" >&2
        exit 1
    fi
    if [ -z "$url" ]; then
        sum="$(md5sum "$src" | cut -d' ' -f1)"
        if [ "$sum" != "$OFFICIAL_MD5" ]; then
            echo "error: MD5 of the download is $sum, expected $OFFICIAL_MD5: try again" >&2
            exit 1
        fi
        echo "MD5 ok"
    fi
fi

case "$src" in
    *.tar.gz|*.tgz) tar -xzf "$src" -C "$work" ;;
    *.tar.xz|*.txz) tar -xJf "$src" -C "$work" ;;
    *) echo "error: $src is neither .tar.gz nor .tar.xz" >&2; exit 1 ;;
esac
[ -d "$work/cifar-10-batches-bin" ] || { echo "error: the archive holds no cifar-10-batches-bin/" >&2; exit 1; }
rm -rf "$target"
mv "$work/cifar-10-batches-bin" "$target"
echo "CIFAR-10 unpacked into $target"
