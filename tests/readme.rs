//! The README says nothing the code contradicts: its keys table is `assets/keymap.toml`,
//! its variables are `core::settings`'s, its set-up commands are the ones CI runs, every
//! `docs/` page (and heading) it links exists, and it stays short.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use smolvm::tui::keymap::Key;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The text of the `## title` section (up to the next `## `).
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let head = format!("\n## {title}\n");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("no section '## {title}'"))
        + head.len();
    let len = text[start..].find("\n## ").unwrap_or(text.len() - start);
    &text[start..start + len]
}

/// The cells of a Markdown table's body rows (header and rule left out).
fn table_rows(text: &str, header: &str) -> Vec<Vec<String>> {
    let at = text
        .find(header)
        .unwrap_or_else(|| panic!("no table with header {header:?}"));
    text[at..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The `code spans` of a cell.
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The keymap's sections, each action's keys as the dashboard shows them (`Ctrl-u`, `↑`).
fn keymap() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let raw: BTreeMap<String, BTreeMap<String, Vec<String>>> =
        toml::from_str(&read("assets/keymap.toml")).unwrap();
    raw.into_iter()
        .map(|(scope, actions)| {
            let actions = actions
                .into_iter()
                .map(|(action, keys)| {
                    let keys = keys
                        .iter()
                        .map(|k| Key::parse(k).unwrap().display())
                        .collect();
                    (action, keys)
                })
                .collect();
            (scope, actions)
        })
        .collect()
}

/// The README's words for the keymap's sections.
fn scope_of(word: &str) -> &'static str {
    match word {
        "anywhere" => "global",
        "lists" => "list",
        "VMs" => "vms",
        "Images" => "images",
        "Logs" => "logs",
        "Tasks" => "tasks",
        "detail view" => "detail",
        "dialogs" => "dialog",
        "forms" => "form",
        other => panic!("README keys table: unknown place {other:?}"),
    }
}

/// What is wrong with the keys table of `readme` against `map`: a key the keymap does not
/// bind in that place (or only part of a binding), or a binding the table lacks.
fn keys_table_problems(
    readme: &str,
    map: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
) -> Vec<String> {
    let rows = table_rows(section(readme, "The dashboard"), "| where | keys | what |");
    let mut problems = Vec::new();
    // (scope, action) pairs some row lists whole.
    let mut covered = BTreeSet::new();
    for row in &rows {
        let keys: BTreeSet<String> = spans(&row[1]).into_iter().collect();
        if keys.is_empty() {
            problems.push(format!("a row without keys: {row:?}"));
        }
        for place in row[0].split(", ") {
            let scope = scope_of(place);
            let actions = &map[scope];
            // Each key of the row belongs to an action of this place whose keys the row
            // lists whole.
            let whole: Vec<&String> = actions
                .iter()
                .filter(|(_, k)| k.is_subset(&keys))
                .map(|(a, _)| a)
                .collect();
            for key in &keys {
                if !whole.iter().any(|a| actions[*a].contains(key)) {
                    problems.push(format!(
                        "`{key}` in {place} is not a whole binding of [{scope}] (row {row:?})"
                    ));
                }
            }
            covered.extend(whole.into_iter().map(|a| (scope, a.clone())));
        }
    }
    for (scope, actions) in map {
        for (action, keys) in actions {
            if !covered.contains(&(scope.as_str(), action.clone())) {
                problems.push(format!("no row for [{scope}] {action} = {keys:?}"));
            }
        }
    }
    problems
}

/// Every binding of `assets/keymap.toml` is in the README's keys table, with all its keys,
/// and the table lists no key the keymap does not bind there.
#[test]
fn the_keys_table_is_the_keymap() {
    let problems = keys_table_problems(&read("README.md"), &keymap());
    assert!(
        problems.is_empty(),
        "README keys table vs assets/keymap.toml:\n{}",
        problems.join("\n")
    );
}

/// The check finds a stale key, a key missing from a binding and a binding left out.
#[test]
fn the_keys_check_finds_stale_and_missing_keys() {
    let readme = read("README.md");
    let map = keymap();
    let row = "| VMs | `s` `d` | stop / delete";
    assert!(
        readme.contains(row),
        "the test's row is gone from the README"
    );
    let stale = readme.replace(row, "| VMs | `s` `d` `F5` | stop / delete");
    assert!(keys_table_problems(&stale, &map)
        .iter()
        .any(|p| p.contains("`F5`")));
    let dropped = readme.replace(row, "| VMs | `s` | stop / delete");
    assert!(keys_table_problems(&dropped, &map)
        .iter()
        .any(|p| p.contains("[vms] delete")));
    let part = readme.replace("| `k` `↑` `j`", "| `k` `j`");
    assert!(keys_table_problems(&part, &map)
        .iter()
        .any(|p| p.contains("[list] up")));
}

#[test]
fn the_readme_is_short() {
    let lines = read("README.md").lines().count();
    assert!(lines < 350, "README.md has {lines} lines (at most 349)");
}

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut fence = false;
    let mut out = BTreeSet::new();
    for l in text.lines() {
        if l.starts_with("```") {
            fence = !fence;
        } else if !fence && l.starts_with('#') {
            out.insert(slug(l.trim_start_matches('#')));
        }
    }
    out
}

