// The console's chart component: each <figure data-chart="ID"> is drawn with uPlot from
// the JSON block <script type="application/json" id="ID"> that the server rendered next to
// it: {labels, x (unix s), y (one array per label, null for gaps), markers, lines, and
// bars: true to draw bars starting at each x (a histogram's buckets)}.
(function () {
  "use strict";
  var PALETTE = ["#2f81f7", "#e5534b", "#3fb950", "#d29922", "#a371f7", "#39c5cf"];

  // The y axis as wide as its longest tick label (uPlot's fixed default cuts "99.975").
  function fitAxis(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1 && axis._size) return axis._size;
    var longest = (values || []).reduce(function (a, v) { return String(v).length > a.length ? String(v) : a; }, "");
    u.ctx.save();
    u.ctx.font = axis.font[0];
    var text = longest ? u.ctx.measureText(longest).width / (window.devicePixelRatio || 1) : 0;
    u.ctx.restore();
    return Math.ceil(axis.ticks.size + axis.gap + text + 6);
  }

  function draw(fig) {
    if (fig.hasAttribute("data-drawn") || typeof uPlot === "undefined") return;
    var block = document.getElementById(fig.getAttribute("data-chart"));
    if (!block) return;
    var data = JSON.parse(block.textContent);
    var target = fig.querySelector(".chart-canvas");
    fig.setAttribute("data-drawn", "");
    if (!data.x.length) {
      target.innerHTML = '<p class="no-data">No stored samples in this range.</p>';
      return;
    }
    var spark = fig.classList.contains("sparkline");
    var height = parseInt(fig.getAttribute("data-height"), 10) || 220;
    var width = Math.max(120, target.clientWidth || fig.clientWidth || 400);
    var series = [{}].concat(data.labels.map(function (label, i) {
      var s = { label: label, stroke: PALETTE[i % PALETTE.length], width: spark ? 1 : 1.5, spanGaps: true,
                scale: spark && i > 0 ? "load" : "y" };
      if (data.bars) {  // a histogram: one bar per bucket
        s.paths = uPlot.paths.bars({ size: [0.9, 48], align: 1 });
        s.fill = PALETTE[i % PALETTE.length] + "aa";
        s.spanGaps = false;
      }
      return s;
    }));
    var lines = data.lines || [];
    var markers = data.markers || [];
    // Optional: annotations [{t, label, kind: level | dry-run | toggle}], y_max (levels).
    var notes = data.annotations || [];
    var opts = {
      width: width, height: height, series: series,
      legend: { show: !spark }, cursor: { show: !spark },
      axes: spark ? [{ show: false }, { show: false }] : [
        { stroke: getComputedStyle(document.body).color },
        { stroke: getComputedStyle(document.body).color, size: fitAxis },
      ],
      scales: { x: { time: true } },
      hooks: { draw: [function (u) {
        var ctx = u.ctx;
        ctx.save();
        ctx.lineWidth = 1;
        markers.forEach(function (t) {  // decisions that changed the replica count
          var x = Math.round(u.valToPos(t, "x", true));
          ctx.strokeStyle = "rgba(128,128,128,0.6)";
          ctx.setLineDash([3, 3]);
          ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
        });
        notes.forEach(function (note, i) {  // degradation level and toggle changes, labelled
          if (note.t < u.scales.x.min || note.t > u.scales.x.max) return;
          var x = Math.round(u.valToPos(note.t, "x", true));
          var colour = note.kind === "toggle" ? "#a371f7" : "#d29922";
          ctx.strokeStyle = colour;
          ctx.setLineDash(note.kind === "level" ? [] : note.kind === "toggle" ? [1, 3] : [6, 3]);
          ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
          ctx.fillStyle = colour;
          var width = ctx.measureText(note.label).width;
          var right = u.bbox.left + u.bbox.width;
          ctx.fillText(note.label, x + 3 + width > right ? x - 3 - width : x + 3,
                       u.bbox.top + 12 + (i % 4) * 12);
        });
        lines.forEach(function (line) {  // objectives (SLO thresholds)
          var y = Math.round(u.valToPos(line.value, "y", true));
          ctx.strokeStyle = "#e5534b";
          ctx.setLineDash([6, 4]);
          ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
          ctx.fillStyle = "#e5534b";
          ctx.fillText(line.label, u.bbox.left + 4, y - 4);
        });
        ctx.restore();
      }] },
    };
    if (data.y_max) {  // levels: the axis spans every level, whole steps only
      opts.scales.y = { range: [0, data.y_max + 0.2] };
      opts.axes[1].incrs = [1];
    }
    if (lines.length) {
      // Keep the SLO line in view even when every sample is far below it.
      var top = Math.max.apply(null, lines.map(function (l) { return l.value; }));
      opts.scales.y = { range: function (u, min, max) { return [0, Math.max(max || 0, top) * 1.1]; } };
    }
    new uPlot(opts, [data.x].concat(data.y), target);
  }

  function drawAll(root) { root.querySelectorAll("figure[data-chart]").forEach(draw); }
  window.addEventListener("load", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.target.ownerDocument || document); });
})();
