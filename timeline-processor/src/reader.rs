//! Readers: a timeline-processor worker holding a copy of another worker's output, which
//! clients read instead of that worker, so that reads never grow its log (see
//! `worker_rpc::reader` and `timeline::readers`).
//!
//! A reader of a per-key node worker (a leaf's or a derived node's) holds a copy of its output,
//! kept by its pushes. A reader of an aggregate's merge worker is a merge of its own, fed by the
//! same partial workers. After `READS_PER_READER` reads a reader hands its copy over to its next
//! generation and refuses everything after, naming it.

use super::{install, with_worker, Node, NodeConfig, NodeWorker, NOT_MERGE, NOT_PER_KEY, WORKER};
use timeline::aggregate::{MergeAggregateNode, PartialBatch};
use timeline::readers::{self, ReadCount};
use timeline::{DerivedNode, KeyDelta, MirrorNode};
use worker_rpc::{WorkerRef, TIMELINE_PROCESSOR_API, V};

/// What a reader holds.
pub struct Reader {
    /// The worker read, then (for a merge's reader) the partial workers it merges, in order.
    inputs: Vec<WorkerRef>,
    copy: Replica,
    count: ReadCount,
}

/// A reader's copy of what it reads.
pub enum Replica {
    /// A per-key node worker's output.
    Keys(MirrorNode),
    /// An aggregate's merge, fed by the same partial workers.
    Merge(MergeAggregateNode),
}

impl Reader {
    /// Applies the read node's deltas (its pushes), unless this reader handed over.
    pub fn apply_deltas(&mut self, input: u32, deltas: &[KeyDelta]) -> Result<(), String> {
        self.count.check_push()?;
        match &mut self.copy {
            Replica::Keys(copy) if input == 0 => {
                copy.apply(deltas);
                Ok(())
            }
            Replica::Keys(_) => Err(format!("input {input} does not exist: a reader has one")),
            Replica::Merge(_) => Err("a merge's reader reads partial aggregates".into()),
        }
    }

    /// Applies a partial worker's changed groups (its pushes), unless this reader handed over.
    pub fn apply_partials(&mut self, input: u32, batch: &PartialBatch) -> Result<(), String> {
        self.count.check_push()?;
        match &mut self.copy {
            Replica::Merge(merge) => merge.apply(input as usize, batch),
            Replica::Keys(_) => {
                Err("this reader reads a per-key node, not partial aggregates".into())
            }
        }
    }

    /// The copy, packed for the next generation (`take-over`).
    fn state(&self) -> String {
        match &self.copy {
            Replica::Keys(copy) => timeline::wire::encode_key_deltas(&copy.snapshot()),
            Replica::Merge(merge) => merge.encode_state(),
        }
    }

    /// Replaces the copy with `state` (a previous generation's, given again).
    fn replace(&mut self, state: &str) -> Result<(), String> {
        match &mut self.copy {
            Replica::Keys(copy) => copy.replace(&decode_deltas(state)?),
            Replica::Merge(merge) => {
                let mut fresh = merge.emptied();
                fresh.apply_state(state)?;
                *merge = fresh;
            }
        }
        Ok(())
    }
}

fn decode_deltas(state: &str) -> Result<Vec<KeyDelta>, String> {
    timeline::wire::decode_key_deltas(state).map_err(|e| e.to_string())
}

