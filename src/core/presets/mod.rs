//! The preset registry (SmolVM `presets/__init__.py`) and the limits of a start: one list,
//! one order, one set of messages for the CLI's subcommands and flags, the dashboard's form
//! and `core::start`.
//!
//! The presets are data: `assets/presets.toml` is compiled in, and
//! `$XDG_CONFIG_HOME/smolvm/presets.toml` (or `~/.config/smolvm/presets.toml`) adds presets
//! or overrides fields of the built-in ones. The user's file is validated entry by entry
//! like the keymap: a problem is reported ([`Registry::problems`]) and that entry keeps
//! its built-in definition (or, for a new one, is left out); nothing panics.
//!
//! * [`forward`]: host configs and env vars into a started guest;
//! * [`attach`]: the launch command over `ssh -t`;
//! * [`mounts`]: workspace folders shared over virtio-9p.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{Error, Result};
use crate::sys::env::Env;

pub mod forward;
pub mod mounts;

/// The built-in presets' file.
pub const BUILTIN: &str = include_str!("../../../assets/presets.toml");

/// A host config copied into the guest at start when it exists on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// `~/…` (under the invoking user's home) or absolute.
    pub host: String,
    /// Absolute path in the guest.
    pub guest: String,
    /// The file's mode (a directory's own mode; its files keep theirs, without group and
    /// other bits when this mode has none).
    pub mode: u32,
    /// For a JSON file: only these top-level keys are copied (the file is minimised on
    /// the host first; empty: copied as it is). `~/.claude.json` keeps the login and the
    /// onboarding state, never the host's per-project history and paths.
    pub json_keep: Vec<String>,
}

impl HostConfig {
    /// The host path, `~/` resolved against `home`.
    pub fn host_path(&self, home: &Path) -> PathBuf {
        match self.host.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => PathBuf::from(&self.host),
        }
    }
}

/// How a base gets the agent: packages from the distribution, then shell steps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipe {
    pub packages: Vec<String>,
    pub steps: Vec<String>,
}

/// A tool version the install must leave (`node >= 24.15`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// `node` or `python`.
    pub tool: String,
    /// At least this version, as numbers (`[24, 15]`).
    pub at_least: Vec<u32>,
}

impl Requirement {
    /// The command printing the tool's version, and what the tool is called in messages.
    pub fn probe(&self) -> (&'static str, &'static str) {
        match self.tool.as_str() {
            "node" => ("node --version", "Node.js"),
            _ => ("python3 --version", "Python"),
        }
    }

    pub fn shown(&self) -> String {
        self.at_least
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Whether the version a probe printed (`v18.19.0`, `Python 3.11.2`) is new enough;
    /// `None` when it printed no version.
    pub fn met_by(&self, printed: &str) -> Option<bool> {
        let have = parse_version(printed)?;
        Some(have >= self.at_least)
    }
}

/// The first `N.N[.N]` in `text` as numbers.
pub fn parse_version(text: &str) -> Option<Vec<u32>> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.contains('.') && w.split('.').all(|p| !p.is_empty()))
        .map(|w| w.split('.').filter_map(|p| p.parse().ok()).collect())
}

/// One preset: its canonical name, the aliases that mean it, and its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub name: String,
    pub aliases: Vec<String>,
    pub description: String,
    pub memory_mib: u32,
    pub disk_mib: u64,
    /// What attach runs in the guest.
    pub launch: String,
    /// Run in the new root after the install steps.
    pub verify: Option<String>,
    /// Host environment variables forwarded when set.
    pub env: Vec<String>,
    pub configs: Vec<HostConfig>,
    pub debian: Option<Recipe>,
    pub alpine: Option<Recipe>,
    pub requires: Vec<Requirement>,
    /// `<preset> start` is a warm start unless `--cold` (`warm = true`).
    pub warm: bool,
}

