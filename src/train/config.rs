//! The settings of a training run, and `config.json`, the file that records them in every
//! run directory: one serde type, [`RunFile`], written by `train` and read by `--resume`,
//! the study's grid and every other reader. An unknown or ill-typed value is an error
//! naming the field and the file, never a silent default. Files written before a field
//! existed still load, with that field's old meaning.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::data::{DataSource, Dataset, DatasetName, Labels, RunData};
use crate::device::{device_name, parse_device};
use crate::error::{Error, Result};
use crate::model::{Arch, BlockKind, Compute, Layout, Precision, ResNetConfig, Shortcut};
use crate::normalize::Normalization;
use crate::schedule::{default_warmup, LrSchedule, ScheduleKind};
use crate::train::graph::CudaGraphs;

/// The most epochs a run may ask for (the paper's 64k iterations are 164 epochs): a bound
/// that keeps every count of iterations far inside `i64`.
pub const MAX_EPOCHS: i64 = 100_000;

/// Every setting of a training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub model: ResNetConfig,
    /// Number format and memory layout of the computation (parameters stay fp32).
    pub compute: Compute,
    pub epochs: i64,
    pub batch_size: i64,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: ScheduleKind,
    /// Warm-up iterations at lr/10; `None`: the paper's 400 from depth 110, else none.
    pub warmup_iters: Option<i64>,
    pub normalization: Normalization,
    /// Hold out the last N training images for validation.
    pub val_split: usize,
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
    /// The data set; `model.num_classes` must be its class count.
    pub dataset: Dataset,
    pub data_dir: PathBuf,
    pub out_dir: PathBuf,
    pub device: Device,
    pub seed: i64,
    pub threads: Option<i32>,
    /// No progress bar and no per-epoch lines (for callers that report themselves).
    pub quiet: bool,
    /// Log the mean ‖∂L/∂x‖ at the network's input and at each stage's input per epoch.
    pub log_grad_norms: bool,
    /// Also write `last.safetensors` every N iterations inside an epoch (0: only at epoch ends).
    pub save_every: i64,
    /// Write a TensorBoard event file into the run directory.
    pub tensorboard: bool,
    /// Log the training loss and lr to TensorBoard every N iterations (0: per epoch only).
    pub log_every: i64,
    /// Log a histogram of every weight to TensorBoard per epoch.
    pub log_histograms: bool,
    /// Read loss and error on the host after every step [default: on the CPU, where it is
    /// free; on a GPU only at the end of an epoch and at each checkpoint].
    pub read_every_step: Option<bool>,
    /// On SIGINT/SIGTERM finish the step, write the checkpoint and stop (the CLI sets it).
    pub handle_signals: bool,
    /// Replay the training step from a CUDA graph (a setting of the machine, like
    /// `threads`: not recorded, free to change on resume).
    pub cuda_graphs: CudaGraphs,
    /// cuDNN's deterministic algorithms, without its benchmark search: a CUDA run that
    /// resumes exactly (also not recorded).
    pub deterministic: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: ResNetConfig::default(),
            // Channels-last: the same arithmetic as NCHW, faster convolutions (docs/performance.md).
            compute: Compute::new(Precision::Fp32, Layout::ChannelsLast),
            epochs: 50,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            schedule: ScheduleKind::Scaled,
            warmup_iters: None,
            normalization: Normalization::PixelMean,
            val_split: 0,
            limit_train: None,
            limit_test: None,
            dataset: Dataset::Cifar10,
            data_dir: Dataset::Cifar10.default_dir(),
            out_dir: PathBuf::from("runs/resnet-20"),
            device: Device::Cpu,
            seed: 0,
            threads: None,
            quiet: false,
            log_grad_norms: false,
            save_every: 0,
            tensorboard: true,
            log_every: 50,
            log_histograms: false,
            read_every_step: None,
            handle_signals: false,
            cuda_graphs: CudaGraphs::Auto,
            deterministic: false,
        }
    }
}

