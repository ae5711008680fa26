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
use crate::data::{Cifar, RunData, Split};
use crate::device::device_name;
use crate::error::{Error, Result};
use crate::evaluate::evaluate;
use crate::gradflow;
use crate::metrics::{EpochMetrics, MetricsWriter};
use crate::model::{parameter_count, Layout, ResNet};
use crate::normalize::Normalizer;
use crate::optim::Sgd;
use crate::progress;
use crate::schedule::LrSchedule;
use crate::signals;

pub mod claim;
pub mod config;
pub mod events;
pub mod graph;
pub mod resume;

pub use config::{RunFile, TrainConfig};
use events::RunEvents;
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

    /// The line that ends a run: epochs, time, device, final and best errors, where it is.
    pub fn describe(&self) -> String {
        let last = self.last();
        format!(
            "done: {} epochs in {:.1} min on {}; final train error {:.2}%, test error {:.2}% (best {:.2}%); run in {}",
            self.epochs.len(),
            self.wall_seconds / 60.0,
            self.device,
            last.train_err,
            last.test_err,
            self.best_test_err(),
            self.out_dir.display()
        )
    }
}

/// Loads the data from `cfg.data.dir` and trains.
pub fn run(cfg: &TrainConfig) -> Result<RunSummary> {
    cfg.validate()?;
    let t = Instant::now();
    let data = cfg.data_source().load()?;
    if !cfg.machine.quiet {
        println!(
            "loaded {} from {} ({} train + {} test images) in {:.2} s",
            cfg.data.dataset,
            cfg.data.dir.display(),
            data.train.len(),
            data.test.len(),
            t.elapsed().as_secs_f64()
        );
    }
    run_with_data(cfg, &data)
}

/// Trains on `data` (the CLI's data, or a synthetic set in tests and demos) into a new
/// run directory.
pub fn run_with_data(cfg: &TrainConfig, data: &Cifar) -> Result<RunSummary> {
    cfg.validate()?;
    cfg.validate_with(&RunData::new(data, cfg.data.limit_train, cfg.data.limit_test, cfg.data.val_split)?)?;
    let _lock = claim::claim_new(&cfg.output.dir)?;
    train_loop(cfg, data, None)
}

/// Where a resumed run computes and finds its data: each `None` keeps the saved setting.
/// These change where the run computes and reads, not what: a run moves between machines.
#[derive(Debug, Clone, Default)]
pub struct ResumeOverrides {
    pub threads: Option<i32>,
    pub device: Option<Device>,
    pub data_dir: Option<std::path::PathBuf>,
    pub cuda_graphs: Option<graph::CudaGraphs>,
    pub deterministic: bool,
}

/// Continues the run in `dir` from its last checkpoint: same settings (from `config.json`,
/// every field checked), same data order and augmentation, `metrics.csv` continued without
/// duplicate or missing rows. `overrides` may move it (threads, device, data directory).
/// Without a `last.safetensors` there is nothing to continue from: an error, never a
/// silent restart. Everything is checked against everything else (config, checkpoint,
/// training state, metrics.csv) before anything is written.
pub fn resume(dir: &Path, overrides: ResumeOverrides, quiet: bool) -> Result<RunSummary> {
    let file = config::RunFile::read(dir)?;
    let mut cfg = file.config(dir)?;
    let _lock = claim::lock(dir)?;
    let last = dir.join("last.safetensors");
    if !last.exists() {
        return Err(Error::NoCheckpoint { dir: dir.to_path_buf() });
    }
    cfg.machine.threads = overrides.threads.or(cfg.machine.threads);
    cfg.machine.device = overrides.device.unwrap_or(cfg.machine.device);
    cfg.data.dir = overrides.data_dir.unwrap_or(cfg.data.dir);
    cfg.machine.cuda_graphs = overrides.cuda_graphs.unwrap_or(cfg.machine.cuda_graphs);
    cfg.machine.deterministic = overrides.deterministic;
    cfg.machine.quiet = quiet;
    cfg.machine.handle_signals = !quiet;
    let saved = checkpoint::read(&last)?;
    let data = cfg.data_source().load()?;
    train_loop(&cfg, &data, Some((saved, file)))
}

