//! Evaluation in inference mode (BN running statistics, no augmentation): mean
//! cross-entropy, top-1 and top-5 error and the confusion matrix, accumulated on the device.

use tch::{nn::ModuleT, Kind, Tensor};

use crate::data::Split;
use crate::model::ResNet;
use crate::normalize::Normalizer;

/// Images per forward pass when evaluating.
pub const EVAL_BATCH: i64 = 500;
/// The k of the top-k error that CIFAR-100 is usually reported with.
pub const TOP_K: i64 = 5;

#[derive(Debug)]
pub struct Evaluation {
    pub loss: f64,
    /// Top-1 error in percent.
    pub error: f64,
    pub images: i64,
    /// Classes × classes counts (the model's classes), rows = true class, columns = predicted class.
    pub confusion: Tensor,
    /// Per true class, the images whose class is among the [`TOP_K`] most probable.
    pub top5_correct: Tensor,
}

impl Evaluation {
    pub fn accuracy(&self) -> f64 {
        100.0 - self.error
    }

    /// Top-5 error in percent (0 with five classes or fewer).
    pub fn top5_error(&self) -> f64 {
        let correct = self.top5_correct.sum(Kind::Int64).int64_value(&[]);
        100.0 * (self.images - correct) as f64 / self.images.max(1) as f64
    }
}

/// Evaluates `model` on `split` (already on the model's device).
pub fn evaluate(model: &ResNet, split: &Split, normalizer: &Normalizer) -> Evaluation {
    let device = split.images.device();
    let n = split.len();
    let classes = model.config.num_classes;
    let mut confusion = Tensor::zeros([classes * classes], (Kind::Int64, device));
    let mut top5_correct = Tensor::zeros([classes], (Kind::Int64, device));
    let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
    tch::no_grad(|| {
        for start in (0..n).step_by(EVAL_BATCH as usize) {
            let batch = split.narrow(start, EVAL_BATCH.min(n - start));
            let logits = model.forward_t(&normalizer.apply(&batch.images), false).to_kind(Kind::Float);
            let loss = logits.cross_entropy_for_logits(&batch.labels);
            loss_sum += loss.to_kind(Kind::Double) * batch.len() as f64;
            let pred = logits.argmax(-1, false);
            let cell = &batch.labels * classes + pred;
            let _ = confusion.index_add_(0, &cell, &cell.ones_like());
            let (_, top) = logits.topk(TOP_K.min(classes), -1, true, false);
            let hit =
                top.eq_tensor(&batch.labels.unsqueeze(-1)).sum_dim_intlist([-1i64].as_slice(), false, Kind::Int64);
            let _ = top5_correct.index_add_(0, &batch.labels, &hit);
        }
    });
    let confusion = confusion.view([classes, classes]);
    let correct = confusion.diagonal(0, 0, 1).sum(Kind::Int64).int64_value(&[]);
    let nf = n.max(1) as f64;
    Evaluation {
        loss: loss_sum.double_value(&[]) / nf,
        error: 100.0 * (n - correct) as f64 / nf,
        images: n,
        confusion: confusion.to_device(tch::Device::Cpu),
        top5_correct: top5_correct.to_device(tch::Device::Cpu),
    }
}
