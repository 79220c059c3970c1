//! Network containment, tested the way an attacker would try it: root in a real Debian
//! guest (QEMU, TCG here) over smolvm's real TAPs and nftables, as root, in network
//! namespaces of the test's own — one for the host, one for the LAN (a veth between them,
//! the host's default route through it, servers at 10.254.0.2 and 10.254.0.3, a neighbour
//! at 198.51.100.2 on a public network the host is also attached to, a DNS server of the
//! test's own, and "the internet" beyond the LAN router at 203.0.113.80). Each attack also runs once with the guard table removed, to
//! show the test catches what it claims to (it succeeds there).

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::cleanup::NetNs;
use support::sandbox::{create_args, exec_args};
use support::{images, json, json_exit, stdout, Home, Reap};

/// Servers on the "LAN" and the host: TCP banners, an echo server and a DNS server.
const SERVERS: &str = r#"
import socket, struct, sys, threading
def banner(addr, port, text, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((addr, port)); s.listen(16)
    def loop():
        while True:
            c, _ = s.accept()
            try: c.sendall(text.encode() + b"\n")
            finally: c.close()
    threading.Thread(target=loop, daemon=True).start()
def echo(addr, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(16)
    def serve(c):
        f = c.makefile("rwb", buffering=0)
        for line in f:
            f.write(line)
    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
ZONE = {"allowed.test": "203.0.113.80", "other.test": "10.254.0.3",
        "inside.lan.test": "10.254.0.3", "near.lan.test": "198.51.100.2"}
def dns_answer(q):
    qid, flags, qd = struct.unpack(">HHH", q[:6])
    i, labels = 12, []
    while q[i]:
        labels.append(q[i+1:i+1+q[i]].decode().lower()); i += 1 + q[i]
    name, qtype = ".".join(labels), struct.unpack(">H", q[i+1:i+3])[0]
    question = q[12:i+5]
    ip = ZONE.get(name)
    if ip is None:
        return struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question
    if qtype != 1:
        return struct.pack(">HHHHHH", qid, 0x8180, 1, 0, 0, 0) + question
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + socket.inet_aton(ip)
    return struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + rr
def dns(addr):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, 53))
    def uloop():
        while True:
            q, peer = u.recvfrom(4096)
            u.sendto(dns_answer(q), peer)
    threading.Thread(target=uloop, daemon=True).start()
which = sys.argv[1]
if which == "lan":
    banner("10.254.0.2", 80, "ALLOWED-2"); banner("10.254.0.3", 80, "OTHER-3")
    banner("198.51.100.2", 80, "NEIGHBOUR"); banner("203.0.113.80", 80, "INTERNET")
    echo("10.254.0.3", 81); dns("10.254.0.2")
else:
    banner("127.0.0.1", 7777, "SECRET-LOOPBACK")
    banner("::", 7778, "SECRET-HOST", socket.AF_INET6)
print("ready", flush=True)
threading.Event().wait()
"#;

/// The loopback route trick (kube-proxy's CVE-2020-8558 pattern), as root in the guest:
/// martian loopback allowed, the guest's own 127.* routes gone, 127.0.0.1 routed to the
/// gateway. Prints what the host's 127.0.0.1:7777 said, if anything.
const LOOPBACK_TRICK: &str = r#"
for i in all eth0; do
  echo 1 > /proc/sys/net/ipv4/conf/$i/route_localnet
  echo 1 > /proc/sys/net/ipv4/conf/$i/accept_local
done
ip route del table local 127.0.0.0/8 dev lo 2>/dev/null
ip route del table local 127.0.0.1 dev lo 2>/dev/null
ip route replace 127.0.0.1/32 via 172.16.0.1 dev eth0 onlink
timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/7777; head -n1 <&3' 2>/dev/null
true
"#;

struct Lab {
    h: Home,
    host: NetNs,
    lan: NetNs,
    kernel: PathBuf,
    rootfs: PathBuf,
    _servers: Vec<Reap>,
    extra_env: Vec<(String, String)>,
}

fn start_servers(ns: &NetNs, which: &str) -> Reap {
    let mut c = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", SERVERS, which])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = c.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    use std::io::Read;
    out.read_exact(&mut buf).expect("servers ready");
    assert_eq!(&buf, b"ready\n");
    Reap(c)
}

