//! Columns the query does not read are skipped: answers equal those over the file without them,
//! on one thread and several, from CSV and JSON Lines, and their cells are not checked (not even
//! to be UTF-8).

mod common;

use common::*;

/// `examples/player.csv` with three columns no query reads, put between the others: a row
/// number, a playhead position and a user agent string with spaces.
fn widened() -> (String, String) {
    let all = std::fs::read_to_string(repo().join("examples/player.csv")).unwrap();
    let mut lines = all.lines();
    let header = lines.next().unwrap();
    let mut wide = format!("row,{header},position,userAgent\n");
    for (i, line) in lines.enumerate() {
        wide += &format!(
            "{i},{line},{}.25,Mozilla/5.0 (X11; Linux x86_64) Player/{i}\n",
            i * 3
        );
    }
    (all, wide)
}

/// The same events as JSON Lines, each with the extra fields and one more that no event may
/// carry (an object), which is not checked because no query reads it.
fn as_json_lines(csv: &str) -> String {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = String::new();
    for line in lines {
        let mut fields = serde_json::Map::new();
        for (name, cell) in header.iter().zip(line.split(',')) {
            if cell.is_empty() {
                continue;
            }
            let v = match cell.parse::<i64>() {
                Ok(i) => serde_json::Value::from(i),
                Err(_) => serde_json::Value::from(cell),
            };
            fields.insert(name.to_string(), v);
        }
        let time = fields.remove("time").unwrap();
        fields.insert(
            "device".into(),
            serde_json::json!({"os": "linux", "build": 7}),
        );
        out += &serde_json::json!({"time": time, "event": fields}).to_string();
        out.push('\n');
    }
    out
}

/// `timeline eval` per session: `query` (`["--query-file", PATH]` or `["--query", TEXT]`) over
/// `events` on `threads` threads, `read` saying what to print.
fn run(query: [&str; 2], events: &str, threads: &str, read: &[&str]) -> std::process::Output {
    let mut args = vec!["eval", query[0], query[1], "--key", "sessionId"];
    args.extend_from_slice(&["--threads", threads, "--events", events]);
    args.extend_from_slice(read);
    timeline(&args, None)
}

fn eval(query: &str, events: &str, threads: &str, read: &[&str]) -> String {
    stdout(&run(["--query-file", query], events, threads, read))
}

/// `query`'s answer per session at its last event, over `file` on `threads` threads.
fn final_answers(query: &str, file: &std::path::Path, threads: &str) -> std::process::Output {
    let file = file.to_str().unwrap();
    run(["--query", query], file, threads, &["--at", "end"])
}

#[test]
fn unread_columns_change_no_answer() {
    let (narrow, wide) = widened();
    let narrow = temp_file("projection-narrow.csv", &narrow);
    let wide_csv = temp_file("projection-wide.csv", &wide);
    let wide_json = temp_file("projection-wide.jsonl", &as_json_lines(&wide));
    let narrow = narrow.to_str().unwrap();
    for query in ["examples/cirr.tl", "examples/cirr-by-cdn.tl"] {
        for read in [&["--at", "end"][..], &["--timeline"][..]] {
            if query.contains("by-cdn") && read[0] == "--at" {
                continue; // an aggregate is read at fixed times
            }
            let want = eval(query, narrow, "1", read);
            assert!(want.lines().count() >= 2, "{want}");
            for wide in [&wide_csv, &wide_json] {
                for threads in ["1", "2"] {
                    assert_eq!(
                        eval(query, wide.to_str().unwrap(), threads, read),
                        want,
                        "{query} {read:?} over {} on {threads} threads",
                        wide.display()
                    );
                }
            }
        }
    }
}

#[test]
fn cells_of_unread_columns_are_not_checked_but_read_ones_are() {
    let csv = "time,sessionId,playerStateChange,junk\n\
               1,s1,play,NaN\n\
               3,s1,buffer,inf\n\
               8,s1,play,NaN\n";
    let file = temp_file("projection-junk.csv", csv);
    let run = |query: &str, threads: &str| final_answers(query, &file, threads);
    for threads in ["1", "2"] {
        let unread = r#"duration_where(latest_event_to_state(playerStateChange) == "buffer")"#;
        assert_eq!(
            stdout(&run(unread, threads)).trim(),
            r#"{"key":"s1","at":8,"value":5}"#,
            "threads {threads}"
        );
        let read = "duration_where(latest_event_to_state(junk) > 1)";
        bad_input(&run(read, threads), "projection-junk.csv:2: column `junk`");
    }
}

/// A file that is not all UTF-8 is read when the bytes that are not lie in columns no query
/// reads; in a read cell (the key included) they are refused with their line, whatever the
/// threads.
#[test]
fn bytes_of_unread_columns_need_not_be_utf8() {
    let file = temp_file("projection-latin1.csv", "");
    std::fs::write(
        &file,
        b"time,sessionId,playerStateChange,note\n\
          1,s1,play,ok\n\
          3,s1,buffer,caf\xe9\n\
          8,s1,play,ok\n",
    )
    .unwrap();
    let bad_key = temp_file("projection-latin1-key.csv", "");
    std::fs::write(
        &bad_key,
        b"time,sessionId,playerStateChange\n1,s1,play\n2,s\xe92,play\n",
    )
    .unwrap();
    let run = final_answers;
    let unread = r#"duration_where(latest_event_to_state(playerStateChange) == "buffer")"#;
    for threads in ["1", "2", "3"] {
        assert_eq!(
            stdout(&run(unread, &file, threads)).trim(),
            r#"{"key":"s1","at":8,"value":5}"#,
            "threads {threads}"
        );
        let read = r#"has_existed(note == "x")"#;
        bad_input(
            &run(read, &file, threads),
            "projection-latin1.csv:3: a cell is not UTF-8",
        );
        bad_input(
            &run(unread, &bad_key, threads),
            "projection-latin1-key.csv:3: a cell is not UTF-8",
        );
    }
}
