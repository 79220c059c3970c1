//! `image save`: one cached image, located without following a link, hashed and
//! streamed into a `.tar.zst` renamed into place.

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::core::error::{io_reason, Error, ErrorCode, Result};
use crate::core::images::store::{built_image, validate_name};
use crate::core::images::{parse_image_name, Layout, SIDECAR, SIDECAR_PREFIX};
use crate::core::progress::Progress;
use crate::core::Paths;
use crate::sys::open;

use super::*;

/// An image found in the cache: its kind and its files `(archive name, path)`.
struct Source {
    kind: Kind,
    version: Option<String>,
    files: Vec<(String, PathBuf)>,
}

fn no_such_image(name: &str) -> Error {
    Error::runtime(format!("No cached image named '{name}'."))
        .with_recovery("Run 'smolvm image list' to see pulled images; built images are the names given to 'smolvm image build'.")
}

/// Find `name` in the cache: a built image first, then a published one of `version`.
fn locate(paths: &Paths, version: &str, name: &str) -> Result<Source> {
    // SmolVM's `invalid_input` (exit 2) for what cannot be a cache name.
    validate_name(name).map_err(|_| {
        Error::new(
            crate::core::ErrorCode::InvalidInput,
            format!("'{name}' is not a cached image name."),
        )
        .with_recovery("Run 'smolvm image list' to see cached images.")
    })?;
    let root = &paths.images_root;
    if built_image(root, name).is_ok()
        && open::kind(&root.join(name)).ok() == Some(Some(open::Kind::Dir))
    {
        let dir = root.join(name);
        let mut files: Vec<(String, PathBuf)> = expected_files(Kind::Built, name)
            .unwrap_or_default()
            .into_iter()
            .map(|f| (f.clone(), dir.join(f)))
            .collect();
        // `image build --init`'s record travels with the image.
        let init = dir.join(crate::core::images::store::INIT_FILE);
        if open::kind(&init).ok() == Some(Some(open::Kind::File)) {
            files.push((crate::core::images::store::INIT_FILE.to_string(), init));
        }
        return Ok(Source {
            kind: Kind::Built,
            version: None,
            files,
        });
    }
    let Some((preset, arch, vmm, os)) = parse_image_name(name) else {
        return Err(no_such_image(name));
    };
    let layout = Layout::new(root, version);
    let dir = layout.image_dir(&preset, arch, vmm, os);
    match open::kind(&dir) {
        Ok(Some(open::Kind::Dir)) => {}
        Ok(Some(k)) => {
            return Err(Error::runtime(format!(
                "{} is {}, not an image directory; refusing to read it",
                dir.display(),
                k.describe()
            )))
        }
        _ => return Err(no_such_image(name)),
    }
    let kernel = layout.kernel(arch, vmm);
    let files: Vec<(String, PathBuf)> = expected_files(Kind::Published, name)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let p = if f.starts_with("vmlinux-") {
                kernel.clone()
            } else {
                dir.join(&f)
            };
            (f, p)
        })
        .collect();
    let sidecar_ok = open::read_to_string(&dir.join(SIDECAR))
        .is_ok_and(|s| s.trim().starts_with(SIDECAR_PREFIX));
    let missing: Vec<&str> = files
        .iter()
        .filter(|(_, p)| open::kind(p).ok() != Some(Some(open::Kind::File)))
        .map(|(f, _)| f.as_str())
        .collect();
    if !missing.is_empty() || !sidecar_ok {
        let what = if missing.is_empty() {
            format!("{SIDECAR} is not a {SIDECAR_PREFIX} sidecar")
        } else {
            format!("missing {}", missing.join(", "))
        };
        return Err(Error::runtime(format!(
            "cached image {name} is incomplete ({what}); nothing to save"
        ))
        .with_recovery(format!("Pull it again: smolvm image pull {preset}")));
    }
    Ok(Source {
        kind: Kind::Published,
        version: Some(version.to_string()),
        files,
    })
}

