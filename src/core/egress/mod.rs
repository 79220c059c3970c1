//! Network containment: what a sandbox's guest can reach, and who can reach it.
//!
//! Every sandbox TAP smolvm sets up is guarded (`sys::net::guard`, table `inet
//! smolvm_guard`) before its VMM runs: the host's loopback, every address of the host, the
//! link-local/metadata range, IPv6 and other sandboxes are out of reach in every mode;
//! from outside only replies (and a published SSH forward) get in. On top of that each
//! sandbox has an egress [`Policy`] (`open`, `off`, `restricted` to ranges and names),
//! kept with its row, changed live by [`set`] and shown by [`show`]. Names are enforced
//! by the resolver ([`resolver`]) at connection time.

mod net;
pub mod policy;
pub mod resolver;

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

pub(crate) use net::{network_lock, outbound_interface, set_ssh_publication};
pub use policy::{Cidr, Domain, Mode, Policy, Settings};

use super::context::Ctx;
use super::error::{rt, Error, ErrorCode, Result};
use crate::core::vm::VmId;
use crate::sys::env::Env;
use crate::sys::net::guard::{self, Egress, TapGuard};
use crate::sys::state::{Network, StateStore, VmRecord, VmStatus};

/// The sandbox's settings: smolvm's own record, else what SmolVM's `internet_settings`
/// in its config says (a row SmolVM wrote, or one from before this record existed).
pub fn settings_of(store: &StateStore, row: &VmRecord) -> Settings {
    match store.vm_network_settings(&row.id) {
        Ok(Some(v)) => match serde_json::from_value::<Settings>(v) {
            Ok(s) => s,
            // Unreadable: nothing is allowed (fail closed).
            Err(_) => Settings {
                internet: Policy {
                    mode: Mode::Off,
                    ..Policy::default()
                },
                publish_ssh: false,
            },
        },
        _ => Settings {
            internet: Policy::from_smolvm(row.config.internet_settings.as_ref()),
            publish_ssh: false,
        },
    }
}

/// A snapshot's settings: its own copy, else what its VM config's `internet_settings`
/// says (a snapshot SmolVM or an older smolvm made).
pub fn snapshot_settings(
    store: &StateStore,
    snapshot_id: &str,
    vm_config: &crate::sys::state::VmConfig,
) -> Settings {
    store
        .snapshot_network_settings(snapshot_id)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_else(|| Settings {
            internet: Policy::from_smolvm(vm_config.internet_settings.as_ref()),
            publish_ssh: false,
        })
}

/// Store the settings (and SmolVM's `internet_settings` key with them).
pub fn save(store: &StateStore, id: &str, s: &Settings) -> Result<()> {
    let v = serde_json::to_value(s).map_err(rt)?;
    let internet = s.internet.smolvm_internet_settings();
    match store.set_vm_network_settings(id, &v, internet.as_ref()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(super::error::not_found(id)),
        Err(e) => Err(rt(e)),
    }
}

/// `SMOLVM_PUBLISH_SSH` through the one yes/no parser ([`Env::flag`]): unset is `None`;
/// anything else than yes/no is a usage error naming it.
pub fn publish_from_env(env: &Env) -> Result<Option<bool>> {
    Ok(env.flag("SMOLVM_PUBLISH_SSH")?)
}

/// The settings for a new sandbox: the flags' policy, published SSH from the flag or
/// `SMOLVM_PUBLISH_SSH`.
pub fn new_settings(env: &Env, internet: Policy, publish_ssh: bool) -> Result<Settings> {
    Ok(Settings {
        internet,
        publish_ssh: publish_ssh || publish_from_env(env)?.unwrap_or(false),
    })
}

/// A bridge-attached sandbox cannot be restricted (SmolVM's rule): its traffic never
/// passes the host's routing.
fn check_attachment(net: &Network, s: &Settings) -> Result<()> {
    if net.mode.as_deref() == Some("bridge") && s.internet.mode != Mode::Open {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            "Network restrictions require private networking; a bridge-attached sandbox can only be --internet open.",
        ));
    }
    Ok(())
}

