//! `image save` / `image load`: one cached image as one `.tar.zst`, and back.
//!
//! The archive (format 1) is a zstd stream of a tar holding, in this order,
//! [`MANIFEST_NAME`] (an [`ArchiveManifest`]: format version, name, kind, and each file's
//! size and SHA-256) and then exactly the files it lists, each a regular-file entry under
//! its bare name:
//!
//! - a built image (`image build`, `<images>/<name>/`): `.fingerprint`, `vmlinux.bin`,
//!   `rootfs.ext4`;
//! - a published image by its cache name (`image pull`, `<images>/<version>/<name>/`):
//!   `rootfs.ext4.zst`, `rootfs.ext4`, `rootfs.ext4.from-sha256` and the version's kernel
//!   `vmlinux-<arch>.<elf|image>` — what `start` needs to boot it without the network.
//!
//! Save reads each file through a descriptor opened without following a symbolic link,
//! hashes it, then streams it into a temporary file beside FILE (hashing it again: a file
//! that changed meanwhile is an error), fsyncs and renames it into place — never over
//! anything but a regular file, and over one only with `force`.
//!
//! Load trusts nothing in the archive until it is checked: the manifest must come first
//! and be well-formed (the name valid as an image name, the file list exactly the kind's),
//! every entry must be a regular file under exactly the next expected name with the listed
//! size (links, devices, directories, `..` or absolute names are refused), and its SHA-256
//! must match; a published image must also match this release's published checksums. Files
//! are unpacked into a fresh staging directory in the image cache through the sparse
//! writer (zero blocks stay holes, and it stops before the disk fills), then swapped into
//! place atomically — over an existing image only with `force`. Any failure removes the
//! staging directory and changes nothing else.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{parse_image_name, Layout, Manifest, ROOTFS, ROOTFS_ZST, SIDECAR, SIDECAR_PREFIX};
use crate::core::builder::{built_image, owned_image_dir, swap_in, sweep_staging, validate_name};
use crate::core::error::{io_reason, Error, ErrorCode, Result};
use crate::core::progress::Progress;
use crate::core::prune::{cache_version, InUse};
use crate::core::Paths;
use crate::sys::{open, sparse::SparseWriter};

/// The first entry of every archive.
pub const MANIFEST_NAME: &str = "smolvm-image.json";
/// `format` in the manifest.
pub const FORMAT: &str = "smolvm-image-archive";
pub const FORMAT_VERSION: u32 = 1;
/// Bounds on the small files (the manifest, `.fingerprint`, the sidecar).
const MAX_SMALL: u64 = 64 << 10;
const FINGERPRINT: &str = ".fingerprint";
const BUILT_KERNEL: &str = "vmlinux.bin";
const CHUNK: usize = 1 << 20;

/// Which cache an image lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `image build`: `<images>/<name>/`.
    Built,
    /// `image pull`: `<images>/<version>/<name>/` and the version's kernel.
    Published,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Built => "built",
            Kind::Published => "published",
        }
    }
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// The archive's first entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveManifest {
    pub format: String,
    pub format_version: u32,
    pub name: String,
    pub kind: Kind,
    /// The image version a published image belongs to (`null` for a built image).
    pub version: Option<String>,
    pub files: Vec<FileEntry>,
    /// `smolvm <version>` that wrote it (informational).
    pub created_by: String,
}

/// What a file's bytes are doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Save's first pass: the checksum for the manifest.
    Hash,
    /// Save: into the archive.
    Pack,
    /// Load: out of the archive into the staging directory.
    Unpack,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Hash => "hash",
            Phase::Pack => "pack",
            Phase::Unpack => "unpack",
        }
    }
}

/// Progress of a save or load: bytes of one file done so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEvent {
    pub file: String,
    pub phase: Phase,
    pub bytes: u64,
    pub total: u64,
}

/// `image save -o OUTPUT NAME [--force]`.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub name: String,
    pub output: PathBuf,
    /// Replace an existing regular file at `output`.
    pub force: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SaveReport {
    pub name: String,
    pub kind: Kind,
    pub version: Option<String>,
    pub output: PathBuf,
    pub archive_bytes: u64,
    pub files: Vec<FileEntry>,
    /// A file was at `output` and was replaced (`--force`).
    pub replaced: bool,
}

