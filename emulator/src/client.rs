//! A typed client for the timeline components: what a user does over HTTP, in Rust.

use crate::emulator::{component_id, Golem, WorkerId};
use anyhow::{anyhow, bail, Context, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use timeline::aggregate::{AggFn, AggSegment, GroupRow, GroupSelector, Num};
use timeline::{Event, Segment, State, Value};
use wasmtime::component::Val;

/// The components, by Golem name and the file `cargo component build --release` makes.
pub const COMPONENTS: [(&str, &str); 4] = [
    ("driver", "driver.wasm"),
    ("core", "timeline_core.wasm"),
    ("event-processor", "event_processor.wasm"),
    ("timeline-processor", "timeline_processor.wasm"),
];

/// Where the built components are: `$TIMELINE_COMPONENTS_DIR`, else
/// `target/wasm32-wasip1/release` of the workspace.
pub fn components_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TIMELINE_COMPONENTS_DIR") {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the emulator crate is in the workspace");
    workspace.join("target/wasm32-wasip1/release")
}

/// The four timeline components on an emulated Golem, and the driver worker users call.
///
/// Results are read as a client over HTTP should read them: from the newest reader of the node
/// worker the job's plan names for the key (its shard's), found from the workers that exist
/// (the driver's `reader` makes the first), so that no worker's log, replayed when it
/// recovers, grows with the number of reads. The plans and readers are kept here once seen.
pub struct TimelineSystem {
    pub golem: Golem,
    pub driver: WorkerId,
    plans: RefCell<HashMap<String, PlanView>>,
    readers: Readers,
}

/// The readers a client knows, by job and node worker name: kept across the [`TimelineSystem`]s
/// that share it (a server's requests), so that the driver is asked once per node worker.
pub type Readers = Arc<Mutex<HashMap<(String, String), WorkerId>>>;

const DRIVER_API: &str = "timeline:driver/api";

/// A value as the WIT `event-value` variant.
pub fn event_value(v: &Value) -> Val {
    let (case, payload) = match v {
        Value::Str(s) => ("string-value", Val::String(s.to_string())),
        Value::Int(i) => ("int-value", Val::S64(*i)),
        Value::Float(f) => ("float-value", Val::Float64(*f)),
        Value::Bool(b) => ("bool-value", Val::Bool(*b)),
    };
    Val::Variant(case.into(), Some(Box::new(payload)))
}

fn read_event_value(v: &Val) -> Result<Value> {
    Ok(match v {
        Val::Variant(case, Some(p)) => match (case.as_str(), &**p) {
            ("string-value", Val::String(s)) => Value::str(s),
            ("int-value", Val::S64(i)) => Value::Int(*i),
            ("float-value", Val::Float64(f)) => Value::Float(*f),
            ("bool-value", Val::Bool(b)) => Value::Bool(*b),
            _ => bail!("bad event-value {v:?}"),
        },
        _ => bail!("bad event-value {v:?}"),
    })
}

fn opt(v: Option<Val>) -> Val {
    Val::Option(v.map(Box::new))
}

/// The `event` record.
pub fn event_val(e: &Event) -> Val {
    Val::Record(vec![
        ("time".into(), Val::U64(e.time)),
        (
            "event".into(),
            Val::List(
                e.fields
                    .iter()
                    .map(|(c, v)| Val::Tuple(vec![Val::String(c.to_string()), event_value(v)]))
                    .collect(),
            ),
        ),
    ])
}

