//! The engine: a planned query evaluated incrementally for every partition key.

use crate::event::Event;
pub use crate::event::IngestError;
use crate::keys::{collapse_point, horizon, index_batch, IndexedBatch, KeyMap};
use crate::node::{DerivedKind, LeafRows, NodeSpec};
use crate::op::TimeLineOp;
use crate::plan::Plan;
use crate::pointwise::{self, Pointwise};
use crate::timeline::{Segment, Timeline};
use crate::value::{State, Value, ValueKey};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// How events are grouped and how long history is kept.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    /// The partition key column (`sessionId`, say); `None` puts all events under one key.
    pub key_column: Option<String>,
    /// The retention horizon `H`: per key, history older than `max event time - H` collapses into
    /// one change point, and older events and queries are refused.
    pub retention: Option<u64>,
}

/// A query evaluated over a stream of events, per key.
///
/// ```
/// use timeline::{Engine, EngineOptions, Event, State, parse_query};
///
/// let q = parse_query(r#"duration_where(latest_event_to_state(state) == "buffer")"#).unwrap();
/// let mut engine = Engine::new(&q, EngineOptions::default()).unwrap();
/// engine.ingest(&[
///     Event::new(10, [("state", "buffer".into())]),
///     Event::new(14, [("state", "play".into())]),
/// ]).unwrap();
/// assert_eq!(engine.value_at(None, 20).unwrap().instant_value(), Some(4.into()));
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    plan: Plan,
    specs: Vec<NodeSpec>,
    /// How each plan node is computed here.
    roles: Vec<Role>,
    /// Where each plan node is among a key's kept states; see [`Slots`].
    slots: Vec<Slots>,
    /// Type mismatches met by leaves' predicates and by comparisons, over all keys: one count
    /// per engine rather than one per key and node (8 bytes each).
    mismatches: u64,
    routes: LeafRoutes,
    /// Buffers lent to one key at a time while it is recomputed.
    work: Work,
    key_column: Option<Arc<str>>,
    retention: Option<u64>,
    /// Where each key's state is in `states`.
    index: KeyMap<Option<ValueKey>, usize>,
    /// Every key's state, in the order the keys first came.
    states: Vec<KeyState>,
    /// Per key of the batch being applied, what it changed: kept between batches for the
    /// room.
    marks: BatchMarks,
}

/// What a batch changed, per key of the batch (its position among the batch's keys, `b`).
#[derive(Clone, Debug, Default)]
struct BatchMarks {
    /// The key's position in [`Engine::states`].
    state: Vec<usize>,
    /// `n` entries per key, one per plan node: the earliest time from which the node must be
    /// recomputed (`None`: nothing changed below it).
    dirty: Vec<Option<u64>>,
    /// The key's new first event time, if the batch moved it.
    origin_moved: Vec<Option<u64>>,
    /// The time of the key's earliest event in the batch.
    earliest: Vec<u64>,
    /// The time of the key's latest event in the batch.
    latest: Vec<u64>,
    /// The last stretch of the batch (see [`STRETCH`]) that had an event of the key.
    stretch: Vec<usize>,
    /// The batch's events grouped by key (positions in the batch), when they are applied so.
    order: Vec<u32>,
}

/// Whether a batch is applied a key at a time: when its keys have fewer than this many events
/// each on average. Grouping costs two passes over the batch's key positions; a batch of a
/// few long runs of one key each is in that order already.
const GROUP_BELOW: usize = 64;

/// Fills `order` with the positions of the batch's events that `applies` keeps, grouped by key
/// (the keys in order of first appearance, each key's events in batch order: a counting sort of
/// `key_of`), if the batch has many keys for its events, but at least two events a key; returns
/// whether it did.
fn keys_grouped(
    key_of: &[u32],
    keys: usize,
    mut applies: impl FnMut(usize) -> bool,
    order: &mut Vec<u32>,
) -> bool {
    // With fewer than two events a key on average, grouping would gain nothing.
    if keys < 2 || key_of.len() >= keys * GROUP_BELOW || key_of.len() < keys * 2 {
        return false;
    }
    // Where each key's events start in `order`; `u32::MAX` marks an event left out.
    let mut next = vec![0u32; keys + 1];
    let mut kept = Vec::with_capacity(key_of.len());
    for (k, &b) in key_of.iter().enumerate() {
        if applies(k) {
            next[b as usize + 1] += 1;
            kept.push(b);
        } else {
            kept.push(u32::MAX);
        }
    }
    for b in 0..keys {
        next[b + 1] += next[b];
    }
    order.clear();
    order.resize(next[keys] as usize, 0);
    for (k, &b) in kept.iter().enumerate() {
        if b != u32::MAX {
            let at = &mut next[b as usize];
            order[*at as usize] = k as u32;
            *at += 1;
        }
    }
    true
}

/// How many events of a batch are applied to the leaves before the keys they changed are
/// recomputed: few enough that the rows written are still in the cache when the recomputation
/// reads them (a batch of 65 536 events over 500 keys writes about 1.5 MB of rows), many enough
/// that a key's recomputation covers several of its events. A whole batch of the CLI's and the
/// bench's 16 384 events: against 8 192, 5-9% fewer instructions an event (each key
/// recomputed half as often, its fixed cost shared by twice the events) and 6-11% less time
/// on the bench's 10M tier.
const STRETCH: usize = 16_384;

/// Where a plan node's state is among a key's: its rows in [`KeyState::rows`] (leaves), its
/// timeline in [`KeyState::outputs`] (all but [`Role::Inside`] and [`Role::Rebuilt`]). Slots
/// follow plan order, so a node's inputs come before it.
#[derive(Clone, Copy, Debug, Default)]
struct Slots {
    rows: Option<usize>,
    output: Option<usize>,
}

