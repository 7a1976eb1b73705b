//! The Golem host functions the components import (their types in [`crate::host_types`]): `golem:rpc` (worker-to-worker calls) and
//! the part of `golem:api/host` they use (their own metadata). Anything else traps with a
//! message naming the function.

use crate::emulator::WorkerState;
use crate::host_types::{golem, FutureInvokeResult, GetWorkers, RpcError, WasmRpcTarget, WitValue};
use anyhow::{anyhow, Result};
use wasmtime::component::Resource;

fn not_emulated(name: &str) -> anyhow::Error {
    anyhow!("{name} is not emulated: the timeline components do not use it")
}

/// Parses `urn:worker:{component-id}/{worker-name}`.
pub fn parse_worker_uri(uri: &str) -> Result<(String, String), String> {
    let rest = uri.strip_prefix("urn:worker:").ok_or_else(|| {
        format!("`{uri}` is not a worker URI (urn:worker:{{component-id}}/{{worker-name}})")
    })?;
    let (component, worker) = rest.split_once('/').ok_or_else(|| {
        format!("`{uri}` names no worker (urn:worker:{{component-id}}/{{worker-name}})")
    })?;
    if component.is_empty() || worker.is_empty() {
        return Err(format!("`{uri}` has an empty component id or worker name"));
    }
    Ok((component.to_string(), worker.to_string()))
}

impl golem::rpc::types::Host for WorkerState {}

impl golem::rpc::types::HostWasmRpc for WorkerState {
    fn new(&mut self, location: golem::rpc::types::Uri) -> Result<Resource<WasmRpcTarget>> {
        // A bad URI is reported when the resource is used, as Golem does.
        let (component_id, worker_name) = parse_worker_uri(&location.value).unwrap_or_default();
        Ok(self.table.push(WasmRpcTarget {
            component_id,
            worker_name,
        })?)
    }

    fn invoke_and_await(
        &mut self,
        rpc: Resource<WasmRpcTarget>,
        function_name: String,
        function_params: Vec<WitValue>,
    ) -> Result<Result<WitValue, RpcError>> {
        let target = self.table.get(&rpc)?;
        let (component, worker) = (target.component_id.clone(), target.worker_name.clone());
        Ok(self.outgoing_call(&component, &worker, &function_name, function_params))
    }

    fn invoke(
        &mut self,
        rpc: Resource<WasmRpcTarget>,
        function_name: String,
        function_params: Vec<WitValue>,
    ) -> Result<Result<(), RpcError>> {
        // Fire-and-forget runs to completion here: the emulation is single-threaded.
        Ok(self
            .invoke_and_await(rpc, function_name, function_params)?
            .map(|_| ()))
    }

    fn async_invoke_and_await(
        &mut self,
        _rpc: Resource<WasmRpcTarget>,
        _function_name: String,
        _function_params: Vec<WitValue>,
    ) -> Result<Resource<FutureInvokeResult>> {
        Err(not_emulated(
            "golem:rpc/types.{[method]wasm-rpc.async-invoke-and-await}",
        ))
    }

    fn drop(&mut self, rpc: Resource<WasmRpcTarget>) -> Result<()> {
        self.table.delete(rpc)?;
        Ok(())
    }
}

impl golem::rpc::types::HostFutureInvokeResult for WorkerState {
    fn subscribe(
        &mut self,
        _f: Resource<FutureInvokeResult>,
    ) -> Result<Resource<wasmtime_wasi::p2::DynPollable>> {
        Err(not_emulated(
            "golem:rpc/types.{[method]future-invoke-result.subscribe}",
        ))
    }

    fn get(
        &mut self,
        _f: Resource<FutureInvokeResult>,
    ) -> Result<Option<Result<WitValue, RpcError>>> {
        Err(not_emulated(
            "golem:rpc/types.{[method]future-invoke-result.get}",
        ))
    }

    fn drop(&mut self, f: Resource<FutureInvokeResult>) -> Result<()> {
        self.table.delete(f)?;
        Ok(())
    }
}

use golem::api::host as api;

impl api::HostGetWorkers for WorkerState {
    fn new(
        &mut self,
        _c: api::ComponentId,
        _f: Option<api::WorkerAnyFilter>,
        _p: bool,
    ) -> Result<Resource<GetWorkers>> {
        Err(not_emulated("golem:api/host.{[constructor]get-workers}"))
    }

