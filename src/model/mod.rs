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

mod blocks;
mod compute;

use blocks::{batch_norm, conv, conv_t, conv_with, norm_t, preact_conv_config, HE_NORMAL};
pub use blocks::{BasicBlock, Block, PreActBlock, ShortcutPath};
pub use compute::{is_channels_last, to_channels_last, Compute, Layout, Precision};

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
            return Err(Error::Setting(crate::error::BadSetting {
                path: "model.block",
                value: block.to_string(),
                want: format!(
                    "bottleneck blocks are for the 2016 pre-activation networks (preact); {} nets have basic blocks",
                    self.arch
                ),
            }));
        }
        let per_block = 3 * block.layers();
        if self.depth < per_block + 2 || (self.depth - 2) % per_block != 0 {
            let (form, examples) = match block {
                BlockKind::Basic => ("6n+2", "20, 32, 44, 56, 110, 1202 or another 6n+2"),
                BlockKind::Bottleneck => ("9n+2", "164, 1001 or another 9n+2, or basic blocks"),
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
