//! CIFAR-10 in the official binary layout (`cifar-10-batches-bin/`): five training batches
//! and one test batch of 10,000 records each; a record is one label byte followed by the
//! 1024 red, 1024 green and 1024 blue bytes of a 32×32 image, row-major.
//!
//! Images stay as `u8` tensors (150 MB for the training set rather than 600 MB of floats);
//! batches are converted to floats and normalised one at a time (see `normalize.rs`).

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

pub const IMAGE_SIDE: i64 = 32;
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
pub const RECORD_BYTES: usize = IMAGE_BYTES + 1;
pub const RECORDS_PER_FILE: usize = 10_000;
pub const NUM_CLASSES: i64 = 10;
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
pub const TEST_FILE: &str = "test_batch.bin";
pub const DEFAULT_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// A set of images (`u8`, N×3×32×32) with their labels (`i64`, N).
#[derive(Debug)]
pub struct Split {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Split {
    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds a split from raw records (label byte + 3072 pixel bytes each).
    pub fn from_records(images: Vec<u8>, labels: Vec<i64>) -> Self {
        let n = labels.len() as i64;
        Split {
            images: Tensor::from_slice(&images).view([n, 3, IMAGE_SIDE, IMAGE_SIDE]),
            labels: Tensor::from_slice(&labels),
        }
    }

    /// The images at `start..start+len` (no copy).
    pub fn narrow(&self, start: i64, len: i64) -> Split {
        Split { images: self.images.narrow(0, start, len), labels: self.labels.narrow(0, start, len) }
    }

    /// The first `n` images, or all of them when `n` is `None` or larger than the split.
    pub fn take(&self, n: Option<usize>) -> Split {
        let len = n.map_or(self.len(), |n| (n as i64).min(self.len()));
        self.narrow(0, len)
    }

    /// Gathers the images and labels at `index` (a 1-D `i64` tensor on the split's device).
    pub fn select(&self, index: &Tensor) -> (Tensor, Tensor) {
        (self.images.index_select(0, index), self.labels.index_select(0, index))
    }

    pub fn to_device(&self, device: Device) -> Split {
        Split { images: self.images.to_device(device), labels: self.labels.to_device(device) }
    }
}

/// The whole data set: 50,000 training and 10,000 test images, with the class names.
#[derive(Debug)]
pub struct Cifar10 {
    pub train: Split,
    pub test: Split,
    pub classes: Vec<String>,
}

/// Parses one binary batch file's bytes; `path` only names the file in errors.
/// Returns the pixel bytes (N×3072) and the labels.
pub fn parse_batch(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<i64>)> {
    let expected = RECORDS_PER_FILE * RECORD_BYTES;
    if bytes.len() != expected {
        let what = if bytes.len() < expected { "truncated" } else { "too long" };
        return Err(Error::data(
            path,
            format!(
                "{} bytes, expected {expected} ({RECORDS_PER_FILE} records of {RECORD_BYTES} bytes): the file is {what} \
                 or not a CIFAR-10 binary batch; delete the data directory and run ./download_cifar.sh again",
                bytes.len()
            ),
        ));
    }
    let mut images = Vec::with_capacity(RECORDS_PER_FILE * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(RECORDS_PER_FILE);
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if i64::from(label) >= NUM_CLASSES {
            return Err(Error::data(
                path,
                format!("record {i} has label {label}, expected 0–9: the file is corrupt; download it again"),
            ));
        }
        labels.push(i64::from(label));
        images.extend_from_slice(&record[1..]);
    }
    Ok((images, labels))
}

/// Reads and validates the named batch files (each with a single read) into one split.
pub fn load_split(dir: &Path, files: &[&str]) -> Result<Split> {
    let mut images = Vec::with_capacity(files.len() * RECORDS_PER_FILE * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(files.len() * RECORDS_PER_FILE);
    for name in files {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::data(
                &path,
                "missing: the data directory is incomplete; run ./download_cifar.sh (or pass --data-dir)",
            ),
            _ => Error::io(&path, e),
        })?;
        let (im, lb) = parse_batch(&bytes, &path)?;
        images.extend_from_slice(&im);
        labels.extend_from_slice(&lb);
    }
    Ok(Split::from_records(images, labels))
}

