//! A refusal leaves no trace (issue #25): every command that refuses (train, `train
//! --resume`, the study runner `study`, landscape, report, plot, eval) is run
//! on a scratch tree, and the tree afterwards must equal the tree before, byte for byte,
//! recursively (`common::tree`): no lock file, no directory, no half-written output.
//! Table-driven; the rows are the issue's: a foreign `config.json`, a run in use, a
//! corrupt checkpoint, an output equal to an input, and a directory that cannot be written.
//!
//! The tests run as root in CI, and root writes into a `chmod 0555` directory anyway, so
//! "cannot be written" is built so that it refuses as root too: the output's parent is a
//! regular file (`ENOTDIR` for everyone). Where the tests run as another user, the
//! `chmod 0555` rows run as well.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

mod common;

const TINY: &str = "--depth 8 --epochs 1 --limit-train 128 --limit-test 64 --batch-size 64 --device cpu --threads 1";
const STUDY: &str = "--depths 8 --archs resnet --seeds 0 --epochs 1 --limit-train 128 --limit-test 64 \
                     --batch-size 64 --quiet --jobs 1 --device cpu";

/// Which program a row runs.
#[derive(Clone, Copy, Debug)]
enum Program {
    Cli,
    Study,
}

struct Row {
    command: &'static str,
    case: &'static str,
    program: Program,
    /// Arguments, split on spaces after `{D}` (the scratch directory) and `{T}` (a tiny
    /// run's flags) are put in; `extra` are appended whole (they may hold spaces or
    /// newlines).
    args: &'static str,
    extra: &'static [&'static str],
    setup: fn(&Path),
    /// A lock file this test holds while the command runs (a run in use).
    hold: Option<&'static str>,
    expect: &'static str,
}

/// A finished tiny run, trained once; each row copies it.
fn trained() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("refusals-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        common::link_data(&dir.join("data"));
        let tiny = TINY.replace("--epochs 1", "--epochs 2"); // two points per curve, for plot
        let args = format!("train --data-dir {0}/data --out {0}/run {tiny}", dir.display());
        let o = Command::new(env!("CARGO_BIN_EXE_resnet-cifar")).args(args.split_whitespace()).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dir.join("run")
    })
}

/// `d/data` (links to the synthetic data) and a copy of the trained run in `d/run`.
fn data_and_run(d: &Path) {
    common::link_data(&d.join("data"));
    std::fs::create_dir(d.join("run")).unwrap();
    for e in std::fs::read_dir(trained()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && e.file_name() != ".lock" {
            std::fs::copy(e.path(), d.join("run").join(e.file_name())).unwrap();
        }
    }
}

fn corrupt(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let n = b.len();
    for x in &mut b[n / 2..n / 2 + 64] {
        *x ^= 0x5a;
    }
    b[10] ^= 0xff; // the safetensors header, too
    std::fs::write(path, b).unwrap();
}

const FOREIGN_CONFIG: &str = r#"{"tool": "another program", "lr": "fast"}"#;

