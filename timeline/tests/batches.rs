//! The engine applies a large batch a stretch of events at a time (16 384; see `STRETCH` in
//! `engine.rs`), recomputing the keys each stretch changed before the next: a batch several
//! stretches long, with keys spread over all of them and late events, must give exactly what
//! the same events give in small batches.

use timeline::aggregate::AggregateEngine;
use timeline::{parse_query, Engine, EngineOptions, Event, Value};

const QUERIES: [&str; 3] = [
    r#"duration_where(has_existed(playerStateChange == "play")
        && !has_existed_within(userAction == "seek", 5)
        && latest_event_to_state(playerStateChange) == "buffer"
        && latest_event_to_state(cdnChange) == "CDN1")"#,
    // Operators that read the key's origin, and a comparison of a growing duration.
    r#"duration_in_cur_state(latest_event_to_state(playerStateChange)) >= 7
        || duration_where(latest_event_to_state(cdnChange) == "CDN2") > 20"#,
    r#"count_within(userAction == "seek", 30) >= 2 && !has_existed(playerStateChange == "stop")"#,
];

/// A seeded stream of 60 000 events (four stretches) over 11 keys, each key's times rising by
/// 1-3 with one event in eight late by up to 40; with `late_origin`, one more key whose first
/// event (by time) arrives last, moving its origin in the batch's last stretch.
fn stream(late_origin: bool) -> Vec<Event> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let states = ["play", "buffer", "pause", "play", "stop"];
    let mut clocks = [100u64; 11];
    let mut events = Vec::new();
    for _ in 0..60_000 {
        let k = next(11) as usize;
        clocks[k] += 1 + next(3);
        let time = if next(8) == 0 {
            clocks[k] - next(40)
        } else {
            clocks[k]
        };
        let (column, value) = match next(10) {
            0 => ("userAction", "seek"),
            1 => ("cdnChange", if next(2) == 0 { "CDN1" } else { "CDN2" }),
            2 => ("heartbeat", "1"),
            _ => ("playerStateChange", states[next(5) as usize]),
        };
        events.push(Event::new(
            time,
            [
                ("session", Value::Int(k as i64)),
                (column, Value::from(value)),
            ],
        ));
    }
    if late_origin {
        for t in [500u64, 900, 20] {
            events.push(Event::new(
                t,
                [
                    ("session", Value::Int(99)),
                    ("playerStateChange", Value::from("buffer")),
                ],
            ));
        }
    }
    events
}

fn options(retention: Option<u64>) -> EngineOptions {
    EngineOptions {
        key_column: Some("session".into()),
        retention,
    }
}

fn fed(query: &str, retention: Option<u64>, events: &[Event], batch: usize) -> Engine {
    let mut engine = Engine::new(&parse_query(query).unwrap(), options(retention)).unwrap();
    for chunk in events.chunks(batch) {
        engine.ingest(chunk).unwrap();
    }
    engine
}

#[test]
fn a_batch_of_many_stretches_gives_what_small_batches_give() {
    let events = stream(true);
    for query in QUERIES {
        let whole = fed(query, None, &events, events.len());
        let small = fed(query, None, &events, 5);
        assert_eq!(whole.keys(), small.keys());
        assert_eq!(whole.keys().len(), 12);
        for key in whole.keys() {
            assert_eq!(
                whole.timeline(key).unwrap(),
                small.timeline(key).unwrap(),
                "{query}: key {key:?}"
            );
            assert_eq!(whole.origin(key), small.origin(key));
        }
    }
}

#[test]
fn with_retention_too() {
    // No event is late by more than 40: all are taken under a horizon of 60.
    let events = stream(false);
    for query in QUERIES {
        let whole = fed(query, Some(60), &events, events.len());
        let small = fed(query, Some(60), &events, 5);
        for key in whole.keys() {
            let last = whole.last_time(key).unwrap();
            let horizon = whole.horizon(key).unwrap().unwrap();
            assert_eq!(small.horizon(key).unwrap(), Some(horizon));
            assert_eq!(
                whole.range(key, horizon, last + 1).unwrap(),
                small.range(key, horizon, last + 1).unwrap(),
                "{query}: key {key:?}"
            );
        }
    }
}

#[test]
fn an_aggregate_sees_each_key_once_per_batch_with_all_its_events() {
    let events = stream(true);
    let query: timeline::aggregate::Query = format!(
        "{} | aggregate(group_by(cdnChange), count, sum, max)",
        QUERIES[0]
    )
    .parse()
    .unwrap();
    let aggregate = |batch: usize| {
        let mut engine = AggregateEngine::new(&query, options(None)).unwrap();
        for chunk in events.chunks(batch) {
            engine.ingest(chunk).unwrap();
        }
        format!("{:?}", engine.aggregates())
    };
    assert_eq!(aggregate(events.len()), aggregate(7));
}
