//! `timeline-bench`: the four problem statements over generated streams, each computed by the
//! native engine, the `timeline` CLI over CSV, the Golem components on the emulated Golem, and
//! DuckDB (1 thread and all threads), and by the CLI and DuckDB over the same events as Parquet,
//! with every runner's answers checked equal before any time is printed.
//!
//! ```text
//! timeline-bench [--tier small|1m|10m|100m] [--keys N --events-per-key M]
//!                [--queries cirr,card-swipes,machine-risk,ad-stall]
//!                [--runners native,cli,components,duckdb,parquet] [--scaling] [--out DIR]
//!                [--interleave N] [--report | --report-to PATH]
//! ```
//!
//! `--interleave N` merges N keys at a time in time order, in the files and in the batches, as a
//! stream of N concurrent sessions arrives (by default a file keeps each key's events together).
//!
//! `--report` writes the results of the run into the guide's benchmark page
//! (`docs/src/benchmarks.md`, between its `results` markers): the machine, the date, the
//! versions and every table, so that the page holds one run and is regenerated, not edited.
//!
//! Each runner runs in a process of its own (this binary, re-invoked with `--child`), so that
//! its peak memory is its own.

mod gen;
mod report;
mod targets;
mod workload;

use golem_emulator::{components_dir, TimelineSystem};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use timeline::aggregate::{AggregateEngine, GroupSelector, Query};
use timeline::{Engine, EngineOptions, Event, Value};
use workload::Workload;

/// After every key's last event.
const END: u64 = 1_000_000_000;
const SEED: u64 = 20_231_115;
/// The retention horizon of the "retain" runs: events may arrive up to a minute late.
const RETAIN: u64 = 60;
/// Events per ingest call, for the engine and the components alike.
const BATCH: usize = 16_384;
/// Events per ingest call of the components' second row: what a high-volume client sends
/// (about 4 MB packed), each call's invocations spread over four times the events.
const LARGE_BATCH: usize = 65_536;

/// Per key: the query's value at `END`.
type Answers = BTreeMap<String, i64>;

