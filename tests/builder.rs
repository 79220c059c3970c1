//! `smolvm image build`: a real Debian image built with debootstrap, booted (`sandbox create
//! --image`) under QEMU in a
//! network namespace and logged into over SSH with the generated key; the cache by name
//! (same inputs → cached, a changed key → rebuilt); and Docker's diagnostics for real
//! (no `docker` on PATH, the CLI without a daemon, a socket this user may not open) and a
//! cache dir without the space a build needs. Every failure: the exact message, exit 1,
//! nothing left in the cache.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::cleanup::NetNs;
use support::images;
use support::{is_root, json, json_exit, stderr, stdout, Home};

const NO_DAEMON_HINT: &str = "Docker is installed, but SmolVM could not reach the Docker daemon. Start Docker Desktop or the Docker service and try again. Original Docker error: ";

fn has_tool(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    key
}

/// Entries of a directory (none when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes every VM of this HOME however the test ends.
struct Vms<'a> {
    h: &'a Home,
    ns: &'a NetNs,
}

impl Vms<'_> {
    fn smolvm(&self, args: &[&str]) -> std::process::Output {
        self.ns
            .cmd(self.h, "smolvm")
            .args(args)
            .timeout(Duration::from_secs(300))
            .output()
            .unwrap()
    }
}

impl Drop for Vms<'_> {
    fn drop(&mut self) {
        let _ = self.smolvm(&["cleanup", "--all", "--force", "--json"]);
    }
}

fn build(h: &Home, args: &[&str]) -> std::process::Output {
    build_with(h, args, &[])
}

fn build_with(h: &Home, args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut c = h.smolvm();
    c.envs(env.iter().map(|(k, v)| (*k, v.as_os_str())));
    if let Some(m) = std::env::var_os("SMOLVM_TEST_DEBIAN_MIRROR").filter(|m| !m.is_empty()) {
        c.env("SMOLVM_DEBIAN_MIRROR", m);
    }
    c.args(["image", "build"])
        .args(args)
        .timeout(Duration::from_secs(900))
        .output()
        .unwrap()
}

fn ok_json(out: &std::process::Output) -> serde_json::Value {
    json_exit(out, 0)
}

