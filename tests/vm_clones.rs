//! `sandbox clone`: running sandboxes branched from one `--for-clone` snapshot, end to end
//! on the Debian test image under QEMU (TCG here), in a network namespace of its own.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::sandbox::Sandboxes;

fn ssh_up(e: &Sandboxes, ip: &str) -> bool {
    e.first_line(ip, 22).starts_with("SSH-")
}

/// What a VM may leave (TAPs of any VM included: only once all are gone).
fn leftovers(e: &Sandboxes, id: &str) -> Vec<String> {
    let mut left = support::cleanup::vm_leftovers(&e.h, &e.ns, id);
    left.extend(own_leftovers(e, id));
    left
}

/// What one VM may leave beside others still running: its row, files and process.
fn own_leftovers(e: &Sandboxes, id: &str) -> Vec<String> {
    support::cleanup::vm_leftovers(&e.h, &e.ns, id)
        .into_iter()
        .filter(|l| !l.starts_with("link "))
        .chain(
            [e.h.sockets().join(format!("agent-{id}.sock"))]
                .into_iter()
                .filter(|p| p.exists())
                .map(|p| format!("file {}", p.display())),
        )
        .collect()
}

fn random_hex(e: &Sandboxes, id: &str) -> String {
    e.exec(id, "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'")
}

