//! Parquet event files: one row an event, read row group by row group and only the columns a
//! query reads (and the key and the time), each cell typed from its column's type.
//!
//! Integers, floats, booleans, strings (plain, large, view or dictionary-encoded) map to the
//! engine's values; a null is an absent column. Timestamps and dates become integers of the
//! time unit (exactly, or refused). A column of another type is refused with its name and type,
//! but only if the query reads it: other columns are never decoded.

use crate::input::{display_path, InputError, Strings};
use crate::shards::{shard_of_str, shard_of_value, Idle, Sink};
use crate::time::{parse_time, TimeSpec, TimeUnit};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit as ArrowUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::statistics::Statistics;
use std::io::Read;
use std::sync::Arc;
use timeline::keys::KeyMap;
use timeline::value::ValueKey;
use timeline::{Event, Value};

/// Rows decoded into events at a time.
const BATCH_ROWS: usize = 1 << 16;

/// Whether the file at `path` is Parquet (it starts with `PAR1`).
pub fn is_parquet(path: &str) -> bool {
    let mut magic = [0u8; 4];
    path != "-"
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && &magic == b"PAR1"
}

/// How far into a file a reader needs the events: no answer asked for depends on the events
/// after `time` (see `shards::Until`, which passes such events over: it checks them, and a
/// per-key engine lists their keys).
#[derive(Clone, Copy, Debug)]
pub struct Until {
    pub time: u64,
    /// Whether row groups whose times all lie after `time` (by the time column's statistics)
    /// may go unread: for an aggregate, whose groups only hold keys that have events by then,
    /// not for per-key answers, which list every key.
    pub skip_row_groups: bool,
}

/// As [`Columnar::for_each_batch`] of a file, every column of it read (for a client that sends whole events
/// on, not knowing what the query reads). A column of a type the engine does not read is refused.
pub fn for_each_batch_of_all_columns(
    path: &str,
    time: &TimeSpec,
    sink: impl FnMut(&mut Vec<Event>) -> Result<(), String>,
) -> Result<(), InputError> {
    let rows = Rows {
        key: None,
        part: None,
        until: None,
        idle: Idle::Kept,
    };
    read(path, time, None, rows, sink)
}

/// Columnar events: a Parquet file, or Arrow record batches in memory.
#[derive(Clone, Copy)]
pub enum Columnar<'a> {
    File(&'a str),
    Batches(&'a [RecordBatch]),
}

impl Columnar<'_> {
    /// Reads the events, handing them to `sink` a batch at a time. `columns` are the columns
    /// to read besides the time (the key, `key`, and what the query reads); a column the
    /// source lacks is absent from every event. Of record batches already in memory (from
    /// Python, say), typed as a Parquet file's columns are, errors name the row among all the
    /// batches' rows (from 1).
    ///
    /// With `until`, a row after its time is checked (its cells refused as any row's would be)
    /// but no event is built of it beyond one per key and batch that carries the key alone (the
    /// first such row of the key in the batch; every row without a key): what `shards::Until`
    /// passes over needs no more. A file's row groups are skipped as [`Until`] says. `idle`:
    /// what is made of rows whose only cell read is the key, as in `shards::eval_csv`.
    pub fn for_each_batch(
        self,
        time: &TimeSpec,
        columns: &[String],
        until: Option<Until>,
        key: Option<&str>,
        idle: Idle,
        sink: impl FnMut(&mut Vec<Event>) -> Result<(), String>,
    ) -> Result<(), InputError> {
        let rows = Rows {
            key,
            part: None,
            until,
            idle,
        };
        self.read(time, columns, rows, sink)
    }

    /// The events of `rows` of the source, the time column and `columns` decoded.
    fn read(
        self,
        time: &TimeSpec,
        columns: &[String],
        rows: Rows<'_>,
        sink: impl FnMut(&mut Vec<Event>) -> Result<(), String>,
    ) -> Result<(), InputError> {
        match self {
            Columnar::File(path) => read(path, time, Some(columns), rows, sink),
            Columnar::Batches(batches) => read_batches(batches, time, columns, rows, sink),
        }
    }
}

/// The events of `rows` of the record batches, the time column and `columns` decoded.
fn read_batches(
    batches: &[RecordBatch],
    time: &TimeSpec,
    columns: &[String],
    rows: Rows<'_>,
    mut sink: impl FnMut(&mut Vec<Event>) -> Result<(), String>,
) -> Result<(), InputError> {
    let fail = |line: usize, message: String| InputError {
        path: "the data".into(),
        line,
        message,
    };
    let mut taker = Taker::default();
    for batch in batches {
        let schema = batch.schema();
        let Ok(time_index) = schema.index_of(&time.column) else {
            let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(fail(
                0,
                format!(
                    "no `{}` column (found: {}); name the time column with time_column=",
                    time.column,
                    found.join(", ")
                ),
            ));
        };
        let mut read: Vec<usize> = std::iter::once(time_index)
            .chain(columns.iter().filter_map(|c| schema.index_of(c).ok()))
            .collect();
        read.sort_unstable();
        read.dedup();
        let projected = batch
            .project(&read)
            .map_err(|e| fail(taker.row + 1, format!("cannot read the columns: {e}")))?;
        // In slices of the size a Parquet file is read in: the events of one slice are built,
        // ingested and dropped while they are in cache.
        let mut offset = 0;
        while offset < projected.num_rows() {
            let length = BATCH_ROWS.min(projected.num_rows() - offset);
            taker
                .take(&projected.slice(offset, length), time, rows, &mut sink)
                .map_err(|(r, m)| fail(r, m))?;
            offset += length;
        }
    }
    taker.finish(&mut sink).map_err(|(r, m)| fail(r, m))
}

