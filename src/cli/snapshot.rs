//! `smolvm sandbox pause|resume` and `smolvm sandbox snapshot create|restore|list|delete`:
//! thin faces over [`core::lifecycle::set_paused`] and [`core::snapshot`].

use serde::Serialize;

use super::args::{
    BranchArgs, CloneArgs, IdArgs, SnapshotCommand, SnapshotCreateArgs, SnapshotIdArgs,
    SnapshotRestoreArgs,
};
use super::output::{self, err_line, line, warn};
use super::start::{open_ctx, progress};
use crate::core::context::Context;
use crate::core::error::Result;
use crate::core::lifecycle;
use crate::core::progress::Progress;
use crate::core::runtime::block_on;
use crate::core::snapshot::{self, CloneOptions, CreateOptions, RestoreOptions};
use crate::core::table;
use crate::core::units::format_size;
use crate::core::vm::VmId;

/// `sandbox pause ID` (`paused`) / `sandbox resume ID`.
pub fn pause(a: &IdArgs, paused: bool, cx: &Context) -> i32 {
    let command = if paused {
        "sandbox.pause"
    } else {
        "sandbox.resume"
    };
    let r = open_ctx(cx).and_then(|ctx| {
        let id = VmId::parse(&a.id)?;
        block_on(lifecycle::set_paused(&ctx, &id, paused))?
    });
    match r {
        Ok(rep) if a.json => {
            let data = super::shapes::with_vm(&rep, &rep.name, &rep.status.to_string());
            output::print_json(command, 0, Some(&data), None);
            0
        }
        Ok(rep) => {
            if rep.unchanged {
                line(format!("Sandbox {} is already {}.", rep.name, rep.status));
            } else if paused {
                line(format!("Paused {}.", rep.name));
            } else {
                line(format!("Resumed {}.", rep.name));
            }
            0
        }
        Err(e) => output::fail(command, a.json, &e),
    }
}

pub fn run(cmd: SnapshotCommand, cx: &Context) -> i32 {
    match cmd {
        SnapshotCommand::Create(a) => create(&a, cx),
        SnapshotCommand::Restore(a) => restore(&a, cx),
        SnapshotCommand::List(a) => list(a.vm_id.as_deref(), a.json, cx),
        SnapshotCommand::Delete(a) => delete(&a, cx),
    }
}

fn create(a: &SnapshotCreateArgs, cx: &Context) -> i32 {
    const CMD: &str = "sandbox.snapshot.create";
    let r = (|| -> Result<_> {
        let ctx = open_ctx(cx)?;
        let opts = CreateOptions {
            vm_id: VmId::parse(&a.id)?,
            snapshot_id: a.snapshot_id.clone(),
            // clap has checked the values.
            kind: a.snapshot_type,
            resume_source: a.resume_source,
            live_only: a.live_only,
            flush: a.flush_policy,
            for_clone: a.for_clone,
            warm_fingerprint: None,
        };
        block_on(snapshot::create(&ctx, &opts))?
    })();
    match r {
        Ok(rep) if a.json => {
            output::print_json(CMD, 0, Some(&rep), None);
            0
        }
        Ok(rep) => {
            let s = &rep.snapshot;
            line(format!(
                "Created snapshot {} of {} ({}, {}) in {:.2} s.",
                s.id,
                s.vm_id,
                s.kind,
                format_size(s.size_bytes),
                rep.elapsed_ms / 1000.0
            ));
            line(format!("Sandbox {} is {}.", s.vm_id, rep.source_status));
            line(format!(
                "Restore it: smolvm sandbox snapshot restore {} --resume",
                s.id
            ));
            0
        }
        Err(e) => output::fail(CMD, a.json, &e),
    }
}

