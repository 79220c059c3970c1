//! `smolvm openclaw open-ui` end to end, as root with a real QEMU guest (TCG here) in a
//! network namespace of its own. The guest's OpenClaw is a fake (the real one is an npm
//! package of hundreds of MiB): an `openclaw` script answering `--version`, `gateway run`
//! (busybox's httpd on the guest's 127.0.0.1:18789 only) and `dashboard --json`, and a
//! `curl` for SmolVM's readiness check (bash's `/dev/tcp`: busybox's wget crashes). Everything on the host side is real: the SSH
//! forward, its record, `port list`/`port close`, `stop` and `delete` ending it.
//!
//! The attacker's view: the guest decides what the dashboard link says (a link elsewhere
//! is refused before any port opens), and the forward listens on the host's 127.0.0.1
//! only (the guest cannot reach it at the gateway address).

mod support;

use std::process::Command;

use support::images;
use support::sandbox::{create_args, Sandboxes};
use support::{json, stdout};

const ID: &str = "vm-claw";

/// The fake OpenClaw of the name (and its curl): `gateway run` serves a page on the
/// guest's loopback; `dashboard --json` prints the link (one pointing elsewhere while
/// `/tmp/evil` exists).
const FAKE: &str = r#"
set -e
mkdir -p /srv/ui /usr/local/bin
echo FAKE-OPENCLAW-UI > /srv/ui/index.html
cat > /usr/local/bin/openclaw <<'EOF'
#!/bin/sh
case "$1" in
--version) echo "OpenClaw 2026.9.1 (fake)" ;;
gateway) exec /usr/local/bin/busybox httpd -f -p 127.0.0.1:18789 -h /srv/ui ;;
dashboard)
    if [ -e /tmp/evil ]; then
        echo '{"ok":true,"browserUrl":"http://evil.example:18789/#token=t0k"}'
    else
        echo '{"ok":true,"browserUrl":"http://127.0.0.1:18789/#token=t0k","httpUrl":"http://127.0.0.1:18789/?token=t0k","wsUrl":"ws://127.0.0.1:18789/ws"}'
    fi ;;
*) exit 2 ;;
esac
EOF
cat > /usr/local/bin/curl <<'EOF'
#!/bin/bash
for a; do url=$a; done
[ "$url" = http://127.0.0.1:18789/ ] || exit 7
exec 3<>/dev/tcp/127.0.0.1/18789 || exit 7
printf 'GET / HTTP/1.0\r\n\r\n' >&3
head -n1 <&3 | grep -q '^HTTP/1.[01] 200'
EOF
chmod 755 /usr/local/bin/openclaw /usr/local/bin/curl /usr/local/bin/busybox
sync
"#;

fn boot(e: &Sandboxes) {
    let (k, _) = images::kernel();
    let r = images::debian_rootfs();
    e.ok(&create_args(
        k.to_str().unwrap(),
        r.to_str().unwrap(),
        ID,
        "qemu",
        &["--memory", "512", "--start", "--json"],
    ));
    e.ok(&[
        "sandbox",
        "file",
        "upload",
        ID,
        "/bin/busybox",
        "/usr/local/bin/busybox",
        "--json",
    ]);
    e.exec(ID, FAKE);
}

/// What a host client in the namespace gets for `GET /` at `127.0.0.1:port` ("" when
/// nothing answers).
fn fetch(e: &Sandboxes, port: u16) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &e.ns.name, "curl", "-s", "-m", "20"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    stdout(&out)
}

/// The recorded SSH forward processes of the sandbox.
fn recorded_pids(e: &Sandboxes) -> Vec<i32> {
    let p = e.h.data.join("tunnels").join(format!("{ID}.json"));
    let Ok(text) = std::fs::read_to_string(p) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["pid"].as_i64().unwrap() as i32)
        .collect()
}

/// The listening sockets on `port` in the namespace, as `ss` prints their local address.
fn listeners(e: &Sandboxes, port: u16) -> Vec<String> {
    e.ns.sh("ss -Hltn")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .filter(|a| a.ends_with(&format!(":{port}")))
        .collect()
}

/// `open-ui --no-browser --json`: its data.
fn open_ui(e: &Sandboxes) -> serde_json::Value {
    let args = ["openclaw", "open-ui", ID, "--no-browser", "--json"];
    let out = e.run(&args);
    if out.status.code() != Some(0) {
        let guest = e.exec(
            ID,
            "ls -l /usr/local/bin; cat /tmp/smolvm-openclaw-gateway.log; echo PATH=$PATH; (/usr/local/bin/curl http://127.0.0.1:18789/ && echo READY) 2>&1",
        );
        panic!("{args:?}: {}\nguest: {guest}", stdout(&out));
    }
    json(&out)["data"].clone()
}

fn gone(e: &Sandboxes, pid: i32, port: u16) {
    assert!(
        !support::alive(pid as u32),
        "the forward process {pid} is still there"
    );
    assert!(listeners(e, port).is_empty(), "{:?}", listeners(e, port));
    assert_eq!(fetch(e, port), "", "port {port} still answers");
}

