//! `start`: bring a sandbox up — image, isolated disk, row, network, VMM, ready — as one
//! function reporting progress per phase, used by `smolvm <preset> start`, `smolvm
//! sandbox create [--start]`, `smolvm sandbox start` and the dashboard.
//!
//! Phases: **image** (resolve and pull the preset's image, or take `--kernel/--rootfs`),
//! **network** (IP and SSH-port leases, TAP, route, nftables), **spawn** (the VMM up and its
//! control socket answering), **boot** (SmolVM's `SmolVM init complete` console line, or
//! the guest's port 22 answering). Any failure rolls back everything this call created —
//! through the same teardown `cleanup` and `sandbox delete` use.
//!
//! This module is the flow: options, events, the context, the image phase, [`create`] and
//! [`start_existing`]. The runtime choice is the host service's ([`super::host`]);
//! `files.rs` makes the predictable names safe (and the SSH key), `network.rs` sets up a
//! VM's network, `boot.rs` spawns the VMM and waits for the guest, and `report.rs` is how
//! a start ends (its report, or the rollback).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::builder::{Base, BuildEvent};
use super::error::{io_reason, rt, Error, Result};
use super::host::{AccelRequest, Backend, MachineRequest, Runtime};
use super::images::pull::{self, PullEvent, PullOptions};
use super::images::{self, BootSource, Layout, Manifest, Os, Target, Vmm};
use super::job::is_cancel;
use super::presets::Preset;
use super::progress::Progress;
use super::teardown;
use super::version::image_version;
use super::vm::VmId;
use crate::core::presets::Registry;
use crate::sys::http::HttpConfig;
use crate::sys::open;
use crate::sys::state::{StateError, VmConfig, VmExtras, VmRecord, VmStatus};
use crate::sys::vmm::qemu::Machine;
use crate::sys::vmm::Accel;

mod boot;
pub mod bridged;
mod checked;
mod files;
mod network;
mod report;
mod vmm;

pub use crate::core::context::Ctx;
pub(crate) use crate::core::job::{rolled_back, Abort};
pub use crate::core::ssh::ensure_key;
pub use boot::boot_args;
pub(crate) use boot::{boot, log_tail, qemu_spec};
pub(crate) use checked::{
    check as check_config, check_disk_only, check_disk_to_come, check_kernel_and_mounts, Whose,
};
use files::preflight_new;
pub(crate) use files::{invalid_id, path_err, prepare_files};
pub(crate) use network::setup_network;
use report::{mark_failed, put_back};
pub(crate) use report::{ms, report, roll_back};
pub(crate) use vmm::{
    claim_leftover_socket, control_socket_up, give_disk_back, qmp_when_up, record_spawned, settle,
    spawn_vmm, vmm_user_name, Ram, VmmJob, VmmUser,
};
pub use vmm::{console_log_main, console_log_max, CONSOLE_LOG_SUBCOMMAND};

/// SmolVM's ready line on the serial console.
pub const READY_MARKER: &str = "SmolVM init complete";
/// The line smolvm's own `/init` (`assets/init.sh`) prints instead of the ready line when
/// the guest's SSH server did not start: the start fails at once rather than at its
/// timeout, or, worse, counting as ready with nothing to log in to.
pub const INIT_FAILED_MARKER: &str = "SmolVM init failed:";
/// SmolVM's `SSH_BOOT_ARGS` (its images' `/init` is PID 1).
pub const DEFAULT_BOOT_ARGS: &str = crate::sys::state::DEFAULT_BOOT_ARGS;

