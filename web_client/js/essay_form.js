// The essay form shared by the member's page and the point operator's page: typed text or a file
// (PDF, DOCX, ODT), and the proposals part (title + field per proposal). One submit sends both.
import { authorisedFetch } from "./api.js";
import { el } from "./dom.js";
import { conferencePath, requestJson } from "./rest.js";
import { httpError } from "./whip_whep.js";

export const ATTENDANCE_LABELS = {
  live: "Đã tham dự trực tiếp", point: "Đã tham dự tại điểm cầu", replay: "Đã học bù qua ghi hình", absent: "Chưa tham dự",
};

function proposalRow(fields, proposal = { title: "", field: "other", detail: "" }) {
  const select = el("select", { name: "field" },
    ...Object.entries(fields).map(([key, label]) => el("option", { value: key, selected: key === proposal.field }, label)));
  const row = el("div", { class: "proposal-row" },
    el("input", { type: "text", name: "title", value: proposal.title, maxlength: "300", placeholder: "Tên đề xuất" }),
    select,
    el("button", { type: "button", class: "remove", onclick: () => row.remove() }, "Xóa"));
  return row;
}

/** Describe an essay's state in one line: submitted when, late, by whom, grade. */
export function essayState(essay) {
  if (!essay.submitted) return "Chưa nộp bài thu hoạch";
  const when = new Date(essay.submitted_at).toLocaleString("vi-VN");
  const by = essay.submitted_by === "point" ? " (điểm cầu gửi hộ)" : essay.submitted_by === "organiser" ? " (ban tổ chức gửi hộ)" : "";
  const grade = essay.grade ? ` · Xếp loại: ${essay.grade.grade}` : " · Chưa chấm";
  return `Đã nộp lúc ${when}${essay.late ? " (nộp muộn)" : ""}${by} · lần ${essay.revisions}${grade}`;
}

/**
 * A form in `slot` that sends member `memberId`'s essay with `token`; `assignment` gives the fields;
 * `essay` the current version (to revise). `onSaved(essay)` runs after each accepted submission.
 */
export function essayForm(slot, conference, token, memberId, assignment, essay, onSaved) {
  const status = el("p", { class: "meta essay-status", role: "status" });
  const text = el("textarea", { name: "text", rows: 8, maxlength: "100000", placeholder: "Nội dung bài thu hoạch" });
  text.value = essay && essay.submitted && !essay.filename ? essay.text : "";
  const file = el("input", { type: "file", name: "file", accept: ".pdf,.docx,.odt" });
  const rows = el("div", { class: "proposals" });
  for (const p of (essay && essay.proposals) || []) rows.append(proposalRow(assignment.fields, p));
  const add = el("button", { type: "button", class: "add-proposal", onclick: () => rows.append(proposalRow(assignment.fields)) }, "+ Thêm đề xuất");
  const proposals = () => [...rows.querySelectorAll(".proposal-row")]
    .map((r) => ({ title: r.querySelector("[name=title]").value.trim(), field: r.querySelector("[name=field]").value }))
    .filter((p) => p.title);
  const submit = async (event) => {
    event.preventDefault();
    status.textContent = "Đang gửi…";
    try {
      const base = conferencePath(conference, `/essays/members/${encodeURIComponent(memberId)}`);
      let saved;
      if (file.files.length) {
        const body = new FormData();
        body.append("file", file.files[0]);
        body.append("proposals", JSON.stringify(proposals()));
        const r = await authorisedFetch(token, `${base}/file`, { method: "POST", body });
        if (!r.ok) throw await httpError(r);
        saved = await r.json();
      } else {
        saved = await requestJson(token, "PUT", base, { text: text.value, proposals: proposals() });
      }
      file.value = "";
      status.textContent = `Đã lưu · ${essayState(saved)}`;
      onSaved(saved);
    } catch (err) {
      status.textContent = `Không gửi được: ${err.detail || err.message}`;
    }
  };
  const form = el("form", { class: "essay-form", onsubmit: submit },
    el("label", {}, "Bài viết", text),
    el("label", {}, "Hoặc tải tệp (PDF, DOCX, ODT) ", file),
    el("h3", {}, "Đề xuất, kiến nghị"), rows, add,
    el("p", {}, el("button", { type: "submit", class: "primary" }, essay && essay.submitted ? "Nộp lại (sửa bài)" : "Nộp bài")),
    status);
  slot.replaceChildren(form);
  return form;
}
