//! The CIFAR-10 residual networks of He, Zhang, Ren and Sun, "Deep Residual Learning for
//! Image Recognition" (2015), Section 4.2, on libtorch through `tch`.
//!
//! - [`model`]: the networks (ResNet and plain, shortcut options A and B), PyTorch names.
//! - [`data`], [`normalize`], [`augment`]: CIFAR-10 binary batches, input normalisation, the
//!   paper's pad-crop-flip augmentation on whole batches.
//! - [`train`]: the one training loop, with [`schedule`] and [`optim`].
//! - [`checkpoint`]: safetensors checkpoints that PyTorch loads as they are.
//! - [`bench`]: images/s and peak memory of the training step and of evaluation, in fp32 or
//!   bf16 ([`model::Compute`]); [`alloc`]: the allocator setting that keeps steps free of
//!   page faults.

pub mod alloc;
pub mod analysis;
pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod faults;
pub mod figure;
pub mod gradflow;
pub mod inference;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod signals;
pub mod study;
pub mod summary;
mod text;
pub mod train;

pub use error::{Error, Result};
pub use model::{Arch, ResNet, ResNetConfig, Shortcut};
