//! The image list both faces show (`image ls` and the dashboard's Images pane): the
//! catalog's caches of every version, SmolVM's flat `<preset>-v<version>-<arch>-<vmm>`
//! caches, other stale entries prune would remove, and built images — each with its kind
//! and state.

use std::path::PathBuf;

use super::catalog::{self, Entry};
use super::{built_images, Arch, Os, Vmm};
use crate::core::error::Result;
use crate::core::prune::{self, cache_version, PruneOptions};
use crate::core::Paths;
use crate::sys::fs::{is_mount_below, usage, HardLinks};

text_enum! {
    /// What a listed directory is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum Kind {
        /// `<version>/<preset>-<arch>-<vmm>[-alpine]/`, as `image pull` writes it.
        Cache = "cache",
        /// SmolVM's own `<preset>-v<version>-<arch>-<vmm>[-alpine]/`.
        SmolvmCache = "smolvm-cache",
        /// A stale-named entry neither layout describes (prune removes it), or a folder
        /// that is no image at all (kept: [`NOT_AN_IMAGE`]; nothing removes it).
        Other = "other",
        /// An `image build` output, named by its image name (never pruned).
        Built = "built",
    }
}

/// Why a folder of the images root that is no image is kept: it is listed (as SmolVM
/// lists it) so no disk use there is hidden, but neither prune nor `image rm` touches it.
pub const NOT_AN_IMAGE: &str = "not an image, left alone";

/// Why the folder `name` of the images root, which is no image, is left alone:
/// [`NOT_AN_IMAGE`], or for the staging folder of a build or load (one that was killed, or
/// runs now) that the next build or load of its image removes.
pub fn left_alone(name: &str) -> String {
    match super::store::staged_image(name) {
        Some(image) => format!("staging of '{image}', left to its next build or load"),
        None => NOT_AN_IMAGE.to_string(),
    }
}

/// One listed image directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: Kind,
    pub version: String,
    pub name: String,
    pub preset: String,
    /// The platform a cache's name gives (`None` for a built image or an unparsed name).
    pub arch: Option<Arch>,
    pub vmm: Option<Vmm>,
    pub os: Option<Os>,
    pub path: PathBuf,
    pub compressed_bytes: u64,
    pub unpacked_bytes: u64,
    /// Disk usage of the whole directory.
    pub size_bytes: u64,
    /// SmolVM's `size_bytes`: its regular files' blocks.
    pub files_bytes: u64,
    /// SmolVM's `created`: the directory's mtime, ISO 8601 UTC.
    pub created: Option<String>,
    /// Belongs to the current image version, or a built image (else prune removes it).
    pub current: bool,
    /// Bootable as it is.
    pub ready: bool,
    /// Why prune keeps this stale entry (in use, custom image…).
    pub kept: Option<String>,
    pub in_use_by: Vec<String>,
}

/// Why `image rm` takes no name for a row ([`Row::rm_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RmRefusal {
    /// An older version of ours, or an entry neither layout describes: prune removes it.
    PrunesIt,
    /// A current cache whose name is not a published image's.
    NotPublished,
    /// No image at all (why it is left alone).
    NotAnImage(String),
}

impl Row {
    /// The published image this cache holds, by the name a pull takes
    /// (`hermes-amd64-firecracker`, SmolVM's `hermes-v0.0.36-amd64-firecracker/` too);
    /// `None` for a built image or an entry neither layout describes.
    pub fn published_name(&self) -> Option<String> {
        match (self.kind, self.arch, self.vmm, self.os) {
            (Kind::Cache | Kind::SmolvmCache, Some(arch), Some(vmm), Some(os)) => {
                Some(super::image_name(&self.preset, arch, vmm, os))
            }
            _ => None,
        }
    }

