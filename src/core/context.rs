//! The context a face works in: which host (a [`Target`]), its environment, its locations
//! resolved once, its facts probed once, and the opener of its state store. The CLI makes
//! one per command, the dashboard one per session and hands it to every job; nothing in a
//! face resolves paths or opens the store itself. A second host later (a remote target) is
//! one more [`Target`] and its implementation here.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::error::{invalid_id, not_found, Error, Result};
use super::host::Host;
use super::lock::{lock_timeout, VmLock};
use super::presets::Registry;
use super::ssh::ensure_key;
use super::teardown::TeardownOptions;
use super::vm::VmId;
use crate::sys::env::Env;
use crate::sys::paths::{Paths, STATE_DB_FILE};
use crate::sys::state::{Corruption, OpenMode, StateStore, VmRecord, DEFAULT_BUSY_TIMEOUT};

/// Which host the context works on. Only this machine exists today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    Local,
}

struct Inner {
    target: Target,
    env: Env,
    paths: Paths,
    host: OnceLock<Host>,
    presets: OnceLock<Arc<Registry>>,
}

/// One opened context: cheap to clone (every clone shares it).
#[derive(Clone)]
pub struct Context(Arc<Inner>);

impl Context {
    /// The context of `target`, resolved from `env`.
    pub fn open(target: Target, env: &Env) -> Context {
        match target {
            Target::Local => Context(Arc::new(Inner {
                target,
                env: env.clone(),
                paths: Paths::resolve(env, None),
                host: OnceLock::new(),
                presets: OnceLock::new(),
            })),
        }
    }

    /// This machine's context.
    pub fn local(env: &Env) -> Context {
        Context::open(Target::Local, env)
    }

    pub fn target(&self) -> Target {
        self.0.target
    }

    pub fn env(&self) -> &Env {
        &self.0.env
    }

    /// Where everything is, resolved when the context was opened.
    pub fn paths(&self) -> &Paths {
        &self.0.paths
    }

    /// Its paths with the images in `image_dir` when one is given (`--image-dir`,
    /// `--cache-dir`), as resolved against this context's environment.
    pub fn paths_with_image_dir(&self, image_dir: Option<&std::path::Path>) -> Paths {
        match (self.0.target, image_dir) {
            (_, None) => self.0.paths.clone(),
            (Target::Local, Some(d)) => Paths::resolve(&self.0.env, Some(d)),
        }
    }

    /// The host's facts (KVM, VMMs, architecture), probed the first time they are asked for.
    pub fn host(&self) -> &Host {
        self.0.host.get_or_init(|| Host::probe(&self.0.env))
    }

    /// The presets in force (the built-in ones and the user's file), read the first time
    /// they are asked for: every job of this context, and both faces, see the same ones.
    pub fn presets(&self) -> &Arc<Registry> {
        self.0
            .presets
            .get_or_init(|| Arc::new(Registry::load(&self.0.env)))
    }

    /// [`Context::job`] for a job that only reads (`sandbox info`, `logs`, `snapshot
    /// list`, a dry run): see [`Ctx::open_reading`].
    pub fn reading(&self) -> Result<Ctx> {
        self.open_ctx(Ctx::open_reading)
    }

    /// Open the state store for one job ([`Ctx`]), with this context's paths, host facts
    /// and presets.
    pub fn job(&self) -> Result<Ctx> {
        self.open_ctx(Ctx::open_with)
    }

    fn open_ctx(&self, open: fn(&Env, Paths, Host, Arc<Registry>) -> Result<Ctx>) -> Result<Ctx> {
        open(
            &self.0.env,
            self.0.paths.clone(),
            self.host().clone(),
            self.presets().clone(),
        )
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("target", &self.0.target)
            .field("paths", &self.0.paths)
            .finish()
    }
}

/// The state database reads use: the first that exists of the data directory's
/// candidates (`SMOLVM_DATA_DIR`'s alone when set). `sandbox list`, completion and the
/// dashboard's list read it; nothing is created to find it.
pub fn read_db(paths: &Paths) -> Option<PathBuf> {
    paths
        .data_dir_candidates()
        .into_iter()
        .map(|d| d.join(STATE_DB_FILE))
        .find(|p| p.exists())
}

