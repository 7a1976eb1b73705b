"""golem_timeline against the `timeline` command on the same events, across inputs and in batches.

The command is found at $TIMELINE_BIN (`.ci/run` sets it), else in the workspace's target/.
"""

import json
import os
import pathlib
import random
import signal
import subprocess
import threading
import time

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import golem_timeline as tl

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CIRR = (EXAMPLES / "cirr.tl").read_text()
CIRR_BY_CDN = (EXAMPLES / "cirr-by-cdn.tl").read_text()


def timeline_bin() -> str:
    given = os.environ.get("TIMELINE_BIN")
    if given:
        return given
    for build in ("release", "debug"):
        path = ROOT / "target" / build / "timeline"
        if path.exists():
            return str(path)
    raise RuntimeError("build the CLI (cargo build -p timeline-cli) or set TIMELINE_BIN")


def cli(*args: str) -> list:
    """The JSON lines `timeline eval` prints for `args`."""
    out = subprocess.run(
        [timeline_bin(), "eval", *args], check=True, capture_output=True, text=True
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def cli_error(*args: str) -> str:
    done = subprocess.run([timeline_bin(), "eval", *args], capture_output=True, text=True)
    assert done.returncode == 2, done
    return done.stderr


# (query file, events file, key, CLI options, eval options): every example the guide shows.
CASES = [
    ("cirr.tl", "player.csv", "sessionId", ["--at", "end"], {"at": "end"}),
    ("cirr.tl", "player.csv", "sessionId", ["--at", "5", "--at", "30"], {"at": [5, 30]}),
    ("cirr.tl", "player.csv", "sessionId", ["--range", "0..40"], {"range": (0, 40)}),
    ("cirr.tl", "player.csv", "sessionId", ["--timeline"], {"timeline": True}),
    ("cirr.tl", "player.parquet", "sessionId", ["--at", "end"], {"at": "end"}),
    ("buffering-now.tl", "player.csv", "sessionId", ["--timeline"], {"timeline": True}),
    ("sessions-started.tl", "player.csv", "sessionId", ["--at", "20"], {"at": 20}),
    ("machine-risk.tl", "machine-telemetry.csv", "machine", ["--at", "end"], {"at": "end"}),
    ("card-swipes.tl", "card-swipes.jsonl", "card", ["--timeline"], {"timeline": True}),
    ("cirr-by-cdn.tl", "player.csv", "sessionId", ["--at", "end"], {"at": "end"}),
    ("cirr-by-cdn.tl", "player.csv", "sessionId", ["--at", "20"], {"at": 20}),
    ("cirr-by-cdn.tl", "player.csv", "sessionId", ["--timeline"], {"timeline": True}),
]


@pytest.mark.parametrize("query,events,key,args,options", CASES)
def test_examples_answer_as_the_cli(query, events, key, args, options):
    expected = cli("--query-file", str(EXAMPLES / query), "--events", str(EXAMPLES / events),
                   "--key", key, *args)
    assert expected, "the CLI answered nothing: the case tests nothing"
    text = (EXAMPLES / query).read_text()
    answers = tl.eval(text, str(EXAMPLES / events), key=key, **options)
    assert answers.to_pylist() == expected


def test_pandas_player_answers_cirr_an_aggregate_and_at_end_as_the_cli():
    df = pd.read_csv(EXAMPLES / "player.csv")
    player = str(EXAMPLES / "player.csv")
    assert tl.eval(CIRR, df, key="sessionId", at="end").to_pylist() == cli(
        "--query", CIRR, "--events", player, "--key", "sessionId", "--at", "end")
    assert tl.eval(CIRR_BY_CDN, df, key="sessionId", at=[10, "end"]).to_pylist() == cli(
        "--query", CIRR_BY_CDN, "--events", player, "--key", "sessionId", "--at", "10",
        "--at", "end")


def test_every_input_kind_gives_the_same_answers():
    csv = EXAMPLES / "player.csv"
    table = pa.Table.from_pandas(pd.read_csv(csv), preserve_index=False)
    inputs = {
        "csv file": str(csv),
        "path object": csv,
        "parquet file": str(EXAMPLES / "player.parquet"),
        "list of files": [str(csv)],
        "pandas": pd.read_csv(csv),
        "polars": pl.read_csv(csv),
        "polars lazy": pl.scan_csv(csv),
        "pyarrow table": table,
        "record batch": table.to_batches()[0],
        "record batch reader": pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7)),
    }
    answers = {name: tl.eval(CIRR, data, key="sessionId", at=[3, 20, "end"]).to_pylist()
               for name, data in inputs.items()}
    expected = answers.pop("csv file")
    assert len(expected) == 6
    for name, got in answers.items():
        assert got == expected, name


