//! The packed wire format: a batch of events, or of key deltas, as one string.
//!
//! Workers pass each other batches of thousands of events and deltas. Sent as typed WIT values,
//! every column, value and change point becomes a node that both sides (and Golem's oplog)
//! build, copy and free one by one; sent packed, a batch is one string. The format is plain text
//! so that it travels as a WIT `string` and reads in an oplog:
//!
//! ```text
//! events  := "e1" (" " event)*
//! event   := time " " count (" " name " " value){count}
//! deltas  := "d1" (" " delta)*
//! delta   := key " " origin " " max-time " " change
//! key     := "-" | value
//! change  := "-" | from " " count (" " time " " state){count}
//! state   := "u" | "v" value | "d" int | "g" int        (unknown, a value, a duration
//!                                                          holding still, one growing)
//! value   := "s" name | "i" int | "f" float | "b0" | "b1"
//! name    := byte-length ":" bytes                       (no escaping: the length says)
//! ```
//!
//! Times and counts are decimal `u64`s, ints decimal `i64`s, floats Rust's shortest round-trip
//! form (`0.1`, `1e300`); NaN and infinities are refused, as everywhere else. A batch past the
//! limits of [`crate::limits`] (bytes, events, columns per event, string length) is refused.
//!
//! ```
//! use timeline::{wire, Event};
//! let events = vec![Event::new(5, [("cdn", "CDN 1".into()), ("bytes", 7.into())])];
//! let text = wire::encode_events(&events);
//! assert_eq!(text, "e1 5 2 3:cdn s5:CDN 1 5:bytes i7");
//! assert_eq!(wire::decode_events(&text).unwrap(), events);
//! ```

use crate::limits::{MAX_BATCH_EVENTS, MAX_EVENT_COLUMNS, MAX_PACKED_BYTES, MAX_STRING_BYTES};
use crate::value::{State, Str, Value};
use crate::{Delta, Event, KeyDelta};
use std::fmt;
use std::sync::Arc;

const EVENTS: &str = "e1";
/// How many distinct column names a batch's decoder shares.
const SHARED_COLUMNS: usize = 64;
const DELTAS: &str = "d1";

/// A packed batch that does not follow the format: where, and what was expected.
#[derive(Clone, Debug, PartialEq)]
pub struct WireError {
    /// The byte offset in the batch.
    pub at: usize,
    pub message: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "packed batch, byte {}: {}", self.at, self.message)
    }
}

impl std::error::Error for WireError {}

/// Packs events.
pub fn encode_events(events: &[Event]) -> String {
    let mut w = EventWriter::new();
    for e in events {
        w.push(e.time, e.fields.iter().map(|(c, v)| (&**c, v)));
    }
    w.finish()
}

/// Packs events one at a time, e.g. each reduced to the columns its reader needs, from values
/// or from fields still packed.
pub struct EventWriter {
    out: String,
}

impl Default for EventWriter {
    fn default() -> Self {
        EventWriter::new()
    }
}

impl EventWriter {
    pub fn new() -> EventWriter {
        EventWriter {
            out: EVENTS.to_string(),
        }
    }

