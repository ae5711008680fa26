//! The `plain_vs_residual` example end to end on a tiny synthetic data set: the table and
//! figures, then a rerun that skips finished runs, then a rerun after an interruption.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use resnet_cifar::data;

/// The example binary in `target/<profile>/examples/` (the tests live in
/// `target/<profile>/deps/`). `cargo test` builds examples only when no target is named,
/// so it is brought up to date here with the cargo that built this test, once.
fn example_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let name = format!("plain_vs_residual{}", std::env::consts::EXE_SUFFIX);
        let bin = profile_dir.join("examples").join(name);
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(p) => p,
        };
        let built = Command::new(env!("CARGO"))
            .args(["build", "--example", "plain_vs_residual", "--profile", profile])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status();
        assert!(
            built.is_ok_and(|s| s.success()) && bin.is_file(),
            "{} is missing and could not be built: run `cargo build --release --example \
             plain_vs_residual` first",
            bin.display()
        );
        bin
    })
    .clone()
}

/// A data directory in the official layout, filled with synthetic images.
fn synthetic_data_dir(dir: &Path) {
    let synth = data::synthetic(10_000, 0, 5);
    for name in data::TRAIN_FILES.iter().chain([&data::TEST_FILE]) {
        data::write_batch_file(&dir.join(name), &synth.train).unwrap();
    }
}

fn run(data: &Path, out: &Path, depths: &str, epochs: &str) -> Output {
    Command::new(example_bin())
        .args(["--depths", depths, "--epochs", epochs, "--limit-train", "256"])
        .args(["--limit-test", "128", "--batch-size", "64"])
        .args(["--device", "cpu", "--threads", "2", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// Runs the example and returns its stdout, failing with both streams if it fails.
fn run_ok(data: &Path, out: &Path) -> String {
    let o = run(data, out, "8", "1");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    stdout
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn trains_tabulates_plots_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    synthetic_data_dir(&data_dir);
    let out = tmp.path().join("out");
    let csv = |run: &str| out.join(run).join("metrics.csv");

    // First run: both networks train.
    let stdout = run_ok(&data_dir, &out);
    assert!(stdout.contains("training plain-8") && stdout.contains("training resnet-8"), "{stdout}");
    let md = String::from_utf8(read(&out.join("results.md"))).unwrap();
    assert!(md.contains("| run | depth | params |"), "{md}");
    assert!(md.contains("limit-train 256") && md.contains("batch size 64"), "{md}");
    for run in ["plain-8", "resnet-8"] {
        let row = md.lines().find(|l| l.starts_with(&format!("| {run} | 8 |")));
        assert!(row.is_some_and(|r| r.ends_with("| cpu |")), "{run}: {md}");
        assert_eq!(read(&csv(run)).iter().filter(|&&b| b == b'\n').count(), 2);
    }
    let json: serde_json::Value = serde_json::from_slice(&read(&out.join("results.json"))).unwrap();
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(2), "{json}");
    assert!(json["runs"][1]["params"].as_i64().unwrap() > 0, "{json}");
    for fig in ["plain.png", "resnet.png", "both.png"] {
        let png = read(&out.join(fig));
        assert!(png.starts_with(b"\x89PNG") && png.len() > 1000, "{fig}");
    }

    // Second run: nothing to train, both runs read back unchanged.
    let before = (read(&csv("plain-8")), read(&csv("resnet-8")));
    let stdout = run_ok(&data_dir, &out);
    for run in ["plain-8", "resnet-8"] {
        assert!(stdout.contains(&format!("skipping {run}: finished")), "{stdout}");
        assert!(!stdout.contains(&format!("training {run}")), "{stdout}");
    }
    assert_eq!(before, (read(&csv("plain-8")), read(&csv("resnet-8"))));
    let md2 = String::from_utf8(read(&out.join("results.md"))).unwrap();
    assert!(md2.contains("| plain-8 | 8 |") && md2.contains("| resnet-8 | 8 |"), "{md2}");

    // Other settings over finished runs: refused in one line, nothing touched.
    let o = run(&data_dir, &out, "8", "2");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("epochs"), "{stderr}");
    assert_eq!(before, (read(&csv("plain-8")), read(&csv("resnet-8"))));

    // An interrupted run (header only) is deleted and trained again; the other is kept.
    let text = String::from_utf8(before.0.clone()).unwrap();
    let header = text.lines().next().unwrap();
    std::fs::write(csv("plain-8"), format!("{header}\n")).unwrap();
    let stdout = run_ok(&data_dir, &out);
    assert!(!stdout.contains("skipping plain-8"), "{stdout}");
    assert!(stdout.contains("training plain-8"), "{stdout}");
    assert!(stdout.contains("skipping resnet-8: finished"), "{stdout}");
    assert_eq!(read(&csv("plain-8")).iter().filter(|&&b| b == b'\n').count(), 2);
    assert_eq!(before.1, read(&csv("resnet-8")));
}

#[test]
fn bad_depth_is_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(tmp.path(), &tmp.path().join("out"), "8,21", "1");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("6n+2"), "{stderr}");
    assert!(!tmp.path().join("out").exists());
}
