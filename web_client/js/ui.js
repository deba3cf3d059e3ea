// Small page helpers shared by the pages.

/**
 * The join link's hash, `#conference=<id>&token=<secret>`; a signed viewer link carries `exp` and
 * `sig` instead of a token, a replay link `recording`. Absent values are "".
 */
export function joinParams() {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const get = (name) => hash.get(name) || "";
  return { conference: get("conference"), token: get("token"), exp: get("exp"), sig: get("sig"), recording: get("recording") };
}

/**
 * Wire the join form (#join-form with inputs #conference and #token). When the hash already carries
 * what `complete` needs (both values) the form is hidden; submitting the form writes them to the hash
 * and calls `onJoin`. Returns whether the page joined from the hash at once.
 */
export function setupJoinForm(onJoin, { complete = (params) => params.conference && params.token } = {}) {
  const form = document.getElementById("join-form");
  const params = joinParams();
  form.conference.value = params.conference;
  form.token.value = params.token;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const conference = form.conference.value.trim();
    const token = form.token.value.trim();
    if (!conference || !token) return;
    history.replaceState(null, "", `#conference=${encodeURIComponent(conference)}&token=${encodeURIComponent(token)}`);
    form.hidden = true;
    onJoin({ conference, token });
  });
  const joined = Boolean(complete(params));
  form.hidden = joined;
  if (joined) onJoin(params);
  return joined;
}

/** Status line: `kind` is one of idle, connecting, connected, live, waiting, reconnecting, unstable, ready, playing, error. */
export function setStatus(element, kind, text) {
  element.dataset.state = kind;
  element.textContent = text;
}
