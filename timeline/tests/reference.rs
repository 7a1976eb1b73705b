//! The engine against the brute-force reference evaluator, for every operator and for random
//! composed queries, under random arrival orders and batchings.

mod common;

use common::*;
use proptest::prelude::*;
use timeline::op::*;
use timeline::{Engine, EngineOptions, Event, State, Value};

/// `events`, the `i`th given the key (column `session`) `keys[i]`; events beyond `keys` are
/// left out.
fn with_sessions(events: &[Event], keys: &[u8]) -> Vec<Event> {
    events
        .iter()
        .zip(keys)
        .map(|(e, k)| {
            let mut e = e.clone();
            e.fields.push(("session".into(), Value::Int(*k as i64)));
            e
        })
        .collect()
}

/// Ingests `events` in the order `order`, in batches whose sizes cycle through `batch_sizes`.
fn run(query: &TimeLineOp, events: &[Event], order: &[usize], batch_sizes: &[usize]) -> Engine {
    let mut engine = Engine::new(query, EngineOptions::default()).expect("valid query");
    let arrived: Vec<Event> = order.iter().map(|&i| events[i].clone()).collect();
    let mut rest = &arrived[..];
    let mut k = 0;
    while !rest.is_empty() {
        let n = batch_sizes[k % batch_sizes.len()].clamp(1, rest.len());
        engine.ingest(&rest[..n]).expect("valid events");
        rest = &rest[n..];
        k += 1;
    }
    engine
}

/// The engine, fed in a random order and random batches, agrees with the reference at every
/// instant, and with a one-batch (batch evaluator) run point for point.
fn check(
    query: &TimeLineOp,
    events: &[Event],
    order: &[usize],
    batch_sizes: &[usize],
) -> Result<(), TestCaseError> {
    let arrived: Vec<&Event> = order.iter().map(|&i| &events[i]).collect();
    let rows = Rows::new(arrived.iter().copied());
    let end = horizon_of(query, rows.max_time());
    let reference = rows.eval(query, end);
    let incremental = run(query, events, order, batch_sizes);
    let batch = run(query, events, order, &[usize::MAX]);
    if events.is_empty() {
        prop_assert!(incremental.timeline(None).is_err());
        return Ok(());
    }
    let context = format!("query: {query}\nevents (arrival order): {arrived:?}");
    let plan = incremental.plan();
    for (i, node) in plan.nodes.iter().enumerate() {
        let node_ref = rows.eval(&node.op, end);
        let tl = incremental.node_timeline(None, i).unwrap();
        assert_matches_reference(&tl, &node_ref, &format!("{context}\nnode: {}", node.op))?;
        prop_assert_eq!(
            tl,
            batch.node_timeline(None, i).unwrap(),
            "incremental != batch for {}",
            node.op
        );
    }
    assert_matches_reference(incremental.timeline(None).unwrap(), &reference, &context)
}

macro_rules! operator_properties {
    ($($name:ident: $query:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]
            $(
                #[test]
                fn $name(
                    query in $query,
                    (events, order) in events(30, 25).prop_flat_map(|e| { let n = e.len(); (Just(e), shuffled(n)) }),
                    batch_sizes in prop::collection::vec(1usize..5, 1..4),
                ) {
                    check(&query, &events, &order, &batch_sizes)?;
                }
            )*
        }
    };
}