/// What one runner measured.
struct Measurement {
    runner: String,
    seconds: f64,
    events: u64,
    peak_rss_kb: Option<u64>,
    /// The engine's own estimate of what it holds per key.
    bytes_per_key: Option<f64>,
    /// Extra facts for the table's notes (calls made, per-call cost).
    note: Option<String>,
    answers: Answers,
}

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in `mimalloc.h`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // As DuckDB's buffer manager does, the process keeps memory it freed instead of handing it
    // back to the kernel after 10 ms and faulting fresh zeroed pages in again (see the CLI).
    // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--child") {
        // A runner's pages are not transparent huge pages either, whose faults compact and
        // zero 2 MiB at a time (see the CLI's `no_transparent_huge_pages`). Only here: the
        // flag passes on to every process started after it, and DuckDB's keep the machine's
        // setting.
        #[cfg(target_os = "linux")]
        // SAFETY: sets a flag of the calling process; no memory is passed.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
        child(&args[1..])
    } else {
        run(&args)
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn number(args: &[String], name: &str) -> Result<Option<usize>, String> {
    flag(args, name)
        .map(|s| s.parse().map_err(|_| format!("{name} expects a number")))
        .transpose()
}

fn run(args: &[String]) -> Result<(), String> {
    let (mut keys, mut per_key) = match flag(args, "--tier").as_deref().unwrap_or("small") {
        "small" => (1_000, 100),
        "1m" => (1_000, 1_000),
        "10m" => (10_000, 1_000),
        "100m" => (100_000, 1_000),
        t => return Err(format!("unknown tier {t}: small, 1m, 10m or 100m")),
    };
    keys = number(args, "--keys")?.unwrap_or(keys);
    per_key = number(args, "--events-per-key")?.unwrap_or(per_key);
    if let Some(n) = number(args, "--interleave")? {
        if n == 0 {
            return Err("--interleave takes a number of keys, at least 1".into());
        }
        // Read by this process and inherited by every runner's process.
        std::env::set_var("TIMELINE_BENCH_INTERLEAVE", n.to_string());
    }
    let out = PathBuf::from(flag(args, "--out").unwrap_or_else(|| "target/bench".into()));
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    if args.iter().any(|a| a == "--scaling") {
        return scaling();
    }
    let total = keys * per_key;
    let default_runners = if total <= 2_000_000 {
        "native,cli,components,duckdb,parquet"
    } else {
        "native,cli,duckdb,parquet"
    };
    let runners = flag(args, "--runners").unwrap_or_else(|| default_runners.into());
    let queries = flag(args, "--queries").unwrap_or_else(|| Workload::NAMES.join(","));
    let report_to = match flag(args, "--report-to") {
        Some(path) => Some(PathBuf::from(path)),
        None if args.iter().any(|a| a == "--report") => Some(PathBuf::from(report::PAGE)),
        None => None,
    };
    let mut tables = Vec::new();
    let mut measured = Vec::new();
    for name in queries.split(',') {
        let w = Workload::named(name)?;
        let results = compare(&w, &runners, keys, per_key, &out)?;
        print_table(&results, keys);
        println!();
        if report_to.is_some() {
            tables.push(report::Table::new(&w, &results, keys, per_key));
        }
        measured.push((w.name, results));
    }
    let by_workload: Vec<(&'static str, &[Measurement])> =
        measured.iter().map(|(w, r)| (*w, r.as_slice())).collect();
    let targets = targets::render(&targets::check(&by_workload));
    println!("Targets (each one's worst workload in this run):\n{targets}");
    if let Some(page) = report_to {
        let run = report::Run::now(keys * per_key, DUCKDB);
        report::write(&page, &run, &targets, &tables)?;
        println!("wrote the results into {}", page.display());
    }
    println!("(x DuckDB: DuckDB's wall time over the runner's, over the same file (CSV, or Parquet for the");
    println!("Parquet rows); above 1 means faster than DuckDB. The native engine's time is ingestion and");
    println!("evaluation of events already decoded in memory (the columns the query reads); the CLI's is the");
    println!("whole process, reading the file; DuckDB's is its query over the file, reading included, with");
    println!(
        "rows that change no state dropped before its window functions. Peak RSS is the runner's"
    );
    println!("process; bytes/key is the engine's own count of what it holds per key.)");
    Ok(())
}

/// Runs `w` with every runner, checks the answers are equal, and returns the measurements.
fn compare(
    w: &Workload,
    runners: &str,
    keys: usize,
    per_key: usize,
    out: &Path,
) -> Result<Vec<Measurement>, String> {
    println!(
        "{}: {} keys x {per_key} events (seed {SEED})\n  {}",
        w.title, keys, w.query
    );
    // The name carries the generator's version: files of an older one are not reused.
    let interleaved = interleave_of(w, keys).map_or(String::new(), |n| format!("-i{n}"));
    let csv = out.join(format!(
        "{}-{keys}x{per_key}-{}{interleaved}.csv",
        w.name,
        gen::VERSION
    ));
    let rows = if csv.exists() {
        count_rows(&csv)?
    } else {
        let start = Instant::now();
        let rows = w
            .stream
            .write_csv(&csv, SEED, keys, per_key, interleave_of(w, keys))
            .map_err(|e| e.to_string())?;
        println!(
            "  generated {} ({rows} events) in {:.1} s",
            csv.display(),
            start.elapsed().as_secs_f64()
        );
        rows
    };
    let mut results: Vec<Measurement> = Vec::new();
    // A retention horizon forgets what is older than a minute before each key's end: answers
    // read earlier (an instant in the middle) cannot be asked of it.
    let retained = w.at(per_key, END) == END;
    for runner in runners.split(',') {
        match runner {
            "native" => {
                results.push(in_child(w, "native", keys, per_key, None)?);
                if retained {
                    results.push(in_child(w, "native", keys, per_key, Some(RETAIN))?);
                }
                // What a reader of any instant (a worker, `timeline serve`) pays: the
                // aggregate kept up to date as events come.
                if w.aggregate.is_some() {
                    results.push(in_child(w, "native-kept", keys, per_key, None)?);
                }
            }
            "cli" => {
                results.push(cli(w, &csv, rows, per_key, None, None)?);
                // One thread against DuckDB's one thread.
                results.push(cli(w, &csv, rows, per_key, None, Some(1))?);
                if retained {
                    results.push(cli(w, &csv, rows, per_key, Some(RETAIN), None)?);
                }
            }
            "components" => {
                results.push(in_child(w, "components", keys, per_key, None)?);
                // Unless the batch was set by hand, once more with large batches.
                if std::env::var_os("TIMELINE_BENCH_BATCH").is_none() {
                    let large = [("TIMELINE_BENCH_BATCH", LARGE_BATCH.to_string())];
                    results.push(in_child_with(w, "components", keys, per_key, None, &large)?);
                }
            }
            "duckdb" => {
                results.push(duckdb(w, &csv, rows, per_key, 1)?);
                results.push(duckdb(w, &csv, rows, per_key, available_threads())?);
            }
            // The same events as Parquet (written by DuckDB from the CSV, once): the CLI and
            // DuckDB each read it.
            "parquet" => {
                let parquet = csv.with_extension("parquet");
                if !parquet.exists() {
                    to_parquet(w, &csv, &parquet)?;
                }
                results.push(cli(w, &parquet, rows, per_key, None, None)?);
                results.push(duckdb(w, &parquet, rows, per_key, 1)?);
                results.push(duckdb(w, &parquet, rows, per_key, available_threads())?);
            }
            other => return Err(format!("unknown runner {other}")),
        }
    }
    check_equal(&results)?;
    let reference = &results[0];
    let total: i64 = reference.answers.values().sum();
    let what = if w.aggregate.is_some() {
        "group x function answers"
    } else {
        "keys"
    };
    println!(
        "  answers: equal across all {} runs ({} {what}, sum of values {total})",
        results.len(),
        reference.answers.len()
    );
    Ok(results)
}

/// Every runner must give every key the same answer before any time is shown.
fn check_equal(results: &[Measurement]) -> Result<(), String> {
    let Some(reference) = results.first() else {
        return Ok(());
    };
    for m in &results[1..] {
        if m.answers != reference.answers {
            let diff = reference
                .answers
                .iter()
                .find(|(k, v)| m.answers.get(*k) != Some(v))
                .map(|(k, v)| {
                    format!(
                        "key {k}: {} says {v}, {} says {:?}",
                        reference.runner,
                        m.runner,
                        m.answers.get(k)
                    )
                });
            return Err(format!(
                "answers differ: {}",
                diff.unwrap_or_else(|| format!(
                    "{} has {} keys, {} has {}",
                    reference.runner,
                    reference.answers.len(),
                    m.runner,
                    m.answers.len()
                ))
            ));
        }
    }
    Ok(())
}

/// How cost grows: the native engine on CIRR at 1M, 10M and 100M events, with and without a
/// retention horizon.
fn scaling() -> Result<(), String> {
    let w = Workload::named("cirr")?;
    println!("CIRR, native engine: how throughput and memory grow with the stream");
    println!(
        "{:<12} {:<10} {:>9} {:>11} {:>11} {:>11} {:>12}",
        "events", "retention", "wall s", "events/s", "peak RSS", "bytes/key", "RSS/key"
    );
    for keys in [1_000, 10_000, 100_000] {
        let per_key = 1_000;
        for retain in [None, Some(RETAIN)] {
            let m = in_child(&w, "native", keys, per_key, retain)?;
            let rss = m.peak_rss_kb.unwrap_or(0) as f64 * 1024.0;
            println!(
                "{:<12} {:<10} {:>9.3} {:>11} {:>11} {:>11.0} {:>12.0}",
                format!("{}M", keys * per_key / 1_000_000),
                retain.map_or("none".into(), |h| h.to_string()),
                m.seconds,
                format!("{:.2}M", m.events as f64 / m.seconds / 1e6),
                format!("{:.0} MiB", rss / 1048576.0),
                m.bytes_per_key.unwrap_or(0.0),
                rss / keys as f64,
            );
        }
    }
    println!("\n(RSS/key is the whole process's peak over the number of keys, events in flight included.)");
    Ok(())
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn count_rows(csv: &Path) -> Result<u64, String> {
    // In pieces: a whole file read at once would make the bench's own peak memory the size of
    // the file, which every process it starts would then begin with.
    use std::io::Read;
    let mut file = std::fs::File::open(csv).map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => lines += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(lines.saturating_sub(1))
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `runner` in a child process (this binary with `--child`) and reads its measurement.
fn in_child(
    w: &Workload,
    runner: &str,
    keys: usize,
    per_key: usize,
    retain: Option<u64>,
) -> Result<Measurement, String> {
    in_child_with(w, runner, keys, per_key, retain, &[])
}

/// As [`in_child`], with environment variables `env` set for the child.
fn in_child_with(
    w: &Workload,
    runner: &str,
    keys: usize,
    per_key: usize,
    retain: Option<u64>,
    env: &[(&str, String)],
) -> Result<Measurement, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["--child", runner, w.name])
        .args([keys.to_string(), per_key.to_string()])
        .envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(h) = retain {
        cmd.arg(h.to_string());
    }
    let v = json_output(&mut cmd, &format!("the {runner} runner"))?;
    Ok(Measurement {
        runner: v["runner"].as_str().unwrap_or(runner).to_string(),
        seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        events: v["events"].as_u64().unwrap_or(0),
        peak_rss_kb: v["rss_kb"].as_u64(),
        bytes_per_key: v["bytes_per_key"].as_f64(),
        note: v["note"].as_str().map(String::from),
        answers: answers_of(&v["answers"]),
    })
}

/// Runs `cmd` (a runner printing one JSON object) and reads what it printed; `what` names it in
/// errors.
fn json_output(cmd: &mut Command, what: &str) -> Result<serde_json::Value, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{what} printed no JSON: {e}"))
}

fn answers_of(v: &serde_json::Value) -> Answers {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(-1)))
                .collect()
        })
        .unwrap_or_default()
}

