//! The flags of `train` (the network, how it computes, the data, the run) and their check
//! into a [`TrainConfig`]: raw flags here, validated settings in the library. `study`
//! reads its cells' shared settings from `train` flags with [`parse_grid_flags`].

use std::path::PathBuf;

use clap::{Args, Parser};
use resnet_cifar::data::{DataSource, Dataset, DatasetChoice, DatasetName, Labels};
use resnet_cifar::device::{device_name, parse_device};
use resnet_cifar::model::{Arch, BlockKind, Compute, Layout, Precision, ResNetConfig, Shortcut};
use resnet_cifar::normalize::Normalization;
use resnet_cifar::schedule::ScheduleKind;
use resnet_cifar::study::Exec;
use resnet_cifar::train::config::{DataSettings, Machine, Output, Schedule};
use resnet_cifar::train::graph::CudaGraphs;
use resnet_cifar::train::TrainConfig;
use resnet_cifar::{Error, Result};
use tch::Device;

use super::{hints, values};

/// Which network.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Depth 6n+2 (20, 32, 44, 56, 110, 1202, …), or 9n+2 for bottleneck blocks (164, 1001).
    #[arg(long, default_value_t = 20, allow_negative_numbers = true)]
    pub depth: i64,
    /// Residual network (2015), the plain baseline without shortcuts, or the pre-activation
    /// residual network (2016).
    #[arg(long, value_parser = values::of::<Arch>(), default_value_t = Arch::Resnet)]
    pub arch: Arch,
    /// Block of a pre-activation net [default: basic below depth 164, bottleneck from 164].
    #[arg(long, value_parser = values::of::<BlockKind>())]
    pub block: Option<BlockKind>,
    /// Shortcut across a change of shape: A (zero-padding identity) or B (1×1 projection).
    #[arg(long, value_parser = values::of::<Shortcut>(), default_value_t = Shortcut::A)]
    pub shortcut: Shortcut,
    /// No BatchNorm (convolutions get a bias): where vanishing gradients show in full.
    #[arg(long)]
    pub no_bn: bool,
    /// Start every residual block as the identity (last BN's γ = 0): "F(x) = 0 is easy".
    #[arg(long)]
    pub zero_init_residual: bool,
    /// Classes of the classifier [default: the data set's: 10 for CIFAR-10, 100 for CIFAR-100,
    /// 20 for its coarse labels]; where data is read, another count is refused.
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub num_classes: Option<i64>,
}

impl ModelArgs {
    /// The network for `dataset` (whose class count `--num-classes` may only repeat; the
    /// library checks that).
    pub fn config(&self, dataset: Dataset) -> ResNetConfig {
        ResNetConfig {
            depth: self.depth,
            arch: self.arch,
            shortcut: self.shortcut,
            batch_norm: !self.no_bn,
            zero_init_residual: self.zero_init_residual,
            block: self.block,
            num_classes: self.num_classes.unwrap_or(dataset.num_classes()),
        }
    }
}

/// Which data set, and where its files are.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// cifar10 or cifar100 [default: the one a checkpoint records, else cifar10].
    #[arg(long, value_parser = values::of::<DatasetName>())]
    pub dataset: Option<DatasetName>,
    /// CIFAR-100's classes: fine (100) or coarse (20) [default: a checkpoint's, else fine].
    #[arg(long, value_parser = values::of::<Labels>())]
    pub labels: Option<Labels>,
    /// Directory with the binary files [default: data/cifar-10-batches-bin; for cifar100,
    /// data/cifar-100-binary].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl DataArgs {
    pub fn choice(&self) -> DatasetChoice {
        DatasetChoice { name: self.dataset, labels: self.labels }
    }

    /// `dataset` in `--data-dir` or its default directory.
    pub fn source(&self, dataset: Dataset) -> DataSource {
        DataSource::new(dataset, self.data_dir.clone())
    }
}

/// How the network computes (no effect on parameters or checkpoints).
#[derive(Debug, Clone, Args)]
pub struct ComputeArgs {
    /// fp32, or bf16 mixed precision (bf16 convolutions and activations; fp32 weights,
    /// BN statistics and loss).
    #[arg(long, value_parser = values::of::<Precision>(), default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Memory layout of activations: channels-last (NHWC strides, faster on CPU and GPU) or nchw.
    #[arg(long, value_parser = values::of::<Layout>(), default_value_t = Layout::ChannelsLast)]
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
    #[arg(long, default_value_t = 50, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub epochs: i64,
    /// Images per SGD step.
    #[arg(long, alias = "batch_size", default_value_t = 128, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub batch_size: i64,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f64,
    #[arg(long, default_value_t = 1e-4, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// `scaled`: drops at 50 %/75 % of --epochs; `paper`: exactly 64k iterations, drops at 32k/48k.
    #[arg(long, value_parser = values::of::<ScheduleKind>(), default_value_t = ScheduleKind::Scaled)]
    pub schedule: ScheduleKind,
    /// Iterations at lr/10 before the schedule starts [default: 400 from depth 110, else 0].
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(0..))]
    pub warmup_iters: Option<i64>,
    /// Input normalisation.
    #[arg(long, value_parser = values::of::<Normalization>(), default_value_t = Normalization::PixelMean)]
    pub normalize: Normalization,
    /// Hold out the last N training images for validation (the paper: 5000).
    #[arg(long, default_value_t = 0)]
    pub val_split: usize,
    #[command(flatten)]
    pub data: DataArgs,
    /// Run directory [default: runs/<arch>-<depth>-<timestamp>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N [default: auto; with --resume, the run's own].
    #[arg(long, value_parser = device_arg)]
    pub device: Option<Device>,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: i64,
    /// CPU threads for libtorch [default: libtorch's choice].
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(1..))]
    pub threads: Option<i32>,
    /// Train on the first N training images only.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub limit_test: Option<usize>,
    /// Add per-epoch mean ‖∂L/∂x‖ at the input and at each stage's input to metrics.csv.
    #[arg(long)]
    pub log_grad_norms: bool,
    /// Also checkpoint every N iterations inside an epoch (0: at epoch ends only).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(0..))]
    pub save_every: i64,
    /// Write no TensorBoard event file (by default every run directory gets one, for
    /// `tensorboard --logdir runs`).
    #[arg(long)]
    pub no_tensorboard: bool,
    /// Log the training loss and lr to TensorBoard every N iterations (0: per epoch only).
    #[arg(long, default_value_t = 50, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(0..))]
    pub log_every: i64,
    /// Log a histogram of every weight to TensorBoard per epoch.
    #[arg(long)]
    pub log_histograms: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Replay the training step from a CUDA graph: auto (on with a CUDA device), on, off.
    #[arg(long, value_parser = values::of::<CudaGraphs>())]
    pub cuda_graphs: Option<CudaGraphs>,
    /// cuDNN's deterministic algorithms and no benchmark search, so that a CUDA run can
    /// resume exactly (slower; no effect on the CPU, which is always exact).
    #[arg(long)]
    pub deterministic: bool,
    /// Continue the run in this directory from its last checkpoint (its settings come from
    /// its config.json; only --threads, --device, --data-dir, --cuda-graphs and
    /// --deterministic may change).
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

