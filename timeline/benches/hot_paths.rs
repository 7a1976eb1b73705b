//! Microbenchmarks of the hot paths: event insert (in order and late), delta propagation into
//! a derived node, and point queries.
//!
//! The late-event and delta groups vary the history before the change and the suffix after it
//! separately: the cost follows the changed suffix, not the history (`cargo bench -p timeline`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use timeline::{DerivedNode, Engine, EngineOptions, Event, KeyDelta, LeafNode, TimeLineOp, Value};

const CIRR: &str = r#"duration_where(has_existed(playerStateChange == "play")
    && !has_existed_within(userAction == "seek", 5)
    && latest_event_to_state(playerStateChange) == "buffer"
    && latest_event_to_state(cdnChange) == "CDN1")"#;

/// A player session of `n` events at times 0, 2, 4, …: play/buffer/pause, seeks, CDN switches.
fn session(n: usize) -> Vec<Event> {
    let psc: Arc<str> = "playerStateChange".into();
    let states: [Value; 3] = ["play".into(), "buffer".into(), "pause".into()];
    (0..n)
        .map(|i| {
            let (column, value) = match i % 7 {
                3 => ("userAction".into(), Value::from("seek")),
                5 => ("cdnChange".into(), Value::from(["CDN1", "CDN2"][i / 7 % 2])),
                _ => (psc.clone(), states[(i * 31 / 7) % 3].clone()),
            };
            Event {
                time: 2 * i as u64,
                fields: vec![(column, value)],
            }
        })
        .collect()
}

fn engine_with(history: &[Event]) -> Engine {
    let query: TimeLineOp = CIRR.parse().expect("valid query");
    let mut engine = Engine::new(&query, EngineOptions::default()).expect("valid query");
    engine.ingest(history).expect("valid events");
    engine
}

/// One event at a time appended after a history of 1k to 100k events: the cost stays flat.
fn insert_in_order(c: &mut Criterion) {
    let mut group = c.benchmark_group("insert in order, after history");
    group.throughput(Throughput::Elements(1));
    for history in [1_000, 10_000, 100_000] {
        group.bench_with_input(BenchmarkId::from_parameter(history), &history, |b, &n| {
            let mut engine = engine_with(&session(n));
            let mut t = 2 * n as u64;
            let mut i = 0usize;
            let values: [Value; 2] = ["buffer".into(), "play".into()];
            b.iter(|| {
                let e = Event::new(t, [("playerStateChange", values[i % 2].clone())]);
                engine.ingest(std::slice::from_ref(&e)).expect("valid");
                t += 2;
                i += 1;
            });
        });
    }
    group.finish();
}

/// A late event that changes the value `suffix` events before the end of a history: the cost
/// follows the suffix, and is the same for a 10k and a 100k history.
fn insert_late(c: &mut Criterion) {
    let mut group = c.benchmark_group("late event, history/suffix");
    group.throughput(Throughput::Elements(1));
    for history in [10_000, 100_000] {
        for suffix in [10, 100, 1_000, 10_000] {
            let events = session(history);
            let mut engine = engine_with(&events);
            // Rewrites the `playerStateChange` at an existing late time, alternately to two
            // values: every call is a real change, and the state does not grow.
            let late = events[history - suffix..]
                .iter()
                .find(|e| e.get("playerStateChange").is_some())
                .expect("a state change")
                .time;
            let values: [Value; 2] = ["seek-buffer".into(), "buffer".into()];
            let mut i = 0;
            group.bench_function(format!("{history}/{suffix}"), |b| {
                b.iter(|| {
                    let e = Event::new(late, [("playerStateChange", values[i % 2].clone())]);
                    engine.ingest(std::slice::from_ref(&e)).expect("valid");
                    i += 1;
                })
            });
        }
    }
    group.finish();
}

