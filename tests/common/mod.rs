//! What the integration tests share: one synthetic data set in the official layout, written
//! once (per target directory) and linked into each test's directory, and honest skips.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use resnet_cifar::data;

/// A read-only data directory in the official layout: 10,000 synthetic images per file
/// (the same 10,000 in every file), made once and kept under the target's tmp directory.
pub fn shared_data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synthetic-cifar-10-v1");
        if !dir.join("complete").exists() {
            let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).unwrap();
            let synth = data::synthetic(10_000, 0, 5);
            for name in data::TRAIN_FILES.iter().chain([&data::TEST_FILE]) {
                data::write_batch_file(&tmp.join(name), &synth.train).unwrap();
            }
            std::fs::write(tmp.join("complete"), "").unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            if std::fs::rename(&tmp, &dir).is_err() {
                // Another test binary got there first.
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        dir
    })
}

/// Fills `dir` with links to the shared synthetic files. A test that changes a file must
/// replace the link (see [`rewrite`]), never write through it.
pub fn link_data(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for name in data::TRAIN_FILES.iter().chain([&data::TEST_FILE]) {
        std::os::unix::fs::symlink(shared_data_dir().join(name), dir.join(name)).unwrap();
    }
}

/// Replaces `path` (a link to shared data, say) by a file of its own with `bytes`.
pub fn rewrite(path: &Path, bytes: &[u8]) {
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Whether this is CI (`CI=true`), where nothing the CI script provides may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The path in environment variable `var`, or `None` with `skipped: <reason>` on stderr.
/// Under `CI=true` a missing variable fails the test: CI provides it (`.ci/run`).
pub fn env_path(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) => Some(PathBuf::from(v)),
        None if in_ci() => panic!("{var} is not set, but .ci/run provides it: CI must not skip this test"),
        None => {
            eprintln!("skipped: {var} not set");
            None
        }
    }
}

/// Fails (never skips) a test that needs the fault points when they are compiled out.
pub fn require_fault_injection() {
    #[cfg(not(feature = "fault-injection"))]
    panic!("this test needs the fault points: run it with `--features fault-injection` (`make test` does)");
}
