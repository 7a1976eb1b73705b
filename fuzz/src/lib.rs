//! Fuzz targets: every reader of user or network input, with the properties that must hold
//! for any input. A target panics (which the fuzzer reports as a crash) only when a property
//! fails; a refused input is an `Err`, as it must be.
//!
//! The AFL++ binaries (`src/bin/fuzz-*.rs`, `scripts/fuzz`) call these functions; so does
//! `tests/corpus.rs`, which replays every corpus file in `corpus/` under `cargo test`.

use timeline::limits::{excerpt, MAX_QUERY_DEPTH};
use timeline::{parse_query, wire, Engine, EngineOptions, FlatOp, Plan, TimeLineOp};
use timeline_cli::input;
use timeline_cli::progress::Progress;

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
/// query validates, plans, prints back to the same tree, and flattens and rebuilds.
pub fn dsl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_query(text) {
        Ok(query) => accepted(&query),
        Err(e) => {
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
    match input::parse_events("fuzz", text, &mut Progress::hidden()) {
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

/// Packed batches (`timeline::wire`), events and key deltas: decoded or refused at a byte inside
/// the text; what decodes packs back to text that decodes to the same batch.
pub fn wire(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    round_trip(text, wire::decode_events, wire::encode_events);
    round_trip(text, wire::decode_key_deltas, wire::encode_key_deltas);
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
