//! `eval` and `predict`: a checkpoint (ours or the PyTorch reference's) on the test set or
//! on image files, read as its run recorded it unless a flag says otherwise.

use anyhow::Result;
use clap::Args;
use resnet_cifar::data::DataSource;
use resnet_cifar::eval_report::{self, ReportContext};
use resnet_cifar::inference::{
    class_names, dataset_for, load_model, normalizer_for, predict, read_image, LoadedModel, ModelOverrides,
};
use resnet_cifar::model::{Arch, BlockKind, Compute, Shortcut};
use resnet_cifar::normalize::Normalization;
use resnet_cifar::normalize::Normalizer;
use resnet_cifar::train;
use std::path::PathBuf;
use tch::Device;

use super::{device_arg, hints, values, ComputeArgs, DataArgs, Reported, Threads};

/// A checkpoint and how to read it.
#[derive(Debug, Clone, Args)]
pub struct WeightsArgs {
    /// A safetensors checkpoint (ours, or PyTorch's with the same tensor names).
    #[arg(long)]
    pub weights: PathBuf,
    /// Input normalisation [default: the checkpoint's].
    #[arg(long, value_parser = values::of::<Normalization>())]
    pub normalize: Option<Normalization>,
    /// Override the architecture from the checkpoint's metadata.
    #[arg(long, value_parser = values::of::<Arch>())]
    pub arch: Option<Arch>,
    /// Override the depth (else from the metadata, or inferred from the tensor names).
    #[arg(long, allow_negative_numbers = true)]
    pub depth: Option<i64>,
    /// Override the shortcut option.
    #[arg(long, value_parser = values::of::<Shortcut>())]
    pub shortcut: Option<Shortcut>,
    /// Override the block of a pre-activation net.
    #[arg(long, value_parser = values::of::<BlockKind>())]
    pub block: Option<BlockKind>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = device_arg)]
    pub device: Device,
    #[command(flatten)]
    pub threads: Threads,
    /// The data set (the checkpoint's own unless it records none) and its directory.
    #[command(flatten)]
    pub data: DataArgs,
}

impl WeightsArgs {
    /// The network, its input normalisation, and the data set it was trained on.
    fn load(&self, compute: Compute) -> Result<(LoadedModel, Normalizer, DataSource)> {
        let device = self.device;
        let overrides =
            ModelOverrides { arch: self.arch, depth: self.depth, shortcut: self.shortcut, block: self.block };
        let loaded = load_model(&self.weights, &overrides, device, compute)?;
        let mut data = self.data.source(dataset_for(&loaded.checkpoint, self.data.choice())?);
        if self.data.data_dir.is_none() {
            if let Some(dir) = recorded_data_dir(&self.weights, &data) {
                eprintln!("using the run's data directory {} (its config.json; --data-dir to choose)", dir.display());
                data.dir = dir;
            }
        }
        let normalizer = normalizer_for(&loaded.checkpoint, self.normalize, &data)?.to_device(device);
        Ok((loaded, normalizer, data))
    }
}

/// The data directory that the run holding `weights` recorded, where that run trained on
/// `data`'s data set and the directory exists (a checkpoint given without `--data-dir`).
fn recorded_data_dir(weights: &std::path::Path, data: &DataSource) -> Option<PathBuf> {
    let run = weights.parent().filter(|p| p.join("config.json").is_file())?;
    let cfg = train::config::config_from_run(run).ok()?;
    (cfg.data.dataset == data.dataset && cfg.data.dir != data.dir && cfg.data.dir.is_dir()).then_some(cfg.data.dir)
}

#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub limit_test: Option<usize>,
    /// Also draw the confusion matrix as a heat map (row-normalised %), PNG or SVG.
    #[arg(long, value_name = "FILE.png|svg")]
    pub confusion: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub top: i64,
    /// PNG or JPEG files, any size (resized to 32×32).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

pub fn eval_command(args: &EvalArgs) -> Result<()> {
    let w = &args.weights;
    if let Some(out) = &args.confusion {
        resnet_cifar::viz::figure::output_format_of(out)?;
        resnet_cifar::files::check_outputs(&[("--confusion", out)], &[&w.weights])?;
    }
    let (loaded, normalizer, data) = w.load(args.compute.compute())?;
    let (eval, classes) = eval_report::score(&loaded, &normalizer, &data, args.limit_test)?;
    let ctx = ReportContext {
        checkpoint: &w.weights.display().to_string(),
        data_dir: &data.dir.display().to_string(),
        dataset: data.dataset,
        model: loaded.model.config,
        normalization: normalizer.kind,
        classes: &classes,
    };
    let scores = eval_report::scores(&ctx, &eval);
    if let Some(out) = &args.confusion {
        let counts = Vec::<Vec<i64>>::try_from(&eval.confusion).expect("a square confusion matrix");
        let title = format!("{}: confusion matrix (% of each true class)", loaded.model.config.name());
        resnet_cifar::viz::confusion::confusion_matrix(out.as_path(), &title, &classes, &counts)?;
    }
    let saved = eval_report::save_scores(&w.weights, &scores)?;
    if args.json {
        println!("{}", serde_json::to_string(&scores).expect("scores serialise"));
    } else {
        print!("{}", eval_report::text(&ctx, &eval));
        if let Some(p) = saved {
            println!("scores saved to {} (for `resnet-cifar report`)", p.display());
        }
    }
    Ok(())
}

pub fn predict_command(args: &PredictArgs) -> Result<()> {
    let (loaded, normalizer, data) = args.weights.load(Compute::default())?;
    let classes = class_names(&loaded.checkpoint, &data)?;
    let mut failed = 0;
    for path in &args.images {
        let result = read_image(path)
            .and_then(|img| predict(&loaded.model, &normalizer, &img.to_device(loaded.vs.device()), args.top));
        match result {
            Ok(preds) => {
                let top: Vec<String> =
                    preds[0].iter().map(|(c, p)| format!("{} {:.1}%", classes[*c as usize], 100.0 * p)).collect();
                println!("{}: {}", path.display(), top.join(", "));
            }
            Err(e) => {
                eprintln!("error: {}", hints::explain(&e));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Reported.into());
    }
    Ok(())
}
