//! What is in the image cache: list, remove, inspect.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{parse_image_name, Arch, Image, Os, Vmm, ROOTFS, ROOTFS_ZST, SIDECAR, SIDECAR_PREFIX};
use crate::core::error::{io_reason, Error, Result};
use crate::core::presets::Registry;
use crate::core::prune::{cache_version, InUse};
use crate::sys::fs::{usage, HardLinks};

/// One cached image directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub version: String,
    pub name: String,
    pub preset: String,
    pub arch: Arch,
    pub vmm: Vmm,
    pub os: Os,
    pub path: PathBuf,
    /// `rootfs.ext4.zst`'s size (0 when absent).
    pub compressed_bytes: u64,
    /// `rootfs.ext4`'s apparent size (0 when absent).
    pub unpacked_bytes: u64,
    /// Disk usage of the whole directory (sparse files by their blocks).
    pub on_disk_bytes: u64,
    /// SmolVM's `size_bytes`: the blocks of the regular files in it (not the directories').
    pub files_bytes: u64,
    /// SmolVM's `created`: the directory's mtime, ISO 8601 UTC (`None` when unreadable).
    pub created: Option<String>,
    /// Belongs to the current image version (else `prune` removes it).
    pub current: bool,
    /// `rootfs.ext4` is there with a `sparse-v1:` sidecar: bootable.
    pub ready: bool,
    pub sidecar: Option<String>,
    /// Running or paused VMs whose files lie in this directory.
    pub in_use_by: Vec<String>,
}

/// Every `<version>/<image name>/` under `images_root`, sorted by version then name.
pub fn list(
    images_root: &Path,
    current_version: &str,
    state_dbs: &[PathBuf],
) -> Result<Vec<Entry>> {
    let versions = match std::fs::read_dir(images_root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::runtime(format!(
                "cannot read image cache directory {}: {}",
                images_root.display(),
                io_reason(&e)
            )))
        }
    };
    let in_use = InUse::read(state_dbs);
    let links = HardLinks::default();
    let mut out = Vec::new();
    for v in versions.flatten() {
        let version = v.file_name().to_string_lossy().into_owned();
        if cache_version(&version) != Some(version.as_str()) || !v.path().is_dir() {
            continue;
        }
        let Ok(images) = std::fs::read_dir(v.path()) else {
            continue;
        };
        for i in images.flatten() {
            let name = i.file_name().to_string_lossy().into_owned();
            let Some(parsed) = parse_image_name(&name) else {
                continue;
            };
            let path = i.path();
            if !path.is_dir() {
                continue;
            }
            let found = Found {
                version: version.clone(),
                name,
                parsed,
                path,
            };
            out.push(entry(found, current_version, &in_use, &links));
        }
    }
    out.sort_by(|a, b| (&a.version, &a.name).cmp(&(&b.version, &b.name)));
    Ok(out)
}

/// SmolVM's own caches, of every version: `<images root>/<preset>-v<version>-<arch>-<vmm>[-alpine]/`
/// (its `cache_name`), sorted by name. Unreadable roots list nothing.
pub fn list_smolvm(images_root: &Path, current_version: &str, state_dbs: &[PathBuf]) -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(images_root) else {
        return Vec::new();
    };
    let in_use = InUse::read(state_dbs);
    let links = HardLinks::default();
    let mut out: Vec<Entry> = rd
        .flatten()
        .filter_map(|d| flat_cache(&d.file_name().to_string_lossy(), d.path()))
        .filter(|f| f.path.is_dir())
        .map(|f| entry(f, current_version, &in_use, &links))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// SmolVM's cache name `<preset>-v<version>-<arch>-<vmm>[-alpine]` (one plain path
/// component), parsed: its version and platform.
pub fn flat_cache_name(name: &str) -> Option<(String, (String, Arch, Vmm, Os))> {
    flat_cache(name, PathBuf::new()).map(|f| (f.version, f.parsed))
}

