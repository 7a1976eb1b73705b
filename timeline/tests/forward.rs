//! A leaf fed what `forward::split_for_leaves` sends it (its columns only, and only the events
//! that can change what it holds) holds and refuses exactly what it would if it were fed every
//! event of its shard, reduced to its columns (which is what the driver sent before).

use proptest::prelude::*;
use timeline::forward::{split_for_leaves, whole_batch_error};
use timeline::wire::{decode_events, encode_events, scan_events};
use timeline::{parse_query, shard_of, Event, KeyDelta, LeafNode, Value};

/// Leaves over columns `a`, `b`, `c`: one of each kind, a windowed one, and one that must see
/// every event (its predicate holds when `c` is missing).
const LEAVES: [&str; 6] = [
    "latest_event_to_state(a)",
    "has_existed(b == 1)",
    "count_within(a == 2, 5)",
    "distinct_within(b, 4)",
    "has_existed(!(c == 1))",
    "count(a > 0)",
];

fn leaf(op: &str, retention: Option<u64>) -> LeafNode {
    LeafNode::new(&parse_query(op).unwrap(), Some("k"), retention).unwrap()
}

/// The events of `shard`, reduced to the key and `leaf`'s columns: every event sent, none left out.
fn every_event(events: &[Event], leaf: &LeafNode, shards: u32, shard: u32) -> Vec<Event> {
    events
        .iter()
        .filter(|e| shard_of(e.get("k"), shards) == shard)
        .map(|e| {
            Event::new(
                e.time,
                leaf.projected_fields(e).map(|(c, v)| (c, v.clone())),
            )
        })
        .collect()
}

fn sorted(mut deltas: Vec<KeyDelta>) -> Vec<String> {
    let mut out: Vec<String> = deltas.drain(..).map(|d| format!("{d:?}")).collect();
    out.sort();
    out
}

fn event() -> impl Strategy<Value = Event> {
    let value = prop_oneof![
        (0i64..3).prop_map(Value::Int),
        Just(Value::from("x")),
        Just(Value::Float(2.0)),
    ];
    let key = prop_oneof![
        Just(Value::from("p")),
        Just(Value::from("q")),
        Just(Value::Int(7)),
        Just(Value::Float(7.0)), // the same key as 7, packed differently
        Just(Value::from("r")),
    ];
    (
        0u64..40,
        key,
        prop::collection::vec(
            (prop::sample::select(vec!["a", "b", "c", "z"]), value),
            0..3,
        ),
    )
        .prop_map(|(time, key, fields)| {
            let mut all = vec![("k", key)];
            all.extend(fields);
            Event::new(time, all)
        })
}

