// Organiser dashboard: link quality. The speaker's stream at the top (live, size, frame rate,
// bitrate, keyframe interval, its link's loss and RTT, how the low rendition is made, the recording), the alerts, then every point
// with its level, status, rendition (and a pin), score (good, fair, poor; 0-100) and the figures
// behind it, worst first or by name; a chart of loss and bitrate for the point selected.
//
// GET /quality and /quality/alerts on start, on a (re)connected channel and every 15 s; between,
// the channel's quality.sample (every point sampled) and quality.changed (a point's score changed)
// events update the points, quality.alert events the alerts.
import { el } from "./dom.js";
import { clockTime, levelName } from "./format.js";
import { drawQualityChart } from "./quality_chart.js";
import { conferencePath, requestJson } from "./rest.js";

const POLL_MS = 15000;
const QUALITY = { good: "Tốt · Good", fair: "Trung bình · Fair", poor: "Kém · Poor" };
const STATUS = { watching: "Đang xem · Watching", connected: "Chỉ kênh sự kiện · Page only", offline: "Không kết nối · Offline" };
const RENDITION = { full: "Đầy đủ · Full", low: "Thấp · Low", audio: "Âm thanh · Audio" };
// How the low rendition is made (GET /quality: speaker.low_rendition).
const LOW_MAKERS = { publisher: "Diễn giả gửi · From the speaker", transcode: "Máy chủ mã hoá · Server transcode",
  none: "Không · None" };
const ALERTS = {
  dropped: "Mất kết nối · Dropped",
  frozen: "Hình đứng quá 5 giây · Frozen over 5 s",
  poor: "Kém kéo dài · Poor for a minute",
  audio_only: "Chỉ còn âm thanh · Audio only",
};
const RANK = { poor: 0, fair: 1, good: 2 };

function num(value, digits = 0, unit = "") {
  if (value === null || value === undefined) return "–";
  return `${Number(value).toLocaleString("vi-VN", { maximumFractionDigits: digits })}${unit}`;
}

function megabytes(bytes) {
  return bytes === null || bytes === undefined ? "–" : `${(bytes / 1e6).toLocaleString("vi-VN", { maximumFractionDigits: 1 })} MB`;
}

export class QualityBoard {
  /** `elements`: { speaker, alerts, rows (a <tbody>), sort (a <select>), chart, chartTitle, error }. */
  constructor(conference, token, elements) {
    this.conference = conference;
    this.token = token;
    this.el = elements;
    this.points = new Map(); // point id -> its row as the server sent it
    this.alerts = new Map(); // alert id -> alert
    this.speaker = null;
    this.selected = null; // point id whose chart is shown
    this.pending = false; // a render waits for a pin <select> to lose focus
    this.poll = null;
    elements.sort.addEventListener("change", () => this.render());
  }

  start() {
    this.refresh().catch(() => {});
    this.poll = setInterval(() => { this.refresh().catch(() => {}); }, POLL_MS);
  }

  path(tail) {
    return conferencePath(this.conference, tail);
  }

  async refresh() {
    try {
      const [view, alerts] = await Promise.all([
        requestJson(this.token, "GET", this.path("/quality")),
        requestJson(this.token, "GET", this.path("/quality/alerts?limit=50")),
      ]);
      this.speaker = view.speaker;
      this.points = new Map(view.points.map((p) => [p.point_id, p]));
      this.alerts = new Map(alerts.map((a) => [a.id, a]));
      this.el.error.textContent = "";
      this.render();
      await this.loadChart();
    } catch (error) {
      this.el.error.textContent = `Không tải được chất lượng · Cannot load the link quality: ${error.detail || error.message}`;
    }
  }

  applyEvent(event) {
    if (event.type === "snapshot") {
      this.refresh().catch(() => {});
    } else if (event.type === "quality.sample" || event.type === "quality.changed") {
      const points = event.type === "quality.sample" ? event.points : [event];
      for (const p of points) {
        const before = this.points.get(p.point_id) || {};
        this.points.set(p.point_id, { ...before, ...p, name: p.name || before.name, parent_id: before.parent_id ?? null });
      }
      this.render();
      if (event.type === "quality.sample" && this.selected && points.some((p) => p.point_id === this.selected)) {
        this.loadChart().catch(() => {});
      }
    } else if (event.type === "quality.alert") {
      this.alerts.set(event.alert.id, event.alert);
      const point = this.points.get(event.alert.point_id);
      if (point) {
        const kinds = new Set(point.alerts || []);
        if (event.alert.active) kinds.add(event.alert.kind); else kinds.delete(event.alert.kind);
        point.alerts = [...kinds].sort();
      }
      this.render();
    } else if (event.type === "speaker.live" || event.type === "speaker.offline") {
      this.refresh().catch(() => {});
    }
  }

  render() {
    const focused = document.activeElement;
    if (focused && focused.tagName === "SELECT" && this.el.rows.contains(focused)) {
      this.pending = true; // re-rendering would close the list the organiser has open
      return;
    }
    this.pending = false;
    this.renderSpeaker();
    this.renderAlerts();
    this.renderPoints();
  }