/// `<preset>-v<version>-<arch>-<vmm>[-alpine]`, SmolVM's cache name, parsed.
pub(super) fn flat_cache(name: &str, path: PathBuf) -> Option<Found> {
    // One plain path component (it is joined to the images root).
    if name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        return None;
    }
    let version = cache_version(name)?;
    if version == name {
        return None;
    }
    let short = name.replacen(&format!("-v{version}-"), "-", 1);
    let parsed = parse_image_name(&short)?;
    Some(Found {
        version: version.to_string(),
        name: name.to_string(),
        parsed,
        path,
    })
}

/// An image directory found in the cache: `<version>/<name>/` with its name parsed.
pub(super) struct Found {
    pub(super) version: String,
    pub(super) name: String,
    pub(super) parsed: (String, Arch, Vmm, Os),
    pub(super) path: PathBuf,
}

pub(super) fn entry(
    found: Found,
    current_version: &str,
    in_use: &InUse,
    links: &HardLinks,
) -> Entry {
    let Found {
        version,
        name,
        parsed: (preset, arch, vmm, os),
        path,
    } = found;
    let len = |f: &str| {
        std::fs::metadata(path.join(f))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let sidecar = std::fs::read_to_string(path.join(SIDECAR))
        .ok()
        .map(|s| s.trim().to_string());
    let ready = path.join(ROOTFS).is_file()
        && sidecar
            .as_deref()
            .is_some_and(|s| s.starts_with(SIDECAR_PREFIX));
    let is_symlink = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
    let in_use_by = in_use.vms_using(&path, is_symlink);
    let sizes = usage(&path, links);
    Entry {
        current: version == current_version,
        compressed_bytes: len(ROOTFS_ZST),
        unpacked_bytes: len(ROOTFS),
        on_disk_bytes: sizes.on_disk,
        files_bytes: sizes.files,
        created: created(&path),
        version,
        name,
        preset,
        arch,
        vmm,
        os,
        path,
        ready,
        sidecar,
        in_use_by,
    }
}

/// The blocks of every regular file under `dir` (`st_blocks * 512`), never through a
/// symbolic link nor into a mount below it; what SmolVM's `image list` reports as
/// `size_bytes`.
pub fn files_bytes(dir: &Path) -> u64 {
    usage(dir, &HardLinks::default()).files
}

/// A directory's mtime as SmolVM's `created` (ISO 8601 UTC).
pub fn created(dir: &Path) -> Option<String> {
    let m = std::fs::symlink_metadata(dir).ok()?;
    Some(crate::sys::time::isoformat(m.modified().ok()?))
}

/// Whether an `image rm` argument names this entry: its preset (or an alias of it in
/// `presets`) or its full directory name.
pub fn matches(presets: &Registry, arg: &str, e: &Entry) -> bool {
    e.name == arg || e.preset == presets.canonical(arg)
}

/// One file of an inspected image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub on_disk_bytes: u64,
}

/// A manifest row and what of it is in the cache.
#[derive(Debug, Clone)]
pub struct Inspect {
    pub image: Image,
    pub name: String,
    /// The image version of the cache (ours, or the one in SmolVM's cache name).
    pub version: String,
    /// The cache is SmolVM's own `<preset>-v<version>-<arch>-<vmm>` directory.
    pub smolvm_layout: bool,
    /// The cache belongs to the current image version.
    pub current: bool,
    pub image_dir: PathBuf,
    pub kernel_path: PathBuf,
    /// The sidecar the cache would need to be current (`sparse-v1:<rootfs sha256>`).
    pub expected_sidecar: String,
    pub sidecar: Option<String>,
    /// Cached, decompressed from the manifest's current rootfs.
    pub ready: bool,
    pub files: Vec<FileInfo>,
    /// SmolVM's `created` and `size_bytes` of the image directory.
    pub created: Option<String>,
    pub files_bytes: u64,
}

