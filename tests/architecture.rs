//! The layers hold. This test reads every `src/**/*.rs` file and fails on an import that
//! crosses a layer the wrong way:
//!
//! ```text
//!   entry  (src/main.rs, src/bin/*)   picks the face; may use cli and tui
//!   faces  (cli, tui)                 may use core; never each other, never sys
//!   core                              may use sys; never a face
//!   sys                               every side effect; uses nothing above it
//! ```
//!
//! Any path into a layer counts: `use` statements, grouped imports
//! (`use crate::{core::X, sys::Y}`), inline paths (`crate::sys::fs::disk_usage(..)`),
//! `super::` chains that climb out of a layer, and code inside `#[cfg(test)]` modules.
//! Comments (doc links included) and string literals do not.
//!
//! The faces reach sys only through the few items core re-exports on purpose
//! ([`REEXPORTS`]); a `pub use` (or `pub type`) in core that hands out any other sys item
//! fails too, and so does an entry of the list that no longer exists.

mod support;

use support::sources::{sources, AllowList};

/// The sys items core re-exports, and why the faces may have them. Everything else a face
/// needs from sys goes through a core function.
const REEXPORTS: &[(&str, &str, &str)] = &[
    (
        "src/core/host.rs",
        "sys::host::DevAccess",
        "a field of core's Host (may this user open /dev/kvm): a plain enum the header shows",
    ),
    (
        "src/core/mod.rs",
        "sys::env::Env",
        "the environment snapshot every command starts from; faces build it once and pass it",
    ),
    (
        "src/core/mod.rs",
        "sys::paths::Paths",
        "the resolved locations (state DBs, images, sockets) every core function takes",
    ),
    (
        "src/core/mod.rs",
        "sys::state::VmStatus",
        "a sandbox's stored status (SmolVM's five words) in core's reports: faces compare it",
    ),
    (
        "src/core/mod.rs",
        "sys::paths::display_path",
        "how a path is shown to a person (`~/…`), pure formatting",
    ),
    (
        "src/core/error.rs",
        "sys::io_reason",
        "how an I/O error reads in a message, pure formatting core uses everywhere",
    ),
    (
        "src/core/units.rs",
        "sys::env::parse_seconds",
        "the one seconds parser, for flags (cli) and variables (sys::env) alike",
    ),
    (
        "src/core/sandbox.rs",
        "sys::process::is_vm_id",
        "SmolVM's id pattern, pure; the dashboard's start form checks names with it",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// `src/main.rs`, `src/bin/*`: pick the face, and nothing else.
    Entry,
    /// `src/lib.rs`: declares the layers (names no paths).
    Root,
    Cli,
    Tui,
    Core,
    Sys,
}

impl Layer {
    fn of_module(name: &str) -> Option<Layer> {
        match name {
            "cli" => Some(Layer::Cli),
            "tui" => Some(Layer::Tui),
            "core" => Some(Layer::Core),
            "sys" => Some(Layer::Sys),
            _ => None,
        }
    }

    /// May code in `self` name a path into `to`?
    fn may_use(self, to: Layer) -> bool {
        use Layer::*;
        match self {
            Entry => matches!(to, Cli | Tui),
            Root => true,
            Cli => matches!(to, Cli | Core),
            Tui => matches!(to, Tui | Core),
            Core => matches!(to, Core | Sys),
            Sys => to == Sys,
        }
    }
}

/// The layer and module path (`["core", "images", "pull"]`) of a file under `src/`.
fn file_module(rel: &str) -> (Layer, Vec<String>) {
    let rel = rel.strip_prefix("src/").unwrap_or(rel);
    if rel == "main.rs" || rel.starts_with("bin/") {
        return (Layer::Entry, Vec::new());
    }
    if rel == "lib.rs" {
        return (Layer::Root, Vec::new());
    }
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    let layer = parts
        .first()
        .and_then(|p| Layer::of_module(p))
        .unwrap_or_else(|| panic!("src/{rel} is in no known layer: add it to the picture"));
    (layer, parts)
}

/// The source with comments and the contents of string and character literals blanked
/// (newlines kept, so line numbers stay right).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'/' && next == Some(b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && next == Some(b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if (c == b'r' || (c == b'b' && next == Some(b'r')))
            && !prev_is_ident(b, i)
            && raw_string_start(b, i + usize::from(c == b'b') + 1).is_some()
        {
            let start = i + usize::from(c == b'b') + 1;
            let hashes = raw_string_start(b, start).unwrap_or(0);
            let body = start + hashes + 1;
            out.extend(std::iter::repeat_n(b' ', body - i));
            i = body;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while i < b.len() && !b[i..].starts_with(&close) {
                blank(&mut out, b[i]);
                i += 1;
            }
            out.extend(std::iter::repeat_n(b' ', close.len().min(b.len() - i)));
            i += close.len();
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A character literal ('x', '\n', '\u{7f}', '"') or a lifetime ('a).
            let len = if next == Some(b'\\') {
                // After the escaped character: `'\''`, `'\n'`, `'\u{7f}'`.
                b.get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&x| x == b'\''))
                    .map(|p| p + 4)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(3)
            } else {
                std::str::from_utf8(&b[i + 1..])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .filter(|ch| !ch.is_ascii())
                    .map(|ch| ch.len_utf8() + 2)
                    .filter(|&l| b.get(i + l - 1) == Some(&b'\''))
            };
            match len {
                Some(l) => {
                    out.extend(std::iter::repeat_n(b' ', l));
                    i += l;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// At `i`: `#*"` opening a raw string? The number of `#`s.
fn raw_string_start(b: &[u8], i: usize) -> Option<usize> {
    let hashes = b[i.min(b.len())..]
        .iter()
        .take_while(|&&c| c == b'#')
        .count();
    (b.get(i + hashes) == Some(&b'"')).then_some(hashes)
}

/// A token stream good enough for paths: identifiers, `::`, and single punctuation.
fn tokens(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
            let s = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((line, code[s..i].to_string()));
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push((line, "::".to_string()));
            i += 2;
        } else {
            let ch = code[i..].chars().next().unwrap_or(' ');
            out.push((line, ch.to_string()));
            i += ch.len_utf8();
        }
    }
    out
}

/// One path into a layer: where it is written and the module path it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    line: usize,
    /// The absolute module path named, from the crate root (`["sys", "env", "Env"]`).
    path: Vec<String>,
    /// The path as written (`crate::sys::env::Env`, `super::super::sys`).
    written: String,
}

