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

    /// Continues `path` after a resume from a checkpoint taken at the end of epoch
    /// `epochs_done`: rows of later epochs (written before a kill, after the checkpoint)
    /// are dropped, so that no row is duplicated or missing. Returns the kept rows.
    pub fn resume(path: &Path, epochs_done: i64) -> Result<(Self, Vec<EpochMetrics>)> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |m: String| Error::data(path, format!("{m}: cannot continue this metrics.csv"));
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().ok_or_else(|| bad("empty file".into()))?.split(',').collect();
        if header[..COLUMNS.len().min(header.len())] != COLUMNS[..] {
            return Err(bad("unexpected header".into()));
        }
        let col = |name: &str| header.iter().position(|h| *h == name);
        let mut kept = vec![header.join(",")];
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let f: Vec<&str> = line.split(',').collect();
            let num = |c: Option<usize>| -> Result<f64> {
                c.and_then(|c| f.get(c))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad(format!("row {} is malformed", i + 1)))
            };
            let epoch = num(col("epoch"))? as i64;
            if epoch > epochs_done {
                continue;
            }
            let opt = |name: &str| num(col(name)).ok();
            rows.push(EpochMetrics {
                epoch,
                iteration: num(col("iteration"))? as i64,
                lr: num(col("lr"))?,
                train_loss: num(col("train_loss"))?,
                train_err: num(col("train_err"))?,
                test_loss: num(col("test_loss"))?,
                test_err: num(col("test_err"))?,
                epoch_seconds: num(col("epoch_seconds"))?,
                images_per_sec: num(col("images_per_sec"))?,
                val: opt("val_loss").zip(opt("val_err")),
                grad_norms: GRAD_NORM_COLUMNS.iter().map(|c| opt(c)).collect(),
            });
            kept.push(line.to_string());
        }
        let mut body = kept.join("\n");
        body.push('\n');
        crate::checkpoint::write_atomic(path, body.as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        let writer = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        Ok((MetricsWriter { writer, path: path.to_path_buf() }, rows))
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
