//! The documentation keeps its promises: every relative link and image in README.md and
//! docs/*.md names a file that exists (and an anchor after `#` a heading of that file), the
//! README's five-minute tour runs as written, and docs/export_eval.py, shown verbatim in
//! docs/interop.md, gives in PyTorch the error that `resnet-cifar eval` gives.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The comment that marks the README's tour block: the test runs the lines of the fenced
/// block that follows it, so the README and the test cannot drift apart.
const TOUR_MARKER: &str = "<!-- tour: tests/docs.rs runs these -->";
/// The comment that marks docs/interop.md's copy of docs/export_eval.py.
const EXPORT_MARKER: &str = "<!-- docs/export_eval.py: tests/docs.rs checks that this block equals the file -->";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_resnet-cifar"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// README.md and every docs/*.md.
fn doc_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    files.insert(0, root().join("README.md"));
    files
}

/// The lines of `text` outside fenced code blocks, numbered from 1, with inline code spans
/// removed (a `[i](x)` inside backticks is code, not a link).
fn prose(text: &str) -> Vec<(usize, String)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            let without_code: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
            lines.push((i + 1, without_code));
        }
    }
    lines
}

/// The targets of the Markdown links and images `[text](target)` and `![alt](target)` in `line`.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                targets.push(after[..end].to_string());
                rest = &after[end..];
            }
            None => break,
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, letters, digits, `-` and `_` kept, spaces
/// made `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (a repeated heading gets `-1`, `-2`, … as on GitHub).
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(line[hashes..].trim());
            let mut anchor = base.clone();
            let mut n = 0;
            while !seen.insert(anchor.clone()) {
                n += 1;
                anchor = format!("{base}-{n}");
            }
        }
    }
    seen
}

