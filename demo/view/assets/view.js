// tcplab view: the page of one trace or capture. The data comes from
// /data.json (built by package demo/view); this script only draws it: a
// virtualised SVG ladder, a details panel, and canvas graphs.
'use strict';

const S = {
  data: null,
  conn: 'all',     // the connection filter: 'all' or an index in data.conns
  rows: [],        // item indexes shown in the ladder, in order
  ys: null,        // ys[k]: top of row k; ys[rows.length]: total height
  pos: null,       // pos[item]: its row, -1 when filtered out
  rowH: 20,
  sel: -1,         // selected item
  xmode: 'time',
  gx: null,        // graphs' x range when zoomed: [x0, x1], null for all
  arrivals: false, // the trace records arrivals ("in" segments)
};
// What went wrong in the page (script errors, content-security-policy
// violations), for the browser test to report.
const problems = [];
window.addEventListener('error', (e) => problems.push('error: ' + e.message));
window.addEventListener('unhandledrejection', (e) => problems.push('unhandled rejection: ' + e.reason));
document.addEventListener('securitypolicyviolation', (e) => problems.push('CSP: ' + e.violatedDirective + ' blocked ' + e.blockedURI));
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));

const COLOR = { rst: '#c81e28', fin: '#1f4fa0', syn: '#17803d', data: '#1d2330', ack: '#8a93a3' };
function segColor(it) {
  const f = it.flags || '';
  if (f.includes('R')) return 'rst';
  if (f.includes('F')) return 'fin';
  if (f.includes('S')) return 'syn';
  if (/seq \d+:\d+/.test(it.label)) return 'data';
  return 'ack';
}

// ---- loading ---------------------------------------------------------

async function load() {
  let d;
  try {
    const r = await fetch('data.json');
    if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
    d = await r.json();
  } catch (e) {
    $('file').textContent = 'could not load data.json: ' + e.message;
    return;
  }
  init(d);
}

function init(d) {
  S.data = d;
  S.arrivals = d.items.some((it) => it.dir === 'in');
  // Each connection's first and last item, for the graphs' x range.
  for (const c of d.conns) { c.i0 = -1; c.i1 = -1; }
  for (const it of d.items) {
    if (it.conn < 0) continue;
    const c = d.conns[it.conn];
    if (c.i0 < 0) c.i0 = it.i;
    c.i1 = it.i;
  }
  $('file').textContent = d.file + ' (' + d.source + ')';
  document.title = 'tcplab view: ' + d.file;
  const sel = $('conn');
  d.conns.forEach((c, i) => {
    const o = document.createElement('option');
    o.value = String(i);
    o.textContent = c.id + ': ' + c.label;
    sel.appendChild(o);
  });
  if (d.conns.length === 1) sel.value = '0';
  S.conn = sel.value;
  // A trace with a long quiet spell (a scenario's sleep) reads better in
  // event order than in time.
  let gap = 0;
  for (let i = 1; i < d.items.length; i++) gap = Math.max(gap, d.items[i].t - d.items[i - 1].t);
  S.xmode = d.end > 0 && gap > d.end / 2 ? 'order' : 'time';
  $('xmode').value = S.xmode;
  $('notes').innerHTML = d.notes.map((n) => '<p>' + esc(n) + '</p>').join('');
  fillFindings();
  bind();
  fromHash();
  layout();
  document.body.dataset.ready = '1';
}

function fillFindings() {
  const d = S.data;
  const li = [];
  for (const it of d.items) {
    if (!it.reason || it.dir === 'in' || !/[FR]/.test(it.flags || '')) continue;
    const k = (it.flags || '').includes('R') ? 'rst' : 'fin';
    const c = it.conn >= 0 ? d.conns[it.conn].id : '';
    li.push('<li data-i="' + it.i + '"><span class="k ' + k + '">' + esc(it.flags) + '</span> ' +
      (c && d.conns.length > 1 ? 'conn ' + esc(c) + ' ' : '') + 'from ' + esc(it.host) +
      ' at ' + it.t.toFixed(6) + ' s: <span class="r">' + esc(it.reason) + '</span></li>');
  }
  $('findings').innerHTML = li.length ? li.join('') : '<li class="hint">none</li>';
}

