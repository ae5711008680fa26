//! The binary loader's validation, the real data set (when `CIFAR10_DIR` is set) and the
//! paper's augmentation.

mod common;

use std::path::Path;

use resnet_cifar::augment::{crop_flip, random_crop_flip, PAD};
use resnet_cifar::data::{self, parse_batch, Cifar, DataSource, Dataset, RECORDS_PER_FILE, RECORD_BYTES};
use resnet_cifar::normalize::{Normalization, Normalizer};
use tch::{Device, Kind, Tensor};

/// CIFAR-10 from `dir`.
fn load(dir: &Path) -> resnet_cifar::Result<Cifar> {
    DataSource::new(Dataset::Cifar10, Some(dir.to_path_buf())).load()
}

fn valid_batch() -> Vec<u8> {
    let mut bytes = vec![0u8; RECORDS_PER_FILE * RECORD_BYTES];
    for (i, r) in bytes.chunks_exact_mut(RECORD_BYTES).enumerate() {
        r[0] = (i % 10) as u8;
        r[1] = i as u8;
    }
    bytes
}

#[test]
fn parses_a_valid_batch() {
    let (images, labels) = parse_batch(&valid_batch(), Path::new("x.bin")).unwrap();
    assert_eq!(labels.len(), RECORDS_PER_FILE);
    assert_eq!(images.len(), RECORDS_PER_FILE * 3072);
    assert_eq!(labels[13], 3);
    assert_eq!(images[13 * 3072], 13);
}

#[test]
fn rejects_a_truncated_file_naming_it() {
    let mut bytes = valid_batch();
    bytes.truncate(bytes.len() - 100);
    let err = parse_batch(&bytes, Path::new("dir/data_batch_3.bin")).unwrap_err().to_string();
    assert!(err.contains("dir/data_batch_3.bin") && err.contains("truncated"), "{err}");
}

#[test]
fn rejects_label_ten_naming_file_and_record() {
    let mut bytes = valid_batch();
    bytes[7 * RECORD_BYTES] = 10;
    let err = parse_batch(&bytes, Path::new("test_batch.bin")).unwrap_err().to_string();
    assert!(err.contains("test_batch.bin") && err.contains("record 7") && err.contains("label 10"), "{err}");
}

#[test]
fn missing_directory_and_file_say_how_to_get_the_data() {
    let err = load(Path::new("/nonexistent/cifar")).unwrap_err().to_string();
    assert!(err.contains("download_cifar.sh"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("data_batch_1.bin") && err.contains("missing"), "{err}");
}

#[test]
fn synthetic_files_round_trip_through_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    let synth = data::synthetic(10_000, 10_000, 1);
    for name in data::TRAIN_FILES.iter().chain([&data::TEST_FILE]) {
        data::write_batch_file(&dir.path().join(name), &synth.train).unwrap();
    }
    let loaded = load(dir.path()).unwrap();
    assert_eq!(loaded.train.len(), 50_000);
    assert!(loaded.test.images.equal(&synth.train.images));
    assert!(loaded.test.labels.equal(&synth.train.labels));
    assert_eq!(loaded.classes[0], "airplane");
}

#[test]
fn real_data_loads_all_60000_records() {
    let Some(dir) = common::env_path("CIFAR10_DIR") else {
        return;
    };
    let data = load(Path::new(&dir)).unwrap();
    assert_eq!(data.train.len() + data.test.len(), 60_000);
    assert_eq!(data.train.images.size(), [50_000, 3, 32, 32]);
    assert_eq!(data.train.images.kind(), Kind::Uint8);
    let train_counts = data.train.labels.bincount::<Tensor>(None, 10);
    let test_counts = data.test.labels.bincount::<Tensor>(None, 10);
    assert!(train_counts.eq(5000).all().int64_value(&[]) == 1, "5,000 training images per class");
    assert!(test_counts.eq(1000).all().int64_value(&[]) == 1, "1,000 test images per class");
    assert_eq!(data.classes.len(), 10);
    let mean = Normalizer::fit(Normalization::PixelMean, &data.train.images).mean;
    let m = mean.mean(Kind::Float).double_value(&[]);
    assert!(m > 0.3 && m < 0.6, "mean pixel {m}");
}

/// The straightforward per-image version of pad-4, crop and flip, to compare against.
fn naive(x: &Tensor, dy: &[i64], dx: &[i64], flip: &[bool]) -> Tensor {
    let padded = x.constant_pad_nd([PAD, PAD, PAD, PAD]);
    let crops: Vec<Tensor> = (0..x.size()[0])
        .map(|b| {
            let i = b as usize;
            let c = padded.get(b).narrow(1, dy[i], 32).narrow(2, dx[i], 32);
            if flip[i] {
                c.flip([2])
            } else {
                c
            }
        })
        .collect();
    Tensor::stack(&crops, 0)
}

#[test]
fn batched_crop_flip_equals_the_per_image_version() {
    tch::manual_seed(3);
    let x = Tensor::randn([16, 3, 32, 32], (Kind::Float, Device::Cpu));
    let dy: Vec<i64> = (0..16).map(|i| (i * 5) % 9).collect();
    let dx: Vec<i64> = (0..16).map(|i| (i * 7 + 2) % 9).collect();
    let flip: Vec<bool> = (0..16).map(|i| i % 3 == 0).collect();
    let got = crop_flip(&x, &Tensor::from_slice(&dy), &Tensor::from_slice(&dx), &Tensor::from_slice(&flip));
    assert!(got.equal(&naive(&x, &dy, &dx, &flip)));
}

#[test]
fn augmentation_keeps_each_image_in_its_place() {
    // Image b is the constant b+1: after augmentation every pixel is b+1 or padding (0).
    let b = 64;
    let x = (Tensor::arange(b, (Kind::Float, Device::Cpu)) + 1.0).view([b, 1, 1, 1]).expand([b, 3, 32, 32], true);
    let y = random_crop_flip(&x.contiguous());
    let max = y.amax([1i64, 2, 3].as_slice(), false);
    let min_nonzero = y.where_scalarother(&y.ne(0.0), 1e9).amin([1i64, 2, 3].as_slice(), false);
    let expected = Tensor::arange(b, (Kind::Float, Device::Cpu)) + 1.0;
    assert!(max.equal(&expected) && min_nonzero.equal(&expected));
    // At least 24 of 32 rows and columns are always image, never padding.
    let centre = y.narrow(2, 4, 24).narrow(3, 4, 24);
    assert!(centre.ne(0.0).all().int64_value(&[]) == 1);
}

#[test]
fn all_81_offsets_and_both_flips_occur() {
    tch::manual_seed(0);
    // One marked pixel at row 16, column 8 reveals each crop's offset and flip: it lands at
    // row 20-dy and column 12-dx (4..=12), or 19+dx (19..=27) when flipped.
    let n = 4000;
    let x = Tensor::zeros([n, 1, 32, 32], (Kind::Float, Device::Cpu));
    let _ = x.narrow(2, 16, 1).narrow(3, 8, 1).fill_(1.0);
    let y = random_crop_flip(&x);
    let pos = y.view([n, 32 * 32]).argmax(1, false);
    let rows = Vec::<i64>::try_from(&pos.divide_scalar_mode(32, "floor")).unwrap();
    let cols = Vec::<i64>::try_from(&pos.remainder(32)).unwrap();
    let mut seen = std::collections::HashSet::new();
    for (r, c) in rows.iter().zip(&cols) {
        seen.insert((*r, *c));
    }
    assert_eq!(seen.len(), 162, "every offset and flip appears");
}
