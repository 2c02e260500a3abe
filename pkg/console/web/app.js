// The imgpipe console page: plain ES module, no build step, no third-party code. Everything
// shown comes from the console's API (/api/v1, see openapi.yaml); images come from S3 through
// presigned URLs. Text from the API is only ever set as text, never parsed as HTML.

const $ = (id) => document.getElementById(id);

// el builds an element: attributes (on* are event listeners), then children (strings become
// text nodes).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const state = {
  info: null,
  tag: "",
  next: "",
  uploads: new Map(), // key -> {item, name, state}
  shown: new Set(), // keys in the gallery
  pollTimer: 0,
};

// ---- API ----

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function token() {
  return sessionStorage.getItem("imgpipe-console-token") || "";
}

async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new APIError(0, "Network", "the console does not answer (" + err.message + ")");
  }
  let data = null;
  try {
    data = await resp.json();
  } catch {
    // not JSON: reported below
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    const err = new APIError(resp.status, e.code || "HTTP" + resp.status, e.message || resp.statusText);
    if (resp.status === 401 && state.info?.auth !== "proxy") signIn(err.message);
    throw err;
  }
  return data;
}

function notice(text) {
  $("notice").textContent = text || "";
}

// ---- sign in (token mode) ----

let signingIn = null;

function signIn(message) {
  const dlg = $("login");
  $("login-error").textContent = token() ? message : "";
  if (!dlg.open) dlg.showModal();
  if (!signingIn) {
    signingIn = new Promise((resolve) => {
      $("login-form").addEventListener("submit", () => {
        sessionStorage.setItem("imgpipe-console-token", $("token").value.trim());
        $("token").value = "";
        signingIn = null;
        resolve();
        start();
      }, { once: true });
    });
  }
  return signingIn;
}

// ---- formatting ----

function bytes(n) {
  if (n < 1000) return n + " B";
  const units = ["kB", "MB", "GB"];
  let v = n / 1000, i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (v < 100 ? v.toFixed(1).replace(/\.0$/, "") : v.toFixed(0)) + " " + units[i];
}

function ago(iso) {
  if (!iso) return "";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return Math.max(0, Math.round(s)) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}

function time(iso) {
  return el("time", { datetime: iso, title: iso }, ago(iso));
}

function pct(x) {
  return Math.round(x * 100) + "%";
}

// ---- gallery ----

const placeholder = "/assets/placeholder.svg";

// noThumbnail shows the placeholder, as for an image without a thumbnail, in place of a
// thumbnail that did not load: the index may still name a thumbnail that was removed once a
// newer version's record was published, until that record is indexed.
function noThumbnail(e) {
  const i = e.target;
  i.removeEventListener("error", noThumbnail);
  i.alt = "";
  i.src = placeholder;
}

function card(img) {
  const thumb = img.thumbnailUrl
    ? el("img", { class: "thumb", src: img.thumbnailUrl, alt: img.caption ? "Thumbnail: " + img.caption : "Thumbnail of " + img.name, loading: "lazy", onerror: noThumbnail })
    : el("img", { class: "thumb", src: placeholder, alt: "" });
  const tags = el("ul", { class: "tags", "aria-label": "Tags" },
    img.tags.slice(0, 8).map((t) => el("li", {}, el("button", {
      type: "button", title: "Show images tagged " + t.name, "aria-label": "Tag " + t.name + ", " + pct(t.confidence) + ": show images with it",
      onclick: () => search(t.name),
    }, t.name))));
  const meta = [img.width + "×" + img.height, (img.format || "").toUpperCase(), bytes(img.size)];
  if (img.exif && img.exif.model) meta.push(img.exif.model);
  return el("li", { class: "card", "data-key": img.key },
    thumb,
    el("div", { class: "body" },
      el("button", { type: "button", class: "open", onclick: () => openDetail(img.key) }, img.name),
      img.caption ? el("p", { class: "caption" }, img.caption) : null,
      el("p", { class: "meta" }, meta.filter(Boolean).join(" · ")),
      tags));
}

