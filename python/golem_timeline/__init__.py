"""Timeline (time-state) analytics over pandas, Polars, PyArrow and event files.

>>> import golem_timeline as tl
>>> answers = tl.eval('duration_where(latest_event_to_state(state) == "buffer")',
...                   "examples/player.csv", key="sessionId", at="end")
>>> answers.to_pandas()  # doctest: +SKIP

Arrow data crosses into the engine through the Arrow C stream interface, without copying
rows through Python objects; answers come back as a ``pyarrow.Table`` (wrapped in
:class:`Answers`, which draws its timelines in Jupyter).
"""

from __future__ import annotations

import html as _html
import os
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

import pyarrow as pa

from . import _native
from ._native import InputError, Query, QueryError

__all__ = [
    "Answers",
    "Engine",
    "InputError",
    "Query",
    "QueryError",
    "eval",
]

__version__ = "0.6.0"

_TIME_COLUMNS = ("at", "from", "to")


def _options(**given: Any) -> dict:
    """The options dict the native functions take: every key, defaults filled in."""
    options = {"key": None, "at": [], "range": None, "timeline": False, "time_column": "time",
               "time_unit": "s", "retain": None, "threads": None}
    options.update(given)
    return options


def _wanted(query: Query, key: Optional[str], time_column: str) -> List[str]:
    """The columns an evaluation reads."""
    return [time_column] + ([key] if key is not None else []) + query.columns


def _query(query: Union[str, Query], time_unit: str) -> Query:
    if isinstance(query, Query):
        return query
    if isinstance(query, str):
        return Query(query, time_unit=time_unit)
    raise TypeError(f"query must be a str or a golem_timeline.Query, not {type(query).__name__}")