/// The rows an aggregate merge worker answered (`list<group-row>`).
fn group_rows(answer: Option<Val>, function: &str) -> Result<Vec<GroupRow>> {
    match answer {
        Some(Val::List(rows)) => rows
            .iter()
            .map(|r| {
                let values = match field(r, "values")? {
                    Val::List(vs) => vs
                        .iter()
                        .map(|v| {
                            let f = string(field(v, "function")?)?;
                            let f = AggFn::from_name(&f).context("function")?;
                            Ok((f, read_opt_number(field(v, "value")?)?))
                        })
                        .collect::<Result<Vec<_>>>()?,
                    other => bail!("values: {other:?}"),
                };
                Ok(GroupRow {
                    group: read_opt_value(field(r, "group")?)?,
                    at: match field(r, "at")? {
                        Val::U64(t) => *t,
                        other => bail!("at: {other:?}"),
                    },
                    members: match field(r, "members")? {
                        Val::U64(n) => *n,
                        other => bail!("members: {other:?}"),
                    },
                    values,
                })
            })
            .collect(),
        other => bail!("{function} returned {other:?}"),
    }
}

/// A WIT `state` as the library's [`State`].
pub fn read_state(v: &Val) -> Result<State> {
    Ok(match v {
        Val::Variant(case, p) => match (case.as_str(), p.as_deref()) {
            ("unknown", None) => State::Unknown,
            ("value", Some(x)) => State::Value(read_event_value(x)?),
            ("duration", Some(Val::Tuple(xs))) => match xs.as_slice() {
                [Val::S64(value), Val::U8(slope @ (0 | 1))] => State::duration(*value, *slope),
                _ => bail!("bad duration {v:?}"),
            },
            _ => bail!("bad state {v:?}"),
        },
        _ => bail!("bad state {v:?}"),
    })
}

/// The `group-selector` variant.
pub fn selector_val(g: &GroupSelector) -> Val {
    match g {
        GroupSelector::All => Val::Variant("all".into(), None),
        GroupSelector::One(k) => match k.value() {
            None => Val::Variant("unknown".into(), None),
            Some(v) => Val::Variant("value".into(), Some(Box::new(event_value(&v)))),
        },
    }
}

fn read_opt_value(v: &Val) -> Result<Option<Value>> {
    match v {
        Val::Option(x) => x.as_deref().map(read_event_value).transpose(),
        other => bail!("not an option: {other:?}"),
    }
}

fn read_number(v: &Val) -> Result<Num> {
    match v {
        Val::Variant(case, Some(p)) => match (case.as_str(), &**p) {
            ("int", Val::S64(i)) => Ok(Num::Int(*i)),
            ("float", Val::Float64(f)) => Ok(Num::Float(*f)),
            _ => bail!("bad agg-number {v:?}"),
        },
        _ => bail!("bad agg-number {v:?}"),
    }
}

fn read_opt_number(v: &Val) -> Result<Option<Num>> {
    match v {
        Val::Option(x) => x.as_deref().map(read_number).transpose(),
        other => bail!("not an option: {other:?}"),
    }
}

/// A field of a record value.
pub fn field<'a>(v: &'a Val, name: &str) -> Result<&'a Val> {
    match v {
        Val::Record(fs) => fs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| anyhow!("no field {name} in {v:?}")),
        _ => bail!("not a record: {v:?}"),
    }
}

/// An `option<u64>` field of a record.
fn opt_u64(v: &Val, name: &str) -> Result<Option<u64>> {
    match field(v, name)? {
        Val::Option(x) => match x.as_deref() {
            Some(Val::U64(t)) => Ok(Some(*t)),
            None => Ok(None),
            other => bail!("{name}: {other:?}"),
        },
        other => bail!("{name}: {other:?}"),
    }
}

fn string(v: &Val) -> Result<String> {
    match v {
        Val::String(s) => Ok(s.clone()),
        _ => bail!("not a string: {v:?}"),
    }
}

/// Unwraps a `result<T, string>`.
fn ok(v: Vec<Val>) -> Result<Option<Val>> {
    match v.into_iter().next() {
        Some(Val::Result(Ok(x))) => Ok(x.map(|b| *b)),
        Some(Val::Result(Err(Some(e)))) => match *e {
            Val::String(s) => Err(anyhow!(s)),
            other => bail!("error {other:?}"),
        },
        other => bail!("expected a result, found {other:?}"),
    }
}

