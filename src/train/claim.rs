//! A run directory is claimed, never clobbered. A new run takes only a missing or empty
//! directory; a run holds an advisory lock (`flock` on `DIR/.lock`) for its whole life, in
//! `train`, `--resume` and every study cell, so a second process on the same directory
//! gets a one-line error instead of silently overwriting the first one's results.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// Held for as long as a run writes its directory; the lock goes with it (and with the
/// process, however it ends). A lock file this process created is removed when the lock is
/// dropped, so that a command that refuses after taking the lock leaves the directory as
/// it found it; [`lock`] checks after locking that the path still names the file it
/// locked, so removing it cannot let two processes hold one directory.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    created: Option<PathBuf>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some(path) = self.created.take() {
            // Still locked while it is removed: a process that opened it before finds it
            // gone after locking and tries again (see `lock`).
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Opens the lock file, creating it when missing; `true` when this call created it.
fn open_lock(path: &Path) -> std::io::Result<Option<(File, bool)>> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => Ok(Some((f, true))),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => match OpenOptions::new().read(true).open(path) {
            Ok(f) => Ok(Some((f, false))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None), // removed meanwhile: try again
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Whether `path` still names the file open as `file`.
fn still_there(file: &File, path: &Path) -> std::io::Result<bool> {
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Locks the run directory `dir` (which must exist), or says who has it.
pub fn lock(dir: &Path) -> Result<RunLock> {
    let path = dir.join(LOCK_FILE);
    for _ in 0..100 {
        let Some((file, created)) = open_lock(&path).map_err(|e| Error::io(&path, e))? else { continue };
        let mut lock = RunLock { file, created: created.then(|| path.clone()) };
        match lock.file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(in_use(dir, &lock.file)),
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        if still_there(&lock.file, &path).map_err(|e| Error::io(&path, e))? {
            return Ok(lock);
        }
        // The holder finished and removed the file between our open and our lock: the
        // path is not ours to remove.
        lock.created = None;
    }
    Err(Error::Config(format!("{}: cannot take its lock (the lock file keeps changing)", path.display())))
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

/// The error for a directory whose lock (open as `file`) another process holds.
fn in_use(dir: &Path, file: &File) -> Error {
    Error::RunInUse { dir: dir.to_path_buf(), pid: file.metadata().ok().and_then(|m| lock_holder(&m)) }
}

/// The process that holds a `flock` on the file of `meta`, as Linux lists it in
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF`: the pid, then the
/// device as major:minor in hex and the inode). `None` where the system does not say.
fn lock_holder(meta: &std::fs::Metadata) -> Option<u32> {
    let file = format!("{:02x}:{:02x}:{}", libc::major(meta.dev()), libc::minor(meta.dev()), meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A process waiting for a lock is listed as `1: -> FLOCK …`: not the holder.
        match fields.as_slice() {
            [_, "FLOCK", _, _, pid, at, ..] if *at == file => pid.parse().ok().filter(|p| *p > 0),
            _ => None,
        }
    })
}

/// The lock of `dir` when another process holds it (found without creating anything).
fn held_elsewhere(dir: &Path) -> Option<File> {
    File::open(dir.join(LOCK_FILE)).ok().filter(|f| matches!(f.try_lock(), Err(TryLockError::WouldBlock)))
}

/// Refuses `dir` for a new run unless it is missing or empty (a lock file aside), naming
/// what it found, or that another process holds it.
fn refuse_non_empty(dir: &Path) -> Result<()> {
    let found = contents(dir)?;
    if !found.is_empty() {
        if let Some(file) = held_elsewhere(dir) {
            return Err(in_use(dir, &file));
        }
        return Err(Error::DirNotEmpty { dir: dir.to_path_buf(), found });
    }
    Ok(())
}

/// Creates `dir` and its missing parents; returns the topmost directory created, if any.
fn create_dirs(dir: &Path) -> Result<Option<PathBuf>> {
    let mut top = None;
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        top = Some(d.to_path_buf());
        at = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    Ok(top)
}

/// Removes the directories [`create_dirs`] made (only while they are empty).
fn remove_dirs(dir: &Path, top: Option<PathBuf>) {
    let Some(top) = top else { return };
    let mut at = Some(dir);
    while let Some(d) = at {
        if std::fs::remove_dir(d).is_err() || d == top {
            break;
        }
        at = d.parent();
    }
}

/// Claims `dir` for a new run: refuses it unless it is missing or empty, naming what it
/// found, then creates and locks it. A refusal creates nothing: the check comes before
/// the directory and its lock are made, and is repeated once the lock is held (another
/// process may have written meanwhile), undoing what this call made.
pub fn claim_new(dir: &Path) -> Result<RunLock> {
    if dir.join("metrics.csv").exists() {
        return Err(Error::RunExists { dir: dir.to_path_buf() });
    }
    refuse_non_empty(dir)?;
    let made = create_dirs(dir)?;
    let checked = lock(dir).and_then(|lock| refuse_non_empty(dir).map(|()| lock));
    if checked.is_err() {
        remove_dirs(dir, made);
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = lock(tmp.path()).unwrap();
        let e = lock(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("is in use"), "{e}");
        // Linux names the holder (here this process) in /proc/locks.
        let named = std::path::Path::new("/proc/locks").exists().then_some(std::process::id());
        assert!(matches!(e, Error::RunInUse { pid, .. } if pid == named), "{e:?}");
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
        assert!(matches!(claim_new(&fresh).unwrap_err(), Error::RunExists { dir } if dir == fresh));
    }

    #[test]
    fn a_refusal_leaves_no_lock_file_and_no_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("config.json"), "{}").unwrap();
        assert!(claim_new(&run).is_err());
        assert_eq!(std::fs::read_dir(&run).unwrap().count(), 1, "only config.json");
        // A directory made by the claim goes again when the claim is refused.
        let held = lock(&run).unwrap();
        drop(held);
        assert!(!run.join(LOCK_FILE).exists(), "a lock file the lock created goes with it");
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(claim_new(&file.join("a/b")).is_err());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_lock_file_that_was_there_stays() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(LOCK_FILE), "").unwrap();
        drop(lock(tmp.path()).unwrap());
        assert!(tmp.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn a_lock_taken_on_a_removed_file_is_taken_again_on_the_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let first = lock(tmp.path()).unwrap();
        let stale = File::open(tmp.path().join(LOCK_FILE)).unwrap();
        drop(first); // removes the file it created
        stale.try_lock().unwrap(); // a lock on the removed file holds nothing
        let second = lock(tmp.path()).unwrap();
        assert!(still_there(&second.file, &tmp.path().join(LOCK_FILE)).unwrap());
    }
}
