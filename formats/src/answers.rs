//! A query's answers over events: the engines fed (one per thread, each owning its keys), then
//! the rows asked for. `timeline eval` prints these rows; the Python package returns them as an
//! Arrow table.

use crate::input;
use crate::parquet_input;
use crate::progress::Progress;
use crate::shards::{self, Sink};
use crate::time::TimeSpec;
use arrow_array::RecordBatch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use timeline::aggregate::{AggFn, AggSegment, AggregateEngine, Aggregates, GroupRow, Num, Query};
use timeline::engine::IngestError;
use timeline::value::ValueKey;
use timeline::Event;
use timeline::{Engine, EngineOptions, Segment, State, Value};

/// A time answers are asked at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum At {
    Time(u64),
    /// Each key's own last event time (an aggregate's: the last event's).
    End,
}

/// What is asked of a query, and how its events are read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// The key column (`None`: the whole stream is one timeline).
    pub key: Option<String>,
    /// How event times are read.
    pub time: TimeSpec,
    /// Retention horizon, in time units (`None`: keep everything).
    pub retain: Option<u64>,
    /// Threads to split the keys over (`None`: one per core).
    pub threads: Option<usize>,
    /// Each key's value at these times.
    pub at: Vec<At>,
    /// Each key's segments over `[t1, t2)`.
    pub range: Option<(u64, u64)>,
    /// Each key's whole timeline.
    pub timeline: bool,
    /// Every node's whole timeline is to be drawn (a page).
    pub page: bool,
    /// Set, stops the reading between two batches with the error `interrupted`.
    pub cancel: Option<Cancel>,
}

impl Request {
    /// The options of every engine the request's events are read into.
    fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            key_column: self.key.clone(),
            retention: self.retain,
        }
    }

    /// Whether every answer asked for is at an instant (`at` times only).
    fn only_instants(&self) -> bool {
        self.range.is_none() && !self.timeline && !self.page
    }

    /// The latest event time the answers asked for can depend on, when it is known before the
    /// events are read: answers asked only at times, without retention. (`At::End`, a range,
    /// the whole timeline or a page read to the last event, and retention refuses events by
    /// the latest one.)
    fn answers_until(&self) -> Option<u64> {
        let mut latest = None;
        for at in &self.at {
            match at {
                At::Time(t) => latest = latest.max(Some(*t)),
                At::End => return None,
            }
        }
        latest.filter(|_| self.only_instants() && self.retain.is_none())
    }
}

/// Where the events come from.
#[derive(Clone, Copy)]
pub enum Events<'a> {
    /// Event files, in order (`-` is standard input, which cannot be read twice).
    Files(&'a [String]),
    /// Arrow record batches in memory, one row an event, typed as Parquet columns are.
    Batches(&'a [RecordBatch]),
}

impl Events<'_> {
    /// Whether the events can be read a second time.
    fn rereadable(&self) -> bool {
        match self {
            Events::Files(files) => !files.iter().any(|f| f == "-"),
            Events::Batches(_) => true,
        }
    }
}

/// The engines after every event was read.
pub enum Evaluation {
    /// A per-key query: each key is in one engine.
    PerKey(Vec<Engine>),
    /// An aggregate.
    Aggregate {
        engines: Vec<AggregateEngine>,
        /// The whole aggregate, merged; `None` when only instants were asked (each read from
        /// the engines alone).
        merged: Option<Aggregates>,
        /// The oldest key horizon, under retention.
        horizon: Option<u64>,
        /// The last event time.
        last: Option<u64>,
    },
}

/// What of the events is read for a query.
struct Read {
    /// The key and the columns the query reads: all that events keep.
    columns: Vec<String>,
    /// Whether a CSV record that sets none of them but the key is taken only for its key's
    /// first and last event times.
    idle: shards::Idle,
}

