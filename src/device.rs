//! Choosing where to run: `auto` (CUDA when available, else CPU), `cpu`, `cuda`, `cuda:N`.

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
        "auto" => Ok(Device::cuda_if_available()),
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
