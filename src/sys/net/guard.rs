//! smolvm's own nftables table, `inet smolvm_guard`: what keeps a hostile guest in its
//! sandbox, whatever SmolVM's tables (`ip smolvm_nat`, `inet smolvm_filter`) say and
//! whichever was made first (a drop in any base chain is final).
//!
//! Base chains, each first in its hook (priority raw, dstnat − 5, filter − 5):
//! * `raw_pre` (prerouting, raw −300, before routing): a guarded TAP's packets go to its
//!   `raw_<tap>` chain — IPv6, a source other than the guest's address, and anything for
//!   127.0.0.0/8 or 169.254.0.0/16 are dropped there, so no route the guest sets up can
//!   reach the host's loopback services; any other `tap*` never reaches 127.0.0.0/8.
//! * `dns_nat` (nat prerouting): DNS from sandboxes with allowed names goes to the
//!   resolver, whatever address it was sent to.
//! * `input`: from a guarded TAP, only replies and the resolver reach the host.
//! * `forward`: into a sandbox only replies and its published SSH forward (never the LAN,
//!   never another sandbox); out of it what its `egress_<tap>` chain allows.
//!
//! Each guarded TAP has chains `raw_`, `input_`, `egress_`, `drop_`, `reject_<tap>`,
//! counters `tx_<tap>` (allowed out) and `blocked_<tap>`, a set `bl_<tap>` of the
//! destinations it was refused (with counts, an hour each) and a set `dyn_<tap>` of the
//! addresses its allowed names resolved to (each for its record's TTL). A TAP that is in
//! `taps` but has no chain is dropped whole (fail closed). Everything here is named after
//! a TAP smolvm made; nothing outside this table is touched.

use std::io;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::nft::{quote, run_batch};

pub const FAMILY: &str = "inet";
pub const TABLE: &str = "smolvm_guard";

/// The sandboxes' gateway, where the resolver listens.
const GATEWAY: &str = super::HOST_IP;

/// The version of the per-TAP rules, written as a comment on the first rule of each TAP's
/// egress chain (`guard:v2`): 2 keeps the LAN out of open mode and allowed names. A chain
/// that says less, or nothing, was written by an older smolvm and is in force until the
/// sandbox's next start or `network set` writes it anew.
pub const VERSION: u32 = 2;

/// How long a refused destination stays listed after its last packet.
pub const BLOCKED_TTL_SECS: u64 = 3600;

/// What a TAP may reach beyond the guard's fixed rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Egress {
    /// Anything through the host's outbound interface but the LAN ([`TapGuard::lan`]),
    /// and these ranges (`a.b.c.d/n`, the LAN's included).
    Open { iface: String, cidrs: Vec<String> },
    /// Nothing.
    Off,
    /// These ranges (`a.b.c.d/n`), and with `names` the addresses the resolver let
    /// through (its DNS redirected to the resolver, never sent anywhere else).
    Restricted { cidrs: Vec<String>, names: bool },
}

/// One guarded TAP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapGuard {
    pub tap: String,
    pub guest_ip: Ipv4Addr,
    pub egress: Egress,
    /// SSH (guest port 22) reachable through its published forward from other hosts.
    pub publish_ssh: bool,
    /// The LAN (`a.b.c.d/n`, disjoint): what neither open mode nor an allowed name
    /// reaches; only a listed range does.
    pub lan: Vec<String>,
}

/// Whether a TAP name is one smolvm makes (`tap<N>`, `svmb<hex>`): the only names that
/// become chain, set and counter names here (and the only ones the resolver's allower
/// takes).
pub fn check_tap(tap: &str) -> io::Result<()> {
    if super::is_nat_tap_name(tap) || super::is_bridge_tap_name(tap) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a smolvm TAP name: {tap:?}"),
        ))
    }
}

fn t() -> String {
    format!("{FAMILY} {TABLE}")
}

