// The clipdex page: talks only to the public /api. The URL holds the search (query, mode, filters,
// collection), so the back button and shared links bring the same results back.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { query: null, offset: 0, k: 24, selected: -1, hits: [], current: -1, timer: null, ids: null,
  collections: [], key: localStorage.getItem("clipdex-key") || "" };
const EMPTY_HINT = "Type what you are looking for, or drop, paste or choose an image (Image… button).";

async function api(path, options = {}) {
  options.headers = Object.assign({}, options.headers, state.key ? { "X-API-Key": state.key } : {});
  const response = await fetch(path, options);
  if (response.status === 401) {
    state.key = prompt("This server needs an API key") || "";
    localStorage.setItem("clipdex-key", state.key);
    return api(path, options);
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || body.error || response.statusText);
  return body;
}

function status(text) { $("status").textContent = text; }

function message(text, isError = false) {
  const box = $("message");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = !text;
}

function collectionInfo() { return state.collections.find((c) => c.name === $("collection").value) || {}; }

async function loadCollections() {
  state.collections = await api("/api/collections");
  const select = $("collection");
  select.innerHTML = "";
  for (const c of state.collections) {
    const option = document.createElement("option");
    option.value = c.name;
    option.textContent = `${c.name} (${c.items})`;
    select.appendChild(option);
  }
  if (!state.collections.length) message("This server has no collections.", true);
}

function summary() {
  const c = collectionInfo();
  return c.name ? `${c.items} items · ${c.model}` : "";
}

// Offer only what the chosen collection answers (a served index does plain vector search only).
function applyFeatures() {
  const c = collectionInfo();
  const has = (f) => (c.features || []).includes(f);
  $("mode").disabled = !has("lexical");
  if ($("mode").disabled) $("mode").value = "dense";
  $("varied").disabled = !has("diversity");
  $("regions").disabled = !has("regions");
  for (const id of ["taken-from", "taken-to", "camera", "where", "near", "clear-filters"]) $(id).disabled = !has("filters");
  $("filters").title = has("filters") ? "" : "an index cannot filter by metadata: serve a collection for that";
  $("near-field").hidden = !c.share_location;
  $("show-duplicates").hidden = !has("duplicates");
  $("show-map").hidden = !has("map");
  $("probe-box").hidden = !has("probes");
  $("modify").disabled = !has("compose");
  $("modify-form").querySelector("button").disabled = !has("compose");
  for (const id of ["varied", "regions"]) if ($(id).disabled) $(id).checked = false;
}

// ---- the URL: what is searched, with which options and filters
const FILTER_FIELDS = { from: "taken-from", to: "taken-to", camera: "camera", where: "where", near: "near" };

function urlFor(query, view) {
  const p = new URLSearchParams();
  if ($("collection").value) p.set("c", $("collection").value);
  const json = (query && query.json) || {};
  if (view === "duplicates" || view === "map") p.set("view", view);
  if (view === "map" && $("map-color").value) p.set("color", $("map-color").value);
  else if (json.image_id !== undefined) {
    p.set("item", String(json.image_id));
    if (json.compose) p.set("change", json.text);
  } else if (json.text !== undefined) p.set("q", json.text);
  if ($("mode").value !== "dense") p.set("mode", $("mode").value);
  if ($("varied").checked) p.set("varied", "1");
  if ($("regions").checked) p.set("regions", "1");
  for (const [name, id] of Object.entries(FILTER_FIELDS)) if ($(id).value.trim()) p.set(name, $(id).value.trim());
  const text = p.toString();
  return text ? `?${text}` : location.pathname;
}

function remember(query, view, push = true) {
  const url = urlFor(query, view);
  if (url === location.search || (url === location.pathname && !location.search)) return;
  if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
}

