//! The event-processor component: a durable worker computing one leaf node of a timeline query
//! (`latest_event_to_state`, `has_existed`, …) for every key of its shard. It ingests events and
//! pushes its output deltas to the workers that read it.

#[allow(warnings)]
mod bindings;

use bindings::exports::timeline::event_processor::api::{
    Event, EventValue, Guest, KeyDelta, NodeConfig, Segment, State, WorkerStats,
};
use std::cell::RefCell;
use timeline::LeafNode;
use worker_rpc::WorkerRef;

worker_rpc::wit_conversions!(crate::bindings::timeline::types::types: values, events, states, nodes);

/// What the worker holds: its node, and whom to tell about changes.
struct Worker {
    op: String,
    key_column: Option<String>,
    retention: Option<u64>,
    node: LeafNode,
    parents: Vec<(WorkerRef, u32)>,
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

fn with_worker<T>(f: impl FnOnce(&mut Worker) -> Result<T, String>) -> Result<T, String> {
    WORKER.with_borrow_mut(|w| match w {
        Some(w) => f(w),
        None => Err(format!(
            "worker {} is not initialised: create it through a job (driver.run)",
            worker_rpc::self_worker_name()
        )),
    })
}

struct Component;

impl Guest for Component {
    fn initialize(config: NodeConfig) -> Result<(), String> {
        let op = timeline::parse_query(&config.op).map_err(|e| format!("op: {e}"))?;
        let parents: Vec<(WorkerRef, u32)> = config
            .parents
            .into_iter()
            .map(|p| (convert::worker_ref_in(p.worker), p.input))
            .collect();
        WORKER.with_borrow_mut(|slot| {
            if let Some(w) = slot {
                if w.op != op.to_string() || w.key_column != config.key_column || w.retention != config.retention {
                    return Err(format!(
                        "this worker computes `{}` (key {:?}, retention {:?}); it cannot become `{op}`",
                        w.op, w.key_column, w.retention
                    ));
                }
                for p in parents {
                    if !w.parents.contains(&p) {
                        w.parents.push(p);
                    }
                }
                return Ok(());
            }
            let node = LeafNode::new(&op, config.key_column.as_deref(), config.retention)?;
            *slot = Some(Worker {
                op: op.to_string(),
                key_column: config.key_column,
                retention: config.retention,
                node,
                parents,
            });
            Ok(())
        })
    }

    fn ingest(events: Vec<Event>) -> Result<(), String> {
        let events = convert::events_in(events)?;
        let (deltas, parents) = with_worker(|w| {
            let deltas = w.node.ingest(&events).map_err(|e| e.to_string())?;
            Ok((deltas, w.parents.clone()))
        })?;
        worker_rpc::push_deltas(&parents, &deltas)
    }

    fn snapshot() -> Result<Vec<KeyDelta>, String> {
        with_worker(|w| {
            Ok(w.node
                .snapshot()
                .iter()
                .map(convert::key_delta_out)
                .collect())
        })
    }

    fn get_result(key: Option<EventValue>, t: u64) -> Result<State, String> {
        let key = convert::key_in(key)?;
        with_worker(|w| {
            w.node
                .value_at(key.as_ref(), t)
                .map(|s| convert::state_out(&s))
                .map_err(|e| e.to_string())
        })
    }

    fn get_range(key: Option<EventValue>, t1: u64, t2: u64) -> Result<Vec<Segment>, String> {
        let key = convert::key_in(key)?;
        with_worker(|w| {
            let segments = w
                .node
                .range(key.as_ref(), t1, t2)
                .map_err(|e| e.to_string())?;
            Ok(segments.iter().map(convert::segment_out).collect())
        })
    }

    fn stats() -> Result<WorkerStats, String> {
        with_worker(|w| Ok(convert::stats_out(&w.node.stats())))
    }
}

bindings::export!(Component with_types_in bindings);
