//! `timeline golem …`: a client of the timeline components on any Golem 1.1 endpoint (a real
//! server, or `timeline serve`), over Golem's REST worker API. It finds the components by name,
//! creates the driver worker, submits jobs, sends event files in packed batches (retrying what
//! timed out: ingestion is idempotent, the same key, time and column keeping the last value),
//! and reads results straight from the job's result worker, printed as `timeline eval` prints.

use crate::args::{Format, GolemArgs, GolemCommand, IngestSource};
use serde_json::{json, Value as Json};
use std::time::Duration;
use timeline_formats::input;
use timeline_formats::progress::Progress;

mod kafka;

/// How often a call that timed out (the router's 504 after 30 s) or found no connection is sent
/// again, waiting 1, 2, 4, … s between tries.
const TRIES: u32 = 6;
/// How many times a call refused by a busy server (HTTP 429 or 503 with `Retry-After`) is sent
/// again, waiting as the server asks each time, before giving up.
const MAX_BUSY_WAITS: u32 = 600;

// ---------- Golem's `typ` for the parameters the client sends ----------

/// The interface of the timeline-processor component, which readers are workers of.
const TIMELINE_PROCESSOR_API: &str = "timeline:timeline-processor/api";

fn t(kind: &str) -> Json {
    json!({ "type": kind })
}
fn opt(inner: Json) -> Json {
    json!({"type": "Option", "inner": inner})
}
fn list(inner: Json) -> Json {
    json!({"type": "List", "inner": inner})
}
fn record(fields: &[(&str, Json)]) -> Json {
    json!({"type": "Record", "fields": fields.iter().map(|(n, t)| json!({"name": n, "typ": t})).collect::<Vec<_>>()})
}
fn variant(cases: &[(&str, Option<Json>)]) -> Json {
    json!({"type": "Variant", "cases": cases.iter().map(|(n, t)| json!({"name": n, "typ": t})).collect::<Vec<_>>()})
}
fn event_value() -> Json {
    variant(&[
        ("string-value", Some(t("Str"))),
        ("int-value", Some(t("S64"))),
        ("float-value", Some(t("F64"))),
        ("bool-value", Some(t("Bool"))),
    ])
}
fn query_typ() -> Json {
    let flat = record(&[
        ("operator", t("Str")),
        ("inputs", list(t("U32"))),
        ("column", opt(t("Str"))),
        ("predicate", opt(t("Str"))),
        ("value", opt(event_value())),
        ("within", opt(t("U64"))),
    ]);
    variant(&[("text", Some(t("Str"))), ("tree", Some(list(flat)))])
}
fn options_typ() -> Json {
    record(&[
        ("job-name", t("Str")),
        ("key-column", opt(t("Str"))),
        ("shards", t("U32")),
        ("retention", opt(t("U64"))),
    ])
}
fn selector_typ() -> Json {
    variant(&[
        ("all", None),
        ("unknown", None),
        ("value", Some(event_value())),
    ])
}

/// An event value in Golem's JSON (`{"string-value": "s1"}`).
fn value_json(v: &timeline::Value) -> Json {
    match v {
        timeline::Value::Str(s) => json!({"string-value": &**s}),
        timeline::Value::Int(i) => json!({"int-value": i}),
        timeline::Value::Float(f) => json!({"float-value": f}),
        timeline::Value::Bool(b) => json!({"bool-value": b}),
    }
}

/// A Golem 1.1 endpoint, and the driver worker the client talks to.
struct Golem {
    url: String,
    driver: String,
    agent: ureq::Agent,
    /// The server's component list, asked once per command: it does not change while a
    /// command runs, and every lookup by name reads it.
    components: std::cell::OnceCell<Vec<Json>>,
}