function restore(params) {
  if (params.get("c") && state.collections.some((c) => c.name === params.get("c"))) $("collection").value = params.get("c");
  applyFeatures();
  $("mode").value = params.get("mode") || "dense";
  $("varied").checked = params.get("varied") === "1";
  $("regions").checked = params.get("regions") === "1";
  for (const [name, id] of Object.entries(FILTER_FIELDS)) $(id).value = params.get(name) || "";
  filterCount();
  $("q").value = params.get("q") || "";
  $("query-image").hidden = true;
  if (params.get("view") === "duplicates") return showDuplicates(false);
  if (params.get("view") === "map") return showMap(false);
  hideMap();
  if (params.get("item")) {
    const json = { image_id: Number(params.get("item")) };
    if (params.get("change")) Object.assign(json, { text: params.get("change"), compose: "pdv" });
    return run({ json }, { history: "none" });
  }
  if (params.get("q")) return run({ json: { text: params.get("q") } }, { history: "none" });
  clearResults();
}

// ---- filters: the page's fields become the API's `where` conditions and `near`
function filters() {
  const where = [];
  if ($("taken-from").value) where.push(`taken>=${$("taken-from").value}`);
  if ($("taken-to").value) where.push(`taken<${$("taken-to").value}`);
  if ($("camera").value.trim()) where.push(`camera=${$("camera").value.trim()}`);
  for (const part of $("where").value.split(";")) if (part.trim()) where.push(part.trim());
  const out = {};
  if (where.length && !$("taken-from").disabled) out.where = where;
  if ($("near").value.trim() && collectionInfo().share_location) out.near = $("near").value.trim();
  if (state.ids) out.ids = state.ids;
  return out;
}

function filterCount() {
  const n = (filters().where || []).length + (filters().near ? 1 : 0);
  $("filter-count").textContent = n ? `(${n} on)` : "";
  if (n) $("filters").open = true;
}

// The search options of the header: only what the query kind allows.
function options(query) {
  const out = {};
  const text = query.json && query.json.text !== undefined && !query.json.compose;
  if (text && $("mode").value !== "dense") out.mode = $("mode").value;
  if ($("varied").checked && out.mode === undefined) { out.diversity = 0.8; out.collapse = 0.98; }
  if ($("regions").checked && out.mode === undefined && !(query.json && query.json.compose)) out.regions = true;
  return Object.assign(out, filters());
}

// ---- searching and showing results
function clearResults(note = EMPTY_HINT) {
  state.query = null;
  state.hits = [];
  state.offset = 0;
  $("results").innerHTML = "";
  $("more").hidden = true;
  $("duplicates").hidden = true;
  hideMap();
  message(note);
  status(summary());
}

// history: "push" a new entry (a submitted search), "replace" it (typing), or leave the URL ("none").
async function run(query, { append = false, history = "push" } = {}) {
  state.query = query;
  if (!append) state.offset = 0;
  if (history !== "none" && !append) remember(query, undefined, history === "push");
  $("duplicates").hidden = true;
  hideMap();
  const collection = $("collection").value;
  let result;
  try {
    if (query.file) {
      const form = new FormData();
      form.append("image", query.file);
      form.append("collection", collection);
      form.append("k", String(state.k));
      form.append("offset", String(state.offset));
      result = await api("/api/search", { method: "POST", body: form });
    } else {
      const body = Object.assign({ collection, k: state.k, offset: state.offset }, options(query), query.json);
      result = await api("/api/search", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) });
    }
  } catch (err) {
    if (query !== state.query) return;  // a newer search is under way
    clearResults("");
    state.query = query;
    message(`The search failed: ${err.message}. Change the query or the filters and try again.`, true);
    status("");
    return;
  }
  if (query !== state.query) return;
  render(result.hits, append);
  state.hits = append ? state.hits.concat(result.hits) : result.hits.slice();
  state.offset += result.hits.length;
  $("more").hidden = result.hits.length < state.k;
  if (!state.hits.length) {
    const filtered = Boolean(filters().where || filters().near);
    message(filtered ? "No results with these filters. Loosen or clear the filters, or search other words."
      : "No results. Try other words, or match by meaning.");
  } else message("");
  status(`${state.offset} results · ${result.took_ms.toFixed(1)} ms · ${result.total_considered} considered`);
}

