//! Deterministic generators of realistic event streams (seeded; the same seed gives the same
//! stream on every machine), one per problem statement: video-player sessions, card swipes,
//! machine telemetry and mobile-game sessions.
//!
//! Every key's events have strictly increasing times and carry the key plus one or two other
//! columns, so that the engine (which merges events at the same instant) and the SQL peer (which
//! sees rows) read exactly the same thing.

use std::io::Write;
use std::sync::Arc;
use timeline::value::Str;
use timeline::{Event, Value};

/// The streams' version, in the names of the files written: bump it when what is generated
/// changes (v2: the record columns).
pub const VERSION: &str = "v2";

/// The most columns besides `time` and the key that a workload has.
pub const MAX_COLUMNS: usize = 5;

/// A cell of a generated row: empty (the column is absent from the event), a string or an int.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    Empty,
    Str(&'static str),
    Int(i64),
}

/// One event of one key: its time and a cell per column of its workload.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub time: u64,
    pub cells: [Cell; MAX_COLUMNS],
}

impl Row {
    /// A row with `cell` in column `column` and nothing else.
    fn one(time: u64, column: usize, cell: Cell) -> Row {
        let mut cells = [Cell::Empty; MAX_COLUMNS];
        cells[column] = cell;
        Row { time, cells }
    }
}

/// xorshift64*: small, fast, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`, uniformly.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// What a generator is: the events of one key, `n` of them.
pub type Generator = fn(&mut Rng, usize) -> Vec<Row>;

// Player columns: playerStateChange, cdnChange, userAction, ad, heartbeat.
const PSC: usize = 0;
const CDN: usize = 1;
const USER_ACTION: usize = 2;
const AD: usize = 3;
const HEARTBEAT: usize = 4;

