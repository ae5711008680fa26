//! Loss landscapes as in Li, Xu, Taylor, Studer and Goldstein, "Visualizing the Loss Landscape
//! of Neural Nets" (NeurIPS 2018): the loss of a trained network at w + α·d₁ + β·d₂ for two
//! random, *filter-normalised* directions d₁, d₂ in weight space.
//!
//! - Each direction is Gaussian, then every filter of a convolution (and every output unit's
//!   row of the linear layer) is rescaled to the Frobenius norm of the same filter of the
//!   weights, so the picture does not depend on the scale invariance that BN gives each filter.
//! - BN parameters, BN statistics and biases get zero direction (the paper's choice).
//! - Every point is computed from the saved weights, w₀ + α·d₁ + β·d₂, never by adding and
//!   subtracting steps, and the weights are restored bit for bit afterwards (also on drop).
//! - The loss and error of a point are [`crate::evaluate::evaluate`]'s, with BN in eval mode, so
//!   the centre is exactly what `eval` reports on the same images.

use std::collections::BTreeMap;
use std::path::Path;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::evaluate::evaluate;
use crate::model::ResNet;
use crate::normalize::Normalizer;
use crate::viz::contour::{filled_contours, Surface};
use crate::viz::figure::{line_chart, Line, Panel};

/// One random direction: a tensor for each perturbed weight, in [`Perturbation`]'s order.
pub struct Direction(pub Vec<Tensor>);

/// The weights a landscape moves: every convolution and linear weight of a model, with a
/// copy of their values to compute points from and to restore.
pub struct Perturbation {
    /// (name, the variable itself, its original values), sorted by name.
    weights: Vec<(String, Tensor, Tensor)>,
    /// Every variable name of the model, for [`Perturbation::full`].
    all: Vec<(String, Vec<i64>)>,
}

/// Whether a variable gets a direction: convolution (4-D) and linear (2-D) weights.
fn perturbed(name: &str, t: &Tensor) -> bool {
    name.ends_with("weight") && matches!(t.dim(), 2 | 4)
}

impl Perturbation {
    /// The convolution and linear weights of `vs`; non-float weights are refused.
    pub fn new(vs: &VarStore) -> Result<Self> {
        let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
        let mut weights = Vec::new();
        let mut all = Vec::new();
        for (name, t) in vars {
            all.push((name.clone(), t.size()));
            if !perturbed(&name, &t) {
                continue;
            }
            if !matches!(t.kind(), Kind::Float | Kind::Double) {
                return Err(Error::Config(format!("weight {name} is {:?}, not floating point", t.kind())));
            }
            let origin = t.detach().copy();
            weights.push((name, t, origin));
        }
        if weights.is_empty() {
            return Err(Error::Config("the model has no convolution or linear weights to perturb".into()));
        }
        Ok(Self { weights, all })
    }

    /// The perturbed weights' names, in the order of every [`Direction`].
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.weights.iter().map(|(n, _, _)| n.as_str())
    }

    /// `count` filter-normalised Gaussian directions drawn from `seed` (on the CPU, weight by
    /// weight in name order, so the same seed gives the same directions on every device).
    pub fn directions(&self, seed: i64, count: usize) -> Vec<Direction> {
        tch::manual_seed(seed);
        (0..count)
            .map(|_| {
                Direction(
                    self.weights
                        .iter()
                        .map(|(_, var, w)| {
                            let w = w.to_device(Device::Cpu).to_kind(Kind::Float);
                            let d = Tensor::randn(w.size(), (Kind::Float, Device::Cpu));
                            filter_normalised(&d, &w).to_device(var.device()).to_kind(var.kind())
                        })
                        .collect(),
                )
            })
            .collect()
    }

    /// Sets every perturbed weight to w₀ + Σ αᵢ·dᵢ.
    pub fn set(&self, terms: &[(f64, &Direction)]) {
        tch::no_grad(|| {
            for (i, (_, var, w)) in self.weights.iter().enumerate() {
                let mut p = w.copy();
                for (a, d) in terms {
                    p += &d.0[i] * *a;
                }
                var.detach().copy_(&p);
            }
        });
    }

    /// Puts back the original weights, bit for bit.
    pub fn restore(&self) {
        tch::no_grad(|| {
            for (_, var, w) in &self.weights {
                var.detach().copy_(w);
            }
        });
    }

    /// `d` spelled over every variable of the model: zeros where nothing moves (BN, biases).
    pub fn full(&self, d: &Direction) -> BTreeMap<String, Tensor> {
        let mut out: BTreeMap<String, Tensor> = self
            .all
            .iter()
            .map(|(n, size)| (n.clone(), Tensor::zeros(size.as_slice(), (Kind::Float, Device::Cpu))))
            .collect();
        for ((name, _, _), t) in self.weights.iter().zip(&d.0) {
            out.insert(name.clone(), t.to_device(Device::Cpu).to_kind(Kind::Float));
        }
        out
    }
}

