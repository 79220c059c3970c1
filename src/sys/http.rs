//! Downloads: a blocking HTTP client (reqwest, rustls with the platform's CA roots, the
//! bundled ones only where the platform has none) with per-operation timeouts,
//! bounded retries with exponential backoff on 5xx, timeouts and broken connections, and
//! `Range` resume within one run. `file:` URLs stream the local file through the same
//! sink, so a directory is a complete release.
//!
//! Settings (through [`Env`]): `SMOLVM_HTTP_TIMEOUT_SECS` (connect and each read/write,
//! default 30), `SMOLVM_HTTP_RETRIES` (retries after the first try, default 4),
//! `SMOLVM_HTTP_BACKOFF_MS` (first backoff, doubling, default 500).

use std::io::{self, Read};
use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
pub use reqwest::Url;

use super::env::{BadSetting, Env};
use crate::sys::io_reason;

/// Where downloaded bytes go, in order.
pub trait Sink {
    /// The server's total size, when it says (called before the first byte of each
    /// response).
    fn total(&mut self, total: Option<u64>);
    /// The server restarted from byte 0 (it ignored a `Range`): drop what was received.
    fn restart(&mut self) -> io::Result<()>;
    /// The next bytes.
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
}

/// Why a download failed.
#[derive(Debug)]
pub enum FetchError {
    /// The server answered with an error status.
    Status(StatusCode),
    /// Could not reach the server or lost it (after all retries).
    Network(String),
    /// Writing what arrived failed (disk, decoder): never retried.
    Local(io::Error),
    /// The caller cancelled it (between chunks, before a try, during a back-off).
    Cancelled,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Status(s) => write!(f, "HTTP {s}"),
            FetchError::Network(m) => f.write_str(m),
            FetchError::Local(e) => f.write_str(&io_reason(e)),
            FetchError::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The most retries `SMOLVM_HTTP_RETRIES` may ask for.
pub const MAX_RETRIES: u64 = 100;
/// The longest first back-off `SMOLVM_HTTP_BACKOFF_MS` may ask for: one minute.
pub const MAX_BACKOFF_MS: u64 = 60_000;

/// Timeouts and retry policy.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
}

impl HttpConfig {
    /// From the environment; `SMOLVM_HTTP_TIMEOUT_SECS` goes through the one duration
    /// parser (more than 0, at most 24 h): anything else is a [`BadSetting`] naming it.
    pub fn from_env(env: &Env) -> Result<Self, BadSetting> {
        Ok(HttpConfig {
            timeout: Self::timeout(env)?,
            retries: Self::retries(env)?,
            backoff: Self::backoff(env)?,
        })
    }

    /// `SMOLVM_HTTP_TIMEOUT_SECS`: 30 s by default.
    pub fn timeout(env: &Env) -> Result<Duration, BadSetting> {
        env.seconds("SMOLVM_HTTP_TIMEOUT_SECS", Duration::from_secs(30), true)
    }

    /// `SMOLVM_HTTP_RETRIES`: 4 by default, at most [`MAX_RETRIES`].
    pub fn retries(env: &Env) -> Result<u32, BadSetting> {
        Ok(env.count("SMOLVM_HTTP_RETRIES", 4, 0, MAX_RETRIES)? as u32)
    }

    /// `SMOLVM_HTTP_BACKOFF_MS`: 500 ms by default, at most [`MAX_BACKOFF_MS`].
    pub fn backoff(env: &Env) -> Result<Duration, BadSetting> {
        Ok(Duration::from_millis(env.count(
            "SMOLVM_HTTP_BACKOFF_MS",
            500,
            0,
            MAX_BACKOFF_MS,
        )?))
    }
}

/// A client for one operation.
pub struct Http {
    client: reqwest::blocking::Client,
    cfg: HttpConfig,
}

/// Why one attempt stopped.
enum Attempt {
    Done,
    Retry(String),
    Fail(FetchError),
}

/// Whether the system has CA certificates to trust (`SSL_CERT_FILE`/`SSL_CERT_DIR`, or a
/// distribution's bundle). TLS trusts the platform's roots — so a corporate or
/// intercepting CA the host trusts works — and falls back to the bundled roots only
/// where the platform has none.
fn platform_roots_present() -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    set("SSL_CERT_FILE")
        || set("SSL_CERT_DIR")
        || [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/ca-bundle.pem",
            "/etc/ssl/cert.pem",
            "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        ]
        .iter()
        .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
}

