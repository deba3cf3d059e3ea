// The grader's page: the essays of the members in its part of the province, each opened to read
// (text, file, proposals), graded on the assignment's scale with a comment; regrading keeps history.
import { el } from "./dom.js";
import { essayState } from "./essay_form.js";
import { conferencePath, download, requestJson } from "./rest.js";
import { setStatus, setupJoinForm } from "./ui.js";

const $ = (id) => document.getElementById(id);
const state = { conference: "", token: "", assignment: null };

async function openEssay(memberId) {
  const essay = await requestJson(state.token, "GET", conferencePath(state.conference, `/essays/members/${encodeURIComponent(memberId)}`));
  const view = $("essay-view");
  const grade = el("select", { id: "grade" }, ...state.assignment.scale.map((g) => el("option", { value: g }, g)));
  const comment = el("textarea", { id: "comment", rows: 3, maxlength: "5000", placeholder: "Nhận xét" });
  const result = el("p", { class: "meta", role: "status" });
  const form = el("form", { class: "essay-form", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await requestJson(state.token, "POST", conferencePath(state.conference, `/essays/members/${encodeURIComponent(memberId)}/grade`),
        { grade: grade.value, comment: comment.value });
      result.textContent = "Đã lưu xếp loại";
      await Promise.all([openEssay(memberId), loadList()]);
    } catch (err) {
      result.textContent = `Không lưu được: ${err.detail || err.message}`;
    }
  } }, el("label", {}, "Xếp loại ", grade), el("label", {}, "Nhận xét", comment),
  el("button", { type: "submit", class: "primary" }, essay.grade ? "Chấm lại" : "Chấm"), result);
  const file = essay.file_url ? el("button", { type: "button", onclick: () => download(state.token, essay.file_url, essay.filename) },
    `Tải tệp ${essay.filename}`) : null;
  view.replaceChildren(
    el("h2", {}, `${essay.member} · ${essay.point}`),
    el("p", { class: "essay-state" }, essayState(essay)),
    file,
    el("pre", { class: "essay-text", style: "white-space: pre-wrap" }, essay.text || ""),
    el("h3", {}, "Đề xuất"),
    el("ul", {}, ...essay.proposals.map((p) => el("li", {}, `[${state.assignment.fields[p.field] || p.field}] ${p.title}`))),
    essay.submitted ? form : null,
    essay.grade_history.length ? el("h3", {}, "Lịch sử chấm") : null,
    el("ul", { id: "grade-history" }, ...essay.grade_history.map((g) =>
      el("li", {}, `${g.grade} · ${g.grader} · ${new Date(g.graded_at).toLocaleString("vi-VN")}${g.comment ? ` · ${g.comment}` : ""}`))));
  view.hidden = false;
}

async function loadList() {
  const rows = await requestJson(state.token, "GET", conferencePath(state.conference, `/essays?status=${$("filter").value}`));
  $("essay-rows").replaceChildren(...rows.map((r) => el("tr", { dataset: { member: r.member_id } },
    el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); openEssay(r.member_id); } }, r.member)),
    el("td", {}, r.point),
    el("td", {}, r.submitted ? `${new Date(r.submitted_at).toLocaleDateString("vi-VN")}${r.late ? " (muộn)" : ""}` : "—"),
    el("td", {}, r.grade || ""))));
  setStatus($("status"), "ready", `${rows.length} đảng viên`);
}

async function start({ conference, token }) {
  Object.assign(state, { conference, token });
  try {
    state.assignment = await requestJson(token, "GET", conferencePath(conference, "/essays/assignment"));
    $("conference-label").textContent = state.assignment.prompt;
    $("filter").addEventListener("change", () => loadList().catch(() => {}));
    await loadList();
  } catch (err) {
    setStatus($("status"), "error", `Không mở được: ${err.detail || err.message}`);
  }
}

setupJoinForm(start);
