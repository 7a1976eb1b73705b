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
use timeline::readers::{handed_over_to, MAX_HOPS};
use timeline::KeyDelta;

/// Sends the deltas to every parent (each a timeline-processor worker, told which input it is).
/// A parent that is a reader which handed over names its successor: the successor gets the
/// deltas and takes the reader's place in `parents`. Returns whether `parents` changed.
pub fn push_deltas(parents: &mut [(WorkerRef, u32)], deltas: &[KeyDelta]) -> Result<bool, String> {
    if deltas.is_empty() {
        return Ok(false);
    }
    // One string instead of a tree of values: the cheapest batch to build, send and log.
    let packed = timeline::wire::encode_key_deltas(deltas);
    let mut changed = false;
    for (parent, input) in parents.iter_mut() {
        let mut hops = 0;
        loop {
            let function = parent.function("apply-packed");
            let answer = call(
                parent,
                &function,
                vec![V::U32(*input), V::Str(packed.clone())],
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

/// Sends a node worker's deltas to its parents, and keeps any successor a handed-over reader
/// named in the worker's parents.
pub fn push_and_follow<N: 'static>(
    slot: &'static WorkerSlot<N>,
    mut parents: Vec<(WorkerRef, u32)>,
    deltas: &[KeyDelta],
) -> Result<(), String> {
    if push_deltas(&mut parents, deltas)? {
        crate::with_worker(slot, |w| {
            w.parents = parents;
            Ok(())
        })?;
    }
    Ok(())
}

/// `attach-reader`: adds `reader` as a parent reading input 0, and returns the node's whole
/// output, packed, for the reader to start from.
pub fn attach_reader<N>(
    worker: &mut NodeWorker<N>,
    reader: WorkerRef,
    snapshot: impl FnOnce(&N) -> Result<Vec<KeyDelta>, String>,
) -> Result<String, String> {
    let deltas = snapshot(&worker.node)?;
    let parent = (reader, 0);
    if !worker.parents.contains(&parent) {
        worker.parents.push(parent);
    }
    Ok(timeline::wire::encode_key_deltas(&deltas))
}