/// The file at `path` inside an ext4 image, read with debugfs (no mount).
fn ext4_cat(image: &Path, path: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(image)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ssh root@IP COMMAND` with `key`, from inside `ns`, never asking anything.
fn ssh_root(ns: &NetNs, key: &Path, ip: &str, command: &str) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "ssh", "-i"])
        .arg(key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=30",
            &format!("root@{ip}"),
            command,
        ])
        .output()
        .unwrap()
}

#[test]
fn debian_image_built_with_debootstrap_boots_and_is_cached_by_name() {
    if !is_root() || !has_tool("debootstrap") || !has_tool("qemu-system-x86_64") {
        eprintln!("SKIPPED: needs root, debootstrap and QEMU (scripts/install-deps.sh)");
        return;
    }
    let (bz, _) = images::kernel();
    let h = Home::new();
    let keys = h.tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keygen(&keys, "first");
    let pubkey = key.with_extension("pub");
    let cache = h.images();
    let args = |pubkey: &Path| -> Vec<String> {
        vec![
            "--base".into(),
            "debian".into(),
            "--ssh-key".into(),
            pubkey.display().to_string(),
            "--kernel".into(),
            bz.display().to_string(),
            "--engine".into(),
            "debootstrap".into(),
            "--size".into(),
            "1024".into(),
            "--json".into(),
        ]
    };
    let argv = args(&pubkey);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();

    // 1. Build.
    let v = ok_json(&build(&h, &argv));
    assert_eq!(v["command"], "image.build");
    let d = &v["data"];
    assert_eq!(d["name"], "debian-ssh-key");
    assert_eq!(d["cached"], false);
    assert_eq!(d["engine"], "debootstrap");
    let dir = cache.join("debian-ssh-key");
    assert_eq!(d["image_dir"], dir.display().to_string());
    let rootfs = dir.join("rootfs.ext4");
    let kernel = dir.join("vmlinux.bin");
    assert_eq!(d["rootfs_path"], rootfs.display().to_string());
    assert_eq!(d["kernel_path"], kernel.display().to_string());
    let mut names = entries(&dir);
    names.sort();
    assert_eq!(names, [".fingerprint", "rootfs.ext4", "vmlinux.bin"]);
    // Nothing but the image in the cache: no staging, no tree, no lock file.
    assert_eq!(entries(&cache), ["debian-ssh-key"]);
    assert_eq!(
        std::fs::read(&kernel).unwrap(),
        std::fs::read(&bz).unwrap(),
        "the kernel is shipped with the image"
    );
    let pub_text = std::fs::read_to_string(&pubkey).unwrap();
    assert_eq!(
        ext4_cat(&rootfs, "/root/.ssh/authorized_keys").trim(),
        pub_text.trim()
    );
    assert!(ext4_cat(&rootfs, "/init").contains("SmolVM init complete"));

    // 2. Boot it under QEMU in a namespace; exec over smolvm's key, ssh with the built-in one.
    let ns = NetNs::with_uplink();
    let vms = Vms { h: &h, ns: &ns };
    let out = vms.smolvm(&[
        "sandbox",
        "create",
        "--image",
        "debian-ssh-key",
        "--start",
        "--backend",
        "qemu",
        "--name",
        "vm-built",
        "--memory",
        "512",
        "--json",
    ]);
    let created = ok_json(&out);
    let ip = created["data"]["ip"].as_str().unwrap().to_string();
    assert_eq!(created["data"]["kernel_path"], kernel.display().to_string());
    let out = vms.smolvm(&["sandbox", "exec", "vm-built", "--", "uname", "-a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("Linux smolvm "),
        "{}",
        stdout(&out)
    );
    let out = ssh_root(&ns, &key, &ip, "uname -a && cat /etc/debian_version");
    assert!(
        out.status.success(),
        "ssh with the built-in key: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.starts_with("Linux smolvm "), "{text}");
    assert!(
        text.lines().nth(1).unwrap_or("").starts_with("12"),
        "{text}"
    );
    let out = vms.smolvm(&["sandbox", "delete", "vm-built", "--timeout", "3", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    drop(vms);

    // 3. Same inputs: from the cache, nothing rebuilt (the very same files).
    use std::os::unix::fs::MetadataExt;
    let before = std::fs::metadata(&rootfs).unwrap();
    let fp = std::fs::read_to_string(dir.join(".fingerprint")).unwrap();
    let out = h
        .smolvm()
        .args(["image", "build"])
        .args(&argv)
        .env("PATH", h.tmp.path().join("no-tools")) // nothing could run even if it tried
        .output()
        .unwrap();
    let v = ok_json(&out);
    assert_eq!(v["data"]["cached"], true);
    assert_eq!(v["data"]["engine"], serde_json::Value::Null);
    let after = std::fs::metadata(&rootfs).unwrap();
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec())
    );
    // Human form says so too.
    let argv_h: Vec<&str> = argv.iter().copied().filter(|a| *a != "--json").collect();
    let out = build(&h, &argv_h);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("(cached)"), "{}", stdout(&out));

    // 4. A changed key rebuilds, swapping the new image in. Without --kernel this time: the
    // kernel comes through the images pipeline (a local manifest publishing the same
    // kernel), so only the key changed.
    let key2 = keygen(&keys, "second");
    let argv2 = args(&key2.with_extension("pub"));
    let mut argv2: Vec<&str> = argv2.iter().map(String::as_str).collect();
    let k = argv2.iter().position(|a| *a == "--kernel").unwrap();
    argv2.drain(k..k + 2);
    let busybox = images::busybox_rootfs(images::Init::Ready);
    let manifest = images::manifest(
        h.tmp.path(),
        &[images::Row {
            preset: "codex",
            rootfs: &busybox,
        }],
    );
    // What a killed build leaves behind is cleared by the next one.
    let stale = cache.join(".debian-ssh-key.staging-1");
    std::fs::create_dir_all(stale.join("root/etc")).unwrap();
    let v = ok_json(&build_with(&h, &argv2, &[("SMOLVM_MANIFEST", &manifest)]));
    assert!(!stale.exists());
    assert_eq!(v["data"]["cached"], false);
    assert_eq!(v["data"]["engine"], "debootstrap");
    let fp2 = std::fs::read_to_string(dir.join(".fingerprint")).unwrap();
    assert_ne!(fp, fp2);
    assert_eq!(
        ext4_cat(&rootfs, "/root/.ssh/authorized_keys").trim(),
        std::fs::read_to_string(key2.with_extension("pub"))
            .unwrap()
            .trim()
    );
    assert_eq!(std::fs::read(&kernel).unwrap(), std::fs::read(&bz).unwrap());
    let mut names = entries(&cache);
    names.sort();
    assert_eq!(names, [support::CURRENT, "debian-ssh-key"]);
    let mut names = entries(&dir);
    names.sort();
    assert_eq!(names, [".fingerprint", "rootfs.ext4", "vmlinux.bin"]);
}

/// The Docker engine for real: a private dockerd (tests/support/docker.rs) builds
/// `--base debian --engine docker` and the `-t NAME CONTEXT` form; both boot under QEMU and
/// answer over SSH. The default Docker socket is never brought up.
#[test]
fn docker_engine_builds_boot_and_log_in() {
    if !is_root() || !has_tool("qemu-system-x86_64") || !has_tool("debootstrap") {
        assert!(
            !support::docker::required(),
            "the Docker test must run here"
        );
        eprintln!("SKIPPED (LOUDLY): needs root, QEMU and debootstrap; the Docker engine was not exercised");
        return;
    }
    let default_socket = Path::new("/var/run/docker.sock");
    let default_before = support::docker::answers_at(default_socket);
    let Some(dockerd) = support::docker::Dockerd::start() else {
        return;
    };
    dockerd.ensure_debian_base();
    // The daemon's data root outlives a run (its images are a cache): no container an
    // earlier run left counts here.
    dockerd.remove_all_containers();
    let (bz, _) = images::kernel();
    let h = Home::new();
    let keys = h.tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keygen(&keys, "docker");
    let docker_build = |args: &[&str]| -> serde_json::Value {
        let out = h
            .smolvm()
            .env("DOCKER_HOST", &dockerd.host)
            .args(["image", "build"])
            .args(args)
            .args(["--kernel", bz.to_str().unwrap(), "--json"])
            .timeout(Duration::from_secs(900))
            .output()
            .unwrap();
        if out.status.code() != Some(0) {
            eprintln!("dockerd log:\n{}", dockerd.log());
        }
        json_exit(&out, 0)
    };
    // 1. The preset-style form: --base debian --engine docker.
    let pubkey = key.with_extension("pub");
    let v = docker_build(&[
        "--base",
        "debian",
        "--engine",
        "docker",
        "--ssh-key",
        pubkey.to_str().unwrap(),
        "--size",
        "1024",
    ]);
    assert_eq!(v["data"]["engine"], "docker", "{v:#}");
    assert_eq!(v["data"]["name"], "debian-ssh-key");
    // A build's container goes with it. One a killed build left (never started, named
    // `smolvm-build-…`, labelled by a process that has ended: what a SIGKILL leaves, as
    // no drop ran) goes at the next build, and only that one: not one of a process that
    // runs, of another boot, unlabelled, started, or named otherwise; and no label's text
    // can name another container.
    assert_eq!(
        dockerd.containers(),
        Vec::<String>::new(),
        "build 1 left a container"
    );
    let create = |verb: &[&str], name: &str, label: Option<&str>, cmd: &[&str]| -> String {
        let mut c = dockerd.docker();
        c.args(verb).args(["--name", name]);
        if let Some(l) = label {
            c.arg("--label").arg(format!("smolvm.build={l}"));
        }
        let out = c
            .arg(support::docker::DEBIAN_BASE_TAG)
            .args(cmd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let mut killed = Command::new("sleep").arg("1000").spawn().unwrap();
    let dead = smolvm::sys::process::token_of(killed.id() as i32).unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let live = smolvm::sys::process::token_of(std::process::id() as i32).unwrap();
    let elsewhere = format!(
        "00000000-0000-0000-0000-000000000000{}",
        &dead[dead.find('.').unwrap()..]
    );
    let left = create(
        &["create"],
        "smolvm-build-left",
        Some(&dead),
        &["/bin/true"],
    );
    let victim = create(&["create"], "smolvm-build-victim", None, &["/bin/true"]);
    let injected = format!("x\n{victim} {dead}");
    let kept = [
        victim.clone(),
        create(
            &["create"],
            "smolvm-build-live",
            Some(&live),
            &["/bin/true"],
        ),
        create(
            &["create"],
            "smolvm-build-else",
            Some(&elsewhere),
            &["/bin/true"],
        ),
        create(&["create"], "someone-else", Some(&dead), &["/bin/true"]),
        create(
            &["run", "--detach", "--network", "none"],
            "smolvm-build-up",
            Some(&dead),
            &["sleep", "1000"],
        ),
        create(
            &["create"],
            "smolvm-build-inj",
            Some(&injected),
            &["/bin/true"],
        ),
    ];
    // 2. The Dockerfile form, with a marker of its own.
    let ctx = h.tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // SmolVM's -f (a Dockerfile outside the context) and --build-arg (the marker's text).
    let dockerfile = h.tmp.path().join("Containerfile");
    std::fs::write(
        &dockerfile,
        format!(
            "FROM {}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server iproute2 && rm -rf /var/lib/apt/lists/* && rm -f /etc/ssh/ssh_host_*\nARG MARK=unset\nRUN echo \"$MARK\" > /etc/smolvm-marker\n",
            support::docker::DEBIAN_BASE_TAG
        ),
    )
    .unwrap();
    let v = docker_build(&[
        "-t",
        "ctx-image",
        ctx.to_str().unwrap(),
        "-f",
        dockerfile.to_str().unwrap(),
        "--build-arg",
        "MARK=built-from-context",
        "--size-mb",
        "1024",
    ]);
    assert_eq!(v["data"]["name"], "ctx-image", "{v:#}");
    let mut now = dockerd.containers();
    now.sort();
    let mut want = kept.to_vec();
    want.sort();
    assert_eq!(now, want, "only the killed build's container goes ({left})");
    // Only the kept ones are left (just asserted): the daemon's helper removes them.
    dockerd.remove_all_containers();
    assert_eq!(
        ext4_cat(
            &h.images().join("ctx-image/rootfs.ext4"),
            "/etc/smolvm-marker"
        )
        .trim(),
        "built-from-context"
    );

    // 3. Boot each under QEMU and log in.
    let ns = NetNs::with_uplink();
    let vms = Vms { h: &h, ns: &ns };
    for (image, vm, check) in [
        ("debian-ssh-key", "vm-docker", "cat /etc/debian_version"),
        ("ctx-image", "vm-ctx", "cat /etc/smolvm-marker"),
    ] {
        let out = vms.smolvm(&[
            "sandbox",
            "create",
            "--image",
            image,
            "--start",
            "--backend",
            "qemu",
            "--name",
            vm,
            "--memory",
            "512",
            "--json",
        ]);
        let created = json_exit(&out, 0);
        let out = vms.smolvm(&[
            "sandbox",
            "exec",
            vm,
            "--timeout",
            "300",
            "--",
            "sh",
            "-c",
            check,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        if image == "ctx-image" {
            assert_eq!(text.trim(), "built-from-context");
        } else {
            assert!(text.starts_with("12"), "{text}");
            // The key baked into the image logs in too.
            let ip = created["data"]["ip"].as_str().unwrap();
            let out = ssh_root(&ns, &key, ip, "true");
            assert!(out.status.success(), "ssh: {}", stderr(&out));
        }
        let out = vms.smolvm(&["sandbox", "delete", vm, "--timeout", "3", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    drop(vms);
    let private = dockerd.host.trim_start_matches("unix://").to_string();
    let private = Path::new(&private).parent().unwrap().to_path_buf();
    drop(dockerd);
    // Nothing of the private daemon is left: no mount, no dir.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(private.to_str().unwrap()),
        "{mountinfo}"
    );
    assert!(!private.exists(), "{} left behind", private.display());
    assert_eq!(
        support::docker::answers_at(default_socket),
        default_before,
        "the default Docker socket changed state"
    );
}

#[test]
fn sandbox_create_with_an_unbuilt_image_says_how_to_build_it() {
    let h = Home::new();
    let out = h
        .smolvm()
        .args(["sandbox", "create", "--image", "nope", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["command"], "sandbox.create");
    assert_eq!(
        v["error"]["message"],
        format!("no built image named nope in {}", h.images().display())
    );
    assert!(v["error"]["recovery"]
        .as_str()
        .unwrap()
        .contains("smolvm image build"));
    let out = h
        .smolvm()
        .args(["sandbox", "create", "--image", "x", "--preset", "codex"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn invalid_public_key_and_version_like_names_write_nothing() {
    let h = Home::new();
    let bad = h.tmp.path().join("bad.pub");
    std::fs::write(&bad, "this is not a key\n").unwrap();
    let kernel = h.tmp.path().join("kernel");
    std::fs::write(&kernel, b"k").unwrap();
    let cache = h.tmp.path().join("cache");
    let common = [
        "--base",
        "debian",
        "--kernel",
        kernel.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--engine",
        "debootstrap",
    ];
    let out = h
        .smolvm()
        .args(["image", "build", "--ssh-key", bad.to_str().unwrap()])
        .args(common)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: Invalid SSH public key format\n");
    assert!(!cache.exists());

    let out = h
        .smolvm()
        .args([
            "image",
            "build",
            "--ssh-key",
            bad.to_str().unwrap(),
            "--json",
        ])
        .args(common)
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["error"]["message"], "Invalid SSH public key format");

    let out = h
        .smolvm()
        .args(["image", "build", "--ssh-password", "pw", "--name", "0.0.12"])
        .args(common)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("looks like a version"),
        "{}",
        stderr(&out)
    );
    assert!(!cache.exists());
}

/// `--engine docker` (and `auto` for Alpine) with the given PATH / DOCKER_HOST: exit 1 with
/// `expected`, nothing in the cache.
fn docker_fails(h: &Home, path: &std::ffi::OsStr, extra: &[(&str, &str)], expected: &str) {
    let kernel = h.tmp.path().join("kernel");
    std::fs::write(&kernel, b"k").unwrap();
    let cache = h.tmp.path().join("cache");
    for (base, engine) in [("alpine", "docker"), ("debian", "docker")] {
        let mut c = h.smolvm();
        c.env("PATH", path).envs(extra.iter().copied());
        let out = c
            .args([
                "image",
                "build",
                "--base",
                base,
                "--ssh-password",
                "pw",
                "--kernel",
                kernel.to_str().unwrap(),
                "--cache-dir",
                cache.to_str().unwrap(),
                "--engine",
                engine,
                "--json",
            ])
            .output()
            .unwrap();
        let v = json(&out);
        assert_eq!(out.status.code(), Some(1), "{v:#}");
        assert_eq!(v["command"], "image.build");
        assert_eq!(v["error"]["message"], expected, "{v:#}");
        assert!(entries(&cache).is_empty(), "{:?}", entries(&cache));
    }
    // auto for alpine: Docker is needed, and why.
    let mut c = h.smolvm();
    c.env("PATH", path).envs(extra.iter().copied());
    let out = c
        .args(["image", "build", "--base", "alpine", "--ssh-password", "pw"])
        .args(["--kernel", kernel.to_str().unwrap()])
        .args(["--cache-dir", cache.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("Error: Alpine images are built with Docker (debootstrap builds Debian only), and Docker is not usable: "),
        "{err}"
    );
    assert!(err.contains(expected), "{err}");
    assert!(entries(&cache).is_empty());
}

/// The engine is checked before the kernel is fetched: without a usable engine, a build
/// with no `--kernel` fails at once with the engine's message and never asks the
/// release server for anything (it would retry for seconds first).
#[test]
fn the_engine_is_checked_before_the_kernel_download() {
    let h = Home::new();
    let bin = h.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let keys = h.tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keygen(&keys, "k");
    let server = support::http_server::Server::start(h.tmp.path().join("release"));
    for (engine, expected) in [
        ("docker", "Docker is required to build images."),
        ("debootstrap", "debootstrap is not installed"),
    ] {
        let out = h
            .smolvm()
            .env("PATH", &bin)
            .env("SMOLVM_MANIFEST", server.url("manifest.json"))
            .args([
                "image", "build", "--base", "debian", "--engine", engine, "--json",
            ])
            .args(["--ssh-key", key.with_extension("pub").to_str().unwrap()])
            .output()
            .unwrap();
        let v = json(&out);
        assert_eq!(out.status.code(), Some(1), "{v:#}");
        let msg = support::error_message(&v);
        assert!(msg.starts_with(expected), "{engine}: {msg}");
        assert_eq!(
            server.requests("manifest.json"),
            0,
            "{engine}: the release was asked first"
        );
    }
}

#[test]
fn docker_absent_from_path() {
    let h = Home::new();
    let bin = h.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    docker_fails(
        &h,
        bin.as_os_str(),
        &[],
        "Docker is required to build images. Install Docker Desktop (macOS) or docker.io (Linux).",
    );
}

#[test]
fn docker_cli_without_a_daemon() {
    if !has_tool("docker") {
        eprintln!("SKIPPED: needs the Docker CLI (docker.io)");
        return;
    }
    // Both clients these machines have: Debian's 20.10 (`/usr/bin/docker`, whose `docker
    // info --format` reports only a template error when the daemon is down) and a newer
    // one earlier on PATH. Each must give SmolVM's message.
    let clients: Vec<std::path::PathBuf> = ["/usr/local/bin/docker", "/usr/bin/docker"]
        .iter()
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
        .collect();
    assert!(!clients.is_empty());
    for client in clients {
        let h = Home::new();
        let bin = h.tmp.path().join("client-bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(&client, bin.join("docker")).unwrap();
        let mut path = std::ffi::OsString::from(&bin);
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap());
        // A socket path where no daemon listens.
        let sock = h.tmp.path().join("docker.sock");
        let host = format!("unix://{}", sock.display());
        let details =
            format!("Cannot connect to the Docker daemon at {host}. Is the docker daemon running?");
        docker_fails(
            &h,
            &path,
            &[("DOCKER_HOST", &host)],
            &format!("{NO_DAEMON_HINT}{details}"),
        );
    }
}

