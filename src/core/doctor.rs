//! `smolvm doctor`: what this host can and cannot do, one check per line, each with a
//! one-line fix. PVM, no Firecracker and no Docker daemon are warnings (a QEMU/TCG host
//! still runs sandboxes); anything that stops every sandbox is a failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::core::docker::{self, DockerProblem};
use crate::core::host::{self, AutoChoice, BackendChoice, Host, KvmKind};
use crate::core::progress::Progress;
use crate::sys::env::Env;
use crate::sys::host::DevAccess;
use crate::sys::paths::Paths;
use crate::sys::state::{OpenMode, StateStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    /// What to do about it (empty when nothing needs doing).
    pub fix: String,
}

fn check(name: &'static str, status: Status, message: impl Into<String>, fix: &str) -> Check {
    Check {
        name,
        status,
        message: message.into(),
        fix: fix.to_string(),
    }
}

/// Below this much free space under `~/.smolvm` doctor fails; below [`DISK_WARN`] it warns.
pub const DISK_FAIL: u64 = 1 << 30;
pub const DISK_WARN: u64 = 5 << 30;

/// Run every check against `host` (probed once by the caller), reporting each as it
/// completes; returns them in order.
pub fn run(env: &Env, host: &Host, progress: &Progress<Check>) -> Vec<Check> {
    let paths = Paths::resolve(env, None);
    let mut out = Vec::new();
    let mut push = |c: Check| {
        progress.emit(c.clone());
        out.push(c);
    };
    push(kvm(host));
    push(binary(
        "qemu",
        host.qemu.as_deref(),
        Status::Fail,
        "QEMU is not installed; no sandbox can boot",
        host::QEMU_INSTALL_HINT,
    ));
    push(qemu_seccomp(host.qemu.as_deref()));
    push(binary(
        "firecracker",
        host.firecracker.as_deref(),
        Status::Warn,
        "Firecracker is not installed; sandboxes use QEMU",
        "Install Firecracker into ~/.smolvm/bin/ or set SMOLVM_FIRECRACKER_BIN (needs hardware KVM)",
    ));
    push(fc_seccomp(host.firecracker.as_deref(), env.is_root()));
    push(backend(&host.auto()));
    for (name, tool, pkg) in [("nft", "nft", "nftables"), ("ip", "ip", "iproute2")] {
        push(match host::which(env, tool) {
            Some(p) => check(name, Status::Ok, format!("{}", p.display()), ""),
            None => check(
                name,
                Status::Fail,
                format!("`{tool}` is not on PATH; sandbox networking cannot be set up"),
                &format!("Install it: apt-get install {pkg}"),
            ),
        });
    }
    push(ip_forward(Path::new("/proc/sys/net/ipv4/ip_forward")));
    push(network_guard(
        &paths.existing_state_dbs(),
        &paths.socket_dir,
    ));
    push(privileges(env.is_root(), cap_net_admin()));
    push(vmm_user(env.is_root()));
    push(match docker::check(env) {
        Ok(v) => check("docker", Status::Ok, format!("daemon answers (server {v})"), ""),
        Err(DockerProblem::NotInstalled) => check(
            "docker",
            Status::Warn,
            "Docker is not installed; images build with debootstrap (Debian only)",
            "Install docker.io to build Alpine and Dockerfile images",
        ),
        Err(p) => check(
            "docker",
            Status::Warn,
            p.message(),
            "Start the Docker service (systemctl start docker) to build Alpine and Dockerfile images",
        ),
    });
    push(match host::which(env, "debootstrap") {
        Some(p) => check("debootstrap", Status::Ok, format!("{}", p.display()), ""),
        None => check(
            "debootstrap",
            Status::Warn,
            "debootstrap is not installed; Debian images need Docker to build",
            "Install it: apt-get install debootstrap",
        ),
    });
    push(disk(&paths.home.join(".smolvm")));
    push(match crate::core::context::check_data_dir(&paths) {
        // No state can be read or made there: every other command refuses it too.
        Err(e) => check(
            "state-db",
            Status::Fail,
            e.message,
            e.recovery.as_deref().unwrap_or_default(),
        ),
        Ok(()) => state_db(&paths.existing_state_dbs()),
    });
    push(ports());
    push(settings(env));
    out
}

