//! An answer asked only for `--at` times reads no further than it must: events after the last
//! time asked are not ingested, and (for an aggregate) Parquet row groups whose times all lie
//! after it are not read. The answers must be those of a full read, on every reader (CSV on
//! one thread and on two, JSON Lines, Parquet on one thread and on two), per-key answers listing
//! every key, those whose events all come later too; later events are still checked where they
//! are read; and an error in a row group read after a skipped one names its row in the file.

mod common;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use common::*;
use std::sync::Arc;

/// An event: time, session, state, cdn, bitrate.
type Row = (i64, String, &'static str, &'static str, f64);

/// Sessions with events at scattered times.
fn events(order_by_time: bool) -> Vec<Row> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let states = ["play", "buffer", "pause"];
    let cdns = ["CDN1", "CDN2", "CDN3"];
    let mut out = Vec::new();
    for s in 0..SESSIONS {
        let mut t = next(300) as i64;
        for _ in 0..30 {
            t += 1 + next(20) as i64;
            let state = states[next(3) as usize];
            let cdn = cdns[next(3) as usize];
            out.push((t, format!("s{s:02}"), state, cdn, next(50) as f64 / 10.0));
        }
    }
    if order_by_time {
        out.sort_by_key(|e| e.0);
    }
    out
}

fn csv(events: &[Row]) -> String {
    let mut text = String::from("time,sessionId,state,cdn,bitrate\n");
    for (t, s, state, cdn, rate) in events {
        text.push_str(&format!("{t},{s},{state},{cdn},{rate}\n"));
    }
    text
}

fn json_lines(events: &[Row]) -> String {
    let mut text = String::new();
    for (t, s, state, cdn, rate) in events {
        text.push_str(&format!(
            "{{\"time\":{t},\"event\":{{\"sessionId\":\"{s}\",\"state\":\"{state}\",\"cdn\":\"{cdn}\",\"bitrate\":{rate}}}}}\n"
        ));
    }
    text
}

/// A Parquet file of `columns` in row groups of `group` rows.
fn parquet(name: &str, columns: Vec<(&str, ArrayRef)>, group: usize) -> std::path::PathBuf {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let path = temp_file(name, "");
    let file = std::fs::File::create(&path).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_size(group)
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

fn events_parquet(name: &str, events: &[Row]) -> std::path::PathBuf {
    let column = |f: &dyn Fn(&Row) -> String| -> ArrayRef {
        Arc::new(StringArray::from(events.iter().map(f).collect::<Vec<_>>()))
    };
    parquet(
        name,
        vec![
            (
                "time",
                Arc::new(Int64Array::from(
                    events.iter().map(|e| e.0).collect::<Vec<_>>(),
                )),
            ),
            ("sessionId", column(&|e| e.1.clone())),
            ("state", column(&|e| e.2.to_string())),
            ("cdn", column(&|e| e.3.to_string())),
            (
                "bitrate",
                Arc::new(Float64Array::from(
                    events.iter().map(|e| e.4).collect::<Vec<_>>(),
                )),
            ),
        ],
        16,
    )
}

const QUERIES: [&str; 6] = [
    r#"latest_event_to_state(state) == "buffer" | aggregate(group_by(cdn), count, sum)"#,
    r#"duration_where(latest_event_to_state(state) == "play") | aggregate(group_by(cdn), sum, min, max, avg)"#,
    r#"latest_event_to_state(bitrate) | aggregate(count, sum, max)"#,
    // Per key: every session is listed at every time asked.
    r#"latest_event_to_state(state) == "buffer""#,
    r#"duration_where(has_existed(state == "play") && !has_existed_within(cdn == "CDN2", 15))"#,
    r#"count(state == "pause")"#,
];

/// The sessions of the test streams.
const SESSIONS: usize = 24;

/// `eval` of `query` over `file`, keyed by session, on `threads` threads, with `extra` flags.
fn run(query: &str, file: &str, threads: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "eval",
        "--query",
        query,
        "--events",
        file,
        "--key",
        "sessionId",
        "--threads",
        threads,
    ];
    args.extend_from_slice(extra);
    timeline(&args, None)
}

