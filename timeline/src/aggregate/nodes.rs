//! The aggregate as nodes of a distributed job (SPEC §6, "Distributed"): one
//! [`PartialAggregateNode`] per shard aggregates the shard's keys from the deltas of their result
//! and group column, and one [`MergeAggregateNode`] combines the shards' partials. No node holds
//! every key: the merge holds one step function of partials per group and shard.

use super::aggregator::{
    rows_at, Aggregates, Aggregator, GroupDelta, GroupKey, GroupRow, Horizons,
};
use super::partial::{collapse_points, merge_points_from, segments, AggSegment, Partial};
use super::{AggFn, Aggregation, Query};
use crate::engine::Stats;
use crate::keys::{collapse_point, horizon, KeyMap};
use crate::limits::{clip, EXCERPT_CHARS, MAX_PACKED_BYTES};
use crate::timeline::Timeline;
use crate::value::{State, Value, ValueKey};
use crate::worker::KeyDelta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a partial node tells the merge after a change: each changed group's step function from
/// the time it changed, and the shard's retention horizon (0 without retention).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartialBatch {
    pub horizon: u64,
    pub groups: Vec<GroupDelta>,
}

#[derive(Serialize, Deserialize)]
struct WireBatch {
    horizon: u64,
    groups: Vec<WireGroup>,
}

#[derive(Serialize, Deserialize)]
struct WireGroup {
    group: Option<Value>,
    from: u64,
    points: Vec<(u64, Partial)>,
}

impl PartialBatch {
    /// The batch as one string (JSON), as the nodes send it to each other.
    pub fn encode(&self) -> String {
        let wire = WireBatch {
            horizon: self.horizon,
            groups: self
                .groups
                .iter()
                .map(|g| WireGroup {
                    group: g.group.value(),
                    from: g.from,
                    points: g.points.clone(),
                })
                .collect(),
        };
        serde_json::to_string(&wire).expect("partials serialize")
    }

    /// Reads a batch that [`encode`](Self::encode) wrote, refusing anything else: past the size
    /// limit, malformed, points out of order or before their `from`, non-finite numbers.
    pub fn decode(text: &str) -> Result<PartialBatch, String> {
        if text.len() > MAX_PACKED_BYTES {
            return Err(format!(
                "the partial aggregates are {} bytes; the limit is {MAX_PACKED_BYTES}",
                text.len()
            ));
        }
        let wire: WireBatch = serde_json::from_str(text).map_err(|e| {
            format!(
                "bad partial aggregates ({e}): {}",
                clip(text, EXCERPT_CHARS)
            )
        })?;
        let mut groups = Vec::with_capacity(wire.groups.len());
        for g in wire.groups {
            let ordered = g.points.windows(2).all(|w| w[0].0 < w[1].0)
                && g.points.first().is_none_or(|(t, _)| *t >= g.from);
            if !ordered {
                return Err("bad partial aggregates: points out of order".into());
            }
            if g.points.iter().any(|(_, p)| !p.is_well_formed()) {
                return Err("bad partial aggregates: a sum is not finite".into());
            }
            groups.push(GroupDelta {
                group: super::group_of(g.group.as_ref()),
                from: g.from,
                points: g.points,
            });
        }
        Ok(PartialBatch {
            horizon: wire.horizon,
            groups,
        })
    }
}

/// One shard's keys, aggregated: input 0 is the query's result for each key, input 1 (when the
/// aggregate groups) the group column's `latest_event_to_state`.
#[derive(Clone, Debug)]
pub struct PartialAggregateNode {
    grouped: bool,
    result_initial: State,
    retention: Option<u64>,
    keys: KeyMap<Option<ValueKey>, PartialKey>,
    aggregator: Aggregator,
    horizons: Horizons,
}

#[derive(Clone, Debug)]
struct PartialKey {
    key: Option<Value>,
    origin: Option<u64>,
    max_time: u64,
    collapsed_before: u64,
    result: Timeline,
    group: Timeline,
}

impl PartialAggregateNode {
    /// The partial node of `query`, which must aggregate.
    pub fn new(query: &Query, retention: Option<u64>) -> Result<PartialAggregateNode, String> {
        let aggregation = aggregation_of(query)?;
        Ok(PartialAggregateNode {
            grouped: aggregation.group_by.is_some(),
            result_initial: query.op.initial_state(),
            retention,
            keys: KeyMap::default(),
            aggregator: Aggregator::for_functions(&aggregation.functions),
            horizons: Horizons::default(),
        })
    }

    /// The number of inputs: the result, and the group column if it groups.
    pub fn arity(&self) -> usize {
        1 + self.grouped as usize
    }

