//! A job's plan with its workers: the `plan` record of the WIT, built from the library's plan.

use crate::{node_config, opt, read_worker_ref, worker_ref, V};
use timeline::aggregate::{Query, QueryPlan};
use timeline::limits::{MAX_JOB_WORKERS, MAX_SHARDS};
use timeline::plan::{node_id_of_text, worker_name};
use timeline::Scope;

/// The kind of the plan node holding one shard's partial aggregate.
pub const PARTIAL: &str = "partial";
/// The kind of the plan node merging the partials: an aggregate job's result.
pub const AGGREGATE: &str = "aggregate";

/// A worker, by component and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkerRef {
    pub component_id: String,
    pub worker_name: String,
    /// The interface the worker exports, which names its functions (`{interface}.{function}`).
    pub interface: String,
}

impl WorkerRef {
    /// The full name of one of the worker's functions, as Golem invokes it.
    pub fn function(&self, name: &str) -> String {
        format!("{}.{{{name}}}", self.interface)
    }
}

/// The interface of the event-processor component (leaf nodes).
pub const EVENT_PROCESSOR_API: &str = "timeline:event-processor/api";
/// The interface of the timeline-processor component (derived nodes).
pub const TIMELINE_PROCESSOR_API: &str = "timeline:timeline-processor/api";

/// The options of a job (the `job-options` record).
#[derive(Clone, Debug, PartialEq)]
pub struct JobOptions {
    pub job_name: String,
    pub key_column: Option<String>,
    pub shards: u32,
    pub retention: Option<u64>,
}

/// One node of a job's plan and the workers computing it, one per shard.
#[derive(Clone, Debug, PartialEq)]
pub struct JobNode {
    pub node_id: String,
    /// `leaf` (an event-processor worker), `derived`, [`PARTIAL`] or [`AGGREGATE`] (a
    /// timeline-processor worker each).
    pub kind: String,
    pub operator: String,
    pub expression: String,
    pub workers: Vec<WorkerRef>,
    pub inputs: Vec<String>,
}

/// A job's plan: every distinct sub-expression, children before parents, and its workers.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPlan {
    pub job_name: String,
    pub query: String,
    pub key_column: Option<String>,
    pub shards: u32,
    pub retention: Option<u64>,
    pub result_node: String,
    pub nodes: Vec<JobNode>,
}

impl JobPlan {
    /// Plans `query` for `options`, naming every worker deterministically. An aggregate adds a
    /// `partial` node (a worker per shard) and the `aggregate` node (one worker merging the
    /// partials), which holds the job's result.
    pub fn new(
        query: &Query,
        options: &JobOptions,
        event_processor: &str,
        timeline_processor: &str,
    ) -> Result<JobPlan, String> {
        let shards = options.shards.max(1);
        if shards > MAX_SHARDS {
            return Err(format!(
                "a job may have at most {MAX_SHARDS} shards; {shards} were asked for"
            ));
        }
        let planned = QueryPlan::new(query);
        let plan = &planned.plan;
        let aggregate_workers = planned
            .aggregate
            .as_ref()
            .map_or(0, |_| shards as usize + 1);
        let workers = plan.nodes.len() * shards as usize + aggregate_workers;
        if workers > MAX_JOB_WORKERS {
            return Err(format!(
                "the job would create {workers} workers ({} nodes x {shards} shards); the limit is {MAX_JOB_WORKERS}: use fewer shards",
                plan.nodes.len()
            ));
        }
        let scope = Scope {
            key_column: options.key_column.clone(),
            retention: options.retention,
            shards,
        };
        let processor = |name: String| WorkerRef {
            component_id: timeline_processor.to_string(),
            worker_name: name,
            interface: TIMELINE_PROCESSOR_API.to_string(),
        };
        let mut nodes: Vec<JobNode> = plan
            .nodes
            .iter()
            .map(|n| {
                let (component, interface) = if n.op.is_leaf() {
                    (event_processor, EVENT_PROCESSOR_API)
                } else {
                    (timeline_processor, TIMELINE_PROCESSOR_API)
                };
                JobNode {
                    node_id: n.id.to_string(),
                    kind: n.kind().to_string(),
                    operator: n.op.name().to_string(),
                    expression: n.op.to_string(),
                    workers: (0..shards)
                        .map(|s| WorkerRef {
                            component_id: component.to_string(),
                            worker_name: n.worker_name(&scope, s),
                            interface: interface.to_string(),
                        })
                        .collect(),
                    inputs: n
                        .inputs
                        .iter()
                        .map(|&i| plan.nodes[i].id.to_string())
                        .collect(),
                }
            })
            .collect();
        let mut result_node = plan.nodes[plan.root()].id.to_string();
        if let Some(a) = &planned.aggregate {
            let partial_text = format!("partial: {}", a.text);
            let partial = JobNode {
                node_id: node_id_of_text(&partial_text).to_string(),
                kind: PARTIAL.to_string(),
                operator: "aggregate".to_string(),
                expression: a.text.clone(),
                workers: (0..shards)
                    .map(|s| processor(worker_name(&partial_text, &scope, s)))
                    .collect(),
                inputs: std::iter::once(a.result)
                    .chain(a.group)
                    .map(|i| plan.nodes[i].id.to_string())
                    .collect(),
            };
            let merge = JobNode {
                node_id: a.id.to_string(),
                kind: AGGREGATE.to_string(),
                operator: "aggregate".to_string(),
                expression: a.text.clone(),
                workers: vec![processor(worker_name(&a.text, &scope, 0))],
                inputs: vec![partial.node_id.clone()],
            };
            result_node = merge.node_id.clone();
            nodes.push(partial);
            nodes.push(merge);
        }
        Ok(JobPlan {
            job_name: options.job_name.clone(),
            query: query.to_string(),
            key_column: options.key_column.clone(),
            shards,
            retention: options.retention,
            result_node,
            nodes,
        })
    }

