//! On a Slurm cluster the grid is a job array: `DIR/slurm/array.sbatch` has one task per
//! cell (`SLURM_ARRAY_TASK_ID` picks it), `DIR/slurm/collect.sbatch` aggregates once the
//! array has ended (`--dependency=afterany`). Preemption-safe: Slurm sends SIGUSR1 120 s
//! before the time limit (`--signal=B:USR1@120`), the batch script passes it to the cell,
//! which writes its checkpoint and stops, and the script requeues the task; a requeue or
//! preemption (SIGTERM) does the same. A task that runs again resumes exactly. Each task
//! runs `EXE study --run-cell N`, with `EXE` chosen by [`super::binary::ScriptBinary`] so
//! that a `cargo clean` after submitting cannot take it away.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

use super::plan::Grid;

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

/// Shell-quotes `s` for bash: bare when every character is safe, else in single quotes
/// (inside which only `'` is special, written `'\''`). Slurm's `#SBATCH` parser reads the
/// same quoting (single and double quotes, backslash escapes). Only for values already
/// checked by [`check_value`]: no byte of them can end a line.
fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How a refused character is named in an error: `a newline (\n)`, `'$'`, `U+00A0`.
fn describe(c: char) -> String {
    match c {
        '\n' => "a newline (\\n)".into(),
        '\r' => "a carriage return (\\r)".into(),
        '\0' => "a NUL byte (\\0)".into(),
        '\t' => "a tab (\\t)".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

/// Every value that reaches a script: no control character (a newline, carriage return or
/// NUL would end the line or the string it sits on, in bash and in Slurm's `#SBATCH` parser).
fn check_value(flag: &str, value: &str) -> Result<()> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Error::Config(format!(
            "{flag}: the value holds {}, which would end a line of the generated Slurm script; give it without",
            describe(c)
        )));
    }
    Ok(())
}

/// The characters an `#SBATCH --partition/--time/--account` value may hold: Slurm's names
/// and time formats need no others, and a space, quote, `#` or `$` there is a mistake.
fn sbatch_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.,:+@=/".contains(c)
}

/// A path that reaches a script: UTF-8 (the script must name exactly this path), without
/// control characters, and (as it also appears in `#SBATCH --output`) without a backslash,
/// which Slurm's parser would drop.
fn check_path(flag: &str, path: &Path) -> Result<String> {
    let text = path.to_str().ok_or_else(|| {
        Error::Config(format!(
            "{flag}: {} is not valid UTF-8, which a generated Slurm script cannot name exactly; use another path",
            path.display()
        ))
    })?;
    check_value(flag, text)?;
    if text.contains('\\') {
        return Err(Error::Config(format!(
            "{flag}: {text} holds '\\', which Slurm's #SBATCH parser would drop from the path; use another path"
        )));
    }
    Ok(text.to_string())
}

impl SlurmOptions {
    /// Refuses any value that could end a line of a script or that Slurm would misread,
    /// naming the flag and the character.
    pub fn check(&self) -> Result<()> {
        for (flag, value) in [("--partition", &self.partition), ("--time", &self.time), ("--account", &self.account)] {
            let Some(v) = value else { continue };
            check_value(flag, v)?;
            if v.is_empty() {
                return Err(Error::Config(format!("{flag}: the value is empty; give one, or leave the flag out")));
            }
            if let Some(c) = v.chars().find(|&c| !sbatch_value_char(c)) {
                return Err(Error::Config(format!(
                    "{flag}: the value holds {}, which an #SBATCH value may not: use letters, digits and -_.,:+@=/",
                    describe(c)
                )));
            }
        }
        for line in &self.extra {
            check_value("--sbatch-line", line)?;
            let rest = line.strip_prefix("#SBATCH").unwrap_or("");
            if !rest.starts_with([' ', '\t']) || rest.trim().is_empty() {
                return Err(Error::Config(format!(
                    "--sbatch-line: `{line}` is not a single `#SBATCH --option` line; write it as \"#SBATCH --qos=long\""
                )));
            }
        }
        Ok(())
    }
}

/// The job name, from the grid directory's name: only `[A-Za-z0-9._-]`, every other
/// character replaced by `_`, so that it is a plain word wherever it goes.
fn job_name(dir: &Path, suffix: &str) -> String {
    let base = dir.file_name().map_or("grid".into(), |n| n.to_string_lossy());
    let safe: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    format!("resnet-cifar-{safe}{suffix}")
}

/// An `#SBATCH --output` path: `%` doubled, as Slurm expands `%a`, `%j`, … in file names.
fn output_path(dir: &str, file: &str) -> String {
    quote(&format!("{}/slurm/{file}", dir.replace('%', "%%")))
}

fn header(opts: &SlurmOptions, name: &str) -> String {
    let mut h = format!("#!/bin/bash\n#SBATCH --job-name={}\n", quote(name));
    for (key, value) in [("partition", &opts.partition), ("time", &opts.time), ("account", &opts.account)] {
        if let Some(v) = value {
            h.push_str(&format!("#SBATCH --{key}={}\n", quote(v)));
        }
    }
    h
}

