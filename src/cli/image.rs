//! `smolvm image pull|ls|rm|inspect|build|save|load` and `smolvm images`: thin faces over
//! [`core::images`](crate::core::images).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::args::{ImageInspectArgs, ImagePullArgs, ImageRmArgs, PlatformArgs};
use super::output::{self, line, warn};
use crate::core::context::Context;
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::images::catalog;
use crate::core::images::listing::Row;
use crate::core::images::pull::{self, Artifact, Phase, PullEvent, PullReport};
use crate::core::images::{Arch, Layout, Manifest, Os, Platform, Target, Vmm};
use crate::core::progress::Progress;
use crate::core::units::format_size;
use crate::core::version::image_version;
use crate::core::{display_path, Paths};

/// The image store `ls`, `rm` and `inspect` act on: its paths (`--image-dir` or the
/// default) and the current image version.
pub(super) fn image_store(cx: &Context, image_dir: Option<&Path>) -> Result<(Paths, String)> {
    let env = cx.env();
    let paths = cx.paths_with_image_dir(image_dir);
    Ok((paths, image_version(env)?))
}

fn platform(p: &PlatformArgs) -> Result<Platform> {
    Ok(Platform {
        arch: p.arch,
        vmm: p.vmm.map(|v| v.resolve()).transpose()?,
        os: p.os,
    })
}

/// The published image a pull or an inspect is about: SmolVM's keys, in its order.
#[derive(Serialize)]
struct ImageKeys<'a> {
    preset: &'a str,
    arch: &'a str,
    vmm: &'a str,
    os: &'a str,
    version: &'a str,
    release: &'a str,
}

#[derive(Serialize)]
struct PullData<'a> {
    #[serde(flatten)]
    image: ImageKeys<'a>,
    name: &'a str,
    image_dir: &'a Path,
    kernel_path: &'a Path,
    rootfs_path: &'a Path,
    size_bytes: u64,
    downloaded_bytes: u64,
    already_cached: bool,
}

fn pull_data(r: &PullReport) -> PullData<'_> {
    PullData {
        image: ImageKeys {
            preset: &r.preset,
            arch: r.arch.as_str(),
            vmm: r.vmm.as_str(),
            os: r.os.as_str(),
            version: &r.version,
            release: &r.release,
        },
        name: &r.name,
        image_dir: &r.image_dir,
        kernel_path: &r.kernel_path,
        rootfs_path: &r.rootfs_path,
        size_bytes: r.size_bytes,
        downloaded_bytes: r.downloaded_bytes,
        already_cached: r.already_cached,
    }
}

#[derive(Serialize)]
struct PullFailure {
    preset: String,
    os: String,
    error: String,
}

#[derive(Serialize)]
struct PullAllData<'a> {
    arch: &'a str,
    vmm: &'a str,
    pulled: Vec<PullData<'a>>,
    failed: Vec<PullFailure>,
}

