//! The image builder (SmolVM's `ImageBuilder`): a base (Alpine or Debian) plus SSH access,
//! built into `<cache dir>/<name>/` as `rootfs.ext4` + `vmlinux.bin` + `.fingerprint`.
//!
//! * **Cache by name.** The fingerprint is a SHA-256 of every input (base, recipe, the
//!   password's or key's hash, size, `/init`, kernel checksum). Same inputs → the cached
//!   paths, without running anything. Changed inputs → a build in a staging directory
//!   beside the cache, swapped in atomically (`renameat2(RENAME_EXCHANGE)`), so a failed
//!   build leaves the previous good image, or nothing — never a half image.
//! * **Engines.** `debootstrap` (Debian, no Docker): `debootstrap --variant=minbase`, then
//!   `/init`, SSH access and `mkfs.ext4 -d` (no loop mount). `docker`: diagnosed first with
//!   SmolVM's messages ([`crate::core::docker`]). `auto`: Docker when its daemon answers,
//!   else debootstrap for Debian, else an error saying Alpine needs Docker and why.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::core::docker::{self, DockerProblem};
use crate::core::error::{io_reason, Error, ErrorCode, Result};
use crate::core::progress::Progress;
use crate::core::prune::cache_version;
use crate::sys::env::Env;
use crate::sys::open;

/// SmolVM's `/init`, installed into every built image.
pub const INIT_SCRIPT: &str = include_str!("../../assets/init.sh");

/// The Debian release debootstrap installs.
pub const DEBIAN_SUITE: &str = "bookworm";
/// Packages added to the minbase variant.
pub const DEBIAN_PACKAGES: &str = "openssh-server,iproute2,ca-certificates,procps";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// About how much a Debian tree takes before it is packed (MiB).
pub const DEBIAN_TREE_MIB: u64 = 512;
/// About how much an Alpine tree takes before it is packed (MiB).
pub const ALPINE_TREE_MIB: u64 = 128;

impl Base {
    /// Free space a build needs in the cache dir: the unpacked tree plus its ext4 copy.
    pub fn build_space_mib(self) -> u64 {
        2 * match self {
            Base::Alpine => ALPINE_TREE_MIB,
            Base::Debian => DEBIAN_TREE_MIB,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Alpine,
    Debian,
}

impl Base {
    pub fn parse(s: &str) -> Option<Base> {
        match s {
            "alpine" => Some(Base::Alpine),
            "debian" => Some(Base::Debian),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Base::Alpine => "alpine",
            Base::Debian => "debian",
        }
    }

    /// SmolVM's default rootfs size.
    pub fn default_size_mib(self) -> u64 {
        match self {
            Base::Alpine => 512,
            Base::Debian => 2048,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Auto,
    Docker,
    Debootstrap,
}

impl Engine {
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "auto" => Some(Engine::Auto),
            "docker" => Some(Engine::Docker),
            "debootstrap" => Some(Engine::Debootstrap),
            _ => None,
        }
    }
}

/// How root logs in to the built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Password(String),
    /// An OpenSSH public key line (validated by [`validate_public_key`]).
    Key(String),
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub base: Base,
    pub auth: Auth,
    /// Default: SmolVM's (`alpine-ssh`, `alpine-ssh-key`, `debian-ssh-key`).
    pub name: Option<String>,
    pub size_mib: Option<u64>,
    /// The kernel to ship with the image.
    pub kernel: PathBuf,
    /// Where `<name>/` lives (the images root by default).
    pub cache_dir: PathBuf,
    pub engine: Engine,
}

impl BuildOptions {
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            match (self.base, &self.auth) {
                (Base::Alpine, Auth::Password(_)) => "alpine-ssh",
                (Base::Alpine, Auth::Key(_)) => "alpine-ssh-key",
                (Base::Debian, Auth::Key(_)) => "debian-ssh-key",
                (Base::Debian, Auth::Password(_)) => "debian-ssh",
            }
            .to_string()
        })
    }

    pub fn size_mib(&self) -> u64 {
        self.size_mib.unwrap_or(self.base.default_size_mib())
    }
}

/// Progress of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// The fingerprint matched: nothing will run.
    Cached,
    /// Building with this engine.
    Engine(&'static str),
    /// A step starts (human text).
    Step(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildReport {
    pub name: String,
    pub base: &'static str,
    pub image_dir: PathBuf,
    pub kernel_path: PathBuf,
    pub rootfs_path: PathBuf,
    pub fingerprint: String,
    /// Returned from the cache without building.
    pub cached: bool,
    /// The engine that built it (`None` when cached).
    pub engine: Option<&'static str>,
    pub size_mib: u64,
}

/// SmolVM's check of a public key: one line `<type> <base64> [comment]` whose blob starts
/// with the same type. Returns the normalised line.
pub fn validate_public_key(text: &str) -> Result<String> {
    let invalid = || Error::runtime("Invalid SSH public key format");
    let line = text.trim();
    if line.is_empty() || line.contains('\n') {
        return Err(invalid());
    }
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(invalid());
    };
    const TYPES: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    if !TYPES.contains(&kind) {
        return Err(invalid());
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| invalid())?;
    if blob.len() < 4 {
        return Err(invalid());
    }
    let n = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if blob.get(4..4 + n) != Some(kind.as_bytes()) {
        return Err(invalid());
    }
    Ok(line.to_string())
}

/// An image name must be a plain directory name and must not read as a version (prune
/// would treat `<cache>/0.0.12/` as a stale cache of another release).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(Error::usage(format!(
            "invalid image name {name:?}: use letters, digits, '.', '_' and '-' (not starting with '.')"
        )));
    }
    if cache_version(name).is_some() {
        return Err(Error::usage(format!(
            "image name {name:?} looks like a version; it would read as a stale image cache and be pruned"
        ))
        .with_recovery("Pick a name such as my-debian or team-image."));
    }
    Ok(())
}

fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_file(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p).map_err(|e| {
        Error::runtime(format!(
            "cannot read kernel {}: {}",
            p.display(),
            io_reason(&e)
        ))
    })?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| {
        Error::runtime(format!(
            "cannot read kernel {}: {}",
            p.display(),
            io_reason(&e)
        ))
    })?;
    Ok(hex(&h.finalize()))
}

/// The recipe text of a base (what the engines install), part of the fingerprint.
fn recipe(base: Base) -> String {
    match base {
        Base::Debian => format!(
            "debian {DEBIAN_SUITE} minbase +{DEBIAN_PACKAGES}\n{}",
            dockerfile(base)
        ),
        Base::Alpine => dockerfile(base).to_string(),
    }
}

