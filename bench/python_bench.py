"""golem_timeline in Python against DuckDB's Python API, on the same events already in memory.

Usage: python bench/python_bench.py EVENTS.parquet [--end T] [--repeat N]

EVENTS is a player stream (sessionId, playerStateChange, cdnChange, userAction), such as the
bench's `target/bench/cirr-10000x1000-v2.parquet` (written by `scripts/bench --tier 10m
--queries cirr`). The events are read once into a PyArrow Table and a pandas DataFrame; then,
for each of them and for one and all threads, CIRR per session at time T is computed by
`golem_timeline.eval` and by DuckDB's window-function query of the bench (`duckdb_peer.py`)
over the same in-memory object, best of N runs each. Every session's answer is checked equal;
the table printed gives events per second and the ratio (DuckDB's time / ours).
"""

import argparse
import os
import pathlib
import sys
import time

import duckdb
import pyarrow.parquet as pq

import golem_timeline as tl

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import duckdb_peer  # noqa: E402  (the bench's SQL, shared)

CIRR = (HERE.parent / "examples" / "cirr.tl").read_text()


def best(repeat, run):
    """(the least wall time of `repeat` runs, the last run's result)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events")
    parser.add_argument("--end", type=int, default=1_000_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = pq.read_table(args.events)
    inputs = {"PyArrow Table": table, "pandas DataFrame": table.to_pandas()}
    sql = duckdb_peer.queries(lambda columns: "events", args.end)["cirr"]
    cores = os.cpu_count() or 1
    print(f"CIRR per session at {args.end}: {table.num_rows} events, "
          f"{len(set(table.column('sessionId').to_pylist()))} sessions")
    print("| input | threads | golem_timeline s | events/s | DuckDB s | × DuckDB |")
    print("|---|---|---|---|---|---|")
    for name, data in inputs.items():
        for threads in sorted({1, cores}):
            ours, answers = best(args.repeat, lambda: tl.eval(
                CIRR, data, key="sessionId", at=args.end, threads=threads))
            con = duckdb.connect()
            con.execute(f"SET threads = {threads}")
            con.register("events", data)
            theirs, rows = best(args.repeat, lambda: con.execute(sql).fetchall())
            got = {row["key"]: row["value"] for row in answers.to_pylist()}
            want = duckdb_peer.results_of("cirr", rows)
            if got != want:
                differ = [k for k in want if got.get(k) != want[k]][:5]
                sys.exit(f"{name}, {threads} thread(s): answers differ, e.g. for {differ}")
            print(f"| {name} | {threads} | {ours:.3f} | {table.num_rows / ours / 1e6:.2f}M "
                  f"| {theirs:.3f} | {theirs / ours:.2f}× |")


if __name__ == "__main__":
    main()