/// `--child RUNNER WORKLOAD KEYS PER_KEY [RETAIN]`: one runner in this process; prints its
/// measurement as JSON.
fn child(args: &[String]) -> Result<(), String> {
    let [runner, name, keys, per_key, rest @ ..] = args else {
        return Err("--child RUNNER WORKLOAD KEYS PER_KEY [RETAIN]".into());
    };
    let w = Workload::named(name)?;
    let keys: usize = keys.parse().map_err(|_| "KEYS is a number")?;
    let per_key: usize = per_key.parse().map_err(|_| "PER_KEY is a number")?;
    let retain: Option<u64> = rest
        .first()
        .map(|h| h.parse().map_err(|_| "RETAIN is a number"))
        .transpose()?;
    let m = match runner.as_str() {
        "native" => native(&w, keys, per_key, retain)?,
        "native-kept" => match &w.aggregate {
            Some(q) => native_aggregate(&w, q, engine_options(&w, retain), keys, per_key, true)?,
            None => return Err(format!("{} does not aggregate", w.name)),
        },
        "components" => components(&w, keys, per_key)?,
        "native-prebuilt" => native_prebuilt(&w, keys, per_key, retain)?,
        other => return Err(format!("unknown child runner {other}")),
    };
    let json = serde_json::json!({
        "runner": m.runner,
        "seconds": m.seconds,
        "events": m.events,
        "rss_kb": m.peak_rss_kb,
        "bytes_per_key": m.bytes_per_key,
        "note": m.note,
        "answers": m.answers,
    });
    println!("{json}");
    Ok(())
}