/// Batches in roughly increasing time (each batch's times shifted on), some of them shuffled.
fn batches() -> impl Strategy<Value = Vec<Vec<Event>>> {
    prop::collection::vec((prop::collection::vec(event(), 0..25), any::<bool>()), 1..4).prop_map(
        |bs| {
            bs.into_iter()
                .enumerate()
                .map(|(n, (mut events, in_order))| {
                    for e in &mut events {
                        e.time += 30 * n as u64;
                    }
                    if in_order {
                        events.sort_by_key(|e| e.time);
                    }
                    events
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn leaves_fed_what_is_forwarded_hold_what_every_event_gives(
        batches in batches(),
        retention in prop::option::of(0u64..30),
        shards in 1u32..4,
    ) {
        let nodes: Vec<LeafNode> = LEAVES.iter().map(|op| leaf(op, retention)).collect();
        // Per leaf and shard: fed every event, and fed what is forwarded.
        let mut old: Vec<Vec<LeafNode>> =
            nodes.iter().map(|l| vec![l.clone(); shards as usize]).collect();
        let mut new = old.clone();
        let refs: Vec<&LeafNode> = nodes.iter().collect();
        for batch in &batches {
            let packed = encode_events(batch);
            let scanned = scan_events(&packed).unwrap();
            let forwarded = split_for_leaves(&scanned, Some("k"), shards, &refs).unwrap();
            for (l, node) in nodes.iter().enumerate() {
                for shard in 0..shards {
                    let full = every_event(batch, node, shards, shard);
                    let sent = forwarded
                        .iter()
                        .find(|b| b.leaf == l && b.shard == shard)
                        .map(|b| decode_events(&b.packed).unwrap())
                        .unwrap_or_default();
                    prop_assert!(sent.len() <= full.len());
                    let (o, n) = (&mut old[l][shard as usize], &mut new[l][shard as usize]);
                    let (a, b) = (o.ingest(&full), n.ingest(&sent));
                    prop_assert_eq!(a.is_ok(), b.is_ok(), "{}: {:?} / {:?}", LEAVES[l], a, b);
                    if let (Ok(a), Ok(b)) = (a, b) {
                        prop_assert_eq!(sorted(a), sorted(b), "{}", LEAVES[l]);
                    } else {
                        // A refused batch changes nothing on either side; start both again
                        // from the same state.
                        *n = o.clone();
                    }
                    prop_assert_eq!(sorted(o.snapshot()), sorted(n.snapshot()), "{}", LEAVES[l]);
                    let (so, sn) = (o.stats(), n.stats());
                    prop_assert_eq!(
                        (so.keys, so.change_points, so.mismatches),
                        (sn.keys, sn.change_points, sn.mismatches)
                    );
                }
            }
        }
    }
}

#[test]
fn events_in_time_order_send_a_leaf_its_own_events_and_each_keys_first_and_last() {
    let events: Vec<Event> = (0..10)
        .map(|t| match t {
            3 => Event::new(t, [("k", "s".into()), ("a", 1.into()), ("z", 9.into())]),
            _ => Event::new(t, [("k", "s".into()), ("z", Value::Int(t as i64))]),
        })
        .collect();
    let packed = encode_events(&events);
    let scanned = scan_events(&packed).unwrap();
    let node = leaf("latest_event_to_state(a)", None);
    let out = split_for_leaves(&scanned, Some("k"), 1, &[&node]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].positions, [0, 3, 9]);
    assert_eq!(
        out[0].packed, "e1 0 1 1:k s1:s 3 2 1:k s1:s 1:a i1 9 1 1:k s1:s",
        "only the key and the leaf's column travel"
    );
}

#[test]
fn a_late_event_travels_with_the_event_it_is_late_behind() {
    // Times 10, 50, 20, 60: 20 is late behind 50 (with a horizon of 25 it is refused).
    let events: Vec<Event> = [10, 50, 20, 60]
        .iter()
        .map(|&t| Event::new(t, [("k", "s".into()), ("z", 1.into())]))
        .collect();
    let packed = encode_events(&events);
    let scanned = scan_events(&packed).unwrap();
    let node = leaf("latest_event_to_state(a)", Some(25));
    let out = split_for_leaves(&scanned, Some("k"), 1, &[&node]).unwrap();
    assert_eq!(out[0].positions, [0, 1, 2, 3]);
    let err = node
        .clone()
        .ingest(&decode_events(&out[0].packed).unwrap())
        .unwrap_err();
    assert!(
        err.message.contains("before the retention horizon 25"),
        "{err}"
    );
}

#[test]
fn an_event_without_the_key_is_refused_as_the_engine_refuses_it() {
    let events = [
        Event::new(1, [("k", "s".into())]),
        Event::new(2, [("a", 1.into())]),
    ];
    let packed = encode_events(&events);
    let scanned = scan_events(&packed).unwrap();
    let node = leaf("latest_event_to_state(a)", None);
    let err = split_for_leaves(&scanned, Some("k"), 1, &[&node]).unwrap_err();
    let engine_err = timeline::keys::split_batch(&events, Some(&"k".into()), None, |_| None)
        .err()
        .unwrap();
    assert_eq!(err, engine_err);
}

#[test]
fn a_leafs_refusal_names_the_event_by_its_place_in_the_whole_batch() {
    let positions = [0, 4, 9];
    assert_eq!(
        whole_batch_error(
            "event 2: time 5 is before the retention horizon 9",
            &positions
        ),
        "event 5: time 5 is before the retention horizon 9"
    );
    // Anything else is passed on as it is.
    for other in ["event 7: out of range", "event x: y", "no event here"] {
        assert_eq!(whole_batch_error(other, &positions), other);
    }
}

#[test]
fn scanning_refuses_what_decoding_refuses_with_the_same_error() {
    let bad = [
        "e1 5 1 1:a fNaN",
        "e1 5 1 1:a s9:abc",
        "e1 5 2 1:a i1",
        "x1 5 0",
        "e1 5 1 1:a q",
        "e1 5 1 3:a i1",
    ];
    for text in bad {
        assert_eq!(scan_events(text).err(), decode_events(text).err(), "{text}");
        assert!(scan_events(text).is_err(), "{text}");
    }
    let good = "e1 5 2 1:a s3:a b 1:b f2.5 7 0";
    let scanned = scan_events(good).unwrap();
    let decoded = decode_events(good).unwrap();
    assert_eq!(scanned.len(), decoded.len());
    for (s, d) in scanned.iter().zip(&decoded) {
        assert_eq!(s.time, d.time);
        let fields: Vec<(&str, Value)> = s.fields.iter().map(|f| (f.column, f.value())).collect();
        let expected: Vec<(&str, Value)> =
            d.fields.iter().map(|(c, v)| (&**c, v.clone())).collect();
        assert_eq!(fields, expected);
    }
}