// ---- ladder ----------------------------------------------------------

function hasReasonLine(it) { return it.reason && it.dir !== 'in'; }

function layout() {
  const d = S.data;
  const c = S.conn === 'all' ? -1 : +S.conn;
  S.rows = [];
  S.pos = new Int32Array(d.items.length).fill(-1);
  for (const it of d.items) {
    if (c >= 0 && it.conn >= 0 && it.conn !== c) continue;
    S.pos[it.i] = S.rows.length;
    S.rows.push(it.i);
  }
  const extra = S.rowH >= 12 ? 14 : 0;
  S.ys = new Float64Array(S.rows.length + 1);
  for (let k = 0; k < S.rows.length; k++) {
    S.ys[k + 1] = S.ys[k] + S.rowH + (hasReasonLine(d.items[S.rows[k]]) ? extra : 0);
  }
  $('spacer').style.height = S.ys[S.rows.length] + 'px';
  $('count').textContent = S.rows.length + ' rows, ' + d.conns.length + ' connection' + (d.conns.length === 1 ? '' : 's');
  $('summary').innerHTML = summaryHTML();
  render();
  drawGraphs();
}

function rowAt(y) { // the row whose span holds y (binary search)
  let lo = 0, hi = S.rows.length - 1;
  while (lo < hi) {
    const m = (lo + hi + 1) >> 1;
    if (S.ys[m] <= y) lo = m; else hi = m - 1;
  }
  return lo;
}

// lanesFor lays out the lanes across width W: two per connection shown
// side by side (all of them when they fit, 440 px a pair), or, with more
// connections than fit, two shared lanes (the side that sent the SYN, the
// side that answered) with each row naming its connection.
function lanesFor(W) {
  const d = S.data, t = 74;
  let pairs;
  if (S.conn !== 'all') pairs = [+S.conn];
  else if (d.conns.length * 440 <= W - t) pairs = d.conns.map((_, i) => i);
  else pairs = null;
  const n = pairs ? pairs.length : 1, slot = (W - t) / Math.max(n, 1);
  const L = { shared: !pairs, slot: {}, heads: [], xs: [] };
  const at = (k, lane) => t + slot * k + slot * (lane === 0 ? 0.22 : 0.78);
  const name = (c, k) => (c.lanes[k] === c.addrs[k] ? c.addrs[k] : c.lanes[k] + ' ' + c.addrs[k]);
  if (pairs) {
    pairs.forEach((ci, k) => {
      L.slot[ci] = k;
      const c = d.conns[ci];
      for (const lane of [0, 1]) {
        L.xs.push(at(k, lane));
        L.heads.push([at(k, lane), (pairs.length > 1 ? '#' + c.id + ' ' : '') + (pairs.length > 1 ? c.lanes[lane] : name(c, lane))]);
      }
    });
  } else {
    L.xs = [at(0, 0), at(0, 1)];
    L.heads = [[at(0, 0), 'side that sent the SYN'], [at(0, 1), 'side that answered']];
  }
  // x of lane `lane` of connection ci; an item of no connection (a
  // listener, a note) goes to the first lane its host has.
  L.x = (ci, lane, host) => {
    if (!pairs) return at(0, lane);
    if (ci < 0 || L.slot[ci] === undefined) {
      for (const cj of pairs) {
        const c = d.conns[cj];
        for (const l of [0, 1]) if (c.lanes[l] === host) return at(L.slot[cj], l);
      }
      return at(0, lane);
    }
    return at(L.slot[ci], lane);
  };
  // the middle of the pair whose slot holds x
  L.mid = (x) => t + slot * Math.min(n - 1, Math.max(0, Math.floor((x - t) / slot))) + slot / 2;
  return L;
}

