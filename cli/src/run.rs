//! `timeline run`: the query as a job of node workers, on the emulated Golem (`wasm`) or
//! in-process (`native`), printing the plan and every worker's result.

use crate::args::{RunArgs, Runtime};
use golem_emulator::{components_dir, TimelineSystem};
use progress::Progress;
use timeline::{Engine, EngineOptions, Event, Plan, Scope, Segment, TimeLineOp, Value};
use timeline_cli::input;

use timeline_cli::progress;

/// One node's results: per key, its segments from time 0 to just after the last event.
type NodeResults = Vec<(Option<Value>, Vec<Segment>)>;

pub fn run(a: &RunArgs, query: &TimeLineOp) -> Result<(), String> {
    let text = input::read_text(&a.events).map_err(|e| e.to_string())?;
    let events = input::parse_events(&a.events, &text, &mut Progress::new(text.len()))
        .map_err(|e| e.to_string())?;
    let end = events.iter().map(|e| e.time).max().unwrap_or(0) + 1;
    let keys = keys_of(&events, a.key.as_deref())?;
    let plan = Plan::new(query);
    let scope = Scope {
        key_column: a.key.clone(),
        retention: None,
        shards: a.shards,
    };
    let results: Vec<NodeResults> = match a.runtime {
        Runtime::Native => {
            let mut engine = Engine::new(
                query,
                EngineOptions {
                    key_column: a.key.clone(),
                    retention: None,
                },
            )
            .map_err(|e| e.to_string())?;
            engine
                .ingest(&events)
                .map_err(|e| format!("{}: {e}", input::display_path(&a.events)))?;
            (0..plan.nodes.len())
                .map(|i| {
                    keys.iter()
                        .map(|k| {
                            Ok((
                                k.clone(),
                                engine
                                    .node_timeline(k.as_ref(), i)
                                    .map_err(|e| e.to_string())?
                                    .range(0, end),
                            ))
                        })
                        .collect::<Result<_, String>>()
                })
                .collect::<Result<_, String>>()?
        }
        Runtime::Wasm => {
            let logs = std::env::temp_dir().join(format!("timeline-run-{}", std::process::id()));
            let sys =
                TimelineSystem::start(&components_dir(), &logs).map_err(|e| format!("{e:#}"))?;
            let job = "cli";
            let jobplan = sys
                .run(job, &query.to_string(), a.key.as_deref(), a.shards, None)
                .map_err(|e| format!("{e:#}"))?;
            for chunk in events.chunks(10_000) {
                sys.ingest(job, chunk).map_err(|e| format!("{e:#}"))?;
            }
            let results = plan
                .nodes
                .iter()
                .map(|n| {
                    let id = n.id.to_string();
                    debug_assert!(jobplan.nodes.iter().any(|j| j.node_id == id));
                    keys.iter()
                        .map(|k| {
                            Ok((
                                k.clone(),
                                sys.result_range(job, Some(&id), k.as_ref(), 0, end)
                                    .map_err(|e| format!("{e:#}"))?,
                            ))
                        })
                        .collect::<Result<_, String>>()
                })
                .collect::<Result<_, String>>()?;
            let counters = sys.golem.counters();
            println!(
                "ran on the emulated Golem: {} worker instances, {} invocations",
                counters.instances_created, counters.invocations
            );
            let _ = std::fs::remove_dir_all(&logs);
            results
        }
    };
    println!(
        "plan: {} node(s), {} shard(s) each; events: {}, keys: {}",
        plan.nodes.len(),
        a.shards,
        events.len(),
        keys.len()
    );
    for (i, n) in plan.nodes.iter().enumerate() {
        let role = if i == plan.root() { "result" } else { n.kind() };
        println!("\n[{role}] {}", n.op);
        println!(
            "  node {}  worker {}{}",
            n.id,
            n.worker_name(&scope, 0),
            if a.shards > 1 {
                " (shard 0 of several)"
            } else {
                ""
            }
        );
        for (key, segments) in &results[i] {
            let key = key.as_ref().map_or("-".to_string(), |k| k.to_string());
            let shown: Vec<String> = segments
                .iter()
                .map(|s| {
                    let to = if s.to == Some(end) {
                        "…".to_string()
                    } else {
                        s.to.map_or("…".into(), |t| t.to_string())
                    };
                    format!("[{},{to}) {}", s.from, s.state)
                })
                .collect();
            println!("  {key}: {}", shown.join("  "));
        }
    }
    Ok(())
}

/// The distinct keys of the events, sorted (`[None]` without a key column).
fn keys_of(events: &[Event], key: Option<&str>) -> Result<Vec<Option<Value>>, String> {
    let Some(col) = key else {
        return Ok(vec![None]);
    };
    let mut values = std::collections::BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let v = e.get(col).ok_or_else(|| {
            format!(
                "event {} (time {}) has no \"{col}\" column (the partition key)",
                i + 1,
                e.time
            )
        })?;
        values
            .entry(timeline::value::ValueKey::from(v))
            .or_insert_with(|| v.clone());
    }
    Ok(values.into_values().map(Some).collect())
}
