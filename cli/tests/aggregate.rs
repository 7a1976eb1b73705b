//! The `eval` contract for aggregate queries (`Q | aggregate(…)`), run on the built binary.

mod common;

use common::*;

fn eval(args: &[&str]) -> String {
    let mut all = vec![
        "eval",
        "--events",
        "examples/player.csv",
        "--key",
        "sessionId",
    ];
    all.extend_from_slice(args);
    stdout(&timeline(&all, None))
}

#[test]
fn at_prints_one_line_per_group_with_members_null_first() {
    let q = ["--query-file", "examples/buffering-now.tl"];
    // At 1 session s1 has no CDN yet (the unknown group); s2 is on CDN1.
    assert_eq!(
        eval(&[&q[..], &["--at", "1", "--at", "4", "--at", "12"]].concat()),
        concat!(
            "{\"group\":null,\"at\":1,\"count\":1,\"sum\":0}\n",
            "{\"group\":\"CDN1\",\"at\":1,\"count\":1,\"sum\":0}\n",
            "{\"group\":\"CDN1\",\"at\":4,\"count\":2,\"sum\":1}\n",
            "{\"group\":\"CDN1\",\"at\":12,\"count\":1,\"sum\":0}\n",
            "{\"group\":\"CDN2\",\"at\":12,\"count\":1,\"sum\":0}\n",
        )
    );
}

#[test]
fn functions_print_in_the_order_asked_and_null_where_unknown() {
    // At 8 only s1 has a userAction (a string): counted, but no number to sum or compare.
    let out = eval(&[
        "--query",
        "latest_event_to_state(userAction) | aggregate(max, count, avg, sum, min)",
        "--at",
        "8",
    ]);
    assert_eq!(
        out,
        "{\"group\":null,\"at\":8,\"max\":null,\"count\":1,\"avg\":null,\"sum\":0,\"min\":null}\n"
    );
}

#[test]
fn cirr_by_cdn_follows_sessions_across_cdns() {
    // s2 re-buffers 12 s on CDN1 (20..32), then moves to CDN2 at 50 taking its total along,
    // where s1 already is with 2 s.
    let q = ["--query-file", "examples/cirr-by-cdn.tl"];
    assert_eq!(
        eval(&[&q[..], &["--at", "49", "--at", "end"]].concat()),
        concat!(
            "{\"group\":\"CDN1\",\"at\":49,\"sum\":12,\"avg\":12.0}\n",
            "{\"group\":\"CDN2\",\"at\":49,\"sum\":2,\"avg\":2.0}\n",
            "{\"group\":\"CDN2\",\"at\":55,\"sum\":18,\"avg\":9.0}\n",
        )
    );
}

#[test]
fn timeline_and_range_print_segments_per_group_and_function() {
    let out = eval(&["--query-file", "examples/sessions-started.tl", "--timeline"]);
    assert_eq!(
        out,
        concat!(
            "{\"group\":null,\"agg\":\"count\",\"from\":0,\"to\":1,\"value\":1,\"slope\":0}\n",
            "{\"group\":null,\"agg\":\"count\",\"from\":1,\"to\":null,\"value\":2,\"slope\":0}\n",
            "{\"group\":null,\"agg\":\"sum\",\"from\":0,\"to\":3,\"value\":0,\"slope\":0}\n",
            "{\"group\":null,\"agg\":\"sum\",\"from\":3,\"to\":5,\"value\":1,\"slope\":0}\n",
            "{\"group\":null,\"agg\":\"sum\",\"from\":5,\"to\":null,\"value\":2,\"slope\":0}\n",
        )
    );
    // Sums of growing durations grow with the number of members growing; averages by a fraction.
    let out = eval(&["--query-file", "examples/cirr-by-cdn.tl", "--range", "5..8"]);
    let cdn1: Vec<&str> = out.lines().filter(|l| l.contains("\"CDN1\"")).collect();
    assert_eq!(
        cdn1,
        [
            "{\"group\":\"CDN1\",\"agg\":\"sum\",\"from\":5,\"to\":6,\"value\":0,\"slope\":0}",
            "{\"group\":\"CDN1\",\"agg\":\"sum\",\"from\":6,\"to\":7,\"value\":0,\"slope\":1}",
            "{\"group\":\"CDN1\",\"agg\":\"sum\",\"from\":7,\"to\":8,\"value\":1,\"slope\":0}",
            "{\"group\":\"CDN1\",\"agg\":\"avg\",\"from\":5,\"to\":6,\"value\":0.0,\"slope\":0.0}",
            "{\"group\":\"CDN1\",\"agg\":\"avg\",\"from\":6,\"to\":7,\"value\":0.0,\"slope\":0.5}",
            "{\"group\":\"CDN1\",\"agg\":\"avg\",\"from\":7,\"to\":8,\"value\":0.5,\"slope\":0.0}",
        ]
    );
}