/// The table, its shared sets and maps and base chains, with the base chains' rules
/// written anew (flush and add in the same atomic batch: idempotent, and repairs a rule
/// someone removed).
fn base_commands() -> Vec<String> {
    let t = t();
    let mut c = vec![
        format!("add table {t}"),
        format!("add set {t} taps {{ type ifname; }}"),
        format!("add set {t} dns_taps {{ type ifname; }}"),
        format!("add set {t} published_ssh {{ type ipv4_addr . inet_service; }}"),
        format!("add map {t} raw {{ type ifname : verdict; }}"),
        format!("add map {t} input {{ type ifname : verdict; }}"),
        format!("add map {t} egress {{ type ifname : verdict; }}"),
        format!("add chain {t} raw_pre {{ type filter hook prerouting priority raw; policy accept; }}"),
        format!("add chain {t} dns_nat {{ type nat hook prerouting priority dstnat - 5; policy accept; }}"),
        format!("add chain {t} input {{ type filter hook input priority filter - 5; policy accept; }}"),
        format!("add chain {t} forward {{ type filter hook forward priority filter - 5; policy accept; }}"),
        format!("add chain {t} dns_in"),
    ];
    for ch in ["raw_pre", "input", "forward"] {
        c.push(format!("flush chain {t} {ch}"));
    }
    c.extend([
        format!("add rule {t} raw_pre iifname vmap @raw"),
        format!("add rule {t} raw_pre iifname @taps counter drop comment \"guard:unmapped\""),
        format!("add rule {t} raw_pre iifname \"tap*\" ip daddr 127.0.0.0/8 counter drop comment \"guard:loopback\""),
        format!("add rule {t} input iifname vmap @input"),
        format!("add rule {t} input iifname @taps counter drop comment \"guard:unmapped\""),
        format!("add rule {t} forward oifname @taps ct state established,related accept"),
        format!("add rule {t} forward oifname @taps ct status dnat ip daddr . tcp dport @published_ssh accept"),
        format!("add rule {t} forward oifname @taps counter drop comment \"guard:inbound\""),
        format!("add rule {t} forward iifname vmap @egress"),
        format!("add rule {t} forward iifname @taps counter drop comment \"guard:unmapped\""),
    ]);
    c
}

/// The per-TAP objects (idempotent `add`s; chains flushed and written anew).
fn tap_commands(g: &TapGuard) -> Vec<String> {
    let (t, tap) = (t(), g.tap.as_str());
    let q = quote(tap);
    let ip = g.guest_ip;
    let mut c = vec![
        format!("add counter {t} tx_{tap}"),
        format!("add counter {t} blocked_{tap}"),
        format!("add set {t} bl_{tap} {{ type ipv4_addr . inet_proto . inet_service; size 1024; flags dynamic,timeout; timeout {BLOCKED_TTL_SECS}s; counter; }}"),
        format!("add set {t} dyn_{tap} {{ type ipv4_addr; flags timeout; }}"),
        // A new policy starts from no resolved address: names it no longer allows lose
        // theirs at once.
        format!("flush set {t} dyn_{tap}"),
    ];
    for ch in ["raw", "input", "egress", "drop", "reject"] {
        c.push(format!("add chain {t} {ch}_{tap}"));
        c.push(format!("flush chain {t} {ch}_{tap}"));
    }
    // Count and refuse: the destination (tcp/udp with its port, else the protocol) goes
    // into bl_<tap> with a count; drop_ (raw, where reject cannot be) or reject_.
    for (ch, verdict) in [
        ("drop", "drop"),
        ("reject", "reject with icmpx admin-prohibited"),
    ] {
        c.push(format!("add rule {t} {ch}_{tap} meta nfproto ipv4 meta l4proto {{ tcp, udp }} update @bl_{tap} {{ ip daddr . meta l4proto . th dport }}"));
        c.push(format!("add rule {t} {ch}_{tap} meta nfproto ipv4 meta l4proto != {{ tcp, udp }} update @bl_{tap} {{ ip daddr . meta l4proto . 0 }}"));
        c.push(format!(
            "add rule {t} {ch}_{tap} counter name \"blocked_{tap}\" {verdict}"
        ));
    }
    c.extend([
        format!("add rule {t} raw_{tap} meta nfproto ipv6 goto drop_{tap}"),
        format!("add rule {t} raw_{tap} ip saddr != {ip} goto drop_{tap}"),
        format!(
            "add rule {t} raw_{tap} ip daddr {{ 127.0.0.0/8, 169.254.0.0/16 }} goto drop_{tap}"
        ),
        format!("add rule {t} raw_{tap} accept"),
        format!("add rule {t} input_{tap} ct state established,related accept"),
    ]);
    let names = matches!(g.egress, Egress::Restricted { names: true, .. });
    if names {
        c.push(format!("add rule {t} input_{tap} jump dns_in"));
    }
    c.push(format!("add rule {t} input_{tap} goto reject_{tap}"));
    let tx = format!("counter name \"tx_{tap}\" accept");
    c.push(format!(
        "add rule {t} egress_{tap} ct state established,related {tx} comment \"guard:v{VERSION}\""
    ));
    // The LAN, as an anonymous set (empty: a range no packet has).
    let lan = if g.lan.is_empty() {
        "0.0.0.0/32".to_string()
    } else {
        g.lan.join(", ")
    };
    match &g.egress {
        Egress::Open { iface, cidrs } => {
            if !cidrs.is_empty() {
                c.push(format!(
                    "add rule {t} egress_{tap} ip daddr {{ {} }} {tx}",
                    cidrs.join(", ")
                ));
            }
            c.push(format!(
                "add rule {t} egress_{tap} ip daddr {{ {lan} }} goto reject_{tap}"
            ));
            c.push(format!(
                "add rule {t} egress_{tap} oifname {} {tx}",
                quote(iface)
            ));
        }
        Egress::Off => {}
        Egress::Restricted { cidrs, names } => {
            if *names {
                c.push(format!(
                    "add rule {t} egress_{tap} meta l4proto {{ tcp, udp }} th dport 53 goto reject_{tap}"
                ));
            }
            if !cidrs.is_empty() {
                c.push(format!(
                    "add rule {t} egress_{tap} ip daddr {{ {} }} {tx}",
                    cidrs.join(", ")
                ));
            }
            if *names {
                c.push(format!(
                    "add rule {t} egress_{tap} ip daddr @dyn_{tap} ip daddr != {{ {lan} }} {tx}"
                ));
            }
        }
    }
    c.push(format!("add rule {t} egress_{tap} goto reject_{tap}"));
    // Membership last, in the same batch: the TAP is never guarded by half its chains.
    for (map, ch) in [("raw", "raw"), ("input", "input"), ("egress", "egress")] {
        c.push(format!("add element {t} {map} {{ {q} : goto {ch}_{tap} }}"));
    }
    c.push(format!("add element {t} taps {{ {q} }}"));
    // dns_taps and published_ssh: present or absent as asked (add then delete is a
    // removal that cannot fail on an absent element).
    c.push(format!("add element {t} dns_taps {{ {q} }}"));
    if !names {
        c.push(format!("delete element {t} dns_taps {{ {q} }}"));
    }
    c.push(format!("add element {t} published_ssh {{ {ip} . 22 }}"));
    if !g.publish_ssh {
        c.push(format!("delete element {t} published_ssh {{ {ip} . 22 }}"));
    }
    c
}

