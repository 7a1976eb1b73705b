//! `eval --key` on several threads: the keys are split over the threads by a hash of the key
//! cell, and every thread reads the lines of its own keys and feeds an engine of its own.
//!
//! Keys are evaluated independently, so the answers are those of one engine fed the whole file:
//! each key's lines reach its engine in file order. Nothing is shared between the threads while
//! they work (not even a reference count), which is what makes two threads twice as fast; each
//! thread scans every line, but reads only the key cell of lines that are not its own.
//!
//! This takes CSV without quotes, where a line is a record. Anything else (quoted cells, a
//! carriage return inside a line, a header naming the key column twice, JSON Lines, no `--key`)
//! is read on one thread by [`crate::input`], which answers the same (the `events` fuzz target
//! compares the two). Whether a file has quotes is found before it is read, or, when its sinks
//! hold nothing yet, as it is read ([`Check`]).
//!
//! A line that sets none of the columns the query reads (a heartbeat) changes nothing but its
//! key's first and last event times, when the caller says so ([`Idle::Collapsed`]): of a
//! chunk's such lines, each key's first is decoded as any line is, and its earliest and latest
//! times are handed over with the chunk; the others cost a look at their key and time cells.

use crate::input::{
    display_path, infer_scalar, plain_time, CsvDecoder, CsvHeader, InputError, Scalar,
};
use crate::marks::{general_at, Marks};
use crate::progress::Progress;
use crate::time::{TimeSpec, TimeUnit};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use timeline::aggregate::AggregateEngine;
use timeline::keys::KeyMap;
use timeline::value::ValueKey;
use timeline::{Engine, Event, IngestError};

/// Events handed to an engine at a time (a few in unit tests, so that chunks follow chunks and
/// decode into their predecessors' events). The engine recomputes keys every 8 192 events of a
/// batch anyway; a chunk of that many events keeps their field vectors (about 1 MB) in the
/// cache, where 65 536 took 8 MB of fresh memory to fill.
const CHUNK: usize = if cfg!(test) { 7 } else { 1 << 13 };

/// The most events handed over at a time when keys interleave (a stream of many concurrent
/// sessions in time order): a chunk then grows to [`EVENTS_PER_KEY`] events per key the engine
/// holds, up to this many (about 25 MB of events), so that the engine, which applies a batch a
/// key at a time, visits each key's state once for several of its events rather than once for
/// each. Across 10 000 interleaved keys, a chunk of 8 192 events held less than one event a
/// key.
const MAX_CHUNK: usize = if cfg!(test) { 50 } else { 1 << 18 };

/// Events per key a chunk of interleaved keys is sized for.
const EVENTS_PER_KEY: usize = 32;

/// The size of the next chunk, after one of `events` events read from lines holding `runs` runs
/// of one key, the sink holding `keys` keys: [`CHUNK`] while keys come in runs (a file of each
/// key's events together), more while they interleave.
fn next_chunk(events: usize, runs: usize, keys: usize) -> usize {
    // Runs shorter than 4 events on average: the keys interleave.
    if runs * 4 > events {
        keys.saturating_mul(EVENTS_PER_KEY).clamp(CHUNK, MAX_CHUNK)
    } else {
        CHUNK
    }
}

/// What a thread feeds its events to: a per-key [`Engine`], or an [`AggregateEngine`] whose
/// partial aggregates are merged afterwards.
pub trait Sink: Sized + Send {
    fn ingest(&mut self, events: &[Event]) -> Result<(), IngestError>;

    /// How many keys the sink holds, which sizes the chunks of interleaved keys.
    fn key_count(&self) -> usize;

    /// Takes events that no answer asked for depends on ([`Until`]): checks them as `ingest`
    /// would (`key`: the key column), without taking them. An aggregate's groups only hold
    /// keys that have events by the time asked, so nothing else is needed for one.
    fn pass_over(&mut self, events: &[Event], key: Option<&Arc<str>>) -> Result<(), IngestError> {
        timeline::keys::index_batch(events, key, None, |_| None).map(drop)
    }
}

impl Sink for Engine {
    fn ingest(&mut self, events: &[Event]) -> Result<(), IngestError> {
        Engine::ingest(self, events)
    }

    fn key_count(&self) -> usize {
        Engine::key_count(self)
    }

    /// Per-key answers list every key, those whose first event comes later too (answering
    /// their initial value): the engine lists the keys, and checks the events as it would.
    fn pass_over(&mut self, events: &[Event], _key: Option<&Arc<str>>) -> Result<(), IngestError> {
        self.add_keys(events)
    }
}

impl Sink for AggregateEngine {
    fn ingest(&mut self, events: &[Event]) -> Result<(), IngestError> {
        AggregateEngine::ingest(self, events)
    }

    fn key_count(&self) -> usize {
        AggregateEngine::key_count(self)
    }
}

/// A sink fed only the events at or before `until` (all of them for `None`, at no cost): for
/// an evaluation whose every answer is at or before it, later events cannot change one (every
/// operator reads only the past, a key answers its initial value before its first event, and
/// joins an aggregate's groups only at it). The later events go to [`Sink::pass_over`]: they
/// are checked as the sink would check them (a key, finite numbers), so a bad one is refused all
/// the same, and a per-key engine still lists their keys. Without retention only: a horizon
/// moves with the latest event, and refuses events older than it.
pub struct Until<S> {
    pub sink: S,
    until: Option<u64>,
    key: Option<Arc<str>>,
    /// The events of a batch that are kept, when some of it is not.
    kept: Vec<Event>,
}