/// A daemon socket that accepts connections and never answers: SmolVM's timeout message
/// once `docker info` has had its time (shortened here with `SMOLVM_DOCKER_TIMEOUT_MS`).
#[test]
fn docker_daemon_that_never_answers() {
    if !has_tool("docker") {
        eprintln!("SKIPPED: needs the Docker CLI (docker.io)");
        return;
    }
    let h = Home::new();
    let sock = h.tmp.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let host = format!("unix://{}", sock.display());
    docker_fails(
        &h,
        &std::env::var_os("PATH").unwrap(),
        &[("DOCKER_HOST", &host), ("SMOLVM_DOCKER_TIMEOUT_MS", "500")],
        &format!("{NO_DAEMON_HINT}timed out while contacting Docker."),
    );
}

/// SmolVM's Dockerfile form, `image build -t NAME CONTEXT`: Docker only, diagnosed first.
#[test]
fn dockerfile_form_needs_docker_and_checks_its_arguments() {
    let h = Home::new();
    let ctx = h.tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM alpine:3.19\n").unwrap();
    let kernel = h.tmp.path().join("kernel");
    std::fs::write(&kernel, b"k").unwrap();
    let cache = h.tmp.path().join("cache");
    let run = |path: &std::ffi::OsStr, extra: &[&str], context: &Path| {
        let mut c = h.smolvm();
        c.env("PATH", path)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", h.tmp.path().join("docker.sock").display()),
            )
            .args(["image", "build"])
            .args(extra)
            .arg(context)
            .args(["--kernel", kernel.to_str().unwrap()])
            .args(["--cache-dir", cache.to_str().unwrap(), "--json"]);
        c.output().unwrap()
    };
    let empty = h.tmp.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(empty.as_os_str(), &["-t", "myimg"], &ctx);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json(&out)["error"]["message"],
        "Docker is required to build images. Install Docker Desktop (macOS) or docker.io (Linux)."
    );
    if has_tool("docker") {
        let out = run(&std::env::var_os("PATH").unwrap(), &["-t", "myimg"], &ctx);
        assert_eq!(out.status.code(), Some(1));
        let msg = json(&out)["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.starts_with(NO_DAEMON_HINT), "{msg}");
    }
    assert!(entries(&cache).is_empty());
    // A version-like name, a context without a Dockerfile, -t with --base: usage errors.
    let out = run(empty.as_os_str(), &["-t", "0.0.12"], &ctx);
    assert_eq!(out.status.code(), Some(2));
    let out = run(empty.as_os_str(), &["-t", "myimg"], h.tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        json(&out)["error"]["message"],
        format!("No Dockerfile at '{}/Dockerfile'.", h.tmp.path().display())
    );
    assert_eq!(json(&out)["error"]["code"], "invalid_input");
    let out = run(
        empty.as_os_str(),
        &["-t", "myimg", "--base", "debian"],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["error"]["code"], "usage_error");
    // SmolVM's -f, --build-arg, --size-mb and --image-dir: checked before the engine.
    for bad in [
        &["-t", "myimg", "--build-arg", "1BAD=x"][..],
        &["-t", "myimg", "--build-arg", "NOEQUALS"],
    ] {
        let out = run(empty.as_os_str(), bad, &ctx);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert_eq!(json(&out)["error"]["code"], "invalid_input", "{bad:?}");
    }
    let out = run(
        empty.as_os_str(),
        &["-t", "myimg", "-f", "/nonexistent/Dockerfile"],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["error"]["code"], "invalid_input");
    let out = run(
        empty.as_os_str(),
        &[
            "-t",
            "myimg",
            "--size-mb",
            "1024",
            "--build-arg",
            "MARK=x y",
        ],
        &ctx,
    );
    // Accepted; it stops at the engine (no Docker on this PATH).
    assert_eq!(out.status.code(), Some(1));
    assert!(json(&out)["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Docker is required"));
    assert!(!cache.exists() || entries(&cache).is_empty());
}

