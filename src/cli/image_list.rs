//! `smolvm image ls`: core's image list (the same the dashboard's Images pane shows) as a
//! table or `--json`.

use std::path::Path;

use serde::Serialize;

use super::args::ImageListArgs;
use super::image::image_store;
use super::output::{self, line, warn};
use crate::core::display_path;
use crate::core::images::listing::{self, Kind, Row};
use crate::core::table;
use crate::core::units::format_size;
use crate::core::Env;

/// One row of `image ls --json`: the keys `image rm` reports too, plus `kind` (`cache`,
/// `smolvm-cache`, `other`, `built`) and `kept` (why prune keeps a stale one).
#[derive(Serialize)]
struct RowData<'a> {
    version: &'a str,
    name: &'a str,
    preset: &'a str,
    arch: &'a str,
    vmm: &'a str,
    os: &'a str,
    path: &'a Path,
    compressed_bytes: u64,
    unpacked_bytes: u64,
    on_disk_bytes: u64,
    current: bool,
    status: &'a str,
    ready: bool,
    in_use_by: &'a [String],
    kind: Kind,
    kept: Option<&'a str>,
}

fn row_data(r: &Row) -> RowData<'_> {
    RowData {
        version: &r.version,
        name: &r.name,
        preset: &r.preset,
        arch: &r.arch,
        vmm: &r.vmm,
        os: &r.os,
        path: &r.path,
        compressed_bytes: r.compressed_bytes,
        unpacked_bytes: r.unpacked_bytes,
        on_disk_bytes: r.size_bytes,
        current: r.current,
        status: r.status(),
        ready: r.ready,
        in_use_by: &r.in_use_by,
        kind: r.kind,
        kept: r.kept.as_deref(),
    }
}

#[derive(Serialize)]
struct ListData<'a> {
    /// SmolVM's key; `images_root` is ours.
    image_dir: &'a Path,
    images_root: &'a Path,
    current_version: &'a str,
    images: Vec<RowData<'a>>,
    /// SmolVM's key; `total_on_disk_bytes` is ours.
    total_size_bytes: u64,
    total_on_disk_bytes: u64,
}

pub fn list(command: &str, args: &ImageListArgs, env: &Env) -> i32 {
    let (paths, version) = match image_store(env, args.store.image_dir.as_deref()) {
        Ok(s) => s,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let listed = match listing::list(&paths, &version) {
        Ok(l) => l,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    for w in &listed.warnings {
        warn(w.clone());
    }
    let rows = &listed.rows;
    let total: u64 = rows.iter().map(|r| r.size_bytes).sum();
    if args.store.json {
        let data = ListData {
            image_dir: &paths.images_root,
            images_root: &paths.images_root,
            current_version: &version,
            images: rows.iter().map(row_data).collect(),
            total_size_bytes: total,
            total_on_disk_bytes: total,
        };
        output::print_json(command, 0, Some(&data), None);
        return 0;
    }
    if rows.is_empty() {
        line(format!(
            "No cached images in {}. Run 'smolvm image pull codex' to download one.",
            display_path(&paths.images_root, &paths.home)
        ));
        return 0;
    }
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let mut status = r.state();
            if !r.ready {
                status.push_str(" (incomplete)");
            }
            if r.kind != Kind::Cache {
                status = format!("{status} [{}]", r.kind);
            }
            let preset = if r.kind == Kind::Built || r.preset.is_empty() {
                &r.name
            } else {
                &r.preset
            };
            [
                dash(&r.version),
                preset.clone(),
                dash(&r.arch),
                dash(&r.vmm),
                dash(&r.os),
                format_size(r.compressed_bytes),
                format_size(r.unpacked_bytes),
                format_size(r.size_bytes),
                status,
                dash(&r.in_use_by.join(", ")),
            ]
        })
        .collect();
    for l in table::text_table(table::titles(&table::IMAGE_LS), &cells) {
        line(l);
    }
    line(format!(
        "Total: {} image(s), {} on disk in {}",
        rows.len(),
        format_size(total),
        display_path(&paths.images_root, &paths.home)
    ));
    0
}