/// The cache-entry name `arg` gives, read as SmolVM reads what `image inspect` and `image
/// rm` are given (`_normalize_rm_name`, then `_valid_entry_name`): trailing slashes
/// dropped (tab completion); an absolute path inside `images_root` (what `image ls`
/// prints) taken relative to it, word by word, never resolved through the file system
/// (`<root>/../x` is no name); then SmolVM's test of a name ([`check_entry_name`]). The
/// one reading both verbs and both faces use.
pub fn entry_name(images_root: &Path, arg: &str) -> Result<String> {
    let trimmed = arg.trim_end_matches(['/', '\\']);
    let candidate = Path::new(trimmed);
    let mut name = trimmed.to_string();
    if candidate.is_absolute() {
        let resolved = std::fs::canonicalize(images_root).ok();
        for base in std::iter::once(images_root).chain(resolved.as_deref()) {
            if let Some(rel) = candidate
                .strip_prefix(base)
                .ok()
                .and_then(|r| r.to_str())
                .filter(|r| !r.is_empty())
            {
                name = rel.to_string();
                break;
            }
        }
    }
    check_entry_name(arg, &name)?;
    Ok(name)
}

/// SmolVM's test of a cache name `name` (`_valid_entry_name`): one path segment other
/// than `.`, `..`, `custom` and `macos`, or `custom/<name>[/<fp>]` and `macos/<name>`; no
/// backslash. Anything else is its `invalid_input` (exit 2), quoting what was typed
/// (`arg`).
fn check_entry_name(arg: &str, name: &str) -> Result<()> {
    let segs: Vec<&str> = name.split('/').collect();
    let plain = |s: &str| !s.is_empty() && s != "." && s != "..";
    let ok = !name.is_empty()
        && !name.contains('\\')
        && segs.iter().all(|s| plain(s))
        && match segs.as_slice() {
            [one] => *one != "custom" && *one != "macos",
            ["custom", rest @ ..] => matches!(rest.len(), 1 | 2),
            ["macos", _] => true,
            _ => false,
        };
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            crate::core::ErrorCode::InvalidInput,
            format!("'{arg}' is not a cached image name."),
        )
        .with_recovery("Run 'smolvm image list' to see cached images."))
    }
}

/// What `image inspect <arg>` and the dashboard's inspect show: `arg` is a preset (or an
/// alias) on the given platform (the host's where unset), a cache name
/// (`codex-amd64-qemu[-alpine]`) that names its platform too, or SmolVM's own cache name
/// (`codex-v0.0.36-amd64-qemu`, a directory in the images root, of any version); the
/// manifest's row for it and what of it is cached.
pub fn inspect_named(
    env: &crate::core::Env,
    host: &crate::core::host::Host,
    presets: &Registry,
    layout: &super::Layout,
    arg: &str,
    asked: super::Platform,
) -> Result<Inspected> {
    let super::Platform {
        mut arch,
        mut vmm,
        mut os,
    } = asked;
    let name = entry_name(&layout.images_root, arg)?;
    let mut preset = name.clone();
    // The user's presets too (`presets`: the context's, as `start` finds them).
    if presets.find(&preset).is_none() {
        let flat_name = name.as_str();
        if let Some(found) = flat_cache(flat_name, layout.images_root.join(flat_name)) {
            let m = super::Manifest::load(env)?;
            let (p, a, v, o) = found.parsed.clone();
            let t = super::Target {
                preset: p,
                arch: a,
                vmm: v,
                os: o,
            };
            let is_dir = std::fs::symlink_metadata(&found.path).is_ok_and(|m| m.is_dir());
            if !is_dir {
                return Err(
                    Error::runtime(format!("No cached image named '{flat_name}'."))
                        .with_recovery("Run 'smolvm image list' to see cached images."),
                );
            }
            let i = inspect_smolvm(&found, &layout.version, t.lookup(&m)?);
            return Ok(Inspected::Cache(Box::new(i), Box::new(m)));
        }
        // An `image build` output, by its name (what `image ls` lists as built).
        if super::store::built_image(&layout.images_root, flat_name).is_ok() {
            return Ok(Inspected::Built(inspect_built(
                &layout.images_root,
                flat_name,
            )));
        }
        if let Some((name, a, v, o)) = parse_image_name(&preset) {
            preset = name;
            arch = arch.or(Some(a));
            vmm = vmm.or(Some(v));
            os = os.or(Some(o));
        }
        // Neither a preset nor a cache of one: SmolVM's "no cached image" (exit 1).
        if presets.find(&preset).is_none() {
            return Err(
                Error::runtime(format!("No cached image named '{flat_name}'."))
                    .with_recovery("Run 'smolvm image list' to see cached images."),
            );
        }
    }
    let m = super::Manifest::load(env)?;
    let asked = super::Platform { arch, vmm, os };
    let t = super::Target::resolve(presets, &preset, asked, host)?;
    let i = inspect(layout, t.lookup(&m)?);
    Ok(Inspected::Cache(Box::new(i), Box::new(m)))
}

