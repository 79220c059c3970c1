//! SmolVM's nftables tables, `ip smolvm_nat` and `inet smolvm_filter`: read their
//! elements and commented rules (`nft -j`), and delete exactly the ones given in one atomic
//! `nft -f -` batch. The tables, maps, sets and global rules themselves are never removed.

use std::io::{self, Write};
use std::process::{Command, Stdio};

use serde_json::Value;

pub const NAT: (&str, &str) = ("ip", "smolvm_nat");
pub const FILTER: (&str, &str) = ("inet", "smolvm_filter");

/// An element of one of SmolVM's maps or sets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ElemKey {
    /// `dnat_ext`, `dnat_local`: keyed by host port.
    Port(u16),
    /// `allowed_taps`.
    Ifname(String),
    /// `snat_return`, `fwd_allow`: `<ip> . <port>`.
    AddrPort(String, u16),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Element {
    pub family: String,
    pub table: String,
    pub set: String,
    pub key: ElemKey,
    /// For a map element, the guest address it points at (`dnat_ext { 2200 : <ip> . 22 }`).
    pub target: Option<String>,
}

impl Element {
    fn key_text(&self) -> String {
        match &self.key {
            ElemKey::Port(p) => p.to_string(),
            ElemKey::Ifname(n) => quote(n),
            ElemKey::AddrPort(a, p) => format!("{a} . {p}"),
        }
    }

    /// `ip smolvm_nat dnat_ext { 2200 }`
    pub fn describe(&self) -> String {
        format!(
            "{} {} {} {{ {} }}",
            self.family,
            self.table,
            self.set,
            self.key_text()
        )
    }

    /// The command deleting this element, only for an element of SmolVM's own per-VM
    /// sets and maps (never a table, a map or a set itself).
    pub fn deletion(&self) -> Option<Deletion> {
        let ours = match (self.family.as_str(), self.table.as_str()) {
            ("ip", "smolvm_nat") => {
                matches!(self.set.as_str(), "dnat_ext" | "dnat_local" | "snat_return")
            }
            ("inet", "smolvm_filter") => matches!(self.set.as_str(), "fwd_allow" | "allowed_taps"),
            _ => false,
        };
        ours.then(|| Deletion(format!("delete element {}", self.describe())))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub comment: String,
}

impl Rule {
    /// A rule of smolvm's `ip smolvm_nat output` chain, as unit tests list them.
    #[cfg(test)]
    pub fn nat_output(handle: u64, comment: &str) -> Rule {
        Rule {
            family: "ip".into(),
            table: "smolvm_nat".into(),
            chain: "output".into(),
            handle,
            comment: comment.into(),
        }
    }

    /// `ip smolvm_nat output rule "smolvm:vm-a:local:8080:80"`
    pub fn describe(&self) -> String {
        format!(
            "{} {} {} rule {}",
            self.family,
            self.table,
            self.chain,
            quote(&self.comment)
        )
    }

    /// The command deleting this rule, only for a per-VM rule of SmolVM's tables (its
    /// comment `smolvm:<vm id>:…`, `smolvm:egress:<tap>:…` or `smolvm:nat:tap:<tap>:…`;
    /// never a `smolvm:map:…` or `smolvm:global:…` rule).
    pub fn deletion(&self) -> Option<Deletion> {
        let table = (self.family.as_str(), self.table.as_str());
        let per_vm = self.comment.starts_with("smolvm:")
            && !self.comment.starts_with("smolvm:map:")
            && !self.comment.starts_with("smolvm:global:");
        ((table == NAT || table == FILTER) && per_vm).then(|| {
            Deletion(format!(
                "delete rule {} {} {} handle {}",
                self.family, self.table, self.chain, self.handle
            ))
        })
    }
}

/// One of SmolVM's local port forwards (`setup_local_port_forward`): `127.0.0.1:<host
/// port>` on the host reaches `<guest port>` of the VM, as three rules commented
/// `smolvm:<vm id>:local:<host port>:<guest port>` (nat output and postrouting, filter
/// forward). The comment is the record: `sandbox port list` reads the forwards back from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalForward {
    pub vm_id: String,
    pub host_port: u16,
    pub guest_port: u16,
}

