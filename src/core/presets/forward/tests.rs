use super::*;

#[test]
fn a_json_config_keeps_only_the_listed_keys() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("claude.json");
    std::fs::write(
        &p,
        r#"{"oauthAccount":{"emailAddress":"a@b"},"userID":"u1",
            "projects":{"/home/me/secret-project":{"history":["rm -rf x"]}},
            "cachedChangelog":"long"}"#,
    )
    .unwrap();
    let keep = ["oauthAccount".to_string(), "userID".to_string()];
    let out: serde_json::Value = serde_json::from_slice(&minimised(&p, &keep).unwrap()).unwrap();
    assert_eq!(
        out,
        serde_json::json!({"oauthAccount":{"emailAddress":"a@b"},"userID":"u1"})
    );
    std::fs::write(&p, "[1, 2]").unwrap();
    assert!(minimised(&p, &keep)
        .unwrap_err()
        .contains("not a JSON object"));
    std::fs::write(&p, "{oops").unwrap();
    assert!(minimised(&p, &keep).unwrap_err().contains("not valid JSON"));
    // A link is not followed.
    let link = t.path().join("link.json");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    assert!(minimised(&link, &keep).is_err());
}

#[test]
fn the_claude_presets_minimise_claude_json() {
    for name in ["claude-code", "pi"] {
        let r = super::super::Registry::builtin();
        let p = r.find(name).unwrap();
        let c = p
            .configs
            .iter()
            .find(|c| c.host == "~/.claude.json")
            .unwrap();
        assert!(c.json_keep.iter().any(|k| k == "oauthAccount"), "{name}");
        assert!(!c.json_keep.iter().any(|k| k == "projects"), "{name}");
    }
}

#[test]
fn unpack_scripts() {
    let s = unpack_script("/root/.claude/.credentials.json", 0o600, false, "-");
    assert!(s.contains("mkdir -p /root/.claude;"), "{s}");
    assert!(s.contains("chmod 600 \"$t/x\"; rm -rf /root/.claude/.credentials.json; mv \"$t/x\" /root/.claude/.credentials.json"), "{s}");
    let d = unpack_script("/root/.codex", 0o700, true, "-");
    assert!(d.contains("chmod -R go-rwx \"$t/x\"; chmod 700"), "{d}");
}

/// A "guest" that is this host's `sh` running the script (paths in a temporary
/// directory instead of `/root` and `/etc`): the real script and protocol, without SSH.
fn local_sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn cfg(guest: &Path, mode: u32) -> super::super::HostConfig {
    super::super::HostConfig {
        host: String::new(),
        guest: guest.display().to_string(),
        mode,
        json_keep: Vec::new(),
    }
}

