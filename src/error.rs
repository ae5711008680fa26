//! The library's typed errors: each names the file, tensor or setting at fault and says
//! what is wrong in the library's terms, so the binary can print it as one line. Where a
//! caller could act on an error (resume a run, lower the learning rate, choose another
//! directory or device), it is a variant of its own with the facts as fields; the binary
//! adds the flags and commands that act on it. `Config` is left for one-off validation
//! messages.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting that cannot be used (depth not 6n+2, batch size 0, …).
    #[error("{0}")]
    Config(String),
    /// A setting out of its range, named by its path in `config.json`.
    #[error("{0}")]
    Setting(BadSetting),
    /// A data file that is missing, unreadable or not in the CIFAR-10 binary format.
    #[error("{path}: {msg}")]
    Data { path: PathBuf, msg: String },
    /// A checkpoint that cannot be read or does not fit the model.
    #[error("{path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// A figure or table that cannot be drawn or written (the message names the file).
    #[error("{0}")]
    Output(String),
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Training produced a NaN or infinite loss, weight or sum (`what`) at `iteration`,
    /// trained at learning rate `lr`; nothing non-finite was checkpointed.
    #[error("{what} at iteration {iteration} (lr {lr}): training diverged; the last checkpoint is intact")]
    Diverged { iteration: i64, lr: f64, what: String },
    /// A loss or output that is NaN or infinite outside training (`what` says which):
    /// the network's weights or normalization are broken.
    #[error("{what} (NaN or infinite): the network's weights or normalization are broken")]
    NotFinite { what: String },
    /// Stopped by SIGINT/SIGTERM after writing a checkpoint: the run in `dir` resumes.
    #[error("stopped by signal {signal} at iteration {iteration}; the checkpoint of {} is written", dir.display())]
    Interrupted { signal: i32, iteration: i64, dir: PathBuf },
    /// A grid stopped by SIGINT/SIGTERM: running cells wrote their checkpoints.
    #[error(
        "stopped by signal {signal}: the finished cells of the grid in {} are kept and the running ones wrote \
         their checkpoints",
        dir.display()
    )]
    GridInterrupted { signal: i32, dir: PathBuf },
    /// A run directory whose lock another process (`pid`, where the system says) holds.
    #[error("{} is in use: {}", dir.display(), holder(*pid))]
    RunInUse { dir: PathBuf, pid: Option<u32> },
    /// A new run asked for in a directory that holds one already (its `metrics.csv`).
    #[error("{} already holds a run (metrics.csv exists)", dir.display())]
    RunExists { dir: PathBuf },
    /// A new run asked for in a directory that holds files (`found`) but no run.
    #[error("{} is not empty and holds no run (found {})", dir.display(), first_names(found))]
    DirNotEmpty { dir: PathBuf, found: Vec<String> },
    /// A run to continue that has no checkpoint.
    #[error("{} has no last.safetensors: there is no checkpoint to continue from", dir.display())]
    NoCheckpoint { dir: PathBuf },
    /// A directory that holds neither a run nor a study.
    #[error("{}: not a run directory (no config.json and metrics.csv) nor a study (no grid.json)", dir.display())]
    NotARun { dir: PathBuf },
    /// A directory with no `config.json`: no run to continue or read.
    #[error("{}: no run here (no config.json)", dir.display())]
    NoRun { dir: PathBuf },
    /// A study directory with no `grid.json`.
    #[error("{}: no grid here (no grid.json)", dir.display())]
    NoGrid { dir: PathBuf },
    /// A study planned again in `path`'s directory with another plan; `difference` names
    /// the first axis or setting that differs.
    #[error("{} holds another plan ({difference})", path.display())]
    PlanMismatch { path: PathBuf, difference: String },
    /// A cell directory holding a run of another experiment; `difference` names the first
    /// setting that differs.
    #[error("{} holds a run with other settings ({difference})", dir.display())]
    CellMismatch { dir: PathBuf, difference: String },
    /// A `grid.json` written by an earlier version, with the settings as `train` flags.
    #[error("{}: written by an earlier version (its settings as flags)", path.display())]
    OldGrid { path: PathBuf },
    /// libtorch ran out of memory on `device` while training with batches of `batch_size`;
    /// `said` is libtorch's sentence (the memory asked for and the device's capacity).
    #[error("out of memory on {device} at batch size {batch_size}: {said}")]
    OutOfMemory { device: String, batch_size: i64, said: String },
    /// A network that would not fit in this machine's memory: its parameters (with
    /// gradients and momentum) and one image's activations, estimated in bytes.
    #[error(
        "depth {depth} with {num_classes} classes would need about {} for its {parameters:.3e} parameters (with \
         gradients and momentum) and {} of activations per image, more than the {} of memory here: use a smaller \
         depth (or fewer classes)",
        gb(*parameter_bytes),
        gb(*activation_bytes),
        gb(*memory_bytes)
    )]
    ModelTooLarge {
        depth: i64,
        num_classes: i64,
        parameters: f64,
        parameter_bytes: f64,
        activation_bytes: f64,
        memory_bytes: f64,
    },
    /// A value (of a setting, a file field or a flag) that names none of the `known` ones.
    #[error("unknown {what} `{given}`: use {}", either(known))]
    UnknownValue { what: &'static str, given: String, known: Vec<&'static str> },
    /// A CUDA device asked for (`asked`, as written) where there are only `count`.
    #[error("{}", no_cuda(asked, *count))]
    NoCudaDevice { asked: String, count: usize },
    /// CUDA graphs asked for where they cannot be used, and `why`.
    #[error("CUDA graphs were asked for, but {why}")]
    CudaGraphsUnavailable { why: String },
    /// A checkpoint whose tensors are not those of the network it describes or is asked
    /// to be; `detail` says which differ.
    #[error("{}: does not fit the model: {detail}", path.display())]
    CheckpointMismatch { path: PathBuf, detail: String },
    /// A checkpoint's classifier has `outputs` classes, the data set (`dataset`) `classes`.
    #[error("{}: has a {outputs}-way classifier, but {dataset} has {classes} classes", path.display())]
    ClassCountMismatch { path: PathBuf, outputs: i64, dataset: String, classes: i64 },
    /// A checkpoint trained on the data set `recorded`, used on another one: the data set
    /// named `name` and/or the CIFAR-100 `labels` asked for.
    #[error("{}: trained on {recorded}, not on {}", path.display(), asked_data(name.as_deref(), labels.as_deref()))]
    DatasetMismatch { path: PathBuf, recorded: String, name: Option<String>, labels: Option<String> },
    /// A checkpoint without normalization statistics, used without naming a normalization.
    #[error("{}: carries no normalization statistics", path.display())]
    NoNormalization { path: PathBuf },
    /// Data of `dataset` not found: the directory `path` (`whole_dir`) or a file in it;
    /// `download` fetches it, into a directory named `unpacked`.
    #[error("{}", missing_data(path, dataset, download, *whole_dir))]
    MissingData {
        path: PathBuf,
        dataset: &'static str,
        download: &'static str,
        unpacked: &'static str,
        whole_dir: bool,
    },
    /// A failure inside libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A failure reported by the C++ shim (a libtorch call tch cannot make).
    #[error("libtorch: {0}")]
    Native(String),
}

