//! `<preset> start --warm`: starts cloned from a template snapshot of the preset, end to end
//! on the Debian test image under QEMU (TCG here), in a network namespace of its own.

mod support;

use std::path::{Path, PathBuf};

use support::images::{self, Row};
use support::sandbox::Sandboxes;
use support::stderr;

/// The test preset: the Debian test image, 512 MiB, one env var and one config forwarded.
const PRESET: &str = "[warmy]\ndescription = \"warm test\"\nmemory_mib = 512\ndisk_mib = 1024\n\
launch = \"true\"\nenv = [\"WARM_TOKEN\"]\n\
configs = [{ host = \"~/.warm-cred\", guest = \"/root/.warm-cred\", mode = 0o600 }]\n";

fn env() -> Sandboxes {
    let debian = images::debian_rootfs();
    let mut e = Sandboxes::with_presets(&[Row {
        preset: "warmy",
        rootfs: &debian,
    }]);
    e.limit = std::time::Duration::from_secs(900);
    e.h.user_presets(PRESET);
    e
}

fn ssh_up(e: &Sandboxes, ip: &str) -> bool {
    e.first_line(ip, 22).starts_with("SSH-")
}

/// Every file under `dir` holding `needle`.
fn files_with(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            hits.extend(files_with(&p, needle));
        } else if t.is_file() {
            let data = std::fs::read(&p).unwrap();
            if data.windows(needle.len()).any(|w| w == needle) {
                hits.push(p);
            }
        }
    }
    hits
}

/// A warm start with `token` in its environment and `cred` in the forwarded config.
fn warm_start(
    e: &Sandboxes,
    name: &str,
    token: &str,
    cred: &str,
    more: &[&str],
) -> (serde_json::Value, String) {
    std::fs::write(e.h.home.join(".warm-cred"), cred).unwrap();
    let mut args = vec![
        "warmy",
        "start",
        "--warm",
        "-n",
        name,
        "--no-attach",
        "--json",
    ];
    args.extend_from_slice(more);
    let out = e.run_with(&args, &[("WARM_TOKEN", token)]);
    support::assert_exit(&args, &out, 0);
    (support::json(&out), stderr(&out))
}

