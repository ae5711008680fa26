//! The binary a study's Slurm scripts run, chosen when they are written so that a task
//! started (or requeued) later still finds it. A binary built by cargo lives in its target
//! directory, which `cargo clean` or a rebuild empties or changes under a queued array: it is
//! copied once into the grid as `DIR/bin/<name>` and the scripts run that copy. An installed
//! binary (`cargo install`, a package) stays where it is, named by its canonical path.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the scripts find the binary, and the build it is copied from (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptBinary {
    /// What the scripts run: an absolute path.
    pub path: PathBuf,
    /// The running binary in a cargo target directory, copied to `path` by [`Self::install`].
    pub copy_of: Option<PathBuf>,
}

/// Whether `exe` lies in a cargo target directory: it has an ancestor named `target` that
/// holds a `release` or a `debug` directory.
pub fn in_cargo_target(exe: &Path) -> bool {
    exe.ancestors()
        .skip(1)
        .any(|a| a.file_name() == Some("target".as_ref()) && (a.join("release").is_dir() || a.join("debug").is_dir()))
}

impl ScriptBinary {
    /// The binary for the scripts of the grid in `dir`, when `running` (this process's
    /// executable) writes them. Writes nothing: see [`Self::install`].
    pub fn resolve(dir: &Path, running: &Path) -> Result<ScriptBinary> {
        let running = std::fs::canonicalize(running).map_err(|e| Error::io(running, e))?;
        if !in_cargo_target(&running) {
            return Ok(ScriptBinary { path: running, copy_of: None });
        }
        let name = running.file_name().unwrap_or("resnet-cifar".as_ref());
        let dir = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
        Ok(ScriptBinary { path: dir.join("bin").join(name), copy_of: Some(running) })
    }

    /// Copies the build to [`Self::path`] unless that file already holds the same bytes:
    /// written beside it and renamed over it, so that a task running the old copy keeps its
    /// file. Whether it copied.
    pub fn install(&self) -> Result<bool> {
        let Some(source) = &self.copy_of else { return Ok(false) };
        let bytes = std::fs::read(source).map_err(|e| Error::io(source, e))?;
        if std::fs::read(&self.path).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        let dir = self.path.parent().expect("the copy lies in DIR/bin");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        crate::files::write_atomic_mode(&self.path, &bytes, 0o755)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_build_in_a_target_directory_is_copied_into_the_grid_once() {
        let tmp = tempfile::tempdir().unwrap();
        let build = tmp.path().join("project/target/release/resnet-cifar");
        std::fs::create_dir_all(build.parent().unwrap()).unwrap();
        std::fs::write(&build, b"#!/bin/sh\necho one\n").unwrap();
        assert!(in_cargo_target(&build));
        let grid = tmp.path().join("grid");
        let b = ScriptBinary::resolve(&grid, &build).unwrap();
        assert_eq!(b.path, grid.join("bin/resnet-cifar"));
        assert!(!grid.exists(), "resolve writes nothing");
        assert!(b.install().unwrap());
        assert_eq!(std::fs::read(&b.path).unwrap(), b"#!/bin/sh\necho one\n");
        assert_eq!(std::fs::metadata(&b.path).unwrap().permissions().mode() & 0o777, 0o755);
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let first = inode(&b.path);
        assert!(!b.install().unwrap(), "the same bytes: left as it is");
        assert_eq!(inode(&b.path), first);
        std::fs::write(&build, b"#!/bin/sh\necho two\n").unwrap();
        assert!(b.install().unwrap(), "a rebuild replaces the copy");
        assert_eq!(std::fs::read(&b.path).unwrap(), b"#!/bin/sh\necho two\n");
        assert_eq!(std::fs::read_dir(grid.join("bin")).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn an_installed_binary_is_named_by_its_canonical_path() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("resnet-cifar"), b"x").unwrap();
        std::os::unix::fs::symlink(bin.join("resnet-cifar"), tmp.path().join("link")).unwrap();
        // `target` without release/ or debug/ is not cargo's.
        std::fs::create_dir_all(tmp.path().join("target/other")).unwrap();
        std::fs::write(tmp.path().join("target/other/resnet-cifar"), b"x").unwrap();
        for running in [tmp.path().join("link"), tmp.path().join("target/other/resnet-cifar")] {
            assert!(!in_cargo_target(&running), "{}", running.display());
            let b = ScriptBinary::resolve(&tmp.path().join("grid"), &running).unwrap();
            assert_eq!(b.path, std::fs::canonicalize(&running).unwrap());
            assert!(!b.install().unwrap());
        }
        assert!(!tmp.path().join("grid").exists());
    }
}