impl Golem {
    fn new(url: &str, driver: &str) -> Golem {
        Golem {
            url: url.trim_end_matches('/').to_string(),
            driver: driver.to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(90))
                .build(),
            components: std::cell::OnceCell::new(),
        }
    }

    /// Sends a request, retrying a timeout or a refused connection, and a refusal by a busy
    /// server (HTTP 429 or 503 with `Retry-After`) after the time it asks; the error names the
    /// call, the status and what the server said.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Json>,
        what: &str,
    ) -> Result<Json, String> {
        self.send_once(method, path, body, what, None)
    }

    /// As [`send`](Self::send); with an idempotency key, a retry after a timeout is answered
    /// from the first attempt if that one ran.
    fn send_once(
        &self,
        method: &str,
        path: &str,
        body: Option<&Json>,
        what: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Json, String> {
        let url = format!("{}{path}", self.url);
        let mut wait = Duration::from_secs(1);
        // Failures (timeouts, refused connections) count against TRIES; a busy server's
        // refusals against MAX_BUSY_WAITS.
        let mut busy_waits = 0;
        let mut attempt = 0;
        loop {
            let mut request = self
                .agent
                .request(method, &url)
                .set("Content-Type", "application/json");
            if let Some(key) = idempotency_key {
                request = request.set("Idempotency-Key", key);
            }
            let response = match body {
                Some(b) => request.send_string(&b.to_string()),
                None => request.call(),
            };
            let retry = match response {
                Ok(r) => {
                    let text = r
                        .into_string()
                        .map_err(|e| format!("{what}: reading the answer: {e}"))?;
                    return serde_json::from_str(&text).map_err(|e| {
                        format!(
                            "{what}: the answer is not JSON ({e}): {}",
                            timeline::limits::clip(&text, 200)
                        )
                    });
                }
                Err(ureq::Error::Status(504, _)) => {
                    "HTTP 504 (the router's timeout; the call goes on)".to_string()
                }
                // Back-pressure: the server ran nothing and says when to come back.
                Err(ureq::Error::Status(code @ (429 | 503), r))
                    if busy_waits < MAX_BUSY_WAITS && r.header("Retry-After").is_some() =>
                {
                    let after = r
                        .header("Retry-After")
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .unwrap_or(1)
                        .clamp(1, 60);
                    busy_waits += 1;
                    if busy_waits == 1 {
                        eprintln!("{what}: HTTP {code}, the server is busy; waiting as it asks (Retry-After: {after} s)");
                    }
                    std::thread::sleep(Duration::from_secs(after));
                    continue;
                }
                Err(ureq::Error::Status(code, r)) => {
                    let text = r.into_string().unwrap_or_default();
                    return Err(format!(
                        "{what}: HTTP {code} from {url}: {}",
                        timeline::limits::clip(&text, 500)
                    ));
                }
                Err(ureq::Error::Transport(t)) => format!("{t}"),
            };
            attempt += 1;
            if attempt == TRIES {
                return Err(format!("{what}: {retry}; gave up after {TRIES} tries"));
            }
            eprintln!("{what}: {retry}; trying again in {} s", wait.as_secs());
            std::thread::sleep(wait);
            wait *= 2;
        }
    }

    /// A component's id, by name (`timeline:driver`, …).
    fn component(&self, name: &str) -> Result<String, String> {
        Ok(self.component_with_time(name)?.0)
    }

    /// A component's id and when it was created (as the server says; empty if it does not),
    /// by name. Asking is not a worker invocation: no worker's log grows.
    fn component_with_time(&self, name: &str) -> Result<(String, String), String> {
        let items = match self.components.get() {
            Some(items) => items,
            None => {
                let list = self.send("GET", "/v1/components", None, "listing the components")?;
                let items = list
                    .as_array()
                    .cloned()
                    .or_else(|| list.get("values").and_then(Json::as_array).cloned())
                    .unwrap_or_default();
                self.components.get_or_init(|| items)
            }
        };
        items
            .iter()
            .filter(|c| c["componentName"] == name)
            .find_map(|c| {
                let id = c["versionedComponentId"]["componentId"].as_str()?;
                Some((id.to_string(), c["createdAt"].as_str().unwrap_or("").to_string()))
            })
            .ok_or_else(|| format!("no component named {name} at {}: deploy the four components first (the guide: docs/src/deploying.md)", self.url))
    }

    /// `invoke-and-await`; returns the function's result (its one value), or the error a
    /// `result<_, string>` carried.
    fn invoke(
        &self,
        component: &str,
        worker: &str,
        function: &str,
        params: Vec<(Json, Json)>,
    ) -> Result<Json, String> {
        self.invoke_keyed(component, worker, function, params, None)
    }

    fn invoke_keyed(
        &self,
        component: &str,
        worker: &str,
        function: &str,
        params: Vec<(Json, Json)>,
        idempotency_key: Option<&str>,
    ) -> Result<Json, String> {
        let body = json!({"params": params.into_iter().map(|(typ, value)| json!({"typ": typ, "value": value})).collect::<Vec<_>>()});
        let path = format!(
            "/v1/components/{component}/workers/{worker}/invoke-and-await?function={}",
            function.replace('{', "%7B").replace('}', "%7D")
        );
        let answer = self.send_once("POST", &path, Some(&body), function, idempotency_key)?;
        let value = answer["result"]["value"][0].clone();
        match value.get("err") {
            Some(e) if value.as_object().is_some_and(|o| o.len() == 1) => Err(format!(
                "{function}: {}",
                e.as_str().unwrap_or(&e.to_string())
            )),
            _ => Ok(value.get("ok").cloned().unwrap_or(value)),
        }
    }

    fn driver(&self, function: &str, params: Vec<(Json, Json)>) -> Result<Json, String> {
        let driver = self.component("timeline:driver")?;
        self.invoke(
            &driver,
            &self.driver,
            &format!("timeline:driver/api.{{{function}}}"),
            params,
        )
    }

    /// A job's plan, asked of the driver (one driver invocation), and kept in the plan cache.
    fn plan(&self, job: &str) -> Result<Json, String> {
        let jobs = self.driver("jobs", vec![])?;
        let plan = jobs
            .as_array()
            .and_then(|js| js.iter().find(|p| p["job-name"] == job).cloned())
            .ok_or_else(|| format!("no job named {job:?}: submit it with `timeline golem run`"))?;
        self.remember(&plan);
        Ok(plan)
    }

    /// A job's plan from the plan cache, else from the driver.
    fn known_plan(&self, job: &str) -> Result<Json, String> {
        match self
            .plan_file(job)
            .and_then(|f| std::fs::read_to_string(f).ok())
        {
            Some(text) => match serde_json::from_str::<Json>(&text) {
                Ok(plan) if plan["job-name"] == job => Ok(plan),
                _ => self.plan(job),
            },
            None => self.plan(job),
        }
    }

    /// Keeps a plan in the plan cache; a cache that cannot be written is only a missed saving.
    fn remember(&self, plan: &Json) {
        let Some(job) = plan["job-name"].as_str() else {
            return;
        };
        if let Some(file) = self.plan_file(job) {
            write_cache(&file, plan);
        }
    }

    /// Invokes `function` of the node worker `worker` (of component `component`, exporting
    /// `interface`) of job `job` through its reader: the one the reader cache names, else the
    /// newest generation that exists (the driver's `reader` makes the first); a reader that
    /// handed over is followed to its successor. What it learns goes into the reader cache,
    /// beside the plan cache.
    fn read_node(
        &self,
        job: &str,
        (component, worker, interface): (&str, &str, &str),
        function: &str,
        params: Vec<(Json, Json)>,
    ) -> Result<Json, String> {
        use timeline::readers::{next_reader, MAX_HOPS};
        let processor = self.component("timeline:timeline-processor")?;
        let file = self
            .plan_file(job)
            .map(|f| f.with_extension("readers.json"));
        let mut known: serde_json::Map<String, Json> = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let mut reader = match known.get(worker).and_then(Json::as_str) {
            Some(r) => r.to_string(),
            None => self.newest_reader(job, &processor, (component, worker, interface))?,
        };
        for _ in 0..MAX_HOPS {
            let answer = self.invoke(
                &processor,
                &reader,
                &format!("{TIMELINE_PROCESSOR_API}.{{{function}}}"),
                params.clone(),
            );
            let error = answer.as_ref().err().cloned().unwrap_or_default();
            let Some(next) = next_reader(worker, &reader, &error) else {
                if answer.is_ok() && known.get(worker).and_then(Json::as_str) != Some(&reader) {
                    known.insert(worker.to_string(), Json::String(reader));
                    if let Some(file) = &file {
                        write_cache(file, &Json::Object(known));
                    }
                }
                return answer;
            };
            reader = next;
        }
        Err(format!(
            "the readers of {worker} kept handing over: read again"
        ))
    }

    /// The newest reader of a node worker that exists, by the workers' metadata (not an
    /// invocation: no worker's log grows); the first is made by the driver's `reader` if there
    /// is none.
    fn newest_reader(
        &self,
        job: &str,
        processor: &str,
        (component, worker, interface): (&str, &str, &str),
    ) -> Result<String, String> {
        use timeline::readers::{newest_generation, reader_name};
        let exists = |g: u32| {
            let path = format!(
                "/v1/components/{processor}/workers/{}",
                reader_name(worker, g)
            );
            // A worker's metadata names it; anything else is no worker.
            self.send("GET", &path, None, "looking for a reader")
                .is_ok_and(|meta| meta.get("workerId").is_some())
        };
        if !exists(0) {
            // A worker this server does not have (a stale plan) says so here, before the driver
            // is asked (HTTP 404).
            self.send(
                "GET",
                &format!("/v1/components/{component}/workers/{worker}"),
                None,
                "looking for a node worker",
            )?;
            let worker_ref = record(&[
                ("component-id", t("Str")),
                ("worker-name", t("Str")),
                ("interface", t("Str")),
            ]);
            let first = self.driver(
                "reader",
                vec![
                    (t("Str"), json!(job)),
                    (
                        worker_ref,
                        json!({"component-id": component, "worker-name": worker, "interface": interface}),
                    ),
                ],
            )?;
            return first["worker-name"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| format!("reader answered {first}"));
        }
        Ok(reader_name(worker, newest_generation(exists)))
    }

    fn plan_file(&self, job: &str) -> Option<std::path::PathBuf> {
        let dir = plan_cache_dir()?;
        let (driver, created) = self.component_with_time("timeline:driver").ok()?;
        let identity = format!("{}\n{driver}\n{created}\n{job}", self.url);
        Some(dir.join(format!("plan-{:016x}.json", fnv(identity.as_bytes()))))
    }
}