/// A derived node (`duration_where`) receiving a delta that changes its input `suffix` change
/// points before the end of a 100k-point history: the cost follows the suffix.
fn delta_propagation(c: &mut Criterion) {
    let mut group = c.benchmark_group("delta into a derived node, history/suffix");
    let cmp_op: TimeLineOp = r#"latest_event_to_state(x) == "on""#.parse().expect("valid");
    let dw_op = timeline::op::tl_duration_where(cmp_op.clone());
    let history = 100_000;
    // A leaf flipping on/off at every event, the comparison above it, and the node measured.
    let mut leaf = LeafNode::new(cmp_op.children()[0], None, None).expect("leaf");
    let mut cmp = DerivedNode::new(&cmp_op, None).expect("derived");
    let mut node = DerivedNode::new(&dw_op, None).expect("derived");
    let events: Vec<Event> = (0..history)
        .map(|i| Event::new(2 * i as u64, [("x", Value::from(["on", "off"][i % 2]))]))
        .collect();
    let deltas = cmp
        .apply(0, &leaf.ingest(&events).expect("valid"))
        .expect("ok");
    node.apply(0, &deltas).expect("ok");
    for suffix in [10, 100, 1_000, 10_000] {
        // Flip one instant of the input, alternately: the delta carries the suffix from there.
        let at = 2 * (history - suffix) as u64;
        let deltas: Vec<Vec<KeyDelta>> = ["off", "on"]
            .iter()
            .map(|v| {
                let e = Event::new(at, [("x", Value::from(*v))]);
                cmp.apply(0, &leaf.ingest(&[e]).expect("valid"))
                    .expect("ok")
            })
            .collect();
        let mut i = 0;
        group.bench_function(format!("{history}/{suffix}"), |b| {
            b.iter(|| {
                black_box(node.apply(0, &deltas[i % 2]).expect("ok"));
                i += 1;
            })
        });
    }
    group.finish();
}

/// The value of one key at a time: a binary search over its change points.
fn point_query(c: &mut Criterion) {
    let mut group = c.benchmark_group("point query, history");
    for history in [1_000, 100_000] {
        let engine = engine_with(&session(history));
        let mut t = 0u64;
        group.bench_function(history.to_string(), |b| {
            b.iter(|| {
                t = (t + 7_919) % (2 * history as u64);
                black_box(engine.value_at(None, t).expect("known key"))
            })
        });
    }
    group.finish();
}

/// An aggregate (one group, `sum` and `max` of each key's buffering time) over 100 to 10 000
/// keys of 200 events each; one key's state changes 20 events before its end, alternately to
/// two values (one of them its own, so half the calls change nothing).
/// The delta costs that key's changed suffix, whatever the number of keys in the group; the
/// read after it (the group's step function brought up to date) costs the group's entries after
/// the late time, which grow with the keys active then.
fn aggregate_late_event(c: &mut Criterion) {
    let query: timeline::aggregate::Query =
        r#"duration_where(latest_event_to_state(s) == "buffer") | aggregate(sum, max)"#
            .parse()
            .expect("valid");
    let per_key = 200usize;
    for keys in [100usize, 1_000, 10_000] {
        let options = EngineOptions {
            key_column: Some("k".into()),
            retention: None,
        };
        let mut engine = timeline::aggregate::AggregateEngine::new(&query, options).expect("ok");
        let states: [Value; 3] = ["play".into(), "buffer".into(), "pause".into()];
        let events: Vec<Event> = (0..per_key)
            .flat_map(|i| {
                let states = &states;
                // Each key at times of its own, so that no two keys' pieces coincide.
                (0..keys).map(move |k| {
                    Event::new(
                        (i * 20_000 + k) as u64,
                        [
                            ("k", Value::Int(k as i64)),
                            ("s", states[(i + k) % 3].clone()),
                        ],
                    )
                })
            })
            .collect();
        for chunk in events.chunks(65_536) {
            engine.ingest(chunk).expect("valid");
        }
        engine.refresh();
        let late = ((per_key - 20) * 20_000 + 7) as u64;
        let values: [Value; 2] = ["buffer".into(), "play".into()];
        let mut i = 0;
        let mut delta = c.benchmark_group("aggregate: a late event at one key, keys in the group");
        delta.bench_function(keys.to_string(), |b| {
            b.iter(|| {
                let e = Event::new(late, [("k", Value::Int(7)), ("s", values[i % 2].clone())]);
                engine.ingest(std::slice::from_ref(&e)).expect("valid");
                i += 1;
            })
        });
        delta.finish();
        let mut read =
            c.benchmark_group("aggregate: the late event and the read after it, keys in the group");
        read.bench_function(keys.to_string(), |b| {
            b.iter(|| {
                let e = Event::new(late, [("k", Value::Int(7)), ("s", values[i % 2].clone())]);
                engine.ingest(std::slice::from_ref(&e)).expect("valid");
                engine.refresh();
                i += 1;
            })
        });
        read.finish();
    }
}

criterion_group!(
    benches,
    insert_in_order,
    insert_late,
    delta_propagation,
    point_query,
    aggregate_late_event
);
criterion_main!(benches);
