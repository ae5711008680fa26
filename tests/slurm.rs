//! The grid as a Slurm job array on a real single-node Slurm (slurmctld, slurmd and munged
//! started by `scripts/slurm-local.sh`, installed from Debian's packages when missing): a
//! tiny grid is submitted with its collect job; one running array task is requeued with
//! `scontrol requeue` while it is held at an exact iteration; its final metrics and
//! checkpoints must equal an uninterrupted run's, and the collect job's table must hold
//! every cell. The grid's directory is named `grid o'neil $HOME`. Under `CI=true` it must
//! run; elsewhere, without root, it says why it skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The daemons of one test, stopped by PID when dropped.
struct Cluster {
    state: PathBuf,
    conf: String,
}

impl Cluster {
    fn start(state: &Path) -> Result<Cluster, String> {
        let o = Command::new(Path::new(ROOT).join("scripts/slurm-local.sh"))
            .arg("start")
            .arg(state)
            .output()
            .map_err(|e| format!("cannot run scripts/slurm-local.sh: {e}"))?;
        let stdout = String::from_utf8_lossy(&o.stdout);
        if !o.status.success() {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            return Err(format!(
                "slurm-local.sh start failed: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        let conf = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .ok_or_else(|| format!("slurm-local.sh printed no SLURM_CONF: {stdout}"))?
            .trim()
            .to_string();
        Ok(Cluster { state: state.to_path_buf(), conf })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.cmd(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// Our jobs still queued or running: `jobid state` lines.
    fn queue(&self) -> String {
        let o = self.run("squeue", &["--noheader", "--array", "--format=%i %T"]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(ROOT).join("scripts/slurm-local.sh")).arg("stop").arg(&self.state).status();
    }
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn grid_runs_as_a_job_array_and_a_requeued_task_resumes_exactly() {
    common::require_fault_injection();
    let is_root = unsafe { libc::geteuid() } == 0;
    let ci = common::in_ci();
    if !is_root {
        assert!(!ci, "the Slurm test needs root under CI=true (it installs and starts Slurm)");
        eprintln!("skipped: the Slurm test needs root to install and start slurmctld, slurmd and munged");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cluster = match Cluster::start(&tmp.path().join("slurm-state")) {
        Ok(c) => c,
        Err(e) if !ci => {
            eprintln!("skipped: no Slurm could be started here: {}", e.lines().next().unwrap_or(""));
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let data_dir = tmp.path().join("data");
    common::link_data(&data_dir);
    let bin = env!("CARGO_BIN_EXE_resnet-cifar");
    let grid_args = |out: &Path, archs: &str| -> Vec<String> {
        let mut v: Vec<String> = ["study", "--depths", "8", "--archs", archs, "--seeds", "0", "--epochs", "3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(["--limit-train", "512", "--limit-test", "128", "--batch-size", "64", "--quiet"].map(String::from));
        v.extend(["--data-dir".into(), data_dir.display().to_string(), "--out".into(), out.display().to_string()]);
        v
    };

    // Submit: array task 1 (resnet-8) is held after iteration 12 of 24, in epoch 2. The
    // grid's directory name has a space, a quote and a `$`: the scripts name it exactly,
    // for bash and for Slurm's #SBATCH parser alike (issue #25).
    let grid = tmp.path().join("grid o'neil $HOME");
    let mut submit = grid_args(&grid, "plain,resnet");
    submit.extend(["--slurm", "--submit", "--cpus-per-task", "1", "--partition", "debug"].map(String::from));
    let o = cluster
        .cmd(bin)
        .args(&submit)
        .env("RESNET_CIFAR_TEST_PAUSE", "iteration:12@SLURM_ARRAY_TASK_ID=1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let ids: Vec<&str> = stdout.split_whitespace().filter(|w| w.chars().all(|c| c.is_ascii_digit())).collect();
    assert!(stdout.contains("submitted array job") && ids.len() >= 2, "{stdout}");
    let (array, collect) = (ids[0].to_string(), ids[1].to_string());
    eprintln!("submitted array job {array} (2 cells) and collect job {collect} (afterany:{array})");
    let script = read(&grid.join("slurm/array.sbatch"));
    assert!(script.contains("#SBATCH --array=0-1") && script.contains("#SBATCH --requeue"), "{script}");
    assert!(script.contains("grid o'\\''neil $HOME"), "{script}");
    // The binary the tasks run is the grid's own copy, not target/'s (issue #23).
    let copy = grid.join("bin/resnet-cifar");
    let exe_line = format!("exe='{}'\n", copy.display().to_string().replace('\'', "'\\''"));
    assert!(script.contains(&exe_line), "{exe_line} not in {script}");
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(bin).unwrap());

    // The held task: wait until it is at iteration 12, then requeue it.
    let out1 = grid.join("slurm/cell-1.out");
    wait_for("array task 1 to reach iteration 12", 180, || {
        let text = read(&out1);
        assert!(!text.contains("error:"), "array task 1 failed:\n{text}");
        text.contains("FAULT-PAUSE iteration:12")
    });
    let task = format!("{array}_1");
    let o = cluster.run("scontrol", &["requeue", &task]);
    assert!(o.status.success(), "scontrol requeue {task}: {}", String::from_utf8_lossy(&o.stderr));
    eprintln!("requeued {task} while held after iteration 12");

    // Everything ends: both cells, then the collect job.
    wait_for("the array and the collect job to end", 300, || {
        let q = cluster.queue();
        !q.contains(&array) && !q.contains(&collect)
    });
    let log = read(&out1);
    let starts = log.matches("task 1 of job").count();
    assert_eq!(starts, 2, "task 1 should have started twice (before and after the requeue):\n{log}");
    assert!(log.contains("stopped by signal 15 at iteration 12"), "{log}");
    assert!(log.contains("continuing after epoch 1 of 3") && log.contains("resuming at iteration 12"), "{log}");
    eprintln!("task 1 started twice: stopped by SIGTERM at iteration 12, then resumed at iteration 12");

    // The requeued cell equals an uninterrupted run of the same cell.
    let reference = tmp.path().join("reference");
    let mut local = grid_args(&reference, "resnet");
    local.extend(["--device", "cpu", "--threads", "1"].map(String::from));
    let o = Command::new(bin).args(&local).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cell = |g: &Path| g.join("resnet-8/seed-0");
    let numbers = |g: &Path| -> Vec<Vec<String>> {
        let mut r = csv::Reader::from_path(cell(g).join("metrics.csv")).unwrap();
        r.records().map(|rec| rec.unwrap().iter().take(7).map(String::from).collect()).collect()
    };
    assert_eq!(numbers(&grid).len(), 3);
    assert_eq!(numbers(&grid), numbers(&reference), "metrics after the requeue differ");
    for file in ["last.safetensors", "best.safetensors"] {
        let a = resnet_cifar::checkpoint::read(&cell(&grid).join(file)).unwrap();
        let b = resnet_cifar::checkpoint::read(&cell(&reference).join(file)).unwrap();
        assert_eq!(a.tensors.keys().collect::<Vec<_>>(), b.tensors.keys().collect::<Vec<_>>());
        for (name, t) in &a.tensors {
            assert!(t.equal(&b.tensors[name]), "{file}: {name} differs after the requeue");
        }
    }
    eprintln!("requeued cell == uninterrupted run: 3 metrics rows and every tensor of last/best.safetensors");

    // The collect job's table.
    let results: serde_json::Value =
        serde_json::from_str(&read(&grid.join("results.json"))).expect("the collect job wrote results.json");
    assert_eq!(results["cells"].as_array().map(Vec::len), Some(2), "{results}");
    assert_eq!(results["nets"].as_array().map(Vec::len), Some(2), "{results}");
    assert_eq!(results["missing"].as_array().map(Vec::len), Some(0), "{results}");
    let md = read(&grid.join("results.md"));
    assert!(md.contains("| plain-8 |") && md.contains("| resnet-8 |"), "{md}");
    eprintln!(
        "collect job: {}",
        md.lines()
            .filter(|l| l.starts_with("| plain-8 |") || l.starts_with("| resnet-8 |"))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    drop(cluster);
}
