// A connection point on the floor: its camera and microphone published over WHIP with the point's
// own token (the server accepts it only while the point holds the floor), shown in a self-view.
// Ending it stops the tracks and DELETEs the WHIP session, so the hall goes back to the speaker.
import { Supervisor, WhipSession } from "./whip_whep.js";

// A commune's uplink is often a few Mbit/s shared with the room's own viewing: 640×360 keeps the
// point's picture steady there, and it is what the hall's screen needs for a face at a desk.
export const POINT_VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 25 } };
const POINT_AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/** Why getUserMedia failed, for the operator. */
function deviceError(err) {
  if (err.name === "NotAllowedError") return "quyền camera/micro bị từ chối · camera/microphone permission denied";
  if (err.name === "NotFoundError") return "không tìm thấy camera/micro · no camera or microphone found";
  if (err.name === "NotReadableError") return "camera/micro đang bận · the camera or microphone is in use";
  return `${err.name}: ${err.message}`;
}

export class FloorPublisher {
  /**
   * `onStatus(kind, text)`: kind is "starting", "connecting", "live", "reconnecting", "error" or
   * "stopped", text says it for the operator.
   */
  constructor(conference, token, selfView, { onStatus = () => {} } = {}) {
    this.endpoint = `/whip/${encodeURIComponent(conference)}`;
    this.token = token;
    this.selfView = selfView;
    this.onStatus = onStatus;
    this.stream = null;
    this.supervisor = null;
    this.running = false;
  }

  get session() { return this.supervisor && this.supervisor.session; }

  get pc() { return (this.session && this.session.pc) || null; }

  /** Open camera + microphone and publish; a second call while running does nothing. */
  async start() {
    if (this.running) return;
    this.running = true;
    this.onStatus("starting", "Đang mở camera và micro… · Opening the camera and microphone…");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: POINT_VIDEO, audio: POINT_AUDIO });
    } catch (err) {
      this.running = false;
      this.onStatus("error", `Không mở được camera/micro · Cannot open the camera/microphone: ${deviceError(err)}`);
      return;
    }
    if (!this.running) { // stopped while the browser was asking
      stream.getTracks().forEach((t) => t.stop());
      return;
    }
    this.stream = stream;
    this.selfView.srcObject = stream;
    this.selfView.play().catch(() => {});
    this.supervisor = new Supervisor(() => new WhipSession(this.endpoint, this.token, stream), {
      onStatus: (kind, text) => this._status(kind, text),
    });
    this.supervisor.start();
  }

  _status(kind, text) {
    if (!this.running) return;
    if (kind === "connected") this.onStatus("live", "Đang phát biểu · You are speaking");
    else if (kind === "error") this.onStatus("error", `Không phát được · Cannot publish: ${text}`);
    else if (kind === "connecting") this.onStatus("connecting", "Đang kết nối để phát biểu… · Connecting…");
    else this.onStatus("reconnecting", `Đường truyền chập chờn · Link unstable: ${text}`);
  }

  /** Stop publishing: DELETE the WHIP session, release camera and microphone. */
  async stop() {
    if (!this.running && !this.stream) return;
    this.running = false;
    const supervisor = this.supervisor;
    const stream = this.stream;
    this.supervisor = null;
    this.stream = null;
    this.selfView.srcObject = null;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (supervisor) await supervisor.stop();
    this.onStatus("stopped", "Đã dừng phát · Publishing stopped");
  }
}
