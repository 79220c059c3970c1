//! `smolvm bridge check BRIDGE`: is a Linux bridge ready for bridged networking? Read-only,
//! with SmolVM 0.0.36's rules and reasons (`NetworkManager.inspect_bridge`), in order:
//! the interface exists (a name that cannot be an interface name does not), it is a
//! bridge, it is up, it has a member that is not one of SmolVM's bridge TAPs (`svmb…`
//! aliased `smolvm-bridge:<id>`: the bridge must reach a VLAN or a physical link), and
//! neither it nor a member gives this machine an address on that network (IPv6
//! link-local ones included): a guest on the bridge then has no path to the host's
//! services through it.

use super::error::{Error, Result};
use crate::sys::net::{self, Link, TapShape};

/// What `bridge check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeInspection {
    pub bridge: String,
    pub ok: bool,
    /// Why it is not ready (and what to do), when it is not.
    pub reason: Option<String>,
}

/// A Linux interface name as SmolVM accepts one for `--bridge`: 1 to 15 bytes of
/// `[A-Za-z0-9_.-]`.
pub fn valid_bridge_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Inspect `name` in this network namespace.
pub async fn inspect(name: &str) -> Result<BridgeInspection> {
    let links = if valid_bridge_name(name) {
        net::links()
            .await
            .map_err(|e| Error::runtime(format!("cannot read network links: {e}")))?
    } else {
        Vec::new()
    };
    Ok(judge(name, &links))
}

/// The rules, on the links netlink reported.
pub fn judge(name: &str, links: &[Link]) -> BridgeInspection {
    let not = |reason: String| BridgeInspection {
        bridge: name.to_string(),
        ok: false,
        reason: Some(reason),
    };
    let again = format!("then run 'smolvm bridge check {name}'");
    let Some(bridge) = links.iter().find(|l| l.name == name) else {
        return not(format!(
            "Interface '{name}' does not exist; create it, {again}."
        ));
    };
    if bridge.kind.as_deref() != Some("bridge") {
        let shown = bridge
            .kind
            .as_deref()
            .or(bridge.link_type.as_deref())
            .unwrap_or("network interface");
        return not(format!(
            "'{name}' is a {shown}, not a bridge; create a Linux bridge, {again}."
        ));
    }
    if !bridge.up {
        return not(format!(
            "Bridge '{name}' is not active; run 'sudo ip link set {name} up', {again}."
        ));
    }
    let members: Vec<&Link> = links
        .iter()
        .filter(|l| l.controller == Some(bridge.index))
        .collect();
    let external = members
        .iter()
        .any(|l| !matches!(l.smolvm_tap(), Some(TapShape::Bridge(_))));
    if !external {
        return not(format!(
            "Bridge '{name}' is not connected to another interface; connect its VLAN or physical interface, {again}."
        ));
    }
    for iface in std::iter::once(bridge).chain(members.iter().copied()) {
        if !iface.addrs.is_empty() {
            let list: Vec<String> = iface.addrs.iter().map(|(a, _)| a.to_string()).collect();
            return not(format!(
                "Interface '{}' gives this machine the address '{}'; remove it with your host network manager, {again}.",
                iface.name,
                list.join(", ")
            ));
        }
    }
    BridgeInspection {
        bridge: name.to_string(),
        ok: true,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_smolvm_would_refuse_are_not_looked_up() {
        for bad in ["", "bad/name", "waytoolongbridgename0", "br 0", "br\n0"] {
            assert!(!valid_bridge_name(bad), "{bad:?}");
        }
        for good in ["br0", "vmbr-lan.10", "a_b"] {
            assert!(valid_bridge_name(good), "{good:?}");
        }
        let r = judge("bad/name", &[]);
        assert_eq!(
            r.reason.as_deref(),
            Some("Interface 'bad/name' does not exist; create it, then run 'smolvm bridge check bad/name'.")
        );
    }
}
