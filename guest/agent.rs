//! smolvm's clone agent: the one program smolvm puts into a guest. `snapshot create
//! --for-clone` copies it into a running sandbox and starts it (as root) before the
//! snapshot is written, so it runs on in every clone, blocked on the guest's `ttyS1`.
//!
//! After a clone resumes, smolvm writes one line on that port:
//!
//! ```text
//! readdr NONCE ADDR GATEWAY PREFIX MAC SEED
//! ```
//!
//! and the agent, without starting any program (each `exec` in a guest under TCG costs
//! hundreds of milliseconds), moves `eth0` to the new MAC and address, puts the default
//! route back, forgets the gateway's old neighbour entry, writes the 64 seed bytes into
//! `/dev/urandom` and makes the kernel's CRNG reseed (`RNDRESEEDCRNG`), then answers
//! `ok NONCE` (`err-addr NONCE`, `err-seed NONCE`). A line repeated (the host sends it
//! again until it is answered) is done once.
//!
//! Once the clone answers, a warm start forwards the start's own env vars and configs over
//! the same port (no SSH session, no program started in the guest):
//!
//! ```text
//! ping NONCE                      → ok NONCE (the host sends it until answered first)
//! get NONCE PATH                  → data NONCE HEX | none NONCE | err-get NONCE
//! op NONCE SEQ KIND ARGS…         (no answer; SEQ counts from 0)
//! end NONCE COUNT                 → ok NONCE | err-op NONCE
//! ```
//!
//! Paths and file contents are hex; modes octal. The kinds: `mkdirs PATH` (missing
//! parents, mode 0700), `dir PATH MODE`, `file PATH MODE DATA` (a new file), `link PATH
//! TARGET`, `private PATH` (group and other bits off below it, links untouched), `chmod
//! PATH MODE`, `replace FROM TO` (what is at `TO` removed unless both are files, then
//! `FROM` renamed over it) and `rmdir PATH`. After a failed or missing op the rest of the
//! batch is skipped and its `end` answers `err-op`. The host decides every path and byte;
//! the agent only carries them out, as root in the guest.
//!
//! `--ready FILE` makes the agent create `FILE` once its port is open and raw: the launch
//! waits for it, so the snapshot holds an agent already blocked on its port. (Started
//! later, the clone would run the agent's start after resuming, and the port, opened
//! then, would drop what the host had sent before.)
//!
//! `build.rs` compiles this file alone with the toolchain's `rustc` (std only, statically
//! linked, for the target smolvm is built for) and smolvm embeds the result; an image it
//! cannot run in falls back to the shell agent (`src/core/snapshot/clone.rs`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::raw::{c_char, c_int, c_ulong, c_ushort};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What `--probe` prints: the binary runs in this guest.
const PROBE: &str = "smolvm-agent-ok";
const PORT: &str = "/dev/ttyS1";
const IFACE: &[u8] = b"eth0";
/// The longest request line kept (longer ones are dropped whole): a `file` op of
/// [`MAX_FILE`] bytes, hex, and its words.
const MAX_LINE: usize = 2 * MAX_FILE + 8192;
/// The largest file one `file` op writes or `get` reads.
const MAX_FILE: usize = 1 << 20;

const AF_INET: c_ushort = 2;
const ARPHRD_ETHER: c_ushort = 1;
const SOCK_DGRAM: c_int = 2;
const SIOCSIFADDR: c_ulong = 0x8916;
const SIOCSIFNETMASK: c_ulong = 0x891c;
const SIOCSIFHWADDR: c_ulong = 0x8924;
const SIOCADDRT: c_ulong = 0x890b;
const SIOCDARP: c_ulong = 0x8953;
const RNDRESEEDCRNG: c_ulong = 0x5207;
const RTF_UP: c_ushort = 0x1;
const RTF_GATEWAY: c_ushort = 0x2;
const TCSANOW: c_int = 0;

extern "C" {
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn tcgetattr(fd: c_int, termios: *mut Termios) -> c_int;
    fn tcsetattr(fd: c_int, when: c_int, termios: *const Termios) -> c_int;
    fn cfmakeraw(termios: *mut Termios);
}

/// `struct termios`, opaque: only libc reads or writes it (larger than any libc's).
#[repr(C, align(8))]
struct Termios([u8; 256]);

/// `struct sockaddr` holding an IPv4 address or a MAC.
#[repr(C)]
#[derive(Clone, Copy)]
struct SockAddr {
    family: c_ushort,
    data: [u8; 14],
}

