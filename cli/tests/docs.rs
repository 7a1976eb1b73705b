//! The README and the user guide say what the CLI does; these tests run what they say.
//!
//! - Every `console` block runs as written (`$ command`, from a scratch directory holding the
//!   repository's `examples/`, with the built `timeline` first on the `PATH`), and what it
//!   prints (standard output, then standard error) must be the block's text, line by line; a
//!   line `…` stands for any lines. The blocks of the HTTP page run in order against a
//!   `timeline serve` of their own. `TIMELINE_DOCS_BLESS=1` writes what the commands printed
//!   back into the documents instead (review the diff).
//! - Every `timeline` command of a `sh` block runs and must succeed, its `golem` commands
//!   against a `timeline serve` of their own; every other command must be one that another test
//!   or `.ci/run` runs (listed below). The Kafka page's walk-through runs whole, as a script,
//!   with a tansu broker and `timeline serve` of its own, and answers as `timeline eval`.
//! - Every relative link points to a file that exists, and to a heading of it where it names
//!   one.

mod common;

use common::{repo, Server};
use doc_blocks::{Block, ConsoleStep};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Commands of `sh` blocks that these tests do not run, and who does.
const RUN_ELSEWHERE: &[(&str, &str)] = &[
    (
        "golem-cli ",
        "tests/tests/readme.rs checks them against golem-cli 1.1.16's arguments",
    ),
    (
        "curl ",
        "cli/tests/serve.rs and tests/tests/readme_curl.rs run the deployment guide's",
    ),
    (
        "eval \"$(scripts/golem-ids)\"",
        "tests/tests/readme.rs runs scripts/golem-ids",
    ),
    ("scripts/setup", ".ci/run runs it first"),
    ("scripts/demo", ".ci/run runs its main job"),
    (".ci/run", "CI"),
    ("scripts/bench", "bench/tests/smoke.rs runs the small tier"),
    ("scripts/fuzz", ".ci/run runs a short pass"),
    ("cargo ", ".ci/run builds and runs these in short form"),
    ("export PATH=", "these tests put the binary on the PATH"),
    (
        "python3 -m venv",
        ".ci/run makes a virtual environment and installs ./python in it",
    ),
    (
        "venv/bin/",
        ".ci/run installs ./python and runs python/tests (test_guide.py runs the Python page; a test runs bench/python_bench.py on a small file)",
    ),
];

/// Shell variables the deployment guide sets (`G=…`, `EV=…`): run by the curl tests.
fn is_assignment(command: &str) -> bool {
    let name: String = command.chars().take_while(|c| *c != '=').collect();
    command.contains('=')
        && !name.is_empty()
        && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

/// A scratch directory to run documented commands in: `examples/` of the repository, and room
/// for the files they write.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("timeline-docs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), dir.join("examples")).unwrap();
    std::os::unix::fs::symlink(repo().join("scripts"), dir.join("scripts")).unwrap();
    dir
}

