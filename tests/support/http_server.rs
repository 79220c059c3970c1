//! A small real HTTP/1.1 server on 127.0.0.1 for download tests: serves files from a
//! directory, honours `Range`, counts requests per path, and can be told per path to
//! answer 404/500, stall after some bytes, reset the connection mid-body (a given number
//! of times), or trickle slowly. Thread per connection; `Connection: close` always.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server answers one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Serve the file (and `Range`).
    Normal,
    /// Answer with this status and a short body.
    Status(u16),
    /// Send headers and this many body bytes, then hold the connection open silently
    /// until the server stops.
    Stall(usize),
    /// Send headers and this many body bytes, then reset the connection; the first `n`
    /// requests do this, later ones are served normally (with `Range`).
    ResetAfter { bytes: usize, times: usize },
    /// Announce the full length, send this many bytes and close cleanly (a truncated
    /// body), every time.
    Truncate(usize),
    /// Serve normally but sleep this long between 64 KiB pieces.
    Slow(Duration),
    /// Ignore `Range` and always send the whole file with 200.
    NoRange,
    /// A body that never ends: 200 without a length, the file's bytes repeated until the
    /// client goes away or the server stops.
    Endless,
}

#[derive(Default)]
struct State {
    behaviour: HashMap<String, Behaviour>,
    requests: HashMap<String, usize>,
    ranges: Vec<(String, String)>,
    bytes_sent: HashMap<String, usize>,
}

pub struct Server {
    pub root: PathBuf,
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serve `root` on an ephemeral 127.0.0.1 port.
    pub fn start(root: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, rt) = (state.clone(), stop.clone(), root.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, sp, rt) = (st.clone(), sp.clone(), rt.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &rt, &st, &sp);
                });
            }
        });
        Server {
            root,
            port,
            state,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    pub fn set(&self, path: &str, b: Behaviour) {
        self.state
            .lock()
            .unwrap()
            .behaviour
            .insert(format!("/{}", path.trim_start_matches('/')), b);
    }

    /// GET requests seen for `path`.
    pub fn requests(&self, path: &str) -> usize {
        let key = format!("/{}", path.trim_start_matches('/'));
        *self.state.lock().unwrap().requests.get(&key).unwrap_or(&0)
    }

    /// `Range` headers seen for `path`.
    pub fn ranges(&self, path: &str) -> Vec<String> {
        let key = format!("/{}", path.trim_start_matches('/'));
        let s = self.state.lock().unwrap();
        s.ranges
            .iter()
            .filter(|(p, _)| *p == key)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Body bytes written for `path` so far (all requests).
    pub fn bytes_sent(&self, path: &str) -> usize {
        let key = format!("/{}", path.trim_start_matches('/'));
        *self
            .state
            .lock()
            .unwrap()
            .bytes_sent
            .get(&key)
            .unwrap_or(&0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn handle(
    conn: TcpStream,
    root: &std::path::Path,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range: Option<String> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/").to_string();
    let mut out = conn;
    let behaviour = {
        let mut s = state.lock().unwrap();
        let n = s.requests.entry(path.clone()).or_insert(0);
        *n += 1;
        let count = *n;
        if let Some(r) = &range {
            s.ranges.push((path.clone(), r.clone()));
        }
        let b = s.behaviour.get(&path).cloned().unwrap_or(Behaviour::Normal);
        match b {
            Behaviour::ResetAfter { times, .. } if count > times => Behaviour::Normal,
            other => other,
        }
    };
    if method != "GET" {
        return respond_status(&mut out, 405);
    }
    if let Behaviour::Status(code) = behaviour {
        return respond_status(&mut out, code);
    }
    let rel = path.trim_start_matches('/');
    let file = root.join(rel);
    if rel.split('/').any(|s| s == "..") || !file.is_file() {
        return respond_status(&mut out, 404);
    }
    let data = std::fs::read(&file)?;
    let mut start = 0usize;
    let use_range = behaviour != Behaviour::NoRange;
    if let (true, Some(r)) = (use_range, &range) {
        if let Some(s) = r
            .strip_prefix("bytes=")
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse::<usize>().ok())
        {
            start = s.min(data.len());
        }
    }
    let body = &data[start..];
    if behaviour == Behaviour::Endless {
        out.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        )?;
        let chunk = if data.is_empty() {
            vec![0x5a; 64 << 10]
        } else {
            data.clone()
        };
        while !stop.load(Ordering::SeqCst) {
            out.write_all(&chunk)?;
        }
        return Ok(());
    }
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
            body.len(),
            start,
            data.len().saturating_sub(1),
            data.len()
        )
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            body.len()
        )
    };
    out.write_all(head.as_bytes())?;
    let count = |n: usize| {
        *state
            .lock()
            .unwrap()
            .bytes_sent
            .entry(path.clone())
            .or_insert(0) += n;
    };
    match behaviour {
        Behaviour::Stall(n) => {
            let n = n.min(body.len());
            out.write_all(&body[..n])?;
            out.flush()?;
            count(n);
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        }
        Behaviour::ResetAfter { bytes, .. } => {
            let n = bytes.min(body.len());
            out.write_all(&body[..n])?;
            out.flush()?;
            count(n);
            // SO_LINGER 0 turns close into a TCP RST.
            socket2_linger_zero(&out);
            Ok(())
        }
        Behaviour::Truncate(n) => {
            // Cut at absolute offset n, whatever range was asked for.
            let n = n.saturating_sub(start).min(body.len());
            out.write_all(&body[..n])?;
            count(n);
            out.shutdown(Shutdown::Both)
        }
        Behaviour::Slow(d) => {
            for c in body.chunks(64 << 10) {
                out.write_all(c)?;
                out.flush()?;
                count(c.len());
                std::thread::sleep(d);
            }
            Ok(())
        }
        _ => {
            out.write_all(body)?;
            count(body.len());
            out.flush()
        }
    }
}

/// Set `SO_LINGER {on, 0}` so that closing sends a reset.
fn socket2_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn respond_status(out: &mut TcpStream, code: u16) -> std::io::Result<()> {
    let reason = match code {
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        405 => "Method Not Allowed",
        _ => "Status",
    };
    let body = format!("{code} {reason}\n");
    write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}
