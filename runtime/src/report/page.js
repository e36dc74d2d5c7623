// Draws the report's charts as SVG from the JSON in #report-data. Marks the
// document with data-charts-drawn (the number of charts drawn) when done.
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var drawn = 0;
  var COLORS = { fragility: '#d2453b', cost: '#c88a12', drag: '#3b6fd2', score: '#1d2430' };

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var key in attrs) { node.setAttribute(key, attrs[key]); }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function text(parent, x, y, content, anchor) {
    var t = el('text', { x: x, y: y, 'text-anchor': anchor || 'start' }, parent);
    t.textContent = content;
    return t;
  }
  function seconds(ms) { return (ms / 1000).toFixed(1) + ' s'; }
  function svg(container, width, height) {
    return el('svg', { viewBox: '0 0 ' + width + ' ' + height, role: 'img' }, container);
  }

  // A time axis from 0 to data.t1, with phase boundaries and recompositions.
  function timeFrame(root, x0, x1, y0, y1) {
    var span = Math.max(data.t1, 1);
    var x = function (t) { return x0 + (x1 - x0) * Math.min(Math.max(t / span, 0), 1); };
    el('line', { x1: x0, y1: y1, x2: x1, y2: y1, stroke: '#98a0ac' }, root);
    for (var i = 0; i <= 4; i++) {
      var t = span * i / 4;
      text(root, x(t), y1 + 14, seconds(t), 'middle');
    }
    data.phases.forEach(function (phase) {
      el('line', { x1: x(phase[1]), y1: y0, x2: x(phase[1]), y2: y1, stroke: '#687385',
        'stroke-dasharray': '4 3', 'class': 'phase-boundary' }, root);
      text(root, x(phase[1]) + 3, y0 + 10, phase[0]);
    });
    data.recompositions.forEach(function (r) {
      el('line', { x1: x(r[1]), y1: y0, x2: x(r[1]), y2: y1, stroke: '#2e9d5b',
        'stroke-dasharray': '1 3', 'class': 'recomposition' }, root);
    });
    return x;
  }

  function drawDecay(chart) {
    var container = document.getElementById(chart.id);
    if (!container) { return; }
    var W = 800, H = 214, left = 40, right = 770, top = 8, bottom = 176;
    var root = svg(container, W, H);
    var x = timeFrame(root, left, right, top, bottom);
    var y = function (v) { return bottom - (bottom - top) * Math.min(Math.max(v, 0), 1); };
    [0, 0.5, 1].forEach(function (v) {
      el('line', { x1: left, y1: y(v), x2: right, y2: y(v), stroke: '#eceef2' }, root);
      text(root, left - 4, y(v) + 4, v.toFixed(1), 'end');
    });
    ['fragility', 'cost', 'drag', 'score'].forEach(function (name, k) {
      var d = chart.points.map(function (p, i) {
        return (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[k + 1]).toFixed(1);
      }).join(' ');
      if (d) {
        el('path', { d: d, fill: 'none', stroke: COLORS[name], 'stroke-width': name === 'score' ? 2 : 1.2,
          'class': 'series series-' + name }, root);
      }
      text(root, right - 260 + k * 66, H - 2, name).setAttribute('fill', COLORS[name]);
    });
    chart.crossings.forEach(function (c) {
      el('circle', { cx: x(c[0]), cy: y(0.5), r: 4, fill: c[1] ? '#d2453b' : '#2e9d5b', 'class': 'crossing' }, root);
    });
    if (chart.cost.length > 0) { drawCost(container, chart.cost); }
    drawn++;
  }

  // The handling time per message against the cost baseline: the band is
  // the baseline's mean plus or minus one deviation, as it was learned.
  function drawCost(container, cost) {
    var W = 800, H = 130, left = 40, right = 770, top = 8, bottom = 96;
    var root = svg(container, W, H);
    var x = timeFrame(root, left, right, top, bottom);
    var max = cost.reduce(function (m, c) { return Math.max(m, c[1], c[2] + c[3]); }, 1e-9) * 1.1;
    var y = function (v) { return bottom - (bottom - top) * Math.min(Math.max(v / max, 0), 1); };
    text(root, left - 4, y(max) + 10, max.toFixed(0) + ' µs', 'end');
    text(root, left - 4, bottom, '0', 'end');
    var upper = cost.map(function (c, i) { return (i ? 'L' : 'M') + x(c[0]).toFixed(1) + ' ' + y(c[2] + c[3]).toFixed(1); });
    var lower = cost.slice().reverse().map(function (c) { return 'L' + x(c[0]).toFixed(1) + ' ' + y(Math.max(c[2] - c[3], 0)).toFixed(1); });
    el('path', { d: upper.join(' ') + ' ' + lower.join(' ') + ' Z', fill: '#c88a12', 'fill-opacity': 0.18,
      stroke: 'none', 'class': 'baseline-band' }, root);
    el('path', { d: cost.map(function (c, i) { return (i ? 'L' : 'M') + x(c[0]).toFixed(1) + ' ' + y(c[2]).toFixed(1); }).join(' '),
      fill: 'none', stroke: '#c88a12', 'stroke-dasharray': '5 3', 'class': 'baseline-mean' }, root);
    var measured = cost.filter(function (c) { return c[1] >= 0; });
    if (measured.length > 0) {
      el('path', { d: measured.map(function (c, i) { return (i ? 'L' : 'M') + x(c[0]).toFixed(1) + ' ' + y(c[1]).toFixed(1); }).join(' '),
        fill: 'none', stroke: '#1d2430', 'stroke-width': 1.5, 'class': 'series series-cost-measured' }, root);
    }
    text(root, right - 330, H - 2, 'cost per message (line) against its baseline (band)');
  }

  function drawSignatures() {
    var container = document.getElementById('signature-timeline');
    if (!container || data.signatures.length === 0) { return; }
    var row = 22, left = 40, right = 770, top = 16;
    var H = top + row * data.signatures.length + 24;
    var root = svg(container, 800, H);
    var x = timeFrame(root, left, right, 0, H - 20);
    data.signatures.forEach(function (sig, i) {
      var cy = top + row * i + row / 2;
      text(root, left - 4, cy + 4, '#' + i, 'end');
      el('line', { x1: left, y1: cy, x2: right, y2: cy, stroke: '#eceef2' }, root);
      var max = sig.points.reduce(function (m, p) { return Math.max(m, p[1]); }, 1);
      sig.points.forEach(function (p) {
        var r = 3 + 5 * Math.sqrt(p[1] / max);
        var dot = el('circle', { cx: x(p[0]), cy: cy, r: r.toFixed(1), fill: '#d2453b',
          'fill-opacity': 0.6, 'class': 'sighting' }, root);
        el('title', {}, dot).textContent = 'count ' + p[1] + ' at ' + seconds(p[0]);
      });
    });
    drawn++;
  }

  // Nodes in columns by their distance from the edges' sources; each edge
  // drawn twice: before (grey) and after (blue), widths by rate.
  function drawFlow(chart) {
    var container = document.getElementById(chart.id);
    if (!container) { return; }
    if (chart.edges.length === 0) {
      text(svg(container, 800, 30), 8, 20, 'no message edges in either snapshot');
      drawn++;
      return;
    }
    var names = [], depth = {};
    chart.edges.forEach(function (e) {
      [e[0], e[1]].forEach(function (n) { if (names.indexOf(n) < 0) { names.push(n); depth[n] = 0; } });
    });
    for (var pass = 0; pass < names.length; pass++) {
      chart.edges.forEach(function (e) {
        if (e[0] !== e[1] && depth[e[1]] < depth[e[0]] + 1 && depth[e[0]] + 1 < names.length) {
          depth[e[1]] = depth[e[0]] + 1;
        }
      });
    }
    var columns = [];
    names.forEach(function (n) { (columns[depth[n]] = columns[depth[n]] || []).push(n); });
    var rows = columns.reduce(function (m, c) { return Math.max(m, c ? c.length : 0); }, 1);
    var W = 800, H = Math.max(120, rows * 56 + 30), pos = {};
    var step = W / Math.max(columns.length, 1);
    columns.forEach(function (col, ci) {
      (col || []).forEach(function (n, ri) {
        pos[n] = { x: step * ci + step / 2, y: (H - 20) * (ri + 0.5) / col.length + 10 };
      });
    });
    var root = svg(container, W, H);
    var max = chart.edges.reduce(function (m, e) { return Math.max(m, e[2], e[3]); }, 1);
    chart.edges.forEach(function (e) {
      var a = pos[e[0]], b = pos[e[1]];
      [[e[2], '#98a0ac', -3, 'before'], [e[3], '#3b6fd2', 3, 'after']].forEach(function (s) {
        if (s[0] < 0) { return; }
        el('line', { x1: a.x, y1: a.y + s[2], x2: b.x, y2: b.y + s[2], stroke: s[1],
          'stroke-width': (1 + 7 * s[0] / max).toFixed(1), 'stroke-opacity': 0.8, 'class': 'edge edge-' + s[3] }, root);
      });
    });
    names.forEach(function (n) {
      el('circle', { cx: pos[n].x, cy: pos[n].y, r: 6, fill: '#1d2430', 'class': 'node' }, root);
      text(root, pos[n].x, pos[n].y - 10, n, 'middle');
    });
    text(root, 8, H - 4, 'grey: before, blue: after; width: messages per second');
    drawn++;
  }

  data.decay.forEach(drawDecay);
  drawSignatures();
  data.flow.forEach(drawFlow);
  document.documentElement.setAttribute('data-charts-drawn', String(drawn));
  document.getElementById('charts-status').textContent = drawn + ' charts drawn.';
}());