/// The Dockerfile the Docker engine builds for a base (kept in `assets/`).
pub fn dockerfile(base: Base) -> &'static str {
    match base {
        Base::Alpine => include_str!("../../assets/Dockerfile.alpine"),
        Base::Debian => include_str!("../../assets/Dockerfile.debian"),
    }
}

/// The fingerprint of every input of a build.
pub fn fingerprint(opts: &BuildOptions, kernel_sha: &str) -> String {
    let auth = match &opts.auth {
        Auth::Password(p) => format!("password:{}", sha256_hex(p.as_bytes())),
        Auth::Key(k) => format!("key:{}", sha256_hex(k.trim().as_bytes())),
    };
    let parts = [
        "smolvm-image-v1".to_string(),
        format!("base={}", opts.base.as_str()),
        format!("recipe={}", recipe(opts.base)),
        format!("auth={auth}"),
        format!("size_mib={}", opts.size_mib()),
        format!("init={}", sha256_hex(INIT_SCRIPT.as_bytes())),
        format!("kernel={kernel_sha}"),
    ];
    sha256_hex(parts.join("\n").as_bytes())
}

/// The Debian mirror: `SMOLVM_DEBIAN_MIRROR`, else the host's apt source when the host is
/// Debian, else Debian's CDN.
pub fn debian_mirror(env: &Env) -> String {
    if let Some(m) = env.get_str("SMOLVM_DEBIAN_MIRROR") {
        return m.to_string();
    }
    host_debian_mirror(Path::new("/etc/apt")).unwrap_or_else(|| DEFAULT_MIRROR.to_string())
}

fn host_debian_mirror(apt: &Path) -> Option<String> {
    let is_debian_uri = |u: &str| {
        (u.starts_with("http://") || u.starts_with("https://"))
            && u.trim_end_matches('/').ends_with("/debian")
    };
    if let Ok(rd) = std::fs::read_dir(apt.join("sources.list.d")) {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            for line in text.lines() {
                if let Some(uris) = line.strip_prefix("URIs:") {
                    if let Some(u) = uris.split_whitespace().find(|u| is_debian_uri(u)) {
                        return Some(u.trim_end_matches('/').to_string());
                    }
                }
                let mut w = line.split_whitespace();
                if w.next() == Some("deb") {
                    if let Some(u) = w.find(|u| !u.starts_with('[')) {
                        if is_debian_uri(u) {
                            return Some(u.trim_end_matches('/').to_string());
                        }
                    }
                }
            }
        }
    }
    let text = std::fs::read_to_string(apt.join("sources.list")).ok()?;
    text.lines().find_map(|line| {
        let mut w = line.split_whitespace();
        (w.next() == Some("deb"))
            .then(|| w.find(|u| !u.starts_with('[')))
            .flatten()
            .filter(|u| is_debian_uri(u))
            .map(|u| u.trim_end_matches('/').to_string())
    })
}

/// A staging directory this build created (mkdir of a name it generated inside the cache
/// dir it holds the lock of), removed on drop unless it was moved into place — with
/// `sys::fs::remove_entry`, which never follows a symbolic link or crosses a mount.
struct Staging {
    cache_dir: PathBuf,
    name: Option<std::ffi::OsString>,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(n) = self.name.take() {
            let _ = crate::sys::fs::remove_entry(&self.cache_dir, &n);
        }
    }
}

/// `.<name>.staging-` followed by what [`open::create_unique_dir`] (`<pid>-<hex>`) or an
/// older smolvm (`<pid>`) appends: a staging directory some build of `name` made.
fn is_staging_name(entry: &str, prefix: &str) -> bool {
    entry.strip_prefix(prefix).is_some_and(|rest| {
        let (pid, rand) = rest.split_once('-').unwrap_or((rest, ""));
        !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && rand.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Whether a build may put an image at `<cache dir>/<name>`: nothing is there, or an image
/// smolvm built — a real directory (not a symbolic link) carrying a `.fingerprint` regular
/// file. Anything else (a folder without `.fingerprint`, a file, a symbolic link) is an
/// error naming it, and nothing is touched. Checked before any expensive step (the kernel
/// download, the engine) and again, under the lock, right before the swap.
pub fn check_replaceable(cache_dir: &Path, name: &str) -> Result<()> {
    validate_name(name)?;
    owned_image_dir(&cache_dir.join(name))
}

fn owned_image_dir(dir: &Path) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::runtime(format!(
            "{} exists and is not an image smolvm built ({why}); refusing to replace it",
            dir.display()
        ))
        .with_recovery("Move it away, or build under another name."))
    };
    match open::kind(dir) {
        Ok(None) => Ok(()),
        Ok(Some(open::Kind::Dir)) => match open::kind(&dir.join(".fingerprint")) {
            Ok(Some(open::Kind::File)) => Ok(()),
            Ok(None) => refuse("it has no .fingerprint file".into()),
            Ok(Some(k)) => refuse(format!("its .fingerprint is {}", k.describe())),
            Err(e) => Err(io_err("cannot read", dir, e)),
        },
        Ok(Some(k)) => refuse(format!("it is {}", k.describe())),
        Err(e) => Err(io_err("cannot read", dir, e)),
    }
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::runtime(format!("{what} {}: {}", p.display(), io_reason(&e)))
}

/// Build (or return from the cache) the image `opts` describes.
pub fn build(
    env: &Env,
    opts: &BuildOptions,
    progress: &Progress<BuildEvent>,
) -> Result<BuildReport> {
    build_with(env, opts, None, progress)
}

/// More work on the tree after the base and SSH access (a preset's install,
/// `core::presets::build`): its recipe text joins the fingerprint and its space the check.
pub struct Extension<'a> {
    pub recipe: String,
    pub need_mib: u64,
    pub run: &'a dyn Fn(&Path, &Progress<BuildEvent>) -> Result<()>,
}

