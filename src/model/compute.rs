//! How the network computes, apart from what it computes: the number format (fp32, or
//! bf16 mixed precision) and the memory layout of activations (NCHW or channels-last).
//! Neither changes a parameter or a checkpoint.

use tch::{Kind, Tensor};

crate::text::value_enum! {
    /// Number format of the convolutions and activations. Parameters, BN statistics and the
    /// loss stay fp32 either way.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum Precision: "precision" {
        #[default]
        Fp32 => "fp32",
        /// Mixed precision: fp32 master weights cast to bf16 at each convolution, bf16
        /// activations, BN with fp32 affine parameters and running statistics (libtorch's
        /// mixed-type kernels accumulate in fp32), fp32 pooling output, classifier and loss.
        Bf16 => "bf16",
    }
}

crate::text::value_enum! {
    /// Memory layout of activations and convolution weights.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum Layout: "layout" {
        /// N×C×H×W strides: libtorch's default.
        #[default]
        Nchw => "nchw",
        /// N×H×W×C strides ("channels last") for the same N×C×H×W shape: faster convolutions
        /// in oneDNN (CPU) and cuDNN.
        ChannelsLast => "channels-last",
    }
}

/// How the network computes: number format and memory layout. It changes no parameter
/// and no checkpoint; the default (fp32, NCHW) is PyTorch's own arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Compute {
    pub precision: Precision,
    pub layout: Layout,
}

impl Compute {
    pub fn new(precision: Precision, layout: Layout) -> Self {
        Compute { precision, layout }
    }

    /// `x` (an activation or a convolution weight, 4-d) in this layout and, with bf16, in
    /// bf16 (fp32 leaves the element type alone: an f64 model stays f64); `x` itself when
    /// nothing changes. Differentiable: gradients reach the original in its own type.
    /// Under bf16 autocast ([`ResNet`]'s forward) the type is left to the convolution,
    /// which casts inside its own ATen call: the same numbers, one call fewer.
    pub fn cast(&self, x: &Tensor) -> Tensor {
        let lower = self.precision == Precision::Bf16
            && x.kind() != Kind::BFloat16
            && !crate::native::autocast_enabled(x.device());
        let x = if lower { x.to_kind(Kind::BFloat16) } else { x.shallow_clone() };
        match self.layout {
            Layout::Nchw => x,
            Layout::ChannelsLast => to_channels_last(&x),
        }
    }
}

/// The same N×C×H×W tensor with N×H×W×C strides (tch has no memory-format API; a
/// permute, a copy and the inverse permute give the strides). No copy when it already has them.
pub fn to_channels_last(x: &Tensor) -> Tensor {
    if is_channels_last(x) {
        return x.shallow_clone();
    }
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether `x` (4-d) is densely laid out as N×H×W×C.
pub fn is_channels_last(x: &Tensor) -> bool {
    let size = x.size();
    if size.len() != 4 {
        return false;
    }
    let (c, h, w) = (size[1], size[2], size[3]);
    let stride = x.stride();
    // Strides of size-1 dimensions do not matter.
    let ok = |dim: usize, want: i64| size[dim] == 1 || stride[dim] == want;
    ok(1, 1) && ok(3, c) && ok(2, c * w) && ok(0, c * h * w)
}
