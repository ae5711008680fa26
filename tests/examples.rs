//! The library's examples run as a reader would run them, on the tiny synthetic CIFAR-10
//! data: `plain_vs_residual` trains a plain and a residual net through `train::run` and
//! prints both curves side by side and both final errors.

use std::process::Command;

mod common;

#[test]
fn plain_vs_residual_trains_both_nets_and_prints_their_curves_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::link_data(&data);
    let out = tmp.path().join("runs");
    let o = Command::new(common::example_bin("plain_vs_residual"))
        .args(["--depth", "8", "--epochs", "2", "--limit-train", "256", "--limit-test", "128", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    // The table: a header naming both nets, then one row per epoch with four errors.
    let header = stdout.lines().position(|l| l.contains("plain-8") && l.contains("resnet-8")).expect(&stdout);
    let rows: Vec<Vec<f64>> = stdout
        .lines()
        .skip(header + 2)
        .take(2)
        .map(|l| l.split_whitespace().map(|w| w.parse().unwrap_or_else(|_| panic!("{l}"))).collect())
        .collect();
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), [1.0, 2.0], "{stdout}");
    assert!(rows.iter().all(|r| r.len() == 5 && r[1..].iter().all(|e| (0.0..=100.0).contains(e))), "{stdout}");
    // The final errors of each are the last row's, and the runs' own metrics.csv.
    for (name, cols) in [("plain-8", 1..3), ("resnet-8", 3..5)] {
        let line =
            format!("{name}: final train error {:.2}%, test error {:.2}%", rows[1][cols.start], rows[1][cols.end - 1]);
        assert!(stdout.contains(&line), "`{line}` not in\n{stdout}");
        let metrics = std::fs::read_to_string(out.join(name).join("metrics.csv")).unwrap();
        assert_eq!(metrics.lines().count(), 3, "{name}: header and two epochs");
    }
    // A depth that is not 6n+2: one line, saying so.
    let o = Command::new(common::example_bin("plain_vs_residual"))
        .args(["--depth", "21", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("bad"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.lines().count() == 1 && stderr.contains("6n+2"), "{stderr}");
}