/// [`build`], with an [`Extension`] run on the tree before it is packed.
pub fn build_with(
    env: &Env,
    opts: &BuildOptions,
    ext: Option<&Extension<'_>>,
    progress: &Progress<BuildEvent>,
) -> Result<BuildReport> {
    let name = opts.name();
    check_replaceable(&opts.cache_dir, &name)?;
    let auth = match &opts.auth {
        Auth::Key(k) => Auth::Key(validate_public_key(k)?),
        Auth::Password(p) if p.is_empty() => {
            return Err(Error::usage("the SSH password must not be empty"))
        }
        a => a.clone(),
    };
    let opts = BuildOptions {
        auth,
        ..opts.clone()
    };
    let mut fp = fingerprint(&opts, &kernel_sha(&opts.kernel)?);
    if let Some(x) = ext {
        fp = sha256_hex(format!("{fp}\n{}", x.recipe).as_bytes());
    }
    let plan = Plan {
        name,
        fp,
        label: opts.base.as_str(),
        cache_dir: &opts.cache_dir,
        kernel: &opts.kernel,
        size_mib: opts.size_mib(),
        need_mib: opts.base.build_space_mib() + ext.map_or(0, |x| x.need_mib),
    };
    run_plan(
        &plan,
        progress,
        || resolve_engine(env, &opts),
        |engine, tree, staging| {
            match engine {
                "debootstrap" => debootstrap(env, tree, staging, progress)?,
                _ => {
                    let ctx = staging.join("context");
                    std::fs::create_dir_all(&ctx).map_err(|e| io_err("cannot create", &ctx, e))?;
                    write_file(
                        &ctx.join("Dockerfile"),
                        dockerfile(opts.base).as_bytes(),
                        0o644,
                    )?;
                    docker_build(env, &ctx, &plan.name, &plan.fp, tree, staging, progress)?;
                    let _ = crate::sys::fs::remove_entry(staging, std::ffi::OsStr::new("context"));
                }
            }
            progress.emit(BuildEvent::Step("installing /init and SSH access".into()));
            customise(tree, &opts.auth)?;
            ext.map_or(Ok(()), |x| (x.run)(tree, progress))
        },
    )
}

/// The library face, one method per SmolVM `ImageBuilder` method; each returns
/// `(kernel path, rootfs path)`.
pub struct ImageBuilder {
    env: Env,
    cache_dir: PathBuf,
    kernel: Option<PathBuf>,
    engine: Engine,
}

impl ImageBuilder {
    /// `cache_dir`: default `$SMOLVM_IMAGE_DIR` or `~/.smolvm/images`; `kernel`: default the
    /// published kernel for this host.
    pub fn new(env: &Env, cache_dir: Option<PathBuf>, kernel: Option<PathBuf>) -> Self {
        ImageBuilder {
            cache_dir: cache_dir
                .unwrap_or_else(|| crate::sys::paths::Paths::resolve(env, None).images_root),
            env: env.clone(),
            kernel,
            engine: Engine::Auto,
        }
    }

    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    fn run(
        &self,
        base: Base,
        auth: Auth,
        name: Option<&str>,
        size_mib: Option<u64>,
    ) -> Result<(PathBuf, PathBuf)> {
        if let Auth::Key(k) = &auth {
            validate_public_key(k)?;
        }
        let kernel = match &self.kernel {
            Some(k) => k.clone(),
            None => default_kernel(
                &self.env,
                &crate::sys::paths::Paths::resolve(&self.env, None).images_root,
            )?,
        };
        let opts = BuildOptions {
            base,
            auth,
            name: name.map(str::to_string),
            size_mib,
            kernel,
            cache_dir: self.cache_dir.clone(),
            engine: self.engine,
        };
        let r = build(&self.env, &opts, &Progress::none())?;
        Ok((r.kernel_path, r.rootfs_path))
    }

    /// Alpine with root password login (`alpine-ssh`, 512 MB; SmolVM's password `smolvm`).
    pub fn build_alpine_ssh(
        &self,
        name: Option<&str>,
        ssh_password: Option<&str>,
        rootfs_size_mb: Option<u64>,
    ) -> Result<(PathBuf, PathBuf)> {
        let pw = ssh_password.unwrap_or("smolvm").to_string();
        self.run(Base::Alpine, Auth::Password(pw), name, rootfs_size_mb)
    }

    /// Alpine with a public key for root (`alpine-ssh-key`, 512 MB).
    pub fn build_alpine_ssh_key(
        &self,
        ssh_public_key: &str,
        name: Option<&str>,
        rootfs_size_mb: Option<u64>,
    ) -> Result<(PathBuf, PathBuf)> {
        let key = Auth::Key(ssh_public_key.to_string());
        self.run(Base::Alpine, key, name, rootfs_size_mb)
    }

    /// Debian with a public key for root (`debian-ssh-key`, 2048 MB).
    pub fn build_debian_ssh_key(
        &self,
        ssh_public_key: &str,
        name: Option<&str>,
        rootfs_size_mb: Option<u64>,
    ) -> Result<(PathBuf, PathBuf)> {
        let key = Auth::Key(ssh_public_key.to_string());
        self.run(Base::Debian, key, name, rootfs_size_mb)
    }
}

/// SmolVM's `image build -t NAME [CONTEXT]`: a Dockerfile build (Docker engine only).
#[derive(Debug, Clone)]
pub struct DockerfileOptions {
    pub name: String,
    /// The build context holding `Dockerfile`.
    pub context: PathBuf,
    /// Default 2048.
    pub size_mib: Option<u64>,
    pub kernel: PathBuf,
    pub cache_dir: PathBuf,
}

/// The fingerprint of a Dockerfile build: every file of the context (path, mode, contents;
/// symlinks by target), the size, `/init` and the kernel.
pub fn dockerfile_fingerprint(opts: &DockerfileOptions, kernel_sha: &str) -> Result<String> {
    let mut files = Vec::new();
    walk(&opts.context, Path::new(""), &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    h.update(b"smolvm-dockerfile-v1\n");
    for rel in files {
        let p = opts.context.join(&rel);
        let meta = std::fs::symlink_metadata(&p).map_err(|e| io_err("cannot read", &p, e))?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        use std::os::unix::fs::PermissionsExt;
        h.update(meta.permissions().mode().to_le_bytes());
        if meta.file_type().is_symlink() {
            let t = std::fs::read_link(&p).map_err(|e| io_err("cannot read", &p, e))?;
            h.update(t.to_string_lossy().as_bytes());
        } else {
            let data = std::fs::read(&p).map_err(|e| io_err("cannot read", &p, e))?;
            h.update((data.len() as u64).to_le_bytes());
            h.update(&data);
        }
    }
    h.update(format!(
        "\nsize_mib={}\ninit={}\nkernel={kernel_sha}\n",
        opts.size_mib.unwrap_or(2048),
        sha256_hex(INIT_SCRIPT.as_bytes())
    ));
    Ok(hex(&h.finalize()))
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    let rd = std::fs::read_dir(&dir).map_err(|e| io_err("cannot read", &dir, e))?;
    for e in rd.flatten() {
        let r = rel.join(e.file_name());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &r, out)?;
        } else {
            out.push(r);
        }
    }
    Ok(())
}

