//! Where a run stands, saved in every `last.safetensors` for an exact `--resume`: the
//! metadata `train_state` (JSON: epochs and iterations done, the batch reached inside the
//! current epoch with its running sums, the best validation error). The random streams
//! need no saving: they are reseeded from (seed, epoch) and (seed, iteration).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

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

/// The checkpoint metadata of `p`, trained at learning rate `lr`. Every number must be
/// finite: JSON has no NaN (it would be written as `null` and not read back), and a
/// non-finite sum means a diverged run, which is never checkpointed.
pub fn progress_metadata(p: &Progress, lr: f64) -> Result<HashMap<String, String>> {
    let sums = [p.loss_sum, p.train_seconds].into_iter().chain(p.norm_sums.iter().copied());
    if let Some(bad) = sums.chain(p.best_val).find(|v| !v.is_finite()) {
        return Err(Error::Diverged {
            iteration: p.iteration,
            lr,
            what: format!("the training state holds {bad} (not checkpointed)"),
        });
    }
    Ok(HashMap::from([
        (STATE_KEY.to_string(), serde_json::to_string(p).expect("progress serialises")),
        ("epoch".to_string(), p.epoch.to_string()),
        ("iteration".to_string(), p.iteration.to_string()),
    ]))
}

/// The training state a checkpoint records (parsed, not yet checked: see [`check_progress`]).
pub fn progress_of(ckpt: &Checkpoint) -> Result<Progress> {
    let raw = ckpt.metadata.get(STATE_KEY).ok_or_else(|| {
        Error::checkpoint(&ckpt.path, "holds no training state (not written by `train`): cannot resume from it")
    })?;
    parse_progress(raw).map_err(|e| Error::checkpoint(&ckpt.path, format!("corrupt training state: {e}")))
}

/// Parses the JSON of a `train_state`.
pub fn parse_progress(raw: &str) -> std::result::Result<Progress, String> {
    let de = &mut serde_json::Deserializer::from_str(raw);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let msg = e.into_inner().to_string();
        format!("field `{field}`: {}", crate::files::printable(msg.split(" at line ").next().unwrap_or(&msg)))
    })
}

/// What a run's settings and data make of its positions: the bounds a training state must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunShape {
    pub iters_per_epoch: i64,
    pub total_iterations: i64,
    pub epochs: i64,
    pub batch_size: i64,
    pub train_images: i64,
    /// Whether the run sums gradient norms (`--log-grad-norms`).
    pub grad_norms: bool,
}

impl Progress {
    /// Checks every field against `shape` and the others; the error names the field.
    pub fn check(&self, shape: &RunShape) -> std::result::Result<(), String> {
        let field =
            |name: &str, value: &dyn std::fmt::Display, want: String| Err(format!("field `{name}` is {value}: {want}"));
        if !(0..=shape.epochs).contains(&self.epoch) {
            return field("epoch", &self.epoch, format!("must be 0 to {}", shape.epochs));
        }
        // All of an epoch's batches done, its evaluation not yet: a stop at its last step.
        if !(0..=shape.iters_per_epoch).contains(&self.batch) {
            return field("batch", &self.batch, format!("must be 0 to {}", shape.iters_per_epoch));
        }
        let at = self.epoch.checked_mul(shape.iters_per_epoch).and_then(|i| i.checked_add(self.batch));
        // The last epoch of a schedule that ends inside an epoch closes at the schedule's end.
        let closed_early = self.batch == 0 && self.epoch == shape.epochs && self.iteration == shape.total_iterations;
        if !(at == Some(self.iteration) || closed_early) || self.iteration > shape.total_iterations {
            return field(
                "iteration",
                &self.iteration,
                format!(
                    "epoch {} and batch {} at {} iterations an epoch place it at {}, of {}",
                    self.epoch,
                    self.batch,
                    shape.iters_per_epoch,
                    at.map_or("overflow".into(), |a| a.to_string()),
                    shape.total_iterations
                ),
            );
        }
        let seen = self.batch * shape.batch_size;
        if self.seen != seen.min(shape.train_images) {
            return field(
                "seen",
                &self.seen,
                format!("{} batches of {} images are {seen}", self.batch, shape.batch_size),
            );
        }
        if !(0..=self.seen).contains(&self.wrong) {
            return field("wrong", &self.wrong, format!("must be 0 to {}", self.seen));
        }
        if !(self.loss_sum.is_finite() && self.loss_sum >= 0.0) {
            return field("loss_sum", &self.loss_sum, "must be a finite sum of losses (≥ 0)".into());
        }
        if !(self.train_seconds.is_finite() && self.train_seconds >= 0.0) {
            return field("train_seconds", &self.train_seconds, "must be finite and ≥ 0".into());
        }
        let sums = if shape.grad_norms && self.batch > 0 { crate::train::GRAD_NORM_BOUNDARIES.len() } else { 0 };
        if self.norm_sums.len() != sums || self.norm_sums.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
            return field("norm_sums", &format!("{:?}", self.norm_sums), format!("must be {sums} finite sums ≥ 0"));
        }
        if let Some(b) = self.best_val.filter(|b| !(0.0..=100.0).contains(b)) {
            return field("best_val", &b, "must be an error in percent, 0 to 100".into());
        }
        Ok(())
    }
}

