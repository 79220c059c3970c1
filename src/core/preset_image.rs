//! A preset's local image (here, above both `presets` and `images`, so the preset registry
//! sits below the image store), `<images root>/<preset>-local/`: the image builder's base
//! (debootstrap or Docker, `/init`, SSH access), then the preset's packages, install steps,
//! verify command and version requirements run **in a chroot of the new root**, then
//! `mkfs.ext4 -d` — all through [`builder::build_with`], so the cache (`.fingerprint` of
//! base, recipe, kernel SHA-256 …), the staging directory and the atomic swap-in are the
//! builder's.
//!
//! Each step runs as `unshare --mount --pid --fork --kill-child --propagation private`:
//! its own mount namespace (where `/proc`, `/dev`, a tmpfs on `/run` holding a copy of the
//! host's resolver file and CA bundle, and the resolver bind mount exist) and its own PID
//! namespace. When the step ends — finished, failed, timed out and killed, or smolvm killed
//! (the `unshare` dies with its parent) — the namespaces die and every mount with them:
//! nothing is mounted on the host, ever, and nothing of the host's resolver or CA bundle
//! stays in the image. Steps see the host's CA bundle through `SSL_CERT_FILE`,
//! `NODE_EXTRA_CA_CERTS`, `npm_config_cafile`, `PIP_CERT`… (TLS-intercepting proxies).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::builder::output_tail as tail;
use crate::core::builder::{self, Auth, Base, BuildEvent, BuildOptions, BuildReport, Engine, Job};
use crate::core::error::{io_err, io_reason, Error, Result};
use crate::core::images::Vmm;
use crate::core::presets::{Preset, Recipe};
use crate::core::progress::Progress;
use crate::sys::env::Env;

/// `--install-timeout` default: each step's bound (SmolVM's 600 s).
pub const DEFAULT_INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Extra free space a preset build needs beyond the base's (MiB): node_modules and the
/// ext4 copy of them.
const PRESET_SPACE_MIB: u64 = 4096;

/// Where the host's files are copied for the steps (a tmpfs of the step's namespace).
const HOST_DIR: &str = "/run/smolvm-host";

/// The local image's name: `<preset>-local`.
pub fn local_name(preset: &str) -> String {
    format!("{preset}-local")
}

/// What a preset build needs.
#[derive(Debug, Clone)]
pub struct PresetBuildOptions {
    pub preset: Preset,
    pub base: Base,
    pub engine: Engine,
    /// Shipped with the image (its SHA-256 is in the fingerprint).
    pub kernel: PathBuf,
    /// The images root (the image is `<cache_dir>/<preset>-local/`).
    pub cache_dir: PathBuf,
    /// Default: the preset's `disk_mib`.
    pub size_mib: Option<u64>,
    pub install_timeout: Duration,
}

/// What `image build --preset P` asks for, from either face.
#[derive(Debug, Clone)]
pub struct PresetBuildRequest {
    /// The preset's name or alias (the context's registry, the user's file included).
    pub preset: String,
    /// Default: Debian.
    pub base: Option<Base>,
    pub engine: Engine,
    /// Default: the manifest's kernel for this host's VMM.
    pub kernel: Option<PathBuf>,
    /// The images root (or `--image-dir`).
    pub cache_dir: PathBuf,
    pub size_mib: Option<u64>,
    /// Default: [`DEFAULT_INSTALL_TIMEOUT`].
    pub install_timeout: Option<Duration>,
}

/// `image build --preset P`, the CLI's and the dashboard's: the preset looked up, its
/// recipe for the base, the image's place and the engine checked before anything slow
/// (the kernel download), the kernel (given, or the manifest's for the VMM this host
/// uses), then the build ([`build`]; stopped by its progress's cancel or a signal).
pub fn build_requested(
    cx: &crate::core::context::Context,
    req: &PresetBuildRequest,
    progress: &Progress<BuildEvent>,
) -> Result<BuildReport> {
    let env = cx.env();
    let preset = cx.presets().lookup(&req.preset)?;
    let base = req.base.unwrap_or(Base::Debian);
    preset.recipe(base)?;
    let name = local_name(&preset.name);
    // A cancel that came first: nothing starts.
    let job = builder::Job::new(&name, progress);
    job.check()?;
    builder::check_replaceable(&req.cache_dir, &name)?;
    builder::preflight(env, base, req.engine, &req.cache_dir, &name)?;
    let kernel = match &req.kernel {
        Some(k) => k.clone(),
        None => {
            let vmm = cx.host().backend(crate::core::host::Backend::Auto).value;
            manifest_kernel(env, &cx.paths().images_root, vmm, progress)?
        }
    };
    job.check()?;
    let opts = PresetBuildOptions {
        preset: preset.clone(),
        base,
        engine: req.engine,
        kernel,
        cache_dir: req.cache_dir.clone(),
        size_mib: req.size_mib,
        install_timeout: req.install_timeout.unwrap_or(DEFAULT_INSTALL_TIMEOUT),
    };
    build(env, &opts, progress)
}