/// The `SMOLVM_*` variables ([`crate::core::settings`]): every bad one named (other
/// commands refuse to run with them).
fn settings(env: &Env) -> Check {
    let found = crate::core::settings::problems(env);
    if found.is_empty() {
        return check(
            "settings",
            Status::Ok,
            "every SMOLVM_* variable set is valid",
            "",
        );
    }
    check(
        "settings",
        Status::Fail,
        found
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; "),
        "Unset each variable named or give it a valid value (smolvm man: ENVIRONMENT); other commands refuse to run until then",
    )
}

/// Port forwards a host service has shadowed since (it listens on the forward's host
/// port: its 127.0.0.1 clients reach the sandbox). Without the right to read nftables
/// nothing can be said (not a warning).
fn ports() -> Check {
    match crate::core::ports::shadowed_forwards() {
        Err(e) => check(
            "ports",
            Status::Ok,
            format!(
                "port forwards not checked (cannot read nftables: {})",
                crate::sys::io_reason(&e)
            ),
            "",
        ),
        Ok(v) if v.is_empty() => check(
            "ports",
            Status::Ok,
            "no port forward is shadowed by a host service",
            "",
        ),
        Ok(v) => check(
            "ports",
            Status::Warn,
            v.iter()
                .filter_map(|f| {
                    f.shadow_note().map(|n| {
                        format!("127.0.0.1:{} -> {}:{} is {n}", f.host_port, f.vm_id, f.guest_port)
                    })
                })
                .collect::<Vec<_>>()
                .join("; "),
            "Close the forward (smolvm sandbox port close ID HOST:PORT) or move the host service to another port",
        ),
    }
}

/// `doctor --backend B` (SmolVM's flag): the checks that matter for that backend. `qemu`
/// drops the Firecracker check; `firecracker` makes a missing Firecracker a failure and
/// drops the QEMU one; `libkrun` and `vz` are not backends of this smolvm (a failure);
/// `auto` keeps everything.
pub fn for_backend(checks: Vec<Check>, choice: BackendChoice) -> Vec<Check> {
    let mut out: Vec<Check> = match choice {
        BackendChoice::Qemu => checks
            .into_iter()
            .filter(|c| c.name != "firecracker" && c.name != "fc-seccomp")
            .collect(),
        BackendChoice::Firecracker => checks
            .into_iter()
            .filter(|c| c.name != "qemu" && c.name != "qemu-seccomp")
            .map(|mut c| {
                if c.name == "firecracker" && c.status == Status::Warn {
                    c.status = Status::Fail;
                }
                c
            })
            .collect(),
        _ => checks,
    };
    if choice.runnable().is_none() {
        let backend = choice.as_str();
        // The auto choice's line would contradict it: one `backend` line.
        out.retain(|c| c.name != "backend");
        out.insert(
            0,
            check(
                "backend",
                Status::Fail,
                format!("the {backend} backend is not available in this smolvm"),
                "Use --backend qemu or --backend firecracker",
            ),
        );
    }
    out
}

/// What `--backend auto` runs here and why (the same decision `start` and `image pull`
/// make); a failure when such a start could not run.
fn backend(auto: &AutoChoice) -> Check {
    match &auto.error {
        None => check(
            "backend",
            Status::Ok,
            format!("{}; {}", auto.backend_reason, auto.accelerator_reason),
            "",
        ),
        Some(e) => check(
            "backend",
            Status::Fail,
            format!("{} — but a start fails: {e}", auto.backend_reason),
            "Fix the failing check above, or pass --backend/--accel explicitly",
        ),
    }
}

