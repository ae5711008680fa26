//! Making the residual argument measurable (Sections 1, 3.1 and 4.1 of the paper).
//!
//! A residual block computes x_{l+1} = x_l + F(x_l), so ∂x_{l+1}/∂x_l = 1 + ∂F/∂x_l and
//! the gradient reaching block l keeps an identity path from the loss; a plain stack
//! multiplies it by a layer Jacobian at every block. [`grad_flow`] measures
//! ‖∂L/∂x_l‖ at every block boundary; [`layer_responses`] measures the standard deviation
//! of each layer's output after BN (the paper's Fig. 7; for a pre-activation net each
//! convolution's output).
//!
//! Gradients with respect to activations come from *probes*: a zero leaf tensor added to
//! the activation, whose gradient after `backward` is exactly ∂L/∂x_l and which leaves
//! the computation unchanged.

use tch::{Kind, Tensor};

use crate::data::Split;
use crate::evaluate::EVAL_BATCH;
use crate::model::ResNet;
use crate::normalize::Normalizer;

/// An activation in the network with the probe that collects its gradient.
#[derive(Debug)]
pub struct Boundary {
    /// `input` (the image), `layer2.0` (the input of that block), `output` (of the last block).
    pub name: String,
    /// The activation (detached).
    pub activation: Tensor,
    /// Zero leaf added to the activation; `probe.grad()` is ∂L/∂x after `backward`.
    pub probe: Tensor,
}

/// Names of the boundaries in order: `input`, each block's input, `output`.
pub fn boundary_names(model: &ResNet) -> Vec<String> {
    let mut names = vec!["input".to_string()];
    names.extend(model.blocks().map(|(n, _)| n));
    names.push("output".into());
    names
}

fn probe(x: Tensor, name: &str, boundaries: &mut Vec<Boundary>) -> Tensor {
    let p = x.zeros_like().set_requires_grad(true);
    let y = x + &p;
    boundaries.push(Boundary { name: name.to_string(), activation: y.detach(), probe: p });
    y
}

/// Runs the network, probing the boundaries for which `select(name)` is true.
/// Returns the logits and the probed boundaries in order.
pub fn forward_probed(
    model: &ResNet,
    x: &Tensor,
    train: bool,
    select: &dyn Fn(&str) -> bool,
) -> (Tensor, Vec<Boundary>) {
    let mut boundaries = Vec::new();
    let at = |x: Tensor, name: &str, b: &mut Vec<Boundary>| if select(name) { probe(x, name, b) } else { x };
    let x = at(x.shallow_clone(), "input", &mut boundaries);
    let mut h = model.stem_t(&x, train);
    for (name, block) in model.blocks() {
        h = at(h, &name, &mut boundaries);
        h = block.forward_t(&h, train, model.compute);
    }
    let h = at(h, "output", &mut boundaries);
    (model.head(&h, train), boundaries)
}

/// Mean over the batch of the per-example norm ‖∂L/∂x‖ of a probed activation.
pub fn mean_grad_norm(b: &Boundary) -> Tensor {
    let g = b.probe.grad();
    let n = g.size()[0];
    // reshape, not view: a channels-last gradient is not contiguous in N×C×H×W order.
    g.reshape([n, -1]).to_kind(Kind::Float).norm_scalaropt_dim(2.0, [1i64].as_slice(), false).mean(Kind::Double)
}

/// One row of the gradient-flow table.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRow {
    pub index: usize,
    pub name: String,
    /// Mean per-example ‖∂L/∂x_l‖, L the batch-mean cross-entropy.
    pub grad_norm: f64,
    /// `grad_norm` divided by its value at the last boundary (`output`).
    pub ratio_to_last: f64,
    /// Standard deviation of x_l's entries.
    pub activation_std: f64,
}

/// ‖∂L/∂x_l‖ and std(x_l) at every boundary, averaged over `batches` of normalised
/// images and labels. `train` selects BN batch statistics (as during training).
pub fn grad_flow(model: &ResNet, batches: &[(Tensor, Tensor)], train: bool) -> Vec<FlowRow> {
    let names = boundary_names(model);
    let mut norms = vec![0.0; names.len()];
    let mut stds = vec![0.0; names.len()];
    for (x, y) in batches {
        let (logits, boundaries) = forward_probed(model, x, train, &|_| true);
        logits.cross_entropy_for_logits(y).backward();
        for (i, b) in boundaries.iter().enumerate() {
            norms[i] += mean_grad_norm(b).double_value(&[]) / batches.len() as f64;
            stds[i] += b.activation.std(true).double_value(&[]) / batches.len() as f64;
        }
    }
    let last = *norms.last().expect("at least the output boundary");
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| FlowRow {
            index: i,
            name,
            grad_norm: norms[i],
            ratio_to_last: norms[i] / last,
            activation_std: stds[i],
        })
        .collect()
}

/// The std of every 3×3 layer's response (after BN, before ReLU or addition), in layer
/// order: `conv1`, then `layer1.0.conv1`, `layer1.0.conv2`, … Computed in inference mode
/// over all of `split`, over every entry of the layer's output (population std).
pub fn layer_responses(model: &ResNet, split: &Split, normalizer: &Normalizer) -> Vec<(String, f64)> {
    let n = split.len();
    let batches = (0..n)
        .step_by(EVAL_BATCH as usize)
        .map(|start| normalizer.apply(&split.narrow(start, EVAL_BATCH.min(n - start)).images));
    layer_responses_of(model, batches)
}

/// [`layer_responses`] over already normalised batches.
pub fn layer_responses_of(model: &ResNet, batches: impl Iterator<Item = Tensor>) -> Vec<(String, f64)> {
    // Per layer: name, Σx, Σx², count.
    let mut sums: Vec<(String, f64, f64, f64)> = Vec::new();
    let mut add = |i: usize, name: String, t: &Tensor| {
        let t = t.to_kind(Kind::Double);
        if i == sums.len() {
            sums.push((name, 0.0, 0.0, 0.0));
        }
        sums[i].1 += t.sum(Kind::Double).double_value(&[]);
        sums[i].2 += (&t * &t).sum(Kind::Double).double_value(&[]);
        sums[i].3 += t.numel() as f64;
    };
    tch::no_grad(|| {
        for x in batches {
            let r = model.stem_response_t(&x, false);
            add(0, "conv1".into(), &r);
            let mut h = model.stem_from_response(r);
            let mut layer = 1;
            for (name, block) in model.blocks() {
                let mut responses = block.responses_t(&h, false, model.compute);
                for (j, r) in responses.iter().enumerate() {
                    add(layer, format!("{name}.conv{}", j + 1), r);
                    layer += 1;
                }
                let f = responses.pop().expect("a block has convolutions");
                h = block.combine_t(f, &h, false, model.compute);
            }
        }
    });
    sums.into_iter()
        .map(|(name, s, s2, n)| {
            let mean = s / n;
            (name, (s2 / n - mean * mean).max(0.0).sqrt())
        })
        .collect()
}
