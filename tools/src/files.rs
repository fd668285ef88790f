//! Reading files from outside (CIB files, published documents, rules,
//! configurations) and finding the programs this crate runs.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Reads a text file of at most `limit` bytes: UTF-8, a byte order mark
/// removed. Larger files are refused without being read further, so a
/// hostile file costs at most `limit` bytes of memory.
///
/// # Errors
///
/// [`Error::Io`] naming the file: it cannot be read, is larger than
/// `limit`, or is not UTF-8.
pub fn read_bounded(path: &Path, limit: usize) -> Result<String> {
    let io_err = |source| Error::Io {
        context: format!("reading {}", path.display()),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::with_capacity(file.metadata().map_or(0, |m| m.len()).min(limit as u64) as usize);
    file.take(limit as u64 + 1).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() > limit {
        return Err(io_err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than the limit of {limit} bytes"),
        )));
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        io_err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 (byte {at})")))
    })
}

/// Where a Pacemaker program is. The tools live in `/usr/sbin`, which is
/// not on the `PATH` of ordinary users on Debian: the bare name when it is
/// found on `PATH`, otherwise the first of `/usr/sbin/NAME`, `/sbin/NAME`
/// that exists, otherwise the bare name (so that a spawn error names the
/// program).
pub fn program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()));
    if !on_path {
        for dir in ["/usr/sbin", "/sbin"] {
            let candidate = Path::new(dir).join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_the_limit_and_refuses_beyond() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"\xEF\xBB\xBF<a/>").unwrap();
        assert_eq!(read_bounded(&path, 100).unwrap(), "<a/>");
        assert!(read_bounded(&path, 3).unwrap_err().to_string().contains("reading"));
        std::fs::write(&path, b"<a b=\"\xFF\"/>").unwrap();
        let e = read_bounded(&path, 100).unwrap_err();
        assert!(format!("{e:#}").contains("reading"), "{e:#}");
    }

    #[test]
    fn finds_pacemaker_tools_off_the_path() {
        let p = program("cibadmin");
        assert!(p.is_absolute() || p == Path::new("cibadmin"), "{}", p.display());
    }
}
