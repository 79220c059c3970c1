//! Published images: the manifest, which row this host boots, where the cache lives, and
//! the operations over it (pull, list, remove, inspect).
//!
//! Cache layout under `<images root>/<image version>/`:
//! `vmlinux-<arch>.<elf|image>` (shared by every preset) and
//! `<preset>-<arch>-<vmm>[-alpine]/` holding `rootfs.ext4.zst` (verified download),
//! `rootfs.ext4` (sparse, decompressed once) and `rootfs.ext4.from-sha256`
//! (`sparse-v1:<sha256 of the .zst>`, SmolVM's sidecar). Hidden files beside them are
//! ours: `.lock` (flock), `.<file>.verified` (size/mtime at verification) and
//! `.<file>.<pid>-<random>.partial` (in-flight temp files, created with `O_EXCL`, removed
//! by the next pull). Nothing here is opened through a symbolic link.

pub mod archive;
pub mod catalog;
pub mod listing;
pub mod manifest;
pub mod pull;
pub mod remove;
pub mod store;

use std::path::{Path, PathBuf};

use crate::core::error::{Error, ErrorCode, Result};
use crate::core::host::{Backend, Host};
use crate::sys::env::Env;
pub use manifest::{Arch, Image, Manifest, Os, Vmm};

pub const ROOTFS_ZST: &str = "rootfs.ext4.zst";
pub const ROOTFS: &str = "rootfs.ext4";
pub const SIDECAR: &str = "rootfs.ext4.from-sha256";
/// SmolVM's `_DECOMPRESSED_ROOTFS_CACHE_VERSION`.
pub const SIDECAR_PREFIX: &str = "sparse-v1:";

/// `<preset>-<arch>-<vmm>[-alpine]`.
pub fn image_name(preset: &str, arch: Arch, vmm: Vmm, os: Os) -> String {
    match os {
        Os::Ubuntu => format!("{preset}-{arch}-{vmm}"),
        other => format!("{preset}-{arch}-{vmm}-{other}"),
    }
}

/// The inverse of [`image_name`].
pub fn parse_image_name(name: &str) -> Option<(String, Arch, Vmm, Os)> {
    let (rest, os) = match name.strip_suffix("-alpine") {
        Some(r) => (r, Os::Alpine),
        None => (name, Os::Ubuntu),
    };
    let (rest, vmm) = rest.rsplit_once('-')?;
    let (preset, arch) = rest.rsplit_once('-')?;
    if preset.is_empty() || preset.starts_with('.') {
        return None;
    }
    Some((preset.to_string(), Arch::parse(arch)?, Vmm::parse(vmm)?, os))
}

/// Where one image version's files live.
#[derive(Debug, Clone)]
pub struct Layout {
    pub images_root: PathBuf,
    pub version: String,
    pub version_dir: PathBuf,
}

impl Layout {
    pub fn new(images_root: &Path, version: &str) -> Self {
        Layout {
            images_root: images_root.to_path_buf(),
            version: version.to_string(),
            version_dir: images_root.join(version),
        }
    }

    pub fn kernel(&self, arch: Arch, vmm: Vmm) -> PathBuf {
        self.version_dir
            .join(format!("vmlinux-{arch}.{}", vmm.kernel_format()))
    }

    pub fn image_dir(&self, preset: &str, arch: Arch, vmm: Vmm, os: Os) -> PathBuf {
        self.version_dir.join(image_name(preset, arch, vmm, os))
    }
}

/// The architecture of this CPU in SmolVM's names.
pub fn host_arch() -> Result<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(Arch::Amd64),
        "aarch64" => Ok(Arch::Arm64),
        other => Err(Error::usage(format!(
            "SmolVM doesn't publish images for {other}; pass --arch amd64 or --arch arm64"
        ))),
    }
}

/// The image a preset boots from, for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub preset: String,
    pub arch: Arch,
    pub vmm: Vmm,
    pub os: Os,
}

/// The platform an image command asks for (`--arch`, `--vmm`, `--os`); each one unset is
/// the host's choice ([`Target::named`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Platform {
    pub arch: Option<Arch>,
    pub vmm: Option<Vmm>,
    pub os: Option<Os>,
}

impl Target {
    /// Resolve flags and host facts for a preset by its canonical name in `presets` (an
    /// alias, the user's included, means its preset; another name stays as given):
    /// [`Target::named`].
    pub fn resolve(
        presets: &crate::core::presets::Registry,
        preset: &str,
        asked: Platform,
        host: &Host,
    ) -> Result<Self> {
        Target::named(presets.canonical(preset), asked, host)
    }