impl Preset {
    /// The recipe for a base, or the error naming what is missing.
    pub fn recipe(&self, base: super::builder::Base) -> Result<&Recipe> {
        let r = match base {
            super::builder::Base::Debian => self.debian.as_ref(),
            super::builder::Base::Alpine => self.alpine.as_ref(),
        };
        r.ok_or_else(|| {
            let have: Vec<&str> = [("debian", &self.debian), ("alpine", &self.alpine)]
                .iter()
                .filter(|(_, r)| r.is_some())
                .map(|(n, _)| *n)
                .collect();
            Error::usage(format!(
                "Preset '{}' has no recipe for the {} base (it has: {})",
                self.name,
                base.as_str(),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ))
        })
    }
}

/// A preset entry as written in a file: every field optional, so the user's file can
/// override single fields of a built-in preset.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreset {
    aliases: Option<Vec<String>>,
    description: Option<String>,
    memory_mib: Option<u32>,
    disk_mib: Option<u64>,
    launch: Option<String>,
    verify: Option<String>,
    env: Option<Vec<String>>,
    configs: Option<Vec<RawConfig>>,
    debian: Option<RawRecipe>,
    alpine: Option<RawRecipe>,
    requires: Option<BTreeMap<String, String>>,
    warm: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    host: String,
    guest: String,
    mode: u32,
    #[serde(default)]
    json_keep: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    steps: Vec<String>,
}

impl RawPreset {
    /// `self` over `base`, field by field.
    fn over(self, base: &RawPreset) -> RawPreset {
        let b = base.clone();
        RawPreset {
            aliases: self.aliases.or(b.aliases),
            description: self.description.or(b.description),
            memory_mib: self.memory_mib.or(b.memory_mib),
            disk_mib: self.disk_mib.or(b.disk_mib),
            launch: self.launch.or(b.launch),
            verify: self.verify.or(b.verify),
            env: self.env.or(b.env),
            configs: self.configs.or(b.configs),
            debian: self.debian.or(b.debian),
            alpine: self.alpine.or(b.alpine),
            requires: self.requires.or(b.requires),
            warm: self.warm.or(b.warm),
        }
    }
}

/// Words `smolvm` itself uses as subcommands (and `version`): no preset may take them as
/// its name or an alias — two subcommands of one name are no grammar. The CLI's tests hold
/// every top-level subcommand of its grammar here.
pub const RESERVED: &[&str] = &[
    "tui",
    "prune",
    "image",
    "images",
    "cleanup",
    "sandbox",
    "doctor",
    "bridge",
    "completions",
    "completion",
    "man",
    "help",
    "version",
];

fn is_plain_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && !s.ends_with('-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_package_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+.-_:".contains(c))
}

fn one_line(s: &str) -> bool {
    !s.trim().is_empty() && !s.contains(['\n', '\r', '\0'])
}

fn check_guest_path(p: &str) -> std::result::Result<(), String> {
    if !p.starts_with('/') || p.split('/').any(|c| c == "..") || p.contains('\0') || p == "/" {
        return Err(format!("guest path {p:?} must be absolute, without '..'"));
    }
    Ok(())
}

