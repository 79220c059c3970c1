//! A sandbox's egress policy: `open` (default), `off`, or `restricted` to allowed IPv4
//! ranges and domain names. Validation follows SmolVM 0.0.36's `InternetSettings` (its
//! messages word for word where it has them); what is stored in SmolVM's
//! `internet_settings` key is only what SmolVM itself accepts there.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::core::error::{Error, ErrorCode, Result};

text_enum! {
    /// `--internet`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Mode {
        /// The internet (through the host's outbound interface); never the host, the metadata
        /// range or another sandbox.
        #[default]
        Open = "open",
        /// Nothing.
        Off = "off",
        /// Only the allowed ranges and the addresses allowed names resolve to.
        Restricted = "restricted",
    }
}

impl Mode {
    /// What a guest in this mode reaches, for people (the dashboard's egress forms).
    pub fn reach(self) -> &'static str {
        match self {
            Mode::Open => {
                "the internet; the LAN only where listed (--allow-cidr); never the host, 169.254.0.0/16 or other sandboxes"
            }
            Mode::Off => "nothing at all",
            Mode::Restricted => {
                "only these IPv4 ranges and names (*.example.com; never into the LAN)"
            }
        }
    }
}

/// An IPv4 range, starting at its first address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    fn first(self) -> u32 {
        u32::from(self.addr)
    }

    fn last(self) -> u32 {
        self.first() | !Self::mask(self.prefix)
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & Self::mask(self.prefix)) == self.first()
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    const fn new(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
        Cidr {
            addr: Ipv4Addr::new(a, b, c, d),
            prefix,
        }
    }

    /// SmolVM's `IPv4Network(value.strip())`: an address (a /32), `addr/prefix` or
    /// `addr/netmask`, which must start at its first address.
    pub fn parse(value: &str) -> Result<Cidr> {
        let v = value.trim();
        let bad = || {
            invalid(format!(
                "Invalid IPv4 address or range '{value}'; use an address such as '203.0.113.10' or a range such as '10.20.0.0/24'."
            ))
        };
        let (a, p) = match v.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (v, None),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix = match p {
            None => 32,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 2 => {
                let n: u8 = p.parse().map_err(|_| bad())?;
                if n > 32 {
                    return Err(bad());
                }
                n
            }
            Some(p) => {
                let m: Ipv4Addr = p.parse().map_err(|_| bad())?;
                let m = u32::from(m);
                if m.leading_ones() + m.trailing_zeros() != 32 {
                    return Err(bad());
                }
                m.leading_ones() as u8
            }
        };
        let first = u32::from(addr) & Self::mask(prefix);
        if first != u32::from(addr) {
            let corrected = Cidr {
                addr: Ipv4Addr::from(first),
                prefix,
            };
            return Err(invalid(format!(
                "Range '{value}' must start at its first address; use '{corrected}' for the range or remove the slash and prefix to allow only one address."
            )));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// The ranges no policy may allow (SmolVM's): the sandboxes' own and link-local
/// (cloud metadata at 169.254.169.254).
pub const FORBIDDEN: [Cidr; 2] = [Cidr::new(172, 16, 0, 0, 16), Cidr::new(169, 254, 0, 0, 16)];

/// The LAN: what an open sandbox, and an address an allowed name resolves to, never
/// reach unless an allowed range covers it — the private, shared and special ranges
/// ([`LAN_RANGES`](crate::sys::net::LAN_RANGES)) and every network the host is attached
/// to (`attached`, [`attached_networks`](crate::sys::net::attached_networks)), collapsed.
pub fn lan(attached: &[(Ipv4Addr, u8)]) -> Vec<Cidr> {
    let all = crate::sys::net::LAN_RANGES
        .iter()
        .chain(attached)
        .map(|(addr, prefix)| Cidr {
            addr: Ipv4Addr::from(u32::from(*addr) & Cidr::mask(*prefix)),
            prefix: *prefix,
        })
        .collect();
    collapse(all)
}

fn invalid(message: String) -> Error {
    Error::new(ErrorCode::InvalidInput, message)
}

/// SmolVM's `collapse_addresses`: sorted, contained ranges dropped, adjacent halves merged.
pub fn collapse(mut v: Vec<Cidr>) -> Vec<Cidr> {
    loop {
        v.sort();
        v.dedup();
        let mut out: Vec<Cidr> = Vec::with_capacity(v.len());
        let mut changed = false;
        for c in v {
            if let Some(last) = out.last_mut() {
                if last.contains(c.addr) && last.prefix <= c.prefix {
                    changed = true;
                    continue;
                }
                if last.prefix == c.prefix
                    && last.prefix > 0
                    && last.last().checked_add(1) == Some(c.first())
                    && (last.first() & Cidr::mask(last.prefix - 1)) == last.first()
                {
                    last.prefix -= 1;
                    changed = true;
                    continue;
                }
            }
            out.push(c);
        }
        if !changed {
            return out;
        }
        v = out;
    }
}

/// A domain the resolver lets through: an exact name (`api.openai.com`) or every name
/// under one (`*.npmjs.org`, not `npmjs.org` itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Domain(String);

impl Domain {
    /// A name as a user writes it: case and a trailing dot ignored; a URL's host taken
    /// (`https://api.openai.com/v1` → `api.openai.com`, as SmolVM does); `*.` only as the
    /// first label, followed by at least two labels.
    pub fn parse(value: &str) -> Result<Domain> {
        let bad = |why: &str| {
            invalid(format!(
                "Invalid domain '{value}': {why}; use a name such as 'api.openai.com' or '*.npmjs.org'."
            ))
        };
        let mut v = value.trim().to_ascii_lowercase();
        if let Some((_, rest)) = v.split_once("://") {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            v = host.split(':').next().unwrap_or(host).to_string();
        }
        let v = v.strip_suffix('.').unwrap_or(&v).to_string();
        if v.is_empty() {
            return Err(bad("it is empty"));
        }
        if v.len() > 253 {
            return Err(bad("it is longer than 253 characters"));
        }
        let (wild, name) = match v.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, v.as_str()),
        };
        if name.parse::<Ipv4Addr>().is_ok() || name.contains(':') {
            return Err(invalid(format!(
                "Invalid domain '{value}': an address is not a name; allow it with --allow-cidr."
            )));
        }
        let labels: Vec<&str> = name.split('.').collect();
        for l in &labels {
            let ok = !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(bad(
                    "each label is 1 to 63 letters, digits, '-' or '_' ('*.' only in front)",
                ));
            }
        }
        if wild && labels.len() < 2 {
            return Err(bad("a wildcard needs at least two labels after '*.'"));
        }
        Ok(Domain(v))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` (a query name, any case, trailing dot or not) is allowed by this.
    pub fn matches(&self, name: &str) -> bool {
        let n = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(suffix) => n.len() > suffix.len() + 1 && n.ends_with(&format!(".{suffix}")),
            None => n == self.0,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sandbox's egress policy, valid by construction ([`Policy::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cidrs: Vec<Cidr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<Domain>,
}

