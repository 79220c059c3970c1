//! Every destructive call site goes through the ownership rules. This test reads the
//! source and finds each place that signals a process, unlinks or renames over a file,
//! removes a directory, deletes a network link, deletes nftables entries or deletes state
//! database rows; each must be inside one of the few functions below, which are the rules
//! themselves (they take a proof type or check what they act on before acting). A new call
//! anywhere else fails this test: route it through one of these functions instead.

mod support;

use support::sources::{sources, AllowList};

/// (file, enclosing function, why it is allowed).
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "src/core/start/vmm.rs",
        "settle",
        "kills the VMM it spawned itself (its own Child) when its start, restore or clone \
         fails, never a process found through the row",
    ),
    (
        "src/core/presets/forward.rs",
        "attempt",
        "kills the ssh of the forwarding session it spawned itself (its own Child) when the \
         guest's answer is refused or past its bound",
    ),
    (
        "src/core/presets/forward.rs",
        "watched",
        "kills the ssh of the forwarding session it has just spawned itself (its own Child) \
         when it cannot watch it",
    ),
    (
        "src/sys/tunnel.rs",
        "wait_listening",
        "kills the ssh forward it spawned itself (its own Child) when it never listens",
    ),
    (
        "src/core/snapshot/template.rs",
        "write",
        "kills the helper QEMU it spawned itself when writing the RAM file fails (its own Child)",
    ),
    (
        "src/sys/net/tap.rs",
        "setup_bridged",
        "deletes the bridge TAP this call created when enslaving it fails (created is true only for it)",
    ),
    // Processes: only a VMM proved ours, through a pidfd.
    (
        "src/sys/process.rs",
        "signal",
        "Pidfd::signal, reachable only through OwnedVmm::prove",
    ),
    (
        "src/core/guest.rs",
        "run_attached",
        "kills the ssh client it spawned itself at the timeout (its own Child)",
    ),
    (
        "src/core/files.rs",
        "kill_on_error",
        "kills the ssh client it spawned itself when the local side refuses (its own Child)",
    ),
    (
        "src/core/files/upload.rs",
        "settle_upload",
        "kills the ssh and tar the upload spawned itself when it is cancelled, while sending \
         or while the guest finishes (its own Children)",
    ),
    (
        "src/core/egress/resolver.rs",
        "start",
        "kills the resolver it spawned itself (its own Child) when it never answered",
    ),
    (
        "src/sys/resolver/allower.rs",
        "fork",
        "kills the allower it has just forked (its own child, not yet reaped, so its pid is \
         not reused) when it never said it was ready",
    ),
    (
        "src/sys/child.rs",
        "kill",
        "Child::kill: a child smolvm spawned itself (ssh, tar, docker, a build step), never \
         another process",
    ),
    (
        "src/sys/child.rs",
        "new",
        "Watchdog::new: SIGKILL through a pidfd opened on a child smolvm spawned itself while \
         it was unreaped, so no other process can get it",
    ),
    (
        "src/sys/child.rs",
        "wait_until",
        "kills the child it spawned itself when its bound passes",
    ),
    (
        "src/sys/vmm/seccomp.rs",
        "probe_firecracker",
        "kills the Firecracker probe it spawned itself for doctor (its own Child, no VM)",
    ),
    // Trees: never follow a symlink, never cross a mount.
    (
        "src/sys/fs.rs",
        "remove_entry",
        "dirfd walk, O_NOFOLLOW, mount ids compared",
    ),
    (
        "src/sys/fs.rs",
        "remove_child",
        "dirfd walk, O_NOFOLLOW, mount ids compared",
    ),
    (
        "src/sys/fs/staging.rs",
        "unlink_if_still",
        "a staging folder this process made (Staging::remove), or one remove_unheld proved a \
         killed process's (named as smolvm names them, of a PID gone here, locked by nobody, \
         of an owner the caller accepts, in a local folder nobody else may rename entries \
         in): emptied through the descriptor opened on it (directories entered only when of \
         an accepted owner, O_NOFOLLOW, mount ids compared), its name removed only while \
         it still names that directory",
    ),
    (
        "src/sys/fs/staging.rs",
        "rmdir_made",
        "rmdir (an empty folder only) of the folder this call made with mkdir a moment \
         before, while it still names the directory opened on it when it could be opened",
    ),
    // Files: names smolvm generated, in dirs it owns, checked by type first.
    (
        "src/sys/fs.rs",
        "unlink_generated",
        "private: reached through remove_vm_file (VmFile: a name generated from a validated \
         id) and remove_generated_file; only a regular file or this user's socket, checked \
         without following",
    ),
    (
        "src/sys/fs.rs",
        "remove_lock_only_dir",
        "a directory holding only a regular .lock (the caller holds it); rmdir of an empty dir",
    ),
    (
        "src/sys/fs/snapshot_dir.rs",
        "snapshot_dir_at",
        "a validated snapshot id's directory, only when every entry is a regular file under \
         a name smolvm (or SmolVM, in its own layout) writes there (dirfd, O_NOFOLLOW, mount \
         ids compared); its check-only mode removes nothing",
    ),
    (
        "src/sys/fs.rs",
        "replace_with_generated",
        "only over a regular file or nothing",
    ),
    (
        "src/sys/open.rs",
        "write_atomic",
        "its own O_EXCL temp file, renamed over the target",
    ),
    (
        "src/sys/open.rs",
        "prepare_socket_path",
        "only a socket (lstat)",
    ),
    ("src/sys/open.rs", "remove_socket", "only a socket (lstat)"),
    (
        "src/sys/disk.rs",
        "start",
        "its own O_EXCL temp file, just made, when the source does not open",
    ),
    (
        "src/sys/disk.rs",
        "drop",
        "its own O_EXCL temp file, a copy dropped before its commit",
    ),
    (
        "src/sys/state/mod.rs",
        "move_aside",
        "moves a damaged DB to a new unique name, deletes nothing",
    ),
    (
        "src/sys/state/copy.rs",
        "drop",
        "the private 0700 temp dir it created for a read-only copy",
    ),
    (
        "src/sys/unpack/writer.rs",
        "clear",
        "an entry an earlier member of the same stream made, inside the download's private \
         0700 temp folder (dirfds, no link followed)",
    ),
    // Docker containers: only an OwnedContainer.
    (
        "src/sys/build.rs",
        "remove_container",
        "takes an OwnedContainer: one docker create made for this process, or one \
         left_container proved a killed build's (never started, smolvm's name, a label naming \
         a process of this boot and PID namespace that is gone)",
    ),
    // Network links: only an OwnedTap.
    (
        "src/sys/net/mod.rs",
        "delete_link",
        "takes an OwnedTap, deletes by the proved index",
    ),
    // nftables: only Deletions of SmolVM's per-VM elements and rules.
    (
        "src/sys/net/nft.rs",
        "deletion",
        "Element/Rule::deletion: SmolVM's per-VM entries only",
    ),
    ("src/sys/net/nft.rs", "delete", "takes Deletions only"),
    (
        "src/sys/net/nft.rs",
        "apply",
        "refuses anything but `add` commands",
    ),
    (
        "src/sys/net/nft.rs",
        "run_batch",
        "private: reached through delete and apply",
    ),
    // smolvm's own table inet smolvm_guard: objects named after a TAP name smolvm makes
    // (check_tap), rewritten in one atomic batch; never SmolVM's tables.
    (
        "src/sys/net/guard.rs",
        "base_commands",
        "flushes and rewrites the guard's own base chains in the same batch",
    ),
    (
        "src/sys/net/guard.rs",
        "tap_commands",
        "flushes and rewrites one checked TAP's chains and elements in the same batch",
    ),
    (
        "src/sys/net/guard.rs",
        "apply",
        "runs tap_commands for a checked TAP name",
    ),
    (
        "src/sys/net/guard.rs",
        "remove",
        "deletes only the objects and elements named after a checked TAP that exist",
    ),
    (
        "src/sys/net/guard.rs",
        "set_resolver_port",
        "rewrites the guard's own DNS chains",
    ),
    (
        "src/sys/net/guard.rs",
        "allow_resolved",
        "renews addresses in one checked TAP's dyn_ set",
    ),
    // State database rows: a validated id, one transaction.
    (
        "src/sys/state/mod.rs",
        "delete_vm",
        "one VM's row and leases by id",
    ),
    (
        "src/sys/state/config.rs",
        "write_extras",
        "one VM's (or snapshot's) extras row by its id, replaced in the transaction that \
         writes its config",
    ),
    (
        "src/sys/state/snapshots.rs",
        "delete_snapshot",
        "one snapshot's row by id",
    ),
];

