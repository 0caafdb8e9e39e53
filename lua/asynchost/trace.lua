--- asynchost.trace: traces of the tasks (docs/tracing.md).
--
-- The executable records with `asynchost --trace out.json script.lua` (or
-- out.html); a script run by stock lua5.4 can do the same:
--
--   local trace = require "asynchost.trace"
--   trace.start("out.html")   -- written when the state closes, or:
--   ...
--   trace.write()             -- now (recording stops)
--
-- The recording is C (bindings/trace.c); this module holds the page that
-- shows an HTML trace: the Chrome trace-event JSON goes inside it, and its
-- script draws one row per task (no network, no external file).
local core = require "asynchost.core.trace"

local M = {}

local function argerror(i, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(i, fname, msg), 3)
end

--- Starts recording every task into the file at `path` (.json: Chrome
-- trace-event format, for Perfetto or chrome://tracing; .html: a page).
function M.start(path)
  if type(path) ~= "string" then
    argerror(1, "start", "string expected, got " .. type(path))
  end
  core.open(path)
end

--- Writes the trace now; recording stops.
function M.write()
  core.write()
end

--- The figures of the --top dashboard (nil when no tracing, debug mode or
-- dashboard is on): live tasks by state, waits by kind...
function M.stats()
  return core.stats()
end

M.html = [==[<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>asynchost trace</title>
<style>
body{font:12px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;
  color:#1d2330;background:#fafbfc}
header{padding:8px 12px;background:#1d2330;color:#e8ecf3}
header b{font-size:14px;margin-right:10px}
#legend{margin-top:5px}
#legend span{display:inline-block;margin-right:12px;white-space:nowrap}
#legend i{display:inline-block;width:11px;height:11px;margin-right:4px;
  vertical-align:-1px;border-radius:2px}
#help{color:#9aa4b5;margin-left:8px}
#chart{user-select:none;cursor:grab;overflow:hidden}
#kinds{margin:10px 12px;border-collapse:collapse}
#kinds td,#kinds th{padding:2px 10px;text-align:right;border-bottom:1px solid #e3e6ec}
#kinds td:first-child,#kinds th:first-child{text-align:left}
#note{margin:4px 12px;color:#a33}
</style></head>
<body>
<header><b>asynchost trace</b><span id="summary"></span>
<span id="help">wheel: zoom &middot; drag: pan &middot; double-click: all</span>
<div id="legend"></div></header>
<div id="note"></div>
<div id="chart"></div>
<table id="kinds"></table>
<script id="trace-data" type="application/json">__ASYNCHOST_TRACE_JSON__</script>
<script>
(function () {
  "use strict";
  var MAXROWS = 2000, ROW = 20, LEFT = 190, TOP = 26;
  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var events = data.traceEvents || [];
  var rows = {}, order = [], flows = {}, kinds = {};
  var t0 = Infinity, t1 = -Infinity;
  var KINDS = [
    ["sleep", /sleep|timer/, "#4e79a7"],
    ["HTTP", /HTTP/, "#f28e2b"],
    ["socket / stream", /stream|connection|name lookup|socket|pipe/, "#59a14f"],
    ["queue", /queue/, "#b07aa1"],
    ["lock / semaphore / event", /lock|semaphore|event|condition|barrier/, "#e15759"],
    ["task / gather / future", /task|gather|future/, "#76b7b2"],
    ["file", /file/, "#ff9da7"],
    ["thread", /thread|worker|executor/, "#edc948"],
    ["process", /process|child/, "#9c755f"],
    ["callback", /callback/, "#8c8c8c"],
    ["other", /./, "#bab0ac"]
  ];
  function kindOf(what) {
    for (var i = 0; i < KINDS.length; i++)
      if (KINDS[i][1].test(what)) return KINDS[i];
    return KINDS[KINDS.length - 1];
  }
  function row(tid) {
    if (!rows[tid]) { rows[tid] = {tid: tid, name: "Task-" + tid, spans: [],
                                   life: null}; order.push(rows[tid]); }
    return rows[tid];
  }
  events.forEach(function (e) {
    if (e.ph === "M" && e.name === "thread_name") row(e.tid).name = e.args.name;
    else if (e.ph === "X") {
      var r = row(e.tid);
      if (e.cat === "task") r.life = e; else r.spans.push(e);
      t0 = Math.min(t0, e.ts); t1 = Math.max(t1, e.ts + e.dur);
      if (e.cat === "wait" || e.cat === "callback") {
        var k = e.args && e.args.wait ? e.args.wait : e.name;
        var s = kinds[k] || (kinds[k] = {n: 0, total: 0, max: 0});
        s.n++; s.total += e.dur; s.max = Math.max(s.max, e.dur);
      }
    }
    else if (e.ph === "s" || e.ph === "f") {
      var fl = flows[e.id] || (flows[e.id] = {});
      fl[e.ph] = e;
    }
  });
  order = order.filter(function (r) { return r.life || r.spans.length; });
  order.sort(function (a, b) { return a.tid - b.tid; });
  var ntasks = order.filter(function (r) { return r.life; }).length;
  if (order.length > MAXROWS) {
    document.getElementById("note").textContent = "showing the first " +
      MAXROWS + " of " + order.length + " rows";
    order = order.slice(0, MAXROWS);
  }
  var index = {};
  order.forEach(function (r, i) { index[r.tid] = i; });
  if (!isFinite(t0)) { t0 = 0; t1 = 1; }
  if (t1 <= t0) t1 = t0 + 1;
  var view0 = t0, view1 = t1;

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;")
      .replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function fmt(us) {
    var a = Math.abs(us);
    if (a < 0.5) return "0";
    if (a >= 1e6) return (us / 1e6).toFixed(a >= 1e7 ? 1 : 2) + " s";
    if (a >= 1e3) return (us / 1e3).toFixed(a >= 1e4 ? 0 : 1) + " ms";
    return us.toFixed(0) + " \u00b5s";
  }
  function tickStep(span, n) {
    var raw = span / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
  }

  var width = 800, height = 0;
  function draw() {
    width = Math.max(400, document.documentElement.clientWidth);
    height = TOP + order.length * ROW + 8;
    var W = width - LEFT - 10, scale = W / (view1 - view0);
    function x(ts) { return LEFT + (ts - view0) * scale; }
    function clip(a, b) {  /* visible [a, b] as x, w; null if outside */
      if (b < view0 || a > view1) return null;
      var xa = x(Math.max(a, view0)), xb = x(Math.min(b, view1));
      return [xa, Math.max(1, xb - xa)];
    }
    var o = [];
    o.push('<svg width="' + width + '" height="' + height + '">');
    o.push('<rect x="0" y="0" width="' + width + '" height="' + height +
           '" fill="#fafbfc"/>');
    var step = tickStep(view1 - view0, Math.max(2, W / 110));
    for (var t = Math.ceil((view0 - t0) / step) * step + t0; t <= view1;
         t += step) {
      var tx = x(t).toFixed(1);
      o.push('<line x1="' + tx + '" x2="' + tx + '" y1="' + (TOP - 6) +
             '" y2="' + height + '" stroke="#e3e6ec"/>');
      o.push('<text x="' + tx + '" y="' + (TOP - 10) +
             '" text-anchor="middle" fill="#5b6475">' + esc(fmt(t - t0)) +
             '</text>');
    }
    order.forEach(function (r, i) {
      var y = TOP + i * ROW;
      if (i % 2 === 0)
        o.push('<rect x="0" y="' + y + '" width="' + width + '" height="' +
               ROW + '" fill="#f0f2f6"/>');
      o.push('<text x="6" y="' + (y + 14) + '" fill="#1d2330">' +
             esc(r.name.length > 28 ? r.name.slice(0, 27) + "\u2026" : r.name) +
             '<title>' + esc(r.name) + '</title></text>');
      if (r.life) {
        var c = clip(r.life.ts, r.life.ts + r.life.dur);
        var a = r.life.args || {};
        if (c) o.push('<rect x="' + c[0].toFixed(1) + '" y="' + (y + 8) +
                      '" width="' + c[1].toFixed(1) + '" height="4" fill="' +
                      (a.outcome === "failed" ? "#e15759" :
                       a.outcome === "cancelled" ? "#9aa4b5" : "#c5cad3") +
                      '"><title>' + esc(r.name + " (" + a.outcome + "): " +
                      fmt(r.life.dur) + (a.spawned_at ? ", spawned at " +
                      a.spawned_at : "")) + '</title></rect>');
      }
      r.spans.forEach(function (e) {
        var c = clip(e.ts, e.ts + e.dur);
        if (!c) return;
        var step = e.cat === "step";
        var color = step ? "#1d2330" : kindOf(e.name)[2];
        o.push('<rect x="' + c[0].toFixed(1) + '" y="' + (y + (step ? 3 : 5)) +
               '" width="' + c[1].toFixed(1) + '" height="' + (step ? 14 : 10) +
               '" rx="2" fill="' + color + '"><title>' + esc((step ?
               "running" : "waiting on " + e.name) + ": " + fmt(e.dur) +
               " (at " + fmt(e.ts - t0) + ")") + '</title></rect>');
        if (!step && c[1] > 40) {
          var label = e.name, room = Math.floor((c[1] - 6) / 6);
          if (label.length > room) label = label.slice(0, room - 1) + "\u2026";
          o.push('<text x="' + (c[0] + 3).toFixed(1) + '" y="' + (y + 13) +
                 '" fill="#fff" font-size="9" pointer-events="none">' +
                 esc(label) + '</text>');
        }
      });
    });
    Object.keys(flows).forEach(function (id) {
      var fl = flows[id];
      if (!fl.s || !fl.f || index[fl.s.tid] === undefined ||
          index[fl.f.tid] === undefined) return;
      if (fl.f.ts < view0 || fl.s.ts > view1) return;
      var x1 = x(fl.s.ts), y1 = TOP + index[fl.s.tid] * ROW + 10;
      var x2 = x(fl.f.ts), y2 = TOP + index[fl.f.tid] * ROW + 10;
      o.push('<path d="M' + x1.toFixed(1) + ' ' + y1 + ' C' + x1.toFixed(1) +
             ' ' + y2 + ' ' + x1.toFixed(1) + ' ' + y2 + ' ' + x2.toFixed(1) +
             ' ' + y2 + '" stroke="#7a8599" stroke-width="1" fill="none" ' +
             'opacity="0.55"/>');
      o.push('<circle cx="' + x2.toFixed(1) + '" cy="' + y2 + '" r="2" ' +
             'fill="#7a8599"/>');
    });
    o.push('<line x1="' + LEFT + '" x2="' + LEFT + '" y1="0" y2="' + height +
           '" stroke="#c5cad3"/>');
    o.push("</svg>");
    document.getElementById("chart").innerHTML = o.join("");
  }

  document.getElementById("summary").textContent = ntasks + " tasks \u00b7 " +
    fmt(t1 - t0) + " \u00b7 " + ((data.otherData || {}).generator || "");
  document.getElementById("legend").innerHTML =
    '<span><i style="background:#1d2330;outline:1px solid #e8ecf3"></i>' +
    'running</span>' +
    '<span><i style="background:#c5cad3"></i>task alive</span>' +
    KINDS.map(function (k) {
      return '<span><i style="background:' + k[2] + '"></i>' + esc(k[0]) +
             '</span>';
    }).join("");
  var krows = Object.keys(kinds).sort(function (a, b) {
    return kinds[b].total - kinds[a].total; });
  document.getElementById("kinds").innerHTML =
    "<tr><th>waits on</th><th>count</th><th>total</th><th>longest</th></tr>" +
    krows.map(function (k) {
      var s = kinds[k];
      return "<tr><td>" + esc(k) + "</td><td>" + s.n + "</td><td>" +
             esc(fmt(s.total)) + "</td><td>" + esc(fmt(s.max)) + "</td></tr>";
    }).join("");

  var chart = document.getElementById("chart");
  chart.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var W = width - LEFT - 10, px = ev.offsetX - LEFT;
    if (px < 0) px = 0;
    var at = view0 + (px / W) * (view1 - view0);
    var f = ev.deltaY < 0 ? 0.8 : 1.25;
    var span = Math.max(1, (view1 - view0) * f);
    view0 = at - (at - view0) * span / (view1 - view0);
    view1 = view0 + span;
    draw();
  }, {passive: false});
  var drag = null;
  chart.addEventListener("mousedown", function (ev) {
    drag = {x: ev.clientX, v0: view0, v1: view1};
  });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) return;
    var W = width - LEFT - 10;
    var dt = (ev.clientX - drag.x) / W * (drag.v1 - drag.v0);
    view0 = drag.v0 - dt; view1 = drag.v1 - dt;
    draw();
  });
  chart.addEventListener("dblclick", function () {
    view0 = t0; view1 = t1; draw();
  });
  window.addEventListener("resize", draw);
  draw();
})();
</script>
</body></html>
]==]

return M
