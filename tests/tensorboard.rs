//! Every run directory gets a TensorBoard event file, read here by TensorBoard's own
//! `EventAccumulator` (tests/tensorboard/read_events.py): every per-epoch scalar equals
//! `metrics.csv`, the step losses come every `--log-every` iterations, the configuration is
//! a text summary, histograms come with `--log-histograms`, and `--no-tensorboard` writes
//! none. (tests/resume.rs checks that a resumed run's stream equals an uninterrupted one's.)

use std::path::Path;
use std::process::Command;

use resnet_cifar::metrics;
use resnet_cifar::tensorboard::event_files;
use serde_json::Value;

mod common;

fn train(out: &Path, extra: &[&str]) {
    let data = common::shared_data_dir().display().to_string();
    let out_s = out.display().to_string();
    let mut args = vec![
        "train",
        "--depth",
        "8",
        "--epochs",
        "3",
        "--limit-train",
        "512",
        "--limit-test",
        "128",
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--data-dir",
        &data,
        "--out",
        &out_s,
    ];
    args.extend(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_resnet-cifar")).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The (step, value) points of `tag`.
fn points(events: &Value, tag: &str) -> Vec<(i64, f64)> {
    let Some(series) = events["scalars"][tag].as_array() else { panic!("no scalar {tag} in the event file") };
    series.iter().map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap())).collect()
}

/// Whether an f32 from the event file equals a metrics.csv value written with `decimals`.
fn close(event: f64, csv: f64, decimals: i32) -> bool {
    (event - csv).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-6 * csv.abs()
}

#[test]
fn every_scalar_equals_metrics_csv_in_tensorboards_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run, &["--val-split", "64", "--log-every", "2", "--log-grad-norms", "--log-histograms"]);
    assert_eq!(event_files(&run).unwrap().len(), 1, "one event file per run");
    let events = common::tensorboard_events(&run);
    let rows = metrics::read(&run.join("metrics.csv")).unwrap();
    assert_eq!(rows.len(), 3);
    type Column = fn(&metrics::EpochMetrics) -> f64;
    let columns: [(&str, Column, i32); 11] = [
        ("loss/train", |r| r.train_loss, 6),
        ("error/train", |r| r.train_err, 4),
        ("loss/test", |r| r.test_loss, 6),
        ("error/test", |r| r.test_err, 4),
        ("loss/val", |r| r.val.unwrap().0, 6),
        ("error/val", |r| r.val.unwrap().1, 4),
        ("optim/lr", |r| r.lr, 9),
        ("speed/images_per_sec", |r| r.images_per_sec, 1),
        ("speed/epoch_seconds", |r| r.epoch_seconds, 3),
        ("grad_norm/input", |r| r.grad_norms.as_ref().unwrap()[0], 9),
        ("grad_norm/stage3", |r| r.grad_norms.as_ref().unwrap()[3], 9),
    ];
    for (tag, column, decimals) in columns {
        let got = points(&events, tag);
        assert_eq!(got.len(), rows.len(), "{tag}: one point per epoch");
        for ((step, v), row) in got.iter().zip(&rows) {
            assert_eq!(*step, row.iteration, "{tag}: logged at the epoch's last iteration");
            assert!(close(*v, column(row), decimals), "{tag} at {step}: event file {v}, metrics.csv {}", column(row));
        }
    }
    // 448 images (64 held out) at batch 64: 7 iterations an epoch, 21 in all; the step
    // loss and lr every 2nd iteration.
    assert_eq!(rows[2].iteration, 21);
    let steps: Vec<i64> = points(&events, "train_step/loss").iter().map(|p| p.0).collect();
    assert_eq!(steps, (1..=10).map(|i| 2 * i).collect::<Vec<_>>());
    for (step, lr) in points(&events, "train_step/lr") {
        assert!(lr > 0.0 && lr <= 0.1 + 1e-7, "lr {lr} at {step}");
    }
    let text = &events["text"]["config"][0];
    assert_eq!(text[0], 0);
    assert!(text[1].as_str().unwrap().contains("\"depth\": 8"), "the config text summary: {text}");
    let histograms = events["histograms"].as_object().unwrap();
    let conv = &histograms["weights/conv1.weight"];
    assert_eq!(conv.as_array().unwrap().len(), 3, "one histogram per epoch");
    // 16 filters of 3×3×3: every value in a bucket.
    assert_eq!(conv[0][1], 432.0);
    assert_eq!(conv[0][4], 432.0);
    // conv1, bn1 (weight, bias, running mean and var), 3 blocks of 2 convs and 2 BNs, linear.
    assert_eq!(histograms.len(), 1 + 4 + 3 * (2 + 2 * 4) + 2, "every weight and BN statistic of resnet-8");
}

#[test]
fn no_tensorboard_writes_no_event_file_and_the_default_logs_per_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let off = tmp.path().join("off");
    train(&off, &["--no-tensorboard"]);
    assert!(event_files(&off).unwrap().is_empty());
    assert!(off.join("metrics.csv").exists());
    // No step logs with --log-every 0, and no histograms by default.
    let on = tmp.path().join("on");
    train(&on, &["--log-every", "0"]);
    let events = common::tensorboard_events(&on);
    assert!(events["scalars"].get("train_step/loss").is_none());
    assert_eq!(points(&events, "error/test").len(), 3);
    assert!(events["histograms"].as_object().unwrap().is_empty());
}
