//! Hostile queries and batches: every one is refused with an error naming the limit, or works;
//! none overflows the stack, hangs or exhausts memory.
//!
//! The walks that must stay safe run on a thread with a small stack: 1 MiB in an optimised build
//! (what a WebAssembly worker has; these tests pass with 512 KiB there), 4 MiB in an unoptimised
//! one, whose frames are several times larger. The components' tests run the same queries on
//! the real workers.

use timeline::limits::*;
use timeline::op::*;
use timeline::{parse_query, wire, Engine, EngineOptions, Event, FlatNode, FlatOp, Plan, Value};

/// Runs `f` on a thread with a worker-sized stack.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(if cfg!(debug_assertions) {
            4 << 20
        } else {
            1 << 20
        })
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the thread finished without a panic or an overflow")
}

fn refused(text: String, needle: &str) {
    let err = on_small_stack(move || parse_query(&text).unwrap_err());
    assert!(err.message.contains(needle), "{err}");
}

#[test]
fn a_hundred_thousand_nots_are_refused_at_the_depth_limit() {
    let text = "!".repeat(100_000) + "has_existed(a == 1)";
    let err = on_small_stack(move || parse_query(&text).unwrap_err());
    assert!(err.message.contains("nests more than 256 levels"), "{err}");
    assert_eq!((err.line, err.column), (1, MAX_QUERY_DEPTH + 1));
}

#[test]
fn fifty_thousand_parentheses_are_refused() {
    let text = "(".repeat(50_000) + "has_existed(a == 1)" + &")".repeat(50_000);
    refused(text, "nests more than 256 levels");
    // Nested calls count too.
    let text = "duration_where(".repeat(50_000) + "has_existed(a == 1)";
    refused(text, "nests more than 256 levels");
    let text = "has_existed(".to_string() + &"!(".repeat(50_000) + "a == 1";
    refused(text, "nests more than 256 levels");
}

