// The clinicians' page: plain ES module, no build. Talks only to the screening API
// (same origin unless the user sets another address); the API key lives in sessionStorage.

const KEY_STORE = "screening.apiKey";
const BASE_STORE = "screening.apiBase";
const JOB_STORE = "screening.retrainJob";
const FINAL_JOB_STATES = ["Completed", "Failed", "Stopped"];
// The same dark-to-bright ramp as functions/screening/heatmap.py.
const RAMP = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];

const $ = (selector, root = document) => root.querySelector(selector);
const localImages = new Map(); // record id -> object URL of the photograph screened in this tab
const sessionRefusals = new Map(); // reason -> count of API refusals seen in this tab
let historyCursor = null;
let monitorTimer = null;
let chart = null;

// ---------- small helpers ----------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmt(value, digits = 3) {
  return typeof value === "number" ? value.toFixed(digits) : "–";
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function notice(text) {
  const box = $("#notice");
  box.textContent = text || "";
  box.hidden = !text;
}

// Deployed behind CloudFront, the stack writes config.json with the API's URL (infra/web.py);
// the local cloud serves the page and the API from one origin and answers {}.
let deployedApiUrl = null;
const configLoaded = fetch("config.json", { cache: "no-store" })
  .then((r) => (r.ok ? r.json() : {}))
  .then((config) => { deployedApiUrl = config.ApiUrl || null; })
  .catch(() => {});

function apiBase() {
  return (sessionStorage.getItem(BASE_STORE) || deployedApiUrl || location.origin).replace(/\/$/, "");
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

class ApiError extends Error {
  constructor(status, error, message) {
    super(message || error || `HTTP ${status}`);
    this.status = status;
    this.error = error || `http_${status}`;
  }
}

// One call to the API: JSON in and out by default; throws ApiError with the API's {error, message}.
async function api(path, { method = "GET", json, body, headers = {}, as = "json" } = {}) {
  if (!apiKey()) {
    openKeyDialog();
    throw new ApiError(0, "no_api_key", "Enter the API key first.");
  }
  const init = { method, headers: { "x-api-key": apiKey(), ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    await configLoaded;
    response = await fetch(apiBase() + path, init);
  } catch (err) {
    throw new ApiError(0, "network_error", `The API could not be reached (${err.message}).`);
  }
  if (!response.ok) {
    let payload = {};
    try { payload = await response.json(); } catch { /* a gateway page, not JSON */ }
    if (response.status === 403 && !payload.error) payload = { error: "forbidden", message: "The API key was refused." };
    const error = new ApiError(response.status, payload.error, payload.message);
    error.payload = payload;
    throw error;
  }
  if (as === "blob") return response.blob();
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

function unavailable(err, what) {
  return err instanceof ApiError && (err.status === 404 || err.status === 501) && (!err.error || err.error === "not_found" || err.error === `http_${err.status}`)
    ? h("p", { class: "notice" }, `${what} is not available on this server yet (the API answered ${err.status}).`)
    : null;
}

function errorLine(err) {
  const code = err.status ? `${err.status} ${err.error}` : err.error;
  return h("p", { class: "error-text", role: "alert" }, `Refused (${code}): ${err.message}`);
}

// ---------- API key ----------
function openKeyDialog() {
  const dialog = $("#key-dialog");
  $("#api-key").value = apiKey();
  $("#api-base").value = sessionStorage.getItem(BASE_STORE) || "";
  if (!dialog.open) dialog.showModal();
  $("#api-key").focus();
}

function showKeyState() {
  $("#key-state").textContent = apiKey() ? `Key set (${apiBase()})` : "No API key";
}

function setupKeyDialog() {
  $("#open-key").addEventListener("click", openKeyDialog);
  $("#key-cancel").addEventListener("click", () => $("#key-dialog").close());
  $("#key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    showKeyState();
    $("#key-dialog").close();
  });
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("#api-key").value.trim());
    const base = $("#api-base").value.trim();
    if (base) sessionStorage.setItem(BASE_STORE, base); else sessionStorage.removeItem(BASE_STORE);
    $("#key-dialog").close();
    showKeyState();
    refreshActiveTab();
  });
}