    /// Appends an event at `time` carrying `fields`.
    pub fn push<'a>(
        &mut self,
        time: u64,
        fields: impl IntoIterator<Item = (&'a str, &'a Value)> + Clone,
    ) {
        self.event_head(time, fields.clone().into_iter().count());
        for (column, value) in fields {
            self.out.push(' ');
            name(&mut self.out, column);
            self.out.push(' ');
            value_to(&mut self.out, value);
        }
    }

    /// Appends an event at `time` carrying fields that are already packed (found by
    /// [`scan_events`]), their text copied as it is.
    pub fn push_packed<'a, 'b: 'a>(
        &mut self,
        time: u64,
        fields: impl IntoIterator<Item = &'a PackedField<'b>> + Clone,
    ) {
        self.event_head(time, fields.clone().into_iter().count());
        for f in fields {
            self.out.push(' ');
            self.out.push_str(f.text);
        }
    }

    /// An event's time and field count, its fields to follow.
    fn event_head(&mut self, time: u64, count: usize) {
        self.out.push(' ');
        uint(&mut self.out, time);
        self.out.push(' ');
        uint(&mut self.out, count as u64);
    }

    /// Whether no event has been pushed.
    pub fn is_empty(&self) -> bool {
        self.out.len() == EVENTS.len()
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Packs key deltas.
pub fn encode_key_deltas(deltas: &[KeyDelta]) -> String {
    let mut out = DELTAS.to_string();
    for d in deltas {
        out.push(' ');
        match &d.key {
            None => out.push('-'),
            Some(v) => value_to(&mut out, v),
        }
        out.push(' ');
        uint(&mut out, d.origin);
        out.push(' ');
        uint(&mut out, d.max_time);
        out.push(' ');
        match &d.change {
            None => out.push('-'),
            Some(c) => {
                uint(&mut out, c.from);
                out.push(' ');
                uint(&mut out, c.points.len() as u64);
                for (t, s) in &c.points {
                    out.push(' ');
                    uint(&mut out, *t);
                    out.push(' ');
                    state_to(&mut out, s);
                }
            }
        }
    }
    out
}

/// Writes `n` in decimal (`write!` costs several times more, and batches are mostly numbers).
fn uint(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

fn int(out: &mut String, i: i64) {
    if i < 0 {
        out.push('-');
    }
    uint(out, i.unsigned_abs());
}

fn name(out: &mut String, s: &str) {
    uint(out, s.len() as u64);
    out.push(':');
    out.push_str(s);
}

fn value_to(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => {
            out.push('s');
            name(out, s);
        }
        Value::Int(i) => {
            out.push('i');
            int(out, *i);
        }
        Value::Float(f) => {
            out.push('f');
            let _ = fmt::Write::write_fmt(out, format_args!("{f:?}"));
        }
        Value::Bool(b) => out.push_str(if *b { "b1" } else { "b0" }),
    }
}

fn state_to(out: &mut String, s: &State) {
    match s {
        State::Unknown => out.push('u'),
        State::Value(v) => {
            out.push('v');
            value_to(out, v);
        }
        State::Duration(d) => {
            out.push('d');
            int(out, *d);
        }
        State::Growing(d) => {
            out.push('g');
            int(out, *d);
        }
    }
}

/// Unpacks events packed by [`encode_events`] or [`EventWriter`].
pub fn decode_events(text: &str) -> Result<Vec<Event>, WireError> {
    read_events(
        text,
        |r| {
            let column = r.column()?;
            r.space()?;
            Ok((column, r.value()?))
        },
        |time, fields| Event { time, fields },
    )
}

/// The events of a packed batch, each field read by `field` (the reader at the field's start),
/// each event made by `event`: the frame and limits shared by decoding and scanning.
fn read_events<'a, F, E>(
    text: &'a str,
    mut field: impl FnMut(&mut Reader<'a>) -> Result<F, WireError>,
    event: impl Fn(u64, Vec<F>) -> E,
) -> Result<Vec<E>, WireError> {
    let mut r = Reader::new(text, EVENTS, "events")?;
    let mut events = Vec::new();
    while r.more()? {
        let (time, count) = r.event_start(events.len())?;
        let mut fields = Vec::with_capacity(count.min(64) as usize);
        for _ in 0..count {
            r.space()?;
            fields.push(field(&mut r)?);
        }
        events.push(event(time, fields));
    }
    Ok(events)
}

/// One event of a packed batch with its fields left packed, as [`scan_events`] finds it.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedEvent<'a> {
    pub time: u64,
    pub fields: Vec<PackedField<'a>>,
}

/// One field of a [`PackedEvent`]: its column name and its text in the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PackedField<'a> {
    pub column: &'a str,
    /// The field as packed (`name value`), to be copied into another batch as it is.
    pub text: &'a str,
    /// Where the value starts in `text`.
    value_at: usize,
}