/// `TIMELINE_BENCH_INTERLEAVE=N` (`--interleave N`): how many keys the stream interleaves at a
/// time, in the files and in the runners' batches alike (see `gen::Stream::write_csv`). Unset,
/// a file keeps each key's events together and the batches interleave 500 keys.
fn interleave() -> Option<usize> {
    std::env::var("TIMELINE_BENCH_INTERLEAVE")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n >= 1)
}

/// How many keys `w`'s stream of `keys` keys interleaves at a time: `--interleave`, else all
/// of them for a live stream, else none (each key's events together in the files).
fn interleave_of(w: &Workload, keys: usize) -> Option<usize> {
    interleave().or(w.live.then_some(keys))
}

/// The stream as it arrives from many sources: `block` keys at a time, their events merged in
/// time order and handed over in batches of `batch` events, each decoded just before it is
/// ingested (as a decoder would hand them over), outside any timing.
fn batches<'a>(
    w: &'a Workload,
    keys: usize,
    per_key: usize,
    block: usize,
    batch: usize,
    names: &'a mut Vec<String>,
) -> impl Iterator<Item = Vec<Event>> + 'a {
    let mut strings = gen::Interner::default();
    let mut iter = w.stream.keys(SEED, keys, per_key).peekable();
    let mut rows: Vec<Vec<gen::Row>> = Vec::new();
    let mut shared: Vec<timeline::value::Str> = Vec::new();
    // (time, key in block, row of key), in arrival order; `next` is the next one to hand over.
    let mut order: Vec<(u64, u32, u32)> = Vec::new();
    let mut next = 0;
    std::iter::from_fn(move || {
        if next == order.len() {
            iter.peek()?;
            (rows, shared, order, next) = (Vec::new(), Vec::new(), Vec::new(), 0);
            for (k, (i, r)) in iter.by_ref().take(block).enumerate() {
                let name = w.stream.key_name(i);
                shared.push(name.as_str().into());
                order.extend(
                    r.iter()
                        .enumerate()
                        .map(|(j, e)| (e.time, k as u32, j as u32)),
                );
                rows.push(r);
                names.push(name);
            }
            // Stable: each key's own order stays.
            order.sort_by_key(|&(t, _, _)| t);
        }
        let end = (next + batch).min(order.len());
        let events = order[next..end]
            .iter()
            .map(|&(_, k, j)| {
                let (k, j) = (k as usize, j as usize);
                w.stream.event(&rows[k][j], &shared[k], &mut strings)
            })
            .collect();
        next = end;
        Some(events)
    })
}

