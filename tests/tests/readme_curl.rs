//! The deployment guide's `curl` calls (docs/src/deploying.md), run as written against the components on the emulated Golem: each
//! parameter's `typ` must be the function's parameter type exactly (as Golem 1.1 checks), each
//! value must fit it, and every call must succeed.

use golem_emulator::{component_id, golem_json, TimelineSystem, WorkerId};
use serde_json::{json, Value as Json};
use std::collections::HashMap;

/// Splits shell text into words: single quotes literal, double quotes and bare words with
/// `$NAME` expanded from `vars`.
fn words(text: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    let expand = |chars: &mut std::iter::Peekable<std::str::Chars>, w: &mut String| {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        w.push_str(vars.get(&name).map_or(&format!("${name}"), |v| v));
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '$' => expand(&mut chars, w),
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '$' => expand(&mut chars, word.get_or_insert_with(String::new)),
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            c if c.is_whitespace() => out.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(word);
    out
}

/// A `curl` call: which worker (`G`: the driver; `W`, `M`: the workers the guide's `locate`
/// calls named), the function, the body, and the variable its answer's worker name goes to
/// (`NAME=$(curl … | sed …)`).
struct Call {
    target: String,
    function: String,
    body: Json,
    assign: Option<String>,
}

fn calls() -> Vec<Call> {
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    let commands = doc_blocks::blocks(&doc_blocks::page("deploying.md"))
        .into_iter()
        .filter(|b| b.lang == "sh")
        .flat_map(|b| doc_blocks::commands(&b));
    for command in commands {
        let mut trimmed = command.text.trim();
        let mut assign = None;
        if let Some((name, _)) = trimmed.split_once("=$(curl ") {
            // `NAME=$(curl … | sed …)`: the call, its answer's worker name kept as NAME.
            let call = &trimmed[name.len() + "=$(".len()..];
            trimmed = call[..call.rfind(" | sed ").expect("NAME=$(curl … | sed …)")].trim();
            assign = Some(name.to_string());
        } else if let Some((name, value)) = trimmed.split_once('=') {
            if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !name.is_empty() {
                let value = words(value, &vars).join(" ");
                vars.insert(name.to_string(), value);
                continue;
            }
        }
        if !trimmed.starts_with("curl ") {
            continue;
        }
        let raw_url = trimmed
            .split_whitespace()
            .find(|w| w.contains("?function="))
            .unwrap();
        let target = raw_url
            .trim_matches('"')
            .trim_start_matches('$')
            .split('?')
            .next()
            .unwrap();
        let w = words(trimmed, &vars);
        let url = w.iter().find(|x| x.contains("?function=")).unwrap();
        let function = url
            .split("?function=")
            .nth(1)
            .unwrap()
            .replace("%7B", "{")
            .replace("%7D", "}");
        let body = &w[w.iter().position(|x| x == "-d").expect("a -d body") + 1];
        let body: Json = serde_json::from_str(body).unwrap_or_else(|e| {
            panic!("deploying.md: the body of {function} is not JSON ({e}):\n{body}")
        });
        out.push(Call {
            target: target.to_string(),
            function,
            body,
            assign,
        });
    }
    out
}

/// `body` with every string that is a `$NAME` of `names` replaced by its value.
fn substitute(body: &Json, names: &HashMap<String, String>) -> Json {
    match body {
        Json::String(s) => Json::String(names.get(s).cloned().unwrap_or_else(|| s.clone())),
        Json::Array(xs) => Json::Array(xs.iter().map(|x| substitute(x, names)).collect()),
        Json::Object(o) => Json::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), substitute(v, names)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn the_deployment_guide_curl_calls_run_as_written() {
    let calls = calls();
    let functions: Vec<&str> = calls.iter().map(|c| c.function.as_str()).collect();
    for f in [
        "run",
        "ingest",
        "ingest-packed",
        "locate",
        "reader",
        "get-result",
        "get-range",
        "aggregate-at",
        "aggregate-range",
    ] {
        assert!(
            functions.iter().any(|x| x.ends_with(&format!("{{{f}}}"))),
            "no {f} call in {functions:?}"
        );
    }
    let dir = std::env::temp_dir().join(format!("readme-curl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sys = TimelineSystem::start(&golem_emulator::components_dir(), &dir).unwrap();
    // The workers the `locate` calls named, by variable.
    let mut located: HashMap<String, WorkerId> = HashMap::new();
    let mut answers: HashMap<String, Json> = HashMap::new();
    for call in &calls {
        let (worker, component) = match call.target.as_str() {
            "G" => (sys.driver.clone(), "driver"),
            var @ ("W" | "M") => {
                let name = if var == "W" { "READER" } else { "MERGE_READER" };
                let worker = located
                    .get(name)
                    .unwrap_or_else(|| {
                        panic!("deploying.md: ${var} is used before ${name} is located")
                    })
                    .clone();
                (worker, "timeline-processor")
            }
            other => panic!("deploying.md: unknown curl target ${other}"),
        };
        let types = sys
            .golem
            .exported_functions(component)
            .into_iter()
            .find(|(name, _)| *name == call.function)
            .unwrap_or_else(|| {
                panic!(
                    "deploying.md calls {} which {component} does not export",
                    call.function
                )
            })
            .1;
        // The workers named earlier in the guide's own calls, and the component ids of setup.
        let mut names: HashMap<String, String> = located
            .iter()
            .map(|(var, w)| (format!("${var}"), w.worker_name.clone()))
            .collect();
        names.insert(
            "$TIMELINE_PROCESSOR_ID".into(),
            component_id("timeline-processor"),
        );
        let body = substitute(&call.body, &names);
        let params = golem_json::params(&body, &types)
            .unwrap_or_else(|e| panic!("deploying.md: {}: {e:#}", call.function));
        let out = sys.golem.invoke(&worker, &call.function, &params).unwrap();
        let out = golem_json::from_val(&out[0]);
        assert!(
            out.get("err").is_none(),
            "deploying.md: {} answered {out}",
            call.function
        );
        if let Some(name) = &call.assign {
            let worker = &out["ok"];
            assert_eq!(worker["interface"], "timeline:timeline-processor/api");
            located.insert(
                name.clone(),
                WorkerId {
                    component_id: component_id("timeline-processor"),
                    worker_name: worker["worker-name"].as_str().unwrap().to_string(),
                },
            );
        }
        answers.insert(call.function.clone(), out);
    }
    // What the guide says the aggregate calls give back.
    assert_eq!(
        answers["timeline:timeline-processor/api.{aggregate-at}"],
        json!({"ok": [{"group": {"string-value": "CDN1"}, "at": 10, "members": 1, "values": [
            {"function": "count", "value": {"int": 1}},
            {"function": "sum", "value": {"int": 1}}]}]})
    );
    let segments = answers["timeline:timeline-processor/api.{aggregate-range}"]["ok"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        segments.contains(&json!({"group": {"string-value": "CDN1"}, "function": "sum", "from": 6, "to": 60, "value": {"int": 1}, "slope": {"int": 0}})),
        "{segments:?}"
    );
    // The CIRR job's s1 at 100, and over [0, 60): the one buffering event sent (at 6) never
    // ends, and nothing was played, as the guide says.
    assert_eq!(
        answers["timeline:timeline-processor/api.{get-result}"],
        json!({"ok": {"duration": [0, 0]}})
    );
    assert_eq!(
        answers["timeline:timeline-processor/api.{get-range}"]["ok"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{}",
        answers["timeline:timeline-processor/api.{get-range}"]
    );
    // The located workers are the plans' result workers: the CIRR job's, the merge worker.
    let plans = sys.jobs().unwrap();
    for (var, job) in [("READER", "cirr"), ("MERGE_READER", "buffering")] {
        let plan = plans.iter().find(|p| p.job_name == job).unwrap();
        assert_eq!(
            located[var].worker_name,
            timeline::readers::reader_name(&plan.result().workers[0].worker_name, 0),
            "{var}"
        );
    }
    for (var, job) in [("RESULT_WORKER", "cirr"), ("MERGE_WORKER", "buffering")] {
        let plan = plans.iter().find(|p| p.job_name == job).unwrap();
        assert_eq!(located[var], plan.result().workers[0], "{var}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
