//! The timeline-processor component: a durable worker computing one derived node of a timeline
//! query (a comparison, `&&`, `duration_where`, …) for every key of its shard. It keeps copies of
//! its inputs' timelines, applies their deltas, and pushes its own deltas to its readers.

#[allow(warnings)]
mod bindings;

use bindings::exports::timeline::timeline_processor::api::{
    EventValue, Guest, KeyDelta, NodeConfig, Segment, State, WorkerStats,
};
use std::cell::RefCell;
use timeline::DerivedNode;
use worker_rpc::WorkerRef;

worker_rpc::wit_conversions!(crate::bindings::timeline::types::types: values, states, nodes);

/// What the worker holds: its node, and whom to tell about changes.
struct Worker {
    op: String,
    key_column: Option<String>,
    retention: Option<u64>,
    node: DerivedNode,
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
        let already = WORKER.with_borrow_mut(|slot| match slot {
            Some(w)
                if w.op != op.to_string()
                    || w.key_column != config.key_column
                    || w.retention != config.retention =>
            {
                Err(format!(
                    "this worker computes `{}` (key {:?}, retention {:?}); it cannot become `{op}`",
                    w.op, w.key_column, w.retention
                ))
            }
            Some(w) => {
                for p in &parents {
                    if !w.parents.contains(p) {
                        w.parents.push(p.clone());
                    }
                }
                Ok(true)
            }
            None => Ok(false),
        })?;
        if already {
            return Ok(());
        }
        let mut node = DerivedNode::new(&op, config.retention)?;
        if config.inputs.len() != node.arity() {
            return Err(format!(
                "`{op}` has {} input(s), but {} input workers were given",
                node.arity(),
                config.inputs.len()
            ));
        }
        // Inputs may already hold history (a worker shared with an earlier job): start from it.
        for (i, input) in config.inputs.into_iter().enumerate() {
            let snapshot = worker_rpc::snapshot(&convert::worker_ref_in(input))?;
            node.apply(i, &snapshot)?;
        }
        WORKER.with_borrow_mut(|slot| {
            *slot = Some(Worker {
                op: op.to_string(),
                key_column: config.key_column,
                retention: config.retention,
                node,
                parents,
            })
        });
        Ok(())
    }

    fn apply_deltas(input: u32, deltas: Vec<KeyDelta>) -> Result<(), String> {
        let deltas = deltas
            .into_iter()
            .map(convert::key_delta_in)
            .collect::<Result<Vec<_>, _>>()?;
        let (out, parents) = with_worker(|w| {
            // `apply` checks the input number before it changes anything.
            let out = w.node.apply(input as usize, &deltas)?;
            Ok((out, w.parents.clone()))
        })?;
        worker_rpc::push_deltas(&parents, &out)
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
