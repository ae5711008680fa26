//! The building blocks of the networks: the paper's basic block (conv3×3–BN–ReLU–conv3×3–BN,
//! plus the shortcut, then ReLU; Section 3.3 and Fig. 2) with its two shortcut options
//! across a change of shape, the pre-activation blocks of He et al. 2016 (basic and
//! bottleneck, nothing after the addition), and the initialisations they use.

use tch::nn;
use tch::Tensor;

use super::{Arch, BlockKind, Compute, ResNetConfig, Shortcut};

/// He (Kaiming) normal initialisation with fan-in and ReLU gain, as the paper and the
/// PyTorch reference (`kaiming_normal_`) use for every convolution and the linear layer.
pub(super) const HE_NORMAL: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanIn,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// He normal with fan-out, as the 2016 paper's code (and the PyTorch CIFAR version whose
/// names the pre-activation nets spell) initialises their convolutions.
const HE_NORMAL_FAN_OUT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// A convolution; it has a bias only when no BN follows it (PyTorch's default bias init).
pub(super) fn conv(p: nn::Path, io: (i64, i64), k: i64, stride: i64, bias: bool) -> nn::Conv2D {
    conv_with(p, io, k, nn::ConvConfig { stride, bias, ws_init: HE_NORMAL, ..Default::default() })
}

/// A k×k convolution with `cfg`'s stride, bias and initialisation, padded to keep the size.
pub(super) fn conv_with(p: nn::Path, (c_in, c_out): (i64, i64), k: i64, cfg: nn::ConvConfig) -> nn::Conv2D {
    nn::conv2d(p, c_in, c_out, k, nn::ConvConfig { padding: k / 2, ..cfg })
}

/// The pre-activation nets' convolution settings (no bias with BN, He fan-out).
pub(super) fn preact_conv_config(stride: i64, cfg: &ResNetConfig) -> nn::ConvConfig {
    nn::ConvConfig { stride, bias: !cfg.batch_norm, ws_init: HE_NORMAL_FAN_OUT, ..Default::default() }
}

/// Sets a convolution's weights (and bias) to zero: a residual branch that starts as F = 0.
pub(super) fn silence(c: &nn::Conv2D) {
    tch::no_grad(|| {
        let _ = c.ws.shallow_clone().zero_();
        if let Some(b) = &c.bs {
            let _ = b.shallow_clone().zero_();
        }
    });
}

/// `x` through convolution `c` (built by [`conv`] with this `stride`), computed as
/// `compute` says: the weight (fp32 master copy) is cast to the compute type and layout
/// inside the graph, so its gradient arrives in fp32.
pub(super) fn conv_t(c: &nn::Conv2D, x: &Tensor, stride: i64, compute: Compute) -> Tensor {
    let w = compute.cast(&c.ws);
    let b = c.bs.as_ref().map(|b| b.to_kind(w.kind()));
    let padding = w.size()[2] / 2;
    x.conv2d(&w, b.as_ref(), [stride, stride], [padding, padding], [1, 1], 1)
}

/// BatchNorm with β = 0 and γ = `gamma` (tch's default γ is uniform, PyTorch's is one),
/// or nothing in a network without BN.
pub(super) fn batch_norm(p: nn::Path, c: i64, cfg: &ResNetConfig, gamma: f64) -> Option<nn::BatchNorm> {
    let bn =
        nn::BatchNormConfig { ws_init: nn::Init::Const(gamma), bs_init: nn::Init::Const(0.0), ..Default::default() };
    cfg.batch_norm.then(|| nn::batch_norm2d(p, c, bn))
}

/// `x` through the BN layer, if there is one.
pub(super) fn norm_t(bn: &Option<nn::BatchNorm>, x: Tensor, train: bool) -> Tensor {
    match bn {
        Some(bn) => x.apply_t(bn, train),
        None => x,
    }
}

/// The path by which a block's input reaches its output.
// A network holds at most two projections: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ShortcutPath {
    /// Plain network: no shortcut at all.
    None,
    /// Same shape: x itself.
    Identity,
    /// Option A across a change of shape: x[:, :, ::2, ::2] with `pad` zero channels added
    /// on each side, as the PyTorch reference does (so its checkpoints give the same outputs).
    ZeroPad { pad: i64 },
    /// Option B across a change of shape: 1×1 convolution, stride 2, then BN (the 2015
    /// nets), or the 1×1 strided convolution alone (the pre-activation nets' `downsample`).
    Projection { conv: nn::Conv2D, bn: Option<nn::BatchNorm>, stride: i64 },
}

