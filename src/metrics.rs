//! `metrics.csv`: one row per epoch, flushed as soon as it is written, errors in percent.
//! [`EpochMetrics`] is its one row type, written by [`MetricsWriter`] and read by [`read`]
//! (resume, plot, the study), both through the csv crate.

use std::fs::File;
use std::path::Path;

use serde::Deserialize;

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
        let bad = |m: String| Error::data(path, format!("{m}: cannot continue this metrics.csv"));
        let header = read_header(path)?;
        let with_val = VAL_COLUMNS.iter().all(|c| header.iter().any(|h| h == c));
        let with_grad_norms = GRAD_NORM_COLUMNS.iter().all(|c| header.iter().any(|h| h == c));
        if header.len() < COLUMNS.len() || header[..COLUMNS.len()] != COLUMNS {
            return Err(bad("unexpected header".into()));
        }
        let rows: Vec<EpochMetrics> = read_rows(path)?.into_iter().filter(|r| r.epoch <= epochs_done).collect();
        // Rewritten whole, then appended to: a temporary file renamed over the old one.
        let tmp = path.with_extension("csv.tmp");
        {
            let mut w = MetricsWriter::create(&tmp, with_val, with_grad_norms)?;
            for r in &rows {
                w.write(r)?;
            }
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
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

/// A row as the file spells it: the optional columns may be absent.
#[derive(Deserialize)]
struct Raw {
    epoch: i64,
    iteration: i64,
    lr: f64,
    train_loss: f64,
    train_err: f64,
    test_loss: f64,
    test_err: f64,
    epoch_seconds: f64,
    images_per_sec: f64,
    #[serde(default)]
    val_loss: Option<f64>,
    #[serde(default)]
    val_err: Option<f64>,
    #[serde(default)]
    grad_norm_input: Option<f64>,
    #[serde(default)]
    grad_norm_stage1: Option<f64>,
    #[serde(default)]
    grad_norm_stage2: Option<f64>,
    #[serde(default)]
    grad_norm_stage3: Option<f64>,
}

impl From<Raw> for EpochMetrics {
    fn from(r: Raw) -> Self {
        let norms = [r.grad_norm_input, r.grad_norm_stage1, r.grad_norm_stage2, r.grad_norm_stage3];
        EpochMetrics {
            epoch: r.epoch,
            iteration: r.iteration,
            lr: r.lr,
            train_loss: r.train_loss,
            train_err: r.train_err,
            test_loss: r.test_loss,
            test_err: r.test_err,
            epoch_seconds: r.epoch_seconds,
            images_per_sec: r.images_per_sec,
            val: r.val_loss.zip(r.val_err),
            grad_norms: norms.into_iter().collect(),
        }
    }
}

fn read_header(path: &Path) -> Result<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| Error::data(path, format!("cannot open: {e}")))?;
    let header = reader.headers().map_err(|e| Error::data(path, format!("cannot read the header: {e}")))?;
    Ok(header.iter().map(String::from).collect())
}

/// Every row of a `metrics.csv` (possibly none); an error names the file, the line and
/// the column. "NaN" reads as a number, so a diverged run's file still loads.
fn read_rows(path: &Path) -> Result<Vec<EpochMetrics>> {
    let header = read_header(path)?;
    if let Some(missing) = COLUMNS.iter().find(|c| !header.iter().any(|h| h == *c)) {
        return Err(Error::data(path, format!("missing column `{missing}` in header")));
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| Error::data(path, format!("cannot open: {e}")))?;
    let mut rows = Vec::new();
    for (i, row) in reader.deserialize::<Raw>().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| {
            let what = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => {
                    let column = err.field().and_then(|f| header.get(f as usize)).map_or("?", |c| c.as_str());
                    format!("column `{column}`: {}", err.kind())
                }
                other => format!("{other:?}").split_whitespace().collect::<Vec<_>>().join(" "),
            };
            Error::data(path, format!("line {line}: {what}"))
        })?;
        rows.push(row.into());
    }
    Ok(rows)
}

/// The rows of a `metrics.csv`, at least one.
pub fn read(path: &Path) -> Result<Vec<EpochMetrics>> {
    let rows = read_rows(path)?;
    if rows.is_empty() {
        return Err(Error::data(path, "no data rows"));
    }
    Ok(rows)
}
