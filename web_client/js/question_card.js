// The question card of the pages without the conference's event channel (live HLS viewer, replay):
// members and viewers ask in writing before, during or after the conference, see their own
// questions with the chair's answers, and the question on the floor, looked up every 30 s.
import { el } from "./dom.js";
import { questionBox, showSelected } from "./question_box.js";
import { MAX_QUESTION_CHARS, QuestionsClient } from "./questions.js";

const REFRESH_MS = 30000;

/** Build the card in `slot` (emptied first) for `token` of `conference`; returns the client. */
export function mountQuestionCard(slot, conference, token) {
  const questions = new QuestionsClient(conference, token);
  const selected = el("div", { class: "selected-question", id: "selected-question", hidden: true });
  const form = el("form", { class: "question-form", id: "question-form" },
    el("textarea", { name: "text", id: "question-text", rows: 3, required: true,
      placeholder: "Câu hỏi gửi chủ tọa · Your question to the chair" }),
    el("div", { class: "controls" },
      el("button", { type: "submit", id: "question-submit", class: "primary" }, "Gửi câu hỏi · Send"),
      el("span", { id: "question-count", class: "meta" }, `0/${MAX_QUESTION_CHARS}`)));
  const status = el("p", { id: "question-status", class: "meta", role: "status" });
  const mine = el("ul", { id: "my-questions", class: "my-questions" });
  slot.replaceChildren(el("section", { class: "card questions" },
    el("h2", {}, "Đặt câu hỏi · Ask a question"), selected, form, status, mine));
  slot.hidden = false;
  showSelected(questions, selected);
  questionBox(questions, { form, counter: form.querySelector("#question-count"), status, mine });
  const refresh = () => questions.refresh().catch(() => {});
  refresh();
  setInterval(refresh, REFRESH_MS);
  return questions;
}
