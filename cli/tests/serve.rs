//! `timeline serve` over real HTTP: the deployment guide's `curl` calls, extracted from the guide
//! itself (docs/src/deploying.md) and run by bash and curl as a user would (against a free loopback
//! port instead of 9881), then a restart of the server with the results surviving, and Golem 1.1's
//! errors.

mod common;

use common::{eval_cirr, stdout, timeline, timeline_with_env, Server};
use std::process::Command;

/// `curl` with a bounded time and a JSON body (as Golem's invocations require); returns the
/// HTTP status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: application/json"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap_or(0), body.to_string())
}

/// Calls `invoke` (a driver's `jobs`, which takes no parameter) with one parameter, which on
/// Golem 1.1 fails the worker for good.
fn fail_for_good(invoke: &str) {
    let mistyped = r#"{"params":[{"typ":{"type":"U64"},"value":1}]}"#;
    let (status, body) = curl(&["-X", "POST", invoke, "-d", mistyped]);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("RuntimeError"), "{body}");
    assert!(body.contains("Parameter type mismatch"), "{body}");
}

/// `timeline golem --url URL ARGS…` with the plan cache `cache` (empty: none); its output.
fn golem_client(url: &str, cache: &str, args: &[&str]) -> String {
    let mut all = vec!["golem", "--url", url];
    all.extend_from_slice(args);
    stdout(&timeline_with_env(
        &all,
        None,
        &[("TIMELINE_GOLEM_CACHE", cache)],
    ))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The shell commands of the deployment guide that talk HTTP (variables and `curl`), leaving
/// out what needs golem-cli or the build.
fn readme_http_script() -> String {
    let mut script = String::new();
    for block in doc_blocks::blocks(&doc_blocks::page("deploying.md")) {
        if block.lang != "sh" {
            continue;
        }
        for command in doc_blocks::commands(&block) {
            let first = command.text.trim_start();
            let skip = ["golem-cli", "scripts/", "eval ", "timeline "]
                .iter()
                .any(|p| first.starts_with(p));
            if !skip {
                script.push_str(&command.text);
            }
        }
    }
    script
}

#[test]
fn the_readme_http_calls_work_against_serve_and_survive_a_restart() {
    let data = std::env::temp_dir().join(format!("timeline-serve-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(&data);
    // What `scripts/golem-ids` gives from golem-cli: the components' ids, by name.
    let (status, body) = curl(&[&format!("{}/v1/components", server.url)]);
    assert_eq!(status, 200, "{body}");
    let id = |name: &str| -> String {
        json(&body)
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["componentName"] == format!("timeline:{name}"))
            .unwrap_or_else(|| panic!("no {name} in {body}"))["versionedComponentId"]["componentId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (driver, core, events, timelines) = (
        id("driver"),
        id("core"),
        id("event-processor"),
        id("timeline-processor"),
    );
    // `golem-cli worker add … --env …`, over HTTP.
    let create = format!(
        r#"{{"name":"timeline-driver","args":[],"env":{{"CORE_COMPONENT_ID":"{core}","EVENT_PROCESSOR_COMPONENT_ID":"{events}","TIMELINE_PROCESSOR_COMPONENT_ID":"{timelines}"}}}}"#
    );
    let (status, body) = curl(&[
        "-X",
        "POST",
        &format!("{}/v1/components/{driver}/workers", server.url),
        "-H",
        "Content-Type: application/json",
        "-d",
        &create,
    ]);
    assert_eq!(status, 200, "{body}");
    // `$RESULT_WORKER`: the CIRR job's result worker, named deterministically.
    let cirr: timeline::TimeLineOp = timeline::parse_query(
        r#"duration_where(has_existed(playerStateChange == "play") && !has_existed_within(userAction == "seek", 5) && latest_event_to_state(playerStateChange) == "buffer" && latest_event_to_state(cdnChange) == "CDN1")"#,
    )
    .unwrap();
    let plan = timeline::Plan::new(&cirr);
    let scope = timeline::Scope {
        key_column: Some("sessionId".into()),
        retention: None,
        shards: 1,
    };
    let result_worker = plan.nodes[plan.root()].worker_name(&scope, 0);
    // The README's calls, as written, through a `curl` that points localhost:9881 at this server,
    // prints the answer as curl does (`RESULT_WORKER=$(curl …)` reads it), and fails the script
    // on any status but 200 or any `err` in the answer.
    let log = data.join("answers.log");
    let wrapper = format!(
        r#"set -euo pipefail
DRIVER_ID={driver}; TIMELINE_PROCESSOR_ID={timelines}
curl() {{
  local args=() a
  for a in "$@"; do args+=("${{a//http:\/\/localhost:9881/{base}}}"); done
  local out code body
  out=$(command curl -sS --max-time 60 -w '\n%{{http_code}}' "${{args[@]}}")
  code=${{out##*$'\n'}}; body=${{out%$'\n'*}}
  printf '%s\n' "$body" >> {log}
  if [ "$code" != 200 ]; then echo "HTTP $code: $body" >&2; exit 1; fi
  case "$body" in *'"value":[{{"err"'*) echo "error answer: $body" >&2; exit 1;; esac
  printf '%s\n' "$body"
}}
"#,
        base = server.url.replace('/', "\\/"),
        log = log.display(),
    );
    let script = wrapper + &readme_http_script();
    // `curl …`, and `NAME=$(curl … | sed …)` (a worker's name from `locate`).
    let calls = script.matches("\ncurl ").count() + script.matches("=$(curl ").count();
    assert!(
        calls >= 9,
        "the guide's curl calls were not found:\n{script}"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the guide's calls failed: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(json)
        .collect();
    assert_eq!(answers.len(), calls, "one answer per call");
    // The README's `locate` of session s1 named the CIRR job's result worker.
    assert!(
        answers
            .iter()
            .any(|a| a["result"]["value"][0]["ok"]["worker-name"] == result_worker.as_str()),
        "no locate answer named {result_worker}"
    );
    // The aggregate job's rows, as the guide shows them.
    let rows = answers
        .iter()
        .find(|a| a["result"]["value"][0]["ok"][0]["values"].is_array())
        .expect("the aggregate-at answer");
    assert_eq!(
        rows["result"]["value"][0]["ok"][0],
        json(
            r#"{"group":{"string-value":"CDN1"},"at":10,"members":1,"values":[{"function":"count","value":{"int":1}},{"function":"sum","value":{"int":1}}]}"#
        )
    );
    // The client, over the example sessions: answers equal `timeline eval`'s. Its plan cache
    // is the test's own.
    let cache = data.join("plan-cache");
    let cache = cache.to_str().unwrap();
    let golem_with = |cache: &str, args: &[&str]| golem_client(&server.url, cache, args);
    let golem = |args: &[&str]| golem_with(cache, args);
    golem(&["setup"]);
    golem(&[
        "run",
        "--job",
        "client-cirr",
        "--query-file",
        "examples/cirr.tl",
        "--key",
        "sessionId",
        "--shards",
        "2",
    ]);
    golem(&[
        "run",
        "--job",
        "client-by-cdn",
        "--query-file",
        "examples/cirr-by-cdn.tl",
        "--key",
        "sessionId",
        "--shards",
        "2",
    ]);
    // The same sessions from CSV and from Parquet.
    for (job, events) in [
        ("client-cirr", "examples/player.csv"),
        ("client-by-cdn", "examples/player.parquet"),
    ] {
        golem(&["ingest", "--job", job, "--events", events, "--batch", "7"]);
    }
    let compare = |golem: &dyn Fn(&[&str]) -> String| {
        for key in ["s1", "s2"] {
            let asked = ["--at", "7", "--at", "30", "--at", "100", "--range", "0..60"];
            let mut client = vec!["result", "--job", "client-cirr", "--key", key];
            client.extend_from_slice(&asked);
            let want: String = stdout(&eval_cirr(&asked))
                .lines()
                .filter(|l| l.contains(&format!("\"key\":\"{key}\"")))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(golem(&client), want, "key {key}");
        }
        // Several keys at several times: each shard's worker answers its keys in one call.
        let points = ["--at", "7", "--at", "30", "--at", "100"];
        let mut client = vec![
            "result",
            "--job",
            "client-cirr",
            "--key",
            "s1",
            "--key",
            "s2",
        ];
        client.extend_from_slice(&points);
        assert_eq!(golem(&client), stdout(&eval_cirr(&points)), "two keys");
        let asked = ["--at", "10", "--at", "30", "--at", "55", "--range", "0..60"];
        let mut client = vec!["result", "--job", "client-by-cdn"];
        client.extend_from_slice(&asked);
        let mut eval = vec![
            "eval",
            "--query-file",
            "examples/cirr-by-cdn.tl",
            "--events",
            "examples/player.csv",
            "--key",
            "sessionId",
        ];
        eval.extend_from_slice(&asked);
        assert_eq!(
            golem(&client),
            stdout(&timeline(&eval, None)),
            "the aggregate"
        );
    };
    compare(&golem);
    // Reads leave the driver's log as it was: the plan comes from the cache, the answers from
    // the result workers. Without a cache, each read asks the driver for the plan.
    let driver_log = data.join(&driver).join("timeline-driver.jsonl");
    let driver_calls = || {
        std::fs::read_to_string(&driver_log)
            .unwrap()
            .lines()
            .count()
    };
    let before = driver_calls();
    let read = [
        "result",
        "--job",
        "client-cirr",
        "--key",
        "s2",
        "--at",
        "100",
    ];
    let answer = golem(&read);
    for _ in 0..3 {
        assert_eq!(golem(&read), answer);
    }
    assert_eq!(
        driver_calls(),
        before,
        "reads with a plan cache call the driver"
    );
    assert_eq!(golem_with("", &read), answer);
    assert_eq!(
        driver_calls(),
        before + 1,
        "a read without a cache asks the driver once"
    );
    // A cached plan whose workers do not know the job (a server wiped and set up again under
    // the same names) is asked of the driver again, and the answer is right.
    for entry in std::fs::read_dir(cache).unwrap() {
        let file = entry.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replace("\"worker-name\":\"tl-", "\"worker-name\":\"tl-stale-"),
        )
        .unwrap();
    }
    assert_eq!(golem(&read), answer);
    assert_eq!(driver_calls(), before + 2);
    assert_eq!(golem(&read), answer);
    assert_eq!(driver_calls(), before + 2, "the refreshed plan is cached");
    // A cache file that is not a plan (damaged, or written by something else) is asked again.
    for entry in std::fs::read_dir(cache).unwrap() {
        std::fs::write(entry.unwrap().path(), "{not json").unwrap();
    }
    assert_eq!(golem(&read), answer);
    assert_eq!(driver_calls(), before + 3);
    // Restart: every job and result survives, read with the guide's `get-result` call again.
    server.stop();
    let server = Server::start(&data);
    let golem = |args: &[&str]| golem_client(&server.url, cache, args);
    compare(&golem);
    let result_call = readme_http_script()
        .split("\ncurl ")
        .find(|c| c.contains("%7Bget-result%7D"))
        .map(|c| c.to_string())
        .expect("the guide's get-result call");
    let again = format!(
        "{}\nEV='{{\"type\":\"Variant\",\"cases\":[{{\"name\":\"string-value\",\"typ\":{{\"type\":\"Str\"}}}},{{\"name\":\"int-value\",\"typ\":{{\"type\":\"S64\"}}}},{{\"name\":\"float-value\",\"typ\":{{\"type\":\"F64\"}}}},{{\"name\":\"bool-value\",\"typ\":{{\"type\":\"Bool\"}}}}]}}'\nW={}/v1/components/{timelines}/workers/{result_worker}/invoke-and-await\ncurl {result_call}",
        "set -euo pipefail",
        server.url
    );
    let out = Command::new("bash").arg("-c").arg(&again).output().unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    let before = answers
        .iter()
        .find(|a| a["result"]["value"][0]["ok"]["duration"].is_array())
        .expect("the result answer before the restart");
    assert_eq!(json(&body), *before, "after a restart");
    // Golem 1.1's errors: a value that does not fit its own typ is a 400 and changes nothing; an
    // unknown component is a 404.
    let invoke = format!(
        "{}/v1/components/{driver}/workers/timeline-driver/invoke-and-await?function=timeline:driver/api.%7Bjobs%7D",
        server.url
    );
    let (status, body) = curl(&[
        "-X",
        "POST",
        &invoke,
        "-d",
        r#"{"params":[{"typ":{"type":"U64"},"value":"x"}]}"#,
    ]);
    assert_eq!(status, 400, "{body}");
    let (status, body) = curl(&["-X", "POST", &invoke, "-d", "not json"]);
    assert_eq!(status, 400, "{body}");
    let (status, body) = curl(&["-X", "POST", &invoke, "-d", r#"{"params":[]}"#]);
    assert_eq!(status, 200, "{body}");
    let (status, _) = curl(&[&format!("{}/v1/components/nope/workers/w", server.url)]);
    assert_eq!(status, 404);
    // A body over the documented limit (80 MiB), with and without a declared length: 413 with a
    // Golem-style error that says what to do, and the server goes on.
    let huge = std::env::temp_dir().join(format!("serve-huge-{}", std::process::id()));
    std::fs::write(&huge, vec![b' '; (80 << 20) + 1]).unwrap();
    let upload = format!("@{}", huge.display());
    for chunked in [false, true] {
        let mut args = vec!["-X", "POST", &invoke, "--data-binary", &upload];
        if chunked {
            args.extend(["-H", "Transfer-Encoding: chunked"]);
        }
        let (status, body) = curl(&args);
        assert_eq!(status, 413, "{body}");
        let error = json(&body)["errors"][0].as_str().unwrap().to_string();
        assert!(error.contains("limit of 80 MiB"), "{error}");
    }
    let _ = std::fs::remove_file(&huge);
    let (status, body) = curl(&["-X", "POST", &invoke, "-d", r#"{"params":[]}"#]);
    assert_eq!(status, 200, "{body}");
    // An `Idempotency-Key` sent again gets the first answer, without running again: here the
    // second call names a job that does not exist, and still gets the first call's answer.
    let ingest = format!(
        "{}/v1/components/{driver}/workers/timeline-driver/invoke-and-await?function=timeline:driver/api.%7Bingest-packed%7D",
        server.url
    );
    let packed = |job: &str| {
        format!(
            r#"{{"params":[{{"typ":{{"type":"Str"}},"value":"{job}"}},{{"typ":{{"type":"Str"}},"value":"e1 70 2 9:sessionId s2:s9 17:playerStateChange s4:play"}}]}}"#
        )
    };
    let first = curl(&[
        "-X",
        "POST",
        &ingest,
        "-H",
        "Idempotency-Key: batch-1",
        "-d",
        &packed("client-cirr"),
    ]);
    assert_eq!(first.0, 200, "{}", first.1);
    assert!(first.1.contains(r#""ok""#), "{}", first.1);
    let again = curl(&[
        "-X",
        "POST",
        &ingest,
        "-H",
        "Idempotency-Key: batch-1",
        "-d",
        &packed("no-such-job"),
    ]);
    assert_eq!(again, first);
    let other = curl(&[
        "-X",
        "POST",
        &ingest,
        "-H",
        "Idempotency-Key: batch-2",
        "-d",
        &packed("no-such-job"),
    ]);
    assert!(other.1.contains("no job named"), "{}", other.1);
    // Parameters that do not fit the function fail the worker for good (500), until deleted.
    let other = format!(
        "{}/v1/components/{driver}/workers/scratch/invoke-and-await?function=timeline:driver/api.%7Bjobs%7D",
        server.url
    );
    fail_for_good(&other);
    let (status, body) = curl(&["-X", "POST", &other, "-d", r#"{"params":[]}"#]);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("PreviousInvocationFailed"), "{body}");
    let (status, _) = curl(&[
        "-X",
        "DELETE",
        &format!("{}/v1/components/{driver}/workers/scratch", server.url),
    ]);
    assert_eq!(status, 200);
    let (status, body) = curl(&["-X", "POST", &other, "-d", r#"{"params":[]}"#]);
    assert_eq!(status, 200, "{body}");
    // The client with a driver worker of its own (`--driver`): it serves every job. When one
    // mistyped call fails it for good, `setup` deletes and re-creates it, and no job is lost.
    let own = |args: &[&str]| {
        let mut all = vec!["golem", "--url", &server.url, "--driver", "driver-of-mine"];
        all.extend_from_slice(args);
        timeline_with_env(&all, None, &[("TIMELINE_GOLEM_CACHE", "")])
    };
    assert!(stdout(&own(&["setup"])).contains("created worker driver-of-mine"));
    assert!(stdout(&own(&["jobs"])).contains("client-cirr"));
    let mine = format!(
        "{}/v1/components/{driver}/workers/driver-of-mine/invoke-and-await?function=timeline:driver/api.%7Bjobs%7D",
        server.url
    );
    fail_for_good(&mine);
    let failed = own(&["jobs"]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("PreviousInvocationFailed"));
    let said = stdout(&own(&["setup"]));
    assert!(said.contains("re-created worker driver-of-mine"), "{said}");
    assert!(said.contains("Parameter type mismatch"), "{said}");
    assert!(stdout(&own(&["jobs"])).contains("client-cirr"));
    assert_eq!(stdout(&own(&read)), answer);
    assert!(stdout(&own(&["setup"])).contains("exists already"));
    server.stop();
    let _ = std::fs::remove_dir_all(&data);
}

/// What golem-cli 1.1 reads before it calls a worker: the server's version, the components (to
/// find one by name, and to type the JSON arguments of `worker invoke-and-await -j` from the
/// function's parameters), a worker's metadata. Each carries every field that Golem 1.1.16's
/// OpenAPI (golem-client 1.1.16, `openapi/golem-service.yaml`) marks required, so golem-cli
/// 1.1.16 reads them.
#[test]
fn golem_cli_finds_components_their_functions_and_workers() {
    let data = std::env::temp_dir().join(format!("timeline-serve-meta-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(&data);
    let get = |path: &str| {
        let (status, body) = curl(&[&format!("{}{path}", server.url)]);
        (
            status,
            if status == 200 {
                json(&body)
            } else {
                serde_json::Value::Null
            },
        )
    };
    let has_all = |what: &str, v: &serde_json::Value, fields: &[&str]| {
        for f in fields {
            assert!(v.get(f).is_some(), "{what} lacks {f}: {v}");
        }
    };

    let (status, version) = get("/version");
    assert_eq!(status, 200);
    assert!(
        version["version"].as_str().unwrap().starts_with("1.1."),
        "{version}"
    );

    let (_, all) = get("/v1/components");
    let all = all.as_array().unwrap().clone();
    let mut names: Vec<&str> = all
        .iter()
        .map(|c| c["componentName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "timeline:core",
            "timeline:driver",
            "timeline:event-processor",
            "timeline:timeline-processor"
        ]
    );
    for c in &all {
        let required = [
            "versionedComponentId",
            "componentName",
            "componentSize",
            "metadata",
            "files",
            "installedPlugins",
        ];
        has_all("Component", c, &required);
        has_all(
            "ComponentMetadata",
            &c["metadata"],
            &["exports", "producers", "memories", "dynamicLinking"],
        );
        assert!(
            c["componentSize"].as_u64().unwrap() > 0,
            "{}",
            c["componentName"]
        );
        let exports = c["metadata"]["exports"].as_array().unwrap();
        assert!(!exports.is_empty());
        for e in exports {
            assert_eq!(e["type"], "Instance", "{e}");
            for f in e["functions"].as_array().unwrap() {
                has_all("AnalysedFunction", f, &["name", "parameters", "results"]);
                for p in f["parameters"].as_array().unwrap() {
                    has_all("AnalysedFunctionParameter", p, &["name", "typ"]);
                }
            }
        }
    }

    // By name, as golem-cli resolves `--component-name`.
    let (_, found) = get("/v1/components?component-name=timeline:driver");
    let driver = match found.as_array().unwrap().as_slice() {
        [one] => one.clone(),
        other => panic!("expected the driver alone: {other:?}"),
    };
    assert_eq!(
        get("/v1/components?component-name=timeline:nope").1,
        serde_json::json!([])
    );
    let id = driver["versionedComponentId"]["componentId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get(&format!("/v1/components/{id}")).1,
        serde_json::json!([driver.clone()])
    );
    assert_eq!(get(&format!("/v1/components/{id}/latest")).1, driver);
    assert_eq!(get(&format!("/v1/components/{id}/versions/0")).1, driver);
    assert_eq!(get(&format!("/v1/components/{id}/versions/3")).0, 404);
    assert_eq!(
        get("/v1/components/00000000-0000-4000-8000-000000000000/latest").0,
        404
    );
    // Hostile paths and names: a clear refusal or nothing found, and the server goes on.
    let long_name = "x".repeat(20_000);
    assert_eq!(
        get(&format!("/v1/components?component-name={long_name}")).1,
        serde_json::json!([])
    );
    for path in [
        format!("/v1/components/{id}/versions/-1"),
        format!("/v1/components/{id}/versions/{long_name}"),
        "/v1/components/%00%2F..%2F/latest".to_string(),
        format!("/v1/components/{long_name}/workers"),
        "/v1/components/00000000-0000-4000-8000-000000000000/workers".to_string(),
    ] {
        assert_eq!(get(&path).0, 404, "{path}");
    }
    // An id that is not a UUID is a bad request, as on Golem 1.1.
    assert_eq!(get(&format!("/v1/components/{long_name}")).0, 400);
    assert_eq!(get(&format!("/v1/components/{id}/latest")).1, driver);

    // The driver's `locate`, with its parameters named and typed as the WIT says.
    let named = |list: &serde_json::Value, name: &str| -> serde_json::Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|item| item["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .clone()
    };
    let api = named(&driver["metadata"]["exports"], "timeline:driver/api");
    let locate = named(&api["functions"], "locate");
    let params = locate["parameters"].as_array().unwrap();
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["job-name", "node-id", "key"]);
    assert_eq!(params[0]["typ"], serde_json::json!({"type": "Str"}));
    assert_eq!(
        params[1]["typ"],
        serde_json::json!({"type": "Option", "inner": {"type": "Str"}})
    );
    assert_eq!(
        params[2]["typ"]["inner"]["cases"][0]["name"],
        "string-value"
    );
    assert_eq!(locate["results"].as_array().unwrap().len(), 1);

    // Arguments typed from that metadata, as golem-cli types `-j '["cirr", null, {…}]'`, are
    // what the invocation takes: the driver answers (no such job yet), it does not refuse them.
    let typed: Vec<serde_json::Value> = params
        .iter()
        .zip([
            serde_json::json!("cirr"),
            serde_json::Value::Null,
            serde_json::json!({"string-value": "s1"}),
        ])
        .map(|(p, value)| serde_json::json!({"typ": p["typ"], "value": value}))
        .collect();
    let create = r#"{"name":"meta-driver","args":[],"env":{}}"#;
    let workers = format!("{}/v1/components/{id}/workers", server.url);
    let (status, body) = curl(&[
        "-X",
        "POST",
        &workers,
        "-H",
        "Content-Type: application/json",
        "-d",
        create,
    ]);
    assert_eq!(status, 200, "{body}");
    let invoke =
        format!("{workers}/meta-driver/invoke-and-await?function=timeline:driver/api.%7Blocate%7D");
    let params = serde_json::json!({ "params": typed }).to_string();
    let (status, body) = curl(&[
        "-X",
        "POST",
        &invoke,
        "-H",
        "Content-Type: application/json",
        "-d",
        &params,
    ]);
    assert_eq!(status, 200, "{body}");
    // The call ran: created with an empty environment, this driver says what it lacks.
    assert!(
        json(&body)["result"]["value"][0]["err"]
            .as_str()
            .unwrap()
            .contains("CORE_COMPONENT_ID is not set"),
        "{body}"
    );

    // A worker's metadata, as `golem-cli worker get` reads it.
    let (status, meta) = get(&format!("/v1/components/{id}/workers/meta-driver"));
    assert_eq!(status, 200);
    let required = [
        "workerId",
        "args",
        "env",
        "status",
        "componentVersion",
        "retryCount",
        "pendingInvocationCount",
        "updates",
        "createdAt",
        "componentSize",
        "totalLinearMemorySize",
        "ownedResources",
        "activePlugins",
    ];
    has_all("WorkerMetadata", &meta, &required);
    assert_eq!(meta["workerId"]["workerName"], "meta-driver");
    assert_eq!(meta["status"], "Idle");
    server.stop();
    let _ = std::fs::remove_dir_all(&data);
}

/// `timeline golem result` reads through readers over HTTP: past a reader's share of reads it
/// follows the hand-over (with its reader cache) or finds the newest generation from the
/// workers' metadata (without), steps back from a generation a stray call made before it was
/// set up, and answers as `timeline eval` throughout; the result workers' logs do not grow.
#[test]
fn the_client_reads_through_generations_of_readers() {
    let data = common::temp_file("serve-readers-data", "");
    let _ = std::fs::remove_file(&data);
    let server = Server::start(&data);
    let cache = data.join("plan-cache");
    let cache = cache.to_str().unwrap();
    let golem = |cache: &str, args: &[&str]| golem_client(&server.url, cache, args);
    golem(cache, &["setup"]);
    for (job, query) in [
        ("r-cirr", "examples/cirr.tl"),
        ("r-by-cdn", "examples/cirr-by-cdn.tl"),
    ] {
        golem(
            cache,
            &[
                "run",
                "--job",
                job,
                "--query-file",
                query,
                "--key",
                "sessionId",
            ],
        );
        golem(
            cache,
            &["ingest", "--job", job, "--events", "examples/player.csv"],
        );
    }
    let asked = ["--at", "7", "--at", "30", "--at", "100"];
    let mut read = vec!["result", "--job", "r-cirr", "--key", "s1", "--key", "s2"];
    read.extend_from_slice(&asked);
    let want = stdout(&eval_cirr(&asked));
    let mut by_cdn = vec!["result", "--job", "r-by-cdn"];
    by_cdn.extend_from_slice(&asked);
    let want_by_cdn = golem(cache, &by_cdn);
    let node_logs = || -> usize {
        let mut n = 0;
        for dir in std::fs::read_dir(&data).unwrap() {
            let dir = dir.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                let name = f.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with("tl-") && !name.contains("-reader-") {
                    n += std::fs::read_to_string(&f).unwrap().lines().count();
                }
            }
        }
        n
    };
    // The first reads make the first readers, each attaching to its worker (one entry there).
    assert_eq!(golem(cache, &read), want);
    let before = node_logs();
    let per_reader = timeline::limits::READS_PER_READER as usize;
    for i in 0..2 * per_reader + 10 {
        // Half the reads keep their reader in the cache, half find it anew.
        let cached = if i % 2 == 0 { cache } else { "" };
        assert_eq!(golem(cached, &read), want, "read {i}");
        if i % 10 == 0 {
            assert_eq!(golem(cached, &by_cdn), want_by_cdn, "aggregate read {i}");
        }
    }
    assert_eq!(node_logs(), before, "reads grew a node worker's log");
    // The generations that exist, from the workers' list.
    let processor = json(&curl(&[&format!("{}/v1/components", server.url)]).1)
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["componentName"] == "timeline:timeline-processor")
        .map(|c| {
            c["versionedComponentId"]["componentId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    let workers = curl(&[&format!("{}/v1/components/{processor}/workers", server.url)]).1;
    assert!(workers.contains("-reader-2\""), "{workers}");
    // A stray call creates a next generation before it is set up: a client without a cache
    // finds it newest and steps back to the one that serves.
    let names: Vec<String> = json(&workers)["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workerId"]["workerName"].as_str().unwrap().to_string())
        .filter(|n| n.contains("-reader-"))
        .collect();
    for name in &names {
        let (node, generation) = name.rsplit_once("-reader-").unwrap();
        let next = format!("{node}-reader-{}", generation.parse::<u32>().unwrap() + 1);
        if names.contains(&next) {
            continue;
        }
        let stats = format!(
            "{}/v1/components/{processor}/workers/{next}/invoke-and-await?function=timeline:timeline-processor/api.%7Bstats%7D",
            server.url
        );
        curl(&["-X", "POST", &stats, "-d", r#"{"params":[]}"#]);
    }
    assert_eq!(golem("", &read), want, "past a stray generation");
    assert_eq!(golem("", &by_cdn), want_by_cdn, "past a stray generation");
    server.stop();
}
