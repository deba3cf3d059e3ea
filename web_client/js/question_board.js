// The chair's question board (speaker page, dashboard): every question live, newest activity first,
// with select / answer / reject / merge. Items are rebuilt only when their question changed, so an
// answer being typed survives other questions arriving.
import { confirmButton, el } from "./dom.js";
import { clockTime } from "./format.js";
import { authorLabel } from "./questions.js";

const STATUS = {
  open: "Mới · Open",
  selected: "Đang trả lời · Selected",
  answered: "Đã trả lời · Answered",
  rejected: "Từ chối · Rejected",
};

/**
 * `container` gets the board; `filter` is a <select> of statuses ("" = all). Options:
 * `onError(text)`, and `onRemove(question)` to offer removing its author (dashboard only).
 */
export class QuestionBoard {
  constructor(questions, container, { filter = null, onError = () => {}, onRemove = null } = {}) {
    this.questions = questions;
    this.container = container;
    this.filter = filter;
    this.onError = onError;
    this.onRemove = onRemove;
    this.items = new Map(); // id -> {node, key}
    this.drafts = new Map(); // id -> answer being typed
    questions.subscribe(() => this.render());
    if (filter) filter.addEventListener("change", () => this.render());
    this.render();
  }

  async _do(work) {
    try {
      await work();
      this.onError("");
    } catch (error) {
      this.onError(`Không thực hiện được · Failed: ${error.detail || error.message}`);
    }
  }

  render() {
    const wanted = this.filter ? this.filter.value : "";
    const all = this.questions.list();
    const shown = all.filter((q) => (!wanted || q.status === wanted) && (!q.merged_into || wanted));
    const keep = new Set();
    const nodes = shown.map((q) => {
      const key = JSON.stringify(q);
      let item = this.items.get(q.id);
      if (!item || item.key !== key) {
        item = { node: this._item(q), key };
        this.items.set(q.id, item);
      }
      mergeTargets(item.node.querySelector("select[name=into]"), q, all);
      keep.add(q.id);
      return item.node;
    });
    for (const id of [...this.items.keys()]) if (!keep.has(id)) this.items.delete(id);
    // Move nodes only where the order changed: a focused answer box keeps its focus.
    nodes.forEach((node, i) => {
      if (this.container.children[i] !== node) this.container.insertBefore(node, this.container.children[i] || null);
    });
    while (this.container.children.length > nodes.length) this.container.lastElementChild.remove();
    if (!nodes.length) this.container.append(el("li", { class: "meta empty" }, "Chưa có câu hỏi · No questions yet"));
  }

  _item(q) {
    const act = (change) => () => this._do(() => this.questions.update(q.id, change));
    const answer = el("textarea", { name: "answer", rows: 2, maxLength: 2000, placeholder: "Trả lời bằng văn bản · Written answer" });
    answer.value = this.drafts.has(q.id) ? this.drafts.get(q.id) : q.answer || "";
    answer.addEventListener("input", () => this.drafts.set(q.id, answer.value));
    const saveAnswer = () => this._do(async () => {
      await this.questions.update(q.id, { status: "answered", answer: answer.value.trim() || null });
      this.drafts.delete(q.id);
    });
    const into = el("select", { name: "into", "aria-label": "Gộp vào · Merge into" });
    const merge = el("button", { type: "button", class: "merge" }, "Gộp · Merge");
    merge.addEventListener("click", () => {
      if (into.value) this._do(() => this.questions.merge(q.id, into.value));
    });
    const selected = q.status === "selected";
    return el("li", { class: "question", dataset: { questionId: q.id, status: q.status } },
      el("div", { class: "head" },
        el("span", { class: "status" }, STATUS[q.status] || q.status),
        el("span", { class: "author" }, authorLabel(q)),
        el("span", { class: "meta" }, clockTime(q.created_at)),
        q.merged_count ? el("span", { class: "votes", title: "câu hỏi trùng đã gộp · duplicates merged" }, `+${q.merged_count}`) : null,
        q.merged_into ? el("span", { class: "meta" }, "đã gộp · merged") : null),
      el("p", { class: "text" }, q.text),
      q.answer ? el("p", { class: "answer" }, `Trả lời · Answer: ${q.answer}`) : null,
      q.merged_into ? null : el("div", { class: "actions" },
        el("button", { type: "button", class: selected ? "unselect" : "select primary", onclick: act({ status: selected ? "open" : "selected" }) },
          selected ? "Bỏ chọn · Unselect" : "Chọn · Select"),
        el("button", { type: "button", class: "reject", disabled: q.status === "rejected", onclick: act({ status: "rejected" }) }, "Từ chối · Reject"),
        answer,
        el("button", { type: "button", class: "answer-save", onclick: saveAnswer }, "Đã trả lời · Answered"),
        into, merge,
        this.onRemove && (q.point_id || q.member_id)
          ? confirmButton("Mời ra · Remove author", "Xác nhận mời ra? · Confirm removal", () => this.onRemove(q), { class: "remove" })
          : null));
  }
}

/** The questions `q` may be merged into, as the options of `select` (kept when unchanged). */
function mergeTargets(select, q, all) {
  if (!select) return;
  const targets = all.filter((t) => t.id !== q.id && !t.merged_into);
  const key = JSON.stringify(targets.map((t) => [t.id, t.text]));
  if (select.dataset.key === key) return;
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "Gộp vào… · Merge into…"),
    ...targets.map((t) => el("option", { value: t.id }, t.text.length > 60 ? `${t.text.slice(0, 60)}…` : t.text)));
  select.value = targets.some((t) => t.id === chosen) ? chosen : "";
  select.dataset.key = key;
}