impl Http {
    pub fn new(cfg: HttpConfig) -> Result<Self, FetchError> {
        let mut builder = reqwest::blocking::Client::builder();
        if !platform_roots_present() {
            // No CA bundle on this system: the roots shipped with smolvm instead.
            builder = builder.tls_certs_merge(
                webpki_root_certs::TLS_SERVER_ROOT_CERTS
                    .iter()
                    .filter_map(|der| reqwest::Certificate::from_der(der).ok()),
            );
        }
        let client = builder
            .connect_timeout(cfg.timeout)
            .timeout(cfg.timeout)
            .user_agent(concat!("smolvm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Network(format!("cannot start the HTTP client: {e}")))?;
        Ok(Http { client, cfg })
    }

    /// A small document (a manifest) in memory.
    pub fn get_bytes(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        struct Buf(Vec<u8>);
        impl Sink for Buf {
            fn total(&mut self, _: Option<u64>) {}
            fn restart(&mut self) -> io::Result<()> {
                self.0.clear();
                Ok(())
            }
            fn write(&mut self, c: &[u8]) -> io::Result<()> {
                self.0.extend_from_slice(c);
                Ok(())
            }
        }
        let mut b = Buf(Vec::new());
        self.download(url, &mut b, &mut |_, _| {})?;
        Ok(b.0)
    }

    /// Stream `url` into `sink`. Returns the number of bytes delivered. `on_retry` hears
    /// of each retry (attempt number from 1, reason) before its backoff.
    pub fn download(
        &self,
        url: &Url,
        sink: &mut dyn Sink,
        on_retry: &mut dyn FnMut(u32, &str),
    ) -> Result<u64, FetchError> {
        self.download_until(url, sink, on_retry, &|| false)
    }

    /// [`Http::download`] that stops with [`FetchError::Cancelled`] once `cancelled`
    /// says so: checked before each try, after each chunk and every 50 ms of a back-off
    /// (a read the server keeps silent ends at the timeout).
    pub fn download_until(
        &self,
        url: &Url,
        sink: &mut dyn Sink,
        on_retry: &mut dyn FnMut(u32, &str),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<u64, FetchError> {
        if url.scheme() == "file" {
            return read_file(url, sink);
        }
        let mut offset = 0u64;
        let mut failures = 0u32;
        // Never the query: a signed URL carries its credentials there.
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        loop {
            if cancelled() {
                return Err(FetchError::Cancelled);
            }
            tracing::debug!(url = %shown, offset, attempt = failures + 1, "downloading");
            match self.attempt(url, &mut offset, sink, cancelled) {
                Attempt::Done => return Ok(offset),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(reason) => {
                    failures += 1;
                    if failures > self.cfg.retries {
                        return Err(FetchError::Network(format!(
                            "{reason} (gave up after {failures} attempts)"
                        )));
                    }
                    tracing::warn!(url = %shown, attempt = failures, reason = %reason, "download failed; retrying");
                    on_retry(failures, &reason);
                    let wait = self
                        .cfg
                        .backoff
                        .saturating_mul(1 << (failures - 1).min(6))
                        .min(Duration::from_secs(30));
                    let until = std::time::Instant::now() + wait;
                    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
                        if cancelled() {
                            return Err(FetchError::Cancelled);
                        }
                        std::thread::sleep(left.min(Duration::from_millis(50)));
                    }
                }
            }
        }
    }

    fn attempt(
        &self,
        url: &Url,
        offset: &mut u64,
        sink: &mut dyn Sink,
        cancelled: &dyn Fn() -> bool,
    ) -> Attempt {
        let mut req = self.client.get(url.clone());
        if *offset > 0 {
            req = req.header(RANGE, format!("bytes={offset}-"));
        }
        let mut resp = match req.send() {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(describe(&e)),
        };
        let status = resp.status();
        let header_u64 = |r: &reqwest::blocking::Response, h| {
            r.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let length = header_u64(&resp, CONTENT_LENGTH);
        match status {
            StatusCode::OK => {
                if *offset > 0 {
                    if let Err(e) = sink.restart() {
                        return Attempt::Fail(FetchError::Local(e));
                    }
                    *offset = 0;
                }
            }
            StatusCode::PARTIAL_CONTENT if *offset > 0 => {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if start != Some(*offset) {
                    // A range we did not ask for: start over without one.
                    if let Err(e) = sink.restart() {
                        return Attempt::Fail(FetchError::Local(e));
                    }
                    *offset = 0;
                    return Attempt::Retry("the server resumed at the wrong offset".into());
                }
            }
            s if s.is_server_error()
                || s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT =>
            {
                return Attempt::Retry(format!("HTTP {s}"));
            }
            s => return Attempt::Fail(FetchError::Status(s)),
        }
        // Where the body ends, from byte 0 (a 200 starts there, a 206 at `offset`): the
        // sink's total. A length past the largest number is no honest server's answer.
        let expected_end = match length.map(|l| l.checked_add(*offset)) {
            Some(None) => {
                return Attempt::Fail(FetchError::Network(format!(
                    "the server resumed at byte {offset} with a body of {} bytes, more than \
                     any file",
                    length.unwrap_or_default()
                )))
            }
            end => end.flatten(),
        };
        sink.total(expected_end);
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Err(e) = sink.write(&buf[..n]) {
                        return Attempt::Fail(FetchError::Local(e));
                    }
                    *offset += n as u64;
                    if cancelled() {
                        return Attempt::Fail(FetchError::Cancelled);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Attempt::Retry(format!(
                        "connection lost after {offset} bytes: {}",
                        io_chain(&e)
                    ))
                }
            }
        }
        match expected_end {
            Some(end) if *offset < end => Attempt::Retry(format!(
                "connection closed before the full body arrived ({offset} of {end} bytes)"
            )),
            _ => Attempt::Done,
        }
    }
}

/// `bytes 100-199/200` → 100.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

fn read_file(url: &Url, sink: &mut dyn Sink) -> Result<u64, FetchError> {
    let path = url
        .to_file_path()
        .map_err(|_| FetchError::Network(format!("not a local file URL: {url}")))?;
    let mut f = std::fs::File::open(&path)
        .map_err(|e| FetchError::Network(format!("{}: {}", path.display(), io_reason(&e))))?;
    sink.total(f.metadata().ok().map(|m| m.len()));
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| FetchError::Network(format!("{}: {}", path.display(), io_reason(&e))))?;
        if n == 0 {
            return Ok(total);
        }
        sink.write(&buf[..n]).map_err(FetchError::Local)?;
        total += n as u64;
    }
}

