//! A small QMP client (QEMU Machine Protocol) over QEMU's `-qmp unix:…` socket: greeting,
//! capabilities negotiation, commands; asynchronous events are skipped.

use std::io;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

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
        let stream = tokio::time::timeout(timeout, UnixStream::connect(socket))
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
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).await?;
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

    /// `query-status`'s `status`: `running`, `paused`, `prelaunch`, `shutdown`, …
    pub async fn query_status(&mut self) -> io::Result<String> {
        let r = self.execute("query-status", None).await?;
        r.get("status")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| proto(format!("query-status without status: {r}")))
    }
}
