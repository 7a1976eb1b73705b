//! Reading event files: JSON Lines (either event shape) or CSV, recognised from the first line.
//! Events are handed on in chunks as they are parsed, so memory holds one chunk of events, not
//! the whole file's; results are printed only after the last chunk, so a bad line leaves no
//! half-printed result.

use crate::progress::Progress;
use crate::time::{parse_time, TimeSpec, TimeUnit};
use std::fmt;
use std::io::Read;
use std::sync::Arc;
use timeline::value::Str;
use timeline::{Event, Value};

/// A problem with the input, located by file and line.
#[derive(Debug, PartialEq)]
pub struct InputError {
    pub path: String,
    /// 1-based; 0 when the problem is not on one line (the file cannot be read, say).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.path, self.message),
            n => write!(f, "{}:{n}: {}", self.path, self.message),
        }
    }
}

/// The query `text` (from `name`, a file or `query`) parsed with durations in units of
/// `1 / units_per_second` s; an error names the line and column, shows the line and points at
/// the column.
pub fn parse_query(
    name: &str,
    text: &str,
    units_per_second: u64,
) -> Result<timeline::aggregate::Query, String> {
    timeline::parser::parse_in_units(text, units_per_second).map_err(|e| {
        let (line, column) =
            timeline::limits::excerpt(text.lines().nth(e.line - 1).unwrap_or(""), e.column);
        let caret = " ".repeat(column.saturating_sub(1));
        format!(
            "{name}:{}:{}: {}\n  | {line}\n  | {caret}^",
            e.line, e.column, e.message
        )
    })
}

