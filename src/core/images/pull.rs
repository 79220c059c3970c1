//! `pull`: make one published image ready to boot, in one pass.
//!
//! The body is streamed once: each chunk is hashed (SHA-256), appended to a temp file in
//! the cache directory and, for the rootfs, handed to a zstd decoder on another thread that
//! writes a sparse `.ext4` temp file. Only when the SHA-256 matches are the temp files
//! fsynced and renamed into place (the `.zst`, then the `.ext4`), and only then is the
//! `sparse-v1:` sidecar written (atomically). The old sidecar is removed before a new
//! `.ext4` replaces the old one, so an `.ext4` is trusted only with a sidecar naming the
//! manifest's checksum. A `kill -9` at any point leaves the old good files or none, plus
//! temp files the next pull removes. A flock per directory makes concurrent pulls of the
//! same image download once: the second waits, then finds the cache complete.
//!
//! A cached file is re-hashed only when its size or mtime differs from what was recorded
//! when it was last verified (`.<file>.verified`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::sys::lock::FileLock;
use sha2::{Digest, Sha256};

use super::{Image, Layout, Manifest, ROOTFS, ROOTFS_ZST, SIDECAR, SIDECAR_PREFIX};
use crate::core::error::{io_reason, path_err, Error, ErrorCode, Result};
use crate::core::progress::Progress;
use crate::core::version::image_version;
use crate::core::Env;
use crate::sys::http::{FetchError, Http, HttpConfig, Sink, Url};
use crate::sys::open;
use crate::sys::open::hex;
use crate::sys::sparse::ZstdSparse;

text_enum! {
    /// Which file an event is about.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Artifact {
        Kernel = "kernel",
        Rootfs = "rootfs",
    }
}

text_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Phase {
        Download = "download",
        Verify = "verify",
        Decompress = "decompress",
    }
}

/// Progress of a pull, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// Another process holds the lock on this file's directory; waiting for it.
    Waiting { artifact: Artifact },
    /// Bytes done so far in a phase (`total` when known).
    Progress {
        artifact: Artifact,
        phase: Phase,
        bytes: u64,
        total: Option<u64>,
    },
    /// A download attempt failed and will be retried.
    Retry {
        artifact: Artifact,
        attempt: u32,
        reason: String,
    },
    /// The file was already in the cache and valid.
    Cached { artifact: Artifact },
    /// The file is in place.
    Ready { artifact: Artifact, path: PathBuf },
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    pub preset: String,
    pub arch: super::Arch,
    pub vmm: super::Vmm,
    pub os: super::Os,
    pub version: String,
    pub release: String,
    pub name: String,
    pub image_dir: PathBuf,
    pub kernel_path: PathBuf,
    pub rootfs_path: PathBuf,
    /// Bytes received over the network (or read from `file:` URLs).
    pub downloaded_bytes: u64,
    /// Nothing was downloaded or decompressed.
    pub already_cached: bool,
    /// Disk usage of the image directory plus the kernel.
    pub size_bytes: u64,
}

/// A published image `pull --all` could not fetch.
#[derive(Debug, Clone)]
pub struct PullFailure {
    pub preset: String,
    pub os: super::Os,
    pub name: String,
    pub error: Error,
}

/// What `pull --all` did, in manifest order.
#[derive(Debug, Clone)]
pub struct PullAllReport {
    pub arch: super::Arch,
    pub vmm: super::Vmm,
    pub pulled: Vec<PullReport>,
    pub failed: Vec<PullFailure>,
}

impl PullAllReport {
    /// The partial failure to report when some pulls failed.
    pub fn error(&self) -> Option<Error> {
        let total = self.pulled.len() + self.failed.len();
        (!self.failed.is_empty()).then(|| {
            Error::new(
                crate::core::ErrorCode::PartialFailure,
                format!("Could not pull {} of {total} images.", self.failed.len()),
            )
            .with_recovery("Check the network connection and disk space, then retry.")
        })
    }
}

