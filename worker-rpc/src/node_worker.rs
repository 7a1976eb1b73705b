//! The bookkeeping every node worker shares (event-processor's leaves, timeline-processor's
//! derived nodes): what it computes, whom it tells about changes, the idempotent `initialize`,
//! and the answer for a worker nobody initialised.

use crate::WorkerRef;
use std::cell::RefCell;
use std::thread::LocalKey;

/// What a node worker holds: the node, what it was created as, and whom to tell about changes.
pub struct NodeWorker<N> {
    /// The sub-expression, as canonical DSL text.
    pub op: String,
    pub key_column: Option<String>,
    pub retention: Option<u64>,
    pub node: N,
    /// The workers that read this one, each with the input slot it reads it in.
    pub parents: Vec<(WorkerRef, u32)>,
}

/// A component's one worker, empty until `initialize`.
pub type WorkerSlot<N> = LocalKey<RefCell<Option<NodeWorker<N>>>>;

/// Runs `f` on the worker, or says it was never initialised.
pub fn with_worker<N: 'static, T>(
    slot: &'static WorkerSlot<N>,
    f: impl FnOnce(&mut NodeWorker<N>) -> Result<T, String>,
) -> Result<T, String> {
    slot.with_borrow_mut(|w| match w {
        Some(w) => f(w),
        None => Err(format!(
            "worker {} is not initialised: create it through a job (driver.run)",
            crate::self_worker_name()
        )),
    })
}

/// `initialize` on a worker that may exist already (a re-submitted job, or another job sharing
/// the node). An existing worker computing the same op, with the same key column and retention,
/// only gains the parents it lacks, and `Ok(true)` says so; one computing anything else refuses.
/// `Ok(false)`: there is no worker yet, and the caller creates it.
pub fn reinitialize<N: 'static>(
    slot: &'static WorkerSlot<N>,
    op: &str,
    key_column: &Option<String>,
    retention: Option<u64>,
    parents: &[(WorkerRef, u32)],
) -> Result<bool, String> {
    slot.with_borrow_mut(|w| match w {
        Some(w) if w.op != op || w.key_column != *key_column || w.retention != retention => {
            Err(format!(
                "this worker computes `{}` (key {:?}, retention {:?}); it cannot become `{op}`",
                w.op, w.key_column, w.retention
            ))
        }
        Some(w) => {
            for p in parents {
                if !w.parents.contains(p) {
                    w.parents.push(p.clone());
                }
            }
            Ok(true)
        }
        None => Ok(false),
    })
}

/// A batched read (`get-results`): `read(key, t)` for every key at every time, key by key
/// (k1@t1, k1@t2, k2@t1, …), refused whole past [`timeline::limits::MAX_READS_PER_CALL`]
/// answers or at the first key that cannot be read.
pub fn read_many<S>(
    keys: &[Option<timeline::Value>],
    times: &[u64],
    mut read: impl FnMut(Option<&timeline::Value>, u64) -> Result<S, String>,
) -> Result<Vec<S>, String> {
    timeline::limits::check_reads(keys.len(), times.len())?;
    let mut out = Vec::with_capacity(keys.len() * times.len());
    for key in keys {
        for &t in times {
            out.push(read(key.as_ref(), t)?);
        }
    }
    Ok(out)
}
