// JSON calls to the REST API for the pages' live features (floor, questions, moderation): one place
// that turns a refusal into an HttpError carrying the server's own reason and its Retry-After.
import { authorisedFetch } from "./api.js";
import { httpError } from "./whip_whep.js";

/** `/api/v1/conferences/<id>` + `path`, the id escaped. */
export function conferencePath(conference, path = "") {
  return `/api/v1/conferences/${encodeURIComponent(conference)}${path}`;
}

/**
 * `method` `url` with the token and an optional JSON body; resolves to the parsed JSON answer (null
 * when it has none). A non-2xx answer rejects with an HttpError (`status`, `detail`, and
 * `retryAfter` in seconds when the server sent one, e.g. with 429).
 */
export async function requestJson(token, method, url, body = undefined) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await authorisedFetch(token, url, options);
  } catch (err) {
    throw new Error(`không kết nối được máy chủ · cannot reach the server (${err.message})`);
  }
  if (!response.ok) {
    const error = await httpError(response);
    const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    error.retryAfter = Number.isFinite(retry) ? retry : null;
    throw error;
  }
  const text = await response.text();
  if (!text) return null;
  try { return JSON.parse(text); } catch (_) { return null; }
}

/** A GET of `url` saved as `filename` (the token goes in a header, never in the link). */
export async function download(token, url, filename) {
  const response = await authorisedFetch(token, url);
  if (!response.ok) throw await httpError(response);
  const blob = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = blob;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(blob), 60000);
}
