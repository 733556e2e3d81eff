// The clipdex page: talks only to the public /api.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { query: null, offset: 0, k: 24, selected: -1, current: null, timer: null,
  key: localStorage.getItem("clipdex-key") || "" };

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

async function loadCollections() {
  const collections = await api("/api/collections");
  const select = $("collection");
  select.innerHTML = "";
  for (const c of collections) {
    const option = document.createElement("option");
    option.value = c.name;
    option.textContent = `${c.name} (${c.items})`;
    select.appendChild(option);
  }
  status(collections.length ? `${collections[0].items} items · ${collections[0].model}` : "no collections");
}

async function run(query, append = false) {
  state.query = query;
  if (!append) state.offset = 0;
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
    status(`Error: ${err.message}`);
    return;
  }
  render(result.hits, append);
  state.offset += result.hits.length;
  $("more").hidden = result.hits.length < state.k;
  status(`${state.offset} results · ${result.took_ms.toFixed(1)} ms · ${result.total_considered} considered`);
}

// The search options of the header: only what the query kind allows.
function options(query) {
  const out = {};
  const text = query.json && query.json.text !== undefined && !query.json.compose;
  if (text && $("mode").value !== "dense") out.mode = $("mode").value;
  if ($("varied").checked && out.mode === undefined) { out.diversity = 0.8; out.collapse = 0.98; }
  if ($("regions").checked && out.mode === undefined && !(query.json && query.json.compose)) out.regions = true;
  return out;
}

function label(hit) {
  const m = hit.metadata || {};
  if (m.video !== undefined) return `${m.video.split("/").pop()} @ ${Number(m.t).toFixed(1)} s`;
  return hit.caption || hit.path.split("/").pop();
}

function render(hits, append) {
  const list = $("results");
  if (!append) { list.innerHTML = ""; state.selected = -1; }
  for (const hit of hits) {
    const li = document.createElement("li");
    li.tabIndex = 0;
    li.dataset.id = hit.id;
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
    li.addEventListener("click", () => openItem(hit.id));
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") openItem(hit.id); });
    list.appendChild(li);
  }
}

// <img> cannot send headers, so image URLs carry the key as a query parameter.
function withKey(url) { return state.key ? `${url}&key=${encodeURIComponent(state.key)}` : url; }

async function openItem(id) {
  const item = await api(`/api/items/${id}?collection=${encodeURIComponent($("collection").value)}`);
  state.current = item;
  $("detail-image").src = withKey(item.image_url);
  $("detail-image").alt = item.captions[0] || item.path;
  $("detail-path").textContent = item.path;
  const captions = $("detail-captions");
  captions.innerHTML = "";
  for (const c of item.captions) { const li = document.createElement("li"); li.textContent = c; captions.appendChild(li); }
  $("detail-meta").textContent = JSON.stringify(item.metadata, null, 2);
  const text = state.query && state.query.json && state.query.json.text;
  $("show-where").hidden = !text || Boolean(state.query.json.compose);
  $("modify").value = "";
  if (!$("detail").open) $("detail").showModal();
}

function searchText() {
  const text = $("q").value.trim();
  if (!text) return;
  $("query-image").hidden = true;
  run({ json: { text } });
}

function searchFile(file) {
  if (!file || !file.type.startsWith("image/")) { status("That is not an image."); return; }
  const preview = $("query-image");
  preview.querySelector("img").src = URL.createObjectURL(file);
  preview.hidden = false;
  $("q").value = "";
  run({ file });
}

function select(index) {
  const items = $("results").children;
  if (!items.length) return;
  state.selected = Math.max(0, Math.min(items.length - 1, index));
  for (const li of items) li.classList.remove("selected");
  items[state.selected].classList.add("selected");
  items[state.selected].focus();
}

function columns() {
  const items = $("results").children;
  if (items.length < 2) return 1;
  const top = items[0].offsetTop;
  let n = 0;
  while (n < items.length && items[n].offsetTop === top) n++;
  return n;
}

$("search-form").addEventListener("submit", (e) => { e.preventDefault(); searchText(); });
$("q").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); searchText(); } });
$("q").addEventListener("input", () => { clearTimeout(state.timer); state.timer = setTimeout(searchText, 250); });
$("file").addEventListener("change", (e) => searchFile(e.target.files[0]));
$("clear-image").addEventListener("click", () => { $("query-image").hidden = true; $("results").innerHTML = ""; });
$("more").addEventListener("click", () => run(state.query, true));
$("close").addEventListener("click", () => $("detail").close());
$("collection").addEventListener("change", () => { if (state.query) run(state.query); });
$("more-like-this").addEventListener("click", () => {
  $("detail").close();
  $("query-image").hidden = true;
  run({ json: { image_id: state.current.id } });
});
$("show-where").addEventListener("click", () => {
  const collection = encodeURIComponent($("collection").value);
  const q = encodeURIComponent(state.query.json.text);
  $("detail-image").src = withKey(`/api/items/${state.current.id}/heatmap?collection=${collection}&q=${q}`);
});
$("modify-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("modify").value.trim();
  if (!text) return;
  $("detail").close();
  $("query-image").hidden = true;
  run({ json: { image_id: state.current.id, text, compose: "pdv" } });
});
for (const id of ["mode", "varied", "regions"]) {
  $(id).addEventListener("change", () => { if (state.query) run(state.query); });
}
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
  if ($("detail").open) { if (e.key === "Escape") $("detail").close(); return; }
  if (e.target === $("q") && !["ArrowDown"].includes(e.key)) return;
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() }[e.key];
  if (step !== undefined) { e.preventDefault(); select(state.selected < 0 ? 0 : state.selected + step); }
  if (e.key === "Escape") { $("q").focus(); }
});
window.addEventListener("scroll", () => {
  if (!$("more").hidden && window.innerHeight + window.scrollY >= document.body.offsetHeight - 200) {
    $("more").hidden = true;
    run(state.query, true);
  }
});
loadCollections().catch((err) => status(`Error: ${err.message}`));
