//! Choosing where to run: `auto` (CUDA when available, else CPU), `cpu`, `cuda`, `cuda:N`.

use std::path::Path;
use std::sync::Once;

use tch::{Cuda, Device};

use crate::error::{Error, Result};

/// Parses a `--device` value. Asking for CUDA where there is none is an error.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    let cuda = |i: usize| {
        let n = Cuda::device_count() as usize;
        if n == 0 {
            Err(Error::Config(format!(
                "--device {s}: CUDA is not available here (no GPU, or libtorch without CUDA); use --device cpu"
            )))
        } else if i >= n {
            Err(Error::Config(format!("--device {s}: only {n} CUDA device(s) here, numbered from 0")))
        } else {
            Ok(Device::Cuda(i))
        }
    };
    match s.as_str() {
        "auto" => {
            let d = Device::cuda_if_available();
            if d == Device::Cpu {
                warn_unused_gpu();
            }
            Ok(d)
        }
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => Err(Error::Config(format!("unknown device `{s}`: use auto, cpu, cuda or cuda:N"))),
        },
    }
}

/// A name for reports: `cpu` or `cuda:0`.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Whether an NVIDIA GPU is visible to this machine: a `nvidia<N>` device node in `dev`, or
/// `nvidia_smi -L` listing a GPU.
pub fn nvidia_gpu_visible(dev: &Path, nvidia_smi: &str) -> bool {
    let node = std::fs::read_dir(dev).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix("nvidia").is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
    });
    node || std::process::Command::new(nvidia_smi)
        .arg("-L")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("GPU"))
}

/// The warning for a visible NVIDIA GPU that libtorch cannot use, if that is the case here.
pub fn unused_gpu_warning() -> Option<String> {
    (!Cuda::is_available() && nvidia_gpu_visible(Path::new("/dev"), "nvidia-smi")).then(|| {
        "WARNING: an NVIDIA GPU is visible (nvidia-smi, /dev/nvidia*) but libtorch has no CUDA, so this runs on \
         the CPU, many times slower. Fix: use a torch/libtorch build for the CUDA version that `nvidia-smi` \
         reports (e.g. a CUDA 12.x wheel for an older driver) through LIBTORCH or LIBTORCH_USE_PYTORCH=1, and \
         rebuild; or pass --device cpu to mean it"
            .to_string()
    })
}

/// Prints [`unused_gpu_warning`] on stderr, once per process.
pub fn warn_unused_gpu() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Some(w) = unused_gpu_warning() {
            eprintln!("{w}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_shows_as_a_device_node_or_in_nvidia_smi() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("no-nvidia-smi");
        let smi = missing.to_str().unwrap();
        std::fs::write(tmp.path().join("nvidiactl"), "").unwrap();
        std::fs::write(tmp.path().join("nvidia-uvm"), "").unwrap();
        assert!(!nvidia_gpu_visible(tmp.path(), smi), "control nodes alone are no GPU");
        std::fs::write(tmp.path().join("nvidia0"), "").unwrap();
        assert!(nvidia_gpu_visible(tmp.path(), smi));
        // A stand-in nvidia-smi that lists one GPU.
        let empty = tempfile::tempdir().unwrap();
        let fake = tmp.path().join("smi.sh");
        std::fs::write(&fake, "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-x)'\n").unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
        assert!(nvidia_gpu_visible(empty.path(), fake.to_str().unwrap()));
        assert!(!nvidia_gpu_visible(empty.path(), smi));
    }
}