def _is_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def _source(
    data: Any, time_column: str, wanted: List[str]
) -> Tuple[Any, Optional[List[str]], Optional[pa.DataType]]:
    """(an Arrow C stream capsule, or file paths; the time column's Arrow type, if known).

    Of a DataFrame or Table, only the columns in ``wanted`` (those the query reads, the key and
    the time) cross: the others are never converted or checked.
    """
    if _is_path(data):
        return None, [os.fspath(data)], None
    if isinstance(data, (list, tuple)) and data and all(_is_path(d) for d in data):
        return None, [os.fspath(d) for d in data], None
    kind = type(data)
    module = kind.__module__ or ""

    def present(names: Iterable[str]) -> List[str]:
        names = list(names)
        if time_column not in names:
            return names  # refused whole, the error listing every column
        return [c for c in dict.fromkeys(wanted) if c in names]

    if kind.__name__ == "LazyFrame" and module.startswith("polars"):
        data = data.select(present(data.collect_schema().names())).collect()
    elif kind.__name__ == "DataFrame" and module.startswith("polars"):
        data = data.select(present(data.columns))
    elif kind.__name__ == "DataFrame" and module.startswith("pandas"):
        data = pa.Table.from_pandas(data[present(data.columns)], preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        data = data.select(present(data.column_names))
    if not hasattr(data, "__arrow_c_stream__"):
        raise TypeError(
            "data must be a pandas or Polars DataFrame, a Polars LazyFrame, a PyArrow Table, "
            "RecordBatch or RecordBatchReader, an object with __arrow_c_stream__, or a path "
            f"(or list of paths) of CSV, JSON Lines or Parquet files; found {kind.__name__}"
        )
    time_type = None
    schema = getattr(data, "schema", None)
    if isinstance(schema, pa.Schema) and time_column in schema.names:
        time_type = schema.field(time_column).type
    return data.__arrow_c_stream__(), None, time_type


def _times(at: Any) -> List[Optional[int]]:
    if at is None:
        return []
    items = at if isinstance(at, (list, tuple)) else [at]
    times: List[Optional[int]] = []
    for t in items:
        if t == "end":
            times.append(None)
        elif isinstance(t, int) and not isinstance(t, bool) and t >= 0:
            times.append(t)
        else:
            raise ValueError(f'at takes times (non-negative integers) and "end", found {t!r}')
    return times


def _typed(table: pa.Table, time_type: Optional[pa.DataType], time_unit: str) -> pa.Table:
    """Times as timestamps when the input's time column holds timestamps."""
    if time_type is None or not pa.types.is_timestamp(time_type):
        return table
    target = pa.timestamp(time_unit, tz=time_type.tz)
    for name in _TIME_COLUMNS:
        if name in table.column_names:
            i = table.column_names.index(name)
            column = table.column(i).cast(pa.int64()).cast(target)
            table = table.set_column(i, name, column)
    return table


class Answers:
    """A query's answers: a ``pyarrow.Table`` with the columns of ``timeline eval --format csv``.

    Every ``pyarrow.Table`` attribute works on it (``to_pandas()``, ``num_rows``, ``column()``…),
    ``to_polars()`` gives a Polars DataFrame, and it passes as Arrow data wherever
    ``__arrow_c_stream__`` is taken. In Jupyter it shows the query's timelines.
    """

    def __init__(self, table: pa.Table, page: Callable[[], str]) -> None:
        self.table = table
        self._page = page

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.table.__arrow_c_stream__(requested_schema)

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        return repr(self.table)

    def to_polars(self) -> Any:
        """The answers as a Polars DataFrame."""
        import polars

        return polars.from_arrow(self.table)

    def to_pylist(self) -> List[dict]:
        """The answers as a list of dicts, one per row."""
        return self.table.to_pylist()

    def html(self) -> str:
        """The page drawing the timelines (as ``timeline eval --format html`` writes it)."""
        return self._page()

    def _repr_html_(self) -> str:
        page = _html.escape(self._page(), quote=True)
        return (
            f'<iframe srcdoc="{page}" style="width:100%;height:620px;border:0" '
            'sandbox="allow-scripts"></iframe>'
        )


def eval(
    query: Union[str, Query],
    data: Any,
    *,
    key: Optional[str] = None,
    at: Union[None, int, str, Sequence[Union[int, str]]] = None,
    range: Optional[Tuple[int, int]] = None,
    timeline: bool = False,
    time_column: str = "time",
    time_unit: str = "s",
    retain: Optional[int] = None,
    threads: Optional[int] = None,
) -> Answers:
    """Evaluates ``query`` over ``data`` and returns the answers asked for.

    ``data``: a pandas or Polars DataFrame, a Polars LazyFrame, a PyArrow Table, RecordBatch or
    RecordBatchReader, anything with ``__arrow_c_stream__``, or a path, directory, glob or list
    of CSV, JSON Lines and Parquet files (read as ``timeline eval`` reads them).

    ``at``: a time, ``"end"`` (each key's last event time) or a list of these; ``range``:
    ``(t1, t2)``; ``timeline``: every key's whole timeline. With none of them, the whole
    timeline. ``retain``: keep only this much history before each key's latest event.
    ``threads``: keys split over this many threads (default: one per core).

    Raises :class:`QueryError` for a bad query and :class:`InputError` for events that cannot
    be read, with the messages of the ``timeline`` command.
    """
    q = _query(query, time_unit)
    times = _times(at)
    whole = timeline or (not times and range is None)
    stream, files, time_type = _source(data, time_column, _wanted(q, key, time_column))
    evaluation = _native.evaluate(
        q, stream, files,
        _options(key=key, at=times, range=range, timeline=whole, time_column=time_column,
                 time_unit=time_unit, retain=retain, threads=threads),
    )
    table = _typed(pa.table(evaluation.answers), time_type, time_unit)
    return Answers(table, evaluation.page)


class Engine:
    """A query kept up to date as events come in batches, answering between them.

    >>> engine = Engine('latest_event_to_state(state)', key="sessionId")  # doctest: +SKIP
    >>> engine.ingest(df_chunk)                                           # doctest: +SKIP
    >>> engine.at(100).to_pandas()                                        # doctest: +SKIP

    Batches may arrive in any order (late events are placed at their time); the answers equal
    those of :func:`eval` over all the events. A batch of Arrow data is checked whole before
    any of it is taken; a bad one raises :class:`InputError` and changes nothing.
    """

    def __init__(
        self,
        query: Union[str, Query],
        *,
        key: Optional[str] = None,
        retain: Optional[int] = None,
        time_column: str = "time",
        time_unit: str = "s",
    ) -> None:
        self.query = _query(query, time_unit)
        self._time_column = time_column
        self._time_unit = time_unit
        self._time_type: Optional[pa.DataType] = None
        self._wanted = _wanted(self.query, key, time_column)
        self._engine = _native.Engine(
            self.query,
            _options(key=key, retain=retain, time_column=time_column, time_unit=time_unit),
        )

    def ingest(self, data: Any) -> None:
        """Takes the events of ``data`` (any input :func:`eval` takes)."""
        stream, files, time_type = _source(data, self._time_column, self._wanted)
        if stream is not None:
            self._engine.ingest(stream=stream)
        else:
            self._engine.ingest(files=files)
        if time_type is not None:
            self._time_type = time_type

    def _answers(self, table: Any, keys: Optional[Iterable[Any]] = None) -> Answers:
        chosen = None if keys is None else list(keys)
        table = _typed(pa.table(table), self._time_type, self._time_unit)
        return Answers(table, lambda: self._engine.page(chosen))

    def at(self, t: Union[int, str] = "end") -> Answers:
        """Each key's value at ``t`` (``"end"``: at each key's last event time)."""
        (time,) = _times(t)
        return self._answers(self._engine.at(time))

    def range(self, t1: int, t2: int) -> Answers:
        """Each key's segments over ``[t1, t2)``."""
        return self._answers(self._engine.range(t1, t2))

    def timeline(self, key: Any = None) -> Answers:
        """The whole timeline of ``key`` (of every key if ``None`` and there is a key column)."""
        if key is None:
            return self._answers(self._engine.timeline(None, True))
        return self._answers(self._engine.timeline(key, False), [key])

    def html(self, keys: Optional[Iterable[Any]] = None) -> str:
        """The page drawing every node's timelines for ``keys`` (default: the first three)."""
        return self._engine.page(None if keys is None else list(keys))

    def stats(self) -> dict:
        """Counters: keys, change points and bytes held, batches ingested."""
        return dict(self._engine.stats())