/// A key that a batch changed, as [`Engine::ingest_observing`] shows it.
pub struct Changed<'a> {
    pub key: Option<&'a Value>,
    /// The time of the key's earliest event in the batch: nothing changed before it.
    pub from: u64,
    /// The key's first event time.
    pub origin: u64,
    /// The key's latest event time.
    pub last_time: u64,
    /// The key's result timeline, history before retention's horizon still in it.
    pub result: &'a Timeline,
}

/// How the engine computes a plan node for each key.
#[derive(Clone, Debug)]
enum Role {
    /// A leaf or a derived operator with a timeline of its own, recomputed on its own.
    Node,
    /// The top of a tree of pointwise operators: keeps the timeline of the top only, and
    /// evaluates the tree in one pass (see [`crate::pointwise`]).
    Pointwise(Pointwise),
    /// A pointwise operator inside such a tree (it has one parent, itself pointwise): no
    /// timeline; it is computed from its inputs when asked for.
    Inside,
    /// A leaf read only by pointwise trees, whose value at any time follows from its rows near
    /// that time (`latest_event_to_state`, the windowed leaves): it keeps its rows but no
    /// timeline. Each time a tree reading it is evaluated from some time on, the leaf's
    /// timeline is built from its rows from that time on, read, and dropped.
    Rebuilt,
    /// A `duration_where` over a pointwise tree that only it reads (CIRR's, machine risk's):
    /// the tree keeps no timeline either ([`Role::Inside`]); it is evaluated into a buffer the
    /// engine lends, from the time the duration is recomputed from, and the duration reads it
    /// there. `duration_where` reads its input only from that time on.
    OverTree(Pointwise),
}

impl Role {
    /// The role of every node of `plan`.
    fn of(plan: &Plan, specs: &[NodeSpec]) -> Vec<Role> {
        let kinds = derived_kinds(specs);
        let fusable: Vec<bool> = (0..specs.len())
            .map(|i| Pointwise::fusable(plan, &kinds, i))
            .collect();
        // A tree's top read only by a `duration_where` is evaluated inside it too.
        let inside: Vec<bool> = (0..specs.len())
            .map(|i| match plan.nodes[i].parents[..] {
                [p] => {
                    fusable[i]
                        && (fusable[p] || matches!(kinds[p], Some(DerivedKind::DurationWhere)))
                }
                _ => false,
            })
            .collect();
        let over_tree = |i: usize| match plan.nodes[i].inputs[..] {
            [c] if matches!(kinds[i], Some(DerivedKind::DurationWhere)) => inside[c].then_some(c),
            _ => None,
        };
        let rebuilt = |i: usize| {
            let parents = &plan.nodes[i].parents;
            matches!(&specs[i], NodeSpec::Leaf(spec) if spec.is_local())
                && !parents.is_empty()
                && parents.iter().all(|&p| fusable[p])
        };
        (0..specs.len())
            .map(|i| match (inside[i], fusable[i]) {
                (true, _) => Role::Inside,
                (false, true) => Role::Pointwise(Pointwise::new(plan, &kinds, i, &|n| inside[n])),
                (false, false) if rebuilt(i) => Role::Rebuilt,
                (false, false) => match over_tree(i) {
                    Some(top) => Role::OverTree(Pointwise::new(plan, &kinds, top, &|n| inside[n])),
                    None => Role::Node,
                },
            })
            .collect()
    }
}

/// The operator of each derived node (`None` for a leaf).
fn derived_kinds(specs: &[NodeSpec]) -> Vec<Option<&DerivedKind>> {
    specs
        .iter()
        .map(|s| match s {
            NodeSpec::Derived(k) => Some(k),
            NodeSpec::Leaf(_) => None,
        })
        .collect()
}

/// A leaf (its plan node index) and the position of a column among the leaf's columns.
type LeafColumn = (usize, usize);

/// Which leaves an event goes to, by column: most events carry one or two columns that few
/// leaves read, so routing saves asking every leaf about every event.
#[derive(Clone, Debug, Default)]
struct LeafRoutes {
    /// Per column read by some leaf: the leaves (plan node indices) that read it, with the
    /// column's position among each leaf's columns.
    by_column: Vec<(Arc<str>, Vec<LeafColumn>)>,
    /// Leaves that see every event (a predicate that holds when its columns are missing).
    every_event: Vec<usize>,
    /// Column names seen in events, by identity, and their entry in `by_column`: decoders share
    /// one `Arc` per column name, so a pointer comparison usually replaces a string comparison.
    /// Holding the `Arc` keeps its address from being reused by another name.
    seen: Vec<(Arc<str>, Option<usize>)>,
    /// Per field position, the name last seen there and its entry: a decoder writes its
    /// columns in the same order in every event, so one pointer comparison usually routes a
    /// field (up to [`POSITIONS`] positions; fields beyond go through `seen`).
    at_position: Vec<(Arc<str>, Option<usize>)>,
}

/// How many field positions [`LeafRoutes::at_position`] remembers.
const POSITIONS: usize = 32;

impl LeafRoutes {
    fn new(specs: &[NodeSpec]) -> LeafRoutes {
        let mut routes = LeafRoutes::default();
        for (i, spec) in specs.iter().enumerate() {
            let NodeSpec::Leaf(leaf) = spec else { continue };
            if leaf.needs_every_event() {
                routes.every_event.push(i);
                continue;
            }
            for (j, c) in leaf.columns().iter().enumerate() {
                match routes.by_column.iter_mut().find(|(x, _)| x == c) {
                    Some((_, leaves)) => leaves.push((i, j)),
                    None => routes.by_column.push((c.clone(), vec![(i, j)])),
                }
            }
        }
        routes
    }

    /// The entry of `column` in `by_column`.
    fn route(&mut self, column: &Arc<str>) -> Option<usize> {
        if let Some((_, r)) = self.seen.iter().find(|(c, _)| Arc::ptr_eq(c, column)) {
            return *r;
        }
        let r = self.by_column.iter().position(|(c, _)| c == column);
        if self.seen.len() >= 64 {
            self.seen.clear(); // many distinct `Arc`s: the decoder does not share names
        }
        self.seen.push((column.clone(), r));
        r
    }