/// A reader from a file's start, by offset (the descriptor's own position is not used).
struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A file we created under a generated name: removed on drop unless kept.
pub(super) struct TempFile(pub(super) Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = crate::sys::fs::remove_generated_file(&p);
        }
    }
}

fn tar_header(name: &str, size: u64) -> io::Result<tar::Header> {
    file_header(tar::Header::new_gnu(), name, size)
}

/// `h` (a GNU header here, ustar in SmolVM's archives) made a regular file's: `name`,
/// `size`, mode 0644, mtime 0.
pub(super) fn file_header(mut h: tar::Header, name: &str, size: u64) -> io::Result<tar::Header> {
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    h.set_cksum();
    Ok(h)
}

/// `image save`: write the cached image `name` to one `.tar.zst` at `output`.
/// Errors (exit 1 unless noted): no such image, an incomplete published image, `output`
/// already there (a regular file: only with `force`; a symbolic link, a directory or a
/// special file: never), a file that changes while it is saved; an invalid name is a usage
/// error (exit 2); Ctrl-C, SIGTERM or SIGHUP (caught while it saves) stop it between two
/// chunks, `interrupted` (exit 130). On any error no file is left at `output` or beside it
/// (the temporary file beside it went with a plain Ctrl-C, which ran no destructor).
pub fn save(
    paths: &Paths,
    version: &str,
    opts: &SaveOptions,
    progress: &Progress<ArchiveEvent>,
) -> Result<SaveReport> {
    let interrupts = crate::sys::signals::Interrupts::catch()
        .map_err(|e| Error::runtime(format!("cannot watch for Ctrl-C: {}", io_reason(&e))))?;
    let stop = || interrupts.caught().is_some();
    let r = if opts.format == Format::Smolvm
        || crate::core::images::catalog::flat_cache_name(&opts.name).is_some()
    {
        super::smolvm::save(paths, version, opts, &stop)
    } else {
        save_native(paths, version, opts, progress, &stop)
    };
    match (r, interrupts.caught()) {
        (Err(_), Some(sig)) => Err(Error::new(
            ErrorCode::Interrupted,
            format!(
                "Saving '{}' interrupted by {}; nothing was written to {}",
                opts.name,
                crate::sys::signals::name(sig),
                opts.output.display()
            ),
        )),
        (r, _) => r,
    }
}

