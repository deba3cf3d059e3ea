// The organiser dashboard's study section: the roll-up (charts drawn by the server, the province tree
// coloured by submission rate, who has not submitted), the proposals with search and exports, the
// remote-supervision wall (latest room snapshot per point, by district) and the supervision visits.
import { authorisedFetch } from "./api.js";
import { el } from "./dom.js";
import { conferencePath, download, requestJson } from "./rest.js";
import { joinParams } from "./ui.js";

const WALL_REFRESH_MS = 5000;

/** Server-drawn SVG/HTML (names escaped by the server) parsed into nodes. */
function markup(html) {
  const doc = new DOMParser().parseFromString(`<div>${html}</div>`, "text/html");
  return doc.body.firstChild;
}

async function openReport(token, url) {
  const r = await authorisedFetch(token, url);
  const page = URL.createObjectURL(new Blob([await r.text()], { type: "text/html" }));
  window.open(page, "_blank");
}

function rollupCard(conference, token, data) {
  const t = data.totals;
  const csv = (table, label) => el("button", { type: "button",
    onclick: () => download(token, conferencePath(conference, `/essays/rollup.csv?table=${table}`), `bai-thu-hoach-${table}.csv`) }, label);
  const missing = data.not_submitted.slice(0, 30).map((m) => el("li", {}, `${m.name} · ${m.point || "—"}${m.district ? ` (${m.district})` : ""}`));
  return el("section", { class: "card study-rollup", id: "study-rollup" },
    el("h2", {}, "Bài thu hoạch · tổng hợp"),
    el("p", { id: "study-totals" },
      `${t.members} đảng viên · tham dự ${t.attended} (học bù ${t.replay}) · đã nộp ${t.submitted} (đúng hạn ${t.on_time}, muộn ${t.late}) · đã chấm ${t.graded}`),
    el("div", { class: "charts" }, markup(data.charts.participation_svg), markup(data.charts.grades_svg)),
    el("h3", {}, "Tỷ lệ nộp bài theo đơn vị"), markup(data.charts.tree_html),
    el("h3", {}, `Chưa nộp (${data.not_submitted.length})`), el("ul", { id: "not-submitted" }, ...missing),
    el("p", {}, csv("districts", "CSV theo huyện"), " ", csv("points", "CSV theo điểm cầu"), " ",
      csv("not_submitted", "CSV chưa nộp"), " ", csv("essays", "CSV các bài")));
}

function proposalsCard(conference, token) {
  const list = el("ul", { id: "proposal-list" });
  const counts = el("p", { class: "meta", id: "proposal-counts" });
  const status = el("p", { class: "meta", role: "status" });
  const search = el("input", { type: "search", placeholder: "Tìm đề xuất (không cần dấu)" });
  const recipient = el("input", { type: "text", value: "Ban Tuyên giáo Tỉnh ủy", maxlength: "200", "aria-label": "Chuyển đến" });
  let merging = null; // the duplicate picked to be merged into the next proposal chosen
  const act = async (path, body, done) => {
    try {
      await requestJson(token, "POST", conferencePath(conference, `/proposals/${path}`), body);
      status.textContent = done;
    } catch (err) {
      status.textContent = `Không thực hiện được: ${err.detail || err.message}`;
    }
    merging = null;
    await load();
  };
  const item = (p) => el("li", { dataset: { id: p.id } },
    `[${p.field_label}] ${p.title} — ${p.member}, ${p.point}${p.duplicates ? ` (+${p.duplicates} trùng)` : ""}`
      + (p.forwarded_at ? ` ✓ đã chuyển ${p.forwarded_to}` : ""), " ",
    p.forwarded_at ? null : el("button", { type: "button", class: "forward",
      onclick: () => act(`${p.id}/forward`, { to: recipient.value }, "Đã đánh dấu đã chuyển") }, "Đánh dấu đã chuyển"), " ",
    merging === null
      ? el("button", { type: "button", class: "merge", onclick: () => { merging = p.id; status.textContent = `Chọn đề xuất để gộp "${p.title}" vào`; load(); } }, "Gộp (trùng)")
      : merging === p.id ? null
        : el("button", { type: "button", class: "merge-into", onclick: () => act(`${merging}/merge`, { into: p.id }, "Đã gộp") }, "Gộp vào đây"));
  const load = async () => {
    const q = encodeURIComponent(search.value.trim());
    const data = await requestJson(token, "GET", conferencePath(conference, `/proposals?q=${q}`));
    counts.replaceChildren(`${data.total} đề xuất · ` + data.by_field.map((g) => `${g.label}: ${g.count}`).join(" · "),
      el("br"), "Theo huyện: " + data.by_district.map((g) => `${g.label}: ${g.count}`).join(" · "));
    list.replaceChildren(...data.proposals.slice(0, 100).map(item));
  };
  search.addEventListener("input", () => load().catch(() => {}));
  load().catch(() => {});
  return el("section", { class: "card study-proposals" }, el("h2", {}, "Đề xuất, kiến nghị"), search,
    el("label", {}, " Chuyển đến ", recipient), counts, list, status,
    el("p", {},
      el("button", { type: "button", onclick: () => download(token, conferencePath(conference, "/proposals/export.csv"), "de-xuat.csv") }, "CSV đề xuất"), " ",
      el("button", { type: "button", onclick: () => openReport(token, conferencePath(conference, "/proposals/report.html")) }, "Báo cáo để in")));
}

