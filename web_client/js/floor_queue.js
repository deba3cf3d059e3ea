// The chair's view of the floor (speaker page, dashboard): who holds it, for how long, muted or not,
// and the queue in order of request with each point's level, subject, waiting time and link quality;
// grant (with an optional time limit), invite a point that did not ask, end, mute. The dashboard
// adds the moderation controls: lock the queue, end all, remove a participant.
import { confirmButton, el } from "./dom.js";
import { duration, levelName, secondsSince } from "./format.js";
import { floorRefusal } from "./floor.js";

const LIMITS = [[0, "Không giới hạn · No limit"], [60, "1 phút"], [120, "2 phút"], [180, "3 phút"], [300, "5 phút"], [600, "10 phút"]];
const MEDIA = {
  waiting: "Chờ hình · Waiting for the point's video",
  live: "● Đang truyền · Live",
  stalled: "Mất tín hiệu · Link lost",
};

/** The point's link as the queue shows it: loss, round trip and jitter of its own WHEP session. */
function quality(q) {
  if (!q || typeof q !== "object") return "";
  const parts = [];
  if (q.loss_percent !== null && q.loss_percent !== undefined) parts.push(`mất gói · loss ${q.loss_percent.toFixed(1)}%`);
  if (q.rtt_ms !== null && q.rtt_ms !== undefined) parts.push(`RTT ${Math.round(q.rtt_ms)} ms`);
  if (q.jitter_ms !== null && q.jitter_ms !== undefined) parts.push(`jitter ${Math.round(q.jitter_ms)} ms`);
  return parts.join(" · ");
}

/** Poor when a call would suffer: over 5 % loss or 400 ms round trip. */
function poor(q) {
  return Boolean(q && ((q.loss_percent || 0) > 5 || (q.rtt_ms || 0) > 400));
}

/**
 * Builds the floor controls in `container`. Options: `loadPoints()` resolving to [{id, name, level}]
 * for the invitation list (rejecting hides it), `moderation` (lock / end all / remove, organisers),
 * `onRemove(pointId, name)`, `onError(text)`.
 */
export class FloorQueueView {
  constructor(floor, container, { loadPoints = null, moderation = false, onRemove = null, onError = () => {} } = {}) {
    this.floor = floor;
    this.onError = onError;
    this.onRemove = onRemove;
    this.moderation = moderation;
    this.points = [];
    this.limit = el("select", { name: "limit", class: "limit", "aria-label": "Giới hạn thời gian · Time limit" },
      ...LIMITS.map(([s, label]) => el("option", { value: String(s) }, label)));
    this.current = el("div", { class: "floor-current", id: "floor-current", dataset: { held: "false" } });
    this.queue = el("ol", { class: "floor-queue", id: "floor-queue" });
    this.inviteSelect = el("select", { name: "invite", "aria-label": "Mời điểm cầu · Invite a point" });
    this.invite = el("div", { class: "floor-invite", hidden: true },
      this.inviteSelect,
      el("button", { type: "button", class: "invite", onclick: () => this._invite() }, "Mời phát biểu · Invite to speak"));
    this.lockButton = el("button", { type: "button", class: "lock", onclick: () => this._do(() => floor.lock(!floor.state.locked)) });
    const tools = el("div", { class: "controls floor-tools" },
      el("label", {}, "Giới hạn thời gian · Time limit", this.limit),
      this.invite,
      moderation ? this.lockButton : null,
      moderation ? confirmButton("Kết thúc tất cả · End all", "Xác nhận kết thúc tất cả? · Confirm end all",
        () => this._do(() => floor.endAll()), { class: "end-all" }) : null);
    this.lockState = el("p", { class: "meta floor-locked", hidden: true }, "🔒 Danh sách phát biểu đang khóa · The queue is locked");
    container.replaceChildren(this.current, tools, this.lockState,
      el("h3", {}, "Xin phát biểu · Raised hands"), this.queue);
    floor.subscribe(() => this.render());
    if (loadPoints) {
      loadPoints().then((points) => { this.points = points; this.invite.hidden = false; this.render(); }).catch(() => {
        this.invite.hidden = true; // this token may not list the points: invitations need the dashboard then
      });
    }
    this._tick = setInterval(() => this._times(), 1000);
    this.render();
  }

  _limitSeconds() {
    const s = Number.parseInt(this.limit.value, 10);
    return s > 0 ? s : null;
  }

  async _do(work) {
    try {
      await work();
      this.onError("");
    } catch (error) {
      this.onError(floorRefusal(error));
    }
  }

  _invite() {
    const id = this.inviteSelect.value;
    if (id) this._do(() => this.floor.grant(id, this._limitSeconds()));
  }

