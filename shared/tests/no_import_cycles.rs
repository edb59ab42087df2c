//! Import-cycle check for the workspace's library crates (shared, agent, collector).
//!
//! It reads every `src/**/*.rs` file of each crate, resolves the paths the code names
//! (`use` trees and inline `crate::…`, `super::…`, `self::…` paths and child-module paths)
//! to modules, and builds the graph of top-level modules: an edge `a → b` means code in
//! `a` names something in `b`. Any cycle in that graph fails the test, naming the cycle and
//! the file and line of each edge. Sibling modules inside the modules listed in
//! [`SECOND_LEVEL`] are checked the same way. Code behind `#[cfg(test)]` is left out: a test
//! may reach anywhere. It lives in `shared/tests/` because it needs nothing but std, so it
//! builds in seconds and runs with `cargo test -p vigil-shared` (and `cargo test --workspace`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules (crate, top-level module) whose children must not import each other in a cycle.
const SECOND_LEVEL: &[(&str, &str)] = &[("agent", "checks"), ("agent", "remediate")];

/// Cycles known and not yet broken, as (crate, cycle): tolerated, but the test fails once one
/// is gone, so it is struck from this list. Keep it empty.
const KNOWN_CYCLES: &[(&str, &str)] = &[];

/// Where an edge was seen: file and line.
type Site = (String, usize);

/// The module graph of one crate: edges between module paths, with the first site of each.
#[derive(Debug, Default)]
struct Graph {
    edges: BTreeMap<String, BTreeMap<String, Site>>,
}

impl Graph {
    fn add(&mut self, from: &str, to: &str, site: Site) {
        if from != to {
            self.edges
                .entry(from.to_string())
                .or_default()
                .entry(to.to_string())
                .or_insert(site);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(&'static str),
    Other,
}

/// Tokens of a Rust source with their line numbers; comments and string and char literals
/// dropped.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(b[i] == b'\n');
                    i += 1;
                }
            }
        } else if c == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) && {
            let mut j = i + 1;
            while b.get(j) == Some(&b'#') {
                j += 1;
            }
            b.get(j) == Some(&b'"')
        } {
            let mut j = i + 1;
            let mut hashes = 0;
            while b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            let close = format!("\"{}", "#".repeat(hashes)).into_bytes();
            while j < b.len() && !b[j..].starts_with(&close) {
                line += usize::from(b[j] == b'\n');
                j += 1;
            }
            i = j + close.len();
            out.push((Tok::Other, line));
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                line += usize::from(b.get(i) == Some(&b'\n'));
                i += 1;
            }
            i += 1;
            out.push((Tok::Other, line));
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else {
                // Multi-byte char literal or lifetime.
                let rest = &src[i + 1..];
                let ch = rest.chars().next().map_or(1, char::len_utf8);
                if rest[ch..].starts_with('\'') {
                    i += 1 + ch + 1;
                } else {
                    i += 1;
                }
            }
            out.push((Tok::Other, line));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(src[s..i].to_string()), line));
        } else if b[i..].starts_with(b"::") {
            out.push((Tok::Punct("::"), line));
            i += 2;
        } else {
            let p = match c {
                b'{' => "{",
                b'}' => "}",
                b',' => ",",
                b';' => ";",
                b'#' => "#",
                b'[' => "[",
                b']' => "]",
                b'(' => "(",
                b')' => ")",
                b'!' => "!",
                _ => "",
            };
            out.push((
                if p.is_empty() {
                    Tok::Other
                } else {
                    Tok::Punct(p)
                },
                line,
            ));
            i += if c.is_ascii() {
                1
            } else {
                src[i..].chars().next().map_or(1, char::len_utf8)
            };
        }
    }
    out
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

fn punct(t: Option<&(Tok, usize)>, p: &str) -> bool {
    matches!(t, Some((Tok::Punct(q), _)) if *q == p)
}