#[test]
fn docker_socket_this_user_may_not_open() {
    if !is_root() || !has_tool("docker") || !has_tool("setpriv") {
        eprintln!("SKIPPED: needs root, the Docker CLI and setpriv");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    for d in [h.tmp.path(), &h.home] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let sockdir = h.tmp.path().join("run");
    std::fs::create_dir_all(&sockdir).unwrap();
    std::fs::set_permissions(&sockdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = sockdir.join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let host = format!("unix://{}", sock.display());
    let kernel = h.tmp.path().join("kernel");
    std::fs::write(&kernel, b"k").unwrap();
    std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cache = h.tmp.path().join("cache");
    let mut c = assert_cmd::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(assert_cmd::cargo::cargo_bin("smolvm"));
    h.apply_env(&mut c);
    let out = c
        .env("DOCKER_HOST", &host)
        .args(["image", "build", "--base", "alpine", "--ssh-password", "pw"])
        .args(["--kernel", kernel.to_str().unwrap()])
        .args(["--cache-dir", cache.to_str().unwrap()])
        .args(["--engine", "docker", "--json"])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    let msg = support::error_message(&v);
    let prefix = "Docker is installed, but this user cannot access the Docker daemon socket. Make sure Docker Desktop is running or grant access to /var/run/docker.sock. Original Docker error: ";
    assert!(msg.starts_with(prefix), "{msg}");
    let details = &msg[prefix.len()..];
    assert!(details.contains("permission denied"), "{details}");
    assert!(details.contains(&sock.display().to_string()), "{details}");
    assert!(entries(&cache).is_empty());
}

/// debootstrap as an unprivileged user, or without debootstrap: said before anything is
/// written.
#[test]
fn debootstrap_needs_root_and_debootstrap() {
    let h = Home::new();
    let kernel = h.tmp.path().join("kernel");
    std::fs::write(&kernel, b"k").unwrap();
    let key = keygen(h.tmp.path(), "k");
    let cache = h.tmp.path().join("cache");
    let args = [
        "image",
        "build",
        "--base",
        "debian",
        "--engine",
        "debootstrap",
        "--ssh-key",
        key.with_extension("pub").to_str().unwrap(),
        "--kernel",
        kernel.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--json",
    ]
    .map(String::from);
    let empty = h.tmp.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = h.smolvm().env("PATH", &empty).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json(&out)["error"]["message"],
        "debootstrap is not installed"
    );
    assert!(!cache.exists());
    if is_root() && has_tool("debootstrap") && has_tool("setpriv") {
        use std::os::unix::fs::PermissionsExt;
        for d in [h.tmp.path(), &h.home] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        for f in [key.with_extension("pub"), kernel.clone()] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut c = assert_cmd::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(assert_cmd::cargo::cargo_bin("smolvm"));
        h.apply_env(&mut c);
        let out = c.args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let v = json(&out);
        assert_eq!(
            v["error"]["message"],
            "the debootstrap engine needs root (it creates device nodes and file ownership)"
        );
        assert!(!cache.exists());
    }
}

/// A cache dir on a small, nearly full tmpfs: the disk-space message, exit 1, nothing left.
#[test]
fn a_nearly_full_cache_dir_reports_disk_space() {
    if !is_root() || !has_tool("debootstrap") || !has_tool("unshare") {
        eprintln!("SKIPPED: needs root, debootstrap and unshare");
        return;
    }
    let h = Home::new();
    let kernel = h.tmp.path().join("kernel");
    std::fs::write(&kernel, b"k").unwrap();
    let key = keygen(h.tmp.path(), "k");
    let cache = h.tmp.path().join("small");
    std::fs::create_dir_all(&cache).unwrap();
    // In a private mount namespace: a 64 MiB tmpfs, 48 MiB of it used.
    let script = format!(
        "mount -t tmpfs -o size=64m tmpfs '{c}' && head -c 50331648 /dev/zero > '{c}/filler' && \
         \"$0\" \"$@\"; rc=$?; rm -f '{c}/filler'; echo \"left: $(ls -A '{c}')\" >&2; exit $rc",
        c = cache.display()
    );
    let mut c = assert_cmd::Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(assert_cmd::cargo::cargo_bin("smolvm"));
    h.apply_env(&mut c);
    let out = c
        .args([
            "image",
            "build",
            "--base",
            "debian",
            "--engine",
            "debootstrap",
        ])
        .args(["--ssh-key", key.with_extension("pub").to_str().unwrap()])
        .args(["--kernel", kernel.to_str().unwrap()])
        .args(["--cache-dir", cache.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "Error: Not enough disk space to build the image in {}: about 1024 MiB needed, ",
            cache.display()
        )) && first.ends_with(" MiB free."),
        "one unit in the message: {err}"
    );
    assert!(err.contains("smolvm prune"), "{err}");
    assert!(err.lines().any(|l| l == "left: "), "{err}");
}

