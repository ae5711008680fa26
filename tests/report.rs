//! `resnet-cifar report` checked in a real browser: headless Chromium renders the report of
//! a run, of an eval'd checkpoint and of a 4-cell study to PNG and dumps its DOM. The DOM
//! must hold the final test error exactly as `train` printed it (and the study's Table 6,
//! the eval's confusion matrix), the picture must not be blank, and the file must fetch
//! nothing: no script, no external style, image or font.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_resnet-cifar"))
}

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Trains a tiny run into `out`; returns the final test error as `train` prints it.
fn train(out: &Path) -> String {
    let data = common::shared_data_dir();
    let stdout = ok(bin()
        .args(["train", "--depth", "8", "--epochs", "2", "--limit-train", "256", "--limit-test", "128"])
        .args(["--batch-size", "64", "--threads", "1", "--device", "cpu", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(out));
    let done = stdout.lines().find(|l| l.starts_with("done:")).expect("train's last line");
    let after = done.split(", test error ").nth(1).expect("the final test error");
    after.split_whitespace().next().unwrap().to_string()
}

/// Checks that the report at `html` is self-contained, renders it in Chromium and returns
/// its DOM after rendering.
fn render(chromium: &Path, html: &Path, png: &Path) -> String {
    let text = std::fs::read_to_string(html).unwrap();
    for external in ["<script", "<link", "<img", "<iframe", "src=", "href=", "@import", "url("] {
        assert!(!text.contains(external), "{}: contains {external}", html.display());
    }
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    let browser = |extra: &[String]| {
        let mut c = Command::new(chromium);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        run_with_timeout(c, Duration::from_secs(120))
    };
    browser(&[format!("--screenshot={}", png.display()), "--window-size=1200,2200".into()]);
    let img = image::open(png).unwrap_or_else(|e| panic!("{}: no screenshot: {e}", png.display())).to_luma8();
    let n = img.pixels().len() as f64;
    let mean = img.pixels().map(|p| p.0[0] as f64).sum::<f64>() / n;
    let variance = img.pixels().map(|p| (p.0[0] as f64 - mean).powi(2)).sum::<f64>() / n;
    let dark = img.pixels().filter(|p| p.0[0] < 128).count();
    assert!(
        variance > 100.0 && dark > 2000,
        "{}: looks blank (variance {variance:.1}, {dark} dark pixels)",
        png.display()
    );
    browser(&["--dump-dom".into()])
}

/// Runs `c`, killing it after `limit`; returns its stdout.
fn run_with_timeout(mut c: Command, limit: Duration) -> String {
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{c:?} failed: {status}");
            break;
        }
        assert!(start.elapsed() < limit, "{c:?} hung: killed after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

#[test]
fn run_and_evaluated_checkpoint_reports_render_in_chromium() {
    let Some(chromium) = common::chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let final_err = train(&run);
    let report = tmp.path().join("run.html");
    ok(bin().arg("report").arg(&run).arg("-o").arg(&report));
    let dom = render(&chromium, &report, &tmp.path().join("run.png"));
    assert!(dom.contains(&format!("data-value=\"final-test-error\">{final_err}<")), "final test error {final_err}");
    assert!(dom.contains("Per-epoch table") && dom.contains("config.json") && dom.contains("<svg"));
    assert!(!dom.contains("Evaluation of"), "no evaluation before eval");

    // eval scores the checkpoint (and draws its heat map); the report then shows both.
    let svg = tmp.path().join("confusion.svg");
    let weights = run.join("best.safetensors");
    let scores = ok(bin()
        .args(["eval", "--json", "--device", "cpu", "--weights"])
        .arg(&weights)
        .arg("--data-dir")
        .arg(common::shared_data_dir())
        .arg("--confusion")
        .arg(&svg));
    let scores: serde_json::Value = serde_json::from_str(&scores).unwrap();
    let top1 = format!("{:.2}%", scores["top1_error"].as_f64().unwrap());
    assert!(std::fs::read_to_string(&svg).unwrap().contains("airplane"));
    let report = tmp.path().join("eval.html");
    ok(bin().arg("report").arg(&run).arg("-o").arg(&report));
    let dom = render(&chromium, &report, &tmp.path().join("eval.png"));
    assert!(dom.contains(&format!("data-value=\"eval-top1-error\">{top1}<")), "eval's top-1 error {top1}");
    assert!(dom.contains("confusion matrix") && dom.contains("truck"));

    // `report --eval` scores the checkpoint itself, as eval does.
    std::fs::remove_file(run.join("best.eval.json")).unwrap();
    let report = tmp.path().join("report-eval.html");
    ok(bin().args(["report", "--eval", "--device", "cpu"]).arg(&run).arg("-o").arg(&report));
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("best.eval.json")).unwrap()).unwrap();
    assert_eq!(again["top1_error"], scores["top1_error"]);
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains(&format!("data-value=\"eval-top1-error\">{top1}<")));
}

