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

/** 41.5 -> "about 42 s left", 600 -> "about 10 min left" (a job's eta_s). */
export function eta(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `about ${Math.max(1, Math.round(seconds))} s left`;
  if (seconds < 3600) return `about ${Math.round(seconds / 60)} min left`;
  return `about ${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min left`;
}

/** Milliseconds of predicted latency: 2.4187 -> "2.42 ms". */
export const ms = (x) => (x === null || x === undefined ? "–" : `${Number(x).toFixed(x < 10 ? 2 : 1)} ms`);

/** A correlation: -0.4 -> "−0.40", 0.25 -> "+0.25". */
export const rho = (x) => (x === null || x === undefined || Number.isNaN(x) ? "–" : `${x < 0 ? "−" : "+"}${Math.abs(x).toFixed(2)}`);
