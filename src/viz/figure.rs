//! Figures drawn with plotters: the output plumbing shared with [`crate::viz::curves`] (PNG or SVG
//! chosen by the file's extension, the embedded DejaVu Sans font, size checks, the colour
//! palette) and [`line_chart`], a generic chart of line panels stacked vertically, used for
//! per-layer data such as gradient norms through depth or the layer responses of Fig. 7 of
//! He et al. (2015).
//!
//! PNG is rendered into memory and encoded with the `image` crate; SVG is written by plotters.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Returns early with an [`Error::Output`] built like `format!`.
macro_rules! bail {
    ($($t:tt)*) => { return Err(Error::Output(format!($($t)*))) };
}

fn fail(msg: String) -> Error {
    Error::Output(msg)
}
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// One line of a panel; `colour` indexes [`PALETTE`] (modulo its length).
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Drawn thicker (Fig. 6's test error).
    pub bold: bool,
    pub colour: usize,
}

/// A shaded band between a lower and an upper curve: (x, low, high) points, in the
/// colour of the lines it belongs to (e.g. the min–max over seeds around their mean).
#[derive(Debug, Clone)]
pub struct Band {
    pub points: Vec<(f64, f64, f64)>,
    pub colour: usize,
}

/// One chart of a figure; lines with an empty name get no legend entry.
///
/// The x axis spans the data; a linear y axis spans 0..max × 1.05 (min..max plus 5% when some
/// value is negative); a logarithmic one (`log_y`) spans min..max plus a little margin.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    pub title: Option<String>,
    pub x_desc: String,
    pub y_desc: String,
    pub log_y: bool,
    pub lines: Vec<Line>,
    /// Drawn under the lines; a linear axis only.
    pub bands: Vec<Band>,
    /// A fixed linear y axis from 0 (Fig. 6's 0–20 %): lines are cut where they leave it.
    pub y_max: Option<f64>,
}

/// Tableau-like colours, distinct on white; indices beyond ten reuse them.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The palette colour for index `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Png,
    Svg,
}

/// The output format from `out`'s extension (case-insensitive).
pub(crate) fn output_format(out: &Path) -> Result<Format> {
    match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => bail!("{}: unknown output format: use .png or .svg", out.display()),
    }
}

/// Checks that `out` names a PNG or SVG file, before any work is done for it.
pub fn output_format_of(out: &Path) -> Result<()> {
    output_format(out).map(|_| ())
}

pub(crate) fn check_size((w, h): (u32, u32), (min_w, min_h): (u32, u32)) -> Result<()> {
    if w < min_w || h < min_h {
        bail!("plot size {w}x{h} is too small: use at least {min_w}x{min_h}");
    }
    Ok(())
}

fn register_fonts() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        bail!("cannot load the embedded DejaVu Sans font")
    }
}

/// What drawing on `DB` fails with.
type DrawError<DB> = DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>;

pub(crate) type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Something that draws itself on any plotters backend.
pub(crate) trait Drawing {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Where a figure goes: a file, PNG or SVG by its extension, or an SVG document in a
/// string (inlined into an HTML report).
pub enum Target<'a> {
    File(&'a Path),
    Svg(&'a mut String),
}

impl<'a> From<&'a Path> for Target<'a> {
    fn from(p: &'a Path) -> Self {
        Target::File(p)
    }
}

impl<'a> From<&'a std::path::PathBuf> for Target<'a> {
    fn from(p: &'a std::path::PathBuf) -> Self {
        Target::File(p)
    }
}

impl<'a> From<&'a mut String> for Target<'a> {
    fn from(s: &'a mut String) -> Self {
        Target::Svg(s)
    }
}

impl Target<'_> {
    /// What error messages call it.
    pub fn name(&self) -> String {
        match self {
            Target::File(p) => p.display().to_string(),
            Target::Svg(_) => "inline SVG".into(),
        }
    }

    /// Its format: a file's by extension (an error for others), SVG for a string.
    pub(crate) fn format(&self) -> Result<Format> {
        match self {
            Target::File(p) => output_format(p),
            Target::Svg(_) => Ok(Format::Svg),
        }
    }
}

