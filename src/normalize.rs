//! Input normalisation. The paper subtracts the per-pixel mean of the training set
//! (Section 4.2); `channel` standardises each colour channel; `imagenet` is what the
//! PyTorch reference checkpoints were trained with. Pixels are first scaled to [0, 1].
//! The statistics travel with every checkpoint as the tensors `normalization.mean` and
//! `normalization.std`.

use tch::{Device, Kind, Tensor};

crate::text::value_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum Normalization: "normalization" {
        /// Subtract the per-pixel mean image of the training set (the paper).
        #[default]
        PixelMean => "pixel-mean",
        /// Per-channel mean and standard deviation of the training set.
        Channel => "channel",
        /// x/255, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225): the reference checkpoints'.
        Imagenet => "imagenet",
    }
}

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Statistics (in [0, 1] pixel units) and the affine map they define:
/// `x ↦ (x/255 − mean) / std`, computed as `x·scale − shift` in one pass per batch.
#[derive(Debug)]
pub struct Normalizer {
    pub kind: Normalization,
    /// 3×32×32 for `pixel-mean`, 3×1×1 otherwise.
    pub mean: Tensor,
    /// Same shape as `mean`; ones for `pixel-mean`.
    pub std: Tensor,
    scale: Tensor,
    shift: Tensor,
}

/// Images per chunk when computing statistics, to keep the float copy small.
const STATS_CHUNK: i64 = 5_000;

impl Normalizer {
    /// Builds the normaliser from explicit statistics (e.g. read from a checkpoint).
    pub fn from_stats(kind: Normalization, mean: Tensor, std: Tensor) -> Self {
        let mean = mean.to_kind(Kind::Float);
        let std = std.to_kind(Kind::Float);
        let scale = (&std * 255.0).reciprocal();
        let shift = &mean / &std;
        Normalizer { kind, mean, std, scale, shift }
    }

    /// Computes the statistics of `kind` from the training images (`u8`, N×3×32×32).
    pub fn fit(kind: Normalization, train_images: &Tensor) -> Self {
        let n = train_images.size()[0];
        let sum_over = |f: &dyn Fn(&Tensor) -> Tensor| {
            let mut acc: Option<Tensor> = None;
            for start in (0..n).step_by(STATS_CHUNK as usize) {
                let len = STATS_CHUNK.min(n - start);
                let chunk = train_images.narrow(0, start, len).to_device(Device::Cpu).to_kind(Kind::Double) / 255.0;
                let s = f(&chunk);
                acc = Some(match acc {
                    Some(a) => a + s,
                    None => s,
                });
            }
            acc.expect("statistics of an empty training set")
        };
        match kind {
            Normalization::PixelMean => {
                let mean = sum_over(&|c| c.sum_dim_intlist(0, false, Kind::Double)) / n as f64;
                let std = Tensor::ones_like(&mean);
                Self::from_stats(kind, mean, std)
            }
            Normalization::Channel => {
                let dims = [0i64, 2, 3];
                let count = (n * 32 * 32) as f64;
                let mean = sum_over(&|c| c.sum_dim_intlist(dims.as_slice(), true, Kind::Double)) / count;
                let sq = sum_over(&|c| (c * c).sum_dim_intlist(dims.as_slice(), true, Kind::Double)) / count;
                let std = (sq - &mean * &mean).sqrt();
                Self::from_stats(kind, mean.squeeze_dim(0), std.squeeze_dim(0))
            }
            Normalization::Imagenet => Self::imagenet(),
        }
    }

    pub fn imagenet() -> Self {
        Self::from_stats(
            Normalization::Imagenet,
            Tensor::from_slice(&IMAGENET_MEAN).view([3, 1, 1]),
            Tensor::from_slice(&IMAGENET_STD).view([3, 1, 1]),
        )
    }

    /// Converts a `u8` batch (N×3×32×32) to normalised `f32`.
    pub fn apply(&self, images: &Tensor) -> Tensor {
        images.to_kind(Kind::Float) * &self.scale - &self.shift
    }

    pub fn to_device(&self, device: Device) -> Self {
        Self::from_stats(self.kind, self.mean.to_device(device), self.std.to_device(device))
    }
}
