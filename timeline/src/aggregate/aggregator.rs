//! The aggregate node: every key's result and group timelines in, a step function of
//! [`Partial`]s per group out, updated incrementally.
//!
//! Each key's contribution is a list of pieces: from a time on, the key is (or is not) a member
//! of a group with a value. Each group keeps the pieces of all its members as anonymous entries
//! `(time, contribution) -> net count` (entering `+1`, leaving `-1`), and a running
//! [`Accumulator`] that has applied every entry (the group at the end of time). A key's delta
//! from time `m` replaces the key's pieces from `m` on: O(changed pieces x log) entry updates,
//! whatever the size of the group. The group's step function is then refreshed from `m` on, when
//! it is next read: the accumulator is rolled back over the entries at or after `m` (each undone
//! with the opposite count) and rolled forward again, emitting a partial at each entry time. A
//! read after a delta costs the group's entries after `m` (its changed suffix), never a rescan
//! of its keys.

use super::partial::{
    collapse_points, merge_points, partial_at, segments, Accumulator, AggSegment, Contrib, Num,
    NumKey, Partial,
};
use super::AggFn;
use crate::keys::KeyMap;
use crate::timeline::{Reader, Timeline};
use crate::value::{cmp_int_float, State, Value, ValueKey};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A group: the value of the group-by column (`None`: unknown, or no `group_by`), ordered as
/// groups are printed: unknown first, then booleans, numbers (numerically), strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey(pub Option<ValueKey>);

impl GroupKey {
    /// The group as a value (`None`: printed `null`).
    pub fn value(&self) -> Option<Value> {
        self.0.as_ref().map(|k| match k {
            ValueKey::Bool(b) => Value::Bool(*b),
            ValueKey::Int(i) => Value::Int(*i),
            ValueKey::Float(bits) => Value::Float(f64::from_bits(*bits)),
            ValueKey::Str(s) => Value::Str(s.clone()),
        })
    }

    /// The group of a state of the group-by column.
    pub fn of(state: &State) -> GroupKey {
        GroupKey(state.instant_value().map(|v| ValueKey::from(&v)))
    }
}

impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &GroupKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupKey {
    fn cmp(&self, other: &GroupKey) -> Ordering {
        fn rank(k: &ValueKey) -> u8 {
            match k {
                ValueKey::Bool(_) => 0,
                ValueKey::Int(_) | ValueKey::Float(_) => 1,
                ValueKey::Str(_) => 2,
            }
        }
        match (&self.0, &other.0) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
                (ValueKey::Int(x), ValueKey::Float(y)) => {
                    cmp_int_float(*x, f64::from_bits(*y)).then(Ordering::Less)
                }
                (ValueKey::Float(x), ValueKey::Int(y)) => cmp_int_float(*y, f64::from_bits(*x))
                    .reverse()
                    .then(Ordering::Greater),
                (ValueKey::Float(x), ValueKey::Float(y)) => {
                    f64::from_bits(*x).total_cmp(&f64::from_bits(*y))
                }
                _ => a.cmp(b),
            }),
        }
    }
}

/// From `from` on, a key is a member of `group` contributing `contrib`, or (`None`) no member.
#[derive(Clone, Debug, PartialEq)]
struct Piece {
    from: u64,
    member: Option<(GroupKey, Contrib)>,
}

#[derive(Clone, Debug, Default)]
struct Group {
    /// `(time, contribution) -> net members entering` (never 0).
    entries: BTreeMap<(u64, Contrib), i64>,
    /// Every entry applied.
    end: Accumulator,
    /// The step function, valid before `dirty`.
    points: Vec<(u64, Partial)>,
    dirty: Option<u64>,
}

impl Group {
    fn new(no_extremes: bool) -> Group {
        let mut group = Group::default();
        group.end.no_extremes = no_extremes;
        group
    }

