//! The guest's environment file, `/etc/profile.d/smolvm_env.sh`, as SmolVM writes it
//! (`env.py`): `#!/bin/sh`, `# SmolVM managed environment variables`, a blank line, then
//! one `export KEY=<value>` per key sorted by key, each value quoted as Python's
//! `shlex.quote` does. Login shells source it.
//!
//! This module is the one reader and writer of that format: `sandbox env set|unset|list`
//! and the presets' host-env forwarding both go through [`EnvFile`], and the file reaches
//! the guest through [`WRITE_SCRIPT`] (atomic: a temporary file renamed over the old one).
//! Values are bytes, so anything a shell variable can hold (every byte but NUL) round-trips.

use std::collections::BTreeMap;

use super::error::{Error, Result};
use super::guest;
use super::lifecycle::SshLogin;
use super::start::Ctx;

/// Where the file lives in the guest.
pub const GUEST_PATH: &str = "/etc/profile.d/smolvm_env.sh";

/// The header SmolVM writes before the exports.
const HEADER: &str = "#!/bin/sh\n# SmolVM managed environment variables\n\n";

/// Run by `sh -c` in the guest with the new file on stdin: write a temporary file beside
/// the target (mode 0600, the values are often keys), then rename it over the old one.
pub const WRITE_SCRIPT: &str = "set -e; umask 077; mkdir -p /etc/profile.d; \
     t=/etc/profile.d/.smolvm_env.sh.$$; cat > \"$t\"; chmod 0600 \"$t\"; \
     mv -f \"$t\" /etc/profile.d/smolvm_env.sh";

/// Run by `sh -c` in the guest: print the file, or nothing when there is none.
pub const READ_SCRIPT: &str =
    "if [ -f /etc/profile.d/smolvm_env.sh ]; then cat /etc/profile.d/smolvm_env.sh; fi";

/// Whether `key` may name a variable: `^[A-Za-z_][A-Za-z0-9_]*$`.
pub fn is_valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Check a key, with the error `sandbox env` shows (exit 2).
pub fn check_key(key: &str) -> Result<()> {
    if is_valid_key(key) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "Invalid environment variable name {key:?}: names must match [A-Za-z_][A-Za-z0-9_]*."
        )))
    }
}

/// Split a `KEY=VALUE` argument; the value may be empty and may contain `=`.
pub fn parse_assignment(arg: &[u8]) -> Result<(String, Vec<u8>)> {
    let shown = String::from_utf8_lossy(arg);
    let Some(eq) = arg.iter().position(|&b| b == b'=') else {
        return Err(Error::usage(format!(
            "Expected KEY=VALUE, got {shown:?} (no '=')."
        )));
    };
    let key = std::str::from_utf8(&arg[..eq])
        .ok()
        .filter(|k| is_valid_key(k))
        .ok_or_else(|| {
            Error::usage(format!(
                "Invalid environment variable name {:?}: names must match [A-Za-z_][A-Za-z0-9_]*.",
                String::from_utf8_lossy(&arg[..eq])
            ))
        })?;
    let value = arg[eq + 1..].to_vec();
    if value.contains(&0) {
        return Err(Error::usage(format!(
            "The value of {key} contains a NUL byte, which no environment variable can hold."
        )));
    }
    Ok((key.to_string(), value))
}

