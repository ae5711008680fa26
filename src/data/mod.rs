//! CIFAR-10 and CIFAR-100 in the official binary layouts ([`dataset`] says which files and
//! records): each file is read with one read and validated (its size, every label byte),
//! and the class names come from the data set's names file. Errors name the file and say
//! how to get a good copy.
//!
//! Images stay as `u8` tensors (150 MB for a training set rather than 600 MB of floats);
//! batches are converted to floats and normalised one at a time (see `normalize.rs`).

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

pub mod dataset;

pub use dataset::{
    BatchFile, Dataset, DatasetChoice, DatasetName, Labels, Part, DEFAULT_CLASSES, IMAGE_BYTES, IMAGE_SIDE,
    NUM_CLASSES, RECORDS_PER_FILE, RECORD_BYTES, TEST_FILE, TRAIN_FILES,
};

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

    /// Builds a split from the pixel bytes (3072 an image) and the labels of its records.
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
        let len = n.map_or(self.len(), |n| i64::try_from(n).unwrap_or(i64::MAX).min(self.len()));
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

/// A whole data set: its training and test images, with the class names.
#[derive(Debug)]
pub struct Cifar {
    pub dataset: Dataset,
    pub train: Split,
    pub test: Split,
    pub classes: Vec<String>,
}

/// Parses the bytes of one binary file of `dataset` that should hold `records` records;
/// `path` only names the file in errors. Every label byte is checked, the class's and the
/// other one. Returns the pixel bytes (N×3072) and the class labels.
pub fn parse_file(dataset: Dataset, records: usize, bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<i64>)> {
    let record_bytes = dataset.record_bytes();
    let expected = records * record_bytes;
    if bytes.len() != expected {
        let what = if bytes.len() < expected { "truncated" } else { "too long" };
        return Err(Error::data(
            path,
            format!(
                "{} bytes, expected {expected} ({records} records of {record_bytes} bytes): the file is {what} \
                 or not a {} binary batch; delete the data directory and run {} again",
                bytes.len(),
                dataset.title(),
                dataset.download_command()
            ),
        ));
    }
    let label_bytes = dataset.label_bytes();
    let mut images = Vec::with_capacity(records * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(records);
    for (i, record) in bytes.chunks_exact(record_bytes).enumerate() {
        for (byte, label) in label_bytes.iter().zip(record) {
            if *label >= byte.classes {
                return Err(Error::data(
                    path,
                    format!(
                        "record {i} has {} {label}, expected 0–{}: the file is corrupt; download it again",
                        byte.what,
                        byte.classes - 1
                    ),
                ));
            }
        }
        labels.push(i64::from(record[dataset.label_index()]));
        images.extend_from_slice(&record[label_bytes.len()..]);
    }
    Ok((images, labels))
}

/// Parses one CIFAR-10 batch file (10,000 records); see [`parse_file`].
pub fn parse_batch(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<i64>)> {
    parse_file(Dataset::Cifar10, RECORDS_PER_FILE, bytes, path)
}

/// A data set and the directory that holds its files: what every reader of the data needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    pub dataset: Dataset,
    pub dir: PathBuf,
}

impl DataSource {
    /// `dataset` in `dir`, or in its default directory (`data/cifar-10-batches-bin`,
    /// `data/cifar-100-binary`) when `dir` is `None`.
    pub fn new(dataset: Dataset, dir: Option<PathBuf>) -> Self {
        DataSource { dataset, dir: dir.unwrap_or_else(|| dataset.default_dir()) }
    }

    /// Checks that the directory exists, with a one-line hint on how to get the data if it does not.
    pub fn check_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        Err(self.missing(&self.dir, true))
    }

    /// The error for `path`, the data directory (`whole_dir`) or a file in it, missing.
    fn missing(&self, path: &std::path::Path, whole_dir: bool) -> Error {
        let d = self.dataset;
        Error::MissingData {
            path: path.to_path_buf(),
            dataset: d.title(),
            download: d.download_command(),
            unpacked: d.dir_name(),
            whole_dir,
        }
    }

    /// Reads a file of the data set whole (a regular file only: a FIFO or a device is
    /// refused without a wait); a missing one says how to get the data.
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.dir.join(name);
        crate::files::read_regular(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => self.missing(&path, false),
            _ => Error::io(&path, e),
        })
    }

    /// Reads and validates the files of `part` (each with a single read) into one split;
    /// with `limit`, only the first files that hold that many images, and only those images.
    pub fn load_split(&self, part: Part, limit: Option<usize>) -> Result<Split> {
        self.check_dir()?;
        let wanted = limit.unwrap_or(usize::MAX);
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for file in self.dataset.files(part) {
            if labels.len() >= wanted {
                break;
            }
            let (im, lb) = parse_file(self.dataset, file.records, &self.read(file.name)?, &self.dir.join(file.name))?;
            images.extend_from_slice(&im);
            labels.extend_from_slice(&lb);
        }
        Ok(Split::from_records(images, labels).take(limit))
    }

    /// The class names, one per line of the data set's names file ([`parse_names`]).
    /// CIFAR-10's `batches.meta.txt` may be absent (the standard names are used); a present
    /// one, like CIFAR-100's files, must hold exactly the data set's class count.
    pub fn classes(&self) -> Result<Vec<String>> {
        let d = self.dataset;
        let path = self.dir.join(d.names_file());
        if d == Dataset::Cifar10 && std::fs::symlink_metadata(&path).is_err() {
            return Ok(DEFAULT_CLASSES.iter().map(|s| s.to_string()).collect());
        }
        parse_names(d, &self.read(d.names_file())?, &path)
    }

    /// Loads the whole data set (on the CPU): every training and test record, and the names.
    pub fn load(&self) -> Result<Cifar> {
        self.check_dir()?;
        Ok(Cifar {
            dataset: self.dataset,
            train: self.load_split(Part::Train, None)?,
            test: self.load_split(Part::Test, None)?,
            classes: self.classes()?,
        })
    }
}