/// The key the builder's SSH step is given: a well-formed ed25519 key no one holds (all
/// zero), removed again after the install. A preset image carries no key of its own —
/// each boot passes smolvm's (`smolvm.authorized_key_b64=`) — so one image serves every
/// user and key directory, and its fingerprint does not depend on them.
const NO_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA smolvm-preset-image";

/// The recipe text in the fingerprint: everything that decides what the steps install.
pub fn recipe_text(preset: &Preset, base: Base, recipe: &Recipe) -> String {
    let mut t = format!(
        "preset-recipe-v1\nname={}\nbase={}\npackages={}\n",
        preset.name,
        base.as_str(),
        recipe.packages.join(" ")
    );
    for s in &recipe.steps {
        t.push_str(&format!("step={s}\n"));
    }
    t.push_str(&format!(
        "verify={}\n",
        preset.verify.as_deref().unwrap_or_default()
    ));
    for r in &preset.requires {
        t.push_str(&format!("requires={}>={}\n", r.tool, r.shown()));
    }
    t.push_str(&format!("wrapper={}\n", STEP_SCRIPT));
    t
}

/// Build (or return from the cache) the preset's local image.
pub fn build(
    env: &Env,
    opts: &PresetBuildOptions,
    progress: &Progress<BuildEvent>,
) -> Result<BuildReport> {
    let recipe = opts.preset.recipe(opts.base)?.clone();
    if opts.base == Base::Debian && opts.engine != Engine::Docker && !env.is_root() {
        return Err(Error::runtime(
            "building a preset image needs root (debootstrap and a chroot of the new root)",
        )
        .with_recovery("Run it with sudo."));
    }
    let bopts = BuildOptions {
        base: opts.base,
        auth: Auth::Key(NO_KEY.to_string()),
        name: Some(local_name(&opts.preset.name)),
        size_mib: Some(opts.size_mib.unwrap_or(opts.preset.disk_mib)),
        kernel: opts.kernel.clone(),
        cache_dir: opts.cache_dir.clone(),
        engine: opts.engine,
    };
    let preset = opts.preset.clone();
    let base = opts.base;
    let timeout = opts.install_timeout;
    let install =
        move |tree: &Path, job: &Job<'_>| install(tree, &preset, base, &recipe, timeout, job);
    let ext = builder::Extension {
        recipe: recipe_text(&opts.preset, opts.base, opts.preset.recipe(opts.base)?),
        need_mib: PRESET_SPACE_MIB,
        run: &install,
    };
    builder::build_with(env, &bopts, Some(&ext), progress)
}

/// The kernel a preset image ships when none is given: the manifest's kernel for this CPU
/// and `vmm` — also with `SMOLVM_USE_PUBLISHED=0`, which makes only the root file system
/// local.
///
/// The download stops at `progress`'s cancel (the build's), as an `interrupted` error.
pub fn manifest_kernel(
    env: &Env,
    images_root: &Path,
    vmm: Vmm,
    progress: &Progress<BuildEvent>,
) -> Result<PathBuf> {
    use crate::core::images::{self, pull, Manifest};
    let manifest = Manifest::load(env)?;
    let arch = images::host_arch()?;
    let Some(image) = pull::kernel_image(&manifest, arch, vmm) else {
        return Err(Error::runtime(format!(
            "the image manifest has no kernel for {}/{}",
            arch.as_str(),
            vmm.as_str()
        ))
        .with_recovery("Point SMOLVM_MANIFEST at a manifest with a kernel for this host."));
    };
    let opts = pull::PullOptions::for_manifest(env, images_root, &manifest)?;
    pull::pull_kernel(&opts, image, &progress.beside(|_| {})).map_err(|e| {
        if crate::core::job::is_cancel(&e) {
            e
        } else {
            Error::runtime(format!("Failed to download kernel: {}", e.message))
        }
    })
}