impl<S> Until<S> {
    pub fn new(sink: S, until: Option<u64>, key: Option<&str>) -> Until<S> {
        Until {
            sink,
            until,
            key: key.map(Arc::from),
            kept: Vec::new(),
        }
    }
}

impl<S: Sink> Sink for Until<S> {
    fn key_count(&self) -> usize {
        self.sink.key_count()
    }

    fn ingest(&mut self, events: &[Event]) -> Result<(), IngestError> {
        let Some(until) = self.until else {
            return self.sink.ingest(events);
        };
        let after = events.iter().filter(|e| e.time > until).count();
        if after == 0 {
            return self.sink.ingest(events);
        }
        // The whole batch passed over first, so that an error names its place in `events`
        // (the events kept are then taken too).
        self.sink.pass_over(events, self.key.as_ref())?;
        if after == events.len() {
            return Ok(());
        }
        self.kept.clear();
        self.kept
            .extend(events.iter().filter(|e| e.time <= until).cloned());
        let result = self.sink.ingest(&self.kept);
        self.kept.clear();
        result.map_err(|e| IngestError {
            // The place of the kept event in the whole batch.
            index: (0..events.len())
                .filter(|&i| events[i].time <= until)
                .nth(e.index)
                .unwrap_or(e.index),
            message: e.message,
        })
    }
}

/// What the reader does with a line that sets none of the columns the query reads, but its key
/// and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// It is an event like any other.
    Kept,
    /// Only its key's earliest and latest such times in a chunk are handed over: for a query
    /// whose answers such events change only through their key's first and last event times
    /// ([`timeline::aggregate::Query::reads_events_without_its_columns`] false) and which does
    /// not read the key column, without a retention horizon (which refuses an event by the
    /// latest one before it).
    Collapsed,
}

/// When [`eval_csv`] finds out that a file is not one it takes (quoted cells, a carriage return
/// inside a line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Before it reads a line, in a pass over the whole file of its own: the sinks are left
    /// untouched when it is not. For sinks that hold the events of earlier files.
    First,
    /// While it reads, from the same comparisons that find the cells (a pass over the file
    /// less; a tenth of a one-thread run): when the file is not one it takes, the sinks may
    /// have been fed part of it, and are then dropped (`sinks` is left empty) for the caller to
    /// make anew. For sinks that hold nothing yet.
    Along,
}

/// Feeds the CSV `text` to `sinks`, one thread per sink, each taking the keys whose hash falls on
/// it, or returns `None` if the file is not one this reader takes (see the module
/// documentation): with [`Check::First`] the sinks are then untouched, with [`Check::Along`]
/// untouched or gone (`sinks` empty). With one sink this is still the faster reader (it finds
/// cells 64 bytes at a time, [`crate::marks`], and types only the cells of columns the query
/// reads). On an error the sinks are gone: the whole evaluation fails. `idle` applies only with
/// `columns`: the columns events keep, the key's among them.
#[allow(clippy::too_many_arguments)]
pub fn eval_csv<S: Sink>(
    path: &str,
    text: &[u8],
    time: &TimeSpec,
    key_column: Option<&str>,
    columns: Option<&[String]>,
    idle: Idle,
    sinks: &mut Vec<S>,
    progress: &mut Progress,
    check: Check,
) -> Option<Result<(), InputError>> {
    let key_column = key_column?;
    let threads = sinks.len();
    let newline = memchr::memchr(b'\n', text)?;
    let (header, body) = (&text[..newline], &text[newline + 1..]);
    let general = match check {
        Check::First => needs_general_reader(text, threads),
        // The header here; the body as it is read.
        Check::Along => needs_general_reader(&text[..=newline], 1),
    };
    if general {
        return None;
    }
    let header = std::str::from_utf8(header).ok()?;
    if header.trim().starts_with('{') {
        return None; // JSON Lines, as the general reader recognises them
    }
    let header = CsvHeader::new(
        header.trim_end_matches('\r').split(',').map(str::as_bytes),
        &time.column,
    )
    .ok()?;
    let key = header.columns.iter().position(|c| c == key_column)?;
    if header.columns.iter().filter(|c| *c == key_column).count() > 1 {
        // An event's key is its last non-empty cell of that name: not one column to shard by.
        return None;
    }
    let body_start = text.len() - body.len();
    // The cells that make a line more than a key's time: those of the columns read.
    let read_cells: Option<Vec<usize>> = match (idle, columns) {
        (Idle::Collapsed, Some(columns)) => Some(
            (0..header.columns.len())
                .filter(|&k| k != key && k != header.time && columns.contains(&header.columns[k]))
                .collect(),
        ),
        _ => None,
    };
    // Set by a thread that found the file is not plain CSV, so that the others stop too.
    let stop = AtomicBool::new(false);
    let run = |shard: usize, engine: S, progress: Option<&mut Progress>| {
        Shard {
            shard,
            shards: threads,
            header: &header,
            unit: time.unit,
            columns,
            read_cells: read_cells.as_deref(),
            key,
            engine,
            stop: (check == Check::Along).then_some(&stop),
        }
        .read(body, body_start, progress)
    };
    let mut owned = std::mem::take(sinks).into_iter();
    let first = owned.next().expect("at least one sink");
    let results: Vec<Result<S, Stopped>> = std::thread::scope(|scope| {
        let others: Vec<_> = owned
            .enumerate()
            .map(|(i, sink)| scope.spawn(move || run(i + 1, sink, None)))
            .collect();
        let mut results = vec![run(0, first, Some(progress))];
        for handle in others {
            results.push(handle.join().expect("a shard's thread does not panic"));
        }
        results
    });
    // Each thread stops at its first bad line; the first of those is the file's first.
    let mut first_error: Option<(usize, String)> = None;
    let mut general = false;
    for r in results {
        match r {
            Ok(sink) => sinks.push(sink),
            Err(Stopped::General) => general = true,
            Err(Stopped::Line(line, message)) => {
                if first_error.as_ref().is_none_or(|f| line < f.0) {
                    first_error = Some((line, message));
                }
            }
        }
    }
    // A bad line of a file with quotes further on is the general reader's to report (a
    // thread stops at its first bad line, before it has seen all of its own lines).
    if general
        || (check == Check::Along && first_error.is_some() && needs_general_reader(text, threads))
    {
        sinks.clear();
        return None;
    }
    Some(match first_error {
        Some((line, message)) => Err(InputError {
            path: display_path(path),
            line,
            message,
        }),
        None => Ok(()),
    })
}

