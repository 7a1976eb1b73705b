//! How many entries the driver's, a job's result worker's and its readers' logs hold, and how
//! long each takes to recover (replay its log on its first call), after no reads and after
//! many: for a per-key job (CIRR) and an aggregate job.
//!
//! ```text
//! cargo run --release -p component-tests --bin recovery-time -- [--reads N]
//! ```
//!
//! As on Golem 1.1, every invocation is logged, reads included, and a worker that restarts
//! replays its whole log on its first call, every logged invocation run again in order. Reads
//! go through readers, as the clients read: each reader serves at most `READS_PER_READER`
//! reads, then hands its copy to the next generation. So however many reads were made, the
//! result worker's log gains nothing (a per-key node's: one entry, its first reader attaching),
//! the driver's one `reader` call, and no reader's holds more than that many reads. On Golem
//! the recovery time grows with the log; the tool prints both.

use anyhow::{Context, Result};
use golem_emulator::{components_dir, TimelineSystem, WorkerId};
use std::time::{Duration, Instant};
use timeline::aggregate::GroupSelector;
use timeline::{Event, Value};

const CIRR: &str = r#"duration_where(has_existed(playerStateChange == "play") && !has_existed_within(userAction == "seek", 5) && latest_event_to_state(playerStateChange) == "buffer" && latest_event_to_state(cdnChange) == "CDN1")"#;
const BUFFERING: &str = r#"latest_event_to_state(playerStateChange) == "buffer" | aggregate(group_by(cdnChange), count, sum)"#;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reads: u64 = match args.as_slice() {
        [] => 10_000,
        [flag, n] if flag == "--reads" => n.parse().context("--reads N")?,
        _ => anyhow::bail!("usage: recovery-time [--reads N]"),
    };
    for (job, query) in [("cirr", CIRR), ("buffering", BUFFERING)] {
        println!("{job}: {query}");
        for reads in [0, reads] {
            measure(job, query, reads)?;
        }
    }
    Ok(())
}

/// Runs `query` as job `job`, reads its result `reads` times, restarts the emulated server and
/// prints each worker's log length and recovery time.
fn measure(job: &str, query: &str, reads: u64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "recovery-time-{}-{job}-{reads}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let sys = TimelineSystem::start(&components_dir(), &dir)?;
    let plan = sys.run(job, query, Some("sessionId"), 1, None)?;
    let events: Vec<Event> = (0..200)
        .map(|t| {
            Event::new(
                t,
                [
                    ("sessionId", Value::from(["s1", "s2"][t as usize % 2])),
                    (
                        "playerStateChange",
                        Value::from(["play", "buffer"][t as usize / 2 % 2]),
                    ),
                    ("cdnChange", Value::from("CDN1")),
                ],
            )
        })
        .collect();
    sys.ingest(job, &events)?;
    let aggregate = plan.result().kind == "aggregate";
    let read = |sys: &TimelineSystem, i: u64| -> Result<()> {
        if aggregate {
            sys.aggregate_result(job, &GroupSelector::All, i % 300)?;
        } else {
            sys.result(job, None, Some(&Value::from("s1")), i % 300)?;
        }
        Ok(())
    };
    let started = Instant::now();
    for i in 0..reads {
        read(&sys, i)?;
    }
    let reading = started.elapsed();
    let result_worker = plan.result().workers[0].clone();
    let readers: Vec<WorkerId> = sys
        .golem
        .workers()
        .into_iter()
        .filter(|w| {
            w.worker_name
                .starts_with(&format!("{}-reader-", result_worker.worker_name))
        })
        .collect();
    let generation = |w: &WorkerId| {
        timeline::readers::reader_generation(&result_worker.worker_name, &w.worker_name)
    };
    let current = readers.iter().max_by_key(|w| generation(w)).cloned();
    let entries = |w: &WorkerId| sys.golem.log_len(w);
    let longest_reader = readers
        .iter()
        .map(entries)
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    let (driver_log, result_log) = (entries(&sys.driver)?, entries(&result_worker)?);
    let current_log = current.as_ref().map(entries).transpose()?;
    drop(sys);

    // A restarted server: every worker replays its log on its first call. Each worker's
    // recovery is timed alone (crashed, then called), the best of five.
    let sys = TimelineSystem::start(&components_dir(), &dir)?;
    sys.jobs()?;
    let recovery = |worker: &WorkerId, call: &dyn Fn() -> Result<()>| -> Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..5 {
            sys.golem.crash(worker)?;
            let t = Instant::now();
            call()?;
            best = best.min(t.elapsed());
        }
        Ok(best)
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let driver = recovery(&sys.driver, &|| sys.jobs().map(|_| ()))?;
    let result = recovery(&result_worker, &|| sys.stats(&result_worker).map(|_| ()))?;
    println!(
        "  {reads} reads ({:.1} s): the driver's log holds {driver_log} entries (recovery {:.2} ms), the result worker's {result_log} ({:.2} ms)",
        reading.as_secs_f64(),
        ms(driver),
        ms(result)
    );
    if let (Some(current), Some(current_log)) = (&current, current_log) {
        let first = recovery(current, &|| read(&sys, 100))?;
        println!(
            "    {} readers; the current one's log {current_log} ({:.2} ms), the longest {longest_reader} (at most {} reads)",
            readers.len(),
            ms(first),
            timeline::limits::READS_PER_READER
        );
    }
    drop(sys);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
