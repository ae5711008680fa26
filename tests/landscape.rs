//! Loss landscapes (Li et al. 2018): filter-normalised, seeded directions; a sweep that
//! leaves the weights bit for bit as they were; a centre that is `eval`'s number; shards
//! that give the same table as one process. (The PyTorch check of an off-centre point is in
//! tests/conformance.rs.)

mod common;

use std::path::Path;
use std::process::Command;

use resnet_cifar::data;
use resnet_cifar::evaluate::evaluate;
use resnet_cifar::landscape::{sweep, Dims, Grid, Measure, Perturbation};
use resnet_cifar::model::{Arch, ResNet, ResNetConfig, Shortcut};
use resnet_cifar::normalize::{Normalization, Normalizer};
use tch::nn::VarStore;
use tch::{Device, Tensor};

fn model(arch: Arch, shortcut: Shortcut) -> (VarStore, ResNet) {
    tch::manual_seed(11);
    let vs = VarStore::new(Device::Cpu);
    let cfg = ResNetConfig { depth: 8, arch, shortcut, ..Default::default() };
    let m = ResNet::new(&vs.root(), cfg).unwrap();
    (vs, m)
}

fn snapshot(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn every_filter_of_a_direction_has_the_weights_filter_norm_and_bn_and_biases_stay() {
    for (arch, shortcut) in [(Arch::Resnet, Shortcut::B), (Arch::Plain, Shortcut::A)] {
        let (vs, _) = model(arch, shortcut);
        let p = Perturbation::new(&vs).unwrap();
        let vars = vs.variables();
        let names: Vec<String> = p.names().map(String::from).collect();
        assert!(names.iter().any(|n| n == "linear.weight") && names.iter().any(|n| n == "conv1.weight"), "{names:?}");
        for d in p.directions(3, 2) {
            for (name, t) in names.iter().zip(&d.0) {
                let w = &vars[name];
                assert_eq!(t.size(), w.size(), "{name}");
                let norms = |x: &Tensor| {
                    Vec::<f64>::try_from(x.flatten(1, -1).norm_scalaropt_dim(2, [1i64].as_slice(), false)).unwrap()
                };
                for (i, (a, b)) in norms(t).iter().zip(norms(w)).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * b, "{name} filter {i}: direction norm {a}, weight norm {b}");
                }
            }
            for (name, t) in p.full(&d) {
                let moved = names.contains(&name);
                let zero = t.abs().max().double_value(&[]) == 0.0;
                assert_eq!(moved, !zero, "{name}: only convolution and linear weights move");
                if name.contains("bn") || name.ends_with("bias") || name.contains("running") {
                    assert!(zero, "{name} must get a zero direction");
                }
            }
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_directions() {
    let (vs, _) = model(Arch::Resnet, Shortcut::A);
    let p = Perturbation::new(&vs).unwrap();
    let (a, b, c) = (p.directions(5, 2), p.directions(5, 2), p.directions(6, 2));
    for (x, y) in a.iter().flat_map(|d| &d.0).zip(b.iter().flat_map(|d| &d.0)) {
        assert!(x.equal(y));
    }
    assert!(!a[0].0[0].equal(&c[0].0[0]), "another seed, other directions");
    assert!(!a[0].0[0].equal(&a[1].0[0]), "d1 and d2 differ");
}

#[test]
fn a_sweep_restores_the_weights_bit_for_bit_and_its_centre_is_evaluate() {
    let (vs, m) = model(Arch::Resnet, Shortcut::A);
    let synth = data::synthetic(64, 64, 3);
    let normalizer = Normalizer::fit(Normalization::Channel, &synth.train.images);
    let before = snapshot(&vs);
    let grid = Grid { dims: Dims::Two, points: 5, range: 1.0 };
    let p = Perturbation::new(&vs).unwrap();
    let dirs = p.directions(1, 2);
    let mut seen = 0;
    let on = Measure { model: &m, images: &synth.test, normalizer: &normalizer };
    let points = sweep(on, &p, (&dirs[0], Some(&dirs[1])), &grid.points(), |_| seen += 1);
    assert_eq!(seen, 25);
    for ((n, a), (_, b)) in before.iter().zip(snapshot(&vs)) {
        assert!(a.equal(&b), "{n} changed after the sweep");
    }
    let centre = points.iter().find(|q| q.alpha == 0.0 && q.beta == 0.0).unwrap();
    let e = evaluate(&m, &synth.test, &normalizer);
    assert_eq!((centre.loss, centre.err), (e.loss, e.error), "the centre is exactly evaluate()'s");
    assert!(points.iter().any(|q| q.loss > 1.5 * centre.loss), "the corners are off the minimum's loss");
    // Dropping the perturbation restores too, even mid-sweep.
    p.set(&[(0.7, &dirs[0])]);
    drop(p);
    for ((n, a), (_, b)) in before.iter().zip(snapshot(&vs)) {
        assert!(a.equal(&b), "{n} not restored on drop");
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_resnet-cifar"))
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A small trained checkpoint on the synthetic data.
fn trained(dir: &Path) -> std::path::PathBuf {
    common::link_data(&dir.join("data"));
    let out = dir.join("run");
    run(bin()
        .args(["train", "--depth", "8", "--epochs", "1", "--batch-size", "64", "--limit-train", "512"])
        .args(["--limit-test", "128", "--device", "cpu", "--threads", "1", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--out")
        .arg(&out));
    out.join("best.safetensors")
}

#[test]
fn the_cli_centre_is_evals_number_and_shards_give_the_same_table() {
    let tmp = tempfile::tempdir().unwrap();
    let w = trained(tmp.path());
    let data = tmp.path().join("data");
    let landscape = |out: &str, extra: &[&str]| {
        let csv = tmp.path().join(out);
        run(bin()
            .args(["landscape", "--grid", "5", "--images", "96", "--split", "test", "--device", "cpu", "--quiet"])
            .args(["--threads", "1"])
            .args(extra)
            .arg("--weights")
            .arg(&w)
            .arg("--data-dir")
            .arg(&data)
            .arg("-o")
            .arg(&csv));
        csv
    };
    let one = landscape("one.csv", &[]);
    let sharded = landscape("sharded.csv", &["--jobs", "3"]);
    let table = std::fs::read_to_string(&one).unwrap();
    assert_eq!(table, std::fs::read_to_string(&sharded).unwrap(), "3 shards, the same table as 1 process");
    assert_eq!(table.lines().count(), 26);
    assert_eq!(table.lines().next(), Some("model,alpha,beta,loss,err"));
    assert!(std::fs::metadata(tmp.path().join("one.png")).unwrap().len() > 1000);
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".shard-")),
        "shard files removed"
    );
    let centre: Vec<f64> =
        table.lines().find(|l| l.contains(",0,0,")).unwrap().split(',').skip(3).map(|v| v.parse().unwrap()).collect();
    let eval: serde_json::Value = serde_json::from_str(
        run(bin()
            .args(["eval", "--json", "--device", "cpu", "--limit-test", "96", "--weights"])
            .arg(&w)
            .arg("--data-dir")
            .arg(&data))
        .trim(),
    )
    .unwrap();
    let (loss, err) = (eval["loss"].as_f64().unwrap(), eval["top1_error"].as_f64().unwrap());
    assert!((centre[0] - loss).abs() <= 1e-5 * loss.max(1.0), "centre loss {} vs eval {loss}", centre[0]);
    assert!((centre[1] - err).abs() < 1e-9, "centre error {} vs eval {err}", centre[1]);

    // 1-D, with probes: a curve figure and the summary table.
    let line = landscape("line.csv", &["--dims", "1", "--probes", "3"]);
    assert_eq!(std::fs::read_to_string(&line).unwrap().lines().count(), 6);
    let summary = std::fs::read_to_string(tmp.path().join("line-summary.csv")).unwrap();
    assert!(
        summary.starts_with("model,centre_loss") && summary.lines().nth(1).unwrap().contains(",3,0.5,"),
        "{summary}"
    );

    // Tables drawn together again; a line and a plane do not mix.
    let both = tmp.path().join("both.csv");
    run(bin().args(["landscape", "--from"]).arg(&one).arg("--from").arg(&sharded).arg("-o").arg(&both));
    assert_eq!(std::fs::read_to_string(&both).unwrap().lines().count(), 51);
    assert!(tmp.path().join("both.png").exists());
    let o =
        bin().args(["landscape", "--from"]).arg(&one).arg("--from").arg(&line).arg("-o").arg(&both).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("1-D and 2-D") && err.lines().count() == 1, "{err}");

    // Bad flags: one line, non-zero exit.
    for (args, needle) in [(vec!["--range", "-1"], "positive"), (vec!["--dims", "3"], "dims")] {
        let o = bin().arg("landscape").args(&args).arg("--weights").arg(&w).args(["-o", "x.csv"]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle), "{args:?}: {err}");
    }
}
