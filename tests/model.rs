//! Shapes, parameter counts and the option-A shortcut of the paper's CIFAR networks.

mod common;

use resnet_cifar::model::{parameter_count, Arch, BasicBlock, Compute, ResNet, ResNetConfig, Shortcut, ShortcutPath};
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
    assert!(plain.blocks().all(|(_, b)| matches!(b.shortcut, ShortcutPath::None)));
    let (_, res) = build(20, Arch::Resnet, Shortcut::B);
    let projections = res.blocks().filter(|(_, b)| matches!(b.shortcut, ShortcutPath::Projection { .. })).count();
    assert_eq!(projections, 2);
    let x = Tensor::randn([1, 16, 32, 32], (Kind::Float, Device::Cpu));
    let (_, b) = res.blocks().next().unwrap();
    assert!(b.shortcut.forward_t(&x, false, Compute::default()).unwrap().equal(&x));
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
