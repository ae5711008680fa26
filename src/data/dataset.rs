//! Which data set: CIFAR-10, or CIFAR-100 with its fine (100) or coarse (20) classes, and
//! everything that follows from the choice: the files of the official binary layout and
//! their records, the class count, the file of class names, the default directory and how
//! to download it (Krizhevsky 2009, <https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! - CIFAR-10, `cifar-10-batches-bin/`: `data_batch_{1..5}.bin` and `test_batch.bin` of
//!   10,000 records; a record is one label byte and 3,072 pixel bytes; `batches.meta.txt`.
//! - CIFAR-100, `cifar-100-binary/`: `train.bin` (50,000 records) and `test.bin` (10,000);
//!   a record is a coarse label byte, a fine label byte and 3,072 pixel bytes;
//!   `fine_label_names.txt` and `coarse_label_names.txt`.

use std::path::PathBuf;

use crate::error::{Error, Result};

pub const IMAGE_SIDE: i64 = 32;
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// A CIFAR-10 record: the label byte and the pixels.
pub const RECORD_BYTES: usize = IMAGE_BYTES + 1;
/// Records in each CIFAR-10 file.
pub const RECORDS_PER_FILE: usize = 10_000;
/// CIFAR-10's classes.
pub const NUM_CLASSES: i64 = 10;
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
pub const TEST_FILE: &str = "test_batch.bin";
/// CIFAR-10's class names, used when `batches.meta.txt` is absent.
pub const DEFAULT_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

crate::text::value_enum! {
    /// The data set as `--dataset` names it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum DatasetName: "data set" {
        #[default]
        Cifar10 => "cifar10",
        Cifar100 => "cifar100",
    }
}

crate::text::value_enum! {
    /// CIFAR-100's two labellings of the same images.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum Labels: "labels" {
        /// 100 classes.
        #[default]
        Fine => "fine",
        /// 20 superclasses.
        Coarse => "coarse",
    }
}

/// A data set with the classes it is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dataset {
    #[default]
    Cifar10,
    Cifar100 {
        labels: Labels,
    },
}

/// One binary file of a data set and the records it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFile {
    pub name: &'static str,
    pub records: usize,
}

/// One label byte at the start of a record: what errors call it, and its class count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelByte {
    pub what: &'static str,
    pub classes: u8,
}

/// The training or the test part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Train,
    Test,
}

const fn cifar10_file(name: &'static str) -> BatchFile {
    BatchFile { name, records: RECORDS_PER_FILE }
}

const CIFAR10_TRAIN: [BatchFile; 5] = [
    cifar10_file(TRAIN_FILES[0]),
    cifar10_file(TRAIN_FILES[1]),
    cifar10_file(TRAIN_FILES[2]),
    cifar10_file(TRAIN_FILES[3]),
    cifar10_file(TRAIN_FILES[4]),
];
const CIFAR10_TEST: [BatchFile; 1] = [cifar10_file(TEST_FILE)];
const CIFAR100_TRAIN: [BatchFile; 1] = [BatchFile { name: "train.bin", records: 50_000 }];
const CIFAR100_TEST: [BatchFile; 1] = [BatchFile { name: "test.bin", records: 10_000 }];
const CIFAR10_LABELS: [LabelByte; 1] = [LabelByte { what: "label", classes: 10 }];
const CIFAR100_LABELS: [LabelByte; 2] =
    [LabelByte { what: "coarse label", classes: 20 }, LabelByte { what: "fine label", classes: 100 }];

impl Dataset {
    /// The data set `name` with `labels` (CIFAR-100's fine ones unless given); labels with
    /// CIFAR-10 are refused.
    pub fn new(name: DatasetName, labels: Option<Labels>) -> Result<Self> {
        match (name, labels) {
            (DatasetName::Cifar10, None) => Ok(Dataset::Cifar10),
            (DatasetName::Cifar10, Some(l)) => Err(Error::Setting(crate::error::BadSetting {
                path: "data.labels",
                value: l.to_string(),
                want: "CIFAR-100's classes (fine or coarse), not CIFAR-10's".into(),
            })),
            (DatasetName::Cifar100, l) => Ok(Dataset::Cifar100 { labels: l.unwrap_or_default() }),
        }
    }

