"""The SQL peer: each benchmark query as DuckDB SQL with window functions, over the same CSV.

Usage: python3 duckdb_peer.py WORKLOAD EVENTS.csv|EVENTS.parquet THREADS END
(END is the time the answers are read at; for an aggregate workload, per group and function.)
       python3 duckdb_peer.py --to-parquet WORKLOAD EVENTS.csv OUT.parquet
(writes the CSV's events, typed, as Parquet: the same data for both readers.)
Prints one JSON object: {"seconds": wall time of the query (reading the CSV included),
"rss_kb": peak memory, "results": {key: the query's value at time END}}.

Every query is `duration_where(b)` at END: the time in [first event, END) during which b holds.
Between two consecutive events of a key the event-derived state is constant, so each SQL query
sums, over those intervals, the part where b holds; the only thing that can change inside an
interval is a window ending (`has_existed_within`, `distinct_within`) or a duration reaching a
threshold, which each query accounts for with `greatest`/`least`.
"""
import json, resource, sys, time
import duckdb


def file_scan(path):
    """The table expression reading the events file at `path`: CSV with the type of each column
    (given `columns`), or Parquet."""
    def scan(columns):
        if path.endswith(".parquet"):
            return f"read_parquet('{path}')"
        types = ", ".join(f"'{name}': '{typ}'" for name, typ in columns.items())
        return f"read_csv('{path}', header = true, columns = {{{types}}})"
    return scan


# The columns of each generated stream and their types; every record also carries columns that
# no query reads (gen.rs: RECORD_COLUMNS).
RECORD = {"eventId": "VARCHAR", "position": "DOUBLE", "userAgent": "VARCHAR"}
PLAYER = {
    "time": "BIGINT", "sessionId": "VARCHAR", "playerStateChange": "VARCHAR",
    "cdnChange": "VARCHAR", "userAction": "VARCHAR", "ad": "VARCHAR", "heartbeat": "BIGINT",
    **RECORD,
}
CARDS = {"time": "BIGINT", "card": "VARCHAR", "suburb": "VARCHAR", "amount": "BIGINT", **RECORD}
MACHINES = {
    "time": "BIGINT", "machine": "VARCHAR", "temperature": "BIGINT", "status": "VARCHAR", **RECORD,
}
GAMES = {
    "time": "BIGINT", "user": "VARCHAR", "device": "VARCHAR", "action": "VARCHAR", "ad": "VARCHAR",
    **RECORD,
}

# The rows that change CIRR's state: heartbeats and ads do not.
CIRR_ROWS = "playerStateChange IS NOT NULL OR cdnChange IS NOT NULL OR userAction = 'seek'"

# Rows up to and including the current one, per key, in time order.
ROWS = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"

