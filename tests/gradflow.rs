//! Gradient flow through depth: the identity path of residual blocks, the vanishing
//! gradient of deep plain stacks without BN, and ∂L/∂x_l checked by finite differences.

use resnet_cifar::gradflow::{forward_probed, grad_flow, FlowRow};
use resnet_cifar::model::{Arch, ResNet, ResNetConfig};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn batches(k: i64, kind: Kind) -> Vec<(Tensor, Tensor)> {
    tch::manual_seed(42);
    (0..k)
        .map(|_| {
            let x = Tensor::randn([16, 3, 32, 32], (kind, Device::Cpu));
            let y = Tensor::randint(10, [16], (Kind::Int64, Device::Cpu));
            (x, y)
        })
        .collect()
}

fn flow(cfg: ResNetConfig) -> Vec<FlowRow> {
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), cfg).unwrap();
    grad_flow(&model, &batches(2, Kind::Float), true)
}

fn norm(rows: &[FlowRow], name: &str) -> f64 {
    rows.iter().find(|r| r.name == name).unwrap().grad_norm
}

/// Block boundaries inside each stage, where a zero-initialised residual network must pass
/// the gradient unchanged: the inputs of blocks 1..n-1 (and of block 0 in stage 1, whose
/// shortcut is the identity too). A block's output is relu(x + 0) = x, so it masks the
/// gradient exactly where its input is zero: the same mask all along the stage.
fn identity_groups(n: usize) -> Vec<Vec<String>> {
    (1..=3).map(|s| (if s == 1 { 0 } else { 1 }..n).map(|i| format!("layer{s}.{i}")).collect()).collect()
}

#[test]
fn zero_init_residual_passes_the_gradient_unchanged_within_a_stage() {
    let cfg = ResNetConfig { depth: 32, zero_init_residual: true, ..Default::default() };
    let rows = flow(cfg);
    for group in identity_groups(5) {
        let first = norm(&rows, &group[0]);
        assert!(first > 0.0);
        for name in &group[1..] {
            let rel = (norm(&rows, name) / first - 1.0).abs();
            assert!(rel <= 1e-5, "{name} vs {}: relative difference {rel:e}", group[0]);
        }
    }
    // Plain nets have no identity path: the same boundaries differ.
    let plain = flow(ResNetConfig { arch: Arch::Plain, ..cfg });
    for group in identity_groups(5) {
        let first = norm(&plain, &group[0]);
        let spread = group[1..].iter().map(|n| (norm(&plain, n) / first - 1.0).abs()).fold(0.0, f64::max);
        assert!(spread > 1e-2, "plain stage {group:?} unexpectedly flat ({spread:e})");
    }
}

#[test]
fn without_bn_the_deep_plain_gradient_vanishes_relative_to_the_residual_one() {
    let ratio = |arch| {
        let rows = flow(ResNetConfig { depth: 56, arch, batch_norm: false, ..Default::default() });
        norm(&rows, "layer1.0") / norm(&rows, "output")
    };
    let (plain, resnet) = (ratio(Arch::Plain), ratio(Arch::Resnet));
    assert!(plain * 10.0 <= resnet, "first/last ratio: plain {plain:e}, resnet {resnet:e}");
}

#[test]
fn probed_gradients_match_finite_differences() {
    tch::manual_seed(5);
    let mut vs = VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), ResNetConfig { depth: 8, ..Default::default() }).unwrap();
    vs.double();
    let (x, y) = batches(1, Kind::Double).remove(0);
    let x = x.narrow(0, 0, 4);
    let y = y.narrow(0, 0, 4);
    let (logits, boundaries) = forward_probed(&model, &x, true, &|_| true);
    // In f64 throughout (tch's cross_entropy_for_logits computes in f32).
    let loss = |logits: &Tensor| logits.log_softmax(-1, Kind::Double).nll_loss(&y);
    loss(&logits).backward();

    let blocks: Vec<_> = model.blocks().collect();
    for (l, b) in boundaries.iter().enumerate().skip(1).take(blocks.len()) {
        // The loss as a function of x_l: blocks l.. then the head.
        let loss_from = |h: &Tensor| {
            let h =
                blocks[l - 1..].iter().fold(h.shallow_clone(), |h, (_, blk)| blk.forward_t(&h, true, model.compute));
            tch::no_grad(|| loss(&model.head(&h, false))).double_value(&[])
        };
        let g = b.probe.grad().view(-1);
        let flat = b.activation.view(-1);
        for idx in [0i64, 777, 1500, flat.size()[0] - 1] {
            let eps = 1e-6;
            let bump = |d: f64| {
                let h = flat.copy();
                let _ = h.get(idx).fill_(flat.double_value(&[idx]) + d);
                loss_from(&h.view_as(&b.activation))
            };
            let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
            let an = g.double_value(&[idx]);
            assert!(
                (fd - an).abs() <= 1e-9 + 1e-4 * an.abs(),
                "{} [{idx}]: finite difference {fd:e}, autograd {an:e}",
                b.name
            );
        }
    }
}
