// Connection-point page: watch the conference over WHEP and keep watching through link drops; ask
// for the floor and speak when granted (floor_hand.js); send written questions (question_box.js);
// report the playback's quality and show (and pin) the rendition received (quality_report.js).
import { joinConference } from "./events.js";
import { FloorClient } from "./floor.js";
import { FloorHand } from "./floor_hand.js";
import { questionBox, showSelected } from "./question_box.js";
import { QuestionsClient } from "./questions.js";
import { QualityReporter } from "./quality_report.js";
import { setStatus, setupJoinForm } from "./ui.js";
import { closeOnPageHide, exposeForConsole, Supervisor, WhepSession } from "./whip_whep.js";

const $ = (id) => document.getElementById(id);
const video = $("remote");
const watchButton = $("watch");
const stopButton = $("stop");
const unmuteButton = $("unmute");
const statusLine = $("status");
const errorLine = $("error");
const badge = $("live-badge");

const state = {
  conference: "",
  token: "",
  supervisor: null,
  events: null,
  live: null, // speaker live according to the event channel (null: unknown yet)
  pointId: null, // our connection point, from the channel's snapshot
  stats: null,
  floor: null, // FloorClient
  hand: null, // FloorHand: raise hand, speak
  questions: null, // QuestionsClient
  quality: null, // QualityReporter
};

function showError(text) { errorLine.textContent = text || ""; }

function renderLive() {
  const live = state.live === true;
  badge.dataset.live = String(live);
  badge.textContent = live ? "● Trực tiếp · LIVE" : "Chờ diễn giả · Waiting for the speaker";
}

function onSupervisorStatus(kind, text) {
  if (kind === "connected") {
    showError("");
    if (state.live === false) setStatus(statusLine, "waiting", "Đã kết nối, chờ diễn giả · Connected, waiting for the speaker");
    else setStatus(statusLine, "connected", "Đang xem · Watching");
  } else if (kind === "error") {
    setStatus(statusLine, "error", "Không xem được · Cannot watch");
    showError(text);
    watchButton.disabled = false;
    stopButton.disabled = true;
  } else {
    const last = state.supervisor && state.supervisor.lastError;
    if (kind === "reconnecting" && last) showError(`Lần thử trước lỗi · Last attempt failed: ${last}`);
    const vi = kind === "connecting" ? "Đang kết nối" : kind === "unstable" ? "Đường truyền chập chờn" : "Đang kết nối lại";
    setStatus(statusLine, kind, `${vi} · ${text}`);
  }
}

function onSession(session) {
  video.srcObject = session.stream;
  video.play().catch(() => { /* autoplay refused: the Unmute/Watch click will start it */ });
}

function startWatching() {
  if (state.supervisor && state.supervisor.running) return;
  showError("");
  const endpoint = `/whep/${encodeURIComponent(state.conference)}`;
  state.supervisor = new Supervisor(() => new WhepSession(endpoint, state.token), {
    onStatus: onSupervisorStatus,
    onSession,
  });
  watchButton.disabled = true;
  stopButton.disabled = false;
  state.supervisor.start();
}

async function stopWatching() {
  stopButton.disabled = true;
  if (state.supervisor) await state.supervisor.stop();
  video.srcObject = null;
  watchButton.disabled = false;
  setStatus(statusLine, "idle", "Đã dừng · Stopped");
}

// Headcount: the operator reports how many delegates are in the room, at the start and whenever it
// changes. Sent over the event channel (the server knows our point from the token) and confirmed by
// the headcount.reported event it broadcasts to organisers' dashboards.
function reportHeadcount(ev) {
  ev.preventDefault();
  const present = Number.parseInt($("present").value, 10);
  if (!Number.isInteger(present) || present < 0) return;
  const sent = state.events && state.events.send({ type: "headcount", present });
  $("headcount-status").textContent = sent
    ? `Đang gửi ${present}… · Sending ${present}…`
    : "Chưa kết nối máy chủ, thử lại sau · Not connected to the server, try again shortly";
}

function onEvent(event) {
  if (event.type === "headcount.reported" && event.point_id === state.pointId) {
    const at = new Date(event.reported_at).toLocaleTimeString();
    $("headcount-status").textContent = `Đã báo cáo ${event.present} đại biểu lúc ${at} · Reported ${event.present} present at ${at}`;
    $("headcount-status").dataset.present = String(event.present);
  }
  if (event.type === "error" && event.for === "headcount") {
    $("headcount-status").textContent = `Không nhận · Refused: ${event.detail}`;
  }
  if (event.type === "snapshot" && event.point_id) {
    state.pointId = event.point_id;
    state.hand.render();
  }
  state.floor.applyEvent(event);
  state.questions.applyEvent(event);
  state.quality.applyEvent(event);
  // Our own questions' answers reach us only through GET /questions (the chair's updates are not
  // broadcast): look again whenever the chair moves on to a question.
  if (event.type === "question.selected") state.questions.refresh().catch(() => {});
  if (event.type === "snapshot") state.live = Boolean(event.live);
  else if (event.type === "speaker.live") state.live = true;
  else if (event.type === "speaker.offline") state.live = false;
  renderLive();
  const sup = state.supervisor;
  // The server ended our WHEP session (operator, restart of the relay...): open a new one at once.
  if (event.type === "consumer.left" && sup && sup.session && sup.session.id && event.session_id === sup.session.id) {
    sup.drop("session ended by the server");
  }
  if ((event.type === "speaker.live" || event.type === "snapshot") && sup && sup.connected && state.live) {
    setStatus(statusLine, "connected", "Đang xem · Watching");
  }
  if (event.type === "speaker.offline" && sup && sup.connected) {
    setStatus(statusLine, "waiting", "Diễn giả tạm ngừng, chờ phát lại · Speaker offline, waiting");
  }
}