/// The LAN as it is now ([`policy::lan`] of the host's attached networks): read when a
/// guard is written, so a start or `network set` takes in a network the host joined.
/// Unreadable routes fail the guard (closed), never an open LAN.
fn lan_now() -> Result<Vec<Cidr>> {
    let attached = crate::sys::net::attached_networks().map_err(|e| {
        Error::runtime(format!(
            "cannot read the host's routes (/proc/net/route) for the network guard: {}",
            crate::sys::io_reason(&e)
        ))
    })?;
    Ok(policy::lan(&attached))
}

fn guard_of(s: &Settings, tap: &str, guest_ip: Ipv4Addr, iface: &str, lan: &[Cidr]) -> TapGuard {
    let strings = |v: &[Cidr]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let egress = match s.internet.mode {
        Mode::Open => Egress::Open {
            iface: iface.to_string(),
            cidrs: strings(&s.internet.allowed_cidrs),
        },
        Mode::Off => Egress::Off,
        Mode::Restricted => Egress::Restricted {
            cidrs: strings(&s.internet.allowed_cidrs),
            names: !s.internet.allowed_domains.is_empty(),
        },
    };
    TapGuard {
        tap: tap.to_string(),
        guest_ip,
        egress,
        publish_ssh: s.publish_ssh,
        lan: strings(lan),
    }
}

/// A VM's TAP and guest address from its network record (validated).
fn tap_and_ip(id: &str, net: &Network) -> Result<(String, Ipv4Addr)> {
    let tap = net
        .tap_device
        .clone()
        .filter(|t| crate::sys::state::is_smolvm_tap(t))
        .ok_or_else(|| rt(format!("Sandbox '{id}' has no TAP device of smolvm's")))?;
    let ip: Ipv4Addr = net
        .guest_ip
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| rt(format!("Sandbox '{id}' has no guest address")))?;
    Ok((tap, ip))
}

/// Guard a sandbox's TAP with its settings, before its VMM runs (called with the network
/// lock held, after SmolVM's tables are set up). With allowed names the resolver is
/// running and knows this sandbox before the guard sends its DNS there. Any failure
/// fails the start: a sandbox never runs unguarded.
pub(crate) async fn apply(ctx: &Ctx, id: &VmId, net: &Network, iface: &str) -> Result<()> {
    let row = ctx.vm(id)?;
    let s = settings_of(&ctx.store, &row);
    check_attachment(net, &s)?;
    let (tap, ip) = tap_and_ip(id, net)?;
    if s.internet.needs_resolver() {
        resolver::sync(ctx, Some(id)).await?;
    }
    let g = guard_of(&s, &tap, ip, iface, &lan_now()?);
    tokio::task::spawn_blocking(move || guard::apply(&g))
        .await
        .map_err(rt)?
        .map_err(|e| {
            Error::runtime(format!(
                "cannot apply the network guard for '{id}': {}",
                crate::sys::io_reason(&e)
            ))
        })
}

/// A destination a sandbox was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedDestination {
    pub address: String,
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub count: u64,
    /// Seconds since the last refused packet.
    pub last_seen_secs_ago: u64,
}

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

