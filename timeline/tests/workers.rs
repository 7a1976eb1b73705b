//! Per-node workers wired together by their deltas compute what the engine computes: the
//! distributed model, in one process.

mod common;

use common::*;
use proptest::prelude::*;
use timeline::op::TimeLineOp;
use timeline::{
    DerivedNode, Engine, EngineOptions, Event, FlatOp, KeyDelta, KeyQuery, LeafNode, MirrorNode,
    Plan, Value,
};

/// A network of workers for one plan, pushing deltas from leaves up, as the components do.
struct Network {
    plan: Plan,
    leaves: Vec<Option<LeafNode>>,
    derived: Vec<Option<DerivedNode>>,
}

impl Network {
    fn new(query: &TimeLineOp, key: Option<&str>, retention: Option<u64>) -> Network {
        let plan = Plan::new(query);
        let mut leaves = Vec::new();
        let mut derived = Vec::new();
        for n in &plan.nodes {
            if n.op.is_leaf() {
                leaves.push(Some(LeafNode::new(&n.op, key, retention).unwrap()));
                derived.push(None);
            } else {
                leaves.push(None);
                derived.push(Some(DerivedNode::new(&n.op, retention).unwrap()));
            }
        }
        Network {
            plan,
            leaves,
            derived,
        }
    }

    /// Ingests a batch; returns the deltas the root node made, in order.
    fn ingest(&mut self, events: &[Event]) -> Vec<KeyDelta> {
        let root = self.plan.root();
        let mut root_out = Vec::new();
        // First in, first out: a node's deltas reach its parents in the order it made them,
        // as in the components, where each is pushed as soon as it is made. (Each delta
        // replaces its input's suffix, so an older one applied after a newer one undoes it.)
        let mut pending: std::collections::VecDeque<(usize, Vec<KeyDelta>)> = Default::default();
        for (i, leaf) in self.leaves.iter_mut().enumerate() {
            if let Some(leaf) = leaf {
                pending.push_back((i, leaf.ingest(events).unwrap()));
            }
        }
        while let Some((from, deltas)) = pending.pop_front() {
            if from == root {
                root_out.extend(deltas.iter().cloned());
            }
            for &p in &self.plan.nodes[from].parents.clone() {
                for (slot, &input) in self.plan.nodes[p].inputs.clone().iter().enumerate() {
                    if input == from {
                        let out = self.derived[p]
                            .as_mut()
                            .unwrap()
                            .apply(slot, &deltas)
                            .unwrap();
                        pending.push_back((p, out));
                    }
                }
            }
        }
        root_out
    }

    fn snapshot(&self, node: usize) -> Vec<KeyDelta> {
        match (&self.leaves[node], &self.derived[node]) {
            (Some(l), _) => l.snapshot(),
            (_, Some(d)) => d.snapshot(),
            _ => unreachable!(),
        }
    }

