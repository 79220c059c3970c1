//! The sandboxes' resolver: how names are allowed at connection time.
//!
//! A restricted sandbox with allowed names sends every DNS packet, to whatever address,
//! here (the guard redirects it). The resolver answers only names the sandbox's policy
//! allows, forwarding them to the host's own resolver; each answer's IPv4 addresses go
//! into that sandbox's set of reachable addresses for the record's TTL (at least 60 s)
//! before the answer reaches the guest. Other names are refused. An address no allowed
//! name produced, and no allowed range covers, stays unreachable.
//!
//! One resolver per data dir, started by the first sandbox that needs it (it outlives that
//! command), stopped with the last one ([`sync`]) and swept by `cleanup`. It binds as root,
//! forks its allower (the `smolvm` system user with only `CAP_NET_ADMIN`, which adds
//! addresses to the guard's sets and nothing else: [`allower`]), then runs as the `smolvm`
//! user with no capability at all: what reads the guests' packets cannot change the
//! host's network. If it dies, its sandboxes get no answers and no new addresses: they
//! fail closed.
//!
//! [`allower`]: crate::sys::resolver::allower

use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::policy::Domain;
use super::{rt, settings_of};
use crate::core::context::Ctx;
use crate::core::error::{Error, Result};
use crate::sys::env::Env;
use crate::sys::net::guard;
use crate::sys::resolver::allower::{self, Allow, Allower};
use crate::sys::state::StateStore;
use crate::sys::{dnswire, resolver as proc_};

/// The hidden subcommand the resolver process runs as.
pub const SUBCOMMAND: &str = crate::sys::resolver::SUBCOMMAND;

/// The shortest time an allowed address stays reachable after an answer.
pub const MIN_TTL_SECS: u64 = allower::MIN_TTL_SECS;
/// The longest (a day), whatever the record says.
const MAX_TTL_SECS: u64 = allower::MAX_TTL_SECS;
/// How long the resolver waits for the host's resolver.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(4);
/// Queries answered at once; more are dropped until one ends.
const MAX_IN_FLIGHT: usize = 256;
/// How long a starting resolver may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One sandbox the resolver serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub vm_id: String,
    pub ip: Ipv4Addr,
    pub tap: String,
    pub domains: Vec<Domain>,
}

/// Every sandbox with allowed names and an address, and whether one of them needs the
/// resolver now (running, paused, or `starting`).
fn wanted(store: &StateStore, starting: Option<&str>) -> Result<(Vec<Entry>, bool)> {
    let rows = store.list_vms().map_err(rt)?;
    let mut entries = Vec::new();
    let mut needed = false;
    for row in &rows.vms {
        let s = settings_of(store, row);
        if !s.internet.needs_resolver() {
            continue;
        }
        let Some(net) = &row.network else { continue };
        let (Some(ip), Some(tap)) = (
            net.guest_ip.as_deref().and_then(|s| s.parse().ok()),
            net.tap_device.clone(),
        ) else {
            continue;
        };
        if !crate::sys::state::is_smolvm_tap(&tap) {
            continue;
        }
        needed |= row.status.is_active() || Some(row.id.as_str()) == starting;
        entries.push(Entry {
            vm_id: row.id.clone(),
            ip,
            tap,
            domains: s.internet.allowed_domains.clone(),
        });
    }
    Ok((entries, needed))
}

/// Make the resolver match the sandboxes: running (and knowing every sandbox with allowed
/// names) while one of them runs or is `starting`, stopped otherwise. A resolver that is
/// not provably ours is never signalled: that is an error.
pub async fn sync(ctx: &Ctx, starting: Option<&str>) -> Result<()> {
    sync_with(&ctx.store, &ctx.data_dir, starting).await
}