/// How to create (and maybe start) a sandbox.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The VM id; `vm-<8 hex>` when absent.
    pub name: Option<String>,
    /// A preset (aliases allowed), or `kernel` + `rootfs`.
    pub preset: Option<String>,
    pub kernel: Option<PathBuf>,
    pub rootfs: Option<PathBuf>,
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
    pub disk_size_mib: Option<u64>,
    /// `--backend` (default auto).
    pub backend: Backend,
    /// `--accel` (default: `SMOLVM_ACCEL`, else auto).
    pub accel: Option<AccelRequest>,
    /// `--qemu-machine` (default: `SMOLVM_QEMU_MACHINE`, else auto).
    pub qemu_machine: Option<MachineRequest>,
    pub os: Option<Os>,
    pub boot_timeout: Option<Duration>,
    /// Create only (`sandbox create` without `--start`).
    pub create_only: bool,
    /// The program the guest starts (`init=` on the kernel command line) when not
    /// `/init`: a built image's `--init` ([`crate::core::images::built_init`]).
    pub init: Option<String>,
    /// Workspace folders shared with the guest (QEMU only; kept in the VM's config).
    pub mounts: Vec<crate::core::presets::mounts::Mount>,
    /// Each install step's bound when a preset's local image is built (default 600 s).
    pub install_timeout: Option<Duration>,
    /// Where a local preset build's steps are reported (the image phase can take minutes).
    pub build_steps: Option<StepSink>,
    /// Egress policy and SSH publication (`--internet`, `--allow-*`, `--publish-ssh`).
    pub network: crate::core::egress::Settings,
    /// `--network bridge --bridge NAME`: attach to this host bridge instead of NAT.
    pub bridge: Option<String>,
    /// `--guest-ip` (and `--guest-gateway`): the bridged guest's static address.
    pub bridge_address: Option<bridged::GuestAddress>,
    /// A preset start that forwards nothing from the host (a warm template's boot: no
    /// env var, config or credential may reach it).
    pub no_forward: bool,
}

impl StartOptions {
    /// Boot the image `smolvm image build` made as `name`: its kernel, rootfs and the init
    /// it was built with (what `sandbox create --image NAME` and the dashboard's start form
    /// both do).
    pub fn use_built_image(&mut self, paths: &crate::sys::paths::Paths, name: &str) -> Result<()> {
        let (kernel, rootfs) = images::resolve_image(paths, name)?;
        self.kernel = Some(kernel);
        self.rootfs = Some(rootfs);
        self.init = images::built_init(paths, name)?;
        Ok(())
    }
}

/// A sink for the steps of a preset image built during a start (human text).
#[derive(Clone)]
pub struct StepSink(pub Arc<dyn Fn(String) + Send + Sync>);

impl std::fmt::Debug for StepSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepSink")
    }
}

text_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Phase {
        Image = "image",
        Network = "network",
        Spawn = "spawn",
        Boot = "boot",
    }
}

/// Progress of a start, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartEvent {
    Warning(String),
    PhaseStarted(Phase),
    PhaseDone(Phase, Duration),
    Pull(PullEvent),
    /// Something failed; everything created is being removed.
    RollingBack(String),
    /// A warm start's template `id`: being made (`making`, once per template: the cold
    /// boot and the snapshot that follow are its), or cloned.
    Template {
        id: String,
        making: bool,
    },
}

/// Milliseconds per phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    pub image_ms: f64,
    pub network_ms: f64,
    pub spawn_ms: f64,
    pub boot_ms: f64,
    pub total_ms: f64,
}

/// A started (or created) sandbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartReport {
    pub id: VmId,
    pub status: VmStatus,
    pub preset: Option<String>,
    pub ip: String,
    pub ssh_host_port: Option<u16>,
    pub ssh_command: String,
    pub backend: Vmm,
    pub accelerator: Accel,
    pub machine: Option<Machine>,
    pub pid: Option<i64>,
    pub kernel_path: PathBuf,
    pub disk_path: PathBuf,
    pub log_path: PathBuf,
    pub timings: Timings,
    /// What a preset start forwarded from the host (SmolVM's `preset` object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<crate::core::presets::forward::ForwardReport>,
    /// A warm start: the template it was cloned from (`core::warm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm: Option<WarmInfo>,
    /// A preset start: whether it went warm or cold, and why (`core::warm::start`; not in
    /// SmolVM's JSON).
    #[serde(skip)]
    pub warm_choice: Option<WarmChoice>,
}

/// Whether a preset start is warm or cold, and why (`core::warm::start` decides it for
/// both faces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmChoice {
    pub warm: bool,
    /// Why, in a few words: `the preset's warm = true`, `asked cold`, a fallback's reason.
    pub why: String,
}

/// Where a warm start came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarmInfo {
    /// The template snapshot the sandbox was cloned from.
    pub template: String,
    /// The template was made by this start (none fit: first warm start, or its image,
    /// kernel, recipe or sizes changed).
    pub built: bool,
    /// How the start's env vars and configs reached the clone: `agent` (its agent port)
    /// or `ssh`; none when it forwarded nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_over: Option<&'static str>,
}

