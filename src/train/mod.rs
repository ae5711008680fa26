//! The one training loop (Section 4.2), shared by the CLI and the examples: SGD with
//! momentum 0.9 and weight decay 1e-4 from lr 0.1, batch 128, the paper's augmentation,
//! and a learning-rate schedule that divides by 10 at 50 % and 75 % of the run. Each run
//! directory gets `config.json`, `metrics.csv` (one flushed row per epoch) and the
//! checkpoints `last.safetensors` and `best.safetensors`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use crate::augment;
use crate::checkpoint;
use crate::data::{Cifar10, RunData, Split};
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::evaluate::evaluate;
use crate::gradflow;
use crate::metrics::{EpochMetrics, MetricsWriter};
use crate::model::{parameter_count, ResNet};
use crate::normalize::Normalizer;
use crate::optim::Sgd;
use crate::progress;
use crate::schedule::LrSchedule;
use crate::signals;

pub mod config;
pub mod resume;

pub use config::{RunFile, TrainConfig};
use resume::Progress;

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub out_dir: PathBuf,
    pub parameters: i64,
    pub epochs: Vec<EpochMetrics>,
    pub wall_seconds: f64,
    pub device: String,
}

impl RunSummary {
    pub fn last(&self) -> &EpochMetrics {
        self.epochs.last().expect("a run has at least one epoch")
    }
    pub fn best_test_err(&self) -> f64 {
        self.epochs.iter().map(|m| m.test_err).fold(f64::INFINITY, f64::min)
    }
}

/// Loads the data from `cfg.data_dir` and trains.
pub fn run(cfg: &TrainConfig) -> Result<RunSummary> {
    cfg.validate()?;
    let t = Instant::now();
    let data = Cifar10::load(&cfg.data_dir)?;
    if !cfg.quiet {
        println!(
            "loaded CIFAR-10 from {} ({} train + {} test images) in {:.2} s",
            cfg.data_dir.display(),
            data.train.len(),
            data.test.len(),
            t.elapsed().as_secs_f64()
        );
    }
    run_with_data(cfg, &data)
}

