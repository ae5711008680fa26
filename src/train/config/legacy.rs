//! `config.json` as the versions before the nested settings wrote it: every setting at the
//! top level (`"lr": 0.1`, `"arch": "resnet"`, …). Such files still load, each missing
//! field with the meaning it had before it existed (documented at the field), and become
//! a [`RunFile`] of today.

use std::path::PathBuf;

use serde::Deserialize;

use super::file::{MachineRecord, Outcome, RunFile, Versions};
use super::{DataSettings, Output, Schedule};
use crate::data::{Dataset, DatasetName, Labels};
use crate::model::{Arch, BlockKind, Compute, Layout, Precision, ResNetConfig, Shortcut};
use crate::normalize::Normalization;
use crate::schedule::ScheduleKind;

/// `config.json` as versions before the nested parts wrote it: every setting at the top level.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(super) struct FlatRunFile {
    arch: Arch,
    depth: i64,
    shortcut: Shortcut,
    #[serde(default = "yes")]
    batch_norm: bool,
    #[serde(default)]
    zero_init_residual: bool,
    /// The pre-activation block asked for (none: the paper's choice for the depth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    block: Option<BlockKind>,
    #[serde(default = "cifar10_classes")]
    num_classes: i64,
    /// Runs from before CIFAR-100 trained on CIFAR-10.
    #[serde(default)]
    dataset: DatasetName,
    /// CIFAR-100's fine or coarse classes (none for CIFAR-10).
    #[serde(default)]
    labels: Option<Labels>,
    parameters: i64,
    /// Runs from before precision and layout existed computed in fp32, NCHW.
    #[serde(default)]
    precision: Precision,
    #[serde(default)]
    layout: Layout,
    epochs: i64,
    batch_size: i64,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    schedule: ScheduleKind,
    total_iterations: i64,
    lr_milestones: Vec<i64>,
    warmup_iterations: i64,
    normalization: Normalization,
    #[serde(default)]
    val_split: usize,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
    data_dir: PathBuf,
    out_dir: PathBuf,
    device: String,
    seed: i64,
    #[serde(default)]
    log_grad_norms: bool,
    #[serde(default)]
    save_every: i64,
    /// Runs from before TensorBoard logging have no event file.
    #[serde(default)]
    tensorboard: bool,
    #[serde(default = "fifty")]
    log_every: i64,
    #[serde(default)]
    log_histograms: bool,
    /// CPU threads asked for with `--threads` (none: libtorch's choice, decided again on
    /// resume). Older files recorded the count libtorch chose, as `threads`: not a request.
    #[serde(default)]
    threads_requested: Option<i32>,
    /// The threads libtorch used when the run started (for the reader).
    #[serde(default, rename = "threads")]
    threads_used: Option<i32>,
    #[serde(default)]
    resnet_cifar_version: String,
    #[serde(default)]
    tch_version: String,
    #[serde(default)]
    libtorch_version: String,
}

fn yes() -> bool {
    true
}

fn fifty() -> i64 {
    50
}

fn cifar10_classes() -> i64 {
    10
}

impl FlatRunFile {
    /// The same record in today's parts; an impossible combination (CIFAR-100's labels on
    /// CIFAR-10) is an error naming the field. A setting added after the flat files takes
    /// its default (`..Default::default()` in each part), so adding one changes nothing here.
    #[allow(clippy::needless_update)]
    pub(super) fn into_run_file(self) -> Result<RunFile, String> {
        let dataset = Dataset::new(self.dataset, self.labels)
            .map_err(|_| format!("field `labels` is for CIFAR-100, but `dataset` is {}", self.dataset))?;
        Ok(RunFile {
            model: ResNetConfig {
                depth: self.depth,
                arch: self.arch,
                shortcut: self.shortcut,
                num_classes: self.num_classes,
                batch_norm: self.batch_norm,
                zero_init_residual: self.zero_init_residual,
                block: self.block,
                ..Default::default()
            },
            compute: Compute::new(self.precision, self.layout),
            schedule: Schedule {
                kind: self.schedule,
                epochs: self.epochs,
                batch_size: self.batch_size,
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                warmup_iters: Some(self.warmup_iterations),
                ..Default::default()
            },
            data: DataSettings {
                dataset,
                dir: self.data_dir,
                normalization: self.normalization,
                val_split: self.val_split,
                limit_train: self.limit_train,
                limit_test: self.limit_test,
                ..Default::default()
            },
            seed: self.seed,
            output: Output {
                dir: self.out_dir,
                save_every: self.save_every,
                tensorboard: self.tensorboard,
                log_every: self.log_every,
                log_histograms: self.log_histograms,
                log_grad_norms: self.log_grad_norms,
                ..Default::default()
            },
            machine: MachineRecord {
                device: self.device,
                threads: self.threads_requested,
                threads_used: self.threads_used,
            },
            outcome: Outcome {
                parameters: self.parameters,
                total_iterations: self.total_iterations,
                lr_milestones: self.lr_milestones,
                warmup_iterations: self.warmup_iterations,
            },
            versions: Versions {
                resnet_cifar: self.resnet_cifar_version,
                tch: self.tch_version,
                libtorch: self.libtorch_version,
            },
        })
    }
}
