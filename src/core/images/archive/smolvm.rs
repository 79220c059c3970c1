//! SmolVM 0.0.36's image archive (`smolvm image save`/`load` of the Python CLI,
//! `cli/image_transfer.py`): a plain tar of `files/<path>` members followed by one
//! `manifest.json` (`schema_version` 1, `name`, `kind`, `rootfs_sidecar` and per file its
//! `encoding` — `raw` bytes or a `zstd` stream; `.zst` files always raw —, decoded `size`
//! and the SHA-256 of the stored bytes). The decompressed `rootfs.ext4` and its sidecar
//! travel only when there is no `rootfs.ext4.zst`; load makes them again.
//!
//! Here it carries published image caches only, as SmolVM names them
//! (`<preset>-v<version>-<arch>-<vmm>[-alpine]`, a directory of the images root): save
//! writes one of SmolVM's caches, or one of ours under the name SmolVM gives it; load
//! puts it where SmolVM's load does (`<images>/<name>/`).
//!
//! Load trusts nothing until it is checked, as the native loader: a first pass over the
//! tar headers finds exactly one regular `manifest.json` (at most 1 MiB) and checks it (a
//! cache name, at most 16 files, each a plain file name, a known encoding, a SHA-256);
//! every other member must be a regular file named `files/<a listed path>`, each once, and
//! every listed file must be there. The second pass unpacks into a fresh staging
//! directory through the sparse writer (a zstd member stops one byte past its declared
//! size; the disk's reserve is kept), verifies every size and SHA-256, decompresses the
//! rootfs, and swaps the directory into place — over an existing one only with `force`,
//! never over a link or a file, never one a VM uses.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    dir_or_nothing, hex, io_err, FileEntry, Kind, LoadOptions, LoadReport, SaveOptions, SaveReport,
};
use crate::core::error::{io_reason, Error, ErrorCode, Result};
use crate::core::images::catalog::flat_cache_name;
use crate::core::images::store::{swap_in, sweep_staging};
use crate::core::images::{parse_image_name, Layout, ROOTFS, ROOTFS_ZST, SIDECAR, SIDECAR_PREFIX};
use crate::core::Paths;
use crate::sys::{open, sparse::SparseWriter};

const MANIFEST: &str = "manifest.json";
const MAX_MANIFEST: u64 = 1 << 20;
const MAX_FILES: usize = 16;
const MAX_MEMBERS: usize = 64;
/// SmolVM's kernel file in its caches.
const KERNEL: &str = "vmlinux.bin";

/// Whether `head` (the file's first 512 bytes) starts a plain POSIX tar (`ustar` magic),
/// SmolVM's format; the native one is a zstd stream, anything else is left to its loader.
pub fn is_smolvm(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar".as_slice())
}

fn bad(input: &Path, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::InvalidInput,
        format!("'{}' is not a usable SmolVM image archive: {why}", input.display()),
    )
    .with_recovery("Nothing was changed. Check that the file was created by 'smolvm image save' and is not corrupted.")
}

fn plain_name(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('.') && !p.contains(['/', '\\', '\0'])
}

/// One listed file.
struct Meta {
    path: String,
    zstd: bool,
    size: u64,
    sha256: String,
}