impl SockAddr {
    const ZERO: SockAddr = SockAddr {
        family: 0,
        data: [0; 14],
    };
    fn ipv4(a: Ipv4Addr) -> SockAddr {
        let mut data = [0u8; 14];
        data[2..6].copy_from_slice(&a.octets());
        SockAddr {
            family: AF_INET,
            data,
        }
    }
    fn mac(m: [u8; 6]) -> SockAddr {
        let mut data = [0u8; 14];
        data[..6].copy_from_slice(&m);
        SockAddr {
            family: ARPHRD_ETHER,
            data,
        }
    }
}

/// `struct ifreq`: a name and one address.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    addr: SockAddr,
    _pad: [u8; 8],
}

/// `struct rtentry`.
#[repr(C)]
struct RtEntry {
    pad1: c_ulong,
    dst: SockAddr,
    gateway: SockAddr,
    genmask: SockAddr,
    flags: c_ushort,
    pad2: i16,
    pad3: c_ulong,
    pad4: *mut u8,
    metric: i16,
    dev: *const c_char,
    mtu: c_ulong,
    window: c_ulong,
    irtt: c_ushort,
}

/// `struct arpreq`.
#[repr(C)]
struct ArpReq {
    pa: SockAddr,
    ha: SockAddr,
    flags: c_int,
    netmask: SockAddr,
    dev: [u8; 16],
}

fn iface_name() -> [u8; 16] {
    let mut n = [0u8; 16];
    n[..IFACE.len()].copy_from_slice(IFACE);
    n
}

/// One request: `readdr NONCE ADDR GATEWAY PREFIX MAC SEED`.
struct Readdr {
    nonce: String,
    addr: Ipv4Addr,
    gateway: Ipv4Addr,
    mask: Ipv4Addr,
    mac: [u8; 6],
    seed: Vec<u8>,
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The request in `line`: from its last `readdr ` on (a request whose first bytes were
/// lost in the UART runs into the next one on the same line).
fn parse(line: &str) -> Option<Readdr> {
    let w: Vec<&str> = line[line.rfind("readdr ")?..].split_whitespace().collect();
    let [verb, nonce, addr, gateway, bits, mac, seed] = w.as_slice() else {
        return None;
    };
    if *verb != "readdr" || nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bits: u32 = bits.parse().ok().filter(|b| (1..=32).contains(b))?;
    let m: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    Some(Readdr {
        nonce: nonce.to_string(),
        addr: addr.parse().ok()?,
        gateway: gateway.parse().ok()?,
        mask: Ipv4Addr::from(u32::MAX << (32 - bits)),
        mac: m.try_into().ok()?,
        seed: hex_bytes(seed).filter(|s| !s.is_empty())?,
    })
}

/// `ioctl(fd, request, arg)`, true when it succeeded.
fn set<T>(fd: c_int, request: c_ulong, arg: &mut T) -> bool {
    // SAFETY: `arg` is a live, properly laid out struct of the kind `request` takes.
    unsafe { ioctl(fd, request, arg as *mut T) == 0 }
}

/// Move `eth0` to the request's MAC and address (its primary address replaced; the
/// kernel drops the old prefix route, the default route through it and the interface's
/// neighbours with it), then route the default through the gateway again.
fn readdress(r: &Readdr) -> bool {
    // SAFETY: a plain socket call; the descriptor is closed below.
    let fd = unsafe { socket(AF_INET as c_int, SOCK_DGRAM, 0) };
    if fd < 0 {
        return false;
    }
    let mut req = IfReq {
        name: iface_name(),
        addr: SockAddr::mac(r.mac),
        _pad: [0; 8],
    };
    // A NIC that cannot change its MAC keeps the old one (the host's TAP takes any).
    let _ = set(fd, SIOCSIFHWADDR, &mut req);
    req.addr = SockAddr::ipv4(r.addr);
    let mut ok = set(fd, SIOCSIFADDR, &mut req);
    req.addr = SockAddr::ipv4(r.mask);
    ok = ok && set(fd, SIOCSIFNETMASK, &mut req);
    let dev = b"eth0\0";
    let mut route = RtEntry {
        pad1: 0,
        dst: SockAddr::ipv4(Ipv4Addr::UNSPECIFIED),
        gateway: SockAddr::ipv4(r.gateway),
        genmask: SockAddr::ipv4(Ipv4Addr::UNSPECIFIED),
        flags: RTF_UP | RTF_GATEWAY,
        pad2: 0,
        pad3: 0,
        pad4: std::ptr::null_mut(),
        metric: 0,
        dev: dev.as_ptr() as *const c_char,
        mtu: 0,
        window: 0,
        irtt: 0,
    };
    // EEXIST: the default route survived the move; it is what was asked for.
    ok = ok
        && (set(fd, SIOCADDRT, &mut route)
            || std::io::Error::last_os_error().raw_os_error() == Some(17));
    let mut arp = ArpReq {
        pa: SockAddr::ipv4(r.gateway),
        ha: SockAddr::ZERO,
        flags: 0,
        netmask: SockAddr::ZERO,
        dev: iface_name(),
    };
    // Usually gone already with the old address; ENXIO then.
    let _ = set(fd, SIOCDARP, &mut arp);
    // SAFETY: our own descriptor, closed once.
    unsafe { close(fd) };
    ok
}

/// Mix `seed` into the input pool and make the CRNG reseed from it now.
fn reseed(seed: &[u8]) -> bool {
    let Ok(mut f) = OpenOptions::new().write(true).open("/dev/urandom") else {
        return false;
    };
    // SAFETY: RNDRESEEDCRNG takes no argument.
    f.write_all(seed).is_ok() && unsafe { ioctl(f.as_raw_fd(), RNDRESEEDCRNG, 0usize) } == 0
}

fn raw(port: &File) {
    let mut t = Termios([0; 256]);
    // SAFETY: `t` is larger than the libc's termios; libc alone reads and writes it.
    unsafe {
        if tcgetattr(port.as_raw_fd(), &mut t) == 0 {
            cfmakeraw(&mut t);
            tcsetattr(port.as_raw_fd(), TCSANOW, &t);
        }
    }
}

/// A path from its hex; absolute only.
fn hex_path(s: &str) -> io::Result<PathBuf> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, "bad path");
    let p = PathBuf::from(std::ffi::OsString::from_vec(hex_bytes(s).ok_or_else(bad)?));
    if p.is_absolute() && !p.as_os_str().as_encoded_bytes().contains(&0) {
        Ok(p)
    } else {
        Err(bad())
    }
}

