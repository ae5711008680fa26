//! Checkpoints as safetensors with the PyTorch reference's tensor names, so that PyTorch's
//! `load_state_dict(strict=False)` takes our files and we take theirs. Besides the weights
//! and BN buffers a checkpoint carries metadata (arch, depth, shortcut, normalization,
//! project version; from `train` also the data set, its labels and class names) and the
//! normalization statistics as `normalization.{mean,std}`.
//! Writes are atomic ([`crate::files::write_atomic`]). No pickle is ever read, and nothing
//! of a file reaches libtorch before [`check`] has passed every tensor; the metadata is
//! checked against the tensor names before a model is built ([`Checkpoint::check_fits`]).

pub mod check;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::data::{Dataset, DatasetName, Labels};
use crate::error::{Error, Result};
use crate::files::printable;
use crate::model::{Arch, BlockKind, ResNetConfig, Shortcut};
use crate::normalize::{Normalization, Normalizer};

pub const NORM_MEAN: &str = "normalization.mean";
pub const NORM_STD: &str = "normalization.std";
/// Metadata keys of the data set a network was trained on: `dataset` (cifar10, cifar100),
/// `labels` (CIFAR-100's fine or coarse) and `classes` (the class names as a JSON list).
/// Checkpoints without them (PyTorch's, ours from before CIFAR-100) record no data set.
const DATASET_KEY: &str = "dataset";
const LABELS_KEY: &str = "labels";
const CLASSES_KEY: &str = "classes";
/// Prefix of tensors that are not model state (ignored when loading weights).
const AUX_PREFIXES: [&str; 2] = ["normalization.", "optimizer."];

/// A checkpoint read from disk: named tensors (on the CPU) and string metadata.
#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

fn to_dtype(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Uint8 => Dtype::U8,
        _ => return None,
    })
}

fn to_kind(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::U8 => Kind::Uint8,
        _ => return None,
    })
}

/// Serialises `tensors` with `metadata` and writes them to `path` atomically.
pub fn write(path: &Path, tensors: &[(String, Tensor)], metadata: HashMap<String, String>) -> Result<()> {
    let mut raw = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let dtype = to_dtype(t.kind())
            .ok_or_else(|| Error::checkpoint(path, format!("tensor {name} has unsupported kind {:?}", t.kind())))?;
        let nbytes = t.numel() * t.kind().elt_size_in_bytes();
        let mut bytes = vec![0u8; nbytes];
        t.copy_data_u8(&mut bytes, t.numel());
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        raw.push((name.clone(), dtype, shape, bytes));
    }
    let views = raw
        .iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::checkpoint(path, format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), Some(metadata))
        .map_err(|e| Error::checkpoint(path, format!("cannot serialise: {e}")))?;
    // The test hook's `checkpoint:N` pauses inside the N-th checkpoint write, between the
    // synced temporary file and the rename.
    crate::files::write_atomic_with(path, &bytes, crate::faults::checkpoint_write)
}

/// Reads a safetensors file (a regular file only). Every failure names the file.
pub fn read(path: &Path) -> Result<Checkpoint> {
    parse(&crate::files::read(path)?, path)
}

