//! The evaluation report of a checkpoint (`resnet-cifar eval`): top-1 error, per-class
//! accuracy and the confusion matrix, as text or as one JSON object ([`Scores`]); with more
//! than ten classes (CIFAR-100) also the top-5 error, overall and per class. The scores of
//! a checkpoint in a run directory are also saved beside it ([`save_scores`],
//! `best.eval.json` for `best.safetensors`), for the HTML report, which reads them back
//! through the same [`Scores`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{DataSource, Dataset, Part};
use crate::error::{Error, Result};
use crate::evaluate::{evaluate, Evaluation};
use crate::inference::{class_names, LoadedModel};
use crate::model::ResNetConfig;
use crate::normalize::{Normalization, Normalizer};

/// Classes up to which the text shows the confusion matrix (CIFAR-100's coarse 20; its
/// fine 100 only in the JSON).
const TEXT_CONFUSION_MAX: usize = 20;

/// What the report says about where the numbers come from.
pub struct ReportContext<'a> {
    pub checkpoint: &'a str,
    pub data_dir: &'a str,
    pub dataset: Dataset,
    pub model: ResNetConfig,
    pub normalization: Normalization,
    pub classes: &'a [String],
}

impl ReportContext<'_> {
    /// Whether to report the top-5 error too (CIFAR-100).
    fn top5(&self) -> bool {
        self.classes.len() > 10
    }
}

/// Percent of each true class's images that `correct` counts.
fn per_class(e: &Evaluation, correct: &[i64]) -> Vec<f64> {
    let m = Vec::<Vec<i64>>::try_from(&e.confusion).expect("a square confusion matrix");
    m.iter()
        .zip(correct)
        .map(|(row, c)| {
            let total: i64 = row.iter().sum();
            100.0 * *c as f64 / total.max(1) as f64
        })
        .collect()
}

fn top1_correct(e: &Evaluation) -> Vec<i64> {
    Vec::<i64>::try_from(e.confusion.diagonal(0, 0, 1)).expect("a diagonal")
}

fn top5_correct(e: &Evaluation) -> Vec<i64> {
    Vec::<i64>::try_from(&e.top5_correct).expect("per-class counts")
}

pub fn text(ctx: &ReportContext, e: &Evaluation) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} ({}), normalization {}",
        ctx.checkpoint,
        ctx.model.name(),
        ctx.model.design(),
        ctx.normalization
    );
    let _ = writeln!(s, "test set: {} images of {} in {}", e.images, ctx.dataset, ctx.data_dir);
    let _ = writeln!(s, "top-1 error {:.2}%  accuracy {:.2}%  loss {:.4}", e.error, e.accuracy(), e.loss);
    let width = ctx.classes.iter().map(|c| c.chars().count() + 1).max().unwrap_or(0).max(11);
    let top1 = per_class(e, &top1_correct(e));
    if ctx.top5() {
        let _ = writeln!(s, "top-5 error {:.2}%", e.top5_error());
        let _ = writeln!(s, "per-class accuracy (top-1, top-5):");
        for ((name, acc), acc5) in ctx.classes.iter().zip(top1).zip(per_class(e, &top5_correct(e))) {
            let _ = writeln!(s, "  {name:<width$} {acc:6.2}%  {acc5:6.2}%");
        }
    } else {
        let _ = writeln!(s, "per-class accuracy:");
        for (name, acc) in ctx.classes.iter().zip(top1) {
            let _ = writeln!(s, "  {name:<width$} {acc:6.2}%");
        }
    }
    if ctx.classes.len() > TEXT_CONFUSION_MAX {
        let n = ctx.classes.len();
        let _ = writeln!(s, "confusion matrix: {n}×{n}, in the JSON output");
        return s;
    }
    let _ = writeln!(s, "confusion matrix (rows: true class, columns: predicted):");
    let short: Vec<String> = ctx.classes.iter().map(|c| c.chars().take(5).collect()).collect();
    let _ = writeln!(s, "{:<width$}{}", "", short.iter().map(|c| format!("{c:>6}")).collect::<String>());
    let m = Vec::<Vec<i64>>::try_from(&e.confusion).expect("a square confusion matrix");
    for (name, row) in ctx.classes.iter().zip(m) {
        let _ = writeln!(s, "{name:<width$}{}", row.iter().map(|v| format!("{v:>6}")).collect::<String>());
    }
    s
}

/// The scores of evaluation `e`, as `eval --json` prints them and `*.eval.json` holds them.
pub fn scores(ctx: &ReportContext, e: &Evaluation) -> Scores {
    let by_class = |correct: Vec<i64>| -> BTreeMap<String, f64> {
        ctx.classes.iter().cloned().zip(per_class(e, &correct)).collect()
    };
    Scores {
        checkpoint: ctx.checkpoint.to_string(),
        data_dir: ctx.data_dir.to_string(),
        dataset: ctx.dataset.name().to_string(),
        labels: ctx.dataset.labels().map(|l| l.to_string()),
        arch: ctx.model.arch.to_string(),
        depth: ctx.model.depth,
        shortcut: ctx.model.shortcut.to_string(),
        block: ctx.model.block().to_string(),
        normalization: ctx.normalization.to_string(),
        images: e.images,
        top1_error: e.error,
        top5_error: e.top5_error(),
        accuracy: e.accuracy(),
        loss: e.loss,
        classes: ctx.classes.to_vec(),
        per_class_accuracy: by_class(top1_correct(e)),
        per_class_top5_accuracy: by_class(top5_correct(e)),
        confusion: Vec::<Vec<i64>>::try_from(&e.confusion).expect("a square confusion matrix"),
    }
}