/// `image pull --all`: every (preset, os) the manifest publishes for the target's
/// arch/VMM (only `os` when given), one after the other; a failure does not stop the
/// others. `progress` gives each image's sink (by image name); `done` hears each result
/// as it lands. No published image for the platform is an error.
pub fn pull_all(
    opts: &PullOptions,
    manifest: &Manifest,
    target: &super::Target,
    os: Option<super::Os>,
    progress: impl Fn(&str) -> Progress<PullEvent>,
    mut done: impl FnMut(std::result::Result<&PullReport, &PullFailure>),
) -> Result<PullAllReport> {
    let targets: Vec<&Image> = manifest
        .images
        .iter()
        .filter(|i| i.arch == target.arch && i.vmm == target.vmm && os.is_none_or(|o| o == i.os))
        .collect();
    if targets.is_empty() {
        return Err(Error::runtime(format!(
            "No published images for {}/{}{}",
            target.arch,
            target.vmm,
            os.map(|o| format!(" ({o})")).unwrap_or_default()
        )));
    }
    let mut report = PullAllReport {
        arch: target.arch,
        vmm: target.vmm,
        pulled: Vec::new(),
        failed: Vec::new(),
    };
    for img in targets {
        let name = super::image_name(&img.preset, img.arch, img.vmm, img.os);
        match pull(opts, img, &progress(&name)) {
            Ok(r) => {
                done(Ok(&r));
                report.pulled.push(r);
            }
            // Cancelled: the rest are not started.
            Err(error) if crate::core::job::is_cancel(&error) => break,
            Err(error) => {
                let f = PullFailure {
                    preset: img.preset.clone(),
                    os: img.os,
                    name,
                    error,
                };
                done(Err(&f));
                report.failed.push(f);
            }
        }
    }
    Ok(report)
}

/// Where to put things and how to fetch them.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub layout: Layout,
    pub http: HttpConfig,
    pub release: String,
}

/// The download settings from the environment (`SMOLVM_HTTP_*`); a malformed one is a
/// usage error naming it.
pub fn http_config(env: &crate::core::Env) -> Result<HttpConfig> {
    Ok(HttpConfig::from_env(env)?)
}

/// The current image version's layout under `images_root` and the download settings.
fn layout_and_http(env: &Env, images_root: &Path) -> Result<(Layout, HttpConfig)> {
    let layout = Layout::new(images_root, &image_version(env)?);
    Ok((layout, http_config(env)?))
}

impl PullOptions {
    /// The options for pulling what `manifest` publishes into `images_root`.
    pub fn for_manifest(env: &Env, images_root: &Path, manifest: &Manifest) -> Result<Self> {
        let (layout, http) = layout_and_http(env, images_root)?;
        Ok(PullOptions {
            layout,
            http,
            release: manifest.release.clone(),
        })
    }
}

/// The published image a pull of `name` means, the one rule for `image pull NAME`, the
/// dashboard's pull and its palette: a preset, by its name or an alias (the user's presets
/// included), on this host's platform with `--arch`/`--vmm`/`--os` over it, as `start`
/// resolves it; or a full image name as the Images pane lists it (`codex-amd64-qemu`,
/// `…-alpine`). A preset the manifest publishes nothing under is SmolVM's
/// `invalid_input`, naming those it does; a platform it lacks, the "build one" error.
pub fn resolve<'m>(
    presets: &crate::core::presets::Registry,
    manifest: &'m Manifest,
    name: &str,
    asked: super::Platform,
    host: &crate::core::host::Host,
) -> Result<(super::Target, &'m Image)> {
    let super::Platform { arch, vmm, os } = asked;
    let target = match super::parse_image_name(name) {
        Some((preset, a, v, o)) if presets.find(name).is_none() => super::Target {
            preset,
            arch: arch.unwrap_or(a),
            vmm: vmm.unwrap_or(v),
            os: os.unwrap_or(o),
        },
        _ => super::Target::resolve(presets, name, asked, host)?,
    };
    if !manifest.images.iter().any(|i| i.preset == target.preset) {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            format!(
                "'{name}' is not a published image. Choose one of: {}.",
                manifest.presets().join(", ")
            ),
        ));
    }
    let image = target.lookup(manifest)?;
    Ok((target, image))
}

