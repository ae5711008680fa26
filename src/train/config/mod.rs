//! The settings of a training run: one type, [`TrainConfig`], in the parts that
//! `config.json` records them in — the network ([`ResNetConfig`]), how it computes
//! ([`Compute`]), the optimisation recipe ([`Schedule`]), the data ([`DataSettings`]), the
//! seed, what the run writes ([`Output`]) — and where it runs ([`Machine`], not part of
//! the experiment). [`RunFile`] is its serde form with what the run came to; the study's
//! grid stores the same parts. Adding a setting means a field in its part (with
//! `#[serde(default = …)]` so the files written before it still load) and a flag in the
//! binary: two places. Every range is checked once, by [`TrainConfig::check`], for a
//! configuration built from flags and one read from a file alike.

mod file;
mod legacy;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::data::{DataSource, Dataset, DatasetName, Labels, RunData};
use crate::error::{BadSetting, Error, Result};
use crate::model::{Compute, Layout, Precision, ResNetConfig};
use crate::normalize::Normalization;
use crate::schedule::{default_warmup, LrSchedule, ScheduleKind};
use crate::train::graph::CudaGraphs;

pub use file::{config_from_run, Outcome, RunFile, Versions};

/// The most epochs a run may ask for (the paper's 64k iterations are 164 epochs): a bound
/// that keeps every count of iterations far inside `i64`.
pub const MAX_EPOCHS: i64 = 100_000;

/// Every setting of a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub model: ResNetConfig,
    /// Number format and memory layout of the computation (parameters stay fp32).
    pub compute: Compute,
    pub schedule: Schedule,
    pub data: DataSettings,
    pub seed: i64,
    pub output: Output,
    pub machine: Machine,
}

/// The optimisation recipe: SGD with momentum and weight decay, batch size, and the
/// learning-rate schedule (Section 4.2: lr 0.1, ÷10 at 32k and 48k of 64k iterations).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// `scaled`: drops at 50 % and 75 % of `epochs`; `paper`: 64k iterations.
    pub kind: ScheduleKind,
    pub epochs: i64,
    pub batch_size: i64,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Warm-up iterations at lr/10; `None`: the paper's 400 from depth 110, else none.
    pub warmup_iters: Option<i64>,
}

/// The data set and what the run takes of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DataRecord", into = "DataRecord")]
pub struct DataSettings {
    /// The data set; `model.num_classes` must be its class count.
    pub dataset: Dataset,
    /// Where its binary files are (a setting of the machine: free to change on resume).
    pub dir: PathBuf,
    pub normalization: Normalization,
    /// Hold out the last N training images for validation.
    pub val_split: usize,
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
}

/// [`DataSettings`] as `config.json` spells it: the data set as its name and CIFAR-100's labels.
#[derive(Serialize, Deserialize)]
struct DataRecord {
    dataset: DatasetName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<Labels>,
    dir: PathBuf,
    normalization: Normalization,
    val_split: usize,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
}

impl TryFrom<DataRecord> for DataSettings {
    type Error = String;
    fn try_from(r: DataRecord) -> std::result::Result<Self, String> {
        let dataset = Dataset::new(r.dataset, r.labels)
            .map_err(|_| format!("`labels` is for CIFAR-100, but `dataset` is {}", r.dataset))?;
        let (dir, normalization, val_split) = (r.dir, r.normalization, r.val_split);
        Ok(DataSettings {
            dataset,
            dir,
            normalization,
            val_split,
            limit_train: r.limit_train,
            limit_test: r.limit_test,
        })
    }
}

impl From<DataSettings> for DataRecord {
    fn from(d: DataSettings) -> Self {
        DataRecord {
            dataset: d.dataset.name(),
            labels: d.dataset.labels(),
            dir: d.dir,
            normalization: d.normalization,
            val_split: d.val_split,
            limit_train: d.limit_train,
            limit_test: d.limit_test,
        }
    }
}

