//! `resnet-cifar report PATH… -o report.html`: one self-contained HTML file (inline SVG and
//! CSS, no script, nothing fetched) for runs or study directories ([`resnet_cifar::html`]).
//! With `--eval` each run's best checkpoint is first evaluated here ([`evaluate_run`]); the
//! HTML layer only draws what it is given.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use tch::Device;

use resnet_cifar::data::DataSource;
use resnet_cifar::eval_report::{self, ReportContext};
use resnet_cifar::html::{self, study::StudyReport, RunReport, Section};
use resnet_cifar::inference::{dataset_for, load_model, normalizer_for, ModelOverrides};
use resnet_cifar::model::Compute;
use resnet_cifar::study::Grid;
use resnet_cifar::train::RunFile;

use super::train_args::device_arg;

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Run directories (config.json, metrics.csv) or study directories (grid.json).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(short, long, default_value = "report.html")]
    pub output: PathBuf,
    /// First evaluate each run's best.safetensors on its test set, as `eval` does (the
    /// scores are saved beside it as best.eval.json, which the report then shows).
    #[arg(long)]
    pub eval: bool,
    /// The data directory for --eval [default: each run's own].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Device for --eval: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = device_arg)]
    pub device: Device,
    #[command(flatten)]
    pub threads: super::Threads,
    /// The page's title [default: from the paths].
    #[arg(long)]
    pub title: Option<String>,
}

pub fn report_command(args: &ReportArgs) -> Result<()> {
    let ext = args.output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if !matches!(ext.as_deref(), Some("html" | "htm")) {
        bail!("{}: the report is an HTML file: name it *.html", args.output.display());
    }
    let inputs = input_files(&args.paths);
    let inputs: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
    resnet_cifar::files::check_outputs(&[("-o", &args.output)], &inputs)?;
    if args.eval {
        // Every run and checkpoint is read before any is evaluated: a refusal of the last
        // run leaves no scores file beside the first.
        for path in args.paths.iter().filter(|p| p.is_dir() && !p.join("grid.json").is_file()) {
            RunReport::read(path)?;
            resnet_cifar::checkpoint::read(&path.join("best.safetensors"))?;
        }
    }
    let mut runs = Vec::new();
    let mut sections = Vec::new();
    for path in &args.paths {
        if !path.is_dir() {
            bail!("{}: no such directory: give run directories or study directories", path.display());
        }
        if path.join("grid.json").is_file() {
            let grid = Grid::open(path)?;
            sections.push(Section::Study(Box::new(StudyReport::collect(&grid)?)));
            continue;
        }
        if args.eval {
            RunReport::read(path)?; // a run directory, before anything is computed
            let saved = evaluate_run(path, args.data_dir.as_deref(), args.device)?;
            eprintln!("evaluated {}: {}", path.join("best.safetensors").display(), saved.display());
        }
        runs.push(RunReport::read(path)?);
    }
    if !runs.is_empty() {
        sections.insert(0, Section::Runs(runs));
    }
    let title = args.title.clone().unwrap_or_else(|| {
        let names: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        format!("resnet-cifar report: {}", names.join(", "))
    });
    html::write(&args.output, &title, &sections)?;
    println!("report written to {}", args.output.display());
    Ok(())
}

/// Evaluates the `best.safetensors` of the run in `dir` on its test set (as `eval` does),
/// from `data_dir` or the run's own data directory, and saves the scores beside it.
fn evaluate_run(dir: &Path, data_dir: Option<&Path>, device: Device) -> Result<PathBuf> {
    let config = RunFile::read(dir)?;
    let weights = dir.join("best.safetensors");
    let loaded = load_model(&weights, &ModelOverrides::default(), device, Compute::default())?;
    let dataset = dataset_for(&loaded.checkpoint, config.data.dataset.into())?;
    let data = DataSource::new(dataset, Some(data_dir.map_or(config.data.dir.clone(), Path::to_path_buf)));
    let normalizer = normalizer_for(&loaded.checkpoint, None, &data)?.to_device(device);
    let (eval, classes) = eval_report::score(&loaded, &normalizer, &data, None)?;
    let ctx = ReportContext {
        checkpoint: &weights.display().to_string(),
        data_dir: &data.dir.display().to_string(),
        dataset,
        model: loaded.model.config,
        normalization: normalizer.kind,
        classes: &classes,
    };
    let saved = eval_report::save_scores(&weights, &eval_report::scores(&ctx, &eval))?;
    saved.ok_or_else(|| anyhow::anyhow!("{}: not in a run directory (no config.json beside it)", weights.display()))
}

/// The files the report may read: every file under the given directories (three levels
/// deep: a study's cells) but earlier reports, so that `-o` is never one of them, by path
/// or through a link.
fn input_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack: Vec<(PathBuf, u32)> = paths.iter().map(|p| (p.clone(), 0)).collect();
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && depth < 3 => stack.push((path, depth + 1)),
                // An earlier report is not read: writing the new one over it is fine.
                Ok(t) if t.is_file() && !path.extension().is_some_and(|e| e == "html" || e == "htm") => {
                    files.push(path)
                }
                _ => {}
            }
        }
    }
    files
}