impl TrainConfig {
    /// Checks every setting once, with a message saying what to use instead.
    pub fn validate(&self) -> Result<()> {
        crate::memory::check_fits(&self.model)?;
        self.dataset.check_classes(self.model.num_classes)?;
        let bad = |m: String| Err(Error::Config(m));
        if self.batch_size < 1 {
            return bad(format!("--batch-size {} must be at least 1", self.batch_size));
        }
        if self.epochs < 1 {
            return bad(format!("--epochs {} must be at least 1", self.epochs));
        }
        if self.epochs > MAX_EPOCHS {
            return bad(format!(
                "--epochs {} is more than {MAX_EPOCHS}: the paper's 64k iterations are 164 epochs",
                self.epochs
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("--lr {} must be a positive number (the paper uses 0.1)", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!("--momentum {} must be in [0, 1) (the paper uses 0.9)", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("--weight-decay {} must be ≥ 0 (the paper uses 1e-4)", self.weight_decay));
        }
        if self.log_every < 0 {
            return bad(format!("--log-every {} must be at least 0 (0: per epoch only)", self.log_every));
        }
        if matches!(self.limit_train, Some(0)) || matches!(self.limit_test, Some(0)) {
            return bad("--limit-train and --limit-test must be at least 1".into());
        }
        if let Some(t) = self.threads {
            if t < 1 {
                return bad(format!("--threads {t} must be at least 1"));
            }
            let cores = crate::jobs::cores();
            let most = (4 * cores).max(8);
            if t as usize > most {
                return bad(format!("--threads {t} is far above the {cores} cores here: use at most {most}"));
            }
        }
        Ok(())
    }

    /// The checks that need the data: a batch no larger than the training images.
    pub fn validate_with(&self, data: &RunData) -> Result<()> {
        let images = data.train.len();
        if self.batch_size > images {
            return Err(Error::Config(format!(
                "--batch-size {} is larger than the {images} training images: use at most {images}",
                self.batch_size
            )));
        }
        Ok(())
    }

    /// Where the run's data is.
    pub fn data_source(&self) -> DataSource {
        DataSource::new(self.dataset, Some(self.data_dir.clone()))
    }

    pub fn warmup_iterations(&self) -> i64 {
        self.warmup_iters.unwrap_or_else(|| default_warmup(self.model.depth))
    }

    /// The schedule for a run of `iters_per_epoch` iterations per epoch.
    pub fn lr_schedule(&self, iters_per_epoch: i64) -> LrSchedule {
        match self.schedule {
            ScheduleKind::Scaled => {
                LrSchedule::scaled(self.lr, self.epochs * iters_per_epoch, self.warmup_iterations())
            }
            ScheduleKind::Paper => LrSchedule::paper(self.lr, self.warmup_iterations()),
        }
    }
}

/// `config.json`: the whole training configuration of a run, and what it came to
/// (parameters, iterations, milestones) with the versions that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    pub arch: Arch,
    pub depth: i64,
    pub shortcut: Shortcut,
    #[serde(default = "yes")]
    pub batch_norm: bool,
    #[serde(default)]
    pub zero_init_residual: bool,
    /// The pre-activation block asked for (none: the paper's choice for the depth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockKind>,
    #[serde(default = "cifar10_classes")]
    pub num_classes: i64,
    /// Runs from before CIFAR-100 trained on CIFAR-10.
    #[serde(default)]
    pub dataset: DatasetName,
    /// CIFAR-100's fine or coarse classes (none for CIFAR-10).
    #[serde(default)]
    pub labels: Option<Labels>,
    pub parameters: i64,
    /// Runs from before precision and layout existed computed in fp32, NCHW.
    #[serde(default)]
    pub precision: Precision,
    #[serde(default)]
    pub layout: Layout,
    pub epochs: i64,
    pub batch_size: i64,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: ScheduleKind,
    pub total_iterations: i64,
    pub lr_milestones: Vec<i64>,
    pub warmup_iterations: i64,
    pub normalization: Normalization,
    #[serde(default)]
    pub val_split: usize,
    pub limit_train: Option<usize>,
    pub limit_test: Option<usize>,
    pub data_dir: PathBuf,
    pub out_dir: PathBuf,
    pub device: String,
    pub seed: i64,
    #[serde(default)]
    pub log_grad_norms: bool,
    #[serde(default)]
    pub save_every: i64,
    /// Runs from before TensorBoard logging have no event file.
    #[serde(default)]
    pub tensorboard: bool,
    #[serde(default = "fifty")]
    pub log_every: i64,
    #[serde(default)]
    pub log_histograms: bool,
    /// CPU threads asked for with `--threads` (none: libtorch's choice, decided again on
    /// resume). Older files recorded the count libtorch chose, as `threads`: not a request.
    #[serde(default)]
    pub threads_requested: Option<i32>,
    /// The threads libtorch used when the run started (for the reader).
    #[serde(default, rename = "threads")]
    pub threads_used: Option<i32>,
    #[serde(default)]
    pub resnet_cifar_version: String,
    #[serde(default)]
    pub tch_version: String,
    #[serde(default)]
    pub libtorch_version: String,
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

impl RunFile {
    /// The record of `cfg` for a run of `parameters` parameters on `schedule`, `epochs` long.
    pub fn new(cfg: &TrainConfig, parameters: i64, schedule: &LrSchedule, epochs: i64) -> Self {
        RunFile {
            arch: cfg.model.arch,
            depth: cfg.model.depth,
            shortcut: cfg.model.shortcut,
            batch_norm: cfg.model.batch_norm,
            zero_init_residual: cfg.model.zero_init_residual,
            block: cfg.model.block,
            num_classes: cfg.model.num_classes,
            dataset: cfg.dataset.name(),
            labels: cfg.dataset.labels(),
            parameters,
            precision: cfg.compute.precision,
            layout: cfg.compute.layout,
            epochs,
            batch_size: cfg.batch_size,
            lr: cfg.lr,
            momentum: cfg.momentum,
            weight_decay: cfg.weight_decay,
            schedule: cfg.schedule,
            total_iterations: schedule.total_iterations,
            lr_milestones: schedule.milestones.to_vec(),
            warmup_iterations: schedule.warmup_iterations,
            normalization: cfg.normalization,
            val_split: cfg.val_split,
            limit_train: cfg.limit_train,
            limit_test: cfg.limit_test,
            data_dir: cfg.data_dir.clone(),
            out_dir: cfg.out_dir.clone(),
            device: device_name(cfg.device),
            seed: cfg.seed,
            log_grad_norms: cfg.log_grad_norms,
            save_every: cfg.save_every,
            tensorboard: cfg.tensorboard,
            log_every: cfg.log_every,
            log_histograms: cfg.log_histograms,
            threads_requested: cfg.threads,
            threads_used: Some(tch::get_num_threads()),
            resnet_cifar_version: env!("CARGO_PKG_VERSION").into(),
            tch_version: env!("TCH_VERSION").into(),
            libtorch_version: env!("LIBTORCH_VERSION").into(),
        }
    }

    /// Reads `dir/config.json` (a regular file only) and checks every field ([`Self::check`]).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let bytes = crate::files::read_regular(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::Config(format!("{}: no run to resume here (no config.json)", dir.display()))
            }
            _ => Error::io(&path, e),
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::data(&path, "not UTF-8 text: not a config.json"))?;
        let file = Self::parse(text).map_err(|m| Error::data(&path, m))?;
        file.check().map_err(|m| Error::data(&path, format!("{m}; the file is corrupt or was edited")))?;
        Ok(file)
    }

