//! The study's results in Table 6's layout (per network: parameters, seeds, test error
//! mean ± std, best, min–max, final training error mean ± std, the paper's figure) as
//! `results.json`, `results.csv` and `results.md`, and the figures: Fig. 6 (a panel per family:
//! plain and residual; dashed training error, bold test error; the mean over seeds with a
//! min–max band) and Fig. 7 (layer responses of the trained networks).

use std::path::PathBuf;

use serde::Serialize;

use crate::data::{DataSource, Dataset, DatasetName, Labels, Part};
use crate::error::{Error, Result};
use crate::metrics::read as read_metrics;
use crate::viz::curves::Row;
use crate::viz::figure::{line_chart_grid, Band, Line, Panel, Target};

use super::plan::{Cell, CellState, Grid};

/// Test error (%) of the ResNets in Table 6 of He et al. (2015); 110 is the best of 5
/// runs (mean 6.61 ± 0.16). The paper gives no table for the plain nets (Fig. 6 only).
pub const PAPER_TEST_ERR: [(i64, f64); 6] = [(20, 8.75), (32, 7.51), (44, 7.17), (56, 6.97), (110, 6.43), (1202, 7.93)];

/// Test error (%) of the pre-activation ResNets on CIFAR-10 in He et al. (2016), "Identity
/// Mappings in Deep Residual Networks", Tables 2 and 3 (164 and 1001 with bottlenecks; 1001
/// is the mean of 5 runs' best, 4.89 ± 0.14 over runs).
pub const PAPER_PREACT_TEST_ERR: [(i64, f64); 3] = [(110, 6.37), (164, 5.46), (1001, 4.92)];

/// The paper's test error for a network, when Table 6 (or, for `preact`, the 2016 paper)
/// has it.
pub fn paper_test_err(arch: &str, depth: i64) -> Option<f64> {
    let table: &[(i64, f64)] = match arch {
        "resnet" => &PAPER_TEST_ERR,
        "preact" => &PAPER_PREACT_TEST_ERR,
        _ => return None,
    };
    table.iter().find(|(d, _)| *d == depth).map(|(_, e)| *e)
}

/// A finished cell's learning curves (its `metrics.csv` rows).
pub type Curves = (Cell, Vec<Row>);

/// One finished cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    pub arch: String,
    pub depth: i64,
    pub seed: i64,
    pub final_train_err: f64,
    pub final_test_err: f64,
    pub best_test_err: f64,
    /// Training and evaluation seconds, summed over epochs.
    pub wall_seconds: f64,
    pub device: String,
    pub dir: PathBuf,
}

/// One network over its seeds.
#[derive(Debug, Clone, Serialize)]
pub struct NetResult {
    pub arch: String,
    pub depth: i64,
    pub params: i64,
    pub seeds: Vec<i64>,
    /// Final test error: mean, sample standard deviation (0 for one seed), lowest, highest.
    pub test_err_mean: f64,
    pub test_err_std: f64,
    pub test_err_best: f64,
    pub test_err_max: f64,
    pub train_err_mean: f64,
    pub train_err_std: f64,
    pub paper_test_err: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub epochs: i64,
    pub iterations: i64,
    pub train_images: i64,
    pub test_images: i64,
    pub precision: String,
    pub batch_size: i64,
    pub schedule: String,
    pub dataset: DatasetName,
    pub labels: Option<Labels>,
    pub data_dir: String,
}

