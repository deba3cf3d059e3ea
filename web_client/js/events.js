// Conference event channel (WebSocket /ws/conferences/{id}?token=...), reconnected when it drops.
//
// The server first sends {"type": "snapshot", "live": bool, "consumers": N}, then bus events such as
// consumer.joined / consumer.left (with the new "consumers" count) and speaker.live / speaker.offline.
import { backoffDelay, MAX_DELAY_MS, MIN_DELAY_MS } from "./backoff.js";

export class ConferenceEvents {
  constructor(conferenceId, token, { onEvent = () => {}, onState = () => {}, minDelayMs = MIN_DELAY_MS, maxDelayMs = MAX_DELAY_MS } = {}) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = `${scheme}//${location.host}/ws/conferences/${encodeURIComponent(conferenceId)}?token=${encodeURIComponent(token)}`;
    this.onEvent = onEvent;
    this.onState = onState;
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.ws = null;
    this.running = false;
    this.failures = 0;
    this.connects = 0;
    this._timer = null;
    this._ping = null;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this._connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this._timer);
    clearInterval(this._ping);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  /** Send a message on the channel; false when it is not open (the caller says so to the user). */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  _connect() {
    if (!this.running) return;
    this.onState("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.connects += 1;
      this.onState("open");
      clearInterval(this._ping);
      this._ping = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
      }, 20000);
    };
    ws.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (_) { return; }
      if (event.type === "snapshot") this.failures = 0;
      this.onEvent(event);
    };
    ws.onclose = (close) => {
      if (this.ws !== ws) return;
      clearInterval(this._ping);
      this.ws = null;
      if (!this.running) return;
      const delay = backoffDelay(this.failures, this.minDelayMs, this.maxDelayMs);
      this.failures += 1;
      // 4401: the token is not (or no longer) valid for this conference: revoked, expired, removed.
      this.onState("closed", delay, close.code);
      this._timer = setTimeout(() => this._connect(), delay);
    };
  }
}

/**
 * What the live pages (speaker, point) do on joining: remember the conference and token in `state`,
 * show the conference id, and open the event channel as `state.events`.
 */
export function joinConference(state, { conference, token }, onEvent, onState = undefined) {
  state.conference = conference;
  state.token = token;
  document.getElementById("conference-label").textContent = conference;
  state.events = new ConferenceEvents(conference, token, { onEvent, onState });
  state.events.start();
}
