//! The spawn and boot phases: the VMM's command line (SmolVM's boot args), the process
//! spawned with the console log as its output, its control socket answering (Firecracker
//! configured through it), then the guest ready.

use std::net::Ipv4Addr;

use base64::Engine as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::checked::CheckedConfig;
use super::network::setup_network;
use super::report::{ms, report};
use super::vmm::{
    claim_leftover_socket, control_socket_up, give_disk_back, record_spawned, settle, spawn_vmm,
    VmmJob,
};
use super::{rt, Ctx, Phase, StartEvent, StartReport, Timings, INIT_FAILED_MARKER, READY_MARKER};
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::host::Runtime;
use crate::core::images::Vmm;
use crate::core::job::Abort;
use crate::core::progress::Progress;
use crate::core::vm::VmId;
use crate::sys::state::{Network, VmRecord, VmStatus};
use crate::sys::vmm::firecracker;
use crate::sys::vmm::qemu::{AgentPort, Machine, QemuSpec};

/// Network, spawn and boot for an existing row (created or stopped). On failure the VMM
/// this call spawned is killed (its own child, never a process found through the row) and
/// the caller decides the rest: `create` rolls everything back, `sandbox start` marks the
/// row `error`.
///
/// `checked` is the row's config as [`super::checked::check`] accepted it (each caller
/// checks before it changes anything): the VMM gets only those paths. `abort` is checked
/// between phases and at every poll of the waits; a stop kills the VMM as a failure does.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn boot(
    ctx: &Ctx,
    id: &VmId,
    checked: &CheckedConfig,
    runtime: &Runtime,
    log: std::fs::File,
    socket: PathBuf,
    abort: &Abort,
    progress: &Progress<StartEvent>,
) -> Result<StartReport> {
    abort.check(progress)?;
    let t_net = Instant::now();
    let net = setup_network(ctx, id, progress).await?;
    abort.check(progress)?;
    let network_time = t_net.elapsed();
    let mut row = ctx
        .store
        .get_vm(id)
        .map_err(rt)?
        .ok_or_else(|| rt(format!("Sandbox '{id}' vanished while starting")))?;
    // A cold QEMU boot gets the agent port (so its full snapshots can be cloned), recorded
    // so its restores and clones have the same devices.
    if runtime.vmm == Vmm::Qemu && row.config.extras.agent_port.is_none() {
        row.config.extras.agent_port = Some(true);
        ctx.store.set_config(id, &row.config).map_err(rt)?;
    }
    let kernel = checked.kernel.clone();

    progress.emit(StartEvent::PhaseStarted(Phase::Spawn));
    let t_spawn = Instant::now();
    let spawned = spawn_vmm(
        ctx,
        runtime,
        VmmJob::new(&row, checked, &net, &socket, &log),
    )?;
    let (mut child, user) = (spawned.child, spawned.user);
    let pid = i64::from(child.id());
    // From here on a failure stops the VMM this call spawned — its own child, and only
    // it: whatever the row says by then, no other process is ever signalled for it.
    let r = async {
        record_spawned(ctx, id, VmStatus::Running, pid, &socket)?;
        let what = match runtime.vmm {
            Vmm::Qemu => "QEMU",
            Vmm::Firecracker => "Firecracker",
        };
        let deadline = Instant::now() + runtime.boot_timeout;
        // A stop first: a terminal's Ctrl-C reaches the VMM too, and its exit is then the
        // cancel's doing, not a failure.
        let exited = |child: &mut crate::sys::child::Child| -> Option<Error> {
            if let Err(e) = abort.check(progress) {
                return Some(e);
            }
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
                claim_leftover_socket(&socket, &user);
                return Err(e);
            }
            if control_socket_up(runtime.vmm, &socket, &user).await? {
                break;
            }
            if Instant::now() >= deadline {
                claim_leftover_socket(&socket, &user);
                return Err(Error::runtime(format!(
                    "Timed out waiting for {what} control socket{}",
                    log_tail(&log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if runtime.vmm == Vmm::Firecracker {
            let cfg = firecracker::FcConfig {
                kernel: spawned.fc_kernel.clone(),
                boot_args: args_for_fc(&row, &net),
                vcpus: row.config.vcpus(),
                mem_mib: row.config.memory_mib(),
                rootfs: spawned.fc_rootfs.clone(),
                tap: net.tap_device.clone().unwrap_or_default(),
                mac: net.guest_mac.clone().unwrap_or_default(),
            };
            firecracker::configure_and_start(&socket, &cfg, Duration::from_secs(10))
                .await
                .map_err(rt)?;
            give_disk_back(&user, &checked.rootfs)?;
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
        if !checked.mounts.is_empty() {
            // Mounting is part of being ready: within the boot's time (a guest that never
            // ends the script must not hold the start), never less than sshd's usual wait.
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.max(MOUNT_WAIT_MIN);
            mount_workspaces(ctx, &net, &checked.mounts, wait).await?;
            abort.check(progress)?;
        }
        let boot_time = t_boot.elapsed();
        progress.emit(StartEvent::PhaseDone(Phase::Boot, boot_time));
        Ok((spawn_time, boot_time))
    }
    .await;
    // The report before the VMM is settled: a failure to make it stops the VMM too.
    let r = r.and_then(|times| {
        Ok((
            times,
            report(ctx, id, runtime, None, &kernel, &net, Some(pid))?,
        ))
    });
    let ((spawn_time, boot_time), mut rep) = settle(child, r, &[], &user)?;
    rep.timings = Timings {
        image_ms: 0.0,
        network_ms: ms(network_time),
        spawn_ms: ms(spawn_time),
        boot_ms: ms(boot_time),
        total_ms: 0.0,
    };
    Ok(rep)
}

/// The QEMU guest of a row: its config (vCPUs, memory, boot args with the key and the
/// network's `ip=`), its checked kernel, disk and mounts, its TAP and MAC, this runtime's
/// binary, accelerator and machine. What a start spawns, and what a restore spawns again
/// with `-incoming` (the same machine and devices, so the saved state loads).
pub(crate) fn qemu_spec(
    row: &VmRecord,
    checked: &CheckedConfig,
    runtime: &Runtime,
    net: &Network,
    socket: &std::path::Path,
) -> QemuSpec {
    let cfg = &row.config;
    QemuSpec {
        binary: runtime.binary.clone(),
        vcpus: cfg.vcpus(),
        mem_mib: cfg.memory_mib(),
        kernel: checked.kernel.clone(),
        rootfs: checked.rootfs.clone(),
        rootfs_fd: None,
        boot_args: boot_args(
            cfg.boot_args(),
            Vmm::Qemu,
            cfg.ssh_public_key.as_deref(),
            net,
        ),
        tap: net.tap_device.clone().unwrap_or_default(),
        tap_fd: None,
        mac: net.guest_mac.clone().unwrap_or_default(),
        qmp_socket: socket.to_path_buf(),
        accel: runtime.accel,
        machine: runtime.machine.unwrap_or(Machine::Q35),
        sandbox: true,
        agent: (cfg.extras.agent_port == Some(true)).then_some(AgentPort::Null),
        ram: None,
        // Workspace mounts (virtio-9p), so a restore has the same devices too.
        extra: crate::core::presets::mounts::qemu_args(
            &checked.mounts,
            &[],
            runtime.machine == Some(Machine::Microvm),
        ),
        incoming: false,
    }
}

/// The least time the workspace mounts get after a boot that took most of its timeout: a
/// console can say ready before sshd takes a login (the wait a forwarding session has).
const MOUNT_WAIT_MIN: Duration = crate::core::presets::forward::SSH_WAIT;

/// Mount the VM's workspace folders in the guest (over SSH, once it is ready), within
/// `wait`.
async fn mount_workspaces(
    ctx: &Ctx,
    net: &Network,
    mounts: &[crate::core::presets::mounts::Mount],
    wait: Duration,
) -> Result<()> {
    use crate::core::presets::{forward, mounts as m};
    let guest = forward::Guest {
        keys_dir: ctx.paths.keys_dir.clone(),
        ip: net.guest_ip.clone().unwrap_or_default(),
    };
    let script = m::guest_script(mounts);
    let (code, _, err) = tokio::task::spawn_blocking(move || guest.run(&script, b"", wait))
        .await
        .map_err(rt)?
        .map_err(|e| {
            if crate::core::job::is_cancel(&e) {
                e
            } else {
                m::mount_failed(&e.message)
            }
        })?;
    if code != 0 {
        return Err(m::mount_failed(&err));
    }
    Ok(())
}

fn args_for_fc(row: &VmRecord, net: &Network) -> String {
    let c = &row.config;
    boot_args(
        c.boot_args(),
        Vmm::Firecracker,
        c.ssh_public_key.as_deref(),
        net,
    )
}

/// Ready: the console says `SmolVM init complete`, or the guest's SSH server answers
/// ([`crate::core::ssh::ssh_answers`]).
async fn wait_ready(
    child: &mut crate::sys::child::Child,
    log: &std::fs::File,
    ip: Ipv4Addr,
    deadline: Instant,
    timeout: Duration,
    exited: &(dyn Fn(&mut crate::sys::child::Child) -> Option<Error> + Sync),
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
            // The whole line (cut at 300 characters), whatever the console printed after.
            let failed = tail
                .find(INIT_FAILED_MARKER)
                .and_then(|at| tail[at..].split_once('\n'));
            if let Some((line, _)) = failed {
                let line: String = line.trim().chars().take(300).collect();
                return Err(Error::runtime(format!(
                    "The guest's init failed: its SSH server did not start: {line}"
                ))
                .with_recovery(
                    "Check the image's SSH server configuration ('smolvm sandbox logs' shows the console).",
                ));
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
            if h.is_finished() {
                if let Some(done) = probe.take() {
                    if done.await.unwrap_or(false) {
                        return Ok(());
                    }
                }
            }
        } else if last_probe.elapsed() >= Duration::from_millis(250) {
            last_probe = Instant::now();
            // sshd answering (its banner), not merely a port accepting.
            probe = Some(tokio::spawn(crate::core::ssh::ssh_answers(
                ip,
                Duration::from_secs(1),
            )));
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
        // A read of a few bytes every 5 ms costs nothing next to a booting guest and
        // takes at most 5 ms off the ready line's arrival.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `: <last console line>` for error messages, when the log has one.
pub(crate) fn log_tail(log: &std::fs::File) -> String {
    use std::os::unix::fs::FileExt;
    let len = settled_len(log);
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
/// The log's length once what the VMM last wrote has reached it: the VMM writes into its
/// console pump's pipe ([`crate::sys::vmm::console`]), which appends a moment later, so
/// an error quoting the log (QEMU's own message, just written) waits until the length
/// holds still for 50 ms, a second at the most (a guest that never stops writing).
fn settled_len(log: &std::fs::File) -> u64 {
    let len = || log.metadata().map(|m| m.len()).unwrap_or(0);
    let until = Instant::now() + Duration::from_secs(1);
    let mut last = len();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = len();
        if now == last || Instant::now() >= until {
            return now;
        }
        last = now;
    }
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
                base64::engine::general_purpose::STANDARD.encode(k.trim())
            ));
        }
    }
    if net.mode.as_deref() == Some("bridge") {
        // SmolVM's marker for a guest that configures its own interface, and smolvm's
        // static address for it (no gateway unless one was given).
        if !toks.iter().any(|t| t.starts_with("smolvm.network=")) {
            toks.push("smolvm.network=guest".into());
        }
        if !toks.iter().any(|t| t.starts_with("ip=")) {
            toks.push(format!(
                "ip={}::{}:{}::eth0:off",
                net.guest_ip.as_deref().unwrap_or_default(),
                net.gateway_ip.as_deref().unwrap_or_default(),
                net.netmask.as_deref().unwrap_or("255.255.255.0")
            ));
        }
    } else if !toks.iter().any(|t| t.starts_with("ip=")) {
        toks.push(format!(
            "ip={}::{}:{}::eth0:off",
            net.guest_ip.as_deref().unwrap_or_default(),
            net.gateway_ip.as_deref().unwrap_or("172.16.0.1"),
            net.netmask.as_deref().unwrap_or("255.255.255.0")
        ));
    }
    toks.join(" ")
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
                "c3NoLWVkMjU1MTkgQUFBIHg="
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
    }
}
