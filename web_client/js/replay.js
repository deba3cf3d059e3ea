// Replay of a recording for members who missed the conference.
//
// Link: replay.html#recording=<id>&token=<secret>  (or #conference=<id>&token=<secret> to choose one).
// hls.js (bundled locally) plays the signed multivariant playlist from GET /api/v1/recordings/<id>
// (full and low variants, switched by bandwidth; a recording made before variants: its one playlist); the chapter
// list jumps to the organiser's marks; watch progress goes to
// POST /api/v1/conferences/<id>/replay-progress (best effort).
import { authorisedFetch } from "./api.js";
import { mountQuestionCard } from "./question_card.js";
import { joinParams, setStatus } from "./ui.js";

const PROGRESS_MS = 15000;
const $ = (id) => document.getElementById(id);
const video = $("video");
const params = joinParams();
const state = { token: params.token, recording: params.recording, conference: params.conference,
                detail: null, hls: null, watched: 0, lastTick: null, progress: true,
                viewId: Math.random().toString(36).slice(2) + Date.now().toString(36) };
window.replay = state; // for diagnostics and tests

const status = (kind, text) => setStatus($("status"), kind, text);
const api = (path, options) => authorisedFetch(state.token, path, options);

function fmt(s) {
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
}

async function pick() {
  const q = state.conference ? `?conference_id=${encodeURIComponent(state.conference)}` : "";
  const r = await api(`/api/v1/recordings${q}`);
  if (!r.ok) { status("error", `Không tải được danh sách · Cannot list recordings (${r.status})`); return; }
  const list = $("recordings");
  list.replaceChildren();
  for (const rec of await r.json()) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    const when = new Date(rec.started_at).toLocaleString();
    b.textContent = `${when} · ${fmt(rec.duration_seconds)}${rec.live ? " · đang ghi (live)" : ""}${rec.status === "interrupted" ? " · gián đoạn (interrupted)" : ""}`;
    b.onclick = () => { state.recording = rec.id; history.replaceState(null, "", `#recording=${rec.id}&token=${encodeURIComponent(state.token)}`); open(); };
    li.append(b); list.append(li);
  }
  $("picker").hidden = false;
}

function renderChapters(chapters) {
  const list = $("chapters");
  list.replaceChildren();
  $("no-chapters").hidden = chapters.length > 0;
  chapters.forEach((c, i) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.dataset.at = String(c.at_seconds);
    b.dataset.index = String(i);
    const t = document.createElement("span"); t.className = "time"; t.textContent = fmt(c.at_seconds);
    b.append(t, document.createTextNode(c.title));
    b.onclick = () => seek(c.at_seconds);
    li.append(b); list.append(li);
  });
}

function seek(seconds) {
  video.currentTime = seconds;
  video.play().catch(() => {});
}
state.seek = seek;

function highlightChapter() {
  let current = null;
  for (const b of document.querySelectorAll("#chapters button")) {
    if (Number(b.dataset.at) <= video.currentTime + 0.25) current = b;
  }
  for (const b of document.querySelectorAll("#chapters button")) b.setAttribute("aria-current", String(b === current));
}

async function loadDetail() {
  const r = await api(`/api/v1/recordings/${encodeURIComponent(state.recording)}`);
  if (!r.ok) throw new Error(r.status === 404 ? "Không có bản ghi · Recording not found" : `HTTP ${r.status}`);
  return r.json();
}

async function open() {
  $("picker").hidden = true;
  let detail;
  try { detail = await loadDetail(); } catch (e) { status("error", String(e.message || e)); return; }
  state.detail = detail;
  state.conference = detail.conference_id;
  // After the conference: a question still reaches the organisers, who forward unanswered ones.
  if (!state.questions) state.questions = mountQuestionCard($("questions-slot"), state.conference, state.token);
  $("title").textContent = new Date(detail.started_at).toLocaleString();
  $("player").hidden = false;
  renderChapters(detail.chapters);
  const dl = $("download");
  if (detail.download_url) { dl.href = detail.download_url; dl.hidden = false; dl.onclick = prepareDownload; }
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls({ startPosition: 0 });
    state.hls = hls;
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else status("error", `Lỗi phát · Playback error (${data.details})`);
    });
    hls.loadSource(detail.master_url || detail.playlist_url); // one playlist for a recording made before variants
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = detail.master_url || detail.playlist_url;
  } else {
    status("error", "Trình duyệt không hỗ trợ HLS · This browser cannot play HLS");
    return;
  }
  status("ready", detail.live ? "Đang ghi, xem từ đầu · Still recording: watching from the start"
                              : `Thời lượng · Duration ${fmt(detail.duration_seconds)}`);
  if (detail.live) state.chapterTimer = setInterval(refreshChapters, 10000);
  state.progressTimer = setInterval(sendProgress, PROGRESS_MS);
}

// The server makes a recording's MP4 on the first request and answers 202 with its progress until it
// is made: ask (one byte) until the file is there, then let the link download it.
async function prepareDownload(ev) {
  const dl = ev.currentTarget;
  if (dl.dataset.ready) return;
  ev.preventDefault();
  if (dl.dataset.preparing) return;
  dl.dataset.preparing = "1";
  try {
    for (;;) {
      const r = await fetch(dl.href, { headers: { Range: "bytes=0-0" } });
      if (r.status !== 202) {
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        break;
      }
      const { progress } = await r.json();
      status("ready", `Đang chuẩn bị tệp MP4 · Preparing the MP4 (${Math.round(progress * 100)}%)`);
      await new Promise((done) => setTimeout(done, 1000 * Number(r.headers.get("Retry-After") || 2)));
    }
    dl.dataset.ready = "1";
    status("ready", "Tệp MP4 đã sẵn sàng · The MP4 is ready");
    dl.click();
  } catch (e) {
    status("error", `Không tải được MP4 · Cannot download the MP4 (${e.message || e})`);
  } finally {
    delete dl.dataset.preparing;
  }
}

async function refreshChapters() {
  try {
    const d = await loadDetail();
    renderChapters(d.chapters);
    if (!d.live) clearInterval(state.chapterTimer);
  } catch (e) { /* keep the old list */ }
}

function tick() {
  const now = performance.now();
  if (state.lastTick !== null && !video.paused && !video.seeking) {
    state.watched += Math.min(1, (now - state.lastTick) / 1000) * video.playbackRate;
  }
  state.lastTick = now;
}

function sendProgress(final) {
  if (!state.progress || !state.detail || state.watched < 1) return;
  const body = JSON.stringify({ recording_id: state.recording, seconds_watched: Math.round(state.watched),
                                view_id: state.viewId, duration_seconds: state.detail.duration_seconds || undefined });
  api(`/api/v1/conferences/${encodeURIComponent(state.conference)}/replay-progress`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body, keepalive: final === true,
  }).then((r) => { if (r.status === 404 || r.status === 405) state.progress = false; }).catch(() => {});
}

video.addEventListener("timeupdate", () => { tick(); highlightChapter(); });
video.addEventListener("pause", () => { tick(); state.lastTick = null; });
video.addEventListener("play", () => { state.lastTick = performance.now(); });
video.addEventListener("playing", () => status("playing", "Đang phát · Playing"));
window.addEventListener("pagehide", () => sendProgress(true));
$("speed").onchange = (ev) => { video.playbackRate = Number(ev.target.value); };

// The replay link's token only: it stays in this page, the hash is left as it came.
const form = $("join-form");
form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = form.token.value.trim();
  if (!state.token) return;
  form.hidden = true;
  begin();
});
function begin() { if (state.recording) open(); else pick(); }
if (state.token) begin(); else form.hidden = false;
