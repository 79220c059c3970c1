//! `start`: bring a sandbox up — image, isolated disk, row, network, VMM, ready — as one
//! function reporting progress per phase, used by `smolvm <preset> start`, `smolvm
//! sandbox create [--start]`, `smolvm sandbox start` and the dashboard.
//!
//! Phases: **image** (resolve and pull the preset's image, or take `--kernel/--rootfs`),
//! **network** (IP and SSH-port leases, TAP, route, nftables), **spawn** (the VMM up and its
//! control socket answering), **boot** (SmolVM's `SmolVM init complete` console line, or
//! the guest's port 22 answering). Any failure rolls back everything this call created —
//! through the same teardown `cleanup` and `sandbox delete` use.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cleanup::{self, CleanupOptions};
use super::error::{io_reason, Error, ErrorCode, Result};
use super::host::{AccelRequest, Backend, Host, Runtime};
use super::images::pull::{self, PullEvent, PullOptions};
use super::images::{self, BootSource, Layout, Manifest, Os, Target, Vmm};
use super::progress::Progress;
use super::version::image_version;
use crate::sys::env::Env;
use crate::sys::http::HttpConfig;
use crate::sys::net::{nft, tap};
use crate::sys::open;
use crate::sys::paths::{Paths, STATE_DB_FILE};
use crate::sys::process::is_vm_id;
use crate::sys::state::{
    Corruption, Network, OpenMode, StateError, StateStore, VmRecord, VmStatus,
};
use crate::sys::vmm::qemu::{Machine, QemuSpec};
use crate::sys::vmm::{self, firecracker, qmp::Qmp, Accel};

/// SmolVM's ready line on the serial console.
pub const READY_MARKER: &str = "SmolVM init complete";
/// SmolVM's `SSH_BOOT_ARGS` (its images' `/init` is PID 1).
pub const DEFAULT_BOOT_ARGS: &str = "console=ttyS0 reboot=k panic=1 pci=off init=/init";

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
    pub os: Option<Os>,
    pub boot_timeout: Option<Duration>,
    /// Create only (`sandbox create` without `--start`).
    pub create_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Image,
    Network,
    Spawn,
    Boot,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Image => "image",
            Phase::Network => "network",
            Phase::Spawn => "spawn",
            Phase::Boot => "boot",
        }
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
    pub id: String,
    pub status: String,
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
}

fn rt(e: impl std::fmt::Display) -> Error {
    Error::runtime(e.to_string())
}

