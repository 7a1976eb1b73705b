//! Hostile input at the components' exported functions: refused with an `err`, never a trap, and
//! the worker keeps serving; a batch that one leaf refuses changes no worker.

mod common;

use common::*;
use golem_emulator::{TimelineSystem, WorkerId};
use timeline::limits::{MAX_QUERY_DEPTH, MAX_STRING_BYTES};
use timeline::{Event, Value};
use wasmtime::component::Val;

/// What every node worker of the system holds: its snapshot and stats, as text.
fn every_worker_state(sys: &TimelineSystem) -> Vec<(WorkerId, String)> {
    sys.golem
        .workers()
        .into_iter()
        .filter_map(|w| {
            let interface = match sys.golem.component_name(&w.component_id)? {
                "event-processor" => "timeline:event-processor/api",
                "timeline-processor" => "timeline:timeline-processor/api",
                _ => return None,
            };
            let snapshot = sys
                .invoke(&w, &format!("{interface}.{{snapshot}}"), &[])
                .unwrap();
            let stats = sys.stats(&w).unwrap();
            Some((w, format!("{snapshot:?} {stats:?}")))
        })
        .collect()
}

fn assert_refused(sys: &TimelineSystem, query: &str, needle: &str) {
    let err = sys
        .run("hostile", query, None, 1, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains(needle), "{}", &err[..err.len().min(400)]);
    let err = sys.explain("hostile", query).unwrap_err().to_string();
    assert!(err.contains(needle), "{}", &err[..err.len().min(400)]);
}

#[test]
fn hostile_queries_are_refused_and_the_driver_keeps_serving() {
    let (sys, _dir) = system("hostile-queries");
    let deep_nots = "!".repeat(100_000) + "has_existed(a == 1)";
    assert_refused(&sys, &deep_nots, "nests more than 256 levels");
    let parens = "(".repeat(50_000) + "has_existed(a == 1)" + &")".repeat(50_000);
    assert_refused(&sys, &parens, "nests more than 256 levels");
    let chain = (0..20_000)
        .map(|i| format!("has_existed(a == {i})"))
        .collect::<Vec<_>>()
        .join(" && ");
    assert_refused(&sys, &chain, "balanced halves");
    let mut bomb = "let a0 = has_existed(x == 1);".to_string();
    for i in 1..=40 {
        bomb += &format!("let a{i} = a{} && a{};", i - 1, i - 1);
    }
    bomb += "a40";
    assert_refused(&sys, &bomb, "more than 10000 operators");
    assert_refused(&sys, &"x".repeat(2 << 20), "the limit is 1048576");

    // A flat tree whose nodes each read the one before twice: 2^60 operators from 61 nodes.
    let node = |operator: &str, inputs: Vec<u32>, predicate: Option<&str>| {
        let s = |x: Option<&str>| Val::Option(x.map(|x| Box::new(Val::String(x.into()))));
        Val::Record(vec![
            ("operator".into(), Val::String(operator.into())),
            (
                "inputs".into(),
                Val::List(inputs.into_iter().map(Val::U32).collect()),
            ),
            ("column".into(), s(None)),
            ("predicate".into(), s(predicate)),
            ("value".into(), Val::Option(None)),
            ("within".into(), Val::Option(None)),
        ])
    };
    let mut nodes = vec![node("has_existed", vec![], Some("a == 1"))];
    nodes.extend((0..60).map(|i| node("and", vec![i, i], None)));
    let tree = Val::Variant("tree".into(), Some(Box::new(Val::List(nodes))));
    let err = sys.run_query("tree", tree, None).unwrap_err().to_string();
    assert!(err.contains("10000 operators"), "{err}");

    // Shards: a hundred million are refused before any worker is created.
    let err = sys
        .run(
            "shards",
            "has_existed(a == 1)",
            Some("k"),
            100_000_000,
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 1024 shards"), "{err}");
    let twenty_nodes = (0..10)
        .map(|i| format!("!has_existed(a == {i})"))
        .collect::<Vec<_>>();
    let err = sys
        .run(
            "workers",
            &format!(
                "({}) && ({})",
                twenty_nodes[..5].join(" && "),
                twenty_nodes[5..].join(" && ")
            ),
            Some("k"),
            1024,
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("workers") && err.contains("the limit is 10000"),
        "{err}"
    );
    assert!(
        sys.golem
            .workers()
            .iter()
            .all(|w| w.worker_name == "timeline-driver" || w.worker_name == "timeline-core"),
        "no node worker was created: {:?}",
        sys.golem.workers()
    );

    // The driver still serves: a job runs and answers.
    sys.run("ok", "count(a == 1)", Some("k"), 1, None).unwrap();
    sys.ingest(
        "ok",
        &[Event::new(
            1,
            [("k", Value::from("x")), ("a", Value::Int(1))],
        )],
    )
    .unwrap();
    assert_eq!(
        sys.result("ok", None, Some(&Value::from("x")), 1)
            .unwrap()
            .instant_value(),
        Some(Value::Int(1))
    );
}

#[test]
fn a_query_at_the_depth_limit_runs_on_the_workers() {
    // Every worker parses, prints and plans its own sub-expression: on a worker's stack, the
    // deepest query accepted must go through all of them.
    let (sys, _dir) = system("deepest");
    let query = "!".repeat(MAX_QUERY_DEPTH - 3) + "has_existed(a == 1)";
    let plan = sys.run("deep", &query, None, 1, None).unwrap();
    assert_eq!(plan.nodes.len(), MAX_QUERY_DEPTH - 2);
    sys.ingest("deep", &[Event::new(3, [("a", Value::Int(1))])])
        .unwrap();
    // An odd number of `!` around has_existed.
    assert_eq!(
        sys.result("deep", None, None, 3).unwrap().to_string(),
        "false"
    );
    assert_eq!(
        sys.result("deep", None, None, 2).unwrap().to_string(),
        "true"
    );
}

#[test]
fn oversized_batches_are_refused_whole() {
    let (sys, _dir) = system("oversized");
    sys.run("j", "count(a == 1)", Some("k"), 1, None).unwrap();
    sys.ingest(
        "j",
        &[Event::new(
            1,
            [("k", Value::from("x")), ("a", Value::Int(1))],
        )],
    )
    .unwrap();
    let before = every_worker_state(&sys);
    let long = Value::str(&"y".repeat(MAX_STRING_BYTES + 1));
    let batch = [
        Event::new(2, [("k", Value::from("x")), ("a", Value::Int(1))]),
        Event::new(3, [("k", Value::from("x")), ("b", long)]),
    ];
    let err = sys.ingest("j", &batch).unwrap_err().to_string();
    assert!(
        err.contains("event 2 (time 3): column \"b\": a string of 65537 bytes"),
        "{err}"
    );
    let err = sys
        .ingest_packed("j", &timeline::wire::encode_events(&batch))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a string of 65537 bytes; the limit is 65536"),
        "{err}"
    );
    assert_eq!(every_worker_state(&sys), before);
}

