//! The VMM of a sandbox never runs as root. Root prepares what it needs — the TAP, the
//! disk, the kernel and the shared folders opened and handed over as descriptors; the
//! sockets' folder and `/dev/kvm` made reachable — and the VMM is exec'd already as its
//! user:
//! - a sandbox without writable mounts: a uid and gid of its own, no account's
//!   ([`users::VMM_IDS`], picked for each VMM under a host-wide lock), so a VMM a guest
//!   broke out of cannot signal, trace or read another sandbox's VMM (in a user namespace
//!   that does not map those ids, the system user `smolvm`, shared);
//! - a sandbox with writable mounts: the owner of the mounted folders, so what the guest
//!   writes there is theirs (one owner for all of them, never root).
//!
//! QEMU runs under its own seccomp filter (`-sandbox on,…`); Firecracker applies the
//! filters built into its binary (`doctor` warns when it has none). Once the VMM has bound
//! its control socket, root takes the socket over: only root talks to it from then on.

use crate::sys::child::Child;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checked::CheckedConfig;
use super::{rt, Ctx};
use crate::core::error::{io_reason, Error, Result};
use crate::core::host::Runtime;
use crate::core::images::Vmm;
use crate::core::presets::mounts::Mount;
use crate::sys::state::{Network, VmRecord, VmStatus};
use crate::sys::users::{self, Identity};
use crate::sys::vmm::launch::{self, Launch, VmmIdentity};
use crate::sys::vmm::{console, firecracker, prepare, qmp::Qmp, Accel};

/// Where a Firecracker VMM finds its disk and kernel: fixed descriptor numbers, so the
/// names in a snapshot's state (`/proc/self/fd/200`) hold in the VMM that restores it.
const FC_DISK_FD: i32 = launch::FIXED_FD_BASE;
const FC_KERNEL_FD: i32 = launch::FIXED_FD_BASE + 1;

/// Whom a sandbox's VMM runs as, and why (for `doctor`, `sandbox info` and errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VmmUser {
    /// `None` when smolvm itself is not root: it cannot switch users, and the VMM runs as
    /// this (already unprivileged) user.
    pub identity: Option<VmmIdentity>,
    pub name: String,
}

/// Where the VMM ids' lock lives: host-wide, as the ids are (root's `/run`).
const VMM_IDS_LOCK: &str = "/run/smolvm/vmm-ids.lock";

/// Whether this VMM may get ids of its own (smolvm is root and the user namespace maps
/// them, read once per spawn), and if so the ids' lock, held until the VMM runs as the id
/// picked for it.
pub(crate) struct IdsLock {
    own_ids: bool,
    #[allow(dead_code)]
    held: Option<crate::sys::lock::Held>,
}

/// Take the VMM ids' lock (nothing to take when smolvm is not root, its VMMs running as
/// it, or where the ids are not mapped, its VMMs sharing the system user).
pub(crate) fn lock_vmm_ids() -> Result<IdsLock> {
    if !crate::sys::users::is_root() || !users::vmm_ids_mapped() {
        return Ok(IdsLock {
            own_ids: false,
            held: None,
        });
    }
    crate::sys::lock::acquire(
        Path::new(VMM_IDS_LOCK),
        "picking a VMM id",
        Duration::from_secs(30),
    )
    .map(|h| IdsLock {
        own_ids: true,
        held: Some(h),
    })
    .map_err(|e| rt(format!("cannot pick an id for the VMM: {e}")))
}

