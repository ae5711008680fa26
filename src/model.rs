//! The CIFAR-10 networks of He et al. 2015, Section 4.2: a 3×3 convolution with 16 filters,
//! three stages of `n` basic blocks with 16, 32 and 64 filters (the first block of stages 2
//! and 3 subsamples with stride 2), global average pooling and a 10-way fully connected
//! layer: depth 6n+2. `Arch::Plain` is the same stack without shortcuts.
//!
//! `Arch::Preact` is the pre-activation network of He et al. 2016, "Identity Mappings in
//! Deep Residual Networks": every block is BN–ReLU–conv–BN–ReLU–conv (basic, depth 6n+2)
//! or BN–ReLU–conv1×1–BN–ReLU–conv3×3–BN–ReLU–conv1×1 with 4× expansion (bottleneck,
//! depth 9n+2), and nothing follows the addition, so x_L = x_l + Σ F exactly. A 1×1
//! strided projection crosses each change of shape, and a final BN–ReLU precedes pooling.
//!
//! Variable paths spell the PyTorch reference's state-dict names (`conv1.weight`,
//! `layer2.0.bn1.running_mean`, `layer3.0.shortcut.0.weight`, `linear.bias`; for the
//! pre-activation nets those of the most used PyTorch CIFAR version, `layer1.0.downsample.0`,
//! `bn`, `fc`), so checkpoints move between the two without renaming.

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

crate::text::value_enum! {
    /// Residual network or the same stack without shortcuts ("plain", the paper's baseline).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum Arch: "architecture" {
        #[default]
        Resnet => "resnet",
        Plain => "plain",
        /// Pre-activation residual network (He et al. 2016): identity paths with nothing after
        /// the addition.
        Preact => "preact",
    }
}

crate::text::value_enum! {
    /// The residual unit of a pre-activation network (He et al. 2016, Section 4 and Table 4).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum BlockKind: "block" {
        /// Two 3×3 convolutions: depth 6n+2.
        Basic => "basic",
        /// 1×1, 3×3, 1×1 convolutions, the last widening 4×: depth 9n+2 (ResNet-164, -1001).
        Bottleneck => "bottleneck",
    }
}

impl BlockKind {
    /// Convolutions per block.
    pub fn layers(self) -> i64 {
        match self {
            BlockKind::Basic => 2,
            BlockKind::Bottleneck => 3,
        }
    }

    /// Output channels over the stage's width.
    pub fn expansion(self) -> i64 {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

crate::text::value_enum! {
    /// How a shortcut crosses a change of shape (Section 3.3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum Shortcut: "shortcut option" {
        /// Identity; where the shape changes, subsample by 2 and zero-pad the new channels
        /// (no parameters). The paper's choice for CIFAR-10.
        #[default]
        A => "A",
        /// Identity; where the shape changes, a 1×1 convolution with stride 2 followed by BN.
        B => "B",
    }
}

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

/// Which network to build. `depth` must be 6n+2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResNetConfig {
    pub depth: i64,
    pub arch: Arch,
    pub shortcut: Shortcut,
    pub num_classes: i64,
    /// BatchNorm after every convolution (the paper). Without it, convolutions get a bias:
    /// the setting where the vanishing-gradient argument applies in full.
    pub batch_norm: bool,
    /// Start every residual block as the identity: γ = 0 in its last BN (or, without BN,
    /// zero weights in its last convolution), so F(x) = 0. No effect on plain networks,
    /// which have no residual branch to silence.
    pub zero_init_residual: bool,
    /// The block of a pre-activation network; `None` is the 2016 paper's choice: basic
    /// below depth 164, bottleneck from 164 (ResNet-164, ResNet-1001). The 2015 networks
    /// have basic blocks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockKind>,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        ResNetConfig {
            depth: 20,
            arch: Arch::Resnet,
            shortcut: Shortcut::A,
            num_classes: 10,
            batch_norm: true,
            zero_init_residual: false,
            block: None,
        }
    }
}

