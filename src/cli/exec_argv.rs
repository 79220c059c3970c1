//! `sandbox exec ID COMMAND…` without `--`, as SmolVM 0.0.36 reads it. Its click command
//! ignores unknown options: after the sandbox's id, its own options (`--timeout N`,
//! `--start`, `--boot-timeout N`, `--json`, `--help`) are read wherever they stand, every
//! other word (`-la` included) is the command's, and after a `--` every word is. clap's
//! grammar for `exec` wants the command after `--`, so the words are put in that order
//! first: `exec vm ls -la --json` runs `ls -la` and prints JSON, as SmolVM's does.

use std::ffi::{OsStr, OsString};

/// exec's own options that take a value (the next word, or after `=`).
const WITH_VALUE: [&str; 2] = ["--timeout", "--boot-timeout"];
/// exec's own flags, and smolvm's `--readonly` (read-only mode asked for is never handed
/// to the guest's command: fail closed). `-v`/`--verbose` after the id are the command's
/// (`grep -v`), as SmolVM, which has neither, reads them.
const FLAGS: [&str; 4] = ["--start", "--json", "--help", "--readonly"];
/// smolvm's global flags, which may stand before `sandbox` and `exec` (none takes a value).
const GLOBAL: [&str; 3] = ["--readonly", "--verbose", "-v"];

/// `argv` (the program name first) with a `sandbox exec` command's words in clap's order:
/// its options, the id, `--`, the command. Any other command, an `exec` that has its `--`
/// right after the id, or one whose id or command is missing, comes back as it was.
pub fn normalised(argv: Vec<OsString>) -> Vec<OsString> {
    let Some(at) = exec_words(&argv) else {
        return argv;
    };
    let words = &argv[at..];
    let mut options: Vec<OsString> = Vec::new();
    let mut id: Option<OsString> = None;
    let mut command: Vec<OsString> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if w == "--" {
            if id.is_none() || command.is_empty() {
                // `exec [options] -- …` or `exec … ID -- …`: clap reads it as it is.
                return argv;
            }
            command.extend(words[i..].iter().cloned());
            break;
        }
        let s = w.to_str().unwrap_or("");
        if WITH_VALUE.contains(&s) {
            options.push(w.clone());
            if let Some(v) = words.get(i) {
                options.push(v.clone());
                i += 1;
            }
        } else if FLAGS.contains(&s)
            || WITH_VALUE.iter().any(|o| s.starts_with(&format!("{o}=")))
            || (id.is_none() && s.starts_with('-') && s.len() > 1)
        {
            // Before the id, clap reads any option itself (and refuses one it does not
            // know, as click does there).
            options.push(w.clone());
        } else if id.is_none() {
            id = Some(w.clone());
        } else {
            command.push(w.clone());
        }
    }
    let (Some(id), false) = (id, command.is_empty()) else {
        return argv;
    };
    let mut out: Vec<OsString> = argv[..at].to_vec();
    out.extend(options);
    out.push(id);
    out.push("--".into());
    out.extend(command);
    out
}

/// Where the words after `sandbox exec` begin, if `argv` is that command (smolvm's global
/// flags may stand before either word).
fn exec_words(argv: &[OsString]) -> Option<usize> {
    let mut want = ["sandbox", "exec"].into_iter().peekable();
    for (i, w) in argv.iter().enumerate().skip(1) {
        let next = want.peek()?;
        if w == OsStr::new(next) {
            want.next();
            if want.peek().is_none() {
                return Some(i + 1);
            }
        } else if !GLOBAL.contains(&w.to_str()?) && !is_verbose_cluster(w) {
            return None;
        }
    }
    None
}

/// `-vv`, `-vvv`: the verbosity flag given more than once.
fn is_verbose_cluster(w: &OsStr) -> bool {
    w.to_str()
        .and_then(|s| s.strip_prefix('-'))
        .is_some_and(|s| !s.is_empty() && s.chars().all(|c| c == 'v'))
}

#[cfg(test)]
mod tests {
    use super::normalised;

    /// The words after the program's name, as clap gets them (words joined by spaces).
    fn n(words: &str) -> String {
        let argv = std::iter::once("smolvm")
            .chain(words.split_whitespace())
            .map(Into::into)
            .collect();
        let out: Vec<String> = normalised(argv)
            .into_iter()
            .skip(1)
            .map(|w| w.into_string().unwrap())
            .collect();
        out.join(" ")
    }

    #[test]
    fn exec_words_are_read_as_smolvms_click_reads_them() {
        for (typed, clap_gets) in [
            // No `--`: the command's own options are its.
            (
                "sandbox exec vm ls -la /root",
                "sandbox exec vm -- ls -la /root",
            ),
            // exec's options wherever they stand before a `--`; after it, the command's.
            (
                "sandbox exec vm uname --json -a --timeout 5 --start --boot-timeout=9 -- --json",
                "sandbox exec --json --timeout 5 --start --boot-timeout=9 vm -- uname -a --json",
            ),
            // Options before the id, and globals before the words.
            (
                "-vv sandbox --readonly exec --json vm id",
                "-vv sandbox --readonly exec --json vm -- id",
            ),
            // `-h` is a guest command's (`ls -h`): SmolVM's help is `--help` only.
            ("sandbox exec vm ls -h", "sandbox exec vm -- ls -h"),
            // `--readonly` anywhere before `--` is smolvm's (never the guest's); `-v` and
            // `--verbose` after the id are the command's.
            (
                "sandbox exec vm grep -v --verbose x --readonly",
                "sandbox exec --readonly vm -- grep -v --verbose x",
            ),
        ] {
            assert_eq!(n(typed), clap_gets, "{typed}");
        }
    }

    #[test]
    fn what_clap_reads_already_is_left_as_it_is() {
        for words in [
            "sandbox exec vm -- ls -la",
            "sandbox exec --json vm -- true",
            "sandbox exec vm --readonly --json -- true",
            "sandbox exec vm",
            "sandbox exec --json",
            "sandbox exec -- vm ls",
            "sandbox list --json",
            "sandbox logs vm ls",
            "claude exec vm ls",
            "sandbox",
            "",
        ] {
            assert_eq!(n(words), words, "{words:?}");
        }
    }
}