fn kvm(host: &Host) -> Check {
    let access = host.dev_kvm == DevAccess::ReadWrite;
    let (status, message, fix) = match host.kvm {
        KvmKind::Hardware if access => (
            Status::Ok,
            "hardware KVM, /dev/kvm is accessible",
            "",
        ),
        KvmKind::Hardware => (
            Status::Warn,
            "hardware KVM, but this user cannot open /dev/kvm; QEMU falls back to TCG (slow)",
            "Add this user to the kvm group: usermod -aG kvm $USER (then log in again)",
        ),
        KvmKind::Pvm => (
            Status::Warn,
            "PVM (kvm_pvm): stock guests do not run under it; QEMU uses TCG (slow), Firecracker is unavailable",
            "Run on a host with hardware virtualisation (kvm_intel/kvm_amd) for fast boots",
        ),
        KvmKind::Other => (
            Status::Warn,
            "/dev/kvm is provided by an unknown module; QEMU uses TCG",
            "Load kvm_intel or kvm_amd for hardware virtualisation",
        ),
        KvmKind::None => (
            Status::Warn,
            "no KVM on this host; QEMU uses TCG (slow), Firecracker is unavailable",
            "Enable virtualisation in the firmware and load kvm_intel or kvm_amd",
        ),
    };
    check("kvm", status, message, fix)
}

/// A VMM binary: present with its version, or `missing` with `fix`.
fn binary(name: &'static str, path: Option<&Path>, missing: Status, why: &str, fix: &str) -> Check {
    let Some(p) = path else {
        return check(name, missing, why, fix);
    };
    let argv = [p.as_os_str(), "--version".as_ref()];
    match crate::sys::child::run_bounded(&argv, Duration::from_secs(5)) {
        Ok(Some((st, out, _))) if st.success() => {
            let v = out.lines().next().unwrap_or("").trim().to_string();
            check(name, Status::Ok, format!("{} ({v})", p.display()), "")
        }
        _ => check(
            name,
            missing,
            format!("{} does not run (`--version` failed)", p.display()),
            fix,
        ),
    }
}

fn ip_forward(path: &Path) -> Check {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim() == "1" => check("ip-forward", Status::Ok, "net.ipv4.ip_forward = 1", ""),
        Ok(s) => check(
            "ip-forward",
            Status::Warn,
            format!(
                "net.ipv4.ip_forward = {}; smolvm turns it on when it starts a sandbox",
                s.trim()
            ),
            "sysctl -w net.ipv4.ip_forward=1",
        ),
        Err(e) => check(
            "ip-forward",
            Status::Warn,
            format!(
                "cannot read {}: {}",
                path.display(),
                crate::core::error::io_reason(&e)
            ),
            "Check that /proc is mounted",
        ),
    }
}

/// smolvm's nftables guard (`inet smolvm_guard`): present once a sandbox has started,
/// and holding every running sandbox's TAP.
fn network_guard(dbs: &[PathBuf], socket_dir: &Path) -> Check {
    let store = dbs.first().and_then(|db| {
        crate::sys::state::StateStore::open(
            db,
            crate::sys::state::OpenMode::DryRun,
            crate::sys::state::DEFAULT_BUSY_TIMEOUT,
        )
        .ok()
        .map(|(s, _)| s)
    });
    match crate::core::egress::guard_health(store.as_ref(), socket_dir) {
        Err(e) => check(
            "network-guard",
            Status::Warn,
            format!(
                "cannot read nftables: {} (run doctor as root)",
                crate::core::error::io_reason(&e)
            ),
            "sudo smolvm doctor",
        ),
        Ok(h) if !h.unguarded.is_empty() => check(
            "network-guard",
            Status::Fail,
            format!(
                "running sandbox(es) not contained by inet smolvm_guard: {} (started by SmolVM, by an older smolvm, or the table was changed)",
                h.unguarded.join(", ")
            ),
            &format!(
                "smolvm sandbox network set {} (applies the guard again)",
                h.unguarded[0]
            ),
        ),
        Ok(h) if !h.outdated.is_empty() => check(
            "network-guard",
            Status::Warn,
            format!(
                "running sandbox(es) held by an older smolvm's guard rules (open mode and allowed names still reach the LAN): {}",
                h.outdated.join(", ")
            ),
            &format!(
                "smolvm sandbox network set {} (writes its guard anew)",
                h.outdated[0]
            ),
        ),
        Ok(h) if h.table => check(
            "network-guard",
            Status::Ok,
            format!("inet smolvm_guard holds {} sandbox TAP(s)", h.guarded),
            "",
        ),
        Ok(_) => check(
            "network-guard",
            Status::Ok,
            "inet smolvm_guard is made by the first sandbox start (no sandbox is running)",
            "",
        ),
    }
}