/// Hands the stream to `ingest` in batches (see [`batches`]), timing only `ingest`; returns
/// the seconds, the events and the keys' names.
fn timed_ingest(
    w: &Workload,
    keys: usize,
    per_key: usize,
    mut ingest: impl FnMut(&[Event]) -> Result<(), String>,
) -> Result<(f64, u64, Vec<String>), String> {
    let mut seconds = 0.0;
    let mut events = 0u64;
    let mut names = Vec::with_capacity(keys);
    for batch in batches(
        w,
        keys,
        per_key,
        interleave_of(w, keys).unwrap_or(500),
        BATCH,
        &mut names,
    ) {
        events += batch.len() as u64;
        let start = Instant::now();
        ingest(&batch)?;
        seconds += start.elapsed().as_secs_f64();
    }
    Ok((seconds, events, names))
}

/// The engine's options for `w`'s stream.
fn engine_options(w: &Workload, retention: Option<u64>) -> EngineOptions {
    EngineOptions {
        key_column: Some(w.stream.key_column.into()),
        retention,
    }
}

/// The library in-process: only ingestion is timed.
fn native(
    w: &Workload,
    keys: usize,
    per_key: usize,
    retention: Option<u64>,
) -> Result<Measurement, String> {
    let options = engine_options(w, retention);
    if let Some(q) = &w.aggregate {
        return native_aggregate(w, q, options, keys, per_key, false);
    }
    let mut engine = Engine::new(&w.query, options).map_err(|e| e.to_string())?;
    let (seconds, events, names) = timed_ingest(w, keys, per_key, |batch| {
        engine.ingest(batch).map_err(|e| e.to_string())
    })?;
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
        note: None,
        answers,
    })
}