impl ResNetConfig {
    /// The block this network is built from: explicit, or the paper's default for its depth.
    pub fn block(&self) -> BlockKind {
        self.block.unwrap_or(if self.arch == Arch::Preact && self.depth >= 164 {
            BlockKind::Bottleneck
        } else {
            BlockKind::Basic
        })
    }

    /// Blocks per stage, `n` in depth = 6n+2 (basic) or 9n+2 (bottleneck); an error for any
    /// other depth, or for bottleneck blocks in a 2015 network.
    pub fn blocks_per_stage(&self) -> Result<i64> {
        let block = self.block();
        if block == BlockKind::Bottleneck && self.arch != Arch::Preact {
            return Err(Error::Config(format!(
                "--block bottleneck is for --arch preact (the 2016 pre-activation networks); {} nets have basic blocks",
                self.arch
            )));
        }
        let per_block = 3 * block.layers();
        if self.depth < per_block + 2 || (self.depth - 2) % per_block != 0 {
            let (form, examples) = match block {
                BlockKind::Basic => ("6n+2", "20, 32, 44, 56, 110, 1202 or another 6n+2"),
                BlockKind::Bottleneck => ("9n+2", "164, 1001 or another 9n+2, or --block basic"),
            };
            return Err(Error::Config(format!(
                "depth {} is not {form} with n ≥ 1 for {block} blocks: use {examples}",
                self.depth
            )));
        }
        Ok((self.depth - 2) / per_block)
    }

    /// How blocks are built, for reports: `shortcut A` (2015) or `pre-activation, bottleneck blocks`.
    pub fn design(&self) -> String {
        if self.arch == Arch::Preact {
            format!("pre-activation, {} blocks", self.block())
        } else {
            format!("shortcut {}", self.shortcut)
        }
    }

    /// A short name for runs and figures, e.g. `resnet-20`, `plain-56`, `plain-56-nobn` or
    /// `preact-164` (a block other than the paper's default for the depth is named:
    /// `preact-164-basic`).
    pub fn name(&self) -> String {
        let nobn = if self.batch_norm { "" } else { "-nobn" };
        let paper = ResNetConfig { block: None, ..*self }.block();
        let block = if self.block() != paper { format!("-{}", self.block()) } else { String::new() };
        format!("{}-{}{block}{nobn}", self.arch, self.depth)
    }
}

