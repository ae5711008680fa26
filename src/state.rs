//! What a checkpoint must hold for a run to continue exactly where it stopped: the
//! momentum buffers (`optimizer.momentum.<name>` tensors) and the position in the run
//! (metadata `train_state`, JSON: epochs and iterations done, the batch reached inside
//! the current epoch with its running sums, the best validation error). The random
//! streams need no saving: they are reseeded from (seed, epoch) and (seed, iteration).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::checkpoint::Checkpoint;
use crate::device::parse_device;
use crate::error::{Error, Result};
use crate::model::ResNetConfig;
use crate::optim::Sgd;
use crate::train::TrainConfig;

const MOMENTUM_PREFIX: &str = "optimizer.momentum.";
const STATE_KEY: &str = "train_state";

/// The position of a run. f64 values survive the JSON round trip exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: i64,
    /// Iterations completed.
    pub iteration: i64,
    /// Batches done in the epoch under way (0 at an epoch boundary).
    pub batch: i64,
    /// Running sums of that epoch: loss × images, wrong predictions, images, gradient norms.
    pub loss_sum: f64,
    pub wrong: i64,
    pub seen: i64,
    pub norm_sums: Vec<f64>,
    pub train_seconds: f64,
    /// Best validation error so far (percent).
    pub best_val: Option<f64>,
}

impl Progress {
    /// Closes epoch `epoch`: the running sums start again.
    pub fn finish_epoch(&mut self, epoch: i64) {
        *self = Progress { epoch, iteration: self.iteration, best_val: self.best_val, ..Default::default() };
    }
}

pub fn progress_metadata(p: &Progress) -> HashMap<String, String> {
    HashMap::from([
        (STATE_KEY.to_string(), serde_json::to_string(p).expect("progress serialises")),
        ("epoch".to_string(), p.epoch.to_string()),
        ("iteration".to_string(), p.iteration.to_string()),
    ])
}

pub fn progress_of(ckpt: &Checkpoint) -> Result<Progress> {
    let raw = ckpt.metadata.get(STATE_KEY).ok_or_else(|| {
        Error::checkpoint(&ckpt.path, "holds no training state (not written by `train`): cannot resume from it")
    })?;
    serde_json::from_str(raw).map_err(|e| Error::checkpoint(&ckpt.path, format!("corrupt training state: {e}")))
}

pub fn optimizer_tensors(opt: &Sgd) -> Vec<(String, Tensor)> {
    opt.momentum_buffers().map(|(n, t)| (format!("{MOMENTUM_PREFIX}{n}"), t.shallow_clone())).collect()
}

pub fn restore_optimizer(ckpt: &Checkpoint, opt: &mut Sgd) -> Result<()> {
    let names: Vec<String> = opt.momentum_buffers().map(|(n, _)| n.to_string()).collect();
    for name in names {
        let t = ckpt
            .tensors
            .get(&format!("{MOMENTUM_PREFIX}{name}"))
            .ok_or_else(|| Error::checkpoint(&ckpt.path, format!("no momentum buffer for {name}: cannot resume")))?;
        if !opt.set_momentum_buffer(&name, t) {
            return Err(Error::checkpoint(&ckpt.path, format!("momentum buffer for {name} has another shape")));
        }
    }
    Ok(())
}

/// Rebuilds a run's settings from its `config.json`.
pub fn config_from_run(dir: &Path) -> Result<TrainConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Config(format!("{}: no run to resume here (no config.json)", dir.display()))
        }
        _ => Error::io(&path, e),
    })?;
    let bad =
        |what: &str| Error::data(&path, format!("{what}: the file is not a run configuration written by `train`"));
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let s = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| bad(&format!("missing `{k}`")));
    let i = |k: &str| v[k].as_i64().ok_or_else(|| bad(&format!("missing `{k}`")));
    let f = |k: &str| v[k].as_f64().ok_or_else(|| bad(&format!("missing `{k}`")));
    let b = |k: &str| v[k].as_bool().unwrap_or(false);
    let opt_usize = |k: &str| v[k].as_u64().map(|x| x as usize);
    let model = ResNetConfig {
        depth: i("depth")?,
        arch: s("arch")?.parse()?,
        shortcut: s("shortcut")?.parse()?,
        batch_norm: v["batch_norm"].as_bool().unwrap_or(true),
        zero_init_residual: b("zero_init_residual"),
        ..Default::default()
    };
    // Runs from before these settings existed computed in fp32, NCHW.
    let compute = crate::model::Compute::new(
        v["precision"].as_str().unwrap_or("fp32").parse()?,
        v["layout"].as_str().unwrap_or("nchw").parse()?,
    );
    Ok(TrainConfig {
        model,
        compute,
        epochs: i("epochs")?,
        batch_size: i("batch_size")?,
        lr: f("lr")?,
        momentum: f("momentum")?,
        weight_decay: f("weight_decay")?,
        schedule: match s("schedule")?.as_str() {
            "paper" => crate::schedule::ScheduleKind::Paper,
            _ => crate::schedule::ScheduleKind::Scaled,
        },
        warmup_iters: Some(i("warmup_iterations")?),
        normalization: s("normalization")?.parse()?,
        val_split: opt_usize("val_split").unwrap_or(0),
        limit_train: opt_usize("limit_train"),
        limit_test: opt_usize("limit_test"),
        data_dir: PathBuf::from(s("data_dir")?),
        out_dir: dir.to_path_buf(),
        device: parse_device(&s("device")?)?,
        seed: i("seed")?,
        threads: v["threads"].as_i64().map(|t| t as i32),
        quiet: false,
        log_grad_norms: b("log_grad_norms"),
        save_every: v["save_every"].as_i64().unwrap_or(0),
        handle_signals: true,
    })
}