/// Evaluates a loaded checkpoint on the test set of `data` (its first `limit_test` images):
/// the evaluation and the class names.
pub fn score(
    loaded: &LoadedModel,
    normalizer: &Normalizer,
    data: &DataSource,
    limit_test: Option<usize>,
) -> Result<(Evaluation, Vec<String>)> {
    let test = data.load_split(Part::Test, limit_test)?.to_device(loaded.vs.device());
    let eval = evaluate(&loaded.model, &test, normalizer);
    if !eval.loss.is_finite() {
        return Err(Error::checkpoint(
            &loaded.checkpoint.path,
            format!(
                "the test loss is {}: the network's outputs are not finite, so no accuracy is reported; its \
                 weights or normalization are broken, use another checkpoint",
                eval.loss
            ),
        ));
    }
    Ok((eval, class_names(&loaded.checkpoint, data)?))
}

/// Where the scores of `checkpoint` are saved: `<stem>.eval.json` beside it.
pub fn scores_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    checkpoint.with_file_name(format!("{stem}.eval.json"))
}

/// Saves the [`Scores`] of `checkpoint` at [`scores_path`] when it lies in a run directory
/// (one with a `config.json`); returns where.
pub fn save_scores(checkpoint: &Path, scores: &Scores) -> Result<Option<PathBuf>> {
    let in_run = checkpoint.parent().is_some_and(|d| d.join("config.json").is_file());
    if !in_run {
        return Ok(None);
    }
    let path = scores_path(checkpoint);
    let text = serde_json::to_string_pretty(scores).expect("scores serialise");
    crate::files::write_atomic(&path, text.as_bytes())?;
    Ok(Some(path))
}

/// An evaluation's scores: what `eval --json` prints and `*.eval.json` holds, written and
/// read only through this type. Fields that older files may lack default to empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub checkpoint: String,
    #[serde(default)]
    pub data_dir: String,
    /// `cifar10` or `cifar100`.
    pub dataset: String,
    /// CIFAR-100's `fine` or `coarse`; `None` for CIFAR-10.
    #[serde(default)]
    pub labels: Option<String>,
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub depth: i64,
    #[serde(default)]
    pub shortcut: String,
    #[serde(default)]
    pub block: String,
    #[serde(default)]
    pub normalization: String,
    pub images: i64,
    /// Percent.
    pub top1_error: f64,
    pub top5_error: f64,
    #[serde(default)]
    pub accuracy: f64,
    pub loss: f64,
    pub classes: Vec<String>,
    /// Percent of each class's images classified correctly (top-1), by class name.
    #[serde(default)]
    pub per_class_accuracy: BTreeMap<String, f64>,
    /// The same for the top-5 guesses.
    #[serde(default)]
    pub per_class_top5_accuracy: BTreeMap<String, f64>,
    /// Rows: true class, columns: predicted class.
    pub confusion: Vec<Vec<i64>>,
}

impl Scores {
    /// Reads a saved evaluation; a malformed one is an error naming the file and the field.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = crate::files::read(path)?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let s: Scores = serde_path_to_error::deserialize(de).map_err(|e| Error::data(path, e.to_string()))?;
        let n = s.classes.len();
        if n == 0 || s.confusion.len() != n || s.confusion.iter().any(|r| r.len() != n) {
            return Err(Error::data(path, format!("the confusion matrix is not {n} × {n}, one row per class")));
        }
        Ok(s)
    }

    /// Per class, the percentage of its test images classified correctly.
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(i, row)| 100.0 * row[i] as f64 / row.iter().sum::<i64>().max(1) as f64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_trip_and_files_of_the_old_eight_fields_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"checkpoint": "run/best.safetensors", "dataset": "cifar10", "images": 4,
            "top1_error": 25.0, "top5_error": 0.0, "loss": 0.5, "classes": ["cat", "dog"],
            "confusion": [[2, 0], [1, 1]]}"#;
        let path = dir.path().join("best.eval.json");
        std::fs::write(&path, old).unwrap();
        let s = Scores::read(&path).unwrap();
        assert_eq!((s.images, s.labels.as_deref(), s.depth), (4, None, 0));
        assert_eq!(s.per_class_accuracy(), [100.0, 50.0]);

        let full = Scores {
            data_dir: "data".into(),
            labels: Some("fine".into()),
            arch: "resnet".into(),
            depth: 20,
            per_class_accuracy: BTreeMap::from([("cat".into(), 100.0), ("dog".into(), 50.0)]),
            ..s
        };
        std::fs::write(&path, serde_json::to_string_pretty(&full).unwrap()).unwrap();
        assert_eq!(Scores::read(&path).unwrap(), full);
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 18, "every field is in the file: {json}");

        std::fs::write(&path, r#"{"checkpoint": "x", "dataset": "cifar10"}"#).unwrap();
        let e = Scores::read(&path).unwrap_err().to_string();
        assert!(e.contains("best.eval.json") && e.contains("images"), "{e}");
    }
}
