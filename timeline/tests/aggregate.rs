//! Aggregation across keys (SPEC §6) against a brute-force reference: every group at every
//! instant, straight from the definitions, for random queries, groupings and functions, keys that
//! switch groups or start late, shuffled arrival, random batching, and keys split over several
//! aggregators (threads, shards) whose partials are merged.

mod common;

use common::*;
use proptest::prelude::*;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use timeline::aggregate::*;
use timeline::op::*;
use timeline::value::ValueKey;
use timeline::{EngineOptions, Event, Value};

/// What the definitions give for one group at one instant: its members' count and each
/// function's value.
#[derive(Debug)]
struct Expected {
    members: usize,
    values: Vec<(AggFn, Option<Num>)>,
}

fn key_of(e: &Event) -> i64 {
    match e.fields.iter().find(|(c, _)| &**c == "k") {
        Some((_, Value::Int(k))) => *k,
        _ => unreachable!("every test event has an int key"),
    }
}

/// Every group with a member at `t`, for every `t` in `0..=end`.
fn reference(query: &Query, arrived: &[Event], end: u64) -> Vec<BTreeMap<GroupKey, Expected>> {
    let agg = query.aggregate.as_ref().unwrap();
    let mut by_key: BTreeMap<i64, Vec<&Event>> = BTreeMap::new();
    for e in arrived {
        by_key.entry(key_of(e)).or_default().push(e);
    }
    // Per key: its origin, its result and its group at every instant.
    let keys: Vec<(u64, Vec<Inst>, Vec<Inst>)> = by_key
        .values()
        .map(|events| {
            let rows = Rows::new(events.iter().copied());
            let result = rows.eval(&query.op, end);
            let group = match agg.group_leaf() {
                Some(leaf) => rows.eval(&leaf, end),
                None => vec![Inst::Unknown; end as usize + 1],
            };
            (rows.origin().unwrap(), result, group)
        })
        .collect();
    (0..=end)
        .map(|t| {
            let mut members: BTreeMap<GroupKey, Vec<&Inst>> = BTreeMap::new();
            for (origin, result, group) in &keys {
                if t < *origin {
                    continue;
                }
                let g = match &group[t as usize] {
                    Inst::Unknown => GroupKey(None),
                    Inst::Value(v) => GroupKey(Some(ValueKey::from(v))),
                };
                members.entry(g).or_default().push(&result[t as usize]);
            }
            members
                .into_iter()
                .map(|(g, vals)| {
                    let expected = Expected {
                        members: vals.len(),
                        values: agg
                            .functions
                            .iter()
                            .map(|&f| (f, apply(f, &vals)))
                            .collect(),
                    };
                    (g, expected)
                })
                .collect()
        })
        .collect()
}

/// One function over the members' values at an instant, from the SPEC table.
fn apply(f: AggFn, vals: &[&Inst]) -> Option<Num> {
    let known = vals.iter().filter(|v| matches!(v, Inst::Value(_))).count();
    let nums: Vec<Num> = vals
        .iter()
        .filter_map(|v| match v {
            Inst::Value(Value::Int(i)) => Some(Num::Int(*i)),
            Inst::Value(Value::Bool(b)) => Some(Num::Int(*b as i64)),
            Inst::Value(Value::Float(x)) => Some(Num::Float(*x)),
            _ => None,
        })
        .collect();
    // The test floats are multiples of 1/2: every sum of them is exact in any order.
    let sum = if nums.iter().any(|n| matches!(n, Num::Float(_))) {
        Num::Float(nums.iter().map(|n| n.as_f64()).sum())
    } else {
        Num::Int(
            nums.iter()
                .map(|n| match n {
                    Num::Int(i) => *i,
                    Num::Float(_) => unreachable!(),
                })
                .sum(),
        )
    };
    let extreme = |keep: Ordering| {
        nums.iter()
            .copied()
            .reduce(|a, b| if b.numeric_cmp(&a) == keep { b } else { a })
    };
    match f {
        AggFn::Count => Some(Num::Int(known as i64)),
        AggFn::Sum => Some(sum),
        AggFn::Avg => (!nums.is_empty()).then(|| Num::Float(sum.as_f64() / nums.len() as f64)),
        AggFn::Min => extreme(Ordering::Less),
        AggFn::Max => extreme(Ordering::Greater),
    }
}

