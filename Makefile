# The two commands of the README. Each does its own set-up (libtorch, data).
#   make train [ARGS="--depth 56 --epochs 10"]   train (defaults: ResNet-20, 50 epochs, batch 128)
#   make test                                      the whole test suite
#   make bench [ARGS=--quick]                      speed against PyTorch eager (bench/speed.sh)
#   make tensorboard [LOGDIR=runs]                 TensorBoard on the runs' event files
#   make man                                       the man page, target/man/resnet-cifar.1 (from the clap definitions)

#   make fuzz [FUZZ_RUNS=1000000|FUZZ_SECONDS=600]  coverage-guided fuzzing of the file readers (fuzz/),
#                                                  after 10,000 cases of the Slurm scripts' property test
# Data: ./download_cifar.sh fetches CIFAR-10 into data/; CIFAR10_ARCHIVE=FILE uses a local archive.

SHELL := /bin/bash
ARGS ?=

.PHONY: train test build bench tensorboard fuzz man

build:
	source scripts/env.sh && resnet_cifar_setup && cargo build --release

train:
	source scripts/env.sh && resnet_cifar_setup && ./download_cifar.sh && \
	cargo run --release -- train $(ARGS)

test:
	scripts/test-deps.sh && source scripts/env.sh && resnet_cifar_setup && \
	if [ -z "$${CIFAR10_DIR:-}" ] && [ -d data/cifar-10-batches-bin ]; then export CIFAR10_DIR=$$PWD/data/cifar-10-batches-bin; fi && \
	cargo build --release --examples --features fault-injection && \
	cargo test --release --features fault-injection --lib --bins --tests

bench:
	bench/speed.sh $(ARGS)

# The binary's hidden `man` subcommand renders the page from the same definitions as its parser.
man:
	source scripts/env.sh && resnet_cifar_setup && cargo build --release && \
	target/release/resnet-cifar man -o target/man/resnet-cifar.1

LOGDIR ?= runs
tensorboard:
	source scripts/env.sh && resnet_cifar_setup && \
	"$$RESNET_CIFAR_PYTHON" -m tensorboard.main --logdir $(LOGDIR)

# The Slurm scripts' property test at 10,000 cases (each draws every value that reaches a
# script); `make test` runs 256. PROPTEST_CASES=N to choose.
PROPTEST_CASES ?= 10000
fuzz:
	source scripts/env.sh && resnet_cifar_setup && \
	PROPTEST_CASES=$(PROPTEST_CASES) cargo test --release --features fault-injection --test slurm_scripts
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz/run.sh
