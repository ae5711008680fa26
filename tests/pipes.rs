//! A closed output ends a command quietly (issue #25): every subcommand, and the study
//! runner, with its stdout a pipe whose reader is gone (or piped into `head -1`), stops
//! like a Unix tool, by SIGPIPE (141 in the shell) or exit 0, never with a panic or a
//! backtrace; a study so stopped continues when run again. And `download_cifar.sh`
//! without a network says in one line what failed and how to use `--archive`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

mod common;

const TINY: &str = "--depth 8 --epochs 1 --limit-train 128 --limit-test 64 --batch-size 64 --device cpu --threads 1";
const STUDY: &str = "--depths 8 --archs plain,resnet --seeds 0 --epochs 1 --limit-train 128 --limit-test 64 \
                     --batch-size 64 --jobs 1 --device cpu --quiet";

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_resnet-cifar"))
}

/// A pipe whose read end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are fresh and owned here; the read end is closed at once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

/// Exit 0, or ended by SIGPIPE (as a signal, or as the 141 a shell or the study reports).
fn quiet_end(status: ExitStatus) -> bool {
    status.success() || status.signal() == Some(libc::SIGPIPE) || status.code() == Some(141)
}

fn no_panic(name: &str, status: ExitStatus, stderr: &[u8]) {
    let stderr = String::from_utf8_lossy(stderr);
    assert!(quiet_end(status), "{name}: {status:?}: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace") && !stderr.contains("Broken pipe"),
        "{name}: {stderr}"
    );
}

/// Data, a trained tiny run and an image in `d`.
fn fixtures(d: &Path) {
    common::link_data(&d.join("data"));
    let args = format!("train --data-dir {0}/data --out {0}/run {TINY}", d.display());
    let o = Command::new(bin()).args(args.split_whitespace()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 128]))
        .save(d.join("cat.png"))
        .unwrap();
}

/// Every subcommand, with arguments that would succeed and print.
fn commands() -> Vec<(&'static str, String)> {
    vec![
        ("train", format!("train --data-dir {{D}}/data --out {{D}}/new {TINY}")),
        ("train --resume", "train --resume {D}/run".into()),
        ("summary", "summary --depth 110".into()),
        ("eval", "eval --weights {D}/run/best.safetensors --data-dir {D}/data --device cpu --limit-test 64".into()),
        ("predict", "predict --weights {D}/run/best.safetensors --device cpu {D}/cat.png {D}/cat.png".into()),
        ("plot", "plot {D}/run -o {D}/curves.png --ymax 100".into()),
        ("grad-flow", "grad-flow --depth 8,14 -o {D}/g.csv --data-dir {D}/data --device cpu".into()),
        (
            "responses",
            "responses --weights {D}/run/best.safetensors -o {D}/r.csv --data-dir {D}/data --device cpu --limit-test 64"
                .into(),
        ),
        (
            "landscape",
            "landscape --weights {D}/run/best.safetensors -o {D}/l.csv --data-dir {D}/data --device cpu --dims 1 --grid 3 --images 64"
                .into(),
        ),
        ("bench", "bench --depth 8 --iters 1 --warmup 0 --batch-size 16 --device cpu --threads 1 --data-dir {D}/data".into()),
        ("report", "report {D}/run -o {D}/r.html".into()),
        ("help", "--help".into()),
    ]
}

#[test]
fn every_subcommand_ends_quietly_when_its_output_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    fixtures(tmp.path());
    let d = tmp.path().display().to_string();
    for (name, args) in commands() {
        let args = args.replace("{D}", &d);
        // The reader gone before the first line.
        let o = Command::new(bin())
            .args(args.split_whitespace())
            .env("RUST_BACKTRACE", "1")
            .stdout(closed_pipe())
            .output()
            .unwrap();
        no_panic(&format!("{name} > closed pipe"), o.status, &o.stderr);
        // Into `head -1`, as a user would.
        let _ = std::fs::remove_dir_all(tmp.path().join("new"));
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!("\"$0\" {args} | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"))
            .arg(bin())
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        no_panic(&format!("{name} | head -1"), o.status, &o.stderr);
        let _ = std::fs::remove_dir_all(tmp.path().join("new"));
        eprintln!("{name}: quiet with its stdout closed ({:?})", o.status);
    }
    // A closed stderr: the one-line error of a refused command has nowhere to go.
    let o = Command::new(bin())
        .args(["train", "--resume", &format!("{d}/nowhere")])
        .env("RUST_BACKTRACE", "1")
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert!(o.status.signal() == Some(libc::SIGPIPE), "{:?}", o.status);
}

#[test]
fn a_study_whose_output_is_closed_stops_and_continues_when_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    common::link_data(&tmp.path().join("data"));
    let args = format!("--out {0}/grid --data-dir {0}/data {STUDY}", tmp.path().display());
    let o = common::study()
        .args(args.split_whitespace())
        .env("RUST_BACKTRACE", "1")
        .stdout(closed_pipe())
        .output()
        .unwrap();
    no_panic("study > closed pipe", o.status, &o.stderr);
    let stderr = String::from_utf8_lossy(&o.stderr);
    // 141 from the runner, or SIGPIPE itself when the exit flushes what stdout still holds.
    assert!(o.status.code() == Some(141) || o.status.signal() == Some(libc::SIGPIPE), "{:?}: {stderr}", o.status);
    assert!(stderr.contains("rerun the same command to continue"), "{stderr}");
    // Into `head -1`: the first line, then the grid stops (or ends) quietly.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("\"$0\" study {args} | head -1; exit ${{PIPESTATUS[0]}}"))
        .arg(bin())
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    no_panic("study | head -1", o.status, &o.stderr);
    eprintln!("study | head -1: {:?}, printed {:?}", o.status, String::from_utf8_lossy(&o.stdout).trim());
    // Run again with an open stdout: the grid ends, every cell finished.
    let o = common::study().args(args.split_whitespace()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(tmp.path().join("grid/results.md")).unwrap();
    assert!(md.contains("| plain-8 |") && md.contains("| resnet-8 |"), "{md}");
}

#[test]
fn download_without_a_network_says_how_to_use_a_local_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("download_cifar.sh");
    for (dataset, var) in [("cifar10", "CIFAR10"), ("cifar100", "CIFAR100")] {
        let dest = tmp.path().join(dataset);
        // A port nothing listens on: the same failure as no network, without depending on one.
        let o = Command::new(&script)
            .args(["--dataset", dataset, "--dest"])
            .arg(&dest)
            .env(format!("{var}_URL"), format!("http://127.0.0.1:9/{dataset}-binary.tar.gz"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{dataset}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{dataset}: one line expected: {stderr}");
        assert!(lines[0].starts_with("error: cannot download http://127.0.0.1:9/"), "{stderr}");
        assert!(lines[0].contains(&format!("--dataset {dataset} --archive FILE")), "{stderr}");
        assert!(lines[0].contains(&format!("{var}_ARCHIVE=FILE")), "{stderr}");
        assert!(!dest.exists(), "{dataset}: the failed download left {}", dest.display());
        eprintln!("{dataset}: {}", lines[0]);
    }
}
