//! `smolvm bridge check BRIDGE` against the real SmolVM 0.0.36 (its venv from PyPI), both
//! run in one network namespace through every state a bridge goes through on the way to
//! ready: the JSON `data` (and exit code) must be SmolVM's, reason for reason.

mod support;

use support::cleanup::NetNs;
use support::{json, Home};

/// SmolVM's `bridge check NAME --json` in `ns`: (exit code, envelope).
fn smolvm_py(ns: &NetNs, h: &Home, name: &str) -> (i32, serde_json::Value) {
    support::smolvm_py::in_netns(ns, h, &["bridge", "check", name, "--json"])
}

fn ours(ns: &NetNs, h: &Home, name: &str) -> (i32, serde_json::Value) {
    let out = ns.smolvm(h, &["bridge", "check", name, "--json"]);
    (out.status.code().unwrap_or(-1), json(&out))
}

#[test]
fn bridge_check_says_what_smolvm_says_at_every_step() {
    require_root!("(network namespaces)");
    let (ns, h) = (NetNs::new(), Home::new());
    ns.sh("ip link set lo up
           ip link add veth0 type veth peer name veth1");
    let steps: [(&str, &str, &str); 9] = [
        ("missing", "", "br0"),
        ("invalid name", "", "bad/name"),
        ("loopback", "", "lo"),
        ("veth", "", "veth0"),
        (
            "down",
            "ip link add br0 type bridge
             sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
            "br0",
        ),
        ("no member", "ip link set br0 up", "br0"),
        (
            "only a smolvm tap",
            "ip tuntap add svmb0000abcd mode tap
             ip link set svmb0000abcd alias smolvm-bridge:vm-x master br0",
            "br0",
        ),
        (
            "an address",
            "ip link set veth0 master br0 && ip link set veth0 up
             ip addr add 10.9.0.1/24 dev br0",
            "br0",
        ),
        ("ready", "ip addr del 10.9.0.1/24 dev br0", "br0"),
    ];
    for (label, setup, name) in steps {
        if !setup.is_empty() {
            ns.sh(setup);
        }
        let (py_code, py) = smolvm_py(&ns, &h, name);
        let (code, v) = ours(&ns, &h, name);
        assert_eq!(code, py_code, "{label}: {v}\nSmolVM: {py}");
        assert_eq!(v["data"], py["data"], "{label}");
        assert_eq!(v["command"], "bridge.check", "{label}");
        assert_eq!(v["ok"], py["ok"], "{label}");
        assert_eq!(v["error"], py["error"], "{label}");
    }
    let out = ns.smolvm(&h, &["bridge", "check", "br0"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        support::stdout(&out),
        "Bridge 'br0' is ready for bridged networking.\n"
    );
    let out = ns.smolvm(&h, &["bridge", "check", "lo"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        support::stdout(&out),
        "Bridge 'lo' is not ready: 'lo' is a loopback, not a bridge; create a Linux bridge, then run 'smolvm bridge check lo'.\n"
    );
}
