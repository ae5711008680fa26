//! The command line of the `resnet-cifar` binary: flags parsed into raw values (clap), then
//! checked into the library's configurations. With no subcommand the binary trains, so the seed's
//! `resnet-cifar --epochs 50 --batch_size 128` works as is.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use resnet_cifar::analysis;
use resnet_cifar::bench::{self, BenchConfig, BenchMode};
use resnet_cifar::data::{DataSource, Dataset, Part};
use resnet_cifar::eval_report::{self, ReportContext};
use resnet_cifar::inference::{
    class_names, common_dataset, dataset_for, dataset_for_all, load_model, normalizer_for, predict, read_image,
    LoadedModel, ModelOverrides,
};
use resnet_cifar::model::{Arch, BlockKind, Compute, ResNetConfig, Shortcut};
use resnet_cifar::normalize::Normalization;
use resnet_cifar::normalize::Normalizer;
use resnet_cifar::train;
use resnet_cifar::train::graph::CudaGraphs;
use resnet_cifar::viz::curves::{Metric, XAxis};
use tch::Device;

pub mod docs;
pub mod hints;
pub mod html_report;
pub mod landscape;
pub mod study;
pub mod train_args;
pub mod values;
pub use train_args::{device_arg, ComputeArgs, DataArgs, ModelArgs, TrainArgs};

#[derive(Debug, Parser)]
#[command(
    name = "resnet-cifar",
    version = docs::VERSION,
    about = "The CIFAR ResNets of He et al., \"Deep Residual Learning for Image Recognition\" (2015), on CIFAR-10 and CIFAR-100",
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
    /// The loss around trained weights along filter-normalised random directions
    /// (Li et al. 2018): a 2-D contour map or 1-D curves, per checkpoint.
    Landscape(landscape::LandscapeArgs),
    /// Images/s of the training step or of evaluation, and peak memory, as one JSON line
    /// (bench/speed.py compares it with PyTorch).
    Bench(BenchArgs),
    /// One self-contained HTML report (inline SVG, no scripts, opens offline) of runs or a
    /// study: configuration, curves, per-epoch table, errors, confusion matrix, Table 6.
    Report(html_report::ReportArgs),
    /// Plain vs. residual networks of several depths and seeds (Fig. 6, Table 6): a grid of
    /// runs on every core and GPU here, or a Slurm job array; `train` flags pass through to
    /// every cell.
    Study(study::StudyArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(docs::CompletionsArgs),
    /// Print (or write with -o) the man page, in roff; `make man` writes target/man/resnet-cifar.1.
    #[command(hide = true)]
    Man(docs::ManArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// train: whole training steps; eval: passes over the test set.
    #[arg(long, value_parser = values::of::<BenchMode>(), default_value_t = BenchMode::Train)]
    pub mode: BenchMode,
    /// Training batch (evaluation always runs in batches of 500, and the JSON says so).
    #[arg(long, default_value_t = 128, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub batch_size: i64,
    /// Timed steps (eval: timed passes over the test set).
    #[arg(long, default_value_t = 30, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub iters: i64,
    /// Untimed steps (passes) before timing.
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(0..=1_000_000))]
    pub warmup: i64,
    /// Also time data, forward, backward and optimizer separately (synchronising between them).
    #[arg(long)]
    pub profile: bool,
    /// Count the top-level ATen calls per training step (each at least one kernel launch
    /// on CUDA), split into forward + backward, optimizer and the rest; printed as a table,
    /// or as JSON with --json.
    #[arg(long, conflicts_with = "profile")]
    pub count_ops: bool,
    /// With --count-ops: also list the calls by operator name.
    #[arg(long, requires = "count_ops")]
    pub list_ops: bool,
    /// Print one JSON object (the default without --count-ops).
    #[arg(long)]
    pub json: bool,
    /// Replay the step from a CUDA graph: auto (on with a CUDA device), on, off.
    #[arg(long, value_parser = values::of::<CudaGraphs>(), default_value_t = CudaGraphs::Auto)]
    pub cuda_graphs: CudaGraphs,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value = "auto", value_parser = device_arg)]
    pub device: Device,
    /// CPU threads for libtorch [default: libtorch's choice].
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(1..))]
    pub threads: Option<i32>,
}