/// Registers the fonts, draws `what` at `size` pixels and writes it to `out`.
pub(crate) fn render(out: Target, size: (u32, u32), what: &impl Drawing) -> Result<()> {
    register_fonts()?;
    let name = out.name();
    let draw_failed = |e: &dyn std::fmt::Display| fail(format!("{name}: cannot draw plot: {e}"));
    match (out.format()?, out) {
        (Format::Png, Target::File(path)) => {
            // Rendered in memory and encoded here, so plotters needs no image crate of its own.
            let mut rgb = vec![0u8; 3 * size.0 as usize * size.1 as usize];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                what.draw(&root).map_err(|e| draw_failed(&e))?;
                root.present().map_err(|e| draw_failed(&e))?;
            }
            write_png(path, size, &rgb).map_err(|e| fail(format!("{name}: cannot write PNG: {e}")))
        }
        (_, Target::File(path)) => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            what.draw(&root).map_err(|e| draw_failed(&e))?;
            root.present().map_err(|e| draw_failed(&e))
        }
        (_, Target::Svg(text)) => {
            let root = SVGBackend::with_string(text, size).into_drawing_area();
            what.draw(&root).map_err(|e| draw_failed(&e))?;
            root.present().map_err(|e| draw_failed(&e))
        }
    }
}

fn write_png(out: &Path, (w, h): (u32, u32), rgb: &[u8]) -> image::ImageResult<()> {
    image::save_buffer_with_format(out, rgb, w, h, image::ExtendedColorType::Rgb8, image::ImageFormat::Png)
}

/// Lines with at most this many points get a dot at each point.
const MAX_MARKED: usize = 60;

/// Panels stacked vertically in one image; `.png` or `.svg` by extension.
///
/// Points with a non-finite coordinate (or y ≤ 0 on a log axis) are skipped and break the line.
/// Each panel needs at least one point to draw; every error is one line naming `out`.
pub fn line_chart<'a>(
    out: impl Into<Target<'a>>,
    title: Option<&str>,
    panels: &[Panel],
    width: u32,
    height: u32,
) -> Result<()> {
    line_chart_grid(out, title, panels, 1, (width, height))
}

/// [`line_chart`] with the panels in `columns` columns, filled row by row.
pub fn line_chart_grid<'a>(
    out: impl Into<Target<'a>>,
    title: Option<&str>,
    panels: &[Panel],
    columns: usize,
    (width, height): (u32, u32),
) -> Result<()> {
    let out = out.into();
    out.format()?;
    let p = out.name();
    if panels.is_empty() {
        bail!("{p}: no panels to draw");
    }
    let columns = columns.clamp(1, panels.len());
    let rows = panels.len().div_ceil(columns);
    let min_h = 150 * rows as u32 + if title.is_some() { 40 } else { 0 };
    check_size((width, height), (300 * columns as u32, min_h)).map_err(|e| fail(format!("{p}: {e}")))?;
    let mut prepared = Vec::with_capacity(panels.len());
    for (i, panel) in panels.iter().enumerate() {
        if let Some(y) = panel.y_max.filter(|y| !(y.is_finite() && *y > 0.0)) {
            bail!("{p}: the top of the y axis must be a positive number, not {y}");
        }
        let pieces: Vec<_> = panel
            .lines
            .iter()
            .map(|l| {
                let runs = pieces(&l.points, panel.log_y);
                match panel.y_max {
                    Some(top) => runs.iter().flat_map(|r| clip(r, top)).collect(),
                    None => runs,
                }
            })
            .collect();
        let band_points = panel.bands.iter().flat_map(|b| &b.points).flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]);
        let band_points: Vec<(f64, f64)> = band_points.filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        let mut all = pieces.iter().flatten().flatten().chain(&band_points);
        let Some(&(x0, y0)) = all.next() else {
            let name = panel.title.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
            bail!("{p}: panel {}{name} has no data to draw", i + 1);
        };
        let (a, b, c, d) = all.fold((x0, x0, y0, y0), |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)));
        // A fixed axis spans 0..y_max (the 1.05 margin of the automatic one is undone here).
        let bounds = match panel.y_max {
            Some(top) => (a, b, 0.0, top / 1.05),
            None => (a, b, c, d),
        };
        prepared.push(Prepared { panel, pieces, bounds });
    }
    let panel_width = width / columns as u32;
    render(out, (width, height), &Chart { title, panels: prepared, width: panel_width, grid: (rows, columns) })
}

/// The runs of drawable points of a line, split where a point is skipped.
fn pieces(points: &[(f64, f64)], log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![];
    let mut open = false;
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() && (!log_y || y > 0.0) {
            if !open {
                out.push(vec![]);
            }
            out.last_mut().unwrap().push((x, y));
            open = true;
        } else {
            open = false;
        }
    }
    out
}

/// Cuts a polyline to the band 0 ≤ y ≤ ymax, interpolating where it leaves and re-enters
/// (plotters would otherwise pin points above the axis to its top edge).
fn clip(points: &[(f64, f64)], ymax: f64) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false; // whether the last piece ends at the current point
    if let [only] = points {
        if (0.0..=ymax).contains(&only.1) {
            pieces.push(vec![*only]);
        }
    }
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

