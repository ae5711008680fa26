//! `resnet-cifar eval`: top-1 error, per-class accuracy and the confusion matrix, as text
//! or as one JSON object.

use std::fmt::Write;

use serde_json::json;

use crate::evaluate::Evaluation;
use crate::model::ResNetConfig;
use crate::normalize::Normalization;

/// What the report says about where the numbers come from.
pub struct ReportContext<'a> {
    pub checkpoint: &'a str,
    pub data_dir: &'a str,
    pub model: ResNetConfig,
    pub normalization: Normalization,
    pub classes: &'a [String],
}

fn per_class(e: &Evaluation) -> Vec<f64> {
    let m = Vec::<Vec<i64>>::try_from(&e.confusion).expect("a square confusion matrix");
    m.iter()
        .enumerate()
        .map(|(i, row)| {
            let total: i64 = row.iter().sum();
            100.0 * row[i] as f64 / total.max(1) as f64
        })
        .collect()
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
    let _ = writeln!(s, "test set: {} ({} images)", ctx.data_dir, e.images);
    let _ = writeln!(s, "top-1 error {:.2}%  accuracy {:.2}%  loss {:.4}", e.error, e.accuracy(), e.loss);
    let _ = writeln!(s, "per-class accuracy:");
    for (name, acc) in ctx.classes.iter().zip(per_class(e)) {
        let _ = writeln!(s, "  {name:<11} {acc:6.2}%");
    }
    let _ = writeln!(s, "confusion matrix (rows: true class, columns: predicted):");
    let short: Vec<String> = ctx.classes.iter().map(|c| c.chars().take(5).collect()).collect();
    let _ = writeln!(s, "{:<11}{}", "", short.iter().map(|c| format!("{c:>6}")).collect::<String>());
    let m = Vec::<Vec<i64>>::try_from(&e.confusion).expect("a square confusion matrix");
    for (name, row) in ctx.classes.iter().zip(m) {
        let _ = writeln!(s, "{name:<11}{}", row.iter().map(|v| format!("{v:>6}")).collect::<String>());
    }
    s
}

pub fn json(ctx: &ReportContext, e: &Evaluation) -> serde_json::Value {
    let per: serde_json::Map<String, serde_json::Value> =
        ctx.classes.iter().cloned().zip(per_class(e).into_iter().map(|a| json!(a))).collect();
    json!({
        "checkpoint": ctx.checkpoint,
        "data_dir": ctx.data_dir,
        "arch": ctx.model.arch.to_string(),
        "depth": ctx.model.depth,
        "shortcut": ctx.model.shortcut.to_string(),
        "block": ctx.model.block().to_string(),
        "normalization": ctx.normalization.to_string(),
        "images": e.images,
        "top1_error": e.error,
        "accuracy": e.accuracy(),
        "loss": e.loss,
        "classes": ctx.classes,
        "per_class_accuracy": per,
        "confusion": Vec::<Vec<i64>>::try_from(&e.confusion).expect("a square confusion matrix"),
    })
}
