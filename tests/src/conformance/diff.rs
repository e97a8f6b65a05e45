//! A line diff of two reports (longest common subsequence; reports are a few hundred lines),
//! as hunks of lines only on the left (runc) and only on the right (zagent), each with the
//! probe section it is in, and printed with `-`/`+` and a line of context.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Same(&'a str),
    Left(&'a str),
    Right(&'a str),
}

/// The edit script from `left` to `right`, line by line.
pub fn lines<'a>(left: &'a str, right: &'a str) -> Vec<Line<'a>> {
    let a: Vec<&str> = left.lines().collect();
    let b: Vec<&str> = right.lines().collect();
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(Line::Same(a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(Line::Left(a[i]));
            i += 1;
        } else {
            out.push(Line::Right(b[j]));
            j += 1;
        }
    }
    out
}

/// One run of differing lines: what only the left has and what only the right has there,
/// and the `== section` it is in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hunk {
    pub section: String,
    pub left: Vec<String>,
    pub right: Vec<String>,
}

pub fn hunks(left: &str, right: &str) -> Vec<Hunk> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut cur: Option<Hunk> = None;
    for line in lines(left, right) {
        match line {
            Line::Same(l) => {
                out.extend(cur.take());
                if let Some(name) = l.strip_prefix("== ") {
                    section = name.to_string();
                }
            }
            Line::Left(l) | Line::Right(l) => {
                let h = cur.get_or_insert_with(|| Hunk {
                    section: section.clone(),
                    ..Hunk::default()
                });
                if matches!(line, Line::Left(_)) {
                    h.left.push(l.to_string());
                } else {
                    h.right.push(l.to_string());
                }
            }
        }
    }
    out.extend(cur);
    out
}

/// The diff for a failure message: changed lines with `-` (left) and `+` (right), one line of
/// context either side, `...` between runs.
pub fn render(left: &str, right: &str) -> String {
    let all = lines(left, right);
    let changed = |i: usize| all.get(i).is_some_and(|l| !matches!(l, Line::Same(_)));
    let mut out = String::new();
    let mut last_shown = None;
    for (i, line) in all.iter().enumerate() {
        let near = changed(i) || changed(i + 1) || (i > 0 && changed(i - 1));
        if !near {
            continue;
        }
        if last_shown.is_some_and(|l: usize| l + 1 != i) {
            out.push_str("   ...\n");
        }
        last_shown = Some(i);
        let (mark, text) = match line {
            Line::Same(l) => (' ', l),
            Line::Left(l) => ('-', l),
            Line::Right(l) => ('+', l),
        };
        out.push_str(&format!("  {mark} {text}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_name_their_section() {
        let left = "== a\nx\ny\n== b\nz\n";
        let right = "== a\nx\nY\n== b\nz\nw\n";
        assert_eq!(
            hunks(left, right),
            vec![
                Hunk {
                    section: "a".into(),
                    left: vec!["y".into()],
                    right: vec!["Y".into()]
                },
                Hunk {
                    section: "b".into(),
                    left: vec![],
                    right: vec!["w".into()]
                },
            ]
        );
        assert!(hunks(left, left).is_empty());
        assert_eq!(
            render("a\nb\nc\nd\ne\n", "a\nb\nC\nd\ne\n"),
            "    b\n  - c\n  + C\n    d\n"
        );
    }
}