fn same(a: Option<Num>, b: Option<Num>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn close(a: Option<Num>, b: Option<Num>) -> bool {
    match (a, b) {
        (Some(Num::Float(x)), Some(y)) | (Some(y), Some(Num::Float(x))) => {
            (x - y.as_f64()).abs() <= 1e-9 * x.abs().max(1.0)
        }
        _ => same(a, b),
    }
}

/// A segment's value at `t` (inside it).
fn along(s: &AggSegment, t: u64) -> Option<Num> {
    let dt = t - s.from;
    s.value.map(|v| match (v, s.slope) {
        (Num::Int(v), Num::Int(k)) => Num::Int(v + k * dt as i64),
        (v, k) => Num::Float(v.as_f64() + k.as_f64() * dt as f64),
    })
}

/// The aggregates, checked against the reference at every instant: the rows `at` gives, and
/// every function's timeline (canonical, and equal to the reference along every segment).
/// The rows an aggregate gives at `t` against the definition's groups at `t`.
fn check_rows(
    rows: &[GroupRow],
    groups: &BTreeMap<GroupKey, Expected>,
    t: u64,
    context: &str,
) -> Result<(), TestCaseError> {
    let expected: Vec<_> = groups.iter().filter(|(_, e)| e.members > 0).collect();
    prop_assert_eq!(
        rows.len(),
        expected.len(),
        "{}\nat {}: {:?} vs {:?}",
        context,
        t,
        rows,
        expected
    );
    for (row, (g, e)) in rows.iter().zip(&expected) {
        prop_assert_eq!(&row.group, &g.value(), "{}\nat {}", context, t);
        prop_assert_eq!(row.at, t);
        for ((f, v), (_, w)) in row.values.iter().zip(&e.values) {
            prop_assert!(
                same(*v, *w),
                "{context}\nat {t}, group {g:?}, {f}: engine {v:?}, reference {w:?}"
            );
        }
    }
    Ok(())
}

fn check_against(
    got: &Aggregates,
    want: &[BTreeMap<GroupKey, Expected>],
    context: &str,
) -> Result<(), TestCaseError> {
    for (t, groups) in want.iter().enumerate() {
        check_rows(&got.at(t as u64), groups, t as u64, context)?;
    }
    for &f in &got.functions {
        for (g, segs) in got.segments(f, 0, None) {
            for w in segs.windows(2) {
                let continued = along(&w[0], w[1].from);
                prop_assert!(
                    !(close(continued, w[1].value)
                        && w[0].slope == w[1].slope
                        && w[0].value.is_some() == w[1].value.is_some()),
                    "{context}\n{f} of {g:?} not canonical: {segs:?}"
                );
            }
            for (t, groups) in want.iter().enumerate() {
                let t = t as u64;
                let s = segs.iter().rev().find(|s| s.from <= t).unwrap();
                let expected = groups.get(g).map_or_else(
                    || apply(f, &[]),
                    |e| e.values.iter().find(|(x, _)| *x == f).unwrap().1,
                );
                let v = along(s, t);
                let ok = if s.from == t {
                    same(v, expected)
                } else {
                    close(v, expected)
                };
                prop_assert!(ok, "{context}\n{f} of {g:?} at {t}: timeline {v:?}, reference {expected:?}\n{segs:?}");
            }
        }
    }
    Ok(())
}

/// Events of keys 0..4 (column `k`), at times `0..max_time`, over columns a, b and c.
fn keyed_events(max_time: u64, max_len: usize) -> impl Strategy<Value = Vec<Event>> {
    let event = (
        0i64..4,
        0..max_time,
        prop::collection::vec((column(), summable_value()), 1..3),
    )
        .prop_map(|(k, t, fs)| {
            let mut fields = vec![("k", Value::Int(k))];
            fields.extend(fs.iter().map(|(c, v)| (*c, v.clone())));
            Event::new(t, fields)
        });
    prop::collection::vec(event, 1..max_len)
}

fn aggregation() -> impl Strategy<Value = (Option<&'static str>, Vec<AggFn>)> {
    (
        prop::option::weighted(0.8, column()),
        Just(AggFn::ALL.to_vec()).prop_shuffle(),
        1usize..=5,
    )
        .prop_map(|(g, fns, n)| (g, fns[..n].to_vec()))
}

fn options() -> EngineOptions {
    EngineOptions {
        key_column: Some("k".into()),
        retention: None,
    }
}

/// Feeds `arrived` to `engines` (each key to engine `key % engines.len()`) in batches.
fn feed(engines: &mut [AggregateEngine], arrived: &[Event], batch_sizes: &[usize]) {
    let mut rest = arrived;
    let mut k = 0;
    while !rest.is_empty() {
        let n = batch_sizes[k % batch_sizes.len()].clamp(1, rest.len());
        let mut parts = vec![Vec::new(); engines.len()];
        for e in &rest[..n] {
            parts[key_of(e) as usize % engines.len()].push(e.clone());
        }
        for (engine, part) in engines.iter_mut().zip(parts) {
            engine.ingest(&part).unwrap();
        }
        rest = &rest[n..];
        k += 1;
    }
}

/// The events in the order `order` gives, and the definition's groups at every instant up to
/// the query's horizon after the last event.
fn arrive(
    query: &Query,
    events: &[Event],
    order: &[usize],
) -> (Vec<Event>, Vec<BTreeMap<GroupKey, Expected>>) {
    let arrived: Vec<Event> = order.iter().map(|&i| events[i].clone()).collect();
    let max_time = events.iter().map(|e| e.time).max().unwrap();
    let want = reference(query, &arrived, horizon_of(&query.op, max_time));
    (arrived, want)
}

fn query_of(op: TimeLineOp, group: Option<&str>, functions: Vec<AggFn>) -> Query {
    let g = group.map_or(GroupBy::none(), group_by);
    op.aggregate(g, functions)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn aggregates_match_reference(
        op in any_query(2),
        (group, functions) in aggregation(),
        (events, order) in keyed_events(25, 30).prop_flat_map(|e| { let n = e.len(); (Just(e), shuffled(n)) }),
        batch_sizes in prop::collection::vec(1usize..6, 1..4),
        threads in 1usize..4,
    ) {
        let query = query_of(op, group, functions);
        let (arrived, want) = arrive(&query, &events, &order);
        let context = format!("query: {query}\nevents (arrival order): {arrived:?}");

        let mut one = vec![AggregateEngine::new(&query, options()).unwrap()];
        feed(&mut one, &arrived, &batch_sizes);
        let single = one[0].aggregates();
        check_against(&single, &want, &context)?;

        // The same keys spread over several aggregators, merged: the same answers.
        let mut many: Vec<AggregateEngine> =
            (0..threads).map(|_| AggregateEngine::new(&query, options()).unwrap()).collect();
        feed(&mut many, &arrived, &batch_sizes);
        let merged = Aggregates::merge(many.iter_mut().map(|e| e.aggregates()).collect());
        check_against(&merged, &want, &format!("{context}\n{threads} aggregators merged"))?;
    }

    /// Durations make sums grow with any slope and extremes cross: the queries most likely to
    /// get slopes and crossings wrong.
    #[test]
    fn duration_aggregates_match_reference(
        op in bool_query(1).prop_map(tl_duration_where),
        (group, _) in aggregation(),
        (events, order) in keyed_events(30, 25).prop_flat_map(|e| { let n = e.len(); (Just(e), shuffled(n)) }),
        batch_sizes in prop::collection::vec(1usize..4, 1..3),
    ) {
        let query = query_of(op, group, AggFn::ALL.to_vec());
        let (arrived, want) = arrive(&query, &events, &order);
        let mut one = vec![AggregateEngine::new(&query, options()).unwrap()];
        feed(&mut one, &arrived, &batch_sizes);
        check_against(&one[0].aggregates(), &want, &format!("query: {query}\nevents: {arrived:?}"))?;
    }

    /// An engine that leaves the aggregate to its reads answers every instant as the definition
    /// does, read at that instant alone or as a whole timeline, alone or merged over engines.
    #[test]
    fn lazy_aggregates_match_reference(
        op in prop_oneof![any_query(2), bool_query(1).prop_map(tl_duration_where)],
        (group, functions) in aggregation(),
        (events, order) in keyed_events(25, 30).prop_flat_map(|e| { let n = e.len(); (Just(e), shuffled(n)) }),
        batch_sizes in prop::collection::vec(1usize..6, 1..4),
        threads in 1usize..4,
    ) {
        let query = query_of(op, group, functions);
        let (arrived, want) = arrive(&query, &events, &order);
        let context = format!("query: {query}\nevents (arrival order): {arrived:?}\n{threads} lazy engines");
        let mut lazy: Vec<AggregateEngine> =
            (0..threads).map(|_| AggregateEngine::lazy(&query, options()).unwrap()).collect();
        feed(&mut lazy, &arrived, &batch_sizes);
        for (t, groups) in want.iter().enumerate() {
            let t = t as u64;
            let parts = lazy.iter_mut().map(|e| e.aggregates_at(t).unwrap()).collect();
            check_rows(&Aggregates::merge(parts).at(t), groups, t, &context)?;
        }
        let whole = Aggregates::merge(lazy.iter_mut().map(|e| e.aggregates()).collect());
        check_against(&whole, &want, &context)?;
        // Read at one instant, an engine that keeps its aggregate answers alike.
        let mut kept = vec![AggregateEngine::new(&query, options()).unwrap()];
        feed(&mut kept, &arrived, &batch_sizes);
        let t = events.iter().map(|e| e.time).max().unwrap();
        prop_assert_eq!(kept[0].aggregates_at(t).unwrap().at(t), kept[0].aggregates().at(t));
    }

    #[test]
    fn aggregate_queries_round_trip(
        op in any_query(2),
        (group, functions) in aggregation(),
    ) {
        let query = query_of(op, group, functions);
        let text = query.to_string();
        let back: Query = text.parse().unwrap();
        prop_assert_eq!(&back, &query);
        let json = serde_json::to_string(&query).unwrap();
        prop_assert_eq!(serde_json::from_str::<Query>(&json).unwrap(), query);
    }
}

/// An aggregate engine keyed by the column `id`.
fn by_id(q: &Query) -> AggregateEngine {
    let options = EngineOptions {
        key_column: Some("id".into()),
        retention: None,
    };
    AggregateEngine::new(q, options).unwrap()
}

#[test]
fn spec_example_sessions_buffering_per_cdn() {
    let q: Query = r#"latest_event_to_state(s) == "buffer" | aggregate(group_by(cdn), sum)"#
        .parse()
        .unwrap();
    let mut engine = by_id(&q);
    let e = |t, id: i64, fields: &[(&str, &str)]| {
        let mut f = vec![("id", Value::Int(id))];
        f.extend(fields.iter().map(|(c, v)| (*c, Value::str(v))));
        Event::new(t, f)
    };
    engine
        .ingest(&[
            e(1, 1, &[("cdn", "CDN1"), ("s", "buffer")]),
            e(2, 2, &[("cdn", "CDN1"), ("s", "buffer")]),
            e(3, 3, &[("cdn", "CDN2"), ("s", "play")]),
            e(5, 1, &[("s", "play")]),
            // Session 2 moves to CDN2 at 6, still buffering.
            e(6, 2, &[("cdn", "CDN2")]),
        ])
        .unwrap();
    let a = engine.aggregates();
    let at = |t| -> Vec<(Option<Value>, Option<Num>)> {
        a.at(t)
            .into_iter()
            .map(|r| (r.group, r.values[0].1))
            .collect()
    };
    assert_eq!(at(0), vec![]);
    assert_eq!(at(2), vec![(Some("CDN1".into()), Some(Num::Int(2)))]);
    assert_eq!(
        at(4),
        vec![
            (Some("CDN1".into()), Some(Num::Int(2))),
            (Some("CDN2".into()), Some(Num::Int(0)))
        ]
    );
    assert_eq!(
        at(6),
        vec![
            (Some("CDN1".into()), Some(Num::Int(0))),
            (Some("CDN2".into()), Some(Num::Int(1)))
        ]
    );
    // A late event corrects the past: session 3 buffered on CDN2 from 4.
    engine.ingest(&[e(4, 3, &[("s", "buffer")])]).unwrap();
    let a = engine.aggregates();
    assert_eq!(a.at(4)[1].values[0].1, Some(Num::Int(1)));
    assert_eq!(a.at(6)[1].values[0].1, Some(Num::Int(2)));
}

#[test]
fn strings_are_counted_but_left_out_of_sums_and_reported_as_mismatches() {
    let q: Query = "latest_event_to_state(v) | aggregate(count, sum, max)"
        .parse()
        .unwrap();
    let mut engine = by_id(&q);
    let e = |t, id: i64, v: Value| Event::new(t, [("id", Value::Int(id)), ("v", v)]);
    engine
        .ingest(&[
            e(1, 1, Value::Int(4)),
            e(1, 2, Value::str("x")),
            e(5, 2, Value::Int(1)),
        ])
        .unwrap();
    let a = engine.aggregates();
    assert_eq!(
        a.at(2)[0].values,
        vec![
            (AggFn::Count, Some(Num::Int(2))),
            (AggFn::Sum, Some(Num::Int(4))),
            (AggFn::Max, Some(Num::Int(4)))
        ]
    );
    assert_eq!(a.at(5)[0].values[1].1, Some(Num::Int(5)));
    // Key 2's string, from 1 to 5.
    assert_eq!(engine.aggregator().mismatches(), 1);
}

#[test]
fn sum_of_growing_durations_has_the_slope_of_the_growing_members() {
    let q: Query =
        r#"duration_where(latest_event_to_state(s) == "buffer") | aggregate(sum, avg, min, max)"#
            .parse()
            .unwrap();
    let mut engine = by_id(&q);
    let e = |t, id: i64, s: &str| Event::new(t, [("id", Value::Int(id)), ("s", Value::str(s))]);
    engine
        .ingest(&[
            e(0, 1, "buffer"),
            e(0, 2, "buffer"),
            e(0, 3, "buffer"),
            e(4, 3, "play"),
        ])
        .unwrap();
    let a = engine.aggregates();
    let sum = &a.segments(AggFn::Sum, 0, None)[0].1;
    assert_eq!(
        sum.iter()
            .map(|s| (s.from, s.value, s.slope))
            .collect::<Vec<_>>(),
        vec![
            (0, Some(Num::Int(0)), Num::Int(3)),
            (4, Some(Num::Int(12)), Num::Int(2))
        ]
    );
    let avg = &a.segments(AggFn::Avg, 0, None)[0].1;
    assert_eq!(avg[0].slope, Num::Float(1.0));
    assert_eq!(avg[1].slope, Num::Float(2.0 / 3.0));
    // The least member stops at 4 (session 3); the greatest keeps growing.
    let min = &a.segments(AggFn::Min, 0, None)[0].1;
    assert_eq!(
        min.iter().map(|s| (s.from, s.slope)).collect::<Vec<_>>(),
        vec![(0, Num::Int(1)), (4, Num::Int(0))]
    );
    let max = &a.segments(AggFn::Max, 0, None)[0].1;
    assert_eq!(max.len(), 1);
}

#[test]
fn min_changes_where_a_growing_member_crosses_a_still_one() {
    // Session 1 buffered on [0, 3) (then holds 3); session 2 buffers from 1 on (worth t - 1).
    let q: Query = r#"duration_where(latest_event_to_state(s) == "buffer") | aggregate(min, max)"#
        .parse()
        .unwrap();
    let mut engine = by_id(&q);
    let e = |t, id: i64, s: &str| Event::new(t, [("id", Value::Int(id)), ("s", Value::str(s))]);
    engine
        .ingest(&[e(0, 1, "buffer"), e(3, 1, "play"), e(1, 2, "buffer")])
        .unwrap();
    let a = engine.aggregates();
    let min = &a.segments(AggFn::Min, 0, None)[0].1;
    // Until 1 only session 1 (growing); at 1 session 2 starts at 0 and is least, growing,
    // until it reaches 3 at 4, where session 1's 3 (held still since 3) is least again.
    let got: Vec<_> = min.iter().map(|s| (s.from, s.value, s.slope)).collect();
    assert_eq!(
        got,
        vec![
            (0, Some(Num::Int(0)), Num::Int(1)),
            (1, Some(Num::Int(0)), Num::Int(1)),
            (4, Some(Num::Int(3)), Num::Int(0))
        ]
    );
    let max = &a.segments(AggFn::Max, 0, None)[0].1;
    // Session 1 is greatest and holds 3 from 3; session 2 reaches it at 4 and grows past it.
    let got: Vec<_> = max.iter().map(|s| (s.from, s.value, s.slope)).collect();
    assert_eq!(
        got,
        vec![
            (0, Some(Num::Int(0)), Num::Int(1)),
            (3, Some(Num::Int(3)), Num::Int(0)),
            (4, Some(Num::Int(3)), Num::Int(1))
        ]
    );
}

#[test]
fn aggregate_syntax_errors_name_line_column_and_what_is_wrong() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "count(a == 1) | aggregate()",
            (1, 17),
            "at least one function",
        ),
        (
            "count(a == 1) | aggregate(median)",
            (1, 27),
            "unknown aggregate function `median`",
        ),
        (
            "count(a == 1) | aggregate(sum, sum)",
            (1, 32),
            "`sum` is asked for twice",
        ),
        (
            "count(a == 1) | aggregate(group_by(a), group_by(b), sum)",
            (1, 40),
            "`group_by` is given twice",
        ),
        (
            "count(a == 1) | aggregate(sum, group_by(a))",
            (1, 32),
            "comes first",
        ),
        (
            "count(a == 1) | aggregate(group_by(a, b), sum)",
            (1, 27),
            "takes 1 argument",
        ),
        (
            "count(a == 1) | aggregate(sum(), count)",
            (1, 27),
            "expected an aggregate function",
        ),
        (
            "has_existed(a == 1) && aggregate(sum)",
            (1, 24),
            "ends a query, after `|`",
        ),
        (
            "let x = count(a == 1) | aggregate(sum);\nx",
            (1, 23),
            "only end the query",
        ),
        (
            "count(a == 1) | aggregate(sum) | aggregate(count)",
            (1, 32),
            "nothing can follow",
        ),
        (
            "count(a == 1) | aggregate(sum) && has_existed(a == 2)",
            (1, 32),
            "end of the query after `aggregate(…)`",
        ),
        (
            "count(a == 1) | sum",
            (1, 17),
            "expected `aggregate(…)` after `|`",
        ),
        ("count(a == 1) |", (1, 16), "expected"),
    ];
    for (text, (line, column), message) in cases {
        let err = timeline::parser::parse(text).unwrap_err();
        assert_eq!((err.line, err.column), (*line, *column), "{text}: {err}");
        assert!(err.message.contains(message), "{text}: {err}");
    }
    // A per-key parse refuses an aggregate, pointing at the `|`.
    let err = timeline::parse_query("count(a == 1) | aggregate(sum)").unwrap_err();
    assert_eq!((err.line, err.column), (1, 15));
    assert!(err.message.contains("aggregates across keys"), "{err}");
}