/// Every path under `dir` with its mode and (for files) contents, relative.
fn tree(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let body = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.push((rel, m.permissions().mode() & 0o7777, body));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

const HAND_ENV: &str =
    "#!/bin/sh\n# SmolVM managed environment variables\n\n# mine\nexport B=old\nalias ll='ls -l'\n";

/// One session delivers what one session per config and two for the env file did: the
/// same files, modes and env file (hand edits kept), no temporary left, and no value on
/// the script's command line.
#[test]
fn one_session_local_sh_gives_the_files_and_env_file_the_per_file_sessions_gave() {
    let t = tempfile::tempdir().unwrap();
    let host = t.path().join("host");
    std::fs::create_dir_all(host.join(".tool/sub")).unwrap();
    std::fs::write(host.join(".tool/config.toml"), "model = 1\n").unwrap();
    std::fs::write(host.join(".tool/sub/deep"), "deep").unwrap();
    std::fs::write(host.join(".cred"), "cred-secret-77").unwrap();
    let set = vec![
        ("A_KEY".to_string(), b"it's a secret-91".to_vec()),
        ("B".to_string(), b"new value".to_vec()),
    ];
    let roots: Vec<std::path::PathBuf> = ["old", "new"].iter().map(|r| t.path().join(r)).collect();
    let mut plans = Vec::new();
    for root in &roots {
        std::fs::create_dir_all(root.join("etc/profile.d")).unwrap();
        std::fs::write(root.join("etc/profile.d/smolvm_env.sh"), HAND_ENV).unwrap();
        plans.push(plan_at(root, &host, &set));
    }
    // As before: one `sh` per config, the env file read, merged and written.
    let old = &plans[0];
    for it in &old.items {
        let script = format!(
            "set -e; umask 077; {}",
            unpack_script(&it.guest, it.mode, it.dir, "-")
        );
        let out =
            crate::sys::child::run_with_input(&local_sh(&script), Some(&it.archive), None).unwrap();
        assert!(out.status.unwrap().success(), "{out:?}");
    }
    let text = std::fs::read(&old.env_path).unwrap();
    std::fs::write(&old.env_path, guest_env::edit(&text, &set, &[])).unwrap();
    // Now: one session.
    let new = &plans[1];
    let script = new.script();
    for (_, v) in &set {
        assert!(!script.contains(&*String::from_utf8_lossy(v)), "{script}");
    }
    assert!(!script.contains("cred-secret-77"));
    new.run(&local_sh(&script), "local", Duration::from_secs(5))
        .unwrap();
    let (a, b) = (tree(&roots[0]), tree(&roots[1]));
    assert_eq!(a.len(), 10, "{a:?}");
    // The env file's mode is the new path's 0600 (the old write's chmod is the same
    // script line); everything else byte for byte.
    let strip = |v: Vec<(String, u32, Vec<u8>)>| {
        v.into_iter()
            .map(|(p, m, b)| {
                if p.ends_with("smolvm_env.sh") {
                    (p, 0o600, b)
                } else {
                    (p, m, b)
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(a), strip(b.clone()));
    let env = b
        .iter()
        .find(|(p, _, _)| p == "etc/profile.d/smolvm_env.sh")
        .unwrap();
    assert_eq!(env.1, 0o600);
    let f = guest_env::EnvFile::parse(&env.2);
    assert_eq!(f.get("A_KEY"), Some(&b"it's a secret-91"[..]));
    assert_eq!(f.get("B"), Some(&b"new value"[..]));
    assert!(String::from_utf8_lossy(&env.2).contains("alias ll='ls -l'"));
    let modes: Vec<(&str, u32)> = b.iter().map(|(p, m, _)| (p.as_str(), *m)).collect();
    assert!(modes.contains(&("root/.tool", 0o700)), "{modes:?}");
    assert!(
        modes.contains(&("root/.tool/config.toml", 0o600)),
        "{modes:?}"
    );
    assert!(modes.contains(&("root/.cred", 0o600)), "{modes:?}");
    assert!(modes.contains(&("root/.claude.json", 0o600)), "{modes:?}");

    // A greeting a login file prints before the script is passed over.
    new.run(
        &local_sh(&format!("echo Welcome; echo; {}", new.script())),
        "local",
        Duration::from_secs(5),
    )
    .unwrap();
    // An unchanged env file is not rewritten; configs alone need no env read.
    let before = std::fs::metadata(&new.env_path)
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    new.run(&local_sh(&new.script()), "local", Duration::from_secs(5))
        .unwrap();
    let after = std::fs::metadata(&new.env_path)
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    let configs_only = Plan {
        items: Vec::new(),
        set: Vec::new(),
        env_path: new.env_path.clone(),
    };
    assert!(!configs_only.script().contains("smolvm-env"));
    // A guest without an env file gets SmolVM's header and the keys.
    std::fs::remove_file(&new.env_path).unwrap();
    new.run(&local_sh(&new.script()), "local", Duration::from_secs(5))
        .unwrap();
    let text = std::fs::read(&new.env_path).unwrap();
    assert_eq!(text, guest_env::edit(b"", &set, &[]));
}

/// A plan writing one credential file (`cred`) and one env key (`K`) under `root`, each
/// with a secret value the guest must never see echoed.
fn cred_and_env_plan(root: &Path) -> Plan {
    let file_cfg = cfg(&root.join("cred"), 0o600);
    Plan {
        items: vec![Item {
            host: root.join("host-cred"),
            guest: file_cfg.guest.clone(),
            mode: 0o600,
            dir: false,
            written: false,
            archive: one_file_archive(&file_cfg, b"secret-cred-5").unwrap(),
        }],
        set: vec![("K".into(), b"secret-env-6".to_vec())],
        env_path: root.join("env.sh").display().to_string(),
    }
}

/// A guest answering anything but the script's lines fails the start with a message
/// naming what failed, never echoing what the guest sent, never hanging on a size it
/// made up.
#[test]
fn a_guest_answering_garbage_fails_cleanly_local_sh() {
    let t = tempfile::tempdir().unwrap();
    let plan = cred_and_env_plan(t.path());
    let fails = |guest: &str| -> String {
        let e = plan
            .run(&local_sh(guest), "local", Duration::from_millis(600))
            .unwrap_err();
        assert_eq!(e.exit_code(), 1, "{}", e.message);
        assert!(
            !e.message.contains("secret-") && !e.message.contains("\x1b"),
            "{}",
            e.message
        );
        e.message
    };
    let m = fails("printf 'hello \\033[2J\\n'");
    assert!(
        m.contains("did not run smolvm's forwarding script (exit 0)"),
        "{m}"
    );
    let m = fails("yes hello | head -n 100");
    assert!(m.contains("answered something other"), "{m}");
    let m = fails("head -c 100000 /dev/zero");
    assert!(m.contains("answered something other"), "{m}");
    let m = fails("echo smolvm-forward; echo smolvm-env 99999999999999; sleep 30");
    assert!(m.contains("cannot read") && m.contains("env.sh"), "{m}");
    let m = fails("echo smolvm-forward; echo smolvm-env -1");
    assert!(m.contains("cannot read"), "{m}");
    let m = fails("echo smolvm-forward; echo smolvm-env 10; printf abc");
    assert!(
        m.contains("cannot read") && m.contains("ended early"),
        "{m}"
    );
    let m =
        fails("echo smolvm-forward; echo smolvm-env none; cat >/dev/null; echo no tar >&2; exit 2");
    assert!(m.contains("cannot unpack") && m.contains("no tar"), "{m}");
    let m = fails(
        "echo smolvm-forward; echo smolvm-env none; cat >/dev/null; echo smolvm-step unpacked; exit 1",
    );
    assert!(m.contains("cannot copy") && m.contains("cred"), "{m}");
    let m = fails(
        "echo smolvm-forward; echo smolvm-env none; cat >/dev/null; echo smolvm-step unpacked; echo smolvm-step 0; exit 1",
    );
    assert!(m.contains("cannot write") && m.contains("env.sh"), "{m}");
    // Exit 0 without the end line is no success.
    let m = fails("echo smolvm-forward; echo smolvm-env none; exec >&-; sleep 0");
    assert!(m.contains("cannot unpack"), "{m}");
    // Nothing ran: retried while the wait lasts, then "cannot reach".
    let t0 = Instant::now();
    let m = fails("echo refused >&2; exit 255");
    assert!(
        m.contains("cannot reach the guest at local") && m.contains("refused"),
        "{m}"
    );
    assert!(t0.elapsed() >= Duration::from_millis(500));
    // Nothing was written into the paths the plan names.
    assert!(!t.path().join("cred").exists() && !t.path().join("env.sh").exists());
}

#[test]
fn nothing_to_forward_without_configs_or_env() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().display().to_string();
    let r = super::super::Registry::builtin();
    let p = r.find("claude").unwrap();
    let env = Env::from_vars([("HOME", home.as_str())], 0);
    assert!(!has_work(p, &env));
    let env = Env::from_vars([("HOME", home.as_str()), ("ANTHROPIC_API_KEY", "")], 0);
    assert!(!has_work(p, &env));
    let env = Env::from_vars([("HOME", home.as_str()), ("ANTHROPIC_API_KEY", "k")], 0);
    assert!(has_work(p, &env));
    std::fs::write(t.path().join(".gitconfig"), "").unwrap();
    let env = Env::from_vars([("HOME", home.as_str())], 0);
    assert!(has_work(p, &env));
}

/// A plan forwarding `host`'s `.tool` directory, `.cred` and a written `.claude.json` into
/// `root` (as the guest's `/`), and `set` into its env file.
fn plan_at(root: &Path, host: &Path, set: &[(String, Vec<u8>)]) -> Plan {
    let dir_cfg = cfg(&root.join("root/.tool"), 0o700);
    let file_cfg = cfg(&root.join("root/.cred"), 0o600);
    let json_cfg = cfg(&root.join("root/.claude.json"), 0o600);
    let json = serde_json::to_vec(&serde_json::json!({"login": "me"})).unwrap();
    Plan {
        items: vec![
            Item {
                host: host.join(".tool"),
                guest: dir_cfg.guest.clone(),
                mode: 0o700,
                dir: true,
                written: false,
                archive: packed(&dir_cfg, &host.join(".tool")).unwrap(),
            },
            Item {
                host: host.join(".cred"),
                guest: file_cfg.guest.clone(),
                mode: 0o600,
                dir: false,
                written: false,
                archive: packed(&file_cfg, &host.join(".cred")).unwrap(),
            },
            Item {
                host: host.join(".claude.json"),
                guest: json_cfg.guest.clone(),
                mode: 0o600,
                dir: false,
                written: true,
                archive: one_file_archive(&json_cfg, &json).unwrap(),
            },
        ],
        set: set.to_vec(),
        env_path: root
            .join("etc/profile.d/smolvm_env.sh")
            .display()
            .to_string(),
    }
}

/// The clone agent itself (`--stdio`, behind a Unix socket as QEMU puts its port) carries
/// out a plan: the same files, modes, links and env file (hand edits kept) as the SSH
/// session's script gives, no stage and nothing of the old config left; and a plan over
/// what it carries is refused before anything is sent.
#[test]
fn the_agent_gives_what_the_ssh_session_gives_local() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let host = t.path().join("host");
    std::fs::create_dir_all(host.join(".tool/sub")).unwrap();
    std::fs::write(host.join(".tool/config.toml"), "model = 1\n").unwrap();
    std::fs::write(host.join(".tool/sub/deep"), "deep").unwrap();
    std::fs::set_permissions(
        host.join(".tool/sub/deep"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("config.toml", host.join(".tool/link")).unwrap();
    std::fs::write(host.join(".cred"), "cred-secret-77").unwrap();
    let set = vec![
        ("A_KEY".to_string(), b"it's a secret-91".to_vec()),
        ("B".to_string(), b"new value".to_vec()),
    ];
    let roots: Vec<std::path::PathBuf> =
        ["ssh", "agent"].iter().map(|r| t.path().join(r)).collect();
    for root in &roots {
        std::fs::create_dir_all(root.join("etc/profile.d")).unwrap();
        std::fs::write(root.join("etc/profile.d/smolvm_env.sh"), HAND_ENV).unwrap();
        // An older config the new one replaces.
        std::fs::create_dir_all(root.join("root/.tool/stale")).unwrap();
    }
    let ssh = plan_at(&roots[0], &host, &set);
    ssh.run(&local_sh(&ssh.script()), "local", Duration::from_secs(5))
        .unwrap();

    let bin = t.path().join("smolvm-agent");
    std::fs::write(&bin, crate::core::snapshot::AGENT_BIN).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = t.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let relay = std::thread::spawn(move || {
        use crate::sys::child::{spawn, Io};
        let argv = [bin.as_os_str(), "--stdio".as_ref()];
        let mut agent = spawn(&argv, Io::Piped, Io::Piped, Io::Null).unwrap();
        let (mut to_agent, mut from_agent) =
            (agent.take_stdin().unwrap(), agent.take_stdout().unwrap());
        let (mut conn, _) = listener.accept().unwrap();
        let mut back = conn.try_clone().unwrap();
        // Chunk by chunk as it comes (`io::copy` from a socket into a pipe splices, and
        // waits for more than a line).
        fn pump(from: &mut impl std::io::Read, to: &mut impl std::io::Write) {
            let mut buf = [0u8; 1 << 16];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    break;
                }
            }
        }
        let out = std::thread::spawn(move || pump(&mut from_agent, &mut back));
        pump(&mut conn, &mut to_agent);
        drop(to_agent);
        let status = agent.wait().unwrap();
        let _ = out.join();
        status
    });
    let plan = plan_at(&roots[1], &host, &set);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(agent::over_agent(&socket, &plan)).unwrap();
    drop(rt);
    assert!(
        relay.join().unwrap().success(),
        "the agent ends with its input"
    );

    let (a, b) = (tree(&roots[0]), tree(&roots[1]));
    assert_eq!(a, b);
    let names: Vec<&str> = b.iter().map(|(p, _, _)| p.as_str()).collect();
    assert!(names.contains(&"root/.tool/link"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("stale") || n.contains("smolvm-copy")),
        "{names:?}"
    );
    let modes: Vec<(&str, u32)> = b.iter().map(|(p, m, _)| (p.as_str(), *m)).collect();
    assert!(
        modes.contains(&("root/.tool/sub/deep", 0o600)),
        "private: {modes:?}"
    );
    assert_eq!(
        std::fs::read_link(roots[1].join("root/.tool/link")).unwrap(),
        Path::new("config.toml")
    );
    let env = std::fs::read(&plan.env_path).unwrap();
    assert!(String::from_utf8_lossy(&env).contains("alias ll='ls -l'"));
    assert_eq!(
        guest_env::EnvFile::parse(&env).get("A_KEY"),
        Some(&b"it's a secret-91"[..])
    );

    // Over what the agent carries: refused before a byte is sent (no socket needed).
    std::fs::write(host.join(".cred"), vec![b'x'; agent::LIMIT + 1]).unwrap();
    let big = plan_at(&roots[1], &host, &set);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let why = rt
        .block_on(agent::over_agent(&t.path().join("no.sock"), &big))
        .unwrap_err();
    assert!(why.contains("too large for the agent"), "{why}");
}

/// A config folder larger than what a guest's output may leave in memory is packed whole:
/// it is the host's own, read by the host's `tar`.
#[test]
fn a_config_folder_past_the_guest_output_limit_is_packed_whole() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join(".tool");
    std::fs::create_dir(&dir).unwrap();
    let big = vec![5u8; crate::sys::child::CAPTURE_LIMIT + 4096];
    std::fs::write(dir.join("big"), &big).unwrap();
    let archive = packed(&cfg(Path::new("/root/.tool"), 0o700), &dir).unwrap();
    let mut a = tar::Archive::new(&archive[..]);
    let sizes: Vec<(String, u64)> = a
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().display().to_string(), e.size())
        })
        .collect();
    assert!(
        sizes.contains(&("x/big".to_string(), big.len() as u64)),
        "{sizes:?}"
    );
}

