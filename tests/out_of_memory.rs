//! Running out of GPU memory fails as clearly as any CPU error (issue #25), driven on the
//! CPU by the fault point `oom:N` (RESNET_CIFAR_TEST_PAUSE), which fails the N-th training
//! forward pass with the panic tch raises for libtorch's `CUDA out of memory`: one line
//! naming the batch size and the memory, exit 1, no panic; no half-written checkpoint;
//! the run resumes from its last checkpoint and ends bitwise equal to a run never stopped;
//! a new run that never checkpointed leaves its directory empty for a retry with a smaller
//! batch. The real CUDA case runs in bench/gpu_failures.sh.

use std::path::Path;
use std::process::{Command, Output};

mod common;

/// 128 images in batches of 64: two iterations per epoch.
const TINY: &str = "--depth 8 --epochs 2 --limit-train 128 --limit-test 64 --batch-size 64 --device cpu --threads 1";

fn train(args: &str, oom: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resnet-cifar"));
    cmd.args(args.split_whitespace()).env("RUST_BACKTRACE", "1");
    if let Some(point) = oom {
        cmd.env("RESNET_CIFAR_TEST_PAUSE", point);
    }
    cmd.output().unwrap()
}

fn one_line_oom(out: &Output, batch: i64) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].starts_with(&format!("error: out of memory on cpu at batch size {batch}: CUDA out of memory.")),
        "{stderr}"
    );
    assert!(lines[0].contains("total capacity of 139.81 GiB"), "the memory is named: {stderr}");
    lines[0].to_string()
}

/// Nothing half written: no temporary file beside the checkpoints.
fn no_partial_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        // Temporary files are `.NAME.tmp`; the lock file went with the run's lock.
        assert!(!name.starts_with('.'), "{name} left in {}", dir.display());
    }
}

#[test]
fn out_of_memory_mid_run_keeps_the_checkpoint_and_the_run_resumes_exactly() {
    common::require_fault_injection();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display().to_string();
    common::link_data(&tmp.path().join("data"));
    // The first step of epoch 2 runs out of memory.
    let run = tmp.path().join("run");
    let out = train(&format!("train --data-dir {d}/data --out {d}/run {TINY}"), Some("oom:3"));
    let line = one_line_oom(&out, 64);
    assert!(line.contains(&format!("resume with `resnet-cifar train --resume {d}/run`")), "{line}");
    no_partial_files(&run);
    let saved = resnet_cifar::checkpoint::read(&run.join("last.safetensors")).unwrap();
    assert_eq!(resnet_cifar::metrics::read(&run.join("metrics.csv")).unwrap().len(), 1);
    // Out of memory again while resuming: the same, and the checkpoint is untouched.
    let before = std::fs::read(run.join("last.safetensors")).unwrap();
    let out = train(&format!("train --resume {d}/run"), Some("oom:1"));
    one_line_oom(&out, 64);
    assert_eq!(std::fs::read(run.join("last.safetensors")).unwrap(), before);
    // Resumed where memory suffices: the run ends as one never stopped.
    let out = train(&format!("train --resume {d}/run"), None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reference = train(&format!("train --data-dir {d}/data --out {d}/reference {TINY}"), None);
    assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
    let (a, b) = (
        resnet_cifar::checkpoint::read(&run.join("last.safetensors")).unwrap(),
        resnet_cifar::checkpoint::read(&tmp.path().join("reference/last.safetensors")).unwrap(),
    );
    assert_eq!(a.tensors.keys().collect::<Vec<_>>(), b.tensors.keys().collect::<Vec<_>>());
    for (name, t) in &a.tensors {
        assert!(t.equal(&b.tensors[name]), "{name} differs from the run never stopped");
    }
    assert!(saved.tensors.len() == a.tensors.len());
}

#[test]
fn out_of_memory_at_the_first_step_leaves_the_directory_empty_for_a_smaller_batch() {
    common::require_fault_injection();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display().to_string();
    common::link_data(&tmp.path().join("data"));
    // TensorBoard's event file (on by default) is written before the first step, too.
    let out = train(&format!("train --data-dir {d}/data --out {d}/run {TINY}"), Some("oom:1"));
    let line = one_line_oom(&out, 64);
    assert!(line.contains("nothing was checkpointed") && line.contains("smaller --batch-size"), "{line}");
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("run")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let tiny32 = TINY.replace("--batch-size 64", "--batch-size 32");
    let out = train(&format!("train --data-dir {d}/data --out {d}/run {tiny32}"), None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_study_cell_out_of_memory_is_one_line_in_its_log() {
    common::require_fault_injection();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display().to_string();
    common::link_data(&tmp.path().join("data"));
    let args = format!(
        "--depths 8 --archs resnet --seeds 0 --epochs 1 --limit-train 128 --limit-test 64 --batch-size 64 --jobs 1 \
         --device cpu --quiet --out {d}/grid --data-dir {d}/data"
    );
    let o = common::study().args(args.split_whitespace()).env("RESNET_CIFAR_TEST_PAUSE", "oom:1").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 cell(s) failed: resnet-8-seed-0") || stderr.contains("1 cell(s) failed"), "{stderr}");
    assert!(stderr.contains("out of memory on cpu at batch size 64"), "{stderr}");
    let log = std::fs::read_to_string(tmp.path().join("grid/logs/resnet-8-seed-0.log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
    // Run again without the fault: the cell trains and the grid ends.
    let o = common::study().args(args.split_whitespace()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
