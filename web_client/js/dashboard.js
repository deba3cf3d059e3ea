// Organiser dashboard: every connection point as a tree by level, with live status and headcounts.
//
// Data comes from GET /api/v1/conferences/{id}/attendance/status; the conference WebSocket tells us
// when to fetch it again (attendance.changed, headcount.reported, presence/consumer events), and a
// slow poll covers anything missed while the socket was down. Above the tree: link quality (the
// speaker's stream, alerts, every point's quality; quality_board.js). Below it: the floor with the
// moderation controls, the question board, and removing a participant.
import { authorisedFetch } from "./api.js";
import { ConferenceEvents } from "./events.js";
import { FloorClient } from "./floor.js";
import { renderFloorHistory } from "./floor_history.js";
import { FloorQueueView } from "./floor_queue.js";
import { removeParticipant, wireRemoveForm } from "./moderation.js";
import { showSelected } from "./question_box.js";
import { QuestionBoard } from "./question_board.js";
import { QuestionsClient } from "./questions.js";
import { QualityBoard } from "./quality_board.js";
import { setStatus, setupJoinForm } from "./ui.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 15000;
const LEVELS = { province: "Tỉnh · Province", district: "Huyện · District", commune: "Xã · Commune" };
const REFRESH_ON = new Set([
  "attendance.changed", "headcount.reported", "presence.joined", "presence.left",
  "consumer.joined", "consumer.left", "conference.updated",
]);

const state = {
  conference: "",
  token: "",
  data: null,
  open: null, // ids of expanded parents (null until the first render picks defaults)
  timer: null,
  poll: null,
  busy: false,
  again: false,
  events: null,
  stopped: false,
  floor: null, // FloorClient
  questions: null, // QuestionsClient
  quality: null, // QualityBoard
};

