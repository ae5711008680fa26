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
        if i >= n {
            Err(Error::NoCudaDevice { asked: s.clone(), count: n })
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
            _ => Err(Error::UnknownValue { what: "device", given: s, known: vec!["auto", "cpu", "cuda", "cuda:N"] }),
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

/// The words of libtorch's out-of-memory errors: CUDA's caching allocator
/// (`CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of …`) and
/// the CPU's (`DefaultCPUAllocator: can't allocate memory: you tried to allocate …`).
const OUT_OF_MEMORY: [&str; 2] = ["out of memory", "can't allocate memory"];

/// libtorch's own sentence, when `payload` (a panic's) is an out-of-memory error. tch's
/// functions without the `f_` prefix panic with `called Result::unwrap() on an Err value:
/// Torch("…")`: the text inside, up to its first line break (the C++ stack follows).
pub fn out_of_memory_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    let text =
        payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied())?;
    if !OUT_OF_MEMORY.iter().any(|w| text.contains(w)) {
        return None;
    }
    let inner = text.split_once("Torch(\"").map_or(text, |(_, rest)| rest);
    let first = inner.split(['\n']).next().unwrap_or(inner);
    let first = first.split("\\n").next().unwrap_or(first).trim_end_matches(['"', ')']).trim();
    Some(first.to_string())
}

/// Runs `f`, a training run of batch size `batch_size` on `device`; libtorch's
/// out-of-memory panic becomes an error naming the batch size, the device and libtorch's
/// sentence (the memory asked for and the device's capacity). The panic unwinds through
/// the run first, so its lock, files and tensors are released as on any error; a checkpoint
/// is written atomically, so none is half written. Other panics go on unwinding.
pub fn catch_out_of_memory<T>(batch_size: i64, device: Device, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => match out_of_memory_message(payload.as_ref()) {
            Some(said) => Err(Error::OutOfMemory { device: device_name(device), batch_size, said }),
            None => std::panic::resume_unwind(payload),
        },
    }
}

/// A panic hook that stays silent for libtorch's out-of-memory panics, which
/// [`catch_out_of_memory`] reports as one-line errors, and hands every other panic to the
/// hook that was there.
pub fn quiet_out_of_memory_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if out_of_memory_message(info.payload()).is_none() {
            previous(info);
        }
    }));
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

    #[test]
    fn an_out_of_memory_panic_becomes_one_error_naming_batch_and_memory() {
        let said = "CUDA out of memory. Tried to allocate 12.00 GiB. GPU 0 has a total capacity of 139.81 GiB of \
                    which 3.12 GiB is free.";
        let err = tch::TchError::Torch(format!(
            "{said}\nException raised from malloc at alloc.cpp:1 (most recent call first):"
        ));
        let e = catch_out_of_memory(4096, Device::Cuda(0), || -> Result<()> {
            std::panic::panic_any(format!("called `Result::unwrap()` on an `Err` value: {err:?}"))
        })
        .unwrap_err()
        .to_string();
        assert_eq!(e, format!("out of memory on cuda:0 at batch size 4096: {said}"));
        let cpu = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 9000000000 bytes. Error code 12";
        let e = catch_out_of_memory(64, Device::Cpu, || -> Result<()> { std::panic::panic_any(cpu.to_string()) });
        assert!(e.unwrap_err().to_string().ends_with(cpu));
        let other =
            std::panic::catch_unwind(|| catch_out_of_memory(1, Device::Cpu, || -> Result<()> { panic!("a bug") }));
        assert!(other.is_err(), "other panics go on");
    }
}