/// This process holds CAP_NET_ADMIN in its effective set.
fn cap_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

fn privileges(root: bool, net_admin: bool) -> Check {
    if root {
        check("privileges", Status::Ok, "running as root", "")
    } else if net_admin {
        check("privileges", Status::Ok, "CAP_NET_ADMIN", "")
    } else {
        check(
            "privileges",
            Status::Fail,
            "neither root nor CAP_NET_ADMIN: TAP devices and nftables rules cannot be created",
            "Run smolvm with sudo, or grant it: setcap cap_net_admin+ep $(command -v smolvm)",
        )
    }
}

/// Whom sandboxes' VMMs run as: each a uid and gid of its own (or, with writable mounts,
/// the folders' owner), never root. A user named `smolvm` that smolvm did not make fails:
/// the resolver and a sockets' folder VMMs cannot write need smolvm's own.
fn vmm_user(root: bool) -> Check {
    use crate::sys::users::{self, SERVICE_USER, VMM_IDS};
    let rest = "with writable mounts, the mounted folders' owner; QEMU under its seccomp \
                filter (-sandbox on), Firecracker under its own filters";
    if !root {
        let me = crate::sys::users::euid();
        return check(
            "vmm-user",
            Status::Ok,
            format!(
                "smolvm is not root: VMMs run as this user, {} (uid {me})",
                users::user_name(me)
            ),
            "",
        );
    }
    match users::lookup_service_user() {
        Ok(_) if !users::vmm_ids_mapped() => check(
            "vmm-user",
            Status::Warn,
            format!(
                "this user namespace does not map smolvm's VMM ids ({}…{}): VMMs share the \
                 system user {SERVICE_USER}, never root, so one a guest broke out of could \
                 reach the others; {rest}",
                VMM_IDS.start,
                VMM_IDS.end - 1
            ),
            "Run smolvm where those ids are mapped (the host, or a container whose uid and gid maps include them)",
        ),
        Ok(_) => check(
            "vmm-user",
            Status::Ok,
            format!(
                "VMMs run each as a uid and gid of their own ({}…{}, no account; none can \
                 signal, trace or read another), never root; {rest}",
                VMM_IDS.start,
                VMM_IDS.end - 1
            ),
            "",
        ),
        Err(e) => check(
            "vmm-user",
            Status::Fail,
            crate::core::error::io_reason(&e),
            &format!(
                "Remove or rename that user (userdel {SERVICE_USER}); smolvm then makes its own"
            ),
        ),
    }
}

