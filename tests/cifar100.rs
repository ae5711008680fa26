//! CIFAR-100 in the official binary layout (`cifar-100-binary/`: `train.bin`, `test.bin`, a
//! coarse and a fine label byte per record, two names files), on synthetic files written
//! byte by byte (tests/common) — no copy of the real data set is on this project's machines.
//! Fine and coarse labels load; bad files are refused naming the file and record; the binary
//! trains, evaluates (top-5) and predicts end to end, with checkpoints and run directories
//! that record their data set; `download_cifar.sh --dataset cifar100` unpacks an archive.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use resnet_cifar::data::{parse_file, DataSource, Dataset, Labels, Part};
use tch::{Kind, Tensor};

const FINE: Dataset = Dataset::Cifar100 { labels: Labels::Fine };
const COARSE: Dataset = Dataset::Cifar100 { labels: Labels::Coarse };

fn source(dataset: Dataset, dir: &Path) -> DataSource {
    DataSource::new(dataset, Some(dir.to_path_buf()))
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resnet-cifar")).args(args).output().unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let o = bin(args);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{args:?}: {stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    stdout
}

/// Fails with one line on stderr, not a panic.
fn one_line_error(args: &[&str], needle: &str) {
    let o = bin(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && o.status.code() != Some(101), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{args:?}: `{needle}` not in {stderr}");
}

#[test]
fn fine_and_coarse_labels_load_from_the_official_layout() {
    let dir = common::shared_cifar100_dir();
    for (dataset, fine) in [(FINE, true), (COARSE, false)] {
        let data = source(dataset, dir).load().unwrap();
        assert_eq!(data.train.images.size(), [50_000, 3, 32, 32]);
        assert_eq!(data.test.images.size(), [10_000, 3, 32, 32]);
        assert_eq!((data.train.images.kind(), data.train.labels.kind()), (Kind::Uint8, Kind::Int64));
        for split in [&data.train, &data.test] {
            let labels = Vec::<i64>::try_from(&split.labels).unwrap();
            let first_pixels = Vec::<u8>::try_from(split.images.view([-1, 3072]).select(1, 0)).unwrap();
            for (i, (label, pixel)) in labels.iter().zip(first_pixels).enumerate() {
                let (c, f) = common::cifar100_labels(i);
                assert_eq!(*label, i64::from(if fine { f } else { c }), "record {i}");
                assert_eq!(pixel, common::cifar100_first_pixel(i), "record {i}: the image stays with its labels");
            }
        }
        let classes = dataset.num_classes();
        let counts = data.train.labels.bincount::<Tensor>(None, classes);
        assert_eq!(counts.size(), [classes]);
        assert!(counts.eq(50_000 / classes).all().int64_value(&[]) == 1, "{dataset}: balanced classes");
        assert_eq!(data.classes.len() as i64, classes);
        assert_eq!(data.classes[7], common::cifar100_name(fine, 7));
    }
}

#[test]
fn a_limit_reads_only_the_images_it_needs() {
    let split = source(FINE, common::shared_cifar100_dir()).load_split(Part::Train, Some(300)).unwrap();
    assert_eq!(split.images.size(), [300, 3, 32, 32]);
}

fn test_bin() -> Vec<u8> {
    std::fs::read(common::shared_cifar100_dir().join("test.bin")).unwrap()
}

#[test]
fn a_file_of_the_wrong_size_is_refused_naming_it() {
    let bytes = test_bin();
    let err = parse_file(FINE, 10_000, &bytes[..bytes.len() - 1], Path::new("d/test.bin")).unwrap_err().to_string();
    let want = "d/test.bin: 30739999 bytes, expected 30740000 (10000 records of 3074 bytes): the file is truncated or \
                not a CIFAR-100 binary batch; delete the data directory and run ./download_cifar.sh --dataset \
                cifar100 again";
    assert_eq!(err, want);
    // A CIFAR-10 batch (10,000 records of 3,073 bytes) is not a CIFAR-100 file.
    let err = parse_file(FINE, 10_000, &vec![0; 10_000 * 3073], Path::new("test.bin")).unwrap_err().to_string();
    assert!(err.contains("30730000 bytes, expected 30740000"), "{err}");
}

#[test]
fn both_label_bytes_are_checked_whichever_labels_are_used() {
    let mut bytes = test_bin();
    bytes[7 * 3074 + 1] = 100;
    for dataset in [FINE, COARSE] {
        let err = parse_file(dataset, 10_000, &bytes, Path::new("t/test.bin")).unwrap_err().to_string();
        assert!(
            err.starts_with("t/test.bin: record 7 has fine label 100, expected 0–99: the file is corrupt"),
            "{err}"
        );
    }
    let mut bytes = test_bin();
    bytes[42 * 3074] = 20;
    for dataset in [FINE, COARSE] {
        let err = parse_file(dataset, 10_000, &bytes, Path::new("test.bin")).unwrap_err().to_string();
        assert!(err.contains("record 42 has coarse label 20, expected 0–19"), "{err}");
    }
    bytes[42 * 3074] = 19;
    let (_, labels) = parse_file(COARSE, 10_000, &bytes, Path::new("test.bin")).unwrap();
    assert_eq!(labels[42], 19, "the last coarse class is a class");
}

#[test]
fn missing_and_garbled_files_say_what_to_do() {
    let err = source(FINE, Path::new("/nonexistent/c100")).load().unwrap_err();
    let typed = matches!(err, resnet_cifar::Error::MissingData { unpacked: "cifar-100-binary", whole_dir: true, .. });
    assert!(typed, "{err:?}");
    let err = err.to_string();
    assert!(err.contains("run ./download_cifar.sh --dataset cifar100 to fetch CIFAR-100"), "{err}");
    // The binary adds the flag that names another directory.
    let args = ["train", "--dataset", "cifar100", "--data-dir", "/nonexistent/c100", "--device", "cpu"];
    one_line_error(&args, "to fetch CIFAR-100, or point --data-dir at an unpacked cifar-100-binary/");
    let tmp = tempfile::tempdir().unwrap();
    common::link_cifar100(tmp.path());
    let names = tmp.path().join("fine_label_names.txt");
    let cases: [(&[u8], &str); 3] = [
        (b"apple\nbaby\n\n", "fine_label_names.txt: 2 class names, expected 100 (one per line): the file is corrupt"),
        (b"\xff\xfe\x00binary", "fine_label_names.txt: not a text file of class names"),
        (b"", "0 class names, expected 100"),
    ];
    for (bytes, want) in cases {
        common::rewrite(&names, bytes);
        let err = source(FINE, tmp.path()).load().unwrap_err().to_string();
        assert!(err.contains(want) && err.contains("--dataset cifar100 again"), "{err}");
    }
    // The coarse names are another file: the fine one does not matter for them.
    assert_eq!(source(COARSE, tmp.path()).classes().unwrap().len(), 20);
    std::fs::remove_file(&names).unwrap();
    let err = source(FINE, tmp.path()).classes().unwrap_err().to_string();
    assert!(err.contains("fine_label_names.txt: missing: the data directory is incomplete; run ./download_cifar.sh --dataset cifar100"), "{err}");
    std::fs::remove_file(tmp.path().join("train.bin")).unwrap();
    let err = source(COARSE, tmp.path()).load().unwrap_err().to_string();
    assert!(err.contains("train.bin: missing"), "{err}");
}

/// Trains a depth-8 network for one epoch on 256 images of the synthetic CIFAR-100 in
/// `dir/data`, into `dir/run`; returns `train`'s output.
fn train(dir: &Path, extra: &[&str]) -> String {
    common::link_cifar100(&dir.join("data"));
    let (data, run) = (dir.join("data"), dir.join("run"));
    let mut args = vec!["train", "--dataset", "cifar100", "--depth", "8", "--epochs", "1", "--batch-size", "64"];
    args.extend(["--limit-train", "256", "--limit-test", "200", "--device", "cpu", "--threads", "2"]);
    args.extend(["--data-dir", data.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    args.extend(extra);
    stdout_of(&args)
}

fn png(dir: &Path) -> String {
    let path = dir.join("x.png");
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90])).save(&path).unwrap();
    path.display().to_string()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap()
}

