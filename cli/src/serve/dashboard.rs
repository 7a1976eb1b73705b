//! The dashboard `timeline serve` shows at `/`: the jobs the core knows, a job's plan as a
//! graph, its keys (searched and paged on the workers, never listed whole) and each key's
//! timelines, drawn as on the page of `eval --format html`, updated live as events arrive.
//!
//! Everything it reads comes from the core (the plans) and from the node workers (keys, stats,
//! timelines), never from a driver: watching a job leaves the drivers' logs as they were. Its
//! API, under `/dashboard/`, is read-only JSON; errors are `{"error": …}` with 400 (bad
//! parameters) or 404 (unknown job).

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use golem_emulator::{Golem, Readers, TimelineSystem};
use golem_emulator::{NodeView, PlanView};
use serde_json::{json, Value as Json_};
use std::sync::Arc;
use std::time::Duration;
use timeline::aggregate::AggFn;
use timeline::value::ValueKey;
use timeline::{KeyQuery, Value};
use tokio::sync::{watch, Semaphore};

/// The most pages open on the live updates at once; more are refused with 503.
pub const MAX_WATCHERS: usize = 64;

/// The keys a page of the key list shows unless it asks for another number.
const DEFAULT_PAGE: u32 = 50;

#[derive(Clone)]
struct Dashboard {
    golem: Golem,
    /// Bumped by `serve` after every invocation that changes state (see [`changes`]).
    changes: watch::Receiver<u64>,
    watchers: Arc<Semaphore>,
    /// The node workers' readers, kept across requests (see [`Readers`]).
    readers: Readers,
    /// The jobs as of the last change seen (see [`Overview`]).
    overview: Arc<std::sync::Mutex<Option<Arc<Overview>>>>,
}

/// The jobs as of one change (`serve`'s count of state-changing invocations): their plans from
/// the core, and each one's events, last event time and keys from its workers. Asked once per
/// change, however many pages ask or how often: a read is a logged invocation of the worker
/// read, which it replays when it recovers.
struct Overview {
    version: u64,
    jobs: Vec<JobOverview>,
}

/// One job of an [`Overview`].
struct JobOverview {
    plan: PlanView,
    /// The events its first leaf received and their latest time (see [`leaf_stats`]).
    events: u64,
    last_time: Option<u64>,
    /// The keys of the node the key list shows.
    keys: u64,
}

impl Overview {
    /// Job `job`; 404 naming the jobs there are if it is not one.
    fn job(&self, job: &str) -> Result<&JobOverview, Refusal> {
        self.jobs
            .iter()
            .find(|j| j.plan.job_name == job)
            .ok_or_else(|| {
                let names: Vec<&str> = self.jobs.iter().map(|j| j.plan.job_name.as_str()).collect();
                Refusal(
                    StatusCode::NOT_FOUND,
                    format!("no job named {job:?}; jobs: [{}]", names.join(", ")),
                )
            })
    }
}

/// The functions whose invocation changes what the dashboard shows: a job submitted, events
/// ingested, a node initialised or fed.
pub fn changes_state(function: &str) -> bool {
    let name = function
        .rsplit_once('{')
        .map_or(function, |(_, f)| f.trim_end_matches('}'));
    matches!(
        name,
        "run"
            | "ingest"
            | "ingest-packed"
            | "ingest-from"
            | "initialize"
            | "initialize-aggregate"
            | "apply-deltas"
            | "apply-packed"
            | "apply-partials"
    )
}

/// The dashboard's routes: the page at `/` and its API under `/dashboard/`. `changes` is
/// bumped whenever an invocation changed state; open pages hear of it within a second.
pub fn router(golem: Golem, changes: watch::Receiver<u64>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/dashboard/jobs", get(jobs))
        .route("/dashboard/jobs/{job}/keys", get(keys))
        .route("/dashboard/jobs/{job}/timelines", get(timelines))
        .route("/dashboard/updates", get(updates))
        .with_state(Dashboard {
            golem,
            changes,
            watchers: Arc::new(Semaphore::new(MAX_WATCHERS)),
            readers: Readers::default(),
            overview: Arc::default(),
        })
}

