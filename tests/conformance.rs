//! Our ResNet *is* the paper's ResNet, number for number: the PyTorch model written in
//! `tests/conformance/gen_fixtures.py` (from the paper) gives random weights, non-trivial
//! BN statistics, an input batch, eval-mode logits and train-mode gradients of every
//! parameter; we load the same weights and must match them (fp32, CPU). And a checkpoint
//! written by `train` loads into that PyTorch model and gives our logits.
//!
//! The fixtures are generated during the test run with the Python torch that the set-up
//! installs (`RESNET_CIFAR_PYTHON`); where it is absent the tests are skipped with a
//! reason, except under CI, where that is a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use resnet_cifar::checkpoint::{self, Checkpoint};
use resnet_cifar::data;
use resnet_cifar::model::ResNet;
use resnet_cifar::native::SgdKernel;
use resnet_cifar::train::{run_with_data, TrainConfig};
use tch::nn::{ModuleT, VarStore};

mod common;
use tch::{Device, Kind, Tensor};

const LOGIT_TOL: f64 = 1e-4;
const GRAD_REL_TOL: f64 = 1e-4;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance").join(name)
}

/// Generates the fixtures once per test binary.
fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        let py = common::python_with_torch()?;
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new(py).arg(script("gen_fixtures.py")).arg(dir.path()).output().unwrap();
        assert!(o.status.success(), "gen_fixtures.py failed: {}", String::from_utf8_lossy(&o.stderr));
        Some(dir)
    })
    .as_ref()
    .map(|d| d.path())
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// Splits a fixture file into the model checkpoint and the `fixture.*` tensors.
fn split_fixture(path: &Path) -> (Checkpoint, BTreeMap<String, Tensor>) {
    let mut ckpt = checkpoint::read(path).unwrap();
    let (fixture, model) = std::mem::take(&mut ckpt.tensors).into_iter().partition(|(k, _)| k.starts_with("fixture."));
    ckpt.tensors = model;
    (ckpt, fixture)
}

/// Loads fixture `name` into our network (its config from the checkpoint) and checks the
/// eval and train logits, the loss and every gradient against PyTorch's. Returns the config.
fn assert_matches_pytorch(dir: &Path, name: &str) -> resnet_cifar::ResNetConfig {
    let (ckpt, fx) = split_fixture(&dir.join(format!("{name}.safetensors")));
    let cfg = ckpt.model_config().unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), cfg).unwrap();
    let x = &fx["fixture.input"];
    let y = &fx["fixture.labels"];
    if x.kind() == Kind::Double {
        vs.double(); // the pre-activation fixtures: fp64 on both sides
    }
    ckpt.load_into(&mut vs).unwrap();

    let logits = tch::no_grad(|| model.forward_t(x, false));
    let d = max_abs(&(&logits - &fx["fixture.logits_eval"]));
    assert!(d <= LOGIT_TOL, "{name}: max |Δlogit| = {d:e} (eval)");

    let logits = model.forward_t(x, true);
    let d = max_abs(&(&logits - &fx["fixture.logits_train"]));
    assert!(d <= LOGIT_TOL, "{name}: max |Δlogit| = {d:e} (train)");
    let loss = logits.cross_entropy_for_logits(y);
    let dl = (loss.double_value(&[]) - fx["fixture.loss_train"].double_value(&[0])).abs();
    assert!(dl <= 1e-5, "{name}: |Δloss| = {dl:e}");
    loss.backward();
    let mut grads = 0;
    for (pname, p) in vs.variables() {
        if !p.requires_grad() {
            continue;
        }
        let want = &fx[&format!("fixture.grad.{pname}")];
        let rel = max_abs(&(p.grad() - want)) / max_abs(want).max(1e-12);
        assert!(rel <= GRAD_REL_TOL, "{name}: gradient of {pname} off by {rel:e} relative");
        grads += 1;
    }
    assert_eq!(grads, fx.keys().filter(|k| k.starts_with("fixture.grad.")).count());
    cfg
}

