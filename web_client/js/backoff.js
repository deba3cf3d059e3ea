// The one reconnect schedule of the pages (WHIP/WHEP sessions, the event WebSocket, the HLS viewer):
// exponential, bounded, with jitter so that a room full of points does not reconnect in step.

export const MIN_DELAY_MS = 1000;
export const MAX_DELAY_MS = 15000;

/** Delay before the next attempt after `failures` failed ones in a row: min·2^failures, capped, ±20 %. */
export function backoffDelay(failures, minDelayMs = MIN_DELAY_MS, maxDelayMs = MAX_DELAY_MS) {
  const base = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(failures, 10));
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}