    /// The entry of `column`, the event's field at position `f`, in `by_column`.
    #[inline]
    fn route_at(&mut self, f: usize, column: &Arc<str>) -> Option<usize> {
        match self.at_position.get(f) {
            Some((c, r)) if Arc::ptr_eq(c, column) => *r,
            _ => {
                let r = self.route(column);
                if f < self.at_position.len() {
                    self.at_position[f] = (column.clone(), r);
                } else if f == self.at_position.len() && f < POSITIONS {
                    self.at_position.push((column.clone(), r));
                }
                r
            }
        }
    }

    /// The `(leaf, column index, field index)` triples of `event`, sorted by leaf, into `out`;
    /// leaves that see every event come with no field.
    fn leaves_for(&mut self, event: &Event, out: &mut Vec<(usize, usize, usize)>) {
        out.clear();
        for (f, (c, _)) in event.fields.iter().enumerate() {
            if let Some(r) = self.route_at(f, c) {
                out.extend(self.by_column[r].1.iter().map(|&(l, j)| (l, j, f)));
            }
        }
        // Usually already in order (one field read, or fields in the leaves' order).
        if !out.is_sorted_by_key(|&(l, _, f)| (l, f)) {
            out.sort_unstable_by_key(|&(l, _, f)| (l, f));
        }
    }
}

/// Everything the engine holds for one key.
#[derive(Clone, Debug)]
struct KeyState {
    key: Option<Value>,
    /// The time of the key's first event: timelines start here (`u64::MAX` until it arrives,
    /// a plain `u64` being 8 bytes less per key than an `Option`).
    origin: u64,
    max_time: u64,
    /// The rows of each leaf (see [`Slots`]). Boxed slices, since the counts never change: 8
    /// bytes smaller per key than a `Vec`. Rows and timelines lie apart, so that a leaf whose
    /// timeline is rebuilt when read holds its rows alone.
    rows: Box<[LeafRows]>,
    /// The timeline of each node that keeps one.
    outputs: Box<[Timeline]>,
    /// The time before which history has been collapsed (0: nothing collapsed).
    collapsed_before: u64,
}

/// A query could not be answered.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryError {
    /// No event has arrived for this key.
    UnknownKey(String),
    /// No node of the plan has this id.
    UnknownNode(String),
    /// The time is before the retention horizon: that history was collapsed.
    BeforeHorizon { time: u64, horizon: u64 },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::UnknownKey(k) => write!(f, "no events have arrived for key {k}"),
            QueryError::UnknownNode(n) => write!(f, "the plan has no node {n}"),
            QueryError::BeforeHorizon { time, horizon } => write!(
                f,
                "time {time} is before the retention horizon {horizon}: that history was collapsed"
            ),
        }
    }
}

impl std::error::Error for QueryError {}

/// Counters describing what the engine holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub keys: usize,
    pub change_points: usize,
    pub event_rows: usize,
    pub mismatches: u64,
    pub bytes: usize,
    /// Keys whose history from their first event to their horizon was dropped (retention):
    /// their values stand from the horizon on, but a duration started from them now would miss
    /// what came before it.
    pub history_dropped: usize,
    /// Events a leaf node worker has ingested (counted by [`LeafNode`](crate::worker::LeafNode);
    /// 0 for derived nodes and the in-process engine, which keep no count).
    pub events: u64,
    /// The latest event time over all keys (`None` before any event).
    pub last_time: Option<u64>,
}

impl Engine {
    /// Plans and validates `query`.
    pub fn new(
        query: &TimeLineOp,
        options: EngineOptions,
    ) -> Result<Engine, crate::op::ValidationError> {
        query.validate()?;
        let plan = Plan::new(query);
        let specs: Vec<NodeSpec> = plan.nodes.iter().map(|n| NodeSpec::new(&n.op)).collect();
        let roles = Role::of(&plan, &specs);
        let rebuilt = plan
            .nodes
            .iter()
            .zip(&roles)
            .map(|(n, role)| match role {
                Role::Rebuilt => Timeline::new(n.op.initial_state()),
                _ => Timeline::new(State::Unknown),
            })
            .collect();
        let (mut rows, mut outputs) = (0, 0);
        let next = |n: &mut usize| {
            *n += 1;
            Some(*n - 1)
        };
        let slots = specs
            .iter()
            .zip(&roles)
            .map(|(spec, role)| Slots {
                rows: match spec {
                    NodeSpec::Leaf(_) => next(&mut rows),
                    NodeSpec::Derived(_) => None,
                },
                output: match role {
                    Role::Inside | Role::Rebuilt => None,
                    _ => next(&mut outputs),
                },
            })
            .collect();
        Ok(Engine {
            roles,
            slots,
            mismatches: 0,
            work: Work {
                rebuilt,
                pointwise: pointwise::Scratch::default(),
                old: Vec::new(),
            },
            routes: LeafRoutes::new(&specs),
            plan,
            specs,
            key_column: options.key_column.map(|k| Arc::from(k.as_str())),
            retention: options.retention,
            index: KeyMap::default(),
            states: Vec::new(),
            marks: BatchMarks::default(),
        })
    }

    /// The plan: one node per distinct sub-expression.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Ingests a batch of events in any time order. The batch is checked first: if any event is
    /// refused (no key column, a non-finite number, older than the retention horizon), nothing is
    /// applied and the error names the event.
    pub fn ingest(&mut self, events: &[Event]) -> Result<(), IngestError> {
        self.ingest_observing(events, |_| {})
    }

