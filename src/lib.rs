//! The CIFAR-10 residual networks of He, Zhang, Ren and Sun, "Deep Residual Learning for
//! Image Recognition" (2015), Section 4.2, on libtorch through `tch`. The modules, by layer;
//! no module imports one that imports it back, directly or through others (`tests/layers.rs`
//! reads the sources and checks it).
//!
//! 1. **Foundations**: [`error`] (the typed errors), [`device`] (where to compute), [`alloc`]
//!    (the allocator setting that keeps steps free of page faults), [`signals`] (SIGINT,
//!    SIGTERM, SIGUSR1 stop training cleanly), [`files`] (untrusted input files: regular
//!    files only, never a wait; every output written atomically), [`text`], [`native`] (the
//!    C++ shim: fused SGD, the op counter, CUDA graphs), [`jobs`] (one pool of child
//!    processes over the cores and GPUs, stopped on SIGINT/SIGTERM).
//! 2. **Data**: [`data`] (CIFAR-10 and CIFAR-100 binary files; [`data::dataset`]: which
//!    data set, its files and classes), [`normalize`] (input normalisation),
//!    [`augment`] (the paper's pad-crop-flip on whole batches), [`metrics`] (`metrics.csv`,
//!    one row type), [`tensorboard`] (event files).
//! 3. **Networks**: [`model`] (ResNet and plain, shortcut options A and B, PyTorch names,
//!    [`model::Compute`]: fp32/bf16, NCHW/channels-last; it never asks the machine for
//!    anything), [`memory`] (what a network would take: checked where a run is configured
//!    or a checkpoint describes one), [`checkpoint`] (safetensors that PyTorch loads as
//!    they are), [`inference`] (a checkpoint into its network; predict), [`evaluate`].
//! 4. **Training**: [`optim`] (SGD as `torch.optim.SGD`, with its state in checkpoints),
//!    [`schedule`] (the learning-rate schedule), [`progress`], [`gradflow`] (‖∂L/∂x‖ and
//!    std(x) through depth, also logged while training), and [`train`]: the one
//!    training loop ([`train::config`]: the settings, one type in parts, and `config.json`,
//!    their serde form;
//!    [`train::resume`](mod@train::resume): where a run stands).
//! 5. **Measurement**: [`analysis`] (gradient flow and layer responses through depth,
//!    Fig. 7), [`landscape`] (loss landscapes), [`eval_report`] (a checkpoint's
//!    evaluation: text, JSON and `*.eval.json`), [`summary`] (the layer table), [`bench`]
//!    (images/s and memory), [`viz`] (every figure, one drawing path).
//! 6. **The study**: [`study`] (Fig. 6 and Table 6 as a grid of runs, on every core and GPU
//!    of a box or as a Slurm job array; the binary's `resnet-cifar study` runs it).
//!    `examples/plain_vs_residual.rs` is the same comparison at one depth, on this API alone.
//! 7. **Presentation**: [`html`] (the self-contained HTML report of runs and studies: it
//!    draws what the layers above computed, and evaluates nothing).
//!
//! The command line is the binary's (`src/main.rs`, `src/cli/`): raw flags there, checked
//! into the configurations above; the library's errors are [`Error`], typed, with no exit codes.

pub mod alloc;
pub mod analysis;
pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod error;
pub mod eval_report;
pub mod evaluate;
pub(crate) mod faults;
pub mod files;
pub mod gradflow;
pub mod html;
pub mod inference;
pub mod jobs;
pub mod landscape;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod native;
pub mod normalize;
pub mod optim;
pub mod progress;
pub mod schedule;
pub mod signals;
pub mod study;
pub mod summary;
pub mod tensorboard;
pub mod text;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
pub use model::{Arch, ResNet, ResNetConfig, Shortcut};
