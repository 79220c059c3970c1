//! `image load`: an archive checked entry by entry (manifest first, names, sizes,
//! SHA-256s, the release's published checksums), unpacked into a staging directory and
//! swapped into place.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use crate::core::error::{io_reason, Error, ErrorCode, Result};
use crate::core::images::store::{owned_image_dir, validate_name, Staging};
use crate::core::images::{
    parse_image_name, Layout, Manifest, ROOTFS, ROOTFS_ZST, SIDECAR, SIDECAR_PREFIX,
};
use crate::core::progress::Progress;
use crate::core::prune::{cache_version, InUse};
use crate::core::Paths;
use crate::sys::{open, sparse::SparseWriter};

use super::*;

/// `archive <FILE>: <why>`: what a bad archive reads like (exit 1).
/// An archive that is not a usable image: SmolVM's `invalid_input` (exit 2).
fn bad(input: &Path, why: impl std::fmt::Display) -> Error {
    Error::new(
        crate::core::ErrorCode::InvalidInput,
        format!("invalid image archive {}: {why}", input.display()),
    )
    .with_recovery("Nothing was changed. Save the image again with 'smolvm image save'.")
}

/// A read error in the middle of the stream: a cut or corrupt archive.
fn corrupt(input: &Path, e: &io::Error) -> Error {
    bad(
        input,
        format!("it is truncated or corrupt ({})", io_reason(e)),
    )
}

