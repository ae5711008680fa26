//! Command-line flags, parsed into raw values and then checked into the library's
//! configurations. With no subcommand the binary trains, so the seed's
//! `resnet-cifar --epochs 50 --batch_size 128` works as is.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::analysis;
use crate::bench::{self, BenchConfig, BenchMode};
use crate::data::default_data_dir;
use crate::device::parse_device;
use crate::evaluate::evaluate;
use crate::inference::{load_model, normalizer_for, predict, read_image, LoadedModel, ModelOverrides};
use crate::model::{Arch, Compute, Layout, Precision, ResNetConfig, Shortcut};
use crate::normalize::Normalization;
use crate::normalize::Normalizer;
use crate::report::{self, ReportContext};
use crate::schedule::ScheduleKind;
use crate::train::{self, TrainConfig};

#[derive(Debug, Parser)]
#[command(
    name = "resnet-cifar",
    version,
    about = "The CIFAR-10 ResNets of He et al., \"Deep Residual Learning for Image Recognition\" (2015)",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `train`, for use without a subcommand.
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network (the default when no subcommand is given).
    Train(TrainArgs),
    /// Print the layer table, output shapes and parameter count of a network.
    Summary(ModelArgs),
    /// Evaluate a checkpoint on the test set: error, per-class accuracy, confusion matrix.
    Eval(EvalArgs),
    /// Classify PNG/JPEG images with a checkpoint.
    Predict(PredictArgs),
    /// Learning curves like Fig. 6 of the paper from runs' metrics.csv (PNG or SVG).
    Plot(PlotArgs),
    /// ‖∂L/∂x_l‖ and std(x_l) at every block boundary, at init or from a checkpoint.
    GradFlow(GradFlowArgs),
    /// Std of every 3×3 layer's response over the test set (Fig. 7), per checkpoint.
    Responses(ResponsesArgs),
    /// Images/s of the training step or of evaluation, and peak memory, as one JSON line
    /// (bench/speed.py compares it with PyTorch).
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// train: whole training steps; eval: passes over the test set.
    #[arg(long, value_enum, default_value_t = BenchMode::Train)]
    pub mode: BenchMode,
    #[arg(long, default_value_t = 128, allow_negative_numbers = true)]
    pub batch_size: i64,
    /// Timed steps (eval: timed passes over the test set).
    #[arg(long, default_value_t = 30, allow_negative_numbers = true)]
    pub iters: i64,
    /// Untimed steps (passes) before timing.
    #[arg(long, default_value_t = 5, allow_negative_numbers = true)]
    pub warmup: i64,
    /// Also time data, forward, backward and optimizer separately (synchronising between them).
    #[arg(long)]
    pub profile: bool,
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// CPU threads for libtorch [default: libtorch's choice].
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<i32>,
}

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
    fn plot_path(&self) -> PathBuf {
        self.plot.clone().unwrap_or_else(|| self.output.with_extension("png"))
    }
}

#[derive(Debug, Clone, Args)]
pub struct GradFlowArgs {
    /// Architectures, comma-separated (e.g. plain,resnet); one table and line per network.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "resnet")]
    pub arch: Vec<Arch>,
    /// Depths, comma-separated (e.g. 56,110).
    #[arg(long, value_delimiter = ',', default_value = "20", allow_negative_numbers = true)]
    pub depth: Vec<i64>,
    #[arg(long, value_enum, default_value_t = Shortcut::A)]
    pub shortcut: Shortcut,
    /// A trained checkpoint instead of freshly initialised networks.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Training batches to average over (no augmentation, fixed seed).
    #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
    pub batches: i64,
    #[arg(long, default_value_t = 128, allow_negative_numbers = true)]
    pub batch_size: i64,
    /// No BatchNorm.
    #[arg(long)]
    pub no_bn: bool,
    /// Residual blocks start as the identity (last BN's γ = 0).
    #[arg(long)]
    pub zero_init_residual: bool,
    /// Input normalisation [default: the checkpoint's, else pixel-mean].
    #[arg(long, value_enum)]
    pub normalize: Option<Normalization>,
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: i64,
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub out: TableOutput,
}

#[derive(Debug, Clone, Args)]
pub struct ResponsesArgs {
    /// Checkpoints, one series each (repeat the flag).
    #[arg(long, required = true)]
    pub weights: Vec<PathBuf>,
    /// Input normalisation [default: each checkpoint's].
    #[arg(long, value_enum)]
    pub normalize: Option<Normalization>,
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Use the first N test images only.
    #[arg(long)]
    pub limit_test: Option<usize>,
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub out: TableOutput,
}