/// Whether `text` holds a quote, or a carriage return that ends no line (which the general
/// reader, the `csv` crate, takes as a line's end): that reader's files. One pass over both
/// bytes, split over `threads` threads: the whole file is read before any line is, so this pass
/// is time no other thread overlaps (a tenth of a one-thread run when it was two passes).
fn needs_general_reader(text: &[u8], threads: usize) -> bool {
    // Parts of at least 4 MiB: a thread costs more than checking a smaller file.
    needs_general_reader_in(text, threads.clamp(1, text.len() / (4 << 20) + 1))
}

/// [`needs_general_reader`] with the text split in `parts` (at least one), each but the last
/// checked on a thread of its own.
fn needs_general_reader_in(text: &[u8], parts: usize) -> bool {
    let check = |(start, end): (usize, usize)| {
        memchr::memchr2_iter(b'"', b'\r', &text[start..end]).any(|i| general_at(text, start + i))
    };
    let bounds: Vec<(usize, usize)> = (0..parts)
        .map(|p| (text.len() * p / parts, text.len() * (p + 1) / parts))
        .collect();
    let (last, others) = bounds.split_last().expect("at least one part");
    std::thread::scope(|scope| {
        let others: Vec<_> = others
            .iter()
            .map(|&part| scope.spawn(move || check(part)))
            .collect();
        let here = check(*last);
        others.into_iter().fold(here, |any, h| {
            h.join().expect("a check does not panic") || any
        })
    })
}

/// What a reader hands its events to, a chunk at a time (the chunk is left empty).
pub type Route<'a> = dyn FnMut(&mut Vec<Event>) -> Result<(), String> + 'a;

/// Runs `read`, which reads the file `path` on this thread and hands its events to the route it
/// is given, and feeds each event to the sink owning its key (by [`shard_of_value`] of the
/// `key` column). With several sinks each ingests on a thread of its own, fed through a short
/// queue, so that decoding and ingesting overlap. An error names the file: the reader's own, or
/// the first a sink met (which stops the read).
pub fn ingest_routed<S: Sink>(
    sinks: &mut Vec<S>,
    key: Option<&Arc<str>>,
    path: &str,
    read: impl FnOnce(&mut Route<'_>) -> Result<(), InputError>,
) -> Result<(), String> {
    if sinks.len() == 1 {
        let sink = &mut sinks[0];
        let mut ingested = 0;
        return read(&mut |events: &mut Vec<Event>| {
            sink.ingest(events).map_err(|e| {
                format!(
                    "event {} (time {}): {}",
                    ingested + e.index + 1,
                    events[e.index].time,
                    e.message
                )
            })?;
            ingested += events.len();
            events.clear();
            Ok(())
        })
        .map_err(|e| e.to_string());
    }
    let shards = sinks.len();
    let owned = std::mem::take(sinks);
    let (read_result, results) = std::thread::scope(|scope| {
        let mut queues = Vec::with_capacity(shards);
        let mut workers = Vec::with_capacity(shards);
        for mut sink in owned {
            let (queue, batches) = std::sync::mpsc::sync_channel::<Vec<Event>>(2);
            queues.push(queue);
            workers.push(scope.spawn(move || -> Result<S, String> {
                for batch in batches {
                    sink.ingest(&batch).map_err(|e| {
                        format!("an event at time {}: {}", batch[e.index].time, e.message)
                    })?;
                }
                Ok(sink)
            }));
        }
        let mut routed: Vec<Vec<Event>> = (0..shards).map(|_| Vec::new()).collect();
        let read_result = read(&mut |events: &mut Vec<Event>| {
            for e in events.drain(..) {
                let shard = match key.and_then(|k| e.column(k)) {
                    Some(v) => shard_of_value(v, shards),
                    None => 0, // refused there, with the reason
                };
                routed[shard].push(e);
            }
            for (queue, batch) in queues.iter().zip(&mut routed) {
                if !batch.is_empty() {
                    // A closed queue is a sink that failed: its error is reported below.
                    queue
                        .send(std::mem::take(batch))
                        .map_err(|_| "stopped".to_string())?;
                }
            }
            Ok(())
        });
        drop(queues);
        let results: Vec<Result<S, String>> = workers
            .into_iter()
            .map(|w| w.join().expect("a sink's thread does not panic"))
            .collect();
        (read_result, results)
    });
    let mut sink_error = None;
    for r in results {
        match r {
            Ok(sink) => sinks.push(sink),
            Err(e) => sink_error = sink_error.or(Some(e)),
        }
    }
    match (sink_error, read_result) {
        (Some(e), _) => Err(format!("{}: {e}", display_path(path))),
        (None, Err(e)) => Err(e.to_string()),
        (None, Ok(())) => Ok(()),
    }
}

/// The sink (of `shards`) that takes `key`: the one [`eval_csv`] gives its cell to.
pub fn shard_of_value(key: &timeline::Value, shards: usize) -> usize {
    match key {
        timeline::Value::Str(s) => shard_of_str(s, shards),
        v => {
            let mut h = Fnv::default();
            ValueKey::from(v).hash(&mut h);
            (h.finish() % shards as u64) as usize
        }
    }
}

/// [`shard_of_value`] of a string key, from its text (not made a value first).
pub fn shard_of_str(key: &str, shards: usize) -> usize {
    let mut h = Fnv::default();
    key.hash(&mut h);
    (h.finish() % shards as u64) as usize
}

/// One thread's part: the keys whose hash falls on `shard`.
struct Shard<'a, S> {
    shard: usize,
    shards: usize,
    header: &'a CsvHeader,
    unit: TimeUnit,
    /// The columns events keep (`None`: all).
    columns: Option<&'a [String]>,
    /// With [`Idle::Collapsed`]: the cells of the columns the query reads, a line with all of
    /// them empty being idle.
    read_cells: Option<&'a [usize]>,
    /// The position of the key column.
    key: usize,
    engine: S,
    /// With [`Check::Along`]: raised by the thread that finds a quote or a lone `\r`.
    stop: Option<&'a AtomicBool>,
}

