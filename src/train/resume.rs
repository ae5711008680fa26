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

/// The checkpoint metadata of `p`. Every number must be finite: JSON has no NaN (it would
/// be written as `null` and not read back), and a non-finite sum means a diverged run,
/// which is never checkpointed.
pub fn progress_metadata(p: &Progress) -> Result<HashMap<String, String>> {
    let sums = [p.loss_sum, p.train_seconds].into_iter().chain(p.norm_sums.iter().copied());
    if let Some(bad) = sums.chain(p.best_val).find(|v| !v.is_finite()) {
        return Err(Error::Diverged(format!(
            "the training state holds {bad} at iteration {}: not checkpointed; the last checkpoint is intact",
            p.iteration
        )));
    }
    Ok(HashMap::from([
        (STATE_KEY.to_string(), serde_json::to_string(p).expect("progress serialises")),
        ("epoch".to_string(), p.epoch.to_string()),
        ("iteration".to_string(), p.iteration.to_string()),
    ]))
}

pub fn progress_of(ckpt: &Checkpoint) -> Result<Progress> {
    let raw = ckpt.metadata.get(STATE_KEY).ok_or_else(|| {
        Error::checkpoint(&ckpt.path, "holds no training state (not written by `train`): cannot resume from it")
    })?;
    serde_json::from_str(raw).map_err(|e| Error::checkpoint(&ckpt.path, format!("corrupt training state: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_sum_is_never_written() {
        let ok = Progress { epoch: 1, iteration: 7, loss_sum: 3.5, norm_sums: vec![1.0], ..Default::default() };
        let meta = progress_metadata(&ok).unwrap();
        let back: Progress = serde_json::from_str(&meta[STATE_KEY]).unwrap();
        assert_eq!(back, ok);
        for bad in [
            Progress { loss_sum: f64::NAN, ..ok.clone() },
            Progress { loss_sum: f64::INFINITY, ..ok.clone() },
            Progress { norm_sums: vec![f64::NAN], ..ok.clone() },
            Progress { best_val: Some(f64::NAN), ..ok.clone() },
        ] {
            let e = progress_metadata(&bad).unwrap_err().to_string();
            assert!(e.contains("not checkpointed") && e.contains("iteration 7"), "{e}");
        }
    }
}
