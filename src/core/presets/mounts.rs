//! Workspace mounts (`--mount HOST[:GUEST]`, `--writable-mounts`; QEMU only): host folders
//! shared over virtio-9p, tag `workspace<i>`. They are kept in the VM's config (`mounts`),
//! so every boot of it (`sandbox start` too) shares them again.
//!
//! The guest side is a script run over SSH once the guest is ready (as SmolVM does it over
//! its control channel), so any image with `mount` works — the published ones, the local
//! preset images and the tests' Debian image — and `/init` needs no new boot parameter:
//! writable → `mount -t 9p … rw` at the guest path; read-only → 9p `ro` at
//! `/mnt/.smolvm-ws-<tag>` plus an overlay (upper and work dirs under `/tmp`) at the guest
//! path, so the agent can write there without touching the host.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::error::{io_reason, Error, Result};

/// One shared folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The host folder, absolute and resolved (no symbolic link left in it).
    pub host_path: PathBuf,
    pub guest_path: String,
    /// virtio-9p mount tag, `workspace<i>`.
    pub tag: String,
    pub writable: bool,
    /// Given with `--unsafe-mount`: the folder may be one the rules below refuse.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_mount: bool,
}

/// Host folders a mount may not be, nor be above, without `--unsafe-mount`: sharing them
/// hands the guest the host's configuration, programs, users' homes or boot files.
pub const SYSTEM_FOLDERS: &[&str] = &["/", "/etc", "/root", "/home", "/usr", "/var", "/boot"];

/// One folder the mount rules protect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    pub path: PathBuf,
    /// What it is, for the refusal: "a system folder", "smolvm's data dir", …
    pub what: String,
    /// Whether a folder inside it is refused too (smolvm's own folders, SSH keys).
    pub inside_too: bool,
}

/// The protected folders: [`SYSTEM_FOLDERS`], the data dir, and `~/.smolvm` and `~/.ssh`
/// of each home given (this user's, and the invoking user's under sudo). Paths are
/// resolved where they exist, as mounts are.
pub fn protected(data_dir: &Path, homes: &[PathBuf]) -> Vec<Protected> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out: Vec<Protected> = SYSTEM_FOLDERS
        .iter()
        .map(|p| Protected {
            path: PathBuf::from(p),
            what: "a system folder".into(),
            inside_too: false,
        })
        .collect();
    out.push(Protected {
        path: real(data_dir),
        what: "smolvm's data dir".into(),
        inside_too: true,
    });
    for h in homes {
        let h = real(h);
        for (dir, what) in [(".smolvm", "smolvm's own files"), (".ssh", "SSH keys")] {
            out.push(Protected {
                path: h.join(dir),
                what: what.into(),
                inside_too: true,
            });
        }
    }
    out
}

/// Refuse (usage error, nothing changed) every mount of `mounts` that is a protected
/// folder, above one, or inside one that protects its insides — unless it was given with
/// `--unsafe-mount`. The error names the folders, the rule and the flag.
pub fn check_protected(mounts: &[Mount], protected: &[Protected]) -> Result<()> {
    for m in mounts.iter().filter(|m| !m.unsafe_mount) {
        let host = &m.host_path;
        let named = |p: &Protected| format!("{} ({})", p.path.display(), p.what);
        let why = if let Some(p) = protected.iter().find(|p| *host == p.path) {
            format!("it is {}", named(p))
        } else if let Some(p) = protected
            .iter()
            .find(|p| p.inside_too && host.starts_with(&p.path))
        {
            format!("it is inside {}", named(p))
        } else {
            let held: Vec<String> = protected
                .iter()
                .filter(|p| p.path.starts_with(host))
                .map(named)
                .collect();
            if held.is_empty() {
                continue;
            }
            format!("it holds {}", held.join(", "))
        };
        return Err(Error::usage(format!(
            "--mount {}: refused: {why}, which the guest must not get. Pass --unsafe-mount to mount it anyway",
            host.display()
        ))
        .with_recovery("Mount a project folder instead (e.g. --mount ~/project)."));
    }
    Ok(())
}