/// The checked manifest.
fn parse_manifest(input: &Path, text: &[u8]) -> Result<(String, Vec<Meta>)> {
    let v: Value =
        serde_json::from_slice(text).map_err(|e| bad(input, format!("{MANIFEST}: {e}")))?;
    if v.get("schema_version").and_then(Value::as_i64) != Some(1) {
        return Err(bad(input, "schema_version is not 1"));
    }
    let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
    if flat_cache_name(name).is_none() {
        return Err(bad(
            input,
            format!(
                "{name:?} is not a published image cache (<preset>-v<version>-<arch>-<vmm>); \
                 this smolvm loads SmolVM archives of those only"
            ),
        ));
    }
    let files = v
        .get("files")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(bad(input, format!("it lists {} files", files.len())));
    }
    let mut out: Vec<Meta> = Vec::new();
    for f in &files {
        let path = f.get("path").and_then(Value::as_str).unwrap_or_default();
        let enc = f
            .get("encoding")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let size = f.get("size").and_then(Value::as_u64);
        let sha = f.get("sha256").and_then(Value::as_str).unwrap_or_default();
        let sha_ok = sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let enc_ok = enc == "raw" || (enc == "zstd" && !path.ends_with(".zst"));
        if !plain_name(path) || !enc_ok || size.is_none() || !sha_ok {
            return Err(bad(input, format!("invalid file entry {f}")));
        }
        if out.iter().any(|m| m.path == path) {
            return Err(bad(input, format!("{path} is listed twice")));
        }
        out.push(Meta {
            path: path.to_string(),
            zstd: enc == "zstd",
            size: size.unwrap_or(0),
            sha256: sha.to_string(),
        });
    }
    Ok((name.to_string(), out))
}

/// A reader that hashes what passes through.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// Write `r` into a new sparse file at `out`, at most `limit` bytes; the count.
fn write_sparse(r: &mut impl Read, out: &Path, limit: u64) -> io::Result<u64> {
    let f = open::create_new(out, 0o644)?;
    let mut w = SparseWriter::new(f);
    let n = io::copy(&mut r.take(limit), &mut w)?;
    w.finish()?;
    Ok(n)
}