async function api(path) {
  const response = await authorisedFetch(state.token, path);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    const error = new Error(`${response.status} ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function fmtTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString("vi-VN", { hour: "2-digit", minute: "2-digit" });
}

function fmtNumber(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("vi-VN");
}

function rateText(present, summoned) {
  if (!summoned) return "";
  return `${(Math.round((present * 1000) / summoned) / 10).toFixed(1)}%`;
}

async function refresh() {
  if (state.stopped) return;
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    state.data = await api(`/api/v1/conferences/${encodeURIComponent(state.conference)}/attendance/status`);
    $("error").textContent = "";
    render();
  } catch (error) {
    $("error").textContent = `Không tải được trạng thái · Cannot load the status: ${error.message}`;
    if (error.status === 401 || error.status === 403 || error.status === 404) stop();
  } finally {
    state.busy = false;
    if (state.again) { state.again = false; scheduleRefresh(200); }
  }
}

function scheduleRefresh(delay = 300) {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, delay);
}

function stop() {
  state.stopped = true;
  clearInterval(state.poll);
  if (state.events) state.events.stop();
  setStatus($("status"), "error", "Đã dừng · Stopped");
}

function renderTotals(t) {
  $("total-connected").textContent = fmtNumber(t.connected);
  $("total-points").textContent = fmtNumber(t.points);
  $("total-reported").textContent = `${fmtNumber(t.reported)} / ${fmtNumber(t.points)}`;
  $("total-present").textContent = fmtNumber(t.present);
  $("total-summoned").textContent = fmtNumber(t.summoned);
  $("total-rate").textContent = t.rate === null ? "" : `${t.rate.toFixed(1)}%`;
  $("total-members").textContent = fmtNumber(t.members_online);
}

function matches(point) {
  const filter = $("filter").value;
  const search = $("search").value.trim().toLocaleLowerCase("vi");
  if (filter === "offline" && point.connected) return false;
  if (filter === "unreported" && point.headcount !== null) return false;
  return !search || point.name.toLocaleLowerCase("vi").includes(search);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function row(point, subtotal) {
  const since = point.connected
    ? `từ ${fmtTime(point.since)} · since ${fmtTime(point.since)}`
    : point.ever_connected ? `mất kết nối ${fmtTime(point.last_left_at)} · left` : "chưa kết nối · never";
  const name = el("span", { class: "name" }, point.name);
  if (subtotal) name.append(el("span", { class: "sub" }, `${subtotal.connected}/${subtotal.points} kết nối · connected`));
  const count = el("span", { class: "count", "data-reported": String(point.headcount !== null) },
    `${point.headcount === null ? "–" : fmtNumber(point.headcount)} / ${fmtNumber(point.summoned)}`);
  return el("div", {
    class: "row", role: "treeitem", "data-point-id": point.id,
    "data-connected": String(point.connected), "data-ever": String(point.ever_connected),
  },
  el("span", { class: "dot", title: point.connected ? "connected" : "not connected" }),
  name,
  el("span", { class: "level" }, LEVELS[point.level] || point.level),
  el("span", { class: "since" }, since),
  count,
  el("span", { class: "rate" }, point.headcount === null ? "" : rateText(point.headcount, point.summoned)));
}

// The server stops recording below its free-space floor (the attendance database needs room too).
function renderDisk(disk) {
  const warning = $("disk-warning");
  warning.hidden = !(disk && disk.low);
  if (warning.hidden) return;
  const gb = (n) => (n / 1e9).toLocaleString("vi-VN", { maximumFractionDigits: 1 });
  warning.textContent = `Ổ đĩa sắp đầy: không ghi hình · Disk almost full: not recording ` +
    `(${gb(disk.free_bytes)} GB free, ${gb(disk.min_free_bytes)} GB needed)`;
}

/** The points in the removal form's list, kept as they are in the attendance status. */
function renderRemoveChoices(points) {
  const select = $("remove-point");
  const chosen = select.value;
  const key = JSON.stringify(points.map((p) => [p.id, p.name]));
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  select.replaceChildren(el("option", { value: "" }, "—"),
    ...points.map((p) => el("option", { value: p.id }, p.name)));
  select.value = points.some((p) => p.id === chosen) ? chosen : "";
}

function render() {
  const data = state.data;
  renderRemoveChoices(data.points);
  renderTotals(data.totals);
  renderDisk(data.disk);
  $("conference-status").textContent = data.status;
  $("updated").textContent = new Date(data.generated_at).toLocaleTimeString("vi-VN");
  const ids = new Set(data.points.map((p) => p.id));
  const children = new Map();
  for (const point of data.points) {
    const parent = ids.has(point.parent_id) ? point.parent_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(point);
  }
  if (state.open === null) {
    state.open = new Set((children.get(null) || []).filter((p) => children.has(p.id)).map((p) => p.id));
  }
  const filtering = $("filter").value !== "all" || $("search").value.trim() !== "";

  // Returns [node or null, subtotal of connected/points in the subtree].
  function build(point) {
    const kids = children.get(point.id) || [];
    const subtotal = { connected: point.connected ? 1 : 0, points: 1 };
    const built = [];
    for (const kid of kids) {
      const [node, sub] = build(kid);
      subtotal.connected += sub.connected;
      subtotal.points += sub.points;
      if (node) built.push(node);
    }
    if (!kids.length) return [matches(point) ? el("div", { class: "leaf" }, row(point)) : null, subtotal];
    if (!built.length && !matches(point)) return [null, subtotal];
    const details = el("details", { "data-point-id": point.id });
    details.open = filtering || state.open.has(point.id);
    details.addEventListener("toggle", () => {
      if (filtering) return;
      if (details.open) state.open.add(point.id); else state.open.delete(point.id);
    });
    details.append(el("summary", {}, row(point, subtotal)), ...built);
    return [details, subtotal];
  }

  const fragment = document.createDocumentFragment();
  for (const root of children.get(null) || []) {
    const [node] = build(root);
    if (node) fragment.append(node);
  }
  if (!data.points.length) fragment.append(el("p", { class: "meta" }, "Chưa có điểm cầu · No connection points yet (import a CSV)."));
  $("tree").replaceChildren(fragment);
}

function setAll(open) {
  if (!state.data) return;
  state.open = new Set(open ? state.data.points.map((p) => p.id) : []);
  render();
}

/** A report fetched with the token in a header, never in a URL (history, server and proxy logs):
 * the printable one opens in a new tab, the CSV is saved. */
async function openReport(url, kind) {
  try {
    const response = await authorisedFetch(state.token, url);
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const blob = URL.createObjectURL(await response.blob());
    const a = document.createElement("a");
    a.href = blob;
    if (kind === "csv") a.download = "attendance.csv";
    else { a.target = "_blank"; a.rel = "noopener"; }
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(blob), 60000);
  } catch (error) {
    $("error").textContent = `Không tải được báo cáo · Cannot load the report: ${error.message}`;
  }
}

async function refreshFloorHistory() {
  const box = $("floor-history-box");
  if (!box.open || !state.floor) return;
  try {
    renderFloorHistory($("floor-history"), await state.floor.history());
  } catch (error) {
    $("floor-error").textContent = `Không tải được lịch sử · Cannot load the history: ${error.detail || error.message}`;
  }
}

/** Floor (with lock, end all, remove), question board, removal form. */
function setupLive(conference, token) {
  state.quality = new QualityBoard(conference, token, {
    speaker: $("quality-speaker"), alerts: $("quality-alerts"), rows: $("quality-rows"), sort: $("quality-sort"),
    chart: $("quality-chart"), chartTitle: $("quality-chart-title"), error: $("quality-error"),
  });
  state.quality.start();
  state.floor = new FloorClient(conference, token);
  const remove = (pointId) => removeParticipant(token, conference, { point_id: pointId });
  new FloorQueueView(state.floor, $("floor"), {
    loadPoints: async () => {
      const response = await authorisedFetch(token, `/api/v1/conferences/${encodeURIComponent(conference)}/points`);
      if (!response.ok) throw new Error(String(response.status));
      return response.json();
    },
    moderation: true,
    onRemove: remove,
    onError: (text) => { $("floor-error").textContent = text; },
  });
  state.floor.subscribe(() => refreshFloorHistory());
  $("floor-history-box").addEventListener("toggle", refreshFloorHistory);
  state.floor.refresh().catch(() => {});

  state.questions = new QuestionsClient(conference, token);
  showSelected(state.questions, $("selected-question"));
  new QuestionBoard(state.questions, $("questions"), {
    filter: $("question-filter"),
    onError: (text) => { $("question-error").textContent = text; },
    onRemove: (q) => removeParticipant(token, conference, q.point_id ? { point_id: q.point_id } : { member_id: q.member_id })
      .then(() => { $("question-error").textContent = `Đã mời ra · Removed: ${q.author_name}`; }),
  });
  $("questions-csv").addEventListener("click", () => state.questions.exportCsv().catch((error) => {
    $("question-error").textContent = `Không tải được CSV · Cannot download the CSV: ${error.detail || error.message}`;
  }));
  state.questions.refresh().catch((error) => {
    $("question-error").textContent = `Không tải được câu hỏi · Cannot load the questions: ${error.detail || error.message}`;
  });
  wireRemoveForm({
    form: $("remove-form"), select: $("remove-point"), tokenInput: $("remove-token"),
    button: $("remove-submit"), status: $("remove-status"),
  }, token, conference, () => scheduleRefresh());
}

async function start({ conference, token }) {
  state.conference = conference;
  state.token = token;
  const base = `/api/v1/conferences/${encodeURIComponent(conference)}/attendance`;
  for (const kind of ["html", "csv"]) {
    const link = $(`report-${kind}`);
    link.href = `${base}/report.${kind}`; // shown on hover; the click below adds the token
    link.onclick = (event) => { event.preventDefault(); openReport(link.href, kind); };
  }
  try {
    const conf = await api(`/api/v1/conferences/${encodeURIComponent(conference)}`);
    $("conference-title").textContent = conf.title;
    document.title = `Điểm Cầu · ${conf.title}`;
  } catch (error) {
    $("error").textContent = `Không mở được hội nghị · Cannot open the conference: ${error.message}`;
    setStatus($("status"), "error", "Lỗi · Error");
    return;
  }
  await refresh();
  setupLive(conference, token);
  state.poll = setInterval(refresh, POLL_MS);
  state.events = new ConferenceEvents(conference, token, {
    onEvent: (event) => {
      state.floor.applyEvent(event);
      state.questions.applyEvent(event);
      state.quality.applyEvent(event);
      if (REFRESH_ON.has(event.type) || event.type === "snapshot") scheduleRefresh();
    },
    onState: (kind) => {
      if (kind === "open") setStatus($("status"), "connected", "Cập nhật trực tiếp · Live updates");
      else if (kind === "closed") setStatus($("status"), "reconnecting", "Mất kết nối, đang thử lại · Reconnecting (polling)");
      else setStatus($("status"), "connecting", "Đang kết nối · Connecting");
    },
  });
  state.events.start();
}

$("filter").addEventListener("change", () => state.data && render());
$("search").addEventListener("input", () => state.data && render());
$("expand").addEventListener("click", () => setAll(true));
$("collapse").addEventListener("click", () => setAll(false));
setupJoinForm(start);
