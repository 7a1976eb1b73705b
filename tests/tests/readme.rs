//! The README's deployment guide uses only golem-cli 1.1 subcommands and flags that exist
//! (tests/golem-cli/commands-1.1.txt), and none of the forms that broke on a real server.

use std::collections::BTreeMap;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Subcommand -> flags, from the list kept beside the tests.
fn known() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(repo().join("tests/golem-cli/commands-1.1.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (cmd, flags) = l.split_once(':').expect("subcommand: flags");
            (
                cmd.trim().to_string(),
                flags.split_whitespace().map(String::from).collect(),
            )
        })
        .collect()
}

/// Every `golem-cli …` call in the README's code blocks, continuation lines joined.
fn calls(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        // A shell comment is prose, not a call.
        let line = line.split(" #").next().unwrap_or("").trim();
        if line.starts_with('#') {
            continue;
        }
        let joined = if pending.is_empty() {
            line.to_string()
        } else {
            format!("{pending} {line}")
        };
        if let Some(head) = joined.strip_suffix('\\') {
            pending = head.trim().to_string();
            continue;
        }
        pending.clear();
        if let Some(at) = joined.find("golem-cli ") {
            out.push(joined[at..].to_string());
        }
    }
    out
}

/// Checks one call; returns what is wrong with it.
fn check(call: &str, known: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
    let words: Vec<&str> = call.split_whitespace().collect();
    let mut i = 1;
    // Global flags come first, with their values.
    while i < words.len() && words[i].starts_with('-') {
        if !known["global"].iter().any(|f| f == words[i]) {
            return Err(format!("unknown global flag {}", words[i]));
        }
        i += 2;
    }
    let (group, sub) = (
        words.get(i).copied().unwrap_or(""),
        words.get(i + 1).copied().unwrap_or(""),
    );
    let command = format!("{group} {sub}");
    let flags = known
        .get(&command)
        .ok_or_else(|| format!("`golem-cli {command}` does not exist in golem-cli 1.1"))?;
    for w in &words[i + 2..] {
        if w.starts_with('-') {
            let flag = w.split('=').next().unwrap();
            if !flags.iter().any(|f| f == flag) {
                return Err(format!("`golem-cli {command}` has no flag {flag}"));
            }
        }
    }
    if call.contains("--arg") && call.contains("some(") {
        return Err("WAVE `some(…)` arguments are broken in golem-cli 1.1.16".into());
    }
    Ok(())
}

#[test]
fn the_readme_uses_only_golem_cli_1_1_commands_and_flags() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let known = known();
    let calls = calls(&readme);
    assert!(calls.len() >= 8, "found only {calls:?}");
    for call in &calls {
        if let Err(why) = check(call, &known) {
            panic!("README: {call}\n  {why}");
        }
    }
}

#[test]
fn the_check_catches_what_broke_before() {
    let known = known();
    for bad in [
        "golem-cli app deploy",
        "golem-cli worker invoke-and-await --component-name d --worker-name w --function f --arg 'some(string-value(\"s1\"))'",
        "golem-cli component add --frobnicate",
    ] {
        assert!(check(bad, &known).is_err(), "{bad}");
    }
    assert!(check("golem-cli -F json component list", &known).is_ok());
}
