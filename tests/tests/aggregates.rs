//! Aggregate jobs (`Q | aggregate(…)`) on the components: partial workers per shard and a merge
//! worker, against the library, with shards, crashes and shared workers.

mod common;

use common::*;
use golem_emulator::TimelineSystem;
use proptest::prelude::*;
use timeline::aggregate::{group_of, AggregateEngine, Aggregates, GroupSelector, Query};
use timeline::{EngineOptions, Event, Value};

const BUFFERING: &str = r#"latest_event_to_state(playerStateChange) == "buffer" | aggregate(group_by(cdnChange), count, sum)"#;

fn library(query: &str, events: &[Event]) -> Aggregates {
    let q: Query = query.parse().unwrap();
    let options = EngineOptions {
        key_column: Some("sessionId".into()),
        retention: None,
    };
    let mut engine = AggregateEngine::new(&q, options).unwrap();
    engine.ingest(events).unwrap();
    engine.aggregates()
}

/// The job's aggregate equals the library's at every instant up to `end` and over `[0, end)`.
fn assert_same_aggregates(sys: &TimelineSystem, job: &str, want: &Aggregates, end: u64) {
    for t in 0..=end {
        let got = sys.aggregate_result(job, &GroupSelector::All, t).unwrap();
        assert_eq!(got, want.at(t), "job {job} at {t}");
    }
    let got = sys
        .aggregate_range(job, &GroupSelector::All, 0, end)
        .unwrap();
    let mut expected = Vec::new();
    for (g, points) in &want.groups {
        for &f in &want.functions {
            for s in timeline::aggregate::segments(points, f, 0, Some(end)) {
                expected.push((g.value(), f, s));
            }
        }
    }
    assert_eq!(got, expected, "job {job}: segments");
}

#[test]
fn aggregate_job_end_to_end() {
    let (sys, _dir) = system("aggregate");
    let plan = sys
        .run("buffering", BUFFERING, Some("sessionId"), 1, None)
        .unwrap();
    let kinds: Vec<&str> = plan.nodes.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "partial").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(plan.result().kind, "aggregate");
    assert_eq!(plan.result().workers.len(), 1);
    let events = player_events();
    sys.ingest("buffering", &events).unwrap();
    let want = library(BUFFERING, &events);
    assert_same_aggregates(&sys, "buffering", &want, 50);
    // Sessions buffering on CDN1 at 4: s1 (s2 plays).
    let cdn1 = GroupSelector::One(group_of(Some(&Value::from("CDN1"))));
    let rows = sys.aggregate_result("buffering", &cdn1, 4).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].values[1].1.map(|n| n.as_f64()), Some(1.0));
    // Many times in one invocation: the rows of each time in turn, as `aggregate-at` gives them.
    let times = [0, 4, 10, 25, 52, 100];
    let before = sys.golem.counters().invocations;
    let batched = sys
        .aggregate_results("buffering", &GroupSelector::All, &times)
        .unwrap();
    assert_eq!(
        sys.golem.counters().invocations,
        before + 1,
        "one invocation"
    );
    let one_by_one: Vec<_> = times
        .iter()
        .flat_map(|t| {
            sys.aggregate_result("buffering", &GroupSelector::All, *t)
                .unwrap()
        })
        .collect();
    assert_eq!(batched, one_by_one);
    assert!(batched.len() >= times.len(), "{batched:?}");
    let many: Vec<u64> = (0..10_001).collect();
    let err = sys
        .aggregate_results("buffering", &GroupSelector::All, &many)
        .unwrap_err();
    assert!(err.to_string().contains("more than 10000 answers"), "{err}");
    // A group with no member at that time gives no row.
    let cdn2 = GroupSelector::One(group_of(Some(&Value::from("CDN2"))));
    assert!(sys
        .aggregate_result("buffering", &cdn2, 4)
        .unwrap()
        .is_empty());
    // Per-key calls on an aggregate job say what to use instead; per-key nodes still answer.
    let err = sys
        .result("buffering", None, Some(&Value::from("s1")), 4)
        .unwrap_err();
    assert!(err.to_string().contains("aggregate-at"), "{err}");
    let per_key = plan.nodes.iter().find(|n| n.kind == "derived").unwrap();
    assert!(sys
        .result(
            "buffering",
            Some(&per_key.node_id),
            Some(&Value::from("s1")),
            4
        )
        .is_ok());
    // Late events correct the aggregate like any delta.
    let late = vec![Event::new(
        12,
        [
            ("sessionId", Value::from("s1")),
            ("playerStateChange", Value::from("buffer")),
        ],
    )];
    sys.ingest("buffering", &late).unwrap();
    let all: Vec<Event> = events.iter().chain(&late).cloned().collect();
    assert_same_aggregates(&sys, "buffering", &library(BUFFERING, &all), 50);
    // And an aggregate job refuses per-group calls on a per-key job, and the reverse.
    sys.run("cirr", CIRR, Some("sessionId"), 1, None).unwrap();
    let err = sys
        .aggregate_result("cirr", &GroupSelector::All, 4)
        .unwrap_err();
    assert!(err.to_string().contains("does not aggregate"), "{err}");
}

