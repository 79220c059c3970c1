//! `smolvm image ls`: core's image list (the same the dashboard's Images pane shows) as a
//! table or `--json`.

use std::path::Path;

use serde::Serialize;

use super::args::ImageListArgs;
use super::image::{entry_data, image_store, EntryData};
use super::output::{self, err_line, line, warn};
use crate::core::context::Context;
use crate::core::display_path;
use crate::core::images::listing::{self, Kind, Row};
use crate::core::table;
use crate::core::units::format_size;

/// One row of `image ls --json`: the keys `image rm` reports too, plus `kind` (`cache`,
/// `smolvm-cache`, `other`, `built`) and `kept` (why prune keeps a stale one).
#[derive(Serialize)]
struct RowData<'a> {
    #[serde(flatten)]
    entry: EntryData<'a>,
    kind: Kind,
    kept: Option<&'a str>,
}

fn row_data(r: &Row) -> RowData<'_> {
    RowData {
        entry: entry_data(r),
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
    /// SmolVM's key (the rows' `size_bytes`); `total_on_disk_bytes` is ours (their
    /// `on_disk_bytes`).
    total_size_bytes: u64,
    total_on_disk_bytes: u64,
    /// The state databases IN USE was read from (ours).
    state_dbs: &'a [std::path::PathBuf],
}

pub fn list(command: &str, args: &ImageListArgs, cx: &Context) -> i32 {
    let (paths, version) = match image_store(cx, args.store.image_dir.as_deref()) {
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
    let files_total: u64 = rows.iter().map(|r| r.files_bytes).sum();
    if args.store.json {
        let data = ListData {
            image_dir: &paths.images_root,
            images_root: &paths.images_root,
            current_version: &version,
            images: rows.iter().map(row_data).collect(),
            total_size_bytes: files_total,
            total_on_disk_bytes: total,
            state_dbs: &listed.state_dbs,
        };
        output::print_json(command, 0, Some(&data), None);
        return 0;
    }
    if rows.is_empty() {
        line(format!(
            "No cached images in {}. Run 'smolvm image pull codex' to download one.",
            display_path(&paths.images_root, &paths.home)
        ));
        state_line(&listed.state_dbs, &paths.home);
        return 0;
    }
    // One cell per column of `image ls`'s view, by the column's field (never by position).
    let cells: Vec<[String; table::IMAGE_LS.len()]> = rows
        .iter()
        .map(|r| table::IMAGE_LS.map(|c| ls_cell(r, c.id)))
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
    state_line(&listed.state_dbs, &paths.home);
    0
}

/// Row `r`'s cell in `image ls`'s column `col`: `-` for what is unknown; STATUS says an
/// incomplete cache and a kind other than a pulled cache; a built image (or a cache of no
/// preset) shows its name as its PRESET.
fn ls_cell(r: &Row, col: table::ImageCol) -> String {
    use table::ImageCol;
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    match col {
        ImageCol::Version => dash(&r.version),
        ImageCol::Image => r.name.clone(),
        ImageCol::Preset => {
            if r.kind == Kind::Built || r.preset.is_empty() {
                r.name.clone()
            } else {
                r.preset.clone()
            }
        }
        ImageCol::Arch => dash(r.arch_str()),
        ImageCol::Vmm => dash(r.vmm_str()),
        ImageCol::Os => r.os.map_or("-", |o| o.as_str()).to_string(),
        ImageCol::Compressed => format_size(r.compressed_bytes),
        ImageCol::Unpacked => format_size(r.unpacked_bytes),
        ImageCol::OnDisk | ImageCol::Size => format_size(r.size_bytes),
        ImageCol::Status | ImageCol::State => {
            let mut status = r.state();
            // Incomplete says a cache lacks a file; an entry that is no cache has none.
            if !r.ready && r.kind != Kind::Other {
                status.push_str(" (incomplete)");
            }
            if r.kind != Kind::Cache {
                status = format!("{status} [{}]", r.kind);
            }
            status
        }
        ImageCol::InUseBy => dash(&r.in_use_by.join(", ")),
    }
}

/// The state databases IN USE was read from, on stderr as `sandbox list`'s line (stdout
/// stays the table and its total).
fn state_line(dbs: &[std::path::PathBuf], home: &Path) {
    if dbs.is_empty() {
        err_line("State: none yet (no sandbox uses an image)");
    } else {
        let shown: Vec<String> = dbs.iter().map(|d| display_path(d, home)).collect();
        err_line(format!("State: {}", shown.join(", ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::images::{Arch, Os, Vmm};

    fn cache_row() -> Row {
        Row {
            kind: Kind::Cache,
            version: "0.0.36".into(),
            name: "codex-amd64-qemu".into(),
            preset: "codex".into(),
            arch: Some(Arch::Amd64),
            vmm: Some(Vmm::Qemu),
            os: Some(Os::Ubuntu),
            path: "/i/0.0.36/codex-amd64-qemu".into(),
            compressed_bytes: 1,
            unpacked_bytes: 2,
            size_bytes: 3,
            files_bytes: 4,
            created: None,
            current: false,
            ready: true,
            kept: Some("in use".into()),
            in_use_by: vec!["vm-1".into()],
        }
    }

    #[test]
    fn image_ls_json_rows_keep_their_keys_order_and_spellings() {
        let built = Row {
            kind: Kind::Built,
            version: String::new(),
            name: "mine".into(),
            preset: String::new(),
            arch: None,
            vmm: None,
            os: None,
            path: "/i/built/mine".into(),
            compressed_bytes: 0,
            unpacked_bytes: 0,
            size_bytes: 9,
            files_bytes: 8,
            created: None,
            current: true,
            ready: true,
            kept: None,
            in_use_by: Vec::new(),
        };
        let rows = [cache_row(), built];
        let json = serde_json::to_string(&rows.iter().map(row_data).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"[{"version":"0.0.36","name":"codex-amd64-qemu","preset":"codex","arch":"amd64","#,
                r#""vmm":"qemu","os":"ubuntu","path":"/i/0.0.36/codex-amd64-qemu","compressed_bytes":1,"#,
                r#""unpacked_bytes":2,"on_disk_bytes":3,"current":false,"status":"stale","ready":true,"#,
                r#""in_use_by":["vm-1"],"size_bytes":4,"created":null,"kind":"cache","kept":"in use"},"#,
                r#"{"version":null,"name":"mine","preset":null,"arch":null,"vmm":null,"os":null,"#,
                r#""path":"/i/built/mine","compressed_bytes":0,"unpacked_bytes":0,"on_disk_bytes":9,"#,
                r#""current":true,"status":"current","ready":true,"in_use_by":[],"size_bytes":8,"#,
                r#""created":null,"kind":"built","kept":null}]"#
            )
        );
    }
}
