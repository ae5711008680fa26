//! Plain versus residual networks on CIFAR-10: the study behind Fig. 6 and Table 6 of
//! He et al., "Deep Residual Learning for Image Recognition" (2015). For each depth it
//! trains `plain-<d>` and `resnet-<d>` with the same seed and schedule, then writes
//! `results.md` / `results.json` (a table like Table 6) and `plain.png`, `resnet.png` and
//! `both.png` (learning curves like Fig. 6: dashed training error, bold test error).
//!
//! ```text
//! cargo run --release --example plain_vs_residual -- --depths 20,56 --epochs 10
//! ```
//!
//! Rerunning resumes: a run whose `metrics.csv` has all its epochs is skipped and read
//! back; an interrupted one is deleted and trained again.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use resnet_cifar::data::Cifar10;
use resnet_cifar::device::parse_device;
use resnet_cifar::plot::{self, PlotOptions, Series};
use resnet_cifar::train::{run_with_data, TrainConfig};
use resnet_cifar::{Arch, ResNetConfig};
use serde_json::{json, Value};

/// Trains plain and residual networks of each depth and compares them (Fig. 6, Table 6).
#[derive(Debug, Parser)]
struct Args {
    /// Depths (6n+2), comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "20,56")]
    depths: Vec<i64>,
    #[arg(long, default_value_t = 10)]
    epochs: i64,
    #[arg(long, default_value = "data/cifar-10-batches-bin")]
    data_dir: PathBuf,
    /// Output directory: one run directory per network, the table and the figures.
    #[arg(long, default_value = "runs/plain_vs_residual")]
    out: PathBuf,
    #[arg(long)]
    limit_train: Option<usize>,
    #[arg(long)]
    limit_test: Option<usize>,
    #[arg(long, default_value_t = 128)]
    batch_size: i64,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    seed: i64,
    #[arg(long, allow_negative_numbers = true)]
    threads: Option<i32>,
    /// Top of the figures' y axis in % [default: the largest test error, rounded up to 10s].
    #[arg(long)]
    ymax: Option<f64>,
}

/// One row of the table.
#[derive(Debug, serde::Serialize)]
struct Row {
    run: String,
    arch: String,
    depth: i64,
    params: i64,
    final_train_err: f64,
    final_test_err: f64,
    best_test_err: f64,
    wall_minutes: f64,
    device: String,
    skipped: bool,
}

fn main() -> ExitCode {
    resnet_cifar::alloc::keep_freed_memory();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// Data rows of `dir/metrics.csv`, or 0 when it is missing.
fn data_rows(dir: &Path) -> Result<usize> {
    let path = dir.join("metrics.csv");
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.lines().skip(1).filter(|l| !l.trim().is_empty()).count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("{}", path.display())),
    }
}

/// What a run directory holds.
enum State {
    New,
    Finished,
    /// Data rows written and epochs planned (when config.json says).
    Interrupted(usize, Option<i64>),
}

/// Looks at `cfg.out_dir`. A finished run with other settings than `cfg` is an error
/// rather than silently mixed into the table.
fn state(cfg: &TrainConfig) -> Result<State> {
    let dir = &cfg.out_dir;
    if !dir.exists() {
        return Ok(State::New);
    }
    let config = dir.join("config.json");
    let saved = config.exists().then(|| read_json(&config)).transpose()?;
    let planned = saved.as_ref().and_then(|s| s["epochs"].as_i64());
    let rows = data_rows(dir)?;
    match saved {
        Some(saved) if rows > 0 && planned == Some(rows as i64) => {
            let wanted = [
                ("arch", json!(cfg.model.arch.to_string())),
                ("depth", json!(cfg.model.depth)),
                ("epochs", json!(cfg.epochs)),
                ("batch_size", json!(cfg.batch_size)),
                ("limit_train", json!(cfg.limit_train)),
                ("limit_test", json!(cfg.limit_test)),
                ("seed", json!(cfg.seed)),
            ];
            for (key, want) in wanted {
                if saved[key] != want {
                    bail!(
                        "{} holds a finished run with {key} {}, not {want}: use another --out, or delete it to train again",
                        dir.display(),
                        saved[key]
                    );
                }
            }
            Ok(State::Finished)
        }
        _ => {
            // Delete only what train leaves: config.json, metrics.csv, or nothing yet.
            let empty = dir.read_dir().is_ok_and(|mut d| d.next().is_none());
            let is_run = saved.is_some() || dir.join("metrics.csv").exists() || empty;
            ensure!(is_run, "{} holds no run: move it away", dir.display());
            Ok(State::Interrupted(rows, planned))
        }
    }
}

/// Parameters, wall time (sum of epoch times) and device of a finished run.
fn saved_run(dir: &Path) -> Result<(i64, f64, String)> {
    #[derive(serde::Deserialize)]
    struct Epoch {
        epoch_seconds: f64,
    }
    let saved = read_json(&dir.join("config.json"))?;
    let path = dir.join("metrics.csv");
    let secs = csv::Reader::from_path(&path)
        .and_then(|mut r| r.deserialize().map(|e| e.map(|e: Epoch| e.epoch_seconds)).sum())
        .with_context(|| format!("{}", path.display()))?;
    let device = saved["device"].as_str().unwrap_or("?").to_string();
    Ok((saved["parameters"].as_i64().unwrap_or(0), secs, device))
}

fn fmt_limit(l: Option<usize>) -> String {
    l.map_or("all".into(), |n| n.to_string())
}