/// `image build --base debian --ssh-key K` (no --kernel) with `<cache>/debian-ssh-key`
/// already taken by something smolvm did not build: exit 1 naming the folder, before the
/// kernel download or any engine runs.
fn build_over(h: &Home) -> std::process::Output {
    let keys = h.tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keys.join("k");
    if !key.exists() {
        keygen(&keys, "k");
    }
    let manifest = images::tiny_manifest(h.tmp.path());
    build_with(
        h,
        &[
            "--base",
            "debian",
            "--ssh-key",
            key.with_extension("pub").to_str().unwrap(),
            "--engine",
            "debootstrap",
            "--json",
        ],
        &[("SMOLVM_MANIFEST", &manifest)],
    )
}

fn assert_refused_naming(out: &std::process::Output, dir: &Path) {
    let v = json_exit(out, 1);
    let m = support::error_message(&v);
    assert!(
        m.contains(&dir.display().to_string()) && m.contains("not an image smolvm built"),
        "{m:?} should name {}",
        dir.display()
    );
}

#[test]
fn image_build_refuses_to_replace_a_folder_it_did_not_build() {
    let h = Home::new();
    let dir = h.images().join("debian-ssh-key");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("precious.txt"), b"mine").unwrap();
    let out = build_over(&h);
    assert_refused_naming(&out, &dir);
    assert_eq!(std::fs::read(dir.join("precious.txt")).unwrap(), b"mine");
    assert_eq!(entries(&dir), ["precious.txt"]);
    // Nothing else in the cache: no staging, no kernel download.
    assert_eq!(entries(&h.images()), ["debian-ssh-key"]);
}

