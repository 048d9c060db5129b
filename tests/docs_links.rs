//! Every link in the project's Markdown resolves: to a file or folder in
//! the repository (not outside it: a user who clones it has nothing else),
//! and, with a `#fragment`, to a heading of that file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files: README, docs/, tests/, examples/, BENCHMARKS.
fn markdown_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if !name.starts_with('.')
                    && !["target", "node_modules", "artifacts"].contains(&name.as_str())
                {
                    dirs.push(p);
                }
            } else if name.ends_with(".md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped (but `-`
/// and `_`), blanks as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code fences), with
/// GitHub's `-1`, `-2` … for repeats.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let h = line.trim_start_matches('#');
        if !h.starts_with(' ') {
            continue;
        }
        let base = slug(h);
        let mut s = base.clone();
        let mut n = 0;
        while seen.contains(&s) {
            n += 1;
            s = format!("{base}-{n}");
        }
        seen.insert(s);
    }
    seen
}

/// `(line, target)` of every inline link `[text](target)` outside code.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code spans hold examples, not links.
        let plain: String = line
            .split('`')
            .enumerate()
            .filter(|(k, _)| k % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((i + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_markdown_link_resolves_inside_the_repository() {
    let root = root().canonicalize().unwrap();
    let mut bad = Vec::new();
    let files = markdown_files();
    assert!(files.len() >= 10, "found only {files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (line, target) in links(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap_or(Path::new(".")).join(path)
            };
            let Ok(dest) = dest.canonicalize() else {
                bad.push(format!("{shown}:{line}: {target}: no such file"));
                continue;
            };
            if !dest.starts_with(&root) {
                bad.push(format!("{shown}:{line}: {target}: outside the repository"));
                continue;
            }
            if let Some(f) = fragment {
                let ok = dest.extension().is_some_and(|e| e == "md")
                    && std::fs::read_to_string(&dest).is_ok_and(|t| anchors(&t).contains(f));
                if !ok {
                    bad.push(format!("{shown}:{line}: {target}: no heading #{f}"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn the_link_checker_finds_what_it_must() {
    assert_eq!(
        slug(" Frames from a camera program: `exec:`"),
        "frames-from-a-camera-program-exec"
    );
    assert_eq!(
        slug(" 1. Choose the camera stack"),
        "1-choose-the-camera-stack"
    );
    let a = anchors("# A\n## Soak\n```\n# not\n```\n## Soak\n");
    assert!(a.contains("soak") && a.contains("soak-1") && !a.contains("not"));
    let l = links("see [x](docs/a.md#b) and `[y](z)`\n```\n[q](r)\n```\n");
    assert_eq!(l, vec![(1, "docs/a.md#b".to_string())]);
}