impl Lab {
    fn new() -> Lab {
        let h = Home::new();
        let (host, lan) = (NetNs::new(), NetNs::new());
        let (kernel, _) = images::kernel();
        let rootfs = images::debian_rootfs();
        let veth = format!("h{}", std::process::id() % 100_000);
        let script = format!(
            "ip link add {veth} type veth peer name {veth}l
             ip link set {veth} netns {h} name h0
             ip link set {veth}l netns {l} name l0",
            h = host.name,
            l = lan.name
        );
        support::run_ok(Command::new("sh").arg("-ec").arg(&script), &script);
        host.sh("ip link set lo up; ip addr add 10.254.0.1/24 dev h0
             ip addr add 198.51.100.1/24 dev h0; ip link set h0 up
             ip route add default via 10.254.0.2 dev h0");
        lan.sh(
            "ip link set lo up; ip addr add 10.254.0.2/24 dev l0; ip addr add 10.254.0.3/24 dev l0
             ip addr add 198.51.100.2/24 dev l0; ip addr add 203.0.113.80/32 dev l0
             ip link set l0 up; ip route add 172.16.0.0/16 via 10.254.0.1",
        );
        let servers = vec![start_servers(&lan, "lan"), start_servers(&host, "host")];
        Lab {
            h,
            host,
            lan,
            kernel,
            rootfs,
            _servers: servers,
            extra_env: vec![("SMOLVM_EGRESS_DNS_UPSTREAM".into(), "10.254.0.2".into())],
        }
    }

    fn smolvm(&self, args: &[&str]) -> Output {
        let mut c = self.host.cmd(&self.h, "smolvm");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c.args(args)
            .timeout(Duration::from_secs(300))
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> serde_json::Value {
        let out = self.smolvm(args);
        support::assert_exit(args, &out, 0);
        json(&out)
    }

    /// A running Debian guest (`sandbox create --start`) with these extra flags.
    fn guest(&self, id: &str, extra: &[&str]) -> serde_json::Value {
        let (k, r) = (self.kernel.to_str().unwrap(), self.rootfs.to_str().unwrap());
        let mut args = create_args(k, r, id, "qemu", &["--memory", "512", "--start", "--json"]);
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    /// Run a bash script as root in the guest; its stdout.
    fn in_guest(&self, id: &str, script: &str) -> String {
        let out = self.smolvm(&exec_args(id, ["bash", "-c"], script));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{script}\n{}",
            support::stderr(&out)
        );
        stdout(&out)
    }

    /// The first line `host:port` sends, read from the guest ("" when it cannot connect).
    fn fetch(&self, id: &str, host: &str, port: u16) -> String {
        self.in_guest(
            id,
            &format!(
                "timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{port}; head -n1 <&3' 2>/dev/null; true"
            ),
        )
        .trim()
        .to_string()
    }

    /// The first line a TCP server sends, read from a namespace ("" when it cannot).
    /// Whether sshd greets at `host:port` from a namespace within three tries a second
    /// apart (a freshly booted TCG guest's sshd can come up after its ready line).
    fn ssh_answers(&self, ns: &NetNs, host: &str, port: u16) -> bool {
        (0..3).any(|i| {
            if i > 0 {
                std::thread::sleep(Duration::from_secs(1));
            }
            self.banner_from(ns, host, port)
                .starts_with("SSH-2.0-OpenSSH")
        })
    }

    fn banner_from(&self, ns: &NetNs, host: &str, port: u16) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name, "timeout", "5", "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{host}/{port} && head -n1 <&3"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn network(&self, id: &str) -> serde_json::Value {
        self.ok(&["sandbox", "network", "show", id, "--json"])["data"].clone()
    }

    fn set(&self, id: &str, flags: &[&str]) -> serde_json::Value {
        let mut args = vec!["sandbox", "network", "set", id];
        args.extend_from_slice(flags);
        args.push("--json");
        self.ok(&args)["data"].clone()
    }

    fn resolver_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.h.data.join("egress-dns.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    /// Remove the guard table by hand: the control case, where each attack must work.
    fn drop_guard(&self) {
        self.host.sh("nft delete table inet smolvm_guard");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.smolvm(&["cleanup", "--all", "--force", "--json"]);
    }
}

/// `sandbox create` (no boot: a stand-in kernel and rootfs) of a QEMU sandbox with these
/// flags; its network and guard are set up all the same.
fn create_only(h: &Home, ns: &NetNs, name: &str, flags: &[&str]) -> Output {
    let k = h.tmp.path().join("kernel");
    let r = h.tmp.path().join("rootfs.ext4");
    if !k.exists() {
        std::fs::write(&k, b"not a kernel").unwrap();
        std::fs::write(&r, vec![0u8; 4096]).unwrap();
    }
    let (k, r) = (k.to_str().unwrap(), r.to_str().unwrap());
    let mut args = create_args(k, r, name, "qemu", &["--json"]);
    args.extend_from_slice(flags);
    ns.smolvm(h, &args)
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_hostile_guest_reaches_no_host_service_and_the_lan_reaches_no_guest() {
    require_root!();
    let lab = Lab::new();
    let v = lab.guest("vm-evil", &[]);
    let port = v["data"]["ssh_host_port"].as_u64().unwrap() as u16;

    // What must keep working: SSH from the host (exec), the 127.0.0.1 SSH forward, a
    // `port expose` forward, and the internet (open mode) through the outbound interface.
    assert!(lab.ssh_answers(&lab.host, "127.0.0.1", port));
    let exposed = lab.ok(&["sandbox", "port", "expose", "vm-evil", "22", "--json"]);
    let hp = exposed["data"]["host_port"].as_u64().unwrap() as u16;
    assert!(lab.ssh_answers(&lab.host, "127.0.0.1", hp));
    assert_eq!(lab.fetch("vm-evil", "203.0.113.80", 80), "INTERNET");

    // 1. The host's loopback services, through the guest's own routes: nothing.
    assert_eq!(lab.in_guest("vm-evil", LOOPBACK_TRICK).trim(), "");
    // 2. Any address of the host itself: the gateway, the outbound address.
    assert_eq!(lab.fetch("vm-evil", "172.16.0.1", 7778), "");
    assert_eq!(lab.fetch("vm-evil", "10.254.0.1", 7778), "");
    // 3. The metadata range: refused, and listed among the blocked destinations.
    assert_eq!(lab.fetch("vm-evil", "169.254.169.254", 80), "");
    // 5. The LAN: a private range, and a public network the host itself is attached to
    // (the router's neighbours), though open mode reaches the internet beyond them.
    assert_eq!(lab.fetch("vm-evil", "10.254.0.2", 80), "");
    assert_eq!(lab.fetch("vm-evil", "198.51.100.2", 80), "");
    let n = lab.network("vm-evil");
    let blocked = n["blocked_destinations"].as_array().unwrap();
    for (addr, p) in [
        ("169.254.169.254", 80),
        ("127.0.0.1", 7777),
        ("10.254.0.1", 7778),
        ("10.254.0.2", 80),
        ("198.51.100.2", 80),
    ] {
        assert!(
            blocked
                .iter()
                .any(|b| b["address"] == addr && b["port"] == p && b["protocol"] == "tcp"),
            "{addr}:{p} not in {blocked:?}"
        );
    }
    assert!(n["blocked"]["packets"].as_u64().unwrap() > 0);
    assert!(n["allowed"]["packets"].as_u64().unwrap() > 0);
    assert_eq!(n["internet"]["mode"], "open");
    let lan: Vec<&str> = n["lan"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for range in ["10.0.0.0/8", "192.168.0.0/16", "198.51.100.0/24"] {
        assert!(lan.contains(&range), "{range} not in {lan:?}");
    }
    let human = stdout(&lab.smolvm(&["sandbox", "network", "show", "vm-evil"]));
    assert!(
        human.contains("LAN (only through an --allow-cidr range): ")
            && human.contains("198.51.100.0/24"),
        "{human}"
    );
    assert_eq!(n["guard_outdated"], false);
    // A guard an older smolvm wrote (open mode's rules before the LAN was kept out, no
    // version) is in force until it is written anew: `network show` and `doctor` say so,
    // and `network set` renews it.
    lab.host.sh("nft flush chain inet smolvm_guard egress_tap2
         nft add rule inet smolvm_guard egress_tap2 ct state established,related accept
         nft add rule inet smolvm_guard egress_tap2 oifname h0 accept
         nft add rule inet smolvm_guard egress_tap2 goto reject_tap2");
    assert_eq!(lab.fetch("vm-evil", "10.254.0.2", 80), "ALLOWED-2");
    assert_eq!(lab.network("vm-evil")["guard_outdated"], true);
    let human = stdout(&lab.smolvm(&["sandbox", "network", "show", "vm-evil"]));
    assert!(
        human.contains("guard: written by an older smolvm"),
        "{human}"
    );
    let doctor = json(&lab.smolvm(&["doctor", "--json"]));
    let check = support::item(&doctor["data"]["checks"], "name", "network-guard");
    assert_eq!(check["status"], "warn", "{check}");
    assert!(
        check["message"].as_str().unwrap().contains("vm-evil")
            && check["fix"]
                .as_str()
                .unwrap()
                .contains("network set vm-evil"),
        "{check}"
    );
    lab.set("vm-evil", &[]);
    assert_eq!(lab.network("vm-evil")["guard_outdated"], false);
    assert_eq!(lab.fetch("vm-evil", "10.254.0.2", 80), "");
    // 4. Another sandbox.
    lab.guest("vm-other", &[]);
    assert!(lab.ssh_answers(&lab.host, "172.16.0.3", 22));
    assert_eq!(lab.fetch("vm-evil", "172.16.0.3", 22), "");

    // From the LAN: the SSH forward is not published, and no guest port is routable.
    assert_eq!(lab.banner_from(&lab.lan, "10.254.0.1", port), "");
    assert_eq!(lab.banner_from(&lab.lan, "172.16.0.2", 22), "");
    // Published (live, and shown): SSH from the LAN through the forward only.
    let s = lab.set("vm-evil", &["--publish-ssh"]);
    assert_eq!(s["publish_ssh"], true);
    assert!(lab.ssh_answers(&lab.lan, "10.254.0.1", port));
    assert_eq!(lab.banner_from(&lab.lan, "172.16.0.2", 22), "");
    lab.set("vm-evil", &["--no-publish-ssh"]);
    assert_eq!(lab.banner_from(&lab.lan, "10.254.0.1", port), "");

    // The control: without the guard the same attacks work, so the checks above can fail.
    lab.drop_guard();
    assert_eq!(
        lab.in_guest("vm-evil", LOOPBACK_TRICK).trim(),
        "SECRET-LOOPBACK"
    );
    assert_eq!(lab.fetch("vm-evil", "10.254.0.2", 80), "ALLOWED-2");
    assert_eq!(lab.fetch("vm-evil", "198.51.100.2", 80), "NEIGHBOUR");
    assert!(lab.ssh_answers(&lab.lan, "172.16.0.2", 22));
    let n = lab.network("vm-evil");
    assert_eq!(
        (&n["guarded"], &n["unguarded"]),
        (&false.into(), &true.into()),
        "{n}"
    );
    let human = lab.smolvm(&["sandbox", "network", "show", "vm-evil"]);
    assert!(
        stdout(&human).contains("guard: MISSING"),
        "{}",
        stdout(&human)
    );
    // `network set` with no flags puts it back.
    lab.set("vm-evil", &[]);
    assert_eq!(lab.in_guest("vm-evil", LOOPBACK_TRICK).trim(), "");
    assert_eq!(lab.banner_from(&lab.lan, "172.16.0.2", 22), "");

    // Teardown leaves no guard object of either sandbox.
    lab.ok(&["sandbox", "delete", "vm-evil", "vm-other", "--json"]);
    let rules = lab.host.sh("nft list table inet smolvm_guard");
    for gone in ["tap2", "tap3", "172.16.0.2", "172.16.0.3"] {
        assert!(!rules.contains(gone), "{gone} left in\n{rules}");
    }
}

#[test]
fn egress_policies_switch_live_and_names_are_allowed_at_connection_time() {
    require_root!();
    let lab = Lab::new();
    let v = lab.guest("vm-r", &["--allow-cidr", "10.254.0.2"]);
    assert_eq!(v["data"]["status"], "running");
    // Restricted from its first instruction: one address answers, another does not.
    assert_eq!(lab.fetch("vm-r", "10.254.0.2", 80), "ALLOWED-2");
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "");

    // Open: the internet through the outbound interface, not the LAN ...
    let s = lab.set("vm-r", &["--internet", "open"]);
    assert_eq!(s["internet"]["mode"], "open");
    assert_eq!(lab.fetch("vm-r", "203.0.113.80", 80), "INTERNET");
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "");
    // ... but for the LAN ranges listed with it; a long-lived connection to .3.
    let s = lab.set(
        "vm-r",
        &["--internet", "open", "--allow-cidr", "10.254.0.3"],
    );
    assert_eq!(s["summary"], "open + 10.254.0.3/32");
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "OTHER-3");
    assert_eq!(lab.fetch("vm-r", "10.254.0.2", 80), "");
    assert_eq!(lab.fetch("vm-r", "203.0.113.80", 80), "INTERNET");
    lab.in_guest(
        "vm-r",
        "nohup bash -c 'exec 3<>/dev/tcp/10.254.0.3/81 || exit; while true; do echo ping >&3; \
         if read -t 3 l <&3; then echo \"$l\" > /tmp/conn; else echo CUT > /tmp/conn; exit; fi; \
         sleep 1; done' >/dev/null 2>&1 & sleep 2; true",
    );
    assert_eq!(lab.in_guest("vm-r", "cat /tmp/conn").trim(), "ping");
    // Restricted again: the next packet is judged, the open connection to .3 is cut.
    let s = lab.set("vm-r", &["--allow-cidr", "10.254.0.2"]);
    assert_eq!(s["connections_cut"], true);
    wait_until("the connection to be cut", Duration::from_secs(30), || {
        lab.in_guest("vm-r", "cat /tmp/conn").trim() == "CUT"
    });
    assert_eq!(lab.fetch("vm-r", "10.254.0.2", 80), "ALLOWED-2");
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "");
    // Off: nothing.
    lab.set("vm-r", &["--internet", "off"]);
    assert_eq!(lab.fetch("vm-r", "10.254.0.2", 80), "");

    // Names: the resolver answers only allowed ones, whatever address DNS was sent to,
    // and only what an allowed name resolved to becomes reachable.
    assert_eq!(lab.resolver_pid(), None);
    let s = lab.set("vm-r", &["--allow-domain", "allowed.test"]);
    assert_eq!(s["dns_via_resolver"], true);
    lab.in_guest("vm-r", "echo 'nameserver 10.254.0.3' > /etc/resolv.conf");
    let got = lab.in_guest("vm-r", "getent hosts allowed.test || true");
    assert!(got.starts_with("203.0.113.80"), "{got}");
    assert_eq!(lab.fetch("vm-r", "allowed.test", 80), "INTERNET");
    assert_eq!(
        lab.in_guest("vm-r", "getent hosts other.test || true")
            .trim(),
        ""
    );
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "");
    // An allowed name that resolves into the LAN (a private range, the host's own network)
    // opens nothing: a name under an allowed suffix cannot rebind the guest into the LAN.
    lab.set(
        "vm-r",
        &[
            "--allow-domain",
            "allowed.test",
            "--allow-domain",
            "*.lan.test",
        ],
    );
    let got = lab.in_guest("vm-r", "getent hosts inside.lan.test || true");
    assert!(got.starts_with("10.254.0.3"), "{got}");
    assert_eq!(lab.fetch("vm-r", "inside.lan.test", 80), "");
    assert_eq!(lab.fetch("vm-r", "near.lan.test", 80), "");
    let text = std::fs::read_to_string(lab.h.data.join("egress-dns.log")).unwrap();
    assert!(
        text.contains("not allowing 10.254.0.3 for vm-r (inside.lan.test): a LAN address"),
        "{text}"
    );
    // A policy written anew keeps its names working at once (the resolver forgets what
    // the old guard had allowed).
    assert_eq!(lab.fetch("vm-r", "allowed.test", 80), "INTERNET");
    // Listed as a range, the LAN address is reachable (by the range).
    lab.set(
        "vm-r",
        &["--allow-cidr", "10.254.0.3", "--allow-domain", "*.lan.test"],
    );
    assert_eq!(lab.fetch("vm-r", "inside.lan.test", 80), "OTHER-3");
    lab.set("vm-r", &["--allow-domain", "allowed.test"]);
    assert_eq!(lab.fetch("vm-r", "allowed.test", 80), "INTERNET");
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "");
    // A name is a guest's bytes: the resolver's log shows it escaped, on its one line — no
    // escape sequence for the operator's terminal (an OSC 52 clipboard write here), no
    // newline forging a line of its own. (Through dd: one datagram, as bash's printf
    // writes at each newline.)
    lab.in_guest(
        "vm-r",
        r"printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x0c\x1b]52;c;SGk=\x07\x07\nFORGED\x00\x00\x01\x00\x01' | dd bs=4096 iflag=fullblock count=1 2>/dev/null > /dev/udp/10.254.0.3/53; sleep 1; true",
    );
    let log = std::fs::read(lab.h.data.join("egress-dns.log")).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains(r"refused \x1b]52;c;sgk=\x07.\x0aforged for vm-r (not allowed)"),
        "{text}"
    );
    assert!(!log.contains(&0x1b), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("forged")), "{text}");
    // A flood of names cannot fill the host's disk through that log: it takes a burst,
    // then ten lines a second, and says how many it left out.
    let t = std::time::Instant::now();
    lab.in_guest(
        "vm-r",
        r"exec 3>/dev/udp/10.254.0.3/53; for i in $(seq 1000); do printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05flood\x04test\x00\x00\x01\x00\x01' >&3; done; sleep 2; true",
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(
        lab.in_guest("vm-r", "getent hosts other.test || true")
            .trim(),
        ""
    );
    let text = std::fs::read_to_string(lab.h.data.join("egress-dns.log")).unwrap();
    let flood = text.matches("refused flood.test for vm-r").count();
    assert!(
        flood >= 50 && (flood as f64) <= 100.0 + 10.0 * (secs + 5.0),
        "{flood} lines of the flood in {secs:.1} s"
    );
    assert!(
        text.contains(" lines left out: more than 10 a second)"),
        "{text}"
    );
    // What reads the guests' packets runs unprivileged with no capability at all; only
    // its allower (its one child) keeps CAP_NET_ADMIN, also unprivileged.
    let pid = lab.resolver_pid().expect("a resolver record");
    let resolver = support::privileges(pid as i64);
    assert!(resolver.uids.iter().all(|u| *u != 0), "{resolver:?}");
    assert!(resolver.no_new_privs, "{resolver:?}");
    assert_eq!(resolver.cap_eff, 0, "{resolver:?}");
    let allower = match support::children_of(pid)[..] {
        [one] => one,
        ref other => panic!("the resolver has children {other:?}, not one allower"),
    };
    let a = support::privileges(allower as i64);
    assert_eq!(a.uids, resolver.uids, "{a:?}");
    assert!(a.no_new_privs, "{a:?}");
    assert_eq!(
        a.cap_eff,
        1 << 12,
        "the allower keeps CAP_NET_ADMIN only: {a:?}"
    );

    // Kept across pause/resume and stop/start (the resolver goes with the last sandbox
    // that needs it and comes back with the next).
    lab.ok(&["sandbox", "pause", "vm-r", "--json"]);
    lab.ok(&["sandbox", "resume", "vm-r", "--json"]);
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "");
    lab.ok(&["sandbox", "stop", "vm-r", "--timeout", "4", "--json"]);
    assert_eq!(
        lab.resolver_pid(),
        None,
        "the resolver outlived its last sandbox"
    );
    assert!(!smolvm::sys::process::is_alive(pid));
    wait_until(
        "the allower to end with it",
        Duration::from_secs(10),
        || !smolvm::sys::process::is_alive(allower),
    );
    lab.ok(&["sandbox", "start", "vm-r", "--json"]);
    assert_eq!(lab.network("vm-r")["summary"], "restricted: allowed.test");
    lab.in_guest("vm-r", "echo 'nameserver 8.8.8.8' > /etc/resolv.conf");
    assert_eq!(lab.fetch("vm-r", "allowed.test", 80), "INTERNET");
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "");

    // The resolver killed: no answers, and still no new address (fail closed).
    let pid = lab.resolver_pid().unwrap();
    let allower = support::children_of(pid);
    assert_eq!(allower.len(), 1, "{allower:?}");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until(
        "the resolver and its allower to die",
        Duration::from_secs(10),
        || !smolvm::sys::process::is_alive(pid) && !smolvm::sys::process::is_alive(allower[0]),
    );
    assert_eq!(
        lab.in_guest("vm-r", "getent hosts allowed.test || true")
            .trim(),
        ""
    );
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "");

    // A snapshot keeps the policy (names included) for its restore.
    let snap = lab.ok(&["sandbox", "snapshot", "create", "vm-r", "--json"]);
    let sid = snap["data"]["snapshot"]["id"]
        .as_str()
        .or_else(|| snap["data"]["id"].as_str())
        .unwrap()
        .to_string();
    lab.ok(&["sandbox", "delete", "vm-r", "--json"]);
    lab.ok(&["sandbox", "snapshot", "restore", &sid, "--resume", "--json"]);
    assert_eq!(lab.network("vm-r")["summary"], "restricted: allowed.test");
    assert_eq!(lab.fetch("vm-r", "allowed.test", 80), "INTERNET");
    assert_eq!(lab.fetch("vm-r", "10.254.0.3", 80), "");

    // cleanup sweeps it all, the resolver too.
    lab.ok(&["cleanup", "--all", "--force", "--json"]);
    assert_eq!(lab.resolver_pid(), None);
}

