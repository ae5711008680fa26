//! The CIFAR-10 residual networks of He, Zhang, Ren and Sun, "Deep Residual Learning for
//! Image Recognition" (2015), Section 4.2, on libtorch through `tch`. The modules, layer by
//! layer (each uses only the layers above it):
//!
//! 1. **Foundations**: [`error`] (the typed errors), [`device`] (where to compute), [`alloc`]
//!    (the allocator setting that keeps steps free of page faults), [`signals`] (SIGINT,
//!    SIGTERM, SIGUSR1 stop training cleanly), [`files`] (untrusted input files: regular
//!    files only, never a wait), [`memory`] (what a network would take, before it is built).
//! 2. **Data**: [`data`] (CIFAR-10 and CIFAR-100 binary files; [`data::dataset`]: which
//!    data set, its files and classes), [`normalize`] (input normalisation),
//!    [`augment`] (the paper's pad-crop-flip on whole batches).
//! 3. **Networks**: [`model`] (ResNet and plain, shortcut options A and B, PyTorch names,
//!    [`model::Compute`]: fp32/bf16, NCHW/channels-last), [`checkpoint`] (safetensors that
//!    PyTorch loads as they are), [`inference`] (a checkpoint into its network; predict).
//! 4. **Training**: [`native`] (the C++ shim: fused SGD, the op counter, CUDA graphs),
//!    [`optim`] (SGD as `torch.optim.SGD`, with its state in checkpoints),
//!    [`schedule`] (the learning-rate schedule), [`metrics`] (`metrics.csv`, one row type),
//!    [`evaluate`], and [`train`]: the one training loop ([`train::config`]: the settings
//!    and `config.json`; [`train::resume`](mod@train::resume): where a run stands).
//! 5. **Measurement and reports**: [`gradflow`] and [`analysis`] (gradients and responses
//!    through depth, Fig. 7), [`report`] and [`summary`] (eval and layer tables), [`bench`]
//!    (images/s and memory), [`viz`] (every figure, one drawing path), [`tensorboard`]
//!    (event files), [`html`] (the self-contained HTML report of runs and studies).
//! 6. **The study**: [`study`] (Fig. 6 and Table 6 as a grid of runs, on every core and GPU
//!    of a box or as a Slurm job array; the binary's `resnet-cifar study` runs it).
//!    `examples/plain_vs_residual.rs` is the same comparison at one depth, on this API alone.
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
pub mod evaluate;
pub(crate) mod faults;
pub mod files;
pub mod gradflow;
pub mod html;
pub mod inference;
pub mod landscape;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod native;
pub mod normalize;
pub mod optim;
pub mod progress;
pub mod report;
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
