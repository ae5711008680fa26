//! Interrupted runs resume exactly. A reference run trains uninterrupted; other runs are
//! killed with SIGKILL at chosen points (after a step, inside a checkpoint write, twice in
//! one run) or stopped with SIGINT/SIGTERM/SIGUSR1 while held at an exact step, then resumed with `--resume` until done. On
//! CPU with `--threads 1` and a fixed seed the final weights, momentum buffers and BN
//! statistics must be bitwise equal to the reference, and `metrics.csv` must hold the same
//! rows (timing columns aside), none duplicated or missing, and the TensorBoard event file
//! the same scalars (timings aside), read by TensorBoard's own reader.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use resnet_cifar::checkpoint;

mod common;

fn data_dir() -> &'static Path {
    common::shared_data_dir()
}

/// 3 epochs of 7 iterations, a mid-epoch checkpoint every 3 iterations.
fn train_args(out: &Path) -> Vec<String> {
    let mut a: Vec<String> = "train --depth 8 --epochs 3 --limit-train 512 --limit-test 128 --batch-size 64 \
         --threads 1 --save-every 3 --seed 4 --device cpu --val-split 64 --log-every 2"
        .split_whitespace()
        .map(String::from)
        .collect();
    a.extend(["--data-dir".into(), data_dir().display().to_string(), "--out".into(), out.display().to_string()]);
    a
}

fn spawn(args: &[String], pause: Option<&str>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_resnet-cifar"));
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some(p) = pause {
        c.env("RESNET_CIFAR_TEST_PAUSE", p);
    }
    c.spawn().unwrap()
}

/// Runs until the pause point is reached, then SIGKILLs the process.
fn run_and_kill_at(args: &[String], pause: &str) {
    let mut child = spawn(args, Some(pause));
    let stderr = child.stderr.take().unwrap();
    let reached = BufReader::new(stderr).lines().map_while(Result::ok).any(|l| l.starts_with("FAULT-PAUSE"));
    assert!(reached, "the run ended before reaching {pause}");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn run_to_end(args: &[String]) {
    let out = spawn(args, None).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn resume_args(out: &Path) -> Vec<String> {
    vec!["train".into(), "--resume".into(), out.display().to_string(), "--threads".into(), "1".into()]
}

fn reference() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ref");
        run_to_end(&train_args(&out));
        (tmp, out)
    })
    .1
}

/// metrics.csv without the timing columns.
fn rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [&f[..7], &f[9..]].concat().join(",")
        })
        .collect()
}

fn assert_same_as_reference(out: &Path, what: &str) {
    let reference = reference();
    for name in ["last.safetensors", "best.safetensors"] {
        let a = checkpoint::read(&reference.join(name)).unwrap();
        let b = checkpoint::read(&out.join(name)).unwrap();
        assert_eq!(a.tensors.len(), b.tensors.len(), "{what}: {name}");
        for (k, t) in &a.tensors {
            assert!(t.equal(&b.tensors[k]), "{what}: {name} tensor {k} differs from the uninterrupted run");
        }
    }
    assert_eq!(rows(out), rows(reference), "{what}: metrics.csv rows");
    assert_eq!(scalars(out), scalars(reference), "{what}: TensorBoard scalars");
}

/// Every TensorBoard scalar but the timings, as TensorBoard's own reader reads them.
fn scalars(dir: &Path) -> serde_json::Value {
    let mut events = common::tensorboard_events(dir);
    let scalars = events["scalars"].as_object_mut().unwrap();
    scalars.retain(|tag, _| !tag.starts_with("speed/"));
    assert!(scalars.contains_key("train_step/loss") && scalars.contains_key("error/test"));
    serde_json::Value::Object(scalars.clone())
}

