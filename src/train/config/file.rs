//! `config.json`, the record of a run in its directory: [`RunFile`], the serde form of
//! [`TrainConfig`] — the same parts under the same names (`model`, `compute`, `schedule`,
//! `data`, `seed`, `output`, the `machine`'s device and threads) — with what the run came
//! to (`outcome`) and the versions that wrote it. Written by `train`, read by `--resume`,
//! the study's grid and every other reader. An unknown or ill-typed value is an error
//! naming the field and the file, never a silent default; a file from before the nested
//! parts loads through [`super::legacy`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::legacy::FlatRunFile;
use super::{DataSettings, Machine, Output, Schedule, TrainConfig};
use crate::device::{device_name, parse_device};
use crate::error::{Error, Result};
use crate::model::{Compute, ResNetConfig};
use crate::schedule::LrSchedule;

/// `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    pub model: ResNetConfig,
    pub compute: Compute,
    /// The recipe; under the paper's schedule `epochs` is what its 64k iterations came to.
    pub schedule: Schedule,
    pub data: DataSettings,
    pub seed: i64,
    pub output: Output,
    pub machine: MachineRecord,
    pub outcome: Outcome,
    pub versions: Versions,
}

/// Where the run computed, as far as a resumed run keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRecord {
    /// `cpu`, `cuda:0`, …: where `--resume` continues unless told otherwise.
    pub device: String,
    /// CPU threads asked for (none: libtorch's choice, decided again on resume).
    pub threads: Option<i32>,
    /// The threads libtorch used when the run started (for the reader).
    pub threads_used: Option<i32>,
}

/// What the settings came to for this data: the parameters and the schedule's iterations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub parameters: i64,
    pub total_iterations: i64,
    pub lr_milestones: Vec<i64>,
    pub warmup_iterations: i64,
}

/// The versions of this crate, tch and libtorch that wrote the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub resnet_cifar: String,
    pub tch: String,
    pub libtorch: String,
}

impl RunFile {
    /// The record of `cfg` for a run of `parameters` parameters on `schedule`, `epochs` long.
    pub fn new(cfg: &TrainConfig, parameters: i64, schedule: &LrSchedule, epochs: i64) -> Self {
        RunFile {
            model: cfg.model,
            compute: cfg.compute,
            schedule: Schedule { epochs, ..cfg.schedule },
            data: cfg.data.clone(),
            seed: cfg.seed,
            output: cfg.output.clone(),
            machine: MachineRecord {
                device: device_name(cfg.machine.device),
                threads: cfg.machine.threads,
                threads_used: Some(tch::get_num_threads()),
            },
            outcome: Outcome {
                parameters,
                total_iterations: schedule.total_iterations,
                lr_milestones: schedule.milestones.to_vec(),
                warmup_iterations: schedule.warmup_iterations,
            },
            versions: Versions {
                resnet_cifar: env!("CARGO_PKG_VERSION").into(),
                tch: env!("TCH_VERSION").into(),
                libtorch: env!("LIBTORCH_VERSION").into(),
            },
        }
    }