/// What `smolvm image pull` and the dashboard's pulls need: the current version's layout
/// under `images_root`, the download settings and the manifest in force; refused when
/// published images are turned off (`SMOLVM_USE_PUBLISHED=0`).
pub fn setup(env: &Env, images_root: &Path) -> Result<(Manifest, PullOptions)> {
    let (layout, http) = layout_and_http(env, images_root)?;
    if !super::published_enabled(env) {
        return Err(Error::new(
            ErrorCode::Refused,
            "published images are turned off (SMOLVM_USE_PUBLISHED=0)",
        )
        .with_recovery("Unset SMOLVM_USE_PUBLISHED to pull published images."));
    }
    let manifest = Manifest::load(env)?;
    let opts = PullOptions {
        layout,
        http,
        release: manifest.release.clone(),
    };
    Ok((manifest, opts))
}

/// The image whose kernel a build ships for `arch`/`vmm`: the manifest's Ubuntu row when
/// there is one, else its first row for them.
pub fn kernel_image(manifest: &Manifest, arch: super::Arch, vmm: super::Vmm) -> Option<&Image> {
    let mut rows: Vec<&Image> = manifest
        .images
        .iter()
        .filter(|i| i.arch == arch && i.vmm == vmm)
        .collect();
    rows.sort_by_key(|i| i.os != super::Os::Ubuntu);
    rows.first().copied()
}

/// Pull one image: the kernel its VMM boots and its rootfs, verified and decompressed.
pub fn pull(
    opts: &PullOptions,
    image: &Image,
    progress: &Progress<PullEvent>,
) -> Result<PullReport> {
    let layout = &opts.layout;
    let name = super::image_name(&image.preset, image.arch, image.vmm, image.os);
    let dir = layout.image_dir(&image.preset, image.arch, image.vmm, image.os);
    let kernel_path = layout.kernel(image.arch, image.vmm);
    let http = Http::new(opts.http.clone()).map_err(|e| Error::runtime(e.to_string()))?;
    let mut stats = Stats::default();

    // A failed pull leaves no directory of its own behind (not even an empty one with its
    // lock, which `image ls` and the Images pane would list): each is removed, under its
    // lock, when it holds nothing else.
    fetch_kernel(&http, layout, image, &kernel_path, progress, &mut stats)?;
    {
        let _lock = lock_dir(&dir, Artifact::Rootfs, progress)?;
        clean_partials(&dir);
        if let Err(e) = ensure_rootfs(&http, image, &dir, progress, &mut stats) {
            let _ = crate::sys::fs::remove_lock_only_dir(&dir);
            return Err(e);
        }
    }
    let links = crate::sys::fs::HardLinks::default();
    let size_bytes =
        crate::sys::fs::disk_usage(&dir, &links) + crate::sys::fs::disk_usage(&kernel_path, &links);
    Ok(PullReport {
        preset: image.preset.clone(),
        arch: image.arch,
        vmm: image.vmm,
        os: image.os,
        version: layout.version.clone(),
        release: opts.release.clone(),
        name,
        kernel_path,
        rootfs_path: dir.join(ROOTFS),
        image_dir: dir,
        downloaded_bytes: stats.downloaded,
        already_cached: !stats.changed,
        size_bytes,
    })
}

/// Pull only the kernel an image boots (the image builder ships it with custom images);
/// returns its path in the cache.
pub fn pull_kernel(
    opts: &PullOptions,
    image: &Image,
    progress: &Progress<PullEvent>,
) -> Result<PathBuf> {
    let layout = &opts.layout;
    let kernel_path = layout.kernel(image.arch, image.vmm);
    let http = Http::new(opts.http.clone()).map_err(|e| Error::runtime(e.to_string()))?;
    fetch_kernel(
        &http,
        layout,
        image,
        &kernel_path,
        progress,
        &mut Stats::default(),
    )?;
    Ok(kernel_path)
}