/// For profiling (`perf record … --child native-prebuilt …`): the native engine fed batches
/// that were all built before the first is ingested, so that the process does nothing but
/// ingest once they are.
fn native_prebuilt(
    w: &Workload,
    keys: usize,
    per_key: usize,
    retention: Option<u64>,
) -> Result<Measurement, String> {
    let options = engine_options(w, retention);
    let mut engine = Engine::new(&w.query, options).map_err(|e| e.to_string())?;
    let mut names = Vec::with_capacity(keys);
    let all: Vec<Vec<Event>> = batches(
        w,
        keys,
        per_key,
        interleave_of(w, keys).unwrap_or(500),
        BATCH,
        &mut names,
    )
    .collect();
    // Warm-up rounds into engines of their own, so that a profile is mostly ingestion.
    let rounds: usize =
        std::env::var("TIMELINE_BENCH_ROUNDS").map_or(0, |r| r.parse().unwrap_or(0));
    for _ in 0..rounds {
        let mut warm = engine.clone();
        for batch in &all {
            warm.ingest(batch).map_err(|e| e.to_string())?;
        }
    }
    let start = Instant::now();
    let mut events = 0;
    for batch in &all {
        engine.ingest(batch).map_err(|e| e.to_string())?;
        events += batch.len() as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    let stats = engine.stats();
    let per_key = |n: usize| n as f64 / keys.max(1) as f64;
    Ok(Measurement {
        runner: "native engine, batches built first".into(),
        seconds,
        events,
        peak_rss_kb: peak_rss_kb(),
        bytes_per_key: Some(per_key(stats.bytes)),
        // Where a key's bytes go: event rows kept by leaves, change points kept by timelines.
        note: Some(format!(
            "per key: {:.1} event rows, {:.1} change points",
            per_key(stats.event_rows),
            per_key(stats.change_points)
        )),
        answers: Answers::new(),
    })
}

/// An aggregate in-process, answered at one instant as the CLI does it (the engine keeps no
/// aggregate timeline, [`AggregateEngine::lazy`]), or (`kept`) with the aggregate kept up to
/// date as events come ([`AggregateEngine::new`]): ingestion and the read are timed.
fn native_aggregate(
    w: &Workload,
    query: &Query,
    options: EngineOptions,
    keys: usize,
    per_key: usize,
    kept: bool,
) -> Result<Measurement, String> {
    let retention = options.retention;
    let engine = match kept {
        true => AggregateEngine::new(query, options),
        false => AggregateEngine::lazy(query, options),
    };
    let mut engine = engine.map_err(|e| e.to_string())?;
    let (mut seconds, events, _) = timed_ingest(w, keys, per_key, |batch| {
        engine.ingest(batch).map_err(|e| e.to_string())
    })?;
    let start = Instant::now();
    let at = w.at(per_key, END);
    let all = engine.aggregates_at(at).map_err(|e| e.to_string())?;
    seconds += start.elapsed().as_secs_f64();
    let stats = engine.per_key().stats();
    let (_, _, aggregate_bytes) = engine.aggregator().stats();
    Ok(Measurement {
        runner: match (retention, kept) {
            (None, false) => "native engine".into(),
            (None, true) => "native engine, aggregate kept".into(),
            (Some(h), false) => format!("native engine, retain {h}"),
            (Some(h), true) => format!("native engine, aggregate kept, retain {h}"),
        },
        seconds,
        events,
        peak_rss_kb: peak_rss_kb(),
        bytes_per_key: Some((stats.bytes + aggregate_bytes) as f64 / stats.keys.max(1) as f64),
        note: None,
        answers: group_answers(&all.at(at)),
    })
}

/// Per group and function (`"CDN1 sum"`), the value: an aggregate's answers.
fn group_answers(rows: &[timeline::aggregate::GroupRow]) -> Answers {
    let mut answers = Answers::new();
    for row in rows {
        let group = row.group.as_ref().map_or("null".to_string(), |g| match g {
            Value::Str(s) => s.to_string(),
            other => other.to_string(),
        });
        for (f, v) in &row.values {
            let v = match v {
                Some(timeline::aggregate::Num::Int(i)) => *i,
                _ => -1,
            };
            answers.insert(format!("{group} {f}"), v);
        }
    }
    answers
}

fn as_int(v: &timeline::State) -> i64 {
    match v.instant_value() {
        Some(Value::Int(i)) => i,
        _ => -1,
    }
}

/// The `timeline` binary built beside this one, by the same cargo command (`scripts/bench` builds
/// both; so does `cargo test --workspace`); built here only if it is missing.
fn cli_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name("timeline");
    if !path.exists() {
        let mut build = Command::new("cargo");
        build.args(["build", "-q", "-p", "timeline-cli"]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.status().map_err(|e| e.to_string())?;
        if !status.success() || !path.exists() {
            return Err("building the CLI failed: cargo build -p timeline-cli".into());
        }
    }
    Ok(path)
}

/// The `timeline` CLI end to end over the CSV file, under /usr/bin/time.
/// The query as the CLI and the components take it.
fn query_text(w: &Workload) -> String {
    w.aggregate
        .as_ref()
        .map_or_else(|| w.query.to_string(), |q| q.to_string())
}

fn cli(
    w: &Workload,
    csv: &Path,
    rows: u64,
    per_key: usize,
    retention: Option<u64>,
    threads: Option<usize>,
) -> Result<Measurement, String> {
    let binary = cli_binary()?;
    let start = Instant::now();
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%M"])
        .arg(&binary)
        .args(["eval", "--query", &query_text(w), "--key"])
        .arg(w.stream.key_column)
        .arg("--events")
        .arg(csv)
        .args(["--at", &w.at(per_key, END).to_string()]);
    if let Some(h) = retention {
        command.args(["--retain", &h.to_string()]);
    }
    if let Some(n) = threads {
        command.args(["--threads", &n.to_string()]);
    }
    let out = command
        .output()
        .map_err(|e| format!("running the CLI under /usr/bin/time: {e}"))?;
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
        if let Some(fns) = w.aggregate.as_ref().and_then(|q| q.aggregate.as_ref()) {
            let group = v["group"].as_str().unwrap_or("null");
            for f in &fns.functions {
                answers.insert(format!("{group} {f}"), v[f.name()].as_i64().unwrap_or(-1));
            }
        } else {
            answers.insert(
                v["key"].as_str().unwrap_or_default().to_string(),
                v["value"].as_i64().unwrap_or(-1),
            );
        }
    }
    let rss = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok());
    Ok(Measurement {
        runner: match (retention, threads) {
            (None, Some(1)) => format!("timeline CLI over {}, 1 thread", format_of(csv)),
            (None, _) => format!("timeline CLI over {}", format_of(csv)),
            (Some(h), _) => format!("timeline CLI, retain {h}"),
        },
        seconds,
        events: rows,
        peak_rss_kb: rss,
        bytes_per_key: None,
        note: None,
        answers,
    })
}

