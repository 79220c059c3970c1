//! The state database, `<data dir>/smolvm.db`, in SmolVM's exact schema so that a database
//! written by Python SmolVM opens and lists here, and ours opens there.
//!
//! Improvements over SmolVM: WAL journal, a busy timeout, one short `BEGIN IMMEDIATE`
//! transaction per change, and corruption handling: a file SQLite reports as damaged (not
//! a database, truncated, failing `PRAGMA quick_check`) is moved aside (never deleted)
//! with its `-journal`/`-wal`/`-shm` files to `smolvm.db.corrupt-<YYYYmmddTHHMMSSZ>` and a
//! new one created. A lock, a file this user cannot write or open, or an I/O error is an
//! error, never corruption. A hot rollback journal left by a SmolVM killed mid-write is
//! rolled back (read-write opens), or rolled back in a private copy (dry runs and files
//! this user cannot write): see [`copy`].
//!
//! A dry run changes nothing on disk: it reads the file in place read-only only while a
//! WAL writer has it open, else a private copy; an absent or corrupt file reads as an
//! empty in-memory database.
//!
//! Rows are decoded one at a time and validated (see [`types`]): a row whose values are
//! invalid is never returned as a record but as a [`SkippedRow`] with the reason.

mod config;
mod copy;
mod known;
mod network;
mod pools;
mod snapshots;
mod types;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, ErrorCode as SqliteCode, OpenFlags, OptionalExtension};

pub use config::{
    VmConfig, VmExtras, DEFAULT_BOOT_ARGS, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS, SMOLVM_BOOT_ARGS,
};
pub use known::Known;
pub use pools::{pool_ip, NetLease, IP_POOL, SSH_PORT_POOL};
pub use snapshots::SnapshotRecord;
pub use types::{
    describe, is_ifname, is_smolvm_device, is_smolvm_tap, Leases, Network, SkippedRow,
    TapAllocation, VmRecord, VmRows, VmStatus,
};

use crate::sys::time::{compact, iso_now};

/// SmolVM's SQLite busy timeout.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const SCHEMA: &str = include_str!("schema.sql");

/// Additive migrations SmolVM applies after its DDL (`ALTER TABLE … ADD COLUMN` when the
/// column is missing), including 0.0.36's snapshot columns.
const MIGRATIONS: &[(&str, &str, &str)] = &[
    ("vms", "display", "TEXT"),
    ("snapshots", "backend", "TEXT"),
    ("snapshots", "artifacts", "TEXT"),
    ("snapshots", "snapshot_type", "TEXT"),
    ("snapshots", "artifact_kind", "TEXT"),
    ("snapshots", "virtual_size_bytes", "INTEGER"),
    ("snapshots", "changed_bytes", "INTEGER"),
    ("snapshots", "bitmap_granularity_bytes", "INTEGER"),
    ("snapshots", "bitmap_name", "TEXT"),
    ("browser_sessions", "vnc_url", "TEXT"),
    ("browser_sessions", "vnc_port", "INTEGER"),
];

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path} is locked by another process (waited {waited:.1} s); try again when it finishes")]
    Locked { path: PathBuf, waited: f64 },
    #[error("state database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("VM {0} already exists")]
    AlreadyExists(String),
    /// An address pool has no free entry (SmolVM's messages).
    #[error("{0}")]
    Pool(String),
    /// The row asked for has invalid values (see [`SkippedRow`]): it is not acted on.
    #[error("state database {path}: the {} row of {} is invalid: {}; fix or delete that row", row.table, row.id, row.reason)]
    InvalidRow { path: PathBuf, row: SkippedRow },
    /// A read-only reader found the file corrupt.
    #[error("{0}")]
    Corrupt(Corruption),
}

/// How to open the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create or migrate as needed; corrupt files are moved aside (cleanup's: it adopts
    /// the running sandboxes into the new database).
    ReadWrite,
    /// [`OpenMode::ReadWrite`], but a corrupt file is left where it is: reported
    /// (`moved_to: None`) with an empty read-only store, for the caller to refuse to go
    /// on. Every writer but cleanup opens so: a database started anew without cleanup's
    /// adoption would make the running sandboxes orphans to the next cleanup.
    KeepCorrupt,
    /// Change nothing on disk: read the file (or a private copy of it) read-only; an
    /// absent or corrupt file reads as an empty store (corruption is reported, the file
    /// left where it is).
    DryRun,
}

