"""CIRR in SQL on DuckDB: the peer the timeline engine is measured against.

Usage: python3 duckdb_cirr.py EVENTS.csv THREADS
Prints one JSON object: {"seconds": wall time of the query, "rss_kb": peak memory,
"results": {session: CIRR at the session's end}}.

CIRR = time on CDN1 in buffering, after the first play, not within 5 s after a seek. Each
interval between consecutive events of a session has constant state, except that a seek's window
[seek, seek + 5) may end inside it, so the interval counts from max(start, last seek + 5).
"""
import json, resource, sys, time
import duckdb

path, threads = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
QUERY = f"""
WITH ev AS (
  SELECT time, sessionId, playerStateChange AS psc, cdnChange AS cdn, userAction AS ua
  FROM read_csv('{path}', header = true, columns = {{
    'time': 'BIGINT', 'sessionId': 'VARCHAR', 'playerStateChange': 'VARCHAR',
    'cdnChange': 'VARCHAR', 'userAction': 'VARCHAR', 'ad': 'VARCHAR', 'heartbeat': 'BIGINT'}})
),
state AS (
  SELECT sessionId, time,
    lead(time) OVER w AS next_time,
    last_value(psc IGNORE NULLS) OVER w AS psc_now,
    last_value(cdn IGNORE NULLS) OVER w AS cdn_now,
    max(CASE WHEN ua = 'seek' THEN time END) OVER w AS last_seek,
    min(CASE WHEN psc = 'play' THEN time END) OVER w AS first_play
  FROM ev
  WINDOW w AS (PARTITION BY sessionId ORDER BY time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT sessionId,
  coalesce(sum(CASE
    WHEN first_play IS NOT NULL AND psc_now = 'buffer' AND cdn_now = 'CDN1' AND next_time IS NOT NULL
    THEN greatest(0, next_time - greatest(time, coalesce(last_seek + 5, time)))
    ELSE 0 END), 0) AS cirr
FROM state GROUP BY sessionId
"""
start = time.perf_counter()
rows = con.execute(QUERY).fetchall()
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rss_kb": rss, "results": {s: int(v) for s, v in rows}}))
