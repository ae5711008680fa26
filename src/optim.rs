//! SGD with momentum and weight decay, written out so that its state (the momentum
//! buffers) can be saved with a checkpoint by parameter name. Same update as
//! `torch.optim.SGD` (dampening 0, no Nesterov): d = g + λp; v ← μv + d; p ← p − η·v.
//!
//! The update is one multi-tensor ATen call over all parameters (`_fused_sgd_`, or four
//! `_foreach_*` calls where no fused kernel exists: [`crate::native::sgd_step`]) with the
//! learning rate held in a device tensor, so the step costs the same few launches whatever
//! the depth, and a CUDA graph can capture it and still follow the schedule. Gradients are
//! set to none rather than zeroed.

use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::native::{self, SgdKernel};

#[derive(Debug)]
pub struct Sgd {
    pub momentum: f64,
    pub weight_decay: f64,
    /// Names of the trainable parameters, sorted.
    names: Vec<String>,
    /// The parameters, in `names`' order.
    params: Vec<Tensor>,
    /// One momentum buffer per parameter, same order.
    buffers: Vec<Tensor>,
    /// The learning rate as a 0-d fp32 tensor on the parameters' device, and the value it holds.
    lr: Tensor,
    lr_value: f64,
    kernel: SgdKernel,
}

impl Sgd {
    pub fn new(vs: &VarStore, momentum: f64, weight_decay: f64) -> Self {
        Self::with_kernel(vs, momentum, weight_decay, SgdKernel::for_device(vs.device()))
    }

    /// [`Sgd::new`] with the update's kernel chosen (the tests compare both with PyTorch).
    pub fn with_kernel(vs: &VarStore, momentum: f64, weight_decay: f64, kernel: SgdKernel) -> Self {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = named.iter().map(|(_, p)| p.zeros_like()).collect();
        let device = named.first().map_or(Device::Cpu, |(_, p)| p.device());
        let (names, params) = named.into_iter().unzip();
        let lr = Tensor::zeros([], (Kind::Float, device));
        Sgd { momentum, weight_decay, names, params, buffers, lr, lr_value: 0.0, kernel }
    }

    /// Drops the gradients (set to none: no ATen call; backward writes fresh ones).
    pub fn zero_grad(&mut self) {
        native::set_grads_to_none(&self.params);
    }

    /// Sets the learning rate that the next [`Sgd::update`] uses: one device fill, only
    /// when the value changes.
    pub fn set_lr(&mut self, lr: f64) {
        if lr != self.lr_value {
            let _ = tch::no_grad(|| self.lr.fill_(lr));
            self.lr_value = lr;
        }
    }

    /// One update at the rate set last, from the gradients left by `backward`.
    /// Parameters without a gradient keep their values and momentum.
    pub fn update(&mut self) {
        native::sgd_step(&self.params, &self.buffers, (self.weight_decay, self.momentum), &self.lr, self.kernel)
            .unwrap_or_else(|e| panic!("the SGD update failed: {e}"));
    }

    /// One update with learning rate `lr`, from the gradients left by `backward`.
    pub fn step(&mut self, lr: f64) {
        self.set_lr(lr);
        self.update();
    }

    /// The momentum buffers by parameter name (for checkpoints).
    pub fn momentum_buffers(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names.iter().map(String::as_str).zip(&self.buffers)
    }

    /// Restores a momentum buffer; `false` if no parameter has that name or shape.
    pub fn set_momentum_buffer(&mut self, name: &str, value: &Tensor) -> bool {
        match self.names.iter().position(|n| n == name) {
            Some(i) if self.buffers[i].size() == value.size() => {
                tch::no_grad(|| self.buffers[i].copy_(value));
                true
            }
            _ => false,
        }
    }
}

/// Tensor-name prefix of the momentum buffers in a checkpoint.
const MOMENTUM_PREFIX: &str = "optimizer.momentum.";

/// The optimizer's state in a checkpoint: `optimizer.momentum.<parameter>` tensors.
impl Sgd {
    /// The momentum buffers, named for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.momentum_buffers().map(|(n, t)| (format!("{MOMENTUM_PREFIX}{n}"), t.shallow_clone())).collect()
    }

    /// Restores every momentum buffer from `ckpt`; a missing or misshapen one is an error.
    pub fn load_state(&mut self, ckpt: &Checkpoint) -> Result<()> {
        let names: Vec<String> = self.momentum_buffers().map(|(n, _)| n.to_string()).collect();
        for name in names {
            let t = ckpt.tensors.get(&format!("{MOMENTUM_PREFIX}{name}")).ok_or_else(|| {
                Error::checkpoint(&ckpt.path, format!("no momentum buffer for {name}: cannot resume"))
            })?;
            if !self.set_momentum_buffer(&name, t) {
                return Err(Error::checkpoint(&ckpt.path, format!("momentum buffer for {name} has another shape")));
            }
        }
        Ok(())
    }
}
