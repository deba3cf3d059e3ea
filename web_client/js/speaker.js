// Speaker page: camera + microphone preview, go live / stop over WHIP, live count of watchers; as the
// chair, the floor (queue, grant, end, mute) with the point played in the hall, and the question board.
import { joinConference } from "./events.js";
import { FloorClient } from "./floor.js";
import { FloorQueueView } from "./floor_queue.js";
import { HallPlayback } from "./hall_playback.js";
import { showSelected } from "./question_box.js";
import { QuestionBoard } from "./question_board.js";
import { QuestionsClient } from "./questions.js";
import { conferencePath, requestJson } from "./rest.js";
import { setStatus, setupJoinForm } from "./ui.js";
import { closeOnPageHide, exposeForConsole, LOW_RENDITION, Supervisor, WhipSession } from "./whip_whep.js";

const $ = (id) => document.getElementById(id);
const preview = $("preview");
const goLive = $("golive");
const stopButton = $("stop");
const cameraSelect = $("camera");
const micSelect = $("microphone");
const statusLine = $("status");
const errorLine = $("error");
const badge = $("live-badge");
const lowRendition = $("low-rendition");

// 720p30 is what a hall camera usually delivers; the browser picks the closest its device supports.
const VIDEO_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };

const state = {
  conference: "",
  token: "",
  stream: null,
  supervisor: null,
  events: null,
  watchers: 0,
  floor: null, // FloorClient
  hall: null, // HallPlayback: the point on the hall's screen and loudspeakers
  questions: null, // QuestionsClient
  own: new Set(), // this token's WHEP sessions (the hall's playback): not points watching
};

function showError(text) { errorLine.textContent = text || ""; }

function setWatchers(n) {
  state.watchers = n;
  $("watchers").dataset.count = String(n);
  $("watcher-count").textContent = String(n);
  $("watcher-count-en").textContent = String(n);
}

function setLive(live) {
  badge.dataset.live = String(live);
  badge.textContent = live ? "● Đang phát · LIVE" : "Xem trước · Preview";
  goLive.disabled = live || !state.stream;
  stopButton.disabled = !live;
  cameraSelect.disabled = false;
  lowRendition.disabled = live; // it applies from the next session
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current) => {
    select.replaceChildren();
    for (const d of devices.filter((x) => x.kind === kind)) {
      const option = new Option(d.label || `${kind} ${select.length + 1}`, d.deviceId);
      option.selected = d.deviceId === current;
      select.add(option);
    }
  };
  const v = state.stream && state.stream.getVideoTracks()[0];
  const a = state.stream && state.stream.getAudioTracks()[0];
  fill(cameraSelect, "videoinput", v && v.getSettings().deviceId);
  fill(micSelect, "audioinput", a && a.getSettings().deviceId);
}

async function startPreview() {
  showError("");
  const video = { ...VIDEO_CONSTRAINTS };
  if (cameraSelect.value) video.deviceId = { exact: cameraSelect.value };
  const audio = { echoCancellation: true, noiseSuppression: true };
  if (micSelect.value) audio.deviceId = { exact: micSelect.value };
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video, audio });
  } catch (err) {
    const why = err.name === "NotAllowedError" ? "quyền camera/micro bị từ chối · camera/microphone permission denied"
      : err.name === "NotFoundError" ? "không tìm thấy camera/micro · no camera or microphone found"
      : `${err.name}: ${err.message}`;
    showError(`Không mở được camera · Cannot open the camera: ${why}`);
    setStatus(statusLine, "error", "Camera không sẵn sàng · Camera not available");
    goLive.disabled = true;
    return;
  }
  const old = state.stream;
  state.stream = stream;
  preview.srcObject = stream;
  // Already live: swap the tracks in place (no renegotiation, watchers keep their sessions).
  const session = state.supervisor && state.supervisor.session;
  if (session) await session.replaceStream(stream);
  if (old) old.getTracks().forEach((t) => t.stop());
  const s = stream.getVideoTracks()[0].getSettings();
  $("stats").textContent = `Nguồn · Source: ${s.width}×${s.height} @ ${Math.round(s.frameRate || 0)} fps`;
  if (!state.supervisor || !state.supervisor.running) {
    setStatus(statusLine, "idle", "Sẵn sàng · Ready — bấm “Phát trực tiếp” để lên sóng");
    goLive.disabled = false;
  }
  await listDevices();
}

function onSupervisorStatus(kind, text) {
  if (kind === "connected") {
    setStatus(statusLine, "live", "Đang phát trực tiếp · Live");
    setLive(true);
    showError("");
  } else if (kind === "error") {
    setStatus(statusLine, "error", "Không phát được · Could not go live");
    showError(text);
    setLive(false);
  } else {
    const last = state.supervisor && state.supervisor.lastError;
    if (kind === "reconnecting" && last) showError(`Lần thử trước lỗi · Last attempt failed: ${last}`);
    const vi = kind === "connecting" ? "Đang kết nối" : kind === "unstable" ? "Đường truyền chập chờn" : "Đang kết nối lại";
    setStatus(statusLine, kind, `${vi} · ${text}`);
    if (kind !== "unstable") {
      badge.dataset.live = "false";
      badge.textContent = "Đang kết nối · Connecting";
    }
    stopButton.disabled = false;
    goLive.disabled = true;
  }
}

function startLive() {
  if (!state.stream) return;
  showError("");
  const endpoint = `/whip/${encodeURIComponent(state.conference)}`;
  // The low rendition (360p) encoded here too, unless turned off: weak points get it without a server transcode.
  const low = lowRendition.checked ? LOW_RENDITION : null;
  state.supervisor = new Supervisor(() => new WhipSession(endpoint, state.token, state.stream, { low }), {
    onStatus: onSupervisorStatus,
  });
  goLive.disabled = true;
  lowRendition.disabled = true;
  stopButton.disabled = false;
  state.supervisor.start();
}

