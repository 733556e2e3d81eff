// The embeddings map: every image a point on a canvas, coloured by a field; zoom, pan, box-select, and
// the selection becomes a filter for search, an export, or the examples of a probe. Uses app.js's helpers.
"use strict";
const mapState = { points: [], values: null, field: "", view: { x: 0, y: 0, scale: 1 }, selected: new Set(),
  drag: null, thumbs: new Map(), colors: null, marks: { positive: new Set(), negative: new Set() },
  rgb: null, renderer: "auto" };
const PIXELS_FROM = 20_000;  // visible points from which writing pixels beats a fillRect per point (bench_map)
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#bab0ac", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf"];
const THUMBS_BELOW = 250;  // points on screen under which thumbnails are drawn instead of dots

async function showMap(push = true) {
  if (push) remember(null, "map");
  state.query = null;
  $("results").innerHTML = "";
  $("more").hidden = true;
  $("duplicates").hidden = true;
  message("");
  $("map").hidden = false;
  status("Laying out the map…");
  await loadMap($("map-color").value || new URLSearchParams(location.search).get("color") || "");
}

function hideMap() { $("map").hidden = true; }

async function loadMap(field) {
  const collection = encodeURIComponent($("collection").value);
  const color = field ? `&color=${encodeURIComponent(field)}` : "";
  let data;
  try {
    data = await api(`/api/map?collection=${collection}${color}`);
  } catch (err) {
    hideMap();
    message(`Could not draw the map: ${err.message}`, true);
    status("");
    return;
  }
  mapState.points = data.points;
  mapState.values = data.values;
  mapState.field = data.field || "";
  const select = $("map-color");
  const current = mapState.field;
  select.innerHTML = "<option value=''>one colour</option>";
  for (const f of data.fields) {
    const o = document.createElement("option");
    o.value = f;
    o.textContent = f;
    select.append(o);
  }
  select.value = current;
  mapState.colors = colorScale(data.values);
  mapState.rgb = packColors(data.points, data.values, mapState.colors);
  legend();
  status(`${data.items} images · laid out by ${data.method.toUpperCase()}` +
    (data.refitted ? "" : ` (${data.placed} placed since the fit)`));
  resetView();
}

// Categories get a palette (the 16 most common; the rest grey), numbers a blue-to-red ramp.
function colorScale(values) {
  if (!values) return () => "#3b6fe0";
  const numeric = values.filter((v) => typeof v === "number");
  if (numeric.length && numeric.length >= values.filter((v) => v !== null).length) {
    const lo = Math.min(...numeric), hi = Math.max(...numeric);
    const scale = (v) => {
      if (typeof v !== "number") return "#cccccc";
      const t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
      return `hsl(${Math.round(230 - 230 * t)}, 75%, 48%)`;
    };
    scale.legend = [[`${lo.toFixed(3)}`, scale(lo)], [`${hi.toFixed(3)}`, scale(hi)]];
    return scale;
  }
  const counts = new Map();
  for (const v of values) {
    const key = Array.isArray(v) ? (v[0] ?? null) : v;
    if (key !== null && key !== undefined) counts.set(String(key), (counts.get(String(key)) || 0) + 1);
  }
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length);
  const colorOf = new Map(top.map(([k], i) => [k, PALETTE[i]]));
  const scale = (v) => {
    const key = Array.isArray(v) ? (v[0] ?? null) : v;
    return colorOf.get(String(key)) || "#cccccc";
  };
  scale.legend = top.map(([k, n]) => [`${k} (${n})`, colorOf.get(k)]);
  return scale;
}

// Each point's colour as one 32-bit ABGR word, computed once per colouring (a frame then only writes pixels).
function packColors(points, values, scale) {
  const out = new Uint32Array(points.length);
  const probe = document.createElement("canvas").getContext("2d");
  const cache = new Map();
  for (let i = 0; i < points.length; i++) {
    const css = scale(values ? values[i] : null);
    let word = cache.get(css);
    if (word === undefined) {
      probe.fillStyle = css;
      probe.fillRect(0, 0, 1, 1);
      const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
      word = (255 << 24 | b << 16 | g << 8 | r) >>> 0;
      cache.set(css, word);
    }
    out[i] = word;
  }
  return out;
}

function legend() {
  const box = $("map-legend");
  box.innerHTML = "";
  for (const [label, color] of mapState.colors.legend || []) {
    const item = document.createElement("span");
    const dot = document.createElement("i");
    dot.style.background = color;
    item.append(dot, document.createTextNode(label));
    box.append(item);
  }
}

