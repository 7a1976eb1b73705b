//! The four components, built by `cargo component`, running on the emulated Golem: end to end,
//! differential against the library, crash and recovery, sharing, and bad input.

mod common;

use common::*;
use golem_emulator::TimelineSystem;
use proptest::prelude::*;
use timeline::{Event, State, TimeLineOp, Value};
use wasmtime::component::Val;

#[test]
fn cirr_end_to_end_through_the_driver() {
    let (sys, _dir) = system("cirr");
    let plan = sys.run("cirr", CIRR, Some("sessionId"), 1, None).unwrap();
    // One node per distinct sub-expression; the leaves feed derived nodes up to duration_where.
    assert_eq!(plan.nodes.len(), 11);
    assert!(plan.result().expression.starts_with("duration_where("));
    let events = player_events();
    let calls = sys.ingest("cirr", &events).unwrap();
    assert_eq!(calls, 4, "one call per leaf worker");
    let query: TimeLineOp = CIRR.parse().unwrap();
    let oracle = oracle(&query, Some("sessionId"), &events);
    assert_same_results(&sys, "cirr", &oracle, 60);
    // The SPEC's answer for s1: 0 before 6, 1 from 7 on.
    let s1 = Value::from("s1");
    assert_eq!(
        sys.result("cirr", None, Some(&s1), 6)
            .unwrap()
            .instant_value(),
        Some(Value::Int(0))
    );
    assert_eq!(
        sys.result("cirr", None, Some(&s1), 7)
            .unwrap()
            .instant_value(),
        Some(Value::Int(1))
    );
    assert_eq!(
        sys.result("cirr", None, Some(&Value::from("s2")), 100)
            .unwrap()
            .instant_value(),
        Some(Value::Int(12))
    );
    // Any node of the plan can be asked: the seek window of s1 is [7, 12).
    let seek = plan
        .nodes
        .iter()
        .find(|n| n.expression.starts_with("has_existed_within"))
        .unwrap();
    assert_eq!(
        sys.result("cirr", Some(&seek.node_id), Some(&s1), 11)
            .unwrap(),
        State::bool(true)
    );
    assert_eq!(
        sys.result("cirr", Some(&seek.node_id), Some(&s1), 12)
            .unwrap(),
        State::bool(false)
    );
}

#[test]
fn events_sent_directly_to_leaves_and_late_events_correct_everything_above() {
    let (sys, _dir) = system("late");
    let query: TimeLineOp = CIRR.parse().unwrap();
    sys.run("late", CIRR, Some("sessionId"), 1, None).unwrap();
    let mut events = player_events();
    let late = events.remove(5); // the seek at 7 arrives last
    sys.ingest("late", &events).unwrap();
    let s1 = Value::from("s1");
    // Without the seek, s1 buffers on CDN1 from 6 to 9.
    assert_eq!(
        sys.result("late", None, Some(&s1), 20)
            .unwrap()
            .instant_value(),
        Some(Value::Int(3))
    );
    // Straight to the leaf that reads `userAction` (as a producer that knows the plan may do).
    let plan = sys.run("late", CIRR, Some("sessionId"), 1, None).unwrap();
    let seek_leaf = plan
        .nodes
        .iter()
        .find(|n| n.expression.starts_with("has_existed_within"))
        .unwrap();
    let out = sys
        .invoke(
            &seek_leaf.workers[0],
            "timeline:event-processor/api.{ingest}",
            &[Val::List(vec![golem_emulator::event_val(&late)])],
        )
        .unwrap();
    assert_eq!(out, vec![Val::Result(Ok(None))]);
    assert_eq!(
        sys.result("late", None, Some(&s1), 20)
            .unwrap()
            .instant_value(),
        Some(Value::Int(1))
    );
    // A derived worker refuses a packed batch of deltas that does not read, and keeps its state.
    let derived = plan.nodes.iter().find(|n| n.kind == "derived").unwrap();
    let out = sys
        .invoke(
            &derived.workers[0],
            "timeline:timeline-processor/api.{apply-packed}",
            &[Val::U32(0), Val::String("d1 s2:s1 1 2 3 1 4 x".into())],
        )
        .unwrap();
    assert!(
        format!("{out:?}").contains("byte 19: expected a state"),
        "{out:?}"
    );
    assert_same_results(
        &sys,
        "late",
        &oracle(&query, Some("sessionId"), &player_events()),
        60,
    );
}