/// `lo..hi`, widened when empty.
fn span(lo: f64, hi: f64) -> Range<f64> {
    if hi > lo {
        lo..hi
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo - d..hi + d
    }
}

/// Tick labels with three significant digits, in exponent form when very small or large.
pub(crate) fn tick(v: &f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (1e-3..1e5).contains(&a) {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').into()
        } else {
            s
        }
    } else {
        let s = format!("{v:.2e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
    }
}

type Pieces = Vec<Vec<Vec<(f64, f64)>>>;

/// A panel with its lines' pieces and the data's (xmin, xmax, ymin, ymax).
struct Prepared<'a> {
    panel: &'a Panel,
    pieces: Pieces,
    bounds: (f64, f64, f64, f64),
}

struct Chart<'a> {
    title: Option<&'a str>,
    panels: Vec<Prepared<'a>>,
    /// Of one panel.
    width: u32,
    /// Rows and columns.
    grid: (usize, usize),
}

impl Drawing for Chart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let area = match self.title {
            Some(t) => root.titled(t, ("sans-serif", 22))?,
            None => root.clone(),
        };
        for (area, Prepared { panel, pieces, bounds: (x0, x1, y0, y1) }) in
            area.split_evenly(self.grid).iter().zip(&self.panels)
        {
            let x = span(*x0, *x1);
            if panel.log_y {
                let (l, h) = (y0.log10(), y1.log10());
                let m = ((h - l) * 0.05).max(0.05);
                let y = 10f64.powf(l - m)..10f64.powf(h + m);
                draw_panel(area, (panel, pieces), Axes { x, y: y.log_scale(), y_zero: 0.0 }, self.width)?;
            } else {
                let y = if *y0 < 0.0 {
                    let m = (y1 - y0) * 0.05;
                    span(y0 - m, y1 + m)
                } else {
                    span(0.0, y1 * 1.05)
                };
                let zero = (y.end - y.start) * 1e-9;
                draw_panel(area, (panel, pieces), Axes { x, y, y_zero: zero }, self.width)?;
            }
        }
        Ok(())
    }
}

/// The ranges of a panel's axes; values closer to 0 than `y_zero` label as 0.
struct Axes<Y> {
    x: Range<f64>,
    y: Y,
    y_zero: f64,
}

fn draw_panel<DB: DrawingBackend, Y>(
    area: &DrawingArea<DB, Shift>,
    (panel, pieces): (&Panel, &Pieces),
    Axes { x, y, y_zero }: Axes<Y>,
    width: u32,
) -> DrawResult<DB>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut builder = ChartBuilder::on(area);
    builder.margin(15).x_label_area_size(45).y_label_area_size(70);
    if let Some(t) = &panel.title {
        builder.caption(t, ("sans-serif", 18));
    }
    // Ticks closer to 0 than rounding noise (-2.2e-16) read as 0.
    let snap = |zero: f64| move |v: &f64| tick(&if v.abs() < zero { 0.0 } else { *v });
    let (x_fmt, y_fmt) = (snap((x.end - x.start) * 1e-9), snap(y_zero));
    let mut chart = builder.build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_desc(panel.x_desc.as_str())
        .y_desc(panel.y_desc.as_str())
        .x_labels((width / 110).max(3) as usize)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    draw_bands(&mut chart, &panel.bands)?;
    let legend = draw_lines(&mut chart, &panel.lines, pieces)?;
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// The shaded bands (min–max over seeds, say) under the lines.
fn draw_bands<DB: DrawingBackend, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    bands: &[Band],
) -> DrawResult<DB> {
    for band in bands {
        let ok = |&&(x, lo, hi): &&(f64, f64, f64)| x.is_finite() && lo.is_finite() && hi.is_finite();
        let points: Vec<_> = band.points.iter().filter(ok).collect();
        if points.len() < 2 {
            continue;
        }
        let outline: Vec<(f64, f64)> =
            points.iter().map(|p| (p.0, p.2)).chain(points.iter().rev().map(|p| (p.0, p.1))).collect();
        chart.draw_series(std::iter::once(Polygon::new(outline, colour(band.colour).mix(0.15).filled())))?;
    }
    Ok(())
}