impl<'a> PackedField<'a> {
    /// The value's text (`s3:abc`, `i5`, …).
    pub fn value_text(&self) -> &'a str {
        &self.text[self.value_at..]
    }

    /// The value, decoded (it was checked when the batch was scanned).
    pub fn value(&self) -> Value {
        let mut r = Reader {
            text: self.text,
            at: self.value_at,
            columns: Vec::new(),
            strings: RecentStrings::for_batch(""),
        };
        r.value_with(false).expect("scanned values decode")
    }
}

/// Checks a packed batch of events as [`decode_events`] does, with the same errors, but leaves
/// every field packed: a sender that forwards fields to other workers copies their text instead
/// of decoding and encoding them again, and builds no value it does not read.
pub fn scan_events(text: &str) -> Result<Vec<PackedEvent<'_>>, WireError> {
    read_events(
        text,
        |r| {
            let start = r.at;
            let column = r.bytes()?;
            r.space()?;
            let value_at = r.at - start;
            r.skip_value()?;
            Ok(PackedField {
                column,
                text: &text[start..r.at],
                value_at,
            })
        },
        |time, fields| PackedEvent { time, fields },
    )
}

/// Unpacks key deltas packed by [`encode_key_deltas`].
pub fn decode_key_deltas(text: &str) -> Result<Vec<KeyDelta>, WireError> {
    let mut r = Reader::new(text, DELTAS, "key deltas")?;
    let mut deltas = Vec::new();
    while r.more()? {
        let key = if r.eat(b'-') { None } else { Some(r.value()?) };
        r.space()?;
        let origin = r.u64("an origin")?;
        r.space()?;
        let max_time = r.u64("a latest time")?;
        r.space()?;
        let change = if r.eat(b'-') {
            None
        } else {
            let from = r.u64("a change's start")?;
            r.space()?;
            let count = r.u64("a point count")?;
            let mut points = Vec::with_capacity(count.min(1024) as usize);
            for _ in 0..count {
                r.space()?;
                let t = r.u64("a point's time")?;
                r.space()?;
                points.push((t, r.state()?));
            }
            Some(Delta { from, points })
        };
        deltas.push(KeyDelta {
            key,
            origin,
            max_time,
            change,
        });
    }
    Ok(deltas)
}

/// A cursor over a packed batch. Column names and string values repeat across a batch, so each
/// is shared rather than allocated again whenever it can be.
struct Reader<'a> {
    text: &'a str,
    at: usize,
    columns: Vec<Arc<str>>,
    strings: RecentStrings<'a>,
}

/// The strings decoded lately, each in a slot chosen by a hash of its bytes, holding the last
/// string that hashed there. A lookup costs one hash and one comparison whatever the input (a
/// hash map would let a batch of colliding strings cost quadratic time), and a batch's keys and
/// values are few enough that most repeats find their slot still holding them.
struct RecentStrings<'a> {
    slots: Vec<Option<(&'a str, Str)>>,
    /// How many slots a batch of this size gets: a power of two, up to [`Self::MAX_SLOTS`], and
    /// no more than a few per string the batch can hold, so that a small batch (one event over
    /// HTTP, a delta or two between workers) does not clear a large table.
    size: usize,
}

impl<'a> RecentStrings<'a> {
    const MAX_SLOTS: usize = 4096;