function canvasSize() {
  const canvas = $("map-canvas");
  const rect = canvas.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(rect.width * ratio)) {
    canvas.width = Math.round(rect.width * ratio);
    canvas.height = Math.round(rect.height * ratio);
  }
  return { w: canvas.width, h: canvas.height, ratio };
}

function resetView() { mapState.view = { x: 0, y: 0, scale: 1 }; draw(); }

function toScreen(x, y, size) {
  const side = Math.min(size.w, size.h);
  const v = mapState.view;
  return [(x - v.x) * side * v.scale + (size.w - side) / 2, (y - v.y) * side * v.scale + (size.h - side) / 2];
}

function toMap(px, py, size) {
  const side = Math.min(size.w, size.h);
  const v = mapState.view;
  return [(px - (size.w - side) / 2) / (side * v.scale) + v.x, (py - (size.h - side) / 2) / (side * v.scale) + v.y];
}

// One frame; returns how long it took (the benchmark reads it at 100k points). Dots are written straight
// into the canvas's pixels (one pass, no per-point canvas call); thumbnails, when few points are on screen,
// are drawn as images. Below PIXELS_FROM points a fillRect per point is cheaper (putImageData has a fixed
// cost), so "auto" picks; the benchmark times both.
function draw() {
  const started = performance.now();
  const size = canvasSize();
  const ctx = $("map-canvas").getContext("2d");
  ctx.clearRect(0, 0, size.w, size.h);
  const r = Math.max(1.5, Math.min(5, 2 * Math.sqrt(mapState.view.scale))) * size.ratio;
  const visible = visiblePoints(size);
  const thumbs = visible.length <= THUMBS_BELOW;
  const pixels = mapState.renderer === "pixels" || (mapState.renderer === "auto" && visible.length >= PIXELS_FROM);
  if (!thumbs && pixels && mapState.rgb) {
    drawPixels(ctx, size, visible, Math.round(r));
    outlineSelected(ctx, size, visible, r);
    drawBox(ctx);
    mapState.lastFrameMs = performance.now() - started;
    return mapState.lastFrameMs;
  }
  for (const [i, sx, sy] of visible) {
    const id = mapState.points[i][0];
    const selected = mapState.selected.has(id);
    ctx.fillStyle = mapState.colors ? mapState.colors(mapState.values ? mapState.values[i] : null) : "#3b6fe0";
    if (thumbs) {
      const side = 36 * size.ratio;
      const img = thumbnail(id);
      ctx.fillRect(sx - side / 2 - 2, sy - side / 2 - 2, side + 4, side + 4);  // the colour as a frame
      if (img.complete && img.naturalWidth) ctx.drawImage(img, sx - side / 2, sy - side / 2, side, side);
    } else {
      ctx.fillRect(sx - r, sy - r, 2 * r, 2 * r);
    }
    if (selected) { ctx.strokeStyle = "#111"; ctx.lineWidth = 2 * size.ratio; ctx.strokeRect(sx - r - 2, sy - r - 2, 2 * r + 4, 2 * r + 4); }
  }
  drawBox(ctx);
  mapState.lastFrameMs = performance.now() - started;
  return mapState.lastFrameMs;
}

// [index, screen x, screen y] of the points inside the canvas (and a margin).
function visiblePoints(size) {
  const side = Math.min(size.w, size.h);
  const v = mapState.view;
  const k = side * v.scale, ox = (size.w - side) / 2 - v.x * k, oy = (size.h - side) / 2 - v.y * k;
  const out = [];
  const pts = mapState.points;
  for (let i = 0; i < pts.length; i++) {
    const sx = pts[i][1] * k + ox, sy = pts[i][2] * k + oy;
    if (sx >= -20 && sy >= -20 && sx <= size.w + 20 && sy <= size.h + 20) out.push([i, sx, sy]);
  }
  return out;
}

function drawPixels(ctx, size, visible, r) {
  const image = ctx.createImageData(size.w, size.h);
  const words = new Uint32Array(image.data.buffer);
  const w = size.w, h = size.h;
  for (const [i, sx, sy] of visible) {
    const color = mapState.rgb[i];
    const x0 = Math.max(0, Math.round(sx) - r), x1 = Math.min(w - 1, Math.round(sx) + r);
    const y0 = Math.max(0, Math.round(sy) - r), y1 = Math.min(h - 1, Math.round(sy) + r);
    for (let y = y0; y <= y1; y++) words.fill(color, y * w + x0, y * w + x1 + 1);
  }
  ctx.putImageData(image, 0, 0);
}

