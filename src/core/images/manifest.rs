//! The published-image manifest: SmolVM's row model as data.
//!
//! `{"release": "<tag>", "images": [{"preset", "arch", "vmm", "os", "kernel_url",
//! "kernel_sha256", "rootfs_url", "rootfs_sha256"}]}`. The bundled one
//! (`assets/manifest.json`) is SmolVM 0.0.36's release; `SMOLVM_MANIFEST` (a path, a
//! `file:` URL or an http(s) URL) replaces it. URLs may be relative to the manifest's own
//! location. Unknown fields, bad values, duplicate rows and unsafe URLs are errors that name
//! the field.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::error::{io_reason, Error, Result};
use crate::sys::env::Env;
use crate::sys::http::{Http, HttpConfig, Url};
use crate::sys::paths::expand;

/// SmolVM 0.0.36's published release, bundled.
pub const BUNDLED: &str = include_str!("../../../assets/manifest.json");

text_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Arch {
        Amd64 = "amd64",
        Arm64 = "arm64",
    }
}

/// The VMM enum lives with the host's backend choice (`core::host`); the manifest's
/// `vmm` field is that enum.
pub use crate::core::host::Vmm;

text_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Os {
        Ubuntu = "ubuntu",
        Alpine = "alpine",
    }
}

/// The guest OS when none is asked for (`--os`): SmolVM's default, the images' plain
/// names (no `-alpine`).
impl Default for Os {
    fn default() -> Self {
        Os::Ubuntu
    }
}

/// One row as written in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub preset: String,
    pub arch: Arch,
    pub vmm: Vmm,
    pub os: Os,
    pub kernel_url: String,
    pub kernel_sha256: String,
    pub rootfs_url: String,
    pub rootfs_sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    release: String,
    images: Vec<Row>,
}

/// A row with its URLs resolved against the manifest's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub preset: String,
    pub arch: Arch,
    pub vmm: Vmm,
    pub os: Os,
    pub kernel_url: Url,
    pub kernel_sha256: String,
    pub rootfs_url: Url,
    pub rootfs_sha256: String,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub release: String,
    /// Where it came from: `bundled`, a path or a URL.
    pub source: String,
    pub images: Vec<Image>,
}

impl Manifest {
    /// The row for exactly this key.
    pub fn lookup(&self, preset: &str, arch: Arch, vmm: Vmm, os: Os) -> Option<&Image> {
        self.images
            .iter()
            .find(|i| i.preset == preset && i.arch == arch && i.vmm == vmm && i.os == os)
    }