/// What `image inspect NAME` found: a published image's cache (its manifest row and what
/// of it is on disk), or an image `image build` made.
#[derive(Debug, Clone)]
pub enum Inspected {
    Cache(Box<Inspect>, Box<super::Manifest>),
    Built(BuiltInspect),
}

impl Inspected {
    /// The labelled lines `image inspect` prints and the dashboard's inspect shows, in
    /// that order, paths under `home` as `~/…`.
    pub fn fields(&self, home: &Path) -> Vec<(&'static str, String)> {
        match self {
            Inspected::Cache(i, m) => i.fields(m, home),
            Inspected::Built(b) => b.fields(home),
        }
    }

    /// Its files, each once.
    pub fn files(&self) -> &[FileInfo] {
        match self {
            Inspected::Cache(i, _) => &i.files,
            Inspected::Built(b) => &b.files,
        }
    }
}

/// An image `image build` made (`<images root>/<name>/`: `.fingerprint`, kernel, rootfs,
/// maybe `.init`), as `image inspect` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltInspect {
    pub name: String,
    pub path: PathBuf,
    /// The `--init` it was built with, when not `/init`.
    pub init: Option<String>,
    pub files: Vec<FileInfo>,
    /// SmolVM's `created` and `size_bytes` of the directory.
    pub created: Option<String>,
    pub files_bytes: u64,
}

impl BuiltInspect {
    pub fn fields(&self, home: &Path) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("Name", self.name.clone()),
            ("Kind", "built (smolvm image build)".to_string()),
            ("Path", crate::sys::paths::display_path(&self.path, home)),
            ("Init", self.init.clone().unwrap_or_else(|| "/init".into())),
            ("Size", crate::core::units::format_size(self.files_bytes)),
        ];
        if let Some(c) = &self.created {
            f.push(("Created", c.clone()));
        }
        f
    }
}

/// The built image `name` under `images_root` (its every regular file, sorted).
fn inspect_built(images_root: &Path, name: &str) -> BuiltInspect {
    let path = images_root.join(name);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&path)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    let init = crate::sys::open::read_to_string(&path.join(super::store::INIT_FILE))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| super::store::validate_init(t).is_ok());
    BuiltInspect {
        name: name.to_string(),
        init,
        files: names.into_iter().filter_map(file_info).collect(),
        created: created(&path),
        files_bytes: files_bytes(&path),
        path,
    }
}