/// `image load -i INPUT [--force]`.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub input: PathBuf,
    /// Replace an image of the same name.
    pub force: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub name: String,
    pub kind: Kind,
    pub version: Option<String>,
    pub image_dir: PathBuf,
    pub kernel_path: PathBuf,
    pub rootfs_path: PathBuf,
    pub files: Vec<FileEntry>,
    /// An image of that name was there and was replaced (`--force`).
    pub replaced: bool,
}

fn io_err(what: &str, p: &Path, e: &io::Error) -> Error {
    Error::runtime(format!("{what} {}: {}", p.display(), io_reason(e)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The kernel file name of a published platform: `vmlinux-<arch>.<elf|image>`.
fn published_kernel_name(name: &str) -> Option<String> {
    let (_, arch, vmm, _) = parse_image_name(name)?;
    Some(format!("vmlinux-{arch}.{}", vmm.kernel_format()))
}

/// The file names (in archive order) an image of `kind` named `name` consists of.
fn expected_files(kind: Kind, name: &str) -> Option<Vec<String>> {
    match kind {
        Kind::Built => Some(vec![FINGERPRINT.into(), BUILT_KERNEL.into(), ROOTFS.into()]),
        Kind::Published => Some(vec![
            SIDECAR.into(),
            published_kernel_name(name)?,
            ROOTFS_ZST.into(),
            ROOTFS.into(),
        ]),
    }
}

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
    validate_name(name)?;
    let root = &paths.images_root;
    if built_image(root, name).is_ok()
        && open::kind(&root.join(name)).ok() == Some(Some(open::Kind::Dir))
    {
        let dir = root.join(name);
        let files = expected_files(Kind::Built, name)
            .unwrap_or_default()
            .into_iter()
            .map(|f| (f.clone(), dir.join(f)))
            .collect();
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

/// Read `r` to its end in 1 MiB chunks, hashing each and handing it to `sink`; returns the
/// byte count and the SHA-256.
fn stream(
    mut r: impl Read,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    mut tick: impl FnMut(u64),
) -> io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        sink(&buf[..n])?;
        done += n as u64;
        tick(done);
    }
    Ok((done, hex(&h.finalize())))
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
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = crate::sys::fs::remove_generated_file(&p);
        }
    }
}

