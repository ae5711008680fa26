//! SGD with momentum and weight decay, written out so that its state (the momentum
//! buffers) can be saved with a checkpoint by parameter name. Same update as
//! `torch.optim.SGD` (dampening 0, no Nesterov): d = g + λp; v ← μv + d; p ← p − η·v.

use tch::{nn::VarStore, Tensor};

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
