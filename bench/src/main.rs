//! `timeline-bench`: CIRR over a generated player stream, computed by the native engine, the
//! `timeline` CLI over CSV, the Golem components on the emulated Golem, and DuckDB (1 thread and
//! all threads), with every runner's answers checked equal before any time is printed.
//!
//! Usage: `timeline-bench [--tier small|1m|10m|100m] [--sessions N --events-per-session M]
//!         [--runners native,cli,components,duckdb] [--out DIR]`

mod gen;

use golem_emulator::{components_dir, TimelineSystem};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use timeline::{Engine, EngineOptions, Event, TimeLineOp, Value};

const CIRR: &str = include_str!("../../examples/cirr.tl");
/// After every session's last event: CIRR is constant after `stop`.
const END: u64 = 1_000_000_000;
const SEED: u64 = 20_231_115;

/// Per session: CIRR at the end.
type Answers = BTreeMap<String, i64>;

struct Measurement {
    runner: String,
    seconds: f64,
    events: u64,
    peak_rss_kb: Option<u64>,
    bytes_per_key: Option<f64>,
    answers: Answers,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (mut sessions, mut per_session) = match get("--tier").as_deref().unwrap_or("small") {
        "small" => (1_000, 100),
        "1m" => (1_000, 1_000),
        "10m" => (10_000, 1_000),
        "100m" => (100_000, 1_000),
        t => return Err(format!("unknown tier {t}: small, 1m, 10m or 100m")),
    };
    if let Some(s) = get("--sessions") {
        sessions = s.parse().map_err(|_| "--sessions expects a number")?;
    }
    if let Some(e) = get("--events-per-session") {
        per_session = e
            .parse()
            .map_err(|_| "--events-per-session expects a number")?;
    }
    let total = sessions * per_session;
    let default_runners = if total <= 2_000_000 {
        "native,cli,components,duckdb"
    } else {
        "native,cli,duckdb"
    };
    let runners = get("--runners").unwrap_or_else(|| default_runners.into());
    let out = PathBuf::from(get("--out").unwrap_or_else(|| "target/bench".into()));
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let query: TimeLineOp = CIRR.parse().map_err(|e| format!("{e}"))?;

    println!("CIRR over {sessions} sessions x {per_session} events (seed {SEED})");
    let csv = out.join(format!("player-{sessions}x{per_session}.csv"));
    let rows = if csv.exists() {
        count_rows(&csv)?
    } else {
        let start = Instant::now();
        let rows =
            gen::write_player_csv(&csv, SEED, sessions, per_session).map_err(|e| e.to_string())?;
        println!(
            "  generated {} ({rows} events) in {:.1} s",
            csv.display(),
            start.elapsed().as_secs_f64()
        );
        rows
    };

    let mut results: Vec<Measurement> = Vec::new();
    for runner in runners.split(',') {
        match runner {
            "native" => {
                results.push(native(&query, sessions, per_session, None)?);
                results.push(native(&query, sessions, per_session, Some(300))?);
            }
            "cli" => results.push(cli(&csv, rows)?),
            "components" => results.push(components(&query, sessions, per_session)?),
            "duckdb" => {
                results.push(duckdb(&csv, rows, 1)?);
                results.push(duckdb(&csv, rows, available_threads())?);
            }
            other => return Err(format!("unknown runner {other}")),
        }
    }

