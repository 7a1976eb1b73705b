//! The emulated Golem: components, durable workers, worker-to-worker calls, and replay.
//!
//! Like Golem, every worker is one instance of its component, created on first use and named by
//! the caller. Every completed invocation is appended to the worker's log on disk, with the
//! results of the calls it made to other workers. A worker that is dropped (a simulated crash)
//! is rebuilt on its next use by replaying its log: the invocations run again, and their outgoing
//! calls are answered from the log instead of being made again, so nothing happens twice.

use crate::host_types::{golem, RpcError, WitValue};
use crate::wit_value::{val_to_wit_typed, wit_to_val, wit_tuple_to_vals, LoggedValue};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use wasmtime::component::{Component, Func, HasSelf, Instance, Linker, ResourceTable, Type, Val};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// A worker, by component id and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId {
    pub component_id: String,
    pub worker_name: String,
}

/// One completed invocation, as logged.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LogEntry {
    function: String,
    params: Vec<LoggedValue>,
    /// The calls this invocation made to other workers, in order, with their results.
    calls: Vec<LoggedCall>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LoggedCall {
    target: WorkerId,
    function: String,
    result: Result<LoggedValue, String>,
}

/// Whether a worker is running live or replaying its log.
enum Mode {
    Live { calls: Vec<LoggedCall> },
    Replay { calls: VecDeque<LoggedCall> },
}

/// The host state of one worker's store.
pub struct WorkerState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) id: WorkerId,
    pub(crate) env: Vec<(String, String)>,
    golem: Weak<Inner>,
    mode: Mode,
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WorkerState {
    /// A call from this worker to another, through `golem:rpc`: answered from the log while
    /// replaying, made (and logged) otherwise.
    pub(crate) fn outgoing_call(
        &mut self,
        component_id: &str,
        worker_name: &str,
        function: &str,
        params: Vec<WitValue>,
    ) -> Result<WitValue, RpcError> {
        let target = WorkerId {
            component_id: component_id.to_string(),
            worker_name: worker_name.to_string(),
        };
        match &mut self.mode {
            Mode::Replay { calls } => {
                let logged = calls.pop_front().ok_or_else(|| {
                    RpcError::RemoteInternalError(format!(
                        "replay of {} diverged: the log has no call to {function} on {worker_name}",
                        self.id.worker_name
                    ))
                })?;
                if logged.target != target || logged.function != function {
                    return Err(RpcError::RemoteInternalError(format!(
                        "replay of {} diverged: logged a call to {} on {}, now {function} on {worker_name}",
                        self.id.worker_name, logged.function, logged.target.worker_name
                    )));
                }
                logged
                    .result
                    .as_ref()
                    .map(WitValue::from)
                    .map_err(|e| RpcError::RemoteInternalError(e.clone()))
            }
            Mode::Live { .. } => {
                let Some(golem) = self.golem.upgrade() else {
                    return Err(RpcError::RemoteInternalError("the emulator is gone".into()));
                };
                let caller = self.id.worker_name.clone();
                let result = invoke_nested(&golem, &target, function, params, &caller);
                if let Mode::Live { calls } = &mut self.mode {
                    calls.push(LoggedCall {
                        target,
                        function: function.to_string(),
                        result: match &result {
                            Ok(v) => Ok(LoggedValue::from(v)),
                            Err(e) => Err(rpc_error_text(e)),
                        },
                    });
                }
                result
            }
        }
    }
}

/// How many worker-to-worker calls nest on one host thread before the next continues on a
/// fresh one.
const CALLS_PER_THREAD: usize = 8;

thread_local! {
    /// The worker-to-worker calls in progress on this host thread.
    static NESTED_CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A worker-to-worker call made from inside another invocation. Each nests on the host's stack
/// (a WebAssembly call inside a host call inside a WebAssembly call), and a delta climbs a
/// query's nodes one call inside the next, as deep as the deepest query accepted; so every few
/// levels the call continues on a fresh thread with a stack of its own. Golem runs every
/// invocation on its own.
fn invoke_nested(
    golem: &Arc<Inner>,
    target: &WorkerId,
    function: &str,
    params: Vec<WitValue>,
    caller: &str,
) -> Result<WitValue, RpcError> {
    let depth = NESTED_CALLS.get();
    if depth < CALLS_PER_THREAD {
        NESTED_CALLS.set(depth + 1);
        let result = golem.invoke(target, function, params, Some(caller));
        NESTED_CALLS.set(depth);
        return result;
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(format!("call to {}", target.worker_name))
            .stack_size(64 << 20)
            .spawn_scoped(scope, || {
                golem.invoke(target, function, params, Some(caller))
            })
            .map_err(|e| RpcError::RemoteInternalError(format!("no thread for the call: {e}")))?
            .join()
            .map_err(|_| RpcError::RemoteInternalError("the call's thread panicked".into()))?
    })
}

