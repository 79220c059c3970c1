//! Firecracker's HTTP API over its Unix socket: a minimal HTTP/1.1 client (one request per
//! connection). Firecracker's fault messages are surfaced verbatim.

use std::io;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let mut s = super::launch::connect(socket).await?;
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

/// SmolVM's message for a missing binary.
pub const NOT_FOUND: &str = "Firecracker binary not found. Install it with: smolvm.host.manager.HostManager().install_firecracker()";

/// One guest's configuration, as SmolVM sends it.
#[derive(Debug, Clone)]
pub struct FcConfig {
    pub kernel: std::path::PathBuf,
    pub boot_args: String,
    pub vcpus: u32,
    pub mem_mib: u32,
    pub rootfs: std::path::PathBuf,
    pub tap: String,
    pub mac: String,
}

impl FcConfig {
    /// SmolVM's start sequence: (method, path, body), InstanceStart last.
    pub fn requests(&self) -> Vec<(&'static str, String, Value)> {
        use serde_json::json;
        vec![
            (
                "PUT",
                "/boot-source".into(),
                json!({
                    "kernel_image_path": self.kernel, "boot_args": self.boot_args
                }),
            ),
            (
                "PUT",
                "/machine-config".into(),
                json!({
                    "vcpu_count": self.vcpus, "mem_size_mib": self.mem_mib
                }),
            ),
            (
                "PUT",
                "/drives/rootfs".into(),
                json!({
                    "drive_id": "rootfs", "path_on_host": self.rootfs,
                    "is_root_device": true, "is_read_only": false
                }),
            ),
            (
                "PUT",
                "/network-interfaces/eth0".into(),
                json!({
                    "iface_id": "eth0", "host_dev_name": self.tap, "guest_mac": self.mac
                }),
            ),
            (
                "PUT",
                "/actions".into(),
                json!({"action_type": "InstanceStart"}),
            ),
        ]
    }
}

/// An API call that did not succeed: Firecracker's fault message verbatim, or the
/// transport error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("API error: {message} ({method} {path}, HTTP {status})")]
    Fault {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("Request failed: {0}")]
    Transport(String),
}

/// One call that must answer 200 or 204.
pub async fn call(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(), ApiError> {
    match request(socket, method, path, body, timeout).await {
        Ok(r) if r.status == 200 || r.status == 204 => Ok(()),
        Ok(r) => Err(ApiError::Fault {
            method: method.into(),
            path: path.into(),
            status: r.status,
            message: r.fault(),
        }),
        Err(e) => Err(ApiError::Transport(e.to_string())),
    }
}

/// `PATCH /vm {"state": "Paused"|"Resumed"}`: pause or resume the guest's vCPUs.
pub async fn set_paused(socket: &Path, paused: bool, timeout: Duration) -> Result<(), ApiError> {
    let state = if paused { "Paused" } else { "Resumed" };
    call(
        socket,
        "PATCH",
        "/vm",
        Some(&serde_json::json!({ "state": state })),
        timeout,
    )
    .await
}

/// `PUT /snapshot/create` (Full) of a paused VM: its state to `state`, its memory to `mem`
/// (files Firecracker creates; the caller gives names in a fresh private directory).
pub async fn snapshot_create(
    socket: &Path,
    state: &Path,
    mem: &Path,
    timeout: Duration,
) -> Result<(), ApiError> {
    let body = serde_json::json!({
        "snapshot_type": "Full", "snapshot_path": state, "mem_file_path": mem
    });
    call(socket, "PUT", "/snapshot/create", Some(&body), timeout).await
}

/// `PUT /snapshot/load` into a fresh Firecracker process: state and memory files, resumed
/// at once when `resume`.
pub async fn snapshot_load(
    socket: &Path,
    state: &Path,
    mem: &Path,
    resume: bool,
    timeout: Duration,
) -> Result<(), ApiError> {
    let body = serde_json::json!({
        "snapshot_path": state,
        "mem_backend": { "backend_type": "File", "backend_path": mem },
        "resume_vm": resume
    });
    call(socket, "PUT", "/snapshot/load", Some(&body), timeout).await
}

/// Wait until the API socket accepts connections (or `timeout`).
pub async fn wait_for_socket(socket: &Path, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if super::launch::connect(socket).await.is_ok() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Send the whole configuration and `InstanceStart`. An InstanceStart whose transport
/// failed is retried once; "not supported after starting the microVM" then means it did
/// start (SmolVM's rule).
pub async fn configure_and_start(
    socket: &Path,
    cfg: &FcConfig,
    timeout: Duration,
) -> Result<(), ApiError> {
    for (method, path, body) in cfg.requests() {
        let r = call(socket, method, &path, Some(&body), timeout).await;
        match r {
            Err(ApiError::Transport(_)) if path == "/actions" => {
                match call(socket, method, &path, Some(&body), timeout).await {
                    Err(ApiError::Fault { message, .. })
                        if message.contains("not supported after starting the microVM") => {}
                    other => other?,
                }
            }
            other => other?,
        }
    }
    Ok(())
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

    #[test]
    fn start_sequence_is_smolvms() {
        let cfg = FcConfig {
            kernel: "/k/vmlinux".into(),
            boot_args: "console=ttyS0 reboot=k panic=1 pci=off".into(),
            vcpus: 2,
            mem_mib: 512,
            rootfs: "/d/vm-a.ext4".into(),
            tap: "tap2".into(),
            mac: "AA:FC:00:00:00:02".into(),
        };
        let r: Vec<String> = cfg
            .requests()
            .iter()
            .map(|(m, p, b)| format!("{m} {p} {b}"))
            .collect();
        assert_eq!(
            r,
            [
                r#"PUT /boot-source {"boot_args":"console=ttyS0 reboot=k panic=1 pci=off","kernel_image_path":"/k/vmlinux"}"#,
                r#"PUT /machine-config {"mem_size_mib":512,"vcpu_count":2}"#,
                r#"PUT /drives/rootfs {"drive_id":"rootfs","is_read_only":false,"is_root_device":true,"path_on_host":"/d/vm-a.ext4"}"#,
                r#"PUT /network-interfaces/eth0 {"guest_mac":"AA:FC:00:00:00:02","host_dev_name":"tap2","iface_id":"eth0"}"#,
                r#"PUT /actions {"action_type":"InstanceStart"}"#,
            ]
        );
    }
}
