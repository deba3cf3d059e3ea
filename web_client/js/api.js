// Calls to the server with the caller's token in the Authorization header, never in a URL: browser
// history and server and proxy logs keep URLs.

/** fetch() with `Authorization: Bearer <token>` added to the caller's own headers. */
export function authorisedFetch(token, url, options = {}) {
  return fetch(url, { ...options, headers: { ...options.headers, Authorization: `Bearer ${token}` } });
}
