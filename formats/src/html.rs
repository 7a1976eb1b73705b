//! `--format html --out PATH`: one self-contained page that draws a query's timelines, the way
//! the Timeline paper draws a query: every node of the plan one under another on a shared time
//! axis, leaves on top and the result at the bottom, a series per chosen key; steps for states
//! and booleans, slopes for durations, gaps where unknown; for an aggregate, each function per
//! group. The charting library (uPlot, pinned and vendored in `assets/`, MIT) is embedded, so
//! the page needs no network when it opens.

use serde::Serialize;
use timeline::aggregate::{Aggregates, Query};
use timeline::{Engine, Segment, State, Value};

pub const UPLOT_JS: &str = include_str!("../assets/uplot-1.6.32/uPlot.iife.min.js");
pub const UPLOT_CSS: &str = include_str!("../assets/uplot-1.6.32/uPlot.min.css");
/// The drawing of charts, shared by this page and `timeline serve`'s dashboard.
pub const TIMELINES_JS: &str = include_str!("../assets/timelines.js");

/// One chart: a node's timeline (or an aggregate function's) for each series, drawn as lines
/// (numbers) or as state bands (booleans and strings).
#[derive(Serialize)]
pub struct Chart {
    pub title: String,
    /// `true`: drawn as steps (counts, numeric states); `false`: as lines (durations, sums).
    pub steps: bool,
    /// The lines (empty for a chart of bands).
    pub series: Vec<Series>,
    /// The bands, one per series (empty for a chart of lines).
    pub bands: Vec<Band>,
}

/// One row of a state-band chart: the value in force over each span, as Grafana's state
/// timeline draws it (equal neighbours merged).
#[derive(Serialize)]
pub struct Band {
    pub label: String,
    pub spans: Vec<Span>,
}

/// A time span `[from, to)` (`to`: `None` runs to the end) and its value's text (`None`:
/// unknown).
#[derive(Serialize)]
pub struct Span {
    pub from: u64,
    pub to: Option<u64>,
    pub text: Option<String>,
}

/// The band of a run of segments: their values as text, equal neighbours merged. `None` if a
/// value is a number (drawn as a line instead).
fn band(label: &str, segments: &[Segment]) -> Option<Band> {
    let mut spans: Vec<Span> = Vec::new();
    for s in segments {
        let text = match s.state.instant_value() {
            None => None,
            Some(Value::Str(v)) => Some(v.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(Value::Int(_) | Value::Float(_)) => return None,
        };
        match spans.last_mut() {
            Some(last) if last.text == text && last.to == Some(s.from) => last.to = s.to,
            _ => spans.push(Span {
                from: s.from,
                to: s.to,
                text,
            }),
        }
    }
    Some(Band {
        label: label.to_string(),
        spans,
    })
}

/// One line of a chart: its label, and its value at each of the chart's times (`None`: a gap).
#[derive(Serialize)]
pub struct Series {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// A chart's data: the times, shared by its series.
#[derive(Serialize)]
struct ChartData<'a> {
    #[serde(flatten)]
    chart: &'a Chart,
    times: &'a [u64],
}

/// The page: a title, what it shows, and the charts over `times` (each chart's series have a
/// value per time).
pub fn page(title: &str, subtitle: &str, charts: &[(Vec<u64>, Chart)]) -> String {
    // `</` inside a script would end it: JSON allows `<\/`.
    let json = serde_json::to_string(&charts_json(charts))
        .unwrap_or_else(|_| "[]".into())
        .replace("</", "<\\/");
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        r##"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>{UPLOT_CSS}
body {{ font-family: sans-serif; margin: 16px; }} h1 {{ font-size: 18px; }} h2 {{ font-size: 13px; margin: 14px 0 2px; font-weight: normal; font-family: monospace; }}
#readout {{ font-size: 11px; color: #333; font-family: monospace; white-space: pre; position: fixed; bottom: 8px; right: 8px; max-width: 60vw; max-height: 40vh; overflow: auto; background: #fffffff0; border: 1px solid #ccc; padding: 4px 6px; }}
#readout:empty {{ display: none; }}</style>
<script>{UPLOT_JS}</script><script>{TIMELINES_JS}</script></head>
<body data-drawn="0"><h1>{title}</h1><p>{subtitle}</p><div id="charts"></div><div id="readout"></div>
<script>
window.addEventListener("error", function (e) {{ document.body.dataset.error = String(e.message); }});
var root = document.getElementById("charts");
Timelines.draw(root, {json}, {{ readout: document.getElementById("readout") }});
document.body.dataset.drawn = root.dataset.drawn;
</script></body></html>
"##,
        title = escape(title),
        subtitle = escape(subtitle),
    )
}

/// Why [`timelines_page`] drew nothing.
#[derive(Debug)]
pub enum PageError {
    /// Some keys asked for are not keys of the events.
    MissingKeys,
    Other(String),
}

