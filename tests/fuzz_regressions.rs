//! Every input that `make fuzz` (fuzz/) found crashing, hanging or exhausting memory, kept
//! as a test of the reader that failed on it: each must now be refused, quickly, with an
//! error naming the file.

use std::path::Path;
use std::time::{Duration, Instant};

use resnet_cifar::inference::{decode_image, PREDICT_LIMITS};

mod common;

/// Target `image`, a timeout: a 644-byte JPEG whose header claims 11784×8198 pixels (97
/// megapixels, 290 MB) took over 10 s and 700 MB to decode within the old 512 MiB limit.
#[test]
fn a_small_jpeg_claiming_97_megapixels_is_refused_from_its_header() {
    let started = Instant::now();
    let e = decode_image(common::HUGE_JPEG, Path::new("huge.jpg"), PREDICT_LIMITS).unwrap_err().to_string();
    assert!(e.starts_with("huge.jpg: 11784×8198 pixels is more than predict decodes"), "{e}");
    assert!(e.contains("downscale the image"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "refused from the header, not after decoding");
}