    // Every runner must give every session the same answer before any time is shown.
    let reference = &results[0];
    for m in &results[1..] {
        if m.answers != reference.answers {
            let diff = reference
                .answers
                .iter()
                .find(|(k, v)| m.answers.get(*k) != Some(v))
                .map(|(k, v)| {
                    format!(
                        "session {k}: {} says {v}, {} says {:?}",
                        reference.runner,
                        m.runner,
                        m.answers.get(k)
                    )
                });
            return Err(format!(
                "answers differ: {}",
                diff.unwrap_or_else(|| "different sessions".into())
            ));
        }
    }
    let total_cirr: i64 = reference.answers.values().sum();
    println!(
        "  answers: equal across all {} runs ({} sessions, total CIRR {total_cirr} s)\n",
        results.len(),
        reference.answers.len()
    );
    print_table(&results);
    Ok(())
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn count_rows(csv: &Path) -> Result<u64, String> {
    let text = std::fs::read(csv).map_err(|e| e.to_string())?;
    Ok(text.iter().filter(|b| **b == b'\n').count() as u64 - 1)
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The library in-process: events built in memory first; only ingestion is timed.
fn native(
    query: &TimeLineOp,
    sessions: usize,
    per_session: usize,
    retention: Option<u64>,
) -> Result<Measurement, String> {
    let options = EngineOptions {
        key_column: Some("sessionId".into()),
        retention,
    };
    let mut engine = Engine::new(query, options).map_err(|e| e.to_string())?;
    let mut seconds = 0.0;
    let mut events = 0u64;
    // Blocks of sessions, as a stream from many players arrives; built outside the timing.
    let block = 500;
    let mut names = Vec::with_capacity(sessions);
    let mut strings = gen::Interner::new();
    let mut iter = gen::player_sessions(SEED, sessions, per_session).peekable();
    while iter.peek().is_some() {
        let mut batch: Vec<Event> = Vec::with_capacity(block * per_session);
        for (i, session) in iter.by_ref().take(block) {
            let name = gen::session_name(i);
            let shared: std::sync::Arc<str> = name.as_str().into();
            batch.extend(
                session
                    .iter()
                    .map(|(t, e)| e.to_event(*t, &shared, &mut strings)),
            );
            names.push(name);
        }
        events += batch.len() as u64;
        let start = Instant::now();
        engine.ingest(&batch).map_err(|e| e.to_string())?;
        seconds += start.elapsed().as_secs_f64();
    }
    let stats = engine.stats();
    let mut answers = Answers::new();
    for name in names {
        let v = engine
            .value_at(Some(&Value::from(name.as_str())), END)
            .map_err(|e| e.to_string())?;
        answers.insert(name, as_int(&v));
    }
    Ok(Measurement {
        runner: match retention {
            None => "native engine".into(),
            Some(h) => format!("native engine, retain {h}"),
        },
        seconds,
        events,
        peak_rss_kb: peak_rss_kb(),
        bytes_per_key: Some(stats.bytes as f64 / stats.keys.max(1) as f64),
        answers,
    })
}

fn as_int(v: &timeline::State) -> i64 {
    match v.instant_value() {
        Some(Value::Int(i)) => i,
        _ => -1,
    }
}

/// The `timeline` CLI end to end over the CSV file (release build), under /usr/bin/time.
fn cli(csv: &Path, rows: u64) -> Result<Measurement, String> {
    let status = Command::new("cargo")
        .args(["build", "--release", "-q", "-p", "timeline-cli"])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("building the CLI failed".into());
    }
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args([
            "-f",
            "%M",
            "target/release/timeline",
            "eval",
            "--query-file",
            "examples/cirr.tl",
            "--key",
            "sessionId",
        ])
        .arg("--events")
        .arg(csv)
        .args(["--at", &END.to_string()])
        .output()
        .map_err(|e| format!("running the CLI: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "the CLI failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut answers = Answers::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        answers.insert(
            v["key"].as_str().unwrap_or_default().to_string(),
            v["value"].as_i64().unwrap_or(-1),
        );
    }
    let rss = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok());
    Ok(Measurement {
        runner: "timeline CLI over CSV".into(),
        seconds,
        events: rows,
        peak_rss_kb: rss,
        bytes_per_key: None,
        answers,
    })
}

/// The four components on the emulated Golem, fed through the driver in batches.
fn components(
    query: &TimeLineOp,
    sessions: usize,
    per_session: usize,
) -> Result<Measurement, String> {
    let logs = std::env::temp_dir().join(format!("timeline-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&logs);
    let sys = TimelineSystem::start(&components_dir(), &logs).map_err(|e| format!("{e:#}"))?;
    sys.run("bench", &query.to_string(), Some("sessionId"), 1, None)
        .map_err(|e| format!("{e:#}"))?;
    let mut events = 0;
    let mut seconds = 0.0;
    let mut names = Vec::new();
    let mut strings = gen::Interner::new();
    let mut iter = gen::player_sessions(SEED, sessions, per_session).peekable();
    while iter.peek().is_some() {
        let mut batch: Vec<Event> = Vec::new();
        for (i, session) in iter.by_ref().take(100) {
            let name = gen::session_name(i);
            let shared: std::sync::Arc<str> = name.as_str().into();
            batch.extend(
                session
                    .iter()
                    .map(|(t, e)| e.to_event(*t, &shared, &mut strings)),
            );
            names.push(name);
        }
        events += batch.len() as u64;
        let start = Instant::now();
        sys.ingest("bench", &batch).map_err(|e| format!("{e:#}"))?;
        seconds += start.elapsed().as_secs_f64();
    }
    let mut answers = Answers::new();
    for name in names {
        let v = sys
            .result("bench", None, Some(&Value::from(name.as_str())), END)
            .map_err(|e| format!("{e:#}"))?;
        answers.insert(name, as_int(&v));
    }
    let _ = std::fs::remove_dir_all(&logs);
    Ok(Measurement {
        runner: "components (emulated Golem)".into(),
        seconds,
        events,
        peak_rss_kb: None,
        bytes_per_key: None,
        answers,
    })
}

/// DuckDB from PyPI (installed if missing) with the equivalent SQL over the same CSV.
fn duckdb(csv: &Path, rows: u64, threads: usize) -> Result<Measurement, String> {
    let has = Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .map_err(|e| e.to_string())?;
    if !has.success() {
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "duckdb"])
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("could not install duckdb with pip".into());
        }
    }
    let out = Command::new("python3")
        .arg("bench/duckdb_cirr.py")
        .arg(csv)
        .arg(threads.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "duckdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let answers = v["results"]
        .as_object()
        .ok_or("duckdb printed no results")?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(-1)))
        .collect();
    Ok(Measurement {
        runner: format!(
            "DuckDB, {threads} thread{}",
            if threads == 1 { "" } else { "s" }
        ),
        seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        events: rows,
        peak_rss_kb: v["rss_kb"].as_u64(),
        bytes_per_key: None,
        answers,
    })
}

