//! The image builder (SmolVM's `ImageBuilder`): a base (Alpine or Debian) plus SSH access,
//! built into `<cache dir>/<name>/` as `rootfs.ext4` + `vmlinux.bin` + `.fingerprint`.
//! This file holds the options, the two entry points ([`build`], [`build_dockerfile`]) and
//! the library face; the decisions live beside it, the processes in `sys::build`:
//!
//! * `recipe.rs`: what an image holds — the Debian suite and packages, the Dockerfiles,
//!   `/init`, SSH access (key or password), the mirror.
//! * `fingerprint.rs`: **cache by name.** A SHA-256 of every input (base, recipe, the
//!   password's or key's hash, size, `/init`, kernel checksum); same inputs → the cached
//!   paths, without running anything.
//! * `plan.rs`: a build in a staging directory beside the cache, under a lock on the cache
//!   dir, swapped in atomically (`renameat2(RENAME_EXCHANGE)`) and only over an image
//!   smolvm built, so a failed build leaves the previous good image, or nothing — never a
//!   half image.
//! * `engine.rs`: **engines.** `debootstrap` (Debian, no Docker): `debootstrap
//!   --variant=minbase`, then `/init`, SSH access and `mkfs.ext4 -d` (no loop mount).
//!   `docker`: diagnosed first with SmolVM's messages ([`crate::core::docker`]). `auto`:
//!   Docker when its daemon answers, else debootstrap for Debian, else an error saying
//!   Alpine needs Docker and why. A failed step reads as SmolVM's `Image build failed: …`,
//!   or as our disk-space message when its output says the disk is full.

mod engine;
pub(crate) use engine::tail as output_tail;
mod fingerprint;
mod plan;
pub(crate) mod recipe;

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::core::docker;
use crate::core::error::{io_err, Error, Result};
use crate::core::progress::Progress;
use crate::sys::env::Env;
use crate::sys::open;

pub use crate::core::images::store::{built_image, validate_name};
pub(crate) use fingerprint::kernel_sha;
pub use fingerprint::{dockerfile_fingerprint, fingerprint};
pub use plan::check_replaceable;
pub use recipe::{
    debian_mirror, dockerfile, ALPINE_TREE_MIB, DEBIAN_PACKAGES, DEBIAN_SUITE, DEBIAN_TREE_MIB,
    DEFAULT_MIRROR, INIT_SCRIPT,
};

use engine::{debootstrap, docker_build, resolve_engine};

pub(crate) use fingerprint::sha256_hex;
use plan::{run_plan, Plan};
use recipe::customise;

impl Base {
    /// Free space a build needs in the cache dir: the unpacked tree plus its ext4 copy.
    pub fn build_space_mib(self) -> u64 {
        2 * match self {
            Base::Alpine => ALPINE_TREE_MIB,
            Base::Debian => DEBIAN_TREE_MIB,
        }
    }
}

text_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Base {
        Alpine = "alpine",
        Debian = "debian",
    }
}

impl Base {
    /// SmolVM's default rootfs size.
    pub fn default_size_mib(self) -> u64 {
        match self {
            Base::Alpine => 512,
            Base::Debian => 2048,
        }
    }
}

text_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Engine {
        Auto = "auto",
        Docker = "docker",
        Debootstrap = "debootstrap",
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

/// A running build: where it reports ([`Job::emit`]) and what stops it midway — its
/// job's cancel (the dashboard's `x` on a start that builds its preset's image) or, once
/// the build has staged something, SIGINT, SIGTERM or SIGHUP (the CLI's Ctrl-C). A stop
/// is asked between steps and while each step's process runs (it is killed); the build
/// then removes what it staged and fails `interrupted` (exit 130): `Image build of 'NAME'
/// cancelled; rolled back`.
pub struct Job<'a> {
    abort: crate::core::job::Abort,
    progress: &'a Progress<BuildEvent>,
}