fn rows() -> Vec<Row> {
    let row = |command, case, program, args, setup: fn(&Path), expect| Row {
        command,
        case,
        program,
        args,
        extra: &[],
        setup,
        hold: None,
        expect,
    };
    vec![
        row(
            "train",
            "foreign config.json",
            Program::Cli,
            "train --data-dir {D}/data --out {D}/out {T}",
            |d| {
                common::link_data(&d.join("data"));
                std::fs::create_dir(d.join("out")).unwrap();
                std::fs::write(d.join("out/config.json"), FOREIGN_CONFIG).unwrap();
            },
            "is not empty and holds no run (found config.json)",
        ),
        Row {
            hold: Some("out/.lock"),
            ..row(
                "train",
                "run in use",
                Program::Cli,
                "train --data-dir {D}/data --out {D}/out {T}",
                |d| {
                    common::link_data(&d.join("data"));
                    std::fs::create_dir(d.join("out")).unwrap();
                },
                "is in use",
            )
        },
        row(
            "train",
            "output under a regular file",
            Program::Cli,
            "train --data-dir {D}/data --out {D}/file/out {T}",
            |d| {
                common::link_data(&d.join("data"));
                std::fs::write(d.join("file"), "not a directory").unwrap();
            },
            "Not a directory",
        ),
        row(
            "resume",
            "foreign config.json",
            Program::Cli,
            "train --resume {D}/run",
            |d| {
                data_and_run(d);
                std::fs::write(d.join("run/config.json"), FOREIGN_CONFIG).unwrap();
            },
            "config.json",
        ),
        Row {
            hold: Some("run/.lock"),
            ..row("resume", "run in use", Program::Cli, "train --resume {D}/run", data_and_run, "is in use")
        },
        row(
            "resume",
            "corrupt checkpoint",
            Program::Cli,
            "train --resume {D}/run",
            |d| {
                data_and_run(d);
                corrupt(&d.join("run/last.safetensors"));
            },
            "last.safetensors",
        ),
        row(
            "study",
            "foreign config.json in a cell",
            Program::Study,
            "--out {D}/grid --data-dir {D}/data {S}",
            |d| {
                common::link_data(&d.join("data"));
                std::fs::create_dir_all(d.join("grid/resnet-8/seed-0")).unwrap();
                std::fs::write(d.join("grid/resnet-8/seed-0/config.json"), FOREIGN_CONFIG).unwrap();
            },
            "config.json",
        ),
        row(
            "study",
            "output under a regular file",
            Program::Study,
            "--out {D}/file/grid --data-dir {D}/data {S}",
            |d| {
                common::link_data(&d.join("data"));
                std::fs::write(d.join("file"), "not a directory").unwrap();
            },
            "Not a directory",
        ),
        Row {
            extra: &["--partition", "gpu\ntouch pwned"],
            ..row(
                "study --slurm",
                "a newline in --partition",
                Program::Study,
                "--out {D}/grid --data-dir {D}/data {S} --slurm",
                |d| common::link_data(&d.join("data")),
                "--partition: the value holds a newline",
            )
        },
        Row {
            extra: &["--sbatch-line", "touch pwned"],
            ..row(
                "study --slurm",
                "an --sbatch-line that is not #SBATCH",
                Program::Study,
                "--out {D}/grid --data-dir {D}/data {S} --slurm",
                |d| common::link_data(&d.join("data")),
                "--sbatch-line: `touch pwned` is not a single `#SBATCH --option` line",
            )
        },
        row(
            "landscape",
            "output equal to input",
            Program::Cli,
            "landscape --weights {D}/run/best.safetensors -o {D}/run/best.safetensors --data-dir {D}/data --device cpu",
            data_and_run,
            "best.safetensors",
        ),
        row(
            "landscape",
            "corrupt checkpoint",
            Program::Cli,
            "landscape --weights {D}/run/best.safetensors -o {D}/l.csv --data-dir {D}/data --device cpu --grid 3 --images 64",
            |d| {
                data_and_run(d);
                corrupt(&d.join("run/best.safetensors"));
            },
            "best.safetensors",
        ),
        row(
            "report",
            "output equal to input (through a link)",
            Program::Cli,
            "report {D}/run -o {D}/run/report.html",
            |d| {
                data_and_run(d);
                std::os::unix::fs::symlink("metrics.csv", d.join("run/report.html")).unwrap();
            },
            "is the input",
        ),
        row(
            "report --eval",
            "corrupt checkpoint in the second run",
            Program::Cli,
            "report --eval {D}/run {D}/run2 -o {D}/r.html --data-dir {D}/data --device cpu",
            |d| {
                data_and_run(d);
                std::fs::rename(d.join("run"), d.join("run2")).unwrap();
                data_and_run_again(d);
                corrupt(&d.join("run2/best.safetensors"));
            },
            "best.safetensors",
        ),
        row(
            "report",
            "output under a regular file",
            Program::Cli,
            "report {D}/run -o {D}/file/r.html",
            |d| {
                data_and_run(d);
                std::fs::write(d.join("file"), "not a directory").unwrap();
            },
            "file/r.html: Not a directory",
        ),
        row(
            "plot",
            "output equal to input",
            Program::Cli,
            "plot {D}/run -o {D}/run/metrics.csv --ymax 100",
            data_and_run,
            "metrics.csv",
        ),
        row(
            "plot",
            "output under a regular file",
            Program::Cli,
            "plot {D}/run -o {D}/file/curves.png --ymax 100",
            |d| {
                data_and_run(d);
                std::fs::write(d.join("file"), "not a directory").unwrap();
            },
            "Not a directory",
        ),
        row(
            "eval",
            "corrupt checkpoint",
            Program::Cli,
            "eval --weights {D}/run/last.safetensors --data-dir {D}/data --device cpu --confusion {D}/c.png",
            |d| {
                data_and_run(d);
                corrupt(&d.join("run/last.safetensors"));
            },
            "last.safetensors",
        ),
        row(
            "eval",
            "output equal to input",
            Program::Cli,
            "eval --weights {D}/run/best.safetensors --data-dir {D}/data --device cpu --confusion {D}/c.png",
            |d| {
                data_and_run(d);
                std::os::unix::fs::symlink("run/best.safetensors", d.join("c.png")).unwrap();
            },
            "is the input",
        ),
    ]
}