pub fn rpc_error_text(e: &RpcError) -> String {
    match e {
        RpcError::ProtocolError(s) => format!("protocol error: {s}"),
        RpcError::Denied(s) => format!("denied: {s}"),
        RpcError::NotFound(s) => format!("not found: {s}"),
        RpcError::RemoteInternalError(s) => s.clone(),
    }
}

/// A running worker: its store and instance.
struct Live {
    store: Store<WorkerState>,
    instance: Instance,
}

struct LoadedComponent {
    name: String,
    component: Component,
    /// The `.wasm` file's size in bytes (Golem's `componentSize`).
    size: u64,
}

/// A function a component exports, as Golem's component metadata lists it.
pub struct ExportedFunction {
    /// The exported interface, `package/interface` (`timeline:driver/api`).
    pub interface: String,
    /// The function's name in the interface (`run`).
    pub name: String,
    /// Named parameters.
    pub params: Vec<(String, Type)>,
    /// Result types.
    pub results: Vec<Type>,
}

/// Counters for tests and reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Instances created, including rebuilt ones.
    pub instances_created: u64,
    /// Invocations completed (not counting replays).
    pub invocations: u64,
    /// Invocations re-run from logs.
    pub replayed: u64,
    /// Crashes injected by [`Golem::inject_crashes`] that fired.
    pub crashes_injected: u64,
}

/// Where an injected crash strikes an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashPoint {
    /// The worker's instance is lost just before the invocation runs: it is rebuilt from its
    /// log, then runs the invocation.
    Before,
    /// The instance is lost after the invocation ran (its calls to other workers made) but
    /// before it completed: as Golem resumes a pending invocation, the instance is rebuilt from
    /// its log and the invocation runs again, the calls it had made answered from the record
    /// instead of made twice. The second run must return what the first did.
    Midway,
}

/// Random crashes at invocation points: a seeded generator and a rate.
struct CrashInjection {
    rng: rand::rngs::StdRng,
    per_million: u32,
}

struct Inner {
    engine: Engine,
    linker: Linker<WorkerState>,
    components: HashMap<String, LoadedComponent>,
    workers: Mutex<HashMap<WorkerId, Arc<Mutex<Option<Live>>>>>,
    log_dir: PathBuf,
    /// `{NAME}_COMPONENT_ID` of the components the driver calls: what [`Golem::driver_env`]
    /// gives it.
    driver_env: Vec<(String, String)>,
    counters: Mutex<Counters>,
    crashes: Mutex<Option<CrashInjection>>,
    /// Workers failed for good, with the reason (also kept on disk beside their logs).
    failed: Mutex<HashMap<WorkerId, String>>,
}

/// The emulated Golem host.
#[derive(Clone)]
pub struct Golem {
    inner: Arc<Inner>,
}

/// The component id the emulator gives a component name: a name-based UUID, so that logs stay
/// valid across runs.
pub fn component_id(name: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("golem-emulator:{name}").as_bytes(),
    )
    .to_string()
}