  render() {
    const { current, queue, locked } = this.floor.state;
    this.lockButton.textContent = locked ? "🔓 Mở danh sách · Unlock queue" : "🔒 Khóa danh sách · Lock queue";
    this.lockButton.dataset.locked = String(Boolean(locked));
    this.lockState.hidden = !locked;
    this._renderCurrent(current);
    this.queue.replaceChildren(...queue.map((entry, i) => this._entry(entry, i + 1)));
    if (!queue.length) this.queue.append(el("li", { class: "meta empty" }, "Chưa có điểm cầu xin phát biểu · No raised hands"));
    const chosen = this.inviteSelect.value;
    const holder = current && current.point_id;
    this.inviteSelect.replaceChildren(el("option", { value: "" }, "Chọn điểm cầu… · Choose a point…"),
      ...this.points.filter((p) => p.id !== holder).map((p) => el("option", { value: p.id }, `${p.name} (${levelName(p.level)})`)));
    this.inviteSelect.value = this.points.some((p) => p.id === chosen && p.id !== holder) ? chosen : "";
    this._times();
  }

  _renderCurrent(current) {
    const box = this.current;
    box.dataset.held = String(Boolean(current));
    box.dataset.pointId = current ? current.point_id : "";
    box.dataset.media = current ? current.media || "" : "";
    if (!current) {
      box.replaceChildren(el("p", { class: "meta" }, "Chưa có điểm cầu phát biểu · Nobody holds the floor"));
      return;
    }
    const left = this.floor.warning && this.floor.warning.seconds_left;
    const warning = this.floor.warning
      ? el("span", { class: "warning" }, left ? `⏰ Sắp hết giờ: còn ${left} giây · ${left} s left` : "⏰ Sắp hết giờ · Time almost up")
      : null;
    box.replaceChildren(...[
      el("div", { class: "who" },
        el("strong", { class: "name" }, current.point_name),
        el("span", { class: "level" }, levelName(current.level)),
        el("span", { class: "media", dataset: { media: current.media || "" } }, MEDIA[current.media] || current.media || ""),
        current.muted ? el("span", { class: "muted-badge" }, "🔇 Đã tắt tiếng · Muted") : null),
      current.subject ? el("p", { class: "subject" }, current.subject) : null,
      el("p", { class: "timer meta", dataset: { since: current.granted_at, ends: current.ends_at || "" } }),
      warning,
      el("div", { class: "controls" },
        el("button", { type: "button", class: "end primary", onclick: () => this._do(() => this.floor.end()) }, "Kết thúc phát biểu · End"),
        el("button", { type: "button", class: "mute", onclick: () => this._do(() => this.floor.mute(!current.muted)) },
          current.muted ? "🔊 Bật tiếng · Unmute" : "🔇 Tắt tiếng · Mute"),
        this.moderation && this.onRemove ? this._removeButton(current.point_id, current.point_name) : null),
    ].filter(Boolean));
  }

  _entry(entry, position) {
    return el("li", { class: "floor-entry", dataset: { pointId: entry.point_id } },
      el("span", { class: "position" }, String(position)),
      el("span", { class: "name" }, entry.point_name),
      el("span", { class: "level" }, levelName(entry.level)),
      el("span", { class: "subject" }, entry.subject || ""),
      el("span", { class: "waiting meta", dataset: { since: entry.requested_at } }),
      el("span", { class: "quality meta", title: "Chất lượng đường truyền · Link quality", dataset: { poor: String(poor(entry.quality)) } },
        quality(entry.quality)),
      el("span", { class: "actions" },
        el("button", { type: "button", class: "grant primary", onclick: () => this._do(() => this.floor.grant(entry.point_id, this._limitSeconds())) },
          "Cho phát biểu · Grant"),
        el("button", { type: "button", class: "lower", onclick: () => this._do(() => this.floor.lower(entry.point_id)) }, "Hạ tay · Lower"),
        this.moderation && this.onRemove ? this._removeButton(entry.point_id, entry.point_name) : null));
  }

  _removeButton(pointId, name) {
    return confirmButton("Mời ra · Remove", `Mời ${name} ra? · Confirm`, () => this._do(() => this.onRemove(pointId, name)), { class: "remove" });
  }

  /** Waiting and speaking times, every second without rebuilding the lists. */
  _times() {
    const now = Date.now();
    for (const span of this.queue.querySelectorAll(".waiting")) {
      span.textContent = `chờ · waiting ${duration(secondsSince(span.dataset.since, now))}`;
    }
    const timer = this.current.querySelector(".timer");
    if (timer) {
      let text = `Đã nói · Speaking for ${duration(secondsSince(timer.dataset.since, now))}`;
      if (timer.dataset.ends) text += ` · còn · left ${duration(-secondsSince(timer.dataset.ends, now))}`;
      timer.textContent = text;
    }
  }
}