operator_properties! {
    latest_event_to_state_matches_reference: column().prop_map(|c| tl_latest_event_to_state(col(c)));
    has_existed_matches_reference: predicate().prop_map(tl_has_existed);
    has_existed_within_matches_reference: (predicate(), window()).prop_map(|(p, d)| tl_has_existed_within(p, d));
    count_matches_reference: predicate().prop_map(tl_count);
    count_within_matches_reference: (predicate(), window()).prop_map(|(p, d)| tl_count_within(p, d));
    distinct_within_matches_reference: (column(), window()).prop_map(|(c, d)| tl_distinct_within(col(c), d));
    comparison_matches_reference: (leaf(), cmp_op(), constant())
        .prop_filter_map("well-typed", |(x, op, c)| { let q = x.compare(op, c); q.validate().ok().map(|_| q) });
    comparison_over_durations_matches_reference: (bool_query(0), cmp_op(), 0i64..12, any::<bool>())
        .prop_map(|(b, op, c, half)| tl_duration_where(b).compare(op, if half { Value::Float(c as f64 + 0.5) } else { Value::Int(c) }));
    comparison_over_cur_state_matches_reference: (leaf(), cmp_op(), 0i64..12)
        .prop_map(|(x, op, c)| tl_duration_in_cur_state(x).compare(op, Value::Int(c)));
    and_or_not_match_reference: (bool_query(0), bool_query(0), 0..3u8).prop_map(|(a, b, k)| match k {
        0 => a.and(b), 1 => a.or(b), _ => a.not() });
    duration_where_matches_reference: bool_query(1).prop_map(tl_duration_where);
    duration_in_cur_state_matches_reference: any_query(1).prop_map(tl_duration_in_cur_state);
    composed_queries_match_reference: any_query(3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Several keys are evaluated independently: each key's result equals a run on its events only.
    #[test]
    fn keys_are_independent(
        query in any_query(2),
        events in events(30, 30),
        keys in prop::collection::vec(0u8..3, 30),
    ) {
        let keyed = with_sessions(&events, &keys);
        let mut engine = Engine::new(&query, EngineOptions { key_column: Some("session".into()), retention: None }).unwrap();
        engine.ingest(&keyed).unwrap();
        let got_keys: Vec<_> = engine.keys().into_iter().map(|k| k.cloned()).collect();
        let mut want_keys: Vec<i64> = keys[..keyed.len()].iter().map(|k| *k as i64).collect();
        want_keys.sort();
        want_keys.dedup();
        prop_assert_eq!(got_keys, want_keys.iter().map(|k| Some(Value::Int(*k))).collect::<Vec<_>>());
        for k in want_keys {
            let mine: Vec<&Event> = keyed.iter().filter(|e| e.get("session") == Some(&Value::Int(k))).collect();
            let rows = Rows::new(mine.iter().copied());
            let reference = rows.eval(&query, horizon_of(&query, rows.max_time()));
            assert_matches_reference(engine.timeline(Some(&Value::Int(k))).unwrap(), &reference, &format!("{query} key {k}"))?;
        }
    }

    /// A key's final answer (`--at end`): its last event time is the latest of its events
    /// whatever order they arrived in, and the value there is the reference's.
    #[test]
    fn each_key_answers_at_its_own_last_event(
        query in any_query(2),
        events in events(30, 30),
        keys in prop::collection::vec(0u8..3, 30),
        seed in any::<u64>(),
    ) {
        let mut keyed = with_sessions(&events, &keys);
        // Late arrivals: a seeded rotation and reversal of the stream.
        if !keyed.is_empty() {
            let at = (seed % keyed.len() as u64) as usize;
            keyed.rotate_left(at);
            if seed % 2 == 1 {
                keyed.reverse();
            }
        }
        let mut engine = Engine::new(&query, EngineOptions { key_column: Some("session".into()), retention: None }).unwrap();
        engine.ingest(&keyed).unwrap();
        for key in engine.keys() {
            let mine: Vec<&Event> = keyed.iter().filter(|e| e.get("session") == key).collect();
            let rows = Rows::new(mine.iter().copied());
            let last = engine.last_time(key).unwrap();
            prop_assert_eq!(last, mine.iter().map(|e| e.time).max().unwrap());
            let reference = rows.eval(&query, horizon_of(&query, rows.max_time()));
            let got = engine.value_at(key, last).unwrap();
            prop_assert!(reference[last as usize].matches_state(&got), "{} key {:?} at {}: {:?} vs {:?}", query, key, last, got, reference[last as usize]);
        }
    }

    /// Many keys with a few events each in every batch (applied a key at a time), many of the
    /// events setting only a column no query reads (applied only to their key's first and last
    /// times), arriving out of order: each key's timeline, first and last times are those of a
    /// run on its events alone.
    #[test]
    fn keys_with_idle_events_in_many_batches_are_independent(
        query in any_query(2),
        events in events(40, 60),
        keys in prop::collection::vec((0u8..6, any::<bool>()), 60),
        seed in any::<u64>(),
        batch in 12usize..40,
    ) {
        let mut keyed: Vec<Event> = with_sessions(&events, &keys.iter().map(|k| k.0).collect::<Vec<_>>())
            .into_iter()
            .zip(&keys)
            .map(|(mut e, &(k, idle))| {
                if idle {
                    e.fields = vec![("heartbeat".into(), Value::Int(1)), ("session".into(), Value::Int(k as i64))];
                }
                e
            })
            .collect();
        if !keyed.is_empty() {
            let at = (seed % keyed.len() as u64) as usize;
            keyed.rotate_left(at);
        }
        let mut engine = Engine::new(&query, EngineOptions { key_column: Some("session".into()), retention: None }).unwrap();
        for chunk in keyed.chunks(batch) {
            engine.ingest(chunk).unwrap();
        }
        for key in engine.keys() {
            let mine: Vec<&Event> = keyed.iter().filter(|e| e.get("session") == key).collect();
            let times = mine.iter().map(|e| e.time);
            prop_assert_eq!(engine.origin(key).unwrap(), times.clone().min().unwrap());
            prop_assert_eq!(engine.last_time(key).unwrap(), times.max().unwrap());
            let rows = Rows::new(mine.iter().copied());
            let reference = rows.eval(&query, horizon_of(&query, rows.max_time()));
            assert_matches_reference(engine.timeline(key).unwrap(), &reference, &format!("{query} key {key:?}"))?;
        }
    }

    /// With a retention horizon, answers at and after the horizon are those of an engine without
    /// one, for events arriving late but within the horizon.
    #[test]
    fn retention_keeps_answers_after_the_horizon(
        query in any_query(2),
        events in events(200, 60),
        h in 5u64..40,
        seed in any::<u64>(),
    ) {
        // Arrival: in time order, each event possibly delayed by less than the horizon allows.
        let mut arrival: Vec<(u64, usize)> = events.iter().enumerate()
            .map(|(i, e)| (e.time + (seed.wrapping_mul(i as u64 + 7) >> 40) % h.max(1), i)).collect();
        arrival.sort();
        let mut retained = Engine::new(&query, EngineOptions { key_column: None, retention: Some(h) }).unwrap();
        let mut full = Engine::new(&query, EngineOptions::default()).unwrap();
        for (_, i) in arrival {
            let e = &events[i];
            match retained.ingest(std::slice::from_ref(e)) {
                Ok(()) => full.ingest(std::slice::from_ref(e)).unwrap(),
                Err(err) => prop_assert!(err.message.contains("retention horizon"), "{}", err),
            }
        }
        if events.is_empty() { return Ok(()); }
        let horizon = retained.horizon(None).unwrap().unwrap();
        let end = horizon_of(&query, 200);
        for t in horizon..end {
            let (a, b) = (retained.value_at(None, t).unwrap(), full.value_at(None, t).unwrap());
            prop_assert!(a.same(&b), "{} at {}: retained {:?}, full {:?}", query, t, a, b);
        }
        if horizon > 0 {
            prop_assert!(retained.value_at(None, horizon - 1).is_err());
        }
    }

    /// A reader that needs answers up to `cut` only takes the events up to it, and lists the
    /// keys of the later ones with `add_keys`: every key of a full run is listed, and answers
    /// as in the full run at every time up to `cut`, whatever order and batches they came in.
    #[test]
    fn keys_added_without_events_answer_as_a_full_run_before_them(
        query in any_query(2),
        events in events(30, 30),
        keys in prop::collection::vec(0u8..4, 30),
        cut in 0u64..32,
        seed in any::<u64>(),
        batch in 1usize..8,
    ) {
        let mut keyed = with_sessions(&events, &keys);
        if !keyed.is_empty() {
            let at = (seed % keyed.len() as u64) as usize;
            keyed.rotate_left(at);
        }
        let options = EngineOptions { key_column: Some("session".into()), retention: None };
        let mut full = Engine::new(&query, options.clone()).unwrap();
        full.ingest(&keyed).unwrap();
        let mut until = Engine::new(&query, options).unwrap();
        for chunk in keyed.chunks(batch) {
            until.add_keys(chunk).unwrap();
            let kept: Vec<Event> = chunk.iter().filter(|e| e.time <= cut).cloned().collect();
            until.ingest(&kept).unwrap();
        }
        prop_assert_eq!(until.keys(), full.keys());
        for key in full.keys() {
            for t in 0..=cut {
                let (a, b) = (until.value_at(key, t).unwrap(), full.value_at(key, t).unwrap());
                prop_assert!(a.same(&b), "{} key {:?} at {}: cut {:?}, full {:?}", query, key, t, a, b);
            }
        }
    }
}

/// `add_keys` checks events as `ingest` does, and changes nothing when one is refused.
#[test]
fn add_keys_refuses_what_ingest_refuses_and_keeps_nothing_of_it() {
    let query: TimeLineOp = "latest_event_to_state(x)".parse().unwrap();
    let options = EngineOptions {
        key_column: Some("session".into()),
        retention: None,
    };
    let mut engine = Engine::new(&query, options).unwrap();
    let good = Event::new(5, vec![("session", Value::Int(1)), ("x", Value::Int(3))]);
    let no_key = Event::new(6, vec![("x", Value::Int(4))]);
    let nan = Event::new(
        7,
        vec![("session", Value::Int(2)), ("x", Value::Float(f64::NAN))],
    );
    for bad in [no_key, nan] {
        let err = engine.add_keys(&[good.clone(), bad.clone()]).unwrap_err();
        let refused = engine.ingest(&[good.clone(), bad]).unwrap_err();
        assert_eq!((err.index, &err.message), (refused.index, &refused.message));
        assert!(engine.keys().is_empty(), "a refused batch lists no key");
    }
    engine.add_keys(std::slice::from_ref(&good)).unwrap();
    assert_eq!(engine.keys(), vec![Some(&Value::Int(1))]);
    // Listed, but without events: its initial value, at every time, no origin yet.
    let key = Some(&Value::Int(1));
    assert_eq!(engine.value_at(key, 5).unwrap(), State::Unknown);
    assert_eq!(
        (engine.origin(key).unwrap(), engine.last_time(key).unwrap()),
        (u64::MAX, 0)
    );
    // Its events, when they come, are taken as a new key's.
    engine.ingest(std::slice::from_ref(&good)).unwrap();
    assert_eq!(
        (engine.origin(key).unwrap(), engine.last_time(key).unwrap()),
        (5, 5)
    );
    assert_eq!(
        engine.value_at(key, 5).unwrap(),
        State::Value(Value::Int(3))
    );
}

#[test]
fn spec_worked_example_cirr() {
    let query: TimeLineOp = r#"duration_where(
        has_existed(playerStateChange == "play")
        && !has_existed_within(userAction == "seek", 5)
        && latest_event_to_state(playerStateChange) == "buffer"
        && latest_event_to_state(cdnChange) == "CDN1"
    )"#
    .parse()
    .unwrap();
    let psc = |t, v: &str| Event::new(t, [("playerStateChange", Value::from(v))]);
    let events = vec![
        psc(1, "init"),
        Event::new(2, [("cdnChange", "CDN1".into())]),
        psc(4, "buffer"),
        psc(5, "play"),
        psc(6, "buffer"),
        Event::new(7, [("userAction", "seek".into())]),
        psc(9, "play"),
        psc(10, "pause"),
        Event::new(11, [("cdnChange", "CDN2".into())]),
        psc(13, "buffer"),
        psc(14, "play"),
    ];
    let expected = [(6, State::Growing(0)), (7, State::Duration(1))];
    // In order, reversed, and as one batch: the same canonical timeline.
    let mut orders: Vec<Vec<Event>> = vec![events.clone(), events.iter().rev().cloned().collect()];
    orders.push(events.clone());
    for (k, order) in orders.iter().enumerate() {
        let mut engine = Engine::new(&query, EngineOptions::default()).unwrap();
        if k == 2 {
            engine.ingest(order).unwrap();
        } else {
            for e in order {
                engine.ingest(std::slice::from_ref(e)).unwrap();
            }
        }
        let tl = engine.timeline(None).unwrap();
        assert_eq!(tl.points(), &expected, "order {k}");
        for (t, want) in [(0, 0), (5, 0), (6, 0), (7, 1), (100, 1)] {
            assert_eq!(
                engine.value_at(None, t).unwrap().instant_value(),
                Some(Value::Int(want)),
                "t={t}"
            );
        }
    }
}

