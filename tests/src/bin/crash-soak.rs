//! Crash and replay at scale: long random scenarios on the emulated Golem with crashes injected
//! at random invocation points, checked against the library.
//!
//! ```text
//! cargo run --release -p component-tests --bin crash-soak -- [--scenarios N] [--seed S] [--rate PER_MILLION]
//! ```
//!
//! Each scenario starts an emulator on a fresh log directory and submits two or three random
//! jobs over the same partition key (so that they share workers), with 1 to 3 shards. It feeds
//! every job the same random events of a few keys, in random batches (typed or packed, late
//! events included). Crashes strike live invocations at the given rate, before an invocation
//! runs or midway through it (see `Golem::inject_crashes`); between batches a random worker may
//! crash, or the whole emulator (a new one starts on the same logs, as after a server restart).
//! Half the scenarios add a job aggregating one of the queries across keys (partial workers per
//! shard and a merge worker). At the end, every node of every job, for every key, and every
//! aggregate must equal the library's evaluation of the same events over the whole time range. It prints the counts and exits 1 on any
//! divergence (the components must be built first: `scripts/setup`).

use anyhow::{bail, Context, Result};
use golem_emulator::{components_dir, PlanView, TimelineSystem};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::path::PathBuf;
use timeline::aggregate::{AggregateEngine, GroupSelector, Query};
use timeline::{Engine, EngineOptions, Event, TimeLineOp, Value};

struct Options {
    scenarios: u64,
    seed: u64,
    per_million: u32,
}

fn options() -> Result<Options> {
    let mut o = Options {
        scenarios: 20,
        seed: 1,
        per_million: 50_000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--scenarios" => o.scenarios = number()?,
            "--seed" => o.seed = number()?,
            "--rate" => o.per_million = number()?.min(1_000_000) as u32,
            _ => bail!("unknown flag {flag}; flags: --scenarios N, --seed S, --rate PER_MILLION"),
        }
    }
    Ok(o)
}

/// What a run counted.
#[derive(Default)]
struct Tally {
    scenarios: u64,
    jobs: u64,
    batches: u64,
    /// Crashes injected at invocation points.
    injected: u64,
    /// Workers crashed between batches.
    worker_crashes: u64,
    /// Whole-emulator crashes (restarts on the same logs).
    restarts: u64,
    /// Node results compared (node x key).
    compared: u64,
    divergences: u64,
}

