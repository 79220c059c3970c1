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

/// The guest OS as SmolVM guesses it without a live guest: a keyword in the kernel,
/// initrd or rootfs path.
fn guess_os(config: &Value) -> Option<&'static str> {
    ["kernel_path", "initrd_path", "rootfs_path"]
        .iter()
        .filter_map(|k| config[k].as_str())
        .find_map(|p| {
            let p = p.to_lowercase();
            ["ubuntu", "alpine"].into_iter().find(|k| p.contains(k))
        })
}

/// The rootfs's size in MiB as SmolVM reports it (the file's size).
fn disk_size_mib(config: &Value) -> Option<u64> {
    let path = config["rootfs_path"].as_str()?;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.len() / (1024 * 1024))
}

/// `sandbox info`'s data: ours, plus SmolVM's `vm{name, status, os, backend,
/// ip_address, ssh_port, pid, vcpus, memory, memory_used, disk_size, network_mode,
/// bridge}`: `os` and `memory_used` from the running guest (`live`, as SmolVM asks it over
/// SSH), else `os` guessed from the paths and `memory_used` null.
pub fn info<T: Serialize>(data: &T, live: &crate::core::guest::LiveFacts) -> Value {
    let mut m = object(data);
    let config = m.get("config").cloned().unwrap_or(Value::Null);
    let network = m.get("network").cloned().unwrap_or(Value::Null);
    let attachment = &config["network_attachment"];
    let vm = json!({
        "name": m.get("id").cloned().unwrap_or(Value::Null),
        "status": m.get("status").cloned().unwrap_or(Value::Null),
        "os": live.os.as_deref().or(guess_os(&config)),
        "backend": config["backend"].as_str().unwrap_or("auto"),
        "ip_address": m.get("ip").cloned().unwrap_or(Value::Null),
        "ssh_port": m.get("ssh_port").cloned().unwrap_or(Value::Null),
        "pid": m.get("pid").cloned().unwrap_or(Value::Null),
        "vcpus": config["vcpu_count"],
        "memory": config["memory"],
        "memory_used": live.memory_used,
        "disk_size": disk_size_mib(&config),
        "network_mode": network["mode"]
            .as_str()
            .or(attachment["mode"].as_str())
            .unwrap_or("nat"),
        "bridge": network.get("bridge").cloned().unwrap_or(Value::Null),
    });
    m.insert("vm".into(), vm);
    Value::Object(m)
}
