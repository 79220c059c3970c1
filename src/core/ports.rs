//! `sandbox port expose|close|list`: SmolVM's local port forwards. `127.0.0.1:HOST` on the
//! host reaches `GUEST` in a running NAT sandbox through three nftables rules commented
//! `smolvm:<vm id>:local:<host>:<guest>` ([`nft::LocalForward`]).
//!
//! A service on the guest's own loopback (`openclaw open-ui`'s gateway) is out of reach of
//! those rules: [`expose_loopback`] forwards to it over SSH instead, an `ssh -N -L` process
//! of smolvm's own recorded in `<data dir>/tunnels/<id>.json` ([`tunnel`]). `list` shows
//! it (`transport: ssh_tunnel`), `close` and [`close_all`] end it, and a teardown
//! (`delete`, `cleanup`) ends it with the VM ([`end_tunnels`]).
//!
//! The rules are the one record: `list` (and the dashboard) read the forwards back from
//! their comments, so what is shown is what forwards, and nothing can drift out of step
//! with a copy kept elsewhere (a host reboot or a `nft flush` takes both away at once).
//! They live as long as the VM runs: `stop` removes them ([`close_all`]), `delete` and
//! `cleanup` remove every `smolvm:<id>:` rule of the VM, and cleanup's stale-resource scan
//! removes those whose VM has no row.
//!
//! A forward takes its host port by rewriting packets, not by binding it: a host service
//! that binds the same port on 127.0.0.1 (or every address) later starts without an
//! error, and its local clients — with whatever credentials they send — reach the sandbox
//! instead. Such a forward is **shadowed**: `list` (and so `port list`, the dashboard's
//! detail view) and `smolvm doctor` ([`shadowed_forwards`]) say so and name the process.

use std::path::Path;

use serde::Serialize;

use super::context::Ctx;
use super::error::{rt, Error, Result};
use super::ssh::SshLogin;
use crate::core::vm::VmId;
use crate::sys::net::nft::{self, LocalForward};
use crate::sys::tunnel;

/// One forward as `port list` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortForward {
    pub vm_id: VmId,
    pub host: &'static str,
    pub host_port: u16,
    pub guest_port: u16,
    pub guest_ip: Option<String>,
    /// How the forward is made (SmolVM's key): `nftables`, or `ssh_tunnel` for a forward to
    /// the guest's own loopback (`openclaw open-ui`; [`expose_loopback`]).
    pub transport: &'static str,
    /// A host process listens on this host port too: its 127.0.0.1 clients reach the
    /// sandbox, not it.
    pub shadowed: bool,
    /// That process (`python3 (pid 4242)`), when it can be told.
    pub shadowed_by: Option<String>,
}

impl PortForward {
    fn new(vm_id: &str, host_port: u16, guest_port: u16, guest_ip: Option<String>) -> Self {
        PortForward {
            vm_id: VmId::known(vm_id),
            host: LOOPBACK,
            host_port,
            guest_port,
            guest_ip,
            transport: NFTABLES,
            shadowed: false,
            shadowed_by: None,
        }
    }

    /// What the shadowing means, for a person (`None` when it is not shadowed).
    pub fn shadow_note(&self) -> Option<String> {
        self.shadowed.then(|| {
            format!(
                "shadowed: {} listens on {LOOPBACK}:{} too, and its local clients reach sandbox '{}' instead",
                self.shadowed_by.as_deref().unwrap_or("a host process"),
                self.host_port,
                self.vm_id
            )
        })
    }
}

const LOOPBACK: &str = "127.0.0.1";
const NFTABLES: &str = "nftables";
/// SmolVM's transport name for an SSH forward.
pub const SSH_TUNNEL: &str = "ssh_tunnel";

fn port(text: &str, what: &str, zero_ok: bool) -> Result<u16> {
    match text.parse::<u16>() {
        Ok(0) if zero_ok => Ok(0),
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Error::usage(format!(
            "Invalid {what} port {text:?}: expected a number from 1 to 65535."
        ))),
    }
}