impl LocalForward {
    pub fn comment(&self) -> String {
        format!(
            "smolvm:{}:local:{}:{}",
            self.vm_id, self.host_port, self.guest_port
        )
    }

    /// The forward a comment names: a valid VM id and two ports from 1 to 65535 written
    /// without leading zeros; anything else is `None`.
    pub fn parse(comment: &str) -> Option<LocalForward> {
        let rest = comment.strip_prefix("smolvm:")?;
        let mut parts = rest.rsplitn(3, ':');
        let port = |t: &str| -> Option<u16> {
            let ok = !t.is_empty() && !t.starts_with('0') && t.bytes().all(|b| b.is_ascii_digit());
            ok.then(|| t.parse().ok()).flatten()
        };
        let guest_port = port(parts.next()?)?;
        let host_port = port(parts.next()?)?;
        let vm_id = parts.next()?.strip_suffix(":local")?;
        crate::sys::process::is_vm_id(vm_id).then(|| LocalForward {
            vm_id: vm_id.to_string(),
            host_port,
            guest_port,
        })
    }

    /// The `add` commands for [`apply`]: SmolVM's tables and chains (idempotent) and the
    /// three rules, to the guest at `guest_ip` (an IPv4 address, checked here).
    pub fn add_commands(&self, guest_ip: &str) -> io::Result<Vec<String>> {
        let ip: std::net::Ipv4Addr = guest_ip.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not an IPv4 address: {guest_ip:?}"),
            )
        })?;
        let (hp, gp, c) = (self.host_port, self.guest_port, quote(&self.comment()));
        let mut cmds: Vec<String> = TABLES.map(String::from).to_vec();
        cmds.push(format!(
            "add rule ip smolvm_nat output ip daddr 127.0.0.1/32 tcp dport {hp} counter dnat to {ip}:{gp} comment {c}"
        ));
        cmds.push(format!(
            "add rule ip smolvm_nat postrouting ip saddr 127.0.0.0/8 ip daddr {ip}/32 tcp dport {gp} counter snat to 172.16.0.1 comment {c}"
        ));
        cmds.push(format!(
            "add rule inet smolvm_filter forward ip daddr {ip}/32 tcp dport {gp} ct state new,related,established counter accept comment {c}"
        ));
        Ok(cmds)
    }
}

impl Rule {
    /// The local forward this rule is part of, by its comment.
    pub fn local_forward(&self) -> Option<LocalForward> {
        let table = (self.family.as_str(), self.table.as_str());
        if table != NAT && table != FILTER {
            return None;
        }
        LocalForward::parse(&self.comment)
    }

    /// The deletion of this rule only when its comment proves it a local forward of
    /// `vm_id` (and, when given, of exactly that host and guest port).
    pub fn forward_deletion(&self, vm_id: &str, ports: Option<(u16, u16)>) -> Option<Deletion> {
        let f = self.local_forward()?;
        let mine = f.vm_id == vm_id
            && ports.is_none_or(|(hp, gp)| f.host_port == hp && f.guest_port == gp);
        mine.then(|| self.deletion()).flatten()
    }
}

/// One `delete` command for an element or per-VM rule of SmolVM's tables: the only thing
/// [`delete`] takes, built only by [`Element::deletion`] and [`Rule::deletion`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Deletion(String);

impl Deletion {
    pub fn command(&self) -> &str {
        &self.0
    }
}

/// Delete these elements and rules as one atomic batch. Nothing to do is success.
pub fn delete(deletions: &[Deletion]) -> io::Result<()> {
    tracing::info!(entries = deletions.len(), "deleting nftables entries");
    let cmds: Vec<String> = deletions.iter().map(|d| d.0.clone()).collect();
    run_batch(&cmds)
}

/// SmolVM's `_quote`: double quotes, with `\` and `"` escaped.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The elements and commented rules of SmolVM's two tables (absent tables read as empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftState {
    pub elements: Vec<Element>,
    pub rules: Vec<Rule>,
}

/// Read both tables. Fails only if `nft` cannot be run or answers something unexpected;
/// a missing table is simply empty.
pub fn read() -> io::Result<NftState> {
    let mut state = NftState::default();
    for (family, table) in [NAT, FILTER] {
        if let Some(v) = list_table(family, table)? {
            parse_into(&v, &mut state);
        }
    }
    Ok(state)
}