impl Inspect {
    /// The labelled lines `image inspect` prints and the dashboard's inspect shows, in
    /// that order: `m` is the manifest in force, paths shown under `home` as `~/…`.
    pub fn fields(&self, m: &super::Manifest, home: &Path) -> Vec<(&'static str, String)> {
        let (arch, vmm, os) = (self.image.arch, self.image.vmm, self.image.os);
        let mut fields = vec![
            ("Name", self.name.clone()),
            ("Platform", format!("{arch}/{vmm}/{os}")),
            ("Version", self.version.clone()),
            ("Release", format!("{} ({})", m.release, m.source)),
            ("Kernel URL", self.image.kernel_url.to_string()),
            ("Kernel SHA-256", self.image.kernel_sha256.clone()),
            ("Rootfs URL", self.image.rootfs_url.to_string()),
            ("Rootfs SHA-256", self.image.rootfs_sha256.clone()),
            (
                "Path",
                crate::sys::paths::display_path(&self.image_dir, home),
            ),
            (
                "Status",
                if self.ready { "ready" } else { "not pulled" }.to_string(),
            ),
        ];
        if let Some(s) = &self.sidecar {
            fields.push(("Rootfs sidecar", s.clone()));
        }
        fields
    }
}

fn file_info(p: PathBuf) -> Option<FileInfo> {
    let m = std::fs::symlink_metadata(&p).ok()?;
    m.is_file().then(|| FileInfo {
        name: p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        size_bytes: m.len(),
        on_disk_bytes: m.blocks() * 512,
        path: p,
    })
}

fn sidecar_of(dir: &Path) -> Option<String> {
    crate::sys::open::read_to_string(&dir.join(SIDECAR))
        .ok()
        .map(|s| s.trim().to_string())
}

/// One of SmolVM's caches: its kernel is `vmlinux.bin` beside the rootfs, and its files
/// are every regular file in it (as SmolVM's `image inspect` lists them).
fn inspect_smolvm(found: &Found, current_version: &str, image: &Image) -> Inspect {
    let dir = found.path.clone();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    let cache = Cache {
        name: found.name.clone(),
        version: found.version.clone(),
        smolvm_layout: true,
        current: found.version == current_version,
        kernel_path: dir.join("vmlinux.bin"),
        dir,
    };
    cache.inspect(image, names)
}

pub fn inspect(layout: &super::Layout, image: &Image) -> Inspect {
    let dir = layout.image_dir(&image.preset, image.arch, image.vmm, image.os);
    let kernel_path = layout.kernel(image.arch, image.vmm);
    let mut paths = vec![kernel_path.clone()];
    paths.extend([ROOTFS_ZST, ROOTFS, SIDECAR].iter().map(|f| dir.join(f)));
    let cache = Cache {
        name: super::image_name(&image.preset, image.arch, image.vmm, image.os),
        version: layout.version.clone(),
        smolvm_layout: false,
        current: true,
        kernel_path,
        dir,
    };
    cache.inspect(image, paths)
}

/// Where one cache is and what it is called, in either layout.
struct Cache {
    name: String,
    version: String,
    smolvm_layout: bool,
    current: bool,
    dir: PathBuf,
    kernel_path: PathBuf,
}

impl Cache {
    /// The cache as `image inspect` reports it, `files` its listed files: ready when its
    /// rootfs, kernel and the sidecar naming the manifest's rootfs are there (one rule for
    /// both layouts).
    fn inspect(self, image: &Image, files: Vec<PathBuf>) -> Inspect {
        let expected = format!("{SIDECAR_PREFIX}{}", image.rootfs_sha256);
        let sidecar = sidecar_of(&self.dir);
        Inspect {
            ready: self.dir.join(ROOTFS).is_file()
                && sidecar.as_deref() == Some(expected.as_str())
                && self.kernel_path.is_file(),
            name: self.name,
            version: self.version,
            smolvm_layout: self.smolvm_layout,
            current: self.current,
            image: image.clone(),
            files: files.into_iter().filter_map(file_info).collect(),
            created: created(&self.dir),
            files_bytes: files_bytes(&self.dir),
            image_dir: self.dir,
            kernel_path: self.kernel_path,
            expected_sidecar: expected,
            sidecar,
        }
    }
}
