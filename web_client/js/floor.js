// The floor as a page knows it: the last FloorState the server sent (GET /floor, or a floor.state
// message on the conference WebSocket) and the floor's actions over REST. Views subscribe to changes.
//
// FloorState: {"v": 1, "locked", "current": null | {point_id, point_name, level, subject, granted_at,
// limit_seconds, ends_at, muted, media}, "queue": [{point_id, point_name, level, subject,
// requested_at, quality}]} (viewers and members get no queue).
import { conferencePath, requestJson } from "./rest.js";

const EMPTY = { v: 1, locked: false, current: null, queue: [] };

export class FloorClient {
  constructor(conference, token) {
    this.conference = conference;
    this.token = token;
    this.state = { ...EMPTY };
    this.known = false; // a state has arrived from the server
    this.warning = null; // the last floor.warning event of the current holder, cleared when it changes
    this._listeners = new Set();
  }

  /** `fn(state, client)` on every change; returns a function that unsubscribes. */
  subscribe(fn) {
    this._listeners.add(fn);
    if (this.known) fn(this.state, this);
    return () => this._listeners.delete(fn);
  }

  _set(state) {
    const before = this.state.current;
    this.state = { ...EMPTY, ...state, queue: Array.isArray(state.queue) ? state.queue : [] };
    const after = this.state.current;
    if (!after || !before || after.point_id !== before.point_id || after.granted_at !== before.granted_at) this.warning = null;
    this.known = true;
    for (const fn of this._listeners) fn(this.state, this);
  }

  /** Take what concerns the floor from a WebSocket message; true when it did. */
  applyEvent(event) {
    if (event.type === "floor.state") {
      this._set(event);
      return true;
    }
    if (event.type === "floor.warning") {
      this.warning = event;
      for (const fn of this._listeners) fn(this.state, this);
      return true;
    }
    return false;
  }

  /** GET /floor (also after an action, in case the WebSocket is down). */
  async refresh() {
    this._set(await requestJson(this.token, "GET", this._url()));
    return this.state;
  }

  /** Position (1-based) of `pointId` in the queue, 0 when it is not queued. */
  position(pointId) {
    return this.state.queue.findIndex((entry) => entry.point_id === pointId) + 1;
  }

  holds(pointId) {
    return Boolean(pointId && this.state.current && this.state.current.point_id === pointId);
  }

  // The actions: each resolves once the server accepted it (the new state follows), or rejects with
  // an HttpError whose `detail` is the server's reason.
  raise(subject) { return this._act("POST", "/requests", { subject: subject || "" }); }
  lower(pointId) { return this._act("DELETE", `/requests/${encodeURIComponent(pointId)}`); }
  grant(pointId, limitSeconds = null) { return this._act("POST", "/grant", { point_id: pointId, limit_seconds: limitSeconds }); }
  end() { return this._act("POST", "/end"); }
  mute(muted) { return this._act("POST", "/mute", { muted: Boolean(muted) }); }
  lock(locked) { return this._act("POST", "/lock", { locked: Boolean(locked) }); }
  endAll() { return this._act("POST", "/end-all"); }
  history() { return requestJson(this.token, "GET", this._url("/history")); }

  _url(path = "") {
    return conferencePath(this.conference, `/floor${path}`);
  }

  async _act(method, path, body) {
    const answer = await requestJson(this.token, method, this._url(path), body);
    // The answer is the new state when the route returns one; else ask for it.
    if (answer && typeof answer === "object" && "queue" in answer && "current" in answer) this._set(answer);
    else this.refresh().catch(() => {});
    return answer;
  }
}

/** Why an action was refused, for the page (the server's reason, Vietnamese first where we know it). */
export function floorRefusal(error) {
  const known = {
    409: "Không thực hiện được lúc này · Not possible now",
    403: "Không được phép · Not allowed",
    404: "Không tìm thấy · Not found",
  };
  const status = error && error.status;
  const head = known[status] || "Lỗi · Error";
  return `${head}: ${(error && (error.detail || error.message)) || ""}`;
}
