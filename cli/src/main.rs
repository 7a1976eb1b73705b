//! `timeline`: answers timeline queries over event files, with no Golem server.
//!
//! The binary is a thin layer over the `timeline` library: it reads the query and the events,
//! feeds them to an [`Engine`], and prints what was asked for. Exit status 2 means bad input;
//! nothing is printed as a result unless the whole input was read and evaluated.

mod args;
mod golem;
mod run;
mod serve;

use timeline_cli::html::Series;
use timeline_cli::{input, parquet_input, parquet_output, progress, shards};

use args::{Command, EvalArgs, Format, QuerySource};
use progress::Progress;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use timeline::aggregate::{
    AggFn, AggSegment, AggregateEngine, Aggregates, GroupRow, Num, Query, QueryPlan,
};
use timeline::value::ValueKey;
use timeline::{Engine, EngineOptions, Segment, State, Value};

/// glibc's malloc spent a third of ingestion consolidating free chunks; mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in `mimalloc.h`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for them
/// (`madvise`), and with the usual `defrag` setting each first touch of a 2 MiB page then
/// compacts memory and zeroes the whole page in the fault: on the 10M bench that kernel work was
/// a fifth to a third of a run (1.2-1.9 s of system time), against 0.2 s in 4 KiB pages. The
/// flag holds for every later fault, in mappings made before it too.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: sets a flag of the calling process; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    // Freed memory stays with the process: by default mimalloc hands it back to the kernel after
    // 10 ms, and the next allocation faults fresh zeroed pages in again; zeroing was a third of a
    // run's time. The process is short-lived, so keeping its peak is the cheaper trade.
    // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    no_transparent_huge_pages();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args::parse(&args) {
        Err(e) => Err(e.to_string()),
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            Ok(())
        }
        Ok(Command::Version) => {
            println!("timeline {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Ok(Command::Explain(source)) => explain(&source),
        Ok(Command::Eval(a)) => eval(&a),
        Ok(Command::Run(a)) => load_query(&a.query).and_then(|q| run::run(&a, &q)),
        Ok(Command::Serve(a)) => serve::serve(&a),
        Ok(Command::Golem(a)) => golem::golem(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Reads and parses the query; errors point at the line and column, with the line shown.
fn load_query(source: &QuerySource) -> Result<Query, String> {
    load_query_in(source, 1)
}

/// Reads and parses the query with duration literals (`5m`) in `units_per_second` units.
fn load_query_in(source: &QuerySource, units_per_second: u64) -> Result<Query, String> {
    let (name, text) = match source {
        QuerySource::Text(t) => ("query".to_string(), t.clone()),
        QuerySource::File(p) => (p.clone(), input::read_text(p).map_err(|e| e.to_string())?),
    };
    timeline::parser::parse_in_units(&text, units_per_second).map_err(|e| {
        let (line, column) =
            timeline::limits::excerpt(text.lines().nth(e.line - 1).unwrap_or(""), e.column);
        let caret = " ".repeat(column.saturating_sub(1));
        format!(
            "{name}:{}:{}: {}\n  | {line}\n  | {caret}^",
            e.line, e.column, e.message
        )
    })
}

fn explain(source: &QuerySource) -> Result<(), String> {
    let query = load_query(source)?;
    print!("{}", QueryPlan::new(&query));
    Ok(())
}

fn eval(a: &EvalArgs) -> Result<(), String> {
    let query = load_query_in(&a.query, a.time.unit.per_second())?;
    let files = input::expand_paths(&a.events).map_err(|e| e.to_string())?;
    // What a columnar file is read for: the key and the columns the query reads.
    let columns: Vec<String> = a
        .key
        .iter()
        .cloned()
        .chain(query.columns().iter().map(|c| c.to_string()))
        .collect();
    let options = EngineOptions {
        key_column: a.key.clone(),
        retention: a.retain,
    };
    // Keys are split over threads (without a key there is one).
    let threads = match a.key {
        None => 1,
        Some(_) => a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let key_engines: Vec<Engine>;
    let rows = if query.aggregate.is_some() {
        let read = |lazy: bool| {
            let make = || {
                let engine = match lazy {
                    true => AggregateEngine::lazy(&query, options.clone()),
                    false => AggregateEngine::new(&query, options.clone()),
                };
                engine.map_err(|e| e.to_string())
            };
            read_events(a, &files, &columns, threads, RowGroups::SkipLater, &make)
        };
        // Answers at a few instants need no aggregate timeline: it is left to the reads. With
        // retention such a read answers only from the newest key horizon on, known once the
        // events are in; should a time asked lie before it, the files are read again with the
        // aggregate kept (which answers from the oldest key horizon on). Standard input cannot
        // be read twice, so then it is kept from the start.
        let asked = a.at.iter().filter_map(|at| match at {
            args::At::Time(t) => Some(*t),
            args::At::End => None,
        });
        let earliest = asked.min();
        let rereadable = !files.iter().any(|f| f == "-");
        let mut lazy = only_instants(a) && (a.retain.is_none() || earliest.is_none() || rereadable);
        let mut engines = read(lazy)?;
        let horizon_of =
            |engines: &[AggregateEngine]| engines.iter().filter_map(|e| e.horizon()).max();
        if let (true, Some(t), Some(h)) = (lazy, earliest, horizon_of(&engines)) {
            if t < h {
                lazy = false;
                engines = read(false)?;
            }
        }
        let horizon = horizon_of(&engines);
        let last = engines.iter().filter_map(|e| e.last_time()).max();
        let merged = match lazy {
            true => None,
            false => Some(Aggregates::merge(
                engines.iter_mut().map(|e| e.aggregates()).collect(),
            )),
        };
        if let (true, Some(merged)) = (a.html, &merged) {
            let per_key: Vec<&Engine> = engines.iter().map(|e| e.per_key()).collect();
            return write_page(a, &query, &per_key, Some(merged));
        }
        aggregate_rows(&mut engines, merged.as_ref(), a, horizon, last)?
    } else {
        let make = || Engine::new(&query.op, options.clone()).map_err(|e| e.to_string());
        // Every key is listed, those whose events all come later too.
        key_engines = read_events(a, &files, &columns, threads, RowGroups::ReadAll, &make)?;
        if a.html {
            let engines: Vec<&Engine> = key_engines.iter().collect();
            return write_page(a, &query, &engines, None);
        }
        collect_rows(&key_engines, a)?
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if let Some(path) = &a.out {
        let (header, records) = tabulate(&rows);
        return parquet_output::write(path, &header, &records);
    }
    let written = match a.format {
        _ if a.csv => write_csv(&mut out, &rows),
        Format::Json => write_json(&mut out, &rows),
        Format::Table => write_table(&mut out, &rows),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the result: {e}"))
}

/// The latest event time the answers asked for can depend on, when it is known before the
/// events are read: answers asked only for `--at` times, without retention. (An `--at end`, a
/// range, the whole timeline or a page reads to the last event, and retention refuses events by
/// the latest one.)
fn answers_until(a: &EvalArgs) -> Option<u64> {
    let mut latest = None;
    for at in &a.at {
        match at {
            args::At::Time(t) => latest = latest.max(Some(*t)),
            args::At::End => return None,
        }
    }
    let only_points = a.range.is_none() && !a.timeline && !a.html && a.retain.is_none();
    latest.filter(|_| only_points)
}

/// Whether every answer asked for is at an instant (`--at` times only).
fn only_instants(a: &EvalArgs) -> bool {
    a.range.is_none() && !a.timeline && !a.html
}

/// Whether [`read_events`] may leave Parquet row groups unread whose times all lie after the
/// last time asked.
#[derive(Clone, Copy, PartialEq)]
enum RowGroups {
    /// An aggregate's: a key joins the groups only at its first event.
    SkipLater,
    /// Per-key answers list every key, and a skipped row group could hold one.
    ReadAll,
}

/// Reads the event files, in order, into `threads` sinks that `make` builds, each key to one
/// sink: a CSV file without quotes and a Parquet file are read by one thread per sink, each
/// taking its own keys ([`shards::eval_csv`], [`parquet_input::read_sharded`]); any other file
/// is read on this thread and its events routed to the
/// sinks by the same hash, each sink ingesting on a thread of its own ([`shards::ingest_routed`]).
/// Each key's events reach its sink in file order, as from one file. When no answer asked for
/// depends on events after some time ([`answers_until`]), the sinks do not ingest them
/// ([`shards::Until`]), and `row_groups` says whether Parquet row groups whose times all lie
/// after it are read.
fn read_events<S: shards::Sink>(
    a: &EvalArgs,
    files: &[String],
    columns: &[String],
    threads: usize,
    row_groups: RowGroups,
    make: &(dyn Fn() -> Result<S, String> + Sync),
) -> Result<Vec<S>, String> {
    let until = answers_until(a);
    let make_sinks = || {
        (0..threads.max(1))
            .map(|_| make().map(|sink| shards::Until::new(sink, until, a.key.as_deref())))
            .collect::<Result<Vec<_>, String>>()
    };
    let mut sinks = make_sinks()?;
    let parquet_until = until.map(|time| parquet_input::Until {
        time,
        skip_row_groups: row_groups == RowGroups::SkipLater,
    });
    let key = a.key.as_deref().map(std::sync::Arc::from);
    for (i, path) in files.iter().enumerate() {
        if parquet_input::is_parquet(path) {
            if let (Some(key), true) = (&a.key, sinks.len() > 1) {
                parquet_input::read_sharded(path, &a.time, columns, parquet_until, key, &mut sinks)
                    .map_err(|e| e.to_string())?;
                continue;
            }
            shards::ingest_routed(&mut sinks, key.as_ref(), path, |route| {
                let key = a.key.as_deref();
                parquet_input::for_each_batch(path, &a.time, columns, parquet_until, key, route)
            })?;
            continue;
        }
        let file = input::map_text(path).map_err(|e| e.to_string())?;
        let mut progress = Progress::new(file.bytes().len());
        // Before the first file the sinks hold nothing, so the check for quotes can ride along
        // the read: should the file have some, the sinks it fed are made anew.
        let check = match i {
            0 => shards::Check::Along,
            _ => shards::Check::First,
        };
        let sharded = shards::eval_csv(
            path,
            file.bytes(),
            &a.time,
            a.key.as_deref(),
            Some(columns),
            &mut sinks,
            &mut progress,
            check,
        );
        if let Some(done) = sharded {
            done.map_err(|e| e.to_string())?;
            progress.finish();
            continue;
        }
        if sinks.is_empty() {
            sinks = make_sinks()?;
            progress = Progress::new(file.bytes().len());
        }
        // Events are ingested in chunks as they are read; the result does not depend on the
        // chunking.
        const CHUNK: usize = 1 << 16;
        let text = file.text(path).map_err(|e| e.to_string())?;
        shards::ingest_routed(&mut sinks, key.as_ref(), path, |route| {
            input::for_each_chunk(
                path,
                text,
                &a.time,
                Some(columns),
                &mut progress,
                CHUNK,
                route,
            )
        })?;
        progress.finish();
    }
    Ok(sinks.into_iter().map(|u| u.sink).collect())
}

/// The answers of an aggregate query: per group at each `--at` time, or per group and
/// function, the segments of `--range` or of the whole timeline. `agg` is the whole aggregate,
/// merged; without it (`--at` times only) each time is read from the engines alone.
fn aggregate_rows(
    engines: &mut [AggregateEngine],
    agg: Option<&Aggregates>,
    a: &EvalArgs,
    horizon: Option<u64>,
    last: Option<u64>,
) -> Result<Vec<Row<'static>>, String> {
    let check = |t: u64| {
        match horizon {
        Some(h) if t < h => Err(format!(
            "time {t} is before the retention horizon {h} (the oldest key's horizon): history before it has been collapsed"
        )),
        _ => Ok(t),
    }
    };
    let mut rows = Vec::new();
    for at in &a.at {
        let t = check(match *at {
            args::At::Time(t) => t,
            args::At::End => last.unwrap_or(0),
        })?;
        let at = match agg {
            Some(agg) => agg.at(t),
            None => {
                let parts = engines.iter_mut().map(|e| e.aggregates_at(t));
                let parts = parts.collect::<Result<Vec<_>, _>>();
                Aggregates::merge(parts.map_err(|e| e.to_string())?).at(t)
            }
        };
        rows.extend(at.into_iter().map(Row::Group));
    }
    let Some(agg) = agg else {
        return Ok(rows);
    };
    let mut segments = |t1: u64, t2: Option<u64>| {
        for (g, f) in agg
            .groups
            .keys()
            .flat_map(|g| agg.functions.iter().map(move |f| (g, *f)))
        {
            for segment in timeline::aggregate::segments(&agg.groups[g], f, t1, t2) {
                rows.push(Row::AggSegment {
                    group: g.value(),
                    agg: f,
                    segment,
                });
            }
        }
    };
    if let Some((t1, t2)) = a.range {
        segments(check(t1)?, Some(t2));
    }
    if a.timeline {
        segments(horizon.unwrap_or(0), None);
    }
    Ok(rows)
}

/// One line of output: a point answer or a segment.
enum Row<'a> {
    At {
        key: Option<&'a Value>,
        at: u64,
        state: State,
    },
    Segment {
        key: Option<&'a Value>,
        segment: Segment,
    },
    /// An aggregate's functions for one group at one time.
    Group(GroupRow),
    /// A segment of one function of one group.
    AggSegment {
        group: Option<Value>,
        agg: AggFn,
        segment: AggSegment,
    },
}

/// Every answer, computed before anything is printed, so that an error prints no partial result.
fn collect_rows<'a>(engines: &'a [Engine], a: &EvalArgs) -> Result<Vec<Row<'a>>, String> {
    let mut rows = Vec::new();
    // Every key is in one engine; keys print in the order one engine would give them.
    let mut keys: Vec<(Option<&Value>, &Engine)> = engines
        .iter()
        .flat_map(|e| e.keys().into_iter().map(move |k| (k, e)))
        .collect();
    if engines.len() > 1 {
        keys.sort_by_cached_key(|(k, _)| k.map(ValueKey::from));
    }
    for (key, engine) in keys {
        let fail = |e: timeline::QueryError| match key {
            Some(k) => format!("key {k}: {e}"),
            None => e.to_string(),
        };
        for at in &a.at {
            let t = match *at {
                args::At::Time(t) => t,
                args::At::End => engine.last_time(key).map_err(fail)?,
            };
            rows.push(Row::At {
                key,
                at: t,
                state: engine.value_at(key, t).map_err(fail)?,
            });
        }
        if let Some((t1, t2)) = a.range {
            for segment in engine.range(key, t1, t2).map_err(fail)? {
                rows.push(Row::Segment { key, segment });
            }
        }
        if a.timeline {
            for segment in engine.timeline(key).map_err(fail)?.segments() {
                rows.push(Row::Segment { key, segment });
            }
        }
    }
    Ok(rows)
}

/// A point answer, fields in the documented order.
#[derive(serde::Serialize)]
struct PointLine<'a> {
    key: Option<&'a Value>,
    at: u64,
    value: &'a State,
}

/// A segment answer, fields in the documented order.
#[derive(serde::Serialize)]
struct SegmentLine<'a> {
    key: Option<&'a Value>,
    from: u64,
    to: Option<u64>,
    value: &'a State,
    slope: u8,
}