/// How a player session is paced and what its events are: gaps are `(base, spread)`, a base
/// plus a random part below the spread (none for 0); `choose` picks an event's column and cell
/// from the player's state and a roll below `rolls`.
struct Pace {
    start_spread: u64,
    cdn_gap: (u64, u64),
    step: (u64, u64),
    rolls: u64,
    seek_gap: (u64, u64),
    stop_gap: (u64, u64),
    choose: fn(&'static str, u64, &mut Rng) -> (usize, Cell),
}

impl Rng {
    /// A gap of `(base, spread)` (see [`Pace`]).
    fn gap(&mut self, (base, spread): (u64, u64)) -> u64 {
        base + if spread > 0 { self.below(spread) } else { 0 }
    }
}

/// A player session of `n` events paced by `pace`: init, a CDN, then events as `pace.choose`
/// picks them, a seek followed by buffering; it ends with `stop`.
fn paced_session(rng: &mut Rng, n: usize, pace: &Pace) -> Vec<Row> {
    let mut out = Vec::with_capacity(n);
    let mut t = rng.below(pace.start_spread);
    let mut state = "init";
    out.push(Row::one(t, PSC, Cell::Str("init")));
    t += rng.gap(pace.cdn_gap);
    out.push(Row::one(t, CDN, Cell::Str(rng.pick(&["CDN1", "CDN2"]))));
    while out.len() + 1 < n {
        t += rng.gap(pace.step);
        let roll = rng.below(pace.rolls);
        let (column, cell) = (pace.choose)(state, roll, rng);
        if let (PSC, Cell::Str(s)) = (column, cell) {
            state = s;
        }
        out.push(Row::one(t, column, cell));
        if column == USER_ACTION && out.len() + 1 < n {
            // A seek is followed by buffering.
            t += rng.gap(pace.seek_gap);
            out.push(Row::one(t, PSC, Cell::Str("buffer")));
            state = "buffer";
        }
    }
    out.push(Row::one(t + rng.gap(pace.stop_gap), PSC, Cell::Str("stop")));
    out
}

/// A video-player session of `n` events: init, then play ↔ buffer/pause, seeks followed by
/// buffering, CDN switches, ads, heartbeats that change nothing; it ends with `stop`.
pub fn player_session(rng: &mut Rng, n: usize) -> Vec<Row> {
    let pace = Pace {
        start_spread: 1_000,
        cdn_gap: (1, 0),
        step: (1, 4),
        rolls: 100,
        seek_gap: (1, 0),
        stop_gap: (1, 3),
        choose: |state, roll, rng| match (state, roll) {
            ("init", _) => (PSC, Cell::Str("play")),
            (_, 0..=39) => (HEARTBEAT, Cell::Int(1)),
            ("play", 40..=54) => (PSC, Cell::Str("buffer")),
            ("play", 55..=62) => (PSC, Cell::Str("pause")),
            ("play", 63..=70) => (USER_ACTION, Cell::Str("seek")),
            ("buffer" | "pause", 40..=84) => (PSC, Cell::Str("play")),
            (_, 85..=90) => (CDN, Cell::Str(rng.pick(&["CDN1", "CDN2"]))),
            (_, 91..=94) => (
                AD,
                Cell::Str(if roll % 2 == 0 { "playing" } else { "done" }),
            ),
            _ => (HEARTBEAT, Cell::Int(1)),
        },
    };
    paced_session(rng, n, &pace)
}

/// A video-player session as a live player reports it (`n` events): times in milliseconds, a
/// heartbeat about every second, and a state change, seek, CDN switch or ad in one event of
/// eight; the same states and rules as [`player_session`].
pub fn player_live_session(rng: &mut Rng, n: usize) -> Vec<Row> {
    let pace = Pace {
        start_spread: 1_000_000,
        cdn_gap: (1, 500),
        step: (500, 1_000),
        rolls: 800,
        seek_gap: (1, 300),
        stop_gap: (1, 3_000),
        choose: |state, roll, rng| match (state, roll) {
            ("init", _) => (PSC, Cell::Str("play")),
            ("play", 0..=29) => (PSC, Cell::Str("buffer")),
            ("play", 30..=44) => (PSC, Cell::Str("pause")),
            ("play", 45..=59) => (USER_ACTION, Cell::Str("seek")),
            ("buffer" | "pause", 0..=59) => (PSC, Cell::Str("play")),
            (_, 60..=79) => (CDN, Cell::Str(rng.pick(&["CDN1", "CDN2"]))),
            (_, 80..=99) => (
                AD,
                Cell::Str(if roll % 2 == 0 { "playing" } else { "done" }),
            ),
            _ => (HEARTBEAT, Cell::Int(1)),
        },
    };
    paced_session(rng, n, &pace)
}

const SUBURBS: [&str; 12] = [
    "Newtown",
    "Bondi",
    "Manly",
    "Parramatta",
    "Chatswood",
    "Glebe",
    "Surry Hills",
    "Penrith",
    "Cronulla",
    "Mosman",
    "Ryde",
    "Liverpool",
];

/// A card's swipes (columns suburb, amount): mostly in its home suburb, now and then elsewhere,
/// minutes to about an hour apart, so that two suburbs within 10 minutes happens but is rare.
pub fn card_swipes(rng: &mut Rng, n: usize) -> Vec<Row> {
    let home = rng.pick(&SUBURBS);
    let mut t = rng.below(3_600);
    (0..n)
        .map(|_| {
            t += 30 + rng.below(3_000);
            let suburb = if rng.chance(85) {
                home
            } else {
                rng.pick(&SUBURBS)
            };
            let mut cells = [Cell::Empty; MAX_COLUMNS];
            cells[0] = Cell::Str(suburb);
            cells[1] = Cell::Int(1 + rng.below(400) as i64);
            Row { time: t, cells }
        })
        .collect()
}

/// A machine's telemetry (columns temperature, status): a reading every few seconds, the
/// temperature a random walk that now and then runs hot, status reports, and for half of the
/// machines a failure somewhere in the second half of the stream (readings go on after it).
pub fn machine_telemetry(rng: &mut Rng, n: usize) -> Vec<Row> {
    let fails_at = rng
        .chance(50)
        .then(|| n / 2 + rng.below(n as u64 / 2 + 1) as usize);
    let mut t = rng.below(600);
    let mut temperature: i64 = 70 + rng.below(10) as i64;
    (0..n)
        .map(|i| {
            t += 1 + rng.below(10);
            if Some(i) == fails_at {
                return Row::one(t, 1, Cell::Str("failed"));
            }
            if rng.chance(5) {
                return Row::one(t, 1, Cell::Str(rng.pick(&["ok", "ok", "maintenance"])));
            }
            temperature = (temperature + rng.below(7) as i64 - 3).clamp(55, 110);
            Row::one(t, 0, Cell::Int(temperature))
        })
        .collect()
}

// Game columns: device, action, ad.
const DEVICE: usize = 0;
const ACTION: usize = 1;
const GAME_AD: usize = 2;

/// A mobile-game session (columns device, action, ad): the device first, then level advances
/// and taps, ads of 1 to 12 s, and after an ad now and then a stall without advancing; it ends
/// with `quit`.
pub fn game_session(rng: &mut Rng, n: usize) -> Vec<Row> {
    let mut out = Vec::with_capacity(n);
    let mut t = rng.below(1_000);
    out.push(Row::one(
        t,
        DEVICE,
        Cell::Str(rng.pick(&["iPhone", "iPhone", "Android", "Android", "iPad"])),
    ));
    let mut ad_ends: Option<u64> = None;
    let mut stall = 0;
    while out.len() + 1 < n {
        t += 1 + rng.below(8);
        let row = match ad_ends {
            Some(end) if t >= end => {
                ad_ends = None;
                if rng.chance(40) {
                    stall = 5 + rng.below(20);
                }
                Row::one(t, GAME_AD, Cell::Str("done"))
            }
            Some(_) => Row::one(t, ACTION, Cell::Str("tap")),
            None if rng.chance(6) => {
                ad_ends = Some(t + 1 + rng.below(12));
                Row::one(t, GAME_AD, Cell::Str("playing"))
            }
            None if rng.chance(1) => Row::one(t, DEVICE, Cell::Str(rng.pick(&["iPhone", "iPad"]))),
            None if stall > 0 => {
                stall -= 1;
                Row::one(t, ACTION, Cell::Str("tap"))
            }
            None if rng.chance(45) => Row::one(t, ACTION, Cell::Str("advance")),
            None => Row::one(t, ACTION, Cell::Str("tap")),
        };
        out.push(row);
    }
    out.push(Row::one(t + 1 + rng.below(5), ACTION, Cell::Str("quit")));
    out
}

/// Shared column names and string values, as a decoder that interns them (like the CLI's) hands
/// them to the engine: one allocation per distinct string, not one per event.
#[derive(Default)]
pub struct Interner {
    names: std::collections::HashMap<&'static str, Arc<str>>,
    values: std::collections::HashMap<&'static str, Str>,
}

impl Interner {
    /// A column name.
    pub fn get(&mut self, s: &'static str) -> Arc<str> {
        self.names.entry(s).or_insert_with(|| Arc::from(s)).clone()
    }

