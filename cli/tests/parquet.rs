//! Parquet event files, written here with `arrow`: the same answers as the CSV they hold, only
//! the columns a query reads decoded, every type mapping, and clear refusals.

mod common;

use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int16Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, TimestampMillisecondArray, TimestampSecondArray,
    UInt64Array,
};
use common::*;
use std::sync::Arc;

fn write(name: &str, columns: Vec<(&str, ArrayRef)>) -> std::path::PathBuf {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let path = temp_file(name, "");
    let file = std::fs::File::create(&path).unwrap();
    // Small row groups, so that a file has several.
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_size(5)
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

/// `examples/player.csv` as columns: times, and each column's cells (`None` where empty).
fn player() -> (Vec<i64>, Vec<Vec<Option<String>>>) {
    let text = std::fs::read_to_string(repo().join("examples/player.csv")).unwrap();
    let mut times = Vec::new();
    let mut cols = vec![Vec::new(); 4];
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        times.push(cells[0].parse().unwrap());
        for (c, cell) in cols.iter_mut().zip(&cells[1..]) {
            c.push((!cell.is_empty()).then(|| cell.to_string()));
        }
    }
    (times, cols)
}

fn player_parquet(name: &str, time: ArrayRef) -> std::path::PathBuf {
    let (_, cols) = player();
    let n = cols[0].len();
    let mut cdn = StringDictionaryBuilder::<Int32Type>::new();
    for v in &cols[2] {
        match v {
            Some(s) => {
                cdn.append_value(s);
            }
            None => cdn.append_null(),
        }
    }
    write(
        name,
        vec![
            ("time", time),
            ("sessionId", Arc::new(StringArray::from(cols[0].clone()))),
            (
                "playerStateChange",
                Arc::new(StringArray::from(cols[1].clone())),
            ),
            ("cdnChange", Arc::new(cdn.finish())),
            (
                "userAction",
                Arc::new(LargeStringArray::from(cols[3].clone())),
            ),
            // Columns no query reads, one of a type the engine does not read.
            ("position", Arc::new(Float64Array::from(vec![1.5; n]))),
            (
                "blob",
                Arc::new(BinaryArray::from(vec![&b"\x00\x01"[..]; n])),
            ),
        ],
    )
}

fn eval(query_file: &str, events: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "eval",
        "--query-file",
        query_file,
        "--events",
        events,
        "--key",
        "sessionId",
        "--timeline",
    ];
    args.extend_from_slice(extra);
    stdout(&timeline(&args, None))
}

#[test]
fn parquet_gives_the_answers_of_the_csv_it_holds() {
    let (times, _) = player();
    let plain = player_parquet("player.parquet", Arc::new(Int64Array::from(times.clone())));
    let stamped = player_parquet(
        "player-ts.parquet",
        Arc::new(TimestampSecondArray::from(times.clone()).with_timezone("UTC")),
    );
    let millis = player_parquet(
        "player-ms.parquet",
        Arc::new(TimestampMillisecondArray::from(
            times.iter().map(|t| t * 1000).collect::<Vec<_>>(),
        )),
    );
    for query in [
        "examples/cirr.tl",
        "examples/cirr-by-cdn.tl",
        "examples/buffering-now.tl",
    ] {
        let want = eval(query, "examples/player.csv", &[]);
        assert!(want.lines().count() > 3, "{want}");
        for file in [&plain, &stamped, &millis] {
            for threads in ["1", "2"] {
                let got = eval(query, file.to_str().unwrap(), &["--threads", threads]);
                assert_eq!(
                    got,
                    want,
                    "{query} over {} with {threads} thread(s)",
                    file.display()
                );
            }
        }
    }
    // A file of several, Parquet and CSV together, equals one.
    let dir = std::env::temp_dir().join(format!("timeline-parquet-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&plain, dir.join("a.parquet")).unwrap();
    assert_eq!(
        eval("examples/cirr.tl", dir.to_str().unwrap(), &[]),
        eval("examples/cirr.tl", "examples/player.csv", &[])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_type_maps_and_nulls_are_absent() {
    let file = write(
        "types.parquet",
        vec![
            (
                "time",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
            ("k", Arc::new(Int16Array::from(vec![7, 7, 7]))),
            (
                "flag",
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            ),
            (
                "n",
                Arc::new(UInt64Array::from(vec![Some(5), Some(6), None])),
            ),
            ("day", Arc::new(Date32Array::from(vec![1, 2, 3]))),
        ],
    );
    let q = |query: &str, at: &str| {
        stdout(&timeline(
            &[
                "eval",
                "--query",
                query,
                "--events",
                file.to_str().unwrap(),
                "--key",
                "k",
                "--at",
                at,
            ],
            None,
        ))
    };
    assert_eq!(
        q("latest_event_to_state(flag)", "2"),
        "{\"key\":7,\"at\":2,\"value\":true}\n"
    );
    assert_eq!(
        q("latest_event_to_state(flag)", "3"),
        "{\"key\":7,\"at\":3,\"value\":false}\n"
    );
    assert_eq!(
        q("latest_event_to_state(n)", "3"),
        "{\"key\":7,\"at\":3,\"value\":6}\n"
    );
    // A date is an instant: its day in the time unit (seconds).
    assert_eq!(
        q("latest_event_to_state(day)", "3"),
        "{\"key\":7,\"at\":3,\"value\":259200}\n"
    );
}

#[test]
fn bad_parquet_is_refused_with_file_row_and_reason() {
    let (times, _) = player();
    let plain = player_parquet("player-bad.parquet", Arc::new(Int64Array::from(times)));
    let path = plain.to_str().unwrap();
    // A column of a type the engine does not read, once a query reads it.
    let o = timeline(
        &[
            "eval",
            "--query",
            "latest_event_to_state(blob)",
            "--events",
            path,
            "--key",
            "sessionId",
        ],
        None,
    );
    bad_input(
        &o,
        "column `blob`: its type Binary is not one the engine reads",
    );
    // No time column.
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1)",
            "--events",
            path,
            "--time-column",
            "when",
        ],
        None,
    );
    bad_input(&o, "no `when` column");
    // Truncated: the magic bytes, then not a Parquet file.
    let bytes = std::fs::read(&plain).unwrap();
    let cut = temp_file("cut.parquet", "");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1)",
            "--events",
            cut.to_str().unwrap(),
        ],
        None,
    );
    bad_input(&o, "not a readable Parquet file");
    // A timestamp finer than the unit, an integer out of range, a NaN.
    let fine = write(
        "fine.parquet",
        vec![
            (
                "time",
                Arc::new(TimestampMillisecondArray::from(vec![1500])) as ArrayRef,
            ),
            ("a", Arc::new(Int64Array::from(vec![1]))),
        ],
    );
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1)",
            "--events",
            fine.to_str().unwrap(),
        ],
        None,
    );
    bad_input(
        &o,
        "fine.parquet:1: column `time`: a timestamp more precise than the time unit (s)",
    );
    let big = write(
        "big.parquet",
        vec![
            ("time", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("a", Arc::new(UInt64Array::from(vec![u64::MAX]))),
        ],
    );
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1)",
            "--events",
            big.to_str().unwrap(),
        ],
        None,
    );
    bad_input(&o, "does not fit a 64-bit signed integer");
    let nan = write(
        "nan.parquet",
        vec![
            ("time", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("a", Arc::new(Float64Array::from(vec![f64::NAN]))),
        ],
    );
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1)",
            "--events",
            nan.to_str().unwrap(),
        ],
        None,
    );
    bad_input(&o, "NaN");
}