/// The event files `paths` name, in order: a path as it is (`-` is standard input), a directory
/// as every file below it (hidden ones left out; a Hive-style `key=value/` tree is read as its
/// files), a pattern with `*`, `?` or `[` as the files it matches; each group sorted by name.
pub fn expand_paths(paths: &[String]) -> Result<Vec<String>, InputError> {
    let mut out = Vec::new();
    for p in paths {
        let fail = |message: String| InputError {
            path: p.clone(),
            line: 0,
            message,
        };
        if p.contains(['*', '?', '[']) {
            let mut found: Vec<String> = glob::glob(p)
                .map_err(|e| fail(format!("not a valid pattern: {e}")))?
                .filter_map(Result::ok)
                .filter(|f| f.is_file())
                .map(|f| f.to_string_lossy().into_owned())
                .collect();
            if found.is_empty() {
                return Err(fail("the pattern matches no file".into()));
            }
            found.sort();
            out.extend(found);
        } else if std::path::Path::new(p).is_dir() {
            let mut found = Vec::new();
            files_below(std::path::Path::new(p), &mut found)
                .map_err(|e| fail(format!("cannot read the directory: {e}")))?;
            if found.is_empty() {
                return Err(fail("the directory holds no file".into()));
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn files_below(dir: &std::path::Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            files_below(&path, out)?;
        } else if path.is_file() {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// The most a compressed event file may decompress to (a file that claims more is refused
/// rather than exhausting memory).
pub const MAX_DECOMPRESSED_BYTES: u64 = 16 << 30;

/// Reads the file at `path` (`-` for standard input) as UTF-8, decompressing a gzip or zstd
/// file (recognised by its first bytes, whatever its name).
pub fn read_text(path: &str) -> Result<String, InputError> {
    let fail = |e: std::io::Error| InputError {
        path: display_path(path),
        line: 0,
        message: format!("cannot read: {e}"),
    };
    let mut bytes = Vec::new();
    if path == "-" {
        std::io::stdin().read_to_end(&mut bytes).map_err(fail)?;
    } else {
        bytes = std::fs::read(path).map_err(fail)?;
    }
    let bytes = match decompressed(path, &bytes)? {
        Some(plain) => plain,
        None => bytes,
    };
    String::from_utf8(bytes).map_err(|e| InputError {
        path: display_path(path),
        line: 0,
        message: format!(
            "cannot read: the file is not UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// The content of a gzip (`1f 8b`) or zstd (`28 b5 2f fd`) file, or `None` for anything else.
fn decompressed(path: &str, bytes: &[u8]) -> Result<Option<Vec<u8>>, InputError> {
    let fail = |what: &str, e: std::io::Error| InputError {
        path: display_path(path),
        line: 0,
        message: format!("cannot read the {what} file: {e}"),
    };
    let mut out = Vec::new();
    let limit = MAX_DECOMPRESSED_BYTES + 1;
    let (what, read) = if bytes.starts_with(&[0x1f, 0x8b]) {
        let r = flate2::read::MultiGzDecoder::new(bytes)
            .take(limit)
            .read_to_end(&mut out);
        ("gzip", r)
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = zstd::stream::read::Decoder::new(bytes).map_err(|e| fail("zstd", e))?;
        ("zstd", decoder.take(limit).read_to_end(&mut out))
    } else {
        return Ok(None);
    };
    read.map_err(|e| fail(what, e))?;
    if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(InputError {
            path: display_path(path),
            line: 0,
            message: format!(
                "the {what} file decompresses to more than {} GiB, the limit",
                MAX_DECOMPRESSED_BYTES >> 30
            ),
        });
    }
    Ok(Some(out))
}

/// The content of an event file: a regular file is mapped into memory rather than copied, so
/// that reading it costs no fresh memory (the kernel zeroing a copy's pages took a sixth of a
/// run). A mapped file is checked to be UTF-8 only when it is read as text: the CSV reader
/// reads bytes and checks the cells it keeps, so the cells of unread columns are never checked.
pub enum Text {
    Read(String),
    Mapped(memmap2::Mmap),
}

impl Text {
    /// The bytes, unchecked.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Text::Read(s) => s.as_bytes(),
            Text::Mapped(m) => m,
        }
    }

    /// The text, checked to be UTF-8 (the error names `path`).
    pub fn text(&self, path: &str) -> Result<&str, InputError> {
        match self {
            Text::Read(s) => Ok(s),
            Text::Mapped(m) => std::str::from_utf8(m).map_err(|e| InputError {
                path: display_path(path),
                line: 0,
                message: format!(
                    "cannot read: the file is not UTF-8 (byte {})",
                    e.valid_up_to()
                ),
            }),
        }
    }
}

/// Maps the file at `path` (or reads it as UTF-8: standard input, an empty file, a compressed
/// file, or anything that cannot be mapped).
pub fn map_text(path: &str) -> Result<Text, InputError> {
    let mapped = (path != "-")
        .then(|| std::fs::File::open(path).ok())
        .flatten()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
        // SAFETY: the map is read-only and private to this process; as with any file reader,
        // a file changed while it is read gives undefined contents (ripgrep makes the same
        // trade), which the UTF-8 checks and the parsers treat as bad input.
        .and_then(|f| unsafe { memmap2::Mmap::map(&f) }.ok());
    match mapped {
        Some(m) if m.starts_with(&[0x1f, 0x8b]) || m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) => {
            drop(m);
            read_text(path).map(Text::Read)
        }
        Some(m) => Ok(Text::Mapped(m)),
        None => read_text(path).map(Text::Read),
    }
}

pub fn display_path(path: &str) -> String {
    if path == "-" {
        "<stdin>".into()
    } else {
        path.into()
    }
}

/// Parses all events of `text`, JSON Lines if the first non-blank line starts with `{`, CSV
/// otherwise.
pub fn parse_events(
    path: &str,
    text: &str,
    progress: &mut Progress,
) -> Result<Vec<Event>, InputError> {
    parse_events_with(path, text, &TimeSpec::default(), progress)
}

/// [`parse_events`], with times read as `time` says.
pub fn parse_events_with(
    path: &str,
    text: &str,
    time: &TimeSpec,
    progress: &mut Progress,
) -> Result<Vec<Event>, InputError> {
    let mut all = Vec::new();
    for_each_chunk(path, text, time, None, progress, usize::MAX, |events| {
        all.append(events);
        Ok(())
    })?;
    Ok(all)
}

/// Parses the events of `text` as [`parse_events`] does, handing them to `sink` in chunks of
/// `chunk` events (the last one may be shorter). An error from `sink` stops parsing and comes
/// back as an error about the file.
///
/// With `columns`, events keep only those columns (and the time): cells of other columns are
/// skipped without being typed, checked or stored, as a columnar reader skips unread columns.
pub fn for_each_chunk(
    path: &str,
    text: &str,
    time: &TimeSpec,
    columns: Option<&[String]>,
    progress: &mut Progress,
    chunk: usize,
    sink: impl FnMut(&mut Vec<Event>) -> Result<(), String>,
) -> Result<(), InputError> {
    let mut chunks = Chunks {
        path,
        events: Vec::new(),
        chunk,
        sink,
    };
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    match first {
        None => {}
        Some(l) if l.starts_with('{') => {
            parse_json_lines(path, text, time.unit, columns, progress, &mut chunks)?
        }
        Some(_) => parse_csv(path, text, time, columns, progress, &mut chunks)?,
    }
    chunks.flush()
}

/// Events parsed but not yet handed on.
struct Chunks<'a, F> {
    path: &'a str,
    events: Vec<Event>,
    chunk: usize,
    sink: F,
}

impl<F: FnMut(&mut Vec<Event>) -> Result<(), String>> Chunks<'_, F> {
    fn push(&mut self, event: Event) -> Result<(), InputError> {
        self.events.push(event);
        if self.events.len() >= self.chunk {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), InputError> {
        if !self.events.is_empty() {
            (self.sink)(&mut self.events).map_err(|message| InputError {
                path: display_path(self.path),
                line: 0,
                message,
            })?;
            self.events.clear();
        }
        Ok(())
    }
}

fn parse_json_lines<F: FnMut(&mut Vec<Event>) -> Result<(), String>>(
    path: &str,
    text: &str,
    unit: TimeUnit,
    columns: Option<&[String]>,
    progress: &mut Progress,
    events: &mut Chunks<'_, F>,
) -> Result<(), InputError> {
    let mut count = 0;
    let mut offset = 0;
    for (i, line) in text.lines().enumerate() {
        offset += line.len() + 1;
        if line.trim().is_empty() {
            continue;
        }
        let event = json_event(line, unit, columns).map_err(|message| InputError {
            path: display_path(path),
            line: i + 1,
            message,
        })?;
        events.push(event)?;
        count += 1;
        if count % 65_536 == 0 {
            progress.update("reading", offset, count);
        }
    }
    Ok(())
}

/// One JSON line's event; a `"time"` written as an RFC 3339 timestamp is converted to `unit`.
/// With `columns`, other fields are dropped before they are checked.
fn json_event(line: &str, unit: TimeUnit, columns: Option<&[String]>) -> Result<Event, String> {
    let mut json: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let read = |name: &str| columns.is_none_or(|c| c.iter().any(|c| c == name));
    match json.get_mut("event") {
        Some(serde_json::Value::Object(fields)) => fields.retain(|name, _| read(name)),
        // `[column, value]` pairs; anything else stays, for the event's check to refuse.
        Some(serde_json::Value::Array(pairs)) => pairs.retain(|pair| match pair.get(0) {
            Some(serde_json::Value::String(name)) => read(name),
            _ => true,
        }),
        _ => {}
    }
    if let Some(t) = json.get_mut("time") {
        if let Some(text) = t.as_str() {
            *t = serde_json::Value::from(parse_time(text, unit)?);
        }
    }
    Event::from_json_value(&json)
}

fn parse_csv<F: FnMut(&mut Vec<Event>) -> Result<(), String>>(
    path: &str,
    text: &str,
    time: &TimeSpec,
    columns: Option<&[String]>,
    progress: &mut Progress,
    events: &mut Chunks<'_, F>,
) -> Result<(), InputError> {
    let at = |line: usize, message: String| InputError {
        path: display_path(path),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .byte_headers()
        .map_err(|e| at(1, format!("invalid CSV header: {e}")))?
        .clone();
    let header = CsvHeader::new(headers.iter(), &time.column).map_err(|m| at(1, m))?;
    let mut count = 0;
    let mut record = csv::ByteRecord::new();
    let mut decoder = CsvDecoder::new(&header, time.unit, columns);
    loop {
        let line = reader.position().line() as usize;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(at(line.max(2), format!("invalid CSV: {e}"))),
        }
        let line = record.position().map_or(line, |p| p.line() as usize);
        events.push(decoder.event(record.iter()).map_err(|m| at(line, m))?)?;
        count += 1;
        if count % 65_536 == 0 {
            progress.update(
                "reading",
                record.position().map_or(0, |p| p.byte() as usize),
                count,
            );
        }
    }
    Ok(())
}

/// The columns of a CSV file, from its header.
pub struct CsvHeader {
    pub columns: Vec<String>,
    /// The position of the `time` column.
    pub time: usize,
}

impl CsvHeader {
    /// Reads the header's cells: every column has a UTF-8 name, one of them `time_column`.
    pub fn new<'a>(
        cells: impl Iterator<Item = &'a [u8]>,
        time_column: &str,
    ) -> Result<CsvHeader, String> {
        let mut columns = Vec::new();
        for h in cells {
            let name = std::str::from_utf8(h).map_err(|_| "a column name is not UTF-8")?;
            columns.push(name.trim().to_string());
        }
        let time = columns.iter().position(|c| c == time_column).ok_or_else(|| {
            let hint = if time_column == "time" {
                "; name the time column with --time-column, or is this a JSON Lines file? Its lines must start with `{`"
            } else {
                ""
            };
            format!(
                "the CSV header has no `{time_column}` column (found: {}){hint}",
                columns.join(", ")
            )
        })?;
        Ok(CsvHeader { columns, time })
    }
}

/// Turns CSV records into events: typed cells, one shared `Arc` per column name and per
/// distinct string. Each thread decoding a file has its own, so that no reference count is
/// shared between threads.
pub struct CsvDecoder {
    columns: Vec<Arc<str>>,
    /// Per column, whether events keep it (see [`CsvDecoder::new`]).
    keep: Vec<bool>,
    time: usize,
    unit: TimeUnit,
    strings: Strings,
    /// Per column, the last few distinct strings it held.
    recent: Vec<RecentStrings>,
    fields: Vec<(Arc<str>, Value)>,
}

/// A cell as the CSV reader hands it: bytes still to be checked, or text.
pub trait CellText<'a>: Copy {
    fn text(self) -> Result<&'a str, &'static str>;
    /// The cell's bytes, unchecked.
    fn bytes(self) -> &'a [u8];
}

impl<'a> CellText<'a> for &'a [u8] {
    fn text(self) -> Result<&'a str, &'static str> {
        std::str::from_utf8(self).map_err(|_| "a cell is not UTF-8")
    }

    fn bytes(self) -> &'a [u8] {
        self
    }
}

