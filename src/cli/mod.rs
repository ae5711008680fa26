//! The command line of the `resnet-cifar` binary: flags parsed into raw values (clap), then
//! checked into the library's configurations. With no subcommand the binary trains, so the seed's
//! `resnet-cifar --epochs 50 --batch_size 128` works as is.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use resnet_cifar::data::Dataset;

pub mod analysis;
pub mod bench;
pub mod docs;
pub mod hints;
pub mod html_report;
pub mod inference;
pub mod landscape;
pub mod plot;
pub mod study;
pub mod train_args;
pub mod training;
pub mod values;
pub use analysis::{GradFlowArgs, ResponsesArgs, TableOutput};
pub use bench::BenchArgs;
pub use inference::{EvalArgs, PredictArgs};
pub use plot::PlotArgs;
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
        None => training::train_command(cli.train),
        Some(Command::Train(args)) => training::train_command(args),
        Some(Command::Summary(args)) => {
            print!("{}", resnet_cifar::summary::summary(args.config(Dataset::Cifar10))?);
            Ok(())
        }
        Some(Command::Eval(args)) => inference::eval_command(&args),
        Some(Command::Bench(args)) => bench::bench_command(&args),
        Some(Command::Report(args)) => html_report::report_command(&args),
        Some(Command::Study(args)) => study::run(&args),
        Some(Command::Completions(args)) => docs::completions(&args),
        Some(Command::Man(args)) => docs::man(&args),
        Some(Command::Predict(args)) => inference::predict_command(&args),
        Some(Command::GradFlow(args)) => analysis::grad_flow_command(&args),
        Some(Command::Landscape(args)) => landscape::run(&args),
        Some(Command::Responses(args)) => analysis::responses_command(&args),
        Some(Command::Plot(args)) => plot::plot_command(&args),
    }
}
