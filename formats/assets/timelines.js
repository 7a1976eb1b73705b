// Draws timeline charts with uPlot, for the page of `eval --format html` and for the dashboard
// of `timeline serve` alike: one chart per node (or aggregate function) on one shared time axis.
// Booleans and strings are state bands (one row per series, a colour per value, the value
// written inside where it fits, unknown hatched); numbers are lines (steps for counts, slopes
// for durations). Dragging on a chart zooms every chart; a double click zooms out. Moving the
// cursor writes every chart's values at that instant into the readout.
//
// Each chart is {title, steps, series: [{label, values}], bands: [{label, spans: [{from, to,
// text}]}], times}: what `timeline_formats::html::Chart` serialises to.
var Timelines = (function () {
  "use strict";
  var colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  var stateColors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];

  // A state's colour: booleans green and grey, strings from a palette in sorted order.
  function colorOf(texts) {
    var sorted = texts.slice().sort();
    return function (t) {
      if (t === "true") return "#59a14f";
      if (t === "false") return "#d3d3d3";
      return stateColors[sorted.indexOf(t) % stateColors.length];
    };
  }

  function hatch(ctx) {
    var p = document.createElement("canvas"); p.width = 8; p.height = 8;
    var g = p.getContext("2d"); g.fillStyle = "#f4f4f4"; g.fillRect(0, 0, 8, 8);
    g.strokeStyle = "#b0b0b0"; g.beginPath(); g.moveTo(0, 8); g.lineTo(8, 0); g.stroke();
    return ctx.createPattern(p, "repeat");
  }

  // The value of a band at time t.
  function textAt(band, t) {
    for (var i = 0; i < band.spans.length; i++) {
      var s = band.spans[i];
      if (s.from <= t && (s.to === null || t < s.to)) return s.text === null ? "unknown" : s.text;
    }
    return "unknown";
  }

  // The value of a line at time t: its value at the last time at or before t, and for slopes
  // (durations) the straight line to the next time.
  function valueAt(c, values, t) {
    var times = c.times, i = -1;
    for (var j = 0; j < times.length && times[j] <= t; j++) i = j;
    if (i < 0 || values[i] === null) return "unknown";
    var v = values[i];
    if (!c.steps && i + 1 < times.length && values[i + 1] !== null && times[i + 1] > times[i]) {
      v += (values[i + 1] - v) * (t - times[i]) / (times[i + 1] - times[i]);
    }
    return String(Math.round(v * 1000) / 1000);
  }

  // What every chart reads at time t, one line per chart.
  function readAll(charts, t) {
    return charts.map(function (c) {
      var parts = c.bands.length
        ? c.bands.map(function (b) { return b.label + " = " + textAt(b, t); })
        : c.series.map(function (s) { return s.label + " = " + valueAt(c, s.values, t); });
      return c.title + ": " + parts.join(", ");
    });
  }

  function bandChart(c, box, full, width, hooks) {
    var n = c.bands.length, texts = [];
    c.bands.forEach(function (b) { b.spans.forEach(function (s) { if (s.text !== null && texts.indexOf(s.text) < 0) texts.push(s.text); }); });
    box.dataset.labels = texts.slice().sort().join("|");
    // Each band's value now (its last span's), for whoever watches the page.
    box.dataset.last = c.bands.map(function (b) {
      var s = b.spans[b.spans.length - 1];
      return s && s.text !== null ? s.text : "unknown";
    }).join("|");
    var color = colorOf(texts);
    var draw = function (u) {
      var ctx = u.ctx, top = u.bbox.top, rowH = u.bbox.height / n, pattern = hatch(ctx);
      var end = Math.max(full[1], u.scales.x.max);
      ctx.save(); ctx.beginPath(); ctx.rect(u.bbox.left, top, u.bbox.width, u.bbox.height); ctx.clip();
      ctx.font = (11 * devicePixelRatio) + "px sans-serif"; ctx.textBaseline = "middle"; ctx.textAlign = "left";
      c.bands.forEach(function (b, r) {
        var y = top + r * rowH;
        b.spans.forEach(function (s) {
          var x0 = u.valToPos(s.from, "x", true), x1 = u.valToPos(s.to === null ? end : s.to, "x", true);
          ctx.fillStyle = s.text === null ? pattern : color(s.text);
          ctx.fillRect(x0, y + 1, Math.max(1, x1 - x0 - 1), rowH - 2);
          if (s.text !== null && ctx.measureText(s.text).width + 6 < x1 - x0) {
            ctx.fillStyle = s.text === "false" ? "#333" : "#fff";
            ctx.fillText(s.text, Math.max(x0, u.bbox.left) + 3, y + rowH / 2);
          }
        });
      });
      ctx.restore();
    };
    hooks.draw = [draw];
    var opts = { width: width, height: 30 * n + 60, legend: { show: false },
      series: [{}, { show: false }],
      axes: [{}, { size: 90, splits: function () { return c.bands.map(function (b, r) { return n - r - 0.5; }); },
        values: function () { return c.bands.map(function (b) { return b.label; }); }, grid: { show: false }, ticks: { show: false } }],
      scales: { x: { time: false, range: function (u, min, max) { return [min, max]; } }, y: { range: [0, n] } },
      cursor: { sync: { key: "t" }, points: { show: false } },
      hooks: hooks };
    return new uPlot(opts, [full, [null, null]], box);
  }

  function lineChart(c, box, width, hooks) {
    var series = [{ label: "time" }].concat(c.series.map(function (s, i) {
      return { label: s.label, stroke: colors[i % colors.length], width: 2, spanGaps: false,
        paths: c.steps ? uPlot.paths.stepped({ align: 1 }) : undefined };
    }));
    var opts = { width: width, height: 110, series: series, legend: { show: true },
      axes: [{}, { size: 90 }],
      scales: { x: { time: false, range: function (u, min, max) { return [min, max]; } } },
      cursor: { sync: { key: "t" } }, hooks: hooks };
    return new uPlot(opts, [c.times].concat(c.series.map(function (s) { return s.values; })), box);
  }

  // Draws `charts` into `root` (emptied first). Options: `range` ([from, to]: the zoom to keep;
  // none: everything), `onZoom` (called with the new range, or null when zoomed out),
  // `readout` (an element for the values under the cursor), `width` (pixels). Sets
  // `root.dataset.drawn` to the number of charts drawn.
  function draw(root, charts, options) {
    var o = options || {};
    root.textContent = "";
    var lo = Infinity, hi = -Infinity;
    charts.forEach(function (c) {
      if (c.times.length) { lo = Math.min(lo, c.times[0]); hi = Math.max(hi, c.times[c.times.length - 1]); }
    });
    if (lo === Infinity) { lo = 0; hi = 1; }
    var full = [lo, hi], plots = [], zooming = false, ready = false;
    var width = o.width || 1000;
    var onScale = function (u, key) {
      if (key !== "x" || zooming || !ready) return;
      zooming = true;
      var min = u.scales.x.min, max = u.scales.x.max;
      plots.forEach(function (p) { if (p !== u) p.setScale("x", { min: min, max: max }); });
      zooming = false;
      root.dataset.range = min + "," + max;
      if (o.onZoom) o.onZoom(min <= full[0] && max >= full[1] ? null : [min, max]);
    };
    var onCursor = function (u) {
      if (!o.readout) return;
      if (u.cursor.left == null || u.cursor.left < 0) { o.readout.textContent = ""; return; }
      var t = Math.floor(u.posToVal(u.cursor.left, "x"));
      o.readout.dataset.time = String(t);
      o.readout.textContent = "at " + t + ":\n" + readAll(charts, t).join("\n");
    };
    charts.forEach(function (c, i) {
      var box = document.createElement("div");
      box.className = "chart"; box.dataset.index = String(i);
      var h = document.createElement("h2"); h.textContent = c.title; box.appendChild(h);
      root.appendChild(box);
      var hooks = { setScale: [onScale], setCursor: [onCursor] };
      if (c.bands.length) {
        box.dataset.kind = "bands";
        plots.push(bandChart(c, box, full, width, hooks));
      } else {
        box.dataset.kind = "lines";
        plots.push(lineChart(c, box, width, hooks));
      }
    });
    // Every chart on the same axis: the kept zoom, else everything.
    var range = o.range || full;
    zooming = true;
    plots.forEach(function (p) { p.setScale("x", { min: range[0], max: range[1] }); });
    zooming = false;
    ready = true;
    // The range shown, for whoever watches the page.
    root.dataset.range = range[0] + "," + range[1];
    // A double click zooms every chart out.
    plots.forEach(function (p) {
      p.over.addEventListener("dblclick", function () {
        zooming = true;
        plots.forEach(function (q) { q.setScale("x", { min: full[0], max: full[1] }); });
        zooming = false;
        root.dataset.range = full[0] + "," + full[1];
        if (o.onZoom) o.onZoom(null);
      });
    });
    root.dataset.drawn = String(plots.length);
    return { plots: plots, full: full, readAll: function (t) { return readAll(charts, t); } };
  }

  return { draw: draw, readAll: readAll };
})();