/// A setting out of its range: its path in `config.json` (`schedule.lr`), its value, and
/// what it must be. The binary names the flag that sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct BadSetting {
    pub path: &'static str,
    pub value: String,
    pub want: String,
}

impl std::fmt::Display for BadSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is {}: {}", self.path, self.value, self.want)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data { path: path.into(), msg: msg.into() }
    }
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint { path: path.into(), msg: msg.into() }
    }
}

fn gb(bytes: f64) -> String {
    format!("{:.3} GB", bytes / 1e9)
}

/// The first five of `names`, and how many more.
fn first_names(names: &[String]) -> String {
    let shown = names[..names.len().min(5)].join(", ");
    match names.len() {
        n if n > 5 => format!("{shown} and {} more", n - 5),
        _ => shown,
    }
}

/// "a", "a or b", "a, b or c".
fn either(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid} holds its lock (a run or a study cell)"),
        None => "another process holds its lock (a run or a study cell)".into(),
    }
}

fn no_cuda(asked: &str, count: usize) -> String {
    match count {
        0 => format!("device {asked}: CUDA is not available here (no GPU, or libtorch without CUDA)"),
        n => format!("device {asked}: only {n} CUDA device(s) here, numbered from 0"),
    }
}

fn asked_data(name: Option<&str>, labels: Option<&str>) -> String {
    match (name, labels) {
        (Some(n), Some(l)) => format!("the {n} data set with {l} labels that was asked for"),
        (Some(n), None) => format!("the {n} data set that was asked for"),
        (None, Some(l)) => format!("the {l} labels that were asked for"),
        (None, None) => "the data set asked for".into(),
    }
}