    /// A string value.
    pub fn value(&mut self, s: &'static str) -> Str {
        self.values.entry(s).or_insert_with(|| Str::from(s)).clone()
    }
}

/// The stream of one workload: its columns and how to generate one key's events.
#[derive(Clone, Copy)]
pub struct Stream {
    /// The partition key column.
    pub key_column: &'static str,
    /// The prefix of key values (`s` gives `s0000042`).
    pub key_prefix: &'static str,
    /// The columns besides `time` and the key, in CSV order.
    pub columns: &'static [&'static str],
    pub generate: Generator,
}

impl Stream {
    /// The name of key number `i`.
    pub fn key_name(&self, i: usize) -> String {
        format!("{}{i:07}", self.key_prefix)
    }

    /// The keys' events, each key generated from its own seed (so any subset can be regenerated
    /// alone).
    pub fn keys(
        self,
        seed: u64,
        keys: usize,
        per_key: usize,
    ) -> impl Iterator<Item = (usize, Vec<Row>)> {
        (0..keys).map(move |i| {
            let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x100_0000_01B3));
            (i, (self.generate)(&mut rng, per_key))
        })
    }

    /// The event of `row`, for the key `key`.
    pub fn event(&self, row: &Row, key: &Str, strings: &mut Interner) -> Event {
        let mut fields = Vec::with_capacity(3);
        fields.push((strings.get(self.key_column), Value::Str(key.clone())));
        for (column, cell) in self.columns.iter().zip(&row.cells) {
            let value = match *cell {
                Cell::Empty => continue,
                Cell::Str(s) => Value::Str(strings.value(s)),
                Cell::Int(i) => Value::Int(i),
            };
            fields.push((strings.get(column), value));
        }
        Event {
            time: row.time,
            fields,
        }
    }

    /// Writes `keys` keys of `per_key` events as CSV: `time`, the key, the columns, then the
    /// [`RECORD_COLUMNS`] that real records carry and no query reads. Without `interleave`,
    /// keys follow one another, as a stream from many sources arriving in blocks would; with
    /// it, that many keys at a time have their events merged in time order, as one stream of
    /// many concurrent sessions is (each key's own events stay in order).
    pub fn write_csv(
        &self,
        path: &std::path::Path,
        seed: u64,
        keys: usize,
        per_key: usize,
        interleave: Option<usize>,
    ) -> std::io::Result<u64> {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        write!(w, "time,{}", self.key_column)?;
        for c in self.columns.iter().chain(&RECORD_COLUMNS) {
            write!(w, ",{c}")?;
        }
        writeln!(w)?;
        let mut rows = 0;
        let mut generated = self.keys(seed, keys, per_key).peekable();
        while generated.peek().is_some() {
            let block: Vec<(usize, Vec<Row>)> = generated
                .by_ref()
                .take(interleave.unwrap_or(1).max(1))
                .collect();
            // (time, key in block, row of key), sorted by time; stable, so each key's own
            // order stays.
            let mut order: Vec<(u64, usize, usize)> = block
                .iter()
                .enumerate()
                .flat_map(|(k, (_, r))| r.iter().enumerate().map(move |(j, e)| (e.time, k, j)))
                .collect();
            order.sort_by_key(|&(t, _, _)| t);
            for (_, k, j) in order {
                let (i, events) = &block[k];
                let (name, row) = (self.key_name(*i), &events[j]);
                write!(w, "{},{name}", row.time)?;
                for cell in &row.cells[..self.columns.len()] {
                    match cell {
                        Cell::Empty => write!(w, ",")?,
                        Cell::Str(s) => write!(w, ",{s}")?,
                        Cell::Int(i) => write!(w, ",{i}")?,
                    }
                }
                let record = record_cells(seed, *i, j);
                writeln!(
                    w,
                    ",{:016x},{:.3},{}",
                    record.event_id, record.position, record.user_agent
                )?;
                rows += 1;
            }
        }
        w.flush()?;
        Ok(rows)
    }
}

