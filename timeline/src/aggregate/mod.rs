//! Aggregation across keys (SPEC §6): `Q | aggregate(group_by(col), count, sum, avg, min, max)`.
//!
//! `Q` is evaluated per key as usual; the aggregate combines the keys' results at every instant,
//! per group (the value of `latest_event_to_state(col)` for each key at that instant), into one
//! timeline per group and function.
//!
//! ```
//! use timeline::aggregate::{AggFn, Query};
//! use timeline::{Event, EngineOptions};
//!
//! let q: Query = r#"latest_event_to_state(state) == "buffer" | aggregate(group_by(cdn), sum)"#
//!     .parse().unwrap();
//! let mut engine = timeline::aggregate::AggregateEngine::new(&q, EngineOptions {
//!     key_column: Some("session".into()),
//!     retention: None,
//! }).unwrap();
//! engine.ingest(&[
//!     Event::new(1, [("session", 1.into()), ("cdn", "CDN1".into()), ("state", "buffer".into())]),
//!     Event::new(2, [("session", 2.into()), ("cdn", "CDN1".into()), ("state", "buffer".into())]),
//!     Event::new(4, [("session", 1.into()), ("state", "play".into())]),
//! ]).unwrap();
//! let rows = engine.aggregates().at(3);
//! assert_eq!(rows[0].values, vec![(AggFn::Sum, Some(timeline::aggregate::Num::Int(2)))]);
//! ```

mod aggregator;
mod exact;
mod nodes;
mod partial;

pub use aggregator::{Aggregates, Aggregator, GroupDelta, GroupKey, GroupRow, Horizons};
pub use exact::ExactSum;
pub use nodes::{GroupSelector, MergeAggregateNode, PartialAggregateNode, PartialBatch};
pub use partial::{
    merge_points, merge_points_from, partial_at, segments, AggSegment, Extreme, Num, Partial,
};

use crate::engine::{Engine, EngineOptions, QueryError};
use crate::event::Event;
use crate::event::IngestError;
use crate::op::{tl_latest_event_to_state, Column, TimeLineOp, ValidationError};
use crate::timeline::Timeline;
use crate::value::{State, Value, ValueKey};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggFn {
    /// The number of members with a known value.
    Count,
    /// The sum of the members' numeric values (`true` is 1, `false` 0).
    Sum,
    /// `sum / count` of the numeric values, a float; unknown with none.
    Avg,
    /// The least numeric value; unknown with none.
    Min,
    /// The greatest numeric value; unknown with none.
    Max,
}

impl AggFn {
    pub const ALL: [AggFn; 5] = [AggFn::Count, AggFn::Sum, AggFn::Avg, AggFn::Min, AggFn::Max];

    /// The function's name in the DSL and in output.
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
        }
    }

    /// The function named `name` (exactly as [`name`](Self::name) prints it, any case).
    pub fn from_name(name: &str) -> Option<AggFn> {
        AggFn::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for AggFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The grouping of an aggregate: a column, or (`GroupBy::none()`) one group of all keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupBy(pub Option<Arc<str>>);

impl GroupBy {
    /// One group of all keys.
    pub fn none() -> GroupBy {
        GroupBy(None)
    }
}

/// `group_by(column)`, for [`TimeLineOp::aggregate`].
pub fn group_by(column: &str) -> GroupBy {
    GroupBy(Some(Arc::from(column)))
}

/// `| aggregate(group_by(col), f, …)`: how a query's per-key results combine across keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Aggregation {
    /// The group-by column; `None`: one group.
    pub group_by: Option<Arc<str>>,
    /// The functions, in the order asked for (at least one, none twice).
    pub functions: Vec<AggFn>,
}

impl Aggregation {
    /// The leaf that gives each key's group: `latest_event_to_state(col)`.
    pub fn group_leaf(&self) -> Option<TimeLineOp> {
        self.group_by
            .as_ref()
            .map(|c| tl_latest_event_to_state(Column(c.clone())))
    }
}

