//! Mixed precision and memory layout: a bf16 training step has the fp32 step's shapes
//! and a close loss and keeps every parameter and BN statistic in fp32; channels-last
//! gives the default layout's outputs and gradients within fp32 rounding.

use resnet_cifar::augment::Augmenter;
use resnet_cifar::checkpoint;
use resnet_cifar::data::{self, Split};
use resnet_cifar::model::{is_channels_last, to_channels_last, Compute, Layout, Precision, ResNet, ResNetConfig};
use resnet_cifar::normalize::{Normalization, Normalizer};
use resnet_cifar::optim::Sgd;
use resnet_cifar::schedule::LrSchedule;
use resnet_cifar::train::{train_step, Step, StepContext};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// libtorch's generator is global: the tests of this file take turns so that the twins
/// of one test draw the same initialisation and augmentation.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

const FP32_NCHW: Compute = Compute { precision: Precision::Fp32, layout: Layout::Nchw };
const FP32_CL: Compute = Compute { precision: Precision::Fp32, layout: Layout::ChannelsLast };
const BF16_CL: Compute = Compute { precision: Precision::Bf16, layout: Layout::ChannelsLast };

/// Two copies of one freshly initialised network.
fn twin_models(cfg: ResNetConfig, a: Compute, b: Compute) -> [(VarStore, ResNet); 2] {
    tch::manual_seed(3);
    let build = |compute: Compute| {
        let vs = VarStore::new(Device::Cpu);
        let model = ResNet::with_compute(&vs.root(), cfg, compute).unwrap();
        (vs, model)
    };
    let first = build(a);
    let mut second = build(b);
    second.0.copy(&first.0).unwrap();
    [first, second]
}

fn batch() -> Split {
    data::synthetic(64, 8, 5).train
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

/// One SGD step (lr 0.1, ‖∂L/∂x‖ logged) of `model` on the test batch, with a fixed
/// augmentation; returns the step and the normaliser it used.
fn one_step(vs: &VarStore, model: &ResNet) -> (Step, Normalizer) {
    let split = batch();
    let normalizer = Normalizer::fit(Normalization::PixelMean, &split.images);
    let schedule = LrSchedule::scaled(0.1, 10, 0);
    let mut opt = Sgd::new(vs, 0.9, 1e-4);
    let augment = Augmenter::new(model.compute.layout == Layout::ChannelsLast);
    let ctx = StepContext {
        model,
        augment: &augment,
        normalizer: &normalizer,
        schedule: &schedule,
        batch_size: 64,
        log_grad_norms: true,
    };
    tch::manual_seed(11);
    let step = train_step(&ctx, &mut opt, &split.images, &split.labels, 0.1);
    (step, normalizer)
}

/// One training step of each twin on the same batch with the same augmentation.
fn step_both(cfg: ResNetConfig, a: Compute, b: Compute) -> Vec<(VarStore, Step)> {
    twin_models(cfg, a, b)
        .into_iter()
        .map(|(vs, model)| {
            let (step, _) = one_step(&vs, &model);
            (vs, step)
        })
        .collect()
}

/// Relative difference ‖g_a − g_b‖/‖g_a‖ of the gradients of all trainable parameters
/// (as one vector) must be ≤ `overall`, and that of each parameter tensor ≤ `each`.
fn assert_gradients_agree(a: &VarStore, b: &VarStore, overall: f64, each: f64, what: &str) {
    let b_vars = b.variables();
    let (mut ga_all, mut gb_all) = (Vec::new(), Vec::new());
    let mut worst = (0.0, String::new());
    for (name, p) in a.variables() {
        if !p.requires_grad() {
            continue;
        }
        let (ga, gb) = (p.grad(), b_vars[&name].grad());
        assert_eq!(gb.kind(), Kind::Float, "{what}: {name}'s gradient is {:?}", gb.kind());
        assert_eq!(ga.size(), gb.size(), "{what}: {name}");
        let rel = (&ga - &gb).norm().double_value(&[]) / ga.norm().double_value(&[]).max(1e-12);
        if rel > worst.0 {
            worst = (rel, name);
        }
        ga_all.push(ga.flatten(0, -1));
        gb_all.push(gb.flatten(0, -1));
    }
    let (ga, gb) = (Tensor::cat(&ga_all, 0), Tensor::cat(&gb_all, 0));
    let total = (&ga - &gb).norm().double_value(&[]) / ga.norm().double_value(&[]);
    eprintln!("{what}: relative gradient difference {total:.2e} overall, {:.2e} at most ({})", worst.0, worst.1);
    assert!(total <= overall, "{what}: the gradients differ by {total:.2e} (relative)");
    assert!(worst.0 <= each, "{what}: {}'s gradient differs by {:.2e} (relative)", worst.1, worst.0);
}

#[test]
fn bf16_and_fp32_steps_have_the_same_shapes_and_close_losses() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    for cfg in
        [ResNetConfig::default(), ResNetConfig { depth: 8, shortcut: resnet_cifar::Shortcut::B, ..Default::default() }]
    {
        let steps = step_both(cfg, FP32_NCHW, BF16_CL);
        let (fp32, bf16) = (&steps[0].1, &steps[1].1);
        assert_eq!(fp32.logits.size(), bf16.logits.size());
        assert_eq!(bf16.logits.kind(), Kind::Float, "logits and loss are fp32");
        assert_eq!(bf16.loss.kind(), Kind::Float);
        assert_eq!(fp32.grad_norms.len(), bf16.grad_norms.len());
        let (l32, l16) = (fp32.loss.double_value(&[]), bf16.loss.double_value(&[]));
        // bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.2 %) at every layer.
        assert!((l32 - l16).abs() < 0.02 * l32, "{}: fp32 loss {l32}, bf16 loss {l16}", cfg.name());
        let logit_diff = max_abs_diff(&fp32.logits, &bf16.logits);
        let logit_scale = fp32.logits.abs().max().double_value(&[]);
        assert!(logit_diff < 0.05 * logit_scale, "{}: logits differ by {logit_diff} of {logit_scale}", cfg.name());
        for (g32, g16) in fp32.grad_norms.iter().zip(&bf16.grad_norms) {
            let (a, b) = (g32.double_value(&[]), g16.double_value(&[]));
            assert!((a - b).abs() < 0.05 * a, "{}: ‖∂L/∂x‖ {a} vs {b}", cfg.name());
        }
        // Master weights and BN statistics stay fp32, and the gradients agree.
        for (name, t) in steps[1].0.variables() {
            assert_eq!(t.kind(), Kind::Float, "{name} is {:?}", t.kind());
        }
        // bf16 rounds every activation to 8 significant bits; gradients of BN biases are sums
        // that largely cancel. PyTorch's own CPU autocast differs from its fp32 gradient of
        // ResNet-20 at init by 0.16 overall and 0.36 at most, measured the same way.
        assert_gradients_agree(&steps[0].0, &steps[1].0, 0.2, 0.5, &cfg.name());
    }
}

