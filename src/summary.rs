//! `resnet-cifar summary`: the layer table of a network, with output shapes and
//! parameter counts, like the table in Section 4.2 of the paper.

use std::fmt::Write;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::model::{parameter_count, ResNet, ResNetConfig, ShortcutPath};

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
    let vs = VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), cfg)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (depth {} = 6·{}+2, shortcut {})",
        cfg.name(),
        cfg.depth,
        cfg.blocks_per_stage()?,
        cfg.shortcut
    );
    let _ = writeln!(out, "{:<12} {:<40} {:>10} {:>10}", "layer", "type", "output", "params");
    let mut row = |name: &str, kind: &str, t: &Tensor, params: i64| {
        let _ = writeln!(out, "{name:<12} {kind:<40} {:>10} {params:>10}", shape(t));
    };
    tch::no_grad(|| {
        let x = Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu));
        row("input", "", &x, 0);
        let mut x = model.stem_t(&x, false);
        row("conv1", "conv3×3, BN, ReLU", &x, params_under(&vs, "conv1") + params_under(&vs, "bn1"));
        for (name, block) in model.blocks() {
            x = block.forward_t(&x, false, model.compute);
            let sc = match &block.shortcut {
                ShortcutPath::None => "no shortcut",
                ShortcutPath::Identity => "identity",
                ShortcutPath::ZeroPad { .. } => "A: subsample + zero-pad",
                ShortcutPath::Projection { .. } => "B: 1×1 conv + BN",
            };
            row(&name, &format!("2×(conv3×3, BN), {sc}"), &x, params_under(&vs, &name));
        }
        let pooled = x.mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        row("avgpool", "global average pooling", &pooled, 0);
        let logits = model.head(&x);
        row("linear", &format!("fully connected, {}-way", cfg.num_classes), &logits, params_under(&vs, "linear"));
    });
    let _ = writeln!(out, "total parameters: {}", parameter_count(&vs));
    Ok(out)
}