/// Python's `shlex.quote` on bytes: safe strings as they are, anything else in single
/// quotes with each `'` written as `'"'"'`.
pub fn shlex_quote(value: &[u8]) -> Vec<u8> {
    if value.is_empty() {
        return b"''".to_vec();
    }
    let safe = value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b));
    if safe {
        return value.to_vec();
    }
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'\'');
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\"'\"'");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// Read one shell word as `sh` would for the quoting forms [`shlex_quote`] and common
/// hand edits produce: bare characters, `'…'`, `"…"` (with `\` escaping `$`, `` ` ``,
/// `"`, `\` and newline) and `\x` outside quotes. `None` for an unterminated quote or
/// trailing text after the word.
fn unquote(word: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < word.len() {
        match word[i] {
            b'\'' => {
                let end = word[i + 1..].iter().position(|&b| b == b'\'')? + i + 1;
                out.extend_from_slice(&word[i + 1..end]);
                i = end + 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match *word.get(i)? {
                        b'"' => break,
                        b'\\' if matches!(word.get(i + 1), Some(b'$' | b'`' | b'"' | b'\\')) => {
                            out.push(word[i + 1]);
                            i += 2;
                        }
                        b'\\' if word.get(i + 1) == Some(&b'\n') => i += 2,
                        b => {
                            out.push(b);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            b'\\' => {
                out.push(*word.get(i + 1)?);
                i += 2;
            }
            b' ' | b'\t' => {
                // Only a trailing comment may follow the word.
                let rest = &word[i..];
                let rest = rest.iter().position(|&b| b != b' ' && b != b'\t');
                return match rest {
                    None => Some(out),
                    Some(p) if word[i + p] == b'#' => Some(out),
                    Some(_) => None,
                };
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The variables of one env file, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    vars: BTreeMap<String, Vec<u8>>,
}

impl EnvFile {
    /// Parse the file's text. Lines that are not `export KEY=value` (the header, blank
    /// lines, comments) are passed over; so is a line whose quoting does not close, since
    /// SmolVM's writer never produces one. A value may span lines inside its quotes.
    pub fn parse(text: &[u8]) -> EnvFile {
        let mut vars = BTreeMap::new();
        let newline_after = |from: usize| {
            text[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |p| from + p)
        };
        let mut pos = 0;
        while pos < text.len() {
            let line_end = newline_after(pos);
            let mut next = line_end + 1;
            if let Some((key, value_start)) = export_of(text, pos, line_end) {
                // The value may go on over the next lines inside its quotes: take the
                // shortest run of lines that reads as one word.
                let mut end = line_end;
                loop {
                    if let Some(v) = unquote(&text[value_start..end]) {
                        vars.insert(key, v);
                        next = end + 1;
                        break;
                    }
                    if end >= text.len() {
                        break;
                    }
                    end = newline_after(end + 1);
                }
            }
            pos = next;
        }
        EnvFile { vars }
    }

    /// The file as SmolVM writes it.
    pub fn render(&self) -> Vec<u8> {
        let mut out = HEADER.as_bytes().to_vec();
        for (k, v) in &self.vars {
            out.extend_from_slice(b"export ");
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(&shlex_quote(v));
            out.push(b'\n');
        }
        out
    }

    pub fn set(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        check_key(key)?;
        self.vars.insert(key.to_string(), value);
        Ok(())
    }

    /// Remove a key; whether it was there.
    pub fn unset(&mut self, key: &str) -> bool {
        self.vars.remove(key).is_some()
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.vars.get(key).map(Vec::as_slice)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

/// Read sandbox `id`'s env file over SSH as root with smolvm's key (an absent file is
/// empty). Values are never logged or shown by this function.
pub fn read(ctx: &Ctx, id: &str) -> Result<EnvFile> {
    read_as(ctx, id, &SshLogin::default())
}

/// [`read`] as `login` (`--ssh-user`, `--ssh-key`).
pub fn read_as(ctx: &Ctx, id: &str, login: &SshLogin) -> Result<EnvFile> {
    Ok(EnvFile::parse(&read_bytes(ctx, id, login)?))
}

/// The env file's bytes as [`READ_SCRIPT`] prints them.
fn read_bytes(ctx: &Ctx, id: &str, login: &SshLogin) -> Result<Vec<u8>> {
    guest::run_ok(
        ctx,
        id,
        login,
        &guest::sh(READ_SCRIPT, &[]),
        None,
        "Reading the environment file",
    )
}

/// Merge into sandbox `id`'s env file: every `set` pair written (keys checked first, so an
/// invalid one changes nothing), every `unset` key removed; the file is read, merged and
/// written back atomically ([`WRITE_SCRIPT`], the file on stdin). The one writer both
/// `sandbox env set|unset` and the presets' host-env forwarding call. Returns the file as
/// written (unchanged input writes nothing).
pub fn update(ctx: &Ctx, id: &str, set: &[(String, Vec<u8>)], unset: &[String]) -> Result<EnvFile> {
    update_as(ctx, id, &SshLogin::default(), set, unset)
}

/// [`update`] as `login`.
pub fn update_as(
    ctx: &Ctx,
    id: &str,
    login: &SshLogin,
    set: &[(String, Vec<u8>)],
    unset: &[String],
) -> Result<EnvFile> {
    merge(
        || read_bytes(ctx, id, login),
        |file| {
            guest::run_ok(
                ctx,
                id,
                login,
                &guest::sh(WRITE_SCRIPT, &[]),
                Some(file),
                "Writing the environment file",
            )
            .map(|_| ())
        },
        set,
        unset,
    )
}

/// The one read-merge-write of the env file, over any transport: `read` returns the
/// current file ([`READ_SCRIPT`]'s output), `write` puts the new one in place
/// ([`WRITE_SCRIPT`] with the file on stdin). Keys and values are checked before anything
/// is read, so a bad one changes nothing; an unchanged file is not written. `update` (the
/// toolkit) and the presets' forwarding at start (which has no row to name yet) call it.
pub fn merge(
    read: impl FnOnce() -> Result<Vec<u8>>,
    write: impl FnOnce(&[u8]) -> Result<()>,
    set: &[(String, Vec<u8>)],
    unset: &[String],
) -> Result<EnvFile> {
    for (k, v) in set {
        check_key(k)?;
        if v.contains(&0) {
            return Err(Error::usage(format!(
                "The value of {k} contains a NUL byte, which no environment variable can hold."
            )));
        }
    }
    for k in unset {
        check_key(k)?;
    }
    let old = EnvFile::parse(&read()?);
    let mut new = old.clone();
    for (k, v) in set {
        new.set(k, v.clone())?;
    }
    for k in unset {
        new.unset(k);
    }
    if new != old {
        write(&new.render())?;
    }
    Ok(new)
}

/// `export KEY=` at the start of the line `text[start..end]` (after blanks): the key and
/// where its value starts.
fn export_of(text: &[u8], start: usize, end: usize) -> Option<(String, usize)> {
    let blanks = |from: usize| {
        from + text[from..end]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count()
    };
    let at = blanks(start);
    let after = text[at..end].strip_prefix(b"export ")?;
    let key_start = blanks(end - after.len());
    let eq = key_start + text[key_start..end].iter().position(|&b| b == b'=')?;
    let key = std::str::from_utf8(&text[key_start..eq]).ok()?;
    is_valid_key(key).then(|| (key.to_string(), eq + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_smolvm_pattern() {
        for k in ["A", "_", "ANTHROPIC_API_KEY", "a1_b"] {
            assert!(is_valid_key(k), "{k}");
        }
        for k in ["", "1A", "A-B", "A B", "É", "A=B", "$A"] {
            assert!(!is_valid_key(k), "{k}");
            assert_eq!(check_key(k).unwrap_err().exit_code(), 2);
        }
    }

    #[test]
    fn quote_is_python_shlex_quote() {
        assert_eq!(shlex_quote(b""), b"''");
        assert_eq!(shlex_quote(b"abc-1.2/x:y@z%+=,_"), b"abc-1.2/x:y@z%+=,_");
        assert_eq!(shlex_quote(b"a b"), b"'a b'");
        assert_eq!(shlex_quote(b"it's"), b"'it'\"'\"'s'");
        assert_eq!(shlex_quote(b"$HOME"), b"'$HOME'");
    }

    #[test]
    fn render_is_smolvm_format_sorted() {
        let mut f = EnvFile::default();
        f.set("ZED", b"z".to_vec()).unwrap();
        f.set("ALPHA", b"a b".to_vec()).unwrap();
        assert_eq!(
            String::from_utf8(f.render()).unwrap(),
            "#!/bin/sh\n# SmolVM managed environment variables\n\nexport ALPHA='a b'\nexport ZED=z\n"
        );
    }

    #[test]
    fn any_value_round_trips() {
        let values: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"plain".to_vec(),
            b"with space".to_vec(),
            b"quote ' and \" and \\ and $x and `y`".to_vec(),
            b"multi\nline\n".to_vec(),
            b"''''".to_vec(),
            b"# not a comment".to_vec(),
            vec![0xff, 0xfe, b'\'', 0x80, b'\n', 1, 2, 3],
            (1u8..=255).collect(),
        ];
        let mut f = EnvFile::default();
        for (i, v) in values.iter().enumerate() {
            f.set(&format!("K{i}"), v.clone()).unwrap();
        }
        let back = EnvFile::parse(&f.render());
        assert_eq!(back, f);
    }

    #[test]
    fn parse_reads_hand_edits_and_skips_noise() {
        let text = b"#!/bin/sh\n# comment\n\nexport A=\"x \\\"y\\\" \\$z\"\n  export B=plain # note\nFOO=bar\nexport 1BAD=x\nexport C='unterminated\n";
        let f = EnvFile::parse(text);
        assert_eq!(f.get("A"), Some(&b"x \"y\" $z"[..]));
        assert_eq!(f.get("B"), Some(&b"plain"[..]));
        assert_eq!(f.get("FOO"), None);
        assert_eq!(f.get("1BAD"), None);
        assert_eq!(f.get("C"), None);
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn assignment_splits_at_first_equals() {
        assert_eq!(
            parse_assignment(b"K=a=b").unwrap(),
            ("K".to_string(), b"a=b".to_vec())
        );
        assert_eq!(parse_assignment(b"K=").unwrap(), ("K".to_string(), vec![]));
        assert_eq!(parse_assignment(b"K").unwrap_err().exit_code(), 2);
        assert_eq!(parse_assignment(b"1K=x").unwrap_err().exit_code(), 2);
        assert_eq!(parse_assignment(b"K=a\0b").unwrap_err().exit_code(), 2);
    }
}