    /// Lists the keys of `events` without taking the events: a key not seen before starts with
    /// none, so it answers its result's initial value at every time until events of its own
    /// arrive (as a key does before its first event). The batch is checked as
    /// [`ingest`](Self::ingest) checks it, and nothing changes if an event is refused. For a
    /// reader that knows no answer asked for depends on these events (an answer at an earlier
    /// time), but must still list every key. Until its first event, such a key's
    /// [`origin`](Self::origin) is `u64::MAX` and its [`last_time`](Self::last_time) 0.
    pub fn add_keys(&mut self, events: &[Event]) -> Result<(), IngestError> {
        for (id, key) in self.check(events)?.keys {
            self.state_of(id, key);
        }
        Ok(())
    }

    /// Checks a batch before anything of it is applied (see [`ingest`](Self::ingest)), and
    /// finds each event's key.
    fn check(&self, events: &[Event]) -> Result<IndexedBatch, IngestError> {
        index_batch(events, self.key_column.as_ref(), self.retention, |id| {
            self.index.get(id).map(|&k| self.states[k].max_time)
        })
    }

    /// The place of key `id`'s state in `states`, a state with no events made for a new key.
    fn state_of(&mut self, id: Option<ValueKey>, key: Option<Value>) -> usize {
        let (states, plan, slots) = (&mut self.states, &self.plan, &self.slots);
        *self.index.entry(id).or_insert_with(|| {
            states.push(KeyState::new(key, plan, slots));
            states.len() - 1
        })
    }

