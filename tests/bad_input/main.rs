//! Every bad input gets one line on stderr saying what is wrong and what to do, a non-zero
//! exit that is not a panic, within a time limit (no hang), and nothing already written is
//! lost: every file under the scratch directory is the same before and after, and a
//! failing command leaves nothing new behind, not even a run's lock file. Table-driven: each
//! case prepares its input in a scratch directory, runs the binary and checks the message;
//! the cases of the hostile-input sweep (issue #15) are in `hostile.rs`.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use resnet_cifar::data::RECORD_BYTES;
use resnet_cifar::model::{ResNet, ResNetConfig};
use resnet_cifar::{checkpoint, normalize::Normalizer};
use tch::nn::VarStore;
use tch::Device;

#[path = "../common/mod.rs"]
mod common;

use common::{tree, Entry};
mod hostile;

/// A valid data directory with synthetic images: links to the shared synthetic data set: a case that changes a file rewrites its own copy.
fn make_data(dir: &Path) {
    common::link_data(dir);
}

/// A CIFAR-100 directory whose `file` has `value` at byte `at`.
fn cifar100_with_byte(dir: &Path, file: &str, at: usize, value: u8) {
    common::link_cifar100(&dir.join("c100"));
    let p = dir.join("c100").join(file);
    let mut b = std::fs::read(&p).unwrap();
    b[at] = value;
    common::rewrite(&p, &b);
}

fn save_model(path: &Path, depth: i64) {
    let vs = VarStore::new(Device::Cpu);
    let cfg = ResNetConfig { depth, ..Default::default() };
    let _ = ResNet::new(&vs.root(), cfg).unwrap();
    checkpoint::save(path, &vs, &cfg, &Normalizer::imagenet(), Default::default()).unwrap();
}

const TINY: &str = "--depth 8 --epochs 1 --limit-train 128 --limit-test 64 --batch-size 64 --device cpu --threads 1";

pub struct Case {
    pub name: &'static str,
    /// Arguments: `{D}` is the scratch directory, `{T}` a tiny training configuration.
    pub args: &'static str,
    /// Prepares the scratch directory.
    pub setup: fn(&Path),
    pub expect: &'static str,
}