/// Reads a `worker-stats` record.
fn read_stats(v: &Val) -> Result<WorkerStats> {
    let n = |name: &str| match field(v, name) {
        Ok(Val::U64(x)) => Ok(*x),
        other => Err(anyhow!("{name}: {other:?}")),
    };
    Ok(WorkerStats {
        keys: n("keys")?,
        change_points: n("change-points")?,
        event_rows: n("event-rows")?,
        mismatches: n("mismatches")?,
        bytes: n("bytes")?,
        history_dropped: n("history-dropped")?,
        events: n("events")?,
        last_time: opt_u64(v, "last-time")?,
    })
}

/// A plan as the driver returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanView {
    pub job_name: String,
    pub query: String,
    pub key_column: Option<String>,
    pub shards: u32,
    pub retention: Option<u64>,
    pub result_node: String,
    pub nodes: Vec<NodeView>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    pub node_id: String,
    pub kind: String,
    pub operator: String,
    pub expression: String,
    pub workers: Vec<WorkerId>,
    pub inputs: Vec<String>,
}

impl PlanView {
    fn read(v: &Val) -> Result<PlanView> {
        let nodes = match field(v, "nodes")? {
            Val::List(ns) => ns
                .iter()
                .map(|n| {
                    let workers = match field(n, "workers")? {
                        Val::List(ws) => ws
                            .iter()
                            .map(|w| {
                                Ok(WorkerId {
                                    component_id: string(field(w, "component-id")?)?,
                                    worker_name: string(field(w, "worker-name")?)?,
                                })
                            })
                            .collect::<Result<_>>()?,
                        other => bail!("workers: {other:?}"),
                    };
                    let inputs = match field(n, "inputs")? {
                        Val::List(xs) => xs.iter().map(string).collect::<Result<_>>()?,
                        other => bail!("inputs: {other:?}"),
                    };
                    Ok(NodeView {
                        node_id: string(field(n, "node-id")?)?,
                        kind: string(field(n, "kind")?)?,
                        operator: string(field(n, "operator")?)?,
                        expression: string(field(n, "expression")?)?,
                        workers,
                        inputs,
                    })
                })
                .collect::<Result<_>>()?,
            other => bail!("nodes: {other:?}"),
        };
        Ok(PlanView {
            job_name: string(field(v, "job-name")?)?,
            query: string(field(v, "query")?)?,
            key_column: match field(v, "key-column")? {
                Val::Option(c) => c.as_deref().map(string).transpose()?,
                other => bail!("key-column: {other:?}"),
            },
            retention: opt_u64(v, "retention")?,
            shards: match field(v, "shards")? {
                Val::U32(n) => *n,
                other => bail!("shards: {other:?}"),
            },
            result_node: string(field(v, "result-node")?)?,
            nodes,
        })
    }

    /// The node computing the job's result.
    pub fn result(&self) -> &NodeView {
        self.nodes
            .iter()
            .find(|n| n.node_id == self.result_node)
            .expect("the result node is in the plan")
    }

    /// The worker holding `key` for node `node` (the result node if none), as the driver's
    /// `locate` finds it: the worker of the key's shard, or a node's only worker.
    pub fn locate(&self, node: Option<&str>, key: Option<&Value>) -> Result<&WorkerId> {
        let id = node.unwrap_or(&self.result_node);
        let node = self
            .nodes
            .iter()
            .find(|n| n.node_id == id)
            .ok_or_else(|| anyhow!("job \"{}\" has no node {id}", self.job_name))?;
        let shard = timeline::worker_index(key, self.shards, node.workers.len());
        node.workers
            .get(shard)
            .ok_or_else(|| anyhow!("node {id} has no worker for shard {shard}"))
    }
}

/// Worker statistics (the `worker-stats` record).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerStats {
    pub keys: u64,
    pub change_points: u64,
    pub event_rows: u64,
    pub mismatches: u64,
    pub bytes: u64,
    pub history_dropped: u64,
    pub events: u64,
    pub last_time: Option<u64>,
}

