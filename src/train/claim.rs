//! A run directory is claimed, never clobbered. A new run takes only a missing or empty
//! directory; a run holds an advisory lock (`flock` on `DIR/.lock`) for its whole life, in
//! `train`, `--resume` and every study cell, so a second process on the same directory
//! gets a one-line error instead of silently overwriting the first one's results.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::{Error, Result};

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// Held for as long as a run writes its directory; the lock goes with it (and with the
/// process, however it ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Locks the run directory `dir` (which must exist), or says who has it.
pub fn lock(dir: &Path) -> Result<RunLock> {
    let path = dir.join(LOCK_FILE);
    let file =
        OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(Error::Config(format!(
            "{} is in use: another train, --resume or study cell holds its lock; wait for it to finish, or use another --out",
            dir.display()
        ))),
        Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// The entries of `dir` other than the lock file, sorted (none when it does not exist).
pub fn contents(dir: &Path) -> Result<Vec<String>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in dir.read_dir().map_err(|e| Error::io(dir, e))? {
        let name = entry.map_err(|e| Error::io(dir, e))?.file_name().to_string_lossy().into_owned();
        if name != LOCK_FILE {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Claims `dir` for a new run: creates it, locks it, and refuses it unless it is empty,
/// naming what it found.
pub fn claim_new(dir: &Path) -> Result<RunLock> {
    if dir.join("metrics.csv").exists() {
        return Err(Error::Config(format!(
            "{} already holds a run (metrics.csv exists): continue it with `train --resume {0}`, choose another --out, \
             or delete it to start over",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let lock = lock(dir)?;
    let found = contents(dir)?;
    if !found.is_empty() {
        let shown: Vec<&str> = found.iter().take(5).map(String::as_str).collect();
        let more = if found.len() > 5 { format!(" and {} more", found.len() - 5) } else { String::new() };
        return Err(Error::Config(format!(
            "{} is not empty and holds no run (found {}{more}): choose another --out, or empty it",
            dir.display(),
            shown.join(", ")
        )));
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = lock(tmp.path()).unwrap();
        let e = lock(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("is in use"), "{e}");
        drop(first);
        lock(tmp.path()).unwrap();
    }

    #[test]
    fn a_new_run_takes_only_a_missing_or_empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("new/run");
        drop(claim_new(&fresh).unwrap());
        drop(claim_new(&fresh).unwrap()); // only the lock file is there
        std::fs::write(fresh.join("config.json"), "{}").unwrap();
        std::fs::write(fresh.join("notes.txt"), "mine").unwrap();
        let e = claim_new(&fresh).unwrap_err().to_string();
        assert!(e.contains("not empty") && e.contains("config.json, notes.txt"), "{e}");
        assert_eq!(std::fs::read_to_string(fresh.join("notes.txt")).unwrap(), "mine");
        std::fs::write(fresh.join("metrics.csv"), "epoch\n").unwrap();
        assert!(claim_new(&fresh).unwrap_err().to_string().contains("--resume"));
    }
}
