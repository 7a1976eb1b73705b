//! The driver component: the entry point a user invokes over HTTP. It submits jobs to the core
//! worker, routes events to the jobs' leaf workers (each event reduced to the columns a leaf
//! reads, to the shard of its key), and reads results from any worker of a job's plan.

#[allow(warnings)]
mod bindings;

use bindings::exports::timeline::driver::api::{
    Event, EventValue, Guest, JobOptions, Plan, Query, Segment, State,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use timeline::{shard_of, LeafNode, TimeLineOp};
use worker_rpc::{call_result, event, opt, JobNode, JobPlan, WorkerRef, V};

worker_rpc::wit_conversions!(crate::bindings::timeline::types::types: values, events, states, jobs);

/// A submitted job: its plan, and its leaves (to project events onto what each reads).
struct Job {
    plan: JobPlan,
    leaves: Vec<(JobNode, LeafNode)>,
}

thread_local! {
    static JOBS: RefCell<BTreeMap<String, Job>> = const { RefCell::new(BTreeMap::new()) };
}

/// The ids of the other components, which Golem gives the driver worker as environment variables.
fn component_ids() -> Result<(String, String, String), String> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            format!("the environment variable {name} is not set: start the driver worker with the ids of the core, event-processor and timeline-processor components")
        })
    };
    Ok((
        var("CORE_COMPONENT_ID")?,
        var("EVENT_PROCESSOR_COMPONENT_ID")?,
        var("TIMELINE_PROCESSOR_COMPONENT_ID")?,
    ))
}

const CORE_WORKER: &str = "timeline-core";

fn core_call(
    function: &str,
    op: &TimeLineOp,
    options: &worker_rpc::JobOptions,
) -> Result<JobPlan, String> {
    let (core, events, timelines) = component_ids()?;
    let worker = WorkerRef {
        component_id: core.clone(),
        worker_name: CORE_WORKER.into(),
        interface: "timeline:core/api".into(),
    };
    let ids = V::Record(vec![V::Str(core), V::Str(events), V::Str(timelines)]);
    let query = V::Variant(0, Some(Box::new(V::Str(op.to_string()))));
    let plan = call_result(
        &worker,
        &worker.function(function),
        vec![query, options.to_v(), ids],
    )?
    .ok_or("the core returned no plan")?;
    JobPlan::from_v(plan)
}

