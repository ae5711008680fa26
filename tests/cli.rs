//! The binary end to end: a tiny training run through the CLI, and bad input answered
//! with one line on stderr, a non-zero exit and no panic.

use std::path::Path;
use std::process::Command;

use resnet_cifar::model::{Compute, Layout, Precision};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_resnet-cifar"))
}

mod common;

/// A data directory in the official layout: links to the shared synthetic images.
fn synthetic_data_dir(dir: &Path) {
    common::link_data(dir);
}

/// `resnet-cifar bench ARGS --device cpu --data-dir DATA`: its one JSON line, after
/// asserting success.
fn bench_json(args: &[&str], data: &Path) -> serde_json::Value {
    let o = bin().arg("bench").args(args).args(["--device", "cpu", "--data-dir"]).arg(data).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn seed_flags_train_without_a_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data_dir(tmp.path());
    let out = tmp.path().join("run");
    let o = bin()
        .args(["--epochs", "1", "--batch_size", "64", "--depth", "8", "--limit-train", "256", "--limit-test", "128"])
        .args(["--device", "cpu", "--threads", "2", "--data-dir"])
        .arg(tmp.path())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("epoch 1/1"), "one plain line per epoch without a terminal: {stdout}");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2);
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"batch_size\": 64"), "{config}");
}

#[test]
fn summary_prints_the_layer_table() {
    let o = bin().args(["summary", "--depth", "56", "--arch", "plain"]).output().unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("layer3.8") && s.contains("64×8×8") && s.contains("total parameters: 853018"), "{s}");
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let o = bin().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{args:?}: {stderr}");
}

#[test]
fn bad_input_gets_one_line_and_a_non_zero_exit() {
    assert_one_line_error(&["summary", "--depth", "21"], "6n+2");
    assert_one_line_error(&["train", "--depth", "21"], "6n+2");
    assert_one_line_error(&["train", "--batch-size", "0"], "--batch-size");
    assert_one_line_error(&["train", "--lr", "-0.1"], "--lr");
    assert_one_line_error(&["train", "--device", "tpu"], "unknown device");
    assert_one_line_error(&["train", "--data-dir", "/nonexistent/cifar", "--device", "cpu"], "download_cifar.sh");
    if !tch::Cuda::is_available() {
        assert_one_line_error(&["train", "--device", "cuda"], "CUDA is not available");
    }
}

#[test]
fn bench_prints_one_json_line_for_training_and_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data_dir(tmp.path());
    for (mode, precision) in [("train", "bf16"), ("eval", "fp32")] {
        let v = bench_json(
            &[
                "--mode",
                mode,
                "--precision",
                precision,
                "--depth",
                "8",
                "--batch-size",
                "32",
                "--iters",
                "2",
                "--warmup",
                "1",
                "--profile",
                "--threads",
                "2",
            ],
            tmp.path(),
        );
        assert_eq!(v["mode"], mode);
        assert_eq!(v["precision"], precision);
        assert_eq!(v["layout"], "channels-last");
        let expected_images = if mode == "train" { 2 * 32 } else { 2 * 10_000 };
        // The batch that ran: evaluation goes in batches of 500 whatever --batch-size says.
        assert_eq!(v["batch_size"], if mode == "train" { 32 } else { 500 });
        assert_eq!(v["images"], expected_images);
        assert!(v["images_per_sec"].as_f64().unwrap() > 0.0);
        assert!(v["peak_rss_mib"].as_f64().unwrap() > 10.0);
        if mode == "train" {
            let phases = &v["phases"];
            let sum: f64 =
                ["data", "forward", "backward", "optimizer"].iter().map(|p| phases[p].as_f64().unwrap()).sum();
            let seconds = v["seconds"].as_f64().unwrap();
            assert!(sum > 0.0 && sum <= seconds * 1.01, "phases {phases} within {seconds} s");
        }
    }
    assert_one_line_error(&["bench", "--iters", "0"], "--iters");
    assert_one_line_error(&["bench", "--precision", "fp8"], "fp8");
}

/// `bench --count-ops`: the top-level ATen calls of a ResNet-20 step, by part. The SGD
/// update is one call whatever the depth (fused), the parts add up to the total, and the
/// whole step stays under PyTorch eager's 244 (fp32) and 266 (bf16) calls, measured with
/// torch.profiler by bench/pytorch_train.py --count-ops.
#[test]
fn bench_counts_the_aten_calls_of_a_step() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data_dir(tmp.path());
    for (precision, pytorch) in [("fp32", 244.0), ("bf16", 266.0)] {
        let v = bench_json(
            &[
                "--count-ops",
                "--json",
                "--precision",
                precision,
                "--depth",
                "20",
                "--batch-size",
                "16",
                "--iters",
                "2",
                "--warmup",
                "1",
                "--threads",
                "1",
            ],
            tmp.path(),
        );
        let ops = &v["ops"];
        let part = |k: &str| ops[k].as_f64().unwrap_or_else(|| panic!("{k} in {ops}"));
        assert_eq!(part("optimizer"), 1.0, "{ops}");
        assert!(part("forward_backward") > 100.0, "{ops}");
        assert_eq!(part("forward_backward") + part("optimizer") + part("other"), part("ops_per_step"), "{ops}");
        assert!(part("ops_per_step") <= pytorch, "{precision}: {ops} above PyTorch eager's {pytorch}");
    }
    // The table without --json, with the calls by name.
    let o = bin()
        .args(["bench", "--count-ops", "--list-ops", "--depth", "8", "--batch-size", "8", "--iters", "1"])
        .args(["--warmup", "0", "--device", "cpu", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && stdout.contains("aten::_fused_sgd_") && stdout.contains("total"), "{stdout}");
    assert_one_line_error(
        &["bench", "--count-ops", "--mode", "eval"],
        "--mode eval: counting ATen calls needs the training step: use train",
    );
}