    fn add(&mut self, t: u64, c: Contrib, n: i64) {
        let entry = self.entries.entry((t, c)).or_insert(0);
        *entry += n;
        if *entry == 0 {
            self.entries.remove(&(t, c));
        }
        self.end.apply(&c, n);
        self.dirty = Some(self.dirty.map_or(t, |d| d.min(t)));
    }

    /// Brings `points` up to date (see the module docs).
    fn refresh(&mut self) {
        let Some(m) = self.dirty.take() else {
            return;
        };
        let suffix = (m, Contrib::FIRST)..;
        for ((_, c), n) in self.entries.range(suffix.clone()).rev() {
            self.end.apply(c, -n);
        }
        let keep = self.points.partition_point(|(t, _)| *t < m);
        self.points.truncate(keep);
        let mut entries = self.entries.range(suffix).peekable();
        while let Some(((t, c), n)) = entries.next() {
            self.end.apply(c, *n);
            if entries.peek().is_some_and(|((next, _), _)| next == t) {
                continue;
            }
            let p = self.end.snapshot();
            let changed = self
                .points
                .last()
                .map_or(p != Partial::default(), |(_, last)| *last != p);
            if changed {
                self.points.push((*t, p));
            }
        }
    }

    /// Forgets entries before `h` and folds the step function before `h` into one point at `h`.
    fn collapse_before(&mut self, h: u64) {
        self.refresh();
        self.entries = self.entries.split_off(&(h, Contrib::FIRST));
        collapse_points(&mut self.points, h);
    }
}

/// The aggregate node of a query: keys in, per-group step functions of partials out.
///
/// ```
/// use timeline::aggregate::{Aggregator, AggFn, GroupKey};
/// use timeline::{State, Timeline, Value};
///
/// // Two keys, each `true` from its first event on; the group column says "a" for both.
/// let mut agg = Aggregator::default();
/// let mut result = Timeline::new(State::bool(false));
/// result.push(0, State::bool(true));
/// let mut group = Timeline::new(State::Unknown);
/// group.push(0, State::Value("a".into()));
/// agg.update(Some(Value::Int(1)), 0, 0, &result, Some(&group));
/// agg.update(Some(Value::Int(2)), 0, 0, &result, Some(&group));
/// let all = agg.aggregates(vec![AggFn::Count, AggFn::Sum]);
/// let rows = all.at(5);
/// assert_eq!(rows[0].group, Some(Value::str("a")));
/// assert_eq!(rows[0].values[1].1.unwrap().as_f64(), 2.0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Aggregator {
    keys: KeyMap<Option<ValueKey>, Vec<Piece>>,
    groups: BTreeMap<GroupKey, Group>,
    /// See [`Aggregator::for_functions`].
    no_extremes: bool,
}

impl Aggregator {
    /// An aggregator for `functions`: without `min` and `max` it keeps no ordered multisets of
    /// the members' values (its partials then have no extremes, and `min`/`max` read from them
    /// are unknown), which saves two B-tree updates per change of a member.
    pub fn for_functions(functions: &[AggFn]) -> Aggregator {
        Aggregator {
            no_extremes: !functions
                .iter()
                .any(|f| matches!(f, AggFn::Min | AggFn::Max)),
            ..Aggregator::default()
        }
    }

