//! One plan node on its own, for every key: the state a distributed worker keeps.
//!
//! A [`LeafNode`] ingests events and emits one [`KeyDelta`] per key it touched; a
//! [`DerivedNode`] keeps copies of its inputs' timelines, applies their deltas, and emits its own.
//! Wiring leaves to derived nodes by their deltas gives the same timelines as the [`Engine`]
//! (tests check this), so a Golem worker is a thin adapter around one of these.
//!
//! [`Engine`]: crate::Engine

use crate::engine::{IngestError, QueryError, Stats};
use crate::event::Event;
use crate::keys::{collapse_point, horizon, split_batch};
use crate::node::{DerivedKind, DerivedState, LeafSpec, LeafState, NodeSpec};
use crate::op::TimeLineOp;
use crate::timeline::{Delta, Segment, Timeline};
use crate::value::{State, Value, ValueKey};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a node tells the nodes that read it about one key, after a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyDelta {
    /// The partition key (`None` without a key column).
    pub key: Option<Value>,
    /// The key's first event time, which duration operators measure from.
    pub origin: u64,
    /// The key's latest event time, which retention measures from.
    pub max_time: u64,
    /// The changed suffix of the node's output, if it changed.
    pub change: Option<Delta>,
}

/// Per-key bookkeeping common to both kinds of node.
#[derive(Clone, Debug)]
struct KeyClock {
    key: Option<Value>,
    origin: Option<u64>,
    max_time: u64,
    collapsed_before: u64,
}

impl KeyClock {
    fn new(key: Option<Value>) -> KeyClock {
        KeyClock {
            key,
            origin: None,
            max_time: 0,
            collapsed_before: 0,
        }
    }

    /// Whether the key's history from its first event to its horizon was dropped.
    fn dropped_history(&self) -> bool {
        self.origin.is_some_and(|o| o < self.collapsed_before)
    }

    /// The times a reader hears of: compared after a batch by [`KeyClock::worth_telling`].
    fn times(&self) -> (Option<u64>, u64) {
        (self.origin, self.max_time)
    }

    /// Whether readers must hear of this key after a batch (`before`: its [`KeyClock::times`]
    /// before it): its output changed, its origin moved (durations measure from it), or, under
    /// retention, its latest time moved (the horizon follows it). A delta with none of these
    /// changes nothing in a reader, and is not sent.
    fn worth_telling(
        &self,
        before: (Option<u64>, u64),
        change: &Option<Delta>,
        retention: Option<u64>,
    ) -> bool {
        let (origin, max_time) = before;
        change.is_some()
            || self.origin != origin
            || (retention.is_some() && self.max_time != max_time)
    }

    fn delta(&self, change: Option<Delta>) -> KeyDelta {
        KeyDelta {
            key: self.key.clone(),
            origin: self.origin.unwrap_or(0),
            max_time: self.max_time,
            change,
        }
    }
}

/// Which keys a [`KeyPage`] holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyQuery {
    /// Keys after this one in key order (`None`: from the first key).
    pub after: Option<Value>,
    /// Keys whose text contains this, ignoring case (`None` or empty: every key). A key's
    /// text is a string key as it is, any other key as it is written in a query.
    pub search: Option<String>,
    /// The most keys in the page (at most [`MAX_KEY_PAGE`](crate::limits::MAX_KEY_PAGE)).
    pub limit: u32,
}

impl KeyQuery {
    /// Checks the query against the limits, with an error that says what to send instead.
    pub fn check(&self) -> Result<(), String> {
        use crate::limits::{MAX_KEY_PAGE, MAX_KEY_SEARCH_BYTES};
        if self.limit > MAX_KEY_PAGE {
            return Err(format!(
                "a page of {} keys is more than the limit of {MAX_KEY_PAGE}: ask for fewer and page on with `after`",
                self.limit
            ));
        }
        if self
            .search
            .as_ref()
            .is_some_and(|s| s.len() > MAX_KEY_SEARCH_BYTES)
        {
            return Err(format!(
                "a key search of more than {MAX_KEY_SEARCH_BYTES} bytes is refused"
            ));
        }
        Ok(())
    }
}

/// One page of a node's keys, in key order (the order of [`ValueKey`]; the key of a job
/// without a key column, `None`, comes first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyPage {
    /// Up to `limit` keys after `after` that match the search.
    pub keys: Vec<Option<Value>>,
    /// How many keys match the search, over the whole node (not only this page).
    pub matching: u64,
}

/// The text a key search looks in: a string key as it is, any other as written in a query.
pub fn key_text(key: Option<&Value>) -> String {
    match key {
        None => String::new(),
        Some(Value::Str(s)) => s.to_string(),
        Some(v) => v.to_string(),
    }
}

