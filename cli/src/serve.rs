//! `timeline serve`: the part of Golem 1.1's REST API that our users call, over the four
//! components on the emulated Golem, so that the HTTP path (the deployment guide's `curl` calls,
//! the `timeline golem` client) runs without a Golem server.
//!
//! Paths, typed JSON, status codes and error bodies follow what a Golem 1.1.16 server answers
//! (the conformance suite in `cli/tests/golem_conformance.rs` sends both the same requests):
//! a payload that does not parse, or a value that does not fit its own `typ`, is refused with a
//! plain-text 400 before anything runs; parameters that do not fit the function fail the worker
//! for good (500 `RuntimeError`, and `PreviousInvocationFailed` after); a worker is created by
//! its first invocation, with an empty environment. Worker state lives in the data directory
//! (the emulator's logs), so a restart keeps every job, as a Golem restart does.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use golem_emulator::{golem_json, Golem, TimelineSystem, WorkerId};
use serde_json::{json, Value as Json_};
use std::collections::HashMap;
use std::time::Instant;

use crate::args::ServeArgs;

mod dashboard;
mod idempotency;

#[derive(Clone)]
struct App {
    golem: Golem,
    verbose: bool,
    /// Answers to invocations sent with an `Idempotency-Key`, by worker and key: the same key
    /// again gets the same answer without running again, after a restart too (as Golem does).
    answers: std::sync::Arc<idempotency::Answers>,
    /// When the server started (RFC 3339): the `createdAt` of its components and workers.
    started: String,
    /// Workers created by a call to a function they do not export: Golem 1.1 reports them
    /// `Running` until their next good call.
    running: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<WorkerId>>>,
    /// Invocations running; one more than `--max-in-flight` is refused with 503.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    max_in_flight: u32,
    /// Counts the invocations that changed state, for the dashboard's live updates.
    changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

/// The largest request body taken: a packed batch at its limit
/// ([`timeline::limits::MAX_PACKED_BYTES`]) with room for its JSON escaping. Larger bodies are
/// refused with 413 and a Golem-style error body, before they are read in full.
pub const MAX_REQUEST_BYTES: usize = timeline::limits::MAX_PACKED_BYTES / 4 * 5;

/// A Golem-style error: the status and the JSON body Golem 1.1 sends with it.
struct Failure(StatusCode, Json_);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            return (
                self.0,
                [(axum::http::header::RETRY_AFTER, "1")],
                Json(self.1),
            )
                .into_response();
        }
        match self.1 {
            // Golem answers payload errors in plain text.
            Json_::String(text) => (self.0, text).into_response(),
            body => (self.0, Json(body)).into_response(),
        }
    }
}

/// A request refused before anything runs, in JSON (`{"errors": […]}`), as Golem refuses an
/// invalid worker name.
fn bad_request(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, json!({"errors": [message.into()]}))
}

/// A payload that does not parse or does not fit its own types: a plain-text 400, as Golem's.
fn payload_error(message: impl std::fmt::Display) -> Failure {
    Failure(
        StatusCode::BAD_REQUEST,
        Json_::String(format!("parse request payload error: {message}")),
    )
}

fn not_found(message: impl Into<String>) -> Failure {
    Failure(StatusCode::NOT_FOUND, json!({"error": message.into()}))
}

/// A 500 with Golem's `golemError`, its type taken from the emulator's message prefix
/// (parameters that do not fit the function are a `RuntimeError` on Golem 1.1.16).
fn golem_error(message: String) -> Failure {
    let kind = ["PreviousInvocationFailed", "InvalidRequest"]
        .into_iter()
        .find(|k| message.starts_with(k))
        .unwrap_or("RuntimeError");
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"golemError": {"type": kind, "details": message}}),
    )
}

/// Golem's 500 for a component it does not know, where a worker is invoked or created.
fn unknown_component(id: &str) -> Failure {
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"golemError": {
            "type": "GetLatestVersionOfComponentFailed",
            "componentId": id,
            "reason": format!("component {id} not found"),
        }}),
    )
}

/// Worker names become file names in the data directory: keep them to a safe alphabet.
fn check_worker_name(name: &str) -> Result<(), Failure> {
    if crate::args::is_worker_name(name) {
        Ok(())
    } else {
        Err(bad_request(format!(
            "invalid worker name {name:?}: {}",
            crate::args::WORKER_NAME_RULE
        )))
    }
}