/// Every path that names a module from the crate root: `crate::…`, `$crate::…`,
/// `smolvm::…` and `super::…` chains, with grouped imports expanded one level.
fn references(rel: &str, src: &str) -> Vec<Reference> {
    let (_, file_mod) = file_module(rel);
    let toks = tokens(&code_only(src));
    // Inline modules (`mod tests { … }`) deepen the module `super` starts from.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let (line, t) = (&toks[i].0, toks[i].1.as_str());
        match t {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if toks.get(i + 2).is_some_and(|(_, x)| x == "{") => {
                inline.push((toks[i + 1].1.clone(), depth));
            }
            _ => {}
        }
        let prev_is_path = i > 0 && toks[i - 1].1 == "::";
        let here: Vec<String> = file_mod
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        let base = match t {
            "crate" | "$crate" | "smolvm" if !prev_is_path => Some((Vec::new(), i + 1)),
            "super" if !prev_is_path => {
                let mut k = i;
                let mut up = 0;
                while toks.get(k).is_some_and(|(_, x)| x == "super")
                    && toks.get(k + 1).is_some_and(|(_, x)| x == "::")
                {
                    up += 1;
                    k += 2;
                }
                (up > 0).then(|| {
                    let keep = here.len().saturating_sub(up);
                    (here[..keep].to_vec(), k - 1)
                })
            }
            _ => None,
        };
        let Some((base, after)) = base else {
            i += 1;
            continue;
        };
        // `after` is the token after the first segment (`crate`) or the last `super`.
        let written_head: String = toks[i..after].iter().map(|(_, x)| x.as_str()).collect();
        if toks.get(after).is_some_and(|(_, x)| x == "::") {
            match toks.get(after + 1).map(|(_, x)| x.as_str()) {
                Some("{") => {
                    // `crate::{core::Error, sys::{env::Env}}`: the first segment of each item.
                    let mut k = after + 2;
                    let mut level = 0;
                    let mut expect_item = true;
                    while let Some((l, x)) = toks.get(k) {
                        match x.as_str() {
                            "{" => level += 1,
                            "}" if level == 0 => break,
                            "}" => level -= 1,
                            "," if level == 0 => expect_item = true,
                            name if expect_item && level == 0 => {
                                expect_item = false;
                                if name != "self" && name != "super" {
                                    let mut path = base.clone();
                                    path.push(name.to_string());
                                    out.push(Reference {
                                        line: *l,
                                        path,
                                        written: format!("{written_head}::{{{name}…}}"),
                                    });
                                }
                            }
                            _ => {}
                        }
                        k += 1;
                    }
                }
                Some(name) if name.starts_with(|c: char| c.is_alphabetic() || c == '_') => {
                    let mut path = base.clone();
                    let mut k = after + 1;
                    while let Some((_, seg)) = toks.get(k) {
                        path.push(seg.clone());
                        if toks.get(k + 1).is_some_and(|(_, x)| x == "::")
                            && toks
                                .get(k + 2)
                                .is_some_and(|(_, x)| x.starts_with(char::is_alphabetic))
                        {
                            k += 2;
                        } else {
                            break;
                        }
                    }
                    out.push(Reference {
                        line: *line,
                        written: format!("{written_head}::{}", path[base.len()..].join("::")),
                        path,
                    });
                }
                _ => {}
            }
        } else if t == "super" && !base.is_empty() {
            // `use super::super;` names the module itself.
            out.push(Reference {
                line: *line,
                path: base.clone(),
                written: written_head,
            });
        }
        i = after.max(i + 1);
    }
    out
}

