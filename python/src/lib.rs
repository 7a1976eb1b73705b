//! `golem_timeline._native`: the `timeline` library for Python. Arrow data crosses through the
//! Arrow C stream interface (`__arrow_c_stream__`), never row by row through Python objects;
//! answers go back the same way. The Python layer (`golem_timeline/__init__.py`) turns pandas,
//! Polars and file paths into what these functions take.

use arrow_array::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow_array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;
use timeline::aggregate::{Query as LibQuery, QueryPlan};
use timeline::Value;
use timeline_formats::answers::{self, At, Cancel, Evaluation as LibEvaluation, Events, Request};
use timeline_formats::html::{timelines_page, PageError};
use timeline_formats::input;
use timeline_formats::parquet_output::record_batch;
use timeline_formats::time::{TimeSpec, TimeUnit};

/// The extension's own allocations (the engine's) go to mimalloc; Python's do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

create_exception!(
    _native,
    QueryError,
    PyValueError,
    "A query that does not parse or cannot run; `line` and `column` say where."
);
create_exception!(
    _native,
    InputError,
    PyValueError,
    "Events that cannot be read: a missing column, a value of the wrong type, NaN, a late event before the retention horizon, …"
);

fn input_error(message: String) -> PyErr {
    if message.ends_with("interrupted") {
        return PyKeyboardInterrupt::new_err("interrupted");
    }
    InputError::new_err(message)
}

/// A parsed query.
#[pyclass(module = "golem_timeline._native", frozen)]
struct Query {
    query: LibQuery,
    units_per_second: u64,
}

#[pymethods]
impl Query {
    /// Parses `text`, durations in `time_unit` (`s`, `ms`, `us`, `ns`).
    #[new]
    #[pyo3(signature = (text, time_unit = "s"))]
    fn new(py: Python<'_>, text: &str, time_unit: &str) -> PyResult<Query> {
        let unit = time_unit_of(time_unit)?;
        match input::parse_query("query", text, unit.per_second()) {
            Ok(query) => Ok(Query {
                query,
                units_per_second: unit.per_second(),
            }),
            Err(message) => {
                let err = QueryError::new_err(message);
                if let Err(e) = timeline::parser::parse_in_units(text, unit.per_second()) {
                    let value = err.value(py);
                    value.setattr("line", e.line)?;
                    value.setattr("column", e.column)?;
                }
                Err(err)
            }
        }
    }

    /// The query in the text syntax (it parses back to an equal query).
    fn __str__(&self) -> String {
        self.query.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Query({:?})", self.query.to_string())
    }

    /// The plan: one line per node, leaves first, as `timeline explain` prints it.
    fn explain(&self) -> String {
        QueryPlan::new(&self.query).to_string()
    }

    /// The event columns the query reads.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.query.columns().iter().map(|c| c.to_string()).collect()
    }

    /// Whether the query ends in `| aggregate(…)`.
    #[getter]
    fn is_aggregate(&self) -> bool {
        self.query.aggregate.is_some()
    }

    /// Durations are in units of `1 / units_per_second` seconds.
    #[getter]
    fn units_per_second(&self) -> u64 {
        self.units_per_second
    }
}

fn time_unit_of(text: &str) -> PyResult<TimeUnit> {
    TimeUnit::parse(text).ok_or_else(|| {
        PyValueError::new_err(format!(
            "time_unit must be one of s, ms, us, ns, found {text:?}"
        ))
    })
}

/// The record batches of an Arrow C stream (a `PyCapsule` named `arrow_array_stream`, as
/// `obj.__arrow_c_stream__()` returns it). The stream is moved out of the capsule.
fn read_stream(capsule: &Bound<'_, PyCapsule>) -> PyResult<Vec<RecordBatch>> {
    let name = c"arrow_array_stream";
    let pointer = capsule
        .pointer_checked(Some(name))
        .map_err(|_| {
            PyValueError::new_err("expected an Arrow C stream capsule (named arrow_array_stream)")
        })?
        .as_ptr() as *mut FFI_ArrowArrayStream;
    // SAFETY: a capsule named `arrow_array_stream` holds an `ArrowArrayStream` (the Arrow
    // PyCapsule interface); `from_raw` moves it out and leaves a released one behind, so the
    // capsule's own destructor does nothing more.
    let reader = unsafe { ArrowArrayStreamReader::from_raw(pointer) }
        .map_err(|e| InputError::new_err(format!("cannot read the Arrow stream: {e}")))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| InputError::new_err(format!("cannot read the Arrow stream: {e}")))
}

