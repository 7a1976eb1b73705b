//! Replays every corpus file (`corpus/{target}/*`) through its fuzz target, so that what the
//! fuzzer found and kept stays checked by `cargo test`.

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, target) in timeline_fuzz::TARGETS {
        let dir = root.join(name);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{} fails its target", path.display());
            files += 1;
        }
        assert!(files > 0, "{}: no corpus", dir.display());
    }
}

#[test]
fn the_seeds_are_accepted_where_they_should_be() {
    // The seeds exercise the accepting paths, not only the refusals.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let text = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert!(timeline::parse_query(&text("dsl/cirr.tl")).is_ok());
    assert!(timeline::parse_query(&text("dsl/spellings.tl")).is_ok());
    assert!(timeline::wire::decode_events(&text("wire/events.txt")).is_ok());
    assert!(timeline::wire::decode_key_deltas(&text("wire/deltas.txt")).is_ok());
    let flat: timeline::FlatOp = serde_json::from_str(&text("flat/cirr.json")).unwrap();
    assert!(flat.to_op().is_ok());
}
