//! The library's layers (src/lib.rs lists them) import only downwards: no top-level module
//! reaches one that reaches it back, directly or through others. Read from the sources:
//! src/x.rs and src/x/** are module `x`; every `crate::y…` path (also inside `use
//! crate::{…}` groups and through the root's `pub use` re-exports) and every `super::`
//! path that climbs to the crate root is an edge x → y. Comments and string literals do not
//! count; the binary's own modules (src/main.rs, src/cli/) are not the library's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Edges between top-level modules, each with the first place it was seen.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// `src` without comments, string and char literals (blanked, line breaks kept).
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let at = |i: usize, s: &str| s.chars().enumerate().all(|(k, c)| b.get(i + k) == Some(&c));
    while i < b.len() {
        if at(i, "//") {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let mut depth = 0;
            while i < b.len() {
                if at(i, "/*") {
                    depth += 1;
                    i += 2;
                } else if at(i, "*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if b[i] == 'r'
            && (at(i + 1, "\"") || at(i + 1, "#\"") || at(i + 1, "##\""))
            && !(i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            let hashes = b[i + 1..].iter().take_while(|c| **c == '#').count();
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            i += 2 + hashes;
            while i < b.len() && !at(i, &close) {
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if b[i] == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == '\'' && (at(i + 2, "'") || (b.get(i + 1) == Some(&'\\'))) {
            // A char literal ('a', '"', '\n', '\u{1b}'); otherwise a lifetime.
            i += 1;
            while i < b.len() && b[i] != '\'' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first segment of each path in the `use` tree that starts `s` (after `crate::`):
/// `a::b` gives `a`, `{a::b, c}` gives `a` and `c`.
fn first_segments(s: &str) -> Vec<String> {
    let s = s.trim_start();
    if !s.starts_with('{') {
        return vec![ident_at(s).to_string()];
    }
    let mut out = Vec::new();
    let mut depth = 0;
    let mut expect = true;
    for (k, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                expect = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect = true,
            c if expect && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                out.push(ident_at(&s[k..]).to_string());
                expect = false;
            }
            _ => {}
        }
    }
    out
}

/// The top-level modules that `code` (of the module at `path`, e.g. `["study", "local"]`)
/// refers to, through `crate::` and `super::`.
fn references(code: &str, path: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    // Inline modules (`mod tests { … }`) deepen the path `super::` climbs from.
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    let word_start = |i: usize| i == 0 || !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
    while i < code.len() {
        let rest = &code[i..];
        let c = rest.chars().next().unwrap();
        if c == '{' {
            depth += 1;
        } else if c == '}' {
            depth -= 1;
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
        } else if word_start(i) && rest.starts_with("mod ") {
            let name = ident_at(rest[4..].trim_start());
            let after = rest[4..].trim_start()[name.len()..].trim_start();
            if after.starts_with('{') {
                inline.push((name.to_string(), depth));
            }
        } else if word_start(i) && rest.starts_with("crate::") {
            found.extend(first_segments(&rest[7..]));
        } else if word_start(i) && rest.starts_with("super::") {
            let mut module: Vec<String> = path.to_vec();
            module.extend(inline.iter().map(|(n, _)| n.clone()));
            let mut r = rest;
            while let Some(next) = r.strip_prefix("super::") {
                module.pop();
                r = next;
            }
            if module.is_empty() {
                found.extend(first_segments(r));
            } else {
                found.push(module[0].clone());
            }
            i += rest.len() - r.len();
            continue;
        }
        i += c.len_utf8();
    }
    found
}

/// The module path of a file under src/: `study/local.rs` is `["study", "local"]`,
/// `study/mod.rs` and `study.rs` are `["study"]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Names the root re-exports (`pub use model::{ResNet, …}` in lib.rs), by the module
/// that defines them.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for stmt in code_only(lib).split(';') {
        let Some(tree) = stmt.trim().strip_prefix("pub use ") else { continue };
        let module = ident_at(tree).to_string();
        let rest = &tree[module.len()..];
        let items = rest.trim_start_matches("::").trim_matches(|c| c == '{' || c == '}');
        for item in items.split(',') {
            let name = item.trim().rsplit("::").next().unwrap_or("").trim();
            let name = name.rsplit(" as ").next().unwrap().trim();
            if !name.is_empty() {
                names.insert(name.to_string(), module.clone());
            }
        }
    }
    names
}

/// The graph of the library's top-level modules, read from `src`.
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let rels: Vec<_> = files.iter().map(|f| f.strip_prefix(src).unwrap().to_path_buf()).collect();
    let library = |rel: &Path| !(rel == Path::new("lib.rs") || rel == Path::new("main.rs") || rel.starts_with("cli"));
    let modules: BTreeSet<String> = rels.iter().filter(|r| library(r)).map(|r| module_path(r)[0].clone()).collect();
    let aliases = reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut g = Graph::new();
    for (file, rel) in files.iter().zip(&rels).filter(|(_, r)| library(r)) {
        let path = module_path(rel);
        let from = &path[0];
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        g.entry(from.clone()).or_default();
        for name in references(&code, &path) {
            let to = aliases.get(&name).unwrap_or(&name);
            if to != from && modules.contains(to) {
                g.get_mut(from).unwrap().entry(to.clone()).or_insert_with(|| rel.display().to_string());
            }
        }
    }
    g
}

/// A cycle of `g`, as the modules along it (the first repeated at the end), if any.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(g: &Graph, at: &str, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(k) = stack.iter().position(|m| m == at) {
            let mut cycle = stack[k..].to_vec();
            cycle.push(at.to_string());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        stack.push(at.to_string());
        for next in g.get(at).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(g, next, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|m| visit(g, m, &mut Vec::new(), &mut done))
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // The reader sees the layers it should (a reader that sees nothing finds no cycle).
    for (from, to) in [("train", "model"), ("html", "eval_report"), ("study", "jobs"), ("checkpoint", "memory")] {
        assert!(g[from].contains_key(to), "{from} → {to} not found: {:?}", g[from]);
    }
    if let Some(cycle) = find_cycle(&g) {
        let steps: Vec<String> =
            cycle.windows(2).map(|w| format!("{} → {} (in src/{})", w[0], w[1], g[&w[0]][&w[1]])).collect();
        panic!("import cycle {}: {}", cycle.join(" → "), steps.join("; "));
    }
    // Neither the study nor the model reaches the layers this issue took them out of.
    assert!(!g["study"].contains_key("html"), "the study writes no HTML: {:?}", g["study"]);
    assert!(!g["model"].contains_key("memory"), "the model asks no machine for memory: {:?}", g["model"]);
}

#[test]
fn the_reader_follows_use_trees_super_paths_and_reexports_and_skips_comments_and_strings() {
    let code = code_only(
        "use crate::{data::{self, Part}, error::Result};\n\
         // crate::html in a comment\n/* crate::study /* nested */ crate::viz */\n\
         let s = \"crate::bench\"; let r = r#\"crate::tensorboard\"#; let c = '\"'; let l: &'static str = x;\n\
         use super::super::metrics::read;\nfn f() { crate::ResNet::new(); }\n\
         mod tests { use super::*; use super::super::summary; }",
    );
    let path = ["study".to_string(), "local".to_string()];
    let mut refs = references(&code, &path);
    refs.sort();
    assert_eq!(refs, ["ResNet", "data", "error", "metrics", "study", "study"]);
    let aliases = reexports("pub use error::{Error, Result};\npub use model::{Arch, ResNet as Net};");
    assert_eq!((aliases["Result"].as_str(), aliases["Net"].as_str()), ("error", "model"));

    let mut g = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("a", "d")] {
        g.entry(a.into()).or_default().insert(b.into(), String::new());
    }
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}
