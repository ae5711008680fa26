//! Property tests (proptest) for the binary loader and the augmentation, and bounded
//! mutation fuzzing of the two loaders that read untrusted files: CIFAR-10 batches and
//! safetensors checkpoints. Neither may panic on any input; each either loads or gives an
//! error naming the file. The mutations here are seeded, so every run is reproducible;
//! coverage-guided fuzzing of every reader of untrusted files, on the stable toolchain, is
//! `make fuzz` (`fuzz/`), and the inputs it found failing are `tests/fuzz_regressions.rs`.

use std::path::Path;

use proptest::prelude::*;
use resnet_cifar::augment::{crop_flip, PAD};
use resnet_cifar::checkpoint;
use resnet_cifar::data::{parse_batch, RECORDS_PER_FILE, RECORD_BYTES};
use resnet_cifar::model::{ResNet, ResNetConfig};
use resnet_cifar::normalize::Normalizer;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const FILE_BYTES: usize = RECORDS_PER_FILE * RECORD_BYTES;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_wrong_length_is_rejected_with_the_file_named(len in 0usize..200_000, extra in prop::bool::ANY) {
        let len = if extra { FILE_BYTES + 1 + len } else { len };
        let bytes = vec![3u8; len];
        let err = parse_batch(&bytes, Path::new("some/batch.bin")).unwrap_err().to_string();
        prop_assert!(err.contains("some/batch.bin") && err.contains(&len.to_string()));
    }

    #[test]
    fn labels_are_accepted_iff_all_below_ten(bad in prop::collection::vec((0usize..RECORDS_PER_FILE, 0u8..=255), 0..4)) {
        let mut bytes = vec![0u8; FILE_BYTES];
        for (i, r) in bytes.chunks_exact_mut(RECORD_BYTES).enumerate() {
            r[0] = (i % 10) as u8;
            r[1] = (i % 251) as u8;
        }
        for &(rec, label) in &bad {
            bytes[rec * RECORD_BYTES] = label;
        }
        let first_bad = (0..RECORDS_PER_FILE).find(|&i| bytes[i * RECORD_BYTES] >= 10);
        match (parse_batch(&bytes, Path::new("b.bin")), first_bad) {
            (Ok((images, labels)), None) => {
                prop_assert_eq!(labels.len(), RECORDS_PER_FILE);
                for &(rec, _) in &bad {
                    prop_assert_eq!(labels[rec], i64::from(bytes[rec * RECORD_BYTES]));
                    prop_assert_eq!(images[rec * 3072], (rec % 251) as u8, "image stays with its label");
                }
            }
            (Err(e), Some(i)) => {
                let needle = format!("record {} ", i);
                prop_assert!(e.to_string().contains(&needle));
            }
            (r, f) => prop_assert!(false, "result {:?} but first bad record {:?}", r.map(|_| ()), f),
        }
    }

    #[test]
    fn crop_flip_matches_the_per_image_definition(
        offsets in prop::collection::vec((0i64..=2 * PAD, 0i64..=2 * PAD, prop::bool::ANY), 1..12),
        seed in 0i64..1000,
    ) {
        tch::manual_seed(seed);
        let b = offsets.len() as i64;
        let x = Tensor::randn([b, 3, 32, 32], (Kind::Float, Device::Cpu));
        let dy: Vec<i64> = offsets.iter().map(|o| o.0).collect();
        let dx: Vec<i64> = offsets.iter().map(|o| o.1).collect();
        let fl: Vec<bool> = offsets.iter().map(|o| o.2).collect();
        let got = crop_flip(&x, &Tensor::from_slice(&dy), &Tensor::from_slice(&dx), &Tensor::from_slice(&fl));
        let padded = x.constant_pad_nd([PAD, PAD, PAD, PAD]);
        for i in 0..b {
            let u = i as usize;
            let mut want = padded.get(i).narrow(1, dy[u], 32).narrow(2, dx[u], 32);
            if fl[u] {
                want = want.flip([2]);
            }
            prop_assert!(got.get(i).equal(&want), "image {} (dy {}, dx {}, flip {})", i, dy[u], dx[u], fl[u]);
        }
    }
}

/// A small deterministic generator (SplitMix64) for the mutation fuzzers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Applies 1–4 random mutations: byte flips, truncation, insertion, splicing in a header.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                // Flips concentrated in the first bytes: the length prefix and JSON header.
                let i = rng.below(b.len().min(400));
                b[i] = rng.next() as u8;
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 => {
                let i = rng.below(b.len() + 1);
                let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                b.splice(i..i, junk);
            }
            _ => {
                let n = rng.below(b.len() + 1) as u64;
                let k = 8.min(b.len());
                b[..k].copy_from_slice(&n.to_le_bytes()[..k]);
            }
        }
    }
    b
}

#[test]
fn fuzz_checkpoint_loader_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let valid = tmp.path().join("valid.safetensors");
    let cfg = ResNetConfig { depth: 8, ..Default::default() };
    let vs = VarStore::new(Device::Cpu);
    let _ = ResNet::new(&vs.root(), cfg).unwrap();
    checkpoint::save(&valid, &vs, &cfg, &Normalizer::imagenet(), Default::default()).unwrap();
    let seed = std::fs::read(&valid).unwrap();
    let path = tmp.path().join("mutant.safetensors");
    let mut rng = Rng(20261129);
    let (mut loaded, mut rejected) = (0, 0);
    let executions = 3000;
    for _ in 0..executions {
        std::fs::write(&path, mutate(&mut rng, &seed)).unwrap();
        match checkpoint::read(&path) {
            Ok(ckpt) => {
                let mut target = VarStore::new(Device::Cpu);
                let _ = ResNet::new(&target.root(), cfg).unwrap();
                match ckpt.load_into(&mut target) {
                    Ok(()) => loaded += 1,
                    Err(e) => {
                        assert!(e.to_string().contains("mutant.safetensors"), "{e}");
                        rejected += 1;
                    }
                }
                let _ = ckpt.model_config();
                let _ = ckpt.normalizer();
            }
            Err(e) => {
                assert!(e.to_string().contains("mutant.safetensors"), "{e}");
                rejected += 1;
            }
        }
    }
    assert!(rejected > executions / 2, "the mutations mostly break the file ({rejected} rejected)");
    eprintln!("checkpoint fuzzing: {executions} executions, {loaded} loaded, {rejected} rejected, no panic");
}

#[test]
fn fuzz_batch_loader_never_panics() {
    let mut valid = vec![0u8; FILE_BYTES];
    for (i, r) in valid.chunks_exact_mut(RECORD_BYTES).enumerate() {
        r[0] = (i % 10) as u8;
    }
    let mut rng = Rng(7);
    let executions = 300;
    let mut ok = 0;
    for _ in 0..executions {
        let m = mutate(&mut rng, &valid);
        match parse_batch(&m, Path::new("fuzz.bin")) {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.to_string().contains("fuzz.bin")),
        }
    }
    eprintln!("batch-file fuzzing: {executions} executions, {ok} accepted, no panic");
}