impl<'a> CellText<'a> for &'a str {
    fn text(self) -> Result<&'a str, &'static str> {
        Ok(self)
    }

    fn bytes(self) -> &'a [u8] {
        self.as_bytes()
    }
}

/// The last few distinct strings a column held: a column mostly repeats a handful of strings
/// (a key's run of lines, a player's states), and a cell whose bytes equal one of them is that
/// string, known valid UTF-8 and typed, with no check, number parse or hash lookup.
#[derive(Clone, Default)]
struct RecentStrings {
    strings: Vec<Str>,
    /// The slot the next new string replaces once all are taken.
    next: usize,
}

impl RecentStrings {
    const SLOTS: usize = 4;

    #[inline]
    fn find(&self, cell: &[u8]) -> Option<&Str> {
        self.strings.iter().find(|s| same_bytes(s.as_bytes(), cell))
    }

    fn remember(&mut self, s: &Str) {
        if self.strings.len() < Self::SLOTS {
            self.strings.push(s.clone());
        } else {
            self.strings[self.next] = s.clone();
            self.next = (self.next + 1) % Self::SLOTS;
        }
    }
}

/// Whether `a` and `b` hold the same bytes. Cells are short (states, ids, suburbs): up to 16
/// bytes they are compared as two words each, loaded so that they overlap, rather than through
/// a call to `memcmp` (which took a twentieth of a one-thread run).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// A time cell of plain decimal digits (the common case), read without a UTF-8 check; `None`
/// for anything else (signs, spaces, timestamps, more digits than a `u64` surely holds), which
/// the general parser then reads. Up to 16 digits (epoch milliseconds have 13) are read eight
/// at a time, without a branch per digit.
#[inline]
pub(crate) fn plain_time(cell: &[u8]) -> Option<u64> {
    match cell.len() {
        1..=8 => eight_digits(cell),
        9..=16 => {
            let (high, low) = cell.split_at(cell.len() - 8);
            Some(eight_digits(high)? * 100_000_000 + eight_digits(low)?)
        }
        17..=19 => cell.iter().try_fold(0u64, |t, &c| {
            let digit = c.wrapping_sub(b'0');
            (digit <= 9).then(|| t * 10 + u64::from(digit))
        }),
        _ => None,
    }
}