#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// Run directories holding metrics.csv.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output file, .png or .svg.
    #[arg(short, long)]
    pub output: PathBuf,
    /// x axis: iterations or epochs.
    #[arg(long, value_enum, default_value_t = crate::viz::curves::XAxis::Iterations)]
    pub x: crate::viz::curves::XAxis,
    /// error (%) or loss.
    #[arg(long, value_enum, default_value_t = crate::viz::curves::Metric::Error)]
    pub metric: crate::viz::curves::Metric,
    /// Top of the y axis [default: 20 for error, like the paper; the largest loss for loss].
    #[arg(long, allow_negative_numbers = true)]
    pub ymax: Option<f64>,
    #[arg(long)]
    pub title: Option<String>,
}

/// A checkpoint and how to read it.
#[derive(Debug, Clone, Args)]
pub struct WeightsArgs {
    /// A safetensors checkpoint (ours, or PyTorch's with the same tensor names).
    #[arg(long)]
    pub weights: PathBuf,
    /// Input normalisation [default: the checkpoint's].
    #[arg(long, value_enum)]
    pub normalize: Option<Normalization>,
    /// Override the architecture from the checkpoint's metadata.
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Override the depth (else from the metadata, or inferred from the tensor names).
    #[arg(long, allow_negative_numbers = true)]
    pub depth: Option<i64>,
    /// Override the shortcut option.
    #[arg(long, value_enum)]
    pub shortcut: Option<Shortcut>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Directory with the CIFAR-10 binary batches.
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

impl WeightsArgs {
    fn load(&self, compute: Compute) -> Result<(LoadedModel, Normalizer)> {
        let device = parse_device(&self.device)?;
        let overrides = ModelOverrides { arch: self.arch, depth: self.depth, shortcut: self.shortcut };
        let loaded = load_model(&self.weights, &overrides, device, compute)?;
        let normalizer = normalizer_for(&loaded.checkpoint, self.normalize, &self.data_dir)?.to_device(device);
        Ok((loaded, normalizer))
    }
}

#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub limit_test: Option<usize>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    pub top: i64,
    /// PNG or JPEG files, any size (resized to 32×32).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// Which network.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Depth 6n+2: 20, 32, 44, 56, 110, 1202, …
    #[arg(long, default_value_t = 20, allow_negative_numbers = true)]
    pub depth: i64,
    /// Residual network or the plain baseline without shortcuts.
    #[arg(long, value_enum, default_value_t = Arch::Resnet)]
    pub arch: Arch,
    /// Shortcut across a change of shape: A (zero-padding identity) or B (1×1 projection).
    #[arg(long, value_enum, default_value_t = Shortcut::A)]
    pub shortcut: Shortcut,
    /// No BatchNorm (convolutions get a bias): where vanishing gradients show in full.
    #[arg(long)]
    pub no_bn: bool,
    /// Start every residual block as the identity (last BN's γ = 0): "F(x) = 0 is easy".
    #[arg(long)]
    pub zero_init_residual: bool,
    /// Classes of the classifier (10 for CIFAR-10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..))]
    pub num_classes: i64,
}

impl ModelArgs {
    pub fn config(&self) -> ResNetConfig {
        ResNetConfig {
            depth: self.depth,
            arch: self.arch,
            shortcut: self.shortcut,
            batch_norm: !self.no_bn,
            zero_init_residual: self.zero_init_residual,
            num_classes: self.num_classes,
        }
    }
}

/// How the network computes (no effect on parameters or checkpoints).
#[derive(Debug, Clone, Args)]
pub struct ComputeArgs {
    /// fp32, or bf16 mixed precision (bf16 convolutions and activations; fp32 weights,
    /// BN statistics and loss).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Memory layout of activations: channels-last (NHWC strides, faster on CPU and GPU) or nchw.
    #[arg(long, value_enum, default_value_t = Layout::ChannelsLast)]
    pub layout: Layout,
}