impl TrainArgs {
    /// Checks the flags into a training configuration (counts were checked by the parser;
    /// what is left is the library's to say: depth 6n+2, the learning rate, the device…).
    pub fn into_config(self) -> Result<TrainConfig> {
        let data = self.data.source(self.data.choice().dataset()?);
        let model = self.model.config(data.dataset);
        let out = self.out.unwrap_or_else(|| {
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            PathBuf::from(format!("runs/{}-{stamp}", model.name()))
        });
        let cfg = TrainConfig {
            model,
            compute: self.compute.compute(),
            schedule: Schedule {
                kind: self.schedule,
                epochs: self.epochs,
                batch_size: self.batch_size,
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                warmup_iters: self.warmup_iters,
            },
            data: DataSettings {
                dataset: data.dataset,
                dir: data.dir,
                normalization: self.normalize,
                val_split: self.val_split,
                limit_train: self.limit_train,
                limit_test: self.limit_test,
            },
            seed: self.seed,
            output: Output {
                dir: out,
                save_every: self.save_every,
                tensorboard: !self.no_tensorboard,
                log_every: self.log_every,
                log_histograms: self.log_histograms,
                log_grad_norms: self.log_grad_norms,
            },
            machine: Machine {
                device: match self.device {
                    Some(d) => d,
                    None => parse_device("auto")?,
                },
                threads: self.threads,
                cuda_graphs: self.cuda_graphs.unwrap_or_default(),
                deterministic: self.deterministic,
                handle_signals: true,
                ..Machine::default()
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Help and version go out as clap writes them; a usage error becomes one line (clap's
/// own message, its hint and possible values folded in), exit status 2.
pub fn usage_error(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let line = resnet_cifar::error::one_line(&message_parts(&e).join(" "));
    eprintln!("{line}; see --help");
    std::process::ExitCode::from(2)
}

/// A clap error's message and tips, a line each; the usage block (which may span lines)
/// and the pointer to --help are dropped.
fn message_parts(e: &clap::Error) -> Vec<String> {
    let text = e.render().to_string();
    text.lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(String::from)
        .collect()
}

/// `--device`: auto, cpu, cuda or cuda:N, checked by the parser.
pub fn device_arg(s: &str) -> std::result::Result<Device, String> {
    parse_device(s).map_err(|e| hints::explain(&e))
}

#[derive(Parser)]
#[command(name = "train")]
struct TrainOnly {
    #[command(flatten)]
    args: TrainArgs,
}

/// Flags a study sets for each cell, with what to use instead.
const GRID_FLAGS: [(&str, &str); 5] = [
    ("--arch", "--archs"),
    ("--depth", "--depths"),
    ("--seed", "--seeds"),
    ("--out", "the grid's --out"),
    ("--resume", "a rerun of the same command"),
];

/// A study's `train` flags: the settings its cells share (checked as `train` checks
/// them), and where they compute (`--threads`, `--device`: not part of the plan). A flag
/// the grid sets per cell is refused; a usage error is one line.
pub fn parse_grid_flags(flags: &[String]) -> Result<(TrainConfig, Exec)> {
    for flag in flags {
        let name = flag.split_once('=').map_or(flag.as_str(), |(n, _)| n);
        if let Some((_, instead)) = GRID_FLAGS.iter().find(|(f, _)| *f == name) {
            return Err(Error::Config(format!("{name} is set by the grid for each cell: use {instead}")));
        }
    }
    let argv = std::iter::once("train".to_string()).chain(flags.iter().cloned());
    let parsed = TrainOnly::try_parse_from(argv).map_err(|e| {
        let first = message_parts(&e).into_iter().next().unwrap_or_default();
        Error::Config(first.trim_start_matches("error: ").to_string())
    })?;
    let exec = Exec { threads: parsed.args.threads, device: parsed.args.device.map(device_name) };
    Ok((parsed.args.into_config()?, exec))
}