/// A reqwest error with its causes, without the URL (the caller names it once).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !causes.contains(&t) {
            causes.push(t);
        }
        src = s.source();
    }
    if causes.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

fn io_chain(e: &io::Error) -> String {
    let mut parts = vec![io_reason(e)];
    let mut src = e.get_ref().and_then(|i| i.source());
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.contains(&t) {
            parts.push(t);
        }
        src = s.source();
    }
    let text = parts.join(": ");
    if text.to_lowercase().contains("timed out") || e.kind() == io::ErrorKind::TimedOut {
        if text.contains("timed out") {
            text
        } else {
            format!("timed out: {text}")
        }
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that cuts the body, then resumes with a `Content-Length` whose end passes
    /// the largest number: the download fails with a word why (it overflowed before).
    #[test]
    fn a_resumed_body_longer_than_any_file_is_refused() {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/f", l.local_addr().unwrap())).unwrap();
        std::thread::spawn(move || {
            for (i, conn) in l.incoming().take(2).enumerate() {
                let mut conn = conn.unwrap();
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let answer = if i == 0 {
                    "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_string() + &"x".repeat(100)
                } else {
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: 18446744073709551613\r\n\
                     Content-Range: bytes 100-999/1000\r\n\r\nxx"
                        .to_string()
                };
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        let env = Env::from_vars([("SMOLVM_HTTP_BACKOFF_MS", "10")], 1000);
        let http = Http::new(HttpConfig::from_env(&env).unwrap()).unwrap();
        let e = http.get_bytes(&url).unwrap_err();
        assert!(e.to_string().contains("more than any file"), "{e}");
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
    }

    #[test]
    fn config_from_env_with_defaults() {
        let c = HttpConfig::from_env(&Env::default()).unwrap();
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.retries, 4);
        let e = Env::from_vars(
            [
                ("SMOLVM_HTTP_TIMEOUT_SECS", "0.5"),
                ("SMOLVM_HTTP_RETRIES", "1"),
                ("SMOLVM_HTTP_BACKOFF_MS", "10"),
            ],
            1000,
        );
        let c = HttpConfig::from_env(&e).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.retries, 1);
        assert_eq!(c.backoff, Duration::from_millis(10));
        for bad in ["1e20", "inf", "0", "-1"] {
            let e = Env::from_vars([("SMOLVM_HTTP_TIMEOUT_SECS", bad)], 1000);
            let err = HttpConfig::from_env(&e).unwrap_err();
            assert!(
                err.message.starts_with("SMOLVM_HTTP_TIMEOUT_SECS must be"),
                "{err}"
            );
        }
    }
}