/// A query: a per-key timeline operator tree, optionally aggregated across keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Query {
    pub op: TimeLineOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregation>,
}

impl From<TimeLineOp> for Query {
    fn from(op: TimeLineOp) -> Query {
        Query {
            op,
            aggregate: None,
        }
    }
}

impl TimeLineOp {
    /// `self | aggregate(group, functions…)`.
    ///
    /// ```
    /// use timeline::op::*;
    /// use timeline::aggregate::{group_by, AggFn::*};
    /// let q = tl_duration_where(tl_latest_event_to_state(col("s")).equal_to("buffer"))
    ///     .aggregate(group_by("cdnChange"), [Sum, Avg]);
    /// assert_eq!(q.to_string(),
    ///     r#"duration_where(latest_event_to_state(s) == "buffer") | aggregate(group_by(cdnChange), sum, avg)"#);
    /// ```
    pub fn aggregate(self, group: GroupBy, functions: impl IntoIterator<Item = AggFn>) -> Query {
        Query {
            op: self,
            aggregate: Some(Aggregation {
                group_by: group.0,
                functions: functions.into_iter().collect(),
            }),
        }
    }
}

impl Query {
    /// The event columns the query reads (its leaves' columns and the group-by column), each
    /// once, in first-use order: what a columnar reader needs besides the key and the time.
    pub fn columns(&self) -> Vec<Arc<str>> {
        fn walk(op: &TimeLineOp, out: &mut Vec<Arc<str>>) {
            let mut add = |c: &Arc<str>| {
                if !out.iter().any(|x| x == c) {
                    out.push(c.clone());
                }
            };
            match op {
                TimeLineOp::LatestEventToState { column }
                | TimeLineOp::DistinctWithin { column, .. } => add(column),
                _ => {
                    if let Some(p) = op.predicate() {
                        for c in p.columns() {
                            add(&c);
                        }
                    }
                }
            }
            for child in op.children() {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.op, &mut out);
        if let Some(c) = self.aggregate.as_ref().and_then(|a| a.group_by.as_ref()) {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }

    /// Whether an event that sets none of [`columns`](Self::columns) can change an answer
    /// other than through its key's first and last event times: only when a predicate holds on
    /// an event without its columns (`has_existed(!(a == 1))`, say). When it cannot, a reader
    /// may keep of a key's such events only its earliest and latest (without a retention
    /// horizon, which refuses events by the latest one before them).
    ///
    /// ```
    /// use timeline::aggregate::Query;
    /// let q: Query = r#"has_existed(state == "play")"#.parse().unwrap();
    /// assert!(!q.reads_events_without_its_columns());
    /// let q: Query = r#"has_existed(!(state == "play"))"#.parse().unwrap();
    /// assert!(q.reads_events_without_its_columns());
    /// ```
    pub fn reads_events_without_its_columns(&self) -> bool {
        fn walk(op: &TimeLineOp) -> bool {
            op.predicate()
                .is_some_and(|p| p.eval(&|_| None) == Some(true))
                || op.children().into_iter().any(walk)
        }
        walk(&self.op)
    }

    /// Validates the per-key tree, then the aggregate: at least one function, none twice, a
    /// group-by column that is not empty.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.op.validate()?;
        let Some(a) = &self.aggregate else {
            return Ok(());
        };
        let fail = |message: String| {
            Err(ValidationError {
                operator: "aggregate".into(),
                message,
            })
        };
        if a.functions.is_empty() {
            return fail("name at least one function: count, sum, avg, min or max".into());
        }
        for (i, f) in a.functions.iter().enumerate() {
            if a.functions[..i].contains(f) {
                return fail(format!("`{f}` is asked for twice"));
            }
        }
        if a.group_by.as_deref() == Some("") {
            return fail("the group_by column has no name".into());
        }
        Ok(())
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("aggregate(")?;
        let mut first = true;
        if let Some(c) = &self.group_by {
            write!(f, "group_by({})", crate::op::ColumnName(c))?;
            first = false;
        }
        for func in &self.functions {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{func}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Query {
    /// The query in the text DSL; it parses back to an equal query.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        if let Some(a) = &self.aggregate {
            write!(f, " | {a}")?;
        }
        Ok(())
    }
}

/// An aggregate query evaluated over a stream of events: the per-key query (and the group
/// column) in [`Engine`]s, their changes fed to an [`Aggregator`] as they come
/// ([`new`](Self::new)), or combined only when read ([`lazy`](Self::lazy)).
#[derive(Clone, Debug)]
pub struct AggregateEngine {
    aggregation: Aggregation,
    result: Engine,
    group: Option<Engine>,
    /// Whether the aggregate is left to reads (the aggregator then stays empty).
    lazy: bool,
    aggregator: Aggregator,
    retention: Option<u64>,
    horizons: Horizons,
    last_time: Option<u64>,
}

impl AggregateEngine {
    /// How many keys the engine holds (those with events, and those listed without).
    pub fn key_count(&self) -> usize {
        self.result.key_count()
    }

    /// Validates `query` (which must aggregate) and sets up its engines.
    pub fn new(query: &Query, options: EngineOptions) -> Result<AggregateEngine, ValidationError> {
        query.validate()?;
        let aggregation = query.aggregate.clone().ok_or_else(|| ValidationError {
            operator: query.op.to_string(),
            message: "the query does not aggregate; use Engine".into(),
        })?;
        let group = match aggregation.group_leaf() {
            Some(leaf) => Some(Engine::new(&leaf, options.clone())?),
            None => None,
        };
        Ok(AggregateEngine {
            retention: options.retention,
            result: Engine::new(&query.op, options)?,
            group,
            aggregator: Aggregator::for_functions(&aggregation.functions),
            aggregation,
            lazy: false,
            horizons: Horizons::default(),
            last_time: None,
        })
    }

    /// An engine that keeps no aggregate while it ingests, for a reader that asks for a few
    /// instants once the events are in ([`aggregates_at`](Self::aggregates_at)): ingesting
    /// costs the per-key engines alone, and a read one point lookup per key.
    /// [`aggregates`](Self::aggregates) builds the whole aggregate from the keys' timelines at
    /// each call; with retention it starts at the newest key horizon (see
    /// [`horizon`](Self::horizon)). Answers equal [`new`](Self::new)'s wherever both answer.
    ///
    /// ```
    /// use timeline::aggregate::{AggFn, AggregateEngine, Num, Query};
    /// use timeline::{Event, EngineOptions};
    ///
    /// let q: Query = "duration_where(latest_event_to_state(s) == 1) | aggregate(sum)".parse().unwrap();
    /// let options = EngineOptions { key_column: Some("k".into()), retention: None };
    /// let mut engine = AggregateEngine::lazy(&q, options).unwrap();
    /// engine.ingest(&[
    ///     Event::new(1, [("k", 1.into()), ("s", 1.into())]),
    ///     Event::new(3, [("k", 2.into()), ("s", 1.into())]),
    /// ]).unwrap();
    /// let rows = engine.aggregates_at(10).unwrap().at(10);
    /// assert_eq!(rows[0].values, vec![(AggFn::Sum, Some(Num::Int(9 + 7)))]);
    /// ```
    pub fn lazy(query: &Query, options: EngineOptions) -> Result<AggregateEngine, ValidationError> {
        let mut engine = AggregateEngine::new(query, options)?;
        engine.lazy = true;
        Ok(engine)
    }

    /// The per-key engine (its plan, its keys' results).
    pub fn per_key(&self) -> &Engine {
        &self.result
    }

    /// The aggregation.
    pub fn aggregation(&self) -> &Aggregation {
        &self.aggregation
    }

    /// Ingests a batch of events in any time order; a refused batch changes nothing.
    pub fn ingest(&mut self, events: &[Event]) -> Result<(), IngestError> {
        self.take(events)?;
        // A key's latest time is its latest event's, and an older one was seen before.
        self.last_time = events.iter().map(|e| e.time).chain(self.last_time).max();
        Ok(())
    }

    /// The group column's timeline of `key` (`None` without `group_by`). The group engine
    /// took the same batches as the result engine, so it holds every key that one does.
    fn group_of<'a>(group: &'a Option<Engine>, key: Option<&Value>) -> Option<&'a Timeline> {
        group.as_ref().and_then(|g| g.timeline(key).ok())
    }