/// `image load` of SmolVM's format (the caller saw it is not the native one).
pub fn load(paths: &Paths, opts: &LoadOptions) -> Result<LoadReport> {
    let input = &opts.input;
    let mut file = open::open_read(input).map_err(|e| io_err("cannot read", input, &e))?;
    let damaged = |e: io::Error| bad(input, format!("it is damaged ({})", io_reason(&e)));

    // First pass: the headers, and the manifest.
    let mut members: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut manifest: Option<Vec<u8>> = None;
    {
        let mut ar = tar::Archive::new(&file);
        for e in ar.entries_with_seek().map_err(damaged)? {
            let mut e = e.map_err(damaged)?;
            if members.len() >= MAX_MEMBERS {
                return Err(bad(input, "it has too many entries"));
            }
            let name = e.path_bytes().into_owned();
            let regular = e.header().entry_type() == tar::EntryType::Regular;
            if name == MANIFEST.as_bytes() {
                if !regular || e.size() > MAX_MANIFEST || manifest.is_some() {
                    return Err(bad(
                        input,
                        "its manifest.json is not one small regular file",
                    ));
                }
                let mut t = Vec::new();
                e.read_to_end(&mut t).map_err(damaged)?;
                manifest = Some(t);
            } else {
                members.push((name, regular));
            }
        }
    }
    let text = manifest.ok_or_else(|| bad(input, "it has no manifest.json"))?;
    let (name, metas) = parse_manifest(input, &text)?;
    let mut seen = vec![false; metas.len()];
    for (m, regular) in &members {
        let i = metas
            .iter()
            .position(|x| format!("files/{}", x.path).as_bytes() == m.as_slice());
        match i {
            Some(i) if *regular && !seen[i] => seen[i] = true,
            _ => {
                return Err(bad(
                    input,
                    format!("unexpected entry {:?}", String::from_utf8_lossy(m)),
                ))
            }
        }
    }
    if seen.contains(&false) {
        return Err(bad(input, "it is incomplete"));
    }

    let root = &paths.images_root;
    let dir = root.join(&name);
    let may_replace = || -> Result<bool> {
        dir_or_nothing(&dir)?;
        let exists = open::kind(&dir).is_ok_and(|k| k.is_some());
        if exists && !opts.force {
            return Err(
                Error::runtime(format!("'{name}' already exists.")).with_recovery(format!(
                    "Run 'smolvm image load -i {} --force' to replace it.",
                    input.display()
                )),
            );
        }
        if exists {
            super::load::refuse_in_use(paths, &dir)?;
        }
        Ok(exists)
    };
    may_replace()?;
    crate::sys::sudo::create_dirs(root).map_err(|e| io_err("cannot create", root, &e))?;
    let d = File::open(root).map_err(|e| io_err("cannot open", root, &e))?;
    let _lock = crate::sys::build::lock_dir(d)
        .map_err(|e| Error::runtime(format!("cannot lock {}: {e}", root.display())))?;
    let replaced = may_replace()?;
    let prefix = sweep_staging(root, &name);
    let staging = open::create_unique_dir(root, &prefix, 0o755)
        .map_err(|e| io_err("cannot create a staging directory in", root, &e))?;
    let staging_name = staging.file_name().map(|n| n.to_os_string());
    let cleanup = |keep: bool| {
        if !keep {
            if let Some(n) = &staging_name {
                let _ = crate::sys::fs::remove_entry(root, n);
            }
        }
    };
    let r = (|| -> Result<bool> {
        file.rewind().map_err(damaged)?;
        let mut ar = tar::Archive::new(&file);
        let mut zst_sha = None;
        for e in ar.entries_with_seek().map_err(damaged)? {
            let e = e.map_err(damaged)?;
            if e.path_bytes().as_ref() == MANIFEST.as_bytes() {
                continue;
            }
            let key = e.path_bytes().into_owned();
            let Some(m) = metas
                .iter()
                .find(|x| format!("files/{}", x.path).as_bytes() == key.as_slice())
            else {
                return Err(bad(input, "it changed while it was read"));
            };
            let out = staging.join(&m.path);
            let mut h = Hashing {
                inner: e,
                sha: Sha256::new(),
                n: 0,
            };
            let written = if m.zstd {
                let mut dec = zstd::stream::read::Decoder::new(&mut h).map_err(damaged)?;
                let n = write_sparse(&mut dec, &out, m.size.saturating_add(1));
                drop(dec);
                io::copy(&mut h, &mut io::sink()).map_err(damaged)?;
                n
            } else {
                write_sparse(&mut h, &out, m.size.saturating_add(1))
            }
            .map_err(|e| match e.kind() {
                io::ErrorKind::StorageFull | io::ErrorKind::PermissionDenied => {
                    io_err("cannot unpack into", root, &e)
                }
                _ => bad(input, format!("{} is damaged ({})", m.path, io_reason(&e))),
            })?;
            let sha = hex(&h.sha.finalize());
            if written != m.size || sha != m.sha256 {
                return Err(bad(input, format!("{} failed its integrity check", m.path)));
            }
            if m.path == ROOTFS_ZST {
                zst_sha = Some(sha);
            }
        }
        // What save left out: the decompressed rootfs and its sidecar.
        if let Some(sha) = zst_sha {
            if !metas.iter().any(|m| m.path == ROOTFS) {
                let zst = staging.join(ROOTFS_ZST);
                let f = open::open_read(&zst).map_err(|e| io_err("cannot read", &zst, &e))?;
                let mut dec = zstd::stream::read::Decoder::new(f).map_err(damaged)?;
                write_sparse(&mut dec, &staging.join(ROOTFS), u64::MAX).map_err(|e| {
                    match e.kind() {
                        io::ErrorKind::StorageFull => io_err("cannot unpack into", root, &e),
                        _ => bad(
                            input,
                            format!("{ROOTFS_ZST} is damaged ({})", io_reason(&e)),
                        ),
                    }
                })?;
                let side = staging.join(SIDECAR);
                open::write_atomic(&side, format!("{SIDECAR_PREFIX}{sha}").as_bytes(), 0o644)
                    .map_err(|e| io_err("cannot write", &side, &e))?;
            }
        }
        open::sync_dir(&staging).map_err(|e| io_err("cannot sync", &staging, &e))?;
        swap_in(&staging, &dir, dir_or_nothing)
    })();
    match r {
        Ok(old_at_staging) => cleanup(!old_at_staging),
        Err(e) => {
            cleanup(false);
            return Err(e);
        }
    }
    open::sync_dir(root).map_err(|e| io_err("cannot sync", root, &e))?;
    let version = flat_cache_name(&name).map(|(v, _)| v);
    Ok(LoadReport {
        kernel_path: dir.join(KERNEL),
        rootfs_path: dir.join(ROOTFS),
        image_dir: dir,
        name,
        kind: Kind::Published,
        version,
        files: metas
            .into_iter()
            .map(|m| FileEntry {
                name: m.path,
                size: m.size,
                sha256: m.sha256,
            })
            .collect(),
        replaced,
        format: super::Format::Smolvm,
    })
}