/// `[HOST:]GUEST` (`expose`; a HOST of 0 means any free port) or, with `need_host`,
/// `HOST:GUEST` (`close`). A bad value is a usage error (exit 2).
pub fn parse_spec(text: &str, need_host: bool) -> Result<(Option<u16>, u16)> {
    match text.split_once(':') {
        Some((h, g)) => Ok((
            Some(port(h, "host", !need_host)?),
            port(g, "sandbox", false)?,
        )),
        None if need_host => Err(Error::usage(format!(
            "Expected HOST_PORT:SANDBOX_PORT, got {text:?}."
        ))),
        None => Ok((None, port(text, "sandbox", false)?)),
    }
}

fn read_nft() -> Result<nft::NftState> {
    nft::read().map_err(|e| Error::runtime(format!("cannot read nftables: {e}")))
}

/// The forwards of `vm_id` in `state`, by host port.
fn forwards_in(state: &nft::NftState, vm_id: &str, guest_ip: Option<&str>) -> Vec<PortForward> {
    let mut set: Vec<LocalForward> = state
        .rules
        .iter()
        .filter_map(nft::Rule::local_forward)
        .filter(|f| f.vm_id == vm_id)
        .collect();
    set.sort();
    set.dedup();
    set.into_iter()
        .map(|f| {
            PortForward::new(
                &f.vm_id,
                f.host_port,
                f.guest_port,
                guest_ip.map(str::to_string),
            )
        })
        .collect()
}

/// Mark the forwards whose host port a host process listens on (in this network
/// namespace) so that it would take connections to 127.0.0.1, naming the process.
fn mark_shadowed(forwards: &mut [PortForward]) {
    use crate::sys::net::listen;
    if forwards.is_empty() {
        return;
    }
    let listeners: Vec<listen::Listener> = listen::tcp_listeners()
        .into_iter()
        .filter(|l| l.takes_ipv4_loopback() && forwards.iter().any(|f| f.host_port == l.port))
        .collect();
    if listeners.is_empty() {
        return;
    }
    let inodes: Vec<u64> = listeners.iter().map(|l| l.inode).collect();
    let holders = listen::socket_holders(&inodes);
    for f in forwards.iter_mut() {
        let mine: Vec<&listen::Listener> =
            listeners.iter().filter(|l| l.port == f.host_port).collect();
        if mine.is_empty() {
            continue;
        }
        f.shadowed = true;
        f.shadowed_by = mine
            .iter()
            .find_map(|l| holders.get(&l.inode))
            .map(|(pid, comm)| format!("{comm} (pid {pid})"));
    }
}

/// Every forward of every sandbox whose host port a host process also listens on (what
/// `smolvm doctor` reports).
pub fn shadowed_forwards() -> std::io::Result<Vec<PortForward>> {
    let state = nft::read()?;
    let mut all: Vec<LocalForward> = state
        .rules
        .iter()
        .filter_map(nft::Rule::local_forward)
        .collect();
    all.sort();
    all.dedup();
    let mut forwards: Vec<PortForward> = all
        .iter()
        .map(|f| PortForward::new(&f.vm_id, f.host_port, f.guest_port, None))
        .collect();
    mark_shadowed(&mut forwards);
    forwards.retain(|f| f.shadowed);
    Ok(forwards)
}

/// The forwards of sandbox `id` (which must exist), by host port: read from nftables, and
/// its SSH forwards whose process is alive.
pub fn list(ctx: &Ctx, id: &VmId) -> Result<Vec<PortForward>> {
    let vm = ctx.vm(id)?;
    let ip = vm.network.as_ref().and_then(|n| n.guest_ip.clone());
    let mut forwards = forwards_in(&read_nft()?, id, ip.as_deref());
    mark_shadowed(&mut forwards);
    forwards.extend(
        live_tunnels(&ctx.data_dir, id)
            .iter()
            .map(|r| tunnel_forward(id, r, ip.clone())),
    );
    forwards.sort_by_key(|f| (f.host_port, f.guest_port));
    Ok(forwards)
}