/// The one fix every face gives for a corrupt state database (`sandbox list`, `doctor`,
/// the dashboard, every writer): nothing but cleanup changes it, and cleanup is what
/// moves it aside (adopting the running sandboxes into the new one).
pub const CORRUPT_DB_FIX: &str = "Run 'smolvm cleanup --dry-run' to see what cleanup finds, then 'smolvm cleanup --force' to move the database aside and rebuild it from the running sandboxes.";

/// The first existing state database, opened without changing anything on disk (`None`
/// when there is none); a corrupt one is an error saying how to repair it.
pub(crate) fn open_for_reading(
    paths: &Paths,
    busy_timeout: Option<Duration>,
) -> Result<Option<StateStore>> {
    check_data_dir(paths)?;
    let Some(db) = read_db(paths) else {
        return Ok(None);
    };
    let (store, corrupt) = StateStore::open(
        &db,
        OpenMode::DryRun,
        busy_timeout.unwrap_or(DEFAULT_BUSY_TIMEOUT),
    )
    .map_err(|e| Error::runtime(e.to_string()))?;
    match corrupt {
        Some(c) => Err(corrupt_error(&c)),
        None => Ok(Some(store)),
    }
}

/// A corrupt state database found by a read or a write that is not cleanup's: an error
/// saying how to repair it; the file stays where it is.
fn corrupt_error(c: &Corruption) -> Error {
    Error::runtime(format!(
        "state database {} is corrupt ({})",
        c.path.display(),
        c.reason
    ))
    .with_recovery(CORRUPT_DB_FIX)
}

/// `SMOLVM_DATA_DIR` names no directory (a file, a link to one): the one error readers,
/// writers, cleanup and doctor give for it (a read used to find "none yet" there, and
/// list nothing).
pub(crate) fn check_data_dir(paths: &Paths) -> Result<()> {
    match paths.data_dir_override_not_a_dir() {
        Some(p) => Err(Error::runtime(format!(
            "SMOLVM_DATA_DIR is {}, which is not a directory.",
            p.display()
        ))
        .with_recovery(
            "Point SMOLVM_DATA_DIR at a directory (it is made if missing), or unset it.",
        )),
        None => Ok(()),
    }
}

/// Which state database a list read, for every face to name: the one [`read_db`] found
/// (or, when none exists yet, the one the first change would create) and where changes
/// go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateSource {
    /// The database read, or the one that would be read once it exists.
    pub db: PathBuf,
    /// `db` exists (it was read); `false`: nothing was read, the list is empty.
    pub exists: bool,
    /// The database a change would write (`None`: no data directory is writable).
    pub writes_to: Option<PathBuf>,
}

impl StateSource {
    /// What a read of `paths` looks at now (nothing is created to find it).
    pub fn of(paths: &Paths) -> StateSource {
        let writes_to = paths.data_dir_planned().map(|d| d.join(STATE_DB_FILE));
        match read_db(paths) {
            Some(db) => StateSource {
                db,
                exists: true,
                writes_to,
            },
            None => StateSource {
                db: writes_to
                    .clone()
                    .or_else(|| paths.candidate_state_dbs().into_iter().next())
                    .unwrap_or_default(),
                exists: false,
                writes_to,
            },
        }
    }

    /// The line every list ends with: `State: ~/.local/state/smolvm/smolvm.db`, with
    /// `(none yet)` when nothing exists to read and where changes go when that is
    /// another database; the home shown as `~`.
    pub fn line(&self, home: &std::path::Path) -> String {
        let shown = |p: &std::path::Path| crate::sys::paths::display_path(p, home);
        let mut s = format!("State: {}", shown(&self.db));
        if !self.exists {
            s.push_str(" (none yet)");
        } else if let Some(w) = self.writes_to.as_deref().filter(|w| *w != self.db) {
            s.push_str(&format!(" (changes go to {})", shown(w)));
        }
        s
    }
}

