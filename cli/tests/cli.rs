//! Runs the built `timeline` binary on files, as a user would.

mod common;

use common::*;

#[test]
fn cirr_example_answers_per_session() {
    let o = eval_cirr(&["--at", "7", "--at", "100"]);
    assert_eq!(
        stdout(&o),
        "{\"key\":\"s1\",\"at\":7,\"value\":1}\n{\"key\":\"s1\",\"at\":100,\"value\":1}\n\
         {\"key\":\"s2\",\"at\":7,\"value\":0}\n{\"key\":\"s2\",\"at\":100,\"value\":12}\n"
    );
}

#[test]
fn timeline_and_range_print_segments_with_slopes() {
    let o = eval_cirr(&["--range", "5..8"]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"key":"s1","from":5,"to":6,"value":0,"slope":0}"#
    );
    assert_eq!(
        lines[1],
        r#"{"key":"s1","from":6,"to":7,"value":0,"slope":1}"#
    );
    assert_eq!(
        lines[2],
        r#"{"key":"s1","from":7,"to":8,"value":1,"slope":0}"#
    );
    assert_eq!(
        lines[3],
        r#"{"key":"s2","from":5,"to":8,"value":0,"slope":0}"#
    );
    let o = timeline(
        &[
            "eval",
            "--query-file",
            "examples/cirr.tl",
            "--events",
            "examples/player.csv",
        ],
        None,
    );
    // Without --key, all events are one key (null), and the whole timeline is printed.
    let out = stdout(&o);
    assert!(
        out.lines().all(|l| l.starts_with(r#"{"key":null,"from":"#)),
        "{out}"
    );
    assert!(out.lines().last().unwrap().contains(r#""to":null"#));
}

#[test]
fn json_lines_in_both_shapes_csv_and_stdin_agree() {
    let query = r#"latest_event_to_state(b) >= 2 && has_existed(a == "x")"#;
    let csv = temp_file("e.csv", "time,k,a,b\n1,p,x,\n3,p,,2.5\n2,q,y,7\n");
    let plain = temp_file(
        "e.jsonl",
        "{\"time\":1,\"event\":{\"k\":\"p\",\"a\":\"x\"}}\n{\"time\":3,\"event\":{\"k\":\"p\",\"b\":2.5}}\n{\"time\":2,\"event\":{\"k\":\"q\",\"a\":\"y\",\"b\":7}}\n",
    );
    let wit = "{\"time\":3,\"event\":[[\"k\",{\"string-value\":\"p\"}],[\"b\",{\"float-value\":2.5}]]}\n\
               {\"time\":1,\"event\":[[\"k\",{\"string-value\":\"p\"}],[\"a\",{\"string-value\":\"x\"}]]}\n\
               {\"time\":2,\"event\":[[\"k\",{\"string-value\":\"q\"}],[\"a\",{\"string-value\":\"y\"}],[\"b\",{\"int-value\":7}]]}\n";
    let args = |events: &str| -> Vec<String> {
        [
            "eval",
            "--query",
            query,
            "--events",
            events,
            "--key",
            "k",
            "--timeline",
            "--at",
            "3",
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |events: &str, stdin: Option<&str>| {
        let a = args(events);
        stdout(&timeline(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            stdin,
        ))
    };
    let from_csv = run(csv.to_str().unwrap(), None);
    assert_eq!(from_csv, run(plain.to_str().unwrap(), None));
    assert_eq!(from_csv, run("-", Some(wit)));
    assert!(
        from_csv.starts_with("{\"key\":\"p\",\"at\":3,\"value\":true}\n{\"key\":\"p\",\"from\":0,"),
        "{from_csv}"
    );
    assert!(
        from_csv.contains("{\"key\":\"q\",\"at\":3,\"value\":false}"),
        "{from_csv}"
    );
}

#[test]
fn table_format_aligns_columns() {
    let o = timeline(
        &[
            "eval",
            "--query-file",
            "examples/machine-risk.tl",
            "--events",
            "examples/machine-telemetry.csv",
            "--key",
            "machine",
            "--at",
            "100",
            "--format",
            "table",
        ],
        None,
    );
    assert_eq!(stdout(&o), "key  at   value\nm1   100  27\nm2   100  5\n");
}

#[test]
fn examples_answer_their_questions() {
    let o = timeline(
        &[
            "eval",
            "--query-file",
            "examples/card-swipes.tl",
            "--events",
            "examples/card-swipes.jsonl",
            "--key",
            "card",
        ],
        None,
    );
    let out = stdout(&o);
    assert!(
        out.contains(r#"{"key":"4111-01","from":1500,"to":1900,"value":true,"slope":0}"#),
        "{out}"
    );
    assert!(
        out.contains(r#"{"key":"5500-02","from":2000,"to":2300,"value":true,"slope":0}"#),
        "{out}"
    );
    let o = timeline(
        &[
            "eval",
            "--query-file",
            "examples/ad-stall.tl",
            "--events",
            "examples/game.jsonl",
            "--key",
            "user",
        ],
        None,
    );
    let out = stdout(&o);
    let true_rows: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("\"value\":true"))
        .collect();
    assert_eq!(
        true_rows,
        [r#"{"key":"u2","from":35,"to":80,"value":true,"slope":0}"#]
    );
}

#[test]
fn explain_prints_one_line_per_distinct_node_with_stable_ids() {
    let q = r#"has_existed(a == 1) && !has_existed(a == 1)"#;
    let first = stdout(&timeline(&["explain", q], None));
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 3, "{first}");
    assert!(lines[0].contains("leaf") && lines[0].contains("has_existed(a == 1)"));
    assert!(lines[2].contains("(result)"));
    let leaf_id = lines[0].split_whitespace().next().unwrap();
    assert!(lines[1].contains(&format!("inputs=[{leaf_id}]")));
    // The same sub-expression gets the same id in another query.
    let other = stdout(&timeline(
        &[
            "explain",
            "count_within(a == 1, 3) > 1 || has_existed(a == 1)",
        ],
        None,
    ));
    assert!(other.contains(leaf_id), "{other}");
}

#[test]
fn bad_events_name_the_file_and_line_and_print_nothing() {
    let cases: Vec<(String, &str)> = vec![
        (
            "time,a\n1,x\nsoon,y\n".into(),
            ":3: column `time`: a time must be a non-negative integer",
        ),
        (
            "time,a\n1,x\n2,NaN\n".into(),
            ":3: column `a`: NaN is not a finite number",
        ),
        ("time,a\n1,x,3\n".into(), ":2: invalid CSV"),
        (
            "{\"time\":1,\"event\":{\"a\":1}}\n{\"time\":2,\"event\":{\"a\":[1]}}\n".into(),
            ":2: column \"a\"",
        ),
        (
            "{\"time\":1,\"event\":{\"a\":1}}\n{oops\n".into(),
            ":2: invalid JSON",
        ),
        (
            "{\"time\":1,\"event\":[[\"a\",{\"float-value\":\"x\"}]]}\n".into(),
            ":1: column \"a\": unknown value",
        ),
    ];
    for (k, (content, needle)) in cases.iter().enumerate() {
        let path = temp_file(&format!("bad{k}.txt"), content);
        let o = timeline(
            &[
                "eval",
                "--query",
                "has_existed(a == 1)",
                "--events",
                path.to_str().unwrap(),
            ],
            None,
        );
        bad_input(&o, needle);
    }
    let o = timeline(
        &[
            "eval",
            "--query",
            "has_existed(a == 1)",
            "--events",
            "/no/such/file.csv",
        ],
        None,
    );
    bad_input(&o, "/no/such/file.csv: cannot read");
    let latin1 = temp_file("latin1.csv", "");
    std::fs::write(&latin1, b"time,a\n1,caf\xe9\n").unwrap();
    let o = timeline(
        &[
            "eval",
            "--query",
            "has_existed(a == 1)",
            "--events",
            latin1.to_str().unwrap(),
        ],
        None,
    );
    bad_input(&o, "cannot read: the file is not UTF-8 (byte 12)");
    let o = timeline(
        &[
            "eval",
            "--query-file",
            "examples/cirr.tl",
            "--events",
            "examples/player.csv",
            "--key",
            "nope",
        ],
        None,
    );
    bad_input(&o, "no \"nope\" column (the partition key)");
}

#[test]
fn bad_queries_point_at_line_and_column() {
    let o = timeline(
        &[
            "eval",
            "--query",
            "has_existed(a == )",
            "--events",
            "examples/player.csv",
        ],
        None,
    );
    bad_input(&o, "query:1:18: expected an expression, found `)`");
    let path = temp_file("q.tl", "let x = has_existed(a == 1);\nx && frob(1)\n");
    let o = timeline(
        &[
            "eval",
            "--query-file",
            path.to_str().unwrap(),
            "--events",
            "examples/player.csv",
        ],
        None,
    );
    bad_input(&o, ":2:6: unknown operator `frob`");
    bad_input(&o, "  | x && frob(1)\n  |      ^");
    let o = timeline(&["explain", "has_existed_within(a == 1, 0)"], None);
    bad_input(&o, "greater than 0");
    let o = timeline(&["eval", "--events", "examples/player.csv"], None);
    bad_input(&o, "needs --query");
}

#[test]
fn retention_refuses_old_events_and_queries() {
    let events = temp_file("late.csv", "time,a\n100,1\n200,1\n50,1\n");
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1)",
            "--events",
            events.to_str().unwrap(),
            "--retain",
            "60",
        ],
        None,
    );
    bad_input(
        &o,
        "event 3 (time 50): time 50 is before the retention horizon 140",
    );
    let events = temp_file("ok.csv", "time,a\n100,1\n200,1\n190,1\n");
    let args = [
        "eval",
        "--query",
        "count(a == 1)",
        "--events",
        events.to_str().unwrap(),
        "--retain",
        "60",
        "--at",
    ];
    let o = timeline(&[&args[..], &["199"]].concat(), None);
    assert_eq!(stdout(&o), "{\"key\":null,\"at\":199,\"value\":2}\n");
    let o = timeline(&[&args[..], &["120"]].concat(), None);
    bad_input(&o, "time 120 is before the retention horizon 140");
}

/// `run` prints the plan and every worker's result; the emulated Golem components and the
/// native nodes print the same (the components must be built: see scripts/setup).
#[test]
fn run_on_the_components_matches_run_natively() {
    let args = |runtime| {
        vec![
            "run",
            "--runtime",
            runtime,
            "--query-file",
            "examples/cirr.tl",
            "--events",
            "examples/player.csv",
            "--key",
            "sessionId",
        ]
    };
    let wasm = stdout(&timeline(&args("wasm"), None));
    let native = stdout(&timeline(&args("native"), None));
    let (first, rest) = wasm.split_once('\n').unwrap();
    assert!(first.starts_with("ran on the emulated Golem: "), "{first}");
    assert_eq!(rest, native);
    assert!(native.contains("[result] duration_where("));
    assert!(
        native.contains("  \"s1\": [0,6) 0  [6,7) 0↗  [7,…) 1\n"),
        "{native}"
    );
    assert!(
        native.contains("  \"s2\": [0,20) 0  [20,32) 0↗  [32,…) 12\n"),
        "{native}"
    );
}

/// `--key` splits the keys over threads; the output is the same whatever their number, on
/// interleaved keys, keys spelled differently (`7`, `7.0`), blank lines and CRLF line ends.
#[test]
fn threads_give_the_same_answers_and_errors() {
    let mut csv = String::from("time,k,a\r\n");
    for i in 0..400u64 {
        let key = match i % 7 {
            0 => "7".to_string(),
            1 => "7.0".to_string(),
            2 => String::new(), // a missing value for the key column is refused below
            k => format!("s{k}"),
        };
        if key.is_empty() {
            continue;
        }
        // Late events too: time goes back now and then.
        let t = if i % 11 == 0 { i.saturating_sub(30) } else { i };
        csv.push_str(&format!(
            "{t},{key},{}\r\n",
            ["x", "y", "1", ""][(i % 4) as usize]
        ));
        if i % 50 == 0 {
            csv.push_str("\r\n");
        }
    }
    let path = temp_file("threads.csv", &csv);
    let run = |threads: &str, query: &str| {
        timeline(
            &[
                "eval",
                "--query",
                query,
                "--key",
                "k",
                "--events",
                path.to_str().unwrap(),
                "--threads",
                threads,
                "--at",
                "200",
                "--timeline",
            ],
            None,
        )
    };
    let query = r#"duration_where(latest_event_to_state(a) == "x" || count(a == 1) > 20)"#;
    let one = stdout(&run("1", query));
    assert!(
        one.contains(r#""key":7,"#),
        "the key 7 and 7.0 are one: {one}"
    );
    assert!(one.contains(r#""key":"s6""#));
    for threads in ["2", "3", "5"] {
        assert_eq!(stdout(&run(threads, query)), one, "{threads} threads");
    }

    // The first bad line of the file is reported, whichever thread reads it.
    let bad = temp_file(
        "threads-bad.csv",
        "time,k,a\n1,s1,x\n2,s2,y\n3,s3,NaN\n4,s4\n",
    );
    for threads in ["1", "2", "3"] {
        let o = timeline(
            &[
                "eval",
                "--query",
                "has_existed(a == 1)",
                "--key",
                "k",
                "--events",
                bad.to_str().unwrap(),
                "--threads",
                threads,
            ],
            None,
        );
        bad_input(&o, ":4: column `a`: NaN");
    }
}

#[test]
fn hostile_queries_are_refused_with_exit_2_not_a_crash() {
    let events = temp_file("one.jsonl", "{\"time\": 1, \"event\": {\"a\": 1}}\n");
    let events = events.to_str().unwrap();
    let deep = temp_file("deep.tl", &("!".repeat(100_000) + "has_existed(a == 1)"));
    let o = timeline(
        &[
            "eval",
            "--query-file",
            deep.to_str().unwrap(),
            "--events",
            events,
            "--at",
            "1",
        ],
        None,
    );
    bad_input(&o, "nests more than 256 levels deep");
    // The error quotes a window of the 100 KB line around the column, not the whole line.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.len() < 1_000, "{} bytes of error", err.len());
    assert!(err.contains("…"), "{err}");
    let parens = temp_file(
        "parens.tl",
        &("(".repeat(50_000) + "has_existed(a == 1)" + &")".repeat(50_000)),
    );
    let o = timeline(
        &[
            "eval",
            "--query-file",
            parens.to_str().unwrap(),
            "--events",
            events,
        ],
        None,
    );
    bad_input(&o, "nests more than 256 levels deep");
    let chain = (0..20_000)
        .map(|i| format!("has_existed(a == {i})"))
        .collect::<Vec<_>>()
        .join(" && ");
    let chain = temp_file("chain.tl", &chain);
    let o = timeline(&["explain", "--query-file", chain.to_str().unwrap()], None);
    bad_input(&o, "group it into balanced halves");
}

#[test]
fn at_end_gives_each_key_its_value_at_its_own_last_event() {
    let run = |extra: &[&str]| stdout(&eval_cirr(extra));
    let end = run(&["--at", "end"]);
    assert_eq!(
        end,
        "{\"key\":\"s1\",\"at\":14,\"value\":1}\n{\"key\":\"s2\",\"at\":55,\"value\":12}\n"
    );
    // The same as asking each key at that time, on one thread or several.
    let s1 = run(&["--at", "14"]);
    assert!(end.starts_with(s1.lines().next().unwrap()), "{s1}");
    assert_eq!(run(&["--at", "end", "--threads", "1"]), end);
    assert_eq!(run(&["--at", "end", "--threads", "2"]), end);
    bad_input(&eval_cirr(&["--at", "ending"]), "--at: a time must be");
}
