//! On a Slurm cluster the grid is a job array: `DIR/slurm/array.sbatch` has one task per
//! cell (`SLURM_ARRAY_TASK_ID` picks it), `DIR/slurm/collect.sbatch` aggregates once the
//! array has ended (`--dependency=afterany`). Preemption-safe: Slurm sends SIGUSR1 120 s
//! before the time limit (`--signal=B:USR1@120`), the batch script passes it to the cell,
//! which writes its checkpoint and stops, and the script requeues the task; a requeue or
//! preemption (SIGTERM) does the same. A task that runs again resumes exactly.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

use super::local::cell_command;
use super::plan::{Exec, Grid};

/// `#SBATCH` options for both scripts.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// Time limit per task, Slurm's format (`4:00:00`).
    pub time: Option<String>,
    pub account: Option<String>,
    pub cpus_per_task: u32,
    pub gpus_per_task: u32,
    /// At most this many array tasks at once (`--array=0-N%K`).
    pub throttle: Option<u32>,
    /// Raw lines added to the array script's header, e.g. `#SBATCH --qos=long`.
    pub extra: Vec<String>,
}

/// Shell-quotes `s` for bash.
fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn header(grid: &Grid, opts: &SlurmOptions, name: &str) -> String {
    let mut h = format!("#!/bin/bash\n#SBATCH --job-name={}\n", quote(name));
    for (key, value) in [("partition", &opts.partition), ("time", &opts.time), ("account", &opts.account)] {
        if let Some(v) = value {
            h.push_str(&format!("#SBATCH --{key}={}\n", quote(v)));
        }
    }
    let _ = grid;
    h
}

/// The array script's text.
pub fn array_script(grid: &Grid, exe: &Path, opts: &SlurmOptions) -> String {
    let name = format!("resnet-cifar-{}", grid.dir.file_name().map_or("grid".into(), |n| n.to_string_lossy()));
    let mut s = header(grid, opts, &name);
    let last = grid.cells.len().saturating_sub(1);
    let throttle = opts.throttle.map_or(String::new(), |k| format!("%{k}"));
    let out = grid.dir.join("slurm").join("cell-%a.out");
    s.push_str(&format!("#SBATCH --array=0-{last}{throttle}\n"));
    s.push_str(&format!("#SBATCH --output={}\n#SBATCH --open-mode=append\n", quote(&out.display().to_string())));
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus_per_task.max(1)));
    if opts.gpus_per_task > 0 {
        s.push_str(&format!("#SBATCH --gpus-per-task={}\n", opts.gpus_per_task));
    }
    s.push_str("#SBATCH --requeue\n#SBATCH --signal=B:USR1@120\n");
    for line in &opts.extra {
        s.push_str(line.trim_end());
        s.push('\n');
    }
    let device = if opts.gpus_per_task > 0 { Some("cuda:0".to_string()) } else { Some("cpu".to_string()) };
    let exec = Exec { threads: None, device };
    let mut argv: Vec<String> = cell_command(exe, &grid.dir, 0, &exec).iter().map(|a| quote(a)).collect();
    argv[2] = "\"$SLURM_ARRAY_TASK_ID\"".into();
    argv.extend(["--threads".into(), "\"${SLURM_CPUS_PER_TASK:-1}\"".into()]);
    s.push_str(&format!(
        r#"
# One cell of the grid in {dir} per array task. On SIGUSR1 (the time limit is near) or
# SIGTERM (requeue, preemption, scancel) the cell finishes its step, writes its checkpoint
# and exits; after SIGUSR1 this script requeues the task, which then resumes exactly.
set -u
echo "task $SLURM_ARRAY_TASK_ID of job ${{SLURM_ARRAY_JOB_ID:-?}} on $(hostname) at $(date -Is), restart ${{SLURM_RESTART_COUNT:-0}}"
got=
{cmd} &
child=$!
trap 'got=USR1; kill -USR1 "$child" 2>/dev/null' USR1
trap 'got=TERM; kill -TERM "$child" 2>/dev/null' TERM
wait "$child"
status=$?
while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    status=$?
done
if [ "$got" = USR1 ]; then
    scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
fi
exit "$status"
"#,
        dir = grid.dir.display(),
        cmd = argv.join(" ")
    ));
    s
}

/// The collect script's text.
pub fn collect_script(grid: &Grid, exe: &Path, opts: &SlurmOptions) -> String {
    let name = format!("resnet-cifar-{}-collect", grid.dir.file_name().map_or("grid".into(), |n| n.to_string_lossy()));
    let mut s = header(grid, opts, &name);
    let out = grid.dir.join("slurm").join("collect.out");
    s.push_str(&format!("#SBATCH --output={}\n#SBATCH --cpus-per-task=1\n", quote(&out.display().to_string())));
    s.push_str(&format!(
        "\n# Aggregates the grid once every array task has ended (submitted with --dependency=afterany).\nexec {} --collect {}\n",
        quote(&exe.display().to_string()),
        quote(&grid.dir.display().to_string())
    ));
    s
}