/// Reads see one database and a write would go to another: a user who is not root on a
/// host where root's `/var/lib/smolvm` holds sandboxes reads those, but their first
/// change would start a state of their own (and from then on they would read only that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldSplit {
    /// The database reads use ([`read_db`]).
    pub read: PathBuf,
    /// The database a change would write ([`Paths::data_dir_planned`]'s).
    pub write: PathBuf,
}

impl WorldSplit {
    /// `None` when reads and writes are one database, or nothing exists yet to read.
    pub fn of(paths: &Paths) -> Option<WorldSplit> {
        let read = read_db(paths)?;
        let write = paths.data_dir_planned()?.join(STATE_DB_FILE);
        (read != write).then_some(WorldSplit { read, write })
    }

    /// The user has chosen the write side: its directory exists (they made it, or an
    /// earlier smolvm did). Until then nothing is written there.
    pub fn chosen(&self) -> bool {
        self.write.parent().is_some_and(|d| d.is_dir())
    }

    /// A change must wait for the user's choice: what was read is another user's
    /// database (root's, read by a user), and they have not chosen their own. Root
    /// reading its own older database while writing the system one only hears of it.
    pub fn must_choose(&self, euid: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        let foreign = std::fs::metadata(&self.read).is_ok_and(|m| m.uid() != euid);
        foreign && !self.chosen()
    }

    /// What a change is refused with until [`WorldSplit::chosen`]: which database was
    /// read, which would be started, and the two ways on.
    pub fn refusal(&self) -> Error {
        let dir = self.write.parent().unwrap_or(&self.write);
        Error::new(
            super::error::ErrorCode::Refused,
            format!(
                "This would start a new state database at {}, but smolvm reads {} here (its sandboxes are not yours to change).",
                self.write.display(),
                self.read.display()
            ),
        )
        .with_recovery(format!(
            "Run it with sudo to work with the sandboxes in {}, or create {} to keep sandboxes of your own there.",
            self.read.display(),
            dir.display()
        ))
    }

    /// The line every face shows while both exist: what was read and where changes go.
    pub fn notice(&self) -> String {
        format!(
            "Reading {}; changes go to {} (sudo works with the first).",
            self.read.display(),
            self.write.display()
        )
    }
}

/// One job's opened context: the [`Context`]'s environment, paths and host facts with
/// the state store opened (every core operation takes it).
pub struct Ctx {
    pub env: Env,
    pub paths: Paths,
    /// Reads and writes at two databases (see [`WorldSplit`]); the faces say so.
    pub split: Option<WorldSplit>,
    pub data_dir: PathBuf,
    pub store: Arc<StateStore>,
    /// This host, probed once: every runtime and image decision of this start reads it.
    pub host: Host,
    /// The presets in force, read once (its context's).
    pub presets: Arc<Registry>,
}

/// What opening found: the database and where it is (both openers end here).
struct Opened {
    split: Option<WorldSplit>,
    data_dir: PathBuf,
    store: StateStore,
}

impl Opened {
    fn into_ctx(self, env: &Env, paths: Paths, host: Host, presets: Arc<Registry>) -> Ctx {
        Ctx {
            env: env.clone(),
            paths,
            split: self.split,
            data_dir: self.data_dir,
            store: Arc::new(self.store),
            host,
            presets,
        }
    }
}

impl Ctx {
    /// Resolve paths and open the state store for writing (read-only when the file is
    /// not this user's to write). A corrupt database is an error saying how to repair
    /// it, left where it is for cleanup.
    pub fn open(env: &Env) -> Result<Ctx> {
        Ctx::open_with(
            env,
            Paths::resolve(env, None),
            Host::probe(env),
            Arc::new(Registry::load(env)),
        )
    }