/// QEMU can apply its seccomp filter (`-sandbox`, which every start uses): a QEMU built
/// without libseccomp refuses the option, so no sandbox could start.
fn qemu_seccomp(qemu: Option<&Path>) -> Check {
    let Some(q) = qemu else {
        return check(
            "qemu-seccomp",
            Status::Fail,
            "no QEMU, no seccomp filter to check",
            host::QEMU_INSTALL_HINT,
        );
    };
    let argv = [
        q.as_os_str(),
        "-sandbox".as_ref(),
        crate::sys::vmm::qemu::SANDBOX.as_ref(),
        "-version".as_ref(),
    ];
    match crate::sys::child::run_bounded(&argv, Duration::from_secs(5)) {
        Ok(Some((st, _, _))) if st.success() => check(
            "qemu-seccomp",
            Status::Ok,
            format!(
                "QEMU runs under its own seccomp filter (-sandbox {})",
                crate::sys::vmm::qemu::SANDBOX
            ),
            "",
        ),
        _ => check(
            "qemu-seccomp",
            Status::Fail,
            format!(
                "{} has no seccomp support (-sandbox): no sandbox can start",
                q.display()
            ),
            "Install a QEMU built with libseccomp (Debian's qemu-system-x86 is)",
        ),
    }
}

/// Firecracker's own seccomp filters: present in official (musl) builds; a build without
/// its policies installs a filter that allows every system call. Measured on a probe
/// process (its API thread's filter) started as the VMM's user.
fn fc_seccomp(fc: Option<&Path>, root: bool) -> Check {
    use crate::sys::vmm::seccomp;
    let Some(bin) = fc else {
        return check(
            "fc-seccomp",
            Status::Ok,
            "no Firecracker binary, nothing to check",
            "",
        );
    };
    let fix = "Use an official Firecracker release (its musl build carries the seccomp policies), \
               or build it for x86_64-unknown-linux-musl";
    let user = if root {
        match probe_user() {
            Some(u) => Some(u),
            None => {
                return check(
                    "fc-seccomp",
                    Status::Warn,
                    "cannot tell whether Firecracker filters system calls: no unprivileged user to probe it as",
                    fix,
                )
            }
        }
    } else {
        None
    };
    match seccomp::probe_firecracker(bin, user) {
        Ok(Some(n)) if n >= seccomp::MEANINGFUL_FILTER => check(
            "fc-seccomp",
            Status::Ok,
            format!("{} applies its own seccomp filters ({n} BPF instructions)", bin.display()),
            "",
        ),
        Ok(n) => check(
            "fc-seccomp",
            Status::Warn,
            format!(
                "{} has no seccomp policy compiled in ({}): a guest that escapes it may make any system call as its unprivileged user",
                bin.display(),
                match n {
                    Some(n) => format!("its filter of {n} BPF instructions allows every system call"),
                    None => "no filter at all".into(),
                }
            ),
            fix,
        ),
        Err(e) => check(
            "fc-seccomp",
            Status::Warn,
            format!(
                "cannot tell whether {} filters system calls: {}",
                bin.display(),
                crate::core::error::io_reason(&e)
            ),
            fix,
        ),
    }
}

/// Whom to run a Firecracker probe as: the service user when it exists, else `nobody`.
fn probe_user() -> Option<crate::sys::vmm::VmmIdentity> {
    use crate::sys::users;
    let id = match users::lookup_service_user() {
        Ok(Some(id)) => id,
        _ => users::lookup("nobody")?,
    };
    Some(crate::sys::vmm::VmmIdentity {
        id,
        groups: Vec::new(),
    })
}

/// Free space on the file system that holds `dir` (or its nearest existing ancestor).
pub fn free_bytes(dir: &Path) -> Option<(PathBuf, u64)> {
    let mut p = dir.to_path_buf();
    loop {
        if p.exists() {
            let free = crate::sys::fs::free_space(&p)?;
            return Some((p, free));
        }
        if !p.pop() {
            return None;
        }
    }
}

fn disk(dir: &Path) -> Check {
    let Some((at, free)) = free_bytes(dir) else {
        return check(
            "disk",
            Status::Warn,
            format!("cannot measure free space for {}", dir.display()),
            "Check that the home directory exists",
        );
    };
    let text = format!(
        "{} free at {}",
        crate::core::units::format_size(free),
        at.display()
    );
    let fix = "Free space: smolvm prune, smolvm image rm <preset>, or delete unused sandboxes";
    if free < DISK_FAIL {
        check("disk", Status::Fail, text, fix)
    } else if free < DISK_WARN {
        check("disk", Status::Warn, text, fix)
    } else {
        check("disk", Status::Ok, text, "")
    }
}

