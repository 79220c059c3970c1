//! What the dashboard shows, loaded through core functions (never computed in a pane,
//! never read from sys directly): VMs from the state store with their live `/proc`
//! figures ([`sandbox::CpuSampler`]), image caches from the catalog and prune's dry run,
//! disk use, host facts.

use std::path::PathBuf;

use crate::core::host::Host;
use crate::core::images::catalog;
use crate::core::prune::{self, PruneOptions};
use crate::core::sandbox::{self, smolvm_disk_usage, SandboxInfo};
use crate::core::version::image_version;
use crate::core::{Env, Paths};

/// The dashboard keeps one sampler across refreshes (CPU% needs two samples).
pub use crate::core::sandbox::CpuSampler;

#[derive(Debug, Clone, PartialEq)]
pub struct VmRow {
    pub info: SandboxInfo,
    pub cpu_pct: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub uptime_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub version: String,
    pub name: String,
    pub preset: String,
    pub arch: String,
    pub vmm: String,
    pub size_bytes: u64,
    pub current: bool,
    /// Why a stale cache is kept by prune (in use, custom image…).
    pub kept: Option<String>,
    pub in_use_by: Vec<String>,
    pub path: PathBuf,
}

impl ImageRow {
    /// `current`, `stale`, or `kept: <reason>`.
    pub fn state(&self) -> String {
        match (&self.kept, self.current) {
            (_, true) => "current".into(),
            (Some(r), false) => format!("kept: {r}"),
            (None, false) => "stale".into(),
        }
    }
}

/// Everything slow to compute: disk walks and host probes.
#[derive(Debug, Clone, PartialEq)]
pub struct Slow {
    pub host: Host,
    pub images: Vec<ImageRow>,
    /// Disk used under `~/.smolvm`.
    pub smolvm_bytes: u64,
    /// What `prune` would free now.
    pub reclaimable_bytes: u64,
    pub current_version: String,
    /// `smolvm doctor`'s verdicts.
    pub doctor: Vec<crate::core::doctor::Check>,
    /// Images `smolvm image build` made (the start form offers them after the presets).
    pub built_images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub vms: Vec<VmRow>,
    pub slow: Option<Slow>,
    pub errors: Vec<String>,
    pub data_dir: PathBuf,
    pub home: PathBuf,
}

/// Load VMs (always) and, when `slow` is asked for, images and host facts.
pub fn load(env: &Env, sampler: &mut CpuSampler, with_slow: bool) -> Snapshot {
    let paths = Paths::resolve(env, None);
    let mut errors = Vec::new();
    let infos = match sandbox::list(&paths, None) {
        Ok(l) => {
            errors.extend(l.warnings);
            l.vms
        }
        Err(e) => {
            errors.push(e.message);
            Vec::new()
        }
    };
    let figures = sampler.figures(&infos);
    let vms = infos
        .into_iter()
        .zip(figures)
        .map(|(info, f)| VmRow {
            cpu_pct: f.cpu_pct,
            rss_bytes: f.rss_bytes,
            uptime_secs: f.uptime_secs,
            info,
        })
        .collect();
    let data_dir = paths
        .data_dir_candidates()
        .into_iter()
        .next()
        .unwrap_or_default();
    Snapshot {
        vms,
        slow: with_slow.then(|| load_slow(env, &paths, &mut errors)),
        errors,
        data_dir,
        home: paths.home.clone(),
    }
}

fn load_slow(env: &Env, paths: &Paths, errors: &mut Vec<String>) -> Slow {
    // One probe for the header and the doctor summary.
    let host = Host::probe(env);
    let version = match image_version(env) {
        Ok(v) => v,
        Err(e) => {
            // A bad SMOLVM_IMAGE_VERSION: say so, and list no images rather than guess.
            errors.push(e.message);
            return Slow {
                built_images: crate::core::images::built_images(paths),
                doctor: crate::core::doctor::run(
                    env,
                    &host,
                    &crate::core::progress::Progress::none(),
                ),
                host,
                images: Vec::new(),
                smolvm_bytes: smolvm_disk_usage(paths),
                reclaimable_bytes: 0,
                current_version: String::new(),
            };
        }
    };
    let dbs = paths.existing_state_dbs();
    let mut images: Vec<ImageRow> = catalog::list(&paths.images_root, &version, &dbs)
        .unwrap_or_else(|e| {
            errors.push(e.message);
            Vec::new()
        })
        .into_iter()
        .map(|e| ImageRow {
            version: e.version,
            name: e.name,
            preset: e.preset,
            arch: e.arch.as_str().to_string(),
            vmm: e.vmm.as_str().to_string(),
            size_bytes: e.on_disk_bytes,
            current: e.current,
            kept: None,
            in_use_by: e.in_use_by,
            path: e.path,
        })
        .collect();
    let plan = prune::plan(&PruneOptions::new(paths, version.clone(), true));
    let reclaimable_bytes = match &plan {
        Ok(p) => p.reclaimable_bytes(),
        Err(e) => {
            errors.push(e.message.clone());
            0
        }
    };
    if let Ok(plan) = plan {
        // Stale caches the catalog does not describe (SmolVM's flat layout, odd version
        // dirs), and why prune keeps some.
        let rows = plan
            .stale
            .iter()
            .map(|s| (s.path.clone(), s.version.clone(), s.size_bytes, None))
            .chain(
                plan.kept
                    .iter()
                    .map(|k| (k.path.clone(), String::new(), 0, Some(k.reason.to_string()))),
            );
        for (path, version, size, kept) in rows {
            let covered: Vec<&mut ImageRow> = images
                .iter_mut()
                .filter(|r| r.path.starts_with(&path))
                .collect();
            if !covered.is_empty() {
                for r in covered {
                    r.kept.clone_from(&kept);
                }
                continue;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let version = if version.is_empty() {
                prune::cache_version(&name).unwrap_or("").to_string()
            } else {
                version
            };
            let (preset, tail) = match name.split_once(&format!("-v{version}-")) {
                Some((p, t)) => (p.to_string(), t.to_string()),
                None => (String::new(), String::new()),
            };
            let mut parts = tail.split('-');
            images.push(ImageRow {
                arch: parts.next().unwrap_or("").to_string(),
                vmm: parts.next().unwrap_or("").to_string(),
                version,
                name,
                preset,
                size_bytes: size,
                current: false,
                kept,
                in_use_by: Vec::new(),
                path,
            });
        }
    }
    images.sort_by(|a, b| (&a.version, &a.name).cmp(&(&b.version, &b.name)));
    Slow {
        built_images: crate::core::images::built_images(paths),
        doctor: crate::core::doctor::run(env, &host, &crate::core::progress::Progress::none()),
        host,
        images,
        smolvm_bytes: smolvm_disk_usage(paths),
        reclaimable_bytes,
        current_version: version,
    }
}
