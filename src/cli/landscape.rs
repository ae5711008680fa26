//! `resnet-cifar landscape`: the loss around trained weights along filter-normalised random
//! directions (Li et al. 2018), for one or several checkpoints, optionally split over
//! processes (`--jobs`, the pool of [`resnet_cifar::jobs`]): each shard computes every N-th
//! point and the parent merges them.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use tch::Device;

use resnet_cifar::data::{DataSource, Part, Split};
use resnet_cifar::inference::{dataset_for_all, load_model, normalizer_for, LoadedModel, ModelOverrides};
use resnet_cifar::jobs::{self as pool, Pool};
use resnet_cifar::landscape::{self, Dims, Direction, Grid, Landscape, Measure, Perturbation, Point};
use resnet_cifar::model::Compute;
use resnet_cifar::normalize::{Normalization, Normalizer};
use resnet_cifar::progress;

use super::{device_arg, values, DataArgs, TableOutput};

/// Which images the loss is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    Train,
    Test,
}

#[derive(Debug, Clone, Args)]
pub struct LandscapeArgs {
    /// Checkpoints, one landscape each (repeat the flag); drawn side by side on one scale.
    #[arg(long, required_unless_present = "from")]
    pub weights: Vec<PathBuf>,
    /// Instead of computing: tables that `landscape` wrote, drawn together (repeat the flag);
    /// their rows are copied into --output.
    #[arg(long, conflicts_with = "weights")]
    pub from: Vec<PathBuf>,
    /// 1: the loss along one direction; 2: over the plane of two.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub dims: u8,
    /// Points per axis [default: 21 for 2-D, 51 for 1-D]; odd counts include the centre.
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=1001))]
    pub grid: Option<u64>,
    /// α and β run over [−R, R] (in units of the filter-normalised directions).
    #[arg(long, default_value_t = 1.0, value_parser = positive_f64, allow_negative_numbers = true)]
    pub range: f64,
    /// Measure on the first K images of the split, without augmentation.
    #[arg(long, default_value_t = 2500, value_parser = clap::value_parser!(u64).range(1..=50_000))]
    pub images: u64,
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    /// Seed of the random directions (the same seed gives the same directions).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: i64,
    /// Also measure the mean loss increase at --probe-radius along this many further random
    /// directions (a number for the flatness the pictures show).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub probes: u64,
    #[arg(long, default_value_t = 0.5, value_parser = positive_f64, allow_negative_numbers = true)]
    pub probe_radius: f64,
    /// Split the grid's points over N processes [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub jobs: Option<u64>,
    /// CPU threads of each process [default: the cores divided among the jobs].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub threads: Option<i32>,
    /// Input normalisation [default: each checkpoint's].
    #[arg(long, value_parser = values::of::<Normalization>())]
    pub normalize: Option<Normalization>,
    /// The checkpoints' data set (they must share one) and its directory.
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value = "auto", value_parser = device_arg)]
    pub device: Device,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// The figure's title [default: what was measured, on how many images].
    #[arg(long)]
    pub title: Option<String>,
    #[command(flatten)]
    pub out: TableOutput,
    /// Internal: compute every N-th point from the K-th ("K/N") into --output, for --jobs.
    #[arg(long, hide = true)]
    pub shard: Option<String>,
}

fn positive_f64(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s} is not a positive number")),
    }
}

impl LandscapeArgs {
    fn grid(&self) -> Grid {
        let dims = if self.dims == 1 { Dims::One } else { Dims::Two };
        let points = self.grid.map_or_else(|| Grid::default_points(dims), |g| g as usize);
        Grid { dims, points, range: self.range }
    }

    /// The checkpoints' data set, in `--data-dir` or its default directory.
    fn data(&self) -> Result<DataSource> {
        Ok(self.data.source(dataset_for_all(&self.weights, self.data.choice())?))
    }

    fn load(&self, path: &Path, device: Device) -> Result<(LoadedModel, Normalizer)> {
        let loaded = load_model(path, &ModelOverrides::default(), device, Compute::default())?;
        let normalizer = normalizer_for(&loaded.checkpoint, self.normalize, &self.data()?)?.to_device(device);
        Ok((loaded, normalizer))
    }

