//! The paper's augmentation (Section 4.2, after Lee et al.): pad 4 pixels on each side,
//! take a random 32×32 crop (all 9×9 offsets equally likely) and flip it horizontally with
//! probability ½. Done on whole batches with one gather on the training device; no
//! per-image tensor calls. The padding is zero *after* normalisation, i.e. the mean
//! pixel, as in the original Torch implementation; test images are not augmented.

use std::cell::RefCell;

use tch::{Device, Kind, Tensor};

/// Pixels of padding on each side.
pub const PAD: i64 = 4;

/// Crops each image of `x` (B×C×H×W) at offset (`dy[b]`, `dx[b]`) in the zero-padded batch
/// and mirrors it horizontally where `flip[b]` is true. `dy`, `dx`: `i64` in 0..=2·PAD;
/// `flip`: `bool`; all of length B and on `x`'s device.
pub fn crop_flip(x: &Tensor, dy: &Tensor, dx: &Tensor, flip: &Tensor) -> Tensor {
    let b = x.size()[0];
    let one = |t: &Tensor| t.view([b, 1, 1, 1]);
    Augmenter::new(false).apply(x, &one(dy), &one(dx), &one(flip))
}

/// Draws offsets and flips from libtorch's generator and applies [`crop_flip`].
pub fn random_crop_flip(x: &Tensor) -> Tensor {
    Augmenter::new(false).random(x)
}

/// The augmentation of the training step, in few ATen calls: the index grids that depend
/// only on the batch's shape are made once and kept; a batch then costs three draws, two
/// additions, a select, the padding and one gather (8 calls). With `channels_last` the
/// gather writes the crops in channels-last order, so a channels-last network needs no
/// copy of its input.
#[derive(Debug)]
pub struct Augmenter {
    channels_last: bool,
    grid: RefCell<Option<Grid>>,
}

/// Index grids for one batch shape, shaped to broadcast to B×C×H×W (or B×H×W×C).
#[derive(Debug)]
struct Grid {
    key: ([i64; 4], Device),
    batch: Tensor,
    channel: Tensor,
    rows: Tensor,
    cols: Tensor,
    cols_mirrored: Tensor,
}

impl Augmenter {
    pub fn new(channels_last: bool) -> Self {
        Augmenter { channels_last, grid: RefCell::new(None) }
    }

    /// Random crops and flips of `x` (B×C×H×W), drawn from libtorch's generator.
    pub fn random(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let opts = (Kind::Int64, x.device());
        let dy = Tensor::randint(2 * PAD + 1, [b, 1, 1, 1], opts);
        let dx = Tensor::randint(2 * PAD + 1, [b, 1, 1, 1], opts);
        let flip = Tensor::randint(2, [b, 1, 1, 1], (Kind::Bool, x.device()));
        self.apply(x, &dy, &dx, &flip)
    }

    /// [`crop_flip`] with `dy`, `dx` and `flip` shaped B×1×1×1.
    fn apply(&self, x: &Tensor, dy: &Tensor, dx: &Tensor, flip: &Tensor) -> Tensor {
        let size: [i64; 4] = x.size().try_into().expect("the augmentation expects a B×C×H×W batch");
        let key = (size, x.device());
        let mut grid = self.grid.borrow_mut();
        if grid.as_ref().is_none_or(|g| g.key != key) {
            *grid = Some(Grid::new(key, self.channels_last));
        }
        let g = grid.as_ref().expect("made above");
        let padded = x.constant_pad_nd([PAD, PAD, PAD, PAD]);
        let rows = dy + &g.rows;
        let cols = dx + g.cols_mirrored.where_self(flip, &g.cols);
        let out = padded.index(&[Some(&g.batch), Some(&g.channel), Some(&rows), Some(&cols)]);
        if self.channels_last {
            out.permute([0, 3, 1, 2])
        } else {
            out
        }
    }
}

impl Grid {
    fn new(key: ([i64; 4], Device), channels_last: bool) -> Self {
        let ([b, c, h, w], device) = key;
        let opts = (Kind::Int64, device);
        // Where each index's axis lies in the gather's output: B×C×H×W, or B×H×W×C.
        let (c_shape, h_shape, w_shape) = if channels_last {
            ([1, 1, 1, c], [1, h, 1, 1], [1, 1, w, 1])
        } else {
            ([1, c, 1, 1], [1, 1, h, 1], [1, 1, 1, w])
        };
        let cols = Tensor::arange(w, opts).view(w_shape);
        Grid {
            key,
            batch: Tensor::arange(b, opts).view([b, 1, 1, 1]),
            channel: Tensor::arange(c, opts).view(c_shape),
            rows: Tensor::arange(h, opts).view(h_shape),
            cols_mirrored: cols.flip([if channels_last { 2 } else { 3 }]),
            cols,
        }
    }
}
