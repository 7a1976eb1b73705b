//! The text DSL: `Display` round-trips on random trees, JSON round-trips, and every form of
//! SPEC §4 parses.

mod common;

use common::*;
use proptest::prelude::*;
use timeline::op::*;
use timeline::{parse_query, Value};

fn odd_column() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("user id".to_string()),
        Just("col".to_string()),
        Just("true".to_string()),
        Just("count".to_string()),
        Just("quote\"d".to_string()),
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
    ]
}

fn odd_constant() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[ -~]{0,6}".prop_map(Value::from),
        any::<i64>().prop_map(Value::Int),
        (-1e12f64..1e12).prop_map(Value::Float),
        Just(Value::Float(1e300)),
        Just(Value::Float(-0.0)),
        any::<bool>().prop_map(Value::Bool),
    ]
}

/// Replaces columns and constants of a random query with awkward ones.
fn awkward(op: TimeLineOp, cols: &[String], consts: &[Value]) -> TimeLineOp {
    let mut k = 0;
    let mut next_col = || {
        k += 1;
        cols[k % cols.len()].as_str().into()
    };
    fn pred(
        p: Predicate,
        f: &mut dyn FnMut() -> std::sync::Arc<str>,
        consts: &[Value],
    ) -> Predicate {
        match p {
            Predicate::Compare { op, value, .. } => {
                let c = f();
                let v = consts
                    .get(c.len() % consts.len().max(1))
                    .cloned()
                    .unwrap_or(value);
                Predicate::Compare {
                    column: c,
                    op,
                    value: v,
                }
            }
            Predicate::And(a, b) => pred(*a, f, consts).and(pred(*b, f, consts)),
            Predicate::Or(a, b) => pred(*a, f, consts).or(pred(*b, f, consts)),
            Predicate::Not(a) => pred(*a, f, consts).not(),
        }
    }
    fn walk(
        op: TimeLineOp,
        f: &mut dyn FnMut() -> std::sync::Arc<str>,
        consts: &[Value],
    ) -> TimeLineOp {
        use TimeLineOp::*;
        match op {
            LatestEventToState { .. } => LatestEventToState { column: f() },
            DistinctWithin { within, .. } => DistinctWithin {
                column: f(),
                within,
            },
            HasExisted { predicate } => HasExisted {
                predicate: pred(predicate, f, consts),
            },
            HasExistedWithin { predicate, within } => HasExistedWithin {
                predicate: pred(predicate, f, consts),
                within,
            },
            Count { predicate } => Count {
                predicate: pred(predicate, f, consts),
            },
            CountWithin { predicate, within } => CountWithin {
                predicate: pred(predicate, f, consts),
                within,
            },
            Compare { input, op, value } => Compare {
                input: Box::new(walk(*input, f, consts)),
                op,
                value,
            },
            And(a, b) => walk(*a, f, consts).and(walk(*b, f, consts)),
            Or(a, b) => walk(*a, f, consts).or(walk(*b, f, consts)),
            Not(a) => walk(*a, f, consts).not(),
            DurationWhere(a) => tl_duration_where(walk(*a, f, consts)),
            DurationInCurState(a) => tl_duration_in_cur_state(walk(*a, f, consts)),
        }
    }
    walk(op, &mut next_col, consts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn display_parses_back_to_the_same_tree(
        query in any_query(4),
        cols in prop::collection::vec(odd_column(), 1..4),
        consts in prop::collection::vec(odd_constant(), 0..4),
    ) {
        let query = awkward(query, &cols, &consts);
        let text = query.to_string();
        let parsed = parse_query(&text).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
        prop_assert_eq!(&parsed, &query, "{}", text);
        // Same text, same tree, same node id.
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn ops_round_trip_through_json(query in any_query(4)) {
        let json = serde_json::to_string(&query).unwrap();
        let back: TimeLineOp = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, query);
    }

    #[test]
    fn garbage_never_panics(text in "[a-z_()!=<>&|,;'\" 0-9.]{0,40}") {
        let _ = parse_query(&text);
    }
}

#[test]
fn every_spelling_of_an_operator_is_the_same() {
    let want = tl_has_existed(col("a").equal_to(1));
    for name in [
        "has_existed",
        "HasExisted",
        "TLHasExisted",
        "tl_has_existed",
        "hasexisted",
        "TL_HAS_EXISTED",
    ] {
        assert_eq!(
            parse_query(&format!("{name}(a == 1)")).unwrap(),
            want,
            "{name}"
        );
    }
    let x = || tl_latest_event_to_state(col("x"));
    for (text, want) in [
        ("EqualTo(latest_event_to_state(x), 1)", x().equal_to(1)),
        (
            "NotEqualTo(latest_event_to_state(x), 1)",
            x().not_equal_to(1),
        ),
        ("LessThan(latest_event_to_state(x), 1)", x().less_than(1)),
        (
            "LessThanOrEqualTo(latest_event_to_state(x), 1)",
            x().less_than_or_equal_to(1),
        ),
        (
            "GreaterThan(latest_event_to_state(x), 1)",
            x().greater_than(1),
        ),
        (
            "GreaterThanOrEqualTo(latest_event_to_state(x), 1)",
            x().greater_than_or_equal_to(1),
        ),
        (
            "latest_event_to_state(col(\"x\")) >= 1",
            x().greater_than_or_equal_to(1),
        ),
        (
            "Or(latest_event_to_state(x), Not(latest_event_to_state(x)))",
            x().or(x().not()),
        ),
    ] {
        assert_eq!(parse_query(text).unwrap(), want, "{text}");
    }
}

#[test]
fn the_blog_post_builder_reads_like_the_dsl() {
    let built = tl_duration_where(
        tl_has_existed(col("playerStateChange").equal_to("play"))
            & !tl_has_existed_within(col("userAction").equal_to("seek"), 5)
            & tl_latest_event_to_state(col("playerStateChange")).equal_to("buffer")
            & tl_latest_event_to_state(col("cdnChange")).equal_to("CDN1"),
    );
    let text = r#"duration_where(has_existed(playerStateChange == "play") && !has_existed_within(userAction == "seek", 5) && latest_event_to_state(playerStateChange) == "buffer" && latest_event_to_state(cdnChange) == "CDN1")"#;
    assert_eq!(built.to_string(), text);
    assert_eq!(parse_query(text).unwrap(), built);
}

#[test]
fn duration_literals_are_in_the_events_time_unit() {
    use timeline::parser::parse_in_units;
    let q = |text: &str, units: u64| parse_in_units(text, units).map(|q| q.op.to_string());
    assert_eq!(
        q("has_existed_within(a == 1, 5s)", 1).unwrap(),
        "has_existed_within(a == 1, 5)"
    );
    assert_eq!(
        q("has_existed_within(a == 1, 5m)", 1).unwrap(),
        "has_existed_within(a == 1, 300)"
    );
    assert_eq!(
        q("count_within(a == 1, 2h)", 1).unwrap(),
        "count_within(a == 1, 7200)"
    );
    assert_eq!(
        q("count_within(a == 1, 1d)", 1).unwrap(),
        "count_within(a == 1, 86400)"
    );
    assert_eq!(
        q("has_existed_within(a == 1, 5m)", 1_000).unwrap(),
        "has_existed_within(a == 1, 300000)"
    );
    // A duration compares with a duration timeline, in the same unit.
    assert_eq!(
        q("duration_where(has_existed(a == 1)) > 2m", 1_000_000_000).unwrap(),
        "duration_where(has_existed(a == 1)) > 120000000000"
    );
    // Without a unit the parse is in seconds.
    assert_eq!(
        timeline::parse_query("has_existed_within(a == 1, 1m)")
            .unwrap()
            .to_string(),
        "has_existed_within(a == 1, 60)"
    );
    // Not a duration: a suffix must end the number.
    assert!(q("has_existed_within(a == 1, 5min)", 1).is_err());
    let err =
        parse_in_units("has_existed_within(a == 1, 9999999999999d)", 1_000_000_000).unwrap_err();
    assert!(err.message.contains("does not fit"), "{err}");
    assert_eq!((err.line, err.column), (1, 28));
}
