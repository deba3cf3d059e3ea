// The floor's history for organisers (GET /floor/history): who asked, who spoke, for how long, on
// what subject, and why it ended, newest last, as the conference report has it.
import { el } from "./dom.js";
import { clockTime, duration } from "./format.js";

const KINDS = {
  requested: "xin phát biểu · raised hand",
  lowered: "rút lại · lowered",
  granted: "được phát biểu · granted",
  ended: "kết thúc · ended",
  muted: "bị tắt tiếng · muted",
  unmuted: "bật lại tiếng · unmuted",
  locked: "khóa danh sách · queue locked",
  unlocked: "mở danh sách · queue unlocked",
};
const REASONS = {
  chair: "chủ tọa kết thúc · by the chair",
  returned: "tự kết thúc · given back",
  time_limit: "hết giờ · time limit",
  link_lost: "mất kết nối · link lost",
  removed: "bị mời ra · removed",
  end_all: "kết thúc tất cả · end all",
};

/** Fill `list` with the history's events. */
export function renderFloorHistory(list, events) {
  list.replaceChildren(...events.map((e) => el("li", { dataset: { kind: e.kind } },
    el("span", { class: "meta" }, clockTime(e.at)), " ",
    e.point_name ? el("strong", {}, e.point_name) : null, " ",
    KINDS[e.kind] || e.kind,
    e.subject ? ` — ${e.subject}` : "",
    e.duration_seconds !== null && e.duration_seconds !== undefined ? ` (${duration(e.duration_seconds)})` : "",
    e.reason ? ` · ${REASONS[e.reason] || e.reason}` : "")));
  if (!events.length) list.append(el("li", { class: "meta" }, "Chưa có · Nothing yet"));
}
