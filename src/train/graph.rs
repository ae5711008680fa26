//! The training step as a CUDA graph (`--cuda-graphs`): on a GPU the eager step is bound by
//! the host launching a few hundred small kernels; a graph launches them all at once.
//!
//! The whole step is captured once and replayed: the batch gathered by a static index
//! buffer (filled by `copy_`), normalisation and the pad-crop-flip augmentation (random
//! numbers from the default CUDA generator, registered with the graph, so a replay draws
//! from the seed set for its iteration), forward, loss, backward, and the fused SGD with
//! the learning rate in a device tensor. The first [`WARMUP_STEPS`] full batches run eagerly
//! on the graph's side stream (cuDNN's algorithm search, cuBLAS workspaces); the gradients
//! are set to none before capture, so backward allocates them in the graph's pool.
//!
//! What cannot be captured runs eagerly, with one line saying why: the last partial batch
//! (another shape), `--log-grad-norms` (reads activations' gradients), a build or device
//! without CUDA graphs.

use tch::{Device, Tensor};

use super::{train_step, Step, StepContext};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::native::{self, CudaGraph};
use crate::optim::Sgd;

crate::text::value_enum! {
    /// `--cuda-graphs`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum CudaGraphs: "CUDA graphs setting" {
        /// On with a CUDA device, off elsewhere.
        #[default]
        Auto => "auto",
        /// On; an error without a CUDA device or in a build without CUDA graphs.
        On => "on",
        Off => "off",
    }
}

/// Eager steps on the side stream before capture.
pub const WARMUP_STEPS: u32 = 3;

/// Runs training steps, graphed where they can be.
pub(crate) struct Stepper {
    state: State,
    /// Notices already printed (one line each, once per run).
    said_partial: bool,
    quiet: bool,
}

enum State {
    Eager,
    /// `n` warm-up steps done.
    Warming(CudaGraph, u32),
    Ready(Captured),
}

/// A captured step and its static buffers.
struct Captured {
    graph: CudaGraph,
    /// The batch's indices into the training set.
    index: Tensor,
    labels: Tensor,
    loss: Tensor,
    logits: Tensor,
}

/// Whether `setting` graphs steps on `device`: `Ok(None)` for yes, `Ok(Some(reason))` for
/// eager with the reason, `Err` where `on` cannot be honoured.
pub fn decide(setting: CudaGraphs, device: Device, log_grad_norms: bool) -> Result<Option<String>> {
    let unavailable = match device {
        Device::Cuda(_) if native::has_cuda_graphs() => None,
        Device::Cuda(_) => Some("this build's libtorch has no CUDA graphs".to_string()),
        d => Some(format!("CUDA graphs need a CUDA device, not {}", crate::device::device_name(d))),
    };
    match (setting, unavailable) {
        (CudaGraphs::Off, _) => Ok(Some("CUDA graphs are turned off".into())),
        (CudaGraphs::On, Some(why)) => Err(Error::CudaGraphsUnavailable { why }),
        (CudaGraphs::Auto, Some(why)) => Ok(Some(why)),
        (_, None) if log_grad_norms => {
            Ok(Some("logging gradient norms reads activation gradients each step, which a graph cannot".into()))
        }
        (_, None) => Ok(None),
    }
}

impl Stepper {
    /// Steps as `setting` says on `device`; says in one line (unless `quiet`) why a CUDA
    /// run steps eagerly.
    pub fn new(setting: CudaGraphs, device: Device, log_grad_norms: bool, quiet: bool) -> Result<Self> {
        let state = match (decide(setting, device, log_grad_norms)?, device) {
            (None, Device::Cuda(i)) => State::Warming(CudaGraph::new(i)?, 0),
            (reason, _) => {
                if let (Some(why), Device::Cuda(_), false) = (reason, device, quiet) {
                    eprintln!("note: training steps run eagerly: {why}");
                }
                State::Eager
            }
        };
        Ok(Stepper { state, said_partial: false, quiet })
    }

    /// Whether steps are (or will be, after warm-up) replayed from a graph.
    pub fn graphed(&self) -> bool {
        !matches!(self.state, State::Eager)
    }

    /// One SGD step on the images of `train` that `index` selects (`batch`), at rate `lr`;
    /// returns the step and the batch's labels.
    pub fn step(
        &mut self,
        ctx: &StepContext,
        opt: &mut Sgd,
        (train, index): (&Split, &Tensor),
        lr: f64,
    ) -> Result<(Step, Tensor)> {
        let full = index.size()[0] == ctx.batch_size;
        if !full && self.graphed() && !self.said_partial && !self.quiet {
            eprintln!("note: the epoch's last batch ({} images) runs eagerly: a graph has one shape", index.size()[0]);
            self.said_partial = true;
        }
        let eager = |opt: &mut Sgd| {
            let (images, labels) = train.select(index);
            (train_step(ctx, opt, &images, &labels, lr), labels)
        };
        match &mut self.state {
            State::Eager => Ok(eager(opt)),
            _ if !full => Ok(eager(opt)),
            State::Warming(graph, n) if *n < WARMUP_STEPS => {
                *n += 1;
                graph.on_side_stream(|_| Ok(eager(opt)))
            }
            State::Warming(..) => {
                let State::Warming(mut graph, _) = std::mem::replace(&mut self.state, State::Eager) else {
                    unreachable!("matched above")
                };
                let static_index = index.copy();
                opt.zero_grad();
                opt.set_lr(lr);
                let (step, labels) = graph.on_side_stream(|g| {
                    g.capture(|| {
                        let (images, labels) = train.select(&static_index);
                        (train_step(ctx, opt, &images, &labels, lr), labels)
                    })
                })?;
                let captured = Captured { graph, index: static_index, labels, loss: step.loss, logits: step.logits };
                // Capture records the work without running it: this iteration is the first replay.
                self.state = State::Ready(captured);
                self.replay(opt, index, lr)
            }
            State::Ready(_) => self.replay(opt, index, lr),
        }
    }

    fn replay(&mut self, opt: &mut Sgd, index: &Tensor, lr: f64) -> Result<(Step, Tensor)> {
        let State::Ready(c) = &mut self.state else { unreachable!("replay needs a captured graph") };
        tch::no_grad(|| c.index.copy_(index));
        opt.set_lr(lr);
        c.graph.replay()?;
        // The loss is copied out (the next replay overwrites it); the logits are read at once.
        let loss = tch::no_grad(|| c.loss.copy());
        let step = Step { loss, logits: c.logits.shallow_clone(), grad_norms: Vec::new() };
        Ok((step, c.labels.shallow_clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_steps_eagerly_and_refuses_on() {
        assert_eq!(decide(CudaGraphs::Off, Device::Cuda(0), false).unwrap().unwrap(), "CUDA graphs are turned off");
        assert!(decide(CudaGraphs::Auto, Device::Cpu, false).unwrap().unwrap().contains("need a CUDA device"));
        let e = decide(CudaGraphs::On, Device::Cpu, false).unwrap_err();
        assert!(matches!(&e, Error::CudaGraphsUnavailable { why } if why.contains("need a CUDA device")), "{e:?}");
        if native::has_cuda_graphs() {
            assert_eq!(decide(CudaGraphs::Auto, Device::Cuda(0), false).unwrap(), None);
            assert!(decide(CudaGraphs::On, Device::Cuda(0), true).unwrap().unwrap().contains("gradient norms"));
        }
        assert!(!Stepper::new(CudaGraphs::Auto, Device::Cpu, false, true).unwrap().graphed());
    }
}
