//! The documentation's references resolve: every section a comment or a doc cites exists in
//! `docs/design.md`, and every relative link in the markdown docs names a file (and heading)
//! that exists. A reference into a document that is not in the repository cannot be followed by
//! anyone reading the code, so it fails here rather than in a reader's head.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root, two levels above this crate.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// This file: it spells the patterns it looks for.
fn is_self(path: &Path) -> bool {
    path.ends_with("crates/testkit/tests/docs.rs")
}

/// Every text file of the repository a reference may sit in: sources, docs, configs, scripts.
fn text_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                // Build output, git's own files and fuzz inputs are not the repository's text.
                if !matches!(name.as_ref(), "target" | ".git" | "corpus" | "artifacts") {
                    walk(&path, out);
                }
            } else if ["rs", "md", "toml", "sh"]
                .iter()
                .any(|ext| path.extension().is_some_and(|e| e == *ext))
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &mut out);
    out.sort();
    out
}

/// The markdown files whose relative links must resolve.
fn markdown_docs() -> Vec<PathBuf> {
    let root = root();
    let mut out = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    if let Ok(entries) = fs::read_dir(root.join("docs")) {
        let mut docs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        docs.sort();
        out.extend(docs);
    }
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn shown(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The section numbers of docs/design.md: `## 3. …` gives "3", `### 3.1 …` gives "3.1".
fn design_sections() -> BTreeSet<String> {
    let mut sections = BTreeSet::new();
    for line in lines_outside_code(&read(&root().join("docs/design.md"))) {
        let Some(rest) = line
            .strip_prefix("### ")
            .or_else(|| line.strip_prefix("## "))
        else {
            continue;
        };
        let number: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let number = number.trim_end_matches('.');
        if !number.is_empty() {
            sections.insert(number.to_owned());
        }
    }
    sections
}

/// Every `§n` (or `§n.m`) in a text: the number after each section sign.
fn section_refs(text: &str) -> Vec<(usize, String)> {
    let mut refs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices('§') {
            let number: String = line[at + '§'.len_utf8()..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let number = number.trim_end_matches('.');
            if !number.is_empty() {
                refs.push((index + 1, number.to_owned()));
            }
        }
    }
    refs
}

#[test]
fn no_reference_to_a_design_document_outside_the_repository() {
    let bare = concat!("DESIGN", " §");
    let mut found = Vec::new();
    for path in text_files().iter().filter(|p| !is_self(p)) {
        for (index, line) in read(path).lines().enumerate() {
            if line.contains(bare) || line.contains(concat!("DESIGN", ".md")) {
                found.push(format!("{}:{}: {}", shown(path), index + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite docs/design.md §n instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_cited_section_exists_in_docs_design_md() {
    let sections = design_sections();
    assert!(
        (1..=9).all(|n| sections.contains(&n.to_string())),
        "docs/design.md must have the sections 1 to 9 (`## n. …`); found {sections:?}"
    );
    let mut dangling = Vec::new();
    for path in text_files().iter().filter(|p| !is_self(p)) {
        for (line, number) in section_refs(&read(path)) {
            if !sections.contains(&number) {
                dangling.push(format!("{}:{line}: §{number}", shown(path)));
            }
        }
    }
    assert!(
        dangling.is_empty(),
        "every § reference names a section of docs/design.md; these do not:\n{}",
        dangling.join("\n")
    );
}

/// The lines of a markdown text outside fenced code blocks.
fn lines_outside_code(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push(line);
        }
    }
    out
}

/// A line with its inline code spans removed: a link inside backticks is an example.
fn without_inline_code(line: &str) -> String {
    let mut out = String::new();
    for (index, part) in line.split('`').enumerate() {
        if index % 2 == 0 {
            out.push_str(part);
        }
    }
    out
}

/// The targets of the inline links `[text](target)` of a markdown text.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in lines_outside_code(text) {
        let line = without_inline_code(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else {
                break;
            };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            targets.push(target.to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchors for a markdown text's headings: lower case, punctuation other than `-` and
/// `_` removed, spaces turned into `-`, repeats numbered.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for line in lines_outside_code(text) {
        let trimmed = line.trim_start_matches('#');
        if trimmed.len() == line.len() || !trimmed.starts_with(' ') {
            continue;
        }
        let slug: String = trimmed
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 1;
        while anchors.contains(&candidate) {
            candidate = format!("{slug}-{n}");
            n += 1;
        }
        anchors.insert(candidate);
    }
    anchors
}

#[test]
fn relative_links_in_the_docs_resolve() {
    let mut broken = Vec::new();
    for doc in markdown_docs() {
        let text = read(&doc);
        let dir = doc.parent().map(Path::to_path_buf).unwrap_or_else(root);
        for target in link_targets(&text) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                doc.clone()
            } else {
                dir.join(file)
            };
            if !path.exists() {
                broken.push(format!("{}: {target}: no such file", shown(&doc)));
                continue;
            }
            if let Some(fragment) = fragment
                && path.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&path)).contains(fragment)
            {
                broken.push(format!("{}: {target}: no such heading", shown(&doc)));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "relative links that lead nowhere:\n{}",
        broken.join("\n")
    );
}
