//! The answers as they are printed or written: JSON Lines, a table, CSV, Parquet and the HTML
//! page.

use crate::args::EvalArgs;
use std::io::Write;
use timeline::aggregate::{AggFn, AggSegment, Aggregates, GroupRow, Num, Query};
use timeline::{Engine, Segment, State, Value};
use timeline_formats::html::Series;
use timeline_formats::input;

/// One line of output: a point answer or a segment.
pub(crate) enum Row<'a> {
    At {
        key: Option<&'a Value>,
        at: u64,
        state: State,
    },
    Segment {
        key: Option<&'a Value>,
        segment: Segment,
    },
    /// An aggregate's functions for one group at one time.
    Group(GroupRow),
    /// A segment of one function of one group.
    AggSegment {
        group: Option<Value>,
        agg: AggFn,
        segment: AggSegment,
    },
}

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
    use timeline_formats::html::{page, Chart};
    let path = a.out.as_deref().ok_or("--format html needs --out PATH")?;
    let mut keys: Vec<(Option<Value>, &Engine)> = engines
        .iter()
        .flat_map(|e| e.keys().into_iter().map(move |k| (k.cloned(), *e)))
        .collect();
    keys.sort_by_cached_key(|(k, _)| k.as_ref().map(timeline::value::ValueKey::from));
    let shown: Vec<(Option<Value>, &Engine)> = if a.show_keys.is_empty() {
        keys.into_iter().take(3).collect()
    } else {
        let wanted: Vec<Value> = a
            .show_keys
            .iter()
            .map(|k| match input::infer_scalar(k) {
                Ok(input::Scalar::Value(v)) => v,
                _ => Value::str(k),
            })
            .collect();
        let found: Vec<_> = keys
            .into_iter()
            .filter(|(k, _)| k.as_ref().is_some_and(|k| wanted.contains(k)))
            .collect();
        if found.len() < wanted.len() {
            return Err(format!(
                "--show-key: some of {:?} are not keys of the events",
                a.show_keys
            ));
        }
        found
    };
    let last = shown
        .iter()
        .filter_map(|(k, e)| e.last_time(k.as_ref()).ok())
        .max()
        .unwrap_or(0);
    // A little past the last event, so that what grows is seen growing.
    let end = last + last / 10 + 2;
    let label = |k: &Option<Value>| {
        k.as_ref()
            .map_or("(all events)".to_string(), |k| k.to_string())
    };
    let mut charts = Vec::new();
    let Some(first) = engines.first() else {
        return Err("no events".into());
    };
    let plan = first.plan();
    // Leaves on top, the result at the bottom.
    let mut order: Vec<usize> = (0..plan.nodes.len()).collect();
    order.sort_by_key(|&i| (!plan.nodes[i].op.is_leaf(), i));
    for i in order {
        let op = &plan.nodes[i].op;
        let segments: Vec<(String, Vec<Segment>)> = shown
            .iter()
            .map(|(k, e)| {
                let tl = e.node_timeline(k.as_ref(), i).map_err(|e| e.to_string())?;
                Ok((label(k), tl.range(0, end)))
            })
            .collect::<Result<_, String>>()?;
        let steps = op.output_type() != timeline::op::Type::Duration;
        // Strings become levels, in sorted order.
        let mut levels: Vec<String> = segments
            .iter()
            .flat_map(|(_, segs)| segs.iter())
            .filter_map(|s| match s.state.instant_value() {
                Some(Value::Str(v)) => Some(v.to_string()),
                _ => None,
            })
            .collect();
        levels.sort();
        levels.dedup();
        let value = |s: &Segment, t: u64| -> Option<f64> {
            match s.state.advanced(t - s.from).instant_value()? {
                Value::Bool(b) => Some(b as u8 as f64),
                Value::Int(i) => Some(i as f64),
                Value::Float(f) => Some(f),
                Value::Str(v) => levels.iter().position(|l| **l == *v).map(|p| p as f64),
            }
        };
        let (times, series) = sample(&segments, |s| (s.from, s.to), end, steps, value);
        let role = if plan.nodes[i].op.is_leaf() {
            "leaf"
        } else {
            "derived"
        };
        let result = if i == plan.root() && aggregates.is_none() {
            ", the result"
        } else {
            ""
        };
        charts.push((
            times,
            Chart {
                title: format!("[{role}{result}] {op}"),
                steps,
                levels: levels.clone(),
                series,
            },
        ));
    }
    if let Some(agg) = aggregates {
        for &f in &agg.functions {
            let segments: Vec<(String, Vec<timeline::aggregate::AggSegment>)> = agg
                .groups
                .iter()
                .map(|(g, points)| {
                    let label = g.value().map_or("null".to_string(), |v| v.to_string());
                    (
                        label,
                        timeline::aggregate::segments(points, f, 0, Some(end)),
                    )
                })
                .collect();
            let steps = f == timeline::aggregate::AggFn::Count;
            let value = |s: &timeline::aggregate::AggSegment, t: u64| {
                Some(s.value?.as_f64() + s.slope.as_f64() * (t - s.from) as f64)
            };
            let (times, series) = sample(&segments, |s| (s.from, s.to), end, steps, value);
            charts.push((
                times,
                Chart {
                    title: format!("[aggregate, the result] {f} per group"),
                    steps,
                    levels: Vec::new(),
                    series,
                },
            ));
        }
    }
    let subtitle = format!(
        "{} event file(s); keys shown: {}",
        a.events.len(),
        shown
            .iter()
            .map(|(k, _)| label(k))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let html = page(&format!("timeline: {query}"), &subtitle, &charts);
    std::fs::write(path, html).map_err(|e| format!("cannot write {path}: {e}"))
}

