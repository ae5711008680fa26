//! Learning curves from `metrics.csv`, drawn like Fig. 6 of He et al., "Deep Residual
//! Learning for Image Recognition" (2015): error (%) against iterations on CIFAR-10, with
//! a thin dashed line for training error and a bold line for test error, one colour per run.
//!
//! Output is PNG or SVG, chosen by the file's extension. Text is drawn with DejaVu Sans
//! compiled into the binary (crate `dejavu`), so a machine without system fonts works too.

use std::path::Path;

use crate::error::{Error, Result};

use crate::viz::figure::{check_size, line_chart, Line, Panel, Target};

crate::text::value_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum XAxis: "x axis" {
        #[default]
        Iterations => "iterations",
        Epochs => "epochs",
    }
}

crate::text::value_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum Metric: "metric" {
        #[default]
        Error => "error",
        Loss => "loss",
    }
}

#[derive(Debug, Clone)]
pub struct PlotOptions {
    pub x: XAxis,
    pub metric: Metric,
    /// Top of the y axis; `None`: 20 (%) for error, the largest loss × 1.05 for loss.
    pub ymax: Option<f64>,
    pub title: Option<String>,
    pub width: u32,
    pub height: u32,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions { x: XAxis::Iterations, metric: Metric::Error, ymax: None, title: None, width: 900, height: 600 }
    }
}

/// One run's curves, named in the legend.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub rows: Vec<Row>,
}

/// A row of `metrics.csv`.
pub type Row = crate::metrics::EpochMetrics;

/// Reads a `metrics.csv` (at least one row); every error message is one line that names the file.
pub fn read_metrics(path: &Path) -> Result<Vec<Row>> {
    crate::metrics::read(path)
}

/// Reads `dir/metrics.csv`; the series is named after the directory (`resnet-56/seed-1`
/// for a cell of a study grid).
pub fn read_run(dir: &Path) -> Result<Series> {
    let full = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let base = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = match (base(&full), full.parent().and_then(base)) {
        (Some(seed), Some(net)) if seed.starts_with("seed-") => format!("{net}/{seed}"),
        (Some(n), _) => n,
        (None, _) => dir.display().to_string(),
    };
    let rows = read_metrics(&dir.join("metrics.csv"))?;
    Ok(Series { name, rows })
}

/// Draws every series into `out` (`.png` or `.svg`): one colour per run, a thin dashed
/// line for its training curve and a bold line for its test curve, as Fig. 6.
pub fn plot<'a>(series: &[Series], out: impl Into<Target<'a>>, opts: &PlotOptions) -> Result<()> {
    let out = out.into();
    out.format()?;
    if series.is_empty() {
        return Err(Error::Output("no runs to plot".into()));
    }
    check_size((opts.width, opts.height), (300, 200))?;
    if let Some(y) = opts.ymax.filter(|y| !(y.is_finite() && *y > 0.0)) {
        return Err(Error::Output(format!("ymax must be a positive number, not {y}")));
    }
    let x_of = |r: &Row| match opts.x {
        XAxis::Iterations => r.iteration as f64,
        XAxis::Epochs => r.epoch as f64,
    };
    // (training, test) values of the chosen metric.
    let y_of = |r: &Row| match opts.metric {
        Metric::Error => (r.train_err, r.test_err),
        Metric::Loss => (r.train_loss, r.test_loss),
    };
    // Error on Fig. 6's 0–20 % unless asked otherwise, or unless a run never comes below
    // 20 % (a short first run): then, as for the loss, an axis fitted to the data, and the
    // axis says so.
    let below_paper_axis = |s: &Series| s.rows.iter().any(|r| r.test_err <= PAPER_ERROR_AXIS);
    let fitted = opts.ymax.is_none() && opts.metric == Metric::Error && !series.iter().all(below_paper_axis);
    let y_max = opts.ymax.or(match opts.metric {
        Metric::Error if !fitted => Some(PAPER_ERROR_AXIS),
        _ => None,
    });
    let x_desc = match opts.x {
        XAxis::Iterations => "iterations",
        XAxis::Epochs => "epochs",
    };
    let y_desc = match opts.metric {
        Metric::Error if fitted => "error (%), axis fitted: a run stays above the paper's 20 %",
        Metric::Error => "error (%)",
        Metric::Loss => "loss",
    };
    let mut lines = Vec::new();
    for (colour, s) in series.iter().enumerate() {
        let points = |test: bool| -> Vec<(f64, f64)> {
            s.rows.iter().map(|r| (x_of(r), if test { y_of(r).1 } else { y_of(r).0 })).collect()
        };
        lines.push(Line { name: String::new(), points: points(false), dashed: true, bold: false, colour });
        lines.push(Line { name: s.name.clone(), points: points(true), dashed: false, bold: true, colour });
    }
    // Legend entries for the two line styles, in grey.
    let grey = crate::viz::figure::PALETTE.len() - 3;
    for (name, dashed) in [("train (dashed)", true), ("test (bold)", false)] {
        lines.push(Line { name: name.into(), points: Vec::new(), dashed, bold: !dashed, colour: grey });
    }
    let panel = Panel { x_desc: x_desc.into(), y_desc: y_desc.into(), lines, y_max, ..Default::default() };
    line_chart(out, opts.title.as_deref(), &[panel], opts.width, opts.height)
}