/// Check the manifest against what this smolvm accepts (format, name, kind, file list).
fn validate_manifest(input: &Path, m: &ArchiveManifest, current_version: &str) -> Result<()> {
    if m.format != FORMAT {
        return Err(bad(input, format!("unknown format {:?}", m.format)));
    }
    if m.format_version != FORMAT_VERSION {
        return Err(bad(
            input,
            format!(
                "format version {} (this smolvm reads version {FORMAT_VERSION})",
                m.format_version
            ),
        ));
    }
    validate_name(&m.name).map_err(|e| bad(input, e.message))?;
    match (m.kind, &m.version) {
        (Kind::Built, None) => {}
        (Kind::Built, Some(_)) => return Err(bad(input, "a built image carries no image version")),
        (Kind::Published, Some(v)) => {
            if cache_version(v) != Some(v.as_str()) {
                return Err(bad(input, format!("invalid image version {v:?}")));
            }
            if v != current_version {
                return Err(Error::runtime(format!(
                    "{} holds {} of image version {v}; this smolvm uses image version {current_version}",
                    input.display(),
                    m.name
                ))
                .with_recovery(format!(
                    "Load it with SMOLVM_IMAGE_VERSION={v}, or save it again from a smolvm of version {current_version}."
                )));
            }
            if parse_image_name(&m.name).is_none() {
                return Err(bad(
                    input,
                    format!("{:?} is not a published image's cache name", m.name),
                ));
            }
        }
        (Kind::Published, None) => {
            return Err(bad(input, "a published image needs its image version"))
        }
    }
    let expected = expected_files(m.kind, &m.name)
        .ok_or_else(|| bad(input, format!("{:?} is not a valid image name", m.name)))?;
    let mut names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    // A built image may end with `image build --init`'s record.
    if m.kind == Kind::Built && names.last() == Some(&crate::core::images::store::INIT_FILE) {
        names.pop();
    }
    if names != expected.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(bad(
            input,
            format!(
                "a {} image holds exactly {}; the manifest lists {}",
                m.kind.as_str(),
                expected.join(", "),
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    for f in &m.files {
        if !crate::core::images::manifest::valid_sha256(&f.sha256) {
            return Err(bad(
                input,
                format!("{}: invalid SHA-256 {:?}", f.name, f.sha256),
            ));
        }
        let small = [FINGERPRINT, SIDECAR, crate::core::images::store::INIT_FILE];
        if small.contains(&f.name.as_str()) && f.size > MAX_SMALL {
            return Err(bad(
                input,
                format!("{}: {} bytes is too large", f.name, f.size),
            ));
        }
    }
    Ok(())
}

/// A published archive must carry exactly this release's published kernel and rootfs.
fn check_published(input: &Path, m: &ArchiveManifest, published: &Manifest) -> Result<()> {
    let Some((preset, arch, vmm, os)) = parse_image_name(&m.name) else {
        return Err(bad(input, format!("{:?} is not a cache name", m.name)));
    };
    let Some(row) = published.lookup(&preset, arch, vmm, os) else {
        return Err(bad(
            input,
            format!("{} is not an image this release publishes", m.name),
        ));
    };
    let sha = |n: &str| m.sha256_of(n);
    let kernel = published_kernel_name(&m.name).unwrap_or_default();
    if sha(ROOTFS_ZST) != Some(row.rootfs_sha256.as_str())
        || sha(&kernel) != Some(row.kernel_sha256.as_str())
    {
        return Err(bad(
            input,
            format!(
                "its {ROOTFS_ZST} or {kernel} is not the one published for {} (manifest {})",
                m.name, published.source
            ),
        ));
    }
    Ok(())
}

/// `image load`: put the image in the archive `input` into the image cache.
/// Errors (exit 1): an unreadable, truncated, corrupt or tampered archive (wrong entry
/// name or type, size, checksum, extra entries), a published image of another release or
/// not matching this release's checksums, an image of that name already there without
/// `force` (or, with it, in use by a VM, or not an image smolvm made), a full disk. Nothing
/// in the cache changes on error.
pub fn load(
    paths: &Paths,
    current_version: &str,
    published: impl FnOnce() -> Result<Manifest>,
    opts: &LoadOptions,
    progress: &Progress<ArchiveEvent>,
) -> Result<LoadReport> {
    let input = &opts.input;
    // A file that cannot be opened is SmolVM's `invalid_input` (exit 2).
    if let Err(e) = std::fs::metadata(input) {
        return Err(Error::new(
            crate::core::error::ErrorCode::InvalidInput,
            format!(
                "Could not open '{}': {}",
                input.display(),
                crate::core::error::io_reason(&e)
            ),
        )
        .with_recovery(
            "Check that the file was created by 'smolvm image save' and is not corrupted.",
        ));
    }
    let file = open::open_read(input).map_err(|e| io_err("cannot read", input, &e))?;
    let mut head = [0u8; 512];
    let n = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0)
        .map_err(|e| io_err("cannot read", input, &e))?;
    if super::smolvm::is_smolvm(&head[..n]) {
        return super::smolvm::load(paths, opts);
    }
    let dec = zstd::Decoder::new(BufReader::with_capacity(CHUNK, file))
        .map_err(|e| corrupt(input, &e))?;
    let mut archive = tar::Archive::new(dec);
    let mut entries = archive.entries().map_err(|e| corrupt(input, &e))?;

    // The manifest, first and small.
    let mut first = match entries.next() {
        None => return Err(bad(input, "it is empty")),
        Some(e) => e.map_err(|e| corrupt(input, &e))?,
    };
    check_entry(input, &first, MANIFEST_NAME, None)?;
    if first.size() > MAX_SMALL {
        return Err(bad(input, format!("{MANIFEST_NAME} is too large")));
    }
    let mut text = Vec::new();
    first
        .read_to_end(&mut text)
        .map_err(|e| corrupt(input, &e))?;
    drop(first);
    let m: ArchiveManifest =
        serde_json::from_slice(&text).map_err(|e| bad(input, format!("{MANIFEST_NAME}: {e}")))?;
    validate_manifest(input, &m, current_version)?;
    if m.kind == Kind::Published {
        check_published(input, &m, &published()?)?;
    }

    // Where it goes, and whether it may go there — before anything is written.
    let root = &paths.images_root;
    let (parent, dir, kernel_path) = match m.kind {
        Kind::Built => {
            let dir = root.join(&m.name);
            (root.clone(), dir.clone(), dir.join(BUILT_KERNEL))
        }
        Kind::Published => {
            let layout = Layout::new(root, current_version);
            let Some((preset, arch, vmm, os)) = parse_image_name(&m.name) else {
                return Err(bad(input, format!("{:?} is not a cache name", m.name)));
            };
            (
                layout.version_dir.clone(),
                layout.image_dir(&preset, arch, vmm, os),
                layout.kernel(arch, vmm),
            )
        }
    };
    let owned = |d: &Path| -> Result<()> {
        match m.kind {
            Kind::Built => owned_image_dir(d),
            Kind::Published => dir_or_nothing(d),
        }
    };
    let may_replace = |dir: &Path| -> Result<bool> {
        owned(dir)?;
        let exists = open::kind(dir).is_ok_and(|k| k.is_some());
        if exists && !opts.force {
            return Err(Error::new(
                ErrorCode::Refused,
                format!(
                    "an image named {} already exists at {}; refusing to replace it",
                    m.name,
                    dir.display()
                ),
            )
            .with_recovery("Pass --force to replace it."));
        }
        if exists {
            refuse_in_use(paths, dir)?;
        }
        Ok(exists)
    };
    may_replace(&dir)?;

    crate::sys::sudo::create_dirs(&parent).map_err(|e| io_err("cannot create", &parent, &e))?;
    // One writer at a time: the builder's lock on the cache dir for a built image, the
    // pull's lock on the version directory (its kernel) for a published one.
    let _lock: Box<dyn std::any::Any> =
        match m.kind {
            Kind::Built => {
                let d = File::open(&parent).map_err(|e| io_err("cannot open", &parent, &e))?;
                Box::new(crate::sys::build::lock_dir(d).map_err(|e| {
                    Error::runtime(format!("cannot lock {}: {e}", parent.display()))
                })?)
            }
            Kind::Published => Box::new(super::super::pull::lock_dir(
                &parent,
                super::super::pull::Artifact::Kernel,
                &Progress::none(),
            )?),
        };
    let r = unpack(Unpack {
        input,
        m: &m,
        entries: &mut entries,
        parent: &parent,
        dir: &dir,
        kernel_path: &kernel_path,
        owned: &owned,
        may_replace: &may_replace,
        progress,
    });
    // A failed load leaves no directory of its own (the version directory it locked,
    // holding nothing but that lock), as a failed pull does.
    if r.is_err() && m.kind == Kind::Published {
        let _ = crate::sys::fs::remove_lock_only_dir(&parent);
    }
    r
}

/// What [`unpack`] works on (under the lock).
struct Unpack<'a, 'e, R: Read> {
    input: &'a Path,
    m: &'a ArchiveManifest,
    entries: &'a mut tar::Entries<'e, R>,
    parent: &'a Path,
    dir: &'a Path,
    kernel_path: &'a Path,
    owned: &'a dyn Fn(&Path) -> Result<()>,
    may_replace: &'a dyn Fn(&Path) -> Result<bool>,
    progress: &'a Progress<ArchiveEvent>,
}

/// Under the lock: the final checks, the staging directory, every file unpacked and
/// verified, the published kernel, the swap.
fn unpack<R: Read>(u: Unpack<'_, '_, R>) -> Result<LoadReport> {
    let Unpack {
        input,
        m,
        entries,
        parent,
        dir,
        kernel_path,
        owned,
        may_replace,
        progress,
    } = u;
    let (parent, dir, kernel_path) = (
        parent.to_path_buf(),
        dir.to_path_buf(),
        kernel_path.to_path_buf(),
    );
    let replaced = may_replace(&dir)?;
    let staging = Staging::create(&parent, &m.name)?;
    let staging_path = staging.path().to_path_buf();

    for f in &m.files {
        let mut entry = match entries.next() {
            None => return Err(bad(input, format!("it ends before {}", f.name))),
            Some(e) => e.map_err(|e| corrupt(input, &e))?,
        };
        check_entry(input, &entry, &f.name, Some(f.size))?;
        let out_path = staging_path.join(&f.name);
        let out = open::create_new(&out_path, 0o644)
            .map_err(|e| io_err("cannot create", &out_path, &e))?;
        let mut w = SparseWriter::new(out);
        let (n, sha) = stream(
            &mut entry,
            |b| w.write_all(b),
            |bytes| {
                progress.emit(ArchiveEvent {
                    file: f.name.clone(),
                    phase: Phase::Unpack,
                    bytes,
                    total: f.size,
                })
            },
        )
        .map_err(|e| match e.kind() {
            io::ErrorKind::StorageFull => io_err("cannot unpack into", &parent, &e),
            _ => corrupt(input, &e),
        })?;
        w.finish()
            .map_err(|e| io_err("cannot unpack into", &parent, &e))?;
        if n != f.size {
            return Err(bad(input, format!("{} is cut short", f.name)));
        }
        if sha != f.sha256 {
            return Err(bad(
                input,
                format!(
                    "SHA-256 mismatch for {}\n  expected: {}\n  actual:   {sha}",
                    f.name, f.sha256
                ),
            ));
        }
    }
    match entries.next() {
        None => {}
        Some(Ok(e)) => {
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            return Err(bad(
                input,
                format!("unexpected entry {name:?} after the image files"),
            ));
        }
        Some(Err(e)) => return Err(corrupt(input, &e)),
    }

    if m.files
        .iter()
        .any(|f| f.name == crate::core::images::store::INIT_FILE)
    {
        let p = staging_path.join(crate::core::images::store::INIT_FILE);
        let init = open::read_to_string(&p).map_err(|e| io_err("cannot read", &p, &e))?;
        crate::core::images::store::validate_init(init.trim()).map_err(|e| {
            bad(
                input,
                format!("{}: {}", crate::core::images::store::INIT_FILE, e.message),
            )
        })?;
    }
    if m.kind == Kind::Published {
        let rootfs_sha = m.sha256_of(ROOTFS_ZST).unwrap_or_default();
        let sidecar = open::read_to_string(&staging_path.join(SIDECAR))
            .map_err(|e| io_err("cannot read", &staging_path.join(SIDECAR), &e))?;
        if sidecar.trim() != format!("{SIDECAR_PREFIX}{rootfs_sha}") {
            return Err(bad(
                input,
                format!("its {SIDECAR} does not name its {ROOTFS_ZST}"),
            ));
        }
        super::super::pull::write_stamp(&staging_path.join(ROOTFS_ZST), rootfs_sha)?;
        // The version's kernel, shared by its images: verified against the published
        // checksum above; put in place unless the one there already is it.
        let kname = published_kernel_name(&m.name).unwrap_or_default();
        let kernel_sha = m.sha256_of(&kname).unwrap_or_default();
        let staged = staging_path.join(&kname);
        if file_sha(&kernel_path).as_deref() == Some(kernel_sha) {
            crate::sys::fs::remove_generated_file(&staged)
                .map_err(|e| io_err("cannot remove", &staged, &e))?;
        } else {
            crate::sys::fs::replace_with_generated(&staged, &kernel_path)
                .map_err(|e| io_err("cannot write", &kernel_path, &e))?;
            open::sync_dir(&parent).map_err(|e| io_err("cannot sync", &parent, &e))?;
        }
        super::super::pull::write_stamp(&kernel_path, kernel_sha)?;
    }
    open::sync_dir(&staging_path).map_err(|e| io_err("cannot sync", &staging_path, &e))?;

    // Swap in; the guard removes the old image from the staging name.
    staging.swap_into(&dir, |p: &Path| owned(p))?;
    open::sync_dir(&parent).map_err(|e| io_err("cannot sync", &parent, &e))?;
    Ok(LoadReport {
        name: m.name.clone(),
        kind: m.kind,
        version: m.version.clone(),
        rootfs_path: dir.join(ROOTFS),
        image_dir: dir,
        kernel_path,
        files: m.files.clone(),
        replaced,
        format: Format::Native,
    })
}

/// The SHA-256 of a regular file at `p` (never through a symbolic link).
fn file_sha(p: &Path) -> Option<String> {
    let f = open::open_read(p).ok()?;
    stream(f, |_| Ok(()), |_| {}).ok().map(|(_, s)| s)
}

/// An entry must be a regular file named exactly `name` (with `size` bytes when given).
fn check_entry<R: Read>(
    input: &Path,
    e: &tar::Entry<'_, R>,
    name: &str,
    size: Option<u64>,
) -> Result<()> {
    let path = e.path_bytes();
    let shown = String::from_utf8_lossy(&path).into_owned();
    if path.as_ref() != name.as_bytes() {
        return Err(bad(
            input,
            format!("unexpected entry {shown:?} (expected {name})"),
        ));
    }
    let t = e.header().entry_type();
    if t != tar::EntryType::Regular {
        return Err(bad(
            input,
            format!("entry {shown:?} is not a regular file ({t:?}); links and devices are refused"),
        ));
    }
    if let Some(s) = size {
        if e.size() != s {
            return Err(bad(
                input,
                format!(
                    "entry {shown:?} is {} bytes, the manifest says {s}",
                    e.size()
                ),
            ));
        }
    }
    Ok(())
}

/// An image folder a load would replace is not in use by a sandbox of any state database.
pub(super) fn refuse_in_use(paths: &Paths, dir: &std::path::Path) -> Result<()> {
    let inuse = InUse::read(&paths.existing_state_dbs());
    match inuse.reasons(&[(dir.to_path_buf(), false)]).pop() {
        Some(Some(why)) => Err(Error::new(
            ErrorCode::Refused,
            format!("{} is {why}; refusing to replace it", dir.display()),
        )),
        _ => Ok(()),
    }
}
