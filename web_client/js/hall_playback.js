// The hall's screen and loudspeakers while a connection point holds the floor: the speaker page opens
// a WHEP session with the speaker token while a point is on the floor and closes it when the floor
// ends. The server sends that session the point's video and the point's audio only (never the hall's
// own microphone back: no echo); the session stays open through a point's link loss (the server
// falls back to the speaker's picture meanwhile) and through a hand-over to the next point.
import { Supervisor, WhepSession } from "./whip_whep.js";

export class HallPlayback {
  /**
   * `video`: the <video> that plays the point (unmuted when the browser allows it, see `unmute`);
   * `onStatus(kind, text)` as the Supervisor's.
   */
  constructor(conference, token, video, { onStatus = () => {} } = {}) {
    this.endpoint = `/whep/${encodeURIComponent(conference)}`;
    this.token = token;
    this.video = video;
    this.onStatus = onStatus;
    this.supervisor = null;
  }

  get running() { return Boolean(this.supervisor && this.supervisor.running); }

  get session() { return this.supervisor && this.supervisor.session; }

  get pc() { return (this.session && this.session.pc) || null; }

  /** Follow the floor: play while someone holds it, stop when nobody does. */
  follow(floorState) {
    if (floorState.current && !this.running) this.start();
    else if (!floorState.current && this.supervisor) this.stop();
  }

  start() {
    if (this.running) return;
    this.supervisor = new Supervisor(() => new WhepSession(this.endpoint, this.token), {
      onStatus: this.onStatus,
      onSession: (session) => {
        this.video.srcObject = session.stream;
        this.play();
      },
    });
    this.supervisor.start();
  }

  /** The speaker must hear the point: play with sound, or muted (and say so) when autoplay refuses. */
  play() {
    this.video.muted = false;
    return this.video.play().then(() => true).catch(() => {
      this.video.muted = true;
      this.video.play().catch(() => {});
      return false;
    });
  }

  async stop() {
    const supervisor = this.supervisor;
    this.supervisor = null;
    this.video.srcObject = null;
    if (supervisor) await supervisor.stop();
  }
}
