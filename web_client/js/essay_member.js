// The member's own page (viewer.html with a member's link): attendance, replay progress, the essay
// assignment, their essay's status and grade, and the form to submit or revise it until the deadline.
import { el } from "./dom.js";
import { ATTENDANCE_LABELS, essayForm, essayState } from "./essay_form.js";
import { conferencePath, requestJson } from "./rest.js";
import { joinParams } from "./ui.js";

function render(slot, conference, token, me) {
  const card = el("section", { class: "card essay", id: "essay-card" }, el("h2", {}, "Học tập và bài thu hoạch"));
  const attendance = ATTENDANCE_LABELS[me.attendance] || me.attendance;
  const replay = me.replay_percent !== null && me.replay_percent !== undefined ? ` · đã xem lại ${me.replay_percent}% ghi hình` : "";
  card.append(el("p", { id: "essay-attendance" }, `${attendance}${replay}`));
  const state = el("p", { id: "essay-state", class: "essay-state" }, essayState(me.essay));
  if (me.essay.grade) {
    state.append(el("br"), el("span", { id: "essay-grade" }, `Nhận xét: ${me.essay.grade.comment || "—"}`));
  }
  card.append(state);
  if (!me.assignment) {
    card.append(el("p", { class: "meta" }, "Ban tổ chức chưa giao bài thu hoạch."));
  } else {
    const deadline = new Date(me.assignment.deadline);
    card.append(el("p", {}, el("strong", {}, "Đề bài: "), me.assignment.prompt),
      el("p", { class: "meta" }, `Hạn nộp: ${deadline.toLocaleString("vi-VN")}`
        + (deadline < new Date() ? (me.assignment.accept_late ? " (đã quá hạn: bài nộp sẽ bị ghi là muộn)" : " (đã hết hạn nộp)") : "")));
    const formSlot = el("div");
    card.append(formSlot);
    essayForm(formSlot, conference, token, me.essay.member_id, me.assignment, me.essay, (essay) => {
      state.textContent = essayState(essay);
    });
  }
  slot.replaceChildren(card);
  slot.hidden = false;
}

async function mount() {
  const { conference, token } = joinParams();
  const slot = document.getElementById("essay-slot");
  if (!conference || !token || !slot) return;
  try {
    render(slot, conference, token, await requestJson(token, "GET", conferencePath(conference, "/essays/me")));
  } catch (_) {
    // not a member's link (a viewer's): the page has no study section
  }
}

mount();
