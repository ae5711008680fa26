//! Learning curves from `metrics.csv`, drawn like Fig. 6 of He et al., "Deep Residual
//! Learning for Image Recognition" (2015): error (%) against iterations on CIFAR-10, with
//! a thin dashed line for training error and a bold line for test error, one colour per run.
//!
//! Output is PNG or SVG, chosen by the file's extension. Text is drawn with DejaVu Sans
//! compiled into the binary (crate `dejavu`), so a machine without system fonts works too.

use std::path::Path;

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::figure::{check_size, colour, output_format, render, DrawResult, Drawing};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum XAxis {
    #[default]
    Iterations,
    Epochs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Metric {
    #[default]
    Error,
    Loss,
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
    Ok(crate::metrics::read(path)?)
}

/// Reads `dir/metrics.csv`; the series is named after the directory.
pub fn read_run(dir: &Path) -> Result<Series> {
    let name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .or_else(|| dir.canonicalize().ok()?.file_name().map(|n| n.to_os_string()))
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let rows = read_metrics(&dir.join("metrics.csv"))?;
    Ok(Series { name, rows })
}

/// Draws every series into `out` (`.png` or `.svg`).
pub fn plot(series: &[Series], out: &Path, opts: &PlotOptions) -> Result<()> {
    let format = output_format(out)?;
    if series.is_empty() {
        bail!("no runs to plot");
    }
    check_size((opts.width, opts.height), (300, 200))?;
    if let Some(y) = opts.ymax.filter(|y| !(y.is_finite() && *y > 0.0)) {
        bail!("ymax must be a positive number, not {y}");
    }
    render(out, format, (opts.width, opts.height), &Curves { series, opts })
}

struct Curves<'a> {
    series: &'a [Series],
    opts: &'a PlotOptions,
}

impl Drawing for Curves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw(root, self.series, self.opts)
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, series: &[Series], opts: &PlotOptions) -> DrawResult<DB> {
    let x_of = |r: &Row| match opts.x {
        XAxis::Iterations => r.iteration as f64,
        XAxis::Epochs => r.epoch as f64,
    };
    // (training, test) values of the chosen metric.
    let y_of = |r: &Row| match opts.metric {
        Metric::Error => (r.train_err, r.test_err),
        Metric::Loss => (r.train_loss, r.test_loss),
    };
    let rows = || series.iter().flat_map(|s| &s.rows);
    let finite_max = |it: &mut dyn Iterator<Item = f64>| it.filter(|v| v.is_finite()).fold(0f64, f64::max);
    let xmax = finite_max(&mut rows().map(x_of));
    let xmax = if xmax > 0.0 { xmax } else { 1.0 };
    let ymax = opts.ymax.unwrap_or_else(|| match opts.metric {
        Metric::Error => 20.0,
        Metric::Loss => {
            let m = finite_max(&mut rows().flat_map(|r| {
                let (a, b) = y_of(r);
                [a, b]
            }));
            if m > 0.0 {
                m * 1.05
            } else {
                1.0
            }
        }
    });
    let (x_desc, y_desc) = match (opts.x, opts.metric) {
        (XAxis::Iterations, Metric::Error) => ("iterations", "error (%)"),
        (XAxis::Iterations, Metric::Loss) => ("iterations", "loss"),
        (XAxis::Epochs, Metric::Error) => ("epochs", "error (%)"),
        (XAxis::Epochs, Metric::Loss) => ("epochs", "loss"),
    };

    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(root);
    builder.margin(15).x_label_area_size(45).y_label_area_size(60);
    if let Some(t) = &opts.title {
        builder.caption(t, ("sans-serif", 22));
    }
    let mut chart = builder.build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
    let fmt = |v: &f64| {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v}")
        }
    };
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels((opts.width / 110).max(3) as usize)
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;

    for (i, s) in series.iter().enumerate() {
        let colour = colour(i);
        let points = |pick: fn((f64, f64)) -> f64| -> Vec<(f64, f64)> {
            s.rows.iter().map(|r| (x_of(r), pick(y_of(r)))).filter(|(x, y)| x.is_finite() && y.is_finite()).collect()
        };
        for piece in clip(&points(|(a, _)| a), ymax) {
            chart.draw_series(DashedLineSeries::new(piece, 6, 4, colour.stroke_width(1)))?;
        }
        for piece in clip(&points(|(_, b)| b), ymax) {
            chart.draw_series(LineSeries::new(piece, colour.stroke_width(3)))?;
        }
        // The legend entry hangs on an empty series so that it is there even if all is clipped.
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
    }
    let grey = RGBColor(90, 90, 90);
    chart.draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?.label("train (dashed)").legend(move |(x, y)| {
        let dash = |a, b| PathElement::new([(a, 0), (b, 0)], grey.stroke_width(1));
        EmptyElement::at((x, y)) + dash(0, 6) + dash(9, 15) + dash(18, 24)
    });
    chart
        .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
        .label("test (bold)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], grey.stroke_width(3)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Cuts a polyline to the band 0 ≤ y ≤ ymax, interpolating where it leaves and re-enters
/// (plotters would otherwise pin points above the axis to its top edge).
fn clip(points: &[(f64, f64)], ymax: f64) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false; // whether the last piece ends at the current point
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        let (mut t0, mut t1) = (0f64, 1f64);
        let dy = y1 - y0;
        if dy == 0.0 {
            if !(0.0..=ymax).contains(&y0) {
                open = false;
                continue;
            }
        } else {
            let (ta, tb) = ((0.0 - y0) / dy, (ymax - y0) / dy);
            t0 = t0.max(ta.min(tb));
            t1 = t1.min(ta.max(tb));
        }
        if t0 > t1 {
            open = false;
            continue;
        }
        let at = |t: f64| (x0 + (x1 - x0) * t, y0 + dy * t);
        if !(open && t0 == 0.0) {
            pieces.push(vec![at(t0)]);
        }
        pieces.last_mut().unwrap().push(at(t1));
        open = t1 == 1.0;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
        let file = std::io::BufReader::new(fs::File::open(path).unwrap());
        let mut reader = png::Decoder::new(file).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let px = buf[..info.buffer_size()].chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
        (info.width, info.height, px)
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
        for c in &crate::figure::PALETTE[..2] {
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
    fn clip_breaks_lines_at_the_top() {
        let pts = [(0.0, 30.0), (1.0, 10.0), (2.0, 10.0), (3.0, 30.0), (4.0, 40.0), (5.0, 0.0)];
        let pieces = clip(&pts, 20.0);
        assert_eq!(
            pieces,
            vec![vec![(0.5, 20.0), (1.0, 10.0), (2.0, 10.0), (2.5, 20.0)], vec![(4.5, 20.0), (5.0, 0.0)],]
        );
        assert!(clip(&[(0.0, 50.0), (1.0, 60.0)], 20.0).is_empty());
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
