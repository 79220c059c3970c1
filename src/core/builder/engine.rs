//! The engines that make an image's tree, and the choice between them: Docker when asked
//! (and diagnosed healthy) or, for `auto`, when its daemon answers; else debootstrap for
//! Debian. A failed step reads as `Image build failed: …`, or as our disk-space message
//! when its output says the disk is full.

use std::path::{Path, PathBuf};

use super::recipe::{debian_mirror, DEBIAN_PACKAGES, DEBIAN_SUITE};
use super::{io_err, Base, BuildEvent, BuildOptions, Engine, Job};
use crate::core::docker::{self, DockerProblem};
use crate::core::error::{io_reason, Error, ErrorCode, Result};
use crate::sys::build as proc;
use crate::sys::env::Env;

/// Pick the engine: Docker when asked (and diagnosed healthy) or, for `auto`, when its
/// daemon answers; else debootstrap for Debian.
pub(super) fn resolve_engine(env: &Env, opts: &BuildOptions) -> Result<&'static str> {
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
pub(super) fn step_error(
    dir: &Path,
    need_mib: u64,
    output: &str,
    what: &str,
    lines: usize,
) -> Error {
    if no_space(output) {
        return space_error(dir, need_mib);
    }
    Error::runtime(format!("Image build failed: {what}{}", tail(output, lines)))
}

pub(super) fn space_error(cache_dir: &Path, need_mib: u64) -> Error {
    // One unit in one sentence: both figures in MiB.
    let free = crate::core::doctor::free_bytes(cache_dir)
        .map(|(_, b)| format!("{} MiB", b >> 20))
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

/// The last `n` lines of a step's output, joined: what an error shows of it.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A failed step of an engine building in `staging` (inside the cache dir, which needs
/// room for a Debian-sized tree).
fn staging_error(staging: &Path, text: &str, what: &str, lines: usize) -> Error {
    step_error(
        staging.parent().unwrap_or(staging),
        Base::Debian.build_space_mib(),
        text,
        what,
        lines,
    )
}

pub(super) fn debootstrap(env: &Env, tree: &Path, staging: &Path, job: &Job<'_>) -> Result<()> {
    let bin = debootstrap_usable(env)?;
    let mirror = debian_mirror(env);
    job.emit(BuildEvent::Step(format!(
        "debootstrap {DEBIAN_SUITE} (minbase +{DEBIAN_PACKAGES}) from {mirror}"
    )));
    let out = proc::debootstrap(&bin, DEBIAN_PACKAGES, DEBIAN_SUITE, tree, &mirror, &|| {
        job.stopped()
    })
    .map_err(|e| Error::runtime(format!("cannot run debootstrap: {}", io_reason(&e))))?;
    let out = job.finished(out)?;
    if !out.status.success() {
        let mut text = proc::output_text(&out);
        if let Ok(more) = std::fs::read_to_string(tree.join("debootstrap/debootstrap.log")) {
            text.push_str(&more);
        }
        return Err(staging_error(
            staging,
            &text,
            &format!("debootstrap exited with {}:\n", out.status),
            15,
        ));
    }
    Ok(())
}
/// What `docker build` is given: the context, `-f`, `--build-arg`s.
pub(super) struct DockerInput<'a> {
    pub context: &'a Path,
    pub dockerfile: Option<&'a Path>,
    pub build_args: &'a [(String, String)],
    /// `--platform` of `docker build` (`None`: this CPU's).
    pub platform: Option<&'a str>,
}

/// `docker build` of a build context, `docker create`, `docker export` streamed into
/// `tar -x` (file ownership kept, hence root), then the container is removed.
pub(super) fn docker_build(
    env: &Env,
    input: &DockerInput<'_>,
    name: &str,
    fp: &str,
    tree: &Path,
    staging: &Path,
    job: &Job<'_>,
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
    // What builds killed midway left on the daemon (their containers), before this one
    // adds its own.
    for id in proc::sweep_build_containers(&docker, &|| job.stopped()) {
        job.emit(BuildEvent::Step(format!(
            "removed container {} that a killed build left",
            &id[..12]
        )));
    }
    let platform = input.platform.unwrap_or(match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    });
    let tag = format!("smolvm-build/{}:{}", name.to_ascii_lowercase(), &fp[..12]);
    job.emit(BuildEvent::Step(format!(
        "docker build -t {tag} ({platform})"
    )));
    let out = proc::docker_build(
        &docker,
        platform,
        &tag,
        input.context,
        input.dockerfile,
        input.build_args,
        &|| job.stopped(),
    )
    .map_err(|e| Error::runtime(format!("cannot run docker: {}", io_reason(&e))))?;
    let out = job.finished(out)?;
    if !out.status.success() {
        let text = proc::output_text(&out);
        return Err(staging_error(staging, &text, "docker build:\n", 15));
    }
    let container = proc::docker_create(&docker, &tag)
        .map_err(|e| Error::runtime(format!("cannot run docker: {}", io_reason(&e))))?
        .map_err(|said| Error::runtime(format!("Image build failed: docker create: {said}")))?;
    job.check()?;
    job.emit(BuildEvent::Step("docker export | tar -x".into()));
    std::fs::create_dir_all(tree).map_err(|e| io_err("cannot create", tree, e))?;
    let (exported, tar) = proc::docker_export(&docker, &container, tree).map_err(|e| match e {
        proc::ExportError::Docker(e) => {
            Error::runtime(format!("cannot run docker: {}", io_reason(&e)))
        }
        proc::ExportError::Tar(e) => Error::runtime(format!("cannot run tar: {}", io_reason(&e))),
        proc::ExportError::Wait(e) => Error::runtime(format!("docker export: {}", io_reason(&e))),
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&exported.stderr),
        String::from_utf8_lossy(&tar.stderr)
    );
    if !exported.status.success() || !tar.status.success() {
        return Err(staging_error(staging, &text, "docker export: ", 10));
    }
    Ok(())
}