/// `sandbox network show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkReport {
    pub vm_id: VmId,
    #[serde(serialize_with = "status_text")]
    pub status: VmStatus,
    pub internet: Policy,
    pub summary: String,
    pub publish_ssh: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_host_port: Option<u16>,
    /// Whether the guard currently holds its TAP (a running sandbox always; a stopped one
    /// is not guarded and cannot send).
    pub guarded: bool,
    /// Running (its VMM alive) on a TAP of smolvm's, yet the guard does not hold it: its
    /// policy is not enforced ([`unguarded`], the rule of every face and of doctor).
    pub unguarded: bool,
    /// Held by rules an older smolvm wrote (before the LAN rule): in force until its next
    /// start or `network set` writes them anew.
    pub guard_outdated: bool,
    pub dns_via_resolver: bool,
    pub allowed: Traffic,
    pub blocked: Traffic,
    /// The LAN, where the policy could otherwise reach it (open, or allowed names):
    /// ranges reached only through an allowed range — private, shared and special ranges
    /// and the host's attached networks. Empty for `off` and ranges-only `restricted`.
    pub lan: Vec<Cidr>,
    /// The most recent refused destinations (at most 20), newest first.
    pub blocked_destinations: Vec<BlockedDestination>,
    /// Set by [`set`]: connections the new policy no longer allows were cut.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub connections_cut: bool,
}

fn status_text<S: serde::Serializer>(s: &VmStatus, ser: S) -> std::result::Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        n => n.to_string(),
    }
}

type Counters = std::collections::BTreeMap<String, guard::TapCounters>;

/// Whether the guard should hold `r`'s TAP and does not: its VMM alive (not `stale`: a
/// row whose process is gone has no guest to contain), NAT-attached on a TAP of smolvm's
/// (a bridge-attached one is never guarded), and the guard's counters read (`None`: they
/// cannot be, not root; then nothing is claimed) without that TAP guarded. The one rule
/// of `network show`, the dashboard's NET cell and detail view, and doctor.
fn unguarded(r: &VmRecord, stale: bool, counters: Option<&Counters>) -> bool {
    let Some(tap) = guarded_tap(r) else {
        return false;
    };
    !stale && counters.is_some_and(|all| !all.get(tap).is_some_and(|c| c.guarded))
}

/// The report of a row, with the guard's counters for its TAP (`None`: unreadable). Its
/// status is SmolVM's (a row whose process is gone is `error`).
fn report(
    row: &VmRecord,
    s: Settings,
    counters: Option<&Counters>,
    socket_dir: &Path,
) -> NetworkReport {
    let net = row.network.clone().unwrap_or_default();
    let c = net
        .tap_device
        .as_deref()
        .and_then(|t| counters?.get(t))
        .cloned()
        .unwrap_or_default();
    let stale = crate::core::vm::row_is_stale(row, socket_dir);
    let status = if stale { VmStatus::Error } else { row.status };
    let mut blocked: Vec<BlockedDestination> = c
        .blocked
        .iter()
        .map(|b| BlockedDestination {
            address: b.addr.to_string(),
            protocol: proto_name(b.proto),
            port: (b.port != 0).then_some(b.port),
            count: b.packets,
            last_seen_secs_ago: b.last_seen_secs,
        })
        .collect();
    blocked.truncate(20);
    let lan = if s.internet.mode == Mode::Open || !s.internet.allowed_domains.is_empty() {
        lan_now().unwrap_or_else(|_| policy::lan(&[]))
    } else {
        Vec::new()
    };
    NetworkReport {
        vm_id: VmId::known(&row.id),
        status,
        summary: s.internet.summary(),
        internet: s.internet,
        publish_ssh: s.publish_ssh,
        guest_ip: net.guest_ip,
        tap: net.tap_device,
        ssh_host_port: net.ssh_host_port,
        guarded: c.guarded,
        unguarded: unguarded(row, stale, counters),
        guard_outdated: outdated(&c),
        dns_via_resolver: c.dns_redirected,
        allowed: Traffic {
            packets: c.allowed_packets,
            bytes: c.allowed_bytes,
        },
        blocked: Traffic {
            packets: c.blocked_packets,
            bytes: c.blocked_bytes,
        },
        lan,
        blocked_destinations: blocked,
        connections_cut: false,
    }
}

/// A guarded TAP whose rules are older than this smolvm's ([`guard::VERSION`]).
fn outdated(c: &guard::TapCounters) -> bool {
    c.guarded && c.version.is_none_or(|v| v < guard::VERSION)
}