/// [`sync`] for a store and its data dir (cleanup's, which has no start context).
pub async fn sync_with(store: &StateStore, data_dir: &Path, starting: Option<&str>) -> Result<()> {
    let (entries, needed) = wanted(store, starting)?;
    let data_dir = data_dir.to_path_buf();
    let exe = std::env::current_exe().map_err(rt)?;
    let running = {
        let d = data_dir.clone();
        tokio::task::spawn_blocking(move || proc_::prove(&d))
            .await
            .map_err(rt)?
    };
    let running = running.map_err(|e| {
        Error::runtime(format!(
            "the sandboxes' resolver: {}",
            crate::sys::io_reason(&e)
        ))
    })?;
    if !needed {
        if let Some((owned, _)) = running {
            stop(&data_dir, owned).await;
        }
        return Ok(());
    }
    let record = match running {
        Some((_, r)) => r,
        None => start(&exe, &data_dir).await?,
    };
    let d = data_dir.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        guard::set_resolver_port(record.port)?;
        let (answer, _) = proc_::request(
            &d,
            &serde_json::json!({"op": "set", "entries": entries}),
            Duration::from_secs(5),
        )?;
        if answer.get("ok").and_then(|v| v.as_bool()) == Some(true) {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "refused the sandboxes: {answer}"
            )))
        }
    })
    .await
    .map_err(rt)?
    .map_err(|e| {
        Error::runtime(format!(
            "the sandboxes' resolver: {}",
            crate::sys::io_reason(&e)
        ))
    })
}

async fn stop(data_dir: &Path, owned: crate::sys::process::OwnedProcess) {
    let d = data_dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || {
        proc_::request(
            &d,
            &serde_json::json!({"op": "quit"}),
            Duration::from_secs(2),
        )
    })
    .await;
    if !owned.wait_exit(Duration::from_secs(3)).await {
        let _ = owned.signal(crate::sys::signals::SIGKILL);
        owned.wait_exit(Duration::from_secs(3)).await;
    }
    proc_::forget(data_dir);
}

