// A supervisor's page (their phone, at a point during a session): check in with a rating and a
// note; the team's visits so far; the wall of room snapshots when the conference uses them.
import { el } from "./dom.js";
import { conferencePath, requestJson } from "./rest.js";
import { SnapshotWall } from "./study_dashboard.js";
import { setStatus, setupJoinForm } from "./ui.js";

const $ = (id) => document.getElementById(id);

async function loadVisits(conference, token) {
  const visits = await requestJson(token, "GET", conferencePath(conference, "/supervision/visits"));
  $("visit-list").replaceChildren(...visits.map((v) => el("li", {},
    `${v.point} · ${new Date(v.visited_at).toLocaleString("vi-VN")} · ${v.rating}/5${v.note ? ` · ${v.note}` : ""}`)));
}

async function start({ conference, token }) {
  try {
    const points = await requestJson(token, "GET", conferencePath(conference, "/supervision/points"));
    $("visit-point").replaceChildren(...points.map((p) => el("option", { value: p.id }, p.district && p.district !== p.name ? `${p.name} (${p.district})` : p.name)));
    await loadVisits(conference, token);
  } catch (err) {
    setStatus($("status"), "error", `Không mở được: ${err.detail || err.message}`);
    return;
  }
  $("visit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await requestJson(token, "POST", conferencePath(conference, "/supervision/visits"),
        { point_id: $("visit-point").value, rating: Number($("visit-rating").value), note: $("visit-note").value });
      setStatus($("status"), "ready", "Đã ghi nhận");
      $("visit-note").value = "";
      await loadVisits(conference, token);
    } catch (err) {
      setStatus($("status"), "error", `Không ghi nhận được: ${err.detail || err.message}`);
    }
  });
  const wall = new SnapshotWall(conference, token, { organiser: false });
  $("wall-slot").replaceChildren(wall.card);
  wall.run();
}

setupJoinForm(start);