/// The array script's text, for the grid of `cells` cells in `dir`, run by `exe`. Every
/// value is checked first (see [`SlurmOptions::check`]); the directory and the binary
/// reach the script's commands only through the variables `grid` and `exe`, each assigned
/// once, single-quoted.
pub fn array_script_for(dir: &Path, cells: usize, exe: &Path, opts: &SlurmOptions) -> Result<String> {
    opts.check()?;
    let dir_text = check_path("--out", dir)?;
    let exe_text = check_path("the binary's path", exe)?;
    let mut s = header(opts, &job_name(dir, ""));
    let last = cells.saturating_sub(1);
    let throttle = opts.throttle.map_or(String::new(), |k| format!("%{k}"));
    s.push_str(&format!("#SBATCH --array=0-{last}{throttle}\n"));
    s.push_str(&format!("#SBATCH --output={}\n#SBATCH --open-mode=append\n", output_path(&dir_text, "cell-%a.out")));
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus_per_task.max(1)));
    if opts.gpus_per_task > 0 {
        s.push_str(&format!("#SBATCH --gpus-per-task={}\n", opts.gpus_per_task));
    }
    s.push_str("#SBATCH --requeue\n#SBATCH --signal=B:USR1@120\n");
    for line in &opts.extra {
        s.push_str(line.trim_end());
        s.push('\n');
    }
    let device = if opts.gpus_per_task > 0 { "cuda:0" } else { "cpu" };
    s.push_str(&format!(
        r#"
# One cell of the grid in "$grid" per array task. On SIGUSR1 (the time limit is near) or
# SIGTERM (requeue, preemption, scancel) the cell finishes its step, writes its checkpoint
# and exits; after SIGUSR1 this script requeues the task, which then resumes exactly.
set -u
grid={grid}
exe={exe}
echo "task $SLURM_ARRAY_TASK_ID of job ${{SLURM_ARRAY_JOB_ID:-?}} on $(hostname) at $(date -Is), restart ${{SLURM_RESTART_COUNT:-0}}"
got=
"$exe" study --run-cell "$SLURM_ARRAY_TASK_ID" --out "$grid" --device {device} --threads "${{SLURM_CPUS_PER_TASK:-1}}" &
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
        grid = quote(&dir_text),
        exe = quote(&exe_text),
    ));
    Ok(s)
}

/// The array script's text for `grid` (see [`array_script_for`]).
pub fn array_script(grid: &Grid, exe: &Path, opts: &SlurmOptions) -> Result<String> {
    array_script_for(&grid.dir, grid.cells.len(), exe, opts)
}

/// The collect script's text for the grid in `dir` (checked as [`array_script_for`]).
pub fn collect_script_for(dir: &Path, exe: &Path, opts: &SlurmOptions) -> Result<String> {
    opts.check()?;
    let dir_text = check_path("--out", dir)?;
    let exe_text = check_path("the binary's path", exe)?;
    let mut s = header(opts, &job_name(dir, "-collect"));
    s.push_str(&format!("#SBATCH --output={}\n#SBATCH --cpus-per-task=1\n", output_path(&dir_text, "collect.out")));
    s.push_str(&format!(
        "\n# Aggregates the grid in \"$grid\" once every array task has ended (submitted with \
         --dependency=afterany).\ngrid={}\nexe={}\nexec \"$exe\" study --collect \"$grid\"\n",
        quote(&dir_text),
        quote(&exe_text)
    ));
    Ok(s)
}

/// Checks every value that would reach the scripts of a grid in `dir` run by `exe`, so
/// that a refusal comes before anything (the grid's plan included) is written.
pub fn check_inputs(dir: &Path, exe: &Path, opts: &SlurmOptions) -> Result<()> {
    opts.check()?;
    check_path("--out", dir)?;
    check_path("the binary's path", exe)?;
    Ok(())
}

/// The collect script's text for `grid`.
pub fn collect_script(grid: &Grid, exe: &Path, opts: &SlurmOptions) -> Result<String> {
    collect_script_for(&grid.dir, exe, opts)
}

