//! Seed corpora for the fuzz targets of `fuzz/` (`make fuzz` runs this first): small real
//! files written by the library's own writers, never committed as binaries.
//!
//! ```text
//! cargo run --release --example fuzz_seeds -- fuzz/work/seeds
//! ```
//! writes `checkpoint/`, `cifar/`, `run_config/`, `metrics/` and `image/` under the directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use resnet_cifar::checkpoint::{self, Extra};
use resnet_cifar::data::{self, Dataset, Labels, Split, DEFAULT_CLASSES};
use resnet_cifar::metrics::{EpochMetrics, MetricsWriter};
use resnet_cifar::model::{Arch, ResNet, ResNetConfig};
use resnet_cifar::normalize::{Normalization, Normalizer};
use resnet_cifar::optim::Sgd;
use resnet_cifar::train::config::{RunFile, TrainConfig};
use resnet_cifar::train::resume::{progress_metadata, Progress};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A file of the corpus of `target`.
fn seed(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), bytes)?;
    Ok(())
}

/// Checkpoints as `train` writes them, but of tiny tensors under the real names (the
/// fuzzer's inputs stay a few KB): the metadata of a run, the normalisation, a training
/// state and a momentum buffer; and the real file of a depth-8 network.
fn checkpoints(dir: &Path, tmp: &Path) -> Result<()> {
    let path = tmp.join("seed.safetensors");
    let classes: Vec<String> = DEFAULT_CLASSES.iter().map(|s| s.to_string()).collect();
    let progress = Progress { epoch: 1, iteration: 2, best_val: Some(50.0), ..Default::default() };
    for (i, kind) in [Normalization::Imagenet, Normalization::Channel, Normalization::PixelMean].into_iter().enumerate()
    {
        let cfg =
            ResNetConfig { depth: 8, arch: if i == 1 { Arch::Preact } else { Arch::Resnet }, ..Default::default() };
        let normalizer = match kind {
            Normalization::Imagenet => Normalizer::imagenet(),
            _ => Normalizer::fit(
                kind,
                &(Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)) * 255.0).to_kind(Kind::Uint8),
            ),
        };
        let mut meta = checkpoint::metadata(&cfg, &normalizer);
        meta.extend(checkpoint::dataset_metadata(Dataset::Cifar10, &classes));
        meta.extend(progress_metadata(&progress, 0.1)?);
        let small = |shape: &[i64]| Tensor::ones(shape, (Kind::Float, Device::Cpu));
        let mut tensors = vec![
            ("conv1.weight".to_string(), small(&[1, 1, 1, 1])),
            ("bn1.running_var".to_string(), small(&[1])),
            ("bn1.num_batches_tracked".to_string(), Tensor::from(3i64)),
            ("linear.weight".to_string(), small(&[10, 1])),
            ("optimizer.momentum.linear.weight".to_string(), small(&[10, 1])),
        ];
        for s in 1..=3 {
            tensors.push((format!("layer{s}.0.conv1.weight"), small(&[1])));
        }
        if kind != Normalization::PixelMean {
            tensors.push((checkpoint::NORM_MEAN.into(), normalizer.mean.shallow_clone()));
            tensors.push((checkpoint::NORM_STD.into(), normalizer.std.shallow_clone()));
        }
        checkpoint::write(&path, &tensors, meta)?;
        seed(dir, "checkpoint", &format!("small-{kind}.safetensors"), &std::fs::read(&path)?)?;
    }
    let vs = VarStore::new(Device::Cpu);
    let cfg = ResNetConfig { depth: 8, ..Default::default() };
    let _ = ResNet::new(&vs.root(), cfg)?;
    let extra =
        Extra { tensors: Sgd::new(&vs, 0.9, 1e-4).state_tensors(), metadata: progress_metadata(&progress, 0.1)? };
    checkpoint::save(&path, &vs, &cfg, &Normalizer::imagenet(), extra)?;
    seed(dir, "checkpoint", "resnet-8.safetensors", &std::fs::read(&path)?)?;
    Ok(())
}