/// What SmolVM's save would put in the archive, `(archive path, file)`: one of SmolVM's
/// caches (its regular files, not hidden ones; not the decompressed rootfs and sidecar
/// when the `.zst` is there), or one of our published caches under SmolVM's name.
fn sources(paths: &Paths, version: &str, name: &str) -> Result<(String, Vec<(String, PathBuf)>)> {
    let root = &paths.images_root;
    let none = || {
        Error::runtime(format!("No cached image named '{name}'."))
            .with_recovery("Run 'smolvm image list' to see cached images.")
    };
    let check_dir = |d: &Path| match open::kind(d) {
        Ok(Some(open::Kind::Dir)) => Ok(()),
        Ok(Some(k)) => Err(Error::runtime(format!(
            "{} is {}, not an image directory; refusing to read it",
            d.display(),
            k.describe()
        ))),
        _ => Err(none()),
    };
    if flat_cache_name(name).is_some() {
        let dir = root.join(name);
        check_dir(&dir)?;
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| io_err("cannot read", &dir, &e))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| plain_name(n))
            .filter(|n| open::kind(&dir.join(n)).ok() == Some(Some(open::Kind::File)))
            .collect();
        files.sort();
        if files.iter().any(|f| f == ROOTFS_ZST) {
            files.retain(|f| f != ROOTFS && f != SIDECAR);
        }
        let files = files
            .into_iter()
            .map(|f| (f.clone(), dir.join(f)))
            .collect();
        return Ok((name.to_string(), files));
    }
    let Some((preset, arch, vmm, os)) = parse_image_name(name) else {
        return Err(Error::usage(format!(
            "SmolVM's archive format carries published image caches; '{name}' is not one"
        ))
        .with_recovery("Built images travel in smolvm's own format: leave out --format."));
    };
    let layout = Layout::new(root, version);
    let dir = layout.image_dir(&preset, arch, vmm, os);
    check_dir(&dir)?;
    let flat = match name.strip_suffix("-alpine") {
        Some(_) => format!("{preset}-v{version}-{arch}-{vmm}-alpine"),
        None => format!("{preset}-v{version}-{arch}-{vmm}"),
    };
    Ok((
        flat,
        vec![
            (ROOTFS_ZST.to_string(), dir.join(ROOTFS_ZST)),
            (KERNEL.to_string(), layout.kernel(arch, vmm)),
        ],
    ))
}

fn ustar(name: &str, size: u64) -> io::Result<tar::Header> {
    super::save::file_header(tar::Header::new_ustar(), name, size)
}

