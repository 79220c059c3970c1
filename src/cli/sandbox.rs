//! `smolvm sandbox list`.

use serde::Serialize;

use super::args::ListArgs;
use super::output::{self, line, warn};
use crate::core::sandbox;
use crate::core::table;
use crate::core::Env;
use crate::core::Paths;

#[derive(Serialize)]
struct Data<'a> {
    vms: &'a [sandbox::SandboxInfo],
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
    let vms = &listing.vms;
    if args.json {
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
                v.backend.clone().unwrap_or_else(|| "-".into()),
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
