// WHIP (RFC 9725) and WHEP client for the browser.
//
// The server does not support trickle ICE: every session is one POST carrying an offer with all
// candidates (we wait for ICE gathering to complete), answered by 201 + Location + SDP answer.
// DELETE on the Location ends the session. ICE servers come only from the server's
// `Link: <...>; rel="ice-server"` headers (OPTIONS on the endpoint); none advertised means none used.
import { authorisedFetch } from "./api.js";
import { backoffDelay, MAX_DELAY_MS, MIN_DELAY_MS } from "./backoff.js";

/** A non-2xx answer from the server; `message` carries the server's own explanation. */
export class HttpError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.name = "HttpError";
    this.status = status;
    this.detail = detail;
  }

  /** 4xx other than 408/429 will not get better by retrying (bad token, unknown conference...). */
  get permanent() {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

/** Build an HttpError from a response, using FastAPI's {"detail": ...} when present. */
export async function httpError(response) {
  let detail = response.statusText || "request failed";
  try {
    const text = await response.text();
    if (text) {
      detail = text;
      try {
        const body = JSON.parse(text);
        if (typeof body.detail === "string") detail = body.detail;
        else if (Array.isArray(body.detail)) detail = body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
      } catch (_) { /* plain-text body */ }
    }
  } catch (_) { /* body unreadable */ }
  return new HttpError(response.status, detail);
}

/**
 * Parse `Link` header value(s) into RTCIceServer objects (RFC 9725 section 4.6).
 * Several headers arrive joined with ", "; commas inside <...> or quotes are respected.
 */
export function parseIceLinks(header) {
  const servers = [];
  if (!header) return servers;
  const links = [];
  let current = "";
  let inAngle = false;
  let inQuote = false;
  for (const ch of header) {
    if (ch === "<" && !inQuote) inAngle = true;
    else if (ch === ">" && !inQuote) inAngle = false;
    else if (ch === '"' && !inAngle) inQuote = !inQuote;
    if (ch === "," && !inAngle && !inQuote) {
      links.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  links.push(current);
  for (const link of links) {
    const m = /^\s*<([^>]*)>(.*)$/s.exec(link);
    if (!m) continue;
    const params = {};
    const re = /;\s*([A-Za-z0-9_-]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*)))?/g;
    let p;
    while ((p = re.exec(m[2])) !== null) {
      params[p[1].toLowerCase()] = (p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3]) ?? "";
    }
    if (!(params.rel || "").split(/\s+/).includes("ice-server")) continue;
    const server = { urls: m[1].trim() };
    if (params.username !== undefined) server.username = params.username;
    if (params.credential !== undefined) server.credential = params.credential;
    servers.push(server);
  }
  return servers;
}

/** ICE servers advertised by the server for this endpoint; [] when none or on any error. */
export async function fetchIceServers(endpoint, token) {
  try {
    const options = { method: "OPTIONS", signal: AbortSignal.timeout(5000) };
    const response = await (token ? authorisedFetch(token, endpoint, options) : fetch(endpoint, options));
    if (!response.ok) return [];
    return parseIceLinks(response.headers.get("Link"));
  } catch (_) {
    return [];
  }
}

/** Resolves when ICE gathering is complete, or after `timeoutMs` with what has been gathered. */
export function waitIceGathering(pc, timeoutMs = 5000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", onState);
      pc.removeEventListener("icecandidate", onCandidate);
      resolve();
    };
    const onState = () => { if (pc.iceGatheringState === "complete") finish(); };
    const onCandidate = (event) => { if (!event.candidate) finish(); };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener("icegatheringstatechange", onState);
    pc.addEventListener("icecandidate", onCandidate);
  });
}

/** Rank video codecs: H.264 packetization-mode=1 (Constrained Baseline first), then other H.264, VP8, rest. */
function videoCodecRank(codec) {
  const mime = codec.mimeType.toLowerCase();
  const fmtp = (codec.sdpFmtpLine || "").toLowerCase();
  if (mime === "video/h264") {
    const mode1 = /packetization-mode=1/.test(fmtp);
    const cb = /profile-level-id=42e0/.test(fmtp);
    return mode1 ? (cb ? 0 : 1) : 3;
  }
  if (mime === "video/vp8") return 4;
  if (/\/(rtx|red|ulpfec|flexfec)/.test(mime)) return 9; // repair formats: keep, after the media codecs
  return 5;
}