fn restore(a: &SnapshotRestoreArgs, cx: &Context) -> i32 {
    const CMD: &str = "sandbox.snapshot.restore";
    let r = (|| -> Result<_> {
        let opts = RestoreOptions {
            snapshot_id: a.snapshot.clone(),
            resume: a.resume,
            force: a.force,
            boot_timeout: a.boot_timeout,
        };
        let ctx = open_ctx(cx)?;
        block_on(snapshot::restore(&ctx, &opts, &progress(a.json)))?
    })();
    match r {
        Ok(rep) if a.json => {
            // SmolVM's names for the snapshot's id and type, beside ours.
            let mut data = super::shapes::object(&rep);
            if let Some(serde_json::Value::Object(snap)) = data.get_mut("snapshot") {
                for (ours, theirs) in [("id", "snapshot_id"), ("type", "snapshot_type")] {
                    if let Some(v) = snap.get(ours).cloned() {
                        snap.insert(theirs.into(), v);
                    }
                }
            }
            output::print_json(CMD, 0, Some(&data), None);
            0
        }
        Ok(rep) => {
            line(format!(
                "Restored {} from snapshot {} ({}) in {:.2} s: {}.",
                rep.vm.name,
                rep.snapshot.id,
                rep.snapshot.kind,
                rep.elapsed_ms / 1000.0,
                rep.vm.status
            ));
            line(format!("  IP:       {}", rep.vm.ip_address));
            if let Some(p) = rep.vm.ssh_port {
                line(format!("  SSH port: {p}"));
            }
            if rep.vm.status == crate::core::VmStatus::Paused {
                line(format!("Run it: smolvm sandbox resume {}", rep.vm.name));
            } else {
                line(format!("Connect: smolvm sandbox ssh {}", rep.vm.name));
            }
            0
        }
        Err(e) => output::fail(CMD, a.json, &e),
    }
}

/// SmolVM's `data.filters`.
#[derive(Serialize)]
struct Filters<'a> {
    vm_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Listing<'a> {
    filters: Filters<'a>,
    snapshots: &'a [snapshot::SnapshotInfo],
    count: usize,
    warnings: &'a [String],
    /// The database read (ours, as `sandbox list`'s).
    state_db: &'a std::path::Path,
    state_db_exists: bool,
    writes_to: Option<&'a std::path::Path>,
}

fn list(vm_id: Option<&str>, json: bool, cx: &Context) -> i32 {
    const CMD: &str = "sandbox.snapshot.list";
    let r = super::start::open_reader(cx).and_then(|ctx| {
        snapshot::list(&ctx, vm_id).map(|l| {
            let source = crate::core::context::StateSource::of(&ctx.paths);
            (l, source, ctx.paths.home.clone())
        })
    });
    let ((snaps, warnings), source, home) = match r {
        Ok(v) => v,
        Err(e) => return output::fail(CMD, json, &e),
    };
    if json {
        let data = Listing {
            filters: Filters { vm_id },
            snapshots: &snaps,
            count: snaps.len(),
            warnings: &warnings,
            state_db: &source.db,
            state_db_exists: source.exists,
            writes_to: source.writes_to.as_deref(),
        };
        output::print_json(CMD, 0, Some(&data), None);
        return 0;
    }
    for w in &warnings {
        warn(w);
    }
    if snaps.is_empty() {
        line("No snapshots.");
    } else {
        snapshot_table(&snaps);
    }
    // On stderr, as `sandbox list`'s: stdout stays the table alone.
    err_line(source.line(&home));
    0
}

fn snapshot_table(snaps: &[snapshot::SnapshotInfo]) {
    let rows: Vec<[String; 6]> = snaps
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.vm_id.to_string(),
                match &s.warm_template_for {
                    Some(p) => format!("{} (warm template: {p})", s.kind),
                    None => s.kind.to_string(),
                },
                s.backend.to_string(),
                if s.missing_files.is_empty() {
                    format_size(s.size_bytes)
                } else {
                    "files missing".into()
                },
                s.created_at.clone(),
            ]
        })
        .collect();
    for l in table::text_table(["ID", "VM", "TYPE", "BACKEND", "SIZE", "CREATED"], &rows) {
        line(l);
    }
}

fn delete(a: &SnapshotIdArgs, cx: &Context) -> i32 {
    const CMD: &str = "sandbox.snapshot.delete";
    match open_ctx(cx).and_then(|ctx| snapshot::delete(&ctx, &a.snapshot)) {
        Ok(info) if a.json => {
            // SmolVM's `snapshot`; `deleted` is ours.
            let data = serde_json::json!({ "snapshot": info, "deleted": info });
            output::print_json(CMD, 0, Some(&data), None);
            0
        }
        Ok(info) => {
            line(format!("Deleted snapshot {}.", info.id));
            0
        }
        Err(e) => output::fail(CMD, a.json, &e),
    }
}