/// The destructive primitives looked for.
const PRIMITIVES: &[&str] = &[
    "unlinkat(",
    "remove_file(",
    "remove_dir(",
    "remove_dir_all(",
    "fs::rename(",
    "pidfd_send_signal",
    "libc::kill(",
    "signal::kill(",
    ".kill()",
    "link().del(",
    "\"delete element",
    "\"delete rule",
    "\"delete table",
    "\"delete chain",
    "\"delete set",
    "\"delete map",
    "\"flush ",
    "DELETE FROM",
    "run_batch(",
    // `docker rm`: an argument of a docker command line.
    "OsStr::new(\"rm\")",
    "\"rm\", \"-f\"",
];

/// (line number, enclosing function, line) of each destructive call outside tests.
fn destructive_sites(source: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut func = String::new();
    let lines: Vec<&str> = source.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        // The unit tests at the end of a file.
        if t.starts_with("#[cfg(test)]")
            && lines
                .get(i + 1)
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        if let Some(name) = fn_name(t) {
            func = name;
        }
        if PRIMITIVES.iter().any(|p| t.contains(p)) {
            out.push((i + 1, func.clone(), t.to_string()));
        }
    }
    out
}

fn fn_name(t: &str) -> Option<String> {
    let mut words = t.split_whitespace().peekable();
    while let Some(w) = words.next() {
        if w == "fn" {
            let name = words.next()?;
            return Some(name.split(['(', '<']).next().unwrap_or(name).to_string());
        }
        if !(w.starts_with("pub") || w == "async" || w == "unsafe" || w == "const") {
            return None;
        }
    }
    None
}