#[test]
fn a_bf16_run_records_its_precision_and_resumes_in_it() {
    let tmp = tempfile::tempdir().unwrap();
    synthetic_data_dir(tmp.path());
    let out = tmp.path().join("run");
    let train = |extra: &[&str]| {
        let o = bin()
            .args(["train", "--depth", "8", "--batch-size", "64", "--limit-train", "256", "--limit-test", "128"])
            .args(["--device", "cpu", "--threads", "2", "--data-dir"])
            .arg(tmp.path())
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
        stdout
    };
    let stdout = train(&["--epochs", "2", "--precision", "bf16", "--layout", "nchw", "--no-bn"]);
    assert!(stdout.contains("in bf16, nchw"), "{stdout}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["compute"]["precision"], "bf16");
    assert_eq!(config["compute"]["layout"], "nchw");
    assert_eq!(config["model"]["batch_norm"], false, "--no-bn reaches the model");
    let ckpt = resnet_cifar::checkpoint::read(&out.join("last.safetensors")).unwrap();
    assert!(ckpt.tensors.values().all(|t| t.kind() == tch::Kind::Float), "checkpoints hold fp32 tensors");
    // `--resume` takes its settings from config.json, precision and layout included.
    let resumed = resnet_cifar::train::config::config_from_run(&out).unwrap();
    assert_eq!(resumed.compute, Compute::new(Precision::Bf16, Layout::Nchw));
    assert!(!resumed.model.batch_norm);
}

/// The data set decides the classifier's classes (tests/cifar100.rs trains 100- and 20-way
/// networks and evaluates them); `summary`, which reads no data, takes any count.
#[test]
fn num_classes_comes_from_the_data_set_and_summary_takes_any() {
    let needle = "--num-classes 12: does not fit CIFAR-10, which has 10 classes: leave it out";
    assert_one_line_error(&["train", "--num-classes", "12", "--device", "cpu"], needle);
    assert_one_line_error(
        &["train", "--labels", "coarse", "--device", "cpu"],
        "--labels coarse: CIFAR-100's classes (fine or coarse), not CIFAR-10's",
    );
    let o = bin().args(["summary", "--depth", "8", "--num-classes", "100"]).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("fully connected, 100-way") && s.contains("6500"), "{s}");
}

/// `eval --weights RUN/best.safetensors` without `--data-dir`, from another directory, uses
/// the data directory that the run recorded, and says so in one line.
#[test]
fn eval_of_a_runs_checkpoint_uses_the_runs_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    synthetic_data_dir(&data);
    let run = tmp.path().join("run");
    let o = bin()
        .args(["train", "--epochs", "1", "--depth", "8", "--limit-train", "128", "--limit-test", "64"])
        .args(["--batch-size", "64", "--device", "cpu", "--threads", "1", "--no-tensorboard", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let o = bin()
        .current_dir(&elsewhere)
        .args(["eval", "--json", "--limit-test", "64", "--device", "cpu", "--weights"])
        .arg(run.join("best.safetensors"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("using the run's data directory") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let o = bin().args(["completions", shell]).output().unwrap();
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{shell}: {}", String::from_utf8_lossy(&o.stderr));
        for sub in ["train", "eval", "landscape", "report", "completions"] {
            assert!(script.contains(sub), "{shell} completions lack {sub}: {script}");
        }
        // The hidden `man` subcommand (behind `make man`) is not offered.
        assert!(!script.contains("man page") && !script.contains(",man)"), "{shell} completions offer `man`");
        assert!(script.contains("batch-size"), "{shell} completions lack train's flags");
    }
    assert_one_line_error(&["completions", "powershell"], "invalid value 'powershell'");
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let o = bin().arg("man").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(page.contains(".TH resnet-cifar 1") && page.contains(".SH SUBCOMMANDS"), "{page}");
    assert!(!page.contains("resnet\\-cifar\\-man(1)"), "the man command itself is hidden: {page}");
    for sub in ["train", "summary", "eval", "predict", "landscape", "bench", "report", "completions"] {
        assert!(page.contains(&format!("resnet\\-cifar\\-{sub}(1)")), "the page lacks {sub}: {page}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("man/resnet-cifar.1");
    let o = bin().arg("man").arg("-o").arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), page);
}

#[test]
fn version_names_tch_and_libtorch() {
    let o = bin().arg("--version").output().unwrap();
    assert!(o.status.success());
    let line = String::from_utf8_lossy(&o.stdout);
    let want = format!(
        "resnet-cifar {} (tch {}, libtorch {})\n",
        env!("CARGO_PKG_VERSION"),
        env!("TCH_VERSION"),
        env!("LIBTORCH_VERSION")
    );
    assert_eq!(line, want);
    assert!(line.contains("(tch 0.26.") && line.contains(", libtorch 2."), "{line}");
}