/// Build `<cache dir>/<name>/` from a Docker build context; `/init` is installed when the
/// image has none (SSH access comes from the key smolvm passes at boot).
pub fn build_dockerfile(
    env: &Env,
    opts: &DockerfileOptions,
    progress: &Progress<BuildEvent>,
) -> Result<BuildReport> {
    check_replaceable(&opts.cache_dir, &opts.name)?;
    if !opts.context.join("Dockerfile").is_file() {
        return Err(Error::usage(format!(
            "no Dockerfile in the build context {}",
            opts.context.display()
        )));
    }
    let fp = dockerfile_fingerprint(opts, &kernel_sha(&opts.kernel)?)?;
    let plan = Plan {
        name: opts.name.clone(),
        fp,
        label: "dockerfile",
        cache_dir: &opts.cache_dir,
        kernel: &opts.kernel,
        size_mib: opts.size_mib.unwrap_or(2048),
        need_mib: Base::Debian.build_space_mib(),
    };
    run_plan(
        &plan,
        progress,
        || {
            docker::check(env)
                .map(|_| "docker")
                .map_err(|p| Error::runtime(p.message()))
        },
        |_, tree, staging| {
            docker_build(
                env,
                &opts.context,
                &plan.name,
                &plan.fp,
                tree,
                staging,
                progress,
            )?;
            // Anything at /init — even a dangling symbolic link — is the image's own: it
            // is left alone, never written through.
            let init = tree.join("init");
            if open::kind(&init).is_ok_and(|k| k.is_none()) {
                progress.emit(BuildEvent::Step("installing /init".into()));
                write_file(&init, INIT_SCRIPT.as_bytes(), 0o755)?;
            }
            Ok(())
        },
    )
}

fn kernel_sha(kernel: &Path) -> Result<String> {
    if !kernel.is_file() {
        return Err(Error::runtime(format!(
            "kernel {} does not exist",
            kernel.display()
        )));
    }
    sha256_file(kernel)
}

/// One build, whatever makes its tree.
struct Plan<'a> {
    name: String,
    fp: String,
    label: &'static str,
    cache_dir: &'a Path,
    kernel: &'a Path,
    size_mib: u64,
    need_mib: u64,
}

