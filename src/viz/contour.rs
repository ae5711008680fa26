//! Filled contour maps of surfaces on a square grid (the loss landscapes), side by side on one
//! shared, logarithmic colour scale with a colour bar. Drawn through [`super::figure`]'s
//! rendering, so PNG and SVG come out as every other figure.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::figure::{check_size, output_format, render, tick, DrawResult, Drawing};
use crate::error::{Error, Result};

/// A surface sampled on `axis × axis`: `values[j * n + i]` is at (axis[i], axis[j]).
#[derive(Debug, Clone)]
pub struct Surface {
    pub name: String,
    pub axis: Vec<f64>,
    pub values: Vec<f64>,
}

/// Colour bands of the fill.
const LEVELS: usize = 16;
/// Sub-cells per grid cell in each direction (bilinear interpolation between samples).
const UPSAMPLE: usize = 6;

/// Viridis, at eight anchors; colours in between are interpolated.
const VIRIDIS: [(u8, u8, u8); 8] = [
    (68, 1, 84),
    (70, 50, 126),
    (54, 92, 141),
    (39, 127, 142),
    (31, 161, 135),
    (74, 193, 109),
    (160, 218, 57),
    (253, 231, 37),
];

fn viridis(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let i = (t.floor() as usize).min(VIRIDIS.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Draws `surfaces` side by side, coloured by log₁₀ of their values in [`LEVELS`] bands over
/// the range of all of them; `.png` or `.svg` by `out`'s extension. Values must be positive
/// and finite (a NaN point is drawn white), and each surface square with at least 2 samples.
pub fn filled_contours(
    out: &Path,
    title: &str,
    surfaces: &[Surface],
    (x_desc, y_desc, scale_desc): (&str, &str, &str),
    size: (u32, u32),
) -> Result<()> {
    output_format(out)?;
    let p = out.display();
    let fail = |m: String| Error::Output(format!("{p}: {m}"));
    if surfaces.is_empty() {
        return Err(fail("no surfaces to draw".into()));
    }
    for s in surfaces {
        if s.axis.len() < 2 || s.values.len() != s.axis.len() * s.axis.len() {
            return Err(fail(format!("{}: needs an n × n grid with n ≥ 2", s.name)));
        }
    }
    check_size(size, (320 * surfaces.len() as u32 + 120, 360)).map_err(|e| fail(e.to_string()))?;
    let logs = surfaces.iter().flat_map(|s| &s.values).filter(|v| v.is_finite() && **v > 0.0).map(|v| v.log10());
    let (lo, hi) = logs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return Err(fail("no positive finite value to draw".into()));
    }
    let hi = if hi > lo { hi } else { lo + 1e-3 };
    render(out.into(), size, &Contours { title, surfaces, descs: (x_desc, y_desc, scale_desc), scale: (lo, hi) })
}

struct Contours<'a> {
    title: &'a str,
    surfaces: &'a [Surface],
    descs: (&'a str, &'a str, &'a str),
    /// log₁₀ of the smallest and largest value.
    scale: (f64, f64),
}

impl Contours<'_> {
    /// The band colour of `value`.
    fn colour(&self, value: f64) -> RGBColor {
        if !(value.is_finite() && value > 0.0) {
            return WHITE;
        }
        let (lo, hi) = self.scale;
        let t = ((value.log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
        let band = ((t * LEVELS as f64).floor() as usize).min(LEVELS - 1);
        viridis((band as f64 + 0.5) / LEVELS as f64)
    }
}

/// The value at fractional grid position (u, v) by bilinear interpolation (in log space).
fn sample(s: &Surface, u: f64, v: f64) -> f64 {
    let n = s.axis.len();
    let (i, j) = ((u.floor() as usize).min(n - 2), (v.floor() as usize).min(n - 2));
    let (fu, fv) = (u - i as f64, v - j as f64);
    let at = |i: usize, j: usize| s.values[j * n + i].ln();
    let x = at(i, j) * (1.0 - fu) * (1.0 - fv)
        + at(i + 1, j) * fu * (1.0 - fv)
        + at(i, j + 1) * (1.0 - fu) * fv
        + at(i + 1, j + 1) * fu * fv;
    x.exp()
}

impl Drawing for Contours<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let area = root.titled(self.title, ("sans-serif", 22))?;
        let (w, _) = area.dim_in_pixel();
        let (maps, bar) = area.split_horizontally(w.saturating_sub(110));
        let (x_desc, y_desc, scale_desc) = self.descs;
        for (panel, s) in maps.split_evenly((1, self.surfaces.len())).iter().zip(self.surfaces) {
            let n = s.axis.len();
            let (a0, a1) = (s.axis[0], s.axis[n - 1]);
            let mut chart = ChartBuilder::on(panel)
                .caption(&s.name, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(42)
                .y_label_area_size(52)
                .build_cartesian_2d(a0..a1, a0..a1)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .draw()?;
            let cells = (n - 1) * UPSAMPLE;
            let step = (a1 - a0) / cells as f64;
            let to_grid = (n - 1) as f64 / cells as f64;
            chart.draw_series((0..cells).flat_map(|j| (0..cells).map(move |i| (i, j))).map(|(i, j)| {
                let value = sample(s, (i as f64 + 0.5) * to_grid, (j as f64 + 0.5) * to_grid);
                let (x, y) = (a0 + i as f64 * step, a0 + j as f64 * step);
                Rectangle::new([(x, y), (x + step, y + step)], self.colour(value).filled())
            }))?;
            // The trained weights, at the centre.
            chart.draw_series(std::iter::once(Cross::new((0.0, 0.0), 6, WHITE.stroke_width(2))))?;
        }
        // The colour bar: one band per level, labelled with the value at its lower edge.
        let (lo, hi) = self.scale;
        let mut chart = ChartBuilder::on(&bar)
            .margin_top(40)
            .margin_bottom(50)
            .margin_right(8)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, lo..hi)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc(scale_desc)
            .y_labels(6)
            .y_label_formatter(&|v: &f64| tick(&10f64.powf(*v)))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .draw()?;
        let band = (hi - lo) / LEVELS as f64;
        chart.draw_series((0..LEVELS).map(|k| {
            let y = lo + k as f64 * band;
            Rectangle::new([(0.0, y), (1.0, y + band)], viridis((k as f64 + 0.5) / LEVELS as f64).filled())
        }))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bowl(name: &str, n: usize, curvature: f64) -> Surface {
        let axis: Vec<f64> = (0..n).map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64).collect();
        let values = axis.iter().flat_map(|&b| axis.iter().map(move |&a| 0.1 + curvature * (a * a + b * b))).collect();
        Surface { name: name.into(), axis, values }
    }

    #[test]
    fn png_and_svg_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let s = [bowl("flat", 7, 0.5), bowl("sharp", 7, 20.0)];
        for ext in ["png", "svg"] {
            let out = dir.path().join(format!("c.{ext}"));
            filled_contours(&out, "bowls", &s, ("α", "β", "loss"), (900, 450)).unwrap();
            assert!(std::fs::metadata(&out).unwrap().len() > 1000);
        }
        let svg = std::fs::read_to_string(dir.path().join("c.svg")).unwrap();
        assert!(svg.contains("sharp") && svg.contains("flat"));
    }

    #[test]
    fn bilinear_sample_hits_the_samples() {
        let s = bowl("b", 5, 1.0);
        assert!((sample(&s, 0.0, 0.0) - s.values[0]).abs() < 1e-12);
        assert!((sample(&s, 4.0, 4.0) - s.values[24]).abs() < 1e-12);
        assert!((sample(&s, 2.0, 2.0) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn bad_grids_are_refused_with_the_file_named() {
        let mut s = bowl("b", 4, 1.0);
        s.values.pop();
        let e = filled_contours(Path::new("x.png"), "t", &[s], ("a", "b", "c"), (900, 450)).unwrap_err();
        assert!(e.to_string().starts_with("x.png: b: needs"), "{e}");
    }
}