impl Golem {
    /// Loads `components` (name, path to the `.wasm`) and keeps worker logs under `log_dir`.
    /// A worker sees the environment it was created with ([`Golem::create_worker`]), none if
    /// its first invocation created it. Compiled components are cached next to the `.wasm`.
    pub fn new(components: &[(&str, &Path)], log_dir: &Path) -> Result<Golem> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // `perf` can name the components' functions when wasmtime writes a perf map.
        if std::env::var_os("TIMELINE_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        golem::rpc::types::add_to_linker::<_, HasSelf<WorkerState>>(&mut linker, |s| s)?;
        golem::api::host::add_to_linker::<_, HasSelf<WorkerState>>(&mut linker, |s| s)?;
        let mut loaded = HashMap::new();
        let mut driver_env = Vec::new();
        for (name, path) in components {
            let component = load_cached(&engine, path)
                .with_context(|| format!("loading component {name} from {}", path.display()))?;
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let id = component_id(name);
            if *name != "driver" {
                driver_env.push((
                    format!("{}_COMPONENT_ID", name.to_uppercase().replace('-', "_")),
                    id.clone(),
                ));
            }
            loaded.insert(
                id,
                LoadedComponent {
                    name: name.to_string(),
                    component,
                    size,
                },
            );
        }
        std::fs::create_dir_all(log_dir)?;
        Ok(Golem {
            inner: Arc::new(Inner {
                engine,
                linker,
                components: loaded,
                workers: Mutex::new(HashMap::new()),
                log_dir: log_dir.to_path_buf(),
                driver_env,
                counters: Mutex::new(Counters::default()),
                crashes: Mutex::new(None),
                failed: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Invokes `function` (`package/interface.{name}`) on a worker, creating it on first use,
    /// with component values; returns the function's results.
    ///
    /// As on Golem 1.1: a function the component does not export is refused (`InvalidRequest`)
    /// and changes nothing; parameters that do not fit the function (`Parameter type mismatch`)
    /// and a trap fail the worker for good, and every later call to it is refused with
    /// `PreviousInvocationFailed` until it is deleted ([`Golem::delete_worker`]).
    pub fn invoke(&self, worker: &WorkerId, function: &str, params: &[Val]) -> Result<Vec<Val>> {
        if let Some(why) = self.inner.failure(worker) {
            bail!(
                "PreviousInvocationFailed: worker {} failed: {why}",
                worker.worker_name
            );
        }
        let types = self
            .inner
            .signature(worker, function)
            .map_err(|e| anyhow!("InvalidRequest: {e:#}"))?;
        if params.len() != types.0.len() {
            let why = format!(
                "Parameter type mismatch: expected {}, got {} parameters",
                types.0.len(),
                params.len()
            );
            self.inner.fail(worker, &why)?;
            bail!(why);
        }
        let wit = match params
            .iter()
            .zip(&types.0)
            .map(|(v, t)| {
                let wit = val_to_wit_typed(v, t)?;
                wit_to_val(&wit, t)?; // the value must fit the type, not only convert
                Ok(wit)
            })
            .collect::<Result<Vec<WitValue>>>()
        {
            Ok(wit) => wit,
            Err(e) => {
                let why = format!("Parameter type mismatch: {e:#}");
                self.inner.fail(worker, &why)?;
                bail!(why);
            }
        };
        let result = self
            .inner
            .invoke(worker, function, wit, None)
            .map_err(|e| {
                anyhow!(
                    "{function} on {}: {}",
                    worker.worker_name,
                    rpc_error_text(&e)
                )
            })?;
        wit_tuple_to_vals(&result, &types.1)
    }

    /// Creates a worker with environment variables, as `golem-cli worker add --env` does (kept
    /// beside its log, so a restart keeps them). A worker that exists is refused.
    pub fn create_worker(&self, worker: &WorkerId, env: &[(String, String)]) -> Result<()> {
        if !self.inner.components.contains_key(&worker.component_id) {
            bail!("no component {}", worker.component_id);
        }
        if self.worker_exists(worker) {
            bail!("worker {} already exists", worker.worker_name);
        }
        let path = self.inner.env_path(worker);
        std::fs::create_dir_all(path.parent().expect("in the log dir"))?;
        std::fs::write(&path, serde_json::to_vec(env)?)?;
        Ok(())
    }

    /// Whether a worker exists: it was created, or called, and not deleted since.
    pub fn worker_exists(&self, worker: &WorkerId) -> bool {
        self.inner.log_path(worker).exists()
            || self.inner.env_path(worker).exists()
            || self.inner.failure(worker).is_some()
            || self.live_workers().contains(worker)
    }

    /// A worker's environment variables.
    pub fn worker_env(&self, worker: &WorkerId) -> Vec<(String, String)> {
        self.inner.env_of(worker)
    }

    /// The environment the driver is created with: the ids of the other three components
    /// (`CORE_COMPONENT_ID`, `EVENT_PROCESSOR_COMPONENT_ID`, `TIMELINE_PROCESSOR_COMPONENT_ID`).
    pub fn driver_env(&self) -> Vec<(String, String)> {
        self.inner.driver_env.clone()
    }

    /// The workers of a component that exist (created, or invoked, and not deleted since),
    /// in name order, whether or not they run now.
    pub fn workers_of(&self, component_id: &str) -> Vec<WorkerId> {
        let mut names = std::collections::BTreeSet::new();
        if let Ok(dir) = std::fs::read_dir(self.inner.log_dir.join(component_id)) {
            for entry in dir.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                for suffix in [".jsonl", ".env.json", ".failed"] {
                    if let Some(name) = file.strip_suffix(suffix) {
                        names.insert(name.to_string());
                    }
                }
            }
        }
        for w in self.live_workers() {
            if w.component_id == component_id {
                names.insert(w.worker_name);
            }
        }
        names
            .into_iter()
            .map(|worker_name| WorkerId {
                component_id: component_id.to_string(),
                worker_name,
            })
            .filter(|w| self.worker_exists(w))
            .collect()
    }

    /// Why a worker failed for good, if it did.
    pub fn worker_failure(&self, worker: &WorkerId) -> Option<String> {
        self.inner.failure(worker)
    }

    /// Marks a worker failed for good, as Golem 1.1 does when a call's parameters do not fit.
    pub fn fail_worker(&self, worker: &WorkerId, why: &str) -> Result<()> {
        self.inner.fail(worker, why)
    }

    /// A function's parameter and result types, from the component (no worker needed); `None`
    /// if the component or the function does not exist.
    pub fn function_types(
        &self,
        component_id: &str,
        function: &str,
    ) -> Option<(Vec<Type>, Vec<Type>)> {
        let (interface, name) = function.split_once(".{")?;
        let name = name.strip_suffix('}')?;
        let f = self
            .exports(component_id)?
            .into_iter()
            .find(|f| f.interface == interface && f.name == name)?;
        Some((f.params.into_iter().map(|(_, t)| t).collect(), f.results))
    }

    /// The functions a component exports from its interfaces, in the component's order;
    /// `None` for an unknown component.
    pub fn exports(&self, component_id: &str) -> Option<Vec<ExportedFunction>> {
        use wasmtime::component::types::ComponentItem;
        let c = self.inner.components.get(component_id)?;
        let engine = &self.inner.engine;
        let mut out = Vec::new();
        for (interface, item) in c.component.component_type().exports(engine) {
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                continue;
            };
            for (name, item) in instance.exports(engine) {
                if let ComponentItem::ComponentFunc(func) = item.ty {
                    out.push(ExportedFunction {
                        interface: interface.to_string(),
                        name: name.to_string(),
                        params: func.params().map(|(n, t)| (n.to_string(), t)).collect(),
                        results: func.results().collect(),
                    });
                }
            }
        }
        Some(out)
    }

    /// A component's `.wasm` size in bytes; `None` for an unknown component.
    pub fn component_size(&self, component_id: &str) -> Option<u64> {
        Some(self.inner.components.get(component_id)?.size)
    }

    /// The components, by id and name.
    pub fn components(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .inner
            .components
            .iter()
            .map(|(id, c)| (id.clone(), c.name.clone()))
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    /// Deletes a worker, as `golem-cli worker delete` does: its instance, its log and a failure
    /// are gone, and its next use creates it afresh.
    pub fn delete_worker(&self, worker: &WorkerId) -> Result<()> {
        self.crash(worker)?;
        for path in [
            self.inner.log_path(worker),
            self.inner.failure_path(worker),
            self.inner.env_path(worker),
        ] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("deleting {}", path.display()))
                }
                _ => {}
            }
        }
        self.inner.failed.lock().expect("lock").remove(worker);
        Ok(())
    }