function render() {
  const lad = $('ladder'), svg = $('rows');
  const W = lad.clientWidth, H = lad.clientHeight, top = lad.scrollTop;
  svg.setAttribute('width', W);
  svg.setAttribute('height', H);
  svg.style.top = top + 'px';
  const LN = lanesFor(W);
  const heads = $('lanes');
  heads.textContent = '';
  for (const h of LN.heads) { // DOM, not markup: the CSP allows no inline style
    const sp = document.createElement('span');
    sp.textContent = h[1];
    sp.style.left = h[0] + 'px';
    heads.appendChild(sp);
  }
  if (!S.rows.length) { svg.innerHTML = ''; return; }
  const items = S.data.items;
  const first = rowAt(top), last = rowAt(top + H);
  const multi = LN.shared;
  const out = [];
  out.push('<defs>');
  for (const k in COLOR) {
    out.push('<marker id="ah-' + k + '" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="' + COLOR[k] + '"/></marker>');
  }
  out.push('</defs>');
  for (const x of LN.xs) out.push('<line class="lane" x1="' + x + '" y1="0" x2="' + x + '" y2="' + H + '"/>');
  const showText = S.rowH >= 12;
  const ry = (k) => S.ys[k] - top; // top of row k in the svg
  const mid = (k) => ry(k) + S.rowH / 2;
  const laneOf = (it) => LN.x(it.conn, it.lane, it.host);
  const otherOf = (it) => LN.x(it.conn, 1 - it.lane, '');
  const arrow = (it, k, y2, x2) => {
    const col = segColor(it);
    const x1 = laneOf(it);
    let s = '<line x1="' + x1 + '" y1="' + mid(k) + '" x2="' + x2 + '" y2="' + y2 + '" stroke="' + COLOR[col] +
      '" stroke-width="' + (col === 'rst' || col === 'fin' ? 2 : 1.3) + '" marker-end="url(#ah-' + col + ')"';
    if (it.lost) s += ' stroke-dasharray="4 3"';
    return s + '/>';
  };
  // Arrows that start above the view and end in or below it.
  for (let k = Math.max(0, first - 400); k < first; k++) {
    const it = items[S.rows[k]];
    if (it.kind !== 'segment' || it.dir !== 'out' || it.arrive < 0) continue;
    const ka = S.pos[it.arrive];
    if (ka < first) continue;
    out.push(arrow(it, k, mid(ka), otherOf(it)));
  }
  for (let k = first; k <= last && k < S.rows.length; k++) {
    const it = items[S.rows[k]];
    const y = ry(k), h = S.ys[k + 1] - S.ys[k], ym = mid(k);
    if (it.i === S.sel) out.push('<rect class="sel" x="0" y="' + y + '" width="' + W + '" height="' + h + '"/>');
    if (showText) out.push('<text class="t" x="4" y="' + (ym + 4) + '">' + it.t.toFixed(6) + '</text>');
    const x = laneOf(it), xm = LN.mid(x);
    const left = x <= xm, outer = left ? x - 8 : x + 8, anchor = left ? 'end' : 'start';
    const pre = multi && it.conn >= 0 ? '#' + S.data.conns[it.conn].id + ' ' : '';
    if (it.kind === 'segment') {
      const other = otherOf(it);
      if (it.dir === 'in') {
        const col = it.refused ? COLOR.rst : '#8a93a3';
        out.push('<circle cx="' + x + '" cy="' + ym + '" r="3" fill="' + col + '"/>');
        if (showText && it.refused) out.push('<text class="refused" x="' + outer + '" y="' + (ym + 4) + '" text-anchor="' + anchor + '">' + esc(pre + 'refused ' + it.flags) + '</text>');
        else if (showText && S.rowH >= 16) out.push('<text class="arrive" x="' + outer + '" y="' + (ym + 4) + '" text-anchor="' + anchor + '">' + esc(pre + 'in ' + it.flags) + '</text>');
      } else {
        let y2 = ym, x2 = other;
        if (it.dir === 'wire') y2 = ym + S.rowH * 0.35;
        else if (it.arrive >= 0) y2 = mid(S.pos[it.arrive]);
        else if (it.lost) x2 = (x + other) / 2;
        out.push(arrow(it, k, y2, x2));
        if (it.lost) out.push('<text x="' + (x2 - 4) + '" y="' + (ym + 4) + '" fill="' + COLOR.rst + '">✕</text>');
        if (showText) {
          out.push('<text x="' + xm + '" y="' + (ym - 3) + '" text-anchor="middle" class="seg" data-flags="' + esc(it.flags) + '">' + esc(pre + it.label) + '</text>');
        }
      }
      if (showText && hasReasonLine(it)) {
        const cls = (it.flags || '').includes('R') ? 'reason' : 'reason fin';
        out.push('<text class="' + cls + '" x="' + xm + '" y="' + (y + S.rowH + 9) + '" text-anchor="middle">' + esc('reason: ' + it.reason) + '</text>');
      }
    } else if (showText) {
      let cls = it.kind, text = pre + it.label;
      if (it.kind === 'note') {
        out.push('<text class="note" x="' + xm + '" y="' + (ym + 4) + '" text-anchor="middle">' + esc(text) + '</text>');
      } else {
        out.push('<text class="' + cls + '" x="' + outer + '" y="' + (ym + 4) + '" text-anchor="' + anchor + '">' + esc(text) + '</text>');
      }
      if (it.kind === 'state') out.push('<circle cx="' + x + '" cy="' + ym + '" r="4" fill="#0f6b45"/>');
    }
    out.push('<rect class="hit" data-i="' + it.i + '" x="0" y="' + y + '" width="' + W + '" height="' + h + '"/>');
  }
  svg.innerHTML = out.join('');
}

