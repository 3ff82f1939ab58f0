// Numbers and dates for people.

const INT = new Intl.NumberFormat("en-US");

export const int = (n) => (n === null || n === undefined ? "–" : INT.format(n));

/** 1834512 -> "1.83 M" */
export function compact(n) {
  if (n === null || n === undefined) return "–";
  if (Math.abs(n) >= 1e9) return (n / 1e9).toPrecision(3) + " G";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toPrecision(3) + " M";
  if (Math.abs(n) >= 1e3) return (n / 1e3).toPrecision(3) + " k";
  return String(n);
}

/** 0.8125 -> "81.3 %" */
export const pct = (x, digits = 1) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(digits)} %`);

export const num = (x, digits = 4) => (x === null || x === undefined ? "–" : Number(x).toPrecision(digits));

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  const seconds = (Date.now() - date.getTime()) / 1000;
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

export function duration(startIso, endIso) {
  if (!startIso) return "–";
  const seconds = ((endIso ? new Date(endIso) : new Date()) - new Date(startIso)) / 1000;
  if (seconds < 60) return `${seconds.toFixed(0)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export const metricName = (m) => m.replaceAll("_", " ");
