//! `smolvm doctor` on this machine (PVM, QEMU, no Firecracker, Docker CLI without a
//! daemon) and with every tool hidden from PATH.

mod support;

use support::{json, stdout, Home};

fn has_tool(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn statuses(v: &serde_json::Value) -> Vec<(String, String)> {
    v["data"]["checks"]
        .as_array()
        .expect("data.checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn status_of<'a>(s: &'a [(String, String)], name: &str) -> &'a str {
    &s.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no check {name}"))
        .1
}

/// Field `field` (`fix`, `message`) of check `name` in `doctor --json`'s envelope `v`.
fn field_of<'a>(v: &'a serde_json::Value, name: &str, field: &str) -> &'a str {
    v["data"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}"))[field]
        .as_str()
        .unwrap()
}

fn fix_of<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    field_of(v, name, "fix")
}

/// `doctor --backend vz`: one `backend` line, the failure (the auto choice's OK line
/// contradicted it).
#[test]
fn an_unavailable_backend_has_one_backend_line() {
    let h = Home::new();
    for b in ["vz", "libkrun"] {
        let out = h
            .smolvm()
            .args(["doctor", "--backend", b, "--json"])
            .output()
            .unwrap();
        let v = json(&out);
        let backend: Vec<&serde_json::Value> = v["data"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "backend")
            .collect();
        assert_eq!(backend.len(), 1, "{b}: {backend:?}");
        assert_eq!(backend[0]["status"], "fail", "{b}");
    }
}

fn message_of<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    field_of(v, name, "message")
}

#[test]
fn json_shape_lists_every_check_with_a_fix() {
    let h = Home::new();
    let out = h.run(&["doctor", "--json"]);
    let v = json(&out);
    assert_eq!(v["command"], "doctor");
    assert_eq!(
        v["exit_code"].as_i64().unwrap(),
        i64::from(out.status.code().unwrap())
    );
    let checks = v["data"]["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "kvm",
            "qemu",
            "qemu-seccomp",
            "firecracker",
            "fc-seccomp",
            "backend",
            "nft",
            "ip",
            "ip-forward",
            "network-guard",
            "privileges",
            "vmm-user",
            "docker",
            "debootstrap",
            "disk",
            "state-db",
            "ports",
            "settings"
        ]
    );
    for c in checks {
        let obj = c.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort();
        // SmolVM's keys (`detail`; `fix` null when there is none), and our `message`.
        assert_eq!(keys, ["detail", "fix", "message", "name", "status"]);
        assert_eq!(c["detail"], c["message"], "{c}");
        let st = c["status"].as_str().unwrap();
        assert!(["pass", "warn", "fail"].contains(&st), "{c}");
        if st == "pass" {
            assert!(c["fix"].is_null(), "{c}");
        } else {
            assert!(!c["fix"].as_str().unwrap().is_empty(), "no fix: {c}");
        }
    }
}

/// This machine: QEMU present, no Firecracker, the Docker CLI without a daemon → warnings
/// only, exit 0; `--strict` turns the warnings into exit 1.
#[test]
fn this_machine_passes_with_warnings_and_strict_fails() {
    if !support::is_root() || !has_tool("qemu-system-x86_64") || !has_tool("nft") {
        eprintln!("SKIPPED: needs root, QEMU and nft (scripts/install-deps.sh)");
        return;
    }
    let h = Home::new();
    let out = h.run(&["doctor", "--json"]);
    let v = json(&out);
    let s = statuses(&v);
    assert_eq!(status_of(&s, "qemu"), "pass");
    assert_eq!(status_of(&s, "nft"), "pass");
    assert_eq!(status_of(&s, "ip"), "pass");
    assert_eq!(status_of(&s, "privileges"), "pass");
    assert_eq!(status_of(&s, "state-db"), "pass");
    assert_eq!(status_of(&s, "backend"), "pass");
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        assert_eq!(
            message_of(&v, "backend"),
            "QEMU: no hardware KVM (PVM host); TCG: no hardware KVM (PVM host)"
        );
        assert_eq!(v["data"]["runtime"]["accelerator"], "tcg");
        assert_eq!(status_of(&s, "kvm"), "warn");
        let kvm = &v["data"]["checks"][0]["message"];
        assert!(kvm.as_str().unwrap().contains("PVM"), "{kvm}");
    }
    if !has_tool("firecracker") {
        assert_eq!(status_of(&s, "firecracker"), "warn");
    }
    let docker_daemon = std::path::Path::new("/var/run/docker.sock").exists();
    if has_tool("docker") && !docker_daemon {
        assert_eq!(status_of(&s, "docker"), "warn");
        let msg = message_of(&v, "docker");
        assert!(
            msg.starts_with("Docker is installed, but SmolVM could not reach the Docker daemon."),
            "{msg}"
        );
    }
    let any_fail = s.iter().any(|(_, st)| st == "fail");
    let any_warn = s.iter().any(|(_, st)| st == "warn");
    assert!(!any_fail, "{v:#}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["ok"], true);

    // Human form: one line per check starting with its verdict, and the result line.
    let out = h.smolvm().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.starts_with("OK    qemu")), "{text}");
    if any_warn {
        assert!(text.lines().any(|l| l.starts_with("WARN  ")), "{text}");
        assert!(text.contains("fix: "), "{text}");
        let strict = h.run(&["doctor", "--strict"]);
        assert_eq!(strict.status.code(), Some(1));
        let sj = h.run(&["doctor", "--strict", "--json"]);
        assert_eq!(sj.status.code(), Some(1));
        let sv = json(&sj);
        assert_eq!(sv["ok"], false);
        // SmolVM's: the verdict is in `summary`, `error` stays null.
        assert_eq!(sv["error"], serde_json::Value::Null);
        assert_eq!(sv["data"]["summary"]["ok"], false);
        assert_eq!(sv["data"]["summary"]["strict"], true);
        assert!(sv["data"]["checks"].is_array());
    }
}