fn train_loop(
    cfg: &TrainConfig,
    data: &Cifar,
    saved: Option<(checkpoint::Checkpoint, config::RunFile)>,
) -> Result<RunSummary> {
    let started = Instant::now();
    let mut t = Trainer::new(cfg, data, saved.as_ref().map(|(c, _)| c))?;
    let csv_path = cfg.output.dir.join("metrics.csv");
    let (mut csv, mut history) = if let Some((_, file)) = &saved {
        file.check_schedule(&t.schedule, &cfg.output.dir.join("config.json"))?;
        if cfg.output.tensorboard {
            let iteration = t.progress.iteration;
            t.events =
                Some(RunEvents::resume(&cfg.output.dir, iteration, cfg.output.log_every, cfg.output.log_histograms)?);
        }
        let layout = crate::metrics::Layout { with_val: t.val.is_some(), with_grad_norms: cfg.output.log_grad_norms };
        MetricsWriter::resume(&csv_path, t.progress.epoch, layout)?
    } else {
        let run_file = RunFile::new(cfg, t.parameters, &t.schedule, t.epochs);
        run_file.write(&cfg.output.dir)?;
        if cfg.output.tensorboard {
            let json = serde_json::to_string_pretty(&run_file).expect("a run file serialises");
            t.events =
                Some(RunEvents::create(&cfg.output.dir, cfg.output.log_every, cfg.output.log_histograms, &json)?);
        }
        (MetricsWriter::create(&csv_path, t.val.is_some(), cfg.output.log_grad_norms)?, Vec::new())
    };
    t.announce();
    while t.progress.epoch < t.epochs && t.progress.iteration < t.schedule.total_iterations {
        let bar = progress::epoch_bar(t.train.len() as u64, t.progress.epoch + 1, t.epochs, cfg.machine.quiet);
        let outcome = t.epoch(&bar);
        bar.finish_and_clear();
        let row = match outcome? {
            EpochOutcome::Stopped(signal) => {
                t.checkpoint(CheckpointKind::Last)?;
                return Err(Error::Interrupted {
                    signal,
                    iteration: t.progress.iteration,
                    dir: cfg.output.dir.clone(),
                });
            }
            EpochOutcome::Finished(row) => row,
        };
        // The row first, then the checkpoint: a kill in between leaves a row that the
        // resumed run drops and writes again (see `MetricsWriter::resume`).
        csv.write(&row)?;
        if let Some(events) = t.events.as_mut() {
            events.epoch(&row, &t.vs)?;
        }
        let improved = t.close_epoch(&row);
        t.checkpoint(CheckpointKind::Last)?;
        if improved {
            t.checkpoint(CheckpointKind::Best)?;
        }
        if !cfg.machine.quiet {
            println!("{}", progress::epoch_line(&row, t.epochs));
        }
        history.push(row);
    }
    Ok(RunSummary {
        out_dir: cfg.output.dir.clone(),
        parameters: t.parameters,
        epochs: history,
        wall_seconds: started.elapsed().as_secs_f64(),
        device: device_name(cfg.machine.device),
    })
}

/// The two checkpoints of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// `last.safetensors`: the model, its normalisation, the momentum buffers and the
    /// training state, written every epoch (and with `--save-every`), for `--resume`.
    Last,
    /// `best.safetensors`: model and normalisation only (best validation error, or the last
    /// epoch without a validation split), for inference and export.
    Best,
}

impl CheckpointKind {
    pub fn file_name(self) -> &'static str {
        match self {
            CheckpointKind::Last => "last.safetensors",
            CheckpointKind::Best => "best.safetensors",
        }
    }
}

/// A run in progress: the model with its optimizer and schedule, the data on the device,
/// where the run stands, and its checkpoints.
struct Trainer<'a> {
    cfg: &'a TrainConfig,
    vs: VarStore,
    model: ResNet,
    opt: Sgd,
    schedule: LrSchedule,
    normalizer: Normalizer,
    /// The class names, recorded in every checkpoint with the data set.
    classes: Vec<String>,
    train: Split,
    test: Split,
    val: Option<Split>,
    progress: Progress,
    /// Runs the steps, from a CUDA graph where it can.
    stepper: graph::Stepper,
    augment: augment::Augmenter,
    stop: Option<signals::StopFlag>,
    /// The TensorBoard event file, unless `--no-tensorboard`.
    events: Option<RunEvents>,
    /// Epochs the schedule covers.
    epochs: i64,
    parameters: i64,
}