/// Runs `command` with bash in `dir`, `timeline` being the built binary; stdout then stderr.
fn run(command: &str, dir: &Path, env: &[(&str, String)]) -> (bool, String) {
    let bin = Path::new(env!("CARGO_BIN_EXE_timeline")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-c", command])
        .current_dir(dir)
        .env("PATH", path)
        .env("TIMELINE_GOLEM_CACHE", dir.join("plan-cache"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("bash runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The `console` blocks of the documents, each with its steps.
fn console_blocks() -> Vec<(Block, Vec<ConsoleStep>)> {
    doc_blocks::all_blocks()
        .into_iter()
        .filter(|b| b.lang == "console")
        .map(|b| {
            let steps = doc_blocks::console_steps(&b);
            (b, steps)
        })
        .collect()
}

/// Runs the steps of `blocks` in order and checks what they print; with `TIMELINE_DOCS_BLESS`
/// set, writes what they printed into the documents instead.
fn check_console(blocks: &[(Block, Vec<ConsoleStep>)], dir: &Path, env: &[(&str, String)]) {
    let mut mismatches = Vec::new();
    for (block, steps) in blocks {
        for step in steps {
            let (_, printed) = run(&step.command, dir, env);
            if !doc_blocks::output_matches(&step.output, &printed) {
                mismatches.push((block, step, printed));
            }
        }
    }
    if std::env::var_os("TIMELINE_DOCS_BLESS").is_some() {
        // From the end of each file, so that the lines still to bless do not move.
        mismatches.sort_by_key(|(b, s, _)| (b.file.clone(), std::cmp::Reverse(s.line)));
        for (block, step, printed) in &mismatches {
            bless_step(block, step, printed);
        }
        return;
    }
    let failures: Vec<String> = mismatches
        .iter()
        .map(|(block, step, printed)| {
            format!(
                "{}:{}: $ {}\n--- the document says:\n{}\n--- it printed:\n{}",
                block.file,
                step.line,
                step.command,
                step.output.join("\n"),
                printed
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} documented command(s) print something else (TIMELINE_DOCS_BLESS=1 writes what they print):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Replaces a step's expected output in its file with what it printed.
fn bless_step(block: &Block, step: &ConsoleStep, printed: &str) {
    let path = repo().join(&block.file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let first = step.line; // the `$` line, 1-based: output starts at index `first`
    let indent: String = lines[first - 1]
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    let new: Vec<String> = printed
        .lines()
        .map(|l| format!("{indent}{}", l.trim_end()))
        .collect();
    lines.splice(first..first + step.output.len(), new);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

fn is_http_page(block: &Block) -> bool {
    block.file.ends_with("docs/src/http.md")
}

#[test]
fn console_blocks_print_what_they_say() {
    let blocks: Vec<_> = console_blocks()
        .into_iter()
        .filter(|(b, _)| !is_http_page(b))
        .collect();
    assert!(blocks.len() >= 15, "only {} console blocks", blocks.len());
    check_console(&blocks, &scratch("console"), &[]);
}

#[test]
fn the_http_page_runs_in_order_against_serve() {
    let blocks: Vec<_> = console_blocks()
        .into_iter()
        .filter(|(b, _)| is_http_page(b))
        .collect();
    assert!(blocks.len() >= 3, "only {} console blocks", blocks.len());
    let dir = scratch("http");
    let server = Server::start(&dir.join("data"));
    let env = [("TIMELINE_GOLEM_URL", server.url.clone())];
    check_console(&blocks, &dir, &env);
    server.stop();
}

#[test]
fn sh_blocks_run_or_are_run_elsewhere() {
    let dir = scratch("sh");
    let server = Server::start(&dir.join("data"));
    let address = server.url.trim_start_matches("http://").to_string();
    let env = [("TIMELINE_GOLEM_URL", server.url.clone())];
    let mut ran = 0;
    let mut failures = Vec::new();
    for block in doc_blocks::all_blocks() {
        if block.lang != "sh" || is_kafka_walk_through(&block) {
            continue;
        }
        for command in doc_blocks::commands(&block) {
            // `target/release/timeline`: the binary these tests built.
            let text = command.joined();
            let text = text.strip_prefix("target/release/").unwrap_or(&text);
            let at = format!("{}:{}", block.file, command.line);
            if let Some(rest) = text.strip_prefix("timeline ") {
                if rest.starts_with("serve") {
                    continue; // the test's own server stands in for it
                }
                let text = text
                    .replace("localhost:9881", &address)
                    .replace("127.0.0.1:9881", &address);
                let (ok, printed) = run(&text, &dir, &env);
                ran += 1;
                if !ok {
                    failures.push(format!("{at}: {text}\n{printed}"));
                }
            } else if !is_assignment(text)
                && !RUN_ELSEWHERE.iter().any(|(p, _)| text.starts_with(p))
            {
                failures.push(format!(
                    "{at}: `{text}` is run by no test: run it here, or say in RUN_ELSEWHERE who does"
                ));
            }
        }
    }
    server.stop();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran >= 8, "only {ran} timeline commands in sh blocks");
}

/// The walk-through of the Kafka page: its first `sh` block.
fn is_kafka_walk_through(block: &Block) -> bool {
    block.file.ends_with("docs/src/kafka.md")
        && doc_blocks::blocks(&repo().join(&block.file))
            .into_iter()
            .find(|b| b.lang == "sh")
            .is_some_and(|first| first.line == block.line)
}

#[test]
fn the_kafka_walk_through_runs_as_written() {
    let block = doc_blocks::all_blocks()
        .into_iter()
        .find(is_kafka_walk_through)
        .expect("docs/src/kafka.md has a sh block");
    let dir = scratch("kafka");
    let (kafka, golem) = (common::free_port(), common::free_port());
    // The lines as written, on free ports instead of 9092 and 9881; a line that starts a
    // server in the background writes its output to a file, and the next line waits until the
    // server listens (a user types slower than bash).
    let mut script = vec![
        "set -euo pipefail".to_string(),
        "trap 'kill $(jobs -p) 2>/dev/null' EXIT".to_string(),
        "listens() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.05; done; echo \"nothing listens on $1\" >&2; exit 1; }".to_string(),
    ];
    let commands = doc_blocks::commands(&block);
    let last = commands.len() - 1;
    for (i, command) in commands.iter().enumerate() {
        let mut line = command
            .joined()
            .replace("127.0.0.1:9092", &format!("127.0.0.1:{kafka}"));
        let mut port = kafka;
        if let Some(rest) = line.strip_prefix("timeline serve ") {
            line = format!("timeline serve --addr 127.0.0.1:{golem} {rest}");
            port = golem;
        }
        if let Some(foreground) = line.strip_suffix('&') {
            script.push(format!("{foreground} > background-{i}.log 2>&1 &"));
            script.push(format!("listens {port}"));
        } else if i == last {
            script.push(format!("{line} > answers.txt"));
        } else {
            script.push(line);
        }
    }
    // The built `timeline`, and tansu from where TIMELINE_TANSU says, else from the PATH.
    let mut path = vec![Path::new(env!("CARGO_BIN_EXE_timeline"))
        .parent()
        .unwrap()
        .to_path_buf()];
    if let Some(tansu) = std::env::var_os("TIMELINE_TANSU") {
        path.extend(Path::new(&tansu).parent().map(Path::to_path_buf));
    }
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(path).unwrap().into_string().unwrap();
    let env = [
        ("TIMELINE_GOLEM_URL", format!("http://127.0.0.1:{golem}")),
        ("PATH", path),
    ];
    let (ok, printed) = run(&script.join("\n"), &dir, &env);
    assert!(ok, "{}\n--- printed:\n{printed}", script.join("\n"));
    let answers = std::fs::read_to_string(dir.join("answers.txt")).unwrap();
    let want = common::eval_at(
        &repo().join("examples/cirr.tl"),
        &repo().join("examples/player.csv"),
        "sessionId",
        "100",
    );
    assert_eq!(answers, want);
}

#[test]
fn links_point_to_what_exists() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in doc_blocks::documents() {
        for (line, target) in doc_blocks::relative_links(&doc) {
            checked += 1;
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            let at = format!("{}:{line}", doc.display());
            if !path.exists() {
                broken.push(format!("{at}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                if path.extension().is_some_and(|e| e == "md")
                    && !doc_blocks::anchors(&path).iter().any(|a| a == anchor)
                {
                    broken.push(format!("{at}: {target}: no heading #{anchor}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked >= 20, "only {checked} links");
}

#[test]
fn every_page_is_in_the_summary() {
    let summary = std::fs::read_to_string(doc_blocks::page("SUMMARY.md")).unwrap();
    for doc in doc_blocks::documents().iter().skip(1) {
        let name = doc.file_name().unwrap().to_str().unwrap();
        if name != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({name})")),
                "{name} is not in SUMMARY.md"
            );
        }
    }
}

#[test]
fn the_readme_fits_a_screen_and_no_page_tells_the_projects_history() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines <= 300, "README.md has {lines} lines (at most 300)");
    for doc in doc_blocks::documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (i, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            for word in ["th session", "this session", "earlier results", "(later)"] {
                assert!(
                    !lower.contains(word),
                    "{}:{}: tells how the project came to be: {line}",
                    doc.display(),
                    i + 1
                );
            }
        }
    }
}