/// `doctor` says whom the VMMs run as (never root) and how each VMM is confined: QEMU's
/// `-sandbox` works here; a Firecracker built without its seccomp policies (the shared test
/// binary, a glibc build whose filter allows everything) is a warning with a fix, and the
/// probe leaves no process or folder behind.
#[test]
fn doctor_names_the_vmms_user_and_warns_of_a_firecracker_without_seccomp_policies() {
    if !support::is_root() || !has_tool("qemu-system-x86_64") {
        eprintln!("SKIPPED: needs root and QEMU");
        return;
    }
    let h = Home::new();
    let mut c = h.smolvm();
    let fc = std::env::var_os("SMOLVM_FIRECRACKER_BIN").map(std::path::PathBuf::from);
    if let Some(f) = &fc {
        c.env("SMOLVM_FIRECRACKER_BIN", f);
    } else {
        eprintln!("SKIPPED (LOUDLY): SMOLVM_FIRECRACKER_BIN is not set; the Firecracker probe was not exercised");
    }
    let probes_before = probe_dirs();
    // What a doctor killed midway left: its probe's folder (holding the socket), which the
    // next probe removes; a folder of that name of a user not the probe's (a VMM's) stays.
    let tag = format!("{:012x}", std::process::id());
    let left = format!("/tmp/.smolvm-fc-probe-2147483646-{tag}");
    let theirs = format!("/tmp/.smolvm-fc-probe-2147483645-{tag}");
    // The probe runs as smolvm's service user, else nobody: the user its folder is given to.
    let probe = smolvm::sys::users::lookup_service_user()
        .ok()
        .flatten()
        .or_else(|| smolvm::sys::users::lookup("nobody"))
        .map_or(0, |u| u.uid);
    for (d, owner) in [(&left, probe), (&theirs, 0x7E00_0005)] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(format!("{d}/fc.sock"), b"").unwrap();
        std::os::unix::fs::chown(d, Some(owner), Some(owner)).unwrap();
    }
    let out = c.args(["doctor", "--json"]).output().unwrap();
    let theirs_kept = std::path::Path::new(&theirs).join("fc.sock").exists();
    let left_gone = !std::path::Path::new(&left).exists();
    for d in [&left, &theirs] {
        let _ = std::fs::remove_dir_all(d);
    }
    let v = json(&out);
    let s = statuses(&v);
    assert_eq!(status_of(&s, "vmm-user"), "pass", "{v:#}");
    let m = message_of(&v, "vmm-user");
    assert!(
        m.contains("VMMs run each as a uid and gid of their own (2113929216…2113994751")
            && m.contains("never root"),
        "{m}"
    );
    assert_eq!(status_of(&s, "qemu-seccomp"), "pass", "{v:#}");
    assert!(message_of(&v, "qemu-seccomp").contains("-sandbox on,obsolete=deny"));
    if let Some(f) = &fc {
        assert_eq!(status_of(&s, "fc-seccomp"), "warn", "{v:#}");
        let m = message_of(&v, "fc-seccomp");
        assert!(
            m.contains(&f.display().to_string()) && m.contains("no seccomp policy"),
            "{m}"
        );
        assert!(m.contains("allows every system call"), "{m}");
        assert_eq!(probe_dirs(), probes_before, "the probe's folder is removed");
        assert!(
            left_gone,
            "a killed probe's folder is swept by the next probe"
        );
        assert!(theirs_kept, "another user's folder of that name is left");
        let fc_name = f.file_name().unwrap().to_string_lossy().into_owned();
        let left = smolvm::sys::process::all_pids()
            .into_iter()
            .filter_map(smolvm::sys::process::info)
            .filter(|i| !i.is_zombie() && i.cmdline.iter().any(|a| a.contains(".smolvm-fc-probe-")))
            .count();
        assert_eq!(left, 0, "a {fc_name} probe is left running");
    }
    let text = stdout(&h.smolvm().arg("doctor").output().unwrap());
    assert!(
        text.lines().any(|l| l.starts_with("OK    vmm-user")),
        "{text}"
    );
}

