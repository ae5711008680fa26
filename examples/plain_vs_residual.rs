//! Plain versus residual networks on CIFAR-10: the study behind Fig. 6 and Table 6 of
//! He et al., "Deep Residual Learning for Image Recognition" (2015), as a grid of depths ×
//! architectures × seeds. Any `train` flag passes through to every cell.
//!
//! ```text
//! # every core (or GPU) of this box; rerun the same command to continue after a stop
//! cargo run --release --example plain_vs_residual -- --depths 20,56 --seeds 0,1 --epochs 20 --out runs/study
//! # a Slurm job array and a collect job that runs after it
//! cargo run --release --example plain_vs_residual -- --depths 20,32,44,56,110 --seeds 0,1,2,3,4 \
//!     --schedule paper --out /scratch/study --slurm --submit --partition gpu --gpus-per-task 1 --time 8:00:00
//! # the tables and figures of the cells finished so far
//! cargo run --release --example plain_vs_residual -- --collect runs/study
//! ```
//!
//! Output in `--out`: `grid.json` (the plan), one run directory per cell
//! (`<arch>-<depth>/seed-<s>/`), `logs/`, and `results.{json,csv,md}`, `fig6.png`, `fig7.png`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// The `train` flags, from the binary's command line: every cell takes them.
#[path = "../src/cli/train_args.rs"]
#[allow(dead_code)] // the binary's helpers for its other subcommands
mod train_args;
use resnet_cifar::study::local::{self, LocalOptions};
use resnet_cifar::study::slurm::{self, SlurmOptions};
use resnet_cifar::study::{self, Grid, GridSpec};
use resnet_cifar::{Arch, Error};

/// Trains plain and residual networks of each depth and seed and compares them (Fig. 6,
/// Table 6). Flags not listed here are `train` flags for every cell (e.g. --epochs 20
/// --precision bf16 --schedule paper); --threads and --device say where cells compute.
#[derive(Debug, Parser)]
#[command(name = "plain_vs_residual")]
struct Args {
    /// Depths (6n+2), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "20,56")]
    depths: Vec<i64>,
    /// Architectures, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "plain,resnet")]
    archs: Vec<Arch>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<i64>,
    /// Grid directory: grid.json, a run directory per cell, results and figures.
    #[arg(long, default_value = "runs/plain_vs_residual")]
    out: PathBuf,
    /// Cells at once, as separate processes [default: one per GPU; on the CPU one per core].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// Devices to spread cells over, comma-separated (cpu, cuda:0, …) [default: every GPU, else cpu].
    #[arg(long, value_delimiter = ',', value_parser = device_name)]
    devices: Vec<String>,
    /// Only aggregate the finished cells of the grid in DIR into the tables and figures.
    #[arg(long, value_name = "DIR")]
    collect: Option<PathBuf>,
    /// Write DIR/slurm/array.sbatch and collect.sbatch instead of training here.
    #[arg(long)]
    slurm: bool,
    /// Also submit them (the collect job after the array, afterany).
    #[arg(long, requires = "slurm")]
    submit: bool,
    /// Slurm partition.
    #[arg(long, requires = "slurm")]
    partition: Option<String>,
    /// Slurm time limit per task (e.g. 4:00:00).
    #[arg(long, requires = "slurm")]
    time: Option<String>,
    /// Slurm account.
    #[arg(long, requires = "slurm")]
    account: Option<String>,
    /// CPUs per array task (the cell's threads).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    cpus_per_task: u32,
    /// GPUs per array task (0: CPU cells).
    #[arg(long, default_value_t = 0)]
    gpus_per_task: u32,
    /// At most this many array tasks at once.
    #[arg(long, requires = "slurm", value_parser = clap::value_parser!(u32).range(1..))]
    throttle: Option<u32>,
    /// A raw line for the array script's header (repeatable), e.g. "#SBATCH --qos=long".
    #[arg(long = "sbatch-line", requires = "slurm")]
    sbatch_lines: Vec<String>,
    /// No progress display.
    #[arg(long)]
    quiet: bool,
    /// Train cell N of the grid in --out, in this process (what each job and array task runs).
    #[arg(long, hide = true)]
    run_cell: Option<usize>,
    /// `train` flags for every cell (collected from the command line).
    #[arg(skip)]
    train_flags: Vec<String>,
}