impl ComputeArgs {
    pub fn compute(&self) -> Compute {
        Compute::new(self.precision, self.layout)
    }
}

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Epochs (the schedule divides the lr by 10 at 50 % and 75 % of them).
    #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
    pub epochs: i64,
    /// Images per SGD step.
    #[arg(long, alias = "batch_size", default_value_t = 128, allow_negative_numbers = true)]
    pub batch_size: i64,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f64,
    #[arg(long, default_value_t = 1e-4, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// `scaled`: drops at 50 %/75 % of --epochs; `paper`: exactly 64k iterations, drops at 32k/48k.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Scaled)]
    pub schedule: ScheduleKind,
    /// Iterations at lr/10 before the schedule starts [default: 400 from depth 110, else 0].
    #[arg(long, allow_negative_numbers = true)]
    pub warmup_iters: Option<i64>,
    /// Input normalisation.
    #[arg(long, value_enum, default_value_t = Normalization::PixelMean)]
    pub normalize: Normalization,
    /// Hold out the last N training images for validation (the paper: 5000).
    #[arg(long, default_value_t = 0)]
    pub val_split: usize,
    /// Directory with the CIFAR-10 binary batches.
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Run directory [default: runs/<arch>-<depth>-<timestamp>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N [default: auto; with --resume, the run's own].
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: i64,
    /// CPU threads for libtorch [default: libtorch's choice].
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<i32>,
    /// Train on the first N training images only.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub limit_test: Option<usize>,
    /// Add per-epoch mean ‖∂L/∂x‖ at the input and at each stage's input to metrics.csv.
    #[arg(long)]
    pub log_grad_norms: bool,
    /// Also checkpoint every N iterations inside an epoch (0: at epoch ends only).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub save_every: i64,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Continue the run in this directory from its last checkpoint (its settings come from
    /// its config.json; only --threads and --device may change).
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

impl TrainArgs {
    /// Checks the flags into a training configuration.
    pub fn into_config(self) -> Result<TrainConfig> {
        let model = self.model.config();
        let out = self.out.unwrap_or_else(|| {
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            PathBuf::from(format!("runs/{}-{stamp}", model.name()))
        });
        let cfg = TrainConfig {
            model,
            compute: self.compute.compute(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule: self.schedule,
            warmup_iters: self.warmup_iters,
            normalization: self.normalize,
            val_split: self.val_split,
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            data_dir: self.data_dir,
            out_dir: out,
            device: parse_device(self.device.as_deref().unwrap_or("auto"))?,
            seed: self.seed,
            threads: self.threads,
            quiet: false,
            log_grad_norms: self.log_grad_norms,
            save_every: self.save_every,
            read_every_step: None,
            handle_signals: true,
        };
        cfg.validate()?;
        anyhow::ensure!(self.save_every >= 0, "--save-every {} must be ≥ 0", self.save_every);
        if let Some(w) = cfg.warmup_iters {
            anyhow::ensure!(w >= 0, "--warmup-iters {w} must be ≥ 0");
        }
        Ok(cfg)
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => train_command(cli.train),
        Some(Command::Train(args)) => train_command(args),
        Some(Command::Summary(args)) => {
            print!("{}", crate::summary::summary(args.config())?);
            Ok(())
        }
        Some(Command::Eval(args)) => eval_command(&args),
        Some(Command::Bench(args)) => bench_command(&args),
        Some(Command::Predict(args)) => predict_command(&args),
        Some(Command::GradFlow(args)) => grad_flow_command(&args),
        Some(Command::Responses(args)) => {
            let device = parse_device(&args.device)?;
            let all = analysis::responses_of(&args.weights, args.normalize, &args.data_dir, args.limit_test, device)?;
            let plot = args.out.plot_path();
            analysis::write_responses(&all, &args.out.output, &plot)?;
            for r in &all {
                let stds: Vec<String> = r.layers.iter().map(|(_, s)| format!("{s:.2}")).collect();
                println!("{}: {}", r.name, stds.join(" "));
            }
            println!("wrote {} and {}", args.out.output.display(), plot.display());
            Ok(())
        }
        Some(Command::Plot(args)) => {
            let series = args.runs.iter().map(|d| crate::viz::curves::read_run(d)).collect::<crate::Result<Vec<_>>>()?;
            let opts = crate::viz::curves::PlotOptions {
                x: args.x,
                metric: args.metric,
                ymax: args.ymax,
                title: args.title.clone(),
                ..Default::default()
            };
            crate::viz::curves::plot(&series, &args.output, &opts)?;
            println!("wrote {}", args.output.display());
            Ok(())
        }
    }
}

impl GradFlowArgs {
    fn fixed_batches(&self) -> analysis::FixedBatches {
        analysis::FixedBatches { count: self.batches, size: self.batch_size, seed: self.seed }
    }
}

fn grad_flow_command(args: &GradFlowArgs) -> Result<()> {
    anyhow::ensure!(args.batches >= 1, "--batches {} must be at least 1", args.batches);
    anyhow::ensure!(args.batch_size >= 1, "--batch-size {} must be at least 1", args.batch_size);
    let device = parse_device(&args.device)?;
    let data = crate::data::Cifar10::load(&args.data_dir)?;
    let mut flows = Vec::new();
    let batches_for = |n: &Normalizer| analysis::fixed_batches(&data.train, n, args.fixed_batches(), device);
    if let Some(w) = &args.weights {
        let loaded = load_model(w, &ModelOverrides::default(), device, Compute::default())?;
        let normalizer = normalizer_for(&loaded.checkpoint, args.normalize, &args.data_dir)?.to_device(device);
        let rows = crate::gradflow::grad_flow(&loaded.model, &batches_for(&normalizer), true);
        flows.push(analysis::Flow { name: loaded.model.config.name(), rows });
    } else {
        let kind = args.normalize.unwrap_or_default();
        let normalizer = Normalizer::fit(kind, &data.train.images).to_device(device);
        let batches = batches_for(&normalizer);
        for &depth in &args.depth {
            for &arch in &args.arch {
                let cfg = ResNetConfig {
                    depth,
                    arch,
                    shortcut: args.shortcut,
                    batch_norm: !args.no_bn,
                    zero_init_residual: args.zero_init_residual,
                    ..Default::default()
                };
                cfg.blocks_per_stage()?;
                flows.push(analysis::flow_at_init(cfg, &batches, args.seed, device)?);
            }
        }
    }
    let plot = args.out.plot_path();
    let when = if args.weights.is_some() { "trained" } else { "at initialisation" };
    let bn = if args.no_bn { ", no BN" } else { "" };
    analysis::write_flows(&flows, &args.out.output, &plot, &format!("Gradient flow through depth, {when}{bn}"))?;
    for f in &flows {
        let first = &f.rows[1];
        println!(
            "{}: ‖∂L/∂x‖ at {} / at output = {:.3e}; std(x) at output {:.3e}",
            f.name,
            first.name,
            first.ratio_to_last,
            f.rows.last().map_or(0.0, |r| r.activation_std)
        );
    }
    println!("wrote {} and {}", args.out.output.display(), plot.display());
    Ok(())
}

fn bench_command(args: &BenchArgs) -> Result<()> {
    if let Some(t) = args.threads {
        anyhow::ensure!(t >= 1, "--threads {t} must be at least 1");
        tch::set_num_threads(t);
    }
    let cfg = BenchConfig {
        model: args.model.config(),
        compute: args.compute.compute(),
        mode: args.mode,
        batch_size: args.batch_size,
        iters: args.iters,
        warmup: args.warmup,
        data_dir: args.data_dir.clone(),
        device: parse_device(&args.device)?,
        profile: args.profile,
    };
    let result = bench::run(&cfg)?;
    println!("{}", serde_json::to_string(&result).expect("bench result serialises"));
    Ok(())
}

fn eval_command(args: &EvalArgs) -> Result<()> {
    let w = &args.weights;
    let (loaded, normalizer) = w.load(args.compute.compute())?;
    let dir = &w.data_dir;
    crate::data::check_data_dir(dir)?;
    let test =
        crate::data::load_split(dir, &[crate::data::TEST_FILE])?.take(args.limit_test).to_device(loaded.vs.device());
    let eval = evaluate(&loaded.model, &test, &normalizer);
    let classes = crate::data::load_classes(dir);
    let ctx = ReportContext {
        checkpoint: &w.weights.display().to_string(),
        data_dir: &dir.display().to_string(),
        model: loaded.model.config,
        normalization: normalizer.kind,
        classes: &classes,
    };
    if args.json {
        println!("{}", report::json(&ctx, &eval));
    } else {
        print!("{}", report::text(&ctx, &eval));
    }
    Ok(())
}

fn predict_command(args: &PredictArgs) -> Result<()> {
    anyhow::ensure!(args.top >= 1, "--top {} must be at least 1", args.top);
    let (loaded, normalizer) = args.weights.load(Compute::default())?;
    let classes = crate::data::load_classes(&args.weights.data_dir);
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
                eprintln!("error: {}", e.to_string().split_whitespace().collect::<Vec<_>>().join(" "));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(crate::Error::Reported.into());
    }
    Ok(())
}

fn train_command(args: TrainArgs) -> Result<()> {
    let summary = match &args.resume {
        Some(dir) => {
            let device = args.device.as_deref().map(parse_device).transpose()?;
            train::resume(dir, args.threads, device, false)?
        }
        None => train::run(&args.into_config()?)?,
    };
    println!("{}", summary.describe());
    Ok(())
}