function label(hit) {
  const m = hit.metadata || {};
  if (m.video !== undefined) return `${m.video.split("/").pop()} @ ${Number(m.t).toFixed(1)} s`;
  return hit.caption || hit.path.split("/").pop();
}

function render(hits, append) {
  const list = $("results");
  if (!append) { list.innerHTML = ""; state.selected = -1; }
  const first = append ? state.hits.length : 0;
  hits.forEach((hit, i) => {
    const li = document.createElement("li");
    li.tabIndex = 0;
    li.dataset.id = hit.id;
    li.setAttribute("aria-label", `${label(hit)}, score ${hit.score.toFixed(3)}`);
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = hit.caption || hit.path;
    img.src = withKey(hit.thumbnail_url);
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = hit.score.toFixed(3);
    const caption = document.createElement("div");
    caption.className = "caption";
    caption.textContent = label(hit);
    const frame = document.createElement("div");
    frame.className = "thumb";
    frame.append(img);
    if (hit.region) {  // the crop that matched, drawn over the thumbnail
      const box = document.createElement("div");
      box.className = "region";
      const [x0, y0, x1, y1] = hit.region;
      Object.assign(box.style, { left: `${x0 * 100}%`, top: `${y0 * 100}%`, width: `${(x1 - x0) * 100}%`,
        height: `${(y1 - y0) * 100}%` });
      frame.append(box);
    }
    li.append(frame, score, caption);
    li.addEventListener("click", () => openItem(first + i));
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") openItem(first + i); });
    list.appendChild(li);
  });
}

// <img> cannot send headers, so image URLs carry the key as a query parameter.
function withKey(url) { return state.key ? `${url}&key=${encodeURIComponent(state.key)}` : url; }

// ---- the detail view: score, readable metadata, previous / next, the original
const LABELS = { taken: "Taken", camera: "Camera", lens: "Lens", size: "Size", place: "Place", video: "Video",
  t: "At", ocr: "Words in the image", orientation: "Orientation" };

function readableMeta(meta) {
  const m = Object.assign({}, meta);
  const rows = [];
  if (m.taken) rows.push(["taken", new Date(m.taken).toLocaleString(undefined,
    { dateStyle: "long", timeStyle: "short" })]);
  const camera = [m.camera_make, m.camera].filter(Boolean);
  if (camera.length) rows.push(["camera", camera[1] && camera[1].startsWith(camera[0]) ? camera[1] : camera.join(" ")]);
  if (m.lens) rows.push(["lens", m.lens]);
  if (m.width && m.height) rows.push(["size", `${m.width} × ${m.height} px`]);
  if (m.gps_lat !== undefined && m.gps_lon !== undefined) {
    rows.push(["place", `${Number(m.gps_lat).toFixed(5)}, ${Number(m.gps_lon).toFixed(5)}`]);
  }
  for (const k of ["taken", "camera_make", "camera", "lens", "width", "height", "gps_lat", "gps_lon", "orientation"]) {
    delete m[k];
  }
  for (const [k, v] of Object.entries(m)) {
    const text = typeof v === "object" ? JSON.stringify(v) : String(v);
    rows.push([k, text.length > 300 ? `${text.slice(0, 300)}…` : text]);
  }
  return rows;
}