/// A complete preset from a merged entry, or what is wrong with it.
fn validate(name: &str, raw: RawPreset) -> std::result::Result<Preset, String> {
    if !is_plain_name(name) {
        return Err(format!(
            "preset name {name:?}: use 1-32 lowercase letters, digits and '-', starting with a letter"
        ));
    }
    let aliases = raw.aliases.unwrap_or_default();
    for a in &aliases {
        if !is_plain_name(a) || a == name {
            return Err(format!(
                "alias {a:?}: use 1-32 lowercase letters, digits and '-'"
            ));
        }
    }
    for n in std::iter::once(name).chain(aliases.iter().map(String::as_str)) {
        if RESERVED.contains(&n) {
            return Err(format!("{n:?} is a smolvm command, not a preset name"));
        }
    }
    let memory_mib = raw.memory_mib.unwrap_or(2048);
    if !MEMORY_MIB.contains(&memory_mib) {
        return Err(parse_memory("").unwrap_err());
    }
    let disk_mib = raw.disk_mib.unwrap_or(8192);
    if !DISK_MIB.contains(&disk_mib) {
        return Err(parse_disk("").unwrap_err());
    }
    let launch = raw
        .launch
        .ok_or("launch: missing (the command attach runs)")?;
    if !one_line(&launch) {
        return Err("launch: one line of shell".into());
    }
    if let Some(v) = &raw.verify {
        if !one_line(v) {
            return Err("verify: one line of shell".into());
        }
    }
    let env = raw.env.unwrap_or_default();
    if let Some(k) = env.iter().find(|k| !super::guest_env::is_valid_key(k)) {
        return Err(format!(
            "env: {k:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ));
    }
    let mut configs = Vec::new();
    for c in raw.configs.unwrap_or_default() {
        let host_ok = (c.host.starts_with("~/") || c.host.starts_with('/'))
            && !c.host.split('/').any(|x| x == "..")
            && !c.host.contains('\0');
        if !host_ok {
            return Err(format!(
                "configs: host path {:?} must start with ~/ or /, without '..'",
                c.host
            ));
        }
        check_guest_path(&c.guest).map_err(|e| format!("configs: {e}"))?;
        if c.mode > 0o777 {
            return Err(format!("configs: mode {:o} is more than 0o777", c.mode));
        }
        if let Some(k) = c
            .json_keep
            .iter()
            .find(|k| k.is_empty() || k.len() > 128 || k.chars().any(char::is_control))
        {
            return Err(format!(
                "configs: json_keep key {k:?} is empty, too long or has control characters"
            ));
        }
        configs.push(HostConfig {
            host: c.host,
            guest: c.guest,
            mode: c.mode,
            json_keep: c.json_keep,
        });
    }
    let recipe =
        |r: Option<RawRecipe>, base: &str| -> std::result::Result<Option<Recipe>, String> {
            let Some(r) = r else { return Ok(None) };
            if let Some(p) = r.packages.iter().find(|p| !is_package_name(p)) {
                return Err(format!("{base}.packages: {p:?} is not a package name"));
            }
            if r.steps
                .iter()
                .any(|s| s.trim().is_empty() || s.contains('\0'))
            {
                return Err(format!("{base}.steps: a step is empty"));
            }
            Ok(Some(Recipe {
                packages: r.packages,
                steps: r.steps,
            }))
        };
    let debian = recipe(raw.debian, "debian")?;
    let alpine = recipe(raw.alpine, "alpine")?;
    let mut requires = Vec::new();
    for (tool, v) in raw.requires.unwrap_or_default() {
        if tool != "node" && tool != "python" {
            return Err(format!("requires: unknown tool {tool:?} (node or python)"));
        }
        let at_least: Vec<u32> = v
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()
            .filter(|v: &Vec<u32>| !v.is_empty() && v.len() <= 3)
            .ok_or_else(|| format!("requires.{tool}: {v:?} is not a version such as \"24.15\""))?;
        requires.push(Requirement { tool, at_least });
    }
    Ok(Preset {
        name: name.to_string(),
        aliases,
        description: raw.description.unwrap_or_default(),
        memory_mib,
        disk_mib,
        launch,
        verify: raw.verify,
        env,
        configs,
        debian,
        alpine,
        requires,
        warm: raw.warm.unwrap_or(false),
    })
}

/// The presets in force and what went wrong reading the user's file.
#[derive(Debug, Clone)]
pub struct Registry {
    pub presets: Vec<Preset>,
    /// Problems in the user's file, each saying what was done about it.
    pub problems: Vec<String>,
}

fn raw_entries(text: &str) -> std::result::Result<Vec<(String, toml::Value)>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
    Ok(table.into_iter().collect())
}

fn builtin_raw() -> Vec<(String, RawPreset)> {
    raw_entries(BUILTIN)
        .expect("assets/presets.toml parses")
        .into_iter()
        .map(|(n, v)| {
            let raw = RawPreset::deserialize(v).expect("assets/presets.toml entries parse");
            (n, raw)
        })
        .collect()
}

impl Registry {
    /// The built-in presets (`assets/presets.toml`).
    pub fn builtin() -> Registry {
        Registry::with_user(None, "")
    }

    /// The built-in presets, with the user's file text (from `origin`) over them.
    pub fn with_user(text: Option<&str>, origin: &str) -> Registry {
        let mut raws = builtin_raw();
        let mut problems = Vec::new();
        let mut user_names = Vec::new();
        if let Some(text) = text {
            match raw_entries(text) {
                Err(e) => problems.push(format!("{origin}: {e}; using the built-in presets")),
                Ok(entries) => {
                    for (name, value) in entries {
                        let raw = match RawPreset::deserialize(value) {
                            Ok(r) => r,
                            Err(e) => {
                                problems.push(format!(
                                    "{origin}: [{name}]: {}; ignored",
                                    e.to_string().trim()
                                ));
                                continue;
                            }
                        };
                        let pos = raws.iter().position(|(n, _)| *n == name);
                        let merged = match pos {
                            Some(i) => raw.over(&raws[i].1),
                            None => raw,
                        };
                        if let Err(e) = validate(&name, merged.clone()) {
                            problems.push(format!(
                                "{origin}: [{name}]: {e}; {}",
                                if pos.is_some() {
                                    "keeping the built-in preset"
                                } else {
                                    "ignored"
                                }
                            ));
                            continue;
                        }
                        match pos {
                            Some(i) => raws[i].1 = merged,
                            None => raws.push((name.clone(), merged)),
                        }
                        user_names.push(name);
                    }
                }
            }
        }
        let mut presets: Vec<Preset> = Vec::new();
        for (name, raw) in raws {
            let p = validate(&name, raw).expect("presets are validated before they are kept");
            // A name or alias another preset already answers to: the later one is left out
            // (a built-in one never clashes; the tests hold that).
            let taken = presets.iter().find(|q| {
                std::iter::once(&p.name)
                    .chain(&p.aliases)
                    .any(|n| q.name == *n || q.aliases.contains(n))
            });
            if let Some(q) = taken {
                problems.push(format!(
                    "{origin}: [{}]: a name or alias is already preset {}'s; ignored",
                    p.name, q.name
                ));
                continue;
            }
            presets.push(p);
        }
        presets.sort_by(|a, b| a.name.cmp(&b.name));
        Registry { presets, problems }
    }

    /// The user's file: `$XDG_CONFIG_HOME/smolvm/presets.toml`, else
    /// `~/.config/smolvm/presets.toml`.
    pub fn user_file(env: &Env) -> PathBuf {
        env.get("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| env.home().join(".config"))
            .join("smolvm")
            .join("presets.toml")
    }

    /// The built-in presets and the user's file, when there is one.
    pub fn load(env: &Env) -> Registry {
        let path = Registry::user_file(env);
        let origin = crate::sys::paths::display_path(&path, &env.home());
        match crate::sys::open::read_to_string(&path) {
            Ok(text) => Registry::with_user(Some(&text), &origin),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Registry::builtin(),
            Err(e) => {
                let mut r = Registry::builtin();
                r.problems.push(format!(
                    "{origin}: {}; using the built-in presets",
                    super::error::io_reason(&e)
                ));
                r
            }
        }
    }

    /// The canonical names, in registry order.
    pub fn names(&self) -> Vec<&str> {
        self.presets.iter().map(|p| p.name.as_str()).collect()
    }

    /// Every name a preset answers to: each canonical name followed by its aliases, in
    /// registry order.
    pub fn spellings(&self) -> impl Iterator<Item = &str> {
        self.presets
            .iter()
            .flat_map(|p| std::iter::once(&p.name).chain(&p.aliases))
            .map(String::as_str)
    }

    /// The canonical name a name or alias means; anything else as given.
    pub fn canonical<'a>(&'a self, name: &'a str) -> &'a str {
        self.find(name).map_or(name, |p| p.name.as_str())
    }

    /// The preset a name or alias means.
    pub fn find(&self, name: &str) -> Option<&Preset> {
        self.presets
            .iter()
            .find(|p| p.name == name || p.aliases.iter().any(|a| a == name))
    }

    /// The preset `name` means, or SmolVM's usage error listing the available ones.
    pub fn lookup(&self, name: &str) -> Result<&Preset> {
        self.find(name).ok_or_else(|| {
            Error::usage(format!(
                "Unknown preset '{name}'. Available: {}",
                self.names().join(", ")
            ))
        })
    }
}

/// Guest memory, MiB (SmolVM's `VMConfig`: 128 to 16384).
pub const MEMORY_MIB: RangeInclusive<u32> = 128..=16384;
/// Guest vCPUs (1 to 32).
pub const VCPUS: RangeInclusive<u32> = 1..=32;
/// A grown disk, MiB (1 GiB to 1 TiB).
pub const DISK_MIB: RangeInclusive<u64> = 1024..=1_048_576;
/// vCPUs when none are asked for (the VM config's default).
pub const DEFAULT_VCPUS: u32 = crate::sys::state::DEFAULT_VCPUS;
/// Memory of a sandbox from a kernel and rootfs (presets have their own; the VM config's
/// default).
pub const DEFAULT_MEMORY_MIB: u32 = crate::sys::state::DEFAULT_MEMORY_MIB;

/// The memory of a new sandbox that asks for none: its preset's, else
/// [`DEFAULT_MEMORY_MIB`] (a built image, a kernel and rootfs). Both faces show it.
pub fn default_memory_mib(preset: Option<&Preset>) -> u32 {
    preset.map_or(DEFAULT_MEMORY_MIB, |p| p.memory_mib)
}

fn whole<T>(text: &str, range: &RangeInclusive<T>, what: &str) -> std::result::Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match text.trim().parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(format!("{what} from {} to {}", range.start(), range.end())),
    }
}