/// The runtime for this start, decided by the host service; its warning (TCG) is shown.
fn runtime(
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

/// Everything a start works with.
pub struct Ctx {
    pub env: Env,
    pub paths: Paths,
    pub data_dir: PathBuf,
    pub store: Arc<StateStore>,
    /// The state database was corrupt and moved aside while opening: every caller shows
    /// this to the user (`Display` is the warning text).
    pub corruption: Option<Corruption>,
    /// This host, probed once: every runtime and image decision of this start reads it.
    pub host: Host,
}

impl Ctx {
    /// Resolve paths and open the state store for writing (read-only when the file is
    /// not this user's to write). A corruption report is in [`Ctx::corruption`].
    pub fn open(env: &Env) -> Result<Ctx> {
        let paths = Paths::resolve(env, None);
        let data_dir = paths.data_dir().map_err(rt)?;
        let (store, corruption) = StateStore::open(
            &data_dir.join(STATE_DB_FILE),
            OpenMode::ReadWrite,
            crate::sys::state::DEFAULT_BUSY_TIMEOUT,
        )
        .map_err(rt)?;
        Ok(Ctx {
            env: env.clone(),
            paths,
            data_dir,
            store: Arc::new(store),
            corruption,
            host: Host::probe(env),
        })
    }

    /// The VM's own disk ([`Paths::vm_disk`]); an invalid id is an error, never a path.
    pub fn disk_path(&self, id: &str) -> Result<PathBuf> {
        self.paths
            .vm_disk(&self.data_dir, id)
            .ok_or_else(|| invalid_id(id))
    }

    /// The VM's console log ([`Paths::vm_log`]); an invalid id is an error, never a path.
    pub fn log_path(&self, id: &str) -> Result<PathBuf> {
        self.paths
            .vm_log(&self.data_dir, id)
            .ok_or_else(|| invalid_id(id))
    }

    pub fn cleanup_options(&self, stop_timeout: Duration) -> CleanupOptions {
        CleanupOptions {
            all: false,
            prefix: cleanup::DEFAULT_PREFIX.into(),
            dry_run: false,
            data_dir: self.data_dir.clone(),
            socket_dir: self.paths.socket_dir.clone(),
            stop_timeout,
            parallel: 1,
            busy_timeout: crate::sys::state::DEFAULT_BUSY_TIMEOUT,
            candidate_dbs: self.paths.candidate_state_dbs(),
        }
    }

    /// The SSH key pair under `~/.smolvm/keys/` (created once, atomically).
    pub fn ssh_key(&self) -> Result<PathBuf> {
        ensure_key(&self.paths.keys_dir)
    }
}

/// `~/.smolvm/keys/id_ed25519` (+ `.pub`), generated with `ssh-keygen` when missing: into a
/// fresh private directory of our own (a name this process generated, mode 0700), then
/// renamed into place, public key last, so a half-made pair is never used. A symbolic link
/// (or anything but a regular file) at either name is refused, never followed.
pub fn ensure_key(dir: &Path) -> Result<PathBuf> {
    let key = dir.join("id_ed25519");
    let public = dir.join("id_ed25519.pub");
    let kinds = (open::kind(&key), open::kind(&public));
    match kinds {
        (Ok(Some(open::Kind::File)), Ok(Some(open::Kind::File))) => return Ok(key),
        (Ok(k), Ok(p)) => {
            for (path, kind) in [(&key, k), (&public, p)] {
                if let Some(kind) = kind.filter(|k| *k != open::Kind::File) {
                    return Err(path_err("use SSH key", path, &open::refuse(kind)));
                }
            }
        }
        (Err(e), _) => return Err(path_err("read", &key, &e)),
        (_, Err(e)) => return Err(path_err("read", &public, &e)),
    }
    std::fs::create_dir_all(dir).map_err(|e| path_err("create", dir, &e))?;
    let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let tmp_dir = open::create_unique_dir(dir, ".keygen-", 0o700)
        .map_err(|e| path_err("create a directory in", dir, &e))?;
    let r = (|| {
        let tmp = tmp_dir.join("id_ed25519");
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "smolvm", "-f"])
            .arg(&tmp)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                rt(format!(
                    "cannot run ssh-keygen ({}); install openssh-client",
                    io_reason(&e)
                ))
            })?;
        if !out.status.success() {
            return Err(rt(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // Renames replace whatever is at the destination name without following it.
        crate::sys::fs::replace_with_generated(&tmp, &key)
            .map_err(|e| path_err("write", &key, &e))?;
        crate::sys::fs::replace_with_generated(&tmp_dir.join("id_ed25519.pub"), &public)
            .map_err(|e| path_err("write", &public, &e))
    })();
    if let Some(name) = tmp_dir.file_name() {
        let _ = crate::sys::fs::remove_entry(dir, name);
    }
    r.map(|_| key)
}

fn path_err(what: &str, p: &Path, e: &std::io::Error) -> Error {
    Error::runtime(format!("cannot {what} {}: {}", p.display(), io_reason(e)))
}

/// The control socket path of a VM on this VMM.
fn control_socket(ctx: &Ctx, id: &str, vmm: Vmm) -> Result<PathBuf> {
    match vmm {
        Vmm::Qemu => ctx.paths.qmp_socket(id),
        Vmm::Firecracker => ctx.paths.firecracker_socket(id),
    }
    .ok_or_else(|| invalid_id(id))
}

/// A sandbox id that cannot name files (a row from a foreign database, say).
fn invalid_id(id: &str) -> Error {
    Error::runtime(format!(
        "Invalid sandbox id '{id}': it cannot name the sandbox's files"
    ))
}

/// Nothing, or a stale socket, at a control socket path (anything else is refused).
fn check_socket_path(socket: &Path) -> Result<()> {
    match open::kind(socket) {
        Ok(None) | Ok(Some(open::Kind::Socket)) => Ok(()),
        Ok(Some(k)) => Err(path_err(
            "use control socket path",
            socket,
            &open::refuse(k),
        )),
        Err(e) => Err(path_err("use control socket path", socket, &e)),
    }
}

/// Before a new sandbox gets a row: its console log may be missing or a regular file (it
/// is emptied at each start), its disk must not exist yet, and its control socket path may
/// hold only a stale socket. Anything else — a symbolic link above all — is refused here,
/// before anything is pulled, created or spawned.
fn preflight_new(ctx: &Ctx, id: &str, vmm: Vmm) -> Result<()> {
    let log = ctx.log_path(id)?;
    open::absent_or_regular(&log).map_err(|e| path_err("write", &log, &e))?;
    let disk = ctx.disk_path(id)?;
    open::absent(&disk).map_err(|e| {
        path_err("create disk", &disk, &e).with_recovery(
            "Move it away (or run 'smolvm cleanup' if it is left from a deleted sandbox), or pick another --name.",
        )
    })?;
    check_socket_path(&control_socket(ctx, id, vmm)?)
}

