//! Test support: a brute-force reference evaluator written from the SPEC definitions, and
//! proptest strategies for events and queries.
#![allow(dead_code)]

use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use timeline::op::*;
use timeline::value::ValueKey;
use timeline::{Event, State, Timeline, Value};

/// The value of a timeline at one instant, as the definitions give it.
#[derive(Clone, Debug)]
pub enum Inst {
    Unknown,
    Value(Value),
}

impl Inst {
    fn as_bool(&self) -> Option<bool> {
        match self {
            Inst::Value(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn from_opt(b: Option<bool>) -> Inst {
        b.map_or(Inst::Unknown, |b| Inst::Value(Value::Bool(b)))
    }

    pub fn same(&self, other: &Inst) -> bool {
        match (self, other) {
            (Inst::Unknown, Inst::Unknown) => true,
            (Inst::Value(a), Inst::Value(b)) => a.same(b),
            _ => false,
        }
    }

    pub fn matches_state(&self, s: &State) -> bool {
        match (self, s.instant_value()) {
            (Inst::Unknown, None) => true,
            (Inst::Value(a), Some(b)) => a.same(&b),
            _ => false,
        }
    }
}

/// The events of one key, merged per time: for the same time and column, the one ingested last
/// wins (SPEC §2).
pub struct Rows {
    rows: BTreeMap<u64, Vec<(String, Value)>>,
}

impl Rows {
    pub fn new<'a>(events_in_arrival_order: impl IntoIterator<Item = &'a Event>) -> Rows {
        let mut rows: BTreeMap<u64, Vec<(String, Value)>> = BTreeMap::new();
        for e in events_in_arrival_order {
            let row = rows.entry(e.time).or_default();
            for (c, v) in &e.fields {
                row.retain(|(x, _)| **x != **c);
                row.push((c.to_string(), v.clone()));
            }
        }
        Rows { rows }
    }

    pub fn origin(&self) -> Option<u64> {
        self.rows.keys().next().copied()
    }

    pub fn max_time(&self) -> u64 {
        self.rows.keys().last().copied().unwrap_or(0)
    }

    fn get<'a>(row: &'a [(String, Value)], col: &str) -> Option<&'a Value> {
        row.iter().find(|(c, _)| c == col).map(|(_, v)| v)
    }

    fn matches(p: &Predicate, row: &[(String, Value)]) -> bool {
        p.eval(&|c| Rows::get(row, c)) == Some(true)
    }