fn no_setup(_: &Path) {}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "missing data directory",
            args: "train --data-dir {D}/nope {T}",
            setup: no_setup,
            expect: "download_cifar.sh",
        },
        Case {
            name: "missing data file",
            args: "train --data-dir {D}/data {T}",
            setup: |d| {
                make_data(&d.join("data"));
                std::fs::remove_file(d.join("data/data_batch_4.bin")).unwrap();
            },
            expect: "data_batch_4.bin: missing",
        },
        Case {
            name: "truncated data file",
            args: "train --data-dir {D}/data {T}",
            setup: |d| {
                make_data(&d.join("data"));
                let p = d.join("data/data_batch_2.bin");
                let b = std::fs::read(&p).unwrap();
                common::rewrite(&p, &b[..b.len() - 5]);
            },
            expect: "data_batch_2.bin: 30729995 bytes",
        },
        Case {
            name: "oversized data file",
            args: "train --data-dir {D}/data {T}",
            setup: |d| {
                make_data(&d.join("data"));
                let p = d.join("data/test_batch.bin");
                let mut b = std::fs::read(&p).unwrap();
                b.extend_from_slice(&[0; RECORD_BYTES]);
                common::rewrite(&p, &b);
            },
            expect: "too long",
        },
        Case {
            name: "unreadable data file",
            args: "train --data-dir {D}/data {T}",
            setup: |d| {
                make_data(&d.join("data"));
                let p = d.join("data/data_batch_5.bin");
                std::fs::remove_file(&p).unwrap();
                std::fs::create_dir(&p).unwrap(); // a directory where the file should be
            },
            expect: "data_batch_5.bin",
        },
        Case {
            name: "label outside 0-9",
            args: "train --data-dir {D}/data {T}",
            setup: |d| {
                make_data(&d.join("data"));
                let p = d.join("data/data_batch_1.bin");
                let mut b = std::fs::read(&p).unwrap();
                b[42 * RECORD_BYTES] = 200;
                common::rewrite(&p, &b);
            },
            expect: "record 42 has label 200",
        },
        Case {
            name: "CIFAR-100 file of the wrong size",
            args: "train --dataset cifar100 --data-dir {D}/c100 {T}",
            setup: |d| {
                common::link_cifar100(&d.join("c100"));
                let p = d.join("c100/train.bin");
                let b = std::fs::read(&p).unwrap();
                common::rewrite(&p, &b[..1000]);
            },
            expect: "train.bin: 1000 bytes, expected 153700000 (50000 records of 3074 bytes): the file is truncated",
        },
        Case {
            name: "CIFAR-100 fine label 100",
            args: "train --dataset cifar100 --data-dir {D}/c100 {T}",
            setup: |d| cifar100_with_byte(d, "test.bin", 3 * 3074 + 1, 100),
            expect: "test.bin: record 3 has fine label 100, expected 0–99",
        },
        Case {
            name: "CIFAR-100 coarse label 20",
            args: "train --dataset cifar100 --labels fine --data-dir {D}/c100 {T}",
            setup: |d| cifar100_with_byte(d, "test.bin", 5 * 3074, 20),
            expect: "test.bin: record 5 has coarse label 20, expected 0–19",
        },
        Case {
            name: "CIFAR-100 without its class names",
            args: "train --dataset cifar100 --labels coarse --data-dir {D}/c100 {T}",
            setup: |d| {
                common::link_cifar100(&d.join("c100"));
                std::fs::remove_file(d.join("c100/coarse_label_names.txt")).unwrap();
            },
            expect: "coarse_label_names.txt: missing: the data directory is incomplete; run ./download_cifar.sh --dataset cifar100",
        },
        Case {
            name: "--labels with CIFAR-10",
            args: "train --labels coarse",
            setup: no_setup,
            expect: "--labels coarse: CIFAR-100's classes (fine or coarse), not CIFAR-10's; add --dataset cifar100",
        },
        Case {
            name: "a CIFAR-10 checkpoint on CIFAR-100",
            args: "eval --dataset cifar100 --weights {D}/m.safetensors",
            setup: |d| save_model(&d.join("m.safetensors"), 8),
            expect: "has a 10-way classifier, but CIFAR-100 (fine labels) has 100 classes",
        },
        Case { name: "depth not 6n+2", args: "train --depth 21", setup: no_setup, expect: "6n+2" },
        Case { name: "batch size 0", args: "train --batch-size 0", setup: no_setup, expect: "'0' for '--batch-size" },
        Case { name: "negative lr", args: "train --lr -0.1", setup: no_setup, expect: "--lr -0.1" },
        Case { name: "zero epochs", args: "train --epochs 0", setup: no_setup, expect: "'0' for '--epochs" },
        Case { name: "unknown device", args: "train --device tpu", setup: no_setup, expect: "unknown device" },
        Case {
            name: "validation split too large",
            args: "train --data-dir {D}/data --depth 8 --limit-train 100 --val-split 100",
            setup: |d| make_data(&d.join("data")),
            expect: "--val-split",
        },
        Case {
            name: "checkpoint of another architecture",
            args: "eval --depth 20 --weights {D}/r56.safetensors --data-dir {D}/data",
            setup: |d| save_model(&d.join("r56.safetensors"), 56),
            expect: "does not fit the model",
        },
        Case {
            name: "truncated checkpoint",
            args: "eval --weights {D}/t.safetensors",
            setup: |d| {
                save_model(&d.join("t.safetensors"), 8);
                let b = std::fs::read(d.join("t.safetensors")).unwrap();
                std::fs::write(d.join("t.safetensors"), &b[..b.len() / 3]).unwrap();
            },
            expect: "not a valid safetensors file",
        },
        Case {
            name: "corrupt checkpoint",
            args: "predict --weights {D}/c.safetensors {D}/x.png",
            setup: |d| std::fs::write(d.join("c.safetensors"), b"PK\x03\x04 a zip, not safetensors").unwrap(),
            expect: "not a valid safetensors file",
        },
        Case {
            name: "missing checkpoint",
            args: "eval --weights {D}/none.safetensors",
            setup: no_setup,
            expect: "none.safetensors",
        },
        Case {
            name: "unwritable output directory",
            args: "train --data-dir {D}/data --out {D}/file/run {T}",
            setup: |d| {
                make_data(&d.join("data"));
                std::fs::write(d.join("file"), b"a file, not a directory").unwrap();
            },
            expect: "file/run",
        },
        Case {
            name: "existing run without --resume",
            args: "train --data-dir {D}/data --out {D}/run {T}",
            setup: |d| {
                make_data(&d.join("data"));
                std::fs::create_dir(d.join("run")).unwrap();
                std::fs::write(d.join("run/metrics.csv"), "epoch\n").unwrap();
            },
            expect: "already holds a run",
        },
        Case {
            name: "a batch larger than the training set",
            args: "train --data-dir {D}/data --out {D}/run --depth 8 --epochs 1 --limit-train 128 --device cpu --batch-size 9223372036854775807",
            setup: |d| make_data(&d.join("data")),
            expect: "--batch-size 9223372036854775807: larger than the 128 training images",
        },
        Case {
            name: "an epoch count that would overflow the iteration count",
            args: "train --data-dir {D}/data --out {D}/run --depth 8 --device cpu --epochs 9223372036854775807",
            setup: |d| make_data(&d.join("data")),
            expect: "--epochs 9223372036854775807: must be 1 to 100000",
        },
        Case {
            name: "threads far above the cores",
            args: "train --data-dir {D}/data --out {D}/run --depth 8 --device cpu --threads 10000",
            setup: |d| make_data(&d.join("data")),
            expect: "--threads 10000: far above",
        },
        Case {
            name: "a non-empty directory that is not a run",
            args: "train --data-dir {D}/data --out {D}/mine {T}",
            setup: |d| {
                make_data(&d.join("data"));
                std::fs::create_dir(d.join("mine")).unwrap();
                std::fs::write(d.join("mine/notes.txt"), "the user's own file").unwrap();
            },
            expect: "is not empty and holds no run (found notes.txt)",
        },
        Case {
            name: "--resume of a run without last.safetensors",
            args: "train --resume {D}/run",
            setup: |d| {
                trained_run(d);
                std::fs::remove_file(d.join("run/last.safetensors")).unwrap();
            },
            expect: "has no last.safetensors",
        },
        Case {
            name: "a flag that --resume would ignore",
            args: "train --resume {D} --epochs 3",
            setup: no_setup,
            expect: "--epochs cannot be used with --resume",
        },
        Case {
            name: "resume where there is no run",
            args: "train --resume {D}",
            setup: no_setup,
            expect: "no run here (no config.json)",
        },
        Case {
            name: "malformed metrics.csv for plot",
            args: "plot {D}/run -o {D}/out.png",
            setup: |d| {
                std::fs::create_dir(d.join("run")).unwrap();
                std::fs::write(d.join("run/metrics.csv"), "epoch,iteration\n1,x\n").unwrap();
            },
            expect: "metrics.csv",
        },
        Case {
            name: "plot to an unknown format",
            args: "plot {D} -o {D}/out.gif",
            setup: |d| {
                std::fs::write(d.join("metrics.csv"), "epoch,iteration,lr,train_loss,train_err,test_loss,test_err,epoch_seconds,images_per_sec\n1,10,0.1,2,80,2,80,1,1\n").unwrap();
            },
            expect: "use .png or .svg",
        },
        Case {
            name: "unreadable image for predict",
            args: "predict --weights {D}/m.safetensors {D}/broken.jpg",
            setup: |d| {
                save_model(&d.join("m.safetensors"), 8);
                std::fs::write(d.join("broken.jpg"), b"\xff\xd8 not really").unwrap();
            },
            expect: "broken.jpg",
        },
    ]
}