#[test]
fn a_batch_refused_at_the_last_leaf_changes_no_worker() {
    let (sys, _dir) = system("atomic");
    // Job `both` has two leaves; job `b` shares the second (same key column and retention) and
    // moves its horizon for key x further than `both` has seen.
    let both = sys
        .run(
            "both",
            "has_existed(a == 1) && has_existed(b == 1)",
            Some("k"),
            1,
            Some(10),
        )
        .unwrap();
    sys.run("b", "has_existed(b == 1)", Some("k"), 1, Some(10))
        .unwrap();
    let leaves: Vec<&str> = both
        .nodes
        .iter()
        .filter(|n| n.kind == "leaf")
        .map(|n| n.expression.as_str())
        .collect();
    assert_eq!(
        leaves,
        ["has_existed(a == 1)", "has_existed(b == 1)"],
        "the shared leaf is last"
    );
    let x = || ("k", Value::from("x"));
    sys.ingest(
        "both",
        &[Event::new(
            100,
            [x(), ("a", Value::Int(0)), ("b", Value::Int(0))],
        )],
    )
    .unwrap();
    sys.ingest("b", &[Event::new(200, [x(), ("b", Value::Int(1))])])
        .unwrap();
    let before = every_worker_state(&sys);
    // Time 150 is within the first leaf's horizon (100 - 10) but before the second's (190).
    let late = [Event::new(150, [x(), ("a", Value::Int(1))])];
    let err = sys.ingest("both", &late).unwrap_err().to_string();
    assert!(err.contains("before the retention horizon 190"), "{err}");
    let err = sys
        .ingest_packed("both", &timeline::wire::encode_events(&late))
        .unwrap_err()
        .to_string();
    assert!(err.contains("before the retention horizon 190"), "{err}");
    // The refused event is named by its place in the batch sent, though the leaf was sent
    // fewer events (the second carries no column it reads and moves no time it keeps).
    let unread = |t| Event::new(t, [x(), ("z", Value::Int(0))]);
    let batch = [
        unread(191),
        unread(192),
        unread(193),
        Event::new(150, [x(), ("b", Value::Int(1))]),
    ];
    let err = sys.ingest("both", &batch).unwrap_err().to_string();
    assert!(
        err.contains("event 4: time 150 is before the retention horizon"),
        "{err}"
    );
    assert_eq!(every_worker_state(&sys), before, "nothing changed anywhere");
    // A batch every leaf accepts goes through, and the answer follows.
    sys.ingest("both", &[Event::new(195, [x(), ("a", Value::Int(1))])])
        .unwrap();
    assert_eq!(
        sys.result("both", None, Some(&Value::from("x")), 200)
            .unwrap()
            .to_string(),
        "true"
    );
}

