//! `--format html --out PATH`: one self-contained page that draws a query's timelines, the way
//! the Timeline paper draws a query: every node of the plan one under another on a shared time
//! axis, leaves on top and the result at the bottom, a series per chosen key; steps for states
//! and booleans, slopes for durations, gaps where unknown; for an aggregate, each function per
//! group. The charting library (uPlot, pinned and vendored in `assets/`, MIT) is embedded, so
//! the page needs no network when it opens.

use serde::Serialize;
use timeline::aggregate::{Aggregates, Query};
use timeline::{Engine, Segment, Value};

const UPLOT_JS: &str = include_str!("../assets/uplot-1.6.32/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/uplot-1.6.32/uPlot.min.css");

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
    let data: Vec<ChartData> = charts
        .iter()
        .map(|(times, chart)| ChartData { chart, times })
        .collect();
    // `</` inside a script would end it: JSON allows `<\/`.
    let json = serde_json::to_string(&data)
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
.readout {{ font-size: 11px; color: #333; font-family: monospace; margin-left: 70px; }}</style>
<script>{UPLOT_JS}</script></head>
<body data-drawn="0"><h1>{title}</h1><p>{subtitle}</p><div id="charts"></div>
<script>
window.addEventListener("error", function (e) {{ document.body.dataset.error = String(e.message); }});
var charts = {json};
var colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
var stateColors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];
var lo = Infinity, hi = -Infinity;
charts.forEach(function (c) {{ if (c.times.length) {{ lo = Math.min(lo, c.times[0]); hi = Math.max(hi, c.times[c.times.length - 1]); }} }});
var drawn = 0;
// A state's colour: booleans green and grey, strings from a palette in sorted order.
function colorOf(texts) {{
  var sorted = texts.slice().sort();
  return function (t) {{
    if (t === "true") return "#59a14f";
    if (t === "false") return "#d3d3d3";
    return stateColors[sorted.indexOf(t) % stateColors.length];
  }};
}}
function hatch(ctx) {{
  var p = document.createElement("canvas"); p.width = 8; p.height = 8;
  var g = p.getContext("2d"); g.fillStyle = "#f4f4f4"; g.fillRect(0, 0, 8, 8);
  g.strokeStyle = "#b0b0b0"; g.beginPath(); g.moveTo(0, 8); g.lineTo(8, 0); g.stroke();
  return ctx.createPattern(p, "repeat");
}}
// The value of a band at time t.
function textAt(band, t) {{
  for (var i = 0; i < band.spans.length; i++) {{
    var s = band.spans[i];
    if (s.from <= t && (s.to === null || t < s.to)) return s.text === null ? "unknown" : s.text;
  }}
  return "";
}}
function bandOpts(c, box) {{
  var n = c.bands.length, texts = [];
  c.bands.forEach(function (b) {{ b.spans.forEach(function (s) {{ if (s.text !== null && texts.indexOf(s.text) < 0) texts.push(s.text); }}); }});
  box.dataset.labels = texts.slice().sort().join("|");
  var color = colorOf(texts);
  var readout = document.createElement("div"); readout.className = "readout";
  var draw = function (u) {{
    var ctx = u.ctx, top = u.bbox.top, rowH = u.bbox.height / n, pattern = hatch(ctx);
    ctx.save(); ctx.beginPath(); ctx.rect(u.bbox.left, top, u.bbox.width, u.bbox.height); ctx.clip();
    ctx.font = (11 * devicePixelRatio) + "px sans-serif"; ctx.textBaseline = "middle"; ctx.textAlign = "left";
    c.bands.forEach(function (b, r) {{
      var y = top + r * rowH;
      b.spans.forEach(function (s) {{
        var x0 = u.valToPos(s.from, "x", true), x1 = u.valToPos(s.to === null ? hi : s.to, "x", true);
        ctx.fillStyle = s.text === null ? pattern : color(s.text);
        ctx.fillRect(x0, y + 1, Math.max(1, x1 - x0 - 1), rowH - 2);
        if (s.text !== null && ctx.measureText(s.text).width + 6 < x1 - x0) {{
          ctx.fillStyle = s.text === "false" ? "#333" : "#fff"; ctx.fillText(s.text, x0 + 3, y + rowH / 2);
        }}
      }});
    }});
    ctx.restore();
  }};
  var setCursor = function (u) {{
    if (u.cursor.left == null || u.cursor.left < 0) {{ readout.textContent = "\u00a0"; return; }}
    var t = Math.floor(u.posToVal(u.cursor.left, "x"));
    readout.textContent = "at " + t + ": " + c.bands.map(function (b) {{ return b.label + " = " + textAt(b, t); }}).join(", ");
  }};
  return {{ readout: readout, opts: {{ width: 1000, height: 30 * n + 60, legend: {{ show: false }},
    series: [{{}}, {{ show: false }}],
    axes: [{{}}, {{ size: 70, splits: function () {{ return c.bands.map(function (b, r) {{ return n - r - 0.5; }}); }},
      values: function () {{ return c.bands.map(function (b) {{ return b.label; }}); }}, grid: {{ show: false }}, ticks: {{ show: false }} }}],
    scales: {{ x: {{ time: false, range: [lo, hi] }}, y: {{ range: [0, n] }} }},
    cursor: {{ sync: {{ key: "t" }}, points: {{ show: false }} }},
    hooks: {{ draw: [draw], setCursor: [setCursor] }} }},
    data: [[lo, hi], [null, null]] }};
}}
charts.forEach(function (c) {{
  var box = document.createElement("div");
  var h = document.createElement("h2"); h.textContent = c.title; box.appendChild(h);
  document.getElementById("charts").appendChild(box);
  if (c.bands.length) {{
    box.dataset.kind = "bands";
    var b = bandOpts(c, box);
    new uPlot(b.opts, b.data, box);
    box.appendChild(b.readout); b.readout.textContent = "\u00a0";
  }} else {{
    box.dataset.kind = "lines";
    var series = [{{ label: "time" }}].concat(c.series.map(function (s, i) {{
      return {{ label: s.label, stroke: colors[i % colors.length], width: 2, spanGaps: false,
        paths: c.steps ? uPlot.paths.stepped({{ align: 1 }}) : undefined }};
    }}));
    var opts = {{ width: 1000, height: 110, series: series, legend: {{ show: true }},
      axes: [{{}}, {{ size: 70 }}],
      scales: {{ x: {{ time: false, range: [lo, hi] }} }}, cursor: {{ sync: {{ key: "t" }} }} }};
    new uPlot(opts, [c.times].concat(c.series.map(function (s) {{ return s.values; }})), box);
  }}
  drawn += 1;
}});
document.body.dataset.drawn = String(drawn);
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
        let steps = op.output_type() != timeline::op::Type::Duration;
        // Booleans and strings are states: bands. Numbers are lines.
        let bands: Option<Vec<Band>> = match op.output_type() {
            timeline::op::Type::Duration | timeline::op::Type::Int => None,
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
            None => sample(&segments, |s| (s.from, s.to), end, steps, value),
        };
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
                series,
                bands: bands.unwrap_or_default(),
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
                    series,
                    bands: Vec::new(),
                },
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