  renderSpeaker() {
    const s = this.speaker;
    if (!s) return;
    const rec = s.recording || {};
    const recText = rec.state === "recording" ? `Đang ghi · Recording, ${megabytes(rec.size_bytes)}`
      : rec.state === "paused" ? `Tạm dừng (đĩa đầy) · Paused (disk), ${megabytes(rec.size_bytes)}` : "Không ghi · Off";
    const figure = (label, value, attrs = {}) => el("div", { class: "figure" },
      el("span", { class: "label" }, label), el("strong", attrs, value));
    this.el.speaker.replaceChildren(
      figure("Diễn giả · Speaker", s.live ? "● Trực tiếp · Live" : "Không phát · Offline",
        { dataset: { live: String(Boolean(s.live)) }, id: "speaker-live" }),
      figure("Độ phân giải · Resolution", s.width ? `${s.width}×${s.height}` : "–", { id: "speaker-resolution" }),
      figure("Khung hình · Frame rate", num(s.fps, 1, " fps")),
      figure("Tốc độ · Bitrate", num(s.bitrate_kbps, 0, " kb/s")),
      figure("Khung chính · Keyframe every", num(s.keyframe_interval_seconds, 1, " s")),
      figure("Mất gói · Loss", num(s.loss_percent, 1, "%")),
      figure("RTT", num(s.rtt_ms, 0, " ms")),
      figure("Bản 360p · Low rendition", LOW_MAKERS[s.low_rendition] || "–",
        { dataset: { madeBy: s.low_rendition || "none" }, id: "speaker-low-rendition" }),
      figure("Ghi hình · Recording", recText, { dataset: { state: rec.state || "off" } }),
    );
  }

  renderAlerts() {
    const all = [...this.alerts.values()].sort((a, b) =>
      (b.active - a.active) || b.started_at.localeCompare(a.started_at)).slice(0, 30);
    const items = all.map((a) => el("li", { dataset: { kind: a.kind, active: String(a.active), pointId: a.point_id || "" } },
      `${clockTime(a.started_at)} · ${a.point_name} — ${ALERTS[a.kind] || a.kind}`
      + (a.detail ? ` (${a.detail})` : "") + (a.active ? "" : ` · hết lúc · ended ${clockTime(a.ended_at)}`)));
    if (!items.length) items.push(el("li", { class: "meta" }, "Không có cảnh báo · No alerts"));
    this.el.alerts.replaceChildren(...items);
  }

  sorted() {
    const rows = [...this.points.values()];
    if (this.el.sort.value === "name") return rows.sort((a, b) => a.name.localeCompare(b.name, "vi"));
    return rows.sort((a, b) => ((RANK[a.score] ?? 3) - (RANK[b.score] ?? 3))
      || ((a.score_value ?? 101) - (b.score_value ?? 101))
      || (Number(a.status !== "watching") - Number(b.status !== "watching"))
      || a.name.localeCompare(b.name, "vi"));
  }

  renderPoints() {
    const rows = this.sorted().map((p) => this.row(p));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 13, class: "meta" }, "Chưa có điểm cầu · No points")));
    this.el.rows.replaceChildren(...rows);
  }

  row(p) {
    const f = p.figures || {};
    const select = el("select", { "aria-label": `Cố định luồng · Pin the rendition of ${p.name}`, class: "pin" },
      el("option", { value: "" }, "Tự động · Auto"),
      ...["full", "low", "audio"].map((r) => el("option", { value: r }, RENDITION[r])));
    select.value = p.pinned || "";
    select.addEventListener("click", (event) => event.stopPropagation());
    select.addEventListener("change", () => this.pin(p.point_id, select.value || null));
    select.addEventListener("blur", () => { if (this.pending) this.render(); });
    const rendition = p.rendition ? RENDITION[p.rendition] : "–";
    const alerts = (p.alerts || []).map((k) => ALERTS[k] || k).join(", ");
    const tr = el("tr", {
      dataset: { pointId: p.point_id, quality: p.score || "", status: p.status },
      "aria-selected": String(p.point_id === this.selected),
      title: alerts || (p.reasons || []).join(", "),
      onclick: () => this.select(p.point_id),
    },
    el("td", { class: "name" }, p.name),
    el("td", {}, levelName(p.level)),
    el("td", {}, STATUS[p.status] || p.status),
    el("td", { class: "rendition" }, rendition),
    el("td", {}, select),
    el("td", { class: "level" }, p.score ? `${QUALITY[p.score]} ${p.score_value}` : "–"),
    el("td", {}, num(f.loss_percent, 1, "%")),
    el("td", {}, num(f.rtt_ms, 0, " ms")),
    el("td", {}, num(f.jitter_ms, 0, " ms")),
    el("td", {}, num(f.retransmit_percent, 1, "%")),
    el("td", {}, num(f.bitrate_kbps, 0)),
    el("td", {}, num(f.fps, 0)),
    el("td", { class: "alerts" }, alerts));
    return tr;
  }

  async pin(pointId, rendition) {
    try {
      const out = await requestJson(this.token, "POST", this.path(`/points/${encodeURIComponent(pointId)}/rendition`), { rendition });
      const point = this.points.get(pointId);
      if (point) point.pinned = out.pinned;
      this.el.error.textContent = "";
    } catch (error) {
      this.el.error.textContent = `Không cố định được · Cannot pin: ${error.detail || error.message}`;
    }
    this.render();
  }

  async select(pointId) {
    this.selected = pointId;
    this.render();
    await this.loadChart();
  }

  async loadChart() {
    if (!this.selected) return;
    const point = this.points.get(this.selected);
    const history = await requestJson(this.token, "GET",
      this.path(`/quality/points/${encodeURIComponent(this.selected)}/history`));
    this.el.chartTitle.textContent = `${point ? point.name : ""}: mất gói (đỏ) và tốc độ (xanh) 10 phút gần nhất · `
      + "loss (red) and bitrate (blue), last 10 minutes";
    drawQualityChart(this.el.chart, history.samples);
  }
}