// ---------- tabs (WAI-ARIA tabs: arrows, Home, End) ----------
function tabs() { return [...document.querySelectorAll("[role=tab]")]; }

function selectTab(tab, focus = true) {
  for (const other of tabs()) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) tab.focus();
  history.replaceState(null, "", `#${tab.id.replace("tab-", "")}`);
  refreshActiveTab();
}

function setupTabs() {
  const list = tabs();
  list.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: list.length - 1 };
      if (event.key in moves) {
        event.preventDefault();
        selectTab(list[(moves[event.key] + list.length) % list.length]);
      }
    });
  });
  const wanted = document.getElementById(`tab-${location.hash.slice(1)}`);
  if (wanted) selectTab(wanted, false);
}

function activeTab() { return tabs().find((t) => t.getAttribute("aria-selected") === "true").id; }

function refreshActiveTab() {
  clearInterval(monitorTimer);
  if (!apiKey()) return;
  probeConditions();
  const id = activeTab();
  if (id === "tab-history") loadHistory(true);
  if (id === "tab-model") loadModel();
  if (id === "tab-data") { loadDataset(); resumeJob(); }
  if (id === "tab-monitor") { loadMonitoring(); monitorTimer = setInterval(loadMonitoring, 10000); }
}

// ---------- heatmap drawing ----------
function rampColour(v) {
  const x = Math.min(Math.max(v, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const t = x - i;
  return RAMP[i].map((c, k) => Math.round(c + (RAMP[i + 1][k] - c) * t));
}

function heatCanvas(grid) {
  const rows = grid.length, cols = grid[0].length;
  const small = document.createElement("canvas");
  small.width = cols; small.height = rows;
  const ctx = small.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  grid.forEach((row, y) => row.forEach((v, x) => {
    const [r, g, b] = rampColour(v);
    // sqrt: moderate evidence stays visible over the bright orange retina
    image.data.set([r, g, b, Math.round(Math.sqrt(Math.min(Math.max(v, 0), 1)) * 255)], (y * cols + x) * 4);
  }));
  ctx.putImageData(image, 0, 0);
  return small;
}

// The photograph as the model saw it (centred on a black square) with the heatmap on top;
// for a full-field photograph the API cropped around the disc, the heatmap lies on that crop box.
function placement(img, box) { // the crop box as fractions of the square canvas
  const side = Math.max(img.naturalWidth, img.naturalHeight);
  const dx = (side - img.naturalWidth) / 2, dy = (side - img.naturalHeight) / 2;
  const [left, top, right, bottom] = box;
  return { x: (dx + left) / side, y: (dy + top) / side, w: (right - left) / side, h: (bottom - top) / side };
}

function drawOverlay(canvas, img, grid, opacity, box) {
  const size = canvas.width;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, size, size);
  if (img) {
    const side = Math.max(img.naturalWidth, img.naturalHeight);
    const scale = size / side;
    const w = img.naturalWidth * scale, hgt = img.naturalHeight * scale;
    ctx.drawImage(img, (size - w) / 2, (size - hgt) / 2, w, hgt);
  }
  if (grid && grid.length) {
    const at = img && box ? placement(img, box) : { x: 0, y: 0, w: 1, h: 1 };
    ctx.save();
    ctx.globalAlpha = opacity;
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(heatCanvas(grid), at.x * size, at.y * size, at.w * size, at.h * size);
    ctx.restore();
  }
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("image not decodable by the browser"));
    img.src = url;
  });
}

