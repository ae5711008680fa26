//! The generated Slurm scripts say only what was meant (issue #25): a property test writes
//! both scripts from arbitrary strings for every value that reaches them (partition, time,
//! account, `--sbatch-line`, the grid directory, the binary's path): quotes, `$(…)`,
//! backticks, newlines, `%`, backslashes, unicode. Each result is either refused, with an
//! error naming the flag of a value that holds a refused character, or both scripts pass
//! `bash -n`, keep every `#SBATCH` line whole and before the first command, and, run by
//! bash with `sbatch`, `scontrol` and the binary replaced by stubs that log their argv, run
//! exactly one command (the binary, with exactly the arguments meant) and create no file.
//!
//! Cases: `PROPTEST_CASES` (default 256; `make fuzz` runs 10,000, each case drawing every
//! value).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use resnet_cifar::study::slurm::{array_script_for, collect_script_for, SlurmOptions};

mod common;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Pieces of hostile text: shell syntax, Slurm syntax, control characters (rarer, so that
/// many cases get past the checks and are run), unicode, any character.
fn fragment() -> impl Strategy<Value = String> {
    let s = |t: &'static str| Just(t.to_string());
    prop_oneof![
        10 => "[a-z0-9]{1,4}",
        6 => s("'"),
        6 => s("\""),
        6 => s("$(touch pwned)"),
        6 => s("`touch pwned`"),
        4 => s(";touch pwned;"),
        4 => s("&& touch pwned #"),
        4 => s("%"),
        4 => s("%a"),
        4 => s("$HOME"),
        4 => s("${x:-y}"),
        1 => s("\\"),
        4 => s(" "),
        4 => s("#"),
        4 => s("é☃😀 "),
        3 => s("*?[!]"),
        3 => s("--run-cell 7"),
        3 => s("#SBATCH --qos=x"),
        2 => any::<char>().prop_map(String::from),
        1 => s("\ntouch pwned\n"),
        1 => s("\r"),
        1 => s("\0"),
    ]
}

fn hostile() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 1..6).prop_map(|v| v.concat())
}

/// An `#SBATCH` value: absent, an ordinary one, or hostile (rarer: it is refused, and the
/// case's other values are then not run).
fn sbatch_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![3 => Just(None), 3 => "[a-z0-9:_-]{1,10}".prop_map(Some), 1 => hostile().prop_map(Some)]
}

/// An `--sbatch-line`: an ordinary one, `#SBATCH ` and hostile text, or hostile text.
fn sbatch_line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("#SBATCH --qos=long".to_string()),
        3 => hostile().prop_map(|h| format!("#SBATCH {h}")),
        1 => hostile(),
    ]
}

/// What the checks must refuse, by an oracle written apart from the library: the flags
/// whose values hold a refused character.
fn refused_flags(opts: &SlurmOptions, dir: &str, exe: &str) -> Vec<&'static str> {
    let mut bad = Vec::new();
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.,:+@=/".contains(c);
    for (flag, v) in [("--partition", &opts.partition), ("--time", &opts.time), ("--account", &opts.account)] {
        if v.as_ref().is_some_and(|v| v.is_empty() || !v.chars().all(ok_char)) {
            bad.push(flag);
        }
    }
    for line in &opts.extra {
        let single = !line.chars().any(char::is_control);
        let rest = line.strip_prefix("#SBATCH").unwrap_or("");
        if !single || !rest.starts_with([' ', '\t']) || rest.trim().is_empty() {
            bad.push("--sbatch-line");
        }
    }
    let bad_path = |p: &str| p.chars().any(|c| c.is_control() || c == '\\');
    if bad_path(dir) {
        bad.push("--out");
    }
    if bad_path(exe) {
        bad.push("the binary's path");
    }
    bad
}

const STUB: &str = "#!/bin/bash\n{ printf '%s\\0' \"$0\" \"$@\"; printf '\\n'; } >> \"$STUB_LOG\"\n";

fn write_stub(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, STUB).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The commands the stubs logged: each an argv (argv[0] as invoked).
fn logged(log: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split_terminator("\0\n").map(|rec| rec.split('\0').map(String::from).collect()).collect()
}

/// Runs `script` with bash in the empty directory `cwd`, stubs first on PATH.
fn run_script(script: &Path, cwd: &Path, stubs: &Path, log: &Path) -> std::process::Output {
    Command::new("/bin/bash")
        .arg(script)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", stubs.display()))
        .env("STUB_LOG", log)
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_ARRAY_JOB_ID", "41")
        .env("SLURM_CPUS_PER_TASK", "3")
        .output()
        .unwrap()
}

/// The number of `#SBATCH` lines the options ask for: a value that split its line would
/// change it.
fn sbatch_lines(opts: &SlurmOptions, array: bool) -> usize {
    let header = 1 + [&opts.partition, &opts.time, &opts.account].iter().filter(|v| v.is_some()).count();
    if array {
        header + 6 + usize::from(opts.gpus_per_task > 0) + opts.extra.len()
    } else {
        header + 2
    }
}