#[test]
fn policies_are_validated_and_stored_as_smolvm_0_0_36_accepts_them() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::with_uplink());
    let create = |name: &str, flags: &[&str]| create_only(&h, &ns, name, flags);
    // Bad values: exit 2, invalid_input, SmolVM's message, nothing created.
    for (flags, message) in [
        (
            vec!["--allow-cidr", "169.254.169.254"],
            "Sandbox and link-local addresses cannot be allowed; remove those ranges.",
        ),
        (
            vec!["--allow-cidr", "10.0.0.1/8"],
            "Range '10.0.0.1/8' must start at its first address; use '10.0.0.0/8' for the range or remove the slash and prefix to allow only one address.",
        ),
        (
            vec!["--allow-cidr", "2001:db8::/32"],
            "Invalid IPv4 address or range '2001:db8::/32'; use an address such as '203.0.113.10' or a range such as '10.20.0.0/24'.",
        ),
        (
            vec!["--internet", "restricted"],
            "--internet restricted needs at least one --allow-cidr or --allow-domain; use --internet off to deny all access.",
        ),
        (
            vec!["--internet", "off", "--allow-domain", "pypi.org"],
            "--allow-cidr and --allow-domain need --internet restricted (not off); set that mode or remove them.",
        ),
        (
            vec!["--internet", "open", "--allow-domain", "pypi.org"],
            "--allow-domain needs --internet restricted (open reaches every public name already); set that mode, or list a LAN range with --allow-cidr.",
        ),
    ] {
        let out = create("vm-bad", &flags);
        let v = json_exit(&out, 2);
        assert_eq!(v["error"]["code"], "invalid_input", "{flags:?}");
        assert_eq!(v["error"]["message"], message, "{flags:?}");
    }
    let list = ns.smolvm(&h, &["sandbox", "list", "--all", "--json"]);
    assert_eq!(json(&list)["data"]["vms"].as_array().unwrap().len(), 0);

    let cases: [(&str, Vec<&str>, &str); 6] = [
        ("vm-open", vec![], "open"),
        (
            "vm-lan",
            vec!["--internet", "open", "--allow-cidr", "192.168.1.0/24"],
            "open + 192.168.1.0/24",
        ),
        ("vm-off", vec!["--internet", "off"], "off"),
        (
            "vm-cidr",
            vec!["--allow-cidr", "203.0.113.0/24"],
            "restricted: 203.0.113.0/24",
        ),
        (
            "vm-names",
            vec![
                "--allow-domain",
                "api.openai.com",
                "--allow-domain",
                "*.npmjs.org",
            ],
            "restricted: *.npmjs.org, api.openai.com",
        ),
        (
            "vm-both",
            vec!["--allow-cidr", "203.0.113.7", "--allow-domain", "pypi.org"],
            "restricted: 203.0.113.7/32, pypi.org",
        ),
    ];
    for (name, flags, summary) in &cases {
        support::assert_code(&create(name, flags), 0);
        let show = ns.smolvm(&h, &["sandbox", "network", "show", name, "--json"]);
        assert_eq!(json(&show)["data"]["summary"], *summary, "{name}");
    }
    // Created, not started: no resolver runs for their names.
    assert!(!h.data.join("egress-dns.json").exists());
    // A live change of a stored policy that SmolVM's rules refuse changes nothing.
    let out = ns.smolvm(
        &h,
        &[
            "sandbox",
            "network",
            "set",
            "vm-cidr",
            "--allow-cidr",
            "172.16.9.0/24",
            "--json",
        ],
    );
    assert_eq!(json_exit(&out, 2)["error"]["code"], "invalid_input");
    let show = ns.smolvm(&h, &["sandbox", "network", "show", "vm-cidr", "--json"]);
    assert_eq!(json(&show)["data"]["summary"], "restricted: 203.0.113.0/24");

    // SmolVM 0.0.36's own InternetSettings validates what each row holds, and reads it as
    // no more open than ours (names alone are `off` there).
    let db = h.data.join("smolvm.db");
    let code = r#"
