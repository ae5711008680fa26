//! What to do about the library's errors, in the binary's words. The library says what is
//! wrong in its own terms (a directory in use, a diverged run, a device that is not
//! there); [`explain`] adds the flag or command that acts on it, and every library error
//! the binary prints goes through it.

use resnet_cifar::error::BadSetting;
use resnet_cifar::Error;

/// `e` on one line, with the remedy on the command line where there is one.
pub fn explain(e: &Error) -> String {
    let text = e.to_string();
    let line = match e {
        Error::Setting(bad) if bad.path == "data.labels" => {
            format!("{}; add --dataset cifar100, or leave --labels out", setting_message(bad))
        }
        Error::Setting(bad) => setting_message(bad),
        Error::Diverged { lr, .. } => format!("{text}; lower --lr (now {lr}) or add --warmup-iters"),
        Error::Interrupted { dir, .. } => format!("{text}: resume with `{}`", resume(dir)),
        Error::GridInterrupted { .. } => format!("{text}; rerun the same command to continue the grid"),
        Error::RunInUse { .. } => format!("{text}; wait for it to finish, or use another --out"),
        Error::RunExists { dir } => {
            format!("{text}: continue it with `{}`, choose another --out, or delete it to start over", resume(dir))
        }
        Error::DirNotEmpty { .. } => format!("{text}: choose another --out, or empty it"),
        Error::NoCheckpoint { dir } => format!(
            "{text}; start over with `resnet-cifar train --out ANOTHER_DIR`, or delete {} and train again",
            dir.display()
        ),
        Error::NoRun { .. } => format!("{text}: give a run directory written by `resnet-cifar train`"),
        Error::NoGrid { .. } => format!("{text}: plan one with `resnet-cifar study --depths … --archs … --seeds …`"),
        Error::PlanMismatch { .. } => format!("{text}: use another --out, or rerun with the same flags"),
        Error::CellMismatch { .. } => format!("{text}: use another --out, or delete it to train it again"),
        Error::OldGrid { .. } => format!(
            "{text}: rerun the study command that planned it, with the same flags, to bring it up to date (nothing is \
             retrained)"
        ),
        Error::OutOfMemory { .. } => format!("{text}; use a smaller --batch-size"),
        Error::NoCudaDevice { count: 0, .. } => format!("{text}; use --device cpu"),
        Error::CudaGraphsUnavailable { .. } => format!("{text}; use --cuda-graphs auto"),
        Error::CheckpointMismatch { .. } => {
            format!("{text}; check --arch/--depth/--shortcut/--block against the checkpoint")
        }
        Error::ClassCountMismatch { .. } => format!("{text}: pass the --dataset (and --labels) it was trained on"),
        Error::DatasetMismatch { path, recorded, name, labels } => {
            let asked: Vec<String> =
                [name.as_ref().map(|n| format!("--dataset {n}")), labels.as_ref().map(|l| format!("--labels {l}"))]
                    .into_iter()
                    .flatten()
                    .collect();
            format!(
                "{}: trained on {recorded}, not as {} asks: leave out --dataset and --labels (the checkpoint records \
                 its data set)",
                path.display(),
                asked.join(" ")
            )
        }
        Error::NoNormalization { .. } => {
            format!("{text}: pass --normalize (the PyTorch reference checkpoints use imagenet)")
        }
        Error::MissingData { whole_dir: true, unpacked, .. } => {
            format!("{text}, or point --data-dir at an unpacked {unpacked}/")
        }
        Error::MissingData { whole_dir: false, .. } => format!("{text} (or pass --data-dir)"),
        _ => text,
    };
    resnet_cifar::error::one_line(&line)
}

/// The `train` flag that sets the setting at `path` in `config.json` (`schedule.batch_size`
/// → `--batch-size`): by name, but for the few flags named otherwise.
pub fn flag_for(path: &str) -> String {
    let named_otherwise = [
        ("schedule.kind", "--schedule"),
        ("data.normalization", "--normalize"),
        ("data.dir", "--data-dir"),
        ("output.dir", "--out"),
        ("output.tensorboard", "--no-tensorboard"),
        ("model.batch_norm", "--no-bn"),
    ];
    match named_otherwise.iter().find(|(p, _)| *p == path) {
        Some((_, flag)) => flag.to_string(),
        None => format!("--{}", path.rsplit('.').next().unwrap_or(path).replace('_', "-")),
    }
}

/// A setting out of its range as the command line says it: `--lr -0.1: must be …`.
pub fn setting_message(bad: &BadSetting) -> String {
    format!("{} {}: {}", flag_for(bad.path), bad.value, bad.want)
}

/// The command that continues the run in `dir`.
fn resume(dir: &std::path::Path) -> String {
    format!("resnet-cifar train --resume {}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_remedy_names_the_flag_or_command() {
        let dir = PathBuf::from("/runs/a");
        let cases = [
            (Error::Diverged { iteration: 3, lr: 0.5, what: "the loss became NaN".into() }, "lower --lr (now 0.5)"),
            (
                Error::Interrupted { signal: 15, iteration: 3, dir: dir.clone() },
                "is written: resume with `resnet-cifar train --resume /runs/a`",
            ),
            (Error::RunExists { dir: dir.clone() }, "continue it with `resnet-cifar train --resume /runs/a`"),
            (
                Error::RunInUse { dir: dir.clone(), pid: None },
                "another process holds its lock (a run or a study cell); wait",
            ),
            (
                Error::NoCudaDevice { asked: "cuda".into(), count: 0 },
                "CUDA is not available here (no GPU, or libtorch without CUDA); use --device cpu",
            ),
            (
                Error::DatasetMismatch {
                    path: dir.clone(),
                    recorded: "CIFAR-10".into(),
                    name: Some("cifar100".into()),
                    labels: None,
                },
                "/runs/a: trained on CIFAR-10, not as --dataset cifar100 asks: leave out --dataset and --labels",
            ),
        ];
        let bad =
            resnet_cifar::error::BadSetting { path: "schedule.lr", value: "-1".into(), want: "must be > 0".into() };
        let more = [
            (Error::Setting(bad), "--lr -1: must be > 0"),
            (Error::OldGrid { path: dir.join("grid.json") }, "rerun the study command that planned it"),
            (
                Error::CellMismatch { dir: dir.clone(), difference: "seed 1, not 2".into() },
                "(seed 1, not 2): use another --out",
            ),
        ];
        for (e, want) in cases.into_iter().chain(more) {
            let line = explain(&e);
            assert!(line.contains(want), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
        let plain = Error::Config("depth 21 is not 6n+2".into());
        assert_eq!(explain(&plain), "depth 21 is not 6n+2");
    }
}
