//! The file formats of the `timeline` command: event files read, and answers written. No
//! command-line or network code: the CLI (`cli/`), the fuzz targets (`fuzz/`) and the bench
//! share it.
//!
//! - [`html`]: a page drawing a query's timelines.
//! - [`input`]: JSON Lines, CSV and Parquet event files, recognised from their first bytes, from
//!   directories, patterns and compressed files, with file, line and reason for every refusal.
//! - [`marks`]: the commas and newlines of a CSV body, 64 bytes at a time.
//! - [`shards`]: a CSV file's keys split over threads, each feeding an engine of its own.
//! - [`parquet_input`]: Parquet event files, read column by column.
//! - [`parquet_output`]: answers written as Parquet.
//! - [`progress`]: the progress line on a terminal.
//! - [`time`]: event times: units, the time column, RFC 3339 timestamps.

#[cfg(feature = "parquet")]
pub mod answers;
pub mod html;
pub mod input;
pub mod marks;
#[cfg(feature = "parquet")]
pub mod parquet_input;
#[cfg(feature = "parquet")]
pub mod parquet_output;
pub mod progress;
pub mod shards;
pub mod time;
