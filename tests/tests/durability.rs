//! The emulator's on-disk logs under a power cut: a last record cut short or garbled is an
//! invocation that never completed; it is dropped and the rest replays. Damage earlier in a log
//! is refused with a clear error, not replayed.

mod common;

use common::*;
use golem_emulator::{components_dir, TimelineSystem, WorkerId};
use std::path::{Path, PathBuf};
use timeline::{Event, Value};

fn log_of(dir: &Path, w: &WorkerId) -> PathBuf {
    dir.join(&w.component_id)
        .join(format!("{}.jsonl", w.worker_name))
}

fn events(from: u64) -> Vec<Event> {
    (from..from + 5)
        .map(|t| Event::new(t, [("k", Value::from("x")), ("a", Value::Int(1))]))
        .collect()
}

/// A job counting events, fed two batches of five; returns its log directory, the leaf worker,
/// and the leaf's log after the first batch and after both.
fn two_batches(name: &str) -> (PathBuf, WorkerId, Vec<u8>, Vec<u8>) {
    let (sys, dir) = system(name);
    let plan = sys.run("j", "count(a == 1)", Some("k"), 1, None).unwrap();
    let leaf = plan.result().workers[0].clone();
    sys.ingest("j", &events(1)).unwrap();
    let after_first = std::fs::read(log_of(&dir, &leaf)).unwrap();
    sys.ingest("j", &events(100)).unwrap();
    let after_both = std::fs::read(log_of(&dir, &leaf)).unwrap();
    assert!(after_both.starts_with(&after_first));
    (dir, leaf, after_first, after_both)
}

/// The job's count for key x at time t, read through the driver.
fn count_at(sys: &TimelineSystem, t: u64) -> Option<Value> {
    sys.result("j", None, Some(&Value::from("x")), t)
        .unwrap()
        .instant_value()
}

#[test]
fn a_torn_last_record_is_dropped_and_the_rest_replays() {
    let (dir, leaf, after_first, after_both) = two_batches("torn");
    // The power went mid-append of the second batch's record: half of it reached the disk.
    let torn = &after_both[..after_first.len() + (after_both.len() - after_first.len()) / 2];
    std::fs::write(log_of(&dir, &leaf), torn).unwrap();
    let sys = TimelineSystem::start(&components_dir(), &dir).unwrap();
    // Five events, not ten: the torn batch was not applied.
    assert_eq!(count_at(&sys, 200), Some(Value::Int(5)));
    // The torn tail was cut off and the read that replayed appended after the good records.
    let log = std::fs::read(log_of(&dir, &leaf)).unwrap();
    assert!(log.starts_with(&after_first));
    assert!(log[after_first.len()..].ends_with(b"\n"));
    assert!(!log
        .windows(torn.len() - after_first.len())
        .any(|w| w == &torn[after_first.len()..]));
}

#[test]
fn a_garbled_last_record_is_dropped_too() {
    let (dir, leaf, after_first, mut after_both) = two_batches("garbled");
    // A block of the last record holds other bytes, its newline intact.
    let mid = after_first.len() + (after_both.len() - after_first.len()) / 2;
    after_both[mid] ^= 0x01;
    std::fs::write(log_of(&dir, &leaf), &after_both).unwrap();
    let sys = TimelineSystem::start(&components_dir(), &dir).unwrap();
    assert_eq!(count_at(&sys, 200), Some(Value::Int(5)));
}

#[test]
fn damage_before_the_last_record_is_refused_with_a_clear_error() {
    let (dir, leaf, after_first, mut after_both) = two_batches("damaged");
    after_both[after_first.len() / 2] ^= 0x01;
    std::fs::write(log_of(&dir, &leaf), &after_both).unwrap();
    let sys = TimelineSystem::start(&components_dir(), &dir).unwrap();
    let err = sys
        .invoke(&leaf, "timeline:event-processor/api.{stats}", &[])
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("is corrupt") && err.contains("is not the last"),
        "{err}"
    );
    // Nothing was cut: the damage is left for a person to look at.
    assert_eq!(std::fs::read(log_of(&dir, &leaf)).unwrap(), after_both);
}
