//! The `timeline` command's reading of event files, as a library: the binary (`src/main.rs`)
//! and the fuzz targets (`fuzz/`) share it.
//!
//! - [`html`]: a page drawing a query's timelines.
//! - [`input`]: JSON Lines and CSV, recognised from the first line, with file, line and reason
//!   for every refusal.
//! - [`marks`]: the commas and newlines of a CSV body, 64 bytes at a time.
//! - [`shards`]: a CSV file's keys split over threads, each feeding an engine of its own.
//! - [`parquet_input`]: Parquet event files, read column by column.
//! - [`parquet_output`]: answers written as Parquet.
//! - [`progress`]: the progress line on a terminal.
//! - [`time`]: event times: units, the time column, RFC 3339 timestamps.

pub mod html;
pub mod input;
pub mod marks;
pub mod parquet_input;
pub mod parquet_output;
pub mod progress;
pub mod shards;
pub mod time;