    /// What [`ingest`](Self::ingest) does but for the latest time.
    fn take(&mut self, events: &[Event]) -> Result<(), IngestError> {
        if self.lazy {
            // Both engines check a batch alike, so either both refuse it or neither does.
            if let Some(g) = &mut self.group {
                g.ingest(events)?;
            }
            return self.result.ingest(events);
        }
        // With retention, each changed key's group column from its earliest new event on, read
        // before retention collapses it; without, the group engine's timelines are read as they
        // are. The group engine runs the same checks on the same keys and times as the result
        // engine below, so either both refuse the batch or neither does.
        let retained = self.retention.is_some();
        let mut groups: crate::keys::KeyMap<Option<ValueKey>, Timeline> = Default::default();
        match &mut self.group {
            Some(g) if retained => g.ingest_observing(events, |c| {
                let mut suffix = Timeline::new(State::Unknown);
                suffix.push(c.from, c.result.value_at(c.from));
                for (t, s) in c.result.points().iter().filter(|(t, _)| *t > c.from) {
                    suffix.push(*t, s.clone());
                }
                groups.insert(c.key.map(ValueKey::from), suffix);
            })?,
            Some(g) => g.ingest(events)?,
            None => {}
        }
        let (aggregator, group_engine) = (&mut self.aggregator, &self.group);
        let mut changed: Vec<(Option<ValueKey>, u64)> = Vec::new();
        self.result.ingest_observing(events, |c| {
            let id = retained.then(|| c.key.map(ValueKey::from));
            let group = match &id {
                Some(id) => groups.get(id),
                None => Self::group_of(group_engine, c.key),
            };
            aggregator.update(c.key.cloned(), c.from, c.origin, c.result, group);
            if let Some(id) = id {
                changed.push((id, c.last_time));
            }
        })?;
        let Some(h) = self.retention else {
            return Ok(());
        };
        for (id, last) in changed {
            if let Some(oldest) = self.horizons.update(id, crate::keys::horizon(last, h)) {
                self.aggregator.collapse_before(oldest);
            }
        }
        Ok(())
    }

