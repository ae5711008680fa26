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

/// The header of a `metrics.csv` with the validation and gradient-norm columns asked for.
fn columns(with_val: bool, with_grad_norms: bool) -> Vec<&'static str> {
    let mut columns: Vec<&str> = COLUMNS.to_vec();
    if with_val {
        columns.extend(VAL_COLUMNS);
    }
    if with_grad_norms {
        columns.extend(GRAD_NORM_COLUMNS);
    }
    columns
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
        let mut w = MetricsWriter { writer, path: path.to_path_buf() };
        w.writer.write_record(columns(with_val, with_grad_norms)).map_err(|e| w.err(e))?;
        w.writer.flush().map_err(|e| Error::io(&w.path, e))?;
        Ok(w)
    }

    /// Continues `path` after a resume from a checkpoint taken at the end of epoch
    /// `epochs_done`: rows of later epochs (written before a kill, after the checkpoint)
    /// are dropped, so that no row is duplicated or missing. The kept rows must be epochs
    /// 1..=`epochs_done`, each once, in order, with the columns the run writes (`layout`);
    /// a missing row cannot be restored and is an error, and nothing is written then.
    /// Returns the kept rows.
    pub fn resume(path: &Path, epochs_done: i64, layout: Layout) -> Result<(Self, Vec<EpochMetrics>)> {
        let bytes = crate::files::read(path)?;
        let (header, rows) = parse(&bytes, path)?;
        let rows = check_resumable(&header, rows, epochs_done, layout)
            .map_err(|m| Error::data(path, format!("cannot continue this file: {m}")))?;
        let Layout { with_val, with_grad_norms } = layout;
        // Rewritten whole (atomically), then appended to.
        let mut kept = csv::Writer::from_writer(Vec::new());
        let csv_error = |e: csv::Error| Error::io(path, std::io::Error::other(e));
        kept.write_record(columns(with_val, with_grad_norms)).map_err(csv_error)?;
        for r in &rows {
            kept.write_record(r.record()).map_err(csv_error)?;
        }
        let bytes = kept.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
        crate::files::write_atomic(path, &bytes)?;
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

/// The optional column groups of a run's `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub with_val: bool,
    pub with_grad_norms: bool,
}

/// The rows of epochs 1..=`epochs_done` of a file with `header`, checked to be exactly
/// those, in order, under the columns `layout` asks for; the error says what is wrong.
pub fn check_resumable(
    header: &[String],
    rows: Vec<EpochMetrics>,
    epochs_done: i64,
    layout: Layout,
) -> std::result::Result<Vec<EpochMetrics>, String> {
    let mut expected: Vec<&str> = COLUMNS.to_vec();
    if layout.with_val {
        expected.extend(VAL_COLUMNS);
    }
    if layout.with_grad_norms {
        expected.extend(GRAD_NORM_COLUMNS);
    }
    if header != expected.as_slice() {
        return Err(format!("the header is not the run's ({})", expected.join(",")));
    }
    let rows: Vec<EpochMetrics> = rows.into_iter().filter(|r| r.epoch <= epochs_done).collect();
    for (i, row) in rows.iter().enumerate() {
        let want = i as i64 + 1;
        if row.epoch != want {
            return Err(format!("line {} holds epoch {} where epoch {want} belongs", i + 2, row.epoch));
        }
        if i > 0 && row.iteration <= rows[i - 1].iteration {
            return Err(format!(
                "line {}: iteration {} does not follow {}",
                i + 2,
                row.iteration,
                rows[i - 1].iteration
            ));
        }
    }
    if rows.len() as i64 != epochs_done.max(0) {
        return Err(format!(
            "the checkpoint is at the end of epoch {epochs_done}, but the file holds rows for {} epochs: the rows \
             of epochs {}–{epochs_done} are lost and cannot be restored; start the run again with another --out",
            rows.len(),
            rows.len() + 1
        ));
    }
    Ok(rows)
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

/// Parses the bytes of a `metrics.csv` (`path` names it in errors): its header and every
/// row (possibly none); an error names the line and the column. "NaN" reads as a number,
/// so a diverged run's file still loads.
pub fn parse(bytes: &[u8], path: &Path) -> Result<(Vec<String>, Vec<EpochMetrics>)> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| Error::data(path, format!("cannot read the header: {}", crate::files::printable(&e.to_string()))))?
        .iter()
        .map(String::from)
        .collect();
    if let Some(missing) = COLUMNS.iter().find(|c| !header.iter().any(|h| h == *c)) {
        return Err(Error::data(path, format!("missing column `{missing}` in header")));
    }
    let mut rows = Vec::new();
    for (i, row) in reader.deserialize::<Raw>().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| {
            let what = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => {
                    let column = err.field().and_then(|f| header.get(f as usize)).map_or("?", |c| c.as_str());
                    format!("column `{column}`: {}", err.kind())
                }
                other => crate::error::one_line(&format!("{other:?}")),
            };
            Error::data(path, format!("line {line}: {}", crate::files::printable(&what)))
        })?;
        rows.push(row.into());
    }
    Ok((header, rows))
}

/// The rows of a `metrics.csv` (a regular file only), at least one.
pub fn read(path: &Path) -> Result<Vec<EpochMetrics>> {
    let (_, rows) = parse(&crate::files::read(path)?, path)?;
    if rows.is_empty() {
        return Err(Error::data(path, "no data rows"));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: i64, iteration: i64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            iteration,
            lr: 0.1,
            train_loss: 2.0,
            train_err: 80.0,
            test_loss: 2.0,
            test_err: 80.0,
            epoch_seconds: 1.0,
            images_per_sec: 1.0,
            val: None,
            grad_norms: None,
        }
    }

    #[test]
    fn a_resumed_file_must_hold_every_epoch_once_in_order() {
        let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
        let plain = Layout { with_val: false, with_grad_norms: false };
        let rows = vec![row(1, 2), row(2, 4), row(3, 6)];
        assert_eq!(check_resumable(&header, rows.clone(), 2, plain).unwrap(), rows[..2]);
        let e = check_resumable(&header, Vec::new(), 1, plain).unwrap_err();
        assert!(e.contains("rows of epochs 1–1 are lost"), "{e}");
        let e = check_resumable(&header, vec![row(2, 4)], 2, plain).unwrap_err();
        assert!(e.contains("line 2 holds epoch 2 where epoch 1 belongs"), "{e}");
        let e = check_resumable(&header, vec![row(1, 4), row(2, 4)], 2, plain).unwrap_err();
        assert!(e.contains("iteration 4 does not follow 4"), "{e}");
        let e = check_resumable(&header, rows, 2, Layout { with_val: true, with_grad_norms: false }).unwrap_err();
        assert!(e.contains("the header is not the run's"), "{e}");
    }

    #[test]
    fn parsing_names_the_line_and_column() {
        let text = format!("{}\n1,2,0.1,2,80,2,80,1,x\n", COLUMNS.join(","));
        let e = parse(text.as_bytes(), Path::new("m.csv")).unwrap_err().to_string();
        assert!(e.contains("m.csv: line 2: column `images_per_sec`"), "{e}");
        let e = parse(b"epoch\n", Path::new("m.csv")).unwrap_err().to_string();
        assert!(e.contains("missing column `iteration`"), "{e}");
    }
}