/// The components runner's events per ingest call: `TIMELINE_BENCH_BATCH`, else [`BATCH`].
fn components_batch() -> Result<usize, String> {
    let Ok(text) = std::env::var("TIMELINE_BENCH_BATCH") else {
        return Ok(BATCH);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=timeline::limits::MAX_BATCH_EVENTS).contains(&n) => Ok(n),
        _ => Err(format!(
            "TIMELINE_BENCH_BATCH is {text:?}: give a number of events per ingest call from 1 to {}",
            timeline::limits::MAX_BATCH_EVENTS
        )),
    }
}

/// The four components on the emulated Golem, fed through the driver in batches.
fn components(w: &Workload, keys: usize, per_key: usize) -> Result<Measurement, String> {
    let batch_size = components_batch()?;
    let logs = std::env::temp_dir().join(format!("timeline-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&logs);
    let sys = TimelineSystem::start(&components_dir(), &logs).map_err(|e| format!("{e:#}"))?;
    sys.run("bench", &query_text(w), Some(w.stream.key_column), 1, None)
        .map_err(|e| format!("{e:#}"))?;
    let before = sys.golem.counters().invocations;
    let mut events = 0;
    let mut seconds = 0.0;
    let mut names = Vec::new();
    let mut calls = 0;
    for batch in batches(
        w,
        keys,
        per_key,
        interleave_of(w, keys).unwrap_or(500),
        batch_size,
        &mut names,
    ) {
        events += batch.len() as u64;
        // As a high-volume client would: packed (one string), packing timed.
        let start = Instant::now();
        let packed = timeline::wire::encode_events(&batch);
        sys.ingest_packed("bench", &packed)
            .map_err(|e| format!("{e:#}"))?;
        seconds += start.elapsed().as_secs_f64();
        calls += 1;
    }
    let invocations = sys.golem.counters().invocations - before;
    let mut answers = Answers::new();
    let queries = Instant::now();
    let reads_before = sys.golem.counters().invocations;
    if w.aggregate.is_some() {
        let rows = sys
            .aggregate_result("bench", &GroupSelector::All, w.at(per_key, END))
            .map_err(|e| format!("{e:#}"))?;
        answers = group_answers(&rows);
    }
    for name in names.iter().filter(|_| w.aggregate.is_none()) {
        let v = sys
            .result("bench", None, Some(&Value::from(name.as_str())), END)
            .map_err(|e| format!("{e:#}"))?;
        answers.insert(name.clone(), as_int(&v));
    }
    // A point query is the smallest call: one to the worker holding the key.
    let reads = if w.aggregate.is_some() {
        1
    } else {
        names.len().max(1)
    };
    let per_query = queries.elapsed().as_secs_f64() / reads as f64;
    let read_invocations = (sys.golem.counters().invocations - reads_before) / reads as u64;
    let read = if w.aggregate.is_some() {
        "an aggregate-at call to the merge worker"
    } else {
        "a point query to the result worker"
    };
    let _ = std::fs::remove_dir_all(&logs);
    let runner = if batch_size == BATCH {
        "components (emulated Golem)".to_string()
    } else {
        format!("components, {batch_size} events a call")
    };
    Ok(Measurement {
        runner,
        seconds,
        events,
        peak_rss_kb: peak_rss_kb(),
        bytes_per_key: None,
        note: Some(format!(
            "{calls} ingest calls of ~{} events made {invocations} worker invocations, {:.0} µs each; \
             {read} ({read_invocations} invocations) takes {:.0} µs",
            events / calls.max(1),
            seconds * 1e6 / invocations.max(1) as f64,
            per_query * 1e6
        )),
        answers,
    })
}

/// DuckDB from PyPI (installed if missing) with the equivalent SQL over the same CSV.
fn duckdb(
    w: &Workload,
    csv: &Path,
    rows: u64,
    per_key: usize,
    threads: usize,
) -> Result<Measurement, String> {
    ensure_duckdb()?;
    let v = json_output(
        Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("duckdb_peer.py"))
            .arg(w.name)
            .arg(csv)
            .arg(threads.to_string())
            .arg(w.at(per_key, END).to_string()),
        "duckdb",
    )?;
    Ok(Measurement {
        runner: format!(
            "DuckDB{}, {threads} thread{}",
            if format_of(csv) == "Parquet" {
                " over Parquet"
            } else {
                ""
            },
            if threads == 1 { "" } else { "s" }
        ),
        seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        events: rows,
        peak_rss_kb: v["rss_kb"].as_u64(),
        bytes_per_key: None,
        note: None,
        answers: answers_of(&v["results"]),
    })
}

/// DuckDB from PyPI, installed if missing.
fn ensure_duckdb() -> Result<(), String> {
    let has = Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .map_err(|e| format!("python3 is needed for the DuckDB peer: {e}"))?;
    if !has.success() {
        println!("  installing duckdb {DUCKDB} from PyPI (once)");
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "-q", &format!("duckdb=={DUCKDB}")])
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("could not install duckdb with pip".into());
        }
    }
    Ok(())
}