/// The forbidden edges in one file, as `file:line: written (layer → layer)` lines.
fn violations(rel: &str, src: &str) -> Vec<String> {
    let (from, _) = file_module(rel);
    references(rel, src)
        .into_iter()
        .filter_map(|r| {
            let to = Layer::of_module(r.path.first()?)?;
            (!from.may_use(to))
                .then(|| format!("{rel}:{}: {} ({from:?} → {to:?})", r.line, r.written))
        })
        .collect()
}

/// The leaf paths of a use tree (`a::{b, c::{d as e}, f::*}` → `a::b`, `a::c::d`, `a::f::*`).
fn use_tree_leaves(toks: &[&str]) -> Vec<Vec<String>> {
    fn walk(toks: &[&str], prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        let mut k = 0;
        while k < toks.len() {
            match toks[k] {
                "::" => {}
                "{" => {
                    // Split the group's items at top-level commas.
                    let mut level = 0;
                    let mut item_start = k + 1;
                    for j in k + 1..toks.len() {
                        match toks[j] {
                            "{" => level += 1,
                            "}" if level == 0 => {
                                if item_start < j {
                                    walk(&toks[item_start..j], &path, out);
                                }
                                return;
                            }
                            "}" => level -= 1,
                            "," if level == 0 => {
                                walk(&toks[item_start..j], &path, out);
                                item_start = j + 1;
                            }
                            _ => {}
                        }
                    }
                    return;
                }
                "as" => break,
                "self" if !path.is_empty() => {}
                seg => path.push(seg.to_string()),
            }
            k += 1;
        }
        out.push(path);
    }
    let mut out = Vec::new();
    walk(toks, &[], &mut out);
    out
}