fn key_page<V>(
    keys: &BTreeMap<Option<ValueKey>, V>,
    clock: impl Fn(&V) -> &KeyClock,
    query: &KeyQuery,
) -> KeyPage {
    use std::ops::Bound;
    let needle = query
        .search
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase);
    let matches = |v: &V| {
        needle.as_ref().is_none_or(|n| {
            key_text(clock(v).key.as_ref())
                .to_lowercase()
                .contains(n.as_str())
        })
    };
    let matching = match needle {
        None => keys.len() as u64,
        Some(_) => keys.values().filter(|v| matches(v)).count() as u64,
    };
    let from = match &query.after {
        None => Bound::Unbounded,
        Some(after) => Bound::Excluded(Some(ValueKey::from(after))),
    };
    let page = keys
        .range((from, Bound::Unbounded))
        .map(|(_, v)| v)
        .filter(|v| matches(v))
        .take(query.limit as usize)
        .map(|v| clock(v).key.clone())
        .collect();
    KeyPage {
        keys: page,
        matching,
    }
}

fn key_id(key: Option<&Value>) -> Option<ValueKey> {
    key.map(ValueKey::from)
}

fn check_time(clock: &KeyClock, retention: Option<u64>, t: u64) -> Result<(), QueryError> {
    match retention.map(|h| horizon(clock.max_time, h)) {
        Some(h) if t < h => Err(QueryError::BeforeHorizon {
            time: t,
            horizon: h,
        }),
        _ => Ok(()),
    }
}

fn unknown_key(key: Option<&Value>) -> QueryError {
    QueryError::UnknownKey(key.map_or_else(|| "(the only key)".into(), |k| k.to_string()))
}

/// A leaf node (`latest_event_to_state`, `has_existed`, …) for every key.
#[derive(Clone, Debug)]
pub struct LeafNode {
    spec: LeafSpec,
    initial: State,
    key_column: Option<Arc<str>>,
    retention: Option<u64>,
    keys: BTreeMap<Option<ValueKey>, (KeyClock, LeafState)>,
    /// Events ingested, over all keys.
    events: u64,
}

impl LeafNode {
    /// A leaf computing `op`, which must be a leaf operator.
    pub fn new(
        op: &TimeLineOp,
        key_column: Option<&str>,
        retention: Option<u64>,
    ) -> Result<LeafNode, String> {
        op.validate().map_err(|e| e.to_string())?;
        match NodeSpec::new(op) {
            NodeSpec::Leaf(spec) => Ok(LeafNode {
                spec,
                initial: op.initial_state(),
                key_column: key_column.map(Arc::from),
                retention,
                keys: BTreeMap::new(),
                events: 0,
            }),
            NodeSpec::Derived(_) => Err(format!("`{op}` reads other timelines: it is not a leaf")),
        }
    }

    /// What the leaf computes, for every key.
    pub fn spec(&self) -> &LeafSpec {
        &self.spec
    }

    /// The fields of `event` this leaf reads, and its key column: a sender may reduce events to
    /// these. An event with no field left still moves its key's origin and latest time, and can
    /// be refused by retention: [`crate::forward`] says which such events a sender must keep.
    pub fn projected_fields<'a>(
        &'a self,
        event: &'a Event,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> + Clone + 'a {
        event
            .fields
            .iter()
            .filter(|(c, _)| self.keeps(c))
            .map(|(c, v)| (&**c, v))
    }

    fn keeps(&self, column: &Arc<str>) -> bool {
        self.key_column.as_ref() == Some(column) || self.spec.reads(column)
    }

    /// The whole output of every key, as deltas for a reader that starts from nothing.
    pub fn snapshot(&self) -> Vec<KeyDelta> {
        self.keys
            .values()
            .map(|(c, l)| c.delta(Some(l.output.delta_from(0))))
            .collect()
    }

    /// Checks a batch as [`LeafNode::ingest`] would, changing nothing: a sender feeding several
    /// leaves asks each of them first, so that a batch refused by one changes none.
    pub fn check(&self, events: &[Event]) -> Result<(), IngestError> {
        split_batch(events, self.key_column.as_ref(), self.retention, |id| {
            self.keys.get(id).map(|(c, _)| c.max_time)
        })
        .map(|_| ())
    }