/// The user the VMM of sandbox `vm_id` with `mounts` runs as (see the module's rules),
/// before the groups it keeps are known; the caller holds [`lock_vmm_ids`]. Refused:
/// writable mounts of different owners, or owned by root (or a user whose group is
/// root's).
pub(crate) fn base_identity(
    mounts: &[Mount],
    vm_id: &str,
    ids: &IdsLock,
) -> Result<Option<Identity>> {
    if !crate::sys::users::is_root() {
        return Ok(None);
    }
    let writable: Vec<&Mount> = mounts.iter().filter(|m| m.writable).collect();
    if !writable.is_empty() {
        return Ok(Some(mount_owner(&writable)?));
    }
    if !ids.own_ids {
        // A user namespace that maps none of them (an unprivileged container): the VMMs
        // share the system user, as `doctor` warns.
        return users::ensure_service_user().map(Some).map_err(|e| {
            rt(format!(
                "cannot prepare the VMM's user '{}': {}",
                users::SERVICE_USER,
                io_reason(&e)
            ))
        });
    }
    // Busy: the ids processes run with, and those a TAP names as its owner (a stopped
    // Firecracker's TAP keeps its VMM's uid; a later VMM given that uid could attach to it).
    let mut busy = crate::sys::procfs::ids_in_use();
    busy.extend(crate::sys::net::tap::owner_ids());
    users::pick_vmm_identity(vm_id, &busy)
        .map(Some)
        .map_err(|e| rt(format!("cannot pick an id for the VMM: {}", io_reason(&e))))
}

/// Refuse (usage error) writable mounts whose VMM could not run as their one non-root
/// owner — what [`base_identity`] will need at boot — before anything is made. Nothing to
/// check when smolvm is not root (its VMM runs as this user anyway).
pub(crate) fn check_writable_owner(mounts: &[Mount]) -> Result<()> {
    let writable: Vec<&Mount> = mounts.iter().filter(|m| m.writable).collect();
    if writable.is_empty() || !crate::sys::users::is_root() {
        return Ok(());
    }
    mount_owner(&writable).map(drop)
}

/// The one owner of these writable mounts' folders, as the VMM's user.
fn mount_owner(writable: &[&Mount]) -> Result<Identity> {
    let mut owner: Option<(Identity, &Path)> = None;
    for m in writable {
        let id = users::owner_of(&m.host_path).map_err(|e| {
            rt(format!(
                "cannot read the owner of {}: {}",
                m.host_path.display(),
                io_reason(&e)
            ))
        })?;
        match owner {
            Some((o, first)) if o.uid != id.uid => {
                return Err(Error::usage(format!(
                    "--writable-mounts: {} belongs to {} but {} belongs to {}; the VMM runs as the \
                     owner of the folders it writes to, so they must all have one owner",
                    first.display(),
                    users::user_name(o.uid),
                    m.host_path.display(),
                    users::user_name(id.uid)
                ))
                .with_recovery(
                    "Mount folders of one owner, or mount the others read-only in another sandbox.",
                ));
            }
            Some(_) => {}
            None => owner = Some((id, &m.host_path)),
        }
    }
    let Some((id, path)) = owner else {
        return Err(rt("no writable mount"));
    };
    if id.uid == 0 || id.gid == 0 {
        return Err(Error::usage(format!(
            "--writable-mounts: {} belongs to {} (group {}); the VMM serving writable mounts runs as \
             the folder's owner, and never as root",
            path.display(),
            users::user_name(id.uid),
            users::group_name(id.gid)
        ))
        .with_recovery(
            "Give the folder to the user who should own what the guest writes (chown USER FOLDER), or mount it read-only.",
        ));
    }
    Ok(id)
}

/// Whom the VMM of this start runs as, with the groups it keeps: the sockets' folder made
/// reachable for it, and `/dev/kvm` for a KVM guest or Firecracker.
pub(crate) fn vmm_user(
    ctx: &Ctx,
    runtime: &Runtime,
    mounts: &[Mount],
    vm_id: &str,
    ids: &IdsLock,
) -> Result<VmmUser> {
    let Some(id) = base_identity(mounts, vm_id, ids)? else {
        let me = crate::sys::users::euid();
        return Ok(VmmUser {
            identity: None,
            name: users::user_name(me),
        });
    };
    let mut user = VmmIdentity {
        id,
        groups: Vec::new(),
    };
    let dir = &ctx.paths.socket_dir;
    let service_group = || users::ensure_service_user().map(|s| s.gid);
    if let Some(g) = prepare::socket_dir(dir, &user, service_group).map_err(|e| {
        rt(format!(
            "cannot prepare the sockets' folder {}: {}",
            dir.display(),
            io_reason(&e)
        ))
        .with_recovery(
            "Point SMOLVM_SOCKET_DIR at a folder every user can reach (the default is /tmp).",
        )
    })? {
        user.groups.push(g);
    }
    if runtime.accel == Accel::Kvm || runtime.vmm == Vmm::Firecracker {
        match prepare::kvm_device(&user) {
            Ok(Some(g)) => user.groups.push(g),
            Ok(None) => {}
            Err(e) => {
                return Err(rt(format!(
                    "cannot let the VMM's user {} open {}: {}",
                    users::user_name(id.uid),
                    prepare::DEV_KVM,
                    io_reason(&e)
                )))
            }
        }
    }
    Ok(VmmUser {
        name: vmm_user_name(id.uid),
        identity: Some(user),
    })
}