fn octal(s: &str) -> io::Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad mode"))
}

/// Group and other bits off on everything below `p` (itself included), links untouched.
fn private(p: &Path) -> io::Result<()> {
    let m = std::fs::symlink_metadata(p)?;
    if m.file_type().is_symlink() {
        return Ok(());
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m.mode() & !0o077))?;
    if m.is_dir() {
        for e in std::fs::read_dir(p)? {
            private(&e?.path())?;
        }
    }
    Ok(())
}

/// One `op` (see the module's text).
fn op(kind: &str, a: &[&str]) -> io::Result<()> {
    let set_mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    match (kind, a.len()) {
        ("mkdirs", 1) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(hex_path(a[0])?),
        ("dir", 2) => {
            let (p, m) = (hex_path(a[0])?, octal(a[1])?);
            std::fs::DirBuilder::new().mode(0o700).create(&p)?;
            set_mode(&p, m)
        }
        ("file", 3) => {
            let (p, m) = (hex_path(a[0])?, octal(a[1])?);
            let data = hex_bytes(a[2])
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad data"))?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&p)?;
            f.write_all(&data)?;
            f.set_permissions(std::fs::Permissions::from_mode(m))
        }
        ("link", 2) => std::os::unix::fs::symlink(
            hex_path(a[1]).or_else(|_| {
                // A link's target may be relative.
                hex_bytes(a[1])
                    .map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)))
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad target"))
            })?,
            hex_path(a[0])?,
        ),
        ("private", 1) => private(&hex_path(a[0])?),
        ("chmod", 2) => set_mode(&hex_path(a[0])?, octal(a[1])?),
        ("replace", 2) => {
            let (from, to) = (hex_path(a[0])?, hex_path(a[1])?);
            let from_file = !std::fs::symlink_metadata(&from)?.is_dir();
            match std::fs::symlink_metadata(&to) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&to)?,
                Ok(_) if !from_file => std::fs::remove_file(&to)?,
                _ => {}
            }
            std::fs::rename(&from, &to)
        }
        ("rmdir", 1) => std::fs::remove_dir(hex_path(a[0])?),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "unknown op")),
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the agent keeps between lines.
#[derive(Default)]
struct Agent {
    /// The last `readdr` done (a repeated one is not done again).
    last: String,
    /// The batch under way, the next op it expects, and whether one failed.
    batch: String,
    next: u64,
    failed: bool,
    /// Run with `--stdio` (on a host, by its tests): no `readdr`.
    local: bool,
}

