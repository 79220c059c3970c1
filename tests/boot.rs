//! Booting real microVMs, end to end, as root: QEMU (TCG on this machine kind) boots the
//! test kernel and rootfs built by `support::images` and served through a local manifest,
//! over real TAPs and nftables, each test in its own network namespace (with a veth pair
//! and a default route inside, for NAT). After every test nothing may be left: process,
//! TAP, nft element, row, socket, disk or log.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::images::{self, Init, Row};
use support::sandbox::{create_args, Sandboxes};
use support::{json, stderr, stdout};

/// This host as smolvm sees it (the same probe the binary makes).
fn this_host() -> smolvm::core::host::Host {
    smolvm::core::host::Host::probe(&smolvm::sys::env::Env::from_process())
}

/// A HOME in its own namespace; its presets (if any) from the rows given.
type Env = Sandboxes;

impl Sandboxes {
    /// Everything a VM could leave behind, as text to compare with nothing.
    fn leftovers(&self, id: &str) -> Vec<String> {
        let mut left = support::cleanup::vm_leftovers(&self.h, &self.ns, id);
        let rules = self.ns.sh("nft list ruleset 2>/dev/null || true");
        for set in [
            "dnat_ext",
            "dnat_local",
            "snat_return",
            "fwd_allow",
            "allowed_taps",
        ] {
            if let Some(i) = rules.find(&format!("{set} {{")) {
                let body = &rules[i..rules[i..].find('}').map_or(rules.len(), |j| i + j)];
                if body.contains("elements") {
                    left.push(format!("nft {body}"));
                }
            }
        }
        left
    }
}

fn pid_alive(pid: i64) -> bool {
    smolvm::sys::process::is_alive(pid as i32)
}

