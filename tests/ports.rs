//! A port forward a host service shadows (issue 22, item 8), as root with a real QEMU
//! guest (TCG here) in a network namespace of its own: `port expose` takes 127.0.0.1:HOST
//! with nftables rules, so a host process can still bind that port later — and its local
//! clients then reach the guest. `port list` (human and `--json`) and `doctor` say so and
//! name the process; `port expose --help` explains the risk.

mod support;

use std::process::Command;

use support::cleanup::{wait_for, NetNs};
use support::images::{self, Init};
use support::sandbox::{create_args, Sandboxes};
use support::{json, stderr, stdout, Home, Reap};

/// A host service in the namespace: listening on `addr:port`, greeting each client.
fn host_service(ns: &NetNs, addr: &str, port: u16) -> Reap {
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c"])
        .arg(
            "import socket, sys\n\
             s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind((sys.argv[1], int(sys.argv[2])))\n\
             s.listen()\n\
             while True:\n    c, _ = s.accept(); c.sendall(b'HOST-SERVICE\\n'); c.close()\n",
        )
        .arg(addr)
        .arg(port.to_string())
        .spawn()
        .unwrap();
    let pattern = format!(":{port} ");
    wait_for(
        || ns.sh("ss -Hltn").lines().any(|l| l.contains(&pattern)),
        "the host service to listen",
    );
    Reap(child)
}

fn ports_check(v: &serde_json::Value) -> serde_json::Value {
    v["data"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ports")
        .cloned()
        .unwrap_or_else(|| panic!("no ports check: {v}"))
}

#[test]
fn a_forward_a_host_service_binds_later_is_shown_as_shadowed() {
    require_root!();
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let e = Sandboxes::new();
    let id = "vm-port";
    let (k, r) = (kernel.to_str().unwrap(), rootfs.to_str().unwrap());
    e.ok(&create_args(k, r, id, "qemu", &["--start", "--json"]));
    let v = json(&e.ok(&["sandbox", "port", "expose", id, "18022:22", "--json"]));
    assert_eq!(v["data"]["shadowed"], false, "{v}");
    assert!(e
        .first_line("127.0.0.1", 18022)
        .starts_with("SSH-2.0-smolvm-test"));
    let listed = json(&e.ok(&["sandbox", "port", "list", id, "--json"]));
    assert_eq!(listed["data"]["forwards"][0]["shadowed"], false, "{listed}");
    // SmolVM's row key: how the forward is made.
    assert_eq!(
        listed["data"]["forwards"][0]["transport"], "nftables",
        "{listed}"
    );
    assert_eq!(
        ports_check(&json(&e.run(&["doctor", "--json"])))["status"],
        "pass"
    );

    // A host service binds the forwarded port afterwards: it starts without an error, and
    // its local clients reach the guest instead.
    let service = host_service(&e.ns, "127.0.0.1", 18022);
    let pid = service.0.id();
    assert!(
        e.first_line("127.0.0.1", 18022)
            .starts_with("SSH-2.0-smolvm-test"),
        "the forward wins over the host service"
    );
    let by = format!("python3 (pid {pid})");

    let listed = json(&e.ok(&["sandbox", "port", "list", id, "--json"]));
    let f = &listed["data"]["forwards"][0];
    assert_eq!(
        (
            f["host_port"].as_u64(),
            f["shadowed"].as_bool(),
            f["shadowed_by"].as_str()
        ),
        (Some(18022), Some(true), Some(by.as_str())),
        "{listed}"
    );
    let out = e.ok(&["sandbox", "port", "list", id]);
    assert_eq!(
        stdout(&out).trim(),
        format!("127.0.0.1:18022 -> {id}:22  [shadowed by {by}]")
    );
    assert!(
        stderr(&out).contains(&format!(
            "shadowed: {by} listens on 127.0.0.1:18022 too, and its local clients reach sandbox '{id}' instead"
        )),
        "{}",
        stderr(&out)
    );
    let doctor = json(&e.run(&["doctor", "--json"]));
    let c = ports_check(&doctor);
    assert_eq!(c["status"], "warn", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("127.0.0.1:18022 -> {id}:22 is shadowed: {by}")),
        "{c}"
    );
    assert!(c["fix"].as_str().unwrap().contains("port close"), "{c}");
    let human = stdout(&e.run(&["doctor"]));
    assert!(human.contains("18022"), "{human}");
    drop(service);

    // Gone again: not shadowed.
    wait_for(
        || !e.ns.sh("ss -Hltn").contains(":18022 "),
        "the host service to stop",
    );
    let listed = json(&e.ok(&["sandbox", "port", "list", id, "--json"]));
    assert_eq!(listed["data"]["forwards"][0]["shadowed"], false, "{listed}");

    // Every address that takes 127.0.0.1's connections shadows it; another loopback
    // address does not.
    for (addr, shadowed) in [("0.0.0.0", true), ("::", true), ("127.0.0.2", false)] {
        let service = host_service(&e.ns, addr, 18022);
        let listed = json(&e.ok(&["sandbox", "port", "list", id, "--json"]));
        assert_eq!(
            listed["data"]["forwards"][0]["shadowed"], shadowed,
            "{addr}: {listed}"
        );
        drop(service);
        wait_for(
            || !e.ns.sh("ss -Hltn").contains(":18022 "),
            "the host service to stop",
        );
    }
}

#[test]
fn port_expose_help_explains_the_risk() {
    let h = Home::new();
    let out = h.run(&["sandbox", "port", "expose", "--help"]);
    let text = stdout(&out);
    for needle in [
        "not by binding",
        "binds the same port later",
        "credentials included",
        "reach the sandbox instead",
        "shown as shadowed",
        "smolvm doctor",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
}