impl Agent {
    /// The answer to one request line, if it gets one.
    fn handle(&mut self, text: &str) -> Option<String> {
        if text.contains("readdr ") {
            if self.local {
                // Run on a host (`--stdio`): its network is not ours to move.
                return None;
            }
            let r = parse(text)?;
            if r.nonce == self.last {
                return None;
            }
            let word = if !readdress(&r) {
                "err-addr"
            } else if !reseed(&r.seed) {
                "err-seed"
            } else {
                "ok"
            };
            self.last = r.nonce.clone();
            return Some(format!("{word} {}", r.nonce));
        }
        let w: Vec<&str> = text.split_whitespace().collect();
        let nonce = *w.get(1)?;
        if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        match w[0] {
            "ping" if w.len() == 2 => Some(format!("ok {nonce}")),
            "get" if w.len() == 3 => Some(match hex_path(w[2]).and_then(std::fs::metadata) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => format!("none {nonce}"),
                Ok(m) if m.is_file() && m.len() <= MAX_FILE as u64 => {
                    match std::fs::read(hex_path(w[2]).ok()?) {
                        Ok(b) if b.len() <= MAX_FILE => format!("data {nonce} {}", hex(&b)),
                        _ => format!("err-get {nonce}"),
                    }
                }
                _ => format!("err-get {nonce}"),
            }),
            "op" if w.len() >= 4 => {
                if self.batch != nonce {
                    (self.batch, self.next, self.failed) = (nonce.to_string(), 0, false);
                }
                let seq: Option<u64> = w[2].parse().ok();
                if self.failed || seq != Some(self.next) || op(w[3], &w[4..]).is_err() {
                    self.failed = true;
                }
                self.next += 1;
                None
            }
            "end" if w.len() == 3 => {
                let all = self.batch == nonce && w[2].parse() == Ok(self.next) && !self.failed;
                // Done either way: a batch is never continued.
                self.batch.clear();
                Some(format!("{} {nonce}", if all { "ok" } else { "err-op" }))
            }
            _ => None,
        }
    }
}