    /// Ingests a batch (checked whole first: nothing is applied if any event is refused) and
    /// returns a delta for each key of the batch that its readers must hear of (see
    /// `KeyClock::worth_telling`: a key whose output, origin and, under retention, latest time
    /// did not move is left out).
    pub fn ingest(&mut self, events: &[Event]) -> Result<Vec<KeyDelta>, IngestError> {
        let batch = split_batch(events, self.key_column.as_ref(), self.retention, |id| {
            self.keys.get(id).map(|(c, _)| c.max_time)
        })?;
        self.events += events.len() as u64;
        let mut out = Vec::with_capacity(batch.keys.len());
        for (id, key, events) in batch.keys {
            let (clock, leaf) = self
                .keys
                .entry(id)
                .or_insert_with(|| (KeyClock::new(key), LeafState::new(self.initial.clone())));
            let before = clock.times();
            let mut from: Option<u64> = None;
            for e in &events {
                clock.origin = Some(clock.origin.map_or(e.time, |o| o.min(e.time)));
                clock.max_time = clock.max_time.max(e.time);
                if let Some(t) = leaf.insert(&self.spec, e.time, &e.fields) {
                    from = Some(from.map_or(t, |f| f.min(t)));
                }
            }
            let change = from.and_then(|from| {
                // The old suffix is moved out, not copied; recomputing reads only what is before.
                let old = leaf.output.split_off_from(from);
                leaf.recompute(&self.spec, from);
                leaf.output
                    .first_difference_from(&old, from)
                    .map(|changed| leaf.output.delta_from(changed))
            });
            if clock.worth_telling(before, &change, self.retention) {
                out.push(clock.delta(change));
            }
            if let Some(h) = self.retention {
                if let Some(keep) = collapse_point(clock.max_time, h, clock.collapsed_before) {
                    leaf.forget_before(&self.spec, keep);
                    clock.collapsed_before = keep;
                }
            }
        }
        Ok(out)
    }

    /// The output timeline of `key`.
    pub fn timeline(&self, key: Option<&Value>) -> Result<&Timeline, QueryError> {
        self.keys
            .get(&key_id(key))
            .map(|(_, l)| &l.output)
            .ok_or_else(|| unknown_key(key))
    }

    /// The value at `t` for `key`.
    pub fn value_at(&self, key: Option<&Value>, t: u64) -> Result<State, QueryError> {
        let (clock, leaf) = self
            .keys
            .get(&key_id(key))
            .ok_or_else(|| unknown_key(key))?;
        check_time(clock, self.retention, t)?;
        Ok(leaf.output.value_at(t))
    }

    /// The segments over `[t1, t2)` for `key`.
    pub fn range(&self, key: Option<&Value>, t1: u64, t2: u64) -> Result<Vec<Segment>, QueryError> {
        let (clock, leaf) = self
            .keys
            .get(&key_id(key))
            .ok_or_else(|| unknown_key(key))?;
        check_time(clock, self.retention, t1)?;
        Ok(leaf.output.range(t1, t2))
    }

    /// The keys held, in sorted order.
    pub fn keys(&self) -> Vec<Option<&Value>> {
        self.keys.values().map(|(c, _)| c.key.as_ref()).collect()
    }

    /// One page of the keys held, in key order (see [`KeyPage`]).
    pub fn key_page(&self, query: &KeyQuery) -> KeyPage {
        key_page(&self.keys, |(c, _)| c, query)
    }

    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            keys: self.keys.len(),
            events: self.events,
            ..Stats::default()
        };
        for (c, l) in self.keys.values() {
            s.last_time = s.last_time.max(Some(c.max_time));
            s.history_dropped += usize::from(c.dropped_history());
            s.change_points += l.output.points().len();
            s.event_rows += l.rows(&self.spec);
            s.mismatches += l.mismatches;
            s.bytes += l.heap_bytes() + std::mem::size_of::<(KeyClock, LeafState)>();
        }
        s
    }
}

/// A derived node (a comparison, `&&`, `duration_where`, …) for every key.
#[derive(Clone, Debug)]
pub struct DerivedNode {
    kind: DerivedKind,
    initial: State,
    input_initials: Vec<State>,
    retention: Option<u64>,
    keys: BTreeMap<Option<ValueKey>, DerivedKey>,
}

#[derive(Clone, Debug)]
struct DerivedKey {
    clock: KeyClock,
    inputs: Vec<Timeline>,
    state: DerivedState,
}

impl DerivedNode {
    /// A node computing the top operator of `op` from its inputs' deltas.
    pub fn new(op: &TimeLineOp, retention: Option<u64>) -> Result<DerivedNode, String> {
        op.validate().map_err(|e| e.to_string())?;
        match NodeSpec::new(op) {
            NodeSpec::Derived(kind) => Ok(DerivedNode {
                kind,
                initial: op.initial_state(),
                input_initials: op.children().iter().map(|c| c.initial_state()).collect(),
                retention,
                keys: BTreeMap::new(),
            }),
            NodeSpec::Leaf(_) => Err(format!(
                "`{op}` reads events: it is a leaf, not a derived node"
            )),
        }
    }