async fn start(exe: &Path, data_dir: &Path) -> Result<proc_::Record> {
    let (exe, d) = (exe.to_path_buf(), data_dir.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<proc_::Record> {
        crate::sys::users::ensure_service_user().map_err(rt)?;
        let mut child = proc_::spawn(&exe, &d).map_err(|e| {
            rt(format!(
                "cannot start the sandboxes' resolver: {}",
                crate::sys::io_reason(&e)
            ))
        })?;
        let pid = child.id() as i32;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(d.join(proc_::LOG)).unwrap_or_default();
                let last = log.lines().last().unwrap_or("").to_string();
                return Err(rt(format!(
                    "the sandboxes' resolver exited at start ({status}): {last}"
                )));
            }
            if let Ok(Some((_, r))) = proc_::prove(&d) {
                if r.pid == pid {
                    // Reaped when it exits, for a long-lived caller (the dashboard).
                    std::thread::spawn(move || child.wait());
                    return Ok(r);
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(rt("the sandboxes' resolver did not answer within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .map_err(rt)?
}

// ---- the resolver process ----

/// Log lines in one burst at the most, and lines a second after it: a guest sending names
/// as fast as it can must not fill the host's disk through the resolver's log.
const LOG_BURST: f64 = 100.0;
const LOG_PER_SEC: f64 = 10.0;
/// Past this size the log starts again (emptied, with a line saying so).
const LOG_MAX_BYTES: u64 = 8 << 20;

/// A token bucket over the log's lines, and how many it left out.
#[derive(Debug)]
struct LogLimit {
    tokens: f64,
    last: Instant,
    left_out: u64,
}

impl LogLimit {
    fn new(now: Instant) -> LogLimit {
        LogLimit {
            tokens: LOG_BURST,
            last: now,
            left_out: 0,
        }
    }

    /// Whether a line may be written at `now`: `Some(n)`, with the `n` lines left out
    /// since the last one written; `None`, left out.
    fn take(&mut self, now: Instant) -> Option<u64> {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * LOG_PER_SEC;
        self.tokens = (self.tokens + refill).min(LOG_BURST);
        self.last = now;
        if self.tokens < 1.0 {
            self.left_out += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(std::mem::take(&mut self.left_out))
    }
}

static LOG_LIMIT: Mutex<Option<LogLimit>> = Mutex::new(None);

fn log(line: &str) {
    let now = Instant::now();
    let mut limit = LOG_LIMIT.lock().unwrap_or_else(|p| p.into_inner());
    let Some(left_out) = limit.get_or_insert_with(|| LogLimit::new(now)).take(now) else {
        return;
    };
    let at = crate::sys::time::iso_now();
    let mut err = std::io::stderr();
    if crate::sys::logfile::empty_past(&err, LOG_MAX_BYTES, 0).unwrap_or(false) {
        let _ = writeln!(
            err,
            "{at} (the log passed {LOG_MAX_BYTES} bytes: started again)"
        );
    }
    if left_out > 0 {
        let _ = writeln!(
            err,
            "{at} ({left_out} lines left out: more than {LOG_PER_SEC} a second)"
        );
    }
    let _ = writeln!(err, "{at} {line}");
}

struct State {
    by_ip: HashMap<Ipv4Addr, Entry>,
    /// When each (tap, address) allowed by an answer expires in the guard.
    allowed_until: HashMap<(String, Ipv4Addr), Instant>,
}

/// `smolvm __egress-dns --data-dir DIR`: run the resolver until told to quit. Binds as
/// root, records itself, forks its allower, then drops to the `smolvm` user with no
/// capability.
pub fn serve_main(args: &[std::ffi::OsString], env: &Env) -> i32 {
    match serve(args, env) {
        Ok(()) => 0,
        Err(e) => {
            log(&format!("error: {e}"));
            1
        }
    }
}

fn serve(args: &[std::ffi::OsString], env: &Env) -> std::result::Result<(), String> {
    let data_dir = match args {
        [flag, dir] if flag == "--data-dir" => PathBuf::from(dir),
        _ => return Err("usage: smolvm __egress-dns --data-dir DIR".into()),
    };
    if !data_dir.is_absolute() || !data_dir.is_dir() {
        return Err(format!("{} is not a directory", data_dir.display()));
    }
    let upstream = proc_::upstream(env.get_str("SMOLVM_EGRESS_DNS_UPSTREAM"))?;
    let (udp, tcp, port) = proc_::bind_listeners().map_err(|e| format!("bind: {e}"))?;
    let ctl = proc_::control_listener(&data_dir).map_err(|e| format!("control socket: {e}"))?;
    let record = proc_::Record {
        pid: std::process::id() as i32,
        start_ticks: proc_::own_start_ticks().map_err(|e| e.to_string())?,
        port,
    };
    proc_::write_record(&data_dir, &record).map_err(|e| format!("record: {e}"))?;
    let user = crate::sys::users::ensure_service_user().map_err(|e| e.to_string())?;
    let allower = allower::fork(user, &[udp.as_raw_fd(), tcp.as_raw_fd(), ctl.as_raw_fd()])
        .map_err(|e| format!("allower: {e}"))?;
    crate::sys::users::drop_to(user, &[]).map_err(|e| format!("dropping privileges: {e}"))?;
    log(&format!(
        "listening on {}:{port} (udp, tcp) as uid {} without capabilities, forwarding to \
         {upstream}; allower: process {}",
        crate::sys::net::HOST_IP,
        user.uid,
        allower.pid
    ));
    let allower = Arc::new(allower);
    for s in [
        udp.set_nonblocking(true),
        tcp.set_nonblocking(true),
        ctl.set_nonblocking(true),
    ] {
        s.map_err(|e| e.to_string())?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let state = Arc::new(Mutex::new(State {
            by_ip: HashMap::new(),
            allowed_until: HashMap::new(),
        }));
        let udp = Arc::new(tokio::net::UdpSocket::from_std(udp).map_err(|e| e.to_string())?);
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(|e| e.to_string())?;
        let ctl = tokio::net::UnixListener::from_std(ctl).map_err(|e| e.to_string())?;
        let (quit_tx, mut quit_rx) = tokio::sync::mpsc::channel::<()>(1);
        // At most this many queries in flight (UDP and TCP together): a guest flooding
        // the resolver gets its excess dropped, never unbounded tasks and sockets.
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        {
            let (udp, state, in_flight) = (udp.clone(), state.clone(), in_flight.clone());
            let allower = allower.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                        continue;
                    };
                    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                        continue;
                    };
                    let q = buf[..n].to_vec();
                    let (udp, state, allower) = (udp.clone(), state.clone(), allower.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        let reply = answer(&state, &allower, &q, from, upstream, false).await;
                        if let Some(reply) = reply {
                            let _ = udp.send_to(&reply, from).await;
                        }
                    });
                }
            });
        }
        {
            let (state, in_flight) = (state.clone(), in_flight.clone());
            let allower = allower.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut s, from)) = tcp.accept().await else {
                        continue;
                    };
                    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                        continue;
                    };
                    let (state, allower) = (state.clone(), allower.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        let _ = tokio::time::timeout(Duration::from_secs(10), async {
                            let mut len = [0u8; 2];
                            s.read_exact(&mut len).await.ok()?;
                            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                            s.read_exact(&mut q).await.ok()?;
                            let reply = answer(&state, &allower, &q, from, upstream, true).await?;
                            let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                            out.extend_from_slice(&reply);
                            s.write_all(&out).await.ok()
                        })
                        .await;
                    });
                }
            });
        }
        {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((s, _)) = ctl.accept().await else {
                        continue;
                    };
                    let (state, quit_tx) = (state.clone(), quit_tx.clone());
                    tokio::spawn(async move {
                        let (r, mut w) = s.into_split();
                        let mut line = String::new();
                        if BufReader::new(r).read_line(&mut line).await.is_err() {
                            return;
                        }
                        let (reply, quit) = control(&state, &line, port);
                        let _ = w.write_all(format!("{reply}\n").as_bytes()).await;
                        if quit {
                            let _ = quit_tx.send(()).await;
                        }
                    });
                }
            });
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = quit_rx.recv() => log("asked to quit"),
            _ = term.recv() => log("terminated"),
        }
        Ok::<(), String>(())
    })
}