/// `--devices`: each checked by the parser, kept by name (`cpu`, `cuda:0`).
fn device_name(s: &str) -> Result<String, String> {
    train_args::device_arg(s).map(resnet_cifar::device::device_name)
}

/// Splits the command line into this program's flags and the `train` flags for the cells.
fn split_args(argv: Vec<String>) -> (Vec<String>, Vec<String>) {
    let cmd = Args::command();
    let ours = |name: &str| {
        let long = name.trim_start_matches("--");
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(long) || a.get_long_and_visible_aliases().is_some_and(|l| l.contains(&long)))
    };
    let mut mine = vec![argv[0].clone()];
    let mut train = Vec::new();
    let mut it = argv.into_iter().skip(1).peekable();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, _)) => (n.to_string(), true),
            None => (arg.clone(), false),
        };
        let target = match ours(&name) {
            Some(a) if name.starts_with("--") || name == "-h" || name == "-V" => {
                let takes = a.get_action().takes_values();
                mine.push(arg);
                if takes && !inline {
                    mine.extend(it.next());
                }
                continue;
            }
            _ if matches!(name.as_str(), "-h" | "--help" | "-V" | "--version") => &mut mine,
            _ => &mut train,
        };
        target.push(arg);
        if !inline && name.starts_with("--") && it.peek().is_some_and(|v| !v.starts_with("--")) {
            target.extend(it.next());
        }
    }
    (mine, train)
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

fn main() -> ExitCode {
    die_on_closed_pipe(true);
    resnet_cifar::alloc::keep_freed_memory();
    let (mine, train_flags) = split_args(std::env::args().collect());
    let mut args = match Args::try_parse_from(mine) {
        Ok(a) => a,
        Err(e) => return train_args::usage_error(e),
    };
    args.train_flags = train_flags;
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = match &e {
                Error::Interrupted { signal, .. } | Error::GridInterrupted { signal, .. } => (128 + signal) as u8,
                _ => 1,
            };
            eprintln!("error: {}", e.to_string().split_whitespace().collect::<Vec<_>>().join(" "));
            ExitCode::from(code)
        }
    }
}

fn run(args: Args) -> resnet_cifar::Result<()> {
    let mut archs = args.archs.clone();
    archs.dedup();
    let (spec, exec) = GridSpec::new(args.depths.clone(), archs, args.seeds.clone(), &args.train_flags)?;
    if let Some(index) = args.run_cell {
        let grid = Grid::open(&args.out, train_args::parse_train_flags)?;
        // Out of memory (two cells on one GPU, say): one line in the cell's log, not a panic.
        resnet_cifar::device::quiet_out_of_memory_panics();
        let planned = grid.cells.get(index).and_then(|c| grid.config(c, &exec).ok());
        let (batch, device) = planned.map_or((0, tch::Device::Cpu), |c| (c.batch_size, c.device));
        let summary =
            resnet_cifar::device::catch_out_of_memory(batch, device, || study::plan::run_cell(&grid, index, &exec))?;
        if let Some(s) = summary {
            println!("{}", s.describe());
        }
        return Ok(());
    }
    let dir = args.collect.clone().unwrap_or_else(|| args.out.clone());
    if args.collect.is_none() {
        let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
        let opts = SlurmOptions {
            partition: args.partition.clone(),
            time: args.time.clone(),
            account: args.account.clone(),
            cpus_per_task: args.cpus_per_task,
            gpus_per_task: args.gpus_per_task,
            throttle: args.throttle,
            extra: args.sbatch_lines.clone(),
        };
        if args.slurm {
            // Before the plan is written: a refused value leaves nothing behind.
            slurm::check_inputs(&args.out, &exe, &opts)?;
        }
        let grid = Grid::plan(&args.out, spec, train_args::parse_train_flags)?;
        if args.slurm {
            let (array, collect) = slurm::write_scripts(&grid, &exe, &opts)?;
            println!("wrote {} ({} cells) and {}", array.display(), grid.cells.len(), collect.display());
            if args.submit {
                let (a, c) = slurm::submit(&array, &collect)?;
                println!("submitted array job {a} and collect job {c} (after {a})");
            }
            return Ok(());
        }
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
    let grid = Grid::open(&dir, train_args::parse_train_flags)?;
    let (results, mut files) = study::collect(&grid, device)?;
    files.push(resnet_cifar::html::study::write_report(&grid)?);
    println!("\n{}", study::results::markdown(&results));
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    println!("wrote {}", names.join(", "));
    Ok(())
}