/// Columns every generated record carries besides its workload's, which no query reads: an event
/// id, a playhead position and a client's user agent (more than half of a line's bytes), so that
/// readers are measured on records as real sources write them.
pub const RECORD_COLUMNS: [&str; 3] = ["eventId", "position", "userAgent"];

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Dalvik/2.1.0 (Linux; U; Android 14; SM-S918B Build/UP1A.231005.007) ExoPlayer/2.19.1",
];

/// The [`RECORD_COLUMNS`] of row `row` of key `key`.
pub struct RecordCells {
    pub event_id: u64,
    pub position: f64,
    pub user_agent: &'static str,
}

/// The record cells of a row, from their own generator (the workload's rows do not change).
pub fn record_cells(seed: u64, key: usize, row: usize) -> RecordCells {
    let mut rng = Rng::new(seed ^ ((key as u64) << 32) ^ row as u64 ^ 0x0005_EED0_F1D5);
    RecordCells {
        event_id: rng.next(),
        position: row as f64 * 2.5 + rng.below(1_000) as f64 / 1_000.0,
        user_agent: USER_AGENTS[key % USER_AGENTS.len()],
    }
}

pub const PLAYER: Stream = Stream {
    key_column: "sessionId",
    key_prefix: "s",
    columns: &[
        "playerStateChange",
        "cdnChange",
        "userAction",
        "ad",
        "heartbeat",
    ],
    generate: player_session,
};