/** Put H.264 first in the offer when the browser lets us (setCodecPreferences). Returns true if applied. */
export function preferH264(transceiver) {
  if (typeof transceiver.setCodecPreferences !== "function") return false;
  const sources = [
    () => RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("video"),
    () => RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities("video"),
  ];
  for (const source of sources) {
    try {
      const codecs = (source() || {}).codecs || [];
      if (!codecs.some((c) => c.mimeType.toLowerCase() === "video/h264")) continue;
      const ordered = codecs
        .map((c, i) => ({ c, i, r: videoCodecRank(c) }))
        .sort((a, b) => a.r - b.r || a.i - b.i)
        .map((x) => x.c);
      transceiver.setCodecPreferences(ordered);
      return true;
    } catch (_) { /* try the next capability list */ }
  }
  return false;
}

let sessionCounter = 0;

/**
 * One WHIP or WHEP session: RTCPeerConnection + the server resource at `url` (the Location).
 * Subclasses add transceivers in `_prepare(pc)`.
 */
class Session {
  constructor(endpoint, token, { iceServers = null, timeoutMs = 15000 } = {}) {
    this.endpoint = new URL(endpoint, document.baseURI).href;
    this.token = token;
    this.iceServers = iceServers; // null: ask the server (OPTIONS); [] means none
    this.timeoutMs = timeoutMs;
    this.pc = null;
    this.url = null; // session resource (absolute)
    this.id = null; // last path segment of the Location
    this.seq = ++sessionCounter;
    this.closed = false;
  }