/// Guard this TAP (and make the table if needed), as one atomic batch: applied before
/// the VMM runs; a change of policy takes effect on the next packet.
pub fn apply(g: &TapGuard) -> io::Result<()> {
    check_tap(&g.tap)?;
    let mut cmds = base_commands();
    cmds.extend(tap_commands(g));
    run_batch(&cmds)
}

/// The objects of a listed table (`nft -j list table`'s `nftables` array).
fn table_items(v: &Value) -> Vec<Value> {
    v.get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A set's (or map's) name and elements, when `item` is one.
fn set_of(item: &Value) -> Option<(&str, Vec<Value>)> {
    let set = item.get("set").or_else(|| item.get("map"))?;
    let name = set.get("name").and_then(Value::as_str).unwrap_or("");
    let elems = set
        .get("elem")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Some((name, elems))
}

/// Remove everything of this TAP that exists (nothing to do when the table does not
/// exist): read first, then delete exactly those objects and elements in one batch, so a
/// table someone changed by hand never makes a teardown fail. The guest's address names
/// its published SSH element.
pub fn remove(tap: &str, guest_ip: Option<Ipv4Addr>) -> io::Result<()> {
    check_tap(tap)?;
    let Some(v) = super::nft::list_table(FAMILY, TABLE)? else {
        return Ok(());
    };
    let (t, q) = (t(), quote(tap));
    let items = table_items(&v);
    let mut elements = Vec::new();
    let mut chains = Vec::new();
    let mut sets = Vec::new();
    let mut counters = Vec::new();
    let ours = |n: &str, prefixes: &[&str]| prefixes.iter().any(|p| n == format!("{p}_{tap}"));
    for item in &items {
        if let Some((name, elems)) = set_of(item) {
            let has = |want: &dyn Fn(&Value) -> bool| elems.iter().any(want);
            match name {
                "taps" | "dns_taps" if has(&|e| e.as_str() == Some(tap)) => {
                    elements.push(format!("delete element {t} {name} {{ {q} }}"))
                }
                "raw" | "input" | "egress"
                    if has(&|e| e.get(0).and_then(Value::as_str) == Some(tap)) =>
                {
                    elements.push(format!("delete element {t} {name} {{ {q} }}"))
                }
                "published_ssh" => {
                    if let Some(ip) = guest_ip {
                        let s = ip.to_string();
                        let hit = has(&|e| {
                            e.get("concat")
                                .and_then(|c| c.get(0))
                                .and_then(Value::as_str)
                                == Some(s.as_str())
                        });
                        if hit {
                            elements
                                .push(format!("delete element {t} published_ssh {{ {ip} . 22 }}"));
                        }
                    }
                }
                n if ours(n, &["bl", "dyn"]) => sets.push(format!("delete set {t} {n}")),
                _ => {}
            }
        } else if let Some(ch) = item.get("chain") {
            let name = ch.get("name").and_then(Value::as_str).unwrap_or("");
            if ours(name, &["raw", "input", "egress", "drop", "reject"]) {
                chains.push(name.to_string());
            }
        } else if let Some(ctr) = item.get("counter") {
            let name = ctr.get("name").and_then(Value::as_str).unwrap_or("");
            if ours(name, &["tx", "blocked"]) {
                counters.push(format!("delete counter {t} {name}"));
            }
        }
    }
    let mut c = elements;
    c.extend(chains.iter().map(|ch| format!("flush chain {t} {ch}")));
    c.extend(chains.iter().map(|ch| format!("delete chain {t} {ch}")));
    c.extend(sets);
    c.extend(counters);
    run_batch(&c)
}

