//! The study behind Fig. 6 and Table 6 of He et al. (2015) at scale: a grid of depths ×
//! architectures × seeds, each cell an ordinary `train` run directory. The binary's
//! `resnet-cifar study` runs it; `examples/plain_vs_residual.rs` is the same comparison at
//! one depth, in one process, for reading.
//!
//! - [`plan`]: the grid, `grid.json`, the state of each cell, and [`plan::run_cell`].
//! - [`local`]: every core and GPU of one box (`--jobs`, `--devices`), one progress display.
//! - [`slurm`]: a Slurm job array and a collect job, preemption-safe; [`binary`]: the
//!   binary they run, kept where a `cargo clean` cannot reach it.
//! - [`results`]: Table 6 (`results.json`, `.csv`, `.md`), Fig. 6 and Fig. 7.
//!
//! The study knows nothing of HTML: its `report.html` is written by the layer above
//! (`html::study::write_report`), after [`collect`].

pub mod binary;
pub mod local;
pub mod plan;
pub mod results;
pub mod slurm;

use std::path::PathBuf;

use crate::error::Result;
pub use plan::{Cell, CellState, Exec, Grid, GridSpec, Shared};

/// Aggregates the finished cells of the grid in `dir`: the tables, Fig. 6 and, from the
/// trained networks (the first seed of each), Fig. 7 (`fig7.csv`, `fig7.png`). Returns
/// the files written.
pub fn collect(grid: &Grid, device: tch::Device) -> Result<(results::Results, Vec<PathBuf>)> {
    let (res, curves) = results::collect(grid)?;
    let mut files = results::write(grid, &res, &curves)?;
    let mut weights = Vec::new();
    for net in &res.nets {
        if let Some(c) = res.cells.iter().find(|c| c.arch == net.arch && c.depth == net.depth) {
            weights.push(grid.dir.join(&c.dir).join("best.safetensors"));
        }
    }
    let data = crate::data::DataSource::new(res.settings.dataset()?, Some(PathBuf::from(&res.settings.data_dir)));
    let limit = Some(res.settings.test_images as usize);
    let responses = crate::analysis::responses_of(&weights, None, &data, limit, device)
        .map_err(|e| crate::Error::Config(format!("Fig. 7: {e}")))?;
    let (csv, png) = (grid.dir.join("fig7.csv"), grid.dir.join("fig7.png"));
    crate::analysis::write_responses(&responses, &csv, &png)
        .map_err(|e| crate::Error::Config(format!("Fig. 7: {e}")))?;
    files.extend([csv, png]);
    Ok((res, files))
}