/// An aggregate's functions for one group at one time: `group`, `at`, then each function
/// asked for, in the order asked for.
struct GroupLine<'a>(&'a GroupRow);

impl serde::Serialize for GroupLine<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2 + self.0.values.len()))?;
        m.serialize_entry("group", &self.0.group)?;
        m.serialize_entry("at", &self.0.at)?;
        for (f, v) in &self.0.values {
            m.serialize_entry(f.name(), v)?;
        }
        m.end()
    }
}

/// A segment of one function of one group, fields in the documented order.
#[derive(serde::Serialize)]
struct AggSegmentLine<'a> {
    group: &'a Option<Value>,
    agg: &'static str,
    from: u64,
    to: Option<u64>,
    value: Option<Num>,
    slope: Num,
}

fn write_json(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    for row in rows {
        match row {
            Row::Group(g) => serde_json::to_writer(&mut *out, &GroupLine(g))?,
            Row::AggSegment {
                group,
                agg,
                segment: s,
            } => serde_json::to_writer(
                &mut *out,
                &AggSegmentLine {
                    group,
                    agg: agg.name(),
                    from: s.from,
                    to: s.to,
                    value: s.value,
                    slope: s.slope,
                },
            )?,
            Row::At { key, at, state } => serde_json::to_writer(
                &mut *out,
                &PointLine {
                    key: *key,
                    at: *at,
                    value: state,
                },
            )?,
            Row::Segment { key, segment: s } => serde_json::to_writer(
                &mut *out,
                &SegmentLine {
                    key: *key,
                    from: s.from,
                    to: s.to,
                    value: &s.state,
                    slope: s.state.slope(),
                },
            )?,
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// `--format html`: the page drawing every node of the plan for the chosen keys (and, for an
/// aggregate, each function per group), written to `--out`.
fn write_page(
    a: &EvalArgs,
    query: &Query,
    engines: &[&Engine],
    aggregates: Option<&Aggregates>,
) -> Result<(), String> {
    use timeline_cli::html::{page, Chart};
    let path = a.out.as_deref().ok_or("--format html needs --out PATH")?;
    let mut keys: Vec<(Option<Value>, &Engine)> = engines
        .iter()
        .flat_map(|e| e.keys().into_iter().map(move |k| (k.cloned(), *e)))
        .collect();
    keys.sort_by_cached_key(|(k, _)| k.as_ref().map(timeline::value::ValueKey::from));
    let shown: Vec<(Option<Value>, &Engine)> = if a.show_keys.is_empty() {
        keys.into_iter().take(3).collect()
    } else {
        let wanted: Vec<Value> = a
            .show_keys
            .iter()
            .map(|k| match input::infer_scalar(k) {
                Ok(input::Scalar::Value(v)) => v,
                _ => Value::str(k),
            })
            .collect();
        let found: Vec<_> = keys
            .into_iter()
            .filter(|(k, _)| k.as_ref().is_some_and(|k| wanted.contains(k)))
            .collect();
        if found.len() < wanted.len() {
            return Err(format!(
                "--show-key: some of {:?} are not keys of the events",
                a.show_keys
            ));
        }
        found
    };
    let last = shown
        .iter()
        .filter_map(|(k, e)| e.last_time(k.as_ref()).ok())
        .max()
        .unwrap_or(0);
    // A little past the last event, so that what grows is seen growing.
    let end = last + last / 10 + 2;
    let label = |k: &Option<Value>| {
        k.as_ref()
            .map_or("(all events)".to_string(), |k| k.to_string())
    };
    let mut charts = Vec::new();
    let Some(first) = engines.first() else {
        return Err("no events".into());
    };
    let plan = first.plan();
    // Leaves on top, the result at the bottom.
    let mut order: Vec<usize> = (0..plan.nodes.len()).collect();
    order.sort_by_key(|&i| (!plan.nodes[i].op.is_leaf(), i));
    for i in order {
        let op = &plan.nodes[i].op;
        let segments: Vec<(String, Vec<Segment>)> = shown
            .iter()
            .map(|(k, e)| {
                let tl = e.node_timeline(k.as_ref(), i).map_err(|e| e.to_string())?;
                Ok((label(k), tl.range(0, end)))
            })
            .collect::<Result<_, String>>()?;
        let steps = op.output_type() != timeline::op::Type::Duration;
        // Strings become levels, in sorted order.
        let mut levels: Vec<String> = segments
            .iter()
            .flat_map(|(_, segs)| segs.iter())
            .filter_map(|s| match s.state.instant_value() {
                Some(Value::Str(v)) => Some(v.to_string()),
                _ => None,
            })
            .collect();
        levels.sort();
        levels.dedup();
        let value = |s: &Segment, t: u64| -> Option<f64> {
            match s.state.advanced(t - s.from).instant_value()? {
                Value::Bool(b) => Some(b as u8 as f64),
                Value::Int(i) => Some(i as f64),
                Value::Float(f) => Some(f),
                Value::Str(v) => levels.iter().position(|l| **l == *v).map(|p| p as f64),
            }
        };
        let (times, series) = sample(&segments, |s| (s.from, s.to), end, steps, value);
        let role = if plan.nodes[i].op.is_leaf() {
            "leaf"
        } else {
            "derived"
        };
        let result = if i == plan.root() && aggregates.is_none() {
            ", the result"
        } else {
            ""
        };
        charts.push((
            times,
            Chart {
                title: format!("[{role}{result}] {op}"),
                steps,
                levels: levels.clone(),
                series,
            },
        ));
    }
    if let Some(agg) = aggregates {
        for &f in &agg.functions {
            let segments: Vec<(String, Vec<timeline::aggregate::AggSegment>)> = agg
                .groups
                .iter()
                .map(|(g, points)| {
                    let label = g.value().map_or("null".to_string(), |v| v.to_string());
                    (
                        label,
                        timeline::aggregate::segments(points, f, 0, Some(end)),
                    )
                })
                .collect();
            let steps = f == timeline::aggregate::AggFn::Count;
            let value = |s: &timeline::aggregate::AggSegment, t: u64| {
                Some(s.value?.as_f64() + s.slope.as_f64() * (t - s.from) as f64)
            };
            let (times, series) = sample(&segments, |s| (s.from, s.to), end, steps, value);
            charts.push((
                times,
                Chart {
                    title: format!("[aggregate, the result] {f} per group"),
                    steps,
                    levels: Vec::new(),
                    series,
                },
            ));
        }
    }
    let subtitle = format!(
        "{} event file(s); keys shown: {}",
        a.events.len(),
        shown
            .iter()
            .map(|(k, _)| label(k))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let html = page(&format!("timeline: {query}"), &subtitle, &charts);
    std::fs::write(path, html).map_err(|e| format!("cannot write {path}: {e}"))
}

/// Each labelled run of segments sampled at the chart's times (see [`chart_times`]): at `t`, the
/// segment in force then (the last one starting at or before `t`), valued by `value`.
fn sample<S>(
    segments: &[(String, Vec<S>)],
    span: impl Fn(&S) -> (u64, Option<u64>),
    end: u64,
    steps: bool,
    value: impl Fn(&S, u64) -> Option<f64>,
) -> (Vec<u64>, Vec<Series>) {
    let times = chart_times(
        segments.iter().flat_map(|(_, s)| s.iter().map(&span)),
        end,
        steps,
    );
    let series = segments
        .iter()
        .map(|(label, segs)| Series {
            label: label.clone(),
            values: times
                .iter()
                .map(|&t| {
                    let s = segs.iter().rev().find(|s| span(s).0 <= t)?;
                    value(s, t)
                })
                .collect(),
        })
        .collect();
    (times, series)
}

/// The times a chart is drawn at: each segment's start, and for lines the last instant before
/// its end (values live at integer instants, so a line between those is exact), then `end`.
fn chart_times(
    segments: impl Iterator<Item = (u64, Option<u64>)>,
    end: u64,
    steps: bool,
) -> Vec<u64> {
    let mut times: Vec<u64> = Vec::new();
    for (from, to) in segments {
        times.push(from);
        if let (false, Some(to)) = (steps, to) {
            times.push(to.saturating_sub(1).max(from));
        }
    }
    times.push(end);
    times.retain(|t| *t <= end);
    times.sort_unstable();
    times.dedup();
    times
}

/// The rows as typed records, in the columns of the JSON lines: the header (of the first row;
/// every row of one run has the same columns), and one record per row (`None`: unknown).
fn tabulate(rows: &[Row]) -> (Vec<String>, Vec<Vec<Option<Value>>>) {
    let u = |t: u64| Some(Value::Int(i64::try_from(t).unwrap_or(i64::MAX)));
    let num = |n: Option<Num>| n.map(Num::to_value);
    let mut header = Vec::new();
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let (h, record): (Vec<String>, Vec<Option<Value>>) = match row {
            Row::At { key, at, state } => (
                ["key", "at", "value"].map(String::from).to_vec(),
                vec![key.cloned(), u(*at), state.instant_value()],
            ),
            Row::Segment { key, segment: s } => (
                ["key", "from", "to", "value", "slope"]
                    .map(String::from)
                    .to_vec(),
                vec![
                    key.cloned(),
                    u(s.from),
                    s.to.and_then(u),
                    s.state.instant_value(),
                    Some(Value::Int(s.state.slope().into())),
                ],
            ),
            Row::Group(g) => {
                let mut h = vec!["group".to_string(), "at".to_string()];
                h.extend(g.values.iter().map(|(f, _)| f.name().to_string()));
                let mut record = vec![g.group.clone(), u(g.at)];
                record.extend(g.values.iter().map(|(_, v)| num(*v)));
                (h, record)
            }
            Row::AggSegment {
                group,
                agg,
                segment: s,
            } => (
                ["group", "agg", "from", "to", "value", "slope"]
                    .map(String::from)
                    .to_vec(),
                vec![
                    group.clone(),
                    Some(Value::str(agg.name())),
                    u(s.from),
                    s.to.and_then(u),
                    num(s.value),
                    num(Some(s.slope)),
                ],
            ),
        };
        if header.is_empty() {
            header = h;
        }
        records.push(record);
    }
    (header, records)
}

/// The rows as CSV: a header line, then one record per row, in the columns of the JSON lines
/// (an unknown value is an empty cell).
fn write_csv(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let (header, records) = tabulate(rows);
    let mut w = csv::Writer::from_writer(out);
    if records.is_empty() {
        return w.flush();
    }
    w.write_record(&header)?;
    for record in records {
        w.write_record(record.iter().map(|v| match v {
            None => String::new(),
            Some(Value::Str(s)) => s.to_string(),
            Some(v) => v.to_string(),
        }))?;
    }
    w.flush()
}

fn write_table(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let show = |s: &State| match s.instant_value() {
        None => "unknown".to_string(),
        Some(Value::Str(s)) => s.to_string(),
        Some(v) => v.to_string(),
    };
    let key = |k: &Option<&Value>| k.map_or("-".to_string(), |k| show(&State::Value(k.clone())));
    let mut cells: Vec<Vec<String>> = Vec::new();
    let num = |n: &Option<Num>| n.map_or("unknown".to_string(), |n| n.to_value().to_string());
    let group = |g: &Option<Value>| {
        g.as_ref()
            .map_or("null".to_string(), |v| show(&State::Value(v.clone())))
    };
    let groups: Vec<&GroupRow> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Group(g) => Some(g),
            _ => None,
        })
        .collect();
    if let Some(first) = groups.first() {
        let mut header = vec!["group".to_string(), "at".to_string()];
        header.extend(first.values.iter().map(|(f, _)| f.name().to_string()));
        cells.push(header);
        for g in &groups {
            let mut line = vec![group(&g.group), g.at.to_string()];
            line.extend(g.values.iter().map(|(_, v)| num(v)));
            cells.push(line);
        }
    }
    if rows.iter().any(|r| matches!(r, Row::AggSegment { .. })) {
        if !cells.is_empty() {
            cells.push(Vec::new());
        }
        cells.push(
            ["group", "agg", "from", "to", "value", "slope"]
                .map(String::from)
                .to_vec(),
        );
        for r in rows {
            if let Row::AggSegment {
                group: g,
                agg,
                segment: s,
            } = r
            {
                cells.push(vec![
                    group(g),
                    agg.name().to_string(),
                    s.from.to_string(),
                    s.to.map_or("-".to_string(), |t| t.to_string()),
                    num(&s.value),
                    num(&Some(s.slope)),
                ]);
            }
        }
    }
    let points = rows.iter().any(|r| matches!(r, Row::At { .. }));
    let segments = rows.iter().any(|r| matches!(r, Row::Segment { .. }));
    if points {
        cells.push(["key", "at", "value"].map(String::from).to_vec());
        for r in rows {
            if let Row::At { key: k, at, state } = r {
                cells.push(vec![key(k), at.to_string(), show(state)]);
            }
        }
    }
    if segments {
        if points {
            cells.push(Vec::new());
        }
        cells.push(
            ["key", "from", "to", "value", "slope"]
                .map(String::from)
                .to_vec(),
        );
        for r in rows {
            if let Row::Segment { key: k, segment: s } = r {
                let to = s.to.map_or("-".to_string(), |t| t.to_string());
                cells.push(vec![
                    key(k),
                    s.from.to_string(),
                    to,
                    show(&s.state),
                    s.state.slope().to_string(),
                ]);
            }
        }
    }
    let ncols = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            cells
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &cells {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}