pub fn pull(command: &str, args: &ImagePullArgs, cx: &Context) -> i32 {
    let env = cx.env();
    let paths = cx.paths_with_image_dir(args.store.image_dir.as_deref());
    let p = match platform(&args.platform) {
        Ok(p) => p,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let host = cx.host();
    let (manifest, opts) = match pull::setup(env, &paths.images_root) {
        Ok(x) => x,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let bars = Bars::new(!args.store.json && std::io::stderr().is_terminal());

    if !args.all {
        let preset = args.preset.as_deref().unwrap_or_default();
        let r = pull::resolve(cx.presets(), &manifest, preset, p, host).and_then(|(t, img)| {
            pull::pull(&opts, img, &bars.progress(&t.name(), args.store.json))
        });
        bars.clear();
        return match r {
            Err(e) => output::fail(command, args.store.json, &e),
            Ok(r) => {
                if args.store.json {
                    output::print_json(command, 0, Some(&pull_data(&r)), None);
                } else {
                    human_pull(&r, &paths.home);
                }
                0
            }
        };
    }

    // --all: every (preset, os) published for this platform, filtered by --os.
    let t = match Target::named("all", p, host) {
        Ok(t) => t,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let report = pull::pull_all(
        &opts,
        &manifest,
        &t,
        p.os,
        |name| bars.progress(name, args.store.json),
        |r| {
            bars.clear();
            if !args.store.json {
                match r {
                    Ok(r) => human_pull(r, &paths.home),
                    Err(f) => line(format!("Failed: {} — {}", f.name, f.error.message)),
                }
            }
        },
    );
    let report = match report {
        Ok(r) => r,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let error = report.error();
    let failed: Vec<PullFailure> = report
        .failed
        .iter()
        .map(|f| PullFailure {
            preset: f.preset.clone(),
            os: f.os.to_string(),
            error: f.error.message.clone(),
        })
        .collect();
    let code = if failed.is_empty() { 0 } else { 1 };
    if args.store.json {
        let data = PullAllData {
            arch: t.arch.as_str(),
            vmm: t.vmm.as_str(),
            pulled: report.pulled.iter().map(pull_data).collect(),
            failed,
        };
        output::print_json(command, code, Some(&data), error.as_ref());
    } else if let Some(e) = error {
        output::err_line(format!("Error: {}", e.message));
    }
    code
}

fn human_pull(r: &PullReport, home: &Path) {
    let state = if r.already_cached {
        "Already cached:"
    } else {
        "Pulled"
    };
    line(format!(
        "{state} {} ({})",
        r.name,
        format_size(r.size_bytes)
    ));
    line(format!("  kernel: {}", display_path(&r.kernel_path, home)));
    line(format!("  rootfs: {}", display_path(&r.rootfs_path, home)));
}

/// An indicatif bar on stderr when it is a terminal; otherwise only retries and waits
/// are reported (as warnings), and nothing at all with `--json`.
struct Bars {
    bar: Option<indicatif::ProgressBar>,
}

impl Bars {
    fn new(tty: bool) -> Self {
        let bar = tty.then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        Bars { bar }
    }

    fn progress(&self, name: &str, json: bool) -> Progress<PullEvent> {
        if json {
            return Progress::none();
        }
        let bar = self.bar.clone();
        let name = name.to_string();
        let last: Arc<Mutex<(Artifact, Phase)>> =
            Arc::new(Mutex::new((Artifact::Kernel, Phase::Download)));
        Progress::new(move |ev| match ev {
            PullEvent::Progress {
                artifact,
                phase,
                bytes,
                total,
            } => {
                if let Some(b) = &bar {
                    if let Ok(mut l) = last.lock() {
                        if *l != (artifact, phase) {
                            *l = (artifact, phase);
                            b.set_message(format!(
                                "{name} {} {}",
                                artifact.as_str(),
                                phase.as_str()
                            ));
                            b.reset();
                        }
                    }
                    if let Some(t) = total {
                        b.set_length(t);
                    }
                    b.set_position(bytes);
                }
            }
            PullEvent::Retry {
                artifact,
                attempt,
                reason,
            } => {
                let msg = format!(
                    "{name} {}: {reason}; retrying (attempt {})",
                    artifact.as_str(),
                    attempt + 1
                );
                match &bar {
                    Some(b) => b.println(format!("Warning: {msg}")),
                    None => warn(msg),
                }
            }
            PullEvent::Waiting { artifact } => {
                let msg = format!(
                    "another smolvm is pulling {name} {}; waiting for it",
                    artifact.as_str()
                );
                match &bar {
                    Some(b) => b.println(msg),
                    None => warn(msg),
                }
            }
            PullEvent::Cached { .. } | PullEvent::Ready { .. } => {}
        })
    }

    fn clear(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// One image directory as `image rm --json` reports it, and the first keys of an
/// `image ls --json` row.
#[derive(Serialize)]
pub(super) struct EntryData<'a> {
    /// Null where the row has none (a built image, an entry neither layout describes),
    /// as in SmolVM's rows and in `image inspect`; likewise `preset`, `arch`, `vmm`, `os`.
    version: Option<&'a str>,
    name: &'a str,
    preset: Option<&'a str>,
    arch: Option<&'a str>,
    vmm: Option<&'a str>,
    os: Option<&'a str>,
    /// Lossy where the folder's name is no UTF-8 (its `name` is too).
    #[serde(serialize_with = "super::shapes::lossy_path")]
    path: &'a Path,
    compressed_bytes: u64,
    unpacked_bytes: u64,
    on_disk_bytes: u64,
    current: bool,
    status: &'a str,
    ready: bool,
    in_use_by: &'a [String],
    /// SmolVM's: its regular files' blocks (`on_disk_bytes` also counts directories).
    size_bytes: u64,
    /// SmolVM's: the directory's mtime, ISO 8601 UTC.
    created: Option<&'a str>,
}

pub(super) fn entry_data<'a>(r: &'a Row) -> EntryData<'a> {
    let known = |s: &'a str| (!s.is_empty()).then_some(s);
    EntryData {
        version: known(&r.version),
        name: &r.name,
        preset: known(&r.preset),
        arch: r.arch.map(Arch::as_str),
        vmm: r.vmm.map(Vmm::as_str),
        os: r.os.map(Os::as_str),
        path: &r.path,
        compressed_bytes: r.compressed_bytes,
        unpacked_bytes: r.unpacked_bytes,
        on_disk_bytes: r.size_bytes,
        current: r.current,
        status: r.status(),
        ready: r.ready,
        in_use_by: &r.in_use_by,
        size_bytes: r.files_bytes,
        created: r.created.as_deref(),
    }
}

pub use super::image_list::list;

#[derive(Serialize)]
struct RmData<'a> {
    /// What went (with `--dry-run`: what would go; SmolVM's `would_remove` too).
    removed: Vec<EntryData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    would_remove: Option<Vec<WouldRemove<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    would_free_bytes: Option<u64>,
    kept: Vec<KeptData<'a>>,
    failed: Vec<RmFailure<'a>>,
    freed_bytes: u64,
    dry_run: bool,
}

/// SmolVM's item of a dry run's `would_remove`.
#[derive(Serialize)]
struct WouldRemove<'a> {
    name: &'a str,
    path: &'a Path,
    size_bytes: u64,
}

/// A kept image: its entry and why (`in use by VM …`, `open by process …`).
#[derive(Serialize)]
struct KeptData<'a> {
    #[serde(flatten)]
    entry: EntryData<'a>,
    reason: String,
}

