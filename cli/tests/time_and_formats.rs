//! Event times in other units and as RFC 3339 timestamps, the time column named, duration
//! literals in the query, and `--format csv`.

mod common;

use common::*;

/// The SPEC's CIRR session s1, its times as seconds.
const SECONDS: &str = "time,sid,psc,cdn,action\n1,s1,init,,\n2,s1,,CDN1,\n4,s1,buffer,,\n5,s1,play,,\n6,s1,buffer,,\n7,s1,,,seek\n9,s1,play,,\n";

const CIRR: &str = "duration_where(has_existed(psc == \"play\") && !has_existed_within(action == \"seek\", 5s) && latest_event_to_state(psc) == \"buffer\" && latest_event_to_state(cdn) == \"CDN1\")";

fn eval(file: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec![
        "eval",
        "--query",
        CIRR,
        "--events",
        file.to_str().unwrap(),
        "--key",
        "sid",
    ];
    args.extend_from_slice(extra);
    stdout(&timeline(&args, None))
}

#[test]
fn timestamps_and_units_give_the_answers_of_integer_seconds() {
    let base = temp_file("seconds.csv", SECONDS);
    let want = eval(&base, &["--at", "20", "--range", "0..20"]);
    assert!(want.contains("\"value\":1"), "{want}");
    // The same events as RFC 3339 timestamps (various offsets), in a column named `ts`.
    let stamps = SECONDS
        .replacen("time,", "ts,", 1)
        .lines()
        .map(|l| match l.split_once(',') {
            Some((t, rest)) if t != "ts" => {
                let t: u64 = t.parse().unwrap();
                let stamp = if t % 2 == 0 {
                    format!("1970-01-01T00:00:{t:02}Z")
                } else {
                    format!("1970-01-01T01:00:{t:02}+01:00")
                };
                format!("{stamp},{rest}")
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = temp_file("stamps.csv", &stamps);
    let got = eval(
        &file,
        &[
            "--time-column",
            "ts",
            "--at",
            "1970-01-01T00:00:20Z",
            "--range",
            "0..20",
        ],
    );
    assert_eq!(got, want);
    // In milliseconds: the times, the query's 5s and the asked times scale together.
    let ms = eval(
        &file,
        &[
            "--time-column",
            "ts",
            "--time-unit",
            "ms",
            "--at",
            "20000",
            "--range",
            "0..20000",
        ],
    );
    let scaled = want
        .replace("\"at\":20,", "\"at\":20000,")
        .replace("\"value\":1}", "\"value\":1000}")
        .replace("\"value\":1,\"slope\"", "\"value\":1000,\"slope\"")
        .replace("\"from\":6,\"to\":7", "\"from\":6000,\"to\":7000")
        .replace("\"from\":0,\"to\":6", "\"from\":0,\"to\":6000")
        .replace("\"from\":7,\"to\":20", "\"from\":7000,\"to\":20000");
    assert_eq!(ms, scaled);
    // JSON Lines may write `time` as a timestamp too.
    let jsonl = "{\"time\":\"1970-01-01T00:00:01Z\",\"event\":{\"sid\":\"s1\",\"psc\":\"init\"}}\n{\"time\":2,\"event\":{\"sid\":\"s1\",\"cdn\":\"CDN1\"}}\n";
    let file = temp_file("stamps.jsonl", jsonl);
    let out = stdout(&timeline(
        &[
            "eval",
            "--query",
            "latest_event_to_state(cdn)",
            "--events",
            file.to_str().unwrap(),
            "--key",
            "sid",
            "--at",
            "1970-01-01T00:00:03Z",
        ],
        None,
    ));
    assert_eq!(out, "{\"key\":\"s1\",\"at\":3,\"value\":\"CDN1\"}\n");
}

#[test]
fn times_that_do_not_convert_are_refused_with_file_line_and_reason() {
    let file = temp_file(
        "bad-stamp.csv",
        "time,sid,a\n1,s1,x\n1970-01-01T00:00:02.5Z,s1,y\n",
    );
    let o = timeline(
        &[
            "eval",
            "--query",
            "latest_event_to_state(a)",
            "--events",
            file.to_str().unwrap(),
            "--key",
            "sid",
            "--threads",
            "1",
        ],
        None,
    );
    bad_input(&o, "bad-stamp.csv:3");
    bad_input(&o, "--time-unit ms");
    let file = temp_file("old-stamp.csv", "time,a\n1969-07-20T20:17:40Z,x\n");
    let o = timeline(
        &[
            "eval",
            "--query",
            "latest_event_to_state(a)",
            "--events",
            file.to_str().unwrap(),
        ],
        None,
    );
    bad_input(&o, "before 1970");
    let o = timeline(
        &[
            "eval",
            "--query",
            "latest_event_to_state(a)",
            "--events",
            file.to_str().unwrap(),
            "--time-column",
            "when",
        ],
        None,
    );
    bad_input(&o, "no `when` column");
    let o = timeline(
        &[
            "eval",
            "--query",
            "latest_event_to_state(a)",
            "--events",
            file.to_str().unwrap(),
            "--time-unit",
            "minutes",
        ],
        None,
    );
    bad_input(&o, "--time-unit expects s, ms, us or ns");
    let o = timeline(
        &[
            "eval",
            "--query",
            "latest_event_to_state(a)",
            "--events",
            file.to_str().unwrap(),
            "--at",
            "tomorrow",
        ],
        None,
    );
    bad_input(&o, "--at: a time must be");
}

#[test]
fn csv_output_has_the_json_columns() {
    let file = temp_file("csv-out.csv", SECONDS);
    let points = eval(&file, &["--at", "3", "--at", "20", "--format", "csv"]);
    assert_eq!(points, "key,at,value\ns1,3,0\ns1,20,1\n");
    let segments = eval(&file, &["--range", "5..8", "--format", "csv"]);
    assert_eq!(
        segments,
        "key,from,to,value,slope\ns1,5,6,0,0\ns1,6,7,0,1\ns1,7,8,1,0\n"
    );
    let unknown = stdout(&timeline(
        &[
            "eval",
            "--query",
            "latest_event_to_state(cdn)",
            "--events",
            file.to_str().unwrap(),
            "--key",
            "sid",
            "--at",
            "1",
            "--format",
            "csv",
        ],
        None,
    ));
    assert_eq!(unknown, "key,at,value\ns1,1,\n");
    let groups = stdout(&timeline(
        &[
            "eval",
            "--query-file",
            "examples/buffering-now.tl",
            "--events",
            "examples/player.csv",
            "--key",
            "sessionId",
            "--at",
            "4",
            "--at",
            "12",
            "--format",
            "csv",
        ],
        None,
    ));
    assert_eq!(
        groups,
        "group,at,count,sum\nCDN1,4,2,1\nCDN1,12,1,0\nCDN2,12,1,0\n"
    );
    let o = timeline(
        &[
            "eval",
            "--query",
            CIRR,
            "--events",
            file.to_str().unwrap(),
            "--at",
            "3",
            "--range",
            "0..5",
            "--format",
            "csv",
        ],
        None,
    );
    bad_input(&o, "--format csv and parquet take points");
}