#[test]
fn a_four_cell_study_writes_a_report_that_renders_in_chromium() {
    let Some(chromium) = common::chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = common::shared_data_dir();
    let out = tmp.path().join("study");
    let mut c = common::study();
    c.args(["--depths", "8,14", "--seeds", "0", "--epochs", "2", "--limit-train", "256", "--limit-test", "128"])
        .args(["--batch-size", "64", "--device", "cpu", "--threads", "1", "--quiet", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(&out);
    ok(&mut c);
    let html: PathBuf = out.join("report.html");
    assert!(html.is_file(), "the study runner writes report.html next to results.md");
    let dom = render(&chromium, &html, &tmp.path().join("study.png"));
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let cells = results["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for cell in cells {
        let err = format!("<td>{:.2}</td>", cell["final_test_err"].as_f64().unwrap());
        assert!(dom.contains(&err), "cell {} with {err}", cell["dir"]);
        // Each cell logs into its own directory: `tensorboard --logdir` overlays them all.
        let dir = out.join(cell["dir"].as_str().unwrap());
        assert_eq!(resnet_cifar::tensorboard::event_files(&dir).unwrap().len(), 1, "{}", dir.display());
    }
    for want in ["Table 6", "Fig. 6", "Fig. 7", "plain-14", "resnet-8"] {
        assert!(dom.contains(want), "{want}");
    }
    // `report` on the study directory gives the same sections.
    let again = tmp.path().join("again.html");
    ok(bin().arg("report").arg(&out).arg("-o").arg(&again));
    assert!(std::fs::read_to_string(&again).unwrap().contains("Table 6"));
}

#[test]
fn bad_input_to_report_and_confusion_is_one_line_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = d.join("run");
    train(&run);
    std::fs::create_dir(d.join("notes")).unwrap();
    std::fs::write(d.join("notes/a.txt"), "x").unwrap();
    std::fs::create_dir(d.join("dir.html")).unwrap();
    let bad_scores = d.join("bad-scores");
    train(&bad_scores);
    std::fs::write(bad_scores.join("best.eval.json"), "{\"checkpoint\": 3}").unwrap();
    let fifo_run = d.join("fifo-run");
    train(&fifo_run);
    std::fs::remove_file(fifo_run.join("config.json")).unwrap();
    let c = std::ffi::CString::new(fifo_run.join("config.json").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let s = |p: &Path| p.display().to_string();
    let weights = s(&run.join("best.safetensors"));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["report".into(), s(&d.join("nope")), "-o".into(), s(&d.join("r.html"))], "no such directory"),
        (vec!["report".into(), s(&d.join("notes")), "-o".into(), s(&d.join("r.html"))], "not a run directory"),
        (vec!["report".into(), s(&run), "-o".into(), s(&d.join("r.txt"))], "name it *.html"),
        (vec!["report".into(), s(&run), "-o".into(), s(&d.join("dir.html"))], "is a directory"),
        (vec!["report".into(), s(&bad_scores), "-o".into(), s(&d.join("r.html"))], "best.eval.json"),
        (vec!["report".into(), s(&fifo_run), "-o".into(), s(&d.join("r.html"))], "is a FIFO"),
        (
            vec!["eval".into(), "--device".into(), "cpu".into(), "--weights".into(), weights.clone()]
                .into_iter()
                .chain(["--confusion".into(), s(&d.join("c.gif"))])
                .collect(),
            ".png or .svg",
        ),
    ];
    for (args, expect) in cases {
        let before = common::tree(d);
        let mut c = bin();
        c.args(&args).stdout(Stdio::null()).stderr(Stdio::piped());
        let o = c.spawn().unwrap().wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        let code = o.status.code();
        assert!(code.is_some_and(|c| c != 0 && c != 101), "{args:?}: exit {code:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: expected {expect:?} in {stderr}");
        assert_eq!(common::tree(d), before, "{args:?}: files changed");
    }
}