    /// The value of `op` at every instant `0..=end`, computed from the definitions.
    pub fn eval(&self, op: &TimeLineOp, end: u64) -> Vec<Inst> {
        let n = end as usize + 1;
        let origin = self.origin();
        let ts = 0..=end;
        let rows_in = |lo: i128, hi: u64| {
            // Rows with lo < time <= hi.
            self.rows
                .range(..=hi)
                .filter(move |(t, _)| (**t as i128) > lo)
        };
        match op {
            TimeLineOp::LatestEventToState { column } => ts
                .map(|t| {
                    self.rows
                        .range(..=t)
                        .rev()
                        .find_map(|(_, r)| Rows::get(r, column))
                        .map_or(Inst::Unknown, |v| Inst::Value(v.clone()))
                })
                .collect(),
            TimeLineOp::HasExisted { predicate } => ts
                .map(|t| {
                    let b = rows_in(-1, t).any(|(_, r)| Rows::matches(predicate, r));
                    Inst::Value(Value::Bool(b))
                })
                .collect(),
            TimeLineOp::HasExistedWithin { predicate, within } => ts
                .map(|t| {
                    let b = rows_in(t as i128 - *within as i128, t)
                        .any(|(_, r)| Rows::matches(predicate, r));
                    Inst::Value(Value::Bool(b))
                })
                .collect(),
            TimeLineOp::Count { predicate } => ts
                .map(|t| {
                    let c = rows_in(-1, t)
                        .filter(|(_, r)| Rows::matches(predicate, r))
                        .count();
                    Inst::Value(Value::Int(c as i64))
                })
                .collect(),
            TimeLineOp::CountWithin { predicate, within } => ts
                .map(|t| {
                    let c = rows_in(t as i128 - *within as i128, t)
                        .filter(|(_, r)| Rows::matches(predicate, r))
                        .count();
                    Inst::Value(Value::Int(c as i64))
                })
                .collect(),
            TimeLineOp::DistinctWithin { column, within } => ts
                .map(|t| {
                    let set: HashSet<ValueKey> = rows_in(t as i128 - *within as i128, t)
                        .filter_map(|(_, r)| Rows::get(r, column).map(ValueKey::from))
                        .collect();
                    Inst::Value(Value::Int(set.len() as i64))
                })
                .collect(),
            TimeLineOp::Compare { input, op, value } => self
                .eval(input, end)
                .into_iter()
                .map(|x| match x {
                    Inst::Unknown => Inst::Unknown,
                    Inst::Value(v) => Inst::from_opt(op.apply(&v, value)),
                })
                .collect(),
            TimeLineOp::Not(a) => self
                .eval(a, end)
                .into_iter()
                .map(|x| Inst::from_opt(x.as_bool().map(|b| !b)))
                .collect(),
            TimeLineOp::And(a, b) | TimeLineOp::Or(a, b) => {
                let (xa, xb) = (self.eval(a, end), self.eval(b, end));
                let and = matches!(op, TimeLineOp::And(..));
                xa.iter()
                    .zip(&xb)
                    .map(|(x, y)| {
                        let f = if and { kleene_and } else { kleene_or };
                        Inst::from_opt(f(x.as_bool(), y.as_bool()))
                    })
                    .collect()
            }
            TimeLineOp::DurationWhere(b) => {
                let xb = self.eval(b, end);
                (0..n)
                    .map(|t| {
                        let total = match origin {
                            None => 0,
                            Some(o) => (o as usize..t)
                                .filter(|&s| xb[s].as_bool() == Some(true))
                                .count(),
                        };
                        Inst::Value(Value::Int(total as i64))
                    })
                    .collect()
            }
            TimeLineOp::DurationInCurState(x) => {
                let xs = self.eval(x, end);
                (0..n)
                    .map(|t| match origin {
                        Some(o) if t as u64 >= o => {
                            if let Inst::Unknown = xs[t] {
                                return Inst::Unknown;
                            }
                            let mut s = t;
                            while s as u64 > o && xs[s - 1].same(&xs[t]) {
                                s -= 1;
                            }
                            Inst::Value(Value::Int((t - s) as i64))
                        }
                        _ => Inst::Unknown,
                    })
                    .collect()
            }
        }
    }
}

/// The last instant worth checking: after it, nothing changes but durations growing steadily.
pub fn horizon_of(op: &TimeLineOp, max_time: u64) -> u64 {
    fn windows(op: &TimeLineOp) -> u64 {
        let own = match op {
            TimeLineOp::HasExistedWithin { within, .. }
            | TimeLineOp::CountWithin { within, .. }
            | TimeLineOp::DistinctWithin { within, .. } => *within,
            _ => 0,
        };
        own + op.children().iter().map(|c| windows(c)).max().unwrap_or(0)
    }
    // Comparisons on growing durations may flip late: leave room for constants up to 60.
    max_time + windows(op) + 70
}

/// Checks a timeline against the reference at every instant `0..=end`, and its canonical form.
pub fn assert_matches_reference(
    tl: &Timeline,
    reference: &[Inst],
    context: &str,
) -> Result<(), TestCaseError> {
    for (t, want) in reference.iter().enumerate() {
        let got = tl.value_at(t as u64);
        prop_assert!(
            want.matches_state(&got),
            "{context}\nat t={t}: reference {want:?}, engine {got:?}\ntimeline: {:?}",
            tl.points()
        );
    }
    assert_canonical(tl)?;
    Ok(())
}

pub fn assert_canonical(tl: &Timeline) -> Result<(), TestCaseError> {
    let pts = tl.points();
    if let Some((_, first)) = pts.first() {
        prop_assert!(
            !first.same(tl.initial()),
            "first point repeats the initial value: {pts:?}"
        );
    }
    for w in pts.windows(2) {
        prop_assert!(w[0].0 < w[1].0, "times not increasing: {pts:?}");
        prop_assert!(
            !w[0].1.advanced(w[1].0 - w[0].0).same(&w[1].1),
            "not canonical: {pts:?}"
        );
    }
    Ok(())
}

// ---------- strategies ----------

pub const COLUMNS: [&str; 3] = ["a", "b", "c"];

pub fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        10 => summable_value(),
        // Integers too large for a packed row value, stored boxed (`timeline::packed`).
        1 => prop_oneof![Just(1i64 << 47), Just(-(1i64 << 47) - 1)]
            .prop_map(Value::Int),
    ]
}