    fn timeline(&self, node: usize, key: Option<&Value>) -> Option<&timeline::Timeline> {
        match (&self.leaves[node], &self.derived[node]) {
            (Some(l), _) => l.timeline(key).ok(),
            (_, Some(d)) => d.timeline(key).ok(),
            _ => None,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn workers_wired_by_deltas_equal_the_engine(
        query in any_query(3),
        (events, order) in events(30, 30).prop_flat_map(|e| { let n = e.len(); (Just(e), shuffled(n)) }),
        keys in prop::collection::vec(0u8..2, 30),
        batch in 1usize..6,
    ) {
        let events: Vec<Event> = order.iter().map(|&i| {
            let mut e = events[i].clone();
            e.fields.push(("k".into(), Value::Int(keys[i] as i64)));
            e
        }).collect();
        let mut network = Network::new(&query, Some("k"), None);
        let mut engine = Engine::new(&query, EngineOptions { key_column: Some("k".into()), retention: None }).unwrap();
        for chunk in events.chunks(batch) {
            network.ingest(chunk);
            engine.ingest(chunk).unwrap();
        }
        for key in engine.keys() {
            for i in 0..network.plan.nodes.len() {
                let mine = network.timeline(i, key);
                let theirs = engine.node_timeline(key, i).unwrap().into_owned();
                // A derived node that never heard of a key holds only its initial value.
                match mine {
                    Some(tl) => prop_assert_eq!(tl, &theirs, "{} key {:?}", network.plan.nodes[i].op, key),
                    None => prop_assert!(theirs.points().is_empty(), "{} key {:?}", network.plan.nodes[i].op, key),
                }
            }
        }
    }

    #[test]
    fn workers_with_retention_answer_like_the_engine(
        query in any_query(2),
        events in events(200, 60),
        h in 5u64..40,
    ) {
        let mut events = events;
        events.sort_by_key(|e| e.time);
        let mut network = Network::new(&query, None, Some(h));
        let mut engine = Engine::new(&query, EngineOptions { key_column: None, retention: Some(h) }).unwrap();
        for e in &events {
            network.ingest(std::slice::from_ref(e));
            engine.ingest(std::slice::from_ref(e)).unwrap();
        }
        if events.is_empty() { return Ok(()); }
        let root = network.plan.root();
        let horizon = engine.horizon(None).unwrap().unwrap();
        for t in horizon..horizon_of(&query, 200) {
            let want = engine.value_at(None, t).unwrap();
            let got = match (&network.leaves[root], &network.derived[root]) {
                (Some(l), _) => l.value_at(None, t).unwrap(),
                (_, Some(d)) => d.value_at(None, t).unwrap_or_else(|_| query.initial_state()),
                _ => unreachable!(),
            };
            prop_assert!(got.same(&want), "{} at {}: {:?} vs {:?}", query, t, got, want);
        }
        // Every node, including those the engine evaluates inside a pointwise tree and so
        // computes from collapsed inputs when asked.
        for i in 0..network.plan.nodes.len() {
            let Some(mine) = network.timeline(i, None) else { continue };
            let theirs = engine.node_timeline(None, i).unwrap();
            for t in horizon..horizon_of(&query, 200) {
                prop_assert!(
                    mine.value_at(t).same(&theirs.value_at(t)),
                    "{} at {}: {:?} vs {:?}", network.plan.nodes[i].op, t, mine.value_at(t), theirs.value_at(t)
                );
            }
        }
        // A derived node created now starts from its inputs' snapshots, as a worker shared with
        // a later job does: their history collapsed, their values at the horizon travel as well.
        // A duration cannot (what it counted before the horizon is gone with its inputs'
        // history): its inputs say so, and the worker refuses to start; where they dropped
        // nothing, it starts right.
        for (i, node) in network.plan.nodes.iter().enumerate() {
            let Some(wired) = network.timeline(i, None) else { continue };
            if node.op.is_leaf() {
                continue;
            }
            let mut late = DerivedNode::new(&node.op, Some(h)).unwrap();
            let dropped: usize = node
                .inputs
                .iter()
                .map(|&input| match (&network.leaves[input], &network.derived[input]) {
                    (Some(l), _) => l.stats().history_dropped,
                    (_, Some(d)) => d.stats().history_dropped,
                    _ => unreachable!(),
                })
                .sum();
            if late.measures_from_origin() && dropped > 0 {
                continue;
            }
            for (slot, &input) in node.inputs.iter().enumerate() {
                let snapshot = match (&network.leaves[input], &network.derived[input]) {
                    (Some(l), _) => l.snapshot(),
                    (_, Some(d)) => d.snapshot(),
                    _ => unreachable!(),
                };
                late.apply(slot, &snapshot).unwrap();
            }
            let Ok(late) = late.timeline(None) else { continue };
            for t in horizon..horizon_of(&query, 200) {
                prop_assert!(
                    late.value_at(t).same(&wired.value_at(t)),
                    "{} started late, at {}: {:?} vs {:?}", node.op, t, late.value_at(t), wired.value_at(t)
                );
            }
        }
    }

    /// A reader's copy of the result node, started from its snapshot at some batch, fed its
    /// deltas after that, and handed on to a successor (from the copy's own snapshot) at a
    /// later batch, holds what the node holds, and answers reads as it does, before and past
    /// a retention horizon.
    #[test]
    fn a_mirror_handed_on_copies_the_node(
        query in any_query(3),
        (events, order) in events(40, 40).prop_flat_map(|e| { let n = e.len(); (Just(e), shuffled(n)) }),
        keys in prop::collection::vec(0u8..3, 40),
        batch in 1usize..6,
        attach in 0usize..10,
        hand_over in 0usize..10,
        retention in prop::option::of(5u64..40),
    ) {
        let mut events: Vec<Event> = order.iter().map(|&i| {
            let mut e = events[i].clone();
            e.fields.push(("k".into(), Value::Int(keys[i] as i64)));
            e
        }).collect();
        // Under retention, a late event before the horizon is refused: send in time order.
        if retention.is_some() {
            events.sort_by_key(|e| e.time);
        }
        let mut network = Network::new(&query, Some("k"), retention);
        let root = network.plan.root();
        let mut mirror: Option<MirrorNode> = None;
        for (i, chunk) in events.chunks(batch).enumerate() {
            if i == attach {
                let mut m = MirrorNode::new(&query, retention).unwrap();
                m.apply(&network.snapshot(root));
                mirror = Some(m);
            }
            if i == attach + hand_over {
                if let Some(m) = &mirror {
                    // A successor told twice keeps the second copy.
                    let mut next = MirrorNode::new(&query, retention).unwrap();
                    next.apply(&network.snapshot(root));
                    next.replace(&m.snapshot());
                    mirror = Some(next);
                }
            }
            let out = network.ingest(chunk);
            if let Some(m) = &mut mirror {
                m.apply(&out);
            }
        }
        let mirror = mirror.unwrap_or_else(|| {
            let mut m = MirrorNode::new(&query, retention).unwrap();
            m.apply(&network.snapshot(root));
            m
        });
        let mut keys: Vec<Option<Value>> = (0..3).map(|k| Some(Value::Int(k))).collect();
        keys.push(Some(Value::Int(9)));
        for key in &keys {
            let want = network.timeline(root, key.as_ref());
            let got = mirror.timeline(key.as_ref()).ok();
            prop_assert_eq!(want.is_some(), got.is_some(), "{} key {:?}", query, key);
            let (Some(want), Some(got)) = (want, got) else { continue };
            for t in 0..horizon_of(&query, 40) {
                let node = match (&network.leaves[root], &network.derived[root]) {
                    (Some(l), _) => l.value_at(key.as_ref(), t).map_err(|e| e.to_string()),
                    (_, Some(d)) => d.value_at(key.as_ref(), t).map_err(|e| e.to_string()),
                    _ => unreachable!(),
                };
                let copy = mirror.value_at(key.as_ref(), t).map_err(|e| e.to_string());
                match (node, copy) {
                    (Ok(a), Ok(b)) => prop_assert!(a.same(&b), "{} key {:?} at {}: {:?} vs {:?}", query, key, t, a, b),
                    (a, b) => prop_assert_eq!(a.is_ok(), b.is_ok(), "{} key {:?} at {}", query, key, t),
                }
                if retention.is_none() {
                    prop_assert!(want.value_at(t).same(&got.value_at(t)));
                }
            }
        }
        let node_stats = match (&network.leaves[root], &network.derived[root]) {
            (Some(l), _) => l.stats(),
            (_, Some(d)) => d.stats(),
            _ => unreachable!(),
        };
        let copy_stats = mirror.stats();
        prop_assert_eq!(copy_stats.keys, node_stats.keys);
        // Without retention a node does not tell its readers of a latest time that moved
        // nothing else; under retention it does, since the horizon follows it.
        if retention.is_some() {
            prop_assert_eq!(copy_stats.last_time, node_stats.last_time);
        }
    }

    /// Paging through a node's keys with a search finds, page after page, exactly the keys
    /// that a filter over all of them finds, in order; `matching` counts them all; and the
    /// leaf counts the events and knows the latest time.
    #[test]
    fn key_pages_walk_the_matching_keys_in_order(
        keys in prop::collection::vec(prop_oneof![
            (0i64..300).prop_map(Value::Int),
            "[a-cA-C]{0,3}".prop_map(|s| Value::Str(s.into())),
            any::<bool>().prop_map(Value::Bool),
        ], 1..60),
        search in prop::option::of("[a-cA-C0-9]{0,2}"),
        limit in 1u32..7,
    ) {
        let events: Vec<Event> = keys.iter().enumerate().map(|(i, k)| Event {
            time: i as u64 * 3,
            fields: vec![("k".into(), k.clone()), ("a".into(), Value::Int(1))],
        }).collect();
        let query: TimeLineOp = "latest_event_to_state(a) == 1".parse().unwrap();
        let mut network = Network::new(&query, Some("k"), None);
        network.ingest(&events);
        let root = network.plan.root();
        let leaf = network.leaves.iter().flatten().next().unwrap();
        let derived = network.derived[root].as_ref().unwrap();
        let want: Vec<Option<Value>> = leaf.keys().into_iter()
            .filter(|k| search.as_deref().is_none_or(|s| timeline::worker::key_text(*k).to_lowercase().contains(&s.to_lowercase())))
            .map(|k| k.cloned())
            .collect();
        for page_of in [&|q: &KeyQuery| leaf.key_page(q), &|q: &KeyQuery| derived.key_page(q)] as [&dyn Fn(&KeyQuery) -> timeline::KeyPage; 2] {
            let mut got = Vec::new();
            let mut q = KeyQuery { after: None, search: search.clone(), limit };
            loop {
                let page = page_of(&q);
                prop_assert_eq!(page.matching, want.len() as u64);
                prop_assert!(page.keys.len() <= limit as usize);
                let Some(last) = page.keys.last().cloned() else { break };
                got.extend(page.keys);
                q.after = last;
            }
            prop_assert_eq!(&got, &want);
        }
        prop_assert_eq!(leaf.stats().events, events.len() as u64);
        prop_assert_eq!(leaf.stats().last_time, Some((events.len() as u64 - 1) * 3));
        prop_assert_eq!(derived.stats().last_time, Some((events.len() as u64 - 1) * 3));
    }

    #[test]
    fn flat_queries_round_trip(query in any_query(4)) {
        let flat = FlatOp::from_op(&query);
        prop_assert_eq!(flat.to_op().unwrap(), query);
        let json = serde_json::to_string(&flat).unwrap();
        prop_assert_eq!(serde_json::from_str::<FlatOp>(&json).unwrap(), flat);
    }
}

#[test]
fn key_pages_past_the_limits_are_refused() {
    let big = KeyQuery {
        limit: timeline::limits::MAX_KEY_PAGE + 1,
        ..KeyQuery::default()
    };
    assert!(big
        .check()
        .unwrap_err()
        .contains("more than the limit of 1000"));
    let long = KeyQuery {
        limit: 10,
        search: Some("x".repeat(timeline::limits::MAX_KEY_SEARCH_BYTES + 1)),
        ..KeyQuery::default()
    };
    assert!(long.check().unwrap_err().contains("key search"));
    assert_eq!(
        KeyQuery {
            limit: 10,
            ..KeyQuery::default()
        }
        .check(),
        Ok(())
    );
}

#[test]
fn bad_flat_queries_name_the_node() {
    let mut flat = FlatOp::from_op(&"has_existed(a == 1) && count(b == 2) > 1".parse().unwrap());
    flat.nodes[0].predicate = Some("a == ".into());
    assert!(flat
        .to_op()
        .unwrap_err()
        .starts_with("node 0 (has_existed): predicate: line 1, column 6"));
    let mut flat = FlatOp::from_op(&"!has_existed(a == 1)".parse().unwrap());
    flat.nodes[1].inputs = vec![5];
    assert_eq!(
        flat.to_op().unwrap_err(),
        "node 1 (not): input 5 is not an earlier node"
    );
    flat.nodes[1].operator = "nope".into();
    flat.nodes[1].inputs = vec![];
    assert!(flat
        .to_op()
        .unwrap_err()
        .contains("unknown operator `nope`"));
    assert!(FlatOp { nodes: vec![] }.to_op().is_err());
}

#[test]
fn worker_names_are_deterministic_and_scoped() {
    use timeline::Scope;
    let plan = Plan::new(
        &"has_existed(a == 1) && !has_existed(a == 1)"
            .parse()
            .unwrap(),
    );
    let other = Plan::new(&"count(b == 1) > 2 || has_existed(a == 1)".parse().unwrap());
    let scope = Scope {
        key_column: Some("sid".into()),
        retention: None,
        shards: 2,
    };
    let shared = other
        .nodes
        .iter()
        .find(|n| n.op == plan.nodes[0].op)
        .unwrap();
    assert_eq!(
        plan.nodes[0].worker_name(&scope, 1),
        shared.worker_name(&scope, 1)
    );
    assert_ne!(
        plan.nodes[0].worker_name(&scope, 0),
        plan.nodes[0].worker_name(&scope, 1)
    );
    let unkeyed = Scope {
        key_column: None,
        ..scope.clone()
    };
    assert_ne!(
        plan.nodes[0].worker_name(&scope, 0),
        plan.nodes[0].worker_name(&unkeyed, 0)
    );
    let shards: Vec<u32> = (0..100)
        .map(|i| timeline::shard_of(Some(&Value::Int(i)), 4))
        .collect();
    assert!((0..4).all(|s| shards.contains(&s)));
    assert_eq!(
        timeline::shard_of(Some(&Value::Int(2)), 4),
        timeline::shard_of(Some(&Value::Float(2.0)), 4)
    );
}

/// Found by `workers_wired_by_deltas_equal_the_engine`: a late event reaches a node that reads
/// one input twice, which then makes two deltas (one per slot) for its parent; the network used
/// to deliver them newest first, and the older one undid the newer.
#[test]
fn a_nodes_deltas_reach_its_parent_in_order() {
    let query = timeline::parse_query(
        r#"(has_existed(a == "x") || (has_existed(a == "y" && (a < 3.5 && a == "x")) || latest_event_to_state(a) <= 5)) || (distinct_within(a, 5) < 7.5 && (latest_event_to_state(c) && latest_event_to_state(c)))"#,
    )
    .unwrap();
    let ev = |t: u64, k: i64, f: Vec<(&str, Value)>| {
        let mut fields: Vec<(std::sync::Arc<str>, Value)> =
            f.into_iter().map(|(c, v)| (c.into(), v)).collect();
        fields.push(("k".into(), Value::Int(k)));
        Event { time: t, fields }
    };
    let events = [
        ev(12, 0, vec![("b", Value::str("y"))]),
        ev(27, 0, vec![("c", Value::Int(1)), ("a", Value::Bool(false))]),
        ev(15, 0, vec![("b", Value::Int(3))]),
        ev(24, 0, vec![("c", Value::Int(2)), ("c", Value::str("y"))]),
        ev(25, 0, vec![("b", Value::Int(0)), ("a", Value::Int(1))]),
        ev(
            12,
            0,
            vec![("b", Value::str("y")), ("c", Value::Bool(false))],
        ),
        ev(1, 1, vec![("b", Value::Int(2)), ("b", Value::str("y"))]),
        ev(22, 0, vec![("c", Value::Bool(true))]),
    ];
    let mut network = Network::new(&query, Some("k"), None);
    let options = EngineOptions {
        key_column: Some("k".into()),
        retention: None,
    };
    let mut engine = Engine::new(&query, options).unwrap();
    for chunk in events.chunks(5) {
        network.ingest(chunk);
        engine.ingest(chunk).unwrap();
    }
    for key in engine.keys() {
        for i in 0..network.plan.nodes.len() {
            let theirs = engine.node_timeline(key, i).unwrap().into_owned();
            if let Some(mine) = network.timeline(i, key) {
                assert_eq!(mine, &theirs, "{} key {:?}", network.plan.nodes[i].op, key);
            }
        }
    }
}

/// A key whose output, origin and (under retention) latest time did not move is not sent on:
/// such a delta would change nothing in a reader, and each sent batch is a worker invocation.
#[test]
fn a_delta_that_changes_nothing_is_not_sent() {
    let op: TimeLineOp = "latest_event_to_state(a)".parse().unwrap();
    let e = |t: u64, column: &str| Event::new(t, [("k", "s".into()), (column, Value::Int(1))]);
    for retention in [None, Some(100)] {
        let mut leaf = LeafNode::new(&op, Some("k"), retention).unwrap();
        let first = leaf.ingest(&[e(10, "a")]).unwrap();
        assert_eq!(first.len(), 1, "a new key is told");
        let unread = leaf.ingest(&[e(20, "z")]).unwrap();
        match retention {
            None => assert!(unread.is_empty(), "{unread:?}"),
            Some(_) => {
                assert_eq!(unread.len(), 1, "the horizon follows the latest time");
                assert_eq!((unread[0].max_time, &unread[0].change), (20, &None));
            }
        }
        let earlier = leaf.ingest(&[e(5, "z")]).unwrap();
        assert_eq!(earlier.len(), 1, "the origin moved");
        assert_eq!(earlier[0].origin, 5);
        // A derived node passes on only what changes its readers too.
        let cmp: TimeLineOp = "latest_event_to_state(a) == 1".parse().unwrap();
        let mut derived = DerivedNode::new(&cmp, retention).unwrap();
        assert_eq!(derived.apply(0, &first).unwrap().len(), 1);
        assert_eq!(
            derived.apply(0, &unread).unwrap().len(),
            unread.len(),
            "a later latest time reaches the readers only under retention"
        );
        // The value 1 again: the leaf's output does not change.
        let no_change = leaf.ingest(&[e(30, "a")]).unwrap();
        assert_eq!(no_change.len(), usize::from(retention.is_some()));
        assert!(no_change.iter().all(|d| d.change.is_none()));
        assert_eq!(
            derived.apply(0, &no_change).unwrap().len(),
            usize::from(retention.is_some())
        );
    }
}