#[test]
fn fine_labels_end_to_end_train_eval_top5_and_predict_a_fine_class() {
    let tmp = tempfile::tempdir().unwrap();
    let out = train(tmp.path(), &[]);
    assert!(out.contains("loaded CIFAR-100 (fine labels) from") && out.contains("50000 train + 10000 test"), "{out}");
    let run = tmp.path().join("run");
    let config = json(&std::fs::read_to_string(run.join("config.json")).unwrap());
    assert_eq!(
        (&config["data"]["dataset"], &config["data"]["labels"], &config["model"]["num_classes"]),
        (&"cifar100".into(), &"fine".into(), &100.into())
    );
    // `--resume` trains on the run's own data set.
    assert_eq!(resnet_cifar::train::config::config_from_run(&run).unwrap().data.dataset, FINE);
    for name in ["best.safetensors", "last.safetensors"] {
        let ckpt = resnet_cifar::checkpoint::read(&run.join(name)).unwrap();
        assert_eq!(ckpt.dataset().unwrap(), Some(FINE));
        assert_eq!(ckpt.metadata["num_classes"], "100");
        assert_eq!(ckpt.classes().unwrap().unwrap()[99], "fine_class_99");
    }

    // eval needs no --dataset: the checkpoint records it.
    let best = run.join("best.safetensors").display().to_string();
    let data = tmp.path().join("data").display().to_string();
    let eval = ["eval", "--weights", &best, "--data-dir", &data, "--device", "cpu", "--limit-test", "200"];
    let v = json(&stdout_of(&[&eval[..], &["--json"]].concat()));
    assert_eq!((&v["dataset"], &v["labels"], &v["images"]), (&"cifar100".into(), &"fine".into(), &200.into()));
    assert_eq!(v["classes"].as_array().unwrap().len(), 100);
    assert_eq!(v["confusion"].as_array().unwrap().len(), 100);
    let (top1, top5) = (v["top1_error"].as_f64().unwrap(), v["top5_error"].as_f64().unwrap());
    assert!((0.0..=top1).contains(&top5) && top1 <= 100.0, "top-1 {top1}, top-5 {top5}");
    assert_eq!(v["per_class_top5_accuracy"].as_object().unwrap().len(), 100);
    let text = stdout_of(&eval);
    assert!(text.contains("200 images of CIFAR-100 (fine labels)"), "{text}");
    assert!(
        text.contains(&format!("top-5 error {top5:.2}%")) && text.contains("per-class accuracy (top-1, top-5):"),
        "{text}"
    );
    assert!(
        text.contains("  fine_class_42 ") && text.contains("confusion matrix: 100×100, in the JSON output"),
        "{text}"
    );
    one_line_error(
        &[&eval[..], &["--dataset", "cifar10"]].concat(),
        "trained on CIFAR-100 (fine labels), not as --dataset cifar10 asks",
    );
    one_line_error(&[&eval[..], &["--labels", "coarse"]].concat(), "not as --labels coarse asks");

    // predict names a fine class, from the names in the checkpoint: no data directory needed.
    let image = png(tmp.path());
    let p = stdout_of(&["predict", "--weights", &best, "--device", "cpu", "--top", "2", &image]);
    let line = p.lines().next().unwrap();
    assert!(line.starts_with(&format!("{image}: fine_class_")) && line.matches("fine_class_").count() == 2, "{p}");
}