/// Checks the training state `p` of `ckpt` against the run's `shape` and the
/// checkpoint's own `epoch` and `iteration` metadata.
pub fn check_progress(ckpt: &Checkpoint, p: &Progress, shape: &RunShape) -> Result<()> {
    let bad = |m: String| {
        Error::checkpoint(&ckpt.path, format!("training state {m}: the checkpoint is corrupt; it cannot be resumed"))
    };
    p.check(shape).map_err(bad)?;
    for (key, value) in [("epoch", p.epoch), ("iteration", p.iteration)] {
        if ckpt.metadata.get(key).map(String::as_str) != Some(value.to_string().as_str()) {
            return Err(bad(format!("says {key} {value}, but the metadata `{key}` does not agree")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_sum_is_never_written() {
        let ok = Progress { epoch: 1, iteration: 7, loss_sum: 3.5, norm_sums: vec![1.0], ..Default::default() };
        let meta = progress_metadata(&ok, 0.1).unwrap();
        let back: Progress = serde_json::from_str(&meta[STATE_KEY]).unwrap();
        assert_eq!(back, ok);
        for bad in [
            Progress { loss_sum: f64::NAN, ..ok.clone() },
            Progress { loss_sum: f64::INFINITY, ..ok.clone() },
            Progress { norm_sums: vec![f64::NAN], ..ok.clone() },
            Progress { best_val: Some(f64::NAN), ..ok.clone() },
        ] {
            let e = progress_metadata(&bad, 0.1).unwrap_err();
            assert!(matches!(e, Error::Diverged { iteration: 7, lr: 0.1, .. }), "{e:?}");
            let e = e.to_string();
            assert!(e.contains("not checkpointed") && e.contains("iteration 7"), "{e}");
        }
    }

    #[test]
    fn every_field_of_a_training_state_is_checked() {
        let shape = RunShape {
            iters_per_epoch: 4,
            total_iterations: 10,
            epochs: 3,
            batch_size: 32,
            train_images: 100,
            grad_norms: false,
        };
        let ok =
            Progress { epoch: 1, iteration: 6, batch: 2, seen: 64, wrong: 10, loss_sum: 50.0, ..Default::default() };
        ok.check(&shape).unwrap();
        // The last epoch of a schedule that ends inside it closes at the schedule's end.
        Progress { epoch: 3, iteration: 10, ..Default::default() }.check(&shape).unwrap();
        // Stopped after an epoch's last step, before its evaluation: every batch done.
        Progress { epoch: 0, iteration: 4, batch: 4, seen: 100, ..Default::default() }.check(&shape).unwrap();
        for (bad, field) in [
            (Progress { batch: -1, ..ok.clone() }, "field `batch` is -1"),
            (Progress { batch: 5, ..ok.clone() }, "field `batch` is 5"),
            (Progress { epoch: 4, ..ok.clone() }, "field `epoch` is 4"),
            (Progress { iteration: 7, ..ok.clone() }, "field `iteration` is 7"),
            (Progress { epoch: i64::MAX / 2, ..ok.clone() }, "field `epoch`"),
            (Progress { seen: 63, ..ok.clone() }, "field `seen` is 63"),
            (Progress { wrong: 65, ..ok.clone() }, "field `wrong` is 65"),
            (Progress { loss_sum: -1.0, ..ok.clone() }, "field `loss_sum` is -1"),
            (Progress { norm_sums: vec![1.0], ..ok.clone() }, "field `norm_sums`"),
            (Progress { best_val: Some(101.0), ..ok.clone() }, "field `best_val` is 101"),
        ] {
            let e = bad.check(&shape).unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        let e = parse_progress(r#"{"epoch":"one"}"#).unwrap_err();
        assert!(e.starts_with("field `epoch`: invalid type"), "{e}");
    }
}
