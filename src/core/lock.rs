//! One operation per sandbox at a time.
//!
//! Every operation that changes a sandbox — start, stop, delete, pause, resume, snapshot
//! create and restore, `exec --start`, cleanup's teardown of it (and anything later, such
//! as a network change) — takes the sandbox's [`VmLock`] **before it reads its row**, and
//! holds it until it is done. The lock is SmolVM's own lock file,
//! `<data dir>/locks/<id>.create.lock` (`flock`), so a co-installed SmolVM creating a VM of
//! that id waits for smolvm and the other way round; a snapshot create or restore also
//! takes SmolVM's `<id>.snapshot.lock` (and `snapshot-<snapshot id>.lock`), always after
//! the first, so no two takers ever wait for each other in a circle.
//!
//! A second operation waits for the holder at most `SMOLVM_LOCK_TIMEOUT` seconds (default
//! [`DEFAULT_LOCK_TIMEOUT`], 0 to 24 h, `0` means do not wait), then fails with exit 1 and
//! the JSON error code `busy`, naming what holds the lock (smolvm's operation and PID, or
//! the holder's command line from `/proc/locks`). A cleanup waits so for another cleanup's
//! lock (`<data dir>/cleanup.lock`) too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Error, ErrorCode, Result};
use crate::sys::env::Env;
use crate::sys::lock::{self, Held, LockError};
use crate::sys::process::is_vm_id;