impl<'a> Trainer<'a> {
    /// A new run of `cfg` on `data`, or the run of `saved` continued where it stopped.
    fn new(cfg: &'a TrainConfig, data: &Cifar, saved: Option<&checkpoint::Checkpoint>) -> Result<Self> {
        cfg.validate()?;
        if data.dataset != cfg.data.dataset {
            return Err(Error::Config(format!(
                "the data is {}, but the run is set up for {}",
                data.dataset, cfg.data.dataset
            )));
        }
        let stop = prepare_machine(cfg)?;
        tch::manual_seed(cfg.seed);
        let split = RunData::new(data, cfg.data.limit_train, cfg.data.limit_test, cfg.data.val_split)?;
        cfg.validate_with(&split)?;
        let dev = cfg.machine.device;
        let stepper = graph::Stepper::new(cfg.machine.cuda_graphs, dev, cfg.output.log_grad_norms, cfg.machine.quiet)?;
        if let Some(ckpt) = saved {
            ckpt.check_fits(&cfg.model)?;
        }
        let mut vs = VarStore::new(dev);
        let model = ResNet::with_compute(&vs.root(), cfg.model, cfg.compute)?;
        let parameters = parameter_count(&vs);
        let mut opt = Sgd::new(&vs, cfg.schedule.momentum, cfg.schedule.weight_decay);
        let (normalizer, progress) = match saved {
            Some(ckpt) => restore(ckpt, cfg, &mut vs, &mut opt)?,
            None => (Normalizer::fit(cfg.data.normalization, &split.train.images).to_device(dev), Progress::default()),
        };
        let train = split.train.to_device(dev);
        let iters_per_epoch = (train.len() + cfg.schedule.batch_size - 1) / cfg.schedule.batch_size;
        let schedule = cfg.lr_schedule(iters_per_epoch);
        let epochs = (schedule.total_iterations + iters_per_epoch - 1) / iters_per_epoch;
        if let Some(ckpt) = saved {
            let shape = resume::RunShape {
                iters_per_epoch,
                total_iterations: schedule.total_iterations,
                epochs,
                batch_size: cfg.schedule.batch_size,
                train_images: train.len(),
                grad_norms: cfg.output.log_grad_norms,
            };
            resume::check_progress(ckpt, &progress, &shape)?;
        }
        Ok(Trainer {
            cfg,
            vs,
            model,
            opt,
            schedule,
            normalizer,
            classes: data.classes.clone(),
            train,
            test: split.test.to_device(dev),
            val: split.val.as_ref().map(|v| v.to_device(dev)),
            progress,
            stepper,
            augment: augment::Augmenter::new(cfg.compute.layout == Layout::ChannelsLast),
            stop,
            events: None,
            epochs,
            parameters,
        })
    }

    /// The line that opens a run.
    fn announce(&self) {
        if self.cfg.machine.quiet {
            return;
        }
        let cfg = self.cfg;
        let from = match self.progress.iteration {
            0 => String::new(),
            i => format!(", resuming at iteration {i}"),
        };
        println!(
            "training {} ({} parameters) on {} in {}, {} for {} epochs ({} iterations, batch {}){from} → {}",
            cfg.model.name(),
            self.parameters,
            device_name(cfg.machine.device),
            cfg.compute.precision,
            cfg.compute.layout,
            self.epochs,
            self.schedule.total_iterations,
            cfg.schedule.batch_size,
            cfg.output.dir.display()
        );
    }

    /// One SGD step on the training images that `index` selects, at the schedule's rate,
    /// with the iteration's augmentation: the step and the batch's labels.
    fn step(&mut self, index: &Tensor) -> Result<(Step, Tensor)> {
        let ctx = StepContext {
            model: &self.model,
            augment: &self.augment,
            normalizer: &self.normalizer,
            schedule: &self.schedule,
            batch_size: self.cfg.schedule.batch_size,
            log_grad_norms: self.cfg.output.log_grad_norms,
        };
        let lr = self.schedule.lr_at(self.progress.iteration);
        tch::manual_seed(stream_seed(self.cfg.seed, AUGMENT_STREAM, self.progress.iteration));
        self.stepper.step(&ctx, &mut self.opt, (&self.train, index), lr)
    }

