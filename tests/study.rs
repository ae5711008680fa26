//! `resnet-cifar study`, the grid, end to end on a tiny synthetic data set: cells laid out
//! and trained two at a time, Table 6 and the figures, a rerun that skips finished cells, a
//! changed plan refused, an interrupted cell that continues from its checkpoint and ends
//! exactly where an uninterrupted one does, and Slurm scripts that run a binary outside
//! cargo's target directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

/// A data directory in the official layout: links to the shared synthetic images.
fn synthetic_data_dir(dir: &Path) {
    common::link_data(dir);
}

/// The grid's flags for a tiny study: 2 epochs of 4 iterations by default.
fn grid_args(data: &Path, out: &Path, depths: &str, seeds: &str, epochs: &str) -> Vec<String> {
    let mut v: Vec<String> = ["--depths", depths, "--seeds", seeds, "--epochs", epochs, "--limit-train", "256"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(
        ["--limit-test", "128", "--batch-size", "64", "--device", "cpu", "--threads", "1", "--quiet"].map(String::from),
    );
    v.extend(["--data-dir".into(), data.display().to_string(), "--out".into(), out.display().to_string()]);
    v
}

fn run(args: &[String], env: &[(&str, &str)]) -> Output {
    common::study().args(args).envs(env.iter().copied()).output().unwrap()
}

/// Runs `resnet-cifar study` and returns its stdout, failing with both streams if it fails.
fn run_ok(args: &[String]) -> String {
    let o = run(args, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    stdout
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_png(path: &Path) -> bool {
    let b = read(path);
    b.starts_with(b"\x89PNG") && b.len() > 5000
}

fn data_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("data");
    std::fs::create_dir(&dir).unwrap();
    synthetic_data_dir(&dir);
    dir
}

#[test]
fn grid_trains_tabulates_skips_and_refuses_another_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let out = tmp.path().join("grid");
    let mut args = grid_args(&data, &out, "8", "0,1", "2");
    args.extend(["--jobs".into(), "2".into()]);
    let stdout = run_ok(&args);
    assert!(stdout.contains("4 cells (0 finished), 2 at a time on cpu, 1 thread(s) each"), "{stdout}");
    let cells = ["plain-8/seed-0", "plain-8/seed-1", "resnet-8/seed-0", "resnet-8/seed-1"];
    for c in cells {
        let rows = read(&out.join(c).join("metrics.csv")).iter().filter(|&&b| b == b'\n').count();
        assert_eq!(rows, 3, "{c}: header and two epochs");
        assert!(out.join(c).join("last.safetensors").exists() && out.join(c).join("config.json").exists());
    }
    let plan: serde_json::Value = serde_json::from_slice(&read(&out.join("grid.json"))).unwrap();
    assert_eq!(plan["cells"].as_array().map(Vec::len), Some(4), "{plan}");
    assert_eq!(plan["spec"]["seeds"], serde_json::json!([0, 1]));

    let json: serde_json::Value = serde_json::from_slice(&read(&out.join("results.json"))).unwrap();
    let s = &json["settings"];
    assert_eq!((s["epochs"].as_i64(), s["iterations"].as_i64()), (Some(2), Some(8)), "{json}");
    assert_eq!((s["train_images"].as_i64(), s["test_images"].as_i64()), (Some(256), Some(128)), "{json}");
    assert_eq!(s["precision"], "fp32");
    let nets = json["nets"].as_array().unwrap();
    assert_eq!(nets.len(), 2, "{json}");
    for n in nets {
        assert_eq!(n["seeds"], serde_json::json!([0, 1]), "{n}");
        assert!(n["params"].as_i64().unwrap() > 70_000, "{n}");
        for k in ["test_err_mean", "test_err_std", "test_err_best", "train_err_mean", "train_err_std"] {
            assert!(n[k].as_f64().is_some_and(|v| (0.0..=100.0).contains(&v)), "{k}: {n}");
        }
    }
    let json_cells = json["cells"].as_array().unwrap();
    assert_eq!(json_cells.len(), 4);
    // The aggregate is the cells' own numbers: the mean of the two seeds' final test error.
    let final_test = |c: &serde_json::Value| c["final_test_err"].as_f64().unwrap();
    let resnet: Vec<f64> = json_cells.iter().filter(|c| c["arch"] == "resnet").map(final_test).collect();
    let mean = nets.iter().find(|n| n["arch"] == "resnet").unwrap()["test_err_mean"].as_f64().unwrap();
    assert!((mean - (resnet[0] + resnet[1]) / 2.0).abs() < 1e-9, "{json}");
    for c in json_cells {
        for k in ["arch", "depth", "seed", "final_train_err", "final_test_err", "best_test_err", "dir"] {
            assert!(!c[k].is_null(), "{k}: {c}");
        }
    }
    let md = String::from_utf8(read(&out.join("results.md"))).unwrap();
    assert!(md.contains("| plain-8 |") && md.contains("| resnet-8/seed-1 |"), "{md}");
    let csv_text = String::from_utf8(read(&out.join("results.csv"))).unwrap();
    assert!(csv_text.starts_with("arch,depth,params,seeds,test_err_mean"), "{csv_text}");
    assert_eq!(csv_text.lines().count(), 3);
    assert!(is_png(&out.join("fig6.png")) && is_png(&out.join("fig7.png")));
    assert!(String::from_utf8(read(&out.join("fig7.csv"))).unwrap().contains("resnet-8"));

    // The same command again: nothing trained, nothing changed.
    let before: Vec<Vec<u8>> = cells.iter().map(|c| read(&out.join(c).join("metrics.csv"))).collect();
    let stdout = run_ok(&args);
    assert!(stdout.contains("every cell of") && stdout.contains("is finished"), "{stdout}");
    let after: Vec<Vec<u8>> = cells.iter().map(|c| read(&out.join(c).join("metrics.csv"))).collect();
    assert_eq!(before, after);

    // Another plan in the same directory: refused in one line, nothing touched.
    for other in [grid_args(&data, &out, "8", "0,1", "3"), grid_args(&data, &out, "8", "0,1,2", "2")] {
        let o = run(&other, &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains("another plan"), "{stderr}");
    }
    let after: Vec<Vec<u8>> = cells.iter().map(|c| read(&out.join(c).join("metrics.csv"))).collect();
    assert_eq!(before, after);

    // --collect alone rewrites the tables from the cells.
    std::fs::remove_file(out.join("results.md")).unwrap();
    let o = run(&["--collect".into(), out.display().to_string()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("results.md").exists());
}

#[test]
fn interrupted_cell_continues_from_its_checkpoint_exactly() {
    common::require_fault_injection();
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let (held, reference) = (tmp.path().join("held"), tmp.path().join("reference"));
    // One cell, 3 epochs of 4 iterations; held after iteration 6 (inside epoch 2).
    let args = |out: &Path| {
        let mut a = grid_args(&data, out, "8", "0", "3");
        a.extend(["--archs".into(), "resnet".into()]);
        a
    };
    let mut child = common::study()
        .args(args(&held))
        .env("RESNET_CIFAR_TEST_PAUSE", "iteration:6")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = held.join("logs").join("resnet-8-seed-0.log");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("FAULT-PAUSE iteration:6")) {
        assert!(started.elapsed().as_secs() < 120, "the cell never reached iteration 6");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("rerun the same command") && stderr.lines().count() == 1, "{stderr}");
    let cell = held.join("resnet-8/seed-0");
    let ckpt = resnet_cifar::checkpoint::read(&cell.join("last.safetensors")).unwrap();
    assert_eq!(ckpt.metadata.get("iteration").map(String::as_str), Some("6"));

    let stdout = run_ok(&args(&held));
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("continuing after epoch 1 of 3"), "{log_text}");
    assert!(log_text.contains("resuming at iteration 6"), "{log_text}");
    assert!(stdout.contains("1 cells (0 finished)"), "{stdout}");
    run_ok(&args(&reference));

    // The same numbers as the uninterrupted run (times aside) and the same weights.
    let numbers = |dir: &Path| -> Vec<Vec<String>> {
        let mut r = csv::Reader::from_path(dir.join("resnet-8/seed-0/metrics.csv")).unwrap();
        r.records().map(|rec| rec.unwrap().iter().take(7).map(String::from).collect()).collect()
    };
    assert_eq!(numbers(&held).len(), 3);
    assert_eq!(numbers(&held), numbers(&reference));
    for file in ["last.safetensors", "best.safetensors"] {
        let a = resnet_cifar::checkpoint::read(&cell.join(file)).unwrap();
        let b = resnet_cifar::checkpoint::read(&reference.join("resnet-8/seed-0").join(file)).unwrap();
        assert_eq!(a.tensors.len(), b.tensors.len());
        for (name, t) in &a.tensors {
            assert!(t.equal(&b.tensors[name]), "{file}: {name} differs");
        }
    }
}

