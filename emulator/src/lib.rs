//! An in-process emulation of the Golem 1.1 host on `wasmtime`, and a typed client for the
//! timeline components running on it.
//!
//! - [`Golem`] loads compiled components and runs their workers: one instance per worker,
//!   created on first use; `golem:rpc` calls between workers; `golem:api` self metadata;
//!   every invocation logged on disk, and replayed to rebuild a worker after a crash.
//! - [`TimelineSystem`] starts the four timeline components on it and talks to the driver the
//!   way a user does over Golem's HTTP API.

mod client;
mod emulator;
pub mod golem_json;
pub mod host;
pub mod host_types;
pub mod wit_value;

pub use client::{
    components_dir, event_val, event_value, field, read_state, NodeView, PlanView, Readers,
    TimelineSystem, WorkerStats, COMPONENTS,
};
pub use emulator::{component_id, Counters, ExportedFunction, Golem, WorkerId};
