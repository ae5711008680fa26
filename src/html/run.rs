//! The report of one run directory (or of several, compared): what [`RunReport::read`]
//! finds in it — `config.json`, `metrics.csv`, and the `*.eval.json` scores that `eval`
//! saved beside a checkpoint — drawn as HTML.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{cards, escape, figure, pct, table};
use crate::error::{Error, Result};
use crate::eval_report::{scores_path, Scores};
use crate::metrics::EpochMetrics;
use crate::train::RunFile;
use crate::viz::confusion::confusion_matrix;
use crate::viz::curves::{self, Metric, PlotOptions, Series};

/// Everything a run directory holds for the report.
pub struct RunReport {
    pub dir: PathBuf,
    /// The name in headings and legends.
    pub name: String,
    pub config: RunFile,
    pub rows: Vec<EpochMetrics>,
    /// Saved evaluations, `best` first.
    pub scores: Vec<Scores>,
}

impl RunReport {
    /// Reads the run in `dir`; a directory that holds no run is an error saying so.
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.join("config.json").exists() || !dir.join("metrics.csv").exists() {
            return Err(Error::NotARun { dir: dir.to_path_buf() });
        }
        let config = RunFile::read(dir)?;
        // metrics.csv, read once, with the run's name (`resnet-56/seed-1` in a study).
        let Series { name, rows } = curves::read_run(dir)?;
        let mut scores = Vec::new();
        for name in ["best.safetensors", "last.safetensors"] {
            let path = scores_path(&dir.join(name));
            if path.is_file() {
                scores.push(Scores::read(&path)?);
            }
        }
        Ok(RunReport { dir: dir.to_path_buf(), name, config, rows, scores })
    }

    fn last(&self) -> &EpochMetrics {
        self.rows.last().expect("metrics::read returns at least one row")
    }

    fn best_test_err(&self) -> f64 {
        self.rows.iter().map(|r| r.test_err).fold(f64::INFINITY, f64::min)
    }

    /// The network's name, e.g. `resnet-56 (shortcut A)`.
    fn net(&self) -> String {
        let c = &self.config;
        format!("{}-{} ({} shortcut {})", c.model.arch, c.model.depth, c.data.dataset, c.model.shortcut)
    }

    /// The run's section.
    pub fn html(&self, out: &mut String) -> Result<()> {
        let last = self.last();
        let _ = writeln!(out, "<section class=\"run\"><h2>{}</h2>", escape(&self.name));
        let _ = writeln!(
            out,
            "<p class=\"meta\">{} · {} parameters · {} in {} · {}</p>",
            escape(&self.net()),
            self.config.outcome.parameters,
            escape(&self.config.machine.device),
            escape(&self.config.compute.precision.to_string()),
            escape(&self.dir.display().to_string())
        );
        cards(
            out,
            &[
                ("final test error", pct(last.test_err), "final-test-error".into()),
                ("best test error", pct(self.best_test_err()), "best-test-error".into()),
                ("final training error", pct(last.train_err), "final-train-error".into()),
                ("epochs / iterations", format!("{} / {}", last.epoch, last.iteration), "progress".into()),
            ],
        );
        self.curves(out)?;
        for s in &self.scores {
            scores_html(out, s)?;
        }
        let _ = writeln!(out, "<details><summary>Per-epoch table ({} epochs)</summary>", self.rows.len());
        epoch_table(out, &self.rows);
        out.push_str("</details>\n<details><summary>Configuration (config.json)</summary>\n");
        config_table(out, &self.config);
        out.push_str("</details>\n</section>\n");
        Ok(())
    }

    fn curves(&self, out: &mut String) -> Result<()> {
        let series = [Series { name: self.name.clone(), rows: self.rows.clone() }];
        learning_curves(out, &series)
    }
}

/// Fig. 6-style curves of `series`: error and loss by iteration, training dashed.
fn learning_curves(out: &mut String, series: &[Series]) -> Result<()> {
    let top = series.iter().flat_map(|s| &s.rows).flat_map(|r| [r.train_err, r.test_err]).fold(0.0, f64::max);
    let ymax = (top * 1.1).clamp(1.0, 100.0);
    let error = PlotOptions { ymax: Some(ymax), width: 900, height: 480, ..Default::default() };
    figure(out, "Error (%) by iteration: training dashed, test bold (as Fig. 6).", |svg| {
        curves::plot(series, svg, &error)
    })?;
    let loss = PlotOptions { metric: Metric::Loss, width: 900, height: 420, ..Default::default() };
    figure(out, "Loss by iteration: training dashed, test bold.", |svg| curves::plot(series, svg, &loss))
}