/// The longest class name accepted from a names file, in characters.
pub const MAX_CLASS_NAME: usize = 100;

/// Parses the bytes of the names file of `dataset` (`path` names it in errors): UTF-8
/// text, one name per non-empty line (trimmed), exactly the data set's class count, each
/// name at most [`MAX_CLASS_NAME`] characters without control characters.
pub fn parse_names(dataset: Dataset, bytes: &[u8], path: &Path) -> Result<Vec<String>> {
    let fix = format!("the file is corrupt; run {} again", dataset.download_command());
    let text = std::str::from_utf8(bytes).map_err(|_| {
        Error::data(path, format!("not a text file of class names: run {} again", dataset.download_command()))
    })?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() as i64 != dataset.num_classes() {
        return Err(Error::data(
            path,
            format!("{} class names, expected {} (one per line): {fix}", names.len(), dataset.num_classes()),
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if name.chars().count() > MAX_CLASS_NAME || name.chars().any(char::is_control) {
            return Err(Error::data(
                path,
                format!(
                    "class name {} is not a name (control characters, or longer than {MAX_CLASS_NAME} characters): \
                     {fix}",
                    i + 1
                ),
            ));
        }
    }
    Ok(names)
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
    pub fn new(data: &Cifar, limit_train: Option<usize>, limit_test: Option<usize>, val_split: usize) -> Result<Self> {
        let train = data.train.take(limit_train);
        let val_split = i64::try_from(val_split).unwrap_or(i64::MAX);
        if val_split >= train.len() {
            return Err(Error::Setting(crate::error::BadSetting {
                path: "data.val_split",
                value: val_split.to_string(),
                want: format!("leaves no training images out of {}: use a smaller split", train.len()),
            }));
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

/// A synthetic CIFAR-10 with the real one's shapes: each class has its own mean colour
/// plus noise, so a small network learns it in a few steps. For tests and demos.
pub fn synthetic(n_train: i64, n_test: i64, seed: i64) -> Cifar {
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
    Cifar { dataset: Dataset::Cifar10, train, test, classes: DEFAULT_CLASSES.iter().map(|s| s.to_string()).collect() }
}

/// Writes a split in CIFAR-10's binary layout (for tests and synthetic data directories).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_past_i64_take_everything() {
        let split = Split::from_records(vec![0; 3 * IMAGE_BYTES], vec![1, 2, 3]);
        assert_eq!(split.take(Some(usize::MAX)).len(), 3);
        assert_eq!(split.take(Some(2)).len(), 2);
        let data =
            Cifar { dataset: Dataset::Cifar10, train: split.take(None), test: split.take(None), classes: vec![] };
        let e = RunData::new(&data, None, None, usize::MAX).unwrap_err().to_string();
        assert!(e.contains("leaves no training images out of 3"), "{e}");
    }

    #[test]
    fn names_files_are_checked() {
        let p = Path::new("batches.meta.txt");
        let ten = DEFAULT_CLASSES.join("\n");
        assert_eq!(parse_names(Dataset::Cifar10, ten.as_bytes(), p).unwrap().len(), 10);
        for (bytes, want) in [
            (b"\xff\xfe".to_vec(), "not a text file of class names"),
            (b"a\nb\n".to_vec(), "2 class names, expected 10"),
            (ten.replace("cat", "c\x07t").into_bytes(), "class name 4 is not a name"),
            (ten.replace("cat", &"x".repeat(MAX_CLASS_NAME + 1)).into_bytes(), "class name 4 is not a name"),
        ] {
            let e = parse_names(Dataset::Cifar10, &bytes, p).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("batches.meta.txt"), "{e}");
        }
    }
}