    pub fn name(self) -> DatasetName {
        match self {
            Dataset::Cifar10 => DatasetName::Cifar10,
            Dataset::Cifar100 { .. } => DatasetName::Cifar100,
        }
    }

    /// CIFAR-100's labelling; `None` for CIFAR-10.
    pub fn labels(self) -> Option<Labels> {
        match self {
            Dataset::Cifar10 => None,
            Dataset::Cifar100 { labels } => Some(labels),
        }
    }

    /// "CIFAR-10" or "CIFAR-100".
    pub fn title(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "CIFAR-10",
            Dataset::Cifar100 { .. } => "CIFAR-100",
        }
    }

    /// The files of `part`, in order.
    pub fn files(self, part: Part) -> &'static [BatchFile] {
        match (self, part) {
            (Dataset::Cifar10, Part::Train) => &CIFAR10_TRAIN,
            (Dataset::Cifar10, Part::Test) => &CIFAR10_TEST,
            (Dataset::Cifar100 { .. }, Part::Train) => &CIFAR100_TRAIN,
            (Dataset::Cifar100 { .. }, Part::Test) => &CIFAR100_TEST,
        }
    }

    /// The label bytes that open every record, in order.
    pub fn label_bytes(self) -> &'static [LabelByte] {
        match self {
            Dataset::Cifar10 => &CIFAR10_LABELS,
            Dataset::Cifar100 { .. } => &CIFAR100_LABELS,
        }
    }

    /// Which of [`Self::label_bytes`] is the class.
    pub fn label_index(self) -> usize {
        match self {
            Dataset::Cifar10 | Dataset::Cifar100 { labels: Labels::Coarse } => 0,
            Dataset::Cifar100 { labels: Labels::Fine } => 1,
        }
    }

    /// Bytes in one record: the label bytes, then the pixels.
    pub fn record_bytes(self) -> usize {
        self.label_bytes().len() + IMAGE_BYTES
    }

    pub fn num_classes(self) -> i64 {
        i64::from(self.label_bytes()[self.label_index()].classes)
    }

    /// The file with one class name per line.
    pub fn names_file(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "batches.meta.txt",
            Dataset::Cifar100 { labels: Labels::Fine } => "fine_label_names.txt",
            Dataset::Cifar100 { labels: Labels::Coarse } => "coarse_label_names.txt",
        }
    }

    /// The directory the official archive unpacks to.
    pub fn dir_name(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "cifar-10-batches-bin",
            Dataset::Cifar100 { .. } => "cifar-100-binary",
        }
    }

    /// Where `download_cifar.sh` puts the data.
    pub fn default_dir(self) -> PathBuf {
        PathBuf::from("data").join(self.dir_name())
    }

    /// The command that fetches the data.
    pub fn download_command(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "./download_cifar.sh",
            Dataset::Cifar100 { .. } => "./download_cifar.sh --dataset cifar100",
        }
    }

    /// A network trained on this data set has as many outputs as it has classes.
    pub fn check_classes(self, num_classes: i64) -> Result<()> {
        if num_classes == self.num_classes() {
            return Ok(());
        }
        Err(Error::Setting(crate::error::BadSetting {
            path: "model.num_classes",
            value: num_classes.to_string(),
            want: format!(
                "does not fit {self}, which has {} classes: leave it out (the data set decides it)",
                self.num_classes()
            ),
        }))
    }
}

/// "CIFAR-10", "CIFAR-100 (fine labels)", "CIFAR-100 (coarse labels)".
impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.labels() {
            None => f.write_str(self.title()),
            Some(l) => write!(f, "{} ({l} labels)", self.title()),
        }
    }
}

/// A data set as the flags ask for it: either part may be left to what a checkpoint
/// records, or to the default (CIFAR-10; CIFAR-100's fine labels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatasetChoice {
    pub name: Option<DatasetName>,
    pub labels: Option<Labels>,
}

impl From<Dataset> for DatasetChoice {
    fn from(d: Dataset) -> Self {
        DatasetChoice { name: Some(d.name()), labels: d.labels() }
    }
}

