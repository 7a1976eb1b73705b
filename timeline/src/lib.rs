//! Timeline analytics (time-state analytics) over event streams.
//!
//! A query is a tree of [`TimeLineOp`]s (built in Rust with [`op`]'s builder, or parsed from the
//! text DSL with [`parse_query`]). The [`Engine`] evaluates it per partition key, incrementally:
//! every node keeps its output [`Timeline`] and, when events arrive (in any order), recomputes
//! only the changed suffix and passes it up as a [`Delta`]. (In-process, a tree of pointwise
//! operators keeps only its top's timeline, and the leaves only such trees read keep their
//! events alone when their value follows from recent events; see [`engine`].) The [`wire`]
//! format packs batches of events and deltas for workers that pass them to each other.
//!
//! The crate does no I/O and has no Golem dependency; the CLI and the Golem components are thin
//! layers over it.

pub mod aggregate;
pub mod engine;
pub mod event;
pub mod flat;
pub mod forward;
pub mod keys;
pub mod limits;
pub mod node;
pub mod op;
mod packed;
pub mod parser;
pub mod plan;
pub mod pointwise;
pub mod readers;
pub mod timeline;
pub mod value;
pub mod wire;
pub mod worker;

pub use engine::{Changed, Engine, EngineOptions, IngestError, QueryError, Stats};
pub use event::Event;
pub use flat::{FlatNode, FlatOp};
pub use op::{CmpOp, Predicate, TimeLineOp, ValidationError};
pub use parser::{parse_predicate, parse_query, ParseError};
pub use plan::{node_id, shard_of, worker_index, Plan, PlanNode, Scope};
pub use timeline::{Delta, Segment, Timeline};
pub use value::{State, Value};
pub use worker::{DerivedNode, KeyDelta, KeyPage, KeyQuery, LeafNode, MirrorNode};
