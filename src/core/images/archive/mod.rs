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

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{parse_image_name, ROOTFS, ROOTFS_ZST, SIDECAR};
use crate::core::error::{io_err, Error};
use crate::sys::open::hex;

mod load;
mod save;
pub mod smolvm;

pub use load::load;
pub use save::save;

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

text_enum! {
    /// Which cache an image lives in.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Kind {
        /// `image build`: `<images>/<name>/`.
        Built = "built",
        /// `image pull`: `<images>/<version>/<name>/` and the version's kernel.
        Published = "published",
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

impl ArchiveManifest {
    /// The SHA-256 the manifest gives the file `name`.
    pub fn sha256_of(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.sha256.as_str())
    }
}

text_enum! {
    /// What a file's bytes are doing now.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Phase {
        /// Save's first pass: the checksum for the manifest.
        Hash = "hash",
        /// Save: into the archive.
        Pack = "pack",
        /// Load: out of the archive into the staging directory.
        Unpack = "unpack",
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

/// Which archive format `image save` writes (`load` reads both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// smolvm's `.tar.zst` ([`MANIFEST_NAME`] first).
    #[default]
    Native,
    /// SmolVM 0.0.36's plain tar ([`smolvm`]), for published image caches.
    Smolvm,
}

/// `image save -o OUTPUT NAME [--force] [--format F]`.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub name: String,
    pub output: PathBuf,
    /// Replace an existing regular file at `output`.
    pub force: bool,
    /// SmolVM's cache names (`codex-v0.0.36-amd64-qemu`) are always saved in SmolVM's
    /// format, the only one that carries them.
    pub format: Format,
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
    pub format: Format,
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
    /// The archive's format.
    pub format: Format,
}

impl SaveReport {
    /// The line both faces end a save with: `Saved KIND image NAME to PATH (SIZE)`, paths
    /// under `home` shown from `~`.
    pub fn summary(&self, home: &Path) -> String {
        format!(
            "Saved {} image {} to {} ({})",
            self.kind.as_str(),
            self.name,
            crate::sys::paths::display_path(&self.output, home),
            crate::core::units::format_size(self.archive_bytes)
        )
    }
}

impl LoadReport {
    /// The line both faces end a load with: `Loaded KIND image NAME[ (replaced)] into
    /// DIR`, paths under `home` shown from `~`.
    pub fn summary(&self, home: &Path) -> String {
        format!(
            "Loaded {} image {}{} into {}",
            self.kind.as_str(),
            self.name,
            if self.replaced { " (replaced)" } else { "" },
            crate::sys::paths::display_path(&self.image_dir, home)
        )
    }

    /// What the loaded image's directory takes on disk (allocated blocks: SmolVM's
    /// `size_bytes`).
    pub fn size_on_disk(&self) -> u64 {
        crate::sys::fs::disk_usage(&self.image_dir, &crate::sys::fs::HardLinks::default())
    }
}

/// SmolVM's `excluded_decompressed_rootfs`: the archive carries the compressed rootfs and
/// not the decompressed one (rebuilt from it on load).
pub fn excludes_decompressed_rootfs(files: &[FileEntry]) -> bool {
    let has = |n: &str| files.iter().any(|f| f.name == n);
    has(ROOTFS_ZST) && !has(ROOTFS)
}

/// A cache directory a load may replace: nothing there yet, or a directory (never a
/// link or a file in its place).
fn dir_or_nothing(d: &Path) -> crate::core::error::Result<()> {
    match crate::sys::open::kind(d) {
        Ok(None | Some(crate::sys::open::Kind::Dir)) => Ok(()),
        Ok(Some(k)) => Err(Error::runtime(format!(
            "{} is {}; refusing to replace it",
            d.display(),
            k.describe()
        ))),
        Err(e) => Err(io_err("cannot read", d, &e)),
    }
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

/// A reader that fails once `stop` says so (a caught Ctrl-C): a save stops between two
/// chunks, and its temporary file goes with the error.
struct Stoppable<'a, R> {
    inner: R,
    stop: &'a dyn Fn() -> bool,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if (self.stop)() {
            // Not `Interrupted`, which a copy loop retries.
            return Err(io::Error::other("stopped by a signal"));
        }
        self.inner.read(buf)
    }
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