/// The runtime for this start, decided by the host service; its warning (TCG) is shown.
pub(crate) fn runtime(
    ctx: &Ctx,
    backend: Backend,
    accel: Option<AccelRequest>,
    boot_timeout: Option<Duration>,
    progress: &Progress<StartEvent>,
) -> Result<Runtime> {
    let rt = ctx.host.runtime(backend, accel, boot_timeout)?;
    if let Some(w) = &rt.warning {
        progress.emit(StartEvent::Warning(w.clone()));
    }
    Ok(rt)
}

/// A QEMU runtime's machine as `requested` (`auto|q35|microvm`, auto resolved for its
/// accelerator) instead of the environment's; `bad` names an unknown value. Firecracker
/// has no machine to set. The one resolution of a stored `qemu_machine`: `sandbox start`
/// and snapshot restore both call it, so they boot a stored value the same way.
pub(crate) fn set_machine(
    runtime: &mut Runtime,
    requested: Option<&str>,
    bad: impl FnOnce(&str) -> Error,
) -> Result<()> {
    if let (Some(m), Vmm::Qemu) = (requested, runtime.vmm) {
        runtime.machine =
            Some(crate::core::host::machine(Some(m), runtime.accel).map_err(|_| bad(m))?);
    }
    Ok(())
}

/// [`set_machine`] for a machine the user asked for (`--qemu-machine`): a bad one is a
/// usage error.
pub(crate) fn set_requested_machine(
    runtime: &mut Runtime,
    requested: Option<MachineRequest>,
) -> Result<()> {
    set_machine(runtime, requested.map(MachineRequest::as_str), |m| {
        Error::usage(format!(
            "--qemu-machine must be auto, q35 or microvm, got '{m}'"
        ))
    })
}

/// Resolve the image: pull the preset's published one (or use a custom build named like
/// it), else build its local image (`<preset>-local`, once), or take the given kernel and
/// rootfs.
fn resolve_image(
    ctx: &Ctx,
    opts: &StartOptions,
    preset: Option<&Preset>,
    vmm: Vmm,
    progress: &Progress<StartEvent>,
) -> Result<(PathBuf, PathBuf)> {
    if let Some(preset) = preset {
        let manifest = Manifest::load(&ctx.env)?;
        let target = Target::named(
            &preset.name,
            crate::core::images::Platform {
                arch: None,
                vmm: Some(vmm),
                os: opts.os,
            },
            &ctx.host,
        )?;
        let layout = Layout::new(&ctx.paths.images_root, &image_version(&ctx.env)?);
        return match images::boot_source(&ctx.env, &ctx.paths.images_root, &manifest, &target) {
            Ok(BootSource::Published(img)) => {
                let popts = PullOptions {
                    layout,
                    http: HttpConfig::from_env(&ctx.env)?,
                    release: manifest.release.clone(),
                };
                // The start's own sink, with its cancel: a cancel stops the download
                // between chunks (the start then rolls back, as at any other step).
                let r = pull::pull(&popts, &img, &progress.map(StartEvent::Pull))?;
                Ok((r.kernel_path, r.rootfs_path))
            }
            Ok(BootSource::Custom(dir)) => Ok((dir.join("vmlinux.bin"), dir.join("rootfs.ext4"))),
            // Not published for this host (or SMOLVM_USE_PUBLISHED=0): the local image,
            // built first when needed — no error, just a slower first run.
            Err(_) => {
                let base = match opts.os {
                    Some(Os::Alpine) => Base::Alpine,
                    _ => Base::Debian,
                };
                let steps = opts.build_steps.clone();
                // The start's cancel reaches the build: x on a start stops its build.
                let sink = progress.beside(move |e: BuildEvent| {
                    let text = match e {
                        BuildEvent::Cached => "local image up to date (cached)".to_string(),
                        BuildEvent::Engine(en) => {
                            format!("building the local image with {en} (once; this takes minutes)")
                        }
                        BuildEvent::Step(s) => s,
                    };
                    if let Some(s) = &steps {
                        (s.0)(text);
                    }
                });
                let r = super::preset_image::ensure_local(
                    &ctx.env,
                    &ctx.paths.images_root,
                    preset,
                    base,
                    vmm,
                    opts.install_timeout,
                    &sink,
                )?;
                Ok((r.kernel_path, r.rootfs_path))
            }
        };
    }
    let (Some(k), Some(r)) = (&opts.kernel, &opts.rootfs) else {
        return Err(Error::usage("Pass --preset, or both --kernel and --rootfs"));
    };
    // The files the user named, links resolved now (`/vmlinuz` → `/boot/vmlinuz-…`): the
    // VM's config records real paths, which every later boot checks without following a
    // link.
    let real = |what: &str, p: &PathBuf| -> Result<PathBuf> {
        match std::fs::canonicalize(p) {
            Ok(real) if real.is_file() => Ok(real),
            _ => Err(Error::runtime(format!(
                "{what} {} does not exist",
                p.display()
            ))),
        }
    };
    Ok((real("kernel", k)?, real("rootfs", r)?))
}

