//! The code blocks of the README and the user guide (`docs/src/*.md`), and the shell commands in
//! them, for the tests that run what the documentation says as written.
//!
//! One reader for every test, so that they agree on what a block and a command are:
//!
//! - a block is a fenced code block (three backticks) with its info string (`sh`, `console`,
//!   `text`, …), the file it is in and the line its first text line is on;
//! - a command of a `sh` block is one line, or several joined: a line ending in `\` continues,
//!   and so does a line that leaves a single quote open. A line (or command) that starts with
//!   `#` is a comment, and so is a ` # ` after a command outside quotes;
//! - a `console` block alternates `$ command` lines and the output they print.

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The README and every page of the guide, in a fixed order (the README, then the pages by name).
pub fn documents() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("docs/src"))
        .expect("docs/src")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    let mut out = vec![repo().join("README.md")];
    out.extend(pages);
    out
}

/// A page of the guide by its file name (`deploying.md`).
pub fn page(name: &str) -> PathBuf {
    repo().join("docs/src").join(name)
}

/// A fenced code block.
#[derive(Clone, Debug)]
pub struct Block {
    /// The file, relative to the repository's root.
    pub file: String,
    /// The line (1-based) of the block's first text line.
    pub line: usize,
    /// The info string's first word (`sh` for "sh,ignore"), empty when there is none.
    pub lang: String,
    /// The info string's other words ("ignore" for "sh,ignore").
    pub attributes: Vec<String>,
    pub text: String,
}

impl Block {
    /// Where the block is, for messages: `docs/src/cli.md:12`.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The fenced code blocks of one file.
pub fn blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = path
        .strip_prefix(repo())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    let file = file.trim_start_matches("./").to_string();
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                let mut words = info.split(',').map(|w| w.trim().to_string());
                open = Some(Block {
                    file: file.clone(),
                    line: i + 2,
                    lang: words.next().unwrap_or_default(),
                    attributes: words.filter(|w| !w.is_empty()).collect(),
                    text: String::new(),
                });
            }
            (Some(_), Some(_)) => out.push(open.take().unwrap()),
            (Some(block), None) => {
                // A block inside a list item is indented; its text is not.
                let indent = line.len() - trimmed.len();
                let own = line
                    .get(indent.min(block_indent(&text, block.line))..)
                    .unwrap_or(trimmed);
                block.text.push_str(own);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// How far the fence before `line` is indented (a block inside a list item).
fn block_indent(text: &str, line: usize) -> usize {
    let fence = text.lines().nth(line - 2).unwrap_or("");
    fence.len() - fence.trim_start().len()
}

/// Every block of the README and the guide.
pub fn all_blocks() -> Vec<Block> {
    documents().iter().flat_map(|p| blocks(p)).collect()
}

/// A shell command of a `sh` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// The line (1-based, in the file) the command starts on.
    pub line: usize,
    /// The command as the shell reads it: continuation lines kept, with their newlines.
    pub text: String,
}

impl Command {
    /// The command on one line: a `\` and newline become a space, other newlines (inside quotes)
    /// stay.
    pub fn joined(&self) -> String {
        self.text.replace("\\\n", " ").trim().to_string()
    }
}

/// The commands of a `sh` block, comments left out.
pub fn commands(block: &Block) -> Vec<Command> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (i, line) in block.text.lines().enumerate() {
        if pending.is_empty() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            start = block.line + i;
        }
        // A comment after a command, outside quotes, is prose (its apostrophes are not quotes).
        let line = match line.split_once(" # ") {
            Some((code, _)) if pending.matches('\'').count() % 2 == 0 && !code.contains('\'') => {
                code.trim_end()
            }
            _ => line,
        };
        pending.push_str(line);
        pending.push('\n');
        let open_quote = pending.matches('\'').count() % 2 == 1;
        if open_quote || line.ends_with('\\') {
            continue;
        }
        out.push(Command {
            line: start,
            text: std::mem::take(&mut pending),
        });
    }
    if !pending.trim().is_empty() {
        out.push(Command {
            line: start,
            text: pending,
        });
    }
    out
}

