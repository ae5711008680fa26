//! `plot`: the learning curves of runs, as the paper's Fig. 6 draws them.

use anyhow::Result;
use clap::Args;
use resnet_cifar::viz::curves::{Metric, XAxis};
use std::path::PathBuf;

use super::values;

#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// Run directories holding metrics.csv.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output file, .png or .svg.
    #[arg(short, long)]
    pub output: PathBuf,
    /// x axis: iterations or epochs.
    #[arg(long, value_parser = values::of::<XAxis>(), default_value_t = XAxis::Iterations)]
    pub x: XAxis,
    /// error (%) or loss.
    #[arg(long, value_parser = values::of::<Metric>(), default_value_t = Metric::Error)]
    pub metric: Metric,
    /// Top of the y axis [default: 20 for error, like the paper; the largest loss for loss].
    #[arg(long, allow_negative_numbers = true)]
    pub ymax: Option<f64>,
    #[arg(long)]
    pub title: Option<String>,
}

/// Draws the runs' curves into one PNG or SVG.
pub fn plot_command(args: &PlotArgs) -> Result<()> {
    let inputs: Vec<PathBuf> = args.runs.iter().map(|d| d.join("metrics.csv")).collect();
    let inputs: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
    resnet_cifar::files::check_outputs(&[("--output", &args.output)], &inputs)?;
    let series =
        args.runs.iter().map(|d| resnet_cifar::viz::curves::read_run(d)).collect::<resnet_cifar::Result<Vec<_>>>()?;
    let opts = resnet_cifar::viz::curves::PlotOptions {
        x: args.x,
        metric: args.metric,
        ymax: args.ymax,
        title: args.title.clone(),
        ..Default::default()
    };
    resnet_cifar::viz::curves::plot(&series, &args.output, &opts)?;
    println!("wrote {}", args.output.display());
    Ok(())
}