/// `sandbox network show ID`.
pub fn show(ctx: &Ctx, id: &VmId) -> Result<NetworkReport> {
    let row = ctx.vm(id)?;
    let s = settings_of(&ctx.store, &row);
    Ok(report(
        &row,
        s,
        guard::counters().ok().as_ref(),
        &ctx.paths.socket_dir,
    ))
}

/// One sandbox's network as the dashboard's VMs pane shows it: its stored policy and what
/// the guard let out. Only what changes with the traffic (not with the clock), so an idle
/// refresh compares equal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkSummary {
    pub internet: Policy,
    pub publish_ssh: bool,
    /// Bytes the guard let out of its TAP; `None` when the guard does not hold it (the
    /// sandbox is not running) or its counters cannot be read (not root).
    pub egress_bytes: Option<u64>,
    /// Packets the guard refused, with the same `None`.
    pub blocked_packets: Option<u64>,
    /// Running (its VMM alive) on a TAP of smolvm's, yet the guard does not hold that TAP
    /// (SmolVM started it, or the table was changed by hand): its policy is not enforced.
    pub unguarded: bool,
    /// Held by rules an older smolvm wrote ([`NetworkReport::guard_outdated`]).
    pub outdated: bool,
}

/// The TAP the guard must hold for a row: an active, NAT-attached sandbox on a TAP of
/// smolvm's (a bridge-attached one is never guarded).
fn guarded_tap(r: &VmRecord) -> Option<&str> {
    let net = r.network.as_ref()?;
    (r.status.is_active() && net.mode.as_deref() != Some("bridge"))
        .then_some(net.tap_device.as_deref())
        .flatten()
        .filter(|t| crate::sys::state::is_smolvm_tap(t))
}

/// Every sandbox's [`NetworkSummary`] by id, from the first state database (read only) and
/// one read of the guard's counters, taken only when a sandbox is running or paused.
pub fn summaries(
    paths: &crate::sys::paths::Paths,
) -> Result<std::collections::BTreeMap<String, NetworkSummary>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(store) = super::context::open_for_reading(paths, None)? else {
        return Ok(out);
    };
    let rows = store.list_vms().map_err(rt)?.vms;
    let counters = if rows.iter().any(|r| r.status.is_active()) {
        guard::counters().ok()
    } else {
        Some(Default::default())
    };
    for r in &rows {
        let s = settings_of(&store, r);
        let tap = r.network.as_ref().and_then(|n| n.tap_device.as_deref());
        let c = counters
            .as_ref()
            .map(|all| tap.and_then(|t| all.get(t)).filter(|c| c.guarded));
        out.insert(
            r.id.clone(),
            NetworkSummary {
                internet: s.internet,
                publish_ssh: s.publish_ssh,
                egress_bytes: c.flatten().map(|c| c.allowed_bytes),
                blocked_packets: c.flatten().map(|c| c.blocked_packets),
                unguarded: unguarded(
                    r,
                    crate::core::vm::row_is_stale(r, &paths.socket_dir),
                    counters.as_ref(),
                ),
                outdated: c.flatten().is_some_and(outdated),
            },
        );
    }
    Ok(out)
}