/// Class names from `batches.meta.txt` (one per line), or the standard ones when absent.
pub fn load_classes(dir: &Path) -> Vec<String> {
    let names: Vec<String> = std::fs::read_to_string(dir.join("batches.meta.txt"))
        .map(|s| s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    if names.len() == NUM_CLASSES as usize {
        names
    } else {
        DEFAULT_CLASSES.iter().map(|s| s.to_string()).collect()
    }
}

/// Checks that `dir` exists, with a one-line hint on how to get the data if it does not.
pub fn check_data_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::data(
            dir,
            "no such data directory: run ./download_cifar.sh to fetch CIFAR-10, or point --data-dir \
             at an unpacked cifar-10-batches-bin/",
        ))
    }
}

impl Cifar10 {
    /// Loads all 60,000 records from `dir` (on the CPU).
    pub fn load(dir: &Path) -> Result<Self> {
        check_data_dir(dir)?;
        Ok(Cifar10 {
            train: load_split(dir, &TRAIN_FILES)?,
            test: load_split(dir, &[TEST_FILE])?,
            classes: load_classes(dir),
        })
    }
}

/// The data a run trains and evaluates on, after `--limit-*` and `--val-split`.
#[derive(Debug)]
pub struct RunData {
    pub train: Split,
    pub val: Option<Split>,
    pub test: Split,
}

impl RunData {
    /// Takes the first `limit_train` training images (all if `None`), then holds out the last
    /// `val_split` of them for validation (the paper's 45k/5k split uses 5,000).
    pub fn new(
        data: &Cifar10,
        limit_train: Option<usize>,
        limit_test: Option<usize>,
        val_split: usize,
    ) -> Result<Self> {
        let train = data.train.take(limit_train);
        let val_split = val_split as i64;
        if val_split >= train.len() {
            return Err(Error::Config(format!(
                "--val-split {val_split} leaves no training images out of {}: use a smaller split",
                train.len()
            )));
        }
        let (train, val) = if val_split > 0 {
            let keep = train.len() - val_split;
            (train.narrow(0, keep), Some(train.narrow(keep, val_split)))
        } else {
            (train, None)
        };
        Ok(RunData { train, val, test: data.test.take(limit_test) })
    }
}

/// A synthetic data set with the real one's shapes: each class has its own mean colour
/// plus noise, so a small network learns it in a few steps. For tests and demos.
pub fn synthetic(n_train: i64, n_test: i64, seed: i64) -> Cifar10 {
    tch::manual_seed(seed);
    let opts = (Kind::Float, Device::Cpu);
    let palette = Tensor::rand([NUM_CLASSES, 3, 1, 1], opts) * 200.0 + 20.0;
    let make = |n: i64| {
        let labels = Tensor::randint(NUM_CLASSES, [n], (Kind::Int64, Device::Cpu));
        let noise = Tensor::randn([n, 3, IMAGE_SIDE, IMAGE_SIDE], opts) * 25.0;
        let images = (palette.index_select(0, &labels) + noise).clamp(0.0, 255.0).to_kind(Kind::Uint8);
        Split { images, labels }
    };
    let train = make(n_train);
    let test = make(n_test);
    Cifar10 { train, test, classes: DEFAULT_CLASSES.iter().map(|s| s.to_string()).collect() }
}

/// Writes a split in the official binary layout (for tests and synthetic data directories).
pub fn write_batch_file(path: &Path, split: &Split) -> Result<()> {
    let n = split.len() as usize;
    let images = Vec::<u8>::try_from(split.images.contiguous().view(-1))?;
    let labels = Vec::<i64>::try_from(&split.labels)?;
    let mut out = Vec::with_capacity(n * RECORD_BYTES);
    for (i, label) in labels.iter().enumerate() {
        out.push(*label as u8);
        out.extend_from_slice(&images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]);
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

/// The default data directory, as `download_cifar.sh` lays it out.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("data/cifar-10-batches-bin")
}