    /// Brings every group's timeline up to date (what a read does first).
    pub fn refresh(&mut self) {
        self.aggregator.refresh();
    }

    /// Every group's aggregate, up to date.
    pub fn aggregates(&mut self) -> Aggregates {
        let functions = self.aggregation.functions.clone();
        if !self.lazy {
            return self.aggregator.aggregates(functions);
        }
        let mut all = Aggregator::for_functions(&functions);
        for (key, origin, result) in self.result.results() {
            let group = Self::group_of(&self.group, key);
            all.update(key.cloned(), 0, origin, result, group);
        }
        all.aggregates(functions)
    }

    /// Every group's aggregate at instant `t` alone (each group's step function holds one
    /// point, at `t`): what [`Aggregates::at`] reads at `t`, and what threads and shards merge
    /// with [`Aggregates::merge`]. Refused before the horizon.
    pub fn aggregates_at(&mut self, t: u64) -> Result<Aggregates, QueryError> {
        if let Some(horizon) = self.horizon().filter(|h| t < *h) {
            return Err(QueryError::BeforeHorizon { time: t, horizon });
        }
        let functions = self.aggregation.functions.clone();
        let groups = if self.lazy {
            let group = &self.group;
            let keys = self
                .result
                .results()
                .map(|(key, origin, result)| (origin, result, Self::group_of(group, key)));
            aggregator::partials_of_keys_at(keys, t)
        } else {
            self.aggregator.partials_at(t)
        };
        Ok(Aggregates {
            functions,
            groups: groups.into_iter().map(|(g, p)| (g, vec![(t, p)])).collect(),
        })
    }