    /// As [`ingest`](Self::ingest), and shows `observe` each key the batch changed, after its
    /// events are applied and before retention collapses its history (what an aggregate over
    /// keys needs to see).
    pub fn ingest_observing(
        &mut self,
        events: &[Event],
        mut observe: impl FnMut(Changed<'_>),
    ) -> Result<(), IngestError> {
        let batch = self.check(events)?;
        let n = self.plan.nodes.len();
        let root = self.root_slot();
        self.marks.state.clear();
        for (id, key) in batch.keys {
            let k = self.state_of(id, key);
            self.marks.state.push(k);
        }
        let marks = &mut self.marks;
        let keys = marks.state.len();
        marks.dirty.clear();
        marks.dirty.resize(keys * n, None);
        marks.origin_moved.clear();
        marks.origin_moved.resize(keys, None);
        marks.earliest.clear();
        marks.earliest.resize(keys, u64::MAX);
        marks.latest.clear();
        marks.latest.resize(keys, 0);
        let layout = Layout {
            plan: &self.plan,
            specs: &self.specs,
            roles: &self.roles,
            slots: &self.slots,
        };
        // The events in the order they came, a stretch of the batch at a time: each event
        // applied to its key's leaves (the events read from one end of the stretch to the
        // other, the few keys active in it keeping their leaves' last rows in the cache), then
        // each key the stretch changed has its derived nodes recomputed once for all its events
        // there, while the rows just written are still in the cache.
        let mut leaves = Vec::new();
        let mut values = Vec::new();
        let mut stretch_keys: Vec<usize> = Vec::new();
        marks.stretch.clear();
        marks.stretch.resize(keys, usize::MAX);
        // A batch of many keys with few events each (a stream of many concurrent sessions in
        // time order) is applied a key at a time, each key's events in the order they came:
        // keys are independent, so the answers are the same, and each key's state is brought
        // into the cache and recomputed once for all its events in the batch rather than once
        // for each.
        //
        // An event that sets no column a leaf reads (a heartbeat, say) changes nothing but its
        // key's first and last times, set below: applied a key at a time, such events are left
        // out, so that they are not read again out of order. (Applied in the order they came,
        // they are next to the events applied, and asking the leaves costs less than skipping.)
        let routes = &mut self.routes;
        let idle_skipped = routes.every_event.is_empty();
        let applies = |k: usize| {
            !idle_skipped
                || events[k]
                    .fields
                    .iter()
                    .enumerate()
                    .any(|(f, (c, _))| routes.route_at(f, c).is_some())
        };
        let grouped = keys_grouped(&batch.key_of, keys, applies, &mut marks.order);
        let order: &[u32] = if grouped { &marks.order } else { &[] };
        let applied = if grouped { order.len() } else { events.len() };
        if grouped {
            // Each key's first and last time in the batch, in one pass over all its events in
            // the order they lie (those left out too); then each key's first and last event
            // times, and whether its first moved. (Applied in the order they came, each event
            // sets them as it is applied.)
            for (e, &b) in events.iter().zip(&batch.key_of) {
                let b = b as usize;
                marks.earliest[b] = marks.earliest[b].min(e.time);
                marks.latest[b] = marks.latest[b].max(e.time);
            }
            for b in 0..keys {
                if let Some(&ahead) = marks.state.get(b + 8) {
                    crate::event::prefetch(&self.states[ahead]);
                }
                let state = &mut self.states[marks.state[b]];
                let earliest = marks.earliest[b];
                if earliest < state.origin || state.origin == u64::MAX {
                    state.origin = earliest;
                    marks.origin_moved[b] = Some(earliest);
                }
                state.max_time = state.max_time.max(marks.latest[b]);
            }
        }
        // The batch position of the `i`th event applied.
        let position = |i: usize| -> Option<usize> {
            if grouped {
                order.get(i).map(|&k| k as usize)
            } else {
                (i < applied).then_some(i)
            }
        };
        let key_at = |i: usize| position(i).map(|k| batch.key_of[k]);
        for (stretch, start) in (0..applied).step_by(STRETCH).enumerate() {
            let end = (start + STRETCH).min(applied);
            stretch_keys.clear();
            for i in start..end {
                let k = position(i).expect("within the batch");
                let e = &events[k];
                // Applied a key at a time, the events are read out of order: the events a
                // few places ahead, then their fields, are asked for early.
                if grouped {
                    if let Some(ahead) = position(i + 16) {
                        crate::event::prefetch(&events[ahead]);
                    }
                    if let Some(ahead) = position(i + 8) {
                        crate::event::prefetch(events[ahead].fields.as_ptr());
                    }
                }
                // The keys of the events a few places ahead are far apart in memory: their
                // states, then their leaves' row vectors, then those vectors' last rows, are
                // asked for early, each step reading only what the step before brought in.
                if let Some(ahead) = key_at(i + 12) {
                    crate::event::prefetch(&self.states[marks.state[ahead as usize]]);
                }
                if let Some(ahead) = key_at(i + 8) {
                    crate::event::prefetch(self.states[marks.state[ahead as usize]].rows.as_ptr());
                }
                if let Some(ahead) = key_at(i + 4) {
                    for rows in &self.states[marks.state[ahead as usize]].rows {
                        rows.prefetch_tail();
                    }
                }
                let b = batch.key_of[k] as usize;
                if marks.stretch[b] != stretch {
                    marks.stretch[b] = stretch;
                    stretch_keys.push(b);
                }
                let state = &mut self.states[marks.state[b]];
                if !grouped {
                    marks.earliest[b] = marks.earliest[b].min(e.time);
                    if e.time < state.origin || state.origin == u64::MAX {
                        state.origin = e.time;
                        marks.origin_moved[b] = Some(e.time);
                    }
                    state.max_time = state.max_time.max(e.time);
                }
                let dirty = &mut marks.dirty[b * n..(b + 1) * n];
                let route = (&mut self.routes, &mut leaves, &mut values);
                state.take_event(layout, route, &mut self.mismatches, e, dirty);
            }
            for (i, &b) in stretch_keys.iter().enumerate() {
                // The next key's state is brought into the cache meanwhile.
                if let Some(&next) = stretch_keys.get(i + 1) {
                    self.states[marks.state[next]].prefetch();
                }
                let state = &mut self.states[marks.state[b]];
                let dirty = &mut marks.dirty[b * n..(b + 1) * n];
                let moved = marks.origin_moved[b];
                let mismatches = &mut self.mismatches;
                state.propagate(layout, &mut self.work, dirty, moved, mismatches);
                dirty.fill(None);
                marks.origin_moved[b] = None;
            }
        }
        // A key whose first event moved but none of whose events was applied (all of them
        // idle) has the nodes that start from its first event recomputed.
        for b in 0..keys {
            if let Some(moved) = marks.origin_moved[b].take() {
                let state = &mut self.states[marks.state[b]];
                let dirty = &mut marks.dirty[b * n..(b + 1) * n];
                state.propagate(
                    layout,
                    &mut self.work,
                    dirty,
                    Some(moved),
                    &mut self.mismatches,
                );
            }
        }
        // Each key the batch changed is shown once, with all of its events applied, and its
        // history collapsed only then.
        for b in 0..keys {
            let state = &mut self.states[marks.state[b]];
            observe(Changed {
                key: state.key.as_ref(),
                from: marks.earliest[b],
                origin: state.origin,
                last_time: state.max_time,
                result: &state.outputs[root],
            });
            if let Some(h) = self.retention {
                state.retain(layout, h);
            }
        }
        Ok(())
    }

    fn key_state(&self, key: Option<&Value>) -> Result<&KeyState, QueryError> {
        let id = match (&self.key_column, key) {
            (None, _) => None,
            (Some(_), Some(k)) => Some(ValueKey::from(k)),
            (Some(c), None) => {
                return Err(QueryError::UnknownKey(format!(
                    "(none given; the key column is \"{c}\")"
                )))
            }
        };
        self.index
            .get(&id)
            .map(|&k| &self.states[k])
            .ok_or_else(|| {
                QueryError::UnknownKey(
                    key.map_or_else(|| "(the only key)".to_string(), |k| k.to_string()),
                )
            })
    }

    /// How many keys the engine holds: [`keys`](Self::keys)' length, without listing them.
    pub fn key_count(&self) -> usize {
        self.states.len()
    }

    /// The keys that have events, or were listed by [`add_keys`](Self::add_keys), in sorted
    /// order (`None` without a key column).
    pub fn keys(&self) -> Vec<Option<&Value>> {
        let mut ids: Vec<_> = self.index.iter().collect();
        ids.sort_by(|a, b| a.0.cmp(b.0));
        ids.into_iter()
            .map(|(_, &k)| self.states[k].key.as_ref())
            .collect()
    }

    /// Every key's first event time and result timeline, in no particular order (a key listed
    /// by [`add_keys`](Self::add_keys) and without events yet has the first time `u64::MAX`):
    /// what a reader of all keys at once needs, without a lookup per key.
    pub fn results(&self) -> impl Iterator<Item = (Option<&Value>, u64, &Timeline)> + '_ {
        let root = self.root_slot();
        self.states
            .iter()
            .map(move |s| (s.key.as_ref(), s.origin, &s.outputs[root]))
    }

    /// The result timeline of `key`.
    pub fn timeline(&self, key: Option<&Value>) -> Result<&Timeline, QueryError> {
        let state = self.key_state(key)?;
        Ok(&state.outputs[self.root_slot()])
    }

    /// Where the result's timeline is among a key's.
    fn root_slot(&self) -> usize {
        self.slots[self.plan.root()]
            .output
            .expect("the result keeps its timeline")
    }