fn tar_header(name: &str, size: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
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
/// error (exit 2). On any error no file is left at `output` or beside it.
pub fn save(
    paths: &Paths,
    version: &str,
    opts: &SaveOptions,
    progress: &Progress<ArchiveEvent>,
) -> Result<SaveReport> {
    let src = locate(paths, version, &opts.name)?;
    let out = &opts.output;
    let existing = open::kind(out).map_err(|e| io_err("cannot read", out, &e))?;
    match existing {
        None => {}
        Some(open::Kind::File) if opts.force => {}
        Some(open::Kind::File) => {
            return Err(Error::new(
                ErrorCode::Refused,
                format!("{} already exists; refusing to overwrite it", out.display()),
            )
            .with_recovery("Pass --force to replace it, or choose another -o FILE."))
        }
        Some(k) => {
            return Err(Error::runtime(format!(
                "cannot write {}: {}",
                out.display(),
                io_reason(&open::refuse(k))
            )))
        }
    }

    // Open every file once (never through a symbolic link) and hash it.
    let mut opened = Vec::new();
    for (name, path) in &src.files {
        let f = open::open_read(path).map_err(|e| io_err("cannot read", path, &e))?;
        let total = f
            .metadata()
            .map_err(|e| io_err("cannot read", path, &e))?
            .len();
        let (size, sha256) = stream(
            At { file: &f, pos: 0 },
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
            inner: At { file: f, pos: 0 }.take(entry.size),
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
    // Into place: over nothing, or (with force) over a regular file only — re-checked.
    let replaced = match open::kind(out).map_err(|e| io_err("cannot read", out, &e))? {
        None => {
            open::rename_noreplace(&tmp, out).map_err(|e| io_err("cannot write", out, &e))?;
            false
        }
        Some(open::Kind::File) if opts.force => {
            crate::sys::fs::replace_with_generated(&tmp, out)
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
    guard.0 = None;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    open::sync_dir(parent).map_err(|e| io_err("cannot sync", parent, &e))?;
    Ok(SaveReport {
        name: opts.name.clone(),
        kind: src.kind,
        version: src.version,
        output: out.clone(),
        archive_bytes,
        files: manifest.files,
        replaced,
    })
}

/// A reader that hashes and counts what passes through.
struct HashRead<'a, R> {
    inner: R,
    sha: &'a mut Sha256,
    done: &'a mut u64,
    tick: &'a dyn Fn(u64),
}

impl<R: Read> Read for HashRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        *self.done += n as u64;
        if n > 0 {
            (self.tick)(*self.done);
        }
        Ok(n)
    }
}

/// `archive <FILE>: <why>`: what a bad archive reads like (exit 1).
fn bad(input: &Path, why: impl std::fmt::Display) -> Error {
    Error::runtime(format!("invalid image archive {}: {why}", input.display()))
        .with_recovery("Nothing was changed. Save the image again with 'smolvm image save'.")
}

/// A read error in the middle of the stream: a cut or corrupt archive.
fn corrupt(input: &Path, e: &io::Error) -> Error {
    bad(
        input,
        format!("it is truncated or corrupt ({})", io_reason(e)),
    )
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Check the manifest against what this smolvm accepts (format, name, kind, file list).
fn validate_manifest(input: &Path, m: &ArchiveManifest, current_version: &str) -> Result<()> {
    if m.format != FORMAT {
        return Err(bad(input, format!("unknown format {:?}", m.format)));
    }
    if m.format_version != FORMAT_VERSION {
        return Err(bad(
            input,
            format!(
                "format version {} (this smolvm reads version {FORMAT_VERSION})",
                m.format_version
            ),
        ));
    }
    validate_name(&m.name).map_err(|e| bad(input, e.message))?;
    match (m.kind, &m.version) {
        (Kind::Built, None) => {}
        (Kind::Built, Some(_)) => return Err(bad(input, "a built image carries no image version")),
        (Kind::Published, Some(v)) => {
            if cache_version(v) != Some(v.as_str()) {
                return Err(bad(input, format!("invalid image version {v:?}")));
            }
            if v != current_version {
                return Err(Error::runtime(format!(
                    "{} holds {} of image version {v}; this smolvm uses image version {current_version}",
                    input.display(),
                    m.name
                ))
                .with_recovery(format!(
                    "Load it with SMOLVM_IMAGE_VERSION={v}, or save it again from a smolvm of version {current_version}."
                )));
            }
            if parse_image_name(&m.name).is_none() {
                return Err(bad(
                    input,
                    format!("{:?} is not a published image's cache name", m.name),
                ));
            }
        }
        (Kind::Published, None) => {
            return Err(bad(input, "a published image needs its image version"))
        }
    }
    let expected = expected_files(m.kind, &m.name)
        .ok_or_else(|| bad(input, format!("{:?} is not a valid image name", m.name)))?;
    let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    if names != expected.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(bad(
            input,
            format!(
                "a {} image holds exactly {}; the manifest lists {}",
                m.kind.as_str(),
                expected.join(", "),
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    for f in &m.files {
        if !is_sha256(&f.sha256) {
            return Err(bad(
                input,
                format!("{}: invalid SHA-256 {:?}", f.name, f.sha256),
            ));
        }
        if (f.name == FINGERPRINT || f.name == SIDECAR) && f.size > MAX_SMALL {
            return Err(bad(
                input,
                format!("{}: {} bytes is too large", f.name, f.size),
            ));
        }
    }
    Ok(())
}

/// A published archive must carry exactly this release's published kernel and rootfs.
fn check_published(input: &Path, m: &ArchiveManifest, published: &Manifest) -> Result<()> {
    let Some((preset, arch, vmm, os)) = parse_image_name(&m.name) else {
        return Err(bad(input, format!("{:?} is not a cache name", m.name)));
    };
    let Some(row) = published.lookup(&preset, arch, vmm, os) else {
        return Err(bad(
            input,
            format!("{} is not an image this release publishes", m.name),
        ));
    };
    let sha = |n: &str| {
        m.files
            .iter()
            .find(|f| f.name == n)
            .map(|f| f.sha256.as_str())
    };
    let kernel = published_kernel_name(&m.name).unwrap_or_default();
    if sha(ROOTFS_ZST) != Some(row.rootfs_sha256.as_str())
        || sha(&kernel) != Some(row.kernel_sha256.as_str())
    {
        return Err(bad(
            input,
            format!(
                "its {ROOTFS_ZST} or {kernel} is not the one published for {} (manifest {})",
                m.name, published.source
            ),
        ));
    }
    Ok(())
}

/// The staging directory of one load: removed on drop unless moved into place.
struct Staging {
    parent: PathBuf,
    name: Option<std::ffi::OsString>,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(n) = self.name.take() {
            let _ = crate::sys::fs::remove_entry(&self.parent, &n);
        }
    }
}

/// `image load`: put the image in the archive `input` into the image cache.
/// Errors (exit 1): an unreadable, truncated, corrupt or tampered archive (wrong entry
/// name or type, size, checksum, extra entries), a published image of another release or
/// not matching this release's checksums, an image of that name already there without
/// `force` (or, with it, in use by a VM, or not an image smolvm made), a full disk. Nothing
/// in the cache changes on error.
pub fn load(
    paths: &Paths,
    current_version: &str,
    published: impl FnOnce() -> Result<Manifest>,
    opts: &LoadOptions,
    progress: &Progress<ArchiveEvent>,
) -> Result<LoadReport> {
    let input = &opts.input;
    let file = open::open_read(input).map_err(|e| io_err("cannot read", input, &e))?;
    let dec = zstd::Decoder::new(BufReader::with_capacity(CHUNK, file))
        .map_err(|e| corrupt(input, &e))?;
    let mut archive = tar::Archive::new(dec);
    let mut entries = archive.entries().map_err(|e| corrupt(input, &e))?;

    // The manifest, first and small.
    let mut first = match entries.next() {
        None => return Err(bad(input, "it is empty")),
        Some(e) => e.map_err(|e| corrupt(input, &e))?,
    };
    check_entry(input, &first, MANIFEST_NAME, None)?;
    if first.size() > MAX_SMALL {
        return Err(bad(input, format!("{MANIFEST_NAME} is too large")));
    }
    let mut text = Vec::new();
    first
        .read_to_end(&mut text)
        .map_err(|e| corrupt(input, &e))?;
    drop(first);
    let m: ArchiveManifest =
        serde_json::from_slice(&text).map_err(|e| bad(input, format!("{MANIFEST_NAME}: {e}")))?;
    validate_manifest(input, &m, current_version)?;
    if m.kind == Kind::Published {
        check_published(input, &m, &published()?)?;
    }

    // Where it goes, and whether it may go there — before anything is written.
    let root = &paths.images_root;
    let (parent, dir, kernel_path) = match m.kind {
        Kind::Built => {
            let dir = root.join(&m.name);
            (root.clone(), dir.clone(), dir.join(BUILT_KERNEL))
        }
        Kind::Published => {
            let layout = Layout::new(root, current_version);
            let Some((preset, arch, vmm, os)) = parse_image_name(&m.name) else {
                return Err(bad(input, format!("{:?} is not a cache name", m.name)));
            };
            (
                layout.version_dir.clone(),
                layout.image_dir(&preset, arch, vmm, os),
                layout.kernel(arch, vmm),
            )
        }
    };
    let owned = |d: &Path| -> Result<()> {
        match m.kind {
            Kind::Built => owned_image_dir(d),
            Kind::Published => match open::kind(d) {
                Ok(None | Some(open::Kind::Dir)) => Ok(()),
                Ok(Some(k)) => Err(Error::runtime(format!(
                    "{} is {}; refusing to replace it",
                    d.display(),
                    k.describe()
                ))),
                Err(e) => Err(io_err("cannot read", d, &e)),
            },
        }
    };
    let may_replace = |dir: &Path| -> Result<bool> {
        owned(dir)?;
        let exists = open::kind(dir).is_ok_and(|k| k.is_some());
        if exists && !opts.force {
            return Err(Error::new(
                ErrorCode::Refused,
                format!(
                    "an image named {} already exists at {}; refusing to replace it",
                    m.name,
                    dir.display()
                ),
            )
            .with_recovery("Pass --force to replace it."));
        }
        if exists {
            let inuse = InUse::read(&paths.existing_state_dbs());
            if let Some(Some(why)) = inuse.reasons(&[(dir.to_path_buf(), false)]).pop() {
                return Err(Error::new(
                    ErrorCode::Refused,
                    format!("{} is {why}; refusing to replace it", dir.display()),
                ));
            }
        }
        Ok(exists)
    };
    may_replace(&dir)?;

    crate::sys::sudo::create_dirs(&parent).map_err(|e| io_err("cannot create", &parent, &e))?;
    // One writer at a time: the builder's lock on the cache dir for a built image, the
    // pull's lock on the version directory (its kernel) for a published one.
    let _lock: Box<dyn std::any::Any> =
        match m.kind {
            Kind::Built => {
                let d = File::open(&parent).map_err(|e| io_err("cannot open", &parent, &e))?;
                Box::new(crate::sys::build::lock_dir(d).map_err(|e| {
                    Error::runtime(format!("cannot lock {}: {e}", parent.display()))
                })?)
            }
            Kind::Published => Box::new(super::pull::lock_dir(
                &parent,
                super::pull::Artifact::Kernel,
                &Progress::none(),
            )?),
        };
    let r = unpack(Unpack {
        input,
        m: &m,
        entries: &mut entries,
        parent: &parent,
        dir: &dir,
        kernel_path: &kernel_path,
        owned: &owned,
        may_replace: &may_replace,
        progress,
    });
    // A failed load leaves no directory of its own (the version directory it locked,
    // holding nothing but that lock), as a failed pull does.
    if r.is_err() && m.kind == Kind::Published {
        let _ = crate::sys::fs::remove_lock_only_dir(&parent);
    }
    r
}

/// What [`unpack`] works on (under the lock).
struct Unpack<'a, 'e, R: Read> {
    input: &'a Path,
    m: &'a ArchiveManifest,
    entries: &'a mut tar::Entries<'e, R>,
    parent: &'a Path,
    dir: &'a Path,
    kernel_path: &'a Path,
    owned: &'a dyn Fn(&Path) -> Result<()>,
    may_replace: &'a dyn Fn(&Path) -> Result<bool>,
    progress: &'a Progress<ArchiveEvent>,
}

/// Under the lock: the final checks, the staging directory, every file unpacked and
/// verified, the published kernel, the swap.
fn unpack<R: Read>(u: Unpack<'_, '_, R>) -> Result<LoadReport> {
    let Unpack {
        input,
        m,
        entries,
        parent,
        dir,
        kernel_path,
        owned,
        may_replace,
        progress,
    } = u;
    let (parent, dir, kernel_path) = (
        parent.to_path_buf(),
        dir.to_path_buf(),
        kernel_path.to_path_buf(),
    );
    let replaced = may_replace(&dir)?;
    let prefix = sweep_staging(&parent, &m.name);
    let staging_path = open::create_unique_dir(&parent, &prefix, 0o755)
        .map_err(|e| io_err("cannot create a staging directory in", &parent, &e))?;
    let mut staging = Staging {
        parent: parent.clone(),
        name: staging_path.file_name().map(|n| n.to_os_string()),
    };

    for f in &m.files {
        let mut entry = match entries.next() {
            None => return Err(bad(input, format!("it ends before {}", f.name))),
            Some(e) => e.map_err(|e| corrupt(input, &e))?,
        };
        check_entry(input, &entry, &f.name, Some(f.size))?;
        let out_path = staging_path.join(&f.name);
        let out = open::create_new(&out_path, 0o644)
            .map_err(|e| io_err("cannot create", &out_path, &e))?;
        let mut w = SparseWriter::new(out);
        let (n, sha) = stream(
            &mut entry,
            |b| w.write_all(b),
            |bytes| {
                progress.emit(ArchiveEvent {
                    file: f.name.clone(),
                    phase: Phase::Unpack,
                    bytes,
                    total: f.size,
                })
            },
        )
        .map_err(|e| match e.kind() {
            io::ErrorKind::StorageFull => io_err("cannot unpack into", &parent, &e),
            _ => corrupt(input, &e),
        })?;
        w.finish()
            .map_err(|e| io_err("cannot unpack into", &parent, &e))?;
        if n != f.size {
            return Err(bad(input, format!("{} is cut short", f.name)));
        }
        if sha != f.sha256 {
            return Err(bad(
                input,
                format!(
                    "SHA-256 mismatch for {}\n  expected: {}\n  actual:   {sha}",
                    f.name, f.sha256
                ),
            ));
        }
    }
    match entries.next() {
        None => {}
        Some(Ok(e)) => {
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            return Err(bad(
                input,
                format!("unexpected entry {name:?} after the image files"),
            ));
        }
        Some(Err(e)) => return Err(corrupt(input, &e)),
    }

    if m.kind == Kind::Published {
        let rootfs_sha = m
            .files
            .iter()
            .find(|f| f.name == ROOTFS_ZST)
            .map(|f| f.sha256.clone())
            .unwrap_or_default();
        let sidecar = open::read_to_string(&staging_path.join(SIDECAR))
            .map_err(|e| io_err("cannot read", &staging_path.join(SIDECAR), &e))?;
        if sidecar.trim() != format!("{SIDECAR_PREFIX}{rootfs_sha}") {
            return Err(bad(
                input,
                format!("its {SIDECAR} does not name its {ROOTFS_ZST}"),
            ));
        }
        super::pull::write_stamp(&staging_path.join(ROOTFS_ZST), &rootfs_sha)?;
        // The version's kernel, shared by its images: verified against the published
        // checksum above; put in place unless the one there already is it.
        let kname = published_kernel_name(&m.name).unwrap_or_default();
        let kernel_sha = m
            .files
            .iter()
            .find(|f| f.name == kname)
            .map(|f| f.sha256.clone())
            .unwrap_or_default();
        let staged = staging_path.join(&kname);
        if file_sha(&kernel_path).as_deref() == Some(kernel_sha.as_str()) {
            crate::sys::fs::remove_generated_file(&staged)
                .map_err(|e| io_err("cannot remove", &staged, &e))?;
        } else {
            crate::sys::fs::replace_with_generated(&staged, &kernel_path)
                .map_err(|e| io_err("cannot write", &kernel_path, &e))?;
            open::sync_dir(&parent).map_err(|e| io_err("cannot sync", &parent, &e))?;
        }
        super::pull::write_stamp(&kernel_path, &kernel_sha)?;
    }
    open::sync_dir(&staging_path).map_err(|e| io_err("cannot sync", &staging_path, &e))?;

    // Swap in; the guard removes the old image from the staging name.
    if !swap_in(&staging_path, &dir, |p: &Path| owned(p))? {
        staging.name = None;
    }
    drop(staging);
    open::sync_dir(&parent).map_err(|e| io_err("cannot sync", &parent, &e))?;
    Ok(LoadReport {
        name: m.name.clone(),
        kind: m.kind,
        version: m.version.clone(),
        rootfs_path: dir.join(ROOTFS),
        image_dir: dir,
        kernel_path,
        files: m.files.clone(),
        replaced,
    })
}

/// The SHA-256 of a regular file at `p` (never through a symbolic link).
fn file_sha(p: &Path) -> Option<String> {
    let f = open::open_read(p).ok()?;
    stream(f, |_| Ok(()), |_| {}).ok().map(|(_, s)| s)
}

/// An entry must be a regular file named exactly `name` (with `size` bytes when given).
fn check_entry<R: Read>(
    input: &Path,
    e: &tar::Entry<'_, R>,
    name: &str,
    size: Option<u64>,
) -> Result<()> {
    let path = e.path_bytes();
    let shown = String::from_utf8_lossy(&path).into_owned();
    if path.as_ref() != name.as_bytes() {
        return Err(bad(
            input,
            format!("unexpected entry {shown:?} (expected {name})"),
        ));
    }
    let t = e.header().entry_type();
    if t != tar::EntryType::Regular {
        return Err(bad(
            input,
            format!("entry {shown:?} is not a regular file ({t:?}); links and devices are refused"),
        ));
    }
    if let Some(s) = size {
        if e.size() != s {
            return Err(bad(
                input,
                format!(
                    "entry {shown:?} is {} bytes, the manifest says {s}",
                    e.size()
                ),
            ));
        }
    }
    Ok(())
}