    /// The aggregator (for its statistics).
    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// The latest event time of any key.
    pub fn last_time(&self) -> Option<u64> {
        self.last_time
    }

    /// The earliest time the aggregate can be read at. Kept as events come, it starts at the
    /// oldest key horizon (the aggregate has history that the newer keys have collapsed); built
    /// when read ([`lazy`](Self::lazy)), at the newest one (the key with the latest event),
    /// before which some key's history is gone.
    pub fn horizon(&self) -> Option<u64> {
        let h = self.retention?;
        Some(match self.lazy {
            false => self.horizons.collapsed_before(),
            true => self
                .last_time
                .map_or(0, |last| crate::keys::horizon(last, h)),
        })
    }
}

/// The plan of a query: its per-key nodes (with the group column's leaf, for an aggregate) and
/// the aggregate node over them.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryPlan {
    pub plan: crate::plan::Plan,
    pub aggregate: Option<AggregateNode>,
}

/// The aggregate node of a plan: it reads every key's result and group column.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateNode {
    /// A name-based UUID of the whole query's canonical text.
    pub id: uuid::Uuid,
    /// The per-key result it aggregates (an index into the plan's nodes).
    pub result: usize,
    /// The group column's leaf, if it groups.
    pub group: Option<usize>,
    pub aggregation: Aggregation,
    /// The whole query, as text.
    pub text: String,
}

impl QueryPlan {
    /// Plans `query`.
    ///
    /// ```
    /// let q: timeline::aggregate::Query =
    ///     "has_existed(a == 1) | aggregate(group_by(cdn), count)".parse().unwrap();
    /// let plan = timeline::aggregate::QueryPlan::new(&q);
    /// assert_eq!(plan.plan.nodes.len(), 2); // latest_event_to_state(cdn), has_existed(a == 1)
    /// assert_eq!(plan.aggregate.unwrap().group, Some(0));
    /// ```
    pub fn new(query: &Query) -> QueryPlan {
        let leaves: Vec<TimeLineOp> = query
            .aggregate
            .as_ref()
            .and_then(Aggregation::group_leaf)
            .into_iter()
            .collect();
        let plan = crate::plan::Plan::with_leaves(&query.op, &leaves);
        let aggregate = query.aggregate.as_ref().map(|a| AggregateNode {
            id: crate::plan::node_id_of_text(&query.to_string()),
            result: plan.root(),
            group: leaves.first().and_then(|l| plan.position(l)),
            aggregation: a.clone(),
            text: query.to_string(),
        });
        QueryPlan { plan, aggregate }
    }
}

impl fmt::Display for QueryPlan {
    /// The per-key plan, then the aggregate node (the result) with its inputs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(a) = &self.aggregate else {
            return write!(f, "{}", self.plan);
        };
        let text = self.plan.to_string();
        let text = text
            .trim_end()
            .strip_suffix(" (result)")
            .unwrap_or(text.trim_end());
        writeln!(f, "{text}")?;
        let inputs: Vec<String> = std::iter::once(a.result)
            .chain(a.group)
            .map(|i| self.plan.nodes[i].id.to_string())
            .collect();
        writeln!(
            f,
            "{}  {:<7}  {:<21}  inputs=[{}]  {} (result)",
            a.id,
            "across",
            "aggregate",
            inputs.join(", "),
            a.text
        )
    }
}

/// The group of a value of the group-by column (for looking a group up by value).
pub fn group_of(v: Option<&Value>) -> GroupKey {
    GroupKey(v.map(crate::value::ValueKey::from))
}
