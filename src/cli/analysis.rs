//! `grad-flow` and `responses`: the paper's argument measured through depth, the gradient
//! norm ‖∂L/∂x_l‖ at each block's input and the layer responses of Fig. 7.

use anyhow::Result;
use clap::Args;
use resnet_cifar::analysis;
use resnet_cifar::data::Part;
use resnet_cifar::inference::{
    common_dataset, dataset_for_all, load_model, normalizer_for, LoadedModel, ModelOverrides,
};
use resnet_cifar::model::{Arch, BlockKind, Compute, ResNetConfig, Shortcut};
use resnet_cifar::normalize::Normalization;
use resnet_cifar::normalize::Normalizer;
use std::path::PathBuf;
use tch::Device;

use super::{device_arg, values, DataArgs, Threads};

/// Where an analysis writes its table and figure.
#[derive(Debug, Clone, Args)]
pub struct TableOutput {
    /// Output CSV.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Figure (.png or .svg) [default: the CSV's path with .png].
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl TableOutput {
    pub fn plot_path(&self) -> PathBuf {
        self.plot.clone().unwrap_or_else(|| self.output.with_extension("png"))
    }

    /// Refuses outputs that are one of `inputs`, each other, or not a regular file.
    pub fn check_against(&self, inputs: &[PathBuf]) -> Result<()> {
        let plot = self.plot_path();
        let inputs: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
        resnet_cifar::files::check_outputs(&[("--output", &self.output), ("--plot", &plot)], &inputs)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct GradFlowArgs {
    /// Architectures, comma-separated (e.g. plain,resnet,preact); one table and line per network.
    #[arg(long, value_parser = values::of::<Arch>(), value_delimiter = ',', default_value = "resnet")]
    pub arch: Vec<Arch>,
    /// Depths, comma-separated (e.g. 56,110).
    #[arg(long, value_delimiter = ',', default_value = "20", allow_negative_numbers = true)]
    pub depth: Vec<i64>,
    #[arg(long, value_parser = values::of::<Shortcut>(), default_value_t = Shortcut::A)]
    pub shortcut: Shortcut,
    /// Block of the pre-activation nets [default: basic below depth 164, bottleneck from 164].
    #[arg(long, value_parser = values::of::<BlockKind>())]
    pub block: Option<BlockKind>,
    /// Trained checkpoints instead of freshly initialised networks, one line each (repeat
    /// the flag).
    #[arg(long)]
    pub weights: Vec<PathBuf>,
    /// Training batches to average over (no augmentation, fixed seed).
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub batches: i64,
    #[arg(long, default_value_t = 128, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub batch_size: i64,
    /// No BatchNorm.
    #[arg(long)]
    pub no_bn: bool,
    /// Residual blocks start as the identity (last BN's γ = 0).
    #[arg(long)]
    pub zero_init_residual: bool,
    /// Input normalisation [default: the checkpoint's, else pixel-mean].
    #[arg(long, value_parser = values::of::<Normalization>())]
    pub normalize: Option<Normalization>,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: i64,
    #[arg(long, default_value = "auto", value_parser = device_arg)]
    pub device: Device,
    #[command(flatten)]
    pub threads: Threads,
    #[command(flatten)]
    pub out: TableOutput,
}

#[derive(Debug, Clone, Args)]
pub struct ResponsesArgs {
    /// Checkpoints, one series each (repeat the flag).
    #[arg(long, required = true)]
    pub weights: Vec<PathBuf>,
    /// Input normalisation [default: each checkpoint's].
    #[arg(long, value_parser = values::of::<Normalization>())]
    pub normalize: Option<Normalization>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Use the first N test images only.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub limit_test: Option<usize>,
    #[arg(long, default_value = "auto", value_parser = device_arg)]
    pub device: Device,
    #[command(flatten)]
    pub threads: Threads,
    #[command(flatten)]
    pub out: TableOutput,
}

impl GradFlowArgs {
    fn fixed_batches(&self) -> analysis::FixedBatches {
        analysis::FixedBatches { count: self.batches, size: self.batch_size, seed: self.seed }
    }
}

pub fn grad_flow_command(args: &GradFlowArgs) -> Result<()> {
    args.out.check_against(&args.weights)?;
    let device = args.device;
    let loaded: Vec<LoadedModel> = args
        .weights
        .iter()
        .map(|w| load_model(w, &ModelOverrides::default(), device, Compute::default()))
        .collect::<resnet_cifar::Result<_>>()?;
    let dataset = common_dataset(loaded.iter().map(|l| Ok(&l.checkpoint)), args.data.choice())?;
    let data = args.data.source(dataset);
    let train = data.load_split(Part::Train, None)?;
    if args.batch_size > train.len() {
        anyhow::bail!(
            "--batch-size {} is larger than the {} training images: use at most {}",
            args.batch_size,
            train.len(),
            train.len()
        );
    }
    let mut flows = Vec::new();
    let batches_for = |n: &Normalizer| analysis::fixed_batches(&train, n, args.fixed_batches(), device);
    for loaded in &loaded {
        let normalizer = normalizer_for(&loaded.checkpoint, args.normalize, &data)?.to_device(device);
        let rows = resnet_cifar::gradflow::grad_flow(&loaded.model, &batches_for(&normalizer), true);
        flows.push(analysis::Flow { name: loaded.model.config.name(), rows });
    }
    if loaded.is_empty() {
        let kind = args.normalize.unwrap_or_default();
        let normalizer = Normalizer::fit(kind, &train.images).to_device(device);
        let batches = batches_for(&normalizer);
        for &depth in &args.depth {
            for &arch in &args.arch {
                let cfg = ResNetConfig {
                    depth,
                    arch,
                    shortcut: args.shortcut,
                    batch_norm: !args.no_bn,
                    zero_init_residual: args.zero_init_residual,
                    block: args.block,
                    num_classes: dataset.num_classes(),
                };
                resnet_cifar::memory::check_fits(&cfg)?;
                flows.push(analysis::flow_at_init(cfg, &batches, args.seed, device)?);
            }
        }
    }
    let plot = args.out.plot_path();
    let when = if args.weights.is_empty() { "at initialisation" } else { "trained" };
    let bn = if args.no_bn { ", no BN" } else { "" };
    analysis::write_flows(&flows, &args.out.output, &plot, &format!("Gradient flow through depth, {when}{bn}"))?;
    for f in &flows {
        let first = &f.rows[1];
        let (factor, at) = f.smallest_block_factor();
        println!(
            "{}: ‖∂L/∂x‖ at {} / at output = {:.3e}; smallest block factor ‖∂L/∂x_l‖/‖∂L/∂x_l+1‖ = {factor:.3} ({at}); \
             std(x) at output {:.3e}",
            f.name,
            first.name,
            first.ratio_to_last,
            f.rows.last().map_or(0.0, |r| r.activation_std)
        );
    }
    println!("wrote {} and {}", args.out.output.display(), plot.display());
    Ok(())
}

/// `responses`: the standard deviation of each layer's response (Fig. 7), per network.
pub fn responses_command(args: &ResponsesArgs) -> Result<()> {
    args.out.check_against(&args.weights)?;
    let device = args.device;
    let data = args.data.source(dataset_for_all(&args.weights, args.data.choice())?);
    let all = analysis::responses_of(&args.weights, args.normalize, &data, args.limit_test, device)?;
    let plot = args.out.plot_path();
    analysis::write_responses(&all, &args.out.output, &plot)?;
    for r in &all {
        let stds: Vec<String> = r.layers.iter().map(|(_, s)| format!("{s:.2}")).collect();
        println!("{}: {}", r.name, stds.join(" "));
    }
    println!("wrote {} and {}", args.out.output.display(), plot.display());
    Ok(())
}
