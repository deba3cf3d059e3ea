// Written questions as a page knows them: the questions it may see (GET /questions: all of them for
// the chair and organisers, one's own otherwise), the selected question shown to everyone, and the
// actions over REST. Kept current by the WebSocket's question.* events; views subscribe to changes.
//
// Question: {id, text, status: open|selected|answered|rejected, answer, author_kind, author_name,
// point_id, member_id, created_at, updated_at, merged_into, merged_count}.
import { conferencePath, download, requestJson } from "./rest.js";

export const MAX_QUESTION_CHARS = 500;

export class QuestionsClient {
  constructor(conference, token) {
    this.conference = conference;
    this.token = token;
    this.byId = new Map();
    this.selected = null; // {id, text, author_name} or null
    this._listeners = new Set();
  }

  /** `fn(client)` on every change; returns a function that unsubscribes. */
  subscribe(fn) {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  }

  _changed() {
    for (const fn of this._listeners) fn(this);
  }

  /** Every known question, newest activity first. */
  list() {
    return [...this.byId.values()].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
  }

  _put(question) {
    this.byId.set(question.id, question);
    if (question.status === "selected") this.selected = { id: question.id, text: question.text, author_name: question.author_name };
    else if (this.selected && this.selected.id === question.id) this.selected = null;
  }

  /** Take what concerns questions from a WebSocket message; true when it did. */
  applyEvent(event) {
    if (event.type === "question.submitted" || event.type === "question.updated") {
      const { type: _type, v: _v, ...question } = event; // the event is the question plus its type
      if (!question.id) return false;
      this._put(question);
      this._changed();
      return true;
    }
    if (event.type === "question.selected") {
      this.selected = event.id ? { id: event.id, text: event.text, author_name: event.author_name } : null;
      // The previously selected question of the list is no longer selected (the server's
      // question.updated for it may follow; this keeps the board right meanwhile).
      for (const q of this.byId.values()) {
        if (q.status === "selected" && q.id !== event.id) this.byId.set(q.id, { ...q, status: "open" });
      }
      this._changed();
      return true;
    }
    if (event.type === "snapshot" && event.question !== undefined) {
      // The question on screen when the channel (re)connects: {id, text, author_name} or null.
      this.selected = event.question && event.question.id ? event.question : null;
      this._changed();
      return true;
    }
    return false;
  }

  /** GET /questions (optionally `?status=`): replaces what the page knows. */
  async refresh(status = "") {
    const query = status ? `?status=${encodeURIComponent(status)}` : "";
    const answer = await requestJson(this.token, "GET", this._url(query));
    const items = Array.isArray(answer) ? answer : (answer && answer.questions) || [];
    this.byId.clear();
    let selected = null;
    for (const q of items) {
      this.byId.set(q.id, q);
      if (q.status === "selected") selected = { id: q.id, text: q.text, author_name: q.author_name };
    }
    if (selected || !status) this.selected = selected;
    this._changed();
    return items;
  }

  async submit(text) {
    const question = await requestJson(this.token, "POST", this._url(), { text });
    if (question && question.id) { this._put(question); this._changed(); }
    return question;
  }

  /** PATCH: `{status, answer}` (either may be left out). */
  async update(id, change) {
    const question = await requestJson(this.token, "PATCH", this._url(`/${encodeURIComponent(id)}`), change);
    if (question && question.id) {
      if (question.status === "selected") {
        for (const q of this.byId.values()) {
          if (q.status === "selected" && q.id !== question.id) this.byId.set(q.id, { ...q, status: "open" });
        }
      }
      this._put(question);
      this._changed();
    }
    return question;
  }

  /** Merge question `id` into `into` (a duplicate of it). */
  async merge(id, into) {
    const answer = await requestJson(this.token, "POST", this._url(`/${encodeURIComponent(id)}/merge`), { into });
    await this.refresh().catch(() => {});
    return answer;
  }

  exportCsv() {
    return download(this.token, this._url("/export.csv"), "questions.csv");
  }

  _url(path = "") {
    return conferencePath(this.conference, `/questions${path}`);
  }
}

/** The author as the board shows it: the name, and what kind of participant. */
export function authorLabel(question) {
  const kinds = { point: "Điểm cầu", member: "Đảng viên", viewer: "Người xem", organiser: "Ban tổ chức", speaker: "Diễn giả" };
  const kind = kinds[question.author_kind] || question.author_kind || "";
  return question.author_name ? `${question.author_name} (${kind})` : kind;
}

/** Why a question was refused, in the operator's words. */
export function questionRefusal(error) {
  if (error && error.status === 422) return `Câu hỏi không hợp lệ (1–${MAX_QUESTION_CHARS} ký tự) · Invalid question (1–${MAX_QUESTION_CHARS} characters): ${error.detail}`;
  if (error && error.status === 429) {
    const s = error.retryAfter;
    return s ? `Gửi quá nhiều câu hỏi, vui lòng chờ ${s} giây · Too many questions, please wait ${s} s`
      : "Gửi quá nhiều câu hỏi, vui lòng chờ một phút · Too many questions, please wait a minute";
  }
  return `Không gửi được · Not sent: ${(error && (error.detail || error.message)) || ""}`;
}