fn main() {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--probe") {
        println!("{PROBE}");
        return;
    }
    // `--stdio`: requests on stdin, answers on stdout, until stdin ends (the host's tests
    // run the agent this way; in a guest it reads its port).
    let stdio = arg.as_deref() == Some("--stdio");
    let (mut input, mut output): (Box<dyn Read>, Box<dyn Write>) = if stdio {
        (Box::new(io::stdin()), Box::new(io::stdout()))
    } else {
        let Ok(port) = OpenOptions::new().read(true).write(true).open(PORT) else {
            std::process::exit(2);
        };
        raw(&port);
        let Ok(out) = port.try_clone() else {
            std::process::exit(2);
        };
        if arg.as_deref() == Some("--ready") {
            let ready = std::env::args_os().nth(2).map(PathBuf::from);
            let made = ready.is_some_and(|r| {
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(r)
                    .is_ok()
            });
            if !made {
                std::process::exit(2);
            }
        }
        (Box::new(port), Box::new(out))
    };
    let (mut line, mut buf) = (Vec::new(), vec![0u8; 64 << 10]);
    let (mut agent, mut dropping) = (
        Agent {
            local: stdio,
            ..Agent::default()
        },
        false,
    );
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) if stdio => return,
            Ok(0) | Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b != b'\n' {
                if line.len() < MAX_LINE {
                    line.push(b);
                } else {
                    dropping = true;
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            line.clear();
            if std::mem::take(&mut dropping) {
                // A line cut short: a batch it belonged to fails.
                agent.failed = true;
                continue;
            }
            if let Some(answer) = agent.handle(&text) {
                let _ = output.write_all(format!("{answer}\n").as_bytes());
                let _ = output.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "00ff10";

    #[test]
    fn a_request_parses_into_what_the_guest_is_given() {
        let r = parse(&format!(
            "readdr 0a1b 172.16.0.9 172.16.0.1 24 aa:fc:00:00:00:09 {SEED}      "
        ))
        .unwrap();
        assert_eq!(r.nonce, "0a1b");
        assert_eq!(r.addr, Ipv4Addr::new(172, 16, 0, 9));
        assert_eq!(r.gateway, Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(r.mask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(r.mac, [0xaa, 0xfc, 0, 0, 0, 9]);
        assert_eq!(r.seed, [0, 0xff, 0x10]);
        // The tail of a request whose head the UART lost, then a whole one.
        let r = parse(&format!(
            "0.1 24 aa:fc:00readdr 77 10.0.0.2 10.0.0.1 30 aa:fc:00:00:00:02 {SEED}"
        ))
        .unwrap();
        assert_eq!(
            (r.nonce.as_str(), r.mask),
            ("77", Ipv4Addr::new(255, 255, 255, 252))
        );
    }

    #[test]
    fn anything_else_is_no_request() {
        let ok = format!("readdr 1 10.0.0.2 10.0.0.1 24 aa:fc:00:00:00:02 {SEED}");
        assert!(parse(&ok).is_some());
        for bad in [
            ok.replace("readdr", "Readdr"),
            ok.replace(" 1 ", " n1 "),
            ok.replace(" 24 ", " 0 "),
            ok.replace(" 24 ", " 33 "),
            ok.replace("10.0.0.2", "10.0.0.256"),
            ok.replace(":02 ", ":02:03 "),
            ok.replace(":02 ", ":zz "),
            ok.replace(SEED, "abc"),
            ok.replace(SEED, ""),
            format!("{ok} extra"),
            String::new(),
        ] {
            assert!(parse(&bad).is_none(), "{bad:?}");
        }
    }

    fn h(p: &Path) -> String {
        hex(p.as_os_str().as_encoded_bytes())
    }

    /// A batch as a warm start sends it: a config directory staged beside its target and
    /// moved over what was there, then a file put in place; `get` reads it back.
    #[test]
    fn a_batch_installs_what_the_host_decided_and_get_reads_files_back() {
        let t = std::env::temp_dir().join(format!("smolvm-agent-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let (target, stage) = (t.join("home/.codex"), t.join("home/.smolvm-copy.ab-0"));
        std::fs::create_dir_all(target.join("old")).unwrap();
        let mut a = Agent::default();
        assert_eq!(a.handle("ping 7e   ").as_deref(), Some("ok 7e"));
        let ops = [
            format!("mkdirs {}", h(&t.join("home"))),
            format!("dir {} 700", h(&stage)),
            format!("dir {} 755", h(&stage.join("x"))),
            format!("file {} 644 {}", h(&stage.join("x/auth.json")), hex(b"{}")),
            format!("link {} {}", h(&stage.join("x/l")), hex(b"auth.json")),
            format!("private {}", h(&stage.join("x"))),
            format!("chmod {} 700", h(&stage.join("x"))),
            format!("replace {} {}", h(&stage.join("x")), h(&target)),
            format!("rmdir {}", h(&stage)),
        ];
        for (i, o) in ops.iter().enumerate() {
            assert_eq!(a.handle(&format!("op ab {i} {o}")), None);
        }
        assert_eq!(
            a.handle(&format!("end ab {}", ops.len())).as_deref(),
            Some("ok ab")
        );
        assert!(!stage.exists() && !target.join("old").exists());
        assert_eq!(std::fs::read(target.join("l")).unwrap(), b"{}");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(
            (mode(&target), mode(&target.join("auth.json"))),
            (0o700, 0o600)
        );
        assert_eq!(
            a.handle(&format!("get 01 {}", h(&target.join("auth.json"))))
                .as_deref(),
            Some(format!("data 01 {}", hex(b"{}")).as_str())
        );
        assert_eq!(
            a.handle(&format!("get 02 {}", h(&t.join("no")))).as_deref(),
            Some("none 02")
        );
        assert_eq!(
            a.handle(&format!("get 03 {}", h(&target))).as_deref(),
            Some("err-get 03")
        );

        // A missing op (seq 1 never came), a failing one, or a wrong count: err-op, and
        // nothing after the failure is done.
        let f = t.join("f");
        a.handle(&format!("op cd 0 mkdirs {}", h(&t)));
        a.handle(&format!("op cd 2 file {} 600 00", h(&f)));
        assert_eq!(a.handle("end cd 3").as_deref(), Some("err-op cd"));
        assert!(!f.exists());
        a.handle(&format!("op ce 0 rmdir {}", h(&t.join("no"))));
        a.handle(&format!("op ce 1 file {} 600 00", h(&f)));
        assert_eq!(a.handle("end ce 2").as_deref(), Some("err-op ce"));
        assert!(!f.exists());
        a.handle(&format!("op cf 0 file {} 600 00", h(&f)));
        assert_eq!(a.handle("end cf 2").as_deref(), Some("err-op cf"));
        // Relative paths and bad modes are refused.
        assert!(op("mkdirs", &[&hex(b"rel/dir")]).is_err());
        assert!(op("chmod", &[&h(&f), "99"]).is_err());
        assert!(op("dir", &[&h(&t.join("d")), "70000"]).is_err());
        std::fs::remove_dir_all(&t).unwrap();
    }
}