#[test]
fn open_ui_forwards_the_guests_loopback_dashboard_and_port_close_stop_and_delete_end_it() {
    require_root!();
    let e = Sandboxes::new();
    boot(&e);

    let d = open_ui(&e);
    let hp = d["host_port"].as_u64().unwrap() as u16;
    assert_eq!(d["sandbox"], ID, "{d}");
    assert_eq!(d["guest_port"], 18789, "{d}");
    assert_eq!(d["opened"], false, "{d}");
    assert_eq!(
        d["browser_url"],
        format!("http://127.0.0.1:{hp}/#token=t0k"),
        "{d}"
    );
    assert_eq!(d["url"], format!("http://127.0.0.1:{hp}/"), "{d}");
    assert_eq!(d["ws_url"], format!("ws://127.0.0.1:{hp}/ws"), "{d}");
    assert_eq!(
        d["close_command"],
        format!("smolvm sandbox port close {ID} {hp}:18789"),
        "{d}"
    );
    // The page the guest serves on its own loopback only, from the host.
    assert_eq!(fetch(&e, hp).trim(), "FAKE-OPENCLAW-UI");
    // Bound on the host's 127.0.0.1, nowhere else.
    assert_eq!(listeners(&e, hp), [format!("127.0.0.1:{hp}")]);
    let pids = recorded_pids(&e);
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(support::alive(pids[0] as u32));

    // The guest cannot reach the forward at the host's side of its network.
    // (The same probe reaches the guest's own gateway: it can tell.)
    let probe = |addr: &str, port: u16| {
        e.exec(
            ID,
            &format!(
                "if timeout 5 bash -c 'exec 3<>/dev/tcp/{addr}/{port}' 2>/dev/null; then echo OPEN; else echo CLOSED; fi"
            ),
        )
    };
    assert_eq!(probe("127.0.0.1", 18789), "OPEN");
    assert_eq!(probe("172.16.0.1", hp), "CLOSED");

    // Listed as SmolVM lists an SSH forward.
    let l = e.ok_json(&["sandbox", "port", "list", ID, "--json"]);
    let f = &l["data"]["forwards"];
    assert_eq!(f.as_array().map(Vec::len), Some(1), "{l}");
    assert_eq!(f[0]["host_port"], hp, "{l}");
    assert_eq!(f[0]["guest_port"], 18789, "{l}");
    assert_eq!(f[0]["transport"], "ssh_tunnel", "{l}");

    // Again, for a person: the same forward, SmolVM's lines.
    let out = e.ok(&["openclaw", "open-ui", ID, "--no-browser"]);
    assert_eq!(
        stdout(&out),
        format!(
            "Open this one-time OpenClaw link within 10 minutes:\nhttp://127.0.0.1:{hp}/#token=t0k\nStop sharing it with: smolvm sandbox port close {ID} {hp}:18789\n"
        )
    );
    assert_eq!(recorded_pids(&e), pids);

    // A link the guest points elsewhere is refused before any port opens.
    e.exec(ID, "touch /tmp/evil");
    e.fails(
        &["openclaw", "open-ui", ID, "--host-port", "40999", "--json"],
        1,
        "unexpected dashboard address",
    );
    assert!(listeners(&e, 40999).is_empty());
    assert_eq!(recorded_pids(&e), pids);
    e.exec(ID, "rm /tmp/evil");

    // port close ends it.
    e.ok(&[
        "sandbox",
        "port",
        "close",
        ID,
        &format!("{hp}:18789"),
        "--json",
    ]);
    gone(&e, pids[0], hp);
    assert!(recorded_pids(&e).is_empty());
    let l = e.ok_json(&["sandbox", "port", "list", ID, "--json"]);
    assert_eq!(l["data"]["forwards"], serde_json::json!([]), "{l}");

    // stop ends it (a chosen host port this time).
    let d = open_ui_on(&e, 40123);
    assert_eq!(d["host_port"], 40123, "{d}");
    assert_eq!(fetch(&e, 40123).trim(), "FAKE-OPENCLAW-UI");
    let pid = recorded_pids(&e)[0];
    e.ok(&["sandbox", "stop", ID, "--json"]);
    gone(&e, pid, 40123);
    assert!(recorded_pids(&e).is_empty());

    // delete ends it.
    e.ok(&["sandbox", "start", ID, "--json"]);
    let d = open_ui(&e);
    let hp = d["host_port"].as_u64().unwrap() as u16;
    assert_eq!(fetch(&e, hp).trim(), "FAKE-OPENCLAW-UI");
    let pid = recorded_pids(&e)[0];
    e.ok(&["sandbox", "delete", ID, "--force", "--json"]);
    gone(&e, pid, hp);
    assert!(!e.h.data.join("tunnels").join(format!("{ID}.json")).exists());

    // cleanup ends the forward of a sandbox whose row went behind smolvm's back (SmolVM's
    // own delete, say).
    boot(&e);
    let d = open_ui(&e);
    let hp = d["host_port"].as_u64().unwrap() as u16;
    let pid = recorded_pids(&e)[0];
    let c = rusqlite::Connection::open(e.h.data.join("smolvm.db")).unwrap();
    c.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; DELETE FROM vms WHERE id = '{ID}'"
    ))
    .unwrap();
    let dry = e.ok_json(&["cleanup", "--dry-run", "--json"]);
    assert!(
        dry.to_string()
            .contains(&format!("{pid} ssh (127.0.0.1:{hp} -> {ID}:18789)")),
        "{dry}"
    );
    assert!(support::alive(pid as u32));
    e.ok(&["cleanup", "--force", "--json"]);
    gone(&e, pid, hp);
    assert!(!e.h.data.join("tunnels").join(format!("{ID}.json")).exists());
}

fn open_ui_on(e: &Sandboxes, port: u16) -> serde_json::Value {
    let p = port.to_string();
    let v = json(&e.ok(&[
        "openclaw",
        "open-ui",
        ID,
        "--host-port",
        &p,
        "--no-browser",
        "--json",
    ]));
    v["data"].clone()
}