impl TimelineSystem {
    /// Loads the built components from `dir`, keeps worker logs under `log_dir`, and creates
    /// the driver worker with the other components' ids (unless it exists), as a user does
    /// once on a Golem server.
    pub fn start(dir: &Path, log_dir: &Path) -> Result<TimelineSystem> {
        let sys = TimelineSystem::load(dir, log_dir)?;
        sys.create_driver()?;
        Ok(sys)
    }

    /// Loads the built components from `dir` and keeps worker logs under `log_dir`, creating no
    /// worker: a fresh server, as `timeline serve` starts.
    pub fn load(dir: &Path, log_dir: &Path) -> Result<TimelineSystem> {
        let mut paths = Vec::new();
        for (name, file) in COMPONENTS {
            let path = dir.join(file);
            if !path.exists() {
                bail!(
                    "{} is missing: build the components first with `cargo component build --release -p driver -p timeline-core -p event-processor -p timeline-processor` (see .ci/run)",
                    path.display()
                );
            }
            paths.push((name, path));
        }
        let refs: Vec<(&str, &Path)> = paths.iter().map(|(n, p)| (*n, p.as_path())).collect();
        Ok(TimelineSystem::reader(Golem::new(&refs, log_dir)?))
    }

    /// A reader of the system's jobs that creates no worker but readers: plans come from the
    /// core ([`TimelineSystem::core_jobs`]), results from the node workers' readers (found from
    /// the workers that exist, the first made by the driver's `reader`, kept in [`Readers`]).
    /// This is how a dashboard watches jobs without growing any worker's log with its reads.
    pub fn reader(golem: Golem) -> TimelineSystem {
        TimelineSystem {
            golem,
            driver: WorkerId {
                component_id: component_id("driver"),
                worker_name: "timeline-driver".into(),
            },
            plans: RefCell::default(),
            readers: Readers::default(),
        }
    }

    /// The same reader of the system, knowing the readers `readers` knows and keeping those it
    /// learns there.
    pub fn sharing_readers(mut self, readers: Readers) -> TimelineSystem {
        self.readers = readers;
        self
    }

    /// The plans of every job, from the core worker (`timeline-core`, which every driver
    /// submits to); none before a job ran. Later reads of these jobs use these plans.
    pub fn core_jobs(&self) -> Result<Vec<PlanView>> {
        let core = WorkerId {
            component_id: component_id("core"),
            worker_name: "timeline-core".into(),
        };
        if !self.golem.worker_exists(&core) {
            return Ok(Vec::new());
        }
        match self
            .golem
            .invoke(&core, "timeline:core/api.{jobs}", &[])?
            .as_slice()
        {
            [Val::List(plans)] => plans
                .iter()
                .map(|p| Ok(self.keep(PlanView::read(p)?)))
                .collect(),
            other => bail!("the core's jobs returned {other:?}"),
        }
    }

    /// The same system, reached through the driver worker `driver` (any name: a driver worker
    /// per job or per client, created here if it does not exist), knowing no plan yet.
    pub fn through(&self, driver: &str) -> TimelineSystem {
        let sys = TimelineSystem {
            golem: self.golem.clone(),
            driver: WorkerId {
                component_id: self.driver.component_id.clone(),
                worker_name: driver.into(),
            },
            plans: RefCell::default(),
            readers: Readers::default(),
        };
        sys.create_driver().expect("the driver worker is created");
        sys
    }

    /// Creates the driver worker with the other components' ids in its environment, as a user
    /// does on Golem (a worker created by its first invocation has no environment); nothing
    /// if it exists.
    pub fn create_driver(&self) -> Result<()> {
        if self.golem.worker_exists(&self.driver) {
            return Ok(());
        }
        self.golem
            .create_worker(&self.driver, &self.golem.driver_env())
    }