/// What a create's options name, checked before anything is opened or made.
struct Checked {
    preset: Option<String>,
    id: VmId,
    bridge_address: Option<bridged::GuestAddress>,
}

/// The checks of a create's options that need no state: one source (a preset, or a
/// kernel and rootfs), a known preset, the limits, the name, a bridge request. [`create`]
/// makes them first; a face calls [`check_create`] before it opens the state, so a bad
/// request changes nothing on disk.
fn checked(opts: &StartOptions, presets: &Registry) -> Result<Checked> {
    match (
        opts.preset.is_some(),
        opts.kernel.is_some() || opts.rootfs.is_some(),
    ) {
        (true, true) => {
            return Err(Error::usage(
                "Pass either --preset or --kernel and --rootfs, not both",
            ))
        }
        (false, false) => {
            return Err(Error::usage(
                "Pass --preset NAME, --image NAME, or --kernel and --rootfs: smolvm builds no \
                 default image for a create that names none (SmolVM's auto-configured guest)",
            ))
        }
        _ => {}
    }
    let preset = opts
        .preset
        .as_deref()
        .map(|p| presets.lookup(p).map(|p| p.name.to_string()))
        .transpose()?;
    super::presets::check_limits(opts.memory_mib, opts.vcpus, opts.disk_size_mib)?;
    let id = match &opts.name {
        Some(n) => VmId::name(n)?,
        None => VmId::random(),
    };
    let bridge_address = match &opts.bridge {
        Some(b) => Some(bridged::check_request(opts, b)?),
        None => None,
    };
    Ok(Checked {
        preset,
        id,
        bridge_address,
    })
}

/// [`create`]'s checks of `opts` alone, for a face to make before it opens the state
/// database (a usage error then leaves nothing behind).
pub fn check_create(opts: &StartOptions, presets: &Registry) -> Result<()> {
    checked(opts, presets).map(drop)
}