/// Every relative link of `file` (a path from the repository's root): its target exists,
/// and a `#heading` names a heading there.
fn check_links(file: &str) -> usize {
    let text = read(file);
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut n = 0;
    for part in text.split("](").skip(1) {
        let target = &part[..part.find(')').unwrap()];
        if target.starts_with("http://") || target.starts_with("https://") {
            continue;
        }
        let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
        let linked = if path.is_empty() {
            PathBuf::from(file)
        } else {
            dir.join(path)
        };
        let full = root().join(&linked);
        assert!(
            full.exists(),
            "{file}: link to {target}: no {}",
            full.display()
        );
        if !anchor.is_empty() {
            let there = std::fs::read_to_string(&full).unwrap();
            assert!(
                anchors(&there).contains(anchor),
                "{file}: link to {target}: no such heading in {}",
                linked.display()
            );
        }
        n += 1;
    }
    n
}

#[test]
fn every_link_in_the_readme_and_docs_exists() {
    let n = check_links("README.md");
    assert!(n > 10, "only {n} links found in README.md");
    let readme = read("README.md");
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            check_links(&format!("docs/{name}"));
            assert!(
                readme.contains(&format!("](docs/{name})")),
                "docs/{name} is not linked from the README"
            );
        }
    }
}

/// The two set-up commands, literally: the runtime one opens the dashboard, the test one is
/// what `.ci/run` runs.
#[test]
fn the_setup_commands_are_the_ones_ci_runs() {
    let readme = read("README.md");
    let runtime = "bash scripts/install-deps.sh --runtime && cargo run --release";
    let test = "bash scripts/install-deps.sh --test && cargo test --locked";
    for cmd in [runtime, test] {
        assert!(
            readme.lines().any(|l| l == cmd),
            "README.md lacks the line `{cmd}`"
        );
    }
    assert!(
        readme.find(runtime) < readme.find("## Contents"),
        "the runtime set-up must be on the README's first screen"
    );
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == test),
        ".ci/run must run the README's test command `{test}` as it is"
    );
}

/// The configuration table lists every `SMOLVM_*` variable smolvm reads, and no other.
#[test]
fn the_configuration_table_is_the_settings() {
    let readme = read("README.md");
    let rows = table_rows(section(&readme, "Configuration"), "| variable | what");
    let listed: BTreeSet<String> = rows.iter().flat_map(|r| spans(&r[0])).collect();
    let known: BTreeSet<String> = smolvm::core::settings::SETTINGS
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(
        listed, known,
        "README's variables vs core::settings::SETTINGS"
    );
    // No other SMOLVM_ name anywhere in the README.
    for part in readme.split("SMOLVM_").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        // `SMOLVM_*`: all of them.
        if name.is_empty() && part.starts_with('*') {
            continue;
        }
        assert!(
            known.contains(&format!("SMOLVM_{name}")),
            "README names SMOLVM_{name}, which smolvm does not read"
        );
    }
}

/// The paragraph of `dir` (such as `src/core/`) in docs/architecture.md's layout block:
/// from its line to the next top-level entry.
fn layout_entry<'a>(layout: &'a str, dir: &str) -> &'a str {
    let start = layout
        .lines()
        .position(|l| l.starts_with(dir))
        .unwrap_or_else(|| panic!("docs/architecture.md: no layout entry for {dir}"));
    let lines: Vec<&str> = layout.lines().collect();
    let end = (start + 1..lines.len())
        .find(|&i| !lines[i].starts_with(' '))
        .unwrap_or(lines.len());
    let from = layout.find(lines[start]).unwrap();
    let to = if end < lines.len() {
        layout.find(lines[end]).unwrap()
    } else {
        layout.len()
    };
    &layout[from..to]
}

/// The layout in docs/architecture.md (linked from the README) names every module of the
/// four layers and every file in assets/: a module added without a word there fails.
#[test]
fn the_layout_names_every_module() {
    let doc = read("docs/architecture.md");
    let layout = &doc[doc
        .find("src/main.rs, src/bin/smolvm-cleanup.rs   entry points")
        .expect("docs/architecture.md: the layout block")..];
    let words = |text: &str| -> BTreeSet<String> {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .map(|w| w.trim_end_matches('.').to_string())
            .collect()
    };
    let mut missing = Vec::new();
    for dir in ["src/cli/", "src/tui/", "src/core/", "src/sys/", "assets/"] {
        let named = words(layout_entry(layout, dir));
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            let module = if dir == "assets/" {
                name.clone()
            } else {
                name.trim_end_matches(".rs").to_string()
            };
            if module != "mod" && !named.contains(&module) {
                missing.push(format!("{dir}{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md's layout does not name: {missing:?}"
    );
}

/// The configuration files `smolvm man` lists under FILES are in the README's table.
#[test]
fn the_configuration_files_are_the_man_pages() {
    let readme = read("README.md");
    let files = table_rows(section(&readme, "Configuration"), "| file | what |");
    let listed: BTreeSet<String> = files.iter().flat_map(|r| spans(&r[0])).collect();
    // Isolated like every test's smolvm: as root it would otherwise log into
    // /var/lib/smolvm.
    let t = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("smolvm"))
        .arg("man")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", t.path())
        .env("SMOLVM_DATA_DIR", t.path().join("state"))
        .env("SMOLVM_SYSTEM_DATA_DIR", t.path().join("system-state"))
        .output()
        .unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    let config: Vec<&str> = page
        .split(|c: char| c.is_whitespace() || c == '\\')
        .filter_map(|w| w.strip_prefix("fI"))
        .filter(|w| w.starts_with("~/.config/smolvm/"))
        .collect();
    assert!(config.len() >= 3, "man FILES: {config:?}");
    for file in config {
        assert!(
            listed.contains(file),
            "{file} (smolvm man, FILES) is not in the README's files table"
        );
    }
}