    /// Reads `dir/config.json` (a regular file only) and checks every field ([`Self::check`]).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let bytes = crate::files::read_regular(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NoRun { dir: dir.to_path_buf() },
            _ => Error::io(&path, e),
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::data(&path, "not UTF-8 text: not a config.json"))?;
        let file = Self::parse(text).map_err(|m| Error::data(&path, m))?;
        file.check().map_err(|m| Error::data(&path, format!("{m}; the file is corrupt or was edited")))?;
        Ok(file)
    }

    /// Checks the range of every field and their agreement, naming the field at fault.
    pub fn check(&self) -> std::result::Result<(), String> {
        let field =
            |name: &str, value: &dyn std::fmt::Debug, want: &str| Err(format!("field `{name}` is {value:?}: {want}"));
        if let Err(e) = crate::memory::check_fits(&self.model) {
            return Err(format!("field `model.depth`: {e}"));
        }
        let classes = self.data.dataset.num_classes();
        if classes != self.model.num_classes {
            let want = format!("{} has {classes}", self.data.dataset);
            return field("model.num_classes", &self.model.num_classes, &want);
        }
        self.settings(Path::new(""), tch::Device::Cpu).check().map_err(|b| format!("field {b}"))?;
        let o = &self.outcome;
        if o.parameters < 1 {
            return field("outcome.parameters", &o.parameters, "must be at least 1");
        }
        if o.total_iterations < 1 {
            return field("outcome.total_iterations", &o.total_iterations, "must be at least 1");
        }
        let ascending = o.lr_milestones.windows(2).all(|w| w[0] <= w[1]);
        if o.lr_milestones.len() != 2 || !ascending || o.lr_milestones.iter().any(|m| *m < 0) {
            return field("outcome.lr_milestones", &o.lr_milestones, "must be two ascending iteration counts");
        }
        if o.warmup_iterations < 0 {
            return field("outcome.warmup_iterations", &o.warmup_iterations, "must be ≥ 0");
        }
        Ok(())
    }

    /// Checks that the schedule a resumed run computes (from its data) is the one this file
    /// records: otherwise the data changed and the run would not continue as it started.
    pub fn check_schedule(&self, schedule: &LrSchedule, path: &Path) -> Result<()> {
        let o = &self.outcome;
        let recorded = (o.total_iterations, o.lr_milestones.as_slice(), o.warmup_iterations);
        let now = (schedule.total_iterations, schedule.milestones.as_slice(), schedule.warmup_iterations);
        if recorded == now {
            return Ok(());
        }
        Err(Error::data(
            path,
            format!(
                "fields `outcome.total_iterations`, `outcome.lr_milestones`, `outcome.warmup_iterations` are {:?}, \
                 but the data gives {:?}: the training set is not the one the run started on; point --data-dir at it",
                recorded, now
            ),
        ))
    }

    /// Parses the text of a `config.json`, today's or a flat one of an earlier version;
    /// the error names the field at fault.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            format!("{}: not a run configuration written by `train`", msg.split(" at line ").next().unwrap_or(&msg))
        })?;
        let nested = value.as_object().is_some_and(|o| o.contains_key("model"));
        if nested {
            deserialize(value)
        } else {
            deserialize::<FlatRunFile>(value)?.into_run_file()
        }
    }

    /// Writes `dir/config.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a run file serialises");
        crate::files::write_atomic(&dir.join("config.json"), text.as_bytes())
    }

    /// The training configuration of the run in `dir` (which is where it now is): the
    /// recorded parts, with the run's device and threads and the caller's other machine
    /// settings at their defaults (signals handled, as a run of the command line).
    pub fn config(&self, dir: &Path) -> Result<TrainConfig> {
        Ok(self.settings(dir, parse_device(&self.machine.device)?))
    }

    /// The recorded parts as a configuration on `device`.
    fn settings(&self, dir: &Path, device: tch::Device) -> TrainConfig {
        TrainConfig {
            model: self.model,
            compute: self.compute,
            schedule: Schedule { warmup_iters: Some(self.outcome.warmup_iterations), ..self.schedule },
            data: self.data.clone(),
            seed: self.seed,
            output: Output { dir: dir.to_path_buf(), ..self.output.clone() },
            machine: Machine { device, threads: self.machine.threads, handle_signals: true, ..Machine::default() },
        }
    }
}

/// `value` as a `T`, the error naming the field's path (`schedule.lr`) without serde's
/// line and column.
fn deserialize<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let msg = e.into_inner().to_string();
        if field == "." {
            format!("{msg}: not a run configuration written by `train`")
        } else {
            format!("field `{field}`: {msg}")
        }
    })
}