/// The preset's local image for a start, built first when it is missing or its recipe,
/// base or kernel changed: `(kernel, rootfs)`.
pub fn ensure_local(
    env: &Env,
    images_root: &Path,
    preset: &Preset,
    base: Base,
    vmm: Vmm,
    install_timeout: Option<Duration>,
    progress: &Progress<BuildEvent>,
) -> Result<BuildReport> {
    let opts = PresetBuildOptions {
        preset: preset.clone(),
        base,
        engine: Engine::Auto,
        kernel: manifest_kernel(env, images_root, vmm, progress)?,
        cache_dir: images_root.to_path_buf(),
        size_mib: None,
        install_timeout: install_timeout.unwrap_or(DEFAULT_INSTALL_TIMEOUT),
    };
    build(env, &opts, progress)
}

/// The commands run in the new root, in order: packages, steps, cleanup.
fn commands(base: Base, recipe: &Recipe) -> Vec<String> {
    let mut c = Vec::new();
    if !recipe.packages.is_empty() {
        let pkgs = recipe.packages.join(" ");
        c.push(match base {
            Base::Debian => {
                format!("apt-get update -q && apt-get install -y -q --no-install-recommends {pkgs}")
            }
            Base::Alpine => format!("apk add --no-cache {pkgs}"),
        });
    }
    c.extend(recipe.steps.iter().cloned());
    c
}

/// Caches the install leaves behind (not needed in a sandbox).
const CLEANUP: &str = "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /root/.npm /root/.cache \
                       /tmp/* 2>/dev/null; if command -v apt-get >/dev/null; then apt-get clean; fi; true";

fn install(
    tree: &Path,
    preset: &Preset,
    base: Base,
    recipe: &Recipe,
    timeout: Duration,
    job: &Job<'_>,
) -> Result<()> {
    // Daemons installed by packages are not started in the chroot (Debian's policy-rc.d);
    // the resolver bind mount needs a file to mount over.
    let policy = tree.join("usr/sbin/policy-rc.d");
    let had_policy = policy.exists();
    if base == Base::Debian && !had_policy {
        crate::sys::open::write_atomic(&policy, b"#!/bin/sh\nexit 101\n", 0o755)
            .map_err(|e| io_err("cannot write", &policy, e))?;
    }
    let resolv = tree.join("etc/resolv.conf");
    let had_resolv = crate::sys::open::kind(&resolv).is_ok_and(|k| k.is_some());
    if !had_resolv {
        crate::sys::open::write_atomic(&resolv, b"", 0o644)
            .map_err(|e| io_err("cannot write", &resolv, e))?;
    }
    let r = (|| {
        let cmds = commands(base, recipe);
        let n = cmds.len() + usize::from(preset.verify.is_some());
        for (i, cmd) in cmds.iter().enumerate() {
            job.emit(BuildEvent::Step(format!(
                "[{}/{n}] {} (in the new root)",
                i + 1,
                cmd
            )));
            let out = run_step(tree, cmd, timeout, job)?;
            if !out.0 {
                return Err(step_failed(&preset.name, cmd, &out.1));
            }
        }
        if let Some(v) = &preset.verify {
            job.emit(BuildEvent::Step(format!("[{n}/{n}] verify: {v}")));
            let (ok, text) = run_step(tree, v, timeout, job)?;
            if !ok {
                return Err(Error::runtime(format!(
                    "Image build failed: preset '{}' verify command `{v}` failed:\n{}",
                    preset.name,
                    tail(&text, 10)
                )));
            }
            job.emit(BuildEvent::Step(format!(
                "verified: {}",
                text.lines().last().unwrap_or_default().trim()
            )));
        }
        for req in &preset.requires {
            let (probe, what) = req.probe();
            let (_, text) = run_step(tree, probe, timeout, job)?;
            match req.met_by(&text) {
                Some(true) => {}
                Some(false) => {
                    return Err(Error::runtime(format!(
                        "Image build failed: preset '{}' needs {what} >= {}, but the image has {}",
                        preset.name,
                        req.shown(),
                        text.trim()
                    ))
                    .with_recovery(
                        "Install a newer one in the preset's steps (e.g. npm install -g node@24).",
                    ))
                }
                None => {
                    return Err(Error::runtime(format!(
                        "Image build failed: preset '{}' needs {what} >= {}, and `{probe}` printed no version: {}",
                        preset.name,
                        req.shown(),
                        tail(&text, 3)
                    )))
                }
            }
        }
        job.emit(BuildEvent::Step("removing package caches".into()));
        run_step(tree, CLEANUP, timeout, job)?;
        let keys = tree.join("root/.ssh/authorized_keys");
        crate::sys::fs::remove_generated_file(&keys)
            .map_err(|e| Error::runtime(format!("cannot remove {}: {e}", keys.display())))?;
        Ok(())
    })();
    if base == Base::Debian && !had_policy {
        let _ = crate::sys::fs::remove_generated_file(&policy);
    }
    if !had_resolv {
        let _ = crate::sys::fs::remove_generated_file(&resolv);
    }
    r
}

