//! What the timeline components share about Golem: calls from one worker to another over
//! `golem:rpc` (Golem 1.1 generation, through `golem-rust`), the encoding of the timeline types as
//! WIT values, the job plan that names every worker, and the bookkeeping every node worker
//! shares.
//!
//! This is the one place that constructs a `WasmRpc` or reads worker metadata; moving to a later
//! Golem changes this crate, not the components.

use golem_rust::bindings::golem::api::host::get_self_metadata;
use golem_rust::bindings::golem::rpc::types::{
    NodeIndex, RpcError, Uri, WasmRpc, WitNode, WitValue,
};
use timeline::aggregate::{AggFn, AggSegment, PartialBatch};
use timeline::{Delta, Event, KeyDelta, State, Value};

mod node_worker;
mod plan;
pub mod reader;
pub use node_worker::{read_many, reinitialize, with_worker, NodeWorker, WorkerSlot};
pub use plan::{
    JobNode, JobOptions, JobPlan, WorkerRef, AGGREGATE, EVENT_PROCESSOR_API, PARTIAL,
    TIMELINE_PROCESSOR_API,
};

/// A WIT value as a tree, for building and reading the flat `wit-value` of `golem:rpc`.
/// Records and tuples list their fields in WIT order; variants carry their case index.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Bool(bool),
    U8(u8),
    U32(u32),
    U64(u64),
    S64(i64),
    F64(f64),
    Str(String),
    List(Vec<V>),
    Tuple(Vec<V>),
    Record(Vec<V>),
    Variant(u32, Option<Box<V>>),
    Option(Option<Box<V>>),
    Result(Result<Option<Box<V>>, Option<Box<V>>>),
}

impl V {
    /// Encodes the tree as a `wit-value`: nodes in a list, the root first.
    pub fn to_wit(&self) -> WitValue {
        let mut nodes = Vec::new();
        self.push(&mut nodes);
        WitValue { nodes }
    }

    fn push(&self, nodes: &mut Vec<WitNode>) -> NodeIndex {
        let at = nodes.len();
        nodes.push(WitNode::PrimBool(false)); // placeholder until the children are in
        let children = |xs: &[V], nodes: &mut Vec<WitNode>| -> Vec<NodeIndex> {
            xs.iter().map(|x| x.push(nodes)).collect()
        };
        let node = match self {
            V::Bool(b) => WitNode::PrimBool(*b),
            V::U8(x) => WitNode::PrimU8(*x),
            V::U32(x) => WitNode::PrimU32(*x),
            V::U64(x) => WitNode::PrimU64(*x),
            V::S64(x) => WitNode::PrimS64(*x),
            V::F64(x) => WitNode::PrimFloat64(*x),
            V::Str(s) => WitNode::PrimString(s.clone()),
            V::List(xs) => WitNode::ListValue(children(xs, nodes)),
            V::Tuple(xs) => WitNode::TupleValue(children(xs, nodes)),
            V::Record(xs) => WitNode::RecordValue(children(xs, nodes)),
            V::Variant(case, payload) => {
                WitNode::VariantValue((*case, payload.as_ref().map(|p| p.push(nodes))))
            }
            V::Option(x) => WitNode::OptionValue(x.as_ref().map(|p| p.push(nodes))),
            V::Result(r) => WitNode::ResultValue(match r {
                Ok(x) => Ok(x.as_ref().map(|p| p.push(nodes))),
                Err(x) => Err(x.as_ref().map(|p| p.push(nodes))),
            }),
        };
        nodes[at] = node;
        at as NodeIndex
    }

    /// Decodes a `wit-value` whose root is its first node.
    pub fn from_wit(w: &WitValue) -> Result<V, String> {
        V::read(w, 0, 0)
    }

