//! `--format html --out PATH`: one self-contained page that draws a query's timelines, the way
//! the Timeline paper draws a query: every node of the plan one under another on a shared time
//! axis, leaves on top and the result at the bottom, a series per chosen key; steps for states
//! and booleans, slopes for durations, gaps where unknown; for an aggregate, each function per
//! group. The charting library (uPlot, pinned and vendored in `assets/`, MIT) is embedded, so
//! the page needs no network when it opens.

use serde::Serialize;

const UPLOT_JS: &str = include_str!("../assets/uplot-1.6.32/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/uplot-1.6.32/uPlot.min.css");

/// One chart: a node's timeline (or an aggregate function's) for each series.
#[derive(Serialize)]
pub struct Chart {
    pub title: String,
    /// `true`: drawn as steps (states, booleans, counts); `false`: as lines (durations, sums).
    pub steps: bool,
    /// For a chart of strings: the value each level stands for.
    pub levels: Vec<String>,
    pub series: Vec<Series>,
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
.levels {{ font-size: 11px; color: #555; }}</style>
<script>{UPLOT_JS}</script></head>
<body data-drawn="0"><h1>{title}</h1><p>{subtitle}</p><div id="charts"></div>
<script>
window.addEventListener("error", function (e) {{ document.body.dataset.error = String(e.message); }});
var charts = {json};
var colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
var lo = Infinity, hi = -Infinity;
charts.forEach(function (c) {{ if (c.times.length) {{ lo = Math.min(lo, c.times[0]); hi = Math.max(hi, c.times[c.times.length - 1]); }} }});
var drawn = 0;
charts.forEach(function (c) {{
  var box = document.createElement("div");
  var h = document.createElement("h2"); h.textContent = c.title; box.appendChild(h);
  if (c.levels.length) {{
    var l = document.createElement("div"); l.className = "levels";
    l.textContent = "levels: " + c.levels.map(function (v, i) {{ return i + " = " + v; }}).join(", ");
    box.appendChild(l);
  }}
  document.getElementById("charts").appendChild(box);
  var series = [{{}}].concat(c.series.map(function (s, i) {{
    return {{ label: s.label, stroke: colors[i % colors.length], width: 2, spanGaps: false,
      paths: c.steps ? uPlot.paths.stepped({{ align: 1 }}) : undefined }};
  }}));
  var opts = {{ width: 1000, height: 90, series: series, legend: {{ show: true }},
    scales: {{ x: {{ time: false, range: [lo, hi] }} }}, cursor: {{ sync: {{ key: "t" }} }} }};
  new uPlot(opts, [c.times].concat(c.series.map(function (s) {{ return s.values; }})), box);
  drawn += 1;
}});
document.body.dataset.drawn = String(drawn);
</script></body></html>
"##,
        title = escape(title),
        subtitle = escape(subtitle),
    )
}