/// Files that are test modules as a whole (declared `#[cfg(test)] mod …;`).
const TEST_FILES: &[&str] = &[
    "src/sys/state/tests.rs",
    "src/core/presets/forward/tests.rs",
    "src/sys/state/fuzz.rs",
    "src/sys/fs/tests.rs",
    "src/sys/unpack/tests.rs",
    "src/tui/dialogs/start/tests.rs",
    "src/core/files/tests.rs",
];

#[test]
fn every_destructive_call_site_is_one_of_the_ownership_rules() {
    let mut allowed = AllowList::new(ALLOWED);
    for (rel, src) in sources() {
        if TEST_FILES.contains(&rel.as_str()) {
            continue;
        }
        for (line, func, text) in destructive_sites(&src) {
            allowed.check(&rel, &func, || format!("{rel}:{line} in fn {func}: {text}"));
        }
    }
    allowed.assert_exact(
        "destructive calls outside the ownership rules (route them through sys::fs, \
         sys::open, OwnedVmm, OwnedTap, nft::delete or StateStore::delete_vm)",
        "allowed sites that no longer exist (keep the list exact)",
        |f, func| format!("{f} fn {func}"),
    );
}

#[test]
fn the_scan_finds_a_planted_destructive_call_and_ignores_tests_and_comments() {
    let planted = "pub async fn sneaky(p: &Path) {\n    // std::fs::remove_file(p) in a comment\n    let _ = std::fs::remove_file(p);\n}\nfn quiet() {}\n#[cfg(test)]\nmod tests {\n    fn t() { std::fs::remove_dir_all(\"/x\").unwrap(); }\n}\n";
    let sites = destructive_sites(planted);
    assert_eq!(sites.len(), 1, "{sites:?}");
    assert_eq!(sites[0].0, 3);
    assert_eq!(sites[0].1, "sneaky");
    for p in [
        "nix::sys::signal::kill(pid, SIGKILL)",
        "handle.link().del(3)",
        "tx.execute(\"DELETE FROM vms\")",
        "format!(\"delete table ip x\")",
    ] {
        assert_eq!(
            destructive_sites(&format!("fn f() {{ {p} }}")).len(),
            1,
            "{p}"
        );
    }
}