#[test]
fn image_build_refuses_a_symlink_or_a_file_in_the_images_place() {
    let h = Home::new();
    let outside = h.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious.txt"), b"mine").unwrap();
    std::fs::write(outside.join(".fingerprint"), b"x\n").unwrap();
    let dir = h.images().join("debian-ssh-key");
    std::os::unix::fs::symlink(&outside, &dir).unwrap();
    let out = build_over(&h);
    assert_refused_naming(&out, &dir);
    assert!(std::fs::symlink_metadata(&dir).unwrap().is_symlink());
    let mut names = entries(&outside);
    names.sort();
    assert_eq!(names, [".fingerprint", "precious.txt"]);
    assert_eq!(
        std::fs::read(outside.join("precious.txt")).unwrap(),
        b"mine"
    );

    std::fs::remove_file(&dir).unwrap();
    std::fs::write(&dir, b"a file").unwrap();
    let out = build_over(&h);
    assert_refused_naming(&out, &dir);
    assert_eq!(std::fs::read(&dir).unwrap(), b"a file");

    // A folder whose .fingerprint is a symlink is not one smolvm built either.
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(outside.join(".fingerprint"), dir.join(".fingerprint")).unwrap();
    std::fs::write(dir.join("precious.txt"), b"mine").unwrap();
    let out = build_over(&h);
    assert_refused_naming(&out, &dir);
    assert_eq!(std::fs::read(dir.join("precious.txt")).unwrap(), b"mine");
}