/// The most events handed on at a time when keys interleave: as `eval` over CSV hands on
/// (`shards`), so that the engine, which applies a batch a key at a time, visits each key's
/// state once for many of its events; a batch of 65 536 rows over 10 000 interleaved keys holds
/// a few events a key. (A few in unit tests, so that held events are handed on mid-read.)
const MAX_EVENTS: usize = if cfg!(test) { 20 } else { 1 << 18 };

/// Makes events of batch after batch and hands them on, counting rows for the errors.
#[derive(Default)]
struct Taker {
    /// Rows taken so far.
    row: usize,
    /// The events not handed on yet.
    events: Vec<Event>,
    /// Runs of one key among the rows of `events`.
    runs: usize,
    /// Rows whose only cell read is the key, by key, past the key's first (see [`Idle`]).
    idle: KeyMap<usize, IdleRows>,
    strings: Strings,
}

impl Taker {
    /// The events of `batch` (see [`to_events`]), handed to `sink` with those of batches before
    /// it still held: at once while keys come in runs (a file of each key's rows together),
    /// up to [`MAX_EVENTS`] while they interleave. An error with its row among all rows taken
    /// (0: the sink's).
    fn take(
        &mut self,
        batch: &RecordBatch,
        time: &TimeSpec,
        rows: Rows<'_>,
        sink: &mut impl FnMut(&mut Vec<Event>) -> Result<(), String>,
    ) -> Result<(), (usize, String)> {
        let held = self.events.len();
        self.runs += to_events(
            batch,
            time,
            self.row,
            rows,
            &mut self.strings,
            &mut self.idle,
            &mut self.events,
        )?;
        self.row += batch.num_rows();
        // Runs shorter than 4 events on average: the keys interleave.
        let interleaved = self.runs * 4 > self.events.len() - held.min(self.events.len());
        if interleaved && self.events.len() + self.idle.len() * 2 < MAX_EVENTS {
            return Ok(());
        }
        self.finish(sink)
    }

    /// Hands on the events held.
    fn finish(
        &mut self,
        sink: &mut impl FnMut(&mut Vec<Event>) -> Result<(), String>,
    ) -> Result<(), (usize, String)> {
        for rows in self.idle.drain().map(|(_, rows)| rows) {
            let times = [
                (rows.earliest < rows.first).then_some(rows.earliest),
                (rows.latest > rows.first).then_some(rows.latest),
            ];
            for time in times.into_iter().flatten() {
                let fields = vec![(rows.name.clone(), Value::Str(rows.key.clone()))];
                self.events.push(Event { time, fields });
            }
        }
        self.runs = 0;
        if self.events.is_empty() {
            return Ok(());
        }
        let handed = sink(&mut self.events).map_err(|m| (0, m));
        self.events.clear();
        handed
    }
}

/// Which rows a reader makes events of, and how.
#[derive(Clone, Copy)]
struct Rows<'a> {
    /// The key column.
    key: Option<&'a str>,
    /// Only the rows whose key falls on this shard of so many (by [`shards::shard_of_value`];
    /// a row without a key falls on shard 0, to be refused there).
    part: Option<(usize, usize)>,
    /// Rows after its time are checked, and kept only as their key (see [`Columnar::for_each_batch`]).
    until: Option<Until>,
    /// What is made of a row whose only cell read is its key (a string): with
    /// [`Idle::Collapsed`], of a batch's such rows of one key only the first, the earliest
    /// and the latest are events.
    idle: Idle,
}

/// What is made of one row of a batch.
#[derive(Clone, Copy, PartialEq)]
enum Take {
    /// Another reader's row: left alone.
    Skip,
    /// A row after the time the reader needs: its cells are checked, not kept (but its key).
    Check,
    /// An event.
    Keep,
}