/// The cache check, the engine check, the lock, the staging directory, `populate` (the
/// engine's tree), `mkfs.ext4 -d`, the kernel, the fingerprint and the atomic swap-in.
fn run_plan(
    plan: &Plan<'_>,
    progress: &Progress<BuildEvent>,
    engine: impl FnOnce() -> Result<&'static str>,
    populate: impl FnOnce(&'static str, &Path, &Path) -> Result<()>,
) -> Result<BuildReport> {
    let (name, fp, cache_dir) = (&plan.name, &plan.fp, plan.cache_dir);
    let dir = cache_dir.join(name);
    let report = |cached: bool, engine: Option<&'static str>| BuildReport {
        name: name.clone(),
        base: plan.label,
        image_dir: dir.clone(),
        kernel_path: dir.join("vmlinux.bin"),
        rootfs_path: dir.join("rootfs.ext4"),
        fingerprint: fp.clone(),
        cached,
        engine,
        size_mib: plan.size_mib,
    };
    owned_image_dir(&dir)?;
    if is_cached(&dir, fp) {
        progress.emit(BuildEvent::Cached);
        return Ok(report(true, None));
    }

    let engine = engine()?;
    std::fs::create_dir_all(cache_dir).map_err(|e| io_err("cannot create", cache_dir, e))?;
    // One build at a time per cache dir (a lock on the directory itself: no lock file).
    let lock = std::fs::File::open(cache_dir).map_err(|e| io_err("cannot open", cache_dir, e))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::runtime(format!("cannot lock {}: {e}", cache_dir.display())))?;
    owned_image_dir(&dir)?;
    if is_cached(&dir, fp) {
        progress.emit(BuildEvent::Cached);
        return Ok(report(true, None));
    }
    progress.emit(BuildEvent::Engine(engine));
    if let Some((_, free)) = crate::core::doctor::free_bytes(cache_dir) {
        if free < plan.need_mib << 20 {
            return Err(space_error(cache_dir, plan.need_mib));
        }
    }

    // Staging left by a build that was killed (no other build can be running: we hold the
    // lock): only names a build of this image generates, removed without following a
    // symbolic link or crossing a mount.
    let prefix = format!(".{name}.staging-");
    if let Ok(rd) = std::fs::read_dir(cache_dir) {
        for e in rd.flatten() {
            if is_staging_name(&e.file_name().to_string_lossy(), &prefix) {
                let _ = crate::sys::fs::remove_entry(cache_dir, &e.file_name());
            }
        }
    }
    let staging_path = open::create_unique_dir(cache_dir, &prefix, 0o755)
        .map_err(|e| io_err("cannot create a staging directory in", cache_dir, e))?;
    let staging_name = staging_path
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    let mut staging = Staging {
        cache_dir: cache_dir.to_path_buf(),
        name: Some(staging_name.clone()),
    };
    let tree = staging_path.join("root");

    populate(engine, &tree, &staging_path)?;
    progress.emit(BuildEvent::Step(format!(
        "making rootfs.ext4 ({} MiB) with mkfs.ext4 -d",
        plan.size_mib
    )));
    mkfs(
        &tree,
        &staging_path.join("rootfs.ext4"),
        plan.size_mib,
        cache_dir,
    )?;
    crate::sys::fs::remove_entry(&staging_path, std::ffi::OsStr::new("root"))
        .map_err(|e| Error::runtime(format!("cannot remove {e}")))?;
    let _ = crate::sys::fs::remove_generated_file(&staging_path.join("debootstrap.log"));
    copy_new(plan.kernel, &staging_path.join("vmlinux.bin"))?;
    let fp_path = staging_path.join(".fingerprint");
    let mut f =
        open::create_new(&fp_path, 0o644).map_err(|e| io_err("cannot write", &fp_path, e))?;
    f.write_all(format!("{fp}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err("cannot write", &fp_path, e))?;

    // Swap in, only over an image smolvm built: exchange with it (then remove it from the
    // staging name), else a rename that fails if anything appeared meanwhile.
    owned_image_dir(&dir)?;
    if open::kind(&dir).is_ok_and(|k| k.is_some()) {
        let exchange = |a: &Path, b: &Path| {
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                a,
                nix::fcntl::AT_FDCWD,
                b,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .map_err(|e| Error::runtime(format!("cannot swap in {}: {e}", dir.display())))
        };
        exchange(&staging_path, &dir)?;
        // The staging name now holds what was at `dir`: it must still be an image smolvm
        // built (nothing swapped it since the check), else swap back and stop.
        if let Err(e) = owned_image_dir(&staging_path) {
            exchange(&staging_path, &dir)?;
            return Err(e);
        }
        // The guard removes the old image from the staging name.
    } else {
        open::rename_noreplace(&staging_path, &dir)
            .map_err(|e| io_err("cannot move into", &dir, e))?;
        staging.name = None;
    }
    drop(staging);
    Ok(report(false, Some(engine)))
}

/// The kernel a build ships when none is given: the published kernel for this CPU and the
/// VMM this host uses, through the images pipeline (cached and verified in the images root).
pub fn default_kernel(env: &Env, images_root: &Path) -> Result<PathBuf> {
    use crate::core::images::{self, pull, Layout, Manifest};
    let recovery = "Pass --kernel PATH to use a kernel of your own.";
    if !images::published_enabled(env) {
        return Err(Error::usage(
            "published images are turned off (SMOLVM_USE_PUBLISHED=0), so there is no default kernel",
        )
        .with_recovery(recovery));
    }
    let manifest = Manifest::load(env)?;
    let arch = images::host_arch()?;
    let vmm = crate::core::host::Host::probe(env)
        .backend(crate::core::host::Backend::Auto)
        .value;
    let mut rows: Vec<&images::Image> = manifest
        .images
        .iter()
        .filter(|i| i.arch == arch && i.vmm == vmm)
        .collect();
    rows.sort_by_key(|i| i.os != images::Os::Ubuntu);
    let Some(image) = rows.first() else {
        return Err(Error::runtime(format!(
            "the image manifest publishes no kernel for {arch}/{vmm}",
            arch = arch.as_str(),
            vmm = vmm.as_str()
        ))
        .with_recovery(recovery));
    };
    let opts = pull::PullOptions {
        layout: Layout::new(images_root, &crate::core::version::image_version(env)?),
        http: crate::sys::http::HttpConfig::from_env(env)?,
        release: manifest.release.clone(),
    };
    pull::pull_kernel(&opts, image, &Progress::none()).map_err(|e| {
        Error::runtime(format!("Failed to download kernel: {}", e.message)).with_recovery(recovery)
    })
}

/// The `(kernel, rootfs)` of an image built into `cache_dir` under `name`.
pub fn built_image(cache_dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    validate_name(name)?;
    let dir = cache_dir.join(name);
    let (k, r) = (dir.join("vmlinux.bin"), dir.join("rootfs.ext4"));
    if dir.join(".fingerprint").is_file() && k.is_file() && r.is_file() {
        Ok((k, r))
    } else {
        Err(Error::runtime(format!(
            "no built image named {name} in {}",
            cache_dir.display()
        ))
        .with_recovery(
            "Build it first: smolvm image build --base debian --ssh-key ~/.ssh/id_ed25519.pub --name NAME",
        ))
    }
}

fn is_cached(dir: &Path, fp: &str) -> bool {
    let file = |n: &str| open::kind(&dir.join(n)).is_ok_and(|k| k == Some(open::Kind::File));
    open::kind(dir).is_ok_and(|k| k == Some(open::Kind::Dir))
        && file("rootfs.ext4")
        && file("vmlinux.bin")
        && open::read_to_string(&dir.join(".fingerprint")).is_ok_and(|s| s.trim() == fp)
}

/// Write a file of the image tree (or the build context) with `mode`: a new file beside it,
/// renamed over it, so a symbolic link at `p` is replaced, never written through.
fn write_file(p: &Path, data: &[u8], mode: u32) -> Result<()> {
    open::write_atomic(p, data, mode).map_err(|e| io_err("cannot write", p, e))
}

/// Copy `from` into a new file `to` (`O_EXCL`, never through a symbolic link).
fn copy_new(from: &Path, to: &Path) -> Result<()> {
    let mut src = std::fs::File::open(from).map_err(|e| io_err("cannot copy kernel", from, e))?;
    let mut out = open::create_new(to, 0o644).map_err(|e| io_err("cannot write", to, e))?;
    std::io::copy(&mut src, &mut out)
        .and_then(|_| out.sync_all())
        .map_err(|e| io_err("cannot copy kernel", from, e))
}

/// Pick the engine: Docker when asked (and diagnosed healthy) or, for `auto`, when its
/// daemon answers; else debootstrap for Debian.
fn resolve_engine(env: &Env, opts: &BuildOptions) -> Result<&'static str> {
    let docker_err = |p: DockerProblem| Error::runtime(p.message());
    match (opts.engine, opts.base) {
        (Engine::Docker, _) => docker::check(env).map(|_| "docker").map_err(docker_err),
        (Engine::Debootstrap, Base::Alpine) => Err(Error::usage(
            "the debootstrap engine builds Debian images only; Alpine images need --engine docker",
        )),
        (Engine::Debootstrap, Base::Debian) => debootstrap_usable(env).map(|_| "debootstrap"),
        (Engine::Auto, base) => match docker::check(env) {
            Ok(_) => Ok("docker"),
            Err(_) if base == Base::Debian => debootstrap_usable(env).map(|_| "debootstrap"),
            Err(p) => Err(Error::runtime(format!(
                "Alpine images are built with Docker (debootstrap builds Debian only), and Docker is not usable: {}",
                p.message()
            ))
            .with_recovery("Start Docker, or build a Debian image without it: --base debian")),
        },
    }
}

/// debootstrap is installed and we are root: checked before anything is written.
fn debootstrap_usable(env: &Env) -> Result<PathBuf> {
    let Some(bin) = crate::core::host::which(env, "debootstrap") else {
        return Err(Error::runtime("debootstrap is not installed")
            .with_recovery("Install it: apt-get install debootstrap (or use --engine docker)"));
    };
    if !env.is_root() {
        return Err(Error::runtime(
            "the debootstrap engine needs root (it creates device nodes and file ownership)",
        )
        .with_recovery("Run the build with sudo, or use --engine docker"));
    }
    Ok(bin)
}

fn no_space(text: &str) -> bool {
    let t = text.to_lowercase();
    t.contains("no space left on device") || t.contains("could not allocate block")
}

/// A failed build step: our disk-space message when its output says the disk is full
/// (`need_mib` needed under `dir`), else `Image build failed: <what><last lines of output>`.
fn step_error(dir: &Path, need_mib: u64, output: &str, what: &str, lines: usize) -> Error {
    if no_space(output) {
        return space_error(dir, need_mib);
    }
    Error::runtime(format!("Image build failed: {what}{}", tail(output, lines)))
}