/// A saved evaluation: top-1 (and top-5) error, per-class accuracy, the confusion heat map.
fn scores_html(out: &mut String, s: &Scores) -> Result<()> {
    let _ = writeln!(out, "<h3>Evaluation of {}</h3>", escape(&s.checkpoint));
    let mut items = vec![
        ("top-1 error", pct(s.top1_error), "eval-top1-error".to_string()),
        ("test images", s.images.to_string(), "eval-images".to_string()),
    ];
    if s.classes.len() > 10 {
        items.push(("top-5 error", pct(s.top5_error), "eval-top5-error".into()));
    }
    cards(out, &items);
    let rows: Vec<Vec<String>> = s
        .classes
        .iter()
        .zip(s.per_class_accuracy())
        .zip(&s.confusion)
        .map(|((c, a), row)| vec![c.clone(), format!("{a:.2}"), row.iter().sum::<i64>().to_string()])
        .collect();
    out.push_str("<details><summary>Per-class accuracy</summary>\n");
    table(out, &["class", "accuracy (%)", "images"], &rows, 1);
    out.push_str("</details>\n");
    let title = format!("{}: confusion matrix", s.dataset);
    figure(out, "Confusion matrix: each row is a true class, in % of its images.", |svg| {
        confusion_matrix(svg, &title, &s.classes, &s.confusion)
    })
}

/// The rows of `metrics.csv`.
fn epoch_table(out: &mut String, rows: &[EpochMetrics]) {
    let with_val = rows.iter().any(|r| r.val.is_some());
    let mut header = vec!["epoch", "iteration", "lr", "train loss", "train err (%)", "test loss", "test err (%)"];
    if with_val {
        header.extend(["val loss", "val err (%)"]);
    }
    header.extend(["seconds", "images/s"]);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.epoch.to_string(),
                r.iteration.to_string(),
                format!("{}", r.lr),
                format!("{:.4}", r.train_loss),
                format!("{:.2}", r.train_err),
                format!("{:.4}", r.test_loss),
                format!("{:.2}", r.test_err),
            ];
            if with_val {
                let (l, e) = r.val.unwrap_or((f64::NAN, f64::NAN));
                c.extend([format!("{l:.4}"), format!("{e:.2}")]);
            }
            c.extend([format!("{:.1}", r.epoch_seconds), format!("{:.0}", r.images_per_sec)]);
            c
        })
        .collect();
    table(out, &header, &cells, 0);
}

/// `config.json`, one setting a row, named by its path (`schedule.lr`).
fn config_table(out: &mut String, config: &RunFile) {
    fn rows(prefix: &str, value: &serde_json::Value, out: &mut Vec<Vec<String>>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (k, v) in fields {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    rows(&path, v, out);
                }
            }
            serde_json::Value::String(s) => out.push(vec![prefix.to_string(), s.clone()]),
            other => out.push(vec![prefix.to_string(), other.to_string()]),
        }
    }
    let mut table_rows = Vec::new();
    rows("", &serde_json::to_value(config).expect("a run file serialises"), &mut table_rows);
    table(out, &["setting", "value"], &table_rows, 2);
}

/// Several runs side by side: a summary table and their curves in one figure.
pub(super) fn comparison(out: &mut String, runs: &[RunReport]) -> Result<()> {
    out.push_str("<section class=\"comparison\"><h2>Runs compared</h2>\n");
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let last = r.last();
            vec![
                r.name.clone(),
                r.net(),
                last.epoch.to_string(),
                format!("{:.2}", last.train_err),
                format!("{:.2}", last.test_err),
                format!("{:.2}", r.best_test_err()),
            ]
        })
        .collect();
    table(
        out,
        &["run", "network", "epochs", "final train err (%)", "final test err (%)", "best test err (%)"],
        &rows,
        2,
    );
    let series: Vec<Series> = runs.iter().map(|r| Series { name: r.name.clone(), rows: r.rows.clone() }).collect();
    learning_curves(out, &series)?;
    out.push_str("</section>\n");
    Ok(())
}
