//! `resnet-cifar summary`: the layer table of a network, with output shapes and
//! parameter counts, like the table in Section 4.2 of the paper.

use std::fmt::Write;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::model::{parameter_count, Arch, Block, BlockKind, ResNet, ResNetConfig, ShortcutPath};

fn params_under(vs: &VarStore, prefix: &str) -> i64 {
    vs.variables()
        .iter()
        .filter(|(n, t)| t.requires_grad() && (n.as_str() == prefix || n.starts_with(&format!("{prefix}."))))
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

fn shape(t: &Tensor) -> String {
    let s: Vec<String> = t.size()[1..].iter().map(i64::to_string).collect();
    s.join("×")
}

/// The table as text.
pub fn summary(cfg: ResNetConfig) -> Result<String> {
    crate::memory::check_fits(&cfg)?;
    let vs = VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), cfg)?;
    let mut out = String::new();
    let preact = cfg.arch == Arch::Preact;
    let _ = writeln!(
        out,
        "{} (depth {} = {}·{}+2, {})",
        cfg.name(),
        cfg.depth,
        3 * cfg.block().layers(),
        cfg.blocks_per_stage()?,
        cfg.design()
    );
    let _ = writeln!(out, "{:<12} {:<40} {:>10} {:>10}", "layer", "type", "output", "params");
    let mut row = |name: &str, kind: &str, t: &Tensor, params: i64| {
        let _ = writeln!(out, "{name:<12} {kind:<40} {:>10} {params:>10}", shape(t));
    };
    tch::no_grad(|| {
        let x = Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu));
        row("input", "", &x, 0);
        let mut x = model.stem_t(&x, false);
        let stem = if preact { "conv3×3" } else { "conv3×3, BN, ReLU" };
        row("conv1", stem, &x, params_under(&vs, "conv1") + params_under(&vs, "bn1"));
        for (name, block) in model.blocks() {
            x = block.forward_t(&x, false, model.compute);
            let sc = match block.shortcut() {
                ShortcutPath::None => "no shortcut",
                ShortcutPath::Identity => "identity",
                ShortcutPath::ZeroPad { .. } => "A: subsample + zero-pad",
                ShortcutPath::Projection { bn: Some(_), .. } => "B: 1×1 conv + BN",
                ShortcutPath::Projection { bn: None, .. } => "1×1 projection",
            };
            let layers = match (block, cfg.block()) {
                (Block::Basic(_), _) => "2×(conv3×3, BN)",
                (Block::PreAct(_), BlockKind::Basic) => "2×(BN, ReLU, conv3×3)",
                (Block::PreAct(_), BlockKind::Bottleneck) => "3×(BN, ReLU, conv) 1×1/3×3/1×1",
            };
            row(&name, &format!("{layers}, {sc}"), &x, params_under(&vs, &name));
        }
        let head = if preact { "BN, ReLU, global average pooling" } else { "global average pooling" };
        let pooled = model.head_features(&x, false);
        row("avgpool", head, &pooled, params_under(&vs, "bn"));
        let logits = model.head(&x, false);
        let fc = if preact { "fc" } else { "linear" };
        row(fc, &format!("fully connected, {}-way", cfg.num_classes), &logits, params_under(&vs, fc));
    });
    let _ = writeln!(out, "total parameters: {}", parameter_count(&vs));
    Ok(out)
}
