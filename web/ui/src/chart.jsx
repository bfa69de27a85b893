// Time-series graphs with uPlot: lines or stacked areas, a legend with each series' label
// set and the values under the cursor.

import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const PALETTE = ['#1c7ed6', '#e8590c', '#2f9e44', '#c2255c', '#7048e8', '#0c8599', '#e67700', '#5c940d', '#d6336c', '#4263eb', '#862e9c', '#a61e4d'];

export const color = (i) => PALETTE[i % PALETTE.length];

/** Aligns `series` ([{label, points: [[unixSeconds, number]]}]) on the union of their times. */
export function align(series) {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const columns = series.map((s) => {
    const column = new Array(times.length).fill(null);
    for (const [t, v] of s.points) column[index.get(t)] = Number.isFinite(v) ? v : null;
    return column;
  });
  return [times, ...columns];
}

function stack(data) {
  const out = [data[0]];
  let below = new Array(data[0].length).fill(0);
  for (const column of data.slice(1)) {
    const sums = column.map((v, i) => (v === null ? below[i] : below[i] + v));
    out.push(sums);
    below = sums;
  }
  return out;
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** The page's theme, following changes (the axes and grid take its colours when drawn). */
function useThemeName() {
  const [theme, setTheme] = useState(document.documentElement.dataset.theme);
  useEffect(() => {
    const observer = new MutationObserver(() => setTheme(document.documentElement.dataset.theme));
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
    return () => observer.disconnect();
  }, []);
  return theme;
}

/** A graph of `series`; `stacked` draws cumulative areas (the legend shows each series' own
 * value); `utc` labels the time axis in UTC instead of the browser's time zone. */
export function Chart({ series, stacked, utc = false, height = 360 }) {
  const box = useRef(null);
  const theme = useThemeName();
  useEffect(() => {
    if (!box.current || series.length === 0) return undefined;
    const raw = align(series);
    const data = stacked ? stack(raw) : raw;
    const axis = { stroke: cssVar('--fg'), grid: { stroke: cssVar('--grid') }, ticks: { stroke: cssVar('--grid') } };
    const opts = {
      width: box.current.clientWidth,
      height,
      class: 'chart',
      cursor: { points: { size: 6 }, focus: { prox: 16 } },
      legend: { live: true },
      scales: { x: { time: true } },
      ...(utc ? { tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC') } : {}),
      axes: [axis, { ...axis, size: 70 }],
      series: [
        { label: 'time' },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: color(i),
          width: 1.5,
          fill: stacked ? `${color(i)}55` : undefined,
          spanGaps: false,
          points: { show: s.points.length < 2 },
          value: (u, v, si, di) => {
            const own = di === null || di === undefined ? null : raw[si][di];
            return own === null || own === undefined ? '—' : String(own);
          },
        })),
      ],
    };
    const plot = new uPlot(opts, data, box.current);
    const resize = new ResizeObserver(() => plot.setSize({ width: box.current.clientWidth, height }));
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [series, stacked, utc, height, theme]);
  return <div class="chart-box" ref={box} />;
}