#[derive(Serialize)]
struct RmFailure<'a> {
    path: &'a Path,
    error: &'a str,
}

pub fn rm(command: &str, args: &ImageRmArgs, cx: &Context) -> i32 {
    let (paths, version) = match image_store(cx, args.store.image_dir.as_deref()) {
        Ok(s) => s,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    use crate::core::images::remove;
    let req = remove::RmRequest {
        images_root: &paths.images_root,
        current_version: &version,
        state_dbs: &paths.existing_state_dbs(),
        args: &args.presets,
        dry_run: args.dry_run,
    };
    let never = crate::core::job::CancelToken::new();
    let r = match remove::remove(cx.presets(), &req, &never) {
        Ok(r) => r,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    for w in &r.warnings {
        warn(w.clone());
    }
    let freed = r.freed_bytes();
    let problems = r.kept.len() + r.failed.len();
    let code = if problems == 0 { 0 } else { 1 };
    if args.store.json {
        let error = (problems > 0).then(|| {
            Error::new(
                ErrorCode::PartialFailure,
                format!("{problems} image(s) could not be removed"),
            )
        });
        let kept: Vec<(&Row, String)> =
            r.kept.iter().map(|(e, why)| (e, why.to_string())).collect();
        let data = RmData {
            removed: r.removed.iter().map(entry_data).collect(),
            would_remove: args.dry_run.then(|| {
                r.removed
                    .iter()
                    .map(|e| WouldRemove {
                        name: &e.name,
                        path: &e.path,
                        size_bytes: e.files_bytes,
                    })
                    .collect()
            }),
            would_free_bytes: args.dry_run.then_some(freed),
            kept: kept
                .iter()
                .map(|(e, why)| KeptData {
                    entry: entry_data(e),
                    reason: why.clone(),
                })
                .collect(),
            failed: r
                .failed
                .iter()
                .map(|(e, m)| RmFailure {
                    path: &e.path,
                    error: m,
                })
                .collect(),
            freed_bytes: freed,
            dry_run: args.dry_run,
        };
        output::print_json(command, code, Some(&data), error.as_ref());
        return code;
    }
    let verb = if args.dry_run {
        "Would remove:"
    } else {
        "Removed:"
    };
    for e in &r.removed {
        line(format!("{verb} {}/", display_path(&e.path, &paths.home)));
    }
    for (e, why) in &r.kept {
        line(format!(
            "Kept:    {}/ ({why})",
            display_path(&e.path, &paths.home)
        ));
    }
    for (e, m) in &r.failed {
        line(format!(
            "Failed:  {}/ ({m})",
            display_path(&e.path, &paths.home)
        ));
    }
    if args.dry_run {
        line(format!(
            "Would free {}. Dry run complete. No changes made.",
            format_size(freed)
        ));
    } else {
        line(format!("Freed {}.", format_size(freed)));
    }
    code
}

#[derive(Serialize)]
struct InspectData<'a> {
    name: &'a str,
    #[serde(flatten)]
    image: ImageKeys<'a>,
    /// Where the manifest came from (`bundled`, a path or a URL).
    manifest_source: &'a str,
    kernel_url: &'a str,
    kernel_sha256: &'a str,
    rootfs_url: &'a str,
    rootfs_sha256: &'a str,
    image_dir: &'a Path,
    kernel_path: &'a Path,
    rootfs_path: std::path::PathBuf,
    ready: bool,
    rootfs_sidecar: Option<&'a str>,
    expected_sidecar: &'a str,
    files: Vec<FileData<'a>>,
    /// SmolVM's keys: `kind` (`image`: a published image's cache), `current`, `created`,
    /// `size_bytes` (the files' blocks), `path` (the image directory) and `manifest`.
    kind: &'a str,
    /// `smolvm` for SmolVM's `<preset>-v<version>-<arch>-<vmm>` directory, `versioned`
    /// for ours (`<version>/<preset>-<arch>-<vmm>`).
    layout: &'a str,
    current: bool,
    created: Option<&'a str>,
    size_bytes: u64,
    path: &'a Path,
    manifest: ManifestData<'a>,
}

/// SmolVM's `manifest` object of `image inspect`.
#[derive(Serialize)]
struct ManifestData<'a> {
    kernel_url: &'a str,
    kernel_sha256: &'a str,
    rootfs_url: &'a str,
    rootfs_sha256: &'a str,
    images_release_tag: &'a str,
}