function outlineSelected(ctx, size, visible, r) {
  if (!mapState.selected.size) return;
  ctx.strokeStyle = "#111";
  ctx.lineWidth = 2 * size.ratio;
  ctx.beginPath();
  for (const [i, sx, sy] of visible) {
    if (mapState.selected.has(mapState.points[i][0])) ctx.rect(sx - r - 2, sy - r - 2, 2 * r + 4, 2 * r + 4);
  }
  ctx.stroke();
}

function drawBox(ctx) {
  if (!(mapState.drag && mapState.drag.box)) return;
  const { x0, y0, x1, y1 } = mapState.drag;
  ctx.strokeStyle = "#111";
  ctx.setLineDash([6, 4]);
  ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  ctx.setLineDash([]);
}

function thumbnail(id) {
  let img = mapState.thumbs.get(id);
  if (!img) {
    img = new Image();
    img.onload = () => requestAnimationFrame(draw);
    img.src = withKey(`/api/items/${id}/thumbnail?collection=${encodeURIComponent($("collection").value)}&size=128`);
    mapState.thumbs.set(id, img);
  }
  return img;
}

function zoom(factor, cx, cy) {
  const size = canvasSize();
  const [mx, my] = toMap(cx ?? size.w / 2, cy ?? size.h / 2, size);
  mapState.view.scale = Math.max(0.5, Math.min(400, mapState.view.scale * factor));
  const [nx, ny] = toMap(cx ?? size.w / 2, cy ?? size.h / 2, size);
  mapState.view.x += mx - nx;
  mapState.view.y += my - ny;
  draw();
}

function pan(dx, dy) {
  mapState.view.x += dx / mapState.view.scale;
  mapState.view.y += dy / mapState.view.scale;
  draw();
}

function pointAt(px, py) {
  const size = canvasSize();
  let best = -1, bestD = (12 * size.ratio) ** 2;
  for (let i = 0; i < mapState.points.length; i++) {
    const [sx, sy] = toScreen(mapState.points[i][1], mapState.points[i][2], size);
    const d = (sx - px) ** 2 + (sy - py) ** 2;
    if (d < bestD) { best = i; bestD = d; }
  }
  return best;
}

function selectBox(x0, y0, x1, y1, add) {
  const size = canvasSize();
  const [ax, ay] = toMap(Math.min(x0, x1), Math.min(y0, y1), size);
  const [bx, by] = toMap(Math.max(x0, x1), Math.max(y0, y1), size);
  if (!add) mapState.selected.clear();
  for (const [id, x, y] of mapState.points) if (x >= ax && x <= bx && y >= ay && y <= by) mapState.selected.add(id);
  selectionChanged();
}

function selectionChanged() {
  const n = mapState.selected.size;
  $("map-selection").textContent = n ? `${n} selected` : "Shift-drag (or Select, then drag) to select";
  for (const id of ["map-search", "map-export-list", "map-export-table", "map-clear"]) $(id).disabled = !n;
  draw();
}

function download(name, type, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

async function exportTable() {
  const body = JSON.stringify({ collection: $("collection").value, ids: [...mapState.selected] });
  const headers = Object.assign({ "Content-Type": "application/json" }, state.key ? { "X-API-Key": state.key } : {});
  const response = await fetch("/api/export", { method: "POST", headers, body });
  if (!response.ok) { message("The export failed: try a smaller selection.", true); return; }
  download("selection.csv", "text/csv", await response.text());
}

// A selection becomes a filter: searches then look only among the selected items, until it is cleared.
function searchInSelection() {
  state.ids = [...mapState.selected];
  $("selection-filter").hidden = false;
  $("selection-filter-count").textContent = `${state.ids.length}`;
  hideMap();
  const text = $("q").value.trim();
  if (text) run({ json: { text } });
  else { clearResults(`Searching within the ${state.ids.length} selected images: type a query or drop an image.`); }
  $("q").focus();
}

// Marks from the detail view train a probe: the page's way to label a few examples.
function mark(kind) {
  const other = kind === "positive" ? "negative" : "positive";
  mapState.marks[other].delete(state.item.id);
  mapState.marks[kind].add(state.item.id);
  marksChanged();
}

function marksChanged() {
  const p = mapState.marks.positive.size, n = mapState.marks.negative.size;
  $("probe-marks").textContent = `${p} marked yes, ${n} marked no`;
  $("probe-train").disabled = p < 2 || n < 2 || !$("probe-name").value.trim();
}

async function trainProbe() {
  const name = $("probe-name").value.trim();
  try {
    const out = await api("/api/probes", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ collection: $("collection").value, name, positives: [...mapState.marks.positive],
        negatives: [...mapState.marks.negative] }) });
    $("probe-result").textContent = `${name}: accuracy ${out.cv_accuracy.toFixed(3)}, AUC ${out.cv_auc.toFixed(3)}; ` +
      `${out.above_threshold} of ${out.items} items above ${out.threshold} (filter with ${name}>=${out.threshold})`;
  } catch (err) {
    $("probe-result").textContent = `Could not train: ${err.message}`;
  }
}

