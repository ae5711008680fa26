//! `bench`: images/s of the training step or of evaluation, with peak memory, as one JSON
//! line (bench/speed.py puts it beside PyTorch eager).

use anyhow::Result;
use clap::Args;
use resnet_cifar::bench::{self, BenchConfig, BenchMode};
use resnet_cifar::train::graph::CudaGraphs;
use tch::Device;

use super::{device_arg, values, ComputeArgs, DataArgs, ModelArgs};

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

pub fn bench_command(args: &BenchArgs) -> Result<()> {
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
