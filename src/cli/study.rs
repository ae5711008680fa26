//! `resnet-cifar study`: plain versus residual networks of several depths and seeds, the
//! study behind Fig. 6 and Table 6 of He et al. (2015), as a grid of ordinary `train` runs
//! ([`resnet_cifar::study`]). It runs the grid here (separate processes on every core or
//! GPU), writes and submits it as a Slurm job array (`--slurm [--submit]`), or aggregates
//! the finished cells (`--collect DIR`). Any `train` flag passes through to every cell.
//!
//! ```text
//! # every core (or GPU) of this box; rerun the same command to continue after a stop
//! resnet-cifar study --depths 20,56 --seeds 0,1 --epochs 20 --out runs/study
//! # a Slurm job array and a collect job that runs after it
//! resnet-cifar study --depths 20,32,44,56,110 --seeds 0,1,2,3,4 --schedule paper \
//!     --out /scratch/study --slurm --submit --partition gpu --gpus-per-task 1 --time 8:00:00
//! # the tables and figures of the cells finished so far
//! resnet-cifar study --collect runs/study
//! ```
//!
//! Output in `--out`: `grid.json` (the plan), one run directory per cell
//! (`<arch>-<depth>/seed-<s>/`), `logs/`, and `results.{json,csv,md}`, `fig6.png`, `fig7.png`;
//! with `--slurm`, `slurm/` and the binary the scripts run (`bin/`, see
//! [`resnet_cifar::study::binary::ScriptBinary`]).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, CommandFactory, Parser};

use resnet_cifar::study::binary::ScriptBinary;
use resnet_cifar::study::local::{self, LocalOptions};
use resnet_cifar::study::slurm::{self, SlurmOptions};
use resnet_cifar::study::{self, Grid, GridSpec};
use resnet_cifar::{Arch, Error};

use super::train_args::{device_arg, parse_grid_flags};
use super::values;

/// The study's own flags; every other flag is a `train` flag for each cell.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Every flag not listed above is a `train` flag (see `resnet-cifar train --help`) and passes \
                  through to every cell, anywhere on the command line: e.g. --epochs 20 --precision bf16 --schedule \
                  paper; --threads and --device say where cells compute. --arch, --depth, --seed, --out and --resume \
                  are the grid's to set. Rerun the same command to continue a grid after a stop.")]
pub struct StudyArgs {
    /// Depths (6n+2), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "20,56", allow_negative_numbers = true)]
    pub depths: Vec<i64>,
    /// Architectures, comma-separated.
    #[arg(long, value_parser = values::of::<Arch>(), value_delimiter = ',', default_value = "plain,resnet")]
    pub archs: Vec<Arch>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0", allow_negative_numbers = true)]
    pub seeds: Vec<i64>,
    /// Grid directory: grid.json, a run directory per cell, results and figures.
    #[arg(long, default_value = "runs/plain_vs_residual")]
    pub out: PathBuf,
    /// Cells at once, as separate processes [default: one per GPU; on the CPU one per core].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Devices to spread cells over, comma-separated (cpu, cuda:0, …) [default: every GPU, else cpu].
    #[arg(long, value_delimiter = ',', value_parser = device_name)]
    pub devices: Vec<String>,
    /// Only aggregate the finished cells of the grid in DIR into the tables and figures.
    #[arg(long, value_name = "DIR")]
    pub collect: Option<PathBuf>,
    /// Write DIR/slurm/array.sbatch and collect.sbatch instead of training here.
    #[arg(long)]
    pub slurm: bool,
    /// Also submit them (the collect job after the array, afterany).
    #[arg(long, requires = "slurm")]
    pub submit: bool,
    /// Slurm partition.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// Slurm time limit per task (e.g. 4:00:00).
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// Slurm account.
    #[arg(long, requires = "slurm")]
    pub account: Option<String>,
    /// CPUs per array task (the cell's threads).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus_per_task: u32,
    /// GPUs per array task (0: CPU cells).
    #[arg(long, default_value_t = 0)]
    pub gpus_per_task: u32,
    /// At most this many array tasks at once.
    #[arg(long, requires = "slurm", value_parser = clap::value_parser!(u32).range(1..))]
    pub throttle: Option<u32>,
    /// A raw line for the array script's header (repeatable), e.g. "#SBATCH --qos=long".
    #[arg(long = "sbatch-line", requires = "slurm")]
    pub sbatch_lines: Vec<String>,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Train cell N of the grid in --out, in this process (what each job and array task runs).
    #[arg(long, hide = true)]
    pub run_cell: Option<usize>,
    /// `train` flags for every cell; they may also stand anywhere among the flags above,
    /// without `--`.
    #[arg(last = true, value_name = "TRAIN FLAGS", allow_hyphen_values = true)]
    pub train_flags: Vec<String>,
}