/// `--threads`, for every command that reads data or runs a network.
#[derive(Debug, Clone, Copy, Args)]
pub struct Threads {
    /// CPU threads for libtorch [default: libtorch's choice].
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(1..))]
    pub threads: Option<i32>,
}

impl Threads {
    /// Sets libtorch's CPU threads when the flag was given.
    pub fn apply(self) {
        if let Some(t) = self.threads {
            tch::set_num_threads(t);
        }
    }
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

    /// Refuses outputs that are one of `inputs`, each other, or not a regular file.
    fn check_against(&self, inputs: &[PathBuf]) -> Result<()> {
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
    (cfg.dataset == data.dataset && cfg.data_dir != data.dir && cfg.data_dir.is_dir()).then_some(cfg.data_dir)
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

/// Parses the command line. With `--resume` the run's settings come from its config.json,
/// so any other flag than `--threads`, `--device` and `--data-dir` (for data that has
/// moved) would be ignored: it is refused by name.
pub fn parse_args() -> std::result::Result<Cli, clap::Error> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let argv = study::route_train_flags(std::env::args_os().collect());
    let matches = Cli::command().try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let train = match matches.subcommand() {
        Some(("train", sub)) => sub,
        Some(_) => return Ok(cli),
        None => &matches,
    };
    let given = |id: &str| train.value_source(id) == Some(ValueSource::CommandLine);
    if given("resume") {
        // Flattened structs are argument groups (`DataArgs`): their flags are checked one by one.
        let command = Cli::command();
        let command = command.find_subcommand("train").unwrap_or(&command);
        let groups: Vec<String> = command.get_groups().map(|g| g.get_id().to_string()).collect();
        let allowed = |id: &str| {
            RESUME_MAY_CHANGE.iter().any(|a| a.replace('-', "_") == id)
                || id == "resume"
                || groups.iter().any(|g| g == id)
        };
        let ignored = train.ids().map(|id| id.as_str()).find(|id| !allowed(id) && given(id));
        if let Some(id) = ignored {
            let may = RESUME_MAY_CHANGE.map(|a| format!("--{a}")).join(", ");
            let msg = format!(
                "--{} cannot be used with --resume: the run's settings come from its config.json (only {may} may change)",
                id.replace('_', "-")
            );
            return Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg));
        }
    }
    Ok(cli)
}

/// The flags that `train --resume` accepts: where and how the run computes, never what.
pub const RESUME_MAY_CHANGE: [&str; 5] = ["threads", "device", "data-dir", "cuda-graphs", "deterministic"];

/// Failures already reported on stderr one by one (e.g. unreadable images in `predict`):
/// the binary exits non-zero without another message.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed (reported above)")
    }
}

