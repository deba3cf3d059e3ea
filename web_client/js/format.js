// How the live pages write levels, times and durations (Vietnamese first, as everywhere).

const LEVELS = { province: "Tỉnh · Province", district: "Huyện · District", commune: "Xã · Commune" };

/** "Xã · Commune" for "commune"; an unknown level as it came. */
export function levelName(level) {
  return LEVELS[level] || level || "";
}

/** "08:05" in local time, "" for nothing. */
export function clockTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString("vi-VN", { hour: "2-digit", minute: "2-digit" });
}

/** "1:05" (m:ss), or "1:02:05" past an hour; negative counts as 0. */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** Seconds from `iso` until now (the page's clock). */
export function secondsSince(iso, now = Date.now()) {
  return iso ? (now - new Date(iso).getTime()) / 1000 : 0;
}