/// `--devices`: each checked by the parser, kept by name (`cpu`, `cuda:0`).
fn device_name(s: &str) -> std::result::Result<String, String> {
    device_arg(s).map(resnet_cifar::device::device_name)
}

/// The study's flags alone, to tell them from `train` flags.
#[derive(Parser)]
#[command(name = "study")]
struct StudyOnly {
    #[command(flatten)]
    args: StudyArgs,
}

/// Rewrites `resnet-cifar study …` so that clap can parse it: the study's own flags first,
/// then `--` and the `train` flags found among them, in their order (after a `--` of the
/// user's, everything is a `train` flag). A `train` flag takes the next word as its value
/// unless that is a flag. Any other command line is returned as it is.
pub fn route_train_flags(argv: Vec<OsString>) -> Vec<OsString> {
    if argv.len() < 2 || argv[1] != "study" {
        return argv;
    }
    let cmd = StudyOnly::command();
    let ours = |name: &str| {
        let long = name.strip_prefix("--")?;
        cmd.get_arguments().find(|a| a.get_long() == Some(long))
    };
    let mut it = argv.into_iter();
    let mut mine: Vec<OsString> = it.by_ref().take(2).collect();
    let mut train: Vec<OsString> = Vec::new();
    let mut it = it.peekable();
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str().map(str::to_string) else {
            train.push(arg); // not UTF-8: clap refuses it as a train flag, in one line
            continue;
        };
        if text == "--" {
            train.extend(it.by_ref());
            break;
        }
        let (name, inline) = match text.split_once('=') {
            Some((n, _)) => (n, true),
            None => (text.as_str(), false),
        };
        if let Some(a) = ours(name) {
            let takes = a.get_action().takes_values();
            mine.push(arg);
            if takes && !inline {
                mine.extend(it.next());
            }
            continue;
        }
        if matches!(name, "-h" | "--help") {
            mine.push(arg);
            continue;
        }
        let takes_next = !inline && name.starts_with("--");
        train.push(arg);
        if takes_next && it.peek().is_some_and(|v| !v.to_string_lossy().starts_with("--")) {
            train.extend(it.next());
        }
    }
    if !train.is_empty() {
        mine.push("--".into());
        mine.extend(train);
    }
    mine
}

/// With `true`, a closed stdout or stderr ends the process as it ends a Unix tool: by
/// SIGPIPE (the shell's 141), never a panic in `println!`. The local grid runner handles a
/// closed stdout itself, to stop its cells cleanly: it runs with SIGPIPE ignored.
fn die_on_closed_pipe(yes: bool) {
    // SAFETY: setting a signal's disposition; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, if yes { libc::SIG_DFL } else { libc::SIG_IGN });
    }
}

impl StudyArgs {
    fn slurm_options(&self) -> SlurmOptions {
        SlurmOptions {
            partition: self.partition.clone(),
            time: self.time.clone(),
            account: self.account.clone(),
            cpus_per_task: self.cpus_per_task,
            gpus_per_task: self.gpus_per_task,
            throttle: self.throttle,
            extra: self.sbatch_lines.clone(),
        }
    }
}

