//! `timeline serve` answers as a Golem 1.1.16 server does: the requests of
//! `golem_conformance.json`, with the answers the real server gave written down beside them, are
//! sent in order to a fresh `serve` (with curl, as a user sends them), and every status, body
//! and content type must be what Golem answered.

mod common;

use common::Server;
use serde_json::Value as Json;
use std::process::Command;

/// The answer to one request: status, content type and body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// Sends one step's request with curl: a JSON body as `Content-Type: application/json` unless
/// the step's headers say otherwise (a header given as "" is left out).
fn send(base: &str, step: &Json) -> Answer {
    let method = step["method"].as_str().unwrap();
    let path = step["path"].as_str().unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-X", method])
        .args(["-w", "\n%{http_code}\n%{content_type}"]);
    let mut headers = serde_json::Map::new();
    if !step["body"].is_null() {
        headers.insert("Content-Type".into(), "application/json".into());
    }
    if let Some(given) = step["headers"].as_object() {
        headers.extend(given.clone());
    }
    for (name, value) in &headers {
        // `Name:` with nothing after it makes curl leave the header out.
        cmd.args(["-H", &format!("{name}: {}", value.as_str().unwrap())]);
    }
    match &step["body"] {
        Json::Null => {}
        Json::String(text) => {
            cmd.args(["--data-binary", text]);
        }
        body => {
            cmd.args(["--data-binary", &body.to_string()]);
        }
    }
    let out = cmd
        .arg(format!("{base}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.rsplitn(3, '\n');
    let content_type = parts.next().unwrap_or("").to_string();
    let status = parts.next().unwrap_or("0").parse().unwrap_or(0);
    let body = parts.next().unwrap_or("").to_string();
    Answer {
        status,
        content_type,
        body,
    }
}

/// What does not match in `answer`, against `expect`.
fn mismatches(expect: &Json, answer: &Answer) -> Vec<String> {
    let mut out = Vec::new();
    let status = expect["status"].as_u64().unwrap() as u16;
    if answer.status != status {
        out.push(format!("status {} (Golem: {status})", answer.status));
    }
    if let Some(ct) = expect["content_type"].as_str() {
        if !answer.content_type.starts_with(ct) {
            out.push(format!(
                "content type {:?} (Golem: {ct})",
                answer.content_type
            ));
        }
    }
    if let Some(text) = expect["contains"].as_str() {
        if !answer.body.contains(text) {
            out.push(format!("no {text:?} in the body"));
        }
    }
    if let Some(pointers) = expect["pointer"].as_object() {
        match serde_json::from_str::<Json>(&answer.body) {
            Err(_) => out.push("the body is not JSON".into()),
            Ok(body) => {
                for (pointer, want) in pointers {
                    let got = body.pointer(pointer);
                    let ok = match want.as_str() {
                        Some("*") => got.is_some(),
                        Some("absent") => got.is_none(),
                        _ => got == Some(want),
                    };
                    if !ok {
                        out.push(format!("{pointer} is {got:?} (Golem: {want})"));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn serve_answers_as_golem_1_1_16() {
    let data = std::env::temp_dir().join(format!("golem-conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(&data);
    let ids = [
        ("{driver}", golem_emulator::component_id("driver")),
        ("{core}", golem_emulator::component_id("core")),
        (
            "{event_processor}",
            golem_emulator::component_id("event-processor"),
        ),
        (
            "{timeline_processor}",
            golem_emulator::component_id("timeline-processor"),
        ),
        (
            "{unknown}",
            "00000000-0000-4000-8000-000000000000".to_string(),
        ),
    ];
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golem_conformance.json"
    ))
    .unwrap();
    for (name, id) in &ids {
        text = text.replace(name, id);
    }
    let suite: Json = serde_json::from_str(&text).unwrap();
    let cases = suite["cases"].as_array().unwrap();
    assert!(cases.len() >= 15, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let answer = send(&server.url, step);
            let wrong = mismatches(&step["expect"], &answer);
            if !wrong.is_empty() {
                failures.push(format!(
                    "{} (step {}: {} {}): {}\n  answered {} {}",
                    case["name"].as_str().unwrap(),
                    i + 1,
                    step["method"].as_str().unwrap(),
                    step["path"].as_str().unwrap(),
                    wrong.join("; "),
                    answer.status,
                    answer.body.chars().take(400).collect::<String>()
                ));
            }
        }
    }
    server.stop();
    let _ = std::fs::remove_dir_all(&data);
    assert!(
        failures.is_empty(),
        "serve differs from Golem 1.1.16:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_difference_is_caught() {
    let answer = Answer {
        status: 404,
        content_type: "application/json".into(),
        body: r#"{"golemError":{"type":"Other"}}"#.into(),
    };
    let expect = serde_json::json!({"status": 500, "content_type": "text/plain",
        "pointer": {"/golemError/type": "RuntimeError", "/x": "*"}, "contains": "nothing"});
    assert_eq!(mismatches(&expect, &answer).len(), 5);
}