/// A refusal: its status and what to do about it.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.into())
}

fn failed(e: anyhow::Error) -> Refusal {
    Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

impl Dashboard {
    /// Runs `f` on a reader of the system knowing the plans of `overview`, off the async
    /// threads.
    async fn read<T: Send + 'static>(
        &self,
        overview: Option<Arc<Overview>>,
        f: impl FnOnce(&TimelineSystem) -> Result<T, Refusal> + Send + 'static,
    ) -> Result<T, Refusal> {
        let golem = self.golem.clone();
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let sys = TimelineSystem::reader(golem).sharing_readers(readers);
            let sys = match &overview {
                Some(o) => sys.knowing(o.jobs.iter().map(|j| &j.plan)),
                None => sys,
            };
            f(&sys)
        })
        .await
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }

    /// The jobs as of the latest change: the one kept, else asked now.
    async fn overview(&self) -> Result<Arc<Overview>, Refusal> {
        let version = *self.changes.borrow();
        if let Some(o) = &*self.overview.lock().expect("lock") {
            if o.version == version {
                return Ok(o.clone());
            }
        }
        let overview = self
            .read(None, move |sys| {
                let jobs = sys
                    .core_jobs()
                    .map_err(failed)?
                    .into_iter()
                    .map(|plan| {
                        let (events, last_time) = leaf_stats(sys, &plan)?;
                        let keys = key_count(sys, &plan)?;
                        Ok(JobOverview {
                            plan,
                            events,
                            last_time,
                            keys,
                        })
                    })
                    .collect::<Result<Vec<_>, Refusal>>()?;
                Ok(Arc::new(Overview { version, jobs }))
            })
            .await?;
        *self.overview.lock().expect("lock") = Some(overview.clone());
        Ok(overview)
    }
}

/// The node whose keys the key list shows: the result, or for an aggregate the per-key node
/// it aggregates.
fn keyed_node(plan: &PlanView) -> &NodeView {
    let result = plan.result();
    if result.kind != "aggregate" {
        return result;
    }
    let partial = plan.nodes.iter().find(|n| n.kind == "partial");
    partial
        .and_then(|p| p.inputs.first())
        .and_then(|id| plan.nodes.iter().find(|n| &n.node_id == id))
        .unwrap_or(result)
}

/// A key as the dashboard's API names it: `s:` a string, `i:` an integer, `f:` a float, `b:` a
/// boolean, `-` the one key of a job without a key column.
fn key_id(key: Option<&Value>) -> String {
    match key {
        None => "-".into(),
        Some(Value::Str(s)) => format!("s:{s}"),
        Some(Value::Int(i)) => format!("i:{i}"),
        Some(Value::Float(f)) => format!("f:{f}"),
        Some(Value::Bool(b)) => format!("b:{b}"),
    }
}

/// Reads a key named as [`key_id`] writes it.
fn parse_key(id: &str) -> Result<Option<Value>, Refusal> {
    let malformed = || {
        bad(format!(
            "malformed key {id:?}: write s:TEXT, i:INTEGER, f:FLOAT, b:true or b:false, or - for a job without a key column"
        ))
    };
    if id == "-" {
        return Ok(None);
    }
    let (kind, text) = id.split_once(':').ok_or_else(malformed)?;
    let value = match kind {
        "s" => Value::Str(text.into()),
        "i" => Value::Int(text.parse().map_err(|_| malformed())?),
        "f" => Value::float(text.parse().map_err(|_| malformed())?).map_err(|_| malformed())?,
        "b" => Value::Bool(text.parse().map_err(|_| malformed())?),
        _ => return Err(malformed()),
    };
    Ok(Some(value))
}