    /// Takes `key`'s timelines from `from` on (where they may have changed): its result
    /// `result`, its group column `group` (`None`: no `group_by`) and its first event time
    /// `origin`. Costs the key's change points from `from` on.
    pub fn update(
        &mut self,
        key: Option<Value>,
        from: u64,
        origin: u64,
        result: &Timeline,
        group: Option<&Timeline>,
    ) {
        let new = pieces_from(from, origin, result, group);
        let no_extremes = self.no_extremes;
        let new_group = || Group::new(no_extremes);
        let pieces = self
            .keys
            .entry(key.as_ref().map(ValueKey::from))
            .or_default();
        let i = pieces.partition_point(|p| p.from < from);
        // Take the old pieces out from `from` on (the one covering `from` ends there)...
        for j in i.saturating_sub(1)..pieces.len() {
            if let Some((g, c)) = &pieces[j].member {
                let start = pieces[j].from.max(from);
                let end = pieces.get(j + 1).map(|p| p.from);
                let group = self.groups.entry(g.clone()).or_insert_with(new_group);
                group.add(start, *c, -1);
                if let Some(end) = end {
                    group.add(end, *c, 1);
                }
            }
        }
        // ...and put the new ones in.
        for (j, piece) in new.iter().enumerate() {
            if let Some((g, c)) = &piece.member {
                let group = self.groups.entry(g.clone()).or_insert_with(new_group);
                group.add(piece.from, *c, 1);
                if let Some(next) = new.get(j + 1) {
                    group.add(next.from, *c, -1);
                }
            }
        }
        pieces.truncate(i);
        for piece in new {
            if pieces.last().map(|p| &p.member) != Some(&piece.member) {
                pieces.push(piece);
            }
        }
    }

    /// Forgets history before `h`: every key's horizon is at or after it (the oldest live
    /// horizon), so nothing before it can change or be asked for again.
    pub fn collapse_before(&mut self, h: u64) {
        for pieces in self.keys.values_mut() {
            let i = pieces.partition_point(|p| p.from <= h);
            if i > 1 {
                pieces.drain(..i - 1);
            }
        }
        for g in self.groups.values_mut() {
            g.collapse_before(h);
        }
    }

    /// Brings every group's step function up to date, and returns what changed: each changed
    /// group's step function from the earliest time it may have changed.
    pub fn refresh_changes(&mut self) -> Vec<GroupDelta> {
        let mut out = Vec::new();
        for (g, group) in self.groups.iter_mut() {
            if let Some(from) = group.dirty {
                group.refresh();
                let i = group.points.partition_point(|(t, _)| *t < from);
                out.push(GroupDelta {
                    group: g.clone(),
                    from,
                    points: group.points[i..].to_vec(),
                });
            }
        }
        out
    }

    /// Every group's whole step function, for a reader that starts from nothing.
    pub fn snapshot(&mut self) -> Vec<GroupDelta> {
        self.refresh();
        self.groups
            .iter()
            .map(|(g, group)| GroupDelta {
                group: g.clone(),
                from: 0,
                points: group.points.clone(),
            })
            .collect()
    }

    /// Each group's partial at `t` (groups without one then left out), up to date.
    pub(crate) fn partials_at(&mut self, t: u64) -> BTreeMap<GroupKey, Partial> {
        self.refresh();
        self.groups
            .iter()
            .filter_map(|(g, group)| Some((g.clone(), partial_at(&group.points, t)?.clone())))
            .collect()
    }

    /// Brings every group's step function up to date.
    pub fn refresh(&mut self) {
        for g in self.groups.values_mut() {
            g.refresh();
        }
    }

    /// Every group's step function of partials, up to date (for `functions`).
    pub fn aggregates(&mut self, functions: Vec<AggFn>) -> Aggregates {
        self.refresh();
        Aggregates {
            functions,
            groups: self
                .groups
                .iter()
                .filter(|(_, g)| !g.points.is_empty())
                .map(|(k, g)| (k.clone(), g.points.clone()))
                .collect(),
        }
    }

    /// The stretches of keys' values that are not numbers (strings) while a key is a member:
    /// `count` counts them, `sum`, `avg`, `min` and `max` leave them out (type mismatches).
    pub fn mismatches(&self) -> u64 {
        self.keys
            .values()
            .flatten()
            .filter(|p| matches!(p.member, Some((_, Contrib::Other))))
            .count() as u64
    }

