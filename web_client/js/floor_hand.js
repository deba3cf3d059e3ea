// The connection point's side of the floor: raise or lower its hand with a subject, see where it is
// in the queue, and speak when the chair grants it (camera + microphone over WHIP, see
// floor_publish.js) until the chair ends it, the time runs out or the point gives it back.
import { duration, secondsSince } from "./format.js";
import { floorRefusal } from "./floor.js";
import { FloorPublisher } from "./floor_publish.js";

/**
 * Wires the point page's floor card. `elements`: form (with input `subject`), raise, lower, status,
 * error, speaking (the block shown while speaking), selfView, timer, giveBack, publishStatus.
 * `pointId()` returns this page's point id (known from the WebSocket snapshot).
 */
export class FloorHand {
  constructor(floor, elements, pointId) {
    this.floor = floor;
    this.el = elements;
    this.pointId = pointId;
    this.publisher = new FloorPublisher(floor.conference, floor.token, elements.selfView, {
      onStatus: (kind, text) => this._publishStatus(kind, text),
    });
    this.phase = "idle"; // idle | queued | speaking | ended
    this.busy = false;
    elements.form.addEventListener("submit", (event) => { event.preventDefault(); this.raise(); });
    elements.lower.addEventListener("click", () => this.lower());
    elements.giveBack.addEventListener("click", () => this.giveBack());
    floor.subscribe(() => this.render());
    this._tick = setInterval(() => this._renderTimer(), 1000);
  }

  async _do(work) {
    if (this.busy) return;
    this.busy = true;
    this.el.error.textContent = "";
    this._buttons();
    try {
      await work();
    } catch (error) {
      this.el.error.textContent = floorRefusal(error);
    } finally {
      this.busy = false;
      this._buttons();
    }
  }

  raise() {
    const subject = this.el.form.subject.value.trim();
    return this._do(() => this.floor.raise(subject));
  }

  lower() {
    const id = this.pointId();
    if (id) return this._do(() => this.floor.lower(id));
    return null;
  }

  /** "Kết thúc phát biểu": the holder gives the floor back (POST /floor/end). */
  giveBack() {
    return this._do(() => this.floor.end());
  }

  render() {
    const id = this.pointId();
    const state = this.floor.state;
    const holds = this.floor.holds(id);
    const position = id ? this.floor.position(id) : 0;
    if (holds) this.phase = "speaking";
    else if (this.phase === "speaking") this.phase = "ended";
    else if (position) this.phase = "queued";
    else if (this.phase === "queued") this.phase = "idle";

    if (holds) this.publisher.start();
    else if (this.publisher.running || this.publisher.stream) this.publisher.stop();

    const status = this.el.status;
    status.dataset.floor = this.phase;
    if (this.phase === "speaking") {
      status.textContent = state.current.muted
        ? "Đang phát biểu — chủ tọa đã tắt micro của điểm cầu · Speaking — the chair muted your microphone"
        : "Đang phát biểu · You have the floor";
    } else if (this.phase === "queued") {
      status.textContent = `Đang chờ phát biểu: thứ ${position}/${state.queue.length} · In the queue: ${position} of ${state.queue.length}`;
    } else if (this.phase === "ended") {
      status.textContent = "Đã kết thúc phát biểu · Your turn has ended";
    } else if (state.locked) {
      status.textContent = "Danh sách phát biểu đang khóa · The queue is locked";
    } else {
      status.textContent = "Chưa xin phát biểu · Not in the queue";
    }
    status.dataset.position = String(position);
    const other = state.current && !holds ? state.current.point_name : "";
    this.el.holder.textContent = other ? `Đang phát biểu: ${other} · Speaking now: ${other}` : "";
    this.el.speaking.hidden = !holds;
    this._buttons();
    this._renderTimer();
  }

  _buttons() {
    const queued = this.phase === "queued";
    const speaking = this.phase === "speaking";
    this.el.raise.disabled = this.busy || speaking || !this.pointId() || (this.floor.state.locked && !queued);
    this.el.raise.textContent = queued ? "Sửa nội dung · Update subject" : "✋ Xin phát biểu · Raise hand";
    this.el.lower.hidden = !queued;
    this.el.lower.disabled = this.busy;
    this.el.giveBack.disabled = this.busy || !speaking;
  }

  _renderTimer() {
    const current = this.floor.state.current;
    if (this.phase !== "speaking" || !current) { this.el.timer.textContent = ""; return; }
    let text = `Đã nói · Speaking for ${duration(secondsSince(current.granted_at))}`;
    if (current.ends_at) {
      const left = -secondsSince(current.ends_at);
      text += ` · còn · left ${duration(left)}`;
      const warned = Boolean(this.floor.warning);
      this.el.timer.dataset.warning = String(warned || left <= 30);
      if (warned) text += " · ⏰ Sắp hết giờ · Time almost up";
    } else {
      this.el.timer.dataset.warning = "false";
    }
    this.el.timer.textContent = text;
  }

  _publishStatus(kind, text) {
    this.el.publishStatus.dataset.state = kind;
    this.el.publishStatus.textContent = this.phase === "speaking" || kind === "error" ? text : "";
    if (kind === "error") this.el.error.textContent = text;
  }
}
