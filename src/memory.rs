//! How much memory a network needs, estimated from its configuration before anything is
//! built: a depth (or a class count) that could never fit is refused with the estimate,
//! instead of the process hanging while it builds millions of layers or aborting on a
//! failed allocation. The check runs where a run is configured (train, bench, summary) or
//! a network is described by a checkpoint, never inside the model: describing a network
//! does not depend on the machine.

use crate::error::{Error, Result};
use crate::model::{Arch, ResNetConfig, STAGE_WIDTHS};

/// Bytes per parameter while training: the weight, its gradient and its momentum buffer (fp32).
const TRAIN_BYTES_PER_PARAMETER: f64 = 12.0;
/// Activations kept per convolution for the backward pass (conv, BN and ReLU outputs, with slack).
const ACTIVATIONS_PER_CONV: f64 = 3.0;

/// An estimate of what a network of a configuration takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub parameters: f64,
    /// Bytes of parameters, gradients and momentum buffers.
    pub parameter_bytes: f64,
    /// Bytes of activations kept for one image.
    pub activation_bytes_per_image: f64,
}

/// The estimate for `cfg` with `n` blocks per stage, in floating point (no overflow, whatever
/// the depth).
pub fn estimate(cfg: &ResNetConfig, n: i64) -> Estimate {
    let n = n as f64;
    let block = cfg.block();
    let expansion = if cfg.arch == Arch::Preact { block.expansion() as f64 } else { 1.0 };
    let mut parameters = 0.0;
    let mut activations = 0.0;
    for (s, &w) in STAGE_WIDTHS.iter().enumerate() {
        let w = w as f64;
        let side = (32 >> s) as f64;
        // Basic: two 3×3 convolutions w→w; bottleneck: 1×1 (4w→w), 3×3 (w→w), 1×1 (w→4w).
        let (weights, channels) =
            if block.layers() == 2 { (18.0 * w * w, 2.0 * w) } else { (9.0 * w * w + 8.0 * w * w, 6.0 * w) };
        parameters += n * (weights + 4.0 * w * expansion);
        activations += n * channels * side * side * ACTIVATIONS_PER_CONV;
    }
    let last = STAGE_WIDTHS[2] as f64 * expansion;
    parameters += 3.0 * 9.0 * STAGE_WIDTHS[0] as f64 + (last + 1.0) * cfg.num_classes as f64;
    Estimate {
        parameters,
        parameter_bytes: parameters * TRAIN_BYTES_PER_PARAMETER,
        activation_bytes_per_image: activations * 4.0,
    }
}

/// The machine's physical memory in bytes (at least 1 GiB if it cannot be read).
pub fn physical_memory() -> f64 {
    // SAFETY: sysconf only reads system constants.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    if pages > 0 && page > 0 {
        pages as f64 * page as f64
    } else {
        (1u64 << 30) as f64
    }
}

/// Checks `cfg` where a run is configured or a network is about to be built: its depth
/// ([`ResNetConfig::blocks_per_stage`]), and that its parameters and one image's activations
/// alone would not exceed the memory of this machine. Returns the blocks per stage.
pub fn check_fits(cfg: &ResNetConfig) -> Result<i64> {
    let n = cfg.blocks_per_stage()?;
    if !cfg.num_classes.is_positive() {
        return Err(Error::Config(format!("{} classes: a network needs at least one", cfg.num_classes)));
    }
    let e = estimate(cfg, n);
    let memory = physical_memory();
    if e.parameter_bytes + e.activation_bytes_per_image <= memory {
        return Ok(n);
    }
    Err(Error::ModelTooLarge {
        depth: cfg.depth,
        num_classes: cfg.num_classes,
        parameters: e.parameters,
        parameter_bytes: e.parameter_bytes,
        activation_bytes: e.activation_bytes_per_image,
        memory_bytes: memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_close_to_the_papers_counts_and_refuses_absurd_depths() {
        // Within 10 % of the paper's parameter counts: 0.27M (20), 0.85M (56), 1.7M (110), 19.4M (1202).
        for (depth, millions) in [(20, 0.27), (56, 0.85), (110, 1.7), (1202, 19.4)] {
            let cfg = ResNetConfig { depth, ..Default::default() };
            let p = estimate(&cfg, cfg.blocks_per_stage().unwrap()).parameters / 1e6;
            assert!((p / millions - 1.0).abs() < 0.1, "depth {depth}: {p}M");
        }
        for depth in [6_000_002, 600_000_002, 6 * (i64::MAX / 6 - 1) + 2] {
            let cfg = ResNetConfig { depth, ..Default::default() };
            // The network's own description does not ask the machine: only this check does.
            assert!(cfg.blocks_per_stage().is_ok());
            let e = check_fits(&cfg).unwrap_err().to_string();
            assert!(e.contains("more than the") && e.contains("use a smaller depth"), "{e}");
        }
        let huge = ResNetConfig { num_classes: 1 << 50, ..Default::default() };
        assert!(check_fits(&huge).is_err());
        assert_eq!(check_fits(&ResNetConfig::default()).unwrap(), 3);
    }
}
