//! Bridge networking (`sandbox create --network bridge --bridge NAME --guest-ip A/P`), end
//! to end in a network namespace of its own: a Linux bridge whose other member is a veth
//! leading into a second namespace (the "LAN" peer, with an address); a real QEMU (TCG)
//! guest on the bridge answers the peer; the TAP is SmolVM's (`svmb` + 8 hex, alias
//! `smolvm-bridge:<id>`, enslaved, no nftables); teardown removes only a TAP whose alias
//! names the sandbox; and the real SmolVM 0.0.36 lists, inspects and deletes a bridged
//! sandbox smolvm created.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::cleanup::NetNs;
use support::images::{self, Init};
use support::{json, Home};

/// A namespace with `br0` (a bridge ready for `bridge check`: up, no address, a veth
/// member) whose veth peer sits in `peer` with 10.77.0.1/24.
fn lab() -> (NetNs, NetNs) {
    let (ns, peer) = (NetNs::new(), NetNs::new());
    ns.sh(&format!(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
         ip link set lo up
         ip link add br0 type bridge
         ip link add vb0 type veth peer name vp0
         ip link set vp0 netns {p}
         ip link set vb0 master br0 && ip link set vb0 up && ip link set br0 up",
        p = peer.name
    ));
    peer.sh("ip link set lo up; ip addr add 10.77.0.1/24 dev vp0; ip link set vp0 up");
    (ns, peer)
}

/// `ip -j -d link show dev NAME` in `ns`, or None when there is no such link.
fn link(ns: &NetNs, name: &str) -> Option<serde_json::Value> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ip", "-j", "-d", "link", "show", "dev", name,
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.get(0).cloned()
}

use support::smolvm_py::in_netns as smolvm_py;

fn create(
    ns: &NetNs,
    h: &Home,
    kernel: &str,
    rootfs: &str,
    id: &str,
    extra: &[&str],
) -> std::process::Output {
    let more = [&["--json"][..], extra].concat();
    let args = support::sandbox::create_args(kernel, rootfs, id, "qemu", &more);
    ns.cmd(h, "smolvm")
        .args(&args)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap()
}

