//! `smolvm sandbox list`.

use serde::Serialize;

use super::args::ListArgs;
use super::output::{self, line, warn};
use crate::core::sandbox;
use crate::core::table;
use crate::core::Env;
use crate::core::Paths;

/// One row: ours, plus SmolVM's keys (`name`, `ip_address`, per-row `warnings`).
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
        let mut warnings = Vec::new();
        if info.stale {
            warnings.push(format!(
                "status is {} but its process is gone (run 'smolvm cleanup')",
                info.status
            ));
        }
        Row {
            info,
            name: &info.id,
            ip_address: info.ip.as_deref(),
            warnings,
        }
    }
}

#[derive(Serialize)]
struct Data<'a> {
    vms: &'a [Row<'a>],
    count: usize,
    /// Rows of the state database that were skipped, and why.
    warnings: &'a [String],
}

pub fn list(args: &ListArgs, env: &Env) -> i32 {
    let paths = Paths::resolve(env, None);
    let listing = match sandbox::list(&paths, None) {
        Ok(v) => v,
        Err(e) => return output::fail("sandbox.list", args.json, &e),
    };
    // A user preset's alias means its preset as a built-in alias does.
    let registry = args
        .preset
        .as_ref()
        .map(|_| crate::core::presets::Registry::load(env));
    let canonical = |name: &'_ str| -> String {
        registry
            .as_ref()
            .map_or(name, |r| r.canonical(name))
            .to_string()
    };
    let preset = args.preset.as_deref().map(canonical);
    let kept: Vec<sandbox::SandboxInfo> = listing
        .vms
        .iter()
        .filter(|v| args.status.is_none_or(|s| v.status == s))
        .filter(|v| {
            preset
                .as_deref()
                .is_none_or(|p| v.preset.as_deref().map(canonical).as_deref() == Some(p))
        })
        .cloned()
        .collect();
    let vms = &kept;
    if args.json {
        let rows: Vec<Row<'_>> = vms.iter().map(Row::of).collect();
        let vms = &rows;
        output::print_json(
            "sandbox.list",
            0,
            Some(&Data {
                vms,
                count: vms.len(),
                warnings: &listing.warnings,
            }),
            None,
        );
        return 0;
    }
    for w in &listing.warnings {
        warn(w);
    }
    if vms.is_empty() {
        line("No sandboxes.");
        return 0;
    }
    let rows: Vec<[String; 6]> = vms
        .iter()
        .map(|v| {
            [
                v.id.clone(),
                v.shown_status(),
                v.backend
                    .as_ref()
                    .map_or_else(|| "-".into(), ToString::to_string),
                v.ip.clone().unwrap_or_else(|| "-".into()),
                v.pid.map_or("-".into(), |p| p.to_string()),
                v.created_at.clone(),
            ]
        })
        .collect();
    for l in table::text_table(table::titles(&table::VM_LIST), &rows) {
        line(l);
    }
    0
}