    /// The number of keys seen.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Change points, entries and heap bytes held.
    pub fn stats(&self) -> (usize, usize, usize) {
        let points: usize = self.groups.values().map(|g| g.points.len()).sum();
        let entries: usize = self.groups.values().map(|g| g.entries.len()).sum();
        let pieces: usize = self.keys.values().map(|p| p.capacity()).sum();
        let bytes = pieces * std::mem::size_of::<Piece>()
            + self.keys.len() * 48
            + entries * 56
            + self
                .groups
                .values()
                .map(|g| {
                    g.points.capacity() * std::mem::size_of::<(u64, Partial)>() + g.end.heap_bytes()
                })
                .sum::<usize>();
        (points, entries, bytes)
    }
}

/// A key's pieces from `from` on, canonical (no piece repeats the one before).
fn pieces_from(from: u64, origin: u64, result: &Timeline, group: Option<&Timeline>) -> Vec<Piece> {
    let after = |tl: &Timeline| {
        let points = tl.points();
        let i = points.partition_point(|(t, _)| *t <= from);
        points[i..].iter().map(|(t, _)| *t).collect::<Vec<u64>>()
    };
    let mut times = vec![from];
    times.extend(after(result));
    if let Some(g) = group {
        times.extend(after(g));
    }
    if origin > from {
        times.push(origin);
    }
    times.sort_unstable();
    times.dedup();
    let mut values = Reader::new(result, from);
    let mut groups = group.map(|g| Reader::new(g, from));
    let mut out: Vec<Piece> = Vec::with_capacity(times.len());
    for t in times {
        let (state, held) = values.state_at(t);
        let contrib = contribution(state, t - held);
        let group = groups.as_mut().map_or(GroupKey(None), |g| {
            let (s, _) = g.state_at(t);
            GroupKey::of(s)
        });
        let member = (t >= origin).then_some((group, contrib));
        if out.last().map(|p| &p.member) != Some(&member) {
            out.push(Piece { from: t, member });
        }
    }
    out
}

/// Each group's partial at instant `t` alone, of the keys given as (first event time, result,
/// group column): what [`Aggregator`] would hold at `t` for the same keys, without the history
/// before or after it. Costs a point lookup per key.
pub(crate) fn partials_of_keys_at<'a>(
    keys: impl Iterator<Item = (u64, &'a Timeline, Option<&'a Timeline>)>,
    t: u64,
) -> BTreeMap<GroupKey, Partial> {
    let mut groups: BTreeMap<GroupKey, Accumulator> = BTreeMap::new();
    for (origin, result, group) in keys {
        if t < origin {
            continue;
        }
        let group = group.map_or(GroupKey(None), |g| {
            GroupKey::of(Reader::new(g, t).state_at(t).0)
        });
        let (state, held) = Reader::new(result, t).state_at(t);
        groups
            .entry(group)
            .or_default()
            .apply(&contribution(state, t - held), 1);
    }
    groups
        .into_iter()
        .map(|(g, acc)| (g, acc.snapshot()))
        .collect()
}

/// What a member whose value is `state` (from change point `since` on) contributes.
fn contribution(state: &State, since: u64) -> Contrib {
    match state {
        State::Unknown => Contrib::Unknown,
        State::Value(Value::Bool(b)) => Contrib::Int(*b as i64),
        State::Value(Value::Int(i)) => Contrib::Int(*i),
        State::Value(Value::Float(f)) => Contrib::Float(NumKey(Num::Float(*f))),
        State::Value(Value::Str(_)) => Contrib::Other,
        State::Duration(v) => Contrib::Int(*v),
        State::Growing(v) => Contrib::Grow(*v as i128 - since as i128),
    }
}

/// What changed in one group's step function: from `from` on, it follows `points`.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDelta {
    pub group: GroupKey,
    pub from: u64,
    pub points: Vec<(u64, Partial)>,
}

