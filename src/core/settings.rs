//! Every `SMOLVM_*` variable smolvm reads: what it does, its default, and the check of its
//! value. The check is the parser the code that reads the variable uses (never a second
//! copy of its rule), so a value refused here is the value that would be refused (or, for
//! the few read where no error can be reported, ignored) later.
//!
//! The binary checks them all before any command runs, the dashboard included: any bad
//! value is a usage error (exit 2) naming every bad variable at once. `doctor` lists them
//! as a failed `settings` check instead. `smolvm man` prints the table as its ENVIRONMENT
//! section, and a test keeps the table and the source in step.

use super::error::{Error, Result};
use crate::sys::env::Env;
use crate::sys::http::HttpConfig;

/// One variable.
pub struct Setting {
    pub name: &'static str,
    /// What it does, and what it accepts.
    pub doc: &'static str,
    /// The value when unset, in words.
    pub default: &'static str,
    check: fn(&Env) -> Result<()>,
}

fn any(_: &Env) -> Result<()> {
    Ok(())
}

/// The variables, in the order `smolvm man` lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "SMOLVM_DATA_DIR",
        doc: "The data directory (state database, logs, VM disks); `~` expands.",
        default: "~/.local/state/smolvm, or /var/lib/smolvm as plain root",
        check: any,
    },
    Setting {
        name: "SMOLVM_SYSTEM_DATA_DIR",
        doc: "The system data directory read besides the user's; `~` expands.",
        default: "/var/lib/smolvm",
        check: any,
    },
    Setting {
        name: "SMOLVM_IMAGE_DIR",
        doc: "The images root (the --image-dir flag wins); `~` expands.",
        default: "~/.smolvm/images",
        check: any,
    },
    Setting {
        name: "SMOLVM_SOCKET_DIR",
        doc: "Where the VMMs' control sockets go; `~` expands.",
        default: "/tmp",
        check: any,
    },
    Setting {
        name: "SMOLVM_IMAGE_VERSION",
        doc: "The image version presets pull and prune keeps (letters, digits, . + - _).",
        default: "this smolvm's version",
        check: |env| super::version::image_version(env).map(drop),
    },
    Setting {
        name: "SMOLVM_MANIFEST",
        doc: "The image manifest: an http(s) URL, a file: URL or a path.",
        default: "the manifest built into smolvm",
        check: |env| super::images::manifest::source(env).map(drop),
    },
    Setting {
        name: "SMOLVM_USE_PUBLISHED",
        doc: "0 builds preset images locally instead of pulling published ones (yes/no).",
        default: "1",
        check: |env| Ok(env.flag("SMOLVM_USE_PUBLISHED").map(drop)?),
    },
    Setting {
        name: "SMOLVM_DEBIAN_MIRROR",
        doc: "The Debian mirror local image builds use (an http:// or https:// URL).",
        default: "the host's apt source on Debian, else deb.debian.org",
        check: |env| Ok(super::builder::recipe::mirror_setting(env).map(drop)?),
    },
    Setting {
        name: "SMOLVM_DOCKER_TIMEOUT_MS",
        doc: "How long `docker version` may take before Docker counts as down (milliseconds).",
        default: "10000 (10 s)",
        check: |env| Ok(super::docker::info_timeout(env).map(drop)?),
    },
    Setting {
        name: "SMOLVM_HTTP_TIMEOUT_SECS",
        doc: "The limit of one download request, in seconds (more than 0, at most 24 h).",
        default: "30",
        check: |env| Ok(HttpConfig::timeout(env).map(drop)?),
    },
    Setting {
        name: "SMOLVM_HTTP_RETRIES",
        doc: "Retries of a failed download after the first try (0 to 100).",
        default: "4",
        check: |env| Ok(HttpConfig::retries(env).map(drop)?),
    },
    Setting {
        name: "SMOLVM_HTTP_BACKOFF_MS",
        doc: "The first pause between download retries, in milliseconds (0 to 60000).",
        default: "500",
        check: |env| Ok(HttpConfig::backoff(env).map(drop)?),
    },
    Setting {
        name: "SMOLVM_CONSOLE_LOG_MAX",
        doc: "The bound of a VM's console log (`<data dir>/<id>.log`), in bytes (at least \
              65536): past it the log starts again, so a guest cannot fill the disk.",
        default: "67108864 (64 MiB)",
        check: |env| super::start::console_log_max(env).map(drop),
    },
    Setting {
        name: "SMOLVM_STOP_TIMEOUT",
        doc: "How long a stop waits for the guest to power off, in seconds (--timeout wins).",
        default: "3 for sandbox stop and the dashboard's, 10 for cleanup",
        check: |env| super::vm::stop_timeout(env, None).map(drop),
    },
    Setting {
        name: "SMOLVM_LOCK_TIMEOUT",
        doc: "How long a command waits for another's lock on a VM or a cleanup, in seconds.",
        default: "10",
        check: |env| super::lock::lock_timeout(env).map(drop),
    },
    Setting {
        name: "SMOLVM_DB_BUSY_TIMEOUT",
        doc: "How long cleanup waits for a busy state database, in seconds.",
        default: "30",
        check: |env| super::cleanup::busy_timeout(env).map(drop),
    },
    Setting {
        name: "SMOLVM_CLEANUP_PARALLEL",
        doc: "How many teardowns cleanup runs at once (1 to 1024).",
        default: "64",
        check: |env| super::cleanup::parallel(env).map(drop),
    },
    Setting {
        name: "SMOLVM_ACCEL",
        doc: "QEMU's accelerator: auto, kvm or tcg (--accel wins).",
        default: "auto (KVM with hardware KVM, else TCG)",
        check: |env| match env.get_str("SMOLVM_ACCEL") {
            Some(v) => super::host::accel_env(v).map(drop),
            None => Ok(()),
        },
    },
    Setting {
        name: "SMOLVM_QEMU_MACHINE",
        doc: "QEMU's machine: auto, q35 or microvm.",
        default: "auto (microvm with KVM, q35 with TCG)",
        check: |env| match env.get_str("SMOLVM_QEMU_MACHINE") {
            Some(v) => super::host::machine(Some(v), crate::sys::vmm::Accel::Tcg).map(drop),
            None => Ok(()),
        },
    },
    Setting {
        name: "SMOLVM_QEMU_BIN",
        doc: "The QEMU binary to run.",
        default: "qemu-system-<arch> on PATH",
        check: any,
    },
    Setting {
        name: "SMOLVM_FIRECRACKER_BIN",
        doc: "The Firecracker binary to run.",
        default: "firecracker on PATH, else ~/.smolvm/bin/firecracker",
        check: any,
    },
    Setting {
        name: "SMOLVM_SYS_MODULE",
        doc: "Another /sys/module to read when probing KVM (for tests).",
        default: "/sys/module",
        check: any,
    },
    Setting {
        name: "SMOLVM_PUBLISH_SSH",
        doc: "1 publishes new sandboxes' SSH port beyond 127.0.0.1 (yes/no; --publish-ssh wins).",
        default: "0",
        check: |env| super::egress::publish_from_env(env).map(drop),
    },
    Setting {
        name: "SMOLVM_EGRESS_DNS_UPSTREAM",
        doc: "The DNS server the sandboxes' resolver asks (an address or address:port).",
        default: "the host's first nameserver",
        check: |env| {
            crate::sys::resolver::upstream(env.get_str("SMOLVM_EGRESS_DNS_UPSTREAM"))
                .map(drop)
                .map_err(Error::usage)
        },
    },
    Setting {
        name: "SMOLVM_READONLY",
        doc: "1 refuses every command that changes anything (yes/no; like --readonly).",
        default: "0",
        check: |env| Ok(env.flag("SMOLVM_READONLY").map(drop)?),
    },
    Setting {
        name: "SMOLVM_LOG",
        doc: "The log filter (`info`, `smolvm=debug`, …) of the log file and -v output.",
        default: "info",
        check: |env| Ok(super::logging::filter(env).map(drop)?),
    },
    Setting {
        name: "SMOLVM_LOG_MAX_BYTES",
        doc: "The size at which the log file is rotated, in bytes (4096 to 1073741824).",
        default: "4194304",
        check: |env| Ok(super::logging::max_bytes(env).map(drop)?),
    },
];