/// The kernel options a guest needs for the mounts (named when mounting fails).
pub const KERNEL_OPTIONS: &str =
    "CONFIG_NET_9P, CONFIG_NET_9P_VIRTIO, CONFIG_9P_FS, CONFIG_OVERLAY_FS";

/// Guest paths a workspace may not cover.
const SYSTEM_DIRS: &[&str] = &[
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
    "/sys", "/tmp", "/usr", "/var", "/mnt",
];

fn check_guest(p: &str) -> Result<()> {
    let bad = !p.starts_with('/')
        || p.split('/').any(|c| c == ".." || c == ".")
        || p.contains(['\0', '\n', '\'', ','])
        || p.len() > 256;
    if bad {
        return Err(Error::usage(format!(
            "--mount: guest path {p:?} must be absolute, without '..', quotes or commas"
        )));
    }
    let trimmed = p.trim_end_matches('/');
    if SYSTEM_DIRS.contains(&if trimmed.is_empty() { "/" } else { trimmed }) {
        return Err(Error::usage(format!(
            "--mount: guest path {p} would cover a system directory; use e.g. /workspace"
        )));
    }
    Ok(())
}

/// `HOST[:GUEST]` specs as given on the command line: the host folder must exist (it is
/// resolved to its real path); the guest path defaults to `/workspace` for one mount and
/// `/workspace-<i>` for several. Usage errors (exit 2) name the spec.
/// A path on this host as typed where no shell expands it (the dashboard's forms and
/// palette): `~` and `~/…` are the user's home; anything else as written. One rule for
/// every path a face takes as text.
pub fn typed_path(home: &Path, text: &str) -> PathBuf {
    match text.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if text == "~" => home.to_path_buf(),
        None => PathBuf::from(text),
    }
}

/// A `--mount` spec (`HOST[:GUEST]`) as typed where no shell expands it: its host part
/// read by [`typed_path`], split as [`parse_specs`] splits it.
pub fn typed_spec(home: &Path, spec: &str) -> String {
    let (host, guest) = split_spec(spec);
    let host = typed_path(home, host).display().to_string();
    match guest {
        Some(g) => format!("{host}:{g}"),
        None => host,
    }
}

/// `HOST[:GUEST]`: the guest part only when it is an absolute path after a non-empty host.
fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once(':') {
        Some((h, g)) if g.starts_with('/') && !h.is_empty() => (h, Some(g)),
        _ => (spec, None),
    }
}

pub fn parse_specs(specs: &[String], writable: bool) -> Result<Vec<Mount>> {
    let mut out: Vec<Mount> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let (host, guest) = split_spec(spec);
        let guest = guest.map(str::to_string);
        let guest = guest.unwrap_or_else(|| {
            if specs.len() == 1 {
                "/workspace".to_string()
            } else {
                format!("/workspace-{i}")
            }
        });
        check_guest(&guest)?;
        let real = std::fs::canonicalize(host).map_err(|e| {
            Error::usage(format!(
                "--mount {spec}: cannot use {host}: {}",
                io_reason(&e)
            ))
        })?;
        if !real.is_dir() {
            return Err(Error::usage(format!(
                "--mount {spec}: {} is not a directory",
                real.display()
            )));
        }
        if real.to_str().is_none_or(|s| s.contains(['\n', '\0'])) {
            return Err(Error::usage(format!(
                "--mount {spec}: the host path must be valid UTF-8 without newlines"
            )));
        }
        if out.iter().any(|m| m.guest_path == guest) {
            return Err(Error::usage(format!(
                "--mount: two mounts at the guest path {guest}"
            )));
        }
        out.push(Mount {
            host_path: real,
            guest_path: guest,
            tag: format!("workspace{i}"),
            writable,
            unsafe_mount: false,
        });
    }
    Ok(out)
}