#[test]
fn logits_and_gradients_match_pytorch() {
    let Some(dir) = fixtures() else { return };
    tch::set_num_threads(2);
    let mut cases = 0;
    for arch in ["resnet", "plain"] {
        for shortcut in ["A", "B"] {
            for depth in [20, 56] {
                let cfg = assert_matches_pytorch(dir, &format!("{arch}-{shortcut}-{depth}"));
                assert_eq!((cfg.arch.to_string(), cfg.depth), (arch.to_string(), depth));
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 8);
}

/// The pre-activation nets of He et al. 2016, basic and bottleneck, against the PyTorch
/// definition in gen_fixtures.py: the same names (its state dict loads with no renaming),
/// logits and gradients (in fp64: at depth 164 fp32 round-off alone is above 1e-4); and a
/// checkpoint without our metadata is recognised by its names.
#[test]
fn preactivation_logits_and_gradients_match_pytorch() {
    let Some(dir) = fixtures() else { return };
    tch::set_num_threads(2);
    for (block, depth) in [("basic", 20), ("basic", 56), ("bottleneck", 47), ("bottleneck", 164)] {
        let name = format!("preact-{block}-{depth}");
        let cfg = assert_matches_pytorch(dir, &name);
        assert_eq!((cfg.arch, cfg.block().to_string(), cfg.depth), (resnet_cifar::Arch::Preact, block.into(), depth));

        let (mut bare, _) = split_fixture(&dir.join(format!("{name}.safetensors")));
        bare.metadata.clear();
        let inferred = bare.model_config().unwrap();
        assert_eq!((inferred.arch, inferred.block(), inferred.depth), (cfg.arch, cfg.block(), depth), "{name}");
    }
}

#[test]
fn a_trained_checkpoint_loads_into_pytorch_with_the_same_logits() {
    let Some(py) = common::python_with_torch() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for (depth, shortcut) in [(8, resnet_cifar::Shortcut::B), (14, resnet_cifar::Shortcut::A)] {
        let run_dir = out.join(format!("{depth}"));
        let mut cfg = TrainConfig {
            model: resnet_cifar::ResNetConfig { depth, shortcut, ..Default::default() },
            ..Default::default()
        };
        (cfg.schedule.epochs, cfg.schedule.batch_size, cfg.output.dir) = (1, 64, run_dir.clone());
        (cfg.machine.quiet, cfg.machine.threads) = (true, Some(2));
        let synth = data::synthetic(256, 64, 3);
        run_with_data(&cfg, &synth).unwrap();
        // best.safetensors is the export (last.safetensors adds optimizer.* buffers for --resume).
        let ckpt_path = run_dir.join("best.safetensors");

        let mut vs = VarStore::new(Device::Cpu);
        let ckpt = checkpoint::read(&ckpt_path).unwrap();
        let model = ResNet::new(&vs.root(), ckpt.model_config().unwrap()).unwrap();
        ckpt.load_into(&mut vs).unwrap();
        let x = ckpt.normalizer().unwrap().unwrap().apply(&synth.test.images);
        let ours = tch::no_grad(|| model.forward_t(&x, false));

        let input = tmp.path().join("input.safetensors");
        checkpoint::write(&input, &[("input".to_string(), x)], Default::default()).unwrap();
        let logits_path = tmp.path().join("logits.safetensors");
        let o = Command::new(&py)
            .arg(script("pytorch_logits.py"))
            .args([&ckpt_path, &input, &logits_path])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let theirs = checkpoint::read(&logits_path).unwrap();
        assert_eq!(theirs.metadata["missing"], "", "PyTorch found weights missing");
        let unexpected = &theirs.metadata["unexpected"];
        assert_eq!(unexpected, "normalization.mean,normalization.std", "only the statistics are extra");
        let d = max_abs(&(&ours - &theirs.tensors["logits"].to_kind(Kind::Float)));
        assert!(d <= LOGIT_TOL, "depth {depth}: max |Δlogit| = {d:e}");
    }
}

/// A fixture's file, checkpoint, `fixture.*` tensors, and its model with the weights loaded.
fn fixture_model(dir: &Path, name: &str) -> (PathBuf, Checkpoint, BTreeMap<String, Tensor>, VarStore, ResNet) {
    let path = dir.join(format!("{name}.safetensors"));
    let (ckpt, fx) = split_fixture(&path);
    let mut vs = VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), ckpt.model_config().unwrap()).unwrap();
    ckpt.load_into(&mut vs).unwrap();
    (path, ckpt, fx, vs, model)
}

#[test]
fn layer_responses_match_pytorch_forward_hooks() {
    let Some(dir) = fixtures() else { return };
    let py = common::python_with_torch().unwrap();
    for name in ["resnet-A-20", "plain-B-56", "resnet-B-20"] {
        let (path, ckpt, fx, _vs, model) = fixture_model(dir, name);
        let ours =
            resnet_cifar::gradflow::layer_responses_of(&model, std::iter::once(fx["fixture.input"].shallow_clone()));

        let out = dir.join(format!("{name}.responses.safetensors"));
        let o = Command::new(&py).arg(script("pytorch_responses.py")).arg(&path).arg(&out).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let theirs = checkpoint::read(&out).unwrap();
        let stds = Vec::<f64>::try_from(&theirs.tensors["stds"]).unwrap();
        assert_eq!(ours.len(), stds.len(), "{name}: one value per 3×3 layer");
        assert_eq!(ours.len() as i64, ckpt.model_config().unwrap().depth - 1);
        for ((layer, a), b) in ours.iter().zip(&stds) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{name} {layer}: ours {a}, PyTorch hooks {b}");
        }
    }
}

