//! The benchmark queries: the four problem statements of the README, each over its generated
//! stream, each answered per key as one number (the query's value at the end of time) that the
//! SQL peer computes too.

use crate::gen::{self, Stream};
use timeline::op::tl_duration_where;
use timeline::TimeLineOp;

pub struct Workload {
    /// The name on the command line, and of the SQL query in `duckdb_peer.py`.
    pub name: &'static str,
    pub title: &'static str,
    pub stream: Stream,
    /// A duration, so that each key's answer is one number.
    pub query: TimeLineOp,
}

impl Workload {
    pub const NAMES: [&'static str; 4] = ["cirr", "card-swipes", "machine-risk", "ad-stall"];

    /// The workload called `name`, its query read from `examples/` (a boolean query `b` is
    /// measured as `duration_where(b)`: how long it held).
    pub fn named(name: &str) -> Result<Workload, String> {
        let (name, title, stream, text) = match name {
            "cirr" => (
                "cirr",
                "CIRR (player sessions)",
                gen::PLAYER,
                include_str!("../../examples/cirr.tl"),
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
        })
    }
}