/// Each sys item a core file hands out with `pub use` or `pub type`, as
/// (line, `sys::…::Item`).
fn core_reexports_of_sys(rel: &str, src: &str) -> Vec<(usize, String)> {
    let (layer, here) = file_module(rel);
    if layer != Layer::Core {
        return Vec::new();
    }
    let toks = tokens(&code_only(src));
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i].1 != "pub" {
            i += 1;
            continue;
        }
        let mut k = i + 1;
        if toks.get(k).is_some_and(|(_, x)| x == "(") {
            while toks.get(k).is_some_and(|(_, x)| x != ")") {
                k += 1;
            }
            k += 1;
        }
        let Some((line, kind)) = toks.get(k).map(|(l, x)| (*l, x.as_str())) else {
            break;
        };
        let mut end = k;
        while toks.get(end).is_some_and(|(_, x)| x != ";") {
            end += 1;
        }
        let body: Vec<&str> = toks[k + 1..end.min(toks.len())]
            .iter()
            .map(|(_, x)| x.as_str())
            .collect();
        let leaves = match kind {
            "use" => use_tree_leaves(&body),
            // `pub type Name<…> = path<…>;`: the path after `=`, up to its generics.
            "type" => body
                .iter()
                .position(|x| *x == "=")
                .map(|eq| {
                    let rhs: Vec<&str> = body[eq + 1..]
                        .iter()
                        .take_while(|x| **x != "<")
                        .copied()
                        .collect();
                    use_tree_leaves(&rhs)
                })
                .unwrap_or_default(),
            _ => {
                i += 1;
                continue;
            }
        };
        for leaf in leaves {
            if let Some(path) = absolute(&leaf, &here) {
                if path.first().is_some_and(|p| p == "sys") {
                    out.push((line, path.join("::")));
                }
            }
        }
        i = end;
    }
    out
}

/// A path as written (`crate::sys::x`, `super::super::sys::x`) from the crate root, or
/// `None` for one that does not start at a module (`std::…`, a local name).
fn absolute(path: &[String], here: &[String]) -> Option<Vec<String>> {
    match path.first().map(String::as_str) {
        Some("crate" | "$crate" | "smolvm") => Some(path[1..].to_vec()),
        Some("super") => {
            let up = path.iter().take_while(|s| *s == "super").count();
            let keep = here.len().checked_sub(up)?;
            Some(here[..keep].iter().chain(&path[up..]).cloned().collect())
        }
        Some("self") => Some(here.iter().chain(&path[1..]).cloned().collect()),
        _ => None,
    }
}

#[test]
fn no_layer_imports_against_the_picture() {
    let found: Vec<String> = sources()
        .iter()
        .flat_map(|(rel, src)| violations(rel, src))
        .collect();
    assert!(
        found.is_empty(),
        "imports against the layers (entry → faces (cli, tui) → core → sys; faces reach sys \
         only through what core re-exports):\n{}",
        found.join("\n")
    );
}

#[test]
fn core_re_exports_only_the_listed_sys_items() {
    let mut listed = AllowList::new(REEXPORTS);
    for (rel, src) in sources() {
        for (line, item) in core_reexports_of_sys(&rel, &src) {
            listed.check(&rel, &item, || format!("{rel}:{line}: {item}"));
        }
    }
    listed.assert_exact(
        "core hands sys items to the faces that are not in REEXPORTS (wrap them in a core \
         function instead, or list them with the reason)",
        "REEXPORTS entries core no longer re-exports (keep the list exact)",
        |f, it| format!("{f}: {it}"),
    );
}

#[test]
fn the_scan_reports_a_planted_forbidden_import() {
    let planted = "use crate::tui::app;\n";
    assert_eq!(
        violations("src/core/x.rs", planted),
        ["src/core/x.rs:1: crate::tui::app (Core → Tui)"]
    );
    // Every form of path counts, in test modules too; comments and strings do not.
    let src = r##"//! See [`run`](crate::tui::run).
use crate::{core::Error, sys::{env::Env, paths}};
fn f() {
    let _ = "crate::cli::run";
    let _ = ['"', '\'', '\u{7b}', '{'];
    let _: &'static str = r#"crate::tui::x"#;
    crate::cli::output::line("x"); /* crate::tui::x */
}
#[cfg(test)]
mod tests {
    use super::super::super::super::tui::app::App;
    use super::super::fs;
}
"##;
    assert_eq!(
        violations("src/sys/state/x.rs", src),
        [
            "src/sys/state/x.rs:2: crate::{core…} (Sys → Core)",
            "src/sys/state/x.rs:7: crate::cli::output::line (Sys → Cli)",
            "src/sys/state/x.rs:11: super::super::super::super::tui::app::App (Sys → Tui)",
        ]
    );
    // Faces: never each other, never sys.
    assert_eq!(
        violations("src/cli/mod.rs", "fn f() { crate::tui::run(false); }").len(),
        1
    );
    assert_eq!(
        violations(
            "src/tui/data.rs",
            "use crate::sys::procfs;\nuse crate::core::Env;"
        )
        .len(),
        1
    );
    assert_eq!(
        violations("src/tui/mod.rs", "use super::super::cli::output;").len(),
        1
    );
    // The entry points pick the face.
    assert!(violations("src/main.rs", "smolvm::tui::run(smolvm::cli::run(a))").is_empty());
    assert!(violations("src/bin/smolvm-cleanup.rs", "smolvm::cli::run(a)").is_empty());
    assert_eq!(
        violations("src/main.rs", "smolvm::sys::fs::x()"),
        ["src/main.rs:1: smolvm::sys::fs::x (Entry → Sys)"]
    );
    // Allowed: core → sys, a face → core, sibling modules.
    assert!(violations("src/core/x.rs", "use crate::sys::fs; use super::error;").is_empty());
}