/// A corrupt database found while opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub path: PathBuf,
    pub reason: String,
    /// Where the file was moved (`None` in a dry run, or when it is not writable).
    pub moved_to: Option<PathBuf>,
}

/// The warning to show: `state database <path> was corrupt (<reason>); moved it to <to>
/// and started a new one` or, when nothing was moved, `… is corrupt (<reason>); read as
/// empty, nothing was changed`.
impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.moved_to {
            Some(to) => write!(
                f,
                "state database {} was corrupt ({}); moved it to {} and started a new one",
                self.path.display(),
                self.reason,
                to.display()
            ),
            None => write!(
                f,
                "state database {} is corrupt ({}); read as empty, nothing was changed",
                self.path.display(),
                self.reason
            ),
        }
    }
}

pub struct StateStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    read_only: bool,
    busy_timeout: Duration,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl StateStore {
    /// Open (or create) the store at `path`. Returns the store and, if the file on disk was
    /// corrupt, what was done about it: callers must show that report to the user.
    ///
    /// Only SQLite itself saying the file is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`, a
    /// failed `quick_check`) counts as corruption; a lock, a read-only or unopenable file
    /// and I/O errors are errors, and nothing is moved.
    pub fn open(
        path: &Path,
        mode: OpenMode,
        busy_timeout: Duration,
    ) -> Result<(StateStore, Option<Corruption>), StateError> {
        // SQLite answers "busy" at once, without its busy handler, in some races: while
        // another process is creating the file or turning it to WAL, a check or the
        // journal-mode switch of this one is refused immediately. Such an open is tried
        // again until the busy timeout has passed, as a wait for a writer would have.
        let deadline = std::time::Instant::now() + busy_timeout;
        loop {
            match Self::open_once(path, mode, busy_timeout) {
                Err(StateError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => return r,
            }
        }
    }

    fn open_once(
        path: &Path,
        mode: OpenMode,
        busy_timeout: Duration,
    ) -> Result<(StateStore, Option<Corruption>), StateError> {
        let exists = match std::fs::symlink_metadata(path) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(StateError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        match mode {
            OpenMode::DryRun if !exists => Ok((Self::empty(path, busy_timeout)?, None)),
            OpenMode::DryRun => Self::open_read_only(path, busy_timeout),
            OpenMode::ReadWrite | OpenMode::KeepCorrupt if !exists => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
                        path: path.to_path_buf(),
                        source,
                    })?;
                }
                Ok((Self::create(path, busy_timeout)?, None))
            }
            OpenMode::ReadWrite | OpenMode::KeepCorrupt => {
                // Check first without changing anything (read-write SQLite would already
                // have rolled back, or deleted, a damaged file's journal), so that a
                // damaged file is moved aside exactly as it was found.
                let (read_only, corrupt) = Self::open_read_only(path, busy_timeout)?;
                let reason = match corrupt {
                    Some(c) => Some(c.reason),
                    None => match open_in_place(path, busy_timeout)? {
                        InPlace::Healthy(conn) => {
                            return Ok((Self::writable(path, conn, busy_timeout)?, None));
                        }
                        // Not ours to write (another user's file, a read-only mount).
                        InPlace::NotWritable => return Ok((read_only, None)),
                        InPlace::Corrupt(reason) => Some(reason),
                    },
                };
                drop(read_only);
                let reason = reason.unwrap_or_default();
                if mode == OpenMode::KeepCorrupt {
                    return Ok((
                        Self::empty(path, busy_timeout)?,
                        Some(Corruption {
                            path: path.to_path_buf(),
                            reason,
                            moved_to: None,
                        }),
                    ));
                }
                let moved_to = move_aside(path)?;
                let store = Self::create(path, busy_timeout)?;
                Ok((
                    store,
                    Some(Corruption {
                        path: path.to_path_buf(),
                        reason,
                        moved_to: Some(moved_to),
                    }),
                ))
            }
        }
    }

    /// A new database file at `path`, with SmolVM's schema.
    fn create(path: &Path, busy_timeout: Duration) -> Result<StateStore, StateError> {
        let conn = open_read_write(path, true, busy_timeout)?;
        Self::writable(path, conn, busy_timeout)
    }

    /// The read-write store over `conn` (already open at `path`), its schema made sure of.
    fn writable(
        path: &Path,
        conn: Connection,
        busy_timeout: Duration,
    ) -> Result<StateStore, StateError> {
        let store = StateStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            read_only: false,
            busy_timeout,
        };
        store.init()?;
        Ok(store)
    }

    /// An empty read-only store (no file, or a corrupt one in a dry run).
    fn empty(path: &Path, busy_timeout: Duration) -> Result<StateStore, StateError> {
        let sql = sql_error(path);
        let conn = Connection::open_in_memory().map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(StateStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            read_only: true,
            busy_timeout,
        })
    }

    /// Read an existing database without changing anything on disk. When another
    /// connection has it open in WAL mode (its `-wal`/`-shm` exist), SQLite reads it in
    /// place, read-only, consistently with that writer. Otherwise (a rollback journal,
    /// maybe hot; or a closed WAL database, which a read-only open would add `-wal`/`-shm`
    /// files to) a private copy is read: see [`copy`].
    fn open_read_only(
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<(StateStore, Option<Corruption>), StateError> {
        let sql = sql_error(path);
        let corrupt = |reason: String| -> Result<(StateStore, Option<Corruption>), StateError> {
            Ok((
                Self::empty(path, busy_timeout)?,
                Some(Corruption {
                    path: path.to_path_buf(),
                    reason,
                    moved_to: None,
                }),
            ))
        };
        let live_wal = !copy::has_sidecar(path, "-journal")
            && (copy::has_sidecar(path, "-wal") || copy::has_sidecar(path, "-shm"));
        if live_wal {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_NOFOLLOW,
            );
            let checked = conn.and_then(|c| {
                c.busy_timeout(busy_timeout)?;
                health(&c).map(|h| (c, h))
            });
            match checked {
                Ok((conn, None)) => {
                    return Ok((
                        StateStore {
                            path: path.to_path_buf(),
                            conn: Mutex::new(conn),
                            read_only: true,
                            busy_timeout,
                        },
                        None,
                    ))
                }
                Ok((_, Some(reason))) => return corrupt(reason),
                Err(e) if is_busy(&e) => {
                    return Err(StateError::Locked {
                        path: path.to_path_buf(),
                        waited: busy_timeout.as_secs_f64(),
                    })
                }
                // The writer went away meanwhile, or its `-shm` is not ours to use: copy.
                Err(e) if is_read_only_error(&e) => {}
                Err(e) => return Err(sql(e)),
            }
        }
        let dir = copy::PrivateDir::new().map_err(|source| StateError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let copied = copy::copy_database(path, dir.path(), busy_timeout).map_err(|e| match e {
            copy::CopyError::Busy => StateError::Locked {
                path: path.to_path_buf(),
                waited: busy_timeout.as_secs_f64(),
            },
            copy::CopyError::Io(path, source) => StateError::Io { path, source },
        })?;
        let conn = Connection::open_with_flags(
            &copied,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )
        .map_err(sql)?;
        match health(&conn) {
            Ok(None) => {
                // Read into memory, then the copy goes: a reader stopped by a signal (no
                // destructor runs: Ctrl-C on `logs -f`) leaves no database behind.
                let mut memory = Connection::open_in_memory().map_err(sql)?;
                // An in-memory database keeps the page size it starts with.
                let page_size: i64 = conn
                    .query_row("PRAGMA page_size", [], |r| r.get(0))
                    .map_err(sql)?;
                memory
                    .execute_batch(&format!("PRAGMA page_size = {page_size}"))
                    .map_err(sql)?;
                // The whole file in one step (-1): nobody else has the private copy.
                let step = rusqlite::backup::Backup::new(&conn, &mut memory)
                    .and_then(|b| b.step(-1))
                    .map_err(sql)?;
                if step != rusqlite::backup::StepResult::Done {
                    return Err(StateError::Locked {
                        path: path.to_path_buf(),
                        waited: 0.0,
                    });
                }
                drop(conn);
                drop(dir);
                Ok((
                    StateStore {
                        path: path.to_path_buf(),
                        conn: Mutex::new(memory),
                        read_only: true,
                        busy_timeout,
                    },
                    None,
                ))
            }
            Ok(Some(reason)) => corrupt(reason),
            Err(e) => Err(sql(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        if is_busy(&source) {
            StateError::Locked {
                path: self.path.clone(),
                waited: self.busy_timeout.as_secs_f64(),
            }
        } else {
            StateError::Sqlite {
                path: self.path.clone(),
                source,
            }
        }
    }

    fn init(&self) -> Result<(), StateError> {
        let conn = self.lock();
        // WAL lets the dashboard read while a cleanup writes; SmolVM opens it unchanged.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let _ = mode;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(|e| self.err(e))?;
        write_txn(&conn, |tx| {
            tx.execute_batch(SCHEMA)?;
            for (table, column, kind) in MIGRATIONS {
                if !has_column(tx, table, column)? {
                    tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
                }
            }
            Ok(())
        })
        .map_err(|e| self.err(e))
    }

    /// Every valid VM row, oldest first (SmolVM's `ORDER BY created_at`), and the rows
    /// skipped because a value in them is invalid (never acted on; show them).
    pub fn list_vms(&self) -> Result<VmRows, StateError> {
        let conn = self.lock();
        let mut out = VmRows::default();
        if !table_exists(&conn, "vms").map_err(|e| self.err(e))? {
            return Ok(out);
        }
        let mut stmt = conn
            .prepare("SELECT * FROM vms ORDER BY created_at, rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], types::decode_vm)
            .map_err(|e| self.err(e))?;
        for row in rows {
            match row.map_err(|e| self.err(e))? {
                Ok(vm) => out.vms.push(vm),
                Err(skipped) => out.skipped.push(skipped),
            }
        }
        drop(stmt);
        let mut extras = config::all_vm_extras(&conn).map_err(|e| self.err(e))?;
        for vm in &mut out.vms {
            if let Some(text) = extras.remove(&vm.id) {
                vm.config.extras.merge_stored(&text);
            }
        }
        Ok(out)
    }

    /// The row with this id; [`StateError::InvalidRow`] if its values are invalid.
    pub fn get_vm(&self, id: &str) -> Result<Option<VmRecord>, StateError> {
        let conn = self.lock();
        if !table_exists(&conn, "vms").map_err(|e| self.err(e))? {
            return Ok(None);
        }
        match conn
            .query_row("SELECT * FROM vms WHERE id = ?1", [id], types::decode_vm)
            .optional()
            .map_err(|e| self.err(e))?
        {
            None => Ok(None),
            Some(Ok(mut vm)) => {
                if let Some(text) = config::vm_extras(&conn, &vm.id).map_err(|e| self.err(e))? {
                    vm.config.extras.merge_stored(&text);
                }
                Ok(Some(vm))
            }
            Some(Err(row)) => Err(StateError::InvalidRow {
                path: self.path.clone(),
                row,
            }),
        }
    }

    /// IP leases, SSH forwards and TAP reservations of every VM: the valid rows, and in
    /// `skipped` the others.
    pub fn leases(&self) -> Result<Leases, StateError> {
        let conn = self.lock();
        let mut out = Leases::default();
        let read = |table: &str,
                    sql: &str,
                    f: &mut dyn FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>|
         -> Result<(), StateError> {
            if !table_exists(&conn, table).map_err(|e| self.err(e))? {
                return Ok(());
            }
            let mut s = conn.prepare(sql).map_err(|e| self.err(e))?;
            let mut rows = s.query([]).map_err(|e| self.err(e))?;
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                f(r).map_err(|e| self.err(e))?;
            }
            Ok(())
        };
        let mut skipped = Vec::new();
        read(
            "ip_leases",
            "SELECT vm_id, ip, tap_device FROM ip_leases ORDER BY rowid",
            &mut |r| {
                match types::decode_ip_lease(r)? {
                    Ok((vm, ip, Some(tap))) => {
                        out.ips.insert(vm, (ip, tap));
                    }
                    Ok((vm, ip, None)) => {
                        out.pending_ips.insert(vm, ip);
                    }
                    Err(s) => skipped.push(s),
                }
                Ok(())
            },
        )?;
        read(
            "ssh_forwards",
            "SELECT vm_id, host_port, guest_port FROM ssh_forwards ORDER BY rowid",
            &mut |r| {
                match types::decode_ssh_forward(r)? {
                    Ok((vm, h, g)) => {
                        out.ssh.insert(vm, (h, g));
                    }
                    Err(s) => skipped.push(s),
                }
                Ok(())
            },
        )?;
        read(
            "tap_allocations",
            "SELECT vm_id, tap_device, mode, bridge_name FROM tap_allocations ORDER BY rowid",
            &mut |r| {
                match types::decode_tap_allocation(r)? {
                    Ok((vm, t)) => {
                        out.taps.insert(vm, t);
                    }
                    Err(s) => skipped.push(s),
                }
                Ok(())
            },
        )?;
        out.skipped = skipped;
        Ok(out)
    }

    /// Insert a new VM row (status as given, timestamps now unless set).
    pub fn insert_vm(&self, vm: &VmRecord) -> Result<(), StateError> {
        self.write(|tx| {
            let now = iso_now();
            let n = tx.execute(
                "INSERT OR IGNORE INTO vms (id, status, config, network, pid, socket_path, display, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    vm.id,
                    vm.status.as_str(),
                    vm.config.to_json().to_string(),
                    vm.network.as_ref().map(|n| serde_json::to_string(n).unwrap_or_default()),
                    vm.pid,
                    vm.socket_path,
                    vm.display,
                    if vm.created_at.is_empty() { &now } else { &vm.created_at },
                    if vm.updated_at.is_empty() { &now } else { &vm.updated_at },
                ],
            )?;
            if n > 0 {
                config::write_vm_extras(tx, &vm.id, &vm.config.extras)?;
            }
            Ok(n)
        })
        .and_then(|n| {
            if n == 0 {
                Err(StateError::AlreadyExists(vm.id.clone()))
            } else {
                Ok(())
            }
        })
    }

    /// Record a lease of `ip` on `tap` for a VM (SmolVM's `ip_leases`).
    pub fn insert_ip_lease(&self, vm_id: &str, ip: &str, tap: &str) -> Result<(), StateError> {
        self.write(|tx| pools::insert_ip_lease(tx, vm_id, ip, tap))
    }

    /// Record an SSH host-port forward for a VM (SmolVM's `ssh_forwards`).
    pub fn insert_ssh_forward(
        &self,
        vm_id: &str,
        host_port: u16,
        guest_port: u16,
    ) -> Result<(), StateError> {
        self.write(|tx| pools::insert_ssh_forward(tx, vm_id, host_port, guest_port))
    }

    /// Mark these running/paused VMs stale: status `error`, pid cleared (SmolVM's
    /// reconcile update), in one transaction. Rows that changed meanwhile are left alone.
    pub fn mark_stale(&self, ids: &[String]) -> Result<(), StateError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let now = iso_now();
            for id in ids {
                tx.execute(
                    "UPDATE vms SET status = 'error', pid = NULL, updated_at = ?1
                     WHERE id = ?2 AND status IN ('running', 'paused')",
                    rusqlite::params![now, id],
                )?;
            }
            Ok(())
        })
    }

    /// Delete a VM's row and every lease it holds, in one transaction. `false` if there
    /// was no such row (already deleted: not an error for an idempotent teardown).
    pub fn delete_vm(&self, id: &str) -> Result<bool, StateError> {
        self.write(|tx| {
            for table in ["ip_leases", "ssh_forwards", "vsock_cids", "tap_allocations"] {
                if table_exists(tx, table)? {
                    tx.execute(&format!("DELETE FROM {table} WHERE vm_id = ?1"), [id])?;
                }
            }
            Ok(tx.execute("DELETE FROM vms WHERE id = ?1", [id])? > 0)
        })
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        if self.read_only {
            return Err(StateError::Sqlite {
                path: self.path.clone(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                    Some(
                        "opened read-only (a dry run, or a file this user cannot write): no writes"
                            .into(),
                    ),
                ),
            });
        }
        let conn = self.lock();
        write_txn(&conn, f).map_err(|e| self.err(e))
    }
}