impl<'a> Job<'a> {
    pub(crate) fn new(name: &str, progress: &'a Progress<BuildEvent>) -> Job<'a> {
        Job {
            abort: crate::core::job::Abort::new(format!("Image build of '{name}'")),
            progress,
        }
    }

    /// Report a step.
    pub fn emit(&self, event: BuildEvent) {
        self.progress.emit(event);
    }

    /// From now on a signal stops the build instead of ending the process at once.
    fn hold_signals(&mut self) {
        self.abort.hold_signals();
    }

    /// `Err` (interrupted) once the build was asked to stop.
    pub fn check(&self) -> Result<()> {
        self.abort.check(self.progress)
    }

    /// The staging's result as it is to be told ([`crate::core::job::Abort::settle`]).
    pub(crate) fn settle<T>(&self, r: Result<T>) -> Result<T> {
        self.abort.settle(r, self.progress)
    }

    /// Whether it was asked to stop (a running step's poll).
    pub fn stopped(&self) -> bool {
        self.abort.stopped(self.progress)
    }

    /// A step's process ended: `None` (it was killed on a stop) and a stop that came while
    /// it ran (a terminal's Ctrl-C reaches the step too) are the stop's error; else what it
    /// left.
    pub fn finished<T>(&self, ended: Option<T>) -> Result<T> {
        self.check()?;
        ended.ok_or_else(|| {
            Error::new(
                crate::core::error::ErrorCode::Interrupted,
                "Image build cancelled",
            )
        })
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

impl BuildEvent {
    /// How both faces say it (the CLI indents a step under its engine's line).
    pub fn text(&self) -> String {
        match self {
            BuildEvent::Cached => "Up to date (cached): inputs unchanged, nothing to build".into(),
            BuildEvent::Engine(engine) => format!("Building with the {engine} engine"),
            BuildEvent::Step(s) => s.clone(),
        }
    }
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
    /// A Dockerfile build's platform and boot (SmolVM's `arch`, `backend`, `boot_args`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub platform: Option<BuildPlatform>,
}

impl BuildReport {
    /// The one line both faces end a build with: `Image NAME built: kernel K rootfs R`
    /// (`(cached)` when nothing ran).
    pub fn summary(&self) -> String {
        format!(
            "Image {} {}: kernel {} rootfs {}",
            self.name,
            if self.cached { "(cached)" } else { "built" },
            self.kernel_path.display(),
            self.rootfs_path.display()
        )
    }
}

/// What `image build -t` built for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildPlatform {
    pub arch: &'static str,
    pub backend: &'static str,
    pub boot_args: String,
    pub init: String,
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

/// Build (or return from the cache) the image `opts` describes.
pub fn build(
    env: &Env,
    opts: &BuildOptions,
    progress: &Progress<BuildEvent>,
) -> Result<BuildReport> {
    build_with(env, opts, None, progress)
}

/// More work on the tree after the base and SSH access (a preset's install,
/// `core::preset_image`): its recipe text joins the fingerprint and its space the check.
pub struct Extension<'a> {
    pub recipe: String,
    pub need_mib: u64,
    pub run: &'a dyn Fn(&Path, &Job<'_>) -> Result<()>,
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
        |engine, tree, staging, job| {
            match engine {
                "debootstrap" => debootstrap(env, tree, staging, job)?,
                _ => {
                    let ctx = staging.join("context");
                    std::fs::create_dir_all(&ctx).map_err(|e| io_err("cannot create", &ctx, e))?;
                    write_file(
                        &ctx.join("Dockerfile"),
                        dockerfile(opts.base).as_bytes(),
                        0o644,
                    )?;
                    let input = engine::DockerInput {
                        context: &ctx,
                        dockerfile: None,
                        build_args: &[],
                        platform: None,
                    };
                    docker_build(env, &input, &plan.name, &plan.fp, tree, staging, job)?;
                    let _ = crate::sys::fs::remove_entry(staging, std::ffi::OsStr::new("context"));
                }
            }
            job.check()?;
            job.emit(BuildEvent::Step("installing /init and SSH access".into()));
            customise(tree, &opts.auth)?;
            ext.map_or(Ok(()), |x| (x.run)(tree, job))
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

    /// `base` with a public key for root (SmolVM's `build_alpine_ssh_key`, 512 MB, and
    /// `build_debian_ssh_key`, 2048 MB).
    pub fn build_ssh_key(
        &self,
        base: Base,
        ssh_public_key: &str,
        name: Option<&str>,
        rootfs_size_mb: Option<u64>,
    ) -> Result<(PathBuf, PathBuf)> {
        let key = Auth::Key(ssh_public_key.to_string());
        self.run(base, key, name, rootfs_size_mb)
    }
}

/// SmolVM's `image build -t NAME [CONTEXT]`: a Dockerfile build (Docker engine only).
#[derive(Debug, Clone)]
pub struct DockerfileOptions {
    pub name: String,
    /// The build context (holding `Dockerfile` unless `dockerfile` names another file).
    pub context: PathBuf,
    /// `-f`: the Dockerfile (absolute), when not `<context>/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    /// `--build-arg KEY=VALUE`, checked ([`parse_build_args`]).
    pub build_args: Vec<(String, String)>,
    /// Default 2048.
    pub size_mib: Option<u64>,
    pub kernel: PathBuf,
    pub cache_dir: PathBuf,
    /// `--arch`: the architecture Docker builds for (`docker build --platform linux/<arch>`).
    pub arch: crate::core::images::Arch,
    /// `--init`: the program the image starts with (`init=` on the kernel command line of
    /// its sandboxes); [`DEFAULT_INIT`] is SmolVM's `/init`, which the build installs.
    pub init: String,
}

pub use crate::core::images::store::{validate_init, DEFAULT_INIT, INIT_FILE};

/// `docker build --platform` can build for `arch` here: this CPU's, or another one that
/// QEMU user emulation is registered for with binfmt_misc (else RUN steps cannot run).
pub fn check_build_arch(arch: crate::core::images::Arch) -> Result<()> {
    use crate::core::images::Arch;
    let host = crate::core::images::host_arch()?;
    if arch == host {
        return Ok(());
    }
    let emulator = match arch {
        Arch::Amd64 => "qemu-x86_64",
        Arch::Arm64 => "qemu-aarch64",
    };
    if Path::new("/proc/sys/fs/binfmt_misc")
        .join(emulator)
        .exists()
    {
        return Ok(());
    }
    Err(Error::runtime(format!(
        "building for {arch} on this {host} machine needs QEMU user emulation for {arch} \
         registered with binfmt_misc ({emulator}), and there is none"
    ))
    .with_recovery(format!(
        "Install qemu-user-static (binfmt-support), or build on a {arch} machine, or leave out --arch."
    )))
}

/// `--build-arg KEY=VALUE` values: KEY as Docker's ARG names it (a letter or `_`, then
/// letters, digits, `_`), VALUE anything on one line. A bad one is `invalid_input`.
pub fn parse_build_args(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|a| {
            let (k, v) = a.split_once('=').unwrap_or((a.as_str(), ""));
            let key_ok = k
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !a.contains('=') || !key_ok || v.contains(['\n', '\0']) {
                return Err(Error::new(crate::core::error::ErrorCode::InvalidInput, format!(
                    "--build-arg must be KEY=VALUE with KEY a letter or '_' then letters, digits or '_', got {a:?}"
                )));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// SmolVM's checks of `image build -t NAME CONTEXT [-f FILE]`'s inputs, in its words
/// (`invalid_input`, exit 2): the context is a folder, and the Dockerfile (`FILE`, else
/// `CONTEXT/Dockerfile`) a file. Made before anything is fetched or run.
pub fn check_dockerfile_inputs(
    name: &str,
    context: &Path,
    dockerfile: Option<&Path>,
) -> Result<()> {
    use crate::core::error::ErrorCode::InvalidInput;
    if !context.is_dir() {
        return Err(Error::new(
            InvalidInput,
            format!("'{}' is not a folder.", context.display()),
        )
        .with_recovery(format!(
            "Pass the folder with the files your Dockerfile copies (use '.' for the current \
             one), e.g. 'smolvm image build -t {name} .'."
        )));
    }
    let file = dockerfile.map_or_else(|| context.join("Dockerfile"), Path::to_path_buf);
    if !file.is_file() {
        return Err(Error::new(
            InvalidInput,
            format!("No Dockerfile at '{}'.", file.display()),
        )
        .with_recovery("Create it, or point at one with the -f option."));
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
    check_dockerfile_inputs(&opts.name, &opts.context, opts.dockerfile.as_deref())?;
    validate_init(&opts.init)?;
    check_build_arch(opts.arch)?;
    let platform = format!("linux/{}", opts.arch);
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
        |_, tree, staging, job| {
            docker_build(
                env,
                &engine::DockerInput {
                    context: &opts.context,
                    dockerfile: opts.dockerfile.as_deref(),
                    build_args: &opts.build_args,
                    platform: Some(platform.as_str()),
                },
                &plan.name,
                &plan.fp,
                tree,
                staging,
                job,
            )?;
            // Anything at /init — even a dangling symbolic link — is the image's own: it
            // is left alone, never written through.
            let init = tree.join("init");
            if open::kind(&init).is_ok_and(|k| k.is_none()) {
                job.emit(BuildEvent::Step("installing /init".into()));
                write_file(&init, INIT_SCRIPT.as_bytes(), 0o755)?;
            }
            if opts.init != DEFAULT_INIT {
                // The program must be in the image (a link to one counts: the guest
                // resolves it); its sandboxes boot with init=<it>.
                let rel = opts.init.trim_start_matches('/');
                if std::fs::symlink_metadata(tree.join(rel)).is_err() {
                    return Err(Error::new(
                        crate::core::error::ErrorCode::InvalidInput,
                        format!("--init {}: the image has no such file", opts.init),
                    )
                    .with_recovery("Install it in the Dockerfile, or leave out --init."));
                }
                write_file(&staging.join(INIT_FILE), opts.init.as_bytes(), 0o644)?;
            }
            Ok(())
        },
    )
}

/// Checks a build can run before anything slow (the kernel download) happens: the engine
/// it would use is usable. Skipped when an image of that name is already in the cache —
/// the build may be a cache hit, which needs no engine at all (its inputs, the kernel
/// among them, decide).
pub fn preflight(
    env: &Env,
    base: Base,
    engine: Engine,
    cache_dir: &Path,
    name: &str,
) -> Result<()> {
    if cache_dir.join(name).join(".fingerprint").exists() {
        return Ok(());
    }
    let opts = BuildOptions {
        base,
        auth: Auth::Password(String::new()),
        name: Some(name.to_string()),
        size_mib: None,
        kernel: PathBuf::new(),
        cache_dir: cache_dir.to_path_buf(),
        engine,
    };
    resolve_engine(env, &opts).map(|_| ())
}

/// The kernel a build ships when none is given: the published kernel for this CPU and the
/// VMM this host uses, through the images pipeline (cached and verified in the images root).
pub fn default_kernel(env: &Env, images_root: &Path) -> Result<PathBuf> {
    let arch = crate::core::images::host_arch()?;
    let vmm = crate::core::host::Host::probe(env)
        .backend(crate::core::host::Backend::Auto)
        .value;
    kernel_for(env, images_root, arch, vmm)
}

/// The published kernel for `arch` booted by `vmm` (`--arch`/`--backend` of
/// `image build`), downloaded and verified into the images root.
pub fn kernel_for(
    env: &Env,
    images_root: &Path,
    arch: crate::core::images::Arch,
    vmm: crate::core::images::Vmm,
) -> Result<PathBuf> {
    use crate::core::images::{self, pull, Manifest};
    let recovery = "Pass --kernel PATH to use a kernel of your own.";
    if !images::published_enabled(env) {
        return Err(Error::usage(
            "published images are turned off (SMOLVM_USE_PUBLISHED=0), so there is no default kernel",
        )
        .with_recovery(recovery));
    }
    let manifest = Manifest::load(env)?;
    let Some(image) = pull::kernel_image(&manifest, arch, vmm) else {
        return Err(Error::runtime(format!(
            "the image manifest publishes no kernel for {arch}/{vmm}",
            arch = arch.as_str(),
            vmm = vmm.as_str()
        ))
        .with_recovery(recovery));
    };
    let opts = pull::PullOptions::for_manifest(env, images_root, &manifest)?;
    pull::pull_kernel(&opts, image, &Progress::none()).map_err(|e| {
        Error::runtime(format!("Failed to download kernel: {}", e.message)).with_recovery(recovery)
    })
}

/// Write a file of the image tree (or the build context) with `mode`: a new file beside it,
/// renamed over it, so a symbolic link at `p` is replaced, never written through.
pub(super) fn write_file(p: &Path, data: &[u8], mode: u32) -> Result<()> {
    open::write_atomic(p, data, mode).map_err(|e| io_err("cannot write", p, e))
}

/// Copy `from` into a new file `to` (`O_EXCL`, never through a symbolic link).
pub(super) fn copy_new(from: &Path, to: &Path) -> Result<()> {
    let mut src = std::fs::File::open(from).map_err(|e| io_err("cannot copy kernel", from, e))?;
    let mut out = open::create_new(to, 0o644).map_err(|e| io_err("cannot write", to, e))?;
    std::io::copy(&mut src, &mut out)
        .and_then(|_| out.sync_all())
        .map_err(|e| io_err("cannot copy kernel", from, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_must_be_an_absolute_path_for_the_kernel_command_line() {
        for ok in ["/init", "/sbin/init", "/usr/lib/systemd/systemd"] {
            assert!(validate_init(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "init",
            "/a b",
            "/x/../y",
            "/a\tb",
            &format!("/{}", "a".repeat(255)),
        ] {
            let e = validate_init(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

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
    fn library_face_checks_the_key_first_and_returns_cached_paths() {
        let t = tempfile::tempdir().unwrap();
        let env = Env::from_vars([("HOME", t.path().as_os_str().to_owned())], 1000);
        let kernel = t.path().join("k");
        std::fs::write(&kernel, b"kernel").unwrap();
        let b = ImageBuilder::new(&env, Some(t.path().join("c")), Some(kernel.clone()));
        let e = b
            .build_ssh_key(Base::Debian, "nope", None, None)
            .unwrap_err();
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
        let fp = fingerprint(&opts, &fingerprint::sha256_file(&kernel).unwrap());
        let dir = t.path().join("c/debian-ssh-key");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["rootfs.ext4", "vmlinux.bin"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        std::fs::write(dir.join(".fingerprint"), format!("{fp}\n")).unwrap();
        let (k, r) = b.build_ssh_key(Base::Debian, KEY, None, None).unwrap();
        assert_eq!((k, r), (dir.join("vmlinux.bin"), dir.join("rootfs.ext4")));
    }
}