/// Create a sandbox and (unless `create_only`) start it. On failure nothing it created is
/// left: row, leases, TAP, nftables elements, disk, log, socket, process.
pub async fn create(
    ctx: &Ctx,
    opts: &StartOptions,
    progress: &Progress<StartEvent>,
) -> Result<StartReport> {
    tracing::info!(
        preset = %opts.preset.as_deref().unwrap_or("-"),
        name = %opts.name.as_deref().unwrap_or("-"),
        "creating sandbox"
    );
    let t0 = Instant::now();
    for p in &ctx.presets.problems {
        progress.emit(StartEvent::Warning(p.clone()));
    }
    let Checked {
        preset,
        id,
        bridge_address,
    } = checked(opts, &ctx.presets)?;
    let registry = opts
        .preset
        .as_deref()
        .map(|p| ctx.presets.lookup(p))
        .transpose()?;
    // The new id's lock (SmolVM's create lock) before its row is looked for: a second
    // create of the same name, or any operation on it, waits for this one.
    let _lock = ctx.lock(&id, &format!("sandbox create {id}")).await?;
    let mut abort = Abort::new(format!("Start of sandbox '{id}'"));
    abort.check(progress)?;
    if ctx.store.vm_exists(&id).map_err(rt)? {
        return Err(
            Error::runtime(format!("Sandbox '{id}' already exists")).with_recovery(format!(
                "Run 'smolvm sandbox delete {id}' first, or pick another --name."
            )),
        );
    }
    // Firecracker cannot share folders: auto picks QEMU when mounts are asked.
    let backend = match (opts.backend, opts.mounts.is_empty()) {
        (Backend::Firecracker, false) => {
            return Err(Error::usage(
                "Firecracker cannot share folders: --mount needs --backend qemu (or auto)",
            ))
        }
        (Backend::Auto, false) => Backend::Qemu,
        (b, _) => b,
    };
    // Mounts that would hand the guest the host, or whose VMM would have to run as root
    // or as two users: refused before anything is made.
    if !opts.mounts.is_empty() {
        crate::core::presets::mounts::check_protected(&opts.mounts, &protected_folders(ctx))?;
        vmm::check_writable_owner(&opts.mounts)?;
    }
    let mut runtime = runtime(ctx, backend, opts.accel, opts.boot_timeout, progress)?;
    set_requested_machine(&mut runtime, opts.qemu_machine)?;

    preflight_new(ctx, &id, runtime.vmm)?;
    if let Some(b) = &opts.bridge {
        bridged::check_bridge(b).await?;
    }

    // Image.
    progress.emit(StartEvent::PhaseStarted(Phase::Image));
    let ti = Instant::now();
    // On a plain thread: the manifest fetch and the pull use a blocking HTTP client, which
    // must not run (nor be dropped) inside the async runtime.
    let (kernel, source_rootfs) = std::thread::scope(|s| {
        s.spawn(|| resolve_image(ctx, opts, registry, runtime.vmm, progress))
            .join()
    })
    .map_err(|_| rt("image resolution panicked"))??;
    let image_time = ti.elapsed();
    progress.emit(StartEvent::PhaseDone(Phase::Image, image_time));
    // From here on a Ctrl-C rolls back instead of leaving a half-made sandbox.
    abort.hold_signals();
    abort.check(progress)?;

    // ssh-keygen, when it runs, takes a terminal's Ctrl-C too.
    let key = ctx.ssh_key().map_err(|e| abort.failure(e, progress))?;
    let public_path = PathBuf::from(format!("{}.pub", key.display()));
    let public_key =
        open::read_to_string(&public_path).map_err(|e| path_err("read", &public_path, &e))?;
    let disk = ctx.disk_path(&id)?;
    let mem = opts
        .memory_mib
        .unwrap_or_else(|| super::presets::default_memory_mib(registry));
    let vcpus = opts.vcpus.unwrap_or(super::presets::DEFAULT_VCPUS);
    let disk_mib = opts.disk_size_mib;
    let config = VmConfig {
        vm_id: Some(id.to_string()),
        preset: preset.clone(),
        vcpu_count: Some(vcpus),
        memory: Some(mem),
        guest_os: Some(opts.os.unwrap_or_default().as_str().into()),
        boot_mode: Some("direct_kernel".into()),
        kernel_path: Some(kernel.clone()),
        initrd_path: None,
        rootfs_path: Some(disk.clone()),
        boot_args: Some(match &opts.init {
            Some(init) => DEFAULT_BOOT_ARGS.replace("init=/init", &format!("init={init}")),
            None => DEFAULT_BOOT_ARGS.into(),
        }),
        backend: Some(runtime.vmm.as_str().into()),
        qemu_machine: runtime.machine.map(|m| m.as_str().into()),
        disk_mode: Some("isolated".into()),
        disk_size_mib: disk_mib.or(registry.map(|p| p.disk_mib)),
        retain_disk_on_delete: Some(false),
        ssh_public_key: Some(public_key.trim().into()),
        internet_settings: None,
        other: Default::default(),
        extras: VmExtras {
            accel: Some(runtime.accel.as_str().into()),
            boot_timeout: Some(runtime.boot_timeout.as_secs_f64()),
            source_rootfs_path: Some(source_rootfs.clone()),
            mounts: if opts.mounts.is_empty() {
                None
            } else {
                Some(serde_json::to_value(&opts.mounts).map_err(rt)?)
            },
            ..Default::default()
        },
    };
    let mut row = VmRecord::new(id.clone(), VmStatus::Created);
    row.config = config;
    if let (Some(b), Some(a)) = (&opts.bridge, bridge_address) {
        row.config.set_bridge(b);
        row.config.extras.bridge_address = Some(a.to_stored());
    }
    match ctx.store.insert_vm(&row) {
        Ok(()) => {}
        Err(StateError::AlreadyExists(_)) => {
            return Err(Error::runtime(format!("Sandbox '{id}' already exists")))
        }
        Err(e) => return Err(rt(e)),
    }

    // From here on, every failure rolls back.
    let r: Result<StartReport> = async {
        crate::core::egress::save(&ctx.store, &id, &opts.network)?;
        let d = disk.clone();
        let src = source_rootfs.clone();
        let (data_dir, vm_id) = (ctx.data_dir.clone(), id.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            // The ledger entry before any file: the VM's files are then provably ours.
            crate::sys::fs::record_vm_id(&data_dir, &vm_id).map_err(rt)?;
            if let Some(p) = d.parent() {
                std::fs::create_dir_all(p).map_err(rt)?;
            }
            crate::sys::disk::isolated_copy(&src, &d, crate::sys::disk::Durable::ByGuest).map_err(
                |e| {
                    rt(format!(
                        "cannot copy {} to {}: {}",
                        src.display(),
                        d.display(),
                        io_reason(&e)
                    ))
                },
            )?;
            if let Some(mib) = disk_mib {
                crate::sys::disk::grow_ext4(&d, mib << 20).map_err(rt)?;
            }
            Ok(())
        })
        .await
        .map_err(rt)??;
        abort.check(progress)?;
        if opts.create_only {
            let net = setup_network(ctx, &id, progress).await?;
            // Nothing runs yet: a resolver started for this sandbox's names waits for its
            // first boot instead.
            crate::core::egress::resolver::sync(ctx, None).await?;
            let mut rep = report(ctx, &id, &runtime, preset.clone(), &kernel, &net, None)?;
            rep.timings.image_ms = ms(image_time);
            rep.timings.total_ms = ms(t0.elapsed());
            return Ok(rep);
        }
        let checked = checked::check(ctx, &id, &row.config)?;
        let (log, socket) = prepare_files(ctx, &id, runtime.vmm, &disk)?;
        let mut rep = boot(ctx, &id, &checked, &runtime, log, socket, &abort, progress).await?;
        rep.preset = preset.clone();
        abort.check(progress)?;
        if let Some(p) = registry.filter(|_| !opts.no_forward) {
            rep.forwarded = Some(forward(ctx, p, &rep.ip, None, progress).await?.0);
            abort.check(progress)?;
        }
        rep.timings.image_ms = ms(image_time);
        rep.timings.total_ms = ms(t0.elapsed());
        Ok(rep)
    }
    .await;
    match abort.settle(r, progress) {
        Ok(rep) => Ok(rep),
        Err(e) => Err(roll_back(ctx, &id, e, progress).await),
    }
}