/// Answers as an Arrow table, handed to Python through `__arrow_c_stream__` (so `pyarrow.table`,
/// `polars.DataFrame` and DuckDB take it as is).
#[pyclass(module = "golem_timeline._native")]
struct ArrowTable {
    batch: RecordBatch,
}

#[pymethods]
impl ArrowTable {
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema; // the table's own schema is the one given
        let schema = self.batch.schema();
        let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new(
            vec![Ok(self.batch.clone())],
            schema,
        ));
        let stream = FFI_ArrowArrayStream::new(reader);
        let name = CString::new("arrow_array_stream").expect("no NUL in the name");
        PyCapsule::new(py, stream, Some(name))
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// The answers as one record batch, in the columns of `--format csv`.
fn batch_of(rows: &[answers::Row]) -> Result<RecordBatch, String> {
    let (header, records) = answers::tabulate(rows);
    record_batch(&header, &records)
}

/// Refuses a range that ends before it starts.
fn check_range(t1: u64, t2: u64) -> PyResult<()> {
    if t1 > t2 {
        return Err(PyValueError::new_err(format!(
            "range ({t1}, {t2}): the start is after the end"
        )));
    }
    Ok(())
}

/// A key as the engine holds it, from a Python `str`, `bool`, `int` or `float`.
fn key_value(key: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(b) = key.extract::<bool>() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = key.extract::<i64>() {
        return Ok(Value::Int(i));
    }
    if let Ok(f) = key.extract::<f64>() {
        return Ok(Value::Float(f));
    }
    if let Ok(s) = key.extract::<String>() {
        return Ok(Value::str(&s));
    }
    Err(PyValueError::new_err(format!(
        "a key is a str, bool, int or float, found {}",
        key.get_type().name()?
    )))
}

/// Runs `work` on a thread of its own while this one waits without the GIL, checking for
/// Ctrl-C: on an interrupt `cancel` is set, which stops the reading at its next batch.
fn run_interruptibly<T: Send>(
    py: Python<'_>,
    cancel: &Cancel,
    work: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    std::thread::scope(|scope| {
        let (done, mut result) = std::sync::mpsc::channel();
        let worker = scope.spawn(move || {
            let _ = done.send(work());
        });
        loop {
            // The receiver goes to the GIL-free wait and comes back (it is not `Sync`).
            let (back, answer) = py.detach(move || {
                let answer = result.recv_timeout(Duration::from_millis(50));
                (result, answer)
            });
            result = back;
            match answer {
                Ok(value) => return Ok(value),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(PyValueError::new_err("the evaluation failed unexpectedly"))
                }
            }
            if let Err(e) = py.check_signals() {
                cancel.0.store(true, Ordering::Relaxed);
                let _ = py.detach(|| worker.join());
                return Err(e);
            }
        }
    })
}

/// A one-shot evaluation's engines and answers.
#[pyclass(module = "golem_timeline._native")]
struct Evaluation {
    query: LibQuery,
    evaluation: LibEvaluation,
    answers: Py<ArrowTable>,
    source: String,
}

#[pymethods]
impl Evaluation {
    /// The answers asked for.
    #[getter]
    fn answers(&self, py: Python<'_>) -> Py<ArrowTable> {
        self.answers.clone_ref(py)
    }

    /// The page drawing every node's timelines for `keys` (none: the first three keys).
    #[pyo3(signature = (keys = None))]
    fn page(&self, keys: Option<Vec<Bound<'_, PyAny>>>) -> PyResult<String> {
        page(&self.query, &self.source, &self.evaluation, keys)
    }
}