/// Every set variable whose value is refused, in [`SETTINGS`] order (one error each).
pub fn problems(env: &Env) -> Vec<Error> {
    SETTINGS
        .iter()
        .filter_map(|s| (s.check)(env).err())
        .collect()
}

/// All is well, or one usage error (exit 2) naming every bad variable.
pub fn check(env: &Env) -> Result<()> {
    let found = problems(env);
    if found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = found.into_iter().map(|e| e.message).collect();
    Err(Error::usage(lines.join("\n"))
        .with_recovery("Unset the variable or give it a valid value (smolvm man: ENVIRONMENT)."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::from_vars(vars.iter().copied(), 1000)
    }

    /// The defaults `man` states are the ones the code uses.
    #[test]
    fn stated_defaults_are_the_codes() {
        let stated = |name: &str| SETTINGS.iter().find(|s| s.name == name).unwrap().default;
        let secs = |d: std::time::Duration| d.as_secs().to_string();
        assert_eq!(
            stated("SMOLVM_LOCK_TIMEOUT"),
            secs(super::super::lock::DEFAULT_LOCK_TIMEOUT)
        );
        assert_eq!(
            stated("SMOLVM_DB_BUSY_TIMEOUT"),
            secs(crate::sys::state::DEFAULT_BUSY_TIMEOUT)
        );
        let ms = super::super::docker::INFO_TIMEOUT.as_millis();
        assert!(stated("SMOLVM_DOCKER_TIMEOUT_MS").starts_with(&format!("{ms} ")));
    }

    #[test]
    fn defaults_pass_and_each_bad_value_names_its_variable() {
        assert!(problems(&env(&[])).is_empty());
        let bad = [
            ("SMOLVM_HTTP_RETRIES", "-3"),
            ("SMOLVM_HTTP_BACKOFF_MS", "soon"),
            ("SMOLVM_LOG", "smolvm=["),
            ("SMOLVM_LOG_MAX_BYTES", "abc"),
            ("SMOLVM_IMAGE_VERSION", "../x"),
            ("SMOLVM_STOP_TIMEOUT", "abc"),
            ("SMOLVM_USE_PUBLISHED", "perhaps"),
            ("SMOLVM_READONLY", "maybe"),
            ("SMOLVM_PUBLISH_SSH", "2"),
            (
                "SMOLVM_DEBIAN_MIRROR",
                "http://x/debian stable main\ndeb http://evil",
            ),
            ("SMOLVM_DOCKER_TIMEOUT_MS", "0"),
            ("SMOLVM_CLEANUP_PARALLEL", "0"),
            ("SMOLVM_ACCEL", "fast"),
            ("SMOLVM_QEMU_MACHINE", "pc"),
            ("SMOLVM_EGRESS_DNS_UPSTREAM", "dns.example"),
            ("SMOLVM_MANIFEST", "https://[::1"),
        ];
        for (name, value) in bad {
            let found = problems(&env(&[(name, value)]));
            assert_eq!(found.len(), 1, "{name}={value:?}: {found:?}");
            assert!(
                found[0].message.starts_with(name),
                "{name}: {}",
                found[0].message
            );
            assert_eq!(found[0].exit_code(), 2, "{name}");
        }
        let all = check(&env(&bad)).unwrap_err();
        for (name, _) in bad {
            assert!(
                all.message.contains(name),
                "{name} missing from {}",
                all.message
            );
        }
    }

    #[test]
    fn good_values_pass() {
        let good = [
            ("SMOLVM_HTTP_RETRIES", "0"),
            ("SMOLVM_LOG", "smolvm=debug,warn"),
            ("SMOLVM_LOG_MAX_BYTES", "4096"),
            ("SMOLVM_IMAGE_VERSION", "0.0.36"),
            ("SMOLVM_USE_PUBLISHED", "no"),
            ("SMOLVM_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
            ("SMOLVM_ACCEL", "tcg"),
            ("SMOLVM_QEMU_MACHINE", "microvm"),
            ("SMOLVM_EGRESS_DNS_UPSTREAM", "10.0.0.1:5353"),
            ("SMOLVM_MANIFEST", "/tmp/manifest.toml"),
            ("SMOLVM_STOP_TIMEOUT", "2.5"),
        ];
        assert!(
            problems(&env(&good)).is_empty(),
            "{:?}",
            problems(&env(&good))
        );
    }

    /// Every `SMOLVM_*` name the code reads is in the table (and documented by `smolvm
    /// man`); every name in the table is read somewhere.
    #[test]
    fn the_table_lists_exactly_the_variables_the_code_reads() {
        // Read by the state fuzzer only (a test module).
        const TEST_ONLY: &[&str] = &["SMOLVM_FUZZ_SEED", "SMOLVM_FUZZ_CASES"];
        let mut read = std::collections::BTreeSet::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("settings.rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for part in text.split("\"SMOLVM_").skip(1) {
                        let name: String = part
                            .chars()
                            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                            .collect();
                        if part[name.len()..].starts_with('"') {
                            read.insert(format!("SMOLVM_{name}"));
                        }
                    }
                }
            }
        }
        let listed: std::collections::BTreeSet<String> =
            SETTINGS.iter().map(|s| s.name.to_string()).collect();
        let read: std::collections::BTreeSet<String> = read
            .into_iter()
            .filter(|n| !TEST_ONLY.contains(&n.as_str()))
            .collect();
        assert_eq!(listed, read, "SETTINGS vs the names the code reads");
    }
}