    /// The first `--images` of the split (reading only the files they are in).
    fn images(&self, device: Device) -> Result<Split> {
        let part = if self.split == SplitArg::Train { Part::Train } else { Part::Test };
        Ok(self.data()?.load_split(part, Some(self.images as usize))?.to_device(device))
    }
}

/// Runs the command: a shard's share of points, or the whole landscape and its outputs.
pub fn run(args: &LandscapeArgs) -> Result<()> {
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    if let Some(shard) = &args.shard {
        return run_shard(args, shard);
    }
    let inputs: Vec<PathBuf> = args.weights.iter().chain(&args.from).cloned().collect();
    args.out.check_against(&inputs)?;
    let out_dir = args.out.output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !out_dir.is_dir() {
        bail!("{}: no such directory for --output", out_dir.display());
    }
    if !args.from.is_empty() {
        let mut all = Vec::new();
        for f in &args.from {
            all.extend(landscape::read_csv(f)?);
        }
        let plot = args.out.plot_path();
        landscape::write_csv(&all, &args.out.output)?;
        let title = args.title.clone().unwrap_or_else(|| landscape::default_title(&all, "redrawn from tables"));
        landscape::draw(&all, &plot, &title)?;
        let summary_path = write_summary(args, &all, false)?;
        println!("wrote {}, {} and {}", args.out.output.display(), summary_path.display(), plot.display());
        return Ok(());
    }
    let grid = args.grid();
    let points = grid.points();
    let jobs = args.jobs.unwrap_or(1) as usize;
    let split = if args.split == SplitArg::Train { "training" } else { "test" };
    let what = format!("{} {split} images, seed {}", args.images, args.seed);
    let total = (points.len() * args.weights.len()) as u64;
    let bar = progress::count_bar(total, "points", args.quiet);
    let started = std::time::Instant::now();
    let swept = if jobs > 1 {
        sweep_in_processes(args, jobs, &bar)?
    } else {
        let images = args.images(args.device)?;
        let mut all = Vec::new();
        for path in &args.weights {
            all.push(sweep_one(args, path, &images, None, &mut |_| bar.inc(1))?);
        }
        all
    };
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!("swept {total} points in {secs:.0} s ({:.2} s a point, {jobs} process(es))", secs / total as f64);
    let plot = args.out.plot_path();
    landscape::write_csv(&swept, &args.out.output).context("writing the landscape table")?;
    landscape::draw(&swept, &plot, &args.title.clone().unwrap_or_else(|| landscape::default_title(&swept, &what)))?;
    let summary_path = write_summary(args, &swept, true)?;
    println!("wrote {}, {} and {}", args.out.output.display(), summary_path.display(), plot.display());
    Ok(())
}

/// Prints each landscape's flatness numbers and writes them to `<output stem>-summary.csv`;
/// with `probe` and `--probes N`, also the loss rise along N more random directions.
fn write_summary(args: &LandscapeArgs, swept: &[Landscape], probe: bool) -> Result<PathBuf> {
    let summary_path = args.out.output.with_file_name(format!(
        "{}-summary.csv",
        args.out.output.file_stem().map_or("landscape".into(), |s| s.to_string_lossy())
    ));
    let mut summary = csv::Writer::from_path(&summary_path).with_context(|| summary_path.display().to_string())?;
    summary.write_record([
        "model",
        "centre_loss",
        "centre_err",
        "below_twice_centre",
        "edge_median_loss",
        "max_loss",
        "probes",
        "probe_radius",
        "probe_rise_mean",
        "probe_rise_std",
    ])?;
    let images = if probe && args.probes > 0 { Some(args.images(args.device)?) } else { None };
    for (i, l) in swept.iter().enumerate() {
        let f = landscape::flatness(&l.points).context("empty landscape")?;
        let mut line = format!(
            "{}: centre loss {:.4}, err {:.2}%; {:.1}% of the grid below twice the centre loss; edge median {:.3}, max {:.3}",
            l.name,
            f.centre_loss,
            f.centre_err,
            100.0 * f.below_twice_centre,
            f.edge_median_loss,
            f.max_loss
        );
        let mut probe = (String::new(), String::new());
        if let Some(images) = &images {
            let (model, normalizer) = args.load(&args.weights[i], args.device)?;
            let perturbation = Perturbation::new(&model.vs)?;
            let bar = progress::count_bar(args.probes, "probes", args.quiet);
            // Seeded apart from the grid's two directions.
            let seed = args.seed.wrapping_add(1_000_003);
            let on = Measure { model: &model.model, images, normalizer: &normalizer };
            let (mean, std) =
                landscape::probe(on, &perturbation, (seed, args.probes as usize, args.probe_radius), || bar.inc(1));
            bar.finish_and_clear();
            line.push_str(&format!(
                "; loss rise at radius {} over {} directions: {mean:.4} ± {std:.4}",
                args.probe_radius, args.probes
            ));
            probe = (format!("{mean:e}"), format!("{std:e}"));
        }
        println!("{line}");
        summary.write_record([
            resnet_cifar::text::csv_text(&l.name),
            format!("{:e}", f.centre_loss),
            f.centre_err.to_string(),
            f.below_twice_centre.to_string(),
            format!("{:e}", f.edge_median_loss),
            format!("{:e}", f.max_loss),
            if images.is_some() { args.probes.to_string() } else { "0".into() },
            args.probe_radius.to_string(),
            probe.0,
            probe.1,
        ])?;
    }
    summary.flush()?;
    Ok(summary_path)
}