    /// Applies the deltas of input `input` (each key's changed suffix) and returns the groups
    /// whose partials changed.
    pub fn apply(&mut self, input: usize, deltas: &[KeyDelta]) -> Result<PartialBatch, String> {
        if input >= self.arity() {
            return Err(format!(
                "input {input} does not exist: this node has {} input(s)",
                self.arity()
            ));
        }
        for d in deltas {
            let id = d.key.as_ref().map(ValueKey::from);
            let k = self.keys.entry(id.clone()).or_insert_with(|| PartialKey {
                key: d.key.clone(),
                origin: None,
                max_time: 0,
                collapsed_before: 0,
                result: Timeline::new(self.result_initial.clone()),
                group: Timeline::new(State::Unknown),
            });
            let mut from: Option<u64> = None;
            if k.origin.is_none_or(|o| d.origin < o) {
                k.origin = Some(d.origin);
                from = Some(d.origin);
            }
            k.max_time = k.max_time.max(d.max_time);
            if let Some(change) = &d.change {
                let tl = if input == 0 {
                    &mut k.result
                } else {
                    &mut k.group
                };
                tl.apply(change);
                from = Some(from.map_or(change.from, |f| f.min(change.from)));
            }
            if let Some(from) = from {
                let group = self.grouped.then_some(&k.group);
                let origin = k.origin.unwrap_or(from);
                self.aggregator
                    .update(k.key.clone(), from, origin, &k.result, group);
            }
            if let Some(h) = self.retention {
                if let Some(keep) = collapse_point(k.max_time, h, k.collapsed_before) {
                    k.result.collapse_before(keep);
                    k.group.collapse_before(keep);
                    k.collapsed_before = keep;
                }
                if let Some(oldest) = self.horizons.update(id, horizon(k.max_time, h)) {
                    self.aggregator.collapse_before(oldest);
                }
            }
        }
        Ok(PartialBatch {
            horizon: self.horizons.collapsed_before(),
            groups: self.aggregator.refresh_changes(),
        })
    }

    /// Every group's whole step function, for a merge that starts reading this node.
    pub fn snapshot(&mut self) -> PartialBatch {
        PartialBatch {
            horizon: self.horizons.collapsed_before(),
            groups: self.aggregator.snapshot(),
        }
    }

    /// This shard's aggregates.
    pub fn aggregates(&mut self, functions: Vec<AggFn>) -> Aggregates {
        self.aggregator.aggregates(functions)
    }

    pub fn stats(&self) -> Stats {
        let (points, _, bytes) = self.aggregator.stats();
        let inputs: usize = self
            .keys
            .values()
            .map(|k| {
                k.result.heap_bytes() + k.group.heap_bytes() + std::mem::size_of::<PartialKey>()
            })
            .sum();
        Stats {
            keys: self.keys.len(),
            change_points: points,
            bytes: bytes + inputs,
            mismatches: self.aggregator.mismatches(),
            ..Stats::default()
        }
    }
}

/// Which groups an answer covers.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupSelector {
    All,
    One(GroupKey),
}

impl GroupSelector {
    fn takes(&self, g: &GroupKey) -> bool {
        match self {
            GroupSelector::All => true,
            GroupSelector::One(x) => x == g,
        }
    }
}

/// The shards' partials, merged: the job's aggregate.
#[derive(Clone, Debug)]
pub struct MergeAggregateNode {
    functions: Vec<AggFn>,
    /// Per shard, its groups' step functions as last sent.
    shards: Vec<BTreeMap<GroupKey, Vec<(u64, Partial)>>>,
    horizons: Vec<u64>,
    merged: BTreeMap<GroupKey, Vec<(u64, Partial)>>,
}

impl MergeAggregateNode {
    /// The merge node of `query` (which must aggregate) over `shards` partial nodes.
    pub fn new(query: &Query, shards: usize) -> Result<MergeAggregateNode, String> {
        let aggregation = aggregation_of(query)?;
        Ok(MergeAggregateNode {
            functions: aggregation.functions.clone(),
            shards: vec![BTreeMap::new(); shards],
            horizons: vec![0; shards],
            merged: BTreeMap::new(),
        })
    }

    /// The number of inputs: one per shard.
    pub fn arity(&self) -> usize {
        self.shards.len()
    }

    /// A node merging the same functions over as many shards, holding nothing yet.
    pub fn emptied(&self) -> MergeAggregateNode {
        MergeAggregateNode {
            functions: self.functions.clone(),
            shards: vec![BTreeMap::new(); self.arity()],
            horizons: vec![0; self.arity()],
            merged: BTreeMap::new(),
        }
    }