/// Writes a cache file whole (through a file of its own, renamed); a cache that cannot be
/// written is only a missed saving.
fn write_cache(file: &std::path::Path, value: &Json) {
    let Some(dir) = file.parent() else {
        return;
    };
    let partial = file.with_extension(format!("{}.partial", std::process::id()));
    let _ = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&partial, value.to_string()))
        .and_then(|()| std::fs::rename(&partial, file));
}

/// The plan cache's directory: `$TIMELINE_GOLEM_CACHE` (empty: no cache), else
/// `$XDG_CACHE_HOME/timeline/golem`, else `~/.cache/timeline/golem`.
///
/// A job's plan never changes (the core binds a job's name to one query and its options), so
/// `result` reads it from here and calls only the workers that hold the answer: asking the
/// driver each time would add an invocation to the driver's log, which it replays when it
/// recovers.
fn plan_cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    match std::env::var_os("TIMELINE_GOLEM_CACHE") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("timeline").join("golem")),
    }
}

pub fn golem(a: &GolemArgs) -> Result<(), String> {
    let g = Golem::new(&a.url, &a.driver);
    match &a.command {
        GolemCommand::Setup => setup(&g),
        GolemCommand::Run {
            job,
            query,
            key,
            shards,
            retain,
        } => {
            let options =
                json!({"job-name": job, "key-column": key, "shards": shards, "retention": retain});
            let plan = g.driver(
                "run",
                vec![
                    (query_typ(), json!({"text": query})),
                    (options_typ(), options),
                ],
            )?;
            g.remember(&plan);
            println!(
                "{}",
                serde_json::to_string_pretty(&plan).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        GolemCommand::Plan { job } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&g.plan(job)?).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        GolemCommand::Jobs => {
            for p in g
                .driver("jobs", vec![])?
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                println!(
                    "{}\t{}",
                    p["job-name"].as_str().unwrap_or(""),
                    p["query"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        GolemCommand::Ingest {
            job,
            source: IngestSource::File(events),
            batch,
        } => ingest(&g, job, events, *batch),
        GolemCommand::Ingest {
            job,
            source: IngestSource::Kafka(k),
            batch,
        } => kafka::ingest(&g, job, k, *batch),
        GolemCommand::Result {
            job,
            keys,
            at,
            range,
            format,
        } => result(&g, job, keys, at, *range, *format),
    }
}

/// Creates the driver worker with the other components' ids. A driver worker that exists is
/// left as it is, unless it failed for good (on Golem 1.1, a call whose parameters did not fit,
/// or a trap): then it is deleted and created again. Nothing is lost with it: the core keeps
/// every job's plan and the node workers keep the data.
fn setup(g: &Golem) -> Result<(), String> {
    let ids: Vec<(String, String)> = ["core", "event-processor", "timeline-processor"]
        .iter()
        .map(|n| {
            Ok((
                format!("{}_COMPONENT_ID", n.to_uppercase().replace('-', "_")),
                g.component(&format!("timeline:{n}"))?,
            ))
        })
        .collect::<Result<_, String>>()?;
    let driver = g.component("timeline:driver")?;
    let env: serde_json::Map<String, Json> =
        ids.into_iter().map(|(k, v)| (k, Json::String(v))).collect();
    let body = json!({"name": g.driver, "args": [], "env": env});
    let workers = format!("/v1/components/{driver}/workers");
    let create = || g.send("POST", &workers, Some(&body), "creating the driver worker");
    let name = &g.driver;
    match create() {
        Ok(_) => println!("created worker {name} of timeline:driver ({driver})"),
        // Golem 1.1 answers 409, or a `golemError` of type `WorkerAlreadyExists`.
        Err(e)
            if e.contains("already exists")
                || e.contains("HTTP 409")
                || e.contains("WorkerAlreadyExists") =>
        {
            let worker = format!("{workers}/{name}");
            let meta = g.send("GET", &worker, None, "reading the driver worker's status")?;
            if meta["status"] != "Failed" {
                println!("worker {name} exists already");
                return Ok(());
            }
            let why = meta["lastError"]
                .as_str()
                .unwrap_or("no reason given")
                .to_string();
            g.send("DELETE", &worker, None, "deleting the failed driver worker")?;
            create()?;
            println!(
                "re-created worker {name}: it had failed for good ({}); it serves every job again",
                timeline::limits::clip(&why, 200)
            );
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Sends an event file in packed batches of `batch` events.
fn ingest(g: &Golem, job: &str, path: &str, batch: usize) -> Result<(), String> {
    // The events, and a hash of the file's content for the idempotency keys.
    let (events, file) = if timeline_formats::parquet_input::is_parquet(path) {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: cannot read: {e}"))?;
        let mut events = Vec::new();
        timeline_formats::parquet_input::for_each_batch_of_all_columns(
            path,
            &timeline_formats::time::TimeSpec::default(),
            |batch| {
                events.append(batch);
                Ok(())
            },
        )
        .map_err(|e| e.to_string())?;
        (events, fnv(&bytes))
    } else {
        let text = input::read_text(path).map_err(|e| e.to_string())?;
        let mut progress = Progress::new(text.len());
        let events = input::parse_events(path, &text, &mut progress).map_err(|e| e.to_string())?;
        progress.finish();
        (events, fnv(text.as_bytes()))
    };
    let driver = g.component("timeline:driver")?;
    let (mut sent, mut calls) = (0usize, 0u64);
    let mut progress = Progress::new(events.len());
    // Each batch's idempotency key: the job, the file's content and the batch's place in it, so
    // that sending the same file again (or retrying a batch) is recognised.
    for (i, chunk) in events.chunks(batch.max(1)).enumerate() {
        let packed = timeline::wire::encode_events(chunk);
        let key = format!("ingest-{job}-{file:016x}-{batch}-{i}");
        let n = g.invoke_keyed(
            &driver,
            &g.driver,
            "timeline:driver/api.{ingest-packed}",
            vec![(t("Str"), json!(job)), (t("Str"), json!(packed))],
            Some(&key),
        )?;
        calls += n.as_u64().unwrap_or(0);
        sent += chunk.len();
        progress.update("sending", sent, sent);
    }
    progress.finish();
    eprintln!("sent {sent} events to job {job} ({calls} leaf-worker calls)");
    Ok(())
}

/// FNV-1a, for idempotency keys.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reads the job's result from its result worker and prints it as `timeline eval` does. The
/// plan comes from the plan cache when it can (no driver invocation); if the workers it names
/// do not know the job (a server wiped or redeployed under the same names), the plan is asked
/// of the driver again, once.
fn result(
    g: &Golem,
    job: &str,
    keys: &[String],
    at: &[u64],
    range: Option<(u64, u64)>,
    format: Format,
) -> Result<(), String> {
    let lines = match read_result(g, &g.known_plan(job)?, job, keys, at, range) {
        // A cached plan whose workers this server does not have: ask the driver for the plan.
        Err(e)
            if e.contains("is not initialised")
                || e.contains("HTTP 404")
                || e.contains("is not a worker of job") =>
        {
            read_result(g, &g.plan(job)?, job, keys, at, range)?
        }
        other => other?,
    };
    print_lines(&lines, format)
}

/// The lines `result` prints, each line's fields in `timeline eval`'s order: per key (in the
/// order asked), its points, then its segments.
fn read_result(
    g: &Golem,
    plan: &Json,
    job: &str,
    keys: &[String],
    at: &[u64],
    range: Option<(u64, u64)>,
) -> Result<Vec<Vec<(String, Json)>>, String> {
    let result_node = plan["result-node"].clone();
    let node = plan["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node-id"] == result_node))
        .ok_or("the plan has no result node")?
        .clone();
    let key_values: Vec<timeline::Value> = keys
        .iter()
        .map(|k| match input::infer_scalar(k) {
            Ok(input::Scalar::Value(v)) => v,
            _ => timeline::Value::str(k),
        })
        .collect();
    let shards = plan["shards"].as_u64().unwrap_or(1) as u32;
    // Each line's fields in `timeline eval`'s order.
    let mut lines: Vec<Vec<(String, Json)>> = Vec::new();
    if node["kind"] == "aggregate" {
        let w = &node["workers"][0];
        let (component, worker) = (
            w["component-id"].as_str().unwrap_or(""),
            w["worker-name"].as_str().unwrap_or(""),
        );
        // Every time in one invocation: one read of the merge worker's reader.
        if !at.is_empty() {
            let rows = g.read_node(
                job,
                (component, worker, TIMELINE_PROCESSOR_API),
                "aggregate-at-times",
                vec![
                    (selector_typ(), json!({"all": null})),
                    (list(t("U64")), json!(at)),
                ],
            )?;
            for r in rows.as_array().cloned().unwrap_or_default() {
                let mut line = vec![
                    ("group".to_string(), plain(&r["group"])),
                    ("at".to_string(), r["at"].clone()),
                ];
                for v in r["values"].as_array().cloned().unwrap_or_default() {
                    line.push((
                        v["function"].as_str().unwrap_or("").to_string(),
                        number(&v["value"]),
                    ));
                }
                lines.push(line);
            }
        }
        if let Some((t1, t2)) = range {
            let segs = g.read_node(
                job,
                (component, worker, TIMELINE_PROCESSOR_API),
                "aggregate-range",
                vec![
                    (selector_typ(), json!({"all": null})),
                    (t("U64"), json!(t1)),
                    (t("U64"), json!(t2)),
                ],
            )?;
            for s in segs.as_array().cloned().unwrap_or_default() {
                lines.push(fields(&[
                    ("group", plain(&s["group"])),
                    ("agg", s["function"].clone()),
                    ("from", s["from"].clone()),
                    ("to", s["to"].clone()),
                    ("value", number(&s["value"])),
                    ("slope", number(&s["slope"])),
                ]));
            }
        }
    } else {
        // A job without a key column has one key, `null`.
        let key_values: Vec<Option<timeline::Value>> = if plan["key-column"].is_string() {
            if key_values.is_empty() {
                return Err(format!(
                    "job {job} is keyed by {}: give --key",
                    plan["key-column"]
                ));
            }
            key_values.into_iter().map(Some).collect()
        } else if !key_values.is_empty() {
            return Err(format!("job {job} has no key column: leave out --key"));
        } else {
            vec![None]
        };
        let worker_of = |shard: usize| -> (String, String, String) {
            let w = &node["workers"][shard];
            (
                w["component-id"].as_str().unwrap_or("").to_string(),
                w["worker-name"].as_str().unwrap_or("").to_string(),
                w["interface"]
                    .as_str()
                    .unwrap_or("timeline:timeline-processor/api")
                    .to_string(),
            )
        };
        let key_shards: Vec<usize> = key_values
            .iter()
            .map(|k| timeline::shard_of(k.as_ref(), shards) as usize)
            .collect();
        // Every key of a shard at every time in one invocation: one entry in that worker's log
        // however many are asked. `states[i]`: key i's states, one per time.
        let mut states: Vec<Vec<Json>> = vec![Vec::new(); key_values.len()];
        if !at.is_empty() {
            let mut shards_asked = key_shards.clone();
            shards_asked.sort_unstable();
            shards_asked.dedup();
            for shard in shards_asked {
                let (component, worker, interface) = worker_of(shard);
                let mine: Vec<usize> = (0..key_values.len())
                    .filter(|&i| key_shards[i] == shard)
                    .collect();
                let keys_json: Vec<Json> = mine
                    .iter()
                    .map(|&i| key_values[i].as_ref().map_or(Json::Null, value_json))
                    .collect();
                let answers = g.read_node(
                    job,
                    (&component, &worker, &interface),
                    "get-results",
                    vec![
                        (list(opt(event_value())), json!(keys_json)),
                        (list(t("U64")), json!(at)),
                    ],
                )?;
                let answers = answers.as_array().cloned().unwrap_or_default();
                if answers.len() != mine.len() * at.len() {
                    return Err(format!(
                        "get-results answered {} states for {} keys at {} times",
                        answers.len(),
                        mine.len(),
                        at.len()
                    ));
                }
                for (chunk, &i) in answers.chunks(at.len()).zip(&mine) {
                    states[i] = chunk.to_vec();
                }
            }
        }
        for ((key_value, key_states), &shard) in key_values.iter().zip(&states).zip(&key_shards) {
            let key_plain = key_value.as_ref().map_or(Json::Null, |v| {
                serde_json::to_value(v).unwrap_or(Json::Null)
            });
            for (t_, state) in at.iter().zip(key_states) {
                lines.push(fields(&[
                    ("key", key_plain.clone()),
                    ("at", json!(t_)),
                    ("value", state_value(state).0),
                ]));
            }
            if let Some((t1, t2)) = range {
                let (component, worker, interface) = worker_of(shard);
                let key_json = key_value.as_ref().map_or(Json::Null, value_json);
                let segs = g.read_node(
                    job,
                    (&component, &worker, &interface),
                    "get-range",
                    vec![
                        (opt(event_value()), key_json),
                        (t("U64"), json!(t1)),
                        (t("U64"), json!(t2)),
                    ],
                )?;
                for s in segs.as_array().cloned().unwrap_or_default() {
                    let (value, slope) = state_value(&s["state"]);
                    lines.push(fields(&[
                        ("key", key_plain.clone()),
                        ("from", s["from"].clone()),
                        ("to", s["to"].clone()),
                        ("value", value),
                        ("slope", json!(slope)),
                    ]));
                }
            }
        }
    }
    Ok(lines)
}

/// Prints result lines as `timeline eval` does.
fn print_lines(lines: &[Vec<(String, Json)>], format: Format) -> Result<(), String> {
    // As `eval` writes: a reader that stops early (`| head`) ends the output, not the process.
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = lines.iter().try_for_each(|line| {
        let text: Vec<String> = match format {
            Format::Json => line
                .iter()
                .map(|(k, v)| format!("{}:{v}", Json::String(k.clone())))
                .collect(),
            Format::Table => line.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        };
        match format {
            Format::Json => writeln!(out, "{{{}}}", text.join(",")),
            Format::Table => writeln!(out, "{}", text.join("  ")),
        }
    });
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write the result: {e}"))
        }
        _ => Ok(()),
    }
}

fn fields(f: &[(&str, Json)]) -> Vec<(String, Json)> {
    f.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// A `state` in Golem's JSON as `timeline eval` prints it: the value (null when unknown) and
/// the slope.
fn state_value(s: &Json) -> (Json, u64) {
    if let Some(v) = s.get("value") {
        return (plain(v), 0);
    }
    if let Some(d) = s.get("duration").and_then(Json::as_array) {
        return (
            d.first().cloned().unwrap_or(Json::Null),
            d.get(1).and_then(Json::as_u64).unwrap_or(0),
        );
    }
    (Json::Null, 0)
}

/// An `event-value` (`{"string-value": "s1"}`) as a plain JSON value.
fn plain(v: &Json) -> Json {
    v.as_object()
        .and_then(|o| o.values().next().cloned())
        .unwrap_or(Json::Null)
}

/// An `agg-number` (`{"int": 3}`) as a plain JSON number.
fn number(v: &Json) -> Json {
    plain(v)
}