    /// The image of `preset`, a canonical name (a preset already found, or `all`):
    /// `--arch` or the CPU's, `--vmm` or the host's `--backend auto` choice (the one
    /// `start` makes), `--os` or `ubuntu`.
    pub fn named(preset: &str, asked: Platform, host: &Host) -> Result<Self> {
        Ok(Target {
            preset: preset.to_string(),
            arch: match asked.arch {
                Some(a) => a,
                None => host_arch()?,
            },
            vmm: host.backend(Backend::from_vmm(asked.vmm)).value,
            os: asked.os.unwrap_or_default(),
        })
    }

    pub fn name(&self) -> String {
        image_name(&self.preset, self.arch, self.vmm, self.os)
    }

    /// The row for this target, or SmolVM's "build one" error (exit 1).
    pub fn lookup<'m>(&self, manifest: &'m Manifest) -> Result<&'m Image> {
        manifest
            .lookup(&self.preset, self.arch, self.vmm, self.os)
            .ok_or_else(|| no_published_image(self))
    }
}

/// `No published image for preset '<p>' on <arch>/<vmm>; build one with smolvm image build`
/// (with the OS when it is not the default).
pub fn no_published_image(t: &Target) -> Error {
    let os = match t.os {
        Os::Ubuntu => String::new(),
        other => format!(" ({other})"),
    };
    Error::new(
        ErrorCode::Runtime,
        format!(
            "No published image for preset '{}' on {}/{}{os}; build one with smolvm image build",
            t.preset, t.arch, t.vmm
        ),
    )
}

/// Whether the published path is on: `SMOLVM_USE_PUBLISHED=0` (or `false`, `no`, `off`;
/// [`Env::flag`]) turns it off for every preset. Another value is refused before any
/// command runs ([`crate::core::settings`]).
pub fn published_enabled(env: &Env) -> bool {
    env.flag("SMOLVM_USE_PUBLISHED").ok().flatten() != Some(false)
}

/// What a preset boots from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// A published row (pull it with [`pull::pull`]).
    Published(Box<Image>),
    /// A custom image built for the preset: `<images root>/<preset>/` holding a
    /// `.fingerprint` (the ImageBuilder's output).
    Custom(PathBuf),
}

/// The boot decision: the published row unless `SMOLVM_USE_PUBLISHED=0` or there is
/// none; then a custom image built for the preset; else the "build one" error.
pub fn boot_source(
    env: &Env,
    images_root: &Path,
    manifest: &Manifest,
    target: &Target,
) -> Result<BootSource> {
    if published_enabled(env) {
        if let Some(img) = manifest.lookup(&target.preset, target.arch, target.vmm, target.os) {
            return Ok(BootSource::Published(Box::new(img.clone())));
        }
    }
    let custom = images_root.join(&target.preset);
    if custom.join(".fingerprint").is_file() {
        return Ok(BootSource::Custom(custom));
    }
    Err(no_published_image(target))
}

/// `--image NAME`: the `(kernel, rootfs)` of the image `smolvm image build` made under
/// that name in the images root, or the "build it first" error. What `sandbox create
/// --image NAME` and the dashboard's start form (a built image chosen) both start from.
pub fn resolve_image(paths: &crate::core::Paths, name: &str) -> Result<(PathBuf, PathBuf)> {
    store::built_image(&paths.images_root, name)
}

/// The `--init` the image `name` was built with, when not `/init` (its `.init` file, read
/// without following a link and checked as `image build` checks it).
pub fn built_init(paths: &crate::core::Paths, name: &str) -> Result<Option<String>> {
    store::validate_name(name)?;
    let p = paths
        .images_root
        .join(name)
        .join(crate::core::images::store::INIT_FILE);
    match crate::sys::open::read_to_string(&p) {
        Ok(text) => {
            let init = text.trim().to_string();
            crate::core::images::store::validate_init(&init)
                .map_err(|e| Error::runtime(format!("{}: {}", p.display(), e.message)))?;
            Ok(Some(init))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::runtime(format!(
            "cannot read {}: {}",
            p.display(),
            crate::core::error::io_reason(&e)
        ))),
    }
}

