//! The hostile-input sweep of issue #15, one case per failure found and per class of input:
//! checkpoints whose tensors or metadata lie (shapes, dtypes, NaN, depths that could never
//! be built), special files where a regular file belongs, `--resume` of a run whose
//! config.json, training state or metrics.csv was damaged, flags that --resume would
//! ignore, outputs over a command's own inputs, and counts at their limits.

use std::collections::HashMap;
use std::path::Path;

use resnet_cifar::checkpoint;
use resnet_cifar::model::{ResNet, ResNetConfig};
use resnet_cifar::normalize::Normalizer;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{make_data, no_setup, save_model, trained_run, Case};

type Tensors = Vec<(String, Tensor)>;
type Metadata = HashMap<String, String>;

/// A depth-8 checkpoint at `d/m.safetensors` (imagenet normalisation), changed by `edit`.
fn edited(d: &Path, edit: fn(&mut Tensors, &mut Metadata)) {
    let vs = VarStore::new(Device::Cpu);
    let cfg = ResNetConfig { depth: 8, ..Default::default() };
    let _ = ResNet::new(&vs.root(), cfg).unwrap();
    let n = Normalizer::imagenet();
    let mut tensors = checkpoint::model_tensors(&vs, &n);
    let mut meta = checkpoint::metadata(&cfg, &n);
    edit(&mut tensors, &mut meta);
    checkpoint::write(&d.join("m.safetensors"), &tensors, meta).unwrap();
    make_data(&d.join("data"));
}

/// Replaces (or adds) tensor `name`.
fn set(tensors: &mut Tensors, name: &str, t: Tensor) {
    tensors.retain(|(n, _)| n != name);
    tensors.push((name.to_string(), t));
}

fn floats(shape: &[i64], value: f64) -> Tensor {
    Tensor::full(shape, value, (Kind::Float, Device::Cpu))
}

/// The finished tiny run of `d/run` with its `last.safetensors` changed by `edit`.
fn resumable_edited(d: &Path, edit: fn(&mut Tensors, &mut Metadata)) {
    trained_run(d);
    let path = d.join("run/last.safetensors");
    let ckpt = checkpoint::read(&path).unwrap();
    let mut tensors: Tensors = ckpt.tensors.into_iter().collect();
    let mut meta = ckpt.metadata;
    edit(&mut tensors, &mut meta);
    checkpoint::write(&path, &tensors, meta).unwrap();
}

/// The training state of `meta` with `field` set to the JSON `value`.
fn state_field(meta: &mut Metadata, field: &str, value: serde_json::Value) {
    let mut state: serde_json::Value = serde_json::from_str(&meta["train_state"]).unwrap();
    state[field] = value;
    meta.insert("train_state".into(), state.to_string());
}