/// Flattens a `use` tree starting at `toks[*i]` into paths, stopping at `;`.
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match toks.get(*i) {
            Some((Tok::Ident(s), _)) if s == "as" => {
                *i += 2;
            }
            Some((Tok::Ident(s), _)) => {
                path.push(s.clone());
                *i += 1;
            }
            Some((Tok::Punct("::"), _)) => *i += 1,
            Some((Tok::Punct("{"), _)) => {
                *i += 1;
                while !punct(toks.get(*i), "}") && *i < toks.len() {
                    use_tree(toks, i, path.clone(), out);
                    if punct(toks.get(*i), ",") {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            Some((Tok::Punct(",") | Tok::Punct("}") | Tok::Punct(";"), _)) | None => {
                out.push(path);
                return;
            }
            Some(_) => *i += 1,
        }
    }
}

/// Resolves `path`, named in module `here`, to an absolute module path, when it names a
/// module of this crate (`modules`); the result may end in an item name.
fn resolve(
    here: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut at: Vec<String>;
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            at = Vec::new();
            rest = &path[1..];
        }
        Some("super") | Some("self") => {
            at = here.to_vec();
            while let Some(s) = rest.first() {
                match s.as_str() {
                    "super" => {
                        at.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let mut child = here.to_vec();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            at = here.to_vec();
        }
        None => return None,
    }
    at.extend(rest.iter().cloned());
    Some(at)
}

/// The module paths of one crate's files (`lib.rs` is the root; `main.rs` and `bin/` are
/// other crates and left out) with their sources.
fn crate_files(src: &Path) -> Vec<(Vec<String>, String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir)
            .expect("reading a source directory")
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("a file under src");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if parts[0] == "main.rs" || parts[0] == "bin" {
            continue;
        }
        let last = parts.pop().expect("a file name");
        if last != "mod.rs" && last != "lib.rs" {
            parts.push(last.trim_end_matches(".rs").to_string());
        }
        let text = std::fs::read_to_string(&f).expect("reading a source file");
        out.push((parts, rel.display().to_string(), text));
    }
    out
}

/// Every (from module, to module path, site) a crate's files name, test-only code left out.
fn references(files: &[(Vec<String>, String, String)]) -> Vec<(Vec<String>, Vec<String>, Site)> {
    let mut modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.0.clone()).collect();
    let mut test_only: BTreeSet<Vec<String>> = BTreeSet::new();
    let lexed: Vec<_> = files.iter().map(|f| lex(&f.2)).collect();
    // Inline and file modules declared with `mod name`, and which are `#[cfg(test)]`.
    for ((here, _, _), toks) in files.iter().zip(&lexed) {
        for i in 0..toks.len() {
            if ident(toks.get(i)) == Some("mod") {
                if let Some(name) = ident(toks.get(i + 1)) {
                    let mut m = here.clone();
                    m.push(name.to_string());
                    if cfg_test_before(toks, i) {
                        test_only.insert(m.clone());
                    }
                    modules.insert(m);
                }
            }
        }
    }
    let mut out = Vec::new();
    for ((file_mod, name, _), toks) in files.iter().zip(&lexed) {
        if test_only.iter().any(|t| file_mod.starts_with(t)) {
            continue;
        }
        // Stack of inline modules: (path, brace depth at which it opened, test-only).
        let mut stack: Vec<(Vec<String>, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut skip_until: Option<usize> = None;
        let mut i = 0;
        while i < toks.len() {
            let here = stack.last().map_or(file_mod.clone(), |s| s.0.clone());
            match &toks[i].0 {
                Tok::Punct("{") => {
                    depth += 1;
                    i += 1;
                    continue;
                }
                Tok::Punct("}") => {
                    depth = depth.saturating_sub(1);
                    if stack.last().is_some_and(|s| s.1 == depth) {
                        stack.pop();
                    }
                    if skip_until == Some(depth) {
                        skip_until = None;
                    }
                    i += 1;
                    continue;
                }
                _ => {}
            }
            if skip_until.is_some() {
                i += 1;
                continue;
            }
            if ident(toks.get(i)) == Some("mod") && punct(toks.get(i + 2), "{") {
                let name = ident(toks.get(i + 1)).unwrap_or_default().to_string();
                if cfg_test_before(toks, i) {
                    skip_until = Some(depth);
                } else {
                    let mut m = here.clone();
                    m.push(name);
                    stack.push((m, depth));
                }
                i += 2;
                continue;
            }
            if cfg_test_before(toks, i) && ident(toks.get(i)) == Some("use") {
                while i < toks.len() && !punct(toks.get(i), ";") {
                    i += 1;
                }
                continue;
            }
            let line = toks[i].1;
            let mut paths = Vec::new();
            if ident(toks.get(i)) == Some("use") {
                i += 1;
                use_tree(toks, &mut i, Vec::new(), &mut paths);
            } else if matches!(ident(toks.get(i)), Some("crate" | "super" | "self"))
                && punct(toks.get(i + 1), "::")
                && !(i > 0 && ident(toks.get(i - 1)).is_some())
            {
                let mut p = Vec::new();
                while let Some(s) = ident(toks.get(i)) {
                    p.push(s.to_string());
                    if !punct(toks.get(i + 1), "::") {
                        break;
                    }
                    i += 2;
                }
                paths.push(p);
                i += 1;
            } else {
                i += 1;
            }
            for p in paths {
                if let Some(to) = resolve(&here, &p, &modules) {
                    out.push((file_mod.clone(), to, (name.clone(), line)));
                }
            }
        }
    }
    out
}

