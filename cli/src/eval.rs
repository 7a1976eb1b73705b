//! `timeline eval`: the answers of `timeline_formats::answers` over event files, printed or
//! written once every one is computed.

use crate::args::{EvalArgs, Format};
use crate::load_query_in;
use crate::output::{write_csv, write_json, write_page, write_table};
use std::io::{BufWriter, Write};
use timeline_formats::answers::{self, tabulate, Events, Request};
use timeline_formats::{input, parquet_output};

pub(crate) fn eval(a: &EvalArgs) -> Result<(), String> {
    let query = load_query_in(&a.query, a.time.unit.per_second())?;
    let files = input::expand_paths(&a.events).map_err(|e| e.to_string())?;
    let request = request(a);
    let mut evaluation = answers::evaluate(&query, Events::Files(&files), &request)?;
    if a.html {
        let aggregates = evaluation.aggregates();
        return write_page(a, &query, &evaluation.engines(), aggregates);
    }
    let rows = evaluation.rows(&request)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if let Some(path) = &a.out {
        let (header, records) = tabulate(&rows);
        return parquet_output::write(path, &header, &records);
    }
    let written = match a.format {
        _ if a.csv => write_csv(&mut out, &rows),
        Format::Json => write_json(&mut out, &rows),
        Format::Table => write_table(&mut out, &rows),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the result: {e}"))
}

/// What the command line asks of the query.
fn request(a: &EvalArgs) -> Request {
    Request {
        key: a.key.clone(),
        time: a.time.clone(),
        retain: a.retain,
        threads: a.threads,
        at: a.at.clone(),
        range: a.range,
        timeline: a.timeline,
        page: a.html,
        cancel: None,
    }
}
