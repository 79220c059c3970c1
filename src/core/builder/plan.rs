//! One build, whatever makes its tree: the cache check, the lock on the cache dir, a
//! staging directory beside the image, the engine's tree, `mkfs.ext4 -d`, the kernel, the
//! fingerprint, and the swap-in — only over an image smolvm built (`renameat2` exchange,
//! or a rename that fails if anything appeared meanwhile).

use std::io::Write;
use std::path::Path;

use super::engine::{space_error, step_error};
use super::fingerprint::is_cached;
use super::{copy_new, io_err, validate_name, BuildEvent, BuildReport, Job};
use crate::core::error::{io_reason, Error, Result};
use crate::core::images::store::{owned_image_dir, Staging};
use crate::core::progress::Progress;
use crate::sys::{build as proc, open};

/// Whether a build may put an image at `<cache dir>/<name>`: nothing is there, or an image
/// smolvm built — a real directory (not a symbolic link) carrying a `.fingerprint` regular
/// file. Anything else (a folder without `.fingerprint`, a file, a symbolic link) is an
/// error naming it, and nothing is touched. Checked before any expensive step (the kernel
/// download, the engine) and again, under the lock, right before the swap.
pub fn check_replaceable(cache_dir: &Path, name: &str) -> Result<()> {
    validate_name(name)?;
    owned_image_dir(&cache_dir.join(name))
}

/// One build, whatever makes its tree.
pub(super) struct Plan<'a> {
    pub(super) name: String,
    pub(super) fp: String,
    pub(super) label: &'static str,
    pub(super) cache_dir: &'a Path,
    pub(super) kernel: &'a Path,
    pub(super) size_mib: u64,
    pub(super) need_mib: u64,
}

