"""Types of the native module (the Rust `timeline` library through pyo3)."""

from typing import Any, List, Optional, Tuple

class QueryError(ValueError):
    line: int
    column: int

class InputError(ValueError): ...

class Query:
    def __init__(self, text: str, time_unit: str = "s") -> None: ...
    def explain(self) -> str: ...
    @property
    def columns(self) -> List[str]: ...
    @property
    def is_aggregate(self) -> bool: ...
    @property
    def units_per_second(self) -> int: ...

class ArrowTable:
    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any: ...
    @property
    def num_rows(self) -> int: ...

class Evaluation:
    @property
    def answers(self) -> ArrowTable: ...
    def page(self, keys: Optional[List[Any]] = None) -> str: ...

def evaluate(
    query: Query,
    stream: Any,
    files: Optional[List[str]],
    key: Optional[str],
    at: List[Optional[int]],
    range: Optional[Tuple[int, int]],
    timeline: bool,
    time_column: str,
    time_unit: str,
    retain: Optional[int],
    threads: Optional[int],
    page: bool,
) -> Evaluation: ...

class Engine:
    def __init__(
        self,
        query: Query,
        key: Optional[str] = None,
        retain: Optional[int] = None,
        time_column: str = "time",
        time_unit: str = "s",
    ) -> None: ...
    def ingest(self, stream: Any = None, files: Optional[List[str]] = None) -> None: ...
    def at(self, t: Optional[int] = None) -> ArrowTable: ...
    def range(self, t1: int, t2: int) -> ArrowTable: ...
    def timeline(self, key: Any = None, every: bool = False) -> ArrowTable: ...
    def stats(self) -> dict: ...
    def page(self, keys: Optional[List[Any]] = None) -> str: ...