/// [`save`] of smolvm's own format; `stop` ends it between two chunks.
fn save_native(
    paths: &Paths,
    version: &str,
    opts: &SaveOptions,
    progress: &Progress<ArchiveEvent>,
    stop: &dyn Fn() -> bool,
) -> Result<SaveReport> {
    let src = locate(paths, version, &opts.name)?;
    let out = &opts.output;
    may_write(out, opts.force)?;

    // Open every file once (never through a symbolic link) and hash it.
    let mut opened = Vec::new();
    for (name, path) in &src.files {
        let f = open::open_read(path).map_err(|e| io_err("cannot read", path, &e))?;
        let total = f
            .metadata()
            .map_err(|e| io_err("cannot read", path, &e))?
            .len();
        let (size, sha256) = stream(
            Stoppable {
                inner: At { file: &f, pos: 0 },
                stop,
            },
            |_| Ok(()),
            |bytes| {
                progress.emit(ArchiveEvent {
                    file: name.clone(),
                    phase: Phase::Hash,
                    bytes,
                    total,
                })
            },
        )
        .map_err(|e| io_err("cannot read", path, &e))?;
        opened.push((
            f,
            path.clone(),
            FileEntry {
                name: name.clone(),
                size,
                sha256,
            },
        ));
    }
    let manifest = ArchiveManifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        name: opts.name.clone(),
        kind: src.kind,
        version: src.version.clone(),
        files: opened.iter().map(|(_, _, e)| e.clone()).collect(),
        created_by: format!("smolvm {}", env!("CARGO_PKG_VERSION")),
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::runtime(format!("cannot encode the archive manifest: {e}")))?;

    let (file, tmp) = open::create_temp_beside(out, ".partial", 0o644)
        .map_err(|e| io_err("cannot create a temporary file beside", out, &e))?;
    let mut guard = TempFile(Some(tmp.clone()));
    let werr = |e: io::Error| io_err("cannot write", &tmp, &e);
    let enc = zstd::Encoder::new(BufWriter::with_capacity(CHUNK, file), 3).map_err(werr)?;
    let mut tar = tar::Builder::new(enc);
    tar.append(
        &tar_header(MANIFEST_NAME, json.len() as u64).map_err(werr)?,
        &json[..],
    )
    .map_err(werr)?;
    for (f, path, entry) in &opened {
        // Pack exactly the hashed length, hashing again: a file changed since is an error.
        let mut sha = Sha256::new();
        let mut done = 0u64;
        let reader = HashRead {
            inner: Stoppable {
                inner: At { file: f, pos: 0 },
                stop,
            }
            .take(entry.size),
            sha: &mut sha,
            done: &mut done,
            tick: &|bytes| {
                progress.emit(ArchiveEvent {
                    file: entry.name.clone(),
                    phase: Phase::Pack,
                    bytes,
                    total: entry.size,
                })
            },
        };
        tar.append(&tar_header(&entry.name, entry.size).map_err(werr)?, reader)
            .map_err(werr)?;
        if done != entry.size || hex(&sha.finalize()) != entry.sha256 {
            return Err(Error::runtime(format!(
                "{} changed while it was being saved; nothing was written",
                path.display()
            ))
            .with_recovery("Run the save again when nothing is writing the image."));
        }
    }
    let enc = tar.into_inner().map_err(werr)?;
    let file = enc
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(werr)?;
    file.sync_all().map_err(werr)?;
    let archive_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    let replaced = put_in_place(&tmp, out, opts.force)?;
    guard.0 = None;
    Ok(SaveReport {
        name: opts.name.clone(),
        kind: src.kind,
        version: src.version,
        output: out.clone(),
        archive_bytes,
        files: manifest.files,
        replaced,
        format: Format::Native,
    })
}

/// Move the finished archive `tmp` to `out`: over nothing, or (with `force`) over a
/// regular file only — re-checked now; then sync `out`'s directory. Whether a file was
/// replaced.
pub(super) fn put_in_place(tmp: &Path, out: &Path, force: bool) -> Result<bool> {
    let replaced = match open::kind(out).map_err(|e| io_err("cannot read", out, &e))? {
        None => {
            open::rename_noreplace(tmp, out).map_err(|e| io_err("cannot write", out, &e))?;
            false
        }
        Some(open::Kind::File) if force => {
            crate::sys::fs::replace_with_generated(tmp, out)
                .map_err(|e| io_err("cannot write", out, &e))?;
            true
        }
        Some(open::Kind::File) => {
            return Err(Error::new(
                ErrorCode::Refused,
                format!("{} already exists; refusing to overwrite it", out.display()),
            ))
        }
        Some(k) => {
            return Err(Error::runtime(format!(
                "cannot write {}: {}",
                out.display(),
                io_reason(&open::refuse(k))
            )))
        }
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    open::sync_dir(parent).map_err(|e| io_err("cannot sync", parent, &e))?;
    Ok(replaced)
}

/// The archive may be written to `out`: nothing there, or a file and `--force`; anything
/// else (a folder, a link, a device) is never written through.
pub(super) fn may_write(out: &std::path::Path, force: bool) -> Result<()> {
    match open::kind(out).map_err(|e| io_err("cannot read", out, &e))? {
        None => Ok(()),
        Some(open::Kind::File) if force => Ok(()),
        Some(open::Kind::File) => Err(Error::new(
            ErrorCode::Refused,
            format!("{} already exists; refusing to overwrite it", out.display()),
        )
        .with_recovery("Pass --force to replace it, or choose another -o FILE.")),
        Some(k) => Err(Error::runtime(format!(
            "cannot write {}: {}",
            out.display(),
            io_reason(&open::refuse(k))
        ))),
    }
}