/// Each labelled run of segments sampled at the chart's times (see [`chart_times`]): at `t`, the
/// segment in force then (the last one starting at or before `t`), valued by `value`.
fn sample<S>(
    segments: &[(String, Vec<S>)],
    span: impl Fn(&S) -> (u64, Option<u64>),
    end: u64,
    steps: bool,
    value: impl Fn(&S, u64) -> Option<f64>,
) -> (Vec<u64>, Vec<Series>) {
    let times = chart_times(
        segments.iter().flat_map(|(_, s)| s.iter().map(&span)),
        end,
        steps,
    );
    let series = segments
        .iter()
        .map(|(label, segs)| Series {
            label: label.clone(),
            values: times
                .iter()
                .map(|&t| {
                    let s = segs.iter().rev().find(|s| span(s).0 <= t)?;
                    value(s, t)
                })
                .collect(),
        })
        .collect();
    (times, series)
}

/// The times a chart is drawn at: each segment's start, and for lines the last instant before
/// its end (values live at integer instants, so a line between those is exact), then `end`.
fn chart_times(
    segments: impl Iterator<Item = (u64, Option<u64>)>,
    end: u64,
    steps: bool,
) -> Vec<u64> {
    let mut times: Vec<u64> = Vec::new();
    for (from, to) in segments {
        times.push(from);
        if let (false, Some(to)) = (steps, to) {
            times.push(to.saturating_sub(1).max(from));
        }
    }
    times.push(end);
    times.retain(|t| *t <= end);
    times.sort_unstable();
    times.dedup();
    times
}

/// The rows as typed records, in the columns of the JSON lines: the header (of the first row;
/// every row of one run has the same columns), and one record per row (`None`: unknown).
pub(crate) fn tabulate(rows: &[Row]) -> (Vec<String>, Vec<Vec<Option<Value>>>) {
    let u = |t: u64| Some(Value::Int(i64::try_from(t).unwrap_or(i64::MAX)));
    let num = |n: Option<Num>| n.map(Num::to_value);
    let mut header = Vec::new();
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let (h, record): (Vec<String>, Vec<Option<Value>>) = match row {
            Row::At { key, at, state } => (
                ["key", "at", "value"].map(String::from).to_vec(),
                vec![key.cloned(), u(*at), state.instant_value()],
            ),
            Row::Segment { key, segment: s } => (
                ["key", "from", "to", "value", "slope"]
                    .map(String::from)
                    .to_vec(),
                vec![
                    key.cloned(),
                    u(s.from),
                    s.to.and_then(u),
                    s.state.instant_value(),
                    Some(Value::Int(s.state.slope().into())),
                ],
            ),
            Row::Group(g) => {
                let mut h = vec!["group".to_string(), "at".to_string()];
                h.extend(g.values.iter().map(|(f, _)| f.name().to_string()));
                let mut record = vec![g.group.clone(), u(g.at)];
                record.extend(g.values.iter().map(|(_, v)| num(*v)));
                (h, record)
            }
            Row::AggSegment {
                group,
                agg,
                segment: s,
            } => (
                ["group", "agg", "from", "to", "value", "slope"]
                    .map(String::from)
                    .to_vec(),
                vec![
                    group.clone(),
                    Some(Value::str(agg.name())),
                    u(s.from),
                    s.to.and_then(u),
                    num(s.value),
                    num(Some(s.slope)),
                ],
            ),
        };
        if header.is_empty() {
            header = h;
        }
        records.push(record);
    }
    (header, records)
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