/// What the run writes, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// The run directory.
    pub dir: PathBuf,
    /// Also write `last.safetensors` every N iterations inside an epoch (0: only at epoch ends).
    pub save_every: i64,
    /// Write a TensorBoard event file into the run directory.
    pub tensorboard: bool,
    /// Log the training loss and lr to TensorBoard every N iterations (0: per epoch only).
    pub log_every: i64,
    /// Log a histogram of every weight to TensorBoard per epoch.
    pub log_histograms: bool,
    /// Log the mean ‖∂L/∂x‖ at the network's input and at each stage's input per epoch.
    pub log_grad_norms: bool,
}

/// Where and how the run executes: no part of the experiment, free to change on resume.
/// `config.json` records the device and the threads asked for; the rest is the caller's.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub device: Device,
    /// CPU threads for libtorch (`None`: libtorch's choice).
    pub threads: Option<i32>,
    /// Replay the training step from a CUDA graph.
    pub cuda_graphs: CudaGraphs,
    /// cuDNN's deterministic algorithms, without its benchmark search: a CUDA run that
    /// resumes exactly.
    pub deterministic: bool,
    /// Read loss and error on the host after every step [default: on the CPU, where it is
    /// free; on a GPU only at the end of an epoch and at each checkpoint].
    pub read_every_step: Option<bool>,
    /// No progress bar and no per-epoch lines (for callers that report themselves).
    pub quiet: bool,
    /// On SIGINT/SIGTERM finish the step, write the checkpoint and stop (the CLI sets it).
    pub handle_signals: bool,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            kind: ScheduleKind::Scaled,
            epochs: 50,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            warmup_iters: None,
        }
    }
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            dataset: Dataset::Cifar10,
            dir: Dataset::Cifar10.default_dir(),
            normalization: Normalization::PixelMean,
            val_split: 0,
            limit_train: None,
            limit_test: None,
        }
    }
}

impl Default for Output {
    fn default() -> Self {
        Output {
            dir: PathBuf::from("runs/resnet-20"),
            save_every: 0,
            tensorboard: true,
            log_every: 50,
            log_histograms: false,
            log_grad_norms: false,
        }
    }
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            device: Device::Cpu,
            threads: None,
            cuda_graphs: CudaGraphs::Auto,
            deterministic: false,
            read_every_step: None,
            quiet: false,
            handle_signals: false,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: ResNetConfig::default(),
            // Channels-last: the same arithmetic as NCHW, faster convolutions (docs/performance.md).
            compute: Compute::new(Precision::Fp32, Layout::ChannelsLast),
            schedule: Schedule::default(),
            data: DataSettings::default(),
            seed: 0,
            output: Output::default(),
            machine: Machine::default(),
        }
    }
}

fn bad(path: &'static str, value: impl std::fmt::Display, want: impl Into<String>) -> Result<(), BadSetting> {
    Err(BadSetting { path, value: value.to_string(), want: want.into() })
}

impl TrainConfig {
    /// Checks every setting's range and their agreement once, for flags and files alike:
    /// the error names the setting, its value and what to use instead.
    pub fn check(&self) -> Result<(), BadSetting> {
        let s = &self.schedule;
        if s.batch_size < 1 {
            return bad("schedule.batch_size", s.batch_size, "must be at least 1");
        }
        if !(1..=MAX_EPOCHS).contains(&s.epochs) {
            return bad(
                "schedule.epochs",
                s.epochs,
                format!("must be 1 to {MAX_EPOCHS} (the paper's 64k iterations are 164 epochs)"),
            );
        }
        if !(s.lr.is_finite() && s.lr > 0.0) {
            return bad("schedule.lr", s.lr, "must be a positive number (the paper uses 0.1)");
        }
        if !(0.0..1.0).contains(&s.momentum) {
            return bad("schedule.momentum", s.momentum, "must be in [0, 1) (the paper uses 0.9)");
        }
        if !(s.weight_decay.is_finite() && s.weight_decay >= 0.0) {
            return bad("schedule.weight_decay", s.weight_decay, "must be ≥ 0 (the paper uses 1e-4)");
        }
        if let Some(w) = s.warmup_iters.filter(|w| *w < 0) {
            return bad("schedule.warmup_iters", w, "must be ≥ 0");
        }
        let d = &self.data;
        for (path, limit) in [("data.limit_train", d.limit_train), ("data.limit_test", d.limit_test)] {
            if limit == Some(0) {
                return bad(path, 0, "must be at least 1");
            }
        }
        if let Some(l) = d.limit_train.filter(|l| d.val_split >= *l) {
            return bad("data.val_split", d.val_split, format!("must be smaller than the {l} training images taken"));
        }
        let o = &self.output;
        if o.log_every < 0 {
            return bad("output.log_every", o.log_every, "must be at least 0 (0: per epoch only)");
        }
        if o.save_every < 0 {
            return bad("output.save_every", o.save_every, "must be at least 0 (0: at epoch ends only)");
        }
        if let Some(t) = self.machine.threads.filter(|t| *t < 1) {
            return bad("machine.threads", t, "must be at least 1");
        }
        Ok(())
    }