/// How long a second operation waits for a sandbox's lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// `SMOLVM_LOCK_TIMEOUT` (seconds, the one duration parser: 0 to 24 h), else
/// [`DEFAULT_LOCK_TIMEOUT`]; a bad value is a usage error naming the variable.
pub fn lock_timeout(env: &Env) -> Result<Duration> {
    Ok(env.seconds("SMOLVM_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT, false)?)
}

/// The lock files of a sandbox, by SmolVM's names.
fn vm_lock_path(data_dir: &Path, id: &str) -> PathBuf {
    lock::path(data_dir, &format!("{id}.create.lock"))
}

/// A sandbox's lock, held until dropped (or until the process dies: a killed holder
/// never leaves it taken).
#[derive(Debug)]
pub struct VmLock {
    id: String,
    // Released in reverse order of taking (the fields drop in order: snapshot ones first).
    _extra: Vec<Held>,
    _vm: Held,
}

impl VmLock {
    /// Take sandbox `id`'s lock for `what` (e.g. `sandbox stop vm-a`, written into the lock
    /// file for a waiter's message), waiting at most `wait`. An id that is not a VM id
    /// names no file: it is reported as not found, like an unknown sandbox.
    pub async fn acquire(data_dir: &Path, id: &str, what: &str, wait: Duration) -> Result<VmLock> {
        Self::take(data_dir, id, None, what, wait).await
    }

    /// [`VmLock::acquire`], then SmolVM's snapshot locks of the sandbox (and of
    /// `snapshot_id` when given), all within the one wait.
    pub async fn acquire_for_snapshot(
        data_dir: &Path,
        id: &str,
        snapshot_id: Option<&str>,
        what: &str,
        wait: Duration,
    ) -> Result<VmLock> {
        Self::take(data_dir, id, Some(snapshot_id), what, wait).await
    }

    async fn take(
        data_dir: &Path,
        id: &str,
        snapshot: Option<Option<&str>>,
        what: &str,
        wait: Duration,
    ) -> Result<VmLock> {
        super::vm::VmId::parse(id)?;
        if let Some(Some(s)) = snapshot {
            if !is_vm_id(s) {
                return Err(super::error::invalid_snapshot_id(s));
            }
        }
        let mut paths = vec![vm_lock_path(data_dir, id)];
        if let Some(s) = snapshot {
            paths.push(lock::path(data_dir, &format!("{id}.snapshot.lock")));
            if let Some(s) = s {
                paths.push(lock::path(data_dir, &format!("snapshot-{s}.lock")));
            }
        }
        let (vm_id, what) = (id.to_string(), what.to_string());
        tracing::debug!(vm = %vm_id, operation = %what, "taking the sandbox lock");
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + wait;
            let mut held = Vec::new();
            for p in &paths {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                held.push(
                    lock::acquire(p, &what, left).map_err(|e| busy("Sandbox", &vm_id, wait, e))?,
                );
            }
            let vm = held.remove(0);
            Ok(VmLock {
                id: vm_id,
                _extra: held,
                _vm: vm,
            })
        })
        .await
        .map_err(|e| Error::runtime(e.to_string()))?
    }

    /// SmolVM's lock of snapshot `snapshot_id` alone (`snapshot-<id>.lock`): a clone run
    /// takes it once, after every clone's own lock ([`VmLock::acquire_for_snapshot`] with
    /// no snapshot), so its clones are made at once under one hold.
    pub async fn acquire_snapshot(
        data_dir: &Path,
        snapshot_id: &str,
        what: &str,
        wait: Duration,
    ) -> Result<SnapshotLock> {
        let (dir, id, what) = (
            data_dir.to_path_buf(),
            snapshot_id.to_string(),
            what.to_string(),
        );
        tokio::task::spawn_blocking(move || VmLock::snapshot_blocking(&dir, &id, &what, wait))
            .await
            .map_err(|e| Error::runtime(e.to_string()))?
    }

    /// [`VmLock::acquire_snapshot`] on this thread, for a caller that may block (a
    /// snapshot delete, whose file removal blocks too).
    pub fn snapshot_blocking(
        data_dir: &Path,
        snapshot_id: &str,
        what: &str,
        wait: Duration,
    ) -> Result<SnapshotLock> {
        if !is_vm_id(snapshot_id) {
            return Err(super::error::invalid_snapshot_id(snapshot_id));
        }
        let path = lock::path(data_dir, &format!("snapshot-{snapshot_id}.lock"));
        lock::acquire(&path, what, wait)
            .map(|h| SnapshotLock { _held: h })
            .map_err(|e| busy("Snapshot", snapshot_id, wait, e))
    }

    /// Whether some operation holds sandbox `id`'s lock right now (an invalid id: no).
    pub fn is_held(data_dir: &Path, id: &str) -> bool {
        is_vm_id(id) && lock::is_held(&vm_lock_path(data_dir, id))
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A snapshot's own lock ([`VmLock::acquire_snapshot`]), held until dropped.
#[derive(Debug)]
pub struct SnapshotLock {
    _held: Held,
}

/// The error of a lock that could not be taken: `busy` (exit 1) naming the holder, or a
/// runtime error for a lock file that cannot be used. `noun` is `Sandbox` or `Snapshot`.
fn busy(noun: &str, id: &str, wait: Duration, e: LockError) -> Error {
    busy_doing(&format!("{noun} '{id}'"), wait, e)
}

/// [`busy`] for what `subject` names (`Sandbox 'vm-a'`, `Cleanup`): `busy` (exit 1)
/// naming the holder, or a runtime error for a lock file that cannot be used.
pub(crate) fn busy_doing(subject: &str, wait: Duration, e: LockError) -> Error {
    match e {
        LockError::Busy { holder, .. } => {
            let who = match (&holder.operation, &holder.command, holder.pid) {
                (Some(op), _, Some(pid)) => format!("'smolvm {op}' (pid {pid})"),
                (Some(op), _, None) => format!("'smolvm {op}'"),
                (None, Some(cmd), Some(pid)) => format!("'{cmd}' (pid {pid})"),
                (None, None, Some(pid)) => format!("process {pid}"),
                _ => "another process".to_string(),
            };
            Error::new(
                ErrorCode::Busy,
                format!(
                    "{subject} is busy: {who} is working on it (waited {})",
                    seconds(wait)
                ),
            )
            .with_recovery(
                "Try again when it is done, or wait longer with SMOLVM_LOCK_TIMEOUT=<seconds>.",
            )
        }
        other => Error::runtime(other.to_string()),
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_the_variable_or_ten_seconds() {
        let env = |v: Option<&str>| Env::from_vars(v.map(|v| ("SMOLVM_LOCK_TIMEOUT", v)), 0);
        assert_eq!(lock_timeout(&env(None)).unwrap(), Duration::from_secs(10));
        assert_eq!(lock_timeout(&env(Some("0"))).unwrap(), Duration::ZERO);
        assert_eq!(
            lock_timeout(&env(Some("2.5"))).unwrap(),
            Duration::from_millis(2500)
        );
        let e = lock_timeout(&env(Some("soon"))).unwrap_err();
        assert_eq!((e.code, e.exit_code()), (ErrorCode::Usage, 2));
        assert!(
            e.message.starts_with("SMOLVM_LOCK_TIMEOUT "),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn a_second_taker_is_busy_and_told_who_holds_it() {
        let t = tempfile::tempdir().unwrap();
        let held = VmLock::acquire(t.path(), "vm-a", "sandbox start vm-a", Duration::ZERO)
            .await
            .unwrap();
        assert!(VmLock::is_held(t.path(), "vm-a"));
        assert!(!VmLock::is_held(t.path(), "vm-b"));
        let e = VmLock::acquire_for_snapshot(
            t.path(),
            "vm-a",
            Some("s1"),
            "sandbox snapshot create vm-a",
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
        assert_eq!((e.code, e.exit_code()), (ErrorCode::Busy, 1));
        let me = std::process::id();
        assert_eq!(
            e.message,
            format!("Sandbox 'vm-a' is busy: 'smolvm sandbox start vm-a' (pid {me}) is working on it (waited 0.1 s)")
        );
        drop(held);
        let l = VmLock::acquire_for_snapshot(t.path(), "vm-a", Some("s1"), "x", Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(l.id(), "vm-a");
        for f in ["vm-a.create.lock", "vm-a.snapshot.lock", "snapshot-s1.lock"] {
            assert!(t.path().join("locks").join(f).is_file(), "{f}");
        }
        // An id that is not an id names no file.
        let e = VmLock::acquire(t.path(), "../x", "x", Duration::ZERO)
            .await
            .unwrap_err();
        assert!(e.message.contains("not found"), "{}", e.message);
    }

    /// A clone run's locks: each clone's own (with its snapshot lock) side by side, the
    /// snapshot's once; a second run of that snapshot is busy and told so, by the
    /// snapshot's name.
    #[tokio::test]
    async fn a_clone_run_holds_its_clones_locks_and_the_snapshots_once() {
        let t = tempfile::tempdir().unwrap();
        let what = "sandbox clone s1";
        let c1 = VmLock::acquire_for_snapshot(t.path(), "c-1", None, what, Duration::ZERO)
            .await
            .unwrap();
        let c2 = VmLock::acquire_for_snapshot(t.path(), "c-2", None, what, Duration::ZERO)
            .await
            .unwrap();
        let s = VmLock::acquire_snapshot(t.path(), "s1", what, Duration::ZERO)
            .await
            .unwrap();
        for f in ["c-1.snapshot.lock", "c-2.snapshot.lock", "snapshot-s1.lock"] {
            assert!(t.path().join("locks").join(f).is_file(), "{f}");
        }
        let e = VmLock::acquire_snapshot(t.path(), "s1", what, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!((e.code, e.exit_code()), (ErrorCode::Busy, 1));
        let me = std::process::id();
        assert_eq!(
            e.message,
            format!("Snapshot 's1' is busy: 'smolvm sandbox clone s1' (pid {me}) is working on it (waited 0.1 s)")
        );
        // A restore of that snapshot into another sandbox waits for the run too.
        let e = VmLock::acquire_for_snapshot(t.path(), "vm-r", Some("s1"), "x", Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Busy);
        drop((c1, c2, s));
        VmLock::acquire_snapshot(t.path(), "s1", what, Duration::ZERO)
            .await
            .unwrap();
        let e = VmLock::acquire_snapshot(t.path(), "../s", what, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(!t.path().join("locks/snapshot-../s.lock").exists());
        assert_ne!(e.code, ErrorCode::Busy);
    }
}