/// Point every sandbox's DNS at the resolver listening on `GATEWAY:port` (rewritten when
/// a resolver starts).
pub fn set_resolver_port(port: u16) -> io::Result<()> {
    let t = t();
    let mut c = base_commands();
    c.extend([
        format!("flush chain {t} dns_nat"),
        format!("flush chain {t} dns_in"),
        format!("add rule {t} dns_nat iifname @dns_taps meta l4proto {{ tcp, udp }} th dport 53 dnat ip to {GATEWAY}:{port}"),
        format!("add rule {t} dns_in ip daddr {GATEWAY} meta l4proto {{ tcp, udp }} th dport {port} ct status dnat accept"),
    ]);
    run_batch(&c)
}

/// Let `tap` reach these addresses for `ttl_secs` (the resolver's answers). An address
/// already there gets the new lifetime.
pub fn allow_resolved(tap: &str, addrs: &[Ipv4Addr], ttl_secs: u64) -> io::Result<()> {
    check_tap(tap)?;
    if addrs.is_empty() {
        return Ok(());
    }
    let t = t();
    let mut c = Vec::new();
    for a in addrs {
        // add + delete + add: the element's timeout is the new one, present or not.
        c.push(format!("add element {t} dyn_{tap} {{ {a} }}"));
        c.push(format!("delete element {t} dyn_{tap} {{ {a} }}"));
        c.push(format!(
            "add element {t} dyn_{tap} {{ {a} timeout {ttl_secs}s }}"
        ));
    }
    run_batch(&c)
}

/// Forget the tracked connections this guest opened (`conntrack -D -s <ip>`), so the
/// next packet of each is judged by the current policy: a connection the policy no longer
/// allows is cut. Connections into the guest (SSH, port forwards) are not touched.
pub fn cut_connections_from(guest_ip: Ipv4Addr) -> io::Result<()> {
    let out = Command::new("conntrack")
        .args(["-D", "-f", "ipv4", "-s", &guest_ip.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run conntrack (install the conntrack package): {e}"),
            )
        })?;
    let err = String::from_utf8_lossy(&out.stderr);
    // Exit 1 with "0 flow entries have been deleted" is nothing to cut.
    if out.status.success() || err.contains("flow entries have been deleted") {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "conntrack: {}",
            err.lines().next().unwrap_or("failed").trim()
        )))
    }
}

/// Whether the guard table exists.
pub fn table_exists() -> io::Result<bool> {
    Ok(super::nft::list_table(FAMILY, TABLE)?.is_some())
}

/// A destination a sandbox was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub addr: Ipv4Addr,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp …).
    pub proto: u8,
    /// 0 for a protocol without ports.
    pub port: u16,
    pub packets: u64,
    /// Seconds since its last refused packet.
    pub last_seen_secs: u64,
}

