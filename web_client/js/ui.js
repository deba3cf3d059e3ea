// Small page helpers shared by the speaker and connection-point pages.

/** {conference, token} from the join link's hash `#conference=<id>&token=<secret>` (or nulls). */
export function joinParams() {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  return { conference: hash.get("conference") || "", token: hash.get("token") || "" };
}

/**
 * Wire the join form (#join-form with inputs #conference and #token). When the hash already carries
 * both values the form is hidden; submitting the form writes them to the hash and calls `onJoin`.
 */
export function setupJoinForm(onJoin) {
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
  if (params.conference && params.token) {
    form.hidden = true;
    onJoin(params);
  } else {
    form.hidden = false;
  }
}

/** Status line: `kind` is one of idle, connecting, connected, live, waiting, reconnecting, unstable, error. */
export function setStatus(element, kind, text) {
  element.dataset.state = kind;
  element.textContent = text;
}