/// The value of 1 to 8 ASCII digits, or `None` if a byte is not one: the digits are placed in
/// one word behind leading `'0'`s, checked all at once, then combined in pairs, fours, eights.
#[inline]
fn eight_digits(cell: &[u8]) -> Option<u64> {
    const ZEROS: u64 = u64::from_le_bytes([b'0'; 8]);
    let n = cell.len();
    debug_assert!((1..=8).contains(&n));
    // The cell's bytes, the first lowest: two overlapping 4-byte loads from 4 digits on.
    let word = if n >= 4 {
        let first = u32::from_le_bytes(cell[..4].try_into().expect("4 bytes"));
        let last = u32::from_le_bytes(cell[n - 4..].try_into().expect("4 bytes"));
        u64::from(first) | u64::from(last) << (8 * (n - 4))
    } else {
        cell.iter()
            .enumerate()
            .fold(0, |w, (i, &b)| w | u64::from(b) << (8 * i))
    };
    // Moved up to the word's top, the bytes below filled with '0': eight digits, most
    // significant lowest.
    let pad = 8 * (8 - n) as u32;
    let word = word << pad | ZEROS & u64::MAX.checked_shr(64 - pad).unwrap_or(0);
    // Each byte 0x30-0x39: its high nibble 3, and adding 6 keeps it so.
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    if word & HIGH != ZEROS || (word + 0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    let digits = word & 0x0F0F_0F0F_0F0F_0F0F;
    let pairs = (digits * 10 + (digits >> 8)) & 0x00FF_00FF_00FF_00FF;
    let fours = (pairs * 100 + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((fours * 10_000 + (fours >> 32)) & 0xFFFF_FFFF)
}

impl CsvDecoder {
    /// A decoder for files with `header`, times in `unit`. With `columns`, events keep only
    /// those columns: other cells are skipped untouched (not even checked to be UTF-8).
    pub fn new(header: &CsvHeader, unit: TimeUnit, columns: Option<&[String]>) -> CsvDecoder {
        CsvDecoder {
            columns: header
                .columns
                .iter()
                .map(|c| Arc::from(c.as_str()))
                .collect(),
            keep: header
                .columns
                .iter()
                .map(|c| columns.is_none_or(|keep| keep.contains(c)))
                .collect(),
            time: header.time,
            unit,
            strings: Strings::default(),
            recent: vec![RecentStrings::default(); header.columns.len()],
            fields: Vec::with_capacity(header.columns.len()),
        }
    }

    /// The event of one record (its cells in header order); the error says what is wrong.
    pub fn event<'a, C: CellText<'a>>(
        &mut self,
        cells: impl Iterator<Item = C>,
    ) -> Result<Event, String> {
        let mut scratch = std::mem::take(&mut self.fields);
        scratch.clear();
        let time = self.decode(cells, &mut scratch);
        // Moved into an exact-size vector (a spare slot per column would double what the events
        // hold), without touching a reference count.
        let mut fields = Vec::with_capacity(scratch.len());
        fields.append(&mut scratch);
        self.fields = scratch;
        Ok(Event {
            time: time?,
            fields,
        })
    }

    /// [`CsvDecoder::event`] into `out`, whose field vector is reused: a reader that hands its
    /// events over a chunk at a time decodes each chunk into the last one's, allocating
    /// nothing per event once the chunk is full.
    pub fn event_into<'a, C: CellText<'a>>(
        &mut self,
        cells: impl Iterator<Item = C>,
        out: &mut Event,
    ) -> Result<(), String> {
        out.time = self.decode(cells, &mut out.fields)?;
        Ok(())
    }

    /// Makes `fields` the kept fields of a record; returns its time. Fields already there are
    /// overwritten in place, a column name that is already in its slot left as it is: events
    /// of one file carry their columns in the same order, so decoding into a reused event
    /// usually touches no name's reference count.
    fn decode<'a, C: CellText<'a>>(
        &mut self,
        cells: impl Iterator<Item = C>,
        fields: &mut Vec<(Arc<str>, Value)>,
    ) -> Result<u64, String> {
        let mut kept = 0;
        let mut time = None;
        for (k, cell) in cells.enumerate() {
            if !self.keep[k] && k != self.time {
                continue;
            }
            if k == self.time {
                time = Some(match plain_time(cell.bytes()) {
                    Some(t) => t,
                    None => {
                        let cell = cell.text()?;
                        match cell.trim().parse::<u64>() {
                            Ok(t) => t,
                            Err(_) => parse_time(cell, self.unit)
                                .map_err(|m| format!("column `{}`: {m}", self.columns[k]))?,
                        }
                    }
                });
                continue;
            }
            if cell.bytes().is_empty() {
                continue; // absent
            }
            let value = match self.recent[k].find(cell.bytes()) {
                Some(s) => Some(Value::Str(s.clone())),
                None => {
                    let cell = cell.text()?;
                    match infer_scalar(cell)
                        .map_err(|m| format!("column `{}`: {m}", self.columns[k]))?
                    {
                        Scalar::Absent => None,
                        Scalar::Value(v) => Some(v),
                        Scalar::Str => {
                            let s = self.strings.intern(cell);
                            self.recent[k].remember(&s);
                            Some(Value::Str(s))
                        }
                    }
                }
            };
            if let Some(v) = value {
                let column = &self.columns[k];
                match fields.get_mut(kept) {
                    Some((name, value)) => {
                        if !Arc::ptr_eq(name, column) {
                            *name = column.clone();
                        }
                        *value = v;
                    }
                    None => fields.push((column.clone(), v)),
                }
                kept += 1;
            }
        }
        fields.truncate(kept);
        Ok(time.ok_or("the time cell is missing")?)
    }
}

/// String cells seen so far, shared: session ids and states repeat on every line, and one `Arc`
/// per distinct string keeps memory to what the values are, not how often they occur.
#[derive(Default)]
pub struct Strings {
    seen: timeline::keys::KeyMap<Str, ()>,
}

impl Strings {
    /// Beyond this many distinct strings a column is mostly unique values; sharing stops.
    const MAX: usize = 1 << 20;

    /// The shared string for `cell`.
    pub fn intern(&mut self, cell: &str) -> Str {
        if let Some((s, _)) = self.seen.get_key_value(cell) {
            return s.clone();
        }
        let s = Str::from(cell);
        if self.seen.len() < Self::MAX {
            self.seen.insert(s.clone(), ());
        }
        s
    }
}

/// The value of a CSV cell: empty is absent; then int, float, bool, else string.
#[cfg(test)]
pub fn infer(cell: &str) -> Result<Option<Value>, String> {
    Ok(match infer_scalar(cell)? {
        Scalar::Absent => None,
        Scalar::Value(v) => Some(v),
        Scalar::Str => Some(Value::str(cell)),
    })
}

/// What [`infer`] reads a cell as, without allocating a string.
pub enum Scalar {
    Absent,
    Value(Value),
    /// The cell is a string value.
    Str,
}

pub fn infer_scalar(cell: &str) -> Result<Scalar, String> {
    if cell.is_empty() {
        return Ok(Scalar::Absent);
    }
    if let Ok(i) = cell.parse::<i64>() {
        return Ok(Scalar::Value(Value::Int(i)));
    }
    if let Ok(f) = cell.parse::<f64>() {
        return Value::float(f).map(Scalar::Value);
    }
    if cell.eq_ignore_ascii_case("true") || cell.eq_ignore_ascii_case("false") {
        return Ok(Scalar::Value(Value::Bool(
            cell.eq_ignore_ascii_case("true"),
        )));
    }
    Ok(Scalar::Str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_agrees_with_slice_equality() {
        // Every length up to 20, equal and with each byte changed in turn.
        for n in 0..=20usize {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i).collect();
            assert!(same_bytes(&a, &a.clone()), "{n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!same_bytes(&a, &b), "{n} {i}");
            }
            let mut longer = a.clone();
            longer.push(b'z');
            assert!(!same_bytes(&a, &longer), "{n}");
        }
    }

    #[test]
    fn cells_are_typed() {
        assert_eq!(infer("").unwrap(), None);
        assert!(matches!(infer("42").unwrap(), Some(Value::Int(42))));
        assert!(matches!(infer("-1.5").unwrap(), Some(Value::Float(f)) if f == -1.5));
        assert!(matches!(infer("TRUE").unwrap(), Some(Value::Bool(true))));
        assert!(matches!(infer("CDN1").unwrap(), Some(Value::Str(s)) if &*s == "CDN1"));
        assert!(infer("NaN").unwrap_err().contains("NaN"));
        assert!(infer("inf").is_err());
    }

    #[test]
    fn csv_and_json_lines_give_the_same_events() {
        let mut p = Progress::hidden();
        let csv = "time,a,b\n1,x,\n2,,2.5\n";
        let json = "{\"time\":1,\"event\":{\"a\":\"x\"}}\n\n{\"time\":2,\"event\":{\"b\":2.5}}\n";
        assert_eq!(
            parse_events("f", csv, &mut p).unwrap(),
            parse_events("g", json, &mut p).unwrap()
        );
    }

    /// Cells found among a column's recent strings, and times read as plain digits, decode to
    /// what the general path makes of them: the same events as JSON Lines with the same values.
    #[test]
    fn recent_strings_and_plain_times_decode_like_any_cell() {
        let mut p = Progress::hidden();
        // Six states cycling through four slots, numbers and booleans between them, a time
        // with a sign, one with spaces, and one too long for the fast path.
        let states = ["play", "buffer", "pause", "seek", "stop", "init"];
        let mut csv = String::from("time,s\n");
        let mut json = String::new();
        for i in 0..40u64 {
            let (cell, value) = match i % 9 {
                7 => ("12".to_string(), "12".to_string()),
                8 => ("true".to_string(), "true".to_string()),
                _ => {
                    let s = states[(i as usize * 5) % states.len()];
                    (s.to_string(), format!("\"{s}\""))
                }
            };
            let time = match i {
                3 => "+3".to_string(),
                5 => " 5 ".to_string(),
                _ => i.to_string(),
            };
            csv.push_str(&format!("{time},{cell}\n"));
            json.push_str(&format!("{{\"time\":{i},\"event\":{{\"s\":{value}}}}}\n"));
        }
        csv.push_str("00000000000000000041,play\n");
        json.push_str("{\"time\":41,\"event\":{\"s\":\"play\"}}\n");
        assert_eq!(
            parse_events("f.csv", &csv, &mut p).unwrap(),
            parse_events("f.jsonl", &json, &mut p).unwrap()
        );
        assert_eq!(
            plain_time(b"18446744073709551615"),
            None,
            "20 digits: the general parser"
        );
        assert_eq!(
            plain_time(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(plain_time(b"1a"), None);
    }

    proptest::proptest! {
        /// Plain times read as their definition: a run of 1 to 19 decimal digits, its value;
        /// anything else (a byte beside a digit in the ASCII table, a sign, a space, 20 digits)
        /// is left to the general parser.
        #[test]
        fn plain_times_are_their_definition(
            cell in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => b'0'..=b'9',
                    1 => proptest::sample::select(vec![b'/', b':', b' ', b'+', b'-', b'.', 0u8, 0xb9, b'@', b'?']),
                ],
                0..22,
            )
        ) {
            let definition = (1..=19).contains(&cell.len()) && cell.iter().all(u8::is_ascii_digit);
            let definition = definition.then(|| {
                cell.iter().fold(0u64, |t, &c| t * 10 + u64::from(c - b'0'))
            });
            proptest::prop_assert_eq!(plain_time(&cell), definition);
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let mut p = Progress::hidden();
        let err = parse_events("e.csv", "time,a\n1,x\nsoon,y\n", &mut p).unwrap_err();
        assert_eq!((err.path.as_str(), err.line), ("e.csv", 3));
        let err = parse_events("e.csv", "t,a\n1,x\n", &mut p).unwrap_err();
        assert!(err.message.contains("no `time` column"), "{err}");
        let err = parse_events("e.csv", "time,a\n1,x,extra\n", &mut p).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let err = parse_events(
            "e.jsonl",
            "{\"time\":1,\"event\":{}}\n{\"time\":2}\n",
            &mut p,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "e.jsonl:2: the event has no \"event\" field"
        );
    }
}
