//! The guest's environment file, `/etc/profile.d/smolvm_env.sh`, as SmolVM writes it
//! (`env.py`): `#!/bin/sh`, `# SmolVM managed environment variables`, a blank line, then
//! one `export KEY=<value>` per key sorted by key, each value quoted as Python's
//! `shlex.quote` does. Login shells source it.
//!
//! This module is the one reader and writer of that format: `sandbox env set|unset|list`
//! and the presets' host-env forwarding both go through [`EnvFile`] and [`edit`], and the
//! file reaches the guest through [`WRITE_SCRIPT`] (atomic: a temporary file renamed over
//! the old one). Values are bytes, so anything a shell variable can hold (every byte but
//! NUL) round-trips.
//!
//! The file is the guest's too: people add their own lines (`export PATH="$PATH:…"`,
//! comments, functions). A change rewrites only the `export KEY=` statements of the keys it
//! sets or unsets; every other byte stays as it was ([`edit`]).

use std::collections::BTreeMap;

use super::context::Ctx;
use super::error::{Error, Result};
use super::guest;
use super::ssh::{shlex_quote, SshLogin};
use super::vm::VmId;

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
    /// SmolVM's writer never produces one. A value may span lines inside its quotes. A key
    /// exported twice has its last value (as a shell would).
    pub fn parse(text: &[u8]) -> EnvFile {
        EnvFile {
            vars: statements(text)
                .into_iter()
                .map(|s| (s.key, s.value))
                .collect(),
        }
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

    /// What `env list` shows of it, key by key in its order: each value (lossy UTF-8)
    /// when `show_values`, else masked as `****`; the dashboard's env keys are its keys.
    pub fn listing(&self, show_values: bool) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| {
                let shown = if show_values {
                    String::from_utf8_lossy(v).into_owned()
                } else {
                    "****".to_string()
                };
                (k.to_string(), shown)
            })
            .collect()
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
pub fn read(ctx: &Ctx, id: &VmId) -> Result<EnvFile> {
    read_as(ctx, id, &SshLogin::default())
}

/// The names of sandbox `id`'s env keys, as `env list` lists them masked: the values
/// are dropped here and never leave this function.
pub fn keys(ctx: &Ctx, id: &VmId) -> Result<Vec<String>> {
    let file = read(ctx, id)?;
    Ok(file.listing(false).into_iter().map(|(k, _)| k).collect())
}

/// [`read`] as `login` (`--ssh-user`, `--ssh-key`).
pub fn read_as(ctx: &Ctx, id: &VmId, login: &SshLogin) -> Result<EnvFile> {
    Ok(EnvFile::parse(&read_bytes(ctx, id, login)?))
}

/// The env file's bytes as [`READ_SCRIPT`] prints them.
fn read_bytes(ctx: &Ctx, id: &VmId, login: &SshLogin) -> Result<Vec<u8>> {
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
pub fn update(
    ctx: &Ctx,
    id: &VmId,
    set: &[(String, Vec<u8>)],
    unset: &[String],
) -> Result<EnvFile> {
    update_as(ctx, id, &SshLogin::default(), set, unset)
}

/// [`update`] as `login`.
pub fn update_as(
    ctx: &Ctx,
    id: &VmId,
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

/// SmolVM's guest command that loads the env file in a running shell.
pub const RELOAD_HINT: &str = "source /etc/profile.d/smolvm_env.sh";

/// What `sandbox env set` did: SmolVM's keys, plus the file's path. Keys only: the values
/// never leave core.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetReport {
    pub vm_id: String,
    pub path: &'static str,
    /// The keys asked for, sorted.
    pub requested_keys: Vec<String>,
    /// Every key of the file now, sorted.
    pub present_keys: Vec<String>,
    pub reload_hint: &'static str,
}

impl SetReport {
    /// `Set A, B in vm-1 (/etc/profile.d/smolvm_env.sh).`
    pub fn summary(&self) -> String {
        format!(
            "Set {} in {} ({}).",
            self.requested_keys.join(", "),
            self.vm_id,
            self.path
        )
    }
}

/// What `sandbox env unset` did: SmolVM's keys, plus the file's path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnsetReport {
    pub vm_id: String,
    pub path: &'static str,
    pub requested_keys: Vec<String>,
    pub removed_keys: Vec<String>,
    /// Keys asked to be removed that were not there.
    pub missing_keys: Vec<String>,
    pub reload_hint: &'static str,
}