fn control(state: &Mutex<State>, line: &str, port: u16) -> (serde_json::Value, bool) {
    let v: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return (
                serde_json::json!({"ok": false, "error": e.to_string()}),
                false,
            )
        }
    };
    match v.get("op").and_then(|o| o.as_str()) {
        Some("hello") => (
            serde_json::json!({"ok": true, "pid": std::process::id(), "port": port}),
            false,
        ),
        Some("quit") => (serde_json::json!({"ok": true}), true),
        Some("set") => {
            let entries: Vec<Entry> = match v
                .get("entries")
                .cloned()
                .map(serde_json::from_value)
                .unwrap_or(Ok(Vec::new()))
            {
                Ok(e) => e,
                Err(e) => {
                    return (
                        serde_json::json!({"ok": false, "error": e.to_string()}),
                        false,
                    )
                }
            };
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            st.by_ip = entries.into_iter().map(|e| (e.ip, e)).collect();
            // A sync comes with some sandbox's guard written anew (its start, or before and
            // after its `network set`), whose set of resolved addresses starts empty.
            // Forget every address allowed so far: the next answer of each name asks the
            // allower again (one request more), never trusts a set that was flushed.
            st.allowed_until.clear();
            log(&format!("serving {} sandbox(es)", st.by_ip.len()));
            (serde_json::json!({"ok": true}), false)
        }
        _ => (
            serde_json::json!({"ok": false, "error": "unknown op"}),
            false,
        ),
    }
}