    /// The threads asked for against this machine's cores (a run read from a file may
    /// come from a larger machine: only a run about to start is held to this one).
    fn check_threads_here(&self) -> Result<(), BadSetting> {
        let cores = crate::jobs::cores();
        let most = (4 * cores).max(8);
        match self.machine.threads {
            Some(t) if t as usize > most => {
                bad("machine.threads", t, format!("far above the {cores} cores here: use at most {most}"))
            }
            _ => Ok(()),
        }
    }

    /// [`Self::check`], then the threads against this machine's cores, the network against
    /// its memory and the data set's classes: everything that can be known before the
    /// data is read.
    pub fn validate(&self) -> Result<()> {
        self.check().and_then(|()| self.check_threads_here()).map_err(Error::Setting)?;
        crate::memory::check_fits(&self.model)?;
        self.data.dataset.check_classes(self.model.num_classes)?;
        Ok(())
    }

    /// The checks that need the data: a batch no larger than the training images.
    pub fn validate_with(&self, data: &RunData) -> Result<()> {
        let images = data.train.len();
        if self.schedule.batch_size > images {
            let want = format!("larger than the {images} training images: use at most {images}");
            return Err(Error::Setting(BadSetting {
                path: "schedule.batch_size",
                value: self.schedule.batch_size.to_string(),
                want,
            }));
        }
        Ok(())
    }

    /// Where the run's data is.
    pub fn data_source(&self) -> DataSource {
        DataSource::new(self.data.dataset, Some(self.data.dir.clone()))
    }

    pub fn warmup_iterations(&self) -> i64 {
        self.schedule.warmup_iters.unwrap_or_else(|| default_warmup(self.model.depth))
    }

    /// The schedule for a run of `iters_per_epoch` iterations per epoch.
    pub fn lr_schedule(&self, iters_per_epoch: i64) -> LrSchedule {
        let s = &self.schedule;
        match s.kind {
            ScheduleKind::Scaled => LrSchedule::scaled(s.lr, s.epochs * iters_per_epoch, self.warmup_iterations()),
            ScheduleKind::Paper => LrSchedule::paper(s.lr, self.warmup_iterations()),
        }
    }

    /// What makes two runs the same experiment, as values: everything but where the run
    /// computes and what it writes (the data's directory, the memory layout, the output
    /// and the machine). The warm-up is the one the run uses; under the paper's schedule
    /// the epochs follow from the data, so they are left out.
    pub fn experiment(&self) -> Experiment {
        let schedule = Schedule {
            warmup_iters: Some(self.warmup_iterations()),
            epochs: if self.schedule.kind == ScheduleKind::Paper { 0 } else { self.schedule.epochs },
            ..self.schedule
        };
        let data = DataSettings { dir: PathBuf::new(), ..self.data.clone() };
        Experiment { model: self.model, precision: self.compute.precision, schedule, data, seed: self.seed }
    }
}

/// The settings that make a run the experiment it is ([`TrainConfig::experiment`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub model: ResNetConfig,
    pub precision: Precision,
    pub schedule: Schedule,
    pub data: DataSettings,
    pub seed: i64,
}