fn tunnel_forward(id: &str, r: &tunnel::Record, guest_ip: Option<String>) -> PortForward {
    PortForward {
        transport: SSH_TUNNEL,
        ..PortForward::new(id, r.host_port, r.guest_port, guest_ip)
    }
}

/// The records of `id` whose process is alive and provably the recorded forward.
fn live_tunnels(data_dir: &Path, id: &str) -> Vec<tunnel::Record> {
    tunnel::read(data_dir, id)
        .into_iter()
        .filter(|r| matches!(tunnel::prove(r), Ok(Some(_))))
        .collect()
}

/// How long an SSH forward may take to listen (a TCG guest's first login is slow).
const TUNNEL_READY: std::time::Duration = std::time::Duration::from_secs(45);

/// Forward `127.0.0.1:host` to `127.0.0.1:guest` *inside* running sandbox `id`, for a
/// service that listens on the guest's loopback only (SmolVM's `guest_loopback` forward):
/// an `ssh -N -L` process of smolvm's own ([`tunnel`]), recorded, listed by `port list`
/// as `ssh_tunnel`, ended by `port close`, `stop`, `delete` and `cleanup`. `host` omitted
/// is a free port (or the one a live forward to `guest` already has); a host port in use
/// is an error and nothing changes.
pub fn expose_loopback(
    ctx: &Ctx,
    id: &VmId,
    host: Option<u16>,
    guest: u16,
    login: &SshLogin,
) -> Result<PortForward> {
    login.check()?;
    let ip = super::vm::running_ip(&ctx.store, &ctx.paths.socket_dir, id)?;
    let vm = ctx.vm(id)?;
    if vm.config.bridge().is_some() {
        return Err(Error::runtime(format!(
            "Bridged sandbox '{id}' is already connected directly to its network; run 'smolvm sandbox delete {id}', then 'smolvm sandbox create --name {id} --network nat' to use port exposure."
        )));
    }
    let _lock = tunnel::lock(&ctx.data_dir)
        .map_err(|e| Error::runtime(format!("cannot lock the SSH forwards' records: {e}")))?;
    let mut records = live_tunnels(&ctx.data_dir, id);
    if let Some(r) = records
        .iter()
        .find(|r| r.guest_port == guest && host.is_none_or(|h| h == r.host_port))
    {
        return Ok(tunnel_forward(id, r, Some(ip)));
    }
    let state = read_nft()?;
    let hp = match host {
        Some(hp) => {
            if let Some(why) = port_taken(ctx, &state, hp) {
                return Err(Error::runtime(why));
            }
            hp
        }
        None => free_port(ctx, &state)?,
    };
    let argv = super::ssh::tunnel_args(&ctx.paths.keys_dir, &ip, login, hp, guest);
    let started = tunnel::spawn(&argv)
        .map_err(|e| Error::runtime(format!("cannot run ssh ({e}); install openssh-client")))?;
    let pid = started.pid;
    let start_ticks = started.wait_listening(hp, TUNNEL_READY).map_err(|e| {
        Error::runtime(format!(
            "ssh tunnel localhost:{hp} -> guest:{guest} failed: {e}"
        ))
    })?;
    let r = tunnel::Record {
        host_port: hp,
        guest_port: guest,
        pid,
        start_ticks,
    };
    records.push(r);
    if let Err(e) = tunnel::write(&ctx.data_dir, id, &records) {
        if let Ok(Some(owned)) = tunnel::prove(&r) {
            tunnel::end(&owned, std::time::Duration::from_secs(2));
        }
        return Err(Error::runtime(format!(
            "cannot record the SSH forward: {e}"
        )));
    }
    Ok(tunnel_forward(id, &r, Some(ip)))
}

