// Unit tests of the query page's URL state and the shared formatting (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePanels, encodePanels, effectiveStep, newPanel } from '../src/url.js';
import { formatDuration, parseDuration, formatUtc, parseUtc } from '../src/format.js';

test('durations in Prometheus syntax', () => {
  assert.equal(parseDuration('1h30m'), 5400000);
  assert.equal(parseDuration('2d'), 172800000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1.5h'), null);
  assert.equal(parseDuration(''), null);
  assert.equal(formatDuration(5400000), '1h30m');
  assert.equal(formatDuration(604800000), '1w');
});

test('UTC times as Prometheus links write them', () => {
  const t = parseUtc('2024-03-01 12:30:00');
  assert.equal(t, Date.UTC(2024, 2, 1, 12, 30, 0));
  assert.equal(formatUtc(t), '2024-03-01 12:30:00');
  assert.equal(parseUtc('not a time'), null);
});

test("Prometheus 2.x links: numeric tab, stacked, step_input", () => {
  const [p] = decodePanels('?g0.expr=rate(x%5B5m%5D)&g0.tab=0&g0.stacked=1&g0.range_input=6h&g0.step_input=30&g0.end_input=2024-03-01%2012%3A00%3A00');
  assert.equal(p.expr, 'rate(x[5m])');
  assert.equal(p.tab, 'graph');
  assert.equal(p.displayMode, 'stacked');
  assert.equal(p.range, 6 * 3600 * 1000);
  assert.deepEqual(p.resolution, { type: 'custom', step: 30000 });
  assert.equal(p.endTime, Date.UTC(2024, 2, 1, 12, 0, 0));
});

test('Prometheus 3.x links and several panels', () => {
  const panels = decodePanels('?g0.expr=up&g0.tab=table&g1.expr=sum(up)&g1.tab=explain&g1.res_type=auto&g1.res_density=high&g1.display_mode=lines');
  assert.equal(panels.length, 2);
  assert.equal(panels[0].tab, 'table');
  assert.equal(panels[1].tab, 'explain');
  assert.deepEqual(panels[1].resolution, { type: 'auto', density: 'high' });
});

test('encoding and decoding round-trip', () => {
  const p = { ...newPanel('histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))'), tab: 'graph', range: 7200000, endTime: Date.UTC(2024, 0, 2, 3, 4, 5), resolution: { type: 'custom', step: 15000 }, displayMode: 'stacked' };
  const [back] = decodePanels(`?${encodePanels([p])}`);
  assert.deepEqual(back, p);
});

test('auto resolution: range over points, whole seconds, at least 1s', () => {
  assert.equal(effectiveStep({ ...newPanel(), range: 3600000 }), 15000);
  assert.equal(effectiveStep({ ...newPanel(), range: 60000 }), 1000);
  assert.equal(effectiveStep({ ...newPanel(), range: 3600000, resolution: { type: 'auto', density: 'high' } }), 4000);
});
