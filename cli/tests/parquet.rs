//! Parquet event files, written here with `arrow`: the same answers as the CSV they hold, only
//! the columns a query reads decoded, every type mapping, and clear refusals.

mod common;

use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float64Array, Int16Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
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
    let micros = player_parquet(
        "player-us.parquet",
        Arc::new(
            TimestampMicrosecondArray::from(
                times.iter().map(|t| t * 1_000_000).collect::<Vec<_>>(),
            )
            .with_timezone("+05:30"),
        ),
    );
    let nanos = player_parquet(
        "player-ns.parquet",
        Arc::new(
            TimestampNanosecondArray::from(
                times.iter().map(|t| t * 1_000_000_000).collect::<Vec<_>>(),
            )
            .with_timezone("America/New_York"),
        ),
    );
    for query in [
        "examples/cirr.tl",
        "examples/cirr-by-cdn.tl",
        "examples/buffering-now.tl",
    ] {
        let want = eval(query, "examples/player.csv", &[]);
        assert!(want.lines().count() > 3, "{want}");
        for file in [&plain, &stamped, &millis, &micros, &nanos] {
            for threads in ["1", "2", "3"] {
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
    // The example file DuckDB wrote (README: "Parquet in and out") holds the example sessions,
    // and so does the JSON Lines one the Kafka walk-through produces.
    for query in ["examples/cirr.tl", "examples/cirr-by-cdn.tl"] {
        for file in ["examples/player.parquet", "examples/player.jsonl"] {
            assert_eq!(
                eval(query, file, &[]),
                eval(query, "examples/player.csv", &[]),
                "{query} over {file}"
            );
        }
    }
    let readme = stdout(&timeline(
        &[
            "eval",
            "--query-file",
            "examples/cirr.tl",
            "--events",
            "examples/player.parquet",
            "--key",
            "sessionId",
            "--at",
            "end",
        ],
        None,
    ));
    assert_eq!(
        readme,
        "{\"key\":\"s1\",\"at\":14,\"value\":1}\n{\"key\":\"s2\",\"at\":55,\"value\":12}\n"
    );
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
    // Bad rows of different keys: the first in the file is reported, however many threads read
    // it (each reads its own keys).
    let keys: Vec<String> = (0..40).map(|i| format!("k{}", i % 7)).collect();
    let mut times: Vec<Option<i64>> = (0..40).map(Some).collect();
    times[12] = None;
    times[29] = None;
    let nulls = write(
        "null-times.parquet",
        vec![
            ("time", Arc::new(Int64Array::from(times)) as ArrayRef),
            ("k", Arc::new(StringArray::from(keys))),
            ("a", Arc::new(Int64Array::from(vec![1; 40]))),
        ],
    );
    for threads in ["1", "2", "3"] {
        let o = timeline(
            &[
                "eval",
                "--query",
                "count(a == 1)",
                "--key",
                "k",
                "--threads",
                threads,
                "--events",
                nulls.to_str().unwrap(),
            ],
            None,
        );
        bad_input(&o, "null-times.parquet:13: the time (`time`) is null");
    }
}

/// Reads a Parquet file back: its column names and types, and its rows as JSON values.
fn read_back(path: &std::path::Path) -> (Vec<(String, String)>, Vec<Vec<serde_json::Value>>) {
    use arrow_array::Array;
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut schema = Vec::new();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        schema = batch
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(r) {
                            return serde_json::Value::Null;
                        }
                        let s = arrow_array::cast::AsArray::as_string_opt::<i32>(c.as_ref());
                        if let Some(s) = s {
                            return serde_json::json!(s.value(r));
                        }
                        if let Some(i) = c.as_any().downcast_ref::<Int64Array>() {
                            return serde_json::json!(i.value(r));
                        }
                        if let Some(f) = c.as_any().downcast_ref::<Float64Array>() {
                            return serde_json::json!(f.value(r));
                        }
                        if let Some(b) = c.as_any().downcast_ref::<BooleanArray>() {
                            return serde_json::json!(b.value(r));
                        }
                        panic!("unexpected column type {}", c.data_type())
                    })
                    .collect(),
            );
        }
    }
    (schema, rows)
}

#[test]
fn parquet_output_has_the_json_columns_typed() {
    let out = temp_file("answers.parquet", "");
    let run = |args: &[&str]| {
        let mut all = vec![
            "eval",
            "--events",
            "examples/player.csv",
            "--key",
            "sessionId",
        ];
        all.extend_from_slice(args);
        let json = stdout(&timeline(&all, None));
        all.extend_from_slice(&["--format", "parquet", "--out", out.to_str().unwrap()]);
        assert_eq!(stdout(&timeline(&all, None)), "", "nothing on stdout");
        let (schema, rows) = read_back(&out);
        let names: Vec<String> = schema.iter().map(|(n, _)| n.clone()).collect();
        // Every row equals the JSON line, column by column.
        let lines: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), lines.len());
        for (row, line) in rows.iter().zip(&lines) {
            for (name, value) in names.iter().zip(row) {
                // A column of integers and floats (a sum beside an average) is all floats.
                let same = match (value.as_f64(), line[name].as_f64()) {
                    (Some(a), Some(b)) => a == b,
                    _ => value == &line[name],
                };
                assert!(same, "{name}: {value} vs {line}");
            }
        }
        schema
    };
    let schema = run(&["--query-file", "examples/cirr.tl", "--at", "end"]);
    assert_eq!(
        schema,
        [("key", "Utf8"), ("at", "Int64"), ("value", "Int64")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let schema = run(&["--query-file", "examples/cirr.tl", "--range", "0..20"]);
    assert_eq!(schema.len(), 5);
    let schema = run(&[
        "--query-file",
        "examples/cirr-by-cdn.tl",
        "--at",
        "30",
        "--at",
        "55",
    ]);
    assert_eq!(
        schema,
        [
            ("group", "Utf8"),
            ("at", "Int64"),
            ("sum", "Int64"),
            ("avg", "Float64")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    run(&[
        "--query-file",
        "examples/cirr-by-cdn.tl",
        "--range",
        "0..60",
    ]);
    let o = timeline(
        &[
            "eval",
            "--query-file",
            "examples/cirr.tl",
            "--events",
            "examples/player.csv",
            "--format",
            "parquet",
        ],
        None,
    );
    bad_input(&o, "--format parquet and html need --out PATH");
}