    /// One pass over the training set in the epoch's random order, from `progress.batch`
    /// on, then the evaluation: the epoch's row. Loss and error accumulate on the device;
    /// the host reads them for the progress bar (on the CPU each step), at mid-epoch
    /// checkpoints, and at the end, and stops on a non-finite loss.
    fn epoch(&mut self, bar: &indicatif::ProgressBar) -> Result<EpochOutcome> {
        let epoch = self.progress.epoch + 1;
        let dev = self.train.images.device();
        let n = self.train.len();
        let batch_size = self.cfg.schedule.batch_size;
        tch::manual_seed(stream_seed(self.cfg.seed, SHUFFLE_STREAM, epoch));
        let perm = Tensor::randperm(n, (Kind::Int64, dev));
        let mut sums = DeviceSums::from(&self.progress, dev);
        let read_every_step = self.cfg.machine.read_every_step.unwrap_or(dev == Device::Cpu);
        let started = Instant::now();
        let seconds_before = self.progress.train_seconds;
        bar.set_position(self.progress.seen as u64);
        let mut start = self.progress.batch * batch_size;
        while start < n && self.progress.iteration < self.schedule.total_iterations {
            let b = batch_size.min(n - start);
            let lr = self.schedule.lr_at(self.progress.iteration);
            let (step, labels) = self.step(&perm.narrow(0, start, b))?;
            sums.add(&step, &labels, b);
            let p = &mut self.progress;
            p.batch += 1;
            p.seen += b;
            p.iteration += 1;
            if let Some(events) = self.events.as_mut() {
                events.step(p.iteration, lr, &step.loss);
            }
            start += b;
            crate::faults::hold_point("iteration", p.iteration, self.stop.as_ref());
            let epoch_ends = start >= n || p.iteration >= self.schedule.total_iterations;
            if read_every_step || epoch_ends {
                // The last loss, and (on a GPU, read only at the end) the epoch's sum, which
                // holds every loss since the previous read.
                let last = step.loss.double_value(&[]);
                let l = if last.is_finite() { sums.loss.double_value(&[]) } else { last };
                if !l.is_finite() {
                    return Err(Error::Diverged { iteration: p.iteration, lr, what: format!("the loss became {l}") });
                }
                let err = 100.0 * sums.wrong.int64_value(&[]) as f64 / p.seen as f64;
                let ips = p.seen as f64 / (seconds_before + started.elapsed().as_secs_f64());
                bar.set_message(format!("loss {last:.3}  err {err:.2}%  {ips:.0} img/s  lr {lr}"));
            }
            bar.set_position(p.seen as u64);
            let signal = self.stop.as_ref().and_then(|s| s.raised());
            let periodic = self.cfg.output.save_every > 0 && p.iteration % self.cfg.output.save_every == 0 && start < n;
            if signal.is_some() || periodic {
                sums.read_into(p, seconds_before + started.elapsed().as_secs_f64());
                if let Some(events) = self.events.as_mut() {
                    events.write_steps()?;
                }
                if let Some(sig) = signal {
                    return Ok(EpochOutcome::Stopped(sig));
                }
                self.checkpoint(CheckpointKind::Last)?;
            }
        }
        sums.read_into(&mut self.progress, seconds_before + started.elapsed().as_secs_f64());
        Ok(EpochOutcome::Finished(self.evaluate(epoch)))
    }

