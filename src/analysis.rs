//! The `grad-flow` and `responses` commands: run [`crate::gradflow`] over several networks
//! or checkpoints, write the CSV tables and draw the figures.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::data::{DataSource, Part, Split};
use crate::gradflow::{self, FlowRow};
use crate::inference::{dataset_for_all, load_model, normalizer_for, ModelOverrides};
use crate::model::{Compute, ResNet, ResNetConfig};
use crate::normalize::{Normalization, Normalizer};
use crate::viz::figure::{line_chart, Line, Panel, Target};

/// Which fixed batches: `count` batches of `size` images in the order drawn from `seed`.
#[derive(Debug, Clone, Copy)]
pub struct FixedBatches {
    pub count: i64,
    pub size: i64,
    pub seed: i64,
}

/// The batches `spec` names from the training images, in a seeded random order,
/// normalised, not augmented, on `device`.
pub fn fixed_batches(
    train: &Split,
    normalizer: &Normalizer,
    spec: FixedBatches,
    device: Device,
) -> Vec<(Tensor, Tensor)> {
    let FixedBatches { count: k, size: batch_size, seed } = spec;
    tch::manual_seed(seed);
    let perm = Tensor::randperm(train.len(), (Kind::Int64, Device::Cpu));
    (0..k)
        .map_while(|i| i.checked_mul(batch_size).filter(|start| *start < train.len()))
        .map(|start| {
            let idx = perm.narrow(0, start, batch_size.min(train.len() - start));
            let (x, y) = train.select(&idx);
            (normalizer.apply(&x.to_device(device)), y.to_device(device))
        })
        .collect()
}

/// One network's gradient-flow table, named for the figure and the CSV.
pub struct Flow {
    pub name: String,
    pub rows: Vec<FlowRow>,
}

impl Flow {
    /// The smallest factor by which one block passes the gradient back,
    /// ‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖ over the blocks l, and the block's name. With an exact
    /// identity path (∂x_{l+1}/∂x_l = 1 + ∂F/∂x_l) it stays near or above 1; a block that
    /// shrinks the gradient shows below 1.
    pub fn smallest_block_factor(&self) -> (f64, &str) {
        let blocks = &self.rows[1..self.rows.len() - 1];
        blocks
            .iter()
            .zip(&self.rows[2..])
            .map(|(r, next)| (r.grad_norm / next.grad_norm, r.name.as_str()))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::NAN, ""))
    }
}

/// Gradient flow of a freshly initialised network (seeded) on `batches`.
pub fn flow_at_init(cfg: ResNetConfig, batches: &[(Tensor, Tensor)], seed: i64, device: Device) -> Result<Flow> {
    tch::manual_seed(seed);
    let vs = VarStore::new(device);
    let model = ResNet::new(&vs.root(), cfg)?;
    let mut name = cfg.name();
    if cfg.zero_init_residual {
        name.push_str("-zeroinit");
    }
    Ok(Flow { name, rows: gradflow::grad_flow(&model, batches, true) })
}

/// Writes all tables into one CSV (a `model` column first) and the figure: ‖∂L/∂x_l‖
/// relative to the last block, and std(x_l), against the boundary index, log scale.
pub fn write_flows(flows: &[Flow], csv_path: &Path, plot_path: &Path, title: &str) -> Result<()> {
    let csv_err = |e: csv::Error| Error::io(csv_path, std::io::Error::other(e));
    let mut w = csv::Writer::from_path(csv_path).map_err(csv_err)?;
    w.write_record(["model", "index", "boundary", "grad_norm", "ratio_to_last", "activation_std"]).map_err(csv_err)?;
    for f in flows {
        for r in &f.rows {
            w.write_record([
                crate::text::csv_text(&f.name),
                r.index.to_string(),
                r.name.clone(),
                format!("{:e}", r.grad_norm),
                format!("{:e}", r.ratio_to_last),
                format!("{:e}", r.activation_std),
            ])
            .map_err(csv_err)?;
        }
    }
    w.flush().map_err(|e| Error::io(csv_path, e))?;
    let lines = |pick: fn(&FlowRow) -> f64| -> Vec<Line> {
        flows
            .iter()
            .enumerate()
            .map(|(i, f)| Line {
                name: f.name.clone(),
                points: f.rows.iter().map(|r| (r.index as f64, pick(r))).collect(),
                dashed: f.name.starts_with("plain"),
                bold: false,
                colour: i,
            })
            .collect()
    };
    let panels = [
        Panel {
            title: Some("‖∂L/∂x_l‖ relative to the last block (input → output)".into()),
            x_desc: "boundary l (0 = image, then each block's input, last = output)".into(),
            y_desc: "gradient norm / last".into(),
            log_y: true,
            lines: lines(|r| r.ratio_to_last),
            bands: Vec::new(),
            y_max: None,
        },
        Panel {
            title: Some("std of the activation x_l".into()),
            x_desc: "boundary l".into(),
            y_desc: "std(x_l)".into(),
            log_y: true,
            lines: lines(|r| r.activation_std),
            bands: Vec::new(),
            y_max: None,
        },
    ];
    line_chart(plot_path, Some(title), &panels, 1000, 900)
}