    /// Drops a worker's instance, as if its executor crashed; its next use replays its log.
    pub fn crash(&self, worker: &WorkerId) -> Result<()> {
        let slot = self.inner.slot(worker);
        let mut guard = slot.lock().map_err(|_| anyhow!("poisoned"))?;
        *guard = None;
        Ok(())
    }

    /// How many invocations the worker's log holds: what it replays when it recovers (0 for a
    /// worker with no log).
    pub fn log_len(&self, worker: &WorkerId) -> Result<usize> {
        let path = self.inner.log_path(worker);
        if !path.exists() {
            return Ok(0);
        }
        Ok(read_log(&path)?.len())
    }

    /// The workers that exist (have a log or an instance).
    pub fn workers(&self) -> Vec<WorkerId> {
        let mut ids: Vec<WorkerId> = self
            .inner
            .workers
            .lock()
            .expect("lock")
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// The workers with a running instance.
    pub fn live_workers(&self) -> Vec<WorkerId> {
        let workers = self.inner.workers.lock().expect("lock");
        let mut ids: Vec<WorkerId> = workers
            .iter()
            .filter(|(_, slot)| slot.try_lock().map(|g| g.is_some()).unwrap_or(true))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// From now on, crashes each live invocation with probability `per_million` / 10^6, just
    /// before it runs or midway (after its effects, before it completes), chosen at random
    /// from `seed`; `per_million` 0 stops. Golem hides both from the caller (the worker is
    /// rebuilt from its log and the invocation resumed), and so does the emulator: a crash that
    /// changes any answer is a bug in a component or in replay. [`Counters::crashes_injected`]
    /// counts the crashes that fired.
    pub fn inject_crashes(&self, seed: u64, per_million: u32) {
        *self.inner.crashes.lock().expect("lock") = (per_million > 0).then(|| CrashInjection {
            rng: <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed),
            per_million,
        });
    }

    pub fn counters(&self) -> Counters {
        self.inner.counters.lock().expect("lock").clone()
    }

    /// The interfaces a component imports (`wasi:io/streams@0.2.3`, `golem:rpc/types@0.1.0`, …).
    pub fn component_imports(&self, name: &str) -> Vec<String> {
        let Some(c) = self.inner.components.get(&component_id(name)) else {
            return Vec::new();
        };
        let mut imports: Vec<String> = c
            .component
            .component_type()
            .imports(&self.inner.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        imports.sort();
        imports
    }

    /// The functions a component exports, as `package/interface.{name}` with their parameter
    /// types (for fuzzing every way in).
    pub fn exported_functions(&self, name: &str) -> Vec<(String, Vec<Type>)> {
        use wasmtime::component::types::ComponentItem;
        let Some(c) = self.inner.components.get(&component_id(name)) else {
            return Vec::new();
        };
        let engine = &self.inner.engine;
        let mut out = Vec::new();
        for (interface, item) in c.component.component_type().exports(engine) {
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                continue;
            };
            for (function, item) in instance.exports(engine) {
                if let ComponentItem::ComponentFunc(f) = item.ty {
                    out.push((
                        format!("{interface}.{{{function}}}"),
                        f.params().map(|(_, t)| t).collect(),
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The name of the component with this id.
    pub fn component_name(&self, id: &str) -> Option<&str> {
        self.inner.components.get(id).map(|c| c.name.as_str())
    }
}

/// Loads a component, compiling it once and caching the compiled form beside the `.wasm`.
fn load_cached(engine: &Engine, path: &Path) -> Result<Component> {
    let bytes = std::fs::read(path)?;
    let h = fnv1a(&[&bytes[..], env!("CARGO_PKG_VERSION").as_bytes()].concat());
    let cache = path.with_extension(format!("{h:016x}.cwasm"));
    if let Ok(cached) = std::fs::read(&cache) {
        // SAFETY: the file was written by `Component::serialize` of this same program (its name
        // carries a hash of the wasm and of our version); wasmtime also checks its own version
        // and configuration, and we fall back to compiling if it refuses.
        if let Ok(c) = unsafe { Component::deserialize(engine, &cached) } {
            return Ok(c);
        }
    }
    let component = Component::new(engine, &bytes)?;
    if let Ok(serialized) = component.serialize() {
        let _ = std::fs::write(&cache, serialized);
    }
    Ok(component)
}

/// Splits `package/interface.{function}`.
fn split_function(function: &str) -> Result<(&str, &str)> {
    let (interface, rest) = function
        .split_once(".{")
        .ok_or_else(|| anyhow!("`{function}` is not of the form package/interface.{{function}}"))?;
    let name = rest
        .strip_suffix('}')
        .ok_or_else(|| anyhow!("`{function}` lacks a closing brace"))?;
    Ok((interface, name))
}

impl Inner {
    fn slot(&self, id: &WorkerId) -> Arc<Mutex<Option<Live>>> {
        self.workers
            .lock()
            .expect("lock")
            .entry(id.clone())
            .or_default()
            .clone()
    }

    fn log_path(&self, id: &WorkerId) -> PathBuf {
        self.log_dir
            .join(&id.component_id)
            .join(format!("{}.jsonl", id.worker_name))
    }

    fn failure_path(&self, id: &WorkerId) -> PathBuf {
        self.log_dir
            .join(&id.component_id)
            .join(format!("{}.failed", id.worker_name))
    }

    /// Where a worker's environment is kept, when it was created with one.
    fn env_path(&self, id: &WorkerId) -> PathBuf {
        self.log_dir
            .join(&id.component_id)
            .join(format!("{}.env.json", id.worker_name))
    }

    /// A worker's environment: what it was created with. A worker created by its first
    /// invocation (over HTTP or RPC) has none, as on Golem 1.1.
    fn env_of(&self, id: &WorkerId) -> Vec<(String, String)> {
        std::fs::read(self.env_path(id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn failure(&self, id: &WorkerId) -> Option<String> {
        let mut failed = self.failed.lock().expect("lock");
        if let Some(why) = failed.get(id) {
            return Some(why.clone());
        }
        let why = std::fs::read_to_string(self.failure_path(id)).ok()?;
        failed.insert(id.clone(), why.clone());
        Some(why)
    }

    /// Fails the worker for good: its instance is dropped and every later call refused.
    fn fail(&self, id: &WorkerId, why: &str) -> Result<()> {
        let path = self.failure_path(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, why)?;
        self.failed
            .lock()
            .expect("lock")
            .insert(id.clone(), why.to_string());
        Ok(())
    }

    /// The parameter and result types of a function of a worker's component.
    fn signature(
        self: &Arc<Self>,
        worker: &WorkerId,
        function: &str,
    ) -> Result<(Vec<Type>, Vec<Type>)> {
        let slot = self.slot(worker);
        let _held = Held::take(worker, None).map_err(|e| anyhow!(rpc_error_text(&e)))?;
        let mut guard = slot.lock().map_err(|_| anyhow!("worker poisoned"))?;
        let live = self.ensure_live(worker, &mut guard)?;
        let func = find_func(live, function)?;
        let ty = func.ty(&live.store);
        Ok((
            ty.params().map(|(_, t)| t).collect(),
            ty.results().collect(),
        ))
    }

    /// Runs an invocation on a worker: the core of Golem's invoke-and-await.
    fn invoke(
        self: &Arc<Self>,
        worker: &WorkerId,
        function: &str,
        params: Vec<WitValue>,
        caller: Option<&str>,
    ) -> Result<WitValue, RpcError> {
        if !self.components.contains_key(&worker.component_id) {
            return Err(RpcError::NotFound(format!(
                "no component {}",
                worker.component_id
            )));
        }
        if let Some(why) = self.failure(worker) {
            return Err(RpcError::RemoteInternalError(format!(
                "PreviousInvocationFailed: worker {} failed: {why}",
                worker.worker_name
            )));
        }
        let slot = self.slot(worker);
        // A call into a worker already in this call chain would wait for itself; one from
        // elsewhere waits for the worker's current invocation to end, as Golem queues them.
        let _held = Held::take(worker, caller)?;
        let mut guard = slot
            .lock()
            .map_err(|_| RpcError::RemoteInternalError("worker poisoned".into()))?;
        let internal = |e: anyhow::Error| RpcError::RemoteInternalError(format!("{e:#}"));
        let crash = self.draw_crash();
        if crash == Some(CrashPoint::Before) {
            *guard = None;
        }
        let live = self.ensure_live(worker, &mut guard).map_err(internal)?;
        let entry = LogEntry {
            function: function.to_string(),
            params: params.iter().map(LoggedValue::from).collect(),
            calls: Vec::new(),
        };
        live.store.data_mut().mode = Mode::Live { calls: Vec::new() };
        match run(live, function, &params) {
            Ok(result) => {
                let calls = match std::mem::replace(
                    &mut live.store.data_mut().mode,
                    Mode::Live { calls: Vec::new() },
                ) {
                    Mode::Live { calls } => calls,
                    Mode::Replay { .. } => Vec::new(),
                };
                if crash == Some(CrashPoint::Midway) {
                    *guard = None;
                    self.resume(worker, &mut guard, function, &params, &calls, &result)
                        .map_err(internal)?;
                }
                self.append_log(worker, &LogEntry { calls, ..entry })
                    .map_err(internal)?;
                self.counters.lock().expect("lock").invocations += 1;
                Ok(result)
            }
            Err(e) if e.is::<Trapped>() => {
                // On Golem 1.1 a trap fails the worker for good.
                *guard = None;
                let why = format!("{function} trapped: {e:#}");
                self.fail(worker, &why).map_err(internal)?;
                Err(RpcError::RemoteInternalError(why))
            }
            Err(e) => {
                // Refused before it ran (no such function, parameters that do not convert):
                // nothing changed, and the instance is as it was.
                Err(RpcError::RemoteInternalError(format!("{function}: {e:#}")))
            }
        }
    }

    /// Whether an injected crash strikes the invocation about to run, and where.
    fn draw_crash(&self) -> Option<CrashPoint> {
        let mut crashes = self.crashes.lock().expect("lock");
        let injection = crashes.as_mut()?;
        let draw = rand::RngExt::random_range(&mut injection.rng, 0..2_000_000u32);
        let point = match draw {
            d if d < injection.per_million => CrashPoint::Before,
            d if d >= 1_000_000 && d - 1_000_000 < injection.per_million => CrashPoint::Midway,
            _ => return None,
        };
        drop(crashes);
        self.counters.lock().expect("lock").crashes_injected += 1;
        Some(point)
    }

    /// Resumes an invocation whose instance was lost midway: rebuilds the worker from its log
    /// and runs the invocation again, answering the calls it had made from `calls`. The second
    /// run must make the same calls and return the same result as the first.
    fn resume(
        self: &Arc<Self>,
        worker: &WorkerId,
        slot: &mut Option<Live>,
        function: &str,
        params: &[WitValue],
        calls: &[LoggedCall],
        first: &WitValue,
    ) -> Result<()> {
        let live = self.ensure_live(worker, slot)?;
        live.store.data_mut().mode = Mode::Replay {
            calls: calls.to_vec().into(),
        };
        let again = run(live, function, params)
            .with_context(|| format!("resuming {function} on {}", worker.worker_name))?;
        let left = match &live.store.data().mode {
            Mode::Replay { calls } => calls.len(),
            Mode::Live { .. } => 0,
        };
        live.store.data_mut().mode = Mode::Live { calls: Vec::new() };
        let text = |v: &WitValue| serde_json::to_string(&LoggedValue::from(v)).unwrap_or_default();
        if left > 0 || text(&again) != text(first) {
            bail!(
                "resuming {function} on {} diverged: {left} of its calls were not made again, or it returned {} instead of {}",
                worker.worker_name,
                text(&again),
                text(first)
            );
        }
        Ok(())
    }

    /// Makes sure the worker has an instance, rebuilding it from its log if needed.
    fn ensure_live<'a>(
        self: &Arc<Self>,
        id: &WorkerId,
        slot: &'a mut Option<Live>,
    ) -> Result<&'a mut Live> {
        if slot.is_none() {
            *slot = Some(self.start(id)?);
        }
        Ok(slot.as_mut().expect("just set"))
    }

    fn start(self: &Arc<Self>, id: &WorkerId) -> Result<Live> {
        let component = self
            .components
            .get(&id.component_id)
            .ok_or_else(|| anyhow!("no component {}", id.component_id))?;
        let env = self.env_of(id);
        let wasi = WasiCtxBuilder::new()
            .envs(&env)
            .inherit_stderr()
            // Workers must be deterministic under replay: fixed clocks and randomness.
            .wall_clock(FixedClock)
            .monotonic_clock(FixedClock)
            .secure_random(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0))
            .insecure_random(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1))
            .insecure_random_seed(0)
            .build();
        let state = WorkerState {
            wasi,
            table: ResourceTable::new(),
            id: id.clone(),
            env,
            golem: Arc::downgrade(self),
            mode: Mode::Live { calls: Vec::new() },
        };
        let mut store = Store::new(&self.engine, state);
        let instance = self.linker.instantiate(&mut store, &component.component)?;
        let mut live = Live { store, instance };
        self.counters.lock().expect("lock").instances_created += 1;
        // Replay the log, if any.
        let path = self.log_path(id);
        if path.exists() {
            for entry in read_log(&path)? {
                live.store.data_mut().mode = Mode::Replay {
                    calls: entry.calls.into(),
                };
                let params: Vec<WitValue> = entry.params.iter().map(WitValue::from).collect();
                run(&mut live, &entry.function, &params).with_context(|| {
                    format!("replaying {} of {}", entry.function, id.worker_name)
                })?;
                if let Mode::Replay { calls } = &live.store.data().mode {
                    if !calls.is_empty() {
                        bail!(
                            "replay of {} diverged: {} logged calls were not made again",
                            id.worker_name,
                            calls.len()
                        );
                    }
                }
                self.counters.lock().expect("lock").replayed += 1;
            }
        }
        live.store.data_mut().mode = Mode::Live { calls: Vec::new() };
        Ok(live)
    }

    fn append_log(&self, id: &WorkerId, entry: &LogEntry) -> Result<()> {
        let path = self.log_path(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(&log_record(entry)?)?;
        Ok(())
    }
}

/// A log record as written to disk: the CRC-32 of the entry's JSON, the JSON, a newline
/// (`{8 hex digits} {json}\n`). The checksum and the newline show a record that a crash or a
/// power cut cut short or garbled. Logs written before kept a 64-bit FNV-1a hash (16 hex
/// digits) instead; they still read. The record is built in one buffer, the JSON written
/// after room for the checksum: a packed batch is logged whole, so every copy of it counts.
fn log_record(entry: &LogEntry) -> Result<Vec<u8>> {
    const HEAD: usize = 9; // `{8 hex digits} `
    let mut record = vec![b' '; HEAD];
    serde_json::to_writer(&mut record, entry)?;
    let sum = crc32fast::hash(&record[HEAD..]);
    record[..HEAD - 1].copy_from_slice(format!("{sum:08x}").as_bytes());
    record.push(b'\n');
    Ok(record)
}

/// Reads a worker's log: its complete records, in order.
///
/// A record is appended once its invocation has completed and before its result is returned,
/// so a last record that breaks off or fails its checksum is an invocation whose caller never
/// had an answer: as Golem does with an incomplete oplog entry, it is dropped (and cut off the
/// file, so the next record follows the last good one) and the rest replays. A bad record
/// before the last cannot come from an interrupted append; the worker is then refused.
fn read_log(path: &Path) -> Result<Vec<LogEntry>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut entries = Vec::new();
    let mut good_end = 0;
    let mut rest = &bytes[..];
    let mut line = 0;
    while !rest.is_empty() {
        line += 1;
        let (record, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], true),
            None => (rest, false),
        };
        let is_last = !complete || record.len() + 1 == rest.len();
        match complete.then(|| parse_record(record)).flatten() {
            Some(entry) => entries.push(entry),
            None if is_last => {
                eprintln!(
                    "golem-emulator: {}:{line}: the last record is incomplete (an interrupted append); dropped",
                    path.display()
                );
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)?
                    .set_len(good_end as u64)?;
                break;
            }
            None => bail!(
                "{}:{line}: the record is corrupt (its checksum does not match) and is not the last: the worker's log is damaged",
                path.display()
            ),
        }
        good_end += record.len() + 1;
        rest = &rest[(record.len() + 1).min(rest.len())..];
    }
    Ok(entries)
}

/// A record's entry, if its checksum matches its JSON and the JSON reads.
fn parse_record(record: &[u8]) -> Option<LogEntry> {
    let text = std::str::from_utf8(record).ok()?;
    let (sum, json) = text.split_once(' ')?;
    let matches = match sum.len() {
        8 => u32::from_str_radix(sum, 16).ok()? == crc32fast::hash(json.as_bytes()),
        // Records of logs written before the checksum was a CRC-32.
        16 => u64::from_str_radix(sum, 16).ok()? == fnv1a(json.as_bytes()),
        _ => false,
    };
    matches.then(|| serde_json::from_str(json).ok()).flatten()
}

/// The 64-bit FNV-1a hash: a stable checksum, the same on every platform and run.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn find_func(live: &mut Live, function: &str) -> Result<Func> {
    let (interface, name) = split_function(function)?;
    let iface = live
        .instance
        .get_export_index(&mut live.store, None, interface)
        .ok_or_else(|| anyhow!("the component exports no interface {interface}"))?;
    let f = live
        .instance
        .get_export_index(&mut live.store, Some(&iface), name)
        .ok_or_else(|| anyhow!("{interface} has no function {name}"))?;
    live.instance
        .get_func(&mut live.store, f)
        .ok_or_else(|| anyhow!("{function} is not a function"))
}

/// Calls a function with `wit-value` parameters; returns its results as one tuple `wit-value`.
fn run(live: &mut Live, function: &str, params: &[WitValue]) -> Result<WitValue> {
    let func = find_func(live, function)?;
    let ty = func.ty(&live.store);
    let param_types: Vec<Type> = ty.params().map(|(_, t)| t).collect();
    let result_types: Vec<Type> = ty.results().collect();
    if params.len() != param_types.len() {
        bail!(
            "{function} takes {} parameters, {} given",
            param_types.len(),
            params.len()
        );
    }
    let args: Vec<Val> = params
        .iter()
        .zip(&param_types)
        .enumerate()
        .map(|(i, (p, t))| {
            wit_to_val(p, t).with_context(|| format!("parameter {} of {function}", i + 1))
        })
        .collect::<Result<_>>()?;
    let mut results = vec![Val::Bool(false); result_types.len()];
    func.call(&mut live.store, &args, &mut results)
        .map_err(|e| anyhow::Error::new(Trapped(format!("{e:#}"))))?;
    let mut nodes = vec![crate::host_types::WitNode::TupleValue(Vec::new())];
    let mut indices = Vec::new();
    for (r, t) in results.iter().zip(&result_types) {
        let sub = val_to_wit_typed(r, t)?;
        let offset = nodes.len() as i32;
        indices.push(offset);
        nodes.extend(sub.nodes.into_iter().map(|n| shift(n, offset)));
    }
    nodes[0] = crate::host_types::WitNode::TupleValue(indices);
    Ok(WitValue { nodes })
}

/// The invocation trapped (as opposed to being refused before it ran).
#[derive(Debug)]
struct Trapped(String);

impl std::fmt::Display for Trapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Trapped {}

/// Moves a node's child indices by `offset` (when a value is embedded in a larger one).
fn shift(n: crate::host_types::WitNode, offset: i32) -> crate::host_types::WitNode {
    use crate::host_types::WitNode::*;
    let s = |xs: Vec<i32>| xs.into_iter().map(|x| x + offset).collect();
    let o = |x: Option<i32>| x.map(|x| x + offset);
    match n {
        RecordValue(xs) => RecordValue(s(xs)),
        TupleValue(xs) => TupleValue(s(xs)),
        ListValue(xs) => ListValue(s(xs)),
        VariantValue((c, p)) => VariantValue((c, o(p))),
        OptionValue(x) => OptionValue(o(x)),
        ResultValue(Ok(x)) => ResultValue(Ok(o(x))),
        ResultValue(Err(x)) => ResultValue(Err(o(x))),
        other => other,
    }
}

/// A clock that never moves: workers must not depend on time (they never read it).
struct FixedClock;

impl wasmtime_wasi::HostWallClock for FixedClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1_700_000_000)
    }
}