impl App {
    fn component_name(&self, id: &str) -> Result<String, Failure> {
        self.golem
            .component_name(id)
            .map(String::from)
            .ok_or_else(|| not_found(format!("component {id} not found")))
    }

    fn worker(&self, component: &str, name: &str) -> Result<WorkerId, Failure> {
        self.component_name(component)?;
        check_worker_name(name)?;
        Ok(WorkerId {
            component_id: component.to_string(),
            worker_name: name.to_string(),
        })
    }

    /// A worker to create or invoke: Golem answers an unknown component there with a 500
    /// `GetLatestVersionOfComponentFailed` (elsewhere with a 404).
    fn target_worker(&self, component: &str, name: &str) -> Result<WorkerId, Failure> {
        if self.golem.component_name(component).is_none() {
            return Err(unknown_component(component));
        }
        self.worker(component, name)
    }

    /// A worker that exists (created, or called, and not deleted since).
    fn existing_worker(&self, component: &str, name: &str) -> Result<WorkerId, Failure> {
        let worker = self.worker(component, name)?;
        if !self.golem.worker_exists(&worker) {
            return Err(not_found(format!("worker {name} not found")));
        }
        Ok(worker)
    }

    /// Runs blocking emulator work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Golem) -> T + Send + 'static,
    ) -> Result<T, Failure> {
        let golem = self.golem.clone();
        tokio::task::spawn_blocking(move || f(golem))
            .await
            .map_err(|e| golem_error(format!("the invocation panicked: {e}")))
    }
}

/// A component as Golem 1.1 describes it (`Component` in its OpenAPI): what golem-cli reads to
/// find a component by name and to type the arguments of `worker invoke-and-await -j`. The
/// emulator's components have one version, 0, and are durable.
fn component_json(app: &App, id: &str, name: &str) -> Json_ {
    let mut interfaces: Vec<(String, Vec<Json_>)> = Vec::new();
    for f in app.golem.exports(id).unwrap_or_default() {
        let function = json!({
            "name": f.name,
            "parameters": f.params.iter()
                .map(|(name, t)| json!({"name": name, "typ": golem_json::typ(t)}))
                .collect::<Vec<_>>(),
            "results": f.results.iter()
                .map(|t| json!({"name": null, "typ": golem_json::typ(t)}))
                .collect::<Vec<_>>(),
        });
        match interfaces.iter_mut().find(|(i, _)| *i == f.interface) {
            Some((_, functions)) => functions.push(function),
            None => interfaces.push((f.interface, vec![function])),
        }
    }
    let exports: Vec<Json_> = interfaces
        .into_iter()
        .map(|(name, functions)| json!({"type": "Instance", "name": name, "functions": functions}))
        .collect();
    json!({
        "versionedComponentId": {"componentId": id, "version": 0},
        "componentName": format!("timeline:{name}"),
        "componentSize": app.golem.component_size(id).unwrap_or(0),
        "metadata": {"exports": exports, "producers": [], "memories": [], "dynamicLinking": {}},
        "createdAt": app.started,
        "componentType": "Durable",
        "files": [],
        "installedPlugins": [],
    })
}

/// The Golem release whose REST API this server follows (golem-cli asks, to warn of a newer
/// server).
const GOLEM_API_VERSION: &str = "1.1.16";

/// `GET /version`.
async fn version() -> Json<Json_> {
    Json(json!({ "version": GOLEM_API_VERSION }))
}

#[derive(serde::Deserialize)]
struct ComponentQuery {
    #[serde(rename = "component-name")]
    component_name: Option<String>,
}

/// `GET /v1/components[?component-name=…]`: every component, or the one of that name.
async fn list_components(State(app): State<App>, Query(q): Query<ComponentQuery>) -> Json<Json_> {
    let list: Vec<Json_> = app
        .golem
        .components()
        .into_iter()
        .filter(|(_, name)| {
            q.component_name
                .as_ref()
                .is_none_or(|wanted| *wanted == format!("timeline:{name}"))
        })
        .map(|(id, name)| component_json(&app, &id, &name))
        .collect();
    Json(Json_::Array(list))
}