/// [`value`] without the integers beyond 48 bits: sums over groups are compared within a
/// relative 1e-9, which cannot tell such an integer from itself plus a small float.
pub fn summable_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop_oneof![Just("x"), Just("y"), Just("z")].prop_map(Value::from),
        4 => (0i64..4).prop_map(Value::Int),
        1 => prop_oneof![Just(0.5), Just(2.0), Just(1.5)].prop_map(Value::Float),
        2 => any::<bool>().prop_map(Value::Bool),
    ]
}

pub fn constant() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop_oneof![Just("x"), Just("y")].prop_map(Value::from),
        4 => (0i64..6).prop_map(Value::Int),
        1 => prop_oneof![Just(1.5), Just(2.0), Just(3.5)].prop_map(Value::Float),
        1 => any::<bool>().prop_map(Value::Bool),
    ]
}

pub fn column() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("a"), Just("b"), Just("c")]
}

pub fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(CmpOp::ALL.to_vec())
}

pub fn predicate() -> impl Strategy<Value = Predicate> {
    let atom = (column(), cmp_op(), constant()).prop_map(|(c, op, v)| Predicate::Compare {
        column: c.into(),
        op,
        value: v,
    });
    atom.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.or(b)),
            inner.prop_map(|a| a.not()),
        ]
    })
}

pub fn window() -> impl Strategy<Value = u64> {
    1u64..8
}

/// Events over a few columns at times `0..max_time`, with repeated times.
pub fn events(max_time: u64, max_len: usize) -> impl Strategy<Value = Vec<Event>> {
    let field = (column(), value());
    let event = (0..max_time, prop::collection::vec(field, 1..3)).prop_map(|(t, fs)| {
        Event::new(
            t,
            fs.iter().map(|(c, v)| (*c, v.clone())).collect::<Vec<_>>(),
        )
    });
    prop::collection::vec(event, 0..max_len)
}

/// A leaf operator.
pub fn leaf() -> impl Strategy<Value = TimeLineOp> {
    prop_oneof![
        column().prop_map(|c| tl_latest_event_to_state(col(c))),
        predicate().prop_map(tl_has_existed),
        (predicate(), window()).prop_map(|(p, d)| tl_has_existed_within(p, d)),
        predicate().prop_map(tl_count),
        (predicate(), window()).prop_map(|(p, d)| tl_count_within(p, d)),
        (column(), window()).prop_map(|(c, d)| tl_distinct_within(col(c), d)),
    ]
}

/// A well-typed query of bool type.
pub fn bool_query(depth: u32) -> BoxedStrategy<TimeLineOp> {
    let base = prop_oneof![
        predicate().prop_map(tl_has_existed),
        (predicate(), window()).prop_map(|(p, d)| tl_has_existed_within(p, d)),
        (column(), cmp_op(), constant())
            .prop_map(|(c, op, v)| tl_latest_event_to_state(col(c)).compare(op, v)),
        column().prop_map(|c| tl_latest_event_to_state(col(c))),
    ];
    if depth == 0 {
        return base.boxed();
    }
    let sub = bool_query(depth - 1);
    prop_oneof![
        2 => base,
        2 => (sub.clone(), sub.clone()).prop_map(|(a, b)| a.and(b)),
        2 => (sub.clone(), sub.clone()).prop_map(|(a, b)| a.or(b)),
        1 => sub.prop_map(|a| a.not()),
        2 => (num_query(depth - 1), cmp_op(), 0i64..8, any::<bool>()).prop_map(|(x, op, c, half)| {
            let v = if half { Value::Float(c as f64 + 0.5) } else { Value::Int(c) };
            x.compare(op, v)
        }),
    ]
    .boxed()
}

/// A well-typed numeric query (int or duration).
pub fn num_query(depth: u32) -> BoxedStrategy<TimeLineOp> {
    let base = prop_oneof![
        predicate().prop_map(tl_count),
        (predicate(), window()).prop_map(|(p, d)| tl_count_within(p, d)),
        (column(), window()).prop_map(|(c, d)| tl_distinct_within(col(c), d)),
    ];
    if depth == 0 {
        return base.boxed();
    }
    prop_oneof![
        1 => base,
        2 => bool_query(depth - 1).prop_map(tl_duration_where),
        2 => any_query(depth - 1).prop_map(tl_duration_in_cur_state),
    ]
    .boxed()
}

/// Any well-typed query.
pub fn any_query(depth: u32) -> BoxedStrategy<TimeLineOp> {
    prop_oneof![bool_query(depth), num_query(depth), leaf()].boxed()
}

/// A permutation of `0..n`.
pub fn shuffled(n: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..n).collect::<Vec<_>>()).prop_shuffle()
}