/// How messages name the user of a VMM: its account, or `uid N` for an id of its own.
pub(crate) fn vmm_user_name(uid: u32) -> String {
    if users::is_vmm_id(uid) {
        format!("uid {uid}")
    } else {
        users::user_name(uid)
    }
}

/// A spawned VMM and what the caller still needs of it.
pub(crate) struct Spawned {
    pub child: Child,
    pub user: VmmUser,
    /// The kernel and disk as Firecracker opens them (its configuration names these).
    pub fc_kernel: PathBuf,
    pub fc_rootfs: PathBuf,
}

/// What a VMM is started for.
pub(crate) struct VmmJob<'a> {
    pub row: &'a VmRecord,
    pub checked: &'a CheckedConfig,
    pub net: &'a Network,
    pub socket: &'a Path,
    pub log: &'a std::fs::File,
    /// A QEMU started stopped for a saved state (a restore's or a clone's), its disk a
    /// copy just written here ([`QemuSpec::incoming`](crate::sys::vmm::qemu::QemuSpec)).
    pub incoming: bool,
    /// A clone's agent port: QEMU listens on this socket instead of a null host end.
    pub agent_socket: Option<&'a Path>,
    /// The disk, already open (a clone's copy still going in under a temporary name),
    /// handed over instead of `checked.rootfs` opened anew.
    pub disk: Option<&'a std::fs::File>,
    /// Guest RAM from a file handed over instead of anonymous memory.
    pub ram: Option<Ram<'a>>,
    /// The NIC on a TAP of its own that goes with it instead of the sandbox's (a QEMU
    /// that never runs the guest).
    pub throwaway_tap: bool,
}

/// Where a VMM's guest RAM comes from ([`VmmJob::ram`]).
#[derive(Debug, Clone, Copy)]
pub enum Ram<'a> {
    /// This file, opened read-write and mapped shared: the QEMU that writes a snapshot's
    /// `ram.bin` (it never runs the guest).
    Writes(&'a Path),
    /// This sealed copy ([`sealed_ram`](crate::sys::vmm::prepare::sealed_ram)), mapped private: a clone's, whose writes
    /// stay its own and which neither it nor anyone can change under its siblings.
    Maps(&'a OwnedFd),
}

impl<'a> VmmJob<'a> {
    /// A cold boot's job: the row's own disk, TAP and devices; the fields a restore, a
    /// clone or the RAM-file writer changes are set over it (`..VmmJob::new(..)`).
    pub(crate) fn new(
        row: &'a VmRecord,
        checked: &'a CheckedConfig,
        net: &'a Network,
        socket: &'a Path,
        log: &'a std::fs::File,
    ) -> VmmJob<'a> {
        VmmJob {
            row,
            checked,
            net,
            socket,
            log,
            incoming: false,
            agent_socket: None,
            disk: None,
            ram: None,
            throwaway_tap: false,
        }
    }
}

/// Record a just-spawned VMM under `status` with its PID and control socket, so a crash
/// from here on leaves a row cleanup can reconcile. The first step of the block whose
/// failure stops that VMM ([`settle`](super::settle)): a failed write must not leave it
/// running unrecorded.
pub(crate) fn record_spawned(
    ctx: &Ctx,
    id: &str,
    status: VmStatus,
    pid: i64,
    socket: &Path,
) -> Result<()> {
    let socket = socket.display().to_string();
    ctx.store
        .set_status(id, &status, Some(pid), Some(&socket))
        .map_err(rt)
}

fn open_err(what: &str, p: &Path, e: &std::io::Error) -> Error {
    rt(format!(
        "cannot open {what} {} for the VMM: {}",
        p.display(),
        io_reason(e)
    ))
}