fn step_failed(preset: &str, cmd: &str, text: &str) -> Error {
    let t = text.to_lowercase();
    let hint = if t.contains("self_signed_cert_in_chain") || t.contains("certificate verify failed")
    {
        " (a TLS certificate was refused: is the host's CA bundle at /etc/ssl/certs/ca-certificates.crt?)"
    } else if t.contains("no space left on device") {
        " (the disk is full)"
    } else {
        ""
    };
    Error::runtime(format!(
        "Image build failed: preset '{preset}' step `{cmd}` failed{hint}:\n{}",
        tail(text, 15)
    ))
}

/// The wrapper `unshare` runs: `$1` the new root, `$2` the step. Everything it mounts is
/// in the step's own mount namespace.
const STEP_SCRIPT: &str = r#"set -e
t=$1
mount -t proc proc "$t/proc"
mount --rbind /dev "$t/dev"
mkdir -p "$t/run"
mount -t tmpfs -o mode=0755 tmpfs "$t/run"
mkdir -p "$t/run/smolvm-host"
if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  cat /etc/ssl/certs/ca-certificates.crt > "$t/run/smolvm-host/ca.pem"
elif [ -r /etc/pki/tls/certs/ca-bundle.crt ]; then
  cat /etc/pki/tls/certs/ca-bundle.crt > "$t/run/smolvm-host/ca.pem"
fi
cat /etc/resolv.conf > "$t/run/smolvm-host/resolv.conf" 2>/dev/null || true
mount --bind "$t/run/smolvm-host/resolv.conf" "$t/etc/resolv.conf"
exec chroot "$t" /bin/sh -c "$2"
"#;

