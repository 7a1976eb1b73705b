//! `timeline eval`: reads the event files into engines (one per thread, each owning its keys),
//! and collects every answer asked for before anything is printed.

use crate::args::{self, EvalArgs, Format};
use crate::load_query_in;
use crate::output::{tabulate, write_csv, write_json, write_page, write_table, Row};
use progress::Progress;
use std::io::{BufWriter, Write};
use timeline::aggregate::{AggregateEngine, Aggregates};
use timeline::value::ValueKey;
use timeline::{Engine, EngineOptions, Value};
use timeline_formats::{input, parquet_input, parquet_output, progress, shards};

pub(crate) fn eval(a: &EvalArgs) -> Result<(), String> {
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