    fn read(w: &WitValue, i: NodeIndex, depth: usize) -> Result<V, String> {
        if depth > 64 {
            return Err("wit-value nests too deep".into());
        }
        let node = w
            .nodes
            .get(i as usize)
            .ok_or_else(|| format!("wit-value has no node {i}"))?;
        let many = |xs: &[NodeIndex]| {
            xs.iter()
                .map(|&x| V::read(w, x, depth + 1))
                .collect::<Result<Vec<_>, _>>()
        };
        let one = |x: &Option<NodeIndex>| -> Result<Option<Box<V>>, String> {
            x.map(|x| V::read(w, x, depth + 1).map(Box::new))
                .transpose()
        };
        Ok(match node {
            WitNode::PrimBool(b) => V::Bool(*b),
            WitNode::PrimU8(x) => V::U8(*x),
            WitNode::PrimU32(x) => V::U32(*x),
            WitNode::PrimU64(x) => V::U64(*x),
            WitNode::PrimS64(x) => V::S64(*x),
            WitNode::PrimFloat64(x) => V::F64(*x),
            WitNode::PrimString(s) => V::Str(s.clone()),
            WitNode::ListValue(xs) => V::List(many(xs)?),
            WitNode::TupleValue(xs) => V::Tuple(many(xs)?),
            WitNode::RecordValue(xs) => V::Record(many(xs)?),
            WitNode::VariantValue((case, payload)) => V::Variant(*case, one(payload)?),
            WitNode::OptionValue(x) => V::Option(one(x)?),
            WitNode::ResultValue(Ok(x)) => V::Result(Ok(one(x)?)),
            WitNode::ResultValue(Err(x)) => V::Result(Err(one(x)?)),
            other => return Err(format!("unexpected wit-value node {other:?}")),
        })
    }

    fn wrong(&self, what: &str) -> String {
        format!("expected {what}, found {self:?}")
    }

    pub fn fields<const N: usize>(self) -> Result<[V; N], String> {
        match self {
            V::Record(xs) | V::Tuple(xs) if xs.len() == N => {
                Ok(xs.try_into().expect("length checked"))
            }
            other => Err(other.wrong(&format!("a record of {N} fields"))),
        }
    }

    pub fn list(self) -> Result<Vec<V>, String> {
        match self {
            V::List(xs) => Ok(xs),
            other => Err(other.wrong("a list")),
        }
    }

    pub fn option(self) -> Result<Option<V>, String> {
        match self {
            V::Option(x) => Ok(x.map(|b| *b)),
            other => Err(other.wrong("an option")),
        }
    }

    pub fn string(self) -> Result<String, String> {
        match self {
            V::Str(s) => Ok(s),
            other => Err(other.wrong("a string")),
        }
    }

    pub fn u64(self) -> Result<u64, String> {
        match self {
            V::U64(x) => Ok(x),
            other => Err(other.wrong("a u64")),
        }
    }

    pub fn u32(self) -> Result<u32, String> {
        match self {
            V::U32(x) => Ok(x),
            other => Err(other.wrong("a u32")),
        }
    }

    /// Reads a `result<T, string>` into `Ok(T)` or the error string.
    pub fn result(self) -> Result<Option<V>, String> {
        match self {
            V::Result(Ok(x)) => Ok(x.map(|b| *b)),
            V::Result(Err(Some(e))) => Err(e.string().unwrap_or_else(|e| e)),
            V::Result(Err(None)) => Err("the call failed".into()),
            other => Err(other.wrong("a result")),
        }
    }
}

/// Calls `function` (`package:name/interface.{function}`) on the worker `worker_name` of component
/// `component_id`, and waits for its result. Golem answers with the results as a tuple; this
/// returns the first (our functions have one result).
pub fn call(worker: &WorkerRef, function: &str, params: Vec<V>) -> Result<V, String> {
    let uri = Uri {
        value: format!("urn:worker:{}/{}", worker.component_id, worker.worker_name),
    };
    let params: Vec<WitValue> = params.iter().map(V::to_wit).collect();
    let rpc = WasmRpc::new(&uri);
    let result = rpc.invoke_and_await(function, &params).map_err(|e| {
        let why = match e {
            RpcError::ProtocolError(s) => format!("protocol error: {s}"),
            RpcError::Denied(s) => format!("denied: {s}"),
            RpcError::NotFound(s) => format!("not found: {s}"),
            RpcError::RemoteInternalError(s) => format!("remote error: {s}"),
        };
        format!("calling {function} on {}: {why}", worker.worker_name)
    })?;
    match V::from_wit(&result)? {
        V::Tuple(mut xs) if xs.len() == 1 => Ok(xs.pop().expect("one result")),
        V::Tuple(xs) if xs.is_empty() => Ok(V::Tuple(xs)),
        other => Ok(other),
    }
}