impl UnsetReport {
    /// `Unset A in vm-1.` (`None` when none of the keys was there).
    pub fn summary(&self) -> Option<String> {
        (!self.removed_keys.is_empty())
            .then(|| format!("Unset {} in {}.", self.removed_keys.join(", "), self.vm_id))
    }

    /// `B was not set in vm-1.`, one per key that was not there.
    pub fn warnings(&self) -> Vec<String> {
        self.missing_keys
            .iter()
            .map(|k| format!("{k} was not set in {}.", self.vm_id))
            .collect()
    }
}

fn sorted(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = keys.into_iter().collect();
    v.sort();
    v.dedup();
    v
}

/// A value to set: the guest's bytes, never printed (`Debug` shows `****`).
#[derive(Clone, PartialEq, Eq)]
pub struct EnvValue(pub Vec<u8>);

impl std::fmt::Debug for EnvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvValue(****)")
    }
}

/// One change of a sandbox's env file, as the dashboard asks for it (`sandbox env set ID
/// KEY=VALUE` or `sandbox env unset ID KEY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvChange {
    Set { key: String, value: EnvValue },
    Unset { key: String },
}

impl EnvChange {
    pub fn key(&self) -> &str {
        match self {
            EnvChange::Set { key, .. } | EnvChange::Unset { key } => key,
        }
    }

    /// Carry it out as root with smolvm's key: [`set`] or [`unset`]; the line the command
    /// prints (an unset of a key that was not there says so).
    pub fn apply(&self, ctx: &Ctx, id: &VmId) -> Result<String> {
        let login = SshLogin::default();
        Ok(match self {
            EnvChange::Set { key, value } => {
                set(ctx, id, &login, &[(key.clone(), value.0.clone())])?.summary()
            }
            EnvChange::Unset { key } => {
                let r = unset(ctx, id, &login, std::slice::from_ref(key))?;
                r.summary().unwrap_or_else(|| r.warnings().join(" "))
            }
        })
    }
}

/// `sandbox env set ID KEY=VALUE…` as `login`: the pairs merged into the file ([`update_as`]).
pub fn set(
    ctx: &Ctx,
    id: &VmId,
    login: &SshLogin,
    pairs: &[(String, Vec<u8>)],
) -> Result<SetReport> {
    let file = update_as(ctx, id, login, pairs, &[])?;
    Ok(SetReport {
        vm_id: id.to_string(),
        path: GUEST_PATH,
        requested_keys: sorted(pairs.iter().map(|(k, _)| k.clone())),
        present_keys: sorted(file.keys().map(str::to_string)),
        reload_hint: RELOAD_HINT,
    })
}

/// `sandbox env unset ID KEY…` as `login`: the keys removed from the file; a key that was
/// not there is said, not an error.
pub fn unset(ctx: &Ctx, id: &VmId, login: &SshLogin, keys: &[String]) -> Result<UnsetReport> {
    for k in keys {
        check_key(k)?;
    }
    let before = read_as(ctx, id, login)?;
    update_as(ctx, id, login, &[], keys)?;
    let (removed, missing): (Vec<String>, Vec<String>) =
        keys.iter().cloned().partition(|k| before.get(k).is_some());
    Ok(UnsetReport {
        vm_id: id.to_string(),
        path: GUEST_PATH,
        requested_keys: sorted(keys.iter().cloned()),
        removed_keys: sorted(removed),
        missing_keys: sorted(missing),
        reload_hint: RELOAD_HINT,
    })
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
    check_set(set)?;
    for k in unset {
        check_key(k)?;
    }
    let old = read()?;
    let new = edit(&old, set, unset);
    if new != old {
        write(&new)?;
    }
    Ok(EnvFile::parse(&new))
}