/** The latest room snapshot of every point, by district; `organiser`: with the opt-in switch. */
export class SnapshotWall {
  constructor(conference, token, { organiser = true } = {}) {
    this.conference = conference;
    this.token = token;
    this.images = new Map(); // snapshot id -> blob URL
    this.grid = el("div", { id: "snapshot-wall", class: "snapshot-wall" });
    this.toggle = el("input", { type: "checkbox", id: "snapshots-enabled", disabled: !organiser });
    this.toggle.addEventListener("change", () => this.setEnabled(this.toggle.checked));
    this.card = el("section", { class: "card study-wall" }, el("h2", {}, "Giám sát từ xa · ảnh phòng họp"),
      el("label", {}, this.toggle, " Dùng giám sát từ xa cho hội nghị này (các điểm cầu gửi ảnh khi người vận hành đồng ý)"),
      this.grid);
  }

  /** Refresh now and then every few seconds. */
  run() {
    const tick = () => this.refresh().catch(() => {}).finally(() => setTimeout(tick, WALL_REFRESH_MS));
    tick();
  }

  async setEnabled(enabled) {
    await requestJson(this.token, "PUT", conferencePath(this.conference, "/supervision/snapshots/settings"), { enabled });
  }

  async image(snapshot) {
    if (!this.images.has(snapshot.id)) {
      const r = await authorisedFetch(this.token, snapshot.url);
      if (!r.ok) return "";
      this.images.set(snapshot.id, URL.createObjectURL(await r.blob()));
    }
    return this.images.get(snapshot.id);
  }

  async refresh() {
    const wall = await requestJson(this.token, "GET", conferencePath(this.conference, "/supervision/snapshots"));
    this.toggle.checked = wall.enabled;
    const groups = [];
    for (const group of wall.districts) {
      const tiles = [];
      for (const p of group.points) {
        const src = p.snapshot ? await this.image(p.snapshot) : "";
        tiles.push(el("figure", { class: "tile", dataset: { point: p.point_id } },
          src ? el("img", { src, alt: p.point, width: 160, height: 90 }) : el("div", { class: "no-image" }, "Chưa có ảnh"),
          el("figcaption", {}, p.point, p.snapshot ? ` · ${new Date(p.snapshot.taken_at).toLocaleTimeString("vi-VN")}` : "")));
      }
      groups.push(el("div", { class: "district" }, el("h3", {}, group.district || "Cấp tỉnh"), el("div", { class: "tiles" }, ...tiles)));
    }
    this.grid.replaceChildren(...groups);
  }
}

async function visitsCard(conference, token) {
  const visits = await requestJson(token, "GET", conferencePath(conference, "/supervision/visits"));
  return el("section", { class: "card study-visits" }, el("h2", {}, `Đoàn giám sát đã đến (${visits.length})`),
    el("ul", { id: "visit-list" }, ...visits.map((v) => el("li", {},
      `${v.point}${v.district ? ` (${v.district})` : ""} · ${new Date(v.visited_at).toLocaleString("vi-VN")} · ${v.supervisor} · ${v.rating}/5 · ${v.note}`))));
}

async function mount() {
  const { conference, token } = joinParams();
  const slot = document.getElementById("study-slot");
  if (!conference || !token || !slot) return;
  let data;
  try {
    data = await requestJson(token, "GET", conferencePath(conference, "/essays/rollup"));
  } catch (_) {
    return; // not an organiser's link
  }
  const wall = new SnapshotWall(conference, token);
  slot.replaceChildren(rollupCard(conference, token, data), proposalsCard(conference, token), wall.card,
    await visitsCard(conference, token));
  slot.hidden = false;
  wall.run();
}

mount();