#[test]
fn preset_start_boots_a_reachable_vm_and_the_lifecycle_leaves_nothing() {
    require_root!();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let e = Env::with_presets(&[Row {
        preset: "claude-code",
        rootfs: &rootfs,
    }]);
    let v = e.ok_json(&["claude", "start", "--backend", "qemu", "--json"]);
    assert_eq!(v["command"], "claude.start");
    let d = &v["data"];
    let id = d["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("vm-"), "{id}");
    assert_eq!(d["ip"], "172.16.0.2");
    assert_eq!(d["backend"], "qemu");
    assert_eq!(
        d["accelerator"],
        if this_host().hardware_kvm() {
            "kvm"
        } else {
            "tcg"
        }
    );
    assert_eq!(d["status"], "running");
    assert_eq!(d["preset"]["name"], "claude-code");
    for phase in ["image_ms", "network_ms", "spawn_ms", "boot_ms", "total_ms"] {
        assert!(d["timings"][phase].as_f64().unwrap() >= 0.0, "{phase}");
    }
    let port = d["ssh_host_port"].as_u64().unwrap() as u16;
    assert!(port >= 2200);
    let pid = d["pid"].as_i64().unwrap();
    assert!(pid_alive(pid));

    // The host reaches the guest directly and through the SSH forward on localhost.
    assert_eq!(
        e.first_line("172.16.0.2", 22),
        "SSH-2.0-smolvm-test-busybox"
    );
    assert_eq!(
        e.first_line("127.0.0.1", port),
        "SSH-2.0-smolvm-test-busybox"
    );

    // Recorded as SmolVM records it.
    let info = e.ok_json(&["sandbox", "info", &id, "--json"]);
    let i = &info["data"];
    assert_eq!(i["status"], "running");
    assert_eq!(i["network"]["tap_device"], "tap2");
    assert_eq!(i["network"]["guest_mac"], "AA:FC:00:00:00:02");
    assert_eq!(i["network"]["mode"], "nat");
    assert_eq!(i["config"]["backend"], "qemu");
    assert_eq!(i["config"]["preset"], "claude-code");
    assert!(i["config"]["kernel_path"]
        .as_str()
        .unwrap()
        .ends_with("vmlinux-amd64.image"));
    let rules = e.ns.nft_ruleset();
    for c in [
        "smolvm:map:prerouting:dnat_ext",
        "smolvm:map:output:dnat_local",
        "smolvm:map:postrouting:snat_return",
        "smolvm:map:forward:fwd_allow",
        "smolvm:map:forward:allowed_taps",
        "smolvm:global:nat:masquerade:up0",
        "smolvm:global:forward:established",
        "smolvm:global:forward:tap-isolation",
    ] {
        assert_eq!(rules.matches(c).count(), 1, "{c} once in\n{rules}");
    }
    let logs = e.run(&["sandbox", "logs", &id]);
    assert!(
        stdout(&logs).contains("SmolVM init complete: IP=172.16.0.2"),
        "{}",
        stdout(&logs)
    );

    // Stop: process gone, row stopped, network kept for the next start.
    let s = e.ok_json(&["sandbox", "stop", &id, "--timeout", "3", "--json"]);
    assert_eq!(s["data"]["status"], "stopped");
    // This guest's sshd is a stand-in that takes no login: the stop says its writes were
    // not synced.
    assert_eq!(
        s["data"]["warnings"],
        serde_json::json!([format!(
            "The file systems of sandbox '{id}' were not synced before the stop (no SSH login to the guest): what it wrote in its last seconds may not be on its disk."
        )]),
        "{s}"
    );
    assert!(!pid_alive(pid));
    let list = e.ok_json(&["sandbox", "list", "--all", "--json"]);
    assert_eq!(list["data"]["vms"][0]["status"], "stopped");

    // Start again: a second boot on the same disk, IP and port.
    let again = e.ok_json(&["sandbox", "start", &id, "--json"]);
    assert_eq!(again["data"]["ip"], "172.16.0.2");
    assert_eq!(
        again["data"]["ssh_host_port"].as_u64(),
        Some(u64::from(port))
    );
    assert_eq!(
        e.first_line("127.0.0.1", port),
        "SSH-2.0-smolvm-test-busybox"
    );

    // Delete: nothing left but the shared tables.
    let del = e.ok_json(&["sandbox", "delete", &id, "--timeout", "3", "--json"]);
    assert_eq!(del["data"]["deleted"][0], id.as_str());
    assert_eq!(e.leftovers(&id), Vec::<String>::new());
    let rules = e.ns.nft_ruleset();
    assert!(
        rules.contains("table ip smolvm_nat")
            && rules.contains("smolvm:global:forward:established")
    );
}

/// SmolVM's `--qemu-machine` (and `--comm-channel`) on create: the machine is the one asked
/// for, recorded, and kept by a later `sandbox start` even when `SMOLVM_QEMU_MACHINE` now
/// says otherwise (the guest keeps its devices).
#[test]
fn a_chosen_qemu_machine_is_kept_across_restarts() {
    require_root!();
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let mut e = Env::with_presets(&[]);
    let machine_of = |pid: i64| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    };
    // The kernel named through a symbolic link (as `/vmlinuz` is): resolved at create, so
    // the config records the real file and every later boot accepts it.
    let link = e.h.tmp.path().join("vmlinuz");
    std::os::unix::fs::symlink(&kernel, &link).unwrap();
    let v = e.ok_json(&create_start(
        &link,
        &rootfs,
        "vm-mach",
        &["--qemu-machine", "microvm", "--comm-channel", "ssh"],
    ));
    assert_eq!(v["data"]["machine"], "microvm", "{v}");
    let info = e.ok_json(&["sandbox", "info", "vm-mach", "--json"]);
    assert_eq!(
        info["data"]["config"]["kernel_path"],
        std::fs::canonicalize(&kernel).unwrap().to_str().unwrap(),
        "{info}"
    );
    let cmd = machine_of(v["data"]["pid"].as_i64().unwrap());
    assert!(cmd.contains("-machine microvm,"), "{cmd}");
    e.ok_json(&["sandbox", "stop", "vm-mach", "--timeout", "2", "--json"]);
    e.extra.push(("SMOLVM_QEMU_MACHINE".into(), "q35".into()));
    let again = e.ok_json(&["sandbox", "start", "vm-mach", "--json"]);
    assert_eq!(again["data"]["machine"], "microvm", "{again}");
    let cmd = machine_of(again["data"]["pid"].as_i64().unwrap());
    assert!(cmd.contains("-machine microvm,"), "{cmd}");
    // A restore resolves the stored machine as that restart did (core's one
    // `set_machine`): its QEMU is microvm too, whatever SMOLVM_QEMU_MACHINE says.
    e.ok_json(&[
        "sandbox",
        "snapshot",
        "create",
        "vm-mach",
        "--snapshot-id",
        "snap-mach",
        "--json",
    ]);
    e.ok_json(&["sandbox", "delete", "vm-mach", "--timeout", "2", "--json"]);
    let r = e.ok_json(&["sandbox", "snapshot", "restore", "snap-mach", "--json"]);
    assert_eq!(r["data"]["vm"]["status"], "paused", "{r}");
    let info = e.ok_json(&["sandbox", "info", "vm-mach", "--json"]);
    let cmd = machine_of(info["data"]["pid"].as_i64().unwrap());
    assert!(cmd.contains("-machine microvm,"), "{cmd}");
    e.ok_json(&["sandbox", "snapshot", "delete", "snap-mach", "--json"]);
    e.ok_json(&["sandbox", "delete", "vm-mach", "--timeout", "2", "--json"]);
    assert_eq!(e.leftovers("vm-mach"), Vec::<String>::new());
    // SmolVM's macOS runtimes are a clear error (exit 1), not an unknown value.
    let out = e.run(&["claude", "start", "--backend", "libkrun", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("macOS runtime"), "{}", stdout(&out));
}

#[test]
fn debian_image_answers_ssh_and_exec() {
    require_root!();
    let e = Env::debian_codex();
    let v = e.codex_start("vm-deb");
    let port = v["data"]["ssh_host_port"].as_u64().unwrap();
    let out = e.run(&[
        "sandbox",
        "exec",
        "vm-deb",
        "--",
        "cat",
        "/etc/debian_version",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).trim().starts_with("12"), "{}", stdout(&out));
    let out = e.run(&["sandbox", "ssh", "vm-deb", "--", "uname"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "Linux");
    // The dashboard's copied command (`y`) logs in as it is, and is the start report's.
    let env = smolvm::sys::env::Env::from_vars(
        e.h.env_vars().into_iter().map(|(k, v)| (k.to_string(), v)),
        0,
    );
    let snap = smolvm::tui::data::load(
        &smolvm::core::context::Context::local(&env),
        &mut Default::default(),
        false,
    );
    let row = snap.vms.iter().find(|r| r.info.id == "vm-deb").unwrap();
    let copied = smolvm::tui::app::ssh_command(&row.info);
    assert_eq!(v["data"]["ssh_command"], copied.as_str());
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &e.ns.name, "sh", "-c"])
        .arg(format!("{copied} uname </dev/null"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{copied}: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "Linux", "{copied}");
    // The remote exit code comes back.
    let out = e.run(&["sandbox", "exec", "vm-deb", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    // Without `--`, as SmolVM's exec reads it: the command's options are its own, exec's
    // `--json` among them is exec's.
    let v = e.ok_json(&["sandbox", "exec", "vm-deb", "uname", "--json", "-s"]);
    assert_eq!(
        (
            v["data"]["exit_code"].as_i64(),
            v["data"]["stdout"].as_str()
        ),
        (Some(0), Some("Linux\n")),
        "{v}"
    );
    // A guest printing more than smolvm keeps (16 MiB a stream) is cut, not held in the
    // host's memory: the rest is read and counted, the command's exit code is its own,
    // and the report and a warning say so.
    let out = e.run(&[
        "sandbox",
        "exec",
        "vm-deb",
        "--json",
        "--timeout",
        "120",
        "--",
        "sh",
        "-c",
        "head -c 20000000 /dev/zero | tr '\\0' a; echo done >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v["data"]["stdout"].as_str().unwrap();
    assert_eq!(text.len(), 16 << 20);
    assert!(text.bytes().all(|b| b == b'a'));
    assert_eq!(v["data"]["stderr"], "done\n");
    assert_eq!(
        v["data"]["output_cut"],
        serde_json::json!({
            "kept_bytes": 16 << 20,
            "stdout_dropped_bytes": 20_000_000 - (16 << 20),
            "stderr_dropped_bytes": 0,
        })
    );
    assert!(
        stderr(&out).contains(
            "Warning: sandbox 'vm-deb': stdout cut at 16 MiB, 3222784 more bytes dropped"
        ),
        "{}",
        stderr(&out)
    );
    // An env file over that size is no file to merge into: `env set` refuses it and
    // leaves it as it was (a cut copy written back would have lost its end).
    let env_file = "/etc/profile.d/smolvm_env.sh";
    let big = format!("head -c 17000000 /dev/zero | tr '\\0' '#' > {env_file}");
    e.ok(&["sandbox", "exec", "vm-deb", "--", "sh", "-c", &big]);
    let out = e.run(&["sandbox", "env", "set", "vm-deb", "K=v"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out)
            .contains("Reading the environment file in sandbox 'vm-deb' printed more than 16 MiB"),
        "{}",
        stderr(&out)
    );
    let size = format!("wc -c < {env_file}; rm {env_file}");
    let out = e.run(&["sandbox", "exec", "vm-deb", "--", "sh", "-c", &size]);
    assert_eq!(stdout(&out).trim(), "17000000");
    // `sandbox info` asks the running guest for its OS and used memory, as SmolVM does.
    let vm = &e.ok_json(&["sandbox", "info", "vm-deb", "--json"])["data"]["vm"];
    assert_eq!(vm["os"], "Debian GNU/Linux 12 (bookworm)", "{vm}");
    assert!(vm["memory_used"].as_u64().is_some_and(|m| m > 0), "{vm}");
    // The forwarded port is the guest's sshd.
    assert!(e
        .first_line("127.0.0.1", port as u16)
        .starts_with("SSH-2.0-OpenSSH"));
    // A stop keeps what the guest wrote just before it, even when the guest ignores the
    // power button (this image's init does) and ext4 would not commit for minutes: the
    // guest's file systems are synced first. Also when its SSH login is slow (a loaded
    // host: here sshd's own `sshrc` waits 2 s), with the default `--timeout` of 3 s: the
    // sync has its own bound (a share of the 3 s lost the guest's last writes).
    let out = e.run(&[
        "sandbox",
        "exec",
        "vm-deb",
        "--",
        "sh",
        "-c",
        "mount -o remount,commit=600 / && echo kept > /root/written-before-stop && echo 'sleep 2' > /etc/ssh/sshrc",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = e.ok_json(&["sandbox", "stop", "vm-deb", "--json"]);
    assert_eq!(v["data"].get("warnings"), None, "{v}");
    // SmolVM's `sandbox ssh` starts a stopped sandbox first (and waits for its sshd).
    let out = e.run(&[
        "sandbox",
        "ssh",
        "vm-deb",
        "--",
        "sh",
        "-c",
        "cat /root/written-before-stop && rm /etc/ssh/sshrc",
    ]);
    assert_eq!(
        (out.status.code(), stdout(&out).trim()),
        (Some(0), "kept"),
        "{}\n{}",
        stderr(&out),
        std::fs::read_to_string(e.h.data.join("logs/smolvm.log")).unwrap_or_default()
    );
    // ... and resumes a paused one.
    e.ok_json(&["sandbox", "pause", "vm-deb", "--json"]);
    let out = e.run(&["sandbox", "ssh", "vm-deb", "--", "echo", "resumed"]);
    assert_eq!(
        (out.status.code(), stdout(&out).trim()),
        (Some(0), "resumed"),
        "{}",
        stderr(&out)
    );
    // An image whose sshd does not start is not ready: the start fails at once with
    // sshd's failure (not at its timeout, nor as a success with nothing to log in to).
    e.exec(
        "vm-deb",
        "echo 'NoSuchOption yes' > /etc/ssh/sshd_config.d/zz-broken.conf && sync",
    );
    e.ok_json(&["sandbox", "stop", "vm-deb", "--json"]);
    e.fails(
        &["sandbox", "start", "vm-deb", "--boot-timeout", "300"],
        1,
        "The guest's init failed: its SSH server did not start: SmolVM init failed: sshd exited 255",
    );
    e.ok_json(&["sandbox", "delete", "vm-deb", "--timeout", "3", "--json"]);
    assert_eq!(e.leftovers("vm-deb"), Vec::<String>::new());
}

#[test]
fn a_sigkilled_vm_is_reconciled_and_removed_by_cleanup() {
    require_root!();
    let (e, v) = busybox_started("vm-killed");
    let pid = v["data"]["pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    support::cleanup::wait_for(|| !pid_alive(pid), "the VM to die");
    // Before cleanup, every view of it says what SmolVM's list says: `error`, no pid.
    let info = e.ok_json(&["sandbox", "info", "vm-killed", "--json"]);
    let list = e.ok_json(&["sandbox", "list", "--all", "--json"]);
    let row = &list["data"]["vms"][0];
    assert_eq!(
        (&info["data"]["vm"]["status"], &info["data"]["vm"]["pid"]),
        (&row["status"], &row["pid"]),
        "{info}\n{list}"
    );
    assert_eq!(row["status"], "error", "{list}");
    assert!(row["pid"].is_null(), "{list}");
    let c = e.ok_json(&["cleanup", "--force", "--json"]);
    assert_eq!(c["data"]["reconciled_stale_ids"][0], "vm-killed", "{c}");
    assert_eq!(c["data"]["deleted"][0], "vm-killed", "{c}");
    assert_eq!(e.leftovers("vm-killed"), Vec::<String>::new());
}

/// A plain sandbox's VMM is exec'd as a uid and gid of its own (no account's, from
/// smolvm's VMM ids): every uid and gid its own, no capability, no-new-privileges, QEMU's
/// seccomp filter on. Two sandboxes' VMMs never share it: one a guest broke out of (played
/// here by a process running as its ids) can neither signal the other nor open its memory
/// or its environment — as it could when every VMM was the one `smolvm` user. Its control
/// socket is root's alone, `sandbox info` names its user, and the lifecycle (reach, stop,
/// start again, delete) works as before.
#[test]
fn the_vmm_of_a_plain_sandbox_runs_as_ids_of_its_own_under_seccomp() {
    require_root!();
    let (e, v) = busybox_started("vm-priv");
    let vmm_ids = 0x7E00_0000u32..0x7E01_0000;
    let pid = v["data"]["pid"].as_i64().unwrap();
    let uid = support::privileges(pid).uids[0];
    assert!(vmm_ids.contains(&uid), "{uid}");
    support::assert_unprivileged_vmm(pid, uid);
    assert_eq!(support::privileges(pid).gids, [uid; 4]);
    let cmd = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap())
        .replace('\0', " ");
    assert!(
        cmd.contains(
            " -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny "
        ),
        "{cmd}"
    );
    assert!(!cmd.contains("-runas"), "{cmd}");
    // The control socket: root's, 0600 — the VMM cannot replace it, nobody else can use it.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let sock = std::fs::symlink_metadata(e.h.sockets().join("qmp-vm-priv.sock")).unwrap();
    assert_eq!((sock.uid(), sock.permissions().mode() & 0o777), (0, 0o600));
    assert_eq!(
        e.first_line("172.16.0.2", 22),
        "SSH-2.0-smolvm-test-busybox"
    );
    let info = e.ok_json(&["sandbox", "info", "vm-priv", "--json"]);
    assert_eq!(info["data"]["vmm"]["user"], format!("uid {uid}"), "{info}");
    assert_eq!(info["data"]["vmm"]["uid"], uid, "{info}");
    assert_eq!(info["data"]["vmm"]["seccomp"], true, "{info}");
    let text = stdout(&e.run(&["sandbox", "info", "vm-priv"]));
    assert!(
        text.contains(&format!("VMM user: uid {uid} (its own, seccomp filter)")),
        "{text}"
    );

    // A second sandbox: ids of its own, and out of the first VMM's reach.
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let v2 = e.ok_json(&create_start(&kernel, &rootfs, "vm-other", &[]));
    let pid2 = v2["data"]["pid"].as_i64().unwrap();
    let uid2 = support::privileges(pid2).uids[0];
    assert!(vmm_ids.contains(&uid2) && uid2 != uid, "{uid} {uid2}");
    support::assert_unprivileged_vmm(pid2, uid2);
    let as_first_vmm = |script: &str| {
        use std::os::unix::process::CommandExt;
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .uid(uid)
            .gid(uid)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (what, script) in [
        ("signal it", format!("kill -0 {pid2}")),
        ("open its memory", format!("exec 3</proc/{pid2}/mem")),
        (
            "read its environment",
            format!("exec 3</proc/{pid2}/environ"),
        ),
    ] {
        let (code, err) = as_first_vmm(&script);
        assert_ne!(code, Some(0), "the first VMM's ids could {what}: {err}");
    }
    // The same checks pass on its own process: they test the isolation, not the shell.
    assert_eq!(
        as_first_vmm(&format!("kill -0 {pid} && exec 3</proc/{pid}/mem")).0,
        Some(0)
    );
    e.ok_json(&["sandbox", "delete", "vm-other", "--timeout", "3", "--json"]);

    e.ok_json(&["sandbox", "stop", "vm-priv", "--timeout", "3", "--json"]);
    assert!(!pid_alive(pid));
    // A TAP whose owner is the id this sandbox had (what a stopped or crashed Firecracker's
    // TAP keeps): whoever runs as that id may attach to it, so no VMM is given it again.
    // The stopped VMM is reparented and reaped by init: its id is free once it is gone.
    let runs_as = |id: u32| {
        std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            std::fs::read_to_string(p.path().join("status")).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.starts_with("Uid:") && l.split_whitespace().any(|w| w == id.to_string())
                })
            })
        })
    };
    let t = std::time::Instant::now();
    while runs_as(uid) && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!runs_as(uid), "the stopped VMM's id {uid} is still in use");
    // A TAP whose owner is that id (what a stopped or crashed Firecracker's TAP keeps):
    // whoever runs as it may attach to the TAP, so no VMM is given it again.
    e.ns.sh(&format!("ip tuntap add dev fcstale mode tap user {uid}"));
    let again = e.ok_json(&["sandbox", "start", "vm-priv", "--json"]);
    let pid = again["data"]["pid"].as_i64().unwrap();
    let uid_again = support::privileges(pid).uids[0];
    support::assert_unprivileged_vmm(pid, uid_again);
    assert!(vmm_ids.contains(&uid_again));
    assert_ne!(uid_again, uid, "a VMM was given the id a TAP is owned by");
    assert_eq!(
        e.first_line("172.16.0.2", 22),
        "SSH-2.0-smolvm-test-busybox"
    );
    e.ok_json(&["sandbox", "delete", "vm-priv", "--timeout", "3", "--json"]);
    assert_eq!(e.leftovers("vm-priv"), Vec::<String>::new());
}

/// FAKE hardware KVM (`SMOLVM_SYS_MODULE` names a folder holding `kvm_intel`; this PVM host
/// has none), so a `--backend firecracker` start runs its whole path with the real binary:
/// Firecracker is exec'd as ids of its own (every uid, no-new-privileges, no capability, its own
/// seccomp filters installed), its API socket is taken over by root, and it accepts the
/// whole configuration through what root handed it — the kernel and disk at
/// `/proc/self/fd/N`, the TAP it may attach to as its user, `/dev/kvm` — and starts the
/// guest (whose kernel then runs until PVM stops it). Whatever the end, nothing is left.
#[test]
fn firecracker_is_execd_unprivileged_with_what_root_handed_it_on_fake_hardware_kvm() {
    require_root!();
    let Some(bin) = std::env::var_os("SMOLVM_FIRECRACKER_BIN").map(PathBuf::from) else {
        eprintln!("SKIPPED (LOUDLY): SMOLVM_FIRECRACKER_BIN is not set; the real Firecracker binary was not exercised");
        return;
    };
    let (_, vmlinux) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let mut e = Env::with_presets(&[]);
    let modules = e.h.tmp.path().join("fake-sys-module");
    std::fs::create_dir_all(modules.join("kvm_intel")).unwrap();
    e.extra
        .push(("SMOLVM_SYS_MODULE".into(), modules.display().to_string()));
    e.extra
        .push(("SMOLVM_FIRECRACKER_BIN".into(), bin.display().to_string()));
    let args = create_args(
        vmlinux.to_str().unwrap(),
        rootfs.to_str().unwrap(),
        "vm-fc",
        "firecracker",
        &["--start", "--boot-timeout", "20", "--json"],
    );
    let mut child = e
        .command(&args, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Watch the VMM while it lives: its privileges, its threads' filters, its console.
    let socket = e.h.sockets().join("fc-vm-fc.sock");
    let log = e.h.data.join("vm-fc.log");
    let mut seen: Option<(i64, support::Privileges, Vec<u32>)> = None;
    let mut console = String::new();
    let mut socket_mode = None;
    // Who owned the disk, each change while it was there: the VMM's user while Firecracker
    // configured it (too short a moment to be sure to see), root again once it held it open.
    let disk = e.h.data.join("disks/vm-fc.ext4");
    let mut disk_owners: Vec<u32> = Vec::new();
    while child.try_wait().unwrap().is_none() {
        for p in smolvm::sys::process::vmm_processes(Some(&e.h.sockets())) {
            if p.vm_id == "vm-fc" {
                let pid = i64::from(p.pid);
                let threads: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
                    .map(|d| {
                        d.flatten()
                            .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
                            .filter_map(|s| {
                                s.lines()
                                    .find_map(|l| l.strip_prefix("Seccomp:"))
                                    .and_then(|v| v.trim().parse().ok())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if let Ok(pr) = std::panic::catch_unwind(|| support::privileges(pid)) {
                    seen = Some((pid, pr, threads));
                }
            }
        }
        if let Ok(m) = std::fs::symlink_metadata(&socket) {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            socket_mode = Some((m.uid(), m.permissions().mode() & 0o777));
        }
        if let Ok(m) = std::fs::symlink_metadata(&disk) {
            use std::os::unix::fs::MetadataExt;
            if disk_owners.last() != Some(&m.uid()) {
                disk_owners.push(m.uid());
            }
        }
        if let Ok(t) = std::fs::read_to_string(&log) {
            if t.len() > console.len() {
                console = t;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let (pid, pr, threads) = seen.expect("the Firecracker process was never seen");
    // Ids of its own, from smolvm's VMM ids.
    assert!((0x7E00_0000..0x7E01_0000).contains(&pr.uids[0]), "{pr:?}");
    assert_eq!(pr.uids, [pr.uids[0]; 4], "{pr:?}");
    assert!(
        pr.no_new_privs && pr.cap_eff == 0 && !pr.gids.contains(&0),
        "{pr:?}"
    );
    assert!(
        threads.contains(&2),
        "no thread of {pid} under a seccomp filter: {threads:?}"
    );
    assert_eq!(socket_mode, Some((0, 0o600)), "the API socket is root's");
    assert_eq!(
        disk_owners.last(),
        Some(&0),
        "the disk stayed the VMM's once configured: {disk_owners:?}"
    );
    let v = json(&out);
    eprintln!(
        "firecracker start: {v}\nconsole tail: {}",
        console
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The whole configuration was accepted (no API fault): kernel, disk, TAP all opened as
    // the unprivileged user, and the guest's kernel ran.
    assert!(
        !message.contains("API error") && !message.contains("Permission denied"),
        "{v}"
    );
    // The guest's kernel ran: it printed its banner, or (when PVM stopped it before its
    // console was registered, as happened on a loaded CI host) its vCPU exited on the port
    // I/O only guest code does — the PCI probe of early boot at 0xcf8.
    let vcpu_ran = console
        .lines()
        .any(|l| l.contains(":fc_vcpu ") && l.contains("IO ") && l.contains("@ 0xcf"));
    assert!(
        console.contains("Linux version") || vcpu_ran,
        "the guest kernel never ran:\n{console}\n{v}"
    );
    if v["ok"] == true {
        e.ok_json(&["sandbox", "delete", "vm-fc", "--timeout", "3", "--json"]);
    }
    assert_eq!(e.leftovers("vm-fc"), Vec::<String>::new());
    // It is gone with the sandbox.
    assert!(!disk.exists());
}

/// `sandbox create` boots what it creates, as SmolVM's does (a SmolVM script goes on with
/// `exec`); `--no-start` creates only, and asking for both is a usage error.
#[test]
fn a_create_boots_like_smolvms_unless_no_start() {
    require_root!();
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let (k, r) = (kernel.to_str().unwrap(), rootfs.to_str().unwrap());
    let e = Env::with_presets(&[]);
    let base = |id: &'static str| {
        vec![
            "sandbox",
            "create",
            "--kernel",
            k,
            "--rootfs",
            r,
            "--name",
            id,
            "--backend",
            "qemu",
        ]
    };
    let mut args = base("vm-boots");
    args.push("--json");
    let v = e.ok_json(&args);
    assert_eq!(v["command"], "sandbox.create", "{v}");
    assert_eq!(v["data"]["vm"]["status"], "running", "{v}");
    assert!(pid_alive(v["data"]["pid"].as_i64().unwrap()), "{v}");
    assert_eq!(
        e.first_line("172.16.0.2", 22),
        "SSH-2.0-smolvm-test-busybox"
    );

    let mut args = base("vm-only");
    args.extend(["--no-start", "--json"]);
    let v = e.ok_json(&args);
    assert_eq!(v["data"]["vm"]["status"], "created", "{v}");
    assert!(v["data"]["pid"].is_null(), "{v}");

    let mut args = base("vm-both");
    args.extend(["--start", "--no-start"]);
    let out = e.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );

    e.ok_json(&[
        "sandbox",
        "delete",
        "vm-boots",
        "vm-only",
        "--timeout",
        "3",
        "--json",
    ]);
    for id in ["vm-boots", "vm-only"] {
        assert_eq!(e.leftovers(id), Vec::<String>::new());
    }
}

/// A HOME without presets where sandbox `id` was created and started (`--start`) from the
/// test kernel and the busybox image: the HOME and the envelope.
fn busybox_started(id: &str) -> (Env, serde_json::Value) {
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let e = Env::with_presets(&[]);
    let v = e.ok_json(&create_start(&kernel, &rootfs, id, &[]));
    (e, v)
}

/// `sandbox create --kernel KERNEL --rootfs ROOTFS --name NAME --backend qemu --start
/// EXTRA... --json`.
fn create_start<'a>(
    kernel: &'a Path,
    rootfs: &'a Path,
    name: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let (kernel, rootfs) = (kernel.to_str().unwrap(), rootfs.to_str().unwrap());
    let mut args = create_args(kernel, rootfs, name, "qemu", &["--start"]);
    args.extend_from_slice(extra);
    args.push("--json");
    args
}

/// A failed start: exit 1, one JSON envelope naming the problem, nothing left.
fn assert_failed_cleanly(e: &Env, out: &std::process::Output, id: &str, message: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(out),
        stderr(out)
    );
    let v = json(out);
    assert_eq!(v["ok"], false);
    let m = support::error_message(&v);
    assert!(m.contains(message), "{m:?} lacks {message:?}");
    assert_eq!(e.leftovers(id), Vec::<String>::new());
    assert!(support::cleanup::row_ids(&e.h.data).is_empty());
}

#[test]
fn a_boot_that_never_gets_ready_times_out_and_rolls_back() {
    require_root!();
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::NeverReady);
    let e = Env::with_presets(&[]);
    let out = e.run(&create_start(
        &kernel,
        &rootfs,
        "vm-slow",
        &["--boot-timeout", "8"],
    ));
    assert_failed_cleanly(&e, &out, "vm-slow", "did not become ready within 8 s");
}

impl Sandboxes {
    /// Run `smolvm ARGS` and send it SIGINT (as a terminal's Ctrl-C) once VM `id`'s console
    /// log has the guest's first lines (its VMM spawned, the boot waiting for the ready
    /// line), checking that its VMM runs then; its output once it exits.
    fn interrupted_during_boot(&self, args: &[&str], id: &str) -> std::process::Output {
        let log = self.h.data.join(format!("{id}.log"));
        self.interrupted_when(args, || {
            let booting = std::fs::metadata(&log).map_or(0, |m| m.len()) >= 200;
            if booting {
                // The VMM it spawned, alive at the interrupt (found by the test).
                let vmms = smolvm::sys::process::vmm_processes(Some(&self.h.sockets()));
                assert!(vmms.iter().any(|v| v.vm_id == id), "no VMM of {id} running");
            }
            booting
        })
    }
}

/// Ctrl-C during `sandbox create --start`: the boot stops at once, the VMM it spawned is
/// killed and everything is rolled back as for a failed start (no process, TAP, nftables
/// element, row or file), and it says so with SmolVM's interrupt exit code, 130.
#[test]
fn sigint_during_a_start_cancels_it_and_rolls_back() {
    require_root!();
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::NeverReady);
    let e = Env::with_presets(&[]);
    let args = create_start(&kernel, &rootfs, "vm-int", &["--boot-timeout", "200"]);
    let out = e.interrupted_during_boot(&args, "vm-int");
    support::assert_exit(&args, &out, 130);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    let m = support::error_message(&v);
    assert!(
        m.contains("Start of sandbox 'vm-int' cancelled by SIGINT; rolled back"),
        "{m}"
    );
    assert_eq!(e.leftovers("vm-int"), Vec::<String>::new());
    assert!(support::cleanup::row_ids(&e.h.data).is_empty());

    // The same through a preset's `start` (SmolVM's `smolvm <preset> start`).
    let p = Env::with_presets(&[Row {
        preset: "claude-code",
        rootfs: &rootfs,
    }]);
    let args = [
        "claude-code",
        "start",
        "--name",
        "vm-int3",
        "--backend",
        "qemu",
        "--boot-timeout",
        "200",
        "--json",
    ];
    let out = p.interrupted_during_boot(&args, "vm-int3");
    support::assert_exit(&args, &out, 130);
    let m = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(m.contains("cancelled by SIGINT; rolled back"), "{m}");
    assert_eq!(p.leftovers("vm-int3"), Vec::<String>::new());
    assert!(support::cleanup::row_ids(&p.h.data).is_empty());
}

/// Ctrl-C during `sandbox start` of a created sandbox: the VMM it spawned is killed and
/// the row goes back to `created` (no pid, no socket), not `error`; it starts again later.
#[test]
fn sigint_during_sandbox_start_puts_the_row_back() {
    require_root!();
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::NeverReady);
    let e = Env::with_presets(&[]);
    let id = "vm-int2";
    e.ok(&create_args(
        kernel.to_str().unwrap(),
        rootfs.to_str().unwrap(),
        id,
        "qemu",
        &["--json"],
    ));
    let args = ["sandbox", "start", id, "--boot-timeout", "200", "--json"];
    let out = e.interrupted_during_boot(&args, id);
    support::assert_exit(&args, &out, 130);
    let m = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains(&format!(
            "Start of sandbox '{id}' cancelled by SIGINT; rolled back"
        )),
        "{m}"
    );
    assert_eq!(status_and_pid(&e, id), ("created".to_string(), None));
    assert!(
        !smolvm::sys::process::vmm_processes(Some(&e.h.sockets()))
            .iter()
            .any(|v| v.vm_id == id),
        "the VMM outlived the interrupt"
    );
    assert!(!e.h.sockets().join(format!("qmp-{id}.sock")).exists());
    e.ok(&["sandbox", "delete", id, "--json"]);
    assert_eq!(e.leftovers(id), Vec::<String>::new());
}

/// A terminal's Ctrl-C goes to smolvm's whole process group, so the `nft` a create runs
/// dies of it too. The create must still end as the interrupt it is (exit 130, "cancelled
/// by SIGINT; rolled back", nothing left), not as nft's failure (exit 1). The `nft` is the
/// real one, slowed by a wrapper on PATH so that the interrupt lands while it runs.
#[test]
fn a_terminal_ctrl_c_while_nft_runs_is_told_as_the_interrupt_with_a_slowed_nft() {
    require_root!();
    let (kernel, _) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::NeverReady);
    let e = Env::with_presets(&[]);
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v nft"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = e.h.tmp.path().join("slow-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mark = e.h.tmp.path().join("nft-applying");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = -f ] && [ ! -e '{m}' ]; then : > '{m}'; sleep 30; fi\nexec {} \"$@\"\n",
        real.trim(),
        m = mark.display(),
    );
    std::fs::write(bin.join("nft"), script).unwrap();
    std::fs::set_permissions(
        bin.join("nft"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let id = "vm-nftint";
    let (k, r) = (kernel.to_str().unwrap(), rootfs.to_str().unwrap());
    let args = create_args(k, r, id, "qemu", &["--json"]);
    let mut child = e.spawn_grouped(&args, &[("PATH", &path)]);
    wait_until(&mut child, || mark.exists());
    let t = std::time::Instant::now();
    let out = support::sandbox::interrupt(child, true);
    // Not after the slowed nft's 30 s: the nft of the Ctrl-C died of it.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    support::assert_exit(&args, &out, 130);
    let v = json(&out);
    assert_eq!(
        support::error_message(&v),
        format!("Start of sandbox '{id}' cancelled by SIGINT; rolled back")
    );
    assert_eq!(e.leftovers(id), Vec::<String>::new());
    assert!(support::cleanup::row_ids(&e.h.data).is_empty());

    // `sandbox start` of a created sandbox: its row goes back to `created`, as for any
    // interrupt of its start (not `error`, as for nft's failure).
    e.ok(&args);
    std::fs::remove_file(&mark).unwrap();
    let mut child = e.spawn_grouped(&["sandbox", "start", id, "--json"], &[("PATH", &path)]);
    wait_until(&mut child, || mark.exists());
    let out = support::sandbox::interrupt(child, true);
    support::assert_exit(&["sandbox", "start", id], &out, 130);
    assert_eq!(
        support::error_message(&json(&out)),
        format!("Start of sandbox '{id}' cancelled by SIGINT; rolled back")
    );
    assert_eq!(status_and_pid(&e, id), ("created".to_string(), None));
    e.ok(&["sandbox", "delete", id, "--json"]);
    assert_eq!(e.leftovers(id), Vec::<String>::new());
}

/// Sandbox `id`'s row: its status and pid.
fn status_and_pid(e: &Env, id: &str) -> (String, Option<i64>) {
    let c = rusqlite::Connection::open(e.h.data.join("smolvm.db")).unwrap();
    c.query_row("SELECT status, pid FROM vms WHERE id = ?1", [id], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

/// Wait (at most 120 s) until `ready`; `child` must not end first.
fn wait_until(child: &mut std::process::Child, ready: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !ready() {
        if child.try_wait().unwrap().is_some() {
            let mut out = String::new();
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
            panic!("it ended first: {out}");
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_vmm_that_exits_early_is_reported_and_rolled_back() {
    require_root!();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let e = Env::with_presets(&[]);
    let bogus = e.h.tmp.path().join("not-a-kernel");
    std::fs::write(&bogus, b"this is not a kernel").unwrap();
    let out = e.run(&create_start(&bogus, &rootfs, "vm-early", &[]));
    assert_failed_cleanly(
        &e,
        &out,
        "vm-early",
        "QEMU exited early while booting VM 'vm-early'",
    );
}

#[test]
fn missing_qemu_is_a_clear_error() {
    require_root!();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let mut e = Env::with_presets(&[]);
    e.extra.push((
        "SMOLVM_QEMU_BIN".into(),
        "/nonexistent/qemu-system-x86_64".into(),
    ));
    let out = e.run(&create_start(&rootfs, &rootfs, "vm-noqemu", &[]));
    assert_failed_cleanly(
        &e,
        &out,
        "vm-noqemu",
        "qemu-system binary is missing; Install QEMU with",
    );
}

#[test]
fn an_exhausted_ip_pool_is_a_clear_error_and_leaves_nothing() {
    require_root!();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let e = Env::with_presets(&[]);
    // Fill the pool the way SmolVM's rows would: one lease per address.
    std::fs::create_dir_all(&e.h.data).unwrap();
    let db = e.h.data.join("smolvm.db");
    smolvm::sys::state::StateStore::open(
        &db,
        smolvm::sys::state::OpenMode::ReadWrite,
        Duration::from_secs(5),
    )
    .unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("BEGIN").unwrap();
    for i in smolvm::sys::state::IP_POOL {
        c.execute(
            "INSERT INTO vms (id, status, config, created_at, updated_at) VALUES (?1, 'stopped', '{}', 'x', 'x')",
            [format!("busy{i}")],
        )
        .unwrap();
        c.execute(
            "INSERT INTO ip_leases (ip, vm_id, tap_device, created_at) VALUES (?1, ?2, ?3, 'x')",
            rusqlite::params![
                smolvm::sys::state::pool_ip(i).to_string(),
                format!("busy{i}"),
                format!("tap{i}")
            ],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    let out = e.run(&create_start(&rootfs, &rootfs, "vm-full", &[]));
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["error"]["message"], "No IP addresses available in pool");
    assert_eq!(e.leftovers("vm-full"), Vec::<String>::new());
    // The stand-in rows are not VMs: drop them rather than have cleanup tear down 65k.
    c.execute_batch("DELETE FROM ip_leases; DELETE FROM vms;")
        .unwrap();
}

#[test]
fn firecracker_backend_refuses_without_hardware_kvm() {
    require_root!();
    if this_host().hardware_kvm() {
        eprintln!("SKIPPED: this host has hardware KVM, so Firecracker is allowed");
        return;
    }
    let rootfs = images::busybox_rootfs(Init::Ready);
    let mut e = Env::with_presets(&[]);
    // A stand-in binary: it is never run, since the KVM check comes first.
    let fc = e.h.tmp.path().join("firecracker");
    std::fs::write(&fc, "#!/bin/sh\nexit 99\n").unwrap();
    Command::new("chmod").arg("755").arg(&fc).status().unwrap();
    e.extra
        .push(("SMOLVM_FIRECRACKER_BIN".into(), fc.display().to_string()));
    let r = rootfs.to_str().unwrap();
    let out = e.run(&create_args(
        r,
        r,
        "vm-fc",
        "firecracker",
        &["--start", "--json"],
    ));
    assert_failed_cleanly(&e, &out, "vm-fc", "Firecracker needs hardware KVM");
    let m = json(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains("PVM") || m.contains("/dev/kvm") || m.contains("kvm_intel"),
        "{m}"
    );
}

#[test]
fn firecracker_without_a_binary_gives_smolvms_install_hint() {
    require_root!();
    let e = Env::with_presets(&[]);
    let rootfs = e.h.tmp.path().join("r.ext4");
    std::fs::write(&rootfs, b"x").unwrap();
    let mut e = e;
    e.extra.push((
        "SMOLVM_FIRECRACKER_BIN".into(),
        "/nonexistent/firecracker".into(),
    ));
    let out = e.run(&[
        "sandbox",
        "create",
        "--kernel",
        rootfs.to_str().unwrap(),
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--backend",
        "firecracker",
        "--no-start",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json(&out)["error"]["message"],
        "Firecracker binary not found. Install it with: smolvm.host.manager.HostManager().install_firecracker()"
    );
    assert!(support::cleanup::row_ids(&e.h.data).is_empty());
}

/// The Firecracker driver against a real `firecracker` binary (`SMOLVM_FIRECRACKER_BIN`
/// or `PATH`): the API accepts the whole configuration and InstanceStart (on PVM the
/// guest then stops), faults come back verbatim, and the process stops through its API or
/// SIGKILL. CI has no binary: then this says so and skips.
#[test]
fn firecracker_driver_configures_starts_and_stops_a_real_binary() {
    require_root!();
    let Some(bin) = this_host().firecracker else {
        eprintln!("SKIPPED: no firecracker binary (set SMOLVM_FIRECRACKER_BIN or put it on PATH)");
        return;
    };
    let (_, vmlinux) = images::kernel();
    let rootfs = images::busybox_rootfs(Init::Ready);
    let ns = support::cleanup::NetNs::with_uplink();
    ns.nat_tap("tap9");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fc-vm-fc.sock");
    let log = dir.path().join("vm-fc.log");
    let mut child = ns.firecracker(&bin, &socket, Some(&log));
    let rt = tokio::runtime::Runtime::new().unwrap();
    use smolvm::sys::vmm::firecracker as fc;
    rt.block_on(async {
        assert!(fc::wait_for_socket(&socket, Duration::from_secs(10)).await);
        // A fault is surfaced verbatim.
        let bad = serde_json::json!({"action_type": "NoSuchAction"});
        let err = fc::call(&socket, "PUT", "/actions", Some(&bad), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, fc::ApiError::Fault { status: 400, .. }), "{err}");
        let cfg = fc::FcConfig {
            kernel: vmlinux.clone(),
            boot_args: "console=ttyS0 reboot=k panic=1 pci=off init=/init ip=172.16.0.9::172.16.0.1:255.255.255.0::eth0:off".into(),
            vcpus: 1,
            mem_mib: 128,
            rootfs: rootfs.clone(),
            tap: "tap9".into(),
            mac: "AA:FC:00:00:00:09".into(),
        };
        fc::configure_and_start(&socket, &cfg, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{e}\nlog: {}", std::fs::read_to_string(&log).unwrap_or_default()));
        // Stop: SendCtrlAltDel if the VM still answers, then SIGKILL.
        let _ = fc::send_ctrl_alt_del(&socket, Duration::from_secs(2)).await;
    });
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let st = child.wait().unwrap();
    assert!(!st.success() || st.code().is_some());
    let mut s = String::new();
    let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut s));
    eprintln!("firecracker log tail: {}", s.lines().last().unwrap_or(""));
}

/// The dashboard's `x` on a start task while its guest boots: the App's cancel key gives
/// the cancel effect, the worker sets the task's token, and the start stops at the boot's
/// wait, kills the VMM it spawned and rolls back (no process, TAP, nftables element, row
/// or file); the task ends Cancelled saying so. The App and a real worker run in this
/// test binary started again inside the test's network namespace (`ip netns exec`, which
/// also gives it that namespace's `/sys`).
#[test]
fn x_on_a_dashboard_start_stops_the_boot_and_rolls_back() {
    const NAME: &str = "x_on_a_dashboard_start_stops_the_boot_and_rolls_back";
    if std::env::var_os("SMOLVM_TEST_IN_NETNS").is_some() {
        return dashboard_start_cancelled_here();
    }
    require_root!();
    let rootfs = images::busybox_rootfs(Init::NeverReady);
    let e = Env::with_presets(&[Row {
        preset: "claude-code",
        rootfs: &rootfs,
    }]);
    let out = Command::new("ip")
        .args(["netns", "exec", &e.ns.name])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env_clear()
        .envs(e.h.env_vars())
        .env("SMOLVM_MANIFEST", e.manifest.clone().unwrap())
        .env("SMOLVM_TEST_IN_NETNS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success() && stdout(&out).contains("1 passed"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(e.leftovers("vm-dash-x"), Vec::<String>::new());
    assert!(support::cleanup::row_ids(&e.h.data).is_empty());
}

/// The inside of [`x_on_a_dashboard_start_stops_the_boot_and_rolls_back`].
fn dashboard_start_cancelled_here() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use smolvm::tui::app::{Effect, Input, TaskState};
    use support::tui::RealWorker;
    let env = smolvm::sys::env::Env::from_process();
    let id = "vm-dash-x";
    let data = std::path::PathBuf::from(std::env::var_os("SMOLVM_DATA_DIR").unwrap());
    let sockets = std::path::PathBuf::from(std::env::var_os("SMOLVM_SOCKET_DIR").unwrap());
    let log = data.join(format!("{id}.log"));
    let socket_dir = sockets.clone();
    let env = &env;
    let task = RealWorker::block_on(env, |mut w| async move {
        let sockets = socket_dir;
        let key = |c| Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        let mut a = smolvm::tui::new_app(env, false);
        a.update(Input::Resize(160, 48));
        let task = a
            .data
            .add_task(smolvm::core::job::JobKind::Start, "start".into());
        w.run(Effect::RunStart {
            task,
            spec: support::tui::preset_start("claude-code", id, 256),
        });
        // Until the guest is booting (its console has lines, its VMM runs).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while std::fs::metadata(&log).map_or(0, |m| m.len()) < 200 {
            while let Ok(m) = w.rx.try_recv() {
                a.update(Input::Msg(m));
            }
            let t = &a.data.tasks[0];
            assert_eq!(t.state, TaskState::Running, "{t:?}");
            assert!(tokio::time::Instant::now() < deadline, "never booted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(smolvm::sys::process::vmm_processes(Some(&sockets))
            .iter()
            .any(|v| v.vm_id == id));
        a.update(key('4'));
        let fx = a.update(key('x'));
        assert_eq!(fx, vec![Effect::Cancel { task }]);
        for f in fx {
            w.run(f);
        }
        // The start ends within a minute of `x`.
        w.finish_first_task(&mut a, 60).await;
        a.data.tasks[0].clone()
    });
    assert_eq!(task.state, TaskState::Cancelled, "{task:?}");
    assert!(
        task.summary
            .contains(&format!("Start of sandbox '{id}' cancelled; rolled back")),
        "{task:?}"
    );
    assert!(!smolvm::sys::process::vmm_processes(Some(&sockets))
        .iter()
        .any(|v| v.vm_id == id));
}
