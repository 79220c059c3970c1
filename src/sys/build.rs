//! The processes an image build runs — `debootstrap`, `docker build|create|export` piped
//! into `tar -x`, `chroot … chpasswd`, `mkfs.ext4 -d` — and the two calls that put a built
//! image in place (a directory lock, `renameat2(RENAME_EXCHANGE)`). Each function spawns
//! one step and hands back what it printed; what a failure means (a full disk, a bad size)
//! and how it reads is the builder's decision (`core::builder`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `debootstrap --variant=minbase --include=<packages> <suite> <tree> <mirror>`, in a
/// mount and PID namespace of its own (`unshare --mount --pid --fork --kill-child
/// --propagation private`): the `/proc` and `/sys` it mounts in the tree exist only there,
/// so however it ends — finished, failed, stopped, or smolvm killed — no mount is left in
/// the staging directory and no process of it runs on. Its output is collected; `stop`
/// kills it (`Ok(None)`).
pub fn debootstrap(
    bin: &Path,
    packages: &str,
    suite: &str,
    tree: &Path,
    mirror: &str,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<Output>> {
    let [unshare, isolate @ ..] = crate::sys::child::OWN_NAMESPACES;
    let mut c = Command::new(unshare);
    c.args(isolate)
        .arg(bin)
        .arg("--variant=minbase")
        .arg(format!("--include={packages}"))
        .arg(suite)
        .arg(tree)
        .arg(mirror);
    crate::sys::child::output_unless(c, stop)
}

/// `docker build --platform <platform> -t <tag> <ctx>`; `stop` kills the client
/// (`Ok(None)`), and the daemon ends the build with it.
pub fn docker_build(
    docker: &Path,
    platform: &str,
    tag: &str,
    ctx: &Path,
    dockerfile: Option<&Path>,
    build_args: &[(String, String)],
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<Output>> {
    let mut c = Command::new(docker);
    c
        // The host's network, as the debootstrap engine has: the daemon may run without a
        // bridge (`--bridge=none`), and the steps see the host's resolver and proxy.
        .args([
            "build",
            "--network",
            "host",
            "--platform",
            platform,
            "-t",
            tag,
        ]);
    if let Some(f) = dockerfile {
        c.arg("-f").arg(f);
    }
    for (k, v) in build_args {
        c.arg("--build-arg").arg(format!("{k}={v}"));
    }
    c.arg(ctx);
    crate::sys::child::output_unless(c, stop)
}

/// The label a build's container carries: which process made it
/// ([`crate::sys::process::token_of`]), so that one a killed build left can be told from
/// one a running build uses ([`sweep_build_containers`]).
pub const BUILD_LABEL: &str = "smolvm.build";

/// The start of a build container's name (a label can be inherited from an image; a
/// name is not).
pub const BUILD_NAME_PREFIX: &str = "smolvm-build-";

/// `docker create --name smolvm-build-<random> --label smolvm.build=<this process> <tag>`:
/// the [`Container`] made, or what docker said when it made none.
pub fn docker_create(docker: &Path, tag: &str) -> io::Result<Result<Container, String>> {
    let mut c = Command::new(docker);
    c.arg("create").arg("--name").arg(format!(
        "{BUILD_NAME_PREFIX}{}",
        crate::sys::open::random_hex(6)
    ));
    if let Some(me) = crate::sys::process::token_of(std::process::id() as i32) {
        c.arg("--label").arg(format!("{BUILD_LABEL}={me}"));
    }
    // A command of our own: `create` refuses an image without CMD ("No command
    // specified"), and the container is only exported, never started.
    let out = c.args([tag, "/bin/true"]).stdin(Stdio::null()).output()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(match out.status.success() && is_container_id(&id) {
        true => Ok(Container {
            docker: docker.to_path_buf(),
            owned: OwnedContainer(id),
        }),
        false => {
            let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(match out.status.success() || said.is_empty() {
                true => format!(
                    "it answered {:?}, not a container id ({})",
                    id.chars().take(80).collect::<String>(),
                    out.status
                ),
                false => said,
            })
        }
    })
}

/// Docker's full container id: 64 lower-case hex digits.
fn is_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The id of a container smolvm may remove. Made in two places only: from `docker
/// create`'s answer to this process ([`docker_create`]), and by [`left_container`]'s proof
/// that a killed build left it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnedContainer(String);

/// `docker rm -f`, within `bound`: the one place smolvm removes a container, and only an
/// [`OwnedContainer`]. Whether docker said it did.
fn remove_container(docker: &Path, c: &OwnedContainer, bound: Duration) -> bool {
    let argv = [
        docker.as_os_str(),
        OsStr::new("rm"),
        OsStr::new("-f"),
        OsStr::new(&c.0),
    ];
    matches!(crate::sys::child::run_bounded(&argv, bound), Ok(Some((st, ..))) if st.success())
}

/// A line of the sweep's listing (`<id> <label as JSON>`) as a container a killed build
/// left: a full id and a label that names a process of this boot and PID namespace that
/// no longer runs. The JSON quoting means no label's text can pass for another line.
fn left_container(line: &str) -> Option<OwnedContainer> {
    let (id, quoted) = line.split_once(' ')?;
    let token = serde_json::from_str::<String>(quoted).ok()?;
    (is_container_id(id) && crate::sys::process::token_ended(&token) == Some(true))
        .then(|| OwnedContainer(id.to_string()))
}

/// Remove the containers that builds killed midway left (a [`Container`] is removed on
/// drop, which a SIGKILL skips): only those never started (`created`), named
/// `smolvm-build-…` and labelled [`BUILD_LABEL`] by a process of this boot and PID
/// namespace that no longer runs ([`left_container`]). Each docker call gets 10 s (a
/// daemon that does not answer is left alone), and `stop` ends the sweep between two
/// removals. The ids removed.
pub fn sweep_build_containers(docker: &Path, stop: &dyn Fn() -> bool) -> Vec<String> {
    let bound = Duration::from_secs(10);
    let list = [
        docker.as_os_str().to_os_string(),
        "ps".into(),
        "--all".into(),
        "--no-trunc".into(),
        "--filter".into(),
        format!("label={BUILD_LABEL}").into(),
        "--filter".into(),
        "status=created".into(),
        "--filter".into(),
        format!("name={BUILD_NAME_PREFIX}").into(),
        "--format".into(),
        format!("{{{{.ID}}}} {{{{json (.Label \"{BUILD_LABEL}\")}}}}").into(),
    ];
    let Ok(Some((st, out, _))) = crate::sys::child::run_bounded(&list, bound) else {
        return Vec::new();
    };
    if !st.success() {
        return Vec::new();
    }
    let mut removed = Vec::new();
    for c in out.lines().filter_map(left_container) {
        if stop() {
            break;
        }
        if remove_container(docker, &c, bound) {
            removed.push(c.0);
        }
    }
    removed
}

/// A container this build created ([`docker_create`]): removed (`docker rm -f`) on drop.
pub struct Container {
    docker: PathBuf,
    owned: OwnedContainer,
}

impl Container {
    pub fn id(&self) -> &str {
        &self.owned.0
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        remove_container(&self.docker, &self.owned, Duration::from_secs(60));
    }
}

/// Which process of `docker export | tar -x` could not be run or waited for.
#[derive(Debug)]
pub enum ExportError {
    /// `docker export` could not be spawned.
    Docker(io::Error),
    /// `tar` could not be run.
    Tar(io::Error),
    /// Waiting for `docker export` failed.
    Wait(io::Error),
}

/// `docker export <id>` streamed into `tar -x --numeric-owner -p -C <tree>` (file
/// ownership kept): the `(export, tar)` outputs, their stderr captured.
pub fn docker_export(
    docker: &Path,
    container: &Container,
    tree: &Path,
) -> Result<(Output, Output), ExportError> {
    let mut export = Command::new(docker)
        .args(["export", container.id()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ExportError::Docker)?;
    let Some(stream) = export.stdout.take() else {
        return Err(ExportError::Docker(io::Error::other("no stdout pipe")));
    };
    let tar = Command::new("tar")
        .args(["-x", "--numeric-owner", "-p", "-C"])
        .arg(tree)
        .stdin(stream)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(ExportError::Tar)?;
    let exported = export.wait_with_output().map_err(ExportError::Wait)?;
    Ok((exported, tar))
}

/// Which half of a run failed: starting the process or waiting for it.
#[derive(Debug)]
pub enum RunError {
    Spawn(io::Error),
    Wait(io::Error),
}

/// `chroot <tree> /usr/bin/env PATH=… chpasswd`, fed `<user>:<password>` on stdin: the
/// tree's own `chpasswd` sets the password.
pub fn chroot_chpasswd(tree: &Path, user: &str, password: &str) -> Result<Output, RunError> {
    let mut child = Command::new("chroot")
        .arg(tree)
        .args([
            "/usr/bin/env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "chpasswd",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RunError::Spawn)?;
    if let Some(mut i) = child.stdin.take() {
        let _ = writeln!(i, "{user}:{password}");
    }
    child.wait_with_output().map_err(RunError::Wait)
}

/// `mkfs.ext4 -q -F -L rootfs -E root_owner=0:0 -d <tree> <out> <size>M`: an ext4 image
/// of the tree, without a loop mount; `stop` kills it (`Ok(None)`).
pub fn mkfs_ext4(
    tree: &Path,
    out: &Path,
    size_mib: u64,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<Output>> {
    let mut c = Command::new("mkfs.ext4");
    c.args(["-q", "-F", "-L", "rootfs", "-E", "root_owner=0:0", "-d"])
        .arg(tree)
        .arg(out)
        .arg(format!("{size_mib}M"));
    crate::sys::child::output_unless(c, stop)
}

/// An exclusive lock on the directory itself (no lock file), held until dropped.
pub fn lock_dir(dir: File) -> Result<nix::fcntl::Flock<File>, nix::errno::Errno> {
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e)
}

/// [`lock_dir`], but while another process holds it, tried again every 100 ms until
/// `stop` answers true (`Ok(None)`).
pub fn lock_dir_unless(
    dir: File,
    stop: &dyn Fn() -> bool,
) -> Result<Option<nix::fcntl::Flock<File>>, nix::errno::Errno> {
    use nix::fcntl::{Flock, FlockArg};
    let mut dir = dir;
    loop {
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(Some(l)),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                if stop() {
                    return Ok(None);
                }
                dir = f;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err((_, e)) => return Err(e),
        }
    }
}

/// Swap two paths atomically (`renameat2(RENAME_EXCHANGE)`): both must exist.
pub fn exchange(a: &Path, b: &Path) -> Result<(), nix::errno::Errno> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        a,
        nix::fcntl::AT_FDCWD,
        b,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
}

/// stdout then stderr of a step, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_id_with_a_label_of_an_ended_process_of_ours_is_a_left_container() {
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        let token = crate::sys::process::token_of(child.id() as i32).unwrap();
        let me = crate::sys::process::token_of(std::process::id() as i32).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let id = "0123456789abcdef".repeat(4);
        let line = |id: &str, label: &str| format!("{id} {}", serde_json::json!(label));
        assert_eq!(
            left_container(&line(&id, &token)),
            Some(OwnedContainer(id.clone()))
        );
        for (why, l) in [
            ("running", line(&id, &me)),
            ("short id", line(&id[1..], &token)),
            ("upper case", line(&id.to_uppercase(), &token)),
            ("another boot", line(&id, &format!("x{token}"))),
            ("unquoted", format!("{id} {token}")),
            ("no label", format!("{id} \"\"")),
            ("nothing", id.clone()),
        ] {
            assert_eq!(left_container(&l), None, "{why}: {l}");
        }
    }
}