/// Refuses to train into a directory that already holds a run; creates it otherwise.
fn prepare_out_dir(dir: &Path) -> Result<()> {
    if dir.join("metrics.csv").exists() {
        return Err(Error::Config(format!(
            "{} already holds a run (metrics.csv exists): choose another --out, or delete it to start over",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Trains on `data` (the CLI's data, or a synthetic set in tests and demos) into a new
/// run directory.
pub fn run_with_data(cfg: &TrainConfig, data: &Cifar10) -> Result<RunSummary> {
    cfg.validate()?;
    prepare_out_dir(&cfg.out_dir)?;
    train_loop(cfg, data, None)
}

/// Continues the run in `dir` from its last checkpoint: same settings (from `config.json`),
/// same data order and augmentation, `metrics.csv` continued without duplicate or missing
/// rows. `threads` and `device` override the saved ones (they change where the run
/// computes, not what: a run moves between machines).
pub fn resume(dir: &Path, threads: Option<i32>, device: Option<Device>, quiet: bool) -> Result<RunSummary> {
    let mut cfg = config::config_from_run(dir)?;
    cfg.threads = threads.or(cfg.threads);
    cfg.device = device.unwrap_or(cfg.device);
    cfg.quiet = quiet;
    cfg.handle_signals = !quiet;
    let data = Cifar10::load(&cfg.data_dir)?;
    let last = dir.join("last.safetensors");
    let saved = if last.exists() { Some(checkpoint::read(&last)?) } else { None };
    train_loop(&cfg, &data, saved)
}

fn train_loop(cfg: &TrainConfig, data: &Cifar10, saved: Option<checkpoint::Checkpoint>) -> Result<RunSummary> {
    cfg.validate()?;
    let started = Instant::now();
    if let Some(t) = cfg.threads {
        tch::set_num_threads(t);
    }
    let stop = if cfg.handle_signals { Some(signals::StopFlag::install()?) } else { None };
    tch::manual_seed(cfg.seed);
    let split = RunData::new(data, cfg.limit_train, cfg.limit_test, cfg.val_split)?;
    let dev = cfg.device;
    if let Device::Cuda(_) = dev {
        // Fixed shapes: let cuDNN time its algorithms once and keep the fastest.
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut vs = VarStore::new(dev);
    let mut model = ResNet::new(&vs.root(), cfg.model)?;
    model.set_compute(cfg.compute);
    let parameters = parameter_count(&vs);
    let mut opt = Sgd::new(&vs, cfg.momentum, cfg.weight_decay);
    let (normalizer, mut progress) = match &saved {
        Some(ckpt) => {
            ckpt.load_into(&mut vs)?;
            opt.load_state(ckpt)?;
            let n = ckpt.normalizer().ok_or_else(|| Error::checkpoint(&ckpt.path, "no normalization statistics"))?;
            (n.to_device(dev), resume::progress_of(ckpt)?)
        }
        None => (Normalizer::fit(cfg.normalization, &split.train.images).to_device(dev), Progress::default()),
    };
    let train = split.train.to_device(dev);
    let test = split.test.to_device(dev);
    let val = split.val.as_ref().map(|v| v.to_device(dev));

    let n = train.len();
    let iters_per_epoch = (n + cfg.batch_size - 1) / cfg.batch_size;
    let schedule = cfg.lr_schedule(iters_per_epoch);
    let epochs = (schedule.total_iterations + iters_per_epoch - 1) / iters_per_epoch;

    let csv_path = cfg.out_dir.join("metrics.csv");
    let (mut csv, mut history) = if saved.is_some() {
        MetricsWriter::resume(&csv_path, progress.epoch)?
    } else {
        RunFile::new(cfg, parameters, &schedule, epochs).write(&cfg.out_dir)?;
        (MetricsWriter::create(&csv_path, val.is_some(), cfg.log_grad_norms)?, Vec::new())
    };
    if !cfg.quiet {
        let from = if progress.iteration > 0 {
            format!(", resuming at iteration {}", progress.iteration)
        } else {
            String::new()
        };
        println!(
            "training {} ({parameters} parameters) on {} in {}, {} for {epochs} epochs ({} iterations, batch {}){from} → {}",
            cfg.model.name(),
            device_name(dev),
            cfg.compute.precision,
            cfg.compute.layout,
            schedule.total_iterations,
            cfg.batch_size,
            cfg.out_dir.display()
        );
    }

    let ctx = StepContext {
        model: &model,
        normalizer: &normalizer,
        schedule: &schedule,
        batch_size: cfg.batch_size,
        log_grad_norms: cfg.log_grad_norms,
    };
    let saver = Saver { cfg, vs: &vs, normalizer: &normalizer, schedule: &schedule };
    while progress.epoch < epochs && progress.iteration < schedule.total_iterations {
        let epoch = progress.epoch + 1;
        let bar = progress::epoch_bar(n as u64, epoch, epochs, cfg.quiet);
        let outcome = train_epoch(&ctx, &mut opt, &train, &mut progress, &bar, cfg, stop.as_ref(), &saver)?;
        let train_seconds = progress.train_seconds;
        if let EpochOutcome::Stopped(signal) = outcome {
            bar.finish_and_clear();
            saver.save(&opt, &progress, "last.safetensors")?;
            return Err(Error::Interrupted { signal, iteration: progress.iteration, dir: cfg.out_dir.clone() });
        }
        let eval_started = Instant::now();
        let test_eval = evaluate(&model, &test, &normalizer);
        let val_eval = val.as_ref().map(|v| evaluate(&model, v, &normalizer));
        bar.finish_and_clear();
        let seen = progress.seen.max(1) as f64;
        let row = EpochMetrics {
            epoch,
            iteration: progress.iteration,
            lr: schedule.lr_at(progress.iteration - 1),
            train_loss: progress.loss_sum / seen,
            train_err: 100.0 * progress.wrong as f64 / seen,
            test_loss: test_eval.loss,
            test_err: test_eval.error,
            epoch_seconds: train_seconds + eval_started.elapsed().as_secs_f64(),
            images_per_sec: progress.seen as f64 / train_seconds,
            val: val_eval.as_ref().map(|e| (e.loss, e.error)),
            grad_norms: cfg
                .log_grad_norms
                .then(|| progress.norm_sums.iter().map(|s| s / progress.batch.max(1) as f64).collect()),
        };
        // The row first, then the checkpoint: a kill in between leaves a row that the
        // resumed run drops and writes again (see `MetricsWriter::resume`).
        csv.write(&row)?;
        progress.finish_epoch(epoch);
        // Best by validation error; without a validation split, best is the last epoch.
        let improved = val_eval.as_ref().is_none_or(|e| progress.best_val.is_none_or(|b| e.error < b));
        if improved {
            progress.best_val = val_eval.as_ref().map(|e| e.error);
        }
        saver.save(&opt, &progress, "last.safetensors")?;
        if improved {
            saver.save(&opt, &progress, "best.safetensors")?;
        }
        if !cfg.quiet {
            println!("{}", progress::epoch_line(&row, epochs));
        }
        history.push(row);
    }
    Ok(RunSummary {
        out_dir: cfg.out_dir.clone(),
        parameters,
        epochs: history,
        wall_seconds: started.elapsed().as_secs_f64(),
        device: device_name(dev),
    })
}

/// Writes checkpoints of the run: model, normalisation, momentum buffers and progress.
struct Saver<'a> {
    cfg: &'a TrainConfig,
    vs: &'a VarStore,
    normalizer: &'a Normalizer,
    schedule: &'a LrSchedule,
}

impl Saver<'_> {
    /// `last.safetensors` carries the momentum buffers for `--resume`; `best.safetensors` is
    /// for inference and export, model and normalisation only.
    ///
    /// A model with a non-finite weight or statistic is never written (one device sync per
    /// save): the previous checkpoint stays as it was, and training stops as diverged.
    fn save(&self, opt: &Sgd, progress: &Progress, name: &str) -> Result<()> {
        if !all_finite(self.vs) {
            return Err(Error::Diverged(format!(
                "the model became non-finite at iteration {} (lr {}): training diverged; {name} was not \
                 overwritten and the last checkpoint is intact; lower --lr or add --warmup-iters",
                progress.iteration,
                self.schedule.lr_at((progress.iteration - 1).max(0))
            )));
        }
        let optimizer = if name == "best.safetensors" { Vec::new() } else { opt.state_tensors() };
        checkpoint::save(
            &self.cfg.out_dir.join(name),
            self.vs,
            &self.cfg.model,
            self.normalizer,
            optimizer,
            resume::progress_metadata(progress)?,
        )
    }
}

/// Whether every weight and BN statistic of `vs` is finite, read with one device sync.
fn all_finite(vs: &VarStore) -> bool {
    let flags: Vec<Tensor> = vs.variables().values().map(|t| t.isfinite().all()).collect();
    flags.is_empty() || Tensor::stack(&flags, 0).all().int64_value(&[]) == 1
}

/// What one training step needs besides the optimizer and the data.
pub struct StepContext<'a> {
    pub model: &'a ResNet,
    pub normalizer: &'a Normalizer,
    pub schedule: &'a LrSchedule,
    pub batch_size: i64,
    pub log_grad_norms: bool,
}

/// Where `--log-grad-norms` measures ‖∂L/∂x‖: the network's input and each stage's input.
pub const GRAD_NORM_BOUNDARIES: [&str; 4] = ["input", "layer1.0", "layer2.0", "layer3.0"];

/// What one SGD step returns: the loss (detached), the logits, and with
/// `log_grad_norms` the mean ‖∂L/∂x‖ at [`GRAD_NORM_BOUNDARIES`] (device scalars).
pub struct Step {
    pub loss: Tensor,
    pub logits: Tensor,
    pub grad_norms: Vec<Tensor>,
}

/// The parts of a training step, in order, for [`train_step_phased`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Normalisation and augmentation of the `u8` batch.
    Data,
    /// Forward pass and loss.
    Forward,
    /// Gradients.
    Backward,
    /// The SGD update.
    Optimizer,
}

/// Runs one SGD step on a `u8` batch.
pub fn train_step(ctx: &StepContext, opt: &mut Sgd, images: &Tensor, labels: &Tensor, lr: f64) -> Step {
    train_step_phased(ctx, opt, images, labels, lr, &mut |_| {})
}

/// [`train_step`], calling `done(phase)` as each phase has been issued (a profiler
/// synchronises the device there and reads the clock).
pub fn train_step_phased(
    ctx: &StepContext,
    opt: &mut Sgd,
    images: &Tensor,
    labels: &Tensor,
    lr: f64,
    done: &mut dyn FnMut(Phase),
) -> Step {
    let x = augment::random_crop_flip(&ctx.normalizer.apply(images));
    done(Phase::Data);
    let (logits, boundaries) = if ctx.log_grad_norms {
        gradflow::forward_probed(ctx.model, &x, true, &|n| GRAD_NORM_BOUNDARIES.contains(&n))
    } else {
        (ctx.model.forward_t(&x, true), Vec::new())
    };
    // fp32 whatever the compute precision (the head returns fp32 logits).
    let loss = logits.cross_entropy_for_logits(labels);
    done(Phase::Forward);
    opt.zero_grad();
    loss.backward();
    done(Phase::Backward);
    opt.step(lr);
    done(Phase::Optimizer);
    let grad_norms = boundaries.iter().map(gradflow::mean_grad_norm).collect();
    Step { loss: loss.detach(), logits: logits.detach(), grad_norms }
}

enum EpochOutcome {
    Finished,
    /// Stopped by a signal after a whole step (its number).
    Stopped(i32),
}

/// Seeds for the data order of an epoch and the augmentation of an iteration: pure
/// functions of (seed, epoch) and (seed, iteration), so that a resumed run draws exactly
/// what the uninterrupted one would have.
fn stream_seed(seed: i64, stream: u64, counter: i64) -> i64 {
    // SplitMix64 finaliser over the three inputs.
    let mut z = (seed as u64)
        ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (counter as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}
const SHUFFLE_STREAM: u64 = 1;
const AUGMENT_STREAM: u64 = 2;

/// One pass over `train` in the epoch's random order, from `progress.batch` on. Loss and
/// error accumulate on the device; the host reads them to update the progress bar, check
/// that the loss is finite, and write mid-epoch checkpoints.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    ctx: &StepContext,
    opt: &mut Sgd,
    train: &Split,
    progress: &mut Progress,
    bar: &indicatif::ProgressBar,
    cfg: &TrainConfig,
    stop: Option<&signals::StopFlag>,
    saver: &Saver,
) -> Result<EpochOutcome> {
    let dev = train.images.device();
    let n = train.len();
    tch::manual_seed(stream_seed(cfg.seed, SHUFFLE_STREAM, progress.epoch + 1));
    let perm = Tensor::randperm(n, (Kind::Int64, dev));
    let mut loss_sum = Tensor::from(progress.loss_sum).to_device(dev);
    let mut wrong = Tensor::from(progress.wrong).to_device(dev);
    let mut norm_sums: Vec<Tensor> = progress.norm_sums.iter().map(|&v| Tensor::from(v).to_device(dev)).collect();
    // On the CPU every op has finished when it returns, so reading the loss each step costs
    // nothing. On a GPU a read waits for the queue to drain: there the host reads loss and
    // error only at the epoch's end (the progress bar still advances, without them).
    let read_every_step = cfg.read_every_step.unwrap_or(dev == Device::Cpu);
    let started = Instant::now();
    // Training seconds before this call (a resumed epoch's) plus this call's, set at each read.
    let seconds_before = progress.train_seconds;
    let sync = |p: &mut Progress, loss_sum: &Tensor, wrong: &Tensor, norm_sums: &[Tensor]| {
        p.train_seconds = seconds_before + started.elapsed().as_secs_f64();
        p.loss_sum = loss_sum.double_value(&[]);
        p.wrong = wrong.int64_value(&[]);
        p.norm_sums = norm_sums.iter().map(|t| t.double_value(&[])).collect();
    };
    bar.set_position(progress.seen as u64);
    let mut start = progress.batch * ctx.batch_size;
    while start < n && progress.iteration < ctx.schedule.total_iterations {
        let b = ctx.batch_size.min(n - start);
        let (images, labels) = train.select(&perm.narrow(0, start, b));
        let lr = ctx.schedule.lr_at(progress.iteration);
        tch::manual_seed(stream_seed(cfg.seed, AUGMENT_STREAM, progress.iteration));
        let step = train_step(ctx, opt, &images, &labels, lr);
        loss_sum += step.loss.to_kind(Kind::Double) * b as f64;
        wrong += step.logits.argmax(-1, false).ne_tensor(&labels).sum(Kind::Int64);
        if norm_sums.is_empty() {
            norm_sums = step.grad_norms.iter().map(|g| g.to_kind(Kind::Double)).collect();
        } else {
            norm_sums.iter_mut().zip(&step.grad_norms).for_each(|(s, g)| *s += g);
        }
        progress.batch += 1;
        progress.seen += b;
        progress.iteration += 1;
        start += b;
        crate::faults::hold_point("iteration", progress.iteration, stop);
        let epoch_ends = start >= n || progress.iteration >= ctx.schedule.total_iterations;
        if !read_every_step && !epoch_ends {
            bar.set_position(progress.seen as u64);
        } else {
            // The last loss, and (on a GPU, read only at the end) the epoch's sum, which
            // holds every loss since the previous read.
            let last = step.loss.double_value(&[]);
            let l = if last.is_finite() { loss_sum.double_value(&[]) } else { last };
            if !l.is_finite() {
                return Err(Error::Diverged(format!(
                    "the loss became {l} at iteration {} (lr {lr}): training diverged; the last checkpoint is intact; \
                     lower --lr or add --warmup-iters",
                    progress.iteration
                )));
            }
            bar.set_position(progress.seen as u64);
            let err = 100.0 * wrong.int64_value(&[]) as f64 / progress.seen as f64;
            let ips = progress.seen as f64 / (progress.train_seconds + started.elapsed().as_secs_f64());
            bar.set_message(format!("loss {last:.3}  err {err:.2}%  {ips:.0} img/s  lr {lr}"));
        }
        let signal = stop.and_then(|s| s.raised());
        let periodic = cfg.save_every > 0 && progress.iteration % cfg.save_every == 0 && start < n;
        if signal.is_some() || periodic {
            sync(progress, &loss_sum, &wrong, &norm_sums);
            if let Some(sig) = signal {
                return Ok(EpochOutcome::Stopped(sig));
            }
            saver.save(opt, progress, "last.safetensors")?;
        }
    }
    sync(progress, &loss_sum, &wrong, &norm_sums);
    Ok(EpochOutcome::Finished)
}