// ---- selection and details -------------------------------------------

function select(i, scroll) {
  const d = S.data;
  if (!d || i < 0 || i >= d.items.length) return;
  const it = d.items[i];
  if (S.pos[i] < 0) { // filtered out: show its connection
    S.conn = it.conn >= 0 ? String(it.conn) : 'all';
    $('conn').value = S.conn;
    layout();
  }
  S.sel = i;
  const rows = it.fields.map((f) => '<tr' + (f[0] === 'reason' ? ' class="reason"' : '') + '><td>' + esc(f[0]) + '</td><td>' + esc(f[1]) + '</td></tr>');
  let links = '';
  if (it.arrive >= 0) links += ' <a href="#select=' + it.arrive + '">arrival →</a>';
  if (it.of >= 0) links += ' <a href="#select=' + it.of + '">← as sent</a>';
  $('details').innerHTML = '<div class="title" id="seltitle">' + esc(it.host + ' ' + (it.dir || it.kind) + ': ' + it.label) + '</div>' +
    '<table id="fields">' + rows.join('') + '</table>' + (links ? '<p>' + links + '</p>' : '');
  if (location.hash !== '#select=' + i) history.replaceState(null, '', '#select=' + i);
  if (scroll) {
    const lad = $('ladder'), k = S.pos[i];
    const y = S.ys[k];
    if (y < lad.scrollTop || y > lad.scrollTop + lad.clientHeight - 3 * S.rowH) lad.scrollTop = Math.max(0, y - lad.clientHeight / 3);
  }
  $('summary').innerHTML = summaryHTML();
  render();
  drawGraphs();
}

function fromHash() {
  const m = /select=(\d+)/.exec(location.hash);
  const c = /conn=([^&]+)/.exec(location.hash);
  if (c) {
    const k = S.data.conns.findIndex((x) => x.id === decodeURIComponent(c[1]));
    if (k >= 0) { S.conn = String(k); $('conn').value = S.conn; }
  }
  if (m) setTimeout(() => select(+m[1], true), 0);
  // #select=rst: the first RST sent (for screenshots and links).
  if (/select=rst/.test(location.hash)) {
    const it = S.data.items.find((x) => (x.flags || '').includes('R') && x.dir !== 'in');
    if (it) setTimeout(() => select(it.i, true), 0);
  }
}

