//! `smolvm sandbox list`.

use serde::Serialize;

use super::args::ListArgs;
use super::output::{self, err_line, line, warn};
use crate::core::context::Context;
use crate::core::sandbox;
use crate::core::table;
use crate::core::VmStatus;

/// One row: ours, plus SmolVM's keys (`name`, `ip_address`, per-row `warnings`). A row
/// whose process is gone shows as SmolVM reconciles it: `error`, no pid.
#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    info: &'a sandbox::SandboxInfo,
    name: &'a str,
    ip_address: Option<&'a str>,
    warnings: Vec<String>,
}

impl<'a> Row<'a> {
    fn of(info: &'a sandbox::SandboxInfo) -> Self {
        Row {
            info,
            name: &info.id,
            ip_address: info.ip.as_deref(),
            warnings: info.warnings.clone(),
        }
    }
}

/// SmolVM's `data.filters`: what the listing was asked for.
#[derive(Serialize)]
struct Filters<'a> {
    all: bool,
    status: Option<VmStatus>,
    preset: Option<&'a str>,
}

#[derive(Serialize)]
struct Data<'a> {
    filters: Filters<'a>,
    vms: &'a [Row<'a>],
    count: usize,
    /// Rows of the state database that were skipped, and why.
    warnings: &'a [String],
    /// The database read, or the one that would be read once it exists (ours).
    state_db: &'a std::path::Path,
    /// Whether `state_db` exists (`false`: nothing was read; ours).
    state_db_exists: bool,
    /// The database a change would write (ours; `null` when no data directory is
    /// writable).
    writes_to: Option<&'a std::path::Path>,
}

pub fn list(args: &ListArgs, cx: &Context) -> i32 {
    list_as("sandbox.list", args, cx)
}

/// `sandbox list` reported as `command` (`openclaw.list` is the openclaw preset's list).
pub fn list_as(command: &str, args: &ListArgs, cx: &Context) -> i32 {
    let words = command.replace('.', " ");
    if args.all && args.status.is_some() {
        return output::fail(
            command,
            args.json,
            &crate::core::Error::usage(format!(
                "Use one filter. Run 'smolvm {words} --all' or 'smolvm {words} --status running'."
            )),
        );
    }
    let paths = cx.paths().clone();
    let listing = match sandbox::list(&paths, None) {
        Ok(v) => v,
        Err(e) => return output::fail(command, args.json, &e),
    };
    // A user preset's alias means its preset as a built-in alias does.
    let registry = args.preset.as_ref().map(|_| cx.presets().clone());
    let canonical = |name: &'_ str| -> String {
        registry
            .as_ref()
            .map_or(name, |r| r.canonical(name))
            .to_string()
    };
    let preset = args.preset.as_deref().map(canonical);
    // SmolVM's default: running sandboxes only; `--all` every one.
    let status = args.status.or((!args.all).then_some(VmStatus::Running));
    let kept: Vec<sandbox::SandboxInfo> = listing
        .vms
        .iter()
        .cloned()
        .map(sandbox::SandboxInfo::reconciled)
        .filter(|v| status.is_none_or(|s| v.status == s))
        .filter(|v| {
            preset
                .as_deref()
                .is_none_or(|p| v.preset.as_deref().map(canonical).as_deref() == Some(p))
        })
        .collect();
    let vms = &kept;
    if args.json {
        let rows: Vec<Row<'_>> = vms.iter().map(Row::of).collect();
        let vms = &rows;
        output::print_json(
            command,
            0,
            Some(&Data {
                vms,
                filters: Filters {
                    all: args.all,
                    status,
                    preset: preset.as_deref(),
                },
                count: vms.len(),
                warnings: &listing.warnings,
                state_db: &listing.source.db,
                state_db_exists: listing.source.exists,
                writes_to: listing.source.writes_to.as_deref(),
            }),
            None,
        );
        return 0;
    }
    for w in &listing.warnings {
        warn(w);
    }
    if let Some(s) = &listing.split {
        warn(s.notice());
    }
    if vms.is_empty() {
        line(match status {
            Some(VmStatus::Running) if args.status.is_none() => {
                format!("No running sandboxes ('smolvm {words} --all' shows every one).")
            }
            Some(s) => format!("No sandboxes with status '{s}'."),
            None => "No sandboxes.".to_string(),
        });
    } else {
        let rows: Vec<[String; table::VM_LIST.len()]> = vms
            .iter()
            .map(|v| table::VM_LIST.map(|c| v.cell(c.id).unwrap_or_default()))
            .collect();
        for l in table::text_table(table::titles(&table::VM_LIST), &rows) {
            line(l);
        }
        // SmolVM's warnings about a row's configuration, after the table.
        let flagged: Vec<&String> = vms.iter().flat_map(|v| &v.warnings).collect();
        if !flagged.is_empty() {
            line("Warnings:");
            for w in flagged {
                line(format!("  • {w}"));
            }
        }
    }
    // Which database this was, on stderr: stdout stays the table alone for scripts.
    err_line(listing.source.line(&paths.home));
    0
}
