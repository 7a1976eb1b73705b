//! The emulator fails as Golem 1.1 does, and a failed driver loses no job: any driver worker
//! rebuilds its jobs from the core.

mod common;

use common::*;
use golem_emulator::{components_dir, TimelineSystem};
use timeline::{TimeLineOp, Value};
use wasmtime::component::Val;

const LOCATE: &str = "timeline:driver/api.{locate}";

#[test]
fn parameters_that_do_not_fit_fail_the_worker_for_good_until_it_is_deleted() {
    let (sys, dir) = system("mismatch");
    sys.run("j", "count(a == 1)", None, 1, None).unwrap();
    // One parameter where `locate` takes three: Golem 1.1 answers 500 and fails the worker.
    let err = sys
        .invoke(&sys.driver, LOCATE, &[Val::String("j".into())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Parameter type mismatch: expected 3, got 1 parameters"),
        "{err}"
    );
    let err = sys.jobs().unwrap_err().to_string();
    assert!(err.contains("PreviousInvocationFailed"), "{err}");
    // A value of the wrong type does the same to another worker.
    let other = sys.through("another-driver");
    let err = other
        .invoke(
            &other.driver,
            LOCATE,
            &[Val::String("j".into()), Val::U64(1), Val::Option(None)],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("Parameter type mismatch"), "{err}");
    assert!(other
        .jobs()
        .unwrap_err()
        .to_string()
        .contains("PreviousInvocationFailed"));
    // It stays failed across a restart of the server.
    drop((sys, other));
    let sys = TimelineSystem::start(&components_dir(), &dir).unwrap();
    assert!(sys
        .jobs()
        .unwrap_err()
        .to_string()
        .contains("PreviousInvocationFailed"));
    // Deleted and created again, it is a fresh worker.
    sys.golem.delete_worker(&sys.driver).unwrap();
    sys.create_driver().unwrap();
    assert_eq!(sys.jobs().unwrap().len(), 1, "the core still knows the job");
}

#[test]
fn an_unknown_function_is_refused_and_changes_nothing() {
    let (sys, _dir) = system("unknown-function");
    sys.run("j", "count(a == 1)", Some("k"), 1, None).unwrap();
    let x = || ("k", Value::from("x"));
    sys.ingest("j", &[timeline::Event::new(1, [x(), ("a", Value::Int(1))])])
        .unwrap();
    let err = sys
        .invoke(&sys.driver, "timeline:driver/api.{no-such-function}", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("InvalidRequest"), "{err}");
    let err = sys
        .invoke(&sys.driver, "timeline:nope/api.{run}", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("InvalidRequest"), "{err}");
    assert_eq!(
        sys.result("j", None, Some(&Value::from("x")), 5)
            .unwrap()
            .instant_value(),
        Some(Value::Int(1))
    );
}

#[test]
fn a_failed_driver_loses_no_job() {
    let (sys, _dir) = system("driver-recovery");
    let query: TimeLineOp = CIRR.parse().unwrap();
    sys.run("cirr", CIRR, Some("sessionId"), 2, None).unwrap();
    sys.run(
        "count",
        "count(playerStateChange == \"buffer\")",
        Some("sessionId"),
        1,
        None,
    )
    .unwrap();
    let events = player_events();
    let (first, rest) = events.split_at(10);
    sys.ingest("cirr", first).unwrap();
    // A mistyped call fails the driver for good.
    let _ = sys.invoke(&sys.driver, LOCATE, &[Val::String("cirr".into())]);
    assert!(sys
        .ingest("cirr", rest)
        .unwrap_err()
        .to_string()
        .contains("PreviousInvocationFailed"));
    // Delete it and create it again: it serves both jobs from the core, with all their data,
    // without `run` being sent again.
    sys.golem.delete_worker(&sys.driver).unwrap();
    sys.create_driver().unwrap();
    sys.ingest("cirr", rest).unwrap();
    assert_same_results(
        &sys,
        "cirr",
        &oracle(&query, Some("sessionId"), &events),
        60,
    );
    let names: Vec<String> = sys
        .jobs()
        .unwrap()
        .into_iter()
        .map(|p| p.job_name)
        .collect();
    assert_eq!(names, ["cirr", "count"]);
    // Any other driver worker serves them too (say, one per job or per client).
    let second = sys.through("timeline-driver-cirr");
    assert_same_results(
        &second,
        "cirr",
        &oracle(&query, Some("sessionId"), &events),
        60,
    );
    second.ingest("count", &events).unwrap();
    let counting: TimeLineOp = "count(playerStateChange == \"buffer\")".parse().unwrap();
    assert_same_results(
        &second,
        "count",
        &oracle(&counting, Some("sessionId"), &events),
        60,
    );
    // Re-sending `run` is idempotent; another query under a taken name is refused by the core,
    // whichever driver worker it comes through.
    second
        .run("cirr", CIRR, Some("sessionId"), 2, None)
        .unwrap();
    let err = second
        .run("count", "count(a == 1)", Some("sessionId"), 1, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already runs another query"), "{err}");
    let err = second.ingest("nope", &events).unwrap_err().to_string();
    assert!(err.contains("no job named \"nope\""), "{err}");
}

#[test]
fn the_driver_locates_keys_and_reads_leave_its_log_as_it_was() {
    let (sys, _dir) = system("locate");
    let plan = sys.run("cirr", CIRR, Some("sessionId"), 3, None).unwrap();
    let keys: Vec<Value> = (0..12).map(|i| Value::from(format!("s{i}"))).collect();
    let events: Vec<timeline::Event> = keys
        .iter()
        .map(|k| timeline::Event::new(3, [("sessionId", k.clone()), ("cdnChange", "CDN1".into())]))
        .collect();
    sys.ingest("cirr", &events).unwrap();
    // The driver names the worker of each key's shard, for the result node and for any other.
    let leaf = plan.nodes.iter().find(|n| n.kind == "leaf").unwrap();
    let mut workers = std::collections::BTreeSet::new();
    for key in &keys {
        let located = sys.locate("cirr", None, Some(key)).unwrap();
        assert_eq!(&located, plan.locate(None, Some(key)).unwrap());
        let shard = timeline::shard_of(Some(key), 3) as usize;
        assert_eq!(located, plan.result().workers[shard]);
        assert_eq!(
            sys.locate("cirr", Some(&leaf.node_id), Some(key)).unwrap(),
            leaf.workers[shard]
        );
        workers.insert(located.worker_name);
    }
    assert_eq!(workers.len(), 3, "twelve keys fall in every shard of three");
    let err = sys.locate("nope", None, None).unwrap_err().to_string();
    assert!(err.contains("no job named \"nope\""), "{err}");
    let err = sys
        .locate("cirr", Some("n9"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("job \"cirr\" has no node n9"), "{err}");
    // Hostile arguments get a clear error and leave the driver serving: a NaN key, a
    // megabyte-long job name.
    let nan = Val::Option(Some(Box::new(Val::Variant(
        "float-value".into(),
        Some(Box::new(Val::Float64(f64::NAN))),
    ))));
    let out = sys
        .invoke(
            &sys.driver,
            LOCATE,
            &[Val::String("cirr".into()), Val::Option(None), nan],
        )
        .unwrap();
    assert!(format!("{out:?}").contains("NaN"), "{out:?}");
    let long = "j".repeat(1 << 20);
    let err = sys.locate(&long, None, None).unwrap_err().to_string();
    assert!(
        err.contains("no job named"),
        "{}",
        &err[..200.min(err.len())]
    );
    assert_eq!(
        &sys.locate("cirr", None, Some(&keys[0])).unwrap(),
        plan.locate(None, Some(&keys[0])).unwrap()
    );

    // Reads go to the node workers' readers: after a crash the driver replays its own calls
    // (run, ingest and the locates above), and, of the reads, only the client's ask for the
    // first reader, however many generations of readers served them.
    let replays_after = |reads: u64| {
        for t in 0..reads {
            sys.result("cirr", None, Some(&keys[0]), t).unwrap();
        }
        sys.golem.crash(&sys.driver).unwrap();
        let before = sys.golem.counters().replayed;
        sys.jobs().unwrap();
        sys.golem.counters().replayed - before
    };
    let without_reads = replays_after(0);
    assert!(without_reads >= 2, "the driver replays run and ingest");
    let per_reader = u64::from(timeline::limits::READS_PER_READER);
    assert_eq!(
        replays_after(3 * per_reader),
        without_reads + 1 + 1,
        "the one `jobs` call more, and the one `reader`"
    );
}

#[test]
fn a_duration_over_inputs_that_dropped_history_is_refused() {
    let (sys, _dir) = system("dropped-history");
    let on_x = "latest_event_to_state(c) == \"x\"";
    let k = || ("k", Value::from("k1"));
    // Job A keeps 10 s: after 100 s of events its leaf has dropped what came before 90.
    sys.run("a", on_x, Some("k"), 1, Some(10)).unwrap();
    let events: Vec<timeline::Event> = (0..=100)
        .step_by(5)
        .map(|t| {
            timeline::Event::new(
                t,
                [k(), ("c", Value::from(["x", "y"][(t / 5 % 2) as usize]))],
            )
        })
        .collect();
    sys.ingest("a", &events).unwrap();
    let plan = sys.plan("a").unwrap();
    assert_eq!(
        sys.stats(&plan.result().workers[0])
            .unwrap()
            .history_dropped,
        1
    );
    // A new duration node over that shared worker would count from the horizon: refused.
    let duration = format!("duration_where({on_x})");
    let err = sys
        .run("b", &duration, Some("k"), 1, Some(10))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has dropped the history before its retention horizon of 1 key(s)")
            && err.contains("submit the job with another retention"),
        "{err}"
    );
    // Any other node starts from the shared worker's snapshot and answers as a job that saw
    // every event (from the horizon on).
    let negated = format!("!({on_x})");
    sys.run("c", &negated, Some("k"), 1, Some(10)).unwrap();
    let key = Value::from("k1");
    let engine = oracle(&negated.parse().unwrap(), Some("k"), &events);
    for t in 90..=120 {
        assert_eq!(
            sys.result("c", None, Some(&key), t).unwrap(),
            engine.value_at(Some(&key), t).unwrap(),
            "at {t}"
        );
    }
    // With another retention the duration's workers start empty, and count every event sent.
    sys.run("b", &duration, Some("k"), 1, Some(11)).unwrap();
    sys.ingest("b", &events).unwrap();
    let engine = oracle(&duration.parse().unwrap(), Some("k"), &events);
    assert_eq!(
        sys.result("b", None, Some(&key), 100).unwrap(),
        engine.value_at(Some(&key), 100).unwrap()
    );
}

/// `ingest-from` applies each place of a source once: batches sent again, overlapping, or
/// after the driver crashed (Golem replays it) change nothing twice; `count` would show it.
#[test]
fn events_from_an_ordered_source_are_applied_once() {
    let (sys, _dir) = system("ingest-from");
    sys.run("c", "count(a == 1)", None, 1, None).unwrap();
    let events: Vec<timeline::Event> = (0..10)
        .map(|i| timeline::Event {
            time: 10 - i,
            fields: vec![("a".into(), Value::Int(1))],
        })
        .collect();
    let packed = |range: std::ops::Range<usize>| timeline::wire::encode_events(&events[range]);
    let offsets = |range: std::ops::Range<usize>| range.map(|o| o as u64 + 100).collect::<Vec<_>>();
    let count = || sys.result("c", None, None, 20).unwrap();
    let source = "kafka:t:0";
    assert!(
        sys.ingest_from("c", source, &offsets(0..4), 104, &packed(0..4))
            .unwrap()
            > 0
    );
    // The same batch again, and a batch overlapping it: only what is new counts.
    assert_eq!(
        sys.ingest_from("c", source, &offsets(0..4), 104, &packed(0..4))
            .unwrap(),
        0
    );
    sys.ingest_from("c", source, &offsets(2..7), 107, &packed(2..7))
        .unwrap();
    assert_eq!(count(), timeline::State::Value(Value::Int(7)));
    assert_eq!(sys.source_position("c", source).unwrap(), 107);
    // After a crash the driver replays its log and knows how far it got.
    sys.golem.crash(&sys.driver).unwrap();
    assert_eq!(sys.source_position("c", source).unwrap(), 107);
    sys.ingest_from("c", source, &offsets(5..10), 110, &packed(5..10))
        .unwrap();
    assert_eq!(count(), timeline::State::Value(Value::Int(10)));
    // A record left out (refused) still moves the position past it; another source and
    // another job are apart.
    let later = timeline::wire::encode_events(&[timeline::Event {
        time: 15,
        fields: vec![("a".into(), Value::Int(1))],
    }]);
    sys.ingest_from("c", "kafka:t:1", &[3], 5, &later).unwrap();
    assert_eq!(sys.source_position("c", "kafka:t:1").unwrap(), 5);
    assert_eq!(count(), timeline::State::Value(Value::Int(11)));
    // Bad batches are refused and move nothing.
    for (offsets, end, text) in [
        (vec![1, 1], 5, packed(0..2)),
        (vec![9], 5, packed(0..1)),
        (vec![6], 7, packed(0..2)),
    ] {
        assert!(sys
            .ingest_from("c", "kafka:t:2", &offsets, end, &text)
            .is_err());
    }
    assert_eq!(sys.source_position("c", "kafka:t:2").unwrap(), 0);
    assert!(sys
        .ingest_from("nobody", source, &[0], 1, &packed(0..1))
        .is_err());
}

/// Reads go through readers, each serving at most `READS_PER_READER` reads, then handing its
/// copy over to a successor. However many reads a job serves, between batches of late events
/// and with crashes injected: every answer equals the oracle's; the node worker's log gains one
/// entry (its first reader attaching) over a twin job that nobody read; every reader's log
/// holds at most its reads, the pushes it had and two more; the driver's gains a call per
/// shard. A new client finds the newest reader from the workers that exist (stepping back from
/// one that exists but was never set up); one that kept an old reader is led along the
/// hand-overs.
#[test]
fn reads_through_readers_keep_every_log_bounded() {
    let (sys, _dir) = system("readers");
    let (twin, _twin_dir) = system("readers-twin");
    let query: TimeLineOp = CIRR.parse().unwrap();
    let plan = sys.run("cirr", CIRR, Some("sessionId"), 2, None).unwrap();
    twin.run("cirr", CIRR, Some("sessionId"), 2, None).unwrap();
    // Five batches, the later events first: every batch after the first is late.
    let events = player_events();
    let mut batches: Vec<Vec<timeline::Event>> = events.chunks(4).map(<[_]>::to_vec).collect();
    batches.reverse();
    let per_reader = u64::from(timeline::limits::READS_PER_READER);
    let reads = 5 * per_reader + 7;
    let keys = [Value::from("s1"), Value::from("s2")];
    let mut sent: Vec<timeline::Event> = Vec::new();
    let mut want = oracle(&query, Some("sessionId"), &sent);
    let mut pushes = 0;
    let every = reads / batches.len() as u64;
    for i in 0..reads {
        if i % every == 0 && !batches.is_empty() {
            let batch = batches.remove(0);
            sys.ingest("cirr", &batch).unwrap();
            twin.ingest("cirr", &batch).unwrap();
            sent.extend(batch);
            want = oracle(&query, Some("sessionId"), &sent);
            pushes += 1;
        }
        if i == reads / 2 {
            for w in sys.golem.workers() {
                sys.golem.crash(&w).unwrap();
            }
            // From here on, invocations crash now and then, before they run or midway (hand-
            // overs included): Golem resumes them, and no answer may change.
            sys.golem.inject_crashes(11, 30_000);
        }
        let key = &keys[i as usize % 2];
        let t = i % 50;
        match want.value_at(Some(key), t) {
            Ok(expected) => {
                let got = sys.result("cirr", None, Some(key), t).unwrap();
                assert!(
                    got.same(&expected),
                    "read {i}: {key} at {t}: {got:?} vs {expected:?}"
                );
            }
            Err(_) => assert!(sys.result("cirr", None, Some(key), t).is_err()),
        }
    }
    assert!(batches.is_empty());
    assert!(sys.golem.counters().crashes_injected > 0);
    sys.golem.inject_crashes(0, 0);
    assert_same_results(&sys, "cirr", &want, 50);

    let len = |sys: &TimelineSystem, w: &golem_emulator::WorkerId| sys.golem.log_len(w).unwrap();
    for (mine, theirs) in plan
        .result()
        .workers
        .iter()
        .zip(&twin.plan("cirr").unwrap().result().workers)
    {
        assert_eq!(
            len(&sys, mine),
            len(&twin, theirs) + 1,
            "{}",
            mine.worker_name
        );
    }
    let readers: Vec<_> = sys
        .golem
        .workers()
        .into_iter()
        .filter(|w| w.worker_name.contains("-reader-"))
        .collect();
    let full = reads / per_reader;
    assert!(
        readers.len() as u64 >= full,
        "{} readers after {reads} reads",
        readers.len()
    );
    for r in &readers {
        let entries = len(&sys, r) as u64;
        assert!(
            entries <= per_reader + pushes + 2,
            "{}: {entries} entries",
            r.worker_name
        );
    }
    assert_eq!(
        len(&sys, &sys.driver),
        len(&twin, &twin.driver) + 2,
        "the driver gains a `reader` call per shard"
    );

    // A client through another driver worker finds the newest readers from the workers that
    // exist: it asks its driver for the plan (`jobs`), not for readers.
    let other = sys.through("another-driver");
    for key in &keys {
        for t in [3, 12, 45] {
            let got = other.result("cirr", None, Some(key), t).unwrap();
            assert!(
                got.same(&want.value_at(Some(key), t).unwrap()),
                "{key} at {t}"
            );
        }
    }
    assert_eq!(len(&sys, &other.driver), 1);
    // A client that kept the first readers is led along the hand-overs.
    let processor = golem_emulator::component_id("timeline-processor");
    let generation = |w: &golem_emulator::WorkerId, g: u32| golem_emulator::WorkerId {
        component_id: processor.clone(),
        worker_name: timeline::readers::reader_name(&w.worker_name, g),
    };
    let stale = golem_emulator::Readers::default();
    for w in &plan.result().workers {
        stale.lock().unwrap().insert(
            ("cirr".to_string(), w.worker_name.clone()),
            generation(w, 0),
        );
    }
    let old = TimelineSystem::reader(sys.golem.clone()).sharing_readers(stale);
    for key in &keys {
        let got = old.result("cirr", None, Some(key), 45).unwrap();
        assert!(got.same(&want.value_at(Some(key), 45).unwrap()), "{key}");
    }
    // A stray call makes the next generation exist before it is set up: a new client finds it
    // newest, and is led back to the one that serves.
    for w in &plan.result().workers {
        let newest =
            timeline::readers::newest_generation(|g| sys.golem.worker_exists(&generation(w, g)));
        let stray = generation(w, newest + 1);
        let _ = sys.invoke(&stray, "timeline:timeline-processor/api.{stats}", &[]);
        assert!(sys.golem.worker_exists(&stray));
    }
    let fresh = TimelineSystem::reader(sys.golem.clone());
    for key in &keys {
        let got = fresh.result("cirr", None, Some(key), 45).unwrap();
        assert!(got.same(&want.value_at(Some(key), 45).unwrap()), "{key}");
    }
}