    /// The row of epoch `epoch`: its training sums, and the test (and validation) set evaluated.
    fn evaluate(&self, epoch: i64) -> EpochMetrics {
        let eval_started = Instant::now();
        let test = evaluate(&self.model, &self.test, &self.normalizer);
        let val = self.val.as_ref().map(|v| evaluate(&self.model, v, &self.normalizer));
        let p = &self.progress;
        let seen = p.seen.max(1) as f64;
        EpochMetrics {
            epoch,
            iteration: p.iteration,
            lr: self.schedule.lr_at(p.iteration - 1),
            train_loss: p.loss_sum / seen,
            train_err: 100.0 * p.wrong as f64 / seen,
            test_loss: test.loss,
            test_err: test.error,
            epoch_seconds: p.train_seconds + eval_started.elapsed().as_secs_f64(),
            images_per_sec: p.seen as f64 / p.train_seconds,
            val: val.as_ref().map(|e| (e.loss, e.error)),
            grad_norms: self
                .cfg
                .output
                .log_grad_norms
                .then(|| p.norm_sums.iter().map(|s| s / p.batch.max(1) as f64).collect()),
        }
    }

    /// Closes the epoch of `row`; returns whether it is the best so far (by validation
    /// error; without a validation split, every epoch is).
    fn close_epoch(&mut self, row: &EpochMetrics) -> bool {
        self.progress.finish_epoch(row.epoch);
        let val_err = row.val.map(|(_, e)| e);
        let improved = val_err.is_none_or(|e| self.progress.best_val.is_none_or(|b| e < b));
        if improved {
            self.progress.best_val = val_err;
        }
        improved
    }

    /// Writes the checkpoint of `kind`. A model with a non-finite weight or statistic is
    /// never written (one device sync per save): the previous checkpoint stays as it was,
    /// and training stops as diverged.
    fn checkpoint(&self, kind: CheckpointKind) -> Result<()> {
        let name = kind.file_name();
        let p = &self.progress;
        let lr = self.schedule.lr_at((p.iteration - 1).max(0));
        if !all_finite(&self.vs) {
            return Err(Error::Diverged {
                iteration: p.iteration,
                lr,
                what: format!("the model became non-finite ({name} was not overwritten)"),
            });
        }
        let mut metadata = resume::progress_metadata(p, lr)?;
        metadata.extend(checkpoint::dataset_metadata(self.cfg.data.dataset, &self.classes));
        let tensors = match kind {
            CheckpointKind::Last => self.opt.state_tensors(),
            CheckpointKind::Best => Vec::new(),
        };
        let extra = checkpoint::Extra { tensors, metadata };
        checkpoint::save(&self.cfg.output.dir.join(name), &self.vs, &self.cfg.model, &self.normalizer, extra)
    }
}

/// A resumed checkpoint must record what the run's `config.json` says (`what`).
/// Sets up the process for `cfg`'s machine: libtorch's threads, cuDNN's algorithm choice,
/// and (when asked for) the signal handler that stops at a checkpoint.
fn prepare_machine(cfg: &TrainConfig) -> Result<Option<signals::StopFlag>> {
    if let Some(t) = cfg.machine.threads {
        tch::set_num_threads(t);
    }
    if let Device::Cuda(_) = cfg.machine.device {
        // Fixed shapes: let cuDNN time its algorithms once and keep the fastest, unless
        // the run must be repeatable to the bit.
        crate::native::set_cudnn_deterministic(cfg.machine.deterministic);
    }
    Ok(if cfg.machine.handle_signals { Some(signals::StopFlag::install()?) } else { None })
}

/// Loads the weights and momentum of the run `ckpt` continues into `vs` and `opt`, and
/// returns its normalization (on the run's device) and progress, each checked against `cfg`.
fn restore(
    ckpt: &checkpoint::Checkpoint,
    cfg: &TrainConfig,
    vs: &mut VarStore,
    opt: &mut Sgd,
) -> Result<(Normalizer, Progress)> {
    ckpt.load_into(vs)?;
    opt.load_state(ckpt)?;
    let n = ckpt.normalizer()?.ok_or_else(|| Error::checkpoint(&ckpt.path, "no normalization statistics"))?;
    check_agrees(ckpt, "normalization", &n.kind, &cfg.data.normalization)?;
    if let Some(d) = ckpt.dataset()? {
        check_agrees(ckpt, "dataset", &d, &cfg.data.dataset)?;
    }
    Ok((n.to_device(cfg.machine.device), resume::progress_of(ckpt)?))
}

