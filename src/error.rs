//! The library's typed errors: each names the file, tensor or setting at fault and says
//! what to do about it, so the binary can print it as one line.

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
    /// Training produced a NaN or infinite loss.
    #[error("{0}")]
    Diverged(String),
    /// Stopped by SIGINT/SIGTERM after writing a checkpoint.
    #[error("stopped by signal {signal} at iteration {iteration}; the checkpoint is written: resume with `resnet-cifar train --resume {}`", dir.display())]
    Interrupted { signal: i32, iteration: i64, dir: PathBuf },
    /// A grid stopped by SIGINT/SIGTERM: running cells wrote their checkpoints.
    #[error("stopped by signal {signal}: finished cells are kept and running ones wrote their checkpoints; rerun the same command to continue the grid in {}", dir.display())]
    GridInterrupted { signal: i32, dir: PathBuf },
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

/// `text` on one line: every run of whitespace (line breaks from libtorch or the OS
/// included) becomes one space. Every error the user sees goes through it.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_folds_every_run_of_whitespace_into_one_space() {
        assert_eq!(
            super::one_line("CUDA error:\n  out of memory\r\n\tat step 3 "),
            "CUDA error: out of memory at step 3"
        );
        assert_eq!(super::one_line(""), "");
    }
}
