//! SmolVM's address pools and row updates for starting VMs: the guest IP pool
//! (`172.16.0.2` … `172.16.255.254`, first free ascending, `tap<N>` by pool index) and the
//! SSH host-port pool (2200 … 65535, first free, skipping ports bound on this host). Each
//! allocation is one `BEGIN IMMEDIATE` transaction, so two starts never get the same lease.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rusqlite::OptionalExtension;

use super::{table_exists, Network, StateError, StateStore, VmStatus};
use crate::sys::time::iso_now;

/// First and last pool index (SmolVM `_base.py`).
pub const IP_POOL: std::ops::RangeInclusive<u32> = 2..=65534;
pub const SSH_PORT_POOL: std::ops::RangeInclusive<u32> = 2200..=65535;

/// A VM's NAT network leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLease {
    pub guest_ip: Ipv4Addr,
    pub index: u32,
    pub tap: String,
    pub ssh_host_port: Option<u16>,
}

/// `172.16.{i>>8}.{i&0xFF}`.
pub fn pool_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(172, 16, (i >> 8) as u8, (i & 0xff) as u8)
}

fn pool_error(msg: &str) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(PoolExhausted(msg.to_string())))
}

/// A pool has no free entry.
#[derive(Debug)]
pub struct PoolExhausted(pub String);

impl std::fmt::Display for PoolExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PoolExhausted {}

/// Every value of the one column `sql` selects (the leases already taken).
fn column<T: rusqlite::types::FromSql + std::hash::Hash + Eq>(
    conn: &rusqlite::Connection,
    sql: &str,
) -> rusqlite::Result<HashSet<T>> {
    let mut s = conn.prepare(sql)?;
    let values = s.query_map([], |r| r.get(0))?.collect();
    values
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// Insert SmolVM's `ip_leases` row: `ip` on `tap` for `vm_id`.
pub(super) fn insert_ip_lease(
    tx: &rusqlite::Transaction<'_>,
    vm_id: &str,
    ip: &str,
    tap: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO ip_leases (ip, vm_id, tap_device, created_at) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![ip, vm_id, tap, iso_now()],
    )
    .map(drop)
}

/// Insert SmolVM's `ssh_forwards` row: `host_port` to the guest's `guest_port` for `vm_id`.
pub(super) fn insert_ssh_forward(
    tx: &rusqlite::Transaction<'_>,
    vm_id: &str,
    host_port: u16,
    guest_port: u16,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO ssh_forwards (vm_id, host_port, guest_port, created_at) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![vm_id, host_port, guest_port, iso_now()],
    )
    .map(drop)
}

/// The SSH host port `vm_id` forwards, as stored.
pub(super) fn ssh_port_of(
    tx: &rusqlite::Transaction<'_>,
    vm_id: &str,
) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT host_port FROM ssh_forwards WHERE vm_id = ?1",
        [vm_id],
        |r| r.get(0),
    )
    .optional()
}