impl Policy {
    /// Validate a policy from the flags: `mode` (default: `restricted` when anything is
    /// allowed, else `open`), `--allow-cidr` values and `--allow-domain` values.
    pub fn new(mode: Option<Mode>, cidrs: &[String], domains: &[String]) -> Result<Policy> {
        let allowed_cidrs = collapse(
            cidrs
                .iter()
                .map(|c| Cidr::parse(c))
                .collect::<Result<_>>()?,
        );
        if allowed_cidrs
            .iter()
            .any(|c| FORBIDDEN.iter().any(|f| c.overlaps(*f)))
        {
            return Err(invalid(
                "Sandbox and link-local addresses cannot be allowed; remove those ranges.".into(),
            ));
        }
        let mut allowed_domains: Vec<Domain> = domains
            .iter()
            .map(|d| Domain::parse(d))
            .collect::<Result<_>>()?;
        allowed_domains.sort();
        allowed_domains.dedup();
        let anything = !allowed_cidrs.is_empty() || !allowed_domains.is_empty();
        let mode = mode.unwrap_or(if anything {
            Mode::Restricted
        } else {
            Mode::Open
        });
        match mode {
            Mode::Restricted if !anything => Err(invalid(
                "--internet restricted needs at least one --allow-cidr or --allow-domain; use --internet off to deny all access.".into(),
            )),
            Mode::Off if anything => Err(invalid(
                "--allow-cidr and --allow-domain need --internet restricted (not off); set that mode or remove them.".into(),
            )),
            // Open reaches every public address already; a name would add nothing but a
            // way into the LAN, which only a listed range opens.
            Mode::Open if !allowed_domains.is_empty() => Err(invalid(
                "--allow-domain needs --internet restricted (open reaches every public name already); set that mode, or list a LAN range with --allow-cidr.".into(),
            )),
            _ => Ok(Policy {
                mode,
                allowed_cidrs,
                allowed_domains,
            }),
        }
    }

    /// SmolVM's `internet_settings` for this policy: what SmolVM 0.0.36 accepts and, if it
    /// ever applied it itself, never allows more than this policy: no key for `open`;
    /// `off`; `restricted` with the ranges; a policy of names only is `off` there (SmolVM
    /// cannot enforce names at connection time).
    pub fn smolvm_internet_settings(&self) -> Option<serde_json::Value> {
        match self.mode {
            Mode::Open => None,
            Mode::Off => Some(serde_json::json!({"mode": "off"})),
            Mode::Restricted if self.allowed_cidrs.is_empty() => {
                Some(serde_json::json!({"mode": "off"}))
            }
            Mode::Restricted => Some(serde_json::json!({
                "mode": "restricted",
                "allowed_cidrs": self.allowed_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            })),
        }
    }