#[test]
fn table_shows_the_same_columns() {
    let out = eval(&[
        "--query-file",
        "examples/buffering-now.tl",
        "--at",
        "4",
        "--range",
        "0..2",
        "--format",
        "table",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["group", "at", "count", "sum"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["CDN1", "4", "2", "1"]
    );
    assert_eq!(lines[2], "");
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["group", "agg", "from", "to", "value", "slope"]
    );
    assert_eq!(
        lines[4].split_whitespace().collect::<Vec<_>>(),
        ["null", "count", "0", "1", "0", "0"]
    );
}

/// A CSV of `sessions` sessions switching CDNs, buffering, playing and seeking, from a fixed
/// pseudo-random sequence; `shuffle` writes its lines in another order.
fn player_stream(sessions: u64, shuffle: bool) -> String {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut lines = Vec::new();
    for s in 0..sessions {
        let mut t = next(50);
        for _ in 0..20 {
            t += 1 + next(6);
            let (state, cdn, action) = match next(6) {
                0 => ("buffer", "", ""),
                1 | 2 => ("play", "", ""),
                3 => ("", ["CDN1", "CDN2", "CDN3"][next(3) as usize], ""),
                4 => ("", "", "seek"),
                _ => ("pause", "", ""),
            };
            lines.push(format!("{t},s{s},{state},{cdn},{action}"));
        }
    }
    if shuffle {
        for i in (1..lines.len()).rev() {
            lines.swap(i, next(i as u64 + 1) as usize);
        }
    }
    format!(
        "time,sessionId,playerStateChange,cdnChange,userAction\n{}\n",
        lines.join("\n")
    )
}

/// The durations of buffering after a first play, per CDN, with every function.
const BUFFERING_BY_CDN: &str = "duration_where(has_existed(playerStateChange == \"play\") && latest_event_to_state(playerStateChange) == \"buffer\") | aggregate(group_by(cdnChange), count, sum, avg, min, max)";

/// `eval` of [`BUFFERING_BY_CDN`] over `file` keyed by session on `threads` threads, with `more`.
fn eval_buffering(file: &std::path::Path, threads: &str, more: &[&str]) -> String {
    let mut args = vec![
        "eval",
        "--query",
        BUFFERING_BY_CDN,
        "--events",
        file.to_str().unwrap(),
        "--key",
        "sessionId",
        "--threads",
        threads,
    ];
    args.extend_from_slice(more);
    stdout(&timeline(&args, None))
}

#[test]
fn threads_and_arrival_order_give_the_same_answers() {
    let in_order = temp_file("agg-in-order.csv", &player_stream(300, false));
    let shuffled = temp_file("agg-shuffled.csv", &player_stream(300, true));
    let run = |file: &std::path::Path, threads: &str| {
        eval_buffering(file, threads, &["--timeline", "--at", "60", "--at", "end"])
    };
    let one = run(&in_order, "1");
    assert!(one.lines().count() > 100, "a real answer: {one}");
    assert_eq!(run(&in_order, "3"), one, "three threads, merged");
    assert_eq!(run(&shuffled, "1"), one, "shuffled lines");
    assert_eq!(run(&shuffled, "2"), one, "shuffled lines, two threads");
}

/// Answers asked only at instants come from the keys at those instants (no aggregate timeline
/// is kept): they equal the same instants' answers read off the whole timeline, on any number
/// of threads, in any arrival order, with a horizon too (where a time asked lies before the
/// newest key horizon, the files are read again with the aggregate kept).
#[test]
fn instants_alone_answer_as_the_whole_timeline_does() {
    let run = eval_buffering;
    let at_rows = |out: &str| -> Vec<String> {
        let rows: Vec<String> = out
            .lines()
            .filter(|l| l.contains("\"at\""))
            .map(String::from)
            .collect();
        assert!(rows.len() > 3, "a real answer: {out}");
        rows
    };
    let shuffled = temp_file("agg-instants.csv", &player_stream(300, true));
    let instants = [
        "--at", "0", "--at", "30", "--at", "61", "--at", "90", "--at", "end",
    ];
    let whole = at_rows(&run(
        &shuffled,
        "1",
        &[&instants[..], &["--timeline"]].concat(),
    ));
    for threads in ["1", "2", "3"] {
        let alone = at_rows(&run(&shuffled, threads, &instants));
        assert_eq!(alone, whole, "{threads} threads");
    }
    // Retention refuses late events: each key's events in order.
    let in_order = temp_file("agg-instants-in-order.csv", &player_stream(300, false));
    // At the end, and after every event, the read alone answers; at 100, before the newest
    // key horizon (the last event is near 170) but after the oldest, the files are read again
    // with the aggregate kept (the read alone would refuse 100).
    for instants in [
        &["--at", "end"][..],
        &["--at", "1000"],
        &["--at", "100", "--at", "end"],
    ] {
        let retained = [&["--retain", "20"][..], instants].concat();
        let whole = at_rows(&run(
            &in_order,
            "1",
            &[&retained[..], &["--timeline"]].concat(),
        ));
        for threads in ["1", "2"] {
            let alone = at_rows(&run(&in_order, threads, &retained));
            assert_eq!(alone, whole, "{retained:?}, {threads} threads");
        }
    }
}

#[test]
fn explain_shows_the_aggregate_node_and_its_inputs() {
    let o = timeline(
        &["explain", "--query-file", "examples/buffering-now.tl"],
        None,
    );
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let last = lines.last().unwrap();
    assert!(
        last.contains("aggregate") && last.ends_with("(result)"),
        "{out}"
    );
    assert_eq!(out.matches("(result)").count(), 1, "{out}");
    let id = |line: &str| line.split_whitespace().next().unwrap().to_string();
    let group_leaf = lines
        .iter()
        .find(|l| l.contains("latest_event_to_state(cdnChange)"))
        .unwrap();
    let result = lines
        .iter()
        .find(|l| l.contains("== \"buffer\"") && !l.contains("aggregate("))
        .unwrap();
    assert!(
        last.contains(&format!("inputs=[{}, {}]", id(result), id(group_leaf))),
        "{out}"
    );
}

#[test]
fn bad_aggregates_are_refused_with_a_position() {
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1) | aggregate(sum, median)",
            "--events",
            "examples/player.csv",
        ],
        None,
    );
    bad_input(&o, "query:1:32: unknown aggregate function `median`");
    let o = timeline(
        &[
            "eval",
            "--query-file",
            "examples/sessions-started.tl",
            "--events",
            "examples/player.csv",
            "--key",
            "sessionId",
            "--retain",
            "10",
            "--at",
            "3",
        ],
        None,
    );
    bad_input(&o, "before the retention horizon");
}

