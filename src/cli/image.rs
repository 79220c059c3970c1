//! `smolvm image pull|ls|rm|inspect|build|save|load` and `smolvm images`: thin faces over
//! [`core::images`](crate::core::images).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::args::{ImageInspectArgs, ImagePullArgs, ImageRmArgs, PlatformArgs};
use super::output::{self, line, warn};
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::host::Host;
use crate::core::images::catalog::{self, Entry};
use crate::core::images::pull::{self, Artifact, Phase, PullEvent, PullReport};
use crate::core::images::{Arch, Layout, Manifest, Os, Target, Vmm};
use crate::core::progress::Progress;
use crate::core::units::format_size;
use crate::core::version::image_version;
use crate::core::Env;
use crate::core::{display_path, Paths};

struct Platform {
    arch: Option<Arch>,
    vmm: Option<Vmm>,
    os: Option<Os>,
}

/// The image store `ls`, `rm` and `inspect` act on: its paths (`--image-dir` or the
/// default) and the current image version.
pub(super) fn image_store(env: &Env, image_dir: Option<&Path>) -> Result<(Paths, String)> {
    Ok((Paths::resolve(env, image_dir), image_version(env)?))
}

fn platform(p: &PlatformArgs) -> Platform {
    Platform {
        arch: p.arch,
        vmm: p.vmm,
        os: p.os,
    }
}

#[derive(Serialize)]
struct PullData<'a> {
    preset: &'a str,
    arch: &'a str,
    vmm: &'a str,
    os: &'a str,
    version: &'a str,
    release: &'a str,
    name: &'a str,
    image_dir: &'a Path,
    kernel_path: &'a Path,
    rootfs_path: &'a Path,
    size_bytes: u64,
    downloaded_bytes: u64,
    already_cached: bool,
}

fn pull_data(r: &PullReport) -> PullData<'_> {
    PullData {
        preset: &r.preset,
        arch: r.arch.as_str(),
        vmm: r.vmm.as_str(),
        os: r.os.as_str(),
        version: &r.version,
        release: &r.release,
        name: &r.name,
        image_dir: &r.image_dir,
        kernel_path: &r.kernel_path,
        rootfs_path: &r.rootfs_path,
        size_bytes: r.size_bytes,
        downloaded_bytes: r.downloaded_bytes,
        already_cached: r.already_cached,
    }
}

#[derive(Serialize)]
struct PullFailure {
    preset: String,
    os: String,
    error: String,
}

#[derive(Serialize)]
struct PullAllData<'a> {
    arch: &'a str,
    vmm: &'a str,
    pulled: Vec<PullData<'a>>,
    failed: Vec<PullFailure>,
}

