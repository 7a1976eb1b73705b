//! Fuzz targets: every reader of user or network input, with the properties that must hold
//! for any input. A target panics (which the fuzzer reports as a crash) only when a property
//! fails; a refused input is an `Err`, as it must be.
//!
//! The AFL++ binaries (`src/bin/fuzz-*.rs`, `scripts/fuzz`) call these functions; so does
//! `tests/corpus.rs`, which replays every corpus file in `corpus/` under `cargo test`.

use timeline::aggregate::{
    group_by, AggFn, AggregateEngine, GroupSelector, MergeAggregateNode, PartialBatch, Query,
    QueryPlan,
};
use timeline::limits::{excerpt, MAX_QUERY_DEPTH};
use timeline::op::{col, tl_latest_event_to_state};
use timeline::Event;
use timeline::{parse_query, wire, Engine, EngineOptions, FlatOp, Plan, TimeLineOp};
use timeline_formats::input::{self, InputError};
use timeline_formats::progress::Progress;
use timeline_formats::shards;
use timeline_formats::time::TimeSpec;

/// A fuzz target: takes any bytes, panics only when a property fails.
pub type Target = fn(&[u8]);

/// The targets, by name (the corpus folder and the binary `fuzz-{name}`).
pub const TARGETS: &[(&str, Target)] = &[
    ("dsl", dsl),
    ("flat", flat),
    ("events", events),
    ("wire", wire),
];

/// The query DSL: any text is parsed or refused with a position inside the text; an accepted
/// query (with or without `| aggregate(…)`) validates, plans, runs, prints back to the same
/// tree, and flattens and rebuilds.
pub fn dsl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The per-key parse and the full one (which also takes `| aggregate(…)`) agree.
    let per_key = parse_query(text);
    match timeline::parser::parse(text) {
        Ok(query) => {
            match (&query.aggregate, &per_key) {
                (None, Ok(op)) => assert_eq!(op, &query.op),
                (Some(_), Err(_)) => {}
                (a, p) => panic!("the two parses disagree: {a:?} vs {p:?}"),
            }
            accepted_aggregate(&query);
            accepted(&query.op)
        }
        Err(e) => {
            assert!(per_key.is_err(), "only the per-key parse accepted it");
            let lines = text.split('\n').count();
            assert!(
                e.line >= 1 && e.line <= lines.max(1),
                "{e} for a text of {lines} lines"
            );
            assert!(e.column >= 1, "{e}");
            let line = text.lines().nth(e.line - 1).unwrap_or("");
            let (window, column) = excerpt(line, e.column);
            assert!(
                column >= 1 && column <= window.chars().count() + 1,
                "{e}: {window}"
            );
        }
    }
}

/// What every accepted query must do.
fn accepted(query: &TimeLineOp) {
    query.validate().expect("an accepted query validates");
    let plan = Plan::new(query);
    assert!(!plan.nodes.is_empty());
    Engine::new(query, EngineOptions::default()).expect("an accepted query runs");
    let (depth, _) = query.shape();
    // Printing may add a level of parentheses or `col(…)` that the input wrote otherwise; only
    // a query well inside the limit is sure to read back.
    if depth + 8 < MAX_QUERY_DEPTH {
        let printed = query.to_string();
        let back =
            parse_query(&printed).unwrap_or_else(|e| panic!("`{printed}` does not read back: {e}"));
        assert_eq!(&back, query, "`{printed}` reads back as another query");
        let flat = FlatOp::from_op(query);
        assert_eq!(&flat.to_op().expect("a flattened query rebuilds"), query);
    }
}

/// What every accepted query with an aggregate must do: plan, run, print back, serialize back.
fn accepted_aggregate(query: &Query) {
    query.validate().expect("an accepted query validates");
    let plan = QueryPlan::new(query);
    assert_eq!(plan.aggregate.is_some(), query.aggregate.is_some());
    if query.aggregate.is_some() {
        AggregateEngine::new(query, EngineOptions::default()).expect("an accepted aggregate runs");
    }
    let (depth, _) = query.op.shape();
    if depth + 8 < MAX_QUERY_DEPTH {
        let printed = query.to_string();
        let back: Query = printed
            .parse()
            .unwrap_or_else(|e| panic!("`{printed}` does not read back: {e}"));
        assert_eq!(&back, query, "`{printed}` reads back as another query");
        let json = serde_json::to_string(query).expect("serializes");
        match serde_json::from_str::<Query>(&json) {
            Ok(back) => assert_eq!(&back, query),
            // The tagged tree nests one JSON level or more per operator, and serde_json's
            // reader refuses more than 128 levels by default (the guide says so): only such
            // a deep query may be refused, with that reason, and its flat form carries it.
            Err(e) => {
                let nesting = json_nesting(&json);
                assert!(
                    nesting >= SERDE_JSON_NESTING && e.to_string().contains("recursion limit"),
                    "`{json}` (nesting {nesting}) does not deserialize: {e}"
                );
                let flat = serde_json::to_string(&FlatOp::from_op(&query.op)).expect("serializes");
                let flat: FlatOp = serde_json::from_str(&flat).expect("a flat query reads back");
                assert_eq!(&flat.to_op().expect("rebuilds"), &query.op);
            }
        }
    }
}