#[test]
fn the_scan_reports_what_core_re_exports_from_sys() {
    let src = "pub use crate::sys::paths::{display_path, Paths as P};\n\
               pub(crate) use crate::sys::procfs;\n\
               use crate::sys::fs::disk_usage;\n\
               pub use error::{Error, Result};\n\
               pub type Store = crate::sys::state::StateStore;\n";
    assert_eq!(
        core_reexports_of_sys("src/core/mod.rs", src),
        [
            (1, "sys::paths::display_path".to_string()),
            (1, "sys::paths::Paths".to_string()),
            (2, "sys::procfs".to_string()),
            (5, "sys::state::StateStore".to_string()),
        ]
    );
}

/// Is this path (from a `use` leaf or written inline) a side effect that belongs in sys?
/// `libc`, `nix` and `rustix` are; so are `std::process` (but for `id`, `exit` and the
/// plain values a finished child leaves: `ExitStatus`, `ExitCode`, `Output`),
/// `std::os::unix::process` (`CommandExt`, `exec`) and `tokio::process`.
fn is_side_effect_path(path: &[String]) -> bool {
    let seg = |i: usize| path.get(i).map(String::as_str);
    match (seg(0), seg(1)) {
        (Some("libc" | "nix" | "rustix"), _) => true,
        (Some("std"), Some("process")) => !matches!(
            seg(2),
            Some("id" | "exit" | "ExitStatus" | "ExitCode" | "Output")
        ),
        (Some("std"), Some("os")) => seg(2) == Some("unix") && seg(3) == Some("process"),
        (Some("tokio"), Some("process")) => true,
        _ => false,
    }
}

/// Each side-effect path (see [`is_side_effect_path`]) a file names, as
/// `file:line: path`: the leaves of `use` statements and paths written inline.
fn side_effect_paths(rel: &str, src: &str) -> Vec<String> {
    let toks = tokens(&code_only(src));
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let (line, t) = (toks[i].0, toks[i].1.as_str());
        let after_path = i > 0 && matches!(toks[i - 1].1.as_str(), "::" | ".");
        if t == "use" && !after_path {
            let mut end = i + 1;
            while toks.get(end).is_some_and(|(_, x)| x != ";") {
                end += 1;
            }
            let body: Vec<&str> = toks[i + 1..end.min(toks.len())]
                .iter()
                .map(|(_, x)| x.as_str())
                .collect();
            let body = body.strip_prefix(&["::"]).unwrap_or(&body);
            for leaf in use_tree_leaves(body) {
                if is_side_effect_path(&leaf) {
                    out.push(format!("{rel}:{line}: use {}", leaf.join("::")));
                }
            }
            i = end + 1;
            continue;
        }
        if matches!(t, "std" | "tokio" | "libc" | "nix" | "rustix")
            && !after_path
            && toks.get(i + 1).is_some_and(|(_, x)| x == "::")
        {
            let mut path = vec![t.to_string()];
            let mut k = i + 2;
            while let Some((_, seg)) = toks.get(k) {
                if !seg.starts_with(|c: char| c.is_alphabetic() || c == '_') {
                    break;
                }
                path.push(seg.clone());
                if toks.get(k + 1).is_some_and(|(_, x)| x == "::") {
                    k += 2;
                } else {
                    break;
                }
            }
            if is_side_effect_path(&path) {
                out.push(format!("{rel}:{line}: {}", path.join("::")));
            }
            i = k + 1;
            continue;
        }
        i += 1;
    }
    out
}