/// In a user namespace that does not map smolvm's VMM ids (an unprivileged container's,
/// played here by `unshare --user --map-root-user`, which maps root alone), `doctor` warns
/// that the VMMs would share the system user, and says where they would not.
#[test]
fn doctor_warns_where_the_vmm_ids_are_not_mapped() {
    if !support::is_root() || !has_tool("unshare") {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let h = Home::new();
    let mut c = std::process::Command::new("unshare");
    c.args(["--user", "--map-root-user"])
        .arg(assert_cmd::cargo::cargo_bin("smolvm"))
        .args(["doctor", "--json"])
        .env_clear()
        .envs(h.env_vars());
    let v = json(&c.output().unwrap());
    assert_eq!(status_of(&statuses(&v), "vmm-user"), "warn", "{v:#}");
    let m = message_of(&v, "vmm-user");
    assert!(
        m.starts_with("this user namespace does not map smolvm's VMM ids (2113929216…2113994751): VMMs share the system user smolvm"),
        "{m}"
    );
    assert!(fix_of(&v, "vmm-user").contains("uid and gid maps include them"));
}

fn probe_dirs() -> Vec<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".smolvm-fc-probe-"))
        .collect()
}

/// Every tool hidden from PATH: QEMU, nft and ip fail; Docker and debootstrap warn.
#[test]
fn tools_hidden_from_path_fail() {
    let h = Home::new();
    let empty = h.tmp.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = h.run_env(&["doctor", "--json"], "PATH", &empty);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    let s = statuses(&v);
    for name in ["qemu", "backend", "nft", "ip"] {
        assert_eq!(status_of(&s, name), "fail", "{name}: {v:#}");
    }
    // What `--backend auto` would run, and why that start fails now.
    let rt = &v["data"]["runtime"];
    assert_eq!(rt["backend"], "qemu", "{rt}");
    assert!(
        rt["error"]
            .as_str()
            .unwrap()
            .starts_with("qemu-system binary is missing"),
        "{rt}"
    );
    // One fix for one failure: the checks and the start's own error give the same line.
    let fix = fix_of(&v, "qemu");
    assert_eq!(fix_of(&v, "qemu-seccomp"), fix);
    assert!(
        rt["error"].as_str().unwrap().ends_with(fix),
        "{rt} vs {fix}"
    );
    assert_eq!(status_of(&s, "docker"), "warn");
    assert_eq!(status_of(&s, "debootstrap"), "warn");
    let docker = message_of(&v, "docker");
    assert!(docker.starts_with("Docker is not installed"), "{docker}");

    let out = h
        .smolvm()
        .env("PATH", &empty)
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.starts_with("FAIL  qemu")), "{text}");
    assert!(text.contains("Result: FAIL"), "{text}");
}

/// A corrupt state database is a failure with a fix.
#[test]
fn corrupt_state_db_fails() {
    let h = Home::new();
    std::fs::create_dir_all(&h.data).unwrap();
    std::fs::write(h.data.join("smolvm.db"), vec![0x42u8; 8192]).unwrap();
    let out = h.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let s = statuses(&v);
    assert_eq!(status_of(&s, "state-db"), "fail");
    // `sandbox list` refuses it with the same fix doctor gives.
    let list = h
        .smolvm()
        .args(["sandbox", "list", "--json"])
        .output()
        .unwrap();
    let fix = fix_of(&v, "state-db");
    assert_eq!(json(&list)["error"]["recovery"], fix, "{}", fix);
    assert!(fix.contains("smolvm cleanup --force"), "{fix}");
    // Read-only: the file is left as it was.
    assert_eq!(
        std::fs::read(h.data.join("smolvm.db")).unwrap(),
        vec![0x42u8; 8192]
    );
}