fn space_error(cache_dir: &Path, need_mib: u64) -> Error {
    let free = crate::core::doctor::free_bytes(cache_dir)
        .map(|(_, b)| crate::core::units::format_size(b))
        .unwrap_or_else(|| "unknown".into());
    Error::new(
        ErrorCode::Runtime,
        format!(
            "Not enough disk space to build the image in {}: about {need_mib} MiB needed, {free} free.",
            cache_dir.display()
        ),
    )
    .with_recovery(
        "Free space (smolvm prune, smolvm image rm <preset>, docker system prune) or pass --cache-dir on a larger disk.",
    )
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn debootstrap(
    env: &Env,
    tree: &Path,
    staging: &Path,
    progress: &Progress<BuildEvent>,
) -> Result<()> {
    let bin = debootstrap_usable(env)?;
    let mirror = debian_mirror(env);
    progress.emit(BuildEvent::Step(format!(
        "debootstrap {DEBIAN_SUITE} (minbase +{DEBIAN_PACKAGES}) from {mirror}"
    )));
    let log = staging.join("debootstrap.log");
    let log_file = open::create_new(&log, 0o600).map_err(|e| io_err("cannot write", &log, e))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| io_err("cannot write", &log, e))?;
    let status = Command::new(bin)
        .arg("--variant=minbase")
        .arg(format!("--include={DEBIAN_PACKAGES}"))
        .arg(DEBIAN_SUITE)
        .arg(tree)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .status()
        .map_err(|e| Error::runtime(format!("cannot run debootstrap: {}", io_reason(&e))))?;
    if !status.success() {
        let mut text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Ok(more) = std::fs::read_to_string(tree.join("debootstrap/debootstrap.log")) {
            text.push_str(&more);
        }
        return Err(step_error(
            staging.parent().unwrap_or(staging),
            Base::Debian.build_space_mib(),
            &text,
            &format!("debootstrap exited with {status}:\n"),
            15,
        ));
    }
    Ok(())
}

/// Kills and removes a container on drop.
struct Container<'a> {
    docker: &'a Path,
    id: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.docker)
            .args(["rm", "-f", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `docker build` of a build context, `docker create`, `docker export` streamed into
/// `tar -x` (file ownership kept, hence root), then the container is removed.
fn docker_build(
    env: &Env,
    ctx: &Path,
    name: &str,
    fp: &str,
    tree: &Path,
    staging: &Path,
    progress: &Progress<BuildEvent>,
) -> Result<()> {
    let Some(docker) = crate::core::host::which(env, "docker") else {
        return Err(Error::runtime(docker::NOT_INSTALLED));
    };
    if !env.is_root() {
        return Err(Error::runtime(
            "the Docker engine unpacks the exported image with its file ownership and needs root",
        )
        .with_recovery("Run the build with sudo."));
    }
    let platform = match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    };
    let tag = format!("smolvm-build/{}:{}", name.to_ascii_lowercase(), &fp[..12]);
    progress.emit(BuildEvent::Step(format!(
        "docker build -t {tag} ({platform})"
    )));
    let out = Command::new(&docker)
        .args(["build", "--platform", platform, "-t", &tag])
        .arg(ctx)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::runtime(format!("cannot run docker: {}", io_reason(&e))))?;
    if !out.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return Err(step_error(
            staging.parent().unwrap_or(staging),
            Base::Debian.build_space_mib(),
            &text,
            "docker build:\n",
            15,
        ));
    }
    let out = Command::new(&docker)
        .args(["create", &tag])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::runtime(format!("cannot run docker: {}", io_reason(&e))))?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || id.is_empty() {
        return Err(Error::runtime(format!(
            "Image build failed: docker create: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let _container = Container {
        docker: &docker,
        id: id.clone(),
    };
    progress.emit(BuildEvent::Step("docker export | tar -x".into()));
    std::fs::create_dir_all(tree).map_err(|e| io_err("cannot create", tree, e))?;
    let mut export = Command::new(&docker)
        .args(["export", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::runtime(format!("cannot run docker: {}", io_reason(&e))))?;
    let stream = export.stdout.take().expect("piped stdout");
    let tar = Command::new("tar")
        .args(["-x", "--numeric-owner", "-p", "-C"])
        .arg(tree)
        .stdin(stream)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::runtime(format!("cannot run tar: {}", io_reason(&e))))?;
    let exported = export
        .wait_with_output()
        .map_err(|e| Error::runtime(format!("docker export: {}", io_reason(&e))))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&exported.stderr),
        String::from_utf8_lossy(&tar.stderr)
    );
    if !exported.status.success() || !tar.status.success() {
        return Err(step_error(
            staging.parent().unwrap_or(staging),
            Base::Debian.build_space_mib(),
            &text,
            "docker export: ",
            10,
        ));
    }
    Ok(())
}