import json, sqlite3, sys
from smolvm.types import InternetSettings
db = sqlite3.connect(sys.argv[1])
for vm_id, config in db.execute("SELECT id, config FROM vms ORDER BY id"):
    v = json.loads(config).get("internet_settings")
    if v is None:
        print(vm_id, "absent"); continue
    s = InternetSettings.model_validate(v)
    print(vm_id, s.mode, ",".join(s.allowed_cidrs))
"#;
    let got = support::smolvm_py::run(code, &[db.to_str().unwrap()]);
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "vm-both restricted 203.0.113.7/32",
            "vm-cidr restricted 203.0.113.0/24",
            "vm-lan absent",
            "vm-names off ",
            "vm-off off ",
            "vm-open absent",
        ]
    );
    // And a row SmolVM's state layer wrote with its legacy domain list is read as
    // restricted to those names here.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "UPDATE vms SET config = json_set(config, '$.internet_settings', json('{\"allowed_domains\": [\"pypi.org\"]}')) WHERE id = 'vm-open'",
        [],
    )
    .unwrap();
    c.execute("DELETE FROM smolvm_vm_network WHERE vm_id = 'vm-open'", [])
        .unwrap();
    let show = ns.smolvm(&h, &["sandbox", "network", "show", "vm-open", "--json"]);
    assert_eq!(json(&show)["data"]["summary"], "restricted: pypi.org");
    let _ = ns.smolvm(&h, &["cleanup", "--all", "--force", "--json"]);
}