/** The server refused our token on the event channel (revoked, expired, or the point was removed). */
function onChannelState(kind, _delay, code) {
  if (kind !== "closed" || code !== 4401) return;
  state.events.stop();
  // Never accepted: a mistyped or old link; the WHEP session's refusal already says why.
  if (!state.events.connects) return;
  if (state.hand) state.hand.publisher.stop();
  if (state.supervisor) state.supervisor.stop();
  video.srcObject = null;
  watchButton.disabled = true;
  stopButton.disabled = true;
  setStatus(statusLine, "error", "Mã điểm cầu không còn hiệu lực · This point's link no longer works");
  showError("Mã truy cập đã bị thu hồi hoặc điểm cầu đã bị mời ra khỏi hội nghị; liên hệ ban tổ chức · "
    + "The token was revoked or the point was removed from the conference; contact the organisers.");
}

async function pollStats() {
  const pc = window.diemcau.pc;
  if (!pc || pc.connectionState === "closed") return;
  const report = await pc.getStats();
  const out = { video: null, audio: null, codec: null };
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") out.video = s;
    if (s.type === "inbound-rtp" && s.kind === "audio") out.audio = s;
  });
  if (out.video && out.video.codecId) {
    const codec = report.get(out.video.codecId);
    if (codec) out.codec = codec.mimeType;
  }
  state.stats = out;
  const v = out.video;
  if (v && v.framesDecoded) {
    $("stats").textContent = `${v.frameWidth || "?"}×${v.frameHeight || "?"} · ${Math.round(v.framesPerSecond || 0)} fps · `
      + `${(out.codec || "").replace("video/", "")} · mất gói · lost ${v.packetsLost || 0}`
      + (state.supervisor && state.supervisor.reconnects ? ` · kết nối lại · reconnects ${state.supervisor.reconnects}` : "");
  }
}

function join(params) {
  state.floor = new FloorClient(params.conference, params.token);
  state.questions = new QuestionsClient(params.conference, params.token);
  state.hand = new FloorHand(state.floor, {
    form: $("hand-form"),
    raise: $("raise-hand"),
    lower: $("lower-hand"),
    status: $("floor-status"),
    holder: $("floor-holder"),
    error: $("floor-error"),
    speaking: $("speaking"),
    selfView: $("self-view"),
    timer: $("floor-timer"),
    giveBack: $("give-back"),
    publishStatus: $("publish-status"),
  }, () => state.pointId);
  showSelected(state.questions, $("selected-question"));
  questionBox(state.questions, {
    form: $("question-form"),
    counter: $("question-count"),
    status: $("question-status"),
    mine: $("my-questions"),
    isMine: (q) => Boolean(state.pointId) && q.point_id === state.pointId,
  });
  state.quality = new QualityReporter({
    send: (message) => Boolean(state.events) && state.events.send(message),
    session: () => (state.supervisor && state.supervisor.session) || null,
    view: { line: $("rendition"), badge: $("audio-only"), select: $("rendition-pin"), status: $("rendition-status") },
  });
  joinConference(state, params, onEvent, onChannelState);
  state.quality.start();
  // The WebSocket sends the floor on connecting; this covers a channel that is slow to open.
  state.floor.refresh().catch(() => {});
  state.questions.refresh().catch(() => {});
  watchButton.disabled = false;
  startWatching(); // a join link means "show the conference": start at once
}

watchButton.addEventListener("click", startWatching);
$("headcount-form").addEventListener("submit", reportHeadcount);
stopButton.addEventListener("click", stopWatching);
unmuteButton.addEventListener("click", () => {
  video.muted = !video.muted;
  unmuteButton.setAttribute("aria-pressed", String(!video.muted));
  unmuteButton.textContent = video.muted ? "🔇 Bật tiếng · Unmute" : "🔊 Tắt tiếng · Mute";
  video.play().catch(() => {});
});
$("fullscreen").addEventListener("click", () => {
  const stage = $("stage");
  if (document.fullscreenElement) document.exitFullscreen();
  else if (stage.requestFullscreen) stage.requestFullscreen().catch(() => {});
});
closeOnPageHide(state);
// Leaving the page while speaking: end the WHIP session at once, so the hall falls back to the speaker.
window.addEventListener("pagehide", () => {
  const session = state.hand && state.hand.publisher.session;
  if (session) session.close({ keepalive: true });
});
setInterval(() => { pollStats().catch(() => {}); }, 1000);

exposeForConsole(state, {
  video,
  get floor() { return state.floor; },
  get questions() { return state.questions; },
  get quality() { return state.quality; },
  get publisher() { return state.hand && state.hand.publisher; },
});

setupJoinForm(join);
