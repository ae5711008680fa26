#!/usr/bin/env bash
# Fetches CIFAR-10 or CIFAR-100 (binary versions) into data/.
#
#   ./download_cifar.sh                       CIFAR-10: download the official archive, check its MD5,
#                                             unpack it into data/cifar-10-batches-bin/
#   ./download_cifar.sh --dataset cifar100    CIFAR-100 the same way, into data/cifar-100-binary/
#   ./download_cifar.sh --archive FILE        use a local .tar.gz or .tar.xz instead
#   ./download_cifar.sh --url URL             download from another address
#   ./download_cifar.sh --md5 SUM             check the archive (downloaded or local) against SUM
#   ./download_cifar.sh --dest DIR            unpack into DIR instead of data
# The official download is always checked against the official MD5; another address or a
# local archive only with --md5. The same through the environment: CIFAR10_ARCHIVE,
# CIFAR10_URL, CIFAR10_DEST, or CIFAR100_ARCHIVE, CIFAR100_URL, CIFAR100_DEST.
# Does nothing when the data is already there.
set -euo pipefail

dataset=cifar10
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --dataset) dataset="${args[$((i + 1))]:-}" ;;
        --dataset=*) dataset="${args[$i]#--dataset=}" ;;
    esac
done
case "$dataset" in
    cifar10)
        title="CIFAR-10"
        official_url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
        official_md5="c32a1d4ab5d03f1284b67883e8d87530"
        dir_name="cifar-10-batches-bin"
        files=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin)
        archive="${CIFAR10_ARCHIVE:-}" url="${CIFAR10_URL:-}" dest="${CIFAR10_DEST:-data}"
        ;;
    cifar100)
        title="CIFAR-100"
        official_url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
        official_md5="03b5dce01913d631647c71ecec9e9f8c"
        dir_name="cifar-100-binary"
        files=(train.bin test.bin fine_label_names.txt coarse_label_names.txt)
        archive="${CIFAR100_ARCHIVE:-}" url="${CIFAR100_URL:-}" dest="${CIFAR100_DEST:-data}"
        ;;
    *) echo "error: unknown data set '$dataset': use --dataset cifar10 or --dataset cifar100" >&2; exit 2 ;;
esac

md5=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dataset) shift 2 ;;
        --dataset=*) shift ;;
        --archive) archive="${2:?--archive needs a file}"; shift 2 ;;
        --url) url="${2:?--url needs an address}"; shift 2 ;;
        --md5) md5="${2:?--md5 needs a checksum}"; shift 2 ;;
        --dest) dest="${2:?--dest needs a directory}"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$md5" ] && [ -z "$archive" ] && [ -z "$url" ]; then
    md5="$official_md5"
fi

target="$dest/$dir_name"
complete=1
for f in "${files[@]}"; do [ -s "$target/$f" ] || complete=0; done
if [ "$complete" = 1 ]; then
    echo "$title already in $target"
    exit 0
fi

made_dest=
[ -d "$dest" ] || made_dest=1
mkdir -p "$dest"
work="$(mktemp -d "$dest/.download.XXXXXX")"
# A failure leaves nothing behind: the work directory, and --dest when this run made it.
trap 'rm -rf "$work"; if [ -n "$made_dest" ]; then rmdir "$dest" 2>/dev/null || true; fi' EXIT
var="$(echo "$dataset" | tr a-z A-Z)_ARCHIVE"

if [ -n "$archive" ]; then
    [ -f "$archive" ] || { echo "error: archive $archive not found" >&2; exit 1; }
    echo "using local archive $archive"
    src="$archive"
else
    src="$work/$(basename "${url:-$official_url}")"
    echo "downloading ${url:-$official_url}"
    # curl's and wget's own messages (retries, progress) go to a file; a failure is one line.
    if command -v curl >/dev/null; then
        fetched() { curl -fsSL --retry 3 -o "$src" "${url:-$official_url}" 2>"$work/fetch.err"; }
    elif command -v wget >/dev/null; then
        fetched() { wget -q -O "$src" "${url:-$official_url}" 2>"$work/fetch.err"; }
    else
        echo "error: neither curl nor wget is installed; install one, or pass --archive FILE" >&2
        exit 1
    fi
    if ! fetched; then
        why="$(grep -v '^\s*$' "$work/fetch.err" | tail -n 1 | tr -s '[:space:]' ' ' | sed 's/ *$//')"
        echo "error: cannot download ${url:-$official_url} (${why:-no network?}); where there is no network, copy $(basename "${url:-$official_url}") here from a machine that has one and run ./download_cifar.sh --dataset $dataset --archive FILE (or $var=FILE ./download_cifar.sh --dataset $dataset)" >&2
        exit 1
    fi
fi
if [ -n "$md5" ]; then
    sum="$(md5sum "$src" | cut -d' ' -f1)"
    if [ "$sum" != "$md5" ]; then
        echo "error: MD5 of $src is $sum, expected $md5: the archive is damaged or another file; download it again" >&2
        exit 1
    fi
    echo "MD5 ok"
fi

case "$src" in
    *.tar.gz|*.tgz) tar -xzf "$src" -C "$work" ;;
    *.tar.xz|*.txz) tar -xJf "$src" -C "$work" ;;
    *) echo "error: $src is neither .tar.gz nor .tar.xz" >&2; exit 1 ;;
esac
[ -d "$work/$dir_name" ] || { echo "error: the archive holds no $dir_name/" >&2; exit 1; }
rm -rf "$target"
mv "$work/$dir_name" "$target"
echo "$title unpacked into $target"
