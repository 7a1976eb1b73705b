//! The benchmark queries: the four problem statements of the guide (docs/src/examples.md), each over its generated
//! stream, each answered per key as one number (the query's value at the end of time) that the
//! SQL peer computes too; and two aggregates across keys (SPEC §6), answered per group and
//! function at one time.

use crate::gen::{self, Stream};
use timeline::aggregate::Query;
use timeline::op::tl_duration_where;
use timeline::TimeLineOp;

pub struct Workload {
    /// The name on the command line, and of the SQL query in `duckdb_peer.py`.
    pub name: &'static str,
    pub title: &'static str,
    pub stream: Stream,
    /// A duration, so that each key's answer is one number; for an aggregate, the per-key part.
    pub query: TimeLineOp,
    /// An aggregate across keys, answered per group and function at [`Workload::at`].
    pub aggregate: Option<Query>,
    /// Whether the stream interleaves all its keys in time order (a live feed of concurrent
    /// sessions) unless `--interleave` says otherwise.
    pub live: bool,
}

/// The aggregate workloads: their name, title and query.
const AGGREGATES: [(&str, &str, &str); 2] = [
    (
        "cirr-by-cdn",
        "Sessions' CIRR per current CDN: count, total, worst (player sessions, aggregate)",
        r#"let played = has_existed(playerStateChange == "play");
           let seeking = has_existed_within(userAction == "seek", 5);
           let buffering = latest_event_to_state(playerStateChange) == "buffer";
           duration_where(played && !seeking && buffering) | aggregate(group_by(cdnChange), count, sum, max)"#,
    ),
    (
        "buffering-per-cdn",
        "Sessions buffering per CDN at one instant (player sessions, aggregate)",
        r#"latest_event_to_state(playerStateChange) == "buffer" | aggregate(group_by(cdnChange), count, sum)"#,
    ),
];

impl Workload {
    pub const NAMES: [&'static str; 7] = [
        "cirr",
        "cirr-live",
        "card-swipes",
        "machine-risk",
        "ad-stall",
        "cirr-by-cdn",
        "buffering-per-cdn",
    ];

    /// The time answers are read at: the end of time, or for `buffering-per-cdn` an instant in
    /// the middle of the sessions (they start in the first 1 000 s and last 1-4 s per event).
    pub fn at(&self, per_key: usize, end: u64) -> u64 {
        match self.name {
            "buffering-per-cdn" => 500 + per_key as u64,
            _ => end,
        }
    }

    /// The workload called `name`, its query read from `examples/` (a boolean query `b` is
    /// measured as `duration_where(b)`: how long it held).
    pub fn named(name: &str) -> Result<Workload, String> {
        if let Some(&(name, title, text)) = AGGREGATES.iter().find(|(n, _, _)| *n == name) {
            let query: Query = text.parse().map_err(|e| format!("{name}: {e}"))?;
            return Ok(Workload {
                name,
                title,
                stream: gen::PLAYER,
                query: query.op.clone(),
                aggregate: Some(query),
                live: false,
            });
        }
        let (name, title, stream, text) = match name {
            "cirr" => (
                "cirr",
                "CIRR (player sessions)",
                gen::PLAYER,
                include_str!("../../examples/cirr.tl"),
            ),
            "cirr-live" => (
                "cirr-live",
                "CIRR over live players' reports: all sessions interleaved, mostly heartbeats, milliseconds",
                gen::PLAYER_LIVE,
                r#"let played = has_existed(playerStateChange == "play");
                   let seeking = has_existed_within(userAction == "seek", 5000);
                   let buffering = latest_event_to_state(playerStateChange) == "buffer";
                   let on_cdn1 = latest_event_to_state(cdnChange) == "CDN1";
                   duration_where(played && !seeking && buffering && on_cdn1)"#,
            ),
            "card-swipes" => (
                "card-swipes",
                "Card swiped in two suburbs within 10 minutes, time flagged (card swipes)",
                gen::CARDS,
                include_str!("../../examples/card-swipes.tl"),
            ),
            "machine-risk" => (
                "machine-risk",
                "Risky time before failure (machine telemetry)",
                gen::MACHINES,
                include_str!("../../examples/machine-risk.tl"),
            ),
            "ad-stall" => (
                "ad-stall",
                "iPhone player stalled after a 5 s ad, time stalled (game sessions)",
                gen::GAMES,
                include_str!("../../examples/ad-stall.tl"),
            ),
            other => {
                return Err(format!(
                    "unknown query {other}: {}",
                    Workload::NAMES.join(", ")
                ))
            }
        };
        let query: TimeLineOp = text.parse().map_err(|e| format!("{name}: {e}"))?;
        let query = match query {
            q @ TimeLineOp::DurationWhere(_) => q,
            q => tl_duration_where(q),
        };
        Ok(Workload {
            name,
            title,
            stream,
            query,
            aggregate: None,
            live: name == "cirr-live",
        })
    }
}