#[test]
fn run_aggregates_on_the_components_as_natively() {
    let args = |runtime, shards| {
        vec![
            "run",
            "--runtime",
            runtime,
            "--query-file",
            "examples/cirr-by-cdn.tl",
            "--events",
            "examples/player.csv",
            "--key",
            "sessionId",
            "--shards",
            shards,
        ]
    };
    let native = stdout(&timeline(&args("native", "1"), None));
    assert!(native.contains("[result] duration_where("), "{native}");
    assert!(
        native.contains("  \"CDN2\" sum:  [0,11) 0  [11,13) 1  [13,14) 1 +1/t  [14,50) 2  [50,51) 14  [51,55) 14 +1/t  [55,…) 18\n"),
        "{native}"
    );
    for shards in ["1", "3"] {
        let wasm = stdout(&timeline(&args("wasm", shards), None));
        let (first, rest) = wasm.split_once('\n').unwrap();
        assert!(first.starts_with("ran on the emulated Golem: "), "{first}");
        // The same answers; only the plan's shard count and worker names differ.
        let answers = |out: &str| -> Vec<String> {
            out.lines()
                .filter(|l| l.starts_with("  \"") || l.starts_with("  null"))
                .map(String::from)
                .collect()
        };
        assert_eq!(answers(rest), answers(&native), "{shards} shard(s)");
    }
}
