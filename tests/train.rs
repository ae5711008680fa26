//! The training loop on a small synthetic data set: the loss falls, the run directory is
//! complete, checkpoints reload exactly and refuse the wrong architecture.

use std::path::Path;

use resnet_cifar::checkpoint;
use resnet_cifar::data::{self, Cifar};
use resnet_cifar::evaluate::evaluate;
use resnet_cifar::model::{ResNet, ResNetConfig};
use resnet_cifar::train::config::{Machine, Output, Schedule};
use resnet_cifar::train::{run_with_data, TrainConfig};
use tch::nn::VarStore;
use tch::Device;

fn tiny_config(out: &Path, epochs: i64) -> TrainConfig {
    TrainConfig {
        model: ResNetConfig { depth: 8, ..Default::default() },
        schedule: Schedule { epochs, batch_size: 64, ..Default::default() },
        output: Output { dir: out.to_path_buf(), ..Default::default() },
        machine: Machine { threads: Some(2), quiet: true, ..Default::default() },
        seed: 7,
        ..Default::default()
    }
}

/// `cfg` changed by `f`.
fn with(cfg: &TrainConfig, f: impl FnOnce(&mut TrainConfig)) -> TrainConfig {
    let mut cfg = cfg.clone();
    f(&mut cfg);
    cfg
}

fn synthetic() -> Cifar {
    data::synthetic(768, 256, 11)
}

#[test]
fn a_short_run_lowers_the_loss_and_writes_one_row_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let summary = run_with_data(&tiny_config(&out, 4), &synthetic()).unwrap();
    assert_eq!(summary.epochs.len(), 4);
    let first = &summary.epochs[0];
    let last = summary.last();
    assert!(last.train_loss < 0.7 * first.train_loss, "loss {} → {}", first.train_loss, last.train_loss);
    assert!(last.test_err < 50.0, "test error {}", last.test_err);
    assert_eq!(last.iteration, 4 * 12);

    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "epoch,iteration,lr,train_loss,train_err,test_loss,test_err,epoch_seconds,images_per_sec");
    assert_eq!(lines.len(), 5);
    assert!(lines[4].starts_with("4,48,"));
    // The rate used in each epoch: divided by 10 at 50 % (iteration 24) and 75 % (36).
    let lrs: Vec<&str> = lines[1..].iter().map(|l| l.split(',').nth(2).unwrap()).collect();
    assert_eq!(lrs, ["0.1", "0.1", "0.01", "0.001"]);
    for f in ["config.json", "last.safetensors", "best.safetensors"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["depth"], 8);
    assert_eq!(config["outcome"]["lr_milestones"], serde_json::json!([24, 36]));
}

#[test]
fn checkpoints_reload_exactly_and_refuse_another_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cfg = tiny_config(&out, 1);
    let data = synthetic();
    let summary = run_with_data(&cfg, &data).unwrap();

    let ckpt = checkpoint::read(&out.join("last.safetensors")).unwrap();
    assert_eq!(ckpt.metadata["arch"], "resnet");
    assert_eq!(ckpt.metadata["depth"], "8");
    assert_eq!(ckpt.metadata["normalization"], "pixel-mean");
    assert_eq!(ckpt.tensors[checkpoint::NORM_MEAN].size(), [3, 32, 32]);
    let model_cfg = ckpt.model_config().unwrap();
    assert_eq!(model_cfg, cfg.model);

    let mut vs = VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), model_cfg).unwrap();
    ckpt.load_into(&mut vs).unwrap();
    let normalizer = ckpt.normalizer().unwrap().unwrap();
    let eval = evaluate(&model, &data.test, &normalizer);
    assert!((eval.error - summary.last().test_err).abs() < 1e-9);
    assert!((eval.loss - summary.last().test_loss).abs() < 1e-5);

    let mut vs20 = VarStore::new(Device::Cpu);
    let _ = ResNet::new(&vs20.root(), ResNetConfig::default()).unwrap();
    let err = ckpt.load_into(&mut vs20).unwrap_err().to_string();
    assert!(err.contains("last.safetensors") && err.contains("missing") && err.contains("layer1.1."), "{err}");
}

#[test]
fn validation_split_adds_columns_and_selects_best() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cfg = with(&tiny_config(&out, 2), |c| c.data.val_split = 128);
    run_with_data(&cfg, &synthetic()).unwrap();
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",val_loss,val_err"));
    assert_eq!(csv.lines().nth(1).unwrap().split(',').count(), 11);
}

#[test]
fn refuses_to_train_into_an_existing_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cfg = tiny_config(&out, 1);
    run_with_data(&cfg, &synthetic()).unwrap();
    let before = std::fs::read(out.join("metrics.csv")).unwrap();
    let err = run_with_data(&cfg, &synthetic()).unwrap_err().to_string();
    assert!(err.contains("already holds a run"), "{err}");
    assert_eq!(std::fs::read(out.join("metrics.csv")).unwrap(), before, "nothing overwritten");
}

#[test]
fn invalid_settings_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny_config(&dir.path().join("run"), 1);
    let cases = [
        (with(&base, |c| c.schedule.batch_size = 0), "`schedule.batch_size` is 0"),
        (with(&base, |c| c.schedule.lr = -0.1), "`schedule.lr` is -0.1"),
        (with(&base, |c| c.schedule.epochs = 0), "`schedule.epochs` is 0"),
        (TrainConfig { model: ResNetConfig { depth: 21, ..Default::default() }, ..base.clone() }, "6n+2"),
    ];
    for (cfg, needle) in cases {
        let err = run_with_data(&cfg, &synthetic()).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    assert!(!dir.path().join("run").exists());
}

#[test]
fn log_grad_norms_adds_four_positive_columns() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cfg = with(&tiny_config(&out, 1), |c| c.output.log_grad_norms = true);
    let summary = run_with_data(&cfg, &synthetic()).unwrap();
    let norms = summary.last().grad_norms.clone().unwrap();
    assert_eq!(norms.len(), 4);
    assert!(norms.iter().all(|g| g.is_finite() && *g > 0.0), "{norms:?}");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with(",grad_norm_input,grad_norm_stage1,grad_norm_stage2,grad_norm_stage3"));
    assert_eq!(csv.lines().nth(1).unwrap().split(',').count(), 13);
}

/// The GPU's way of reading the loss (only at epoch ends and checkpoints), driven on the
/// CPU: a run that diverges between two mid-epoch checkpoints never writes a non-finite
/// model, and what is on disk loads, finite, with a training state that parses.
#[test]
fn a_diverged_model_is_never_checkpointed_when_the_loss_is_read_only_at_saves() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cfg = with(&tiny_config(&out, 2), |c| {
        (c.schedule.lr, c.output.save_every, c.machine.read_every_step) = (1e12, 1, Some(false));
    });
    let err = run_with_data(&cfg, &synthetic()).unwrap_err().to_string();
    assert!(err.contains("diverged") && err.contains("iteration"), "{err}");
    assert!(err.contains("intact"), "{err}");
    let last = out.join("last.safetensors");
    if last.exists() {
        let ckpt = checkpoint::read(&last).unwrap();
        for (name, t) in &ckpt.tensors {
            let finite = t.isfinite().all().int64_value(&[]) == 1;
            assert!(finite, "{name} is not finite in the checkpoint");
        }
        let state = &ckpt.metadata["train_state"];
        assert!(!state.contains("null") || state.contains("\"best_val\":null"), "{state}");
        resnet_cifar::train::resume::progress_of(&ckpt).unwrap();
    }
}