/// The kernel into `kernel_path`, under the version directory's lock; a failure leaves no
/// lock-only version directory behind.
fn fetch_kernel(
    http: &Http,
    layout: &Layout,
    image: &Image,
    kernel_path: &Path,
    progress: &Progress<PullEvent>,
    stats: &mut Stats,
) -> Result<()> {
    let _lock = lock_dir(&layout.version_dir, Artifact::Kernel, progress)?;
    clean_partials(&layout.version_dir);
    if let Err(e) = ensure_kernel(http, image, kernel_path, progress, stats) {
        let _ = crate::sys::fs::remove_lock_only_dir(&layout.version_dir);
        return Err(e);
    }
    Ok(())
}

#[derive(Default)]
struct Stats {
    downloaded: u64,
    changed: bool,
}

fn mkdir(dir: &Path) -> Result<()> {
    crate::sys::sudo::create_dirs(dir).map_err(|e| {
        Error::runtime(format!(
            "cannot create {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })
}

/// Create `dir` and take an exclusive flock on `<dir>/.lock`, waiting (and saying so) if
/// another process has it. A failed pull removes its directory and lock under the lock
/// (`remove_lock_only_dir`): a waiter then holds a file no longer at the path, so it
/// checks, after locking, that its file is the one the path names, and starts over if not.
pub(super) fn lock_dir(
    dir: &Path,
    artifact: Artifact,
    progress: &Progress<PullEvent>,
) -> Result<FileLock> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(".lock");
    let mut said = false;
    loop {
        mkdir(dir)?;
        let lock_file =
            open::open_lock(&path, 0o644).map_err(|e| path_err("open lock", &path, &e))?;
        let locked = match crate::sys::lock::try_lock_file(lock_file) {
            Ok(Ok(l)) => l,
            Ok(Err(f)) => {
                if !said {
                    progress.emit(PullEvent::Waiting { artifact });
                    said = true;
                }
                crate::sys::lock::lock_file(f).map_err(|e| path_err("lock", &path, &e))?
            }
            Err(e) => return Err(path_err("lock", &path, &e)),
        };
        let held = locked.metadata().map_err(|e| path_err("lock", &path, &e))?;
        match std::fs::symlink_metadata(&path) {
            Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => return Ok(locked),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(path_err("lock", &path, &e)),
        }
    }
}

/// Remove temp files a killed pull left behind (we hold the directory's lock, so nobody
/// is writing them).
fn clean_partials(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with('.') && (n.ends_with(".partial") || n.ends_with(".tmp")) {
            let _ = crate::sys::fs::remove_generated_file(&e.path());
        }
    }
}

fn hidden(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}{suffix}"))
}

/// A new temp file beside `path`: `.<name>.<pid>-<random>.partial`, created with
/// `O_EXCL|O_NOFOLLOW` (never an existing file or a symbolic link).
fn partial(path: &Path) -> Result<(File, PathBuf)> {
    open::create_temp_beside(path, ".partial", 0o644)
        .map_err(|e| path_err("create a temp file for", path, &e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    open::sync_dir(dir).map_err(|e| path_err("sync", dir, &e))
}

/// Write `text` to `path` atomically: a new temp file, fsync, rename (a symbolic link at
/// `path` is replaced, never followed), fsync the directory.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    open::write_atomic(path, text.as_bytes(), 0o644).map_err(|e| path_err("write", path, &e))
}

/// `.<file>.verified`: the checksum a file had, and its size and mtime then.
fn stamp_text(sha: &str, meta: &std::fs::Metadata) -> String {
    format!(
        "sha256={sha}\nsize={}\nmtime_ns={}\n",
        meta.len(),
        meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128
    )
}

pub(super) fn write_stamp(path: &Path, sha: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| path_err("stat", path, &e))?;
    write_atomic(&hidden(path, ".verified"), &stamp_text(sha, &meta))
}

/// Whether `path` holds exactly the bytes with checksum `sha`: trusted from its stamp
/// when size and mtime are unchanged, else re-hashed (and re-stamped when it matches).
fn cached_and_valid(
    path: &Path,
    sha: &str,
    artifact: Artifact,
    progress: &Progress<PullEvent>,
) -> Result<bool> {
    // Only a regular file counts (a symbolic link in the cache is never trusted).
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(false);
    };
    if !meta.is_file() {
        return Ok(false);
    }
    let stamp = hidden(path, ".verified");
    if open::read_to_string(&stamp).is_ok_and(|s| s == stamp_text(sha, &meta)) {
        return Ok(true);
    }
    let total = meta.len();
    let mut f = open::open_read(path).map_err(|e| path_err("read", path, &e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| path_err("read", path, &e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        done += n as u64;
        progress.emit(PullEvent::Progress {
            artifact,
            phase: Phase::Verify,
            bytes: done,
            total: Some(total),
        });
    }
    if hex(&h.finalize()) != sha {
        return Ok(false);
    }
    write_stamp(path, sha)?;
    Ok(true)
}

fn ensure_kernel(
    http: &Http,
    image: &Image,
    dest: &Path,
    progress: &Progress<PullEvent>,
    stats: &mut Stats,
) -> Result<()> {
    let artifact = Artifact::Kernel;
    if cached_and_valid(dest, &image.kernel_sha256, artifact, progress)? {
        progress.emit(PullEvent::Cached { artifact });
        return Ok(());
    }
    stats.changed = true;
    let (file, tmp) = partial(dest)?;
    let r = download_verified(
        http,
        &image.kernel_url,
        &image.kernel_sha256,
        (file, &tmp),
        None,
        artifact,
        progress,
        stats,
    )
    .and_then(|_| put_verified(&tmp, dest, &image.kernel_sha256));
    if r.is_err() {
        let _ = crate::sys::fs::remove_generated_file(&tmp);
    }
    r?;
    progress.emit(PullEvent::Ready {
        artifact,
        path: dest.to_path_buf(),
    });
    Ok(())
}

fn ensure_rootfs(
    http: &Http,
    image: &Image,
    dir: &Path,
    progress: &Progress<PullEvent>,
    stats: &mut Stats,
) -> Result<()> {
    let artifact = Artifact::Rootfs;
    let zst = dir.join(ROOTFS_ZST);
    let ext4 = dir.join(ROOTFS);
    let sidecar = dir.join(SIDECAR);
    let expected = format!("{SIDECAR_PREFIX}{}", image.rootfs_sha256);
    let zst_ok = cached_and_valid(&zst, &image.rootfs_sha256, artifact, progress)?;
    let ext4_ok = open::kind(&ext4).is_ok_and(|k| k == Some(open::Kind::File))
        && open::read_to_string(&sidecar).is_ok_and(|s| s.trim() == expected);
    if zst_ok && ext4_ok {
        progress.emit(PullEvent::Cached { artifact });
        return Ok(());
    }
    stats.changed = true;
    let (ext4_file, ext4_tmp) = partial(&ext4)?;
    let mut zst_tmp: Option<PathBuf> = None;
    let r = (|| {
        if zst_ok {
            decompress_file(&zst, (ext4_file, &ext4_tmp), progress)?;
        } else {
            let (zst_file, tmp) = partial(&zst)?;
            let zst_tmp = zst_tmp.insert(tmp);
            download_verified(
                http,
                &image.rootfs_url,
                &image.rootfs_sha256,
                (zst_file, zst_tmp),
                Some((ext4_file, &ext4_tmp)),
                artifact,
                progress,
                stats,
            )?;
            put_verified(zst_tmp, &zst, &image.rootfs_sha256)?;
        }
        // The old sidecar goes first: from here until the new one is written, no
        // `.ext4` is trusted.
        match crate::sys::fs::remove_generated_file(&sidecar) {
            Ok(true) => sync_dir(dir)?,
            Ok(false) => {}
            Err(e) => return Err(path_err("remove", &sidecar, &e)),
        }
        crate::sys::fs::replace_with_generated(&ext4_tmp, &ext4)
            .map_err(|e| path_err("rename into", &ext4, &e))?;
        sync_dir(dir)?;
        write_atomic(&sidecar, &expected)
    })();
    if r.is_err() {
        let _ = crate::sys::fs::remove_generated_file(&ext4_tmp);
        if let Some(t) = &zst_tmp {
            let _ = crate::sys::fs::remove_generated_file(t);
        }
    }
    r?;
    progress.emit(PullEvent::Ready {
        artifact,
        path: ext4,
    });
    Ok(())
}

/// Put a verified download at `dest`: its temporary file `tmp` renamed over it, the
/// folder synced, then its checksum stamp written.
fn put_verified(tmp: &Path, dest: &Path, sha256: &str) -> Result<()> {
    crate::sys::fs::replace_with_generated(tmp, dest)
        .map_err(|e| path_err("rename into", dest, &e))?;
    sync_dir(dest.parent().unwrap_or(Path::new(".")))?;
    write_stamp(dest, sha256)
}

/// Decompress a verified cached `.zst` into a sparse temp file (fsynced).
fn decompress_file(
    zst: &Path,
    (outf, out): (File, &Path),
    progress: &Progress<PullEvent>,
) -> Result<()> {
    let mut f = open::open_read(zst).map_err(|e| path_err("read", zst, &e))?;
    let total = f.metadata().ok().map(|m| m.len());
    let mut dec = ZstdSparse::start(outf).map_err(|e| path_err("decompress into", out, &e))?;
    let mut done = 0u64;
    loop {
        let mut buf = vec![0u8; 1 << 20];
        let n = f.read(&mut buf).map_err(|e| path_err("read", zst, &e))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        done += n as u64;
        if dec.feed(buf).is_err() {
            break;
        }
        progress.emit(PullEvent::Progress {
            artifact: Artifact::Rootfs,
            phase: Phase::Decompress,
            bytes: done,
            total,
        });
    }
    dec.finish().map_err(|e| {
        Error::runtime(format!(
            "cannot decompress {}: {}",
            zst.display(),
            io_reason(&e)
        ))
    })?;
    Ok(())
}

/// The download sink: hash, temp file and (optionally) the decoder, all fed in one pass.
struct OnePass<'a> {
    file: File,
    hasher: Sha256,
    bytes: u64,
    total: Option<u64>,
    /// The decoder's temp file (created once, `O_EXCL`); each (re)start empties it.
    decode_file: Option<File>,
    decoder: Option<ZstdSparse>,
    decoder_failed: bool,
    artifact: Artifact,
    progress: &'a Progress<PullEvent>,
}

impl OnePass<'_> {
    fn start_decoder(&mut self) -> io::Result<()> {
        // Dropping the old decoder joins its thread: nothing writes the file any more.
        self.decoder = None;
        self.decoder_failed = false;
        if let Some(f) = &self.decode_file {
            let f = f.try_clone()?;
            f.set_len(0)?;
            self.decoder = Some(ZstdSparse::start(f)?);
        }
        Ok(())
    }
}

