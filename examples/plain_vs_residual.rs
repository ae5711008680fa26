//! Plain versus residual: the claim of Fig. 6 of He et al., "Deep Residual Learning for
//! Image Recognition" (2015), in one short program on the library's public API.
//!
//! It builds two networks of the same depth, a *plain* one (stacked 3×3 convolutions, BN,
//! ReLU) and a *residual* one (the same layers, each pair bridged by an identity shortcut,
//! so that a block learns `F(x)` in `x + F(x)`), trains both alike with the library's one
//! training loop (`resnet_cifar::train::run`, the loop behind `resnet-cifar train`), and
//! prints their curves side by side.
//!
//! What to look for: the paper's *degradation problem*. Deeper plain networks reach a
//! higher **training** error than shallower ones (it is not overfitting: the training error
//! itself is worse, so the solver fails to find the easy solution of extra layers being the
//! identity), while residual networks of the same depth do not degrade: they train as well
//! or better the deeper they are. Run it at `--depth 20` and at `--depth 56` and compare the
//! gap between the two columns; with a few epochs on part of the data it already shows, and
//! the full study (five depths, several seeds, Table 6) is `resnet-cifar study`.
//!
//! ```text
//! cargo run --release --example plain_vs_residual -- --epochs 2 --limit-train 5000 --limit-test 2000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use resnet_cifar::data::Dataset;
use resnet_cifar::model::{Arch, ResNetConfig};
use resnet_cifar::train::config::{DataSettings, Machine, Output, Schedule};
use resnet_cifar::train::{self, RunSummary, TrainConfig};

/// Trains a plain and a residual network of one depth on CIFAR-10 and prints their
/// training and test error per epoch, side by side.
#[derive(Debug, Parser)]
#[command(name = "plain_vs_residual")]
struct Args {
    /// Depth of both networks: 6n+2 (20, 32, 44, 56, 110).
    #[arg(long, default_value_t = 20)]
    depth: i64,
    /// Epochs of each (the learning rate drops by 10 at 50 % and 75 % of them).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i64).range(1..))]
    epochs: i64,
    /// Train on the first N training images only (e.g. 5000, for a short run on a CPU).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    limit_test: Option<usize>,
    /// CIFAR-10's binary files (./download_cifar.sh fetches them).
    #[arg(long, default_value_os_t = Dataset::Cifar10.default_dir())]
    data_dir: PathBuf,
    /// Where the two run directories go: OUT/plain-DEPTH and OUT/resnet-DEPTH (new or empty).
    #[arg(long, default_value = "runs/plain_vs_residual_example")]
    out: PathBuf,
}

/// One network, trained by the library's loop into its own run directory.
fn train(args: &Args, arch: Arch) -> resnet_cifar::Result<RunSummary> {
    let model = ResNetConfig { depth: args.depth, arch, ..Default::default() };
    let (limit_train, limit_test, dir) = (args.limit_train, args.limit_test, args.data_dir.clone());
    let cfg = TrainConfig {
        model,
        schedule: Schedule { epochs: args.epochs, ..Default::default() },
        data: DataSettings { dir, limit_train, limit_test, ..Default::default() },
        output: Output { dir: args.out.join(model.name()), tensorboard: false, ..Default::default() },
        machine: Machine { device: resnet_cifar::device::parse_device("auto")?, ..Default::default() },
        ..Default::default()
    };
    println!("training {} ({} epochs) into {}", model.name(), cfg.schedule.epochs, cfg.output.dir.display());
    train::run(&cfg)
}

fn run(args: &Args) -> resnet_cifar::Result<()> {
    let plain = train(args, Arch::Plain)?;
    let resnet = train(args, Arch::Resnet)?;
    let (p, r) = (format!("plain-{}", args.depth), format!("resnet-{}", args.depth));
    println!("\nerror (%)   {p:>19}   {r:>19}");
    println!("epoch       {:>9} {:>9}   {:>9} {:>9}", "train", "test", "train", "test");
    for (a, b) in plain.epochs.iter().zip(&resnet.epochs) {
        let (ta, sa, tb, sb) = (a.train_err, a.test_err, b.train_err, b.test_err);
        println!("{:>5}       {ta:>9.2} {sa:>9.2}   {tb:>9.2} {sb:>9.2}", a.epoch);
    }
    for (name, s) in [(&p, &plain), (&r, &resnet)] {
        let last = s.last();
        println!("{name}: final train error {:.2}%, test error {:.2}%", last.train_err, last.test_err);
    }
    let gap = plain.last().train_err - resnet.last().train_err;
    println!("final train error, plain minus residual: {gap:+.2} points");
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", resnet_cifar::error::one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}