/// Each key's retention horizon, and the oldest of them: the aggregate can forget what is
/// older, since no key can change or be asked about it any more.
#[derive(Clone, Debug, Default)]
pub struct Horizons {
    of_key: KeyMap<Option<ValueKey>, u64>,
    counts: BTreeMap<u64, usize>,
    collapsed_before: u64,
}

impl Horizons {
    /// Records `key`'s horizon; returns the oldest horizon of all keys if it moved on (the time
    /// before which the aggregate collapses).
    pub fn update(&mut self, key: Option<ValueKey>, horizon: u64) -> Option<u64> {
        if let Some(old) = self.of_key.insert(key, horizon) {
            if let Some(n) = self.counts.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&old);
                }
            }
        }
        *self.counts.entry(horizon).or_insert(0) += 1;
        let oldest = *self.counts.first_key_value()?.0;
        (oldest > self.collapsed_before).then(|| {
            self.collapsed_before = oldest;
            oldest
        })
    }

    /// The time before which history has been collapsed.
    pub fn collapsed_before(&self) -> u64 {
        self.collapsed_before
    }
}

/// Every group's aggregate, as step functions of partials: what the CLI prints from, and what
/// threads and shards merge.
#[derive(Clone, Debug, Default)]
pub struct Aggregates {
    pub functions: Vec<AggFn>,
    pub groups: BTreeMap<GroupKey, Vec<(u64, Partial)>>,
}

/// The rows at `t` of the groups that have a member then, with every function's value.
pub(crate) fn rows_at<'a>(
    groups: impl Iterator<Item = (&'a GroupKey, &'a Vec<(u64, Partial)>)>,
    functions: &[AggFn],
    t: u64,
) -> Vec<GroupRow> {
    groups
        .filter_map(|(g, points)| {
            let p = partial_at(points, t).filter(|p| p.members > 0)?;
            Some(GroupRow {
                group: g.value(),
                at: t,
                members: p.members,
                values: functions.iter().map(|&f| (f, p.eval(f, t).0)).collect(),
            })
        })
        .collect()
}

/// One group's functions at an instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupRow {
    pub group: Option<Value>,
    pub at: u64,
    /// The group's members at `at`: keys in it whose result has started. Not in the answers
    /// the CLI writes, which hold what the query asks.
    #[serde(skip)]
    pub members: u64,
    /// Each requested function and its value (`None`: unknown).
    pub values: Vec<(AggFn, Option<Num>)>,
}

impl Aggregates {
    /// The groups that have at least one member at `t`, in order, with every function's value.
    pub fn at(&self, t: u64) -> Vec<GroupRow> {
        rows_at(self.groups.iter(), &self.functions, t)
    }

    /// Every group's timeline of `f` over `[t1, t2)` (`t2: None`: on), in canonical form.
    pub fn segments(
        &self,
        f: AggFn,
        t1: u64,
        t2: Option<u64>,
    ) -> Vec<(&GroupKey, Vec<AggSegment>)> {
        self.groups
            .iter()
            .map(|(g, points)| (g, segments(points, f, t1, t2)))
            .collect()
    }

    /// The aggregates of the union of disjoint sets of keys.
    pub fn merge(parts: Vec<Aggregates>) -> Aggregates {
        let functions = parts
            .first()
            .map(|p| p.functions.clone())
            .unwrap_or_default();
        let mut by_group: BTreeMap<GroupKey, Vec<&[(u64, Partial)]>> = BTreeMap::new();
        for part in &parts {
            for (g, points) in &part.groups {
                by_group.entry(g.clone()).or_default().push(points);
            }
        }
        Aggregates {
            functions,
            groups: by_group
                .into_iter()
                .map(|(g, inputs)| (g, merge_points(&inputs)))
                .collect(),
        }
    }

    /// The earliest time at which anything is known (the first change of any group).
    pub fn first_time(&self) -> Option<u64> {
        self.groups
            .values()
            .filter_map(|p| p.first().map(|(t, _)| *t))
            .min()
    }
}