/// `nft -j list table FAMILY TABLE` as JSON; `None` when the table does not exist.
pub(super) fn list_table(family: &str, table: &str) -> io::Result<Option<Value>> {
    let out = Command::new("nft")
        .args(["-j", "list", "table", family, table])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run nft: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such file or directory") {
            return Ok(None);
        }
        return Err(nft_error(&err, out.status));
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("nft -j: {e}")))
}

pub(super) fn nft_error(stderr: &str, status: std::process::ExitStatus) -> io::Error {
    let ended = format!("nft failed ({status})");
    let first = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(&ended);
    if first.contains("Operation not permitted") {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "Permission denied: cannot change nftables rules",
        )
    } else {
        io::Error::other(format!("nft: {first}"))
    }
}

fn parse_into(v: &Value, state: &mut NftState) {
    let Some(items) = v.get("nftables").and_then(Value::as_array) else {
        return;
    };
    for item in items {
        if let Some(set) = item.get("map").or_else(|| item.get("set")) {
            let s = |k: &str| set.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            for e in set
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // A map element is `[key, value]`; a set element is the key itself.
                let key = if item.get("map").is_some() {
                    e.get(0).unwrap_or(e)
                } else {
                    e
                };
                let key = key.get("elem").and_then(|x| x.get("val")).unwrap_or(key);
                let target = match (item.get("map").is_some(), e.get(1).map(parse_key)) {
                    (true, Some(Some(ElemKey::AddrPort(ip, _)))) => Some(ip),
                    _ => None,
                };
                if let Some(key) = parse_key(key) {
                    state.elements.push(Element {
                        family: s("family"),
                        table: s("table"),
                        set: s("name"),
                        key,
                        target,
                    });
                }
            }
        } else if let Some(rule) = item.get("rule") {
            let Some(comment) = rule.get("comment").and_then(Value::as_str) else {
                continue;
            };
            let s = |k: &str| {
                rule.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            if let Some(handle) = rule.get("handle").and_then(Value::as_u64) {
                state.rules.push(Rule {
                    family: s("family"),
                    table: s("table"),
                    chain: s("chain"),
                    handle,
                    comment: comment.to_string(),
                });
            }
        }
    }
}

fn parse_key(v: &Value) -> Option<ElemKey> {
    if let Some(p) = v.as_u64() {
        return u16::try_from(p).ok().map(ElemKey::Port);
    }
    if let Some(s) = v.as_str() {
        return Some(ElemKey::Ifname(s.to_string()));
    }
    let parts = v.get("concat")?.as_array()?;
    match parts.as_slice() {
        [a, p] => Some(ElemKey::AddrPort(
            a.as_str()?.to_string(),
            u16::try_from(p.as_u64()?).ok()?,
        )),
        _ => None,
    }
}

/// Apply these `add …` commands as one atomic batch (`nft -f -`); anything else (a
/// `delete`, `flush` or `destroy`) is refused: deleting goes through [`delete`]. Nothing to
/// do is success.
pub fn apply(commands: &[String]) -> io::Result<()> {
    tracing::debug!(commands = %commands.join("; "), "adding nftables entries");
    if let Some(c) = commands.iter().find(|c| !c.starts_with("add ")) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing a non-add nftables command: {c}"),
        ));
    }
    run_batch(commands)
}

pub(super) fn run_batch(commands: &[String]) -> io::Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run nft: {e}")))?;
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(commands.join("\n").as_bytes())?;
        stdin.write_all(b"\n")?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(nft_error(&String::from_utf8_lossy(&out.stderr), out.status))
    }
}

/// SmolVM's tables and base chains (idempotent `add`s).
const TABLES: [&str; 6] = [
    "add table ip smolvm_nat",
    "add chain ip smolvm_nat prerouting { type nat hook prerouting priority dstnat; policy accept; }",
    "add chain ip smolvm_nat output { type nat hook output priority -100; policy accept; }",
    "add chain ip smolvm_nat postrouting { type nat hook postrouting priority srcnat; policy accept; }",
    "add table inet smolvm_filter",
    "add chain inet smolvm_filter forward { type filter hook forward priority filter; policy accept; }",
];

/// A VM's NAT setup: the TAP allowed out, and its SSH forward on 127.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmNat<'a> {
    pub tap: &'a str,
    pub guest_ip: &'a str,
    pub ssh_host_port: Option<u16>,
}