/// He (Kaiming) normal initialisation with fan-in and ReLU gain, as the paper and the
/// PyTorch reference (`kaiming_normal_`) use for every convolution and the linear layer.
const HE_NORMAL: nn::Init = nn::Init::Kaiming {
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
fn conv(p: nn::Path, io: (i64, i64), k: i64, stride: i64, bias: bool) -> nn::Conv2D {
    conv_with(p, io, k, nn::ConvConfig { stride, bias, ws_init: HE_NORMAL, ..Default::default() })
}

/// A k×k convolution with `cfg`'s stride, bias and initialisation, padded to keep the size.
fn conv_with(p: nn::Path, (c_in, c_out): (i64, i64), k: i64, cfg: nn::ConvConfig) -> nn::Conv2D {
    nn::conv2d(p, c_in, c_out, k, nn::ConvConfig { padding: k / 2, ..cfg })
}

/// The pre-activation nets' convolution settings (no bias with BN, He fan-out).
fn preact_conv_config(stride: i64, cfg: &ResNetConfig) -> nn::ConvConfig {
    nn::ConvConfig { stride, bias: !cfg.batch_norm, ws_init: HE_NORMAL_FAN_OUT, ..Default::default() }
}

/// Sets a convolution's weights (and bias) to zero: a residual branch that starts as F = 0.
fn silence(c: &nn::Conv2D) {
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
fn conv_t(c: &nn::Conv2D, x: &Tensor, stride: i64, compute: Compute) -> Tensor {
    let w = compute.cast(&c.ws);
    let b = c.bs.as_ref().map(|b| b.to_kind(w.kind()));
    let padding = w.size()[2] / 2;
    x.conv2d(&w, b.as_ref(), [stride, stride], [padding, padding], [1, 1], 1)
}

/// BatchNorm with β = 0 and γ = `gamma` (tch's default γ is uniform, PyTorch's is one),
/// or nothing in a network without BN.
fn batch_norm(p: nn::Path, c: i64, cfg: &ResNetConfig, gamma: f64) -> Option<nn::BatchNorm> {
    let bn =
        nn::BatchNormConfig { ws_init: nn::Init::Const(gamma), bs_init: nn::Init::Const(0.0), ..Default::default() };
    cfg.batch_norm.then(|| nn::batch_norm2d(p, c, bn))
}

/// `x` through the BN layer, if there is one.
fn norm_t(bn: &Option<nn::BatchNorm>, x: Tensor, train: bool) -> Tensor {
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

/// The whole network: `conv1`, `bn1`, `layer1..3`, global average pooling, `linear`; for
/// the pre-activation nets `conv1`, `layer1..3`, `bn`, ReLU, pooling, `fc`.
#[derive(Debug)]
pub struct ResNet {
    pub config: ResNetConfig,
    pub conv1: nn::Conv2D,
    /// The stem's BN (the 2015 nets with BN).
    pub bn1: Option<nn::BatchNorm>,
    /// The three stages of `n` blocks each, with 16, 32 and 64 filters (×4 at the output of
    /// a bottleneck).
    pub stages: [Vec<Block>; 3],
    /// The pre-activation nets' final BN (`bn`), before the last ReLU and pooling.
    pub final_bn: Option<nn::BatchNorm>,
    /// The classifier: `linear`, or `fc` in a pre-activation net.
    pub linear: nn::Linear,
    /// Number format and layout of the computation, given when the network is built.
    pub compute: Compute,
}

/// Filters per stage (Section 4.2).
pub const STAGE_WIDTHS: [i64; 3] = [16, 32, 64];

impl ResNet {
    /// Builds the network under `p` (normally `vs.root()`), with the paper's initialisation.
    /// The network in fp32, N×C×H×W: PyTorch's own arithmetic.
    pub fn new(p: &nn::Path, config: ResNetConfig) -> Result<Self> {
        Self::with_compute(p, config, Compute::default())
    }

    /// The network computing as `compute` says. With channels-last the convolution weights
    /// (the fp32 master copies) are laid out so from the start, so that their gradients and
    /// momentum buffers get the same strides and no step has to permute them; values,
    /// shapes, names and checkpoints do not change.
    pub fn with_compute(p: &nn::Path, config: ResNetConfig, compute: Compute) -> Result<Self> {
        let n = config.blocks_per_stage()?;
        let preact = config.arch == Arch::Preact;
        let expansion = if preact { config.block().expansion() } else { 1 };
        let mut c_in = STAGE_WIDTHS[0];
        let stages = std::array::from_fn(|s| {
            let layer = p / format!("layer{}", s + 1);
            let width = STAGE_WIDTHS[s];
            (0..n)
                .map(|i| {
                    let stride = if s > 0 && i == 0 { 2 } else { 1 };
                    let block = if preact {
                        Block::PreAct(PreActBlock::new(&layer / i, c_in, width, stride, &config))
                    } else {
                        Block::Basic(BasicBlock::new(&layer / i, c_in, width, stride, &config))
                    };
                    c_in = width * expansion;
                    block
                })
                .collect()
        });
        let (conv1, bn1, final_bn, linear) = if preact {
            let conv1 = conv_with(p / "conv1", (3, STAGE_WIDTHS[0]), 3, preact_conv_config(1, &config));
            let fc = nn::linear(p / "fc", c_in, config.num_classes, Default::default());
            (conv1, None, batch_norm(p / "bn", c_in, &config, 1.0), fc)
        } else {
            let linear_cfg = nn::LinearConfig { ws_init: HE_NORMAL, ..Default::default() };
            (
                conv(p / "conv1", (3, STAGE_WIDTHS[0]), 3, 1, !config.batch_norm),
                batch_norm(p / "bn1", STAGE_WIDTHS[0], &config, 1.0),
                None,
                nn::linear(p / "linear", c_in, config.num_classes, linear_cfg),
            )
        };
        let model = ResNet { config, conv1, bn1, stages, final_bn, linear, compute };
        model.lay_out_weights();
        Ok(model)
    }

    /// Lays the convolution weights out as `self.compute` says (in place).
    fn lay_out_weights(&self) {
        let compute = self.compute;
        let relayout = |conv: &nn::Conv2D| {
            let relaid = match compute.layout {
                Layout::ChannelsLast => to_channels_last(&conv.ws),
                Layout::Nchw => conv.ws.contiguous(),
            };
            tch::no_grad(|| conv.ws.shallow_clone().set_data(&relaid));
        };
        relayout(&self.conv1);
        for block in self.stages.iter().flatten() {
            block.convs().into_iter().for_each(relayout);
        }
    }

    /// The stem's layer response: conv1 after BN (2015) or conv1 alone (pre-activation),
    /// before any ReLU. `x` is the fp32 input; it is cast to the compute type and layout here.
    pub fn stem_response_t(&self, x: &Tensor, train: bool) -> Tensor {
        norm_t(&self.bn1, conv_t(&self.conv1, &self.compute.cast(x), 1, self.compute), train)
    }

    /// The stem: conv1–BN–ReLU, or conv1 alone in a pre-activation net (its first block
    /// begins with BN–ReLU).
    pub fn stem_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.stem_from_response(self.stem_response_t(x, train))
    }

    /// The stem's output from its response: ReLU, or nothing in a pre-activation net.
    pub fn stem_from_response(&self, mut r: Tensor) -> Tensor {
        if self.config.arch == Arch::Preact {
            r
        } else {
            r.relu_()
        }
    }

    /// The classifier head: (in a pre-activation net, the final BN–ReLU, then) global
    /// average pooling (accumulated and returned in fp32), then the fully connected layer
    /// in fp32. `train` matters for the final BN only.
    pub fn head(&self, x: &Tensor, train: bool) -> Tensor {
        self.head_features(x, train).apply(&self.linear)
    }

    /// The pooled features the classifier sees (N×C).
    pub fn head_features(&self, x: &Tensor, train: bool) -> Tensor {
        let x = if self.config.arch == Arch::Preact {
            norm_t(&self.final_bn, x.shallow_clone(), train).relu()
        } else {
            x.shallow_clone()
        };
        let kind = if x.kind() == Kind::BFloat16 { Kind::Float } else { x.kind() };
        x.mean_dim([2i64, 3].as_slice(), false, kind)
    }

    /// All blocks in order, with their names (`layer2.0`, …).
    pub fn blocks(&self) -> impl Iterator<Item = (String, &Block)> {
        self.stages
            .iter()
            .enumerate()
            .flat_map(|(s, blocks)| blocks.iter().enumerate().map(move |(i, b)| (format!("layer{}.{i}", s + 1), b)))
    }
}

impl ModuleT for ResNet {
    /// In bf16 the stem and the blocks run under bf16 autocast (convolutions cast their
    /// weights inside their own call); the head stays fp32 as always.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if train {
            crate::faults::out_of_memory_point();
        }
        let body = || self.blocks().fold(self.stem_t(x, train), |x, (_, b)| b.forward_t(&x, train, self.compute));
        let x = match self.compute.precision {
            Precision::Bf16 => crate::native::bf16_autocast(x.device(), body),
            Precision::Fp32 => body(),
        };
        self.head(&x, train)
    }
}

/// Number of trainable parameters (BN running statistics excluded), as the paper counts.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}