/// A build smolvm was asked to stop (SIGINT to smolvm alone, as a supervisor or a CI
/// job's timeout sends it): the step running is killed with everything it started, the
/// staging directory goes, and the command fails `interrupted` (exit 130) saying so.
fn stop_a_build_midway(
    mut cmd: Command,
    cache: &Path,
    name: &str,
    started: impl Fn() -> bool,
) -> std::process::Output {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l.clone());
            seen.push(l);
        }
        seen.join("\n")
    });
    // Its step is under way: announced, and doing what the caller can see.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let mut lines = Vec::new();
    while !started() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started: {lines:?}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    assert!(entries(cache)
        .iter()
        .any(|e| e.starts_with(&format!(".{name}.staging-"))));
    // SAFETY: signalling the child this test spawned (not yet reaped).
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = child.wait().unwrap();
    let printed = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{printed}\n{err}");
    assert!(
        err.contains(&format!(
            "Image build of '{name}' cancelled by SIGINT; rolled back"
        )),
        "{err}"
    );
    // Nothing staged is left, and no mount below the cache.
    assert!(
        entries(cache).iter().all(|e| !e.contains(".staging-")),
        "{:?}",
        entries(cache)
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(cache.to_str().unwrap())),
        "{mounts}"
    );
    std::process::Output {
        status,
        stdout: printed.into_bytes(),
        stderr: err.into_bytes(),
    }
}

