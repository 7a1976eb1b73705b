//! What the engine and the per-node workers share: splitting a batch of events by partition key
//! with every check done up front, and the retention rules.

use crate::event::Event;
use crate::event::IngestError;
use crate::value::{Str, Value, ValueKey};
use std::collections::HashMap;
use std::sync::Arc;

/// The map from partition key to per-key state: a fast seeded hash (keys come from events, so
/// the seed keeps crafted collisions out), since SipHash dominated ingestion.
pub type KeyMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A batch of events split by key, in arrival order within each key.
pub struct KeyedBatch<'a> {
    pub keys: Vec<(Option<ValueKey>, Option<Value>, Vec<&'a Event>)>,
}

/// A batch of events with each event's key found: the keys in order of first appearance, and
/// for each event the position of its key among them.
pub struct IndexedBatch {
    pub keys: Vec<(Option<ValueKey>, Option<Value>)>,
    /// Per event, in batch order: its key's position in `keys`.
    pub key_of: Vec<u32>,
}

/// Splits `events` by `key_column` and checks all of them before anything is applied: every
/// event has the key column, no float is NaN or infinite, and, with a retention horizon `h`, no
/// event is older than its key's horizon (the key's latest time, from `known_max_time` or earlier
/// in the batch, minus `h`).
pub fn split_batch<'a>(
    events: &'a [Event],
    key_column: Option<&Arc<str>>,
    retention: Option<u64>,
    known_max_time: impl Fn(&Option<ValueKey>) -> Option<u64>,
) -> Result<KeyedBatch<'a>, IngestError> {
    let batch = index_batch(events, key_column, retention, known_max_time)?;
    let mut keys: Vec<_> = batch
        .keys
        .into_iter()
        .map(|(id, key)| (id, key, Vec::new()))
        .collect();
    for (e, &k) in events.iter().zip(&batch.key_of) {
        keys[k as usize].2.push(e);
    }
    Ok(KeyedBatch { keys })
}

/// As [`split_batch`], checking the same, but leaving the events in place: each event's key is
/// named by its position (what the engine needs to apply a batch in arrival order).
pub fn index_batch(
    events: &[Event],
    key_column: Option<&Arc<str>>,
    retention: Option<u64>,
    known_max_time: impl Fn(&Option<ValueKey>) -> Option<u64>,
) -> Result<IndexedBatch, IngestError> {
    let mut index_of: KeyMap<Option<ValueKey>, u32> = KeyMap::default();
    // The events borrowed for the whole call keep every address here alive and unique.
    let mut by_address: KeyMap<usize, u32> = KeyMap::default();
    // Streams come in runs of the same key; a run costs one lookup.
    let mut previous: Option<(u32, Option<&Value>)> = None;
    let mut keys: Vec<(Option<ValueKey>, Option<Value>)> = Vec::new();
    let mut key_of: Vec<u32> = Vec::with_capacity(events.len());
    let mut max_times: Vec<Option<u64>> = Vec::new();
    // The key column's name as the events carry it, once found: see `key_field`.
    let mut key_name: Option<&Arc<str>> = None;
    for (index, e) in events.iter().enumerate() {
        if let Some(ahead) = events.get(index + 4) {
            crate::event::prefetch(ahead.fields.as_ptr());
        }
        let fail = |message: String| IngestError { index, message };
        for (c, v) in &e.fields {
            if let Value::Float(f) = v {
                if !f.is_finite() {
                    return Err(fail(format!(
                        "column \"{c}\" is {f}; NaN and infinities are rejected"
                    )));
                }
            }
        }
        let key = match key_column {
            None => None,
            Some(k) => Some(key_field(e, k, &mut key_name).ok_or_else(|| {
                fail(format!(
                    "the event at time {} has no \"{k}\" column (the partition key)",
                    e.time
                ))
            })?),
        };
        // Decoders share one `Arc` per distinct string, so the key's address usually finds its
        // slot without reading the string, hashing it or touching its reference count; a key
        // under an address not seen yet is compared with the previous event's (a run of one
        // key from a decoder that does not share), then found by value below.
        let known_slot = match (key, previous) {
            (Some(Value::Str(s)), Some((slot, Some(Value::Str(p))))) if Str::ptr_eq(s, p) => {
                Some(slot)
            }
            (Some(Value::Str(s)), _) => by_address.get(&s.addr()).copied(),
            _ => None,
        }
        .or_else(|| {
            previous
                .filter(|(_, prev)| same_key(*prev, key))
                .map(|(slot, _)| slot)
        });
        let slot = match known_slot {
            Some(slot) => slot,
            None => {
                let id = key.map(ValueKey::from);
                let slot = *index_of.entry(id.clone()).or_insert_with(|| {
                    max_times.push(known_max_time(&id));
                    keys.push((id, key.cloned()));
                    // A batch is a slice in memory: fewer than 2^32 keys.
                    (keys.len() - 1) as u32
                });
                if let Some(Value::Str(s)) = key {
                    by_address.insert(s.addr(), slot);
                }
                slot
            }
        };
        previous = Some((slot, key));
        if let Some(h) = retention {
            let max = &mut max_times[slot as usize];
            if let Some(m) = *max {
                let horizon = horizon(m, h);
                if e.time < horizon {
                    return Err(fail(format!(
                        "time {} is before the retention horizon {horizon} (latest time {m} minus {h})",
                        e.time
                    )));
                }
            }
            *max = Some(max.map_or(e.time, |m| m.max(e.time)));
        }
        key_of.push(slot);
    }
    Ok(IndexedBatch { keys, key_of })
}

/// The value of the key column `column` in `e`, as [`Event::column`] finds it (the last field of
/// that name). `seen` is the name's `Arc` in the event that came before: decoders share one per
/// column, so a pointer comparison usually replaces reading the name.
fn key_field<'e>(
    e: &'e Event,
    column: &Arc<str>,
    seen: &mut Option<&'e Arc<str>>,
) -> Option<&'e Value> {
    for (c, v) in e.fields.iter().rev() {
        if seen.is_some_and(|s| Arc::ptr_eq(c, s)) {
            return Some(v);
        }
        if Arc::ptr_eq(c, column) || **c == **column {
            *seen = Some(c);
            return Some(v);
        }
    }
    None
}

/// Whether two events' key values are the same partition key.
fn same_key(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(Value::Str(a)), Some(Value::Str(b))) => a == b,
        (Some(a), Some(b)) => ValueKey::from(a) == ValueKey::from(b),
        _ => false,
    }
}

/// The earliest time that can be ingested or queried, for a key whose latest event is at
/// `max_time`.
pub fn horizon(max_time: u64, h: u64) -> u64 {
    max_time.saturating_sub(h)
}

/// Where to collapse history, if it is time to: nodes keep exact values from one instant before
/// the horizon on (duration operators look one instant back). Collapsing happens in steps of
/// about `h / 4`, so that its cost is amortised over many events.
pub fn collapse_point(max_time: u64, h: u64, collapsed_before: u64) -> Option<u64> {
    let keep_from = horizon(max_time, h).saturating_sub(1);
    (keep_from > 0 && keep_from >= collapsed_before.saturating_add((h / 4).max(1)))
        .then_some(keep_from)
}