async function stopLive(message) {
  const supervisor = state.supervisor;
  stopButton.disabled = true;
  if (supervisor) await supervisor.stop();
  setLive(false);
  setStatus(statusLine, "idle", message || "Đã dừng · Stopped");
}

function onEvent(event) {
  // Only our own sessions' events carry a session_id here: the hall's playback of a point.
  if (event.type === "consumer.joined" && event.session_id) state.own.add(event.session_id);
  if (event.type === "consumer.left" && event.session_id) state.own.delete(event.session_id);
  if (typeof event.consumers === "number") setWatchers(Math.max(0, event.consumers - state.own.size));
  state.floor.applyEvent(event);
  state.questions.applyEvent(event);
  const sup = state.supervisor;
  // Another device went live with this conference: it replaced our session; do not fight over it.
  if (event.type === "speaker.live" && sup && sup.running && sup.connected && sup.session
      && sup.session.id && event.session_id && event.session_id !== sup.session.id) {
    stopLive("Một thiết bị khác đã lên sóng · Another device took over the live stream");
  }
}

async function pollStats() {
  const pc = window.diemcau.pc;
  if (!pc || pc.connectionState !== "connected") return;
  const report = await pc.getStats();
  const videos = [];
  report.forEach((s) => { if (s.type === "outbound-rtp" && s.kind === "video") videos.push(s); });
  if (!videos.length) return;
  videos.sort((a, b) => (b.frameHeight || 0) - (a.frameHeight || 0)); // the full picture, then the low one
  const [video, low] = videos;
  const codec = video.codecId && report.get(video.codecId);
  const now = video.timestamp;
  const prev = state.lastOut;
  state.lastOut = { bytes: video.bytesSent, t: now };
  const kbps = prev && now > prev.t ? Math.round(((video.bytesSent - prev.bytes) * 8) / (now - prev.t)) : 0;
  state.outbound = { width: video.frameWidth, height: video.frameHeight, fps: video.framesPerSecond,
    codec: codec ? codec.mimeType : null, fmtp: codec ? codec.sdpFmtpLine : null, kbps,
    low: low ? { width: low.frameWidth, height: low.frameHeight, fps: low.framesPerSecond } : null };
  $("stats").textContent = `Gửi · Sending: ${video.frameWidth || "?"}×${video.frameHeight || "?"} · `
    + `${Math.round(video.framesPerSecond || 0)} fps · ${codec ? codec.mimeType.replace("video/", "") : "?"} · ${kbps} kbit/s`
    + (low ? ` · + ${low.frameWidth || "?"}×${low.frameHeight || "?"}` : "");
}

/** The floor card: the queue and its controls, and the point played in the hall while it speaks. */
function setupFloor({ conference, token }) {
  state.floor = new FloorClient(conference, token);
  const video = $("floor-video");
  const unmute = $("floor-unmute");
  state.hall = new HallPlayback(conference, token, video, {
    onStatus: (kind, text) => {
      $("floor-playback").dataset.state = kind;
      $("floor-playback").textContent = kind === "connected" ? "" : `Phát hình điểm cầu · Point playback: ${text}`;
    },
  });
  video.addEventListener("volumechange", () => { unmute.hidden = !video.muted; });
  video.addEventListener("playing", () => { unmute.hidden = !video.muted; });
  unmute.addEventListener("click", () => { video.muted = false; video.play().catch(() => {}); });
  state.floor.subscribe((floor) => {
    $("floor-stage").hidden = !floor.current;
    if (floor.current) $("floor-badge").textContent = `${floor.current.point_name} đang phát biểu · speaking`;
    state.hall.follow(floor);
  });
  const showError = (text) => { $("floor-error").textContent = text; };
  new FloorQueueView(state.floor, $("floor"), {
    // Inviting a point that did not ask needs the list of points, which only organisers may read:
    // for a speaker token this is refused and the invitation stays hidden.
    loadPoints: () => requestJson(token, "GET", conferencePath(conference, "/points")),
    onError: showError,
  });
  state.floor.refresh().catch(() => {});
}

function setupQuestions({ conference, token }) {
  state.questions = new QuestionsClient(conference, token);
  showSelected(state.questions, $("selected-question"));
  new QuestionBoard(state.questions, $("questions"), {
    filter: $("question-filter"),
    onError: (text) => { $("question-error").textContent = text; },
  });
  state.questions.refresh().catch((error) => {
    $("question-error").textContent = `Không tải được câu hỏi · Cannot load the questions: ${error.detail || error.message}`;
  });
}

function join(params) {
  setupFloor(params);
  setupQuestions(params);
  joinConference(state, params, onEvent);
  startPreview();
}

// `#...&low=0` in the link: publish the full picture only (the server then makes the low rendition).
lowRendition.checked = new URLSearchParams(location.hash.slice(1)).get("low") !== "0";
goLive.addEventListener("click", startLive);
stopButton.addEventListener("click", () => stopLive());
cameraSelect.addEventListener("change", startPreview);
micSelect.addEventListener("change", startPreview);
closeOnPageHide(state);
window.addEventListener("pagehide", () => {
  const session = state.hall && state.hall.session;
  if (session) session.close({ keepalive: true });
});

setInterval(() => { pollStats().catch(() => {}); }, 1000);

exposeForConsole(state, {
  get floor() { return state.floor; },
  get hall() { return state.hall; },
  get questions() { return state.questions; },
  sourceSettings() {
    const t = state.stream && state.stream.getVideoTracks()[0];
    return t ? t.getSettings() : null;
  },
});

setupJoinForm(join);
