//! Shapes, parameter counts and the option-A shortcut of the paper's CIFAR networks, and
//! the pre-activation networks of He et al. 2016.

mod common;

use resnet_cifar::model::{
    parameter_count, Arch, BasicBlock, BlockKind, Compute, ResNet, ResNetConfig, Shortcut, ShortcutPath,
};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

fn build(depth: i64, arch: Arch, shortcut: Shortcut) -> (VarStore, ResNet) {
    let vs = VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), ResNetConfig { depth, arch, shortcut, ..Default::default() }).unwrap();
    (vs, model)
}

/// The counts of the PyTorch reference (akamaster/pytorch_resnet_cifar10) for option A.
const COUNTS: [(i64, i64); 6] =
    [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962), (1202, 19_421_274)];

#[test]
fn parameter_counts_match_the_paper_networks() {
    for (depth, count) in COUNTS {
        for (arch, shortcut, extra) in
            [(Arch::Resnet, Shortcut::A, 0), (Arch::Plain, Shortcut::A, 0), (Arch::Resnet, Shortcut::B, 2_752)]
        {
            let (vs, _) = build(depth, arch, shortcut);
            assert_eq!(parameter_count(&vs), count + extra, "{arch}-{depth} shortcut {shortcut}");
        }
    }
}

#[test]
fn output_shapes() {
    for (arch, shortcut) in [(Arch::Resnet, Shortcut::A), (Arch::Resnet, Shortcut::B), (Arch::Plain, Shortcut::A)] {
        let (_, model) = build(20, arch, shortcut);
        let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        for train in [true, false] {
            assert_eq!(model.forward_t(&x, train).size(), [4, 10]);
        }
        let mut h = model.stem_t(&x, false);
        assert_eq!(h.size(), [4, 16, 32, 32]);
        let expected = [[16, 32, 32], [32, 16, 16], [64, 8, 8]];
        for (s, blocks) in model.stages.iter().enumerate() {
            for b in blocks {
                h = b.forward_t(&h, false, model.compute);
            }
            assert_eq!(h.size()[1..], expected[s]);
        }
    }
}

