// Connection-point page: how its playback goes, told to the server every 5 s (quality.report over
// the conference WebSocket), and which rendition it receives (full, low, audio only), with a control
// to pin one. The server answers each report with the rendition it sends and the pin (quality.ack);
// a change in between arrives as rendition.changed for our own session, a pin as rendition.pinned.

export const REPORT_MS = 5000;

const RENDITIONS = {
  full: "Đầy đủ · Full picture",
  low: "Hình thấp 640×360 · Low (weak link)",
  audio: "Chỉ âm thanh · Audio only",
};

/** The report's figures from the WHEP peer connection's getStats() (null when not measured). */
export async function playbackFigures(pc) {
  const stats = await pc.getStats();
  let video = null;
  let pairId = null;
  const pairs = new Map();
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") video = s;
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    if (s.type === "candidate-pair") pairs.set(s.id, s);
  });
  const pair = (pairId && pairs.get(pairId)) || [...pairs.values()].find((p) => p.nominated && p.state === "succeeded");
  const num = (value) => (typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : null);
  const emitted = video && video.jitterBufferEmittedCount;
  return {
    frames_decoded: video ? num(video.framesDecoded) ?? 0 : null,
    frames_dropped: video ? num(video.framesDropped) ?? 0 : null,
    freeze_count: video ? num(video.freezeCount) ?? 0 : null,
    total_freeze_duration: video ? num(video.totalFreezesDuration) ?? 0 : null,
    jitter_buffer_delay_ms: emitted ? Math.round((video.jitterBufferDelay / emitted) * 1000 * 10) / 10 : null,
    available_incoming_bitrate: pair ? num(pair.availableIncomingBitrate) : null,
  };
}

export class QualityReporter {
  /**
   * `send(message)`: the event channel's send (false when it is down); `session()`: the WHEP
   * session now (its `pc` and `id`), or null; `view`: `{ line, badge, select, status }` elements.
   */
  constructor({ send, session, view }) {
    this.send = send;
    this.session = session;
    this.view = view;
    this.rendition = null; // what the relay sends us, as it last said
    this.pinned = null;
    this.reports = 0; // reports sent (the browser test reads it)
    this.timer = null;
    view.select.addEventListener("change", () => this.pin(view.select.value || null));
  }

  start() {
    if (this.timer) return;
    this.timer = setInterval(() => { this.report().catch(() => {}); }, REPORT_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  /** One quality.report, when we watch (a WHEP session with a peer connection). */
  async report() {
    const session = this.session();
    if (!session || !session.pc || session.pc.connectionState === "closed") return;
    const figures = await playbackFigures(session.pc);
    const sent = this.send({ type: "quality.report", v: 1, session_id: session.id || null, ...figures,
      rendition: this.rendition });
    if (sent) this.reports += 1;
  }

  pin(rendition) {
    if (!this.send({ type: "rendition.pin", rendition })) {
      this.view.status.textContent = "Chưa kết nối máy chủ, thử lại sau · Not connected to the server, try again shortly";
    } else {
      this.view.status.textContent = "Đang gửi… · Sending…";
    }
  }

  /** The channel's events that concern us; the rest are ignored. */
  applyEvent(event) {
    const session = this.session();
    if (event.type === "quality.ack") {
      if (session && event.session_id && event.session_id !== session.id) return; // an older session's
      this.show(event.rendition, event.pinned);
    } else if (event.type === "rendition.changed") {
      if (session && event.session_id && event.session_id !== session.id) return;
      this.show(event.rendition, this.pinned);
    } else if (event.type === "rendition.pinned") {
      this.view.status.textContent = event.rendition
        ? `Đã cố định · Pinned: ${RENDITIONS[event.rendition]}`
        : "Tự động theo đường truyền · Automatic (follows the link)";
      this.show(this.rendition, event.rendition);
    } else if (event.type === "error" && event.for === "rendition.pin") {
      this.view.status.textContent = `Không đổi được · Refused: ${event.detail}`;
    }
  }

  show(rendition, pinned) {
    this.rendition = rendition || null;
    this.pinned = pinned || null;
    const { line, badge, select } = this.view;
    line.dataset.rendition = this.rendition || "";
    line.textContent = this.rendition
      ? `Đang nhận · Receiving: ${RENDITIONS[this.rendition]}${this.pinned ? " (cố định · pinned)" : ""}`
      : "Chưa nhận hình · Not receiving yet";
    badge.hidden = this.rendition !== "audio";
    badge.textContent = this.pinned === "audio"
      ? "Chỉ âm thanh (đã chọn) · Audio only (pinned)"
      : "Đường truyền yếu: chỉ âm thanh · Weak link: audio only";
    if (document.activeElement !== select) select.value = this.pinned || "";
  }
}