$("show-map").addEventListener("click", () => showMap());
$("map-color").addEventListener("change", () => { remember(null, "map"); loadMap($("map-color").value); });
$("map-zoom-in").addEventListener("click", () => zoom(1.5));
$("map-zoom-out").addEventListener("click", () => zoom(1 / 1.5));
$("map-reset").addEventListener("click", resetView);
$("map-select-mode").addEventListener("click", () => {
  $("map-select-mode").setAttribute("aria-pressed", String($("map-select-mode").getAttribute("aria-pressed") !== "true"));
});
$("map-clear").addEventListener("click", () => { mapState.selected.clear(); selectionChanged(); });
$("map-search").addEventListener("click", searchInSelection);
$("map-export-list").addEventListener("click", () => download("selection.txt", "text/plain", [...mapState.selected].join("\n") + "\n"));
$("map-export-table").addEventListener("click", exportTable);
$("clear-selection-filter").addEventListener("click", () => {
  state.ids = null;
  $("selection-filter").hidden = true;
  if (state.query) run(state.query);
});
$("mark-yes").addEventListener("click", () => mark("positive"));
$("mark-no").addEventListener("click", () => mark("negative"));
$("probe-name").addEventListener("input", marksChanged);
$("probe-train").addEventListener("click", trainProbe);
const canvas = $("map-canvas");
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const ratio = window.devicePixelRatio || 1;
  zoom(e.deltaY < 0 ? 1.25 : 0.8, e.offsetX * ratio, e.offsetY * ratio);
}, { passive: false });
canvas.addEventListener("pointerdown", (e) => {
  const ratio = window.devicePixelRatio || 1;
  const box = e.shiftKey || $("map-select-mode").getAttribute("aria-pressed") === "true";
  mapState.drag = { x0: e.offsetX * ratio, y0: e.offsetY * ratio, x1: e.offsetX * ratio, y1: e.offsetY * ratio, box,
    add: e.ctrlKey || e.metaKey, moved: false };
  canvas.setPointerCapture(e.pointerId);
});
canvas.addEventListener("pointermove", (e) => {
  const d = mapState.drag;
  if (!d) return;
  const ratio = window.devicePixelRatio || 1;
  const x = e.offsetX * ratio, y = e.offsetY * ratio;
  if (Math.abs(x - d.x0) + Math.abs(y - d.y0) > 4) d.moved = true;
  if (d.box) { d.x1 = x; d.y1 = y; draw(); return; }
  const side = Math.min(canvasSize().w, canvasSize().h) * mapState.view.scale;
  mapState.view.x -= (x - d.x1) / side;
  mapState.view.y -= (y - d.y1) / side;
  d.x1 = x; d.y1 = y;
  draw();
});
canvas.addEventListener("pointerup", () => {
  const d = mapState.drag;
  mapState.drag = null;
  if (!d) return;
  if (d.box && d.moved) { selectBox(d.x0, d.y0, d.x1, d.y1, d.add); return; }
  if (!d.moved) {  // a click: open the image under it
    const i = pointAt(d.x0, d.y0);
    if (i >= 0) { state.hits = [{ id: mapState.points[i][0], score: null }]; openItem(0); }
  }
  draw();
});
canvas.addEventListener("keydown", (e) => {
  const step = 0.05;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (moves[e.key]) { e.preventDefault(); pan(...moves[e.key]); }
  if (e.key === "+" || e.key === "=") zoom(1.5);
  if (e.key === "-") zoom(1 / 1.5);
  if (e.key === "0") resetView();
});
window.addEventListener("resize", () => { if (!$("map").hidden) draw(); });
window.clipdexMap = { draw, zoom, selectBox, state: mapState };  // for tests and the frame-time benchmark