    /// The network the run trains.
    fn model(&self) -> ResNetConfig {
        ResNetConfig {
            depth: self.depth,
            arch: self.arch,
            shortcut: self.shortcut,
            batch_norm: self.batch_norm,
            zero_init_residual: self.zero_init_residual,
            block: self.block,
            num_classes: self.num_classes,
        }
    }

    /// Checks the range of every field and their agreement, naming the field at fault.
    pub fn check(&self) -> std::result::Result<(), String> {
        let field =
            |name: &str, value: &dyn std::fmt::Debug, want: &str| Err(format!("field `{name}` is {value:?}: {want}"));
        let model = self.model();
        if let Err(e) = crate::memory::check_fits(&model) {
            return Err(format!("field `depth`: {e}"));
        }
        let dataset = Dataset::new(self.dataset, self.labels)
            .map_err(|_| format!("field `labels` is for CIFAR-100, but `dataset` is {}", self.dataset))?;
        if dataset.num_classes() != self.num_classes {
            return field("num_classes", &self.num_classes, &format!("{dataset} has {}", dataset.num_classes()));
        }
        if self.parameters < 1 {
            return field("parameters", &self.parameters, "must be at least 1");
        }
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return field("epochs", &self.epochs, &format!("must be 1 to {MAX_EPOCHS}"));
        }
        if self.batch_size < 1 {
            return field("batch_size", &self.batch_size, "must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return field("lr", &self.lr, "must be a positive number");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return field("momentum", &self.momentum, "must be in [0, 1)");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return field("weight_decay", &self.weight_decay, "must be ≥ 0");
        }
        if self.total_iterations < 1 {
            return field("total_iterations", &self.total_iterations, "must be at least 1");
        }
        let ascending = self.lr_milestones.windows(2).all(|w| w[0] <= w[1]);
        if self.lr_milestones.len() != 2 || !ascending || self.lr_milestones.iter().any(|m| *m < 0) {
            return field("lr_milestones", &self.lr_milestones, "must be two ascending iteration counts");
        }
        if self.warmup_iterations < 0 {
            return field("warmup_iterations", &self.warmup_iterations, "must be ≥ 0");
        }
        if self.log_every < 0 {
            return field("log_every", &self.log_every, "must be ≥ 0 (0: per epoch only)");
        }
        for (name, limit) in [("limit_train", self.limit_train), ("limit_test", self.limit_test)] {
            if limit == Some(0) {
                return field(name, &0, "must be at least 1 (or null)");
            }
        }
        if self.limit_train.is_some_and(|l| self.val_split >= l) {
            return field("val_split", &self.val_split, "must be smaller than `limit_train`");
        }
        if self.save_every < 0 {
            return field("save_every", &self.save_every, "must be ≥ 0");
        }
        if let Some(t) = self.threads_requested.filter(|t| *t < 1) {
            return field("threads_requested", &t, "must be at least 1 (or null)");
        }
        Ok(())
    }

