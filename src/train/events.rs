//! What a run logs for TensorBoard ([`crate::tensorboard`]): per epoch the row of
//! `metrics.csv` (and weight histograms with `--log-histograms`), every `--log-every`
//! iterations the step's loss and learning rate, and the configuration once as text.
//!
//! The step losses stay on the device until the loop reads its sums anyway (each step on
//! the CPU; at checkpoints and epoch ends on a GPU), so logging adds no device sync.

use std::path::Path;

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::error::Result;
use crate::metrics::{EpochMetrics, GRAD_NORM_COLUMNS};
use crate::tensorboard::proto::HistogramProto;
use crate::tensorboard::{tags, EventLog};

/// Buckets of a weight histogram.
const HISTOGRAM_BINS: i64 = 30;

/// A run's event file and the step losses not yet written.
pub struct RunEvents {
    log: EventLog,
    log_every: i64,
    histograms: bool,
    /// (iteration, lr, loss on the device) of logged steps since the last write.
    pending: Vec<(i64, f64, Tensor)>,
}

impl RunEvents {
    /// A new run's event file, opening with its `config.json` as text.
    pub fn create(dir: &Path, log_every: i64, histograms: bool, config_json: &str) -> Result<Self> {
        let mut log = EventLog::create(dir)?;
        log.text(tags::CONFIG, 0, &code_block(config_json))?;
        log.flush()?;
        Ok(RunEvents { log, log_every, histograms, pending: Vec::new() })
    }

    /// The event file of a run resumed from a checkpoint at `iteration`.
    pub fn resume(dir: &Path, iteration: i64, log_every: i64, histograms: bool) -> Result<Self> {
        Ok(RunEvents { log: EventLog::resume(dir, iteration)?, log_every, histograms, pending: Vec::new() })
    }

    /// Keeps the loss of the step that made `iteration` iterations, when it is one to log.
    pub fn step(&mut self, iteration: i64, lr: f64, loss: &Tensor) {
        if self.log_every > 0 && iteration % self.log_every == 0 {
            self.pending.push((iteration, lr, loss.detach()));
        }
    }

    /// Writes the kept step losses (one read of all of them) and hands the file to the OS.
    pub fn write_steps(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            let losses: Vec<Tensor> = self.pending.iter().map(|(_, _, l)| l.to_kind(Kind::Double)).collect();
            let values = Vec::<f64>::try_from(Tensor::stack(&losses, 0)).expect("a vector of losses");
            for ((iteration, lr, _), loss) in self.pending.drain(..).zip(values) {
                self.log.scalar(tags::STEP_LOSS, iteration, loss)?;
                self.log.scalar(tags::STEP_LR, iteration, lr)?;
            }
        }
        self.log.flush()
    }

    /// The epoch's row of `metrics.csv` at its last iteration, and the weights' histograms.
    pub fn epoch(&mut self, row: &EpochMetrics, vs: &VarStore) -> Result<()> {
        self.write_steps()?;
        let step = row.iteration;
        let mut values = vec![
            (tags::TRAIN_LOSS, row.train_loss),
            (tags::TRAIN_ERR, row.train_err),
            (tags::TEST_LOSS, row.test_loss),
            (tags::TEST_ERR, row.test_err),
            (tags::LR, row.lr),
            (tags::IMAGES_PER_SEC, row.images_per_sec),
            (tags::EPOCH_SECONDS, row.epoch_seconds),
        ];
        if let Some((loss, err)) = row.val {
            values.extend([(tags::VAL_LOSS, loss), (tags::VAL_ERR, err)]);
        }
        for (tag, v) in values {
            self.log.scalar(tag, step, v)?;
        }
        for (column, v) in GRAD_NORM_COLUMNS.iter().zip(row.grad_norms.iter().flatten()) {
            let name = column.trim_start_matches("grad_norm_");
            self.log.scalar(&format!("{}{name}", tags::GRAD_NORM_GROUP), step, *v)?;
        }
        if self.histograms {
            let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, t) in vars {
                self.log.histogram(&format!("{}{name}", tags::WEIGHTS_GROUP), step, histogram(&t))?;
            }
        }
        self.log.flush()
    }
}

/// The histogram of a tensor's values in [`HISTOGRAM_BINS`] equal buckets.
fn histogram(t: &Tensor) -> HistogramProto {
    let x = t.detach().to_kind(Kind::Double).flatten(0, -1);
    let (min, max) = (x.min().double_value(&[]), x.max().double_value(&[]));
    // A constant tensor (BN's β at init) gets one unit-wide range around its value.
    let (lo, hi) = if max > min { (min, max) } else { (min - 0.5, max + 0.5) };
    let width = (hi - lo) / HISTOGRAM_BINS as f64;
    let bucket = ((&x - lo) / width).floor().clamp(0, HISTOGRAM_BINS - 1).to_kind(Kind::Int64);
    let counts = bucket.bincount(None::<Tensor>, HISTOGRAM_BINS).to_kind(Kind::Double);
    let counts = Vec::<f64>::try_from(counts).expect("a vector of counts");
    HistogramProto {
        min,
        max,
        num: x.numel() as f64,
        sum: x.sum(Kind::Double).double_value(&[]),
        sum_squares: (&x * &x).sum(Kind::Double).double_value(&[]),
        bucket_limit: (1..=HISTOGRAM_BINS).map(|i| lo + width * i as f64).collect(),
        bucket: counts,
    }
}

/// `text` as one Markdown code block (TensorBoard renders text summaries as Markdown): the
/// fence is longer than any run of backticks in it (a path may hold some), so nothing in
/// it can close the block.
fn code_block(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}\n{text}\n{fence}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_text_closes_its_code_block() {
        assert_eq!(super::code_block("{}"), "```\n{}\n```");
        let hostile = "{\"out_dir\": \"/r/```\\n<img src=x onerror=alert(1)>\"}";
        let block = super::code_block(hostile);
        assert!(block.starts_with("````\n") && block.ends_with("\n````"), "{block}");
    }
}