/// End the SSH forwards of `id` (those matching `ports`, or all), each proved to be the
/// recorded process before it is signalled; the records of those gone are dropped. How
/// many were ended.
pub fn end_tunnels(data_dir: &Path, id: &str, ports: Option<(u16, u16)>) -> Result<usize> {
    if tunnel::read(data_dir, id).is_empty() {
        return Ok(0);
    }
    let _lock = tunnel::lock(data_dir)
        .map_err(|e| Error::runtime(format!("cannot lock the SSH forwards' records: {e}")))?;
    let mut keep = Vec::new();
    let mut ended = 0;
    let mut failed = None;
    for r in tunnel::read(data_dir, id) {
        if ports.is_some_and(|(h, g)| (h, g) != (r.host_port, r.guest_port)) {
            keep.push(r);
            continue;
        }
        match tunnel::prove(&r) {
            Ok(Some(owned)) => {
                if tunnel::end(&owned, std::time::Duration::from_secs(3)) {
                    ended += 1;
                } else {
                    keep.push(r);
                    failed = Some(format!("the SSH forward (process {}) did not end", r.pid));
                }
            }
            Ok(None) => {}
            Err(e) => {
                keep.push(r);
                failed = Some(format!(
                    "process {} is not provably the SSH forward ({e}); left alone",
                    r.pid
                ));
            }
        }
    }
    tunnel::write(data_dir, id, &keep)
        .map_err(|e| Error::runtime(format!("cannot update the SSH forwards' records: {e}")))?;
    match failed {
        Some(why) => Err(Error::runtime(why)),
        None => Ok(ended),
    }
}

/// Why host port `hp` cannot be taken, if it cannot: another forward, an SSH forward, or a
/// socket listening on 127.0.0.1.
fn port_taken(ctx: &Ctx, state: &nft::NftState, hp: u16) -> Option<String> {
    if let Some(f) = state
        .rules
        .iter()
        .filter_map(nft::Rule::local_forward)
        .find(|f| f.host_port == hp)
    {
        return Some(format!(
            "Host port {hp} is already forwarded to port {} of sandbox '{}'",
            f.guest_port, f.vm_id
        ));
    }
    let ssh_element = state.elements.iter().any(|e| {
        matches!(e.set.as_str(), "dnat_ext" | "dnat_local") && e.key == nft::ElemKey::Port(hp)
    });
    let ssh_row = ctx.store.list_vms().ok().and_then(|rows| {
        rows.vms
            .into_iter()
            .find(|v| v.network.as_ref().and_then(|n| n.ssh_host_port) == Some(hp))
    });
    if let Some(v) = ssh_row {
        return Some(format!(
            "Host port {hp} is the SSH port of sandbox '{}'",
            v.id
        ));
    }
    if ssh_element {
        return Some(format!("Host port {hp} is used by an SSH forward"));
    }
    // std sets SO_REUSEADDR: only a listening socket (or one bound to it) refuses this.
    match std::net::TcpListener::bind((LOOPBACK, hp)) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Some(format!("Host port {hp} is in use on {LOOPBACK}"))
        }
        Err(e) => Some(format!("Host port {hp} cannot be used on {LOOPBACK}: {e}")),
    }
}

