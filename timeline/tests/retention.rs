//! Retention: memory per key stays flat on an endless stream, and history before the horizon is
//! refused with a clear error.

use timeline::{parse_query, Engine, EngineOptions, Event, QueryError, State, Value};

const CIRR: &str = r#"duration_where(
    has_existed(playerStateChange == "play")
    && !has_existed_within(userAction == "seek", 5)
    && latest_event_to_state(playerStateChange) == "buffer"
    && latest_event_to_state(cdnChange) == "CDN1")"#;

/// A deterministic player stream: states cycle, seeks and CDN switches now and then.
fn event(i: u64) -> Event {
    let states = ["play", "buffer", "pause", "play", "buffer"];
    match i % 7 {
        3 => Event::new(i * 2, [("userAction", Value::from("seek"))]),
        5 => Event::new(
            i * 2,
            [(
                "cdnChange",
                Value::from(if i % 3 == 0 { "CDN1" } else { "CDN2" }),
            )],
        ),
        _ => Event::new(
            i * 2,
            [("playerStateChange", Value::from(states[(i % 5) as usize]))],
        ),
    }
}

fn bytes_after(engine: &mut Engine, from: u64, to: u64) -> usize {
    for chunk in (from..to).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<Event> = chunk.iter().map(|&i| event(i)).collect();
        engine.ingest(&batch).unwrap();
    }
    engine.stats().bytes
}

#[test]
fn memory_per_key_is_flat_once_a_horizon_is_set() {
    let q = parse_query(CIRR).unwrap();
    let mut retained = Engine::new(
        &q,
        EngineOptions {
            key_column: None,
            retention: Some(100),
        },
    )
    .unwrap();
    let at_10k = bytes_after(&mut retained, 0, 10_000);
    let at_100k = bytes_after(&mut retained, 10_000, 100_000);
    assert!(
        at_100k <= at_10k + at_10k / 5,
        "memory grew from {at_10k} to {at_100k} bytes"
    );
    // About 60 events fall inside the horizon; each of the 8 nodes keeps its changes over it.
    assert!(at_100k < 32 * 1024, "{at_100k} bytes for one key");

    // Without a horizon, the same stream keeps all history: the check above can fail.
    let mut full = Engine::new(&q, EngineOptions::default()).unwrap();
    let full_10k = bytes_after(&mut full, 0, 10_000);
    let full_100k = bytes_after(&mut full, 10_000, 100_000);
    assert!(full_100k > 5 * full_10k, "{full_10k} -> {full_100k}");
}

/// `has_existed` true at the horizon stays true whatever arrives after it, so its rows are
/// dropped when history collapses; while it is false they are kept, and it still turns true.
#[test]
fn a_settled_has_existed_keeps_no_rows() {
    let q = parse_query(r#"has_existed(s == "play")"#).unwrap();
    let options = EngineOptions {
        key_column: None,
        retention: Some(10),
    };
    let event = |t: u64, s: &str| Event::new(t, [("s", Value::from(s))]);
    let mut engine = Engine::new(&q, options.clone()).unwrap();
    for t in 5..60 {
        engine.ingest(&[event(t, "play")]).unwrap();
    }
    // Kept, the rows inside the horizon would be 10 or more; dropped at each collapse (every
    // 2 time units here), at most the few since the last one.
    assert!(engine.stats().event_rows <= 3, "{:?}", engine.stats());
    assert!(engine.value_at(None, 59).unwrap().same(&State::bool(true)));

    // Not settled while false: a matching event inside the horizon still counts.
    let mut engine = Engine::new(&q, options).unwrap();
    for t in 0..40 {
        engine.ingest(&[event(t, "pause")]).unwrap();
    }
    assert_eq!(engine.stats().event_rows, 0, "rows that fail are not kept");
    engine.ingest(&[event(35, "play")]).unwrap();
    assert!(engine.value_at(None, 34).unwrap().same(&State::bool(false)));
    assert!(engine.value_at(None, 35).unwrap().same(&State::bool(true)));
}

#[test]
fn history_before_the_horizon_is_refused() {
    let q = parse_query(CIRR).unwrap();
    let mut engine = Engine::new(
        &q,
        EngineOptions {
            key_column: None,
            retention: Some(10),
        },
    )
    .unwrap();
    engine.ingest(&[event(0), event(50)]).unwrap(); // times 0 and 100
    let before = engine.stats();
    let err = engine.ingest(&[event(46), event(44)]).unwrap_err(); // 92 is fine, 88 is too old
    assert_eq!(err.index, 1);
    assert!(
        err.message.contains("before the retention horizon 90"),
        "{err}"
    );
    // Nothing of the refused batch was applied: 92 was not ingested.
    assert_eq!(engine.stats(), before);
    assert_eq!(
        engine.value_at(None, 89).unwrap_err(),
        QueryError::BeforeHorizon {
            time: 89,
            horizon: 90
        }
    );
    assert!(engine.value_at(None, 90).is_ok());
    assert!(engine.range(None, 85, 95).is_err());
}

#[test]
fn events_without_the_key_column_are_refused_whole_batch() {
    let q = parse_query(CIRR).unwrap();
    let mut engine = Engine::new(
        &q,
        EngineOptions {
            key_column: Some("sid".into()),
            retention: None,
        },
    )
    .unwrap();
    let good = Event::new(
        1,
        [
            ("sid", Value::from("s1")),
            ("playerStateChange", Value::from("play")),
        ],
    );
    let err = engine.ingest(&[good, event(1)]).unwrap_err();
    assert!(err.message.contains("no \"sid\" column"), "{err}");
    assert_eq!(engine.stats().keys, 0);
    let nan = Event::new(
        1,
        [("sid", Value::from("s1")), ("x", Value::Float(f64::NAN))],
    );
    assert!(engine.ingest(&[nan]).unwrap_err().message.contains("NaN"));
    assert!(matches!(
        engine.value_at(Some(&"s1".into()), 1),
        Err(QueryError::UnknownKey(_))
    ));
}

/// A windowed existence collapsed with its last counting row inside the window still decides
/// the times after the horizon: a late event makes the tree read the leaf again from there.
#[test]
fn the_last_counting_row_before_the_horizon_is_kept() {
    let q =
        parse_query(r#"has_existed_within(a == 1, 8) && latest_event_to_state(b) == 1"#).unwrap();
    let options = |retention| EngineOptions {
        key_column: None,
        retention,
    };
    let mut retained = Engine::new(&q, options(Some(10))).unwrap();
    let mut full = Engine::new(&q, options(None)).unwrap();
    let first = [
        Event::new(16, [("a", Value::from(1))]),
        Event::new(20, [("a", Value::from(1))]),
        Event::new(21, [("b", Value::from(1))]),
        Event::new(33, [("c", Value::from(0))]),
    ];
    // Late, at the horizon (33 - 10): the same value of b, so the answer must not change.
    let late = [Event::new(24, [("b", Value::from(1))])];
    for engine in [&mut retained, &mut full] {
        engine.ingest(&first).unwrap();
        engine.ingest(&late).unwrap();
    }
    let horizon = retained.horizon(None).unwrap().unwrap();
    assert_eq!(horizon, 23);
    for t in horizon..40 {
        assert_eq!(
            retained.value_at(None, t).unwrap(),
            full.value_at(None, t).unwrap(),
            "at {t}"
        );
    }
    assert_eq!(full.value_at(None, 27).unwrap(), State::bool(true));
}