/// Sweeps `path`'s landscape, at every point or (for a shard) at the indices `keep` selects.
fn sweep_one(
    args: &LandscapeArgs,
    path: &Path,
    images: &Split,
    keep: Option<&dyn Fn(usize) -> bool>,
    done: &mut dyn FnMut(&Point),
) -> Result<Landscape> {
    let (model, normalizer) = args.load(path, args.device)?;
    let grid = args.grid();
    let points: Vec<(f64, f64)> =
        grid.points().into_iter().enumerate().filter(|(i, _)| keep.is_none_or(|k| k(*i))).map(|(_, p)| p).collect();
    let perturbation = Perturbation::new(&model.vs)?;
    let dirs: Vec<Direction> = perturbation.directions(args.seed, if grid.dims == Dims::Two { 2 } else { 1 });
    let on = Measure { model: &model.model, images, normalizer: &normalizer };
    let swept = landscape::sweep(on, &perturbation, (&dirs[0], dirs.get(1)), &points, |p| done(p));
    Ok(Landscape { name: name_of(args, path, &model), grid, points: swept })
}

/// The network's name, with the file's when several checkpoints share it.
fn name_of(args: &LandscapeArgs, path: &Path, model: &LoadedModel) -> String {
    let name = model.model.config.name();
    let same = args.weights.iter().filter(|w| *w != path).filter_map(|w| resnet_cifar::checkpoint::read(w).ok());
    let clash = same.filter_map(|c| c.model_config().ok()).any(|c| c.name() == name);
    if clash {
        format!("{name} ({})", path.display())
    } else {
        name
    }
}

/// A shard: every N-th point from the K-th of each checkpoint's grid, one CSV line
/// (`weights index,point index,loss,err`) flushed per point, so the parent can count them.
fn run_shard(args: &LandscapeArgs, shard: &str) -> Result<()> {
    let (k, n) = shard
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(k, n)| k < n)
        .with_context(|| format!("--shard {shard}: expected K/N with K < N"))?;
    let images = args.images(args.device)?;
    let out = &args.out.output;
    let mut file = File::create(out).with_context(|| out.display().to_string())?;
    let grid = args.grid();
    let indices: Vec<usize> = (0..grid.points().len()).filter(|i| i % n == k).collect();
    for (w, path) in args.weights.iter().enumerate() {
        let mut next = indices.iter();
        let mut failed = None;
        sweep_one(args, path, &images, Some(&|i| i % n == k), &mut |p| {
            let i = next.next().copied().unwrap_or(usize::MAX);
            if let Err(e) = writeln!(file, "{w},{i},{:e},{}", p.loss, p.err).and_then(|_| file.flush()) {
                failed.get_or_insert(e);
            }
        })?;
        if let Some(e) = failed {
            bail!("{}: {e}", out.display());
        }
    }
    Ok(())
}