/// A key's idle lines in a chunk past its first (which is decoded as any line is): their
/// earliest and latest times, with their lines. Each time came from a cell of plain digits,
/// which its decimal form reads as again.
struct IdleTimes {
    first: u64,
    earliest: (u64, usize),
    latest: (u64, usize),
}

/// A key cell's bytes, held in the entry itself up to [`IdleKey::SHORT`] bytes: the entries of
/// a chunk with many keys outgrow the cache, and a lookup then costs one miss for the entry
/// rather than one more for a key boxed elsewhere (a fifth of a one-thread run over a stream
/// of 10 000 interleaved sessions, mostly idle lines).
#[derive(Clone, PartialEq, Eq)]
enum IdleKey {
    Short {
        len: u8,
        bytes: [u8; IdleKey::SHORT],
    },
    Long(Box<[u8]>),
}

impl IdleKey {
    const SHORT: usize = 22;

    fn new(cell: &[u8]) -> IdleKey {
        if cell.len() <= IdleKey::SHORT {
            let mut bytes = [0; IdleKey::SHORT];
            bytes[..cell.len()].copy_from_slice(cell);
            IdleKey::Short {
                len: cell.len() as u8,
                bytes,
            }
        } else {
            IdleKey::Long(cell.into())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            IdleKey::Short { len, bytes } => &bytes[..usize::from(*len)],
            IdleKey::Long(b) => b,
        }
    }
}

/// Hashed as its bytes are, so that a map of them is looked up by a cell (see `Borrow`).
impl Hash for IdleKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes().hash(state)
    }
}