/// Anchors are checked against the headings of the file they point into.
#[test]
fn every_relative_link_and_image_names_a_file_that_exists() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in doc_files() {
        let text = read(&file);
        let dir = file.parent().unwrap();
        for (line_no, line) in prose(&text) {
            for target in link_targets(&line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = target.split_once('#').map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
                let resolved = if path.is_empty() { file.clone() } else { dir.join(path) };
                let name = format!("{}:{line_no}: {target}", file.strip_prefix(root()).unwrap().display());
                if !resolved.exists() {
                    broken.push(format!("{name} (no such file: {})", resolved.display()));
                } else if let Some(anchor) = anchor {
                    let is_markdown = resolved.extension().is_some_and(|x| x == "md");
                    if !is_markdown || !anchors(&read(&resolved)).contains(anchor) {
                        broken.push(format!("{name} (no heading #{anchor} in {})", resolved.display()));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // The README alone links a dozen guides and shows half a dozen figures.
    assert!(checked >= 40, "only {checked} relative links found: is the link parser broken?");
}

#[test]
fn the_link_checker_finds_links_images_and_anchors() {
    assert_eq!(link_targets("see [a](docs/a.md#x) and ![f](figures/f.png)."), ["docs/a.md#x", "figures/f.png"]);
    assert!(prose("```sh\n[a](b)\n```\nx `[c](d)` y").iter().all(|(_, l)| link_targets(l).is_empty()));
    assert_eq!(slug("Reliability, third round (issue #25)"), "reliability-third-round-issue-25");
    assert_eq!(slug("ATen calls per training step, and the C++ shim"), "aten-calls-per-training-step-and-the-c-shim");
    let a = anchors("# T\n## Results\n```\n# not a heading\n```\n## Results\n");
    assert_eq!(a, HashSet::from(["t".to_string(), "results".to_string(), "results-1".to_string()]));
}

/// The lines of the fenced block that follows `marker` in `text` (which must hold the marker
/// once, with the block right after it).
fn fenced_block_after(text: &str, marker: &str, what: &str) -> String {
    assert_eq!(text.matches(marker).count(), 1, "{what} must hold the marker `{marker}` once");
    let after = &text[text.find(marker).unwrap() + marker.len()..];
    let after = after.trim_start_matches('\n');
    assert!(after.starts_with("```"), "{what}: a fenced block must follow `{marker}`");
    let body = &after[after.find('\n').unwrap() + 1..];
    let end = body.find("\n```").unwrap_or_else(|| panic!("{what}: the block after `{marker}` is not closed"));
    body[..end + 1].to_string()
}

/// The tour's commands: one per line (a trailing `\` continues it), `#` comments dropped,
/// each split into words (the tour uses no quoting, and the test refuses any).
fn tour_commands(block: &str) -> Vec<Vec<String>> {
    let joined = block.replace("\\\n", " ");
    let mut commands = Vec::new();
    for line in joined.lines() {
        let line = line.split(" #").next().unwrap().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        assert!(
            !line.contains(['\'', '"', '$', '`', '|', ';', '&', '<', '>', '*', '(', ')']),
            "the tour's line `{line}` uses shell syntax: this test runs plain words"
        );
        commands.push(line.split_whitespace().map(String::from).collect());
    }
    commands
}

/// Runs the README's tour as written, in a directory that holds synthetic CIFAR-10 at the
/// default data path, with `resnet-cifar` the binary under test; every command must succeed
/// and every file or directory under `runs/` that the tour names must exist afterwards.
#[test]
fn the_five_minute_tour_runs_as_written() {
    let block = fenced_block_after(&read(&root().join("README.md")), TOUR_MARKER, "README.md");
    let commands = tour_commands(&block);
    let subcommands: Vec<&str> = commands.iter().filter_map(|c| c.get(1).map(String::as_str)).collect();
    assert_eq!(subcommands, ["train", "plot", "eval", "report"], "the tour is train → plot → eval → report");
    let tmp = tempfile::tempdir().unwrap();
    common::link_data(&tmp.path().join("data/cifar-10-batches-bin"));
    let mut named = Vec::new();
    for words in &commands {
        assert_eq!(words[0], "resnet-cifar", "every tour line runs resnet-cifar: `{}`", words.join(" "));
        run_ok(bin().args(&words[1..]).current_dir(tmp.path()));
        named.extend(words.iter().filter(|w| w.starts_with("runs/")).cloned());
    }
    assert!(named.len() >= 4, "the tour names its outputs under runs/: {named:?}");
    for path in named {
        assert!(tmp.path().join(&path).exists(), "the tour names {path}, but it was not written");
    }
    for file in ["metrics.csv", "best.safetensors", "best.eval.json"] {
        assert!(tmp.path().join("runs/tour").join(file).is_file(), "runs/tour/{file} missing after the tour");
    }
}

#[test]
fn the_export_guide_shows_export_eval_py_verbatim() {
    let shown = fenced_block_after(&read(&root().join("docs/interop.md")), EXPORT_MARKER, "docs/interop.md");
    let file = read(&root().join("docs/export_eval.py"));
    assert!(
        shown == file,
        "docs/interop.md's block after `{EXPORT_MARKER}` differs from docs/export_eval.py: copy the file into it"
    );
}

/// `W` and `N` of export_eval.py's `top-1 error E % (W of N test images)`.
fn wrong_of(stdout: &[u8]) -> (i64, i64) {
    let text = String::from_utf8_lossy(stdout);
    let inner = text.split_once('(').and_then(|(_, r)| r.split_once(" test images)")).map(|(i, _)| i);
    let parts: Vec<i64> = inner.unwrap_or("").split(" of ").filter_map(|n| n.trim().parse().ok()).collect();
    assert_eq!(parts.len(), 2, "export_eval.py printed `{}`, not `top-1 error E % (W of N test images)`", text.trim());
    (parts[0], parts[1])
}

/// A checkpoint of a short `train` with the default normalisation (`pixel-mean`: the mean
/// image, subtracted after dividing by 255): docs/export_eval.py in PyTorch must count as many
/// test images wrong as `resnet-cifar eval` (give or take one, for round-off between the two
/// runtimes' kernels). One network only: each evaluation of the 10,000 test images costs
/// seconds, and this file must stay under a minute.
#[test]
fn export_eval_py_reproduces_evals_error() {
    let Some(py) = common::python_with_torch() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    common::link_data(&data_dir);
    let run = tmp.path().join("run");
    run_ok(
        bin()
            .args(["train", "--depth", "8", "--epochs", "1", "--batch-size", "64", "--limit-train", "256"])
            .args(["--limit-test", "500", "--threads", "1", "--no-tensorboard", "--data-dir"])
            .arg(&data_dir)
            .arg("--out")
            .arg(&run),
    );
    let weights = run.join("best.safetensors");
    let eval = run_ok(bin().args(["eval", "--json", "--data-dir"]).arg(&data_dir).arg("--weights").arg(&weights));
    let scores: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(scores["normalization"], "pixel-mean", "the default normalisation is the one users get wrong");
    let images = scores["images"].as_i64().unwrap();
    let ours = (scores["top1_error"].as_f64().unwrap() * images as f64 / 100.0).round() as i64;
    let theirs = run_ok(Command::new(&py).arg(root().join("docs/export_eval.py")).arg(&weights).arg(&data_dir));
    let (wrong, n) = wrong_of(&theirs.stdout);
    assert_eq!(n, images, "export_eval.py evaluated {n} images, resnet-cifar eval {images}");
    assert!((wrong - ours).abs() <= 1, "export_eval.py finds {wrong} of {n} wrong, resnet-cifar eval {ours}");
    // A network that gets everything right (or nothing) would not tell preprocessings apart.
    assert!((500..9000).contains(&ours), "{ours} of {images} wrong: the comparison needs a partly trained network");
}