/// How deeply serde_json's reader nests by default before it refuses a document.
const SERDE_JSON_NESTING: usize = 128;

/// The deepest nesting of arrays and objects in a JSON text.
fn json_nesting(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for c in json.chars() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (true, false, _) => {}
            (false, _, '"') => in_string = true,
            (false, _, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Flat op trees as JSON (what the driver's `tree` query carries): rebuilt or refused.
pub fn flat(data: &[u8]) {
    let Ok(flat) = serde_json::from_slice::<FlatOp>(data) else {
        return;
    };
    if let Ok(query) = flat.to_op() {
        accepted(&query);
    }
}

/// Event files, JSON Lines or CSV (recognised from the first line): read or refused with a line
/// number inside the file.
pub fn events(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let general = input::parse_events("fuzz", text, &mut Progress::hidden());
    sharded(text, &general);
    if let Ok(events) = &general {
        until(text, events);
    }
    match general {
        Ok(events) => {
            for e in &events {
                for (_, v) in &e.fields {
                    if let timeline::Value::Float(f) = v {
                        assert!(f.is_finite(), "a non-finite float was read");
                    }
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz"), "{message}");
            assert!(
                message.len() < 2_000,
                "an error quotes too much: {} bytes",
                message.len()
            );
        }
    }
}

/// The reader `eval --key` uses for CSV without quotes (`timeline_formats::shards`, cells found 64
/// bytes at a time), on one and on two threads, with the check for quotes before the read and
/// along it, against the general reader: keyed by the header's first column other than `time`,
/// the engines it feeds hold every key the general reader's events give one engine, each with
/// the same answer (`latest_event_to_state` of the header's last column) and first and last
/// times, or both refuse the file; and reading only the key and that column, when it keeps of
/// the lines that set only the key (and the time) each key's earliest and latest a chunk
/// (`shards::Idle::Collapsed`, as `eval` does for a query that does not read the key), as a
/// read of the same columns that keeps every line.
fn sharded(text: &str, general: &Result<Vec<Event>, InputError>) {
    let header = text.split('\n').next().unwrap_or("").trim_end_matches('\r');
    let columns: Vec<&str> = header.split(',').collect();
    let Some(&key) = columns.iter().find(|c| **c != "time") else {
        return;
    };
    let read = columns.last().expect("split gives one column at least");
    let query = tl_latest_event_to_state(col(read));
    let kept = [key.to_string(), read.to_string()];
    let options = EngineOptions {
        key_column: Some(key.to_string()),
        retention: None,
    };
    let engine = || Engine::new(&query, options.clone()).expect("a valid query");
    let reference = general.as_ref().ok().and_then(|events| {
        let mut e = engine();
        e.ingest(events).ok().map(|_| e)
    });
    // Whether this reader takes the file, as its check before the read decides.
    let mut takes = None;
    let collapsed = (key != *read).then_some(shards::Idle::Collapsed);
    // A read of the key and the query's column alone, every line kept (the other cells go
    // unread, as in `eval`): what a collapsed read, which reads as much, must answer.
    let projected = collapsed.and_then(|_| {
        let mut sinks = vec![engine()];
        let read = shards::eval_csv(
            "fuzz",
            text.as_bytes(),
            &TimeSpec::default(),
            Some(key),
            Some(&kept),
            shards::Idle::Kept,
            &mut sinks,
            &mut Progress::hidden(),
            shards::Check::First,
        );
        matches!(read, Some(Ok(()))).then(|| sinks.pop()).flatten()
    });
    for (threads, check, idle) in [1, 2]
        .into_iter()
        .flat_map(|t| [(t, shards::Check::First), (t, shards::Check::Along)])
        .flat_map(|(t, c)| [Some(shards::Idle::Kept), collapsed].map(|i| i.map(|i| (t, c, i))))
        .flatten()
    {
        let mut sinks: Vec<Engine> = (0..threads).map(|_| engine()).collect();
        let columns = (idle == shards::Idle::Collapsed).then_some(&kept[..]);
        let read = shards::eval_csv(
            "fuzz",
            text.as_bytes(),
            &TimeSpec::default(),
            Some(key),
            columns,
            idle,
            &mut sinks,
            &mut Progress::hidden(),
            check,
        );
        // The check along the read decides as the one before it.
        assert_eq!(
            *takes.get_or_insert(read.is_some()),
            read.is_some(),
            "{threads} threads, {check:?}, {idle:?}"
        );
        let Some(read) = read else {
            continue; // not a file this reader takes: the general one reads it
        };
        let reference = match idle {
            shards::Idle::Kept => &reference,
            shards::Idle::Collapsed => &projected,
        };
        match (reference, read) {
            (None, Err(_)) => {}
            (Some(reference), Ok(())) => {
                let keys: usize = sinks.iter().map(|s| s.keys().len()).sum();
                assert_eq!(keys, reference.keys().len(), "{threads} threads");
                for k in reference.keys() {
                    let expected = reference.timeline(k).expect("its own key");
                    let times = |e: &Engine| (e.origin(k).ok(), e.last_time(k).ok());
                    let found = sinks.iter().find(|s| s.timeline(k).is_ok());
                    assert_eq!(
                        found.map(|s| (s.timeline(k).ok(), times(s))),
                        Some((Some(expected), times(reference))),
                        "key {k:?}, {threads} threads, {idle:?}"
                    );
                }
            }
            (reference, read) => panic!(
                "{threads} threads: the general reader {} the file, the sharded one {}",
                if reference.is_some() {
                    "took"
                } else {
                    "refused"
                },
                match read {
                    Ok(()) => "took it".to_string(),
                    Err(e) => format!("refused it: {e}"),
                }
            ),
        }
    }
}

/// An aggregate fed only the events at or before a time (`shards::Until`, what `eval` does when
/// asked only for `--at` times; kept as events come, or left to the read as `eval` then runs
/// it) answers at that time as one fed every event, and refuses
/// exactly the batches that one refuses; so does a per-key engine, which also lists every key
/// of the full feed. Keyed and grouped by the header's first two columns other than `time`, at
/// the median event time, fed in batches of three.
fn until(text: &str, events: &[Event]) {
    let header = text.split('\n').next().unwrap_or("").trim_end_matches('\r');
    let mut columns = header.split(',').filter(|c| *c != "time");
    let (Some(key), Some(group)) = (columns.next(), columns.next()) else {
        return;
    };
    let mut times: Vec<u64> = events.iter().map(|e| e.time).collect();
    times.sort_unstable();
    let Some(&at) = times.get(times.len() / 2) else {
        return;
    };
    let options = EngineOptions {
        key_column: Some(key.to_string()),
        retention: None,
    };
    if let Ok(per_key) = Engine::new(&tl_latest_event_to_state(col(group)), options.clone()) {
        let mut early = shards::Until::new(per_key.clone(), Some(at), Some(key));
        let mut all = per_key;
        if fed_alike(&mut all, &mut early, events) {
            assert_eq!(early.sink.keys(), all.keys(), "the keys listed");
            for k in all.keys() {
                let (a, b) = (early.sink.value_at(k, at), all.value_at(k, at));
                assert_eq!(a.ok(), b.ok(), "key {k:?} at {at}");
            }
        }
    }
    let query =
        tl_latest_event_to_state(col(key)).aggregate(group_by(group), [AggFn::Count, AggFn::Max]);
    // Columns a query cannot name (an empty header cell) are refused, as they must be.
    let engine = || AggregateEngine::new(&query, options.clone()).ok();
    let (Some(mut all), Some(sink)) = (engine(), engine()) else {
        return;
    };
    let mut early = shards::Until::new(sink, Some(at), Some(key));
    if fed_alike(&mut all, &mut early, events) {
        assert_eq!(
            early.sink.aggregates().at(at),
            all.aggregates().at(at),
            "answers at {at}"
        );
    }
    // The same with the aggregate left to the read, as `eval` then runs it.
    let lazy = AggregateEngine::lazy(&query, options.clone()).ok();
    let (Some(mut all), Some(lazy)) = (engine(), lazy) else {
        return;
    };
    let mut early = shards::Until::new(lazy, Some(at), Some(key));
    if fed_alike(&mut all, &mut early, events) {
        let read = early
            .sink
            .aggregates_at(at)
            .expect("no horizon to be before");
        assert_eq!(read.at(at), all.aggregates().at(at), "a lazy read at {at}");
    }
}

/// Feeds `events` in batches of three to `all` and to `early`, which must take and refuse the
/// same batches, at the same event; whether every batch was taken.
fn fed_alike<S: shards::Sink>(all: &mut S, early: &mut shards::Until<S>, events: &[Event]) -> bool {
    for batch in events.chunks(3) {
        let whole = all.ingest(batch);
        let only_early = shards::Sink::ingest(early, batch);
        assert_eq!(
            whole.as_ref().map_err(|e| e.index),
            only_early.as_ref().map_err(|e| e.index),
            "a batch refused by one and not the other, or at another event"
        );
        if whole.is_err() {
            return false;
        }
    }
    true
}

/// Packed batches (`timeline::wire`), events and key deltas: decoded or refused at a byte inside
/// the text; what decodes packs back to text that decodes to the same batch. Partial aggregates
/// (`PartialBatch`): decoded or refused; what decodes encodes back the same and merges.
pub fn wire(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    round_trip(text, wire::decode_events, wire::encode_events);
    forwarded(text);
    round_trip(text, wire::decode_key_deltas, wire::encode_key_deltas);
    // A partial aggregate, as one shard's worker sends it to the merge worker.
    if let Ok(batch) = PartialBatch::decode(text) {
        let again = batch.encode();
        let back = PartialBatch::decode(&again).expect("a re-encoded partial batch decodes");
        assert_eq!(back.encode(), again);
        let mut merge = MergeAggregateNode::new(
            &"count(a == 1) | aggregate(count, sum, avg, min, max)"
                .parse()
                .expect("valid"),
            1,
        )
        .expect("valid");
        merge.apply(0, &batch).expect("a decoded batch applies");
        for row in merge.at(&GroupSelector::All, u64::MAX).unwrap_or_default() {
            assert_eq!(row.values.len(), 5);
        }
    }
}

/// What the driver does with a packed batch: scanning refuses what decoding refuses, with the
/// same error; what it accepts splits for a job's leaves (keyed by `k`, two shards) into batches
/// that decode, each event reduced to the key and the leaf's columns.
fn forwarded(text: &str) {
    let scanned = wire::scan_events(text);
    let decoded = wire::decode_events(text);
    assert_eq!(scanned.as_ref().err(), decoded.as_ref().err());
    let (Ok(scanned), Ok(decoded)) = (scanned, decoded) else {
        return;
    };
    let leaves: Vec<timeline::LeafNode> = ["latest_event_to_state(a)", "has_existed(!(b == 1))"]
        .iter()
        .map(|op| timeline::LeafNode::new(&op.parse().expect("valid"), Some("k"), None))
        .collect::<Result<_, _>>()
        .expect("valid leaves");
    let refs: Vec<&timeline::LeafNode> = leaves.iter().collect();
    let Ok(batches) = timeline::forward::split_for_leaves(&scanned, Some("k"), 2, &refs) else {
        assert!(
            decoded.iter().any(|e| e.get("k").is_none()),
            "refused only for a missing key"
        );
        return;
    };
    for b in batches {
        let sent = wire::decode_events(&b.packed).expect("a forwarded batch decodes");
        assert_eq!(sent.len(), b.positions.len());
        for (e, &i) in sent.iter().zip(&b.positions) {
            assert_eq!(e.time, decoded[i].time);
            assert_eq!(e.get("k"), decoded[i].get("k"));
            let leaf = refs[b.leaf];
            assert!(e
                .fields
                .iter()
                .all(|(c, _)| &**c == "k" || leaf.spec().reads(c)));
        }
    }
}

/// `text` decodes or is refused at a byte inside it; what decodes packs to text that decodes
/// and packs to the same text again.
fn round_trip<T>(
    text: &str,
    decode: fn(&str) -> Result<Vec<T>, wire::WireError>,
    encode: fn(&[T]) -> String,
) {
    match decode(text) {
        Ok(batch) => {
            let again = encode(&batch);
            let back = decode(&again).expect("a re-packed batch decodes");
            assert_eq!(encode(&back), again);
        }
        Err(e) => assert!(e.at <= text.len(), "{e}"),
    }
}