impl Settings {
    /// The cells' data set (the same for all: it is one of the grid's train flags).
    pub fn dataset(&self) -> Result<Dataset> {
        Dataset::new(self.dataset, self.labels)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub settings: Settings,
    pub nets: Vec<NetResult>,
    pub cells: Vec<CellResult>,
    /// Cells not finished yet (`<arch>-<depth>/seed-<s>`).
    pub missing: Vec<String>,
}

/// Mean and sample standard deviation (n − 1; 0 for a single value).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Per-network aggregates of `cells`, by architecture, then depth.
pub fn aggregate(cells: &[CellResult], params: &dyn Fn(&str, i64) -> i64) -> Vec<NetResult> {
    let mut nets: Vec<(String, i64)> = cells.iter().map(|c| (c.arch.clone(), c.depth)).collect();
    nets.sort();
    nets.dedup();
    nets.into_iter()
        .map(|(arch, depth)| {
            let of: Vec<&CellResult> = cells.iter().filter(|c| c.arch == arch && c.depth == depth).collect();
            let test: Vec<f64> = of.iter().map(|c| c.final_test_err).collect();
            let train: Vec<f64> = of.iter().map(|c| c.final_train_err).collect();
            let (test_err_mean, test_err_std) = mean_std(&test);
            let (train_err_mean, train_err_std) = mean_std(&train);
            NetResult {
                params: params(&arch, depth),
                paper_test_err: paper_test_err(&arch, depth),
                seeds: of.iter().map(|c| c.seed).collect(),
                test_err_best: test.iter().copied().fold(f64::INFINITY, f64::min),
                test_err_max: test.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                test_err_mean,
                test_err_std,
                train_err_mean,
                train_err_std,
                arch,
                depth,
            }
        })
        .collect()
}

/// Images in the binary files of `part` of `data` (counted from their sizes).
fn records(data: &DataSource, part: Part) -> i64 {
    let record = data.dataset.record_bytes() as u64;
    let bytes = |name: &str| std::fs::metadata(data.dir.join(name)).map_or(0, |m| m.len());
    data.dataset.files(part).iter().map(|f| (bytes(f.name) / record) as i64).sum()
}

/// Reads every finished cell of `grid`.
pub fn collect(grid: &Grid) -> Result<(Results, Vec<Curves>)> {
    let mut cells = Vec::new();
    let mut curves = Vec::new();
    let mut missing = Vec::new();
    let mut settings = None;
    let mut params: Vec<(String, i64, i64)> = Vec::new();
    for cell in &grid.cells {
        if !matches!(grid.state(cell)?, CellState::Finished { .. }) {
            missing.push(cell.dir.display().to_string());
            continue;
        }
        let dir = grid.cell_dir(cell);
        // config.json once: the settings and what the run came to (parameters, iterations).
        let meta = crate::train::RunFile::read(&dir)?;
        let cfg = meta.config(&dir)?;
        let rows = read_metrics(&dir.join("metrics.csv"))?;
        let last = rows.last().expect("read_metrics returns at least one row");
        cells.push(CellResult {
            arch: cell.arch.clone(),
            depth: cell.depth,
            seed: cell.seed,
            final_train_err: last.train_err,
            final_test_err: last.test_err,
            best_test_err: rows.iter().map(|r| r.test_err).fold(f64::INFINITY, f64::min),
            wall_seconds: rows.iter().map(|r| r.epoch_seconds).sum(),
            device: meta.machine.device,
            dir: cell.dir.clone(),
        });
        params.push((cell.arch.clone(), cell.depth, meta.outcome.parameters));
        if settings.is_none() {
            let all_train = records(&cfg.data_source(), Part::Train);
            let train =
                cfg.data.limit_train.map_or(all_train, |l| (l as i64).min(all_train)) - cfg.data.val_split as i64;
            let all_test = records(&cfg.data_source(), Part::Test);
            settings = Some(Settings {
                epochs: cfg.schedule.epochs,
                iterations: meta.outcome.total_iterations,
                train_images: train,
                test_images: cfg.data.limit_test.map_or(all_test, |l| (l as i64).min(all_test)),
                precision: cfg.compute.precision.to_string(),
                batch_size: cfg.schedule.batch_size,
                schedule: cfg.schedule.kind.to_string(),
                dataset: cfg.data.dataset.name(),
                labels: cfg.data.dataset.labels(),
                data_dir: cfg.data.dir.display().to_string(),
            });
        }
        curves.push((cell.clone(), rows));
    }
    cells.sort_by(|a, b| (&a.arch, a.depth, a.seed).cmp(&(&b.arch, b.depth, b.seed)));
    let settings = settings.ok_or_else(|| {
        Error::Config(format!("no cell of the grid in {} has finished yet: nothing to collect", grid.dir.display()))
    })?;
    let lookup = |a: &str, d: i64| params.iter().find(|(x, y, _)| x == a && *y == d).map_or(0, |p| p.2);
    let mut nets = aggregate(&cells, &lookup);
    if settings.dataset()? != Dataset::Cifar10 {
        // Table 6's figures are CIFAR-10's.
        nets.iter_mut().for_each(|n| n.paper_test_err = None);
    }
    Ok((Results { settings, nets, cells, missing }, curves))
}

/// "mean ± std"; with one seed there is no spread to give, so the mean alone.
fn pm(mean: f64, std: f64, seeds: usize) -> String {
    if seeds < 2 {
        format!("{mean:.2}")
    } else {
        format!("{mean:.2} ± {std:.2}")
    }
}

/// The columns of Table 6 here (markdown and HTML).
pub const TABLE6_HEADER: [&str; 8] =
    ["network", "params", "seeds", "test err", "best", "min–max", "train err", "paper"];

/// Table 6: one row per network.
pub fn table6_rows(r: &Results) -> Vec<Vec<String>> {
    r.nets
        .iter()
        .map(|n| {
            let seeds: Vec<String> = n.seeds.iter().map(ToString::to_string).collect();
            vec![
                format!("{}-{}", n.arch, n.depth),
                format!("{:.2}M", n.params as f64 / 1e6),
                seeds.join(","),
                pm(n.test_err_mean, n.test_err_std, n.seeds.len()),
                format!("{:.2}", n.test_err_best),
                format!("{:.2}–{:.2}", n.test_err_best, n.test_err_max),
                pm(n.train_err_mean, n.train_err_std, n.seeds.len()),
                n.paper_test_err.map_or("—".into(), |e| format!("{e:.2}")),
            ]
        })
        .collect()
}

/// The columns of the table of cells.
pub const CELL_HEADER: [&str; 6] =
    ["cell", "final train err", "final test err", "best test err", "wall (min)", "device"];

/// One row per finished cell.
pub fn cell_rows(r: &Results) -> Vec<Vec<String>> {
    r.cells
        .iter()
        .map(|c| {
            vec![
                c.dir.display().to_string(),
                format!("{:.2}", c.final_train_err),
                format!("{:.2}", c.final_test_err),
                format!("{:.2}", c.best_test_err),
                format!("{:.1}", c.wall_seconds / 60.0),
                c.device.clone(),
            ]
        })
        .collect()
}

/// Table 6 as markdown.
pub fn markdown(r: &Results) -> String {
    let s = &r.settings;
    let dataset = s.dataset().map_or_else(|_| s.dataset.to_string(), |d| d.to_string());
    let mut md = format!(
        "# Plain vs. residual networks on {dataset} (He et al. 2015, Fig. 6 and Table 6)\n\n\
         {} epochs ({} iterations, batch {}, schedule `{}`), {} training and {} test images, {}; data `{}`.\n\
         Errors are final-epoch errors in %, mean ± sample std over seeds (the mean alone for one seed).\n\n",
        s.epochs, s.iterations, s.batch_size, s.schedule, s.train_images, s.test_images, s.precision, s.data_dir
    );
    let markdown_table = |md: &mut String, header: &[&str], rows: Vec<Vec<String>>, left: usize| {
        md.push_str(&format!("| {} |\n|", header.join(" | ")));
        for i in 0..header.len() {
            md.push_str(if i < left { "---|" } else { "---:|" });
        }
        md.push('\n');
        for row in rows {
            md.push_str(&format!("| {} |\n", row.join(" | ")));
        }
    };
    markdown_table(&mut md, &TABLE6_HEADER, table6_rows(r), 1);
    md.push('\n');
    markdown_table(&mut md, &CELL_HEADER, cell_rows(r), 1);
    if !r.missing.is_empty() {
        md.push_str(&format!("\nNot finished yet: {}.\n", r.missing.join(", ")));
    }
    md
}

/// Writes `results.json`, `results.csv`, `results.md`, `fig6.png` into the grid directory.
pub fn write(grid: &Grid, results: &Results, curves: &[Curves]) -> Result<Vec<PathBuf>> {
    let dir = &grid.dir;
    let json = serde_json::to_string_pretty(results).expect("results serialise");
    let path = |n: &str| dir.join(n);
    crate::files::write_atomic(&path("results.json"), json.as_bytes())?;
    crate::files::write_atomic(&path("results.md"), markdown(results).as_bytes())?;
    let csv_path = path("results.csv");
    let mut w = csv::Writer::from_writer(Vec::new());
    for n in &results.nets {
        w.serialize(CsvRow::from(n)).map_err(|e| Error::io(&csv_path, std::io::Error::other(e)))?;
    }
    let bytes = w.into_inner().map_err(|e| Error::io(&csv_path, std::io::Error::other(e.to_string())))?;
    crate::files::write_atomic(&csv_path, &bytes)?;
    let fig = path("fig6.png");
    fig6(curves, results.settings.dataset()?, &fig)?;
    Ok(vec![path("results.json"), csv_path, path("results.md"), fig])
}

/// `results.csv`: one row per network (the seeds joined by `;`).
#[derive(Serialize)]
struct CsvRow {
    arch: String,
    depth: i64,
    params: i64,
    seeds: String,
    test_err_mean: f64,
    test_err_std: f64,
    test_err_best: f64,
    test_err_max: f64,
    train_err_mean: f64,
    train_err_std: f64,
    paper_test_err: Option<f64>,
}

impl From<&NetResult> for CsvRow {
    fn from(n: &NetResult) -> Self {
        let seeds: Vec<String> = n.seeds.iter().map(ToString::to_string).collect();
        CsvRow {
            arch: n.arch.clone(),
            depth: n.depth,
            params: n.params,
            seeds: seeds.join(";"),
            test_err_mean: n.test_err_mean,
            test_err_std: n.test_err_std,
            test_err_best: n.test_err_best,
            test_err_max: n.test_err_max,
            train_err_mean: n.train_err_mean,
            train_err_std: n.train_err_std,
            paper_test_err: n.paper_test_err,
        }
    }
}

/// (x, low, high).
type BandPoint = (f64, f64, f64);

/// Mean, min and max over seeds at each epoch that every seed reached.
fn over_seeds(runs: &[&Vec<Row>], value: fn(&Row) -> f64) -> (Vec<(f64, f64)>, Vec<BandPoint>) {
    let n = runs.iter().map(|r| r.len()).min().unwrap_or(0);
    let mut mean = Vec::with_capacity(n);
    let mut band = Vec::with_capacity(n);
    for i in 0..n {
        let xs: Vec<f64> = runs.iter().map(|r| value(&r[i])).collect();
        let x = runs[0][i].iteration as f64;
        mean.push((x, mean_std(&xs).0));
        band.push((
            x,
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ));
    }
    (mean, band)
}

/// Fig. 6: plain nets left, ResNets right; per depth a colour, dashed training error and
/// bold test error (mean over seeds), each with its min–max band.
pub fn fig6<'a>(curves: &[Curves], dataset: Dataset, out: impl Into<Target<'a>>) -> Result<()> {
    let mut depths: Vec<i64> = curves.iter().map(|(c, _)| c.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let panel = |arch: &str, title: &str| {
        let mut p = Panel {
            title: Some(title.into()),
            x_desc: "iterations".into(),
            y_desc: "error (%)".into(),
            ..Default::default()
        };
        for (colour, &depth) in depths.iter().enumerate() {
            let runs: Vec<&Vec<Row>> =
                curves.iter().filter(|(c, _)| c.arch == arch && c.depth == depth).map(|(_, r)| r).collect();
            if runs.is_empty() {
                continue;
            }
            let name = format!("{arch}-{depth}");
            for (train, value) in [(true, (|r: &Row| r.train_err) as fn(&Row) -> f64), (false, |r: &Row| r.test_err)] {
                let (mean, band) = over_seeds(&runs, value);
                p.bands.push(Band { points: band, colour });
                let label = if train { format!("{name} train") } else { format!("{name} test") };
                p.lines.push(Line { name: label, points: mean, dashed: train, bold: !train, colour });
            }
        }
        p
    };
    let panels: Vec<Panel> = [
        panel("plain", "plain networks"),
        panel("resnet", "ResNets"),
        panel("preact", "pre-activation ResNets (2016)"),
    ]
    .into_iter()
    .filter(|p| !p.lines.is_empty())
    .collect();
    if panels.is_empty() {
        return Err(Error::Config("no finished cells to draw".into()));
    }
    let title = format!("{dataset}: dashed training error, bold test error (mean over seeds, min–max band)");
    line_chart_grid(out, Some(&title), &panels, panels.len(), (700 * panels.len() as u32, 560))
        .map_err(|e| Error::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(arch: &str, depth: i64, seed: i64, train: f64, test: f64) -> CellResult {
        CellResult {
            arch: arch.into(),
            depth,
            seed,
            final_train_err: train,
            final_test_err: test,
            best_test_err: test - 0.5,
            wall_seconds: 60.0,
            device: "cpu".into(),
            dir: format!("{arch}-{depth}/seed-{seed}").into(),
        }
    }

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12, "{s}");
        let (m, s) = mean_std(&[6.5, 7.5]);
        assert!((m - 7.0).abs() < 1e-12 && (s - 0.5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn aggregates_per_network_in_order() {
        let cells = [
            cell("plain", 20, 0, 10.0, 12.0),
            cell("resnet", 56, 0, 3.0, 8.0),
            cell("plain", 20, 1, 14.0, 16.0),
            cell("resnet", 56, 1, 5.0, 7.0),
            cell("resnet", 56, 2, 4.0, 9.0),
        ];
        let nets = aggregate(&cells, &|a, d| if a == "resnet" { d * 1000 } else { 7 });
        assert_eq!(nets.len(), 2);
        let p = &nets[0];
        assert_eq!((p.arch.as_str(), p.depth, p.params, p.seeds.clone()), ("plain", 20, 7, vec![0, 1]));
        assert_eq!((p.test_err_mean, p.test_err_best, p.test_err_max, p.train_err_mean), (14.0, 12.0, 16.0, 12.0));
        assert!((p.test_err_std - 8f64.sqrt()).abs() < 1e-12);
        assert_eq!(p.paper_test_err, None);
        let r = &nets[1];
        assert_eq!((r.params, r.seeds.clone(), r.test_err_mean, r.test_err_std), (56_000, vec![0, 1, 2], 8.0, 1.0));
        assert_eq!((r.test_err_best, r.test_err_max, r.train_err_mean, r.train_err_std), (7.0, 9.0, 4.0, 1.0));
        assert_eq!(r.paper_test_err, Some(6.97));
    }

    #[test]
    fn markdown_has_every_network_and_cell() {
        let cells = vec![cell("plain", 20, 0, 10.0, 12.0), cell("resnet", 110, 0, 1.0, 7.0)];
        let nets = aggregate(&cells, &|_, _| 270_000);
        let settings = Settings {
            epochs: 2,
            iterations: 10,
            train_images: 640,
            test_images: 100,
            precision: "fp32".into(),
            batch_size: 128,
            schedule: "scaled".into(),
            dataset: DatasetName::Cifar10,
            labels: None,
            data_dir: "d".into(),
        };
        let md = markdown(&Results { settings, nets, cells, missing: vec!["resnet-20/seed-1".into()] });
        assert!(md.contains("| plain-20 | 0.27M | 0 | 12.00 | 12.00 | 12.00–12.00 | 10.00 | — |"), "{md}");
        assert!(md.contains("| resnet-110 |") && md.contains("| 6.43 |"), "{md}");
        assert!(md.contains("| resnet-110/seed-0 | 1.00 | 7.00 | 6.50 | 1.0 | cpu |"), "{md}");
        assert!(md.contains("Not finished yet: resnet-20/seed-1."));
        assert!(md.starts_with("# Plain vs. residual networks on CIFAR-10 "), "{md}");
    }

    #[test]
    fn fig6_draws_two_panels() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = |k: f64| -> Vec<Row> {
            (1..=4)
                .map(|e| Row {
                    epoch: e,
                    iteration: 10 * e,
                    lr: 0.1,
                    train_loss: 1.0,
                    train_err: 50.0 / e as f64 + k,
                    test_loss: 1.0,
                    test_err: 60.0 / e as f64 + k,
                    epoch_seconds: 1.0,
                    images_per_sec: 100.0,
                    val: None,
                    grad_norms: None,
                })
                .collect()
        };
        let mk = |arch: &str, depth, seed| Cell {
            index: 0,
            arch: arch.into(),
            depth,
            seed,
            dir: PathBuf::from(format!("{arch}-{depth}/seed-{seed}")),
        };
        let curves = vec![
            (mk("plain", 20, 0), rows(0.0)),
            (mk("plain", 20, 1), rows(2.0)),
            (mk("resnet", 20, 0), rows(-1.0)),
            (mk("resnet", 56, 0), rows(-3.0)),
        ];
        let out = tmp.path().join("fig6.svg");
        fig6(&curves, Dataset::Cifar10, &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        for text in ["plain networks", "ResNets", "plain-20 train", "plain-20 test", "resnet-56 test"] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.contains("<polygon"), "no min–max band drawn");
        let png = tmp.path().join("fig6.png");
        fig6(&curves, Dataset::Cifar10, &png).unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 10_000);
    }
}
