//! How long the driver and a job's result worker take to recover (replay their logs on their
//! first call after a restart) after no reads and after many.
//!
//! ```text
//! cargo run --release -p component-tests --bin recovery-time -- [--reads N]
//! ```
//!
//! As on Golem 1.1, every invocation is logged, reads included, and a restarted worker replays
//! its whole log on its first call, every logged invocation run again in order. Reads go to the
//! reader of the worker holding the key, as the client reads: each reader serves at most
//! `READS_PER_READER` reads before a successor takes over its copy, so however many reads were
//! made, the result worker replays one more entry (its first reader attaching), the current
//! reader at most that many reads, and the driver a call per full reader. The tool prints each
//! one's log length (what Golem's recovery time grows with) and its first call's time.

use anyhow::{Context, Result};
use golem_emulator::{components_dir, TimelineSystem, WorkerId};
use std::time::{Duration, Instant};
use timeline::{Event, Value};
use wasmtime::component::Val;

const CIRR: &str = r#"duration_where(has_existed(playerStateChange == "play") && !has_existed_within(userAction == "seek", 5) && latest_event_to_state(playerStateChange) == "buffer" && latest_event_to_state(cdnChange) == "CDN1")"#;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reads: u64 = match args.as_slice() {
        [] => 10_000,
        [flag, n] if flag == "--reads" => n.parse().context("--reads N")?,
        _ => anyhow::bail!("usage: recovery-time [--reads N]"),
    };
    for reads in [0, reads] {
        let dir =
            std::env::temp_dir().join(format!("recovery-time-{}-{reads}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sys = TimelineSystem::start(&components_dir(), &dir)?;
        let plan = sys.run("cirr", CIRR, Some("sessionId"), 1, None)?;
        let events: Vec<Event> = (0..200)
            .map(|t| {
                Event::new(
                    t,
                    [
                        ("sessionId", Value::from("s1")),
                        (
                            "playerStateChange",
                            Value::from(["play", "buffer"][t as usize % 2]),
                        ),
                        ("cdnChange", Value::from("CDN1")),
                    ],
                )
            })
            .collect();
        sys.ingest("cirr", &events)?;
        let result_worker = plan.result().workers[0].clone();
        let key = Val::Option(Some(Box::new(Val::Variant(
            "string-value".into(),
            Some(Box::new(Val::String("s1".into()))),
        ))));
        let read_direct = |sys: &TimelineSystem, worker: &WorkerId, t: u64| {
            sys.invoke(
                worker,
                "timeline:timeline-processor/api.{get-result}",
                &[key.clone(), Val::U64(t)],
            )
        };
        let started = Instant::now();
        for i in 0..reads {
            sys.result("cirr", None, Some(&Value::from("s1")), i % 300)?;
        }
        let reading = started.elapsed();
        let reader = sys
            .golem
            .workers()
            .into_iter()
            .filter(|w| {
                w.worker_name
                    .starts_with(&format!("{}-reader-", result_worker.worker_name))
            })
            .max_by_key(|w| {
                w.worker_name
                    .rsplit('-')
                    .next()
                    .and_then(|g| g.parse::<u32>().ok())
            });
        let longest_reader_log = sys
            .golem
            .workers()
            .iter()
            .filter(|w| w.worker_name.contains("-reader-"))
            .map(|w| sys.golem.log_len(w))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        let entries = |w: &WorkerId| sys.golem.log_len(w);
        let (driver_log, result_log) = (entries(&sys.driver)?, entries(&result_worker)?);
        let reader_log = reader.as_ref().map(entries).transpose()?;
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
        let driver = recovery(&sys.driver, &|| sys.jobs().map(|_| ()))?;
        let result = recovery(&result_worker, &|| sys.stats(&result_worker).map(|_| ()))?;
        println!(
            "{reads} reads ({:.1} s): the driver's log holds {driver_log} entries (recovery {:.2} ms), the result worker's {result_log} ({:.2} ms)",
            reading.as_secs_f64(),
            driver.as_secs_f64() * 1e3,
            result.as_secs_f64() * 1e3
        );
        if let (Some(reader), Some(reader_log)) = (&reader, reader_log) {
            let first = recovery(reader, &|| read_direct(&sys, reader, 100).map(|_| ()))?;
            println!(
                "    its current reader {}'s {reader_log} ({:.2} ms); the longest reader log: {longest_reader_log} entries (at most {} reads)",
                reader.worker_name,
                first.as_secs_f64() * 1e3,
                timeline::limits::READS_PER_READER
            );
        }
        drop(sys);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
