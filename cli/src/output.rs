//! The answers as they are printed or written: JSON Lines, a table, CSV, Parquet and the HTML
//! page.

use crate::args::EvalArgs;
use std::io::Write;
use timeline::aggregate::{Aggregates, GroupRow, Num, Query};
use timeline::{Engine, State, Value};
use timeline_formats::answers::{tabulate, Row};
use timeline_formats::input;

/// A point answer, fields in the documented order.
#[derive(serde::Serialize)]
struct PointLine<'a> {
    key: Option<&'a Value>,
    at: u64,
    value: &'a State,
}

/// A segment answer, fields in the documented order.
#[derive(serde::Serialize)]
struct SegmentLine<'a> {
    key: Option<&'a Value>,
    from: u64,
    to: Option<u64>,
    value: &'a State,
    slope: u8,
}

/// An aggregate's functions for one group at one time: `group`, `at`, then each function
/// asked for, in the order asked for.
struct GroupLine<'a>(&'a GroupRow);

impl serde::Serialize for GroupLine<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2 + self.0.values.len()))?;
        m.serialize_entry("group", &self.0.group)?;
        m.serialize_entry("at", &self.0.at)?;
        for (f, v) in &self.0.values {
            m.serialize_entry(f.name(), v)?;
        }
        m.end()
    }
}

/// A segment of one function of one group, fields in the documented order.
#[derive(serde::Serialize)]
struct AggSegmentLine<'a> {
    group: &'a Option<Value>,
    agg: &'static str,
    from: u64,
    to: Option<u64>,
    value: Option<Num>,
    slope: Num,
}

pub(crate) fn write_json(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    for row in rows {
        match row {
            Row::Group(g) => serde_json::to_writer(&mut *out, &GroupLine(g))?,
            Row::AggSegment {
                group,
                agg,
                segment: s,
            } => serde_json::to_writer(
                &mut *out,
                &AggSegmentLine {
                    group,
                    agg: agg.name(),
                    from: s.from,
                    to: s.to,
                    value: s.value,
                    slope: s.slope,
                },
            )?,
            Row::At { key, at, state } => serde_json::to_writer(
                &mut *out,
                &PointLine {
                    key: *key,
                    at: *at,
                    value: state,
                },
            )?,
            Row::Segment { key, segment: s } => serde_json::to_writer(
                &mut *out,
                &SegmentLine {
                    key: *key,
                    from: s.from,
                    to: s.to,
                    value: &s.state,
                    slope: s.state.slope(),
                },
            )?,
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// `--format html`: the page drawing every node of the plan for the chosen keys (and, for an
/// aggregate, each function per group), written to `--out`.
pub(crate) fn write_page(
    a: &EvalArgs,
    query: &Query,
    engines: &[&Engine],
    aggregates: Option<&Aggregates>,
) -> Result<(), String> {
    let path = a.out.as_deref().ok_or("--format html needs --out PATH")?;
    let wanted: Vec<Value> = a
        .show_keys
        .iter()
        .map(|k| match input::infer_scalar(k) {
            Ok(input::Scalar::Value(v)) => v,
            _ => Value::str(k),
        })
        .collect();
    let html = timeline_formats::html::timelines_page(
        query,
        &format!("{} event file(s)", a.events.len()),
        engines,
        aggregates,
        &wanted,
    )
    .map_err(|e| match e {
        timeline_formats::html::PageError::MissingKeys => {
            format!(
                "--show-key: some of {:?} are not keys of the events",
                a.show_keys
            )
        }
        timeline_formats::html::PageError::Other(e) => e,
    })?;
    std::fs::write(path, html).map_err(|e| format!("cannot write {path}: {e}"))
}

/// The rows as CSV: a header line, then one record per row, in the columns of the JSON lines
/// (an unknown value is an empty cell).
pub(crate) fn write_csv(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let (header, records) = tabulate(rows);
    let mut w = csv::Writer::from_writer(out);
    if records.is_empty() {
        return w.flush();
    }
    w.write_record(&header)?;
    for record in records {
        w.write_record(record.iter().map(|v| match v {
            None => String::new(),
            Some(Value::Str(s)) => s.to_string(),
            Some(v) => v.to_string(),
        }))?;
    }
    w.flush()
}

pub(crate) fn write_table(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let show = |s: &State| match s.instant_value() {
        None => "unknown".to_string(),
        Some(Value::Str(s)) => s.to_string(),
        Some(v) => v.to_string(),
    };
    let key = |k: &Option<&Value>| k.map_or("-".to_string(), |k| show(&State::Value(k.clone())));
    let mut cells: Vec<Vec<String>> = Vec::new();
    let num = |n: &Option<Num>| n.map_or("unknown".to_string(), |n| n.to_value().to_string());
    let group = |g: &Option<Value>| {
        g.as_ref()
            .map_or("null".to_string(), |v| show(&State::Value(v.clone())))
    };
    let groups: Vec<&GroupRow> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Group(g) => Some(g),
            _ => None,
        })
        .collect();
    if let Some(first) = groups.first() {
        let mut header = vec!["group".to_string(), "at".to_string()];
        header.extend(first.values.iter().map(|(f, _)| f.name().to_string()));
        cells.push(header);
        for g in &groups {
            let mut line = vec![group(&g.group), g.at.to_string()];
            line.extend(g.values.iter().map(|(_, v)| num(v)));
            cells.push(line);
        }
    }
    if rows.iter().any(|r| matches!(r, Row::AggSegment { .. })) {
        if !cells.is_empty() {
            cells.push(Vec::new());
        }
        cells.push(
            ["group", "agg", "from", "to", "value", "slope"]
                .map(String::from)
                .to_vec(),
        );
        for r in rows {
            if let Row::AggSegment {
                group: g,
                agg,
                segment: s,
            } = r
            {
                cells.push(vec![
                    group(g),
                    agg.name().to_string(),
                    s.from.to_string(),
                    s.to.map_or("-".to_string(), |t| t.to_string()),
                    num(&s.value),
                    num(&Some(s.slope)),
                ]);
            }
        }
    }
    let points = rows.iter().any(|r| matches!(r, Row::At { .. }));
    let segments = rows.iter().any(|r| matches!(r, Row::Segment { .. }));
    if points {
        cells.push(["key", "at", "value"].map(String::from).to_vec());
        for r in rows {
            if let Row::At { key: k, at, state } = r {
                cells.push(vec![key(k), at.to_string(), show(state)]);
            }
        }
    }
    if segments {
        if points {
            cells.push(Vec::new());
        }
        cells.push(
            ["key", "from", "to", "value", "slope"]
                .map(String::from)
                .to_vec(),
        );
        for r in rows {
            if let Row::Segment { key: k, segment: s } = r {
                let to = s.to.map_or("-".to_string(), |t| t.to_string());
                cells.push(vec![
                    key(k),
                    s.from.to_string(),
                    to,
                    show(&s.state),
                    s.state.slope().to_string(),
                ]);
            }
        }
    }
    let ncols = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            cells
                .iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &cells {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}
