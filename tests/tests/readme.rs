//! The README and the deployment guide use only golem-cli 1.1 subcommands and flags that exist
//! (tests/golem-cli/commands-1.1.txt), and none of the forms that broke on a real server.

use std::collections::BTreeMap;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// One flag of a command: its spellings (`-j`, `--parameters`) and whether a value follows it.
struct Flag {
    names: Vec<String>,
    takes_value: bool,
}

/// What a command (`worker add`, or a group such as `app`) accepts.
#[derive(Default)]
struct Command {
    flags: Vec<Flag>,
    positional: bool,
}

impl Command {
    fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags
            .iter()
            .find(|f| f.names.iter().any(|n| n == name))
    }
}

/// Command -> what it accepts, from the list kept beside the tests.
fn known() -> BTreeMap<String, Command> {
    let text = std::fs::read_to_string(repo().join("tests/golem-cli/commands-1.1.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, spec) = l.split_once(':').expect("command: flags");
            let mut command = Command::default();
            for word in spec.split_whitespace() {
                if word.starts_with('<') {
                    command.positional = true;
                    continue;
                }
                let (names, value) = match word.split_once('=') {
                    Some((names, _)) => (names, true),
                    None => (word, false),
                };
                command.flags.push(Flag {
                    names: names.split('|').map(String::from).collect(),
                    takes_value: value,
                });
            }
            (name.trim().to_string(), command)
        })
        .collect()
}

/// Every `golem-cli …` call in the code blocks of the README and the guide, continuation lines
/// joined, with where it is.
fn calls() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in doc_blocks::all_blocks() {
        for command in doc_blocks::commands(&block) {
            let joined = command.joined().replace('\n', " ");
            if let Some(at) = joined.find("golem-cli ") {
                out.push((
                    format!("{}:{}", block.file, command.line),
                    joined[at..].to_string(),
                ));
            }
        }
    }
    out
}

/// Splits a call into the words the shell passes on: quotes group, and are not part of a word.
/// A call ends at a shell operator (`|`, `;`, `&&`, `)`) outside quotes.
fn words(call: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in call.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, '|' | ';' | '&' | ')') => break,
            (None, c) if c.is_whitespace() => {
                if started || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (None, c) => word.push(c),
        }
    }
    if started || !word.is_empty() {
        words.push(word);
    }
    words
}

/// Reads the flags and positionals at `words[i..]` up to the next bare word that names a
/// subcommand (`stop_at_subcommand`), checking each against `command` and the global flags.
/// Returns where it stopped.
fn read_args(
    words: &[String],
    mut i: usize,
    what: &str,
    command: Option<&Command>,
    global: &Command,
    stop_at_subcommand: bool,
) -> Result<usize, String> {
    while i < words.len() {
        let word = &words[i];
        if !word.starts_with('-') {
            if stop_at_subcommand {
                return Ok(i);
            }
            if !command.is_some_and(|c| c.positional) {
                return Err(format!("`{what}` takes no argument {word}"));
            }
            i += 1;
            continue;
        }
        // `--name=value`; `-xvalue` or `-x=value` for a one-letter flag.
        let (name, inline_value) = match word.split_once('=') {
            Some((name, _)) if name.starts_with("--") => (name, true),
            _ if !word.starts_with("--") && word.chars().count() > 2 => {
                let end = word.char_indices().nth(2).map_or(word.len(), |(at, _)| at);
                (&word[..end], true)
            }
            _ => (word.as_str(), false),
        };
        let flag = command
            .and_then(|c| c.flag(name))
            .or_else(|| global.flag(name))
            .ok_or_else(|| format!("`{what}` has no flag {name}"))?;
        i += 1;
        if flag.takes_value && !inline_value {
            if i >= words.len() {
                return Err(format!("`{what}`: {name} needs a value"));
            }
            i += 1;
        } else if !flag.takes_value && inline_value {
            return Err(format!("`{what}`: {name} takes no value"));
        }
    }
    Ok(i)
}

/// Checks one call; returns what is wrong with it.
fn check(call: &str, known: &BTreeMap<String, Command>) -> Result<(), String> {
    let words = words(call);
    let global = &known["global"];
    let at_group = read_args(&words, 1, "golem-cli", None, global, true)?;
    let group = words.get(at_group).cloned().unwrap_or_default();
    // A group's own flags (`golem-cli app -a golem.yaml build`) come before its subcommand.
    let at_sub = read_args(
        &words,
        at_group + 1,
        &format!("golem-cli {group}"),
        known.get(&group),
        global,
        true,
    )?;
    let name = format!("{group} {}", words.get(at_sub).cloned().unwrap_or_default());
    let command = known
        .get(&name)
        .ok_or_else(|| format!("`golem-cli {name}` does not exist in golem-cli 1.1"))?;
    read_args(
        &words,
        at_sub + 1,
        &format!("golem-cli {name}"),
        Some(command),
        global,
        false,
    )?;
    if words.iter().any(|w| w.starts_with("some(")) {
        return Err("WAVE `some(…)` arguments are broken in golem-cli 1.1.16".into());
    }
    Ok(())
}