    fn for_batch(text: &str) -> RecentStrings<'a> {
        RecentStrings {
            slots: Vec::new(),
            size: (text.len() / 8)
                .next_power_of_two()
                .clamp(16, Self::MAX_SLOTS),
        }
    }

    fn get(&mut self, s: &'a str) -> Str {
        if self.slots.is_empty() {
            self.slots.resize(self.size, None);
        }
        // FxHash-style over 8-byte words: cheap on wasm32, where 128-bit multiplies are calls.
        let mut h = s.len() as u64;
        for word in s.as_bytes().chunks(8) {
            let mut w = [0u8; 8];
            w[..word.len()].copy_from_slice(word);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        // The top bits of the hash, as many as the table has slots.
        let slot = &mut self.slots[(h >> (64 - self.size.trailing_zeros())) as usize];
        match slot {
            Some((text, shared)) if *text == s => shared.clone(),
            _ => {
                let shared = Str::from(s);
                *slot = Some((s, shared.clone()));
                shared
            }
        }
    }
}

impl<'a> Reader<'a> {
    fn new(text: &'a str, header: &str, what: &str) -> Result<Reader<'a>, WireError> {
        if text.len() > MAX_PACKED_BYTES {
            return Err(WireError {
                at: 0,
                message: format!(
                    "the batch is {} bytes; the limit is {MAX_PACKED_BYTES}: split it",
                    text.len()
                ),
            });
        }
        let mut r = Reader {
            text,
            at: 0,
            columns: Vec::new(),
            strings: RecentStrings::for_batch(text),
        };
        if !text.starts_with(header) {
            return Err(r.error(format!("expected packed {what}, starting with `{header}`")));
        }
        r.at = header.len();
        Ok(r)
    }

    /// An event's time and field count, after `so_far` events (both within the limits).
    fn event_start(&mut self, so_far: usize) -> Result<(u64, u64), WireError> {
        if so_far == MAX_BATCH_EVENTS {
            return Err(self.error(format!(
                "the batch has more than {MAX_BATCH_EVENTS} events (the limit): split it"
            )));
        }
        let time = self.u64("an event time")?;
        self.space()?;
        let count = self.u64_at_most("a field count", MAX_EVENT_COLUMNS, |count| {
            format!("an event of {count} columns; the limit is {MAX_EVENT_COLUMNS}")
        })?;
        Ok((time, count))
    }

    fn error(&self, message: String) -> WireError {
        WireError {
            at: self.at,
            message,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.at += 1;
        }
        found
    }

    /// Whether another item follows (after its separating space).
    fn more(&mut self) -> Result<bool, WireError> {
        if self.at == self.text.len() {
            return Ok(false);
        }
        self.space()?;
        Ok(true)
    }

    fn space(&mut self) -> Result<(), WireError> {
        if self.eat(b' ') {
            Ok(())
        } else {
            Err(self.error(match self.peek() {
                None => "the batch ends in the middle of an item".into(),
                Some(_) => "expected a space".into(),
            }))
        }
    }

    /// Decimal digits, as a number (`None`: no digit, or more than a `u64` holds).
    fn digits(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        // Below this, one more digit cannot overflow. Checked arithmetic only past it: on
        // wasm32 an overflow-checked u64 multiplication is a call to a 128-bit multiply
        // (`__multi3`), which was a twentieth of the components' time.
        const SAFE: u64 = (u64::MAX - 9) / 10;
        let mut n: u64 = 0;
        while let Some(d) = bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
            let d = u64::from(d - b'0');
            n = if n <= SAFE {
                n * 10 + d
            } else {
                n.checked_mul(10)?.checked_add(d)?
            };
            self.at += 1;
        }
        (self.at > start).then_some(n)
    }

    /// A number no greater than `limit`; a greater one is refused with `refusal` of it, at
    /// its start.
    fn u64_at_most(
        &mut self,
        what: &str,
        limit: usize,
        refusal: impl FnOnce(u64) -> String,
    ) -> Result<u64, WireError> {
        let at = self.at;
        let n = self.u64(what)?;
        if n > limit as u64 {
            return Err(WireError {
                at,
                message: refusal(n),
            });
        }
        Ok(n)
    }

    fn u64(&mut self, what: &str) -> Result<u64, WireError> {
        let start = self.at;
        self.digits().ok_or_else(|| WireError {
            at: start,
            message: format!("expected {what} (a number from 0 to {})", u64::MAX),
        })
    }