/// Spawn the VM's monitor as its user, its output to the log: QEMU with SmolVM's command
/// line (kernel, disk, TAP and shared folders handed over), or Firecracker listening on
/// its API socket (its TAP, disk and kernel made reachable for it).
pub(crate) fn spawn_vmm(ctx: &Ctx, runtime: &Runtime, job: VmmJob<'_>) -> Result<Spawned> {
    // Held until the VMM runs as the id picked for it.
    let ids = lock_vmm_ids()?;
    let user = vmm_user(ctx, runtime, &job.checked.mounts, &job.row.id, &ids)?;
    let who = user.identity.clone();
    let id = job.row.id.as_str();
    let cannot = |e: std::io::Error| {
        rt(format!(
            "cannot start {}: {}",
            runtime.binary.display(),
            io_reason(&e)
        ))
    };
    let mut launch = Launch::new(&runtime.binary, who.clone()).map_err(cannot)?;
    if job.throwaway_tap {
        // A QEMU that never runs the guest is the job's helper: it dies with smolvm.
        launch.die_with_parent();
    }
    let kernel_fd = |l: &mut Launch, at: Option<i32>| -> Result<PathBuf> {
        let k = &job.checked.kernel;
        let f = crate::sys::open::open_read(k).map_err(|e| open_err("kernel", k, &e))?;
        let fd: OwnedFd = match &who {
            Some(u) => prepare::readable_by(f, u).map_err(|e| open_err("kernel", k, &e))?,
            None => OwnedFd::from(f),
        };
        let n = match at {
            Some(at) => l.hand_over_at(fd, at),
            None => l.hand_over(fd),
        };
        Ok(PathBuf::from(format!("/proc/self/fd/{n}")))
    };
    let disk_file = {
        let d = &job.checked.rootfs;
        match job.disk {
            Some(f) => f.try_clone(),
            None => crate::sys::open::open_existing_rw(d),
        }
        .map_err(|e| open_err("disk", d, &e))?
    };
    let tap = job.net.tap_device.clone().unwrap_or_default();
    let (fc_kernel, fc_rootfs) = match runtime.vmm {
        Vmm::Qemu => {
            let kernel = kernel_fd(&mut launch, None)?;
            let rootfs_fd = launch.hand_over(OwnedFd::from(disk_file));
            let fd = if job.throwaway_tap {
                crate::sys::net::tap::open_throwaway()
            } else {
                crate::sys::net::tap::open_queue(&tap)
            };
            let fd = fd.map_err(|e| {
                rt(format!(
                    "cannot hand the TAP over to QEMU: {}",
                    io_reason(&e)
                ))
            })?;
            let tap_fd = Some(launch.hand_over(fd));
            let ram = match job.ram {
                Some(ram) => {
                    let (fd, share) = match ram {
                        Ram::Writes(p) => (
                            crate::sys::open::open_existing_rw(p)
                                .map(OwnedFd::from)
                                .map_err(|e| open_err("RAM file", p, &e))?,
                            true,
                        ),
                        Ram::Maps(fd) => (fd.try_clone().map_err(rt)?, false),
                    };
                    Some(crate::sys::vmm::qemu::RamFile {
                        path: PathBuf::from(format!("/proc/self/fd/{}", launch.hand_over(fd))),
                        share,
                    })
                }
                None => None,
            };
            let mut roots = Vec::new();
            for m in &job.checked.mounts {
                let dir = crate::sys::open::dir_nofollow(&m.host_path)
                    .map_err(|e| open_err("shared folder", &m.host_path, &e))?;
                roots.push(PathBuf::from(format!(
                    "/proc/self/fd/{}",
                    launch.hand_over(dir)
                )));
            }
            let mut spec = super::qemu_spec(job.row, job.checked, runtime, job.net, job.socket);
            spec.kernel = kernel;
            spec.rootfs_fd = Some(rootfs_fd);
            spec.tap_fd = tap_fd;
            spec.ram = ram;
            spec.sandbox = true;
            spec.incoming = job.incoming;
            if let (Some(p), Some(_)) = (job.agent_socket, &spec.agent) {
                spec.agent = Some(crate::sys::vmm::qemu::AgentPort::Socket(p.to_path_buf()));
            }
            spec.extra = crate::core::presets::mounts::qemu_args(
                &job.checked.mounts,
                &roots,
                spec.machine == crate::sys::vmm::qemu::Machine::Microvm,
            );
            let argv = spec.argv();
            launch.args(&argv[1..]).map_err(cannot)?;
            (PathBuf::new(), PathBuf::new())
        }
        Vmm::Firecracker => {
            let kernel = if job.checked.kernel.as_os_str().is_empty() {
                PathBuf::new()
            } else {
                kernel_fd(&mut launch, Some(FC_KERNEL_FD))?
            };
            if let Some(u) = &who {
                crate::sys::vmm::prepare::tun_device()
                    .and_then(|()| crate::sys::net::tap::set_owner(&tap, u.id.uid))
                    .map_err(|e| {
                        rt(format!(
                            "cannot let Firecracker's user {} attach to {tap}: {}",
                            user.name,
                            io_reason(&e)
                        ))
                    })?;
                prepare::give_to(&disk_file, u.id)
                    .map_err(|e| rt(format!("cannot give the disk to {}: {e}", user.name)))?;
            }
            let disk = launch.hand_over_at(OwnedFd::from(disk_file), FC_DISK_FD);
            launch
                .arg("--api-sock")
                .and_then(|l| l.arg(job.socket))
                .map_err(cannot)?;
            (kernel, PathBuf::from(format!("/proc/self/fd/{disk}")))
        }
    };
    tracing::info!(vm = %id, user = %user.name, argv = %launch.argv().join(" "), "spawning VMM");
    let console = console_of(ctx, job.log)?;
    let child = launch.spawn(Some(&console)).map_err(cannot)?;
    // The VMM holds the pipe now: the pump ends when it does.
    drop(console);
    drop(ids);
    Ok(Spawned {
        child,
        user,
        fc_kernel,
        fc_rootfs,
    })
}

