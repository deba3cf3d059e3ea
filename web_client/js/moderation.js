// Removing a participant from a conference (organisers): every token of that point, member or single
// token is revoked at once; the server closes its sessions and WebSockets and takes it off the floor.
import { conferencePath, requestJson } from "./rest.js";

/** POST /moderation/remove with `who` = {point_id} | {member_id} | {token_id}. */
export function removeParticipant(token, conference, who) {
  return requestJson(token, "POST", conferencePath(conference, "/moderation/remove"), who);
}

/**
 * The dashboard's removal form: `select` (a point) or `tokenInput` (a token id), confirmed by a
 * second press of `button` within 5 s; `status` says what happened.
 */
export function wireRemoveForm({ form, select, tokenInput, button, status }, token, conference, onRemoved = () => {}) {
  const label = button.textContent;
  let armed = null;
  const disarm = () => { clearTimeout(armed); armed = null; button.textContent = label; delete button.dataset.armed; };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const pointId = select.value;
    const tokenId = tokenInput.value.trim();
    if (!pointId && !tokenId) {
      status.textContent = "Chọn điểm cầu hoặc nhập mã token · Choose a point or enter a token id";
      return;
    }
    if (!armed) {
      button.textContent = "Xác nhận mời ra? · Confirm removal";
      button.dataset.armed = "true";
      armed = setTimeout(disarm, 5000);
      return;
    }
    disarm();
    const who = pointId ? { point_id: pointId } : { token_id: tokenId };
    const name = pointId ? select.selectedOptions[0].textContent : tokenId;
    try {
      await removeParticipant(token, conference, who);
      status.dataset.state = "removed";
      status.textContent = `Đã mời ra · Removed: ${name}`;
      select.value = "";
      tokenInput.value = "";
      onRemoved(who);
    } catch (error) {
      status.dataset.state = "error";
      status.textContent = `Không mời ra được · Not removed: ${error.detail || error.message}`;
    }
  });
}