    /// Whether the job aggregates across keys (its result is an `aggregate` node).
    pub fn aggregates(&self) -> bool {
        self.node(&self.result_node)
            .is_some_and(|n| n.kind == AGGREGATE)
    }

    /// Every worker of the job with the call that initialises it (function and parameters),
    /// children before parents: what the core does, in order, to start a job.
    pub fn initializations(&self) -> Vec<(WorkerRef, String, Vec<V>)> {
        let mut out = Vec::new();
        for node in &self.nodes {
            for (shard, worker) in node.workers.iter().enumerate() {
                let inputs: Vec<WorkerRef> = if node.kind == AGGREGATE {
                    // The merge reads every shard's partial, input `i` being shard `i`.
                    node.inputs
                        .iter()
                        .filter_map(|id| self.node(id))
                        .flat_map(|n| n.workers.iter().cloned())
                        .collect()
                } else {
                    node.inputs
                        .iter()
                        .filter_map(|id| self.node(id))
                        .map(|n| n.workers[shard].clone())
                        .collect()
                };
                let parents: Vec<(WorkerRef, u32)> = self
                    .parents_of(&node.node_id)
                    .into_iter()
                    .map(|(p, slot)| match p.kind.as_str() {
                        AGGREGATE => (p.workers[0].clone(), shard as u32),
                        _ => (p.workers[shard].clone(), slot),
                    })
                    .collect();
                let config = node_config(
                    &node.expression,
                    self.key_column.as_deref(),
                    self.retention,
                    &inputs,
                    &parents,
                );
                let (function, params) = match node.kind.as_str() {
                    PARTIAL => ("initialize-aggregate", vec![config, V::Bool(false)]),
                    AGGREGATE => ("initialize-aggregate", vec![config, V::Bool(true)]),
                    _ => ("initialize", vec![config]),
                };
                out.push((worker.clone(), worker.function(function), params));
            }
        }
        out
    }

    /// What a reader of `worker`, a worker of `node`, reads: the worker itself, then, for an
    /// aggregate's merge worker, the partial workers it merges (input `i` being shard `i`), which
    /// feed the reader's own merge.
    pub fn reader_inputs(&self, node: &JobNode, worker: &WorkerRef) -> Vec<WorkerRef> {
        let mut inputs = vec![worker.clone()];
        if node.kind == AGGREGATE {
            inputs.extend(
                node.inputs
                    .iter()
                    .filter_map(|id| self.node(id))
                    .flat_map(|n| n.workers.iter().cloned()),
            );
        }
        inputs
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&JobNode> {
        self.nodes.iter().find(|n| n.node_id == id)
    }

    /// The nodes reading node `id`, with the input slot they read it in.
    pub fn parents_of(&self, id: &str) -> Vec<(&JobNode, u32)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for (slot, input) in n.inputs.iter().enumerate() {
                if input == id {
                    out.push((n, slot as u32));
                }
            }
        }
        out
    }

    pub fn to_v(&self) -> V {
        V::Record(vec![
            V::Str(self.job_name.clone()),
            V::Str(self.query.clone()),
            opt(self.key_column.clone(), V::Str),
            V::U32(self.shards),
            opt(self.retention, V::U64),
            V::Str(self.result_node.clone()),
            V::List(
                self.nodes
                    .iter()
                    .map(|n| {
                        V::Record(vec![
                            V::Str(n.node_id.clone()),
                            V::Str(n.kind.clone()),
                            V::Str(n.operator.clone()),
                            V::Str(n.expression.clone()),
                            V::List(n.workers.iter().map(worker_ref).collect()),
                            V::List(n.inputs.iter().cloned().map(V::Str).collect()),
                        ])
                    })
                    .collect(),
            ),
        ])
    }

    pub fn from_v(v: V) -> Result<JobPlan, String> {
        let [job_name, query, key_column, shards, retention, result_node, nodes] = v.fields()?;
        let nodes = nodes
            .list()?
            .into_iter()
            .map(|n| {
                let [node_id, kind, operator, expression, workers, inputs] = n.fields()?;
                Ok(JobNode {
                    node_id: node_id.string()?,
                    kind: kind.string()?,
                    operator: operator.string()?,
                    expression: expression.string()?,
                    workers: workers
                        .list()?
                        .into_iter()
                        .map(read_worker_ref)
                        .collect::<Result<_, _>>()?,
                    inputs: inputs
                        .list()?
                        .into_iter()
                        .map(V::string)
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(JobPlan {
            job_name: job_name.string()?,
            query: query.string()?,
            key_column: key_column.option()?.map(V::string).transpose()?,
            shards: shards.u32()?,
            retention: retention.option()?.map(V::u64).transpose()?,
            result_node: result_node.string()?,
            nodes,
        })
    }

    /// The `job-options` record of this plan.
    pub fn options(&self) -> JobOptions {
        JobOptions {
            job_name: self.job_name.clone(),
            key_column: self.key_column.clone(),
            shards: self.shards,
            retention: self.retention,
        }
    }
}

impl JobOptions {
    pub fn to_v(&self) -> V {
        V::Record(vec![
            V::Str(self.job_name.clone()),
            opt(self.key_column.clone(), V::Str),
            V::U32(self.shards),
            opt(self.retention, V::U64),
        ])
    }
}