function graphConn() {
  const d = S.data;
  if (S.conn !== 'all') return +S.conn;
  if (S.sel >= 0 && d.items[S.sel].conn >= 0) return d.items[S.sel].conn;
  return d.conns.length ? 0 : -1;
}

function summaryHTML() {
  const ci = graphConn();
  if (ci < 0) return '<p class="hint">no connection</p>';
  const c = S.data.conns[ci];
  const f = [['connection', c.id + ': ' + c.label]].concat(c.summary || []);
  return '<table>' + f.map((x) => '<tr><td>' + esc(x[0]) + '</td><td>' + esc(x[1]) + '</td></tr>').join('') + '</table>';
}

// ---- graphs ------------------------------------------------------------

function canvas(id) {
  const cv = $(id), r = window.devicePixelRatio || 1;
  const w = cv.clientWidth, h = cv.clientHeight;
  if (cv.width !== Math.round(w * r) || cv.height !== Math.round(h * r)) { cv.width = Math.round(w * r); cv.height = Math.round(h * r); }
  const g = cv.getContext('2d');
  g.setTransform(r, 0, 0, r, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = '10px ui-monospace, monospace';
  return { g, w, h };
}

// xOf gives a series point's x value: its time or its item index.
function xOf(t, i) { return S.xmode === 'time' ? t : i; }

function xRange(c) {
  if (S.gx) return S.gx;
  const items = S.data.items;
  let lo = S.xmode === 'time' ? c.first : c.i0, hi = S.xmode === 'time' ? c.last : c.i1;
  if (S.xmode === 'time' && c.i0 >= 0) { lo = items[c.i0].t; hi = items[c.i1].t; }
  if (!isFinite(lo) || lo < 0) { lo = 0; hi = 1; }
  if (hi <= lo) hi = lo + (S.xmode === 'time' ? 0.001 : 1);
  const pad = (hi - lo) * 0.03;
  return [lo - pad, hi + pad];
}

function ticks(lo, hi, n) {
  const step0 = (hi - lo) / n, p = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
  return out;
}

function fmtX(v) { return S.xmode === 'time' ? (+v.toPrecision(6)) + 's' : '#' + Math.round(v); }

const G = {}; // per canvas: its scales and points, for clicks

function drawGraphs() {
  const ci = graphConn();
  for (const k of [0, 1]) drawTSG(ci, k);
  drawBands(ci);
}

function drawTSG(ci, k) {
  const id = 'tsg' + k;
  const { g, w, h } = canvas(id);
  const title = $(id + 'title');
  if (ci < 0) { title.textContent = 'time-sequence: no connection'; return; }
  const c = S.data.conns[ci], dir = c.dirs[k];
  title.textContent = dir.from + ' → ' + dir.to + ': seq (sent), ack and window edge (' + dir.to + "'s); scale " + dir.wscale_by;
  title.title = title.textContent;
  const [x0, x1] = xRange(c);
  const inX = (p) => { const x = xOf(p[0], p[1]); return x >= x0 && x <= x1; };
  const segs = dir.segs.filter(inX), acks = dir.acks.filter(inX);
  let y0 = Infinity, y1 = -Infinity;
  for (const s of segs) { y0 = Math.min(y0, s[2]); y1 = Math.max(y1, s[3]); }
  for (const a of acks) { y0 = Math.min(y0, a[2]); y1 = Math.max(y1, a[2]); }
  let edgeMax = -Infinity;
  for (const a of acks) edgeMax = Math.max(edgeMax, a[3]);
  // Keep the window edge in view unless it dwarfs the data.
  const clipped = isFinite(edgeMax) && isFinite(y1) && edgeMax > y1 + 4 * Math.max(y1 - y0, 1);
  if (isFinite(edgeMax) && !clipped) y1 = Math.max(y1, edgeMax);
  if (!isFinite(y0)) { y0 = 0; y1 = 1; }
  if (y1 <= y0) y1 = y0 + 1;
  const padY = (y1 - y0) * 0.08;
  y0 -= padY; y1 += padY;
  const L = 56, R = 8, T = 18, B = 18;
  const X = (v) => L + (v - x0) / (x1 - x0) * (w - L - R);
  const Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (h - T - B);
  axes(g, w, h, L, R, T, B, x0, x1, y0, y1, X, Y);
  const pts = [];
  // ACK line and window edge, as steps.
  const step = (idx, color, dash) => {
    g.strokeStyle = color; g.setLineDash(dash); g.lineWidth = 1.3; g.beginPath();
    let px = null, py = null;
    for (const a of acks) {
      const x = X(xOf(a[0], a[1])), y = Y(Math.min(a[idx], y1));
      if (px === null) g.moveTo(x, y); else { g.lineTo(x, py); g.lineTo(x, y); }
      px = x; py = y;
    }
    if (px !== null) g.lineTo(w - R, py);
    g.stroke(); g.setLineDash([]);
  };
  step(3, '#d08000', [4, 3]);
  step(2, '#17803d', []);
  for (const a of acks) pts.push([X(xOf(a[0], a[1])), Y(a[2]), a[1]]);
  const segCol = ['#1d2330', COLOR.syn, COLOR.fin, COLOR.rst, '#e0561b'];
  for (const s of segs) {
    const x = X(xOf(s[0], s[1])), ya = Y(s[2]), yb = Y(s[3]);
    g.strokeStyle = segCol[s[4]]; g.fillStyle = segCol[s[4]]; g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(x, ya); g.lineTo(x, yb); g.moveTo(x - 3, ya); g.lineTo(x + 3, ya); g.moveTo(x - 3, yb); g.lineTo(x + 3, yb); g.stroke();
    const lab = ['', 'S', 'F', 'R', 're'][s[4]];
    if (lab) g.fillText(lab, x + 4, yb - 2);
    pts.push([x, (ya + yb) / 2, s[1]]);
  }
  const sel = S.sel;
  for (const p of pts) {
    if (p[2] === sel) { g.strokeStyle = '#e0a800'; g.lineWidth = 2; g.beginPath(); g.arc(p[0], p[1], 6, 0, 7); g.stroke(); }
  }
  g.fillStyle = '#444';
  let legend = 'seq ▮  ack ─  window edge ╌';
  if (clipped) legend += '  (edge up to ' + Math.round(edgeMax) + ': off the top)';
  g.fillText(legend, L + 4, 11);
  G[id] = { X, x0, x1, L, R, w, pts };
}

function axes(g, w, h, L, R, T, B, x0, x1, y0, y1, X, Y) {
  g.strokeStyle = '#ccd'; g.fillStyle = '#666'; g.lineWidth = 1;
  g.beginPath(); g.moveTo(L, T); g.lineTo(L, h - B); g.lineTo(w - R, h - B); g.stroke();
  if (y1 !== undefined) for (const v of ticks(y0, y1, 4)) { const y = Y(v); g.fillText(String(Math.round(v)), 2, y + 3); g.beginPath(); g.moveTo(L - 3, y); g.lineTo(L, y); g.stroke(); }
  for (const v of ticks(x0, x1, 5)) { const x = X(v); g.fillText(fmtX(v), x - 12, h - 5); g.beginPath(); g.moveTo(x, h - B); g.lineTo(x, h - B + 3); g.stroke(); }
}

const STATE_COLOR = {
  'LISTEN': '#dfe3ea', 'SYN-SENT': '#bfe5c9', 'SYN-RECEIVED': '#bfe5c9', 'ESTABLISHED': '#7ccf95',
  'FIN-WAIT-1': '#a9c8f0', 'FIN-WAIT-2': '#7eaae6', 'CLOSING': '#c7b3ea', 'TIME-WAIT': '#b59be0',
  'CLOSE-WAIT': '#f3c27a', 'LAST-ACK': '#eba55a', 'CLOSED': '#cfd3d9',
};

function drawBands(ci) {
  const { g, w, h } = canvas('bands');
  const title = $('bandstitle');
  if (ci < 0) { title.textContent = 'states and buffers: no connection'; return; }
  const c = S.data.conns[ci];
  title.textContent = 'conn ' + c.id + ': TCP states of each host, and buffer levels (send queue ─, receive queue ╌)';
  const [x0, x1] = xRange(c);
  const L = 56, R = 8, T = 4, B = 18;
  const X = (v) => L + (v - x0) / (x1 - x0) * (w - L - R);
  const clampX = (v) => Math.max(L, Math.min(w - R, X(v)));
  // In event order a band runs from its item to the next band's.
  const bandX = (b, next) => {
    if (S.xmode === 'time') return [b.t0, b.t1];
    const i0 = b.item >= 0 ? b.item : c.i0;
    const i1 = next && next.lane === b.lane ? (next.item >= 0 ? next.item : i0) : c.i1;
    return [i0, i1];
  };
  const bandH = 18, pts = [];
  for (const lane of [0, 1]) {
    const y = T + lane * (bandH + 4);
    g.fillStyle = '#444'; g.fillText(c.lanes[lane].slice(0, 8), 2, y + 12);
    const bs = c.states.filter((b) => b.lane === lane);
    bs.forEach((b, j) => {
      const [a, z] = bandX(b, bs[j + 1]);
      const xa = clampX(a), xz = Math.max(clampX(z), xa + 1);
      if (xz <= L || xa >= w - R) return;
      g.fillStyle = STATE_COLOR[b.state] || '#ddd';
      g.fillRect(xa, y, xz - xa, bandH);
      g.strokeStyle = '#fff'; g.strokeRect(xa, y, xz - xa, bandH);
      if (b.item === S.sel) { g.strokeStyle = '#e0a800'; g.lineWidth = 2; g.strokeRect(xa, y, xz - xa, bandH); g.lineWidth = 1; }
      g.fillStyle = '#1d2330';
      const tw = g.measureText(b.state).width;
      if (xz - xa > tw + 4) g.fillText(b.state, xa + 2, y + 12);
      if (b.item >= 0) pts.push([xa, y + bandH / 2, b.item]);
    });
  }
  // Buffers.
  const top = T + 2 * (bandH + 4) + 6, bot = h - B;
  let ymax = 1;
  for (const p of c.buffers) ymax = Math.max(ymax, p.snd, p.rcv);
  const Y = (v) => bot - v / ymax * (bot - top - 10);
  axes(g, w, h, L, R, top, B, x0, x1, 0, ymax, X, Y);
  if (!c.buffers.length) {
    g.fillStyle = '#888';
    g.fillText(S.data.source === 'capture' ? 'no buffer levels: a capture shows only the wire' : 'no buffer levels in this trace', L + 8, (top + bot) / 2);
  }
  const col = ['#1f4fa0', '#c05a00'];
  for (const lane of [0, 1]) {
    const ps = c.buffers.filter((p) => p.lane === lane);
    for (const [key, dash] of [['snd', []], ['rcv', [4, 3]]]) {
      if (!ps.length) continue;
      g.strokeStyle = col[lane]; g.setLineDash(dash); g.lineWidth = 1.4; g.beginPath();
      let py = null;
      for (const p of ps) {
        const x = clampX(xOf(p.t, p.item)), y = Y(p[key]);
        if (py === null) g.moveTo(x, y); else { g.lineTo(x, py); g.lineTo(x, y); }
        py = y;
        pts.push([x, y, p.item]);
      }
      g.lineTo(w - R, py); g.stroke(); g.setLineDash([]);
    }
    g.fillStyle = col[lane];
    g.fillText(c.lanes[lane], w - R - 120 + lane * 60, top + 8);
  }
  G.bands = { X, x0, x1, L, R, w, pts };
}

// ---- input -------------------------------------------------------------

function bind() {
  $('conn').addEventListener('change', (e) => { S.conn = e.target.value; S.gx = null; layout(); });
  $('xmode').addEventListener('change', (e) => { S.xmode = e.target.value; S.gx = null; drawGraphs(); });
  const zoom = (f) => {
    const lad = $('ladder');
    const anchor = S.rows[rowAt(lad.scrollTop)];
    S.rowH = Math.max(4, Math.min(48, Math.round(S.rowH * f)));
    layout();
    if (anchor !== undefined) lad.scrollTop = S.ys[S.pos[anchor]];
  };
  $('zoomin').addEventListener('click', () => zoom(1.25));
  $('zoomout').addEventListener('click', () => zoom(0.8));
  const lad = $('ladder');
  let pending = false;
  lad.addEventListener('scroll', () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  });
  lad.addEventListener('wheel', (e) => { if (e.ctrlKey) { e.preventDefault(); zoom(e.deltaY < 0 ? 1.2 : 0.83); } }, { passive: false });
  $('rows').addEventListener('click', (e) => {
    const t = e.target.closest('[data-i]');
    if (t) select(+t.dataset.i, false);
  });
  lad.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    e.preventDefault();
    const k = S.sel >= 0 ? S.pos[S.sel] : -1;
    const n = Math.max(0, Math.min(S.rows.length - 1, k + (e.key === 'ArrowDown' ? 1 : -1)));
    select(S.rows[n], true);
  });
  $('findings').addEventListener('click', (e) => {
    const li = e.target.closest('li[data-i]');
    if (li) select(+li.dataset.i, true);
  });
  window.addEventListener('hashchange', () => {
    const m = /select=(\d+)/.exec(location.hash);
    if (m && +m[1] !== S.sel) select(+m[1], true);
  });
  let raf = false;
  window.addEventListener('resize', () => { if (!raf) { raf = true; requestAnimationFrame(() => { raf = false; render(); drawGraphs(); }); } });
  for (const id of ['tsg0', 'tsg1', 'bands']) graphInput(id);
}