    /// The name `image rm` takes for this row, or why it takes none: `image rm`'s choice
    /// ([`super::remove`]) said of a listed row, for the faces that list rows (the Images
    /// pane's `d`; tests/tui.rs checks the two agree). Ours of the current version by its
    /// image name; SmolVM's caches, of any version, and built images by their own name; an
    /// older cache of ours is prune's; a folder that is no image is never removed.
    pub fn rm_name(&self) -> std::result::Result<String, RmRefusal> {
        match self.kind {
            _ if self.not_an_image() => {
                Err(RmRefusal::NotAnImage(self.kept.clone().unwrap_or_default()))
            }
            Kind::Built | Kind::SmolvmCache => Ok(self.name.clone()),
            Kind::Cache if self.current && super::parse_image_name(&self.name).is_some() => {
                Ok(self.name.clone())
            }
            Kind::Cache if self.current => Err(RmRefusal::NotPublished),
            Kind::Cache | Kind::Other => Err(RmRefusal::PrunesIt),
        }
    }

    /// A folder of the images root that is no image ([`left_alone`]): listed, never
    /// removed or pulled.
    pub fn not_an_image(&self) -> bool {
        self.kind == Kind::Other && self.kept.as_deref() == Some(left_alone(&self.name).as_str())
    }

    /// A catalog entry as a row of this `kind`.
    pub fn from_entry(e: Entry, kind: Kind) -> Row {
        Row {
            kind,
            arch: Some(e.arch),
            vmm: Some(e.vmm),
            os: Some(e.os),
            compressed_bytes: e.compressed_bytes,
            unpacked_bytes: e.unpacked_bytes,
            size_bytes: e.on_disk_bytes,
            files_bytes: e.files_bytes,
            created: e.created,
            current: e.current,
            ready: e.ready,
            kept: None,
            in_use_by: e.in_use_by,
            version: e.version,
            name: e.name,
            preset: e.preset,
            path: e.path,
        }
    }

    /// The image `image build` made as `name` under `images_root`.
    pub(super) fn built(images_root: &std::path::Path, name: String, links: &HardLinks) -> Row {
        let path = images_root.join(&name);
        Row::plain(Kind::Built, name, String::new(), path, links)
    }

    /// A folder of the images root that is no image: listed with its size, unless
    /// something is mounted on it (another file system's use is not this one's, and a
    /// listing does not walk a network mount): then 0.
    fn folder(
        images_root: &std::path::Path,
        name: String,
        path: PathBuf,
        links: &HardLinks,
    ) -> Row {
        let mounted = path
            .file_name()
            .is_none_or(|entry| is_mount_below(images_root, entry));
        let mut row = if mounted {
            let created = catalog::created(&path);
            Row::sized(Kind::Other, name, String::new(), path, (0, 0), created)
        } else {
            Row::plain(Kind::Other, name, String::new(), path, links)
        };
        row.kept = Some(left_alone(&row.name));
        row
    }

    /// A row of no platform, sized by one walk of its folder (hard links once per `links`
    /// in `size_bytes`, as every row's; once within the folder in `files_bytes`).
    fn plain(kind: Kind, name: String, version: String, path: PathBuf, links: &HardLinks) -> Row {
        let (u, created) = (usage(&path, links), catalog::created(&path));
        Row::sized(kind, name, version, path, (u.on_disk, u.files), created)
    }

    /// A row of no platform: `(size_bytes, files_bytes)` as given.
    fn sized(
        kind: Kind,
        name: String,
        version: String,
        path: PathBuf,
        (size, files_bytes): (u64, u64),
        created: Option<String>,
    ) -> Row {
        Row {
            kind,
            version,
            name,
            preset: String::new(),
            arch: None,
            vmm: None,
            os: None,
            path,
            compressed_bytes: 0,
            unpacked_bytes: 0,
            size_bytes: size,
            files_bytes,
            created,
            current: kind == Kind::Built,
            ready: kind == Kind::Built,
            kept: None,
            in_use_by: Vec::new(),
        }
    }

