//! Sending a packed batch on to the leaves that read it, as the driver does: each leaf worker
//! gets, per shard, one packed batch of the events of its keys, each reduced to the key and the
//! columns the leaf reads, their text copied from the batch rather than decoded and encoded again.
//!
//! Events that carry none of a leaf's columns are left out, except those that can still change
//! what the leaf holds for their key. Such an event only moves the key's first and latest times
//! and can be refused by retention, so a key's events are kept when they are
//! - the key's first event in the batch (a new key is named by it), the first event at the key's
//!   earliest time (its origin) and the first at its latest time,
//! - late: earlier than some event of the key before it in the batch, and the event that set
//!   that maximum (a late event is refused when it is more than the horizon behind it),
//!
//! and the leaf holds the same and refuses the same batches as if it had seen every event (an
//! event refused for being behind the leaf's own latest time is refused when the earliest one
//! is). Events in time order keep two such events per key; a leaf that must see every event (a
//! predicate that holds when its columns are missing) gets all of them.

use crate::event::IngestError;
use crate::keys::KeyMap;
use crate::plan::shard_of;
use crate::value::ValueKey;
use crate::wire::{EventWriter, PackedEvent};
use crate::worker::LeafNode;

/// The events one leaf worker gets.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafBatch {
    /// The leaf, as a position in the slice given to [`split_for_leaves`].
    pub leaf: usize,
    pub shard: u32,
    /// The events, packed.
    pub packed: String,
    /// The position of each of them in the whole batch (to name an event the leaf refuses).
    pub positions: Vec<usize>,
}

