//! `timeline`: answers timeline queries over event files, runs them on the Golem components,
//! serves Golem 1.1's API over them, and talks to a Golem server.
//!
//! The binary is a thin layer over the `timeline` library and the file formats of
//! `timeline-formats`; this file only reads the command line and dispatches:
//!
//! - [`args`]: the command line (clap), checked into typed arguments;
//! - [`eval`] and [`output`]: `eval`, its answers and how they are printed;
//! - [`run`]: `run`, a job of node workers over a file;
//! - [`serve`]: `serve`, Golem 1.1's REST API on the emulated Golem;
//! - [`golem`]: `golem`, the client of a Golem 1.1 endpoint.
//!
//! Exit status 2 means bad input or a usage mistake; nothing is printed as a result unless the
//! whole input was read and evaluated.

mod args;
mod eval;
mod golem;
mod output;
mod run;
mod serve;

use args::{Command, QuerySource};
use std::process::ExitCode;
use timeline::aggregate::{Query, QueryPlan};
use timeline_formats::input;

/// glibc's malloc spent a third of ingestion consolidating free chunks; mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in `mimalloc.h`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for them
/// (`madvise`), and with the usual `defrag` setting each first touch of a 2 MiB page then
/// compacts memory and zeroes the whole page in the fault: on the 10M bench that kernel work was
/// a fifth to a third of a run (1.2-1.9 s of system time), against 0.2 s in 4 KiB pages. The
/// flag holds for every later fault, in mappings made before it too.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: sets a flag of the calling process; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    // Freed memory stays with the process: by default mimalloc hands it back to the kernel after
    // 10 ms, and the next allocation faults fresh zeroed pages in again; zeroing was a third of a
    // run's time. The process is short-lived, so keeping its peak is the cheaper trade.
    // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    no_transparent_huge_pages();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args::parse(&args) {
        Err(e) => Err(e.to_string()),
        Ok(Command::Help) => {
            print!("{}", args::help(&args));
            Ok(())
        }
        Ok(Command::Completions(shell)) => {
            let mut command = args::definition();
            clap_complete::generate(shell, &mut command, "timeline", &mut std::io::stdout());
            Ok(())
        }
        Ok(Command::Version) => {
            println!("timeline {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Ok(Command::Explain(source)) => explain(&source),
        Ok(Command::Eval(a)) => eval::eval(&a),
        Ok(Command::Run(a)) => load_query(&a.query).and_then(|q| run::run(&a, &q)),
        Ok(Command::Serve(a)) => serve::serve(&a),
        Ok(Command::Golem(a)) => golem::golem(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Reads and parses the query; errors point at the line and column, with the line shown.
fn load_query(source: &QuerySource) -> Result<Query, String> {
    load_query_in(source, 1)
}

/// Reads and parses the query with duration literals (`5m`) in `units_per_second` units.
pub(crate) fn load_query_in(source: &QuerySource, units_per_second: u64) -> Result<Query, String> {
    let (name, text) = match source {
        QuerySource::Text(t) => ("query".to_string(), t.clone()),
        QuerySource::File(p) => (p.clone(), input::read_text(p).map_err(|e| e.to_string())?),
    };
    input::parse_query(&name, &text, units_per_second)
}

fn explain(source: &QuerySource) -> Result<(), String> {
    let query = load_query(source)?;
    print!("{}", QueryPlan::new(&query));
    Ok(())
}