async function overlayFigure(imageUrl, grid, caption, box = null) {
  const canvas = h("canvas", { width: 448, height: 448, role: "img", "aria-label": caption });
  const slider = h("input", { type: "range", min: 0, max: 100, value: 70, "aria-label": "Heatmap opacity" });
  let img = null;
  if (imageUrl) {
    try { img = await loadImage(imageUrl); } catch { img = null; }
  }
  const redraw = () => drawOverlay(canvas, img, grid, slider.value / 100, box);
  slider.addEventListener("input", redraw);
  redraw();
  const frame = h("div", { class: "frame" }, canvas);
  if (img && box) { // an outline over the crop the model screened, in the canvas's own scale
    const at = placement(img, box);
    const outline = h("div", { class: "crop-box", role: "img", "aria-label": `Crop around the optic disc: ${box.join(", ")} (left, top, right, bottom, pixels)` });
    Object.assign(outline.style, { left: `${at.x * 100}%`, top: `${at.y * 100}%`, width: `${at.w * 100}%`, height: `${at.h * 100}%` });
    frame.append(outline);
  }
  return h("div", { class: "figure" }, frame,
    h("label", {}, "Heatmap opacity ", slider),
    img && box ? h("p", { class: "hint" }, "Full-field photograph: the outlined square is the crop around the optic disc that was screened; the heatmap lies on it.") : null,
    img ? null : h("p", { class: "hint" }, "The browser cannot show this image format; the heatmap is drawn alone."));
}

// ---------- a result card ----------
function probabilityBar(record) {
  const p = record.probability, t = record.threshold;
  return h("div", { class: "bar", role: "img", "aria-label": `Probability ${fmt(p)} against threshold ${fmt(t)}` },
    h("div", { class: `fill ${record.label}`, style: null, "data-width": p }),
    h("div", { class: "threshold", "data-left": t }, h("span", {}, `threshold ${fmt(t, 2)}`)));
}

function sizeBars(root) { // CSP forbids inline style attributes; set widths through the CSSOM
  root.querySelectorAll("[data-width]").forEach((el) => { el.style.width = `${Number(el.dataset.width) * 100}%`; });
  root.querySelectorAll("[data-left]").forEach((el) => { el.style.left = `${Number(el.dataset.left) * 100}%`; });
}