#[test]
fn coarse_labels_give_a_20_way_network() {
    let tmp = tempfile::tempdir().unwrap();
    let out = train(tmp.path(), &["--labels", "coarse"]);
    assert!(out.contains("loaded CIFAR-100 (coarse labels)"), "{out}");
    let run = tmp.path().join("run");
    let config = json(&std::fs::read_to_string(run.join("config.json")).unwrap());
    assert_eq!((&config["data"]["labels"], &config["model"]["num_classes"]), (&"coarse".into(), &20.into()));
    let best = run.join("best.safetensors");
    let ckpt = resnet_cifar::checkpoint::read(&best).unwrap();
    assert_eq!(ckpt.tensors["linear.weight"].size(), [20, 64]);
    assert_eq!(ckpt.dataset().unwrap(), Some(COARSE));
    let (best, data) = (best.display().to_string(), tmp.path().join("data").display().to_string());
    let eval = ["eval", "--weights", &best, "--data-dir", &data, "--device", "cpu", "--limit-test", "100"];
    let v = json(&stdout_of(&[&eval[..], &["--json"]].concat()));
    assert_eq!(v["classes"].as_array().unwrap().len(), 20);
    assert_eq!(v["classes"][19], "coarse_class_19");
    let text = stdout_of(&eval);
    assert!(text.contains("top-5 error") && text.contains("confusion matrix (rows: true class"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("coarse_class_")).count(), 20, "{text}");
    let image = png(tmp.path());
    let p = stdout_of(&["predict", "--weights", &best, "--device", "cpu", &image]);
    assert!(p.contains(": coarse_class_"), "{p}");
}