/// Runs the study: one cell (`--run-cell`), the grid here or on Slurm, then the tables.
pub fn run(args: &StudyArgs) -> Result<()> {
    let mut archs = args.archs.clone();
    archs.dedup();
    let (shared, exec) = parse_grid_flags(&args.train_flags)?;
    let spec = GridSpec::new(args.depths.clone(), archs, args.seeds.clone(), &shared)?;
    if let Some(index) = args.run_cell {
        let grid = Grid::open(&args.out)?;
        let planned = grid.cells.get(index).and_then(|c| grid.config(c, &exec).ok());
        let (batch, device) = planned.map_or((0, tch::Device::Cpu), |c| (c.schedule.batch_size, c.machine.device));
        let summary =
            resnet_cifar::device::catch_out_of_memory(batch, device, || study::plan::run_cell(&grid, index, &exec))?;
        if let Some(s) = summary {
            println!("{}", s.describe());
        }
        return Ok(());
    }
    let dir = args.collect.clone().unwrap_or_else(|| args.out.clone());
    if args.collect.is_none() {
        let exe = std::env::current_exe().map_err(|e| Error::io("the running executable", e))?;
        if args.slurm {
            return slurm_grid(args, spec, &exe);
        }
        let grid = Grid::plan(&args.out, spec)?;
        let devices =
            if !args.devices.is_empty() { args.devices.clone() } else { exec.device.iter().cloned().collect() };
        for d in &devices {
            resnet_cifar::device::parse_device(d)?;
        }
        let opts =
            LocalOptions { jobs: args.jobs.map(|j| j as usize), devices, threads: exec.threads, quiet: args.quiet };
        die_on_closed_pipe(false);
        let ran = local::run(&grid, &exe, &opts);
        die_on_closed_pipe(true);
        ran?;
    }
    let device = resnet_cifar::device::parse_device(exec.device.as_deref().unwrap_or("cpu"))?;
    let grid = Grid::open(&dir)?;
    let (results, mut files) = study::collect(&grid, device)?;
    files.push(resnet_cifar::html::study::write_report(&grid)?);
    println!("\n{}", study::results::markdown(&results));
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    println!("wrote {}", names.join(", "));
    Ok(())
}

/// `--slurm [--submit]`: plans the grid, puts the binary where the scripts find it after a
/// `cargo clean`, writes the scripts and maybe submits them.
fn slurm_grid(args: &StudyArgs, spec: GridSpec, running: &std::path::Path) -> Result<()> {
    let opts = args.slurm_options();
    let binary = ScriptBinary::resolve(&args.out, running)?;
    // Before the plan is written: a refused value leaves nothing behind.
    slurm::check_inputs(&args.out, &binary.path, &opts)?;
    let grid = Grid::plan(&args.out, spec)?;
    if binary.install()? {
        println!("copied {} to {} for the scripts", running.display(), binary.path.display());
    }
    let (array, collect) = slurm::write_scripts(&grid, &binary.path, &opts)?;
    println!("wrote {} ({} cells) and {}", array.display(), grid.cells.len(), collect.display());
    if args.submit {
        let (a, c) = slurm::submit(&array, &collect)?;
        println!("submitted array job {a} and collect job {c} (after {a})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(line: &str) -> String {
        let argv: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        let out: Vec<String> = route_train_flags(argv).into_iter().map(|a| a.into_string().unwrap()).collect();
        out.join(" ")
    }

    #[test]
    fn train_flags_go_after_the_study_flags_in_their_order() {
        assert_eq!(
            route("rc study --depths 20,56 --epochs 20 --out runs/s --lr -1 --quiet --no-tensorboard --seeds=0,1"),
            "rc study --depths 20,56 --out runs/s --quiet --seeds=0,1 -- --epochs 20 --lr -1 --no-tensorboard"
        );
        assert_eq!(route("rc study --collect d"), "rc study --collect d");
        assert_eq!(route("rc study --epochs=3 --help"), "rc study --help -- --epochs=3");
        assert_eq!(route("rc study --jobs 2 -- --out x"), "rc study --jobs 2 -- --out x");
        assert_eq!(route("rc train --epochs 3 --out x"), "rc train --epochs 3 --out x");
        assert_eq!(route("rc --depth 8"), "rc --depth 8");
    }

    #[test]
    fn the_routed_line_parses_into_the_study_and_its_train_flags() {
        let argv: Vec<OsString> =
            "resnet-cifar study --epochs 2 --seeds 0,1 --device cpu --slurm".split(' ').map(OsString::from).collect();
        let cli = crate::cli::Cli::try_parse_from(route_train_flags(argv)).unwrap();
        let Some(crate::cli::Command::Study(args)) = cli.command else { panic!("not the study: {cli:?}") };
        assert_eq!(args.seeds, [0, 1]);
        assert!(args.slurm);
        assert_eq!(args.train_flags, ["--epochs", "2", "--device", "cpu"]);
    }
}