def test_answers_are_a_typed_table_for_pandas_polars_and_duckdb():
    answers = tl.eval(CIRR, str(EXAMPLES / "player.csv"), key="sessionId", at="end")
    assert answers.schema.field("value").type == pa.int64()
    assert answers.schema.field("at").type == pa.int64()
    assert list(answers.to_pandas()["value"]) == [1, 12]
    assert answers.to_polars()["value"].to_list() == [1, 12]
    assert pa.table(answers).num_rows == 2
    import duckdb

    assert duckdb.sql("select sum(value) from answers").fetchall() == [(13,)]


def test_threads_do_not_change_the_answers():
    for threads in (1, 2, 3):
        got = tl.eval(CIRR, str(EXAMPLES / "player.csv"), key="sessionId", at="end", threads=threads)
        assert got.to_pylist() == [{"key": "s1", "at": 14, "value": 1}, {"key": "s2", "at": 55, "value": 12}]


def random_sessions(seed: int, sessions: int = 12, per_session: int = 40) -> pd.DataFrame:
    """A player stream: state changes, CDN changes and seeks at random times."""
    rng = random.Random(seed)
    rows = []
    for s in range(sessions):
        t = rng.randrange(0, 20)
        for _ in range(per_session):
            # Distinct times within a session: events at one instant keep their arrival order,
            # which a shuffle changes.
            t += rng.randrange(1, 4)
            row = {"time": t, "sessionId": f"s{s}", "playerStateChange": None, "cdnChange": None,
                   "userAction": None}
            kind = rng.random()
            if kind < 0.5:
                row["playerStateChange"] = rng.choice(["play", "buffer", "pause"])
            elif kind < 0.7:
                row["cdnChange"] = rng.choice(["CDN1", "CDN2"])
            elif kind < 0.8:
                row["userAction"] = "seek"
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("query", [CIRR, CIRR_BY_CDN])
def test_shuffled_batches_answer_as_one_shot(seed, query):
    df = random_sessions(seed)
    times = [0, 17, 40, 80, 200]
    one_shot = tl.eval(query, df, key="sessionId", at=times).to_pylist()
    whole = tl.eval(query, df, key="sessionId", timeline=True).to_pylist()
    assert one_shot and whole
    shuffled = df.sample(frac=1, random_state=seed).reset_index(drop=True)
    engine = tl.Engine(query, key="sessionId")
    step = max(1, len(shuffled) // 7)
    for start in range(0, len(shuffled), step):
        engine.ingest(shuffled.iloc[start:start + step])
        engine.at(40)  # reads between batches change nothing
    def norm(rows):
        return sorted(json.dumps(r, sort_keys=True) for r in rows)

    assert norm(row for t in times for row in engine.at(t).to_pylist()) == norm(one_shot)
    assert engine.timeline().to_pylist() == whole
    assert engine.stats()["batches"] == len(range(0, len(shuffled), step))


def test_engine_per_key_reads():
    df = pd.read_csv(EXAMPLES / "player.csv")
    engine = tl.Engine(CIRR, key="sessionId")
    engine.ingest(df)
    player = str(EXAMPLES / "player.csv")
    assert engine.at(30).to_pylist() == cli("--query", CIRR, "--events", player, "--key",
                                            "sessionId", "--at", "30")
    assert engine.range(0, 30).to_pylist() == cli("--query", CIRR, "--events", player, "--key",
                                                  "sessionId", "--range", "0..30")
    s2 = [r for r in cli("--query", CIRR, "--events", player, "--key", "sessionId", "--timeline")
          if r["key"] == "s2"]
    assert engine.timeline("s2").to_pylist() == s2
    stats = engine.stats()
    assert stats["keys"] == 2 and stats["bytes"] > 0


def test_engine_takes_files_too():
    engine = tl.Engine(CIRR, key="sessionId")
    engine.ingest(str(EXAMPLES / "player.csv"))
    assert [r["value"] for r in engine.at("end").to_pylist()] == [1, 12]


def test_query_objects():
    q = tl.Query(CIRR)
    assert str(tl.Query(str(q))) == str(q)
    assert "duration_where" in q.explain() and "(result)" in q.explain()
    assert sorted(q.columns) == ["cdnChange", "playerStateChange", "userAction"]
    assert not q.is_aggregate and tl.Query(CIRR_BY_CDN).is_aggregate
    assert tl.eval(q, str(EXAMPLES / "player.csv"), key="sessionId", at="end").num_rows == 2


def test_a_bad_query_raises_the_cli_message_with_line_and_column():
    bad = "duration_where(\n  has_existed(x == 1)"
    with pytest.raises(tl.QueryError) as caught:
        tl.Query(bad)
    assert (caught.value.line, caught.value.column) == (2, 22)
    assert str(caught.value) in cli_error("--query", bad, "--events", str(EXAMPLES / "player.csv"))
    with pytest.raises(tl.QueryError):
        tl.eval("no_such_operator(x)", pd.DataFrame({"time": [1]}))


def test_bad_events_raise_input_errors_naming_the_problem():
    # pandas stands for a missing value with NaN (PyArrow reads it as null): an absent column.
    missing = pd.DataFrame({"time": [1, 2], "k": ["a", "a"], "x": [1.0, float("nan")]})
    assert tl.eval("latest_event_to_state(x)", missing, key="k", at="end").to_pylist() == [
        {"key": "a", "at": 2, "value": 1.0}]
    nan = pa.table({"time": [1, 2], "k": ["a", "a"], "x": [1.0, float("nan")]})
    with pytest.raises(tl.InputError, match="NaN"):
        tl.eval("latest_event_to_state(x)", nan, key="k", at="end")
    with pytest.raises(tl.InputError, match="no `when` column"):
        tl.eval("latest_event_to_state(x)", nan, key="k", time_column="when")
    with pytest.raises(tl.InputError, match="nokey"):
        tl.eval("latest_event_to_state(x)", missing.iloc[:1], key="nokey", at="end")
    nested = pa.table({"time": [1], "x": pa.array([[1, 2]])})
    with pytest.raises(tl.InputError, match="x"):
        tl.eval("latest_event_to_state(x)", nested, at="end")
    negative = pd.DataFrame({"time": [-5], "x": [1]})
    with pytest.raises(tl.InputError):
        tl.eval("latest_event_to_state(x)", negative, at="end")


def test_a_bad_batch_changes_nothing_in_an_engine():
    engine = tl.Engine("latest_event_to_state(x)", key="k")
    engine.ingest(pd.DataFrame({"time": [1], "k": ["a"], "x": [1.0]}))
    before = engine.timeline().to_pylist()
    with pytest.raises(tl.InputError):
        engine.ingest(pa.table({"time": [2, 3], "k": ["a", "a"], "x": [2.0, float("nan")]}))
    assert engine.timeline().to_pylist() == before


def test_retention_refuses_a_late_event_and_changes_nothing():
    engine = tl.Engine("latest_event_to_state(x)", key="k", retain=10)
    engine.ingest(pd.DataFrame({"time": [100], "k": ["a"], "x": [1]}))
    with pytest.raises(tl.InputError, match="retention"):
        engine.ingest(pd.DataFrame({"time": [5], "k": ["a"], "x": [2]}))
    assert [r["value"] for r in engine.at(100).to_pylist()] == [1]


def test_hostile_arguments_get_clear_errors():
    df = pd.DataFrame({"time": [1], "x": [1]})
    with pytest.raises(TypeError, match="data must be"):
        tl.eval("latest_event_to_state(x)", 42)
    with pytest.raises(TypeError, match="query must be"):
        tl.eval(42, df)
    with pytest.raises(ValueError, match="at takes"):
        tl.eval("latest_event_to_state(x)", df, at=-1)
    with pytest.raises(ValueError, match="at takes"):
        tl.eval("latest_event_to_state(x)", df, at="yesterday")
    with pytest.raises(ValueError, match="threads"):
        tl.eval("latest_event_to_state(x)", df, threads=0, key="x")
    with pytest.raises(ValueError, match="start is after the end"):
        tl.eval("latest_event_to_state(x)", df, range=(5, 1))
    with pytest.raises(ValueError, match="time_unit"):
        tl.eval("latest_event_to_state(x)", df, time_unit="fortnights")
    with pytest.raises(tl.QueryError):
        tl.Query("!" * 100_000 + "has_existed(x == 1)")
    with pytest.raises(tl.QueryError):
        tl.Query("(" * 100_000)
    with pytest.raises(tl.InputError):
        tl.eval("latest_event_to_state(x)", "/no/such/file.csv")
    with pytest.raises(ValueError, match="not keys"):
        tl.Engine("latest_event_to_state(x)", key="k").html(["ghost"])


def test_empty_data_gives_no_answers():
    empty = pd.DataFrame({"time": pd.Series([], dtype="int64"), "k": pd.Series([], dtype="str")})
    assert tl.eval("latest_event_to_state(x)", empty, key="k", at="end").num_rows == 0


def test_timestamps_in_give_timestamps_out():
    df = pd.DataFrame({
        "time": pd.to_datetime(["2026-01-01 00:00:00", "2026-01-01 00:00:05"]),
        "k": ["a", "a"],
        "state": ["play", "buffer"],
    })
    answers = tl.eval("latest_event_to_state(state)", df, key="k", at="end")
    assert pa.types.is_timestamp(answers.schema.field("at").type)
    assert answers.to_pandas()["at"][0] == pd.Timestamp("2026-01-01 00:00:05")
    ms = tl.eval("latest_event_to_state(state)", df, key="k", at="end", time_unit="ms")
    assert ms.to_pandas()["at"][0] == pd.Timestamp("2026-01-01 00:00:05")


def test_jupyter_draws_the_timelines():
    answers = tl.eval(CIRR, str(EXAMPLES / "player.csv"), key="sessionId", at="end")
    shown = answers._repr_html_()
    assert shown.startswith("<iframe srcdoc=") and "uPlot" in shown and "duration_where" in shown
    engine = tl.Engine(CIRR, key="sessionId")
    engine.ingest(str(EXAMPLES / "player.csv"))
    page = engine.timeline("s2").html()
    assert "s2" in page and "s1" not in page.split("keys shown:")[1][:40]
    agg = tl.eval(CIRR_BY_CDN, str(EXAMPLES / "player.csv"), key="sessionId", timeline=True)
    assert "per group" in agg.html()


def big_stream(rows: int) -> pa.Table:
    import numpy as np

    t = np.arange(rows, dtype=np.int64)
    states = np.array(["play", "buffer"], dtype=object)[t % 2]
    return pa.table({"time": t // 64, "sessionId": (t % 64).astype(str), "playerStateChange": states})


def test_the_gil_is_released_while_evaluating():
    data = big_stream(2_000_000)
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    started = time.monotonic()
    tl.eval(CIRR, data, key="sessionId", at="end", threads=1)
    ended = time.monotonic()
    done.set()
    ticker.join()
    during = [t for t in ticks if started < t < ended]
    # Held, the GIL would let the ticker run only every few milliseconds at best.
    assert len(during) > (ended - started) * 100


def test_ctrl_c_interrupts_an_evaluation():
    data = big_stream(8_000_000)

    # A signal from a timer of the operating system, handled as Ctrl-C's SIGINT is: it fires
    # whatever the threads and the GIL are doing (a Python timer thread would need the GIL).
    def ctrl_c(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, ctrl_c)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            tl.eval(CIRR, data, key="sessionId", timeline=True, threads=1)
        assert time.monotonic() - started < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # The interpreter goes on.
    assert tl.eval(CIRR, str(EXAMPLES / "player.csv"), key="sessionId", at="end").num_rows == 2


def test_the_python_benchmark_runs_and_checks_its_answers():
    done = subprocess.run(
        [os.sys.executable, str(ROOT / "bench" / "python_bench.py"),
         str(EXAMPLES / "player.parquet"), "--end", "100", "--repeat", "1"],
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "CIRR per session at 100: 21 events, 2 sessions"
    assert sum(line.startswith("| PyArrow Table |") for line in lines) >= 1
    assert sum(line.startswith("| pandas DataFrame |") for line in lines) >= 1


HOSTILE_QUERIES = [
    'latest_event_to_state(x)',
    'duration_where(latest_event_to_state(x) == "a")',
    'has_existed_within(x == 1, 3) || !has_existed(y == true)',
    'distinct_within(x, 5) >= 2',
    'duration_in_cur_state(latest_event_to_state(x))',
    'latest_event_to_state(x) | aggregate(group_by(y), count, sum, avg, min, max)',
]


def hostile_column(rng, rows):
    """A column of one random Arrow type, with nulls, NaN, infinities, extremes and odd text."""
    kind = rng.choice(["int", "float", "str", "bool", "list", "binary", "time", "mixed"])
    def pick(choices):
        return [None if rng.random() < 0.2 else rng.choice(choices) for _ in range(rows)]
    if kind == "int":
        return pa.array(pick([0, -1, 1, 2**63 - 1, -2**63, 7]), pa.int64())
    if kind == "float":
        return pa.array(pick([0.5, float("nan"), float("inf"), -0.0, 1e308]), pa.float64())
    if kind == "str":
        return pa.array(pick(["a", "", "é", "\x00", "x" * 1000, "1"]), pa.string())
    if kind == "bool":
        return pa.array(pick([True, False]), pa.bool_())
    if kind == "list":
        return pa.array(pick([[1], [], [2, 3]]), pa.list_(pa.int64()))
    if kind == "binary":
        return pa.array(pick([b"\xff", b""]), pa.binary())
    if kind == "time":
        return pa.array(pick([0, 10**18]), pa.timestamp("ns"))
    return pa.array(pick(["1", "2"]), pa.large_string())


@pytest.mark.parametrize("seed", range(int(os.environ.get("HOSTILE_CASES", "150"))))
def test_random_hostile_tables_answer_or_refuse_cleanly(seed):
    rng = random.Random(seed)
    rows = rng.randrange(0, 30)
    times = [rng.choice([0, 1, 5, 2**62, -1, None]) if rng.random() < 0.1 else rng.randrange(0, 50)
             for _ in range(rows)]
    columns = {"time": pa.array(times, pa.int64()), "x": hostile_column(rng, rows),
               "y": hostile_column(rng, rows), "k": hostile_column(rng, rows)}
    table = pa.table(columns)
    query = rng.choice(HOSTILE_QUERIES)
    key = rng.choice([None, "k", "missing"])
    retain = rng.choice([None, 1, 10])
    try:
        answers = tl.eval(query, table, key=key, at=rng.choice(["end", [0, 3, 2**63 - 1]]),
                          retain=retain, threads=rng.choice([None, 1, 2]))
        assert isinstance(answers.num_rows, int)
        engine = tl.Engine(query, key=key, retain=retain)
        engine.ingest(table.slice(rows // 2))
        engine.ingest(table.slice(0, rows // 2))
        engine.at(rng.randrange(0, 60))
    except ValueError as e:  # QueryError, InputError, a read before the retention horizon
        assert str(e)