/// `sandbox clone SNAPSHOT [--count N] [--prefix P | --name NAME]`.
pub fn clone(a: &CloneArgs, cx: &Context) -> i32 {
    const CMD: &str = "sandbox.clone";
    let r = (|| -> Result<_> {
        let opts = CloneOptions {
            snapshot_id: a.snapshot.clone(),
            count: a.count,
            prefix: a.prefix.clone(),
            name: a.name.clone(),
            boot_timeout: a.boot_timeout,
            copy_memory: a.copy_memory,
            network: None,
            parallel: None,
            keep_agent_socket: false,
        };
        snapshot::check_clone(&opts)?;
        let ctx = open_ctx(cx)?;
        let events = super::start::progress_of_each(a.json, a.count > 1);
        block_on(snapshot::clone(&ctx, &opts, &events))?
    })();
    match r {
        Ok(rep) => {
            let data = serde_json::json!({
                "snapshot_id": rep.snapshot_id,
                "template_vm_id": rep.template_vm_id,
            });
            let summary = rep.summary();
            print_clones(CMD, a.json, data, &rep.clones, rep.elapsed_ms, summary)
        }
        Err(e) => output::fail(CMD, a.json, &e),
    }
}

/// What a command that made clones prints: its `data` with the clones, their count and
/// the time added (`--json`); else its summary line and a row per clone.
fn print_clones(
    cmd: &str,
    json: bool,
    mut data: serde_json::Value,
    clones: &[snapshot::ClonedVm],
    elapsed_ms: f64,
    summary: String,
) -> i32 {
    if json {
        data["clones"] = serde_json::json!(clones);
        data["count"] = clones.len().into();
        data["elapsed_ms"] = elapsed_ms.into();
        output::print_json(cmd, 0, Some(&data), None);
    } else {
        line(summary);
        clone_table(clones);
    }
    0
}

/// The clones made, one row each.
fn clone_table(clones: &[snapshot::ClonedVm]) {
    let rows: Vec<[String; 4]> = clones
        .iter()
        .map(|c| {
            [
                c.vm.name.clone(),
                c.vm.ip_address.clone(),
                c.vm.ssh_port.map(|p| p.to_string()).unwrap_or_default(),
                format!("{:.2} s", c.elapsed_ms / 1000.0),
            ]
        })
        .collect();
    for l in table::text_table(["NAME", "IP", "SSH PORT", "READY IN"], &rows) {
        line(l);
    }
}

/// `sandbox branch SANDBOX [--count N] [--prefix P] [--snapshot-id ID]`.
pub fn branch(a: &BranchArgs, cx: &Context) -> i32 {
    use snapshot::BranchEvent;
    const CMD: &str = "sandbox.branch";
    let json = a.json;
    let r = (|| -> Result<_> {
        let opts = snapshot::BranchOptions {
            prefix: a.prefix.clone(),
            snapshot_id: a.snapshot_id.clone(),
            boot_timeout: a.boot_timeout,
            ..snapshot::BranchOptions::of(VmId::parse(&a.id)?, a.count)
        };
        snapshot::check_branch(&opts)?;
        let ctx = open_ctx(cx)?;
        let each = super::start::progress_of_each(json, a.count > 1);
        let events = Progress::new(move |e| match e {
            BranchEvent::Clone(id, e) => each.emit((id, e)),
            _ if json => {}
            BranchEvent::Snapshotting => {
                crate::core::runtime::err_line("snapshotting for clones (the sandbox runs on)...")
            }
            BranchEvent::Snapshotted(id) => {
                crate::core::runtime::err_line(format!("template snapshot {id} written"))
            }
            BranchEvent::Cloning { id, index, count } => {
                crate::core::runtime::err_line(format!("clone {index}/{count}: {id}"))
            }
            BranchEvent::Cloned(_) => {}
        });
        block_on(snapshot::branch(&ctx, &opts, &events))?
    })();
    match r {
        Ok(rep) => {
            let data = serde_json::json!({
                "sandbox": rep.sandbox,
                "source_status": rep.source_status,
                "snapshot_id": rep.snapshot.id,
                "snapshot": rep.snapshot,
            });
            let summary = rep.summary();
            print_clones(CMD, a.json, data, &rep.clones, rep.elapsed_ms, summary)
        }
        Err(e) => output::fail(CMD, a.json, &e),
    }
}