impl ShortcutPath {
    /// The shortcut's output, or `None` for a plain block; a projection computes as
    /// `compute` says (its block's setting).
    pub fn forward_t(&self, x: &Tensor, train: bool, compute: Compute) -> Option<Tensor> {
        match self {
            ShortcutPath::None => None,
            ShortcutPath::Identity => Some(x.shallow_clone()),
            ShortcutPath::ZeroPad { pad } => {
                // (Two slices cost fewer calls than one as_strided, whose backward is heavier.)
                let sub = x.slice(2, 0, None, 2).slice(3, 0, None, 2);
                Some(sub.constant_pad_nd([0, 0, 0, 0, *pad, *pad]))
            }
            ShortcutPath::Projection { conv, bn, stride } => Some(norm_t(bn, conv_t(conv, x, *stride, compute), train)),
        }
    }
}

/// conv3×3–BN–ReLU–conv3×3–BN, plus the shortcut, then ReLU (Fig. 2 of the paper).
#[derive(Debug)]
pub struct BasicBlock {
    pub conv1: nn::Conv2D,
    pub bn1: Option<nn::BatchNorm>,
    pub conv2: nn::Conv2D,
    pub bn2: Option<nn::BatchNorm>,
    pub shortcut: ShortcutPath,
    /// Stride of conv1: 2 in the first block of stages 2 and 3, else 1.
    pub stride: i64,
}

impl BasicBlock {
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, stride: i64, cfg: &ResNetConfig) -> Self {
        let reshapes = stride != 1 || c_in != c_out;
        // (A pre-activation net builds `PreActBlock`s; with this block it is a 2015 resnet.)
        let shortcut = match (cfg.arch, cfg.shortcut, reshapes) {
            (Arch::Plain, _, _) => ShortcutPath::None,
            (Arch::Resnet | Arch::Preact, _, false) => ShortcutPath::Identity,
            (Arch::Resnet | Arch::Preact, Shortcut::A, true) => ShortcutPath::ZeroPad { pad: (c_out - c_in) / 2 },
            (Arch::Resnet | Arch::Preact, Shortcut::B, true) => {
                let s = &p / "shortcut";
                ShortcutPath::Projection {
                    conv: conv(&s / "0", (c_in, c_out), 1, stride, !cfg.batch_norm),
                    bn: batch_norm(&s / "1", c_out, cfg, 1.0),
                    stride,
                }
            }
        };
        let silent = cfg.zero_init_residual && !matches!(shortcut, ShortcutPath::None);
        let block = BasicBlock {
            conv1: conv(&p / "conv1", (c_in, c_out), 3, stride, !cfg.batch_norm),
            bn1: batch_norm(&p / "bn1", c_out, cfg, 1.0),
            conv2: conv(&p / "conv2", (c_out, c_out), 3, 1, !cfg.batch_norm),
            bn2: batch_norm(&p / "bn2", c_out, cfg, if silent { 0.0 } else { 1.0 }),
            shortcut,
            stride,
        };
        if silent && !cfg.batch_norm {
            silence(&block.conv2);
        }
        block
    }

    /// The two layer responses of the block (Fig. 7): each 3×3 convolution's output after
    /// BN, before ReLU or the addition. The second is the residual function F(x).
    pub fn responses_t(&self, x: &Tensor, train: bool, compute: Compute) -> Vec<Tensor> {
        let r1 = self.first_response_t(x, train, compute);
        let r2 = self.second_response_t(&r1.relu(), train, compute);
        vec![r1, r2]
    }

    fn first_response_t(&self, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        norm_t(&self.bn1, conv_t(&self.conv1, x, self.stride, compute), train)
    }

    fn second_response_t(&self, h: &Tensor, train: bool, compute: Compute) -> Tensor {
        norm_t(&self.bn2, conv_t(&self.conv2, h, 1, compute), train)
    }

    /// The residual function F(x): conv–BN–ReLU–conv–BN, before the addition. The ReLU
    /// works in place (BN's backward does not need its output): one activation fewer.
    pub fn residual_t(&self, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        self.second_response_t(&self.first_response_t(x, train, compute).relu_(), train, compute)
    }

    /// The block's output from its residual F(x) and its input x (F's storage is reused).
    pub fn combine_t(&self, mut f: Tensor, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        if let Some(s) = self.shortcut.forward_t(x, train, compute) {
            f += s;
        }
        f.relu_()
    }

    /// The block's output, computed as `compute` says (the network's: [`ResNet::compute`]).
    pub fn forward_t(&self, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        self.combine_t(self.residual_t(x, train, compute), x, train, compute)
    }
}

/// A pre-activation block (He et al. 2016, Fig. 4(e)): (BN–ReLU–conv) two times (basic) or
/// three times (bottleneck: 1×1, 3×3 with the stride, 1×1 widening 4×), plus the shortcut,
/// with nothing after the addition.
#[derive(Debug)]
pub struct PreActBlock {
    /// `bn1`, `bn2`[, `bn3`]: each before its convolution; `None` without BN.
    pub bns: Vec<Option<nn::BatchNorm>>,
    /// `conv1`, `conv2`[, `conv3`] with their strides.
    pub convs: Vec<(nn::Conv2D, i64)>,
    /// Identity, or `downsample.0` (1×1 strided convolution) where the shape changes.
    pub shortcut: ShortcutPath,
}

