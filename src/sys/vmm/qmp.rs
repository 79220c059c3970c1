//! A small QMP client (QEMU Machine Protocol) over QEMU's `-qmp unix:…` socket: greeting,
//! capabilities negotiation, commands; asynchronous events are skipped.

use std::io;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// The name QEMU knows a migration file by (`getfd`).
const MIGRATION_FD: &str = "smolvm-state";

/// One QMP command as a line of JSON.
fn command_line(command: &str, arguments: Option<Value>) -> String {
    let mut msg = json!({ "execute": command });
    if let Some(a) = arguments {
        msg["arguments"] = a;
    }
    let mut text = msg.to_string();
    text.push('\n');
    text
}

/// `sendmsg` of `data` on the socket `sock`, with `fd` attached as `SCM_RIGHTS` when given.
fn send_with_fd(sock: i32, data: &[u8], fd: Option<i32>) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // Room for one descriptor's control message, aligned as cmsghdr wants.
    let mut cbuf = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `space` (≤ 64) writable bytes; the first header
        // and its data fit there.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        }
    }
    // SAFETY: a valid socket fd and a fully initialised msghdr.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
}

fn proto(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Qmp {
    /// Connect, read the greeting and negotiate capabilities; every step within `timeout`.
    pub async fn connect(socket: &Path, timeout: Duration) -> io::Result<Qmp> {
        let stream = tokio::time::timeout(timeout, super::launch::connect(socket))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "QMP connect timed out"))??;
        let (r, w) = stream.into_split();
        let mut q = Qmp {
            reader: BufReader::new(r),
            writer: w,
            timeout,
        };
        let greeting = q.read_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(proto(format!("unexpected QMP greeting: {greeting}")));
        }
        q.execute("qmp_capabilities", None).await?;
        Ok(q)
    }

    /// How long each later reply may take (QEMU's main loop is busy while it loads a
    /// state from a file: its replies wait until the load is done).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    async fn read_message(&mut self) -> io::Result<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(self.timeout, self.reader.read_line(&mut line))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "QMP read timed out"))??;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "QMP connection closed",
            ));
        }
        serde_json::from_str(&line).map_err(|e| proto(format!("bad QMP message: {e}")))
    }

    /// Run a command; its `return` value, or its `error` as an `io::Error`.
    pub async fn execute(&mut self, command: &str, arguments: Option<Value>) -> io::Result<Value> {
        tracing::debug!(command = %command, "QMP command");
        let text = command_line(command, arguments);
        self.writer.write_all(text.as_bytes()).await?;
        self.reply(command).await
    }

    /// Hand QEMU an open file as `name` (`getfd`, the descriptor sent with the command as
    /// `SCM_RIGHTS`), for a later `fd:<name>` migration URI: QEMU never opens a path of
    /// ours.
    pub async fn send_fd(&mut self, name: &str, fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let text = command_line("getfd", Some(json!({ "fdname": name })));
        let sock = self.writer.as_ref();
        let raw_fd = fd.as_raw_fd();
        let mut sent = 0usize;
        while sent < text.len() {
            sock.writable().await?;
            let rest = &text.as_bytes()[sent..];
            match sock.try_io(tokio::io::Interest::WRITABLE, || {
                send_with_fd(sock.as_raw_fd(), rest, (sent == 0).then_some(raw_fd))
            }) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        self.reply("getfd").await.map(drop)
    }

    /// Wait for this QEMU's migration (outgoing, or `-incoming`) to finish, polling
    /// `query-migrate`; an error carries QEMU's `error-desc`.
    pub async fn wait_migration(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = self.execute("query-migrate", None).await?;
            match r.get("status").and_then(Value::as_str).unwrap_or("") {
                "completed" => return Ok(()),
                s @ ("failed" | "cancelled") => {
                    let why = r.get("error-desc").and_then(Value::as_str).unwrap_or("");
                    return Err(io::Error::other(format!("migration {s}: {why}")));
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "migration did not finish in time",
                ));
            }
            // A clone's device state loads in 10–30 ms: polled finely.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn reply(&mut self, command: &str) -> io::Result<Value> {
        loop {
            let reply = self.read_message().await?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(r) = reply.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = reply.get("error") {
                let class = e.get("class").and_then(Value::as_str).unwrap_or("Error");
                let desc = e.get("desc").and_then(Value::as_str).unwrap_or("");
                return Err(io::Error::other(format!("QMP {command}: {class}: {desc}")));
            }
            return Err(proto(format!("unexpected QMP reply: {reply}")));
        }
    }

    /// Save the (stopped) VM's RAM and device state into `file` through QEMU's migration
    /// (`migrate fd:<name>`, bandwidth unlimited), and wait for it to complete.
    pub async fn save_state(&mut self, file: &std::fs::File, timeout: Duration) -> io::Result<()> {
        // A migration an earlier (killed) caller started runs to its end first; a VM it
        // left `postmigrate` (disks handed over) takes its disks back before this one.
        let r = self.execute("query-migrate", None).await?;
        if matches!(
            r.get("status").and_then(Value::as_str),
            Some("setup" | "active" | "device" | "pre-switchover")
        ) {
            let _ = self.wait_migration(timeout).await;
        }
        if self.query_status().await? == "postmigrate" {
            self.execute("cont", None).await?;
            self.execute("stop", None).await?;
        }
        self.execute(
            "migrate-set-parameters",
            Some(json!({ "max-bandwidth": 64u64 << 30 })),
        )
        .await?;
        self.migrate_over("migrate", file, timeout).await
    }

    /// Load RAM and device state saved by [`Qmp::save_state`] into a QEMU started with
    /// `-incoming defer`, and wait for it to complete (the VM stays paused).
    pub async fn load_state(&mut self, file: &std::fs::File, timeout: Duration) -> io::Result<()> {
        self.migrate_over("migrate-incoming", file, timeout).await
    }

    /// `command` (`migrate` or `migrate-incoming`) over `file`, handed to QEMU as
    /// [`MIGRATION_FD`], and the wait for it to end.
    async fn migrate_over(
        &mut self,
        command: &str,
        file: &std::fs::File,
        timeout: Duration,
    ) -> io::Result<()> {
        use std::os::fd::AsFd;
        self.send_fd(MIGRATION_FD, file.as_fd()).await?;
        let uri = json!({ "uri": format!("fd:{MIGRATION_FD}") });
        self.execute(command, Some(uri)).await?;
        self.wait_migration(timeout).await
    }

    /// Run a VM again that a killed caller left stopped in the middle of a save: a
    /// migration still under way is cancelled (and waited for, up to `timeout`), then the
    /// vCPUs continue (`cont` also takes the disks back from a `postmigrate` VM). A VM
    /// already running is left as it is.
    pub async fn resume_abandoned(&mut self, timeout: Duration) -> io::Result<()> {
        let active = |r: &Value| {
            matches!(
                r.get("status").and_then(Value::as_str),
                Some("setup" | "active" | "device" | "pre-switchover" | "cancelling")
            )
        };
        let deadline = tokio::time::Instant::now() + timeout;
        if active(&self.execute("query-migrate", None).await?) {
            let _ = self.execute("migrate_cancel", None).await;
            while active(&self.execute("query-migrate", None).await?) {
                if tokio::time::Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the abandoned migration did not stop in time",
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if self.query_status().await? != "running" {
            self.execute("cont", None).await?;
        }
        Ok(())
    }

    /// `query-status`'s `status`: `running`, `paused`, `prelaunch`, `shutdown`, …
    pub async fn query_status(&mut self) -> io::Result<String> {
        let r = self.execute("query-status", None).await?;
        r.get("status")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| proto(format!("query-status without status: {r}")))
    }
}
