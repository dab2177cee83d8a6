// Formatting helpers: relative times, sizes, address lists.

const UNITS = ["B", "kB", "MB", "GB"];

export function size(bytes) {
  let n = Number(bytes) || 0;
  let unit = 0;
  while (n >= 1000 && unit < UNITS.length - 1) {
    n /= 1000;
    unit += 1;
  }
  return `${unit === 0 || n >= 10 ? Math.round(n) : n.toFixed(1)} ${UNITS[unit]}`;
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const WEEKDAY = new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });
const DAY = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const FULL_DAY = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

/** "just now", "5 min", "3 h", "Mon 14:02", "Mar 3", "Mar 3, 2021". */
export function relative(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const seconds = Math.max(0, (now - t) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  const date = new Date(t);
  const today = new Date(now);
  if (seconds < 6 * 3600 || date.toDateString() === today.toDateString()) {
    return seconds < 6 * 3600 ? `${Math.round(seconds / 3600)} h ago` : TIME.format(date);
  }
  if (seconds < 6 * 86400) return WEEKDAY.format(date);
  if (date.getFullYear() === today.getFullYear()) return DAY.format(date);
  return FULL_DAY.format(date);
}

export function fullDate(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? "" : FULL.format(new Date(t));
}

/** {Name, Address} -> "Name <addr>" or "addr". */
export function address(a) {
  if (!a) return "";
  if (a.Name && a.Address) return `${a.Name} <${a.Address}>`;
  return a.Name || a.Address || "";
}

/** The short form for the list: the name, else the address. */
export function who(a) {
  return a ? a.Name || a.Address || "" : "";
}

export function addresses(list) {
  return (list || []).map(address).join(", ");
}

/** A length of time: "12 s", "4 min 5 s", "30 min", "2 h 10 min", "5 d 4 h". */
export function span(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  const hours = Math.floor(m / 60);
  const days = Math.floor(hours / 24);
  if (days) return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
  if (hours) return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
  return m < 10 && s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
}

/** Time left until a moment on the sandbox clock: "in 29 min", or "due now". */
export function until(seconds) {
  return seconds > 0.5 ? `in ${span(seconds)}` : "due now";
}

const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const CLOCK_DAY = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

/** An instant given in epoch seconds: the time of day, with the date when it is not on `sameDayAs`'s day. */
export function clockTime(epoch, sameDayAs = Date.now() / 1000) {
  const date = new Date(epoch * 1000);
  if (Number.isNaN(date.getTime())) return "";
  const same = date.toDateString() === new Date(sameDayAs * 1000).toDateString();
  return (same ? CLOCK : CLOCK_DAY).format(date);
}

export function fullEpoch(epoch) {
  const date = new Date(epoch * 1000);
  return Number.isNaN(date.getTime()) ? "" : FULL.format(date);
}
