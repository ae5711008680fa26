//! Embeds an rpath to the libtorch library directory that torch-sys linked against, so
//! `target/release/resnet-cifar` runs from any shell without `LD_LIBRARY_PATH`; records
//! the tch and libtorch versions for `config.json`; compiles the C++ shim (csrc/shim.cpp)
//! against the headers of that same libtorch, with its CUDA parts only where libtorch has
//! CUDA and the CUDA runtime's headers are found.

use std::path::{Path, PathBuf};

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
        compile_shim(Path::new(&dir));
    } else {
        panic!("torch-sys did not report its libtorch (DEP_TCH_LIBTORCH_LIB): the shim cannot be built");
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

/// Compiles csrc/shim.cpp against the libtorch whose library directory is `lib`.
fn compile_shim(lib: &Path) {
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let root = lib.parent().expect("libtorch's lib directory has a parent");
    let include = root.join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .std("c++17")
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into()).as_str())
        .define("GLOG_USE_GLOG_EXPORT", None);
    let has_cuda = lib.join("libtorch_cuda.so").exists() && include.join("ATen/cuda/CUDAGraph.h").exists();
    match (has_cuda, cuda_runtime_include(root)) {
        (true, Some(cuda)) => {
            build.include(cuda).define("RESNET_CIFAR_SHIM_CUDA", None);
            println!("cargo:rustc-link-lib=dylib=c10_cuda");
        }
        (true, None) => println!(
            "cargo:warning=libtorch has CUDA but no cuda_runtime_api.h was found (set CUDA_HOME): the shim is built \
             without CUDA graphs"
        ),
        (false, _) => {}
    }
    build.file("csrc/shim.cpp").compile("resnet_cifar_shim");
}

/// The directory holding `cuda_runtime_api.h`: `$CUDA_HOME/include`, the pip `nvidia`
/// packages beside a pip-installed torch, or /usr/local/cuda.
fn cuda_runtime_include(torch_root: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> =
        std::env::var_os("CUDA_HOME").map(|h| PathBuf::from(h).join("include")).into_iter().collect();
    if let Some(site) = torch_root.parent() {
        if let Ok(entries) = std::fs::read_dir(site.join("nvidia")) {
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("include")).collect();
            dirs.sort();
            candidates.extend(dirs);
            candidates.push(site.join("nvidia/cuda_runtime/include"));
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    candidates.into_iter().find(|d| d.join("cuda_runtime_api.h").exists())
}