/// The finished tiny run of `d/run` with `config.json` changed by `edit`.
fn config_edited(d: &Path, edit: fn(&mut serde_json::Value)) {
    trained_run(d);
    let path = d.join("run/config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// A FIFO at `path` (nobody ever writes to it: reading it would wait for ever).
fn fifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

pub fn cases() -> Vec<Case> {
    vec![
        // Checkpoints: normalisation statistics, in every command that reads them.
        Case {
            name: "normalization.mean of the wrong shape (eval)",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| edited(d, |t, _| set(t, checkpoint::NORM_MEAN, floats(&[2, 2], 0.5))),
            expect: "tensor normalization.mean has shape [2, 2], but imagenet statistics are [3, 1, 1]",
        },
        Case {
            name: "empty normalization.std (predict)",
            args: "predict --weights {D}/m.safetensors --device cpu {D}/x.png",
            setup: |d| edited(d, |t, _| set(t, checkpoint::NORM_STD, floats(&[0], 1.0))),
            expect: "tensor normalization.std has shape [0]",
        },
        Case {
            name: "normalization.std of zero (eval)",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| edited(d, |t, _| set(t, checkpoint::NORM_STD, floats(&[3, 1, 1], 0.0))),
            expect: "a standard deviation must be positive",
        },
        Case {
            name: "normalization.mean of the wrong shape (grad-flow)",
            args: "grad-flow --weights {D}/m.safetensors --data-dir {D}/data --device cpu --batches 1 -o {D}/g.csv",
            setup: |d| edited(d, |t, _| set(t, checkpoint::NORM_MEAN, floats(&[3, 32, 32], 0.5))),
            expect: "tensor normalization.mean has shape [3, 32, 32]",
        },
        Case {
            name: "normalization.std of the wrong shape (responses)",
            args: "responses --weights {D}/m.safetensors --data-dir {D}/data --device cpu --limit-test 10 -o {D}/r.csv",
            setup: |d| edited(d, |t, _| set(t, checkpoint::NORM_STD, floats(&[3], 1.0))),
            expect: "tensor normalization.std has shape [3]",
        },
        Case {
            name: "normalization tensors without their metadata",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| {
                edited(d, |_, m| {
                    m.remove("normalization");
                })
            },
            expect: "the normalization is incomplete",
        },
        Case {
            name: "normalization.mean of the wrong shape (--resume)",
            args: "train --resume {D}/run",
            setup: |d| resumable_edited(d, |t, _| set(t, checkpoint::NORM_MEAN, floats(&[1], 0.0))),
            expect: "tensor normalization.mean has shape [1], but pixel-mean statistics are [3, 32, 32]",
        },
        // Checkpoints: weights.
        Case {
            name: "integer weights",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| {
                edited(d, |t, _| set(t, "conv1.weight", Tensor::zeros([16, 3, 3, 3], (Kind::Int64, Device::Cpu))))
            },
            expect: "tensor conv1.weight: dtype I64 is not a floating-point format",
        },
        Case {
            name: "NaN weights (eval)",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| edited(d, |t, _| set(t, "linear.weight", floats(&[10, 64], f64::NAN))),
            expect: "tensor linear.weight: element 0 is NaN",
        },
        Case {
            name: "NaN weights (predict, no NaN%)",
            args: "predict --weights {D}/m.safetensors --device cpu {D}/x.png",
            setup: |d| edited(d, |t, _| set(t, "bn1.weight", floats(&[16], f64::INFINITY))),
            expect: "tensor bn1.weight: element 0 is inf",
        },
        Case {
            name: "a negative BN running variance",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| edited(d, |t, _| set(t, "bn1.running_var", floats(&[16], -1.0))),
            expect: "a negative variance",
        },
        // Checkpoints: metadata that the tensors contradict.
        Case {
            name: "metadata claiming depth 6000002",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| {
                edited(d, |_, m| {
                    m.insert("depth".into(), "6000002".into());
                })
            },
            expect: "use a smaller depth",
        },
        Case {
            name: "metadata claiming depth 56 for a depth-8 file",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| {
                edited(d, |_, m| {
                    m.insert("depth".into(), "56".into());
                })
            },
            expect: "does not fit the model: depth 56 has 9 blocks per stage, the checkpoint's tensors hold [1, 1, 1]",
        },
        Case {
            name: "metadata claiming a trillion classes",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| {
                edited(d, |_, m| {
                    m.insert("num_classes".into(), "1000000000000".into());
                })
            },
            expect: "use a smaller depth",
        },
        Case {
            name: "metadata claiming 100 classes for a 10-way classifier",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| {
                edited(d, |_, m| {
                    m.insert("num_classes".into(), "100".into());
                })
            },
            expect: "100 classes, but linear.weight has shape [10, 64]",
        },
        Case {
            name: "class names that are not a list",
            args: "eval --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| {
                edited(d, |_, m| {
                    m.insert("classes".into(), "{\"cat\": 1}".into());
                })
            },
            expect: "metadata `classes` is not a list of class names",
        },
        // Depths that could never be built.
        Case {
            name: "summary --depth 6000002",
            args: "summary --depth 6000002",
            setup: no_setup,
            expect: "use a smaller depth",
        },
        Case {
            name: "summary --depth 600000002",
            args: "summary --depth 600000002",
            setup: no_setup,
            expect: "GB of memory here",
        },
        Case {
            name: "eval --depth 600000002",
            args: "eval --depth 600000002 --weights {D}/m.safetensors --data-dir {D}/data --device cpu",
            setup: |d| save_model(&d.join("m.safetensors"), 8),
            expect: "use a smaller depth",
        },
        Case {
            name: "train --depth 6000002",
            args: "train --depth 6000002 --data-dir {D}/data --out {D}/run --device cpu",
            setup: |d| make_data(&d.join("data")),
            expect: "use a smaller depth",
        },
        // Special files where a regular file belongs: an error at once, never a wait.
        Case {
            name: "a FIFO as a data file",
            args: "train --data-dir {D}/data --out {D}/run {T}",
            setup: |d| {
                make_data(&d.join("data"));
                fifo(&d.join("data/data_batch_1.bin"));
            },
            expect: "data_batch_1.bin: is a FIFO, not a regular file",
        },
        Case {
            name: "a FIFO as batches.meta.txt",
            args: "train --data-dir {D}/data --out {D}/run {T}",
            setup: |d| {
                make_data(&d.join("data"));
                fifo(&d.join("data/batches.meta.txt"));
            },
            expect: "batches.meta.txt: is a FIFO",
        },
        Case {
            name: "a FIFO as an image",
            args: "predict --weights {D}/m.safetensors --device cpu {D}/img.png",
            setup: |d| {
                save_model(&d.join("m.safetensors"), 8);
                fifo(&d.join("img.png"));
            },
            expect: "img.png: is a FIFO",
        },
        Case {
            name: "a 644-byte JPEG claiming 11784×8198 pixels (found by the fuzzer)",
            args: "predict --weights {D}/m.safetensors --device cpu {D}/huge.jpg",
            setup: |d| {
                save_model(&d.join("m.safetensors"), 8);
                std::fs::write(d.join("huge.jpg"), crate::common::HUGE_JPEG).unwrap();
            },
            expect: "huge.jpg: 11784×8198 pixels is more than predict decodes",
        },
        Case {
            name: "a FIFO as a checkpoint",
            args: "eval --weights {D}/m.safetensors --device cpu",
            setup: |d| fifo(&d.join("m.safetensors")),
            expect: "m.safetensors: is a FIFO",
        },
        Case {
            name: "a device as a checkpoint",
            args: "eval --weights /dev/zero --device cpu",
            setup: no_setup,
            expect: "/dev/zero: is a device, not a regular file",
        },
        Case {
            name: "a directory as an image",
            args: "predict --weights {D}/m.safetensors --device cpu {D}",
            setup: |d| save_model(&d.join("m.safetensors"), 8),
            expect: "is a directory, not a regular file",
        },
        Case {
            name: "a FIFO as metrics.csv for plot",
            args: "plot {D}/run -o {D}/out.png",
            setup: |d| {
                std::fs::create_dir(d.join("run")).unwrap();
                fifo(&d.join("run/metrics.csv"));
            },
            expect: "metrics.csv: is a FIFO",
        },
        Case {
            name: "a FIFO as config.json on --resume",
            args: "train --resume {D}/run",
            setup: |d| {
                trained_run(d);
                fifo(&d.join("run/config.json"));
            },
            expect: "config.json: is a FIFO",
        },
        // Class names from the data directory.
        Case {
            name: "binary garbage as batches.meta.txt",
            args: "train --data-dir {D}/data --out {D}/run {T}",
            setup: |d| {
                make_data(&d.join("data"));
                std::fs::write(d.join("data/batches.meta.txt"), b"\xff\xfe\x00\x01garbage").unwrap();
            },
            expect: "batches.meta.txt: not a text file of class names",
        },
        Case {
            name: "three names in batches.meta.txt",
            args: "train --data-dir {D}/data --out {D}/run {T}",
            setup: |d| {
                make_data(&d.join("data"));
                std::fs::write(d.join("data/batches.meta.txt"), "cat\ndog\nbird\n").unwrap();
            },
            expect: "batches.meta.txt: 3 class names, expected 10",
        },
        Case {
            name: "a terminal escape in a class name",
            args: "train --data-dir {D}/data --out {D}/run {T}",
            setup: |d| {
                make_data(&d.join("data"));
                let names = "airplane\nauto\x1b[2Jmobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
                std::fs::write(d.join("data/batches.meta.txt"), names).unwrap();
            },
            expect: "class name 2 is not a name",
        },
        // --resume: the training state.
        Case {
            name: "a negative batch in train_state",
            args: "train --resume {D}/run",
            setup: |d| resumable_edited(d, |_, m| state_field(m, "batch", (-1).into())),
            expect: "training state field `batch` is -1",
        },
        Case {
            name: "a train_state whose iteration disagrees with its epoch",
            args: "train --resume {D}/run",
            setup: |d| resumable_edited(d, |_, m| state_field(m, "iteration", 1.into())),
            expect: "field `iteration` is 1",
        },
        Case {
            name: "a train_state of the wrong type",
            args: "train --resume {D}/run",
            setup: |d| resumable_edited(d, |_, m| state_field(m, "epoch", "one".into())),
            expect: "corrupt training state: field `epoch`",
        },
        Case {
            name: "a momentum buffer of another shape",
            args: "train --resume {D}/run",
            setup: |d| resumable_edited(d, |t, _| set(t, "optimizer.momentum.linear.bias", floats(&[3], 0.0))),
            expect: "momentum buffer for linear.bias has another shape",
        },
        Case {
            name: "a last.safetensors of another depth than config.json",
            args: "train --resume {D}/run",
            setup: |d| {
                trained_run(d);
                save_model(&d.join("run/last.safetensors"), 14);
            },
            expect: "does not fit the model: depth 8 has 1 blocks per stage, the checkpoint's tensors hold [2, 2, 2]",
        },
        Case {
            name: "a last.safetensors of another normalization than config.json",
            args: "train --resume {D}/run",
            setup: |d| {
                resumable_edited(d, |t, m| {
                    m.insert("normalization".into(), "channel".into());
                    set(t, checkpoint::NORM_MEAN, floats(&[3, 1, 1], 0.5));
                    set(t, checkpoint::NORM_STD, floats(&[3, 1, 1], 0.25));
                })
            },
            expect: "records normalization channel, but config.json field `data.normalization` says pixel-mean",
        },
        Case {
            name: "a last.safetensors of another data set than config.json",
            args: "train --resume {D}/run",
            setup: |d| {
                resumable_edited(d, |_, m| {
                    m.insert("dataset".into(), "cifar100".into());
                    m.insert("labels".into(), "coarse".into());
                })
            },
            expect: "records dataset CIFAR-100 (coarse labels), but config.json field `data.dataset` says CIFAR-10",
        },
        // --resume: config.json.
        Case {
            name: "config.json with a field of the wrong type",
            args: "train --resume {D}/run",
            setup: |d| config_edited(d, |v| v["schedule"]["batch_size"] = "sixty-four".into()),
            expect: "config.json: field `schedule.batch_size`: invalid type",
        },
        Case {
            name: "config.json without a field",
            args: "train --resume {D}/run",
            setup: |d| {
                config_edited(d, |v| {
                    v["schedule"].as_object_mut().unwrap().remove("lr");
                })
            },
            expect: "config.json: field `schedule`: missing field `lr`",
        },
        Case {
            name: "config.json with a negative lr",
            args: "train --resume {D}/run",
            setup: |d| config_edited(d, |v| v["schedule"]["lr"] = (-0.1).into()),
            expect: "config.json: field `schedule.lr` is -0.1: must be a positive number",
        },
        Case {
            name: "config.json with a batch size of 0",
            args: "train --resume {D}/run",
            setup: |d| config_edited(d, |v| v["schedule"]["batch_size"] = 0.into()),
            expect: "field `schedule.batch_size` is 0",
        },
        Case {
            name: "config.json with a depth that is not 6n+2",
            args: "train --resume {D}/run",
            setup: |d| config_edited(d, |v| v["model"]["depth"] = 9.into()),
            expect: "field `model.depth`: depth 9 is not 6n+2",
        },
        Case {
            name: "config.json whose schedule the data contradicts",
            args: "train --resume {D}/run",
            setup: |d| config_edited(d, |v| v["outcome"]["total_iterations"] = 7.into()),
            expect: "fields `outcome.total_iterations`, `outcome.lr_milestones`, `outcome.warmup_iterations` are (7,",
        },
        Case {
            name: "config.json that is not UTF-8",
            args: "train --resume {D}/run",
            setup: |d| {
                trained_run(d);
                std::fs::write(d.join("run/config.json"), b"{\xff\xfe}").unwrap();
            },
            expect: "config.json: not UTF-8 text",
        },
        // --resume: metrics.csv.
        Case {
            name: "metrics.csv cut back to its header",
            args: "train --resume {D}/run",
            setup: |d| {
                trained_run(d);
                let p = d.join("run/metrics.csv");
                let text = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, format!("{}\n", text.lines().next().unwrap())).unwrap();
            },
            expect: "the rows of epochs 1–1 are lost and cannot be restored",
        },
        Case {
            name: "metrics.csv with another header",
            args: "train --resume {D}/run",
            setup: |d| {
                trained_run(d);
                let p = d.join("run/metrics.csv");
                let text = std::fs::read_to_string(&p).unwrap();
                let widened: Vec<String> = text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| if i == 0 { format!("{l},val_loss,val_err\n") } else { format!("{l},1.0,50.0\n") })
                    .collect();
                std::fs::write(&p, widened.concat()).unwrap();
            },
            expect: "the header is not the run's",
        },
        Case {
            name: "metrics.csv whose row is for another epoch",
            args: "train --resume {D}/run",
            setup: |d| {
                trained_run(d);
                let p = d.join("run/metrics.csv");
                let text = std::fs::read_to_string(&p).unwrap();
                let (head, row) = text.split_once('\n').unwrap();
                std::fs::write(&p, format!("{head}\n0{}", &row[1..])).unwrap();
            },
            expect: "line 2 holds epoch 0 where epoch 1 belongs",
        },
        // --resume: flags it would ignore.
        Case {
            name: "--lr with --resume",
            args: "train --resume {D} --lr 0.01",
            setup: no_setup,
            expect: "--lr cannot be used with --resume",
        },
        Case {
            name: "--depth with --resume",
            args: "train --resume {D} --depth 56",
            setup: no_setup,
            expect: "--depth cannot be used with --resume",
        },
        Case {
            name: "--batch-size with --resume",
            args: "train --resume {D} --batch-size 32",
            setup: no_setup,
            expect: "--batch-size cannot be used with --resume",
        },
        Case {
            name: "--dataset with --resume (--data-dir alone may change)",
            args: "train --resume {D} --data-dir {D} --dataset cifar100",
            setup: no_setup,
            expect: "--dataset cannot be used with --resume",
        },
        Case {
            name: "--out with --resume",
            args: "train --resume {D} --out {D}/other",
            setup: no_setup,
            expect: "--out cannot be used with --resume",
        },
        // Outputs over the command's own inputs.
        Case {
            name: "plot -o over the run's metrics.csv",
            args: "plot {D}/run -o {D}/run/metrics.csv",
            setup: |d| {
                std::fs::create_dir(d.join("run")).unwrap();
                std::fs::write(d.join("run/metrics.csv"), "epoch,iteration,lr,train_loss,train_err,test_loss,test_err,epoch_seconds,images_per_sec\n1,10,0.1,2,80,2,80,1,1\n").unwrap();
            },
            expect: "is the input",
        },
        Case {
            name: "grad-flow -o over its checkpoint",
            args: "grad-flow --weights {D}/m.safetensors -o {D}/m.safetensors --device cpu",
            setup: |d| save_model(&d.join("m.safetensors"), 8),
            expect: "m.safetensors is the input",
        },
        Case {
            name: "responses --plot over its checkpoint",
            args: "responses --weights {D}/m.safetensors -o {D}/r.csv --plot {D}/./m.safetensors --device cpu",
            setup: |d| save_model(&d.join("m.safetensors"), 8),
            expect: "is the input",
        },
        Case {
            name: "grad-flow --plot the same file as -o",
            args: "grad-flow -o {D}/g.csv --plot {D}/g.csv --device cpu",
            setup: no_setup,
            expect: "is also the path of --output",
        },
        Case {
            name: "landscape -o over its checkpoint",
            args: "landscape --weights {D}/m.safetensors -o {D}/m.safetensors --device cpu",
            setup: |d| save_model(&d.join("m.safetensors"), 8),
            expect: "is the input",
        },
        Case {
            name: "plot -o a FIFO",
            args: "plot {D}/run -o {D}/out.png",
            setup: |d| {
                std::fs::create_dir(d.join("run")).unwrap();
                std::fs::write(d.join("run/metrics.csv"), "epoch\n").unwrap();
                fifo(&d.join("out.png"));
            },
            expect: "is a FIFO, not a regular file",
        },
        // Counts at their limits.
        Case {
            name: "eval --limit-test 0",
            args: "eval --weights {D}/m.safetensors --limit-test 0",
            setup: no_setup,
            expect: "'0' for '--limit-test",
        },
        Case {
            name: "responses --limit-test 0",
            args: "responses --weights {D}/m.safetensors --limit-test 0 -o {D}/r.csv",
            setup: no_setup,
            expect: "'0' for '--limit-test",
        },
        Case {
            name: "train --limit-train 0",
            args: "train --limit-train 0",
            setup: no_setup,
            expect: "'0' for '--limit-train",
        },
        Case {
            name: "a validation split past i64",
            args: "train --data-dir {D}/data --out {D}/run --depth 8 --limit-train 100 --device cpu --val-split 18446744073709551615",
            setup: |d| make_data(&d.join("data")),
            expect: "--val-split 18446744073709551615: must be smaller than the 100 training images",
        },
        Case {
            name: "bench --iters past any sensible count",
            args: "bench --iters 9223372036854775807 --device cpu",
            setup: no_setup,
            expect: "for '--iters",
        },
        Case {
            name: "predict --top 0",
            args: "predict --weights {D}/m --top 0 {D}/x.png",
            setup: no_setup,
            expect: "'0' for '--top",
        },
        Case {
            name: "grad-flow --batch-size above the training set",
            args: "grad-flow --batch-size 9223372036854775807 --data-dir {D}/data -o {D}/g.csv --device cpu",
            setup: |d| make_data(&d.join("data")),
            expect: "--batch-size 9223372036854775807",
        },
    ]
}