/// `SMOLVM_CONSOLE_LOG_MAX`: the bound of a VM's console log, in bytes.
pub fn console_log_max(env: &crate::sys::env::Env) -> Result<u64> {
    Ok(env.count(
        "SMOLVM_CONSOLE_LOG_MAX",
        DEFAULT_CONSOLE_LOG_MAX,
        console::MIN_MAX_BYTES,
        u64::MAX,
    )?)
}

/// A console log's bound unless `SMOLVM_CONSOLE_LOG_MAX` says otherwise: 64 MiB.
const DEFAULT_CONSOLE_LOG_MAX: u64 = 64 << 20;

/// What the VMM writes its console and messages into: the pipe of a pump bounding `log`
/// ([`console`]). Run from anything but smolvm itself (a program using the library), the
/// pump cannot be started (it is smolvm's hidden subcommand): the log itself, unbounded.
fn console_of(ctx: &Ctx, log: &std::fs::File) -> Result<std::fs::File> {
    let max = console_log_max(&ctx.env)?;
    let exe = std::env::current_exe()
        .ok()
        .filter(|e| e.file_name().is_some_and(|n| n == "smolvm"));
    let Some(exe) = exe else {
        return log
            .try_clone()
            .map_err(|e| rt(format!("cannot hand the log over: {}", io_reason(&e))));
    };
    let user = if users::is_root() {
        Some(users::ensure_service_user().map_err(|e| {
            rt(format!(
                "cannot prepare the console log's user '{}': {}",
                users::SERVICE_USER,
                io_reason(&e)
            ))
        })?)
    } else {
        None
    };
    console::pump(&exe, log, max, user).map_err(|e| {
        rt(format!(
            "cannot start the console log's pump: {}",
            io_reason(&e)
        ))
    })
}

/// `smolvm __console-log --max BYTES`: the pump ([`console`]).
pub fn console_log_main(args: &[std::ffi::OsString]) -> i32 {
    console::serve_main(args)
}

/// The hidden subcommand the pump runs as.
pub const CONSOLE_LOG_SUBCOMMAND: &str = console::SUBCOMMAND;