#[test]
fn a_guard_that_cannot_be_applied_stops_the_start_and_leaves_nothing() {
    require_root!();
    let h = Home::new();
    let ns = NetNs::with_uplink();
    // Someone made a table of that name with a set smolvm cannot use.
    ns.sh(
        "nft add table inet smolvm_guard; nft add set inet smolvm_guard taps '{ type ipv4_addr; }'",
    );
    let (k, _) = images::kernel();
    let r = images::debian_rootfs();
    let args = create_args(
        k.to_str().unwrap(),
        r.to_str().unwrap(),
        "vm-g",
        "qemu",
        &["--start", "--json"],
    );
    let out = ns.smolvm(&h, &args);
    let v = json_exit(&out, 1);
    let msg = support::error_message(&v);
    assert!(
        msg.contains("cannot apply the network guard for 'vm-g'"),
        "{msg}"
    );
    assert_eq!(
        support::cleanup::vm_leftovers(&h, &ns, "vm-g"),
        Vec::<String>::new()
    );
    let list = ns.smolvm(&h, &["sandbox", "list", "--all", "--json"]);
    assert_eq!(json(&list)["data"]["vms"].as_array().unwrap().len(), 0);
}

#[test]
fn guard_objects_of_a_sandbox_smolvm_deleted_are_swept_by_cleanup() {
    require_root!();
    let (h, ns) = (Home::new(), NetNs::with_uplink());
    support::assert_code(&create_only(&h, &ns, "vm-gone", &["--internet", "off"]), 0);
    assert!(ns
        .sh("nft list table inet smolvm_guard")
        .contains("egress_tap2"));
    // SmolVM's own delete: the row goes, our objects stay behind.
    let c = rusqlite::Connection::open(h.data.join("smolvm.db")).unwrap();
    c.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM vms WHERE id = 'vm-gone'")
        .unwrap();
    let dry = ns.smolvm(&h, &["cleanup", "--dry-run"]);
    assert!(
        stdout(&dry).contains("nft inet smolvm_guard tap2"),
        "{}",
        stdout(&dry)
    );
    support::assert_code(&ns.smolvm(&h, &["cleanup", "--force"]), 0);
    let rules = ns.sh("nft list table inet smolvm_guard");
    assert!(!rules.contains("tap2"), "{rules}");
}