    /// The number of inputs.
    pub fn arity(&self) -> usize {
        self.input_initials.len()
    }

    /// Whether the node measures from each key's first event (a duration): it cannot start from
    /// inputs that dropped a key's history before their horizon (see [`Stats::history_dropped`]).
    pub fn measures_from_origin(&self) -> bool {
        self.kind.uses_origin()
    }

    /// The whole output of every key, as deltas for a reader that starts from nothing.
    pub fn snapshot(&self) -> Vec<KeyDelta> {
        self.keys
            .values()
            .map(|k| k.clock.delta(Some(k.state.output.delta_from(0))))
            .collect()
    }

    /// Applies the deltas of input `input` and returns this node's deltas: one for each of those
    /// keys that its readers must hear of (as [`LeafNode::ingest`]).
    pub fn apply(&mut self, input: usize, deltas: &[KeyDelta]) -> Result<Vec<KeyDelta>, String> {
        if input >= self.arity() {
            return Err(format!(
                "input {input} does not exist: this node has {} input(s)",
                self.arity()
            ));
        }
        let mut out = Vec::with_capacity(deltas.len());
        for d in deltas {
            let entry = self
                .keys
                .entry(key_id(d.key.as_ref()))
                .or_insert_with(|| DerivedKey {
                    clock: KeyClock::new(d.key.clone()),
                    inputs: self
                        .input_initials
                        .iter()
                        .cloned()
                        .map(Timeline::new)
                        .collect(),
                    state: DerivedState::new(self.initial.clone()),
                });
            let clock = &mut entry.clock;
            let before = clock.times();
            let mut from = None;
            if clock.origin.is_none_or(|o| d.origin < o) {
                clock.origin = Some(d.origin);
                if self.kind.uses_origin() {
                    from = Some(d.origin);
                }
            }
            clock.max_time = clock.max_time.max(d.max_time);
            if let Some(change) = &d.change {
                entry.inputs[input].apply(change);
                from = Some(from.map_or(change.from, |f: u64| f.min(change.from)));
            }
            let change = from.and_then(|from| {
                let old = entry.state.output.split_off_from(from);
                let inputs: smallvec::SmallVec<[&Timeline; 4]> = entry.inputs.iter().collect();
                entry
                    .state
                    .recompute(&self.kind, &inputs, from, clock.origin);
                entry
                    .state
                    .output
                    .first_difference_from(&old, from)
                    .map(|changed| entry.state.output.delta_from(changed))
            });
            if clock.worth_telling(before, &change, self.retention) {
                out.push(clock.delta(change));
            }
            if let Some(h) = self.retention {
                if let Some(keep) = collapse_point(clock.max_time, h, clock.collapsed_before) {
                    for tl in entry.inputs.iter_mut().chain([&mut entry.state.output]) {
                        tl.collapse_before(keep);
                    }
                    clock.collapsed_before = keep;
                }
            }
        }
        Ok(out)
    }

    /// The output timeline of `key`.
    pub fn timeline(&self, key: Option<&Value>) -> Result<&Timeline, QueryError> {
        self.keys
            .get(&key_id(key))
            .map(|k| &k.state.output)
            .ok_or_else(|| unknown_key(key))
    }

    /// The value at `t` for `key`.
    pub fn value_at(&self, key: Option<&Value>, t: u64) -> Result<State, QueryError> {
        let k = self
            .keys
            .get(&key_id(key))
            .ok_or_else(|| unknown_key(key))?;
        check_time(&k.clock, self.retention, t)?;
        Ok(k.state.output.value_at(t))
    }

    /// The segments over `[t1, t2)` for `key`.
    pub fn range(&self, key: Option<&Value>, t1: u64, t2: u64) -> Result<Vec<Segment>, QueryError> {
        let k = self
            .keys
            .get(&key_id(key))
            .ok_or_else(|| unknown_key(key))?;
        check_time(&k.clock, self.retention, t1)?;
        Ok(k.state.output.range(t1, t2))
    }

    /// The keys held, in sorted order.
    pub fn keys(&self) -> Vec<Option<&Value>> {
        self.keys.values().map(|k| k.clock.key.as_ref()).collect()
    }