fn main() {
    match soak() {
        Ok(t) => {
            println!(
                "crash-soak: {} scenarios, {} jobs, {} batches; crash points survived: {} ({} injected at invocations, {} worker crashes between batches, {} emulator restarts); {} node results compared, {} divergences",
                t.scenarios,
                t.jobs,
                t.batches,
                t.injected + t.worker_crashes + t.restarts,
                t.injected,
                t.worker_crashes,
                t.restarts,
                t.compared,
                t.divergences
            );
            if t.divergences > 0 {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("crash-soak: {e:#}");
            std::process::exit(2);
        }
    }
}

fn soak() -> Result<Tally> {
    let o = options()?;
    let mut tally = Tally::default();
    for n in 0..o.scenarios {
        let seed = o.seed.wrapping_mul(1_000_003).wrapping_add(n);
        scenario(seed, o.per_million, &mut tally)
            .with_context(|| format!("scenario seed {seed}"))?;
        tally.scenarios += 1;
    }
    Ok(tally)
}

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// A random query from a small pool of leaves, so that jobs share sub-expressions.
fn query(rng: &mut StdRng, depth: u32) -> String {
    if depth == 0 || rng.random_range(0..3) == 0 {
        let pred = *pick(
            rng,
            &[
                "a == \"x\"",
                "b > 0",
                "!(a == 1)",
                "a == true || b == \"y\"",
            ],
        );
        let d = rng.random_range(1..5);
        return match rng.random_range(0..6) {
            0 => format!("has_existed({pred})"),
            1 => format!("has_existed_within({pred}, {d})"),
            2 => "latest_event_to_state(a) == \"x\"".into(),
            3 => "latest_event_to_state(b) >= 1".into(),
            4 => format!("count_within({pred}, {d}) > 1"),
            _ => format!("distinct_within(a, {d}) >= 2"),
        };
    }
    let a = query(rng, depth - 1);
    match rng.random_range(0..5) {
        0 => format!("({a}) && ({})", query(rng, depth - 1)),
        1 => format!("({a}) || ({})", query(rng, depth - 1)),
        2 => format!("!({a})"),
        3 => format!("duration_where({a}) > {}", rng.random_range(0..5)),
        _ => format!("duration_in_cur_state({a}) < 3"),
    }
}

fn events(rng: &mut StdRng) -> Vec<Event> {
    let count = rng.random_range(5..60);
    (0..count)
        .map(|_| {
            let mut fields = vec![("k", Value::Int(rng.random_range(0..3)))];
            for _ in 0..rng.random_range(1..3) {
                let column = *pick(rng, &["a", "b"]);
                let value = match rng.random_range(0..4) {
                    0 => Value::from(*pick(rng, &["x", "y"])),
                    1 => Value::Int(rng.random_range(0..3)),
                    2 => Value::Bool(rng.random_range(0..2) == 1),
                    _ => Value::from("x"),
                };
                fields.push((column, value));
            }
            Event::new(rng.random_range(0..40), fields)
        })
        .collect()
}

const END: u64 = 45;

fn scenario(seed: u64, per_million: u32, tally: &mut Tally) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("crash-soak-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let start = |dir: &PathBuf, rng: &mut StdRng| -> Result<TimelineSystem> {
        let sys = TimelineSystem::start(&components_dir(), dir)?;
        sys.golem.inject_crashes(rng.random(), per_million);
        Ok(sys)
    };
    let mut sys = start(&dir, &mut rng)?;
    let shards = rng.random_range(1..4);
    let mut jobs: Vec<(String, String)> = (0..rng.random_range(2..4))
        .map(|j| (format!("job{j}"), query(&mut rng, 2)))
        .collect();
    // Half the scenarios aggregate one job's query across keys, grouped by a column of mixed
    // types, besides running it per key (so that the two share workers).
    if rng.random_range(0..2) == 0 {
        let q = format!(
            "{} | aggregate(group_by(a), count, sum, avg, min, max)",
            jobs[0].1
        );
        jobs.push(("aggregate".into(), q));
    }
    for (name, q) in &jobs {
        sys.run(name, q, Some("k"), shards, None)
            .with_context(|| format!("run {name}: {q}"))?;
    }
    let events = events(&mut rng);
    let mut at = 0;
    while at < events.len() {
        let end = (at + rng.random_range(1..10)).min(events.len());
        let batch = &events[at..end];
        at = end;
        tally.batches += 1;
        for (name, _) in &jobs {
            if rng.random_range(0..2) == 0 {
                sys.ingest(name, batch)
            } else {
                sys.ingest_packed(name, &timeline::wire::encode_events(batch))
            }
            .with_context(|| format!("ingest into {name}"))?;
        }
        match rng.random_range(0..20) {
            0 => {
                tally.injected += sys.golem.counters().crashes_injected;
                drop(sys);
                sys = start(&dir, &mut rng)?;
                tally.restarts += 1;
            }
            1 | 2 => {
                let workers = sys.golem.workers();
                sys.golem.crash(pick(&mut rng, &workers))?;
                tally.worker_crashes += 1;
            }
            _ => {}
        }
    }
    for (name, q) in &jobs {
        let plan = sys.run(name, q, Some("k"), shards, None)?;
        tally.divergences += compare(&sys, name, q, &plan, &events, &mut tally.compared)?;
        tally.jobs += 1;
    }
    tally.injected += sys.golem.counters().crashes_injected;
    drop(sys);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Compares every per-key node of the job, for every key, and its aggregate if it has one,
/// with the library; returns the divergences.
fn compare(
    sys: &TimelineSystem,
    job: &str,
    query: &str,
    plan: &PlanView,
    events: &[Event],
    compared: &mut u64,
) -> Result<u64> {
    let options = EngineOptions {
        key_column: Some("k".into()),
        retention: None,
    };
    let mut divergences = 0;
    for node in plan
        .nodes
        .iter()
        .filter(|n| n.kind == "leaf" || n.kind == "derived")
    {
        let op: TimeLineOp = node.expression.parse()?;
        let mut oracle = Engine::new(&op, options.clone())?;
        oracle.ingest(events)?;
        for key in oracle.keys() {
            let want = oracle.timeline(key)?.range(0, END);
            let got = sys.result_range(job, Some(&node.node_id), key, 0, END)?;
            *compared += 1;
            if got != want {
                divergences += 1;
                eprintln!(
                    "divergence: job {job}, node {}, key {key:?}\n  components: {got:?}\n  library:    {want:?}",
                    node.expression
                );
            }
        }
    }
    let query: Query = query.parse()?;
    if query.aggregate.is_some() {
        let mut oracle = AggregateEngine::new(&query, options)?;
        oracle.ingest(events)?;
        let want = oracle.aggregates();
        let mut expected = Vec::new();
        for (g, points) in &want.groups {
            for &f in &want.functions {
                for s in timeline::aggregate::segments(points, f, 0, Some(END)) {
                    expected.push((g.value(), f, s));
                }
            }
        }
        let got = sys.aggregate_range(job, &GroupSelector::All, 0, END)?;
        *compared += 1;
        if got != expected {
            divergences += 1;
            let first = got
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(expected.len()));
            eprintln!(
                "divergence: job {job}, aggregate {query}, first at segment {first}\n  components: {:?}\n  library:    {:?}",
                got.get(first),
                expected.get(first)
            );
        }
    }
    Ok(divergences)
}
