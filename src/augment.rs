//! The paper's augmentation (Section 4.2, after Lee et al.): pad 4 pixels on each side,
//! take a random 32×32 crop (all 9×9 offsets equally likely) and flip it horizontally with
//! probability ½. Done on whole batches with one gather on the training device; no
//! per-image tensor calls. The padding is zero *after* normalisation, i.e. the mean
//! pixel, as in the original Torch implementation; test images are not augmented.

use tch::{Kind, Tensor};

/// Pixels of padding on each side.
pub const PAD: i64 = 4;

/// Crops each image of `x` (B×C×H×W) at offset (`dy[b]`, `dx[b]`) in the zero-padded batch
/// and mirrors it horizontally where `flip[b]` is true. `dy`, `dx`: `i64` in 0..=2·PAD;
/// `flip`: `bool`; all of length B and on `x`'s device.
pub fn crop_flip(x: &Tensor, dy: &Tensor, dx: &Tensor, flip: &Tensor) -> Tensor {
    let (b, c, h, w) = x.size4().expect("crop_flip expects a B×C×H×W batch");
    let opts = (Kind::Int64, x.device());
    let padded = x.constant_pad_nd([PAD, PAD, PAD, PAD]);
    let ys = Tensor::arange(h, opts).unsqueeze(0);
    let xs = Tensor::arange(w, opts).unsqueeze(0);
    let rows = dy.view([b, 1]) + ys;
    let cols_plain = dx.view([b, 1]) + &xs;
    let cols_flipped = dx.view([b, 1]) + (w - 1) - xs;
    let cols = cols_flipped.where_self(&flip.view([b, 1]), &cols_plain);
    let index = [
        Some(Tensor::arange(b, opts).view([b, 1, 1, 1])),
        Some(Tensor::arange(c, opts).view([1, c, 1, 1])),
        Some(rows.view([b, 1, h, 1])),
        Some(cols.view([b, 1, 1, w])),
    ];
    padded.index(&index)
}

/// Draws offsets and flips from libtorch's generator and applies [`crop_flip`].
pub fn random_crop_flip(x: &Tensor) -> Tensor {
    let b = x.size()[0];
    let opts = (Kind::Int64, x.device());
    let dy = Tensor::randint(2 * PAD + 1, [b], opts);
    let dx = Tensor::randint(2 * PAD + 1, [b], opts);
    let flip = Tensor::randint(2, [b], opts).to_kind(Kind::Bool);
    crop_flip(x, &dy, &dx, &flip)
}