fn run(args: Args) -> Result<()> {
    let device = parse_device(&args.device)?;
    if let Some(y) = args.ymax {
        ensure!(y.is_finite() && y > 0.0, "--ymax {y} must be a positive number");
    }
    let mut depths = args.depths.clone();
    depths.sort_unstable();
    depths.dedup();
    let mut configs = Vec::new();
    for &depth in &depths {
        for arch in [Arch::Plain, Arch::Resnet] {
            let model = ResNetConfig { depth, arch, ..Default::default() };
            let cfg = TrainConfig {
                model,
                epochs: args.epochs,
                batch_size: args.batch_size,
                limit_train: args.limit_train,
                limit_test: args.limit_test,
                data_dir: args.data_dir.clone(),
                out_dir: args.out.join(model.name()),
                device,
                seed: args.seed,
                threads: args.threads,
                quiet: false,
                ..Default::default()
            };
            cfg.validate()?;
            configs.push(cfg);
        }
    }
    // Decide every run's fate before the first (long) training starts.
    let states: Vec<State> = configs.iter().map(state).collect::<Result<_>>()?;

    let mut data: Option<Cifar10> = None;
    let (mut rows, mut series) = (Vec::new(), Vec::new());
    for (cfg, st) in configs.iter().zip(states) {
        let name = cfg.model.name();
        let skip = matches!(st, State::Finished);
        if let State::Interrupted(rows, planned) = st {
            let planned = planned.map_or("?".into(), |e| e.to_string());
            println!(
                "{name}: unfinished ({rows}/{planned} epochs): deleting {} and training again",
                cfg.out_dir.display()
            );
            std::fs::remove_dir_all(&cfg.out_dir)
                .with_context(|| format!("cannot delete {}", cfg.out_dir.display()))?;
        }
        let (params, wall_seconds, dev) = if skip {
            println!("skipping {name}: finished ({} epochs in {})", args.epochs, cfg.out_dir.display());
            saved_run(&cfg.out_dir)?
        } else {
            if data.is_none() {
                let d = Cifar10::load(&args.data_dir)?;
                println!("loaded CIFAR-10 from {}", args.data_dir.display());
                data = Some(d);
            }
            let s =
                run_with_data(cfg, data.as_ref().expect("loaded above")).with_context(|| format!("training {name}"))?;
            (s.parameters, s.wall_seconds, s.device)
        };
        let run = plot::read_run(&cfg.out_dir)?;
        let last = run.rows.last().expect("read_run returns at least one row");
        let best = run.rows.iter().map(|r| r.test_err).fold(f64::INFINITY, f64::min);
        rows.push(Row {
            run: name,
            arch: cfg.model.arch.to_string(),
            depth: cfg.model.depth,
            params,
            final_train_err: last.train_err,
            final_test_err: last.test_err,
            best_test_err: best,
            wall_minutes: wall_seconds / 60.0,
            device: dev,
            skipped: skip,
        });
        series.push(run);
    }

    let setup = format!(
        "Data: `{}`, {} epochs, limit-train {}, limit-test {}, batch size {}, seed {}.",
        args.data_dir.display(),
        args.epochs,
        fmt_limit(args.limit_train),
        fmt_limit(args.limit_test),
        args.batch_size,
        args.seed
    );
    let mut md = format!(
        "# Plain vs. residual networks on CIFAR-10 (He et al. 2015, Table 6)\n\n{setup}\n\n\
         | run | depth | params | final train err (%) | final test err (%) | best test err (%) | wall time (min) | device |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n"
    );
    for r in &rows {
        let Row { run, depth, params, device, .. } = r;
        let (train, test, best) = (r.final_train_err, r.final_test_err, r.best_test_err);
        let min = r.wall_minutes;
        md.push_str(&format!(
            "| {run} | {depth} | {params} | {train:.2} | {test:.2} | {best:.2} | {min:.2} | {device} |\n"
        ));
    }
    let write = |name: &str, text: &str| {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("results.md", &md)?;
    let summary = json!({
        "data_dir": args.data_dir.display().to_string(),
        "epochs": args.epochs,
        "limit_train": args.limit_train,
        "limit_test": args.limit_test,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "runs": rows,
    });
    write("results.json", &serde_json::to_string_pretty(&summary)?)?;

    // Fig. 6 uses 0–20 %; short runs sit higher, so the axis grows to show their curves.
    let max_test =
        series.iter().flat_map(|s| &s.rows).map(|r| r.test_err).filter(|e| e.is_finite()).fold(0.0, f64::max);
    let ymax = args.ymax.unwrap_or_else(|| ((max_test / 10.0).ceil() * 10.0).clamp(20.0, 100.0));
    let figures: [(&str, &str, Option<Arch>); 3] = [
        ("plain.png", "CIFAR-10, plain networks", Some(Arch::Plain)),
        ("resnet.png", "CIFAR-10, ResNets", Some(Arch::Resnet)),
        ("both.png", "CIFAR-10, plain vs. residual", None),
    ];
    for (file, title, arch) in figures {
        let picked: Vec<Series> = series
            .iter()
            .zip(&configs)
            .filter(|(_, c)| arch.is_none_or(|a| c.model.arch == a))
            .map(|(s, _)| s.clone())
            .collect();
        let opts = PlotOptions { ymax: Some(ymax), title: Some(title.to_string()), ..Default::default() };
        plot::plot(&picked, &args.out.join(file), &opts)?;
    }
    println!("\n{md}");
    println!("wrote {}/{{results.md,results.json,plain.png,resnet.png,both.png}}", args.out.display());
    Ok(())
}