fn with_job<T>(name: &str, f: impl FnOnce(&Job) -> Result<T, String>) -> Result<T, String> {
    JOBS.with_borrow(|jobs| match jobs.get(name) {
        Some(job) => f(job),
        None => Err(format!(
            "no job named \"{name}\"; jobs: [{}]",
            jobs.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
    })
}

/// The worker holding `key` for node `node_id` (the result node if none) of the job.
fn result_worker(
    job: &Job,
    node_id: Option<&str>,
    key: Option<&timeline::Value>,
) -> Result<WorkerRef, String> {
    let plan = &job.plan;
    let id = node_id.unwrap_or(&plan.result_node);
    let node = plan
        .node(id)
        .ok_or_else(|| format!("job \"{}\" has no node {id}", plan.job_name))?;
    Ok(node.workers[shard_of(key, plan.shards) as usize].clone())
}

struct Component;

impl Guest for Component {
    fn run(query: Query, options: JobOptions) -> Result<Plan, String> {
        let op = convert::query_in(query)?;
        let options = convert::options_in(options);
        let existing = JOBS.with_borrow(|jobs| jobs.get(&options.job_name).map(|j| j.plan.clone()));
        if let Some(plan) = existing {
            if plan.query == op.to_string()
                && plan.options()
                    == (worker_rpc::JobOptions {
                        shards: options.shards.max(1),
                        ..options.clone()
                    })
            {
                return Ok(convert::plan_out(&plan));
            }
            return Err(format!(
                "a job named \"{}\" already runs another query or other options: {}",
                plan.job_name, plan.query
            ));
        }
        let plan = core_call("submit", &op, &options)?;
        let leaves = plan
            .nodes
            .iter()
            .filter(|n| n.kind == "leaf")
            .map(|n| {
                let op: TimeLineOp = n.expression.parse().map_err(|e| format!("{e}"))?;
                Ok((
                    n.clone(),
                    LeafNode::new(&op, plan.key_column.as_deref(), None)?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let out = convert::plan_out(&plan);
        JOBS.with_borrow_mut(|jobs| jobs.insert(plan.job_name.clone(), Job { plan, leaves }));
        Ok(out)
    }

    fn explain(query: Query, options: JobOptions) -> Result<Plan, String> {
        let op = convert::query_in(query)?;
        let plan = core_call("explain", &op, &convert::options_in(options))?;
        Ok(convert::plan_out(&plan))
    }

    fn ingest(job_name: String, events: Vec<Event>) -> Result<u32, String> {
        let events = convert::events_in(events)?;
        // Every leaf worker gets, per shard, every event reduced to the columns it reads.
        let batches: Vec<(WorkerRef, Vec<V>)> = with_job(&job_name, |job| {
            let plan = &job.plan;
            let key_column = plan
                .key_column
                .as_ref()
                .map(|k| std::sync::Arc::from(k.as_str()));
            // Check the whole batch before any worker sees it.
            timeline::keys::split_batch(&events, key_column.as_ref(), None, |_| None)
                .map_err(|e| e.to_string())?;
            let shards: Vec<u32> = events
                .iter()
                .map(|e| shard_of(key_column.as_ref().and_then(|k| e.get(k)), plan.shards))
                .collect();
            let mut batches = Vec::new();
            for (node, leaf) in &job.leaves {
                for (shard, worker) in node.workers.iter().enumerate() {
                    let batch: Vec<V> = events
                        .iter()
                        .zip(&shards)
                        .filter(|(_, s)| **s as usize == shard)
                        .map(|(e, _)| event(&leaf.project(e)))
                        .collect();
                    if !batch.is_empty() {
                        batches.push((worker.clone(), batch));
                    }
                }
            }
            Ok(batches)
        })?;
        let calls = batches.len() as u32;
        for (worker, batch) in batches {
            call_result(&worker, &worker.function("ingest"), vec![V::List(batch)])?;
        }
        Ok(calls)
    }

    fn result(
        job_name: String,
        node_id: Option<String>,
        key: Option<EventValue>,
        t: u64,
    ) -> Result<State, String> {
        let key = convert::key_in(key)?;
        let worker = with_job(&job_name, |job| {
            result_worker(job, node_id.as_deref(), key.as_ref())
        })?;
        let state = call_result(
            &worker,
            &worker.function("get-result"),
            vec![opt(key.as_ref(), worker_rpc::event_value), V::U64(t)],
        )?
        .ok_or("get-result returned nothing")?;
        Ok(convert::state_out(&worker_rpc::read_state(state)?))
    }

    fn result_range(
        job_name: String,
        node_id: Option<String>,
        key: Option<EventValue>,
        t1: u64,
        t2: u64,
    ) -> Result<Vec<Segment>, String> {
        let key = convert::key_in(key)?;
        let worker = with_job(&job_name, |job| {
            result_worker(job, node_id.as_deref(), key.as_ref())
        })?;
        let params = vec![
            opt(key.as_ref(), worker_rpc::event_value),
            V::U64(t1),
            V::U64(t2),
        ];
        let segments = call_result(&worker, &worker.function("get-range"), params)?
            .ok_or("get-range returned nothing")?;
        segments
            .list()?
            .into_iter()
            .map(|s| {
                let [from, to, state] = s.fields()?;
                Ok(Segment {
                    from: from.u64()?,
                    to: to.option()?.map(V::u64).transpose()?,
                    state: convert::state_out(&worker_rpc::read_state(state)?),
                })
            })
            .collect()
    }

    fn jobs() -> Vec<Plan> {
        JOBS.with_borrow(|jobs| jobs.values().map(|j| convert::plan_out(&j.plan)).collect())
    }
}

bindings::export!(Component with_types_in bindings);
