//! The floors of `src/` kept by a test: a module uses the floors below it, never one above
//! (ARCHITECTURE.md). Each rule names the folder, what it may not use, and why; a break fails
//! naming the file and line.

#![cfg(test)]

use std::path::{Path, PathBuf};

/// (files under this path, may not name these modules of the crate, why).
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "src/domain/",
        &["store", "crm", "ops", "ui", "harness"],
        "plain data and pure rules: no workspace, no CRM, no use case, no terminal",
    ),
    (
        "src/store/",
        &["crm", "ops", "ui", "harness"],
        "the workspace knows no CRM and no use case",
    ),
    (
        "src/crm/",
        &["store", "ops", "ui", "harness"],
        "a connector speaks to a CRM and knows no workspace",
    ),
    (
        "src/ops/",
        &["ui", "harness"],
        "use cases know no front end, and reach the sandbox only through its URL",
    ),
    (
        "src/config",
        &["store", "crm", "ops", "ui", "harness"],
        "settings sit at the bottom",
    ),
    (
        "src/input.rs",
        &["store", "crm", "ops", "ui", "harness"],
        "bounded file reading sits at the bottom",
    ),
];

/// Where a rule is still broken, and why. To be emptied, not extended.
const NOT_YET: &[(&str, &str)] = &[];

/// The code lines of a file: its unit tests (from the first `#[cfg(test)]`) and comments left
/// out.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
        .collect()
}

fn names_module(line: &str, module: &str) -> bool {
    let needle = format!("crate::{module}");
    line.match_indices(&needle).any(|(at, _)| {
        !line[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file as (path from the crate root, text).
fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .into_iter()
        .map(|f| {
            let rel = f
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&f).unwrap())
        })
        .collect()
}

#[test]
fn every_floor_uses_only_the_floors_below_it() {
    let mut broken = Vec::new();
    let mut still_broken = Vec::new();
    for (rel, text) in sources() {
        for (prefix, forbidden, why) in RULES {
            if !rel.starts_with(prefix) {
                continue;
            }
            for (n, line) in code_lines(&text) {
                for module in *forbidden {
                    if names_module(line, module) {
                        if NOT_YET.iter().any(|(f, _)| *f == rel) {
                            still_broken.push(rel.clone());
                        } else {
                            broken.push(format!("{rel}:{n} uses crate::{module} ({why})"));
                        }
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
    for (file, why) in NOT_YET {
        assert!(
            still_broken.iter().any(|f| f == file),
            "{file} keeps its floor now ({why}): take it off NOT_YET"
        );
    }
}

#[test]
fn only_the_tui_draws_on_a_terminal() {
    let mut broken = Vec::new();
    for (rel, text) in sources() {
        if rel.starts_with("src/ui/tui/") || rel == "src/floors.rs" {
            continue;
        }
        for (n, line) in code_lines(&text) {
            if line.contains("ratatui") || line.contains("crossterm") {
                broken.push(format!("{rel}:{n}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "ratatui or crossterm outside src/ui/tui: {broken:#?}"
    );
}

#[test]
fn only_the_command_line_starts_the_sandbox() {
    let mut broken = Vec::new();
    for (rel, text) in sources() {
        if rel.starts_with("src/harness/") || rel.starts_with("src/ui/cli/") {
            continue;
        }
        for (n, line) in code_lines(&text) {
            if names_module(line, "harness") {
                broken.push(format!("{rel}:{n}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "the sandbox or the demo generator used outside src/harness and the CLI's commands \
         (production code reaches the sandbox only through its URL): {broken:#?}"
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    assert!(names_module("use crate::store::Store;", "store"));
    assert!(!names_module("use crate::stores::X;", "store"));
    let text = "use crate::ops::x;\n// crate::ui::y\n#[cfg(test)]\nuse crate::ui::z;";
    assert_eq!(code_lines(text), vec![(1, "use crate::ops::x;")]);
}