    /// Every preset named by some row.
    pub fn presets(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.images.iter().map(|i| i.preset.as_str()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Parse and validate `text`; relative URLs resolve against `base` (none for the
    /// bundled manifest). `local` allows `file:` URLs (a manifest read from disk).
    pub fn parse(text: &str, source: &str, base: Option<&Url>, local: bool) -> Result<Self> {
        let bad = |what: String| Error::runtime(format!("invalid manifest {source}: {what}"));
        let doc: Document = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if doc.release.trim().is_empty() {
            return Err(bad("release: must not be empty".into()));
        }
        let mut images = Vec::with_capacity(doc.images.len());
        for (i, row) in doc.images.into_iter().enumerate() {
            let field = |name: &str, why: String| bad(format!("images[{i}].{name}: {why}"));
            if !valid_preset(&row.preset) {
                return Err(field(
                    "preset",
                    format!(
                        "{:?} is not a preset name (lowercase letters, digits and '-')",
                        row.preset
                    ),
                ));
            }
            for (name, sha) in [
                ("kernel_sha256", &row.kernel_sha256),
                ("rootfs_sha256", &row.rootfs_sha256),
            ] {
                if !valid_sha256(sha) {
                    return Err(field(
                        name,
                        format!("{sha:?} is not a SHA-256 (64 lowercase hex digits)"),
                    ));
                }
            }
            let kernel_url = resolve_url(&row.kernel_url, base, local)
                .map_err(|why| field("kernel_url", why))?;
            let rootfs_url = resolve_url(&row.rootfs_url, base, local)
                .map_err(|why| field("rootfs_url", why))?;
            if images.iter().any(|o: &Image| {
                o.preset == row.preset && o.arch == row.arch && o.vmm == row.vmm && o.os == row.os
            }) {
                return Err(bad(format!(
                    "images[{i}]: duplicate row for {}/{}/{}/{}",
                    row.preset, row.arch, row.vmm, row.os
                )));
            }
            images.push(Image {
                preset: row.preset,
                arch: row.arch,
                vmm: row.vmm,
                os: row.os,
                kernel_url,
                kernel_sha256: row.kernel_sha256,
                rootfs_url,
                rootfs_sha256: row.rootfs_sha256,
            });
        }
        Ok(Manifest {
            release: doc.release,
            source: source.to_string(),
            images,
        })
    }

    /// The manifest in force: `SMOLVM_MANIFEST` when set, else the bundled one.
    pub fn load(env: &Env) -> Result<Self> {
        let path = match source(env)? {
            None => return Self::parse(BUNDLED, "bundled", None, false),
            Some(Source::Url(url)) => {
                let http = Http::new(HttpConfig::from_env(env)?)
                    .map_err(|e| Error::runtime(e.to_string()))?;
                let bytes = http.get_bytes(&url).map_err(|e| {
                    Error::runtime(format!("cannot fetch manifest {url}: {e}"))
                        .with_recovery("Check SMOLVM_MANIFEST and the network, then retry.")
                })?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::runtime(format!("invalid manifest {url}: not UTF-8")))?;
                return Self::parse(&text, url.as_str(), Some(&url), false);
            }
            Some(Source::File(path)) => path,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::runtime(format!(
                "cannot read manifest {}: {}",
                path.display(),
                io_reason(&e)
            ))
            .with_recovery("Point SMOLVM_MANIFEST at a manifest file, or unset it.")
        })?;
        let base = Url::from_file_path(&path).map_err(|_| {
            Error::runtime(format!("manifest path {} is not absolute", path.display()))
        })?;
        Self::parse(&text, &path.display().to_string(), Some(&base), true)
    }
}

fn valid_preset(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !p.starts_with('-')
}

/// A SHA-256 as the manifests and archives write it: 64 lower-case hex digits.
pub(crate) fn valid_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Percent-decode (bytes; invalid escapes stay as they are).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Refuse a URL whose percent-decoded path has a `..` segment or a NUL, then resolve it
/// against `base` and allow only http(s), and `file:` for a local manifest.
fn resolve_url(raw: &str, base: Option<&Url>, local: bool) -> std::result::Result<Url, String> {
    let path_part = raw.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path_part);
    if decoded.contains(&0) {
        return Err(format!("{raw:?} has a NUL byte in its path"));
    }
    if decoded
        .split(|&c| c == b'/' || c == b'\\')
        .any(|seg| seg == b"..")
    {
        return Err(format!("{raw:?} has a '..' path segment"));
    }
    let has_scheme = raw.split_once(':').is_some_and(|(s, _)| {
        s.len() > 1
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    let url = if has_scheme {
        Url::parse(raw).map_err(|e| format!("{raw:?}: {e}"))?
    } else {
        match base {
            Some(b) => b.join(raw).map_err(|e| format!("{raw:?}: {e}"))?,
            None => {
                return Err(format!(
                    "{raw:?} is relative, but this manifest has no location to resolve it against"
                ))
            }
        }
    };
    match url.scheme() {
        "http" | "https" => Ok(url),
        "file" if local => Ok(url),
        "file" => Err(format!(
            "{raw:?}: file URLs are only allowed in a manifest read from disk"
        )),
        other => Err(format!(
            "{raw:?}: scheme '{other}' is not allowed (http, https or file)"
        )),
    }
}

/// Where `SMOLVM_MANIFEST` points.
pub enum Source {
    Url(Url),
    File(std::path::PathBuf),
}

/// `SMOLVM_MANIFEST`: `None` when unset; an `http(s)://` URL, a `file:` URL or a path
/// (`~` expands); a URL that does not parse is a usage error naming the variable.
pub fn source(env: &Env) -> Result<Option<Source>> {
    let Some(spec) = env.get_str("SMOLVM_MANIFEST") else {
        return Ok(None);
    };
    let bad = |why: String| {
        Error::usage(format!(
            "SMOLVM_MANIFEST must be an http(s) URL, a file: URL or a path, got '{spec}' ({why})"
        ))
    };
    let lower = spec.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Url::parse(spec)
            .map(|u| Some(Source::Url(u)))
            .map_err(|e| bad(e.to_string()));
    }
    if lower.starts_with("file:") {
        return Url::parse(spec)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .map(|p| Some(Source::File(p)))
            .ok_or_else(|| bad("not a file URL".into()));
    }
    Ok(Some(Source::File(expand(Path::new(spec), &env.home()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "d39c47b5f1d9bc797871d4f120e4496ad11e0540e3a6bcf1a4544b1640eee014";

    fn row(extra: &str, rootfs_url: &str) -> String {
        format!(
            r#"{{"release": "t", "images": [{{"preset": "codex", "arch": "amd64", "vmm": "qemu",
            "os": "ubuntu", "kernel_url": "k.image", "kernel_sha256": "{SHA}",
            "rootfs_url": "{rootfs_url}", "rootfs_sha256": "{SHA}"{extra}}}]}}"#
        )
    }