#[test]
fn channels_last_gives_the_default_layouts_outputs_and_gradients() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    // Tolerance: 1e-4 absolute on logits and the loss; gradients within 5e-3 relative
    // overall and 2e-2 per tensor: fp32 rounding from another summation order, nothing more.
    for cfg in
        [ResNetConfig::default(), ResNetConfig { depth: 8, shortcut: resnet_cifar::Shortcut::B, ..Default::default() }]
    {
        let x = Tensor::randn([16, 3, 32, 32], (Kind::Float, Device::Cpu));
        let models = twin_models(cfg, FP32_NCHW, FP32_CL);
        for train in [false, true] {
            let a = tch::no_grad(|| models[0].1.forward_t(&x, train));
            let b = tch::no_grad(|| models[1].1.forward_t(&x, train));
            let diff = max_abs_diff(&a, &b);
            assert!(diff < 1e-4, "{} (train {train}): logits differ by {diff}", cfg.name());
        }
        let steps = step_both(cfg, FP32_NCHW, FP32_CL);
        let (l1, l2) = (steps[0].1.loss.double_value(&[]), steps[1].1.loss.double_value(&[]));
        assert!((l1 - l2).abs() < 1e-4, "{}: loss {l1} vs {l2}", cfg.name());
        // PyTorch's own channels_last differs from NCHW by 8e-4 overall, 3e-3 at most.
        assert_gradients_agree(&steps[0].0, &steps[1].0, 5e-3, 2e-2, &cfg.name());
    }
}

#[test]
fn channels_last_activations_really_have_nhwc_strides() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert!(!is_channels_last(&x));
    let cl = to_channels_last(&x);
    assert!(is_channels_last(&cl));
    assert_eq!(cl.size(), x.size());
    assert_eq!(cl.stride(), [3 * 32 * 32, 1, 32 * 3, 3]);
    assert_eq!(max_abs_diff(&cl, &x), 0.0);
    // The network's activations keep the layout through a block (convolution, BN, ReLU, shortcut).
    let [(_vs, model), _] = twin_models(ResNetConfig::default(), FP32_CL, FP32_CL);
    let h = tch::no_grad(|| model.stem_t(&x, false));
    assert!(is_channels_last(&h), "stem output strides {:?}", h.stride());
    let (_, block) = model.blocks().nth(3).unwrap(); // layer2.0: stride 2, zero-padded shortcut
    let y = tch::no_grad(|| {
        let c = model.compute;
        block.forward_t(&model.blocks().take(3).fold(h, |h, (_, b)| b.forward_t(&h, false, c)), false, c)
    });
    assert!(is_channels_last(&y), "layer2.0 output strides {:?}", y.stride());
    assert_eq!(y.size(), [4, 32, 16, 16]);
    let bf16 = Compute { precision: Precision::Bf16, layout: Layout::Nchw }.cast(&x);
    assert_eq!(bf16.kind(), Kind::BFloat16);
    assert!(!is_channels_last(&bf16));
}

#[test]
fn a_channels_last_model_saves_checkpoints_that_an_nchw_model_loads_unchanged() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = ResNetConfig { depth: 8, ..Default::default() };
    let [(cl_vs, cl_model), (mut nchw_vs, nchw_model)] = twin_models(cfg, BF16_CL, FP32_NCHW);
    // The master weights are re-laid out in place, still fp32, with the same values.
    assert!(is_channels_last(&cl_model.conv1.ws));
    assert!(!is_channels_last(&nchw_model.conv1.ws));
    assert_eq!(cl_model.conv1.ws.kind(), Kind::Float);
    assert_eq!(max_abs_diff(&cl_model.conv1.ws, &nchw_model.conv1.ws), 0.0);
    // Train the channels-last bf16 model a step, save it, load it into the NCHW twin.
    let (_, normalizer) = one_step(&cl_vs, &cl_model);
    assert!(is_channels_last(&cl_model.conv1.ws), "the update keeps the layout");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cl.safetensors");
    checkpoint::save(&path, &cl_vs, &cfg, &normalizer, Default::default()).unwrap();
    checkpoint::read(&path).unwrap().load_into(&mut nchw_vs).unwrap();
    for (name, t) in cl_vs.variables() {
        assert_eq!(max_abs_diff(&t, &nchw_vs.variables()[&name]), 0.0, "{name} changed on the way");
    }
}