/// A second copy of the trained run in `d/run` (after the first moved away).
fn data_and_run_again(d: &Path) {
    std::fs::create_dir(d.join("run")).unwrap();
    for e in std::fs::read_dir(trained()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && e.file_name() != ".lock" {
            std::fs::copy(e.path(), d.join("run").join(e.file_name())).unwrap();
        }
    }
}

/// Rows that need a user other than root: a `chmod 0555` directory.
fn permission_rows() -> Vec<Row> {
    let ro = |d: &Path| {
        data_and_run(d);
        std::fs::create_dir(d.join("ro")).unwrap();
        std::fs::set_permissions(d.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    };
    let row = |command, program, args| Row {
        command,
        case: "read-only directory (chmod 0555)",
        program,
        args,
        extra: &[],
        setup: ro,
        hold: None,
        expect: "ro",
    };
    vec![
        row("train", Program::Cli, "train --data-dir {D}/data --out {D}/ro/out {T}"),
        row("study", Program::Study, "--out {D}/ro/grid --data-dir {D}/data {S}"),
        row("plot", Program::Cli, "plot {D}/run -o {D}/ro/c.png"),
        row("report", Program::Cli, "report {D}/run -o {D}/ro/r.html"),
    ]
}

fn run(row: &Row, dir: &Path) -> Output {
    let args = row.args.replace("{T}", TINY).replace("{S}", STUDY).replace("{D}", &dir.display().to_string());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resnet-cifar"));
    if let Program::Study = row.program {
        cmd.arg("study");
    }
    cmd.args(args.split_whitespace()).args(row.extra).env("RUST_BACKTRACE", "1").current_dir(dir);
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn check(row: &Row) {
    let name = format!("{} / {}", row.command, row.case);
    let tmp = tempfile::tempdir().unwrap();
    (row.setup)(tmp.path());
    let held = row.hold.map(|p| {
        let f = File::create(tmp.path().join(p)).unwrap();
        f.try_lock().unwrap();
        f
    });
    let before = common::tree(tmp.path());
    let out = run(row, tmp.path());
    drop(held);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(1 | 2)), "{name}: exit status {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{name}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{name}: one line expected: {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(row.expect),
        "{name}: `{}` not in: {stderr}",
        row.expect
    );
    let after = common::tree(tmp.path());
    for (path, entry) in &before {
        assert!(after.get(path) == Some(entry), "{name}: {} changed or vanished", path.display());
    }
    let new: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(new.is_empty(), "{name}: the refusal left {new:?} behind");
    eprintln!("{name}: {}", lines[0]);
}

#[test]
fn every_refusal_leaves_the_tree_as_it_was() {
    let rows = rows();
    for row in &rows {
        check(row);
    }
    let commands: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.command.split_whitespace().next().unwrap()).collect();
    assert_eq!(commands.len(), 7, "{commands:?}");
    if unsafe { libc::geteuid() } == 0 {
        // Root writes into a chmod 0555 directory: those rows cannot refuse. The rows with
        // a regular file where a directory should be (above) refuse for root too.
        eprintln!("as root: the chmod 0555 rows do not apply (root writes anyway); the `output under a regular file` rows ran");
    } else {
        for row in &permission_rows() {
            check(row);
        }
    }
}