impl Read {
    fn new(query: &Query, request: &Request) -> Read {
        let read = query.columns();
        let read = read.iter().map(|c| c.to_string());
        // A query that reads the key column is changed by every record.
        let key_read = request
            .key
            .as_ref()
            .is_some_and(|k| read.clone().any(|c| c == *k));
        let idle = match request.retain.is_none()
            && !query.reads_events_without_its_columns()
            && !key_read
        {
            true => shards::Idle::Collapsed,
            false => shards::Idle::Kept,
        };
        Read {
            columns: request.key.iter().cloned().chain(read).collect(),
            idle,
        }
    }
}

/// Reads `events` into engines for `query`, as `request` asks.
pub fn evaluate(
    query: &Query,
    events: Events<'_>,
    request: &Request,
) -> Result<Evaluation, String> {
    let columns = Read::new(query, request);
    let options = request.engine_options();
    // Keys are split over threads (without a key there is one).
    let threads = match request.key {
        None => 1,
        Some(_) => request
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    if query.aggregate.is_none() {
        let make = || Engine::new(&query.op, options.clone()).map_err(|e| e.to_string());
        // Every key is listed, those whose events all come later too.
        let engines = read_events(
            request,
            events,
            &columns,
            threads,
            RowGroups::ReadAll,
            &make,
        )?;
        return Ok(Evaluation::PerKey(engines));
    }
    let read = |lazy: bool| {
        let make = || {
            let engine = match lazy {
                true => AggregateEngine::lazy(query, options.clone()),
                false => AggregateEngine::new(query, options.clone()),
            };
            engine.map_err(|e| e.to_string())
        };
        read_events(
            request,
            events,
            &columns,
            threads,
            RowGroups::SkipLater,
            &make,
        )
    };
    // Answers at a few instants need no aggregate timeline: it is left to the reads. With
    // retention such a read answers only from the newest key horizon on, known once the events
    // are in; should a time asked lie before it, the events are read again with the aggregate
    // kept (which answers from the oldest key horizon on). Standard input cannot be read twice,
    // so then it is kept from the start.
    let earliest = request
        .at
        .iter()
        .filter_map(|at| match at {
            At::Time(t) => Some(*t),
            At::End => None,
        })
        .min();
    let mut lazy = request.only_instants()
        && (request.retain.is_none() || earliest.is_none() || events.rereadable());
    let mut engines = read(lazy)?;
    if let (true, Some(t), Some(h)) = (lazy, earliest, horizon_of(&engines)) {
        if t < h {
            lazy = false;
            engines = read(false)?;
        }
    }
    let mut evaluation = Evaluation::Aggregate {
        horizon: horizon_of(&engines),
        last: last_of(&engines),
        engines,
        merged: None,
    };
    if !lazy {
        evaluation.keep_aggregate();
    }
    Ok(evaluation)
}

/// The oldest key horizon among the engines, under retention.
fn horizon_of(engines: &[AggregateEngine]) -> Option<u64> {
    engines.iter().filter_map(|e| e.horizon()).max()
}

/// The last event time among the engines.
fn last_of(engines: &[AggregateEngine]) -> Option<u64> {
    engines.iter().filter_map(|e| e.last_time()).max()
}

impl Evaluation {
    /// An evaluation of one engine that holds nothing yet, to be fed with [`Evaluation::feed`]
    /// and read between feeds (an aggregate is kept as events come, so every answer can be read).
    pub fn empty(query: &Query, request: &Request) -> Result<Evaluation, String> {
        let options = request.engine_options();
        Ok(match query.aggregate {
            None => Evaluation::PerKey(vec![
                Engine::new(&query.op, options).map_err(|e| e.to_string())?
            ]),
            Some(_) => Evaluation::Aggregate {
                engines: vec![AggregateEngine::new(query, options).map_err(|e| e.to_string())?],
                merged: None,
                horizon: None,
                last: None,
            },
        })
    }

    /// Takes more events, late ones too. Record batches are checked whole before any event is
    /// taken; files are taken a chunk at a time, so a bad line leaves the chunks before it taken.
    pub fn feed(
        &mut self,
        query: &Query,
        events: Events<'_>,
        request: &Request,
    ) -> Result<(), String> {
        let read = Read::new(query, request);
        fn take<S: Sink>(
            sinks: &mut Vec<S>,
            request: &Request,
            events: Events<'_>,
            read: &Read,
        ) -> Result<(), String> {
            if let Events::Batches(batches) = events {
                let mut all = Vec::new();
                parquet_input::Columnar::Batches(batches)
                    .for_each_batch(
                        &request.time,
                        &read.columns,
                        None,
                        request.key.as_deref(),
                        read.idle,
                        |events| {
                            all.append(events);
                            Ok(())
                        },
                    )
                    .map_err(|e| e.to_string())?;
                for sink in sinks.iter_mut() {
                    sink.ingest(&all)
                        .map_err(|e| format!("the data:{}: {}", e.index + 1, e.message))?;
                }
                return Ok(());
            }
            *sinks = feed(request, events, read, None, std::mem::take(sinks), None)?;
            Ok(())
        }
        match self {
            Evaluation::PerKey(engines) => take(engines, request, events, &read),
            Evaluation::Aggregate {
                engines,
                merged,
                horizon,
                last,
            } => {
                *merged = None;
                let taken = take(engines, request, events, &read);
                *horizon = horizon_of(engines);
                *last = last_of(engines);
                taken
            }
        }
    }

    /// Every answer `request` asks for, computed before any is handed out, so that an error
    /// gives no partial result.
    pub fn rows(&mut self, request: &Request) -> Result<Vec<Row<'_>>, String> {
        // An evaluation fed by hand merges its aggregate when a read needs it.
        if !request.only_instants() {
            self.keep_aggregate();
        }
        match self {
            Evaluation::PerKey(engines) => key_rows(engines, request),
            Evaluation::Aggregate {
                engines,
                merged,
                horizon,
                last,
            } => aggregate_rows(engines, merged.as_ref(), request, *horizon, *last),
        }
    }

    /// Merges an aggregate's engines into the whole aggregate, unless it is merged already
    /// (see [`Evaluation::aggregates`]). Engines made to answer instants only
    /// (`AggregateEngine::lazy`) cannot be merged so.
    pub fn keep_aggregate(&mut self) {
        if let Evaluation::Aggregate {
            engines,
            merged: merged @ None,
            ..
        } = self
        {
            *merged = Some(Aggregates::merge(
                engines.iter_mut().map(|e| e.aggregates()).collect(),
            ));
        }
    }

    /// The per-key engines (an aggregate's per-key parts).
    pub fn engines(&self) -> Vec<&Engine> {
        match self {
            Evaluation::PerKey(engines) => engines.iter().collect(),
            Evaluation::Aggregate { engines, .. } => engines.iter().map(|e| e.per_key()).collect(),
        }
    }

    /// The whole aggregate, when it was kept.
    pub fn aggregates(&self) -> Option<&Aggregates> {
        match self {
            Evaluation::PerKey(_) => None,
            Evaluation::Aggregate { merged, .. } => merged.as_ref(),
        }
    }
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

/// Reads the events, in order, into `threads` sinks that `make` builds, each key to one sink:
/// a CSV file without quotes and a Parquet file are read by one thread per sink, each taking its
/// own keys ([`shards::eval_csv`], [`parquet_input::read_sharded`]); any other file, and record
/// batches, are read on this thread and their events routed to the sinks by the same hash, each
/// sink ingesting on a thread of its own ([`shards::ingest_routed`]). Each key's events reach
/// its sink in order, as from one file. When no answer asked for depends on events after some
/// time ([`Request::answers_until`]), the sinks do not ingest them ([`shards::Until`]), and
/// `row_groups` says whether Parquet row groups whose times all lie after it are read.
fn read_events<S: Sink>(
    request: &Request,
    events: Events<'_>,
    read: &Read,
    threads: usize,
    row_groups: RowGroups,
    make: &(dyn Fn() -> Result<S, String> + Sync),
) -> Result<Vec<S>, String> {
    let until = request.answers_until();
    let key_column = request.key.as_deref();
    let make_sinks = || {
        (0..threads.max(1))
            .map(|_| {
                let sink = Cancellable {
                    sink: make()?,
                    cancel: request.cancel.clone(),
                };
                Ok(shards::Until::new(sink, until, key_column))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let parquet_until = until.map(|time| parquet_input::Until {
        time,
        skip_row_groups: row_groups == RowGroups::SkipLater,
    });
    let sinks = feed(
        request,
        events,
        read,
        parquet_until,
        make_sinks()?,
        Some(&make_sinks),
    )?;
    Ok(sinks.into_iter().map(|u| u.sink.sink).collect())
}

/// Feeds `events` to `sinks` (see [`read_events`]). `remake`, given for sinks that hold
/// nothing yet, makes them anew should the first file, a CSV file read along its check for
/// quotes, turn out to have some; without it every CSV file is checked first.
fn feed<S: Sink>(
    request: &Request,
    events: Events<'_>,
    read: &Read,
    parquet_until: Option<parquet_input::Until>,
    mut sinks: Vec<S>,
    remake: Option<&dyn Fn() -> Result<Vec<S>, String>>,
) -> Result<Vec<S>, String> {
    let key_column = request.key.as_deref();
    let key = key_column.map(Arc::from);
    let columns = &read.columns[..];
    // Columnar events (a Parquet file, record batches): with a key and several sinks, each
    // sink's thread decodes the rows of its own keys; otherwise they are read on this thread
    // and routed by key.
    let columnar = |sinks: &mut Vec<S>, source: parquet_input::Columnar<'_>, name: &str| {
        if let (Some(key), true) = (key_column, sinks.len() > 1) {
            let time = &request.time;
            let idle = read.idle;
            return parquet_input::read_sharded(
                source,
                time,
                columns,
                parquet_until,
                idle,
                key,
                sinks,
            )
            .map_err(|e| e.to_string());
        }
        shards::ingest_routed(sinks, key.as_ref(), name, |route| {
            source.for_each_batch(
                &request.time,
                columns,
                parquet_until,
                key_column,
                read.idle,
                route,
            )
        })
    };
    let files = match events {
        Events::Files(files) => files,
        Events::Batches(batches) => {
            let source = parquet_input::Columnar::Batches(batches);
            columnar(&mut sinks, source, "the data")?;
            return Ok(sinks);
        }
    };
    for (i, path) in files.iter().enumerate() {
        if parquet_input::is_parquet(path) {
            columnar(&mut sinks, parquet_input::Columnar::File(path), path)?;
            continue;
        }
        let file = input::map_text(path).map_err(|e| e.to_string())?;
        let mut progress = Progress::new(file.bytes().len());
        // Before the first file fresh sinks hold nothing, so the check for quotes can ride
        // along the read: should the file have some, the sinks it fed are made anew.
        let check = match (i, remake) {
            (0, Some(_)) => shards::Check::Along,
            _ => shards::Check::First,
        };
        let sharded = shards::eval_csv(
            path,
            file.bytes(),
            &request.time,
            key_column,
            Some(columns),
            read.idle,
            &mut sinks,
            &mut progress,
            check,
        );
        if let Some(done) = sharded {
            done.map_err(|e| e.to_string())?;
            progress.finish();
            continue;
        }
        if let (true, Some(remake)) = (sinks.is_empty(), remake) {
            sinks = remake()?;
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
                &request.time,
                Some(columns),
                &mut progress,
                CHUNK,
                route,
            )
        })?;
        progress.finish();
    }
    Ok(sinks)
}

/// A flag that stops a reading between two batches (Ctrl-C in Python).
#[derive(Clone, Debug, Default)]
pub struct Cancel(pub Arc<AtomicBool>);

impl PartialEq for Cancel {
    fn eq(&self, other: &Cancel) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A sink that refuses the next batch once its [`Cancel`] flag is set.
struct Cancellable<S> {
    sink: S,
    cancel: Option<Cancel>,
}

impl<S> Cancellable<S> {
    fn check(&self) -> Result<(), IngestError> {
        match &self.cancel {
            Some(c) if c.0.load(Ordering::Relaxed) => Err(IngestError {
                index: 0,
                message: "interrupted".into(),
            }),
            _ => Ok(()),
        }
    }
}

impl<S: Sink> Sink for Cancellable<S> {
    fn key_count(&self) -> usize {
        self.sink.key_count()
    }

    fn ingest(&mut self, events: &[Event]) -> Result<(), IngestError> {
        self.check()?;
        self.sink.ingest(events)
    }

    fn pass_over(&mut self, events: &[Event], key: Option<&Arc<str>>) -> Result<(), IngestError> {
        self.check()?;
        self.sink.pass_over(events, key)
    }
}

/// One answer: a point answer or a segment.
pub enum Row<'a> {
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

/// The answers of an aggregate query: per group at each time asked, or per group and function,
/// the segments of the range or of the whole timeline. `agg` is the whole aggregate, merged;
/// without it (times only) each time is read from the engines alone.
fn aggregate_rows(
    engines: &mut [AggregateEngine],
    agg: Option<&Aggregates>,
    request: &Request,
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
    for at in &request.at {
        let t = check(match *at {
            At::Time(t) => t,
            At::End => last.unwrap_or(0),
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
    if let Some((t1, t2)) = request.range {
        segments(check(t1)?, Some(t2));
    }
    if request.timeline {
        segments(horizon.unwrap_or(0), None);
    }
    Ok(rows)
}

/// The per-key answers: for each key (in the order one engine would give them), its values at
/// the times asked, then its range, then its whole timeline.
pub fn key_rows<'a>(engines: &'a [Engine], request: &Request) -> Result<Vec<Row<'a>>, String> {
    let mut rows = Vec::new();
    let mut keys: Vec<(Option<&Value>, &Engine)> = engines
        .iter()
        .flat_map(|e| e.keys().into_iter().map(move |k| (k, e)))
        .collect();
    if engines.len() > 1 {
        keys.sort_by_cached_key(|(k, _)| k.map(ValueKey::from));
    }
    for (key, engine) in keys {
        rows.extend(one_key_rows(engine, key, request)?);
    }
    Ok(rows)
}

/// The answers of one key of `engine`, as [`key_rows`] gives them.
pub fn one_key_rows<'a>(
    engine: &Engine,
    key: Option<&'a Value>,
    request: &Request,
) -> Result<Vec<Row<'a>>, String> {
    let fail = |e: timeline::QueryError| match key {
        Some(k) => format!("key {k}: {e}"),
        None => e.to_string(),
    };
    let mut rows = Vec::new();
    for at in &request.at {
        let t = match *at {
            At::Time(t) => t,
            At::End => engine.last_time(key).map_err(fail)?,
        };
        rows.push(Row::At {
            key,
            at: t,
            state: engine.value_at(key, t).map_err(fail)?,
        });
    }
    if let Some((t1, t2)) = request.range {
        for segment in engine.range(key, t1, t2).map_err(fail)? {
            rows.push(Row::Segment { key, segment });
        }
    }
    if request.timeline {
        for segment in engine.timeline(key).map_err(fail)?.segments() {
            rows.push(Row::Segment { key, segment });
        }
    }
    Ok(rows)
}

/// The rows as typed records, in the columns of the JSON lines: the header (of the first row;
/// every row of one run has the same columns), and one record per row (`None`: unknown).
pub fn tabulate(rows: &[Row]) -> (Vec<String>, Vec<Vec<Option<Value>>>) {
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