#[test]
fn shards_spread_keys_and_give_the_same_answers() {
    let (sys, _dir) = system("shards");
    let plan = sys
        .run("sharded", CIRR, Some("sessionId"), 3, None)
        .unwrap();
    assert!(plan.nodes.iter().all(|n| n.workers.len() == 3));
    let events: Vec<Event> = (0..6)
        .flat_map(|s| {
            player_events().into_iter().map(move |mut e| {
                e.fields[0].1 = Value::from(format!(
                    "{}-{s}",
                    e.get("sessionId")
                        .unwrap()
                        .clone()
                        .to_string()
                        .trim_matches('"')
                ));
                e
            })
        })
        .collect();
    sys.ingest("sharded", &events).unwrap();
    assert_same_results(
        &sys,
        "sharded",
        &oracle(&CIRR.parse().unwrap(), Some("sessionId"), &events),
        60,
    );
}

#[test]
fn a_query_given_as_a_flat_tree_runs_like_its_text() {
    let (sys, _dir) = system("flat");
    let query: TimeLineOp = "count_within(a > 1, 3) >= 2 || has_existed(b == \"x\")"
        .parse()
        .unwrap();
    let flat = timeline::FlatOp::from_op(&query);
    let nodes = flat
        .nodes
        .iter()
        .map(|n| {
            Val::Record(vec![
                ("operator".into(), Val::String(n.operator.clone())),
                (
                    "inputs".into(),
                    Val::List(n.inputs.iter().map(|i| Val::U32(*i)).collect()),
                ),
                (
                    "column".into(),
                    Val::Option(n.column.clone().map(|c| Box::new(Val::String(c)))),
                ),
                (
                    "predicate".into(),
                    Val::Option(n.predicate.clone().map(|c| Box::new(Val::String(c)))),
                ),
                (
                    "value".into(),
                    Val::Option(n.value.as_ref().map(|v| match v {
                        Value::Int(i) => Box::new(Val::Variant(
                            "int-value".into(),
                            Some(Box::new(Val::S64(*i))),
                        )),
                        other => panic!("{other:?}"),
                    })),
                ),
                (
                    "within".into(),
                    Val::Option(n.within.map(|w| Box::new(Val::U64(w)))),
                ),
            ])
        })
        .collect();
    let plan = sys
        .run_query(
            "flat",
            Val::Variant("tree".into(), Some(Box::new(Val::List(nodes)))),
            None,
        )
        .unwrap();
    assert_eq!(plan.query, query.to_string());
    let events: Vec<Event> = (0..20)
        .map(|t| Event::new(t, [("a", Value::Int((t % 4) as i64))]))
        .collect();
    sys.ingest("flat", &events).unwrap();
    assert_same_results(&sys, "flat", &oracle(&query, None, &events), 30);
}

