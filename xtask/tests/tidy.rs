//! The tidy test (after rust-analyzer's `tidy.rs`): rules of the tree that
//! no compiler checks, run by `cargo xtask test` with every other test.
//!
//! - Every source file under `crates/*/src` and `xtask/src` opens with a
//!   `//!` paragraph saying what it is for.
//! - No test is switched off or turned into an expected panic: no
//!   ignore attribute and no should-panic attribute, anywhere in the tree.
//! - No source file has more than [`MAX_LINES`] lines before its test
//!   module, unless [`LONG_FILES`] lists it with its reason (and a listed
//!   file that has shrunk under the limit must leave the list).

use std::path::{Path, PathBuf};

/// The most lines a source file may hold before its `#[cfg(test)]` module.
const MAX_LINES: usize = 600;

/// Source files allowed past [`MAX_LINES`], each with its reason.
const LONG_FILES: &[(&str, &str)] = &[(
    "crates/mooring-domain/src/payout/mod.rs",
    "the payout state machine and its invariants, rebuilt as one room by the money-path issue \
         (issue 11), which issue 13 leaves as it is: every transition and the rule it keeps read \
         together, and the property tests follow them",
)];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                // Build output and fuzzing's scratch space are not sources.
                if name != "target" && name != "artifacts" && name != "corpus" {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The source files of the crates and of xtask (not their tests).
fn sources() -> Vec<PathBuf> {
    let root = root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/ is readable")
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.push(root.join("xtask").join("src"));
    dirs.sort();
    let files: Vec<PathBuf> = dirs.iter().flat_map(|d| rust_files(d)).collect();
    assert!(files.len() > 50, "found only {} source files", files.len());
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines before the first `#[cfg(test)]` at the start of a line.
fn lines_before_tests(text: &str) -> usize {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .count()
}

#[test]
fn every_source_file_opens_with_a_doc_paragraph() {
    let missing: Vec<String> = sources()
        .iter()
        .filter(|p| {
            let text = read(p);
            let first = text.lines().find(|l| !l.trim().is_empty());
            !first.is_some_and(|l| l.starts_with("//!") && l.trim().len() > 4)
        })
        .map(|p| relative(p))
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` paragraph saying what they are for:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn no_test_is_ignored_or_expects_a_panic() {
    // Spelled in two halves, so this file does not match itself.
    let banned = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    let root = root();
    let mut files = rust_files(&root.join("crates"));
    files.extend(rust_files(&root.join("xtask")));
    files.extend(rust_files(&root.join("fuzz")));
    let found: Vec<String> = files
        .iter()
        .flat_map(|p| {
            let text = read(p);
            text.lines()
                .enumerate()
                .filter(|(_, l)| banned.iter().any(|b| l.trim_start().starts_with(b)))
                .map(|(i, l)| format!("{}:{}: {}", relative(p), i + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        found.is_empty(),
        "a test is switched off or expects a panic (make it assert what it means):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn no_source_file_is_over_the_limit_without_a_reason() {
    let mut over = Vec::new();
    let mut listed_but_short = Vec::new();
    for path in sources() {
        let name = relative(&path).replace('\\', "/");
        let lines = lines_before_tests(&read(&path));
        let listed = LONG_FILES.iter().any(|(f, _)| *f == name);
        if lines > MAX_LINES && !listed {
            over.push(format!("{name}: {lines} lines"));
        }
        if listed && lines <= MAX_LINES {
            listed_but_short.push(name);
        }
    }
    for (file, reason) in LONG_FILES {
        assert!(
            root().join(file).is_file(),
            "LONG_FILES lists {file}, which is gone"
        );
        assert!(reason.len() > 40, "{file}: say why it is long");
    }
    assert!(
        over.is_empty(),
        "split these by concern, or list them in LONG_FILES with the reason (at most {MAX_LINES} \
         lines before the test module):\n  {}",
        over.join("\n  ")
    );
    assert!(
        listed_but_short.is_empty(),
        "these are listed in LONG_FILES but are no longer long; remove them:\n  {}",
        listed_but_short.join("\n  ")
    );
}

#[test]
fn the_line_count_stops_at_the_test_module() {
    let text = "//! a\nfn a() {}\n\n#[cfg(test)]\nmod tests {\n}\n";
    assert_eq!(lines_before_tests(text), 3);
    assert_eq!(lines_before_tests("//! a\nfn a() {}\n"), 2);
}