/// SmolVM's tables, chains, maps and sets (idempotent `add`s), every commented map and
/// global rule that `state` lacks (matched by chain and comment, as SmolVM does), and this
/// VM's elements: one batch for [`apply`]. `iface` is the outbound interface.
pub fn setup_commands(state: &NftState, iface: &str, vm: &VmNat<'_>) -> Vec<String> {
    let q = quote(iface);
    let mut cmds: Vec<String> = TABLES.map(String::from).to_vec();
    cmds.extend(
        [
            "add map ip smolvm_nat dnat_ext { type inet_service : ipv4_addr . inet_service ; }",
            "add map ip smolvm_nat dnat_local { type inet_service : ipv4_addr . inet_service ; }",
            "add set ip smolvm_nat snat_return { type ipv4_addr . inet_service ; }",
            "add set inet smolvm_filter fwd_allow { type ipv4_addr . inet_service ; }",
            "add set inet smolvm_filter allowed_taps { type ifname ; }",
        ]
        .map(String::from),
    );
    let rules: [(&str, &str, &str, String, String); 8] = [
        (
            "ip",
            "smolvm_nat",
            "prerouting",
            format!("iifname {q} dnat to tcp dport map @dnat_ext"),
            "smolvm:map:prerouting:dnat_ext".into(),
        ),
        (
            "ip",
            "smolvm_nat",
            "output",
            "ip daddr 127.0.0.1/32 dnat to tcp dport map @dnat_local".into(),
            "smolvm:map:output:dnat_local".into(),
        ),
        (
            "ip",
            "smolvm_nat",
            "postrouting",
            "ip saddr 127.0.0.0/8 ip daddr . tcp dport @snat_return counter snat to 172.16.0.1"
                .into(),
            "smolvm:map:postrouting:snat_return".into(),
        ),
        (
            "ip",
            "smolvm_nat",
            "postrouting",
            format!("oifname {q} counter masquerade"),
            format!("smolvm:global:nat:masquerade:{iface}"),
        ),
        (
            "inet",
            "smolvm_filter",
            "forward",
            "ct state related,established counter accept".into(),
            "smolvm:global:forward:established".into(),
        ),
        (
            "inet",
            "smolvm_filter",
            "forward",
            "iifname \"tap*\" oifname \"tap*\" counter drop".into(),
            "smolvm:global:forward:tap-isolation".into(),
        ),
        (
            "inet",
            "smolvm_filter",
            "forward",
            "ip daddr . tcp dport @fwd_allow ct state new,related,established counter accept"
                .into(),
            "smolvm:map:forward:fwd_allow".into(),
        ),
        (
            "inet",
            "smolvm_filter",
            "forward",
            format!("iifname @allowed_taps oifname {q} counter accept"),
            "smolvm:map:forward:allowed_taps".into(),
        ),
    ];
    for (family, table, chain, expr, comment) in rules {
        let present = state.rules.iter().any(|r| {
            r.family == family && r.table == table && r.chain == chain && r.comment == comment
        });
        if !present {
            cmds.push(format!(
                "add rule {family} {table} {chain} {expr} comment {}",
                quote(&comment)
            ));
        }
    }
    cmds.push(format!(
        "add element inet smolvm_filter allowed_taps {{ {} }}",
        quote(vm.tap)
    ));
    // `dnat_ext` (the forward on the outbound interface) only for a published sandbox:
    // core adds it then; the 127.0.0.1 forward is always there.
    if let Some(hp) = vm.ssh_host_port {
        let gip = vm.guest_ip;
        cmds.push(format!(
            "add element ip smolvm_nat dnat_local {{ {hp} : {gip} . 22 }}"
        ));
        cmds.push(format!(
            "add element ip smolvm_nat snat_return {{ {gip} . 22 }}"
        ));
        cmds.push(format!(
            "add element inet smolvm_filter fwd_allow {{ {gip} . 22 }}"
        ));
    }
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nft's own words when it printed some; how it ended when it printed none (killed by
    /// a signal, say), never a bare "nft failed".
    #[test]
    fn an_nft_that_says_nothing_is_told_by_how_it_ended() {
        use std::os::unix::process::ExitStatusExt;
        // Wait statuses: killed by SIGINT; exited 1.
        let (killed, failed) = (
            std::process::ExitStatus::from_raw(2),
            std::process::ExitStatus::from_raw(1 << 8),
        );
        assert_eq!(
            nft_error("", killed).to_string(),
            "nft: nft failed (signal: 2 (SIGINT))"
        );
        assert_eq!(
            nft_error("\nError: No such file or directory\nlist table x\n", failed).to_string(),
            "nft: Error: No such file or directory"
        );
        let e = nft_error("Error: Operation not permitted", failed);
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn parses_nft_json_elements_and_rules() {
        let v: Value = serde_json::from_str(r#"{"nftables": [
          {"map": {"family": "ip", "name": "dnat_ext", "table": "smolvm_nat", "type": "inet_service",
                   "map": "ipv4_addr . inet_service", "elem": [[2200, {"concat": ["172.16.0.2", 22]}]]}},
          {"set": {"family": "ip", "name": "snat_return", "table": "smolvm_nat",
                   "elem": [{"concat": ["172.16.0.2", 22]}]}},
          {"set": {"family": "inet", "name": "allowed_taps", "table": "smolvm_filter", "elem": ["tap2"]}},
          {"rule": {"family": "ip", "table": "smolvm_nat", "chain": "output", "handle": 8,
                    "comment": "smolvm:vm-a:local:8080:80", "expr": []}},
          {"rule": {"family": "ip", "table": "smolvm_nat", "chain": "output", "handle": 9, "expr": []}}
        ]}"#).unwrap();
        let mut s = NftState::default();
        parse_into(&v, &mut s);
        let d: Vec<String> = s
            .elements
            .iter()
            .map(|e| e.deletion().unwrap().command().to_string())
            .collect();
        assert_eq!(
            d,
            [
                "delete element ip smolvm_nat dnat_ext { 2200 }",
                "delete element ip smolvm_nat snat_return { 172.16.0.2 . 22 }",
                "delete element inet smolvm_filter allowed_taps { \"tap2\" }",
            ]
        );
        assert_eq!(s.elements[0].target.as_deref(), Some("172.16.0.2"));
        assert_eq!(s.elements[1].target, None);
        assert_eq!(s.rules.len(), 1);
        assert_eq!(
            s.rules[0].deletion().unwrap().command(),
            "delete rule ip smolvm_nat output handle 8"
        );
        // Never a shared rule, a foreign table or a set of another name.
        let mut global = s.rules[0].clone();
        global.comment = "smolvm:global:forward:established".into();
        assert_eq!(global.deletion(), None);
        let mut foreign = s.elements[0].clone();
        foreign.table = "filter".into();
        assert_eq!(foreign.deletion(), None);
        assert!(apply(&["delete table ip smolvm_nat".into()]).is_err());
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn setup_adds_missing_rules_once_and_this_vms_elements() {
        let vm = VmNat {
            tap: "tap2",
            guest_ip: "172.16.0.2",
            ssh_host_port: Some(2200),
        };
        let fresh = setup_commands(&NftState::default(), "eth0", &vm);
        assert_eq!(
            fresh.iter().filter(|c| c.starts_with("add rule")).count(),
            8
        );
        assert!(fresh.contains(&"add rule ip smolvm_nat postrouting oifname \"eth0\" counter masquerade comment \"smolvm:global:nat:masquerade:eth0\"".to_string()));
        assert!(fresh.contains(
            &"add element ip smolvm_nat dnat_local { 2200 : 172.16.0.2 . 22 }".to_string()
        ));
        assert!(!fresh
            .iter()
            .any(|c| c.starts_with("add element ip smolvm_nat dnat_ext")));
        let have = NftState {
            elements: vec![],
            rules: vec![Rule {
                family: "inet".into(),
                table: "smolvm_filter".into(),
                chain: "forward".into(),
                handle: 3,
                comment: "smolvm:global:forward:established".into(),
            }],
        };
        let again = setup_commands(
            &have,
            "eth0",
            &VmNat {
                ssh_host_port: None,
                ..vm
            },
        );
        assert_eq!(
            again.iter().filter(|c| c.starts_with("add rule")).count(),
            7
        );
        assert!(!again
            .iter()
            .any(|c| c.starts_with("add element ip smolvm_nat dnat_local")));
    }
}