/// Rebuilds the settings of the run in `dir` from its `config.json`.
pub fn config_from_run(dir: &Path) -> Result<TrainConfig> {
    RunFile::read(dir)?.config(dir)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::data::{Dataset, Labels};
    use crate::model::{Arch, Layout, Precision};

    fn written() -> RunFile {
        let mut cfg = TrainConfig::default();
        cfg.machine.threads = Some(3);
        let schedule = cfg.lr_schedule(391);
        RunFile::new(&cfg, 269_722, &schedule, cfg.schedule.epochs)
    }

    #[test]
    fn round_trips_in_parts_and_spells_values_as_the_flags_do() {
        let file = written();
        let text = serde_json::to_string_pretty(&file).unwrap();
        for field in [r#""arch": "resnet""#, r#""shortcut": "A""#, r#""kind": "scaled""#, r#""lr": 0.1"#] {
            assert!(text.contains(field), "{field} in {text}");
        }
        assert!(text.contains(r#""normalization": "pixel-mean""#) && text.contains(r#""threads": 3"#));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["schedule"]["batch_size"], 128);
        assert_eq!(value["data"]["dataset"], "cifar10");
        assert_eq!(RunFile::parse(&text).unwrap(), file);
        let cfg = file.config(Path::new("/runs/x")).unwrap();
        assert_eq!((cfg.machine.threads, cfg.model.num_classes), (Some(3), 10));
        assert_eq!(cfg.output.dir, PathBuf::from("/runs/x"));
    }

    #[test]
    fn bad_values_name_the_field() {
        let text = serde_json::to_string(&written()).unwrap();
        let cases = [
            (
                text.replace(r#""kind":"scaled""#, r#""kind":"cosine""#),
                "field `schedule.kind`: unknown schedule `cosine`",
            ),
            (text.replace(r#""depth":20"#, r#""depth":"twenty""#), "field `model.depth`"),
            (text.replace(r#""arch":"resnet""#, r#""arch":"vgg""#), "field `model.arch`: unknown architecture `vgg`"),
            (text.replace(r#""lr":0.1,"#, ""), "field `schedule`: missing field `lr`"),
            ("\"a string\"".to_string(), "not a run configuration"),
            ("{".to_string(), "not a run configuration"),
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
        let with = |f: fn(&mut RunFile)| {
            let mut bad = ok.clone();
            f(&mut bad);
            bad.check().unwrap_err()
        };
        // The ranges are TrainConfig::check's (tested there); here, that a file's error names
        // the field by its path in the file, and the checks only a file has.
        type Edit = fn(&mut RunFile);
        let cases: [(Edit, &str); 6] = [
            (|f| f.schedule.lr = -0.1, "field `schedule.lr` is -0.1"),
            (|f| f.model.depth = 21, "field `model.depth`: depth 21 is not 6n+2"),
            (|f| f.model.depth = 6_000_002, "use a smaller depth"),
            (|f| f.model.num_classes = 100, "field `model.num_classes` is 100"),
            (|f| f.outcome.lr_milestones = vec![5, 1], "field `outcome.lr_milestones`"),
            (|f| f.machine.threads = Some(0), "field `machine.threads` is 0"),
        ];
        for (f, want) in cases {
            let e = with(f);
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn a_flat_file_from_before_the_parts_loads() {
        // config.json as an early version wrote it: `threads` was the detected count,
        // no precision/layout/num_classes/threads_requested/dataset.
        let old = r#"{"arch":"plain","depth":56,"shortcut":"A","parameters":853018,"epochs":10,
            "batch_size":128,"lr":0.1,"momentum":0.9,"weight_decay":0.0001,"schedule":"scaled",
            "total_iterations":790,"lr_milestones":[395,592],"warmup_iterations":0,
            "normalization":"pixel-mean","val_split":0,"limit_train":10000,"limit_test":null,
            "data_dir":"data/cifar-10-batches-bin","out_dir":"runs/pvr/plain-56","device":"cpu","seed":0,
            "batch_norm":true,"zero_init_residual":false,"log_grad_norms":false,"save_every":0,"threads":2,
            "resnet_cifar_version":"0.1.0","tch_version":"0.26.0","libtorch_version":"2.13.0"}"#;
        let file = RunFile::parse(old).unwrap();
        file.check().unwrap();
        let cfg = file.config(Path::new("runs/pvr/plain-56")).unwrap();
        assert_eq!(cfg.machine.threads, None, "a detected count is not forced on resume");
        assert_eq!(file.machine.threads_used, Some(2));
        assert_eq!((cfg.compute.precision, cfg.compute.layout), (Precision::Fp32, Layout::Nchw));
        assert_eq!((cfg.model.arch, cfg.model.num_classes, cfg.data.limit_train), (Arch::Plain, 10, Some(10_000)));
        assert_eq!(cfg.data.dataset, Dataset::Cifar10, "runs from before CIFAR-100 trained on CIFAR-10");
        assert!(!cfg.output.tensorboard, "runs from before TensorBoard logging have no event file");
        // Written again, it is today's nested file with the same settings.
        let again = RunFile::parse(&serde_json::to_string(&file).unwrap()).unwrap();
        assert_eq!(again, file);
        // A flat file's errors still name its field.
        let e = RunFile::parse(&old.replace(r#""lr":0.1,"#, "")).unwrap_err();
        assert!(e.contains("missing field `lr`"), "{e}");
    }

    #[test]
    fn the_data_set_is_recorded_and_must_fit_the_classifier() {
        let coarse = Dataset::Cifar100 { labels: Labels::Coarse };
        let model = ResNetConfig { num_classes: 20, ..Default::default() };
        let cfg =
            TrainConfig { data: DataSettings { dataset: coarse, ..Default::default() }, model, ..Default::default() };
        let file = RunFile::new(&cfg, 1, &cfg.lr_schedule(391), cfg.schedule.epochs);
        let text = serde_json::to_string(&file).unwrap();
        assert!(text.contains(r#""dataset":"cifar100","labels":"coarse""#), "{text}");
        assert_eq!(RunFile::parse(&text).unwrap().config(Path::new("r")).unwrap().data.dataset, coarse);
        let bad = text.replace(r#""dataset":"cifar100""#, r#""dataset":"cifar10""#);
        let e = RunFile::parse(&bad).unwrap_err();
        assert!(e.contains("field `data`: `labels` is for CIFAR-100"), "{e}");
    }
}