#[test]
fn jobs_sharing_sub_expressions_share_workers() {
    let (sys, _dir) = system("aggregate-sharing");
    let per_key = sys.run("cirr", CIRR, Some("sessionId"), 2, None).unwrap();
    let by_cdn = format!("{CIRR} | aggregate(group_by(cdnChange), sum, avg, max)");
    let aggregate = sys
        .run("cirr-by-cdn", &by_cdn, Some("sessionId"), 2, None)
        .unwrap();
    let workers = |p: &golem_emulator::PlanView| -> std::collections::BTreeSet<String> {
        p.nodes
            .iter()
            .filter(|n| n.kind == "leaf" || n.kind == "derived")
            .flat_map(|n| n.workers.iter().map(|w| w.worker_name.clone()))
            .collect()
    };
    // Every per-key worker of the CIRR job serves the aggregate job too (cdnChange's leaf is
    // one of them).
    assert!(workers(&per_key).is_subset(&workers(&aggregate)));
    assert_eq!(workers(&per_key), workers(&aggregate));
    let events = player_events();
    sys.ingest("cirr", &events).unwrap();
    // Events sent to one job reach the shared leaves: the aggregate sees them too.
    assert_same_aggregates(&sys, "cirr-by-cdn", &library(&by_cdn, &events), 50);
    let query: timeline::TimeLineOp = CIRR.parse().unwrap();
    assert_same_results(
        &sys,
        "cirr",
        &oracle(&query, Some("sessionId"), &events),
        50,
    );
}

/// Events of a few sessions switching CDNs, buffering and playing.
fn sessions() -> impl Strategy<Value = Vec<Event>> {
    let event = (0u8..5, 0u64..40, 0u8..6, 0u8..3).prop_map(|(s, t, what, cdn)| {
        let (column, value) = match what {
            0 | 1 => ("playerStateChange", "buffer"),
            2 | 3 => ("playerStateChange", "play"),
            4 => ("cdnChange", ["CDN1", "CDN2", "CDN3"][cdn as usize]),
            _ => ("userAction", "seek"),
        };
        Event::new(
            t,
            [
                ("sessionId", Value::from(format!("s{s}"))),
                (column, Value::from(value)),
            ],
        )
    });
    prop::collection::vec(event, 1..40)
}

const QUERIES: [&str; 3] = [
    BUFFERING,
    r#"duration_where(has_existed(playerStateChange == "play") && latest_event_to_state(playerStateChange) == "buffer") | aggregate(group_by(cdnChange), count, sum, avg, min, max)"#,
    r#"has_existed(playerStateChange == "play") | aggregate(count, sum)"#,
];