/// grad-flow, responses, landscape (its shards too) and bench read CIFAR-100: a checkpoint's
/// data set from its metadata, fresh networks' from `--dataset`.
#[test]
fn every_command_that_reads_data_takes_cifar100() {
    let tmp = tempfile::tempdir().unwrap();
    train(tmp.path(), &["--labels", "coarse"]);
    let best = tmp.path().join("run/best.safetensors").display().to_string();
    let data = tmp.path().join("data").display().to_string();
    let out = |name: &str| tmp.path().join(name).display().to_string();
    let common = ["--device", "cpu", "--data-dir", &data];
    let flow = ["grad-flow", "--depth", "8", "--batches", "1", "--batch-size", "16"];
    let s = stdout_of(
        &[&flow[..], &common, &["--dataset", "cifar100", "--labels", "coarse", "-o", &out("f.csv")]].concat(),
    );
    assert!(s.contains("resnet-8: ‖∂L/∂x‖"), "{s}");
    stdout_of(&[&flow[..], &common, &["--weights", &best, "-o", &out("w.csv")]].concat());
    stdout_of(
        &[&["responses", "--weights", &best, "--limit-test", "50"][..], &common, &["-o", &out("r.csv")]].concat(),
    );
    let landscape = ["landscape", "--weights", &best, "--dims", "1", "--grid", "3", "--images", "64", "--quiet"];
    let one = stdout_of(&[&landscape[..], &common, &["-o", &out("l1.csv")]].concat());
    assert!(one.contains("swept 3 points"), "{one}");
    stdout_of(&[&landscape[..], &common, &["--jobs", "2", "-o", &out("l2.csv")]].concat());
    let table = |n: &str| std::fs::read_to_string(tmp.path().join(n)).unwrap();
    assert_eq!(table("l1.csv"), table("l2.csv"), "the shards read the same data set");
    let bench = ["bench", "--dataset", "cifar100", "--mode", "eval", "--depth", "8", "--iters", "1", "--warmup", "0"];
    let v = json(&stdout_of(&[&bench[..], &common].concat()));
    assert_eq!(v["images"], 10_000);
    let bench = ["bench", "--dataset", "cifar100", "--num-classes", "10", "--depth", "8"];
    one_line_error(&[&bench[..], &common].concat(), "--num-classes 10: does not fit CIFAR-100 (fine labels)");
    one_line_error(
        &[&flow[..], &common, &["--weights", &best, "--dataset", "cifar10", "-o", &out("x.csv")]].concat(),
        "not as --dataset cifar10 asks",
    );
}