impl std::borrow::Borrow<[u8]> for IdleKey {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

/// Why a thread stopped reading.
enum Stopped {
    /// A bad line: its number, and what is wrong.
    Line(usize, String),
    /// The file is not plain CSV (a quote or a lone `\r`, [`Check::Along`]), or another thread
    /// found it is not.
    General,
}

impl From<(usize, String)> for Stopped {
    fn from((line, message): (usize, String)) -> Stopped {
        Stopped::Line(line, message)
    }
}

impl<S: Sink> Shard<'_, S> {
    /// Reads the lines of `body` (which starts at byte `offset` of the file, on line 2) that
    /// belong to this shard, and feeds them to the engine. An error comes with its line.
    fn read(
        mut self,
        body: &[u8],
        offset: usize,
        mut progress: Option<&mut Progress>,
    ) -> Result<S, Stopped> {
        let mut decoder = CsvDecoder::new(self.header, self.unit, self.columns);
        // The chunk's events: the first `filled` are this chunk's, decoded into the last
        // chunk's (their field vectors reused).
        let mut events: Vec<Event> = Vec::with_capacity(CHUNK);
        let mut filled = 0;
        let mut chunk = CHUNK;
        // Runs of one key among the lines read for this chunk (this shard's and the others').
        let mut runs = 0;
        // The line of each event in `events`, to locate an error the engine finds.
        let mut lines: Vec<usize> = Vec::with_capacity(CHUNK);
        let width = self.header.columns.len();
        // Files often hold runs of one key: its cell and owner, from the line before.
        let mut last: (&[u8], usize) = (b"", 0);
        // The chunk's idle lines, by key cell (see [`Idle`]).
        let mut idle: KeyMap<IdleKey, IdleTimes> = KeyMap::default();
        // Where each cell of the current line ends.
        let mut ends: Vec<usize> = Vec::with_capacity(width);
        let mut start = 0;
        let mut line_no = 1;
        // The commas and newlines of the whole body, in order: one pass finds the cells' ends
        // and the lines'.
        let mut marks = Marks::new(body);
        while start < body.len() {
            line_no += 1;
            let rest = &body[start..];
            // The line's marks up to the key cell first, then the rest of the line only if it
            // is this shard's (another's is skipped to its newline). Positions are from the
            // line's start.
            ends.clear();
            let mut line_len = None;
            for i in marks.by_ref() {
                let i = i - start;
                if rest[i] == b'\n' {
                    line_len = Some(i);
                    break;
                }
                ends.push(i);
                if ends.len() > self.key {
                    break;
                }
            }
            if line_len.is_none() && ends.len() <= self.key {
                line_len = Some(rest.len()); // the file's last line, without a newline
            }
            // Where the key cell ends: at the comma after it, or at the end of the line (less
            // a `\r`) when it is the last cell; `None` when the line has no key cell.
            let key_end = match line_len {
                None => Some(ends[self.key]),
                Some(len) if ends.len() == self.key => {
                    Some(len - usize::from(rest[..len].ends_with(b"\r")))
                }
                Some(_) => None,
            };
            let owner = match key_end {
                Some(end) => match &rest[cell_start(&ends, self.key)..end] {
                    key if key == last.0 && !key.is_empty() => last.1,
                    key => {
                        runs += 1;
                        // One shard owns every key: no need to type and hash it.
                        let owner = match self.shards {
                            1 => 0,
                            n => shard_of_cell(key, n),
                        };
                        last = (key, owner);
                        owner
                    }
                },
                // A line without a key cell is malformed: the first shard reports it.
                None => 0,
            };
            if owner != self.shard {
                start += match line_len {
                    Some(len) => len + 1,
                    None => {
                        // A long jump over the line's other cells, then the marks after it.
                        let from = ends[self.key];
                        let len =
                            memchr::memchr(b'\n', &rest[from..]).map_or(rest.len(), |j| from + j);
                        marks.seek((start + len + 1).min(body.len()));
                        len + 1
                    }
                };
                continue;
            }
            if line_len.is_none() {
                for i in marks.by_ref() {
                    let i = i - start;
                    if rest[i] == b'\n' {
                        line_len = Some(i);
                        break;
                    }
                    ends.push(i);
                }
            }
            if marks.general() {
                // This line's blocks are read: any quote or lone `\r` in it is known.
                if let Some(stop) = self.stop {
                    stop.store(true, Ordering::Relaxed);
                }
                return Err(Stopped::General);
            }
            let line_len = line_len.unwrap_or(rest.len());
            start += line_len + 1;
            let line = &rest[..line_len];
            let record = line.strip_suffix(b"\r").unwrap_or(line);
            if record.is_empty() {
                continue;
            }
            ends.push(record.len());
            let cell = |k: usize| &record[cell_start(&ends, k)..ends[k]];
            if ends.len() != width {
                return Err(Stopped::Line(
                    line_no,
                    format!(
                        "invalid CSV: a record has {} cells, but the header has {width}",
                        ends.len()
                    ),
                ));
            }
            if let Some(read_cells) = self.read_cells {
                let time_cell = cell(self.header.time);
                let key_cell = cell(self.key);
                let idle_time = read_cells
                    .iter()
                    .all(|&k| cell_start(&ends, k) == ends[k])
                    .then(|| plain_time(time_cell))
                    .flatten()
                    .filter(|_| !key_cell.is_empty());
                if let Some(t) = idle_time {
                    // The key's bytes are copied: compared in place, they would be read from
                    // lines far back in the file.
                    match idle.get_mut(key_cell) {
                        Some(seen) => {
                            if t < seen.earliest.0 {
                                seen.earliest = (t, line_no);
                            }
                            if t > seen.latest.0 {
                                seen.latest = (t, line_no);
                            }
                            continue;
                        }
                        // The first is decoded below: its key cell checked as any.
                        None => {
                            let times = IdleTimes {
                                first: t,
                                earliest: (t, line_no),
                                latest: (t, line_no),
                            };
                            idle.insert(IdleKey::new(key_cell), times);
                        }
                    }
                }
            }
            if filled == events.len() {
                events.push(Event::new(0, []));
            }
            decoder
                .event_into((0..width).map(cell), &mut events[filled])
                .map_err(|m| (line_no, m))?;
            filled += 1;
            lines.push(line_no);
            if filled == chunk {
                if self.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    return Err(Stopped::General);
                }
                filled =
                    self.idle_events(&mut idle, &mut decoder, &mut events, filled, &mut lines)?;
                self.ingest(&events[..filled], &mut lines)?;
                chunk = next_chunk(filled, runs, self.engine.key_count());
                (filled, runs) = (0, 0);
                if let Some(p) = progress.as_deref_mut() {
                    p.update("reading", offset + start, line_no);
                }
            }
        }
        filled = self.idle_events(&mut idle, &mut decoder, &mut events, filled, &mut lines)?;
        self.ingest(&events[..filled], &mut lines)?;
        Ok(self.engine)
    }

    /// Decodes into `events` after the first `filled` (growing it as needed) each key's
    /// earliest and latest idle times of the chunk other than its first idle line's, as lines
    /// holding only the key and time cells; empties `idle`; returns the events' new count.
    fn idle_events(
        &self,
        idle: &mut KeyMap<IdleKey, IdleTimes>,
        decoder: &mut CsvDecoder,
        events: &mut Vec<Event>,
        mut filled: usize,
        lines: &mut Vec<usize>,
    ) -> Result<usize, (usize, String)> {
        let (key, time, width) = (self.key, self.header.time, self.header.columns.len());
        for (key_cell, times) in idle.drain() {
            let (earliest, latest) = (times.earliest, times.latest);
            let first = times.first;
            let wanted = [
                (earliest.0 < first).then_some(earliest),
                (latest.0 > first).then_some(latest),
            ];
            for (t, line) in wanted.into_iter().flatten() {
                let time_cell = t.to_string();
                let cells = (0..width).map(|k| match k {
                    k if k == key => key_cell.bytes(),
                    k if k == time => time_cell.as_bytes(),
                    _ => &b""[..],
                });
                if filled == events.len() {
                    events.push(Event::new(0, []));
                }
                decoder
                    .event_into(cells, &mut events[filled])
                    .map_err(|m| (line, m))?;
                filled += 1;
                lines.push(line);
            }
        }
        Ok(filled)
    }

    fn ingest(&mut self, events: &[Event], lines: &mut Vec<usize>) -> Result<(), (usize, String)> {
        self.engine.ingest(events).map_err(|e| {
            (
                lines[e.index],
                format!("event at time {}: {}", events[e.index].time, e.message),
            )
        })?;
        lines.clear();
        Ok(())
    }
}