#[test]
fn jobs_sharing_a_sub_expression_share_its_workers() {
    let (sys, _dir) = system("sharing");
    let first = sys.run("first", CIRR, Some("sessionId"), 1, None).unwrap();
    let workers_after_first = sys.golem.workers().len();
    // The same job again changes nothing.
    assert_eq!(
        sys.run("first", CIRR, Some("sessionId"), 1, None).unwrap(),
        first
    );
    assert_eq!(sys.golem.workers().len(), workers_after_first);
    // A second job shares `has_existed(playerStateChange == "play")` and
    // `latest_event_to_state(cdnChange) == "CDN1"` (and their leaves).
    let second_query = r#"duration_where(has_existed(playerStateChange == "play") && latest_event_to_state(cdnChange) == "CDN1")"#;
    sys.ingest("first", &player_events()).unwrap();
    let second = sys
        .run("second", second_query, Some("sessionId"), 1, None)
        .unwrap();
    let shared: Vec<_> = second
        .nodes
        .iter()
        .filter(|n| first.nodes.iter().any(|f| f.workers == n.workers))
        .collect();
    assert_eq!(shared.len(), 3, "{shared:#?}");
    assert_eq!(second.nodes.len(), 5);
    // Only the second job's own nodes got new workers: the `&&` and the duration_where.
    assert_eq!(sys.golem.workers().len(), workers_after_first + 2);
    // The new job starts from what the shared workers already hold.
    let oracle2 = oracle(
        &second_query.parse().unwrap(),
        Some("sessionId"),
        &player_events(),
    );
    assert_same_results(&sys, "second", &oracle2, 60);
    // Re-sending the same events through the second job is harmless: same time, same column,
    // same value changes nothing.
    sys.ingest("second", &player_events()).unwrap();
    assert_same_results(&sys, "second", &oracle2, 60);
    assert_same_results(
        &sys,
        "first",
        &oracle(&CIRR.parse().unwrap(), Some("sessionId"), &player_events()),
        60,
    );
}