/// Calls a function returning `result<_, string>` (or `result<T, string>`) and unwraps it.
pub fn call_result(
    worker: &WorkerRef,
    function: &str,
    params: Vec<V>,
) -> Result<Option<V>, String> {
    call(worker, function, params)?
        .result()
        .map_err(|e| format!("{} ({function}): {e}", worker.worker_name))
}

/// This worker's name, from Golem's worker metadata.
pub fn self_worker_name() -> String {
    get_self_metadata().worker_id.worker_name
}

/// This worker, exporting `interface`, as other workers call it (from Golem's worker metadata).
pub fn self_worker_ref(interface: &str) -> WorkerRef {
    let id = get_self_metadata().worker_id;
    WorkerRef {
        component_id: uuid::Uuid::from(id.component_id).to_string(),
        worker_name: id.worker_name,
        interface: interface.into(),
    }
}

// ---------- the timeline types as WIT values (see wit/common/types/types.wit) ----------

pub fn event_value(v: &Value) -> V {
    match v {
        Value::Str(s) => V::Variant(0, Some(Box::new(V::Str(s.to_string())))),
        Value::Int(i) => V::Variant(1, Some(Box::new(V::S64(*i)))),
        Value::Float(f) => V::Variant(2, Some(Box::new(V::F64(*f)))),
        Value::Bool(b) => V::Variant(3, Some(Box::new(V::Bool(*b)))),
    }
}

pub fn read_event_value(v: V) -> Result<Value, String> {
    match v {
        V::Variant(0, Some(x)) => Ok(Value::str(&x.string()?)),
        V::Variant(1, Some(x)) => match *x {
            V::S64(i) => Ok(Value::Int(i)),
            other => Err(other.wrong("an s64")),
        },
        V::Variant(2, Some(x)) => match *x {
            V::F64(f) => Value::float(f),
            other => Err(other.wrong("an f64")),
        },
        V::Variant(3, Some(x)) => match *x {
            V::Bool(b) => Ok(Value::Bool(b)),
            other => Err(other.wrong("a bool")),
        },
        other => Err(other.wrong("an event-value")),
    }
}

pub fn opt<T>(x: Option<T>, f: impl FnOnce(T) -> V) -> V {
    V::Option(x.map(|x| Box::new(f(x))))
}

pub fn event(e: &Event) -> V {
    V::Record(vec![
        V::U64(e.time),
        V::List(
            e.fields
                .iter()
                .map(|(c, v)| V::Tuple(vec![V::Str(c.to_string()), event_value(v)]))
                .collect(),
        ),
    ])
}

pub fn state(s: &State) -> V {
    match s {
        State::Unknown => V::Variant(0, None),
        State::Value(v) => V::Variant(1, Some(Box::new(event_value(v)))),
        State::Duration(value) | State::Growing(value) => V::Variant(
            2,
            Some(Box::new(V::Tuple(vec![V::S64(*value), V::U8(s.slope())]))),
        ),
    }
}

pub fn read_state(v: V) -> Result<State, String> {
    match v {
        V::Variant(0, None) => Ok(State::Unknown),
        V::Variant(1, Some(x)) => Ok(State::Value(read_event_value(*x)?)),
        V::Variant(2, Some(x)) => match x.fields()? {
            [V::S64(value), V::U8(slope @ (0 | 1))] => Ok(State::duration(value, slope)),
            other => Err(format!(
                "expected a duration (s64, 0 or 1), found {other:?}"
            )),
        },
        other => Err(other.wrong("a state")),
    }
}

pub fn key_delta(d: &KeyDelta) -> V {
    V::Record(vec![
        opt(d.key.as_ref(), event_value),
        V::U64(d.origin),
        V::U64(d.max_time),
        opt(d.change.as_ref(), |c| {
            V::Record(vec![
                V::U64(c.from),
                V::List(
                    c.points
                        .iter()
                        .map(|(t, s)| V::Record(vec![V::U64(*t), state(s)]))
                        .collect(),
                ),
            ])
        }),
    ])
}

