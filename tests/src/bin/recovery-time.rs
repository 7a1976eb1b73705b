//! How long the driver and a job's result worker take to recover (replay their logs on their
//! first call after a restart) after no reads and after many.
//!
//! ```text
//! cargo run --release -p component-tests --bin recovery-time -- [--reads N]
//! ```
//!
//! Every invocation is logged, reads included, and a restarted worker replays its whole log on
//! its first call. Reads go to the worker holding the key, as the client reads (the driver only
//! `locate`s it), so they grow that worker's log, whose reads replay as plain lookups, and leave
//! the driver, every job's entry point, as quick to recover as before them.

use anyhow::{Context, Result};
use golem_emulator::{components_dir, TimelineSystem};
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
        let read_direct = |sys: &TimelineSystem, t: u64| {
            sys.invoke(
                &result_worker,
                "timeline:timeline-processor/api.{get-result}",
                &[key.clone(), Val::U64(t)],
            )
        };
        let started = Instant::now();
        for i in 0..reads {
            sys.result("cirr", None, Some(&Value::from("s1")), i % 300)?;
        }
        let reading = started.elapsed();
        drop(sys);
        // A restarted server: every worker replays its log on its first call.
        let sys = TimelineSystem::start(&components_dir(), &dir)?;
        let time = |f: &dyn Fn() -> Result<()>| -> Result<Duration> {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed())
        };
        let driver = time(&|| sys.jobs().map(|_| ()))?;
        let result = time(&|| read_direct(&sys, 100).map(|_| ()))?;
        println!(
            "{reads} reads: {:.1} s to read; after a restart, the driver's first call {:.3} s, the result worker's {:.3} s",
            reading.as_secs_f64(),
            driver.as_secs_f64(),
            result.as_secs_f64()
        );
        drop(sys);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