pub fn pull(command: &str, args: &ImagePullArgs, env: &Env) -> i32 {
    let paths = Paths::resolve(env, args.store.image_dir.as_deref());
    let p = platform(&args.platform);
    let host = Host::probe(env);
    let (manifest, opts) = match pull::setup(env, &paths.images_root) {
        Ok(x) => x,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let bars = Bars::new(!args.store.json && std::io::stderr().is_terminal());

    if !args.all {
        let preset = args.preset.as_deref().unwrap_or_default();
        let r = Target::resolve(preset, p.arch, p.vmm, p.os, &host).and_then(|t| {
            // A name the manifest publishes nothing under is SmolVM's `invalid_input`.
            if !manifest.images.iter().any(|i| i.preset == t.preset) {
                let mut names: Vec<&str> =
                    manifest.images.iter().map(|i| i.preset.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                return Err(crate::core::Error::new(
                    crate::core::ErrorCode::InvalidInput,
                    format!(
                        "'{preset}' is not a published image. Choose one of: {}.",
                        names.join(", ")
                    ),
                ));
            }
            let img = t.lookup(&manifest)?;
            pull::pull(&opts, img, &bars.progress(&t.name(), args.store.json))
        });
        bars.clear();
        return match r {
            Err(e) => output::fail(command, args.store.json, &e),
            Ok(r) => {
                if args.store.json {
                    output::print_json(command, 0, Some(&pull_data(&r)), None);
                } else {
                    human_pull(&r, &paths.home);
                }
                0
            }
        };
    }

    // --all: every (preset, os) published for this platform, filtered by --os.
    let t = match Target::resolve("all", p.arch, p.vmm, p.os, &host) {
        Ok(t) => t,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let report = pull::pull_all(
        &opts,
        &manifest,
        &t,
        p.os,
        |name| bars.progress(name, args.store.json),
        |r| {
            bars.clear();
            if !args.store.json {
                match r {
                    Ok(r) => human_pull(r, &paths.home),
                    Err(f) => line(format!("Failed: {} — {}", f.name, f.error.message)),
                }
            }
        },
    );
    let report = match report {
        Ok(r) => r,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let error = report.error();
    let failed: Vec<PullFailure> = report
        .failed
        .iter()
        .map(|f| PullFailure {
            preset: f.preset.clone(),
            os: f.os.to_string(),
            error: f.error.message.clone(),
        })
        .collect();
    let code = if failed.is_empty() { 0 } else { 1 };
    if args.store.json {
        let data = PullAllData {
            arch: t.arch.as_str(),
            vmm: t.vmm.as_str(),
            pulled: report.pulled.iter().map(pull_data).collect(),
            failed,
        };
        output::print_json(command, code, Some(&data), error.as_ref());
    } else if let Some(e) = error {
        output::err_line(format!("Error: {}", e.message));
    }
    code
}

fn human_pull(r: &PullReport, home: &Path) {
    let state = if r.already_cached {
        "Already cached:"
    } else {
        "Pulled"
    };
    line(format!(
        "{state} {} ({})",
        r.name,
        format_size(r.size_bytes)
    ));
    line(format!("  kernel: {}", display_path(&r.kernel_path, home)));
    line(format!("  rootfs: {}", display_path(&r.rootfs_path, home)));
}

/// An indicatif bar on stderr when it is a terminal; otherwise only retries and waits
/// are reported (as warnings), and nothing at all with `--json`.
struct Bars {
    bar: Option<indicatif::ProgressBar>,
}

impl Bars {
    fn new(tty: bool) -> Self {
        let bar = tty.then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        Bars { bar }
    }

    fn progress(&self, name: &str, json: bool) -> Progress<PullEvent> {
        if json {
            return Progress::none();
        }
        let bar = self.bar.clone();
        let name = name.to_string();
        let last: Arc<Mutex<(Artifact, Phase)>> =
            Arc::new(Mutex::new((Artifact::Kernel, Phase::Download)));
        Progress::new(move |ev| match ev {
            PullEvent::Progress {
                artifact,
                phase,
                bytes,
                total,
            } => {
                if let Some(b) = &bar {
                    if let Ok(mut l) = last.lock() {
                        if *l != (artifact, phase) {
                            *l = (artifact, phase);
                            b.set_message(format!(
                                "{name} {} {}",
                                artifact.as_str(),
                                phase.as_str()
                            ));
                            b.reset();
                        }
                    }
                    if let Some(t) = total {
                        b.set_length(t);
                    }
                    b.set_position(bytes);
                }
            }
            PullEvent::Retry {
                artifact,
                attempt,
                reason,
            } => {
                let msg = format!(
                    "{name} {}: {reason}; retrying (attempt {})",
                    artifact.as_str(),
                    attempt + 1
                );
                match &bar {
                    Some(b) => b.println(format!("Warning: {msg}")),
                    None => warn(msg),
                }
            }
            PullEvent::Waiting { artifact } => {
                let msg = format!(
                    "another smolvm is pulling {name} {}; waiting for it",
                    artifact.as_str()
                );
                match &bar {
                    Some(b) => b.println(msg),
                    None => warn(msg),
                }
            }
            PullEvent::Cached { .. } | PullEvent::Ready { .. } => {}
        })
    }

    fn clear(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[derive(Serialize)]
struct EntryData<'a> {
    version: &'a str,
    name: &'a str,
    preset: &'a str,
    arch: &'a str,
    vmm: &'a str,
    os: &'a str,
    path: &'a Path,
    compressed_bytes: u64,
    unpacked_bytes: u64,
    on_disk_bytes: u64,
    current: bool,
    status: &'a str,
    ready: bool,
    in_use_by: &'a [String],
}

fn entry_data(e: &Entry) -> EntryData<'_> {
    EntryData {
        version: &e.version,
        name: &e.name,
        preset: &e.preset,
        arch: e.arch.as_str(),
        vmm: e.vmm.as_str(),
        os: e.os.as_str(),
        path: &e.path,
        compressed_bytes: e.compressed_bytes,
        unpacked_bytes: e.unpacked_bytes,
        on_disk_bytes: e.on_disk_bytes,
        current: e.current,
        status: if e.current { "current" } else { "stale" },
        ready: e.ready,
        in_use_by: &e.in_use_by,
    }
}

pub use super::image_list::list;

#[derive(Serialize)]
struct RmData<'a> {
    removed: Vec<EntryData<'a>>,
    kept: Vec<KeptData<'a>>,
    failed: Vec<RmFailure<'a>>,
    freed_bytes: u64,
    dry_run: bool,
}

/// A kept image: its entry and why (`in use by VM …`, `open by process …`).
#[derive(Serialize)]
struct KeptData<'a> {
    #[serde(flatten)]
    entry: EntryData<'a>,
    reason: String,
}

#[derive(Serialize)]
struct RmFailure<'a> {
    path: &'a Path,
    error: &'a str,
}

pub fn rm(command: &str, args: &ImageRmArgs, env: &Env) -> i32 {
    let (paths, version) = match image_store(env, args.store.image_dir.as_deref()) {
        Ok(s) => s,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let r = match catalog::remove(
        &paths.images_root,
        &version,
        &paths.existing_state_dbs(),
        &args.presets,
        args.dry_run,
    ) {
        Ok(r) => r,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    for w in &r.warnings {
        warn(w.clone());
    }
    let freed: u64 = r.removed.iter().map(|e| e.on_disk_bytes).sum();
    let problems = r.kept.len() + r.failed.len();
    let code = if problems == 0 { 0 } else { 1 };
    if args.store.json {
        let error = (problems > 0).then(|| {
            Error::new(
                ErrorCode::PartialFailure,
                format!("{problems} image(s) could not be removed"),
            )
        });
        let data = RmData {
            removed: r.removed.iter().map(entry_data).collect(),
            kept: r
                .kept
                .iter()
                .map(|(e, why)| KeptData {
                    entry: entry_data(e),
                    reason: why.to_string(),
                })
                .collect(),
            failed: r
                .failed
                .iter()
                .map(|(e, m)| RmFailure {
                    path: &e.path,
                    error: m,
                })
                .collect(),
            freed_bytes: freed,
            dry_run: args.dry_run,
        };
        output::print_json(command, code, Some(&data), error.as_ref());
        return code;
    }
    let verb = if args.dry_run {
        "Would remove:"
    } else {
        "Removed:"
    };
    for e in &r.removed {
        line(format!("{verb} {}/", display_path(&e.path, &paths.home)));
    }
    for (e, why) in &r.kept {
        line(format!(
            "Kept:    {}/ ({why})",
            display_path(&e.path, &paths.home)
        ));
    }
    for (e, m) in &r.failed {
        line(format!(
            "Failed:  {}/ ({m})",
            display_path(&e.path, &paths.home)
        ));
    }
    if args.dry_run {
        line(format!(
            "Would free {}. Dry run complete. No changes made.",
            format_size(freed)
        ));
    } else {
        line(format!("Freed {}.", format_size(freed)));
    }
    code
}

#[derive(Serialize)]
struct InspectData<'a> {
    name: &'a str,
    preset: &'a str,
    arch: &'a str,
    vmm: &'a str,
    os: &'a str,
    version: &'a str,
    release: &'a str,
    manifest: &'a str,
    kernel_url: &'a str,
    kernel_sha256: &'a str,
    rootfs_url: &'a str,
    rootfs_sha256: &'a str,
    image_dir: &'a Path,
    kernel_path: &'a Path,
    rootfs_path: std::path::PathBuf,
    ready: bool,
    rootfs_sidecar: Option<&'a str>,
    expected_sidecar: &'a str,
    files: Vec<FileData<'a>>,
}

#[derive(Serialize)]
struct FileData<'a> {
    name: &'a str,
    path: &'a Path,
    size_bytes: u64,
    on_disk_bytes: u64,
}

pub fn inspect(command: &str, args: &ImageInspectArgs, env: &Env) -> i32 {
    let (paths, version) = match image_store(env, args.store.image_dir.as_deref()) {
        Ok(s) => s,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let layout = Layout::new(&paths.images_root, &version);
    let p = platform(&args.platform);
    let r = catalog::inspect_named(
        env,
        &Host::probe(env),
        &layout,
        &args.preset,
        (p.arch, p.vmm, p.os),
    );
    let (i, m) = match r {
        Ok(x) => x,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let data = InspectData {
        name: &i.name,
        preset: &i.image.preset,
        arch: i.image.arch.as_str(),
        vmm: i.image.vmm.as_str(),
        os: i.image.os.as_str(),
        version: &version,
        release: &m.release,
        manifest: &m.source,
        kernel_url: i.image.kernel_url.as_str(),
        kernel_sha256: &i.image.kernel_sha256,
        rootfs_url: i.image.rootfs_url.as_str(),
        rootfs_sha256: &i.image.rootfs_sha256,
        image_dir: &i.image_dir,
        kernel_path: &i.kernel_path,
        rootfs_path: i.image_dir.join(crate::core::images::ROOTFS),
        ready: i.ready,
        rootfs_sidecar: i.sidecar.as_deref(),
        expected_sidecar: &i.expected_sidecar,
        files: i
            .files
            .iter()
            .map(|f| FileData {
                name: &f.name,
                path: &f.path,
                size_bytes: f.size_bytes,
                on_disk_bytes: f.on_disk_bytes,
            })
            .collect(),
    };
    if args.store.json {
        output::print_json(command, 0, Some(&data), None);
        return 0;
    }
    let h = &paths.home;
    line(format!("Name:           {}", data.name));
    line(format!(
        "Platform:       {}/{}/{}",
        data.arch, data.vmm, data.os
    ));
    line(format!("Version:        {}", data.version));
    line(format!(
        "Release:        {} ({})",
        data.release, data.manifest
    ));
    line(format!("Kernel URL:     {}", data.kernel_url));
    line(format!("Kernel SHA-256: {}", data.kernel_sha256));
    line(format!("Rootfs URL:     {}", data.rootfs_url));
    line(format!("Rootfs SHA-256: {}", data.rootfs_sha256));
    line(format!(
        "Path:           {}",
        display_path(data.image_dir, h)
    ));
    line(format!(
        "Status:         {}",
        if data.ready { "ready" } else { "not pulled" }
    ));
    if let Some(s) = data.rootfs_sidecar {
        line(format!("Rootfs sidecar: {s}"));
    }
    for f in &data.files {
        line(format!(
            "  {}  {} ({} on disk)",
            display_path(f.path, h),
            format_size(f.size_bytes),
            format_size(f.on_disk_bytes)
        ));
    }
    0
}

/// `smolvm image build`: a thin face over [`core::builder::build`](crate::core::builder::build)
/// and, for SmolVM's `-t NAME [CONTEXT]` form, `build_dockerfile`.
/// Exit codes: 0 built or cached, 1 the build failed (nothing half-built is left), 2 usage.
pub fn build(command: &str, args: &super::args::ImageBuildArgs, env: &Env) -> i32 {
    use crate::core::builder::{self, Auth, Base, BuildEvent, BuildOptions, Engine};
    use std::path::PathBuf;
    let kernel = || -> Result<PathBuf> {
        match &args.kernel {
            Some(k) => Ok(k.clone()),
            None => {
                if !args.json {
                    line("Fetching the published kernel (--kernel not given)");
                }
                builder::default_kernel(env, &Paths::resolve(env, None).images_root)
            }
        }
    };
    let cache_dir = Paths::resolve(env, args.cache_dir.as_deref()).images_root;
    let progress = || {
        if args.json {
            Progress::none()
        } else {
            Progress::new(|e: BuildEvent| match e {
                BuildEvent::Cached => {
                    line("Up to date (cached): inputs unchanged, nothing to build")
                }
                BuildEvent::Engine(engine) => line(format!("Building with the {engine} engine")),
                BuildEvent::Step(s) => line(format!("  {s}")),
            })
        }
    };
    let result = (|| match &args.tag {
        None if args.preset.is_some() => {
            let presets = crate::core::presets::Registry::load(env);
            for p in &presets.problems {
                super::output::warn(p);
            }
            let preset = presets.lookup(args.preset.as_deref().unwrap_or_default())?;
            let base = args.base.unwrap_or(Base::Debian);
            preset.recipe(base)?;
            let name = crate::core::presets::build::local_name(&preset.name);
            builder::check_replaceable(&cache_dir, &name)?;
            let engine = args.engine;
            builder::preflight(env, base, engine, &cache_dir, &name)?;
            let kernel = match &args.kernel {
                Some(k) => k.clone(),
                None => {
                    let vmm = crate::core::host::Host::probe(env)
                        .backend(crate::core::host::Backend::Auto)
                        .value;
                    crate::core::presets::build::manifest_kernel(
                        env,
                        &Paths::resolve(env, None).images_root,
                        vmm,
                    )?
                }
            };
            let opts = crate::core::presets::build::PresetBuildOptions {
                preset: preset.clone(),
                base,
                engine: args.engine,
                kernel,
                cache_dir: cache_dir.clone(),
                size_mib: args.size,
                install_timeout: args
                    .install_timeout
                    .unwrap_or(crate::core::presets::build::DEFAULT_INSTALL_TIMEOUT),
            };
            crate::core::presets::build::build(env, &opts, &progress())
        }
        Some(tag) => {
            // Before the kernel download: never replace what smolvm did not build, and
            // Docker must answer.
            builder::check_replaceable(&cache_dir, tag)?;
            let context = args.context.clone().unwrap_or_else(|| PathBuf::from("."));
            // A missing Dockerfile is the build's usage error, before the engine's.
            if context.join("Dockerfile").is_file() {
                builder::preflight(env, Base::Alpine, Engine::Docker, &cache_dir, tag)?;
            }
            let opts = builder::DockerfileOptions {
                name: tag.clone(),
                context: std::path::absolute(&context).unwrap_or(context),
                size_mib: args.size,
                kernel: kernel()?,
                cache_dir: cache_dir.clone(),
            };
            builder::build_dockerfile(env, &opts, &progress())
        }
        None => {
            let base = args
                .base
                .ok_or_else(|| Error::usage("pass --base alpine|debian (or -t NAME CONTEXT)"))?;
            let auth = match (&args.ssh_password, &args.ssh_key) {
                (Some(p), _) => Auth::Password(p.clone()),
                (None, Some(f)) => Auth::Key(builder::validate_public_key(
                    &std::fs::read_to_string(f).map_err(|e| {
                        Error::runtime(format!(
                            "cannot read SSH key {}: {}",
                            f.display(),
                            crate::core::error::io_reason(&e)
                        ))
                    })?,
                )?),
                (None, None) => return Err(Error::usage("pass --ssh-password or --ssh-key")),
            };
            let mut opts = BuildOptions {
                base,
                auth,
                name: args.name.clone(),
                size_mib: args.size,
                kernel: PathBuf::new(),
                cache_dir: cache_dir.clone(),
                engine: args.engine,
            };
            // Before the kernel download: never replace what smolvm did not build, and
            // the engine must be usable.
            builder::check_replaceable(&cache_dir, &opts.name())?;
            builder::preflight(env, opts.base, opts.engine, &cache_dir, &opts.name())?;
            opts.kernel = kernel()?;
            builder::build(env, &opts, &progress())
        }
    })();
    match result {
        Ok(r) => {
            if args.json {
                output::print_json(command, 0, Some(&r), None);
            } else {
                line(format!(
                    "Image {} {}: kernel {} rootfs {}",
                    r.name,
                    if r.cached { "(cached)" } else { "built" },
                    r.kernel_path.display(),
                    r.rootfs_path.display()
                ));
            }
            0
        }
        Err(e) => output::fail(command, args.json, &e),
    }
}

/// A byte bar per file on stderr when it is a terminal (and not `--json`); nothing else.
fn archive_progress(
    json: bool,
) -> (
    Progress<crate::core::images::archive::ArchiveEvent>,
    Option<indicatif::ProgressBar>,
) {
    use crate::core::images::archive::ArchiveEvent;
    if json || !std::io::stderr().is_terminal() {
        return (Progress::none(), None);
    }
    let bar = Bars::new(true).bar;
    let b = bar.clone();
    let last: Mutex<(String, &'static str)> = Mutex::new((String::new(), ""));
    let p = Progress::new(move |e: ArchiveEvent| {
        let Some(b) = &b else { return };
        if let Ok(mut l) = last.lock() {
            if l.0 != e.file || l.1 != e.phase.as_str() {
                *l = (e.file.clone(), e.phase.as_str());
                b.set_message(format!("{} {}", e.file, e.phase.as_str()));
                b.reset();
                b.set_length(e.total);
            }
        }
        b.set_position(e.bytes);
    });
    (p, bar)
}

/// `smolvm image save -o FILE NAME`: a thin face over
/// [`archive::save`](crate::core::images::archive::save).
/// Exit codes: 0 written, 1 no such image / FILE exists (without `--force`) / I/O, 2 usage.
pub fn save(command: &str, args: &super::args::ImageSaveArgs, env: &Env) -> i32 {
    use crate::core::images::archive::{self, SaveOptions};
    let opts = SaveOptions {
        name: args.name.clone(),
        output: std::path::absolute(&args.output).unwrap_or_else(|_| args.output.clone()),
        force: args.force,
    };
    with_archive(
        command,
        args.json,
        args.image_dir.as_deref(),
        env,
        |paths, version, progress| archive::save(paths, version, &opts, progress),
        |r, home| {
            line(format!(
                "Saved {} image {} to {} ({})",
                r.kind.as_str(),
                r.name,
                display_path(&r.output, home),
                format_size(r.archive_bytes)
            ))
        },
    )
}

/// `smolvm image load -i FILE`: a thin face over
/// [`archive::load`](crate::core::images::archive::load).
/// Exit codes: 0 loaded, 1 a bad archive / the image exists (without `--force`) / I/O,
/// 2 usage.
pub fn load(command: &str, args: &super::args::ImageLoadArgs, env: &Env) -> i32 {
    use crate::core::images::archive::{self, LoadOptions};
    // A file that cannot be opened is SmolVM's `invalid_input` (exit 2).
    if let Err(e) = std::fs::metadata(&args.input) {
        let err = crate::core::Error::new(
            crate::core::ErrorCode::InvalidInput,
            format!(
                "Could not open '{}': {}",
                args.input.display(),
                crate::core::error::io_reason(&e)
            ),
        )
        .with_recovery(
            "Check that the file was created by 'smolvm image save' and is not corrupted.",
        );
        return output::fail(command, args.json, &err);
    }
    let opts = LoadOptions {
        input: args.input.clone(),
        force: args.force,
    };
    with_archive(
        command,
        args.json,
        args.image_dir.as_deref(),
        env,
        |paths, version, progress| {
            archive::load(paths, version, || Manifest::load(env), &opts, progress)
        },
        |r, home| {
            line(format!(
                "Loaded {} image {}{} into {}",
                r.kind.as_str(),
                r.name,
                if r.replaced { " (replaced)" } else { "" },
                display_path(&r.image_dir, home)
            ));
            line(format!("  kernel: {}", display_path(&r.kernel_path, home)));
            line(format!("  rootfs: {}", display_path(&r.rootfs_path, home)));
        },
    )
}

/// `save` and `load`: `op` on the image store with a byte bar (cleared before the result
/// is printed), then the envelope with `--json`, else `human` (given the home directory
/// paths are shown relative to).
fn with_archive<T: Serialize>(
    command: &str,
    json: bool,
    image_dir: Option<&Path>,
    env: &Env,
    op: impl FnOnce(&Paths, &str, &Progress<crate::core::images::archive::ArchiveEvent>) -> Result<T>,
    human: impl FnOnce(&T, &Path),
) -> i32 {
    let (paths, version) = match image_store(env, image_dir) {
        Ok(s) => s,
        Err(e) => return output::fail(command, json, &e),
    };
    let (progress, bar) = archive_progress(json);
    let r = op(&paths, &version, &progress);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match r {
        Err(e) => output::fail(command, json, &e),
        Ok(r) => {
            if json {
                output::print_json(command, 0, Some(&r), None);
            } else {
                human(&r, &paths.home);
            }
            0
        }
    }
}