function facts(record) {
  const rows = [
    ["Label", h("span", { class: `badge ${record.label}` }, record.label)],
    [`P(${record.condition || "glaucoma"})`, fmt(record.probability)],
    typeof record.severity === "number" ? ["Severity (0–10)", h("span", { "data-field": "severity" }, fmt(record.severity, 1))] : null,
    record.cropped ? ["Crop box", h("span", { "data-field": "crop-box" }, record.crop_box.join(", "))] : null,
    ["Threshold", fmt(record.threshold)],
    ["Model", record.model_version],
    ["Quality", record.quality_flags && record.quality_flags.length
      ? h("ul", { class: "flags", "aria-label": "Quality warnings" }, record.quality_flags.map((f) => h("li", {}, f.replaceAll("_", " "))))
      : "no warnings"],
    ["Latency", record.latency_ms !== undefined ? `${record.latency_ms} ms` : "–"],
    ["Id", h("code", {}, record.id)],
  ];
  return h("dl", { class: "facts" }, rows.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

async function resultCard(name, imageUrl, record) {
  const card = h("article", { class: "result", "data-status": "ok", "data-label": record.label, "data-id": record.id,
    "data-condition": record.condition || "glaucoma" },
    await overlayFigure(imageUrl, record.heatmap, `${name}: photograph with the heatmap of the model's evidence`,
      record.cropped && Array.isArray(record.crop_box) ? record.crop_box : null),
    h("div", {}, h("h3", {}, name), probabilityBar(record), facts(record)));
  sizeBars(card);
  return card;
}

function refusedCard(name, err) {
  const reason = err.error || "error";
  sessionRefusals.set(reason, (sessionRefusals.get(reason) || 0) + 1);
  return h("article", { class: "result", "data-status": "refused", "data-error": reason },
    h("div", { class: "figure" }, h("span", { class: "badge rejected" }, "refused")),
    h("div", {}, h("h3", {}, name), errorLine(err)));
}

// ---------- screening ----------
function screenCondition() { return $("#screen-condition").value; }

// Glaucoma is always served; cataract is offered only where the server has a model for it.
let conditionsProbed = false;
async function probeConditions() {
  if (conditionsProbed || !apiKey()) return;
  conditionsProbed = true;
  try {
    await api("/models?condition=cataract");
    const select = $("#screen-condition");
    if (![...select.options].some((o) => o.value === "cataract")) select.append(h("option", { value: "cataract" }, "cataract"));
  } catch { /* no cataract model on this server: glaucoma only */ }
}

async function screenFile(file, name = file.name) {
  const placeholder = h("article", { class: "result", "data-status": "pending" }, h("p", {}, `Screening ${name}…`));
  $("#results").prepend(placeholder);
  const type = file.type || "application/octet-stream";
  let card;
  try {
    const record = await api(`/predict?condition=${encodeURIComponent(screenCondition())}`, { method: "POST", body: file, headers: { "Content-Type": type } });
    const url = URL.createObjectURL(file);
    localImages.set(record.id, url);
    card = await resultCard(name, url, record);
  } catch (err) {
    if (err.error === "no_api_key") { placeholder.remove(); throw err; }
    card = refusedCard(name, err);
  }
  placeholder.replaceWith(card);
  return card;
}

async function screenFiles(files) {
  notice("");
  for (const file of files) {
    try { await screenFile(file); } catch { return; }
  }
}

function setupScreening() {
  const input = $("#file-input");
  input.addEventListener("change", () => { screenFiles([...input.files]); input.value = ""; });
  const zone = $("#dropzone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    screenFiles([...event.dataTransfer.files]);
  });
  $("#samples").addEventListener("toggle", loadSamples, { once: true });
  $("#screen-all-samples").addEventListener("click", async () => {
    const samples = await loadSamples();
    for (const sample of samples) {
      try { await screenSample(sample); } catch { return; }
    }
  });
}

let samplesPromise = null;
function loadSamples() {
  samplesPromise ??= fetch("/samples/index.json").then((r) => r.json()).then(({ samples }) => {
    $("#sample-list").replaceChildren(...samples.map((s) => h("li", {},
      h("button", { type: "button", onclick: () => screenSample(s), "aria-label": `Screen sample ${s.name} (${s.label})` },
        h("img", { src: s.path, alt: "", loading: "lazy" }), `${s.label} · ${s.name.replace("_ACRIMA.jpg", "")}`))));
    return samples;
  }).catch(() => { samplesPromise = null; return []; });
  return samplesPromise;
}

async function screenSample(sample) {
  const blob = await (await fetch(sample.path)).blob();
  return screenFile(new File([blob], sample.name, { type: blob.type || "image/jpeg" }), `${sample.label}/${sample.name} (sample)`);
}

// ---------- history ----------
async function loadHistory(reset) {
  const filter = $("#history-filter").value;
  const body = $("#history-table tbody");
  if (reset) { historyCursor = null; body.replaceChildren(); $("#history-detail").hidden = true; }
  const params = new URLSearchParams({ limit: filter === "rejected" ? "100" : "25" });
  if (filter === "normal" || filter === "glaucoma") params.set("label", filter);
  if (historyCursor) params.set("cursor", historyCursor);
  try {
    const page = await api(`/predictions?${params}`);
    let items = page.items || [];
    if (filter === "rejected") items = items.filter((i) => i.status === "rejected"); // rejected records carry no label
    historyCursor = page.next_cursor || null;
    $("#history-more").hidden = !historyCursor;
    body.append(...items.map(historyRow));
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 6 }, "Nothing yet.")));
  } catch (err) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 6 }, errorLine(err))));
  }
}

function outcome(record) {
  return record.status === "ok"
    ? h("span", { class: `badge ${record.label}` }, record.label)
    : h("span", { class: "badge rejected", title: record.message || "" }, `rejected: ${record.reason || "?"}`);
}