/// The page of `evaluation`'s timelines for `keys` (none: the first three keys), and its whole
/// aggregate when it was kept.
fn page(
    query: &LibQuery,
    source: &str,
    evaluation: &LibEvaluation,
    keys: Option<Vec<Bound<'_, PyAny>>>,
) -> PyResult<String> {
    let aggregates = evaluation.aggregates();
    let wanted = keys
        .unwrap_or_default()
        .iter()
        .map(key_value)
        .collect::<PyResult<Vec<_>>>()?;
    timelines_page(query, source, &evaluation.engines(), aggregates, &wanted).map_err(|e| match e {
        PageError::MissingKeys => {
            PyValueError::new_err("some keys asked for are not keys of the events")
        }
        PageError::Other(m) => PyValueError::new_err(m),
    })
}

/// Where events come from: an Arrow C stream capsule, or file paths.
fn with_events<T>(
    stream: Option<&Bound<'_, PyCapsule>>,
    files: Option<Vec<String>>,
    then: impl FnOnce(Events<'_>) -> PyResult<T>,
) -> PyResult<T> {
    match (stream, files) {
        (Some(capsule), None) => {
            let batches = read_stream(capsule)?;
            then(Events::Batches(&batches))
        }
        (None, Some(paths)) => {
            let files =
                input::expand_paths(&paths).map_err(|e| InputError::new_err(e.to_string()))?;
            then(Events::Files(&files))
        }
        _ => Err(PyValueError::new_err(
            "give either an Arrow stream or files",
        )),
    }
}

/// What is asked of a query, as the Python layer passes it: a dict with every key.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Options {
    key: Option<String>,
    /// Times; `None` stands for each key's last event time.
    at: Vec<Option<u64>>,
    range: Option<(u64, u64)>,
    timeline: bool,
    time_column: String,
    time_unit: String,
    retain: Option<u64>,
    threads: Option<usize>,
}

impl Options {
    /// The request, checked.
    fn request(self) -> PyResult<Request> {
        if self.threads == Some(0) {
            return Err(PyValueError::new_err("threads must be at least 1"));
        }
        if let Some((t1, t2)) = self.range {
            check_range(t1, t2)?;
        }
        Ok(Request {
            key: self.key,
            time: TimeSpec {
                column: self.time_column,
                unit: time_unit_of(&self.time_unit)?,
            },
            retain: self.retain,
            threads: self.threads,
            at: self
                .at
                .into_iter()
                .map(|t| t.map_or(At::End, At::Time))
                .collect(),
            range: self.range,
            timeline: self.timeline,
            page: false,
            cancel: Some(Cancel(Arc::new(AtomicBool::new(false)))),
        })
    }
}

/// Evaluates `query` over the events of `stream` (an Arrow C stream capsule) or `files`, as
/// `options` (see [`Options`]) ask.
#[pyfunction]
fn evaluate(
    py: Python<'_>,
    query: &Query,
    stream: Option<&Bound<'_, PyCapsule>>,
    files: Option<Vec<String>>,
    options: Options,
) -> PyResult<Evaluation> {
    let request = options.request()?;
    let source = match &files {
        Some(f) => format!("{} event file(s)", f.len()),
        None => "in-memory data".to_string(),
    };
    let cancel = request.cancel.clone().expect("set above");
    let lib_query = query.query.clone();
    let (evaluation, answers) = with_events(stream, files, |events| {
        run_interruptibly(py, &cancel, || {
            let mut evaluation = answers::evaluate(&lib_query, events, &request)?;
            let batch = batch_of(&evaluation.rows(&request)?)?;
            Ok::<_, String>((evaluation, batch))
        })?
        .map_err(input_error)
    })?;
    Ok(Evaluation {
        query: lib_query,
        evaluation,
        answers: Py::new(py, ArrowTable { batch: answers })?,
        source,
    })
}

/// An engine fed batch by batch, answering between batches.
#[pyclass(module = "golem_timeline._native")]
struct Engine {
    query: LibQuery,
    request: Request,
    evaluation: LibEvaluation,
    /// Calls of `ingest` that succeeded.
    batches: u64,
}