/// `sandbox network set ID …`: store the new settings; on a running or paused sandbox
/// apply them at once (the next packet is judged by them) and cut the guest's
/// connections, so one the new policy no longer allows ends. A stopped sandbox gets them
/// at its next start. `publish_ssh` unchanged when `None`.
pub async fn set(
    ctx: &Ctx,
    id: &VmId,
    internet: Policy,
    publish_ssh: Option<bool>,
) -> Result<NetworkReport> {
    // One operation per sandbox: a start or stop in flight finishes first.
    let _vm_lock = ctx
        .lock_existing(id, &format!("sandbox network set {id}"))
        .await?;
    let row = ctx.vm(id)?;
    let old = settings_of(&ctx.store, &row);
    let new = Settings {
        internet,
        publish_ssh: publish_ssh.unwrap_or(old.publish_ssh),
    };
    if let Some(net) = &row.network {
        check_attachment(net, &new)?;
    }
    // A row whose VMM is gone has no guest to contain (its TAP may be another's now):
    // stored for its next start, as for a stopped one.
    let live = crate::core::vm::row_is_live(&row, &ctx.paths.socket_dir);
    let _lock = network_lock(ctx).await?;
    save(&ctx.store, id, &new)?;
    let mut cut = false;
    if live {
        let net = row
            .network
            .clone()
            .ok_or_else(|| rt(format!("Sandbox '{id}' has no network")))?;
        let (tap, ip) = tap_and_ip(id, &net)?;
        let r: Result<()> = async {
            if new.internet.needs_resolver() {
                resolver::sync(ctx, Some(id)).await?;
            }
            let iface = outbound_interface().await?;
            set_ssh_publication(&net, new.publish_ssh).await?;
            let g = guard_of(&new, &tap, ip, &iface, &lan_now()?);
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                guard::apply(&g)?;
                guard::cut_connections_from(ip)
            })
            .await
            .map_err(rt)?
            .map_err(|e| rt(crate::sys::io_reason(&e)))
        }
        .await;
        if let Err(e) = r {
            // The stored settings follow what is in force: back to the old ones.
            let _ = save(&ctx.store, id, &old);
            return Err(e);
        }
        cut = true;
    }
    drop(_lock);
    // A resolver no sandbox needs any more stops.
    resolver::sync(ctx, None).await?;
    let row = ctx.vm(id)?;
    let mut rep = report(
        &row,
        new,
        guard::counters().ok().as_ref(),
        &ctx.paths.socket_dir,
    );
    rep.connections_cut = cut;
    Ok(rep)
}

/// Publish (or stop publishing) a sandbox's SSH forward on the outbound interface: kept
/// for its later starts, applied at once to a running one (`sandbox start --publish-ssh`,
/// `SMOLVM_PUBLISH_SSH`).
pub async fn set_publish_ssh(ctx: &Ctx, id: &VmId, publish: bool) -> Result<NetworkReport> {
    let row = ctx.vm(id)?;
    let s = settings_of(&ctx.store, &row);
    set(ctx, id, s.internet, Some(publish)).await
}

/// Remove a VM's guard (teardown): its TAP's chains, sets, counters and elements.
pub fn remove_guard(tap: &str, guest_ip: Option<&str>) -> std::io::Result<()> {
    let ip = guest_ip.and_then(|s| s.parse().ok());
    guard::remove(tap, ip)
}

/// What `doctor` says of the guard: running sandboxes of `store` whose TAP it does not
/// hold, and how many it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardHealth {
    pub table: bool,
    pub guarded: usize,
    pub unguarded: Vec<String>,
    /// Running sandboxes held by rules an older smolvm wrote.
    pub outdated: Vec<String>,
}

/// The guard against the running sandboxes of `store` (nftables must be readable; a row
/// whose VMM is gone, under `socket_dir`, is not running).
pub fn guard_health(store: Option<&StateStore>, socket_dir: &Path) -> std::io::Result<GuardHealth> {
    let table = guard::table_exists()?;
    let counters = guard::counters()?;
    let mut h = GuardHealth {
        table,
        guarded: counters.values().filter(|c| c.guarded).count(),
        unguarded: Vec::new(),
        outdated: Vec::new(),
    };
    if let Some(rows) = store.and_then(|s| s.list_vms().ok()) {
        for r in &rows.vms {
            let stale = crate::core::vm::row_is_stale(r, socket_dir);
            if unguarded(r, stale, Some(&counters)) {
                h.unguarded.push(r.id.clone());
            } else if let Some(c) = guarded_tap(r).and_then(|t| counters.get(t)) {
                if outdated(c) && !stale {
                    h.outdated.push(r.id.clone());
                }
            }
        }
    }
    Ok(h)
}