#[test]
fn bad_input_is_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cases: [(Vec<String>, &str); 4] = [
        (grid_args(tmp.path(), &out, "8,21", "0", "1"), "6n+2"),
        ([grid_args(tmp.path(), &out, "8", "0", "1"), vec!["--depth".into(), "20".into()]].concat(), "--depths"),
        ([grid_args(tmp.path(), &out, "8", "0", "1"), vec!["--lr".into(), "-1".into()]].concat(), "--lr -1: must be"),
        (vec!["--collect".into(), out.display().to_string()], "no grid here"),
    ];
    for (args, what) in cases {
        let o = run(&args, &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(what), "{what}: {stderr}");
        assert!(!out.exists(), "{what}: wrote {}", out.display());
    }
    // A grid.json of an earlier version (the settings as flags): `--collect` asks for the
    // planning command again, which brings it up to date.
    std::fs::create_dir_all(&out).unwrap();
    let old = r#"{"tool":"resnet-cifar 0.1.0","spec":{"depths":[8],"archs":["plain","resnet"],"seeds":[0],
        "train_flags":["--epochs","1"]},"cells":[]}"#;
    std::fs::write(out.join("grid.json"), old).unwrap();
    let o = run(&["--collect".into(), out.display().to_string()], &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("rerun the study command that planned it"), "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("grid.json")).unwrap(), old, "nothing rewritten by a refusal");
}