#[test]
fn aggregates_survive_crashes_at_invocation_points() {
    let (sys, _dir) = system("aggregate-crashes");
    sys.golem.inject_crashes(7, 150_000);
    let events = player_events();
    for (job, shards) in [("one", 1), ("three", 3)] {
        sys.run(job, QUERIES[1], Some("sessionId"), shards, None)
            .unwrap();
        for chunk in events.chunks(3) {
            sys.ingest(job, chunk).unwrap();
        }
        assert_same_aggregates(&sys, job, &library(QUERIES[1], &events), 60);
    }
    assert!(
        sys.golem.counters().crashes_injected > 10,
        "{:?}",
        sys.golem.counters().crashes_injected
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Aggregate jobs with 1 and 3 shards, fed in random batches with crashes injected at
    /// random invocation points, equal the library's aggregate.
    #[test]
    fn aggregate_jobs_match_the_library_with_shards_and_crashes(
        events in sessions(),
        query in 0usize..3,
        shards in prop::sample::select(vec![1u32, 3]),
        batch in 1usize..8,
        seed in any::<u64>(),
    ) {
        let (sys, _dir) = system("aggregate-prop");
        sys.golem.inject_crashes(seed, 30_000);
        let q = QUERIES[query];
        sys.run("job", q, Some("sessionId"), shards, None).unwrap();
        for chunk in events.chunks(batch) {
            sys.ingest("job", chunk).unwrap();
        }
        assert_same_aggregates(&sys, "job", &library(q, &events), 45);
    }
}

/// An aggregate job's result is read through readers of its merge worker, each a merge of its
/// own fed by the same partial workers: however many reads, between late batches and with
/// crashes injected, every answer equals the library's; the merge worker's log gains nothing
/// over a twin job nobody read, each partial's one entry (the first reader attaching), and no
/// reader's holds more than its reads, the pushes it had and two more.
#[test]
fn aggregate_reads_through_readers_keep_every_log_bounded() {
    let (sys, _dir) = system("aggregate-readers");
    let (twin, _twin_dir) = system("aggregate-readers-twin");
    let plan = sys
        .run("job", QUERIES[1], Some("sessionId"), 3, None)
        .unwrap();
    twin.run("job", QUERIES[1], Some("sessionId"), 3, None)
        .unwrap();
    let mut batches: Vec<Vec<Event>> = player_events().chunks(4).map(<[_]>::to_vec).collect();
    batches.reverse();
    let per_reader = u64::from(timeline::limits::READS_PER_READER);
    let reads = 4 * per_reader + 3;
    let every = reads / batches.len() as u64;
    let mut sent: Vec<Event> = Vec::new();
    let mut want = library(QUERIES[1], &sent);
    let mut pushes = 0;
    for i in 0..reads {
        if i % every == 0 && !batches.is_empty() {
            let batch = batches.remove(0);
            sys.ingest("job", &batch).unwrap();
            twin.ingest("job", &batch).unwrap();
            sent.extend(batch);
            want = library(QUERIES[1], &sent);
            pushes += 1;
        }
        if i == reads / 2 {
            sys.golem.inject_crashes(5, 30_000);
        }
        let t = i % 50;
        let got = sys.aggregate_result("job", &GroupSelector::All, t).unwrap();
        assert_eq!(got, want.at(t), "read {i} at {t}");
    }
    assert!(batches.is_empty());
    sys.golem.inject_crashes(0, 0);
    assert_same_aggregates(&sys, "job", &want, 50);

    let len = |s: &TimelineSystem, w: &golem_emulator::WorkerId| s.golem.log_len(w).unwrap();
    let twin_plan = twin.plan("job").unwrap();
    for (node, twin_node) in plan.nodes.iter().zip(&twin_plan.nodes) {
        let attached = u64::from(node.kind == "partial");
        for (mine, theirs) in node.workers.iter().zip(&twin_node.workers) {
            assert_eq!(
                len(&sys, mine) as u64,
                len(&twin, theirs) as u64 + attached,
                "{} {}",
                node.kind,
                mine.worker_name
            );
        }
    }
    let merge = &plan.result().workers[0].worker_name;
    let readers: Vec<_> = sys
        .golem
        .workers()
        .into_iter()
        .filter(|w| w.worker_name.starts_with(&format!("{merge}-reader-")))
        .collect();
    assert!(
        readers.len() as u64 >= reads / per_reader,
        "{} readers",
        readers.len()
    );
    for r in &readers {
        let entries = len(&sys, r) as u64;
        // Each batch may reach a reader from every shard's partial.
        assert!(
            entries <= per_reader + 3 * pushes + 2,
            "{}: {entries} entries",
            r.worker_name
        );
    }
}
