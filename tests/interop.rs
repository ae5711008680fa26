//! Checkpoint import rules, `eval` on the PyTorch reference checkpoints (when
//! `RESNET_CIFAR_REFERENCE_WEIGHTS` and `CIFAR10_DIR` are set) and `predict` on image files.

mod common;

use std::path::PathBuf;
use std::process::Command;

use resnet_cifar::checkpoint;
use resnet_cifar::model::{ResNet, ResNetConfig};
use resnet_cifar::normalize::Normalizer;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_resnet-cifar"))
}

fn model_tensors(depth: i64) -> (VarStore, Vec<(String, Tensor)>) {
    let vs = VarStore::new(Device::Cpu);
    let _ = ResNet::new(&vs.root(), ResNetConfig { depth, ..Default::default() }).unwrap();
    let t = vs.variables().into_iter().collect();
    (vs, t)
}

#[test]
fn accepts_dataparallel_prefix_and_num_batches_tracked() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, tensors) = model_tensors(8);
    tch::no_grad(|| {
        for (n, mut t) in src.variables() {
            // Any values, but a variance is never negative (such a file is refused as corrupt).
            let low = if n.ends_with("running_var") { 0.1 } else { -1.0 };
            let _ = t.uniform_(low, 1.0);
        }
    });
    let mut renamed: Vec<(String, Tensor)> =
        tensors.iter().map(|(n, t)| (format!("module.{n}"), t.shallow_clone())).collect();
    renamed.push(("module.bn1.num_batches_tracked".into(), Tensor::from(5i64)));
    let path = tmp.path().join("dp.safetensors");
    checkpoint::write(&path, &renamed, Default::default()).unwrap();
    let ckpt = checkpoint::read(&path).unwrap();
    assert_eq!(ckpt.model_config().unwrap().depth, 8, "depth inferred from the tensor names");
    let mut vs = VarStore::new(Device::Cpu);
    let model = ResNet::new(&vs.root(), ResNetConfig { depth: 8, ..Default::default() }).unwrap();
    ckpt.load_into(&mut vs).unwrap();
    let _ = model.forward_t(&Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu)), false);
    let theirs = src.variables();
    for (n, t) in vs.variables() {
        assert!(t.equal(&theirs[&n]), "{n} differs");
    }
}

#[test]
fn a_depth_56_file_given_as_depth_20_names_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, tensors) = model_tensors(56);
    let path = tmp.path().join("r56.safetensors");
    checkpoint::write(&path, &tensors, Default::default()).unwrap();
    let o = bin().args(["eval", "--depth", "20", "--normalize", "imagenet", "--weights"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("r56.safetensors") && err.contains("unexpected") && err.contains("layer1.3."), "{err}");
}

#[test]
fn a_corrupt_or_truncated_checkpoint_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, tensors) = model_tensors(8);
    let path = tmp.path().join("ok.safetensors");
    checkpoint::write(&path, &tensors, Default::default()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = tmp.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"\x80\x02}q\x00(X\x05\x00\x00\x00pickle").unwrap();
    for p in [truncated, garbage] {
        let err = checkpoint::read(&p).unwrap_err().to_string();
        assert!(err.contains(&*p.to_string_lossy()) && err.contains("not a valid safetensors file"), "{err}");
    }
}

fn reference(name: &str) -> Option<(PathBuf, PathBuf)> {
    let (Some(w), Some(d)) = (common::env_path("RESNET_CIFAR_REFERENCE_WEIGHTS"), common::env_path("CIFAR10_DIR"))
    else {
        return None;
    };
    Some((w.join(name), d))
}

#[test]
fn reference_resnet20_evaluates_on_the_test_set() {
    let Some((weights, data)) = reference("resnet20.safetensors") else {
        return;
    };
    let o = bin()
        .args(["eval", "--json", "--normalize", "imagenet", "--device", "cpu", "--weights"])
        .arg(&weights)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["depth"], 20);
    assert_eq!(v["images"], 10_000);
    let err = v["top1_error"].as_f64().unwrap();
    // Published 8.27 % on the official test set; the JPEG-75 copy costs about ten points.
    assert!(err > 5.0 && err < 25.0, "error {err}");
    let confusion: Vec<Vec<i64>> = serde_json::from_value(v["confusion"].clone()).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<i64>(), 10_000);
    assert_eq!(v["per_class_accuracy"].as_object().unwrap().len(), 10);
}

#[test]
fn predict_reads_images_of_any_size_and_reports_bad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (vs, _) = model_tensors(8);
    let ckpt = tmp.path().join("m.safetensors");
    let norm = Normalizer::imagenet();
    checkpoint::save(&ckpt, &vs, &ResNetConfig { depth: 8, ..Default::default() }, &norm, Default::default()).unwrap();
    let png = tmp.path().join("cat.png");
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 128])).save(&png).unwrap();
    let jpg = tmp.path().join("dog.jpg");
    image::RgbImage::from_fn(20, 20, |x, _| image::Rgb([200, x as u8 * 10, 0])).save(&jpg).unwrap();
    let bad = tmp.path().join("broken.png");
    std::fs::write(&bad, b"not an image").unwrap();
    let o = bin()
        .args(["predict", "--device", "cpu", "--top", "2", "--weights"])
        .arg(&ckpt)
        .args([&png, &bad, &jpg])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "one file could not be read");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("cat.png: ") && out.contains("dog.jpg: ") && out.contains('%'), "{out}");
    assert!(err.contains("broken.png") && !err.contains("panicked"), "{err}");
}