#[test]
fn killed_runs_resume_bitwise_equal() {
    common::require_fault_injection();
    let tmp = tempfile::tempdir().unwrap();
    // Each scenario: the kill points of the first run and then of successive resumes.
    // 448 training images (64 held out) at batch 64: 7 iterations an epoch, 21 in all.
    // Checkpoints in a fresh run: 1 and 2 mid-epoch (iterations 3, 6), 3 = epoch 1's
    // last.safetensors (its CSV row already written), 4 = its best.safetensors, …
    let scenarios: &[&[&str]] = &[
        &["iteration:1"], // before the first checkpoint: nothing to resume (below)
        &["iteration:5"], // between mid-epoch checkpoints
        &["iteration:7"], // end of epoch 1, before its evaluation and CSV row
        &["checkpoint:1"],
        &["checkpoint:3"],
        &["checkpoint:4"],
        &["iteration:13", "iteration:20"], // killed again after resuming
        &["checkpoint:2", "checkpoint:3", "iteration:19"],
    ];
    let mut kills = 0;
    for (i, points) in scenarios.iter().enumerate() {
        let out = tmp.path().join(format!("run{i}"));
        run_and_kill_at(&train_args(&out), points[0]);
        kills += 1;
        if !out.join("last.safetensors").exists() {
            // Killed before its first checkpoint was in place: --resume refuses in one line
            // (never a silent restart) and changes nothing; training again from scratch
            // then gives the uninterrupted run.
            let config = std::fs::read(out.join("config.json")).unwrap();
            let o = spawn(&resume_args(&out), None).wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            let refused = !o.status.success() && stderr.lines().count() == 1;
            assert!(refused && stderr.contains("has no last.safetensors"), "{points:?}: {stderr}");
            assert_eq!(std::fs::read(out.join("config.json")).unwrap(), config);
            std::fs::remove_dir_all(&out).unwrap();
            run_and_kill_at(&train_args(&out), "iteration:5");
            kills += 1;
        }
        for p in &points[1..] {
            run_and_kill_at(&resume_args(&out), p);
            kills += 1;
        }
        run_to_end(&resume_args(&out));
        assert_same_as_reference(&out, &format!("killed at {points:?}"));
    }
    eprintln!("{kills} kills at {} scenarios: all resumed bitwise equal", scenarios.len());
}

#[test]
fn sigint_sigterm_and_sigusr1_checkpoint_and_exit_130_143_and_138() {
    common::require_fault_injection();
    let tmp = tempfile::tempdir().unwrap();
    for (sig, code, at) in [(libc::SIGINT, 130, 10), (libc::SIGTERM, 143, 5), (libc::SIGUSR1, 138, 7)] {
        let out = tmp.path().join(format!("sig{sig}"));
        // Held after step `at` (before the end of the run) until the signal arrives.
        let mut child = spawn(&train_args(&out), Some(&format!("iteration:{at}")));
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
        assert!(lines.any(|l| l == format!("FAULT-PAUSE iteration:{at}")), "the run never reached iteration {at}");
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let status = child.wait().unwrap();
        let stderr: String = lines.collect::<Vec<_>>().join("\n");
        let ckpt = checkpoint::read(&out.join("last.safetensors")).unwrap();
        assert_eq!(ckpt.metadata["iteration"], at.to_string(), "the checkpoint is the held step's");
        assert_eq!(status.code(), Some(code), "{stderr}");
        assert!(stderr.contains("--resume"), "{stderr}");
        run_to_end(&resume_args(&out));
        assert_same_as_reference(&out, &format!("signal {sig}"));
    }
}

/// Data that has moved since the run started: `--resume --data-dir NEW` reads it there
/// (the one setting besides `--threads` and `--device` that a resume may change), and the
/// run still ends bitwise equal to the uninterrupted one; without the flag, the old
/// directory's absence is a one-line error.
#[test]
fn a_run_whose_data_moved_resumes_with_data_dir() {
    common::require_fault_injection();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("moved");
    run_and_kill_at(&train_args(&out), "iteration:5");
    let config = out.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let gone = tmp.path().join("gone");
    let moved = text.replace(&format!("\"{}\"", data_dir().display()), &format!("\"{}\"", gone.display()));
    assert_ne!(moved, text, "config.json records the data directory");
    std::fs::write(&config, moved).unwrap();
    let o = spawn(&resume_args(&out), None).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.lines().count() == 1 && stderr.contains("gone"), "{stderr}");
    let new = tmp.path().join("new-place");
    common::link_data(&new);
    let mut args = resume_args(&out);
    args.extend(["--data-dir".into(), new.display().to_string()]);
    run_to_end(&args);
    assert_same_as_reference(&out, "data moved");
}
