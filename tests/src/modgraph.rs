//! Module import cycles in a crate's source, found without compiling it: from each target root
//! (lib.rs, main.rs, src/bin/*.rs, `[[bin]] path`s) the `mod x;` declarations give the module
//! tree, and every `crate::`, `super::` and `self::` path in a module's file (use items and
//! inline paths alike; comments, strings and char literals skipped) is a reference to the
//! longest module path it names. A reference between two modules counts between the children
//! of their nearest common ancestor that hold them (a child using its parent's items, or a
//! parent its child's, is the tree itself, not a cycle); every group of siblings that reach
//! one another is a cycle. Inline modules (`mod tests { .. }`) belong to their file's module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path from the crate root, e.g. ["launcher", "zygote"]; the root is [].
pub type ModPath = Vec<String>;

/// One reference: module `from` names something of module `to` in `file` at `line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub from: ModPath,
    pub to: ModPath,
    pub file: PathBuf,
    pub line: usize,
}

/// Siblings under `parent` that reach one another, with the references that tie them.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub parent: ModPath,
    pub members: Vec<String>,
    pub references: Vec<Reference>,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parent = if self.parent.is_empty() {
            "crate".to_string()
        } else {
            self.parent.join("::")
        };
        writeln!(f, "cycle under {parent}: {}", self.members.join(", "))?;
        for r in &self.references {
            let (from, to) = (r.from.join("::"), r.to.join("::"));
            writeln!(f, "  {from} -> {to} ({}:{})", r.file.display(), r.line)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Path,
    Open,
    Close,
    Comma,
    Other(char),
}

/// The tokens that matter for paths, with their line numbers; comments, string and char
/// literals are skipped, lifetimes are not mistaken for chars.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    let skip_to = |i: &mut usize, line: &mut usize, end: usize| {
        *line += c[*i..end.min(c.len())]
            .iter()
            .filter(|&&x| x == '\n')
            .count();
        *i = end;
    };
    while i < c.len() {
        let at = |k: usize| c.get(i + k).copied().unwrap_or('\0');
        match at(0) {
            '\n' => (line, i) = (line + 1, i + 1),
            '/' if at(1) == '/' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(1) == '*' => {
                let mut depth = 0;
                let mut j = i;
                while j < c.len() {
                    if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                        (depth, j) = (depth + 1, j + 2);
                    } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                        (depth, j) = (depth - 1, j + 2);
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                skip_to(&mut i, &mut line, j);
            }
            'r' | 'b' if raw_string_start(&c[i..]).is_some() => {
                let (hashes, open) = raw_string_start(&c[i..]).expect("checked");
                let close: Vec<char> = format!("\"{}", "#".repeat(hashes)).chars().collect();
                let mut j = i + open;
                while j < c.len() && !c[j..].starts_with(&close) {
                    j += 1;
                }
                skip_to(&mut i, &mut line, j + close.len());
            }
            '"' => {
                let end = quoted_end(&c, i, '"');
                skip_to(&mut i, &mut line, end)
            }
            'b' if at(1) == '"' => {
                let end = quoted_end(&c, i + 1, '"');
                skip_to(&mut i, &mut line, end)
            }
            '\'' if at(1) == '\\' || at(2) == '\'' => {
                let end = quoted_end(&c, i, '\'');
                skip_to(&mut i, &mut line, end)
            }
            ':' if at(1) == ':' => (out.push((Tok::Path, line)), i += 2).1,
            '{' => (out.push((Tok::Open, line)), i += 1).1,
            '}' => (out.push((Tok::Close, line)), i += 1).1,
            ',' => (out.push((Tok::Comma, line)), i += 1).1,
            x if x.is_alphabetic() || x == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push((Tok::Ident(c[start..i].iter().collect()), line));
            }
            x if x.is_whitespace() => i += 1,
            x => (out.push((Tok::Other(x), line)), i += 1).1,
        }
    }
    out
}