/// The template keeps running; two clones come up on addresses of their own with the
/// template's processes and `/dev/shm`, draw different random bytes, keep their writes to
/// themselves, survive their snapshot's deletion, and go like any sandbox.
#[test]
fn clones_of_a_running_sandbox_have_its_processes_and_their_own_addresses() {
    require_root!();
    let tpl = "vm-tpl";
    let (e, v) = Sandboxes::debian_codex_started(tpl);
    let tpl_ip = v["data"]["ip"].as_str().unwrap().to_string();
    let pid = e.exec(
        tpl,
        // The test image mounts no /dev/shm: a tmpfs there, as a distribution has.
        "mkdir -p /dev/shm && { mountpoint -q /dev/shm || mount -t tmpfs shm /dev/shm; } && \
         echo shm-marker > /dev/shm/marker && { nohup sleep 100000 >/dev/null 2>&1 & echo $!; }",
    );

    // A snapshot not made for cloning is refused, with the way to make one.
    e.ok_json(&[
        "sandbox",
        "snapshot",
        "create",
        tpl,
        "--snapshot-id",
        "snap-plain",
        "--resume-source",
        "--json",
    ]);
    e.fails(
        &["sandbox", "clone", "snap-plain"],
        1,
        "was not made for cloning",
    );
    e.fails(
        &[
            "sandbox",
            "clone",
            "snap-plain",
            "--name",
            "x",
            "--count",
            "2",
        ],
        2,
        "one clone",
    );

    let s = e.ok_json(&[
        "sandbox",
        "snapshot",
        "create",
        tpl,
        "--snapshot-id",
        "snap-tpl",
        "--for-clone",
        "--resume-source",
        "--json",
    ]);
    assert_eq!(s["data"]["source_status"], "running");
    assert!(ssh_up(&e, &tpl_ip));
    // The agent that re-addresses clones is smolvm's compiled one (no program started per
    // request), not the shell fallback.
    assert_eq!(
        e.exec(tpl, "cat /proc/$(cat /run/smolvm-clone-agent.pid)/comm"),
        "smolvm-clone-ag"
    );

    let t = std::time::Instant::now();
    let c = e.ok_json(&[
        "sandbox", "clone", "snap-tpl", "--count", "2", "--prefix", "c", "--json",
    ]);
    eprintln!("2 clones SSH-ready: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(c["command"], "sandbox.clone");
    assert_eq!(c["data"]["count"], 2);
    let clones = c["data"]["clones"].as_array().unwrap().clone();
    let names: Vec<&str> = clones.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["c-1", "c-2"]);
    // They were brought up at once: the run took less than their own times added up (one
    // after the other it takes more).
    let each: f64 = clones
        .iter()
        .map(|x| x["elapsed_ms"].as_f64().unwrap())
        .sum();
    let all = c["data"]["elapsed_ms"].as_f64().unwrap();
    assert!(
        all < each,
        "the run {all} ms, the clones {each} ms together"
    );
    let ips: Vec<String> = clones
        .iter()
        .map(|x| x["ip_address"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(ips[0], ips[1]);
    assert!(!ips.contains(&tpl_ip), "{ips:?} vs {tpl_ip}");
    for (n, ip) in names.iter().zip(&ips) {
        assert_eq!(
            clones.iter().find(|x| x["name"] == *n).unwrap()["status"],
            "running"
        );
        assert!(ssh_up(&e, ip), "{n} at {ip}");
        // The guest itself took the new address (exec goes over SSH to the row's address).
        let addrs = e.exec(n, "ip -4 -o addr show dev eth0");
        assert!(addrs.contains(&format!("{ip}/24")), "{n}: {addrs}");
        assert!(!addrs.contains(&format!("{tpl_ip}/")), "{n}: {addrs}");
        assert_eq!(e.exec(n, &format!("kill -0 {pid} && echo alive")), "alive");
        assert_eq!(e.exec(n, "cat /dev/shm/marker"), "shm-marker");
    }
    assert!(ssh_up(&e, &tpl_ip), "the template still answers");

    // The clones map one sealed in-memory copy of the snapshot's RAM, never `ram.bin`
    // (QEMU 7.2 opens a RAM file read-write): through the descriptor a clone's VMM holds,
    // not even root can change what its sibling maps.
    let ram_bin =
        std::path::Path::new(s["data"]["snapshot"]["path"].as_str().unwrap()).join("ram.bin");
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let m = std::fs::metadata(&ram_bin).unwrap();
        assert_eq!((m.uid(), m.permissions().mode() & 0o777), (0, 0o600));
    }
    let mut inodes = Vec::new();
    for x in &clones {
        let pid = x["pid"].as_i64().unwrap();
        let fds: Vec<(PathBuf, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|f| {
                let to = std::fs::read_link(f.path()).ok()?;
                Some((f.path(), to.to_string_lossy().into_owned()))
            })
            .collect();
        assert!(
            !fds.iter().any(|(_, to)| to.ends_with("ram.bin")),
            "{pid}: {fds:?}"
        );
        let (fd, _) = fds
            .iter()
            .find(|(_, to)| to.starts_with("/memfd:smolvm-ram"))
            .unwrap_or_else(|| panic!("{pid} maps no sealed RAM: {fds:?}"));
        let mut f = std::fs::OpenOptions::new().write(true).open(fd).unwrap();
        use std::io::Write;
        let err = f.write_all(b"poison").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(1), "{err}"); // EPERM: sealed
        assert!(f.set_len(0).is_err(), "shrunk");
        use std::os::unix::fs::MetadataExt;
        inodes.push(f.metadata().unwrap().ino());
    }
    assert_eq!(inodes[0], inodes[1], "the run's clones share one copy");

    // Their random number generators were reseeded apart.
    let (r1, r2, r0) = (
        random_hex(&e, "c-1"),
        random_hex(&e, "c-2"),
        random_hex(&e, tpl),
    );
    assert_eq!(r1.len(), 64);
    assert!(r1 != r2 && r1 != r0 && r2 != r0, "{r1} {r2} {r0}");

    // A write in one clone is its own.
    e.exec(
        "c-1",
        "echo c1 > /root/only-c1; echo c1 > /dev/shm/only-c1; sync",
    );
    for other in ["c-2", tpl] {
        assert_eq!(
            e.exec(
                other,
                "cat /root/only-c1 /dev/shm/only-c1 2>/dev/null || echo none"
            ),
            "none",
            "{other}"
        );
    }

    // Deleting the snapshot under running clones is harmless: they keep running.
    e.ok_json(&["sandbox", "snapshot", "delete", "snap-tpl", "--json"]);
    std::thread::sleep(Duration::from_secs(1));
    for (n, ip) in names.iter().zip(&ips) {
        assert!(ssh_up(&e, ip), "{n} after its snapshot went");
    }
    e.fails(&["sandbox", "clone", "snap-tpl"], 1, "not found");

    // Deleting a clone leaves the template and the other clone.
    e.ok_json(&["sandbox", "delete", "c-1", "--timeout", "3", "--json"]);
    assert_eq!(own_leftovers(&e, "c-1"), Vec::<String>::new());
    assert!(ssh_up(&e, &tpl_ip));
    assert_eq!(e.exec("c-2", "cat /dev/shm/marker"), "shm-marker");

    // cleanup removes clones like any sandbox.
    e.ok_json(&["cleanup", "--all", "--force", "--json"]);
    for id in ["c-2", tpl] {
        assert_eq!(leftovers(&e, id), Vec::<String>::new(), "{id}");
    }
    e.ok_json(&["sandbox", "snapshot", "delete", "snap-plain", "--json"]);
}

