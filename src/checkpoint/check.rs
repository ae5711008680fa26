//! What a checkpoint must be before any of it reaches libtorch, checked on the raw bytes of
//! the safetensors file: the model's state (weights, biases, BN statistics), the
//! normalisation and the optimizer's state in a floating-point format (integers only
//! elsewhere, e.g. BN's `num_batches_tracked`), every value finite, BN running variances
//! not negative. A file that fails gets a one-line error naming the tensor.

use std::path::Path;

use safetensors::{tensor::TensorView, Dtype};

use crate::error::{Error, Result};
use crate::files::printable;

/// Whether `dtype` is a floating-point format we read.
fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16)
}

/// The values of a float tensor's little-endian bytes, as f64 (for the checks only).
fn values(dtype: Dtype, data: &[u8]) -> Box<dyn Iterator<Item = f64> + '_> {
    match dtype {
        Dtype::F64 => Box::new(data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))),
        Dtype::F32 => {
            Box::new(data.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))))
        }
        Dtype::BF16 => Box::new(
            data.chunks_exact(2).map(|b| f64::from(f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))),
        ),
        Dtype::F16 => Box::new(data.chunks_exact(2).map(|b| half_to_f64(u16::from_le_bytes([b[0], b[1]])))),
        _ => Box::new(std::iter::empty()),
    }
}

/// An IEEE half-precision value.
fn half_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        0x1f if frac == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// Whether tensor `name` is state that must be floating point: a weight, a bias, a BN
/// statistic, the normalisation or the optimizer's state.
fn is_float_state(name: &str) -> bool {
    const SUFFIXES: [&str; 4] = [".weight", ".bias", ".running_mean", ".running_var"];
    name.starts_with("normalization.")
        || name.starts_with("optimizer.")
        || SUFFIXES.iter().any(|s| name.ends_with(s) || name == &s[1..])
}

/// Checks one tensor of the file at `path`.
pub fn tensor(name: &str, view: &TensorView<'_>, path: &Path) -> Result<()> {
    let bad = |m: String| Err(Error::checkpoint(path, format!("tensor {}: {m}", printable(name))));
    let dtype = view.dtype();
    if !is_float(dtype) {
        if !is_float_state(name) {
            return Ok(());
        }
        return bad(format!(
            "dtype {dtype:?} is not a floating-point format: weights, statistics and optimizer state must be \
             F32, F64, F16 or BF16; the file is corrupt or not a checkpoint"
        ));
    }
    let variance = name.ends_with("running_var");
    for (i, v) in values(dtype, view.data()).enumerate() {
        if !v.is_finite() {
            return bad(format!(
                "element {i} is {v}: a checkpoint with non-finite values is from a diverged or corrupt run; \
                 use an earlier checkpoint"
            ));
        }
        if variance && v < 0.0 {
            return bad(format!("element {i} is {v}, a negative variance: the file is corrupt"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values_decode() {
        assert_eq!(half_to_f64(0x3c00), 1.0);
        assert_eq!(half_to_f64(0xc000), -2.0);
        assert_eq!(half_to_f64(0x7c00), f64::INFINITY);
        assert!(half_to_f64(0x7e00).is_nan());
        assert_eq!(half_to_f64(0x0001), 2f64.powi(-24));
    }

    #[test]
    fn integers_nan_and_negative_variances_are_refused() {
        let p = Path::new("c.safetensors");
        let nan = f32::NAN.to_le_bytes();
        let v = TensorView::new(Dtype::F32, vec![1], &nan).unwrap();
        let e = tensor("conv1.weight", &v, p).unwrap_err().to_string();
        assert!(e.contains("tensor conv1.weight: element 0 is NaN"), "{e}");
        let ints = 3i64.to_le_bytes();
        let v = TensorView::new(Dtype::I64, vec![1], &ints).unwrap();
        assert!(tensor("bn1.num_batches_tracked", &v, p).is_ok());
        assert!(tensor("fixture.labels", &v, p).is_ok());
        for name in ["conv1.weight", "linear.bias", "bn1.running_mean", "normalization.std", "optimizer.momentum.x"] {
            let e = tensor(name, &v, p).unwrap_err().to_string();
            assert!(e.contains("is not a floating-point format"), "{e}");
        }
        let neg = (-1.0f64).to_le_bytes();
        let v = TensorView::new(Dtype::F64, vec![1], &neg).unwrap();
        let e = tensor("bn1.running_var", &v, p).unwrap_err().to_string();
        assert!(e.contains("negative variance"), "{e}");
        let bf = [0x80u8, 0x7f]; // bf16 +inf
        let v = TensorView::new(Dtype::BF16, vec![1], &bf).unwrap();
        assert!(tensor("x", &v, p).is_err());
    }
}
