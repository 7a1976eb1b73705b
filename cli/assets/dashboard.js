// The dashboard of `timeline serve`: jobs, a job's plan, its keys (searched and paged on the
// server), a key's timelines, refreshed when the server says state changed (server-sent
// events), keeping the zoom and the selection. The selected job and key live in the URL's hash,
// so that a reload or a shared link opens the same view.
(function () {
  "use strict";
  var PAGE = 50;
  var state = { job: null, key: null, node: null, search: "", after: null, pages: [], zoom: null, jobs: [] };
  var el = function (id) { return document.getElementById(id); };

  window.addEventListener("error", function (e) { document.body.dataset.error = String(e.message); });

  function readHash() {
    var h = new URLSearchParams(location.hash.slice(1));
    state.job = h.get("job"); state.key = h.get("key"); state.node = h.get("node");
  }
  function writeHash() {
    var h = new URLSearchParams();
    if (state.job) h.set("job", state.job);
    if (state.key) h.set("key", state.key);
    if (state.node) h.set("node", state.node);
    history.replaceState(null, "", "#" + h.toString());
  }

  function api(path) {
    return fetch(path, { cache: "no-store" }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
        return body;
      });
    });
  }
  function showError(e) { el("error").textContent = e ? String(e.message || e) : ""; }

  function text(tag, content, cls) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    n.textContent = content;
    return n;
  }

  function job() {
    for (var i = 0; i < state.jobs.length; i++) if (state.jobs[i].name === state.job) return state.jobs[i];
    return null;
  }

  function renderJobs() {
    var list = el("job-list");
    list.textContent = "";
    if (!state.jobs.length) { list.textContent = "no jobs yet: run one (timeline golem run, or the driver's run)"; return; }
    state.jobs.forEach(function (j) {
      var box = document.createElement("div");
      box.className = "job" + (j.name === state.job ? " selected" : "");
      box.dataset.job = j.name;
      box.appendChild(text("div", j.name, "name"));
      box.appendChild(text("code", j.query));
      box.appendChild(text("div", "key column: " + (j.keyColumn || "none") + " · shards: " + j.shards +
        " · retention: " + (j.retention === null ? "none" : j.retention)));
      box.appendChild(text("div", "events: " + j.events + " · keys: " + j.keys +
        " · last event: " + (j.lastTime === null ? "none" : j.lastTime), "counts"));
      box.addEventListener("click", function () { selectJob(j.name); });
      list.appendChild(box);
    });
  }

  // The plan as layers: leaves on top, each node one row below its deepest input.
  function renderPlan(j) {
    var plan = el("plan");
    plan.textContent = "";
    var byId = {}, depth = {};
    j.nodes.forEach(function (n) { byId[n.id] = n; });
    var depthOf = function (id) {
      if (depth[id] !== undefined) return depth[id];
      var n = byId[id], d = 0;
      if (n) n.inputs.forEach(function (i) { d = Math.max(d, depthOf(i) + 1); });
      return (depth[id] = d);
    };
    var rows = [];
    j.nodes.forEach(function (n) { var d = depthOf(n.id); (rows[d] = rows[d] || []).push(n); });
    var W = 270, H = 40, GX = 16, GY = 22, pos = {};
    var width = 0;
    rows.forEach(function (row, d) {
      row.forEach(function (n, i) { pos[n.id] = { x: 10 + i * (W + GX), y: 10 + d * (H + GY) }; });
      width = Math.max(width, 20 + row.length * (W + GX));
    });
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", width); svg.setAttribute("height", 20 + rows.length * (H + GY) - GY);
    svg.innerHTML = '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8a99a8"/></marker></defs>';
    j.nodes.forEach(function (n) {
      n.inputs.forEach(function (i) {
        if (!pos[i]) return;
        var a = pos[i], b = pos[n.id];
        var path = document.createElementNS(ns, "path");
        path.setAttribute("class", "edge");
        path.setAttribute("d", "M" + (a.x + W / 2) + "," + (a.y + H) + " C" + (a.x + W / 2) + "," + (a.y + H + GY / 2) + " " +
          (b.x + W / 2) + "," + (b.y - GY / 2) + " " + (b.x + W / 2) + "," + b.y);
        svg.appendChild(path);
      });
    });
    j.nodes.forEach(function (n) {
      var g = document.createElementNS(ns, "g");
      g.setAttribute("class", "node " + n.kind + (n.id === state.node ? " selected" : ""));
      g.setAttribute("transform", "translate(" + pos[n.id].x + "," + pos[n.id].y + ")");
      g.dataset.node = n.id;
      var rect = document.createElementNS(ns, "rect");
      rect.setAttribute("width", W); rect.setAttribute("height", H);
      g.appendChild(rect);
      var label = n.kind + (n.id === j.resultNode ? ", the result" : "") + ": " + n.operator;
      var expr = n.expression.length > 38 ? n.expression.slice(0, 37) + "…" : n.expression;
      [[label, 15, "bold"], [expr, 31, "normal"]].forEach(function (l) {
        var t = document.createElementNS(ns, "text");
        t.setAttribute("x", 6); t.setAttribute("y", l[1]); t.setAttribute("font-weight", l[2]);
        t.setAttribute("font-family", l[2] === "bold" ? "sans-serif" : "monospace");
        t.textContent = l[0];
        g.appendChild(t);
      });
      var title = document.createElementNS(ns, "title");
      title.textContent = n.expression + "\nworkers: " + n.workers.join(", ");
      g.appendChild(title);
      g.addEventListener("click", function () { selectNode(n.id); });
      svg.appendChild(g);
    });
    plan.appendChild(svg);
    renderNodeDetail();
  }

  function renderNodeDetail() {
    var j = job(), box = el("node-detail");
    box.textContent = "";
    if (!j || !state.node) return;
    j.nodes.forEach(function (n) {
      if (n.id !== state.node) return;
      box.textContent = n.kind + " node " + n.id + ": " + n.expression + "\nworkers: " + n.workers.join(", ");
    });
  }

  function selectJob(name) {
    if (state.job === name) return;
    state.job = name; state.key = null; state.node = null; state.after = null; state.pages = []; state.zoom = null;
    writeHash();
    renderJobs();
    var j = job();
    if (j) renderPlan(j);
    loadKeys().then(loadTimelines).catch(showError);
  }

  function selectNode(id) {
    state.node = id;
    writeHash();
    var j = job();
    if (j) renderPlan(j);
    markCharts(true);
  }

  function selectKey(id) {
    state.key = id;
    writeHash();
    Array.prototype.forEach.call(el("key-list").children, function (li) {
      li.classList.toggle("selected", li.dataset.key === id);
    });
    loadTimelines().catch(showError);
  }

  function loadJobs() {
    return api("/dashboard/jobs").then(function (body) {
      state.jobs = body.jobs;
      if (!job() && state.jobs.length) { state.job = state.jobs[0].name; state.key = null; writeHash(); }
      renderJobs();
      var j = job();
      if (j) {
        el("job-title").textContent = "";
        el("job-title").appendChild(text("h2", "job " + j.name + ": " + j.query));
        renderPlan(j);
      }
      document.body.dataset.version = String(body.version);
    });
  }

  function loadKeys() {
    if (!job()) return Promise.resolve();
    var q = new URLSearchParams({ limit: String(PAGE) });
    if (state.search) q.set("search", state.search);
    if (state.after) q.set("after", state.after);
    return api("/dashboard/jobs/" + encodeURIComponent(state.job) + "/keys?" + q).then(function (body) {
      var list = el("key-list");
      list.textContent = "";
      body.keys.forEach(function (k) {
        var li = text("li", k.text);
        li.dataset.key = k.id;
        if (k.id === state.key) li.className = "selected";
        li.addEventListener("click", function () { selectKey(k.id); });
        list.appendChild(li);
      });
      el("key-count").textContent = body.matching + (state.search ? " matching" : " keys") +
        (state.pages.length ? " · page " + (state.pages.length + 1) : "");
      el("prev").disabled = !state.pages.length;
      el("next").disabled = !body.next;
      el("next").dataset.after = body.next || "";
      list.dataset.matching = String(body.matching);
      if (!state.key && body.keys.length) { state.key = body.keys[0].id; writeHash(); list.firstChild.className = "selected"; }
    });
  }

  function markCharts(scroll) {
    var nodes = el("charts").dataset.nodes ? el("charts").dataset.nodes.split("\n") : [];
    Array.prototype.forEach.call(el("charts").children, function (box, i) {
      var mine = nodes[i] === state.node;
      box.classList.toggle("selected", mine);
      box.dataset.node = nodes[i] || "";
      if (mine && scroll) box.scrollIntoView({ block: "nearest" });
    });
  }

  function loadTimelines() {
    var j = job();
    if (!j || (!state.key && !j.aggregate)) { el("charts").textContent = ""; return Promise.resolve(); }
    var q = state.key ? "?key=" + encodeURIComponent(state.key) : "";
    return api("/dashboard/jobs/" + encodeURIComponent(state.job) + "/timelines" + q).then(function (body) {
      var root = el("charts");
      root.dataset.nodes = body.nodes.join("\n");
      root.dataset.key = state.key || "";
      Timelines.draw(root, body.charts, {
        range: state.zoom, readout: el("readout"), width: Math.max(600, root.clientWidth - 10),
        onZoom: function (r) { state.zoom = r; }
      });
      markCharts(false);
      showError(null);
      document.body.dataset.drawn = root.dataset.drawn;
    });
  }

  // One refresh at a time; a change heard during one makes one more.
  var refreshing = false, again = false;
  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    loadJobs().then(loadKeys).then(loadTimelines).catch(showError).then(function () {
      refreshing = false;
      document.body.dataset.refreshed = String(Date.now());
      if (again) { again = false; refresh(); }
    });
  }

  var typing = null;
  el("search").addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(function () {
      state.search = el("search").value; state.after = null; state.pages = [];
      loadKeys().catch(showError);
    }, 200);
  });
  el("next").addEventListener("click", function () {
    state.pages.push(state.after); state.after = el("next").dataset.after || null;
    loadKeys().catch(showError);
  });
  el("prev").addEventListener("click", function () {
    state.after = state.pages.pop() || null;
    loadKeys().catch(showError);
  });

  readHash();
  refresh();
  var live = function () {
    var source = new EventSource("/dashboard/updates");
    source.addEventListener("open", function () { el("status").textContent = "live"; });
    source.addEventListener("change", function () {
      el("status").textContent = "live · updated " + new Date().toLocaleTimeString();
      refresh();
    });
    source.addEventListener("error", function () { el("status").textContent = "disconnected: retrying"; });
  };
  live();
})();