/// One `$ command` of a `console` block and the lines it prints.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsoleStep {
    pub line: usize,
    pub command: String,
    /// The expected output, one string per line; a line `…` stands for any lines.
    pub output: Vec<String>,
}

/// The steps of a `console` block.
pub fn console_steps(block: &Block) -> Vec<ConsoleStep> {
    let mut out: Vec<ConsoleStep> = Vec::new();
    for (i, line) in block.text.lines().enumerate() {
        if let Some(command) = line.strip_prefix("$ ") {
            out.push(ConsoleStep {
                line: block.line + i,
                command: command.to_string(),
                output: Vec::new(),
            });
        } else if let Some(step) = out.last_mut() {
            step.output.push(line.to_string());
        } else {
            panic!("{}: a console block starts with `$ command`", block.at());
        }
    }
    out
}

/// Whether `actual` is what `expected` shows: line by line, a line `…` standing for any number
/// of lines (none included), trailing spaces ignored.
pub fn output_matches(expected: &[String], actual: &str) -> bool {
    let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
    fn go(e: &[String], a: &[&str]) -> bool {
        match e.split_first() {
            None => a.is_empty(),
            Some((first, rest)) if first.trim() == "…" => {
                (0..=a.len()).any(|skip| go(rest, &a[skip..]))
            }
            Some((first, rest)) => {
                a.first().is_some_and(|l| *l == first.trim_end()) && go(rest, &a[1..])
            }
        }
    }
    go(expected, &actual)
}

/// The relative links of a Markdown file (`[text](target)` and `![alt](target)`), with their
/// lines: targets without a scheme, outside code.
pub fn relative_links(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut in_code = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Inline code is not a link.
        let mut visible = String::new();
        for (n, part) in line.split('`').enumerate() {
            if n % 2 == 0 {
                visible.push_str(part);
            }
        }
        let mut rest = visible.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = &after[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                out.push((i + 1, target.to_string()));
            }
            rest = &after[end..];
        }
    }
    out
}

/// The anchors mdBook gives a page's headings (`## The CLI alone` -> `the-cli-alone`).
pub fn anchors(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let id: String = title
            .chars()
            .filter_map(|c| {
                if c.is_alphanumeric() || c == '_' || c == '-' {
                    Some(c.to_ascii_lowercase())
                } else if c == ' ' {
                    Some('-')
                } else {
                    None
                }
            })
            .collect();
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(lang: &str, text: &str) -> Block {
        Block {
            file: "x.md".into(),
            line: 10,
            lang: lang.into(),
            attributes: vec![],
            text: text.into(),
        }
    }

    #[test]
    fn commands_join_continuations_and_open_quotes_and_drop_comments() {
        let b = block(
            "sh",
            "# a comment, don't\nA=1   # set it\ncurl -d '{\n  \"x\": 1}'\ngolem-cli a \\\n  --b c\n",
        );
        let c = commands(&b);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!((c[0].line, c[0].text.as_str()), (11, "A=1\n"));
        assert_eq!(c[1].line, 12);
        assert!(c[1].text.contains("\"x\": 1}'"));
        assert_eq!(c[2].joined(), "golem-cli a    --b c");
    }

    #[test]
    fn console_output_matches_with_ellipses() {
        let s = console_steps(&block("console", "$ a\none\n…\nfour\n$ b\n"));
        assert_eq!(s.len(), 2);
        assert!(output_matches(&s[0].output, "one\ntwo\nthree\nfour\n"));
        assert!(output_matches(&s[0].output, "one\nfour\n"));
        assert!(!output_matches(&s[0].output, "one\nfive\n"));
        assert!(output_matches(&s[1].output, ""));
        assert!(!output_matches(&s[1].output, "x"));
    }

    #[test]
    fn links_and_anchors() {
        let dir = std::env::temp_dir().join(format!("doc-blocks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.md");
        std::fs::write(
            &p,
            "# The `timeline` CLI\n[a](b.md#c) `[no](x)` [w](https://x)\n```\n[no](y)\n```\n## Data: formats\n",
        )
        .unwrap();
        assert_eq!(relative_links(&p), vec![(2, "b.md#c".to_string())]);
        assert_eq!(anchors(&p), vec!["the-timeline-cli", "data-formats"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