pub fn read_key_delta(v: V) -> Result<KeyDelta, String> {
    let [key, origin, max_time, change] = v.fields()?;
    let change = match change.option()? {
        None => None,
        Some(c) => {
            let [from, points] = c.fields()?;
            let points = points
                .list()?
                .into_iter()
                .map(|p| {
                    let [t, s] = p.fields()?;
                    Ok((t.u64()?, read_state(s)?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Some(Delta {
                from: from.u64()?,
                points,
            })
        }
    };
    Ok(KeyDelta {
        key: key.option()?.map(read_event_value).transpose()?,
        origin: origin.u64()?,
        max_time: max_time.u64()?,
        change,
    })
}

pub fn worker_ref(w: &WorkerRef) -> V {
    V::Record(vec![
        V::Str(w.component_id.clone()),
        V::Str(w.worker_name.clone()),
        V::Str(w.interface.clone()),
    ])
}

pub fn read_worker_ref(v: V) -> Result<WorkerRef, String> {
    let [c, w, i] = v.fields()?;
    Ok(WorkerRef {
        component_id: c.string()?,
        worker_name: w.string()?,
        interface: i.string()?,
    })
}

/// The `node-config` record: what a node worker computes and whom it talks to.
pub fn node_config(
    op: &str,
    key_column: Option<&str>,
    retention: Option<u64>,
    inputs: &[WorkerRef],
    parents: &[(WorkerRef, u32)],
) -> V {
    V::Record(vec![
        V::Str(op.to_string()),
        opt(key_column, |k| V::Str(k.to_string())),
        opt(retention, V::U64),
        V::List(inputs.iter().map(worker_ref).collect()),
        V::List(
            parents
                .iter()
                .map(|(w, i)| V::Record(vec![worker_ref(w), V::U32(*i)]))
                .collect(),
        ),
    ])
}

/// Generates, inside a component, the conversions between the `timeline:types` bindings that
/// `cargo component` generated for it and the library's types, in a module `convert`. Each
/// component has its own copy of the bindings types (only those its world uses), so the
/// conversions are generated per component, by group:
/// `values` (event-value, worker-ref in), `events`, `states` (state, segment), `nodes` (key-delta,
/// worker-stats), `jobs` (plan, job-options, query, worker-ref out).
#[macro_export]
macro_rules! wit_conversions {
    ($($types:ident)::+ : $($group:ident),+) => {
        /// Conversions between the WIT types of `timeline:types` and the library's.
        #[allow(dead_code, unused_imports)]
        mod convert {
            use $($types)::+ as t;
            use std::sync::Arc;
            use timeline::{Delta, Event, KeyDelta, Segment, State, Stats, Value};
            $( $crate::wit_conversions!(@ $group); )+
        }
    };
    (@ values) => {
        pub fn worker_ref_in(w: t::WorkerRef) -> worker_rpc::WorkerRef {
            worker_rpc::WorkerRef { component_id: w.component_id, worker_name: w.worker_name, interface: w.interface }
        }
        pub fn value_in(v: t::EventValue) -> Result<Value, String> {
            Ok(match v {
                t::EventValue::StringValue(s) => Value::from(s),
                t::EventValue::IntValue(i) => Value::Int(i),
                t::EventValue::FloatValue(f) => Value::float(f)?,
                t::EventValue::BoolValue(b) => Value::Bool(b),
            })
        }
        pub fn value_out(v: &Value) -> t::EventValue {
            match v {
                Value::Str(s) => t::EventValue::StringValue(s.to_string()),
                Value::Int(i) => t::EventValue::IntValue(*i),
                Value::Float(f) => t::EventValue::FloatValue(*f),
                Value::Bool(b) => t::EventValue::BoolValue(*b),
            }
        }
        pub fn key_in(k: Option<t::EventValue>) -> Result<Option<Value>, String> {
            k.map(value_in).transpose().map_err(|e| format!("key: {e}"))
        }
    };
    (@ events) => {
        /// Converts a batch of events; an error names the event.
        pub fn events_in(events: Vec<t::Event>) -> Result<Vec<Event>, String> {
            events
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    let fields = e
                        .event
                        .into_iter()
                        .map(|(c, v)| Ok((Arc::from(c.as_str()), value_in(v).map_err(|m| format!("column \"{c}\": {m}"))?)))
                        .collect::<Result<Vec<_>, String>>()
                        .map_err(|m| format!("event {} (time {}): {m}", i + 1, e.time))?;
                    Ok(Event { time: e.time, fields })
                })
                .collect::<Result<Vec<Event>, String>>()
                .and_then(|events| timeline::limits::check_batch(&events).map(|()| events))
        }
    };
    (@ states) => {
        pub fn state_out(s: &State) -> t::State {
            match s {
                State::Unknown => t::State::Unknown,
                State::Value(v) => t::State::Value(value_out(v)),
                State::Duration(value) | State::Growing(value) => {
                    t::State::Duration((*value, s.slope()))
                }
            }
        }
        pub fn state_in(s: t::State) -> Result<State, String> {
            Ok(match s {
                t::State::Unknown => State::Unknown,
                t::State::Value(v) => State::Value(value_in(v)?),
                t::State::Duration((value, slope)) if slope <= 1 => State::duration(value, slope),
                t::State::Duration((_, slope)) => return Err(format!("a duration's slope is 0 or 1, found {slope}")),
            })
        }
        pub fn segment_out(s: &Segment) -> t::Segment {
            t::Segment { from: s.from, to: s.to, state: state_out(&s.state) }
        }
    };
    (@ nodes) => {
        pub fn stats_out(s: &Stats) -> t::WorkerStats {
            t::WorkerStats {
                keys: s.keys as u64,
                change_points: s.change_points as u64,
                event_rows: s.event_rows as u64,
                mismatches: s.mismatches,
                bytes: s.bytes as u64,
                history_dropped: s.history_dropped as u64,
                events: s.events,
                last_time: s.last_time,
            }
        }
        /// The `keys` parameters, checked against the limits.
        pub fn key_query_in(
            after: Option<t::EventValue>,
            search: Option<String>,
            limit: u32,
        ) -> Result<timeline::KeyQuery, String> {
            let query = timeline::KeyQuery {
                after: after.map(value_in).transpose().map_err(|e| format!("after: {e}"))?,
                search,
                limit,
            };
            query.check()?;
            Ok(query)
        }
        pub fn key_page_out(p: timeline::KeyPage) -> t::KeyPage {
            t::KeyPage {
                keys: p.keys.iter().map(|k| k.as_ref().map(value_out)).collect(),
                matching: p.matching,
            }
        }
        pub fn key_delta_in(d: t::KeyDelta) -> Result<KeyDelta, String> {
            Ok(KeyDelta {
                key: key_in(d.key)?,
                origin: d.origin,
                max_time: d.max_time,
                change: match d.change {
                    None => None,
                    Some(c) => Some(Delta {
                        from: c.from,
                        points: c
                            .points
                            .into_iter()
                            .map(|p| Ok((p.time, state_in(p.state)?)))
                            .collect::<Result<Vec<_>, String>>()?,
                    }),
                },
            })
        }
        pub fn key_delta_out(d: &KeyDelta) -> t::KeyDelta {
            t::KeyDelta {
                key: d.key.as_ref().map(value_out),
                origin: d.origin,
                max_time: d.max_time,
                change: d.change.as_ref().map(|c| t::Delta {
                    from: c.from,
                    points: c.points.iter().map(|(time, s)| t::Point { time: *time, state: state_out(s) }).collect(),
                }),
            }
        }
    };
    (@ jobs) => {
        pub fn worker_ref_out(w: &worker_rpc::WorkerRef) -> t::WorkerRef {
            t::WorkerRef { component_id: w.component_id.clone(), worker_name: w.worker_name.clone(), interface: w.interface.clone() }
        }
        pub fn plan_out(p: &worker_rpc::JobPlan) -> t::Plan {
            t::Plan {
                job_name: p.job_name.clone(),
                query: p.query.clone(),
                key_column: p.key_column.clone(),
                shards: p.shards,
                retention: p.retention,
                result_node: p.result_node.clone(),
                nodes: p
                    .nodes
                    .iter()
                    .map(|n| t::PlanNode {
                        node_id: n.node_id.clone(),
                        kind: n.kind.clone(),
                        operator: n.operator.clone(),
                        expression: n.expression.clone(),
                        workers: n.workers.iter().map(worker_ref_out).collect(),
                        inputs: n.inputs.clone(),
                    })
                    .collect(),
            }
        }
        pub fn options_in(o: t::JobOptions) -> worker_rpc::JobOptions {
            worker_rpc::JobOptions { job_name: o.job_name, key_column: o.key_column, shards: o.shards, retention: o.retention }
        }
        /// Reads a query given as text (which may aggregate) or as a flat tree (per key), and
        /// validates it.
        pub fn query_in(q: t::Query) -> Result<timeline::aggregate::Query, String> {
            match q {
                t::Query::Text(text) => timeline::parser::parse(&text).map_err(|e| e.to_string()),
                t::Query::Tree(nodes) => {
                    let nodes = nodes
                        .into_iter()
                        .map(|n| {
                            Ok(timeline::FlatNode {
                                operator: n.operator,
                                inputs: n.inputs,
                                column: n.column,
                                predicate: n.predicate,
                                value: n.value.map(value_in).transpose()?,
                                within: n.within,
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    timeline::FlatOp { nodes }.to_op().map(timeline::aggregate::Query::from)
                }
            }
        }
    };
    (@ aggregates) => {
        fn number_out(n: timeline::aggregate::Num) -> t::AggNumber {
            match n {
                timeline::aggregate::Num::Int(i) => t::AggNumber::Int(i),
                timeline::aggregate::Num::Float(f) => t::AggNumber::Float(f),
            }
        }
        pub fn selector_in(g: t::GroupSelector) -> Result<timeline::aggregate::GroupSelector, String> {
            use timeline::aggregate::{group_of, GroupSelector};
            Ok(match g {
                t::GroupSelector::All => GroupSelector::All,
                t::GroupSelector::Unknown => GroupSelector::One(group_of(None)),
                t::GroupSelector::Value(v) => GroupSelector::One(group_of(Some(&value_in(v)?))),
            })
        }
        pub fn group_row_out(r: &timeline::aggregate::GroupRow) -> t::GroupRow {
            t::GroupRow {
                group: r.group.as_ref().map(value_out),
                at: r.at,
                members: r.members,
                values: r
                    .values
                    .iter()
                    .map(|(f, v)| t::AggValue { function: f.name().to_string(), value: v.map(number_out) })
                    .collect(),
            }
        }
        pub fn group_segment_out(
            group: Option<&Value>,
            f: timeline::aggregate::AggFn,
            s: &timeline::aggregate::AggSegment,
        ) -> t::GroupSegment {
            t::GroupSegment {
                group: group.map(value_out),
                function: f.name().to_string(),
                from: s.from,
                to: s.to,
                value: s.value.map(number_out),
                slope: number_out(s.slope),
            }
        }
    };
}

/// A partial aggregate worker's whole state, for a merge worker that starts reading it.
pub fn snapshot_partials(input: &WorkerRef) -> Result<PartialBatch, String> {
    let packed = call_result(input, &input.function("snapshot-partials"), vec![])?
        .ok_or("snapshot-partials returned nothing")?
        .string()?;
    PartialBatch::decode(&packed)
}

/// A segment of one function of one group, as the `group-segment` record carries it.
pub type GroupSegment = (Option<Value>, AggFn, AggSegment);

/// The whole current output of an input worker, for a node that starts reading it.
pub fn snapshot(input: &WorkerRef) -> Result<Vec<KeyDelta>, String> {
    let list = call_result(input, &input.function("snapshot"), vec![])?
        .ok_or("snapshot returned nothing")?
        .list()?;
    list.into_iter().map(read_key_delta).collect()
}

/// How many keys of `input` dropped their history before their horizon (its `stats`).
pub fn history_dropped(input: &WorkerRef) -> Result<u64, String> {
    let stats =
        call_result(input, &input.function("stats"), vec![])?.ok_or("stats returned nothing")?;
    let [_keys, _points, _rows, _mismatches, _bytes, dropped, _events, _last] = stats.fields()?;
    dropped.u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_the_wit_encoding() {
        let d = KeyDelta {
            key: Some(Value::str("s1")),
            origin: 3,
            max_time: 9,
            change: Some(Delta {
                from: 4,
                points: vec![
                    (4, State::bool(true)),
                    (6, State::Growing(2)),
                    (8, State::Unknown),
                ],
            }),
        };
        let back = read_key_delta(V::from_wit(&key_delta(&d).to_wit()).unwrap()).unwrap();
        assert_eq!(back, d);
        let e = Event::new(
            5,
            [
                ("a", Value::Float(1.5)),
                ("b", Value::Int(-2)),
                ("c", Value::Bool(true)),
            ],
        );
        let v = V::from_wit(&event(&e).to_wit()).unwrap();
        assert_eq!(v, event(&e));
    }
}
