// Live viewer for members away from a connection point (PC, phone, smart TV browser).
//
// Link: viewer.html#conference=<id>&token=<secret>   (or a signed link: #conference=<id>&exp=..&sig=..)
// Plays the multivariant /hls/<conference>/master.m3u8 (the full picture and the 640x360 low one) with
// the locally bundled hls.js, which switches between them by the bandwidth it measures, or natively
// where HLS is built in (Safari, iOS, many TVs). Shows the picture size playing. Reports a heartbeat
// for attendance while playing (best effort).
import { authorisedFetch } from "./api.js";
import { backoffDelay } from "./backoff.js";
import { mountMaterials } from "./materials_list.js";
import { mountQuestionCard } from "./question_card.js";
import { setStatus, setupJoinForm } from "./ui.js";

const RETRY_MS = 3000; // the first retry while the broadcast has not started or the link dropped
const HEARTBEAT_MS = 15000;
const $ = (id) => document.getElementById(id);
const video = $("video");
const badge = $("live-badge");
const state = { conference: "", token: "", exp: "", sig: "", ended: false, hls: null, retries: 0, playing: false,
                level: "" };
window.viewer = state; // for diagnostics and tests

const status = (kind, text) => setStatus($("status"), kind, text);

function playlistUrl() {
  const q = state.token ? `token=${encodeURIComponent(state.token)}`
                        : `exp=${encodeURIComponent(state.exp)}&sig=${encodeURIComponent(state.sig)}`;
  return `/hls/${encodeURIComponent(state.conference)}/master.m3u8?${q}`;
}

function retryLater(text) {
  status("waiting", text);
  badge.dataset.live = "false";
  if (state.hls) { state.hls.destroy(); state.hls = null; }
  clearTimeout(state.timer);
  state.timer = setTimeout(start, backoffDelay(state.retries++, RETRY_MS));
}

function onPlaying() {
  if (!state.playing) setTimeout(heartbeat, 0);
  state.playing = true;
  state.retries = 0;
  badge.dataset.live = String(!state.ended);
  badge.textContent = state.ended ? "Đã kết thúc · Ended" : "Trực tiếp · Live";
  status("live", state.ended ? "Buổi phát đã kết thúc · The broadcast has ended" : "Đang phát · Playing");
}

function start() {
  const url = playlistUrl();
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls({ liveSyncDurationCount: 3, manifestLoadingMaxRetry: 2,
                          levelLoadingMaxRetry: 4, fragLoadingMaxRetry: 6 });
    state.hls = hls;
    hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => {
      state.ended = !data.details.live;
      if (state.ended) showReplay();
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => showLevel(hls.levels[data.level]));
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      const code = data.response && data.response.code;
      if (code === 401 || code === 403) {
        status("error", "Mã không hợp lệ · Invalid or expired link");
        hls.destroy(); state.hls = null;
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else {
        retryLater(code === 404 ? "Chưa phát · Not live yet, waiting…" : "Mất kết nối, đang thử lại · Reconnecting…");
      }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url; // native HLS (Safari, iOS, TVs)
    video.onerror = () => retryLater("Chưa phát · Not live yet, waiting…");
  } else {
    status("error", "Trình duyệt không hỗ trợ HLS · This browser cannot play HLS");
    return;
  }
  status("connecting", "Đang kết nối · Connecting…");
  video.play().catch(() => {});
}

function showLevel(level) {
  const label = $("level");
  state.level = level ? `${level.width}x${level.height}` : "";
  label.textContent = level ? `${level.height}p · ${Math.round(level.bitrate / 1000)} kbit/s` : "";
  label.hidden = !level;
}

function showReplay() {
  const link = $("replay-link");
  if (!state.token) return;
  link.href = `replay.html#conference=${encodeURIComponent(state.conference)}&token=${encodeURIComponent(state.token)}`;
  link.hidden = false;
}

function heartbeat() {
  if (!state.token || video.paused || !state.playing) return;
  authorisedFetch(state.token, `/api/v1/conferences/${encodeURIComponent(state.conference)}/heartbeat`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ kind: "hls" }),
  }).then((r) => { if (r.status === 404) clearInterval(state.heartbeatTimer); }).catch(() => {});
}

function begin({ conference, token, exp = "", sig = "" }) {
  Object.assign(state, { conference, token, exp, sig });
  $("conference-label").textContent = state.conference;
  state.heartbeatTimer = setInterval(heartbeat, HEARTBEAT_MS);
  // Questions need a token of one's own (a signed link has none): before, during and after.
  if (state.token) state.questions = mountQuestionCard($("questions-slot"), state.conference, state.token);
  if (state.token) mountMaterials($("materials-slot"), state.conference, state.token).catch(() => {});
  start();
}

video.addEventListener("playing", onPlaying);
video.addEventListener("waiting", () => status("waiting", "Đang tải · Buffering…"));
$("unmute").onclick = (ev) => {
  video.muted = !video.muted;
  ev.target.setAttribute("aria-pressed", String(!video.muted));
  ev.target.textContent = video.muted ? "🔇 Bật tiếng · Unmute" : "🔊 Tắt tiếng · Mute";
  video.play().catch(() => {});
};
$("golive").onclick = () => {
  if (state.hls && state.hls.liveSyncPosition) video.currentTime = state.hls.liveSyncPosition;
};
$("fullscreen").onclick = () => {
  (video.requestFullscreen || video.webkitEnterFullscreen || (() => {})).call(video);
};

const joined = setupJoinForm(begin, { complete: (p) => p.conference && (p.token || (p.exp && p.sig)) });
if (!joined) status("idle", "Cần mã xem · A viewer token is needed");
