//! Using a trained network: load a checkpoint (ours or the PyTorch reference's) into the
//! right architecture, find the data set it was trained on, its input normalisation and
//! class names, and classify images of any size.

use std::path::Path;

use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, Checkpoint};
use crate::data::{DataSource, Dataset, DatasetChoice};
use crate::error::{Error, Result};
use crate::model::{Arch, BlockKind, Compute, ResNet, ResNetConfig, Shortcut};
use crate::normalize::{Normalization, Normalizer};

/// Flags that override (or, for a checkpoint without metadata, supply) the architecture.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelOverrides {
    pub arch: Option<Arch>,
    pub depth: Option<i64>,
    pub shortcut: Option<Shortcut>,
    pub block: Option<BlockKind>,
}

/// A network with its weights, and the checkpoint they came from.
pub struct LoadedModel {
    pub vs: VarStore,
    pub model: ResNet,
    pub checkpoint: Checkpoint,
}

/// Reads `path` and loads it into the architecture its metadata (or tensor names) and
/// `overrides` describe, on `device`.
pub fn load_model(path: &Path, overrides: &ModelOverrides, device: Device, compute: Compute) -> Result<LoadedModel> {
    let checkpoint = checkpoint::read(path)?;
    let inferred = checkpoint.described_config()?;
    let config = ResNetConfig {
        arch: overrides.arch.unwrap_or(inferred.arch),
        depth: overrides.depth.unwrap_or(inferred.depth),
        shortcut: overrides.shortcut.unwrap_or(inferred.shortcut),
        block: overrides.block.or(inferred.block),
        ..inferred
    };
    checkpoint.check_fits(&config)?;
    let mut vs = VarStore::new(device);
    let model = ResNet::with_compute(&vs.root(), config, compute)?;
    checkpoint.load_into(&mut vs)?;
    Ok(LoadedModel { vs, model, checkpoint })
}

/// The data set the network of `ckpt` is used on: the one its metadata records, which
/// `asked` may repeat but not contradict, else the one `asked` names (CIFAR-10 by
/// default). Its class count must be the classifier's.
pub fn dataset_for(ckpt: &Checkpoint, asked: DatasetChoice) -> Result<Dataset> {
    let dataset = asked.resolve(ckpt.dataset()?, &ckpt.path)?;
    let outputs = ckpt.model_config()?.num_classes;
    if outputs != dataset.num_classes() {
        return Err(Error::ClassCountMismatch {
            path: ckpt.path.clone(),
            outputs,
            dataset: dataset.to_string(),
            classes: dataset.num_classes(),
        });
    }
    Ok(dataset)
}

/// [`dataset_for`] each checkpoint in `paths` (read one at a time), which must all name
/// the same data set.
pub fn dataset_for_all(paths: &[std::path::PathBuf], asked: DatasetChoice) -> Result<Dataset> {
    common_dataset(paths.iter().map(|p| checkpoint::read(p)), asked)
}

/// [`dataset_for`] each checkpoint, which must all name the same data set; the asked one
/// when there are none.
pub fn common_dataset<C: std::borrow::Borrow<Checkpoint>>(
    ckpts: impl IntoIterator<Item = Result<C>>,
    asked: DatasetChoice,
) -> Result<Dataset> {
    let mut found: Option<(Dataset, std::path::PathBuf)> = None;
    for ckpt in ckpts {
        let ckpt = ckpt?;
        let ckpt = ckpt.borrow();
        let dataset = dataset_for(ckpt, asked)?;
        match &found {
            Some((first, at)) if *first != dataset => {
                return Err(Error::Config(format!(
                    "{} was trained on {first}, {} on {dataset}: measure them separately",
                    at.display(),
                    ckpt.path.display()
                )))
            }
            Some(_) => {}
            None => found = Some((dataset, ckpt.path.clone())),
        }
    }
    found.map_or_else(|| asked.dataset(), |(d, _)| Ok(d))
}

/// The class names of the network of `ckpt`: those its metadata records (control
/// characters escaped, for printing), else those in `data` (whose data set the caller
/// took from [`dataset_for`]).
pub fn class_names(ckpt: &Checkpoint, data: &DataSource) -> Result<Vec<String>> {
    let outputs = ckpt.model_config()?.num_classes;
    match ckpt.classes()? {
        Some(names) if names.len() as i64 == outputs => Ok(names.iter().map(|n| crate::files::printable(n)).collect()),
        Some(names) => Err(Error::checkpoint(
            &ckpt.path,
            format!("records {} class names for a {outputs}-way classifier: the metadata is corrupt", names.len()),
        )),
        None => data.classes(),
    }
}

