//! SmolVM's `image build -t NAME CONTEXT` flags `--arch`, `--backend` and `--init`: what
//! cannot work on this Linux host is a clear error before anything is built; the rest is
//! built for real with the private Docker daemon (tests/support/docker.rs), and a sandbox
//! of an image built with `--init` boots with that `init=`.

mod support;

use std::time::Duration;

use support::cleanup::NetNs;
use support::{json_exit, Home};

fn context(h: &Home, dockerfile: &str) -> std::path::PathBuf {
    let ctx = h.tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx
}

#[test]
fn build_flags_that_cannot_work_here_are_clear_errors_before_anything_runs() {
    let h = Home::new();
    let ctx = context(&h, "FROM scratch\n");
    let ctx = ctx.to_str().unwrap();
    let run = |extra: &[&str]| {
        let out = h
            .smolvm()
            .args([
                "image",
                "build",
                "-t",
                "flagged",
                ctx,
                "--kernel",
                "/nonexistent",
            ])
            .args(extra)
            .arg("--json")
            .output()
            .unwrap();
        (
            out.status.code(),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        )
    };
    for b in ["libkrun", "vz"] {
        let (code, v) = run(&["--backend", b]);
        assert_eq!(code, Some(1), "{v}");
        let msg = support::error_message(&v);
        assert!(msg.contains("macOS only") && msg.contains(b), "{msg}");
    }
    let other = if std::env::consts::ARCH == "aarch64" {
        "amd64"
    } else {
        "arm64"
    };
    let emulator = if other == "arm64" {
        "qemu-aarch64"
    } else {
        "qemu-x86_64"
    };
    if !std::path::Path::new("/proc/sys/fs/binfmt_misc")
        .join(emulator)
        .exists()
    {
        let (code, v) = run(&["--arch", other]);
        assert_eq!(code, Some(1), "{v}");
        let msg = support::error_message(&v);
        assert!(msg.contains("binfmt_misc") && msg.contains(other), "{msg}");
    }
    for bad in ["sbin/init", "/sbin/my init", "/../init", ""] {
        let (code, v) = run(&["--init", bad]);
        assert_eq!(code, Some(2), "{bad}: {v}");
        assert_eq!(v["error"]["code"], "invalid_input", "{bad}: {v}");
    }
    // SmolVM's checks of the context and the Dockerfile come before anything is fetched:
    // without --kernel (the published one would be downloaded; there is no manifest to
    // reach here) they are still its words, exit 2.
    let file = h.tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let empty = h.tmp.path().join("empty-ctx");
    std::fs::create_dir_all(&empty).unwrap();
    for (context, extra, message) in [
        (
            file.clone(),
            vec![],
            format!("'{}' is not a folder.", file.display()),
        ),
        (
            empty.clone(),
            vec![],
            format!("No Dockerfile at '{}/Dockerfile'.", empty.display()),
        ),
        (
            empty.clone(),
            vec!["-f", "/nonexistent/Dockerfile"],
            "No Dockerfile at '/nonexistent/Dockerfile'.".to_string(),
        ),
    ] {
        let out = h
            .smolvm()
            .args(["image", "build", "-t", "flagged"])
            .arg(&context)
            .args(&extra)
            .arg("--json")
            .env("SMOLVM_MANIFEST", "http://127.0.0.1:9/manifest.json")
            .output()
            .unwrap();
        let v = json_exit(&out, 2);
        assert_eq!(v["error"]["code"], "invalid_input", "{v}");
        assert_eq!(v["error"]["message"], message.as_str(), "{v}");
    }
    // Nothing was made.
    assert!(support::names(&h.images()).is_empty());
    // Without -t the flags are usage errors (they belong to the Dockerfile form).
    let out = h
        .smolvm()
        .args([
            "image",
            "build",
            "--base",
            "alpine",
            "--ssh-password",
            "x",
            "--init",
            "/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn build_arch_backend_and_init_with_docker_and_the_sandbox_boots_with_that_init() {
    let Some(dockerd) = support::docker::Dockerd::for_root_test() else {
        return;
    };
    let h = Home::new();
    let kernel = h.tmp.path().join("vmlinux");
    std::fs::write(&kernel, b"a kernel").unwrap();
    let ctx = context(
        &h,
        &format!(
            "FROM {}\nRUN ln -s /bin/sh /sbin/custom-init\n",
            support::docker::DEBIAN_BASE_TAG
        ),
    );
    let host_arch = if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "amd64"
    };
    let build = |name: &str, extra: &[&str]| {
        h.smolvm()
            .env("DOCKER_HOST", &dockerd.host)
            .args(["image", "build", "-t", name, ctx.to_str().unwrap()])
            .args(["--kernel", kernel.to_str().unwrap(), "--size-mb", "512"])
            .args(extra)
            .arg("--json")
            .timeout(Duration::from_secs(900))
            .output()
            .unwrap()
    };
    let out = build(
        "flags-img",
        &[
            "--arch",
            host_arch,
            "--backend",
            "qemu",
            "--init",
            "/sbin/custom-init",
        ],
    );
    if out.status.code() != Some(0) {
        eprintln!("dockerd log:\n{}", dockerd.log());
    }
    let v = json_exit(&out, 0);
    assert_eq!(v["data"]["arch"], host_arch, "{v:#}");
    assert_eq!(v["data"]["backend"], "qemu");
    assert_eq!(v["data"]["init"], "/sbin/custom-init");
    let boot_args = v["data"]["boot_args"].as_str().unwrap();
    assert!(boot_args.contains(" init=/sbin/custom-init"), "{boot_args}");
    assert!(!boot_args.contains("init=/init"), "{boot_args}");
    let dir = h.images().join("flags-img");
    assert_eq!(
        std::fs::read_to_string(dir.join(".init")).unwrap(),
        "/sbin/custom-init"
    );
    // The same inputs are a cache hit; --init is an input.
    let again = json_exit(
        &build(
            "flags-img",
            &["--backend", "qemu", "--init", "/sbin/custom-init"],
        ),
        0,
    );
    assert_eq!(again["data"]["cached"], true, "{again:#}");
    // An --init the image does not have is refused, and the image stays as it was.
    let out = build("flags-img", &["--init", "/sbin/not-there"]);
    let v = json_exit(&out, 2);
    assert_eq!(v["error"]["code"], "invalid_input", "{v:#}");
    assert_eq!(
        std::fs::read_to_string(dir.join(".init")).unwrap(),
        "/sbin/custom-init"
    );

    // A sandbox of it is created with init=/sbin/custom-init on its kernel command line.
    std::fs::create_dir_all(&h.data).unwrap();
    let ns = NetNs::with_uplink();
    let out = ns
        .cmd(&h, "smolvm")
        .args([
            "sandbox",
            "create",
            "--image",
            "flags-img",
            "--name",
            "vm-init",
        ])
        .args(["--backend", "qemu", "--no-start", "--json"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    support::assert_code(&out, 0);
    let config = support::stored_config(&h.data, "vm-init");
    let args = config["boot_args"].as_str().unwrap();
    assert!(args.contains(" init=/sbin/custom-init"), "{args}");
    assert!(!args.contains("init=/init"), "{args}");
}