/// Run `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken up front (waiting
/// up to the busy timeout), so two writers never deadlock upgrading a read lock.
fn write_txn<T>(
    conn: &Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [table],
        |r| r.get(0),
    )
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    for n in names {
        if n? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(SqliteCode::DatabaseBusy) | Some(SqliteCode::DatabaseLocked)
    )
}

/// Turns a SQLite error about the database at `path` into a [`StateError`].
fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> StateError + Copy + '_ {
    move |source| StateError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens `path` read-write (creating it only when `create`), never through a symlink,
/// with `busy_timeout` set.
fn open_read_write(
    path: &Path,
    create: bool,
    busy_timeout: Duration,
) -> Result<Connection, StateError> {
    let sql = sql_error(path);
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
    conn.busy_timeout(busy_timeout).map_err(sql)?;
    Ok(conn)
}

/// How an existing database opened for writing turned out.
enum InPlace {
    Healthy(Connection),
    NotWritable,
    Corrupt(String),
}

/// Open `path` read-write (never creating it) and check it. Reading it once makes SQLite
/// roll back a hot journal a killed writer left, as any SmolVM or `sqlite3` would.
fn open_in_place(path: &Path, busy_timeout: Duration) -> Result<InPlace, StateError> {
    let sql = sql_error(path);
    let conn = open_read_write(path, false, busy_timeout)?;
    // SQLite opens a file it may not write read-only, silently.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(sql)? {
        return Ok(InPlace::NotWritable);
    }
    match health(&conn) {
        Ok(None) => Ok(InPlace::Healthy(conn)),
        Ok(Some(reason)) => Ok(InPlace::Corrupt(reason)),
        Err(e) if is_busy(&e) => Err(StateError::Locked {
            path: path.to_path_buf(),
            waited: busy_timeout.as_secs_f64(),
        }),
        Err(e) if is_read_only_error(&e) => Ok(InPlace::NotWritable),
        Err(e) => Err(sql(e)),
    }
}