/// `GET /v1/components/{id}`: the component's versions (one; none for an id it does not know,
/// a plain-text 400 for one that is not a UUID).
async fn component_versions(
    State(app): State<App>,
    Path(component): Path<String>,
) -> Result<Json<Json_>, Failure> {
    if !is_uuid(&component) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            Json_::String(format!(
                "Invalid value for parameter component_id: {component:?} is not a UUID"
            )),
        ));
    }
    Ok(Json(match app.golem.component_name(&component) {
        Some(name) => json!([component_json(&app, &component, name)]),
        None => json!([]),
    }))
}

/// Whether `text` is a UUID in its hyphenated form.
fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `GET /v1/components/{id}/latest` and `…/versions/0`.
async fn component_version(
    State(app): State<App>,
    Path((component, version)): Path<(String, String)>,
) -> Result<Json<Json_>, Failure> {
    let name = app.component_name(&component)?;
    if version != "latest" && version != "0" {
        return Err(not_found(format!(
            "component {component} has no version {version} (its only version is 0)"
        )));
    }
    Ok(Json(component_json(&app, &component, &name)))
}

async fn component_latest(
    state: State<App>,
    Path(component): Path<String>,
) -> Result<Json<Json_>, Failure> {
    component_version(state, Path((component, "latest".to_string()))).await
}

async fn create_worker(
    State(app): State<App>,
    Path(component): Path<String>,
    body: String,
) -> Result<Json<Json_>, Failure> {
    let request: Json_ = serde_json::from_str(&body).map_err(payload_error)?;
    // Golem 1.1 requires all three fields (`WorkerCreationRequest`).
    let (Some(name), Some(_), Some(env)) = (
        request.get("name").and_then(Json_::as_str),
        request.get("args").and_then(Json_::as_array),
        request.get("env"),
    ) else {
        return Err(payload_error(
            "expected {\"name\": \"…\", \"args\": […], \"env\": {…}}",
        ));
    };
    let worker = app.target_worker(&component, name)?;
    if app.golem.worker_exists(&worker) {
        return Err(Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"golemError": {
                "type": "WorkerAlreadyExists",
                "workerId": {"componentId": worker.component_id, "workerName": worker.worker_name},
            }}),
        ));
    }
    let env: Vec<(String, String)> = match env {
        Json_::Object(m) => m
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    v.as_str()
                        .ok_or_else(|| payload_error(format!("env {k}: expected a string")))?
                        .to_string(),
                ))
            })
            .collect::<Result<_, Failure>>()?,
        _ => return Err(payload_error("env: expected an object of strings")),
    };
    let w = worker.clone();
    app.blocking(move |golem| golem.create_worker(&w, &env))
        .await?
        .map_err(|e| golem_error(format!("{e:#}")))?;
    Ok(Json(json!({
        "workerId": {"componentId": worker.component_id, "workerName": worker.worker_name},
        "componentVersion": 0,
    })))
}

async fn worker_metadata(
    State(app): State<App>,
    Path((component, name)): Path<(String, String)>,
) -> Result<Json<Json_>, Failure> {
    let worker = app.existing_worker(&component, &name)?;
    Ok(Json(metadata_json(&app, &worker)))
}

/// `GET /v1/components/{id}/workers`: the component's workers, in one page.
async fn list_workers(
    State(app): State<App>,
    Path(component): Path<String>,
) -> Result<Json<Json_>, Failure> {
    app.component_name(&component)?;
    let workers: Vec<Json_> = app
        .golem
        .workers_of(&component)
        .iter()
        .map(|w| metadata_json(&app, w))
        .collect();
    Ok(Json(json!({"cursor": null, "workers": workers})))
}

/// A worker's metadata as Golem 1.1 gives it (`WorkerMetadata`).
fn metadata_json(app: &App, worker: &WorkerId) -> Json_ {
    let env: HashMap<String, String> = app.golem.worker_env(worker).into_iter().collect();
    let running = app.running.lock().expect("lock").contains(worker);
    let (status, error) = match app.golem.worker_failure(worker) {
        Some(why) => ("Failed", Some(why)),
        None if running => ("Running", None),
        None => ("Idle", None),
    };
    let (component, name) = (&worker.component_id, &worker.worker_name);
    json!({
        "workerId": {"componentId": component, "workerName": name},
        "args": [],
        "env": env,
        "status": status,
        "componentVersion": 0,
        "retryCount": 0,
        "pendingInvocationCount": 0,
        "updates": [],
        "createdAt": app.started,
        "lastError": error,
        "componentSize": app.golem.component_size(component).unwrap_or(0),
        "totalLinearMemorySize": 0,
        "ownedResources": {},
        "activePlugins": [],
    })
}