/// The mounts a VM's config records (`[]` when none, or when the value is not ours).
pub fn from_config(config: &crate::sys::state::VmConfig) -> Vec<Mount> {
    config
        .extras
        .mounts
        .as_ref()
        .and_then(|v| serde_json::from_value::<Vec<Mount>>(v.clone()).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(is_ours)
        .collect()
}

/// A mount as `--mount` makes it: a guest path it accepts, tag `workspace<N>`, an absolute
/// host path.
pub fn is_ours(m: &Mount) -> bool {
    check_guest(&m.guest_path).is_ok()
        && m.tag
            .strip_prefix("workspace")
            .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
        && m.host_path.is_absolute()
}

/// QEMU's arguments for the mounts (`-fsdev` + `-device virtio-9p-…`). `roots[i]` is what
/// QEMU opens as the shared folder of `mounts[i]`: `/proc/self/fd/N` for a folder root
/// opened and handed over (the very folder that was checked, reached without walking the
/// folders above it as the VMM's user), else the host path itself.
pub fn qemu_args(mounts: &[Mount], roots: &[PathBuf], microvm: bool) -> Vec<String> {
    let mut a = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let root = roots.get(i).unwrap_or(&m.host_path);
        a.push("-fsdev".into());
        a.push(format!(
            "local,id=fsdev-{tag},path={path},security_model=mapped-xattr{ro}",
            tag = m.tag,
            path = crate::sys::vmm::qemu::escape(root),
            ro = if m.writable { "" } else { ",readonly=on" }
        ));
        a.push("-device".into());
        a.push(format!(
            "{},fsdev=fsdev-{tag},mount_tag={tag}",
            if microvm {
                "virtio-9p-device"
            } else {
                "virtio-9p-pci"
            },
            tag = m.tag
        ));
    }
    a
}

/// The script that mounts them in the guest (idempotent: a mount already there is kept).
pub fn guest_script(mounts: &[Mount]) -> String {
    let mut s = String::from(
        "set -e\n\
         mounted() { grep -qs \" $1 \" /proc/mounts; }\n\
         opts=trans=virtio,version=9p2000.L,msize=262144\n",
    );
    for m in mounts {
        let (tag, guest) = (&m.tag, &m.guest_path);
        if m.writable {
            s.push_str(&format!(
                "mkdir -p '{guest}'\nmounted '{guest}' || mount -t 9p -o $opts,rw {tag} '{guest}'\n"
            ));
        } else {
            s.push_str(&format!(
                "lower=/mnt/.smolvm-ws-{tag}; st=/tmp/.smolvm-ws-{tag}\n\
                 mkdir -p \"$lower\" \"$st/upper\" \"$st/work\" '{guest}'\n\
                 mounted \"$lower\" || mount -t 9p -o $opts,ro {tag} \"$lower\"\n\
                 mounted '{guest}' || mount -t overlay overlay -o \"lowerdir=$lower,upperdir=$st/upper,workdir=$st/work\" '{guest}'\n"
            ));
        }
    }
    s
}