#[test]
fn side_effects_live_in_sys() {
    let found: Vec<String> = sources()
        .iter()
        .filter(|(rel, _)| matches!(file_module(rel).0, Layer::Core | Layer::Cli | Layer::Tui))
        .flat_map(|(rel, src)| side_effect_paths(rel, src))
        .collect();
    assert!(
        found.is_empty(),
        "processes, signals and system calls (std::process, tokio::process, libc, nix, \
         rustix) belong in sys; core, cli and tui call a sys function named for what it \
         does:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_reports_a_planted_side_effect() {
    let src = r#"//! Runs `std::process::Command`.
use std::process::{self, Command as C, Stdio};
use std::os::unix::process::CommandExt;
use nix::unistd::geteuid;
fn f() {
    let _ = "libc::SIGKILL";
    let _ = std::process::id();
    let _: std::process::ExitStatus;
    let _ = libc::SIGKILL;
    let _ = tokio::process::Command::new("x");
    let _ = x.nix::y; // not a path from the root
    std::process::exit(0);
}
"#;
    assert_eq!(
        side_effect_paths("src/core/x.rs", src),
        [
            "src/core/x.rs:2: use std::process",
            "src/core/x.rs:2: use std::process::Command",
            "src/core/x.rs:2: use std::process::Stdio",
            "src/core/x.rs:3: use std::os::unix::process::CommandExt",
            "src/core/x.rs:4: use nix::unistd::geteuid",
            "src/core/x.rs:9: libc::SIGKILL",
            "src/core/x.rs:10: tokio::process::Command::new",
        ]
    );
}

/// Where a face opens a host's paths, facts, presets or state store itself
/// (`Paths::resolve`, `Ctx::open`, `StateStore::open`, `Host::probe`, `Registry::load`),
/// picks a host (`Context::local`, `Context::open`) outside the one place it does
/// (`cli::context`, the dashboard's session in `tui/mod.rs`), or a CLI handler opens a
/// second context, as `file:line: what`, test code aside.
fn face_openings(rel: &str, src: &str) -> Vec<String> {
    let code = code_only(src);
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    for (i, l) in code.lines().enumerate() {
        let l: String = l.split_whitespace().collect();
        for what in [
            "Paths::resolve(",
            "Ctx::open(",
            "StateStore::open(",
            "Host::probe(",
            "Registry::load(",
        ] {
            if l.contains(what) {
                found.push(format!("{rel}:{}: {what}", i + 1));
            }
        }
        // The CLI opens its context once per command, in `cli::run`: a handler takes it.
        if l.contains("super::context(") && rel.starts_with("src/cli/") {
            found.push(format!("{rel}:{}: opens a second context", i + 1));
        }
        let chooses = l.contains("Context::local(") || l.contains("Context::open(");
        let the_place = matches!(rel, "src/cli/mod.rs" | "src/tui/mod.rs");
        if chooses && !the_place {
            found.push(format!("{rel}:{}: chooses a host", i + 1));
        }
    }
    found
}

/// Whether `rel` is a module's `tests.rs` that its parent file (`<dir>.rs` or
/// `<dir>/mod.rs`) declares as test code only (`#[cfg(test)] mod tests;`).
fn is_test_module(rel: &str, all: &[(String, String)]) -> bool {
    let Some(dir) = rel.strip_suffix("/tests.rs") else {
        return false;
    };
    let parents = [format!("{dir}.rs"), format!("{dir}/mod.rs")];
    all.iter().any(|(r, src)| {
        parents.contains(r) && {
            let code: String = code_only(src).split_whitespace().collect();
            code.contains("#[cfg(test)]modtests;")
        }
    })
}

#[test]
fn faces_take_paths_and_the_store_from_their_context() {
    let all = sources();
    let found: Vec<String> = all
        .iter()
        .filter(|(rel, _)| matches!(file_module(rel).0, Layer::Cli | Layer::Tui))
        .filter(|(rel, _)| !is_test_module(rel, &all))
        .flat_map(|(rel, src)| face_openings(rel, src))
        .collect();
    assert!(
        found.is_empty(),
        "the CLI and the dashboard work in the context they opened once (cli::context, \
         the dashboard's session): paths, host facts, the presets and the store come from \
         it:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_reports_a_planted_face_opening() {
    let src = r#"// Paths::resolve(env, None) in a comment does not count
fn f(env: &Env) {
    let p = Paths::resolve(env, None);
    let c = crate::core::start::Ctx::open(env);
    let x = Context::local(env);
    let s = "StateStore::open(";
    let h = crate::core::host::Host::probe(env);
    let r = Registry::load(env);
    let c = super::context(env);
}
#[cfg(test)]
mod tests {
    fn g() { let p = Paths::resolve(env, None); }
}
"#;
    assert_eq!(
        face_openings("src/cli/x.rs", src),
        [
            "src/cli/x.rs:3: Paths::resolve(",
            "src/cli/x.rs:4: Ctx::open(",
            "src/cli/x.rs:5: chooses a host",
            "src/cli/x.rs:7: Host::probe(",
            "src/cli/x.rs:8: Registry::load(",
            "src/cli/x.rs:9: opens a second context",
        ]
    );
    assert_eq!(
        face_openings(
            "src/cli/mod.rs",
            "fn context(e: &Env) { Context::local(e) }"
        ),
        Vec::<String>::new()
    );
}

/// The longest a file in `src/` may be: past this, a file holds more than one idea.
const MAX_LINES: usize = 900;

/// Files over [`MAX_LINES`] today, each with the work that brings it under (none).
const LONG_FILES: &[(&str, &str, &str)] = &[];

#[test]
fn no_source_file_is_over_the_line_limit() {
    let mut listed = AllowList::new(LONG_FILES);
    for (rel, src) in sources() {
        let lines = src.lines().count();
        if lines > MAX_LINES {
            listed.check(&rel, "over", || format!("{rel}: {lines} lines"));
        }
    }
    listed.assert_exact(
        &format!("files over {MAX_LINES} lines (split them by responsibility)"),
        "LONG_FILES entries now within the limit (take them off the list)",
        |f, _| f.to_string(),
    );
}

/// `value_parser = [...]` string lists (whitespace aside) in a file's code, as `file:line`:
/// a flag's closed set of values is a clap `ValueEnum` (core's type or one beside the flag),
/// an open set a parser reading its source (the preset registry for `--preset`).
fn string_list_parsers(rel: &str, src: &str) -> Vec<String> {
    code_only(src)
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.split_whitespace()
                .collect::<String>()
                .contains("value_parser=[")
        })
        .map(|(i, _)| format!("{rel}:{}", i + 1))
        .collect()
}

