// Formatting shared by the pages: durations in Prometheus's syntax, times, label sets.

const UNITS = [
  ['y', 365 * 24 * 3600 * 1000],
  ['w', 7 * 24 * 3600 * 1000],
  ['d', 24 * 3600 * 1000],
  ['h', 3600 * 1000],
  ['m', 60 * 1000],
  ['s', 1000],
  ['ms', 1],
];

/** "1h30m" -> 5400000; null when not a duration. */
export function parseDuration(text) {
  const t = String(text).trim();
  if (t === '' || !/^(\d+(y|w|d|h|ms|m|s))+$/.test(t)) return null;
  let ms = 0;
  for (const [, n, unit] of t.matchAll(/(\d+)(y|w|d|h|ms|m|s)/g)) {
    ms += Number(n) * UNITS.find(([u]) => u === unit)[1];
  }
  return ms;
}

/** 5400000 -> "1h30m". */
export function formatDuration(ms) {
  if (!ms) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of UNITS) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}

/** Seconds since an RFC 3339 time, as "12.3s ago". */
export function ago(rfc3339) {
  const t = Date.parse(rfc3339);
  if (!t || t < 0 || rfc3339.startsWith('0001-')) return 'never';
  const s = (Date.now() - t) / 1000;
  if (s < 0) return 'just now';
  if (s < 60) return `${s.toFixed(1)}s ago`;
  return `${formatDuration(Math.round(s) * 1000)} ago`;
}

/** Unix ms -> "2024-01-02 03:04:05" in UTC (Prometheus's URL format for end_input). */
export function formatUtc(ms) {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
}

/** "2024-01-02 03:04:05" (UTC) -> Unix ms; null when unreadable. */
export function parseUtc(text) {
  const t = Date.parse(`${String(text).trim().replace(' ', 'T')}Z`);
  return Number.isNaN(t) ? null : t;
}

export function formatSeconds(s) {
  if (s === undefined || s === null) return '';
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)}µs`;
  if (s < 1) return `${(s * 1e3).toFixed(1)}ms`;
  return `${s.toFixed(3)}s`;
}

export function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** A series' labels as `name{a="b", ...}`, as Prometheus shows them. */
export function formatSeries(metric) {
  const name = metric.__name__ || '';
  const pairs = Object.entries(metric)
    .filter(([k]) => k !== '__name__')
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return pairs.length || !name ? `${name}{${pairs.join(', ')}}` : name;
}

export function formatValue(v) {
  if (v === 'NaN' || v === '+Inf' || v === '-Inf') return v;
  return String(v);
}