  async open() {
    if (this.iceServers === null) this.iceServers = await fetchIceServers(this.endpoint, this.token);
    if (this.closed) throw new Error("session closed");
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    this._prepare(pc);
    await pc.setLocalDescription(await pc.createOffer());
    await waitIceGathering(pc);
    if (this.closed) throw new Error("session closed");
    let response;
    try {
      response = await authorisedFetch(this.token, this.endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new Error(`cannot reach the server (${err.name === "TimeoutError" ? "timeout" : err.message})`);
    }
    if (response.status !== 201) throw await httpError(response);
    const location = response.headers.get("Location");
    if (!location) throw new Error("server answered 201 without a Location header");
    this.url = new URL(location, this.endpoint).href;
    this.id = new URL(this.url).pathname.split("/").filter(Boolean).pop() || null;
    const answer = await response.text();
    if (this.closed) {
      this._delete();
      throw new Error("session closed");
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    await this._negotiated(pc);
    return this;
  }

  _prepare(_pc) {}

  async _negotiated(_pc) {}

  _delete(keepalive = false) {
    if (!this.url) return Promise.resolve(null);
    const url = this.url;
    this.url = null;
    return authorisedFetch(this.token, url, { method: "DELETE", keepalive }).catch(() => null);
  }

  /** End the session: DELETE the resource (a 404 means the server already dropped it) and close the peer. */
  async close({ keepalive = false } = {}) {
    this.closed = true;
    const pending = this._delete(keepalive);
    if (this.pc) this.pc.close();
    await pending;
  }
}

/** The low rendition a publisher may send itself: its camera scaled to this height, at this bitrate. */
export const LOW_RENDITION = { height: 360, maxBitrate: 450_000 };

/** The one encoding of the low rendition's sender for `track`: scaled down to `low.height`, never up. */
function lowEncoding(track, low) {
  const height = track.getSettings().height || low.height;
  return { scaleResolutionDownBy: Math.max(1, height / low.height), maxBitrate: low.maxBitrate };
}

/**
 * WHIP publisher: sends the tracks of `stream` (sendonly), H.264 preferred for video. With
 * `options.low` (e.g. LOW_RENDITION) it also sends the camera a second time, scaled down: the
 * offer's second video m-line, which the server takes as this publisher's own low rendition (the
 * browser encodes both sizes, the server transcodes nothing).
 */
export class WhipSession extends Session {
  constructor(endpoint, token, stream, options = {}) {
    super(endpoint, token, options);
    this.stream = stream;
    this.low = options.low || null;
    this.lowSender = null;
    this.h264Preferred = false;
  }

  _prepare(pc) {
    for (const track of this.stream.getTracks()) {
      const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
      if (track.kind === "video") this.h264Preferred = preferH264(transceiver);
    }
    const video = this.stream.getVideoTracks()[0];
    if (this.low && video) { // after the full picture's m-line: the second video m-line is the low one
      const transceiver = pc.addTransceiver(video, {
        direction: "sendonly", streams: [this.stream], sendEncodings: [lowEncoding(video, this.low)],
      });
      preferH264(transceiver);
      this.lowSender = transceiver.sender;
    }
  }

  /** Send `stream`'s tracks instead (another camera or microphone): no renegotiation. */
  async replaceStream(stream) {
    this.stream = stream;
    if (!this.pc) return;
    for (const sender of this.pc.getSenders()) {
      const track = stream.getTracks().find((t) => sender.track && t.kind === sender.track.kind);
      if (!track) continue;
      await sender.replaceTrack(track);
      if (sender === this.lowSender) {
        const params = sender.getParameters();
        if (params.encodings && params.encodings.length) {
          Object.assign(params.encodings[0], lowEncoding(track, this.low));
          await sender.setParameters(params).catch(() => {});
        }
      }
    }
  }

  async _negotiated(pc) {
    // A relay never re-encodes: keep the source resolution and let the frame rate give way instead.
    for (const sender of pc.getSenders()) {
      if (!sender.track || sender.track.kind !== "video") continue;
      try {
        const params = sender.getParameters();
        params.degradationPreference = "maintain-resolution";
        await sender.setParameters(params);
      } catch (_) { /* optional */ }
    }
  }
}

/** WHEP player: receives audio + video (recvonly); `stream` fills as tracks arrive. */
export class WhepSession extends Session {
  constructor(endpoint, token, options = {}) {
    super(endpoint, token, options);
    this.stream = new MediaStream();
    this.ontrack = null;
  }

  _prepare(pc) {
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", (event) => {
      this.stream.addTrack(event.track);
      if (this.ontrack) this.ontrack(event.track, this.stream);
    });
  }
}

/**
 * Keeps one session alive: opens it, watches the link, and opens a new one with bounded exponential
 * backoff when it drops (peer connection failed, disconnected longer than `graceMs`, DTLS closed by the
 * server, or `drop()` called, e.g. after a WebSocket event saying the server ended the session).
 * Permanent errors (bad token, unknown conference, unusable offer) stop it with the server's message.
 */
export class Supervisor {
  constructor(factory, {
    onStatus = () => {},
    onSession = () => {},
    minDelayMs = MIN_DELAY_MS,
    maxDelayMs = MAX_DELAY_MS,
    graceMs = 4000,
    connectTimeoutMs = 20000,
  } = {}) {
    this.factory = factory;
    this.onStatus = onStatus;
    this.onSession = onSession;
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.graceMs = graceMs;
    this.connectTimeoutMs = connectTimeoutMs;
    this.session = null;
    this.running = false;
    this.failures = 0; // consecutive, reset once connected
    this.reconnects = 0; // sessions opened after the first
    this.connecting = false;
    this.connected = false;
    this.lastError = "";
    this._timers = new Set();
    this._opened = 0;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.failures = 0;
    this._open();
  }

  async stop() {
    this.running = false;
    this._clearTimers();
    const session = this.session;
    this.session = null;
    this.connected = false;
    if (session) await session.close();
  }

  /** The current session is gone (server said so, or the link is dead): replace it. */
  drop(reason) {
    if (!this.running || !this.session) return;
    const session = this.session;
    this.session = null;
    this.connected = false;
    this._clearTimers();
    session.close().catch(() => {});
    this.lastError = `link lost (${reason})`;
    this.onStatus("reconnecting", `Link lost (${reason}); reconnecting…`);
    this._schedule();
  }