/// Runs `jobs` shards of this command as child processes and merges their points. SIGINT
/// or SIGTERM stops the shards and the command, which then writes nothing.
fn sweep_in_processes(args: &LandscapeArgs, jobs: usize, bar: &indicatif::ProgressBar) -> Result<Vec<Landscape>> {
    let exe = std::env::current_exe().context("current executable")?;
    let device = resnet_cifar::device::device_name(args.device);
    let (jobs, threads) = pool::split(jobs, std::slice::from_ref(&device), pool::cores(), Some(jobs), args.threads);
    let data = args.data()?;
    let mut shard_pool = Pool::new(vec![device.clone()], jobs)?;
    // Beside the output, removed once merged.
    let shards: Vec<PathBuf> =
        (0..jobs).map(|k| args.out.output.with_extension(format!("shard-{k}-of-{jobs}.csv"))).collect();
    for (k, out) in shards.iter().enumerate() {
        let mut cmd = Command::new(&exe);
        cmd.arg("landscape");
        for w in &args.weights {
            cmd.arg("--weights").arg(w);
        }
        let grid = args.grid();
        cmd.args(["--dims", &args.dims.to_string(), "--grid", &grid.points.to_string()]);
        cmd.args(["--range", &args.range.to_string(), "--images", &args.images.to_string()]);
        cmd.args(["--split", if args.split == SplitArg::Train { "train" } else { "test" }]);
        cmd.args(["--seed", &args.seed.to_string(), "--threads", &threads.to_string()]);
        if let Some(n) = args.normalize {
            cmd.args(["--normalize", &n.to_string()]);
        }
        cmd.args(["--dataset", &data.dataset.name().to_string()]);
        cmd.args(data.dataset.labels().map(|l| format!("--labels={l}")));
        cmd.arg("--data-dir").arg(&data.dir);
        cmd.args(["--device", &device]);
        cmd.arg("--output").arg(out).args(["--shard", &format!("{k}/{jobs}")]);
        shard_pool.start(k, cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()))?;
    }
    let count = |p: &Path| std::fs::read(p).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    let mut failed = Vec::new();
    while !shard_pool.is_empty() {
        shard_pool.interrupted();
        for (mut job, status) in shard_pool.reap()? {
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = job.child.stderr.take() {
                    std::io::Read::read_to_string(&mut e, &mut err).ok();
                }
                failed.push((job.tag, format!("a landscape shard failed ({status}): {}", err.trim())));
            }
        }
        bar.set_position(shards.iter().map(|p| count(p) as u64).sum());
        std::thread::sleep(Duration::from_millis(300));
    }
    failed.sort();
    let merged = match (shard_pool.stopped(), failed.into_iter().next()) {
        (Some(signal), _) => Err(anyhow::anyhow!(
            "stopped by signal {signal}: the shards are stopped and no landscape is written; run the command again"
        )),
        (None, Some((_, why))) => Err(anyhow::anyhow!(why)),
        (None, None) => merge(args, &shards),
    };
    for s in &shards {
        let _ = std::fs::remove_file(s);
    }
    merged
}

/// The shards' lines as one landscape per checkpoint, in grid order.
fn merge(args: &LandscapeArgs, shards: &[PathBuf]) -> Result<Vec<Landscape>> {
    let grid = args.grid();
    let coords = grid.points();
    let mut found: Vec<Vec<Option<Point>>> = vec![vec![None; coords.len()]; args.weights.len()];
    for shard in shards {
        let file = File::open(shard).with_context(|| shard.display().to_string())?;
        for line in BufReader::new(file).lines() {
            let line = line?;
            let f: Vec<&str> = line.split(',').collect();
            let parsed = (|| {
                Some((
                    f.first()?.parse::<usize>().ok()?,
                    f.get(1)?.parse::<usize>().ok()?,
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.parse().ok()?,
                ))
            })();
            let Some((w, i, loss, err)) = parsed.filter(|(w, i, _, _)| *w < found.len() && *i < coords.len()) else {
                bail!("{}: malformed shard line {line:?}", shard.display());
            };
            let (alpha, beta) = coords[i];
            found[w][i] = Some(Point { alpha, beta, loss, err });
        }
    }
    let mut out = Vec::new();
    for (path, points) in args.weights.iter().zip(found) {
        let points: Option<Vec<Point>> = points.into_iter().collect();
        let points = points.with_context(|| format!("{}: the shards left points out", path.display()))?;
        let (model, _) = args.load(path, Device::Cpu)?;
        out.push(Landscape { name: name_of(args, path, &model), grid, points });
    }
    Ok(out)
}