    /// Applies shard `input`'s changed groups.
    pub fn apply(&mut self, input: usize, batch: &PartialBatch) -> Result<(), String> {
        if input >= self.arity() {
            return Err(format!(
                "input {input} does not exist: this node merges {} shard(s)",
                self.arity()
            ));
        }
        let shard = &mut self.shards[input];
        for d in &batch.groups {
            let points = shard.entry(d.group.clone()).or_default();
            points.truncate(points.partition_point(|(t, _)| *t < d.from));
            points.extend(d.points.iter().cloned());
        }
        if batch.horizon > self.horizons[input] {
            self.horizons[input] = batch.horizon;
            for points in shard.values_mut() {
                collapse_points(points, batch.horizon);
            }
        }
        for d in &batch.groups {
            let inputs: Vec<&[(u64, Partial)]> = self
                .shards
                .iter()
                .filter_map(|s| s.get(&d.group).map(Vec::as_slice))
                .collect();
            let merged = self.merged.entry(d.group.clone()).or_default();
            merge_points_from(&inputs, d.from, merged);
        }
        let h = self.horizon();
        if h > 0 {
            for points in self.merged.values_mut() {
                collapse_points(points, h);
            }
        }
        Ok(())
    }

    /// Shard `input`'s whole state as this node holds it, for another merge node (a reader's
    /// next generation) to start from: applying every shard's to a new node gives this one.
    pub fn input_snapshot(&self, input: usize) -> Option<PartialBatch> {
        let shard = self.shards.get(input)?;
        Some(PartialBatch {
            horizon: self.horizons[input],
            groups: shard
                .iter()
                .map(|(group, points)| GroupDelta {
                    group: group.clone(),
                    from: 0,
                    points: points.clone(),
                })
                .collect(),
        })
    }

    /// The whole state as one string: every shard's [`input_snapshot`](Self::input_snapshot),
    /// encoded, a line each (an encoded batch holds no newline).
    pub fn encode_state(&self) -> String {
        (0..self.arity())
            .filter_map(|i| self.input_snapshot(i))
            .map(|batch| batch.encode())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Applies a state [`encode_state`](Self::encode_state) wrote, of a node merging as many
    /// shards: to a new node, it gives the node that wrote it.
    pub fn apply_state(&mut self, text: &str) -> Result<(), String> {
        if text.len() > MAX_PACKED_BYTES {
            return Err(format!(
                "the merge state is {} bytes; the limit is {MAX_PACKED_BYTES}",
                text.len()
            ));
        }
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() != self.arity() {
            return Err(format!(
                "the merge state holds {} shard(s); this node merges {}",
                lines.len(),
                self.arity()
            ));
        }
        let batches = lines
            .iter()
            .map(|line| PartialBatch::decode(line))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, batch) in batches.iter().enumerate() {
            self.apply(i, batch)?;
        }
        Ok(())
    }

    /// The earliest time every shard can still answer for.
    pub fn horizon(&self) -> u64 {
        self.horizons.iter().copied().max().unwrap_or(0)
    }

    fn check(&self, t: u64) -> Result<(), String> {
        let h = self.horizon();
        if t < h {
            return Err(format!(
                "time {t} is before the retention horizon {h}: history before it has been collapsed"
            ));
        }
        Ok(())
    }

    /// The selected groups that have a member at `t`, with every function's value.
    pub fn at(&self, groups: &GroupSelector, t: u64) -> Result<Vec<GroupRow>, String> {
        self.check(t)?;
        let groups = self.merged.iter().filter(|(g, _)| groups.takes(g));
        Ok(rows_at(groups, &self.functions, t))
    }

    /// The selected groups' timelines of every function over `[t1, t2)`.
    pub fn range(
        &self,
        groups: &GroupSelector,
        t1: u64,
        t2: u64,
    ) -> Result<Vec<(GroupKey, AggFn, Vec<AggSegment>)>, String> {
        self.check(t1)?;
        let mut out = Vec::new();
        for (g, points) in self.groups().filter(|(g, _)| groups.takes(g)) {
            for &f in &self.functions {
                out.push((g.clone(), f, segments(points, f, t1, Some(t2))));
            }
        }
        Ok(out)
    }

    /// The merged aggregates.
    pub fn aggregates(&self) -> Aggregates {
        Aggregates {
            functions: self.functions.clone(),
            groups: self.groups().map(|(g, p)| (g.clone(), p.clone())).collect(),
        }
    }

    /// The groups that ever had a member (a key can pass through a group only transiently,
    /// while the deltas of its result and of its group column are on their way).
    fn groups(&self) -> impl Iterator<Item = (&GroupKey, &Vec<(u64, Partial)>)> {
        self.merged.iter().filter(|(_, points)| !points.is_empty())
    }

    pub fn stats(&self) -> Stats {
        let points: usize = self.merged.values().map(Vec::len).sum::<usize>()
            + self
                .shards
                .iter()
                .flat_map(|s| s.values())
                .map(Vec::len)
                .sum::<usize>();
        Stats {
            keys: self.merged.len(),
            change_points: points,
            bytes: points * std::mem::size_of::<(u64, Partial)>(),
            ..Stats::default()
        }
    }
}

fn aggregation_of(query: &Query) -> Result<&Aggregation, String> {
    query.validate().map_err(|e| e.to_string())?;
    query
        .aggregate
        .as_ref()
        .ok_or_else(|| format!("`{query}` does not aggregate"))
}