/// `--dataset cifar100 --labels coarse` passes through to every cell: the cells train
/// 20-way networks, and the tables say CIFAR-100 and give no paper figure (Table 6 is
/// CIFAR-10's).
#[test]
fn a_cifar100_grid_trains_every_cell_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("c100");
    common::link_cifar100(&data);
    let out = tmp.path().join("grid");
    let mut args = grid_args(&data, &out, "20", "0", "1");
    args.extend(["--dataset", "cifar100", "--labels", "coarse", "--jobs", "2"].map(String::from));
    run_ok(&args);
    for cell in ["plain-20/seed-0", "resnet-20/seed-0"] {
        let config: serde_json::Value = serde_json::from_slice(&read(&out.join(cell).join("config.json"))).unwrap();
        assert_eq!(
            (&config["data"]["dataset"], &config["model"]["num_classes"]),
            (&"cifar100".into(), &20.into()),
            "{cell}"
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&read(&out.join("results.json"))).unwrap();
    let s = &json["settings"];
    assert_eq!((&s["dataset"], &s["labels"], &s["test_images"]), (&"cifar100".into(), &"coarse".into(), &128.into()));
    assert!(json["nets"].as_array().unwrap().iter().all(|n| n["paper_test_err"].is_null()), "{json}");
    let md = String::from_utf8(read(&out.join("results.md"))).unwrap();
    assert!(md.starts_with("# Plain vs. residual networks on CIFAR-100 (coarse labels)"), "{md}");
    assert!(md.lines().any(|l| l.starts_with("| resnet-20 |") && l.ends_with("| — |")), "{md}");
    assert!(is_png(&out.join("fig6.png")) && is_png(&out.join("fig7.png")));
}

#[test]
fn help_lists_the_study_flags_and_says_train_flags_pass_through() {
    let top = Command::new(env!("CARGO_BIN_EXE_resnet-cifar")).arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.lines().any(|l| l.trim_start().starts_with("study ")), "{top}");
    let o = common::study().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{help}");
    for flag in ["--depths", "--archs", "--seeds", "--out", "--jobs", "--devices", "--collect", "--slurm", "--submit"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("[-- <TRAIN FLAGS>...]") && help.contains("passes through to every cell"), "{help}");
    assert!(!help.contains("--run-cell"), "{help}");
}