#[test]
fn no_string_list_value_parsers() {
    let found: Vec<String> = sources()
        .iter()
        .filter(|(rel, _)| rel.starts_with("src/"))
        .flat_map(|(rel, src)| string_list_parsers(rel, src))
        .collect();
    assert!(
        found.is_empty(),
        "clap string lists (use a ValueEnum, or the registry the values come from):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_reports_a_planted_string_list_parser() {
    let src = r##"// value_parser = ["a"] in a comment does not count
#[arg(long, value_parser = ["a", "b"])]
pub a: String,
#[arg(long, value_parser=[
    "c"])]
pub b: String,
#[arg(long, value_enum)]
pub c: Choice,
const S: &str = "value_parser = [";
"##;
    assert_eq!(
        string_list_parsers("src/cli/x.rs", src),
        ["src/cli/x.rs:2", "src/cli/x.rs:4"]
    );
}

/// Log fields formatted with `Debug` (`field = ?value`, `?value`) in a file's `tracing`
/// macros, as `file:line`: the log shows values as a user reads them (`codex`, not
/// `Some("codex")`; `vm-1 vm-2`, not `["vm-1", "vm-2"]`).
fn debug_formatted_log_fields(rel: &str, src: &str) -> Vec<String> {
    let code = code_only(src);
    let mut found = Vec::new();
    for level in ["trace", "debug", "info", "warn", "error"] {
        let needle = format!("{level}!(");
        let mut from = 0;
        while let Some(at) = code[from..].find(&needle) {
            let start = from + at + needle.len();
            from = start;
            let before = &code[..start - needle.len()];
            if !(before.ends_with("tracing::") || before.ends_with(' ') || before.ends_with('\n')) {
                continue;
            }
            let mut depth = 1;
            let mut end = start;
            for (i, c) in code[start..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = start + i;
                    break;
                }
            }
            let args: String = code[start..end].split_whitespace().collect();
            if args.contains("=?") || args.contains(",?") || args.starts_with('?') {
                found.push(format!("{rel}:{}", code[..start].lines().count()));
            }
        }
    }
    found
}