#[test]
fn depth_must_be_6n_plus_2() {
    for depth in [0, 7, 21, 100] {
        let vs = VarStore::new(Device::Cpu);
        let err = ResNet::new(&vs.root(), ResNetConfig { depth, ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("6n+2"), "{err}");
    }
}

#[test]
fn option_a_subsamples_and_pads_with_exact_zeros() {
    let vs = VarStore::new(Device::Cpu);
    let cfg = ResNetConfig::default();
    let block = BasicBlock::new(vs.root() / "b", 16, 32, 2, &cfg);
    assert!(matches!(block.shortcut, ShortcutPath::ZeroPad { pad: 8 }));
    let x = Tensor::randn([2, 16, 8, 8], (Kind::Float, Device::Cpu));
    let s = block.shortcut.forward_t(&x, true, Compute::default()).unwrap();
    assert_eq!(s.size(), [2, 32, 4, 4]);
    // Zero channels on each side, as the reference's F.pad(…, (0,0,0,0,8,8)).
    assert_eq!(s.narrow(1, 0, 8).abs().max().double_value(&[]), 0.0);
    assert_eq!(s.narrow(1, 24, 8).abs().max().double_value(&[]), 0.0);
    let sub = x.slice(2, 0, None, 2).slice(3, 0, None, 2);
    assert!(s.narrow(1, 8, 16).equal(&sub), "the middle channels are x[:, :, ::2, ::2] exactly");
}

#[test]
fn plain_blocks_have_no_shortcut_and_identity_blocks_pass_x() {
    let (_, plain) = build(20, Arch::Plain, Shortcut::A);
    assert!(plain.blocks().all(|(_, b)| matches!(b.shortcut(), ShortcutPath::None)));
    let (_, res) = build(20, Arch::Resnet, Shortcut::B);
    let projections = res.blocks().filter(|(_, b)| matches!(b.shortcut(), ShortcutPath::Projection { .. })).count();
    assert_eq!(projections, 2);
    let x = Tensor::randn([1, 16, 32, 32], (Kind::Float, Device::Cpu));
    let (_, b) = res.blocks().next().unwrap();
    assert!(b.shortcut().forward_t(&x, false, Compute::default()).unwrap().equal(&x));
}

fn names(depth: i64, arch: Arch, shortcut: Shortcut) -> Vec<String> {
    let (vs, _) = build(depth, arch, shortcut);
    let mut n: Vec<String> = vs.variables().into_keys().collect();
    n.sort();
    n
}

#[test]
fn variable_names_are_the_pytorch_state_dict_names() {
    let n = names(20, Arch::Resnet, Shortcut::A);
    assert!(n.iter().all(|s| !s.contains("__")), "tch renamed a colliding path: {n:?}");
    let mut expected = vec!["conv1.weight".to_string(), "linear.weight".into(), "linear.bias".into()];
    let bn = |p: &str| ["weight", "bias", "running_mean", "running_var"].map(|s| format!("{p}.{s}"));
    expected.extend(bn("bn1"));
    for s in 1..=3 {
        for i in 0..3 {
            expected.push(format!("layer{s}.{i}.conv1.weight"));
            expected.push(format!("layer{s}.{i}.conv2.weight"));
            expected.extend(bn(&format!("layer{s}.{i}.bn1")));
            expected.extend(bn(&format!("layer{s}.{i}.bn2")));
        }
    }
    expected.sort();
    assert_eq!(n, expected);

    let b = names(20, Arch::Resnet, Shortcut::B);
    for s in [2, 3] {
        assert!(b.contains(&format!("layer{s}.0.shortcut.0.weight")));
        assert!(b.contains(&format!("layer{s}.0.shortcut.1.running_var")));
    }
    assert_eq!(b.len(), n.len() + 2 * 5);
}

#[test]
fn initialisation_is_he_normal_with_unit_bn() {
    let (vs, _) = build(56, Arch::Resnet, Shortcut::A);
    let vars = vs.variables();
    let w = &vars["layer3.1.conv2.weight"];
    let std = w.std(true).double_value(&[]);
    let he = (2.0f64 / (64.0 * 9.0)).sqrt();
    assert!((std / he - 1.0).abs() < 0.05, "std {std}, He {he}");
    assert!(vars["layer2.3.bn1.weight"].eq(1.0).all().int64_value(&[]) == 1);
    assert!(vars["layer2.3.bn1.bias"].eq(0.0).all().int64_value(&[]) == 1);
}

#[test]
fn names_match_the_reference_checkpoint_when_present() {
    let Some(dir) = common::env_path("RESNET_CIFAR_REFERENCE_WEIGHTS") else {
        return;
    };
    let path = std::path::Path::new(&dir).join("resnet20.safetensors");
    let ckpt = resnet_cifar::checkpoint::read(&path).unwrap();
    let mut theirs: Vec<String> = ckpt.tensors.keys().cloned().collect();
    theirs.sort();
    assert_eq!(names(20, Arch::Resnet, Shortcut::A), theirs);
}

fn preact(depth: i64, block: Option<BlockKind>) -> (VarStore, ResNet) {
    let vs = VarStore::new(Device::Cpu);
    let cfg = ResNetConfig { depth, arch: Arch::Preact, block, ..Default::default() };
    let model = ResNet::new(&vs.root(), cfg).unwrap();
    (vs, model)
}

/// He et al. 2016's CIFAR networks, counted as the common PyTorch version counts them.
#[test]
fn preactivation_parameter_counts() {
    for (depth, block, count) in [
        (20, BlockKind::Basic, 272_282),
        (56, BlockKind::Basic, 855_578),
        (110, BlockKind::Basic, 1_730_522),
        (164, BlockKind::Bottleneck, 1_703_258),
        (1001, BlockKind::Bottleneck, 10_327_706),
    ] {
        let (vs, model) = preact(depth, None);
        assert_eq!(model.config.block(), block, "the paper's block at depth {depth}");
        assert_eq!(parameter_count(&vs), count, "preact-{depth}");
    }
}

#[test]
fn preactivation_names_shapes_and_depth_forms() {
    let (vs, model) = preact(164, None);
    let names: Vec<String> = vs.variables().into_keys().collect();
    assert!(names.iter().all(|s| !s.contains("__")), "tch renamed a colliding path");
    for want in ["conv1.weight", "layer1.0.bn3.running_var", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight"] {
        assert!(names.contains(&want.to_string()), "{want}");
    }
    for want in ["layer2.0.downsample.0.weight", "layer3.17.conv3.weight", "bn.weight", "fc.weight", "fc.bias"] {
        assert!(names.contains(&want.to_string()), "{want}");
    }
    assert!(!names.iter().any(|n| n.starts_with("bn1.") || n.starts_with("linear.")), "no 2015 stem BN or linear");
    assert_eq!(names.iter().filter(|n| n.contains("downsample")).count(), 3);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert_eq!(model.forward_t(&x, true).size(), [2, 10]);
    let mut h = model.stem_t(&x, false);
    for (s, want) in [[256, 8, 8], [128, 16, 16], [64, 32, 32]].iter().rev().enumerate() {
        for b in &model.stages[s] {
            h = b.forward_t(&h, false, model.compute);
        }
        assert_eq!(&h.size()[1..], want);
    }

    let vs = VarStore::new(Device::Cpu);
    let bad = |depth, arch, block| {
        let cfg = ResNetConfig { depth, arch, block, ..Default::default() };
        ResNet::new(&vs.root(), cfg).unwrap_err().to_string()
    };
    assert!(bad(165, Arch::Preact, None).contains("9n+2"));
    assert!(bad(21, Arch::Preact, Some(BlockKind::Basic)).contains("6n+2"));
    assert!(bad(164, Arch::Resnet, Some(BlockKind::Bottleneck)).contains("pre-activation networks (preact)"));
}

/// Nothing follows the addition: with zero-initialised residual branches every block is
/// the identity, so the stem's output reaches the head unchanged.
#[test]
fn zero_initialised_preactivation_blocks_are_identities() {
    for (depth, block) in [(20, BlockKind::Basic), (29, BlockKind::Bottleneck)] {
        let vs = VarStore::new(Device::Cpu);
        let cfg = ResNetConfig {
            depth,
            arch: Arch::Preact,
            block: Some(block),
            zero_init_residual: true,
            ..Default::default()
        };
        let model = ResNet::new(&vs.root(), cfg).unwrap();
        let mut h = model.stem_t(&Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu)), false);
        let mut identities = 0;
        for (name, b) in model.blocks() {
            let out = b.forward_t(&h, true, model.compute);
            if matches!(b.shortcut(), ShortcutPath::Identity) {
                assert!(out.equal(&h), "{name} of {block}");
                identities += 1;
            }
            h = out;
        }
        // Projections: layer2.0 and layer3.0, and layer1.0 where a bottleneck widens 16 to 64.
        let projections = if block == BlockKind::Basic { 2 } else { 3 };
        assert_eq!(identities, 3 * model.stages[0].len() - projections);
    }
}