impl Sink for OnePass<'_> {
    fn total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    fn restart(&mut self) -> io::Result<()> {
        use std::io::Seek;
        // The same temp file (ours, created with O_EXCL), emptied: never a path reopened.
        self.file.set_len(0)?;
        self.file.seek(io::SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.bytes = 0;
        self.start_decoder()
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        // Nothing is verified yet: never let the body fill the disk (an endless body).
        const ROOM: u64 = 1 << 20;
        if self.bytes == 0 || (self.bytes + chunk.len() as u64) / ROOM > self.bytes / ROOM {
            crate::sys::sparse::check_room(&self.file, ROOM.max(chunk.len() as u64))?;
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk)?;
        // Start writeback every 8 MiB so the final fsync is short.
        const WB: u64 = 8 << 20;
        let end = self.bytes + chunk.len() as u64;
        if end / WB > self.bytes / WB {
            let from = self.bytes / WB * WB;
            crate::sys::sparse::start_writeback(&self.file, from, end - from);
        }
        if let Some(d) = &mut self.decoder {
            if !self.decoder_failed && d.feed(chunk.to_vec()).is_err() {
                // Keep downloading: the checksum says whether the data or the decoder
                // is at fault.
                self.decoder_failed = true;
            }
        }
        self.bytes += chunk.len() as u64;
        self.progress.emit(PullEvent::Progress {
            artifact: self.artifact,
            phase: Phase::Download,
            bytes: self.bytes,
            total: self.total,
        });
        Ok(())
    }
}

