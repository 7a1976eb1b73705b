//! `serve` and the client under load: 16 clients ingest into 16 jobs at once (shuffled events,
//! late ones included) while 16 pollers read results over HTTP, against a server that runs few
//! invocations at once (`--max-in-flight`), so that it refuses with 503 and `Retry-After`.
//! Nothing is lost and nothing counted twice (every job's answers equal `timeline eval`'s), no
//! answer is an error other than that documented back-pressure, and the pollers' latencies are
//! printed.
//!
//! The sizes are small here; `TIMELINE_LOAD_EVENTS` (events per job, default 300) and
//! `TIMELINE_LOAD_IN_FLIGHT` (default 8) make a longer run (see the guide's *Testing* page).

mod common;

use common::{stdout, temp_file, timeline_with_env, Server};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const POLLERS: usize = 16;
const SESSIONS: usize = 20;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A job's events: `n` events over the sessions, in time order per session, then shuffled
/// (a fixed seed per job), so most arrive late. The last event's time too.
fn events(job: usize, n: usize) -> (String, u64) {
    let key = key_column(job);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (job as u64 + 1);
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let states = ["init", "play", "buffer", "pause"];
    let mut clock = [0u64; SESSIONS];
    let mut rows = Vec::new();
    for _ in 0..n {
        let s = next(SESSIONS as u64) as usize;
        clock[s] += 1 + next(4);
        let (state, cdn, action) = match next(4) {
            0 => (states[next(4) as usize], "", ""),
            1 => ("", if next(2) == 0 { "CDN1" } else { "CDN2" }, ""),
            2 => ("", "", "seek"),
            _ => ("buffer", "", ""),
        };
        rows.push(format!("{},s{s},{state},{cdn},{action}", clock[s]));
    }
    for i in (1..rows.len()).rev() {
        rows.swap(i, next(i as u64 + 1) as usize);
    }
    let last = clock.iter().copied().max().unwrap_or(0);
    (
        format!(
            "time,{key},playerStateChange,cdnChange,userAction\n{}\n",
            rows.join("\n")
        ),
        last,
    )
}

/// Each job's key column: jobs with the same query and key column share their workers (as
/// later jobs reuse what earlier ones computed), so each job keys its sessions its own way.
fn key_column(job: usize) -> String {
    format!("session{job}")
}

/// The result worker of `key` in `job` (its shard's), from the dashboard's plan.
fn result_worker(url: &str, job: &str, key: &str) -> String {
    let jobs: serde_json::Value = ureq::get(&format!("{url}/dashboard/jobs"))
        .call()
        .unwrap_or_else(|e| match e {
            ureq::Error::Status(_, r) => panic!("{}", r.into_string().unwrap()),
            e => panic!("{e}"),
        })
        .into_string()
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    let plan = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == job)
        .unwrap();
    let node = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == plan["resultNode"])
        .unwrap();
    let workers = node["workers"].as_array().unwrap();
    let shards = plan["shards"].as_u64().unwrap() as u32;
    let shard = timeline::worker_index(
        Some(&timeline::Value::Str(key.into())),
        shards,
        workers.len(),
    );
    workers[shard].as_str().unwrap().to_string()
}