async function loadImages({ append = false } = {}) {
  const params = new URLSearchParams({ limit: "24" });
  if (state.tag) params.set("tag", state.tag);
  if (append && state.next) params.set("cursor", state.next);
  let page;
  try {
    page = await api("/api/v1/images?" + params);
  } catch (err) {
    notice("Images could not be loaded: " + err.message);
    return;
  }
  const list = $("gallery");
  if (!append) {
    list.replaceChildren();
    state.shown.clear();
  }
  for (const img of page.images) {
    if (state.shown.has(img.key)) continue;
    state.shown.add(img.key);
    list.append(card(img));
  }
  state.next = page.next || "";
  $("more").hidden = !state.next;
  $("gallery-empty").hidden = list.children.length > 0;
  $("gallery-empty").textContent = state.tag ? "No image is tagged “" + state.tag + "”." : "No images yet.";
  $("gallery-heading").textContent = state.tag ? "Images tagged “" + state.tag + "”" : "Images";
}

// addToGallery shows a newly indexed image first, when it belongs to the current listing.
function addToGallery(img) {
  if (state.shown.has(img.key)) return;
  if (state.tag && !img.tags.some((t) => t.name === state.tag)) return;
  state.shown.add(img.key);
  $("gallery").prepend(card(img));
  $("gallery-empty").hidden = true;
}

function search(tag) {
  const t = (tag || "").trim();
  location.hash = t ? "tag=" + encodeURIComponent(t) : "";
  if (!t) applyHash();
}

function applyHash() {
  const m = /^#tag=(.*)$/.exec(location.hash);
  state.tag = m ? decodeURIComponent(m[1]) : "";
  $("tag").value = state.tag;
  $("clear-search").hidden = !state.tag;
  state.next = "";
  loadImages().then(() => {
    if (state.tag) $("gallery-heading").focus();
  });
}

// ---- detail ----

function field(dl, name, ...value) {
  if (value.length === 0 || value.every((v) => v === "" || v === undefined || v === null)) return;
  dl.append(el("dt", {}, name), el("dd", {}, ...value));
}

// openDetail shows one image in the modal dialog; closing it (Close, Escape) gives the focus
// back to the control that opened it, as dialogs do.
async function openDetail(key) {
  let img;
  try {
    img = await api("/api/v1/analysis?" + new URLSearchParams({ bucket: state.info.bucket, key }));
  } catch (err) {
    notice("The image could not be opened: " + err.message);
    return;
  }
  $("detail-title").textContent = img.name;
  const dl = el("dl");
  field(dl, "Key", img.key);
  field(dl, "Caption", img.caption ? img.caption + (img.captionConfidence ? " (" + pct(img.captionConfidence) + ")" : "") : "");
  field(dl, "Tags", img.tags.map((t) => t.name + " " + pct(t.confidence)).join(", ") || "none");
  field(dl, "Dimensions", img.width + " × " + img.height + " pixels");
  field(dl, "Format", (img.format || "").toUpperCase() + (img.contentType ? " (" + img.contentType + ")" : ""));
  field(dl, "Size", bytes(img.size));
  field(dl, "Analysed", img.analyzedAt ? time(img.analyzedAt) : "");
  field(dl, "Indexed", time(img.indexedAt));
  field(dl, "Vision", [img.apiVersion && "API " + img.apiVersion, img.modelVersion && "model " + img.modelVersion].filter(Boolean).join(", "));

  const side = [dl];
  if (img.exif) {
    const x = img.exif;
    const rows = [["Camera", [x.make, x.model].filter(Boolean).join(" ")], ["Taken at", x.takenAt], ["Orientation", x.orientation],
      ["GPS", x.gps ? x.gps.latitude.toFixed(5) + ", " + x.gps.longitude.toFixed(5) : ""]].filter(([, v]) => v);
    side.push(el("table", { class: "exif" }, el("caption", {}, "EXIF"),
      el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, String(v)))))));
  }
  const list = (title, items, fmt) => {
    if (!items || items.length === 0) return;
    side.push(el("h3", {}, title), el("ul", {}, items.map((i) => el("li", {}, fmt(i)))));
  };
  const box = (b) => b ? " at " + b.x + "," + b.y + " (" + b.w + "×" + b.h + ")" : "";
  list("Objects", img.objects, (o) => o.name + " " + pct(o.confidence) + box(o.box));
  list("Text", img.text, (t) => t.text);
  list("People", img.people, (p) => "person " + pct(p.confidence) + box(p.box));
  list("Regions", img.denseCaptions, (d) => d.text + " " + pct(d.confidence) + box(d.box));

  const picture = img.imageUrl
    ? el("img", { src: img.imageUrl, alt: img.caption || img.name })
    : el("img", { src: placeholder, alt: "" });
  $("detail-body").replaceChildren(el("div", { class: "detail" }, el("div", {}, picture), el("div", {}, side)));
  $("detail").showModal();
  $("detail-close").focus();
}