/// A free host port (the kernel's choice) that no forward holds.
fn free_port(ctx: &Ctx, state: &nft::NftState) -> Result<u16> {
    for _ in 0..20 {
        let p = std::net::TcpListener::bind((LOOPBACK, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::runtime(format!("cannot find a free port: {e}")))?
            .port();
        if port_taken(ctx, state, p).is_none() {
            return Ok(p);
        }
    }
    Err(Error::runtime("cannot find a free host port"))
}

/// Forward `127.0.0.1:host` to `guest` of running NAT sandbox `id`. `host` omitted is
/// `guest` when that port is free, else a free one; `Some(0)` is a free one. A host port in
/// use (a listening socket, another forward, an SSH port) is an error and nothing changes;
/// the same forward again is success.
pub fn expose(ctx: &Ctx, id: &VmId, host: Option<u16>, guest: u16) -> Result<PortForward> {
    let ip = super::vm::running_ip(&ctx.store, &ctx.paths.socket_dir, id)?;
    let vm = ctx.vm(id)?;
    let net = vm.network.clone().unwrap_or_default();
    if net.mode.as_deref() == Some("bridge") {
        // SmolVM's refusal: nothing of the host stands between a bridged guest and its
        // network.
        return Err(Error::runtime(format!(
            "Port forwards are not supported with bridge mode; sandbox '{id}' is directly reachable on the bridged network."
        )));
    }
    if net.tap_device.is_none() {
        return Err(Error::runtime(format!(
            "Sandbox '{id}' has no NAT network; port forwards need one"
        )));
    }
    let state = read_nft()?;
    let hp = match host {
        Some(0) => free_port(ctx, &state)?,
        Some(hp) => {
            if forwards_in(&state, id, None)
                .iter()
                .any(|f| f.host_port == hp && f.guest_port == guest)
            {
                let mut f = vec![PortForward::new(id, hp, guest, Some(ip))];
                mark_shadowed(&mut f);
                return Ok(f.remove(0));
            }
            if let Some(why) = port_taken(ctx, &state, hp) {
                return Err(Error::runtime(why).with_recovery(format!(
                    "Pick another host port: smolvm sandbox port expose {id} <host>:{guest}"
                )));
            }
            hp
        }
        None => match port_taken(ctx, &state, guest) {
            None => guest,
            Some(_) => free_port(ctx, &state)?,
        },
    };
    let f = LocalForward {
        vm_id: id.to_string(),
        host_port: hp,
        guest_port: guest,
    };
    let cmds = f.add_commands(&ip).map_err(rt)?;
    nft::apply(&cmds).map_err(|e| Error::runtime(format!("cannot add the forward: {e}")))?;
    Ok(PortForward::new(id, hp, guest, Some(ip)))
}

/// Remove the forward `host:guest` of sandbox `id` (which must exist); one that is not
/// there is an error naming the forwards there are.
pub fn close(ctx: &Ctx, id: &VmId, host: u16, guest: u16) -> Result<PortForward> {
    let have = list(ctx, id)?;
    let Some(f) = have
        .iter()
        .find(|f| f.host_port == host && f.guest_port == guest)
        .cloned()
    else {
        let shown: Vec<String> = have
            .iter()
            .map(|f| format!("{}:{}", f.host_port, f.guest_port))
            .collect();
        return Err(Error::runtime(format!(
            "Sandbox '{id}' has no port forward {host}:{guest}{}",
            if shown.is_empty() {
                String::new()
            } else {
                format!(" (it has {})", shown.join(", "))
            }
        )));
    };
    if f.transport == SSH_TUNNEL {
        end_tunnels(&ctx.data_dir, id, Some((host, guest)))?;
    } else {
        delete_forwards(id, Some((host, guest)))?;
    }
    Ok(f)
}

/// Remove every forward of sandbox `id` (`stop` calls this): its SSH forwards' processes
/// and its nftables rules; how many went. Without the right to read nftables there is
/// nothing provable to remove there.
pub fn close_all(data_dir: &Path, id: &str) -> Result<usize> {
    let tunnels = end_tunnels(data_dir, id, None);
    let rules = delete_forwards(id, None)?;
    Ok(tunnels? + rules)
}

fn delete_forwards(id: &str, ports: Option<(u16, u16)>) -> Result<usize> {
    for attempt in 0..3 {
        let state = match nft::read() {
            Ok(s) => s,
            // No nft, or no right to read it: nothing provable to remove.
            Err(e)
                if ports.is_none()
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    ) =>
            {
                return Ok(0)
            }
            Err(e) => return Err(Error::runtime(format!("cannot read nftables: {e}"))),
        };
        let d: Vec<nft::Deletion> = state
            .rules
            .iter()
            .filter_map(|r| r.forward_deletion(id, ports))
            .collect();
        match nft::delete(&d) {
            Ok(()) => return Ok(d.len()),
            Err(e) if attempt == 2 => {
                return Err(Error::runtime(format!("cannot remove the forward: {e}")))
            }
            Err(_) => continue, // the tables changed meanwhile: read them again
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_smolvm_writes_them() {
        assert_eq!(parse_spec("8080", false).unwrap(), (None, 8080));
        assert_eq!(parse_spec("9000:80", false).unwrap(), (Some(9000), 80));
        assert_eq!(parse_spec("0:80", false).unwrap(), (Some(0), 80));
        assert_eq!(parse_spec("9000:80", true).unwrap(), (Some(9000), 80));
        for bad in ["", "0", "65536", "x", "80:", ":80", "-1", "1:2:3"] {
            let e = parse_spec(bad, false).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
        assert_eq!(parse_spec("80", true).unwrap_err().exit_code(), 2);
        assert_eq!(parse_spec("0:80", true).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn forwards_come_from_the_comments_of_this_vm_only() {
        let rule = nft::Rule::nat_output;
        let state = nft::NftState {
            elements: vec![],
            rules: vec![
                rule(1, "smolvm:vm-a:local:8080:80"),
                rule(2, "smolvm:vm-a:local:8080:80"),
                rule(3, "smolvm:vm-ab:local:9090:90"),
                rule(4, "smolvm:vm-a:local:08080:80"),
                rule(5, "smolvm:global:forward:established"),
                rule(6, "smolvm:vm-a:local:7070:70"),
            ],
        };
        let got: Vec<(u16, u16)> = forwards_in(&state, "vm-a", None)
            .iter()
            .map(|f| (f.host_port, f.guest_port))
            .collect();
        assert_eq!(got, [(7070, 70), (8080, 80)]);
        let del: Vec<u64> = state
            .rules
            .iter()
            .filter(|r| r.forward_deletion("vm-a", Some((8080, 80))).is_some())
            .map(|r| r.handle)
            .collect();
        assert_eq!(del, [1, 2]);
        let all: Vec<u64> = state
            .rules
            .iter()
            .filter(|r| r.forward_deletion("vm-a", None).is_some())
            .map(|r| r.handle)
            .collect();
        assert_eq!(all, [1, 2, 6]);
        // Another table's rule with the same comment is never ours.
        let mut foreign = rule(7, "smolvm:vm-a:local:8080:80");
        foreign.table = "nat".into();
        assert_eq!(foreign.forward_deletion("vm-a", None), None);
    }

    #[test]
    fn forward_rules_are_smolvms() {
        let f = LocalForward {
            vm_id: "vm-a".into(),
            host_port: 8080,
            guest_port: 80,
        };
        assert_eq!(LocalForward::parse(&f.comment()), Some(f.clone()));
        let cmds = f.add_commands("172.16.0.2").unwrap();
        assert!(cmds.iter().all(|c| c.starts_with("add ")));
        assert!(cmds.contains(&"add rule ip smolvm_nat output ip daddr 127.0.0.1/32 tcp dport 8080 counter dnat to 172.16.0.2:80 comment \"smolvm:vm-a:local:8080:80\"".to_string()));
        assert!(f.add_commands("172.16.0.2; flush ruleset").is_err());
        assert_eq!(LocalForward::parse("smolvm:Vm-A:local:1:2"), None);
        assert_eq!(LocalForward::parse("smolvm:vm-a:local:0:2"), None);
        assert_eq!(LocalForward::parse("smolvm:vm-a:ssh"), None);
    }
}
