//! The store of built images in the images root: an image's name rule, where a built
//! image's files are, and the staging-and-swap that puts a new one in place only over an
//! image smolvm built (`image build` and `image load` both write through it).

use std::path::{Path, PathBuf};

use crate::core::error::{io_err, Error, Result};
use crate::core::prune::cache_version;
use crate::sys::{build as proc, open};

/// An image name must be a plain directory name and must not read as a version (prune
/// would treat `<cache>/0.0.12/` as a stale cache of another release).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(Error::usage(format!(
            "invalid image name {name:?}: use letters, digits, '.', '_' and '-' (not starting with '.')"
        )));
    }
    if cache_version(name).is_some() {
        return Err(Error::usage(format!(
            "image name {name:?} looks like a version; it would read as a stale image cache and be pruned"
        ))
        .with_recovery("Pick a name such as my-debian or team-image."));
    }
    Ok(())
}

/// SmolVM's `--init` default.
pub const DEFAULT_INIT: &str = "/init";
/// Where a built image records an `--init` other than [`DEFAULT_INIT`].
pub const INIT_FILE: &str = ".init";

/// `--init PATH`: an absolute path of printable characters without spaces (it goes on the
/// kernel command line as `init=PATH`), at most 255 bytes, no `..`.
pub fn validate_init(init: &str) -> Result<()> {
    let ok = init.starts_with('/')
        && init.len() <= 255
        && init.bytes().all(|b| b.is_ascii_graphic())
        && !init.split('/').any(|c| c == "..");
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            crate::core::error::ErrorCode::InvalidInput,
            format!("--init {init:?} must be an absolute path in the image, without spaces"),
        )
        .with_recovery("Pass the program the image starts with, e.g. --init /sbin/init."))
    }
}

/// The `(kernel, rootfs)` of an image built into `cache_dir` under `name`.
pub fn built_image(cache_dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    validate_name(name)?;
    let dir = cache_dir.join(name);
    let (k, r) = (dir.join("vmlinux.bin"), dir.join("rootfs.ext4"));
    if dir.join(".fingerprint").is_file() && k.is_file() && r.is_file() {
        Ok((k, r))
    } else {
        Err(Error::runtime(format!(
            "no built image named {name} in {}",
            cache_dir.display()
        ))
        .with_recovery(
            "Build it first: smolvm image build --base debian --ssh-key ~/.ssh/id_ed25519.pub --name NAME",
        ))
    }
}

/// The names [`built_image`] accepts under `cache_dir` (the images root), sorted.
pub fn built_names(cache_dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(cache_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| built_image(cache_dir, n).is_ok())
        .collect();
    names.sort();
    names
}