    fn i64(&mut self) -> Result<i64, WireError> {
        let start = self.at;
        let negative = self.eat(b'-');
        let magnitude = self.digits();
        let value = magnitude.and_then(|m| {
            if negative {
                0i64.checked_sub_unsigned(m)
            } else {
                i64::try_from(m).ok()
            }
        });
        value.ok_or_else(|| WireError {
            at: start,
            message: "expected an integer".into(),
        })
    }

    /// A length-prefixed string.
    fn bytes(&mut self) -> Result<&'a str, WireError> {
        let len = self.u64_at_most("a string's length in bytes", MAX_STRING_BYTES, |len| {
            format!("a string of {len} bytes; the limit is {MAX_STRING_BYTES}")
        })?;
        if !self.eat(b':') {
            return Err(self.error("expected `:` after a string's length".into()));
        }
        let start = self.at;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len));
        match end.and_then(|end| self.text.get(start..end)) {
            Some(s) => {
                self.at += s.len();
                Ok(s)
            }
            None => Err(self.error(format!(
                "a string of {len} bytes does not fit in the batch here (or splits a character)"
            ))),
        }
    }

    fn column(&mut self) -> Result<Arc<str>, WireError> {
        let name = self.bytes()?;
        if let Some(c) = self.columns.iter().find(|c| ***c == *name) {
            return Ok(c.clone());
        }
        let c: Arc<str> = Arc::from(name);
        // A batch names few columns; past that many, sharing is not worth a longer search (and
        // a batch of distinct names must not make every lookup scan all of them).
        if self.columns.len() < SHARED_COLUMNS {
            self.columns.push(c.clone());
        }
        Ok(c)
    }

    fn value(&mut self) -> Result<Value, WireError> {
        self.value_with(true)
    }

    /// Checks a value and moves past it, building nothing for a string.
    fn skip_value(&mut self) -> Result<(), WireError> {
        if self.eat(b's') {
            self.bytes().map(|_| ())
        } else {
            self.value_with(false).map(|_| ())
        }
    }

    /// A value; a string is shared with earlier equal ones when `share` is set.
    fn value_with(&mut self, share: bool) -> Result<Value, WireError> {
        let start = self.at;
        match self.peek() {
            Some(b's') => {
                self.at += 1;
                let s = self.bytes()?;
                Ok(Value::Str(if share {
                    self.strings.get(s)
                } else {
                    Str::from(s)
                }))
            }
            Some(b'i') => {
                self.at += 1;
                Ok(Value::Int(self.i64()?))
            }
            Some(b'f') => {
                self.at += 1;
                let bytes = self.text.as_bytes();
                let begin = self.at;
                while self.at < bytes.len() && bytes[self.at] != b' ' {
                    self.at += 1;
                }
                let f: f64 = self.text[begin..self.at].parse().map_err(|_| WireError {
                    at: begin,
                    message: "expected a float".into(),
                })?;
                Value::float(f).map_err(|message| WireError { at: begin, message })
            }
            Some(b'b') => {
                self.at += 1;
                match self.peek() {
                    Some(b'0') => {
                        self.at += 1;
                        Ok(Value::Bool(false))
                    }
                    Some(b'1') => {
                        self.at += 1;
                        Ok(Value::Bool(true))
                    }
                    _ => Err(self.error("expected `0` or `1` after `b`".into())),
                }
            }
            _ => Err(WireError {
                at: start,
                message: "expected a value: `s` (string), `i` (int), `f` (float) or `b` (bool)"
                    .into(),
            }),
        }
    }

    fn state(&mut self) -> Result<State, WireError> {
        match self.peek() {
            Some(b'u') => {
                self.at += 1;
                Ok(State::Unknown)
            }
            Some(b'v') => {
                self.at += 1;
                Ok(State::Value(self.value()?))
            }
            Some(b'd') => {
                self.at += 1;
                Ok(State::Duration(self.i64()?))
            }
            Some(b'g') => {
                self.at += 1;
                Ok(State::Growing(self.i64()?))
            }
            _ => Err(self.error(
                "expected a state: `u` (unknown), `v` (a value), `d` or `g` (a duration)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".{0,6}".prop_map(|s: String| Value::str(&s)),
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
        ]
    }

    fn state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::Unknown),
            value().prop_map(State::Value),
            any::<i64>().prop_map(State::Duration),
            any::<i64>().prop_map(State::Growing),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        (
            any::<u64>(),
            prop::collection::vec(("[a-c :]{0,3}|.{0,4}", value()), 0..4),
        )
            .prop_map(|(time, fields)| Event {
                time,
                fields: fields
                    .into_iter()
                    .map(|(c, v)| (Arc::from(c.as_str()), v))
                    .collect(),
            })
    }

    fn key_delta() -> impl Strategy<Value = KeyDelta> {
        (
            prop::option::of(value()),
            any::<u64>(),
            any::<u64>(),
            prop::option::of((
                any::<u64>(),
                prop::collection::vec((any::<u64>(), state()), 0..5),
            )),
        )
            .prop_map(|(key, origin, max_time, change)| KeyDelta {
                key,
                origin,
                max_time,
                change: change.map(|(from, points)| Delta { from, points }),
            })
    }

    /// Values compare by identity here: `Int(5)` must not come back as `Float(5.0)`, nor a
    /// float lose a bit.
    fn same_event(a: &Event, b: &Event) -> bool {
        a.time == b.time
            && a.fields.len() == b.fields.len()
            && a.fields
                .iter()
                .zip(&b.fields)
                .all(|((ca, va), (cb, vb))| ca == cb && identical(va, vb))
    }

    fn identical(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::Str(x), Value::Str(y)) => **x == **y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            _ => false,
        }
    }

    fn identical_state(a: &State, b: &State) -> bool {
        match (a, b) {
            (State::Value(x), State::Value(y)) => identical(x, y),
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn events_round_trip(events in prop::collection::vec(event(), 0..6)) {
            let text = encode_events(&events);
            let back = decode_events(&text).unwrap();
            prop_assert_eq!(back.len(), events.len());
            for (a, b) in events.iter().zip(&back) {
                prop_assert!(same_event(a, b), "{:?} came back as {:?}", a, b);
            }
        }

        #[test]
        fn key_deltas_round_trip(deltas in prop::collection::vec(key_delta(), 0..6)) {
            let text = encode_key_deltas(&deltas);
            let back = decode_key_deltas(&text).unwrap();
            prop_assert_eq!(back.len(), deltas.len());
            for (a, b) in deltas.iter().zip(&back) {
                prop_assert_eq!((a.origin, a.max_time), (b.origin, b.max_time));
                prop_assert_eq!(a.key.is_some(), b.key.is_some());
                if let (Some(x), Some(y)) = (&a.key, &b.key) {
                    prop_assert!(identical(x, y));
                }
                let (ca, cb) = (a.change.as_ref(), b.change.as_ref());
                prop_assert_eq!(ca.map(|c| (c.from, c.points.len())), cb.map(|c| (c.from, c.points.len())));
                if let (Some(ca), Some(cb)) = (ca, cb) {
                    for ((ta, sa), (tb, sb)) in ca.points.iter().zip(&cb.points) {
                        prop_assert_eq!(ta, tb);
                        prop_assert!(identical_state(sa, sb), "{:?} came back as {:?}", sa, sb);
                    }
                }
            }
        }

        /// Whatever arrives, decoding answers with events or an error: it never panics.
        #[test]
        fn any_text_decodes_or_fails_cleanly(text in "(e1|d1)[ -~]{0,40}") {
            let _ = decode_events(&text);
            let _ = decode_key_deltas(&text);
        }

        /// A cut batch is refused or reads as a prefix of the batch; it never panics.
        #[test]
        fn truncated_batches_fail_cleanly(events in prop::collection::vec(event(), 1..4), cut in 0.0..1.0f64) {
            let text = encode_events(&events);
            let mut at = (text.len() as f64 * cut) as usize;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            // A cut inside the last number may still read as a (different) number; every
            // item before it must come back whole.
            if let Ok(back) = decode_events(&text[..at]) {
                prop_assert!(back.len() <= events.len());
                let whole = back.len().saturating_sub(1);
                for (a, b) in events.iter().zip(&back[..whole]) {
                    prop_assert!(same_event(a, b), "{:?} came back as {:?}", a, b);
                }
            }
        }
    }

    #[test]
    fn strings_carry_spaces_colons_and_unicode_unescaped() {
        let events = vec![Event::new(
            1,
            [("a b", Value::str("x: y")), ("", Value::str("é ü 雪"))],
        )];
        let text = encode_events(&events);
        assert_eq!(text, "e1 1 2 3:a b s4:x: y 0: s9:é ü 雪");
        assert_eq!(decode_events(&text).unwrap(), events);
    }

    #[test]
    fn decoding_shares_repeated_columns_and_strings() {
        let events = vec![
            Event::new(1, [("cdn", Value::str("CDN1"))]),
            Event::new(2, [("cdn", Value::str("CDN1"))]),
        ];
        let back = decode_events(&encode_events(&events)).unwrap();
        assert!(Arc::ptr_eq(&back[0].fields[0].0, &back[1].fields[0].0));
        match (&back[0].fields[0].1, &back[1].fields[0].1) {
            (Value::Str(a), Value::Str(b)) => assert!(Str::ptr_eq(a, b)),
            other => panic!("expected strings, got {other:?}"),
        }
    }

    #[test]
    fn bad_batches_say_where_and_what() {
        let cases = [
            ("", 0, "starting with `e1`"),
            ("d1 - 1 2 -", 0, "starting with `e1`"),
            ("e1 5", 4, "in the middle of an item"),
            ("e1 x 1", 3, "an event time"),
            ("e1 5 1 3:cdn q", 13, "expected a value"),
            ("e1 5 1 9:cdn s1:x", 9, "does not fit"),
            ("e1 5 1 3:cdn fNaN", 14, "not a finite number"),
            ("e1 5 1 3:cdn finf", 14, "not a finite number"),
            ("e1 5 1 3:cdn b2", 14, "`0` or `1`"),
            ("e1 5 0  ", 7, "expected an event time"),
            ("e1 5 0x", 6, "expected a space"),
            ("e1 18446744073709551616 0", 3, "an event time"),
            ("e1 18446744073709551620 0", 3, "an event time"),
            ("e1 99999999999999999999 0", 3, "an event time"),
            ("e1 184467440737095516150 0", 3, "an event time"),
            ("e1 5 1 1:é s0:", 9, "splits a character"),
            ("e1 5 1 1:a i-", 12, "expected an integer"),
            ("e1 5 1 1:a i--5", 12, "expected an integer"),
            ("e1 5 1 1:a i9223372036854775808", 12, "expected an integer"),
            ("e1 5 1 1:a i5-3", 13, "expected a space"),
            ("e1 -5 0", 3, "an event time"),
        ];
        for (text, at, message) in cases {
            let e = decode_events(text).unwrap_err();
            assert!(
                e.at == at && e.message.contains(message),
                "{text:?}: got {e}, expected byte {at}: …{message}…"
            );
        }
        // The largest time there is, its last digit read past the unchecked range.
        let at_max = decode_events("e1 18446744073709551615 0").expect("u64::MAX is a time");
        assert_eq!(at_max[0].time, u64::MAX);
        let e = decode_key_deltas("d1 - 1 2 3 1 4 x").unwrap_err();
        assert_eq!(e.at, 15);
        assert!(e.to_string().contains("expected a state"), "{e}");
    }
}