function historyRow(record) {
  return h("tr", { "data-id": record.id, "data-status": record.status },
    h("td", {}, when(record.created_at)), h("td", {}, outcome(record)),
    h("td", {}, record.status === "ok" ? fmt(record.probability, 2) : "–"),
    h("td", {}, record.key ? `S3 ${record.key}` : (record.source || "api")),
    h("td", {}, record.model_version || "–"),
    h("td", {}, h("button", { type: "button", onclick: () => openRecord(record.id), "aria-label": `Open record ${record.id}` }, "Open")));
}

async function openRecord(id) {
  const detail = $("#history-detail");
  detail.hidden = false;
  detail.replaceChildren(h("p", {}, "Loading…"));
  try {
    const record = await api(`/predictions/${encodeURIComponent(id)}`);
    const parts = [h("h3", {}, `Record ${id}`), outcome(record)];
    if (record.status === "ok") {
      const figures = h("div", { class: "figures" });
      const local = localImages.get(id);
      if (local) figures.append(await overlayFigure(local, record.heatmap, "Photograph screened in this tab with its heatmap",
        record.cropped && Array.isArray(record.crop_box) ? record.crop_box : null));
      try {
        const png = URL.createObjectURL(await api(`/predictions/${encodeURIComponent(id)}/heatmap.png`, { as: "blob" }));
        figures.append(h("figure", { class: "figure" }, h("img", { src: png, alt: record.key ? "Stored overlay: the photograph with its heatmap" : "Stored heatmap" }),
          h("figcaption", { class: "hint" }, record.key ? "Overlay stored with the record (S3 path)." : "The API keeps no image; this is the stored heatmap alone.")));
      } catch (err) {
        figures.append(unavailable(err, "The heatmap image") || errorLine(err));
      }
      const bar = probabilityBar(record);
      parts.push(figures, bar, facts(record));
    } else {
      parts.push(h("p", {}, record.message || ""));
    }
    parts.push(h("details", {}, h("summary", {}, "Full record"), h("pre", { class: "record" }, JSON.stringify(record, null, 2))));
    detail.replaceChildren(...parts);
    sizeBars(detail);
    detail.focus();
  } catch (err) {
    detail.replaceChildren(errorLine(err));
  }
}

function setupHistory() {
  $("#history-filter").addEventListener("change", () => loadHistory(true));
  $("#history-refresh").addEventListener("click", () => loadHistory(true));
  $("#history-more").addEventListener("click", () => loadHistory(false));
}

// ---------- model ----------
function condition() { return $("#model-condition").value; }

function metricTable(metrics) {
  const entries = Object.entries(metrics || {}).filter(([, v]) => typeof v === "number" || typeof v === "string");
  if (!entries.length) return h("p", { class: "hint" }, "No metrics in the card.");
  return h("table", {}, h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, typeof v === "number" ? fmt(v) : v)))));
}

async function loadModel() {
  const current = $("#model-current");
  const versions = $("#model-versions");
  try {
    const status = await api("/status");
    current.replaceChildren(h("div", { class: "card" },
      h("p", {}, "Serving ", h("strong", {}, status.model_version), ` · threshold ${fmt(status.threshold)}`),
      metricTable(status.model_metrics)));
  } catch (err) { current.replaceChildren(errorLine(err)); }
  loadPlots();
  try {
    const registry = await api(`/models?condition=${encodeURIComponent(condition())}`);
    const serving = registry.current && registry.current.version;
    const rows = (registry.versions || []).map((v) => h("tr", {},
      h("td", {}, v.version, v.version === serving ? " (current)" : ""),
      h("td", {}, when(v.created)),
      h("td", {}, fmt((v.metrics || {}).auc ?? (v.metrics || {}).test_auc)),
      h("td", {}, decisionText(v.decision)),
      h("td", {}, v.version === serving ? "" : promoteButton(v.version))));
    versions.replaceChildren(
      h("p", {}, `Current ${condition()} model: `, h("strong", {}, serving || "–"),
        registry.refresh_seconds ? ` · running functions pick a new one up within ${registry.refresh_seconds} s` : ""),
      h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["Version", "Created", "AUC", "Gate decision", ""].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows))));
  } catch (err) {
    versions.replaceChildren(unavailable(err, "The model registry (GET /models)") || errorLine(err));
  }
}