def queries(scan, END):
    """Each workload's SQL over the events `scan(columns)` names (a table expression), answered
    at END."""

    def source(columns, changes):
        """The events, keeping only the rows that can change a query's state (`changes`): as a
        DuckDB user would write it, rows such as heartbeats are dropped before the window
        functions sort and scan them. Dropping them changes no answer: each state holds from one
        kept row to the next."""
        return f"SELECT * FROM {scan(columns)} WHERE {changes}"

    def cirr(seek_window):
        """CIRR: on CDN1, buffering, after the first play, not within `seek_window` after a
        seek."""
        return f"""
WITH ev AS (
  {source(PLAYER, CIRR_ROWS)}
),
state AS (
  SELECT sessionId AS k, time,
    coalesce(lead(time) OVER w, {END}) AS next_time,
    last_value(playerStateChange IGNORE NULLS) OVER w AS psc_now,
    last_value(cdnChange IGNORE NULLS) OVER w AS cdn_now,
    max(CASE WHEN userAction = 'seek' THEN time END) OVER w AS last_seek,
    min(CASE WHEN playerStateChange = 'play' THEN time END) OVER w AS first_play
  FROM ev
  WINDOW w AS (PARTITION BY sessionId ORDER BY time {ROWS})
)
SELECT k, coalesce(sum(CASE
    WHEN first_play IS NOT NULL AND psc_now = 'buffer' AND cdn_now = 'CDN1'
    THEN greatest(0, next_time - greatest(time, coalesce(last_seek + {seek_window}, time)))
    ELSE 0 END), 0)
FROM state GROUP BY k
"""

    return {
    "cirr": cirr(5),
    # CIRR over live players' reports: the same, times in milliseconds (5 s = 5000).
    "cirr-live": cirr(5000),
    # duration_where(distinct_within(suburb, 600) >= 2). After swipe i (suburb s) the window
    # holds two suburbs until 600 s after the latest earlier swipe elsewhere than s, which is the
    # swipe just before the current run of swipes in s.
    "card-swipes": f"""
WITH ev AS (
  {source(CARDS, 'suburb IS NOT NULL')}
),
runs AS (
  SELECT card, time, lead(time) OVER w AS next_time,
    CASE WHEN lag(suburb) OVER w <> suburb THEN lag(time) OVER w END AS other_before_run
  FROM ev
  WINDOW w AS (PARTITION BY card ORDER BY time)
),
state AS (
  SELECT card AS k, time, least(coalesce(next_time, {END}), {END}) AS next_time,
    last_value(other_before_run IGNORE NULLS) OVER (PARTITION BY card ORDER BY time {ROWS}) AS other
  FROM runs
)
SELECT k, coalesce(sum(CASE WHEN other IS NOT NULL
    THEN greatest(0, least(next_time, other + 600) - time) ELSE 0 END), 0)
FROM state GROUP BY k
""",
    # duration_where(latest_event_to_state(temperature) > 90 && !has_existed(status == "failed"))
    "machine-risk": f"""
WITH ev AS (
  {source(MACHINES, 'temperature IS NOT NULL OR status IS NOT NULL')}
),
state AS (
  SELECT machine AS k, time,
    coalesce(lead(time) OVER w, {END}) AS next_time,
    last_value(temperature IGNORE NULLS) OVER w AS temperature_now,
    min(CASE WHEN status = 'failed' THEN time END) OVER w AS failed_at
  FROM ev
  WINDOW w AS (PARTITION BY machine ORDER BY time {ROWS})
)
SELECT k, coalesce(sum(CASE WHEN temperature_now > 90 AND failed_at IS NULL
    THEN next_time - time ELSE 0 END), 0)
FROM state GROUP BY k
""",
    # duration_where(iphone && after_long_ad && !advancing && !ended), examples/ad-stall.tl:
    # after_long_ad holds from one instant after an ad first ran for 5 s (L + 1), advancing for
    # 30 s after each advance, ended from the quit on.
    "ad-stall": f"""
WITH ev AS (
  {source(GAMES, "device IS NOT NULL OR ad IS NOT NULL OR action IN ('advance', 'quit')")}
),
s1 AS (
  SELECT user AS k, time,
    coalesce(lead(time) OVER w, {END}) AS next_time,
    last_value(device IGNORE NULLS) OVER w AS device_now,
    last_value(ad IGNORE NULLS) OVER w AS ad_now,
    max(CASE WHEN action = 'advance' THEN time END) OVER w AS last_advance,
    min(CASE WHEN action = 'quit' THEN time END) OVER w AS quit_at
  FROM ev
  WINDOW w AS (PARTITION BY user ORDER BY time {ROWS})
),
s2 AS (
  SELECT *, CASE WHEN ad_now = 'playing'
      AND lag(ad_now) OVER (PARTITION BY k ORDER BY time) IS DISTINCT FROM 'playing'
    THEN time END AS run_start_here
  FROM s1
),
s3 AS (
  SELECT *, CASE WHEN ad_now = 'playing' THEN last_value(run_start_here IGNORE NULLS)
      OVER (PARTITION BY k ORDER BY time {ROWS}) END AS run_start
  FROM s2
),
long_ad AS (
  SELECT k, min(greatest(time, run_start + 5)) AS first_long
  FROM s3 WHERE run_start IS NOT NULL AND greatest(time, run_start + 5) < next_time
  GROUP BY k
)
SELECT s3.k, coalesce(sum(CASE WHEN device_now = 'iPhone' AND quit_at IS NULL AND first_long IS NOT NULL
    THEN greatest(0, next_time - greatest(time, first_long + 1, coalesce(last_advance + 30, 0)))
    ELSE 0 END), 0)
FROM s3 LEFT JOIN long_ad USING (k) GROUP BY s3.k
""",
    # CIRR per session (on any CDN), grouped by the session's CDN at END: count, sum, max.
    "cirr-by-cdn": f"""
WITH ev AS (
  {source(PLAYER, CIRR_ROWS)}
),
state AS (
  SELECT sessionId AS k, time,
    coalesce(lead(time) OVER w, {END}) AS next_time,
    last_value(playerStateChange IGNORE NULLS) OVER w AS psc_now,
    max(CASE WHEN userAction = 'seek' THEN time END) OVER w AS last_seek,
    min(CASE WHEN playerStateChange = 'play' THEN time END) OVER w AS first_play
  FROM ev
  WINDOW w AS (PARTITION BY sessionId ORDER BY time {ROWS})
),
per_key AS (
  SELECT k, coalesce(sum(CASE
      WHEN first_play IS NOT NULL AND psc_now = 'buffer'
      THEN greatest(0, next_time - greatest(time, coalesce(last_seek + 5, time)))
      ELSE 0 END), 0) AS cirr
  FROM state GROUP BY k
),
cdn AS (
  SELECT sessionId AS k, arg_max(cdnChange, time) AS cdn
  FROM ev WHERE cdnChange IS NOT NULL GROUP BY sessionId
)
SELECT cdn, count(*), sum(cirr), max(cirr)
FROM per_key LEFT JOIN cdn USING (k) GROUP BY cdn
""",
    # At the instant END: the sessions started, per CDN then; how many have a known player
    # state and how many are buffering.
    "buffering-per-cdn": f"""
WITH ev AS (
  {source(PLAYER, 'playerStateChange IS NOT NULL OR cdnChange IS NOT NULL')}
)
SELECT cdn, count(psc), coalesce(sum(CASE WHEN psc = 'buffer' THEN 1 ELSE 0 END), 0)
FROM (
  SELECT sessionId,
    arg_max(playerStateChange, time) FILTER (WHERE playerStateChange IS NOT NULL) AS psc,
    arg_max(cdnChange, time) FILTER (WHERE cdnChange IS NOT NULL) AS cdn
  FROM ev WHERE time <= {END} GROUP BY sessionId
) GROUP BY cdn
""",
    }