/// `sandbox branch`: a running sandbox into clones in one step (the dashboard's "branch"
/// runs the same core function): the source runs on, each clone has its state and an
/// address of its own, and the template snapshot is kept and listed.
#[test]
fn a_running_sandbox_branches_into_clones_in_one_step() {
    require_root!();
    let src = "vm-src";
    let (e, v) = Sandboxes::debian_codex_started(src);
    let src_ip = v["data"]["ip"].as_str().unwrap().to_string();
    e.exec(src, "echo branch-marker > /root/marker; sync");

    e.fails(&["sandbox", "branch", src, "--count", "0"], 2, "--count");
    e.fails(&["sandbox", "branch", "vm-nope"], 1, "not found");
    e.fails(&["--readonly", "sandbox", "branch", src], 1, "Read-only");

    let b = e.ok_json(&["sandbox", "branch", src, "--count", "2", "--json"]);
    assert_eq!(b["command"], "sandbox.branch");
    assert_eq!(b["data"]["sandbox"], src);
    assert_eq!(b["data"]["source_status"], "running");
    assert_eq!(b["data"]["count"], 2);
    let snap = b["data"]["snapshot_id"].as_str().unwrap().to_string();
    let clones = b["data"]["clones"].as_array().unwrap().clone();
    let names: Vec<&str> = clones.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["vm-src-b-1", "vm-src-b-2"]);
    let mut ips = vec![src_ip.clone()];
    for c in &clones {
        let (n, ip) = (
            c["name"].as_str().unwrap(),
            c["ip_address"].as_str().unwrap(),
        );
        assert!(!ips.contains(&ip.to_string()), "{n}: {ip} in {ips:?}");
        ips.push(ip.to_string());
        assert!(ssh_up(&e, ip), "{n} at {ip}");
        assert_eq!(e.exec(n, "cat /root/marker"), "branch-marker");
    }
    assert!(ssh_up(&e, &src_ip), "the source runs on");
    let l = e.ok_json(&["sandbox", "snapshot", "list", "--json"]);
    assert!(l.to_string().contains(&snap), "{l}");

    // Clones of one run come up at once: each progress line names its clone.
    let out = e.ok(&["sandbox", "clone", &snap, "--count", "2", "--prefix", "t"]);
    let err = support::stderr(&out);
    let phases: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("...") || l.contains(" done in "))
        .collect();
    assert!(phases.len() >= 4, "{err}");
    for l in &phases {
        assert!(
            l.starts_with("t-1: ") || l.starts_with("t-2: "),
            "{l:?} in {err}"
        );
    }
    assert!(phases.iter().any(|l| l.starts_with("t-2: ")), "{err}");

    e.ok_json(&["cleanup", "--all", "--force", "--json"]);
    for id in ["vm-src-b-1", "vm-src-b-2", "t-1", "t-2", src] {
        assert_eq!(leftovers(&e, id), Vec::<String>::new(), "{id}");
    }
    e.ok_json(&["sandbox", "snapshot", "delete", &snap, "--json"]);
}

/// A command killed midway (SIGKILL: no handler of smolvm's runs) leaves none of its
/// helper processes behind: `sandbox exec`'s ssh (it ran on with the command's output
/// pipe held open, so a CI job's pipe never closed), and a `--for-clone` snapshot's QEMU
/// writing the RAM file (it waited forever on its control socket, holding the
/// snapshot's files and a TAP).
#[test]
fn a_command_killed_midway_leaves_no_helper_process() {
    require_root!();
    let id = "vm-held";
    let (e, _) = Sandboxes::debian_codex_started(id);
    // Killed while the command runs in the guest: its ssh goes with it.
    let mut exec = e
        .command(&["sandbox", "exec", id, "--", "sleep", "4321"], &[])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while support::processes_with("sleep 4321").is_empty() {
        assert!(exec.try_wait().unwrap().is_none(), "exec ended first");
        assert!(t0.elapsed() < Duration::from_secs(120), "no ssh seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    exec.kill().unwrap();
    exec.wait().unwrap();
    gone_within_20s("sleep 4321", "the exec's ssh");
    // Killed while the snapshot's helper QEMU writes the RAM file: the QEMU goes.
    let needle = "ram-snap-killed.sock";
    let mut snap = e
        .command(
            &[
                "sandbox",
                "snapshot",
                "create",
                id,
                "--snapshot-id",
                "snap-killed",
                "--for-clone",
                "--resume-source",
            ],
            &[],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while support::processes_with(needle).is_empty() {
        assert!(
            snap.try_wait().unwrap().is_none(),
            "the snapshot ended before its helper QEMU was seen"
        );
        assert!(t0.elapsed() < Duration::from_secs(300), "no helper QEMU");
        std::thread::sleep(Duration::from_millis(20));
    }
    snap.kill().unwrap();
    snap.wait().unwrap();
    gone_within_20s(needle, "the helper QEMU");
}

/// Within 20 s no process's command line holds `needle` (what `what` is); else they are
/// killed and the test fails.
fn gone_within_20s(needle: &str, what: &str) {
    let t0 = std::time::Instant::now();
    while !support::processes_with(needle).is_empty() {
        if t0.elapsed() > Duration::from_secs(20) {
            for pid in support::processes_with(needle) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
            panic!("{what} outlived the smolvm that started it");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