/// `r"`, `r#"`, `br##"`...: the number of hashes and the length of the opening.
fn raw_string_start(c: &[char]) -> Option<(usize, usize)> {
    let after_b = usize::from(c.first() == Some(&'b'));
    if c.get(after_b) != Some(&'r') {
        return None;
    }
    let hashes = c[after_b + 1..].iter().take_while(|&&x| x == '#').count();
    (c.get(after_b + 1 + hashes) == Some(&'"')).then_some((hashes, after_b + 2 + hashes))
}

/// The index just past the literal that opens with `q` at `start`.
fn quoted_end(c: &[char], start: usize, q: char) -> usize {
    let mut j = start + 1;
    while j < c.len() && c[j] != q {
        j += if c[j] == '\\' { 2 } else { 1 };
    }
    j + 1
}

/// Whether `toks[..i]` ends with `#[cfg(test)]` (before optional `pub`): the item at `i` is
/// test code, whose references are not the crate's structure.
fn test_only(toks: &[(Tok, usize)], mut i: usize) -> bool {
    let ident = |t: &Tok, s: &str| matches!(t, Tok::Ident(x) if x == s);
    while i > 0 && ident(&toks[i - 1].0, "pub") {
        i -= 1;
    }
    let attr = [
        Tok::Other('#'),
        Tok::Other('['),
        Tok::Ident("cfg".into()),
        Tok::Other('('),
        Tok::Ident("test".into()),
        Tok::Other(')'),
        Tok::Other(']'),
    ];
    i >= attr.len() && toks[i - attr.len()..i].iter().map(|t| &t.0).eq(attr.iter())
}