fn missing_data(path: &std::path::Path, dataset: &str, download: &str, whole_dir: bool) -> String {
    match whole_dir {
        true => format!("{}: no such data directory: run {download} to fetch {dataset}", path.display()),
        false => format!("{}: missing: the data directory is incomplete; run {download}", path.display()),
    }
}

/// `text` on one line: every run of whitespace (line breaks from libtorch or the OS
/// included) becomes one space. Every error the user sees goes through it.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::Error;
    use std::path::PathBuf;

    #[test]
    fn one_line_folds_every_run_of_whitespace_into_one_space() {
        assert_eq!(
            super::one_line("CUDA error:\n  out of memory\r\n\tat step 3 "),
            "CUDA error: out of memory at step 3"
        );
        assert_eq!(super::one_line(""), "");
    }

    #[test]
    fn typed_errors_say_what_is_wrong_without_the_command_line() {
        let dir = PathBuf::from("/runs/a");
        let cases = [
            (
                Error::Diverged { iteration: 7, lr: 0.1, what: "the loss became NaN".into() },
                "the loss became NaN at iteration 7 (lr 0.1): training diverged",
            ),
            (
                Error::Interrupted { signal: 2, iteration: 9, dir: dir.clone() },
                "stopped by signal 2 at iteration 9; the checkpoint of /runs/a is written",
            ),
            (Error::RunInUse { dir: dir.clone(), pid: Some(42) }, "/runs/a is in use: process 42 holds its lock"),
            (Error::RunInUse { dir: dir.clone(), pid: None }, "/runs/a is in use: another process holds its lock"),
            (Error::NoCudaDevice { asked: "cuda:2".into(), count: 1 }, "device cuda:2: only 1 CUDA device(s) here"),
            (
                Error::UnknownValue { what: "architecture", given: "vgg".into(), known: vec!["resnet", "plain"] },
                "unknown architecture `vgg`: use resnet or plain",
            ),
            (
                Error::UnknownValue { what: "device", given: "tpu".into(), known: vec!["auto", "cpu", "cuda:N"] },
                "unknown device `tpu`: use auto, cpu or cuda:N",
            ),
            (
                Error::DatasetMismatch {
                    path: dir.clone(),
                    recorded: "CIFAR-10".into(),
                    name: None,
                    labels: Some("fine".into()),
                },
                "/runs/a: trained on CIFAR-10, not on the fine labels that were asked for",
            ),
        ];
        for (e, want) in cases {
            let text = e.to_string();
            assert!(text.starts_with(want), "{text}");
            assert!(!text.contains("--") && !text.contains("resnet-cifar"), "{text}");
        }
    }
}
