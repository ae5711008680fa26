//! The confusion matrix as a heat map (`eval --confusion`, and the HTML report): rows are
//! the true classes, columns the predicted ones, each cell the percentage of its row
//! (row-normalised, so the diagonal is each class's accuracy), class names on both axes.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{render, DrawResult, Drawing, Target};
use crate::error::{Error, Result};

/// Pixels of the plotting square's side, shared by the cells.
const GRID: u32 = 560;
/// Margins: class names on the left and at the bottom, the title on top, the colour bar right.
const LEFT: u32 = 120;
const BOTTOM: u32 = 120;
const TOP: u32 = 50;
const RIGHT: u32 = 90;

/// Draws the heat map of `counts` (classes × classes, rows = true class) into `out`.
pub fn confusion_matrix<'a>(
    out: impl Into<Target<'a>>,
    title: &str,
    classes: &[String],
    counts: &[Vec<i64>],
) -> Result<()> {
    let out = out.into();
    out.format()?;
    let n = classes.len();
    if n == 0 || counts.len() != n || counts.iter().any(|r| r.len() != n) {
        return Err(Error::Output(format!(
            "{}: the confusion matrix must be {n} × {n}, one row and column per class",
            out.name()
        )));
    }
    let percent = counts
        .iter()
        .map(|row| {
            let total: i64 = row.iter().sum();
            row.iter().map(|&c| 100.0 * c as f64 / total.max(1) as f64).collect()
        })
        .collect();
    let cell = (GRID / n as u32).max(4);
    let side = cell * n as u32;
    let heat = Heat { title, classes, percent, cell };
    render(out, (LEFT + side + RIGHT, TOP + side + BOTTOM), &heat)
}

struct Heat<'a> {
    title: &'a str,
    classes: &'a [String],
    /// Row-normalised percentages.
    percent: Vec<Vec<f64>>,
    /// Pixels per cell.
    cell: u32,
}

/// White to dark blue for 0–100 %.
fn shade(pct: f64) -> RGBColor {
    let t = (pct / 100.0).clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
}

impl Drawing for Heat<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let n = self.classes.len() as i32;
        let (c, left, top) = (self.cell as i32, LEFT as i32, TOP as i32);
        let side = c * n;
        let centre = Pos::new(HPos::Center, VPos::Center);
        root.draw(&Text::new(
            self.title.to_string(),
            (left + side / 2, top / 2),
            ("sans-serif", 18).into_font().style(FontStyle::Bold).color(&BLACK).pos(centre),
        ))?;
        let numbers = n <= 20;
        let font = (c as f64 * 0.32).clamp(8.0, 14.0);
        for (i, row) in self.percent.iter().enumerate() {
            for (j, &p) in row.iter().enumerate() {
                let (x, y) = (left + j as i32 * c, top + i as i32 * c);
                root.draw(&Rectangle::new([(x, y), (x + c, y + c)], shade(p).filled()))?;
                if numbers {
                    let colour = if p > 50.0 { WHITE } else { BLACK };
                    let text = if p >= 9.95 || p == 0.0 { format!("{p:.0}") } else { format!("{p:.1}") };
                    let style = ("sans-serif", font).into_font().color(&colour).pos(centre);
                    root.draw(&Text::new(text, (x + c / 2, y + c / 2), style))?;
                }
            }
        }
        root.draw(&Rectangle::new([(left, top), (left + side, top + side)], BLACK.stroke_width(1)))?;
        // Class names: every class where they fit, else every tenth index.
        let label_font = (c as f64 * 0.8).clamp(7.0, 13.0);
        let every = if c >= 9 { 1 } else { 10 };
        for (k, name) in self.classes.iter().enumerate().filter(|(k, _)| k % every == 0) {
            let label = if every == 1 { name.clone() } else { format!("{k}") };
            let mid = k as i32 * c + c / 2;
            let style = ("sans-serif", label_font).into_font().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(label.clone(), (left - 6, top + mid), style))?;
            let rotated = ("sans-serif", label_font)
                .into_font()
                .transform(FontTransform::Rotate90)
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(label, (left + mid, top + side + 6), rotated))?;
        }
        let axis = ("sans-serif", 14).into_font().color(&BLACK).pos(centre);
        root.draw(&Text::new("predicted class", (left + side / 2, top + side + BOTTOM as i32 - 14), axis.clone()))?;
        root.draw(&Text::new(
            "true class",
            (14, top + side / 2),
            ("sans-serif", 14).into_font().transform(FontTransform::Rotate270).color(&BLACK).pos(centre),
        ))?;
        // The colour bar: 0 % at the bottom, 100 % on top.
        let (bx, steps) = (left + side + 30, 50);
        for s in 0..steps {
            let y0 = top + side - (s + 1) * side / steps;
            let y1 = top + side - s * side / steps;
            let p = 100.0 * (s as f64 + 0.5) / steps as f64;
            root.draw(&Rectangle::new([(bx, y0), (bx + 16, y1)], shade(p).filled()))?;
        }
        root.draw(&Rectangle::new([(bx, top), (bx + 16, top + side)], BLACK.stroke_width(1)))?;
        let tick = ("sans-serif", 12).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        for (label, y) in [("100 %", top), ("50 %", top + side / 2), ("0 %", top + side)] {
            root.draw(&Text::new(label, (bx + 20, y), tick.clone()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("class{i}")).collect()
    }

    #[test]
    fn svg_names_every_class_and_row_percentages() {
        let counts = vec![vec![90, 10, 0], vec![5, 15, 0], vec![0, 0, 0]];
        let mut svg = String::new();
        confusion_matrix(&mut svg, "t", &names(3), &counts).unwrap();
        for name in names(3) {
            assert_eq!(svg.matches(&format!(">\n{name}\n<")).count(), 2, "{name} on both axes");
        }
        // Row 2: 5 of 20 → 25 %, 15 of 20 → 75 %; the empty row draws zeros.
        for p in ["90", "10", "25", "75", "0"] {
            assert!(svg.contains(&format!(">\n{p}\n<")), "{p}");
        }
    }

    #[test]
    fn png_of_a_hundred_classes_and_bad_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let n = 100;
        let counts: Vec<Vec<i64>> = (0..n).map(|i| (0..n).map(|j| if i == j { 80 } else { 1 }).collect()).collect();
        let png = dir.path().join("c.png");
        confusion_matrix(png.as_path(), "CIFAR-100", &names(n), &counts).unwrap();
        assert!(image::open(&png).unwrap().width() > 500);
        let e = confusion_matrix(png.as_path(), "t", &names(3), &counts).unwrap_err().to_string();
        assert!(e.contains("3 × 3"), "{e}");
        let e = confusion_matrix(dir.path().join("c.gif").as_path(), "t", &names(3), &counts).unwrap_err();
        assert!(e.to_string().contains(".png or .svg"), "{e}");
    }
}