async function openItem(index) {
  if (index < 0 || index >= state.hits.length) return;
  state.current = index;
  const hit = state.hits[index];
  const item = await api(`/api/items/${hit.id}?collection=${encodeURIComponent($("collection").value)}`);
  if (state.current !== index) return;
  state.item = item;
  $("detail-image").src = withKey(item.image_url);
  $("detail-image").alt = item.captions[0] || item.path;
  $("detail-score").textContent = typeof hit.score === "number" ? `Score ${hit.score.toFixed(3)}` : "";
  $("detail-rank").textContent = `${index + 1} of ${state.hits.length}`;
  $("detail-path").textContent = item.path;
  $("open-original").href = withKey(item.image_url);
  $("download").href = withKey(item.image_url);
  $("download").setAttribute("download", item.path.split("/").pop());
  const captions = $("detail-captions");
  captions.innerHTML = "";
  for (const c of item.captions) { const li = document.createElement("li"); li.textContent = c; captions.appendChild(li); }
  const meta = $("detail-meta");
  meta.innerHTML = "";
  for (const [k, v] of readableMeta(item.metadata)) {
    const dt = document.createElement("dt");
    dt.textContent = LABELS[k] || k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    meta.append(dt, dd);
  }
  $("prev").disabled = index === 0;
  $("next").disabled = index === state.hits.length - 1;
  const text = state.query && state.query.json && state.query.json.text;
  const heatmap = (collectionInfo().features || []).includes("heatmap");
  $("show-where").hidden = !text || Boolean(state.query.json.compose) || !heatmap;
  $("modify").value = "";
  if (!$("detail").open) $("detail").showModal();
  select(index, false);
}

// ---- duplicates, side by side
async function showDuplicates(push = true) {
  if (push) remember(null, "duplicates");
  state.query = null;
  $("results").innerHTML = "";
  $("more").hidden = true;
  hideMap();
  message("");
  status("Looking for duplicates…");
  const view = $("duplicates");
  view.innerHTML = "";
  view.hidden = false;
  let found;
  try {
    found = await api(`/api/duplicates?collection=${encodeURIComponent($("collection").value)}`);
  } catch (err) {
    view.hidden = true;
    message(`Could not look for duplicates: ${err.message}`, true);
    status("");
    return;
  }
  status(`${found.groups.length} groups · ${found.duplicates} duplicates among ${found.items} items ` +
    `(same bytes, or cosine ≥ ${found.threshold})`);
  if (!found.groups.length) { message("No duplicates here."); return; }
  found.groups.forEach((group, n) => {
    const block = document.createElement("div");
    block.className = "group";
    const title = document.createElement("h3");
    title.textContent = `Group ${n + 1} · ${group.kind === "exact" ? "exact copies" : "near duplicates"} · ` +
      `${group.members.length} photos`;
    const members = document.createElement("div");
    members.className = "members";
    for (const m of group.members) {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = withKey(m.thumbnail_url);
      img.alt = m.path;
      const cap = document.createElement("figcaption");
      cap.textContent = `${m.path.split("/").pop()} · ${m.identical ? "same bytes" : `cosine ${m.similarity.toFixed(3)}`}`;
      cap.title = m.path;
      fig.append(img, cap);
      members.append(fig);
    }
    block.append(title, members);
    view.append(block);
  });
}

function searchText(history = "push") {
  const text = $("q").value.trim();
  if (!text) return;
  $("query-image").hidden = true;
  run({ json: { text } }, { history });
}

function searchFile(file) {
  if (!file || !file.type.startsWith("image/")) { message("That is not an image: choose a JPEG, PNG or WebP file.", true); return; }
  const preview = $("query-image");
  preview.querySelector("img").src = URL.createObjectURL(file);
  preview.hidden = false;
  $("q").value = "";
  remember(null);
  run({ file }, { history: "none" });
}

function select(index, focus = true) {
  const items = $("results").children;
  if (!items.length) return;
  state.selected = Math.max(0, Math.min(items.length - 1, index));
  for (const li of items) li.classList.remove("selected");
  items[state.selected].classList.add("selected");
  if (focus) items[state.selected].focus();
}

function columns() {
  const items = $("results").children;
  if (items.length < 2) return 1;
  const top = items[0].offsetTop;
  let n = 0;
  while (n < items.length && items[n].offsetTop === top) n++;
  return n;
}

function rerun() {
  if (state.query) run(state.query);
  else if (!$("duplicates").hidden) showDuplicates();
  else if (!$("map").hidden) showMap();
  else remember(null);
}