/// A counting leaf keeps no row for an event that fails its predicate, yet a later value at the
/// same time still replaces the earlier one, and a re-delivered event changes nothing, not even
/// the mismatch count.
#[test]
fn values_at_the_same_time_replace_each_other_in_counting_leaves() {
    let query: TimeLineOp = "count(x == 1)".parse().unwrap();
    let mut engine = Engine::new(&query, EngineOptions::default()).unwrap();
    let x = |t, v: Value| Event::new(t, [("x", v)]);
    let count_at = |e: &Engine, t| e.value_at(None, t).unwrap().instant_value();
    engine.ingest(&[x(5, 2.into())]).unwrap();
    assert_eq!(count_at(&engine, 10), Some(Value::Int(0)));
    assert_eq!(engine.stats().event_rows, 0, "a failing row is not kept");
    engine.ingest(&[x(5, 1.into())]).unwrap();
    assert_eq!(count_at(&engine, 10), Some(Value::Int(1)));
    engine.ingest(&[x(5, 2.into())]).unwrap();
    assert_eq!(count_at(&engine, 10), Some(Value::Int(0)));
    engine
        .ingest(&[x(5, 1.0.into()), x(7, "a".into())])
        .unwrap();
    assert_eq!(count_at(&engine, 10), Some(Value::Int(1)));
    assert_eq!(engine.stats().mismatches, 1);
    engine
        .ingest(&[x(7, "a".into()), x(5, 1.0.into())])
        .unwrap();
    assert_eq!(
        engine.stats().mismatches,
        1,
        "a re-delivered event is not counted again"
    );
    assert_eq!(count_at(&engine, 10), Some(Value::Int(1)));
}

/// `distinct_within` keeps its counts in a short list while the values in its window are few
/// and in a hash map past 16: a window that holds up to 25 values (some twice), growing and
/// emptying, in order and shuffled, agrees with the reference.
#[test]
fn distinct_within_many_values_matches_reference() {
    let events: Vec<Event> = (0..120u64)
        .map(|i| {
            let v = Value::from(format!("v{}", (i * 7) % 25));
            // A pause after the 80th event lets the window empty and fill again.
            Event::new(i + if i >= 80 { 100 } else { 0 }, [("x", v)])
        })
        .collect();
    let query = tl_distinct_within(col("x"), 30).compare(CmpOp::Ge, Value::Int(20));
    let in_order: Vec<usize> = (0..events.len()).collect();
    let mut shuffled = in_order.clone();
    shuffled.reverse();
    shuffled.rotate_left(37);
    for order in [in_order, shuffled] {
        check(&query, &events, &order, &[1, 7, 3]).unwrap();
    }
}