    /// [`Ctx::open`] with the paths, host facts and presets already at hand (a
    /// [`Context`] resolved them once).
    pub fn open_with(env: &Env, paths: Paths, host: Host, presets: Arc<Registry>) -> Result<Ctx> {
        let split = WorldSplit::of(&paths);
        if let Some(s) = split.as_ref().filter(|s| s.must_choose(env.euid())) {
            return Err(s.refusal());
        }
        check_data_dir(&paths)?;
        let data_dir = paths
            .data_dir()
            .map_err(|e| Error::runtime(e.to_string()))?;
        // A corrupt database is left for cleanup, which alone moves it aside and adopts
        // the running sandboxes into the new one (started anew here, they would be
        // orphans to the next cleanup).
        let (store, corruption) = StateStore::open(
            &data_dir.join(STATE_DB_FILE),
            OpenMode::KeepCorrupt,
            DEFAULT_BUSY_TIMEOUT,
        )
        .map_err(|e| Error::runtime(e.to_string()))?;
        if let Some(c) = &corruption {
            return Err(corrupt_error(c));
        }
        tracing::debug!(data_dir = %data_dir.display(), "state database opened");
        let opened = Opened {
            split,
            data_dir,
            store,
        };
        Ok(opened.into_ctx(env, paths, host, presets))
    }

    /// [`Ctx::open_with`] for a job that only reads, changing nothing on disk as `sandbox
    /// list` reads: the first existing state database ([`read_db`]) read as it is — no
    /// data directory or database is created, none is migrated, a corrupt one is not
    /// moved aside (it is an error saying how to repair it) — and none yet reads as
    /// empty. `--readonly` and every dry run read this way.
    pub fn open_reading(
        env: &Env,
        paths: Paths,
        host: Host,
        presets: Arc<Registry>,
    ) -> Result<Ctx> {
        let split = WorldSplit::of(&paths);
        let (data_dir, store) = match open_for_reading(&paths, None)? {
            Some(store) => {
                let dir = store.path().parent().map(std::path::Path::to_path_buf);
                (dir.unwrap_or_default(), store)
            }
            None => {
                let dir = paths
                    .data_dir_planned()
                    .or_else(|| paths.data_dir_candidates().into_iter().next())
                    .unwrap_or_default();
                let (store, _) = StateStore::open(
                    &dir.join(STATE_DB_FILE),
                    OpenMode::DryRun,
                    DEFAULT_BUSY_TIMEOUT,
                )
                .map_err(|e| Error::runtime(e.to_string()))?;
                (dir, store)
            }
        };
        let opened = Opened {
            split,
            data_dir,
            store,
        };
        Ok(opened.into_ctx(env, paths, host, presets))
    }

    /// Sandbox `id`'s row, or SmolVM's "not found" (the one lookup every verb makes).
    pub fn vm(&self, id: &VmId) -> Result<VmRecord> {
        self.store
            .get_vm(id)
            .map_err(|e| Error::runtime(e.to_string()))?
            .ok_or_else(|| not_found(id))
    }

    /// The VM's own disk ([`Paths::vm_disk`]); an invalid id is an error, never a path.
    pub fn disk_path(&self, id: &str) -> Result<PathBuf> {
        self.paths
            .vm_disk(&self.data_dir, id)
            .ok_or_else(|| invalid_id(id))
    }

    /// The VM's console log ([`Paths::vm_log`]); an invalid id is an error, never a path.
    pub fn log_path(&self, id: &str) -> Result<PathBuf> {
        self.paths
            .vm_log(&self.data_dir, id)
            .ok_or_else(|| invalid_id(id))
    }

    pub fn teardown_options(&self, stop_timeout: Duration) -> TeardownOptions {
        TeardownOptions {
            data_dir: self.data_dir.clone(),
            socket_dir: self.paths.socket_dir.clone(),
            stop_timeout,
            parallel: 1,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            candidate_dbs: self.paths.candidate_state_dbs(),
        }
    }

    /// The SSH key pair under `~/.smolvm/keys/` (created once, atomically).
    pub fn ssh_key(&self) -> Result<PathBuf> {
        ensure_key(&self.paths.keys_dir)
    }

    /// Sandbox `id`'s lock ([`VmLock`]) for the operation `what`, waiting at most
    /// `SMOLVM_LOCK_TIMEOUT` (validated here: a bad value is a usage error before anything
    /// is read or changed).
    pub async fn lock(&self, id: &VmId, what: &str) -> Result<VmLock> {
        VmLock::acquire(&self.data_dir, id, what, lock_timeout(&self.env)?).await
    }