/// A pull the caller cancelled (`Progress::cancelled`): what it left is removed.
fn cancelled(url: &Url) -> Error {
    Error::new(
        crate::core::error::ErrorCode::Interrupted,
        format!("cancelled: the download of {url} was stopped and its partial files removed"),
    )
}

/// Download `url` into `tmp` (and decode into `decode_to`), check the SHA-256 and fsync.
/// On a mismatch the temp files are removed and SmolVM's error is returned.
#[allow(clippy::too_many_arguments)]
fn download_verified(
    http: &Http,
    url: &Url,
    sha: &str,
    (file, tmp): (File, &Path),
    decode: Option<(File, &Path)>,
    artifact: Artifact,
    progress: &Progress<PullEvent>,
    stats: &mut Stats,
) -> Result<()> {
    let decode_to = decode.as_ref().map(|(_, p)| *p);
    let mut sink = OnePass {
        file,
        hasher: Sha256::new(),
        bytes: 0,
        total: None,
        decode_file: decode.map(|(f, _)| f),
        decoder: None,
        decoder_failed: false,
        artifact,
        progress,
    };
    sink.start_decoder()
        .map_err(|e| path_err("create", decode_to.unwrap_or(tmp), &e))?;
    let got = http.download_until(
        url,
        &mut sink,
        &mut |attempt, reason| {
            progress.emit(PullEvent::Retry {
                artifact,
                attempt,
                reason: reason.to_string(),
            })
        },
        &|| progress.cancelled(),
    );
    stats.downloaded += sink.bytes;
    if let Err(e) = got {
        return Err(match e {
            FetchError::Status(s) => Error::runtime(format!("Download failed for {url}: HTTP {s}")),
            FetchError::Network(m) => Error::runtime(format!("Download failed for {url}: {m}")),
            FetchError::Local(e) => {
                Error::runtime(format!("cannot write {}: {}", tmp.display(), io_reason(&e)))
            }
            FetchError::Cancelled => {
                let _ = crate::sys::fs::remove_generated_file(tmp);
                if let Some(p) = decode_to {
                    let _ = crate::sys::fs::remove_generated_file(p);
                }
                return Err(cancelled(url));
            }
        }
        .with_recovery("Check the network connection and retry the pull."));
    }
    let actual = hex(&sink.hasher.clone().finalize());
    if actual != sha {
        drop(sink);
        let _ = crate::sys::fs::remove_generated_file(tmp);
        if let Some(p) = decode_to {
            let _ = crate::sys::fs::remove_generated_file(p);
        }
        return Err(Error::runtime(format!(
            "SHA-256 mismatch for {url}\n  expected: {sha}\n  actual:   {actual}"
        )));
    }
    progress.emit(PullEvent::Progress {
        artifact,
        phase: Phase::Verify,
        bytes: sink.bytes,
        total: Some(sink.bytes),
    });
    // The download's fsync and the decoder's tail (its last blocks and its own fsync)
    // run at the same time: neither waits for the other.
    let decoder = decode_to.zip(sink.decoder.take());
    if decoder.is_some() {
        progress.emit(PullEvent::Progress {
            artifact,
            phase: Phase::Decompress,
            bytes: sink.bytes,
            total: Some(sink.bytes),
        });
    }
    let file = &sink.file;
    let (synced, decoded) = std::thread::scope(|s| {
        let sync = s.spawn(|| file.sync_all());
        let decoded = decoder.map(|(p, d)| (p, d.finish()));
        let synced = sync
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the fsync thread panicked")));
        (synced, decoded)
    });
    synced.map_err(|e| path_err("sync", tmp, &e))?;
    if let Some((p, Err(e))) = decoded {
        return Err(Error::runtime(format!(
            "cannot decompress {url} into {}: {}",
            p.display(),
            io_reason(&e)
        )));
    }
    Ok(())
}