/// Whether the tokens just before `i` are a `#[cfg(test)]` attribute (possibly after other
/// attributes or `pub`).
fn cfg_test_before(toks: &[(Tok, usize)], i: usize) -> bool {
    let mut j = i;
    while j > 0 && matches!(ident(toks.get(j - 1)), Some("pub")) {
        j -= 1;
    }
    // Walk back over attributes `# [ ... ]`.
    while j > 0 && punct(toks.get(j - 1), "]") {
        let mut k = j - 1;
        let mut depth = 0;
        loop {
            if punct(toks.get(k), "]") {
                depth += 1;
            } else if punct(toks.get(k), "[") {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            if k == 0 {
                return false;
            }
            k -= 1;
        }
        let attr: Vec<&Tok> = toks[k..j].iter().map(|t| &t.0).collect();
        let is_cfg_test = attr.len() == 6
            && attr[1] == &Tok::Ident("cfg".into())
            && attr[3] == &Tok::Ident("test".into());
        if is_cfg_test {
            return true;
        }
        if k == 0 || !punct(toks.get(k - 1), "#") {
            return false;
        }
        j = k - 1;
    }
    false
}

/// The module graph at top-level granularity (root-level edges left out: `lib.rs` declares
/// and re-exports everything), plus the sibling graphs inside `second_level` modules.
fn graphs(
    refs: &[(Vec<String>, Vec<String>, Site)],
    modules: &BTreeSet<String>,
    second_level: &[&str],
) -> (Graph, BTreeMap<String, Graph>) {
    let mut top = Graph::default();
    let mut inner: BTreeMap<String, Graph> = BTreeMap::new();
    for (from, to, site) in refs {
        let (Some(f), Some(t)) = (from.first(), to.first()) else {
            continue;
        };
        if !modules.contains(t) {
            continue;
        }
        top.add(f, t, site.clone());
        if f == t && second_level.contains(&f.as_str()) {
            if let (Some(a), Some(b)) = (from.get(1), to.get(1)) {
                inner.entry(f.clone()).or_default().add(
                    &format!("{f}::{a}"),
                    &format!("{f}::{b}"),
                    site.clone(),
                );
            }
        }
    }
    (top, inner)
}

/// The cycles of a graph: one per strongly connected component of more than one node,
/// as a path that starts and ends at the same node.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = g
        .edges
        .iter()
        .flat_map(|(a, tos)| std::iter::once(a).chain(tos.keys()))
        .collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for t in g.edges.get(&n).into_iter().flat_map(|m| m.keys()) {
                if seen.insert(t.clone()) {
                    todo.push(t.clone());
                }
            }
        }
        seen
    };
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for n in nodes {
        if done.contains(n) || !reach(n).contains(n) {
            continue;
        }
        // Shortest path from n back to n (breadth first).
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([n.clone()]);
        'bfs: while let Some(x) = queue.pop_front() {
            for t in g.edges.get(&x).into_iter().flat_map(|m| m.keys()) {
                if t == n {
                    prev.insert(format!("{n}\0end"), x.clone());
                    break 'bfs;
                }
                if !prev.contains_key(t) {
                    prev.insert(t.clone(), x.clone());
                    queue.push_back(t.clone());
                }
            }
        }
        let mut path = vec![prev[&format!("{n}\0end")].clone()];
        while path.last() != Some(n) {
            let back = prev[path.last().expect("a node")].clone();
            path.push(back);
        }
        path.reverse();
        path.push(n.clone());
        // Every member of n's component is done.
        let r = reach(n);
        for m in &r {
            if reach(m).contains(n) {
                done.insert(m.clone());
            }
        }
        out.push(path);
    }
    out
}

