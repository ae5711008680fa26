//! Embeds an rpath to the libtorch library directory that torch-sys linked against, so
//! `target/release/resnet-cifar` runs from any shell without `LD_LIBRARY_PATH`; records
//! the tch and libtorch versions for `config.json`.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let mut libtorch_version = "unknown".to_string();
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // The linker drops libtorch_cuda (--as-needed: no symbol of it is referenced
        // directly), and then libtorch sees no CUDA. Keep it wherever it exists.
        if Path::new(&dir).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
        libtorch_version = libtorch_version_in(Path::new(&dir)).unwrap_or(libtorch_version);
    }
    println!("cargo:rustc-env=LIBTORCH_VERSION={libtorch_version}");
    println!("cargo:rustc-env=TCH_VERSION={}", tch_version().unwrap_or_else(|| "unknown".into()));
}

/// A pip-installed torch has `version.py` beside `lib/`; a standalone libtorch has `build-version`.
fn libtorch_version_in(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return Some(v.trim().to_string());
    }
    let py = std::fs::read_to_string(root.join("version.py")).ok()?;
    let line = py.lines().find(|l| l.starts_with("__version__"))?;
    Some(line.split('\'').nth(1)?.to_string())
}

fn tch_version() -> Option<String> {
    let lock = std::fs::read_to_string("Cargo.lock").ok()?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"tch\"" {
            return lines.next()?.strip_prefix("version = \"")?.strip_suffix('"').map(String::from);
        }
    }
    None
}