/// Check the pairs to set before anything is read or sent: each key a variable name, no
/// value with a NUL byte (exit 2 otherwise).
pub fn check_set(set: &[(String, Vec<u8>)]) -> Result<()> {
    for (k, v) in set {
        check_key(k)?;
        if v.contains(&0) {
            return Err(Error::usage(format!(
                "The value of {k} contains a NUL byte, which no environment variable can hold."
            )));
        }
    }
    Ok(())
}

/// One `export KEY=value` statement of a file: its key, its value and its bytes (from the
/// start of its first line to the end of its last, newline included).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    key: String,
    value: Vec<u8>,
    span: std::ops::Range<usize>,
}

/// Every `export KEY=value` statement of `text`, in order.
fn statements(text: &[u8]) -> Vec<Statement> {
    let mut out = Vec::new();
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
                if let Some(value) = unquote(&text[value_start..end]) {
                    next = end + 1;
                    out.push(Statement {
                        key,
                        value,
                        span: pos..next.min(text.len()),
                    });
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
    out
}

/// The line smolvm writes for a key.
fn export_line(key: &str, value: &[u8]) -> Vec<u8> {
    let mut l = b"export ".to_vec();
    l.extend_from_slice(key.as_bytes());
    l.push(b'=');
    l.extend_from_slice(&shlex_quote(value));
    l.push(b'\n');
    l
}

/// `text` with `set` written and `unset` removed, changing nothing else: a key that is set
/// has its last `export` statement replaced (left as it is when it already holds that
/// value); a new key's line goes before the first statement of a greater key (after the
/// last statement when there is none, at the end when there are no statements), so a file
/// smolvm wrote stays sorted as SmolVM writes it; an unset key loses every statement. An
/// empty or missing file starts with SmolVM's header. Keys are assumed checked.
pub fn edit(text: &[u8], set: &[(String, Vec<u8>)], unset: &[String]) -> Vec<u8> {
    let stmts = statements(text);
    let mut wanted: BTreeMap<&str, &[u8]> = set
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    for k in unset {
        wanted.remove(k.as_str());
    }
    let removed = |k: &str| unset.iter().any(|u| u == k);
    let last_of = |k: &str| stmts.iter().rposition(|s| s.key == k);
    // What goes where: (offset, bytes to insert) and spans to replace.
    let mut inserts: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut replaced: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
    for (i, st) in stmts.iter().enumerate() {
        if removed(&st.key) {
            replaced.push((st.span.clone(), Vec::new()));
        } else if let Some(v) = wanted.get(st.key.as_str()) {
            if last_of(&st.key) == Some(i) && st.value != *v {
                let mut line = export_line(&st.key, v);
                if !text[st.span.clone()].ends_with(b"\n") {
                    line.pop();
                }
                replaced.push((st.span.clone(), line));
            }
        }
    }
    for (k, v) in &wanted {
        if last_of(k).is_some() {
            continue;
        }
        let at = match stmts
            .iter()
            .find(|s| s.key.as_str() > *k && !removed(&s.key))
        {
            Some(s) => s.span.start,
            None => stmts
                .iter()
                .filter(|s| !removed(&s.key))
                .map(|s| s.span.end)
                .max()
                .unwrap_or(text.len()),
        };
        let mut line = export_line(k, v);
        if at == text.len() && !text.is_empty() && !text.ends_with(b"\n") {
            line.insert(0, b'\n');
        }
        inserts.push((at, line));
    }
    inserts.sort_by_key(|(at, _)| *at); // stable: key order within one offset
    let mut prefix = Vec::new();
    if text.is_empty() && !inserts.is_empty() {
        prefix.extend_from_slice(HEADER.as_bytes());
    }
    // Assemble: the original bytes with the replaced spans swapped and the inserts placed
    // (inserts at one offset in key order, before a replaced span starting there).
    let mut out = prefix;
    let mut pos = 0;
    let mut ri = replaced.iter().peekable();
    let mut ii = inserts.iter().peekable();
    loop {
        let next_insert = ii.peek().map(|(at, _)| *at);
        let next_replace = ri.peek().map(|(span, _)| span.start);
        match (next_insert, next_replace) {
            (Some(a), r) if r.is_none_or(|r| a <= r) => {
                out.extend_from_slice(&text[pos..a]);
                pos = a;
                out.extend_from_slice(&ii.next().map(|(_, l)| l.clone()).unwrap_or_default());
            }
            (_, Some(r)) => {
                let (span, with) = ri.next().cloned().unwrap_or_default();
                out.extend_from_slice(&text[pos..r]);
                out.extend_from_slice(&with);
                pos = span.end;
            }
            (None, None) => break,
            (Some(_), None) => unreachable!("matched above"),
        }
    }
    out.extend_from_slice(&text[pos..]);
    out
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
    fn the_listing_masks_values_unless_asked_and_keeps_the_keys_order() {
        let mut f = EnvFile::default();
        f.set("B_KEY", b"two".to_vec()).unwrap();
        f.set("A_KEY", b"one".to_vec()).unwrap();
        let masked = f.listing(false);
        let shown = f.listing(true);
        let keys: Vec<&str> = masked.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, f.keys().collect::<Vec<_>>());
        assert!(masked.iter().all(|(_, v)| v == "****"));
        assert!(shown.contains(&("A_KEY".to_string(), "one".to_string())));
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

    fn set(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|k| k.to_string()).collect()
    }

    fn edited(text: &str, s: &[(&str, &str)], u: &[&str]) -> String {
        String::from_utf8(edit(text.as_bytes(), &set(s), &keys(u))).unwrap()
    }

    const HAND: &str = "#!/bin/sh\n# SmolVM managed environment variables\n\n# my tools\nexport PATH=\"$PATH:/opt/tool/bin\"\nalias ll='ls -l'\nexport B=2\n\ngreet() { echo hi; }\n";

    #[test]
    fn lines_smolvm_did_not_write_stay_byte_for_byte() {
        // A new key, a changed key, a removed key: only their export lines move (a new
        // one goes before the first statement of a greater key).
        assert_eq!(
            edited(HAND, &[("A", "1 2"), ("C", "3")], &[]),
            "#!/bin/sh\n# SmolVM managed environment variables\n\n# my tools\nexport A='1 2'\nexport C=3\nexport PATH=\"$PATH:/opt/tool/bin\"\nalias ll='ls -l'\nexport B=2\n\ngreet() { echo hi; }\n"
        );
        assert_eq!(
            edited(HAND, &[("B", "two")], &[]),
            HAND.replace("export B=2\n", "export B=two\n")
        );
        assert_eq!(edited(HAND, &[], &["B"]), HAND.replace("export B=2\n", ""));
        // Setting a value it already has, or unsetting a missing key: not one byte moves
        // (the hand-written quoting included).
        let quoted = "export Q=\"same\" # note\n";
        assert_eq!(edited(quoted, &[("Q", "same")], &[]), quoted);
        assert_eq!(edited(HAND, &[("B", "2")], &["NOPE"]), HAND);
        // The hand line still reads back (as its literal text).
        let f = EnvFile::parse(edited(HAND, &[("A", "1")], &[]).as_bytes());
        assert_eq!(f.get("PATH"), Some(&b"$PATH:/opt/tool/bin"[..]));
        assert_eq!(f.get("A"), Some(&b"1"[..]));
    }

    #[test]
    fn a_file_smolvm_wrote_stays_exactly_as_smolvm_writes_it() {
        let mut f = EnvFile::default();
        f.set("B", b"b".to_vec()).unwrap();
        f.set("D", b"d d".to_vec()).unwrap();
        let text = f.render();
        let out = edit(
            &text,
            &set(&[("A", "a"), ("C", "c"), ("E", "e"), ("D", "x")]),
            &[],
        );
        let mut want = f.clone();
        for (k, v) in [("A", "a"), ("C", "c"), ("E", "e"), ("D", "x")] {
            want.set(k, v.as_bytes().to_vec()).unwrap();
        }
        assert_eq!(out, want.render());
        want.unset("B");
        assert_eq!(edit(&out, &[], &keys(&["B"])), want.render());
        // No file yet: SmolVM's header, then the line.
        assert_eq!(
            edited("", &[("K", "v")], &[]),
            "#!/bin/sh\n# SmolVM managed environment variables\n\nexport K=v\n"
        );
        assert_eq!(edited("", &[], &["K"]), "");
    }

    #[test]
    fn duplicates_multi_line_values_and_a_missing_final_newline() {
        // A key exported twice: set replaces the last (the one a shell keeps), unset
        // removes both.
        let dup = "export K=1\necho between\nexport K=2\n";
        assert_eq!(
            edited(dup, &[("K", "3")], &[]),
            "export K=1\necho between\nexport K=3\n"
        );
        assert_eq!(edited(dup, &[], &["K"]), "echo between\n");
        // A value over two lines is one statement.
        let multi = "export M='a\nb'\n# after\n";
        assert_eq!(edited(multi, &[("M", "c")], &[]), "export M=c\n# after\n");
        assert_eq!(edited(multi, &[], &["M"]), "# after\n");
        // No newline at the end: kept for a replaced last line, added before a new one.
        assert_eq!(edited("export K=1", &[("K", "2")], &[]), "export K=2");
        assert_eq!(edited("# mine", &[("K", "2")], &[]), "# mine\nexport K=2\n");
        // A new key in a file whose statements are not sorted goes before the first
        // greater one; several at one place keep key order.
        assert_eq!(
            edited("export Z=1\nexport B=1\n", &[("C", "1"), ("A", "1")], &[]),
            "export A=1\nexport C=1\nexport Z=1\nexport B=1\n"
        );
    }

    #[test]
    fn merge_writes_only_a_changed_file() {
        let writes = std::cell::RefCell::new(Vec::new());
        let run = |text: &str, s: &[(&str, &str)]| {
            merge(
                || Ok(text.as_bytes().to_vec()),
                |f| {
                    writes.borrow_mut().push(f.to_vec());
                    Ok(())
                },
                &set(s),
                &[],
            )
            .unwrap()
        };
        let f = run(HAND, &[("B", "2")]);
        assert!(writes.borrow().is_empty());
        assert_eq!(f.get("B"), Some(&b"2"[..]));
        run(HAND, &[("B", "3")]);
        assert_eq!(
            writes.borrow().as_slice(),
            [HAND.replace("export B=2\n", "export B=3\n").into_bytes()]
        );
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

    /// A value to set never shows in `Debug` (a face's effects, a log line); the reports
    /// say what `env set` and `env unset` print, keys only.
    #[test]
    fn a_change_never_prints_its_value_and_the_reports_say_the_commands_lines() {
        let c = EnvChange::Set {
            key: "API_KEY".into(),
            value: EnvValue(b"sk-secret".to_vec()),
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("sk-secret") && shown.contains("API_KEY"),
            "{shown}"
        );
        assert_eq!(c.key(), "API_KEY");
        let set = SetReport {
            vm_id: "vm-1".into(),
            path: GUEST_PATH,
            requested_keys: vec!["A".into(), "B".into()],
            present_keys: vec!["A".into(), "B".into(), "C".into()],
            reload_hint: RELOAD_HINT,
        };
        assert_eq!(
            set.summary(),
            "Set A, B in vm-1 (/etc/profile.d/smolvm_env.sh)."
        );
        let unset = UnsetReport {
            vm_id: "vm-1".into(),
            path: GUEST_PATH,
            requested_keys: vec!["A".into(), "Z".into()],
            removed_keys: vec!["A".into()],
            missing_keys: vec!["Z".into()],
            reload_hint: RELOAD_HINT,
        };
        assert_eq!(unset.summary().as_deref(), Some("Unset A in vm-1."));
        assert_eq!(unset.warnings(), ["Z was not set in vm-1."]);
        let none = UnsetReport {
            removed_keys: vec![],
            ..unset
        };
        assert_eq!(none.summary(), None);
    }
}