/// The reply to one query from `from` (`None`: nothing is sent back).
async fn answer(
    state: &Arc<Mutex<State>>,
    allower: &Arc<Allower>,
    q: &[u8],
    from: SocketAddr,
    upstream: SocketAddr,
    tcp: bool,
) -> Option<Vec<u8>> {
    let question = dnswire::parse_query(q)?;
    let SocketAddr::V4(from4) = from else {
        return None;
    };
    // The name as the log shows it: a guest's bytes, so escaped (an operator reads the log
    // on a terminal; a newline would forge a line of its own).
    let name = crate::core::escape::escape_line(question.name.as_bytes());
    let entry = {
        let st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.by_ip.get(from4.ip()).cloned()
    };
    let Some(entry) = entry else {
        log(&format!("refused {name} from unknown {}", from4.ip()));
        return Some(dnswire::reply_code(q, &question, 5));
    };
    if !entry.domains.iter().any(|d| d.matches(&question.name)) {
        log(&format!("refused {name} for {} (not allowed)", entry.vm_id));
        return Some(dnswire::reply_code(q, &question, 5));
    }
    let resp = match forward(q, upstream, tcp).await {
        Some(r) if dnswire::message_id(&r) == Some(question.id) => r,
        _ => {
            log(&format!("no answer from {upstream} for {name}"));
            return Some(dnswire::reply_code(q, &question, 2));
        }
    };
    let now = Instant::now();
    let mut by_ttl: HashMap<u64, Vec<Ipv4Addr>> = HashMap::new();
    {
        let st = state.lock().unwrap_or_else(|p| p.into_inner());
        for (addr, ttl) in dnswire::answer_addrs(&resp) {
            if !allower::nameable(addr) {
                let why = if crate::sys::net::in_lan_ranges(addr) {
                    "a LAN address, reachable only through an --allow-cidr range"
                } else {
                    "never reachable by name"
                };
                log(&format!(
                    "not allowing {addr} for {} ({name}): {why}",
                    entry.vm_id
                ));
                continue;
            }
            let ttl = (ttl as u64).clamp(MIN_TTL_SECS, MAX_TTL_SECS);
            let fresh = st
                .allowed_until
                .get(&(entry.tap.clone(), addr))
                .is_some_and(|until| *until > now + Duration::from_secs(ttl / 2));
            if !fresh {
                by_ttl.entry(ttl).or_default().push(addr);
            }
        }
    }
    let requests = by_ttl.into_iter().flat_map(|(ttl, addrs)| {
        addrs
            .chunks(allower::MAX_ADDRS)
            .map(|a| (ttl, a.to_vec()))
            .collect::<Vec<_>>()
    });
    for (ttl, addrs) in requests {
        let req = Allow {
            tap: entry.tap.clone(),
            ttl_secs: ttl,
            addrs: addrs.clone(),
        };
        let allower = allower.clone();
        let r = tokio::task::spawn_blocking(move || allower.allow(&req)).await;
        match r {
            Ok(Ok(())) => {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                for addr in &addrs {
                    st.allowed_until
                        .insert((entry.tap.clone(), *addr), now + Duration::from_secs(ttl));
                }
                log(&format!(
                    "allowed {name} for {}: {:?} for {ttl} s",
                    entry.vm_id, addrs
                ));
            }
            Ok(Err(e)) => {
                log(&format!(
                    "cannot allow {:?} for {}: {e}",
                    addrs, entry.vm_id
                ));
                return Some(dnswire::reply_code(q, &question, 2));
            }
            Err(_) => return Some(dnswire::reply_code(q, &question, 2)),
        }
    }
    Some(resp)
}

/// Ask the host's resolver (UDP, or TCP for a TCP client).
async fn forward(q: &[u8], upstream: SocketAddr, tcp: bool) -> Option<Vec<u8>> {
    tokio::time::timeout(UPSTREAM_TIMEOUT, async {
        if tcp {
            let mut s = tokio::net::TcpStream::connect(upstream).await.ok()?;
            let mut out = (q.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(q);
            s.write_all(&out).await.ok()?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.ok()?;
            let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut r).await.ok()?;
            Some(r)
        } else {
            let bind: SocketAddr = if upstream.is_ipv4() {
                "0.0.0.0:0".parse().ok()?
            } else {
                "[::]:0".parse().ok()?
            };
            let s = tokio::net::UdpSocket::bind(bind).await.ok()?;
            s.send_to(q, upstream).await.ok()?;
            let mut buf = vec![0u8; 65535];
            loop {
                let (n, from) = s.recv_from(&mut buf).await.ok()?;
                if from == upstream {
                    return Some(buf[..n].to_vec());
                }
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_log_lines_is_cut_to_a_burst_then_a_rate_and_counted() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(t0);
        let written = (0..1000).filter(|_| l.take(t0).is_some()).count();
        assert_eq!(written, LOG_BURST as usize);
        // A second later, ten more; the first says how many were left out before it.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.take(t1), Some(900));
        let more = (0..100).filter(|_| l.take(t1).is_some()).count();
        assert_eq!(more, LOG_PER_SEC as usize - 1);
        // Quiet for a while: the whole burst again, never more.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(l.take(t2), Some(91));
        let burst = (0..1000).filter(|_| l.take(t2).is_some()).count();
        assert_eq!(burst, LOG_BURST as usize - 1);
    }
}