/// What a read looks at.
pub enum Readable<'a> {
    Derived(&'a DerivedNode),
    Keys(&'a MirrorNode),
    Merge(&'a MergeAggregateNode),
    /// A partial aggregate, which answers no reads but `stats`.
    Partial(timeline::Stats),
}

impl Readable<'_> {
    pub fn value_at(
        &self,
        key: Option<&timeline::Value>,
        t: u64,
    ) -> Result<timeline::State, String> {
        match self {
            Readable::Derived(d) => d.value_at(key, t).map_err(|e| e.to_string()),
            Readable::Keys(m) => m.value_at(key, t).map_err(|e| e.to_string()),
            _ => Err(NOT_PER_KEY.into()),
        }
    }

    pub fn range(
        &self,
        key: Option<&timeline::Value>,
        t1: u64,
        t2: u64,
    ) -> Result<Vec<timeline::Segment>, String> {
        match self {
            Readable::Derived(d) => d.range(key, t1, t2).map_err(|e| e.to_string()),
            Readable::Keys(m) => m.range(key, t1, t2).map_err(|e| e.to_string()),
            _ => Err(NOT_PER_KEY.into()),
        }
    }

    pub fn key_page(&self, query: &timeline::KeyQuery) -> Result<timeline::KeyPage, String> {
        match self {
            Readable::Derived(d) => Ok(d.key_page(query)),
            Readable::Keys(m) => Ok(m.key_page(query)),
            _ => Err(NOT_PER_KEY.into()),
        }
    }

    pub fn merge(&self) -> Result<&MergeAggregateNode, String> {
        match self {
            Readable::Merge(m) => Ok(m),
            _ => Err(NOT_MERGE.into()),
        }
    }

    pub fn stats(&self) -> timeline::Stats {
        match self {
            Readable::Derived(d) => d.stats(),
            Readable::Keys(m) => m.stats(),
            Readable::Merge(m) => m.stats(),
            Readable::Partial(stats) => stats.clone(),
        }
    }
}

/// Runs a read on this worker: its own node, or a reader's copy. A reader that served its
/// share hands its copy over to the next generation after answering.
pub fn read<T>(f: impl FnOnce(Readable) -> Result<T, String>) -> Result<T, String> {
    let (answer, hand_over) = with_worker(|w| {
        let due = match &mut w.node {
            Node::Reader(r) => r.count.count()?,
            _ => false,
        };
        let answer = match &w.node {
            Node::Derived(d) => f(Readable::Derived(d)),
            Node::Partial(p) => f(Readable::Partial(p.stats())),
            Node::Merge(m) => f(Readable::Merge(m)),
            Node::Reader(r) => match &r.copy {
                Replica::Keys(k) => f(Readable::Keys(k)),
                Replica::Merge(m) => f(Readable::Merge(m)),
            },
        };
        Ok((answer, if due { successor(w) } else { None }))
    })?;
    if let Some((next, config, state)) = hand_over {
        // A hand-over that fails is tried again at the next read; this one is answered anyway.
        let taken = worker_rpc::call_result(
            &next,
            &next.function("take-over"),
            vec![config, V::Str(state)],
        );
        if taken.is_ok() {
            with_worker(|w| {
                if let Node::Reader(r) = &mut w.node {
                    r.count.successor = Some(next.worker_name);
                }
                Ok(())
            })?;
        }
    }
    answer
}

/// A reader's next generation, with what it starts from: this reader's config and copy.
fn successor(w: &NodeWorker<Node>) -> Option<(WorkerRef, V, String)> {
    let Node::Reader(reader) = &w.node else {
        return None;
    };
    let read = reader.inputs.first()?;
    let me = worker_rpc::self_worker_ref(TIMELINE_PROCESSOR_API);
    let generation = readers::reader_generation(&read.worker_name, &me.worker_name)?;
    let next = WorkerRef {
        worker_name: readers::reader_name(&read.worker_name, generation.checked_add(1)?),
        ..me
    };
    // The op after "reader of NAME: " (see `reader_op`).
    let op = w.op.split_once(": ").map_or("", |(_, op)| op);
    let config = worker_rpc::node_config(
        op,
        w.key_column.as_deref(),
        w.retention,
        &reader.inputs,
        &[],
    );
    Some((next, config, reader.state()))
}

/// What a reader of `read` is created as: its op names the worker it reads, so that a reader
/// of one worker never becomes a reader of another.
fn reader_op(read: &WorkerRef, op: &str) -> String {
    format!("reader of {}: {op}", read.worker_name)
}

/// How a reader starts: from the worker it reads (the first generation), or from the previous
/// generation's copy.
enum Start<'a> {
    Attach,
    TakeOver(&'a str),
}

/// Makes this worker a reader as `config` says, unless it is one already: `Ok(false)` then.
fn install_reader(config: NodeConfig, start: Start) -> Result<bool, String> {
    let query = timeline::parser::parse(&config.op).map_err(|e| format!("op: {e}"))?;
    let inputs = super::inputs_in(&config);
    let read = inputs
        .first()
        .cloned()
        .ok_or("a reader reads a worker: give it as the first input")?;
    let text = reader_op(&read, &query.to_string());
    if worker_rpc::reinitialize(&WORKER, &text, &config.key_column, config.retention, &[])? {
        return Ok(false);
    }
    let copy = if query.aggregate.is_some() {
        // A merge's reader: inputs after the merge are its partial workers, in slot order.
        let partials = &inputs[1..];
        let mut merge = MergeAggregateNode::new(&query, partials.len())?;
        match start {
            Start::Attach => {
                for (i, partial) in partials.iter().enumerate() {
                    merge.apply(i, &PartialBatch::decode(&attach(partial)?)?)?;
                }
            }
            Start::TakeOver(state) => merge.apply_state(state)?,
        }
        Replica::Merge(merge)
    } else {
        if inputs.len() != 1 {
            return Err("a per-key node's reader reads that one worker".into());
        }
        let op = timeline::parse_query(&config.op).map_err(|e| format!("op: {e}"))?;
        let mut copy = MirrorNode::new(&op, config.retention)?;
        match start {
            Start::Attach => copy.apply(&decode_deltas(&attach(&read)?)?),
            Start::TakeOver(state) => copy.apply(&decode_deltas(state)?),
        }
        Replica::Keys(copy)
    };
    install(
        text,
        config,
        Vec::new(),
        Node::Reader(Reader {
            inputs,
            copy,
            count: ReadCount::default(),
        }),
    );
    Ok(true)
}

/// Becomes a reader of `worker` (a parent it tells of changes) and gets its whole output.
fn attach(worker: &WorkerRef) -> Result<String, String> {
    let me = worker_rpc::self_worker_ref(TIMELINE_PROCESSOR_API);
    worker_rpc::call_result(
        worker,
        &worker.function("attach-reader"),
        vec![worker_rpc::worker_ref(&me)],
    )?
    .ok_or("attach-reader returned nothing")?
    .string()
}

/// `initialize-reader`: the first generation, started from the worker it reads.
pub fn initialize(config: NodeConfig) -> Result<(), String> {
    install_reader(config, Start::Attach).map(|_| ())
}

/// `take-over`: the next generation, started from the previous one's copy.
pub fn take_over(config: NodeConfig, state: String) -> Result<(), String> {
    if install_reader(config, Start::TakeOver(&state))? {
        return Ok(());
    }
    // Asked again (the previous generation did not hear the first answer): nothing but reads
    // can have reached this reader since, so the newer copy replaces the first.
    with_worker(|w| match &mut w.node {
        Node::Reader(r) if r.count.successor.is_none() => r.replace(&state),
        _ => Ok(()),
    })
}
