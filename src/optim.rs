//! SGD with momentum and weight decay, written out so that its state (the momentum
//! buffers) can be saved with a checkpoint by parameter name. Same update as
//! `torch.optim.SGD` (dampening 0, no Nesterov): d = g + λp; v ← μv + d; p ← p − η·v.

use tch::{nn::VarStore, Tensor};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Sgd {
    pub momentum: f64,
    pub weight_decay: f64,
    /// Trainable parameters, sorted by name.
    params: Vec<(String, Tensor)>,
    /// One momentum buffer per parameter, same order.
    buffers: Vec<Tensor>,
}

impl Sgd {
    pub fn new(vs: &VarStore, momentum: f64, weight_decay: f64) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let buffers = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Sgd { momentum, weight_decay, params, buffers }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update with learning rate `lr`, from the gradients left by `backward`.
    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for ((_, p), v) in self.params.iter_mut().zip(&mut self.buffers) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let d = if self.weight_decay != 0.0 { g + &*p * self.weight_decay } else { g };
                let _ = v.g_mul_scalar_(self.momentum).g_add_(&d);
                let _ = p.g_sub_(&(&*v * lr));
            }
        });
    }

    /// The momentum buffers by parameter name (for checkpoints).
    pub fn momentum_buffers(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().zip(&self.buffers).map(|((n, _), v)| (n.as_str(), v))
    }

    /// Restores a momentum buffer; `false` if no parameter has that name or shape.
    pub fn set_momentum_buffer(&mut self, name: &str, value: &Tensor) -> bool {
        match self.params.iter().position(|(n, _)| n == name) {
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