/// Host configs and env vars into a started preset's guest at `ip` (nothing is sent when
/// there is nothing to forward); what was skipped is a warning. A warm start's clone gives
/// its agent port (`agent_socket`): the plan goes over it when it fits
/// (`presets::forward::agent`), else in the SSH session a cold start uses. Also says which
/// way it went (`agent`/`ssh`; none when nothing was sent).
pub(crate) async fn forward(
    ctx: &Ctx,
    p: &Preset,
    ip: &str,
    agent_socket: Option<&std::path::Path>,
    progress: &Progress<StartEvent>,
) -> Result<(
    crate::core::presets::forward::ForwardReport,
    Option<&'static str>,
)> {
    use crate::core::presets::forward::{self, Guest};
    let (pr, env) = (p.clone(), ctx.env.clone());
    let (rep, plan) = tokio::task::spawn_blocking(move || forward::prepare(&pr, &env))
        .await
        .map_err(rt)??;
    for s in &rep.skipped {
        progress.emit(StartEvent::Warning(format!("not copied: {s}")));
    }
    let Some(plan) = plan else {
        return Ok((rep, None));
    };
    if let Some(socket) = agent_socket {
        let t = Instant::now();
        match forward::agent::over_agent(socket, &plan).await {
            Ok(()) => {
                tracing::debug!(
                    ms = ms(t.elapsed()),
                    "warm start: forwarded over the clone agent"
                );
                return Ok((plan.done(rep), Some("agent")));
            }
            Err(why) => {
                tracing::debug!(why, "warm start: forwarding over SSH instead of the agent")
            }
        }
    }
    let guest = Guest {
        keys_dir: ctx.paths.keys_dir.clone(),
        ip: ip.to_string(),
    };
    let cancel = progress.beside(|()| {});
    let rep = tokio::task::spawn_blocking(move || plan.over_ssh(&guest, rep, &cancel))
        .await
        .map_err(rt)??;
    Ok((rep, Some("ssh")))
}

/// The preset's kernel and root file system as a start resolves them (pulled, a custom
/// build, or its local image built once), on a plain thread like `create`'s.
pub(crate) fn preset_image(
    ctx: &Ctx,
    opts: &StartOptions,
    preset: &Preset,
    vmm: Vmm,
    progress: &Progress<StartEvent>,
) -> Result<(PathBuf, PathBuf)> {
    std::thread::scope(|s| {
        s.spawn(|| resolve_image(ctx, opts, Some(preset), vmm, progress))
            .join()
    })
    .map_err(|_| rt("image resolution panicked"))?
}

