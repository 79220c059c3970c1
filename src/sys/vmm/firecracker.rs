//! Firecracker's HTTP API over its Unix socket: a minimal HTTP/1.1 client (one request per
//! connection). Firecracker's fault messages are surfaced verbatim.

use std::io;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// A response: status code and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// Firecracker's `fault_message`, or the raw body.
    pub fn fault(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| {
                v.get("fault_message")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .unwrap_or_else(|| self.body.trim().to_string())
    }
}

/// One request to the API socket, within `timeout`.
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> io::Result<Response> {
    tokio::time::timeout(timeout, request_inner(socket, method, path, body))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "Firecracker API request timed out"))?
}

async fn request_inner(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> io::Result<Response> {
    let mut s = UnixStream::connect(socket).await?;
    // SmolVM sends compact JSON (`separators=(",", ":")`); serde_json's default is compact.
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    if body.is_some() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&payload);
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(resp) = parse(&buf)? {
            return Ok(resp);
        }
    }
    parse(&buf)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "Firecracker closed the connection mid-response",
        )
    })
}

/// A complete response in `buf`, or `None` if more bytes are needed.
fn parse(buf: &[u8]) -> io::Result<Option<Response>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad HTTP status line"))?;
    let len = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let body = &buf[end + 4..];
    if body.len() < len {
        return Ok(None);
    }
    Ok(Some(Response {
        status,
        body: String::from_utf8_lossy(&body[..len]).into_owned(),
    }))
}

/// `PUT /actions {"action_type":"SendCtrlAltDel"}`: ask the guest to shut down.
pub async fn send_ctrl_alt_del(socket: &Path, timeout: Duration) -> io::Result<()> {
    let body = serde_json::json!({"action_type": "SendCtrlAltDel"});
    let r = request(socket, "PUT", "/actions", Some(&body), timeout).await?;
    if r.status == 200 || r.status == 204 {
        Ok(())
    } else {
        Err(io::Error::other(format!("API error: {}", r.fault())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses_and_faults() {
        assert_eq!(parse(b"HTTP/1.1 204 No Content\r\n").unwrap(), None);
        let r = parse(b"HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 204);
        let raw = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 40\r\n\r\n{\"fault_message\":\"Invalid action type\"}\n";
        let r = parse(raw).unwrap().unwrap();
        assert_eq!(
            (r.status, r.fault()),
            (400, "Invalid action type".to_string())
        );
        assert_eq!(parse(&raw[..raw.len() - 5]).unwrap(), None);
    }
}