fn describe(g: &Graph, cycle: &[String]) -> String {
    let mut s = cycle.join(" -> ");
    for w in cycle.windows(2) {
        let (file, line) = &g.edges[&w[0]][&w[1]];
        s.push_str(&format!("\n    {} -> {}: {file}:{line}", w[0], w[1]));
    }
    s
}

/// The cycles of one crate, described.
fn crate_cycles(krate: &str, files: &[(Vec<String>, String, String)]) -> Vec<String> {
    let top_modules: BTreeSet<String> = files.iter().filter_map(|f| f.0.first().cloned()).collect();
    let second: Vec<&str> = SECOND_LEVEL
        .iter()
        .filter(|(c, _)| *c == krate)
        .map(|(_, m)| *m)
        .collect();
    let refs = references(files);
    let (top, inner) = graphs(&refs, &top_modules, &second);
    let mut out: Vec<String> = cycles(&top)
        .iter()
        .map(|c| format!("{krate}: {}", describe(&top, c)))
        .collect();
    for g in inner.values() {
        out.extend(
            cycles(g)
                .iter()
                .map(|c| format!("{krate}: {}", describe(g, c))),
        );
    }
    out
}

#[test]
fn no_import_cycles_between_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for krate in ["shared", "agent", "collector"] {
        let files = crate_files(&root.join(krate).join("src"));
        assert!(!files.is_empty(), "no sources found for {krate}");
        found.extend(crate_cycles(krate, &files));
    }
    let mut known_gone = Vec::new();
    for (krate, cycle) in KNOWN_CYCLES {
        let before = found.len();
        let prefix = format!("{krate}: {cycle}\n");
        found.retain(|f| !f.starts_with(&prefix));
        if found.len() == before {
            known_gone.push(format!("{krate}: {cycle}"));
        }
    }
    assert!(
        found.is_empty(),
        "import cycles between modules (break each by moving the shared item to a \
         neutral module):\n{}",
        found.join("\n")
    );
    assert!(
        known_gone.is_empty(),
        "known cycles no longer found; strike them from KNOWN_CYCLES: {known_gone:?}"
    );
}

#[cfg(test)]
fn synthetic(files: &[(&str, &str)]) -> Vec<(Vec<String>, String, String)> {
    files
        .iter()
        .map(|(m, src)| {
            let path: Vec<String> = m
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            (path, format!("{m}.rs"), src.to_string())
        })
        .collect()
}

#[test]
fn detects_a_three_module_cycle() {
    let files = synthetic(&[
        ("", "pub mod a; pub mod b; pub mod c;"),
        ("a", "use crate::b::Thing;"),
        ("b", "use crate::{c::{self, Other}, x};"),
        ("c", "fn f() { let _ = super::a::make(); }"),
    ]);
    let found = crate_cycles("demo", &files);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("demo: a -> b -> c -> a"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("c -> a: c.rs:1"), "{}", found[0]);
}

#[test]
fn detects_a_sibling_cycle_inside_a_second_level_module() {
    let files = synthetic(&[
        ("", "pub mod checks;"),
        ("checks", "pub mod threshold; pub mod export;"),
        (
            "checks::threshold",
            "use super::export::{self, CheckSeries};",
        ),
        (
            "checks::export",
            "// use crate::nothing;\nuse super::threshold::CheckKind;",
        ),
    ]);
    let found = crate_cycles("agent", &files);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("checks::export -> checks::threshold"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("export.rs:2"), "{}", found[0]);
}

#[test]
fn ignores_test_code_comments_strings_and_dags() {
    let files = synthetic(&[
        ("", "pub mod a; pub mod b;"),
        ("a", "use crate::b::X; fn f() -> char { '{' }"),
        (
            "b",
            "// crate::a::Y\nconst S: &str = \"crate::a::Z {\";\n#[cfg(test)]\nmod tests { use crate::a::W; }\n#[cfg(test)]\nuse crate::a::V;",
        ),
    ]);
    assert!(crate_cycles("demo", &files).is_empty());
}

#[test]
fn resolves_child_module_paths_and_inline_super() {
    let files = synthetic(&[
        ("", "pub mod a; pub mod b; use a::Thing;"),
        ("a", "mod inner { use super::super::b::Y; }"),
        ("b", "pub fn g() { crate::a::h() }"),
    ]);
    let found = crate_cycles("demo", &files);
    assert_eq!(found.len(), 1, "{found:?}");
}