/// Writes both scripts; returns their paths (array, collect).
pub fn write_scripts(grid: &Grid, exe: &Path, opts: &SlurmOptions) -> Result<(PathBuf, PathBuf)> {
    let dir = grid.dir.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let array = dir.join("array.sbatch");
    let collect = dir.join("collect.sbatch");
    crate::checkpoint::write_atomic(&array, array_script(grid, exe, opts).as_bytes())?;
    crate::checkpoint::write_atomic(&collect, collect_script(grid, exe, opts).as_bytes())?;
    Ok((array, collect))
}

/// Runs `sbatch --parsable ARGS`; returns the job id.
fn sbatch(args: &[&str]) -> Result<String> {
    let out = Command::new("sbatch").arg("--parsable").args(args).output().map_err(|e| {
        Error::Config(format!(
            "cannot run sbatch ({e}): is Slurm installed here? The scripts are written; submit them by hand"
        ))
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Config(format!("sbatch failed: {}", err.split_whitespace().collect::<Vec<_>>().join(" "))));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Config(format!("sbatch printed no job id: `{}`", text.trim())));
    }
    Ok(id)
}

/// Submits the array, then the collect job after it; returns both job ids.
pub fn submit(array: &Path, collect: &Path) -> Result<(String, String)> {
    let array_id = sbatch(&[&array.display().to_string()])?;
    let dependency = format!("--dependency=afterany:{array_id}");
    let collect_id = sbatch(&[&dependency, &collect.display().to_string()])?;
    Ok((array_id, collect_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;
    use crate::study::plan::GridSpec;

    fn grid(dir: &Path) -> Grid {
        let flags: Vec<String> = ["--epochs", "2"].iter().map(|s| s.to_string()).collect();
        let (spec, _) = GridSpec::new(vec![20, 56], vec![Arch::Plain, Arch::Resnet], vec![0, 1, 2], &flags).unwrap();
        Grid::plan(dir, spec, crate::study::plan::test_parser).unwrap()
    }

    #[test]
    fn array_script_has_one_task_per_cell_and_is_preemption_safe() {
        let tmp = tempfile::tempdir().unwrap();
        let g = grid(tmp.path());
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("4:00:00".into()),
            account: Some("proj x".into()),
            cpus_per_task: 8,
            gpus_per_task: 1,
            throttle: Some(4),
            extra: vec!["#SBATCH --qos=long".into()],
        };
        let s = array_script(&g, Path::new("/opt/bin/pvr"), &opts);
        for line in [
            "#SBATCH --array=0-11%4",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=4:00:00",
            "#SBATCH --account='proj x'",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --requeue",
            "#SBATCH --signal=B:USR1@120",
            "#SBATCH --qos=long",
            "/opt/bin/pvr --run-cell \"$SLURM_ARRAY_TASK_ID\" --out",
            "--device cuda:0 --threads \"${SLURM_CPUS_PER_TASK:-1}\" &",
            "trap 'got=USR1; kill -USR1 \"$child\" 2>/dev/null' USR1",
            "scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"",
        ] {
            assert!(s.contains(line), "missing `{line}` in\n{s}");
        }
        // #SBATCH lines must all come before the first command.
        let first_cmd = s.lines().position(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap();
        assert!(s.lines().skip(first_cmd).all(|l| !l.starts_with("#SBATCH")));
        let plain = array_script(&g, Path::new("/x"), &SlurmOptions::default());
        assert!(plain.contains("#SBATCH --array=0-11\n") && plain.contains("--device cpu"));
        assert!(!plain.contains("--gpus-per-task") && !plain.contains("--partition"));
    }

    #[test]
    fn collect_script_aggregates() {
        let tmp = tempfile::tempdir().unwrap();
        let g = grid(tmp.path());
        let s = collect_script(&g, Path::new("/opt/bin/pvr"), &SlurmOptions::default());
        assert!(s.contains(&format!("exec /opt/bin/pvr --collect {}", tmp.path().display())), "{s}");
        let (a, c) = write_scripts(&g, Path::new("/x"), &SlurmOptions::default()).unwrap();
        assert!(a.ends_with("slurm/array.sbatch") && a.exists() && c.exists());
    }

    #[test]
    fn quoting_is_safe_for_bash() {
        assert_eq!(quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