/// Writes both scripts; returns their paths (array, collect).
pub fn write_scripts(grid: &Grid, exe: &Path, opts: &SlurmOptions) -> Result<(PathBuf, PathBuf)> {
    // Both texts before anything is written: a refused value leaves no file behind.
    let (array_text, collect_text) = (array_script(grid, exe, opts)?, collect_script(grid, exe, opts)?);
    let dir = grid.dir.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let array = dir.join("array.sbatch");
    let collect = dir.join("collect.sbatch");
    crate::files::write_atomic(&array, array_text.as_bytes())?;
    crate::files::write_atomic(&collect, collect_text.as_bytes())?;
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
        return Err(Error::Config(format!("sbatch failed: {}", crate::error::one_line(&err))));
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
        let shared = crate::study::plan::tests::template(2);
        let spec = GridSpec::new(vec![20, 56], vec![Arch::Plain, Arch::Resnet], vec![0, 1, 2], &shared).unwrap();
        Grid::plan(dir, spec).unwrap()
    }

    #[test]
    fn array_script_has_one_task_per_cell_and_is_preemption_safe() {
        let tmp = tempfile::tempdir().unwrap();
        let g = grid(tmp.path());
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("4:00:00".into()),
            account: Some("proj-x".into()),
            cpus_per_task: 8,
            gpus_per_task: 1,
            throttle: Some(4),
            extra: vec!["#SBATCH --qos=long".into()],
        };
        let s = array_script(&g, Path::new("/opt/bin/pvr"), &opts).unwrap();
        for line in [
            "#SBATCH --array=0-11%4",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=4:00:00",
            "#SBATCH --account=proj-x",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --requeue",
            "#SBATCH --signal=B:USR1@120",
            "#SBATCH --qos=long",
            "exe=/opt/bin/pvr\n",
            "\"$exe\" study --run-cell \"$SLURM_ARRAY_TASK_ID\" --out \"$grid\" --device cuda:0 --threads \"${SLURM_CPUS_PER_TASK:-1}\" &",
            "trap 'got=USR1; kill -USR1 \"$child\" 2>/dev/null' USR1",
            "scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"",
        ] {
            assert!(s.contains(line), "missing `{line}` in\n{s}");
        }
        // #SBATCH lines must all come before the first command.
        let first_cmd = s.lines().position(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap();
        assert!(s.lines().skip(first_cmd).all(|l| !l.starts_with("#SBATCH")));
        let plain = array_script(&g, Path::new("/x"), &SlurmOptions::default()).unwrap();
        assert!(plain.contains("#SBATCH --array=0-11\n") && plain.contains("--device cpu"));
        assert!(!plain.contains("--gpus-per-task") && !plain.contains("--partition"));
    }

    #[test]
    fn collect_script_aggregates() {
        let tmp = tempfile::tempdir().unwrap();
        let g = grid(tmp.path());
        let s = collect_script(&g, Path::new("/opt/bin/pvr"), &SlurmOptions::default()).unwrap();
        assert!(
            s.contains(&format!(
                "grid={}\nexe=/opt/bin/pvr\nexec \"$exe\" study --collect \"$grid\"",
                tmp.path().display()
            )),
            "{s}"
        );
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

    #[test]
    fn values_that_could_end_a_line_are_refused_naming_the_flag_and_the_character() {
        let bad = |o: SlurmOptions| o.check().unwrap_err().to_string();
        let e = bad(SlurmOptions { partition: Some("gpu\ntouch /tmp/x".into()), ..Default::default() });
        assert!(e.starts_with("--partition: ") && e.contains("a newline (\\n)"), "{e}");
        let e = bad(SlurmOptions { time: Some("1:00\r".into()), ..Default::default() });
        assert!(e.starts_with("--time: ") && e.contains("carriage return"), "{e}");
        let e = bad(SlurmOptions { account: Some("a\0b".into()), ..Default::default() });
        assert!(e.starts_with("--account: ") && e.contains("NUL"), "{e}");
        let e = bad(SlurmOptions { account: Some("a$(id)".into()), ..Default::default() });
        assert!(e.starts_with("--account: ") && e.contains("'$'"), "{e}");
        for line in ["#SBATCH --qos=long\ntouch x", "touch x", "#SBATCH", "#SBATCHx --qos=1", "# SBATCH --qos=1"] {
            let e = bad(SlurmOptions { extra: vec![line.into()], ..Default::default() });
            assert!(e.starts_with("--sbatch-line: "), "{line:?}: {e}");
        }
        let e = array_script_for(Path::new("/g\ntouch /tmp/x"), 1, Path::new("/x"), &SlurmOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--out: ") && e.contains("newline"), "{e}");
        let e =
            collect_script_for(Path::new("/g"), Path::new("/b\rin"), &SlurmOptions::default()).unwrap_err().to_string();
        assert!(e.starts_with("the binary's path: ") && e.contains("carriage return"), "{e}");
    }

    #[test]
    fn the_directory_reaches_commands_only_through_a_quoted_variable() {
        let dir = Path::new("/tmp/a b'c$(touch x)`id`%a");
        let s = array_script_for(dir, 2, Path::new("/x"), &SlurmOptions::default()).unwrap();
        assert!(s.contains("grid='/tmp/a b'\\''c$(touch x)`id`%a'\n"), "{s}");
        assert!(s.contains("#SBATCH --output='/tmp/a b'\\''c$(touch x)`id`%%a/slurm/cell-%a.out'\n"), "{s}");
        assert!(s.contains("#SBATCH --job-name=resnet-cifar-a_b_c__touch_x__id__a\n"), "{s}");
        assert_eq!(s.matches("touch x").count(), 2, "{s}"); // the assignment and the output path only
    }
}