    fn get_next(&mut self, _g: Resource<GetWorkers>) -> Result<Option<Vec<api::WorkerMetadata>>> {
        Err(not_emulated(
            "golem:api/host.{[method]get-workers.get-next}",
        ))
    }

    fn drop(&mut self, g: Resource<GetWorkers>) -> Result<()> {
        self.table.delete(g)?;
        Ok(())
    }
}

impl api::Host for WorkerState {
    fn get_self_metadata(&mut self) -> Result<api::WorkerMetadata> {
        let uuid = uuid::Uuid::parse_str(&self.id.component_id).unwrap_or_default();
        let (hi, lo) = uuid.as_u64_pair();
        Ok(api::WorkerMetadata {
            worker_id: api::WorkerId {
                component_id: api::ComponentId {
                    uuid: api::Uuid {
                        high_bits: hi,
                        low_bits: lo,
                    },
                },
                worker_name: self.id.worker_name.clone(),
            },
            args: Vec::new(),
            env: self.env.clone(),
            status: api::WorkerStatus::Running,
            component_version: 0,
            retry_count: 0,
        })
    }

    fn create_promise(&mut self) -> Result<api::PromiseId> {
        Err(not_emulated("golem:api/host.{create-promise}"))
    }
    fn await_promise(&mut self, _p: api::PromiseId) -> Result<Vec<u8>> {
        Err(not_emulated("golem:api/host.{await-promise}"))
    }
    fn complete_promise(&mut self, _p: api::PromiseId, _d: Vec<u8>) -> Result<bool> {
        Err(not_emulated("golem:api/host.{complete-promise}"))
    }
    fn delete_promise(&mut self, _p: api::PromiseId) -> Result<()> {
        Err(not_emulated("golem:api/host.{delete-promise}"))
    }
    fn get_oplog_index(&mut self) -> Result<api::OplogIndex> {
        Err(not_emulated("golem:api/host.{get-oplog-index}"))
    }
    fn set_oplog_index(&mut self, _i: api::OplogIndex) -> Result<()> {
        Err(not_emulated("golem:api/host.{set-oplog-index}"))
    }
    fn oplog_commit(&mut self, _r: u8) -> Result<()> {
        Err(not_emulated("golem:api/host.{oplog-commit}"))
    }
    fn mark_begin_operation(&mut self) -> Result<api::OplogIndex> {
        Err(not_emulated("golem:api/host.{mark-begin-operation}"))
    }
    fn mark_end_operation(&mut self, _b: api::OplogIndex) -> Result<()> {
        Err(not_emulated("golem:api/host.{mark-end-operation}"))
    }
    fn get_retry_policy(&mut self) -> Result<api::RetryPolicy> {
        Err(not_emulated("golem:api/host.{get-retry-policy}"))
    }
    fn set_retry_policy(&mut self, _p: api::RetryPolicy) -> Result<()> {
        Err(not_emulated("golem:api/host.{set-retry-policy}"))
    }
    fn get_oplog_persistence_level(&mut self) -> Result<api::PersistenceLevel> {
        Err(not_emulated("golem:api/host.{get-oplog-persistence-level}"))
    }
    fn set_oplog_persistence_level(&mut self, _l: api::PersistenceLevel) -> Result<()> {
        Err(not_emulated("golem:api/host.{set-oplog-persistence-level}"))
    }
    fn get_idempotence_mode(&mut self) -> Result<bool> {
        Err(not_emulated("golem:api/host.{get-idempotence-mode}"))
    }
    fn set_idempotence_mode(&mut self, _i: bool) -> Result<()> {
        Err(not_emulated("golem:api/host.{set-idempotence-mode}"))
    }
    fn generate_idempotency_key(&mut self) -> Result<api::Uuid> {
        Err(not_emulated("golem:api/host.{generate-idempotency-key}"))
    }
    fn update_worker(
        &mut self,
        _w: api::WorkerId,
        _v: api::ComponentVersion,
        _m: api::UpdateMode,
    ) -> Result<()> {
        Err(not_emulated("golem:api/host.{update-worker}"))
    }
    fn get_worker_metadata(&mut self, _w: api::WorkerId) -> Result<Option<api::WorkerMetadata>> {
        Err(not_emulated("golem:api/host.{get-worker-metadata}"))
    }
}