impl Drop for Perturbation {
    fn drop(&mut self) {
        self.restore();
    }
}

/// `d` with each filter (slice along dim 0) rescaled to the norm of the same filter of `w`.
pub fn filter_normalised(d: &Tensor, w: &Tensor) -> Tensor {
    let rows = |t: &Tensor| t.flatten(1, -1);
    let norm = |t: &Tensor| t.norm_scalaropt_dim(2, [1i64].as_slice(), true);
    let scale = norm(&rows(w)) / (norm(&rows(d)) + 1e-10);
    (rows(d) * scale).view(w.size().as_slice())
}

/// A landscape is a line (`--dims 1`, β = 0) or a plane (`--dims 2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dims {
    One,
    Two,
}

/// Where the loss is evaluated: `grid` values per axis, evenly over [−range, range].
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub dims: Dims,
    pub points: usize,
    pub range: f64,
}

impl Grid {
    /// The default points per axis: 51 on a line, 21 on a plane.
    pub fn default_points(dims: Dims) -> usize {
        match dims {
            Dims::One => 51,
            Dims::Two => 21,
        }
    }

    /// The axis values; with an odd count the middle one is exactly 0.
    pub fn axis(&self) -> Vec<f64> {
        let n = self.points;
        if n == 1 {
            return vec![0.0];
        }
        let half = (n - 1) as f64;
        (0..n).map(|i| self.range * (2.0 * i as f64 - half) / half).collect()
    }

    /// Every (α, β), α varying fastest.
    pub fn points(&self) -> Vec<(f64, f64)> {
        let axis = self.axis();
        match self.dims {
            Dims::One => axis.iter().map(|&a| (a, 0.0)).collect(),
            Dims::Two => axis.iter().flat_map(|&b| axis.iter().map(move |&a| (a, b))).collect(),
        }
    }
}

/// The loss and top-1 error (%) at one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub alpha: f64,
    pub beta: f64,
    pub loss: f64,
    pub err: f64,
}

/// What a point's loss is measured on: a model (the one the perturbation moves) and images.
#[derive(Clone, Copy)]
pub struct Measure<'a> {
    pub model: &'a ResNet,
    pub images: &'a Split,
    pub normalizer: &'a Normalizer,
}

impl Measure<'_> {
    fn evaluate(&self) -> crate::evaluate::Evaluation {
        evaluate(self.model, self.images, self.normalizer)
    }
}

/// Evaluates the model at each of `points` along `d1` (and `d2`); `done` is called after
/// each point. The weights are restored before it returns.
pub fn sweep(
    on: Measure,
    perturbation: &Perturbation,
    (d1, d2): (&Direction, Option<&Direction>),
    points: &[(f64, f64)],
    mut done: impl FnMut(&Point),
) -> Vec<Point> {
    let mut out = Vec::with_capacity(points.len());
    for &(alpha, beta) in points {
        match d2 {
            Some(d2) => perturbation.set(&[(alpha, d1), (beta, d2)]),
            None => perturbation.set(&[(alpha, d1)]),
        }
        let e = on.evaluate();
        let p = Point { alpha, beta, loss: e.loss, err: e.error };
        done(&p);
        out.push(p);
    }
    perturbation.restore();
    out
}

/// Numbers that say how flat a landscape is, beside its picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flatness {
    pub centre_loss: f64,
    pub centre_err: f64,
    /// Fraction of the grid's points whose loss is below twice the centre's.
    pub below_twice_centre: f64,
    /// The median loss on the grid's edge (|α| or |β| at the range): how high the walls are.
    pub edge_median_loss: f64,
    /// The largest loss of the grid.
    pub max_loss: f64,
}

