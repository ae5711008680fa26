//! `train`: a new run from the flags, or `--resume` of a run from its `config.json`, with
//! the advice that an out-of-memory failure calls for.

use anyhow::Result;
use resnet_cifar::train;
use tch::Device;

use super::TrainArgs;

pub fn train_command(args: TrainArgs) -> Result<()> {
    let summary = match &args.resume {
        Some(dir) => {
            let overrides = train::ResumeOverrides {
                threads: args.threads,
                device: args.device,
                data_dir: args.data.data_dir,
                cuda_graphs: args.cuda_graphs,
                deterministic: args.deterministic,
            };
            let (batch, device) = match train::config::config_from_run(dir) {
                Ok(saved) => (saved.schedule.batch_size, overrides.device.unwrap_or(saved.machine.device)),
                Err(_) => (0, overrides.device.unwrap_or(Device::Cpu)), // resume refuses it first
            };
            resnet_cifar::device::catch_out_of_memory(batch, device, || train::resume(dir, overrides, false))
                .map_err(|e| out_of_memory_advice(e, dir, true))?
        }
        None => {
            let cfg = args.into_config()?;
            resnet_cifar::device::catch_out_of_memory(cfg.schedule.batch_size, cfg.machine.device, || train::run(&cfg))
                .map_err(|e| out_of_memory_advice(e, &cfg.output.dir, false))?
        }
    };
    println!("{}", summary.describe());
    Ok(())
}

/// What to do after running out of memory: resume from the last checkpoint where it fits
/// (a run keeps its batch size), or, with no checkpoint yet, train anew with a smaller
/// batch: a new run that never checkpointed is cleared, so that the same `--out` serves.
fn out_of_memory_advice(e: resnet_cifar::Error, dir: &std::path::Path, resuming: bool) -> anyhow::Error {
    if !matches!(e, resnet_cifar::Error::OutOfMemory { .. }) {
        return e.into();
    }
    let msg = e.to_string();
    let checkpointed = dir.join("last.safetensors").is_file();
    let advice = if checkpointed {
        format!(
            "the last checkpoint is whole: resume with `resnet-cifar train --resume {}` where memory suffices (a run keeps \
             its batch size), or start a new run with a smaller --batch-size",
            dir.display()
        )
    } else if !resuming && clear_unstarted(dir) {
        format!(
            "nothing was checkpointed and {} is empty again: train again with a smaller --batch-size",
            dir.display()
        )
    } else {
        "use a smaller --batch-size".to_string()
    };
    anyhow::anyhow!("{msg}; {advice}")
}

/// Empties the directory of a new run that wrote no checkpoint (its config.json, an empty
/// metrics.csv, TensorBoard's first events): everything in it is the run's own, as a new
/// run takes only an empty directory. Whether it did.
fn clear_unstarted(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let mut ok = true;
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        ok &= removed.is_ok();
    }
    ok
}