/// The names [`resolve_image`] accepts: every finished `image build` in the images root
/// (a valid name, `.fingerprint`, kernel and rootfs), sorted.
pub fn built_images(paths: &crate::core::Paths) -> Vec<String> {
    store::built_names(&paths.images_root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_images_are_listed_and_resolved_by_name() {
        let t = tempfile::tempdir().unwrap();
        let env = Env::from_vars([("HOME", t.path().as_os_str().to_owned())], 1000);
        let paths = crate::core::Paths::resolve(&env, None);
        let dir = paths.images_root.join("my-debian");
        std::fs::create_dir_all(&dir).unwrap();
        for f in [".fingerprint", "vmlinux.bin", "rootfs.ext4"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        // Not built images: a version cache, a folder without a fingerprint.
        std::fs::create_dir_all(paths.images_root.join("0.0.12/codex-amd64-qemu")).unwrap();
        std::fs::create_dir_all(paths.images_root.join("half")).unwrap();
        assert_eq!(built_images(&paths), ["my-debian"]);
        assert_eq!(
            resolve_image(&paths, "my-debian").unwrap(),
            (dir.join("vmlinux.bin"), dir.join("rootfs.ext4"))
        );
        let e = resolve_image(&paths, "half").unwrap_err();
        assert!(
            e.message.starts_with("no built image named half"),
            "{}",
            e.message
        );
        assert!(resolve_image(&paths, "../x").is_err());
    }

    #[test]
    fn names_round_trip() {
        for (p, a, v, o, n) in [
            (
                "codex",
                Arch::Amd64,
                Vmm::Qemu,
                Os::Ubuntu,
                "codex-amd64-qemu",
            ),
            (
                "claude-code",
                Arch::Arm64,
                Vmm::Firecracker,
                Os::Alpine,
                "claude-code-arm64-firecracker-alpine",
            ),
            (
                "linux-desktop",
                Arch::Amd64,
                Vmm::Qemu,
                Os::Ubuntu,
                "linux-desktop-amd64-qemu",
            ),
        ] {
            assert_eq!(image_name(p, a, v, o), n);
            assert_eq!(parse_image_name(n), Some((p.to_string(), a, v, o)));
        }
        for bad in [
            "codex",
            "codex-x86-qemu",
            "codex-amd64-kvm",
            "-amd64-qemu",
            "vmlinux-amd64.elf",
        ] {
            assert_eq!(parse_image_name(bad), None, "{bad}");
        }
    }

    /// A target names its preset by the registry's canonical name: built-in aliases and the
    /// user's (`~/.smolvm/presets.toml`) alike.
    #[test]
    fn a_targets_preset_is_the_registrys_canonical_name() {
        use crate::core::presets::Registry;
        let user = Registry::with_user(Some("[claude-code]\naliases = [\"cc\"]\n"), "presets.toml");
        assert!(user.problems.is_empty(), "{:?}", user.problems);
        let host = Host::default();
        let name = |r: &Registry, p: &str| {
            let asked = Platform {
                arch: Some(Arch::Amd64),
                vmm: Some(Vmm::Qemu),
                os: None,
            };
            Target::resolve(r, p, asked, &host).unwrap().name()
        };
        assert_eq!(
            name(&Registry::builtin(), "claude"),
            "claude-code-amd64-qemu"
        );
        assert_eq!(name(&Registry::builtin(), "claw"), "openclaw-amd64-qemu");
        assert_eq!(name(&user, "cc"), "claude-code-amd64-qemu");
        assert_eq!(name(&Registry::builtin(), "cc"), "cc-amd64-qemu");
    }

    #[test]
    fn use_published_zero_falls_back_to_custom_or_errors() {
        let m = Manifest::parse(manifest::BUNDLED, "bundled", None, false).unwrap();
        let t = Target {
            preset: "codex".into(),
            arch: Arch::Amd64,
            vmm: Vmm::Qemu,
            os: Os::Ubuntu,
        };
        let dir = tempfile::tempdir().unwrap();
        let on = Env::default();
        assert!(matches!(
            boot_source(&on, dir.path(), &m, &t).unwrap(),
            BootSource::Published(_)
        ));
        let off = Env::from_vars([("SMOLVM_USE_PUBLISHED", "0")], 1000);
        let e = boot_source(&off, dir.path(), &m, &t).unwrap_err();
        assert_eq!(
            e.message,
            "No published image for preset 'codex' on amd64/qemu; build one with smolvm image build"
        );
        assert_eq!(e.exit_code(), 1);
        std::fs::create_dir_all(dir.path().join("codex")).unwrap();
        std::fs::write(dir.path().join("codex/.fingerprint"), "x").unwrap();
        assert_eq!(
            boot_source(&off, dir.path(), &m, &t).unwrap(),
            BootSource::Custom(dir.path().join("codex"))
        );
    }
}

text_enum! {
    /// `--vmm` of `image pull`/`image inspect` as SmolVM spells it: SmolVM also publishes
    /// `libkrun` images, which its macOS backend boots; this host (Linux) refuses them with a
    /// clear reason instead of a usage error.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum VmmRequest {
        Firecracker = "firecracker",
        Qemu = "qemu",
        Libkrun = "libkrun",
    }
}

impl VmmRequest {
    /// The VMM this host can use, or why not (runtime error, exit 1).
    pub fn resolve(self) -> crate::core::error::Result<Vmm> {
        match self {
            VmmRequest::Firecracker => Ok(Vmm::Firecracker),
            VmmRequest::Qemu => Ok(Vmm::Qemu),
            VmmRequest::Libkrun => Err(crate::core::error::Error::runtime(
                "libkrun images are for macOS only: SmolVM boots them with its macOS backend, \
                 and this Linux host boots firecracker or qemu images.",
            )
            .with_recovery(
                "Pass --vmm firecracker or --vmm qemu, or leave --vmm out to use what this machine uses.",
            )),
        }
    }
}
