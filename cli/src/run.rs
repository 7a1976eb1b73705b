//! `timeline run`: the query as a job of node workers, on the emulated Golem (`wasm`) or
//! in-process (`native`), printing the plan and every worker's result.

use crate::args::{RunArgs, Runtime};
use golem_emulator::{components_dir, TimelineSystem};
use progress::Progress;
use timeline::aggregate::{
    segments, AggFn, AggSegment, AggregateEngine, GroupSelector, Num, Query, QueryPlan,
};
use timeline::{Engine, EngineOptions, Event, Scope, Segment, Value};
use timeline_formats::input;

use timeline_formats::progress;

/// One node's results: per key, its segments from time 0 to just after the last event.
type NodeResults = Vec<(Option<Value>, Vec<Segment>)>;

/// An aggregate's results: per group and function, its segments.
type AggregateResults = Vec<(Option<Value>, AggFn, AggSegment)>;

pub fn run(a: &RunArgs, full: &Query) -> Result<(), String> {
    let query = &full.op;
    let options = EngineOptions {
        key_column: a.key.clone(),
        retention: None,
    };
    let text = input::read_text(&a.events).map_err(|e| e.to_string())?;
    let events = input::parse_events(&a.events, &text, &mut Progress::new(text.len()))
        .map_err(|e| e.to_string())?;
    let end = events.iter().map(|e| e.time).max().unwrap_or(0) + 1;
    let keys = keys_of(&events, a.key.as_deref())?;
    let planned = QueryPlan::new(full);
    let plan = &planned.plan;
    let scope = Scope {
        key_column: a.key.clone(),
        retention: None,
        shards: a.shards,
    };
    let (results, aggregate): (Vec<NodeResults>, AggregateResults) = match a.runtime {
        Runtime::Native => {
            let fail =
                |e: timeline::IngestError| format!("{}: {e}", input::display_path(&a.events));
            let mut engine = Engine::new(query, options.clone()).map_err(|e| e.to_string())?;
            engine.ingest(&events).map_err(fail)?;
            // The group column's leaf, when the query itself does not read it.
            let mut extra: Vec<(usize, Engine)> = Vec::new();
            for (i, n) in plan.nodes.iter().enumerate() {
                if engine.plan().position(&n.op).is_none() {
                    let mut e = Engine::new(&n.op, options.clone()).map_err(|e| e.to_string())?;
                    e.ingest(&events).map_err(fail)?;
                    extra.push((i, e));
                }
            }
            let results = plan
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    keys.iter()
                        .map(|k| {
                            let tl = match extra.iter().find(|(x, _)| *x == i) {
                                Some((_, e)) => e.timeline(k.as_ref()).map(|t| t.range(0, end)),
                                None => engine
                                    .node_timeline(
                                        k.as_ref(),
                                        engine.plan().position(&n.op).expect("planned"),
                                    )
                                    .map(|t| t.range(0, end)),
                            };
                            Ok((k.clone(), tl.map_err(|e| e.to_string())?))
                        })
                        .collect::<Result<_, String>>()
                })
                .collect::<Result<_, String>>()?;
            let mut aggregate = Vec::new();
            if full.aggregate.is_some() {
                let mut agg =
                    AggregateEngine::new(full, options.clone()).map_err(|e| e.to_string())?;
                agg.ingest(&events).map_err(fail)?;
                let all = agg.aggregates();
                for (g, points) in &all.groups {
                    for &f in &all.functions {
                        for s in segments(points, f, 0, Some(end)) {
                            aggregate.push((g.value(), f, s));
                        }
                    }
                }
            }
            (results, aggregate)
        }
        Runtime::Wasm => {
            let logs = std::env::temp_dir().join(format!("timeline-run-{}", std::process::id()));
            let sys =
                TimelineSystem::start(&components_dir(), &logs).map_err(|e| format!("{e:#}"))?;
            let job = "cli";
            let jobplan = sys
                .run(job, &full.to_string(), a.key.as_deref(), a.shards, None)
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
            let aggregate = match full.aggregate {
                Some(_) => sys
                    .aggregate_range(job, &GroupSelector::All, 0, end)
                    .map_err(|e| format!("{e:#}"))?,
                None => Vec::new(),
            };
            let counters = sys.golem.counters();
            println!(
                "ran on the emulated Golem: {} worker instances, {} invocations",
                counters.instances_created, counters.invocations
            );
            let _ = std::fs::remove_dir_all(&logs);
            (results, aggregate)
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
        let role = if i == plan.root() && planned.aggregate.is_none() {
            "result"
        } else {
            n.kind()
        };
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
    if let Some(a) = &planned.aggregate {
        println!("\n[result] {}", a.text);
        println!(
            "  node {}  one partial worker per shard, one merge worker",
            a.id
        );
        let mut line = String::new();
        let mut current: Option<(Option<Value>, AggFn)> = None;
        for (g, f, s) in &aggregate {
            if current.as_ref() != Some(&(g.clone(), *f)) {
                if current.is_some() {
                    println!("{line}");
                }
                let group = g.as_ref().map_or("null".to_string(), |v| v.to_string());
                line = format!("  {group} {f}:");
                current = Some((g.clone(), *f));
            }
            let to = match s.to {
                Some(t) if t != end => t.to_string(),
                _ => "…".to_string(),
            };
            let value = s
                .value
                .map_or("unknown".to_string(), |v| v.to_value().to_string());
            let slope = if s.slope == Num::Int(0) {
                String::new()
            } else {
                format!(" +{}/t", s.slope.to_value())
            };
            line.push_str(&format!("  [{},{to}) {value}{slope}", s.from));
        }
        if current.is_some() {
            println!("{line}");
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