impl wasmtime_wasi::HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_types::WitNode;

    fn entry() -> LogEntry {
        LogEntry {
            function: "timeline:event-processor/api.{ingest-packed}".into(),
            params: vec![LoggedValue::from(&WitValue {
                nodes: vec![WitNode::PrimString("e1 5 1 3:cdn s4:CDN1 \"é\\\n".into())],
            })],
            calls: Vec::new(),
        }
    }

    fn json(e: &LogEntry) -> String {
        serde_json::to_string(e).expect("an entry serializes")
    }

    #[test]
    fn a_record_reads_back_and_a_changed_byte_is_caught() {
        let record = log_record(&entry()).expect("a record");
        assert_eq!(record.last(), Some(&b'\n'));
        let line = &record[..record.len() - 1];
        let read = parse_record(line).expect("the record reads back");
        assert_eq!(json(&read), json(&entry()));
        for at in [0, 7, 9, line.len() / 2, line.len() - 1] {
            let mut garbled = line.to_vec();
            garbled[at] ^= 0x01;
            assert!(parse_record(&garbled).is_none(), "byte {at} changed");
        }
    }

    #[test]
    fn records_of_logs_written_with_the_older_checksum_still_read() {
        let text = json(&entry());
        let old = format!("{:016x} {text}", fnv1a(text.as_bytes()));
        let read = parse_record(old.as_bytes()).expect("an FNV-1a record reads");
        assert_eq!(json(&read), text);
        let wrong = format!("{:016x} {text}", fnv1a(text.as_bytes()) ^ 1);
        assert!(parse_record(wrong.as_bytes()).is_none());
    }
}

thread_local! {
    /// The workers this thread's call chain is inside: an invocation runs its RPC calls on the
    /// caller's thread, so a worker found here again is a call cycle.
    static CALL_CHAIN: RefCell<Vec<WorkerId>> = const { RefCell::new(Vec::new()) };
}

/// A worker entered by this thread's call chain, left when dropped.
struct Held;

impl Held {
    /// Enters `worker`, refusing a call cycle (a worker calling back into itself through
    /// others), which would wait for itself for ever.
    fn take(worker: &WorkerId, caller: Option<&str>) -> Result<Held, RpcError> {
        CALL_CHAIN.with_borrow_mut(|chain| {
            if chain.contains(worker) {
                return Err(RpcError::RemoteInternalError(format!(
                    "worker {} is busy: a call cycle ({} calls back into it)",
                    worker.worker_name,
                    caller.unwrap_or("the caller")
                )));
            }
            chain.push(worker.clone());
            Ok(Held)
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        CALL_CHAIN.with_borrow_mut(|chain| {
            chain.pop();
        });
    }
}