/// `network set` on a row that says running but whose VMM is gone stores the policy for
/// its next start and writes no guard (core's liveness rule, as `stop` and `pause` use
/// it): there is no guest to contain and its TAP may be another's by now. It used to
/// apply a guard to that TAP and say "applied now".
#[test]
fn network_set_on_a_row_whose_vmm_is_gone_writes_no_guard() {
    use support::cleanup::{insert_rows, Row};
    require_root!();
    let h = Home::new();
    let ns = NetNs::with_uplink();
    insert_rows(
        &h.data,
        &h.sockets(),
        &[Row {
            status: "running",
            pid: Some(i32::MAX - 7),
            tap: Some(("tap4091", "172.16.15.251", 6091)),
            ..Row::stopped("vm-dead")
        }],
    );
    let out = ns.smolvm(
        &h,
        &[
            "sandbox",
            "network",
            "set",
            "vm-dead",
            "--internet",
            "off",
            "--json",
        ],
    );
    let v = json_exit(&out, 0);
    assert_eq!(v["data"]["internet"]["mode"], "off", "{v}");
    assert!(v["data"].get("connections_cut").is_none(), "{v}");
    assert_eq!(v["data"]["status"], "error", "{v}");
    let rules = ns.nft_ruleset();
    assert!(!rules.contains("tap4091"), "{rules}");
    let human = stdout(&ns.smolvm(&h, &["sandbox", "network", "show", "vm-dead"]));
    assert!(human.contains("applied when it starts"), "{human}");
}