/// `/init`, SSH access, hostname; host keys removed (each VM makes its own at boot).
fn customise(tree: &Path, auth: &Auth) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    write_file(&tree.join("init"), INIT_SCRIPT.as_bytes(), 0o755)?;
    write_file(&tree.join("etc/hostname"), b"smolvm\n", 0o644)?;
    if let Ok(rd) = std::fs::read_dir(tree.join("etc/ssh")) {
        for k in rd.flatten() {
            if k.file_name().to_string_lossy().starts_with("ssh_host_") {
                let _ = crate::sys::fs::remove_generated_file(&k.path());
            }
        }
    }
    let archives = tree.join("var/cache/apt/archives");
    let _ = crate::sys::fs::remove_entry(
        &tree.join("var/cache/apt"),
        std::ffi::OsStr::new("archives"),
    );
    let _ = std::fs::create_dir_all(archives.join("partial"));
    let ssh_dir = tree.join("root/.ssh");
    std::fs::create_dir_all(&ssh_dir).map_err(|e| io_err("cannot create", &ssh_dir, e))?;
    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io_err("cannot chmod", &ssh_dir, e))?;
    let sshd_settings: &[u8] = match auth {
        Auth::Key(_) => b"PermitRootLogin prohibit-password\nPasswordAuthentication no\n",
        Auth::Password(_) => b"PermitRootLogin yes\nPasswordAuthentication yes\n",
    };
    sshd_config(tree, sshd_settings)?;
    match auth {
        Auth::Key(k) => {
            write_file(
                &ssh_dir.join("authorized_keys"),
                format!("{k}\n").as_bytes(),
                0o600,
            )?;
        }
        Auth::Password(p) => {
            let mut child = Command::new("chroot")
                .arg(tree)
                .args([
                    "/usr/bin/env",
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "chpasswd",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| {
                    Error::runtime(format!("cannot run chroot chpasswd: {}", io_reason(&e)))
                })?;
            if let Some(mut i) = child.stdin.take() {
                let _ = writeln!(i, "root:{p}");
            }
            let out = child
                .wait_with_output()
                .map_err(|e| Error::runtime(format!("chpasswd: {}", io_reason(&e))))?;
            if !out.status.success() {
                return Err(Error::runtime(format!(
                    "Image build failed: chpasswd: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
    }
    Ok(())
}

/// sshd settings: a drop-in when `sshd_config` includes `sshd_config.d` (Debian), else
/// placed before everything else in `sshd_config` (sshd keeps the first value it reads).
fn sshd_config(tree: &Path, settings: &[u8]) -> Result<()> {
    let main = tree.join("etc/ssh/sshd_config");
    let text = std::fs::read_to_string(&main).unwrap_or_default();
    if text.contains("sshd_config.d/") {
        let dropin = tree.join("etc/ssh/sshd_config.d");
        std::fs::create_dir_all(&dropin).map_err(|e| io_err("cannot create", &dropin, e))?;
        write_file(&dropin.join("smolvm.conf"), settings, 0o644)
    } else {
        let mut new = b"# smolvm image build\n".to_vec();
        new.extend_from_slice(settings);
        new.extend_from_slice(text.as_bytes());
        write_file(&main, &new, 0o644)
    }
}

fn mkfs(tree: &Path, out: &Path, size_mib: u64, cache_dir: &Path) -> Result<()> {
    let res = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "rootfs", "-E", "root_owner=0:0", "-d"])
        .arg(tree)
        .arg(out)
        .arg(format!("{size_mib}M"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::runtime(format!("cannot run mkfs.ext4: {}", io_reason(&e))))?;
    if !res.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr)
        );
        if text.to_lowercase().contains("could not allocate block") {
            return Err(Error::runtime(format!(
                "Image build failed: the root file system does not fit in {size_mib} MiB"
            ))
            .with_recovery("Pass a larger --size."));
        }
        return Err(step_error(cache_dir, size_mib, &text, "mkfs.ext4: ", 10));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHgxqBmgYdYMNh9O0bGvS8m9T3ZaVnJ1ZGyTl0R8Wq9Z me@host";

    #[test]
    fn public_keys_are_checked() {
        assert_eq!(validate_public_key(&format!("{KEY}\n")).unwrap(), KEY);
        for bad in [
            "",
            "not a key",
            "ssh-ed25519",
            "ssh-ed25519 !!!notbase64",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHgxqBmgYdYMNh9O0bGvS8m9T3ZaVnJ1ZGyTl0R8Wq9Z",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ] {
            let e = validate_public_key(bad).unwrap_err();
            assert_eq!(e.message, "Invalid SSH public key format", "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(validate_name("debian-ssh-key").is_ok());
        assert!(validate_name("0.0.12").is_err());
        assert!(validate_name("x-v0.0.24-y").is_err());
        assert!(validate_name("../x").is_err());
        assert!(validate_name(".hidden").is_err());
    }

    #[test]
    fn fingerprint_covers_inputs() {
        let o = BuildOptions {
            base: Base::Debian,
            auth: Auth::Key(KEY.into()),
            name: None,
            size_mib: None,
            kernel: PathBuf::from("/k"),
            cache_dir: PathBuf::from("/c"),
            engine: Engine::Auto,
        };
        let a = fingerprint(&o, "k1");
        assert_eq!(a, fingerprint(&o, "k1"));
        assert_ne!(a, fingerprint(&o, "k2"));
        let mut o2 = o.clone();
        o2.size_mib = Some(1024);
        assert_ne!(a, fingerprint(&o2, "k1"));
        let mut o3 = o.clone();
        o3.auth = Auth::Password("x".into());
        assert_ne!(a, fingerprint(&o3, "k1"));
        assert_eq!(o.name(), "debian-ssh-key");
        assert_eq!(o.size_mib(), 2048);
    }

    #[test]
    fn customise_installs_init_key_and_sshd_settings() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        std::fs::create_dir_all(tree.join("etc/ssh")).unwrap();
        std::fs::write(tree.join("etc/ssh/ssh_host_rsa_key"), "x").unwrap();
        // Alpine-like: no Include, so the settings go first in sshd_config.
        std::fs::write(tree.join("etc/ssh/sshd_config"), "#PermitRootLogin no\n").unwrap();
        customise(tree, &Auth::Key(KEY.into())).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("init")).unwrap(),
            INIT_SCRIPT
        );
        let mode = |p: &str| {
            std::fs::metadata(tree.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("init"), 0o755);
        assert_eq!(mode("root/.ssh"), 0o700);
        assert_eq!(mode("root/.ssh/authorized_keys"), 0o600);
        assert_eq!(
            std::fs::read_to_string(tree.join("root/.ssh/authorized_keys")).unwrap(),
            format!("{KEY}\n")
        );
        assert!(!tree.join("etc/ssh/ssh_host_rsa_key").exists());
        let cfg = std::fs::read_to_string(tree.join("etc/ssh/sshd_config")).unwrap();
        assert!(
            cfg.starts_with("# smolvm image build\nPermitRootLogin prohibit-password\n"),
            "{cfg}"
        );
        assert!(cfg.ends_with("#PermitRootLogin no\n"));

        // Debian-like: a drop-in.
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        std::fs::create_dir_all(tree.join("etc/ssh")).unwrap();
        let main = "Include /etc/ssh/sshd_config.d/*.conf\n";
        std::fs::write(tree.join("etc/ssh/sshd_config"), main).unwrap();
        customise(tree, &Auth::Key(KEY.into())).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("etc/ssh/sshd_config")).unwrap(),
            main
        );
        assert!(
            std::fs::read_to_string(tree.join("etc/ssh/sshd_config.d/smolvm.conf"))
                .unwrap()
                .contains("PasswordAuthentication no")
        );
    }

    /// The password path feeds `root:<password>` to the tree's own `chpasswd`, run in a
    /// chroot. Debian's busybox has no chpasswd applet, so the tree's `chpasswd` here is a
    /// busybox `sh` script that records its input (the chroot and the shell are real).
    #[test]
    fn customise_feeds_the_root_password_to_chpasswd_in_a_chroot() {
        use std::os::unix::fs::PermissionsExt;
        let bb = Path::new("/bin/busybox");
        if !nix::unistd::geteuid().is_root() || !bb.is_file() {
            eprintln!("SKIPPED: needs root and /bin/busybox (busybox-static)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let tree = t.path();
        for d in ["bin", "usr/bin", "usr/sbin", "etc/ssh"] {
            std::fs::create_dir_all(tree.join(d)).unwrap();
        }
        std::fs::copy(bb, tree.join("bin/busybox")).unwrap();
        for a in ["bin/sh", "bin/cat", "usr/bin/env"] {
            std::os::unix::fs::symlink("/bin/busybox", tree.join(a)).unwrap();
        }
        let script = tree.join("usr/sbin/chpasswd");
        std::fs::write(&script, "#!/bin/sh\ncat > /etc/chpasswd.input\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        customise(tree, &Auth::Password("s3cret".into())).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("etc/chpasswd.input")).unwrap(),
            "root:s3cret\n"
        );
        let cfg = std::fs::read_to_string(tree.join("etc/ssh/sshd_config")).unwrap();
        assert!(
            cfg.contains("PermitRootLogin yes\nPasswordAuthentication yes\n"),
            "{cfg}"
        );
        assert!(!tree.join("root/.ssh/authorized_keys").exists());
    }

    #[test]
    fn dockerfile_fingerprint_covers_the_context() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        std::fs::create_dir_all(ctx.join("sub")).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM alpine\n").unwrap();
        std::fs::write(ctx.join("sub/a"), "1").unwrap();
        let o = DockerfileOptions {
            name: "x".into(),
            context: ctx.clone(),
            size_mib: None,
            kernel: PathBuf::from("/k"),
            cache_dir: PathBuf::from("/c"),
        };
        let a = dockerfile_fingerprint(&o, "k").unwrap();
        assert_eq!(a, dockerfile_fingerprint(&o, "k").unwrap());
        std::fs::write(ctx.join("sub/a"), "2").unwrap();
        let b = dockerfile_fingerprint(&o, "k").unwrap();
        assert_ne!(a, b);
        assert_ne!(b, dockerfile_fingerprint(&o, "k2").unwrap());
    }

    #[test]
    fn library_face_checks_the_key_first_and_returns_cached_paths() {
        let t = tempfile::tempdir().unwrap();
        let env = Env::from_vars([("HOME", t.path().as_os_str().to_owned())], 1000);
        let kernel = t.path().join("k");
        std::fs::write(&kernel, b"kernel").unwrap();
        let b = ImageBuilder::new(&env, Some(t.path().join("c")), Some(kernel.clone()));
        let e = b.build_debian_ssh_key("nope", None, None).unwrap_err();
        assert_eq!(e.message, "Invalid SSH public key format");
        assert!(!t.path().join("c").exists());
        // A finished image with the matching fingerprint is returned without building.
        let opts = BuildOptions {
            base: Base::Debian,
            auth: Auth::Key(KEY.into()),
            name: None,
            size_mib: None,
            kernel: kernel.clone(),
            cache_dir: t.path().join("c"),
            engine: Engine::Auto,
        };
        let fp = fingerprint(&opts, &sha256_file(&kernel).unwrap());
        let dir = t.path().join("c/debian-ssh-key");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["rootfs.ext4", "vmlinux.bin"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        std::fs::write(dir.join(".fingerprint"), format!("{fp}\n")).unwrap();
        let (k, r) = b.build_debian_ssh_key(KEY, None, None).unwrap();
        assert_eq!((k, r), (dir.join("vmlinux.bin"), dir.join("rootfs.ext4")));
    }

    #[test]
    fn mirror_from_host_sources() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("sources.list.d")).unwrap();
        std::fs::write(
            t.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n",
        )
        .unwrap();
        assert_eq!(
            host_debian_mirror(t.path()).as_deref(),
            Some("http://mirror.example/debian")
        );
    }
}