/// The Fig. 7 measurements of one checkpoint.
pub struct Responses {
    pub name: String,
    /// (layer name, std) in layer order.
    pub layers: Vec<(String, f64)>,
}

/// Measures every checkpoint's layer responses on the test set of `data`, the data set
/// each was trained on.
pub fn responses_of(
    weights: &[PathBuf],
    normalize: Option<Normalization>,
    data: &DataSource,
    limit_test: Option<usize>,
    device: Device,
) -> Result<Vec<Responses>> {
    dataset_for_all(weights, data.dataset.into())?;
    let test = data.load_split(Part::Test, limit_test)?.to_device(device);
    let mut out: Vec<Responses> = Vec::new();
    for path in weights {
        let loaded = load_model(path, &ModelOverrides::default(), device, Compute::default())?;
        let normalizer = normalizer_for(&loaded.checkpoint, normalize, data)?.to_device(device);
        let mut name = loaded.model.config.name();
        if out.iter().any(|r| r.name == name) {
            name = format!("{name} ({})", path.display());
        }
        out.push(Responses { name, layers: gradflow::layer_responses(&loaded.model, &test, &normalizer) });
    }
    Ok(out)
}

/// Writes the Fig. 7 table (layer order and sorted order side by side) and figure.
pub fn write_responses(all: &[Responses], csv_path: &Path, plot_path: &Path) -> Result<()> {
    let csv_err = |e: csv::Error| Error::io(csv_path, std::io::Error::other(e));
    let mut w = csv::Writer::from_path(csv_path).map_err(csv_err)?;
    w.write_record(["model", "layer_index", "layer", "std", "sorted_index", "sorted_std"]).map_err(csv_err)?;
    for r in all {
        for (i, ((layer, std), s)) in r.layers.iter().zip(sorted(r)).enumerate() {
            w.write_record([
                crate::text::csv_text(&r.name),
                (i + 1).to_string(),
                layer.clone(),
                format!("{std:.6}"),
                (i + 1).to_string(),
                format!("{s:.6}"),
            ])
            .map_err(csv_err)?;
        }
    }
    w.flush().map_err(|e| Error::io(csv_path, e))?;
    fig7(all, plot_path)
}

/// A model's layer responses, largest first.
fn sorted(r: &Responses) -> Vec<f64> {
    let mut s: Vec<f64> = r.layers.iter().map(|(_, v)| *v).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

/// A row of the Fig. 7 table (`fig7.csv`, `responses -o`), as written by [`write_responses`].
#[derive(serde::Deserialize)]
struct ResponseRow {
    model: String,
    layer: String,
    std: f64,
}

/// Reads a Fig. 7 table back, the models in their order; each error names the file.
pub fn read_responses(csv_path: &Path) -> Result<Vec<Responses>> {
    let bad = |m: String| Error::data(csv_path, m);
    let bytes = crate::files::read(csv_path)?;
    let mut r = csv::Reader::from_reader(bytes.as_slice());
    let mut out: Vec<Responses> = Vec::new();
    for row in r.deserialize::<ResponseRow>() {
        let row = row.map_err(|e| bad(e.to_string()))?;
        match out.last_mut() {
            Some(last) if last.name == row.model => last.layers.push((row.layer, row.std)),
            _ => out.push(Responses { name: row.model, layers: vec![(row.layer, row.std)] }),
        }
    }
    if out.is_empty() {
        return Err(bad("no layer responses in it".into()));
    }
    Ok(out)
}

/// The Fig. 7 figure: each model's layer responses in layer order and sorted.
pub fn fig7<'a>(all: &[Responses], out: impl Into<Target<'a>>) -> Result<()> {
    let line = |i: usize, r: &Responses, ys: Vec<f64>| Line {
        name: r.name.clone(),
        points: ys.into_iter().enumerate().map(|(k, y)| ((k + 1) as f64, y)).collect(),
        dashed: r.name.starts_with("plain"),
        bold: false,
        colour: i,
    };
    let panels = [
        Panel {
            title: Some("layer index (original order)".into()),
            x_desc: "3×3 layer".into(),
            y_desc: "std".into(),
            log_y: false,
            lines: all
                .iter()
                .enumerate()
                .map(|(i, r)| line(i, r, r.layers.iter().map(|(_, v)| *v).collect()))
                .collect(),
            bands: Vec::new(),
            y_max: None,
        },
        Panel {
            title: Some("layer index (sorted by magnitude)".into()),
            x_desc: "3×3 layer, largest first".into(),
            y_desc: "std".into(),
            log_y: false,
            lines: all.iter().enumerate().map(|(i, r)| line(i, r, sorted(r))).collect(),
            bands: Vec::new(),
            y_max: None,
        },
    ];
    line_chart(out, Some("Std of layer responses (after BN, before ReLU/addition), as Fig. 7"), &panels, 1000, 900)
}