/// What the guard counted for one TAP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapCounters {
    pub guarded: bool,
    pub allowed_packets: u64,
    pub allowed_bytes: u64,
    pub blocked_packets: u64,
    pub blocked_bytes: u64,
    /// Most recent first.
    pub blocked: Vec<Blocked>,
    /// Whether its DNS goes to the resolver.
    pub dns_redirected: bool,
    pub ssh_published: bool,
    /// The guest address its chains name (anti-spoofing rule).
    pub guest_ip: Option<Ipv4Addr>,
    /// The [`VERSION`] its egress chain was written with (`None`: before versions).
    pub version: Option<u32>,
}

/// The guard's counters of every TAP, read in one `nft -j list table`.
pub fn counters() -> io::Result<std::collections::BTreeMap<String, TapCounters>> {
    let mut out: std::collections::BTreeMap<String, TapCounters> = Default::default();
    let Some(v) = super::nft::list_table(FAMILY, TABLE)? else {
        return Ok(out);
    };
    let items = table_items(&v);
    let mut published: Vec<Ipv4Addr> = Vec::new();
    let mut tap_ips: Vec<(String, Ipv4Addr)> = Vec::new();
    for item in &items {
        if let Some(ctr) = item.get("counter") {
            let name = ctr.get("name").and_then(Value::as_str).unwrap_or("");
            let n = |k: &str| ctr.get(k).and_then(Value::as_u64).unwrap_or(0);
            if let Some(tap) = name.strip_prefix("tx_") {
                let e = out.entry(tap.to_string()).or_default();
                e.allowed_packets = n("packets");
                e.allowed_bytes = n("bytes");
            } else if let Some(tap) = name.strip_prefix("blocked_") {
                let e = out.entry(tap.to_string()).or_default();
                e.blocked_packets = n("packets");
                e.blocked_bytes = n("bytes");
            }
        } else if let Some((name, elems)) = set_of(item) {
            match name {
                "taps" => {
                    for e in &elems {
                        if let Some(s) = e.as_str() {
                            out.entry(s.to_string()).or_default().guarded = true;
                        }
                    }
                }
                "dns_taps" => {
                    for e in &elems {
                        if let Some(s) = e.as_str() {
                            out.entry(s.to_string()).or_default().dns_redirected = true;
                        }
                    }
                }
                "published_ssh" => {
                    for e in &elems {
                        let parts = e.get("concat").and_then(Value::as_array);
                        if let Some(ip) = parts
                            .and_then(|p| p.first())
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse().ok())
                        {
                            published.push(ip);
                        }
                    }
                }
                _ => {
                    if let Some(tap) = name.strip_prefix("bl_") {
                        let e = out.entry(tap.to_string()).or_default();
                        e.blocked = elems.iter().filter_map(parse_blocked).collect();
                        e.blocked.sort_by_key(|b| b.last_seen_secs);
                    }
                }
            }
        } else if let Some(rule) = item.get("rule") {
            // raw_<tap>'s `ip saddr != <guest ip>` names the guest of the TAP;
            // egress_<tap>'s `guard:vN` comment the rules' version.
            let chain = rule.get("chain").and_then(Value::as_str).unwrap_or("");
            if let Some(tap) = chain.strip_prefix("egress_") {
                let v = rule
                    .get("comment")
                    .and_then(Value::as_str)
                    .and_then(|c| c.strip_prefix("guard:v"))
                    .and_then(|n| n.parse().ok());
                if v.is_some() {
                    out.entry(tap.to_string()).or_default().version = v;
                }
            }
            if let Some(tap) = chain.strip_prefix("raw_").filter(|c| *c != "pre") {
                if let Some(ip) = saddr_of(rule) {
                    tap_ips.push((tap.to_string(), ip));
                }
            }
        }
    }
    for (tap, ip) in tap_ips {
        let e = out.entry(tap).or_default();
        e.guest_ip = Some(ip);
        e.ssh_published = published.contains(&ip);
    }
    Ok(out)
}

fn saddr_of(rule: &Value) -> Option<Ipv4Addr> {
    rule.get("expr")?.as_array()?.iter().find_map(|e| {
        let m = e.get("match")?;
        let left = m.get("left")?.get("payload")?;
        (left.get("field")?.as_str()? == "saddr" && m.get("op")?.as_str()? == "!=")
            .then(|| m.get("right")?.as_str()?.parse().ok())
            .flatten()
    })
}