function closeDetail() {
  $("detail").close();
}

// ---- uploads ----

function uploadItem(file) {
  const bar = el("progress", { max: "100", value: "0", "aria-label": "Upload of " + file.name });
  const st = el("span", { class: "state" }, "waiting");
  const item = el("li", {}, el("span", { class: "name" }, file.name), bar, st);
  $("uploads").prepend(item);
  return {
    item,
    set(text, cls) {
      st.textContent = text;
      item.className = cls || "";
    },
    progress(v) {
      bar.value = v;
    },
    done() {
      bar.remove();
    },
  };
}

async function upload(file) {
  const ui = uploadItem(file);
  let signed;
  try {
    signed = await api("/api/v1/uploads", { method: "POST", body: { name: file.name, size: file.size, type: file.type } });
  } catch (err) {
    ui.done();
    ui.set("not sent: " + err.message, "failed");
    return;
  }
  ui.set("uploading");
  try {
    await put(signed, file, (p) => {
      ui.progress(p);
      ui.set("uploading " + p + "%");
    });
  } catch (err) {
    ui.done();
    ui.set("upload failed: " + err.message, "failed");
    return;
  }
  ui.done();
  ui.set("uploaded; waiting for the pipeline");
  state.uploads.set(signed.key, { ui, name: file.name });
  schedulePoll(500);
}

// put sends the file to S3 with the presigned request; XMLHttpRequest reports upload progress.
function put(signed, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(signed.method, signed.url);
    for (const [k, v] of Object.entries(signed.headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) onProgress(Math.floor((ev.loaded / ev.total) * 100));
    };
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error("S3 answered " + xhr.status + s3Code(xhr.responseText))));
    xhr.onerror = () => reject(new Error("S3 could not be reached (network or CORS)"));
    xhr.send(file);
  });
}

function s3Code(xml) {
  const m = /<Code>([^<]*)<\/Code>/.exec(xml || "");
  return m ? " " + m[1] : "";
}

function schedulePoll(ms) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(pollUploads, ms);
}

async function pollUploads() {
  const keys = [...state.uploads.keys()].slice(0, 100);
  if (keys.length === 0) return;
  try {
    const res = await api("/api/v1/uploads/status", { method: "POST", body: { keys } });
    for (const u of res.uploads) {
      const entry = state.uploads.get(u.key);
      if (!entry) continue;
      if (u.state === "indexed") {
        const tags = u.image.tags.map((t) => t.name).slice(0, 6).join(", ");
        entry.ui.set("indexed" + (tags ? ": " + tags : ""), "indexed");
        state.uploads.delete(u.key);
        addToGallery(u.image);
      } else if (u.state === "failed") {
        const f = u.failure;
        entry.ui.set("failed: " + f.reason + (f.error ? " — " + errorDetail(f.error) : ""), "failed");
        state.uploads.delete(u.key);
      } else {
        entry.ui.set(u.inS3 ? "in the bucket; waiting for the pipeline" : "waiting for the object in the bucket");
      }
    }
  } catch (err) {
    notice("Upload status unavailable: " + err.message);
  }
  if (state.uploads.size > 0) schedulePoll(2000);
}