impl StateStore {
    /// Lease a guest IP (and its `tap<N>`) and, when `ssh` is set, an SSH host port for
    /// `vm_id`, in one transaction. Idempotent: a VM that already holds leases gets them
    /// back. Errors name the pool that ran out, as SmolVM's do.
    pub fn allocate_network(&self, vm_id: &str, ssh: bool) -> Result<NetLease, StateError> {
        let r = self.write(|tx| {
            let existing: Option<(String, String)> = tx
                .query_row(
                    "SELECT ip, tap_device FROM ip_leases WHERE vm_id = ?1",
                    [vm_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (ip, tap) = match existing {
                Some((ip, tap)) => match ip.parse::<Ipv4Addr>() {
                    // Only a lease this reader would return names a device to create.
                    Ok(addr) if super::is_smolvm_tap(&tap) => (addr, tap),
                    _ => {
                        return Err(pool_error(&format!(
                            "the state database's IP lease of {vm_id} is invalid (ip {ip:?}, tap_device {tap:?}); fix or delete that row"
                        )))
                    }
                },
                None => {
                    let taken: HashSet<String> = column(tx, "SELECT ip FROM ip_leases")?;
                    let i = IP_POOL
                        .clone()
                        .find(|i| !taken.contains(&pool_ip(*i).to_string()))
                        .ok_or_else(|| pool_error("No IP addresses available in pool"))?;
                    let (ip, tap) = (pool_ip(i), format!("tap{i}"));
                    insert_ip_lease(tx, vm_id, &ip.to_string(), &tap)?;
                    (ip, tap)
                }
            };
            let mut port = None;
            if ssh {
                port = Some(match ssh_port_of(tx, vm_id)? {
                    Some(p) => u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                        pool_error(&format!(
                            "the state database's SSH forward of {vm_id} is invalid (host_port {p}); fix or delete that row"
                        ))
                    })?,
                    None => {
                        let taken: HashSet<i64> =
                            column(tx, "SELECT host_port FROM ssh_forwards")?;
                        let p = SSH_PORT_POOL
                            .clone()
                            .find(|p| !taken.contains(&i64::from(*p)) && port_is_free(*p as u16))
                            .ok_or_else(|| pool_error("No SSH host ports available in pool"))?
                            as u16;
                        insert_ssh_forward(tx, vm_id, p, 22)?;
                        p
                    }
                });
            }
            Ok((ip, tap, port))
        });
        match r {
            Ok((guest_ip, tap, ssh_host_port)) => Ok(NetLease {
                index: super::super::net::tap::pool_index(guest_ip).unwrap_or(0),
                guest_ip,
                tap,
                ssh_host_port,
            }),
            Err(StateError::Sqlite {
                source: rusqlite::Error::ToSqlConversionFailure(e),
                ..
            }) => Err(StateError::Pool(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Reserve a bridge TAP name for `vm_id` on `bridge` (SmolVM's `reserve_tap_name`,
    /// `tap_allocations`): `svmb` + 8 random hex digits, a free one in up to 100 tries.
    /// Idempotent: a VM that holds a bridge reservation gets it back; one that holds
    /// another (NAT, or another bridge) is refused with SmolVM's message.
    pub fn reserve_bridge_tap(&self, vm_id: &str, bridge: &str) -> Result<String, StateError> {
        let r = self.write(|tx| {
            let existing: Option<(String, String, Option<String>)> = tx
                .query_row(
                    "SELECT tap_device, mode, bridge_name FROM tap_allocations WHERE vm_id = ?1",
                    [vm_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((tap, mode, name)) = existing {
                if mode != "bridge" || name.as_deref() != Some(bridge) || !crate::sys::net::is_bridge_tap_name(&tap) {
                    return Err(pool_error(&format!(
                        "Sandbox '{vm_id}' already reserves TAP '{tap}' for {mode} networking; run 'smolvm sandbox delete {vm_id}' before changing its network attachment."
                    )));
                }
                return Ok(tap);
            }
            let taken: HashSet<String> = column(tx, "SELECT tap_device FROM tap_allocations")?;
            for _ in 0..100 {
                let mut b = [0u8; 4];
                rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
                    .map_err(|e| pool_error(&format!("no random bytes for a TAP name: {e}")))?;
                let tap = format!("svmb{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3]);
                if taken.contains(&tap) {
                    continue;
                }
                tx.execute(
                    "INSERT INTO tap_allocations (vm_id, tap_device, mode, bridge_name, created_at) VALUES (?1, ?2, 'bridge', ?3, ?4)",
                    rusqlite::params![vm_id, tap, bridge, iso_now()],
                )?;
                return Ok(tap);
            }
            Err(pool_error("Could not find a free TAP device name"))
        });
        match r {
            Err(StateError::Sqlite {
                source: rusqlite::Error::ToSqlConversionFailure(e),
                ..
            }) => Err(StateError::Pool(e.to_string())),
            other => other,
        }
    }

    /// Set a VM's status; `running` with its pid and control socket, anything else clears
    /// both (SmolVM's `update_vm(..., clear_pid=True)`).
    pub fn set_status(
        &self,
        id: &str,
        status: &VmStatus,
        pid: Option<i64>,
        socket_path: Option<&str>,
    ) -> Result<(), StateError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE vms SET status = ?1, pid = ?2, socket_path = ?3, updated_at = ?4 WHERE id = ?5",
                rusqlite::params![status.as_str(), pid, socket_path, iso_now(), id],
            )
        })
        .map(drop)
    }

    /// Store a VM's NetworkConfig JSON.
    pub fn set_network(&self, id: &str, network: &Network) -> Result<(), StateError> {
        let text = serde_json::to_string(network).unwrap_or_default();
        self.write(|tx| {
            tx.execute(
                "UPDATE vms SET network = ?1, updated_at = ?2 WHERE id = ?3",
                rusqlite::params![text, iso_now(), id],
            )
        })
        .map(drop)
    }

    /// Whether a row exists with this id.
    pub fn vm_exists(&self, id: &str) -> Result<bool, StateError> {
        let conn = self.lock();
        if !table_exists(&conn, "vms").map_err(|e| self.err(e))? {
            return Ok(false);
        }
        conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM vms WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )
        .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::state::{OpenMode, VmRecord, DEFAULT_BUSY_TIMEOUT};

    /// A new read-write store at `dir/smolvm.db`.
    fn fresh_store(dir: &std::path::Path) -> StateStore {
        let db = dir.join("smolvm.db");
        let (s, _) = StateStore::open(&db, OpenMode::ReadWrite, DEFAULT_BUSY_TIMEOUT).unwrap();
        s
    }

    #[test]
    fn leases_are_first_free_idempotent_and_exhaust_with_smolvms_message() {
        let t = tempfile::tempdir().unwrap();
        let s = fresh_store(t.path());
        for id in ["vm-a", "vm-b", "vm-c"] {
            s.insert_vm(&VmRecord::new(id, VmStatus::Created)).unwrap();
        }
        let a = s.allocate_network("vm-a", true).unwrap();
        assert_eq!(a.guest_ip.to_string(), "172.16.0.2");
        assert_eq!((a.tap.as_str(), a.index), ("tap2", 2));
        assert!(a.ssh_host_port.unwrap() >= 2200);
        assert_eq!(s.allocate_network("vm-a", true).unwrap(), a);
        let b = s.allocate_network("vm-b", false).unwrap();
        assert_eq!(
            (b.guest_ip.to_string(), b.ssh_host_port),
            ("172.16.0.3".into(), None)
        );
        // Freeing a's lease makes .2 the first free again.
        s.delete_vm("vm-a").unwrap();
        assert_eq!(
            s.allocate_network("vm-c", false)
                .unwrap()
                .guest_ip
                .to_string(),
            "172.16.0.2"
        );
        // Fill the pool.
        {
            let conn = s.lock();
            conn.execute_batch("BEGIN").unwrap();
            for i in IP_POOL {
                conn.execute(
                    "INSERT OR IGNORE INTO vms (id, status, config, created_at, updated_at) VALUES (?1, 'created', '{}', 'x', 'x')",
                    [format!("f{i}")],
                )
                .unwrap();
                conn.execute(
                    "INSERT OR IGNORE INTO ip_leases (ip, vm_id, tap_device, created_at) VALUES (?1, ?2, ?3, 'x')",
                    rusqlite::params![pool_ip(i).to_string(), format!("f{i}"), format!("tap{i}")],
                )
                .unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
        }
        s.insert_vm(&VmRecord::new("vm-d", VmStatus::Created))
            .unwrap();
        let e = s.allocate_network("vm-d", true).unwrap_err();
        assert_eq!(e.to_string(), "No IP addresses available in pool");
    }

    #[test]
    fn an_invalid_existing_lease_is_an_error_not_a_device_to_create() {
        let t = tempfile::tempdir().unwrap();
        let s = fresh_store(t.path());
        s.insert_vm(&VmRecord::new("vm-a", VmStatus::Created))
            .unwrap();
        s.insert_ip_lease("vm-a", "172.16.0.2", "eth0").unwrap();
        let e = s.allocate_network("vm-a", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the state database's IP lease of vm-a is invalid (ip \"172.16.0.2\", tap_device \"eth0\"); fix or delete that row"
        );
    }
}