#[cfg(test)]
mod swap_tests {
    use super::*;

    fn plan<'a>(cache: &'a Path, kernel: &'a Path) -> Plan<'a> {
        Plan {
            name: "img".into(),
            fp: "fp-new".into(),
            label: "test",
            cache_dir: cache,
            kernel,
            size_mib: 8,
            need_mib: 1,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn populate(_: &'static str, tree: &Path, _: &Path) -> Result<()> {
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/hostname"), b"smolvm\n").unwrap();
        Ok(())
    }

    #[test]
    fn staging_names() {
        let p = ".img.staging-";
        assert!(is_staging_name(".img.staging-1", p));
        assert!(is_staging_name(".img.staging-42-0a1b2c", p));
        assert!(!is_staging_name(".img.staging-", p));
        assert!(!is_staging_name(".img.staging-1-zz", p));
        assert!(!is_staging_name(".img.staging-x", p));
        assert!(!is_staging_name("img", p));
    }

    #[test]
    fn a_folder_without_fingerprint_is_never_replaced() {
        let t = tempfile::tempdir().unwrap();
        let kernel = t.path().join("vmlinux");
        std::fs::write(&kernel, b"k").unwrap();
        let cache = t.path().join("cache");
        std::fs::create_dir_all(cache.join("img")).unwrap();
        std::fs::write(cache.join("img/precious.txt"), b"mine").unwrap();
        let e = run_plan(
            &plan(&cache, &kernel),
            &Progress::none(),
            || Ok("test"),
            |_, _, _| panic!("must not build"),
        )
        .unwrap_err();
        assert!(
            e.message.contains("not an image smolvm built"),
            "{}",
            e.message
        );
        assert_eq!(names(&cache), ["img"]);
        assert_eq!(
            std::fs::read(cache.join("img/precious.txt")).unwrap(),
            b"mine"
        );
    }

    #[test]
    fn an_image_smolvm_built_is_swapped_out_and_stale_staging_links_are_only_unlinked() {
        let t = tempfile::tempdir().unwrap();
        let kernel = t.path().join("vmlinux");
        std::fs::write(&kernel, b"k").unwrap();
        let cache = t.path().join("cache");
        let old = cache.join("img");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(".fingerprint"), b"fp-old\n").unwrap();
        std::fs::write(old.join("rootfs.ext4"), b"old").unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, cache.join(".img.staging-1")).unwrap();
        std::fs::create_dir_all(cache.join(".img.staging-2-ab/root")).unwrap();
        // Not a name a build generates: left alone.
        std::fs::create_dir_all(cache.join(".img.staging-notours")).unwrap();
        let r = run_plan(
            &plan(&cache, &kernel),
            &Progress::none(),
            || Ok("test"),
            populate,
        )
        .unwrap();
        assert!(!r.cached);
        assert_eq!(names(&cache), [".img.staging-notours", "img"]);
        assert_eq!(names(&old), [".fingerprint", "rootfs.ext4", "vmlinux.bin"]);
        assert_eq!(
            std::fs::read_to_string(old.join(".fingerprint")).unwrap(),
            "fp-new\n"
        );
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"x");
    }
}