impl DatasetChoice {
    /// The data set asked for, with the defaults filled in.
    pub fn dataset(self) -> Result<Dataset> {
        Dataset::new(self.name.unwrap_or_default(), self.labels)
    }

    /// The data set that `recorded` names (the checkpoint's at `checkpoint`), which the
    /// choice may repeat but not contradict; without a record, the choice's.
    pub fn resolve(self, recorded: Option<Dataset>, checkpoint: &std::path::Path) -> Result<Dataset> {
        let Some(r) = recorded else {
            return self.dataset();
        };
        let agrees = self.name.is_none_or(|n| n == r.name()) && self.labels.is_none_or(|l| Some(l) == r.labels());
        if agrees {
            return Ok(r);
        }
        Err(Error::DatasetMismatch {
            path: checkpoint.to_path_buf(),
            recorded: r.to_string(),
            name: self.name.map(|n| n.to_string()),
            labels: self.labels.map(|l| l.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_data_set_has_its_layout() {
        let fine = Dataset::Cifar100 { labels: Labels::Fine };
        let coarse = Dataset::Cifar100 { labels: Labels::Coarse };
        let classes = [Dataset::Cifar10, fine, coarse].map(|d| (d.num_classes(), d.record_bytes(), d.label_index()));
        assert_eq!(classes, [(10, 3073, 0), (100, 3074, 1), (20, 3074, 0)]);
        let records = |d: Dataset, p| d.files(p).iter().map(|f| f.records).sum::<usize>();
        assert_eq!((records(fine, Part::Train), records(fine, Part::Test)), (50_000, 10_000));
        assert_eq!((records(Dataset::Cifar10, Part::Train), records(Dataset::Cifar10, Part::Test)), (50_000, 10_000));
        assert_eq!(Dataset::Cifar10.default_dir(), PathBuf::from("data/cifar-10-batches-bin"));
        assert_eq!(coarse.default_dir(), PathBuf::from("data/cifar-100-binary"));
        assert_eq!(
            (fine.to_string(), coarse.names_file()),
            ("CIFAR-100 (fine labels)".into(), "coarse_label_names.txt")
        );
    }

    #[test]
    fn labels_are_for_cifar100_only_and_fine_by_default() {
        assert_eq!(Dataset::new(DatasetName::Cifar100, None).unwrap(), Dataset::Cifar100 { labels: Labels::Fine });
        let e = Dataset::new(DatasetName::Cifar10, Some(Labels::Coarse)).unwrap_err().to_string();
        assert!(e.contains("`data.labels` is coarse: CIFAR-100's classes (fine or coarse), not CIFAR-10's"), "{e}");
        assert_eq!("CIFAR100".parse::<DatasetName>().unwrap(), DatasetName::Cifar100);
        let e = "imagenet".parse::<DatasetName>().unwrap_err().to_string();
        assert!(e.contains("use cifar10 or cifar100"), "{e}");
    }

    #[test]
    fn a_recorded_data_set_wins_and_a_contradiction_is_refused() {
        let coarse = Dataset::Cifar100 { labels: Labels::Coarse };
        let none = DatasetChoice::default();
        let at = std::path::Path::new("c.safetensors");
        assert_eq!(none.resolve(Some(coarse), at).unwrap(), coarse);
        assert_eq!(none.resolve(None, at).unwrap(), Dataset::Cifar10);
        let same = DatasetChoice { name: Some(DatasetName::Cifar100), labels: None };
        assert_eq!(same.resolve(Some(coarse), at).unwrap(), coarse);
        let other = DatasetChoice { name: None, labels: Some(Labels::Fine) };
        let e = other.resolve(Some(coarse), at).unwrap_err().to_string();
        assert!(e.contains("c.safetensors: trained on CIFAR-100 (coarse labels), not on the fine labels"), "{e}");
        let e = DatasetChoice::from(Dataset::Cifar10).resolve(Some(coarse), at).unwrap_err();
        let asked = (Some("cifar10"), None);
        assert!(
            matches!(&e, Error::DatasetMismatch { name, labels, .. } if (name.as_deref(), labels.as_deref()) == asked)
        );
    }
}