/// A guest that never ends the session (it stops after the greeting, or takes the
/// archives and never finishes) has it killed when its time is up, and a cancel (the
/// start's `x`) stops it at once: the start rolls back instead of waiting for good.
#[test]
fn a_guest_that_never_finishes_is_stopped_by_time_or_cancel_local_sh() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let t = tempfile::tempdir().unwrap();
    let plan = cred_and_env_plan(t.path());
    for guest in [
        "echo smolvm-forward; exec sleep 100",
        "echo smolvm-forward; echo smolvm-env none; cat > /dev/null; exec sleep 100",
    ] {
        let (wait, time) = (Duration::from_secs(5), Duration::from_secs(1));
        let e = plan
            .run_until(&local_sh(guest), "local", wait, time, &Progress::none())
            .unwrap_err();
        assert_eq!(
            e.message, "the guest did not finish smolvm's forwarding script within 1 s",
            "{guest}"
        );
    }
    let flag = Arc::new(AtomicBool::new(false));
    let cancel = Progress::none().with_cancel(flag.clone());
    let asker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        flag.store(true, Ordering::SeqCst);
    });
    let guest = local_sh("echo smolvm-forward; exec sleep 100");
    let e = plan
        .run_until(
            &guest,
            "local",
            Duration::from_secs(5),
            SESSION_TIME,
            &cancel,
        )
        .unwrap_err();
    asker.join().unwrap();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            crate::core::ErrorCode::Interrupted,
            "Forwarding into the guest cancelled"
        )
    );
}