// Wheel zooms the graphs' x axis around the pointer, a drag pans it, a
// double click resets it; a click selects the nearest point's item.
function graphInput(id) {
  const cv = $(id);
  let drag = null;
  cv.addEventListener('wheel', (e) => {
    const gr = G[id];
    if (!gr) return;
    e.preventDefault();
    const r = cv.getBoundingClientRect();
    const fx = (e.clientX - r.left - gr.L) / (gr.w - gr.L - gr.R);
    const at = gr.x0 + fx * (gr.x1 - gr.x0), f = e.deltaY < 0 ? 0.8 : 1.25;
    S.gx = [at - (at - gr.x0) * f, at + (gr.x1 - at) * f];
    drawGraphs();
  }, { passive: false });
  cv.addEventListener('mousedown', (e) => { const gr = G[id]; if (gr) drag = { x: e.clientX, x0: gr.x0, x1: gr.x1, moved: false }; });
  window.addEventListener('mousemove', (e) => {
    if (!drag) return;
    const gr = G[id], dx = e.clientX - drag.x;
    if (Math.abs(dx) > 3) drag.moved = true;
    if (!drag.moved) return;
    const dv = dx / (gr.w - gr.L - gr.R) * (drag.x1 - drag.x0);
    S.gx = [drag.x0 - dv, drag.x1 - dv];
    drawGraphs();
  });
  window.addEventListener('mouseup', (e) => {
    if (!drag) return;
    const moved = drag.moved;
    drag = null;
    if (moved) return;
    const gr = G[id], r = cv.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    let best = null, bd = 64;
    for (const p of gr.pts) { const dd = (p[0] - x) ** 2 + (p[1] - y) ** 2; if (dd < bd) { bd = dd; best = p; } }
    if (best) select(best[2], true);
  });
  cv.addEventListener('dblclick', () => { S.gx = null; drawGraphs(); });
}

window.tcplabView = { state: S, select, problems, graphs: G };
load();
