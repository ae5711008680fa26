//! What the integration tests share: synthetic CIFAR-10 and CIFAR-100 data sets in the
//! official layouts, each written once (per target directory) and linked into each test's
//! directory, and honest skips.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use resnet_cifar::data;

/// A directory under the target's tmp directory, filled once by `fill` (a test binary that
/// finds it complete uses it as it is; one that loses the race to make it uses the other's).
fn shared_dir(name: &str, fill: impl FnOnce(&Path)) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if !dir.join("complete").exists() {
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        fill(&tmp);
        std::fs::write(tmp.join("complete"), "").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another test binary got there first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    dir
}

/// Fills `dir` with links to the files `names` of `shared`. A test that changes a file must
/// replace the link (see [`rewrite`]), never write through it.
fn link_all<'a>(shared: &Path, names: impl IntoIterator<Item = &'a str>, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for name in names {
        std::os::unix::fs::symlink(shared.join(name), dir.join(name)).unwrap();
    }
}

/// A read-only CIFAR-10 data directory in the official layout: 10,000 synthetic images per
/// file (the same 10,000 in every file), made once and kept under the target's tmp directory.
pub fn shared_data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        shared_dir("synthetic-cifar-10-v1", |tmp| {
            let synth = data::synthetic(10_000, 0, 5);
            for name in data::TRAIN_FILES.iter().chain([&data::TEST_FILE]) {
                data::write_batch_file(&tmp.join(name), &synth.train).unwrap();
            }
        })
    })
}

/// Fills `dir` with links to the shared synthetic CIFAR-10 files.
pub fn link_data(dir: &Path) {
    link_all(shared_data_dir(), data::TRAIN_FILES.into_iter().chain([data::TEST_FILE]), dir);
}

/// Records of the synthetic CIFAR-100: `train.bin` holds them five times (50,000 records),
/// `test.bin` once.
pub const CIFAR100_RECORDS: usize = 10_000;
pub const CIFAR100_FILES: [&str; 4] = ["train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt"];

/// The (coarse, fine) labels of synthetic CIFAR-100 record `i` (any record of either file).
pub fn cifar100_labels(i: usize) -> (u8, u8) {
    let fine = ((i % CIFAR100_RECORDS) * 37 % 100) as u8;
    (fine / 5, fine)
}

/// The first pixel byte of synthetic CIFAR-100 record `i`, to check images stay with labels.
pub fn cifar100_first_pixel(i: usize) -> u8 {
    ((i % CIFAR100_RECORDS) % 251) as u8
}

/// The synthetic CIFAR-100's class names: `fine_class_NN` and `coarse_class_NN`.
pub fn cifar100_name(fine: bool, class: u8) -> String {
    format!("{}_class_{class:02}", if fine { "fine" } else { "coarse" })
}

/// The bytes of CIFAR-100's `test.bin` as the official layout has them, written here
/// byte by byte rather than by the library, so that the loader is checked against the
/// layout and not against itself: per record a coarse label byte, a fine label byte and
/// 3,072 pixel bytes (red, green, blue planes), each class with its own colour.
pub fn cifar100_records() -> Vec<u8> {
    let mut out = Vec::with_capacity(CIFAR100_RECORDS * 3074);
    for i in 0..CIFAR100_RECORDS {
        let (coarse, fine) = cifar100_labels(i);
        out.extend([coarse, fine]);
        let colour = [fine.wrapping_mul(53), fine.wrapping_mul(97), fine.wrapping_mul(151)];
        let start = out.len();
        for c in colour {
            out.extend((0..1024u32).map(|p| c.wrapping_add((p.wrapping_mul(2_654_435_761) >> 27) as u8)));
        }
        out[start] = cifar100_first_pixel(i);
    }
    out
}

/// A read-only CIFAR-100 directory in the official layout (`cifar-100-binary/`): `train.bin`
/// (50,000 records), `test.bin` (10,000) and both names files, made once.
pub fn shared_cifar100_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        shared_dir("synthetic-cifar-100-v1", |tmp| {
            let records = cifar100_records();
            std::fs::write(tmp.join("train.bin"), records.repeat(5)).unwrap();
            std::fs::write(tmp.join("test.bin"), &records).unwrap();
            let names = |fine: bool, n: u8| (0..n).map(|c| cifar100_name(fine, c) + "\n").collect::<String>() + "\n";
            std::fs::write(tmp.join("fine_label_names.txt"), names(true, 100)).unwrap();
            std::fs::write(tmp.join("coarse_label_names.txt"), names(false, 20)).unwrap();
        })
    })
}