/// The flags of a one-cell grid (resnet-8, 1 epoch) in `out` on the data in `data`.
fn one_cell(data: &Path, out: &Path) -> Vec<String> {
    let mut a: Vec<String> = "--depths 8 --archs resnet --seeds 0 --epochs 1 --limit-train 256 --limit-test 128 \
                              --batch-size 64 --quiet"
        .split_whitespace()
        .map(String::from)
        .collect();
    a.extend(["--data-dir".into(), data.display().to_string(), "--out".into(), out.display().to_string()]);
    a
}

/// The binary an array script runs: its `exe=` line, unquoted.
fn script_exe(grid: &Path) -> PathBuf {
    let script = String::from_utf8(read(&grid.join("slurm/array.sbatch"))).unwrap();
    let line = script.lines().find_map(|l| l.strip_prefix("exe=")).unwrap_or_else(|| panic!("no exe= in\n{script}"));
    PathBuf::from(line.trim_matches('\''))
}

/// `cargo clean` after `--slurm` used to leave the array pointing at a deleted binary. A
/// build inside a target directory is now copied into the grid, once; the scripts run that
/// copy, and still train and collect after the target directory is gone.
#[test]
fn slurm_scripts_from_a_target_build_run_a_copy_that_outlives_cargo_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let target = tmp.path().join("project/target");
    let build = target.join("release/resnet-cifar");
    std::fs::create_dir_all(build.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_resnet-cifar"), &build).unwrap();
    let grid = tmp.path().join("grid");
    let mut args = one_cell(&data, &grid);
    args.push("--slurm".into());
    let write = || {
        let o = Command::new(&build).arg("study").args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let stdout = write();
    let exe = script_exe(&grid);
    let copy = std::fs::canonicalize(&grid).unwrap().join("bin/resnet-cifar");
    assert_eq!(exe, copy, "{stdout}");
    assert!(stdout.contains("copied") && !exe.starts_with(&target), "{stdout}");
    assert_eq!(read(&exe), read(&build));
    // Regenerated: the same script, and the copy is left as it is (same file).
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let (first, script) = (inode(&exe), read(&grid.join("slurm/array.sbatch")));
    let stdout = write();
    assert!(!stdout.contains("copied"), "{stdout}");
    assert_eq!((inode(&exe), read(&grid.join("slurm/array.sbatch"))), (first, script));

    // `cargo clean`, then the array's task 0 and the collect job, as Slurm would run them.
    std::fs::remove_dir_all(&target).unwrap();
    let task = [("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_JOB_ID", "7"), ("SLURM_CPUS_PER_TASK", "1")];
    for (script, env) in [("array.sbatch", &task[..]), ("collect.sbatch", &[])] {
        let o = Command::new("bash").arg(grid.join("slurm").join(script)).envs(env.iter().copied()).output().unwrap();
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{script}: {}\n{out}{err}", o.status);
    }
    assert_eq!(String::from_utf8_lossy(&read(&grid.join("resnet-8/seed-0/metrics.csv"))).lines().count(), 2);
    let md = String::from_utf8(read(&grid.join("results.md"))).unwrap();
    assert!(md.contains("| resnet-8 |"), "{md}");
}

/// An installed binary (not in a target directory) is named where it is: nothing copied.
#[test]
fn slurm_scripts_from_an_installed_binary_name_it_by_its_canonical_path() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let installed = tmp.path().join("prefix/bin/resnet-cifar");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_resnet-cifar"), &installed).unwrap();
    std::os::unix::fs::symlink(&installed, tmp.path().join("rc")).unwrap();
    let grid = tmp.path().join("grid");
    let mut args = one_cell(&data, &grid);
    args.push("--slurm".into());
    let o = Command::new(tmp.path().join("rc")).arg("study").args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(script_exe(&grid), std::fs::canonicalize(&installed).unwrap());
    assert!(!grid.join("bin").exists());
    let collect = String::from_utf8(read(&grid.join("slurm/collect.sbatch"))).unwrap();
    assert!(collect.contains("exec \"$exe\" study --collect \"$grid\""), "{collect}");
}