/// The names of `mod x;` declarations at the file's top level, test-only ones left out.
fn mod_decls(toks: &[(Tok, usize)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    for (k, w) in toks.windows(3).enumerate() {
        match &w[0].0 {
            Tok::Open => depth += 1,
            Tok::Close => depth -= 1,
            Tok::Ident(m) if m == "mod" && depth == 0 && !test_only(toks, k) => {
                if let (Tok::Ident(name), Tok::Other(';')) = (&w[1].0, &w[2].0) {
                    out.push(name.clone());
                }
            }
            _ => {}
        }
    }
    out
}

/// Every full path of the use tree that starts at `toks[i]` (just after a `::`).
fn use_tree(toks: &[(Tok, usize)], mut i: usize, prefix: Vec<String>, out: &mut Vec<ModPath>) {
    let mut path = prefix;
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(seg)) => {
                if seg != "self" {
                    path.push(seg.clone());
                }
                if toks.get(i + 1).map(|t| &t.0) != Some(&Tok::Path) {
                    break;
                }
                i += 2;
            }
            Some(Tok::Open) => {
                let mut depth = 0;
                let mut item_start = i + 1;
                for (j, (t, _)) in toks.iter().enumerate().skip(i) {
                    match t {
                        Tok::Open => depth += 1,
                        Tok::Close if depth == 1 => {
                            use_tree(toks, item_start, path.clone(), out);
                            return;
                        }
                        Tok::Close => depth -= 1,
                        Tok::Comma if depth == 1 => {
                            use_tree(toks, item_start, path.clone(), out);
                            item_start = j + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            _ => break,
        }
    }
    out.push(path);
}

/// The module paths a file names, resolved from its module `me` (inline modules folded into
/// it): `crate::`, `super::` (from inside an inline module, the file's own module) and `self::`.
fn referenced(toks: &[(Tok, usize)], me: &[String]) -> Vec<(ModPath, usize)> {
    let mut out = Vec::new();
    let mut inline_opens = Vec::new(); // brace depths at which inline modules opened
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        let prev = i.checked_sub(1).map(|k| &toks[k].0);
        match &toks[i].0 {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if inline_opens.last() == Some(&depth) {
                    inline_opens.pop();
                }
            }
            Tok::Ident(m) if m == "mod" => {
                if matches!(toks.get(i + 2).map(|t| &t.0), Some(Tok::Open)) {
                    if test_only(toks, i) {
                        i = block_end(toks, i + 2);
                        continue;
                    }
                    inline_opens.push(depth);
                }
            }
            Tok::Ident(head)
                if ["crate", "super", "self"].contains(&head.as_str())
                    && prev != Some(&Tok::Path)
                    && prev != Some(&Tok::Ident("in".into()))
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path) =>
            {
                let mut base: ModPath = match head.as_str() {
                    "crate" => vec![],
                    _ => me.to_vec(),
                };
                let mut j = i + 2;
                if head == "super" {
                    let mut ups = 1;
                    while toks.get(j).map(|t| &t.0) == Some(&Tok::Ident("super".into())) {
                        (ups, j) = (ups + 1, j + 2);
                    }
                    // Each inline module level absorbs one `super` (it is folded into `me`).
                    let ups = ups - ups.min(inline_opens.len());
                    base.truncate(base.len().saturating_sub(ups));
                }
                let mut paths = Vec::new();
                use_tree(toks, j, base, &mut paths);
                out.extend(paths.into_iter().map(|p| (p, toks[i].1)));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The index just past the block that opens at `toks[open]`.
fn block_end(toks: &[(Tok, usize)], open: usize) -> usize {
    let mut depth = 0;
    for (j, (t, _)) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Open => depth += 1,
            Tok::Close if depth == 1 => return j + 1,
            Tok::Close => depth -= 1,
            _ => {}
        }
    }
    toks.len()
}

/// The module tree of the target whose root file is `root`: (module path, file) pairs.
pub fn modules(root: &Path) -> Vec<(ModPath, PathBuf)> {
    let mut out = Vec::new();
    let mut todo = vec![(vec![], root.to_path_buf())];
    while let Some((path, file)) = todo.pop() {
        let Ok(src) = std::fs::read_to_string(&file) else {
            continue;
        };
        let owns_dir = path.is_empty() || file.file_name().is_some_and(|n| n == "mod.rs");
        let dir = match (owns_dir, file.parent()) {
            (true, Some(d)) => d.to_path_buf(),
            (false, Some(d)) => d.join(file.file_stem().expect("a file name")),
            _ => continue,
        };
        for name in mod_decls(&lex(&src)) {
            let child: ModPath = path.iter().cloned().chain([name.clone()]).collect();
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            if flat.exists() {
                todo.push((child, flat));
            } else if nested.exists() {
                todo.push((child, nested));
            }
        }
        out.push((path, file));
    }
    out
}

/// Every reference between two modules of the target rooted at `root`.
pub fn references(root: &Path) -> Vec<Reference> {
    let mods = modules(root);
    let known: BTreeSet<&ModPath> = mods.iter().map(|m| &m.0).collect();
    let mut out = Vec::new();
    for (me, file) in &mods {
        let src = std::fs::read_to_string(file).unwrap_or_default();
        for (path, line) in referenced(&lex(&src), me) {
            let to = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| known.contains(p))
                .unwrap_or_default();
            if &to != me {
                out.push(Reference {
                    from: me.clone(),
                    to,
                    file: file.clone(),
                    line,
                });
            }
        }
    }
    out
}

/// The cycles among siblings (see the module doc).
pub fn cycles(refs: &[Reference]) -> Vec<Cycle> {
    // parent -> (child, child) -> the references behind that edge
    let mut edges: BTreeMap<ModPath, BTreeMap<(String, String), Vec<Reference>>> = BTreeMap::new();
    for r in refs {
        let common = r.from.iter().zip(&r.to).take_while(|(a, b)| a == b).count();
        if common == r.from.len() || common == r.to.len() {
            continue; // one contains the other
        }
        let key = (r.from[common].clone(), r.to[common].clone());
        let parent = r.from[..common].to_vec();
        edges
            .entry(parent)
            .or_default()
            .entry(key)
            .or_default()
            .push(r.clone());
    }
    let mut out = Vec::new();
    for (parent, e) in edges {
        let nodes: BTreeSet<&String> = e.keys().flat_map(|(a, b)| [a, b]).collect();
        let reach = |from: &String| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.clone()];
            while let Some(n) = todo.pop() {
                for (a, b) in e.keys() {
                    if *a == n && seen.insert(b.clone()) {
                        todo.push(b.clone());
                    }
                }
            }
            seen
        };
        let mut done = BTreeSet::new();
        for n in nodes {
            if done.contains(n) || !reach(n).contains(n) {
                continue;
            }
            let members: Vec<String> = reach(n)
                .into_iter()
                .filter(|m| reach(m).contains(n))
                .collect();
            done.extend(members.iter().cloned());
            let references = e
                .iter()
                .filter(|((a, b), _)| members.contains(a) && members.contains(b))
                .flat_map(|(_, rs)| rs.iter().take(2).cloned())
                .collect();
            out.push(Cycle {
                parent: parent.clone(),
                members,
                references,
            });
        }
    }
    out
}