async fn delete_worker(
    State(app): State<App>,
    Path((component, name)): Path<(String, String)>,
) -> Result<Json<Json_>, Failure> {
    // Deleting a worker that does not exist succeeds, as on Golem 1.1.
    let worker = app.worker(&component, &name)?;
    app.running.lock().expect("lock").remove(&worker);
    app.blocking(move |golem| golem.delete_worker(&worker))
        .await?
        .map_err(|e| golem_error(format!("{e:#}")))?;
    Ok(Json(json!({})))
}

#[derive(serde::Deserialize)]
struct FunctionQuery {
    function: Option<String>,
}

/// `invoke-and-await` (and `invoke`, which answers `{}` once the invocation is done: the
/// emulator runs it at once). An `Idempotency-Key` seen before gets the invocation's result
/// (from `invoke-and-await`; `{}` from `invoke`) without running it again.
async fn invoke(
    State(app): State<App>,
    Path((component, name, action)): Path<(String, String, String)>,
    Query(q): Query<FunctionQuery>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Result<Json<Json_>, Failure> {
    let await_result = match action.as_str() {
        "invoke-and-await" => true,
        "invoke" => false,
        other => return Err(not_found(format!("no such endpoint: {other}"))),
    };
    // Golem's invocation endpoints take JSON only.
    let json_body = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json_body {
        return Err(Failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json_::String("the request body must be JSON (Content-Type: application/json)".into()),
        ));
    }
    let worker = app.target_worker(&component, &name)?;
    // Bounded: past the limit a call is refused at once, to be sent again, not queued.
    let Ok(_running) = app.in_flight.clone().try_acquire_owned() else {
        return Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": [format!(
                "the server is busy: {} invocations are running (--max-in-flight); send this one again after the Retry-After seconds",
                app.max_in_flight
            )]}),
        ));
    };
    let idempotency = headers
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let answer = |result: Json_| Json(if await_result { result } else { json!({}) });
    let claim = match &idempotency {
        Some(key) => match app.answers.claim(&worker, key).await {
            Ok(claim) => Some(claim),
            Err(result) => return Ok(answer(result)),
        },
        None => None,
    };
    let changes = q.function.as_deref().is_some_and(dashboard::changes_state);
    let result = invoke_once(&app, worker.clone(), q, body).await;
    // A failed call may have changed state too (a worker failed for good).
    if changes {
        app.changes.send_modify(|n| *n += 1);
    }
    let result = result?;
    if let Some(claim) = claim {
        claim.answered(&result);
    }
    Ok(answer(result))
}

