//! The host end of the clone agent's port: a second UART in the guest (`ttyS1`) whose
//! host end, in a clone's QEMU, is a Unix socket QEMU listens on
//! ([`AgentPort::Socket`](super::qemu::AgentPort)). smolvm writes one request line and
//! reads the guest's answer: a line `<word> <nonce>` echoing the request's nonce.
//!
//! The guest is hostile: what it sends is read bounded (at most [`MAX_READ`] bytes, within
//! the timeout), never shown, and only an answer word made of `[a-z-]` with the right
//! nonce is taken; anything else is skipped.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most the guest may send before its answer.
pub const MAX_READ: usize = 64 << 10;

/// The agent's answers.
pub const ANSWERS: [&str; 3] = ["ok", "err-addr", "err-seed"];

/// The answer of the first complete line of `text` that ends with `<answer> <nonce>` (a
/// line may start with what the guest's terminal echoed of the request), if any.
pub fn answer_in(text: &str, nonce: &str) -> Option<&'static str> {
    text.split('\n')
        // The last piece has no newline yet: not a complete line.
        .take(text.split('\n').count().saturating_sub(1))
        .map(|l| l.trim_end_matches('\r'))
        .find_map(|l| {
            let head = l.strip_suffix(nonce)?.strip_suffix(' ')?;
            ANSWERS.into_iter().find(|a| head.ends_with(a))
        })
}

/// `line` and its newline, padded with spaces to a multiple of 56 bytes: QEMU's 16550
/// raises the receive interrupt when its FIFO reaches the trigger level the guest set (1,
/// 4, 8 or 14 bytes) and delivers no more than that at once; a last piece below the level
/// waits for the FIFO timeout, so none is left.
pub fn padded(line: &str) -> String {
    let mut text = line.to_string();
    while !(text.len() + 1).is_multiple_of(56) {
        text.push(' ');
    }
    text.push('\n');
    text
}

/// How often a request is sent again while nothing answers: a safety net. The launch
/// waits until the agent has its port open before the snapshot is written, so a resumed
/// guest reads the first request (answered 55–90 ms after `cont` under TCG). An agent
/// started just before the snapshot had still to open its port after the resume, which
/// dropped what had come before: every first request was lost, and sending every 20 ms
/// pushed ten copies through the guest's 16-byte UART FIFO, an interrupt each, while TCG
/// translated the guest's code anew. The agent does a repeated line once.
pub const RESEND: Duration = Duration::from_millis(100);

/// Connect to the agent port at `socket` (retrying until `timeout`: QEMU creates it as it
/// starts), send `line` ([`padded`]; again every [`RESEND`] while nothing answers) and wait
/// for the answer to `nonce`.
pub async fn exchange(
    socket: &Path,
    line: &str,
    nonce: &str,
    timeout: Duration,
) -> io::Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream = loop {
        match super::launch::connect(socket).await {
            Ok(s) => break s,
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "the guest's agent did not answer");
    let text = padded(line);
    let mut got: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut resend = tokio::time::Instant::now();
    let (t0, mut sends) = (tokio::time::Instant::now(), 0u32);
    loop {
        if tokio::time::Instant::now() >= resend {
            sends += 1;
            tracing::debug!(
                sends,
                after_ms = t0.elapsed().as_millis() as u64,
                "agent: request sent"
            );
            tokio::time::timeout_at(deadline, stream.write_all(text.as_bytes()))
                .await
                .map_err(|_| timed_out())??;
            resend = tokio::time::Instant::now() + RESEND;
        }
        let n = match tokio::time::timeout_at(resend.min(deadline), stream.read(&mut buf)).await {
            Ok(r) => r?,
            Err(_) if tokio::time::Instant::now() >= deadline => return Err(timed_out()),
            Err(_) => continue,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the agent port closed before the guest answered",
            ));
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(w) = answer_in(&String::from_utf8_lossy(&got), nonce) {
            tracing::debug!(
                sends,
                after_ms = t0.elapsed().as_millis() as u64,
                "agent: answered"
            );
            return Ok(w.to_string());
        }
        if got.len() > MAX_READ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the guest sent too much on its agent port without answering",
            ));
        }
    }
}

/// One step of a forwarding batch (see `guest/agent.rs`): what the agent does, as root in
/// the guest, with paths and bytes the host chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Missing parents of a path (mode 0700).
    Mkdirs(PathBuf),
    Dir(PathBuf, u32),
    /// A new file with these bytes.
    File(PathBuf, u32, Vec<u8>),
    /// A symbolic link at the first path to the second.
    Link(PathBuf, PathBuf),
    /// Group and other bits off below the path (links untouched).
    Private(PathBuf),
    Chmod(PathBuf, u32),
    /// What is at the second path removed (unless both are files), the first renamed over it.
    Replace(PathBuf, PathBuf),
    Rmdir(PathBuf),
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hex_path(p: &Path) -> String {
    crate::sys::open::hex(p.as_os_str().as_encoded_bytes())
}

