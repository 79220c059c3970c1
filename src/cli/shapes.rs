//! SmolVM's JSON shapes where they differ from our reports: our keys stay (extra keys
//! are fine for SmolVM's scripts), SmolVM's are added at SmolVM's paths. Built from the
//! serialized reports, so they follow whatever types core's reports hold.

use serde::Serialize;
use serde_json::{json, Map, Value};

/// A report as a JSON object (an empty one if it somehow is not an object).
pub fn object<T: Serialize>(data: &T) -> Map<String, Value> {
    match serde_json::to_value(data) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A path as JSON text, lossily where it is no UTF-8 (`serialize_with`): the report
/// still goes out, where serde's own refuses the whole document.
pub fn lossy_path<S: serde::Serializer>(
    p: &&std::path::Path,
    ser: S,
) -> std::result::Result<S::Ok, S::Error> {
    ser.serialize_str(&p.to_string_lossy())
}

/// A lifecycle verb's data (`start`, `stop`, `pause`, `resume`): ours, plus SmolVM's
/// `vm{name, status}`.
pub fn with_vm<T: Serialize>(data: &T, name: &str, status: &str) -> Value {
    let mut m = object(data);
    m.insert("vm".into(), json!({ "name": name, "status": status }));
    Value::Object(m)
}

/// SmolVM's `next` after a create or a preset start: the commands to go on with.
pub fn next(id: &str) -> Value {
    json!({
        "shell_command": format!("smolvm sandbox shell {id}"),
        "ssh_command": format!("smolvm sandbox ssh {id}"),
        "desktop_command": Value::Null,
        "info_command": format!("smolvm sandbox info {id}"),
    })
}

/// `sandbox info`'s data: ours, plus SmolVM's `vm{name, status, os, backend,
/// ip_address, ssh_port, pid, vcpus, memory, memory_used, disk_size, network_mode,
/// bridge}`: `os` and `memory_used` from the running guest (`live`, as SmolVM asks it over
/// SSH), else `os` guessed from the paths and `memory_used` null.
pub fn info(i: &crate::core::lifecycle::Info, live: &crate::core::guest::LiveFacts) -> Value {
    let mut m = object(i);
    let (s, c) = (&i.summary, &i.config);
    let network = i.network.as_ref();
    let vm = json!({
        "name": s.id,
        "status": s.status,
        "os": live.os.as_deref().or(c.os_from_paths()),
        "backend": c.backend.as_deref().unwrap_or("auto"),
        "ip_address": s.ip,
        "ssh_port": s.ssh_port,
        "pid": s.pid,
        "vcpus": c.vcpu_count,
        "memory": c.memory,
        "memory_used": live.memory_used,
        "disk_size": c.rootfs_size_mib(),
        "network_mode": network
            .and_then(|n| n.mode.as_deref())
            .or(c.attachment_mode())
            .unwrap_or("nat"),
        "bridge": network.and_then(|n| n.bridge.as_deref()),
    });
    m.insert("vm".into(), vm);
    Value::Object(m)
}