/// `.<name>.staging-` followed by what [`open::create_unique_dir`] (`<pid>-<hex>`) or an
/// older smolvm (`<pid>`) appends: a staging directory some build of `name` made.
pub(crate) fn is_staging_name(entry: &str, prefix: &str) -> bool {
    entry.strip_prefix(prefix).is_some_and(|rest| {
        let (pid, rand) = rest.split_once('-').unwrap_or((rest, ""));
        !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && rand.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The image whose staging directory `entry` is by its name (`.<name>.staging-…`, as
/// [`Staging`] names them), or `None`.
pub(crate) fn staged_image(entry: &str) -> Option<&str> {
    let (name, _) = entry.strip_prefix('.')?.rsplit_once(".staging-")?;
    let named = !name.is_empty() && is_staging_name(entry, &format!(".{name}.staging-"));
    named.then_some(name)
}

/// Remove the staging directories a killed build or load of `name` left in `cache_dir`
/// (the caller holds the cache dir's lock, so none is in use): only names they generate,
/// removed without following a symbolic link or crossing a mount. Returns the prefix a new
/// staging directory of `name` takes.
pub(crate) fn sweep_staging(cache_dir: &Path, name: &str) -> String {
    let prefix = format!(".{name}.staging-");
    if let Ok(rd) = std::fs::read_dir(cache_dir) {
        for e in rd.flatten() {
            if is_staging_name(&e.file_name().to_string_lossy(), &prefix) {
                let _ = crate::sys::fs::remove_entry(cache_dir, &e.file_name());
            }
        }
    }
    prefix
}

/// The staging directory of one build or load of the image `name`: made (after the stale
/// ones of `name` are swept) under a name generated here inside `cache_dir`, whose lock the
/// caller holds; removed on drop (never following a symbolic link or crossing a mount)
/// unless it was swapped into place.
pub(crate) struct Staging {
    cache_dir: PathBuf,
    path: PathBuf,
    name: Option<std::ffi::OsString>,
}

impl Staging {
    pub(crate) fn create(cache_dir: &Path, name: &str) -> Result<Staging> {
        let prefix = sweep_staging(cache_dir, name);
        let path = open::create_unique_dir(cache_dir, &prefix, 0o755)
            .map_err(|e| io_err("cannot create a staging directory in", cache_dir, e))?;
        Ok(Staging {
            cache_dir: cache_dir.to_path_buf(),
            name: path.file_name().map(std::ffi::OsStr::to_os_string),
            path,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Put it at `dir` ([`swap_in`], only over what `owned` accepts); the old image, now at
    /// the staging name, goes with the guard.
    pub(crate) fn swap_into(
        mut self,
        dir: &Path,
        owned: impl Fn(&Path) -> Result<()>,
    ) -> Result<()> {
        if !swap_in(&self.path, dir, owned)? {
            self.name = None;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(n) = self.name.take() {
            let _ = crate::sys::fs::remove_entry(&self.cache_dir, &n);
        }
    }
}

/// Whether `dir` is nothing or an image smolvm built (a real directory carrying a
/// `.fingerprint` regular file); anything else is an error naming it.
pub(crate) fn owned_image_dir(dir: &Path) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::runtime(format!(
            "{} exists and is not an image smolvm built ({why}); refusing to replace it",
            dir.display()
        ))
        .with_recovery("Move it away, or build under another name."))
    };
    match open::kind(dir) {
        Ok(None) => Ok(()),
        Ok(Some(open::Kind::Dir)) => match open::kind(&dir.join(".fingerprint")) {
            Ok(Some(open::Kind::File)) => Ok(()),
            Ok(None) => refuse("it has no .fingerprint file".into()),
            Ok(Some(k)) => refuse(format!("its .fingerprint is {}", k.describe())),
            Err(e) => Err(io_err("cannot read", dir, e)),
        },
        Ok(Some(k)) => refuse(format!("it is {}", k.describe())),
        Err(e) => Err(io_err("cannot read", dir, e)),
    }
}

/// Put the directory `staging` at `dir`, only over what `owned` accepts (checked right
/// before): exchange with it (`renameat2(RENAME_EXCHANGE)`; the staging name then holds
/// the old one, checked again — if something was swapped in meanwhile, swap back and
/// stop), else a rename that fails if anything appeared meanwhile. `Ok(true)` when the old
/// directory is now at `staging` (the caller removes it), `Ok(false)` when `staging` is gone.
pub(crate) fn swap_in(
    staging: &Path,
    dir: &Path,
    owned: impl Fn(&Path) -> Result<()>,
) -> Result<bool> {
    owned(dir)?;
    if open::kind(dir).is_ok_and(|k| k.is_some()) {
        let exchange = |a: &Path, b: &Path| {
            proc::exchange(a, b)
                .map_err(|e| Error::runtime(format!("cannot swap in {}: {e}", dir.display())))
        };
        exchange(staging, dir)?;
        if let Err(e) = owned(staging) {
            exchange(staging, dir)?;
            return Err(e);
        }
        Ok(true)
    } else {
        open::rename_noreplace(staging, dir).map_err(|e| io_err("cannot move into", dir, e))?;
        Ok(false)
    }
}
