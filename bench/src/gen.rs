//! Deterministic generators of realistic event streams (seeded; the same seed gives the same
//! stream on every machine).

use std::io::Write;
use std::sync::Arc;
use timeline::{Event, Value};

/// A cell of the generated stream, before it becomes a [`Value`].
enum Cell {
    Str(&'static str),
    Int(i64),
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
}

/// One row of the player stream: at most one column besides the session per event, so that
/// the SQL peer and the engine read exactly the same thing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlayerEvent {
    State(&'static str),
    Cdn(&'static str),
    Seek,
    Ad(&'static str),
    Heartbeat,
}

/// A video-player session of `n` events: init, then play ↔ buffer/pause, seeks followed by
/// buffering, CDN switches, ads, heartbeats that change nothing; it ends with `stop`.
pub fn player_session(rng: &mut Rng, n: usize) -> Vec<(u64, PlayerEvent)> {
    let mut out = Vec::with_capacity(n);
    let mut t = rng.below(1_000);
    let mut state = "init";
    out.push((t, PlayerEvent::State("init")));
    out.push((
        t + 1,
        PlayerEvent::Cdn(if rng.below(2) == 0 { "CDN1" } else { "CDN2" }),
    ));
    t += 1;
    while out.len() + 1 < n {
        t += 1 + rng.below(4);
        let roll = rng.below(100);
        let e = match (state, roll) {
            ("init", _) => PlayerEvent::State("play"),
            (_, 0..=39) => PlayerEvent::Heartbeat,
            ("play", 40..=54) => PlayerEvent::State("buffer"),
            ("play", 55..=62) => PlayerEvent::State("pause"),
            ("play", 63..=70) => PlayerEvent::Seek,
            ("buffer" | "pause", 40..=84) => PlayerEvent::State("play"),
            (_, 85..=90) => PlayerEvent::Cdn(if rng.below(2) == 0 { "CDN1" } else { "CDN2" }),
            (_, 91..=94) => PlayerEvent::Ad(if roll % 2 == 0 { "playing" } else { "done" }),
            _ => PlayerEvent::Heartbeat,
        };
        if let PlayerEvent::State(s) = e {
            state = s;
        }
        out.push((t, e));
        if e == PlayerEvent::Seek && out.len() + 1 < n {
            // A seek is followed by buffering.
            t += 1;
            out.push((t, PlayerEvent::State("buffer")));
            state = "buffer";
        }
    }
    out.push((t + 1 + rng.below(3), PlayerEvent::State("stop")));
    out
}

/// Shared column names and string values, as a decoder that interns them (like the CLI's) hands
/// them to the engine: one allocation per distinct string, not one per event.
pub struct Interner {
    strings: std::collections::HashMap<&'static str, Arc<str>>,
}

impl Interner {
    pub fn new() -> Interner {
        Interner {
            strings: std::collections::HashMap::new(),
        }
    }

    pub fn get(&mut self, s: &'static str) -> Arc<str> {
        self.strings
            .entry(s)
            .or_insert_with(|| Arc::from(s))
            .clone()
    }
}

impl PlayerEvent {
    /// The event at `time` of the session named `session`.
    pub fn to_event(self, time: u64, session: &Arc<str>, strings: &mut Interner) -> Event {
        let (col, v) = self.column();
        let v = match v {
            Cell::Str(s) => Value::Str(strings.get(s)),
            Cell::Int(i) => Value::Int(i),
        };
        Event {
            time,
            fields: vec![
                (strings.get("sessionId"), Value::Str(session.clone())),
                (strings.get(col), v),
            ],
        }
    }

    fn column(self) -> (&'static str, Cell) {
        match self {
            PlayerEvent::State(s) => ("playerStateChange", Cell::Str(s)),
            PlayerEvent::Cdn(c) => ("cdnChange", Cell::Str(c)),
            PlayerEvent::Seek => ("userAction", Cell::Str("seek")),
            PlayerEvent::Ad(a) => ("ad", Cell::Str(a)),
            PlayerEvent::Heartbeat => ("heartbeat", Cell::Int(1)),
        }
    }

    /// The CSV cells for the columns playerStateChange, cdnChange, userAction, ad, heartbeat.
    pub fn csv_cells(self) -> [&'static str; 5] {
        match self {
            PlayerEvent::State(s) => [s, "", "", "", ""],
            PlayerEvent::Cdn(c) => ["", c, "", "", ""],
            PlayerEvent::Seek => ["", "", "seek", "", ""],
            PlayerEvent::Ad(a) => ["", "", "", a, ""],
            PlayerEvent::Heartbeat => ["", "", "", "", "1"],
        }
    }
}

/// The session name of session number `i`.
pub fn session_name(i: usize) -> String {
    format!("s{i:07}")
}

/// Writes `sessions` sessions of `per_session` events as CSV (sessions interleaved in blocks, as
/// a stream from many players would be).
pub fn write_player_csv(
    path: &std::path::Path,
    seed: u64,
    sessions: usize,
    per_session: usize,
) -> std::io::Result<u64> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        w,
        "time,sessionId,playerStateChange,cdnChange,userAction,ad,heartbeat"
    )?;
    let mut rows = 0;
    for (i, session) in player_sessions(seed, sessions, per_session) {
        let name = session_name(i);
        for (t, e) in session {
            let c = e.csv_cells();
            writeln!(w, "{t},{name},{},{},{},{},{}", c[0], c[1], c[2], c[3], c[4])?;
            rows += 1;
        }
    }
    w.flush()?;
    Ok(rows)
}

/// The sessions, each generated from its own seed (so any subset can be regenerated alone).
pub fn player_sessions(
    seed: u64,
    sessions: usize,
    per_session: usize,
) -> impl Iterator<Item = (usize, Vec<(u64, PlayerEvent)>)> {
    (0..sessions).map(move |i| {
        let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x100_0000_01B3));
        (i, player_session(&mut rng, per_session))
    })
}
