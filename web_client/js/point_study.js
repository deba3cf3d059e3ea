// The point page's study tools: the operator submits essays for delegates without a device, and,
// when the conference uses remote supervision and the operator consents, a small JPEG of the room
// goes to the server every few seconds (never a second video stream on a weak link).
import { authorisedFetch } from "./api.js";
import { el } from "./dom.js";
import { essayForm, essayState } from "./essay_form.js";
import { conferencePath, requestJson } from "./rest.js";
import { joinParams } from "./ui.js";

const SNAPSHOT_WIDTH = 320;
const SNAPSHOT_HEIGHT = 180;
const SNAPSHOT_QUALITY = 0.5;

/** Captures the room camera into a small JPEG and posts it every `interval` seconds while on. */
export class RoomSnapshots {
  constructor(conference, token, intervalSeconds, onStatus) {
    this.url = conferencePath(conference, "/supervision/snapshots");
    this.token = token;
    this.interval = intervalSeconds * 1000;
    this.onStatus = onStatus;
    this.sent = 0;
    this.timer = null;
    this.stream = null;
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: false });
    this.video = el("video", { muted: true, playsInline: true });
    this.video.srcObject = this.stream;
    await this.video.play();
    this.canvas = el("canvas", { width: SNAPSHOT_WIDTH, height: SNAPSHOT_HEIGHT });
    await this.send();
    this.timer = setInterval(() => this.send(), this.interval);
  }

  async send() {
    this.canvas.getContext("2d").drawImage(this.video, 0, 0, SNAPSHOT_WIDTH, SNAPSHOT_HEIGHT);
    const blob = await new Promise((resolve) => this.canvas.toBlob(resolve, "image/jpeg", SNAPSHOT_QUALITY));
    const r = await authorisedFetch(this.token, this.url, { method: "POST", headers: { "Content-Type": "image/jpeg" }, body: blob });
    if (r.ok) this.sent += 1;
    this.onStatus(r.ok ? `Đã gửi ${this.sent} ảnh (${Math.round(blob.size / 1024)} KB)` : `Không gửi được ảnh (${r.status})`);
  }

  stop() {
    clearInterval(this.timer);
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
  }
}

async function mountSnapshots(card, conference, token) {
  const settings = await requestJson(token, "GET", conferencePath(conference, "/supervision/snapshots/settings"));
  if (!settings.enabled) return;
  const status = el("span", { id: "snapshot-status", class: "meta" }, "Chưa bật");
  let sender = null;
  const consent = el("input", { type: "checkbox", id: "snapshot-consent" });
  consent.addEventListener("change", async () => {
    if (consent.checked) {
      sender = new RoomSnapshots(conference, token, settings.interval_seconds, (text) => { status.textContent = text; });
      window.diemcauSnapshots = sender;
      try { await sender.start(); } catch (err) { status.textContent = `Không mở được camera: ${err.message}`; consent.checked = false; }
    } else if (sender) {
      sender.stop();
      status.textContent = "Đã tắt";
    }
  });
  card.append(el("h3", {}, "Giám sát từ xa"),
    el("p", { class: "meta" }, `Hội nghị dùng giám sát từ xa: khi đồng ý, trang gửi một ảnh nhỏ của phòng họp mỗi ${settings.interval_seconds} giây.`),
    el("label", {}, consent, " Đồng ý gửi ảnh phòng họp "), status);
}

async function mountEssays(card, conference, token) {
  let assignment;
  try {
    assignment = await requestJson(token, "GET", conferencePath(conference, "/essays/assignment"));
  } catch (_) {
    return; // no assignment yet
  }
  const members = await requestJson(token, "GET", conferencePath(conference, "/essays"));
  if (!members.length) return;
  const formSlot = el("div", { id: "on-behalf-form" });
  const select = el("select", { id: "on-behalf-member" }, el("option", { value: "" }, "— Chọn đảng viên —"),
    ...members.map((m) => el("option", { value: m.member_id }, `${m.member}${m.submitted ? " ✓" : ""}`)));
  const state = el("p", { class: "meta", id: "on-behalf-state" });
  select.addEventListener("change", async () => {
    if (!select.value) { formSlot.replaceChildren(); state.textContent = ""; return; }
    const essay = await requestJson(token, "GET", conferencePath(conference, `/essays/members/${encodeURIComponent(select.value)}`));
    state.textContent = essayState(essay);
    essayForm(formSlot, conference, token, select.value, assignment, essay, (saved) => {
      state.textContent = essayState(saved);
      select.selectedOptions[0].textContent = `${saved.member} ✓`;
    });
  });
  card.append(el("h3", {}, "Nộp bài thu hoạch hộ đảng viên"),
    el("p", { class: "meta" }, "Cho đảng viên của điểm cầu không có thiết bị; bài được ghi là điểm cầu gửi hộ."),
    select, state, formSlot);
}

async function mount() {
  const { conference, token } = joinParams();
  const slot = document.getElementById("study-slot");
  if (!conference || !token || !slot) return;
  const card = el("section", { class: "card study", id: "study-card" }, el("h2", {}, "Học tập, bài thu hoạch, giám sát"));
  await Promise.all([mountEssays(card, conference, token).catch(() => {}), mountSnapshots(card, conference, token).catch(() => {})]);
  if (card.children.length > 1) {
    slot.replaceChildren(card);
    slot.hidden = false;
  }
  slot.dataset.ready = "true"; // what the conference offers this point is known (tests wait on it)
}

mount();