/// Once a Firecracker of `user` has configured (or loaded) its disk, give the disk back to
/// root ([`prepare::give_back`]); nothing to do for a VMM that runs as this process.
pub(crate) fn give_disk_back(user: &VmmUser, disk: &Path) -> Result<()> {
    if user.identity.is_none() {
        return Ok(());
    }
    prepare::give_back(disk).map_err(|e| {
        rt(format!(
            "cannot give the disk {} back to root: {}",
            disk.display(),
            io_reason(&e)
        ))
    })
}

/// The uid the VMM of `user` runs as.
fn vmm_uid(user: &VmmUser) -> u32 {
    user.identity
        .as_ref()
        .map_or_else(crate::sys::users::euid, |u| u.id.uid)
}

/// Take the control socket over when the VMM failed before it was up (it may have bound its
/// socket just before it exited): the socket is then root's, and the rollback removes it
/// like any other. Anything else at the path is left alone.
pub(crate) fn claim_leftover_socket(socket: &Path, user: &VmmUser) {
    let _ = launch::claim_socket(socket, vmm_uid(user));
}

/// The end of the waits for VMM `child`, which this boot spawned: when they failed (`r`'s
/// error, returned as it is) it is killed and reaped and the control `sockets` it may have
/// bound are claimed back; else it is reaped in a thread whenever it exits (a long-lived
/// caller, the dashboard, keeps no zombie).
pub(crate) fn settle<T>(
    mut child: Child,
    r: Result<T>,
    sockets: &[&Path],
    user: &VmmUser,
) -> Result<T> {
    if r.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        for s in sockets {
            claim_leftover_socket(s, user);
        }
    } else {
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
    r
}

/// Whether the VMM's control socket is up: once the VMM has bound it, it is taken over
/// (root's, 0600) and answers. Something at the path that is not the VMM's socket fails
/// the start.
pub(crate) async fn control_socket_up(vmm: Vmm, socket: &Path, user: &VmmUser) -> Result<bool> {
    Ok(match vmm {
        Vmm::Qemu => qmp_when_up(socket, user).await?.is_some(),
        Vmm::Firecracker => {
            claimed(socket, user)?
                && firecracker::wait_for_socket(socket, Duration::from_millis(50)).await
        }
    })
}

/// The QMP connection of a QEMU whose control socket is up (and claimed, see
/// [`control_socket_up`]), or `None` while it is not: kept for the caller's commands,
/// since QEMU serves one monitor client at a time and a second connect waits for it to
/// notice the first has gone.
pub(crate) async fn qmp_when_up(socket: &Path, user: &VmmUser) -> Result<Option<Qmp>> {
    if !claimed(socket, user)? {
        return Ok(None);
    }
    Ok(Qmp::connect(socket, Duration::from_millis(500)).await.ok())
}

/// Whether the VMM's control socket exists and is now root's (`launch::claim_socket`).
fn claimed(socket: &Path, user: &VmmUser) -> Result<bool> {
    match launch::claim_socket(socket, vmm_uid(user)) {
        Ok(up) => Ok(up),
        Err(e) => Err(rt(format!(
            "the VMM's control socket {} is not usable: {}",
            socket.display(),
            io_reason(&e)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(p: &Path, writable: bool) -> Mount {
        Mount {
            host_path: p.to_path_buf(),
            guest_path: "/w".into(),
            tag: "workspace0".into(),
            writable,
            unsafe_mount: false,
        }
    }

    #[test]
    fn writable_mounts_need_one_owner_who_is_not_root() {
        if !crate::sys::users::is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let e = mount_owner(&[&mount(&a, true)]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("never as root"), "{}", e.message);
        std::os::unix::fs::chown(&a, Some(4_100_001), Some(4_100_001)).unwrap();
        assert_eq!(
            mount_owner(&[&mount(&a, true)]).unwrap(),
            Identity {
                uid: 4_100_001,
                gid: 4_100_001
            }
        );
        std::os::unix::fs::chown(&b, Some(4_100_002), Some(4_100_002)).unwrap();
        let e = mount_owner(&[&mount(&a, true), &mount(&b, true)]).unwrap_err();
        assert!(e.message.contains("one owner"), "{}", e.message);
    }
}