/// The `--at` lines of an evaluation.
fn at_lines(query: &str, file: &str, threads: &str, extra: &[&str]) -> String {
    stdout(&run(query, file, threads, extra))
        .lines()
        .filter(|l| l.contains("\"at\":"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn answers_at_times_asked_are_those_of_a_full_read_on_every_reader() {
    for order_by_time in [true, false] {
        let events = events(order_by_time);
        let tag = if order_by_time { "by-time" } else { "by-key" };
        let csv = temp_file(&format!("until-{tag}.csv"), &csv(&events));
        let jsonl = temp_file(&format!("until-{tag}.jsonl"), &json_lines(&events));
        let parquet = events_parquet(&format!("until-{tag}.parquet"), &events);
        let files = [&csv, &jsonl, &parquet].map(|p| p.to_str().unwrap().to_string());
        for query in QUERIES {
            for ats in [&["150"][..], &["40", "220"], &["1"], &["100000"]] {
                let asked: Vec<&str> = ats.iter().flat_map(|t| ["--at", *t]).collect();
                // A range makes the evaluation read every event; its lines are left out.
                let full: Vec<&str> = [&asked[..], &["--range", "0..1"]].concat();
                let expected = at_lines(query, &files[0], "1", &full);
                if query.contains("aggregate") {
                    assert!(
                        expected.lines().count() > 0 || ats == ["1"],
                        "{query} at {ats:?}: no group has members"
                    );
                } else {
                    assert_eq!(expected.lines().count(), SESSIONS * ats.len(), "{query}");
                }
                for file in &files {
                    for threads in ["1", "2"] {
                        assert_eq!(
                            at_lines(query, file, threads, &asked),
                            expected,
                            "{query} at {ats:?} over {file} on {threads} thread(s), {tag}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_test_streams_have_sessions_that_start_after_a_time_asked() {
    // What makes listing every key matter: at 40, some sessions have no event yet.
    let events = events(true);
    let first = |s: &str| events.iter().find(|e| e.1 == s).map(|e| e.0).unwrap();
    let later = (0..SESSIONS)
        .filter(|s| first(&format!("s{s:02}")) > 40)
        .count();
    assert!(
        later > 0 && later < SESSIONS,
        "{later} sessions start after 40"
    );
}

#[test]
fn later_events_are_still_checked_where_they_are_read() {
    // An event after the time asked, without the key: refused all the same.
    let text = "time,sessionId,state\n1,s1,play\n5,s1,buffer\n90,,buffer\n";
    let file = temp_file("until-no-key.csv", text);
    for query in [
        r#"latest_event_to_state(state) == "buffer" | aggregate(count, sum)"#,
        r#"latest_event_to_state(state) == "buffer""#,
    ] {
        for threads in ["1", "2"] {
            let o = run(query, file.to_str().unwrap(), threads, &["--at", "10"]);
            bad_input(&o, "no \"sessionId\" column");
        }
    }
    // Over Parquet, whose later rows are checked cell by cell rather than made events: a row
    // without its key, and a NaN in a column the query reads, each after the time asked, in a
    // row group that is read (one group).
    let later = |name: &str, key: Option<&str>, rate: f64| {
        parquet(
            name,
            vec![
                (
                    "time",
                    Arc::new(Int64Array::from(vec![1, 5, 90, 95])) as ArrayRef,
                ),
                (
                    "sessionId",
                    Arc::new(StringArray::from(vec![
                        Some("s1"),
                        Some("s1"),
                        key,
                        Some("s3"),
                    ])),
                ),
                (
                    "state",
                    Arc::new(StringArray::from(vec!["play", "buffer", "buffer", "play"])),
                ),
                (
                    "bitrate",
                    Arc::new(Float64Array::from(vec![1.0, 2.0, rate, 3.0])),
                ),
            ],
            16,
        )
    };
    let no_key = later("until-no-key.parquet", None, 2.5);
    let nan = later("until-nan.parquet", Some("s2"), f64::NAN);
    let clean = later("until-clean.parquet", Some("s2"), 2.5);
    for query in [
        r#"latest_event_to_state(bitrate) | aggregate(count, sum)"#,
        r#"latest_event_to_state(bitrate)"#,
    ] {
        for threads in ["1", "2"] {
            let at = |file: &std::path::Path| {
                run(query, file.to_str().unwrap(), threads, &["--at", "10"])
            };
            bad_input(&at(&no_key), "no \"sessionId\" column");
            bad_input(&at(&nan), "until-nan.parquet:3: column `bitrate`: ");
            bad_input(&at(&nan), "NaN");
            // The same file with a number there: the answer at 10 is that of s1's rows, and a
            // per-key answer lists the sessions whose rows all come later.
            let o = at(&clean);
            let expected = if query.contains("aggregate") {
                "{\"group\":null,\"at\":10,\"count\":1,\"sum\":2.0}\n"
            } else {
                "{\"key\":\"s1\",\"at\":10,\"value\":2.0}\n\
                 {\"key\":\"s2\",\"at\":10,\"value\":null}\n\
                 {\"key\":\"s3\",\"at\":10,\"value\":null}\n"
            };
            assert_eq!(stdout(&o), expected, "{query} on {threads} thread(s)");
        }
        // Without a key column (every row one key's), as a full read answers.
        let path = clean.to_str().unwrap();
        let at = |extra: &[&str]| {
            let args = [
                &["eval", "--query", query, "--events", path, "--at", "10"][..],
                extra,
            ];
            stdout(&timeline(&args.concat(), None))
                .lines()
                .filter(|l| l.contains("\"at\":"))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        };
        let full = at(&["--range", "0..1"]);
        assert_eq!(full.lines().count(), 1, "{query}: {full}");
        assert_eq!(at(&[]), full, "{query} without a key column");
    }
}

/// Times 1-4 (row group 1), 100-103 (2), then 2, 3, a null time, 5 (3): groups of four rows.
fn three_groups(name: &str, rate_in_group_2: f64) -> std::path::PathBuf {
    parquet(
        name,
        vec![
            (
                "time",
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(2),
                    Some(3),
                    Some(4),
                    Some(100),
                    Some(101),
                    Some(102),
                    Some(103),
                    Some(2),
                    Some(3),
                    None,
                    Some(5),
                ])) as ArrayRef,
            ),
            ("sessionId", Arc::new(StringArray::from(vec!["s1"; 12]))),
            (
                "bitrate",
                Arc::new(Float64Array::from(vec![
                    1.0,
                    2.0,
                    3.0,
                    4.0,
                    rate_in_group_2,
                    5.0,
                    5.0,
                    5.0,
                    6.0,
                    7.0,
                    8.0,
                    9.0,
                ])),
            ),
        ],
        4,
    )
}

#[test]
fn parquet_row_groups_after_the_time_asked_are_not_read() {
    // The second row group (times 100-103) holds a NaN, which is refused wherever it is read,
    // and the third a row without a time (file row 11).
    let file = three_groups("until-groups.parquet", f64::NAN);
    let path = file.to_str().unwrap();
    let query = "latest_event_to_state(bitrate) | aggregate(count, max)";
    for threads in ["1", "2"] {
        // At 50 the second group is not read: the NaN is never seen, and the null time is
        // named by its row in the file, past the skipped group.
        let o = run(query, path, threads, &["--at", "50"]);
        bad_input(&o, "until-groups.parquet:11: ");
        bad_input(&o, "the time (`time`) is null");
        // At 100 it is read, and the NaN refused.
        bad_input(&run(query, path, threads, &["--at", "100"]), "NaN");
    }
    // Without the null time, the answer at 50 is that of the rows read: the latest rate at
    // 50 is that of time 5 (9).
    let clean = parquet(
        "until-groups-clean.parquet",
        vec![
            (
                "time",
                Arc::new(Int64Array::from(vec![1, 2, 100, 101, 3, 5])) as ArrayRef,
            ),
            ("sessionId", Arc::new(StringArray::from(vec!["s1"; 6]))),
            (
                "bitrate",
                Arc::new(Float64Array::from(vec![1.0, 2.0, f64::NAN, 5.0, 6.0, 9.0])),
            ),
        ],
        2,
    );
    let o = run(query, clean.to_str().unwrap(), "1", &["--at", "50"]);
    assert_eq!(
        stdout(&o),
        "{\"group\":null,\"at\":50,\"count\":1,\"max\":9.0}\n"
    );
}
