CREATE TABLE IF NOT EXISTS vms (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    network TEXT,
    pid INTEGER,
    socket_path TEXT,
    display TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ip_leases (
    ip TEXT PRIMARY KEY,
    vm_id TEXT NOT NULL UNIQUE,
    tap_device TEXT NOT NULL,
    created_at TEXT NOT NULL,
    FOREIGN KEY (vm_id) REFERENCES vms(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_vms_status ON vms(status);
CREATE INDEX IF NOT EXISTS idx_ip_leases_vm_id ON ip_leases(vm_id);
CREATE TABLE IF NOT EXISTS ssh_forwards (
    vm_id TEXT PRIMARY KEY,
    host_port INTEGER NOT NULL UNIQUE,
    guest_port INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    FOREIGN KEY (vm_id) REFERENCES vms(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_ssh_forwards_vm_id ON ssh_forwards(vm_id);
CREATE INDEX IF NOT EXISTS idx_ssh_forwards_host_port ON ssh_forwards(host_port);
CREATE TABLE IF NOT EXISTS vsock_cids (
    vm_id TEXT PRIMARY KEY,
    guest_cid INTEGER NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    FOREIGN KEY (vm_id) REFERENCES vms(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_vsock_cids_vm_id ON vsock_cids(vm_id);
CREATE TABLE IF NOT EXISTS tap_allocations (
    vm_id TEXT PRIMARY KEY,
    tap_device TEXT NOT NULL UNIQUE,
    mode TEXT NOT NULL,
    bridge_name TEXT,
    created_at TEXT NOT NULL,
    FOREIGN KEY (vm_id) REFERENCES vms(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_tap_allocations_tap_device ON tap_allocations(tap_device);
CREATE TABLE IF NOT EXISTS browser_sessions (
    session_id TEXT PRIMARY KEY,
    vm_id TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    cdp_url TEXT,
    live_url TEXT,
    vnc_url TEXT,
    debug_port INTEGER,
    vnc_port INTEGER,
    profile_id TEXT,
    expires_at TEXT,
    artifacts_dir TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_browser_sessions_status ON browser_sessions(status);
CREATE INDEX IF NOT EXISTS idx_browser_sessions_profile_id ON browser_sessions(profile_id);
CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id TEXT PRIMARY KEY,
    vm_id TEXT NOT NULL,
    snapshot_path TEXT NOT NULL,
    mem_file_path TEXT NOT NULL,
    disk_path TEXT NOT NULL,
    backend TEXT,
    artifacts TEXT,
    vm_config TEXT NOT NULL,
    network_config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    snapshot_type TEXT,
    restored INTEGER DEFAULT 0,
    restored_vm_id TEXT,
    artifact_kind TEXT,
    virtual_size_bytes INTEGER,
    changed_bytes INTEGER,
    bitmap_granularity_bytes INTEGER,
    bitmap_name TEXT
);
CREATE INDEX IF NOT EXISTS idx_snapshots_vm_id ON snapshots(vm_id);
-- smolvm's own: a sandbox's network settings (egress policy with domains, published SSH),
-- which SmolVM's VMConfig cannot hold. SmolVM never reads these tables; its deletes
-- cascade (it opens the DB with foreign_keys = ON).
CREATE TABLE IF NOT EXISTS smolvm_vm_network (
    vm_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    FOREIGN KEY (vm_id) REFERENCES vms(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS smolvm_snapshot_network (
    snapshot_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    created_at TEXT NOT NULL,
    FOREIGN KEY (snapshot_id) REFERENCES snapshots(snapshot_id) ON DELETE CASCADE
);
-- smolvm's own: a sandbox's settings SmolVM's VMConfig has no key for (accelerator, boot
-- timeout, source image, workspace mounts, restore markers), as JSON text
-- (sys::state::config::VmExtras); a snapshot keeps its sandbox's copy.
CREATE TABLE IF NOT EXISTS smolvm_vm_config (
    vm_id TEXT PRIMARY KEY,
    extras TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    FOREIGN KEY (vm_id) REFERENCES vms(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS smolvm_snapshot_config (
    snapshot_id TEXT PRIMARY KEY,
    extras TEXT NOT NULL,
    created_at TEXT NOT NULL,
    FOREIGN KEY (snapshot_id) REFERENCES snapshots(snapshot_id) ON DELETE CASCADE
);
