//! The read models both faces show: one VM in detail (what the dashboard's detail view
//! shows, from the same [`lifecycle::info`](super::lifecycle::info) as `sandbox info`)
//! and one cached image inspected (the labelled lines `image inspect` prints). A face
//! only lays them out.

use super::context::{Context, Ctx};
use super::error::Result;
use super::images::{catalog, Layout};
use crate::sys::paths::display_path;

/// `image inspect` of one cached or built image, as the inspect dialog shows it: a cache's
/// manifest row and what of it is on disk, or a built image's files
/// (`core::images::catalog::inspect_named`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInspect {
    pub name: String,
    pub version: String,
    /// (label, value), in `smolvm image inspect`'s order ([`catalog::Inspect::fields`]).
    pub fields: Vec<(String, String)>,
    /// Each file: shown path, size, size on disk.
    pub files: Vec<(String, u64, u64)>,
}

/// `image inspect` of the cache `<version>/<name>` on the host's platform (or the one the
/// name carries): the same resolution and the same labelled lines as the command.
pub fn image(cx: &Context, version: &str, name: &str) -> Result<ImageInspect> {
    let paths = cx.paths();
    let layout = Layout::new(&paths.images_root, version);
    let i = catalog::inspect_named(
        cx.env(),
        cx.host(),
        cx.presets(),
        &layout,
        name,
        Default::default(),
    )?;
    let h = &paths.home;
    Ok(ImageInspect {
        name: name.to_string(),
        version: version.to_string(),
        fields: i
            .fields(h)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        files: i
            .files()
            .iter()
            .map(|f| (display_path(&f.path, h), f.size_bytes, f.on_disk_bytes))
            .collect(),
    })
}

/// One VM in detail, as the detail view shows it: its configuration from the state DB
/// (`core::lifecycle::info`, what `sandbox info` reports), its mounts, forwards
/// (`core::ports::list`), snapshots (`core::snapshot::list`) and network
/// (`core::egress::show`). Env keys come apart (over SSH): `core::guest_env::keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmDetail {
    pub id: super::vm::VmId,
    pub backend: Option<super::vm::VmBackend>,
    pub preset: Option<String>,
    /// The snapshot it was cloned from (a warm start's template included; `sandbox
    /// list`'s TEMPLATE).
    pub cloned_from: Option<String>,
    pub kernel: Option<String>,
    pub rootfs: Option<String>,
    pub vcpus: Option<u64>,
    pub memory_mib: Option<u64>,
    pub disk_mib: Option<u64>,
    pub ip: Option<String>,
    pub tap: Option<String>,
    pub ssh_port: Option<u16>,
    /// (host path, guest path, writable).
    pub mounts: Vec<(String, String, bool)>,
    /// (host port, guest port, what shadows it: a host process listening on that port
    /// too), or why they could not be read.
    pub ports: std::result::Result<Vec<(u16, u16, Option<String>)>, String>,
    pub snapshots: std::result::Result<Vec<SnapshotRow>, String>,
    /// Its egress policy, SSH publication, the guard's counters and the last refused
    /// destinations (`core::egress::show`, as `sandbox network show`), or why not.
    pub network: std::result::Result<super::egress::NetworkReport, String>,
}

impl Default for VmDetail {
    fn default() -> Self {
        VmDetail {
            id: super::vm::VmId::known(""),
            backend: None,
            preset: None,
            cloned_from: None,
            kernel: None,
            rootfs: None,
            vcpus: None,
            memory_mib: None,
            disk_mib: None,
            ip: None,
            tap: None,
            ssh_port: None,
            mounts: Vec::new(),
            ports: Ok(Vec::new()),
            snapshots: Ok(Vec::new()),
            network: Err("not read".into()),
        }
    }
}

/// A snapshot of the VM, as listed in its detail view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub id: String,
    pub kind: super::snapshot::SnapshotType,
    pub created_at: String,
    pub size_bytes: u64,
    /// Files it needs are gone: it cannot be restored.
    pub missing: bool,
}

impl Default for SnapshotRow {
    fn default() -> Self {
        SnapshotRow {
            id: String::new(),
            kind: super::snapshot::SnapshotType::Full,
            created_at: String::new(),
            size_bytes: 0,
            missing: false,
        }
    }
}

/// VM `id` in detail: its row and config (`core::lifecycle::info`, as `sandbox info`),
/// mounts, forwards, snapshots and network (each part that cannot be read says why).
pub fn vm(ctx: &Ctx, id: &super::vm::VmId) -> Result<VmDetail> {
    let info = super::lifecycle::info(ctx, id)?;
    let c = &info.config;
    let home = &ctx.paths.home;
    let shown = |p: &Option<std::path::PathBuf>| p.as_deref().map(|p| display_path(p, home));
    let mounts = super::presets::mounts::from_config(c)
        .into_iter()
        .map(|m| (display_path(&m.host_path, home), m.guest_path, m.writable))
        .collect();
    let ports = super::ports::list(ctx, id)
        .map(|v| {
            v.iter()
                .map(|p| {
                    let by = p
                        .shadowed
                        .then(|| p.shadowed_by.clone().unwrap_or("a host process".into()));
                    (p.host_port, p.guest_port, by)
                })
                .collect()
        })
        .map_err(|e| e.message);
    let snapshots = super::snapshot::list(ctx, Some(id))
        .map(|(v, _)| {
            v.into_iter()
                .map(|s| SnapshotRow {
                    id: s.id,
                    kind: s.kind,
                    created_at: s.created_at,
                    size_bytes: s.size_bytes,
                    missing: !s.missing_files.is_empty(),
                })
                .collect()
        })
        .map_err(|e| e.message);
    Ok(VmDetail {
        id: info.summary.id.clone(),
        backend: info.summary.backend.clone(),
        preset: info.summary.preset.clone(),
        cloned_from: info.summary.cloned_from.clone(),
        kernel: shown(&c.kernel_path),
        rootfs: shown(&c.rootfs_path),
        vcpus: Some(u64::from(c.vcpus())),
        memory_mib: Some(u64::from(c.memory_mib())),
        disk_mib: c.disk_size_mib,
        ip: info.summary.ip.clone(),
        tap: info.summary.tap.clone(),
        ssh_port: info.summary.ssh_port,
        mounts,
        ports,
        snapshots,
        network: super::egress::show(ctx, id).map_err(|e| e.message),
    })
}