#[test]
fn conflicting_flags_are_refused_with_one_line() {
    let data = common::shared_cifar100_dir().display().to_string();
    let train = ["train", "--dataset", "cifar100", "--data-dir", &data, "--device", "cpu"];
    one_line_error(
        &[&train[..], &["--num-classes", "10"]].concat(),
        "--num-classes 10: does not fit CIFAR-100 (fine labels), which has 100 classes",
    );
    one_line_error(&[&train[..], &["--labels", "coarse", "--num-classes", "100"]].concat(), "which has 20 classes");
    one_line_error(
        &["train", "--dataset", "cifar10", "--labels", "fine"],
        "--labels fine: CIFAR-100's classes (fine or coarse), not CIFAR-10's; add --dataset cifar100, or leave --labels out",
    );
    one_line_error(&["train", "--dataset", "cifar1000"], "cifar1000");
    one_line_error(&["train", "--dataset", "cifar100", "--data-dir", "/nonexistent"], "--dataset cifar100 to fetch");
}

fn md5(path: &Path) -> String {
    let o = Command::new("md5sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_string()
}

/// `download_cifar.sh --dataset cifar100` on a local archive (the official one cannot be
/// reached from here): unpacked only when a checksum given with `--md5` matches.
#[test]
fn the_download_script_unpacks_a_cifar100_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let content = tmp.path().join("src/cifar-100-binary");
    std::fs::create_dir_all(&content).unwrap();
    for (name, bytes) in
        [("train.bin", "t"), ("test.bin", "e"), ("fine_label_names.txt", "f"), ("coarse_label_names.txt", "c")]
    {
        std::fs::write(content.join(name), bytes).unwrap();
    }
    let archive = tmp.path().join("c100.tar.gz");
    let mut tar = Command::new("tar");
    tar.arg("-czf").arg(&archive).arg("-C").arg(tmp.path().join("src")).arg("cifar-100-binary");
    assert!(tar.status().unwrap().success());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("download_cifar.sh");
    let run = |args: &[&str], dest: &str| {
        let dest = tmp.path().join(dest);
        let mut cmd = Command::new(&script);
        cmd.args(["--dataset", "cifar100", "--dest"]).arg(&dest).args(args);
        (cmd.env_remove("CIFAR100_ARCHIVE").output().unwrap(), dest.join("cifar-100-binary"))
    };
    let a = archive.to_str().unwrap();
    let (o, target) = run(&["--archive", a, "--md5", "0123456789abcdef0123456789abcdef"], "bad");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.lines().count() == 1, "{stderr}");
    assert!(stderr.contains(&format!("is {}, expected 0123456789abcdef0123456789abcdef", md5(&archive))), "{stderr}");
    assert!(!target.exists(), "nothing unpacked from an archive with the wrong checksum");

    let (o, target) = run(&["--archive", a, "--md5", &md5(&archive)], "good");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && stdout.contains("MD5 ok") && stdout.contains("CIFAR-100 unpacked"), "{stdout}");
    assert_eq!(std::fs::read_to_string(target.join("fine_label_names.txt")).unwrap(), "f");
    let (o, _) = run(&[], "good");
    assert!(String::from_utf8_lossy(&o.stdout).contains("CIFAR-100 already in"), "nothing to do the second time");

    // CIFAR100_ARCHIVE as CIFAR10_ARCHIVE: a local archive without --md5 is unpacked as it is.
    let mut cmd = Command::new(&script);
    cmd.args(["--dataset", "cifar100", "--dest"]).arg(tmp.path().join("env")).env("CIFAR100_ARCHIVE", &archive);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(tmp.path().join("env/cifar-100-binary/train.bin").is_file());
    // The CIFAR-10 default is untouched: this archive holds no CIFAR-10.
    let o = Command::new(&script).args(["--archive", a, "--dest"]).arg(tmp.path().join("c10")).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("the archive holds no cifar-10-batches-bin/"));
    let o = Command::new(&script).args(["--dataset", "imagenet"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("use --dataset cifar10 or"));
}