/// Whether a process whose command line holds `text` runs (other than this test's own).
fn runs(text: &str) -> bool {
    !support::processes_with(text).is_empty()
}

/// Wait (a bounded while) for `gone` to hold: what a killed step started ends a moment
/// after the kill.
fn eventually(gone: impl Fn() -> bool) -> bool {
    let t0 = std::time::Instant::now();
    while !gone() {
        if t0.elapsed() > Duration::from_secs(30) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

#[test]
fn a_debootstrap_build_stopped_midway_leaves_no_process_mount_or_staging() {
    if !is_root() || !has_tool("debootstrap") {
        eprintln!("SKIPPED: needs root and debootstrap");
        return;
    }
    let (bz, _) = images::kernel();
    let h = Home::new();
    let keys = h.tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keygen(&keys, "stop");
    let cache = h.images();
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("smolvm"));
    c.env_clear().envs(h.env_vars());
    if let Some(m) = std::env::var_os("SMOLVM_TEST_DEBIAN_MIRROR").filter(|m| !m.is_empty()) {
        c.env("SMOLVM_DEBIAN_MIRROR", m);
    }
    c.args([
        "image",
        "build",
        "--base",
        "debian",
        "--engine",
        "debootstrap",
    ])
    .arg("--ssh-key")
    .arg(key.with_extension("pub"))
    .arg("--kernel")
    .arg(&bz);
    // debootstrap has begun writing the new root (its own folder in it).
    let started = || {
        entries(&cache)
            .iter()
            .filter(|e| e.starts_with(".debian-ssh-key.staging-"))
            .any(|e| cache.join(e).join("root/debootstrap").is_dir())
    };
    let staging_word = format!("{}/.debian-ssh-key.staging-", cache.display());
    stop_a_build_midway(c, &cache, "debian-ssh-key", started);
    assert!(
        eventually(|| !runs(&staging_word)),
        "a process of the stopped debootstrap runs on"
    );
    assert!(!cache.join("debian-ssh-key").exists());
}

#[test]
fn a_dockerfile_build_stopped_midway_ends_its_docker_build() {
    let Some(dockerd) = support::docker::Dockerd::for_root_test() else {
        return;
    };
    let (bz, _) = images::kernel();
    let h = Home::new();
    let ctx = h.tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // A step that would run for ten minutes, unless the build is ended.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN sleep 600\n", support::docker::DEBIAN_BASE_TAG),
    )
    .unwrap();
    let containers = || {
        let out = dockerd.docker().args(["ps", "-q"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let cache = h.images();
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("smolvm"));
    c.env_clear().envs(h.env_vars());
    c.env("DOCKER_HOST", &dockerd.host)
        .args(["image", "build", "-t", "slow-step"])
        .arg(&ctx)
        .arg("--kernel")
        .arg(&bz);
    // The RUN step's container is up (the classic builder runs it as one; BuildKit's
    // steps are not containers, so there the docker build process is what is watched).
    let started = || !containers().is_empty() || runs("sleep 600");
    stop_a_build_midway(c, &cache, "slow-step", started);
    assert!(
        eventually(|| containers().is_empty() && !runs("sleep 600")),
        "the stopped build's step runs on: {}\n{}",
        containers(),
        dockerd.log()
    );
    assert!(!cache.join("slow-step").exists());
}