    /// The policy a SmolVM `internet_settings` value (a row SmolVM wrote) stands for: no
    /// value or `open` is open; `off`; `restricted` with its ranges; SmolVM's legacy
    /// `allowed_domains` without a mode is restricted to those names. Anything that does
    /// not validate is `off` (fail closed).
    pub fn from_smolvm(v: Option<&serde_json::Value>) -> Policy {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Policy::default();
        };
        let strings = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(|x| x.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mode = v.get("mode").and_then(|m| m.as_str());
        let off = Policy {
            mode: Mode::Off,
            ..Policy::default()
        };
        let domains: Vec<String> = strings("allowed_domains")
            .into_iter()
            .filter(|d| d != "*")
            .collect();
        let r = match mode {
            None if domains.is_empty() => Ok(Policy::default()),
            None => Policy::new(Some(Mode::Restricted), &strings("allowed_cidrs"), &domains),
            Some(m) => match Mode::parse(m) {
                Some(m) => Policy::new(Some(m), &strings("allowed_cidrs"), &[]),
                None => return off,
            },
        };
        r.unwrap_or(off)
    }

    /// One line for people: `open`, `open + 10.1.2.0/24` (LAN ranges it may reach too),
    /// `off`, `restricted: 10.0.0.0/8, api.openai.com`.
    pub fn summary(&self) -> String {
        if self.mode == Mode::Open && !self.allowed_cidrs.is_empty() {
            let ranges: Vec<String> = self.allowed_cidrs.iter().map(|c| c.to_string()).collect();
            return format!("open + {}", ranges.join(", "));
        }
        if self.mode != Mode::Restricted {
            return self.mode.to_string();
        }
        let items: Vec<String> = self
            .allowed_cidrs
            .iter()
            .map(|c| c.to_string())
            .chain(self.allowed_domains.iter().map(|d| d.to_string()))
            .collect();
        format!("restricted: {}", items.join(", "))
    }

    /// Whether the resolver must serve this sandbox (restricted with names).
    pub fn needs_resolver(&self) -> bool {
        self.mode == Mode::Restricted && !self.allowed_domains.is_empty()
    }

    /// Whether `name` may be resolved.
    pub fn allows_name(&self, name: &str) -> bool {
        self.mode == Mode::Restricted && self.allowed_domains.iter().any(|d| d.matches(name))
    }
}