/// Splits `events` for `leaves` (see the module's documentation). The events are checked as
/// [`crate::keys::split_batch`] checks a batch before anything is sent: every event must carry
/// the key column (the packed format has already refused non-finite numbers).
pub fn split_for_leaves<'a>(
    events: &[PackedEvent<'a>],
    key_column: Option<&str>,
    shards: u32,
    leaves: &[&LeafNode],
) -> Result<Vec<LeafBatch>, IngestError> {
    let keys = group_by_key(events, key_column, shards)?;
    let needed = needed_by_time(events, &keys.slot_of);
    // Which leaves read each column name (their positions), found once per distinct name.
    let mut readers: Vec<(&'a str, Vec<usize>)> = Vec::new();
    let reads = |readers: &mut Vec<(&'a str, Vec<usize>)>, column: &'a str| -> usize {
        if let Some(i) = readers.iter().position(|(c, _)| *c == column) {
            return i;
        }
        let by = (0..leaves.len())
            .filter(|&l| leaves[l].spec().reads(column))
            .collect();
        readers.push((column, by));
        readers.len() - 1
    };
    let every: Vec<usize> = (0..leaves.len())
        .filter(|&l| leaves[l].spec().needs_every_event())
        .collect();
    let shards = shards.max(1) as usize;
    // Per leaf and shard: the batch, and the positions of its events.
    let mut writers: Vec<Option<(EventWriter, Vec<usize>)>> =
        (0..leaves.len() * shards).map(|_| None).collect();
    let (mut fields_readers, mut to, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for (i, e) in events.iter().enumerate() {
        fields_readers.clear();
        fields_readers.extend(e.fields.iter().map(|f| reads(&mut readers, f.column)));
        // The leaves this event goes to.
        to.clear();
        if needed[i] {
            to.extend(0..leaves.len());
        } else {
            to.extend_from_slice(&every);
            for &r in &fields_readers {
                to.extend_from_slice(&readers[r].1);
            }
            to.sort_unstable();
            to.dedup();
        }
        let shard = keys.shards[keys.slot_of[i]] as usize;
        for &l in &to {
            kept.clear();
            kept.extend(
                e.fields
                    .iter()
                    .zip(&fields_readers)
                    .filter(|(f, &r)| key_column == Some(f.column) || readers[r].1.contains(&l))
                    .map(|(f, _)| f),
            );
            let (writer, positions) =
                writers[l * shards + shard].get_or_insert_with(|| (EventWriter::new(), Vec::new()));
            writer.push_packed(e.time, kept.iter().copied());
            positions.push(i);
        }
    }
    let out = writers
        .into_iter()
        .enumerate()
        .filter_map(|(n, w)| {
            let (writer, positions) = w?;
            Some(LeafBatch {
                leaf: n / shards,
                shard: (n % shards) as u32,
                packed: writer.finish(),
                positions,
            })
        })
        .collect();
    Ok(out)
}

/// Each event's key, as a slot, and each slot's shard.
struct Keys {
    slot_of: Vec<usize>,
    shards: Vec<u32>,
}

fn group_by_key(
    events: &[PackedEvent<'_>],
    key_column: Option<&str>,
    shards: u32,
) -> Result<Keys, IngestError> {
    let Some(k) = key_column else {
        return Ok(Keys {
            slot_of: vec![0; events.len()],
            shards: vec![0],
        });
    };
    // A key's text usually repeats within a batch: it is decoded once. Texts that differ can
    // still be one key (`i5` and `f5.0`), hence the second map.
    let mut by_text: KeyMap<&str, usize> = KeyMap::default();
    let mut by_key: KeyMap<ValueKey, usize> = KeyMap::default();
    let mut keys = Keys {
        slot_of: Vec::with_capacity(events.len()),
        shards: Vec::new(),
    };
    for (index, e) in events.iter().enumerate() {
        // As `Event::get`: the last field of that name.
        let field = e
            .fields
            .iter()
            .rev()
            .find(|f| f.column == k)
            .ok_or_else(|| IngestError {
                index,
                message: format!(
                    "the event at time {} has no \"{k}\" column (the partition key)",
                    e.time
                ),
            })?;
        let slot = match by_text.get(field.value_text()) {
            Some(&slot) => slot,
            None => {
                let value = field.value();
                let next = keys.shards.len();
                let slot = *by_key.entry(ValueKey::from(&value)).or_insert(next);
                if slot == next {
                    keys.shards.push(shard_of(Some(&value), shards));
                }
                by_text.insert(field.value_text(), slot);
                slot
            }
        };
        keys.slot_of.push(slot);
    }
    Ok(keys)
}

/// Whether each event must reach every leaf even when it carries none of the leaf's columns
/// (see the module's documentation).
fn needed_by_time(events: &[PackedEvent<'_>], slot_of: &[usize]) -> Vec<bool> {
    let slots = slot_of.iter().max().map_or(0, |m| m + 1);
    // Per key: the first event at the earliest time, the first at the latest time so far.
    let mut first: Vec<Option<usize>> = vec![None; slots];
    let mut latest: Vec<Option<usize>> = vec![None; slots];
    let mut needed = vec![false; events.len()];
    for (i, e) in events.iter().enumerate() {
        let k = slot_of[i];
        if first[k].is_none() {
            // A new key takes its value from its first event (`7` or `7.0`).
            needed[i] = true;
        }
        if first[k].is_none_or(|j| e.time < events[j].time) {
            first[k] = Some(i);
        }
        match latest[k] {
            Some(j) if e.time < events[j].time => {
                // Late: it and the event it is measured against.
                needed[i] = true;
                needed[j] = true;
            }
            Some(j) if e.time == events[j].time => {}
            _ => latest[k] = Some(i),
        }
    }
    for i in first.into_iter().chain(latest).flatten() {
        needed[i] = true;
    }
    needed
}

/// Names an event a leaf refused by its position in the whole batch: a leaf's error starts with
/// `event N:`, N counted in the leaf's own batch.
pub fn whole_batch_error(message: &str, positions: &[usize]) -> String {
    let renamed = message.strip_prefix("event ").and_then(|rest| {
        let (n, rest) = rest.split_once(':')?;
        let n: usize = n.parse().ok()?;
        let whole = positions.get(n.checked_sub(1)?)?;
        Some(format!("event {}:{rest}", whole + 1))
    });
    renamed.unwrap_or_else(|| message.to_string())
}