#[test]
fn crashed_workers_recover_by_replay_with_nothing_lost_or_repeated() {
    let (sys, dir) = system("crash");
    let query: TimeLineOp = CIRR.parse().unwrap();
    sys.run("c", CIRR, Some("sessionId"), 2, None).unwrap();
    let events = player_events();
    let (first, rest) = events.split_at(9);
    sys.ingest("c", first).unwrap();
    // Crash every worker, the driver included.
    for w in sys.golem.workers() {
        sys.golem.crash(&w).unwrap();
    }
    assert!(sys.golem.live_workers().is_empty());
    sys.ingest("c", rest).unwrap();
    let replayed = sys.golem.counters().replayed;
    assert!(replayed > 0);
    assert_same_results(&sys, "c", &oracle(&query, Some("sessionId"), &events), 60);
    // A count query has no idempotence to hide behind: a duplicated delivery would show.
    let counting = "count(playerStateChange == \"buffer\")";
    sys.run("n", counting, Some("sessionId"), 1, None).unwrap();
    sys.ingest("n", first).unwrap();
    for w in sys.golem.workers() {
        sys.golem.crash(&w).unwrap();
    }
    sys.ingest("n", rest).unwrap();
    assert_same_results(
        &sys,
        "n",
        &oracle(&counting.parse().unwrap(), Some("sessionId"), &events),
        60,
    );
    // A new emulator on the same logs (a restarted server) finds every job and result.
    drop(sys);
    let again = TimelineSystem::start(&golem_emulator::components_dir(), &dir).unwrap();
    assert_same_results(&again, "c", &oracle(&query, Some("sessionId"), &events), 60);
    // Only the reads ran live (five per key, each a call to the reader of the worker holding
    // the key, found from the workers that exist) and the client's one ask for the plans (the
    // driver's `jobs`, which asks the core); the ingestion was rebuilt from the logs without
    // running again.
    assert_eq!(again.golem.counters().invocations, 2 * 5 + 2);
    assert!(again.golem.counters().replayed > 0);
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let (sys, _dir) = system("bad");
    let err = sys
        .run("j", "has_existed(a == )", None, 1, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1, column 18"), "{err}");
    let err = sys
        .run("j", "has_existed_within(a == 1, 0)", None, 1, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("greater than 0"), "{err}");
    let err = sys
        .run("j", "frobnicate(a)", None, 1, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown operator `frobnicate`"), "{err}");
    assert!(
        sys.golem
            .workers()
            .iter()
            .all(|w| w.worker_name == "timeline-driver"),
        "no worker was created"
    );

    let plan = sys.run("j", "count(a == 1)", Some("k"), 1, None).unwrap();
    let leaf = plan.result().workers[0].clone();
    sys.ingest(
        "j",
        &[Event::new(
            1,
            [("k", Value::from("x")), ("a", Value::Int(1))],
        )],
    )
    .unwrap();
    let before = sys.stats(&leaf).unwrap();
    // A batch with one bad event is refused whole, before any worker sees it.
    let bad_key = [
        Event::new(2, [("k", Value::from("x")), ("a", Value::Int(1))]),
        Event::new(3, [("a", Value::Int(1))]),
    ];
    let err = sys.ingest("j", &bad_key).unwrap_err().to_string();
    assert!(err.contains("no \"k\" column"), "{err}");
    let nan = [Event::new(
        2,
        [("k", Value::from("x")), ("a", Value::Float(f64::NAN))],
    )];
    let err = sys.ingest("j", &nan).unwrap_err().to_string();
    assert!(err.contains("NaN"), "{err}");
    assert!(sys
        .ingest("nope", &[])
        .unwrap_err()
        .to_string()
        .contains("no job named \"nope\""));
    // A packed batch that breaks off is refused whole too, saying where.
    let good = timeline::wire::encode_events(&[Event::new(
        2,
        [("k", Value::from("x")), ("a", Value::Int(1))],
    )]);
    let err = sys
        .ingest_packed("j", &format!("{good} 3 1 1:a"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("packed batch, byte 30"), "{err}");
    let err = sys.ingest_packed("j", "[1, 2]").unwrap_err().to_string();
    assert!(err.contains("expected packed events"), "{err}");
    assert_eq!(sys.stats(&leaf).unwrap(), before);
    assert!(sys
        .result("j", None, Some(&Value::from("y")), 1)
        .unwrap_err()
        .to_string()
        .contains("no events have arrived for key"));
    assert!(sys
        .result("j", Some("no-such-node"), None, 1)
        .unwrap_err()
        .to_string()
        .contains("has no node"));
    let err = sys
        .run("j", "count(a == 2)", Some("k"), 1, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already runs another query"), "{err}");

    // Straight at a leaf worker: a different op, a bad event, an unknown key.
    let api = |f: &str| format!("timeline:event-processor/api.{{{f}}}");
    let config = Val::Record(vec![
        ("op".into(), Val::String("has_existed(a == 2)".into())),
        (
            "key-column".into(),
            Val::Option(Some(Box::new(Val::String("k".into())))),
        ),
        ("retention".into(), Val::Option(None)),
        ("inputs".into(), Val::List(vec![])),
        ("parents".into(), Val::List(vec![])),
    ]);
    let out = sys.invoke(&leaf, &api("initialize"), &[config]).unwrap();
    assert!(format!("{out:?}").contains("cannot become"), "{out:?}");
    let bad_event = golem_emulator::event_val(&Event::new(5, [("a", Value::Int(1))]));
    let out = sys
        .invoke(&leaf, &api("ingest"), &[Val::List(vec![bad_event])])
        .unwrap();
    assert!(format!("{out:?}").contains("partition key"), "{out:?}");
    let packed = timeline::wire::encode_events(&[Event::new(5, [("a", Value::Int(1))])]);
    let out = sys
        .invoke(&leaf, &api("ingest-packed"), &[Val::String(packed)])
        .unwrap();
    assert!(format!("{out:?}").contains("partition key"), "{out:?}");
    let out = sys
        .invoke(
            &leaf,
            &api("ingest-packed"),
            &[Val::String("e1 5 1 1:a i".into())],
        )
        .unwrap();
    assert!(
        format!("{out:?}").contains("expected an integer"),
        "{out:?}"
    );
    assert_eq!(sys.stats(&leaf).unwrap(), before);
    // A worker nobody initialised says so.
    let stray = golem_emulator::WorkerId {
        component_id: leaf.component_id.clone(),
        worker_name: "stray".into(),
    };
    let out = sys
        .invoke(
            &stray,
            &api("get-result"),
            &[Val::Option(None), Val::U64(1)],
        )
        .unwrap();
    assert!(format!("{out:?}").contains("not initialised"), "{out:?}");
    // A derived worker refuses an input it does not have.
    let derived = plan.nodes.iter().find(|n| n.kind == "derived");
    assert!(derived.is_none(), "count(a == 1) is a single leaf");
}

/// `get-results` answers many keys at many times in one invocation (one entry in the worker's
/// log), each answer what `get-result` gives; past the limit, or for a key without events, it
/// refuses the whole call.
#[test]
fn batched_reads_answer_every_key_and_time_in_one_invocation() {
    let (sys, _dir) = system("batched-reads");
    let plan = sys.run("cirr", CIRR, Some("sessionId"), 1, None).unwrap();
    sys.ingest("cirr", &player_events()).unwrap();
    let keys = [Value::from("s1"), Value::from("s2")];
    let times = [0u64, 6, 7, 30, 100];
    let key_vals = || {
        Val::List(
            keys.iter()
                .map(|k| Val::Option(Some(Box::new(golem_emulator::event_value(k)))))
                .collect(),
        )
    };
    let time_vals = |ts: &[u64]| Val::List(ts.iter().map(|t| Val::U64(*t)).collect());
    for node in [plan.result(), &plan.nodes[0]] {
        let worker = &node.workers[0];
        let interface = if node.kind == "leaf" {
            "timeline:event-processor/api"
        } else {
            "timeline:timeline-processor/api"
        };
        let before = sys.golem.counters().invocations;
        let out = sys
            .invoke(
                worker,
                &format!("{interface}.{{get-results}}"),
                &[key_vals(), time_vals(&times)],
            )
            .unwrap();
        assert_eq!(
            sys.golem.counters().invocations,
            before + 1,
            "one invocation"
        );
        let Some(Val::Result(Ok(Some(states)))) = out.first() else {
            panic!("{out:?}")
        };
        let Val::List(states) = states.as_ref() else {
            panic!("{states:?}")
        };
        assert_eq!(states.len(), keys.len() * times.len());
        let mut answers = states.iter();
        for k in &keys {
            for t in times {
                let one = sys.result("cirr", Some(&node.node_id), Some(k), t).unwrap();
                let batched = golem_emulator::read_state(answers.next().unwrap()).unwrap();
                assert_eq!(batched, one, "{} {k:?} at {t}", node.expression);
            }
        }
    }
    let result = &plan.result().workers[0];
    let get_results = "timeline:timeline-processor/api.{get-results}";
    // Nothing asked, nothing answered.
    let out = sys
        .invoke(result, get_results, &[Val::List(vec![]), time_vals(&times)])
        .unwrap();
    assert_eq!(format!("{out:?}"), "[Result(Ok(Some(List([]))))]");
    // A key without events, or more than 10 000 answers: the whole call is refused.
    let unknown = Val::List(vec![Val::Option(Some(Box::new(
        golem_emulator::event_value(&Value::from("nobody")),
    )))]);
    let out = sys
        .invoke(result, get_results, &[unknown, time_vals(&times)])
        .unwrap();
    assert!(
        format!("{out:?}").contains("no events have arrived"),
        "{out:?}"
    );
    let many: Vec<u64> = (0..5_001).collect();
    let out = sys
        .invoke(result, get_results, &[key_vals(), time_vals(&many)])
        .unwrap();
    assert!(
        format!("{out:?}").contains("more than 10000 answers"),
        "{out:?}"
    );
}

fn arbitrary_events() -> impl Strategy<Value = Vec<Event>> {
    let value = prop_oneof![
        prop_oneof![Just("x"), Just("y")].prop_map(Value::from),
        (0i64..3).prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
    ];
    let field = (prop_oneof![Just("a"), Just("b")], value);
    let event = (0u64..25, 0u8..3, prop::collection::vec(field, 1..3)).prop_map(|(t, k, fs)| {
        let mut fields = vec![("k", Value::Int(k as i64))];
        fields.extend(fs);
        Event::new(t, fields)
    });
    prop::collection::vec(event, 1..30)
}

fn arbitrary_query() -> impl Strategy<Value = String> {
    let pred = prop_oneof![
        Just("a == \"x\""),
        Just("b > 0"),
        Just("!(a == 1)"),
        Just("a == true || b == \"y\"")
    ];
    let leaf = prop_oneof![
        pred.clone().prop_map(|p| format!("has_existed({p})")),
        (pred.clone(), 1u64..6).prop_map(|(p, d)| format!("has_existed_within({p}, {d})")),
        Just("latest_event_to_state(a) == \"x\"".to_string()),
        Just("latest_event_to_state(b) >= 1".to_string()),
        (pred.clone(), 1u64..6).prop_map(|(p, d)| format!("count_within({p}, {d}) > 1")),
        (1u64..6).prop_map(|d| format!("distinct_within(a, {d}) >= 2")),
    ];
    leaf.prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
            inner.clone().prop_map(|a| format!("!({a})")),
            (inner.clone(), 0i64..6).prop_map(|(a, c)| format!("duration_where({a}) > {c}")),
            inner.prop_map(|a| format!("duration_in_cur_state({a}) < 3")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Random queries over random keyed events, arriving in random batches (late events
    /// included), give through the components what the library gives in one batch.
    #[test]
    fn components_agree_with_the_library(
        query in arbitrary_query(),
        events in arbitrary_events(),
        batch in 1usize..8,
        shards in 1u32..3,
        crash_seed in any::<u64>(),
    ) {
        let (sys, _dir) = system("differential");
        sys.run("d", &query, Some("k"), shards, None).unwrap();
        for (i, chunk) in events.chunks(batch).enumerate() {
            // Typed and packed batches take the same route after the driver.
            if i % 2 == 0 {
                sys.ingest("d", chunk).unwrap();
            } else {
                sys.ingest_packed("d", &timeline::wire::encode_events(chunk)).unwrap();
            }
            // Now and then a worker crashes between batches; it comes back by replay.
            let workers = sys.golem.workers();
            let pick = (crash_seed.rotate_left(i as u32 * 7) % (workers.len() as u64 * 2)) as usize;
            if let Some(w) = workers.get(pick) {
                sys.golem.crash(w).unwrap();
            }
        }
        let op: TimeLineOp = query.parse().unwrap();
        assert_same_results(&sys, "d", &oracle(&op, Some("k"), &events), 40);
    }
}

/// A Golem 1.1 server offers WASI 0.2.x, golem:api@1.1.0 and golem:rpc@0.1.x; a component that
/// imports anything else fails when its first worker is created.
#[test]
fn components_import_only_what_golem_1_1_provides() {
    let (sys, _dir) = system("imports");
    for (name, _) in golem_emulator::COMPONENTS {
        let imports = sys.golem.component_imports(name);
        assert!(!imports.is_empty(), "{name}");
        for import in &imports {
            // `timeline:types/types` holds only types (no functions): nothing has to provide it.
            let ok = (import.starts_with("wasi:") && import.contains("@0.2."))
                || import == "timeline:types/types"
                || import == "golem:api/host@1.1.0"
                || import.starts_with("golem:rpc/types@0.1.");
            assert!(ok, "{name} imports {import}");
        }
        assert!(
            imports.iter().any(|i| i.starts_with("golem:rpc/")),
            "{name} calls other workers: {imports:?}"
        );
    }
}