fn chain(terms: usize) -> String {
    (0..terms)
        .map(|i| format!("has_existed(a == {i})"))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// `terms` terms joined by `&&` in balanced halves.
fn balanced(lo: usize, hi: usize) -> String {
    if hi - lo == 1 {
        return format!("has_existed(a == {lo})");
    }
    let mid = (lo + hi) / 2;
    format!("({}) && ({})", balanced(lo, mid), balanced(mid, hi))
}

#[test]
fn a_twenty_thousand_term_chain_is_refused_and_the_message_says_how_to_group_it() {
    refused(chain(20_000), "group it into balanced halves");
    refused(
        (0..20_000)
            .map(|i| format!("count(a == {i}) > 1"))
            .collect::<Vec<_>>()
            .join(" || "),
        "nests more than",
    );
}

#[test]
fn the_same_chain_in_balanced_halves_works_end_to_end() {
    // 1 500 terms: within the operator limit, 12 levels deep.
    let text = balanced(0, 1_500);
    let answers = on_small_stack(move || {
        let q = parse_query(&text).unwrap();
        assert_eq!(parse_query(&q.to_string()).unwrap(), q);
        assert_eq!(FlatOp::from_op(&q).to_op().unwrap(), q);
        let mut engine = Engine::new(&q, EngineOptions::default()).unwrap();
        let events: Vec<Event> = (0..1_500)
            .map(|i| Event::new(i as u64, [("a", Value::Int(i))]))
            .collect();
        engine.ingest(&events).unwrap();
        (
            engine.value_at(None, 1_498).unwrap(),
            engine.value_at(None, 1_499).unwrap(),
        )
    });
    assert_eq!(answers.0.to_string(), "false");
    assert_eq!(answers.1.to_string(), "true");
}

/// `!` `nots` times around `has_existed(a == 1)`: the parser counts the call, the comparison and
/// the column as three levels.
fn nots(n: usize) -> String {
    "!".repeat(n) + "has_existed(a == 1)"
}

#[test]
fn a_query_at_the_depth_limit_works_through_every_walk() {
    let text = nots(MAX_QUERY_DEPTH - 3);
    on_small_stack(move || {
        let q = parse_query(&text).unwrap();
        q.validate().unwrap();
        let printed = q.to_string();
        assert_eq!(parse_query(&printed).unwrap(), q);
        let plan = Plan::new(&q);
        assert_eq!(plan.nodes.len(), MAX_QUERY_DEPTH - 2);
        let flat = FlatOp::from_op(&q);
        assert_eq!(flat.to_op().unwrap(), q);
        let json = serde_json::to_string(&q).unwrap();
        // serde_json stops at its own nesting limit with an error, not a crash.
        let _ = serde_json::from_str::<TimeLineOp>(&json);
        let mut engine = Engine::new(&q, EngineOptions::default()).unwrap();
        engine
            .ingest(&[Event::new(3, [("a", Value::Int(1))])])
            .unwrap();
        // An odd number of `!` around true.
        assert_eq!(engine.value_at(None, 3).unwrap().to_string(), "false");
        assert_eq!(engine.value_at(None, 2).unwrap().to_string(), "true");
    });
    refused(nots(MAX_QUERY_DEPTH - 2), "nests more than");
}

#[test]
fn let_bindings_that_double_forty_times_are_refused_before_they_expand() {
    let mut text = "let a0 = has_existed(x == 1);\n".to_string();
    for i in 1..=40 {
        text += &format!("let a{i} = a{} && a{};\n", i - 1, i - 1);
    }
    text += "a40";
    let err = on_small_stack(move || parse_query(&text).unwrap_err());
    assert!(err.message.contains("more than 10000 operators"), "{err}");
    // Refused at the first binding past the limit (2^11 copies of 5 parts each).
    assert_eq!(err.line, 12, "{err}");
}

#[test]
fn a_query_past_the_byte_limit_is_refused_before_it_is_read() {
    let text = format!("has_existed(a == \"{}\")", "x".repeat(MAX_QUERY_BYTES));
    let err = parse_query(&text).unwrap_err();
    assert!(err.message.contains("bytes long; the limit is"), "{err}");
}

#[test]
fn trees_built_in_rust_past_the_limits_are_refused_by_validation() {
    let mut deep = tl_has_existed(col("a").equal_to(1));
    for _ in 0..2_000 {
        deep = deep.not();
    }
    let err = on_small_stack(move || {
        let err = deep.validate().unwrap_err();
        assert!(Engine::new(&deep, EngineOptions::default()).is_err());
        std::mem::forget(deep);
        err
    });
    assert!(err.message.contains("the limits are 256 levels"), "{err}");
    // 2^13 leaves in balanced pairs: 15 levels deep, past the operator limit.
    let mut wide = tl_has_existed(col("a").equal_to(0));
    for _ in 0..13 {
        wide = wide.clone().and(wide);
    }
    let err = wide.validate().unwrap_err();
    assert!(err.message.contains("operators"), "{err}");
}

fn node(operator: &str, inputs: Vec<u32>) -> FlatNode {
    FlatNode {
        operator: operator.into(),
        inputs,
        column: None,
        predicate: None,
        value: None,
        within: None,
    }
}

fn leaf() -> FlatNode {
    FlatNode {
        predicate: Some("a == 1".into()),
        ..node("has_existed", vec![])
    }
}

#[test]
fn flat_trees_that_share_nodes_are_measured_before_they_are_built() {
    // Each node reads the one before it twice: 2^60 operators from 61 nodes.
    let mut nodes = vec![leaf()];
    for i in 0..60 {
        nodes.push(node("and", vec![i, i]));
    }
    let err = FlatOp { nodes }.to_op().unwrap_err();
    assert!(err.contains("10000 operators"), "{err}");
    assert!(err.starts_with("node 12 (and)"), "{err}");
}

#[test]
fn flat_trees_past_the_depth_or_node_limits_are_refused() {
    let chain = |n: u32| {
        let mut nodes = vec![leaf()];
        nodes.extend((0..n).map(|i| node("not", vec![i])));
        FlatOp { nodes }
    };
    let err = on_small_stack(move || chain(5_000).to_op().unwrap_err());
    assert!(err.contains("levels deep"), "{err}");
    let err = chain(20_000).to_op().unwrap_err();
    assert!(err.contains("20001 nodes; the limit is 10000"), "{err}");
    on_small_stack(move || chain(250).to_op().unwrap());
    // A node nobody reads is a mistake worth naming.
    let err = FlatOp {
        nodes: vec![leaf(), leaf(), node("not", vec![1])],
    }
    .to_op()
    .unwrap_err();
    assert_eq!(
        err,
        "node 0 (has_existed): is not read by the result (the last node)"
    );
    let err = FlatOp {
        nodes: vec![leaf(), node("not", vec![0, 0])],
    }
    .to_op()
    .unwrap_err();
    assert_eq!(err, "node 1 (not): takes 1 input(s), found 2");
}

#[test]
fn packed_batches_past_the_limits_are_refused_with_the_byte() {
    let long = "x".repeat(MAX_STRING_BYTES + 1);
    let text = format!("e1 5 1 1:a s{}:{long}", long.len());
    let err = wire::decode_events(&text).unwrap_err();
    assert_eq!(err.at, 12, "{err}");
    assert!(err.message.contains("the limit is 65536"), "{err}");
    let text = format!("e1 5 1 {}:{long} b1", long.len());
    assert!(wire::decode_events(&text).is_err());

    let text = format!("e1 5 {}", MAX_EVENT_COLUMNS + 1);
    let err = wire::decode_events(&text).unwrap_err();
    assert_eq!(err.at, 5, "{err}");
    assert!(err.message.contains("columns; the limit is 1024"), "{err}");

    let text = "e1".to_string() + &" 0 0".repeat(MAX_BATCH_EVENTS + 1);
    let err = wire::decode_events(&text).unwrap_err();
    assert!(err.message.contains("more than 1048576 events"), "{err}");
    assert_eq!(
        wire::decode_events(&("e1".to_string() + &" 0 0".repeat(MAX_BATCH_EVENTS)))
            .unwrap()
            .len(),
        MAX_BATCH_EVENTS
    );

    let text = "e1 0 1 1:a s".to_string() + &" ".repeat(MAX_PACKED_BYTES);
    let err = wire::decode_events(&text).unwrap_err();
    assert_eq!(err.at, 0);
    assert!(err.message.contains("bytes; the limit is"), "{err}");
}

#[test]
fn a_batch_of_distinct_column_names_decodes_in_linear_time() {
    // 200 000 events, each with a column name of its own: the decoder's sharing of names must
    // not scan every earlier name for each (that would be quadratic: 2 * 10^10 comparisons).
    let events: Vec<Event> = (0..200_000)
        .map(|i| Event::new(i, [(format!("c{i}").as_str(), Value::Int(1))]))
        .collect();
    let text = wire::encode_events(&events);
    let started = std::time::Instant::now();
    assert_eq!(wire::decode_events(&text).unwrap().len(), 200_000);
    // Generous: linear decoding takes well under a second even unoptimised.
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

#[test]
fn typed_batches_are_checked_against_the_same_limits() {
    let ok = vec![Event::new(1, [("a", Value::Int(1))])];
    check_batch(&ok).unwrap();
    let long = Event::new(1, [("a", Value::str(&"y".repeat(MAX_STRING_BYTES + 1)))]);
    let err = check_batch(&[ok[0].clone(), long]).unwrap_err();
    assert!(
        err.starts_with("event 2 (time 1): column \"a\": a string of 65537 bytes"),
        "{err}"
    );
    let name = "n".repeat(MAX_STRING_BYTES + 1);
    let err = check_batch(&[Event::new(1, [(name.as_str(), Value::Int(1))])]).unwrap_err();
    assert!(err.contains("a column name of 65537 bytes"), "{err}");
    let names: Vec<String> = (0..=MAX_EVENT_COLUMNS).map(|i| format!("c{i}")).collect();
    let wide = Event::new(1, names.iter().map(|n| (n.as_str(), Value::Int(1))));
    let err = check_batch(&[wide]).unwrap_err();
    assert!(err.contains("1025 columns; the limit is 1024"), "{err}");
}

#[test]
fn errors_quote_a_window_of_a_long_line_not_the_whole_line() {
    let value = "v".repeat(100_000);
    let err =
        Event::from_json(&format!(r#"{{"time": 1, "event": {{"a": ["{value}"]}}}}"#)).unwrap_err();
    assert!(err.len() < 300, "{} bytes: {}", err.len(), &err[..300]);
    assert!(err.contains('…'), "{err}");
    let err = Event::from_json(&format!(r#"{{"time": "{value}", "event": {{}}}}"#)).unwrap_err();
    assert!(err.len() < 300, "{} bytes", err.len());
}
