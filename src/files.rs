//! Reading files that are not ours to trust. Every input file (data, names, checkpoint,
//! `config.json`, `metrics.csv`, image) is opened without blocking and checked to be a
//! regular file before a byte is read, so a FIFO, a device or a directory gets a one-line
//! error instead of a wait; text printed from such files has its control characters
//! escaped. Outputs are checked not to be one of the command's own inputs, and every file
//! the library writes (checkpoints, `config.json`, `grid.json`, results, Slurm scripts,
//! reports) is written atomically by [`write_atomic`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// What a file that is not a regular file is, in words.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without blocking (`O_NONBLOCK`: a FIFO with no writer does not
/// wait) and checks, on the open file, that it is a regular file.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file: give the path of the file itself", kind_of(ft)),
        ));
    }
    Ok(file)
}

/// The whole of the regular file `path`; see [`open_regular`].
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::with_capacity(file.metadata().map_or(0, |m| m.len() as usize));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read_regular`], with the error naming the file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    read_regular(path).map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to `path` so that `path` holds either the old or the new content, whole:
/// write a temporary file beside it, fsync, rename over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, || {})
}

/// [`write_atomic`], calling `before_rename` once the temporary file is written and synced
/// (checkpoint saving passes its fault point there).
pub fn write_atomic_with(path: &Path, bytes: &[u8], before_rename: impl FnOnce()) -> Result<()> {
    write_atomic_full(path, bytes, 0o666, before_rename)
}

/// [`write_atomic`] of a file created with permission bits `mode` (before the umask), e.g.
/// 0o755 for a program: it is never visible at `path` without them.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_full(path, bytes, mode, || {})
}

fn write_atomic_full(path: &Path, bytes: &[u8], mode: u32, before_rename: impl FnOnce()) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A name of this process and call only, created anew (O_EXCL: never through a link
    // someone placed there, never a file another writer of the same path is filling).
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{call}.tmp", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        before_rename();
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// `s` with every control character escaped (`\n`, `\u{1b}`, …), safe to print on a terminal.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Whether `a` and `b` name the same file: the same device and inode when both exist, else
/// the same path once made absolute (a missing file is compared by its parent's real path).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => resolved(a).is_some_and(|ra| resolved(b).is_some_and(|rb| ra == rb)),
    }
}

/// `p` made absolute through its parent's real path.
fn resolved(p: &Path) -> Option<std::path::PathBuf> {
    if let Ok(real) = p.canonicalize() {
        return Some(real);
    }
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Some(parent.canonicalize().ok()?.join(p.file_name()?))
}

/// Refuses to write any of `outputs` over one of `inputs` (or over another output),
/// naming both: a command never destroys what it reads.
pub fn check_outputs(outputs: &[(&str, &Path)], inputs: &[&Path]) -> Result<()> {
    for (i, (flag, out)) in outputs.iter().enumerate() {
        if let Some(input) = inputs.iter().find(|input| same_file(out, input)) {
            return Err(Error::Config(format!(
                "{flag} {} is the input {}: the command would write over what it reads; choose another output path",
                out.display(),
                input.display()
            )));
        }
        if let Some((other, _)) = outputs[..i].iter().find(|(_, o)| same_file(out, o)) {
            return Err(Error::Config(format!(
                "{flag} {} is also the path of {other}: give each output its own path",
                out.display()
            )));
        }
        if let Ok(m) = std::fs::metadata(out) {
            if !m.file_type().is_file() {
                return Err(Error::Config(format!(
                    "{flag} {} is {}, not a regular file: give a file path",
                    out.display(),
                    kind_of(m.file_type())
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writers of one path at once (a grid's cells, two studies) each rename a whole file
    /// of their own: the file is always one of theirs, whole, and nothing is left behind.
    #[test]
    fn writers_of_one_path_at_once_never_mix_their_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("grid.json");
        let contents: Vec<Vec<u8>> = (0..4u8).map(|i| vec![b'a' + i; 64 * 1024]).collect();
        std::thread::scope(|s| {
            for c in &contents {
                let path = &path;
                s.spawn(move || (0..50).for_each(|_| write_atomic(path, c).unwrap()));
            }
        });
        assert!(contents.contains(&std::fs::read(&path).unwrap()));
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn special_files_are_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = read(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("is a device"), "{e}");
        std::fs::write(dir.path().join("f"), b"abc").unwrap();
        assert_eq!(read(&dir.path().join("f")).unwrap(), b"abc");
    }

    #[test]
    fn control_characters_are_escaped_and_outputs_never_overwrite_inputs() {
        assert_eq!(printable("cat"), "cat");
        assert_eq!(printable("a\x1b[31mb\n"), "a\\u{1b}[31mb\\n");
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("m.safetensors");
        std::fs::write(&input, b"x").unwrap();
        let other = dir.path().join("sub/../m.safetensors");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let e = check_outputs(&[("-o", &other)], &[&input]).unwrap_err().to_string();
        assert!(e.contains("is the input"), "{e}");
        let fresh = dir.path().join("new.csv");
        check_outputs(&[("-o", &fresh)], &[&input]).unwrap();
        let e = check_outputs(&[("-o", &fresh), ("--plot", &fresh)], &[]).unwrap_err().to_string();
        assert!(e.contains("also the path of -o"), "{e}");
    }
}