fn template_of(e: &Sandboxes, id: &str) -> Option<serde_json::Value> {
    let l = e.ok_json(&["sandbox", "snapshot", "list", "--json"]);
    l["data"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
}

/// The first warm start makes the template (from a cold boot that got none of its
/// secrets) and is its clone; the second is a clone too: the template's processes (the
/// clone agent started before the snapshot) on an address of its own, with its own secrets
/// only. No secret is in any template file, RAM included. A start with a mount starts cold
/// and says so; a changed recipe makes the template again and retires the old one.
#[test]
fn warm_starts_clone_a_template_that_holds_no_secret_of_any_start() {
    require_root!();
    let e = env();
    let (tok1, cred1) = ("tok-one-7f3a9c21e5", "cred-one-b84d20f6aa");
    let (tok2, cred2) = ("tok-two-41c8e0d9b7", "cred-two-09a7f35e1c");

    let (v1, err1) = warm_start(&e, "w1", tok1, cred1, &[]);
    let d1 = &v1["data"];
    assert_eq!(d1["warm"]["built"], true, "{v1}");
    let template = d1["warm"]["template"].as_str().unwrap().to_string();
    assert!(template.starts_with("warm-warmy-"), "{template}");
    assert!(err1.contains("booting 'warm-warmy-"), "{err1}");
    assert_eq!(
        d1["preset"]["injected_env_keys"],
        serde_json::json!(["WARM_TOKEN"])
    );
    // Forwarded over the clone's agent port, with the modes the SSH session gives.
    assert_eq!(d1["warm"]["forwarded_over"], "agent", "{v1}");
    assert_eq!(
        e.exec(
            "w1",
            "stat -c %a /root/.warm-cred /etc/profile.d/smolvm_env.sh; ls -a /root /etc/profile.d | grep -c smolvm-copy || true"
        ),
        "600\n600\n0"
    );
    let ip1 = d1["ip"].as_str().unwrap().to_string();
    assert!(ssh_up(&e, &ip1));
    assert!(e
        .exec("w1", "cat /etc/profile.d/smolvm_env.sh")
        .contains(tok1));
    assert_eq!(e.exec("w1", "cat /root/.warm-cred"), cred1);

    let (v2, err2) = warm_start(&e, "w2", tok2, cred2, &[]);
    let d2 = &v2["data"];
    assert_eq!(d2["warm"]["built"], false, "{v2}");
    assert_eq!(d2["warm"]["template"], template.as_str());
    assert_eq!(d2["warm"]["forwarded_over"], "agent", "{v2}");
    assert!(!err2.contains("booting"), "{err2}");
    let ip2 = d2["ip"].as_str().unwrap().to_string();
    assert_ne!(ip1, ip2);
    assert!(ssh_up(&e, &ip2));
    // From the template's time: the clone agent the template's boot started runs in both,
    // the same process (its pid and its start time since boot).
    let agent =
        "p=$(cat /run/smolvm-clone-agent.pid) && kill -0 $p && cut -d' ' -f1,22 /proc/$p/stat";
    let a1 = e.exec("w1", agent);
    assert_eq!(a1.split(' ').count(), 2, "{a1}");
    assert_eq!(a1, e.exec("w2", agent));
    // Each start's own secrets only.
    assert!(e
        .exec("w2", "cat /etc/profile.d/smolvm_env.sh")
        .contains(tok2));
    assert_eq!(e.exec("w2", "cat /root/.warm-cred"), cred2);
    assert_eq!(
        e.exec(
            "w2",
            &format!("grep -rlsF -e {tok1} -e {cred1} /etc /root /run /tmp /var/tmp || echo none")
        ),
        "none"
    );
    assert!(!e
        .exec("w1", "cat /etc/profile.d/smolvm_env.sh")
        .contains(tok2));

    // Listed: the sandboxes name their template; the snapshot list marks it.
    let l = e.ok_json(&["sandbox", "list", "--all", "--json"]);
    let vms = l["data"]["vms"].as_array().unwrap();
    for n in ["w1", "w2"] {
        let v = vms.iter().find(|v| v["name"] == n).unwrap();
        assert_eq!(v["cloned_from"], template.as_str(), "{v}");
        assert_eq!(v["preset"], "warmy", "{v}");
    }
    assert!(
        !vms.iter()
            .any(|v| v["name"].as_str().unwrap().ends_with("-src")),
        "the template's source sandbox is gone: {l}"
    );
    let text = support::stdout(&e.ok(&["sandbox", "list"]));
    assert!(text.lines().next().unwrap().contains("TEMPLATE"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("w2 ") && l.contains(&template)),
        "{text}"
    );
    let t = template_of(&e, &template).expect("the template is a snapshot");
    assert_eq!(t["warm_template_for"], "warmy", "{t}");
    let text = support::stdout(&e.ok(&["sandbox", "snapshot", "list"]));
    assert!(text.contains("(warm template: warmy)"), "{text}");

    // No secret of either start in the template's files (RAM, states and disk included).
    let dir = PathBuf::from(t["path"].as_str().unwrap());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"ram.bin".to_string()), "{names:?}");
    for secret in [tok1, cred1, tok2, cred2] {
        assert_eq!(
            files_with(&dir, secret.as_bytes()),
            Vec::<PathBuf>::new(),
            "{secret}"
        );
    }

    // A mount: a cold start, said in one line.
    let shared = e.h.tmp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let (v3, err3) = warm_start(
        &e,
        "w3",
        tok1,
        cred1,
        &["--mount", &shared.display().to_string()],
    );
    assert_eq!(v3["data"].get("warm"), None, "{v3}");
    let said: Vec<&str> = err3.lines().filter(|l| l.contains("warm start")).collect();
    assert_eq!(said.len(), 1, "{err3}");
    assert!(said[0].contains("--mount needs a cold start"), "{err3}");
    e.ok(&["sandbox", "delete", "w3"]);

    // Firecracker: said, then the cold start's own answer.
    let out = e.run_with(
        &[
            "warmy",
            "start",
            "--warm",
            "--backend",
            "firecracker",
            "-n",
            "wf",
            "--no-attach",
        ],
        &[],
    );
    assert!(
        stderr(&out).contains("warm starts need QEMU"),
        "{}",
        stderr(&out)
    );
    let _ = e.run(&["sandbox", "delete", "wf"]);

    // The recipe changes: the template is made again and the old one retired, its
    // clones unharmed.
    e.h.user_presets(&format!("{PRESET}[warmy.debian]\nsteps = [\"true\"]\n"));
    // A config over what the agent carries goes in the SSH session instead.
    let big = format!("{cred2}{}", "b".repeat(1 << 20));
    let (v4, _) = warm_start(&e, "w4", tok2, &big, &[]);
    let t4 = v4["data"]["warm"]["template"].as_str().unwrap().to_string();
    assert_eq!(v4["data"]["warm"]["built"], true, "{v4}");
    assert_eq!(v4["data"]["warm"]["forwarded_over"], "ssh", "{v4}");
    assert_eq!(
        e.exec("w4", "wc -c < /root/.warm-cred; head -c 19 /root/.warm-cred; echo; grep -c tok-two /etc/profile.d/smolvm_env.sh"),
        format!("{}\n{cred2}\n1", big.len())
    );
    assert_ne!(t4, template);
    assert_eq!(
        template_of(&e, &template),
        None,
        "the old template is retired"
    );
    assert!(ssh_up(&e, &ip1) && ssh_up(&e, &ip2));
    assert_eq!(e.exec("w2", "cat /root/.warm-cred"), cred2);

    // A Ctrl-C (a SIGINT to smolvm alone) while a warm start forwards over SSH rolls its
    // clone back, as a cold start's does: exit 130, no sandbox and no VMM of it left.
    std::fs::write(e.h.home.join(".warm-cred"), "c".repeat(48 << 20)).unwrap();
    let args = [
        "warmy",
        "start",
        "--warm",
        "-n",
        "w5",
        "--no-attach",
        "--json",
    ];
    let mut child = e.spawn_piped(&args, &[("WARM_TOKEN", "tok-five")]);
    let pid = child.id() as i32;
    let is_ssh = |p: &i32| {
        std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "ssh")
    };
    let t0 = std::time::Instant::now();
    while !support::children_of(pid).iter().any(is_ssh) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended before forwarding"
        );
        assert!(t0.elapsed().as_secs() < 300, "no forwarding session");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let m = support::error_message(&support::json(&out)).to_string();
    assert!(
        m.contains("cancelled by SIGINT") && m.ends_with("rolled back"),
        "{m}"
    );
    let info = e.run(&["sandbox", "info", "w5", "--json"]);
    assert_eq!(info.status.code(), Some(1), "{}", stderr(&info));
    assert!(
        !smolvm::sys::process::vmm_processes(Some(&e.h.sockets()))
            .iter()
            .any(|v| v.vm_id == "w5"),
        "the clone's VMM outlived the interrupt"
    );

    e.ok(&["sandbox", "delete", "w1", "w2", "w4"]);
    e.ok(&["sandbox", "snapshot", "delete", &t4]);
}

/// Two warm starts at once with no template: one makes it, the other waits for it and
/// clones it; both come up.
#[test]
fn two_warm_starts_at_once_make_one_template() {
    require_root!();
    let e = env();
    std::fs::write(e.h.home.join(".warm-cred"), "c").unwrap();
    let args = |n: &'static str| ["warmy", "start", "--warm", "-n", n, "--no-attach", "--json"];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| e.run_with(&args("p1"), &[]));
        let b = s.spawn(|| e.run_with(&args("p2"), &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    support::assert_exit(&args("p1"), &a, 0);
    support::assert_exit(&args("p2"), &b, 0);
    let (a, b) = (support::json(&a), support::json(&b));
    let built: Vec<bool> = [&a, &b]
        .iter()
        .map(|v| v["data"]["warm"]["built"].as_bool().unwrap())
        .collect();
    assert_eq!(built.iter().filter(|x| **x).count(), 1, "{a}\n{b}");
    assert_eq!(a["data"]["warm"]["template"], b["data"]["warm"]["template"]);
    for v in [&a, &b] {
        assert!(ssh_up(&e, v["data"]["ip"].as_str().unwrap()), "{v}");
    }
    e.ok(&["sandbox", "delete", "p1", "p2"]);
}