/// [`PLAYER`]'s columns, as live players report them ([`player_live_session`]).
pub const PLAYER_LIVE: Stream = Stream {
    generate: player_live_session,
    ..PLAYER
};

pub const CARDS: Stream = Stream {
    key_column: "card",
    key_prefix: "c",
    columns: &["suburb", "amount"],
    generate: card_swipes,
};

pub const MACHINES: Stream = Stream {
    key_column: "machine",
    key_prefix: "m",
    columns: &["temperature", "status"],
    generate: machine_telemetry,
};

pub const GAMES: Stream = Stream {
    key_column: "user",
    key_prefix: "u",
    columns: &["device", "action", "ad"],
    generate: game_session,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stream is deterministic, has the requested length, and strictly increasing times
    /// per key (the engine merges events at the same instant; SQL would not).
    #[test]
    fn streams_are_seeded_sized_and_strictly_ordered() {
        for stream in [PLAYER, PLAYER_LIVE, CARDS, MACHINES, GAMES] {
            let a: Vec<_> = stream.keys(7, 20, 300).collect();
            let b: Vec<_> = stream.keys(7, 20, 300).collect();
            for ((_, x), (_, y)) in a.iter().zip(&b) {
                assert_eq!(x.len(), 300, "{}", stream.key_column);
                assert!(x.windows(2).all(|w| w[0].time < w[1].time));
                assert!(x
                    .iter()
                    .zip(y)
                    .all(|(r, s)| r.time == s.time && r.cells == s.cells));
                assert!(x.iter().all(|r| r.cells.iter().any(|c| *c != Cell::Empty)));
            }
        }
    }

    /// A live player's events are mostly heartbeats, about a second apart, in milliseconds.
    #[test]
    fn live_players_mostly_beat() {
        let rows: Vec<Row> = PLAYER_LIVE
            .keys(3, 50, 1_000)
            .flat_map(|(_, r)| r)
            .collect();
        let beats = rows
            .iter()
            .filter(|r| r.cells[HEARTBEAT] != Cell::Empty)
            .count();
        assert!(beats * 100 > rows.len() * 80, "{beats} of {}", rows.len());
        let per_key: Vec<Row> = PLAYER_LIVE.keys(3, 1, 1_000).next().unwrap().1;
        let span = per_key.last().unwrap().time - per_key[0].time;
        assert!((700_000..1_300_000).contains(&span), "{span} ms");
    }

    /// An interleaved file holds the same lines as a key-grouped one; within each block of keys
    /// they run in time order, and each key's own lines keep their order.
    #[test]
    fn interleaved_files_reorder_only_across_keys() {
        let dir = std::env::temp_dir().join(format!("gen-interleave-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let read = |interleave: Option<usize>| {
            let path = dir.join(format!("{interleave:?}.csv"));
            let rows = PLAYER.write_csv(&path, 7, 10, 50, interleave).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.lines().count() as u64, rows + 1);
            text.lines().skip(1).map(String::from).collect::<Vec<_>>()
        };
        let grouped = read(None);
        let per_key = |lines: &[String], key: &str| -> Vec<String> {
            let key = format!(",{key},");
            lines.iter().filter(|l| l.contains(&key)).cloned().collect()
        };
        for block in [3, 10] {
            let interleaved = read(Some(block));
            let mut a = interleaved.clone();
            let mut b = grouped.clone();
            a.sort();
            b.sort();
            assert_eq!(a, b, "the same lines");
            assert_ne!(interleaved, grouped, "keys interleaved");
            for i in 0..10 {
                let key = PLAYER.key_name(i);
                assert_eq!(
                    per_key(&interleaved, &key),
                    per_key(&grouped, &key),
                    "{key}"
                );
            }
            let time = |l: &String| l.split(',').next().unwrap().parse::<u64>().unwrap();
            for chunk in interleaved.chunks(block * 50) {
                assert!(chunk.windows(2).all(|w| time(&w[0]) <= time(&w[1])));
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
