//! Several event files (repeated `--events`, a directory, a pattern), compressed files, and
//! answers equal to reading one file.

mod common;

use common::*;
use std::io::Write;

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn zstd(text: &str) -> Vec<u8> {
    zstd::encode_all(text.as_bytes(), 3).unwrap()
}

/// The example sessions cut in three, the header repeated: keys span the files.
fn parts() -> (String, Vec<String>) {
    let all = std::fs::read_to_string(repo().join("examples/player.csv")).unwrap();
    let (header, body) = all.split_once('\n').unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let cut = |a: usize, b: usize| format!("{header}\n{}\n", lines[a..b].join("\n"));
    let n = lines.len();
    (all.clone(), vec![cut(0, 7), cut(7, 15), cut(15, n)])
}

fn eval(events: &[&str], threads: &str) -> String {
    let mut args = vec![
        "eval",
        "--query-file",
        "examples/cirr-by-cdn.tl",
        "--key",
        "sessionId",
        "--threads",
        threads,
        "--timeline",
    ];
    for e in events {
        args.push("--events");
        args.push(e);
    }
    let mut per_key = vec![
        "eval",
        "--query-file",
        "examples/cirr.tl",
        "--key",
        "sessionId",
        "--threads",
        threads,
        "--at",
        "end",
    ];
    for e in events {
        per_key.push("--events");
        per_key.push(e);
    }
    stdout(&timeline(&args, None)) + &stdout(&timeline(&per_key, None))
}

#[test]
fn several_files_directories_patterns_and_compressed_files_equal_one_file() {
    let (all, parts) = parts();
    let dir = std::env::temp_dir().join(format!("timeline-many-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("day=1")).unwrap();
    std::fs::create_dir_all(dir.join("day=2")).unwrap();
    let one = dir.join("all.csv");
    std::fs::write(&one, &all).unwrap();
    let want = eval(&[one.to_str().unwrap()], "1");
    assert!(want.lines().count() > 10, "{want}");
    // Hive-style partitions: day=1/part-0.csv.gz, day=1/part-1.csv.zst, day=2/part-0.csv.
    let p0 = dir.join("day=1/part-0.csv.gz");
    let p1 = dir.join("day=1/part-1.csv.zst");
    let p2 = dir.join("day=2/part-0.csv");
    std::fs::write(&p0, gzip(&parts[0])).unwrap();
    std::fs::write(&p1, zstd(&parts[1])).unwrap();
    std::fs::write(&p2, &parts[2]).unwrap();
    std::fs::write(dir.join("day=1/.hidden"), "not events").unwrap();
    for threads in ["1", "2"] {
        let files = [
            p0.to_str().unwrap(),
            p1.to_str().unwrap(),
            p2.to_str().unwrap(),
        ];
        assert_eq!(
            eval(&files, threads),
            want,
            "three files, {threads} thread(s)"
        );
        let pattern = format!("{}/day=*/part-*", dir.display());
        assert_eq!(
            eval(&[&pattern], threads),
            want,
            "a pattern, {threads} thread(s)"
        );
        let partitions = [dir.join("day=1"), dir.join("day=2")];
        let partitions: Vec<&str> = partitions.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            eval(&partitions, threads),
            want,
            "directories, {threads} thread(s)"
        );
    }
    // A JSON Lines part among CSV parts.
    let json: String = parts[1]
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            let mut fields = vec![format!("\"sessionId\":\"{}\"", c[1])];
            for (name, v) in [
                ("playerStateChange", c[2]),
                ("cdnChange", c[3]),
                ("userAction", c[4]),
            ] {
                if !v.is_empty() {
                    fields.push(format!("\"{name}\":\"{v}\""));
                }
            }
            format!("{{\"time\":{},\"event\":{{{}}}}}\n", c[0], fields.join(","))
        })
        .collect();
    let pj = dir.join("part-1.jsonl.gz");
    std::fs::write(&pj, gzip(&json)).unwrap();
    for threads in ["1", "2"] {
        let files = [
            p0.to_str().unwrap(),
            pj.to_str().unwrap(),
            p2.to_str().unwrap(),
        ];
        assert_eq!(
            eval(&files, threads),
            want,
            "CSV and JSON Lines, {threads} thread(s)"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_files_and_patterns_are_refused() {
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1)",
            "--events",
            "/nonexistent/dir/*.csv",
        ],
        None,
    );
    bad_input(&o, "matches no file");
    let truncated = gzip("time,a\n1,x\n2,y\n");
    let path = temp_file("truncated.csv.gz", "");
    std::fs::write(&path, &truncated[..truncated.len() - 6]).unwrap();
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1)",
            "--events",
            path.to_str().unwrap(),
        ],
        None,
    );
    bad_input(&o, "cannot read the gzip file");
    let garbage = temp_file("garbage.zst", "");
    std::fs::write(&garbage, [0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]).unwrap();
    let o = timeline(
        &[
            "eval",
            "--query",
            "count(a == 1)",
            "--events",
            garbage.to_str().unwrap(),
        ],
        None,
    );
    bad_input(&o, "cannot read the zstd file");
}

/// A CSV file whose quotes come only after many lines (past the reader's first chunks of events,
/// which the sharded reader has already fed its engines when it meets them), in the first file
/// or in a second one: read by the general reader, it answers as the same file unquoted.
#[test]
fn a_quote_late_in_a_file_answers_as_the_file_unquoted() {
    let header = "time,sessionId,playerStateChange,cdnChange,userAction";
    let states = ["init", "play", "buffer", "play", "pause", "buffer"];
    let cdns = ["CDN1", "CDN2"];
    let line = |i: usize, quoted: bool| {
        let state = states[i / 7 % states.len()];
        let state = if quoted {
            format!("\"{state}\"")
        } else {
            state.to_string()
        };
        let action = if i % 13 == 0 { "seek" } else { "" };
        format!(
            "{},s{},{state},{},{action}\n",
            i + 1,
            i % 97,
            cdns[i / 31 % 2]
        )
    };
    let n = 30_000;
    let body = |quote_at: Option<usize>| -> String {
        (0..n).map(|i| line(i, Some(i) == quote_at)).collect()
    };
    let dir = std::env::temp_dir().join(format!("timeline-quotes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let plain = write("plain.csv", format!("{header}\n{}", body(None)));
    let late = write("late.csv", format!("{header}\n{}", body(Some(n - 5))));
    let (first_half, second_half) = {
        let all = body(Some(n - 5));
        let cut = all.match_indices('\n').nth(n / 2).unwrap().0 + 1;
        (
            format!("{header}\n{}", &all[..cut]),
            format!("{header}\n{}", &all[cut..]),
        )
    };
    let first = write("first.csv", first_half);
    let second = write("second.csv", second_half);
    for threads in ["1", "2"] {
        let want = eval(&[&plain], threads);
        assert!(want.lines().count() > 97, "{want}");
        // Compared without printing them: the answers are megabytes.
        assert!(
            eval(&[&late], threads) == want,
            "one file, {threads} thread(s)"
        );
        assert!(
            eval(&[&first, &second], threads) == want,
            "the quote in the second file, {threads} thread(s)"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