/// The normalisation to feed the network: the checkpoint's own unless `flag` asks for
/// another; `pixel-mean` and `channel` statistics not in the checkpoint are computed from
/// the training set of `data`.
pub fn normalizer_for(ckpt: &Checkpoint, flag: Option<Normalization>, data: &DataSource) -> Result<Normalizer> {
    let stored = ckpt.normalizer()?;
    match (flag, stored) {
        (None, Some(n)) => Ok(n),
        (Some(f), Some(n)) if f == n.kind => Ok(n),
        (Some(Normalization::Imagenet), _) => Ok(Normalizer::imagenet()),
        (Some(kind), _) => {
            let train = data.load_split(crate::data::Part::Train, None)?;
            Ok(Normalizer::fit(kind, &train.images))
        }
        (None, None) => Err(Error::NoNormalization { path: ckpt.path.clone() }),
    }
}

/// One image's top classes, most probable first: (class index, probability).
pub type Prediction = Vec<(i64, f64)>;

/// How large an image may be to be decoded: checked on its header before any pixel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_side: u32,
    pub max_pixels: u64,
}

/// What `predict` decodes: any photo up to 24 megapixels and 8192 pixels a side. A larger
/// one (or a 644-byte file whose header claims 11784×8198, as the fuzzer found: seconds of
/// decoding for nothing) is refused before decoding.
pub const PREDICT_LIMITS: ImageLimits = ImageLimits { max_side: 8192, max_pixels: 24_000_000 };

/// Reads a PNG or JPEG (a regular file only) within [`PREDICT_LIMITS`], resized to 32×32
/// RGB, as a `u8` tensor 1×3×32×32.
pub fn read_image(path: &Path) -> Result<Tensor> {
    let rgb = decode_image(&crate::files::read(path)?, path, PREDICT_LIMITS)?;
    // HWC bytes → CHW.
    Ok(Tensor::from_slice(&rgb).view([32, 32, 3]).permute([2, 0, 1]).contiguous().unsqueeze(0))
}

/// Decodes the bytes of a PNG or JPEG (the format from its content, not the name) into
/// 32×32 RGB bytes, HWC; an image beyond `limits` is refused from its header, and the
/// decoder may allocate no more than its pixels need. `path` names it in errors. Pure
/// Rust: no libtorch call.
pub fn decode_image(bytes: &[u8], path: &Path, limits: ImageLimits) -> Result<Vec<u8>> {
    let bad = |e: image::ImageError| {
        let e = crate::files::printable(&e.to_string());
        Error::data(path, format!("cannot read the image ({e}): use a PNG or JPEG file"))
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(image::ImageError::IoError(e)))?;
    if !matches!(reader.format(), Some(image::ImageFormat::Png | image::ImageFormat::Jpeg)) {
        return Err(Error::data(path, "not a PNG or JPEG file: use a PNG or JPEG image"));
    }
    // The sides are checked below, with a message of our own; the decoder may allocate what
    // RGBA at 16 bits a channel needs, with room for its own buffers.
    let mut decoder_limits = image::Limits::no_limits();
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(16));
    reader.limits(decoder_limits);
    let decoder = reader.into_decoder().map_err(bad)?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let pixels = u64::from(w) * u64::from(h);
    if w > limits.max_side || h > limits.max_side || pixels > limits.max_pixels {
        return Err(Error::data(
            path,
            format!(
                "{w}×{h} pixels is more than predict decodes (at most {} megapixels, {} a side): downscale the image",
                limits.max_pixels / 1_000_000,
                limits.max_side
            ),
        ));
    }
    let img = image::DynamicImage::from_decoder(decoder).map_err(bad)?;
    let rgb = image::imageops::resize(&img.to_rgb8(), 32, 32, image::imageops::FilterType::Triangle);
    Ok(rgb.into_raw())
}

/// Classifies `u8` images (N×3×32×32) and returns the `k` most probable classes of each.
pub fn predict(model: &ResNet, normalizer: &Normalizer, images: &Tensor, k: i64) -> Result<Vec<Prediction>> {
    let probs = tch::no_grad(|| model.forward_t(&normalizer.apply(images), false).softmax(-1, Kind::Float));
    let (p, idx) = probs.topk(k.min(probs.size()[1]), -1, true, true);
    let p = Vec::<Vec<f64>>::try_from(p.to_kind(Kind::Double))?;
    if p.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::NotFinite { what: "the network's outputs are not finite".into() });
    }
    let idx = Vec::<Vec<i64>>::try_from(idx)?;
    Ok(idx.into_iter().zip(p).map(|(i, p)| i.into_iter().zip(p).collect()).collect())
}
