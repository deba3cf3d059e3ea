// A participant's side of the questions: write one (POST /questions), see one's own with their
// status and the chair's answer, and the question the chair selected (shown to every point).
import { el } from "./dom.js";
import { clockTime } from "./format.js";
import { MAX_QUESTION_CHARS, questionRefusal } from "./questions.js";

const STATUS = {
  open: "Đang chờ · Waiting",
  selected: "Đang được trả lời · Being answered",
  answered: "Đã trả lời · Answered",
  rejected: "Không được chọn · Not taken",
};

/** The selected question (`questions.selected`) in `target`; hidden when there is none. */
export function showSelected(questions, target) {
  const render = () => {
    const selected = questions.selected;
    target.hidden = !selected;
    target.dataset.questionId = selected ? selected.id : "";
    target.replaceChildren();
    if (!selected) return;
    target.append(
      el("span", { class: "label" }, "Câu hỏi đang được trả lời · Question on the floor"),
      el("q", { class: "text" }, selected.text),
    );
    if (selected.author_name) target.append(el("span", { class: "author" }, selected.author_name));
  };
  questions.subscribe(render);
  render();
}

/**
 * Wire the question form: `form` (a textarea `text`, a submit button), `counter` (characters left),
 * `status` (sent / refused, with the server's reason), `mine` (a list of one's own questions).
 */
export function questionBox(questions, { form, counter, status, mine, isMine = null }) {
  const input = form.text;
  const sentHere = new Set();
  // GET /questions gives a participant its own questions plus the selected one, which may be another's
  // (then without its author's point or member id: those are shown only to the chair and the author).
  const own = (q) => sentHere.has(q.id) || (isMine ? isMine(q)
    : Boolean(q.point_id || q.member_id) || !(questions.selected && questions.selected.id === q.id));
  input.maxLength = MAX_QUESTION_CHARS;
  const count = () => {
    counter.textContent = `${input.value.length}/${MAX_QUESTION_CHARS}`;
  };
  input.addEventListener("input", count);
  count();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.dataset.state = "sending";
    status.textContent = "Đang gửi… · Sending…";
    try {
      const question = await questions.submit(text);
      if (question && question.id) { sentHere.add(question.id); render(); }
      input.value = "";
      count();
      status.dataset.state = "sent";
      status.textContent = "Đã gửi câu hỏi · Question sent";
    } catch (error) {
      status.dataset.state = "error";
      status.dataset.code = String(error.status || "");
      status.textContent = questionRefusal(error);
    } finally {
      button.disabled = false;
    }
  });

  const render = () => {
    mine.replaceChildren(...questions.list().filter(own).map((q) => el("li", { dataset: { questionId: q.id, status: q.status } },
      el("span", { class: "text" }, q.text),
      el("span", { class: "meta" }, ` ${clockTime(q.created_at)} · ${STATUS[q.status] || q.status}`),
      q.answer ? el("p", { class: "answer" }, `Trả lời · Answer: ${q.answer}`) : null)));
  };
  questions.subscribe(render);
  render();
}
