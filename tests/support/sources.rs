//! The crate's own source, for the tests that read it (layers, ownership rules).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `src/**/*.rs` file, sorted, as (its path from the crate root, its text).
pub fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let src = std::fs::read_to_string(&f).unwrap();
            (rel, src)
        })
        .collect()
}

/// A list of (file, item, why) that must stay exact: every site a scan finds is on it,
/// and every entry is still found.
pub struct AllowList {
    list: &'static [(&'static str, &'static str, &'static str)],
    used: Vec<bool>,
    unlisted: Vec<String>,
}

impl AllowList {
    pub fn new(list: &'static [(&'static str, &'static str, &'static str)]) -> Self {
        AllowList {
            list,
            used: vec![false; list.len()],
            unlisted: Vec::new(),
        }
    }

    /// A site the scan found: `item` in `file`. On the list, that entry is marked found;
    /// else the site (as `shown`) is kept for [`AllowList::assert_exact`].
    pub fn check(&mut self, file: &str, item: &str, shown: impl FnOnce() -> String) {
        match self
            .list
            .iter()
            .position(|(f, it, _)| *f == file && *it == item)
        {
            Some(i) => self.used[i] = true,
            None => self.unlisted.push(shown()),
        }
    }

    /// Fails when a site was not on the list (`unlisted_why`, then the sites a line each),
    /// then when an entry was never found (`stale_why`, then the entries as `show` puts
    /// them).
    pub fn assert_exact(
        &self,
        unlisted_why: &str,
        stale_why: &str,
        show: impl Fn(&str, &str) -> String,
    ) {
        assert!(
            self.unlisted.is_empty(),
            "{unlisted_why}:\n{}",
            self.unlisted.join("\n")
        );
        let stale: Vec<String> = self
            .list
            .iter()
            .zip(&self.used)
            .filter(|(_, u)| !**u)
            .map(|((f, it, _), _)| show(f, it))
            .collect();
        assert!(stale.is_empty(), "{stale_why}: {stale:?}");
    }
}