/// The error when the guest could not mount them.
pub fn mount_failed(output: &str) -> Error {
    let hint = if output.contains("unknown filesystem type") || output.contains("No such device") {
        format!(" (the guest kernel needs {KERNEL_OPTIONS})")
    } else {
        String::new()
    };
    Error::runtime(format!(
        "cannot mount the workspace folders in the guest{hint}: {}",
        output.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_defaults_and_errors() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let b = t.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let one = parse_specs(&[a.display().to_string()], false).unwrap();
        assert_eq!(one[0].guest_path, "/workspace");
        assert_eq!(one[0].tag, "workspace0");
        assert!(!one[0].writable);
        let two = parse_specs(
            &[
                a.display().to_string(),
                format!("{}:/src/proj", b.display()),
            ],
            true,
        )
        .unwrap();
        assert_eq!(two[0].guest_path, "/workspace-0");
        assert_eq!(two[1].guest_path, "/src/proj");
        assert_eq!(two[1].tag, "workspace1");
        assert!(two[1].writable);
        for (spec, want) in [
            ("/no/such/dir", "cannot use /no/such/dir"),
            (&format!("{}:/etc", a.display()) as &str, "system directory"),
            (&format!("{}:/x/../etc", a.display()), "without '..'"),
        ] {
            let e = parse_specs(&[spec.to_string()], false).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.message.contains(want), "{spec}: {}", e.message);
        }
        let dup = parse_specs(
            &[format!("{}:/w", a.display()), format!("{}:/w", b.display())],
            false,
        );
        assert!(dup.unwrap_err().message.contains("two mounts"));
        // Round trip through a VM config.
        let cfg = |v| crate::sys::state::VmConfig::from_json(&v);
        assert_eq!(from_config(&cfg(serde_json::json!({ "mounts": two }))), two);
        assert!(from_config(&cfg(serde_json::json!({"mounts": [{"host_path": "/x", "guest_path": "/etc", "tag": "workspace0", "writable": true}]}))).is_empty());
    }

    #[test]
    fn protected_folders_above_and_inside() {
        let homes = [PathBuf::from("/home/alice")];
        let p = protected(Path::new("/var/lib/smolvm-test-data"), &homes);
        let m = |path: &str, unsafe_mount: bool| Mount {
            host_path: PathBuf::from(path),
            guest_path: "/w".into(),
            tag: "workspace0".into(),
            writable: true,
            unsafe_mount,
        };
        let refused = |path: &str| check_protected(&[m(path, false)], &p).unwrap_err();
        let e = refused("/etc");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.message,
            "--mount /etc: refused: it is /etc (a system folder), which the guest must not get. \
             Pass --unsafe-mount to mount it anyway"
        );
        assert!(refused("/").message.contains("it is / (a system folder)"));
        assert!(refused("/home").message.contains("/home (a system folder)"));
        let home = refused("/home/alice").message;
        assert!(
            home.contains(
                "it holds /home/alice/.smolvm (smolvm's own files), /home/alice/.ssh (SSH keys)"
            ),
            "{home}"
        );
        assert!(refused("/home/alice/.ssh/x")
            .message
            .contains("inside /home/alice/.ssh"));
        assert!(refused("/home/alice/.smolvm")
            .message
            .contains("smolvm's own files"));
        assert!(refused("/var/lib/smolvm-test-data/disks")
            .message
            .contains("data dir"));
        assert!(refused("/var/lib").message.contains("data dir"));
        for fine in [
            "/home/alice/project",
            "/srv/x",
            "/usr/local/src/p",
            "/var/www",
            "/etcetera",
        ] {
            assert!(check_protected(&[m(fine, false)], &p).is_ok(), "{fine}");
        }
        assert!(check_protected(&[m("/etc", true)], &p).is_ok());
    }

    #[test]
    fn qemu_and_guest_side() {
        let m = Mount {
            host_path: PathBuf::from("/h/a,b"),
            guest_path: "/workspace".into(),
            tag: "workspace0".into(),
            writable: false,
            unsafe_mount: false,
        };
        assert_eq!(
            qemu_args(std::slice::from_ref(&m), &[], false),
            [
                "-fsdev",
                "local,id=fsdev-workspace0,path=/h/a,,b,security_model=mapped-xattr,readonly=on",
                "-device",
                "virtio-9p-pci,fsdev=fsdev-workspace0,mount_tag=workspace0"
            ]
        );
        let s = guest_script(std::slice::from_ref(&m));
        assert!(
            s.contains("mount -t 9p -o $opts,ro workspace0 \"$lower\""),
            "{s}"
        );
        assert!(s.contains("mount -t overlay overlay"), "{s}");
        let w = Mount {
            writable: true,
            ..m
        };
        let s = guest_script(&[w]);
        assert!(
            s.contains("mount -t 9p -o $opts,rw workspace0 '/workspace'"),
            "{s}"
        );
        assert!(mount_failed("mount: unknown filesystem type '9p'")
            .message
            .contains(KERNEL_OPTIONS));
    }
}