  _later(fn, ms) {
    const t = setTimeout(() => { this._timers.delete(t); fn(); }, ms);
    this._timers.add(t);
    return t;
  }

  _clearTimers() {
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
  }

  _schedule() {
    if (!this.running) return;
    const delay = backoffDelay(this.failures, this.minDelayMs, this.maxDelayMs);
    this.failures += 1;
    this.onStatus("reconnecting", `Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
    this._later(() => this._open(), delay);
  }

  async _open() {
    if (!this.running) return;
    const session = this.factory();
    this.session = session;
    this.connecting = true;
    this.onStatus("connecting", "Connecting…");
    try {
      await session.open();
    } catch (err) {
      this.connecting = false;
      if (this.session !== session) return; // stopped or replaced meanwhile
      this.session = null;
      session.close().catch(() => {});
      if (err instanceof HttpError && err.permanent) {
        this.running = false;
        this.onStatus("error", `Server refused: ${err.message}`);
        return;
      }
      this.lastError = err.message;
      this.onStatus("reconnecting", `Failed: ${err.message}`);
      this._schedule();
      return;
    }
    this.connecting = false;
    if (this.session !== session || !this.running) {
      session.close().catch(() => {});
      return;
    }
    if (this._opened++ > 0) this.reconnects += 1;
    this.onSession(session);
    this._watch(session);
  }

  _watch(session) {
    const pc = session.pc;
    let graceTimer = null;
    const alive = () => this.session === session && this.running;
    const connectTimer = this._later(() => {
      if (alive() && pc.connectionState !== "connected") this.drop("no connection");
    }, this.connectTimeoutMs);
    const check = () => {
      if (!alive()) return;
      const state = pc.connectionState;
      if (state === "connected") {
        clearTimeout(connectTimer);
        if (graceTimer) { clearTimeout(graceTimer); this._timers.delete(graceTimer); graceTimer = null; }
        this.failures = 0;
        this.connected = true;
        this.onStatus("connected", "Connected");
      } else if (state === "failed" || state === "closed") {
        this.drop(`connection ${state}`);
      } else if (state === "disconnected" && !graceTimer) {
        this.onStatus("unstable", "Link unstable…");
        graceTimer = this._later(() => {
          graceTimer = null;
          if (alive() && pc.connectionState !== "connected") this.drop("disconnected");
        }, this.graceMs);
      }
    };
    pc.addEventListener("connectionstatechange", check);
    // The server ending the session closes DTLS (close_notify): notice it without waiting for ICE.
    for (const transceiver of pc.getTransceivers()) {
      const dtls = (transceiver.receiver && transceiver.receiver.transport) || (transceiver.sender && transceiver.sender.transport);
      if (dtls && !dtls._watched) {
        dtls._watched = true;
        dtls.addEventListener("statechange", () => {
          if (alive() && (dtls.state === "closed" || dtls.state === "failed")) this.drop(`DTLS ${dtls.state}`);
        });
      }
    }
    check();
  }
}

/**
 * On leaving the page, end the supervised session (`state.supervisor`) with a keepalive DELETE, so
 * the server frees it at once instead of waiting for ICE to time out.
 */
export function closeOnPageHide(state) {
  window.addEventListener("pagehide", () => {
    const session = state.supervisor && state.supervisor.session;
    if (session) session.close({ keepalive: true });
  });
}

/**
 * `window.diemcau` (and `window.pc`) for operators' consoles and the browser tests: the page's
 * `state`, its supervisor, session and peer connection, plus the page's own `extra` members.
 */
export function exposeForConsole(state, extra = {}) {
  window.diemcau = Object.defineProperties({ state }, {
    ...Object.getOwnPropertyDescriptors(extra),
    supervisor: { get: () => state.supervisor, enumerable: true },
    session: { get: () => state.supervisor && state.supervisor.session, enumerable: true },
    pc: { get: () => (state.supervisor && state.supervisor.session && state.supervisor.session.pc) || null, enumerable: true },
  });
  Object.defineProperty(window, "pc", { get: () => window.diemcau.pc, configurable: true });
}