/// The cache check, the engine check, the lock, the staging directory, `populate` (the
/// engine's tree), `mkfs.ext4 -d`, the kernel, the fingerprint and the atomic swap-in.
/// Until the swap-in, a stop ([`Job`]) ends the build: the step running is killed and
/// the staging directory removed; the cache holds what it held before.
pub(super) fn run_plan(
    plan: &Plan<'_>,
    progress: &Progress<BuildEvent>,
    engine: impl FnOnce() -> Result<&'static str>,
    populate: impl FnOnce(&'static str, &Path, &Path, &Job<'_>) -> Result<()>,
) -> Result<BuildReport> {
    let (name, fp, cache_dir) = (&plan.name, &plan.fp, plan.cache_dir);
    let dir = cache_dir.join(name);
    let report = |cached: bool, engine: Option<&'static str>| BuildReport {
        name: name.clone(),
        base: plan.label,
        image_dir: dir.clone(),
        kernel_path: dir.join("vmlinux.bin"),
        rootfs_path: dir.join("rootfs.ext4"),
        fingerprint: fp.clone(),
        cached,
        engine,
        size_mib: plan.size_mib,
        platform: None,
    };
    owned_image_dir(&dir)?;
    if is_cached(&dir, fp) {
        progress.emit(BuildEvent::Cached);
        return Ok(report(true, None));
    }

    let engine = engine()?;
    let mut job = Job::new(name, progress);
    crate::sys::sudo::create_dirs(cache_dir).map_err(|e| io_err("cannot create", cache_dir, e))?;
    // One build at a time per cache dir (a lock on the directory itself: no lock file);
    // waiting for another build's can be cancelled.
    let lock = std::fs::File::open(cache_dir).map_err(|e| io_err("cannot open", cache_dir, e))?;
    let lock = proc::lock_dir_unless(lock, &|| job.stopped())
        .map_err(|e| Error::runtime(format!("cannot lock {}: {e}", cache_dir.display())))?;
    let _lock = job.finished(lock)?;
    owned_image_dir(&dir)?;
    if is_cached(&dir, fp) {
        progress.emit(BuildEvent::Cached);
        return Ok(report(true, None));
    }
    progress.emit(BuildEvent::Engine(engine));
    if let Some((_, free)) = crate::core::doctor::free_bytes(cache_dir) {
        if free < plan.need_mib << 20 {
            return Err(space_error(cache_dir, plan.need_mib));
        }
    }

    // From here on a Ctrl-C removes what the build staged before the process goes.
    job.hold_signals();
    job.check()?;
    // Staging left by a build that was killed (no other build can be running: we hold the
    // lock): only names a build of this image generates, removed without following a
    // symbolic link or crossing a mount. Declared after `job`, so it is removed before
    // the signals are given back.
    let staging = Staging::create(cache_dir, name)?;
    let staging_path = staging.path().to_path_buf();
    let tree = staging_path.join("root");

    let made = (|| {
        populate(engine, &tree, &staging_path, &job)?;
        job.check()?;
        progress.emit(BuildEvent::Step(format!(
            "making rootfs.ext4 ({} MiB) with mkfs.ext4 -d",
            plan.size_mib
        )));
        mkfs(
            &tree,
            &staging_path.join("rootfs.ext4"),
            plan.size_mib,
            cache_dir,
            &job,
        )?;
        job.check()
    })();
    job.settle(made).map_err(crate::core::job::rolled_back)?;
    crate::sys::fs::remove_entry(&staging_path, std::ffi::OsStr::new("root"))
        .map_err(|e| Error::runtime(format!("cannot remove {e}")))?;
    copy_new(plan.kernel, &staging_path.join("vmlinux.bin"))?;
    let fp_path = staging_path.join(".fingerprint");
    let mut f =
        open::create_new(&fp_path, 0o644).map_err(|e| io_err("cannot write", &fp_path, e))?;
    f.write_all(format!("{fp}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err("cannot write", &fp_path, e))?;

    // Swap in, only over an image smolvm built; the guard removes the old one from the
    // staging name.
    staging.swap_into(&dir, owned_image_dir)?;
    Ok(report(false, Some(engine)))
}
fn mkfs(tree: &Path, out: &Path, size_mib: u64, cache_dir: &Path, job: &Job<'_>) -> Result<()> {
    let res = proc::mkfs_ext4(tree, out, size_mib, &|| job.stopped())
        .map_err(|e| Error::runtime(format!("cannot run mkfs.ext4: {}", io_reason(&e))))?;
    let res = job.finished(res)?;
    if !res.status.success() {
        let text = proc::output_text(&res);
        if text.to_lowercase().contains("could not allocate block") {
            return Err(Error::runtime(format!(
                "Image build failed: the root file system does not fit in {size_mib} MiB"
            ))
            .with_recovery("Pass a larger --size."));
        }
        return Err(step_error(cache_dir, size_mib, &text, "mkfs.ext4: ", 10));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan<'a>(cache: &'a Path, kernel: &'a Path) -> Plan<'a> {
        Plan {
            name: "img".into(),
            fp: "fp-new".into(),
            label: "test",
            cache_dir: cache,
            kernel,
            size_mib: 8,
            need_mib: 1,
        }
    }

    /// A temp dir holding a kernel file, and the cache dir (not created) beside it.
    fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let kernel = t.path().join("vmlinux");
        std::fs::write(&kernel, b"k").unwrap();
        let cache = t.path().join("cache");
        (t, kernel, cache)
    }

    use crate::sys::fs::sorted_names as names;

    fn populate(_: &'static str, tree: &Path, _: &Path, _: &Job<'_>) -> Result<()> {
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/hostname"), b"smolvm\n").unwrap();
        Ok(())
    }

    #[test]
    fn staging_names() {
        use crate::core::images::store::is_staging_name;
        let p = ".img.staging-";
        assert!(is_staging_name(".img.staging-1", p));
        assert!(is_staging_name(".img.staging-42-0a1b2c", p));
        assert!(!is_staging_name(".img.staging-", p));
        assert!(!is_staging_name(".img.staging-1-zz", p));
        assert!(!is_staging_name(".img.staging-x", p));
        assert!(!is_staging_name("img", p));
    }

    #[test]
    fn a_folder_without_fingerprint_is_never_replaced() {
        let (_t, kernel, cache) = setup();
        std::fs::create_dir_all(cache.join("img")).unwrap();
        std::fs::write(cache.join("img/precious.txt"), b"mine").unwrap();
        let e = run_plan(
            &plan(&cache, &kernel),
            &Progress::none(),
            || Ok("test"),
            |_, _, _, _| panic!("must not build"),
        )
        .unwrap_err();
        assert!(
            e.message.contains("not an image smolvm built"),
            "{}",
            e.message
        );
        assert_eq!(names(&cache), ["img"]);
        assert_eq!(
            std::fs::read(cache.join("img/precious.txt")).unwrap(),
            b"mine"
        );
    }

    #[test]
    fn an_image_smolvm_built_is_swapped_out_and_stale_staging_links_are_only_unlinked() {
        let (t, kernel, cache) = setup();
        let old = cache.join("img");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(".fingerprint"), b"fp-old\n").unwrap();
        std::fs::write(old.join("rootfs.ext4"), b"old").unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, cache.join(".img.staging-1")).unwrap();
        std::fs::create_dir_all(cache.join(".img.staging-2-ab/root")).unwrap();
        // Not a name a build generates: left alone.
        std::fs::create_dir_all(cache.join(".img.staging-notours")).unwrap();
        let r = run_plan(
            &plan(&cache, &kernel),
            &Progress::none(),
            || Ok("test"),
            populate,
        )
        .unwrap();
        assert!(!r.cached);
        assert_eq!(names(&cache), [".img.staging-notours", "img"]);
        assert_eq!(names(&old), [".fingerprint", "rootfs.ext4", "vmlinux.bin"]);
        assert_eq!(
            std::fs::read_to_string(old.join(".fingerprint")).unwrap(),
            "fp-new\n"
        );
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"x");
    }

    #[test]
    fn a_cancelled_build_leaves_the_cache_as_it_was() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let (_t, kernel, cache) = setup();
        let old = cache.join("img");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(".fingerprint"), b"fp-old\n").unwrap();
        std::fs::write(old.join("rootfs.ext4"), b"old").unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let progress = Progress::none().with_cancel(flag.clone());
        // Cancelled while the engine makes the tree (the dashboard's x on a start that
        // builds its image): nothing after it runs, the staging goes, the old image stays.
        let e = run_plan(
            &plan(&cache, &kernel),
            &progress,
            || Ok("test"),
            |e, tree, st, job| {
                populate(e, tree, st, job)?;
                assert!(job.check().is_ok());
                flag.store(true, Ordering::Relaxed);
                assert!(job.stopped());
                Ok(())
            },
        )
        .unwrap_err();
        assert!(crate::core::job::is_cancel(&e), "{}", e.message);
        assert_eq!(e.message, "Image build of 'img' cancelled; rolled back");
        assert_eq!(e.exit_code(), 130);
        assert_eq!(names(&cache), ["img"]);
        assert_eq!(names(&old), [".fingerprint", "rootfs.ext4"]);
        assert_eq!(std::fs::read(old.join("rootfs.ext4")).unwrap(), b"old");
        // Cancelled while another build holds the cache's lock: it stops waiting.
        let holder = proc::lock_dir(std::fs::File::open(&cache).unwrap()).unwrap();
        let e = run_plan(
            &plan(&cache, &kernel),
            &progress,
            || Ok("test"),
            |_, _, _, _| panic!("must not build"),
        )
        .unwrap_err();
        assert!(crate::core::job::is_cancel(&e), "{}", e.message);
        drop(holder);
        assert_eq!(names(&cache), ["img"]);
    }
}