/// `CSV` or `Parquet`, by the file's extension.
fn format_of(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => "Parquet",
        _ => "CSV",
    }
}

/// Writes the CSV's events as Parquet, typed as the SQL peer types them, with DuckDB.
fn to_parquet(w: &Workload, csv: &Path, parquet: &Path) -> Result<(), String> {
    ensure_duckdb()?;
    let start = Instant::now();
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("duckdb_peer.py"))
        .args(["--to-parquet", w.name])
        .arg(csv)
        .arg(parquet)
        .status()
        .map_err(|e| format!("writing Parquet with DuckDB: {e}"))?;
    if !status.success() {
        return Err(format!("DuckDB could not write {}", parquet.display()));
    }
    println!(
        "  wrote {} ({:.0} MiB) in {:.1} s",
        parquet.display(),
        std::fs::metadata(parquet).map_or(0, |m| m.len()) as f64 / 1048576.0,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The DuckDB release the peer is pinned to.
const DUCKDB: &str = "2.0.1";

/// DuckDB's times (1 thread, all threads) to compare `m` with: over the same Parquet file for
/// a runner over Parquet, over the CSV for the others.
fn duckdb_times(results: &[Measurement], m: &Measurement) -> (Option<f64>, Option<f64>) {
    let parquet = |m: &Measurement| m.runner.contains("Parquet");
    let duck = |one: bool| {
        results
            .iter()
            .find(|d| {
                d.runner.starts_with("DuckDB")
                    && d.runner.ends_with("1 thread") == one
                    && parquet(d) == parquet(m)
            })
            .map(|d| d.seconds)
    };
    (duck(true), duck(false))
}

fn print_table(results: &[Measurement], keys: usize) {
    let keys = keys.max(1);
    println!(
        "{:<31} {:>9} {:>10} {:>10} {:>10} {:>10} {:>12} {:>13}",
        "runner",
        "wall s",
        "events/s",
        "peak RSS",
        "RSS/key",
        "bytes/key",
        "x DuckDB 1t",
        "x DuckDB all"
    );
    for m in results {
        let (duck1, duck_all) = duckdb_times(results, m);
        let ratio = |d: Option<f64>| d.map_or("-".to_string(), |d| format!("{:.2}", d / m.seconds));
        println!(
            "{:<31} {:>9.3} {:>10} {:>10} {:>10} {:>10} {:>12} {:>13}",
            m.runner,
            m.seconds,
            format!("{:.2}M", m.events as f64 / m.seconds / 1e6),
            m.peak_rss_kb
                .map_or("-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
            m.peak_rss_kb.map_or("-".into(), |k| format!(
                "{:.0} B",
                k as f64 * 1024.0 / keys as f64
            )),
            m.bytes_per_key.map_or("-".into(), |b| format!("{b:.0} B")),
            ratio(duck1),
            ratio(duck_all),
        );
    }
    for m in results {
        if let Some(note) = &m.note {
            println!("  {}: {note}", m.runner);
        }
    }
}

/// The engine runs on a modern allocator, as DuckDB does on its own (jemalloc): glibc's malloc
/// spent a third of ingestion consolidating free chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