fn print_table(results: &[Measurement]) {
    let duck = |t: &str| {
        results
            .iter()
            .find(|m| m.runner.starts_with("DuckDB") && m.runner.contains(t))
            .map(|m| m.seconds)
    };
    let duck1 = duck("1 thread");
    let duck_all = results
        .iter()
        .rev()
        .find(|m| m.runner.starts_with("DuckDB"))
        .map(|m| m.seconds);
    println!(
        "{:<30} {:>9} {:>12} {:>11} {:>11} {:>13} {:>14}",
        "runner", "wall s", "events/s", "peak RSS", "bytes/key", "x DuckDB 1t", "x DuckDB all"
    );
    for m in results {
        let ratio = |d: Option<f64>| d.map_or("-".to_string(), |d| format!("{:.2}", d / m.seconds));
        println!(
            "{:<30} {:>9.3} {:>12} {:>11} {:>11} {:>13} {:>14}",
            m.runner,
            m.seconds,
            format!("{:.2}M", m.events as f64 / m.seconds / 1e6),
            m.peak_rss_kb
                .map_or("-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
            m.bytes_per_key.map_or("-".into(), |b| format!("{b:.0}")),
            ratio(duck1),
            ratio(duck_all),
        );
    }
    println!("\n(x DuckDB: DuckDB's wall time over the runner's; above 1 means faster than DuckDB. The native");
    println!("engine's time is ingestion and evaluation of events already in memory; the CLI's is the whole");
    println!("process, reading the CSV; DuckDB's is its query over the CSV, reading included.)");
}

/// The engine runs on a modern allocator, as DuckDB does on its own (jemalloc): glibc's malloc
/// spent a third of ingestion consolidating free chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