/// The first line the guest's port 22 sends, read from the peer ("" when it cannot).
fn banner_from(peer: &NetNs, ip: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &peer.name, "timeout", "5", "bash", "-c"])
        .arg(format!("exec 3<>/dev/tcp/{ip}/22 && head -n1 <&3"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_bridged_guest_is_a_machine_on_the_bridge_and_only_its_own_tap_is_removed() {
    require_root!("(network namespaces, TAPs)");
    let ((ns, peer), h) = (lab(), Home::new());
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let (k, r) = (kernel.to_str().unwrap(), rootfs.to_str().unwrap());
    // A TAP of another sandbox on the same bridge: never touched.
    ns.sh("ip tuntap add svmbdeadbeef mode tap
           ip link set svmbdeadbeef alias smolvm-bridge:vm-other master br0");

    let br = [
        "--network",
        "bridge",
        "--bridge",
        "br0",
        "--guest-ip",
        "10.77.0.20/24",
    ];
    let mut flags = br.to_vec();
    flags.push("--start");
    let out = create(&ns, &h, k, r, "vm-br", &flags);
    support::assert_code(&out, 0);
    let v = json(&out);
    assert_eq!(v["data"]["ip"], "10.77.0.20", "{v}");
    assert_eq!(v["data"]["warnings"], serde_json::json!([]), "{v}");
    assert_eq!(v["data"]["vm"]["name"], "vm-br", "{v}");

    // The TAP: SmolVM's name, alias and MAC, enslaved to br0, no address; nothing of it in
    // nftables; SmolVM's rows.
    let list = ns.sh("ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//'");
    let tap = list
        .lines()
        .find(|l| l.starts_with("svmb") && *l != "svmbdeadbeef")
        .expect("a svmb TAP")
        .to_string();
    assert!(
        tap.len() == 12 && tap[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{tap}"
    );
    let l = link(&ns, &tap).unwrap();
    assert_eq!(l["ifalias"], "smolvm-bridge:vm-br", "{l}");
    assert_eq!(l["master"], "br0", "{l}");
    assert!(ns
        .sh(&format!("ip -o addr show dev {tap}"))
        .trim()
        .is_empty());
    assert!(!ns.nft_ruleset().contains(&tap), "{}", ns.nft_ruleset());
    let (code, info) = smolvm_py(&ns, &h, &["sandbox", "info", "vm-br", "--json"]);
    assert_eq!(code, 0, "SmolVM's info: {info}");
    let db = rusqlite::Connection::open(h.data.join("smolvm.db")).unwrap();
    let (alloc_tap, mode, bridge): (String, String, String) = db
        .query_row(
            "SELECT tap_device, mode, bridge_name FROM tap_allocations WHERE vm_id = 'vm-br'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (alloc_tap.as_str(), mode.as_str(), bridge.as_str()),
        (tap.as_str(), "bridge", "br0")
    );
    let network: String = db
        .query_row("SELECT network FROM vms WHERE id = 'vm-br'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let network: serde_json::Value = serde_json::from_str(&network).unwrap();
    assert_eq!(network["mode"], "bridge");
    assert_eq!(network["bridge"], "br0");
    assert!(network["guest_ip"].is_null(), "{network}");
    // Every face shows the address the start reported (core's one `guest_ip` rule), though
    // SmolVM's network column holds none for a bridged sandbox.
    let info = json(&ns.smolvm(&h, &["sandbox", "info", "vm-br", "--json"]));
    assert_eq!(info["data"]["vm"]["ip_address"], "10.77.0.20", "{info}");
    let list = json(&ns.smolvm(&h, &["sandbox", "list", "--json"]));
    assert!(
        list["data"]["vms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "vm-br" && r["ip_address"] == "10.77.0.20"),
        "{list}"
    );
    let mac = format!(
        "02:53:{}",
        (0..4)
            .map(|i| tap[4 + 2 * i..6 + 2 * i].to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":")
    );
    assert_eq!(network["guest_mac"], mac.as_str());
    let pid = v["data"]["pid"].as_i64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(
        cmdline.contains("smolvm.network=guest") && cmdline.contains("ip=10.77.0.20::"),
        "{cmdline}"
    );

    // The peer on the bridge reaches the guest, and the guest answers it (ARP, then TCP).
    let t = Instant::now();
    let mut banner = String::new();
    while t.elapsed() < Duration::from_secs(60) {
        banner = banner_from(&peer, "10.77.0.20");
        if !banner.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(banner, "SSH-2.0-smolvm-test-busybox");
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &peer.name,
            "/bin/busybox",
            "ping",
            "-c1",
            "-W5",
            "10.77.0.20",
        ])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // Delete: its TAP goes, the other sandbox's stays.
    let out = ns.smolvm(&h, &["sandbox", "delete", "vm-br", "--json"]);
    support::assert_code(&out, 0);
    assert!(link(&ns, &tap).is_none(), "{tap} left after delete");
    assert!(link(&ns, "svmbdeadbeef").is_some());

    // A recorded TAP whose alias names someone else by now is not ours: delete leaves it.
    let out = create(&ns, &h, k, r, "vm-b2", &br);
    support::assert_code(&out, 0);
    let tap2: String = db
        .query_row(
            "SELECT tap_device FROM tap_allocations WHERE vm_id = 'vm-b2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(link(&ns, &tap2).unwrap()["ifalias"], "smolvm-bridge:vm-b2");
    ns.sh(&format!(
        "ip link set dev {tap2} alias smolvm-bridge:intruder"
    ));
    let _ = ns.smolvm(&h, &["sandbox", "delete", "vm-b2", "--json"]);
    assert!(
        link(&ns, &tap2).is_some(),
        "a TAP of a foreign alias was deleted"
    );
    // Cleanup takes a `smolvm-bridge:` TAP no row knows for a leftover; one whose alias is
    // not SmolVM's marker at all is someone else's, and stays.
    ns.sh(&format!("ip link set dev {tap2} alias someone-elses-tap"));
    let _ = ns.smolvm(&h, &["cleanup", "--all", "--force", "--json"]);
    assert!(
        link(&ns, &tap2).is_some(),
        "cleanup deleted a TAP of a foreign alias"
    );
}

#[test]
fn smolvm_0_0_36_lists_inspects_and_deletes_a_bridged_sandbox_smolvm_created() {
    require_root!("(network namespaces, TAPs)");
    let ((ns, _peer), h) = (lab(), Home::new());
    let k = h.tmp.path().join("kernel");
    let r = h.tmp.path().join("rootfs.ext4");
    std::fs::write(&k, b"not a kernel").unwrap();
    std::fs::write(&r, vec![0u8; 4096]).unwrap();
    let (k, r) = (k.to_str().unwrap(), r.to_str().unwrap());
    let br = [
        "--network",
        "bridge",
        "--bridge",
        "br0",
        "--guest-ip",
        "10.77.0.21/24",
    ];
    support::assert_code(&create(&ns, &h, k, r, "vm-py", &br), 0);
    let list = ns.sh("ip -o link show | awk -F': ' '{print $2}'");
    let tap = list
        .lines()
        .find(|l| l.starts_with("svmb"))
        .expect("a svmb TAP")
        .to_string();

    // No policy applies to a bridged sandbox.
    let out = ns.smolvm(
        &h,
        &[
            "sandbox",
            "network",
            "set",
            "vm-py",
            "--internet",
            "off",
            "--json",
        ],
    );
    let v = json(&out);
    assert_eq!(v["error"]["code"], "invalid_input", "{v}");
    assert!(
        support::error_message(&v).contains("bridge-attached"),
        "{v}"
    );

    let (code, v) = smolvm_py(&ns, &h, &["sandbox", "list", "--all", "--json"]);
    assert_eq!(code, 0, "{v}");
    let rows = v["data"]["vms"].as_array().cloned().unwrap_or_default();
    assert!(rows.iter().any(|s| s["name"] == "vm-py"), "{v}");
    let (code, v) = smolvm_py(&ns, &h, &["sandbox", "info", "vm-py", "--json"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = smolvm_py(&ns, &h, &["sandbox", "delete", "vm-py", "--json"]);
    assert_eq!(code, 0, "{v}");
    assert!(
        link(&ns, &tap).is_none(),
        "SmolVM left our TAP: it did not prove it its own"
    );
    let out = ns.smolvm(&h, &["sandbox", "list", "--all", "--json"]);
    assert!(!support::stdout(&out).contains("vm-py"));
}

#[test]
fn a_bridged_create_is_refused_clearly_before_anything_is_made() {
    require_root!("(network namespaces)");
    let ((ns, _peer), h) = (lab(), Home::new());
    let k = h.tmp.path().join("kernel");
    let r = h.tmp.path().join("rootfs.ext4");
    std::fs::write(&k, b"not a kernel").unwrap();
    std::fs::write(&r, vec![0u8; 4096]).unwrap();
    let (k, r) = (k.to_str().unwrap(), r.to_str().unwrap());
    ns.sh("ip link add vx0 type veth peer name vx1");
    let cases: [(&[&str], &str, &str); 7] = [
        (
            &["--bridge", "br0"],
            "invalid_input",
            "--bridge requires --network bridge",
        ),
        (
            &["--network", "bridge"],
            "invalid_input",
            "--network bridge requires --bridge",
        ),
        (
            &["--network", "bridge", "--bridge", "br0"],
            "usage_error",
            "--guest-ip",
        ),
        (
            &[
                "--network",
                "bridge",
                "--bridge",
                "nobr",
                "--guest-ip",
                "10.77.0.9/24",
            ],
            "runtime_error",
            "Interface 'nobr' does not exist",
        ),
        (
            &[
                "--network",
                "bridge",
                "--bridge",
                "vx0",
                "--guest-ip",
                "10.77.0.9/24",
            ],
            "runtime_error",
            "not a bridge",
        ),
        (
            &[
                "--network",
                "bridge",
                "--bridge",
                "br0",
                "--guest-ip",
                "10.77.0.9/24",
                "--internet",
                "off",
            ],
            "invalid_input",
            "Network restrictions are not supported with bridge networking",
        ),
        (
            &[
                "--network",
                "bridge",
                "--bridge",
                "br0",
                "--guest-ip",
                "10.77.0.9",
            ],
            "invalid_input",
            "ADDRESS/PREFIX",
        ),
    ];
    for (flags, code, says) in cases {
        let out = create(&ns, &h, k, r, "vm-no", flags);
        let v = json(&out);
        assert_eq!(
            out.status.code(),
            Some(if code == "usage_error" { 2 } else { 1 }),
            "{flags:?}: {v}"
        );
        assert_eq!(v["error"]["code"], code, "{flags:?}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{flags:?}: {v}"
        );
        assert!(!ns.links().contains("svmb"), "{flags:?} made a TAP");
        assert!(
            !support::stdout(&ns.smolvm(&h, &["sandbox", "list", "--all", "--json"]))
                .contains("vm-no")
        );
    }
}

/// smolvm reaches a bridged guest over SSH at its static address when this host can route
/// to the bridge's network (here through the peer, which forwards): `exec` works, the
/// guest (given the peer as its gateway) reaches a server on the peer, and a stop and a
/// start take the same TAP back.
#[test]
fn a_routed_bridged_guest_runs_commands_over_ssh_across_a_restart() {
    require_root!("(network namespaces, TAPs)");
    let ((ns, peer), h) = (lab(), Home::new());
    let veth = format!("r{}", std::process::id() % 100_000);
    let out = Command::new("sh")
        .arg("-ec")
        .arg(format!(
            "ip link add {veth} type veth peer name {veth}p
             ip link set {veth} netns {n} name up0
             ip link set {veth}p netns {p} name up1",
            n = ns.name,
            p = peer.name
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ns.sh("ip addr add 10.88.0.1/24 dev up0 && ip link set up0 up
           ip route add 10.77.0.0/24 via 10.88.0.2");
    peer.sh("ip addr add 10.88.0.2/24 dev up1 && ip link set up1 up
             sysctl -qw net.ipv4.ip_forward=1");
    let hi = h.tmp.path().join("hi.sh");
    std::fs::write(&hi, "#!/bin/sh\necho peer-says-hi\n").unwrap();
    std::fs::set_permissions(&hi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &peer.name,
            "/bin/busybox",
            "nc",
            "-ll",
            "-p",
            "7777",
            "-e",
        ])
        .arg(&hi)
        .spawn()
        .unwrap();
    let (kernel, _) = images::kernel();
    let rootfs = images::debian_rootfs();
    let (k, r) = (kernel.to_str().unwrap(), rootfs.to_str().unwrap());
    let flags = [
        "--network",
        "bridge",
        "--bridge",
        "br0",
        "--guest-ip",
        "10.77.0.30/24",
        "--guest-gateway",
        "10.77.0.1",
        "--memory",
        "512",
        "--start",
    ];
    let out = create(&ns, &h, k, r, "vm-bx", &flags);
    support::assert_code(&out, 0);
    let exec = |script: &str| {
        ns.cmd(&h, "smolvm")
            .args([
                "sandbox",
                "exec",
                "vm-bx",
                "--timeout",
                "120",
                "--",
                "bash",
                "-c",
                script,
            ])
            .timeout(Duration::from_secs(300))
            .output()
            .unwrap()
    };
    let wait_exec = |script: &str| {
        let t = Instant::now();
        loop {
            let out = exec(script);
            if out.status.success() || t.elapsed() > Duration::from_secs(120) {
                return out;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    };
    let out = wait_exec("ip -4 -o addr show dev eth0; ip route show default");
    support::assert_code(&out, 0);
    let text = support::stdout(&out);
    assert!(
        text.contains("10.77.0.30/24") && text.contains("via 10.77.0.1"),
        "{text}"
    );
    let out = exec("timeout 5 bash -c 'exec 3<>/dev/tcp/10.77.0.1/7777; head -n1 <&3'");
    assert_eq!(
        support::stdout(&out).trim(),
        "peer-says-hi",
        "{}",
        support::stderr(&out)
    );
    // Nor a port forward (SmolVM's refusal).
    let out = ns.smolvm(
        &h,
        &["sandbox", "port", "expose", "vm-bx", "8080", "--json"],
    );
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert!(
        support::error_message(&v).contains("not supported with bridge mode"),
        "{v}"
    );
    let tap: String = rusqlite::Connection::open(h.data.join("smolvm.db"))
        .unwrap()
        .query_row(
            "SELECT tap_device FROM tap_allocations WHERE vm_id = 'vm-bx'",
            [],
            |r| r.get(0),
        )
        .unwrap();

    let out = ns.smolvm(
        &h,
        &["sandbox", "stop", "vm-bx", "--timeout", "10", "--json"],
    );
    support::assert_code(&out, 0);
    let out = ns
        .cmd(&h, "smolvm")
        .args(["sandbox", "start", "vm-bx", "--json"])
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    support::assert_code(&out, 0);
    let l = link(&ns, &tap).expect("the same TAP after a restart");
    assert_eq!(
        (l["ifalias"].clone(), l["master"].clone()),
        ("smolvm-bridge:vm-bx".into(), "br0".into())
    );
    let out = wait_exec("cat /etc/debian_version");
    support::assert_code(&out, 0);
    assert!(support::stdout(&out).trim().starts_with("12"));

    let out = ns.smolvm(
        &h,
        &["sandbox", "delete", "vm-bx", "--timeout", "5", "--json"],
    );
    support::assert_code(&out, 0);
    assert!(link(&ns, &tap).is_none());
    let _ = server.kill();
    let _ = server.wait();
}

/// A bridged sandbox comes back from its snapshots (a disk one: a cold boot; a full one:
/// its state loaded) on its bridge, through a TAP of SmolVM's shape enslaved to it again.
#[test]
fn a_bridged_sandbox_is_restored_from_its_snapshots_on_its_bridge() {
    require_root!("(network namespaces, TAPs)");
    let ((ns, _peer), h) = (lab(), Home::new());
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let (k, r) = (kernel.to_str().unwrap(), rootfs.to_str().unwrap());
    let flags = [
        "--network",
        "bridge",
        "--bridge",
        "br0",
        "--guest-ip",
        "10.77.0.40/24",
        "--start",
    ];
    support::assert_code(&create(&ns, &h, k, r, "vm-bs", &flags), 0);
    let run = |args: &[&str]| {
        ns.cmd(&h, "smolvm")
            .args(args)
            .timeout(Duration::from_secs(300))
            .output()
            .unwrap()
    };
    let bridged_tap = || {
        ns.sh("ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//'")
            .lines()
            .find(|l| l.starts_with("svmb"))
            .map(str::to_string)
    };
    for kind in ["disk", "full"] {
        let snap = format!("snap-bs-{kind}");
        let out = run(&[
            "sandbox",
            "snapshot",
            "create",
            "vm-bs",
            "--snapshot-id",
            &snap,
            "--snapshot-type",
            kind,
            // This busybox guest runs no sshd to sync its file systems through.
            "--flush-policy",
            "skip",
            "--resume-source",
            "--json",
        ]);
        support::assert_code(&out, 0);
        support::assert_code(
            &run(&["sandbox", "delete", "vm-bs", "--force", "--json"]),
            0,
        );
        assert_eq!(bridged_tap(), None);

        let out = run(&["sandbox", "snapshot", "restore", &snap, "--json"]);
        support::assert_code(&out, 0);
        let v = json(&out);
        assert_eq!(v["data"]["vm"]["name"], "vm-bs", "{v}");
        let tap = bridged_tap().expect("the restored sandbox's TAP");
        let l = link(&ns, &tap).unwrap();
        assert_eq!(l["ifalias"], "smolvm-bridge:vm-bs", "{kind}: {l}");
        assert_eq!(l["master"], "br0", "{kind}: {l}");
        let info = json(&run(&["sandbox", "info", "vm-bs", "--json"]));
        assert_eq!(info["data"]["vm"]["network_mode"], "bridge", "{info}");
        assert_eq!(info["data"]["vm"]["bridge"], "br0", "{info}");
        support::assert_code(&run(&["sandbox", "resume", "vm-bs", "--json"]), 0);
    }
    support::assert_code(
        &run(&["sandbox", "delete", "vm-bs", "--force", "--json"]),
        0,
    );
    assert_eq!(bridged_tap(), None);
}