#[pymethods]
impl Engine {
    /// An engine for `query`; `options` as `evaluate` takes them (only the key, the time
    /// column and unit and the retention matter here).
    #[new]
    fn new(query: &Query, options: Options) -> PyResult<Engine> {
        let request = options.request()?;
        let evaluation =
            LibEvaluation::empty(&query.query, &request).map_err(QueryError::new_err)?;
        Ok(Engine {
            query: query.query.clone(),
            request,
            evaluation,
            batches: 0,
        })
    }

    /// Takes the events of `stream` (an Arrow C stream capsule) or `files`; late ones too.
    #[pyo3(signature = (stream = None, files = None))]
    fn ingest(
        &mut self,
        py: Python<'_>,
        stream: Option<&Bound<'_, PyCapsule>>,
        files: Option<Vec<String>>,
    ) -> PyResult<()> {
        let (query, request, evaluation) = (&self.query, &self.request, &mut self.evaluation);
        with_events(stream, files, |events| {
            py.detach(|| evaluation.feed(query, events, request))
                .map_err(input_error)
        })?;
        self.batches += 1;
        Ok(())
    }

    /// Each key's value at `t` (`None`: each key's last event time).
    #[pyo3(signature = (t = None))]
    fn at(&mut self, py: Python<'_>, t: Option<u64>) -> PyResult<ArrowTable> {
        let request = Request {
            at: vec![t.map_or(At::End, At::Time)],
            ..self.request.clone()
        };
        self.read(py, &request)
    }

    /// Each key's segments over `[t1, t2)`.
    fn range(&mut self, py: Python<'_>, t1: u64, t2: u64) -> PyResult<ArrowTable> {
        check_range(t1, t2)?;
        let request = Request {
            range: Some((t1, t2)),
            ..self.request.clone()
        };
        self.read(py, &request)
    }

    /// The whole timeline of one key (`None` without a key column), or of every key.
    #[pyo3(signature = (key = None, every = false))]
    fn timeline(
        &mut self,
        py: Python<'_>,
        key: Option<Bound<'_, PyAny>>,
        every: bool,
    ) -> PyResult<ArrowTable> {
        let request = Request {
            timeline: true,
            ..self.request.clone()
        };
        if every || self.query.aggregate.is_some() {
            return self.read(py, &request);
        }
        let key = key.as_ref().map(key_value).transpose()?;
        let engine = match &self.evaluation {
            LibEvaluation::PerKey(engines) => &engines[0],
            LibEvaluation::Aggregate { .. } => unreachable!("answered above"),
        };
        let rows =
            answers::one_key_rows(engine, key.as_ref(), &request).map_err(PyValueError::new_err)?;
        let batch = batch_of(&rows).map_err(PyValueError::new_err)?;
        Ok(ArrowTable { batch })
    }

    /// Counters: keys, change points kept, bytes held, keys whose early history retention
    /// dropped, batches ingested.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let engines = self.evaluation.engines();
        let s = engines[0].stats();
        d.set_item("keys", s.keys)?;
        d.set_item("change_points", s.change_points)?;
        d.set_item("bytes", s.bytes)?;
        d.set_item("history_dropped", s.history_dropped)?;
        d.set_item("batches", self.batches)?;
        Ok(d)
    }

    /// The page drawing every node's timelines for `keys` (none: the first three keys).
    #[pyo3(signature = (keys = None))]
    fn page(&mut self, keys: Option<Vec<Bound<'_, PyAny>>>) -> PyResult<String> {
        self.evaluation.keep_aggregate();
        let source = format!("{} batch(es) ingested", self.batches);
        page(&self.query, &source, &self.evaluation, keys)
    }
}

impl Engine {
    fn read(&mut self, py: Python<'_>, request: &Request) -> PyResult<ArrowTable> {
        let evaluation = &mut self.evaluation;
        py.detach(|| batch_of(&evaluation.rows(request)?))
            .map(|batch| ArrowTable { batch })
            .map_err(PyValueError::new_err)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Query>()?;
    m.add_class::<Evaluation>()?;
    m.add_class::<Engine>()?;
    m.add_class::<ArrowTable>()?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add("QueryError", m.py().get_type::<QueryError>())?;
    m.add("InputError", m.py().get_type::<InputError>())?;
    Ok(())
}
