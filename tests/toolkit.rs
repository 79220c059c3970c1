//! The sandbox toolkit agents script against (#14): `sandbox file`, `sandbox env`,
//! `sandbox port`, and SmolVM 0.0.36's flags on every sandbox verb. One real Debian VM
//! (QEMU, TCG here) in its own network namespace serves every live check; the rest needs
//! no VM.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::sandbox::Sandboxes;
use support::{json, stderr, stdout, Home};

impl Sandboxes {
    /// What a login shell in the guest prints.
    fn login_sh(&self, id: &str, script: &str) -> String {
        self.exec_in(id, ["bash", "-lc"], script)
    }

    /// An HTTP GET of 127.0.0.1:port from inside the namespace: the body, or None.
    fn http_get(&self, port: u16) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns.name, "timeout", "10", "bash", "-c"])
            .arg(format!(
                "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
            ))
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The `smolvm:<id>:local:` rules left in the namespace's ruleset.
    fn forward_rules(&self, id: &str) -> Vec<String> {
        self.ns
            .sh("nft list ruleset 2>/dev/null || true")
            .lines()
            .filter(|l| l.contains(&format!("smolvm:{id}:local:")))
            .map(str::to_string)
            .collect()
    }
}

fn tree(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    fn walk(root: &Path, p: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(p).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let m = e.metadata().unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let data = if m.is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            out.push((rel, m.permissions().mode() & 0o7777, data));
            if m.is_dir() {
                walk(root, &e.path(), out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn files_env_ports_and_smolvms_flags_on_a_live_debian_vm() {
    require_root!();
    let id = "vm-kit";
    let (vm, start) = Sandboxes::debian_codex_started(id);
    let ssh_port = start["data"]["ssh_host_port"].as_u64().unwrap() as u16;
    let tmp = vm.h.tmp.path().join("work");
    std::fs::create_dir_all(&tmp).unwrap();

    // --- Files: 20 MB byte-identical both ways, mode kept, parents created.
    let big = tmp.join("big.bin");
    let mut data = vec![0u8; 20 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&big, &data).unwrap();
    chmod(&big, 0o640);
    let up = vm.ok_json(&[
        "sandbox",
        "file",
        "upload",
        id,
        big.to_str().unwrap(),
        "/root/in/deep/big.bin",
        "--json",
    ]);
    assert_eq!(up["command"], "sandbox.file.upload");
    assert_eq!(up["data"]["bytes"], 20 << 20);
    assert_eq!(
        vm.login_sh(id, "stat -c %a /root/in/deep/big.bin").trim(),
        "640"
    );
    let back = tmp.join("out/back.bin");
    vm.ok(&[
        "sandbox",
        "file",
        "download",
        id,
        "/root/in/deep/big.bin",
        back.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "20 MB round trip differs"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&back).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
    // A directory round-trips (contents, sub-directories, modes).
    let d = tmp.join("proj");
    std::fs::create_dir_all(d.join("src/inner")).unwrap();
    std::fs::write(d.join("README"), b"hello\n").unwrap();
    std::fs::write(d.join("src/run.sh"), b"#!/bin/sh\necho run\n").unwrap();
    chmod(&d.join("src/run.sh"), 0o755);
    std::fs::write(d.join("src/inner/it's here.txt"), b"quoted name").unwrap();
    vm.ok(&[
        "sandbox",
        "file",
        "upload",
        id,
        d.to_str().unwrap(),
        "/root/proj",
    ]);
    assert_eq!(vm.login_sh(id, "/root/proj/src/run.sh").trim(), "run");
    let d2 = tmp.join("proj-back");
    vm.ok(&[
        "sandbox",
        "file",
        "download",
        id,
        "/root/proj",
        d2.to_str().unwrap(),
    ]);
    assert_eq!(tree(&d), tree(&d2));
    // Bad paths: each a clear error, exit 1, nothing written.
    vm.fails(
        &[
            "sandbox",
            "file",
            "upload",
            id,
            big.to_str().unwrap(),
            "/root",
        ],
        1,
        "Guest path is a directory: /root",
    );
    vm.fails(
        &[
            "sandbox",
            "file",
            "upload",
            id,
            tmp.join("nope").to_str().unwrap(),
            "/root/x",
        ],
        1,
        "Local path not found",
    );
    vm.fails(
        &[
            "sandbox",
            "file",
            "upload",
            id,
            big.to_str().unwrap(),
            "/root/none/x.bin",
            "--no-create-dirs",
        ],
        1,
        "Guest directory does not exist: /root/none",
    );
    assert_eq!(
        vm.login_sh(
            id,
            "ls -A /root/none 2>&1 >/dev/null | wc -l; ls -A /root | grep -c smolvm-upload || true"
        )
        .split_whitespace()
        .collect::<Vec<_>>(),
        ["1", "0"]
    );
    vm.fails(
        &[
            "sandbox",
            "file",
            "download",
            id,
            "/root/missing",
            tmp.join("m").to_str().unwrap(),
        ],
        1,
        "Guest path not found: /root/missing",
    );
    vm.fails(
        &[
            "sandbox",
            "file",
            "download",
            id,
            "/root/in/deep/big.bin",
            tmp.to_str().unwrap(),
        ],
        1,
        "Local path is a directory",
    );
    assert!(!tmp.join("m").exists());
    assert!(std::fs::read_dir(&tmp).unwrap().flatten().all(|e| !e
        .file_name()
        .to_string_lossy()
        .starts_with(".smolvm-download")));

    // --- Env: what a login shell sees, values with spaces and quotes.
    // A line smolvm did not write (a PATH extension, a comment) survives `env set` and
    // `env unset` byte for byte, and still works.
    let hand = "#!/bin/sh\n# SmolVM managed environment variables\n\n# my tools\nexport PATH=\"$PATH:/opt/tool/bin\"\n";
    vm.ok(&[
        "sandbox",
        "exec",
        id,
        "--",
        "sh",
        "-c",
        &format!("printf %s '{hand}' > /etc/profile.d/smolvm_env.sh"),
    ]);
    let tricky = r#"it's "quoted" $HOME `x` \ end"#;
    vm.ok(&[
        "sandbox",
        "env",
        "set",
        id,
        "GREETING=hello world",
        &format!("TRICKY={tricky}"),
        "EMPTY=",
    ]);
    assert_eq!(
        vm.login_sh(
            id,
            "printf '%s|%s|%s' \"$GREETING\" \"$TRICKY\" \"${EMPTY-unset}\""
        ),
        format!("hello world|{tricky}|")
    );
    assert_eq!(
        stdout(&vm.ok(&[
            "sandbox",
            "exec",
            id,
            "--",
            "sh",
            "-lc",
            "printf %s \"$GREETING\""
        ])),
        "hello world"
    );
    let file = vm.login_sh(id, "cat /etc/profile.d/smolvm_env.sh");
    assert_eq!(
        file,
        format!(
            "#!/bin/sh\n# SmolVM managed environment variables\n\n# my tools\nexport EMPTY=''\nexport GREETING='hello world'\nexport PATH=\"$PATH:/opt/tool/bin\"\nexport TRICKY='{}'\n",
            tricky.replace('\'', "'\"'\"'")
        )
    );
    let path = vm.login_sh(id, "printf %s \"$PATH\"");
    assert!(
        path.ends_with(":/opt/tool/bin") && path.contains("/usr/bin"),
        "{path}"
    );
    let listed = vm.ok(&["sandbox", "env", "list", id]);
    assert_eq!(stdout(&listed), "EMPTY\nGREETING\nPATH\nTRICKY\n");
    let shown = vm.ok_json(&["sandbox", "env", "list", id, "--show-values", "--json"]);
    assert_eq!(shown["data"]["variables"]["TRICKY"], tricky);
    assert_eq!(shown["data"]["masked"], false);
    let hidden = vm.ok_json(&["sandbox", "env", "list", id, "--json"]);
    assert!(!hidden.to_string().contains("hello world"), "{hidden}");
    // SmolVM's masked listing: every key, `****` for its value.
    assert_eq!(hidden["data"]["masked"], true);
    assert_eq!(hidden["data"]["variables"]["GREETING"], "****");
    // --show-values on a terminal: a value's control bytes are shown visibly (a guest's
    // env file must not write the operator's clipboard); --raw, pipes and --json keep them.
    let hostile = "\x1b]52;c;ZXZpbA==\x07x\rfake";
    vm.ok(&["sandbox", "env", "set", id, &format!("HOSTILE={hostile}")]);
    let list = ["sandbox", "env", "list", id, "--show-values"];
    let (status, out) = support::pty::run_on_pty(vm.command(&list, &[]), Duration::from_secs(120));
    assert!(status.success(), "{}", String::from_utf8_lossy(&out));
    let shown = String::from_utf8_lossy(&out);
    assert!(
        shown.contains("HOSTILE=\\x1b]52;c;ZXZpbA==\\x07x\\x0dfake\n"),
        "{shown:?}"
    );
    assert!(!out.contains(&0x1b) && !out.contains(&0x07), "{shown:?}");
    let raw = [&list[..], &["--raw"]].concat();
    let (_, out) = support::pty::run_on_pty(vm.command(&raw, &[]), Duration::from_secs(120));
    assert!(
        String::from_utf8_lossy(&out).contains(&format!("HOSTILE={hostile}\n")),
        "{out:?}"
    );
    assert!(stdout(&vm.ok(&list)).contains(&format!("HOSTILE={hostile}\n")));
    let shown = vm.ok_json(&["sandbox", "env", "list", id, "--show-values", "--json"]);
    assert_eq!(shown["data"]["variables"]["HOSTILE"], hostile);
    vm.ok(&["sandbox", "env", "unset", id, "HOSTILE"]);
    vm.ok(&["sandbox", "env", "unset", id, "GREETING"]);
    assert_eq!(vm.login_sh(id, "printf %s \"${GREETING-gone}\""), "gone");
    let after = vm.login_sh(id, "cat /etc/profile.d/smolvm_env.sh");
    assert!(
        after.contains("\n# my tools\nexport EMPTY=''\nexport PATH=\"$PATH:/opt/tool/bin\"\n"),
        "{after}"
    );
    let before = vm.login_sh(id, "cat /etc/profile.d/smolvm_env.sh");
    // SmolVM's `invalid_input`: exit 1.
    vm.fails(
        &["sandbox", "env", "set", id, "1BAD=x"],
        1,
        "Invalid environment variable name",
    );
    vm.fails(
        &["sandbox", "env", "unset", id, "BAD-KEY"],
        1,
        "Invalid environment variable name",
    );
    assert_eq!(vm.login_sh(id, "cat /etc/profile.d/smolvm_env.sh"), before);
    assert!(before.starts_with("#!/bin/sh\n# SmolVM managed environment variables\n\n"));

    // --- Ports: the guest's HTTP server on 127.0.0.1:HOST, then gone.
    vm.ok(&[
        "sandbox",
        "file",
        "upload",
        id,
        "/usr/bin/busybox",
        "/usr/local/bin/busybox",
    ]);
    vm.ok(&[
        "sandbox",
        "exec",
        id,
        "--",
        "sh",
        "-c",
        "mkdir -p /srv && echo hello-from-guest > /srv/index.html && sync && busybox httpd -p 8000 -h /srv",
    ]);
    let exposed = vm.ok_json(&["sandbox", "port", "expose", id, "18080:8000", "--json"]);
    assert_eq!(exposed["command"], "sandbox.port.expose");
    assert_eq!(exposed["data"]["host_port"], 18080);
    let body = vm.http_get(18080).unwrap_or_default();
    assert!(body.contains("hello-from-guest"), "{body}");
    let listed = vm.ok_json(&["sandbox", "port", "list", id, "--json"]);
    assert_eq!(listed["data"]["count"], 1);
    assert_eq!(listed["data"]["forwards"][0]["guest_port"], 8000);
    // HOST omitted: the guest port itself.
    let same = vm.ok_json(&["sandbox", "port", "expose", id, "8000", "--json"]);
    assert_eq!(same["data"]["host_port"], 8000);
    assert!(vm
        .http_get(8000)
        .unwrap_or_default()
        .contains("hello-from-guest"));
    // Ports in use: another forward, the SSH port, a listening socket — nothing changes.
    let rules = vm.forward_rules(id);
    vm.fails(
        &["sandbox", "port", "expose", id, "18080:9000"],
        1,
        "Host port 18080 is already forwarded",
    );
    vm.fails(
        &["sandbox", "port", "expose", id, &format!("{ssh_port}:8000")],
        1,
        "SSH port",
    );
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &vm.ns.name, "python3", "-c"])
        .arg("import socket,time; s=socket.socket(); s.bind(('127.0.0.1',18082)); s.listen(); time.sleep(120)")
        .spawn()
        .unwrap();
    support::cleanup::wait_for(
        || vm.ns.sh("ss -ltn").contains("127.0.0.1:18082"),
        "the listener",
    );
    vm.fails(
        &["sandbox", "port", "expose", id, "18082:8000"],
        1,
        "Host port 18082 is in use on 127.0.0.1",
    );
    let _ = listener.kill();
    let _ = listener.wait();
    assert_eq!(vm.forward_rules(id), rules);
    vm.fails(
        &["sandbox", "port", "close", id, "8000"],
        1,
        "HOST_PORT:SANDBOX_PORT",
    );
    vm.fails(
        &["sandbox", "port", "expose", id, "70000"],
        1,
        "Invalid sandbox port",
    );
    // Close: it stops answering, its rules go.
    vm.ok(&["sandbox", "port", "close", id, "18080:8000"]);
    assert_eq!(vm.http_get(18080), None);
    vm.fails(
        &["sandbox", "port", "close", id, "18080:8000"],
        1,
        "no port forward 18080:8000",
    );

    // --- SmolVM 0.0.36 command lines: none is a usage error; JSON carries its keys.
    let key = vm.h.home.join(".smolvm/keys/id_ed25519");
    let key = key.to_str().unwrap();
    let h_back = tmp.join("h-back");
    let h_back = h_back.to_str().unwrap();
    let lines: Vec<Vec<&str>> = vec![
        vec!["sandbox", "list", "--all", "--json"],
        vec!["sandbox", "list", "--status", "running", "--json"],
        vec!["sandbox", "list", "--preset", "codex", "--json"],
        vec![
            "sandbox",
            "exec",
            id,
            "--timeout",
            "60",
            "--json",
            "--",
            "echo",
            "hi",
        ],
        vec![
            "sandbox",
            "exec",
            id,
            "--start",
            "--boot-timeout",
            "30",
            "--",
            "true",
        ],
        vec!["sandbox", "logs", id, "--tail", "5", "--json"],
        vec!["sandbox", "logs", id, "--tail", "3"],
        vec![
            "sandbox",
            "ssh",
            id,
            "--ssh-key",
            key,
            "--ssh-user",
            "root",
            "--boot-timeout",
            "30",
            "--",
            "true",
        ],
        vec![
            "sandbox",
            "env",
            "list",
            id,
            "--ssh-user",
            "root",
            "--ssh-key",
            key,
            "--comm-channel",
            "ssh",
            "--json",
        ],
        vec![
            "sandbox",
            "env",
            "set",
            id,
            "A=1",
            "--comm-channel",
            "ssh",
            "--json",
        ],
        vec![
            "sandbox",
            "env",
            "unset",
            id,
            "A",
            "--ssh-user",
            "root",
            "--json",
        ],
        vec![
            "sandbox",
            "port",
            "list",
            id,
            "--ssh-user",
            "root",
            "--comm-channel",
            "ssh",
            "--json",
        ],
        vec![
            "sandbox",
            "file",
            "upload",
            id,
            "/etc/hostname",
            "/tmp/h",
            "--no-create-dirs",
            "--ssh-user",
            "root",
            "--json",
        ],
        vec![
            "sandbox",
            "file",
            "download",
            id,
            "/tmp/h",
            h_back,
            "--comm-channel",
            "ssh",
            "--json",
        ],
        vec!["sandbox", "delete", id, "--dry-run", "--json"],
        vec!["sandbox", "delete", "--all", "--json"],
        vec!["doctor", "--backend", "qemu", "--json"],
        vec!["sandbox", "info", id, "--json"],
    ];
    for l in &lines {
        let out = vm.run(l);
        assert_ne!(out.status.code(), Some(2), "{l:?}: {}", stderr(&out));
        if l.contains(&"--json") {
            let v = json(&out);
            for k in ["ok", "command", "exit_code", "data", "error"] {
                assert!(v.get(k).is_some(), "{l:?}: no {k} in {v}");
            }
        }
    }
    let rows = vm.ok_json(&["sandbox", "list", "--all", "--json"]);
    let row = &rows["data"]["vms"][0];
    for k in [
        "name",
        "preset",
        "status",
        "pid",
        "ip_address",
        "ssh_port",
        "warnings",
    ] {
        assert!(row.get(k).is_some(), "no {k} in {row}");
    }
    assert_eq!(row["name"], id);
    assert_eq!(row["status"], "running");
    let none = vm.ok_json(&["sandbox", "list", "--status", "stopped", "--json"]);
    assert_eq!(none["data"]["count"], 0);
    let out = vm.run(&[
        "sandbox",
        "exec",
        id,
        "--json",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let ex = json(&out);
    assert_eq!(ex["command"], "sandbox.exec");
    assert_eq!(ex["data"]["exit_code"], 3);
    assert_eq!(ex["data"]["stdout"], "out\n");
    assert_eq!(ex["data"]["stderr"], "err\n");
    // SmolVM's: a non-zero exit fails the envelope too.
    assert_eq!(ex["ok"], false);
    assert_eq!(ex["error"]["code"], "command_failed");
    // SmolVM's timeout: its run raises, exit 1 with a runtime_error.
    let slow = vm.run(&["sandbox", "exec", id, "--timeout", "2", "--", "sleep", "30"]);
    assert_eq!(slow.status.code(), Some(1), "{}", stderr(&slow));
    assert!(
        stderr(&slow).contains("timed out after 2s"),
        "{}",
        stderr(&slow)
    );
    let slow = vm.run(&[
        "sandbox",
        "exec",
        id,
        "--timeout",
        "2",
        "--json",
        "--",
        "sleep",
        "30",
    ]);
    assert_eq!(slow.status.code(), Some(1));
    let slow = json(&slow);
    assert_eq!(
        (slow["ok"].clone(), slow["exit_code"].clone()),
        (false.into(), 1.into())
    );
    assert_eq!(slow["error"]["code"], "runtime_error", "{slow}");
    assert!(support::error_message(&slow).contains("timed out after 2s"));
    let dry = vm.ok_json(&["sandbox", "delete", id, "--dry-run", "--json"]);
    assert_eq!(dry["data"]["dry_run"], true);
    let refused = json(&vm.run(&["sandbox", "delete", "--all", "--json"]));
    assert_eq!(refused["error"]["code"], "refused");
    assert_eq!(refused["command"], "sandbox.delete");
    // SmolVM's words, message and recovery.
    assert_eq!(
        refused["error"]["message"],
        "Refusing to delete sandboxes without --force in --json mode. Run 'smolvm sandbox delete --all --force --json' to confirm."
    );
    assert_eq!(
        refused["error"]["recovery"],
        "Run 'smolvm sandbox delete --all --force --json' to confirm."
    );
    assert_eq!(
        vm.ok_json(&["sandbox", "info", id, "--json"])["data"]["status"],
        "running"
    );

    // --- A guest whose root made `tar` never read (the stream stalls once the pipes and
    // the connection are full) holds no upload. A SIGINT stops it like the dashboard's
    // cancel, exit 130, both of its children (ssh and the host's tar) stopped and reaped,
    // none left holding the guest: sent to smolvm alone (a supervisor's kill), and to its
    // whole process group (a terminal's Ctrl-C, which reaches ssh and tar too: their end
    // is the interrupt's, not "cannot reach").
    vm.login_sh(
        id,
        "printf '#!/bin/sh\\nexec sleep 100000\\n' > /usr/local/bin/tar && chmod +x /usr/local/bin/tar",
    );
    let guest_file = "/root/never-read.bin";
    let args = [
        "sandbox",
        "file",
        "upload",
        id,
        big.to_str().unwrap(),
        guest_file,
        "--json",
    ];
    for group in [false, true] {
        let up = vm.spawn_grouped(&args, &[]);
        let pid = up.id() as i32;
        support::cleanup::wait_for(
            || support::children_of(pid).len() >= 2,
            "the upload's ssh and tar",
        );
        std::thread::sleep(Duration::from_secs(3));
        let children = support::children_of(pid);
        let out = support::sandbox::interrupt(up, group);
        assert_eq!(
            out.status.code(),
            Some(130),
            "group {group}: {}",
            stderr(&out)
        );
        assert_eq!(
            support::error_message(&json(&out)),
            format!("Upload to sandbox '{id}' interrupted by SIGINT; {guest_file} was not written")
        );
        let left: Vec<i32> = children
            .into_iter()
            .filter(|c| support::alive(*c as u32))
            .collect();
        assert_eq!(
            left,
            Vec::<i32>::new(),
            "group {group}: children outlived it"
        );
    }
    vm.login_sh(id, "rm /usr/local/bin/tar");

    // --- Stop removes the forwards; a stopped VM is a clear error, `exec --start` boots it.
    vm.ok(&["sandbox", "port", "expose", id, "18081:8000"]);
    assert!(!vm.forward_rules(id).is_empty());
    vm.ok(&["sandbox", "stop", id, "--timeout", "5"]);
    assert_eq!(vm.forward_rules(id), Vec::<String>::new());
    assert_eq!(vm.http_get(18081), None);
    vm.fails(&["sandbox", "exec", id, "--", "true"], 1, "is not running");
    let v = json(&vm.run(&["sandbox", "exec", id, "--json", "--", "true"]));
    assert_eq!(v["error"]["code"], "not_running", "{v}");
    vm.fails(
        &["sandbox", "file", "upload", id, "/etc/hostname", "/tmp/h"],
        1,
        "is not running",
    );
    vm.fails(&["sandbox", "env", "list", id], 1, "is not running");
    vm.fails(
        &["sandbox", "port", "expose", id, "18081:8000"],
        1,
        "is not running",
    );
    vm.ok(&[
        "sandbox",
        "exec",
        id,
        "--start",
        "--boot-timeout",
        "300",
        "--",
        "true",
    ]);
    // The env file lives on the VM's disk: still there after the reboot.
    assert_eq!(vm.login_sh(id, "printf %s \"$TRICKY\""), tricky);
    // --- Delete removes them too.
    vm.ok(&[
        "sandbox",
        "exec",
        id,
        "--",
        "sh",
        "-c",
        "busybox httpd -p 8000 -h /srv",
    ]);
    vm.ok(&["sandbox", "port", "expose", id, "18083:8000"]);
    let body = vm.http_get(18083).unwrap_or_default();
    if !body.contains("hello-from-guest") {
        let ip = vm.ok_json(&["sandbox", "info", id, "--json"])["data"]["ip"].clone();
        panic!(
            "after a restart: {body:?}\nnft: {}\nlinks: {}\nsysctl: {}\nguest: {}\ndirect: {}",
            vm.ns.sh("nft list ruleset"),
            vm.ns.sh("ip addr; ip route"),
            vm.ns.sh("sysctl -a 2>/dev/null | grep route_localnet || true"),
            vm.login_sh(id, "cat /proc/net/tcp; ip addr; ls -la /srv /usr/local/bin"),
            vm.ns.sh(&format!(
                "timeout 5 bash -c 'exec 3<>/dev/tcp/{}/8000 && printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3 && cat <&3' 2>&1 || true",
                ip.as_str().unwrap_or_default()
            )),
        );
    }
    vm.ok(&["sandbox", "delete", id, "--timeout", "3"]);
    assert_eq!(vm.forward_rules(id), Vec::<String>::new());
    assert_eq!(vm.http_get(18083), None);
    let ruleset = vm.ns.sh("nft list ruleset");
    assert!(!ruleset.contains(":local:"), "{ruleset}");
    // A deleted VM: no forwards (SmolVM's exit 0), its other verbs not found.
    let listed = vm.ok_json(&["sandbox", "port", "list", id, "--json"]);
    assert_eq!(listed["data"]["forwards"], serde_json::json!([]));
    vm.fails(
        &["sandbox", "port", "expose", id, "8000"],
        1,
        &format!("VM '{id}' not found"),
    );
}

/// Without a VM: the new verbs' bad input is a clear error with the documented exit code,
/// and `delete`'s target rules are SmolVM's.
#[test]
fn toolkit_errors_without_a_vm() {
    let h = Home::new();
    let run = |args: &[&str]| h.smolvm().args(args).output().unwrap();
    for args in [
        vec![
            "sandbox",
            "file",
            "upload",
            "vm-none",
            "/etc/hostname",
            "/tmp/x",
        ],
        vec![
            "sandbox",
            "file",
            "download",
            "vm-none",
            "/etc/hostname",
            "/tmp/x",
        ],
        vec!["sandbox", "env", "list", "vm-none"],
        vec!["sandbox", "env", "set", "vm-none", "A=1"],
        vec!["sandbox", "port", "expose", "vm-none", "8080"],
        vec!["sandbox", "exec", "vm-none", "--start", "--", "true"],
        vec!["sandbox", "shell", "vm-none"],
        vec!["sandbox", "ssh", "vm-none", "--ssh-user", "root"],
        vec!["sandbox", "logs", "vm-none", "--tail", "2"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("VM 'vm-none' not found"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // SmolVM lists no forwards of a sandbox it does not know.
    let out = run(&["sandbox", "port", "list", "vm-none", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["data"]["forwards"], serde_json::json!([]));
    // Values the command checks (SmolVM's `invalid_input`, exit 1) come before anything
    // is looked up.
    for (args, needle) in [
        (
            vec!["sandbox", "env", "set", "vm-none", "1BAD=x"],
            "Invalid environment variable name",
        ),
        (
            vec!["sandbox", "env", "set", "vm-none", "NOEQUALS"],
            "Expected KEY=VALUE",
        ),
        (
            vec!["sandbox", "port", "expose", "vm-none", "0"],
            "Invalid sandbox port",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        let out = run(&[&args[..], &["--json"]].concat());
        assert_eq!(json(&out)["error"]["code"], "invalid_input", "{args:?}");
    }
    // Usage errors (exit 2) come before anything is looked up.
    for (args, needle) in [
        (
            vec!["sandbox", "ssh", "vm-none", "--ssh-user", "Bad User"],
            "Invalid SSH user",
        ),
        (
            vec!["sandbox", "delete", "vm-a", "--all"],
            "Choose one target",
        ),
        (vec!["sandbox", "delete"], "Pass a target"),
        (
            vec!["sandbox", "list", "--status", "weird"],
            "invalid value",
        ),
        (
            vec!["sandbox", "exec", "vm-none", "--timeout", "0", "--", "true"],
            "invalid value",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    // --json without --force is refused before anything is read, as SmolVM does: with
    // nothing to delete too. Without --json, --dry-run never asks.
    let out = run(&["sandbox", "delete", "--all", "--json"]);
    let v = json(&out);
    assert_eq!(v["command"], "sandbox.delete");
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["error"]["code"], "refused", "{v}");
    let out = run(&["sandbox", "delete", "--all", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["sandbox", "delete", "--all", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["sandbox", "delete", "vm-none", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["data"]["failed"][0]["vm_id"], "vm-none");
    let out = run(&["doctor", "--backend", "libkrun", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["data"]["checks"][0]["status"], "fail");
    let out = run(&[
        "sandbox", "list", "--preset", "claude", "--status", "paused", "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["data"]["count"], 0);
}