/// A finished tiny run in `d/run`, trained on `d/data`.
pub fn trained_run(d: &Path) {
    make_data(&d.join("data"));
    let o = run(&format!("train --data-dir {{D}}/data --out {{D}}/run {TINY}"), d, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

/// A run directory in use by another process (here: this test, holding its lock) is
/// refused by `--resume` and by a new `train`, and nothing in it changes.
#[test]
fn a_run_directory_in_use_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    trained_run(tmp.path());
    // The finished run removed the lock file it made; another process holds a new one.
    assert!(!tmp.path().join("run/.lock").exists());
    let held = std::fs::File::create(tmp.path().join("run/.lock")).unwrap();
    held.try_lock().unwrap();
    let before = snapshot(&tmp.path().join("run"));
    assert_clean_failure("resume in use", &run("train --resume {D}/run", tmp.path(), None), "is in use");
    std::fs::remove_file(tmp.path().join("run/metrics.csv")).unwrap();
    let out = run(&format!("train --data-dir {{D}}/data --out {{D}}/run {TINY}"), tmp.path(), None);
    assert_clean_failure("train into a run in use", &out, "is in use");
    let after = snapshot(&tmp.path().join("run"));
    assert_eq!(before.iter().filter(|(p, _)| !p.ends_with("metrics.csv")).cloned().collect::<Vec<_>>(), after);
    drop(held);
    let out = run(&format!("train --data-dir {{D}}/data --out {{D}}/run {TINY}"), tmp.path(), None);
    assert_clean_failure("train into a used directory", &out, "is not empty and holds no run");
}

/// The longest any bad input may take before its answer: past it the command hangs.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs the binary with `args` (`{D}`: `dir`), killed and failed after [`TIME_LIMIT`].
fn run(args: &str, dir: &Path, fsize_limit: Option<u64>) -> std::process::Output {
    let args = args.replace("{D}", &dir.display().to_string());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resnet-cifar"));
    cmd.args(args.split_whitespace()).env("RUST_BACKTRACE", "1");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(limit) = fsize_limit {
        // SAFETY: only async-signal-safe setrlimit between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &r) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let mut child = cmd.spawn().unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            b
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{args}` hangs: killed after {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// Every entry of `before` is unchanged in `after`, and nothing new appeared, not even a
/// lock file (issue #25: a refusal leaves no trace).
fn assert_nothing_lost(name: &str, before: &BTreeMap<PathBuf, Entry>, after: &BTreeMap<PathBuf, Entry>) {
    for (path, entry) in before {
        assert!(after.get(path) == Some(entry), "{name}: {} changed or vanished", path.display());
    }
    if let Some(path) = after.keys().find(|p| !before.contains_key(*p)) {
        panic!("{name}: the failing command left {} behind", path.display());
    }
}

fn assert_clean_failure(name: &str, out: &std::process::Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name}: should fail");
    assert_ne!(out.status.code(), Some(101), "{name}: panicked: {stderr}");
    // 1: an error the command reports; 2: a usage error (clap). Not a signal, not an abort.
    assert!(matches!(out.status.code(), Some(1 | 2)), "{name}: exit status {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked") && !stderr.contains("stack backtrace"), "{name}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{name}: one line expected: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(expect), "{name}: `{expect}` not in: {stderr}");
}

/// Runs `cases`, each in its own scratch directory: one line, a non-zero exit, no
/// panic, no hang, nothing lost.
fn check_cases(cases: &[Case]) {
    for case in cases {
        let tmp = tempfile::tempdir().unwrap();
        (case.setup)(tmp.path());
        let before = tree(tmp.path());
        let out = run(&case.args.replace("{T}", TINY), tmp.path(), None);
        assert_clean_failure(case.name, &out, case.expect);
        assert_nothing_lost(case.name, &before, &tree(tmp.path()));
    }
}

/// The table's size (with the CUDA case) is at least the 60 that issue #15 asks for.
#[test]
fn the_table_covers_every_class_of_hostile_input() {
    let n = cases().len() + hostile::cases().len() + 1;
    assert!(n >= 60, "{n} cases");
}

#[test]
fn hostile_inputs_get_one_line_and_lose_nothing() {
    let cases = hostile::cases();
    check_cases(&cases);
    eprintln!("{} hostile inputs, each answered with one line", cases.len());
}

#[test]
fn every_bad_input_gets_one_line_and_a_non_zero_exit() {
    let cases = cases();
    check_cases(&cases);
    if !tch::Cuda::is_available() {
        let tmp = tempfile::tempdir().unwrap();
        assert_clean_failure("CUDA absent", &run("train --device cuda", tmp.path(), None), "CUDA is not available");
    }
    eprintln!("{} bad inputs, each answered with one line", cases.len() + 1);
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    make_data(&tmp.path().join("data"));
    // 64 KiB per file: config.json and metrics.csv fit, a depth-8 checkpoint (~330 KB) does not.
    let args = format!("train --data-dir {{D}}/data --out {{D}}/run {TINY}");
    let out = run(&args, tmp.path(), Some(64 * 1024));
    assert_clean_failure("full disk", &out, "last.safetensors");
    let csv = std::fs::read_to_string(tmp.path().join("run/metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "the epoch's row, written before the checkpoint, is kept: {csv}");
    assert!(!tmp.path().join("run/last.safetensors").exists(), "no partial checkpoint under the real name");
    let left: Vec<String> = std::fs::read_dir(tmp.path().join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "the temporary file is removed: {left:?}");
}

#[test]
fn a_diverging_run_stops_with_the_iteration_and_lr_and_keeps_its_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    make_data(&tmp.path().join("data"));
    let args = format!(
        "train --data-dir {{D}}/data --out {{D}}/run --lr 1e12 --save-every 1 --epochs 2 {}",
        TINY.replace("--epochs 1 ", "")
    );
    let out = run(&args, tmp.path(), None);
    assert_clean_failure("divergence", &out, "training diverged");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at iteration ") && stderr.contains("(lr 1"), "{stderr}");
    // The checkpoint written before the divergence (iteration 1) is kept, whole and finite.
    let last = tmp.path().join("run/last.safetensors");
    assert!(last.exists(), "the last good checkpoint is kept");
    let ckpt = checkpoint::read(&last).unwrap();
    assert_eq!(ckpt.metadata.get("iteration").map(String::as_str), Some("1"), "{:?}", ckpt.metadata);
    assert!(ckpt.tensors.values().all(|t| t.isfinite().all().int64_value(&[]) == 1));
}