#[test]
fn sixteen_clients_and_sixteen_pollers_lose_nothing_and_count_nothing_twice() {
    let n = env_or("TIMELINE_LOAD_EVENTS", 300);
    let in_flight = env_or("TIMELINE_LOAD_IN_FLIGHT", 8).to_string();
    let data = temp_file("load-data", "");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&data);
    let server = Server::start_with(&data, &["--max-in-flight", &in_flight]);
    let url = server.url.clone();
    let cache = temp_file("load-plan-cache", "");
    let _ = std::fs::remove_file(&cache);
    let cache = cache.to_str().unwrap().to_string();
    let golem = |args: &[&str]| {
        let mut all = vec!["golem", "--url", &url];
        all.extend_from_slice(args);
        let o = timeline_with_env(&all, None, &[("TIMELINE_GOLEM_CACHE", &cache)]);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        (stdout(&o), String::from_utf8_lossy(&o.stderr).to_string())
    };
    golem(&["setup"]);
    let query = common::repo().join("examples/cirr.tl");
    let query = query.to_str().unwrap();
    let mut files = Vec::new();
    for j in 0..CLIENTS {
        let job = format!("load-{j}");
        golem(&[
            "run",
            "--job",
            &job,
            "--query-file",
            query,
            "--key",
            &key_column(j),
            "--shards",
            "2",
        ]);
        let (text, last) = events(j, n);
        files.push((job, temp_file(&format!("load-{j}.csv"), &text), last));
    }

    // The pollers read a session's result from its result worker while the clients ingest.
    let tp: serde_json::Value = ureq::get(&format!(
        "{url}/v1/components?component-name=timeline:timeline-processor"
    ))
    .call()
    .unwrap()
    .into_string()
    .map(|t| serde_json::from_str(&t).unwrap())
    .unwrap();
    let tp = tp[0]["versionedComponentId"]["componentId"]
        .as_str()
        .unwrap()
        .to_string();
    let done = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let unknown = Arc::new(AtomicU64::new(0));
    let pollers: Vec<_> = (0..POLLERS)
        .map(|p| {
            let job = format!("load-{}", p % CLIENTS);
            let key = format!("s{}", p % SESSIONS);
            let worker = result_worker(&url, &job, &key);
            let invoke = format!(
                "{url}/v1/components/{tp}/workers/{worker}/invoke-and-await?function=timeline:timeline-processor/api.%7Bget-result%7D"
            );
            let body = format!(
                r#"{{"params":[{{"typ":{{"type":"Option","inner":{{"type":"Variant","cases":[{{"name":"string-value","typ":{{"type":"Str"}}}},{{"name":"int-value","typ":{{"type":"S64"}}}},{{"name":"float-value","typ":{{"type":"F64"}}}},{{"name":"bool-value","typ":{{"type":"Bool"}}}}]}}}},"value":{{"string-value":"{key}"}}}},{{"typ":{{"type":"U64"}},"value":1000000}}]}}"#
            );
            let (done, latencies, refused, unknown) =
                (done.clone(), latencies.clone(), refused.clone(), unknown.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    match ureq::post(&invoke)
                        .set("Content-Type", "application/json")
                        .send_string(&body)
                    {
                        Ok(r) => {
                            mine.push(start.elapsed());
                            let answer: serde_json::Value =
                                serde_json::from_str(&r.into_string().unwrap()).unwrap();
                            let state = &answer["result"]["value"][0];
                            // Before the session's first event: an error saying so.
                            if state.get("err").is_some() {
                                let why = state["err"].as_str().unwrap_or_default();
                                assert!(why.contains("no events have arrived"), "{answer}");
                                unknown.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(ureq::Error::Status(503, r)) => {
                            let after: u64 = r
                                .header("Retry-After")
                                .expect("a 503 says when to come back")
                                .parse()
                                .unwrap();
                            refused.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_secs(after));
                        }
                        Err(ureq::Error::Status(code, r)) => {
                            panic!("poller {p}: HTTP {code}: {}", r.into_string().unwrap())
                        }
                        Err(e) => panic!("poller {p}: {e}"),
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();

    // The clients: the `timeline golem ingest` command, one per job, all at once.
    let start = Instant::now();
    let clients: Vec<_> = files
        .iter()
        .map(|(job, file, _)| {
            Command::new(env!("CARGO_BIN_EXE_timeline"))
                .args([
                    "golem", "--url", &url, "ingest", "--job", job, "--batch", "20",
                ])
                .arg("--events")
                .arg(file)
                .env("TIMELINE_GOLEM_CACHE", &cache)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("the client starts")
        })
        .collect();
    let mut waited = 0;
    for (client, (job, _, _)) in clients.into_iter().zip(&files) {
        let o = client.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{job}: {err}");
        assert!(
            err.contains(&format!("sent {n} events to job {job}")),
            "{job}: {err}"
        );
        waited += usize::from(err.contains("the server is busy"));
    }
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    for p in pollers {
        p.join().unwrap();
    }

    // Nothing lost, nothing twice: each job answers as `timeline eval` over its file.
    let keys: Vec<String> = (0..SESSIONS).map(|s| format!("s{s}")).collect();
    for (j, (job, file, last)) in files.iter().enumerate() {
        let at = (last + 5).to_string();
        let mut args = vec!["result", "--job", job.as_str(), "--at", &at];
        for k in &keys {
            args.extend(["--key", k.as_str()]);
        }
        let (got, _) = golem(&args);
        let want = common::eval_at(std::path::Path::new(query), file, &key_column(j), &at);
        let sorted = |t: &str| {
            let mut l: Vec<String> = t.lines().map(String::from).collect();
            l.sort();
            l
        };
        assert_eq!(sorted(&got), sorted(&want), "{job}");
    }

    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    assert!(!l.is_empty(), "no poll was answered");
    let pct = |p: f64| l[((l.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    eprintln!(
        "{CLIENTS} clients × {n} events in {:.1} s ({waited} of them told to wait); {} reads by {POLLERS} pollers: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} refused with 503 and Retry-After; {} before their session's first event",
        took.as_secs_f64(),
        l.len(),
        pct(0.5),
        pct(0.95),
        pct(0.99),
        pct(1.0),
        refused.load(Ordering::Relaxed),
        unknown.load(Ordering::Relaxed),
    );
    server.stop();
}
