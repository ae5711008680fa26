//! `resnet-cifar bench`: images per second of the real training step (batch gather,
//! normalisation, augmentation, forward, loss, backward, SGD update; the same
//! [`train_step`](crate::train::train_step) that `train` runs) or of evaluation, after a
//! warm-up, with the process's peak resident memory. `bench/speed.py` runs it side by
//! side with the PyTorch eager baseline (`bench/pytorch_train.py`) and reports ratios.

use std::time::Instant;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::augment::Augmenter;
use crate::data::{DataSource, Part, Split};
use crate::error::{BadSetting, Error, Result};
use crate::evaluate::evaluate;
use crate::model::{Compute, Layout, ResNet, ResNetConfig};
use crate::native::OpCounter;
use crate::normalize::{Normalization, Normalizer};
use crate::optim::Sgd;
use crate::schedule::LrSchedule;
use crate::train::graph::{decide, CudaGraphs, Stepper};
use crate::train::resume::Progress;
use crate::train::{train_step_phased, DeviceSums, Phase, Step, StepContext};

crate::text::value_enum! {
    /// What to time.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum BenchMode: "benchmark mode" {
        /// Training steps on the training set.
        Train => "train",
        /// Inference over the test set in batches of 500.
        Eval => "eval",
    }
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
    /// Replay the step from a CUDA graph (`--cuda-graphs`; `--profile` steps eagerly).
    pub cuda_graphs: CudaGraphs,
    /// Count the top-level ATen calls of each timed step, by part (`--count-ops`); with
    /// `list_ops`, also by operator name.
    pub count_ops: bool,
    pub list_ops: bool,
}

/// Top-level ATen calls per training step (those made while no other ATen op runs), by
/// part. On CUDA each is at least one kernel launch or allocator call on the host.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OpCounts {
    pub ops_per_step: f64,
    /// Forward pass, loss and backward pass.
    pub forward_backward: f64,
    /// The SGD update and clearing the gradients.
    pub optimizer: f64,
    /// Everything else: gathering the batch, normalisation and augmentation
    /// (`augmentation`, a part of this), the epoch's device-side loss and error sums.
    pub other: f64,
    pub augmentation: f64,
    /// With `--list-ops`: calls per step by part and operator name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_name: Vec<OpName>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OpName {
    pub part: &'static str,
    pub op: String,
    pub per_step: f64,
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
    /// Whether the timed steps were replayed from a CUDA graph.
    pub cuda_graphs: bool,
    /// With `--count-ops`.
    pub ops: Option<OpCounts>,
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
    crate::memory::check_fits(&cfg.model)?;
    cfg.data.dataset.check_classes(cfg.model.num_classes)?;
    let bad = |path, value: i64, want: &str| {
        Err(Error::Setting(BadSetting { path, value: value.to_string(), want: want.into() }))
    };
    if cfg.batch_size < 1 {
        return bad("batch_size", cfg.batch_size, "must be at least 1");
    }
    if cfg.iters < 1 {
        return bad("iters", cfg.iters, "must be at least 1");
    }
    if cfg.warmup < 0 {
        return bad("warmup", cfg.warmup, "must be at least 0");
    }
    if let Device::Cuda(_) = cfg.device {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    tch::manual_seed(0);
    let t = Instant::now();
    if cfg.count_ops && cfg.mode != BenchMode::Train {
        let want = "counting ATen calls needs the training step: use train".to_string();
        return Err(Error::Setting(BadSetting { path: "mode", value: cfg.mode.to_string(), want }));
    }
    let (images, seconds, phases, ops, load_seconds) = match cfg.mode {
        BenchMode::Train => {
            let train = cfg.data.load_split(Part::Train, None)?;
            let load_seconds = t.elapsed().as_secs_f64();
            let (images, seconds, phases, ops) = bench_train(cfg, &train)?;
            (images, seconds, phases, ops, load_seconds)
        }
        BenchMode::Eval => {
            let test = cfg.data.load_split(Part::Test, None)?;
            let load_seconds = t.elapsed().as_secs_f64();
            let (images, seconds) = bench_eval(cfg, &test)?;
            (images, seconds, None, None, load_seconds)
        }
    };
    Ok(BenchResult {
        mode: match cfg.mode {
            BenchMode::Train => "train",
            BenchMode::Eval => "eval",
        },
        depth: cfg.model.depth,
        // What ran: evaluation goes in batches of EVAL_BATCH whatever --batch-size says.
        batch_size: match cfg.mode {
            BenchMode::Train => cfg.batch_size,
            BenchMode::Eval => crate::evaluate::EVAL_BATCH,
        },
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
        cuda_graphs: cfg.mode == BenchMode::Train && decide(cfg.cuda_graphs, cfg.device, false)?.is_none(),
        ops,
    })
}