/// Batch files of two records (CIFAR-10 from the library's writer, CIFAR-100 in its
/// layout), behind the target's two selector bytes, and the names files.
fn cifar(dir: &Path, tmp: &Path) -> Result<()> {
    let synth = data::synthetic(2, 0, 1);
    let path = tmp.join("batch.bin");
    data::write_batch_file(&path, &Split { images: synth.train.images, labels: synth.train.labels })?;
    seed(dir, "cifar", "cifar10-2", &[&[0u8, 2][..], &std::fs::read(&path)?].concat())?;
    let mut c100 = vec![1u8, 2];
    for (coarse, fine) in [(3u8, 17u8), (19, 99)] {
        c100.extend([coarse, fine]);
        c100.extend((0..data::IMAGE_BYTES).map(|i| (i % 251) as u8));
    }
    seed(dir, "cifar", "cifar100-2", &c100)?;
    let names = |n: usize| (0..n).map(|i| format!("class_{i}\n")).collect::<String>();
    seed(dir, "cifar", "batches.meta.txt", format!("\0\0{}\n", DEFAULT_CLASSES.join("\n")).as_bytes())?;
    seed(dir, "cifar", "fine_label_names.txt", format!("\x01\0{}", names(100)).as_bytes())?;
    seed(dir, "cifar", "coarse_label_names.txt", format!("\x02\0{}", names(20)).as_bytes())?;
    Ok(())
}

/// `config.json` of a CIFAR-10 and a CIFAR-100 run, and training states.
fn run_configs(dir: &Path) -> Result<()> {
    let mut cfg = TrainConfig::default();
    (cfg.data.limit_train, cfg.machine.threads) = (Some(128), Some(1));
    let schedule = cfg.lr_schedule(2);
    seed(
        dir,
        "run_config",
        "config.json",
        serde_json::to_string_pretty(&RunFile::new(&cfg, 78_042, &schedule, 5))?.as_bytes(),
    )?;
    let mut c100 = TrainConfig { model: ResNetConfig { num_classes: 20, ..Default::default() }, ..cfg };
    (c100.data.dataset, c100.data.val_split) = (Dataset::Cifar100 { labels: Labels::Coarse }, 10);
    let file = RunFile::new(&c100, 78_042, &c100.lr_schedule(2), 5);
    seed(dir, "run_config", "config-cifar100.json", serde_json::to_string(&file)?.as_bytes())?;
    for (i, p) in [
        Progress { epoch: 2, iteration: 4, best_val: Some(12.5), ..Default::default() },
        Progress {
            epoch: 1,
            iteration: 3,
            batch: 1,
            loss_sum: 140.0,
            wrong: 50,
            seen: 64,
            norm_sums: vec![1.0; 4],
            train_seconds: 2.0,
            best_val: None,
        },
    ]
    .iter()
    .enumerate()
    {
        seed(
            dir,
            "run_config",
            &format!("train_state-{i}.json"),
            progress_metadata(p, 0.1)?["train_state"].as_bytes(),
        )?;
    }
    Ok(())
}

/// `metrics.csv` of two epochs, without and with the optional columns.
fn metrics(dir: &Path, tmp: &Path) -> Result<()> {
    let path = tmp.join("metrics.csv");
    for (val, norms) in [(false, false), (true, true)] {
        let mut w = MetricsWriter::create(&path, val, norms)?;
        for epoch in 1..=2 {
            w.write(&EpochMetrics {
                epoch,
                iteration: 2 * epoch,
                lr: 0.1,
                train_loss: 2.0,
                train_err: 80.0,
                test_loss: 2.1,
                test_err: 81.0,
                epoch_seconds: 1.5,
                images_per_sec: 100.0,
                val: val.then_some((2.2, 82.0)),
                grad_norms: norms.then(|| vec![0.5; 4]),
            })?;
        }
        drop(w);
        seed(dir, "metrics", &format!("metrics-{val}-{norms}.csv"), &std::fs::read(&path)?)?;
    }
    Ok(())
}

/// Small PNG and JPEG images.
fn images(dir: &Path) -> Result<()> {
    let img = image::RgbImage::from_fn(8, 6, |x, y| image::Rgb([(x * 30) as u8, (y * 40) as u8, 128]));
    for (name, format) in [("seed.png", image::ImageFormat::Png), ("seed.jpg", image::ImageFormat::Jpeg)] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, format)?;
        seed(dir, "image", name, bytes.get_ref())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds DIR");
        return ExitCode::from(2);
    };
    let run = || -> Result<()> {
        let tmp = tempfile_dir(&dir)?;
        checkpoints(&dir, &tmp)?;
        cifar(&dir, &tmp)?;
        run_configs(&dir)?;
        metrics(&dir, &tmp)?;
        images(&dir)?;
        std::fs::remove_dir_all(&tmp)?;
        Ok(())
    };
    match run() {
        Ok(()) => {
            println!("seed corpora written to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A scratch directory for the writers that take a path.
fn tempfile_dir(dir: &Path) -> Result<PathBuf> {
    let tmp = dir.join(".tmp");
    std::fs::create_dir_all(&tmp)?;
    Ok(tmp)
}