/// A key as the page shows it.
fn key_text(key: Option<&Value>) -> String {
    match key {
        None => "(all events)".into(),
        Some(k) => timeline::worker::key_text(Some(k)),
    }
}

/// The page: static, with the charting library and the shared drawing embedded.
async fn page() -> Response {
    let html = include_str!("../../assets/dashboard.html")
        .replace("/*UPLOT_CSS*/", timeline_formats::html::UPLOT_CSS)
        .replace("/*UPLOT_JS*/", timeline_formats::html::UPLOT_JS)
        .replace("/*TIMELINES_JS*/", timeline_formats::html::TIMELINES_JS)
        .replace(
            "/*DASHBOARD_JS*/",
            include_str!("../../assets/dashboard.js"),
        );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// The events a job's first leaf received and their latest time, from its workers' own stats
/// (a reader counts no events): read once per change (see [`Overview`]).
/// The driver leaves out of a leaf's batch the events that cannot change it, so the count can
/// be below the events ingested; the latest time is exact (the event at a key's latest time is
/// always sent).
fn leaf_stats(sys: &TimelineSystem, plan: &PlanView) -> Result<(u64, Option<u64>), Refusal> {
    let mut events = 0;
    let mut last = None;
    if let Some(leaf) = plan.nodes.iter().find(|n| n.kind == "leaf") {
        for w in &leaf.workers {
            if sys.golem.worker_exists(w) {
                let s = sys.stats(w).map_err(failed)?;
                events += s.events;
                last = last.max(s.last_time);
            }
        }
    }
    Ok((events, last))
}

/// The keys of the node the key list shows, from its workers' readers' stats.
fn key_count(sys: &TimelineSystem, plan: &PlanView) -> Result<u64, Refusal> {
    let mut keys = 0;
    for w in &keyed_node(plan).workers {
        if sys.golem.worker_exists(w) {
            keys += sys.reader_stats(&plan.job_name, w).map_err(failed)?.keys;
        }
    }
    Ok(keys)
}

/// `GET /dashboard/jobs`: every job the core knows, with its plan and what it has ingested.
async fn jobs(State(d): State<Dashboard>) -> Result<Json<Json_>, Refusal> {
    let overview = d.overview().await?;
    let jobs: Vec<Json_> = overview
        .jobs
        .iter()
        .map(|job| {
            let plan = &job.plan;
            json!({
                "name": plan.job_name,
                "query": plan.query,
                "keyColumn": plan.key_column,
                "shards": plan.shards,
                "retention": plan.retention,
                "aggregate": plan.result().kind == "aggregate",
                "events": job.events,
                "lastTime": job.last_time,
                "keys": job.keys,
                "resultNode": plan.result_node,
                "keyedNode": keyed_node(plan).node_id,
                "nodes": plan.nodes.iter().map(|n| json!({
                    "id": n.node_id,
                    "kind": n.kind,
                    "operator": n.operator,
                    "expression": n.expression,
                    "inputs": n.inputs,
                    "workers": n.workers.iter().map(|w| &w.worker_name).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"version": overview.version, "jobs": jobs})))
}

#[derive(serde::Deserialize)]
struct KeysQuery {
    search: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /dashboard/jobs/{job}/keys?search=&after=&limit=`: one page of the job's keys in key
/// order, merged from the pages of its shards' workers; `next` is the `after` of the next page.
async fn keys(
    State(d): State<Dashboard>,
    Path(job): Path<String>,
    Query(q): Query<KeysQuery>,
) -> Result<Json<Json_>, Refusal> {
    let limit = match q.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(n) => n.parse::<u32>().map_err(|_| {
            bad(format!(
                "limit {n:?} is not a number of keys from 1 to {}",
                timeline::limits::MAX_KEY_PAGE
            ))
        })?,
    };
    let query = KeyQuery {
        after: q.after.as_deref().map(parse_key).transpose()?.flatten(),
        search: q.search.filter(|s| !s.is_empty()),
        limit,
    };
    query.check().map_err(bad)?;
    let overview = d.overview().await?;
    let plan = overview.job(&job)?.plan.clone();
    d.read(Some(overview), move |sys| {
        let mut keys: Vec<Option<Value>> = Vec::new();
        let mut matching = 0;
        for w in &keyed_node(&plan).workers {
            if !sys.golem.worker_exists(w) {
                continue;
            }
            let page = sys.key_page(&job, w, &query).map_err(failed)?;
            matching += page.matching;
            keys.extend(page.keys);
        }
        keys.sort_by_cached_key(|k| k.as_ref().map(ValueKey::from));
        let more = keys.len() > limit as usize;
        keys.truncate(limit as usize);
        // A job without a key column has one key: there is nothing after it.
        let next = match keys.last() {
            Some(Some(k)) if more => Some(key_id(Some(k))),
            _ => None,
        };
        Ok(Json(json!({
            "keys": keys.iter().map(|k| json!({"id": key_id(k.as_ref()), "text": key_text(k.as_ref())})).collect::<Vec<_>>(),
            "matching": matching,
            "next": next,
        })))
    })
    .await
}

#[derive(serde::Deserialize)]
struct TimelinesQuery {
    key: Option<String>,
}

/// `GET /dashboard/jobs/{job}/timelines?key=ID`: the charts of every per-key node for the key
/// (leaves on top, the result at the bottom) and, for an aggregate, each function per group.
async fn timelines(
    State(d): State<Dashboard>,
    Path(job): Path<String>,
    Query(q): Query<TimelinesQuery>,
) -> Result<Json<Json_>, Refusal> {
    let key = q.key.as_deref().map(parse_key).transpose()?;
    let overview = d.overview().await?;
    let (plan, last) = {
        let job = overview.job(&job)?;
        (job.plan.clone(), job.last_time.unwrap_or(0))
    };
    d.read(Some(overview), move |sys| {
        let aggregate = plan.result().kind == "aggregate";
        let keyed = keyed_node(&plan).node_id.clone();
        // A little past the last event, so that what grows is seen growing.
        let end = last + last / 10 + 2;
        let mut charts = Vec::new();
        let mut nodes = Vec::new();
        if let Some(key) = &key {
            let label = key_text(key.as_ref());
            let mut per_key: Vec<&NodeView> = plan
                .nodes
                .iter()
                .filter(|n| n.kind == "leaf" || n.kind == "derived")
                .collect();
            per_key.sort_by_key(|n| n.kind != "leaf");
            for node in per_key {
                let op = node.expression.parse::<timeline::TimeLineOp>().ok();
                let segments =
                    match sys.result_range(&job, Some(&node.node_id), key.as_ref(), 0, end) {
                        Ok(segments) => segments,
                        // A derived node that no change of this key reached yet holds its
                        // initial value.
                        Err(e) if format!("{e:#}").contains("no events have arrived for key") => {
                            match (&op, node.node_id == keyed) {
                                (Some(op), false) => vec![timeline::Segment {
                                    from: 0,
                                    to: None,
                                    state: op.initial_state(),
                                }],
                                _ => return Err(Refusal(StatusCode::NOT_FOUND, format!("{e:#}"))),
                            }
                        }
                        Err(e) => return Err(failed(e)),
                    };
                let role = if node.node_id == plan.result_node {
                    "derived, the result"
                } else {
                    node.kind.as_str()
                };
                let ty = op.as_ref().map(|op| op.output_type());
                charts.push(timeline_formats::html::node_chart(
                    format!("[{role}] {}", node.expression),
                    ty,
                    &[(label.clone(), segments)],
                    end,
                ));
                nodes.push(node.node_id.clone());
            }
        }
        if aggregate {
            let rows = sys
                .aggregate_range(&job, &timeline::aggregate::GroupSelector::All, 0, end)
                .map_err(failed)?;
            let mut functions: Vec<AggFn> = rows.iter().map(|(_, f, _)| *f).collect();
            functions.sort_by_key(|f| f.to_string());
            functions.dedup();
            // Each group's members at the last event.
            let now = sys
                .aggregate_result(&job, &timeline::aggregate::GroupSelector::All, last)
                .map_err(failed)?;
            let members =
                |group: &Option<Value>| now.iter().find(|r| &r.group == group).map(|r| r.members);
            for f in functions {
                let mut groups: Vec<(String, Vec<timeline::aggregate::AggSegment>)> = Vec::new();
                for (g, _, s) in rows.iter().filter(|(_, rf, _)| *rf == f) {
                    let mut label = g.as_ref().map_or("null".to_string(), |v| key_text(Some(v)));
                    if let Some(n) = members(g) {
                        label = format!("{label} ({n} members)");
                    }
                    match groups.iter_mut().find(|(l, _)| *l == label) {
                        Some((_, segs)) => segs.push(s.clone()),
                        None => groups.push((label, vec![s.clone()])),
                    }
                }
                charts.push(timeline_formats::html::aggregate_chart(
                    format!("[aggregate, the result] {f} per group"),
                    f,
                    &groups,
                    end,
                ));
                nodes.push(plan.result_node.clone());
            }
        }
        Ok(Json(json!({
            "key": key.as_ref().map(|k| key_text(k.as_ref())),
            "end": end,
            "charts": timeline_formats::html::charts_json(&charts),
            "nodes": nodes,
        })))
    })
    .await
}

/// `GET /dashboard/updates`: server-sent events, one (`data:` the change count) each time
/// state changed, at most four a second; at most [`MAX_WATCHERS`] at once.
async fn updates(State(d): State<Dashboard>) -> Response {
    let Ok(permit) = d.watchers.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(json!({"error": format!("more than {MAX_WATCHERS} pages are watching: close one, or try again later")})),
        )
            .into_response();
    };
    let mut rx = d.changes.clone();
    rx.mark_changed();
    let stream = futures_util::stream::unfold((rx, permit), |(mut rx, permit)| async move {
        rx.changed().await.ok()?;
        // Changes in a burst (a batch flowing up the plan) are told once.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let version = *rx.borrow_and_update();
        let event = Event::default().event("change").data(version.to_string());
        Some((Ok::<_, std::convert::Infallible>(event), (rx, permit)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_round_trip() {
        for key in [
            None,
            Some(Value::Str("s:1 é".into())),
            Some(Value::Int(-42)),
            Some(Value::float(2.5).unwrap()),
            Some(Value::Bool(true)),
        ] {
            assert_eq!(parse_key(&key_id(key.as_ref())).ok(), Some(key));
        }
        for bad in ["", "x", "q:1", "i:1.5", "f:NaN", "b:yes", "i:"] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any text a page (or anyone) sends as a key is read or refused, never a panic, and
        /// whatever is read is written back the same.
        #[test]
        fn any_key_text_is_read_or_refused(text in "\\PC{0,40}", kind in "[sifb-]:?") {
            for id in [text.clone(), format!("{kind}{text}")] {
                if let Ok(key) = parse_key(&id) {
                    proptest::prop_assert_eq!(parse_key(&key_id(key.as_ref())).ok(), Some(key));
                }
            }
        }
    }

    #[test]
    fn what_changes_state() {
        assert!(changes_state("timeline:driver/api.{ingest-packed}"));
        assert!(changes_state("timeline:driver/api.{ingest-from}"));
        assert!(changes_state(
            "timeline:timeline-processor/api.{apply-deltas}"
        ));
        assert!(!changes_state("timeline:event-processor/api.{get-range}"));
        assert!(!changes_state("timeline:core/api.{jobs}"));
    }
}