function decisionText(decision) {
  if (!decision) return "–";
  if (typeof decision === "string") return decision;
  const verdict = decision.promote ?? decision.promoted ?? decision.accepted;
  const why = decision.reason || decision.message || "";
  return `${verdict === undefined ? "" : verdict ? "promoted" : "kept out"}${why ? `: ${why}` : ""}`;
}

function promoteButton(version) {
  const button = h("button", { type: "button" }, "Serve this version");
  button.addEventListener("click", async () => {
    if (button.dataset.confirm !== "1") {
      button.dataset.confirm = "1";
      button.textContent = `Confirm: serve ${version}`;
      return;
    }
    button.disabled = true;
    try {
      await api(`/models/${encodeURIComponent(version)}/promote?condition=${encodeURIComponent(condition())}`, { method: "POST", json: {} });
      notice(`Now serving ${version}.`);
      loadModel();
    } catch (err) {
      button.replaceWith(errorLine(err));
    }
  });
  return button;
}

let plotsLoaded = false;
async function loadPlots() {
  if (plotsLoaded) return;
  const box = $("#model-plots");
  try {
    const { version, plots } = await (await fetch("/model-report/index.json")).json();
    box.replaceChildren(...plots.map((p) => h("figure", {}, h("img", { src: p.path, alt: `${p.title} of model ${version}`, loading: "lazy" }), h("figcaption", { class: "hint" }, `${p.title} · ${version}`))));
    plotsLoaded = true;
  } catch {
    box.replaceChildren(h("p", { class: "hint" }, "No plots are published for this model."));
  }
}

// ---------- data & retraining ----------
async function loadDataset() {
  const box = $("#dataset");
  try {
    const data = await api(`/dataset?condition=${encodeURIComponent(condition())}`);
    box.replaceChildren(countsView(data));
  } catch (err) {
    box.replaceChildren(unavailable(err, "The data set view (GET /dataset)") || errorLine(err));
  }
}

function countsView(data) { // nested {name: number | {...}} as nested tables
  const rows = Object.entries(data).filter(([, v]) => v !== null && typeof v !== "string").map(([k, v]) =>
    h("tr", {}, h("th", { scope: "row" }, k.replaceAll("_", " ")), h("td", {}, typeof v === "object" ? countsView(v) : String(v))));
  return h("table", { class: "counts" }, h("tbody", {}, rows));
}

async function uploadTraining(event) {
  event.preventDefault();
  const status = $("#upload-status");
  const files = [...$("#upload-files").files];
  const label = $("#upload-label").value;
  const site = $("#upload-site").value.trim() || undefined;
  let done = 0;
  for (const file of files) {
    status.textContent = `Uploading ${file.name} (${done + 1} of ${files.length})…`;
    try {
      const grant = await api(`/uploads/training?condition=${encodeURIComponent(condition())}`,
        { method: "POST", json: { label, site, content_type: file.type || "image/jpeg" } });
      await sendToStorage(grant, file);
      done += 1;
    } catch (err) {
      status.replaceChildren(unavailable(err, "Training uploads (POST /uploads/training)") || errorLine(err));
      return;
    }
  }
  status.textContent = `Uploaded ${done} image${done === 1 ? "" : "s"} as ${label}${site ? ` from ${site}` : ""}.`;
  loadDataset();
}