    /// The same reader of the system, knowing `plans` (as the core gave them) for its reads.
    pub fn knowing<'a>(self, plans: impl IntoIterator<Item = &'a PlanView>) -> TimelineSystem {
        for plan in plans {
            self.keep(plan.clone());
        }
        self
    }

    /// Keeps a plan the driver returned, for reads.
    fn keep(&self, plan: PlanView) -> PlanView {
        self.plans
            .borrow_mut()
            .insert(plan.job_name.clone(), plan.clone());
        plan
    }

    /// The plan of job `job`: the one seen, else the driver's (`jobs`).
    pub fn plan(&self, job: &str) -> Result<PlanView> {
        if let Some(plan) = self.plans.borrow().get(job) {
            return Ok(plan.clone());
        }
        let plans = self.jobs()?;
        let names: Vec<&str> = plans.iter().map(|p| p.job_name.as_str()).collect();
        match plans.iter().find(|p| p.job_name == job) {
            Some(plan) => Ok(plan.clone()),
            None => bail!("no job named \"{job}\"; jobs: [{}]", names.join(", ")),
        }
    }

    /// The interface a node worker (an event-processor's or a timeline-processor's) exports.
    fn node_interface(&self, worker: &WorkerId) -> Result<&'static str> {
        match self.golem.component_name(&worker.component_id) {
            Some("event-processor") => Ok("timeline:event-processor/api"),
            Some("timeline-processor") => Ok("timeline:timeline-processor/api"),
            other => bail!("{other:?} workers are not node workers"),
        }
    }

    /// Calls `function` of a node worker (an event-processor's or a timeline-processor's).
    fn call_node(&self, worker: &WorkerId, function: &str, params: &[Val]) -> Result<Option<Val>> {
        let interface = self.node_interface(worker)?;
        ok(self
            .golem
            .invoke(worker, &format!("{interface}.{{{function}}}"), params)?)
    }

    /// Calls `function` of the node worker holding `key` for node `node` of job `job`, through
    /// its reader.
    fn read(
        &self,
        job: &str,
        node: Option<&str>,
        key: Option<&Value>,
        function: &str,
        params: &[Val],
    ) -> Result<Option<Val>> {
        let plan = self.plan(job)?;
        self.read_worker(job, plan.locate(node, key)?, function, params)
    }

    /// Calls `function` of the node worker `worker` of job `job` through its reader: the one
    /// known, else the newest generation that exists (the driver's `reader` makes the first);
    /// a reader that handed over is followed to its successor.
    pub fn read_worker(
        &self,
        job: &str,
        worker: &WorkerId,
        function: &str,
        params: &[Val],
    ) -> Result<Option<Val>> {
        use timeline::readers::{next_reader, MAX_HOPS};
        let id = (job.to_string(), worker.worker_name.clone());
        let known = self.readers.lock().expect("lock").get(&id).cloned();
        let mut reader = match known {
            Some(r) => r,
            None => self.newest_reader(job, worker)?,
        };
        for _ in 0..MAX_HOPS {
            let answer = self.call_node(&reader, function, params);
            let error = answer
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let Some(next) = next_reader(&worker.worker_name, &reader.worker_name, &error) else {
                // The reader answered (a refusal of the read itself is an answer): keep it.
                self.readers.lock().expect("lock").insert(id, reader);
                return answer;
            };
            reader.worker_name = next;
        }
        bail!(
            "the readers of {} kept handing over: read again",
            worker.worker_name
        )
    }

    /// The newest reader of `worker` of job `job` that exists (looking is not an invocation,
    /// so no worker's log grows); the driver's `reader` makes the first if there is none.
    fn newest_reader(&self, job: &str, worker: &WorkerId) -> Result<WorkerId> {
        let first = WorkerId {
            component_id: component_id("timeline-processor"),
            worker_name: timeline::readers::reader_name(&worker.worker_name, 0),
        };
        if !self.golem.worker_exists(&first) {
            let made = self.first_reader(job, worker)?;
            if made != first {
                return Ok(made);
            }
        }
        let generation = |g| WorkerId {
            component_id: first.component_id.clone(),
            worker_name: timeline::readers::reader_name(&worker.worker_name, g),
        };
        let newest =
            timeline::readers::newest_generation(|g| self.golem.worker_exists(&generation(g)));
        Ok(generation(newest))
    }

    /// `driver.reader`: the first reader of `worker` of job `job`, made if it is not there.
    fn first_reader(&self, job: &str, worker: &WorkerId) -> Result<WorkerId> {
        let interface = self.node_interface(worker)?;
        let worker_ref = Val::Record(vec![
            (
                "component-id".into(),
                Val::String(worker.component_id.clone()),
            ),
            (
                "worker-name".into(),
                Val::String(worker.worker_name.clone()),
            ),
            ("interface".into(), Val::String(interface.into())),
        ]);
        let answer = ok(self.call("reader", &[Val::String(job.into()), worker_ref])?)?
            .context("reader answered nothing")?;
        Ok(WorkerId {
            component_id: string(field(&answer, "component-id")?)?,
            worker_name: string(field(&answer, "worker-name")?)?,
        })
    }

    /// Calls `function` of an aggregate job's merge worker (its result node's one worker),
    /// through its reader.
    fn read_aggregate(&self, job: &str, function: &str, params: &[Val]) -> Result<Option<Val>> {
        let plan = self.plan(job)?;
        if plan.result().kind != "aggregate" {
            bail!("job \"{job}\" does not aggregate across keys: read its result per key with result or result-range");
        }
        self.read_worker(job, plan.locate(None, None)?, function, params)
    }

    /// `driver.locate`: the worker holding `key` for node `node` (the result node if none).
    pub fn locate(&self, job: &str, node: Option<&str>, key: Option<&Value>) -> Result<WorkerId> {
        let params = [
            Val::String(job.into()),
            opt(node.map(|n| Val::String(n.into()))),
            opt(key.map(event_value)),
        ];
        let worker = ok(self.call("locate", &params)?)?.context("no worker")?;
        Ok(WorkerId {
            component_id: string(field(&worker, "component-id")?)?,
            worker_name: string(field(&worker, "worker-name")?)?,
        })
    }

    fn call(&self, function: &str, params: &[Val]) -> Result<Vec<Val>> {
        self.golem.invoke(
            &self.driver,
            &format!("{DRIVER_API}.{{{function}}}"),
            params,
        )
    }

    fn options(job: &str, key_column: Option<&str>, shards: u32, retention: Option<u64>) -> Val {
        Val::Record(vec![
            ("job-name".into(), Val::String(job.into())),
            (
                "key-column".into(),
                opt(key_column.map(|k| Val::String(k.into()))),
            ),
            ("shards".into(), Val::U32(shards)),
            ("retention".into(), opt(retention.map(Val::U64))),
        ])
    }

    /// `driver.run` with a DSL query.
    pub fn run(
        &self,
        job: &str,
        query: &str,
        key_column: Option<&str>,
        shards: u32,
        retention: Option<u64>,
    ) -> Result<PlanView> {
        let q = Val::Variant("text".into(), Some(Box::new(Val::String(query.into()))));
        let plan = ok(self.call(
            "run",
            &[q, Self::options(job, key_column, shards, retention)],
        )?)?
        .context("no plan")?;
        Ok(self.keep(PlanView::read(&plan)?))
    }

    /// `driver.run` with any query value (a flat tree, say).
    pub fn run_query(&self, job: &str, query: Val, key_column: Option<&str>) -> Result<PlanView> {
        let plan = ok(self.call("run", &[query, Self::options(job, key_column, 1, None)])?)?
            .context("no plan")?;
        Ok(self.keep(PlanView::read(&plan)?))
    }

    /// `driver.explain`.
    pub fn explain(&self, job: &str, query: &str) -> Result<PlanView> {
        let q = Val::Variant("text".into(), Some(Box::new(Val::String(query.into()))));
        let plan = ok(self.call("explain", &[q, Self::options(job, None, 1, None)])?)?
            .context("no plan")?;
        PlanView::read(&plan)
    }

    /// `driver.jobs`: the plans of every job.
    pub fn jobs(&self) -> Result<Vec<PlanView>> {
        match self.call("jobs", &[])?.as_slice() {
            [Val::List(plans)] => plans
                .iter()
                .map(|p| Ok(self.keep(PlanView::read(p)?)))
                .collect(),
            other => bail!("jobs returned {other:?}"),
        }
    }

    /// `driver.ingest`: returns the number of worker calls it made.
    pub fn ingest(&self, job: &str, events: &[Event]) -> Result<u32> {
        let list = Val::List(events.iter().map(event_val).collect());
        match ok(self.call("ingest", &[Val::String(job.into()), list])?)? {
            Some(Val::U32(n)) => Ok(n),
            other => bail!("ingest returned {other:?}"),
        }
    }

    /// `driver.ingest-packed`: the events packed in one string (`timeline::wire`).
    pub fn ingest_packed(&self, job: &str, packed: &str) -> Result<u32> {
        let params = [Val::String(job.into()), Val::String(packed.into())];
        match ok(self.call("ingest-packed", &params)?)? {
            Some(Val::U32(n)) => Ok(n),
            other => bail!("ingest-packed returned {other:?}"),
        }
    }

    /// `driver.ingest-from`: events at `offsets` of `source`, applied once.
    pub fn ingest_from(
        &self,
        job: &str,
        source: &str,
        offsets: &[u64],
        end: u64,
        packed: &str,
    ) -> Result<u32> {
        let params = [
            Val::String(job.into()),
            Val::String(source.into()),
            Val::List(offsets.iter().map(|o| Val::U64(*o)).collect()),
            Val::U64(end),
            Val::String(packed.into()),
        ];
        match ok(self.call("ingest-from", &params)?)? {
            Some(Val::U32(n)) => Ok(n),
            other => bail!("ingest-from returned {other:?}"),
        }
    }

    /// `driver.source-position`: how far `ingest-from` applied `source` for the job.
    pub fn source_position(&self, job: &str, source: &str) -> Result<u64> {
        match self
            .call(
                "source-position",
                &[Val::String(job.into()), Val::String(source.into())],
            )?
            .as_slice()
        {
            [Val::U64(n)] => Ok(*n),
            other => bail!("source-position returned {other:?}"),
        }
    }

    /// The job's result (or node `node`'s) at `t` for `key`: `get-result` of the worker
    /// holding the key.
    pub fn result(
        &self,
        job: &str,
        node: Option<&str>,
        key: Option<&Value>,
        t: u64,
    ) -> Result<State> {
        let params = [opt(key.map(event_value)), Val::U64(t)];
        read_state(
            &self
                .read(job, node, key, "get-result", &params)?
                .context("no state")?,
        )
    }

    /// The segments over `[t1, t2)` of the job's result (or node `node`'s) for `key`:
    /// `get-range` of the worker holding the key.
    pub fn result_range(
        &self,
        job: &str,
        node: Option<&str>,
        key: Option<&Value>,
        t1: u64,
        t2: u64,
    ) -> Result<Vec<Segment>> {
        let params = [opt(key.map(event_value)), Val::U64(t1), Val::U64(t2)];
        match self.read(job, node, key, "get-range", &params)? {
            Some(Val::List(segments)) => segments
                .iter()
                .map(|s| {
                    Ok(Segment {
                        from: match field(s, "from")? {
                            Val::U64(x) => *x,
                            other => bail!("from: {other:?}"),
                        },
                        to: opt_u64(s, "to")?,
                        state: read_state(field(s, "state")?)?,
                    })
                })
                .collect(),
            other => bail!("get-range returned {other:?}"),
        }
    }

    /// An aggregate job's rows at `t` for the selected groups: `aggregate-at` of its merge worker.
    pub fn aggregate_result(
        &self,
        job: &str,
        groups: &GroupSelector,
        t: u64,
    ) -> Result<Vec<GroupRow>> {
        let params = [selector_val(groups), Val::U64(t)];
        group_rows(
            self.read_aggregate(job, "aggregate-at", &params)?,
            "aggregate-at",
        )
    }

    /// An aggregate job's rows at each of `times`, time after time, in one invocation:
    /// `aggregate-at-times` of its merge worker.
    pub fn aggregate_results(
        &self,
        job: &str,
        groups: &GroupSelector,
        times: &[u64],
    ) -> Result<Vec<GroupRow>> {
        let times = Val::List(times.iter().map(|t| Val::U64(*t)).collect());
        let params = [selector_val(groups), times];
        group_rows(
            self.read_aggregate(job, "aggregate-at-times", &params)?,
            "aggregate-at-times",
        )
    }

    /// An aggregate job's segments over `[t1, t2)`, per selected group and function:
    /// `aggregate-range` of its merge worker.
    pub fn aggregate_range(
        &self,
        job: &str,
        groups: &GroupSelector,
        t1: u64,
        t2: u64,
    ) -> Result<Vec<(Option<Value>, AggFn, AggSegment)>> {
        let params = [selector_val(groups), Val::U64(t1), Val::U64(t2)];
        match self.read_aggregate(job, "aggregate-range", &params)? {
            Some(Val::List(segments)) => segments
                .iter()
                .map(|s| {
                    let f =
                        AggFn::from_name(&string(field(s, "function")?)?).context("function")?;
                    let to = opt_u64(s, "to")?;
                    Ok((
                        read_opt_value(field(s, "group")?)?,
                        f,
                        AggSegment {
                            from: match field(s, "from")? {
                                Val::U64(x) => *x,
                                other => bail!("from: {other:?}"),
                            },
                            to,
                            value: read_opt_number(field(s, "value")?)?,
                            slope: read_number(field(s, "slope")?)?,
                        },
                    ))
                })
                .collect(),
            other => bail!("aggregate-range returned {other:?}"),
        }
    }

    /// A node worker's own `stats` (one logged call on it: for tests and a job's overview, not
    /// for polling).
    pub fn stats(&self, worker: &WorkerId) -> Result<WorkerStats> {
        read_stats(&self.call_node(worker, "stats", &[])?.context("no stats")?)
    }

    /// A node worker's `stats` as its reader holds them (keys, change points, bytes; no events
    /// counted, a latest time as of the node's last push), read through the reader.
    pub fn reader_stats(&self, job: &str, worker: &WorkerId) -> Result<WorkerStats> {
        read_stats(
            &self
                .read_worker(job, worker, "stats", &[])?
                .context("no stats")?,
        )
    }

    /// A node worker's `keys`, read through its reader: one page of the keys it holds.
    pub fn key_page(
        &self,
        job: &str,
        worker: &WorkerId,
        query: &timeline::KeyQuery,
    ) -> Result<timeline::KeyPage> {
        let params = [
            Val::Option(query.after.as_ref().map(|k| Box::new(event_value(k)))),
            Val::Option(query.search.clone().map(|s| Box::new(Val::String(s)))),
            Val::U32(query.limit),
        ];
        let v = self
            .read_worker(job, worker, "keys", &params)?
            .context("no page")?;
        let keys = match field(&v, "keys")? {
            Val::List(keys) => keys
                .iter()
                .map(|k| match k {
                    Val::Option(k) => k.as_deref().map(read_event_value).transpose(),
                    other => bail!("key: {other:?}"),
                })
                .collect::<Result<_>>()?,
            other => bail!("keys: {other:?}"),
        };
        let matching = match field(&v, "matching")? {
            Val::U64(n) => *n,
            other => bail!("matching: {other:?}"),
        };
        Ok(timeline::KeyPage { keys, matching })
    }

    /// Calls any function of any worker with component values (for tests of bad input).
    pub fn invoke(&self, worker: &WorkerId, function: &str, params: &[Val]) -> Result<Vec<Val>> {
        self.golem.invoke(worker, function, params)
    }
}