    /// Checks that the schedule a resumed run computes (from its data) is the one this file
    /// records: otherwise the data changed and the run would not continue as it started.
    pub fn check_schedule(&self, schedule: &LrSchedule, path: &Path) -> Result<()> {
        let recorded = (self.total_iterations, self.lr_milestones.as_slice(), self.warmup_iterations);
        let now = (schedule.total_iterations, schedule.milestones.as_slice(), schedule.warmup_iterations);
        if recorded == now {
            return Ok(());
        }
        Err(Error::data(
            path,
            format!(
                "fields `total_iterations`, `lr_milestones`, `warmup_iterations` are {:?}, but the data gives {:?}: \
                 the training set is not the one the run started on; point --data-dir at it",
                recorded, now
            ),
        ))
    }

    /// Parses the text of a `config.json`; the error names the field at fault.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let msg = e.into_inner().to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            if field == "." {
                format!("{msg}: not a run configuration written by `train`")
            } else {
                format!("field `{field}`: {msg}")
            }
        })
    }

    /// Writes `dir/config.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a run file serialises");
        crate::files::write_atomic(&dir.join("config.json"), text.as_bytes())
    }

    /// The training configuration of the run in `dir` (which is where it now is).
    pub fn config(&self, dir: &Path) -> Result<TrainConfig> {
        let model = self.model();
        let dataset = Dataset::new(self.dataset, self.labels).map_err(|_| {
            Error::Config(format!(
                "{}: field `labels` is for CIFAR-100, but `dataset` is {}",
                dir.join("config.json").display(),
                self.dataset
            ))
        })?;
        Ok(TrainConfig {
            model,
            compute: Compute::new(self.precision, self.layout),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule: self.schedule,
            warmup_iters: Some(self.warmup_iterations),
            normalization: self.normalization,
            val_split: self.val_split,
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            dataset,
            data_dir: self.data_dir.clone(),
            out_dir: dir.to_path_buf(),
            device: parse_device(&self.device)?,
            seed: self.seed,
            threads: self.threads_requested,
            quiet: false,
            log_grad_norms: self.log_grad_norms,
            save_every: self.save_every,
            tensorboard: self.tensorboard,
            log_every: self.log_every,
            log_histograms: self.log_histograms,
            read_every_step: None,
            handle_signals: true,
            cuda_graphs: CudaGraphs::Auto,
            deterministic: false,
        })
    }
}