async function sendToStorage(grant, file) {
  const url = grant.upload_url || grant.url;
  let response;
  if (grant.fields) { // a presigned POST
    const form = new FormData();
    Object.entries(grant.fields).forEach(([k, v]) => form.append(k, v));
    form.append("file", file);
    response = await fetch(url, { method: "POST", body: form });
  } else {
    response = await fetch(url, { method: grant.method || "PUT", headers: grant.headers || {}, body: file });
  }
  if (!response.ok) throw new ApiError(response.status, "upload_failed", `The storage refused the upload (HTTP ${response.status}).`);
}

async function startRetrain() {
  const box = $("#retrain-job");
  const button = $("#retrain-start");
  button.disabled = true;
  try {
    const job = await api(`/retrain?condition=${encodeURIComponent(condition())}`, { method: "POST", json: {} });
    sessionStorage.setItem(JOB_STORE, job.training_job);
    followJob(job.training_job);
  } catch (err) {
    if (err.status === 409 && err.payload && err.payload.training_job) {
      box.replaceChildren(h("p", {}, `A job is already running: ${err.payload.training_job}. Following it.`));
      sessionStorage.setItem(JOB_STORE, err.payload.training_job);
      followJob(err.payload.training_job);
    } else {
      box.replaceChildren(unavailable(err, "Retraining (POST /retrain)") || errorLine(err));
      button.disabled = false;
    }
  }
}

function resumeJob() {
  const job = sessionStorage.getItem(JOB_STORE);
  if (job && !$("#retrain-job").dataset.following) followJob(job);
}

async function followJob(job) {
  const box = $("#retrain-job");
  box.dataset.following = job;
  let status;
  try {
    status = await api(`/retrain/${encodeURIComponent(job)}`);
  } catch (err) {
    box.replaceChildren(unavailable(err, "Job status (GET /retrain/{job})") || errorLine(err));
    delete box.dataset.following;
    $("#retrain-start").disabled = false;
    return;
  }
  const progress = status.progress || {};
  const parts = [h("p", {}, "Job ", h("code", {}, status.training_job || job), " · ", h("strong", { "data-job-status": status.status }, status.status))];
  if (progress.epochs) parts.push(h("progress", { max: progress.epochs, value: progress.epoch || 0, "aria-label": `Epoch ${progress.epoch || 0} of ${progress.epochs}` }), h("p", { class: "hint" }, `epoch ${progress.epoch || 0} of ${progress.epochs}`));
  if (status.metrics && Object.keys(status.metrics).length) parts.push(metricTable(status.metrics));
  if (status.failure_reason) parts.push(h("p", { class: "error-text" }, `Failed: ${status.failure_reason}`));
  if (status.decision || status.promoted !== undefined) {
    parts.push(h("div", { class: "card", id: "retrain-decision" }, h("h4", {}, "Gate decision"),
      h("p", {}, status.promoted ? `Promoted: now serving ${status.version || "the new model"}.` : "Not promoted: the current model keeps serving."),
      typeof status.decision === "object" ? countsView(status.decision) : h("p", {}, String(status.decision ?? ""))));
  }
  box.replaceChildren(...parts);
  if (FINAL_JOB_STATES.includes(status.status)) {
    delete box.dataset.following;
    $("#retrain-start").disabled = false;
    return;
  }
  $("#retrain-start").disabled = true;
  setTimeout(() => followJob(job), 2000);
}

function setupData() {
  $("#upload-form").addEventListener("submit", uploadTraining);
  $("#dataset-refresh").addEventListener("click", loadDataset);
  $("#retrain-start").addEventListener("click", startRetrain);
  $("#model-condition").addEventListener("change", () => {
    const positive = condition();
    $("#upload-label").replaceChildren(h("option", {}, "normal"), h("option", {}, positive));
    refreshActiveTab();
  });
  $("#model-refresh").addEventListener("click", loadModel);
}

// ---------- monitoring ----------
function tile(name, value) {
  return h("div", { class: "tile" }, h("div", { class: "value" }, value ?? "–"), h("div", { class: "name" }, name));
}

