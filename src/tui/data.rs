//! What the dashboard shows, loaded through the core (never computed in a pane): VMs from
//! the state store with live `/proc` figures, image caches from the catalog and prune's
//! dry run, host facts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::core::host::Host;
use crate::core::images::catalog;
use crate::core::prune::{self, PruneOptions};
use crate::core::sandbox::{self, SandboxInfo};
use crate::core::version::image_version;
use crate::sys::env::Env;
use crate::sys::fs::{disk_usage, HardLinks};
use crate::sys::paths::Paths;
use crate::sys::procfs;

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub vms: Vec<VmRow>,
    pub slow: Option<Slow>,
    pub errors: Vec<String>,
    pub data_dir: PathBuf,
    pub home: PathBuf,
}

/// CPU% needs two samples: the previous CPU time of each PID.
#[derive(Default)]
pub struct CpuSampler {
    last: HashMap<i32, (u64, u64, Instant)>,
}

impl CpuSampler {
    fn sample(&mut self, pid: i32, st: &procfs::ProcStats, hz: u64) -> Option<f64> {
        let now = Instant::now();
        let prev = self.last.insert(pid, (st.start_ticks, st.cpu_ticks, now));
        let (start, ticks, at) = prev?;
        if start != st.start_ticks {
            return None; // a different process now has this PID
        }
        let wall = now.duration_since(at).as_secs_f64();
        (wall > 0.0).then(|| (st.cpu_ticks.saturating_sub(ticks)) as f64 / hz as f64 / wall * 100.0)
    }
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
    let hz = procfs::ticks_per_second();
    let up = procfs::uptime_secs();
    let vms = infos
        .into_iter()
        .map(|info| {
            let st = info
                .pid
                .filter(|_| !info.stale)
                .and_then(|p| i32::try_from(p).ok())
                .and_then(|p| procfs::stats(p).map(|s| (p, s)));
            VmRow {
                cpu_pct: st.and_then(|(p, s)| sampler.sample(p, &s, hz)),
                rss_bytes: st.map(|(_, s)| s.rss_bytes),
                uptime_secs: st.and_then(|(_, s)| {
                    up.map(|u| (u - s.start_ticks as f64 / hz as f64).max(0.0) as u64)
                }),
                info,
            }
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
                doctor: crate::core::doctor::run(
                    env,
                    &host,
                    &crate::core::progress::Progress::none(),
                ),
                host,
                images: Vec::new(),
                smolvm_bytes: disk_usage(&paths.home.join(".smolvm"), &HardLinks::default()),
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
        doctor: crate::core::doctor::run(env, &host, &crate::core::progress::Progress::none()),
        host,
        images,
        smolvm_bytes: disk_usage(&paths.home.join(".smolvm"), &HardLinks::default()),
        reclaimable_bytes,
        current_version: version,
    }
}