/// Fills `dir` with links to the shared synthetic CIFAR-100 files.
pub fn link_cifar100(dir: &Path) {
    link_all(shared_cifar100_dir(), CIFAR100_FILES, dir);
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

/// The set-up's Python (`RESNET_CIFAR_PYTHON`, else `python3`) when it has torch, numpy and
/// safetensors, or `None` with `skipped: <reason>` on stderr. Under `CI=true` a Python
/// without them fails the test: the set-up (scripts/env.sh) installs them.
pub fn python_with_torch() -> Option<String> {
    let py = std::env::var("RESNET_CIFAR_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok =
        Command::new(&py).args(["-c", "import torch, numpy, safetensors"]).output().is_ok_and(|o| o.status.success());
    match ok {
        true => Some(py),
        false if in_ci() => panic!("{py} has no torch/numpy/safetensors, but the set-up provides them in CI"),
        false => {
            eprintln!(
                "skipped: no Python with torch, numpy and safetensors ({py}); run through `make test` to get one"
            );
            None
        }
    }
}

/// Fails (never skips) a test that needs the fault points when they are compiled out.
pub fn require_fault_injection() {
    #[cfg(not(feature = "fault-injection"))]
    panic!("this test needs the fault points: run it with `--features fault-injection` (`make test` does)");
}

/// What TensorBoard's own reader (`EventAccumulator`, in the set-up's Python:
/// `RESNET_CIFAR_PYTHON`, which `make test` installs with `tensorboard`) finds in the
/// run directory `dir`: tests/tensorboard/read_events.py's JSON. Fails, never skips.
pub fn tensorboard_events(dir: &Path) -> serde_json::Value {
    let py = std::env::var("RESNET_CIFAR_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tensorboard/read_events.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py} (RESNET_CIFAR_PYTHON; `make test` sets it): {e}"));
    assert!(
        out.status.success(),
        "TensorBoard's reader failed on {} (pip `tensorboard` in {py}; `make test` installs it): {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `resnet-cifar study`, the study grid's command (its flags still to add).
pub fn study() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_resnet-cifar"));
    c.arg("study");
    c
}

/// The example `name` in `target/<profile>/examples/` (the tests live in
/// `target/<profile>/deps/`). `cargo test` builds examples only when no target is named,
/// so it is brought up to date here with the cargo that built this test, once per binary.
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(p) => p,
    };
    let built = Command::new(env!("CARGO"))
        .args(["build", "--example", name, "--profile", profile, "--features", "fault-injection"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    assert!(
        built.is_ok_and(|s| s.success()) && bin.is_file(),
        "{} is missing and could not be built: run `cargo build --release --example {name}` first",
        bin.display()
    );
    bin
}

/// Headless Chromium (Debian's `chromium`; `make test` installs it when missing), or
/// `None` with `skipped: …` outside CI. Under `CI=true` a missing browser fails the test.
pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("RESNET_CIFAR_CHROMIUM").map(PathBuf::from).or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
        })
    });
    match found {
        Some(p) => Some(p),
        None if in_ci() => {
            panic!("no chromium here, but `make test` installs it (scripts/test-deps.sh): CI must not skip")
        }
        None => {
            eprintln!("skipped: no chromium (install Debian's `chromium`, or set RESNET_CIFAR_CHROMIUM)");
            None
        }
    }
}

/// A 644-byte JPEG whose header claims 11784×8198 pixels: found by `make fuzz` (target
/// `image`, a timeout: over 10 s of decoding and 700 MB in `predict`). Now refused from its
/// header.
pub const HUGE_JPEG: &[u8] = &[
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x02, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
    0x00, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x20, 0x06, 0x2e, 0x08, 0x03, 0x01, 0x11, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11,
    0x01, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x08, 0x06, 0x06, 0x07, 0x06, 0x05, 0x08, 0x07, 0x07, 0x07, 0x09, 0x09, 0x08,
    0x0a, 0x0c, 0x14, 0x0d, 0x0c, 0x0b, 0x0b, 0x0c, 0x19, 0x12, 0x13, 0x0f, 0x14, 0x1d, 0x1a, 0x1f, 0x1e, 0x1d, 0x1a,
    0x1c, 0x1c, 0x20, 0x24, 0x2e, 0x27, 0x20, 0x22, 0x2c, 0x23, 0x1c, 0x1c, 0x28, 0x37, 0x29, 0x2c, 0x30, 0x31, 0x34,
    0x34, 0x34, 0x1f, 0x27, 0x39, 0x3d, 0x38, 0x32, 0x3c, 0x2e, 0x33, 0x34, 0x32, 0xff, 0xdb, 0x00, 0x43, 0x01, 0x09,
    0x09, 0x09, 0x0c, 0x0b, 0x0c, 0x19, 0x0d, 0x0d, 0x18, 0x32, 0x21, 0x1c, 0x21, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32,
    0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32,
    0x32, 0x32, 0x32, 0x2a, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x34, 0x32, 0x32, 0x32, 0xff, 0xc4, 0x00, 0x1f, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
    0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x10, 0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00,
    0x00, 0x01, 0x7d, 0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62,
    0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37,
    0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a,
    0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85,
    0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6,
    0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
    0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
    0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xff, 0xc4, 0x00, 0x1f, 0x01, 0x00,
    0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03,
    0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x11, 0x00, 0x02, 0x01, 0x02, 0x04, 0x04,
    0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77, 0x18, 0x32, 0x21, 0x1c, 0x21, 0x32, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x0a, 0x0c, 0x14, 0x32, 0x32,
    0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32,
    0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x82, 0x93, 0x94, 0x95, 0x96, 0x97,
    0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75,
    0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96,
    0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
    0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8,
    0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9,
    0xfa, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x0d, 0x0c, 0x0b, 0x0b, 0x0c,
    0x19, 0x12, 0xe5, 0x3f, 0x2a, 0xd3, 0x9a, 0x34, 0xd4, 0x15, 0xb2, 0x1c, 0xee, 0xa6, 0x87, 0xff, 0xd9,
];

/// What is at a path of the scratch directory: a file's bytes, a link's target, or the kind
/// of anything else (a FIFO is never opened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>),
    Link(PathBuf),
    Dir,
    Other,
}

/// Everything under `dir`, recursively, without following links.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
            let entry = if ft.is_symlink() {
                Entry::Link(std::fs::read_link(&p).unwrap())
            } else if ft.is_file() {
                Entry::File(std::fs::read(&p).unwrap())
            } else if ft.is_dir() {
                stack.push(p.clone());
                Entry::Dir
            } else {
                Entry::Other
            };
            all.insert(p.strip_prefix(dir).unwrap().to_path_buf(), entry);
        }
    }
    all
}