fn parse_blocked(e: &Value) -> Option<Blocked> {
    let wrap = e.get("elem");
    let val = wrap.and_then(|w| w.get("val")).unwrap_or(e);
    let parts = val.get("concat")?.as_array()?;
    let addr: Ipv4Addr = parts.first()?.as_str()?.parse().ok()?;
    let proto = match parts.get(1)? {
        Value::String(s) => match s.as_str() {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            other => other.parse().ok()?,
        },
        Value::Number(n) => n.as_u64()? as u8,
        _ => return None,
    };
    let port = match parts.get(2)? {
        Value::Number(n) => n.as_u64()? as u16,
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    };
    let w = wrap?;
    let timeout = w
        .get("timeout")
        .and_then(Value::as_u64)
        .unwrap_or(BLOCKED_TTL_SECS);
    let expires = w.get("expires").and_then(Value::as_u64).unwrap_or(timeout);
    let packets = w
        .get("counter")
        .and_then(|c| c.get("packets"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Some(Blocked {
        addr,
        proto,
        port,
        packets,
        last_seen_secs: timeout.saturating_sub(expires),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_names_only_smolvm_taps_and_keeps_restricted_dns_at_home() {
        let g = TapGuard {
            tap: "tap2".into(),
            guest_ip: Ipv4Addr::new(172, 16, 0, 2),
            egress: Egress::Restricted {
                cidrs: vec!["203.0.113.0/24".into()],
                names: true,
            },
            publish_ssh: false,
            lan: vec!["10.0.0.0/8".into(), "192.0.2.0/24".into()],
        };
        let c = tap_commands(&g);
        // A name that resolves into the LAN opens nothing.
        assert!(c.contains(&"add rule inet smolvm_guard egress_tap2 ip daddr @dyn_tap2 ip daddr != { 10.0.0.0/8, 192.0.2.0/24 } counter name \"tx_tap2\" accept".to_string()));
        assert!(c.contains(&"add rule inet smolvm_guard egress_tap2 meta l4proto { tcp, udp } th dport 53 goto reject_tap2".to_string()));
        assert!(c.contains(
            &"add rule inet smolvm_guard raw_tap2 ip saddr != 172.16.0.2 goto drop_tap2"
                .to_string()
        ));
        assert_eq!(
            c.last().unwrap(),
            "delete element inet smolvm_guard published_ssh { 172.16.0.2 . 22 }"
        );
        assert!(apply(&TapGuard {
            tap: "eth0; flush ruleset".into(),
            ..g.clone()
        })
        .is_err());
        assert!(remove("lo", None).is_err());
    }

    #[test]
    fn open_reaches_the_outbound_interface_but_not_the_lan_save_listed_ranges() {
        let g = TapGuard {
            tap: "tap7".into(),
            guest_ip: Ipv4Addr::new(172, 16, 0, 7),
            egress: Egress::Open {
                iface: "eth0".into(),
                cidrs: vec!["10.1.2.3/32".into()],
            },
            publish_ssh: false,
            lan: vec!["10.0.0.0/8".into(), "198.51.100.0/24".into()],
        };
        let c = tap_commands(&g);
        let egress: Vec<&str> = c
            .iter()
            .filter_map(|r| r.strip_prefix("add rule inet smolvm_guard egress_tap7 "))
            .collect();
        assert_eq!(
            egress,
            [
                "ct state established,related counter name \"tx_tap7\" accept comment \"guard:v2\"",
                "ip daddr { 10.1.2.3/32 } counter name \"tx_tap7\" accept",
                "ip daddr { 10.0.0.0/8, 198.51.100.0/24 } goto reject_tap7",
                "oifname \"eth0\" counter name \"tx_tap7\" accept",
                "goto reject_tap7",
            ]
        );
    }

    #[test]
    fn blocked_elements_parse_from_nft_json() {
        let e: Value = serde_json::from_str(
            r#"{"elem": {"val": {"concat": ["10.1.2.3", "tcp", 443]}, "timeout": 3600, "expires": 3590,
                 "counter": {"packets": 3, "bytes": 180}}}"#,
        )
        .unwrap();
        assert_eq!(
            parse_blocked(&e),
            Some(Blocked {
                addr: Ipv4Addr::new(10, 1, 2, 3),
                proto: 6,
                port: 443,
                packets: 3,
                last_seen_secs: 10
            })
        );
    }
}