// errorDetail keeps what an error says after its classification ("... NotAnImage (permanent):
// not an image: ..." -> "not an image: ...").
function errorDetail(text) {
  const m = /\((?:permanent|transient|throttled)\): (.*)$/s.exec(text);
  return m ? m[1] : text;
}

function sendFiles(files) {
  for (const f of files) upload(f);
}

// ---- pipeline ----

function depthRows(d) {
  return [["Waiting", d.visible], ["In flight", d.inFlight], ["Delayed", d.delayed]];
}

function table(caption, head, rows) {
  return el("table", {},
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { scope: "col", class: i > 0 ? "num" : "" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => i === 0 ? el("th", { scope: "row" }, c) : el("td", { class: "num" }, String(c)))))));
}

async function loadPipeline() {
  let p;
  try {
    p = await api("/api/v1/pipeline");
  } catch (err) {
    $("pipeline-body").replaceChildren(el("p", { class: "error" }, "Pipeline status unavailable: " + err.message));
    return;
  }
  const parts = [];
  if (p.queue) {
    if (p.queue.depth) {
      parts.push(table("Queue " + p.queue.name, ["Messages", "Count"], depthRows(p.queue.depth)));
    } else {
      parts.push(el("p", { class: "error" }, "Queue " + p.queue.name + ": " + (p.queue.error ? p.queue.error.message : "unknown")));
    }
    parts.push(el("p", { class: "help" }, "Age of the oldest message: SQS does not tell it through its API."));
  }
  for (const d of p.deadLetters) {
    const title = "Dead letters in " + d.name + " (" + (d.kind === "sqs" ? "analyzer, SQS" : "indexer, Pub/Sub") + ")";
    if (d.error) {
      parts.push(el("p", { class: "error" }, title + ": " + d.error.message));
      continue;
    }
    const rows = d.byReason.map((c) => [c.value, c.count]);
    if (rows.length === 0) rows.push(["none", 0]);
    parts.push(table(title + ": " + d.messages + (d.complete ? "" : "+") + " messages", ["Reason", "Count"], rows));
    if (d.oldestFailure) parts.push(el("p", { class: "help" }, "Oldest failure ", time(d.oldestFailure), ", newest ", time(d.newestFailure), "."));
  }
  const t = p.throughput;
  if (t.error) {
    parts.push(el("p", { class: "error" }, "Throughput unavailable: " + t.error.message));
  } else {
    parts.push(table("Indexed images", ["Period", "Images"], [["Last minute", t.indexedLastMinute], ["Last 5 minutes", t.indexedLast5Minutes],
      ["Last 15 minutes", t.indexedLast15Minutes], ["Per minute (5-minute average)", t.perMinuteOver5Minutes.toFixed(1)]]));
  }
  $("pipeline-body").replaceChildren(...parts);
  $("pipeline-at").replaceChildren("Updated ", time(p.at), ".");
}

// ---- start ----

async function start() {
  try {
    state.info = await api("/api/v1/info");
  } catch (err) {
    if (err.status !== 401) notice("The console is not available: " + err.message);
    return;
  }
  notice("");
  const i = state.info;
  $("who").textContent = i.user ? "Signed in as " + i.user : "";
  $("limits").textContent = "Images up to " + bytes(i.maxUploadBytes) + " (" + i.uploadTypes.map((t) => t.replace("image/", "").toUpperCase()).join(", ") + "), into " + i.bucket + "/" + i.prefix + ".";
  applyHash();
  loadPipeline();
  setInterval(loadPipeline, 5000);
}

function wire() {
  $("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    search($("tag").value);
  });
  $("clear-search").addEventListener("click", () => search(""));
  $("more").addEventListener("click", () => loadImages({ append: true }));
  window.addEventListener("hashchange", applyHash);
  $("files").addEventListener("change", (ev) => {
    sendFiles([...ev.target.files]);
    ev.target.value = "";
  });
  const zone = $("dropzone");
  zone.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    sendFiles([...ev.dataTransfer.files]);
  });
  $("detail-close").addEventListener("click", closeDetail);
}

wire();
start();