#[test]
fn aggregate_text_accepts_spelling_variants_and_prints_canonically() {
    let q: Query = "tl_count(a == 1) | Aggregate(GroupBy(col(\"the cdn\")), SUM, count)"
        .parse()
        .unwrap();
    assert_eq!(
        q.to_string(),
        r#"count(a == 1) | aggregate(group_by(col("the cdn")), sum, count)"#
    );
    let q: Query = "has_existed(a == 1) | aggregate(count)".parse().unwrap();
    assert_eq!(q.aggregate.as_ref().unwrap().group_by, None);
    assert_eq!(q.to_string().parse::<Query>().unwrap(), q);
}

/// `events` fed in batches of three to a kept aggregate without retention, and to the engine
/// `make` builds with a horizon of `h`.
fn fed_with_and_without_retention(
    query: &Query,
    events: &[Event],
    h: u64,
    make: fn(&Query, EngineOptions) -> Result<AggregateEngine, timeline::ValidationError>,
) -> (AggregateEngine, AggregateEngine) {
    let mut kept = AggregateEngine::new(query, options()).unwrap();
    let retention = Some(h);
    let mut retained = make(
        query,
        EngineOptions {
            retention,
            ..options()
        },
    )
    .unwrap();
    for chunk in events.chunks(3) {
        kept.ingest(chunk).unwrap();
        retained.ingest(chunk).unwrap();
    }
    (kept, retained)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// With a retention horizon, the aggregate answers every instant at or after the oldest
    /// live horizon as without one, for in-order streams (late events within the horizon too).
    #[test]
    fn retention_keeps_answers_after_the_oldest_horizon(
        op in any_query(1),
        (group, functions) in aggregation(),
        mut events in keyed_events(40, 40),
        h in 3u64..15,
    ) {
        events.sort_by_key(|e| e.time);
        let query = query_of(op, group, functions);
        let (mut kept, mut retained) = fed_with_and_without_retention(&query, &events, h, AggregateEngine::new);
        let horizon = retained.horizon().unwrap();
        let (all, recent) = (kept.aggregates(), retained.aggregates());
        let end = horizon_of(&query.op, events.last().unwrap().time);
        for t in horizon..=end {
            prop_assert_eq!(all.at(t), recent.at(t), "query {} at {} (horizon {})\nevents {:?}", query, t, horizon, events);
        }
        let stats = retained.aggregator().stats();
        prop_assert!(stats.1 <= kept.aggregator().stats().1);
    }

    /// With a retention horizon, an engine that leaves the aggregate to its reads answers every
    /// instant from the newest key horizon on (the latest event's) as without one, and refuses
    /// earlier instants.
    #[test]
    fn lazy_retention_answers_from_the_newest_horizon(
        op in prop_oneof![any_query(1), bool_query(1).prop_map(tl_duration_where)],
        (group, functions) in aggregation(),
        mut events in keyed_events(40, 40),
        h in 3u64..15,
    ) {
        events.sort_by_key(|e| e.time);
        let query = query_of(op, group, functions);
        let (mut kept, mut lazy) = fed_with_and_without_retention(&query, &events, h, AggregateEngine::lazy);
        let last = events.last().unwrap().time;
        let horizon = lazy.horizon().unwrap();
        prop_assert_eq!(horizon, last.saturating_sub(h));
        prop_assert_eq!(lazy.last_time(), Some(last));
        let all = kept.aggregates();
        let whole = lazy.aggregates();
        let end = horizon_of(&query.op, last);
        for t in horizon..=end {
            let context = format!("query {query} at {t} (horizon {horizon})\nevents {events:?}");
            prop_assert_eq!(all.at(t), lazy.aggregates_at(t).unwrap().at(t), "{}", context);
            prop_assert_eq!(all.at(t), whole.at(t), "{}", context);
        }
        if horizon > 0 {
            let refused = lazy.aggregates_at(horizon - 1);
            let before = matches!(refused, Err(timeline::QueryError::BeforeHorizon { .. }));
            prop_assert!(before, "{:?}", refused.map(|a| a.groups));
        }
    }
}