$("search-form").addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(state.timer); searchText(); });
$("q").addEventListener("keydown", (e) => {
  if (e.key === "Enter") { e.preventDefault(); clearTimeout(state.timer); searchText(); }
});
// typing searches as it goes without a history entry per pause; Enter makes the entry
$("q").addEventListener("input", () => {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => searchText(state.query && state.query.json && state.query.json.text !== undefined
    ? "replace" : "push"), 250);
});
$("upload").addEventListener("click", () => $("file").click());
$("file").addEventListener("change", (e) => searchFile(e.target.files[0]));
$("clear-image").addEventListener("click", () => { $("query-image").hidden = true; clearResults(); $("q").focus(); });
$("more").addEventListener("click", () => run(state.query, { append: true }));
$("close").addEventListener("click", () => $("detail").close());
$("prev").addEventListener("click", () => openItem(state.current - 1));
$("next").addEventListener("click", () => openItem(state.current + 1));
$("collection").addEventListener("change", () => { applyFeatures(); status(summary()); rerun(); });
$("show-duplicates").addEventListener("click", () => showDuplicates());
$("more-like-this").addEventListener("click", () => {
  $("detail").close();
  $("query-image").hidden = true;
  $("q").value = "";
  run({ json: { image_id: state.item.id } });
});
$("show-where").addEventListener("click", () => {
  const collection = encodeURIComponent($("collection").value);
  const q = encodeURIComponent(state.query.json.text);
  $("detail-image").src = withKey(`/api/items/${state.item.id}/heatmap?collection=${collection}&q=${q}`);
});
$("modify-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("modify").value.trim();
  if (!text) return;
  $("detail").close();
  $("query-image").hidden = true;
  $("q").value = "";
  run({ json: { image_id: state.item.id, text, compose: "pdv" } });
});
for (const id of ["mode", "varied", "regions"]) $(id).addEventListener("change", rerun);
for (const id of Object.values(FILTER_FIELDS)) $(id).addEventListener("change", () => { filterCount(); rerun(); });
$("clear-filters").addEventListener("click", () => {
  for (const id of Object.values(FILTER_FIELDS)) $(id).value = "";
  filterCount();
  rerun();
});
document.addEventListener("paste", (e) => {
  const file = [...(e.clipboardData || {}).files || []].find((f) => f.type.startsWith("image/"));
  if (file) searchFile(file);
});
document.addEventListener("dragover", (e) => { e.preventDefault(); $("drop").hidden = false; });
$("drop").addEventListener("dragleave", () => { $("drop").hidden = true; });
document.addEventListener("drop", (e) => {
  e.preventDefault();
  $("drop").hidden = true;
  searchFile(e.dataTransfer.files[0]);
});
document.addEventListener("keydown", (e) => {
  if ($("detail").open) {
    if (e.target.tagName === "INPUT") return;
    if (e.key === "ArrowLeft") { e.preventDefault(); openItem(state.current - 1); }
    if (e.key === "ArrowRight") { e.preventDefault(); openItem(state.current + 1); }
    return;
  }
  if (["INPUT", "SELECT", "BUTTON", "SUMMARY"].includes(e.target.tagName) && e.target !== $("q")) return;
  if (e.target === $("q") && e.key !== "ArrowDown") return;
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() }[e.key];
  if (step !== undefined) { e.preventDefault(); select(state.selected < 0 ? 0 : state.selected + step); }
  if (e.key === "Escape") { $("q").focus(); }
});
window.addEventListener("scroll", () => {
  if (state.query && !$("more").hidden && window.innerHeight + window.scrollY >= document.body.offsetHeight - 200) {
    $("more").hidden = true;
    run(state.query, { append: true });
  }
});
window.addEventListener("popstate", () => restore(new URLSearchParams(location.search)));
loadCollections()
  .then(() => restore(new URLSearchParams(location.search)))
  .catch((err) => message(`Cannot reach the server: ${err.message}. Is clipdex serve still running?`, true));