/// `sandbox start <id>`: boot a created, stopped or failed sandbox again, holding its
/// [`VmLock`] throughout (a second operation on it waits, then is `busy`). SSH is
/// published first when `publish_ssh` (`--publish-ssh`) or `SMOLVM_PUBLISH_SSH` asks for
/// it (`SMOLVM_PUBLISH_SSH=0` withdraws it), for both faces. On failure the VMM this start
/// spawned is stopped and the row marked `error` (SmolVM's rule); its resources stay for
/// `delete` or another `start`.
pub async fn start_existing(
    ctx: &Ctx,
    id: &VmId,
    accel: Option<AccelRequest>,
    boot_timeout: Option<Duration>,
    publish_ssh: bool,
    progress: &Progress<StartEvent>,
) -> Result<StartReport> {
    let publish = match crate::core::egress::publish_from_env(&ctx.env)? {
        _ if publish_ssh => Some(true),
        v => v,
    };
    if let Some(p) = publish {
        // Only for a start that can happen: a running sandbox's exposure never changes
        // under a start that is refused.
        startable_row(ctx, id)?;
        crate::core::egress::set_publish_ssh(ctx, id, p).await?;
    }
    let _lock = ctx
        .lock_existing(id, &format!("sandbox start {id}"))
        .await?;
    start_locked(ctx, id, accel, boot_timeout, progress).await
}

/// `sandbox exec --start`: start the sandbox unless it is running already, under its lock
/// (two of these at once start it once). `None`: it was running.
pub async fn ensure_running(
    ctx: &Ctx,
    id: &VmId,
    boot_timeout: Option<Duration>,
    progress: &Progress<StartEvent>,
) -> Result<Option<StartReport>> {
    let _lock = ctx
        .lock_existing(id, &format!("sandbox exec --start {id}"))
        .await?;
    let row = ctx.vm(id)?;
    if crate::core::vm::row_is_live(&row, &ctx.paths.socket_dir) {
        return Ok(None);
    }
    start_locked(ctx, id, None, boot_timeout, progress)
        .await
        .map(Some)
}

/// Sandbox `id`'s row when it may be started ([`crate::core::vm::startable`]), and
/// whether its VMM is gone; else why not.
fn startable_row(ctx: &Ctx, id: &VmId) -> Result<(crate::sys::state::VmRecord, bool)> {
    let row = ctx.vm(id)?;
    let stale = crate::core::vm::row_is_stale(&row, &ctx.paths.socket_dir);
    if !crate::core::vm::startable(row.status, stale) {
        return Err(Error::runtime(format!(
            "Cannot start VM in state '{}'",
            row.status
        )));
    }
    Ok((row, stale))
}