/// Reads the source into `sinks`, one thread per sink, each reading all of it but building
/// events only for the rows of its own keys (by the `key` column), so that events are made,
/// ingested and freed on one thread. Each key's events reach its sink in order. On an error,
/// the first bad row among the threads is reported and the sinks are gone. `until` and `idle`:
/// as in [`Columnar::for_each_batch`].
pub fn read_sharded<S: Sink>(
    source: Columnar<'_>,
    time: &TimeSpec,
    columns: &[String],
    until: Option<Until>,
    idle: Idle,
    key: &str,
    sinks: &mut Vec<S>,
) -> Result<(), InputError> {
    let shards = sinks.len();
    let owned = std::mem::take(sinks);
    let results: Vec<Result<S, InputError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = owned
            .into_iter()
            .enumerate()
            .map(|(shard, mut sink)| {
                scope.spawn(move || {
                    let rows = Rows {
                        key: Some(key),
                        part: Some((shard, shards)),
                        until,
                        idle,
                    };
                    let ingest = |events: &mut Vec<Event>| {
                        sink.ingest(events).map_err(|e| {
                            format!("an event at time {}: {}", events[e.index].time, e.message)
                        })
                    };
                    source.read(time, columns, rows, ingest)?;
                    Ok(sink)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a reader thread does not panic"))
            .collect()
    });
    let mut first_error: Option<InputError> = None;
    for r in results {
        match r {
            Ok(sink) => sinks.push(sink),
            Err(e) => {
                // An error without a row (the sink's) after one with a row: the row first.
                let earlier = |f: &InputError| e.line != 0 && (f.line == 0 || e.line < f.line);
                if first_error.as_ref().is_none_or(earlier) {
                    first_error = Some(e);
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reads the file, `columns` (`None`: all) besides the time, into events of `rows`.
fn read(
    path: &str,
    time: &TimeSpec,
    columns: Option<&[String]>,
    rows: Rows<'_>,
    mut sink: impl FnMut(&mut Vec<Event>) -> Result<(), String>,
) -> Result<(), InputError> {
    let fail = |row: usize, message: String| InputError {
        path: display_path(path),
        line: row,
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(0, format!("cannot read: {e}")))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| fail(0, format!("not a readable Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let time_index = schema.index_of(&time.column).map_err(|_| {
        fail(
            0,
            format!(
                "the Parquet file has no `{}` column (found: {}); name the time column with --time-column",
                time.column,
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let mut roots = vec![time_index];
    match columns {
        Some(columns) => roots.extend(
            columns
                .iter()
                .filter_map(|c| schema.index_of(c).ok())
                .filter(|i| *i != time_index),
        ),
        None => roots.extend(0..schema.fields().len()),
    }
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let skip_after = rows.until.filter(|u| u.skip_row_groups).map(|u| u.time);
    let groups = row_groups(
        &builder,
        time,
        schema.field(time_index).data_type(),
        skip_after,
    );
    let reader = builder
        .with_projection(mask)
        .with_row_groups(groups.iter().map(|g| g.index).collect())
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| fail(0, format!("not a readable Parquet file: {e}")))?;
    // Rows are counted among those read; errors name the row in the file.
    let fail = |row: usize, message: String| fail(file_row(&groups, row), message);
    let mut taker = Taker::default();
    for batch in reader {
        let batch = batch.map_err(|e| fail(taker.row + 1, format!("cannot decode: {e}")))?;
        taker
            .take(&batch, time, rows, &mut sink)
            .map_err(|(r, m)| fail(r, m))?;
    }
    taker.finish(&mut sink).map_err(|(r, m)| fail(r, m))
}

/// A row group to read: its index, its first row's number in the file (from 1), its rows.
struct RowGroup {
    index: usize,
    first_row: usize,
    rows: usize,
}

/// The row groups to read, in order: every one, or with `until`, those whose time column may
/// hold a time at or before it. A group is skipped only when its statistics give its least
/// time, and that lies after `until` (the time's type known, its least value not negative).
fn row_groups(
    builder: &ParquetRecordBatchReaderBuilder<std::fs::File>,
    time: &TimeSpec,
    time_type: &DataType,
    until: Option<u64>,
) -> Vec<RowGroup> {
    let leaf = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [time.column.as_str()]);
    let mut first_row = 1;
    let mut groups = Vec::new();
    for (index, group) in builder.metadata().row_groups().iter().enumerate() {
        let least = leaf
            .and_then(|l| group.column(l).statistics())
            .and_then(|s| least_time(s, time_type, time.unit));
        let rows = usize::try_from(group.num_rows()).unwrap_or(0);
        if until.is_none_or(|u| least.is_none_or(|least| least <= u)) {
            groups.push(RowGroup {
                index,
                first_row,
                rows,
            });
        }
        first_row += rows;
    }
    groups
}

/// The least time a row group's time column holds, in `unit` (rounded down), from its
/// statistics, for the types whose statistics order as their times do (signed integers,
/// timestamps, dates).
fn least_time(stats: &Statistics, time_type: &DataType, unit: TimeUnit) -> Option<u64> {
    let (raw, per): (i64, u64) = match (stats, time_type) {
        (Statistics::Int64(s), DataType::Int64) => return u64::try_from(*s.min_opt()?).ok(),
        (Statistics::Int32(s), DataType::Int32 | DataType::Int16 | DataType::Int8) => {
            return u64::try_from(*s.min_opt()?).ok()
        }
        (Statistics::Int64(s), DataType::Timestamp(..) | DataType::Date64) => {
            (*s.min_opt()?, nanos_per(time_type).ok()?)
        }
        (Statistics::Int32(s), DataType::Date32) => {
            (i64::from(*s.min_opt()?), nanos_per(time_type).ok()?)
        }
        _ => return None,
    };
    let nanos = u128::try_from(raw).ok()? * u128::from(per);
    u64::try_from(nanos / u128::from(1_000_000_000 / unit.per_second())).ok()
}

/// Nanoseconds in one unit of an Arrow instant type (timestamps and dates), shared by decoding
/// and by reading row-group statistics, so that both scale a raw value the same way.
fn nanos_per(instant: &DataType) -> Result<u64, String> {
    Ok(match instant {
        DataType::Timestamp(ArrowUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(ArrowUnit::Millisecond, _) => 1_000_000,
        DataType::Timestamp(ArrowUnit::Microsecond, _) => 1_000,
        DataType::Timestamp(ArrowUnit::Nanosecond, _) => 1,
        DataType::Date32 => 86_400_000_000_000, // days
        DataType::Date64 => 1_000_000,          // milliseconds
        other => return Err(format!("{other} is not a timestamp or a date")),
    })
}

/// The file's row number of the `row`th row read (from 1; 0 stays 0, an error of no row).
fn file_row(groups: &[RowGroup], row: usize) -> usize {
    let mut before = 0; // rows read before the group
    for g in groups {
        if row > before && row <= before + g.rows {
            return g.first_row + (row - before - 1);
        }
        before += g.rows;
    }
    row
}

/// The events of one batch (its first row being row `first + 1` of those read) into `out`, of
/// the rows `rows` keeps (see [`Take`]). Each column is decoded whole, with one type dispatch,
/// strings shared through `strings`; rows then take their cells. An error comes with its row.
fn to_events(
    batch: &RecordBatch,
    time: &TimeSpec,
    first: usize,
    rows: Rows<'_>,
    strings: &mut Strings,
    idle: &mut KeyMap<usize, IdleRows>,
    out: &mut Vec<Event>,
) -> Result<usize, (usize, String)> {
    let schema = batch.schema();
    let decode = |i: usize, take: Option<&[Take]>, strings: &mut Strings| {
        let name = schema.field(i).name();
        let at = |r: usize, m: String| (first + r + 1, format!("column `{name}`: {m}"));
        Column::new(batch.column(i), time.unit)
            .map_err(|m| at(0, m))?
            .values(take, strings)
            .map_err(|(r, m)| at(r, m))
    };
    let key_index = rows.key.and_then(|k| schema.index_of(k).ok());
    // The rows of this part's keys, from the key column alone.
    let mut key_values = None;
    let mut take: Option<Vec<Take>> = match rows.part {
        None => None,
        Some((shard, shards)) => Some(match key_index {
            None => vec![if shard == 0 { Take::Keep } else { Take::Skip }; batch.num_rows()],
            Some(i) => {
                let column = Column::new(batch.column(i), time.unit);
                if let Some(owners) = column.as_ref().ok().and_then(|c| c.owners(shard, shards)) {
                    owners
                } else {
                    let keys = decode(i, None, strings)?;
                    let mut last: Option<(&Value, Take)> = None;
                    let owners = keys
                        .iter()
                        .map(|k| match (k, last) {
                            (None, _) if shard == 0 => Take::Keep,
                            (None, _) => Take::Skip,
                            (Some(k), Some((l, own))) if k == l => own,
                            (Some(k), _) => {
                                let own = match shard_of_value(k, shards) == shard {
                                    true => Take::Keep,
                                    false => Take::Skip,
                                };
                                last = Some((k, own));
                                own
                            }
                        })
                        .collect();
                    key_values = Some(keys);
                    owners
                }
            }
        }),
    };
    // The times, decoded first to find the rows after `until`. A row whose time is refused is
    // kept, to be refused below where it always was (after every column's cells are read).
    let time_index = schema
        .index_of(&time.column)
        .map_err(|_| (first + 1, "the time column is missing".to_string()))?;
    let times = decode(time_index, take.as_deref(), strings);
    let mut seconds: Vec<Option<u64>> = Vec::new();
    if let (Some(until), Ok(times)) = (rows.until, &times) {
        seconds.extend(times.iter().map(|t| read_time(t, time).ok()));
        let take = take.get_or_insert_with(|| vec![Take::Keep; batch.num_rows()]);
        for (take, t) in take.iter_mut().zip(&seconds) {
            if *take == Take::Keep && t.is_some_and(|t| t > until.time) {
                *take = Take::Check;
            }
        }
    }
    let take = take.as_deref();
    let mut key_cells = None;
    let mut cols: Vec<(Arc<str>, Vec<Option<Value>>)> = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let values = if i == time_index {
            // The time column's error, if any, in its place among the columns'.
            times.as_ref().map_err(Clone::clone)?;
            continue;
        } else if Some(i) == key_index {
            match key_values.take() {
                Some(keys) => keys,
                // The key of a row checked is kept too.
                None => {
                    let key_take: Option<Vec<Take>> = take.map(|take| {
                        let kept = |t: &Take| {
                            if *t == Take::Skip {
                                Take::Skip
                            } else {
                                Take::Keep
                            }
                        };
                        take.iter().map(kept).collect()
                    });
                    decode(i, key_take.as_deref(), strings)?
                }
            }
        } else {
            decode(i, take, strings)?
        };
        if Some(i) == key_index {
            key_cells = Some(cols.len());
        }
        cols.push((Arc::from(field.name().as_str()), values));
    }
    let times = times?;
    out.reserve(batch.num_rows());
    // The keys of rows after `until` that have an event in `out` already.
    let mut checked_keys: KeyMap<Option<ValueKey>, ()> = KeyMap::default();
    // With `Idle::Collapsed`: rows whose only cell read is their key past the first of the
    // key, by the address of the key's shared string (one string per key, as `strings`
    // shares them; a key under two addresses is two entries, each kept alike; the entry holds
    // the string, so that its address is not another's).
    let collapse = rows.idle == Idle::Collapsed && key_cells.is_some();
    // Runs of one key among the rows kept, by the key's string.
    let (mut runs, mut last_key): (usize, Option<Result<Value, usize>>) = (0, None);
    for (r, t) in times.into_iter().enumerate() {
        match take.map_or(Take::Keep, |take| take[r]) {
            Take::Skip => continue,
            Take::Check => {
                let key = key_cells.and_then(|k| cols[k].1[r].as_ref());
                // A row without the key column's value is refused where it is passed over:
                // each such row is kept. Without a key column, one row stands for all.
                let refused = rows.key.is_some() && key.is_none();
                if !refused && checked_keys.insert(key.map(ValueKey::from), ()).is_some() {
                    continue;
                }
                let fields = match (key, key_cells) {
                    (Some(v), Some(k)) => vec![(cols[k].0.clone(), v.clone())],
                    _ => Vec::new(),
                };
                out.push(Event {
                    time: seconds[r].expect("a row checked has a time"),
                    fields,
                });
            }
            Take::Keep => {
                // Read already when looking for the rows after `until`, unless refused.
                let t = match seconds.get(r) {
                    Some(&Some(t)) => t,
                    _ => read_time(&t, time).map_err(|m| (first + r + 1, m))?,
                };
                let present = cols.iter().filter(|(_, v)| v[r].is_some()).count();
                // A string by its address (shared), another value by itself.
                let cell = match key_cells.and_then(|k| cols[k].1[r].as_ref()) {
                    Some(Value::Str(k)) => Some(Err(k.addr())),
                    other => other.cloned().map(Ok),
                };
                if cell.is_none() || cell != last_key {
                    runs += 1;
                    last_key = cell;
                }
                let key = match key_cells.map(|k| (&cols[k].0, &cols[k].1[r])) {
                    Some((name, Some(Value::Str(key)))) => Some((name, key)),
                    _ => None,
                };
                if collapse && present == 1 {
                    if let Some((name, key)) = key {
                        match idle.get_mut(&key.addr()) {
                            Some(rows) => {
                                rows.earliest = rows.earliest.min(t);
                                rows.latest = rows.latest.max(t);
                                continue;
                            }
                            None => {
                                let rows = IdleRows {
                                    name: name.clone(),
                                    key: key.clone(),
                                    first: t,
                                    earliest: t,
                                    latest: t,
                                };
                                idle.insert(key.addr(), rows);
                            }
                        }
                    }
                }
                let mut fields = Vec::with_capacity(present);
                for (name, values) in &mut cols {
                    if let Some(v) = values[r].take() {
                        fields.push((name.clone(), v));
                    }
                }
                out.push(Event { time: t, fields });
            }
        }
    }
    Ok(runs)
}

/// A key's rows whose only cell read is the key, past the first (an event): their earliest
/// and latest times.
struct IdleRows {
    /// The key column's name, and the key.
    name: Arc<str>,
    key: timeline::value::Str,
    first: u64,
    earliest: u64,
    latest: u64,
}

/// A row's time cell as a time: a non-negative integer, or a timestamp in the time unit.
fn read_time(cell: &Option<Value>, time: &TimeSpec) -> Result<u64, String> {
    match cell {
        None => Err(format!("the time (`{}`) is null", time.column)),
        Some(Value::Int(t)) if *t >= 0 => Ok(*t as u64),
        Some(Value::Str(s)) => parse_time(s, time.unit),
        Some(other) => Err(format!(
            "the time (`{}`) must be a non-negative integer or a timestamp, found {other}",
            time.column
        )),
    }
}

/// String cells as shared values (`None` for a null or a row `skip` leaves out): a run of equal
/// cells costs a comparison, another cell a lookup in `strings`.
fn shared<'a>(
    cells: impl Iterator<Item = Option<&'a str>>,
    skip: impl Fn(usize) -> bool,
    strings: &mut Strings,
) -> Vec<Option<Value>> {
    let mut recent: Option<timeline::value::Str> = None;
    cells
        .enumerate()
        .map(|(r, cell)| {
            let cell = cell.filter(|_| !skip(r))?;
            Some(Value::Str(match &recent {
                Some(s) if **s == *cell => s.clone(),
                _ => {
                    let s = strings.intern(cell);
                    recent = Some(s.clone());
                    s
                }
            }))
        })
        .collect()
}

/// A column of a batch, ready to give each row's value.
enum Column {
    /// The array, its kind, and the time unit instants convert to.
    Typed(ArrayRef, Kind, TimeUnit),
    /// Dictionary-encoded strings: each row's key, and the strings.
    Dictionary(ArrayRef, Vec<usize>, Vec<Option<timeline::value::Str>>),
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Utf8,
    LargeUtf8,
    Utf8View,
    /// A timestamp or a date, in nanoseconds per unit of the array (1 for ns, … 86 400 s for a
    /// day): converted to the time unit.
    Instant(ArrowKind, u64),
}

#[derive(Clone, Copy)]
enum ArrowKind {
    TsS,
    TsMs,
    TsUs,
    TsNs,
    Date32,
    Date64,
}

impl Column {
    fn new(array: &ArrayRef, unit: TimeUnit) -> Result<Column, String> {
        let kind = match array.data_type() {
            DataType::Boolean => Kind::Bool,
            DataType::Int8 => Kind::I8,
            DataType::Int16 => Kind::I16,
            DataType::Int32 => Kind::I32,
            DataType::Int64 => Kind::I64,
            DataType::UInt8 => Kind::U8,
            DataType::UInt16 => Kind::U16,
            DataType::UInt32 => Kind::U32,
            DataType::UInt64 => Kind::U64,
            DataType::Float32 => Kind::F32,
            DataType::Float64 => Kind::F64,
            DataType::Utf8 => Kind::Utf8,
            DataType::LargeUtf8 => Kind::LargeUtf8,
            DataType::Utf8View => Kind::Utf8View,
            t @ (DataType::Timestamp(..) | DataType::Date32 | DataType::Date64) => {
                let kind = match t {
                    DataType::Timestamp(ArrowUnit::Second, _) => ArrowKind::TsS,
                    DataType::Timestamp(ArrowUnit::Millisecond, _) => ArrowKind::TsMs,
                    DataType::Timestamp(ArrowUnit::Microsecond, _) => ArrowKind::TsUs,
                    DataType::Timestamp(ArrowUnit::Nanosecond, _) => ArrowKind::TsNs,
                    DataType::Date32 => ArrowKind::Date32,
                    _ => ArrowKind::Date64,
                };
                Kind::Instant(kind, nanos_per(t)?)
            }
            DataType::Dictionary(_, value) if matches!(**value, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                let dict = array.as_any_dictionary();
                if dict.values().is_empty() {
                    // No strings (every row null, or none): `normalized_keys` refuses it.
                    return Ok(Column::Dictionary(array.clone(), vec![0; array.len()], vec![None]));
                }
                let keys = dict.normalized_keys();
                let values = Column::new(dict.values(), unit)?;
                let strings = (0..dict.values().len())
                    .map(|i| match values.value(i) {
                        Ok(Some(Value::Str(s))) => Some(s),
                        _ => None,
                    })
                    .collect();
                return Ok(Column::Dictionary(array.clone(), keys, strings));
            }
            other => {
                return Err(format!(
                    "its type {other} is not one the engine reads (integers, floats, booleans, strings, timestamps, dates)"
                ))
            }
        };
        Ok(Column::Typed(array.clone(), kind, unit))
    }

    /// For a column of strings, which of its rows fall on `shard` of `shards` as keys
    /// ([`shard_of_value`], a null's on shard 0), found from the strings without making values
    /// of them (a dictionary's each once); `None` for other columns.
    fn owners(&self, shard: usize, shards: usize) -> Option<Vec<Take>> {
        let take = |owner: usize| match owner == shard {
            true => Take::Keep,
            false => Take::Skip,
        };
        // Keys come in runs: a run costs one hash.
        let of = |cells: &mut dyn Iterator<Item = Option<&str>>| -> Vec<Take> {
            let mut last: Option<(&str, Take)> = None;
            cells
                .map(|cell| match (cell, last) {
                    (None, _) => take(0),
                    (Some(k), Some((l, own))) if k == l => own,
                    (Some(k), _) => {
                        let own = take(shard_of_str(k, shards));
                        last = Some((k, own));
                        own
                    }
                })
                .collect()
        };
        match self {
            Column::Typed(a, Kind::Utf8, _) => Some(of(&mut a.as_string::<i32>().iter())),
            Column::Typed(a, Kind::LargeUtf8, _) => Some(of(&mut a.as_string::<i64>().iter())),
            Column::Typed(a, Kind::Utf8View, _) => Some(of(&mut a.as_string_view().iter())),
            Column::Dictionary(array, keys, strings) => {
                let owner: Vec<Take> = strings
                    .iter()
                    .map(|s| take(s.as_ref().map_or(0, |s| shard_of_str(s, shards))))
                    .collect();
                Some(
                    (0..array.len())
                        .map(|r| match array.is_null(r) {
                            true => take(0),
                            false => owner[keys[r]],
                        })
                        .collect(),
                )
            }
            _ => None,
        }
    }

    /// Every row's value (`None` for a null); an error comes with its row in the batch.
    /// Strings are shared: a run of equal cells costs a comparison, others a lookup in `strings`.
    /// Rows that `take` does not keep are `None`: [`Take::Skip`] unchecked, [`Take::Check`]
    /// checked (a cell of a type that can be refused is converted, then dropped).
    fn values(
        &self,
        take: Option<&[Take]>,
        strings: &mut Strings,
    ) -> Result<Vec<Option<Value>>, (usize, String)> {
        let skip = |r: usize| take.is_some_and(|take| take[r] != Take::Keep);
        let n = match self {
            Column::Dictionary(array, ..) | Column::Typed(array, ..) => array.len(),
        };
        // The common types are read through one downcast of the array, not one per row.
        let cells: Vec<Option<Value>> = match self {
            Column::Typed(a, Kind::Utf8, _) => shared(a.as_string::<i32>().iter(), skip, strings),
            Column::Typed(a, Kind::LargeUtf8, _) => {
                shared(a.as_string::<i64>().iter(), skip, strings)
            }
            Column::Typed(a, Kind::Utf8View, _) => shared(a.as_string_view().iter(), skip, strings),
            Column::Typed(a, Kind::I64, _) => a
                .as_primitive::<Int64Type>()
                .iter()
                .enumerate()
                .map(|(r, v)| v.filter(|_| !skip(r)).map(Value::Int))
                .collect(),
            Column::Typed(a, Kind::Bool, _) => a
                .as_boolean()
                .iter()
                .enumerate()
                .map(|(r, v)| v.filter(|_| !skip(r)).map(Value::Bool))
                .collect(),
            _ => {
                let mut out = Vec::with_capacity(n);
                for r in 0..n {
                    out.push(match take.map_or(Take::Keep, |take| take[r]) {
                        Take::Skip => None,
                        Take::Check => {
                            self.value(r).map_err(|m| (r, m))?;
                            None
                        }
                        Take::Keep => self.value(r).map_err(|m| (r, m))?,
                    });
                }
                out
            }
        };
        Ok(cells)
    }

    /// Row `r`'s value; `None` for a null.
    fn value(&self, r: usize) -> Result<Option<Value>, String> {
        let (array, kind, unit) = match self {
            Column::Dictionary(array, keys, strings) => {
                if array.is_null(r) {
                    return Ok(None);
                }
                return Ok(strings[keys[r]].clone().map(Value::Str));
            }
            Column::Typed(array, kind, unit) => (array, *kind, *unit),
        };
        if array.is_null(r) {
            return Ok(None);
        }
        let int = |i: i64| Ok(Some(Value::Int(i)));
        match kind {
            Kind::Bool => Ok(Some(Value::Bool(array.as_boolean().value(r)))),
            Kind::I8 => int(array.as_primitive::<Int8Type>().value(r).into()),
            Kind::I16 => int(array.as_primitive::<Int16Type>().value(r).into()),
            Kind::I32 => int(array.as_primitive::<Int32Type>().value(r).into()),
            Kind::I64 => int(array.as_primitive::<Int64Type>().value(r)),
            Kind::U8 => int(array.as_primitive::<UInt8Type>().value(r).into()),
            Kind::U16 => int(array.as_primitive::<UInt16Type>().value(r).into()),
            Kind::U32 => int(array.as_primitive::<UInt32Type>().value(r).into()),
            Kind::U64 => {
                let u = array.as_primitive::<UInt64Type>().value(r);
                i64::try_from(u)
                    .map(|i| Some(Value::Int(i)))
                    .map_err(|_| format!("{u} does not fit a 64-bit signed integer"))
            }
            Kind::F32 => {
                Value::float(array.as_primitive::<Float32Type>().value(r).into()).map(Some)
            }
            Kind::F64 => Value::float(array.as_primitive::<Float64Type>().value(r)).map(Some),
            Kind::Utf8 => Ok(Some(Value::str(array.as_string::<i32>().value(r)))),
            Kind::LargeUtf8 => Ok(Some(Value::str(array.as_string::<i64>().value(r)))),
            Kind::Utf8View => Ok(Some(Value::str(array.as_string_view().value(r)))),
            Kind::Instant(k, nanos_per) => {
                let raw: i64 = match k {
                    ArrowKind::TsS => array.as_primitive::<TimestampSecondType>().value(r),
                    ArrowKind::TsMs => array.as_primitive::<TimestampMillisecondType>().value(r),
                    ArrowKind::TsUs => array.as_primitive::<TimestampMicrosecondType>().value(r),
                    ArrowKind::TsNs => array.as_primitive::<TimestampNanosecondType>().value(r),
                    ArrowKind::Date32 => array.as_primitive::<Date32Type>().value(r).into(),
                    ArrowKind::Date64 => array.as_primitive::<Date64Type>().value(r),
                };
                instant(raw, nanos_per, unit).map(|t| Some(Value::Int(t)))
            }
        }
    }
}

/// An instant `raw` units of `nanos_per` nanoseconds after 1970, in `unit`: exact, or refused.
fn instant(raw: i64, nanos_per: u64, unit: TimeUnit) -> Result<i64, String> {
    if raw < 0 {
        return Err(format!("{raw} is before 1970; times are not negative"));
    }
    let target = 1_000_000_000 / unit.per_second();
    let nanos = (raw as u128) * nanos_per as u128;
    if nanos % target as u128 != 0 {
        return Err(format!(
            "a timestamp more precise than the time unit ({unit}) would be rounded: use a finer --time-unit"
        ));
    }
    i64::try_from(nanos / target as u128)
        .map_err(|_| format!("{raw} does not fit a 64-bit time in {unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::tests::keys_answers as answers;
    use arrow_array::{DictionaryArray, Int32Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use proptest::prelude::*;
    use timeline::{Engine, EngineOptions};

    /// Record batches of `rows` (time, key, `v`, an unread `h`), `per_batch` rows each, the key
    /// column dictionary-encoded or plain.
    fn batches(
        rows: &[(i64, &str, Option<&str>, Option<&str>)],
        per_batch: usize,
        dictionary: bool,
    ) -> Vec<RecordBatch> {
        let key_type = match dictionary {
            true => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false => DataType::Utf8,
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("time", DataType::Int64, false),
            Field::new("k", key_type, true),
            Field::new("v", DataType::Utf8, true),
            Field::new("h", DataType::Utf8, true),
        ]));
        rows.chunks(per_batch.max(1))
            .map(|rows| {
                let keys = rows.iter().map(|r| Some(r.1));
                let key: ArrayRef = match dictionary {
                    true => Arc::new(dictionary_of(keys)),
                    false => Arc::new(keys.collect::<StringArray>()),
                };
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
                    key,
                    Arc::new(rows.iter().map(|r| r.2).collect::<StringArray>()),
                    Arc::new(rows.iter().map(|r| r.3).collect::<StringArray>()),
                ];
                RecordBatch::try_new(schema.clone(), columns).unwrap()
            })
            .collect()
    }

    /// A dictionary-encoded column of `cells`, each distinct string once in the dictionary.
    fn dictionary_of<'a>(
        cells: impl Iterator<Item = Option<&'a str>>,
    ) -> DictionaryArray<Int32Type> {
        let mut values: Vec<&str> = Vec::new();
        let keys: Int32Array = cells
            .map(|c| {
                c.map(|c| match values.iter().position(|v| *v == c) {
                    Some(i) => i as i32,
                    None => {
                        values.push(c);
                        values.len() as i32 - 1
                    }
                })
            })
            .collect();
        DictionaryArray::try_new(keys, Arc::new(StringArray::from(values))).unwrap()
    }

    proptest! {
        /// The rows a thread takes from a column of string keys, found from the strings, are
        /// those whose key value falls on it ([`shard_of_value`], as every reader shards), nulls
        /// on the first.
        #[test]
        fn string_keys_fall_on_the_shard_of_their_value(
            keys in proptest::collection::vec(proptest::option::of("[a-z0-9]{0,4}"), 0..40),
            shards in 1usize..=4,
            dictionary: bool,
        ) {
            let array: ArrayRef = match dictionary {
                true => Arc::new(dictionary_of(keys.iter().map(|k| k.as_deref()))),
                false => Arc::new(keys.iter().map(|k| k.as_deref()).collect::<StringArray>()),
            };
            let column = Column::new(&array, TimeUnit::Seconds).unwrap();
            for shard in 0..shards {
                let owners = column.owners(shard, shards).expect("a column of strings");
                for (r, key) in keys.iter().enumerate() {
                    let owner = key.as_deref().map_or(0, |k| shard_of_value(&Value::str(k), shards));
                    prop_assert_eq!(owners[r] == Take::Keep, owner == shard, "{:?}", key);
                }
            }
        }

        /// Rows whose only cell read is the key, out of time order, over several batches, read
        /// on one thread or on several each taking its own keys (found from the key strings,
        /// plain or dictionary-encoded): each key's first and last times and answers are those
        /// of a read that makes an event of every row.
        #[test]
        fn idle_rows_collapsed_answer_as_every_row_does(
            rows in proptest::collection::vec((0i64..60, 0usize..5, 0usize..5, any::<bool>()), 0..80),
            query in 0usize..4,
            shards in 1usize..=3,
            per_batch in 1usize..30,
            dictionary: bool,
        ) {
            let rows: Vec<_> = rows
                .iter()
                .map(|&(t, k, v, h)| (t, ["s1", "s2", "7", "x3", ""][k], [Some("a"), Some("b"), None, None, None][v], h.then_some("beat")))
                .collect();
            let batches = batches(&rows, per_batch, dictionary);
            let query = timeline::parse_query([
                "latest_event_to_state(v)",
                r#"duration_where(has_existed(v == "a"))"#,
                "duration_in_cur_state(latest_event_to_state(v))",
                r#"count(v == "b")"#,
            ][query]).unwrap();
            let options = EngineOptions { key_column: Some("k".into()), retention: None };
            let engine = || Engine::new(&query, options.clone()).unwrap();
            let columns = ["k".to_string(), "v".to_string()];
            let time = TimeSpec::default();
            let source = Columnar::Batches(&batches);
            let mut kept = engine();
            source.for_each_batch(&time, &columns, None, Some("k"), Idle::Kept, |events| {
                kept.ingest(events).map_err(|e| e.message)
            }).unwrap();
            let mut one = engine();
            source.for_each_batch(&time, &columns, None, Some("k"), Idle::Collapsed, |events| {
                one.ingest(events).map_err(|e| e.message)
            }).unwrap();
            let mut sinks: Vec<Engine> = (0..shards).map(|_| engine()).collect();
            read_sharded(source, &time, &columns, None, Idle::Collapsed, "k", &mut sinks).unwrap();
            let want = answers(std::slice::from_ref(&kept));
            prop_assert_eq!(answers(std::slice::from_ref(&one)), want.clone());
            prop_assert_eq!(answers(&sinks), want);
        }
    }
}
