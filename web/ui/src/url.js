// The query page's state in the URL, with Prometheus's own parameters (g0.expr, g0.tab,
// g0.range_input, g0.end_input, g0.step_input, ...), so links made for Prometheus's UI open here.

import { formatDuration, formatUtc, parseDuration, parseUtc } from './format.js';

export function newPanel(expr = '') {
  return {
    expr,
    tab: 'table',
    range: 3600 * 1000,
    endTime: null,
    resolution: { type: 'auto', density: 'medium' },
    displayMode: 'lines',
  };
}

export function decodePanels(search) {
  const params = new URLSearchParams(search);
  const panels = [];
  for (let i = 0; params.has(`g${i}.expr`); i++) {
    const get = (name) => params.get(`g${i}.${name}`);
    const panel = newPanel(get('expr'));
    const tab = get('tab');
    if (tab === '0' || tab === 'graph') panel.tab = 'graph';
    else if (tab === '1' || tab === 'table') panel.tab = 'table';
    else if (tab === 'explain') panel.tab = 'explain';
    if (get('stacked') !== null) panel.displayMode = get('stacked') === '1' ? 'stacked' : 'lines';
    if (get('display_mode') === 'stacked' || get('display_mode') === 'lines') panel.displayMode = get('display_mode');
    const range = get('range_input') !== null ? parseDuration(get('range_input')) : null;
    if (range) panel.range = range;
    for (const name of ['end_input', 'moment_input']) {
      const t = get(name) !== null ? parseUtc(get(name)) : null;
      if (t !== null) panel.endTime = t;
    }
    const legacyStep = Number.parseInt(get('step_input') ?? '', 10);
    if (legacyStep > 0) panel.resolution = { type: 'custom', step: legacyStep * 1000 };
    const step = Number.parseFloat(get('res_step') ?? '');
    if ((get('res_type') === 'custom' || get('res_type') === 'fixed') && step > 0) {
      panel.resolution = { type: 'custom', step: step * 1000 };
    } else if (get('res_type') === 'auto' && ['low', 'medium', 'high'].includes(get('res_density'))) {
      panel.resolution = { type: 'auto', density: get('res_density') };
    }
    panels.push(panel);
  }
  return panels;
}

export function encodePanels(panels) {
  const params = new URLSearchParams();
  panels.forEach((p, i) => {
    const add = (name, value) => params.append(`g${i}.${name}`, value);
    add('expr', p.expr);
    add('tab', p.tab);
    if (p.endTime !== null) {
      add('end_input', formatUtc(p.endTime));
      add('moment_input', formatUtc(p.endTime));
    }
    add('range_input', formatDuration(p.range));
    if (p.resolution.type === 'auto') {
      add('res_type', 'auto');
      add('res_density', p.resolution.density);
    } else {
      add('res_type', 'custom');
      add('res_step', String(p.resolution.step / 1000));
    }
    add('display_mode', p.displayMode);
  });
  return params;
}

const DENSITY = { low: 100, medium: 250, high: 1000 };

/** The step in ms a panel's graph uses: its own, or range / points for its density. */
export function effectiveStep(panel) {
  if (panel.resolution.type !== 'auto') return panel.resolution.step;
  const points = DENSITY[panel.resolution.density] ?? 250;
  return Math.max(1000, Math.ceil(panel.range / points / 1000) * 1000);
}
