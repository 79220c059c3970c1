//! smolvm's own log file, `<data dir>/logs/smolvm.log` (never beside the `<id>.log`
//! console logs), capped in size: when a write would pass the cap the file moves to
//! `smolvm.log.1` (replacing the previous one) and a new one starts, so at most twice the
//! cap is ever kept.
//!
//! The file is opened lazily, on the first line, and only inside a data directory that
//! already exists: logging never creates smolvm's state (a dry run on a fresh machine
//! leaves nothing behind). The directory is made 0700 and the file 0600, opened without
//! following a symbolic link; any failure turns file logging off for the process rather
//! than failing the command.
//!
//! The logs of the unprivileged helpers (the resolver's, a VM's console pump's) cannot be
//! moved aside where they live: [`empty_past`] starts them again instead.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The default cap: 4 MiB per file.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 20;

/// The log file's name inside `logs/`.
pub const FILE_NAME: &str = "smolvm.log";

/// Where the log goes for a data dir.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("logs").join(FILE_NAME)
}

/// The data directory the log goes into: the first of `candidates` that exists.
pub fn log_dir(candidates: &[PathBuf]) -> Option<&PathBuf> {
    candidates.iter().find(|d| d.is_dir())
}

/// Empty the log open at `f` (for appending, handed over by whoever opened it) when
/// `coming` more bytes would take it past `max`: whether it was emptied. For a writer that
/// cannot rename files where its log lives, and so starts the log again instead of moving
/// it aside (the resolver and a VM's console pump, both unprivileged); a pipe or a
/// terminal is left alone.
pub fn empty_past(f: &impl std::os::fd::AsFd, max: u64, coming: u64) -> io::Result<bool> {
    let st = rustix::fs::fstat(f)?;
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    if !regular || (st.st_size.max(0) as u64).saturating_add(coming) <= max {
        return Ok(false);
    }
    rustix::fs::ftruncate(f, 0)?;
    Ok(true)
}

/// A size-capped, lazily opened log file.
pub struct CappedLog {
    /// The data directories to log into, in order; the first that exists is used.
    candidates: Vec<PathBuf>,
    max: u64,
    file: Option<(File, PathBuf, u64)>,
    /// Set after a failure: file logging is off for the rest of the process.
    broken: bool,
}

impl CappedLog {
    pub fn new(candidates: Vec<PathBuf>, max: u64) -> Self {
        CappedLog {
            candidates,
            max: max.max(4096),
            file: None,
            broken: false,
        }
    }

    fn open(&mut self) -> io::Result<bool> {
        if self.file.is_some() {
            return Ok(true);
        }
        let Some(dir) = log_dir(&self.candidates) else {
            return Ok(false);
        };
        let path = log_path(dir);
        let logs = path.parent().unwrap_or(dir);
        match std::fs::DirBuilder::new().mode(0o700).create(logs) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if !std::fs::symlink_metadata(logs)?.is_dir() {
            return Err(io::Error::other("logs is not a directory"));
        }
        let file = super::open::open_append(&path, 0o600)?;
        let size = file.metadata()?.size();
        self.file = Some((file, path, size));
        Ok(true)
    }

    /// Append one formatted record (one or more whole lines).
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.broken || !self.open()? {
            return Ok(());
        }
        let (_, path, size) = self.file.as_ref().expect("opened");
        if size + buf.len() as u64 > self.max && *size > 0 {
            let path = path.clone();
            let old = path.with_file_name(format!("{FILE_NAME}.1"));
            self.file = None;
            super::fs::replace_with_generated(&path, &old)?;
            if !self.open()? {
                return Ok(());
            }
        }
        let (file, _, size) = self.file.as_mut().expect("opened");
        file.write_all(buf)?;
        *size += buf.len() as u64;
        Ok(())
    }
}

impl Write for CappedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(_e) = self.append(buf) {
            self.broken = true;
            self.file = None;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_that_would_pass_its_bound_starts_again_and_a_pipe_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("egress-dns.log");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        f.write_all(&[b'x'; 100]).unwrap();
        assert!(!empty_past(&f, 100, 0).unwrap());
        assert!(!empty_past(&f, 110, 10).unwrap());
        f.write_all(b"y").unwrap();
        assert!(!empty_past(&f, 110, 9).unwrap());
        assert!(empty_past(&f, 100, 0).unwrap());
        f.write_all(b"again\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"again\n");
        let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!empty_past(&r, 0, 1).unwrap());
    }

    #[test]
    fn nothing_without_a_data_dir_then_capped_with_one_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("state");
        let mut log = CappedLog::new(vec![data.clone()], 4096);
        log.write_all(b"before the data dir exists\n").unwrap();
        assert!(!data.exists(), "logging created the data dir");
        std::fs::create_dir(&data).unwrap();
        let line = [b'x'; 99];
        for _ in 0..200 {
            log.write_all(&line).unwrap();
            log.write_all(b"\n").unwrap();
        }
        let path = log_path(&data);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 4096, "{size}");
        let old = std::fs::metadata(path.with_file_name("smolvm.log.1")).unwrap();
        assert!(old.len() <= 4096 && old.len() > 0);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_symlink_at_the_log_path_turns_logging_off() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("state");
        std::fs::create_dir_all(data.join("logs")).unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, log_path(&data)).unwrap();
        let mut log = CappedLog::new(vec![data], 4096);
        log.write_all(b"line\n").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