/// [`Flatness`] of a swept grid; the centre is the point nearest (0, 0).
pub fn flatness(points: &[Point]) -> Option<Flatness> {
    let centre = points.iter().min_by(|a, b| (a.alpha.hypot(a.beta)).total_cmp(&b.alpha.hypot(b.beta)))?;
    let below = points.iter().filter(|p| p.loss < 2.0 * centre.loss).count();
    let reach = |p: &Point| p.alpha.abs().max(p.beta.abs());
    let range = points.iter().map(reach).fold(0.0, f64::max);
    let mut edge: Vec<f64> = points.iter().filter(|p| reach(p) == range).map(|p| p.loss).collect();
    edge.sort_by(f64::total_cmp);
    let median = match edge.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => edge[n / 2],
        n => (edge[n / 2 - 1] + edge[n / 2]) / 2.0,
    };
    Some(Flatness {
        centre_loss: centre.loss,
        centre_err: centre.err,
        below_twice_centre: below as f64 / points.len() as f64,
        edge_median_loss: median,
        max_loss: points.iter().map(|p| p.loss).fold(f64::NEG_INFINITY, f64::max),
    })
}

/// The mean and sample std of the loss increase at distance `radius` along `count` random
/// filter-normalised directions (seeded): how sharply the loss rises around
/// the weights in a typical direction.
pub fn probe(
    on: Measure,
    perturbation: &Perturbation,
    (seed, count, radius): (i64, usize, f64),
    mut done: impl FnMut(),
) -> (f64, f64) {
    let centre = on.evaluate().loss;
    let rises: Vec<f64> = perturbation
        .directions(seed, count)
        .iter()
        .map(|d| {
            perturbation.set(&[(radius, d)]);
            let rise = on.evaluate().loss - centre;
            done();
            rise
        })
        .collect();
    perturbation.restore();
    let n = rises.len() as f64;
    let mean = rises.iter().sum::<f64>() / n.max(1.0);
    let var = rises.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// One network's swept landscape.
pub struct Landscape {
    pub name: String,
    pub grid: Grid,
    pub points: Vec<Point>,
}

/// Writes every landscape's points as `model,alpha,beta,loss,err`.
pub fn write_csv(all: &[Landscape], path: &Path) -> Result<()> {
    let csv_err = |e: csv::Error| Error::io(path, std::io::Error::other(e));
    let mut w = csv::Writer::from_path(path).map_err(csv_err)?;
    w.write_record(["model", "alpha", "beta", "loss", "err"]).map_err(csv_err)?;
    for l in all {
        for p in &l.points {
            let row = [
                crate::text::csv_text(&l.name),
                p.alpha.to_string(),
                p.beta.to_string(),
                format!("{:e}", p.loss),
                p.err.to_string(),
            ];
            w.write_record(&row).map_err(csv_err)?;
        }
    }
    w.flush().map_err(|e| Error::io(path, e))
}

/// The landscapes in a table written by [`write_csv`], in its order; the grid is read back
/// from the α and β values (a plane when some β is not 0).
pub fn read_csv(path: &Path) -> Result<Vec<Landscape>> {
    let bad = |m: String| Error::Output(format!("{}: {m}", path.display()));
    let mut r = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let header = r.headers().map_err(|e| bad(e.to_string()))?.clone();
    if header.iter().collect::<Vec<_>>() != ["model", "alpha", "beta", "loss", "err"] {
        return Err(bad("not a landscape table (expected columns model,alpha,beta,loss,err)".into()));
    }
    let mut out: Vec<Landscape> = Vec::new();
    for (line, row) in r.records().enumerate() {
        let row = row.map_err(|e| bad(e.to_string()))?;
        let num = |i: usize| -> Result<f64> {
            row[i].parse::<f64>().map_err(|_| bad(format!("row {}: {:?} is not a number", line + 2, &row[i])))
        };
        let p = Point { alpha: num(1)?, beta: num(2)?, loss: num(3)?, err: num(4)? };
        match out.last_mut().filter(|l| l.name == row[0]) {
            Some(l) => l.points.push(p),
            None => out.push(Landscape {
                name: row[0].to_string(),
                grid: Grid { dims: Dims::One, points: 0, range: 0.0 },
                points: vec![p],
            }),
        }
    }
    if out.is_empty() {
        return Err(bad("no rows".into()));
    }
    for l in &mut out {
        let mut alphas: Vec<f64> = l.points.iter().map(|p| p.alpha).collect();
        alphas.sort_by(f64::total_cmp);
        alphas.dedup();
        let two = l.points.iter().any(|p| p.beta != 0.0);
        let n = alphas.len();
        if n < 2 || l.points.len() != if two { n * n } else { n } {
            return Err(bad(format!("{}: {} points do not form a grid", l.name, l.points.len())));
        }
        l.grid = Grid { dims: if two { Dims::Two } else { Dims::One }, points: n, range: alphas[n - 1] };
    }
    Ok(out)
}

/// The figure's default title, naming what the loss was measured on (`what`).
pub fn default_title(all: &[Landscape], what: &str) -> String {
    if all.iter().all(|l| l.grid.dims == Dims::Two) {
        format!("Loss landscape around the trained weights ({what})")
    } else {
        format!("Loss along a random direction ({what})")
    }
}

/// The figure: on a plane, filled contours of the loss side by side on one log colour scale;
/// on a line, the loss (log scale) and the error against α, one curve per network.
pub fn draw(all: &[Landscape], path: &Path, title: &str) -> Result<()> {
    let two = all.iter().all(|l| l.grid.dims == Dims::Two);
    if !two && all.iter().any(|l| l.grid.dims == Dims::Two) {
        return Err(Error::Output(format!("{}: cannot draw 1-D and 2-D landscapes in one figure", path.display())));
    }
    if two {
        let surfaces: Vec<Surface> = all
            .iter()
            .map(|l| Surface {
                name: l.name.clone(),
                axis: l.grid.axis(),
                values: l.points.iter().map(|p| p.loss).collect(),
            })
            .collect();
        let width = (120 + 430 * all.len() as u32).max(820);
        return filled_contours(path, title, &surfaces, ("α (direction 1)", "β (direction 2)", "loss"), (width, 520));
    }
    let line = |i: usize, l: &Landscape, pick: fn(&Point) -> f64| Line {
        name: l.name.clone(),
        points: l.points.iter().map(|p| (p.alpha, pick(p))).collect(),
        dashed: l.name.starts_with("plain"),
        bold: false,
        colour: i,
    };
    let panel = |title: &str, y: &str, log_y: bool, pick: fn(&Point) -> f64| Panel {
        title: Some(title.into()),
        x_desc: "α (filter-normalised direction)".into(),
        y_desc: y.into(),
        log_y,
        lines: all.iter().enumerate().map(|(i, l)| line(i, l, pick)).collect(),
        ..Default::default()
    };
    let panels = [panel("loss", "loss", true, |p| p.loss), panel("error", "error (%)", false, |p| p.err)];
    line_chart(path, Some(title), &panels, 1000, 800)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_is_symmetric_with_an_exact_zero() {
        let g = Grid { dims: Dims::Two, points: 5, range: 1.0 };
        assert_eq!(g.axis(), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(g.points().len(), 25);
        assert_eq!(g.points()[1], (-0.5, -1.0), "α varies fastest");
        let g = Grid { dims: Dims::One, points: 51, range: 0.5 };
        assert_eq!(g.axis()[25], 0.0);
        assert!(g.points().iter().all(|p| p.1 == 0.0));
    }

    #[test]
    fn flatness_counts_points_below_twice_the_centre() {
        let p = |alpha: f64, loss: f64| Point { alpha, beta: 0.0, loss, err: 0.0 };
        let f = flatness(&[p(-2.0, 5.0), p(0.0, 1.0), p(1.0, 1.5), p(2.0, 2.0)]).unwrap();
        assert_eq!(f.centre_loss, 1.0);
        assert_eq!(f.below_twice_centre, 0.5);
        assert_eq!((f.edge_median_loss, f.max_loss), (3.5, 5.0), "the edge is α = ±2");
    }
}