/// What a start writes under predictable names, made safe before the network or the VMM
/// is touched: the disk must be a regular file (never a symbolic link: the VMM opens it),
/// the control socket path free or a stale socket (unlinked), and the console log opened
/// here — `O_NOFOLLOW`, a single-link regular file, emptied — and handed to the VMM as its
/// stdout/stderr, so no VMM ever opens the log path itself. Nothing is changed when
/// something is refused. Returns the open log and the socket path.
fn prepare_files(ctx: &Ctx, id: &str, vmm: Vmm, disk: &Path) -> Result<(std::fs::File, PathBuf)> {
    open::regular(disk).map_err(|e| path_err("use disk", disk, &e))?;
    let socket = control_socket(ctx, id, vmm)?;
    check_socket_path(&socket)?;
    std::fs::create_dir_all(&ctx.paths.socket_dir)
        .map_err(|e| path_err("create", &ctx.paths.socket_dir, &e))?;
    let log = ctx.log_path(id)?;
    let log_file = open::open_truncated(&log, 0o600).map_err(|e| path_err("write", &log, &e))?;
    open::prepare_socket_path(&socket)
        .map_err(|e| path_err("use control socket path", &socket, &e))?;
    Ok((log_file, socket))
}

fn random_id() -> String {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    format!("vm-{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

/// Resolve the image: pull the preset's (or use the custom build), or take the given
/// kernel and rootfs.
fn resolve_image(
    ctx: &Ctx,
    opts: &StartOptions,
    vmm: Vmm,
    progress: &Progress<StartEvent>,
) -> Result<(PathBuf, PathBuf)> {
    if let Some(preset) = &opts.preset {
        let manifest = Manifest::load(&ctx.env)?;
        let target = Target::resolve(preset, None, Some(vmm), opts.os, &ctx.host)?;
        let layout = Layout::new(&ctx.paths.images_root, &image_version(&ctx.env)?);
        return match images::boot_source(&ctx.env, &ctx.paths.images_root, &manifest, &target)? {
            BootSource::Published(img) => {
                let popts = PullOptions {
                    layout,
                    http: HttpConfig::from_env(&ctx.env)?,
                    release: manifest.release.clone(),
                };
                // The pull reports on a channel; forward each event as it comes.
                let (tx, rx) = std::sync::mpsc::channel();
                let r = std::thread::scope(|s| {
                    let h = s.spawn(move || pull::pull(&popts, &img, &Progress::channel(tx)));
                    for e in rx {
                        progress.emit(StartEvent::Pull(e));
                    }
                    h.join()
                })
                .map_err(|_| rt("image pull panicked"))??;
                Ok((r.kernel_path, r.rootfs_path))
            }
            BootSource::Custom(dir) => Ok((dir.join("vmlinux.bin"), dir.join("rootfs.ext4"))),
        };
    }
    let (Some(k), Some(r)) = (&opts.kernel, &opts.rootfs) else {
        return Err(Error::usage("Pass --preset, or both --kernel and --rootfs"));
    };
    for (what, p) in [("kernel", k), ("rootfs", r)] {
        if !p.is_file() {
            return Err(Error::runtime(format!(
                "{what} {} does not exist",
                p.display()
            )));
        }
    }
    Ok((
        crate::sys::paths::absolute(k),
        crate::sys::paths::absolute(r),
    ))
}

/// Boot args as SmolVM builds them: QEMU drops `pci=off` and adds `root=/dev/vda rw`; the
/// public key as `smolvm.authorized_key_b64=`; NAT `ip=<guest>::<gw>:<mask>::eth0:off`.
pub fn boot_args(base: &str, vmm: Vmm, public_key: Option<&str>, net: &Network) -> String {
    let mut toks: Vec<String> = base.split_whitespace().map(String::from).collect();
    if vmm == Vmm::Qemu {
        toks.retain(|t| t != "pci=off");
        if !toks.iter().any(|t| t.starts_with("root=")) {
            toks.push("root=/dev/vda".into());
            toks.push("rw".into());
        }
    }
    if let Some(k) = public_key {
        if !toks
            .iter()
            .any(|t| t.starts_with("smolvm.authorized_key_b64="))
        {
            toks.push(format!(
                "smolvm.authorized_key_b64={}",
                base64(k.trim().as_bytes())
            ));
        }
    }
    if !toks.iter().any(|t| t.starts_with("ip=")) {
        toks.push(format!(
            "ip={}::{}:{}::eth0:off",
            net.guest_ip.as_deref().unwrap_or_default(),
            net.gateway_ip.as_deref().unwrap_or("172.16.0.1"),
            net.netmask.as_deref().unwrap_or("255.255.255.0")
        ));
    }
    toks.join(" ")
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Create a sandbox and (unless `create_only`) start it. On failure nothing it created is
/// left: row, leases, TAP, nftables elements, disk, log, socket, process.
pub async fn create(
    ctx: &Ctx,
    opts: &StartOptions,
    progress: &Progress<StartEvent>,
) -> Result<StartReport> {
    let t0 = Instant::now();
    if opts.preset.is_some() == (opts.kernel.is_some() || opts.rootfs.is_some()) {
        return Err(Error::usage(
            "Pass either --preset or --kernel and --rootfs, not both",
        ));
    }
    let registry = opts
        .preset
        .as_deref()
        .map(super::presets::lookup)
        .transpose()?;
    let preset = registry.map(|p| p.name.to_string());
    super::presets::check_limits(opts.memory_mib, opts.vcpus, opts.disk_size_mib)?;
    let id = match &opts.name {
        Some(n) if !is_vm_id(n) => {
            return Err(Error::usage(format!(
                "Invalid sandbox name '{n}': use 1-64 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit"
            )))
        }
        Some(n) => n.clone(),
        None => random_id(),
    };
    if ctx.store.vm_exists(&id).map_err(rt)? {
        return Err(
            Error::runtime(format!("Sandbox '{id}' already exists")).with_recovery(format!(
                "Run 'smolvm sandbox delete {id}' first, or pick another --name."
            )),
        );
    }
    let runtime = runtime(ctx, opts.backend, opts.accel, opts.boot_timeout, progress)?;

    preflight_new(ctx, &id, runtime.vmm)?;

    // Image.
    progress.emit(StartEvent::PhaseStarted(Phase::Image));
    let ti = Instant::now();
    // On a plain thread: the manifest fetch and the pull use a blocking HTTP client, which
    // must not run (nor be dropped) inside the async runtime.
    let (kernel, source_rootfs) = std::thread::scope(|s| {
        s.spawn(|| resolve_image(ctx, opts, runtime.vmm, progress))
            .join()
    })
    .map_err(|_| rt("image resolution panicked"))??;
    let image_time = ti.elapsed();
    progress.emit(StartEvent::PhaseDone(Phase::Image, image_time));

    let key = ctx.ssh_key()?;
    let public_path = PathBuf::from(format!("{}.pub", key.display()));
    let public_key =
        open::read_to_string(&public_path).map_err(|e| path_err("read", &public_path, &e))?;
    let disk = ctx.disk_path(&id)?;
    let mem = opts
        .memory_mib
        .unwrap_or(registry.map_or(super::presets::DEFAULT_MEMORY_MIB, |p| p.memory_mib));
    let vcpus = opts.vcpus.unwrap_or(super::presets::DEFAULT_VCPUS);
    let disk_mib = opts.disk_size_mib;
    let config = serde_json::json!({
        "vm_id": id,
        "vcpu_count": vcpus,
        "mem_size_mib": mem,
        "kernel_path": kernel,
        "rootfs_path": disk,
        "source_rootfs_path": source_rootfs,
        "initrd_path": null,
        "boot_args": DEFAULT_BOOT_ARGS,
        "boot_mode": "direct_kernel",
        "backend": runtime.vmm,
        "accel": runtime.accel,
        "qemu_machine": runtime.machine,
        "guest_os": opts.os.unwrap_or(Os::Ubuntu).as_str(),
        "preset": preset,
        "disk_mode": "isolated",
        "disk_size_mib": disk_mib.or(registry.map(|p| p.disk_mib)),
        "retain_disk_on_delete": false,
        "ssh_public_key": public_key.trim(),
        "boot_timeout": runtime.boot_timeout.as_secs_f64(),
    });
    let mut row = VmRecord::new(id.clone(), VmStatus::Created);
    row.config = config;
    match ctx.store.insert_vm(&row) {
        Ok(()) => {}
        Err(StateError::AlreadyExists(_)) => {
            return Err(Error::runtime(format!("Sandbox '{id}' already exists")))
        }
        Err(e) => return Err(rt(e)),
    }

    // From here on, every failure rolls back.
    let r: Result<StartReport> = async {
        let d = disk.clone();
        let src = source_rootfs.clone();
        let (data_dir, vm_id) = (ctx.data_dir.clone(), id.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            // The ledger entry before any file: the VM's files are then provably ours.
            crate::sys::fs::record_vm_id(&data_dir, &vm_id).map_err(rt)?;
            if let Some(p) = d.parent() {
                std::fs::create_dir_all(p).map_err(rt)?;
            }
            crate::sys::disk::isolated_copy(&src, &d).map_err(|e| {
                rt(format!(
                    "cannot copy {} to {}: {}",
                    src.display(),
                    d.display(),
                    io_reason(&e)
                ))
            })?;
            if let Some(mib) = disk_mib {
                crate::sys::disk::grow_ext4(&d, mib << 20).map_err(rt)?;
            }
            Ok(())
        })
        .await
        .map_err(rt)??;
        if opts.create_only {
            let net = setup_network(ctx, &id, progress).await?;
            let mut rep = report(ctx, &id, &runtime, preset.clone(), &kernel, &net, None)?;
            rep.timings.image_ms = ms(image_time);
            rep.timings.total_ms = ms(t0.elapsed());
            return Ok(rep);
        }
        let (log, socket) = prepare_files(ctx, &id, runtime.vmm, &disk)?;
        let mut rep = boot(ctx, &id, &runtime, log, socket, progress).await?;
        rep.preset = preset.clone();
        rep.timings.image_ms = ms(image_time);
        rep.timings.total_ms = ms(t0.elapsed());
        Ok(rep)
    }
    .await;
    match r {
        Ok(rep) => Ok(rep),
        Err(e) => {
            progress.emit(StartEvent::RollingBack(e.message.clone()));
            let store = ctx.store.clone();
            if let Err(re) =
                cleanup::teardown_vm(store, &id, ctx.cleanup_options(Duration::from_secs(5))).await
            {
                return Err(Error::new(
                    e.code,
                    format!(
                        "{} (and rolling back failed: {re}; run 'smolvm cleanup')",
                        e.message
                    ),
                ));
            }
            Err(e)
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn report(
    ctx: &Ctx,
    id: &str,
    runtime: &Runtime,
    preset: Option<String>,
    kernel: &Path,
    net: &Network,
    pid: Option<i64>,
) -> Result<StartReport> {
    let ip = net.guest_ip.clone().unwrap_or_default();
    Ok(StartReport {
        id: id.to_string(),
        status: if pid.is_some() { "running" } else { "created" }.into(),
        preset,
        ssh_command: super::lifecycle::ssh_command(&ctx.paths.keys_dir, &ip),
        ip,
        ssh_host_port: net.ssh_host_port,
        backend: runtime.vmm,
        accelerator: runtime.accel,
        machine: runtime.machine,
        pid,
        kernel_path: kernel.to_path_buf(),
        disk_path: ctx.disk_path(id)?,
        log_path: ctx.log_path(id)?,
        timings: Timings::default(),
    })
}

/// Leases, TAP, route and nftables for a VM; stores its NetworkConfig JSON. Idempotent
/// (a restart re-applies it).
async fn setup_network(ctx: &Ctx, id: &str, progress: &Progress<StartEvent>) -> Result<Network> {
    progress.emit(StartEvent::PhaseStarted(Phase::Network));
    let t = Instant::now();
    let store = ctx.store.clone();
    let vm = id.to_string();
    let lease = tokio::task::spawn_blocking(move || store.allocate_network(&vm, true))
        .await
        .map_err(rt)?
        .map_err(|e| match e {
            StateError::Pool(m) => Error::runtime(m)
                .with_recovery("Delete unused sandboxes ('smolvm cleanup') and try again."),
            other => rt(other),
        })?;
    tap::setup(&lease.tap, lease.guest_ip).await.map_err(rt)?;
    let iface = tap::default_interface().await.map_err(rt)?.ok_or_else(|| {
        Error::runtime("Could not detect default outbound network interface")
            .with_recovery("Add a default route (NAT needs an outbound interface) and try again.")
    })?;
    let lock_path = ctx.data_dir.join("network.lock");
    let (tap_name, gip, port) = (
        lease.tap.clone(),
        lease.guest_ip.to_string(),
        lease.ssh_host_port,
    );
    tokio::task::spawn_blocking(move || -> Result<()> {
        let f = open::open_lock(&lock_path, 0o600).map_err(|e| path_err("open", &lock_path, &e))?;
        let _lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| rt(format!("cannot lock {}: {e}", lock_path.display())))?;
        let state = nft::read().map_err(rt)?;
        let cmds = nft::setup_commands(
            &state,
            &iface,
            &nft::VmNat {
                tap: &tap_name,
                guest_ip: &gip,
                ssh_host_port: port,
            },
        );
        nft::apply(&cmds).map_err(rt)
    })
    .await
    .map_err(rt)??;
    let net = Network {
        guest_ip: Some(lease.guest_ip.to_string()),
        gateway_ip: Some(crate::sys::net::HOST_IP.into()),
        netmask: Some("255.255.255.0".into()),
        tap_device: Some(lease.tap.clone()),
        guest_mac: Some(tap::mac_for_index(lease.index)),
        ssh_host_port: lease.ssh_host_port,
        mode: Some("nat".into()),
        bridge: None,
        extra: Default::default(),
    };
    ctx.store.set_network(id, &net).map_err(rt)?;
    progress.emit(StartEvent::PhaseDone(Phase::Network, t.elapsed()));
    Ok(net)
}

/// Network, spawn and boot for an existing row (created or stopped). On failure the
/// caller decides: `create` rolls everything back, `sandbox start` marks the row `error`
/// after stopping the process.
async fn boot(
    ctx: &Ctx,
    id: &str,
    runtime: &Runtime,
    log: std::fs::File,
    socket: PathBuf,
    progress: &Progress<StartEvent>,
) -> Result<StartReport> {
    let t_net = Instant::now();
    let net = setup_network(ctx, id, progress).await?;
    let network_time = t_net.elapsed();
    let row = ctx
        .store
        .get_vm(id)
        .map_err(rt)?
        .ok_or_else(|| rt(format!("Sandbox '{id}' vanished while starting")))?;
    let cfg = &row.config;
    let s = |k: &str| cfg.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let n = |k: &str, d: u64| cfg.get(k).and_then(|v| v.as_u64()).unwrap_or(d);
    let kernel = PathBuf::from(s("kernel_path").unwrap_or_default());
    let disk = PathBuf::from(s("rootfs_path").unwrap_or_default());
    let args = boot_args(
        &s("boot_args").unwrap_or_else(|| DEFAULT_BOOT_ARGS.into()),
        runtime.vmm,
        s("ssh_public_key").as_deref(),
        &net,
    );

    progress.emit(StartEvent::PhaseStarted(Phase::Spawn));
    let t_spawn = Instant::now();
    let tap_name = net.tap_device.clone().unwrap_or_default();
    let mac = net.guest_mac.clone().unwrap_or_default();
    let argv = match runtime.vmm {
        Vmm::Qemu => {
            let spec = QemuSpec {
                binary: runtime.binary.clone(),
                vcpus: n("vcpu_count", 2) as u32,
                mem_mib: n("mem_size_mib", 512) as u32,
                kernel: kernel.clone(),
                rootfs: disk,
                boot_args: args,
                tap: tap_name,
                mac,
                qmp_socket: socket.clone(),
                accel: runtime.accel,
                machine: runtime.machine.unwrap_or(Machine::Q35),
            };
            spec.argv()
        }
        Vmm::Firecracker => vec![
            runtime.binary.display().to_string(),
            "--api-sock".into(),
            socket.display().to_string(),
        ],
    };
    let mut child = vmm::spawn(&argv, &log).map_err(|e| {
        rt(format!(
            "cannot start {}: {}",
            runtime.binary.display(),
            io_reason(&e)
        ))
    })?;
    let pid = i64::from(child.id());
    // Recorded at once, so a crash from here on leaves a row cleanup can reconcile.
    ctx.store
        .set_status(
            id,
            &VmStatus::Running,
            Some(pid),
            Some(&socket.display().to_string()),
        )
        .map_err(rt)?;
    let what = match runtime.vmm {
        Vmm::Qemu => "QEMU",
        Vmm::Firecracker => "Firecracker",
    };
    let deadline = Instant::now() + runtime.boot_timeout;
    let exited = |child: &mut std::process::Child| -> Option<Error> {
        match child.try_wait() {
            Ok(Some(st)) => Some(Error::runtime(format!(
                "{what} exited early while booting VM '{id}' ({st}){}",
                log_tail(&log)
            ))),
            _ => None,
        }
    };
    // Control socket up.
    loop {
        if let Some(e) = exited(&mut child) {
            return Err(e);
        }
        let up = match runtime.vmm {
            Vmm::Qemu => Qmp::connect(&socket, Duration::from_millis(200))
                .await
                .is_ok(),
            Vmm::Firecracker => {
                firecracker::wait_for_socket(&socket, Duration::from_millis(50)).await
            }
        };
        if up {
            break;
        }
        if Instant::now() >= deadline {
            return Err(Error::runtime(format!(
                "Timed out waiting for {what} control socket{}",
                log_tail(&log)
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if runtime.vmm == Vmm::Firecracker {
        let cfg = firecracker::FcConfig {
            kernel: kernel.clone(),
            boot_args: args_for_fc(&row, &net),
            vcpus: n("vcpu_count", 2) as u32,
            mem_mib: n("mem_size_mib", 512) as u32,
            rootfs: PathBuf::from(s("rootfs_path").unwrap_or_default()),
            tap: net.tap_device.clone().unwrap_or_default(),
            mac: net.guest_mac.clone().unwrap_or_default(),
        };
        firecracker::configure_and_start(&socket, &cfg, Duration::from_secs(10))
            .await
            .map_err(rt)?;
    }
    let spawn_time = t_spawn.elapsed();
    progress.emit(StartEvent::PhaseDone(Phase::Spawn, spawn_time));

    progress.emit(StartEvent::PhaseStarted(Phase::Boot));
    let t_boot = Instant::now();
    let ip: Ipv4Addr = net
        .guest_ip
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    wait_ready(
        &mut child,
        &log,
        ip,
        deadline,
        runtime.boot_timeout,
        &exited,
    )
    .await?;
    let boot_time = t_boot.elapsed();
    progress.emit(StartEvent::PhaseDone(Phase::Boot, boot_time));
    // Reap the VMM whenever it exits, for a long-lived caller (the dashboard).
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    let mut rep = report(ctx, id, runtime, None, &kernel, &net, Some(pid))?;
    rep.timings = Timings {
        image_ms: 0.0,
        network_ms: ms(network_time),
        spawn_ms: ms(spawn_time),
        boot_ms: ms(boot_time),
        total_ms: 0.0,
    };
    Ok(rep)
}

fn args_for_fc(row: &VmRecord, net: &Network) -> String {
    let base = row
        .config
        .get("boot_args")
        .and_then(|v| v.as_str())
        .unwrap_or(DEFAULT_BOOT_ARGS);
    let key = row.config.get("ssh_public_key").and_then(|v| v.as_str());
    boot_args(base, Vmm::Firecracker, key, net)
}

/// Ready: the console says `SmolVM init complete`, or the guest's port 22 accepts.
async fn wait_ready(
    child: &mut std::process::Child,
    log: &std::fs::File,
    ip: Ipv4Addr,
    deadline: Instant,
    timeout: Duration,
    exited: &(dyn Fn(&mut std::process::Child) -> Option<Error> + Sync),
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let mut pos = 0u64;
    let mut tail = String::new();
    let mut probe: Option<tokio::task::JoinHandle<bool>> = None;
    let mut last_probe = Instant::now() - Duration::from_secs(1);
    loop {
        // Positional reads of the log we opened (the VMM appends to the same file).
        let mut buf = vec![0u8; 64 << 10];
        let n = log.read_at(&mut buf, pos).map_err(rt)?;
        buf.truncate(n);
        pos += n as u64;
        if n > 0 {
            tail.push_str(&String::from_utf8_lossy(&buf));
            if tail.contains(READY_MARKER) {
                return Ok(());
            }
            if tail.len() > 4096 {
                let cut = tail.len() - 256;
                let cut = (cut..tail.len())
                    .find(|i| tail.is_char_boundary(*i))
                    .unwrap_or(cut);
                tail.drain(..cut);
            }
        }
        if let Some(e) = exited(child) {
            return Err(e);
        }
        if let Some(h) = &probe {
            if h.is_finished() && probe.take().expect("probe").await.unwrap_or(false) {
                return Ok(());
            }
        } else if last_probe.elapsed() >= Duration::from_millis(250) {
            last_probe = Instant::now();
            probe = Some(tokio::spawn(async move {
                matches!(
                    tokio::time::timeout(
                        Duration::from_millis(250),
                        tokio::net::TcpStream::connect((ip, 22))
                    )
                    .await,
                    Ok(Ok(_))
                )
            }));
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                ErrorCode::Runtime,
                format!(
                    "VM did not become ready within {} s (no '{READY_MARKER}' on the console, port 22 closed){}",
                    timeout.as_secs(),
                    log_tail(log)
                ),
            )
            .with_recovery("Check the image's /init, or raise --boot-timeout."));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `: <last console line>` for error messages, when the log has one.
fn log_tail(log: &std::fs::File) -> String {
    use std::os::unix::fs::FileExt;
    let len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(64 << 10);
    let mut text = vec![0u8; (len - from) as usize];
    let n = log.read_at(&mut text, from).unwrap_or(0);
    text.truncate(n);
    let text = String::from_utf8_lossy(&text);
    match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(l) => format!(": {}", l.chars().take(300).collect::<String>()),
        None => String::new(),
    }
}

/// `sandbox start <id>`: boot a created or stopped sandbox again. On failure the process
/// is stopped and the row marked `error` (SmolVM's rule); its resources stay for `delete`.
pub async fn start_existing(
    ctx: &Ctx,
    id: &str,
    accel: Option<AccelRequest>,
    boot_timeout: Option<Duration>,
    progress: &Progress<StartEvent>,
) -> Result<StartReport> {
    let row = ctx
        .store
        .get_vm(id)
        .map_err(rt)?
        .ok_or_else(|| not_found(id))?;
    if !matches!(row.status, VmStatus::Created | VmStatus::Stopped) {
        return Err(Error::runtime(format!(
            "Cannot start VM in state '{}'",
            row.status
        )));
    }
    // The VMM it was created with (a row without one is SmolVM's default, QEMU), and the
    // accelerator unless one is given now.
    let backend = match row.backend() {
        None => Backend::Qemu,
        Some(b) => Vmm::parse(b)
            .map(|v| Backend::from_vmm(Some(v)))
            .ok_or_else(|| {
                Error::runtime(format!("Sandbox '{id}' has an unknown backend '{b}'"))
            })?,
    };
    let accel = match (accel, row.config.get("accel").and_then(|v| v.as_str())) {
        (Some(a), _) => Some(a),
        (None, None) => None,
        (None, Some(a)) => Some(AccelRequest::parse(a).ok_or_else(|| {
            Error::runtime(format!("Sandbox '{id}' has an unknown accelerator '{a}'"))
        })?),
    };
    let runtime = runtime(ctx, backend, accel, boot_timeout, progress)?;
    // Refusals here change nothing (the row keeps its status).
    let disk = PathBuf::from(
        row.config
            .get("rootfs_path")
            .and_then(|v| v.as_str())
            .unwrap_or_default(),
    );
    crate::sys::fs::record_vm_id(&ctx.data_dir, id).map_err(rt)?;
    let (log, socket) = prepare_files(ctx, id, runtime.vmm, &disk)?;
    let t0 = Instant::now();
    match boot(ctx, id, &runtime, log, socket, progress).await {
        Ok(mut rep) => {
            rep.preset = row.preset().map(str::to_string);
            rep.timings.total_ms = ms(t0.elapsed());
            Ok(rep)
        }
        Err(e) => {
            if let Ok(Some(vm)) = ctx.store.get_vm(id) {
                let _ = cleanup::stop_vm(
                    &vm,
                    &ctx.paths.socket_dir,
                    &ctx.data_dir,
                    Duration::from_secs(5),
                )
                .await;
            }
            let _ = ctx.store.set_status(id, &VmStatus::Error, None, None);
            Err(e)
        }
    }
}

pub fn not_found(id: &str) -> Error {
    Error::runtime(format!("Sandbox '{id}' not found"))
        .with_recovery("Run 'smolvm sandbox list' to see sandboxes.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_args_follow_smolvm() {
        let net = Network {
            guest_ip: Some("172.16.0.2".into()),
            gateway_ip: Some("172.16.0.1".into()),
            netmask: Some("255.255.255.0".into()),
            ..Default::default()
        };
        assert_eq!(
            boot_args("console=ttyS0 reboot=k panic=1 pci=off", Vmm::Qemu, Some("ssh-ed25519 AAA x\n"), &net),
            format!(
                "console=ttyS0 reboot=k panic=1 root=/dev/vda rw smolvm.authorized_key_b64={} ip=172.16.0.2::172.16.0.1:255.255.255.0::eth0:off",
                base64(b"ssh-ed25519 AAA x")
            )
        );
        assert_eq!(
            boot_args(
                "console=ttyS0 pci=off ip=1.2.3.4",
                Vmm::Firecracker,
                None,
                &net
            ),
            "console=ttyS0 pci=off ip=1.2.3.4"
        );
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn ids_are_vm_prefixed_and_valid() {
        let id = random_id();
        assert!(
            id.starts_with("vm-") && is_vm_id(&id) && id.len() == 11,
            "{id}"
        );
    }
}