    /// The platform's names as the faces show them (empty where the row has none).
    pub fn arch_str(&self) -> &'static str {
        self.arch.map_or("", Arch::as_str)
    }

    pub fn vmm_str(&self) -> &'static str {
        self.vmm.map_or("", Vmm::as_str)
    }

    /// `current` or `stale` (`image ls`'s `status`).
    pub fn status(&self) -> &'static str {
        if self.current {
            "current"
        } else {
            "stale"
        }
    }

    /// `current`, `stale`, `kept: <reason>`, or `built`.
    pub fn state(&self) -> String {
        if self.kind == Kind::Built {
            return "built".into();
        }
        match (&self.kept, self.current) {
            (_, true) => "current".into(),
            (Some(r), false) => format!("kept: {r}"),
            (None, false) => "stale".into(),
        }
    }
}

/// The list, what prune would free, and what could not be read.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub rows: Vec<Row>,
    pub reclaimable_bytes: u64,
    pub warnings: Vec<String>,
    /// The state databases whose sandboxes the rows' `in_use_by` were read from (every
    /// existing candidate: a cache any of them uses is in use).
    pub state_dbs: Vec<std::path::PathBuf>,
}

/// Everything under the images root, sorted by version then name (built images last).
/// An unreadable images root is an error; a prune plan that cannot be made is a warning.
pub fn list(paths: &Paths, current_version: &str) -> Result<Listing> {
    let dbs = paths.existing_state_dbs();
    let mut rows: Vec<Row> = catalog::list(&paths.images_root, current_version, &dbs)?
        .into_iter()
        .map(|e| Row::from_entry(e, Kind::Cache))
        .collect();
    let mut out = Listing {
        state_dbs: dbs.clone(),
        ..Listing::default()
    };
    // SmolVM's flat caches, of every version.
    rows.extend(
        catalog::list_smolvm(&paths.images_root, current_version, &dbs)
            .into_iter()
            .map(|e| Row::from_entry(e, Kind::SmolvmCache)),
    );
    let links = HardLinks::default();
    match prune::plan(&PruneOptions::new(paths, current_version, true)) {
        Ok(plan) => {
            out.reclaimable_bytes = plan.reclaimable_bytes();
            // Why prune keeps some, and stale entries neither layout describes.
            let stale = plan
                .stale
                .iter()
                .map(|s| (s.path.clone(), s.version.clone(), None));
            let kept = plan
                .kept
                .iter()
                .map(|k| (k.path.clone(), String::new(), Some(k.reason.to_string())));
            for (path, version, kept) in stale.chain(kept) {
                let mut covered = false;
                for r in rows.iter_mut().filter(|r| r.path.starts_with(&path)) {
                    r.kept.clone_from(&kept);
                    covered = true;
                }
                if covered {
                    continue;
                }
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let version = if version.is_empty() {
                    cache_version(&name).unwrap_or("").to_string()
                } else {
                    version
                };
                let mut row = Row::plain(Kind::Other, name, version, path, &links);
                row.kept = kept;
                rows.push(row);
            }
        }
        Err(e) => out.warnings.push(e.message),
    }
    rows.sort_by(|a, b| (&a.version, &a.name).cmp(&(&b.version, &b.name)));
    let built: Vec<Row> = built_images(paths)
        .into_iter()
        .map(|name| Row::built(&paths.images_root, name, &links))
        .collect();
    let covered: Vec<PathBuf> = rows.iter().chain(&built).map(|r| r.path.clone()).collect();
    rows.extend(
        not_images(&paths.images_root, &covered)
            .into_iter()
            .map(|(name, path)| Row::folder(&paths.images_root, name, path, &links)),
    );
    rows.extend(built);
    out.rows = rows;
    Ok(out)
}

/// The folders of `root` (not links, not files) that hold none of the `covered` rows and
/// whose name no cache layout claims, sorted by name: what SmolVM lists as `other`.
pub(super) fn not_images(root: &std::path::Path, covered: &[PathBuf]) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            // A name that is no UTF-8 is listed too (as SmolVM lists it), shown lossily.
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let claimed =
                cache_version(&name).is_some() || covered.iter().any(|c| c.starts_with(&path));
            (!claimed).then_some((name, path))
        })
        .collect();
    found.sort();
    found
}