    /// The timeline of plan node `node` (an index into [`Plan::nodes`]) for `key`. A pointwise
    /// node evaluated inside a larger pointwise tree keeps no timeline, nor does a leaf read only
    /// by such trees: they are computed here, from the timelines they read or from the rows.
    pub fn node_timeline(
        &self,
        key: Option<&Value>,
        node: usize,
    ) -> Result<Cow<'_, Timeline>, QueryError> {
        let state = self.key_state(key)?;
        let slot = self
            .slots
            .get(node)
            .ok_or_else(|| QueryError::UnknownNode(format!("#{node}")))?;
        let op = &self.plan.nodes[node].op;
        let mut tl = match (&self.roles[node], &self.specs[node], slot.rows, slot.output) {
            (_, _, _, Some(o)) => return Ok(Cow::Borrowed(&state.outputs[o])),
            (Role::Rebuilt, NodeSpec::Leaf(spec), Some(r), None) => {
                let mut tl = Timeline::new(op.initial_state());
                state.rows[r].rebuild_into(spec, 0, &mut tl);
                tl
            }
            _ => {
                let kinds = derived_kinds(&self.specs);
                let inside = |n: usize| matches!(self.roles[n], Role::Inside);
                let tree = Pointwise::new(&self.plan, &kinds, node, &inside);
                let inputs = tree
                    .inputs
                    .iter()
                    .map(|&i| self.node_timeline(key, i))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut tl = Timeline::new(op.initial_state());
                let scratch = &mut pointwise::Scratch::default();
                let inputs: Vec<&Timeline> = inputs.iter().map(|tl| tl.as_ref()).collect();
                tree.recompute(&inputs, &mut tl, 0, &mut 0, scratch);
                tl
            }
        };
        if state.collapsed_before > 0 {
            tl.collapse_before(state.collapsed_before);
        }
        Ok(Cow::Owned(tl))
    }

    /// The result at time `t` for `key`.
    pub fn value_at(&self, key: Option<&Value>, t: u64) -> Result<State, QueryError> {
        self.check_horizon(key, t)?;
        Ok(self.timeline(key)?.value_at(t))
    }

    /// The result over `[t1, t2)` for `key`, as segments.
    pub fn range(&self, key: Option<&Value>, t1: u64, t2: u64) -> Result<Vec<Segment>, QueryError> {
        self.check_horizon(key, t1)?;
        Ok(self.timeline(key)?.range(t1, t2))
    }

    /// The time of `key`'s latest event (whatever the order they arrived in): where its
    /// timelines reach their final value so far.
    pub fn last_time(&self, key: Option<&Value>) -> Result<u64, QueryError> {
        Ok(self.key_state(key)?.max_time)
    }

    /// The time of `key`'s first event: where its timelines start (SPEC §2).
    pub fn origin(&self, key: Option<&Value>) -> Result<u64, QueryError> {
        Ok(self.key_state(key)?.origin)
    }

    /// The retention horizon of `key`: the earliest time that can still be queried or ingested.
    pub fn horizon(&self, key: Option<&Value>) -> Result<Option<u64>, QueryError> {
        let state = self.key_state(key)?;
        Ok(self.retention.map(|h| horizon(state.max_time, h)))
    }

    fn check_horizon(&self, key: Option<&Value>, t: u64) -> Result<(), QueryError> {
        match self.horizon(key)? {
            Some(horizon) if t < horizon => Err(QueryError::BeforeHorizon { time: t, horizon }),
            _ => Ok(()),
        }
    }

    /// What the engine holds, summed over keys and nodes.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            keys: self.states.len(),
            mismatches: self.mismatches,
            ..Stats::default()
        };
        // The leaves' specs in the order of their rows (a row's width is the number of columns).
        let leaf_specs: Vec<_> = self
            .specs
            .iter()
            .filter_map(|spec| match spec {
                NodeSpec::Leaf(spec) => Some(spec),
                NodeSpec::Derived(_) => None,
            })
            .collect();
        for k in &self.states {
            for (rows, spec) in k.rows.iter().zip(&leaf_specs) {
                s.event_rows += rows.count(spec);
                s.bytes += rows.heap_bytes() + std::mem::size_of::<LeafRows>();
            }
            for o in &k.outputs {
                s.change_points += o.points().len();
                s.bytes += o.heap_bytes() + std::mem::size_of::<Timeline>();
            }
            s.bytes += std::mem::size_of::<KeyState>();
            s.history_dropped += usize::from(k.origin < k.collapsed_before);
            if k.origin != u64::MAX {
                s.last_time = s.last_time.max(Some(k.max_time));
            }
        }
        s
    }
}

/// Builds, in the engine's buffers, the timelines of the [`Role::Rebuilt`] leaves that `tree`
/// reads, from `from` on (what the tree reads when it is evaluated from `from`).
fn build_rebuilt(
    tree: &Pointwise,
    layout: Layout,
    rows: &[LeafRows],
    rebuilt: &mut [Timeline],
    from: u64,
) {
    for &c in &tree.inputs {
        if let (Role::Rebuilt, NodeSpec::Leaf(spec), Some(r)) =
            (&layout.roles[c], &layout.specs[c], layout.slots[c].rows)
        {
            rows[r].rebuild_into(spec, from, &mut rebuilt[c]);
        }
    }
}

/// The timeline plan node `c` holds for a key, as the nodes reading it see it: a rebuilt leaf's
/// in the engine's buffer, any other in the key's outputs (`kept`, those below the reader).
fn input_timeline<'a>(
    layout: Layout,
    kept: &'a [Timeline],
    rebuilt: &'a [Timeline],
    c: usize,
) -> &'a Timeline {
    match layout.slots[c].output {
        Some(o) => &kept[o],
        None => &rebuilt[c],
    }
}

/// Evaluates `tree` into `out` from `from` on, reading the key's kept timelines below the
/// tree's node (`key`: the layout, the key's rows and those timelines) and building the
/// rebuilt leaves it reads in `rebuilt`.
fn evaluate_tree(
    tree: &Pointwise,
    (layout, rows, kept): (Layout, &[LeafRows], &[Timeline]),
    (rebuilt, scratch): (&mut [Timeline], &mut pointwise::Scratch),
    from: u64,
    out: &mut Timeline,
    mismatches: &mut u64,
) {
    build_rebuilt(tree, layout, rows, rebuilt, from);
    // On the stack for the trees queries have: no allocation for each in-order event.
    let inputs: SmallVec<[&Timeline; 8]> = tree
        .inputs
        .iter()
        .map(|&c| input_timeline(layout, kept, rebuilt, c))
        .collect();
    tree.recompute(&inputs, out, from, mismatches, scratch);
}