/// One shard of a distributed aggregate job: a node per plan node for the shard's keys, and the
/// shard's partial aggregate, wired by deltas as the components wire their workers.
struct ShardNetwork {
    plan: timeline::Plan,
    leaves: Vec<Option<timeline::LeafNode>>,
    derived: Vec<Option<timeline::DerivedNode>>,
    partial: PartialAggregateNode,
    group: Option<usize>,
}

impl ShardNetwork {
    fn new(query: &Query) -> ShardNetwork {
        let qp = QueryPlan::new(query);
        let (mut leaves, mut derived) = (Vec::new(), Vec::new());
        for n in &qp.plan.nodes {
            let leaf = n.op.is_leaf();
            leaves.push(leaf.then(|| timeline::LeafNode::new(&n.op, Some("k"), None).unwrap()));
            derived.push((!leaf).then(|| timeline::DerivedNode::new(&n.op, None).unwrap()));
        }
        ShardNetwork {
            group: qp.aggregate.as_ref().unwrap().group,
            plan: qp.plan,
            leaves,
            derived,
            partial: PartialAggregateNode::new(query, None).unwrap(),
        }
    }

    /// Ingests events and returns the partial's batches for the merge, encoded.
    fn ingest(&mut self, events: &[Event]) -> Vec<String> {
        let mut sent = Vec::new();
        // First in, first out, as in the components and the workers test: a node that reads one
        // input twice makes two deltas, and the older applied after the newer would undo it.
        let mut pending: std::collections::VecDeque<(usize, Vec<timeline::KeyDelta>)> =
            Default::default();
        for (i, leaf) in self.leaves.iter_mut().enumerate() {
            if let Some(leaf) = leaf {
                pending.push_back((i, leaf.ingest(events).unwrap()));
            }
        }
        let root = self.plan.root();
        while let Some((from, deltas)) = pending.pop_front() {
            for (slot, node) in [(0, Some(root)), (1, self.group)] {
                if node == Some(from) {
                    sent.push(self.partial.apply(slot, &deltas).unwrap().encode());
                }
            }
            for &p in &self.plan.nodes[from].parents.clone() {
                for (slot, &input) in self.plan.nodes[p].inputs.clone().iter().enumerate() {
                    if input == from {
                        let out = self.derived[p]
                            .as_mut()
                            .unwrap()
                            .apply(slot, &deltas)
                            .unwrap();
                        pending.push_back((p, out));
                    }
                }
            }
        }
        sent
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Shards of leaf, derived and partial nodes, merged by a merge node through the encoded
    /// partials, agree with the reference.
    #[test]
    fn distributed_aggregate_matches_reference(
        op in any_query(2),
        (group, functions) in aggregation(),
        (events, order) in keyed_events(25, 30).prop_flat_map(|e| { let n = e.len(); (Just(e), shuffled(n)) }),
        batch in 1usize..6,
        shards in 1u32..4,
    ) {
        let query = query_of(op, group, functions);
        let (arrived, want) = arrive(&query, &events, &order);
        let mut network: Vec<ShardNetwork> = (0..shards).map(|_| ShardNetwork::new(&query)).collect();
        let mut merge = MergeAggregateNode::new(&query, shards as usize).unwrap();
        for chunk in arrived.chunks(batch) {
            for (s, shard) in network.iter_mut().enumerate() {
                let mine: Vec<Event> = chunk
                    .iter()
                    .filter(|e| timeline::shard_of(Some(&Value::Int(key_of(e))), shards) == s as u32)
                    .cloned()
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                for packed in shard.ingest(&mine) {
                    merge.apply(s, &PartialBatch::decode(&packed).unwrap()).unwrap();
                }
            }
        }
        check_against(&merge.aggregates(), &want, &format!("query: {query}\n{shards} shards\nevents: {arrived:?}"))?;
        // A merge started from this one's shards, encoded (a reader's next generation), holds
        // the same aggregates.
        let mut next = MergeAggregateNode::new(&query, shards as usize).unwrap();
        next.apply_state(&merge.encode_state()).unwrap();
        let mut fewer = MergeAggregateNode::new(&query, shards as usize + 1).unwrap();
        prop_assert!(fewer.apply_state(&merge.encode_state()).is_err());
        check_against(&next.aggregates(), &want, &format!("taken over: {query}\n{shards} shards"))?;
        // The merge answers per group too.
        let max_time = events.iter().map(|e| e.time).max().unwrap();
        for t in [0, max_time / 2, max_time] {
            let all = merge.at(&GroupSelector::All, t).unwrap();
            for row in &all {
                let one = merge.at(&GroupSelector::One(group_of(row.group.as_ref())), t).unwrap();
                prop_assert_eq!(&one, &vec![row.clone()]);
            }
        }
    }
}

#[test]
fn bad_partials_are_refused() {
    for bad in [
        "",
        "{}",
        r#"{"horizon":0,"groups":[{"group":null,"from":5,"points":[[3,{}]]}]}"#,
        r#"{"horizon":0,"groups":[{"group":null,"from":0,"points":[[3,null],[2,null]]}]}"#,
    ] {
        assert!(PartialBatch::decode(bad).is_err(), "{bad}");
    }
    // The fuzz corpus's seed decodes (so the fuzzer starts from a batch that reaches the merge).
    let seed = include_str!("../../fuzz/corpus/wire/partials-cdn1");
    let batch = PartialBatch::decode(seed).unwrap();
    assert_eq!(batch.groups[0].points.len(), 2);
    let big = "x".repeat(timeline::limits::MAX_PACKED_BYTES + 1);
    assert!(PartialBatch::decode(&big).unwrap_err().contains("limit"));
}