/// Each line in its pieces, marked when few points; whether any line is named (a legend).
fn draw_lines<'a, DB: DrawingBackend + 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    lines: &[Line],
    pieces: &[Vec<Vec<(f64, f64)>>],
) -> std::result::Result<bool, DrawError<DB>> {
    let mut legend = false;
    for (line, pieces) in lines.iter().zip(pieces) {
        let c = colour(line.colour);
        let style = c.stroke_width(if line.bold { 3 } else { 2 });
        let marked = pieces.iter().map(Vec::len).sum::<usize>() <= MAX_MARKED;
        for piece in pieces {
            if line.dashed {
                chart.draw_series(DashedLineSeries::new(piece.iter().copied(), 6, 4, style))?;
            } else {
                chart.draw_series(LineSeries::new(piece.iter().copied(), style))?;
            }
            if marked {
                chart.draw_series(piece.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
            }
        }
        if line.name.is_empty() {
            continue;
        }
        legend = true;
        let dashes = if line.dashed { [(0, 6), (9, 15), (18, 24)] } else { [(0, 8), (8, 16), (16, 24)] };
        chart.draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?.label(line.name.as_str()).legend(
            move |(x, y)| {
                let seg = |(a, b): (i32, i32)| PathElement::new([(a, 0), (b, 0)], style);
                EmptyElement::at((x, y))
                    + seg(dashes[0])
                    + seg(dashes[1])
                    + seg(dashes[2])
                    + Circle::new((12, 0), if marked { 3 } else { 0 }, c.filled())
            },
        );
    }
    Ok(legend)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, colour: usize, dashed: bool, f: impl Fn(f64) -> f64, n: usize) -> Line {
        let points = (0..n).map(|i| (i as f64, f(i as f64))).collect();
        Line { name: name.into(), points, dashed, bold: false, colour }
    }

    fn panels() -> Vec<Panel> {
        vec![
            Panel {
                title: Some("gradient norm".into()),
                x_desc: "layer".into(),
                y_desc: "‖g‖".into(),
                log_y: true,
                lines: vec![
                    line("plain-56", 0, false, |i| 10f64.powf(-i / 10.0), 56),
                    line("resnet-56", 1, true, |i| 0.5 + 0.01 * i, 56),
                    line("", 2, false, |i| if i == 3.0 { 0.0 } else { 1e-3 * (i + 1.0) }, 20),
                ],
                bands: Vec::new(),
                y_max: None,
            },
            Panel {
                x_desc: "layer index (sorted)".into(),
                y_desc: "std".into(),
                lines: vec![line("resnet-110", 3, false, |i| (i * 0.3).sin() - 0.2, 110)],
                ..Default::default()
            },
        ]
    }

    #[test]
    fn png_two_panels_log_and_linear() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("grads.png");
        line_chart(&out, Some("CIFAR-10"), &panels(), 800, 900).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (800, 900));
        let px: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        let non_white = px.iter().filter(|p| **p != [255, 255, 255]).count();
        assert!(non_white > 5000, "{non_white} non-white pixels");
        for i in 0..4 {
            let c = colour(i);
            assert!(px.contains(&[c.0, c.1, c.2]), "colour {i} missing");
        }
        // Both halves hold drawing.
        let half = px.len() / 2;
        assert!(px[..half].iter().any(|p| *p != [255, 255, 255]));
        assert!(px[half..].contains(&[214, 39, 40]));
    }

    #[test]
    fn svg_has_legend_names_only_for_named_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("fig7.SVG");
        line_chart(&out, None, &panels(), 640, 600).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        for text in ["plain-56", "resnet-56", "resnet-110", "gradient norm", "layer index (sorted)"] {
            assert!(svg.contains(text), "missing {text}");
        }
    }

    #[test]
    fn errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = Panel { title: Some("responses".into()), log_y: true, ..Default::default() };
        let no_data = vec![Panel { lines: vec![line("x", 0, false, |_| -1.0, 5)], ..empty.clone() }];
        let cases: [(&str, &[Panel], &str); 5] = [
            ("fig.pdf", &panels(), ".png or .svg"),
            ("fig", &panels(), ".png or .svg"),
            ("fig.png", &[], "no panels"),
            ("fig.svg", &[empty], "panel 1 (responses) has no data"),
            ("fig.png", &no_data, "no data"),
        ];
        for (name, panels, what) in cases {
            let out = tmp.path().join(name);
            let msg = line_chart(&out, None, panels, 800, 600).unwrap_err().to_string();
            assert!(msg.contains(&out.display().to_string()), "{msg}");
            assert!(msg.contains(what), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
            assert!(!out.exists());
        }
        let msg = line_chart(&tmp.path().join("s.png"), None, &panels(), 200, 600).unwrap_err().to_string();
        assert!(msg.contains("s.png") && msg.contains("too small"), "{msg}");
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
    fn tick_labels_are_short() {
        let cases = [(0.0, "0"), (1.0, "1"), (2.5, "2.5"), (0.001, "0.001"), (1234.0, "1234"), (1e-5, "1e-5")];
        for (v, s) in cases {
            assert_eq!(tick(&v), s);
        }
        assert_eq!(tick(&2.5e-6), "2.5e-6");
        assert_eq!(tick(&(0.1 + 0.2)), "0.3");
    }
}