/// What [`KeyState::take_event`] borrows to route an event: the engine's routes, and buffers for
/// the leaves an event goes to and the values each leaf reads.
type Route<'a, 'e> = (
    &'a mut LeafRoutes,
    &'a mut Vec<(usize, usize, usize)>,
    &'a mut Vec<(usize, &'e Value)>,
);

/// Lowers `dirty` (the earliest time from which something must be recomputed) to `t`.
fn lower_to(dirty: &mut Option<u64>, t: u64) {
    *dirty = Some(dirty.map_or(t, |d| d.min(t)));
}

/// Buffers lent to one key at a time while it is recomputed, kept for their room.
#[derive(Clone, Debug)]
struct Work {
    /// Per plan node, the buffer a [`Role::Rebuilt`] leaf's timeline is built in when its
    /// readers are evaluated, or the top of a [`Role::OverTree`]'s tree is evaluated in (empty
    /// for other nodes).
    rebuilt: Vec<Timeline>,
    pointwise: pointwise::Scratch,
    /// A kept timeline's points from the time it is recomputed from, as they were.
    old: Vec<(u64, State)>,
}

/// What the engine knows of each plan node, the same for every key.
#[derive(Clone, Copy)]
struct Layout<'a> {
    plan: &'a Plan,
    specs: &'a [NodeSpec],
    roles: &'a [Role],
    /// See [`Engine::slots`].
    slots: &'a [Slots],
}

impl KeyState {
    /// Asks the CPU to load the cache lines that applying a batch in time order reads first:
    /// the node states and the last entries of their vectors.
    fn prefetch(&self) {
        for rows in &self.rows {
            rows.prefetch_tail();
        }
        for o in &self.outputs {
            crate::event::prefetch(o as *const Timeline);
            o.prefetch_tail();
        }
    }

    /// A key's state before its first event.
    fn new(key: Option<Value>, plan: &Plan, slots: &[Slots]) -> KeyState {
        KeyState {
            key,
            origin: u64::MAX,
            max_time: 0,
            rows: slots
                .iter()
                .filter(|s| s.rows.is_some())
                .map(|_| LeafRows::default())
                .collect(),
            outputs: plan
                .nodes
                .iter()
                .zip(slots)
                .filter(|(_, s)| s.output.is_some())
                .map(|(n, _)| Timeline::new(n.op.initial_state()))
                .collect(),
            collapsed_before: 0,
        }
    }