/// `Ok(None)` if SQLite reads the database and `quick_check` passes, `Ok(Some(why))` if
/// SQLite says it is damaged; any other failure (locked, read-only, I/O) is an error.
fn health(conn: &Connection) -> rusqlite::Result<Option<String>> {
    match conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)) {
        Ok(s) if s == "ok" => Ok(None),
        Ok(s) => Ok(Some(format!("quick_check: {s}"))),
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(SqliteCode::DatabaseCorrupt) | Some(SqliteCode::NotADatabase)
            ) =>
        {
            Ok(Some(e.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// SQLite cannot write what it needs to (the file, its journal, its `-shm`).
fn is_read_only_error(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(SqliteCode::ReadOnly))
}

/// Move a corrupt database and its `-journal`/`-wal`/`-shm` files to
/// `<name>.corrupt-<stamp>[-journal|-wal|-shm]`: the sidecars first, so that a crash half
/// way leaves the damaged file where the next open finds it again, and never a journal
/// without its database (SQLite deletes a journal whose database is gone).
fn move_aside(path: &Path) -> Result<PathBuf, StateError> {
    const SUFFIXES: [&str; 4] = ["-journal", "-wal", "-shm", ""];
    let stamp = compact(SystemTime::now());
    let taken = |t: &PathBuf| {
        SUFFIXES
            .iter()
            .any(|s| std::fs::symlink_metadata(format!("{}{s}", t.display())).is_ok())
    };
    let mut target = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    let mut n = 1;
    while taken(&target) {
        target = PathBuf::from(format!("{}.corrupt-{stamp}.{n}", path.display()));
        n += 1;
    }
    for suffix in SUFFIXES {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        let to = PathBuf::from(format!("{}{suffix}", target.display()));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(source) => return Err(StateError::Io { path: from, source }),
        }
    }
    Ok(target)
}

/// A VM that is running or paused according to a database, and the host files its
/// configuration points at. Read-only: never creates, migrates or changes the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveVm {
    /// The VM id, or for a row whose id is not a valid one, the id escaped for display.
    pub id: String,
    pub files: Vec<PathBuf>,
}

