# For developers: `source scripts/dev.sh` sets up libtorch in the current shell.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh" && resnet_cifar_setup