/// Our SGD is `torch.optim.SGD(foreach=True)` (momentum 0.9, weight decay 1e-4, dampening
/// 0): five steps from the same start with the same gradients land on the same parameters
/// and momentum buffers, within 1e-6 relative, with the fused kernel and with the
/// `_foreach_*` ops alike.
#[test]
fn five_sgd_steps_match_torch_optim_sgd() {
    let Some(py) = common::python_with_torch() else { return };
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(py).arg(script("sgd_steps.py")).arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "sgd_steps.py failed: {}", String::from_utf8_lossy(&o.stderr));
    let fx = checkpoint::read(&dir.path().join("sgd.safetensors")).unwrap();
    for kernel in [SgdKernel::Fused, SgdKernel::Foreach] {
        five_sgd_steps(&fx, kernel);
    }
}

fn five_sgd_steps(fx: &Checkpoint, kernel: SgdKernel) {
    let lrs: Vec<f64> = fx.metadata["lrs"].split(',').map(|x| x.parse().unwrap()).collect();
    let names: Vec<String> = fx.tensors.keys().filter_map(|k| k.strip_prefix("init.")).map(String::from).collect();
    let vs = VarStore::new(Device::Cpu);
    // Variable names may not hold dots in tch: `conv1.weight` becomes `conv1_weight`.
    let var = |n: &str| n.replace('.', "_");
    let params: Vec<Tensor> =
        names.iter().map(|n| vs.root().var_copy(&var(n), &fx.tensors[&format!("init.{n}")])).collect();
    let mut opt = resnet_cifar::optim::Sgd::with_kernel(&vs, 0.9, 1e-4, kernel);
    for (k, lr) in lrs.iter().enumerate() {
        opt.zero_grad();
        // d/dp Σ p·g = g: the step sees exactly the reference's gradients.
        let loss = names
            .iter()
            .zip(&params)
            .map(|(n, p)| (p * &fx.tensors[&format!("grad.{k}.{n}")]).sum(Kind::Float))
            .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
        loss.backward();
        opt.step(*lr);
    }
    let rel = |a: &Tensor, b: &Tensor| max_abs(&(a - b)) / max_abs(b);
    for (n, p) in names.iter().zip(&params) {
        let r = rel(p, &fx.tensors[&format!("final.{n}")]);
        assert!(r <= 1e-6, "{kernel:?}: {n}: parameters differ by {r:e} relative");
    }
    for (v_name, v) in opt.momentum_buffers() {
        let n = names.iter().find(|n| var(n) == v_name).expect("a buffer per parameter");
        let r = rel(v, &fx.tensors[&format!("momentum.{n}")]);
        assert!(r <= 1e-6, "{kernel:?}: {n}: momentum buffers differ by {r:e} relative");
    }
    assert_eq!(opt.momentum_buffers().count(), names.len());
}

/// A loss-landscape point off the centre is PyTorch's loss of the same perturbed network:
/// the directions are exported under PyTorch's names (zeros for BN and biases), and
/// w₀ + α·d₁ + β·d₂ is computed there; eval-mode losses agree within 1e-4.
#[test]
fn an_off_centre_landscape_point_matches_pytorch() {
    use resnet_cifar::landscape::Perturbation;
    let Some(dir) = fixtures() else { return };
    let py = common::python_with_torch().unwrap();
    for name in ["resnet-A-20", "plain-B-56", "resnet-B-20"] {
        let (path, _, fx, vs, model) = fixture_model(dir, name);
        let (x, labels) = (&fx["fixture.input"], &fx["fixture.labels"]);
        let loss = || tch::no_grad(|| model.forward_t(x, false).cross_entropy_for_logits(labels).double_value(&[]));
        let centre = loss();
        let p = Perturbation::new(&vs).unwrap();
        let dirs = p.directions(7, 2);
        let (alpha, beta) = (0.3, -0.2);
        p.set(&[(alpha, &dirs[0]), (beta, &dirs[1])]);
        let ours = loss();
        p.restore();
        assert!((ours - centre).abs() > 1e-3, "{name}: the point must be off the centre's loss ({centre})");

        let exported = dir.join(format!("{name}.directions.safetensors"));
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (k, d) in ["d1", "d2"].iter().zip(&dirs) {
            named.extend(p.full(d).into_iter().map(|(n, t)| (format!("{k}.{n}"), t)));
        }
        Tensor::write_safetensors(&named, &exported).unwrap();
        let out = dir.join(format!("{name}.landscape.safetensors"));
        let o = Command::new(&py)
            .arg(script("pytorch_landscape.py"))
            .args([&path, &exported])
            .args([alpha.to_string(), beta.to_string()])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let theirs = checkpoint::read(&out).unwrap();
        let their_loss = theirs.tensors["loss"].double_value(&[0]);
        assert!(
            (ours - their_loss).abs() <= 1e-4 * their_loss.abs().max(1.0),
            "{name}: ours {ours}, PyTorch {their_loss}"
        );
        // Only convolution and linear weights move.
        for moved in theirs.metadata["moved"].split(',') {
            assert!(moved.ends_with("weight") && !moved.contains("bn"), "{name}: {moved} moved");
        }
    }
}