# The aggregate queries answer per group: their columns after the group, by function.
AGGREGATES = {"cirr-by-cdn": ["count", "sum", "max"], "buffering-per-cdn": ["count", "sum"]}

# The stream each workload reads.
STREAMS = {
    "cirr": PLAYER, "cirr-live": PLAYER, "cirr-by-cdn": PLAYER, "buffering-per-cdn": PLAYER,
    "card-swipes": CARDS, "machine-risk": MACHINES, "ad-stall": GAMES,
}


def peak_rss_kb():
    """This process's own peak (VmHWM): `ru_maxrss` keeps the peak of the process it was forked
    from across exec, so it reported the bench's own peak for DuckDB's."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def results_of(workload, rows):
    """The rows of a workload's query as {key: value}, or {"group function": value}."""
    if workload in AGGREGATES:
        return {
            f"{'null' if row[0] is None else row[0]} {f}": int(v)
            for row in rows for f, v in zip(AGGREGATES[workload], row[1:])
        }
    return {k: int(v) for k, v in rows}


def main():
    con = duckdb.connect()
    if sys.argv[1] == "--to-parquet":
        workload, path, out = sys.argv[2], sys.argv[3], sys.argv[4]
        scan = file_scan(path)(STREAMS[workload])
        con.execute(f"COPY (SELECT * FROM {scan}) TO '{out}' (FORMAT parquet)")
        return
    workload, path, threads, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    con.execute(f"SET threads = {threads}")
    start = time.perf_counter()
    rows = con.execute(queries(file_scan(path), end)[workload]).fetchall()
    seconds = time.perf_counter() - start
    results = results_of(workload, rows)
    print(json.dumps({"seconds": seconds, "rss_kb": peak_rss_kb(), "results": results}))


if __name__ == "__main__":
    main()