/// Where cell `k` of a line starts, given where its cells before it end (at their commas).
fn cell_start(ends: &[usize], k: usize) -> usize {
    if k == 0 {
        0
    } else {
        ends[k - 1] + 1
    }
}

/// The shard of a key cell: equal keys (as the engine compares them: `7`, `7.0` and `07` are one
/// key) fall on the same shard. The cell is typed as the decoder types it ([`infer_scalar`]), and
/// a number or bool hashes as its [`ValueKey`]; a string (or a cell the decoder will refuse, which
/// its shard then reports) hashes as its text, without allocating.
fn shard_of_cell(cell: &[u8], shards: usize) -> usize {
    let mut h = Fnv::default();
    match std::str::from_utf8(cell).map(|text| (text, infer_scalar(text))) {
        Ok((_, Ok(Scalar::Value(v)))) => ValueKey::from(&v).hash(&mut h),
        Ok((text, _)) => text.hash(&mut h),
        // Not UTF-8: any shard will do, as long as every thread picks the same one; that
        // shard's decoder reports the line.
        Err(_) => cell.hash(&mut h),
    }
    (h.finish() % shards as u64) as usize
}

/// FNV-1a: short keys, no allocation, the same on every run.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Collects what a shard's engine would ingest.
    struct Collect(Vec<Event>);

    impl Sink for Collect {
        fn ingest(&mut self, events: &[Event]) -> Result<(), IngestError> {
            self.0.extend_from_slice(events);
            Ok(())
        }

        /// As many as events: chunks of interleaved keys grow as far as tests let them.
        fn key_count(&self) -> usize {
            self.0.len()
        }
    }

    /// The definition: every line, split at newlines, less a `\r`, blank ones skipped, split
    /// at commas; the events as strings, sorted, or the first bad line.
    fn reference(header: &str, body: &str) -> Result<Vec<String>, usize> {
        let names: Vec<&str> = header.split(',').collect();
        let header = CsvHeader::new(names.iter().map(|c| c.as_bytes()), "time").unwrap();
        let mut decoder = CsvDecoder::new(&header, TimeUnit::Seconds, None);
        let mut out = Vec::new();
        for (i, line) in body.split('\n').enumerate() {
            let record = line.strip_suffix('\r').unwrap_or(line);
            if record.is_empty() {
                continue;
            }
            let cells: Vec<&[u8]> = record.split(',').map(str::as_bytes).collect();
            if cells.len() != names.len() {
                return Err(i + 2);
            }
            out.push(format!(
                "{:?}",
                decoder.event(cells.into_iter()).map_err(|_| i + 2)?
            ));
        }
        out.sort();
        Ok(out)
    }

    fn eval(header: &str, body: &str, key: &str, shards: usize) -> Result<Vec<String>, usize> {
        let text = format!("{header}\n{body}");
        let first = eval_checked(&text, key, shards, Check::First).expect("plain CSV");
        let along = eval_checked(&text, key, shards, Check::Along).expect("plain CSV");
        assert_eq!(first, along, "the check before the read and along it");
        first
    }

    /// [`eval_csv`] with `check`: `None` for a file it leaves to the general reader.
    fn eval_checked(
        text: &str,
        key: &str,
        shards: usize,
        check: Check,
    ) -> Option<Result<Vec<String>, usize>> {
        let mut sinks: Vec<Collect> = (0..shards).map(|_| Collect(Vec::new())).collect();
        let time = TimeSpec::default();
        let read = eval_csv(
            "t.csv",
            text.as_bytes(),
            &time,
            Some(key),
            None,
            Idle::Kept,
            &mut sinks,
            &mut Progress::hidden(),
            check,
        );
        let Some(read) = read else {
            match check {
                // Untouched.
                Check::First => {
                    assert!(sinks.len() == shards && sinks.iter().all(|s| s.0.is_empty()))
                }
                // Untouched, or gone, to be made anew.
                Check::Along => assert!(
                    sinks.is_empty()
                        || (sinks.len() == shards && sinks.iter().all(|s| s.0.is_empty()))
                ),
            }
            return None;
        };
        Some(collected(read, &sinks))
    }

    fn collected(read: Result<(), InputError>, sinks: &[Collect]) -> Result<Vec<String>, usize> {
        read.map_err(|e| e.line)?;
        // Each key is read by one shard alone.
        let mut owners = std::collections::HashMap::new();
        for (shard, sink) in sinks.iter().enumerate() {
            for event in &sink.0 {
                let key = format!("{:?}", event.get("k"));
                assert_eq!(*owners.entry(key.clone()).or_insert(shard), shard, "{key}");
            }
        }
        let mut out: Vec<String> = sinks
            .iter()
            .flat_map(|s| s.0.iter().map(|e| format!("{e:?}")))
            .collect();
        out.sort();
        Ok(out)
    }

    proptest! {
        /// Whatever the shard count and the key column's place (first, middle, last), the
        /// shards together read what the definition reads, and report its first bad line:
        /// blank lines, `\r\n` endings, a missing last newline, short and long lines.
        #[test]
        fn the_shards_read_every_line_as_the_definition_does(
            lines in proptest::collection::vec(
                (0u64..50, 0usize..6, 0usize..4, prop_oneof![Just(""), Just("\r")], 0usize..20),
                0..40,
            ),
            key_place in 0usize..3,
            last_newline: bool,
        ) {
            let header = ["time,k,v", "time,v,k", "k,time,v"][key_place];
            let mut body = String::new();
            for (t, k, v, cr, shape) in &lines {
                let (t, k, v) = (t.to_string(), format!("s{k}"), ["a", "b", "1", ""][*v]);
                let cells: Vec<&str> = match key_place {
                    0 => vec![&t, &k, v],
                    1 => vec![&t, v, &k],
                    _ => vec![&k, &t, v],
                };
                match shape {
                    0 => {}                                     // a blank line
                    1 => body.push_str(&cells[..2].join(",")), // a cell short
                    2 => body.push_str(&(cells.join(",") + ",x")), // a cell more
                    _ => body.push_str(&cells.join(",")),
                }
                body.push_str(cr);
                body.push('\n');
            }
            if !last_newline {
                body.pop();
            }
            let want = reference(header, &body);
            for shards in 1..=3 {
                prop_assert_eq!(&eval(header, &body, "k", shards), &want, "{} shards", shards);
            }
        }
    }

    proptest! {
        /// A quote or a lone `\r` anywhere (in the header, a cell, a line after a bad one)
        /// leaves the file to the general reader whether it is looked for before the read or
        /// along it; a file without either is read as the definition reads it.
        #[test]
        fn a_quote_or_a_lone_carriage_return_anywhere_is_the_general_readers(
            lines in proptest::collection::vec(
                (0u64..50, 0usize..6, 0usize..3, 0usize..6, 0usize..12),
                0..40,
            ),
            header_quote in 0usize..8,
            shards in 1usize..=3,
        ) {
            let header = if header_quote == 0 { "time,k,\"v\"" } else { "time,k,v" };
            let mut body = String::new();
            for (t, k, v, shape, poison) in &lines {
                let v = ["a", "1", ""][*v];
                let v = match poison {
                    0 => format!("{v}\"x"),
                    1 => format!("{v}\rx"),
                    2 => format!("{v}\r"), // a `\r\n` line end
                    _ => v.to_string(),
                };
                let cells = [t.to_string(), format!("s{k}"), v];
                match shape {
                    0 => body.push_str(&cells[..2].join(",")), // a cell short
                    _ => body.push_str(&cells.join(",")),
                }
                body.push('\n');
            }
            let text = format!("{header}\n{body}");
            let general = needs_general_reader(text.as_bytes(), 1);
            for check in [Check::First, Check::Along] {
                let read = eval_checked(&text, "k", shards, check);
                prop_assert_eq!(read.is_none(), general, "{:?}", check);
                if let Some(read) = read {
                    prop_assert_eq!(read, reference(header, &body));
                }
            }
        }

        /// Split in any number of parts, the check finds what its definition does: a quote
        /// anywhere, or a `\r` followed by anything but `\n` (one at the very end is a line's
        /// end), whichever part holds it, on a part's edge too.
        #[test]
        fn the_general_reader_check_is_its_definition(
            pieces in proptest::collection::vec(
                prop_oneof![
                    1 => Just(&b"\""[..]),
                    1 => Just(&b"\r"[..]),
                    6 => Just(&b"\r\n"[..]),
                    5 => Just(&b"\n"[..]),
                    5 => Just(&b","[..]),
                    20 => Just(&b"a"[..]),
                ],
                0..40,
            ),
            parts in 1usize..5,
        ) {
            let text = pieces.concat();
            let definition = text.contains(&b'"')
                || (0..text.len()).any(|i| text[i] == b'\r' && i + 1 < text.len() && text[i + 1] != b'\n');
            prop_assert_eq!(needs_general_reader_in(&text, parts), definition);
        }
    }

    /// A file read into engines per key for `query`, `idle` lines as given, over `shards`
    /// threads: each key's first and last times and result timeline, sorted.
    fn answers(text: &str, query: &str, idle: Idle, shards: usize) -> Vec<String> {
        let query = timeline::parse_query(query).expect("a valid query");
        let options = timeline::EngineOptions {
            key_column: Some("k".into()),
            retention: None,
        };
        let mut sinks: Vec<Engine> = (0..shards)
            .map(|_| Engine::new(&query, options.clone()).unwrap())
            .collect();
        let columns = ["k".to_string(), "v".to_string()];
        let read = eval_csv(
            "t.csv",
            text.as_bytes(),
            &TimeSpec::default(),
            Some("k"),
            Some(&columns),
            idle,
            &mut sinks,
            &mut Progress::hidden(),
            Check::First,
        );
        read.expect("plain CSV").expect("good lines");
        keys_answers(&sinks)
    }

    /// Each key's first and last times and result timeline over `engines`, sorted.
    pub(crate) fn keys_answers(engines: &[Engine]) -> Vec<String> {
        let mut out: Vec<String> = engines
            .iter()
            .flat_map(|engine| {
                engine.keys().into_iter().map(|k| {
                    let (origin, last) = (engine.origin(k), engine.last_time(k));
                    format!("{k:?} {origin:?} {last:?} {:?}", engine.timeline(k))
                })
            })
            .collect();
        out.sort();
        out
    }

    proptest! {
        /// Lines that set no column the query reads (`v` empty), out of time order, in chunks
        /// of a few lines, over any number of threads: each key's first and last times and
        /// answers are those of a read that keeps every line (keys written alike, `7` and
        /// `07`, are one key whichever cell they came from; keys of 22 bytes or fewer are held
        /// apart from longer ones; times written with leading zeros).
        #[test]
        fn idle_lines_collapsed_answer_as_every_line_does(
            lines in proptest::collection::vec((0u64..60, 0usize..9, 0usize..5, any::<bool>()), 0..80),
            query in 0usize..4,
            shards in 1usize..=3,
        ) {
            let query = [
                "latest_event_to_state(v)",
                r#"duration_where(has_existed(v == "a"))"#,
                "duration_in_cur_state(latest_event_to_state(v))",
                r#"count(v == "b")"#,
            ][query];
            let mut text = String::from("time,k,v,h\n");
            for (t, k, v, h) in &lines {
                let k = [
                    "s1",
                    "s2",
                    "7",
                    "07",
                    "3",
                    "x3",
                    "session-0000000000000a",
                    "session-0000000000000ab",
                    "a-session-id-of-forty-bytes-or-so-here",
                ][*k];
                let v = ["a", "b", "", "", ""][*v];
                let h = if *h { "beat" } else { "" };
                if t % 7 == 3 {
                    text.push_str(&format!("{t:04},{k},{v},{h}\n"));
                } else {
                    text.push_str(&format!("{t},{k},{v},{h}\n"));
                }
            }
            let kept = answers(&text, query, Idle::Kept, 1);
            prop_assert_eq!(answers(&text, query, Idle::Collapsed, shards), kept);
        }
    }

    #[test]
    fn equal_keys_fall_on_the_same_shard() {
        for shards in [2, 3, 7] {
            for group in [
                &["7", "7.0", "07", "+7", "7e0"][..],
                &["true", "TRUE", "True"],
                &["-0", "0", "0.0", "-0.0"],
            ] {
                let s: Vec<usize> = group
                    .iter()
                    .map(|c| shard_of_cell(c.as_bytes(), shards))
                    .collect();
                assert!(
                    s.iter().all(|&x| x == s[0]),
                    "{group:?} over {shards}: {s:?}"
                );
            }
        }
        // A key read from another file (JSON Lines) goes where its CSV cell went.
        for (cell, value) in [
            ("s1", timeline::Value::str("s1")),
            ("7", timeline::Value::Int(7)),
            ("7.0", timeline::Value::Int(7)),
            ("true", timeline::Value::Bool(true)),
            ("2.5", timeline::Value::Float(2.5)),
        ] {
            for shards in [2, 3] {
                assert_eq!(
                    shard_of_cell(cell.as_bytes(), shards),
                    shard_of_value(&value, shards),
                    "{cell}"
                );
            }
        }
        let spread: std::collections::HashSet<usize> = (0..100)
            .map(|i| shard_of_cell(format!("session-{i}").as_bytes(), 2))
            .collect();
        assert_eq!(spread.len(), 2, "keys spread over the shards");
    }

    /// Chunks grow with the keys held only while keys interleave, and never past the cap.
    #[test]
    fn chunks_grow_for_interleaved_keys_only() {
        // Runs of 100 events: keys together.
        assert_eq!(next_chunk(CHUNK, CHUNK / 100, 1_000), CHUNK);
        // A run per event, one key per event: as large as the keys ask, up to the cap.
        assert_eq!(
            next_chunk(CHUNK, CHUNK, 1),
            EVENTS_PER_KEY.clamp(CHUNK, MAX_CHUNK)
        );
        assert_eq!(next_chunk(CHUNK, CHUNK, 1_000_000), MAX_CHUNK);
        assert_eq!(next_chunk(MAX_CHUNK, MAX_CHUNK, 0), CHUNK);
    }
}