/// A sandbox's network settings: its egress policy and whether its SSH forward is
/// published on the outbound interface (by default it listens on 127.0.0.1 only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Settings {
    pub internet: Policy,
    #[serde(default)]
    pub publish_ssh: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(mode: Option<Mode>, cidrs: &[&str], domains: &[&str]) -> Error {
        let c: Vec<String> = cidrs.iter().map(|s| s.to_string()).collect();
        let d: Vec<String> = domains.iter().map(|s| s.to_string()).collect();
        Policy::new(mode, &c, &d).unwrap_err()
    }

    #[test]
    fn cidrs_are_validated_with_smolvms_messages() {
        let e = err(None, &["10.0.0.1/24"], &[]);
        assert_eq!(e.code, ErrorCode::InvalidInput);
        assert_eq!(e.message, "Range '10.0.0.1/24' must start at its first address; use '10.0.0.0/24' for the range or remove the slash and prefix to allow only one address.");
        assert_eq!(
            err(None, &["fd00::/8"], &[]).message,
            "Invalid IPv4 address or range 'fd00::/8'; use an address such as '203.0.113.10' or a range such as '10.20.0.0/24'."
        );
        assert!(err(None, &["10.0.0.0/33"], &[])
            .message
            .starts_with("Invalid IPv4"));
        for metadata in [
            "169.254.169.254",
            "172.16.5.0/24",
            "172.0.0.0/8",
            "0.0.0.0/0",
        ] {
            assert_eq!(
                err(None, &[metadata], &[]).message,
                "Sandbox and link-local addresses cannot be allowed; remove those ranges.",
                "{metadata}"
            );
        }
        let p = Policy::new(
            None,
            &[
                "10.0.0.0/25".into(),
                "10.0.0.128/25".into(),
                " 203.0.113.7 ".into(),
                "10.0.0.5".into(),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Restricted);
        let shown: Vec<String> = p.allowed_cidrs.iter().map(|c| c.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/24", "203.0.113.7/32"]);
        assert_eq!(
            Cidr::parse("10.1.0.0/255.255.0.0").unwrap().to_string(),
            "10.1.0.0/16"
        );
    }

    #[test]
    fn modes_and_lists_must_agree() {
        assert_eq!(
            err(Some(Mode::Restricted), &[], &[]).message,
            "--internet restricted needs at least one --allow-cidr or --allow-domain; use --internet off to deny all access."
        );
        assert!(err(Some(Mode::Off), &["8.8.8.8"], &[])
            .message
            .contains("need --internet restricted"));
        assert_eq!(Policy::new(None, &[], &[]).unwrap(), Policy::default());
        // Open with ranges: the LAN ranges it may reach too (stored for SmolVM as open).
        let lan = Policy::new(Some(Mode::Open), &["192.168.1.50".into()], &[]).unwrap();
        assert_eq!(lan.summary(), "open + 192.168.1.50/32");
        assert_eq!(lan.smolvm_internet_settings(), None);
        assert!(err(Some(Mode::Open), &[], &["pypi.org"])
            .message
            .starts_with("--allow-domain needs --internet restricted"));
        assert!(err(Some(Mode::Open), &["169.254.169.254"], &[])
            .message
            .starts_with("Sandbox and link-local"));
        let off = Policy::new(Some(Mode::Off), &[], &[]).unwrap();
        assert_eq!(
            off.smolvm_internet_settings(),
            Some(serde_json::json!({"mode": "off"}))
        );
        assert_eq!(Policy::default().smolvm_internet_settings(), None);
    }

    #[test]
    fn the_lan_is_the_special_ranges_and_the_hosts_networks_collapsed() {
        let shown = |v: Vec<Cidr>| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let fixed = shown(lan(&[]));
        assert_eq!(
            fixed,
            [
                "0.0.0.0/8",
                "10.0.0.0/8",
                "100.64.0.0/10",
                "172.16.0.0/12",
                "192.0.0.0/24",
                "192.168.0.0/16",
                "198.18.0.0/15",
                // Multicast and the reserved range, merged.
                "224.0.0.0/3"
            ]
        );
        // A network inside a range adds nothing; a public one the host sits on is added;
        // an address with host bits names its network.
        let with = shown(lan(&[
            (Ipv4Addr::new(10, 254, 0, 0), 24),
            (Ipv4Addr::new(192, 0, 2, 9), 24),
        ]));
        assert_eq!(with.len(), fixed.len() + 1);
        assert!(with.contains(&"192.0.2.0/24".to_string()), "{with:?}");
    }

    #[test]
    fn domains_parse_and_match() {
        let d = Domain::parse("https://API.OpenAI.com:443/v1").unwrap();
        assert_eq!(d.as_str(), "api.openai.com");
        assert!(d.matches("api.openai.com.") && d.matches("API.openai.com"));
        assert!(!d.matches("x.api.openai.com") && !d.matches("openai.com"));
        let w = Domain::parse("*.npmjs.org").unwrap();
        assert!(w.matches("registry.npmjs.org") && w.matches("a.b.npmjs.org"));
        assert!(!w.matches("npmjs.org") && !w.matches("evilnpmjs.org"));
        for bad in [
            "",
            "*.com",
            "a..b",
            "-a.com",
            "a b.com",
            "*.*.x.com",
            "1.2.3.4",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad}");
        }
        let p = Policy::new(None, &[], &["pypi.org".into()]).unwrap();
        assert!(p.needs_resolver() && p.allows_name("PyPI.org") && !p.allows_name("evil.org"));
        // Names alone cannot be said in SmolVM's model: off there (never more open).
        assert_eq!(
            p.smolvm_internet_settings(),
            Some(serde_json::json!({"mode": "off"}))
        );
    }

    #[test]
    fn smolvm_rows_map_to_a_policy_and_bad_ones_fail_closed() {
        let r = Policy::from_smolvm(Some(
            &serde_json::json!({"mode": "restricted", "allowed_cidrs": ["8.8.8.8"]}),
        ));
        assert_eq!(r.summary(), "restricted: 8.8.8.8/32");
        let legacy =
            Policy::from_smolvm(Some(&serde_json::json!({"allowed_domains": ["pypi.org"]})));
        assert_eq!(legacy.summary(), "restricted: pypi.org");
        let all = Policy::from_smolvm(Some(&serde_json::json!({"allowed_domains": ["*"]})));
        assert_eq!(all.mode, Mode::Open);
        let bad = Policy::from_smolvm(Some(
            &serde_json::json!({"mode": "restricted", "allowed_cidrs": ["169.254.169.254"]}),
        ));
        assert_eq!(bad.mode, Mode::Off);
        assert_eq!(
            Policy::from_smolvm(Some(&serde_json::json!({"mode": "weird"}))).mode,
            Mode::Off
        );
    }
}