#[test]
fn the_docs_use_only_golem_cli_1_1_commands_and_flags() {
    let known = known();
    let calls = calls();
    assert!(calls.len() >= 8, "found only {calls:?}");
    for (at, call) in &calls {
        if let Err(why) = check(call, &known) {
            panic!("{at}: {call}\n  {why}");
        }
    }
}

#[test]
fn the_check_catches_what_broke_before() {
    let known = known();
    for (bad, why) in [
        ("golem-cli app deploy", "does not exist"),
        (
            "golem-cli worker invoke-and-await --component-name d --worker-name w --function f --arg 'some(string-value(\"s1\"))'",
            "WAVE",
        ),
        ("golem-cli component add --frobnicate", "no flag --frobnicate"),
        // `-a` belongs to `app`, before `build`.
        ("golem-cli app build -a golem.yaml", "no flag -a"),
        // `-j`'s long form is `--parameters`.
        ("golem-cli worker invoke-and-await -c d -w w -f f --json '[]'", "no flag --json"),
        ("golem-cli worker invoke-and-await -c d -w w -f f -j", "needs a value"),
        ("golem-cli worker delete -c d -w w extra", "takes no argument"),
        ("golem-cli component update -c d --non-interactive=true", "takes no value"),
    ] {
        match check(bad, &known) {
            Ok(()) => panic!("accepted: {bad}"),
            Err(e) => assert!(e.contains(why), "{bad}: {e}"),
        }
    }
    for good in [
        "golem-cli -F json component list",
        "golem-cli app -a golem.yaml build",
        "golem-cli component list -F json",
        "golem-cli worker add -c timeline:driver -w d --env K=V arg1",
        "golem-cli worker invoke-and-await -c d -w \"$W\" --function='a.{b}' -j '[\"x\", null]' | head",
    ] {
        assert_eq!(check(good, &known), Ok(()), "{good}");
    }
    assert_eq!(
        words(r#"golem-cli x -j '["a b", null]' "$W" && echo"#),
        ["golem-cli", "x", "-j", r#"["a b", null]"#, "$W"]
    );
}

/// `scripts/golem-ids` (the README's `eval "$(scripts/golem-ids)"`) reads the ids from what
/// golem-cli 1.1.16 prints for `-F json component list`: its `ComponentView`s, pretty-printed,
/// one per component version, ids as `urn:component:<uuid>`.
#[test]
fn golem_ids_reads_the_component_list_of_golem_cli_1_1() {
    let dir = std::env::temp_dir().join(format!("golem-ids-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let view = |uuid: &str, version: u64, name: &str| {
        format!(
            r#"  {{
    "componentUrn": "urn:component:{uuid}",
    "componentVersion": {version},
    "componentName": "{name}",
    "componentSize": 812345,
    "createdAt": "2026-11-20T10:00:00Z",
    "exports": ["{name}/api.{{run}}(query: query, options: job-options) -> result<plan, string>"],
    "dynamicLinking": {{"timeline:core-client/core-client": {{"api": "timeline:core"}}}}
  }}"#
        )
    };
    let ids = [
        ("timeline:driver", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"),
        ("timeline:core", "11111111-2222-4333-8444-555555555555"),
        (
            "timeline:event-processor",
            "66666666-7777-4888-9999-aaaaaaaaaaaa",
        ),
        (
            "timeline:timeline-processor",
            "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff",
        ),
    ];
    let mut views = vec![view("99999999-9999-4999-8999-999999999999", 0, "other:app")];
    for (name, uuid) in ids {
        views.push(view(uuid, 0, name));
    }
    views.push(view(ids[0].1, 1, ids[0].0));
    let list = format!("[\n{}\n]", views.join(",\n"));
    let run = |list: &str| {
        let fake = dir.join("golem-cli");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\n[ \"$*\" = \"-F json component list\" ] || {{ echo \"unexpected: $*\" >&2; exit 2; }}\ncat <<'JSON'\n{list}\nJSON\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
        std::process::Command::new("bash")
            .arg(repo().join("scripts/golem-ids"))
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let out = run(&list);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let expected: Vec<String> = [
        ("CORE_ID", ids[1].1),
        ("DRIVER_ID", ids[0].1),
        ("EVENT_PROCESSOR_ID", ids[2].1),
        ("TIMELINE_PROCESSOR_ID", ids[3].1),
    ]
    .iter()
    .map(|(var, uuid)| format!("export {var}={uuid}"))
    .collect();
    assert_eq!(printed.lines().collect::<Vec<_>>(), expected);
    // A component not deployed yet is named, with the command that deploys it.
    let without_core: Vec<&String> = views.iter().filter(|v| !v.contains(ids[1].1)).collect();
    let list = format!(
        "[\n{}\n]",
        without_core
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(",\n")
    );
    let out = run(&list);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not deployed: timeline:core"), "{said}");
    assert!(
        said.contains("golem-cli component add -a golem.yaml"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