#[test]
fn no_log_field_is_debug_formatted() {
    let found: Vec<String> = sources()
        .iter()
        .filter(|(rel, _)| rel.starts_with("src/"))
        .flat_map(|(rel, src)| debug_formatted_log_fields(rel, src))
        .collect();
    assert!(
        found.is_empty(),
        "log fields formatted with Debug (use % and a plain rendering):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_reports_a_planted_debug_log_field() {
    let src = r##"fn f() {
    tracing::info!(vm = %id, "fine");
    tracing::info!(preset = ?opts.preset, "creating");
    tracing::warn!(
        a = 1,
        b = ?x,
        "two"
    );
    let t = Some(x)?;
}
"##;
    assert_eq!(
        debug_formatted_log_fields("src/core/x.rs", src),
        ["src/core/x.rs:3", "src/core/x.rs:4"]
    );
}

/// The top-level modules of core each core file's paths name (`core/lifecycle.rs` naming
/// `crate::core::cleanup::x` or `super::cleanup::x`: lifecycle → cleanup), as
/// (from, to, `file:line`) edges.
fn core_module_edges() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (rel, src) in sources() {
        let (layer, here) = file_module(&rel);
        if layer != Layer::Core || here.len() < 2 {
            continue;
        }
        for r in references(&rel, &src) {
            if r.path.first().is_some_and(|p| p == "core") {
                if let Some(to) = r.path.get(1) {
                    if *to != here[1] && sources_has_core_module(to) {
                        out.push((here[1].clone(), to.clone(), format!("{rel}:{}", r.line)));
                    }
                }
            }
        }
    }
    out
}

/// Whether `core::<name>` is a module (a file or a folder), not an item of core's root.
fn sources_has_core_module(name: &str) -> bool {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    root.join(format!("{name}.rs")).is_file() || root.join(name).join("mod.rs").is_file()
}

/// Pairs of core's top-level modules that still import each other, each with the edge
/// that closes the circle and how it goes. Issue 23 counted 7 of the 14 there were;
/// `core::vm` (the liveness rule, the stop budget), `core::ssh` (the ssh recipe) and
/// `core::teardown` (one VM's teardown, out of cleanup) took cleanup ↔ lifecycle,
/// cleanup ↔ egress, cleanup ↔ snapshot, guest ↔ lifecycle, lifecycle ↔ sandbox and
/// lifecycle ↔ start away; the sandbox and snapshot id errors in `core::error` took
/// lock ↔ start and lock ↔ snapshot, `core::vm::running_ip` lifecycle ↔ ports, and the
/// VMM enum beside host's `Backend` host ↔ images, and the built-image store in
/// `core::images::store` builder ↔ images; the opened context (`core::context::Ctx`,
/// out of start, with the network lock beside egress) egress ↔ start and presets ↔ start,
/// and a preset's local image in `core::preset_image` images ↔ presets. None is left; a
/// new one is a failure (list it here only with the reason it cannot go yet):
const CORE_TWO_CYCLES: &[(&str, &str, &str)] = &[];

#[test]
fn no_two_core_modules_import_each_other() {
    let edges = core_module_edges();
    let mut listed = AllowList::new(CORE_TWO_CYCLES);
    let mut seen = std::collections::BTreeSet::new();
    for (a, b, at) in &edges {
        if a < b {
            if let Some((_, _, back)) = edges.iter().find(|(x, y, _)| x == b && y == a) {
                if seen.insert((a.clone(), b.clone())) {
                    listed.check(a, b, || format!("{a} ↔ {b} ({at}; {back})"));
                }
            }
        }
    }
    listed.assert_exact(
        "core modules that import each other (move the shared rule into a module both \
         may use)",
        "CORE_TWO_CYCLES entries no longer cycles (take them off the list)",
        |a, b| format!("{a} ↔ {b}"),
    );
}
