//! The fuzz targets' bodies: each feeds bytes to one reader of untrusted files exactly as
//! the commands do (parse, then check), and lets any panic, abort or hang surface. A
//! reader may refuse the input with an error; it may never crash.

use std::path::Path;

use resnet_cifar::checkpoint;
use resnet_cifar::data::{self, Dataset, Labels};
use resnet_cifar::inference;
use resnet_cifar::metrics::{self, Layout};
use resnet_cifar::train::config::RunFile;
use resnet_cifar::train::resume::{self, RunShape};

/// A small run's shape, for checking fuzzed training states.
fn shape(grad_norms: bool) -> RunShape {
    RunShape { iters_per_epoch: 2, total_iterations: 10, epochs: 5, batch_size: 64, train_images: 128, grad_norms }
}

/// A checkpoint: safetensors parsing, the tensor checks, then everything a command reads
/// from it (model configuration against the tensor names, normalisation, data set, class
/// names, training state).
pub fn checkpoint(bytes: &[u8]) {
    let Ok(ckpt) = checkpoint::parse(bytes, Path::new("fuzz.safetensors")) else {
        return;
    };
    let _ = ckpt.model_config();
    let _ = ckpt.normalizer();
    let _ = ckpt.dataset();
    let _ = ckpt.classes();
    if let Ok(p) = resume::progress_of(&ckpt) {
        let _ = resume::check_progress(&ckpt, &p, &shape(bytes.len() % 2 == 0));
    }
}

/// A CIFAR-10 or CIFAR-100 binary file (the first byte picks the data set, the second the
/// record count), and the same bytes as the data set's names file.
pub fn cifar(bytes: &[u8]) {
    let [pick, records, rest @ ..] = bytes else {
        return;
    };
    let dataset = match pick % 3 {
        0 => Dataset::Cifar10,
        1 => Dataset::Cifar100 { labels: Labels::Fine },
        _ => Dataset::Cifar100 { labels: Labels::Coarse },
    };
    let path = Path::new("fuzz.bin");
    if let Ok((images, labels)) = data::parse_file(dataset, usize::from(records % 4), rest, path) {
        assert_eq!(images.len(), labels.len() * data::IMAGE_BYTES);
        assert!(labels.iter().all(|l| (0..dataset.num_classes()).contains(l)));
    }
    let _ = data::parse_names(dataset, rest, path);
}

/// `config.json` and the `train_state` of `--resume`: parsed, every field checked.
pub fn run_config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(file) = RunFile::parse(text) {
        if file.check().is_ok() {
            let _ = file.config(Path::new("run"));
        }
    }
    if let Ok(p) = resume::parse_progress(text) {
        let _ = p.check(&shape(bytes.len() % 2 == 0));
    }
}

/// `metrics.csv`: parsed, then checked as `--resume` checks it.
pub fn metrics(bytes: &[u8]) {
    let Ok((header, rows)) = metrics::parse(bytes, Path::new("metrics.csv")) else {
        return;
    };
    let layout = Layout { with_val: bytes.len() % 2 == 0, with_grad_norms: bytes.len() % 3 == 0 };
    let _ = metrics::check_resumable(&header, rows, (bytes.len() % 5) as i64, layout);
}

/// The image path of `predict`, within limits a thousand times smaller than its own (the
/// same checks and decoders; executions stay fast): decoded (PNG or JPEG) and resized.
pub fn image(bytes: &[u8]) {
    let limits = inference::ImageLimits { max_side: 1024, max_pixels: 24_000 };
    if let Ok(rgb) = inference::decode_image(bytes, Path::new("fuzz.png"), limits) {
        assert_eq!(rgb.len(), 32 * 32 * 3);
    }
}