fn state_db(dbs: &[PathBuf]) -> Check {
    if dbs.is_empty() {
        return check("state-db", Status::Ok, "no state database yet", "");
    }
    let mut bad = Vec::new();
    for db in dbs {
        if let Some(reason) = quick_check(db) {
            bad.push(format!("{}: {reason}", db.display()));
        }
    }
    if bad.is_empty() {
        let names: Vec<String> = dbs.iter().map(|p| p.display().to_string()).collect();
        check(
            "state-db",
            Status::Ok,
            format!("{} healthy", names.join(", ")),
            "",
        )
    } else {
        check(
            "state-db",
            Status::Fail,
            bad.join("; "),
            crate::core::sandbox::CORRUPT_DB_FIX,
        )
    }
}

/// `None` when the database opens read-only and passes `PRAGMA quick_check`.
fn quick_check(db: &Path) -> Option<String> {
    // The same no-change open every read-only command uses: a hot journal is rolled back
    // in a private copy (not reported as damage), and nothing is created beside the file.
    match StateStore::open(db, OpenMode::DryRun, Duration::from_secs(5)) {
        Ok((_, None)) => None,
        Ok((_, Some(c))) => Some(c.reason),
        Err(e) => Some(e.to_string()),
    }
}

/// The exit code for these checks: 1 on any failure, or any warning with `strict`.
pub fn exit_code(checks: &[Check], strict: bool) -> i32 {
    let worst = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
    match worst {
        Status::Fail => 1,
        Status::Warn if strict => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(privileges(false, false).status, Status::Fail);
        assert_eq!(privileges(false, true).status, Status::Ok);
        let pvm = Host {
            kvm: KvmKind::Pvm,
            dev_kvm: DevAccess::ReadWrite,
            qemu: Some("/usr/bin/qemu-system-x86_64".into()),
            ..Host::default()
        };
        assert_eq!(kvm(&pvm).status, Status::Warn);
        let hw = |dev| Host {
            kvm: KvmKind::Hardware,
            dev_kvm: dev,
            ..pvm.clone()
        };
        assert_eq!(kvm(&hw(DevAccess::ReadWrite)).status, Status::Ok);
        assert_eq!(kvm(&hw(DevAccess::Denied)).status, Status::Warn);
        let b = backend(&pvm.auto());
        assert_eq!(
            (b.status, b.message.as_str()),
            (
                Status::Ok,
                "QEMU: no hardware KVM (PVM host); TCG: no hardware KVM (PVM host)"
            )
        );
        let b = backend(&Host { qemu: None, ..pvm }.auto());
        assert_eq!(b.status, Status::Fail);
        assert!(
            b.message.contains("qemu-system binary is missing"),
            "{}",
            b.message
        );
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("fwd");
        std::fs::write(&f, "1\n").unwrap();
        assert_eq!(ip_forward(&f).status, Status::Ok);
        std::fs::write(&f, "0\n").unwrap();
        assert_eq!(ip_forward(&f).status, Status::Warn);
        let db = t.path().join("bad.db");
        std::fs::write(&db, b"this is not a database, just text long enough").unwrap();
        assert_eq!(state_db(&[db]).status, Status::Fail);
        let good = t.path().join("good.db");
        rusqlite::Connection::open(&good)
            .unwrap()
            .execute_batch("CREATE TABLE t(x);")
            .unwrap();
        assert_eq!(state_db(&[good]).status, Status::Ok);
        let w = check("x", Status::Warn, "", "");
        assert_eq!(exit_code(std::slice::from_ref(&w), false), 0);
        assert_eq!(exit_code(&[w], true), 1);
    }
}