/// `sandbox start` of a sandbox that runs is refused, and `SMOLVM_PUBLISH_SSH=1` (or
/// `--publish-ssh`) changes nothing under it: its SSH stays unpublished and no rule is
/// written. The publication used to go first, before the start was refused.
#[test]
fn a_refused_start_publishes_nothing() {
    use support::cleanup::{insert_rows, Row};
    require_root!();
    let h = Home::new();
    let ns = NetNs::with_uplink();
    let sockets = h.sockets();
    let (row, _vmm) = Row::live(&sockets, "vm-live", ("tap4092", "172.16.15.252", 6092));
    insert_rows(&h.data, &sockets, &[row]);
    for args in [
        &["sandbox", "start", "vm-live", "--json"][..],
        &["sandbox", "start", "vm-live", "--publish-ssh", "--json"],
    ] {
        let out = ns
            .cmd(&h, "smolvm")
            .env("SMOLVM_PUBLISH_SSH", "1")
            .args(args)
            .output()
            .unwrap();
        let v = json_exit(&out, 1);
        assert!(
            support::error_message(&v).contains("Cannot start VM in state 'running'"),
            "{v}"
        );
    }
    let show = json_exit(
        &ns.smolvm(&h, &["sandbox", "network", "show", "vm-live", "--json"]),
        0,
    );
    assert_eq!(show["data"]["publish_ssh"], false, "{show}");
    let rules = ns.nft_ruleset();
    assert!(!rules.contains("6092"), "{rules}");
}