async function loadMonitoring() {
  if (activeTab() !== "tab-monitor") { clearInterval(monitorTimer); return; }
  const minutes = $("#monitor-window").value;
  const tiles = [];
  try {
    const status = await api("/status");
    const counts = status.counts || {};
    tiles.push(tile("queue depth", status.queue_depth), tile("dead-letter depth", status.dead_letter_depth),
      tile("normal (all time)", counts.normal), tile("glaucoma (all time)", counts.glaucoma), tile("rejected (stored)", counts.rejected));
  } catch (err) { tiles.push(errorLine(err)); }
  try {
    const metrics = await api(`/local/metrics?minutes=${minutes}`);
    const lat = metrics.latency_ms || {};
    tiles.push(tile("screening p50 (ms)", lat.screening && lat.screening.p50), tile("screening p95 (ms)", lat.screening && lat.screening.p95),
      tile("API p50 (ms)", lat.api && lat.api.p50), tile("API p95 (ms)", lat.api && lat.api.p95));
    drawChart(metrics.per_minute || []);
    $("#monitor-source").textContent = metrics.enabled
      ? `From the ${metrics.lines} EMF metric lines the functions emitted (local cloud).`
      : "Metrics are off in this local cloud: start it with LOCAL_METRICS=1 to see them.";
    $("#monitor-latency").replaceChildren();
  } catch (err) {
    $("#monitor-chart").replaceChildren(unavailable(err, "Local metrics (on AWS: the CloudWatch dashboard)") || errorLine(err));
  }
  $("#monitor-status").replaceChildren(...tiles);
  loadRejections();
}

function drawChart(perMinute) {
  const box = $("#monitor-chart");
  if (!window.uPlot) { box.replaceChildren(h("p", {}, "The chart library did not load.")); return; }
  const xs = perMinute.map((p) => p.minute);
  const data = [xs, perMinute.map((p) => p.normal), perMinute.map((p) => p.glaucoma), perMinute.map((p) => p.rejected),
    perMinute.map((p) => p.client_errors)];
  if (!xs.length) { box.replaceChildren(h("p", { class: "hint" }, "No predictions in this window.")); chart = null; return; }
  const width = Math.max(260, box.clientWidth - 16);
  const opts = {
    width, height: 220,
    series: [{}, { label: "normal", stroke: "#1f7a3a", width: 2 }, { label: "glaucoma", stroke: "#b3261e", width: 2 },
      { label: "rejected", stroke: "#6b6f76", width: 2 }, { label: "client errors (4xx)", stroke: "#9a5b00", width: 1, dash: [6, 4] }],
    axes: [{}, { label: "per minute" }],
  };
  box.replaceChildren();
  chart = new window.uPlot(opts, data, box);
}

async function loadRejections() {
  const box = $("#monitor-rejections");
  const reasons = new Map();
  try {
    const page = await api("/predictions?limit=100");
    for (const r of page.items || []) if (r.status === "rejected") reasons.set(r.reason, (reasons.get(r.reason) || 0) + 1);
  } catch (err) { box.replaceChildren(errorLine(err)); return; }
  const rows = [...new Set([...reasons.keys(), ...sessionRefusals.keys()])].map((reason) =>
    h("tr", {}, h("th", { scope: "row" }, reason), h("td", {}, reasons.get(reason) || 0), h("td", {}, sessionRefusals.get(reason) || 0)));
  box.replaceChildren(rows.length
    ? h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "reason"), h("th", { scope: "col" }, "stored (last 100 records)"), h("th", { scope: "col" }, "refused in this tab"))), h("tbody", {}, rows))
    : h("p", { class: "hint" }, "No rejections."));
}

function setupMonitoring() {
  $("#monitor-refresh").addEventListener("click", loadMonitoring);
  $("#monitor-window").addEventListener("change", loadMonitoring);
}

// ---------- start ----------
setupKeyDialog();
setupTabs();
setupScreening();
setupHistory();
setupData();
setupMonitoring();
showKeyState();
if (!apiKey()) openKeyDialog(); else refreshActiveTab();