/// The root files of a package's targets: src/lib.rs, src/main.rs, src/bin/*.rs and every
/// `path = "..."` of its Cargo.toml (build scripts aside).
pub fn target_roots(package: &Path) -> Vec<PathBuf> {
    let mut roots: BTreeSet<PathBuf> = ["src/lib.rs", "src/main.rs"]
        .iter()
        .map(|r| package.join(r))
        .collect();
    if let Ok(bins) = std::fs::read_dir(package.join("src/bin")) {
        roots.extend(bins.flatten().map(|e| e.path()));
    }
    let manifest = std::fs::read_to_string(package.join("Cargo.toml")).unwrap_or_default();
    for line in manifest.lines() {
        if let Some(v) = line.trim().strip_prefix("path") {
            let v = v
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            if v.ends_with(".rs") {
                roots.insert(package.join(v));
            }
        }
    }
    roots
        .into_iter()
        .filter(|r| r.extension().is_some_and(|x| x == "rs") && r.is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn a_two_module_cycle_is_found_with_its_lines_and_test_code_is_left_out() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("lib.rs", "mod a;\nmod b;\nmod c;\n#[cfg(test)]\nmod t;\n"),
                ("t.rs", "use crate::c::Q;\n"),
                (
                    "a.rs",
                    "use crate::b::X;\n#[cfg(test)]\nmod tests {\n    use crate::c::Q;\n}\n",
                ),
                (
                    "b.rs",
                    "// crate::c::Y in a comment\nfn f() { crate::a::g() }\n",
                ),
                (
                    "c.rs",
                    "const S: &str = \"crate::a::Z\";\nuse crate::{a, b::W};\n",
                ),
            ],
        );
        let refs = references(&d.path().join("lib.rs"));
        let found = cycles(&refs);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].members, ["a", "b"]);
        let lines: Vec<usize> = found[0].references.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2], "{}", found[0]);
    }

    #[test]
    fn parents_and_children_are_no_cycle_but_siblings_below_are() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("main.rs", "mod l;\nmod m;\nfn main() { l::run() }\n"),
                ("l/mod.rs", "mod x;\nmod y;\npub use x::X;\npub struct E;\n"),
                ("l/x.rs", "use super::E;\nuse super::y::{self, Y};\n"),
                ("l/y.rs", "use super::super::m;\nfn f() -> super::x::X { todo!() }\n"),
                (
                    "m.rs",
                    "pub(super) fn f() {}\n#[cfg(test)]\nmod tests {\n    use super::f;\n    use crate::m::g;\n}\n",
                ),
            ],
        );
        let refs = references(&d.path().join("main.rs"));
        let found = cycles(&refs);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].parent, ["l"]);
        assert_eq!(found[0].members, ["x", "y"]);
        // l::y -> m is a sibling edge at the top, one way only.
        assert!(refs.iter().any(|r| r.from == ["l", "y"] && r.to == ["m"]));
    }

    #[test]
    fn raw_strings_chars_and_lifetimes_do_not_confuse_the_lexer() {
        let src = "fn f<'a>(x: &'a str) -> char { let _ = r#\"crate::a\"#; '\"' }\nuse crate::b;";
        let refs = referenced(&lex(src), &[]);
        assert_eq!(refs, [(vec!["b".to_string()], 2)]);
    }
}