/// Run one step in the new root, bounded by `timeout` and by the build's stop (checked
/// first): `(succeeded, output)`. The `unshare` dies with smolvm (and its PID namespace,
/// and the mounts, with it); killed at the timeout or on a stop, it takes the step's PID
/// namespace with it.
fn run_step(tree: &Path, step: &str, timeout: Duration, job: &Job<'_>) -> Result<(bool, String)> {
    job.check()?;
    let ca = format!("{HOST_DIR}/ca.pem");
    let mut argv: Vec<&OsStr> = crate::sys::child::OWN_NAMESPACES
        .into_iter()
        .chain(["/bin/sh", "-c", STEP_SCRIPT, "smolvm-step"])
        .map(OsStr::new)
        .collect();
    argv.push(tree.as_os_str());
    argv.push(OsStr::new(step));
    let mut env: Vec<(&str, &OsStr)> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("npm_config_update_notifier", "false"),
        ("npm_config_fund", "false"),
        ("npm_config_audit", "false"),
    ]
    .iter()
    .map(|(k, v)| (*k, OsStr::new(*v)))
    .collect();
    // Each tool's own name for the CA bundle to trust.
    for var in [
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
        "npm_config_cafile",
        "PIP_CERT",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        env.push((var, OsStr::new(&ca)));
    }
    let ran = crate::sys::child::run_isolated_bounded(&argv, &env, timeout, &|| job.stopped())
        .map_err(|e| Error::runtime(format!("cannot run unshare: {}", io_reason(&e))))?;
    job.check()?;
    ran.ok_or_else(|| {
        Error::runtime(format!(
            "Image build failed: step `{step}` did not finish within {} s (--install-timeout)",
            timeout.as_secs()
        ))
        .with_recovery("Pass a larger --install-timeout, or check the network.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_recipe_text() {
        let r = crate::core::presets::Registry::builtin();
        let p = r.find("claude").unwrap();
        let r = p.recipe(Base::Debian).unwrap();
        let c = commands(Base::Debian, r);
        assert_eq!(
            c,
            [
                "apt-get update -q && apt-get install -y -q --no-install-recommends nodejs npm git",
                "npm install -g @anthropic-ai/claude-code",
            ]
        );
        assert_eq!(
            commands(Base::Alpine, p.recipe(Base::Alpine).unwrap())[0],
            "apk add --no-cache nodejs npm git"
        );
        let t = recipe_text(p, Base::Debian, r);
        assert!(t.contains("verify=claude --version\n") && t.contains("requires=node>=18\n"));
        let mut changed = p.clone();
        changed.debian.as_mut().unwrap().steps.push("true".into());
        assert_ne!(
            t,
            recipe_text(&changed, Base::Debian, changed.debian.as_ref().unwrap())
        );
        assert_eq!(local_name("claude-code"), "claude-code-local");
    }

    /// A busybox root: enough for the step wrapper's chroot.
    fn busybox_tree() -> Option<tempfile::TempDir> {
        let bb = std::fs::read("/bin/busybox").ok()?;
        let t = tempfile::tempdir().ok()?;
        for d in ["bin", "proc", "dev", "run", "etc"] {
            std::fs::create_dir_all(t.path().join(d)).ok()?;
        }
        std::fs::write(t.path().join("bin/busybox"), bb).ok()?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            t.path().join("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .ok()?;
        for a in ["sh", "sleep", "cat", "ls", "grep"] {
            std::os::unix::fs::symlink("busybox", t.path().join("bin").join(a)).ok()?;
        }
        std::fs::write(t.path().join("etc/resolv.conf"), "").ok()?;
        Some(t)
    }

    fn mounts_under(tree: &Path) -> Vec<String> {
        let t = tree.display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&t))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn steps_see_the_hosts_resolver_and_ca_bundle_and_leave_no_mount_on_any_path() {
        if !crate::sys::users::is_root() {
            eprintln!("SKIPPED: needs root (unshare, mount, chroot)");
            return;
        }
        let Some(t) = busybox_tree() else {
            eprintln!("SKIPPED: needs /bin/busybox");
            return;
        };
        let tree = t.path();
        let none = Progress::none();
        let go_on = Job::new("t", &none);
        let (ok, out) = run_step(
            tree,
            "cat /etc/resolv.conf; ls /run/smolvm-host; echo ca=$SSL_CERT_FILE; grep -c proc /proc/mounts",
            Duration::from_secs(30),
            &go_on,
        )
        .unwrap();
        assert!(ok, "{out}");
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        assert!(out.starts_with(&host_resolv), "{out}");
        assert!(
            out.contains("ca.pem") && out.contains("ca=/run/smolvm-host/ca.pem"),
            "{out}"
        );
        // Nothing stays: not on the host, not in the tree.
        assert!(mounts_under(tree).is_empty(), "{:?}", mounts_under(tree));
        assert_eq!(
            std::fs::read_to_string(tree.join("etc/resolv.conf")).unwrap(),
            ""
        );
        assert_eq!(std::fs::read_dir(tree.join("run")).unwrap().count(), 0);
        // A failing step, and one past its bound (killed with its namespaces).
        let (ok, _) = run_step(tree, "exit 7", Duration::from_secs(30), &go_on).unwrap();
        assert!(!ok);
        let t0 = std::time::Instant::now();
        let e = run_step(tree, "sleep 30", Duration::from_secs(1), &go_on).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(
            e.message.contains("did not finish within 1 s"),
            "{}",
            e.message
        );
        assert!(mounts_under(tree).is_empty(), "{:?}", mounts_under(tree));

        // A step of a cancelled build is killed with its namespaces: it never finishes,
        // and the build stops as cancelled.
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cancelled = Progress::none().with_cancel(flag.clone());
        let job = Job::new("t", &cancelled);
        let started = tree.join("started");
        let canceller = {
            let started = started.clone();
            std::thread::spawn(move || {
                while !started.exists() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            })
        };
        let e = run_step(
            tree,
            "touch /started; sleep 20; touch /finished",
            Duration::from_secs(600),
            &job,
        )
        .unwrap_err();
        canceller.join().unwrap();
        assert!(crate::core::job::is_cancel(&e), "{}", e.message);
        assert_eq!(e.message, "Image build of 't' cancelled");
        // Its namespace's processes go with it (the kernel ends them a moment later).
        let running = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
                .any(|c| String::from_utf8_lossy(&c).contains("touch /finished"))
        };
        let t0 = std::time::Instant::now();
        while running() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!running(), "the cancelled step runs on");
        assert!(
            !tree.join("finished").exists(),
            "the cancelled step ran to its end"
        );
        assert!(mounts_under(tree).is_empty(), "{:?}", mounts_under(tree));
    }

    #[test]
    fn local_images_are_never_read_as_stale_versions_by_prune() {
        for p in &crate::core::presets::Registry::builtin().presets {
            let name = local_name(&p.name);
            assert!(crate::core::builder::validate_name(&name).is_ok(), "{name}");
            assert_eq!(crate::core::prune::cache_version(&name), None, "{name}");
        }
    }
}
