//! `resnet-cifar bench`: images per second of the real training step (batch gather,
//! normalisation, augmentation, forward, loss, backward, SGD update; the same
//! [`train_step`](crate::train::train_step) that `train` runs) or of evaluation, after a
//! warm-up, with the process's peak resident memory. `bench/speed.py` runs it side by
//! side with the PyTorch eager baseline (`bench/pytorch_train.py`) and reports ratios.

use std::time::Instant;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::data::{DataSource, Part, Split};
use crate::error::{Error, Result};
use crate::evaluate::evaluate;
use crate::model::{Compute, ResNet, ResNetConfig};
use crate::normalize::{Normalization, Normalizer};
use crate::optim::Sgd;
use crate::schedule::LrSchedule;
use crate::train::{train_step, train_step_phased, Phase, StepContext};

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// Training steps on the training set.
    Train,
    /// Inference over the test set in batches of 500.
    Eval,
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub model: ResNetConfig,
    pub compute: Compute,
    pub mode: BenchMode,
    pub batch_size: i64,
    /// Timed training steps (evaluation: timed passes over the test set).
    pub iters: i64,
    /// Untimed steps (passes) first.
    pub warmup: i64,
    /// The data set (it decides the classifier's classes) and its directory.
    pub data: DataSource,
    pub device: Device,
    /// Also time each phase of the step, synchronising the device between phases.
    pub profile: bool,
}

/// Seconds spent in each phase of the timed steps (with `profile`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PhaseSeconds {
    /// Gathering the batch, normalisation, augmentation.
    pub data: f64,
    pub forward: f64,
    pub backward: f64,
    pub optimizer: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub mode: &'static str,
    pub depth: i64,
    pub batch_size: i64,
    pub precision: String,
    pub layout: String,
    pub device: String,
    pub threads: i32,
    pub images: i64,
    pub seconds: f64,
    pub images_per_sec: f64,
    /// Peak resident set size of the process (MiB).
    pub peak_rss_mib: f64,
    /// Reading the data set's files into tensors.
    pub load_seconds: f64,
    pub phases: Option<PhaseSeconds>,
}

/// Peak resident set size of this process in MiB (`getrusage`).
pub fn peak_rss_mib() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_maxrss as f64 / 1024.0
}

fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Runs the benchmark that `cfg` describes.
pub fn run(cfg: &BenchConfig) -> Result<BenchResult> {
    cfg.model.blocks_per_stage()?;
    cfg.data.dataset.check_classes(cfg.model.num_classes)?;
    if cfg.batch_size < 1 || cfg.iters < 1 || cfg.warmup < 0 {
        return Err(Error::Config("--batch-size and --iters must be at least 1, --warmup at least 0".into()));
    }
    if let Device::Cuda(_) = cfg.device {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    tch::manual_seed(0);
    let t = Instant::now();
    let (images, seconds, phases, load_seconds) = match cfg.mode {
        BenchMode::Train => {
            let train = cfg.data.load_split(Part::Train, None)?;
            let load_seconds = t.elapsed().as_secs_f64();
            let (images, seconds, phases) = bench_train(cfg, &train)?;
            (images, seconds, phases, load_seconds)
        }
        BenchMode::Eval => {
            let test = cfg.data.load_split(Part::Test, None)?;
            let load_seconds = t.elapsed().as_secs_f64();
            let (images, seconds) = bench_eval(cfg, &test)?;
            (images, seconds, None, load_seconds)
        }
    };
    Ok(BenchResult {
        mode: match cfg.mode {
            BenchMode::Train => "train",
            BenchMode::Eval => "eval",
        },
        depth: cfg.model.depth,
        batch_size: cfg.batch_size,
        precision: cfg.compute.precision.to_string(),
        layout: cfg.compute.layout.to_string(),
        device: crate::device::device_name(cfg.device),
        threads: tch::get_num_threads(),
        images,
        seconds,
        images_per_sec: images as f64 / seconds,
        peak_rss_mib: peak_rss_mib(),
        load_seconds,
        phases,
    })
}

fn build_model(cfg: &BenchConfig) -> Result<(VarStore, ResNet)> {
    let vs = VarStore::new(cfg.device);
    let model = ResNet::with_compute(&vs.root(), cfg.model, cfg.compute)?;
    Ok((vs, model))
}

fn bench_train(cfg: &BenchConfig, data: &Split) -> Result<(i64, f64, Option<PhaseSeconds>)> {
    let train = data.to_device(cfg.device);
    let n = train.len();
    let b = cfg.batch_size;
    if b > n {
        return Err(Error::Config(format!("--batch-size {b} is larger than the training set ({n} images)")));
    }
    let normalizer = Normalizer::fit(Normalization::PixelMean, &data.images).to_device(cfg.device);
    let (vs, model) = build_model(cfg)?;
    let mut opt = Sgd::new(&vs, 0.9, 1e-4);
    let schedule = LrSchedule::scaled(0.1, cfg.warmup + cfg.iters, 0);
    let ctx = StepContext {
        model: &model,
        normalizer: &normalizer,
        schedule: &schedule,
        batch_size: b,
        log_grad_norms: false,
    };
    let perm = Tensor::randperm(n, (Kind::Int64, cfg.device));
    let batches_per_epoch = n / b;
    let mut phases = PhaseSeconds::default();
    let mut started = Instant::now();
    let mut last_loss = Tensor::zeros([], (Kind::Float, cfg.device));
    for i in 0..cfg.warmup + cfg.iters {
        if i == cfg.warmup {
            synchronize(cfg.device);
            phases = PhaseSeconds::default();
            started = Instant::now();
        }
        let mut mark = Instant::now();
        let (images, labels) = train.select(&perm.narrow(0, (i % batches_per_epoch) * b, b));
        let lr = schedule.lr_at(i);
        let step = if cfg.profile {
            let mut done = |phase: Phase| {
                synchronize(cfg.device);
                let seconds = mark.elapsed().as_secs_f64();
                mark = Instant::now();
                *match phase {
                    Phase::Data => &mut phases.data,
                    Phase::Forward => &mut phases.forward,
                    Phase::Backward => &mut phases.backward,
                    Phase::Optimizer => &mut phases.optimizer,
                } += seconds;
            };
            train_step_phased(&ctx, &mut opt, (&images, &labels), lr, &mut done)
        } else {
            train_step(&ctx, &mut opt, &images, &labels, lr)
        };
        last_loss = step.loss;
    }
    let loss = last_loss.double_value(&[]);
    let seconds = started.elapsed().as_secs_f64();
    if !loss.is_finite() {
        return Err(Error::Diverged(format!("the benchmark's loss became {loss}")));
    }
    Ok((cfg.iters * b, seconds, cfg.profile.then_some(phases)))
}

fn bench_eval(cfg: &BenchConfig, test: &Split) -> Result<(i64, f64)> {
    let test = test.to_device(cfg.device);
    let normalizer = Normalizer::imagenet().to_device(cfg.device);
    let (_vs, model) = build_model(cfg)?;
    for _ in 0..cfg.warmup {
        evaluate(&model, &test, &normalizer);
    }
    let started = Instant::now();
    for _ in 0..cfg.iters {
        // `evaluate` reads its totals back to the host: the device is synchronised.
        evaluate(&model, &test, &normalizer);
    }
    Ok((cfg.iters * test.len(), started.elapsed().as_secs_f64()))
}