impl PreActBlock {
    /// A block from `c_in` channels to `width × expansion`, subsampling by `stride`.
    pub fn new(p: nn::Path, c_in: i64, width: i64, stride: i64, cfg: &ResNetConfig) -> Self {
        let kind = cfg.block();
        let c_out = width * kind.expansion();
        let conv = |p: nn::Path, io, k, stride| conv_with(p, io, k, preact_conv_config(stride, cfg));
        let convs = match kind {
            BlockKind::Basic => vec![
                (conv(&p / "conv1", (c_in, width), 3, stride), stride),
                (conv(&p / "conv2", (width, width), 3, 1), 1),
            ],
            BlockKind::Bottleneck => vec![
                (conv(&p / "conv1", (c_in, width), 1, 1), 1),
                (conv(&p / "conv2", (width, width), 3, stride), stride),
                (conv(&p / "conv3", (width, c_out), 1, 1), 1),
            ],
        };
        let bns = std::iter::once(c_in)
            .chain(convs.iter().skip(1).map(|_| width))
            .enumerate()
            .map(|(i, c)| batch_norm(&p / format!("bn{}", i + 1), c, cfg, 1.0))
            .collect();
        let shortcut = if stride != 1 || c_in != c_out {
            ShortcutPath::Projection { conv: conv(&p / "downsample" / "0", (c_in, c_out), 1, stride), bn: None, stride }
        } else {
            ShortcutPath::Identity
        };
        if cfg.zero_init_residual {
            silence(&convs[convs.len() - 1].0);
        }
        PreActBlock { bns, convs, shortcut }
    }

    /// Each convolution's output, the last one being the residual function F(x).
    pub fn responses_t(&self, x: &Tensor, train: bool, compute: Compute) -> Vec<Tensor> {
        let mut out: Vec<Tensor> = Vec::with_capacity(self.convs.len());
        for (bn, (c, stride)) in self.bns.iter().zip(&self.convs) {
            let input = out.last().unwrap_or(x);
            out.push(conv_t(c, &norm_t(bn, input.shallow_clone(), train).relu(), *stride, compute));
        }
        out
    }

    /// F(x): (BN–ReLU–conv) per layer.
    pub fn residual_t(&self, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        let mut h = x.shallow_clone();
        for (bn, (c, stride)) in self.bns.iter().zip(&self.convs) {
            h = conv_t(c, &norm_t(bn, h, train).relu(), *stride, compute);
        }
        h
    }

    /// x + F(x), nothing after the addition (F's storage is reused).
    pub fn combine_t(&self, mut f: Tensor, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        if let Some(s) = self.shortcut.forward_t(x, train, compute) {
            f += s;
        }
        f
    }
}

/// A block of either design, as the network holds it.
// A network holds at most a few hundred blocks: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Block {
    /// The 2015 block (residual or plain).
    Basic(BasicBlock),
    /// The 2016 pre-activation block (basic or bottleneck).
    PreAct(PreActBlock),
}

impl Block {
    pub fn shortcut(&self) -> &ShortcutPath {
        match self {
            Block::Basic(b) => &b.shortcut,
            Block::PreAct(b) => &b.shortcut,
        }
    }

    /// The block's convolutions, shortcut projection included.
    pub fn convs(&self) -> Vec<&nn::Conv2D> {
        let mut convs = match self {
            Block::Basic(b) => vec![&b.conv1, &b.conv2],
            Block::PreAct(b) => b.convs.iter().map(|(c, _)| c).collect(),
        };
        if let ShortcutPath::Projection { conv, .. } = self.shortcut() {
            convs.push(conv);
        }
        convs
    }

    /// The layer responses (Fig. 7): for the 2015 block each convolution's output after BN,
    /// for a pre-activation block each convolution's output. The last one is F(x).
    pub fn responses_t(&self, x: &Tensor, train: bool, compute: Compute) -> Vec<Tensor> {
        match self {
            Block::Basic(b) => b.responses_t(x, train, compute),
            Block::PreAct(b) => b.responses_t(x, train, compute),
        }
    }

    /// The residual function F(x), before the addition.
    pub fn residual_t(&self, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        match self {
            Block::Basic(b) => b.residual_t(x, train, compute),
            Block::PreAct(b) => b.residual_t(x, train, compute),
        }
    }

    /// The block's output from F(x) and x.
    pub fn combine_t(&self, f: Tensor, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        match self {
            Block::Basic(b) => b.combine_t(f, x, train, compute),
            Block::PreAct(b) => b.combine_t(f, x, train, compute),
        }
    }

    /// The block's output.
    pub fn forward_t(&self, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        self.combine_t(self.residual_t(x, train, compute), x, train, compute)
    }
}