/// Parses the bytes of a safetensors file; `path` names it in errors. Every tensor is
/// checked ([`check::tensor`]) before the first one is handed to libtorch.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let bad = |e: safetensors::SafeTensorError| {
        let e = printable(&e.to_string());
        Error::checkpoint(path, format!("not a valid safetensors file ({e}): is it truncated or of another format?"))
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let st = SafeTensors::deserialize(bytes).map_err(bad)?;
    let views = st.tensors();
    for (name, view) in &views {
        check::tensor(name, view, path)?;
    }
    let mut tensors = BTreeMap::new();
    for (name, view) in views {
        let kind = to_kind(view.dtype()).ok_or_else(|| {
            Error::checkpoint(path, format!("tensor {} has unsupported dtype {:?}", printable(&name), view.dtype()))
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        tensors.insert(name, Tensor::f_from_data_size(view.data(), &shape, kind)?);
    }
    Ok(Checkpoint { path: path.to_path_buf(), tensors, metadata: meta.metadata().clone().unwrap_or_default() })
}

/// The name a checkpoint tensor has in our VarStore: without DataParallel's `module.`.
fn canonical(name: &str) -> &str {
    name.strip_prefix("module.").unwrap_or(name)
}

impl Checkpoint {
    /// Copies every model tensor into `vs`. Missing keys, unexpected keys and shape
    /// mismatches are all reported together, by name. `num_batches_tracked` entries and
    /// a `module.` prefix are accepted and ignored.
    pub fn load_into(&self, vs: &mut VarStore) -> Result<()> {
        let mut vars = vs.variables();
        let mut unexpected = Vec::new();
        let mut mismatched = Vec::new();
        let mut pending = Vec::new();
        for (name, t) in &self.tensors {
            let name = canonical(name);
            if name.ends_with("num_batches_tracked") || AUX_PREFIXES.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            match vars.remove(name) {
                None => unexpected.push(name.to_string()),
                Some(v) if v.size() != t.size() => {
                    mismatched.push(format!("{name} (file {:?}, model {:?})", t.size(), v.size()))
                }
                Some(v) => pending.push((v, t)),
            }
        }
        let mut missing: Vec<String> = vars.into_keys().collect();
        missing.sort();
        if !(missing.is_empty() && unexpected.is_empty() && mismatched.is_empty()) {
            let mut parts = Vec::new();
            let list = |v: &[String]| {
                let shown: Vec<String> = v.iter().take(8).map(|n| printable(n)).collect();
                let more = if v.len() > 8 { format!(" and {} more", v.len() - 8) } else { String::new() };
                format!("{}{more}", shown.join(", "))
            };
            if !missing.is_empty() {
                parts.push(format!("{} missing: {}", missing.len(), list(&missing)));
            }
            if !unexpected.is_empty() {
                parts.push(format!("{} unexpected: {}", unexpected.len(), list(&unexpected)));
            }
            if !mismatched.is_empty() {
                parts.push(format!("{} of another shape: {}", mismatched.len(), list(&mismatched)));
            }
            return Err(Error::CheckpointMismatch {
                path: self.path.clone(),
                detail: format!("its tensors are not the network's ({})", parts.join("; ")),
            });
        }
        tch::no_grad(|| {
            for (mut v, t) in pending {
                v.copy_(t);
            }
        });
        Ok(())
    }

    /// The normaliser stored in the checkpoint, if any (`None` when it has neither the
    /// metadata `normalization` nor the tensors). `kind` comes from the metadata; the
    /// statistics must have its shape (3×32×32 for pixel-mean, 3×1×1 otherwise) and a
    /// positive std.
    pub fn normalizer(&self) -> Result<Option<Normalizer>> {
        let kind = self.metadata.get("normalization");
        let (mean, std) = (self.tensors.get(NORM_MEAN), self.tensors.get(NORM_STD));
        let (kind, mean, std) = match (kind, mean, std) {
            (None, None, None) => return Ok(None),
            (Some(k), Some(m), Some(s)) => (k, m, s),
            _ => {
                return Err(Error::checkpoint(
                    &self.path,
                    format!(
                        "the normalization is incomplete (metadata `normalization` and tensors {NORM_MEAN} and \
                         {NORM_STD} go together): the file is corrupt; pass --normalize, or use another checkpoint"
                    ),
                ))
            }
        };
        let kind: Normalization = kind.parse().map_err(|e| Error::checkpoint(&self.path, format!("metadata: {e}")))?;
        let shape: &[i64] = if kind == Normalization::PixelMean { &[3, 32, 32] } else { &[3, 1, 1] };
        for (name, t) in [(NORM_MEAN, mean), (NORM_STD, std)] {
            if t.size() != shape {
                return Err(Error::checkpoint(
                    &self.path,
                    format!(
                        "tensor {name} has shape {:?}, but {kind} statistics are {shape:?}: the file is corrupt; \
                         pass --normalize to compute them again",
                        t.size()
                    ),
                ));
            }
        }
        let smallest = std.min().to_kind(Kind::Double).double_value(&[]);
        if smallest <= 0.0 {
            return Err(Error::checkpoint(
                &self.path,
                format!(
                    "tensor {NORM_STD} holds {smallest}: a standard deviation must be positive; the file is corrupt"
                ),
            ));
        }
        Ok(Some(Normalizer::from_stats(kind, mean.shallow_clone(), std.shallow_clone())))
    }

    /// Blocks per stage that the tensor names hold: `layer{1,2,3}.{i}` counted (0 for a
    /// stage without tensors).
    fn blocks_in_names(&self) -> [i64; 3] {
        std::array::from_fn(|s| {
            let prefix = format!("layer{}.", s + 1);
            self.tensors
                .keys()
                .filter_map(|n| canonical(n).strip_prefix(&prefix)?.split('.').next()?.parse::<i64>().ok())
                .filter(|i| *i >= 0)
                .max()
                .map_or(0, |i| i.saturating_add(1))
        })
    }

    /// Checks `cfg` against the tensors before a model of it is built: the blocks per
    /// stage its depth implies are those the names hold, and its classifier is the file's.
    /// A checkpoint whose metadata (or a flag) claims a depth its tensors do not have is
    /// refused here, not after building a network of that depth.
    pub fn check_fits(&self, cfg: &ResNetConfig) -> Result<()> {
        // A file describes a network that may never fit here: refused before it is built.
        let n = crate::memory::check_fits(cfg)?;
        let held = self.blocks_in_names();
        if held != [n; 3] {
            let stages: Vec<String> = (1..=3)
                .zip(held)
                .filter(|(_, h)| *h != n)
                .map(|(s, h)| match h > n {
                    true => format!("unexpected layer{s}.{n}.* to layer{s}.{}.*", h - 1),
                    false => format!("missing layer{s}.{h}.* to layer{s}.{}.*", n - 1),
                })
                .collect();
            return Err(Error::CheckpointMismatch {
                path: self.path.clone(),
                detail: format!(
                    "depth {} has {n} blocks per stage, the checkpoint's tensors hold {:?} in layer1–3 ({}); its \
                     metadata may be corrupt",
                    cfg.depth,
                    held,
                    stages.join("; ")
                ),
            });
        }
        let classifier = self.tensors.iter().find(|(n, _)| matches!(canonical(n), "linear.weight" | "fc.weight"));
        if let Some((name, t)) = classifier {
            if t.size().first() != Some(&cfg.num_classes) {
                return Err(Error::checkpoint(
                    &self.path,
                    format!(
                        "does not fit the model: {} classes, but {name} has shape {:?}; the metadata num_classes \
                         is corrupt",
                        cfg.num_classes,
                        t.size()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The model configuration (see [`Self::described_config`]), checked against the
    /// tensors ([`Self::check_fits`]).
    pub fn model_config(&self) -> Result<ResNetConfig> {
        let cfg = self.described_config()?;
        self.check_fits(&cfg)?;
        Ok(cfg)
    }

    /// The model configuration as described: from the metadata where present, else
    /// inferred from the tensor names (a pre-activation net from `fc`, bottlenecks from
    /// `conv3`, depth from the number of blocks, shortcut B from projection weights). Not
    /// yet checked against the tensors.
    pub fn described_config(&self) -> Result<ResNetConfig> {
        let parse_err =
            |k: &str, v: &str| Error::checkpoint(&self.path, format!("metadata {k}={} is not valid", printable(v)));
        let mut cfg = ResNetConfig::default();
        let named = |prefix: &str| self.tensors.keys().any(|n| canonical(n).starts_with(prefix));
        match self.metadata.get("arch") {
            Some(a) => cfg.arch = a.parse::<Arch>().map_err(|_| parse_err("arch", a))?,
            None if named("fc.") => cfg.arch = Arch::Preact,
            None => {}
        }
        match self.metadata.get("block") {
            Some(b) => cfg.block = Some(b.parse::<BlockKind>().map_err(|_| parse_err("block", b))?),
            None if cfg.arch == Arch::Preact => {
                let conv3 = self.tensors.keys().any(|n| canonical(n).ends_with(".conv3.weight"));
                cfg.block = Some(if conv3 { BlockKind::Bottleneck } else { BlockKind::Basic });
            }
            None => {}
        }
        let blocks = self
            .tensors
            .keys()
            .filter_map(|n| {
                let n = canonical(n).strip_prefix("layer1.")?;
                n.split('.').next()?.parse::<i64>().ok()
            })
            .max();
        match self.metadata.get("depth") {
            Some(d) => cfg.depth = d.parse().map_err(|_| parse_err("depth", d))?,
            None => match blocks {
                Some(b) => cfg.depth = 3 * cfg.block().layers() * (b + 1) + 2,
                None => {
                    return Err(Error::checkpoint(&self.path, "no layer1.* tensors: not a CIFAR ResNet checkpoint"))
                }
            },
        }
        cfg.batch_norm = match self.metadata.get("batch_norm") {
            Some(b) => b != "false",
            None => named("bn1.") || named("bn."),
        };
        match self.metadata.get("shortcut") {
            Some(s) => cfg.shortcut = s.parse::<Shortcut>().map_err(|_| parse_err("shortcut", s))?,
            None if self.tensors.keys().any(|n| n.contains(".shortcut.")) => cfg.shortcut = Shortcut::B,
            None => {}
        }
        // Classes: the metadata's, else the classifier's output size.
        cfg.num_classes = match self.metadata.get("num_classes") {
            Some(n) => n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| parse_err("num_classes", n))?,
            None => self
                .tensors
                .iter()
                .find(|(n, _)| matches!(canonical(n), "linear.weight" | "fc.weight"))
                .map_or(cfg.num_classes, |(_, t)| t.size()[0]),
        };
        // The paper's block for this depth reads back as the default (`None`), as it was built.
        if cfg.block == Some(ResNetConfig { block: None, ..cfg }.block()) {
            cfg.block = None;
        }
        Ok(cfg)
    }

    /// The data set the metadata records, or `None` when it records none.
    pub fn dataset(&self) -> Result<Option<Dataset>> {
        let Some(name) = self.metadata.get(DATASET_KEY) else {
            return Ok(None);
        };
        let bad =
            |k: &str, v: &str| Error::checkpoint(&self.path, format!("metadata {k}={} is not valid", printable(v)));
        let name: DatasetName = name.parse().map_err(|_| bad(DATASET_KEY, name))?;
        let labels = match self.metadata.get(LABELS_KEY) {
            Some(l) => Some(l.parse::<Labels>().map_err(|_| bad(LABELS_KEY, l))?),
            None => None,
        };
        Dataset::new(name, labels).map(Some).map_err(|e| Error::checkpoint(&self.path, format!("metadata: {e}")))
    }

    /// The class names the metadata records, if any: a JSON list of strings, else an error.
    pub fn classes(&self) -> Result<Option<Vec<String>>> {
        let Some(raw) = self.metadata.get(CLASSES_KEY) else {
            return Ok(None);
        };
        serde_json::from_str(raw).map(Some).map_err(|e| {
            Error::checkpoint(&self.path, format!("metadata `{CLASSES_KEY}` is not a list of class names ({e})"))
        })
    }
}

/// The metadata that records the data set a network is trained on and its class names.
pub fn dataset_metadata(dataset: Dataset, classes: &[String]) -> HashMap<String, String> {
    let mut meta = HashMap::from([
        (DATASET_KEY.to_string(), dataset.name().to_string()),
        (CLASSES_KEY.to_string(), serde_json::to_string(classes).expect("names serialise")),
    ]);
    meta.extend(dataset.labels().map(|l| (LABELS_KEY.to_string(), l.to_string())));
    meta
}

/// The metadata every checkpoint of ours carries.
pub fn metadata(cfg: &ResNetConfig, normalizer: &Normalizer) -> HashMap<String, String> {
    HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("arch".to_string(), cfg.arch.to_string()),
        ("depth".to_string(), cfg.depth.to_string()),
        ("shortcut".to_string(), cfg.shortcut.to_string()),
        ("block".to_string(), cfg.block().to_string()),
        ("normalization".to_string(), normalizer.kind.to_string()),
        ("batch_norm".to_string(), cfg.batch_norm.to_string()),
        ("num_classes".to_string(), cfg.num_classes.to_string()),
        ("resnet_cifar_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ])
}

/// The model's variables plus the normalisation statistics, ready for [`write`].
pub fn model_tensors(vs: &VarStore, normalizer: &Normalizer) -> Vec<(String, Tensor)> {
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors.push((NORM_MEAN.to_string(), normalizer.mean.shallow_clone()));
    tensors.push((NORM_STD.to_string(), normalizer.std.shallow_clone()));
    tensors
}

/// What a checkpoint carries beyond the model: tensors (e.g. the optimizer's state) and
/// metadata (e.g. the training state).
#[derive(Debug, Default)]
pub struct Extra {
    pub tensors: Vec<(String, Tensor)>,
    pub metadata: HashMap<String, String>,
}

/// Saves model, normalisation and `extra` to `path`.
pub fn save(path: &Path, vs: &VarStore, cfg: &ResNetConfig, normalizer: &Normalizer, extra: Extra) -> Result<()> {
    let mut tensors = model_tensors(vs, normalizer);
    tensors.extend(extra.tensors);
    let mut meta = metadata(cfg, normalizer);
    meta.extend(extra.metadata);
    write(path, &tensors, meta)
}