#[derive(Serialize)]
struct FileData<'a> {
    name: &'a str,
    path: &'a Path,
    size_bytes: u64,
    on_disk_bytes: u64,
    /// SmolVM's spelling of `on_disk_bytes`.
    size_on_disk_bytes: u64,
}

impl<'a> FileData<'a> {
    fn of(f: &'a catalog::FileInfo) -> FileData<'a> {
        FileData {
            name: &f.name,
            path: &f.path,
            size_bytes: f.size_bytes,
            on_disk_bytes: f.on_disk_bytes,
            size_on_disk_bytes: f.on_disk_bytes,
        }
    }
}

pub fn inspect(command: &str, args: &ImageInspectArgs, cx: &Context) -> i32 {
    let env = cx.env();
    let (paths, version) = match image_store(cx, args.store.image_dir.as_deref()) {
        Ok(s) => s,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let layout = Layout::new(&paths.images_root, &version);
    let p = match platform(&args.platform) {
        Ok(p) => p,
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let r = catalog::inspect_named(env, cx.host(), cx.presets(), &layout, &args.preset, p);
    let (i, m) = match r {
        Ok(catalog::Inspected::Cache(i, m)) => (*i, *m),
        Ok(catalog::Inspected::Built(b)) => return inspect_built(command, args.store.json, &b, cx),
        Err(e) => return output::fail(command, args.store.json, &e),
    };
    let data = InspectData {
        name: &i.name,
        image: ImageKeys {
            preset: &i.image.preset,
            arch: i.image.arch.as_str(),
            vmm: i.image.vmm.as_str(),
            os: i.image.os.as_str(),
            version: &i.version,
            release: &m.release,
        },
        manifest_source: &m.source,
        kernel_url: i.image.kernel_url.as_str(),
        kernel_sha256: &i.image.kernel_sha256,
        rootfs_url: i.image.rootfs_url.as_str(),
        rootfs_sha256: &i.image.rootfs_sha256,
        image_dir: &i.image_dir,
        kernel_path: &i.kernel_path,
        rootfs_path: i.image_dir.join(crate::core::images::ROOTFS),
        ready: i.ready,
        rootfs_sidecar: i.sidecar.as_deref(),
        expected_sidecar: &i.expected_sidecar,
        files: i.files.iter().map(FileData::of).collect(),
        kind: "image",
        layout: if i.smolvm_layout {
            "smolvm"
        } else {
            "versioned"
        },
        current: i.current,
        created: i.created.as_deref(),
        size_bytes: i.files_bytes,
        path: &i.image_dir,
        manifest: ManifestData {
            kernel_url: i.image.kernel_url.as_str(),
            kernel_sha256: &i.image.kernel_sha256,
            rootfs_url: i.image.rootfs_url.as_str(),
            rootfs_sha256: &i.image.rootfs_sha256,
            images_release_tag: &m.release,
        },
    };
    if args.store.json {
        // Docker's way, as SmolVM has it: an array (of the one image a name names).
        output::print_json(command, 0, Some(&[&data]), None);
        return 0;
    }
    // The same labelled lines as the dashboard's inspect (`Inspect::fields`).
    print_inspected(i.fields(&m, &paths.home), &data.files, &paths.home);
    0
}

/// SmolVM's keys of an inspected directory that is no published image's cache (its
/// `kind: other`; ours says `built`): no preset, platform, version or manifest.
#[derive(Serialize)]
struct BuiltData<'a> {
    name: &'a str,
    kind: &'a str,
    preset: Option<&'a str>,
    version: Option<&'a str>,
    arch: Option<&'a str>,
    vmm: Option<&'a str>,
    os: Option<&'a str>,
    current: Option<bool>,
    created: Option<&'a str>,
    size_bytes: u64,
    path: &'a Path,
    /// The `--init` it boots with.
    init: &'a str,
    files: Vec<FileData<'a>>,
    rootfs_sidecar: Option<&'a str>,
    manifest: Option<ManifestData<'a>>,
}

/// `image inspect NAME` of a built image: SmolVM's shape, and the same labelled lines as
/// the dashboard's inspect.
fn inspect_built(command: &str, json: bool, b: &catalog::BuiltInspect, cx: &Context) -> i32 {
    let files: Vec<FileData> = b.files.iter().map(FileData::of).collect();
    if json {
        let data = BuiltData {
            name: &b.name,
            kind: "built",
            preset: None,
            version: None,
            arch: None,
            vmm: None,
            os: None,
            current: None,
            created: b.created.as_deref(),
            size_bytes: b.files_bytes,
            path: &b.path,
            init: b.init.as_deref().unwrap_or("/init"),
            files,
            rootfs_sidecar: None,
            manifest: None,
        };
        output::print_json(command, 0, Some(&[&data]), None);
        return 0;
    }
    let h = &cx.paths().home;
    print_inspected(b.fields(h), &files, h);
    0
}

/// `image inspect`'s lines: the labelled fields (the dashboard's inspect shows the same),
/// then each file with its sizes.
fn print_inspected(fields: Vec<(&str, String)>, files: &[FileData], home: &Path) {
    for (label, value) in fields {
        line(format!("{:<16}{value}", format!("{label}:")));
    }
    for f in files {
        line(format!(
            "  {}  {} ({} on disk)",
            display_path(f.path, home),
            format_size(f.size_bytes),
            format_size(f.on_disk_bytes)
        ));
    }
}

/// A byte bar per file on stderr when it is a terminal (and not `--json`); nothing else.
fn archive_progress(
    json: bool,
) -> (
    Progress<crate::core::images::archive::ArchiveEvent>,
    Option<indicatif::ProgressBar>,
) {
    use crate::core::images::archive::ArchiveEvent;
    if json || !std::io::stderr().is_terminal() {
        return (Progress::none(), None);
    }
    let bar = Bars::new(true).bar;
    let b = bar.clone();
    let last: Mutex<(String, &'static str)> = Mutex::new((String::new(), ""));
    let p = Progress::new(move |e: ArchiveEvent| {
        let Some(b) = &b else { return };
        if let Ok(mut l) = last.lock() {
            if l.0 != e.file || l.1 != e.phase.as_str() {
                *l = (e.file.clone(), e.phase.as_str());
                b.set_message(format!("{} {}", e.file, e.phase.as_str()));
                b.reset();
                b.set_length(e.total);
            }
        }
        b.set_position(e.bytes);
    });
    (p, bar)
}

/// `smolvm image save -o FILE NAME`: a thin face over
/// [`archive::save`](crate::core::images::archive::save).
/// Exit codes: 0 written, 1 no such image / FILE exists (without `--force`) / I/O, 2 usage.
pub fn save(command: &str, args: &super::args::ImageSaveArgs, cx: &Context) -> i32 {
    use crate::core::images::archive::{self, SaveOptions};
    let opts = SaveOptions {
        name: args.name.clone(),
        output: std::path::absolute(&args.output).unwrap_or_else(|_| args.output.clone()),
        force: args.force,
        format: match args.format {
            super::args::SaveFormat::Native => archive::Format::Native,
            super::args::SaveFormat::Smolvm => archive::Format::Smolvm,
        },
    };
    with_archive(
        command,
        args.json,
        args.image_dir.as_deref(),
        cx,
        |paths, version, progress| archive::save(paths, version, &opts, progress),
        |r| {
            archive_json(
                r,
                &r.files,
                [
                    ("archive_path", serde_json::json!(r.output)),
                    ("archive_size_bytes", r.archive_bytes.into()),
                    (
                        "excluded_decompressed_rootfs",
                        archive::excludes_decompressed_rootfs(&r.files).into(),
                    ),
                ],
            )
        },
        |r, home| line(r.summary(home)),
    )
}

/// `smolvm image load -i FILE`: a thin face over
/// [`archive::load`](crate::core::images::archive::load).
/// Exit codes: 0 loaded, 1 a bad archive / the image exists (without `--force`) / I/O,
/// 2 usage.
pub fn load(command: &str, args: &super::args::ImageLoadArgs, cx: &Context) -> i32 {
    let env = cx.env();
    use crate::core::images::archive::{self, LoadOptions};
    let opts = LoadOptions {
        input: args.input.clone(),
        force: args.force,
    };
    with_archive(
        command,
        args.json,
        args.image_dir.as_deref(),
        cx,
        |paths, version, progress| {
            archive::load(paths, version, || Manifest::load(env), &opts, progress)
        },
        |r| {
            archive_json(
                r,
                &r.files,
                [
                    ("path", serde_json::json!(r.image_dir)),
                    ("size_bytes", r.size_on_disk().into()),
                ],
            )
        },
        |r, home| {
            line(r.summary(home));
            line(format!("  kernel: {}", display_path(&r.kernel_path, home)));
            line(format!("  rootfs: {}", display_path(&r.rootfs_path, home)));
        },
    )
}

/// A save's or load's report with SmolVM's keys beside ours: `files` is its count (our
/// list is `file_entries`), then its `extra` keys and no `warnings`.
fn archive_json<T: Serialize, const N: usize>(
    r: &T,
    files: &[crate::core::images::archive::FileEntry],
    extra: [(&str, serde_json::Value); N],
) -> serde_json::Value {
    let mut m = super::shapes::object(r);
    m.insert("file_entries".into(), serde_json::json!(files));
    m.insert("files".into(), files.len().into());
    for (k, v) in extra {
        m.insert(k.into(), v);
    }
    m.insert("warnings".into(), serde_json::json!([]));
    serde_json::Value::Object(m)
}

/// `save` and `load`: `op` on the image store with a byte bar (cleared before the result
/// is printed), then the envelope of its `shape` with `--json`, else `human` (given the
/// home directory paths are shown relative to).
fn with_archive<T: Serialize>(
    command: &str,
    json: bool,
    image_dir: Option<&Path>,
    cx: &Context,
    op: impl FnOnce(&Paths, &str, &Progress<crate::core::images::archive::ArchiveEvent>) -> Result<T>,
    shape: impl FnOnce(&T) -> serde_json::Value,
    human: impl FnOnce(&T, &Path),
) -> i32 {
    let (paths, version) = match image_store(cx, image_dir) {
        Ok(s) => s,
        Err(e) => return output::fail(command, json, &e),
    };
    let (progress, bar) = archive_progress(json);
    let r = op(&paths, &version, &progress);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match r {
        Err(e) => output::fail(command, json, &e),
        Ok(r) => {
            if json {
                output::print_json(command, 0, Some(&shape(&r)), None);
            } else {
                human(&r, &paths.home);
            }
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::images::catalog::Entry;
    use crate::core::images::listing::Kind;
    use crate::core::images::{Arch, Vmm};

    #[test]
    fn image_rm_json_entries_keep_their_keys_order_and_spellings() {
        let e = Entry {
            version: "0.0.36".into(),
            name: "codex-arm64-firecracker-alpine".into(),
            preset: "codex".into(),
            arch: Arch::Arm64,
            vmm: Vmm::Firecracker,
            os: Os::Alpine,
            path: "/i/0.0.36/codex-arm64-firecracker-alpine".into(),
            compressed_bytes: 1,
            unpacked_bytes: 2,
            on_disk_bytes: 3,
            files_bytes: 4,
            created: Some("2026-12-05T20:09:35+00:00".into()),
            current: true,
            ready: false,
            sidecar: None,
            in_use_by: vec!["vm-1".into()],
        };
        assert_eq!(
            serde_json::to_string(&entry_data(&Row::from_entry(e, Kind::Cache))).unwrap(),
            concat!(
                r#"{"version":"0.0.36","name":"codex-arm64-firecracker-alpine","preset":"codex","#,
                r#""arch":"arm64","vmm":"firecracker","os":"alpine","#,
                r#""path":"/i/0.0.36/codex-arm64-firecracker-alpine","compressed_bytes":1,"#,
                r#""unpacked_bytes":2,"on_disk_bytes":3,"current":true,"status":"current","#,
                r#""ready":false,"in_use_by":["vm-1"],"size_bytes":4,"#,
                r#""created":"2026-12-05T20:09:35+00:00"}"#
            )
        );
    }
}