/// The readers' functions refuse what does not fit with an `err`, never a trap, and the
/// workers keep serving: a reader of nothing, of a worker that is not a node, with a state that
/// does not read; a merge asked to attach a reader; the driver asked for a reader of a worker
/// not in the job; a reader asked to start again as a reader of another worker.
#[test]
fn hostile_reader_calls_are_refused_and_change_nothing() {
    let (sys, _dir) = system("hostile-readers");
    let plan = sys
        .run("j", "latest_event_to_state(a)", Some("k"), 1, None)
        .unwrap();
    sys.ingest(
        "j",
        &[Event::new(
            1,
            [("k", Value::from("x")), ("a", Value::from(1))],
        )],
    )
    .unwrap();
    let answer = sys.result("j", None, Some(&Value::from("x")), 5).unwrap();
    let processor = golem_emulator::component_id("timeline-processor");
    let api = "timeline:timeline-processor/api";
    let worker = |name: &str| WorkerId {
        component_id: processor.clone(),
        worker_name: name.into(),
    };
    let worker_ref = |component: &str, name: &str, interface: &str| {
        Val::Record(vec![
            ("component-id".into(), Val::String(component.into())),
            ("worker-name".into(), Val::String(name.into())),
            ("interface".into(), Val::String(interface.into())),
        ])
    };
    let config = |op: &str, inputs: Vec<Val>| {
        Val::Record(vec![
            ("op".into(), Val::String(op.into())),
            (
                "key-column".into(),
                Val::Option(Some(Box::new(Val::String("k".into())))),
            ),
            ("retention".into(), Val::Option(None)),
            ("inputs".into(), Val::List(inputs)),
            ("parents".into(), Val::List(vec![])),
        ])
    };
    let refused = |w: &WorkerId, function: &str, params: &[Val], needle: &str| {
        let out = sys
            .invoke(w, &format!("{api}.{{{function}}}"), params)
            .unwrap_or_else(|e| panic!("{function} trapped: {e}"));
        let text = format!("{out:?}");
        assert!(
            text.contains("Err") && text.contains(needle),
            "{function}: {text}"
        );
    };
    let leaf = &plan.result().workers[0];
    let leaf_ref = worker_ref(
        &leaf.component_id,
        &leaf.worker_name,
        "timeline:event-processor/api",
    );
    refused(
        &worker("r-none"),
        "initialize-reader",
        &[config("latest_event_to_state(a)", vec![])],
        "give it as the first input",
    );
    refused(
        &worker("r-driver"),
        "initialize-reader",
        &[config(
            "latest_event_to_state(a)",
            vec![worker_ref(
                &sys.driver.component_id,
                &sys.driver.worker_name,
                "timeline:driver/api",
            )],
        )],
        "attach-reader",
    );
    refused(
        &worker("r-garbage"),
        "take-over",
        &[
            config("latest_event_to_state(a)", vec![leaf_ref.clone()]),
            Val::String("not a packed state".into()),
        ],
        "",
    );
    refused(
        &worker("r-bad-op"),
        "initialize-reader",
        &[config("latest_event_to_state(", vec![leaf_ref.clone()])],
        "op:",
    );
    // The job's reader, made by a read, cannot become a reader of another worker.
    let first = worker(&timeline::readers::reader_name(&leaf.worker_name, 0));
    assert!(sys.golem.worker_exists(&first));
    refused(
        &first,
        "initialize-reader",
        &[config(
            "latest_event_to_state(a)",
            vec![worker_ref(&processor, "elsewhere", api)],
        )],
        "cannot become",
    );
    refused(
        &first,
        "attach-reader",
        std::slice::from_ref(&leaf_ref),
        "read itself",
    );
    // The driver names readers of the job's workers only.
    let out = sys
        .invoke(
            &sys.driver,
            "timeline:driver/api.{reader}",
            &[
                Val::String("j".into()),
                worker_ref(&processor, "nobody", api),
            ],
        )
        .unwrap();
    assert!(
        format!("{out:?}").contains("is not a worker of job"),
        "{out:?}"
    );
    // Everything still answers as before.
    assert!(sys
        .result("j", None, Some(&Value::from("x")), 5)
        .unwrap()
        .same(&answer));
}