/// Runs one invocation; the result as Golem's `invoke-and-await` gives it.
async fn invoke_once(
    app: &App,
    worker: WorkerId,
    q: FunctionQuery,
    body: String,
) -> Result<Json_, Failure> {
    let function = q
        .function
        .ok_or_else(|| bad_request("the query parameter `function` is missing"))?;
    let body: Json_ = serde_json::from_str(&body).map_err(payload_error)?;
    let params = body
        .get("params")
        .and_then(Json_::as_array)
        .ok_or_else(|| payload_error("expected {\"params\": [{\"typ\": …, \"value\": …}]}"))?
        .clone();
    // Each value must fit its own `typ` before anything runs.
    for (i, p) in params.iter().enumerate() {
        let (Some(typ), Some(value)) = (p.get("typ"), p.get("value")) else {
            return Err(payload_error(format!(
                "parameter {i} needs a typ and a value"
            )));
        };
        golem_json::check(value, typ).map_err(|e| payload_error(format!("{e:#}")))?;
    }
    let running = app.running.clone();
    app.blocking(move |golem| -> Result<Json_, Failure> {
            let Some((param_types, result_types)) = golem.function_types(&worker.component_id, &function) else {
                // As Golem 1.1: refused, and the worker stays as it was; a worker that did not
                // exist is created by the call, and reported running.
                if !golem.worker_exists(&worker) {
                    golem.create_worker(&worker, &[]).map_err(|e| golem_error(format!("{e:#}")))?;
                    running.lock().expect("lock").insert(worker.clone());
                }
                return Err(golem_error(format!("InvalidRequest: could not load function {function} of {}", worker.worker_name)));
            };
            if let Some(why) = golem.worker_failure(&worker) {
                return Err(golem_error(format!("PreviousInvocationFailed: worker {} failed: {why}", worker.worker_name)));
            }
            // Parameters that do not fit the function fail the worker for good, as on Golem 1.1.
            let vals = match golem_json::params(&body, &param_types) {
                Ok(vals) => vals,
                Err(e) => {
                    let why = format!("Parameter type mismatch: {e:#}");
                    golem.fail_worker(&worker, &why).map_err(|e| golem_error(format!("{e:#}")))?;
                    return Err(golem_error(why));
                }
            };
            let results = golem
                .invoke(&worker, &function, &vals)
                .map_err(|e| golem_error(format!("{e:#}")))?;
            running.lock().expect("lock").remove(&worker);
            Ok(json!({"result": {
                "typ": {"type": "Tuple", "items": result_types.iter().map(golem_json::typ).collect::<Vec<_>>()},
                "value": results.iter().map(golem_json::from_val).collect::<Vec<_>>(),
            }}))
        })
        .await?
}

/// Logs one line per request: method, path, function, status, time.
async fn log(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    if app.verbose || !status.is_success() {
        eprintln!(
            "{method} {} {} {:.1} ms",
            uri,
            status.as_u16(),
            start.elapsed().as_secs_f64() * 1e3
        );
    } else {
        let function = uri
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("function=")))
            .unwrap_or("")
            .replace("%7B", "{")
            .replace("%7D", "}");
        eprintln!(
            "{method} {} {function} {} {:.1} ms",
            uri.path().rsplit('/').next().unwrap_or(""),
            status.as_u16(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    response
}

/// A body over [`MAX_REQUEST_BYTES`] gets 413 with a JSON error that says what to do, in place
/// of axum's plain-text one; a `Content-Length` over it is refused before the body is read.
async fn explain_too_large(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let refusal = || {
        Failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"errors": [format!(
                "the request body is over the limit of {} MiB: send smaller batches (timeline golem ingest --batch N)",
                MAX_REQUEST_BYTES >> 20
            )]}),
        )
        .into_response()
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
        return refusal();
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return refusal();
    }
    response
}

/// Runs the server until Ctrl-C (or SIGTERM).
pub fn serve(a: &ServeArgs) -> Result<(), String> {
    let sys = TimelineSystem::load(&golem_emulator::components_dir(), &a.data)
        .map_err(|e| format!("{e:#}"))?;
    let (changes, watched) = tokio::sync::watch::channel(0u64);
    let app = App {
        in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(a.max_in_flight as usize)),
        max_in_flight: a.max_in_flight,
        changes: std::sync::Arc::new(changes),
        golem: sys.golem.clone(),
        verbose: a.verbose,
        answers: idempotency::Answers::open(&a.data),
        running: Default::default(),
        started: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let router = Router::new()
        .route("/version", get(version))
        .route("/v1/components", get(list_components))
        .route("/v1/components/{component}", get(component_versions))
        .route("/v1/components/{component}/latest", get(component_latest))
        .route(
            "/v1/components/{component}/versions/{version}",
            get(component_version),
        )
        .route(
            "/v1/components/{component}/workers",
            post(create_worker).get(list_workers),
        )
        .route(
            "/v1/components/{component}/workers/{name}",
            get(worker_metadata).delete(delete_worker),
        )
        .route(
            "/v1/components/{component}/workers/{name}/{action}",
            post(invoke),
        )
        .with_state(app.clone())
        .merge(dashboard::router(sys.golem.clone(), watched))
        .layer(axum::middleware::from_fn(explain_too_large))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn_with_state(app, log));
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", a.addr))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        // The first line says where to connect (with port 0, the port the system chose).
        println!("listening on http://{local} (data in {})", a.data.display());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| e.to_string())
    })?;
    eprintln!("stopped; every worker's state is in {}", a.data.display());
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