    fn base() -> Url {
        Url::parse("http://127.0.0.1:9/rel/manifest.json").unwrap()
    }

    #[test]
    fn bundled_manifest_is_smolvm_0_0_36() {
        let m = Manifest::parse(BUNDLED, "bundled", None, false).unwrap();
        assert_eq!(m.release, "images-2026.09.07.0");
        assert_eq!(m.images.len(), 40);
        let r = m
            .lookup("codex", Arch::Amd64, Vmm::Firecracker, Os::Ubuntu)
            .unwrap();
        assert_eq!(
            r.kernel_url.as_str(),
            "https://github.com/CelestoAI/SmolVM/releases/download/images-2026.09.07.0/vmlinux-amd64.elf"
        );
        assert_eq!(r.kernel_sha256, SHA);
        assert!(m
            .lookup("claude-code", Arch::Arm64, Vmm::Qemu, Os::Alpine)
            .is_some());
        assert!(m
            .lookup("hermes", Arch::Amd64, Vmm::Qemu, Os::Alpine)
            .is_none());
    }

    #[test]
    fn relative_urls_resolve_against_the_manifest() {
        let m = Manifest::parse(&row("", "img/codex.zst"), "x", Some(&base()), false).unwrap();
        assert_eq!(
            m.images[0].rootfs_url.as_str(),
            "http://127.0.0.1:9/rel/img/codex.zst"
        );
        assert_eq!(
            m.images[0].kernel_url.as_str(),
            "http://127.0.0.1:9/rel/k.image"
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_name_the_field() {
        let e = Manifest::parse(
            &row(r#", "kernel_shaa256": "x""#, "r"),
            "m",
            Some(&base()),
            false,
        )
        .unwrap_err();
        assert!(e.message.contains("kernel_shaa256"), "{}", e.message);
        let bad_sha = row("", "r").replacen(SHA, "abc", 1);
        let e = Manifest::parse(&bad_sha, "m", Some(&base()), false).unwrap_err();
        assert!(
            e.message.contains("images[0].kernel_sha256"),
            "{}",
            e.message
        );
        let bad_arch = row("", "r").replace("amd64", "x86");
        let e = Manifest::parse(&bad_arch, "m", Some(&base()), false).unwrap_err();
        assert!(e.message.contains("x86"), "{}", e.message);
    }

    #[test]
    fn traversal_nul_and_schemes_are_refused() {
        for (url, why) in [
            ("../etc/passwd", "'..'"),
            ("a/%2e%2E/b", "'..'"),
            ("a%2F..%2Fb", "'..'"),
            ("http://h/x/../y", "'..'"),
            ("a%00b", "NUL"),
            ("ftp://h/x", "scheme 'ftp'"),
            ("file:///etc/passwd", "file URLs"),
        ] {
            let e = Manifest::parse(&row("", url), "m", Some(&base()), false).unwrap_err();
            assert!(
                e.message.contains("images[0].rootfs_url"),
                "{url}: {}",
                e.message
            );
            assert!(e.message.contains(why), "{url}: {}", e.message);
        }
        // A local manifest may use local files.
        let b = Url::parse("file:///srv/rel/manifest.json").unwrap();
        let m = Manifest::parse(&row("", "codex.zst"), "m", Some(&b), true).unwrap();
        assert_eq!(m.images[0].rootfs_url.as_str(), "file:///srv/rel/codex.zst");
    }

    #[test]
    fn duplicate_rows_are_refused() {
        let one = row("", "r");
        let inner = &one[one.find('[').unwrap() + 1..one.rfind(']').unwrap()];
        let two = format!(r#"{{"release": "t", "images": [{inner}, {inner}]}}"#);
        let e = Manifest::parse(&two, "m", Some(&base()), false).unwrap_err();
        assert!(e.message.contains("duplicate"), "{}", e.message);
    }
}