/// VMs in status `running` or `paused` in the database at `db`, with their
/// `kernel_path`, `rootfs_path`, `initrd_path` and extra drive paths. For keeping files in
/// use, so deliberately lenient: a row that the strict reader would skip still counts
/// with whatever paths its config names (keeping too much is safe).
pub fn active_vms(db: &Path) -> Result<Vec<ActiveVm>, StateError> {
    let (store, corruption) = StateStore::open(db, OpenMode::DryRun, Duration::from_secs(5))?;
    if let Some(c) = corruption {
        return Err(StateError::Corrupt(c));
    }
    let conn = store.lock();
    let err = |e| store.err(e);
    if !table_exists(&conn, "vms").map_err(err)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare(
            "SELECT id, config FROM vms WHERE status IN ('running', 'paused') ORDER BY created_at, rowid",
        )
        .map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(err)? {
        let id = r.get_ref(0).map_err(err)?;
        let config = r.get_ref(1).map_err(err)?;
        out.push(ActiveVm {
            id: types::text(id)
                .filter(|s| crate::sys::process::is_vm_id(s))
                .map_or_else(|| describe(id), str::to_string),
            files: types::text(config)
                .and_then(|c| serde_json::from_str(c).ok())
                .map(|c| VmConfig::from_json(&c).host_files())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
