//! The README's commands run, from one list: docs/commands.toml holds every row of the
//! README's "Commands" table (the command as shown, what it does) and the concrete runs that
//! check it, so that the table and this test cannot drift apart. The table must be the
//! list's rendering, byte for byte; each run must be its row's command with the placeholders
//! filled (the notation is read by `readme_commands/pattern.rs`) plus flags that only scale
//! it down, and a row's runs must together take every optional part and choice it shows;
//! then every run runs, in order, on synthetic data, and must exit 0 and write or print what
//! the list says. A `make` row runs as `make -n` plus the cheap part of its recipe, with the
//! reason in the list.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde::Deserialize;

mod common;
#[path = "readme_commands/pattern.rs"]
mod pattern;

use pattern::Pattern;

const LIST: &str = "docs/commands.toml";
/// The comment above the README's table: the table is the lines after it, up to a blank line.
const MARKER: &str = "<!-- commands: the rendering of docs/commands.toml; tests/readme_commands.rs runs each row -->";
/// The flags a run's `scale` may set: each only makes a run smaller or quieter on the CPU,
/// never changes what it does.
const SCALING_FLAGS: [&str; 13] = [
    "--epochs",
    "--limit-train",
    "--limit-test",
    "--depth",
    "--depths",
    "--seeds",
    "--batch-size",
    "--batches",
    "--iters",
    "--warmup",
    "--images",
    "--grid",
    "--threads",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct List {
    command: Vec<Row>,
}

/// A row of the table (docs/commands.toml's header says what each field means).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    shows: String,
    does: String,
    run: Vec<Run>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Run {
    args: String,
    #[serde(default)]
    scale: String,
    #[serde(default)]
    creates: Vec<String>,
    prints: Option<String>,
    recipe: Option<String>,
    #[serde(default)]
    instead: Vec<String>,
    why: Option<String>,
}

impl Run {
    fn is_make(&self) -> bool {
        self.args.starts_with("make ")
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn list() -> List {
    toml::from_str(&read(LIST)).unwrap_or_else(|e| panic!("{LIST}: {e}"))
}

/// The table as README.md shows it: `|` escaped in both columns.
fn render(list: &List) -> String {
    let mut table = String::from("| command | what it does |\n| --- | --- |\n");
    for row in &list.command {
        let cell = |s: &str| s.replace('|', "\\|");
        writeln!(table, "| `{}` | {} |", cell(&row.shows), cell(&row.does)).unwrap();
    }
    table
}

/// The lines of `readme` after the marker, up to the first blank line.
fn table_in(readme: &str) -> String {
    assert_eq!(readme.matches(MARKER).count(), 1, "README.md must hold `{MARKER}` once, above the commands table");
    let after = &readme[readme.find(MARKER).unwrap() + MARKER.len()..];
    let after = after.strip_prefix('\n').unwrap_or(after);
    after.split_inclusive('\n').take_while(|l| !l.trim().is_empty()).collect()
}

/// The words of a command line; the list's commands use no quoting or other shell syntax.
fn words(line: &str) -> Vec<String> {
    assert!(
        !line.contains(['\'', '"', '$', '`', '|', ';', '&', '<', '>', '*', '(', ')', '\\']),
        "{LIST}: `{line}` uses shell syntax: a run is plain words"
    );
    line.split_whitespace().map(String::from).collect()
}

/// `args` with each flag of `scale` replacing the value of the same flag, or added at the end.
fn scaled(args: &[String], scale: &[String]) -> Vec<String> {
    let mut out = args.to_vec();
    for pair in scale.chunks(2) {
        match out.iter().position(|w| *w == pair[0]) {
            Some(i) => out[i + 1] = pair[1].clone(),
            None => out.extend_from_slice(pair),
        }
    }
    out
}

/// The set-up's Python (`make test` sets RESNET_CIFAR_PYTHON to one with TensorBoard).
fn python() -> String {
    std::env::var("RESNET_CIFAR_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The process for a command line of the list.
fn command_for(words: &[String]) -> Command {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let (program, args): (PathBuf, &[String]) = match w.as_slice() {
        ["resnet-cifar", ..] => (env!("CARGO_BIN_EXE_resnet-cifar").into(), &words[1..]),
        ["cargo", "run", "--release", "--example", name, "--", ..] => (common::example_bin(name), &words[6..]),
        ["cargo", ..] => (env!("CARGO").into(), &words[1..]),
        ["python", ..] => (python().into(), &words[1..]),
        ["bash", ..] | ["make", ..] => (w[0].into(), &words[1..]),
        _ => panic!("{LIST}: `{}`: no such program here (resnet-cifar, cargo, python, bash, make)", words.join(" ")),
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

fn run_ok(words: &[String], dir: &Path) -> Output {
    let out = command_for(words).current_dir(dir).output().unwrap_or_else(|e| panic!("`{}`: {e}", words.join(" ")));
    let hint = if words[0] == "python" { " (`python` is RESNET_CIFAR_PYTHON, which `make test` sets)" } else { "" };
    assert!(
        out.status.success(),
        "`{}` failed ({}){hint}:\n{}{}",
        words.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A directory laid out like the clone's root, as docs/commands.toml's header describes it.
fn scratch() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::link_data(&tmp.path().join("data/cifar-10-batches-bin"));
    common::link_cifar100(&tmp.path().join("data/cifar-100-binary"));
    std::fs::create_dir(tmp.path().join("images")).unwrap();
    let rgb = |x: u32, y: u32| image::Rgb([(x * 6) as u8, (y * 5) as u8, 128]);
    image::RgbImage::from_fn(40, 30, rgb).save(tmp.path().join("images/cat.png")).unwrap();
    image::RgbImage::from_fn(64, 48, rgb).save(tmp.path().join("images/dog.jpg")).unwrap();
    for name in ["Makefile", "Cargo.toml", "bench", "fuzz"] {
        std::os::unix::fs::symlink(root().join(name), tmp.path().join(name)).unwrap();
    }
    tmp
}

/// Runs `run` in `dir` and checks what it wrote and printed.
fn check_run(run: &Run, dir: &Path) {
    for file in &run.creates {
        assert!(!dir.join(file).exists(), "`{}` is to create {file}, which an earlier run wrote", run.args);
    }
    let mut stdout = String::new();
    if run.is_make() {
        let mut dry_run = vec!["make".to_string(), "-n".to_string()];
        dry_run.extend(words(&run.args).into_iter().skip(1));
        let dry = run_ok(&dry_run, dir);
        let recipe = run.recipe.as_deref().unwrap();
        let printed = String::from_utf8_lossy(&dry.stdout);
        assert!(printed.contains(recipe), "`{}`'s recipe no longer holds `{recipe}`:\n{printed}", run.args);
        for line in &run.instead {
            stdout += &String::from_utf8_lossy(&run_ok(&words(line), dir).stdout);
        }
    } else {
        let line = scaled(&words(&run.args), &words(&run.scale));
        stdout += &String::from_utf8_lossy(&run_ok(&line, dir).stdout);
    }
    for file in &run.creates {
        let written = std::fs::metadata(dir.join(file)).is_ok_and(|m| m.len() > 0);
        assert!(written, "`{}` exited 0 but did not write {file}", run.args);
    }
    if let Some(text) = &run.prints {
        assert!(stdout.contains(text.as_str()), "`{}` did not print `{text}`:\n{stdout}", run.args);
    }
}

#[test]
fn the_readme_table_is_the_rendering_of_the_list() {
    let expected = render(&list());
    let table = table_in(&read("README.md"));
    assert!(
        table == expected,
        "README.md's table after `{MARKER}` is not the rendering of {LIST}: edit the list, then put this \
         in the README in place of the table:\n\n{expected}"
    );
}

/// Each run is its row's command with placeholders filled and optional parts chosen, scaled
/// only by SCALING_FLAGS; a row's runs take every optional part and choice; every run checks
/// something of its output; a `make` row says what it runs instead, and why.
#[test]
fn every_run_is_its_rows_command_filled_in() {
    for row in list().command {
        let pattern = Pattern::parse(&row.shows).unwrap_or_else(|e| panic!("{LIST}: {e}"));
        assert!(!row.run.is_empty(), "{LIST}: `{}` has no run: every row of the table is run", row.shows);
        let mut taken = BTreeSet::new();
        for run in &row.run {
            let args = words(&run.args);
            let found = pattern.matches(&args.iter().map(String::as_str).collect::<Vec<_>>());
            let found = found.unwrap_or_else(|| panic!("{LIST}: `{}` is not `{}` filled in", run.args, row.shows));
            taken.extend(found);
            let scale = words(&run.scale);
            assert!(scale.len().is_multiple_of(2), "{LIST}: `{}`: scale is pairs of a flag and its value", run.scale);
            for pair in scale.chunks(2) {
                assert!(SCALING_FLAGS.contains(&pair[0].as_str()), "{LIST}: `{}` is not a scaling flag", pair[0]);
                assert!(!pair[1].starts_with("--"), "{LIST}: `{}` needs a value", pair[0]);
                assert!(
                    args.iter().filter(|w| **w == pair[0]).count() <= 1,
                    "{LIST}: `{}` twice in `{}`",
                    pair[0],
                    run.args
                );
            }
            let checks = !run.creates.is_empty() || run.prints.as_ref().is_some_and(|p| !p.is_empty());
            let special = (run.recipe.is_some(), !run.instead.is_empty(), run.why.is_some());
            if run.is_make() {
                assert!(special == (true, true, true), "{LIST}: `{}` needs recipe, instead and why", run.args);
                assert!(scale.is_empty(), "{LIST}: `{}`: a make target is not scaled; its `instead` is", run.args);
            } else {
                assert!(special == (false, false, false), "{LIST}: recipe, instead and why are for make only");
                assert!(checks, "{LIST}: `{}` checks nothing of its output: add creates or prints", run.args);
            }
        }
        let untaken = pattern.untaken(&taken);
        assert!(untaken.is_empty(), "{LIST}: no run of `{}` takes {}", row.shows, untaken.join(", "));
    }
}

/// Runs every run of the list in order, as docs/commands.toml's header describes, and prints
/// how long each took (`--nocapture`).
#[test]
fn every_readme_command_runs_scaled_down() {
    let dir = scratch();
    let all = Instant::now();
    let mut ran = 0;
    for row in list().command {
        for run in &row.run {
            let start = Instant::now();
            check_run(run, dir.path());
            eprintln!("{:6.1} s  {}", start.elapsed().as_secs_f64(), run.args);
            ran += 1;
        }
    }
    eprintln!("{ran} runs in {:.1} s", all.elapsed().as_secs_f64());
}