/// `image save --format smolvm`: SmolVM's archive of a published cache at `opts.output`
/// (written beside it and renamed into place, as the native save); `stop` ends it between
/// two chunks.
pub fn save(
    paths: &Paths,
    version: &str,
    opts: &SaveOptions,
    stop: &dyn Fn() -> bool,
) -> Result<SaveReport> {
    let (name, files) = sources(paths, version, &opts.name)?;
    let out = &opts.output;
    super::save::may_write(out, opts.force)?;
    let (file, tmp) = open::create_temp_beside(out, ".partial", 0o644)
        .map_err(|e| io_err("cannot create a temporary file beside", out, &e))?;
    let mut guard = super::save::TempFile(Some(tmp.clone()));
    let werr = |e: io::Error| io_err("cannot write", &tmp, &e);
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    let mut listed = Vec::new();
    let mut entries = Vec::new();
    let mut sidecar = None;
    for (path, src) in &files {
        let f = open::open_read(src).map_err(|e| io_err("cannot read", src, &e))?;
        let size = f
            .metadata()
            .map_err(|e| io_err("cannot read", src, &e))?
            .len();
        let member = format!("files/{path}");
        let (enc, sha, size) = if path.ends_with(".zst") {
            let mut h = Hashing {
                inner: super::Stoppable { inner: &f, stop }.take(size),
                sha: Sha256::new(),
                n: 0,
            };
            tar.append(&ustar(&member, size).map_err(werr)?, &mut h)
                .map_err(werr)?;
            if h.n != size {
                return Err(Error::runtime(format!(
                    "{} changed while it was being saved; nothing was written",
                    src.display()
                )));
            }
            let sha = hex(&h.sha.finalize());
            if path == ROOTFS_ZST {
                sidecar = Some(format!("{SIDECAR_PREFIX}{sha}"));
            }
            ("raw", sha, size)
        } else {
            let (mut scratch, spath) = open::create_temp_beside(out, ".member", 0o600)
                .map_err(|e| io_err("cannot create a temporary file beside", out, &e))?;
            let _scratch_guard = super::save::TempFile(Some(spath.clone()));
            // The size recorded is what was read and compressed (SmolVM's rule).
            let mut counted = Hashing {
                inner: super::Stoppable { inner: &f, stop }.take(size),
                sha: Sha256::new(),
                n: 0,
            };
            zstd::stream::copy_encode(&mut counted, &mut scratch, 3).map_err(werr)?;
            let size = counted.n;
            scratch.rewind().map_err(werr)?;
            let zlen = scratch.metadata().map_err(werr)?.len();
            let mut h = Hashing {
                inner: super::Stoppable {
                    inner: &scratch,
                    stop,
                }
                .take(zlen),
                sha: Sha256::new(),
                n: 0,
            };
            tar.append(&ustar(&member, zlen).map_err(werr)?, &mut h)
                .map_err(werr)?;
            ("zstd", hex(&h.sha.finalize()), size)
        };
        listed.push(json!({"path": path, "encoding": enc, "size": size, "sha256": sha}));
        entries.push(FileEntry {
            name: path.clone(),
            size,
            sha256: sha,
        });
    }
    let manifest = json!({
        "schema_version": 1,
        "saved_by": crate::core::version::CRATE_VERSION,
        "created": crate::sys::time::iso_now(),
        "name": name,
        "kind": "image",
        "rootfs_sidecar": sidecar,
        "files": listed,
    });
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::runtime(format!("cannot encode the archive manifest: {e}")))?;
    tar.append(
        &ustar(MANIFEST, text.len() as u64).map_err(werr)?,
        &text[..],
    )
    .map_err(werr)?;
    let mut w = tar.into_inner().map_err(werr)?;
    w.flush().map_err(werr)?;
    let file = w.into_inner().map_err(|e| werr(e.into_error()))?;
    file.sync_all().map_err(werr)?;
    let archive_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    let replaced = super::save::put_in_place(&tmp, out, opts.force)?;
    guard.0 = None;
    Ok(SaveReport {
        name,
        kind: Kind::Published,
        version: flat_cache_name(&opts.name).map_or(Some(version.to_string()), |(v, _)| Some(v)),
        output: out.clone(),
        archive_bytes,
        files: entries,
        replaced,
        format: super::Format::Smolvm,
    })
}
