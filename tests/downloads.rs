//! `sandbox file download` from a hostile guest (#22, item 1). Root in the guest chooses
//! every byte of the tar stream: device nodes, FIFOs, set-uid programs, links out of the
//! download, a `tar` that keeps its side open, a stream with no end. None of it may plant
//! anything on the host beyond the files, folders and inside links the user asked for;
//! nothing set-uid ever exists, not for a moment; an interrupted or refused download leaves
//! nothing. One real Debian VM (QEMU, TCG here) in its own network namespace serves every
//! check.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::sandbox::Sandboxes;
use support::{json, names, stderr};

/// `sandbox file download ID FROM TO MORE...` (FROM in the guest, TO here).
fn download_args<'a>(id: &'a str, from: &'a str, to: &'a Path, more: &[&'a str]) -> Vec<&'a str> {
    let head = [
        "sandbox",
        "file",
        "download",
        id,
        from,
        to.to_str().unwrap(),
    ];
    [&head[..], more].concat()
}

/// Every path under `dir` (not following links) with its lstat.
fn walk(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let is_dir = m.is_dir();
        out.push((p.clone(), m));
        if is_dir {
            out.extend(walk(&p));
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Anything set-uid, set-gid or sticky under `dir`, or a temporary download folder that
/// is not 0700.
fn dangerous(dir: &Path) -> Vec<String> {
    walk(dir)
        .into_iter()
        .filter(|(p, m)| {
            let tmp = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".smolvm-download"));
            (!m.file_type().is_symlink() && m.mode() & 0o7000 != 0)
                || (tmp && m.mode() & 0o7777 != 0o700)
        })
        .map(|(p, m)| format!("{} {:o}", p.display(), m.mode()))
        .collect()
}

/// Run `args` (with `vars`) in the background, poll `dir` every few milliseconds until
/// `ready(dir)` has held for a second, asserting nothing dangerous ever appears; then send
/// `sig` and return the output.
fn interrupt_when(
    vm: &Sandboxes,
    args: &[&str],
    vars: &[(&str, &str)],
    dir: &Path,
    ready: impl Fn(&Path) -> bool,
    sig: nix::sys::signal::Signal,
) -> Output {
    let mut child = vm.spawn_piped(args, vars);
    let t0 = Instant::now();
    let mut ready_since: Option<Instant> = None;
    let mut polls = 0u64;
    loop {
        let bad = dangerous(dir);
        assert!(bad.is_empty(), "seen on the host mid-download: {bad:?}");
        polls += 1;
        if ready(dir) {
            let since = *ready_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} ended before it was interrupted ({status}): {}",
                stderr(&out)
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "{args:?}: never ready; under {}: {:?}",
            dir.display(),
            walk(dir).iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(polls > 100, "too few polls to mean anything: {polls}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    let t1 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "{args:?} did not end after {sig}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A tmpfs mounted at a folder, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: u64) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs at {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The guest's hostile side: a `tar` that stalls after the archive (`*/stall*`) or in the
/// middle of it (`*/slow*`), a `du` that lies about `*/endless*`, and trees holding every
/// kind of entry tar knows.
const GUEST_SETUP: &str = r#"
mkdir -p /usr/local/bin
cat > /usr/local/bin/tar <<'EOF'
#!/bin/sh
for a in "$@"; do
  case "$a" in
    */stall*) /bin/tar "$@"; exec sleep 3600;;
    */slow*) /bin/tar "$@" | { head -c 300000; exec sleep 3600; }; exit 0;;
  esac
done
exec /bin/tar "$@"
EOF
cat > /usr/local/bin/du <<'EOF'
#!/bin/sh
case "$*" in *endless*) printf '1\t.\n'; exit 0;; esac
exec /usr/bin/du "$@"
EOF
chmod 755 /usr/local/bin/tar /usr/local/bin/du
mkdir -p /root/evil/sub /root/evil/open
cp /usr/bin/id /root/evil/id && chmod 4755 /root/evil/id
cp /usr/bin/id /root/evil/gid && chmod 2755 /root/evil/gid
mknod /root/evil/null c 1 3 && chmod 666 /root/evil/null
mknod /root/evil/disk b 254 0
mkfifo /root/evil/fifo
chmod 1777 /root/evil/open
ln -s /etc/shadow /root/evil/shadow
ln -s ../../etc/passwd /root/evil/sub/up
ln -s ../id /root/evil/sub/ok
echo hi > /root/evil/sub/plain
ln /root/evil/sub/plain /root/evil/hard
mkdir -p /root/stall && cp /usr/bin/id /root/stall/id && chmod 4755 /root/stall/id
mkdir -p /root/slow && head -c 2000000 /dev/urandom > /root/slow/big && chmod 4755 /root/slow/big
mkdir -p /root/endless && truncate -s 64G /root/endless/zeros
truncate -s 64G /root/huge
sync
echo ready
"#;

#[test]
fn a_hostile_guest_cannot_plant_anything_through_a_download() {
    require_root!();
    let vm = Sandboxes::debian_codex();
    let id = "vm-dl";
    vm.codex_start(id);
    assert_eq!(vm.exec_in(id, ["sh", "-ec"], GUEST_SETUP).trim(), "ready");
    let work = vm.h.tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    // --- Devices, FIFOs, set-id bits, links out: skipped and reported; the rest lands.
    let dest = work.join("evil");
    let out = vm.ok(&download_args(id, "/root/evil", &dest, &["--json"]));
    let v = json(&out);
    let mut skipped: Vec<(String, String)> = v["data"]["skipped"]
        .as_array()
        .unwrap_or_else(|| panic!("no skipped list in {v}"))
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            ("disk", "block device"),
            ("fifo", "FIFO"),
            ("null", "character device"),
            ("shadow", "symbolic link"),
            ("sub/up", "symbolic link"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string())),
        "{v}"
    );
    assert_eq!(names(&dest), ["gid", "hard", "id", "open", "sub"]);
    assert_eq!(names(&dest.join("sub")), ["ok", "plain"]);
    assert_eq!(mode(&dest.join("id")), 0o755);
    assert_eq!(mode(&dest.join("gid")), 0o755);
    assert_eq!(
        mode(&dest.join("open")),
        0o775,
        "no sticky, no write for all"
    );
    assert_eq!(
        std::fs::read_link(dest.join("sub/ok")).unwrap(),
        Path::new("../id")
    );
    assert_eq!(std::fs::read(dest.join("hard")).unwrap(), b"hi\n");
    assert!(dangerous(&work).is_empty(), "{:?}", dangerous(&work));
    // The human face names every skipped entry and why.
    let dest2 = work.join("evil-2");
    let out = vm.ok(&download_args(id, "/root/evil", &dest2, &[]));
    let err = stderr(&out);
    for (name, kind) in [
        ("null", "character device"),
        ("disk", "block device"),
        ("fifo", "FIFO"),
        ("shadow", "symbolic link"),
        ("sub/up", "symbolic link"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains("Skipped") && l.contains(name) && l.contains(kind)),
            "{name} ({kind}) not reported: {err}"
        );
    }
    assert!(support::stdout(&out).contains("Downloaded"));

    // --- The stalled download: the guest's tar sent a set-uid root program and keeps its
    // side open. Nothing set-uid (and no temporary folder other than 0700) ever appears;
    // Ctrl-C then leaves nothing at all.
    let stall_dir = work.join("stall-parent");
    std::fs::create_dir_all(&stall_dir).unwrap();
    let id_size = vm
        .exec_in(id, ["sh", "-ec"], "wc -c < /usr/bin/id")
        .trim()
        .parse::<u64>()
        .unwrap();
    let target = stall_dir.join("got");
    let out = interrupt_when(
        &vm,
        &download_args(id, "/root/stall", &target, &[]),
        &[],
        &stall_dir,
        |d| {
            walk(d)
                .iter()
                .any(|(p, m)| p.ends_with("id") && m.is_file() && m.len() == id_size)
        },
        nix::sys::signal::Signal::SIGINT,
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(names(&stall_dir), Vec::<String>::new());

    // --- SIGTERM in the middle of an entry: nothing left either.
    let slow_dir = work.join("slow-parent");
    std::fs::create_dir_all(&slow_dir).unwrap();
    let out = interrupt_when(
        &vm,
        &download_args(id, "/root/slow", &slow_dir.join("got"), &[]),
        &[],
        &slow_dir,
        |d| {
            walk(d)
                .iter()
                .any(|(p, m)| p.ends_with("big") && m.is_file() && m.len() > 0)
        },
        nix::sys::signal::Signal::SIGTERM,
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(names(&slow_dir), Vec::<String>::new());

    // --- SIGKILL in the middle of an entry (a CI job's timeout): nothing can tidy up then,
    // so the 0700 staging folder stays with the partial data. The next download into that
    // folder removes it, but only one that would have made it: a download under sudo left
    // this one (the user's), which root's own download leaves and the user's next removes.
    // (A folder of root's, 0755: the folder is no reason for either download to pass it by.)
    let killed_dir = work.join("killed-parent");
    std::fs::create_dir_all(&killed_dir).unwrap();
    std::fs::set_permissions(&killed_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sudo = [("SUDO_UID", "4321"), ("SUDO_GID", "4322")];
    let big = |d: &Path| {
        walk(d)
            .iter()
            .any(|(p, m)| p.ends_with("big") && m.is_file() && m.len() > 0)
    };
    let out = interrupt_when(
        &vm,
        &download_args(id, "/root/slow", &killed_dir.join("got"), &[]),
        &sudo,
        &killed_dir,
        big,
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(out.status.signal(), Some(9), "{}", stderr(&out));
    let left = names(&killed_dir);
    assert!(
        left.len() == 1 && left[0].starts_with(".smolvm-download."),
        "{left:?}"
    );
    assert!(
        big(&killed_dir),
        "the partial data is what a killed download leaves"
    );
    vm.ok(&download_args(
        id,
        "/root/evil/sub/plain",
        &killed_dir.join("root"),
        &[],
    ));
    assert_eq!(names(&killed_dir), [left[0].clone(), "root".to_string()]);
    let out = vm.run_with(
        &download_args(id, "/root/evil/sub/plain", &killed_dir.join("user"), &[]),
        &sudo,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(names(&killed_dir), ["root", "user"]);

    // --- An endless stream (the guest's du lies about it): --max-bytes cuts it, nothing
    // is left; an honest file announced larger than the cap is refused up front.
    let cap_dir = work.join("cap-parent");
    std::fs::create_dir_all(&cap_dir).unwrap();
    for (what, path) in [("endless", "/root/endless"), ("announced", "/root/huge")] {
        let t0 = Instant::now();
        let out = vm.run_with(
            &download_args(id, path, &cap_dir.join("got"), &["--max-bytes", "3000000"]),
            &[],
        );
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("--max-bytes") && err.contains("3000000"),
            "{what}: {err}"
        );
        assert!(t0.elapsed() < Duration::from_secs(120), "{what}");
        assert_eq!(names(&cap_dir), Vec::<String>::new(), "{what}");
    }
    // A bad value is a usage error.
    let out = vm.run_with(
        &[
            "sandbox",
            "file",
            "download",
            id,
            "/root/huge",
            "x",
            "--max-bytes",
            "lots",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // --- No flag: the download stops before the destination's free space falls below
    // 1 GiB (a tmpfs with 1 GiB + 24 MiB free), and leaves nothing; a small file fits.
    let small = Tmpfs::mount(&work.join("small"), (1 << 30) + (24 << 20));
    let out = vm.run_with(
        &download_args(id, "/root/endless", &small.0.join("got"), &[]),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 GiB"), "{}", stderr(&out));
    assert_eq!(names(&small.0), Vec::<String>::new());
    vm.ok(&download_args(
        id,
        "/root/evil/sub/plain",
        &small.0.join("plain"),
        &[],
    ));
    assert_eq!(std::fs::read(small.0.join("plain")).unwrap(), b"hi\n");
    drop(small);

    // --- Under sudo the download belongs to the invoking user (and so do the folders
    // created for it); without sudo, to root.
    let mine = work.join("mine/deeper/evil");
    let out = vm.run_with(
        &download_args(id, "/root/evil", &mine, &[]),
        &[("SUDO_UID", "4321"), ("SUDO_GID", "4322")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for p in [work.join("mine"), work.join("mine/deeper"), mine.clone()]
        .into_iter()
        .chain(walk(&mine).into_iter().map(|(p, _)| p))
    {
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 4322), "{}", p.display());
    }
    let m = std::fs::symlink_metadata(dest.join("id")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
}