impl Op {
    /// The op's words on the wire (after `op NONCE SEQ`).
    fn words(&self) -> String {
        match self {
            Op::Mkdirs(p) => format!("mkdirs {}", hex_path(p)),
            Op::Dir(p, m) => format!("dir {} {m:o}", hex_path(p)),
            Op::File(p, m, d) => format!("file {} {m:o} {}", hex_path(p), crate::sys::open::hex(d)),
            Op::Link(p, t) => format!("link {} {}", hex_path(p), hex_path(t)),
            Op::Private(p) => format!("private {}", hex_path(p)),
            Op::Chmod(p, m) => format!("chmod {} {m:o}", hex_path(p)),
            Op::Replace(a, b) => format!("replace {} {}", hex_path(a), hex_path(b)),
            Op::Rmdir(p) => format!("rmdir {}", hex_path(p)),
        }
    }
}

/// The largest file a `get` answers with (the agent's own limit).
pub const MAX_FILE: usize = 1 << 20;

/// A conversation with a clone's agent after its re-addressing (a new connection to its
/// port: QEMU takes one client at a time and drops what the guest sends between them).
pub struct Link {
    stream: tokio::net::UnixStream,
    got: Vec<u8>,
}

impl Link {
    /// Connect, then `ping` until the agent answers, sent again every [`RESEND`]: a
    /// request lost on a new connection costs one resend, not the whole timeout (a `get`
    /// sent first went unanswered in two warm starts of six, from templates whose agent
    /// opened its port only after the resume).
    pub async fn connect(socket: &Path, timeout: Duration) -> io::Result<Link> {
        let mut link = Link {
            stream: super::launch::connect(socket).await?,
            got: Vec::new(),
        };
        let nonce = crate::sys::open::random_hex(8);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            link.send(&format!("ping {nonce}\n"), timeout).await?;
            let wait = (tokio::time::Instant::now() + RESEND).min(deadline);
            match link.answer(&nonce, 64 << 10, wait).await {
                Ok(_) => return Ok(link),
                Err(e)
                    if e.kind() == io::ErrorKind::TimedOut
                        && tokio::time::Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The guest's file at `path`: `None` when there is none.
    pub async fn get(&mut self, path: &Path, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let nonce = crate::sys::open::random_hex(8);
        let line = format!("get {nonce} {}\n", hex_path(path));
        self.send(&line, timeout).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let answer = self.answer(&nonce, 2 * MAX_FILE + 256, deadline).await?;
        let mut w = answer.split(' ');
        match (w.next(), w.next(), w.next()) {
            (Some("none"), None, _) => Ok(None),
            (Some("data"), Some(hex), None) => unhex(hex).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the guest's agent sent bad data",
                )
            }),
            _ => Err(io::Error::other(format!(
                "the guest's agent could not read {}",
                path.display()
            ))),
        }
    }

    /// Carry out `ops` in order; an error unless the agent did every one.
    pub async fn run(&mut self, ops: &[Op], timeout: Duration) -> io::Result<()> {
        let nonce = crate::sys::open::random_hex(8);
        let mut text = String::new();
        for (i, op) in ops.iter().enumerate() {
            text.push_str(&format!("op {nonce} {i} {}\n", op.words()));
        }
        text.push_str(&format!("end {nonce} {}\n", ops.len()));
        self.send(&text, timeout).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        match self.answer(&nonce, 64 << 10, deadline).await?.as_str() {
            "ok" => Ok(()),
            _ => Err(io::Error::other(
                "the guest's agent did not carry out every step",
            )),
        }
    }

    /// Send `text` (lines, the last one's newline included) [`padded`] as a whole, as
    /// [`exchange`] sends its line: no tail below the UART's trigger level is left to wait
    /// for the FIFO timeout.
    async fn send(&mut self, text: &str, timeout: Duration) -> io::Result<()> {
        let text = padded(text.strip_suffix('\n').unwrap_or(text));
        tokio::time::timeout(timeout, self.stream.write_all(text.as_bytes()))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "the guest's agent did not read")
            })?
    }

    /// The first complete line `WORD NONCE[ REST]` the guest sends: `WORD` alone, or
    /// `WORD REST` (read bounded by `max`, other lines skipped).
    async fn answer(
        &mut self,
        nonce: &str,
        max: usize,
        deadline: tokio::time::Instant,
    ) -> io::Result<String> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            while let Some(at) = self.got.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.got.drain(..=at).collect();
                let line = String::from_utf8_lossy(&line);
                let mut w = line.trim_end().splitn(3, ' ');
                let (word, n, rest) = (w.next().unwrap_or(""), w.next(), w.next());
                if n == Some(nonce)
                    && !word.is_empty()
                    && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                {
                    return Ok(match rest {
                        Some(r) => format!("{word} {r}"),
                        None => word.to_string(),
                    });
                }
            }
            if self.got.len() > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the guest sent too much on its agent port without answering",
                ));
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the guest's agent did not answer (it sent {} bytes of no complete line)",
                            self.got.len()
                        ),
                    )
                })??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the agent port closed before the guest answered",
                ));
            }
            self.got.extend_from_slice(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_complete_line_with_the_nonce_and_a_plain_word_answers() {
        assert_eq!(answer_in("ok n1\n", "n1"), Some("ok"));
        assert_eq!(answer_in("junk\r\nerr-seed n1\r\n", "n1"), Some("err-seed"));
        assert_eq!(answer_in("ok n1", "n1"), None, "no newline yet");
        assert_eq!(answer_in("ok n2\n", "n1"), None);
        assert_eq!(answer_in("readdr n1 172.16.0.3\n", "n1"), None);
        assert_eq!(answer_in("readdrok n1\n", "n1"), Some("ok"));
        assert_eq!(answer_in("\x1b[2J n1\n", "n1"), None);
        assert_eq!(answer_in("OK n1\n", "n1"), None);
        assert_eq!(answer_in("fine n1\n", "n1"), None);
    }

    #[tokio::test]
    async fn a_request_is_answered_over_a_real_socket_and_junk_is_bounded() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("agent-vm-a.sock");
        let l = tokio::net::UnixListener::bind(&p).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 64];
            let mut n = 0;
            while n < 56 {
                n += s.read(&mut b[n..]).await.unwrap();
            }
            assert_eq!(&b[..n], padded("readdr n9 x").as_bytes());
            assert!(b[..n].starts_with(b"readdr n9 x ") && b[n - 1] == b'\n' && n == 56);
            s.write_all(b"noise\nok n9\n").await.unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s.read(&mut b).await.unwrap();
            let junk = vec![b'x'; MAX_READ + 8192];
            let _ = s.write_all(&junk).await;
        });
        let w = exchange(&p, "readdr n9 x", "n9", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(w, "ok");
        let e = exchange(&p, "readdr n8 x", "n8", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        server.await.unwrap();
    }

    /// Everything a [`Link`] sends is a multiple of 56 bytes (no tail left in the UART's
    /// FIFO); its answers are matched by nonce, other lines skipped.
    #[tokio::test]
    async fn a_link_sends_whole_fifo_loads_and_reads_its_answers() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("agent-vm-b.sock");
        let l = tokio::net::UnixListener::bind(&p).unwrap();
        // A fake agent: the first ping goes unanswered (as a resumed guest's UART may
        // leave it), later ones are answered; every send is whole 56-byte loads.
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let (mut got, mut b, mut pings) = (Vec::new(), [0u8; 4096], 0);
            loop {
                let n = s.read(&mut b).await.unwrap();
                got.extend_from_slice(&b[..n]);
                if !got.ends_with(b"\n") {
                    continue;
                }
                assert_eq!(got.len() % 56, 0, "{}", String::from_utf8_lossy(&got));
                let text = String::from_utf8_lossy(&got).into_owned();
                got.clear();
                let last = text.lines().last().unwrap().to_string();
                let w: Vec<&str> = last.split_whitespace().collect();
                let reply = match w[0] {
                    "ping" => {
                        pings += 1;
                        if pings == 1 {
                            continue;
                        }
                        format!("ok {}", w[1])
                    }
                    "get" => format!("data {} 6869", w[1]),
                    "end" => format!("ok {}", w[1]),
                    other => panic!("{other}"),
                };
                let reply = format!("noise x\nok zz\n{reply}\n");
                s.write_all(reply.as_bytes()).await.unwrap();
                if w[0] == "end" {
                    return pings;
                }
            }
        });
        let five = Duration::from_secs(5);
        let mut link = Link::connect(&p, five).await.unwrap();
        let got = link.get(Path::new("/etc/x"), five).await.unwrap();
        assert_eq!(got.as_deref(), Some(&b"hi"[..]));
        let ops = [
            Op::Mkdirs("/root".into()),
            Op::File("/root/.x".into(), 0o600, b"secret".to_vec()),
        ];
        link.run(&ops, five).await.unwrap();
        assert!(
            server.await.unwrap() >= 2,
            "the unanswered ping was sent again"
        );
    }

    /// A guest that floods the port instead of answering is cut off at the bound, with
    /// nothing of what it sent in the error.
    #[tokio::test]
    async fn a_link_stops_reading_a_guest_that_floods_it() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("agent-vm-c.sock");
        let l = tokio::net::UnixListener::bind(&p).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let flood = vec![b'\x1b'; (64 << 10) + 4096];
            let _ = s.write_all(&flood).await;
            let mut b = [0u8; 4096];
            while s.read(&mut b).await.is_ok_and(|n| n > 0) {}
        });
        let e = Link::connect(&p, Duration::from_secs(5))
            .await
            .err()
            .expect("a flood is no answer");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(!e.to_string().contains('\x1b'), "{e}");
        server.abort();
    }
}