    /// One page of the keys held, in key order (see [`KeyPage`]).
    pub fn key_page(&self, query: &KeyQuery) -> KeyPage {
        key_page(&self.keys, |k| &k.clock, query)
    }

    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            keys: self.keys.len(),
            ..Stats::default()
        };
        for k in self.keys.values() {
            s.last_time = s.last_time.max(Some(k.clock.max_time));
            s.history_dropped += usize::from(k.clock.dropped_history());
            s.change_points += k.state.output.points().len();
            s.mismatches += k.state.mismatches;
            s.bytes += k.state.heap_bytes()
                + k.inputs.iter().map(Timeline::heap_bytes).sum::<usize>()
                + std::mem::size_of::<DerivedKey>();
        }
        s
    }
}

/// A copy of another node's output, for every key, kept from that node's deltas: what a reader
/// worker holds, so that reads go to it instead of the node (see the components' readers).
///
/// It answers reads as the node does ([`MirrorNode::value_at`], [`MirrorNode::range`], the
/// horizon under retention included) and can hand its whole state on
/// ([`MirrorNode::snapshot`]) to a successor that starts from it.
#[derive(Clone, Debug)]
pub struct MirrorNode {
    initial: State,
    retention: Option<u64>,
    keys: BTreeMap<Option<ValueKey>, (KeyClock, Timeline)>,
}

impl MirrorNode {
    /// A copy of the output of `op` (any node, leaf or derived), empty until deltas come.
    pub fn new(op: &TimeLineOp, retention: Option<u64>) -> Result<MirrorNode, String> {
        op.validate().map_err(|e| e.to_string())?;
        Ok(MirrorNode {
            initial: op.initial_state(),
            retention,
            keys: BTreeMap::new(),
        })
    }

    /// Applies the node's deltas (a snapshot of it, or what it pushed after a batch).
    pub fn apply(&mut self, deltas: &[KeyDelta]) {
        for d in deltas {
            let (clock, output) = self.keys.entry(key_id(d.key.as_ref())).or_insert_with(|| {
                (
                    KeyClock::new(d.key.clone()),
                    Timeline::new(self.initial.clone()),
                )
            });
            clock.origin = Some(clock.origin.map_or(d.origin, |o| o.min(d.origin)));
            clock.max_time = clock.max_time.max(d.max_time);
            if let Some(change) = &d.change {
                output.apply(change);
            }
            if let Some(h) = self.retention {
                if let Some(keep) = collapse_point(clock.max_time, h, clock.collapsed_before) {
                    output.collapse_before(keep);
                    clock.collapsed_before = keep;
                }
            }
        }
    }

    /// The whole copy, as deltas for a successor that starts from nothing.
    pub fn snapshot(&self) -> Vec<KeyDelta> {
        self.keys
            .values()
            .map(|(c, output)| c.delta(Some(output.delta_from(0))))
            .collect()
    }

    /// Replaces the whole copy with `snapshot` (another copy's [`MirrorNode::snapshot`]).
    pub fn replace(&mut self, snapshot: &[KeyDelta]) {
        self.keys.clear();
        self.apply(snapshot);
    }

    /// The output timeline of `key`.
    pub fn timeline(&self, key: Option<&Value>) -> Result<&Timeline, QueryError> {
        self.keys
            .get(&key_id(key))
            .map(|(_, output)| output)
            .ok_or_else(|| unknown_key(key))
    }

    /// The value at `t` for `key`.
    pub fn value_at(&self, key: Option<&Value>, t: u64) -> Result<State, QueryError> {
        let (clock, output) = self
            .keys
            .get(&key_id(key))
            .ok_or_else(|| unknown_key(key))?;
        check_time(clock, self.retention, t)?;
        Ok(output.value_at(t))
    }

    /// The segments over `[t1, t2)` for `key`.
    pub fn range(&self, key: Option<&Value>, t1: u64, t2: u64) -> Result<Vec<Segment>, QueryError> {
        let (clock, output) = self
            .keys
            .get(&key_id(key))
            .ok_or_else(|| unknown_key(key))?;
        check_time(clock, self.retention, t1)?;
        Ok(output.range(t1, t2))
    }

    /// One page of the keys held, in key order (see [`KeyPage`]).
    pub fn key_page(&self, query: &KeyQuery) -> KeyPage {
        key_page(&self.keys, |(c, _)| c, query)
    }

    /// The copy's own statistics. Events are not counted: a copy sees the node's deltas, not
    /// the events behind them.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            keys: self.keys.len(),
            ..Stats::default()
        };
        for (c, output) in self.keys.values() {
            s.last_time = s.last_time.max(Some(c.max_time));
            s.history_dropped += usize::from(c.dropped_history());
            s.change_points += output.points().len();
            s.bytes += output.heap_bytes() + std::mem::size_of::<(KeyClock, Timeline)>();
        }
        s
    }
}