/// Rebuilds the settings of the run in `dir` from its `config.json`.
pub fn config_from_run(dir: &Path) -> Result<TrainConfig> {
    RunFile::read(dir)?.config(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written() -> RunFile {
        let cfg = TrainConfig { threads: Some(3), ..Default::default() };
        let schedule = cfg.lr_schedule(391);
        RunFile::new(&cfg, 269_722, &schedule, cfg.epochs)
    }

    #[test]
    fn round_trips_and_spells_values_as_the_flags_do() {
        let file = written();
        let text = serde_json::to_string_pretty(&file).unwrap();
        for field in [r#""arch": "resnet""#, r#""shortcut": "A""#, r#""schedule": "scaled""#] {
            assert!(text.contains(field), "{field} in {text}");
        }
        assert!(text.contains(r#""normalization": "pixel-mean""#) && text.contains(r#""threads_requested": 3"#));
        assert_eq!(RunFile::parse(&text).unwrap(), file);
        let cfg = file.config(Path::new("/runs/x")).unwrap();
        assert_eq!((cfg.threads, cfg.model.num_classes, cfg.out_dir), (Some(3), 10, PathBuf::from("/runs/x")));
    }

    #[test]
    fn bad_values_name_the_field() {
        let text = serde_json::to_string(&written()).unwrap();
        let cases = [
            (
                text.replace(r#""schedule":"scaled""#, r#""schedule":"cosine""#),
                "field `schedule`: unknown schedule `cosine`",
            ),
            (text.replace(r#""depth":20"#, r#""depth":"twenty""#), "field `depth`"),
            (text.replace(r#""arch":"resnet""#, r#""arch":"vgg""#), "field `arch`: unknown architecture `vgg`"),
            (text.replace(r#""lr":0.1,"#, ""), "missing field `lr`"),
            ("\"a string\"".to_string(), "not a run configuration"),
        ];
        for (bad, want) in cases {
            let e = RunFile::parse(&bad).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        let ok = written();
        ok.check().unwrap();
        let cases = [
            (RunFile { lr: -0.1, ..ok.clone() }, "field `lr` is -0.1"),
            (RunFile { lr: f64::NAN, ..ok.clone() }, "field `lr` is NaN"),
            (RunFile { batch_size: 0, ..ok.clone() }, "field `batch_size` is 0"),
            (RunFile { epochs: MAX_EPOCHS + 1, ..ok.clone() }, "field `epochs`"),
            (RunFile { depth: 21, ..ok.clone() }, "field `depth`: depth 21 is not 6n+2"),
            (RunFile { depth: 6_000_002, ..ok.clone() }, "use a smaller depth"),
            (RunFile { momentum: 1.0, ..ok.clone() }, "field `momentum` is 1.0"),
            (RunFile { num_classes: 100, ..ok.clone() }, "field `num_classes` is 100"),
            (RunFile { lr_milestones: vec![5, 1], ..ok.clone() }, "field `lr_milestones`"),
            (RunFile { limit_test: Some(0), ..ok.clone() }, "field `limit_test` is 0"),
            (RunFile { save_every: -1, ..ok.clone() }, "field `save_every` is -1"),
            (RunFile { threads_requested: Some(0), ..ok.clone() }, "field `threads_requested` is 0"),
        ];
        for (bad, want) in cases {
            let e = bad.check().unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn a_file_from_before_this_version_loads() {
        // config.json as the previous version wrote it: `threads` was the detected count,
        // no precision/layout/num_classes/threads_requested.
        let old = r#"{"arch":"plain","depth":56,"shortcut":"A","parameters":853018,"epochs":10,
            "batch_size":128,"lr":0.1,"momentum":0.9,"weight_decay":0.0001,"schedule":"scaled",
            "total_iterations":790,"lr_milestones":[395,592],"warmup_iterations":0,
            "normalization":"pixel-mean","val_split":0,"limit_train":10000,"limit_test":null,
            "data_dir":"data/cifar-10-batches-bin","out_dir":"runs/pvr/plain-56","device":"cpu","seed":0,
            "batch_norm":true,"zero_init_residual":false,"log_grad_norms":false,"save_every":0,"threads":2,
            "resnet_cifar_version":"0.1.0","tch_version":"0.26.0","libtorch_version":"2.13.0"}"#;
        let file = RunFile::parse(old).unwrap();
        let cfg = file.config(Path::new("runs/pvr/plain-56")).unwrap();
        assert_eq!(cfg.threads, None, "a detected count is not forced on resume");
        assert_eq!((cfg.compute.precision, cfg.compute.layout), (Precision::Fp32, Layout::Nchw));
        assert_eq!((cfg.model.arch, cfg.model.num_classes, cfg.limit_train), (Arch::Plain, 10, Some(10_000)));
        assert_eq!(cfg.dataset, Dataset::Cifar10, "runs from before CIFAR-100 trained on CIFAR-10");
    }

    #[test]
    fn the_data_set_is_recorded_and_must_fit_the_classifier() {
        let coarse = Dataset::Cifar100 { labels: Labels::Coarse };
        let model = ResNetConfig { num_classes: 20, ..Default::default() };
        let cfg = TrainConfig { dataset: coarse, model, ..Default::default() };
        cfg.validate().unwrap();
        let file = RunFile::new(&cfg, 1, &cfg.lr_schedule(391), cfg.epochs);
        let text = serde_json::to_string(&file).unwrap();
        assert!(text.contains(r#""dataset":"cifar100","labels":"coarse""#), "{text}");
        assert_eq!(RunFile::parse(&text).unwrap().config(Path::new("r")).unwrap().dataset, coarse);
        let bad = text.replace(r#""dataset":"cifar100""#, r#""dataset":"cifar10""#);
        let e = RunFile::parse(&bad).unwrap().config(Path::new("r")).unwrap_err().to_string();
        assert!(e.contains("field `labels` is for CIFAR-100"), "{e}");
        let e = TrainConfig { model: ResNetConfig::default(), ..cfg }.validate().unwrap_err().to_string();
        assert!(e.contains("--num-classes 10 does not fit CIFAR-100 (coarse labels), which has 20 classes"), "{e}");
    }
}
