//! `metrics.csv`: one row per epoch, flushed as soon as it is written, errors in percent.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

pub const COLUMNS: [&str; 9] =
    ["epoch", "iteration", "lr", "train_loss", "train_err", "test_loss", "test_err", "epoch_seconds", "images_per_sec"];
pub const VAL_COLUMNS: [&str; 2] = ["val_loss", "val_err"];
/// With `--log-grad-norms`: mean ‖∂L/∂x‖ at the network's input and each stage's input.
pub const GRAD_NORM_COLUMNS: [&str; 4] =
    ["grad_norm_input", "grad_norm_stage1", "grad_norm_stage2", "grad_norm_stage3"];

#[derive(Debug, Clone, PartialEq)]
pub struct EpochMetrics {
    pub epoch: i64,
    /// Iterations done at the end of this epoch.
    pub iteration: i64,
    /// Learning rate of the epoch's last iteration.
    pub lr: f64,
    pub train_loss: f64,
    pub train_err: f64,
    pub test_loss: f64,
    pub test_err: f64,
    pub epoch_seconds: f64,
    pub images_per_sec: f64,
    /// (loss, error) on the validation split, when there is one.
    pub val: Option<(f64, f64)>,
    /// Epoch means of ‖∂L/∂x‖ at [`GRAD_NORM_COLUMNS`], with `--log-grad-norms`.
    pub grad_norms: Option<Vec<f64>>,
}

impl EpochMetrics {
    fn record(&self) -> Vec<String> {
        let mut r = vec![
            self.epoch.to_string(),
            self.iteration.to_string(),
            format!("{}", self.lr),
            format!("{:.6}", self.train_loss),
            format!("{:.4}", self.train_err),
            format!("{:.6}", self.test_loss),
            format!("{:.4}", self.test_err),
            format!("{:.3}", self.epoch_seconds),
            format!("{:.1}", self.images_per_sec),
        ];
        if let Some((l, e)) = self.val {
            r.push(format!("{l:.6}"));
            r.push(format!("{e:.4}"));
        }
        for g in self.grad_norms.iter().flatten() {
            r.push(format!("{g:e}"));
        }
        r
    }
}

pub struct MetricsWriter {
    writer: csv::Writer<File>,
    path: std::path::PathBuf,
}

impl MetricsWriter {
    /// Creates `path` with its header; `with_val` adds the validation columns,
    /// `with_grad_norms` the gradient-norm columns.
    pub fn create(path: &Path, with_val: bool, with_grad_norms: bool) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let writer = csv::Writer::from_writer(file);
        let mut header: Vec<&str> = COLUMNS.to_vec();
        if with_val {
            header.extend(VAL_COLUMNS);
        }
        if with_grad_norms {
            header.extend(GRAD_NORM_COLUMNS);
        }
        let mut w = MetricsWriter { writer, path: path.to_path_buf() };
        w.writer.write_record(&header).map_err(|e| w.err(e))?;
        w.writer.flush().map_err(|e| Error::io(&w.path, e))?;
        Ok(w)
    }

    fn err(&self, e: csv::Error) -> Error {
        Error::io(&self.path, std::io::Error::other(e))
    }

    /// Appends one row and flushes it to disk.
    pub fn write(&mut self, m: &EpochMetrics) -> Result<()> {
        self.writer.write_record(m.record()).map_err(|e| self.err(e))?;
        self.writer.flush().map_err(|e| Error::io(&self.path, e))
    }
}