/// [`start_existing`] with the lock held. Startable: `created`, `stopped`, `error`, and a
/// `running`/`paused` row whose VMM is gone (what cleanup would mark `error`) — as long as
/// its disk is intact (the stored configuration passes [`checked::check`]) and no VMM of
/// it is still alive.
async fn start_locked(
    ctx: &Ctx,
    id: &VmId,
    accel: Option<AccelRequest>,
    boot_timeout: Option<Duration>,
    progress: &Progress<StartEvent>,
) -> Result<StartReport> {
    tracing::info!(vm = %id, "starting sandbox");
    let (row, stale) = startable_row(ctx, id)?;
    // The VMM it was created with (a row without one is SmolVM's default, QEMU), and the
    // accelerator unless one is given now.
    let backend = Backend::from_vmm(Some(crate::core::vm::sandbox_vmm(&row)?));
    let accel = match (accel, row.config.extras.accel.as_deref()) {
        (Some(a), _) => Some(a),
        (None, None) => None,
        (None, Some(a)) => Some(AccelRequest::parse(a).ok_or_else(|| {
            Error::runtime(format!("Sandbox '{id}' has an unknown accelerator '{a}'"))
        })?),
    };
    let mut runtime = runtime(ctx, backend, accel, boot_timeout, progress)?;
    // The machine it was created with (`--qemu-machine`): the same devices every boot.
    let stored_machine = row.config.qemu_machine.as_deref();
    set_machine(&mut runtime, stored_machine, |m| {
        Error::runtime(format!("Sandbox '{id}' has an unknown QEMU machine '{m}'"))
    })?;
    // Refusals here change nothing (the row keeps its status). The disk must be intact:
    // its own, a regular file.
    let checked = checked::check(ctx, id, &row.config)?;
    if row.status == VmStatus::Error || stale {
        // A failed sandbox's VMM that is still alive would share the disk with a new one.
        let live = teardown::live_vmms(&row, &ctx.paths.socket_dir, &ctx.data_dir).await?;
        if let Some(pid) = live.first() {
            return Err(Error::runtime(format!(
                "Sandbox '{id}' is in state 'error' but its VMM (pid {pid}) is still running; nothing was started"
            ))
            .with_recovery(format!(
                "Stop it first ('smolvm sandbox stop {id}'), then start it again."
            )));
        }
    }
    // A Ctrl-C from here on puts the row back as it was instead of leaving it starting.
    let mut abort = Abort::new(format!("Start of sandbox '{id}'"));
    abort.hold_signals();
    abort.check(progress)?;
    crate::sys::fs::record_vm_id(&ctx.data_dir, id).map_err(rt)?;
    let (log, socket) = prepare_files(ctx, id, runtime.vmm, &checked.rootfs)?;
    let t0 = Instant::now();
    // A failure once a stop came is that stop (a VMM that booted stays booted: `boot`
    // stops it only on its way out with an error).
    let booted = boot(ctx, id, &checked, &runtime, log, socket, &abort, progress).await;
    match booted.map_err(|e| abort.failure(e, progress)) {
        Ok(mut rep) => {
            rep.preset = row.preset().map(str::to_string);
            rep.timings.total_ms = ms(t0.elapsed());
            Ok(rep)
        }
        Err(e) if is_cancel(&e) && !stale => {
            // Not a failure: the row goes back to the status it had (its VMM, spawned by
            // this start, is already stopped by `boot`).
            progress.emit(StartEvent::RollingBack(e.message.clone()));
            Err(put_back(ctx, id, &row.status, e).await)
        }
        Err(e) => {
            mark_failed(ctx, id).await;
            Err(e)
        }
    }
}

/// The folders the mount rules protect for this user (and the invoking user under sudo).
pub(crate) fn protected_folders(ctx: &Ctx) -> Vec<crate::core::presets::mounts::Protected> {
    let mut homes = vec![ctx.paths.home.clone()];
    homes.extend(ctx.env.sudo_user_home());
    crate::core::presets::mounts::protected(&ctx.data_dir, &homes)
}

/// The error for an unknown sandbox (it lives in `core::error`, which the VM lock uses too).
pub use super::error::not_found;

#[cfg(test)]
mod tests {
    use super::*;

    /// Restart and restore both resolve a stored machine here: `auto` for the accelerator,
    /// an unknown value refused, none keeps the environment's.
    #[test]
    fn a_stored_machine_resolves_one_way() {
        let rt = |vmm, accel| Runtime {
            vmm,
            binary: PathBuf::from("/usr/bin/qemu-system-x86_64"),
            accel,
            machine: Some(Machine::Microvm),
            boot_timeout: Duration::from_secs(1),
            vmm_reason: String::new(),
            accel_reason: String::new(),
            warning: None,
        };
        let resolve = |vmm, accel, stored: Option<&str>| {
            let mut r = rt(vmm, accel);
            set_machine(&mut r, stored, |m| Error::runtime(format!("unknown '{m}'")))
                .map(|()| r.machine)
                .map_err(|e| e.message)
        };
        use Vmm::{Firecracker, Qemu};
        assert_eq!(resolve(Qemu, Accel::Tcg, None), Ok(Some(Machine::Microvm)));
        assert_eq!(
            resolve(Qemu, Accel::Tcg, Some("auto")),
            Ok(Some(Machine::Q35))
        );
        assert_eq!(
            resolve(Qemu, Accel::Kvm, Some("auto")),
            Ok(Some(Machine::Microvm))
        );
        assert_eq!(
            resolve(Qemu, Accel::Kvm, Some("q35")),
            Ok(Some(Machine::Q35))
        );
        assert_eq!(
            resolve(Qemu, Accel::Tcg, Some("pc-i440fx")),
            Err("unknown 'pc-i440fx'".to_string())
        );
        assert_eq!(
            resolve(Firecracker, Accel::Kvm, Some("pc-i440fx")),
            Ok(Some(Machine::Microvm))
        );
    }
}
