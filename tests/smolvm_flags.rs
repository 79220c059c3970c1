//! Every in-scope node of SmolVM 0.0.36's command tree (read from its click definitions in
//! the real package, so a new SmolVM flag shows up here as a failing row) exists in smolvm
//! with every flag. Out of scope (issue 24): `browser`, `computer`, `server`, `ui`,
//! `windows`, `sandbox desktop`, `setup`, `update`, and macOS-only flags.

mod support;

use std::process::Command;

/// Nodes and flags deliberately not here, each with why (docs/coming-from-smolvm.md).
/// An empty flag stands for the whole command.
const NOT_HERE: &[(&str, &str, &str)] = &[
    ("sandbox create", "--clipboard", "macOS desktop guests only"),
    (
        "sandbox create",
        "--no-clipboard",
        "macOS desktop guests only",
    ),
    ("image build", "--ipsw", "macOS images only"),
    ("image build", "--os", "its only value is macos"),
];

const OUT_OF_SCOPE: &[&str] = &[
    "browser",
    "computer",
    "server",
    "ui",
    "windows",
    "sandbox desktop",
    "setup",
    "update",
];

fn out_of_scope(path: &str) -> bool {
    OUT_OF_SCOPE
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p} ")))
}

#[test]
fn every_smolvm_command_and_flag_in_scope_exists_here() {
    let py = support::smolvm_py::python();
    let walker = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/assets/smolvm_click_tree.py"
    );
    let home = tempfile::tempdir().unwrap();
    let out = support::run_ok(
        Command::new(&py).arg(walker).env("HOME", home.path()),
        walker,
    );
    let tree: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(tree.len() > 40, "the walk found too little: {}", tree.len());
    let h = support::Home::new();
    let mut missing: Vec<String> = Vec::new();
    for node in &tree {
        let path: Vec<&str> = node["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let joined = path.join(" ");
        if path.is_empty() || out_of_scope(&joined) {
            continue;
        }
        let help = h.smolvm().args(&path).arg("--help").output().unwrap();
        if help.status.code() != Some(0) {
            if !NOT_HERE
                .iter()
                .any(|(p, f, _)| *p == joined && f.is_empty())
            {
                missing.push(format!("{joined}: no such command"));
            }
            continue;
        }
        let text = String::from_utf8_lossy(&help.stdout);
        for flag in node["flags"].as_array().unwrap() {
            let flag = flag.as_str().unwrap();
            let shown = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|w| w == flag);
            if !shown && !NOT_HERE.iter().any(|(p, f, _)| *p == joined && *f == flag) {
                missing.push(format!("{joined}: {flag}"));
            }
        }
    }
    let mut stale: Vec<String> = Vec::new();
    for (p, f, _) in NOT_HERE {
        let argv: Vec<&str> = p.split(' ').collect();
        let help = h.smolvm().args(&argv).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        let here = help.status.code() == Some(0)
            && (f.is_empty()
                || text
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .any(|w| w == *f));
        if here {
            stale.push(format!("{p} {f}"));
        }
    }
    assert!(
        stale.is_empty(),
        "listed as not here, but here now: {stale:?}"
    );
    assert!(
        missing.is_empty(),
        "SmolVM 0.0.36 has these, smolvm does not:\n  {}",
        missing.join("\n  ")
    );
}