impl Experiment {
    /// The first setting in which `self` differs from `other`, as `path a, not b`.
    pub fn difference(&self, other: &Experiment) -> Option<String> {
        if self == other {
            return None;
        }
        Some(difference(self, other).unwrap_or_else(|| "a setting".into()))
    }
}

/// The first setting (by its path, `schedule.lr`) in which two records differ, as
/// `schedule.lr 0.1, not 0.05`; `None` when they serialise alike.
pub fn difference<T: Serialize>(a: &T, b: &T) -> Option<String> {
    let (a, b) = (serde_json::to_value(a).ok()?, serde_json::to_value(b).ok()?);
    first_difference(&a, &b, String::new())
}

fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.iter().find_map(|(k, v)| {
            let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            first_difference(v, y.get(k).unwrap_or(&Value::Null), sub)
        }),
        _ if a == b => None,
        _ => Some(format!("{path} {}, not {}", text(a), text(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;

    #[test]
    fn every_range_is_checked_once_and_names_the_setting() {
        let ok = TrainConfig::default();
        ok.check().unwrap();
        let with = |f: fn(&mut TrainConfig)| {
            let mut c = TrainConfig::default();
            f(&mut c);
            c.check().unwrap_err().to_string()
        };
        type Edit = fn(&mut TrainConfig);
        let cases: [(Edit, &str); 8] = [
            (|c| c.schedule.batch_size = 0, "`schedule.batch_size` is 0: must be at least 1"),
            (|c| c.schedule.lr = -0.1, "`schedule.lr` is -0.1"),
            (|c| c.schedule.lr = f64::NAN, "`schedule.lr` is NaN"),
            (|c| c.schedule.epochs = MAX_EPOCHS + 1, "`schedule.epochs`"),
            (|c| c.schedule.momentum = 1.0, "`schedule.momentum` is 1"),
            (|c| c.data.limit_test = Some(0), "`data.limit_test` is 0"),
            (|c| c.output.save_every = -1, "`output.save_every` is -1"),
            (|c| c.machine.threads = Some(0), "`machine.threads` is 0"),
        ];
        for (f, want) in cases {
            let e = with(f);
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn experiments_compare_by_value_and_name_the_first_difference() {
        let a = TrainConfig::default();
        let mut b = a.clone();
        b.machine.threads = Some(2);
        b.data.dir = "elsewhere".into();
        b.output.tensorboard = false;
        b.compute.layout = Layout::Nchw;
        assert_eq!(a.experiment(), b.experiment(), "where it runs and what it writes are not the experiment");
        b.schedule.lr = 0.05;
        assert_eq!(a.experiment().difference(&b.experiment()).unwrap(), "schedule.lr 0.1, not 0.05");
        let c = TrainConfig { model: ResNetConfig { arch: Arch::Plain, ..a.model }, ..a.clone() };
        assert_eq!(a.experiment().difference(&c.experiment()).unwrap(), "model.arch resnet, not plain");
        // The warm-up the run uses, whether asked for or by default.
        let d = TrainConfig { schedule: Schedule { warmup_iters: Some(0), ..a.schedule }, ..a.clone() };
        assert_eq!(a.experiment(), d.experiment());
        // Under the paper's schedule the epochs come from the data.
        let paper = |epochs| TrainConfig {
            schedule: Schedule { kind: ScheduleKind::Paper, epochs, ..a.schedule },
            ..a.clone()
        };
        assert_eq!(paper(50).experiment(), paper(182).experiment());
    }

    #[test]
    fn the_data_set_must_fit_the_classifier() {
        let coarse = Dataset::Cifar100 { labels: Labels::Coarse };
        let model = ResNetConfig { num_classes: 20, ..Default::default() };
        let cfg =
            TrainConfig { data: DataSettings { dataset: coarse, ..Default::default() }, model, ..Default::default() };
        cfg.validate().unwrap();
        let e = TrainConfig { model: ResNetConfig::default(), ..cfg }.validate().unwrap_err().to_string();
        assert!(e.contains("does not fit CIFAR-100 (coarse labels), which has 20 classes"), "{e}");
    }
}