    /// [`Ctx::lock`] of a sandbox that exists: one the database does not know is "not
    /// found" before any lock file is made for it (a mistyped id leaves nothing behind).
    /// The caller reads the row again under the lock.
    pub async fn lock_existing(&self, id: &VmId, what: &str) -> Result<VmLock> {
        let wait = lock_timeout(&self.env)?;
        self.vm(id)?;
        VmLock::acquire(&self.data_dir, id, what, wait).await
    }

    /// [`Ctx::lock`] plus SmolVM's snapshot locks of the sandbox and of `snapshot_id`.
    pub async fn lock_for_snapshot(
        &self,
        id: &VmId,
        snapshot_id: &str,
        what: &str,
    ) -> Result<VmLock> {
        VmLock::acquire_for_snapshot(
            &self.data_dir,
            id,
            Some(snapshot_id),
            what,
            lock_timeout(&self.env)?,
        )
        .await
    }

    /// [`Ctx::lock`] plus SmolVM's snapshot lock of the sandbox (a clone's: its snapshot's
    /// own lock is taken once for the whole run, [`Ctx::lock_snapshot`]).
    pub async fn lock_for_clone(&self, id: &VmId, what: &str) -> Result<VmLock> {
        VmLock::acquire_for_snapshot(&self.data_dir, id, None, what, lock_timeout(&self.env)?).await
    }

    /// SmolVM's lock of snapshot `snapshot_id` alone, after the sandboxes' locks.
    pub async fn lock_snapshot(
        &self,
        snapshot_id: &str,
        what: &str,
    ) -> Result<crate::core::lock::SnapshotLock> {
        VmLock::acquire_snapshot(&self.data_dir, snapshot_id, what, lock_timeout(&self.env)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_line_names_the_database_read_and_where_changes_go() {
        let home = std::path::Path::new("/home/u");
        let own = PathBuf::from("/home/u/.local/state/smolvm/smolvm.db");
        let mut s = StateSource {
            db: own.clone(),
            exists: false,
            writes_to: Some(own.clone()),
        };
        assert_eq!(
            s.line(home),
            "State: ~/.local/state/smolvm/smolvm.db (none yet)"
        );
        s.exists = true;
        assert_eq!(s.line(home), "State: ~/.local/state/smolvm/smolvm.db");
        s.db = PathBuf::from("/var/lib/smolvm/smolvm.db");
        assert_eq!(
            s.line(home),
            "State: /var/lib/smolvm/smolvm.db (changes go to ~/.local/state/smolvm/smolvm.db)"
        );
    }

    /// An environment with everything under `home`: the system data dir kept private too
    /// (a /var/lib/smolvm on this machine would make a job refuse to start a second
    /// database).
    fn private(home: &std::path::Path) -> Env {
        Env::from_vars(
            [
                ("HOME", home.as_os_str().to_owned()),
                ("SMOLVM_SYSTEM_DATA_DIR", home.join("system").into()),
            ],
            1000,
        )
    }

    #[test]
    fn a_context_resolves_once_and_its_jobs_share_it() {
        let t = tempfile::tempdir().unwrap();
        let env = private(t.path());
        let c = Context::local(&env);
        assert_eq!(c.target(), Target::Local);
        assert_eq!(c.paths().home, t.path());
        let job = c.job().unwrap();
        assert_eq!(job.paths.images_root, c.paths().images_root);
        assert_eq!(&job.host, c.host());
        let again = c.clone();
        assert!(std::ptr::eq(again.paths(), c.paths()));
    }

    /// The presets are read once per context: what the dashboard offers (its session's
    /// context) is what each of its jobs starts from, even when the user's file changes
    /// in between; a new context (the next command) reads the file again.
    #[test]
    fn a_contexts_jobs_see_the_presets_it_read() {
        let t = tempfile::tempdir().unwrap();
        let env = private(t.path());
        let file = Registry::user_file(&env);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "[mine]\nlaunch = \"bash\"\n").unwrap();
        let c = Context::local(&env);
        assert!(c.presets().find("mine").is_some());
        std::fs::remove_file(&file).unwrap();
        let job = c.job().unwrap();
        assert!(Arc::ptr_eq(&job.presets, c.presets()));
        assert!(job.presets.find("mine").is_some(), "the context's presets");
        assert!(Context::local(&env).presets().find("mine").is_none());
    }
}