impl std::error::Error for Reported {}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let threads = match &cli.command {
        Some(Command::Eval(a)) => a.weights.threads,
        Some(Command::Predict(a)) => a.weights.threads,
        Some(Command::GradFlow(a)) => a.threads,
        Some(Command::Responses(a)) => a.threads,
        Some(Command::Report(a)) => a.threads,
        _ => Threads { threads: None },
    };
    threads.apply();
    match cli.command {
        None => train_command(cli.train),
        Some(Command::Train(args)) => train_command(args),
        Some(Command::Summary(args)) => {
            print!("{}", resnet_cifar::summary::summary(args.config(Dataset::Cifar10))?);
            Ok(())
        }
        Some(Command::Eval(args)) => eval_command(&args),
        Some(Command::Bench(args)) => bench_command(&args),
        Some(Command::Report(args)) => html_report::report_command(&args),
        Some(Command::Study(args)) => study::run(&args),
        Some(Command::Completions(args)) => docs::completions(&args),
        Some(Command::Man(args)) => docs::man(&args),
        Some(Command::Predict(args)) => predict_command(&args),
        Some(Command::GradFlow(args)) => grad_flow_command(&args),
        Some(Command::Landscape(args)) => landscape::run(&args),
        Some(Command::Responses(args)) => {
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
        Some(Command::Plot(args)) => {
            let inputs: Vec<PathBuf> = args.runs.iter().map(|d| d.join("metrics.csv")).collect();
            let inputs: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
            resnet_cifar::files::check_outputs(&[("--output", &args.output)], &inputs)?;
            let series = args
                .runs
                .iter()
                .map(|d| resnet_cifar::viz::curves::read_run(d))
                .collect::<resnet_cifar::Result<Vec<_>>>()?;
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
    }
}

impl GradFlowArgs {
    fn fixed_batches(&self) -> analysis::FixedBatches {
        analysis::FixedBatches { count: self.batches, size: self.batch_size, seed: self.seed }
    }
}

fn grad_flow_command(args: &GradFlowArgs) -> Result<()> {
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

fn bench_command(args: &BenchArgs) -> Result<()> {
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let dataset = args.data.choice().dataset()?;
    let cfg = BenchConfig {
        model: args.model.config(dataset),
        compute: args.compute.compute(),
        mode: args.mode,
        batch_size: args.batch_size,
        iters: args.iters,
        warmup: args.warmup,
        data: args.data.source(dataset),
        device: args.device,
        profile: args.profile,
        count_ops: args.count_ops,
        list_ops: args.list_ops,
        cuda_graphs: args.cuda_graphs,
    };
    let result = bench::run(&cfg)?;
    match &result.ops {
        Some(ops) if !args.json => print!("{}", bench::ops_table(&result, ops)),
        _ => println!("{}", serde_json::to_string(&result).expect("bench result serialises")),
    }
    Ok(())
}

fn eval_command(args: &EvalArgs) -> Result<()> {
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

fn predict_command(args: &PredictArgs) -> Result<()> {
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

fn train_command(args: TrainArgs) -> Result<()> {
    let summary = match &args.resume {
        Some(dir) => {
            let overrides = train::ResumeOverrides {
                threads: args.threads,
                device: args.device,
                data_dir: args.data.data_dir,
                cuda_graphs: args.cuda_graphs,
                deterministic: args.deterministic,
            };
            let (batch, device) = match train::config::config_from_run(dir) {
                Ok(saved) => (saved.batch_size, overrides.device.unwrap_or(saved.device)),
                Err(_) => (0, overrides.device.unwrap_or(Device::Cpu)), // resume refuses it first
            };
            resnet_cifar::device::catch_out_of_memory(batch, device, || train::resume(dir, overrides, false))
                .map_err(|e| out_of_memory_advice(e, dir, true))?
        }
        None => {
            let cfg = args.into_config()?;
            resnet_cifar::device::catch_out_of_memory(cfg.batch_size, cfg.device, || train::run(&cfg))
                .map_err(|e| out_of_memory_advice(e, &cfg.out_dir, false))?
        }
    };
    println!("{}", summary.describe());
    Ok(())
}

/// What to do after running out of memory: resume from the last checkpoint where it fits
/// (a run keeps its batch size), or, with no checkpoint yet, train anew with a smaller
/// batch: a new run that never checkpointed is cleared, so that the same `--out` serves.
fn out_of_memory_advice(e: resnet_cifar::Error, dir: &std::path::Path, resuming: bool) -> anyhow::Error {
    if !matches!(e, resnet_cifar::Error::OutOfMemory { .. }) {
        return e.into();
    }
    let msg = e.to_string();
    let checkpointed = dir.join("last.safetensors").is_file();
    let advice = if checkpointed {
        format!(
            "the last checkpoint is whole: resume with `resnet-cifar train --resume {}` where memory suffices (a run keeps \
             its batch size), or start a new run with a smaller --batch-size",
            dir.display()
        )
    } else if !resuming && clear_unstarted(dir) {
        format!(
            "nothing was checkpointed and {} is empty again: train again with a smaller --batch-size",
            dir.display()
        )
    } else {
        "use a smaller --batch-size".to_string()
    };
    anyhow::anyhow!("{msg}; {advice}")
}

/// Empties the directory of a new run that wrote no checkpoint (its config.json, an empty
/// metrics.csv, TensorBoard's first events): everything in it is the run's own, as a new
/// run takes only an empty directory. Whether it did.
fn clear_unstarted(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let mut ok = true;
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        ok &= removed.is_ok();
    }
    ok
}
