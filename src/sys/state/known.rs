//! What every candidate state database records: the evidence that protects a VM, a TAP, a
//! guest address, a port or a control socket from being judged an orphan. The active
//! database supplies cleanup's targets; the others (the user state dir's, the invoking
//! user's under `sudo`, `/var/lib/smolvm`'s) only protect what they record.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Leases, OpenMode, StateStore, VmRecord};

/// Everything the candidate databases record, merged.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// VM ids recorded anywhere.
    pub ids: HashSet<String>,
    /// TAP name → the VM ids that record it.
    pub taps: HashMap<String, HashSet<String>>,
    pub guest_ips: HashSet<String>,
    pub ports: HashSet<u16>,
    /// Recorded control sockets (`vms.socket_path`).
    pub sockets: HashSet<PathBuf>,
    /// A candidate database exists but could not be read: nothing can be proved an
    /// orphan, since that database might record it.
    pub incomplete: bool,
}

impl Known {
    /// Add one database's rows and leases.
    pub fn add(&mut self, rows: &[VmRecord], leases: &Leases) {
        for vm in rows {
            self.ids.insert(vm.id.clone());
            if let Some(s) = &vm.socket_path {
                self.sockets.insert(PathBuf::from(s));
            }
            if let Some(net) = &vm.network {
                if let Some(t) = &net.tap_device {
                    self.add_tap(t, &vm.id);
                }
                if let Some(ip) = &net.guest_ip {
                    self.guest_ips.insert(ip.clone());
                }
                if let Some(p) = net.ssh_host_port {
                    self.ports.insert(p);
                }
            }
        }
        for (vm, (ip, tap)) in &leases.ips {
            self.ids.insert(vm.clone());
            self.guest_ips.insert(ip.clone());
            self.add_tap(tap, vm);
        }
        for (vm, (host, _)) in &leases.ssh {
            self.ids.insert(vm.clone());
            self.ports.insert(*host);
        }
        for (vm, t) in &leases.taps {
            self.ids.insert(vm.clone());
            self.add_tap(&t.tap_device, vm);
        }
    }

    fn add_tap(&mut self, tap: &str, vm: &str) {
        self.taps
            .entry(tap.to_string())
            .or_default()
            .insert(vm.to_string());
    }

    /// Read every database in `dbs` that exists, without changing any of them. A database
    /// that cannot be read is a warning and sets [`Known::incomplete`].
    pub fn read(dbs: &[PathBuf], busy: Duration) -> (Known, Vec<String>) {
        let mut known = Known::default();
        let mut warnings = Vec::new();
        let mut seen = HashSet::new();
        for db in dbs {
            let key = std::fs::canonicalize(db).unwrap_or_else(|_| db.clone());
            if !seen.insert(key) || !db.is_file() {
                continue;
            }
            match read_one(db, busy) {
                Ok((rows, leases)) => known.add(&rows, &leases),
                Err(e) => {
                    known.incomplete = true;
                    warnings.push(format!(
                        "cannot read state database {}: {e}; stale resources are left alone",
                        db.display()
                    ));
                }
            }
        }
        (known, warnings)
    }

    /// Whether another VM than `vm_id` records this TAP.
    pub fn tap_recorded_by_other(&self, tap: &str, vm_id: &str) -> bool {
        self.taps
            .get(tap)
            .is_some_and(|ids| ids.iter().any(|i| i != vm_id))
    }
}

/// One database's valid rows and leases; a database with rows that could not be read is
/// an error (what they record is unknown, so nothing may be judged unowned).
fn read_one(db: &Path, busy: Duration) -> Result<(Vec<VmRecord>, Leases), String> {
    let (store, _) = StateStore::open(db, OpenMode::DryRun, busy).map_err(|e| e.to_string())?;
    let rows = store.list_vms().map_err(|e| e.to_string())?;
    let leases = store.leases().map_err(|e| e.to_string())?;
    if let Some(bad) = rows.skipped.first().or(leases.skipped.first()) {
        return Err(format!("a row could not be read ({bad})"));
    }
    Ok((rows.vms, leases))
}