/// `--memory` / the form's memory field.
pub fn parse_memory(text: &str) -> std::result::Result<u32, String> {
    whole(text, &MEMORY_MIB, "memory: a whole number of MiB")
}

/// `--cpus` / the form's CPUs field.
pub fn parse_vcpus(text: &str) -> std::result::Result<u32, String> {
    whole(text, &VCPUS, "CPUs: a whole number")
}

/// `--disk-size` / the form's disk field.
pub fn parse_disk(text: &str) -> std::result::Result<u64, String> {
    whole(text, &DISK_MIB, "disk size: a whole number of MiB")
}

/// The limits checked again on values that did not come through a parser (a library
/// caller's `StartOptions`): the same messages, as usage errors.
pub fn check_limits(
    memory_mib: Option<u32>,
    vcpus: Option<u32>,
    disk_mib: Option<u64>,
) -> Result<()> {
    let check = |ok: bool, msg: std::result::Result<(), String>| -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(Error::usage(msg.err().unwrap_or_default()))
        }
    };
    if let Some(m) = memory_mib {
        check(MEMORY_MIB.contains(&m), parse_memory("").map(|_| ()))?;
    }
    if let Some(c) = vcpus {
        check(VCPUS.contains(&c), parse_vcpus("").map(|_| ()))?;
    }
    if let Some(d) = disk_mib {
        check(DISK_MIB.contains(&d), parse_disk("").map(|_| ()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_aliases_and_defaults() {
        let r = Registry::builtin();
        assert_eq!(
            r.names(),
            [
                "claude-code",
                "codex",
                "hermes",
                "openclaw",
                "opencode",
                "pi"
            ]
        );
        assert_eq!(r.canonical("claude"), "claude-code");
        assert_eq!(r.canonical("claw"), "openclaw");
        assert_eq!(r.canonical("codex"), "codex");
        assert_eq!(r.canonical("nope"), "nope");
        assert_eq!(r.find("hermes").unwrap().disk_mib, 10240);
        assert_eq!(r.find("claw").unwrap().memory_mib, 2048);
        assert_eq!(
            r.lookup("nope").unwrap_err().message,
            "Unknown preset 'nope'. Available: claude-code, codex, hermes, openclaw, opencode, pi"
        );
        let c = r.find("claude").unwrap();
        assert_eq!(
            (c.launch.as_str(), c.verify.as_deref()),
            ("claude", Some("claude --version"))
        );
        assert_eq!(c.env, ["ANTHROPIC_API_KEY"]);
        let creds = c
            .configs
            .iter()
            .find(|x| x.host == "~/.claude/.credentials.json")
            .unwrap();
        assert_eq!(
            (creds.guest.as_str(), creds.mode),
            ("/root/.claude/.credentials.json", 0o600)
        );
        assert_eq!(
            c.debian.as_ref().unwrap().packages,
            ["nodejs", "npm", "git"]
        );
        let need = |p: &str| {
            r.find(p)
                .unwrap()
                .requires
                .iter()
                .map(|r| (r.tool.clone(), r.shown()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            need("openclaw"),
            [("node".to_string(), "24.15".to_string())]
        );
        assert_eq!(need("pi"), [("node".to_string(), "20.6".to_string())]);
        assert_eq!(need("hermes"), [("python".to_string(), "3.11".to_string())]);
        let e = r
            .find("openclaw")
            .unwrap()
            .recipe(crate::core::builder::Base::Alpine)
            .unwrap_err();
        assert_eq!(
            e.message,
            "Preset 'openclaw' has no recipe for the alpine base (it has: debian)"
        );
    }

    #[test]
    fn spellings_are_each_name_then_its_aliases_and_canonical_reads_the_users_file() {
        let builtin = Registry::builtin();
        assert_eq!(
            builtin.spellings().collect::<Vec<_>>(),
            [
                "claude-code",
                "claude",
                "codex",
                "hermes",
                "openclaw",
                "claw",
                "opencode",
                "pi"
            ]
        );
        let r = Registry::with_user(
            Some("[mine]\naliases = [\"my\"]\nlaunch = \"x\"\n[mine.debian]\nsteps = [\"true\"]\n"),
            "f.toml",
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let all: Vec<&str> = r.spellings().collect();
        assert!(all.contains(&"mine") && all.contains(&"my"), "{all:?}");
        assert_eq!(r.canonical("my"), "mine");
        assert_eq!(r.canonical("claw"), "openclaw");
        assert_eq!(r.canonical("nope"), "nope");
        // The built-in lookup does not know the user's alias.
        assert_eq!(Registry::builtin().canonical("my"), "my");
    }

    #[test]
    fn the_users_file_adds_and_overrides_and_bad_entries_are_reported() {
        let text = r#"
[claude-code]
memory_mib = 4096
launch = "claude --dangerously-skip-permissions"

[marker]
launch = "echo hi; exit 3"
[marker.debian]
steps = ["true"]

[bad-mem]
launch = "x"
memory_mib = 64

[codex]
launch = "two\nlines"

[typo]
launch = "x"
lunch = "y"

[image]
launch = "x"

[dup]
aliases = ["claude"]
launch = "x"

[req]
launch = "x"
requires = { ruby = "3" }
"#;
        let r = Registry::with_user(Some(text), "~/.config/smolvm/presets.toml");
        let c = r.find("claude").unwrap();
        assert_eq!(
            (c.memory_mib, c.launch.as_str()),
            (4096, "claude --dangerously-skip-permissions")
        );
        // Fields not overridden keep the built-in values.
        assert_eq!(c.env, ["ANTHROPIC_API_KEY"]);
        let m = r.lookup("marker").unwrap();
        assert_eq!(
            (m.memory_mib, m.disk_mib, m.launch.as_str()),
            (2048, 8192, "echo hi; exit 3")
        );
        assert_eq!(r.find("codex").unwrap().launch, "codex");
        for gone in ["bad-mem", "typo", "image", "dup", "req"] {
            assert!(r.find(gone).is_none(), "{gone}");
        }
        let p = r.problems.join("\n");
        for want in [
            "[bad-mem]: memory: a whole number of MiB from 128 to 16384; ignored",
            "[codex]: launch: one line of shell; keeping the built-in preset",
            "[typo]: unknown field `lunch`",
            "[image]: \"image\" is a smolvm command, not a preset name; ignored",
            "[dup]: a name or alias is already preset claude-code's; ignored",
            "[req]: requires: unknown tool \"ruby\" (node or python); ignored",
        ] {
            assert!(p.contains(want), "{want} not in:\n{p}");
        }
        assert!(p.starts_with("~/.config/smolvm/presets.toml: "), "{p}");
        let broken = Registry::with_user(Some("[x"), "f.toml");
        assert_eq!(broken.names(), Registry::builtin().names());
        assert!(
            broken.problems[0].starts_with("f.toml: ")
                && broken.problems[0].ends_with("using the built-in presets")
        );
    }

    /// `warm = true` makes a preset's starts warm; it is kept over a built-in one field by
    /// field, and anything but a boolean is reported like any bad field.
    #[test]
    fn the_warm_key_makes_starts_warm_and_must_be_a_boolean() {
        assert!(Registry::builtin().presets.iter().all(|p| !p.warm));
        let text = "[claude-code]\nwarm = true\n\n[w]\nlaunch = \"x\"\nwarm = \"yes\"\n";
        let r = Registry::with_user(Some(text), "f.toml");
        let c = r.find("claude").unwrap();
        assert!(c.warm);
        assert_eq!(c.launch, "claude", "the other fields stay built-in");
        assert!(r.find("w").is_none());
        assert!(
            r.problems
                .iter()
                .any(|p| p.starts_with("f.toml: [w]: ") && p.contains("bool")),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn versions_and_requirements() {
        assert_eq!(parse_version("v18.19.0\n"), Some(vec![18, 19, 0]));
        assert_eq!(parse_version("Python 3.11.2"), Some(vec![3, 11, 2]));
        assert_eq!(parse_version("nothing"), None);
        let r = Requirement {
            tool: "node".into(),
            at_least: vec![24, 15],
        };
        assert_eq!(r.met_by("v18.20.4"), Some(false));
        assert_eq!(r.met_by("v24.15.0"), Some(true));
        assert_eq!(r.met_by("v25.0.1"), Some(true));
        assert_eq!(r.met_by("sh: node: not found"), None);
    }

    #[test]
    fn the_user_file_lives_under_xdg_config_home() {
        let env = Env::from_vars([("HOME", "/h")], 0);
        assert_eq!(
            Registry::user_file(&env),
            PathBuf::from("/h/.config/smolvm/presets.toml")
        );
        let env = Env::from_vars([("HOME", "/h"), ("XDG_CONFIG_HOME", "/x")], 0);
        assert_eq!(
            Registry::user_file(&env),
            PathBuf::from("/x/smolvm/presets.toml")
        );
    }

    #[test]
    fn limits_and_their_messages() {
        assert_eq!(parse_memory(" 2048 "), Ok(2048));
        assert_eq!(
            parse_memory("127"),
            Err("memory: a whole number of MiB from 128 to 16384".into())
        );
        assert!(parse_vcpus("33").is_err() && parse_vcpus("1").is_ok());
        assert!(parse_disk("1023").is_err() && parse_disk("1024").is_ok());
        assert!(parse_disk("-5").is_err() && parse_memory("1e3").is_err());
        let e = check_limits(Some(64), None, None).unwrap_err();
        assert_eq!(
            (e.exit_code(), e.message),
            (2, parse_memory("64").unwrap_err())
        );
        assert!(check_limits(Some(512), Some(2), Some(8192)).is_ok());
        assert!(check_limits(None, Some(0), None).is_err());
    }
}
