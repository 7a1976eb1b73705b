//! Shared by the component tests: a fresh system, test data, and the library as the oracle.
#![allow(dead_code)]

use golem_emulator::{components_dir, TimelineSystem};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use timeline::{Engine, EngineOptions, Event, TimeLineOp, Value};

/// A new log directory, empty.
pub fn fresh_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("golem-emulator-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The four components on a fresh emulated Golem.
pub fn system(name: &str) -> (TimelineSystem, PathBuf) {
    let dir = fresh_dir(name);
    (
        TimelineSystem::start(&components_dir(), &dir).expect("components load"),
        dir,
    )
}

pub const CIRR: &str = r#"duration_where(
    has_existed(playerStateChange == "play")
    && !has_existed_within(userAction == "seek", 5)
    && latest_event_to_state(playerStateChange) == "buffer"
    && latest_event_to_state(cdnChange) == "CDN1")"#;

/// Player events: the SPEC's worked example (player `s1`) and another player, `s2`.
pub fn player_events() -> Vec<Event> {
    let e = |t: u64, sid: &str, col: &str, v: &str| {
        Event::new(t, [("sessionId", Value::from(sid)), (col, Value::from(v))])
    };
    let p = "playerStateChange";
    vec![
        e(1, "s1", p, "init"),
        e(2, "s1", "cdnChange", "CDN1"),
        e(4, "s1", p, "buffer"),
        e(5, "s1", p, "play"),
        e(6, "s1", p, "buffer"),
        e(7, "s1", "userAction", "seek"),
        e(9, "s1", p, "play"),
        e(10, "s1", p, "pause"),
        e(11, "s1", "cdnChange", "CDN2"),
        e(13, "s1", p, "buffer"),
        e(14, "s1", p, "play"),
        e(0, "s2", p, "init"),
        e(0, "s2", "cdnChange", "CDN1"),
        e(3, "s2", p, "play"),
        e(20, "s2", p, "buffer"),
        e(32, "s2", p, "play"),
        e(40, "s2", "userAction", "seek"),
        e(41, "s2", p, "buffer"),
        e(44, "s2", p, "play"),
    ]
}

/// The library's batch evaluation: the oracle.
pub fn oracle(query: &TimeLineOp, key: Option<&str>, events: &[Event]) -> Engine {
    let mut engine = Engine::new(
        query,
        EngineOptions {
            key_column: key.map(String::from),
            retention: None,
        },
    )
    .unwrap();
    engine.ingest(events).unwrap();
    engine
}

/// Checks the system's result against the oracle for every key, at every instant up to `end`,
/// and as one range.
pub fn assert_same_results(sys: &TimelineSystem, job: &str, oracle: &Engine, end: u64) {
    for key in oracle.keys() {
        let want = oracle.range(key, 0, end).unwrap();
        let got = sys.result_range(job, None, key, 0, end).unwrap();
        assert_eq!(got, want, "job {job}, key {key:?}");
        for t in [0, end / 3, end / 2, end - 1] {
            let got = sys.result(job, None, key, t).unwrap();
            let want = oracle.value_at(key, t).unwrap();
            assert!(
                got.same(&want),
                "job {job}, key {key:?}, t {t}: {got:?} vs {want:?}"
            );
        }
    }
}