    /// Feeds event `e` to the leaves that read it; lowers the `dirty` time of each leaf it
    /// changed to the event's. `route` lends the routes and two buffers.
    fn take_event<'e>(
        &mut self,
        layout: Layout,
        (routes, leaves, values): Route<'_, 'e>,
        leaf_mismatches: &mut u64,
        e: &'e Event,
        dirty: &mut [Option<u64>],
    ) {
        let Layout { specs, slots, .. } = layout;
        routes.leaves_for(e, leaves);
        // Leaves are never inside a pointwise tree: each has a slot.
        for group in leaves.chunk_by(|a, b| a.0 == b.0) {
            let i = group[0].0;
            values.clear();
            values.extend(group.iter().map(|&(_, j, f)| (j, &e.fields[f].1)));
            if let (NodeSpec::Leaf(spec), Some(r)) = (&specs[i], slots[i].rows) {
                if let Some(t) = self.rows[r].insert_values(spec, e.time, values, leaf_mismatches) {
                    lower_to(&mut dirty[i], t);
                }
            }
        }
        for &i in &routes.every_event {
            if let (NodeSpec::Leaf(spec), Some(r)) = (&specs[i], slots[i].rows) {
                if let Some(t) = self.rows[r].insert(spec, e.time, &e.fields, leaf_mismatches) {
                    lower_to(&mut dirty[i], t);
                }
            }
        }
    }

    /// Recomputes every node whose inputs changed (`dirty`, filled by
    /// [`take_event`](Self::take_event)), in topological order, each from the earliest time at
    /// which something below it changed; `origin_moved`: the key's new first event time, if a
    /// batch moved it.
    fn propagate(
        &mut self,
        layout: Layout,
        work: &mut Work,
        dirty: &mut [Option<u64>],
        origin_moved: Option<u64>,
        mismatches: &mut u64,
    ) {
        let Layout {
            plan, specs, slots, ..
        } = layout;
        for i in 0..plan.nodes.len() {
            let mut from = dirty[i];
            if let (NodeSpec::Derived(kind), Some(o)) = (&specs[i], origin_moved) {
                if kind.uses_origin() {
                    lower_to(&mut from, o);
                }
            }
            let Some(from) = from else { continue };
            let changed = match slots[i].output {
                // Inside a pointwise tree, or a leaf only such trees read, rebuilt from its rows
                // when they need it: no timeline kept, the change passes on to the readers.
                None => Some(from),
                Some(slot) => self.recompute(layout, work, i, slot, from, mismatches),
            };
            if let Some(changed) = changed {
                for &p in &plan.nodes[i].parents {
                    lower_to(&mut dirty[p], changed);
                }
            }
        }
    }

    /// Recomputes plan node `i` (its timeline kept in output `slot`) from `from` on; returns
    /// the first time its output differs from before, if it does.
    fn recompute(
        &mut self,
        layout: Layout,
        work: &mut Work,
        i: usize,
        slot: usize,
        from: u64,
        mismatches: &mut u64,
    ) -> Option<u64> {
        let Layout {
            plan, specs, roles, ..
        } = layout;
        // The inputs of a node keep their timelines in slots below its own (or are rebuilt).
        let (below, rest) = self.outputs.split_at_mut(slot);
        let out = &mut rest[0];
        // The old suffix is moved out, not copied (no reference counts touched); the operators
        // read only what lies before `from`, which stays.
        let Work {
            rebuilt,
            pointwise,
            old,
        } = work;
        out.split_off_into(from, old);
        match (&specs[i], &roles[i]) {
            (NodeSpec::Leaf(spec), _) => {
                let r = layout.slots[i].rows.expect("a leaf keeps its rows");
                self.rows[r].recompute(spec, out, from);
            }
            (_, Role::Pointwise(tree)) => {
                let key = (layout, &self.rows[..], &*below);
                evaluate_tree(tree, key, (rebuilt, pointwise), from, out, mismatches);
            }
            (NodeSpec::Derived(kind), Role::OverTree(tree)) => {
                // The tree's top lends its (otherwise unused) buffer; it is exact from `from` on,
                // where the duration reads it.
                let top = plan.nodes[i].inputs[0];
                let mut buffer =
                    std::mem::replace(&mut rebuilt[top], Timeline::new(State::Unknown));
                buffer.truncate_from(0);
                let key = (layout, &self.rows[..], &*below);
                let work = (&mut rebuilt[..], &mut *pointwise);
                evaluate_tree(tree, key, work, from, &mut buffer, mismatches);
                kind.recompute(out, &[&buffer], from, Some(self.origin), mismatches);
                rebuilt[top] = buffer;
            }
            (NodeSpec::Derived(kind), _) => {
                // One input or two (`&&`, `||`): read in place, no vector built.
                let input = |c: &usize| input_timeline(layout, below, rebuilt, *c);
                let origin = Some(self.origin);
                match plan.nodes[i].inputs.as_slice() {
                    [a] => kind.recompute(out, &[input(a)], from, origin, mismatches),
                    [a, b] => kind.recompute(out, &[input(a), input(b)], from, origin, mismatches),
                    more => {
                        let inputs: Vec<&Timeline> = more.iter().map(input).collect();
                        kind.recompute(out, &inputs, from, origin, mismatches)
                    }
                }
            }
        }
        let difference = out.first_difference_from(old, from);
        old.clear();
        difference
    }

    /// Collapses history older than the retention horizon (see [`collapse_point`]); leaves also
    /// keep the events inside their window.
    fn retain(&mut self, layout: Layout, h: u64) {
        let Some(keep_from) = collapse_point(self.max_time, h, self.collapsed_before) else {
            return;
        };
        for (spec, slots) in layout.specs.iter().zip(layout.slots) {
            if let (NodeSpec::Leaf(spec), Some(r)) = (spec, slots.rows) {
                let output = slots.output.map(|o| &self.outputs[o]);
                self.rows[r].forget_before(spec, keep_from, output);
            }
        }
        for o in self.outputs.iter_mut() {
            o.collapse_before(keep_from);
        }
        self.collapsed_before = keep_from;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_query;

    /// Each node's role in `query`, by its text.
    fn roles(query: &str) -> Vec<(String, &'static str)> {
        let q = parse_query(query).unwrap();
        let engine = Engine::new(&q, EngineOptions::default()).unwrap();
        engine
            .plan
            .nodes
            .iter()
            .zip(&engine.roles)
            .map(|(n, r)| {
                let role = match r {
                    Role::Node => "node",
                    Role::Pointwise(_) => "tree",
                    Role::Inside => "inside",
                    Role::Rebuilt => "rebuilt",
                    Role::OverTree(_) => "over tree",
                };
                (n.op.to_string(), role)
            })
            .collect()
    }

    /// Which nodes keep a timeline: leaves that depend on their whole history or are read by
    /// a node that is not pointwise, durations, the top of each pointwise tree, a pointwise node
    /// read twice, and a comparison of a growing duration.
    #[test]
    fn pointwise_trees_keep_only_their_top() {
        let q = parse_query(
            "let seen = has_existed(a == 1); \
             duration_where(seen && !has_existed_within(b == 2, 5) && latest_event_to_state(c) == \"x\") \
             > 3 || (seen && latest_event_to_state(c) == \"x\")",
        )
        .unwrap();
        let kept = roles(&q.to_string());
        let role = |text: &str| {
            kept.iter()
                .find(|(t, _)| t == text)
                .unwrap_or_else(|| panic!("no node {text} in {kept:?}"))
                .1
        };
        assert_eq!(
            role("has_existed(a == 1)"),
            "node",
            "it depends on all history"
        );
        assert_eq!(role("has_existed_within(b == 2, 5)"), "rebuilt");
        assert_eq!(role("latest_event_to_state(c)"), "rebuilt");
        assert_eq!(role("!has_existed_within(b == 2, 5)"), "inside");
        // Read by two trees: kept, as the top of its own.
        assert_eq!(role("latest_event_to_state(c) == \"x\""), "tree");
        assert_eq!(
            role("duration_where(has_existed(a == 1) && !has_existed_within(b == 2, 5) && latest_event_to_state(c) == \"x\") > 3"),
            "node",
            "a comparison of a growing duration has crossing instants of its own"
        );
        assert_eq!(role(&q.to_string()), "tree");
        // A tree read only by a `duration_where` is evaluated inside it.
        assert_eq!(
            role("duration_where(has_existed(a == 1) && !has_existed_within(b == 2, 5) && latest_event_to_state(c) == \"x\")"),
            "over tree"
        );
        assert_eq!(
            role("has_existed(a == 1) && !has_existed_within(b == 2, 5) && latest_event_to_state(c) == \"x\""),
            "inside"
        );
        // Read by a duration: kept.
        let kept = roles(
            "duration_where(has_existed_within(b == 2, 5)) > 1 && count_within(b == 1, 5) > 1",
        );
        assert_eq!(kept[0], ("has_existed_within(b == 2, 5)".into(), "node"));
        assert!(
            kept.contains(&("count_within(b == 1, 5)".into(), "rebuilt")),
            "{kept:?}"
        );
    }
}