fn check_agrees<T: PartialEq + std::fmt::Display>(
    ckpt: &checkpoint::Checkpoint,
    what: &str,
    recorded: &T,
    config: &T,
) -> Result<()> {
    if recorded == config {
        return Ok(());
    }
    Err(Error::checkpoint(
        &ckpt.path,
        format!(
            "records {what} {recorded}, but config.json field `data.{what}` says {config}: the checkpoint is not \
             this run's; it cannot be resumed"
        ),
    ))
}

/// An epoch's running sums, kept on the device: loss × images, wrong predictions, and
/// with `--log-grad-norms` the gradient norms.
pub(crate) struct DeviceSums {
    loss: Tensor,
    wrong: Tensor,
    norms: Vec<Tensor>,
}

impl DeviceSums {
    /// The sums `p` holds (a resumed epoch's), on `dev`.
    pub(crate) fn from(p: &Progress, dev: Device) -> Self {
        DeviceSums {
            loss: Tensor::from(p.loss_sum).to_device(dev),
            wrong: Tensor::from(p.wrong).to_device(dev),
            norms: p.norm_sums.iter().map(|&v| Tensor::from(v).to_device(dev)).collect(),
        }
    }

    pub(crate) fn add(&mut self, step: &Step, labels: &Tensor, images: i64) {
        let _no_grad = tch::no_grad_guard();
        // loss × images in fp32 (exact for a power-of-two batch), accumulated in fp64.
        self.loss += &step.loss * images as f64;
        self.wrong += step.logits.argmax(-1, false).ne_tensor(labels).sum(Kind::Int64);
        if self.norms.is_empty() {
            self.norms = step.grad_norms.iter().map(|g| g.to_kind(Kind::Double)).collect();
        } else {
            self.norms.iter_mut().zip(&step.grad_norms).for_each(|(s, g)| *s += g);
        }
    }

    /// Reads the sums into `p` (one device sync), with the epoch's training seconds so far.
    fn read_into(&self, p: &mut Progress, train_seconds: f64) {
        p.train_seconds = train_seconds;
        p.loss_sum = self.loss.double_value(&[]);
        p.wrong = self.wrong.int64_value(&[]);
        p.norm_sums = self.norms.iter().map(|t| t.double_value(&[])).collect();
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
    /// The pad-crop-flip augmentation (keeps its index grids between steps).
    pub augment: &'a augment::Augmenter,
    pub normalizer: &'a Normalizer,
    pub schedule: &'a LrSchedule,
    pub batch_size: i64,
    pub log_grad_norms: bool,
}

/// Where `--log-grad-norms` measures ‖∂L/∂x‖: the network's input and each stage's input.
pub const GRAD_NORM_BOUNDARIES: [&str; 4] = ["input", "layer1.0", "layer2.0", "layer3.0"];

/// What one SGD step returns: the loss, the logits (both after backward: their graph is
/// freed; read them without gradients), and with
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
    train_step_phased(ctx, opt, (images, labels), lr, &mut |_| {})
}

/// [`train_step`], calling `done(phase)` as each phase has been issued (a profiler
/// synchronises the device there and reads the clock).
pub fn train_step_phased(
    ctx: &StepContext,
    opt: &mut Sgd,
    (images, labels): (&Tensor, &Tensor),
    lr: f64,
    done: &mut dyn FnMut(Phase),
) -> Step {
    let x = ctx.augment.random(&ctx.normalizer.apply(images));
    done(Phase::Data);
    let (logits, boundaries) = if ctx.log_grad_norms {
        gradflow::forward_probed(ctx.model, &x, true, &|n| GRAD_NORM_BOUNDARIES.contains(&n))
    } else {
        (ctx.model.forward_t(&x, true), Vec::new())
    };
    // fp32 whatever the compute precision (the head returns fp32 logits); one ATen call
    // (log-softmax and NLL inside), as F.cross_entropy.
    let loss = logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100, 0.0);
    done(Phase::Forward);
    opt.zero_grad();
    loss.backward();
    done(Phase::Backward);
    opt.step(lr);
    done(Phase::Optimizer);
    let grad_norms = boundaries.iter().map(gradflow::mean_grad_norm).collect();
    // Not detached (two calls fewer): the graph behind them has been freed by backward,
    // and every reader works without gradients.
    Step { loss, logits, grad_norms }
}

enum EpochOutcome {
    /// The epoch ended: its row.
    Finished(EpochMetrics),
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