/// The top of Fig. 6's error axis (%).
const PAPER_ERROR_AXIS: f64 = 20.0;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A first short run, all above 20 % error, still plots its points (PNG and SVG).
    #[test]
    fn a_run_above_the_papers_axis_plots_on_a_fitted_axis() {
        let tmp = tempfile::tempdir().unwrap();
        // One epoch at 24 % test error.
        let run = read_run(&write_run(tmp.path(), "resnet-20", 1, 20.0, false)).unwrap();
        assert!(run.rows[0].test_err > 20.0);
        for ext in ["png", "svg"] {
            let out = tmp.path().join(format!("c.{ext}"));
            plot(std::slice::from_ref(&run), out.as_path(), &PlotOptions::default()).unwrap();
            assert!(fs::metadata(&out).unwrap().len() > 1000);
        }
        let svg = fs::read_to_string(tmp.path().join("c.svg")).unwrap();
        assert!(svg.contains("axis fitted"), "the axis says it is fitted");
        // --ymax still forces the range.
        let forced =
            plot(&[run], tmp.path().join("f.png").as_path(), &PlotOptions { ymax: Some(20.0), ..Default::default() });
        assert!(forced.unwrap_err().to_string().contains("no data"));
    }

    const HEADER: &str = "epoch,iteration,lr,train_loss,train_err,test_loss,test_err,epoch_seconds,images_per_sec";

    /// A run dir with `epochs` rows of decaying curves; `val` adds the optional columns.
    fn write_run(root: &Path, name: &str, epochs: usize, scale: f64, val: bool) -> std::path::PathBuf {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        let mut text = String::from(HEADER);
        text.push_str(if val { ",val_loss,val_err\n" } else { "\n" });
        for e in 1..=epochs {
            let t = e as f64 / epochs as f64;
            let train_err = scale * 60.0 * (-4.0 * t).exp();
            let test_err = 6.0 + scale * 50.0 * (-4.0 * t).exp();
            text.push_str(&format!(
                "{e},{},0.1,{:.4},{train_err:.4},{:.4},{test_err:.4},12.5,4000.0",
                e * 391,
                train_err / 30.0,
                test_err / 25.0
            ));
            text.push_str(if val { ",0.5,9.0\n" } else { "\n" });
        }
        fs::write(dir.join("metrics.csv"), text).unwrap();
        dir
    }

    fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
        let img = image::open(path).unwrap();
        assert_eq!(img.color(), image::ColorType::Rgb8);
        let img = img.to_rgb8();
        (img.width(), img.height(), img.pixels().map(|p| p.0).collect())
    }

    #[test]
    fn reads_rows_with_and_without_val_columns() {
        let tmp = tempfile::tempdir().unwrap();
        let s = read_run(&write_run(tmp.path(), "plain-20", 5, 1.0, true)).unwrap();
        assert_eq!(s.name, "plain-20");
        assert_eq!(s.rows.len(), 5);
        assert_eq!(s.rows[1].epoch, 2);
        assert_eq!(s.rows[1].iteration, 782);
        assert_eq!(s.rows[1].val, Some((0.5, 9.0)));
        let s = read_run(&write_run(tmp.path(), "resnet-20", 3, 1.0, false)).unwrap();
        assert_eq!(s.rows.len(), 3);
        assert!(s.rows[2].test_err > 6.0 && s.rows[2].test_err < 20.0);
    }

    #[test]
    fn malformed_files_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.csv");
        let cases = [
            ("epoch,iteration,lr,train_loss,train_err,test_loss\n1,391,0.1,2.0,70.0,1.9\n", "test_err"),
            (&format!("{HEADER}\n1,391,0.1,2.0,70.0,1.9,oops,10.0,5000.0\n"), "line 2"),
            (&format!("{HEADER}\n1,391,0.1,2.0,70.0\n"), "line 2"),
            (&format!("{HEADER}\n"), "no data rows"),
        ];
        for (text, what) in cases {
            fs::write(&path, text).unwrap();
            let msg = read_metrics(&path).unwrap_err().to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains(what), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        let missing = tmp.path().join("nope");
        let msg = read_run(&missing).unwrap_err().to_string();
        assert!(msg.contains(&missing.join("metrics.csv").display().to_string()), "{msg}");
    }

    #[test]
    fn png_has_size_curves_and_text() {
        let tmp = tempfile::tempdir().unwrap();
        let runs: Vec<Series> = [("plain-20", 1.0), ("plain-56", 1.4)]
            .iter()
            .map(|(n, k)| read_run(&write_run(tmp.path(), n, 40, *k, false)).unwrap())
            .collect();
        let out = tmp.path().join("fig6.png");
        let opts = PlotOptions { title: Some("CIFAR-10 plain nets".into()), ..Default::default() };
        plot(&runs, &out, &opts).unwrap();
        let (w, h, px) = decode(&out);
        assert_eq!((w, h), (900, 600));
        let distinct: std::collections::HashSet<_> = px.iter().collect();
        assert!(distinct.len() > 20, "only {} colours", distinct.len());
        let non_white = px.iter().filter(|p| **p != [255, 255, 255]).count();
        assert!(non_white > 2000, "{non_white} non-white pixels");
        // Both run colours are drawn.
        for c in &crate::viz::figure::PALETTE[..2] {
            assert!(px.contains(&[c.0, c.1, c.2]), "colour {c:?} missing");
        }
        // Glyphs: the y-axis description sits in the leftmost 30 px, left of the tick labels.
        let dark_left = (0..h as usize)
            .flat_map(|y| (0..30).map(move |x| (x, y)))
            .filter(|&(x, y)| px[y * w as usize + x].iter().all(|&v| v < 128))
            .count();
        assert!(dark_left > 50, "no text drawn at the left edge ({dark_left} dark pixels)");
    }

    #[test]
    fn loss_by_epoch_png_with_other_size() {
        let tmp = tempfile::tempdir().unwrap();
        let run = read_run(&write_run(tmp.path(), "resnet-110", 10, 1.0, true)).unwrap();
        let out = tmp.path().join("loss.PNG");
        let opts =
            PlotOptions { x: XAxis::Epochs, metric: Metric::Loss, width: 640, height: 480, ..Default::default() };
        plot(&[run], &out, &opts).unwrap();
        let (w, h, _) = decode(&out);
        assert_eq!((w, h), (640, 480));
    }

    #[test]
    fn svg_has_legend_and_axis_text() {
        let tmp = tempfile::tempdir().unwrap();
        let mut run = read_run(&write_run(tmp.path(), "resnet-32", 8, 1.0, false)).unwrap();
        run.name = "ResNet-32 (ours)".into();
        let out = tmp.path().join("fig.svg");
        plot(&[run], &out, &PlotOptions { ymax: Some(30.0), ..Default::default() }).unwrap();
        let svg = fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{}", &svg[..svg.len().min(80)]);
        for text in ["ResNet-32 (ours)", "iterations", "error (%)", "train (dashed)"] {
            assert!(svg.contains(text), "missing {text}");
        }
    }

    #[test]
    fn rejects_other_extensions_and_no_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let run = read_run(&write_run(tmp.path(), "r", 2, 1.0, false)).unwrap();
        for name in ["fig.pdf", "fig"] {
            let msg = plot(std::slice::from_ref(&run), &tmp.path().join(name), &PlotOptions::default())
                .unwrap_err()
                .to_string();
            assert!(msg.contains(".png or .svg"), "{msg}");
        }
        assert!(plot(&[], &tmp.path().join("x.png"), &PlotOptions::default()).is_err());
        let bad = PlotOptions { ymax: Some(f64::NAN), ..Default::default() };
        assert!(plot(std::slice::from_ref(&run), &tmp.path().join("x.png"), &bad).is_err());
    }
}