fn check_script(text: &str, expected_sbatch: usize, name: &str) -> Result<(), TestCaseError> {
    let first_cmd = text.lines().position(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap();
    let sbatch: Vec<&str> = text.lines().filter(|l| l.starts_with("#SBATCH")).collect();
    prop_assert_eq!(sbatch.len(), expected_sbatch, "{}: #SBATCH lines in\n{}", name, text);
    prop_assert!(text.lines().take(first_cmd).filter(|l| l.starts_with("#SBATCH")).count() == expected_sbatch);
    Ok(())
}

fn one_case(opts: SlurmOptions, dir_name: String, exe_name: String) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // The grid directory need not exist: the script names it, the stub logs it.
    let dir = format!("{}/grids/{dir_name}", root.display());
    // The binary's file name: anything a file name may be.
    let exe_file = exe_name.replace('/', "_");
    let exe_file = if matches!(exe_file.as_str(), "." | "..") { format!("x{exe_file}") } else { exe_file };
    let exe_file: String = exe_file.chars().take(60).collect();
    let exe = format!("{}/bin/{exe_file}", root.display());
    let bad = refused_flags(&opts, &dir, &exe);
    let array = array_script_for(Path::new(&dir), 3, Path::new(&exe), &opts);
    let collect = collect_script_for(Path::new(&dir), Path::new(&exe), &opts);
    if !bad.is_empty() {
        for result in [&array, &collect] {
            let e = match result {
                Err(e) => e.to_string(),
                Ok(s) => return Err(TestCaseError::fail(format!("{bad:?} should be refused, got\n{s}"))),
            };
            prop_assert!(bad.iter().any(|f| e.starts_with(&format!("{f}: "))), "{:?} but: {}", bad, e);
            prop_assert!(!e.contains('\n') && !e.contains('\r'), "one line: {:?}", e);
        }
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let (array, collect) = match (array, collect) {
        (Ok(a), Ok(c)) => (a, c),
        (a, c) => return Err(TestCaseError::fail(format!("refused without cause: {a:?} {c:?}"))),
    };
    check_script(&array, sbatch_lines(&opts, true), "array")?;
    check_script(&collect, sbatch_lines(&opts, false), "collect")?;
    for dir in ["bin", "stubs", "cwd", "scripts"] {
        std::fs::create_dir(root.join(dir)).unwrap();
    }
    write_stub(Path::new(&exe));
    write_stub(&root.join("stubs/sbatch"));
    write_stub(&root.join("stubs/scontrol"));
    let scripts = [("array", &array), ("collect", &collect)];
    for (name, text) in scripts {
        std::fs::write(root.join("scripts").join(name), text).unwrap();
    }
    let log = PathBuf::from(format!("{}.log", root.display()));
    let _cleanup = Cleanup(log.clone());
    let before = common::tree(root);
    let device = if opts.gpus_per_task > 0 { "cuda:0" } else { "cpu" };
    let argvs = [
        ("array", vec![exe.as_str(), "study", "--run-cell", "0", "--out", &dir, "--device", device, "--threads", "3"]),
        ("collect", vec![exe.as_str(), "study", "--collect", &dir]),
    ];
    for (name, expected) in argvs {
        let script = root.join("scripts").join(name);
        let syntax = Command::new("/bin/bash").arg("-n").arg(&script).output().unwrap();
        prop_assert!(syntax.status.success(), "bash -n {}: {}", name, String::from_utf8_lossy(&syntax.stderr));
        let _ = std::fs::remove_file(&log);
        let out = run_script(&script, &root.join("cwd"), &root.join("stubs"), &log);
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert!(out.status.success() && stderr.is_empty(), "{} script: {:?} {}", name, out.status, stderr);
        let calls = logged(&log);
        prop_assert_eq!(calls.len(), 1, "{} script ran {:?}", name, calls);
        prop_assert_eq!(&calls[0], &expected, "{} script", name);
        prop_assert!(
            common::tree(root) == before,
            "{} script created or changed a file under {}",
            name,
            root.display()
        );
    }
    RAN.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Removes the stubs' log (kept beside the scratch directory, so the tree stays as it was).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

static REFUSED: AtomicUsize = AtomicUsize::new(0);
static RAN: AtomicUsize = AtomicUsize::new(0);

#[test]
fn scripts_from_arbitrary_values_are_refused_or_run_exactly_one_command() {
    let cases = cases();
    let mut runner = TestRunner::new(ProptestConfig::with_cases(cases));
    let values = (
        sbatch_value(),
        sbatch_value(),
        sbatch_value(),
        prop::collection::vec(sbatch_line(), 0..3),
        hostile(),
        hostile(),
        0u32..2,
        prop::option::of(1u32..5),
    );
    let result = runner.run(&values, |(partition, time, account, extra, dir_name, exe_name, gpus, throttle)| {
        let opts = SlurmOptions { partition, time, account, cpus_per_task: 3, gpus_per_task: gpus, throttle, extra };
        one_case(opts, dir_name, exe_name)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (refused, ran) = (REFUSED.load(Ordering::Relaxed), RAN.load(Ordering::Relaxed));
    eprintln!("{cases} cases, each drawing every value: {refused} refused, {ran} written and run");
    // Both outcomes must be common, or the property says little.
    assert!(ran * 10 >= cases as usize && refused * 10 >= cases as usize, "{refused} refused, {ran} run");
}

/// The examples of the issue, each refused naming its flag and the newline.
#[test]
fn the_issues_examples_are_refused() {
    let exe = Path::new("/opt/resnet-cifar");
    let e = array_script_for(Path::new("grid\ntouch /tmp/x"), 1, exe, &SlurmOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--out: the value holds a newline (\\n), which would end a line of the generated Slurm script; give it without"
    );
    let opts = SlurmOptions { partition: Some("gpu\ntouch /tmp/x".into()), ..Default::default() };
    let e = array_script_for(Path::new("grid"), 1, exe, &opts).unwrap_err().to_string();
    assert!(e.starts_with("--partition: the value holds a newline (\\n)"), "{e}");
    let opts = SlurmOptions { extra: vec!["touch /tmp/x".into()], ..Default::default() };
    let e = array_script_for(Path::new("grid"), 1, exe, &opts).unwrap_err().to_string();
    assert!(e.starts_with("--sbatch-line: `touch /tmp/x` is not a single `#SBATCH --option` line"), "{e}");
}
