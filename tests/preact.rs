//! The pre-activation networks (He et al. 2016) through every command: train, eval,
//! grad-flow and responses on the trained checkpoint, and summary.

use std::process::Command;

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_resnet-cifar"))
}

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{cmd:?}\n{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    stdout
}

#[test]
fn a_bottleneck_preact_run_trains_evaluates_and_is_analysed() {
    let tmp = tempfile::tempdir().unwrap();
    common::link_data(tmp.path());
    let run = tmp.path().join("run");
    // Depth 11 = 9·1+2: one bottleneck block per stage.
    ok(bin()
        .args(["train", "--arch", "preact", "--depth", "11", "--block", "bottleneck", "--epochs", "1"])
        .args(["--batch-size", "64", "--limit-train", "256", "--limit-test", "128", "--device", "cpu"])
        .args(["--threads", "2", "--data-dir"])
        .arg(tmp.path())
        .arg("--out")
        .arg(&run));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (config["model"]["arch"].as_str(), config["model"]["block"].as_str()),
        (Some("preact"), Some("bottleneck"))
    );
    let best = run.join("best.safetensors");
    let ckpt = resnet_cifar::checkpoint::read(&best).unwrap();
    assert_eq!(ckpt.metadata.get("block").map(String::as_str), Some("bottleneck"));
    assert!(ckpt.tensors.contains_key("layer3.0.downsample.0.weight") && ckpt.tensors.contains_key("fc.bias"));

    let eval = ok(bin()
        .args(["eval", "--json", "--device", "cpu", "--limit-test", "128", "--data-dir"])
        .arg(tmp.path())
        .arg("--weights")
        .arg(&best));
    let v: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    let err = v["top1_error"].as_f64();
    assert!(err.is_some_and(|e| (0.0..=100.0).contains(&e)), "{v}");

    // An analysis command on the checkpoint; returns the CSV it wrote.
    let analyse = |args: &[&str], name: &str| {
        let csv = tmp.path().join(name);
        let mut cmd = bin();
        cmd.args(args).args(["--device", "cpu", "--data-dir"]).arg(tmp.path()).arg("--weights").arg(&best);
        ok(cmd.arg("-o").arg(&csv));
        std::fs::read_to_string(&csv).unwrap()
    };
    let text = analyse(&["grad-flow", "--batches", "1", "--batch-size", "32"], "flow.csv");
    assert!(text.lines().any(|l| l.starts_with("preact-11-bottleneck,") && l.contains(",layer3.0,")), "{text}");

    let text = analyse(&["responses", "--limit-test", "64"], "responses.csv");
    assert!(
        text.contains("layer2.0.conv3") && !text.contains("layer2.0.conv4"),
        "three responses per bottleneck: {text}"
    );

    let summary = ok(bin().args(["summary", "--arch", "preact", "--depth", "164"]));
    assert!(summary.contains("9·18+2") && summary.contains("total parameters: 1703258"), "{summary}");
}

#[test]
fn a_depth_that_does_not_fit_the_block_is_one_line() {
    for (args, needle) in [
        (vec!["summary", "--arch", "preact", "--depth", "165"], "9n+2"),
        (vec!["summary", "--arch", "preact", "--depth", "21", "--block", "basic"], "6n+2"),
        (
            vec!["summary", "--arch", "plain", "--depth", "164", "--block", "bottleneck"],
            "--block bottleneck: bottleneck blocks are for the 2016 pre-activation networks (preact)",
        ),
    ] {
        let o = bin().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.lines().count() == 1 && stderr.contains(needle), "{args:?}: {stderr}");
    }
}