/// The page drawing every node of `query`'s plan for the keys `wanted` (none: the first three),
/// and for an aggregate each function per group. `source` says what the events came from (the
/// page's subtitle).
pub fn timelines_page(
    query: &Query,
    source: &str,
    engines: &[&Engine],
    aggregates: Option<&Aggregates>,
    wanted: &[Value],
) -> Result<String, PageError> {
    let mut keys: Vec<(Option<Value>, &Engine)> = engines
        .iter()
        .flat_map(|e| e.keys().into_iter().map(move |k| (k.cloned(), *e)))
        .collect();
    keys.sort_by_cached_key(|(k, _)| k.as_ref().map(timeline::value::ValueKey::from));
    let shown: Vec<(Option<Value>, &Engine)> = if wanted.is_empty() {
        keys.into_iter().take(3).collect()
    } else {
        let found: Vec<_> = keys
            .into_iter()
            .filter(|(k, _)| k.as_ref().is_some_and(|k| wanted.contains(k)))
            .collect();
        if found.len() < wanted.len() {
            return Err(PageError::MissingKeys);
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
    let label = |k: &Option<Value>| match k {
        None => "(all events)".to_string(),
        Some(Value::Str(s)) => s.to_string(),
        Some(k) => k.to_string(),
    };
    let mut charts = Vec::new();
    let Some(first) = engines.first() else {
        return Err(PageError::Other("no events".into()));
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
                let tl = e
                    .node_timeline(k.as_ref(), i)
                    .map_err(|e| PageError::Other(e.to_string()))?;
                Ok((label(k), tl.range(0, end)))
            })
            .collect::<Result<_, PageError>>()?;
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
        charts.push(node_chart(
            format!("[{role}{result}] {op}"),
            Some(op.output_type()),
            &segments,
            end,
        ));
    }
    if let Some(agg) = aggregates {
        for &f in &agg.functions {
            let segments: Vec<(String, Vec<timeline::aggregate::AggSegment>)> = agg
                .groups
                .iter()
                .map(|(g, points)| {
                    let label = g
                        .value()
                        .map_or("null".to_string(), |v| timeline::worker::key_text(Some(&v)));
                    (
                        label,
                        timeline::aggregate::segments(points, f, 0, Some(end)),
                    )
                })
                .collect();
            charts.push(aggregate_chart(
                format!("[aggregate, the result] {f} per group"),
                f,
                &segments,
                end,
            ));
        }
    }
    let subtitle = format!(
        "{source}; keys shown: {}",
        shown
            .iter()
            .map(|(k, _)| label(k))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(page(&format!("timeline: {query}"), &subtitle, &charts))
}

/// The chart of one node: its timeline over `[0, end)` for each labelled series. Booleans and
/// strings are state bands, numbers lines (durations as slopes). `ty` is the node's output type
/// where known; without it the values decide (a duration or number anywhere makes lines).
pub fn node_chart(
    title: String,
    ty: Option<timeline::op::Type>,
    segments: &[(String, Vec<Segment>)],
    end: u64,
) -> (Vec<u64>, Chart) {
    use timeline::op::Type;
    let durations = || {
        segments
            .iter()
            .flat_map(|(_, s)| s)
            .any(|s| matches!(s.state, State::Duration(_) | State::Growing(_)))
    };
    let steps = match ty {
        Some(ty) => ty != Type::Duration,
        None => !durations(),
    };
    // Booleans and strings are states: bands. Numbers are lines.
    let bands: Option<Vec<Band>> = match ty {
        Some(Type::Duration | Type::Int) => None,
        None if !steps => None,
        _ => segments.iter().map(|(l, segs)| band(l, segs)).collect(),
    };
    let value = |s: &Segment, t: u64| -> Option<f64> {
        match s.state.advanced(t - s.from).instant_value()? {
            Value::Bool(b) => Some(b as u8 as f64),
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            Value::Str(_) => None,
        }
    };
    let (times, series) = match bands {
        Some(_) => {
            let spans = segments
                .iter()
                .flat_map(|(_, s)| s.iter().map(|s| (s.from, s.to)));
            (chart_times(spans, end, true), Vec::new())
        }
        None => sample(segments, |s| (s.from, s.to), end, steps, value),
    };
    (
        times,
        Chart {
            title,
            steps,
            series,
            bands: bands.unwrap_or_default(),
        },
    )
}

/// The chart of one aggregate function: a line per labelled group over `[0, end)`.
pub fn aggregate_chart(
    title: String,
    f: timeline::aggregate::AggFn,
    segments: &[(String, Vec<timeline::aggregate::AggSegment>)],
    end: u64,
) -> (Vec<u64>, Chart) {
    let steps = f == timeline::aggregate::AggFn::Count;
    let value = |s: &timeline::aggregate::AggSegment, t: u64| {
        Some(s.value?.as_f64() + s.slope.as_f64() * (t - s.from) as f64)
    };
    let (times, series) = sample(segments, |s| (s.from, s.to), end, steps, value);
    (
        times,
        Chart {
            title,
            steps,
            series,
            bands: Vec::new(),
        },
    )
}

/// The charts as the page's script takes them (see `assets/timelines.js`).
pub fn charts_json(charts: &[(Vec<u64>, Chart)]) -> serde_json::Value {
    let data: Vec<ChartData> = charts
        .iter()
        .map(|(times, chart)| ChartData { chart, times })
        .collect();
    serde_json::to_value(&data).unwrap_or_default()
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
