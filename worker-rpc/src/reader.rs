//! Readers: the workers clients read a node through, so that reads never grow a node worker's
//! log without bound (Golem 1.1 logs every invocation, reads included, and replays the whole
//! log when a worker recovers).
//!
//! A reader is a timeline-processor worker holding a copy of one node worker's output (a
//! [`timeline::MirrorNode`]), kept current by the node's pushes like any parent's. It serves
//! [`READS_PER_READER`] reads, then hands its copy over to its next generation. From then on
//! it refuses everything with [`HANDED_OVER`] and the successor's name: clients read there, and
//! the node, at its next push, tells the successor instead. So a reader's log holds at most
//! that many reads, and the node's gains nothing per read. Names and refusals are in
//! [`timeline::readers`].
//!
//! [`READS_PER_READER`]: timeline::limits::READS_PER_READER
//! [`HANDED_OVER`]: timeline::readers::HANDED_OVER

use crate::{call, NodeWorker, WorkerRef, WorkerSlot, TIMELINE_PROCESSOR_API, V};
use timeline::aggregate::PartialBatch;
use timeline::readers::{handed_over_to, MAX_HOPS};
use timeline::KeyDelta;

/// What a node worker tells its parents after a change, packed in one string (the cheapest
/// batch to build, send and log).
pub enum Push {
    /// A per-key node's deltas (`apply-packed`).
    Deltas(String),
    /// A partial aggregate's changed groups (`apply-partials`).
    Partials(String),
}

impl Push {
    /// The push of a per-key node's deltas; none if nothing changed.
    pub fn deltas(deltas: &[KeyDelta]) -> Option<Push> {
        (!deltas.is_empty()).then(|| Push::Deltas(timeline::wire::encode_key_deltas(deltas)))
    }

    /// The push of a partial aggregate's changed groups; none if no group changed.
    pub fn partials(batch: &PartialBatch) -> Option<Push> {
        (!batch.groups.is_empty()).then(|| Push::Partials(batch.encode()))
    }

    fn function(&self) -> &'static str {
        match self {
            Push::Deltas(_) => "apply-packed",
            Push::Partials(_) => "apply-partials",
        }
    }

    fn packed(&self) -> &str {
        match self {
            Push::Deltas(p) | Push::Partials(p) => p,
        }
    }
}

/// Sends `push` to every parent (each a timeline-processor worker, told which input it is). A
/// parent that is a reader which handed over names its successor: the successor gets the push
/// and takes the reader's place in `parents`. Returns whether `parents` changed.
pub fn push_to(parents: &mut [(WorkerRef, u32)], push: &Push) -> Result<bool, String> {
    let mut changed = false;
    for (parent, input) in parents.iter_mut() {
        let mut hops = 0;
        loop {
            let function = parent.function(push.function());
            let answer = call(
                parent,
                &function,
                vec![V::U32(*input), V::Str(push.packed().to_string())],
            )?;
            match answer.result() {
                Ok(_) => break,
                Err(e) => match handed_over_to(&e) {
                    Some(successor) if hops < MAX_HOPS => {
                        *parent = WorkerRef {
                            component_id: parent.component_id.clone(),
                            worker_name: successor.to_string(),
                            interface: TIMELINE_PROCESSOR_API.into(),
                        };
                        changed = true;
                        hops += 1;
                    }
                    _ => return Err(format!("{} ({function}): {e}", parent.worker_name)),
                },
            }
        }
    }
    Ok(changed)
}

/// Sends a node worker's `push` (if any) to its parents, and keeps any successor a
/// handed-over reader named in the worker's parents.
pub fn push_and_follow<N: 'static>(
    slot: &'static WorkerSlot<N>,
    mut parents: Vec<(WorkerRef, u32)>,
    push: Option<Push>,
) -> Result<(), String> {
    let Some(push) = push else {
        return Ok(());
    };
    if push_to(&mut parents, &push)? {
        crate::with_worker(slot, |w| {
            w.parents = parents;
            Ok(())
        })?;
    }
    Ok(())
}

/// `attach-reader`: adds `reader` as a parent reading input `input`, and returns the node's
/// whole output, packed by `snapshot`, for the reader to start from: in one invocation, so that
/// no change falls between the two.
pub fn attach_reader<N>(
    worker: &mut NodeWorker<N>,
    reader: WorkerRef,
    input: u32,
    snapshot: impl FnOnce(&mut N) -> Result<String, String>,
) -> Result<String, String> {
    let packed = snapshot(&mut worker.node)?;
    let parent = (reader, input);
    if !worker.parents.contains(&parent) {
        worker.parents.push(parent);
    }
    Ok(packed)
}