fn build_model(cfg: &BenchConfig) -> Result<(VarStore, ResNet)> {
    let vs = VarStore::new(cfg.device);
    let model = ResNet::with_compute(&vs.root(), cfg.model, cfg.compute)?;
    Ok((vs, model))
}

/// What [`bench_train`] measured: images, seconds, and with `--profile` and `--count-ops`
/// the phases' seconds and the step's ATen calls.
type TrainMeasure = (i64, f64, Option<PhaseSeconds>, Option<OpCounts>);

/// Timed training steps as `train` runs them on a GPU: the batch gathered from the
/// device-resident set, the step, and the epoch's device-side sums (no host read per step).
fn bench_train(cfg: &BenchConfig, data: &Split) -> Result<TrainMeasure> {
    let train = data.to_device(cfg.device);
    let n = train.len();
    let b = cfg.batch_size;
    if b > n {
        let want = format!("larger than the training set ({n} images)");
        return Err(Error::Setting(BadSetting { path: "batch_size", value: b.to_string(), want }));
    }
    let normalizer = Normalizer::fit(Normalization::PixelMean, &data.images).to_device(cfg.device);
    let (vs, model) = build_model(cfg)?;
    let mut opt = Sgd::new(&vs, 0.9, 1e-4);
    let mut stepper = Stepper::new(cfg.cuda_graphs, cfg.device, false, true)?;
    // The paper's schedule: its first 32k iterations hold lr 0.1 (no device fill per step).
    let schedule = LrSchedule::paper(0.1, 0);
    let augment = Augmenter::new(cfg.compute.layout == Layout::ChannelsLast);
    let ctx = StepContext {
        model: &model,
        augment: &augment,
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
    let mut sums = DeviceSums::from(&Progress::default(), cfg.device);
    let mut counter = None;
    for i in 0..cfg.warmup + cfg.iters {
        if i == cfg.warmup {
            synchronize(cfg.device);
            phases = PhaseSeconds::default();
            started = Instant::now();
            if cfg.count_ops {
                counter = Some(OpCounter::start(cfg.list_ops)?);
            }
        }
        let index = perm.narrow(0, (i % batches_per_epoch) * b, b);
        let lr = schedule.lr_at(i);
        if stepper.graphed() || !(cfg.profile || counter.is_some()) {
            // A replay has no phases: its few ATen calls (index copy, loss copy) count as other.
            let (step, labels) = stepper.step(&ctx, &mut opt, (&train, &index), lr)?;
            sums.add(&step, &labels, b);
            last_loss = step.loss;
            continue;
        }
        let measure = match &counter {
            Some(c) => Measure::Count(c),
            None => Measure::Time(&mut phases),
        };
        let (step, labels) = phased_step(&ctx, &mut opt, (&train, &index), lr, measure);
        sums.add(&step, &labels, b);
        last_loss = step.loss;
    }
    let ops = counter.map(|c| op_counts(&c, cfg.iters));
    let loss = last_loss.double_value(&[]);
    let seconds = started.elapsed().as_secs_f64();
    if !loss.is_finite() {
        return Err(Error::NotFinite { what: format!("the benchmark's loss became {loss}") });
    }
    Ok((cfg.iters * b, seconds, cfg.profile.then_some(phases), ops))
}

/// How [`phased_step`] measures the phases of a step.
enum Measure<'m> {
    /// ATen calls per phase.
    Count(&'m OpCounter),
    /// Seconds per phase, with a device sync at each boundary (`--profile`).
    Time(&'m mut PhaseSeconds),
}

/// One eager step on the batch `index` of `train`, its phases measured as `measure` says.
fn phased_step(
    ctx: &StepContext,
    opt: &mut Sgd,
    (train, index): (&Split, &Tensor),
    lr: f64,
    measure: Measure,
) -> (Step, Tensor) {
    let mut mark = Instant::now();
    let (images, labels) = train.select(index);
    let step = match measure {
        Measure::Count(c) => {
            c.phase(DATA);
            let mut done = |phase: Phase| match phase {
                Phase::Data => c.phase(FORWARD_BACKWARD),
                Phase::Forward => {}
                Phase::Backward => c.phase(OPTIMIZER),
                Phase::Optimizer => c.phase(OTHER),
            };
            train_step_phased(ctx, opt, (&images, &labels), lr, &mut done)
        }
        Measure::Time(phases) => {
            let device = images.device();
            let mut done = |phase: Phase| {
                synchronize(device);
                let seconds = mark.elapsed().as_secs_f64();
                mark = Instant::now();
                *match phase {
                    Phase::Data => &mut phases.data,
                    Phase::Forward => &mut phases.forward,
                    Phase::Backward => &mut phases.backward,
                    Phase::Optimizer => &mut phases.optimizer,
                } += seconds;
            };
            train_step_phased(ctx, opt, (&images, &labels), lr, &mut done)
        }
    };
    (step, labels)
}

/// `--count-ops` as a table (`--list-ops`: with the calls by operator name).
pub fn ops_table(r: &BenchResult, ops: &OpCounts) -> String {
    let mut out = format!(
        "top-level ATen calls per training step: ResNet-{} batch {} {} {} on {}\n",
        r.depth, r.batch_size, r.precision, r.layout, r.device
    );
    for (part, n) in [
        ("forward + backward", ops.forward_backward),
        ("optimizer", ops.optimizer),
        ("other", ops.other),
        ("  of which augmentation", ops.augmentation),
        ("total", ops.ops_per_step),
    ] {
        out += &format!("  {part:<24} {n:>8.1}\n");
    }
    for o in &ops.by_name {
        out += &format!("    {:<18} {:<40} {:>6.1}\n", o.part, o.op, o.per_step);
    }
    out
}

/// The parts of a step that the counter keeps apart (its phases).
const OTHER: usize = 0;
const FORWARD_BACKWARD: usize = 1;
const OPTIMIZER: usize = 2;
const DATA: usize = 3;

/// Calls per step from `steps` counted steps.
fn op_counts(c: &OpCounter, steps: i64) -> OpCounts {
    let per = |n: u64| n as f64 / steps as f64;
    let [other, fb, opt, data] = c.read();
    let part = |p: usize| match p {
        FORWARD_BACKWARD => "forward_backward",
        OPTIMIZER => "optimizer",
        DATA => "augmentation",
        _ => "other",
    };
    let mut by_name: Vec<OpName> =
        c.names().into_iter().map(|(p, op, n)| OpName { part: part(p), op, per_step: per(n) }).collect();
    by_name.sort_by(|a, b| (a.part, -a.per_step).partial_cmp(&(b.part, -b.per_step)).expect("finite counts"));
    OpCounts {
        ops_per_step: per(other + fb + opt + data),
        forward_backward: per(fb),
        optimizer: per(opt),
        other: per(other + data),
        augmentation: per(data),
        by_name,
    }
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
